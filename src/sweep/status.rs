//! `pwsnas sweep status DIR`: each run as done, running, failed or pending, from the sweep
//! directory (task records and locks, the runs' reports) and, when Slurm's commands are there,
//! from what Slurm says of the jobs the sweep submitted (`squeue`, and `sacct` where accounting
//! is on). The same states decide what a resubmission runs: pending and failed runs that Slurm
//! does not hold in its queue.
use serde::Serialize;

use super::plan::PlannedRun;
use super::task::{self, TaskRecord, TaskState};
use super::{slurm, SweepDir};
use crate::report::Report;
use crate::run::{RunDir, Stage, Status};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Done,
    Running,
    Failed,
    Pending,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Done => "done",
            State::Running => "running",
            State::Failed => "failed",
            State::Pending => "pending",
        }
    }
}

/// One run's state, with what tells it.
#[derive(Clone, Debug, Serialize)]
pub struct RunStatus {
    pub index: usize,
    pub name: String,
    pub state: State,
    /// Pending in Slurm's queue (submitted, waiting for a node).
    pub queued: bool,
    pub detail: String,
}

impl RunStatus {
    /// Whether a (re)submission should run it.
    pub fn wants_running(&self) -> bool {
        matches!(self.state, State::Failed | State::Pending) && !self.queued
    }
}

/// Slurm job states of a task that ended without finishing its run.
const SLURM_FAILED: [&str; 7] =
    ["FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL"];

/// The state of every run, in plan order.
pub fn of_runs(sweep: &SweepDir) -> Vec<RunStatus> {
    let slurm = slurm::task_states(sweep);
    sweep
        .plan()
        .runs
        .iter()
        .map(|run| {
            let (state, queued, detail) = state_of(sweep, run, slurm.get(&run.index));
            RunStatus { index: run.index, name: run.name.clone(), state, queued, detail }
        })
        .collect()
}

fn state_of(sweep: &SweepDir, run: &PlannedRun, slurm: Option<&slurm::TaskState>) -> (State, bool, String) {
    let record = TaskRecord::read(&sweep.record_path(run));
    if task::is_done(sweep, run) && task::ends_with_search(&sweep.run_dir(run)) {
        let arch: anyhow::Result<crate::search::ArchFile> =
            crate::fsutil::read_json(&sweep.run_dir(run).join("arch.json"));
        let detail = match arch {
            Ok(a) => match a.benchmark {
                Some(b) => format!("not exported (retrain.epochs = 0); {}", crate::benchmark::describe(&b)),
                None => "not exported (retrain.epochs = 0)".into(),
            },
            Err(e) => format!("{e:#}"),
        };
        return (State::Done, false, detail);
    }
    if task::is_done(sweep, run) {
        let detail = match Report::load(&sweep.run_dir(run).join("report.json")) {
            Ok(r) => format!(
                "ONNX Runtime test accuracy {:.2}%, {:.4} ms at batch 1",
                r.accuracy.ort * 100.0,
                r.latency.ort.batch1.p50_ms
            ),
            Err(e) => format!("{e:#}"),
        };
        return (State::Done, false, detail);
    }
    if let Some(who) = task::holder(sweep, run) {
        let step = record.as_ref().map_or("starting".to_string(), |r| r.step.clone());
        return (State::Running, false, format!("{} ({who})", stage_of(sweep, run, &step)));
    }
    if let Some(t) = slurm {
        match t.state.as_str() {
            "RUNNING" | "COMPLETING" => {
                return (State::Running, false, format!("Slurm job {} {}", t.job, t.state))
            }
            "PENDING" | "CONFIGURING" | "REQUEUED" | "RESIZING" | "SUSPENDED" => {
                return (State::Pending, true, format!("queued in Slurm: job {} {}", t.job, t.state));
            }
            s if SLURM_FAILED.iter().any(|f| s.starts_with(f)) => {
                let error = record.and_then(|r| r.error).map(|e| format!(": {e}")).unwrap_or_default();
                return (State::Failed, false, format!("Slurm job {} {}{error}", t.job, t.state));
            }
            _ => {}
        }
    }
    match record {
        Some(r) if r.state == TaskState::Failed => (
            State::Failed,
            false,
            format!("attempt {} failed in {}: {}", r.attempt, r.step, r.error.unwrap_or_default()),
        ),
        Some(r) if r.state == TaskState::Running => (
            State::Failed,
            false,
            format!(
                "attempt {} stopped in {} without finishing (killed?)",
                r.attempt,
                stage_of(sweep, run, &r.step)
            ),
        ),
        Some(_) => (State::Pending, false, "report.json is missing: the run will be exported again".into()),
        None => (State::Pending, false, "not started".into()),
    }
}

/// The step of a task, with the stage of `pwsnas search` it is in (`search: shrink`).
fn stage_of(sweep: &SweepDir, run: &PlannedRun, step: &str) -> String {
    if step != "search" {
        return step.to_string();
    }
    let Ok(dir) = RunDir::open(&sweep.run_dir(run)) else { return step.to_string() };
    let stage = Stage::ALL
        .iter()
        .find(|s| dir.info.stages.get(*s).is_none_or(|r| r.status == Status::Running))
        .map_or("retrain", |s| s.name());
    format!("search: {stage}")
}

/// `4 runs: 2 done, 1 running, 0 failed, 1 pending (1 queued in Slurm)`.
pub fn summary(statuses: &[RunStatus]) -> String {
    let count = |s: State| statuses.iter().filter(|r| r.state == s).count();
    let queued = statuses.iter().filter(|r| r.queued).count();
    format!(
        "{} runs: {} done, {} running, {} failed, {} pending{}",
        statuses.len(),
        count(State::Done),
        count(State::Running),
        count(State::Failed),
        count(State::Pending),
        if queued > 0 { format!(" ({queued} queued in Slurm)") } else { String::new() }
    )
}

/// The status table for people.
pub fn table(statuses: &[RunStatus]) -> String {
    let width = statuses.iter().map(|r| r.name.len()).max().unwrap_or(3).max(3);
    let mut s = format!("{:>3}  {:<width$}  {:<8} detail\n", "#", "run", "state");
    for r in statuses {
        s.push_str(&format!("{:>3}  {:<width$}  {:<8} {}\n", r.index, r.name, r.state.name(), r.detail));
    }
    s.push_str(&summary(statuses));
    s.push('\n');
    s
}
