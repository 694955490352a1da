//! The DARTS cell space end to end on tiny synthetic data: `pwsnas search --space darts` (SPOS
//! single-path supernet, one angle-shrinking round dropping the lowest op of every edge, evolution
//! over genotypes, retraining) → `pwsnas export` with ONNX Runtime parity, the official checker and
//! the latency prediction of the table the search measured;
//! and a one-line error for each bad input (wrong genotype text, a space file that does not fit,
//! `--layers` below 3, weight copies and constraints the space does not have),
//! with nothing written.
use std::collections::BTreeSet;
use std::path::Path;

use pwsnas::report::Report;
use pwsnas_models::{Space, SpaceKind};
use serde_json::Value;

mod common;
mod onnx_check;

use common::{export_quickly, fails, json, ok, s, set};

const DATA: &str = "synthetic:classes=4,channels=1,size=8,train=128,test=64";

fn search(out: &Path) -> Vec<String> {
    [
        "--quiet",
        "search",
        "--out",
        s(out),
        "--space",
        "darts",
        "--data",
        DATA,
        "--channels",
        "4",
        "--layers",
        "3",
        "--warmup-epochs",
        "1",
        "--batch-size",
        "32",
        "--samples-per-op",
        "2",
        // 7^28 paths before the round, 6^28 ≈ 6e21 after: one round.
        "--target-size",
        "1e22",
        "--population",
        "4",
        "--generations",
        "2",
        "--top-k",
        "2",
        "--val-images",
        "32",
        "--retrain-epochs",
        "1",
        "--device",
        "cpu",
    ]
    .map(String::from)
    .to_vec()
}

#[test]
fn search_shrinks_every_edge_retrains_a_genotype_and_exports_it_with_parity() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    ok(search(&run));

    // One round, the lowest-angle op of every edge dropped from its shared list.
    let shrink = json(&run.join("shrink.json"));
    assert_eq!(shrink["per_choice_point"], true);
    let rounds = shrink["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 1);
    assert_eq!(rounds[0]["candidates"].as_array().unwrap().len(), 28 * 7);
    let dropped = rounds[0]["dropped"].as_array().unwrap();
    let edges: BTreeSet<&str> =
        dropped.iter().map(|d| d["choice_point"].as_str().unwrap().split('/').nth(1).unwrap()).collect();
    assert_eq!((dropped.len(), edges.len()), (14, 14), "one op per edge: {dropped:?}");
    let space = json(&run.join("space.json"));
    let choices = space["choices"].as_object().unwrap();
    assert_eq!(choices.len(), 28);
    for (name, ops) in choices {
        let ops = ops.as_array().unwrap();
        assert_eq!(ops.len(), 6, "{name}");
        assert!(!ops.contains(&Value::from("none")), "{name}: none is no candidate");
        if let Some(edge) = name.strip_prefix("normal/") {
            assert_eq!(ops, choices[&format!("reduce/{edge}")].as_array().unwrap(), "linked lists");
        }
    }

    // The search evaluated genotypes only, and the run retrained one.
    let search = json(&run.join("search.json"));
    for e in search["evaluated"].as_array().unwrap() {
        assert!(e["arch"].as_str().unwrap().starts_with("Genotype(normal=[("), "{e}");
    }
    let arch = json(&run.join("arch.json"))["arch"].as_str().unwrap().to_string();
    assert!(
        arch.starts_with("Genotype(normal=[(") && arch.ends_with("reduce_concat=[2, 3, 4, 5])"),
        "{arch}"
    );
    let acc = json(&run.join("retrain/result.json"))["test_accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc));
    // The genotype's parameters as `arch info` counts them are the retrained network's.
    let info: Value = serde_json::from_str(&ok([
        "--json",
        "arch",
        "info",
        "--space",
        "darts",
        "--channels",
        "4",
        "--layers",
        "3",
        "--classes",
        "4",
        "--input-channels",
        "1",
        "--input-size",
        "8",
        "--arch",
        &arch,
    ]))
    .unwrap();
    assert!(info["params_count"].as_u64().unwrap() > 0);

    export_quickly(&run);
    let report = Report::load(&run.join("report.json")).unwrap();
    assert_eq!(report.arch, arch);
    assert!(report.parity.passed, "{:?}", report.parity.reason);
    assert!(report.parity.scaled_diff <= 1e-4 && report.parity.images > 0);
    assert_eq!(report.accuracy.test_images, 64);
    assert!((report.accuracy.ort - report.accuracy.libtorch).abs() * 100.0 <= 100.0 / 64.0 + 1e-9);
    assert_eq!(report.accuracy.retrain_test_accuracy, Some(acc));
    let bytes = std::fs::read(run.join("model.onnx")).unwrap();
    onnx_check::check(&bytes, "the exported DARTS model.onnx");
    assert!(!report.onnx.op_counts.contains_key("BatchNormalization"));
    assert!(report.onnx.op_counts.contains_key("Concat"), "{:?}", report.onnx.op_counts);
    // The search's latency table (kept in the run) predicted the exported genotype.
    let predicted = report.latency.predicted_ms.expect("a predicted latency");
    assert!(predicted > 0.0, "{predicted}");
    assert!(run.join("latency_table.json").exists());
    for e in search["evaluated"].as_array().unwrap() {
        assert!(e["predicted_latency_ms"].as_f64().unwrap() > 0.0, "{e}");
    }

    // DARTS's evaluation extras: retraining with cutout and drop-path changes the retraining's
    // settings (so it takes --force), is recorded in run.json, and is reproducible: two copies of
    // the run retrain to the same losses and accuracy.
    let copy = dir.path().join("copy");
    common::copy_dir(&run, &copy);
    let extras = |r: &Path| {
        let args = ["--quiet", "train", "--run", s(r), "--cutout", "4", "--drop-path", "0.3"];
        ok([&args[..], &["--retrain-epochs", "2", "--device", "cpu", "--force"]].concat());
        let log = json(&r.join("retrain/log.json"));
        let losses: Vec<(f64, f64)> = log
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["loss"].as_f64().unwrap(), e["train_accuracy"].as_f64().unwrap()))
            .collect();
        (losses, json(&r.join("retrain/result.json"))["test_accuracy"].as_f64().unwrap())
    };
    let (losses, acc) = extras(&run);
    assert_eq!(extras(&copy), (losses.clone(), acc));
    assert_eq!(losses.len(), 2);
    let settings = &json(&run.join("run.json"))["settings"]["retrain"];
    assert_eq!((settings["cutout"].as_u64(), settings["drop_path"].as_f64()), (Some(4), Some(0.3)));
}

fn genotype(normal: &str, normal_concat: &str) -> String {
    let reduce = "[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)]";
    format!("Genotype(normal={normal}, {normal_concat}reduce={reduce}, reduce_concat=[2, 3, 4, 5])")
}

/// One error line for `args`, containing every one of `expected`.
fn refused(args: &[&str], expected: &[&str]) {
    let err = fails(args);
    let line = err.lines().find(|l| l.starts_with("error:")).unwrap_or_else(|| panic!("no error in {err}"));
    for e in expected {
        assert!(line.contains(e), "'{e}' not in: {line}");
    }
}

#[test]
fn bad_genotypes_and_settings_are_one_line_errors_and_write_nothing() {
    let info = |arch: &str| {
        vec!["arch", "info", "--space", "darts", "--arch", arch]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let v2 = "[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)]";
    let concat = "normal_concat=[2, 3, 4, 5], ";
    ok(info(&genotype(v2, concat)));
    let cases: [(String, &[&str]); 6] = [
        // Node 5 with one input: 7 pairs.
        (
            genotype(&v2.replace(", ('dil_conv_3x3', 2)", ""), concat),
            &["normal, node 5", "has 1 input, expected 2"],
        ),
        // A ninth pair: node 5 with three inputs.
        (
            genotype(
                &v2.replace("('dil_conv_3x3', 2)]", "('dil_conv_3x3', 2), ('sep_conv_3x3', 3)]"),
                concat,
            ),
            &["normal", "9 ('op', input) pairs", "a node with 3 inputs"],
        ),
        (
            genotype(&v2.replacen("('sep_conv_3x3', 1)", "('sep_conv_3x3', 2)", 1), concat),
            &["normal, node 2", "input 2 is not before the node"],
        ),
        (
            genotype(&v2.replacen("sep_conv_3x3", "sep_conv_4x4", 1), concat),
            &["normal, node 2", "unknown op"],
        ),
        (genotype(v2, ""), &["normal_concat", "is missing"]),
        ("DARTS_V9".to_string(), &["'DARTS_V9' is not a published genotype", "DARTS_V2"]),
    ];
    for (arch, expected) in &cases {
        let args = info(arch);
        refused(&args.iter().map(String::as_str).collect::<Vec<_>>(), expected);
    }
    refused(
        &["arch", "info", "--space", "darts", "--layers", "2", "--arch", "DARTS_V2"],
        &["'layers'", "--layers", "at least 3 cells"],
    );

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let with = |extra: &[&str]| extra.chunks(2).fold(search(&out), |args, kv| set(args, kv[0], kv[1]));
    for (extra, expected) in [
        (&["--layers", "2"][..], &["'layers'", "--layers"][..]),
        (&["--copies", "2"], &["--copies", "darts space has no weight copies"]),
        (&["--max-flops", "1e6"], &["--max-flops", "not available for the darts space"]),
        (&["--max-latency-ms", "1"], &["--max-latency-ms", "not available for the darts space"]),
    ] {
        let args = with(extra);
        refused(&args.iter().map(String::as_str).collect::<Vec<_>>(), expected);
        assert!(!out.exists(), "{extra:?} wrote {}", out.display());
    }

    // A space file whose choice points are another space's, and one whose linked lists differ.
    let file = dir.path().join("space.json");
    let write = |v: &Value| std::fs::write(&file, serde_json::to_vec(v).unwrap()).unwrap();
    let nb201 = serde_json::json!({"space": "darts", "params": {}, "choices": {"1<-0": ["none"]}});
    write(&nb201);
    let from_file = || with(&["--space-file", s(&file)]);
    refused(
        &from_file().iter().map(String::as_str).collect::<Vec<_>>(),
        &["unknown choice point '1<-0' for darts"],
    );
    let params =
        serde_json::json!({"channels": 4, "layers": 3, "classes": 4, "input_channels": 1, "input_size": 8});
    let kind = SpaceKind::from_params("darts", params).unwrap();
    let mut unlinked = Space::full(kind).to_json();
    unlinked["choices"]["normal/3<-1"] = serde_json::json!(["max_pool_3x3", "sep_conv_3x3"]);
    write(&unlinked);
    refused(
        &from_file().iter().map(String::as_str).collect::<Vec<_>>(),
        &["'normal/3<-1' and 'reduce/3<-1' share one op list"],
    );
    // The space file is checked against the data's shape, so the run directory exists by then, but
    // no stage has written anything.
    assert!(!out.join("supernet").exists());
}
