//! `pwsnas benchmark import`: a benchmark table from NAS-Bench-201's official files
//! (`NAS-Bench-201-v1_0-e61699.pth`, `NAS-Bench-201-v1_1-096897.pth`, NATS-Bench's topology files).
//!
//! Why Python: those files are pickles of the benchmark's own classes, readable only with PyTorch
//! and the official API packages (`nas-bench-201`, `nats_bench`). Rather than reimplement their
//! formats, pwsnas runs a script of its own (`nb201_import.py`, carried in the binary) on the
//! PyTorch that `cargo xtask setup` installs, with the API packages the set-up installs beside it
//! (`.deps/nb201-api`). The script writes the open CSV table that [`super::table`] reads: a row per
//! cell, both schedules (12 and 200 epochs, where the file has them) for the three data sets;
//! docs/benchmark-import.md lists its columns and the API call behind each.
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// The importer script, run as `python3 - --in FILE --out TABLE [--format F]` with itself on stdin.
const SCRIPT: &str = include_str!("nb201_import.py");

/// What to import.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// The official file (or NATS-Bench folder).
    pub input: PathBuf,
    /// The table to write (CSV).
    pub out: PathBuf,
    /// `auto`, `nb201-v1_0`, `nb201-v1_1` or `nats-tss`.
    pub format: String,
    /// Folders to put on `PYTHONPATH` instead of the set-up's (the torch package's parent, the API
    /// packages' folder).
    pub python_path: Option<String>,
    /// Let PyTorch unpickle the file without its restrictions (`--trust-pickle`): about 6× faster
    /// and far less memory on the multi-gigabyte files, for a file from the official source only.
    pub trust_pickle: bool,
}

/// What the script reports on its last line of stdout.
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
pub struct Imported {
    pub format: String,
    pub rows: usize,
    pub columns: Vec<String>,
    pub out: String,
}

/// The set-up's folders for the script: the parent of the `torch` package, the `onnx` package's
/// folder (numpy) and the API packages' folder.
fn setup_python_path() -> Result<String> {
    let deps = std::env::var_os("PWSNAS_DEPS")
        .map(PathBuf::from)
        .or_else(|| option_env!("PWSNAS_DEPS").map(PathBuf::from))
        .context("PWSNAS_DEPS is not set: run `cargo xtask setup`, or pass --python-path with the folders holding torch and the NAS-Bench-201 API packages")?;
    let torch = deps.join("torch").canonicalize().with_context(|| {
        format!("no PyTorch at {}: run `cargo xtask setup` (it installs PyTorch and the benchmark's API packages)", deps.join("torch").display())
    })?;
    let mut parts = vec![torch.parent().context("the torch package has no parent folder")?.to_path_buf()];
    for extra in ["onnx-site", "nb201-api"] {
        let dir = deps.join(extra);
        if !dir.is_dir() {
            bail!(
                "{} is missing: run `cargo xtask setup` (it installs the NAS-Bench-201 API packages there)",
                dir.display()
            );
        }
        parts.push(dir);
    }
    Ok(parts.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":"))
}

/// Runs the importer; the table is written atomically by the script.
pub fn run(opts: &ImportOptions) -> Result<Imported> {
    if !opts.input.exists() {
        bail!(
            "{} does not exist: pass NAS-Bench-201-v1_0-e61699.pth, NAS-Bench-201-v1_1-096897.pth or a NATS-Bench topology file (NATS-tss-v1_0-3ffb9-simple)",
            opts.input.display()
        );
    }
    let python_path = match &opts.python_path {
        Some(p) => p.clone(),
        None => setup_python_path()?,
    };
    // The script goes in on stdin (`python3 - ARGS`): nothing to write or clean up.
    let mut child = Command::new(python())
        .arg("-")
        .arg("--in")
        .arg(&opts.input)
        .arg("--out")
        .arg(&opts.out)
        .arg("--format")
        .arg(&opts.format)
        .args(opts.trust_pickle.then_some("--trust-pickle"))
        .env("PYTHONPATH", &python_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot run python3 for the importer: install python3")?;
    child.stdin.take().context("the importer's stdin")?.write_all(SCRIPT.as_bytes())?;
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!(
            "importing {} failed (the reason is printed above; exit status {})",
            opts.input.display(),
            output.status
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    serde_json::from_str(last).with_context(|| format!("the importer printed no summary (stdout: {last:?})"))
}

fn python() -> &'static str {
    let works = |c: &str| Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success());
    if works("python3") {
        "python3"
    } else {
        "python"
    }
}
