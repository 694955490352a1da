//! `pwsnas compare RUN...`: one table of the exported runs — accuracy (libtorch and ONNX Runtime)
//! beside what strategy 2 gave the search (weight copies, supernet parameters, degree of sharing),
//! ONNX Runtime latency (p50/p90 at batch 1, throughput at batch 64), parameters, FLOPs, model
//! size, predicted latency and its error, the cell's benchmark value (`--benchmark`) — with the Pareto-optimal runs (accuracy against batch-1
//! latency) marked, written as `compare.md`, `compare.csv`, `compare.json` and a self-contained
//! `compare.html` with an accuracy-against-latency chart ([`render`]).
//!
//! Why it refuses mixed settings: a latency is a fact about a machine and a runtime setting as much
//! as about a model, so ordering runs whose latencies were measured on different CPUs, thread
//! counts, execution providers or ONNX Runtime versions would rank the setting, not the model.
//! Every number comes from the runs' `report.json` (written by `pwsnas export`), which records
//! that setting; runs that differ are refused, naming the runs and what differs, unless the user
//! passes `--allow-mixed` (the comparison then lists the differences).
pub mod render;

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use crate::fsutil::{write_atomic, write_json};
use crate::report::Report;

/// Version of `compare.json`.
pub const SCHEMA_VERSION: u32 = 1;

/// Where and how a run's latency was measured.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setting {
    pub cpu: String,
    pub threads: usize,
    pub ep: String,
    pub onnxruntime: String,
}

impl Setting {
    fn of(r: &Report) -> Setting {
        Setting {
            cpu: r.latency.cpu.clone(),
            threads: r.latency.threads,
            ep: r.latency.ep.clone(),
            onnxruntime: r.provenance.onnxruntime.clone(),
        }
    }

    /// `(field, value)` pairs, in a fixed order.
    fn fields(&self) -> [(&'static str, String); 4] {
        [
            ("CPU", self.cpu.clone()),
            ("threads", self.threads.to_string()),
            ("execution provider", self.ep.clone()),
            ("ONNX Runtime", self.onnxruntime.clone()),
        ]
    }
}

impl std::fmt::Display for Setting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ONNX Runtime {} on {}, {} thread(s), {}",
            self.onnxruntime, self.ep, self.threads, self.cpu
        )
    }
}

/// One run of the comparison.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// The run directory as given.
    pub run: String,
    pub arch: String,
    pub space: String,
    /// The search method that chose the architecture, when the report records it.
    #[serde(default)]
    pub method: Option<String>,
    /// Test top-1 of libtorch and of ONNX Runtime.
    pub accuracy_libtorch: f64,
    pub accuracy_ort: f64,
    /// Strategy 2 in the run's search: weight copies per choice point, effective supernet
    /// parameters, and mean children per weight copy of the final space (when recorded).
    pub copies: Option<Vec<usize>>,
    pub supernet_params: Option<i64>,
    pub sharing_degree: Option<f64>,
    /// ONNX Runtime at batch 1 (ms).
    pub latency_p50_ms: f64,
    pub latency_p90_ms: f64,
    /// How much the batch-1 medians of the fresh sessions varied (slowest / fastest − 1), when the
    /// report records them ([`crate::timing::Noise`]).
    #[serde(default)]
    pub latency_spread: Option<f64>,
    /// Why the run's ONNX Runtime latencies should not be trusted (batch 1 and 64); empty when no
    /// sign of noise showed.
    #[serde(default)]
    pub latency_warnings: Vec<String>,
    /// ONNX Runtime images per second at batch 64.
    pub throughput_batch64: f64,
    pub params: f64,
    /// Multiply-adds of one image.
    pub flops: f64,
    /// Size of `model.onnx`.
    pub model_bytes: u64,
    /// The search's `--max-latency-ms`, when the report records one.
    pub budget_ms: Option<f64>,
    /// The latency table's prediction (ms, batch 1) and its signed relative error.
    pub predicted_ms: Option<f64>,
    pub prediction_error: Option<f64>,
    /// No other run is at least as accurate (ONNX Runtime) and at least as fast (batch-1 p50), and
    /// better in one of the two.
    pub pareto: bool,
    pub setting: Setting,
    /// The cell's value in the run's benchmark table (%, `--benchmark`), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub benchmark: Option<f64>,
}

/// `compare.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub schema_version: u32,
    pub runs: Vec<Row>,
    /// How the runs' latency settings differ (empty unless `--allow-mixed` let differences through).
    pub mixed: Vec<String>,
}

/// Reads the runs' reports and compares them; refuses runs whose latencies were measured on
/// different machines or settings unless `allow_mixed`.
pub fn compare(runs: &[PathBuf], allow_mixed: bool) -> Result<Comparison> {
    if runs.is_empty() {
        bail!("name at least one run directory to compare");
    }
    let mut rows = Vec::with_capacity(runs.len());
    for dir in runs {
        let path = dir.join("report.json");
        if !path.exists() {
            bail!(
                "{} has no report.json: run `pwsnas export {}` first (compare reads what export measured)",
                dir.display(),
                dir.display()
            );
        }
        rows.push(row(dir, &Report::load(&path)?));
    }
    let mixed = differences(&rows);
    if !mixed.is_empty() && !allow_mixed {
        bail!(
            "cannot compare latencies measured on different machines or settings — {}. Export the runs again on one \
             machine with the same --threads and --ep (`pwsnas export RUN --threads N`), or pass --allow-mixed to \
             compare them anyway",
            mixed.join("; ")
        );
    }
    mark_pareto(&mut rows);
    Ok(Comparison { schema_version: SCHEMA_VERSION, runs: rows, mixed })
}

fn row(dir: &Path, r: &Report) -> Row {
    let l = &r.latency;
    Row {
        run: dir.display().to_string(),
        arch: r.arch.clone(),
        space: r.space.clone(),
        method: r.method.clone(),
        accuracy_libtorch: r.accuracy.libtorch,
        accuracy_ort: r.accuracy.ort,
        copies: r.shrinking.as_ref().map(|s| s.copies.clone()),
        supernet_params: r.shrinking.as_ref().map(|s| s.supernet_params),
        sharing_degree: r.shrinking.as_ref().map(|s| s.sharing_degree),
        latency_p50_ms: l.ort.batch1.p50_ms,
        latency_p90_ms: l.ort.batch1.p90_ms,
        latency_spread: l.ort.batch1.noise.as_ref().map(|n| n.spread),
        latency_warnings: [&l.ort.batch1, &l.ort.batch64]
            .iter()
            .filter_map(|st| st.noise.as_ref().map(|n| (st.batch, n)))
            .flat_map(|(batch, n)| n.warnings.iter().map(move |w| format!("batch {batch}: {w}")))
            .collect(),
        throughput_batch64: l.ort.batch64.throughput_per_s,
        params: r.params,
        flops: r.flops,
        model_bytes: r.onnx.bytes,
        budget_ms: r
            .provenance
            .settings
            .pointer("/search/max_latency_ms")
            .or_else(|| r.provenance.settings.get("max_latency_ms"))
            .and_then(serde_json::Value::as_f64),
        predicted_ms: l.predicted_ms,
        prediction_error: l.prediction_error,
        pareto: false,
        setting: Setting::of(r),
        benchmark: r.benchmark.as_ref().map(|b| b.accuracy),
    }
}

/// For every setting field on which the runs differ: `field differs: value in run, run; value in run`.
pub fn differences(rows: &[Row]) -> Vec<String> {
    let mut out = Vec::new();
    for i in 0..4 {
        let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
        for r in rows {
            let (_, value) = r.setting.fields()[i].clone();
            match groups.iter_mut().find(|(v, _)| *v == value) {
                Some((_, runs)) => runs.push(&r.run),
                None => groups.push((value, vec![&r.run])),
            }
        }
        if groups.len() > 1 {
            let name = rows[0].setting.fields()[i].0;
            let parts: Vec<String> =
                groups.iter().map(|(v, runs)| format!("{v} in {}", runs.join(", "))).collect();
            out.push(format!("{name} differs: {}", parts.join("; ")));
        }
    }
    out
}

/// Marks the runs that no other run dominates in (ONNX Runtime accuracy ↑, batch-1 p50 ↓).
pub fn mark_pareto(rows: &mut [Row]) {
    let points: Vec<(f64, f64)> = rows.iter().map(|r| (r.accuracy_ort, r.latency_p50_ms)).collect();
    for (i, r) in rows.iter_mut().enumerate() {
        let (acc, lat) = points[i];
        r.pareto = !points.iter().any(|&(a, l)| a >= acc && l <= lat && (a > acc || l < lat));
    }
}

/// Writes `compare.md`, `compare.csv`, `compare.json` and `compare.html` into `dir`, each
/// atomically; returns their paths.
pub fn write_all(dir: &Path, c: &Comparison) -> Result<[PathBuf; 4]> {
    let paths = ["compare.md", "compare.csv", "compare.json", "compare.html"].map(|f| dir.join(f));
    write_atomic(&paths[0], render::markdown(c).as_bytes())?;
    write_atomic(&paths[1], render::csv(c).as_bytes())?;
    write_json(&paths[2], c)?;
    write_atomic(&paths[3], render::html(c).as_bytes())?;
    Ok(paths)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn row(run: &str, acc: f64, lat: f64) -> Row {
        Row {
            run: run.into(),
            arch: "|nor_conv_3x3~0|+|none~0|skip_connect~1|".into(),
            space: "nb201".into(),
            method: Some("spos".into()),
            accuracy_libtorch: acc,
            accuracy_ort: acc,
            copies: Some(vec![2, 1, 1]),
            supernet_params: Some(12_345),
            sharing_degree: Some(2.5),
            latency_p50_ms: lat,
            latency_p90_ms: lat * 1.1,
            latency_spread: Some(0.04),
            latency_warnings: Vec::new(),
            throughput_batch64: 1000.0,
            params: 1e4,
            flops: 1e6,
            model_bytes: 40_000,
            budget_ms: None,
            predicted_ms: Some(lat * 0.9),
            prediction_error: Some(-0.1),
            pareto: false,
            setting: Setting {
                cpu: "Test CPU".into(),
                threads: 2,
                ep: "cpu".into(),
                onnxruntime: "1.31.1".into(),
            },
            benchmark: None,
        }
    }

    #[test]
    fn pareto_marks_the_runs_nothing_beats_on_both_axes() {
        let mut rows = vec![
            row("fast", 0.80, 0.1),
            row("slow-better", 0.90, 0.3),
            row("dominated", 0.85, 0.4),
            row("tie", 0.80, 0.1),
        ];
        mark_pareto(&mut rows);
        let marked: Vec<bool> = rows.iter().map(|r| r.pareto).collect();
        assert_eq!(marked, [true, true, false, true]);
    }

    #[test]
    fn differences_name_the_field_the_values_and_the_runs() {
        let mut rows = vec![row("a", 0.8, 0.1), row("b", 0.8, 0.1), row("c", 0.8, 0.1)];
        assert!(differences(&rows).is_empty());
        rows[2].setting.threads = 1;
        rows[1].setting.cpu = "Other CPU".into();
        assert_eq!(
            differences(&rows),
            ["CPU differs: Test CPU in a, c; Other CPU in b", "threads differs: 2 in a, b; 1 in c"]
        );
    }
}
