//! The search methods beside SPOS end to end through the CLI: DARTS without shrinking runs
//! search → export with parity and records α per epoch; a DARTS search killed in its method stage
//! resumes to the architecture (and α) of an uninterrupted run; PDARTS runs its stages on an
//! angle-shrunk space; ProxylessNAS on the mobile space takes a latency target and refuses one no
//! child reaches; PDARTS on the DARTS cell space derives a genotype that exports with parity; the
//! DARTS step benchmark reports its α and weight steps.
mod common;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

/// A tiny search with `method` (nb201, 3 edges), without shrinking.
fn args(out: &Path, method: &str) -> Vec<String> {
    let mut a = set(set(tiny(out), "--steps-per-epoch", "4"), "--warmup-epochs", "1");
    a.extend(
        ["--nodes", "3", "--method", method, "--method-epochs", "2", "--shrink", "none", "--quiet"]
            .map(String::from),
    );
    a
}

#[test]
fn darts_without_shrinking_runs_search_to_export_and_records_alpha_per_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("darts");
    ok(args(&out, "darts"));
    assert!(!out.join("supernet").exists(), "--shrink none: no shrinking supernet is trained");
    assert_eq!(json(&out.join("run.json"))["settings"]["search"]["method"], "darts");
    let method = json(&out.join("method.json"));
    let history = method["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    for epoch in history {
        let probs = epoch["probs"].as_object().unwrap();
        assert_eq!(probs.len(), 3, "one entry per choice point");
        for ops in probs.values() {
            let sum: f64 = ops.as_object().unwrap().values().map(|v| v.as_f64().unwrap()).sum();
            assert!((sum - 1.0).abs() < 1e-5, "softmax(α) sums to 1: {ops}");
        }
    }
    let arch = json(&out.join("arch.json"));
    assert_eq!(method["derived"], arch["arch"]);
    assert!(!arch["arch"].as_str().unwrap().contains("none"), "DARTS never derives none on nb201");
    ok([
        "--quiet",
        "export",
        s(&out),
        "--latency-session-ms",
        "0",
        "--latency-runs",
        "3",
        "--warmup",
        "1",
        "--threads",
        "1",
    ]);
    let report = json(&out.join("report.json"));
    assert_eq!(report["parity"]["passed"], true, "{}", report["parity"]);
}

fn state_of(dir: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(dir.join("method/state.json")).ok()?;
    serde_json::from_str(&text).ok()
}

#[test]
fn a_killed_darts_search_resumes_to_the_uninterrupted_architecture() {
    let dir = tempfile::tempdir().unwrap();
    let run = |out: &Path| set(set(args(out, "darts"), "--method-epochs", "4"), "--retrain-epochs", "1");
    let whole = dir.path().join("whole");
    ok(run(&whole));

    let killed = dir.path().join("killed");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pwsnas"))
        .args(run(&killed))
        .env("PWSNAS_HOME", test_home())
        .spawn()
        .unwrap();
    let epochs = |d: &Path| state_of(d).map_or(0, |s| s["history"].as_array().unwrap().len());
    let start = Instant::now();
    while epochs(&killed) < 1 && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let at_kill = epochs(&killed);
    assert!((1..4).contains(&at_kill), "killed after epoch {at_kill}: the method should have been cut short");
    assert!(!killed.join("arch.json").exists());

    ok(run(&killed));
    let (a, b) = (json(&whole.join("method.json")), json(&killed.join("method.json")));
    assert_eq!(a["derived"], b["derived"]);
    let probs = |m: &serde_json::Value| {
        m["history"].as_array().unwrap().iter().map(|e| e["probs"].clone()).collect::<Vec<_>>()
    };
    assert_eq!(probs(&a), probs(&b), "the α trajectory of the resumed run is the uninterrupted one");
    assert_eq!(json(&whole.join("arch.json"))["arch"], json(&killed.join("arch.json"))["arch"]);
}

#[test]
fn pdarts_runs_its_stages_on_an_angle_shrunk_space() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pdarts");
    let mut a = set(set(args(&out, "pdarts"), "--shrink", "angle"), "--method-epochs", "1");
    a.extend(["--target-size", "30"].map(String::from));
    ok(a);
    let shrunk = json(&out.join("space.json"));
    let method = json(&out.join("method.json"));
    let history = method["history"].as_array().unwrap();
    assert_eq!(history.iter().map(|e| e["stage"].as_u64().unwrap()).collect::<Vec<_>>(), [0, 1]);
    // Stage 0 runs on the shrunk space, stage 1 keeps at most 3 ops per choice point of it.
    let first = history[0]["probs"].as_object().unwrap();
    for (cp, ops) in first {
        let allowed = shrunk["choices"][cp].as_array().unwrap();
        assert_eq!(ops.as_object().unwrap().len(), allowed.len(), "{cp}: {ops} over {allowed:?}");
    }
    assert!(history[1]["probs"].as_object().unwrap().values().all(|o| o.as_object().unwrap().len() <= 3));
    let arch = method["derived"].as_str().unwrap();
    assert!(arch.matches("skip_connect").count() <= 2, "{arch}");
}

#[test]
fn proxyless_on_mobile_trains_towards_a_latency_target_and_refuses_one_no_child_reaches() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mobile.toml");
    std::fs::write(
        &config,
        r#"
space = "mobile"
data = "synthetic:classes=4,channels=3,size=8,train=256,test=64"
[space_params]
stem_channels = 8
head_channels = 16
stages = [{ channels = 8, repeats = 2, stride = 1 }, { channels = 16, repeats = 2, stride = 2 }]
[shrink]
metric = "none"
[search]
method = "proxyless"
val_images = 32
[gradient]
epochs = 2
batch_size = 32
steps_per_epoch = 5
alpha_every = 2
[retrain]
epochs = 1
batch_size = 32
"#,
    )
    .unwrap();
    let run = |out: &Path, target: &str| {
        pwsnas_in(
            &test_home(),
            [
                "search",
                "--config",
                s(&config),
                "--out",
                s(out),
                "--device",
                "cpu",
                "--quiet",
                "--target-latency-ms",
                target,
            ],
        )
    };
    let out = dir.path().join("fast");
    let got = run(&out, "100");
    assert!(got.status.success(), "{}", String::from_utf8_lossy(&got.stderr));
    let method = json(&out.join("method.json"));
    for e in method["history"].as_array().unwrap() {
        assert!(e["expected_latency_ms"].as_f64().unwrap() > 0.0, "{e}");
    }
    let arch = json(&out.join("arch.json"));
    assert_eq!(arch["space"], "mobile");
    assert_eq!(arch["arch"], method["derived"]);

    let refused = dir.path().join("refused");
    let got = run(&refused, "0.000001");
    assert!(!got.status.success());
    let err = String::from_utf8_lossy(&got.stderr);
    assert!(err.contains("gradient.target_latency_ms = 0.000001 is below the fastest child"), "{err}");
    assert!(!refused.join("arch.json").exists());
}

/// PDARTS on the DARTS cell space (with `--shrink none`): both stages train a weighted supernet
/// over every edge, the derived child is a genotype (DARTS's rule: two strongest inputs per node)
/// whose normal cell keeps at most `max_skip` skips, and it retrains and exports with parity.
#[test]
fn pdarts_on_the_darts_space_derives_a_genotype_that_exports_with_parity() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("darts.toml");
    std::fs::write(
        &config,
        r#"
space = "darts"
data = "synthetic:classes=4,channels=1,size=8,train=128,test=64"
[space_params]
channels = 2
layers = 3
[shrink]
metric = "none"
[search]
method = "pdarts"
val_images = 32
[gradient]
epochs = 2
batch_size = 32
steps_per_epoch = 2
pdarts_keep = [2]
pdarts_depth = [3, 4]
pdarts_weights_only_epochs = 1
max_skip = 0
[retrain]
epochs = 1
batch_size = 32
"#,
    )
    .unwrap();
    let out = dir.path().join("run");
    ok(["search", "--config", s(&config), "--out", s(&out), "--device", "cpu", "--quiet"]);
    let method = json(&out.join("method.json"));
    let history = method["history"].as_array().unwrap();
    let stages: Vec<_> = history.iter().map(|e| e["stage"].as_u64().unwrap()).collect();
    assert_eq!(stages, [0, 0, 1, 1]);
    // The first epoch of each stage trains the weights only. Skip-connect dropout follows PDARTS's
    // `train_search.py`: rate r = 0.1, then 0.7 (linear over the stages); r·(E−e−1)/E in the
    // weights-only epoch (E = 2, e = 0), then r·exp(−0.2·(e−1)) = r.
    let alpha_steps: Vec<_> = history.iter().map(|e| e["alpha_steps"].as_u64().unwrap()).collect();
    assert_eq!((alpha_steps[0], alpha_steps[2]), (0, 0), "{alpha_steps:?}");
    assert!(alpha_steps[1] > 0 && alpha_steps[3] > 0, "{alpha_steps:?}");
    let drop: Vec<_> = history.iter().map(|e| e["skip_dropout"].as_f64().unwrap()).collect();
    let expected = [0.05, 0.1, 0.35, 0.7];
    assert!(drop.iter().zip(expected).all(|(d, e)| (d - e).abs() < 1e-9), "{drop:?}");
    let first = history[0]["probs"].as_object().unwrap();
    assert_eq!(first.len(), 28, "one α row per edge of both cells");
    assert!(first.values().all(|o| o.as_object().unwrap().len() == 7), "every op but none");
    assert!(history[2]["probs"].as_object().unwrap().values().all(|o| o.as_object().unwrap().len() == 2));
    let arch = json(&out.join("arch.json"))["arch"].as_str().unwrap().to_string();
    assert_eq!(method["derived"], arch.as_str());
    // Text of a genotype: 8 (op, input) pairs per cell; no skip in the normal cell (max_skip = 0).
    let (normal, reduce) = arch.split_once("reduce=").unwrap();
    assert!(arch.starts_with("Genotype(normal=[("), "{arch}");
    assert_eq!((normal.matches("', ").count(), reduce.matches("', ").count()), (8, 8), "{arch}");
    assert!(!normal.contains("skip_connect"), "{arch}");
    export_quickly(&out);
    let report = json(&out.join("report.json"));
    assert_eq!(report["parity"]["passed"], true, "{}", report["parity"]);
    assert_eq!(report["arch"], arch.as_str());
}

/// `--darts-order 2` (DARTS's unrolled step) runs search → export and trains another α than the
/// first-order step; an order other than 1 or 2, or order 2 with a method that is not DARTS's, is
/// refused naming the setting.
#[test]
fn second_order_darts_runs_to_export_and_bad_orders_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first");
    let second = dir.path().join("second");
    ok(args(&first, "darts"));
    ok(set(args(&second, "darts"), "--darts-order", "2"));
    assert_eq!(json(&second.join("run.json"))["settings"]["gradient"]["darts_order"], 2);
    assert!(json(&first.join("run.json"))["settings"]["gradient"].get("darts_order").is_none());
    let probs = |d: &Path| json(&d.join("method.json"))["history"][1]["probs"].clone();
    assert_ne!(probs(&first), probs(&second), "the unrolled step moves α differently");
    export_quickly(&second);
    assert_eq!(json(&second.join("report.json"))["parity"]["passed"], true);
    for (method, order, expected) in [
        ("darts", "3", "expected 1 (first order) or 2 (DARTS's unrolled step)"),
        ("proxyless", "2", "for search.method = darts or pdarts, not proxyless"),
    ] {
        let out = dir.path().join(format!("bad-{method}"));
        let err = fails(set(args(&out, method), "--darts-order", order));
        assert!(err.contains("gradient.darts_order") && err.contains(expected), "{err}");
        assert!(!out.exists());
    }
}

/// `pwsnas bench darts-step` runs the method's own α and weight steps and reports their times, which
/// add up to the step's.
#[test]
fn the_darts_step_benchmark_times_the_alpha_and_weight_steps() {
    let out = ok([
        "--json",
        "bench",
        "darts-step",
        "--channels",
        "2",
        "--cells",
        "1",
        "--nodes",
        "3",
        "--input-size",
        "8",
        "--batch-size",
        "4",
        "--steps",
        "3",
        "--warmup",
        "1",
    ]);
    let r: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!((r["bench"].as_str(), r["steps"].as_u64()), (Some("darts-step"), Some(3)), "{r}");
    let (a, w, total) = (
        r["alpha_ms"].as_f64().unwrap(),
        r["weight_ms"].as_f64().unwrap(),
        r["ms_per_step"].as_f64().unwrap(),
    );
    assert!(a > 0.0 && w > 0.0 && (a + w - total).abs() < 1e-6 * total.max(1.0), "{r}");
}
