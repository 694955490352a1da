//! `cargo xtask setup --gpu`: ONNX Runtime's GPU build (the PyPI wheel `onnxruntime-gpu==1.31.1`,
//! with the CUDA execution provider compiled in) beside the CPU build, installed into the cache like
//! the other dependencies and linked as `.deps/onnxruntime-gpu`, where `.cargo/config.toml` points
//! `PWSNAS_ORT_GPU_DYLIB` (the library `pwsnas --ep cuda` loads when no `--ort-lib` or
//! `ORT_DYLIB_PATH` names one).
//!
//! It is installed when `--gpu` is given, and without it whenever an NVIDIA GPU is visible
//! (`/dev/nvidia0` exists or `nvidia-smi -L` lists one). The wheel is installed without its Python
//! dependencies: pwsnas loads its `libonnxruntime.so` directly. The CUDA 13 and cuDNN 9 libraries its
//! CUDA provider needs at run time are those of the torch wheel's `nvidia/*` packages (which libtorch
//! loads into the pwsnas process) or the machine's CUDA installation; `libcuda.so.1` is the driver's.
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Result};

/// The GPU wheel.
pub const ORT_GPU: &str = "onnxruntime-gpu==1.31.1";
/// The library inside the wheel, relative to `.deps/onnxruntime-gpu`.
pub const ORT_GPU_LIB: &str = "capi/libonnxruntime.so.1.31.1";

/// Whether set-up installs the GPU build: asked for with `--gpu`, or an NVIDIA GPU is visible.
pub fn wanted(args: &[String]) -> bool {
    args.iter().any(|a| a == "--gpu") || nvidia_gpu_visible()
}

fn nvidia_gpu_visible() -> bool {
    Path::new("/dev/nvidia0").exists()
        || Command::new("nvidia-smi")
            .arg("-L")
            .output()
            .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("GPU"))
}

/// Installs the GPU wheel into `deps` (unless it is there) and links its package as
/// `links/onnxruntime-gpu`; returns the library's path.
pub fn setup(deps: &Path, links: &Path) -> Result<PathBuf> {
    let dest = crate::pip_install(
        deps,
        "onnxruntime-gpu-1.31.1",
        ORT_GPU,
        false,
        "onnxruntime_gpu-1.31.1.dist-info",
    )?;
    let link = links.join("onnxruntime-gpu");
    crate::link(&dest.join("onnxruntime"), &link)?;
    let lib = link.join(ORT_GPU_LIB);
    if !lib.exists() {
        bail!("the {ORT_GPU} wheel has no {}", lib.display());
    }
    if !link.join("capi/libonnxruntime_providers_cuda.so").exists() {
        bail!("the {ORT_GPU} wheel has no CUDA execution provider (capi/libonnxruntime_providers_cuda.so)");
    }
    Ok(lib)
}
