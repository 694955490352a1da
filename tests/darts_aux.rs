//! DARTS's auxiliary head when retraining a darts child (`--auxiliary-weight W`): it trains beside
//! the child (its variables and momentum in the retraining checkpoint), changes the losses, is
//! reproducible, and stays out of the exported weights, the parameter count and the ONNX model;
//! spaces without a head, images too small for it and negative weights are one-line errors.
use std::path::Path;

mod common;

use common::{copy_dir, export_quickly, fails, json, ok, s};

/// A tiny DARTS search (DARTS's method, no shrinking) on 16×16 images: cell 2·3/3 = 2 outputs 4×4.
fn config(dir: &Path, size: usize) -> std::path::PathBuf {
    let file = dir.join(format!("darts{size}.toml"));
    let text = format!(
        r#"
space = "darts"
data = "synthetic:classes=4,channels=1,size={size},train=128,test=64"
[space_params]
channels = 2
layers = 3
[shrink]
metric = "none"
[search]
method = "darts"
val_images = 32
[gradient]
epochs = 1
batch_size = 32
steps_per_epoch = 2
[retrain]
epochs = 2
batch_size = 32
auxiliary_weight = 0.4
"#
    );
    std::fs::write(&file, text).unwrap();
    file
}

fn losses(run: &Path) -> Vec<f64> {
    json(&run.join("retrain/log.json"))
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["loss"].as_f64().unwrap())
        .collect()
}

#[test]
fn the_auxiliary_head_trains_beside_the_child_and_is_left_out_of_what_is_exported() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    ok(["--quiet", "search", "--config", s(&config(dir.path(), 16)), "--out", s(&run), "--device", "cpu"]);
    assert_eq!(json(&run.join("run.json"))["settings"]["retrain"]["auxiliary_weight"], 0.4);
    let names = |file: &str| -> Vec<String> {
        let bytes = std::fs::read(run.join("retrain").join(file)).unwrap();
        let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
        header.as_object().unwrap().keys().cloned().collect()
    };
    let checkpoint = names("last.safetensors");
    assert!(checkpoint.iter().any(|n| n.starts_with("aux.classifier")), "the head is checkpointed");
    assert!(checkpoint.iter().any(|n| n.starts_with("optim.momentum.aux.")), "and its momentum");
    assert!(!names("weights.safetensors").iter().any(|n| n.contains("aux")), "never in the child's weights");
    let arch = json(&run.join("arch.json"));
    let params = json(&run.join("retrain/result.json"))["params"].as_f64();
    assert_eq!(params, arch["params_count"].as_f64(), "the head is not counted");

    // The head changes training; with the same settings retraining is reproducible.
    let with_head = losses(&run);
    let copy = dir.path().join("copy");
    copy_dir(&run, &copy);
    let retrain = |r: &Path, w: &str| {
        ok(["--quiet", "train", "--run", s(r), "--auxiliary-weight", w, "--device", "cpu", "--force"]);
        losses(r)
    };
    assert_ne!(retrain(&copy, "0"), with_head);
    assert_eq!(retrain(&copy, "0.4"), with_head);

    export_quickly(&run);
    let report = json(&run.join("report.json"));
    assert_eq!(report["parity"]["passed"], true, "{}", report["parity"]);

    // Refusals, each one line naming the setting, before anything is written.
    let small = dir.path().join("small");
    let err = fails(["search", "--config", s(&config(dir.path(), 8)), "--out", s(&small), "--device", "cpu"]);
    assert!(err.contains("retrain.auxiliary_weight") && err.contains("8×8 images give 2×2"), "{err}");
    let err = fails(["train", "--run", s(&copy), "--auxiliary-weight=-1", "--force"]);
    assert!(err.contains("auxiliary_weight must be a non-negative weight"), "{err}");
    let nb201 = dir.path().join("nb201");
    let mut args = common::tiny(&nb201);
    args.extend(["--auxiliary-weight", "0.4"].map(String::from));
    let err = fails(args);
    assert!(err.contains("the nb201 space's network has no auxiliary head"), "{err}");
    assert!(!nb201.exists());
}
