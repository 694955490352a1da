//! One run of a sweep, start to end: `pwsnas search` then `pwsnas export`, as child processes of
//! this binary with the run's config, threads and device. The same function runs the runs of a
//! local sweep and each Slurm or Kubernetes task (`pwsnas sweep task DIR`).
//!
//! Idempotent and resumable: a run whose task record says done and whose `report.json` is there
//! is left alone; otherwise the search resumes from the run's checkpoints (every stage of `pwsnas
//! search` is resumable) and the export measures again. The task lock (`tasks/NAME.lock`, an OS
//! file lock that ends with the process) keeps two tasks off one run and tells `sweep status`
//! which runs are running. The task record (`tasks/NAME.json`) says running, done or failed, with
//! the error; a record that says running while nobody holds the lock is a task that was killed.
use std::ffi::OsString;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::plan::PlannedRun;
use super::SweepDir;
use crate::fsutil::{read_json, write_json};
use crate::run::RunDir;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    Running,
    Done,
    Failed,
}

/// `tasks/NAME.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TaskRecord {
    pub state: TaskState,
    /// 1 for the first try of the run, one more for each later try.
    pub attempt: u32,
    pub host: String,
    pub pid: u32,
    /// The Slurm array task (`slurm 1234_5`) or Kubernetes pod that ran it, if any.
    pub scheduler: Option<String>,
    /// Seconds since the Unix epoch.
    pub started_at: u64,
    pub finished_at: Option<u64>,
    /// `search` or `export`: the step running, or the one that failed.
    pub step: String,
    /// What the run had done before this try (absent when it started from nothing).
    pub resumed_from: Option<String>,
    pub error: Option<String>,
}

impl TaskRecord {
    pub fn read(path: &Path) -> Option<TaskRecord> {
        read_json(path).ok()
    }
}

/// What a task did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The run was done before: nothing ran.
    AlreadyDone,
    /// The run ran to the end now.
    Finished,
    /// Another process is running it (who, in words).
    Busy(String),
}

/// Whether a run is done: its record says so and its result is there (`report.json`, or for a run
/// that ends with its search, `arch.json`).
pub fn is_done(sweep: &SweepDir, run: &PlannedRun) -> bool {
    let dir = sweep.run_dir(run);
    let result = if ends_with_search(&dir) { "arch.json" } else { "report.json" };
    TaskRecord::read(&sweep.record_path(run)).is_some_and(|r| r.state == TaskState::Done)
        && dir.join(result).exists()
}

/// Whether the run in `dir` ends with its search (`retrain.epochs = 0`, a run judged by a
/// benchmark table): nothing is retrained, so there is nothing to export.
pub fn ends_with_search(dir: &Path) -> bool {
    RunDir::open(dir).is_ok_and(|r| r.info.settings.retrain.epochs == 0)
}

/// Who holds a run's task lock (`pid N on HOST`), when a process does.
pub fn holder(sweep: &SweepDir, run: &PlannedRun) -> Option<String> {
    let path = sweep.lock_path(run);
    let mut file = std::fs::OpenOptions::new().read(true).write(true).open(&path).ok()?;
    if file.try_lock().is_ok() {
        return None;
    }
    let mut who = String::new();
    let _ = file.read_to_string(&mut who);
    Some(if who.trim().is_empty() { "another process".into() } else { who.trim().to_string() })
}

/// Runs (or resumes) run `index` of the sweep; `on_event` gets a short line at each step
/// (supernet epoch, shrink round, ...). A failed run is recorded as failed and returned as an error.
pub fn run(sweep: &SweepDir, index: usize, on_event: &(dyn Fn(&str) + Sync)) -> Result<Outcome> {
    let run = sweep.plan().run_at(index)?;
    let lock_path = sweep.lock_path(run);
    std::fs::create_dir_all(lock_path.parent().expect("tasks/ folder"))?;
    let mut lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("cannot open {}", lock_path.display()))?;
    if lock.try_lock().is_err() {
        return Ok(Outcome::Busy(holder(sweep, run).unwrap_or_else(|| "another process".into())));
    }
    if is_done(sweep, run) {
        return Ok(Outcome::AlreadyDone);
    }
    let host = hostname();
    lock.set_len(0)?;
    write!(lock, "pid {} on {host}", std::process::id())?;

    let record_path = sweep.record_path(run);
    let previous = TaskRecord::read(&record_path);
    let mut record = TaskRecord {
        state: TaskState::Running,
        attempt: previous.map_or(1, |p| p.attempt + 1),
        host,
        pid: std::process::id(),
        scheduler: scheduler(),
        started_at: crate::run::now(),
        finished_at: None,
        step: "search".into(),
        resumed_from: resume_point(&sweep.run_dir(run)),
        error: None,
    };
    write_json(&record_path, &record)?;

    let log_path = sweep.log_path(run);
    std::fs::create_dir_all(log_path.parent().expect("logs/ folder"))?;
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    writeln!(
        log,
        "== pwsnas sweep task {index} ({}), attempt {}, {}{}",
        run.name,
        record.attempt,
        record.host,
        record.resumed_from.as_deref().map(|r| format!(", continuing: {r}")).unwrap_or_default()
    )?;
    if let Some(r) = &record.resumed_from {
        on_event(&format!("continuing: {r}"));
    }

    let opts = &sweep.plan().run;
    let out = sweep.run_dir(run);
    let search: Vec<OsString> = vec![
        "search".into(),
        "--config".into(),
        sweep.config_path(run).into(),
        "--out".into(),
        out.clone().into(),
        "--device".into(),
        opts.device.clone().into(),
    ];
    let export: Vec<OsString> = vec![
        "export".into(),
        out.into(),
        "--threads".into(),
        opts.threads.to_string().into(),
        "--latency-runs".into(),
        opts.latency_runs.to_string().into(),
        "--warmup".into(),
        opts.latency_warmup.to_string().into(),
        "--latency-sessions".into(),
        opts.latency_sessions.to_string().into(),
        "--latency-session-ms".into(),
        opts.latency_session_ms.to_string().into(),
    ];
    for (step, args) in [("search", search), ("export", export)] {
        if step == "export" && ends_with_search(&sweep.run_dir(run)) {
            writeln!(log, "== no export: the run ends with its search (retrain.epochs = 0)")?;
            continue;
        }
        record.step = step.into();
        write_json(&record_path, &record)?;
        if let Err(e) = child(&args, opts.threads, &mut log, &log_path, on_event) {
            record.state = TaskState::Failed;
            record.finished_at = Some(crate::run::now());
            record.error = Some(format!("{e:#}"));
            write_json(&record_path, &record)?;
            bail!("run {} failed in {step}: {e:#} (log: {})", run.name, log_path.display());
        }
    }
    record.state = TaskState::Done;
    record.finished_at = Some(crate::run::now());
    write_json(&record_path, &record)?;
    writeln!(log, "== done")?;
    Ok(Outcome::Finished)
}

/// Runs this binary with `args` (events on stdout, into the log and `on_event`; errors into the log).
fn child(
    args: &[OsString],
    threads: usize,
    log: &mut File,
    log_path: &Path,
    on_event: &(dyn Fn(&str) + Sync),
) -> Result<()> {
    let exe = std::env::current_exe().context("cannot find the pwsnas binary to run the run with")?;
    let start = log.seek(SeekFrom::End(0))?;
    let mut child = Command::new(&exe)
        .arg("--json")
        .args(args)
        .env("OMP_NUM_THREADS", threads.to_string())
        .env("MKL_NUM_THREADS", threads.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log.try_clone()?)
        .spawn()
        .with_context(|| format!("cannot start {}", exe.display()))?;
    let stdout = child.stdout.take().expect("piped stdout");
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        writeln!(log, "{line}")?;
        if let Some(msg) = event_message(&line) {
            on_event(&msg);
        }
    }
    let status = child.wait()?;
    if status.success() {
        return Ok(());
    }
    let mut text = String::new();
    let mut f = File::open(log_path)?;
    f.seek(SeekFrom::Start(start))?;
    f.read_to_string(&mut text)?;
    let error = text.lines().rev().find_map(|l| l.strip_prefix("error: ")).map(str::to_string);
    Err(anyhow!(error.unwrap_or_else(|| format!("pwsnas {} ended with {status}", args[0].to_string_lossy()))))
}

/// A short line for a stage event of a child, or `None` for events not worth a line.
fn event_message(line: &str) -> Option<String> {
    let v: Value = serde_json::from_str(line).ok()?;
    let n = |k: &str| v[k].as_u64();
    Some(match v["event"].as_str()? {
        "supernet_epoch" => format!("supernet epoch {} (loss {:.3})", n("epoch")? + 1, v["loss"].as_f64()?),
        "shrink_round" => format!("shrink round {}", n("round")? + 1),
        "search_generation" => format!("search generation {}", n("generation")? + 1),
        "retrain_epoch" => format!("retrain epoch {}", n("epoch")? + 1),
        "search_finished" => format!("retrained: test accuracy {:.2}%", v["test_accuracy"].as_f64()? * 100.0),
        "export_done" => format!(
            "exported: ONNX Runtime accuracy {:.2}%, {:.4} ms at batch 1",
            v["accuracy"]["ort"].as_f64()? * 100.0,
            v["latency_p50_ms"]["ort_batch1"].as_f64()?
        ),
        _ => return None,
    })
}

/// What a run directory holds already, in words (`None` when there is no run yet).
fn resume_point(dir: &Path) -> Option<String> {
    let run = RunDir::open(dir).ok()?;
    let done: Vec<&str> =
        crate::run::Stage::ALL.iter().filter(|s| run.is_done(**s)).map(|s| s.name()).collect();
    let state: Option<Value> = read_json(&run.supernet_dir().join("state.json")).ok();
    let epoch = state.as_ref().and_then(|s| s["epoch"].as_u64()).unwrap_or(0);
    Some(format!(
        "stages done: {}; supernet checkpoint after epoch {epoch}",
        if done.is_empty() { "none".into() } else { done.join(", ") }
    ))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown host".into())
}

/// The Slurm array task or Kubernetes pod this process runs as.
fn scheduler() -> Option<String> {
    let var = |k: &str| std::env::var(k).ok();
    if let (Some(job), Some(task)) = (var("SLURM_ARRAY_JOB_ID"), var("SLURM_ARRAY_TASK_ID")) {
        return Some(format!("slurm {job}_{task}"));
    }
    var("JOB_COMPLETION_INDEX").map(|_| format!("kubernetes pod {}", var("HOSTNAME").unwrap_or_default()))
}

/// The task index of `pwsnas sweep task`: `--index`, else the scheduler's variable.
pub fn index_from_env(flag: Option<usize>) -> Result<usize> {
    if let Some(i) = flag {
        return Ok(i);
    }
    for var in ["SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"] {
        if let Ok(v) = std::env::var(var) {
            return v.trim().parse().map_err(|_| anyhow!("{var}='{v}' is not a task index"));
        }
    }
    bail!(
        "no task index: pass --index N, or run as a Slurm array task (SLURM_ARRAY_TASK_ID) or a Kubernetes Indexed Job (JOB_COMPLETION_INDEX)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_events_become_short_lines() {
        let line = |s: &str| event_message(s);
        assert_eq!(
            line(r#"{"event":"supernet_epoch","epoch":1,"loss":1.23456}"#).as_deref(),
            Some("supernet epoch 2 (loss 1.235)")
        );
        assert_eq!(
            line(
                r#"{"event":"export_done","accuracy":{"ort":0.8125},"latency_p50_ms":{"ort_batch1":0.0123}}"#
            )
            .as_deref(),
            Some("exported: ONNX Runtime accuracy 81.25%, 0.0123 ms at batch 1")
        );
        assert_eq!(line(r#"{"event":"search_done"}"#), None);
        assert_eq!(line("not json"), None);
    }
}
