//! `pwsnas shrink`: scores for analysis on the 125-child space, and strategy 2 (weight copies).
mod common;
use common::*;

#[test]
fn score_only_exhaustive_scores_every_candidate_and_child_with_every_metric() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("small");
    let mut sn = set(tiny(&out), "--warmup-epochs", "1");
    sn[0] = "supernet".into();
    sn.extend(["--nodes", "3"].map(String::from));
    ok(&sn);
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
    assert!(cut["angle_full"].as_f64().unwrap() > 0.0);
    // The space is untouched.
    let space = json(&out.join("space.json"));
    assert!(space["choices"].as_object().unwrap().values().all(|v| v.as_array().unwrap().len() == 5));
}

#[test]
fn copies_lower_the_degree_of_sharing_within_the_parameter_budget() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("copies");
    let mut args = tiny(&out);
    args.extend(["--copies", "2", "--shrink", "angle"].map(String::from));
    ok(&args);
    let report = json(&out.join("shrink.json"));
    let round = &report["rounds"][0];
    let params = &round["params"];
    let (original, before, after) = (
        params["original"].as_i64().unwrap(),
        params["before"].as_i64().unwrap(),
        params["after"].as_i64().unwrap(),
    );
    assert!(after > before, "copies add parameters: {params}");
    assert!(after <= original, "but no more than the original supernet had: {params}");
    let copies: Vec<u64> = round["copies"].as_array().unwrap().iter().map(|c| c.as_u64().unwrap()).collect();
    assert!(copies.contains(&2), "{copies:?}");
    let sharing = &round["sharing_degree"];
    assert!(
        sharing["after"]["mean_children_per_weight"].as_f64().unwrap()
            < sharing["before"]["mean_children_per_weight"].as_f64().unwrap(),
        "{sharing}"
    );
    // The supernet checkpoint carries the copies, and the search ran on it.
    let state = json(&out.join("supernet/state.json"));
    assert_eq!(state["copies"], round["copies"]);
    assert!(out.join("arch.json").exists());
}
