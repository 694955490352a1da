//! `pwsnas fidelity`: the ranking study that justifies the angle (the evidence of the ABS and
//! PWSNAS papers, on the user's own data). `truth` trains every child of a small space
//! stand-alone ([`truth`]); `report` asks how well each metric, computed on supernets scored with
//! `pwsnas shrink --score-only --exhaustive`, ranks the children and the operator candidates
//! against that truth ([`study`], [`rank`]), and writes `fidelity.md/.json/.html` ([`render`]).
pub mod rank;
pub mod render;
pub mod study;
pub mod truth;

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use serde_json::json;

use crate::cli::{RunArgs, SettingsArgs};
use crate::data::RunData;
use crate::progress::Progress;
use crate::settings::Settings;
use truth::TruthDir;

#[derive(Subcommand)]
pub enum FidelityCommand {
    /// Train every child of a small space stand-alone ([retrain] settings, one seed) into a truth
    /// folder: children/NNNNN.json per child, truth.jsonl with all; resumable, in parallel.
    Truth(Box<TruthArgs>),
    /// Rank every metric of `--score-only --exhaustive` runs against a truth: Kendall τ-b and
    /// Spearman ρ at the operator and the architecture level, top-k survival; writes
    /// fidelity.md, fidelity.json and fidelity.html.
    Report(ReportArgs),
}

#[derive(Args)]
pub struct TruthArgs {
    /// The truth folder (created, or continued when it exists).
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub settings: SettingsArgs,
    #[command(flatten)]
    pub run: RunArgs,
    /// Worker processes (each trains every J-th child).
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Intra-op threads per worker (default: the cores divided by --jobs).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Submit the workers as a Slurm job array (task I = worker I) instead of running them here;
    /// rerun without --slurm after the job to collect truth.jsonl.
    #[arg(long)]
    pub slurm: bool,
    /// Extra sbatch options, e.g. '--partition=gpu --time=2:00:00'.
    #[arg(long, requires = "slurm")]
    pub slurm_args: Option<String>,
    /// With --slurm: write the script (slurm/truth.sbatch) without submitting it.
    #[arg(long, requires = "slurm")]
    pub emit_only: bool,
    /// Run as worker I of J (what --jobs and --slurm start).
    #[arg(long, hide = true)]
    pub worker: Option<String>,
}

#[derive(Args)]
pub struct ReportArgs {
    /// A truth folder (or its truth.jsonl), or a benchmark table TABLE.csv[#COLUMN] (e.g.
    /// NAS-Bench-201's); twice for two truths: the truth is their mean and the τ between them is
    /// reported as the ceiling.
    #[arg(long, required = true)]
    pub truth: Vec<PathBuf>,
    /// Runs scored with `pwsnas shrink --score-only --exhaustive` (several epochs, several seeds).
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Folder for fidelity.md, fidelity.json and fidelity.html.
    #[arg(long, default_value = "fidelity")]
    pub out: PathBuf,
    /// Candidates the survival count drops (default: 2/3 of them, ABS's 20 of 30).
    #[arg(long)]
    pub drop: Option<usize>,
    /// Best candidates (by the truth) the survival count watches (default: 8/30 of them, ABS's 8 of 30).
    #[arg(long)]
    pub best: Option<usize>,
}

pub fn run(cmd: FidelityCommand, progress: &Progress) -> Result<()> {
    match cmd {
        FidelityCommand::Truth(args) => run_truth(&args, progress),
        FidelityCommand::Report(args) => run_report(&args, progress),
    }
}

fn run_truth(args: &TruthArgs, progress: &Progress) -> Result<()> {
    crate::device::check_name(&args.run.device)?;
    if args.jobs == 0 {
        bail!("--jobs 0: expected at least 1 worker");
    }
    if let Some(w) = &args.worker {
        let (i, j) = truth::parse_worker(w)?;
        let dir = TruthDir::open(&args.out)?;
        return dir.work(i, j, crate::device::parse(&args.run.device)?, progress);
    }
    // Settings are layered as for runs: the stored truth's settings (or the defaults), then flags.
    let base = if args.out.join("truth.json").exists() {
        TruthDir::open(&args.out)?.spec.settings
    } else {
        Settings::default()
    };
    let settings = args.settings.resolve(base)?;
    let data = RunData::load(&settings)?;
    let dir = TruthDir::create_or_open(&args.out, &settings, &data)?;
    let total = dir.spec.children.len();
    let done = dir.finished()?.len();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = args.threads.unwrap_or((cores / args.jobs).max(1));
    if args.slurm {
        let path = args.out.join("slurm").join("truth.sbatch");
        crate::fsutil::write_atomic(
            &path,
            truth::slurm_script(&dir, args.jobs, threads, &args.run.device)?.as_bytes(),
        )?;
        std::fs::create_dir_all(args.out.join("logs"))?;
        if args.emit_only {
            progress.info(format!("wrote {} (submit it with `sbatch {}`)", path.display(), path.display()));
            return Ok(());
        }
        let extra = crate::sweep::slurm::split_args(args.slurm_args.as_deref())?;
        let job = crate::sweep::slurm::sbatch_submit(&path, &extra)?;
        progress.event("truth_submitted", json!({ "job_id": job, "workers": args.jobs, "children": total }));
        progress.info(format!(
            "submitted Slurm job {job}: {} workers over {} children ({done} done); when it ends, `pwsnas fidelity truth --out {}` collects truth.jsonl",
            args.jobs,
            total,
            args.out.display()
        ));
        return Ok(());
    }
    progress.info(format!(
        "truth: {total} children of {} ({done} done), {} epoch(s) each, {} worker(s) × {threads} thread(s)",
        dir.spec.space, dir.spec.settings.retrain.epochs, args.jobs
    ));
    if done < total {
        if args.jobs == 1 {
            // The one worker is this process: --threads applies here (and the threads change the
            // floating-point sums, so a truth is reproduced with the same count).
            if args.threads.is_some() {
                tch::set_num_threads(threads as i32);
            }
            dir.work(0, 1, crate::device::parse(&args.run.device)?, progress)?;
        } else {
            truth::run_local(&dir, args.jobs, threads, &args.run.device, progress)?;
        }
    }
    let collected = dir.collect()?;
    let path = args.out.join("truth.jsonl");
    progress.event("truth_done", json!({ "children": collected, "of": total, "file": path }));
    if collected < total {
        bail!("{} holds {collected} of {total} children: rerun to train the rest", path.display());
    }
    progress.info(format!("truth: {collected} children in {}", path.display()));
    Ok(())
}

fn run_report(args: &ReportArgs, progress: &Progress) -> Result<()> {
    let rule = study::SurvivalRule { drop: args.drop, best: args.best };
    let study = study::build(&args.truth, &args.runs, rule)?;
    let paths = render::write_all(&args.out, &study)?;
    if progress.json() {
        println!("{}", serde_json::to_string(&study)?);
    } else {
        print!("{}", render::markdown(&study));
        progress.info(format!("wrote {}", paths.map(|p| p.display().to_string()).join(", ")));
    }
    Ok(())
}
