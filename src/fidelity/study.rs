//! The ranking study: how well each metric, computed on a supernet, ranks the children and the
//! operator candidates of a space against their stand-alone ground truth ([`super::truth`]).
//!
//! Inputs are runs scored with `pwsnas shrink --score-only --exhaustive` (every metric on every
//! child of the space, at the supernet epoch the run reached), at several epochs and with several
//! supernet seeds. For every run and metric the study computes:
//!
//! - **architecture level**: τ-b and ρ of the metric's child scores against the children's truth;
//! - **operator level**: τ-b and ρ of the candidates' scores against the candidates' truth, which
//!   is the mean truth of the children that contain the candidate (the ABS paper's definition:
//!   Hu et al., "Angle-based Search Space Shrinking for Neural Architecture Search", ECCV 2020);
//! - **top-k survival**: shrinking by the metric as `pwsnas shrink` does (the `k` lowest scores
//!   dropped over all choice points, never a choice point's last op), how many of the truth's `m`
//!   best candidates survive. ABS reports it for NAS-Bench-201 as k = 20 of 30, m = 8; the defaults
//!   keep those fractions (k = 2/3, m = 8/30 of the candidates).
//!
//! Runs at the same epoch are different supernet seeds: the tables give mean ± standard deviation
//! over them, and a metric averaged over the seeds' supernets (each child's or candidate's score
//! averaged first, then ranked) is added as `NAME×K` when K ≥ 2 seeds are given. With two truth
//! files (two truth seeds) the truth is their mean, and the τ between them is the ceiling: a metric
//! cannot be expected to agree with the truth better than the truth agrees with itself.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use pwsnas_models::{Arch, Op, Space};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::rank::{best, kendall_tau_b, spearman_rho};
use super::truth::ChildTruth;
use crate::fsutil::read_json;
use crate::run::RunDir;
use crate::shrink::report::CandidateScore;
use crate::shrink::score::choose_drops;

/// How many candidates to drop and how many of the best to watch (`None`: the defaults above).
#[derive(Clone, Copy, Debug, Default)]
pub struct SurvivalRule {
    pub drop: Option<usize>,
    pub best: Option<usize>,
}

/// One metric on one run (or on the mean of several runs).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MetricResult {
    pub metric: String,
    pub arch_tau: Option<f64>,
    pub arch_rho: Option<f64>,
    pub op_tau: Option<f64>,
    pub op_rho: Option<f64>,
    /// Of the truth's `best` candidates, how many survive dropping `drop` by this metric.
    pub survivors: Option<usize>,
}

/// One scored run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunResult {
    pub run: PathBuf,
    /// `supernet_seeds` is 1 for a run, K for the mean of K runs.
    pub seed: Option<u64>,
    pub supernet_seeds: usize,
    pub epoch: usize,
    pub children: usize,
    pub candidates: usize,
    pub metrics: Vec<MetricResult>,
}

/// Mean and standard deviation over runs (std 0 for one run), as the sweep report's
/// [`crate::sweep::report::Stat`] computes them, with the count.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub mean: f64,
    pub std: f64,
    pub n: usize,
}

impl Summary {
    fn of(values: impl Iterator<Item = f64>) -> Option<Summary> {
        let v: Vec<f64> = values.filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        let s = crate::sweep::report::Stat::of(&v);
        Some(Summary { mean: s.mean, std: s.std.unwrap_or(0.0), n: v.len() })
    }
}

/// A metric at an epoch, summarised over the runs (seeds) at that epoch.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Cell {
    pub metric: String,
    pub epoch: usize,
    pub arch_tau: Option<Summary>,
    pub arch_rho: Option<Summary>,
    pub op_tau: Option<Summary>,
    pub op_rho: Option<Summary>,
    pub survivors: Option<Summary>,
}

/// How much the truth moves between truth seeds.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Ceiling {
    pub files: [PathBuf; 2],
    pub arch_tau: Option<f64>,
    pub op_tau: Option<f64>,
}

/// `fidelity.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Study {
    pub truth: Vec<PathBuf>,
    pub space: String,
    pub children: usize,
    pub candidates: usize,
    /// Candidates dropped and best candidates watched by the survival count.
    pub drop: usize,
    pub best: usize,
    /// The truth's mean top-1 over children: range and mean.
    pub truth_mean: f64,
    pub truth_min: f64,
    pub truth_max: f64,
    pub ceilings: Vec<Ceiling>,
    pub epochs: Vec<usize>,
    /// Metrics in table order.
    pub metrics: Vec<String>,
    pub cells: Vec<Cell>,
    pub runs: Vec<RunResult>,
}

/// Whether a `--truth` names a benchmark table (`FILE.csv` or `FILE.csv#COLUMN`) rather than a
/// truth folder or `truth.jsonl`.
pub fn is_table(path: &Path) -> bool {
    let text = path.to_string_lossy();
    let file = text.split('#').next().unwrap_or("");
    file.to_ascii_lowercase().ends_with(".csv")
}

/// The truth of a file: `truth.jsonl`, a truth folder holding one, or a benchmark table
/// (`TABLE.csv[#COLUMN]`, [`crate::benchmark::table`]; its values in % become fractions like
/// `truth.jsonl`'s, which the rank statistics do not see and the pages print as %).
pub fn read_truth(path: &Path) -> Result<BTreeMap<String, f64>> {
    if is_table(path) {
        let r: crate::benchmark::TableRef = path.to_string_lossy().parse()?;
        let table = crate::benchmark::Table::read(&r)?;
        return Ok(table.cells().map(|(arch, v)| (arch.clone(), v / 100.0)).collect());
    }
    let file = if path.is_dir() { path.join("truth.jsonl") } else { path.to_path_buf() };
    let text = std::fs::read_to_string(&file).with_context(|| {
        format!(
            "cannot read the truth {}: pass a truth.jsonl or the folder `pwsnas fidelity truth --out` wrote",
            file.display()
        )
    })?;
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let child: ChildTruth = serde_json::from_str(line).with_context(|| {
            format!(
                "{} line {}: not a child of a truth (expected the JSON lines `pwsnas fidelity truth` writes)",
                file.display(),
                i + 1
            )
        })?;
        if !child.test_accuracy.is_finite() {
            bail!("{} line {}: test_accuracy is not a number", file.display(), i + 1);
        }
        out.insert(child.arch, child.test_accuracy);
    }
    if out.is_empty() {
        bail!("{} holds no trained child: run `pwsnas fidelity truth` to the end first", file.display());
    }
    Ok(out)
}

/// What the study needs of a run: its space, its candidates' and children's scores.
pub struct ScoredRun {
    pub dir: PathBuf,
    pub seed: u64,
    pub epoch: usize,
    pub space: Space,
    /// `(choice point, op, metric → score)`.
    pub candidates: Vec<(usize, Op, BTreeMap<String, f64>)>,
    /// `(child, metric → score)`.
    pub children: Vec<(Arch, BTreeMap<String, f64>)>,
}

fn numbers(v: &Value, skip: &[&str]) -> BTreeMap<String, f64> {
    v.as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| !skip.contains(&k.as_str()))
                .filter_map(|(k, x)| Some((k.clone(), x.as_f64()?)))
                .collect()
        })
        .unwrap_or_default()
}

impl ScoredRun {
    pub fn open(dir: &Path) -> Result<ScoredRun> {
        let run = RunDir::open(dir)?;
        let shrink_path = run.path("shrink.json");
        let fix = format!("run `pwsnas shrink --run {} --score-only --exhaustive` first", dir.display());
        if !shrink_path.exists() {
            bail!("{} has no shrink.json: {fix}", dir.display());
        }
        let shrink: Value = read_json(&shrink_path)?;
        if shrink["score_only"] != Value::Bool(true) || shrink["exhaustive"] != Value::Bool(true) {
            bail!("{} was not written with --score-only --exhaustive (the study needs every child scored): {fix}", shrink_path.display());
        }
        let space = Space::from_json(read_json(&run.path("space.json"))?)
            .with_context(|| format!("{} does not hold a valid space", run.path("space.json").display()))?;
        let round = &shrink["rounds"][0];
        let epoch = round["epoch"]
            .as_u64()
            .with_context(|| format!("{}: rounds[0].epoch is missing: {fix}", shrink_path.display()))?
            as usize;
        let mut candidates = Vec::new();
        for c in round["candidates"].as_array().into_iter().flatten() {
            let c: CandidateScore = serde_json::from_value(c.clone()).with_context(|| {
                format!("{}: a candidate of rounds[0] is not valid", shrink_path.display())
            })?;
            let cp = space.choice_point_index(&c.choice_point).with_context(|| {
                format!("{}: unknown choice point '{}'", shrink_path.display(), c.choice_point)
            })?;
            candidates.push((cp, c.op, c.scores));
        }
        let mut children = Vec::new();
        for c in shrink["children"].as_array().into_iter().flatten() {
            let text = c["arch"]
                .as_str()
                .with_context(|| format!("{}: a child without arch", shrink_path.display()))?;
            children.push((space.parse_arch(text)?, numbers(c, &["arch"])));
        }
        if children.is_empty() || candidates.is_empty() {
            bail!("{} scored no child: {fix}", shrink_path.display());
        }
        Ok(ScoredRun {
            dir: dir.to_path_buf(),
            seed: run.info.settings.seed,
            epoch,
            space,
            candidates,
            children,
        })
    }
}

/// The candidates' truth: the mean truth of the children containing each, in `run.candidates` order.
fn candidate_truth(run: &ScoredRun, truth: &[f64]) -> Vec<f64> {
    run.candidates
        .iter()
        .map(|(cp, op, _)| {
            let v: Vec<f64> = run
                .children
                .iter()
                .zip(truth)
                .filter(|((a, _), _)| a.ops[*cp] == *op)
                .map(|(_, t)| *t)
                .collect();
            v.iter().sum::<f64>() / v.len().max(1) as f64
        })
        .collect()
}

fn paired(scores: &[Option<f64>], truth: &[f64]) -> (Vec<f64>, Vec<f64>) {
    scores.iter().zip(truth).filter_map(|(s, t)| Some(((*s)?, *t))).unzip()
}

/// Every metric of one run against the truth.
fn score_run(run: &ScoredRun, truth: &[f64], rule: (usize, usize), metrics: &[String]) -> Vec<MetricResult> {
    let op_truth = candidate_truth(run, truth);
    let best_ops: BTreeSet<usize> = best(&op_truth, rule.1).into_iter().collect();
    let mut out = Vec::new();
    for m in metrics {
        let arch: Vec<Option<f64>> = run.children.iter().map(|(_, s)| s.get(m).copied()).collect();
        let ops: Vec<Option<f64>> = run.candidates.iter().map(|(_, _, s)| s.get(m).copied()).collect();
        let (ax, ay) = paired(&arch, truth);
        let (ox, oy) = paired(&ops, &op_truth);
        // Survival is undefined when a candidate has no score or all scores tie (e.g. every angle
        // is 0 when W0 is the current supernet): the drops would follow list order, not the metric.
        let constant = ox.windows(2).all(|w| w[0] == w[1]);
        let survivors = (ops.iter().all(Option::is_some) && !constant).then(|| {
            let scores: Vec<CandidateScore> = run
                .candidates
                .iter()
                .zip(&ops)
                .map(|((cp, op, _), s)| CandidateScore {
                    choice_point: run.space.choices[*cp].name.clone(),
                    op: *op,
                    score: *s,
                    children: 0,
                    no_admissible_child: false,
                    scores: BTreeMap::new(),
                })
                .collect();
            let drops = choose_drops(&run.space, &scores, rule.0, false, |_| true);
            best_ops
                .iter()
                .filter(|&&i| !drops.dropped.contains(&(run.candidates[i].0, run.candidates[i].1)))
                .count()
        });
        let any = !ax.is_empty() || !ox.is_empty();
        if any {
            out.push(MetricResult {
                metric: m.clone(),
                arch_tau: kendall_tau_b(&ax, &ay),
                arch_rho: spearman_rho(&ax, &ay),
                op_tau: kendall_tau_b(&ox, &oy),
                op_rho: spearman_rho(&ox, &oy),
                survivors,
            });
        }
    }
    out
}

/// The metric names in a stable, readable order: the known ones first, then the rest by name.
fn ordered_metrics(names: BTreeSet<String>) -> Vec<String> {
    let known = ["angle", "angle_pwsnas", "angle_full", "accuracy", "magnitude", "random"];
    let mut out: Vec<String> = known.iter().filter(|k| names.contains(**k)).map(|k| k.to_string()).collect();
    let mut rest: Vec<String> = names.into_iter().filter(|n| !known.contains(&n.as_str())).collect();
    rest.sort_by_key(|n| (n.contains('×'), n.clone()));
    out.extend(rest);
    out
}

/// The mean over runs of every score (the same children and candidates in every run).
fn mean_run(runs: &[&ScoredRun]) -> ScoredRun {
    let first = runs[0];
    let mean = |maps: Vec<&BTreeMap<String, f64>>| -> BTreeMap<String, f64> {
        let mut sums: BTreeMap<String, (f64, usize)> = BTreeMap::new();
        for m in &maps {
            for (k, v) in *m {
                let e = sums.entry(format!("{k}×{}", maps.len())).or_default();
                e.0 += v;
                e.1 += 1;
            }
        }
        sums.into_iter().filter(|(_, (_, n))| *n == maps.len()).map(|(k, (s, n))| (k, s / n as f64)).collect()
    };
    let candidates = first
        .candidates
        .iter()
        .enumerate()
        .map(|(i, (cp, op, _))| (*cp, *op, mean(runs.iter().map(|r| &r.candidates[i].2).collect())))
        .collect();
    let children = first
        .children
        .iter()
        .enumerate()
        .map(|(i, (a, _))| (a.clone(), mean(runs.iter().map(|r| &r.children[i].1).collect())))
        .collect();
    ScoredRun {
        dir: first.dir.clone(),
        seed: first.seed,
        epoch: first.epoch,
        space: first.space.clone(),
        candidates,
        children,
    }
}

/// Adds a seeded random score per child (candidates already carry `random` from `pwsnas shrink`).
fn add_random_children(run: &mut ScoredRun) {
    let mut rng = ChaCha8Rng::seed_from_u64(run.seed ^ 0x7a3d_0000 ^ run.epoch as u64);
    for (_, s) in &mut run.children {
        s.insert("random".into(), rng.random::<f64>());
    }
}

/// Builds the study of `runs` against the mean of the `truths`.
pub fn build(truth_files: &[PathBuf], run_dirs: &[PathBuf], rule: SurvivalRule) -> Result<Study> {
    if truth_files.is_empty() {
        bail!("the study needs a ground truth: pass --truth DIR (a folder `pwsnas fidelity truth` wrote)");
    }
    if run_dirs.is_empty() {
        bail!(
            "the study needs runs scored with `pwsnas shrink --score-only --exhaustive`: pass their folders"
        );
    }
    let truths: Vec<BTreeMap<String, f64>> =
        truth_files.iter().map(|f| read_truth(f)).collect::<Result<_>>()?;
    let mut runs: Vec<ScoredRun> = run_dirs.iter().map(|d| ScoredRun::open(d)).collect::<Result<_>>()?;
    for r in &mut runs {
        add_random_children(r);
    }
    // Every run must score the same children and candidates, in the same order.
    let first = &runs[0];
    let key = |r: &ScoredRun| -> (Vec<String>, Vec<(usize, Op)>) {
        (
            r.children.iter().map(|(a, _)| r.space.kind.format_arch(a)).collect(),
            r.candidates.iter().map(|(cp, op, _)| (*cp, *op)).collect(),
        )
    };
    let k0 = key(first);
    for r in &runs[1..] {
        if key(r) != k0 || r.space.kind != first.space.kind {
            bail!(
                "{} and {} scored different spaces: the study compares runs of one space",
                first.dir.display(),
                r.dir.display()
            );
        }
    }
    let names = &k0.0;
    let mut truth = Vec::with_capacity(names.len());
    for name in names {
        let values: Vec<f64> = truths.iter().filter_map(|t| t.get(name).copied()).collect();
        if values.len() < truths.len() {
            let missing =
                truth_files.iter().zip(&truths).find(|(_, t)| !t.contains_key(name)).map(|(f, _)| f);
            bail!(
                "the truth {} has no child {name} of {}: finish it (`pwsnas fidelity truth --out ...` again) or pass the truth of this space",
                missing.map(|f| f.display().to_string()).unwrap_or_default(),
                first.dir.display()
            );
        }
        truth.push(values.iter().sum::<f64>() / values.len() as f64);
    }
    let candidates = first.candidates.len();
    let drop = rule.drop.unwrap_or(((candidates * 2) as f64 / 3.0).round() as usize);
    let best_m = rule.best.unwrap_or(((candidates * 8) as f64 / 30.0).round().max(1.0) as usize);
    if drop >= candidates || best_m == 0 || best_m > candidates {
        bail!("--drop {drop} --best {best_m}: with {candidates} candidates expected drop < {candidates} and 1 <= best <= {candidates}");
    }
    let mut epochs: Vec<usize> = runs.iter().map(|r| r.epoch).collect::<BTreeSet<_>>().into_iter().collect();
    epochs.sort_unstable();
    let mut results: Vec<RunResult> = Vec::new();
    let all_names = |rs: &[&ScoredRun]| -> BTreeSet<String> {
        rs.iter()
            .flat_map(|r| {
                r.candidates
                    .iter()
                    .flat_map(|c| c.2.keys().cloned())
                    .chain(r.children.iter().flat_map(|c| c.1.keys().cloned()))
            })
            .collect()
    };
    let mut metric_names: BTreeSet<String> = BTreeSet::new();
    for &e in &epochs {
        let at: Vec<&ScoredRun> = runs.iter().filter(|r| r.epoch == e).collect();
        let names = ordered_metrics(all_names(&at));
        metric_names.extend(names.iter().cloned());
        for r in &at {
            results.push(RunResult {
                run: r.dir.clone(),
                seed: Some(r.seed),
                supernet_seeds: 1,
                epoch: e,
                children: r.children.len(),
                candidates: r.candidates.len(),
                metrics: score_run(r, &truth, (drop, best_m), &names),
            });
        }
        let seeds: BTreeSet<u64> = at.iter().map(|r| r.seed).collect();
        if seeds.len() >= 2 {
            let mean = mean_run(&at);
            let names = ordered_metrics(all_names(&[&mean]));
            metric_names.extend(names.iter().cloned());
            results.push(RunResult {
                run: PathBuf::from(format!("mean of {} runs", at.len())),
                seed: None,
                supernet_seeds: at.len(),
                epoch: e,
                children: mean.children.len(),
                candidates: mean.candidates.len(),
                metrics: score_run(&mean, &truth, (drop, best_m), &names),
            });
        }
    }
    let metrics = ordered_metrics(metric_names);
    let mut cells = Vec::new();
    for m in &metrics {
        for &e in &epochs {
            let found: Vec<&MetricResult> = results
                .iter()
                .filter(|r| r.epoch == e)
                .flat_map(|r| r.metrics.iter().filter(|x| &x.metric == m))
                .collect();
            if found.is_empty() {
                continue;
            }
            let s = |f: &dyn Fn(&MetricResult) -> Option<f64>| Summary::of(found.iter().filter_map(|x| f(x)));
            cells.push(Cell {
                metric: m.clone(),
                epoch: e,
                arch_tau: s(&|x| x.arch_tau),
                arch_rho: s(&|x| x.arch_rho),
                op_tau: s(&|x| x.op_tau),
                op_rho: s(&|x| x.op_rho),
                survivors: s(&|x| x.survivors.map(|v| v as f64)),
            });
        }
    }
    let mut ceilings = Vec::new();
    for i in 0..truths.len() {
        for j in i + 1..truths.len() {
            let a: Vec<f64> = names.iter().map(|n| truths[i][n]).collect();
            let b: Vec<f64> = names.iter().map(|n| truths[j][n]).collect();
            let oa = candidate_truth(first, &a);
            let ob = candidate_truth(first, &b);
            ceilings.push(Ceiling {
                files: [truth_files[i].clone(), truth_files[j].clone()],
                arch_tau: kendall_tau_b(&a, &b),
                op_tau: kendall_tau_b(&oa, &ob),
            });
        }
    }
    let (lo, hi) = truth.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    Ok(Study {
        truth: truth_files.to_vec(),
        space: format!("{} {}", first.space.kind.name(), first.space.kind.params_json()),
        children: names.len(),
        candidates,
        drop,
        best: best_m,
        truth_mean: truth.iter().sum::<f64>() / truth.len() as f64,
        truth_min: lo,
        truth_max: hi,
        ceilings,
        epochs,
        metrics,
        cells,
        runs: results,
    })
}
