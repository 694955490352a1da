//! `pwsnas sweep`: the runs of a plan (every combination of some settings' values, e.g. sampler ×
//! shrinking metric × seed), on this machine in parallel processes ([`local`]), as a Slurm job
//! array ([`slurm`]) or a Kubernetes Indexed Job ([`k8s`]), and one report of their means and
//! spreads over seeds ([`report`]) — the paper's table of each method without and with shrinking,
//! on the user's data.
//!
//! Each run is a task ([`task`]): a full `pwsnas search` followed by `pwsnas export`, run as child
//! processes of this binary, so that a crash of one run does not take the sweep down and a Slurm
//! or Kubernetes task runs exactly what a local sweep runs. Tasks are idempotent (a finished run
//! does nothing) and resumable (a killed one continues from its run's checkpoints), so
//! resubmitting a sweep runs only what is not done; [`status`] tells each run's state.
//!
//! The sweep directory:
//! ```text
//! DIR/sweep.json          the expanded plan: each run's index, name, grid values and settings
//! DIR/plan.toml           the plan file as given
//! DIR/configs/NAME.toml   each run's settings, as `pwsnas search --config` reads them
//! DIR/runs/NAME/          each run's directory (search and export)
//! DIR/tasks/NAME.json     each run's task record (state, attempt, host, error); NAME.lock while it runs
//! DIR/logs/NAME.log       the output of each run's search and export
//! DIR/slurm/              the job-array script and the jobs submitted
//! DIR/k8s/job.yaml        the Kubernetes Indexed Job
//! DIR/report.*            the sweep report (md, csv, json, html)
//! ```
//! Nothing in it names an absolute path, so it can be moved or mounted elsewhere (a Kubernetes
//! volume) as a whole.
pub mod cli;
pub mod k8s;
pub mod local;
pub mod plan;
pub mod render;
pub mod report;
pub mod slurm;
pub mod status;
pub mod task;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::fsutil::{read_json, write_atomic, write_json};
use plan::{Plan, PlannedRun};

/// Version of the sweep-directory layout; a sweep of another format is refused.
pub const FORMAT: u32 = 1;

const MANIFEST: &str = "sweep.json";

/// `sweep.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub pwsnas_version: String,
    /// Seconds since the Unix epoch.
    pub created_at: u64,
    /// The plan file it was made from, as given.
    pub plan_file: String,
    pub plan: Plan,
}

/// A sweep directory.
pub struct SweepDir {
    pub root: PathBuf,
    pub manifest: Manifest,
}

impl SweepDir {
    /// Opens the sweep in `root`, or creates it for `plan`. Refuses a directory that holds another
    /// sweep, a run, or anything else.
    pub fn create_or_open(root: &Path, plan: Plan, plan_file: &Path, plan_text: &str) -> Result<SweepDir> {
        if root.join(MANIFEST).exists() {
            let sweep = SweepDir::open(root)?;
            if sweep.manifest.plan != plan {
                bail!(
                    "{} holds another sweep (made from {}, {} runs): its plan differs from {} ({}); use a new --out, or that sweep's own plan",
                    root.display(),
                    sweep.manifest.plan_file,
                    sweep.manifest.plan.runs.len(),
                    plan_file.display(),
                    difference(&sweep.manifest.plan, &plan)
                );
            }
            sweep.write_configs()?;
            return Ok(sweep);
        }
        if root.join("run.json").exists() {
            bail!("{} is a pwsnas run directory, not a sweep: use a new --out for the sweep", root.display());
        }
        if root.read_dir().is_ok_and(|mut entries| entries.next().is_some()) {
            bail!(
                "{} exists and is not a sweep directory (no {MANIFEST}): use a new or empty --out",
                root.display()
            );
        }
        let manifest = Manifest {
            format: FORMAT,
            pwsnas_version: env!("CARGO_PKG_VERSION").to_string(),
            created_at: crate::run::now(),
            plan_file: plan_file.display().to_string(),
            plan,
        };
        write_json(&root.join(MANIFEST), &manifest)?;
        write_atomic(&root.join("plan.toml"), plan_text.as_bytes())?;
        let sweep = SweepDir { root: root.to_path_buf(), manifest };
        sweep.write_configs()?;
        Ok(sweep)
    }

    /// Opens an existing sweep (for its tasks, status and report).
    pub fn open(root: &Path) -> Result<SweepDir> {
        let path = root.join(MANIFEST);
        if !path.exists() {
            bail!(
                "{} is not a sweep directory (no {MANIFEST}): start one with `pwsnas sweep PLAN --out {}`",
                root.display(),
                root.display()
            );
        }
        let raw: serde_json::Value = read_json(&path)?;
        let format = raw.get("format").and_then(serde_json::Value::as_u64).unwrap_or(0);
        if format != FORMAT as u64 {
            bail!(
                "{} was written by another pwsnas version (sweep format {format}, this pwsnas reads format {FORMAT})",
                path.display()
            );
        }
        let manifest: Manifest = serde_json::from_value(raw)
            .with_context(|| format!("{} is not a valid {MANIFEST}", path.display()))?;
        Ok(SweepDir { root: root.to_path_buf(), manifest })
    }

    pub fn plan(&self) -> &Plan {
        &self.manifest.plan
    }

    pub fn run_dir(&self, run: &PlannedRun) -> PathBuf {
        self.root.join("runs").join(&run.name)
    }

    pub fn config_path(&self, run: &PlannedRun) -> PathBuf {
        self.root.join("configs").join(format!("{}.toml", run.name))
    }

    pub fn log_path(&self, run: &PlannedRun) -> PathBuf {
        self.root.join("logs").join(format!("{}.log", run.name))
    }

    pub fn record_path(&self, run: &PlannedRun) -> PathBuf {
        self.root.join("tasks").join(format!("{}.json", run.name))
    }

    pub fn lock_path(&self, run: &PlannedRun) -> PathBuf {
        self.root.join("tasks").join(format!("{}.lock", run.name))
    }

    /// Writes each run's settings where `pwsnas search --config` reads them (missing ones only).
    fn write_configs(&self) -> Result<()> {
        for run in &self.plan().runs {
            let path = self.config_path(run);
            if path.exists() {
                continue;
            }
            let text = toml::to_string(&run.settings)
                .with_context(|| format!("cannot write the settings of run {} as TOML", run.name))?;
            write_atomic(&path, text.as_bytes())?;
        }
        Ok(())
    }
}

/// The first way two plans differ, in words.
fn difference(old: &Plan, new: &Plan) -> String {
    if old.keys != new.keys {
        return format!("grid keys {} → {}", old.keys.join(", "), new.keys.join(", "));
    }
    if old.run != new.run {
        let changes = crate::run::diff(&serde_json::json!(old.run), &serde_json::json!(new.run));
        return format!("[run] {}", changes.join("; "));
    }
    if old.runs.len() != new.runs.len() {
        return format!("{} runs → {} runs", old.runs.len(), new.runs.len());
    }
    for (a, b) in old.runs.iter().zip(&new.runs) {
        if a.name != b.name {
            return format!("run {}: {} → {}", a.index, a.name, b.name);
        }
        if a.settings != b.settings {
            let changes = crate::run::diff(&serde_json::json!(a.settings), &serde_json::json!(b.settings));
            return format!("run {}: {}", a.name, changes.join("; "));
        }
    }
    "they differ".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAN: &str = "[base.supernet]\nepochs = 2\n[grid]\nseed = [0, 1]\n";

    #[test]
    fn a_directory_of_another_sweep_or_a_run_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("s");
        let plan = Plan::parse(PLAN).unwrap();
        let sweep = SweepDir::create_or_open(&root, plan.clone(), Path::new("a.toml"), PLAN).unwrap();
        let config = std::fs::read_to_string(sweep.config_path(&sweep.plan().runs[1])).unwrap();
        let back: crate::settings::Settings = toml::from_str(&config).unwrap();
        assert_eq!(back, sweep.plan().runs[1].settings, "configs/NAME.toml holds the run's settings");
        SweepDir::create_or_open(&root, plan, Path::new("a.toml"), PLAN).expect("the same plan reopens");

        let other = "[base.supernet]\nepochs = 3\n[grid]\nseed = [0, 1]\n";
        let err = SweepDir::create_or_open(&root, Plan::parse(other).unwrap(), Path::new("b.toml"), other)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("holds another sweep (made from a.toml, 2 runs)"), "{err}");
        assert!(err.contains("run seed=0: supernet.epochs: 2 → 3"), "{err}");

        let run = dir.path().join("r");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(run.join("run.json"), "{}").unwrap();
        let err = SweepDir::create_or_open(&run, Plan::parse(PLAN).unwrap(), Path::new("a.toml"), PLAN)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("is a pwsnas run directory, not a sweep"), "{err}");
        let err = SweepDir::open(&run).err().unwrap().to_string();
        assert!(err.contains("is not a sweep directory (no sweep.json)"), "{err}");
    }
}
