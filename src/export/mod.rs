//! `pwsnas export RUN`: turns a run's retrained architecture into a deployable `model.onnx`, proves
//! with ONNX Runtime that it computes what libtorch computes, measures both, and writes the reports.
//!
//! Steps: lower the retrained child to the graph IR ([`Supernet::graph`]), fold BatchNorm, attach
//! the [`metadata::ModelInfo`], write `model.onnx` atomically; load it in ONNX Runtime with every
//! graph optimisation on; check logit parity on a real validation batch ([`parity`]); measure top-1
//! of both runtimes on the whole test split; time both at batch 1 and 64 ([`latency`]); predict the
//! batch-1 latency from the latency table of this machine and setting and report how far off it
//! was ([`crate::latency`]); write
//! `report.json`, `report.md` and `report.html` ([`crate::report`]). Rerunning overwrites every
//! output. A parity failure still writes the reports (with the reason); the command then fails.
pub mod latency;
pub mod metadata;
pub mod parity;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use pwsnas_datasets::{batches, Augment, Batch, Dataset, Normalization, Order};
use pwsnas_models::{Arch, SpaceKind, Supernet};
use serde_json::json;
use tch::{Device, Tensor};

use crate::data::RunData;
use crate::fsutil::{read_json, write_atomic};
use crate::latency::{table, Predictor};
use crate::ort_runtime::{self, Ep, SessionConfig};
use crate::progress::Progress;
use crate::report::{self, History, LatencyPair, OnnxFacts, Provenance, Report};
use crate::retrain::{load_trained, RetrainResult};
use crate::run::RunDir;
use crate::search::ArchFile;
use latency::Plan;
use metadata::ModelInfo;

/// Default parity tolerance: `max |ORT - libtorch| / max |logit|`.
pub const DEFAULT_TOLERANCE: f64 = 1e-4;

/// Batch size of the larger latency measurement (the schema's `batch64`).
pub const LARGE_BATCH: usize = 64;

/// Options of `pwsnas export`.
#[derive(Clone, Debug)]
pub struct ExportOptions {
    pub ep: Ep,
    /// Intra-op threads for ONNX Runtime and libtorch (libtorch's default when `None`).
    pub threads: Option<usize>,
    pub ort_lib: Option<PathBuf>,
    pub tolerance: f64,
    pub plan: Plan,
    /// libtorch device (`cpu`, `cuda`, ...); follows `ep` when `None`.
    pub device: Option<String>,
    /// Validation images in the parity batch.
    pub parity_images: usize,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            ep: Ep::Cpu,
            threads: None,
            ort_lib: None,
            tolerance: DEFAULT_TOLERANCE,
            plan: Plan::default(),
            device: None,
            parity_images: 64,
        }
    }
}

/// The ONNX model of `arch` in `net`: lowered, BatchNorm folded, with `info` as metadata.
pub fn onnx_bytes(net: &Supernet, arch: &Arch, info: &ModelInfo) -> Vec<u8> {
    let mut graph = net.graph(arch, &format!("pwsnas_{}", info.space));
    graph.fold_batch_norm();
    graph.to_onnx_bytes(&info.to_metadata())
}

/// Runs `pwsnas export` on the run at `dir` and returns the report it wrote. A failed parity check
/// is not an error here: the report says `passed: false` and why.
pub fn run(dir: &Path, opts: &ExportOptions, progress: &Progress) -> Result<Report> {
    if !(opts.tolerance.is_finite() && opts.tolerance >= 0.0) {
        bail!("--tolerance {}: expected a number ≥ 0 (e.g. 1e-4)", opts.tolerance);
    }
    if opts.parity_images == 0 || opts.plan.runs == 0 {
        bail!("--parity-images and --latency-runs must be at least 1");
    }
    let mut run = RunDir::open(dir)?;
    // Export writes into the run: no other pwsnas process may work in it meanwhile.
    run.lock()?;
    progress.attach_events(&run.path("events.jsonl"))?;
    let arch_path = run.path("arch.json");
    if !arch_path.exists() {
        bail!(
            "{} has no arch.json (the search has not finished): run `pwsnas search --out {}` first",
            dir.display(),
            dir.display()
        );
    }
    let arch_file: ArchFile = read_json(&arch_path)?;
    let kind = arch_file.kind().with_context(|| format!("{} holds an invalid space", arch_path.display()))?;
    let arch = kind
        .parse_arch(&arch_file.arch)
        .with_context(|| format!("{} holds an invalid arch", arch_path.display()))?;
    // The library first: a missing ONNX Runtime or execution provider fails before any slow step.
    let rt = ort_runtime::runtime(opts.ort_lib.as_deref())?;
    rt.check_ep(opts.ep)?;
    let device_name = opts.device.clone().unwrap_or_else(|| opts.ep.name().to_string());
    let device = crate::device::parse(&device_name)?;
    let net = load_trained(&run, &arch_file, device)?;
    let settings = &run.info.settings;
    let data = RunData::load(settings)?;
    let [c, h, w] = kind.input_shape();
    if data.shape() != [c, h, w] || data.classes.len() != kind.classes() {
        bail!(
            "the run's data ({}: {:?} images, {} classes) does not fit its architecture ({c}×{h}×{w} input, {} classes) in {}",
            settings.data,
            data.shape(),
            data.classes.len(),
            kind.classes(),
            arch_path.display()
        );
    }
    let threads = opts.threads.unwrap_or_else(crate::latency::default_threads).max(1);
    tch::set_num_threads(threads as i32);

    let info = ModelInfo {
        arch: arch_file.arch.clone(),
        space: kind.name().to_string(),
        space_params: kind.params_json(),
        input_shape: [c, h, w],
        mean: data.norm.mean.clone(),
        std: data.norm.std.clone(),
        classes: data.classes.clone(),
        dataset: data.name.clone(),
        pwsnas_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let bytes = onnx_bytes(&net, &arch, &info);
    let model_path = run.path("model.onnx");
    write_atomic(&model_path, &bytes)?;
    let summary = pwsnas_onnx::summary(&bytes)?;
    for op in ["BatchNormalization", "Identity"] {
        if summary.op_counts.contains_key(op) {
            bail!("internal error: the exported graph still has {op} nodes; please report this");
        }
    }
    progress.info(format!(
        "export: {} ({} bytes, {} nodes: {})",
        model_path.display(),
        bytes.len(),
        summary.node_count,
        summary.op_counts.iter().map(|(k, v)| format!("{k}×{v}")).collect::<Vec<_>>().join(" ")
    ));

    let cfg = SessionConfig { ep: opts.ep, threads };
    let mut model = rt.session_from_file(&model_path, cfg)?;
    let read_back = ModelInfo::from_entries(&model.metadata()?, &model_path.display().to_string())?;
    if read_back != info {
        bail!(
            "internal error: the metadata ONNX Runtime reads from {} differs from what was written",
            model_path.display()
        );
    }

    let parity_source = if data.val.is_empty() { &data.test } else { &data.val };
    let parity_batch = first_batch(parity_source, &data.norm, opts.parity_images)
        .context("the run has no validation or test images to check parity on")?;
    let parity = parity::check(&net, &arch, &mut model, &parity_batch, opts.tolerance)?;
    progress.info(format!(
        "parity on {} validation images: max abs diff {:.3e} ({:.3e} of the logit scale; tolerance {:.1e}), top-1 agreement {:.2}% — {}",
        parity.images,
        parity.max_abs_diff,
        parity.scaled_diff,
        parity.tolerance,
        parity.top1_agreement * 100.0,
        if parity.passed { "passed" } else { "FAILED" }
    ));

    let bar = progress.bar(data.test.len() as u64, "accuracy");
    let mut accuracy = parity::test_accuracy(&net, &arch, &mut model, &data, 256, &bar)?;
    bar.finish_and_clear();
    let retrain: Option<RetrainResult> = read_json(&run.retrain_dir().join("result.json")).ok();
    accuracy.retrain_test_accuracy = retrain.as_ref().map(|r| r.test_accuracy);
    progress.info(format!(
        "test accuracy on {} images: libtorch {:.2}%, ONNX Runtime {:.2}% (difference {:+.2} pp)",
        accuracy.test_images,
        accuracy.libtorch * 100.0,
        accuracy.ort * 100.0,
        accuracy.difference_pp
    ));

    let timing_source = if data.test.is_empty() { parity_source } else { &data.test };
    let large =
        tile(&first_batch(timing_source, &data.norm, LARGE_BATCH).context("no images to time")?, LARGE_BATCH);
    let one = tile(&large, 1);
    let bar = progress.bar(4, "latency");
    let timed = |what: &str, f: &mut dyn FnMut() -> Result<latency::LatencyStats>| {
        bar.set_message(what.to_string());
        let stats = f();
        bar.inc(1);
        stats
    };
    let ort_b1 = timed("ORT batch 1", &mut || latency::ort(&mut model, &one.images, shape(&one), opts.plan))?;
    let ort_b64 =
        timed("ORT batch 64", &mut || latency::ort(&mut model, &large.images, shape(&large), opts.plan))?;
    let torch_b1 =
        timed("libtorch batch 1", &mut || latency::libtorch(&net, &arch, &tensor(&one, device), opts.plan))?;
    let torch_b64 = timed("libtorch batch 64", &mut || {
        latency::libtorch(&net, &arch, &tensor(&large, device), opts.plan)
    })?;
    bar.finish_and_clear();
    let speedup = |torch: &latency::LatencyStats, ort: &latency::LatencyStats| torch.p50_ms / ort.p50_ms;
    let latency = report::Latency {
        batch1_speedup: speedup(&torch_b1, &ort_b1),
        batch64_speedup: speedup(&torch_b64, &ort_b64),
        ort: LatencyPair { batch1: ort_b1, batch64: ort_b64 },
        libtorch: LatencyPair { batch1: torch_b1, batch64: torch_b64 },
        predicted_ms: None,
        prediction_error: None,
        latency_table: None,
        threads,
        ep: opts.ep.name().to_string(),
        libtorch_device: crate::device::name(device),
        cpu: latency::cpu_model(),
    };
    progress.info(format!(
        "latency p50 at batch 1: ONNX Runtime {:.4} ms, libtorch {:.4} ms ({:.2}× faster); at batch 64: {:.3} ms vs {:.3} ms ({:.2}×)",
        latency.ort.batch1.p50_ms,
        latency.libtorch.batch1.p50_ms,
        latency.batch1_speedup,
        latency.ort.batch64.p50_ms,
        latency.libtorch.batch64.p50_ms,
        latency.batch64_speedup
    ));

    let mut latency = latency;
    match predicted_latency(&run, &kind, &arch, cfg, opts.ort_lib.as_deref(), progress) {
        Ok((ms, table)) => {
            let error = ms / latency.ort.batch1.p50_ms - 1.0;
            progress.info(format!(
                "predicted latency at batch 1 (latency table {table}): {ms:.4} ms, {:+.1}% off the measured {:.4} ms",
                error * 100.0,
                latency.ort.batch1.p50_ms
            ));
            latency.predicted_ms = Some(ms);
            latency.prediction_error = Some(error);
            latency.latency_table = Some(table);
        }
        Err(e) => progress.info(format!("warning: no predicted latency: {e:#}")),
    }

    let cost = kind.cost(&arch);
    let history = History::read(&run.root);
    let report = Report {
        schema_version: report::SCHEMA_VERSION,
        arch: arch_file.arch.clone(),
        space: kind.name().to_string(),
        space_params: kind.params_json(),
        flops: cost.flops() as f64,
        params: cost.params() as f64,
        onnx: OnnxFacts {
            path: "model.onnx".into(),
            opset: summary.opset.unwrap_or(pwsnas_onnx::OPSET_VERSION),
            ir_version: summary.ir_version,
            bytes: bytes.len() as u64,
            nodes: summary.node_count,
            op_counts: summary.op_counts.clone(),
            parameters: summary.parameter_count,
            input: summary.inputs.first().map(ToString::to_string).unwrap_or_default(),
            output: summary.outputs.first().map(ToString::to_string).unwrap_or_default(),
            metadata: info.to_metadata().entries.into_iter().collect(),
        },
        parity,
        accuracy,
        latency,
        provenance: Provenance {
            run: run.root.display().to_string(),
            exported_at: crate::run::now(),
            seed: settings.seed,
            dataset: format!("{} ({})", data.name, settings.data),
            pwsnas: env!("CARGO_PKG_VERSION").to_string(),
            libtorch: crate::doctor::libtorch_version(),
            onnxruntime: rt.version.clone(),
            onnxruntime_library: rt.library.display().to_string(),
            retrain_epochs: retrain.map(|r| r.epochs),
            settings: json!({
                "space": settings.space, "space_params": settings.space_params, "data": settings.data,
                "image_size": settings.image_size, "sampler": settings.sampler,
                "supernet_epochs": settings.supernet.epochs, "shrink_metric": settings.shrink.metric,
                "angle_vector": settings.shrink.angle_vector, "copies": settings.shrink.copies,
                "param_budget": settings.shrink.param_budget, "epochs_after_shrink": settings.shrink.epochs_after_shrink,
                "search_strategy": settings.search.strategy, "population": settings.search.population,
                "generations": settings.search.generations, "retrain_epochs": settings.retrain.epochs,
                "max_flops": settings.search.max_flops, "max_params": settings.search.max_params,
                "max_latency_ms": settings.search.max_latency_ms,
            }),
        },
        shrinking: history.shrink.as_ref().ok().and_then(report::Shrinking::of),
    };
    let paths = report::write_all(&run.root, &report, &history)?;
    progress.info(format!(
        "reports: {}",
        paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    ));
    progress.event(
        "export_done",
        json!({
            "model": model_path, "reports": paths, "arch": report.arch,
            "parity": { "passed": report.parity.passed, "max_abs_diff": report.parity.max_abs_diff,
                        "scaled_diff": report.parity.scaled_diff, "reason": report.parity.reason },
            "accuracy": { "libtorch": report.accuracy.libtorch, "ort": report.accuracy.ort,
                          "test_images": report.accuracy.test_images },
            "latency_p50_ms": { "ort_batch1": report.latency.ort.batch1.p50_ms,
                                "libtorch_batch1": report.latency.libtorch.batch1.p50_ms,
                                "batch1_speedup": report.latency.batch1_speedup },
        }),
    );
    Ok(report)
}

/// The latency table's prediction for `arch` at `cfg`, and the table's path: the run's own table
/// (`latency_table.json`, from its search) when it is for this machine and setting, else the cached
/// one, else one measured now (see [`crate::latency::table::obtain`]).
fn predicted_latency(
    run: &RunDir,
    kind: &SpaceKind,
    arch: &Arch,
    cfg: SessionConfig,
    ort_lib: Option<&Path>,
    progress: &Progress,
) -> Result<(f64, String)> {
    let request = table::Request {
        kind,
        cfg,
        ort_lib,
        rebuild: false,
        build: Default::default(),
        first: Some(run.path(table::RUN_COPY)),
    };
    let got = table::obtain(&request, progress)?;
    let predictor =
        Predictor::new(&got.table, kind).with_context(|| format!("latency table {}", got.path.display()))?;
    Ok((predictor.predict_ms(arch), got.path.display().to_string()))
}

/// The first `n` images of `ds` (fewer if it is smaller) as one normalised batch.
fn first_batch(ds: &Dataset, norm: &Normalization, n: usize) -> Option<Batch> {
    batches(ds, norm, n, Order::Sequential, &Augment::none(), false, 0).next()
}

/// A batch of exactly `n` images: the images of `b` repeated (or cut) in order.
fn tile(b: &Batch, n: usize) -> Batch {
    let len = b.channels * b.height * b.width;
    let images =
        (0..n).flat_map(|i| b.images[(i % b.n) * len..(i % b.n + 1) * len].iter().copied()).collect();
    let labels = (0..n).map(|i| b.labels[i % b.n]).collect();
    Batch { images, labels, n, ..b.clone() }
}

fn shape(b: &Batch) -> [usize; 4] {
    [b.n, b.channels, b.height, b.width]
}

fn tensor(b: &Batch, device: Device) -> Tensor {
    crate::data::to_tensors(b, device).0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_repeats_images_in_order() {
        let b = Batch {
            images: vec![1.0, 2.0, 3.0, 4.0],
            labels: vec![0, 1],
            n: 2,
            channels: 1,
            height: 1,
            width: 2,
        };
        let t = tile(&b, 3);
        assert_eq!((t.n, t.images, t.labels), (3, vec![1.0, 2.0, 3.0, 4.0, 1.0, 2.0], vec![0, 1, 0]));
        assert_eq!(tile(&b, 1).images, [1.0, 2.0]);
    }
}
