//! Every setting of a run, with its default, in one serde type.
//!
//! Settings are layered: a base (the settings stored in an existing run's `run.json`, or the
//! defaults for a new run), then `--config FILE.toml` ([`Settings::with_toml`]: only the fields the
//! file names change, so a file that names only `[shrink]` never touches the supernet's settings),
//! then command-line flags (`crate::cli`). Closed sets of values are enums, in TOML, JSON and on the
//! command line alike, so an unknown value is refused with the list of valid ones. The resolved
//! settings are stored in `run.json`; each stage records the part that shaped it, so a rerun with a
//! change that would make a finished stage stale is refused (see [`crate::run`]).
use std::path::Path;

use anyhow::{bail, Context, Result};
use pwsnas_models::{Composition, Init, SpaceKind};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::method::settings::GradientSettings;
use crate::method::{Method, Training};
use crate::ort_runtime::Ep;

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
    /// Side in pixels of the cutout square zeroed in each training image (`--cutout N`; 0 = off).
    /// One of DARTS's evaluation extras (DeVries & Taylor 2017; DARTS retrains with 16 on CIFAR-10).
    #[serde(skip_serializing_if = "is_zero_usize")]
    pub cutout: usize,
    /// DARTS's drop-path (`--drop-path P`; 0 = off): in training, each edge's op output other than
    /// the identity is zeroed per image with probability `p · e / E` at epoch `e` of `E` (from 0)
    /// and scaled by `1 / (1 - p)` otherwise, as the DARTS code's `drop_path` (which retrains with
    /// 0.2). Spaces whose network does not support it refuse it.
    #[serde(skip_serializing_if = "is_zero_f64")]
    pub drop_path: f64,
    /// Weight of DARTS's auxiliary head's loss (`--auxiliary-weight W`; 0 = no head): a classifier
    /// on the second reduction cell's output, trained beside the child and added to its loss as
    /// `loss + W · loss_aux` (DARTS retrains with 0.4), never exported and not counted in the
    /// child's parameters (`pwsnas_models::net::aux_head`). Spaces without a head refuse it.
    #[serde(skip_serializing_if = "is_zero_f64")]
    pub auxiliary_weight: f64,
    /// How the network's conv weights are drawn before training (`--init` for the supernet and
    /// the gradient methods' network, `--retrain-init` for the stand-alone child; see
    /// `pwsnas_models::Init`). The supernet's default is PyTorch's (ABS's NB201 supernet), the
    /// child's Kaiming-normal fan-out (NB201's and DARTS's stand-alone training): docs/nb201.md
    /// gives the measurements that chose them. Left out of `run.json` at `fan-out`, which a run
    /// made before the setting existed therefore reads back, as it was built with it.
    #[serde(skip_serializing_if = "is_fan_out")]
    pub init: Init,
}

// Left out of the serialised settings at their defaults, so that runs made before these fields
// existed keep their fingerprints (and stay resumable).
fn is_zero_usize(v: &usize) -> bool {
    *v == 0
}

fn is_zero_f64(v: &f64) -> bool {
    *v == 0.0
}

/// The default of [`ShrinkSettings::accuracy_children`].
pub const ACCURACY_CHILDREN: usize = 200;

fn is_default_accuracy_children(v: &usize) -> bool {
    *v == ACCURACY_CHILDREN
}

fn is_fan_out(v: &Init) -> bool {
    *v == Init::FanOut
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
            cutout: 0,
            drop_path: 0.0,
            auxiliary_weight: 0.0,
            init: Init::FanOut,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShrinkSettings {
    pub metric: Metric,
    /// The angle's weight-vector composition (`--angle-vector`); `ops` by default, chosen with the
    /// supernet's `pytorch` initialisation on NAS-Bench-201 (docs/nb201.md).
    pub angle_vector: Composition,
    /// The `W0` of the angle: the supernet's weights after this many epochs (`--w0-epoch K`; 0 = at
    /// initialisation, `supernet/W0.safetensors`). With `K > 0` the supernet saves its weights when
    /// it completes epoch `K` (`supernet/W0-epochK.safetensors`), as ABS's DARTS code takes `W0`
    /// after its warm-up, and the driving angle is measured from them (keys `angle_w0eK`, ...) once
    /// the supernet is past epoch `K`; scored at epoch `K` or before, it is measured from the
    /// initialisation. `score_only` records the angles from both (docs/method.md). Default 1: in
    /// the fidelity study this ranks operator candidates best at every epoch (docs/fidelity.md);
    /// on NAS-Bench-201 it is within 0.05 of the initialisation either way (docs/nb201.md).
    /// It shapes the shrink stage only: changing it later needs no retraining as long as the
    /// supernet saved that epoch (the stage refuses to run without the file, naming the fix).
    pub w0_epoch: usize,
    /// Children sampled per operator candidate (`S`).
    pub samples_per_op: usize,
    /// Score every child of the space (small spaces only).
    pub exhaustive: bool,
    /// Score once with every metric (and, with `exhaustive`, every child) without dropping anything.
    pub score_only: bool,
    /// With `exhaustive`: supernet accuracy (BN recalibration + validation, the one costly metric)
    /// is measured on this many children drawn uniformly from the space (seeded), every child when
    /// the space has no more; the angles and the magnitude cover every child. A candidate's
    /// accuracy score is the mean over the drawn children holding it: about `N / ops` of them, 40
    /// for NAS-Bench-201's 5 ops at the default 200. Why 200: one child's accuracy takes 10–20 s
    /// at ABS's C=16, N=5 on 2 CPU cores, so all 15,625 would take two days there and 200 take
    /// about 45 minutes, while the angles of all 15,625 take minutes (docs/nb201.md); supernet
    /// accuracy ranks NAS-Bench-201 near chance early in training anyway. Left out of `run.json`
    /// at 200.
    #[serde(skip_serializing_if = "is_default_accuracy_children")]
    pub accuracy_children: usize,
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
            w0_epoch: 1,
            samples_per_op: 100,
            exhaustive: false,
            score_only: false,
            accuracy_children: ACCURACY_CHILDREN,
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
    /// These settings, with the space's defaults (ABS's settings for it,
    /// `pwsnas_models::SpaceDef::shrink_defaults`) where they are not given.
    pub fn resolved_drop_and_target(&self, kind: &SpaceKind, candidates: usize) -> (usize, f64) {
        let defaults = kind.shrink_defaults(candidates);
        (
            self.drop_per_round.unwrap_or(defaults.drop_per_round),
            self.target_size.unwrap_or(defaults.target_size),
        )
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearchSettings {
    /// The method run on the (shrunk) space (see `crate::method`).
    pub method: Method,
    /// How `spos` and `fairnas` explore the space.
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
    /// Execution provider of that table (`cpu` when absent). Left out of `run.json` when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ep: Option<Ep>,
    pub bn_batches: usize,
    pub val_images: usize,
}

impl Default for SearchSettings {
    fn default() -> Self {
        SearchSettings {
            method: Method::Spos,
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
    /// The gradient-based methods' settings (`search.method` = darts, pdarts or proxyless).
    pub gradient: GradientSettings,
    pub retrain: TrainSettings,
    /// A benchmark table of the nb201 space, `FILE` or `FILE#COLUMN` (`--benchmark`; e.g.
    /// NAS-Bench-201's CIFAR-10 test accuracy after 12 epochs, `nb201.csv#cifar10-test@12`): every
    /// child the search evaluates and the cell it finds are looked up in it (`crate::benchmark`).
    /// It shapes no stage, so it is in no fingerprint. Left out of `run.json` when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub benchmark: Option<String>,
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
            supernet: TrainSettings { init: Init::Pytorch, ..TrainSettings::default() },
            shrink: ShrinkSettings::default(),
            search: SearchSettings::default(),
            gradient: GradientSettings::default(),
            retrain: TrainSettings { epochs: 10, lr: 0.05, ..TrainSettings::default() },
            benchmark: None,
        }
    }
}

impl Settings {
    /// Lays the settings file `path` over `self` (see [`Settings::with_toml`]).
    pub fn with_toml_file(self, path: &Path) -> Result<Settings> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        self.with_toml(&text).with_context(|| format!("config {}", path.display()))
    }

    /// Lays a TOML settings text over `self`: every field the text names replaces this one's, every
    /// other field keeps its value; `[space_params]` is merged key by key, and dropped first when the
    /// text switches to another space. The text is checked on its own first (over the defaults), so a
    /// wrong field or value is reported with its line.
    pub fn with_toml(self, text: &str) -> Result<Settings> {
        if let Err(e) = toml::from_str::<Settings>(text) {
            bail!("{}", one_line_toml_error(text, &e));
        }
        let table: toml::Table =
            toml::from_str(text).map_err(|e| anyhow::anyhow!(one_line_toml_error(text, &e)))?;
        let layer = json_of_toml(&toml::Value::Table(table), "")?;
        let mut merged = serde_json::to_value(&self).context("settings cannot be written as JSON")?;
        if let (Some(new), Some(old)) = (layer.get("space"), merged.get("space")) {
            if new != old {
                merged["space_params"] = Value::Object(serde_json::Map::new());
            }
        }
        overlay(&mut merged, layer);
        serde_json::from_value(merged).context("the merged settings are not valid")
    }

    /// A method defined by its supernet's sampler (FairNAS: fair; `crate::method::Training`) sets
    /// the sampler. Flags and sweep grids that set the method without naming the sampler call this,
    /// so `--method fairnas` and a grid over `search.method` need no `sampler = "fair"` beside it
    /// (an explicit other sampler is still refused by the method's check in [`Settings::validate`]).
    pub fn sampler_follows_method(&mut self) {
        if let Training::OneShot { sampler: Some(sampler) } = self.search.method.def().training() {
            self.sampler = sampler;
        }
    }

    /// Switches to the space `name`; another space's parameters are dropped.
    pub fn set_space(&mut self, name: &str) {
        if self.space != name {
            self.space = name.to_string();
            self.space_params.clear();
        }
    }

    /// Checks values that serde cannot.
    pub fn validate(&self) -> Result<()> {
        let params = Value::Object(self.space_params.clone());
        let kind = SpaceKind::from_params(&self.space, params).context("setting space")?;
        if self.shrink.copies > 1 && !kind.weight_copies() {
            bail!(
                "setting shrink.copies (--copies) is {}, but the {} space has no weight copies (strategy 2): use 1",
                self.shrink.copies,
                self.space
            );
        }
        let constrained = self.search.max_flops.is_some()
            || self.search.max_params.is_some()
            || self.search.max_latency_ms.is_some();
        if !kind.children_are_paths() && constrained {
            bail!(
                "settings search.max_flops / search.max_params / search.max_latency_ms (--max-flops, --max-params, --max-latency-ms) are not available for the {} space yet: constraints are checked on paths, and its children are not paths",
                self.space
            );
        }
        let positive = [
            ("supernet.batch_size", self.supernet.batch_size),
            ("retrain.batch_size", self.retrain.batch_size),
            ("shrink.samples_per_op", self.shrink.samples_per_op),
            ("shrink.copies", self.shrink.copies),
            ("shrink.accuracy_children", self.shrink.accuracy_children),
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
        self.search.method.def().check(self, &kind)?;
        self.gradient.validate()?;
        if let Some(b) = &self.benchmark {
            b.parse::<crate::benchmark::TableRef>().context("setting benchmark")?;
            if kind.params::<pwsnas_models::Nb201Params>().is_none() {
                bail!(
                    "setting benchmark = '{b}': benchmark tables hold cells of the nb201 space, and this run's space is {}: drop it",
                    self.space
                );
            }
        }
        if self.search.latency_threads == Some(0) {
            bail!("setting search.latency_threads must be at least 1");
        }
        for (name, t) in [("supernet", &self.supernet), ("retrain", &self.retrain)] {
            if t.lr.is_nan() || t.lr <= 0.0 || !(0.0..1.0).contains(&t.momentum) || t.weight_decay < 0.0 {
                bail!("setting {name}: lr must be > 0, momentum in [0, 1), weight_decay ≥ 0");
            }
            if !(0.0..1.0).contains(&t.label_smoothing) {
                bail!("setting {name}.label_smoothing must be in [0, 1)");
            }
            if !(0.0..1.0).contains(&t.drop_path) {
                bail!("setting {name}.drop_path must be a probability in [0, 1), got {}", t.drop_path);
            }
            if t.drop_path > 0.0 && !kind.drop_path() {
                bail!(
                    "setting {name}.drop_path is {}, but the {} space's network has no drop-path (it is DARTS's, for the darts space): set it to 0",
                    t.drop_path,
                    self.space
                );
            }
            let w = t.auxiliary_weight;
            if !(w.is_finite() && w >= 0.0) {
                bail!(
                    "setting {name}.auxiliary_weight must be a non-negative weight (DARTS uses 0.4), got {w}"
                );
            }
            if w > 0.0 {
                if name == "supernet" {
                    bail!("setting supernet.auxiliary_weight is {w}, but the auxiliary head trains a stand-alone child only (retrain.auxiliary_weight): set it to 0");
                }
                // The size it reads depends on the data: checked with it (`supernet::space_kind`).
                if kind.aux_shape().is_none() {
                    bail!(
                        "setting {name}.auxiliary_weight is {w}, but the {} space's network has no auxiliary head (it is DARTS's, for the darts space): set it to 0",
                        self.space
                    );
                }
            }
        }
        Ok(())
    }
}

/// Replaces the fields of `base` that `layer` names, recursing into objects.
fn overlay(base: &mut Value, layer: Value) {
    match (base, layer) {
        (Value::Object(b), Value::Object(l)) => {
            for (k, v) in l {
                match b.get_mut(&k) {
                    Some(slot) => overlay(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// A TOML value as JSON (the form of `run.json`); a number JSON cannot hold is refused by name.
fn json_of_toml(v: &toml::Value, at: &str) -> Result<Value> {
    Ok(match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => match serde_json::Number::from_f64(*f) {
            Some(n) => Value::Number(n),
            None => bail!("{at} = {f}: expected a finite number"),
        },
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => bail!("{at} = {d}: expected a number, a string or a boolean, not a date"),
        toml::Value::Array(a) => Value::Array(
            a.iter()
                .enumerate()
                .map(|(i, x)| json_of_toml(x, &format!("{at}[{i}]")))
                .collect::<Result<_>>()?,
        ),
        toml::Value::Table(t) => Value::Object(
            t.iter()
                .map(|(k, x)| {
                    let path = if at.is_empty() { k.clone() } else { format!("{at}.{k}") };
                    Ok((k.clone(), json_of_toml(x, &path)?))
                })
                .collect::<Result<_>>()?,
        ),
    })
}

/// `line L, column C (`the line`): message` from a TOML error, on one line.
fn one_line_toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().replace('\n', "; ");
    match e.span() {
        Some(span) => {
            let start =
                (0..=span.start.min(text.len())).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
            let before = &text[..start];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            let source: String = text.lines().nth(line - 1).unwrap_or("").trim().chars().take(60).collect();
            format!("line {line}, column {column} (`{source}`): {message}")
        }
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every settings file under `examples/methods/` and the demo's load and pass validation (the
    /// sweep plans are checked in `sweep::plan`).
    #[test]
    fn the_example_configs_load_and_validate() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        let methods = std::fs::read_dir(root.join("methods"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"));
        let files: Vec<_> = methods.chain([root.join("demo.toml")]).collect();
        assert!(files.len() >= 6, "{files:?}");
        for file in files {
            let s = Settings::default().with_toml_file(&file).unwrap_or_else(|e| panic!("{e:#}"));
            s.validate().unwrap_or_else(|e| panic!("{}: {e:#}", file.display()));
        }
    }

    /// Settings as a finished run stores them: nothing at its default where the layering matters.
    fn stored() -> Settings {
        let mut s = Settings {
            space: "nb201".into(),
            data: "folder:/data/cifar10-images".into(),
            seed: 7,
            ..Settings::default()
        };
        for (k, v) in [("nodes", 3), ("channels", 8), ("cells_per_stage", 1)] {
            s.space_params.insert(k.into(), v.into());
        }
        s.supernet.epochs = 1;
        s.shrink.samples_per_op = 8;
        s.search.latency_ep = Some(Ep::Cuda);
        s
    }

    #[test]
    fn a_toml_naming_only_a_later_stage_leaves_every_other_stored_setting_alone() {
        let layered = stored().with_toml("[shrink]\nsamples_per_op = 20\n").unwrap();
        let mut expected = stored();
        expected.shrink.samples_per_op = 20;
        assert_eq!(layered, expected);
        // The same for an empty file and for a file naming only the search.
        assert_eq!(stored().with_toml("").unwrap(), stored());
        let search = stored().with_toml("[search]\npopulation = 12\ntop_k = 4\n").unwrap();
        assert_eq!((search.search.population, search.search.top_k), (12, 4));
        assert_eq!(
            (search.supernet, search.shrink, search.data),
            (stored().supernet, stored().shrink, stored().data)
        );
    }

    #[test]
    fn toml_fields_replace_stored_ones_and_space_params_merge_by_key() {
        let text = "seed = 3\ndata = \"synthetic\"\n[space_params]\nchannels = 16\n[supernet]\nlr = 0.1\n";
        let s = stored().with_toml(text).unwrap();
        assert_eq!((s.seed, s.data.as_str(), s.supernet.lr), (3, "synthetic", 0.1));
        assert_eq!(s.supernet.epochs, 1, "a field the file does not name keeps the stored value");
        assert_eq!(s.space_params["channels"], 16);
        assert_eq!(s.space_params["nodes"], 3);
        assert_eq!(s.search.latency_ep, Some(Ep::Cuda));
    }

    #[test]
    fn switching_space_drops_the_other_spaces_parameters() {
        let s = stored().with_toml("space = \"mobile\"\n[space_params]\nwidth = 0.5\n").unwrap();
        assert_eq!(s.space, "mobile");
        assert_eq!(s.space_params.len(), 1, "{:?}", s.space_params);
        let mut t = stored();
        t.set_space("nb201");
        assert_eq!(t.space_params.len(), 3, "the same space keeps its parameters");
        t.set_space("mobile");
        assert!(t.space_params.is_empty());
    }

    #[test]
    fn bad_toml_is_one_line_naming_the_line_and_what_is_valid() {
        let err = |text: &str| stored().with_toml(text).unwrap_err().to_string();
        let e = err("seed = 1\n[shrink]\nangle_vectr = \"ops\"\n");
        assert!(
            e.starts_with(
                "line 3, column 1 (`angle_vectr = \"ops\"`): unknown field `angle_vectr`, expected one of"
            ),
            "{e}"
        );
        assert!(e.contains("`angle_vector`") && !e.contains('\n'), "{e}");
        let e = err("[search]\nlatency_ep = \"gpu\"\n");
        assert!(e.contains("line 2") && e.contains("unknown variant `gpu`, expected `cpu` or `cuda`"), "{e}");
        let e = err("[shrink]\nangle_vector = \"all\"\n");
        assert!(e.contains("expected one of `ops`, `full`, `pwsnas`"), "{e}");
        let e = err("sampler = \"fairnas\"\n");
        assert!(e.contains("expected `uniform` or `fair`"), "{e}");
        let e = err("[supernet]\nlr = nan\n");
        assert_eq!(e, "supernet.lr = NaN: expected a finite number");
        let e = err("seed = 1979-05-27\n");
        assert!(e.starts_with("line 1, column 8 (`seed = 1979-05-27`): invalid type"), "{e}");
        let e = err("[space_params]\nwhen = 1979-05-27\n");
        assert!(e.contains("space_params.when = 1979-05-27: expected a number"), "{e}");
        let e = err("[shrink\n");
        assert!(e.starts_with("line 1, column"), "{e}");
        let e = err("é = 1\nseed = -1\n");
        assert!(e.contains("line 1"), "{e}");
    }

    #[test]
    fn an_unknown_space_is_refused_with_the_known_ones() {
        let s = Settings { space: "darts2".into(), ..Settings::default() };
        let e = format!("{:#}", s.validate().unwrap_err());
        assert!(
            e.contains("setting space") && e.contains("unknown space 'darts2'") && e.contains("nb201"),
            "{e}"
        );
    }

    #[test]
    fn values_serde_cannot_check_are_refused_naming_the_setting() {
        let refused = |change: fn(&mut Settings), expected: &str| {
            let mut s = Settings::default();
            change(&mut s);
            let e = format!("{:#}", s.validate().unwrap_err());
            assert_eq!(e, expected);
        };
        refused(|s| s.shrink.samples_per_op = 0, "setting shrink.samples_per_op must be at least 1");
        refused(|s| s.shrink.copies = 0, "setting shrink.copies must be at least 1");
        refused(|s| s.supernet.batch_size = 0, "setting supernet.batch_size must be at least 1");
        refused(|s| s.search.population = 5, "setting search.top_k (10) cannot exceed search.population (5)");
        refused(|s| s.val_fraction = 1.5, "setting val_fraction must be in (0, 1), got 1.5");
        refused(|s| s.search.mutation_prob = 2.0, "setting search.mutation_prob must be in [0, 1], got 2");
        refused(
            |s| s.search.max_latency_ms = Some(0.0),
            "setting search.max_latency_ms must be a positive number of milliseconds, got 0",
        );
        refused(|s| s.search.latency_threads = Some(0), "setting search.latency_threads must be at least 1");
        refused(
            |s| s.supernet.lr = 0.0,
            "setting supernet: lr must be > 0, momentum in [0, 1), weight_decay ≥ 0",
        );
        refused(|s| s.retrain.label_smoothing = 1.0, "setting retrain.label_smoothing must be in [0, 1)");
        refused(
            |s| s.retrain.drop_path = 1.0,
            "setting retrain.drop_path must be a probability in [0, 1), got 1",
        );
        refused(
            |s| s.supernet.drop_path = 0.2,
            "setting supernet.drop_path is 0.2, but the nb201 space's network has no drop-path (it is DARTS's, for the darts space): set it to 0",
        );
        refused(
            |s| s.retrain.auxiliary_weight = 0.4,
            "setting retrain.auxiliary_weight is 0.4, but the nb201 space's network has no auxiliary head (it is DARTS's, for the darts space): set it to 0",
        );
        assert!(Settings::default().validate().is_ok());
        let mut darts = Settings::default();
        darts.set_space("darts");
        darts.retrain.drop_path = 0.2;
        darts.retrain.auxiliary_weight = 0.4;
        assert!(darts.validate().is_ok());
        darts.supernet.auxiliary_weight = 0.4;
        let e = format!("{:#}", darts.validate().unwrap_err());
        assert!(
            e.contains("setting supernet.auxiliary_weight is 0.4") && e.contains("stand-alone child only"),
            "{e}"
        );
    }

    #[test]
    fn cutout_and_drop_path_are_left_out_of_the_settings_at_their_defaults() {
        // So that runs made before they existed keep their fingerprints.
        let json = serde_json::to_value(Settings::default()).unwrap();
        assert!(json["retrain"].get("cutout").is_none() && json["retrain"].get("drop_path").is_none());
        let mut s = Settings::default();
        s.retrain.cutout = 16;
        s.retrain.drop_path = 0.2;
        s.set_space("darts");
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(
            (json["retrain"]["cutout"].as_u64(), json["retrain"]["drop_path"].as_f64()),
            (Some(16), Some(0.2))
        );
        assert_eq!(serde_json::from_value::<Settings>(json).unwrap(), s);
    }

    #[test]
    fn pdarts_settings_are_refused_with_other_methods_and_depth_where_a_space_has_none() {
        let mut s = Settings::default();
        s.search.method = Method::Darts;
        s.gradient.pdarts_skip_dropout = Some(vec![0.0, 0.2]);
        let e = format!("{:#}", s.validate().unwrap_err());
        assert_eq!(e, "setting gradient.pdarts_skip_dropout is PDARTS's, for search.method = pdarts, not darts: drop it");
        s.search.method = Method::Pdarts;
        s.gradient.pdarts_depth = Some(vec![1, 2]);
        assert!(s.validate().is_ok(), "nb201 grows its cells per stage");
        assert!(!serde_json::to_value(Settings::default()).unwrap()["gradient"]
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k.starts_with("pdarts_d") || k.starts_with("pdarts_s") || k.starts_with("pdarts_w")));
        s.set_space("mobile");
        let e = format!("{:#}", s.validate().unwrap_err());
        assert!(e.starts_with("setting gradient.pdarts_depth: the mobile space has no depth"), "{e}");
        s.set_space("darts");
        s.gradient.pdarts_depth = Some(vec![3, 2]);
        let e = format!("{:#}", s.validate().unwrap_err());
        assert!(
            e.starts_with("setting gradient.pdarts_depth = 2: ") && e.contains("at least 3 cells"),
            "{e}"
        );
    }

    #[test]
    fn the_execution_provider_is_stored_as_its_name() {
        let mut s = Settings::default();
        s.search.latency_ep = Some(Ep::Cuda);
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["search"]["latency_ep"], "cuda");
        assert_eq!(serde_json::from_value::<Settings>(json).unwrap(), s);
    }
}
