//! The flags shared by several commands, and how they layer over stored or default settings:
//! the base (an existing run's `run.json`, else the defaults), then `--config FILE.toml` (only the
//! fields it names), then flags.
//!
//! Flags that stand for a closed set are typed (`value_enum`, or a parser that asks the type), so
//! clap refuses an unknown value with the list of valid ones before anything runs.
use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use pwsnas_datasets::DataSpec;
use pwsnas_models::{Composition, Init, SpaceKind};
use serde_json::json;

use crate::export;
use crate::method::settings::LatencyLoss;
use crate::method::Method;
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
    /// nb201: channels of the first stage (C); darts: channels of the first cells (C).
    #[arg(long)]
    pub channels: Option<usize>,
    /// darts: cells in all (L, as DARTS counts them; at least 3).
    #[arg(long)]
    pub layers: Option<usize>,
    /// darts: shrink the normal and the reduction cell's op lists apart (default: one list per
    /// edge shared by both, as ABS).
    #[arg(long, conflicts_with = "shared_cells")]
    pub separate_cells: bool,
    /// darts: one op list per edge shared by the normal and the reduction cell (the default).
    #[arg(long)]
    pub shared_cells: bool,
    /// nb201: cells per stage (N).
    #[arg(long)]
    pub cells: Option<usize>,
    /// mobile: channel multiplier.
    #[arg(long)]
    pub width: Option<f64>,
    /// arch info, latency-table and bench only: number of classes.
    #[arg(long)]
    pub classes: Option<usize>,
    /// arch info, latency-table and bench only: input image size.
    #[arg(long)]
    pub input_size: Option<usize>,
    /// arch info, latency-table and bench only: input channels.
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
        set("layers", self.layers.map(|v| json!(v)));
        let linked = (self.separate_cells || self.shared_cells).then_some(self.shared_cells);
        set("linked_cells", linked.map(|v| json!(v)));
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
    /// nb201, mobile or darts.
    #[arg(long, value_parser = space_name)]
    pub space: Option<String>,
    /// fashion-mnist, mnist:PATH, cifar10:PATH, cifar100:PATH, folder:PATH, synthetic[:k=v,...].
    #[arg(long, value_parser = data_spec)]
    pub data: Option<String>,
    /// Start from this space.json (e.g. another run's shrunk space).
    #[arg(long)]
    pub space_file: Option<String>,
    #[command(flatten)]
    pub shape: SpaceShapeArgs,
    /// Resize folder images to N×N pixels (folder data only).
    #[arg(long, value_name = "N")]
    pub image_size: Option<usize>,
    /// Fraction of the training split held out for validation (the search's accuracy), in (0, 1).
    #[arg(long)]
    pub val_fraction: Option<f64>,
    /// Seed of every random choice (weights, data order, sampled children): runs are reproducible.
    #[arg(long)]
    pub seed: Option<u64>,
    /// How the supernet picks children: uniform (SPOS) or fair (FairNAS).
    #[arg(long, value_enum)]
    pub sampler: Option<Sampler>,
    /// Supernet training epochs before the first shrinking round.
    #[arg(long)]
    pub warmup_epochs: Option<usize>,
    /// Supernet training batch size.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Supernet SGD learning rate (the start of its cosine schedule).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Supernet SGD weight decay.
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Supernet label smoothing, in [0, 1).
    #[arg(long)]
    pub label_smoothing: Option<f64>,
    /// Clip the gradient's global norm to this value (supernet and retraining).
    #[arg(long)]
    pub grad_clip: Option<f64>,
    /// How the supernet's (and the gradient methods' network's) conv weights are drawn: pytorch
    /// (PyTorch's default, ABS's; the default) or fan-out (Kaiming normal).
    #[arg(long, value_enum)]
    pub init: Option<Init>,
    /// Cap on training steps per epoch (supernet and retraining), for quick runs.
    #[arg(long)]
    pub steps_per_epoch: Option<usize>,
    /// Shrinking metric: angle, accuracy, magnitude, random, or none (plain SPOS).
    #[arg(long = "shrink", value_enum)]
    pub metric: Option<Metric>,
    /// Weight-vector composition of the angle (see docs/method.md).
    #[arg(long, value_enum)]
    pub angle_vector: Option<Composition>,
    /// Measure the angle from the supernet's weights after K epochs (0 = at initialisation; default 1;
    /// scored at epoch K or before, the angle is measured from initialisation).
    #[arg(long, value_name = "K")]
    pub w0_epoch: Option<usize>,
    /// Children sampled per operator candidate when scoring (S).
    #[arg(long)]
    pub samples_per_op: Option<usize>,
    /// Score every child of the space instead of sampling (spaces up to 100,000 children).
    #[arg(long, overrides_with = "no_exhaustive")]
    pub exhaustive: bool,
    /// Sample children per candidate again (undoes a stored --exhaustive).
    #[arg(long, overrides_with = "exhaustive")]
    pub no_exhaustive: bool,
    /// With --exhaustive: children whose supernet accuracy is measured (drawn uniformly; the
    /// angles and the magnitude cover every child).
    #[arg(long, value_name = "N")]
    pub accuracy_children: Option<usize>,
    /// Score once with every metric without dropping anything (for analysis: `pwsnas fidelity`).
    #[arg(long, overrides_with = "no_score_only")]
    pub score_only: bool,
    /// Shrink again (undoes a stored --score-only).
    #[arg(long, overrides_with = "score_only")]
    pub no_score_only: bool,
    /// Candidates dropped per shrinking round, over all choice points (the space's default when absent).
    #[arg(long)]
    pub drop_per_round: Option<usize>,
    /// Drop the lowest candidate of every choice point each round instead (FairNAS's rule).
    #[arg(long, overrides_with = "no_per_choice_point")]
    pub per_choice_point: bool,
    /// Drop over all choice points again (undoes a stored --per-choice-point).
    #[arg(long, overrides_with = "per_choice_point")]
    pub no_per_choice_point: bool,
    /// Supernet epochs between shrinking rounds.
    #[arg(long)]
    pub epochs_between_rounds: Option<usize>,
    /// Stop shrinking once the space has at most this many children (the space's default when absent).
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
    /// Search method on the (shrunk) space; fairnas also sets --sampler fair.
    #[arg(long, value_enum)]
    pub method: Option<Method>,
    /// darts, pdarts, proxyless: epochs of the method (per stage for pdarts).
    #[arg(long)]
    pub method_epochs: Option<usize>,
    /// darts, pdarts: 1 = first-order α gradient, 2 = DARTS's unrolled (second-order) step.
    #[arg(long)]
    pub darts_order: Option<u8>,
    /// proxyless: target latency (ms, batch 1) of the latency loss.
    #[arg(long)]
    pub target_latency_ms: Option<f64>,
    /// proxyless: form of the latency loss.
    #[arg(long, value_enum)]
    pub latency_loss: Option<LatencyLoss>,
    /// proxyless: λ of add-linear, β of mul-log.
    #[arg(long)]
    pub latency_weight: Option<f64>,
    /// How spos and fairnas explore the (shrunk) space: evolution or random.
    #[arg(long, value_enum)]
    pub strategy: Option<Strategy>,
    /// Evolution: children per generation (the random search evaluates as many in all).
    #[arg(long)]
    pub population: Option<usize>,
    /// Evolution: generations.
    #[arg(long)]
    pub generations: Option<usize>,
    /// Evolution: the best children kept as parents.
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Evolution: probability that a mutation changes a choice point.
    #[arg(long)]
    pub mutation_prob: Option<f64>,
    /// Constraint: most multiply-adds of one image (checked before training, obeyed by shrinking and search).
    #[arg(long)]
    pub max_flops: Option<f64>,
    /// Constraint: most parameters of the child.
    #[arg(long)]
    pub max_params: Option<f64>,
    /// Cap on the predicted ONNX Runtime latency at batch 1 (ms), from the latency table.
    #[arg(long)]
    pub max_latency_ms: Option<f64>,
    /// ONNX Runtime threads the search predicts latencies for (default: as `pwsnas export`).
    #[arg(long)]
    pub latency_threads: Option<usize>,
    /// ONNX Runtime execution provider the search predicts latencies for (default: cpu).
    #[arg(long, value_enum)]
    pub latency_ep: Option<Ep>,
    /// Validation images per child evaluation in the search.
    #[arg(long)]
    pub val_images: Option<usize>,
    /// Epochs of retraining the found child from scratch (0: the run ends with its search).
    #[arg(long)]
    pub retrain_epochs: Option<usize>,
    /// Retraining SGD learning rate (the start of its cosine schedule).
    #[arg(long)]
    pub retrain_lr: Option<f64>,
    /// How the retrained child's conv weights are drawn: fan-out (Kaiming normal, NAS-Bench-201's
    /// and DARTS's; the default) or pytorch.
    #[arg(long, value_enum)]
    pub retrain_init: Option<Init>,
    /// A benchmark table of the nb201 space, FILE or FILE#COLUMN (e.g.
    /// nb201-cifar10-12e.csv#cifar10-test@12): the search's children and the found cell are
    /// looked up in it (arch.json, search.json, reports).
    #[arg(long, value_name = "FILE[#COLUMN]")]
    pub benchmark: Option<String>,
    /// Retraining: side of the cutout square in pixels (0 = off; DARTS uses 16 on CIFAR-10).
    #[arg(long)]
    pub cutout: Option<usize>,
    /// Retraining: DARTS's drop-path probability, growing linearly from 0 over the epochs (0 = off; darts
    /// space only; DARTS uses 0.2).
    #[arg(long)]
    pub drop_path: Option<f64>,
    /// Retraining: weight of DARTS's auxiliary head's loss (0 = no head; darts space only; DARTS
    /// uses 0.4). The head is not exported.
    #[arg(long)]
    pub auxiliary_weight: Option<f64>,
}

impl SettingsArgs {
    /// Lays the config file, then the flags, over `base`; only what they name changes.
    pub fn resolve(&self, base: Settings) -> Result<Settings> {
        let mut s = match &self.config {
            Some(path) => base.with_toml_file(path)?,
            None => base,
        };
        macro_rules! set {
            ($field:expr, $value:expr) => {
                if let Some(v) = $value.clone() {
                    $field = v;
                }
            };
        }
        if let Some(space) = &self.space {
            s.set_space(space);
        }
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
        set!(s.supernet.init, self.init);
        if self.grad_clip.is_some() {
            s.supernet.grad_clip = self.grad_clip;
            s.retrain.grad_clip = self.grad_clip;
        }
        if self.steps_per_epoch.is_some() {
            s.supernet.steps_per_epoch = self.steps_per_epoch;
            s.retrain.steps_per_epoch = self.steps_per_epoch;
        }
        set!(s.shrink.metric, self.metric);
        set!(s.shrink.angle_vector, self.angle_vector);
        set!(s.shrink.w0_epoch, self.w0_epoch);
        set!(s.shrink.samples_per_op, self.samples_per_op);
        // A stored boolean is switched on by its flag and off by its --no- flag (the later wins).
        s.shrink.exhaustive = (s.shrink.exhaustive || self.exhaustive) && !self.no_exhaustive;
        set!(s.shrink.accuracy_children, self.accuracy_children);
        s.shrink.score_only = (s.shrink.score_only || self.score_only) && !self.no_score_only;
        if self.drop_per_round.is_some() {
            s.shrink.drop_per_round = self.drop_per_round;
        }
        s.shrink.per_choice_point =
            (s.shrink.per_choice_point || self.per_choice_point) && !self.no_per_choice_point;
        set!(s.shrink.epochs_between_rounds, self.epochs_between_rounds);
        if self.target_size.is_some() {
            s.shrink.target_size = self.target_size;
        }
        set!(s.shrink.copies, self.copies);
        set!(s.shrink.param_budget, self.param_budget);
        set!(s.shrink.epochs_after_shrink, self.epochs_after_shrink);
        set!(s.search.method, self.method);
        if self.sampler.is_none() {
            s.sampler_follows_method();
        }
        set!(s.gradient.epochs, self.method_epochs);
        set!(s.gradient.darts_order, self.darts_order);
        if self.target_latency_ms.is_some() {
            s.gradient.target_latency_ms = self.target_latency_ms;
        }
        set!(s.gradient.latency_loss, self.latency_loss);
        set!(s.gradient.latency_weight, self.latency_weight);
        if self.steps_per_epoch.is_some() {
            s.gradient.steps_per_epoch = self.steps_per_epoch;
        }
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
            s.search.latency_ep = self.latency_ep;
        }
        set!(s.search.val_images, self.val_images);
        set!(s.retrain.epochs, self.retrain_epochs);
        set!(s.retrain.lr, self.retrain_lr);
        set!(s.retrain.init, self.retrain_init);
        set!(s.retrain.cutout, self.cutout);
        set!(s.retrain.drop_path, self.drop_path);
        set!(s.retrain.auxiliary_weight, self.auxiliary_weight);
        if self.benchmark.is_some() {
            s.benchmark = self.benchmark.clone();
        }
        s.validate()?;
        Ok(s)
    }
}

/// A space name the registry knows (for `--space`); the error lists the known ones.
pub fn space_name(name: &str) -> Result<String, String> {
    SpaceKind::by_name(name).map(|_| name.to_string()).map_err(|e| e.to_string())
}

/// A `--data` spec that parses (its files are read later).
fn data_spec(spec: &str) -> Result<String, String> {
    spec.parse::<DataSpec>().map(|_| spec.to_string()).map_err(|e| e.to_string())
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
    /// Parity tolerance on max |ORT - libtorch| / max |logit| over the validation batch
    /// (default: 1e-4 in fp32, 1e-2 in fp16).
    #[arg(long)]
    pub tolerance: Option<f64>,
    /// Keep the plain lowering: BatchNorm folded, no graph rewrites (for comparison).
    #[arg(long)]
    pub no_optimize: bool,
    /// Precision of the parameters and the computation (input and output stay float32); fp16 is for
    /// GPU deployment and is refused when it loses more than --max-accuracy-loss.
    #[arg(long, value_enum, default_value = "fp32")]
    pub precision: PrecisionArg,
    /// Largest test-accuracy loss (percentage points, against libtorch in fp32) an fp16 export may have.
    #[arg(long, default_value_t = export::DEFAULT_MAX_ACCURACY_LOSS_PP)]
    pub max_accuracy_loss: f64,
    /// Timed runs per latency measurement (for ONNX Runtime: in all its sessions together).
    #[arg(long, default_value_t = 100)]
    pub latency_runs: usize,
    /// Fresh ONNX Runtime sessions each ONNX Runtime latency is measured in; the latency is the
    /// mean of the sessions' medians without the fastest and slowest fifth, and their spread says
    /// how far it can be trusted.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..))]
    pub latency_sessions: u16,
    /// Each ONNX Runtime session goes on timing runs for at least this many milliseconds, so that
    /// the sessions span the machine's slower and faster spells (0: --latency-runs alone decide).
    #[arg(long, default_value_t = 500.0)]
    pub latency_session_ms: f64,
    /// Untimed warm-up runs before each latency measurement (in each ONNX Runtime session).
    #[arg(long, default_value_t = 10)]
    pub warmup: usize,
    /// Validation images in the parity batch.
    #[arg(long, default_value_t = 64)]
    pub parity_images: usize,
    /// libtorch device for parity, accuracy and latency (default: cpu with --ep cpu, cuda with --ep cuda).
    #[arg(long)]
    pub device: Option<String>,
}

/// `--precision`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PrecisionArg {
    Fp32,
    Fp16,
}

impl From<PrecisionArg> for pwsnas_onnx::Precision {
    fn from(p: PrecisionArg) -> Self {
        match p {
            PrecisionArg::Fp32 => pwsnas_onnx::Precision::Fp32,
            PrecisionArg::Fp16 => pwsnas_onnx::Precision::Fp16,
        }
    }
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
    #[arg(long, value_parser = space_name)]
    pub space: Option<String>,
    /// The data whose image shape and classes the space takes (default: as `pwsnas search`);
    /// not read when --input-size, --input-channels or --classes is given.
    #[arg(long, value_parser = data_spec)]
    pub data: Option<String>,
    /// Resize folder images to N×N pixels (folder data only).
    #[arg(long, value_name = "N")]
    pub image_size: Option<usize>,
    #[command(flatten)]
    pub shape: SpaceShapeArgs,
    #[command(flatten)]
    pub ort: OrtArgs,
    /// Measure again even when a table for this space and machine exists.
    #[arg(long)]
    pub rebuild: bool,
    /// Timed runs per measured model (after the warm-up runs), in all its sessions together.
    #[arg(long, default_value_t = 200)]
    pub runs: usize,
    /// Fresh ONNX Runtime sessions per measured model (the sessions of all models take turns); a
    /// model's latency is the mean of its sessions' medians without the fastest and slowest fifth.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..))]
    pub sessions: u16,
    /// Untimed warm-up runs before each measurement (in each session).
    #[arg(long, default_value_t = 20)]
    pub warmup: usize,
    /// Also print the predicted latency of this architecture, piece by piece. (The range of
    /// predictions over the space's children — with --run, its shrunk space — is always printed.)
    #[arg(long)]
    pub arch: Option<String>,
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        settings: SettingsArgs,
    }

    fn flags(args: &[&str]) -> Result<SettingsArgs, String> {
        Flags::try_parse_from(std::iter::once("pwsnas").chain(args.iter().copied()))
            .map(|f| f.settings)
            .map_err(|e| e.to_string())
    }

    fn stored() -> Settings {
        let mut s = Settings { data: "synthetic:classes=3".into(), seed: 7, ..Settings::default() };
        s.space_params.insert("nodes".into(), 3.into());
        s.supernet.epochs = 1;
        s.shrink.samples_per_op = 8;
        s.shrink.bn_batches = 2;
        s
    }

    #[test]
    fn flags_beat_the_toml_which_beats_the_stored_settings() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("s.toml");
        std::fs::write(&config, "[shrink]\nsamples_per_op = 20\nbn_batches = 3\n").unwrap();
        let args = flags(&["--config", config.to_str().unwrap(), "--samples-per-op", "12"]).unwrap();
        let s = args.resolve(stored()).unwrap();
        assert_eq!(s.shrink.samples_per_op, 12, "the flag wins over the file");
        assert_eq!(s.shrink.bn_batches, 3, "the file wins over the stored value");
        let mut untouched = s.clone();
        untouched.shrink = stored().shrink;
        assert_eq!(untouched, stored(), "nothing else changes");
        // No file, no flags: exactly the stored settings.
        assert_eq!(flags(&[]).unwrap().resolve(stored()).unwrap(), stored());
    }

    #[test]
    fn method_fairnas_is_the_fair_sampler_and_refuses_the_uniform_one() {
        let s = flags(&["--method", "fairnas"]).unwrap().resolve(stored()).unwrap();
        assert_eq!((s.search.method, s.sampler), (Method::Fairnas, Sampler::Fair));
        let e =
            flags(&["--method", "fairnas", "--sampler", "uniform"]).unwrap().resolve(stored()).unwrap_err();
        assert!(
            e.to_string().contains("search.method = fairnas trains its supernet with sampler = fair"),
            "{e}"
        );
        let s = flags(&["--method", "proxyless", "--target-latency-ms", "2", "--latency-loss", "mul-log"])
            .unwrap()
            .resolve(stored())
            .unwrap();
        assert_eq!(s.gradient.target_latency_ms, Some(2.0));
        assert_eq!(s.gradient.latency_loss, LatencyLoss::MulLog);
        assert_eq!(s.sampler, Sampler::Uniform, "only fairnas changes the sampler");
        let e = flags(&["--target-latency-ms=-1"]).unwrap().resolve(stored()).unwrap_err();
        assert!(
            e.to_string().contains("setting gradient.target_latency_ms must be a positive number"),
            "{e}"
        );
    }

    #[test]
    fn a_stored_boolean_is_switched_off_by_its_no_flag_and_the_later_flag_wins() {
        let mut base = stored();
        (base.shrink.score_only, base.shrink.exhaustive) = (true, true);
        let s = flags(&["--no-score-only"]).unwrap().resolve(base.clone()).unwrap();
        assert_eq!((s.shrink.score_only, s.shrink.exhaustive), (false, true), "only what the flag names");
        let s = flags(&["--no-exhaustive", "--exhaustive"]).unwrap().resolve(base.clone()).unwrap();
        assert!(s.shrink.exhaustive);
        let s = flags(&["--exhaustive", "--no-exhaustive"]).unwrap().resolve(base.clone()).unwrap();
        assert!(!s.shrink.exhaustive);
        let s = flags(&["--per-choice-point"]).unwrap().resolve(stored()).unwrap();
        assert!(s.shrink.per_choice_point);
        let s = flags(&[]).unwrap().resolve(base).unwrap();
        assert!(s.shrink.score_only && s.shrink.exhaustive, "no flag keeps the stored value");
    }

    #[test]
    fn a_space_flag_for_another_space_drops_its_parameters() {
        let s = flags(&["--space", "mobile", "--width", "0.5"]).unwrap().resolve(stored()).unwrap();
        assert_eq!(s.space, "mobile");
        assert_eq!(s.space_params.keys().collect::<Vec<_>>(), ["width"]);
    }

    #[test]
    fn closed_sets_are_refused_with_the_valid_values_of_their_type() {
        for (args, expected) in [
            (&["--angle-vector", "all"][..], "[possible values: ops, full, pwsnas]"),
            (&["--latency-ep", "gpu"], "[possible values: cpu, cuda]"),
            (&["--sampler", "fairnas"], "[possible values: uniform, fair]"),
            (&["--shrink", "angles"], "[possible values: angle, accuracy, magnitude, random, none]"),
            (&["--strategy", "grid"], "[possible values: evolution, random]"),
            (&["--method", "enas"], "[possible values: spos, fairnas, darts, pdarts, proxyless]"),
            (&["--latency-loss", "mul"], "[possible values: add-linear, mul-log]"),
            (&["--space", "darts2"], "unknown space 'darts2': expected one of nb201, mobile, darts"),
            (&["--data", "imagenet:/x"], "unknown dataset kind \"imagenet\""),
        ] {
            let e = flags(args).err().unwrap_or_else(|| panic!("{args:?} parsed"));
            assert!(e.contains(expected), "{args:?}: {e}");
        }
        let s =
            flags(&["--angle-vector", "full", "--latency-ep", "cuda"]).unwrap().resolve(stored()).unwrap();
        assert_eq!((s.shrink.angle_vector, s.search.latency_ep), (Composition::Full, Some(Ep::Cuda)));
    }
}
