//! The command line: clap definitions and the dispatch to each command ([`commands`]).
//!
//! Settings are layered, each layer changing only what it names: the settings stored in an existing
//! run's `run.json` (the defaults for a new run), then `--config FILE.toml`, then flags ([`args`]).
pub(crate) mod args;
mod commands;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

pub use args::{ExportArgs, LatencyTableArgs, OrtArgs, RunArgs, SettingsArgs, SpaceShapeArgs};

use crate::progress::Progress;

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
        /// The run directory (created, or continued when it exists).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        settings: SettingsArgs,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Only the supernet stage: train the supernet of a new or existing run.
    Supernet {
        /// The run directory (created, or continued when it exists).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        settings: SettingsArgs,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Shrink the space of a run whose supernet is trained (or score its candidates with --score-only).
    Shrink {
        /// The run directory, its supernet trained (`pwsnas supernet`).
        #[arg(long = "run")]
        dir: PathBuf,
        #[command(flatten)]
        settings: SettingsArgs,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Accuracy of a child with the supernet's shared weights (BN recalibration + validation top-1).
    Eval {
        /// The run directory whose supernet gives the shared weights.
        #[arg(long = "run")]
        dir: PathBuf,
        /// Arch string, e.g. '|nor_conv_3x3~0|+|none~0|skip_connect~1|+|...|'; darts: genotype text
        /// or a published genotype's name (DARTS_V1, DARTS_V2, PDARTS).
        #[arg(long)]
        arch: String,
        /// Training batches that recalibrate BatchNorm before the evaluation.
        #[arg(long, default_value_t = 4)]
        bn_batches: usize,
        /// Validation images evaluated.
        #[arg(long, default_value_t = 1000)]
        val_images: usize,
        /// Where libtorch runs: auto, cpu or cuda[:N].
        #[arg(long, default_value = "auto")]
        device: String,
    },
    /// Retrain a run's chosen architecture (arch.json), or the one in --arch FILE, from scratch.
    Train {
        /// The run directory.
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
    Export(ExportArgs),
    /// Measure (or show the cached) latency table of a space: every op of every choice point and the
    /// fixed parts timed alone in ONNX Runtime, with the machine and settings it is valid for.
    LatencyTable(LatencyTableArgs),
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
    /// Many runs of one plan (a grid of settings × seeds): here in parallel, as a Slurm job array or a
    /// Kubernetes Indexed Job; their status; their report (mean ± std over seeds, gains of shrinking).
    Sweep(crate::sweep::cli::SweepArgs),
    /// The ranking study: train every child of a small space stand-alone (`truth`), then rank every
    /// metric of `--score-only --exhaustive` runs against it (`report`).
    #[command(subcommand)]
    Fidelity(crate::fidelity::FidelityCommand),
    /// NAS-Bench-201 tables: import the official files as a CSV table, look cells up in one.
    #[command(subcommand)]
    Benchmark(BenchmarkCommand),
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

#[derive(Subcommand)]
pub enum ArchCommand {
    /// Parameters, FLOPs and the layer-by-layer summary of an architecture.
    Info {
        /// The space: nb201, mobile or darts.
        #[arg(long, default_value = "nb201", value_parser = args::space_name)]
        space: String,
        /// The space's arch string; darts: genotype text or a published genotype's name.
        #[arg(long)]
        arch: String,
        /// Also draw the architecture into this SVG file: an nb201 cell as its DAG, a darts genotype
        /// as its normal and reduction cells, a mobile child as its layer chain.
        #[arg(long, value_name = "FILE")]
        svg: Option<PathBuf>,
        #[command(flatten)]
        shape: SpaceShapeArgs,
    },
}

#[derive(Subcommand)]
pub enum BenchmarkCommand {
    /// Write a benchmark table (CSV: index, arch, one column per data set, split and schedule, e.g.
    /// cifar10-test@12) from NAS-Bench-201's official files, with the official API packages.
    Import {
        /// NAS-Bench-201-v1_0-e61699.pth, NAS-Bench-201-v1_1-096897.pth or a NATS-Bench topology
        /// file or folder (NATS-tss-v1_0-3ffb9-simple).
        input: PathBuf,
        /// The table to write.
        #[arg(long)]
        out: PathBuf,
        /// The file's format: auto (from its content), nb201-v1_0, nb201-v1_1 or nats-tss.
        #[arg(long, default_value = "auto")]
        format: String,
        /// PYTHONPATH for the importer (default: the set-up's torch and API packages).
        #[arg(long)]
        python_path: Option<String>,
        /// Unpickle the file without PyTorch's restrictions: much faster and leaner on the
        /// gigabyte files, for a file from the benchmark's official source only.
        #[arg(long)]
        trust_pickle: bool,
    },
    /// Look cells up in a benchmark table: value, rank among its cells; without cells, the table's
    /// columns, its best and its mean cell.
    Lookup {
        /// The table and the column that counts: FILE or FILE#COLUMN.
        #[arg(long)]
        table: String,
        /// NB201 arch strings (|op~0|+|op~0|op~1|+|...|).
        archs: Vec<String>,
    },
}

#[derive(Subcommand)]
pub enum DataCommand {
    /// Counts per split and class, image shape, channels, mean/std.
    Inspect {
        /// The data: fashion-mnist, mnist:PATH, cifar10:PATH, cifar100:PATH, folder:PATH, synthetic[:k=v,...].
        #[arg(long)]
        data: String,
        /// Resize folder images to N×N pixels (folder data only).
        #[arg(long, value_name = "N")]
        image_size: Option<usize>,
    },
}

pub fn run(cli: Cli) -> Result<()> {
    let progress = Progress::new(cli.quiet, cli.json);
    match cli.command {
        Command::Search { out, settings, run } => commands::search(&out, &settings, &run, &progress),
        Command::Supernet { out, settings, run } => commands::supernet(&out, &settings, &run, &progress),
        Command::Shrink { dir, settings, run } => commands::shrink(&dir, &settings, &run, &progress),
        Command::Eval { dir, arch, bn_batches, val_images, device } => {
            commands::eval(&dir, &arch, bn_batches, val_images, &device, &progress)
        }
        Command::Train { dir, arch, settings, run } => {
            commands::train(&dir, arch.as_deref(), &settings, &run, &progress)
        }
        Command::Arch(ArchCommand::Info { space, arch, svg, shape }) => {
            commands::arch_info(&space, &arch, svg.as_deref(), &shape, &progress)
        }
        Command::Data(DataCommand::Inspect { data, image_size }) => {
            commands::data_inspect(&data, image_size, cli.json)
        }
        Command::Bench(cmd) => crate::bench::run(cmd, &progress),
        Command::Doctor => commands::doctor(cli.json),
        Command::Export(args) => commands::export(&args, &progress),
        Command::Infer { model, images, top, ort } => commands::infer(&model, &images, top, &ort, cli.json),
        Command::Compare { runs, out, allow_mixed } => {
            commands::compare(&runs, &out, allow_mixed, cli.json, &progress)
        }
        Command::LatencyTable(args) => commands::latency_table(&args, &progress),
        Command::Sweep(args) => crate::sweep::cli::run(args, &progress),
        Command::Fidelity(cmd) => crate::fidelity::run(cmd, &progress),
        Command::Benchmark(BenchmarkCommand::Import { input, out, format, python_path, trust_pickle }) => {
            let opts =
                crate::benchmark::import::ImportOptions { input, out, format, python_path, trust_pickle };
            commands::benchmark_import(&opts, &progress)
        }
        Command::Benchmark(BenchmarkCommand::Lookup { table, archs }) => {
            commands::benchmark_lookup(&table, &archs, cli.json)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// `pwsnas … --help` describes every flag and argument of every subcommand: each has a
    /// one-line help text (hidden ones aside).
    #[test]
    fn every_flag_of_every_subcommand_has_a_help_text() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if arg.is_hide_set() || id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!(
                        "{path} {}",
                        arg.get_long().map_or(id.to_string(), |l| format!("--{l}"))
                    ));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "pwsnas", &mut missing);
        assert!(missing.is_empty(), "{} flags without help:\n{}", missing.len(), missing.join("\n"));
    }
}
