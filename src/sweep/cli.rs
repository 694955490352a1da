//! The `pwsnas sweep` command line: start (or resume) a sweep locally, on Slurm or as a
//! Kubernetes manifest; `status`, `report`, and `task` (one run, as a scheduler's task runs it).
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::json;

use super::k8s::{self, K8sOptions};
use super::plan::Plan;
use super::task::{self, Outcome};
use super::{local, render, report, slurm, status, SweepDir};
use crate::progress::Progress;

/// `pwsnas sweep PLAN --out DIR [--jobs J | --slurm | --k8s]`, or one of its subcommands.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct SweepArgs {
    #[command(subcommand)]
    pub command: Option<SweepCommand>,
    /// The sweep plan (TOML): [base] settings as in a --config file, [grid] lists of values keyed
    /// by setting path, [run] threads/device/latency runs.
    #[arg(required = true)]
    pub plan: Option<PathBuf>,
    /// The sweep directory (created, or resumed when it holds this plan's sweep).
    #[arg(long, required = true)]
    pub out: Option<PathBuf>,
    /// Runs at a time on this machine (default: CPU cores / the plan's threads per run).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Submit the runs that are not done as a Slurm job array (sbatch) instead of running them here.
    #[arg(long)]
    pub slurm: bool,
    /// Options for sbatch (partition, GPUs, time), e.g. "--partition=gpu --gres=gpu:1 --time=04:00:00".
    #[arg(long, requires = "slurm", allow_hyphen_values = true)]
    pub slurm_args: Option<String>,
    /// With --slurm: write the sbatch script (DIR/slurm/sweep.sbatch) without submitting it.
    #[arg(long, requires = "slurm")]
    pub emit_only: bool,
    /// Write a Kubernetes Indexed Job (DIR/k8s/job.yaml), one completion per run, instead of running here.
    #[arg(long)]
    pub k8s: bool,
    /// With --k8s: the container image holding pwsnas.
    #[arg(long, default_value = "pwsnas:latest")]
    pub k8s_image: String,
    /// With --k8s: the PersistentVolumeClaim that holds the sweep directory.
    #[arg(long, default_value = "pwsnas-sweep")]
    pub k8s_claim: String,
}

#[derive(Subcommand)]
pub enum SweepCommand {
    /// Each run of a sweep as done, running, failed or pending (with Slurm's view when it is there).
    Status {
        /// The sweep directory (`pwsnas sweep PLAN --out DIR`).
        dir: PathBuf,
    },
    /// The report of a sweep's finished runs: mean ± std over seeds per group, gains of shrinking
    /// paired by seed, accuracy against latency; report.md/.csv/.json/.html.
    Report {
        /// The sweep directory (`pwsnas sweep PLAN --out DIR`).
        dir: PathBuf,
        /// Folder for the report files (default: the sweep directory).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Run one run of a sweep, as a Slurm array task or Kubernetes pod does (index from --index,
    /// SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX); a finished run does nothing.
    Task {
        /// The sweep directory (`pwsnas sweep PLAN --out DIR`).
        dir: PathBuf,
        /// The run's index in the plan (default: SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX).
        #[arg(long)]
        index: Option<usize>,
    },
}

pub fn run(args: SweepArgs, progress: &Progress) -> Result<()> {
    match &args.command {
        Some(SweepCommand::Status { dir }) => status_command(dir, progress),
        Some(SweepCommand::Report { dir, out }) => {
            let sweep = SweepDir::open(dir)?;
            write_report(&sweep, out.as_deref().unwrap_or(dir), progress)
        }
        Some(SweepCommand::Task { dir, index }) => task_command(dir, *index, progress),
        None => start(&args, progress),
    }
}

fn start(args: &SweepArgs, progress: &Progress) -> Result<()> {
    let (Some(plan_path), Some(out)) = (&args.plan, &args.out) else {
        bail!("usage: pwsnas sweep PLAN --out DIR (or pwsnas sweep status|report|task DIR)");
    };
    if args.slurm && !args.emit_only {
        slurm::sbatch()?;
    }
    let slurm_args = slurm::split_args(args.slurm_args.as_deref())?;
    if args.jobs == Some(0) {
        bail!("--jobs 0: expected at least 1");
    }
    let text = std::fs::read_to_string(plan_path)
        .with_context(|| format!("cannot read sweep plan {}", plan_path.display()))?;
    let plan = Plan::parse(&text).with_context(|| format!("sweep plan {}", plan_path.display()))?;
    let threads = plan.run.threads;
    let sweep = SweepDir::create_or_open(out, plan, plan_path, &text)?;
    let plan = sweep.plan();
    progress.info(format!("sweep {}: {} runs ({})", out.display(), plan.runs.len(), plan.keys.join(" × ")));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let jobs = args.jobs.unwrap_or((cores / threads).max(1));

    if args.k8s {
        let opts =
            K8sOptions { image: args.k8s_image.clone(), claim: args.k8s_claim.clone(), parallelism: jobs };
        let path = k8s::write(&sweep, &opts)?;
        progress.info(format!(
            "Kubernetes Indexed Job ({} completions): {}\n  put {} on the volume '{}', then `kubectl apply -f {}`",
            plan.runs.len(),
            path.display(),
            out.display(),
            opts.claim,
            path.display()
        ));
        progress.event("sweep_k8s_written", json!({ "manifest": path }));
    }
    if args.slurm {
        return submit(&sweep, &slurm_args, args.emit_only, progress);
    }
    if args.k8s {
        return Ok(());
    }
    let summary = local::run(&sweep, jobs, progress)?;
    for (name, who) in &summary.busy {
        progress.info(format!("not run here: {name} ({who})"));
    }
    write_report(&sweep, out, progress)?;
    if !summary.failed.is_empty() {
        let list: Vec<String> = summary.failed.iter().map(|(n, e)| format!("{n}: {e}")).collect();
        bail!(
            "{} of {} runs failed — {}; rerun the same command to retry them (finished runs are kept)",
            summary.failed.len(),
            plan.runs.len(),
            list.join("; ")
        );
    }
    Ok(())
}

/// Submits (or with `emit_only` writes) the job array of the runs that want running.
fn submit(sweep: &SweepDir, slurm_args: &[String], emit_only: bool, progress: &Progress) -> Result<()> {
    let statuses = status::of_runs(sweep);
    let todo: Vec<usize> = statuses.iter().filter(|s| s.wants_running()).map(|s| s.index).collect();
    if todo.is_empty() {
        progress.info(format!("nothing to submit: {}", status::summary(&statuses)));
        progress.event("sweep_nothing_to_submit", json!({ "summary": status::summary(&statuses) }));
        return Ok(());
    }
    let script = slurm::write_script(sweep, &todo)?;
    let array = slurm::array_spec(&todo);
    if emit_only {
        progress.info(format!(
            "wrote {} (array {array}, {} tasks); submit it with `sbatch {}`",
            script.display(),
            todo.len(),
            script.display()
        ));
        progress.event("sweep_slurm_script", json!({ "script": script, "array": array }));
        return Ok(());
    }
    let job = slurm::submit(sweep, &script, &todo, slurm_args)?;
    progress.info(format!(
        "submitted Slurm job {} with {} array tasks ({array}); follow it with `pwsnas sweep status {}`, then `pwsnas sweep report {}`",
        job.job_id,
        todo.len(),
        sweep.root.display(),
        sweep.root.display()
    ));
    progress.event("sweep_submitted", json!({ "job_id": job.job_id, "array": array, "script": script }));
    Ok(())
}

fn status_command(dir: &Path, progress: &Progress) -> Result<()> {
    let sweep = SweepDir::open(dir)?;
    let statuses = status::of_runs(&sweep);
    if progress.json() {
        println!("{}", json!({ "runs": statuses, "summary": status::summary(&statuses) }));
    } else {
        print!("{}", status::table(&statuses));
    }
    Ok(())
}

fn write_report(sweep: &SweepDir, out: &Path, progress: &Progress) -> Result<()> {
    let r = report::build(sweep)?;
    let paths = render::write_all(out, &r)?;
    if progress.json() {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        progress.info(String::new());
        print!("{}", render::markdown(&r));
    }
    progress.info(format!(
        "written: {}",
        paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    ));
    Ok(())
}

fn task_command(dir: &Path, index: Option<usize>, progress: &Progress) -> Result<()> {
    let index = task::index_from_env(index)?;
    let sweep = SweepDir::open(dir)?;
    let name = sweep.plan().run_at(index)?.name.clone();
    let outcome = task::run(&sweep, index, &|msg| progress.info(format!("{name}: {msg}")))?;
    let said = match &outcome {
        Outcome::AlreadyDone => "was done before: nothing to do".to_string(),
        Outcome::Finished => "done".to_string(),
        Outcome::Busy(who) => format!("is being run by {who}: nothing to do"),
    };
    progress.info(format!("run {index} ({name}) {said}"));
    progress.event("sweep_task", json!({ "index": index, "run": name, "outcome": said }));
    Ok(())
}
