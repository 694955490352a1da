//! Settings layering on the command line: an existing run's stored settings, then `--config`, then
//! flags; a config that names only a later stage never touches the stages before it.
mod common;
use common::*;

#[test]
fn a_config_naming_only_shrink_settings_shrinks_the_stored_supernet() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    // A supernet whose every shaping setting differs from the defaults (data, space, epochs).
    let mut sn = set(tiny(&out), "--warmup-epochs", "1");
    sn[0] = "supernet".into();
    sn.extend(["--nodes", "3", "--seed", "5", "--quiet"].map(String::from));
    ok(&sn);
    let trained = || json(&out.join("supernet/state.json"))["history"].as_array().unwrap().len();
    assert_eq!(trained(), 1);

    // The bug: with --config, the settings used to start from the defaults (fashion-mnist, 4 nodes,
    // 10 epochs), so this was refused as a changed supernet, or retrained it with --force.
    let config = dir.path().join("s.toml");
    std::fs::write(&config, "[shrink]\nsamples_per_op = 4\nbn_batches = 1\n").unwrap();
    let shrink = |extra: &[&str]| {
        let mut args = vec!["--json", "shrink", "--run", s(&out), "--config", s(&config), "--score-only"];
        args.extend(["--device", "cpu"]);
        args.extend(extra);
        ok(&args)
    };
    let events = shrink(&[]);
    assert!(!events.contains("supernet_epoch"), "the supernet is not retrained: {events}");
    assert_eq!(trained(), 1, "one epoch, the stored one");
    let report = json(&out.join("shrink.json"));
    assert_eq!(report["samples_per_op"], 4, "the config's value is used");
    assert_eq!(report["rounds"][0]["candidates"].as_array().unwrap().len(), 15, "on the stored 3-node space");
    let settings = &json(&out.join("run.json"))["settings"];
    assert_eq!(settings["data"], DATA, "stored");
    assert_eq!(settings["space_params"]["nodes"], 3, "stored");
    assert_eq!(settings["supernet"]["epochs"], 1, "stored");
    assert_eq!(settings["seed"], 5, "stored");
    assert_eq!(settings["shrink"]["bn_batches"], 1, "from the config");

    // A flag beats the config: the shrink stage changed, so --force redoes it, and only it.
    let events = shrink(&["--samples-per-op", "3", "--force"]);
    assert!(!events.contains("supernet_epoch"), "--force redoes the changed stage only: {events}");
    assert_eq!(trained(), 1);
    assert_eq!(json(&out.join("shrink.json"))["samples_per_op"], 3, "the flag wins");
    let settings = &json(&out.join("run.json"))["settings"];
    assert_eq!(settings["shrink"]["bn_batches"], 1, "the config still applies under the flag");
    assert_eq!(settings["data"], DATA);
}

#[test]
fn a_config_that_changes_an_earlier_stage_is_refused_with_the_difference() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let mut sn = set(tiny(&out), "--warmup-epochs", "1");
    sn[0] = "supernet".into();
    sn.extend(["--nodes", "3", "--quiet"].map(String::from));
    ok(&sn);
    let config = dir.path().join("s.toml");
    std::fs::write(&config, "[supernet]\nepochs = 2\n").unwrap();
    let err = fails(["shrink", "--run", s(&out), "--config", s(&config), "--device", "cpu"]);
    assert!(err.contains("supernet.epochs: 1 → 2") && err.contains("--force"), "{err}");
    assert!(!err.contains("data:") && !err.contains("space_params"), "only what the config names: {err}");
}

#[test]
fn unknown_values_of_closed_sets_list_the_valid_ones() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let err = fails(set(tiny(&out), "--angle-vector", "all"));
    assert!(
        err.contains("invalid value 'all' for '--angle-vector")
            && err.contains("[possible values: ops, full, pwsnas]"),
        "{err}"
    );
    let err = fails(set(tiny(&out), "--latency-ep", "gpu"));
    assert!(err.contains("[possible values: cpu, cuda]"), "{err}");
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[search]\nlatency_ep = \"tpu\"\n").unwrap();
    let err = fails(set(tiny(&out), "--config", s(&config)));
    assert!(
        err.contains(&format!("config {}: line 2, column 14", config.display()))
            && err.contains("unknown variant `tpu`, expected `cpu` or `cuda`"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(!out.exists(), "nothing is written for a refused setting");
}
