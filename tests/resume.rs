//! A supernet run that stops (or is killed) and is restarted ends with exactly the weights of an
//! uninterrupted run with the same seed.
mod common;
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use pwsnas::data::RunData;
use pwsnas::progress::Progress;
use pwsnas::run::RunDir;
use pwsnas::settings::Settings;
use pwsnas::supernet::SupernetRun;
use pwsnas::train::epoch::Phase;
use tch::{Device, Tensor};

fn settings() -> Settings {
    let mut s = Settings { data: DATA.into(), ..Settings::default() };
    s.space_params.insert("channels".into(), 4.into());
    s.space_params.insert("cells_per_stage".into(), 1.into());
    s.supernet.epochs = 3;
    s.supernet.batch_size = 32;
    s.supernet.steps_per_epoch = Some(4);
    s
}

fn max_diff(a: &HashMap<String, Tensor>, b: &HashMap<String, Tensor>) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .filter(|(name, _)| !name.starts_with("meta."))
        .map(|(name, t)| (t - &b[name]).abs().max().double_value(&[]))
        .fold(0.0, f64::max)
}

fn weights(sn: &SupernetRun) -> HashMap<String, Tensor> {
    sn.net.named_tensors().into_iter().collect()
}

#[test]
fn a_stopped_and_reopened_supernet_ends_where_an_uninterrupted_one_does() {
    let s = settings();
    let data = RunData::load(&s).unwrap();
    let quiet = Progress::silent();
    let phase = Phase { start: 0, end: 3 };
    let dir = tempfile::tempdir().unwrap();

    let run_a = RunDir::open_or_create(&dir.path().join("a"), &s, "cpu", false).unwrap();
    let mut a = SupernetRun::open(&run_a, &data, Device::Cpu).unwrap();
    a.train_to(3, phase, &s, &data, &quiet).unwrap();

    let run_b = RunDir::open_or_create(&dir.path().join("b"), &s, "cpu", false).unwrap();
    let mut b = SupernetRun::open(&run_b, &data, Device::Cpu).unwrap();
    b.train_to(1, phase, &s, &data, &quiet).unwrap();
    drop(b);
    let mut b = SupernetRun::open(&run_b, &data, Device::Cpu).unwrap();
    assert_eq!(b.state.epoch, 1);
    b.train_to(3, phase, &s, &data, &quiet).unwrap();

    assert_eq!(max_diff(&weights(&a), &weights(&b)), 0.0);
    let (wa, wb) = (weights(&a), weights(&b));
    let w0 = a.w0().unwrap();
    assert!(max_diff(&wa, &w0) > 0.0, "training changed the weights");
    assert_eq!(a.state.history.len(), 3);
    assert_eq!(
        a.state.history.iter().map(|h| h.loss).collect::<Vec<_>>(),
        b.state.history.iter().map(|h| h.loss).collect::<Vec<_>>()
    );
    drop(wb);
}

fn epoch_of(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("supernet/state.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["epoch"].as_u64())
        .unwrap_or(0) as usize
}

#[test]
fn a_killed_supernet_command_resumes_to_the_same_result() {
    let dir = tempfile::tempdir().unwrap();
    let args = |out: &Path| {
        let mut a = set(set(tiny(out), "--warmup-epochs", "4"), "--steps-per-epoch", "40");
        a[0] = "supernet".into();
        a.push("--quiet".into());
        a
    };
    let whole = dir.path().join("whole");
    ok(args(&whole));

    let killed = dir.path().join("killed");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pwsnas"))
        .args(args(&killed))
        .env("PWSNAS_HOME", test_home())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while epoch_of(&killed) < 1 && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let at_kill = epoch_of(&killed);
    assert!((1..4).contains(&at_kill), "killed after epoch {at_kill}: the run should have been cut short");

    ok(args(&killed));
    assert_eq!(epoch_of(&killed), 4);
    let load = |d: &Path| -> HashMap<String, Tensor> {
        Tensor::read_safetensors(d.join("supernet/last.safetensors")).unwrap().into_iter().collect()
    };
    assert_eq!(max_diff(&load(&whole), &load(&killed)), 0.0);
}

#[test]
fn a_search_killed_in_any_stage_finishes_with_the_uninterrupted_result() {
    let dir = tempfile::tempdir().unwrap();
    let args = |out: &Path| {
        let mut a = set(set(tiny(out), "--warmup-epochs", "2"), "--retrain-epochs", "3");
        a.extend(
            ["--copies", "2", "--param-budget", "2", "--epochs-after-shrink", "1", "--quiet"]
                .map(String::from),
        );
        a
    };
    let whole = dir.path().join("whole");
    ok(args(&whole));

    let killed = dir.path().join("killed");
    let mut kills = 0;
    for delay_ms in [150u64, 300, 450, 600, 800, 1000, 1300, 1600, 2000, 2500, 3000, 4000] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pwsnas"))
            .args(args(&killed))
            .env("PWSNAS_HOME", test_home())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
        }
        child.wait().unwrap();
    }
    ok(args(&killed));
    assert!(kills > 0, "no run was interrupted");
    assert_eq!(json(&killed.join("arch.json")), json(&whole.join("arch.json")));
    let rounds = |d: &Path| -> Vec<(serde_json::Value, serde_json::Value)> {
        let report = json(&d.join("shrink.json"));
        report["rounds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["candidates"].clone(), r["dropped"].clone()))
            .collect()
    };
    assert!(rounds(&killed) == rounds(&whole), "the shrinking rounds differ");
    let evaluated = |d: &Path| json(&d.join("search.json"))["evaluated"].clone();
    assert_eq!(evaluated(&killed), evaluated(&whole));
    let load = |d: &Path| -> HashMap<String, Tensor> {
        Tensor::read_safetensors(d.join("retrain/weights.safetensors")).unwrap().into_iter().collect()
    };
    assert_eq!(max_diff(&load(&whole), &load(&killed)), 0.0);
}

#[test]
fn a_shrink_killed_while_training_after_the_last_round_resumes_to_the_same_result() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole");
    let mut supernet = set(set(tiny(&whole), "--warmup-epochs", "1"), "--steps-per-epoch", "40");
    supernet[0] = "supernet".into();
    supernet.push("--quiet".into());
    ok(&supernet);
    let killed = dir.path().join("killed");
    copy_dir(&whole, &killed);
    let shrink = |out: &Path| -> Vec<String> {
        let flags =
            ["--copies", "2", "--param-budget", "2", "--drop-per-round", "10", "--target-size", "5000"];
        let mut a: Vec<String> = ["shrink", "--run", out.to_str().unwrap()].map(String::from).to_vec();
        a.extend(flags.map(String::from));
        a.extend(["--epochs-after-shrink", "3", "--device", "cpu", "--quiet"].map(String::from));
        a
    };
    ok(shrink(&whole));

    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pwsnas"))
        .args(shrink(&killed))
        .env("PWSNAS_HOME", test_home())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while epoch_of(&killed) < 2 && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let at_kill = epoch_of(&killed);
    assert!((2..4).contains(&at_kill), "killed after epoch {at_kill}: inside the training after the round");
    let state = json(&killed.join("supernet/state.json"));
    assert!(
        state["copies"].as_array().unwrap().iter().any(|k| k.as_u64() > Some(1)),
        "copies were granted: {state}"
    );

    ok(shrink(&killed));
    assert_eq!(epoch_of(&killed), 4);
    let load = |d: &Path| -> HashMap<String, Tensor> {
        Tensor::read_safetensors(d.join("supernet/last.safetensors")).unwrap().into_iter().collect()
    };
    assert_eq!(max_diff(&load(&whole), &load(&killed)), 0.0);
    let (a, b) = (json(&whole.join("supernet/state.json")), json(&killed.join("supernet/state.json")));
    assert_eq!((&a["copies"], &a["routes"], &a["space"]), (&b["copies"], &b["routes"], &b["space"]));
    let shrunk = |d: &Path| {
        let r = json(&d.join("shrink.json"));
        (r["rounds"][0]["choice_points"].clone(), r["final_supernet"].clone(), r["final_epoch"].clone())
    };
    assert_eq!(shrunk(&whole), shrunk(&killed));
}
