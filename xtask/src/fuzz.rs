//! `cargo xtask fuzz [--seconds N] [--runs N] [TARGET...]`: runs every fuzz target (or the named
//! ones) for N seconds each (default 60) and prints, per target, the executions, the rate and the
//! outcome. Fails when a target crashes or hangs, naming the input that did it.
//!
//! The targets live in `fuzz/`, a workspace of its own (cargo-fuzz needs the nightly toolchain;
//! the normal build and `cargo xtask test` never touch it). A target is one file,
//! `fuzz/src/bin/NAME.rs`; its committed seed inputs are `fuzz/seeds/NAME/` (optional). The
//! fuzzer's growing corpus goes to `fuzz/corpus/NAME/` and what breaks a target to
//! `fuzz/artifacts/NAME/` (both git-ignored). Targets are built once with `-s none` (no
//! sanitizer: the readers are safe Rust, so what fuzzing finds is panics, hangs and runaway
//! memory, and the runs are several times faster), then run one at a time with one job each.
//! Each run's output is written as it comes to `fuzz/artifacts/NAME.log`.
//! A crash found here gets a fix and a regression test in the normal test suite.
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

struct Options {
    seconds: u64,
    runs: Option<u64>,
    targets: Vec<String>,
}

fn options(args: &[String]) -> Result<Options> {
    let mut o = Options { seconds: 60, runs: None, targets: Vec::new() };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut number = |flag: &str| -> Result<u64> {
            let v = it.next().with_context(|| format!("{flag} needs a number"))?;
            v.parse().with_context(|| format!("{flag} {v}: expected a whole number"))
        };
        match a.as_str() {
            "--seconds" => o.seconds = number("--seconds")?,
            "--runs" => o.runs = Some(number("--runs")?),
            flag if flag.starts_with('-') => {
                bail!("unknown flag {flag}: usage cargo xtask fuzz [--seconds N] [--runs N] [TARGET...]")
            }
            name => o.targets.push(name.to_string()),
        }
    }
    Ok(o)
}

/// The targets: one per `fuzz/src/bin/*.rs`, sorted.
fn targets(fuzz: &Path) -> Result<Vec<String>> {
    let dir = fuzz.join("src/bin");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .with_context(|| format!("cannot list the fuzz targets in {}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".rs")).map(str::to_string))
        .collect();
    names.sort();
    Ok(names)
}

/// Checks for the nightly toolchain and cargo-fuzz, saying how to install what is missing.
fn check_tools() -> Result<()> {
    let ok = |args: &[&str]| Command::new("cargo").args(args).output().is_ok_and(|o| o.status.success());
    if !ok(&["+nightly", "--version"]) {
        bail!("fuzzing needs the nightly toolchain: rustup toolchain install nightly");
    }
    if !ok(&["+nightly", "fuzz", "--version"]) {
        bail!("fuzzing needs cargo-fuzz: cargo install cargo-fuzz");
    }
    Ok(())
}

/// What libFuzzer's final statistics and exit say about one run.
struct Outcome {
    target: String,
    executions: u64,
    seconds: f64,
    peak_rss_mb: u64,
    failure: Option<String>,
}

/// `stat::NAME: VALUE` from libFuzzer's `-print_final_stats=1` output.
fn stat(log: &str, name: &str) -> Option<u64> {
    log.lines().find_map(|l| l.strip_prefix(&format!("stat::{name}:")).and_then(|v| v.trim().parse().ok()))
}

fn fuzz_one(root: &Path, target: &str, o: &Options) -> Result<Outcome> {
    let fuzz = root.join("fuzz");
    let corpus = fuzz.join("corpus").join(target);
    std::fs::create_dir_all(&corpus)?;
    let seeds = fuzz.join("seeds").join(target);
    let mut cmd = Command::new("cargo");
    cmd.args(["+nightly", "fuzz", "run", "-s", "none", target]).arg(&corpus);
    if seeds.is_dir() {
        cmd.arg(&seeds);
    }
    // One process, one job (libFuzzer's default); an input that runs 30 s or takes 2 GB fails. Not
    // less: a 745-byte JPEG claiming 4344×8454 pixels (within the reader's limits) takes 4.5 s of
    // CPU in the instrumented `image` target, and on a 2-CPU machine shared with other work a 10 s
    // wall-clock limit failed it as a hang. A loop that never ends still fails.
    cmd.args(["--", "-timeout=30", "-rss_limit_mb=2048", "-print_final_stats=1"]);
    cmd.arg(format!("-max_total_time={}", o.seconds));
    if let Some(runs) = o.runs {
        cmd.arg(format!("-runs={runs}"));
    }
    // libFuzzer's output goes straight to the log, so that a long run can be followed while it runs
    // (its progress lines count the executions) and what it printed survives an interruption.
    let log_path = fuzz.join("artifacts").join(format!("{target}.log"));
    std::fs::create_dir_all(log_path.parent().expect("has a parent"))?;
    let file = std::fs::File::create(&log_path)
        .with_context(|| format!("cannot write the fuzzing log {}", log_path.display()))?;
    crate::say(&format!("{target}: libFuzzer's output goes to {} (tail -f it)", log_path.display()));
    let start = std::time::Instant::now();
    let status = cmd
        .stdout(file.try_clone()?)
        .stderr(file)
        .current_dir(root)
        .status()
        .with_context(|| format!("cannot start cargo fuzz for {target}"))?;
    let seconds = start.elapsed().as_secs_f64();
    let log = String::from_utf8_lossy(&std::fs::read(&log_path)?).into_owned();
    let failure = (!status.success()).then(|| failure(&log, &log_path));
    Ok(Outcome {
        target: target.to_string(),
        executions: stat(&log, "number_of_executed_units").unwrap_or(0),
        seconds,
        peak_rss_mb: stat(&log, "peak_rss_mb").unwrap_or(0),
        failure,
    })
}

/// What a failed run's log says went wrong, and the input that did it: a panic, a libFuzzer error
/// (crash, timeout, out of memory) or an interruption. libFuzzer also writes slow inputs
/// (`slow-unit-*`), which are not failures.
fn failure(log: &str, log_path: &Path) -> String {
    let artifact = log
        .lines()
        .filter_map(|l| l.split("Test unit written to ").nth(1))
        .find(|p| !p.contains("slow-unit-"))
        .map_or_else(|| format!("see {}", log_path.display()), |p| format!("input {}", p.trim()));
    let what = log
        .lines()
        .find(|l| {
            l.contains("panicked at") || l.contains("ERROR: libFuzzer") || l.contains("run interrupted")
        })
        .unwrap_or("the target failed")
        .trim();
    format!("{what} ({artifact})")
}

/// Type-checks every fuzz target with the stable toolchain (`cargo xtask test` runs it last).
///
/// Why: the fuzz workspace is outside the root one, so a change to a reader's signature broke a
/// target unseen until someone fuzzed (the `checkpoint` target once stayed broken for several
/// changes). `cargo check` needs neither nightly nor cargo-fuzz, links nothing and runs no target;
/// its own target folder keeps it from invalidating the fuzzer's nightly build in `fuzz/target`.
pub fn check(root: &Path) -> Result<()> {
    crate::say("checking that the fuzz targets compile (stable cargo check of fuzz/)");
    crate::run(
        Command::new(crate::cargo())
            .args(["check", "--manifest-path", "fuzz/Cargo.toml", "--bins", "--locked"])
            .env("CARGO_TARGET_DIR", root.join("target/fuzz-check"))
            .current_dir(root),
    )
}

pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let o = options(args)?;
    check_tools()?;
    let fuzz: PathBuf = root.join("fuzz");
    let all = targets(&fuzz)?;
    let chosen = if o.targets.is_empty() { all.clone() } else { o.targets.clone() };
    if let Some(unknown) = chosen.iter().find(|t| !all.contains(t)) {
        bail!("no fuzz target {unknown}: the targets are {}", all.join(", "));
    }
    crate::say("building the fuzz targets (nightly, cargo-fuzz, no sanitizer)");
    crate::run(Command::new("cargo").args(["+nightly", "fuzz", "build", "-s", "none"]).current_dir(root))?;
    let mut outcomes = Vec::new();
    for target in &chosen {
        crate::say(&format!("fuzzing {target} for {} s", o.seconds));
        let outcome = fuzz_one(root, target, &o)?;
        if let Some(f) = &outcome.failure {
            crate::say(&format!("{target}: FAILED: {f}"));
        }
        outcomes.push(outcome);
    }
    println!("| target | executions | seconds | executions/s | peak RSS MB | result |");
    println!("| --- | ---: | ---: | ---: | ---: | --- |");
    for r in &outcomes {
        println!(
            "| {} | {} | {:.0} | {:.0} | {} | {} |",
            r.target,
            r.executions,
            r.seconds,
            r.executions as f64 / r.seconds.max(1e-9),
            r.peak_rss_mb,
            r.failure.as_deref().unwrap_or("0 crashes")
        );
    }
    let failed: Vec<&str> =
        outcomes.iter().filter(|r| r.failure.is_some()).map(|r| r.target.as_str()).collect();
    if !failed.is_empty() {
        bail!("fuzz targets failed: {} (inputs in fuzz/artifacts/)", failed.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_input_is_not_named_as_the_failure() {
        let slow = "Slowest unit: 13 s:\nTest unit written to fuzz/artifacts/image/slow-unit-c8d5\n";
        let log = format!("{slow}#3419340\tREDUCE cov: 3424\n==1672== libFuzzer: run interrupted; exiting\n");
        let path = Path::new("fuzz/artifacts/image.log");
        assert_eq!(
            failure(&log, path),
            "==1672== libFuzzer: run interrupted; exiting (see fuzz/artifacts/image.log)"
        );
        let crash = format!(
            "{slow}thread '<unnamed>' panicked at src/x.rs:1:1:\nTest unit written to a/crash-f7b0\n"
        );
        assert_eq!(
            failure(&crash, path),
            "thread '<unnamed>' panicked at src/x.rs:1:1: (input a/crash-f7b0)"
        );
    }
}
