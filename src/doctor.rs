//! `pwsnas doctor`: what this binary finds — libtorch and its CUDA devices, the NVIDIA GPUs the driver
//! lists, every ONNX Runtime library (CPU and GPU build: version, compiled-in execution providers) and
//! the one it loads, the cache, the datasets — so a user can see why something does not work before
//! a long run.
use std::path::PathBuf;

use serde::Serialize;

/// Folder of the libtorch this process loaded (read from `/proc/self/maps`), else the one the build used.
pub fn libtorch_lib_dir() -> PathBuf {
    let _ = tch::Tensor::zeros([1], (tch::Kind::Float, tch::Device::Cpu));
    if let Ok(maps) = std::fs::read_to_string("/proc/self/maps") {
        for line in maps.lines() {
            if let Some(idx) = line.find('/') {
                let path = &line[idx..];
                if path.ends_with("/libtorch_cpu.so") {
                    if let Some(dir) = PathBuf::from(path).parent() {
                        return dir.to_path_buf();
                    }
                }
            }
        }
    }
    PathBuf::from(env!("PWSNAS_BUILD_LIBTORCH_LIB"))
}

/// Version of the loaded libtorch, from the `torch/version.py` beside its `lib/` folder.
pub fn libtorch_version() -> String {
    let dir = libtorch_lib_dir();
    let version_py = dir.parent().map(|p| p.join("version.py"));
    version_py
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|text| {
            text.lines().find_map(|l| {
                l.strip_prefix("__version__ = ")
                    .map(|v| v.trim().trim_matches(|c| c == '\'' || c == '"').to_string())
            })
        })
        .unwrap_or_else(|| "unknown (no torch/version.py beside the loaded library)".into())
}

#[derive(Serialize)]
pub struct Report {
    pub pwsnas: String,
    pub libtorch_version: String,
    pub libtorch_lib: String,
    pub cuda_available: bool,
    pub cuda_devices: i64,
    pub cudnn: bool,
    pub threads: i32,
    /// The NVIDIA GPUs the driver lists (none: `--ep cuda` cannot register).
    pub nvidia_gpus: Vec<String>,
    /// The ONNX Runtime library `--ep cpu` loads: paths tried, the one found, its version and
    /// execution providers.
    pub onnxruntime: crate::ort_runtime::OrtDescription,
    /// Every ONNX Runtime library found (`ORT_DYLIB_PATH`, the CPU and GPU builds of set-up), each
    /// with its version and compiled-in execution providers (`--ep cuda` loads the GPU build).
    pub onnxruntime_libraries: Vec<crate::ort_probe::Library>,
    pub cache: String,
    pub fashion_mnist: Option<String>,
    pub fashion_mnist_searched: Vec<String>,
}

pub fn report() -> Report {
    Report {
        pwsnas: env!("CARGO_PKG_VERSION").into(),
        libtorch_version: libtorch_version(),
        libtorch_lib: libtorch_lib_dir().display().to_string(),
        cuda_available: tch::Cuda::is_available(),
        cuda_devices: tch::Cuda::device_count(),
        cudnn: tch::Cuda::cudnn_is_available(),
        threads: tch::get_num_threads(),
        nvidia_gpus: crate::host::nvidia_gpus(),
        onnxruntime: crate::ort_runtime::describe(None, crate::ort_runtime::Ep::Cpu),
        onnxruntime_libraries: crate::ort_probe::libraries(),
        cache: std::env::var("PWSNAS_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|_| {
                PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/pwsnas")
            })
            .display()
            .to_string(),
        fashion_mnist: pwsnas_datasets::fashion_mnist_dir().map(|p| p.display().to_string()),
        fashion_mnist_searched: pwsnas_datasets::fashion_mnist_candidates()
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
    }
}
