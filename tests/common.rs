//! Helpers shared by the CLI tests: run the `pwsnas` binary and read what it wrote.
#![allow(dead_code)]
use std::path::Path;
use std::process::{Command, Output};

/// Tiny synthetic data: 4 classes of 1×8×8 images.
pub const DATA: &str = "synthetic:classes=4,channels=1,size=8,train=384,test=96";

/// `pwsnas search` with flags for a run that takes about a second.
pub fn tiny(out: &Path) -> Vec<String> {
    [
        "search",
        "--out",
        out.to_str().unwrap(),
        "--data",
        DATA,
        "--channels",
        "4",
        "--cells",
        "1",
        "--warmup-epochs",
        "2",
        "--batch-size",
        "32",
        "--samples-per-op",
        "8",
        "--population",
        "6",
        "--generations",
        "2",
        "--top-k",
        "3",
        "--val-images",
        "40",
        "--retrain-epochs",
        "1",
        "--device",
        "cpu",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Sets `flag` to `value` in `args`, replacing an earlier value.
pub fn set(mut args: Vec<String>, flag: &str, value: &str) -> Vec<String> {
    match args.iter().position(|a| a == flag) {
        Some(i) => args[i + 1] = value.to_string(),
        None => args.extend([flag.to_string(), value.to_string()]),
    }
    args
}

pub fn pwsnas<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_pwsnas")).args(args).output().expect("pwsnas runs")
}

/// Runs pwsnas and fails the test with its stderr when it fails.
pub fn ok<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out = pwsnas(args);
    assert!(out.status.success(), "pwsnas failed:\n{}", String::from_utf8_lossy(&out.stderr));
    out
}

/// Runs pwsnas expecting failure; returns stderr.
pub fn fails<I, S>(args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out = pwsnas(args);
    assert!(!out.status.success(), "pwsnas should have failed:\n{}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}
