//! A sweep on this machine: the runs that want running ([`super::status`]), `jobs` at a time,
//! each a task ([`super::task`]: child processes of this binary), with one progress line per run
//! and an overall bar. A failed run does not stop the others; the summary lists it.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::Result;
use indicatif::HumanDuration;
use serde_json::json;

use super::task::{self, Outcome};
use super::{status, SweepDir};
use crate::progress::Progress;

/// What a local sweep did.
#[derive(Debug, Default)]
pub struct Summary {
    /// Runs that ran to the end now.
    pub finished: usize,
    /// Runs that were done before.
    pub already_done: usize,
    /// Runs another process was running (name, who).
    pub busy: Vec<(String, String)>,
    /// Runs that failed (name, error).
    pub failed: Vec<(String, String)>,
}

/// Runs every run of the sweep that is not done, `jobs` at a time.
pub fn run(sweep: &SweepDir, jobs: usize, progress: &Progress) -> Result<Summary> {
    let statuses = status::of_runs(sweep);
    let todo: Vec<usize> = statuses.iter().filter(|s| s.wants_running()).map(|s| s.index).collect();
    let summary = Mutex::new(Summary {
        already_done: statuses.iter().filter(|s| s.state == status::State::Done).count(),
        ..Summary::default()
    });
    for s in statuses.iter().filter(|s| !s.wants_running() && s.state != status::State::Done) {
        summary.lock().expect("summary").busy.push((s.name.clone(), s.detail.clone()));
    }
    let multi = progress.multi();
    let overall = multi.add(progress.bar(statuses.len() as u64, "sweep"));
    overall.set_position(summary.lock().expect("summary").already_done as u64);
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, todo.len().max(1)) {
            scope.spawn(|| {
                while let Some(&index) = todo.get(next.fetch_add(1, Ordering::SeqCst)) {
                    let run = &sweep.plan().runs[index];
                    let line = multi.insert_before(&overall, progress.line(&run.name));
                    line.set_message("starting");
                    progress.event("sweep_run_started", json!({ "index": index, "run": run.name }));
                    let started = std::time::Instant::now();
                    let outcome = task::run(sweep, index, &|msg| line.set_message(msg.to_string()));
                    let took = HumanDuration(started.elapsed());
                    let mut summary = summary.lock().expect("summary");
                    match outcome {
                        Ok(Outcome::Finished) => {
                            summary.finished += 1;
                            overall.inc(1);
                            line.finish_with_message(format!("done in {took}"));
                            progress.event("sweep_run_done", json!({ "index": index, "run": run.name }));
                        }
                        Ok(Outcome::AlreadyDone) => {
                            summary.already_done += 1;
                            overall.inc(1);
                            line.finish_with_message("done before");
                        }
                        Ok(Outcome::Busy(who)) => {
                            line.finish_with_message(format!("skipped: being run by {who}"));
                            summary.busy.push((run.name.clone(), who));
                        }
                        Err(e) => {
                            let error = format!("{e:#}");
                            line.abandon_with_message(format!("FAILED after {took}: {error}"));
                            progress.event(
                                "sweep_run_failed",
                                json!({ "index": index, "run": run.name, "error": error }),
                            );
                            summary.failed.push((run.name.clone(), error));
                        }
                    }
                }
            });
        }
    });
    overall.finish();
    Ok(summary.into_inner().expect("summary"))
}
