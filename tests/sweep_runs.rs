//! A tiny sweep (4 runs: shrink none/angle × 2 seeds, synthetic data) run for real: one run as a
//! Kubernetes pod runs it (`JOB_COMPLETION_INDEX`), the others locally with `--jobs 2`, a rerun
//! that does nothing, and the same sweep through a real Slurm (`sbatch` job array) with one task
//! cancelled mid-run and the sweep resubmitted; both give the same report.
//!
//! The Slurm part needs a cluster: `cargo xtask test` brings one up (and sets
//! `PWSNAS_REQUIRE_SLURM`, which makes a missing cluster a failure); plain `cargo test` without
//! one skips it, saying so.
mod common;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const PLAN: &str = r#"
[base]
data = "synthetic:classes=4,channels=1,size=8,train=384,test=96"
[base.space_params]
channels = 4
cells_per_stage = 1
[base.supernet]
epochs = 3
batch_size = 32
[base.shrink]
samples_per_op = 8
[base.search]
population = 6
generations = 2
top_k = 3
val_images = 40
[base.retrain]
epochs = 1
batch_size = 32

[grid]
"shrink.metric" = ["none", "angle"]
seed = [0, 1]

[run]
device = "cpu"
latency_runs = 20
latency_warmup = 3
latency_session_ms = 0
"#;

fn pwsnas_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pwsnas"))
        .args(args)
        .envs(env.iter().copied())
        .env("PWSNAS_HOME", test_home())
        .output()
        .expect("pwsnas runs")
}

fn succeeds(out: Output) -> String {
    assert!(out.status.success(), "failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn record(sweep: &Path, run: &str) -> Value {
    json(&sweep.join("tasks").join(format!("{run}.json")))
}

const RUN0: &str = "shrink.metric=none,seed=0";

/// The local sweep, made once for every test of this file.
fn local_sweep() -> &'static Path {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, sweep) = DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let plan = dir.path().join("plan.toml");
        std::fs::write(&plan, PLAN).unwrap();
        let sweep = dir.path().join("local");
        // Run 0 as pod 0 of the Kubernetes Indexed Job would: the manifest first, then the task.
        ok(["sweep", s(&plan), "--out", s(&sweep), "--k8s"]);
        succeeds(pwsnas_env(&["sweep", "task", s(&sweep)], &[("JOB_COMPLETION_INDEX", "0")]));
        assert_eq!(record(&sweep, RUN0)["state"], "done");
        let started = Instant::now();
        ok(["sweep", s(&plan), "--out", s(&sweep), "--jobs", "2"]);
        eprintln!("local sweep: {:.1} s for 3 runs with --jobs 2", started.elapsed().as_secs_f64());
        (dir, sweep)
    });
    sweep
}

/// The figures of a report that seeds fix (latencies are measurements and vary).
fn seeded_figures(report: &Value) -> Value {
    let groups: Vec<Value> = report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            serde_json::json!({ "values": g["values"], "runs": g["runs"], "seeds": g["seeds"],
                "accuracy_ort": g["accuracy_ort"], "params": g["params"], "flops": g["flops"] })
        })
        .collect();
    let runs: Vec<Value> = report["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| serde_json::json!({ "name": r["name"], "arch": r["arch"], "accuracy_ort": r["accuracy_ort"],
                                     "accuracy_libtorch": r["accuracy_libtorch"], "params": r["params"], "flops": r["flops"] }))
        .collect();
    let gains: Vec<Value> = report["gains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| serde_json::json!({ "metric": g["metric"], "pairs": g["pairs"], "accuracy_pp": g["accuracy_pp"] }))
        .collect();
    serde_json::json!({ "groups": groups, "runs": runs, "gains": gains })
}

#[test]
fn a_local_sweep_runs_each_run_once_and_reports_means_over_seeds() {
    let sweep = local_sweep();
    assert_eq!(record(sweep, RUN0)["attempt"], 1, "the run the pod finished was not run again");
    let report = json(&sweep.join("report.json"));
    assert_eq!(report["runs_total"], 4);
    assert_eq!(report["missing"].as_array().unwrap().len(), 0);
    let groups = report["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "one group per shrink.metric");
    for (g, metric) in groups.iter().zip(["none", "angle"]) {
        assert_eq!(g["values"], serde_json::json!({ "shrink.metric": metric }));
        assert_eq!(g["runs"], 2);
        assert_eq!(g["seeds"], serde_json::json!([0, 1]));
        for figure in ["accuracy_ort", "params", "flops", "latency_p50_ms"] {
            assert!(g[figure]["mean"].as_f64().unwrap() > 0.0, "{figure}: {g}");
            assert!(g[figure]["std"].as_f64().unwrap() >= 0.0, "{figure}: {g}");
        }
    }
    // Each group's mean is the mean of its runs' report.json figures.
    let acc = |run: &str| {
        json(&sweep.join("runs").join(run).join("report.json"))["accuracy"]["ort"].as_f64().unwrap()
    };
    let mean = (acc("shrink.metric=angle,seed=0") + acc("shrink.metric=angle,seed=1")) / 2.0;
    assert!((groups[1]["accuracy_ort"]["mean"].as_f64().unwrap() - mean).abs() < 1e-12);
    let gains = report["gains"].as_array().unwrap();
    assert_eq!(gains.len(), 1);
    assert_eq!((gains[0]["metric"].as_str(), gains[0]["pairs"].as_u64()), (Some("angle"), Some(2)));
    let paired = ((acc("shrink.metric=angle,seed=0") - acc(RUN0))
        + (acc("shrink.metric=angle,seed=1") - acc("shrink.metric=none,seed=1")))
        / 2.0
        * 100.0;
    assert!((gains[0]["accuracy_pp"]["mean"].as_f64().unwrap() - paired).abs() < 1e-9);
    let md = std::fs::read_to_string(sweep.join("report.md")).unwrap();
    assert!(md.contains("| shrink.metric | runs | acc. ORT (%) |") && md.contains("| angle | 2 | "), "{md}");
    let csv = std::fs::read_to_string(sweep.join("report.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    let html = std::fs::read_to_string(sweep.join("report.html")).unwrap();
    assert_eq!(html.matches("<svg").count(), 1);
    assert!(html.contains("angle/1") && html.contains("Pareto-optimal run"));

    // A finished sweep run again does nothing.
    let before: Vec<Value> = ["shrink.metric=angle,seed=1", RUN0].iter().map(|r| record(sweep, r)).collect();
    let plan = sweep.parent().unwrap().join("plan.toml");
    ok(["sweep", s(&plan), "--out", s(sweep), "--jobs", "2"]);
    let after: Vec<Value> = ["shrink.metric=angle,seed=1", RUN0].iter().map(|r| record(sweep, r)).collect();
    assert_eq!(before, after, "no run ran again");
    let status = ok(["sweep", "status", s(sweep)]);
    assert!(status.contains("4 runs: 4 done, 0 running, 0 failed, 0 pending"), "{status}");
}

fn supernet_epoch(run: &Path) -> u64 {
    std::fs::read_to_string(run.join("supernet/state.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| v["epoch"].as_u64())
        .unwrap_or(0)
}

#[test]
fn a_slurm_sweep_with_a_cancelled_task_resubmitted_gives_the_local_report() {
    if !slurm_cluster() {
        return;
    }
    let local = local_sweep();
    let dir = tempfile::tempdir().unwrap();
    let plan = local.parent().unwrap().join("plan.toml");
    let sweep = dir.path().join("slurm");
    let jobs = |sweep: &Path| json(&sweep.join("slurm/jobs.json"));

    ok(["sweep", s(&plan), "--out", s(&sweep), "--slurm"]);
    let first = jobs(&sweep)[0]["job_id"].as_str().unwrap().to_string();
    assert_eq!(jobs(&sweep)[0]["array"], "0-3");

    // Cancel task 0 once its supernet has a checkpoint, before the run is over.
    let run0 = sweep.join("runs").join(RUN0);
    wait_until("run 0's first supernet checkpoint", Duration::from_secs(600), || supernet_epoch(&run0) >= 1);
    let task0 = format!("{first}_0");
    assert!(Command::new("scancel").arg(&task0).status().unwrap().success());
    wait_until("the cancelled task to leave the queue", Duration::from_secs(120), || !queued(&task0));
    assert!(!run0.join("report.json").exists(), "the task was cancelled before its run finished");
    wait_until("the other tasks", Duration::from_secs(600), || !queued(&first));
    let status = ok(["sweep", "status", s(&sweep)]);
    assert!(status.contains("4 runs: 3 done, 0 running, 1 failed, 0 pending"), "{status}");
    let line = status.lines().find(|l| l.contains(RUN0)).unwrap();
    assert!(line.contains("failed") && line.contains("without finishing"), "{line}");

    // Resubmitting runs only the run that is not done; it continues from its checkpoint.
    ok(["sweep", s(&plan), "--out", s(&sweep), "--slurm"]);
    let second = jobs(&sweep)[1].clone();
    assert_eq!(second["array"], "0", "only the cancelled run is resubmitted");
    let second = second["job_id"].as_str().unwrap().to_string();
    wait_until("the resubmitted task", Duration::from_secs(600), || !queued(&second));
    let status = ok(["sweep", "status", s(&sweep)]);
    assert!(status.contains("4 runs: 4 done"), "{status}");
    let rec = record(&sweep, RUN0);
    assert_eq!(rec["attempt"], 2);
    assert_eq!(rec["scheduler"], format!("slurm {second}_0"));
    let resumed = rec["resumed_from"].as_str().unwrap();
    let epoch: u64 = resumed.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(epoch >= 1 && resumed.contains("supernet checkpoint after epoch"), "{resumed}");
    ok(["sweep", s(&plan), "--out", s(&sweep), "--slurm"]);
    assert_eq!(jobs(&sweep).as_array().unwrap().len(), 2, "a finished sweep submits nothing");

    ok(["sweep", "report", s(&sweep)]);
    let through_slurm = json(&sweep.join("report.json"));
    assert_eq!(seeded_figures(&through_slurm), seeded_figures(&json(&local.join("report.json"))));
}
