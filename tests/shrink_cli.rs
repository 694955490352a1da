//! `pwsnas shrink`: scores for analysis on the 125-child space, strategy 2 (weight copies), and
//! shrinking under constraints.
mod common;
use common::*;
use pwsnas_models::{Arch, Space};

/// The space of a run's `space.json`.
fn run_space(out: &std::path::Path) -> Space {
    Space::from_json(json(&out.join("space.json"))).unwrap()
}

/// Trains the supernet stage alone on the 125-child space (nb201 with 3 nodes) at the tests' tiny
/// size, for `warmup` epochs, with `extra` flags.
fn supernet_on_3_nodes(out: &std::path::Path, warmup: &str, extra: &[&str]) {
    let mut sn = set(tiny(out), "--warmup-epochs", warmup);
    sn[0] = "supernet".into();
    sn.extend(["--nodes", "3"].iter().chain(extra).map(|a| a.to_string()));
    ok(&sn);
}

fn flops(space: &Space, arch: &Arch) -> f64 {
    space.kind.cost(arch).flops() as f64
}

#[test]
fn score_only_exhaustive_scores_every_candidate_and_child_with_every_metric() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("small");
    supernet_on_3_nodes(&out, "1", &[]);
    ok([
        "shrink",
        "--run",
        out.to_str().unwrap(),
        "--score-only",
        "--exhaustive",
        "--device",
        "cpu",
        "--quiet",
    ]);
    let report = json(&out.join("shrink.json"));
    assert_eq!(report["score_only"], true);
    let rounds = report["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 1);
    assert!(rounds[0]["dropped"].as_array().unwrap().is_empty());
    let candidates = rounds[0]["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), 15);
    for c in candidates {
        assert_eq!(c["children"], 25, "{c}");
        for metric in ["angle", "angle_full", "accuracy", "magnitude", "random"] {
            let v = c["scores"][metric].as_f64().unwrap_or(f64::NAN);
            assert!(v.is_finite(), "{metric} of {c}");
        }
    }
    let children = report["children"].as_array().unwrap();
    assert_eq!(children.len(), 125);
    for child in children {
        for metric in ["angle", "angle_full", "accuracy", "magnitude"] {
            assert!(child[metric].as_f64().unwrap().is_finite(), "{metric} of {child}");
        }
    }
    // Children whose every path is cut have no operator weights: angle 0 by definition.
    let cut = children.iter().find(|c| c["arch"] == "|nor_conv_3x3~0|+|none~0|none~1|").unwrap();
    assert_eq!(cut["angle"], 0.0);
    // In the pwsnas vector a cut child ranks below every child with a path, also below one whose
    // only path holds a pool (its kernel never moves: angle 0).
    assert_eq!(cut["angle_pwsnas"], -1.0);
    let pool = children.iter().find(|c| c["arch"] == "|none~0|+|avg_pool_3x3~0|none~1|").unwrap();
    assert_eq!(pool["angle_pwsnas"], 0.0);
    let lowest = children.iter().map(|c| c["angle_pwsnas"].as_f64().unwrap()).fold(f64::INFINITY, f64::min);
    assert_eq!(lowest, -1.0);
    for c in children.iter().filter(|c| c["angle_pwsnas"] == -1.0) {
        let ops: Vec<&str> = c["arch"].as_str().unwrap().split('|').filter(|p| p.contains('~')).collect();
        // Edges 1<-0, 2<-0, 2<-1: cut when 2<-0 is none and so is 1<-0 or 2<-1.
        assert!(
            ops[1].starts_with("none") && (ops[0].starts_with("none") || ops[2].starts_with("none")),
            "{c}"
        );
    }
    assert!(cut["angle_full"].as_f64().unwrap() > 0.0);
    // The space is untouched.
    let space = json(&out.join("space.json"));
    assert!(space["choices"].as_object().unwrap().values().all(|v| v.as_array().unwrap().len() == 5));
}

/// The keys of every angle variant: from `W0` at initialisation and, with `--w0-epoch K`, after `K` epochs.
fn angle_keys(k: usize) -> Vec<String> {
    let base = ["angle", "angle_full", "angle_pwsnas"];
    base.iter().map(|b| b.to_string()).chain(base.iter().map(|b| format!("{b}_w0e{k}"))).collect()
}

#[test]
fn score_only_with_a_w0_after_warm_up_records_every_angle_variant() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("w0e");
    supernet_on_3_nodes(&out, "2", &["--w0-epoch", "1"]);
    assert!(out.join("supernet/W0.safetensors").exists());
    assert!(out.join("supernet/W0-epoch1.safetensors").exists(), "the weights after epoch 1 are saved");
    ok(["shrink", "--run", s(&out), "--score-only", "--exhaustive", "--device", "cpu", "--quiet"]);
    let report = json(&out.join("shrink.json"));
    assert_eq!(report["w0_epoch"], 1);
    let candidates = report["rounds"][0]["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), 15);
    let mut keys = angle_keys(1);
    keys.extend(["accuracy", "magnitude"].map(String::from));
    for c in candidates {
        for k in keys.iter().map(String::as_str).chain(["random"]) {
            assert!(c["scores"][k].as_f64().is_some_and(f64::is_finite), "{k} of {c}");
        }
        // The driving score is the default (ops) angle from the weights after epoch 1.
        assert_eq!(c["score"], c["scores"]["angle_w0e1"], "{c}");
    }
    let children = report["children"].as_array().unwrap();
    assert_eq!(children.len(), 125);
    for child in children {
        let fields: Vec<&String> = child.as_object().unwrap().keys().collect();
        assert_eq!(fields.len(), 1 + keys.len(), "a flat record: {child}");
        for k in &keys {
            assert!(child[k].as_f64().is_some_and(f64::is_finite), "{k} of {child}");
        }
    }
    // From the weights after epoch 1 the angles are smaller than from initialisation (one epoch
    // of the two is not counted), and all differ.
    let moved = children.iter().filter(|c| c["angle"].as_f64().unwrap() > 0.0).count();
    assert!(moved > 0);
    for child in children.iter().filter(|c| c["angle"].as_f64().unwrap() > 0.0) {
        for k in ["angle", "angle_full", "angle_pwsnas"] {
            let (init, warm) = (child[k].as_f64().unwrap(), child[format!("{k}_w0e1")].as_f64().unwrap());
            assert!(warm != init, "{k} of {child}");
        }
    }
}

#[test]
fn shrinking_by_the_pwsnas_angle_from_a_w0_after_warm_up_drives_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("drive");
    supernet_on_3_nodes(&out, "2", &["--w0-epoch", "1"]);
    ok([
        "shrink",
        "--run",
        s(&out),
        "--angle-vector",
        "pwsnas",
        "--samples-per-op",
        "4",
        "--device",
        "cpu",
        "--quiet",
    ]);
    let report = json(&out.join("shrink.json"));
    assert_eq!((report["angle_vector"].as_str(), report["w0_epoch"].as_u64()), (Some("pwsnas"), Some(1)));
    let round = &report["rounds"][0];
    assert!(!round["dropped"].as_array().unwrap().is_empty());
    for c in round["candidates"].as_array().unwrap() {
        let keys: Vec<&String> = c["scores"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["angle_pwsnas_w0e1", "random"], "only the driving angle is computed: {c}");
        assert_eq!(c["score"], c["scores"]["angle_pwsnas_w0e1"], "{c}");
    }
}

#[test]
fn a_w0_epoch_the_supernet_did_not_save_is_refused_naming_the_file_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("no-w0e");
    supernet_on_3_nodes(&out, "2", &["--w0-epoch", "0"]);
    let shrink = |k: &'static str| {
        [
            "shrink",
            "--run",
            s(&out),
            "--w0-epoch",
            k,
            "--score-only",
            "--exhaustive",
            "--device",
            "cpu",
            "--quiet",
        ]
    };
    // Epoch 1 was trained through without the setting: refused, before the stage starts and
    // without retraining the supernet (the setting shapes the shrink stage only).
    let err = fails(shrink("1"));
    assert!(
        err.contains("W0-epoch1.safetensors is missing")
            && err.contains("--w0-epoch 1")
            && err.contains("--w0-epoch 0"),
        "{err}"
    );
    assert!(!out.join("shrink.json").exists());
    let run = json(&out.join("run.json"));
    assert!(run["stages"].get("shrink").is_none(), "{run}");
    assert_eq!(run["stages"]["supernet"]["status"], "done");
    // The epoch the supernet stands at: saved on resuming; the angles of `_w0e2` are those from
    // initialisation, since from the current weights every angle would be 0.
    ok(shrink("2"));
    assert!(out.join("supernet/W0-epoch2.safetensors").exists());
    let report = json(&out.join("shrink.json"));
    let moved = report["children"].as_array().unwrap().iter().filter(|c| c["angle"].as_f64().unwrap() > 0.0);
    assert!(moved.count() > 0);
    for child in report["children"].as_array().unwrap() {
        for k in ["angle", "angle_full", "angle_pwsnas"] {
            assert_eq!(child[format!("{k}_w0e2")], child[k], "{k} of {child}");
        }
    }
}

#[test]
fn a_w0_epoch_past_the_warm_up_measures_from_initialisation_until_the_supernet_passes_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("late-w0e");
    supernet_on_3_nodes(&out, "1", &["--w0-epoch", "2"]);
    assert!(!out.join("supernet/W0-epoch2.safetensors").exists());
    // Rounds at epochs 1, 2 and 3 (dropping one of 15 candidates each, 125 → 100 → 80 → 64
    // children): the first two from initialisation (no snapshot is needed for them, and their
    // angles are not the zeros of an angle from the current weights), the third from the weights
    // the supernet saved when it completed epoch 2 on the way.
    let shrink = [
        "shrink",
        "--run",
        s(&out),
        "--samples-per-op",
        "2",
        "--drop-per-round",
        "1",
        "--target-size",
        "64",
        "--device",
        "cpu",
        "--quiet",
    ];
    ok(shrink);
    assert!(out.join("supernet/W0-epoch2.safetensors").exists());
    let report = json(&out.join("shrink.json"));
    let rounds = report["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 3, "{report}");
    for round in rounds {
        let candidates = round["candidates"].as_array().unwrap();
        for c in candidates {
            assert_eq!(c["score"], c["scores"]["angle_w0e2"], "{c}");
        }
        assert!(candidates.iter().any(|c| c["score"].as_f64().unwrap() > 0.0), "{round}");
    }
}

#[test]
fn copies_lower_the_degree_of_sharing_within_the_parameter_budget() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("copies");
    let mut args = tiny(&out);
    args.extend(
        ["--copies", "2", "--param-budget", "1.5", "--drop-per-round", "10", "--target-size", "5000"]
            .map(String::from),
    );
    args.extend(["--epochs-after-shrink", "1", "--shrink", "angle"].map(String::from));
    ok(&args);
    let report = json(&out.join("shrink.json"));
    let round = &report["rounds"][0];
    let params = &round["params"];
    let value = |k: &str| params[k].as_i64().unwrap();
    assert!(value("after") > value("before"), "copies add parameters: {params}");
    assert!(value("after") <= value("budget"), "within the budget: {params}");
    assert_eq!(value("budget"), (1.5 * value("original") as f64).floor() as i64);
    let copies: Vec<u64> = round["copies"].as_array().unwrap().iter().map(|c| c.as_u64().unwrap()).collect();
    assert!(copies.contains(&2), "{copies:?}");
    let sharing = &round["sharing_degree"];
    let mean = |k: &str| sharing[k]["mean_children_per_weight"].as_f64().unwrap();
    assert!(mean("after") < mean("before"), "{sharing}");

    // Per choice point: every granted copy is used by some child, and copies sit only behind a
    // previous choice point with two surviving ops or more.
    let space = run_space(&out);
    let records = round["choice_points"].as_array().unwrap();
    assert_eq!(records.len(), 6);
    for (cp, r) in records.iter().enumerate() {
        let k = r["copies"].as_u64().unwrap();
        assert_eq!(k, copies[cp]);
        let single_op_behind =
            space.kind.previous_choices(cp).iter().all(|&p| space.choices[p].ops.len() < 2);
        if single_op_behind {
            assert_eq!(k, 1, "a copy behind single-op previous choice points: {r}");
        }
        if k > 1 {
            assert_eq!(r["copies_used"], k, "{r}");
            let by = r["routed_by"].as_str().unwrap();
            let by = space.choice_point_index(by).unwrap();
            assert!(space.kind.previous_choices(cp).contains(&by), "{r}");
            let route: Vec<String> = serde_json::from_value(r["route_ops"].clone()).unwrap();
            let survivors: Vec<String> = space.choices[by].ops.iter().map(|o| o.name().to_string()).collect();
            assert_eq!(route, survivors, "routed by the rank among the surviving ops: {r}");
            let per_copy = r["per_copy"].as_array().unwrap();
            assert_eq!(per_copy.len() as u64, k);
            for c in per_copy {
                assert!(
                    c["children"].as_f64().unwrap() >= 1.0 && !c["ops"].as_array().unwrap().is_empty(),
                    "{r}"
                );
            }
            assert!(r["degree_after"].as_f64().unwrap() < r["degree_before"].as_f64().unwrap(), "{r}");
        }
    }
    // The supernet checkpoint carries the copies and their routes, trained one epoch after the round.
    let state = json(&out.join("supernet/state.json"));
    assert_eq!(state["copies"], round["copies"]);
    for (cp, r) in records.iter().enumerate() {
        if copies[cp] > 1 {
            assert_eq!(state["routes"][cp]["ops"], r["route_ops"], "{cp}");
        }
    }
    assert_eq!(state["epoch"], 3);
    assert_eq!(report["final_epoch"], 3);
    assert_eq!(report["final_supernet"]["copies"], round["copies"]);
    assert!(out.join("arch.json").exists());
}

#[test]
fn a_budget_no_child_meets_is_refused_before_any_training() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tight");
    let err = fails(set(tiny(&out), "--max-flops", "1000"));
    assert!(
        err.contains(
            "no child of the nb201 space (15625 children, every one checked) meets --max-flops 1000"
        ),
        "{err}"
    );
    let kind = pwsnas_models::SpaceKind::from_params(
        "nb201",
        serde_json::json!({"channels": 4, "cells_per_stage": 1, "input_size": 8, "input_channels": 1, "classes": 4}),
    )
    .unwrap();
    let full = Space::full(kind);
    let min = full.enumerate().iter().map(|a| flops(&full, a)).fold(f64::INFINITY, f64::min);
    assert!(err.contains(&format!("the smallest FLOPs it reaches are {min} multiply-adds")), "{err}");
    assert!(!out.join("supernet/W0.safetensors").exists(), "refused before the supernet was built");

    let other = dir.path().join("params");
    let mut args = set(tiny(&other), "--max-params", "10");
    args[0] = "supernet".into();
    let err = fails(&args);
    assert!(err.contains("meets --max-params 10") && err.contains("the fewest parameters"), "{err}");
    assert!(!other.join("supernet/W0.safetensors").exists());
}

#[test]
fn with_a_budget_every_child_scored_by_every_metric_is_admissible() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("small");
    supernet_on_3_nodes(&out, "1", &[]);
    let space = run_space_of_supernet(&out);
    let mut all: Vec<f64> = space.enumerate().iter().map(|a| flops(&space, a)).collect();
    all.sort_by(f64::total_cmp);
    let cap = all[all.len() / 3];
    let cap_text = cap.to_string();
    let run = out.to_str().unwrap();
    let args =
        ["shrink", "--run", run, "--score-only", "--exhaustive", "--max-flops", &cap_text, "--device", "cpu"];
    ok(args.iter().chain(&["--quiet"]));
    let report = json(&out.join("shrink.json"));
    let admissible: Vec<Arch> = space.enumerate().into_iter().filter(|a| flops(&space, a) <= cap).collect();
    assert_eq!(report["admissible_before"]["children"].as_f64().unwrap(), admissible.len() as f64);
    assert_eq!(report["admissible_before"]["exact"], true);
    let children = report["children"].as_array().unwrap();
    assert_eq!(children.len(), admissible.len(), "exactly the admissible children are scored");
    for child in children {
        let arch = space.parse_arch(child["arch"].as_str().unwrap()).unwrap();
        assert!(flops(&space, &arch) <= cap, "{child}");
        for metric in ["angle", "angle_full", "accuracy", "magnitude"] {
            assert!(child[metric].as_f64().unwrap().is_finite(), "{metric} of {child}");
        }
    }
    let candidates = report["rounds"][0]["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), 15);
    for c in candidates {
        let cp = space.choice_point_index(c["choice_point"].as_str().unwrap()).unwrap();
        let op: pwsnas_models::Op = serde_json::from_value(c["op"].clone()).unwrap();
        let with = admissible.iter().filter(|a| a.ops[cp] == op).count();
        assert_eq!(c["children"], with, "{c}");
        assert_eq!(c["no_admissible_child"].as_bool().unwrap_or(false), with == 0, "{c}");
    }
}

/// The full space of a run whose supernet is trained (before any `space.json`).
fn run_space_of_supernet(out: &std::path::Path) -> Space {
    Space::from_json(json(&out.join("supernet/state.json"))["space"].clone()).unwrap()
}

#[test]
fn shrinking_under_a_budget_keeps_admissible_children() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("budget");
    // C=4, N=1 on 1×8×8 with 4 classes: children cost 31k (all `none`) to 197k (all 3x3 convs)
    // multiply-adds; 45k admits a few 1x1 convs but no 3x3 conv.
    let cap = 45_000.0;
    let mut args = tiny(&out);
    args.extend(["--max-flops", "45000", "--shrink", "angle"].map(String::from));
    ok(&args);
    let report = json(&out.join("shrink.json"));
    let round = &report["rounds"][0];
    let dropped = round["dropped"].as_array().unwrap();
    let flagged: Vec<&serde_json::Value> =
        round["candidates"].as_array().unwrap().iter().filter(|c| c["no_admissible_child"] == true).collect();
    for c in &flagged {
        assert!(c["score"].is_null(), "{c}");
        assert!(
            dropped.iter().any(|d| d["choice_point"] == c["choice_point"] && d["op"] == c["op"]),
            "a candidate no admissible child contains is dropped: {c}"
        );
    }
    let space = run_space(&out);
    let admissible = space.enumerate().into_iter().filter(|a| flops(&space, a) <= cap).count();
    assert!(admissible > 0, "the shrunk space holds admissible children");
    assert_eq!(report["final_admissible"]["children"].as_f64().unwrap(), admissible as f64);
    assert!(json(&out.join("arch.json"))["flops"].as_f64().unwrap() <= cap);
}
