//! `pwsnas fidelity`: the ground truth (parallel workers, resume per child, refusal of mixed
//! settings) and the ranking study over `--score-only --exhaustive` runs, end to end on an 8-child
//! space with synthetic data.
mod common;
use common::*;
use std::path::Path;

/// nb201 with 3 nodes (3 edges) and 2 ops per edge: 8 children, 6 candidates.
const CONFIG: &str = r#"
space = "nb201"
data = "synthetic:classes=4,channels=1,size=8,train=384,test=96"
seed = 3

[space_params]
nodes = 3
channels = 4
cells_per_stage = 1
ops = ["skip_connect", "nor_conv_3x3"]

[supernet]
epochs = 1
batch_size = 32

[shrink]
val_images = 40

[retrain]
epochs = 1
batch_size = 32
steps_per_epoch = 4
"#;

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Trains the truth of [`CONFIG`] into `out` with two local workers; returns the config's path.
fn local_truth(dir: &Path, out: &Path) -> std::path::PathBuf {
    let config = dir.join("fidelity.toml");
    std::fs::write(&config, CONFIG).unwrap();
    ok([
        "--quiet",
        "fidelity",
        "truth",
        "--out",
        s(out),
        "--config",
        s(&config),
        "--jobs",
        "2",
        "--threads",
        "1",
        "--device",
        "cpu",
    ]);
    config
}

#[test]
fn truth_and_report_run_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let truth = dir.path().join("truth");
    let config = local_truth(dir.path(), &truth);
    let children = lines(&truth.join("truth.jsonl"));
    assert_eq!(children.len(), 8);
    for (i, c) in children.iter().enumerate() {
        assert_eq!(c["index"], i);
        let acc = c["test_accuracy"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&acc), "{c}");
        assert_eq!(c["test_images"], 96);
    }
    // Both workers wrote logs; the children differ (not one accuracy copied 8 times).
    assert!(truth.join("logs/worker-0.log").exists() && truth.join("logs/worker-1.log").exists());
    let distinct: std::collections::BTreeSet<String> =
        children.iter().map(|c| c["test_accuracy"].to_string()).collect();
    assert!(distinct.len() > 1, "every child has the same accuracy: {distinct:?}");

    // Resume per child: a removed child is trained again (same seed, same result), the others kept.
    let kept = truth.join("children/00001.json");
    let before = std::fs::metadata(&kept).unwrap().modified().unwrap();
    let removed = truth.join("children/00005.json");
    let old = json(&removed);
    std::fs::remove_file(&removed).unwrap();
    ok(["--quiet", "fidelity", "truth", "--out", s(&truth), "--device", "cpu"]);
    let again = json(&removed);
    assert_eq!(again["arch"], old["arch"]);
    assert_eq!(again["test_accuracy"], old["test_accuracy"], "one seed gives one truth");
    assert_eq!(std::fs::metadata(&kept).unwrap().modified().unwrap(), before);
    assert_eq!(lines(&truth.join("truth.jsonl")).len(), 8);

    // Other settings on the same folder are refused (they would mix two truths).
    let err = fails(["fidelity", "truth", "--out", s(&truth), "--seed", "4", "--device", "cpu"]);
    assert!(err.contains("other settings"), "{err}");

    // Two supernet seeds scored at epoch 1, and seed 0 again at epoch 2.
    let mut runs = Vec::new();
    for (seed, epochs) in [("0", "1"), ("1", "1"), ("0", "2")] {
        let run = dir.path().join(format!("s{seed}-e{epochs}"));
        ok([
            "--quiet",
            "supernet",
            "--out",
            s(&run),
            "--config",
            s(&config),
            "--seed",
            seed,
            "--warmup-epochs",
            epochs,
            "--device",
            "cpu",
        ]);
        ok(["--quiet", "shrink", "--run", s(&run), "--score-only", "--exhaustive", "--device", "cpu"]);
        runs.push(run);
    }
    let out = dir.path().join("study");
    let mut args: Vec<String> =
        ["fidelity", "report", "--truth", s(&truth), "--out", s(&out)].map(String::from).to_vec();
    args.extend(runs.iter().map(|r| s(r).to_string()));
    let md = ok(&args);
    assert!(md.contains("Operator level"), "{md}");
    let study = json(&out.join("fidelity.json"));
    assert_eq!(study["children"], 8);
    assert_eq!(study["candidates"], 6);
    assert_eq!(study["drop"], 4);
    assert_eq!(study["best"], 2);
    assert_eq!(study["epochs"], serde_json::json!([1, 2]));
    let metrics: Vec<&str> =
        study["metrics"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
    for m in ["angle", "angle_full", "accuracy", "magnitude", "random", "angle×2"] {
        assert!(metrics.contains(&m), "{m} missing from {metrics:?}");
    }
    for cell in study["cells"].as_array().unwrap() {
        for key in ["arch_tau", "op_tau", "arch_rho", "op_rho"] {
            if let Some(v) = cell[key]["mean"].as_f64() {
                assert!((-1.0..=1.0).contains(&v), "{key} of {cell}");
            }
        }
        if let Some(v) = cell["survivors"]["mean"].as_f64() {
            assert!((0.0..=2.0).contains(&v), "{cell}");
        }
    }
    // Epoch 1 has two seeds (mean ± std over both), epoch 2 one.
    let angle_e1 = study["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["metric"] == "angle" && c["epoch"] == 1)
        .unwrap();
    assert_eq!(angle_e1["arch_tau"]["n"], 2);
    assert!(out.join("fidelity.md").exists());
    let html = std::fs::read_to_string(out.join("fidelity.html")).unwrap();
    assert_eq!(html.matches("<svg").count(), 2, "one chart per level");

    // A run not scored with --score-only --exhaustive is refused with the command that fixes it.
    let plain = dir.path().join("plain");
    ok(["--quiet", "supernet", "--out", s(&plain), "--config", s(&config), "--device", "cpu"]);
    let err = fails(["fidelity", "report", "--truth", s(&truth), "--out", s(&out), s(&plain)]);
    assert!(err.contains("--score-only --exhaustive"), "{err}");
}

#[test]
fn a_truth_through_a_slurm_job_array_equals_the_local_one() {
    if !slurm_cluster() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("local");
    let config = local_truth(dir.path(), &local);
    let slurm = dir.path().join("slurm");
    let submitted = ok([
        "--json",
        "fidelity",
        "truth",
        "--out",
        s(&slurm),
        "--config",
        s(&config),
        "--jobs",
        "2",
        "--threads",
        "1",
        "--device",
        "cpu",
        "--slurm",
    ]);
    let event: serde_json::Value =
        submitted.lines().find_map(|l| serde_json::from_str(l).ok()).expect("an event");
    assert_eq!(event["event"], "truth_submitted");
    let job = event["job_id"].as_str().unwrap().to_string();
    let script = std::fs::read_to_string(slurm.join("slurm/truth.sbatch")).unwrap();
    assert!(script.contains("#SBATCH --array=0-1"), "{script}");
    wait_until("the truth's job array", std::time::Duration::from_secs(600), || !queued(&job));
    // Both array tasks ran as workers; collecting trains nothing more.
    assert!(slurm.join("logs/worker-0.log").exists() && slurm.join("logs/worker-1.log").exists());
    let collected = ok(["--json", "fidelity", "truth", "--out", s(&slurm), "--device", "cpu"]);
    assert!(!collected.contains("truth_child"), "every child was trained by Slurm: {collected}");
    let strip = |v: Vec<serde_json::Value>| -> Vec<(String, String)> {
        v.iter().map(|c| (c["arch"].to_string(), c["test_accuracy"].to_string())).collect()
    };
    assert_eq!(strip(lines(&slurm.join("truth.jsonl"))), strip(lines(&local.join("truth.jsonl"))));
}
