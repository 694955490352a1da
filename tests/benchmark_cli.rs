//! Benchmark tables in use (`--benchmark`, `pwsnas benchmark lookup`, `fidelity report --truth
//! TABLE`, a sweep judged by the benchmark without retraining), on tables the tests write for the
//! 125-cell space (nb201 with 3 nodes): never the shared NAS-Bench-201 file.
mod common;
use std::path::{Path, PathBuf};

use common::*;
use pwsnas_models::{Nb201Params, Space, SpaceKind};

/// A complete benchmark table of the 3-node cells, with two columns; a cell's `cifar10-test@12`
/// is 40 + its number of convolutions × 10 + its index / 1000 (distinct values, convs rank high).
fn write_table(dir: &Path) -> (PathBuf, Vec<(String, f64)>) {
    let space = Space::full(SpaceKind::new(Nb201Params { nodes: 3, ..Nb201Params::default() }));
    let mut rows = Vec::new();
    let mut text = String::from("index,arch,cifar10-test@12,cifar10-valid@200\n");
    for (i, arch) in space.enumerate().iter().enumerate() {
        let name = space.format_arch(arch);
        let convs = name.matches("conv").count() as f64;
        let v = 40.0 + convs * 10.0 + i as f64 / 1000.0;
        text += &format!("{i},{name},{v},{}\n", 100.0 - v);
        rows.push((name, v));
    }
    let path = dir.join("bench.csv");
    std::fs::write(&path, text).unwrap();
    (path, rows)
}

fn table_arg(path: &Path) -> String {
    format!("{}#cifar10-test@12", path.display())
}

#[test]
fn a_search_with_a_benchmark_records_every_childs_value_and_the_found_cells_rank() {
    let dir = tempfile::tempdir().unwrap();
    let (table, rows) = write_table(dir.path());
    let out = dir.path().join("run");
    let mut args = set(tiny(&out), "--retrain-epochs", "0");
    args.extend(["--nodes", "3", "--benchmark", &table_arg(&table)].map(String::from));
    let printed = ok(&args);
    assert!(!out.join("retrain").join("result.json").exists(), "retrain.epochs = 0 retrains nothing");
    let arch = json(&out.join("arch.json"));
    let b = &arch["benchmark"];
    let found = arch["arch"].as_str().unwrap();
    let value = rows.iter().find(|(a, _)| a == found).unwrap().1;
    assert_eq!(b["accuracy"].as_f64().unwrap(), value);
    let higher = rows.iter().filter(|(_, v)| *v > value).count();
    assert_eq!(b["rank"].as_u64().unwrap() as usize, higher + 1);
    assert_eq!((b["cells"].as_u64(), b["column"].as_str()), (Some(125), Some("cifar10-test@12")));
    let best = rows.iter().max_by(|a, b| a.1.total_cmp(&b.1)).unwrap();
    assert_eq!(
        (b["best_arch"].as_str().unwrap(), b["best_accuracy"].as_f64().unwrap()),
        (best.0.as_str(), best.1)
    );
    for child in json(&out.join("search.json"))["evaluated"].as_array().unwrap() {
        let name = child["arch"].as_str().unwrap();
        let expected = rows.iter().find(|(a, _)| a == name).unwrap().1;
        assert_eq!(child["benchmark"].as_f64(), Some(expected), "{child}");
    }
    assert!(printed.is_empty() || !printed.contains("panicked"));
    // Such a run has nothing to export, and says why.
    let e = fails(["export", s(&out)]);
    assert!(e.contains("retrain.epochs = 0") && e.contains("pwsnas train --run"), "{e}");
    // The lookup command agrees with the run.
    let line = ok(["benchmark", "lookup", "--table", &table_arg(&table), found]);
    assert!(line.contains(&format!("rank {} of 125", higher + 1)), "{line}");
    let summary = ok(["benchmark", "lookup", "--table", &table_arg(&table)]);
    assert!(summary.contains("125 cells of 3 nodes") && summary.contains(&best.0), "{summary}");
}

#[test]
fn a_benchmark_that_does_not_fit_the_run_is_refused_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let (table, _) = write_table(dir.path());
    let out = dir.path().join("run");
    // The table holds 3-node cells; the run's space has 4 nodes.
    let mut args = tiny(&out);
    args.extend(["--benchmark", &table_arg(&table)].map(String::from));
    let e = fails(&args);
    assert!(e.contains("bench.csv") && e.contains("3-node cells") && e.contains("4 nodes"), "{e}");
    assert!(!out.join("supernet").join("last.safetensors").exists(), "refused before the supernet trained");
    // Several measurement columns and none named; a column that does not exist.
    let mut args = tiny(&out);
    args.extend(["--nodes", "3", "--benchmark", s(&table)].map(String::from));
    let e = fails(&args);
    assert!(e.contains("2 measurement columns") && e.contains("#COLUMN"), "{e}");
    let mut args = tiny(&out);
    args.extend(
        ["--nodes", "3", "--benchmark", &format!("{}#cifar100-test@200", table.display())].map(String::from),
    );
    let e = fails(&args);
    assert!(e.contains("no column `cifar100-test@200`"), "{e}");
    // Another space than nb201.
    let e = fails(["search", "--out", s(&out), "--space", "mobile", "--benchmark", &table_arg(&table)]);
    assert!(e.contains("benchmark tables hold cells of the nb201 space"), "{e}");
}

#[test]
fn the_fidelity_report_takes_a_benchmark_table_as_its_truth() {
    let dir = tempfile::tempdir().unwrap();
    let (table, _) = write_table(dir.path());
    let out = dir.path().join("scored");
    let mut sn = set(tiny(&out), "--warmup-epochs", "1");
    sn[0] = "supernet".into();
    sn.extend(["--nodes", "3"].map(String::from));
    ok(&sn);
    ok(["shrink", "--run", s(&out), "--score-only", "--exhaustive", "--accuracy-children", "30", "--quiet"]);
    let children = json(&out.join("shrink.json"))["children"].as_array().unwrap().clone();
    assert_eq!(children.len(), 125);
    let with_accuracy = children.iter().filter(|c| c.get("accuracy").is_some()).count();
    assert_eq!(with_accuracy, 30, "--accuracy-children 30 measures accuracy on 30 children");
    assert!(children.iter().all(|c| c["angle_pwsnas"].is_number() && c["magnitude"].is_number()));
    let report = dir.path().join("fidelity");
    ok(["fidelity", "report", "--truth", &table_arg(&table), "--out", s(&report), s(&out)]);
    let study = json(&report.join("fidelity.json"));
    assert_eq!(study["children"], 125);
    // The truth is the table's column, as fractions: 40 % to 70 % (0 to 3 convs).
    assert!((study["truth_min"].as_f64().unwrap() - 0.40).abs() < 1e-6, "{}", study["truth_min"]);
    assert!(study["truth_max"].as_f64().unwrap() > 0.70);
    let run = &study["runs"][0];
    let metric =
        |name: &str| run["metrics"].as_array().unwrap().iter().find(|m| m["metric"] == name).cloned();
    // Magnitude follows the number of convolutions closely on this table; every τ is defined.
    for name in ["angle_pwsnas", "magnitude", "accuracy"] {
        let m = metric(name).unwrap_or_else(|| panic!("{name} in {run}"));
        assert!(m["arch_tau"].as_f64().unwrap().abs() <= 1.0, "{m}");
    }
    // A table that does not hold the run's cells is refused, naming a missing one.
    let four = dir.path().join("four.csv");
    let space = Space::full(SpaceKind::new(Nb201Params {
        nodes: 4,
        ops: vec![pwsnas_models::Op::None, pwsnas_models::Op::SkipConnect],
        ..Default::default()
    }));
    let mut text = String::from("arch,acc\n");
    for a in space.enumerate() {
        text += &format!("{},50\n", space.format_arch(&a));
    }
    std::fs::write(&four, text).unwrap();
    let e = fails(["fidelity", "report", "--truth", s(&four), "--out", s(&report), s(&out)]);
    assert!(e.contains("has no child"), "{e}");
}

#[test]
fn a_scoring_round_keeps_the_children_an_interrupted_run_scored() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("scored");
    let mut sn = set(tiny(&out), "--warmup-epochs", "1");
    sn[0] = "supernet".into();
    sn.extend(["--nodes", "3"].map(String::from));
    ok(&sn);
    // What an interrupted round 0 at epoch 1 left: one child, with a score no supernet gives.
    let kept = "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|";
    let partial =
        serde_json::json!({ "round": 0, "epoch": 1, "children": [{ "arch": kept, "angle": 123.0 }] });
    std::fs::write(out.join("shrink-scoring.json"), partial.to_string()).unwrap();
    let printed =
        pwsnas(["shrink", "--run", s(&out), "--score-only", "--exhaustive", "--accuracy-children", "10"]);
    assert!(printed.status.success(), "{}", String::from_utf8_lossy(&printed.stderr));
    assert!(String::from_utf8_lossy(&printed.stderr)
        .contains("1 children scored before the interruption are kept"));
    let children = json(&out.join("shrink.json"))["children"].as_array().unwrap().clone();
    let child = children.iter().find(|c| c["arch"] == kept).unwrap();
    assert_eq!(child["angle"], 123.0, "the kept record is used, not scored again");
    assert_eq!(children.len(), 125);
    assert!(!out.join("shrink-scoring.json").exists(), "removed once the round is in shrink.json");
    // The events log has the round; progress events come every 30 s, so a tiny round may have none.
    let events = std::fs::read_to_string(out.join("events.jsonl")).unwrap();
    assert!(events.contains("\"shrink_round\""));
}

const PLAN: &str = r#"
[base]
data = "synthetic:classes=4,channels=1,size=8,train=256,test=64"
benchmark = "TABLE"
[base.space_params]
nodes = 3
channels = 4
cells_per_stage = 1
[base.supernet]
epochs = 1
batch_size = 32
[base.shrink]
samples_per_op = 8
[base.search]
population = 6
generations = 2
top_k = 3
val_images = 40
[base.retrain]
epochs = 0

[grid]
"shrink.metric" = ["none", "angle"]
seed = [0, 1]

[run]
device = "cpu"
"#;

#[test]
fn a_sweep_judged_by_the_benchmark_runs_without_retraining_and_reports_it_per_group() {
    let dir = tempfile::tempdir().unwrap();
    let (table, rows) = write_table(dir.path());
    let plan = dir.path().join("plan.toml");
    std::fs::write(&plan, PLAN.replace("TABLE", &table_arg(&table))).unwrap();
    let sweep = dir.path().join("sweep");
    ok(["sweep", s(&plan), "--out", s(&sweep), "--jobs", "2"]);
    let report = json(&sweep.join("report.json"));
    assert_eq!(report["missing"].as_array().unwrap().len(), 0, "{report}");
    for run in report["runs"].as_array().unwrap() {
        assert!(run.get("accuracy_ort").is_none(), "not exported: {run}");
        let name = run["found"]["arch"].as_str().unwrap();
        let value = rows.iter().find(|(a, _)| a == name).unwrap().1;
        assert_eq!(run["found"]["benchmark"].as_f64(), Some(value));
    }
    let groups = report["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    for g in groups {
        assert!(g["benchmark"]["mean"].as_f64().unwrap() >= 40.0, "{g}");
        assert!(g.get("accuracy_ort").is_none());
    }
    let gain = &report["gains"][0];
    assert_eq!(gain["pairs"], 2);
    assert!(gain["benchmark_pp"]["mean"].is_number(), "{gain}");
    assert_eq!(report["benchmark"]["cells"], 125);
    let md = std::fs::read_to_string(sweep.join("report.md")).unwrap();
    assert!(
        md.contains("benchmark (%)") && md.contains("Δ benchmark (pp)") && md.contains("best cell"),
        "{md}"
    );
    let status = ok(["sweep", "status", s(&sweep)]);
    assert!(
        status.contains("4 runs: 4 done, 0 running, 0 failed") && status.contains("not exported"),
        "{status}"
    );
}

/// `PYTHONPATH` with the set-up's torch, numpy (the onnx folder) and the API packages.
fn python_path() -> String {
    let deps = PathBuf::from(env!("PWSNAS_DEPS"));
    let torch = deps.join("torch").canonicalize().expect("cargo xtask setup installed torch");
    format!(
        "{}:{}:{}",
        torch.parent().unwrap().display(),
        deps.join("onnx-site").display(),
        deps.join("nb201-api").display()
    )
}

#[test]
fn the_importer_turns_an_official_file_into_a_table_pwsnas_reads() {
    let dir = tempfile::tempdir().unwrap();
    let official = dir.path().join("NAS-Bench-201-v1_1-fixture.pth");
    // A small file in the official v1_1 format, built with the API package's own classes (every
    // 4-node cell over two ops: 64 cells, both schedules, three data sets).
    let fixture = std::process::Command::new("python3")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/nb201_fixture.py"))
        .args(["--format", "nb201-v1_1", "--out", s(&official)])
        .env("PYTHONPATH", python_path())
        .output()
        .unwrap();
    assert!(fixture.status.success(), "{}", String::from_utf8_lossy(&fixture.stderr));
    let built: serde_json::Value = serde_json::from_slice(&fixture.stdout).unwrap();
    let table = dir.path().join("nb201.csv");
    let done = ok(["--json", "benchmark", "import", s(&official), "--out", s(&table)]);
    let event: serde_json::Value =
        serde_json::from_str(done.lines().find(|l| l.contains("benchmark_imported")).unwrap()).unwrap();
    assert_eq!((event["format"].as_str(), event["rows"].as_u64()), (Some("nb201-v1_1"), Some(64)));
    for column in ["cifar10-test@12", "cifar10-test@200", "cifar100-test@200", "ImageNet16-120-valid@200"] {
        assert!(event["columns"].as_array().unwrap().iter().any(|c| c == column), "{column}: {event}");
    }
    // Every value the fixture put in is what the table gives back.
    for cell in built["cells"].as_array().unwrap().iter().take(8) {
        let arch = cell["arch"].as_str().unwrap();
        let expected = cell["values"]["cifar10-test@12"].as_f64().unwrap();
        let line = ok([
            "--json",
            "benchmark",
            "lookup",
            "--table",
            &format!("{}#cifar10-test@12", table.display()),
            arch,
        ]);
        let found: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
        assert_eq!(found["accuracy"].as_f64(), Some(expected), "{arch}");
        assert_eq!(found["cells"], 64);
    }
    // A file that is not a benchmark: one line naming it, no table written.
    let junk = dir.path().join("junk.pth");
    std::fs::write(&junk, b"not a pickle").unwrap();
    let out = dir.path().join("junk.csv");
    let e = fails(["benchmark", "import", s(&junk), "--out", s(&out)]);
    assert!(e.contains("junk.pth") && !out.exists(), "{e}");
    let e = fails(["benchmark", "import", s(&dir.path().join("missing.pth")), "--out", s(&out)]);
    assert!(e.contains("missing.pth") && e.contains("NAS-Bench-201-v1_1-096897.pth"), "{e}");
}
