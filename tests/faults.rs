//! Faults while a run writes: a disk that fills up and a run directory that turns read-only. The
//! stage stops with a clear one-line error, every file is the old one or the new one (no temporary
//! file left, every file complete), and the rerun, once the fault is gone, resumes and ends with
//! the weights of a run that never met a fault.
//!
//! The faults are real: the run lives on a small tmpfs mounted for the test (full disk: the rest of
//! it filled; read-only: remounted `ro`). Mounting needs root; where it is refused, the same
//! scenario runs with the fault injected into the atomic-write helper (`PWSNAS_FAULT_AFTER_WRITES`,
//! see `src/fsutil.rs`), and the assertions are the same.
mod common;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` at `dir`, or `None` when this process may not mount.
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            eprintln!(
                "cannot mount a tmpfs here (needs root): injecting the fault into the atomic writes instead"
            );
        }
        ok.then(|| Tmpfs { dir: dir.to_path_buf() })
    }

    fn remount(&self, options: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "remount {options}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(snapshot(&path));
        } else {
            out.insert(path.clone(), std::fs::read(&path).unwrap());
        }
    }
    out
}

/// Whether the bytes are a complete file of its kind (what pwsnas reads back).
fn complete(path: &Path, bytes: &[u8]) -> bool {
    let name = path.file_name().unwrap().to_string_lossy();
    if name.ends_with(".json") {
        serde_json::from_slice::<serde_json::Value>(bytes).is_ok()
    } else if name.ends_with(".safetensors") {
        pwsnas::fsutil::tensors_from_bytes(path, bytes).is_ok()
    } else if name == "events.jsonl" {
        bytes.is_empty()
            || (bytes.ends_with(b"\n")
                && bytes
                    .split(|&b| b == b'\n')
                    .filter(|l| !l.is_empty())
                    .all(|l| serde_json::from_slice::<serde_json::Value>(l).is_ok()))
    } else {
        true
    }
}

/// After a failed command: no temporary file, and every file either as it was or complete.
fn old_or_new(before: &BTreeMap<PathBuf, Vec<u8>>, after: &BTreeMap<PathBuf, Vec<u8>>) {
    for (path, bytes) in after {
        let name = path.file_name().unwrap().to_string_lossy();
        assert!(!name.ends_with(".tmp"), "a temporary file was left: {}", path.display());
        if before.get(path) != Some(bytes) {
            assert!(complete(path, bytes), "{} is half-written", path.display());
        }
    }
}

/// The retrained weights (the end result of a search), without the state's timings.
fn result(run: &Path) -> BTreeMap<String, Vec<f32>> {
    let tensors = pwsnas::fsutil::load_tensors(&run.join("retrain/weights.safetensors")).unwrap();
    tensors
        .into_iter()
        .filter(|(n, _)| !n.starts_with("meta."))
        .map(|(n, t)| (n, Vec::<f32>::try_from(t.flatten(0, -1).to_kind(tch::Kind::Float)).unwrap()))
        .collect()
}

/// A search of a few seconds (the CLI tests' tiny one, shortened further).
fn search(out: &Path) -> Vec<String> {
    let mut args = set(tiny(out), "--warmup-epochs", "1");
    args.extend(["--steps-per-epoch", "4"].map(String::from));
    args
}

/// The result of the search without any fault (computed once for every test here).
fn reference() -> &'static BTreeMap<String, Vec<f32>> {
    static REFERENCE: std::sync::OnceLock<BTreeMap<String, Vec<f32>>> = std::sync::OnceLock::new();
    REFERENCE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("reference");
        ok(search(&out));
        result(&out)
    })
}

fn supernet_only(out: &Path) -> Vec<String> {
    let mut args = search(out);
    args[0] = "supernet".into();
    args
}

fn fails_with(args: &[String], env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pwsnas"));
    cmd.args(args).env("PWSNAS_HOME", test_home());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "the faulty run should have failed");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "one error line: {stderr}");
    errors[0].to_string()
}

#[test]
fn a_full_disk_stops_the_stage_cleanly_and_the_rerun_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let expected = reference();
    let disk = Tmpfs::mount(&dir.path().join("disk"), "64m");
    let out = dir.path().join("disk/run");
    ok(supernet_only(&out));
    let before = snapshot(&out);

    let error = match &disk {
        Some(_) => {
            // Fill the disk, then give back a little: enough for run.json, not for a checkpoint.
            let filler = dir.path().join("disk/filler");
            let mut f = std::fs::File::create(&filler).unwrap();
            let chunk = vec![0u8; 1 << 16];
            while f.write_all(&chunk).is_ok() {}
            let _ = f.flush();
            let len = f.metadata().unwrap().len();
            f.set_len(len.saturating_sub(24 << 10)).unwrap();
            drop(f);
            let e = fails_with(&search(&out), &[]);
            std::fs::remove_file(&filler).unwrap();
            e
        }
        None => fails_with(&search(&out), &[("PWSNAS_FAULT_AFTER_WRITES", "2")]),
    };
    assert!(error.contains("No space left on device") && error.contains(out.to_str().unwrap()), "{error}");
    old_or_new(&before, &snapshot(&out));

    ok(search(&out));
    assert_eq!(&result(&out), expected, "the resumed run ends where the run without a fault does");
}

#[test]
fn a_read_only_run_directory_stops_the_stage_cleanly_and_the_rerun_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let expected = reference();
    let disk = Tmpfs::mount(&dir.path().join("disk"), "64m");
    let out = dir.path().join("disk/run");
    ok(supernet_only(&out));
    let before = snapshot(&out);

    let error = match &disk {
        Some(d) => {
            d.remount("ro");
            let e = fails_with(&search(&out), &[]);
            assert_eq!(snapshot(&out), before, "nothing changed on a read-only file system");
            d.remount("rw");
            e
        }
        None => {
            fails_with(&search(&out), &[("PWSNAS_FAULT_AFTER_WRITES", "0"), ("PWSNAS_FAULT_ERRNO", "30")])
        }
    };
    assert!(error.contains("Read-only file system") && error.contains(out.to_str().unwrap()), "{error}");
    old_or_new(&before, &snapshot(&out));

    ok(search(&out));
    assert_eq!(&result(&out), expected, "the resumed run ends where the run without a fault does");
}

#[test]
fn a_write_failing_at_any_point_of_a_search_leaves_complete_files_and_the_rerun_resumes() {
    // The injected fault, early (the first supernet checkpoint) and late (the retraining).
    let dir = tempfile::tempdir().unwrap();
    let expected = reference();
    for after in [1, 12] {
        let out = dir.path().join(format!("run-{after}"));
        let error = fails_with(&search(&out), &[("PWSNAS_FAULT_AFTER_WRITES", &after.to_string())]);
        assert!(error.contains("No space left on device"), "{error}");
        old_or_new(&BTreeMap::new(), &snapshot(&out));
        ok(search(&out));
        assert_eq!(&result(&out), expected, "fault after {after} writes");
    }
}
