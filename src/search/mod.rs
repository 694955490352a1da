//! Search on the shrunk space: SPOS evolution or random search, each child evaluated once with the
//! shared weights (BN recalibration + validation accuracy), constraints checked before evaluation.
//! Writes `search.json` (every evaluated child) after every generation and `arch.json` (the winner).
//!
//! Resuming: the algorithms are deterministic given the seed and the accuracies of the children they
//! evaluated, so a resumed search replays from the start with the accuracies already in
//! `search.json` and evaluates only what is missing.
pub mod constraints;
pub mod evolution;
pub mod random;

use std::collections::HashMap;

use anyhow::{Context, Result};
use pwsnas_models::{Arch, Space, Supernet};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tch::Device;

use crate::data::RunData;
use crate::eval::Evaluator;
use crate::fsutil::{read_json, write_json};
use crate::progress::Progress;
use crate::run::{RunDir, Stage};
use crate::settings::Strategy;
use crate::train::derive_seed;
use constraints::Constraints;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EvaluatedChild {
    pub arch: String,
    /// Top-1 on the validation subset with the supernet's weights.
    pub accuracy: f64,
    pub flops: f64,
    pub params: f64,
    pub predicted_latency_ms: Option<f64>,
    pub generation: usize,
    /// The child's value in the run's benchmark table (`--benchmark`; `crate::benchmark`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub benchmark: Option<f64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SearchReport {
    pub strategy: Strategy,
    pub space_size: f64,
    /// Children the strategy may evaluate (population × generations).
    pub budget: usize,
    /// True when the space was small enough to evaluate every child that meets the constraints.
    pub exhaustive: bool,
    pub constraints: Constraints,
    /// Children rejected by a constraint before evaluation.
    pub rejected: usize,
    pub val_images: usize,
    pub evaluated: Vec<EvaluatedChild>,
}

/// The winner (`arch.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ArchFile {
    pub space: String,
    pub params: serde_json::Value,
    pub arch: String,
    pub flops: f64,
    pub params_count: f64,
    pub supernet_accuracy: Option<f64>,
    pub predicted_latency_ms: Option<f64>,
    /// The cell in the run's benchmark table (`--benchmark`; `crate::benchmark`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub benchmark: Option<crate::benchmark::Lookup>,
}

impl ArchFile {
    pub fn kind(&self) -> Result<pwsnas_models::SpaceKind> {
        Ok(pwsnas_models::SpaceKind::from_params(&self.space, self.params.clone())?)
    }
}

/// Evaluates children once each, remembering accuracies (also those of an interrupted run).
pub struct Judge<'a> {
    pub net: &'a Supernet,
    pub space: &'a Space,
    pub evaluator: &'a Evaluator,
    pub constraints: &'a Constraints,
    pub known: HashMap<String, f64>,
    pub evaluated: Vec<EvaluatedChild>,
    pub rejected: usize,
}

impl Judge<'_> {
    /// Whether the child meets every constraint.
    pub fn admissible(&mut self, arch: &Arch) -> bool {
        let ok = self.constraints.admits(self.space, arch);
        if !ok {
            self.rejected += 1;
        }
        ok
    }

    pub fn is_evaluated(&self, arch: &Arch) -> bool {
        let key = self.space.format_arch(arch);
        self.evaluated.iter().any(|e| e.arch == key)
    }

    /// Accuracy of an admissible child (evaluated at most once).
    pub fn evaluate(&mut self, arch: &Arch, generation: usize) -> f64 {
        let key = self.space.format_arch(arch);
        if let Some(e) = self.evaluated.iter().find(|e| e.arch == key) {
            return e.accuracy;
        }
        let accuracy = match self.known.get(&key) {
            Some(&a) => a,
            None => self.evaluator.accuracy(self.net, arch),
        };
        let facts = self.constraints.facts(self.space, arch);
        self.evaluated.push(EvaluatedChild {
            arch: key,
            accuracy,
            flops: facts.flops,
            params: facts.params,
            predicted_latency_ms: facts.latency_ms,
            generation,
            benchmark: None,
        });
        accuracy
    }
}

/// `pwsnas search`'s search stage. Returns the winner.
pub fn run_stage(
    run: &mut RunDir,
    net: &Supernet,
    space: &Space,
    data: &RunData,
    device: Device,
    constraints: Constraints,
    progress: &Progress,
) -> Result<ArchFile> {
    if run.is_done(Stage::Search) {
        return read_json(&run.path("arch.json"));
    }
    run.begin(Stage::Search)?;
    let settings = run.info.settings.clone();
    let s = &settings.search;
    let search_path = run.path("search.json");
    let known: HashMap<String, f64> = if search_path.exists() {
        let old: SearchReport = read_json(&search_path)?;
        old.evaluated.into_iter().map(|e| (e.arch, e.accuracy)).collect()
    } else {
        HashMap::new()
    };
    let evaluator =
        Evaluator::new(data, s.bn_batches, settings.supernet.batch_size, s.val_images, settings.seed, device);
    let budget = s.population * s.generations;
    let children = space.kind.child_count(space);
    let exhaustive = space.kind.children_are_paths() && space.size() <= budget as u128;
    let mut judge = Judge {
        net,
        space,
        evaluator: &evaluator,
        constraints: &constraints,
        known,
        evaluated: Vec::new(),
        rejected: 0,
    };
    let mut report = SearchReport {
        strategy: s.strategy,
        space_size: children as f64,
        budget,
        exhaustive,
        constraints: constraints.clone(),
        rejected: 0,
        val_images: evaluator.images(),
        evaluated: Vec::new(),
    };
    let seed = derive_seed(settings.seed, "search", 0);
    let save = |judge: &Judge<'_>, report: &mut SearchReport| -> Result<()> {
        report.evaluated = judge.evaluated.clone();
        report.rejected = judge.rejected;
        write_json(&search_path, report)
    };
    progress.info(format!(
        "search: {:?} over {} children (budget {budget}{})",
        s.strategy,
        children,
        if exhaustive { ", space small enough to evaluate every child" } else { "" }
    ));
    if exhaustive {
        let bar = progress.bar(space.size() as u64, "search");
        for arch in space.enumerate() {
            if judge.admissible(&arch) {
                judge.evaluate(&arch, 0);
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
    } else {
        match s.strategy {
            Strategy::Evolution => evolution::run(&mut judge, s, seed, progress, |j| save(j, &mut report))?,
            Strategy::Random => random::run(&mut judge, budget, seed, progress, |j| save(j, &mut report))?,
        }
    }
    save(&judge, &mut report)?;
    let best = report
        .evaluated
        .iter()
        .max_by(|a, b| a.accuracy.total_cmp(&b.accuracy))
        .context("no child met the constraints: loosen --max-flops / --max-params / --max-latency-ms")?;
    constraints.check_derived(
        &format!("the {:?} search", s.strategy).to_lowercase(),
        space,
        &space.parse_arch(&best.arch)?,
    )?;
    let arch = ArchFile {
        space: space.kind.name().to_string(),
        params: space.kind.params_json(),
        arch: best.arch.clone(),
        flops: best.flops,
        params_count: best.params,
        supernet_accuracy: Some(best.accuracy),
        predicted_latency_ms: best.predicted_latency_ms,
        benchmark: None,
    };
    write_json(&run.path("arch.json"), &arch)?;
    progress.info(format!(
        "search: best {} (supernet accuracy {:.4}, {:.2} MFLOPs)",
        arch.arch,
        best.accuracy,
        best.flops / 1e6
    ));
    progress.event(
        "search_done",
        json!({ "arch": arch.arch, "accuracy": best.accuracy, "evaluated": report.evaluated.len() }),
    );
    run.finish(
        Stage::Search,
        json!({ "arch": arch.arch, "supernet_accuracy": best.accuracy, "evaluated": report.evaluated.len() }),
    )?;
    Ok(arch)
}
