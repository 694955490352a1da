//! ONNX Runtime for pwsnas: finding and loading the shared library, the process-wide environment,
//! sessions with a chosen execution provider and thread count, and the facts `pwsnas doctor` shows.
//!
//! Why a module of its own: `ort` is built with `load-dynamic`, so nothing works until a
//! `libonnxruntime.so` is loaded, and `ort` allows one library and one environment per process.
//! Every user of ONNX Runtime (export validation, latency, `pwsnas infer`, tests, benchmarks) goes
//! through [`runtime`], which loads the library once, from the first source that is given:
//! `--ort-lib PATH`, then `ORT_DYLIB_PATH`, then the path `cargo xtask setup` recorded at build time
//! (with `--ep cuda`, the GPU build that `cargo xtask setup --gpu` installs; else the CPU build). A
//! path the user names is never silently replaced by another library; when it does not load, the
//! error says what was tried, why it failed, and what to do.
//!
//! Execution providers are explicit: `--ep cuda` needs a library with the CUDA provider compiled in
//! *and* a CUDA device it can register on ([`Runtime::check_ep`] tries, on a one-node model); it fails
//! with a clear error otherwise and never falls back silently to the CPU.
use std::ffi::{c_char, c_int, CStr};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use anyhow::{bail, Context, Result};
use ort::ep::ExecutionProvider;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::TensorRef;
use serde::Serialize;

/// The ONNX Runtime version pwsnas is built for (`ort` 2.0.0-rc.15 needs at least 1.31).
pub const EXPECTED_VERSION: &str = "1.31";

/// Where a candidate library path came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LibSource {
    /// `--ort-lib PATH`.
    Flag,
    /// The `ORT_DYLIB_PATH` environment variable.
    Env,
    /// The path `cargo xtask setup` recorded when this binary was built.
    Build,
    /// The GPU build's path `cargo xtask setup --gpu` records (`--ep cuda` only).
    BuildGpu,
}

impl fmt::Display for LibSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LibSource::Flag => "--ort-lib",
            LibSource::Env => "ORT_DYLIB_PATH",
            LibSource::Build => "build-time path",
            LibSource::BuildGpu => "build-time GPU path",
        })
    }
}

/// A library path to try, with its source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub source: LibSource,
    pub path: PathBuf,
}

/// The library to load for `ep`: `explicit` (`--ort-lib`) when given, else `ORT_DYLIB_PATH` when
/// set, else the build-time path set-up recorded (for [`Ep::Cuda`], the GPU build's). A path the
/// user names is never replaced by another one: if it does not load, that is the error.
pub fn candidate(explicit: Option<&Path>, ep: Ep) -> Option<Candidate> {
    if let Some(path) = explicit {
        return Some(Candidate { source: LibSource::Flag, path: path.to_path_buf() });
    }
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        return Some(Candidate { source: LibSource::Env, path: PathBuf::from(p) });
    }
    let (source, build) = match ep {
        Ep::Cpu => (LibSource::Build, BUILD_CPU),
        Ep::Cuda => (LibSource::BuildGpu, BUILD_GPU),
    };
    (!build.is_empty()).then(|| Candidate { source, path: PathBuf::from(build) })
}

/// The CPU build's path recorded at build time (empty when set-up had not run).
pub const BUILD_CPU: &str = env!("PWSNAS_BUILD_ORT_DYLIB");
/// The GPU build's path recorded at build time (`cargo xtask setup --gpu` installs it there).
pub const BUILD_GPU: &str = env!("PWSNAS_BUILD_ORT_GPU_DYLIB");

/// The loaded library and the process-wide ONNX Runtime environment.
pub struct Runtime {
    env: ort::environment::Environment,
    pub library: PathBuf,
    pub source: LibSource,
    /// ONNX Runtime version, e.g. `1.31.1`.
    pub version: String,
}

static RUNTIME: OnceLock<Runtime> = OnceLock::new();
static INIT: Mutex<()> = Mutex::new(());

/// What to do when no library loads.
fn setup_hint(ep: Ep) -> &'static str {
    match ep {
        Ep::Cpu => concat!(
            "run `cargo xtask setup` (it installs onnxruntime==1.31.1), ",
            "or pass --ort-lib PATH / set ORT_DYLIB_PATH to a libonnxruntime.so.1.31.x"
        ),
        Ep::Cuda => concat!(
            "run `cargo xtask setup --gpu` (it installs onnxruntime-gpu==1.31.1), ",
            "or pass --ort-lib PATH / set ORT_DYLIB_PATH to the libonnxruntime.so.1.31.x of a GPU build"
        ),
    }
}

/// The ONNX Runtime of this process for execution provider `ep`, loading the library on first use
/// (see the module docs for where it comes from) and checking that it can run `ep`
/// ([`Runtime::check_ep`]). A later call naming another library than the loaded one is an error,
/// since a process can load only one.
pub fn runtime(explicit: Option<&Path>, ep: Ep) -> Result<&'static Runtime> {
    let rt = load_runtime(explicit, ep)?;
    rt.check_ep(ep)?;
    Ok(rt)
}

fn load_runtime(explicit: Option<&Path>, ep: Ep) -> Result<&'static Runtime> {
    let _guard = INIT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(rt) = RUNTIME.get() {
        if let Some(path) = explicit {
            if !same_file(path, &rt.library) {
                bail!(
                    "this process already loaded ONNX Runtime from {}; it cannot also load {}",
                    rt.library.display(),
                    path.display()
                );
            }
        }
        return Ok(rt);
    }
    let Some(c) = candidate(explicit, ep) else {
        bail!(
            "cannot load the ONNX Runtime library: none was given (no --ort-lib, ORT_DYLIB_PATH is not set, and \
             this binary was built without `cargo xtask setup`); {}",
            setup_hint(ep)
        );
    };
    match load(&c) {
        Ok(rt) => Ok(RUNTIME.get_or_init(|| rt)),
        Err(why) => bail!(
            "cannot load the ONNX Runtime library (version {EXPECTED_VERSION}.x is needed) from {} {}: {why}\n{}",
            c.source,
            c.path.display(),
            setup_hint(ep)
        ),
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// Loads one candidate; the error says why it is not usable.
fn load(c: &Candidate) -> std::result::Result<Runtime, String> {
    if !c.path.exists() {
        return Err("no such file".into());
    }
    if c.path.is_dir() {
        return Err("is a folder, expected the libonnxruntime.so file".into());
    }
    let builder = ort::init_from(&c.path).map_err(|e| match &e {
        // The dynamic loader's own message (e.g. "invalid ELF header") is the error's source.
        ort::LoadDynamicError::Dlopen { error, .. } => match std::error::Error::source(error) {
            Some(why) => format!("cannot be loaded: {why}"),
            None => e.to_string(),
        },
        _ => e.to_string(),
    })?;
    let env = builder
        .with_name("pwsnas")
        .build()
        .map_err(|e| format!("loaded, but creating the environment failed: {e}"))?;
    let library = c.path.canonicalize().unwrap_or_else(|_| c.path.clone());
    Ok(Runtime { env, version: library_version(&library), library, source: c.source })
}

/// The version from the build info (`git-branch=rel-1.31.1`), else from the file name
/// (`libonnxruntime.so.1.31.1`).
fn library_version(library: &Path) -> String {
    let info = ort::info();
    if let Some(v) = info
        .split(|c: char| c == ',' || c.is_whitespace())
        .find_map(|part| part.strip_prefix("git-branch=rel-"))
    {
        return v.to_string();
    }
    let name = library.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    match name.split_once(".so.") {
        Some((_, v)) => v.to_string(),
        None => format!("unknown ({info})"),
    }
}

/// An execution provider pwsnas can run models on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ep {
    Cpu,
    Cuda,
}

impl Ep {
    /// ONNX Runtime's name of the provider.
    pub fn provider_name(self) -> &'static str {
        match self {
            Ep::Cpu => ort::ep::CPU::NAME,
            Ep::Cuda => ort::ep::CUDA::NAME,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Ep::Cpu => "cpu",
            Ep::Cuda => "cuda",
        }
    }
}

/// How a session runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    pub ep: Ep,
    /// Intra-op threads.
    pub threads: usize,
}

impl Runtime {
    /// The execution providers the loaded library was built with (ONNX Runtime's names).
    pub fn available_providers(&self) -> Result<Vec<String>> {
        let api = ort::api();
        let mut list: *mut *mut c_char = std::ptr::null_mut();
        let mut len: c_int = 0;
        // SAFETY: GetAvailableProviders fills `list` with `len` NUL-terminated strings that stay valid
        // until ReleaseAvailableProviders; a non-null status is an error that we release after reading.
        unsafe {
            status((api.GetAvailableProviders)(&mut list, &mut len))?;
            if list.is_null() {
                return Ok(Vec::new());
            }
            let names = (0..len.max(0) as usize)
                .map(|i| CStr::from_ptr(*list.add(i)).to_string_lossy().into_owned())
                .collect();
            status((api.ReleaseAvailableProviders)(list, len))?;
            Ok(names)
        }
    }

    /// Whether `ep` can be used with the loaded library: compiled in, and (for the CUDA provider)
    /// registered on a real session of a one-node model, once per process. The error says which of
    /// the two failed and what to do.
    pub fn check_ep(&self, ep: Ep) -> Result<()> {
        if ep == Ep::Cpu {
            return Ok(());
        }
        let available = self.available_providers()?;
        if !available.iter().any(|p| p == ep.provider_name()) {
            bail!(
                "--ep {}: the ONNX Runtime library {} has no {} compiled in (it has: {}); use --ep cpu, or run \
                 `cargo xtask setup --gpu` (or pass --ort-lib) for the GPU build of ONNX Runtime 1.31 \
                 (the onnxruntime-gpu wheel's libonnxruntime.so)",
                ep.name(),
                self.library.display(),
                ep.provider_name(),
                available.join(", ")
            );
        }
        static REGISTERED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
        let registered = REGISTERED.get_or_init(|| {
            let probe = tiny_model();
            let cfg = SessionConfig { ep, threads: 1 };
            let mut session = self.builder(cfg).map_err(|e| format!("{e}"))?;
            session.commit_from_memory(&probe).map(drop).map_err(|e| format!("{e}"))
        });
        if let Err(why) = registered {
            let gpus = crate::host::nvidia_gpus();
            let seen = if gpus.is_empty() {
                "no NVIDIA GPU is visible on this machine (the driver lists none)".to_string()
            } else {
                format!("the driver lists {}", gpus.join(", "))
            };
            bail!(
                "--ep {}: the {} is compiled into {}, but registering it failed: {why}\n{seen}; --ep cuda needs an \
                 NVIDIA GPU with its driver (libcuda.so.1) and the CUDA 13 and cuDNN 9 libraries (those of the set-up's \
                 torch wheel serve, see docs/gpu.md) — `pwsnas doctor` shows what is found; use --ep cpu on this \
                 machine (pwsnas never falls back to the CPU silently)",
                ep.name(),
                ep.provider_name(),
                self.library.display()
            );
        }
        Ok(())
    }

    /// A session for the model in `bytes`, with every graph optimisation on.
    pub fn session_from_bytes(&self, bytes: &[u8], what: &str, cfg: SessionConfig) -> Result<OrtModel> {
        self.check_ep(cfg.ep)?;
        let session = self
            .builder(cfg)
            .and_then(|mut b| b.commit_from_memory(bytes))
            .with_context(|| format!("ONNX Runtime cannot load {what}"))?;
        OrtModel::new(session, what)
    }

    /// A session for the model file at `path`, with every graph optimisation on.
    pub fn session_from_file(&self, path: &Path, cfg: SessionConfig) -> Result<OrtModel> {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        self.session_from_bytes(&bytes, &path.display().to_string(), cfg)
    }

    /// Writes to `path` the graph ONNX Runtime makes of the model in `bytes` with `cfg` (its
    /// optimized-model option): the graph it actually runs, to compare node counts.
    pub fn save_optimized(&self, bytes: &[u8], what: &str, cfg: SessionConfig, path: &Path) -> Result<()> {
        self.check_ep(cfg.ep)?;
        let commit = || -> ort::Result<Session> {
            let mut b = self.builder(cfg)?.with_optimized_model_path(path)?;
            b.commit_from_memory(bytes)
        };
        commit().with_context(|| format!("ONNX Runtime cannot load {what} to save its optimised graph"))?;
        Ok(())
    }

    fn builder(&self, cfg: SessionConfig) -> ort::Result<ort::session::builder::SessionBuilder> {
        let mut b = Session::builder(&self.env)?
            .with_optimization_level(GraphOptimizationLevel::All)?
            .with_intra_threads(cfg.threads.max(1))?
            .with_inter_threads(1)?;
        if cfg.ep == Ep::Cuda {
            b = b.with_execution_providers([ort::ep::CUDA::default().build().error_on_failure()])?;
        }
        Ok(b)
    }

    /// What `pwsnas doctor` shows.
    pub fn describe(&self) -> OrtDescription {
        OrtDescription {
            tried: Some(format!("{} {}", self.source, self.library.display())),
            library: Some(self.library.display().to_string()),
            version: Some(self.version.clone()),
            providers: self.available_providers().unwrap_or_else(|e| vec![format!("(cannot list: {e})")]),
            error: None,
        }
    }
}

/// A one-`Relu` model on `[batch, 1]`, for trying an execution provider.
fn tiny_model() -> Vec<u8> {
    use pwsnas_onnx::{Dim, GraphBuilder, Metadata};
    let shape = vec![Dim::Batch, Dim::Fixed(1)];
    let mut g = GraphBuilder::new("pwsnas_probe", "x", shape.clone());
    let x = g.input();
    let y = g.relu(&x);
    g.finish(&y, shape).to_onnx_bytes(&Metadata::new())
}

/// Turns an `OrtStatus` into a result (releasing it).
///
/// # Safety
/// `s` must be a status returned by an ONNX Runtime API call and not yet released.
unsafe fn status(s: ort::sys::OrtStatusPtr) -> Result<()> {
    // SAFETY: forwarded from the caller; `result_from_status` takes ownership of the status.
    unsafe { ort::Error::result_from_status(s) }.map_err(|e| anyhow::anyhow!("ONNX Runtime: {e}"))
}

/// ONNX Runtime as `pwsnas doctor` reports it.
#[derive(Clone, Debug, Serialize)]
pub struct OrtDescription {
    /// Where the library was looked for (`--ort-lib`, `ORT_DYLIB_PATH` or `build-time path`) and the
    /// path found there; `None` when none was given.
    pub tried: Option<String>,
    /// The library that loaded.
    pub library: Option<String>,
    pub version: Option<String>,
    /// Available execution providers.
    pub providers: Vec<String>,
    /// Why no library loaded.
    pub error: Option<String>,
}

/// Loads the runtime for `ep` (if none is loaded yet) and describes it, or what went wrong.
pub fn describe(explicit: Option<&Path>, ep: Ep) -> OrtDescription {
    match load_runtime(explicit, ep) {
        Ok(rt) => rt.describe(),
        Err(e) => OrtDescription {
            tried: candidate(explicit, ep).map(|c| format!("{} {}", c.source, c.path.display())),
            library: None,
            version: None,
            providers: Vec::new(),
            error: Some(format!("{e:#}")),
        },
    }
}

/// A loaded model: an ONNX Runtime session with one `f32` NCHW input and one logits output.
pub struct OrtModel {
    session: Session,
    input: String,
    output: String,
}

impl OrtModel {
    fn new(session: Session, what: &str) -> Result<OrtModel> {
        let (Some(input), Some(output)) = (session.inputs().first(), session.outputs().first()) else {
            bail!("{what} has no input or no output: expected one image input and one logits output");
        };
        let (input, output) = (input.name().to_string(), output.name().to_string());
        Ok(OrtModel { session, input, output })
    }

    /// The model's custom metadata (`metadata_props`) as ONNX Runtime reads it.
    pub fn metadata(&self) -> Result<Vec<(String, String)>> {
        let meta = self.session.metadata().context("ONNX Runtime cannot read the model metadata")?;
        let keys = meta.custom_keys().context("ONNX Runtime cannot list the metadata keys")?;
        Ok(keys.into_iter().filter_map(|k| meta.custom(&k).map(|v| (k, v))).collect())
    }

    /// Runs a batch `x` of shape `[n, c, h, w]`; returns the flat output (`n × classes` logits).
    pub fn run(&mut self, x: &[f32], shape: [usize; 4]) -> Result<Vec<f32>> {
        let n: usize = shape.iter().product();
        if x.len() != n {
            bail!("input has {} values but shape {shape:?} needs {n}", x.len());
        }
        let tensor =
            TensorRef::from_array_view((shape, x)).context("cannot wrap the input for ONNX Runtime")?;
        let outputs = self
            .session
            .run(ort::inputs![self.input.as_str() => tensor])
            .context("ONNX Runtime failed to run the model")?;
        let (_, logits) = outputs[self.output.as_str()]
            .try_extract_tensor::<f32>()
            .context("the model output is not an f32 tensor")?;
        Ok(logits.to_vec())
    }
}
