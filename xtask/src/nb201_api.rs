//! `cargo xtask setup`: the official NAS-Bench-201 and NATS-Bench Python APIs (PyPI
//! `nas-bench-201==2.1`, import name `nas_201_api`, and `nats_bench==1.8`), installed together into
//! the cache as `deps/nb201-api-2.1-1.8` and linked as `.deps/nb201-api`.
//!
//! Why: `pwsnas benchmark import` turns the official benchmark files (`NAS-Bench-201-v1_*.pth`,
//! `NATS-tss-v1_0-3ffb9*`) into an open CSV table, and those files are pickles of the APIs' own
//! result classes that only the APIs read correctly; its script (`src/benchmark/nb201_import.py`)
//! runs with `PYTHONPATH` = the torch folder, `.deps/onnx-site` and `.deps/nb201-api`.
//!
//! Why `--no-deps`: `nas-bench-201` declares no dependencies (it imports torch and numpy), and
//! `nats_bench` declares only numpy. Both are already in the cache: torch in `deps/torch-2.11.0`,
//! numpy beside onnx in `deps/onnx-1.20.0`. Letting pip resolve would put a second numpy here, and
//! which of the two a script imported would then depend on the order of `PYTHONPATH`.
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The two packages, pinned (the latest releases on PyPI).
pub const SPECS: [&str; 2] = ["nas-bench-201==2.1", "nats_bench==1.8"];
/// The cache folder both go into.
const NAME: &str = "nb201-api-2.1-1.8";
/// Present once pip has installed each package.
const MARKERS: [&str; 2] = ["nas_bench_201-2.1.dist-info", "nats_bench-1.8.dist-info"];
/// The import packages the importer needs.
const MODULES: [&str; 2] = ["nas_201_api/__init__.py", "nats_bench/__init__.py"];

/// Installs the APIs into `deps` unless they are there, and links them as `links/nb201-api`;
/// returns the cache folder.
pub fn setup(deps: &Path, links: &Path) -> Result<PathBuf> {
    let dest = deps.join(NAME);
    if !complete(&dest) {
        install(deps, &dest)?;
    }
    crate::link(&dest, &links.join("nb201-api"))?;
    Ok(dest)
}

fn complete(dir: &Path) -> bool {
    MARKERS.iter().chain(MODULES.iter()).all(|m| dir.join(m).exists())
}

/// One `pip install --target` of both packages into a `.partial` folder, renamed when complete (as
/// for the other dependencies, an interrupted set-up never leaves a folder that looks finished).
fn install(deps: &Path, dest: &Path) -> Result<()> {
    let partial = deps.join(format!("{NAME}.partial"));
    if partial.exists() {
        std::fs::remove_dir_all(&partial)?;
    }
    crate::say(&format!(
        "installing {} from PyPI into {} (one time; the benchmark APIs for `pwsnas benchmark import`)",
        SPECS.join(" and "),
        dest.display()
    ));
    let mut cmd = Command::new(crate::python()?);
    cmd.args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-cache-dir",
        "--no-deps",
    ])
    .arg("--target")
    .arg(&partial)
    .args(SPECS);
    crate::run(&mut cmd)
        .with_context(|| format!("pip could not install {}: is PyPI reachable?", SPECS.join(" ")))?;
    if !complete(&partial) {
        bail!(
            "pip finished but {} lacks one of {}: remove it and run `cargo xtask setup` again",
            partial.display(),
            MARKERS.iter().chain(MODULES.iter()).copied().collect::<Vec<_>>().join(", ")
        );
    }
    if dest.exists() {
        std::fs::remove_dir_all(dest)?;
    }
    std::fs::rename(&partial, dest)?;
    Ok(())
}
