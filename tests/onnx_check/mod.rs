//! The official ONNX checker (`onnx.checker.check_model(full_check=True)` from the `onnx` Python
//! package that `cargo xtask setup` installs), for the export tests.
use std::path::PathBuf;
use std::process::Command;

/// The folder holding the `onnx` Python package, installed by `cargo xtask setup`.
fn onnx_site() -> PathBuf {
    let deps =
        std::env::var("PWSNAS_DEPS").ok().or_else(|| option_env!("PWSNAS_DEPS").map(String::from)).expect(
            "PWSNAS_DEPS is not set; run the tests through cargo in the workspace after `cargo xtask setup`",
        );
    let site = PathBuf::from(deps).join("onnx-site");
    assert!(
        site.join("onnx").is_dir(),
        "the ONNX checker is not installed at {}: run `cargo xtask setup`",
        site.display()
    );
    site
}

/// `onnx.checker.check_model(full_check=True)` on `bytes`; panics with the checker's complaint.
#[allow(dead_code)]
pub fn check(bytes: &[u8], what: &str) {
    check_all(&[(bytes.to_vec(), what.to_string())]);
}

/// [`check`] on several models with one Python process (importing `onnx` is most of the cost); panics
/// naming the first model the checker rejects.
#[allow(dead_code)]
pub fn check_all(models: &[(Vec<u8>, String)]) {
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<PathBuf> = (0..models.len()).map(|k| dir.path().join(format!("model{k}.onnx"))).collect();
    for ((bytes, _), path) in models.iter().zip(&paths) {
        std::fs::write(path, bytes).unwrap();
    }
    let script = "import onnx,sys\nfor k, p in enumerate(sys.argv[1:]):\n  try: onnx.checker.check_model(onnx.load(p), full_check=True)\n  except Exception as e: sys.exit(f'{k}: {e}')";
    let out = Command::new("python3")
        .env("PYTHONPATH", onnx_site())
        .args(["-c", script])
        .args(&paths)
        .output()
        .expect("python3 (needed to run the ONNX checker) could not be started");
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let what = err
            .split(':')
            .next()
            .and_then(|k| k.trim().parse::<usize>().ok())
            .map_or("a model", |k| models[k].1.as_str());
        panic!("onnx.checker rejected {what}:\n{err}");
    }
}
