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
pub fn check(bytes: &[u8], what: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.onnx");
    std::fs::write(&path, bytes).unwrap();
    let script = "import onnx,sys; m=onnx.load(sys.argv[1]); onnx.checker.check_model(m, full_check=True)";
    let out = Command::new("python3")
        .env("PYTHONPATH", onnx_site())
        .args(["-c", script])
        .arg(&path)
        .output()
        .expect("python3 (needed to run the ONNX checker) could not be started");
    assert!(out.status.success(), "onnx.checker rejected {what}:\n{}", String::from_utf8_lossy(&out.stderr));
}
