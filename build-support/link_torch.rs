//! Build script shared by every package that links libtorch (`pwsnas`, `pwsnas-models`).
//!
//! Why it exists: rustc links with `--as-needed`, which drops `libtorch_cuda.so` because no symbol
//! of it is referenced directly; without it CUDA never registers on GPU machines. It also bakes an
//! rpath to libtorch so the binary runs without `LD_LIBRARY_PATH`, and records where set-up put the
//! ONNX Runtime libraries (the CPU build, and the GPU build of `cargo xtask setup --gpu`) so the binary
//! can find them without flags.
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-env-changed=PWSNAS_ORT_DYLIB");
    println!("cargo:rerun-if-env-changed=PWSNAS_ORT_GPU_DYLIB");
    let libtorch = match std::env::var_os("LIBTORCH") {
        Some(path) => PathBuf::from(path),
        None => {
            panic!("LIBTORCH is not set: run `cargo xtask setup` (it installs libtorch and sets LIBTORCH through .cargo/config.toml)")
        }
    };
    let lib = libtorch.join("lib");
    let lib = match lib.canonicalize() {
        Ok(lib) => lib,
        Err(err) => panic!(
            "libtorch not found at {} ({err}): run `cargo xtask setup`, or point LIBTORCH at a PyTorch 2.11.0 `torch/` folder",
            lib.display()
        ),
    };
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "linux" {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
        if lib.join("libtorch_cuda.so").exists() {
            println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
            println!("cargo:rustc-link-arg=-L{}", lib.display());
            println!("cargo:rustc-link-arg=-ltorch_cuda");
            println!("cargo:rustc-link-arg=-Wl,--as-needed");
        }
    }
    println!("cargo:rustc-env=PWSNAS_BUILD_LIBTORCH_LIB={}", lib.display());
    let ort = std::env::var("PWSNAS_ORT_DYLIB")
        .ok()
        .and_then(|p| PathBuf::from(p).canonicalize().ok())
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    println!("cargo:rustc-env=PWSNAS_BUILD_ORT_DYLIB={ort}");
    // The GPU build (`cargo xtask setup --gpu`) may be installed after this build: its path is
    // recorded whether or not the file exists yet, and looked at when `--ep cuda` needs it.
    let ort_gpu = std::env::var("PWSNAS_ORT_GPU_DYLIB")
        .map(|p| PathBuf::from(&p).canonicalize().unwrap_or_else(|_| PathBuf::from(p)))
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    println!("cargo:rustc-env=PWSNAS_BUILD_ORT_GPU_DYLIB={ort_gpu}");
}
