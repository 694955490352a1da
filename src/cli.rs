//! The command line: clap definitions and the dispatch to each command.
//!
//! Settings are layered: defaults, then `--config FILE.toml`, then flags; run commands on an existing
//! run (`shrink`, `train`, ...) start from the settings stored in its `run.json` instead.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use pwsnas_models::{Composition, Mode, Space, SpaceKind, Supernet};
use serde_json::json;

use crate::data::RunData;
use crate::eval::Evaluator;
use crate::export::{self, latency::Plan, ExportOptions};
use crate::fsutil::read_json;
use crate::infer::Classifier;
use crate::ort_runtime::{Ep, SessionConfig};
use crate::progress::Progress;
use crate::run::RunDir;
use crate::search::ArchFile;
use crate::settings::{Metric, Sampler, Settings, Strategy};
use crate::{device, doctor, pipeline, retrain, shrink, supernet};

#[derive(Parser)]
#[command(
    name = "pwsnas",
    version,
    about = "Angle-based search-space shrinking NAS on libtorch, to a validated ONNX model"
)]
pub struct Cli {
    /// Print nothing but errors.
    #[arg(long, global = true)]
    pub quiet: bool,
    /// Print one JSON object per event on stdout (and no progress bars).
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Supernet training → shrinking → search → retraining, into a run directory (resumable).
    Search {
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        settings: SettingsArgs,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Only the supernet stage: train the supernet of a new or existing run.
    Supernet {
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        settings: SettingsArgs,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Shrink the space of a run whose supernet is trained (or score its candidates with --score-only).
    Shrink {
        #[arg(long = "run")]
        dir: PathBuf,
        #[command(flatten)]
        settings: SettingsArgs,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Accuracy of a child with the supernet's shared weights (BN recalibration + validation top-1).
    Eval {
        #[arg(long = "run")]
        dir: PathBuf,
        /// Arch string, e.g. '|nor_conv_3x3~0|+|none~0|skip_connect~1|+|...|'.
        #[arg(long)]
        arch: String,
        #[arg(long, default_value_t = 4)]
        bn_batches: usize,
        #[arg(long, default_value_t = 1000)]
        val_images: usize,
        #[arg(long, default_value = "auto")]
        device: String,
    },
    /// Retrain a run's chosen architecture (arch.json), or the one in --arch FILE, from scratch.
    Train {
        #[arg(long = "run")]
        dir: PathBuf,
        /// An arch.json to retrain instead of the run's (it replaces the run's arch.json).
        #[arg(long)]
        arch: Option<PathBuf>,
        #[command(flatten)]
        settings: SettingsArgs,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Benchmarks of the hot paths (training step, candidate scoring), printed as numbers.
    #[command(subcommand)]
    Bench(crate::bench::BenchCommand),
    /// Facts about spaces and architectures.
    #[command(subcommand)]
    Arch(ArchCommand),
    /// Facts about datasets.
    #[command(subcommand)]
    Data(DataCommand),
    /// What this binary finds: libtorch, CUDA devices, ONNX Runtime, the cache, the datasets.
    Doctor,
    /// Export a run's retrained architecture to model.onnx, validate it with ONNX Runtime against
    /// libtorch (parity, test accuracy, latency) and write report.json, report.md and report.html.
    Export {
        /// The run directory (written by `pwsnas search`).
        dir: PathBuf,
        #[command(flatten)]
        ort: OrtArgs,
        /// Parity tolerance on max |ORT - libtorch| / max |logit| over the validation batch.
        #[arg(long, default_value_t = export::DEFAULT_TOLERANCE)]
        tolerance: f64,
        /// Timed runs per latency measurement (after the warm-up runs).
        #[arg(long, default_value_t = 100)]
        latency_runs: usize,
        /// Untimed warm-up runs before each latency measurement.
        #[arg(long, default_value_t = 10)]
        warmup: usize,
        /// Validation images in the parity batch.
        #[arg(long, default_value_t = 64)]
        parity_images: usize,
        /// libtorch device for parity, accuracy and latency (default: cpu with --ep cpu, cuda with --ep cuda).
        #[arg(long)]
        device: Option<String>,
    },
    /// Measure (or show the cached) latency table of a space: every op of every choice point and the
    /// fixed parts timed alone in ONNX Runtime, with the machine and settings it is valid for.
    LatencyTable {
        /// Take the space from this run directory (instead of --space/--data/--config).
        #[arg(long = "run", conflicts_with_all = ["config", "space", "data", "image_size", "space_file"])]
        dir: Option<PathBuf>,
        /// Take the space from this space.json (e.g. a run's shrunk space).
        #[arg(long, conflicts_with_all = ["config", "space", "data", "image_size"])]
        space_file: Option<PathBuf>,
        /// TOML settings as for `pwsnas search` (space, space_params, data, image_size).
        #[arg(long)]
        config: Option<PathBuf>,
        /// nb201 or mobile (default: as `pwsnas search`).
        #[arg(long)]
        space: Option<String>,
        /// The data whose image shape and classes the space takes (default: as `pwsnas search`);
        /// not read when --input-size, --input-channels or --classes is given.
        #[arg(long)]
        data: Option<String>,
        #[arg(long)]
        image_size: Option<usize>,
        #[command(flatten)]
        shape: SpaceShapeArgs,
        #[command(flatten)]
        ort: OrtArgs,
        /// Measure again even when a table for this space and machine exists.
        #[arg(long)]
        rebuild: bool,
        /// Timed runs per measured model (after the warm-up runs).
        #[arg(long, default_value_t = 200)]
        runs: usize,
        /// Untimed warm-up runs before each measurement.
        #[arg(long, default_value_t = 20)]
        warmup: usize,
        /// Also print the predicted latency of this architecture, piece by piece. (The range of
        /// predictions over the space's children — with --run, its shrunk space — is always printed.)
        #[arg(long)]
        arch: Option<String>,
    },
    /// Compare exported runs: accuracy, ONNX Runtime latency and throughput, size, predicted latency
    /// and its error, the Pareto-optimal runs marked; writes compare.md/.csv/.json/.html.
    Compare {
        /// Run directories with a report.json (written by `pwsnas export`).
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// Folder for compare.md, compare.csv, compare.json and compare.html.
        #[arg(long, default_value = "compare")]
        out: PathBuf,
        /// Compare even when the latencies were measured on different machines or settings.
        #[arg(long)]
        allow_mixed: bool,
    },
    /// Classify images with a model written by `pwsnas export` (ONNX Runtime; top classes with names).
    Infer {
        /// The exported model (model.onnx).
        model: PathBuf,
        /// PNG or JPEG images; each is resized and converted to the model's input.
        #[arg(required = true)]
        images: Vec<PathBuf>,
        /// How many classes to show per image.
        #[arg(long, default_value_t = 5)]
        top: usize,
        #[command(flatten)]
        ort: OrtArgs,
    },
}

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

#[derive(Subcommand)]
pub enum ArchCommand {
    /// Parameters, FLOPs and the layer-by-layer summary of an architecture.
    Info {
        #[arg(long, default_value = "nb201")]
        space: String,
        #[arg(long)]
        arch: String,
        #[command(flatten)]
        shape: SpaceShapeArgs,
    },
}

#[derive(Subcommand)]
pub enum DataCommand {
    /// Counts per split and class, image shape, channels, mean/std.
    Inspect {
        #[arg(long)]
        data: String,
        #[arg(long)]
        image_size: Option<usize>,
    },
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
    fn apply(&self, params: &mut serde_json::Map<String, serde_json::Value>) {
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
    /// Weight copies per surviving op after each round (strategy 2; 1 = off).
    #[arg(long)]
    pub copies: Option<usize>,
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
fn settings_for(out: &Path, args: &SettingsArgs) -> Result<Settings> {
    let base =
        if out.join("run.json").exists() { RunDir::open(out)?.info.settings } else { Settings::default() };
    args.resolve(base)
}

pub fn run(cli: Cli) -> Result<()> {
    let progress = Progress::new(cli.quiet, cli.json);
    match cli.command {
        Command::Search { out, settings, run } => {
            let settings = settings_for(&out, &settings)?;
            let device = device::parse(&run.device)?;
            let result = pipeline::search(&out, &settings, device, run.force, &progress)?;
            progress.info(format!(
                "\ndone: {} — test accuracy {:.4} after {} retraining epochs (seed {}).\nnext: pwsnas export {}",
                result.arch,
                result.test_accuracy,
                result.epochs,
                settings.seed,
                out.display()
            ));
            Ok(())
        }
        Command::Supernet { out, settings, run } => {
            let settings = settings_for(&out, &settings)?;
            let device = device::parse(&run.device)?;
            let mut r = RunDir::open_or_create(&out, &settings, &device::name(device), run.force)?;
            progress.attach_events(&r.path("events.jsonl"))?;
            let data = RunData::load(&settings)?;
            supernet::run_stage(&mut r, &data, device, &progress)?;
            Ok(())
        }
        Command::Shrink { dir, settings, run } => {
            let settings = args_over_run(&dir, &settings)?;
            let device = device::parse(&run.device)?;
            let mut r = RunDir::open_or_create(&dir, &settings, &device::name(device), run.force)?;
            progress.attach_events(&r.path("events.jsonl"))?;
            let data = RunData::load(&settings)?;
            let mut sn = supernet::run_stage(&mut r, &data, device, &progress)?;
            let space = shrink::run_stage(&mut r, &mut sn, &data, device, &progress)?;
            progress.info(format!(
                "space: {} children (log10 {:.2}) in {}",
                space.size(),
                space.log10_size(),
                r.path("space.json").display()
            ));
            Ok(())
        }
        Command::Eval { dir, arch, bn_batches, val_images, device } => {
            eval(&dir, &arch, bn_batches, val_images, &device, &progress)
        }
        Command::Train { dir, arch, settings, run } => {
            let settings = args_over_run(&dir, &settings)?;
            let device = device::parse(&run.device)?;
            let mut r = RunDir::open_or_create(&dir, &settings, &device::name(device), run.force)?;
            progress.attach_events(&r.path("events.jsonl"))?;
            let data = RunData::load(&settings)?;
            let arch_file: ArchFile = match &arch {
                Some(path) => {
                    let a: ArchFile = read_json(path)?;
                    let kind = a
                        .kind()
                        .with_context(|| format!("{} does not name a valid space", path.display()))?;
                    kind.parse_arch(&a.arch)
                        .with_context(|| format!("{} holds an invalid arch", path.display()))?;
                    let [c, h, w] = data.shape();
                    if kind.input_shape() != [c, h, w] || kind.classes() != data.classes.len() {
                        anyhow::bail!(
                            "{} is for {:?} inputs and {} classes, but the run's data has {:?} and {}",
                            path.display(),
                            kind.input_shape(),
                            kind.classes(),
                            [c, h, w],
                            data.classes.len()
                        );
                    }
                    let previous: Option<ArchFile> = read_json(&r.path("arch.json")).ok();
                    if previous.as_ref().is_some_and(|p| p.arch != a.arch)
                        && r.is_done(crate::run::Stage::Retrain)
                    {
                        if !run.force {
                            anyhow::bail!(
                                "{} already retrained {}; pass --force to retrain {} instead",
                                dir.display(),
                                previous.map(|p| p.arch).unwrap_or_default(),
                                a.arch
                            );
                        }
                        r.discard(crate::run::Stage::Retrain)?;
                        r.save()?;
                    }
                    crate::fsutil::write_json(&r.path("arch.json"), &a)?;
                    a
                }
                None => read_json(&r.path("arch.json"))
                    .context("the run has no arch.json: finish `pwsnas search` or pass --arch FILE")?,
            };
            let result = retrain::run_stage(&mut r, &arch_file, &data, device, &progress)?;
            progress.event("retrain_done", json!(result));
            Ok(())
        }
        Command::Arch(ArchCommand::Info { space, arch, shape }) => {
            arch_info(&space, &arch, &shape, &progress)
        }
        Command::Data(DataCommand::Inspect { data, image_size }) => {
            let spec: pwsnas_datasets::DataSpec = data.parse()?;
            let opts =
                pwsnas_datasets::LoadOptions { image_size: image_size.map(|s| (s, s)), ..Default::default() };
            let splits = pwsnas_datasets::load(&spec, &opts)?;
            let summary = pwsnas_datasets::summary(&splits);
            let first: Vec<u32> = splits.test.labels.iter().take(10).copied().collect();
            if cli.json {
                println!("{}", json!({ "summary": summary, "first_test_labels": first }));
            } else {
                println!("{summary}");
                println!(
                    "first test labels: {}",
                    first.iter().map(u32::to_string).collect::<Vec<_>>().join(" ")
                );
            }
            Ok(())
        }
        Command::Bench(cmd) => crate::bench::run(cmd, &progress),
        Command::Doctor => {
            let report = doctor::report();
            if cli.json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!("{}", serde_json::to_string_pretty(&report)?);
            }
            Ok(())
        }
        Command::Export { dir, ort, tolerance, latency_runs, warmup, parity_images, device } => {
            let opts = ExportOptions {
                ep: ort.ep,
                threads: ort.threads,
                ort_lib: ort.ort_lib,
                tolerance,
                plan: Plan { warmup, runs: latency_runs },
                device,
                parity_images,
            };
            let report = export::run(&dir, &opts, &progress)?;
            if let Some(reason) = report.parity.reason.as_deref().filter(|_| !report.parity.passed) {
                anyhow::bail!(
                    "the exported model failed the parity check: {reason}; {} says more (model.onnx was kept for inspection)",
                    dir.join("report.md").display()
                );
            }
            progress.info(format!(
                "done: {} passed the parity check; ONNX Runtime test accuracy {:.2}% (libtorch {:.2}%), {:.2}× libtorch's speed at batch 1",
                dir.join("model.onnx").display(),
                report.accuracy.ort * 100.0,
                report.accuracy.libtorch * 100.0,
                report.latency.batch1_speedup
            ));
            Ok(())
        }
        Command::Infer { model, images, top, ort } => infer(&model, &images, top, &ort, cli.json),
        Command::Compare { runs, out, allow_mixed } => {
            let comparison = crate::compare::compare(&runs, allow_mixed)?;
            let paths = crate::compare::write_all(&out, &comparison)?;
            if cli.json {
                println!("{}", serde_json::to_string(&comparison)?);
            } else {
                print!("{}", crate::compare::render::markdown(&comparison));
            }
            progress.info(format!(
                "written: {}",
                paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
            ));
            Ok(())
        }
        Command::LatencyTable {
            dir,
            space_file,
            config,
            space,
            data,
            image_size,
            shape,
            ort,
            rebuild,
            runs,
            warmup,
            arch,
        } => {
            let space = match (&dir, &space_file) {
                (Some(dir), _) => run_space(dir)?,
                (None, Some(file)) => Space::from_json(read_json(file)?)
                    .with_context(|| format!("{} does not hold a valid space", file.display()))?,
                (None, None) => {
                    Space::full(flag_space_kind(config.as_deref(), space, data, image_size, &shape)?)
                }
            };
            let opts =
                crate::latency::measure::BuildOptions { plan: Plan { warmup, runs }, ..Default::default() };
            let cfg = SessionConfig {
                ep: ort.ep,
                threads: ort.threads.unwrap_or_else(crate::latency::default_threads),
            };
            crate::latency::show::latency_table(
                &space,
                cfg,
                ort.ort_lib.as_deref(),
                rebuild,
                opts,
                arch.as_deref(),
                &progress,
            )
        }
    }
}

/// The space of a run: its (shrunk) space.json, else the full space of its settings fitted to its data.
fn run_space(dir: &Path) -> Result<Space> {
    let run = RunDir::open(dir)?;
    let space_json = run.path("space.json");
    if space_json.exists() {
        return Space::from_json(read_json(&space_json)?)
            .with_context(|| format!("{} does not hold a valid space", space_json.display()));
    }
    let data = RunData::load(&run.info.settings)?;
    Ok(Space::full(supernet::space_kind(&run.info.settings, &data)?))
}

/// The space kind `pwsnas search` would use with these flags; the input shape and classes come from
/// the data unless a shape flag gives them.
fn flag_space_kind(
    config: Option<&Path>,
    space: Option<String>,
    data: Option<String>,
    image_size: Option<usize>,
    shape: &SpaceShapeArgs,
) -> Result<SpaceKind> {
    let args = SettingsArgs {
        config: config.map(Path::to_path_buf),
        space,
        data,
        image_size,
        shape: shape.clone(),
        ..SettingsArgs::default()
    };
    let settings = args.resolve(Settings::default())?;
    let params = serde_json::Value::Object(settings.space_params.clone());
    let kind = SpaceKind::from_params(&settings.space, params)
        .with_context(|| format!("space '{}' with space_params", settings.space))?;
    if shape.input_size.is_some() || shape.input_channels.is_some() || shape.classes.is_some() {
        return Ok(kind);
    }
    let data = RunData::load(&settings)?;
    supernet::space_kind(&settings, &data)
}

fn infer(model: &Path, images: &[PathBuf], top: usize, ort: &OrtArgs, json_out: bool) -> Result<()> {
    if top == 0 {
        anyhow::bail!("--top 0: expected at least 1");
    }
    let threads = ort.threads.unwrap_or_else(|| tch::get_num_threads().max(1) as usize);
    let mut classifier =
        Classifier::load(model, ort.ort_lib.as_deref(), SessionConfig { ep: ort.ep, threads })?;
    let results = classifier.classify(images, top)?;
    if json_out {
        println!("{}", json!({ "model": model, "arch": classifier.info.arch, "results": results }));
        return Ok(());
    }
    for r in &results {
        println!("{}", r.image);
        for p in &r.top {
            println!(
                "  {:>2}. {:<24} {:>7.2}%  (class {}, logit {:.3})",
                p.rank,
                p.class,
                p.probability * 100.0,
                p.index,
                p.logit
            );
        }
    }
    Ok(())
}

/// Settings of an existing run with flag overrides (a run command never starts from defaults).
fn args_over_run(dir: &Path, args: &SettingsArgs) -> Result<Settings> {
    let base = RunDir::open(dir)?.info.settings;
    args.resolve(base)
}

fn eval(
    dir: &Path,
    arch: &str,
    bn_batches: usize,
    val_images: usize,
    device: &str,
    progress: &Progress,
) -> Result<()> {
    let run = RunDir::open(dir)?;
    let device = device::parse(device)?;
    if !run.supernet_dir().join("last.safetensors").exists() {
        anyhow::bail!(
            "{} has no trained supernet: run `pwsnas supernet --out {}` first",
            dir.display(),
            dir.display()
        );
    }
    let data = RunData::load(&run.info.settings)?;
    let sn = supernet::SupernetRun::open(&run, &data, device)?;
    let child = sn.net.built_space().parse_arch(arch)?;
    let evaluator = Evaluator::new(
        &data,
        bn_batches,
        run.info.settings.supernet.batch_size,
        val_images,
        run.info.settings.seed,
        device,
    );
    let acc = evaluator.accuracy(&sn.net, &child);
    let in_space = sn.space.contains(&child);
    if progress.json() {
        println!(
            "{}",
            json!({ "arch": arch, "accuracy": acc, "val_images": evaluator.images(), "in_current_space": in_space })
        );
    } else {
        println!(
            "{arch}: accuracy {acc:.4} on {} validation images (supernet after epoch {})",
            evaluator.images(),
            sn.state.epoch
        );
        if !in_space {
            println!("note: this child is outside the run's current (shrunk) space");
        }
    }
    Ok(())
}

fn arch_info(space: &str, arch: &str, shape: &SpaceShapeArgs, progress: &Progress) -> Result<()> {
    let mut params = serde_json::Map::new();
    shape.apply(&mut params);
    let kind = SpaceKind::from_params(space, serde_json::Value::Object(params))?;
    let child = kind.parse_arch(arch)?;
    let cost = kind.cost(&child);
    let built = Supernet::standalone(&kind, &child, tch::Device::Cpu);
    debug_assert_eq!(built.param_count(), cost.params() as i64);
    let _ = (Mode::EVAL, Space::full(kind.clone()));
    if progress.json() {
        println!(
            "{}",
            json!({ "space": kind.name(), "params": kind.params_json(), "arch": kind.format_arch(&child),
                    "params_count": cost.params(), "flops": cost.flops(), "layers": cost.layers })
        );
        return Ok(());
    }
    println!("space: {} {}", kind.name(), kind.params_json());
    println!("arch:  {}", kind.format_arch(&child));
    println!("{:<32} {:<22} {:>16} {:>12} {:>14}", "layer", "kind", "output", "params", "FLOPs");
    for l in &cost.layers {
        println!(
            "{:<32} {:<22} {:>16} {:>12} {:>14}",
            l.name,
            l.kind,
            format!("{}×{}×{}", l.output[0], l.output[1], l.output[2]),
            l.params,
            l.flops
        );
    }
    println!(
        "params: {} ({:.3} M)   FLOPs: {} ({:.2} M multiply-adds)",
        cost.params(),
        cost.params() as f64 / 1e6,
        cost.flops(),
        cost.flops() as f64 / 1e6
    );
    Ok(())
}
