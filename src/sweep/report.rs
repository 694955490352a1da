//! `pwsnas sweep report DIR`: the sweep's finished runs as the paper's table. Runs are grouped by
//! every grid value but the seed; each group gets the mean ± standard deviation over its seeds
//! of ONNX Runtime test accuracy, parameters, multiply-adds and ONNX Runtime latency (batch 1,
//! p50). For each method (the grid values but the seed and `shrink.metric`) and each shrinking
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

/// Version of the sweep's `report.json`.
pub const SCHEMA_VERSION: u32 = 1;

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

/// One finished run: its place in the plan and its exported result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunEntry {
    pub index: usize,
    pub name: String,
    /// Short label of its grid values (`uniform/angle/0`), as on the chart.
    pub label: String,
    pub values: IndexMap<String, Value>,
    /// What `pwsnas compare` reads of it (its `run` is the run's name), with the Pareto mark.
    #[serde(flatten)]
    pub result: Row,
}

/// The runs that differ only in their seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// The grid values but the seed.
    pub values: IndexMap<String, Value>,
    pub runs: usize,
    pub seeds: Vec<Value>,
    /// ONNX Runtime test top-1 (fraction).
    pub accuracy_ort: Stat,
    pub params: Stat,
    /// Multiply-adds of one image.
    pub flops: Stat,
    /// ONNX Runtime batch-1 p50 (ms).
    pub latency_p50_ms: Stat,
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
    /// Pairs where shrinking gave the higher accuracy.
    pub wins: usize,
    /// Shrunk − none: accuracy in percentage points, latency in ms, params, multiply-adds.
    pub accuracy_pp: Stat,
    pub latency_p50_ms: Stat,
    pub params: Stat,
    pub flops: Stat,
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
}

fn without(values: &IndexMap<String, Value>, keys: &[&str]) -> IndexMap<String, Value> {
    values.iter().filter(|(k, _)| !keys.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect()
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
    let dirs: Vec<_> = done.iter().map(|r| sweep.run_dir(r)).collect();
    let comparison = compare::compare(&dirs, true)?;
    let runs: Vec<RunEntry> = done
        .iter()
        .zip(comparison.runs)
        .map(|(r, mut result)| {
            result.run = r.name.clone();
            RunEntry {
                index: r.index,
                name: r.name.clone(),
                label: r.label(),
                values: r.values.clone(),
                result,
            }
        })
        .collect();

    let mut groups: IndexMap<String, (IndexMap<String, Value>, Vec<&RunEntry>)> = IndexMap::new();
    for e in &runs {
        let values = without(&e.values, &[SEED_KEY]);
        groups
            .entry(Value::from(values.clone().into_iter().collect::<serde_json::Map<_, _>>()).to_string())
            .or_insert_with(|| (values, Vec::new()))
            .1
            .push(e);
    }
    let stat = |members: &[&RunEntry], f: fn(&Row) -> f64| {
        Stat::of(&members.iter().map(|e| f(&e.result)).collect::<Vec<_>>())
    };
    let groups = groups
        .into_values()
        .map(|(values, members)| Group {
            values,
            runs: members.len(),
            seeds: members.iter().filter_map(|e| e.values.get(SEED_KEY).cloned()).collect(),
            accuracy_ort: stat(&members, |r| r.accuracy_ort),
            params: stat(&members, |r| r.params),
            flops: stat(&members, |r| r.flops),
            latency_p50_ms: stat(&members, |r| r.latency_p50_ms),
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
        mixed: comparison.mixed,
    })
}

/// Each shrunk run against the `none` run with the same other grid values, grouped by method and
/// metric.
fn gains(runs: &[RunEntry]) -> Vec<Gain> {
    let none = Value::String("none".into());
    // Per (method, metric): the method's values, the metric, and the (shrunk, none) pairs.
    type Pairs<'a> = (IndexMap<String, Value>, Value, Vec<(&'a Row, &'a Row)>);
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
        pairs
            .entry(key)
            .or_insert_with(|| (method, metric.clone(), Vec::new()))
            .2
            .push((&e.result, &base.result));
    }
    pairs
        .into_values()
        .map(|(method, metric, pairs)| {
            let delta = |f: fn(&Row) -> f64, scale: f64| {
                Stat::of(&pairs.iter().map(|(s, n)| (f(s) - f(n)) * scale).collect::<Vec<_>>())
            };
            Gain {
                method,
                metric,
                pairs: pairs.len(),
                wins: pairs.iter().filter(|(s, n)| s.accuracy_ort > n.accuracy_ort).count(),
                accuracy_pp: delta(|r| r.accuracy_ort, 100.0),
                latency_p50_ms: delta(|r| r.latency_p50_ms, 1.0),
                params: delta(|r| r.params, 1.0),
                flops: delta(|r| r.flops, 1.0),
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
        RunEntry {
            index,
            label: format!("{sampler}/{metric}/{seed}"),
            values,
            result: row(&name, acc, lat),
            name,
        }
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
        assert_eq!((g[0].pairs, g[0].wins), (2, 1));
        // Seed 0: +2 pp, seed 1: −1 pp (not +12 or −11: pairs are by seed).
        assert!((g[0].accuracy_pp.mean - 0.5).abs() < 1e-9, "{:?}", g[0].accuracy_pp);
        assert!((g[0].accuracy_pp.std.unwrap() - 4.5f64.sqrt()).abs() < 1e-9);
        assert!((g[0].latency_p50_ms.mean - 0.0).abs() < 1e-12);
    }
}
