//! Helpers shared by the CLI tests: run the `pwsnas` binary and read what it wrote.
#![allow(dead_code)]
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

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

/// The `PWSNAS_HOME` of the tests (latency tables and other caches), so they never touch the user's.
pub fn test_home() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("pwsnas-home")
}

fn collect<I, S>(args: I) -> Vec<OsString>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    args.into_iter().map(|a| a.as_ref().to_os_string()).collect()
}

/// Runs pwsnas with `PWSNAS_HOME=home`.
pub fn pwsnas_in<I, S>(home: &Path, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_pwsnas"))
        .args(collect(args))
        .env("PWSNAS_HOME", home)
        .output()
        .expect("pwsnas runs")
}

pub fn pwsnas<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    pwsnas_in(&test_home(), args)
}

/// Runs pwsnas, fails the test with its stderr when it fails, returns stdout.
pub fn ok_in<I, S>(home: &Path, args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args = collect(args);
    let out = pwsnas_in(home, &args);
    assert!(out.status.success(), "pwsnas {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn ok<I, S>(args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    ok_in(&test_home(), args)
}

/// Runs pwsnas expecting a clean failure (no panic); returns stderr.
pub fn fails_in<I, S>(home: &Path, args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args = collect(args);
    let out = pwsnas_in(home, &args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "pwsnas {args:?} should have failed:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!stderr.contains("panicked"), "pwsnas {args:?} panicked:\n{stderr}");
    stderr
}

pub fn fails<I, S>(args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    fails_in(&test_home(), args)
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

pub fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Copies a folder recursively (e.g. a finished run, to redo one stage of it).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// `pwsnas --quiet export RUN` with as little latency timing as it allows (one thread, two timed
/// runs, no warm-up, sessions not held to a minimum time), for tests of what export writes rather
/// than of its latency; returns stdout.
pub fn export_quickly(run: &Path) -> String {
    let run = run.to_str().expect("temp paths are UTF-8");
    ok([
        "--quiet",
        "export",
        run,
        "--latency-session-ms",
        "0",
        "--latency-runs",
        "2",
        "--warmup",
        "0",
        "--threads",
        "1",
    ])
}

/// Whether a Slurm cluster answers (`cargo xtask test` brings one up); without one the Slurm tests
/// skip, unless `PWSNAS_REQUIRE_SLURM` is set, which makes them fail.
pub fn slurm_cluster() -> bool {
    let answers = Command::new("sinfo").arg("-h").output().is_ok_and(|o| o.status.success());
    if !answers {
        assert!(
            std::env::var_os("PWSNAS_REQUIRE_SLURM").is_none(),
            "PWSNAS_REQUIRE_SLURM is set but no Slurm cluster answers `sinfo` (SLURM_CONF={:?})",
            std::env::var_os("SLURM_CONF")
        );
        eprintln!("skipped: no Slurm cluster answers `sinfo`; `cargo xtask test` brings one up");
    }
    answers
}

/// Polls `done` every 50 ms; fails the test after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether Slurm still lists job `job` (pending or running).
pub fn queued(job: &str) -> bool {
    let out = Command::new("squeue").args(["-h", "-r", "-j", job, "-o", "%i"]).output().unwrap();
    !String::from_utf8_lossy(&out.stdout).trim().is_empty()
}
