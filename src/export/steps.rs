//! The steps of `pwsnas export` (see [`super::run`] for the order): each takes the [`Job`] and the
//! previous steps' results as plain values and returns its own.
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use pwsnas_datasets::{batches, Augment, Batch, Dataset, Normalization, Order};
use pwsnas_models::{Arch, SpaceKind, Supernet};
use pwsnas_onnx::{ModelSummary, Precision};
use serde_json::json;
use tch::{Device, Tensor};

use super::metadata::ModelInfo;
use super::{parity, ExportOptions, LARGE_BATCH};
use crate::data::RunData;
use crate::fsutil::{read_json, write_atomic};
use crate::latency::{table, Predictor};
use crate::ort_runtime::{self, OrtModel, Runtime, SessionConfig};
use crate::progress::Progress;
use crate::report::{
    self, Accuracy, History, Latency, LatencyPair, OnnxFacts, Parity, PrecisionCheck, Provenance, Report,
};
use crate::retrain::{load_trained, RetrainResult};
use crate::run::RunDir;
use crate::search::ArchFile;
use crate::timing::{self, LatencyStats};

/// What every step works on: the options, the run, its architecture, the retrained network, the
/// data, the loaded ONNX Runtime and how sessions run.
pub struct Job {
    pub opts: ExportOptions,
    pub run: RunDir,
    pub arch_file: ArchFile,
    pub kind: SpaceKind,
    pub arch: Arch,
    pub rt: &'static Runtime,
    pub cfg: SessionConfig,
    pub device: Device,
    pub net: Supernet,
    pub data: RunData,
    pub info: ModelInfo,
}

/// The written model.
pub struct Exported {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    pub summary: ModelSummary,
}

/// Checks the options and the run, locks it, loads ONNX Runtime with the execution provider (first:
/// a missing library or provider fails before any slow step), the retrained network and the data.
pub fn prepare(dir: &std::path::Path, opts: &ExportOptions, progress: &Progress) -> Result<Job> {
    let tolerance = opts.tolerance();
    if !(tolerance.is_finite() && tolerance >= 0.0) {
        bail!("--tolerance {tolerance}: expected a number ≥ 0 (e.g. 1e-4)");
    }
    if !(opts.max_accuracy_loss_pp.is_finite() && opts.max_accuracy_loss_pp >= 0.0) {
        bail!("--max-accuracy-loss {}: expected percentage points ≥ 0 (e.g. 0.5)", opts.max_accuracy_loss_pp);
    }
    if !(opts.timing.min_session_ms.is_finite() && opts.timing.min_session_ms >= 0.0) {
        bail!("--latency-session-ms {}: expected milliseconds ≥ 0 (e.g. 1000)", opts.timing.min_session_ms);
    }
    if opts.parity_images == 0 || opts.timing.plan.runs == 0 {
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
    if run.info.settings.retrain.epochs == 0 {
        bail!(
            "{} ends with its search (retrain.epochs = 0: its cell is judged by a benchmark table, arch.json): there is no retrained model to export; retrain it with `pwsnas train --run {} --retrain-epochs N` (or search with --retrain-epochs N > 0)",
            dir.display(),
            dir.display()
        );
    }
    let kind = arch_file.kind().with_context(|| format!("{} holds an invalid space", arch_path.display()))?;
    let arch = kind
        .parse_arch(&arch_file.arch)
        .with_context(|| format!("{} holds an invalid arch", arch_path.display()))?;
    let rt = ort_runtime::runtime(opts.ort_lib.as_deref(), opts.ep)?;
    let device = crate::device::parse(opts.device.as_deref().unwrap_or(opts.ep.name()))?;
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
    let cfg = SessionConfig { ep: opts.ep, threads };
    Ok(Job { opts: opts.clone(), run, arch_file, kind, arch, rt, cfg, device, net, data, info })
}

/// Lowers, rewrites and encodes the child, writes `model.onnx` atomically and checks that it has no
/// training-mode or no-op node.
pub fn write_model(job: &Job, progress: &Progress) -> Result<Exported> {
    let o = &job.opts;
    let bytes = super::onnx_bytes_as(&job.net, &job.arch, &job.info, o.lowering, o.precision);
    let path = job.run.path("model.onnx");
    write_atomic(&path, &bytes)?;
    let summary = pwsnas_onnx::summary(&bytes)?;
    for op in ["BatchNormalization", "Identity"] {
        if summary.op_counts.contains_key(op) {
            bail!("internal error: the exported graph still has {op} nodes; please report this");
        }
    }
    progress.info(format!(
        "export: {} ({} bytes, {} graph in {}, {} nodes: {})",
        path.display(),
        bytes.len(),
        o.lowering.name(),
        o.precision.name(),
        summary.node_count,
        summary.op_counts.iter().map(|(k, v)| format!("{k}×{v}")).collect::<Vec<_>>().join(" ")
    ));
    Ok(Exported { path, bytes, summary })
}

/// An ONNX Runtime session of the written file, whose metadata must read back as written.
pub fn open_session(job: &Job, model: &Exported) -> Result<OrtModel> {
    let session = job.rt.session_from_file(&model.path, job.cfg)?;
    let read_back = ModelInfo::from_entries(&session.metadata()?, &model.path.display().to_string())?;
    if read_back != job.info {
        bail!(
            "internal error: the metadata ONNX Runtime reads from {} differs from what was written",
            model.path.display()
        );
    }
    Ok(session)
}

/// Logit parity with libtorch on the first validation images (test images when there is no
/// validation split).
pub fn check_parity(job: &Job, session: &mut OrtModel, progress: &Progress) -> Result<Parity> {
    let batch = first_batch(parity_source(&job.data), &job.data.norm, job.opts.parity_images)
        .context("the run has no validation or test images to check parity on")?;
    let parity = parity::check(&job.net, &job.arch, session, &batch, job.opts.tolerance())?;
    progress.info(format!(
        "parity on {} validation images: max abs diff {:.3e} ({:.3e} of the logit scale; tolerance {:.1e}), top-1 agreement {:.2}% — {}",
        parity.images,
        parity.max_abs_diff,
        parity.scaled_diff,
        parity.tolerance,
        parity.top1_agreement * 100.0,
        if parity.passed { "passed" } else { "FAILED" }
    ));
    Ok(parity)
}

/// Top-1 accuracy of both runtimes on the whole test split, with the one retraining recorded.
pub fn measure_accuracy(job: &Job, session: &mut OrtModel, progress: &Progress) -> Result<Accuracy> {
    let bar = progress.bar(job.data.test.len() as u64, "accuracy");
    let mut accuracy = parity::test_accuracy(&job.net, &job.arch, session, &job.data, 256, &bar)?;
    bar.finish_and_clear();
    accuracy.retrain_test_accuracy = retrain_result(&job.run).map(|r| r.test_accuracy);
    progress.info(format!(
        "test accuracy on {} images: libtorch {:.2}%, ONNX Runtime {:.2}% (difference {:+.2} pp)",
        accuracy.test_images,
        accuracy.libtorch * 100.0,
        accuracy.ort * 100.0,
        accuracy.difference_pp
    ));
    Ok(accuracy)
}

/// For a reduced precision, the accuracy it loses against libtorch in `f32`, refused above
/// `--max-accuracy-loss`; `None` in `fp32`.
pub fn judge_precision(job: &Job, accuracy: &Accuracy, progress: &Progress) -> Option<PrecisionCheck> {
    let precision = job.opts.precision;
    if precision == Precision::Fp32 {
        return None;
    }
    let check = PrecisionCheck::judge(precision.name(), accuracy, job.opts.max_accuracy_loss_pp);
    progress.info(format!(
        "{}: loses {:+.2} pp of test accuracy against libtorch in fp32 (at most {:.2} pp allowed) — {}",
        check.precision,
        check.accuracy_loss_pp,
        check.max_accuracy_loss_pp,
        if check.passed { "accepted" } else { "REFUSED" }
    ));
    Some(check)
}

/// ONNX Runtime (across fresh sessions of the written model, [`timing::Protocol`]) and libtorch at
/// batch 1 and [`LARGE_BATCH`], on test images; an ONNX Runtime figure that shows a sign of noise
/// is flagged on stderr with what to do, as the reports flag it.
pub fn measure_latency(job: &Job, model: &Exported, progress: &Progress) -> Result<Latency> {
    let source = if job.data.test.is_empty() { parity_source(&job.data) } else { &job.data.test };
    let large = first_batch(source, &job.data.norm, LARGE_BATCH).context("no images to time")?;
    let large = tile(&large, LARGE_BATCH);
    let one = tile(&large, 1);
    let protocol = job.opts.timing;
    let plan = protocol.plan;
    let bar = progress.bar((2 * protocol.sessions.max(1) + 2) as u64, "latency");
    let open = || job.rt.session_from_bytes(&model.bytes, &model.path.display().to_string(), job.cfg);
    let ort = |what: &str, batch: &Batch| {
        bar.set_message(what.to_string());
        let model =
            timing::sessions::Timed { open: Box::new(open), input: &batch.images, shape: shape(batch) };
        timing::sessions::time_all(protocol, &mut [model], || bar.inc(1)).map(|mut v| v.remove(0))
    };
    let ort_b1 = ort("ORT batch 1", &one)?;
    let ort_b64 = ort("ORT batch 64", &large)?;
    let (net, arch, device) = (&job.net, &job.arch, job.device);
    let timed = |what: &str, f: &mut dyn FnMut() -> Result<LatencyStats>| {
        bar.set_message(what.to_string());
        let stats = f();
        bar.inc(1);
        stats
    };
    let torch_b1 =
        timed("libtorch batch 1", &mut || timing::libtorch(net, arch, &tensor(&one, device), plan))?;
    let torch_b64 =
        timed("libtorch batch 64", &mut || timing::libtorch(net, arch, &tensor(&large, device), plan))?;
    bar.finish_and_clear();
    for (what, stats) in [("batch 1", &ort_b1), ("batch 64", &ort_b64)] {
        if let Some(noise) = stats.noise.as_ref().filter(|n| !n.reliable()) {
            progress.info(format!(
                "warning: the ONNX Runtime latency at {what} ({:.4} ms) is not reliable: {}. {}",
                stats.p50_ms,
                noise.warnings.join("; "),
                noise.advice(job.cfg.threads)
            ));
        }
    }
    let speedup = |torch: &LatencyStats, ort: &LatencyStats| torch.p50_ms / ort.p50_ms;
    let latency = Latency {
        batch1_speedup: speedup(&torch_b1, &ort_b1),
        batch64_speedup: speedup(&torch_b64, &ort_b64),
        ort: LatencyPair { batch1: ort_b1, batch64: ort_b64 },
        libtorch: LatencyPair { batch1: torch_b1, batch64: torch_b64 },
        predicted_ms: None,
        prediction_error: None,
        latency_table: None,
        threads: job.cfg.threads,
        ep: job.cfg.ep.name().to_string(),
        libtorch_device: crate::device::name(device),
        cpu: crate::host::cpu_model(),
        gpu: (job.cfg.ep == ort_runtime::Ep::Cuda || device.is_cuda()).then(crate::host::gpu_model),
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
    Ok(latency)
}

/// The latency table's prediction for the child at batch 1 and its error against the measurement
/// (the run's own table when it is for this machine and setting, else the cached one, else one
/// measured now: [`table::obtain`]); a table that cannot be had is a warning, not a failure.
pub fn predict_latency(job: &Job, mut latency: Latency, progress: &Progress) -> Latency {
    let request = table::Request {
        kind: &job.kind,
        cfg: job.cfg,
        ort_lib: job.opts.ort_lib.as_deref(),
        rebuild: false,
        build: Default::default(),
        first: Some(job.run.path(table::RUN_COPY)),
    };
    let predicted = table::obtain(&request, progress).and_then(|got| {
        let predictor = Predictor::new(&got.table, &job.kind)
            .with_context(|| format!("latency table {}", got.path.display()))?;
        Ok((predictor.predict_ms(&job.arch), got.path.display().to_string()))
    });
    match predicted {
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
    latency
}

/// The report of the measurements; its provenance carries the run's settings and the export's
/// options as they are (serialised, not picked).
pub fn assemble(
    job: &Job,
    model: &Exported,
    parity: Parity,
    accuracy: Accuracy,
    precision: Option<PrecisionCheck>,
    latency: Latency,
) -> Report {
    let (kind, s, settings) = (&job.kind, &model.summary, &job.run.info.settings);
    let cost = kind.cost(&job.arch);
    Report {
        schema_version: report::SCHEMA_VERSION,
        arch: job.arch_file.arch.clone(),
        space: kind.name().to_string(),
        space_params: kind.params_json(),
        flops: cost.flops() as f64,
        params: cost.params() as f64,
        onnx: OnnxFacts {
            path: "model.onnx".into(),
            opset: s.opset.unwrap_or(pwsnas_onnx::OPSET_VERSION),
            ir_version: s.ir_version,
            bytes: model.bytes.len() as u64,
            nodes: s.node_count,
            op_counts: s.op_counts.clone(),
            parameters: s.parameter_count,
            input: s.inputs.first().map(ToString::to_string).unwrap_or_default(),
            output: s.outputs.first().map(ToString::to_string).unwrap_or_default(),
            metadata: job.info.to_metadata().entries.into_iter().collect(),
            lowering: job.opts.lowering.name().to_string(),
            precision: job.opts.precision.name().to_string(),
        },
        parity,
        accuracy,
        precision,
        latency,
        provenance: Provenance {
            run: job.run.root.display().to_string(),
            exported_at: crate::run::now(),
            seed: settings.seed,
            dataset: format!("{} ({})", job.data.name, settings.data),
            pwsnas: env!("CARGO_PKG_VERSION").to_string(),
            libtorch: crate::doctor::libtorch_version(),
            onnxruntime: job.rt.version.clone(),
            onnxruntime_library: job.rt.library.display().to_string(),
            retrain_epochs: retrain_result(&job.run).map(|r| r.epochs),
            settings: serde_json::to_value(settings).expect("settings serialise"),
            export: serde_json::to_value(&job.opts).expect("export options serialise"),
        },
        shrinking: History::read(&job.run.root).shrink.as_ref().ok().and_then(report::Shrinking::of),
        method: Some(settings.search.method.name().to_string()),
        benchmark: job.arch_file.benchmark.clone(),
    }
}

/// Writes `report.json`, `report.md`, `report.html` and the drawing of the child beside the model
/// (`arch.svg`), and records the `export_done` event.
pub fn write_reports(job: &Job, report: &Report, progress: &Progress) -> Result<()> {
    let paths = report::write_all(&job.run.root, report, &History::read(&job.run.root))?;
    let drawing = job.run.path("arch.svg");
    write_atomic(&drawing, report::drawing::of_child(&job.kind, &job.arch).as_bytes())?;
    progress.info(format!(
        "reports: {}; drawing: {}",
        paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
        drawing.display()
    ));
    progress.event(
        "export_done",
        json!({
            "model": job.run.path("model.onnx"), "reports": paths, "drawing": drawing, "arch": report.arch,
            "lowering": report.onnx.lowering, "precision": report.onnx.precision,
            "parity": { "passed": report.parity.passed, "max_abs_diff": report.parity.max_abs_diff,
                        "scaled_diff": report.parity.scaled_diff, "reason": report.parity.reason },
            "precision_check": report.precision,
            "accuracy": { "libtorch": report.accuracy.libtorch, "ort": report.accuracy.ort,
                          "test_images": report.accuracy.test_images },
            "latency_p50_ms": { "ort_batch1": report.latency.ort.batch1.p50_ms,
                                "libtorch_batch1": report.latency.libtorch.batch1.p50_ms,
                                "batch1_speedup": report.latency.batch1_speedup },
        }),
    );
    Ok(())
}

fn retrain_result(run: &RunDir) -> Option<RetrainResult> {
    read_json(&run.retrain_dir().join("result.json")).ok()
}

/// The validation split, or the test split when there is none.
fn parity_source(data: &RunData) -> &Dataset {
    if data.val.is_empty() {
        &data.test
    } else {
        &data.val
    }
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
