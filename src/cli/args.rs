//! The flags shared by several commands, and how they layer over stored or default settings.
use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use pwsnas_models::Composition;
use serde_json::json;

use crate::export;
use crate::ort_runtime::Ep;
use crate::run::RunDir;
use crate::settings::{Metric, Sampler, Settings, Strategy};

/// How to run ONNX Runtime.
#[derive(Args, Clone)]
pub struct OrtArgs {
    /// ONNX Runtime execution provider (cuda only with a GPU build of ONNX Runtime; never a silent fallback).
    #[arg(long, value_enum, default_value = "cpu")]
    pub ep: Ep,
    /// Intra-op threads of ONNX Runtime (and of libtorch for the comparison); default: libtorch's default.
    #[arg(long)]
    pub threads: Option<usize>,
    /// The ONNX Runtime library (libonnxruntime.so.1.31.x); default: ORT_DYLIB_PATH, then the one set-up installed.
    #[arg(long)]
    pub ort_lib: Option<PathBuf>,
}

/// Space parameters that can be set from flags (others through `[space_params]` in a config).
#[derive(Args, Clone, Default)]
pub struct SpaceShapeArgs {
    /// nb201: nodes per cell (4 = 6 edges; 3 = the 125-child space).
    #[arg(long)]
    pub nodes: Option<usize>,
    /// nb201: channels of the first stage (C).
    #[arg(long)]
    pub channels: Option<usize>,
    /// nb201: cells per stage (N).
    #[arg(long)]
    pub cells: Option<usize>,
    /// mobile: channel multiplier.
    #[arg(long)]
    pub width: Option<f64>,
    /// arch info and latency-table only: number of classes.
    #[arg(long)]
    pub classes: Option<usize>,
    /// arch info and latency-table only: input image size.
    #[arg(long)]
    pub input_size: Option<usize>,
    /// arch info and latency-table only: input channels.
    #[arg(long)]
    pub input_channels: Option<usize>,
}

impl SpaceShapeArgs {
    pub fn apply(&self, params: &mut serde_json::Map<String, serde_json::Value>) {
        let mut set = |k: &str, v: Option<serde_json::Value>| {
            if let Some(v) = v {
                params.insert(k.to_string(), v);
            }
        };
        set("nodes", self.nodes.map(|v| json!(v)));
        set("channels", self.channels.map(|v| json!(v)));
        set("cells_per_stage", self.cells.map(|v| json!(v)));
        set("width", self.width.map(|v| json!(v)));
        set("classes", self.classes.map(|v| json!(v)));
        set("input_size", self.input_size.map(|v| json!(v)));
        set("input_channels", self.input_channels.map(|v| json!(v)));
    }
}

/// Options of commands that work in a run directory.
#[derive(Args, Clone)]
pub struct RunArgs {
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Redo a finished stage whose settings changed (and every later stage) instead of refusing.
    #[arg(long)]
    pub force: bool,
}

/// Every setting as an optional flag; see `settings.rs` for meanings and defaults.
#[derive(Args, Clone, Default)]
pub struct SettingsArgs {
    /// TOML file with settings (flags override it).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// nb201 or mobile.
    #[arg(long)]
    pub space: Option<String>,
    /// fashion-mnist, mnist:PATH, cifar10:PATH, cifar100:PATH, folder:PATH, synthetic[:k=v,...].
    #[arg(long)]
    pub data: Option<String>,
    /// Start from this space.json (e.g. another run's shrunk space).
    #[arg(long)]
    pub space_file: Option<String>,
    #[command(flatten)]
    pub shape: SpaceShapeArgs,
    #[arg(long)]
    pub image_size: Option<usize>,
    #[arg(long)]
    pub val_fraction: Option<f64>,
    #[arg(long)]
    pub seed: Option<u64>,
    #[arg(long, value_enum)]
    pub sampler: Option<Sampler>,
    /// Supernet training epochs before the first shrinking round.
    #[arg(long)]
    pub warmup_epochs: Option<usize>,
    #[arg(long)]
    pub batch_size: Option<usize>,
    #[arg(long)]
    pub lr: Option<f64>,
    #[arg(long)]
    pub weight_decay: Option<f64>,
    #[arg(long)]
    pub label_smoothing: Option<f64>,
    #[arg(long)]
    pub grad_clip: Option<f64>,
    /// Cap on training steps per epoch (supernet and retraining), for quick runs.
    #[arg(long)]
    pub steps_per_epoch: Option<usize>,
    /// Shrinking metric: angle, accuracy, magnitude, random, or none (plain SPOS).
    #[arg(long = "shrink", value_enum)]
    pub metric: Option<Metric>,
    /// Weight-vector composition of the angle: ops (default) or full.
    #[arg(long)]
    pub angle_vector: Option<String>,
    #[arg(long)]
    pub samples_per_op: Option<usize>,
    #[arg(long)]
    pub exhaustive: bool,
    #[arg(long)]
    pub score_only: bool,
    #[arg(long)]
    pub drop_per_round: Option<usize>,
    #[arg(long)]
    pub per_choice_point: bool,
    #[arg(long)]
    pub epochs_between_rounds: Option<usize>,
    #[arg(long)]
    pub target_size: Option<f64>,
    /// Most weight copies per choice point after each round (strategy 2; 1 = off).
    #[arg(long)]
    pub copies: Option<usize>,
    /// Parameters the copies may bring the supernet to, as a multiple of the original supernet's (1.0 = no growth).
    #[arg(long)]
    pub param_budget: Option<f64>,
    /// Supernet epochs after the last shrinking round, before the search.
    #[arg(long)]
    pub epochs_after_shrink: Option<usize>,
    #[arg(long, value_enum)]
    pub strategy: Option<Strategy>,
    #[arg(long)]
    pub population: Option<usize>,
    #[arg(long)]
    pub generations: Option<usize>,
    #[arg(long)]
    pub top_k: Option<usize>,
    #[arg(long)]
    pub mutation_prob: Option<f64>,
    #[arg(long)]
    pub max_flops: Option<f64>,
    #[arg(long)]
    pub max_params: Option<f64>,
    /// Cap on the predicted ONNX Runtime latency at batch 1 (ms), from the latency table.
    #[arg(long)]
    pub max_latency_ms: Option<f64>,
    /// ONNX Runtime threads the search predicts latencies for (default: as `pwsnas export`).
    #[arg(long)]
    pub latency_threads: Option<usize>,
    /// ONNX Runtime execution provider the search predicts latencies for: cpu (default) or cuda.
    #[arg(long)]
    pub latency_ep: Option<String>,
    /// Validation images per child evaluation in the search.
    #[arg(long)]
    pub val_images: Option<usize>,
    #[arg(long)]
    pub retrain_epochs: Option<usize>,
    #[arg(long)]
    pub retrain_lr: Option<f64>,
}

impl SettingsArgs {
    /// Applies the config file and flags over `base`.
    pub fn resolve(&self, base: Settings) -> Result<Settings> {
        let mut s = match &self.config {
            Some(path) => Settings::from_toml_file(path)?,
            None => base,
        };
        macro_rules! set {
            ($field:expr, $value:expr) => {
                if let Some(v) = $value.clone() {
                    $field = v;
                }
            };
        }
        set!(s.space, self.space);
        set!(s.data, self.data);
        if self.space_file.is_some() {
            s.space_file = self.space_file.clone();
        }
        self.shape.apply(&mut s.space_params);
        if self.image_size.is_some() {
            s.image_size = self.image_size;
        }
        set!(s.val_fraction, self.val_fraction);
        set!(s.seed, self.seed);
        set!(s.sampler, self.sampler);
        set!(s.supernet.epochs, self.warmup_epochs);
        set!(s.supernet.batch_size, self.batch_size);
        set!(s.supernet.lr, self.lr);
        set!(s.supernet.weight_decay, self.weight_decay);
        set!(s.supernet.label_smoothing, self.label_smoothing);
        if self.grad_clip.is_some() {
            s.supernet.grad_clip = self.grad_clip;
            s.retrain.grad_clip = self.grad_clip;
        }
        if self.steps_per_epoch.is_some() {
            s.supernet.steps_per_epoch = self.steps_per_epoch;
            s.retrain.steps_per_epoch = self.steps_per_epoch;
        }
        set!(s.shrink.metric, self.metric);
        if let Some(v) = &self.angle_vector {
            s.shrink.angle_vector = match v.as_str() {
                "ops" => Composition::Ops,
                "full" => Composition::Full,
                other => anyhow::bail!("--angle-vector {other}: expected ops or full"),
            };
        }
        set!(s.shrink.samples_per_op, self.samples_per_op);
        s.shrink.exhaustive |= self.exhaustive;
        s.shrink.score_only |= self.score_only;
        if self.drop_per_round.is_some() {
            s.shrink.drop_per_round = self.drop_per_round;
        }
        s.shrink.per_choice_point |= self.per_choice_point;
        set!(s.shrink.epochs_between_rounds, self.epochs_between_rounds);
        if self.target_size.is_some() {
            s.shrink.target_size = self.target_size;
        }
        set!(s.shrink.copies, self.copies);
        set!(s.shrink.param_budget, self.param_budget);
        set!(s.shrink.epochs_after_shrink, self.epochs_after_shrink);
        set!(s.search.strategy, self.strategy);
        set!(s.search.population, self.population);
        set!(s.search.generations, self.generations);
        set!(s.search.top_k, self.top_k);
        set!(s.search.mutation_prob, self.mutation_prob);
        if self.max_flops.is_some() {
            s.search.max_flops = self.max_flops;
        }
        if self.max_params.is_some() {
            s.search.max_params = self.max_params;
        }
        if self.max_latency_ms.is_some() {
            s.search.max_latency_ms = self.max_latency_ms;
        }
        if self.latency_threads.is_some() {
            s.search.latency_threads = self.latency_threads;
        }
        if self.latency_ep.is_some() {
            s.search.latency_ep = self.latency_ep.clone();
        }
        set!(s.search.val_images, self.val_images);
        set!(s.retrain.epochs, self.retrain_epochs);
        set!(s.retrain.lr, self.retrain_lr);
        s.validate()?;
        Ok(s)
    }
}

/// Settings for a new run (`--out`): stored ones when the run exists, else defaults; then config and flags.
pub fn settings_for(out: &Path, args: &SettingsArgs) -> Result<Settings> {
    let base =
        if out.join("run.json").exists() { RunDir::open(out)?.info.settings } else { Settings::default() };
    args.resolve(base)
}

/// Settings of an existing run with flag overrides (a run command never starts from defaults).
pub fn args_over_run(dir: &Path, args: &SettingsArgs) -> Result<Settings> {
    let base = RunDir::open(dir)?.info.settings;
    args.resolve(base)
}

/// Flags of `pwsnas export`.
#[derive(Args)]
pub struct ExportArgs {
    /// The run directory (written by `pwsnas search`).
    pub dir: PathBuf,
    #[command(flatten)]
    pub ort: OrtArgs,
    /// Parity tolerance on max |ORT - libtorch| / max |logit| over the validation batch.
    #[arg(long, default_value_t = export::DEFAULT_TOLERANCE)]
    pub tolerance: f64,
    /// Timed runs per latency measurement (after the warm-up runs).
    #[arg(long, default_value_t = 100)]
    pub latency_runs: usize,
    /// Untimed warm-up runs before each latency measurement.
    #[arg(long, default_value_t = 10)]
    pub warmup: usize,
    /// Validation images in the parity batch.
    #[arg(long, default_value_t = 64)]
    pub parity_images: usize,
    /// libtorch device for parity, accuracy and latency (default: cpu with --ep cpu, cuda with --ep cuda).
    #[arg(long)]
    pub device: Option<String>,
}

/// Flags of `pwsnas latency-table`.
#[derive(Args)]
pub struct LatencyTableArgs {
    /// Take the space from this run directory (instead of --space/--data/--config).
    #[arg(long = "run", conflicts_with_all = ["config", "space", "data", "image_size", "space_file"])]
    pub dir: Option<PathBuf>,
    /// Take the space from this space.json (e.g. a run's shrunk space).
    #[arg(long, conflicts_with_all = ["config", "space", "data", "image_size"])]
    pub space_file: Option<PathBuf>,
    /// TOML settings as for `pwsnas search` (space, space_params, data, image_size).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// nb201 or mobile (default: as `pwsnas search`).
    #[arg(long)]
    pub space: Option<String>,
    /// The data whose image shape and classes the space takes (default: as `pwsnas search`);
    /// not read when --input-size, --input-channels or --classes is given.
    #[arg(long)]
    pub data: Option<String>,
    #[arg(long)]
    pub image_size: Option<usize>,
    #[command(flatten)]
    pub shape: SpaceShapeArgs,
    #[command(flatten)]
    pub ort: OrtArgs,
    /// Measure again even when a table for this space and machine exists.
    #[arg(long)]
    pub rebuild: bool,
    /// Timed runs per measured model (after the warm-up runs).
    #[arg(long, default_value_t = 200)]
    pub runs: usize,
    /// Untimed warm-up runs before each measurement.
    #[arg(long, default_value_t = 20)]
    pub warmup: usize,
    /// Also print the predicted latency of this architecture, piece by piece. (The range of
    /// predictions over the space's children — with --run, its shrunk space — is always printed.)
    #[arg(long)]
    pub arch: Option<String>,
}
