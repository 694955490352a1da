//! `pwsnas sweep report DIR`: the sweep's finished runs as the paper's table. Runs are grouped by
//! every grid value but the seed; each group gets the mean ± standard deviation over its seeds
//! of ONNX Runtime test accuracy, parameters, multiply-adds and ONNX Runtime latency (batch 1,
//! p50), and with a benchmark table (`--benchmark`) of the found cells' benchmark value. Runs
//! that end with their search (`retrain.epochs = 0`, how NAS-Bench-201 studies run) have only the
//! figures of their cell: parameters, multiply-adds and the benchmark. For each method (the grid values but the seed and `shrink.metric`) and each shrinking
//! metric, the gain of shrinking over `shrink.metric = "none"` is taken run by run, paired by
//! seed (same grid values otherwise), then averaged. Every run also goes on an accuracy-against-
//! latency chart with the Pareto front ([`crate::compare`]).
//!
//! The numbers come from each run's `report.json` (`pwsnas export`); latencies are measurements
//! of the machines the runs ran on, so they vary from sweep to sweep where accuracies do not.
//! `report.json` of the sweep is versioned ([`SCHEMA_VERSION`]) for other tools.
use anyhow::{bail, Result};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::plan::SEED_KEY;
use super::{task, SweepDir};
use crate::compare::{self, Row};
use crate::fsutil::read_json;
use crate::search::ArchFile;

/// Version of the sweep's `report.json`. 2: each run's found cell is `found` (arch, params,
/// multiply-adds, benchmark value), its export figures are absent for a run that was not exported,
/// and groups and gains carry the benchmark where the runs have one.
pub const SCHEMA_VERSION: u32 = 2;

/// The grid key whose `none` value is the baseline of the gains.
pub const SHRINK_KEY: &str = "shrink.metric";

/// Mean and sample standard deviation (n − 1) of one figure over runs; no deviation for one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    pub mean: f64,
    pub std: Option<f64>,
}

impl Stat {
    pub fn of(values: &[f64]) -> Stat {
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let std = (values.len() > 1)
            .then(|| (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt());
        Stat { mean, std }
    }
}

/// The cell a run's search found (`arch.json`), exported or not.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Found {
    pub arch: String,
    pub params: f64,
    /// Multiply-adds of one image.
    pub flops: f64,
    /// Its value in the run's benchmark table (%), when the run has one (`--benchmark`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub benchmark: Option<f64>,
}

/// One finished run: its place in the plan, the cell it found and, when it was exported, its result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunEntry {
    pub index: usize,
    pub name: String,
    /// Short label of its grid values (`uniform/angle/0`), as on the chart.
    pub label: String,
    pub values: IndexMap<String, Value>,
    pub found: Found,
    /// What `pwsnas compare` reads of it (its `run` is the run's name), with the Pareto mark; absent
    /// for a run that ends with its search (`retrain.epochs = 0`, judged by a benchmark table).
    #[serde(flatten)]
    pub result: Option<Row>,
}

/// The runs that differ only in their seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// The grid values but the seed.
    pub values: IndexMap<String, Value>,
    pub runs: usize,
    pub seeds: Vec<Value>,
    /// ONNX Runtime test top-1 (fraction), over the exported runs (absent when none was).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy_ort: Option<Stat>,
    pub params: Stat,
    /// Multiply-adds of one image.
    pub flops: Stat,
    /// ONNX Runtime batch-1 p50 (ms), over the exported runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_p50_ms: Option<Stat>,
    /// The found cells' benchmark value (%), over the runs that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub benchmark: Option<Stat>,
}

/// Shrinking with one metric against no shrinking, for one method, paired by seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gain {
    /// The grid values but the seed and `shrink.metric`.
    pub method: IndexMap<String, Value>,
    /// The shrinking metric compared with `none`.
    pub metric: Value,
    /// Seeds with both runs finished.
    pub pairs: usize,
    /// Pairs where shrinking gave the higher ONNX Runtime accuracy (pairs both exported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wins: Option<usize>,
    /// Shrunk − none: accuracy in percentage points, latency in ms (pairs both exported), params,
    /// multiply-adds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy_pp: Option<Stat>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_p50_ms: Option<Stat>,
    pub params: Stat,
    pub flops: Stat,
    /// Shrunk − none in the benchmark (percentage points) and the pairs where shrinking found the
    /// better cell, over the pairs that both have a benchmark value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub benchmark_pp: Option<Stat>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub benchmark_wins: Option<usize>,
}

/// The benchmark the runs' cells were looked up in, for scale: its best and its mean cell.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scale {
    pub table: String,
    pub column: String,
    pub cells: usize,
    pub best_accuracy: f64,
    pub best_arch: String,
    pub mean_accuracy: f64,
}

/// The sweep's `report.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepReport {
    pub schema_version: u32,
    pub plan_file: String,
    pub keys: Vec<String>,
    pub runs_total: usize,
    /// Names of the runs not done yet (the report covers the others).
    pub missing: Vec<String>,
    pub groups: Vec<Group>,
    pub gains: Vec<Gain>,
    pub runs: Vec<RunEntry>,
    /// How the runs' latency settings differ (machine, threads, ...), when they do.
    pub mixed: Vec<String>,
    /// The benchmark table of the runs, when they have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub benchmark: Option<Scale>,
}

fn without(values: &IndexMap<String, Value>, keys: &[&str]) -> IndexMap<String, Value> {
    values.iter().filter(|(k, _)| !keys.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Mean ± std of `f` over the entries that have it (`None` when none has).
fn stat_of<'a>(
    entries: impl Iterator<Item = &'a RunEntry>,
    f: impl Fn(&RunEntry) -> Option<f64>,
) -> Option<Stat> {
    let v: Vec<f64> = entries.filter_map(f).collect();
    (!v.is_empty()).then(|| Stat::of(&v))
}

/// The report of the sweep's finished runs.
pub fn build(sweep: &SweepDir) -> Result<SweepReport> {
    let plan = sweep.plan();
    let (done, missing): (Vec<_>, Vec<_>) = plan.runs.iter().partition(|r| task::is_done(sweep, r));
    if done.is_empty() {
        bail!(
            "no run of {} is done yet: see `pwsnas sweep status {}`",
            sweep.root.display(),
            sweep.root.display()
        );
    }
    let exported: Vec<_> = done.iter().filter(|r| sweep.run_dir(r).join("report.json").exists()).collect();
    let dirs: Vec<_> = exported.iter().map(|r| sweep.run_dir(r)).collect();
    let comparison = if dirs.is_empty() { None } else { Some(compare::compare(&dirs, true)?) };
    let mut rows: IndexMap<usize, Row> = IndexMap::new();
    if let Some(c) = &comparison {
        for (r, mut row) in exported.iter().zip(c.runs.clone()) {
            row.run = r.name.clone();
            rows.insert(r.index, row);
        }
    }
    let mut scale = None;
    let mut runs = Vec::with_capacity(done.len());
    for r in &done {
        let path = sweep.run_dir(r).join("arch.json");
        let arch: ArchFile = read_json(&path)?;
        if let (None, Some(b)) = (&scale, &arch.benchmark) {
            scale = Some(Scale {
                table: b.table.clone(),
                column: b.column.clone(),
                cells: b.cells,
                best_accuracy: b.best_accuracy,
                best_arch: b.best_arch.clone(),
                mean_accuracy: b.mean_accuracy,
            });
        }
        runs.push(RunEntry {
            index: r.index,
            name: r.name.clone(),
            label: r.label(),
            values: r.values.clone(),
            found: Found {
                arch: arch.arch.clone(),
                params: arch.params_count,
                flops: arch.flops,
                benchmark: arch.benchmark.as_ref().map(|b| b.accuracy),
            },
            result: rows.shift_remove(&r.index),
        });
    }

    let mut groups: IndexMap<String, (IndexMap<String, Value>, Vec<&RunEntry>)> = IndexMap::new();
    for e in &runs {
        let values = without(&e.values, &[SEED_KEY]);
        groups
            .entry(Value::from(values.clone().into_iter().collect::<serde_json::Map<_, _>>()).to_string())
            .or_insert_with(|| (values, Vec::new()))
            .1
            .push(e);
    }
    let groups = groups
        .into_values()
        .map(|(values, members)| {
            let all = || members.iter().copied();
            Group {
                values,
                runs: members.len(),
                seeds: members.iter().filter_map(|e| e.values.get(SEED_KEY).cloned()).collect(),
                accuracy_ort: stat_of(all(), |e| e.result.as_ref().map(|r| r.accuracy_ort)),
                params: Stat::of(&members.iter().map(|e| e.found.params).collect::<Vec<_>>()),
                flops: Stat::of(&members.iter().map(|e| e.found.flops).collect::<Vec<_>>()),
                latency_p50_ms: stat_of(all(), |e| e.result.as_ref().map(|r| r.latency_p50_ms)),
                benchmark: stat_of(all(), |e| e.found.benchmark),
            }
        })
        .collect();

    Ok(SweepReport {
        schema_version: SCHEMA_VERSION,
        plan_file: sweep.manifest.plan_file.clone(),
        keys: plan.keys.clone(),
        runs_total: plan.runs.len(),
        missing: missing.iter().map(|r| r.name.clone()).collect(),
        groups,
        gains: gains(&runs),
        runs,
        mixed: comparison.map(|c| c.mixed).unwrap_or_default(),
        benchmark: scale,
    })
}

/// Each shrunk run against the `none` run with the same other grid values, grouped by method and
/// metric.
fn gains(runs: &[RunEntry]) -> Vec<Gain> {
    let none = Value::String("none".into());
    // Per (method, metric): the method's values, the metric, and the (shrunk, none) pairs.
    type Pairs<'a> = (IndexMap<String, Value>, Value, Vec<(&'a RunEntry, &'a RunEntry)>);
    let mut pairs: IndexMap<String, Pairs> = IndexMap::new();
    for e in runs {
        let Some(metric) = e.values.get(SHRINK_KEY).filter(|m| **m != none) else { continue };
        let mut partner_values = e.values.clone();
        partner_values.insert(SHRINK_KEY.into(), none.clone());
        let Some(base) = runs.iter().find(|b| b.values == partner_values) else { continue };
        let method = without(&e.values, &[SEED_KEY, SHRINK_KEY]);
        let key = format!(
            "{} {metric}",
            Value::from(method.clone().into_iter().collect::<serde_json::Map<_, _>>())
        );
        pairs.entry(key).or_insert_with(|| (method, metric.clone(), Vec::new())).2.push((e, base));
    }
    pairs
        .into_values()
        .map(|(method, metric, pairs)| {
            // The differences shrunk − none of `f` over the pairs where both runs have it.
            let deltas = |f: &dyn Fn(&RunEntry) -> Option<f64>| -> Vec<f64> {
                pairs.iter().filter_map(|(s, n)| Some(f(s)? - f(n)?)).collect()
            };
            let stat = |v: Vec<f64>| (!v.is_empty()).then(|| Stat::of(&v));
            let ort = deltas(&|e| e.result.as_ref().map(|r| r.accuracy_ort * 100.0));
            let bench = deltas(&|e| e.found.benchmark);
            Gain {
                method,
                metric,
                pairs: pairs.len(),
                wins: (!ort.is_empty()).then(|| ort.iter().filter(|d| **d > 0.0).count()),
                accuracy_pp: stat(ort),
                latency_p50_ms: stat(deltas(&|e| e.result.as_ref().map(|r| r.latency_p50_ms))),
                params: Stat::of(&deltas(&|e| Some(e.found.params))),
                flops: Stat::of(&deltas(&|e| Some(e.found.flops))),
                benchmark_wins: (!bench.is_empty()).then(|| bench.iter().filter(|d| **d > 0.0).count()),
                benchmark_pp: stat(bench),
            }
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::compare::tests::row;
    use serde_json::json;

    pub(crate) fn entry(
        index: usize,
        sampler: &str,
        metric: &str,
        seed: u64,
        acc: f64,
        lat: f64,
    ) -> RunEntry {
        let values: IndexMap<String, Value> =
            [("sampler", json!(sampler)), (SHRINK_KEY, json!(metric)), (SEED_KEY, json!(seed))]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
        let name = format!("sampler={sampler},shrink.metric={metric},seed={seed}");
        let result = row(&name, acc, lat);
        RunEntry {
            index,
            label: format!("{sampler}/{metric}/{seed}"),
            values,
            found: Found {
                arch: result.arch.clone(),
                params: result.params,
                flops: result.flops,
                benchmark: None,
            },
            result: Some(result),
            name,
        }
    }

    /// A run that ended with its search, judged by a benchmark value (%).
    pub(crate) fn searched(index: usize, metric: &str, seed: u64, benchmark: f64, params: f64) -> RunEntry {
        let mut e = entry(index, "uniform", metric, seed, 0.0, 0.0);
        e.result = None;
        e.found.benchmark = Some(benchmark);
        e.found.params = params;
        e
    }

    #[test]
    fn stats_are_mean_and_sample_deviation() {
        let s = Stat::of(&[1.0, 2.0, 3.0]);
        assert_eq!(s.mean, 2.0);
        assert_eq!(s.std, Some(1.0));
        assert_eq!(Stat::of(&[4.0]), Stat { mean: 4.0, std: None });
    }

    #[test]
    fn gains_pair_each_shrunk_run_with_the_unshrunk_run_of_its_seed() {
        let runs = vec![
            entry(0, "uniform", "none", 0, 0.80, 0.10),
            entry(1, "uniform", "none", 1, 0.70, 0.10),
            entry(2, "uniform", "angle", 0, 0.82, 0.12),
            entry(3, "uniform", "angle", 1, 0.69, 0.08),
            entry(4, "fair", "angle", 0, 0.90, 0.10),
        ];
        let g = gains(&runs);
        assert_eq!(g.len(), 1, "fair/angle has no none run to pair with: {g:?}");
        assert_eq!(g[0].method, IndexMap::from([("sampler".to_string(), json!("uniform"))]));
        assert_eq!(g[0].metric, json!("angle"));
        assert_eq!((g[0].pairs, g[0].wins), (2, Some(1)));
        // Seed 0: +2 pp, seed 1: −1 pp (not +12 or −11: pairs are by seed).
        let acc = g[0].accuracy_pp.as_ref().unwrap();
        assert!((acc.mean - 0.5).abs() < 1e-9, "{acc:?}");
        assert!((acc.std.unwrap() - 4.5f64.sqrt()).abs() < 1e-9);
        assert!((g[0].latency_p50_ms.as_ref().unwrap().mean - 0.0).abs() < 1e-12);
        assert_eq!((g[0].benchmark_pp.as_ref(), g[0].benchmark_wins), (None, None));
    }

    #[test]
    fn runs_without_export_are_paired_by_their_benchmark_value() {
        let runs = vec![
            searched(0, "none", 0, 88.0, 1e5),
            searched(1, "none", 1, 90.0, 1e5),
            searched(2, "angle", 0, 91.0, 2e5),
            searched(3, "angle", 1, 89.5, 1e5),
        ];
        let g = gains(&runs);
        assert_eq!(g.len(), 1);
        let b = g[0].benchmark_pp.as_ref().unwrap();
        // Seed 0: +3 pp, seed 1: −0.5 pp.
        assert!((b.mean - 1.25).abs() < 1e-9, "{b:?}");
        assert_eq!((g[0].benchmark_wins, g[0].wins, g[0].accuracy_pp.as_ref()), (Some(1), None, None));
        assert!((g[0].params.mean - 5e4).abs() < 1e-9);
        // A run entry without export serialises without the export's figures, and reads back.
        let json = serde_json::to_value(&runs[2]).unwrap();
        assert!(json.get("accuracy_ort").is_none() && json["found"]["benchmark"] == 91.0, "{json}");
        assert_eq!(serde_json::from_value::<RunEntry>(json).unwrap(), runs[2]);
        let exported = entry(5, "uniform", "angle", 2, 0.9, 0.1);
        let json = serde_json::to_value(&exported).unwrap();
        assert_eq!(json["accuracy_ort"], 0.9, "the export's figures stay flat in the entry");
        assert_eq!(serde_json::from_value::<RunEntry>(json).unwrap(), exported);
    }
}
