//! Every setting of a run, with its default, in one serde type.
//!
//! Settings come from defaults, then `--config FILE.toml` (same field names, sections `[supernet]`,
//! `[shrink]`, `[search]`, `[retrain]`, `[space_params]`), then command-line flags. The resolved
//! settings are stored in `run.json`; each stage records the part that shaped it, so a rerun with a
//! change that would make a finished stage stale is refused (see [`crate::run`]).
use std::path::Path;

use anyhow::{bail, Context, Result};
use pwsnas_models::{Composition, SpaceKind};
use serde::{Deserialize, Serialize};

/// How the supernet picks children during training.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Sampler {
    /// SPOS: one child drawn uniformly per step.
    Uniform,
    /// FairNAS: per step, children that together use every op of every choice point, one update.
    Fair,
}

/// The metric that scores operator candidates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    Angle,
    Accuracy,
    Magnitude,
    Random,
    /// No shrinking: the search runs on the full space (plain SPOS, the paper's baseline).
    None,
}

/// How the search explores the (shrunk) space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    Evolution,
    Random,
}

/// SGD training of a network (the supernet, or the retrained child).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainSettings {
    pub epochs: usize,
    pub batch_size: usize,
    /// Initial learning rate of the cosine schedule.
    pub lr: f64,
    pub momentum: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
    pub label_smoothing: f64,
    /// Clip the gradient norm to this value (none by default).
    pub grad_clip: Option<f64>,
    /// Stop each epoch after this many steps (for quick runs); all batches by default.
    pub steps_per_epoch: Option<usize>,
}

impl Default for TrainSettings {
    fn default() -> Self {
        TrainSettings {
            epochs: 10,
            batch_size: 64,
            lr: 0.05,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 5e-4,
            label_smoothing: 0.0,
            grad_clip: Some(5.0),
            steps_per_epoch: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShrinkSettings {
    pub metric: Metric,
    pub angle_vector: Composition,
    /// Children sampled per operator candidate (`S`).
    pub samples_per_op: usize,
    /// Score every child of the space (small spaces only).
    pub exhaustive: bool,
    /// Score once with every metric (and, with `exhaustive`, every child) without dropping anything.
    pub score_only: bool,
    /// Candidates dropped per round (global ranking); the space's default when absent.
    pub drop_per_round: Option<usize>,
    /// Drop the lowest candidate of every choice point each round instead (FairNAS).
    pub per_choice_point: bool,
    pub epochs_between_rounds: usize,
    /// Stop when the space has at most this many children; the space's default when absent.
    pub target_size: Option<f64>,
    /// Most weight copies per choice point after each round (strategy 2; 1 = off).
    pub copies: usize,
    /// What the copies may spend: the effective supernet (shared parts + surviving ops × copies)
    /// stays at or below this multiple of the original supernet's parameters (1.0: only what
    /// dropped ops freed).
    pub param_budget: f64,
    /// Supernet epochs after the last round, before the search (so the newest copies are trained).
    pub epochs_after_shrink: usize,
    /// Training batches used to recalibrate BatchNorm before an accuracy evaluation.
    pub bn_batches: usize,
    /// Validation images used by the accuracy metric.
    pub val_images: usize,
}

impl Default for ShrinkSettings {
    fn default() -> Self {
        ShrinkSettings {
            metric: Metric::Angle,
            angle_vector: Composition::Ops,
            samples_per_op: 100,
            exhaustive: false,
            score_only: false,
            drop_per_round: None,
            per_choice_point: false,
            epochs_between_rounds: 1,
            target_size: None,
            copies: 1,
            param_budget: 1.0,
            epochs_after_shrink: 0,
            bn_batches: 4,
            val_images: 500,
        }
    }
}

impl ShrinkSettings {
    /// ABS's settings when not given: NB201 drops two thirds of its candidates in one round (20 of
    /// 30) and stops; the MBConv chain space drops 7 per round down to 1e6 children.
    pub fn resolved_drop_and_target(&self, kind: &SpaceKind, candidates: usize) -> (usize, f64) {
        let (drop, target) = match kind {
            SpaceKind::Nb201(_) => ((candidates as f64 * 2.0 / 3.0).round() as usize, 100.0),
            SpaceKind::Mobile(_) => (7, 1e6),
        };
        (self.drop_per_round.unwrap_or(drop), self.target_size.unwrap_or(target))
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearchSettings {
    pub strategy: Strategy,
    pub population: usize,
    pub generations: usize,
    pub top_k: usize,
    /// Per-choice-point probability of a mutation.
    pub mutation_prob: f64,
    pub max_flops: Option<f64>,
    pub max_params: Option<f64>,
    /// Cap on the predicted ONNX Runtime latency (ms, batch 1) from the latency table.
    pub max_latency_ms: Option<f64>,
    /// ONNX Runtime intra-op threads of the latency table the search predicts with (absent: libtorch's
    /// default thread count, as `pwsnas export` uses). Left out of `run.json` when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_threads: Option<usize>,
    /// Execution provider of that table: `cpu` (when absent) or `cuda`. Left out of `run.json` when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ep: Option<String>,
    pub bn_batches: usize,
    pub val_images: usize,
}

impl Default for SearchSettings {
    fn default() -> Self {
        SearchSettings {
            strategy: Strategy::Evolution,
            population: 50,
            generations: 20,
            top_k: 10,
            mutation_prob: 0.1,
            max_flops: None,
            max_params: None,
            max_latency_ms: None,
            latency_threads: None,
            latency_ep: None,
            bn_batches: 4,
            val_images: 1000,
        }
    }
}

/// Everything a run depends on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub space: String,
    /// Space parameters (`nb201`: nodes, ops, channels, cells_per_stage; `mobile`: width, stages, ...).
    /// The input shape and the number of classes come from the data.
    pub space_params: serde_json::Map<String, serde_json::Value>,
    /// A `space.json` to start from instead of the full space (e.g. another run's shrunk space).
    pub space_file: Option<String>,
    pub data: String,
    /// Resize folder images to this size.
    pub image_size: Option<usize>,
    /// Fraction of the training split held out for validation (the search's accuracy).
    pub val_fraction: f64,
    pub seed: u64,
    pub sampler: Sampler,
    pub supernet: TrainSettings,
    pub shrink: ShrinkSettings,
    pub search: SearchSettings,
    pub retrain: TrainSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            space: "nb201".into(),
            space_params: serde_json::Map::new(),
            space_file: None,
            data: "fashion-mnist".into(),
            image_size: None,
            val_fraction: 0.1,
            seed: 0,
            sampler: Sampler::Uniform,
            supernet: TrainSettings::default(),
            shrink: ShrinkSettings::default(),
            search: SearchSettings::default(),
            retrain: TrainSettings { epochs: 10, lr: 0.05, ..TrainSettings::default() },
        }
    }
}

impl Settings {
    /// Reads a TOML config file over the defaults.
    pub fn from_toml_file(path: &Path) -> Result<Settings> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("config {} is not valid", path.display()))
    }

    /// Checks values that serde cannot.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("supernet.batch_size", self.supernet.batch_size),
            ("retrain.batch_size", self.retrain.batch_size),
            ("shrink.samples_per_op", self.shrink.samples_per_op),
            ("shrink.copies", self.shrink.copies),
            ("search.population", self.search.population),
            ("search.top_k", self.search.top_k),
        ];
        for (name, v) in positive {
            if v == 0 {
                bail!("setting {name} must be at least 1");
            }
        }
        if self.search.top_k > self.search.population {
            bail!(
                "setting search.top_k ({}) cannot exceed search.population ({})",
                self.search.top_k,
                self.search.population
            );
        }
        if !(0.0..1.0).contains(&self.val_fraction) || self.val_fraction <= 0.0 {
            bail!("setting val_fraction must be in (0, 1), got {}", self.val_fraction);
        }
        if !(0.0..=1.0).contains(&self.search.mutation_prob) {
            bail!("setting search.mutation_prob must be in [0, 1], got {}", self.search.mutation_prob);
        }
        let budget = self.shrink.param_budget;
        if !(budget.is_finite() && budget > 0.0) {
            bail!("setting shrink.param_budget must be a positive multiple of the original supernet's parameters (1.0 = no growth), got {budget}");
        }
        if let Some(max) = self.search.max_latency_ms {
            if !(max.is_finite() && max > 0.0) {
                bail!("setting search.max_latency_ms must be a positive number of milliseconds, got {max}");
            }
        }
        if self.search.latency_threads == Some(0) {
            bail!("setting search.latency_threads must be at least 1");
        }
        if let Some(ep) = &self.search.latency_ep {
            if !["cpu", "cuda"].contains(&ep.as_str()) {
                bail!("setting search.latency_ep = '{ep}': expected cpu or cuda");
            }
        }
        for (name, t) in [("supernet", &self.supernet), ("retrain", &self.retrain)] {
            if t.lr.is_nan() || t.lr <= 0.0 || !(0.0..1.0).contains(&t.momentum) || t.weight_decay < 0.0 {
                bail!("setting {name}: lr must be > 0, momentum in [0, 1), weight_decay ≥ 0");
            }
            if !(0.0..1.0).contains(&t.label_smoothing) {
                bail!("setting {name}.label_smoothing must be in [0, 1)");
            }
        }
        Ok(())
    }
}
