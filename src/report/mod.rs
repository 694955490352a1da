//! The export report: `report.json` (the versioned schema, [`Report`]), and its human renderings
//! `report.md` ([`markdown`]) and the self-contained `report.html` with inline SVG charts
//! ([`html`], [`charts`]).
//!
//! Why a schema of its own: `report.json` is what other programs and later pwsnas commands (latency
//! tables, comparisons of runs) read, so its fields are typed here once and versioned with
//! [`SCHEMA_VERSION`]; a reader refuses a report of another version instead of misreading it. The
//! human reports are pure functions of a [`Report`] and the run's [`History`] (shrinking and search
//! records), so they can be re-rendered without re-measuring.
pub mod charts;
pub mod drawing;
pub mod html;
pub mod markdown;

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::fsutil::{read_json, write_atomic, write_json};
use crate::method::MethodReport;
use crate::search::SearchReport;
use crate::shrink::report::ShrinkReport;
use crate::timing::LatencyStats;

/// Version of the `report.json` schema.
pub const SCHEMA_VERSION: u32 = 1;

/// `report.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema_version: u32,
    pub arch: String,
    pub space: String,
    pub space_params: Value,
    /// Multiply-adds of one image.
    pub flops: f64,
    /// Trainable parameters.
    pub params: f64,
    pub onnx: OnnxFacts,
    pub parity: Parity,
    pub accuracy: Accuracy,
    /// With a reduced precision (`fp16`): the accuracy it loses and whether that was accepted.
    #[serde(default)]
    pub precision: Option<PrecisionCheck>,
    pub latency: Latency,
    pub provenance: Provenance,
    /// How the space was shrunk and how much the supernet shared (from `shrink.json`), when recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shrinking: Option<Shrinking>,
    /// The search method that chose the architecture (`search.method`; absent in older reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The cell in the run's benchmark table (`--benchmark`, from `arch.json`), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub benchmark: Option<crate::benchmark::Lookup>,
}

/// The shrinking stage in short: what strategy 2 did to the supernet the search used, and how much
/// of the final space meets the constraints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Shrinking {
    /// The metric (`none`: no shrinking).
    pub metric: String,
    pub rounds: usize,
    pub final_space_size: f64,
    /// `--copies` (most per choice point) and the copies held per choice point at the end.
    pub max_copies: usize,
    pub copies: Vec<usize>,
    pub param_budget: f64,
    pub epochs_after_shrink: usize,
    /// Effective supernet parameters at the end, and of the original supernet.
    pub supernet_params: i64,
    pub supernet_params_original: i64,
    /// Mean children per weight copy in the final space, with the copies and with one copy per op.
    pub sharing_degree: f64,
    pub sharing_degree_one_copy: f64,
    /// Children of the final space that meet the constraints, when constraints were set.
    pub admissible: Option<crate::search::constraints::Admissible>,
}

impl Shrinking {
    /// The summary of a finished shrinking stage (`None` for one that did not record its final supernet).
    pub fn of(s: &ShrinkReport) -> Option<Shrinking> {
        let f = s.final_supernet.as_ref()?;
        Some(Shrinking {
            metric: format!("{:?}", s.metric).to_lowercase(),
            rounds: s.rounds.len(),
            final_space_size: s.final_space_size.unwrap_or(s.initial_space_size),
            max_copies: s.copies,
            copies: f.copies.clone(),
            param_budget: s.param_budget,
            epochs_after_shrink: s.epochs_after_shrink,
            supernet_params: f.params,
            supernet_params_original: f.params_original,
            sharing_degree: f.sharing_degree.mean_children_per_weight,
            sharing_degree_one_copy: f.sharing_degree_one_copy.mean_children_per_weight,
            admissible: s.final_admissible.clone(),
        })
    }

    /// One sentence for people.
    pub fn sentence(&self) -> String {
        let copies = self.copies.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        let mut s = format!(
            "Shrinking ({}, {} round(s)) left {} children; weight copies per choice point [{copies}] (at most {}, \
             parameter budget {}× the original supernet, {} epoch(s) of training after the last round): the \
             supernet has {} parameters (original {}) and each weight copy is shared by {:.1} children on average \
             ({:.1} with one copy per op).",
            self.metric,
            self.rounds,
            self.final_space_size,
            self.max_copies,
            self.param_budget,
            self.epochs_after_shrink,
            self.supernet_params,
            self.supernet_params_original,
            self.sharing_degree,
            self.sharing_degree_one_copy
        );
        if let Some(a) = &self.admissible {
            let _ = write!(s, " The constraints admit {}.", a.describe(self.final_space_size));
        }
        s
    }
}

/// The exported file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OnnxFacts {
    /// Relative to the run directory.
    pub path: String,
    pub opset: i64,
    pub ir_version: i64,
    pub bytes: u64,
    pub nodes: usize,
    /// Nodes per ONNX operator type.
    pub op_counts: BTreeMap<String, usize>,
    /// Number of stored weights (after BatchNorm folding).
    pub parameters: u64,
    /// Input and output with their shapes, e.g. `input [batch, 1, 28, 28]`.
    pub input: String,
    pub output: String,
    /// The model's metadata entries.
    pub metadata: BTreeMap<String, String>,
    /// `optimized` (the graph rewrites) or `plain` (`--no-optimize`).
    #[serde(default = "plain")]
    pub lowering: String,
    /// `fp32` or `fp16` (parameters and computation; input and output are `f32` in both).
    #[serde(default = "fp32")]
    pub precision: String,
}

fn plain() -> String {
    "plain".into()
}

fn fp32() -> String {
    "fp32".into()
}

/// ONNX Runtime against libtorch on one validation batch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Parity {
    pub images: usize,
    /// Largest absolute logit difference.
    pub max_abs_diff: f64,
    /// Largest absolute libtorch logit: the scale the tolerance is relative to.
    pub logit_scale: f64,
    /// `max_abs_diff / logit_scale`, compared with `tolerance`.
    pub scaled_diff: f64,
    /// Fraction of images whose top-1 class is the same in both.
    pub top1_agreement: f64,
    pub tolerance: f64,
    pub passed: bool,
    /// Why the check failed.
    pub reason: Option<String>,
}

/// Top-1 accuracy on the whole test split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    pub libtorch: f64,
    pub ort: f64,
    /// `(ort - libtorch) × 100`, in percentage points.
    pub difference_pp: f64,
    pub test_images: usize,
    /// Fraction of test images on which both predict the same class.
    pub prediction_agreement: f64,
    /// The test accuracy retraining recorded (`retrain/result.json`), when present.
    pub retrain_test_accuracy: Option<f64>,
}

/// A reduced-precision export judged by the test accuracy it loses.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrecisionCheck {
    pub precision: String,
    /// `(libtorch - ORT) × 100` on the test split: what the reduced precision costs (negative: it
    /// happened to gain).
    pub accuracy_loss_pp: f64,
    /// The largest loss accepted (`--max-accuracy-loss`).
    pub max_accuracy_loss_pp: f64,
    pub passed: bool,
    /// Why it was refused.
    pub reason: Option<String>,
}

impl PrecisionCheck {
    /// Judges `precision` by `accuracy` (ONNX Runtime in that precision against libtorch in f32).
    pub fn judge(precision: &str, accuracy: &Accuracy, max_accuracy_loss_pp: f64) -> PrecisionCheck {
        let loss = -accuracy.difference_pp;
        let reason = (loss > max_accuracy_loss_pp).then(|| {
            format!(
                "{precision} loses {loss:.2} pp of test accuracy ({:.2}% against {:.2}% in fp32), more than the {max_accuracy_loss_pp:.2} pp allowed (--max-accuracy-loss)",
                accuracy.ort * 100.0,
                accuracy.libtorch * 100.0
            )
        });
        PrecisionCheck {
            precision: precision.to_string(),
            accuracy_loss_pp: loss,
            max_accuracy_loss_pp,
            passed: reason.is_none(),
            reason,
        }
    }
}

/// Latency at batch 1 and batch 64 of one runtime.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatencyPair {
    pub batch1: LatencyStats,
    pub batch64: LatencyStats,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub ort: LatencyPair,
    pub libtorch: LatencyPair,
    /// The latency table's prediction for this arch at batch 1 (ms), for this machine and setting.
    pub predicted_ms: Option<f64>,
    /// `predicted_ms / ort.batch1.p50_ms - 1`: signed relative error of the prediction (0.1: 10% high).
    #[serde(default)]
    pub prediction_error: Option<f64>,
    /// The latency table the prediction comes from.
    #[serde(default)]
    pub latency_table: Option<String>,
    /// Intra-op threads of ONNX Runtime and libtorch.
    pub threads: usize,
    /// ONNX Runtime execution provider.
    pub ep: String,
    /// The device libtorch ran on.
    pub libtorch_device: String,
    pub cpu: String,
    /// The GPU model(s), when ONNX Runtime or libtorch ran on CUDA.
    #[serde(default)]
    pub gpu: Option<String>,
    /// libtorch p50 / ORT p50 at batch 1 (above 1: ORT is faster).
    pub batch1_speedup: f64,
    pub batch64_speedup: f64,
}

/// Where the model and the numbers come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    pub run: String,
    /// Seconds since the Unix epoch.
    pub exported_at: u64,
    pub seed: u64,
    pub dataset: String,
    pub pwsnas: String,
    pub libtorch: String,
    pub onnxruntime: String,
    pub onnxruntime_library: String,
    pub retrain_epochs: Option<usize>,
    /// The run's settings (every field of `run.json`'s settings).
    pub settings: Value,
    /// The options of `pwsnas export` (execution provider, threads, lowering, precision, ...).
    #[serde(default)]
    pub export: Value,
}

impl Report {
    /// Reads a `report.json`, refusing other schema versions.
    pub fn load(path: &Path) -> Result<Report> {
        let raw: Value = read_json(path)?;
        let version = raw.get("schema_version").and_then(Value::as_u64);
        if version != Some(u64::from(SCHEMA_VERSION)) {
            bail!(
                "{} has schema_version {}, this pwsnas reads version {SCHEMA_VERSION}: rerun `pwsnas export` on its run",
                path.display(),
                version.map_or("(none)".into(), |v| v.to_string())
            );
        }
        serde_json::from_value(raw)
            .with_context(|| format!("{} is not a valid pwsnas report", path.display()))
    }
}

/// What the run recorded before export, for the charts: each entry is the parsed file, or why it
/// could not be read (the report says so instead of failing).
pub struct History {
    pub shrink: std::result::Result<ShrinkReport, String>,
    pub search: std::result::Result<SearchReport, String>,
    /// `method.json` of a gradient-based method; `None` where the run has none (SPOS, FairNAS).
    pub method: Option<std::result::Result<MethodReport, String>>,
}

impl History {
    /// Reads `shrink.json`, `search.json` and `method.json` of the run at `root`.
    pub fn read(root: &Path) -> History {
        fn get<T: serde::de::DeserializeOwned>(path: PathBuf) -> std::result::Result<T, String> {
            if !path.exists() {
                return Err(format!("{} does not exist", path.display()));
            }
            read_json(&path).map_err(|e| format!("{e:#}"))
        }
        let method = root.join("method.json");
        History {
            shrink: get(root.join("shrink.json")),
            search: get(root.join("search.json")),
            method: method.exists().then(|| get(method)),
        }
    }
}

/// Writes `report.json`, `report.md` and `report.html` into `dir`, each atomically; returns their paths.
pub fn write_all(dir: &Path, report: &Report, history: &History) -> Result<[PathBuf; 3]> {
    let paths = [dir.join("report.json"), dir.join("report.md"), dir.join("report.html")];
    write_json(&paths[0], report)?;
    write_atomic(&paths[1], markdown::render(report).as_bytes())?;
    write_atomic(&paths[2], html::render(report, history).as_bytes())?;
    Ok(paths)
}

/// `0.8912` as `89.12%`.
pub(crate) fn pct(v: f64) -> String {
    format!("{:.2}%", v * 100.0)
}

/// Seconds since the Unix epoch as `YYYY-MM-DD HH:MM:SS UTC` (days to civil date after
/// H. Hinnant's `civil_from_days`).
pub(crate) fn utc(secs: u64) -> String {
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// The prediction of the latency table against the measurement, in one sentence.
pub(crate) fn prediction_sentence(predicted_ms: f64, l: &Latency) -> String {
    let error = l
        .prediction_error
        .map(|e| format!(", {:+.1}% off the measured p50 {} ms", e * 100.0, ms(l.ort.batch1.p50_ms)));
    let table = l.latency_table.as_deref().map(|t| format!(" (latency table {t})")).unwrap_or_default();
    format!(
        "The latency table predicted {} ms at batch 1{}{table}.",
        ms(predicted_ms),
        error.unwrap_or_default()
    )
}

/// How each ONNX Runtime figure was measured and how far it can be trusted, one sentence per batch
/// size: the sessions' range and spread, and, when a sign of noise showed, why not to trust it and
/// what to do (the `bool` is whether it is such a warning).
pub(crate) fn noise_sentences(l: &Latency) -> Vec<(bool, String)> {
    [&l.ort.batch1, &l.ort.batch64]
        .into_iter()
        .filter_map(|st| {
            let n = st.noise.as_ref()?;
            // The range of the sessions the trimmed mean and the spread are taken over.
            let counted = crate::timing::noise::middle(&n.session_p50_ms);
            let (lo, hi) = (counted.first().copied().unwrap_or(0.0), counted.last().copied().unwrap_or(0.0));
            let base = format!(
                "ONNX Runtime at batch {}: p50 {} ms is the trimmed mean of {} fresh sessions' medians ({}–{} ms, spread {:.0}%)",
                st.batch,
                ms(st.p50_ms),
                n.sessions,
                ms(lo),
                ms(hi),
                n.spread * 100.0
            );
            Some(if n.reliable() {
                (false, format!("{base}."))
            } else {
                (true, format!("{base}: NOT RELIABLE — {}. {}.", n.warnings.join("; "), n.advice(l.threads)))
            })
        })
        .collect()
}

/// A millisecond value with precision that suits its size.
pub(crate) fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.1}")
    } else if v >= 1.0 {
        format!("{v:.3}")
    } else {
        format!("{v:.4}")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small, complete report.
    pub(crate) fn sample() -> Report {
        let stats = |batch, v: Vec<f64>| LatencyStats::from_samples(batch, 1, v);
        Report {
            schema_version: SCHEMA_VERSION,
            arch: "|nor_conv_3x3~0|+|skip_connect~0|avg_pool_3x3~1|".into(),
            space: "nb201".into(),
            space_params: serde_json::json!({"nodes": 3, "channels": 4}),
            flops: 1.5e5,
            params: 1.7e4,
            onnx: OnnxFacts {
                path: "model.onnx".into(),
                opset: 17,
                ir_version: 8,
                bytes: 70_000,
                nodes: 3,
                op_counts: [("Conv".to_string(), 2), ("Gemm".to_string(), 1)].into_iter().collect(),
                parameters: 17_000,
                input: "input [batch, 1, 8, 8]".into(),
                output: "gemm_0 [batch, 4]".into(),
                metadata: [("arch".to_string(), "|a|b|".to_string())].into_iter().collect(),
                lowering: "optimized".into(),
                precision: "fp32".into(),
            },
            parity: Parity {
                images: 64,
                max_abs_diff: 2e-6,
                logit_scale: 4.0,
                scaled_diff: 5e-7,
                top1_agreement: 1.0,
                tolerance: 1e-4,
                passed: true,
                reason: None,
            },
            accuracy: Accuracy {
                libtorch: 0.9,
                ort: 0.9,
                difference_pp: 0.0,
                test_images: 128,
                prediction_agreement: 1.0,
                retrain_test_accuracy: Some(0.9),
            },
            precision: None,
            latency: Latency {
                ort: LatencyPair {
                    batch1: stats(1, vec![0.1, 0.2, 0.3]),
                    batch64: stats(64, vec![2.0, 2.5, 3.0]),
                },
                libtorch: LatencyPair {
                    batch1: stats(1, vec![0.4, 0.5, 0.9]),
                    batch64: stats(64, vec![4.0, 5.0, 6.0]),
                },
                predicted_ms: Some(0.18),
                prediction_error: Some(-0.1),
                latency_table: Some("/cache/latency/nb201-0.json".into()),
                threads: 2,
                ep: "cpu".into(),
                libtorch_device: "cpu".into(),
                cpu: "Test CPU (2 logical CPUs)".into(),
                gpu: None,
                batch1_speedup: 2.5,
                batch64_speedup: 2.0,
            },
            provenance: Provenance {
                run: "/tmp/run <1>".into(),
                exported_at: 0,
                seed: 0,
                dataset: "synthetic".into(),
                pwsnas: "0.1.0".into(),
                libtorch: "2.11.0".into(),
                onnxruntime: "1.31.1".into(),
                onnxruntime_library: "/x/libonnxruntime.so.1.31.1".into(),
                retrain_epochs: Some(2),
                settings: serde_json::json!({"space": "nb201", "search": {"max_latency_ms": null}}),
                export: serde_json::json!({"ep": "cpu", "lowering": "optimized", "precision": "fp32"}),
            },
            method: Some("darts".into()),
            benchmark: Some(crate::benchmark::Lookup {
                table: "nb201.csv".into(),
                column: "cifar10-test@12".into(),
                accuracy: 88.5,
                rank: 41,
                cells: 15625,
                best_accuracy: 91.1,
                best_arch: "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|".into(),
                mean_accuracy: 80.6,
            }),
            shrinking: Some(Shrinking {
                metric: "angle".into(),
                rounds: 1,
                final_space_size: 8.0,
                max_copies: 2,
                copies: vec![2, 1, 1],
                param_budget: 1.5,
                epochs_after_shrink: 1,
                supernet_params: 20_000,
                supernet_params_original: 18_000,
                sharing_degree: 3.0,
                sharing_degree_one_copy: 4.0,
                admissible: None,
            }),
        }
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_795_821_190), "2026-11-27 23:13:10 UTC");
    }

    #[test]
    fn precision_is_refused_above_the_allowed_loss() {
        let mut acc = sample().accuracy;
        acc.ort = 0.893;
        let ok = PrecisionCheck::judge("fp16", &Accuracy { difference_pp: -0.7, ..acc.clone() }, 1.0);
        assert!(ok.passed && ok.reason.is_none());
        assert!((ok.accuracy_loss_pp - 0.7).abs() < 1e-12);
        let refused = PrecisionCheck::judge("fp16", &Accuracy { difference_pp: -0.7, ..acc }, 0.5);
        assert!(!refused.passed);
        let why = refused.reason.unwrap();
        assert!(why.contains("fp16 loses 0.70 pp") && why.contains("--max-accuracy-loss"), "{why}");
    }

    #[test]
    fn reports_of_before_the_lowering_fields_still_load() {
        let mut raw = serde_json::to_value(sample()).unwrap();
        for key in ["lowering", "precision"] {
            raw["onnx"].as_object_mut().unwrap().remove(key);
        }
        raw.as_object_mut().unwrap().remove("precision");
        raw["latency"].as_object_mut().unwrap().remove("gpu");
        raw["provenance"].as_object_mut().unwrap().remove("export");
        let r: Report = serde_json::from_value(raw).unwrap();
        assert_eq!((r.onnx.lowering.as_str(), r.onnx.precision.as_str()), ("plain", "fp32"));
        assert_eq!((r.precision, r.latency.gpu), (None, None));
    }

    #[test]
    fn report_json_round_trips_and_other_versions_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.json");
        write_json(&path, &sample()).unwrap();
        assert_eq!(Report::load(&path).unwrap(), sample());
        let mut raw = serde_json::to_value(sample()).unwrap();
        raw["schema_version"] = serde_json::json!(2);
        write_json(&path, &raw).unwrap();
        let err = Report::load(&path).unwrap_err().to_string();
        assert!(err.contains("schema_version 2") && err.contains("rerun `pwsnas export`"), "{err}");
    }
}
