//! Every ONNX Runtime library this binary can find (`ORT_DYLIB_PATH`, the CPU and the GPU build that
//! set-up recorded), each with its version and the execution providers compiled into it, for
//! `pwsnas doctor`.
//!
//! Why not through [`crate::ort_runtime`]: a process can load only one library as *the* runtime, and
//! doctor must describe them all. Each is opened here on its own (`dlopen` by full path keeps it
//! apart from the runtime's), asked through the C API entry point `OrtGetApiBase` for its version and
//! `GetAvailableProviders` (the providers it was built with; whether one can register, e.g. CUDA on a
//! machine without a GPU, only a session shows: `pwsnas doctor` tries that on the loaded runtime).
use std::ffi::{c_char, c_int, CStr};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::ort_runtime::{self, LibSource};

/// One library and what it offers.
#[derive(Clone, Debug, Serialize)]
pub struct Library {
    /// Where its path comes from (`ORT_DYLIB_PATH`, `build-time path`, `build-time GPU path`).
    pub source: String,
    pub path: String,
    pub version: Option<String>,
    /// The execution providers compiled in.
    pub providers: Vec<String>,
    /// Why it could not be read.
    pub error: Option<String>,
}

/// The libraries of every source that names one (see the module docs); a path named twice is
/// listed once.
pub fn libraries() -> Vec<Library> {
    let mut out: Vec<Library> = Vec::new();
    let mut candidates = Vec::new();
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        candidates.push((LibSource::Env, PathBuf::from(p)));
    }
    for (source, path) in
        [(LibSource::Build, ort_runtime::BUILD_CPU), (LibSource::BuildGpu, ort_runtime::BUILD_GPU)]
    {
        if !path.is_empty() {
            candidates.push((source, PathBuf::from(path)));
        }
    }
    for (source, path) in candidates {
        let canonical = path.canonicalize().unwrap_or_else(|_| path.clone());
        if out.iter().any(|l| Path::new(&l.path) == canonical) {
            continue;
        }
        let (version, providers, error) = match probe(&canonical) {
            Ok((v, p)) => (Some(v), p, None),
            Err(e) => (None, Vec::new(), Some(e)),
        };
        out.push(Library {
            source: source.to_string(),
            path: canonical.display().to_string(),
            version,
            providers,
            error,
        });
    }
    out
}

/// The version and compiled-in execution providers of the library at `path`.
fn probe(path: &Path) -> Result<(String, Vec<String>), String> {
    if !path.is_file() {
        return Err(if path.exists() { "not a file".into() } else { "no such file".into() });
    }
    // SAFETY: loading a shared library runs its initialisers; these are ONNX Runtime builds that the
    // user or set-up pointed at. The symbols are used with the C API's documented signatures, and
    // the library outlives every pointer taken from it (it is dropped at the end).
    unsafe {
        let lib = libloading::Library::new(path).map_err(|e| format!("cannot be loaded: {e}"))?;
        let base: libloading::Symbol<unsafe extern "system" fn() -> *const ort::sys::OrtApiBase> =
            lib.get(b"OrtGetApiBase\0").map_err(|e| format!("not an ONNX Runtime library: {e}"))?;
        let base = base();
        if base.is_null() {
            return Err("OrtGetApiBase returned nothing".into());
        }
        let version = CStr::from_ptr(((*base).GetVersionString)()).to_string_lossy().into_owned();
        let api = ((*base).GetApi)(ort::sys::ORT_API_VERSION);
        if api.is_null() {
            return Err(format!(
                "version {version} does not offer C API version {} (ONNX Runtime {}.x is needed)",
                ort::sys::ORT_API_VERSION,
                ort_runtime::EXPECTED_VERSION
            ));
        }
        let api = &*api;
        let mut list: *mut *mut c_char = std::ptr::null_mut();
        let mut len: c_int = 0;
        let status = (api.GetAvailableProviders)(&mut list, &mut len);
        if !status.0.is_null() {
            let why = CStr::from_ptr((api.GetErrorMessage)(status.0)).to_string_lossy().into_owned();
            (api.ReleaseStatus)(status.0);
            return Err(format!("cannot list its execution providers: {why}"));
        }
        let providers = if list.is_null() {
            Vec::new()
        } else {
            let names = (0..len.max(0) as usize)
                .map(|i| CStr::from_ptr(*list.add(i)).to_string_lossy().into_owned())
                .collect();
            let status = (api.ReleaseAvailableProviders)(list, len);
            if !status.0.is_null() {
                (api.ReleaseStatus)(status.0);
            }
            names
        };
        Ok((version, providers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ort_runtime::Ep;

    #[test]
    fn the_set_up_cpu_build_is_listed_with_its_cpu_provider() {
        let libs = libraries();
        let cpu = libs
            .iter()
            .find(|l| l.source == LibSource::Build.to_string() || l.source == LibSource::Env.to_string())
            .expect("set-up recorded a CPU build");
        assert_eq!(cpu.error, None, "{cpu:?}");
        assert!(
            cpu.version.as_deref().is_some_and(|v| v.starts_with(ort_runtime::EXPECTED_VERSION)),
            "{cpu:?}"
        );
        assert!(cpu.providers.iter().any(|p| p == Ep::Cpu.provider_name()), "{cpu:?}");
        let err = probe(Path::new("/nonexistent/libonnxruntime.so")).unwrap_err();
        assert_eq!(err, "no such file");
        let err = probe(Path::new("/proc/self/status")).unwrap_err();
        assert!(err.starts_with("cannot be loaded"), "{err}");
    }
}
