//! `pwsnas search` end to end on tiny synthetic data: every stage, resumption, the baseline without
//! shrinking, constraints, and the mobile space.
mod common;
use common::*;

#[test]
fn every_stage_runs_and_a_rerun_skips_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    ok(tiny(&out));
    for f in [
        "run.json",
        "supernet/W0.safetensors",
        "supernet/last.safetensors",
        "supernet/state.json",
        "shrink.json",
        "space.json",
        "search.json",
        "arch.json",
        "retrain/weights.safetensors",
        "retrain/result.json",
        "events.jsonl",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let run = json(&out.join("run.json"));
    for stage in ["supernet", "shrink", "search", "retrain"] {
        assert_eq!(run["stages"][stage]["status"], "done", "{stage}");
    }
    let shrink = json(&out.join("shrink.json"));
    let round = &shrink["rounds"][0];
    assert_eq!(round["candidates"].as_array().unwrap().len(), 30);
    assert_eq!(round["dropped"].as_array().unwrap().len(), 20, "ABS's NB201 setting drops 20 of 30");
    let space = json(&out.join("space.json"));
    let left: usize =
        space["choices"].as_object().unwrap().values().map(|v| v.as_array().unwrap().len()).sum();
    assert_eq!(left, 10);
    let arch = json(&out.join("arch.json"));
    let search = json(&out.join("search.json"));
    let evaluated = search["evaluated"].as_array().unwrap();
    assert!(!evaluated.is_empty());
    let best = evaluated.iter().map(|e| e["accuracy"].as_f64().unwrap()).fold(0.0, f64::max);
    assert_eq!(arch["supernet_accuracy"].as_f64().unwrap(), best);
    let acc = json(&out.join("retrain/result.json"))["test_accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc));

    // A rerun with the same settings finds everything done and changes nothing.
    let before = std::fs::read(out.join("retrain/weights.safetensors")).unwrap();
    let mut rerun = tiny(&out);
    rerun.insert(0, "--json".into());
    let events = ok(&rerun);
    assert!(
        !events.contains("supernet_epoch") && !events.contains("retrain_epoch"),
        "nothing is redone: {events}"
    );
    assert!(events.contains("search_finished"));
    assert_eq!(std::fs::read(out.join("retrain/weights.safetensors")).unwrap(), before);

    // A changed setting of a finished stage is refused, and redone with --force.
    let mut changed = tiny(&out);
    changed.extend(["--copies".into(), "2".into()]);
    let err = fails(&changed);
    assert!(err.contains("shrink") && err.contains("--force"), "{err}");
    changed.push("--force".into());
    ok(&changed);
    assert_eq!(json(&out.join("shrink.json"))["copies"], 2);
}

#[test]
fn the_baseline_without_shrinking_searches_the_full_space() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("spos");
    let mut args = tiny(&out);
    args.extend(["--shrink", "none", "--strategy", "random"].map(String::from));
    ok(&args);
    assert!(json(&out.join("shrink.json"))["rounds"].as_array().unwrap().is_empty());
    let space = json(&out.join("space.json"));
    assert!(space["choices"].as_object().unwrap().values().all(|v| v.as_array().unwrap().len() == 5));
    let search = json(&out.join("search.json"));
    assert_eq!(search["strategy"], "random");
    assert_eq!(
        search["evaluated"].as_array().unwrap().len(),
        12,
        "random search uses the budget population × generations"
    );
}

#[test]
fn no_evaluated_child_breaks_max_flops() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("flops");
    // Children of this space (C=4, N=1, 1×8×8, 4 classes) range from 31k FLOPs (all `none`) to 197k
    // (all `nor_conv_3x3`); cap in between.
    let max = 60_000.0;
    let mut args = set(set(tiny(&out), "--population", "10"), "--generations", "3");
    args.extend(["--shrink", "none", "--max-flops", "60000"].map(String::from));
    ok(&args);
    let search = json(&out.join("search.json"));
    let evaluated = search["evaluated"].as_array().unwrap();
    assert!(evaluated.len() >= 10);
    for e in evaluated {
        assert!(e["flops"].as_f64().unwrap() <= max, "{e}");
    }
    assert!(search["rejected"].as_u64().unwrap() > 0, "the cap must have rejected some children");
    assert!(json(&out.join("arch.json"))["flops"].as_f64().unwrap() <= max);
}

#[test]
fn the_mobile_space_runs_end_to_end() {
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
[supernet]
epochs = 1
batch_size = 32
[shrink]
samples_per_op = 4
drop_per_round = 7
target_size = 200
[search]
population = 4
generations = 2
top_k = 2
val_images = 32
[retrain]
epochs = 1
batch_size = 32
"#,
    )
    .unwrap();
    let out = dir.path().join("m");
    ok([
        "search",
        "--config",
        config.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--device",
        "cpu",
        "--quiet",
    ]);
    let shrink = json(&out.join("shrink.json"));
    let rounds = shrink["rounds"].as_array().unwrap();
    assert!(!rounds.is_empty());
    assert!(rounds.iter().all(|r| r["dropped"].as_array().unwrap().len() <= 7));
    assert!(shrink["final_space_size"].as_f64().unwrap() <= 200.0);
    let arch = json(&out.join("arch.json"));
    assert_eq!(arch["space"], "mobile");
    assert_eq!(arch["arch"].as_str().unwrap().split(',').count(), 4);
}

#[test]
fn a_shrunk_space_can_start_another_run() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first");
    let mut args = tiny(&first);
    args[0] = "supernet".into();
    ok(&args);
    ok(["shrink", "--run", first.to_str().unwrap(), "--device", "cpu", "--quiet"]);
    let space_file = first.join("space.json");
    let second = dir.path().join("second");
    let mut args = tiny(&second);
    args.extend([
        "--space-file".to_string(),
        space_file.to_str().unwrap().to_string(),
        "--shrink".into(),
        "none".into(),
    ]);
    ok(&args);
    assert_eq!(json(&second.join("space.json")), json(&space_file));

    // A space file of another kind is refused with a message naming the file.
    let mut wrong = tiny(&dir.path().join("third"));
    wrong.extend([
        "--space-file".to_string(),
        space_file.to_str().unwrap().to_string(),
        "--nodes".into(),
        "3".into(),
    ]);
    let err = fails(&wrong);
    assert!(err.contains("space.json"), "{err}");
}

#[test]
fn eval_and_retraining_another_arch() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    ok(tiny(&out));
    let run = out.to_str().unwrap();
    let arch = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|";
    let shown = ok(["eval", "--run", run, "--arch", arch, "--val-images", "30", "--device", "cpu", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert!((0.0..=1.0).contains(&v["accuracy"].as_f64().unwrap()));
    assert!(fails(["eval", "--run", run, "--arch", "|conv~0|", "--device", "cpu"]).contains("malformed arch"));

    let mut file = json(&out.join("arch.json"));
    file["arch"] = arch.into();
    let path = dir.path().join("other.json");
    std::fs::write(&path, file.to_string()).unwrap();
    let err = fails(["train", "--run", run, "--arch", path.to_str().unwrap(), "--device", "cpu"]);
    assert!(err.contains("--force"), "{err}");
    ok(["train", "--run", run, "--arch", path.to_str().unwrap(), "--device", "cpu", "--force", "--quiet"]);
    assert_eq!(json(&out.join("retrain/result.json"))["arch"], arch);
    assert_eq!(json(&out.join("arch.json"))["arch"], arch);

    let fresh = dir.path().join("fresh");
    std::fs::create_dir_all(&fresh).unwrap();
    assert!(fails(["eval", "--run", fresh.to_str().unwrap(), "--arch", arch])
        .contains("not a pwsnas run directory"));
}
