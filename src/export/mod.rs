//! `pwsnas export RUN`: turns a run's retrained architecture into a deployable `model.onnx`, proves
//! with ONNX Runtime that it computes what libtorch computes, measures both, and writes the reports.
//!
//! [`run`] is the pipeline; each step is a function of [`steps`] with plain inputs and outputs:
//! [`steps::prepare`] (check the options and the run, load ONNX Runtime with the execution
//! provider, the retrained network and the data) → [`steps::write_model`] (lower the child
//! ([`Supernet::graph`]), fold BatchNorm, rewrite the graph unless `--no-optimize`
//! ([`pwsnas_onnx::Lowering`]), encode it in the precision asked for, attach the
//! [`metadata::ModelInfo`], write `model.onnx` atomically and check its invariants) →
//! [`steps::open_session`] (ONNX Runtime with every graph optimisation on; the metadata read back)
//! → [`steps::check_parity`] (logits on a real validation batch, [`parity`]) →
//! [`steps::measure_accuracy`] (top-1 of both runtimes on the whole test split; with `fp16`, the
//! accuracy it loses, refused above `--max-accuracy-loss`) → [`steps::measure_latency`] (both at
//! batch 1 and 64, [`crate::timing`]) → [`steps::predict_latency`] (the latency table's
//! prediction of batch 1 and how far off it was, [`crate::latency`]) → [`steps::assemble`] and
//! [`steps::write_reports`] (`report.json`, `report.md`, `report.html`, [`crate::report`]).
//!
//! Rerunning overwrites every output. A failed parity or precision check still writes the reports
//! (with the reason); the command then fails.
pub mod bench;
pub mod metadata;
pub mod parity;
pub mod steps;

use std::path::{Path, PathBuf};

use anyhow::Result;
use pwsnas_models::{Arch, Supernet};
use pwsnas_onnx::{Lowering, Precision};
use serde::Serialize;

use crate::ort_runtime::Ep;
use crate::progress::Progress;
use crate::report::Report;
use crate::timing::Protocol;
use metadata::ModelInfo;

/// Default parity tolerance in `fp32`: `max |ORT - libtorch| / max |logit|`.
pub const DEFAULT_TOLERANCE: f64 = 1e-4;

/// Default parity tolerance in `fp16`: half precision rounds every value to 11 significant bits
/// (a relative step of 2⁻¹¹ ≈ 4.9e-4), and the error of a few dozen layers adds up to about 1e-3 of
/// the logit scale on the spaces' networks (measured by the export tests); 1e-2 leaves room.
pub const DEFAULT_FP16_TOLERANCE: f64 = 1e-2;

/// Default largest test-accuracy loss (percentage points, ONNX Runtime against libtorch in `fp32`)
/// at which an `fp16` export is still accepted.
pub const DEFAULT_MAX_ACCURACY_LOSS_PP: f64 = 0.5;

/// Batch size of the larger latency measurement (the schema's `batch64`).
pub const LARGE_BATCH: usize = 64;

/// Options of `pwsnas export`; the report's provenance records them as they are.
#[derive(Clone, Debug, Serialize)]
pub struct ExportOptions {
    pub ep: Ep,
    /// Intra-op threads for ONNX Runtime and libtorch (libtorch's default when `None`).
    pub threads: Option<usize>,
    pub ort_lib: Option<PathBuf>,
    /// Parity tolerance; [`DEFAULT_TOLERANCE`] or [`DEFAULT_FP16_TOLERANCE`] when `None`.
    pub tolerance: Option<f64>,
    /// How latency is timed: ONNX Runtime across fresh sessions; libtorch with the same warm-up and
    /// timed runs in one go.
    pub timing: Protocol,
    /// libtorch device (`cpu`, `cuda`, ...); follows `ep` when `None`.
    pub device: Option<String>,
    /// Validation images in the parity batch.
    pub parity_images: usize,
    /// The graph rewrites (`--no-optimize`: [`Lowering::Plain`]).
    pub lowering: Lowering,
    pub precision: Precision,
    /// Largest accuracy loss (pp) an `fp16` export may have.
    pub max_accuracy_loss_pp: f64,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            ep: Ep::Cpu,
            threads: None,
            ort_lib: None,
            tolerance: None,
            timing: Protocol::default(),
            device: None,
            parity_images: 64,
            lowering: Lowering::Optimized,
            precision: Precision::Fp32,
            max_accuracy_loss_pp: DEFAULT_MAX_ACCURACY_LOSS_PP,
        }
    }
}

impl ExportOptions {
    /// The parity tolerance in effect.
    pub fn tolerance(&self) -> f64 {
        self.tolerance.unwrap_or(match self.precision {
            Precision::Fp32 => DEFAULT_TOLERANCE,
            Precision::Fp16 => DEFAULT_FP16_TOLERANCE,
        })
    }
}

/// The ONNX model of `arch` in `net`: lowered, BatchNorm folded, rewritten unless `lowering` is
/// [`Lowering::Plain`], in `fp32`, with `info` as metadata.
pub fn onnx_bytes(net: &Supernet, arch: &Arch, info: &ModelInfo, lowering: Lowering) -> Vec<u8> {
    onnx_bytes_as(net, arch, info, lowering, Precision::Fp32)
}

/// [`onnx_bytes`] computing in `precision` (input and output stay `f32`).
pub fn onnx_bytes_as(
    net: &Supernet,
    arch: &Arch,
    info: &ModelInfo,
    lowering: Lowering,
    precision: Precision,
) -> Vec<u8> {
    let mut graph = net.graph(arch, &format!("pwsnas_{}", info.space));
    graph.prepare(lowering);
    graph.to_onnx_bytes_as(&info.to_metadata(), precision)
}

/// Runs `pwsnas export` on the run at `dir` and returns the report it wrote. A failed parity or
/// precision check is not an error here: the report says `passed: false` and why.
pub fn run(dir: &Path, opts: &ExportOptions, progress: &Progress) -> Result<Report> {
    let job = steps::prepare(dir, opts, progress)?;
    let model = steps::write_model(&job, progress)?;
    let mut session = steps::open_session(&job, &model)?;
    let parity = steps::check_parity(&job, &mut session, progress)?;
    let accuracy = steps::measure_accuracy(&job, &mut session, progress)?;
    let precision = steps::judge_precision(&job, &accuracy, progress);
    let latency = steps::measure_latency(&job, &model, progress)?;
    let latency = steps::predict_latency(&job, latency, progress);
    let report = steps::assemble(&job, &model, parity, accuracy, precision, latency);
    steps::write_reports(&job, &report, progress)?;
    Ok(report)
}
