//! `pwsnas bench`: measured speed of the hot paths, printed as numbers (benchmarks, never tests).
//!
//! - `train-step`: images/s of a supernet training step (uniform or fair sampler), the code path of
//!   `pwsnas supernet`, on random data already on the device. `benches/pytorch_train_step.py` runs
//!   the same step in PyTorch eager on the same libtorch for comparison; with the uniform sampler
//!   both train the same fixed sequence of children (see `nth_child`).
//! - `darts-step`: one DARTS first-order search step (Liu et al., ICLR 2019), the code path of
//!   `pwsnas search --method darts`: an α step (Adam) on one batch through the mix weighted by
//!   softmax(α) of every op, then a weight step (SGD, clip 5) on another, on the supernet of the
//!   space. `benches/pytorch_darts_step.py` is the same step in PyTorch eager.
//! - `score`: seconds to score every operator candidate with the angle metric and `S` children each.
//! - `export`: pwsnas's ONNX against `torch.onnx.export` of the same network in ONNX Runtime
//!   ([`crate::export::bench`]).
//! - `latency`: the latency table's predictions against children timed whole
//!   ([`crate::latency::check`]).
//!
//! A binary subcommand rather than a criterion bench because it must run where cargo is absent (the
//! GPU machines get only the release binary).
use std::time::Instant;

use anyhow::Result;
use clap::{Args, Subcommand};
use pwsnas_models::{Composition, Mode, Space, SpaceKind, Supernet};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use tch::{Kind, Tensor};

use crate::cli::args::SpaceShapeArgs;
use crate::progress::Progress;
use crate::search::constraints::Constraints;
use crate::settings::{Metric, Sampler, TrainSettings};
use crate::shrink::score::{score_candidates, Origin, Pool, Scorer, Wanted};
use crate::train::epoch::train_step;
use crate::train::sampler;
use crate::train::sgd::Sgd;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Images/s of a supernet training step.
    TrainStep {
        #[command(flatten)]
        net: BenchNet,
        #[command(flatten)]
        run: StepRun,
        /// How the steps pick children: uniform (SPOS) or fair (FairNAS, several children a step).
        #[arg(long, value_enum, default_value = "uniform")]
        sampler: Sampler,
    },
    /// ms per DARTS first-order search step (an α step, then a weight step).
    DartsStep {
        #[command(flatten)]
        net: BenchNet,
        #[command(flatten)]
        run: StepRun,
    },
    /// Seconds to score every operator candidate with the angle metric.
    Score {
        #[command(flatten)]
        net: BenchNet,
        /// Children sampled per operator candidate.
        #[arg(long, default_value_t = 100)]
        samples_per_op: usize,
        /// Where libtorch runs: cpu or cuda[:N].
        #[arg(long, default_value = "cpu")]
        device: String,
    },
    /// pwsnas's ONNX against torch.onnx.export of the same network, in ONNX Runtime (p50 at batch 1 and 64).
    Export(crate::export::bench::ExportBenchArgs),
    /// The latency table's predictions against random children timed whole in ONNX Runtime.
    Latency {
        #[command(flatten)]
        net: BenchNet,
        /// Children drawn at random, predicted and timed.
        #[arg(long, default_value_t = 20)]
        children: usize,
        /// ONNX Runtime intra-op thread counts, comma-separated; each has its own latency table.
        #[arg(long, value_delimiter = ',', default_value = "1,2")]
        threads: Vec<usize>,
        /// Seed of the children drawn.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Measure the latency tables anew instead of reusing the cached ones.
        #[arg(long)]
        rebuild: bool,
        /// The ONNX Runtime library to load (default: the one set-up installed).
        #[arg(long)]
        ort_lib: Option<std::path::PathBuf>,
    },
}

/// The network a benchmark uses: the space's defaults (`nb201`: NAS-Bench-201's C=16, N=5 on
/// 3×32×32, 10 classes) with the shape flags given.
#[derive(Args)]
pub struct BenchNet {
    /// The space of the network: nb201, mobile or darts.
    #[arg(long, default_value = "nb201")]
    space: String,
    #[command(flatten)]
    shape: SpaceShapeArgs,
}

/// How a step benchmark runs: batch size, timed and untimed steps, device.
#[derive(Args)]
pub struct StepRun {
    /// Images per step.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Timed steps.
    #[arg(long, default_value_t = 20)]
    steps: usize,
    /// Untimed steps first.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Where libtorch runs: cpu or cuda[:N].
    #[arg(long, default_value = "cpu")]
    device: String,
}

impl BenchNet {
    fn kind(&self) -> Result<SpaceKind> {
        let mut params = serde_json::Map::new();
        self.shape.apply(&mut params);
        Ok(SpaceKind::from_params(&self.space, serde_json::Value::Object(params))?)
    }
}

pub fn run(cmd: BenchCommand, progress: &Progress) -> Result<()> {
    match cmd {
        BenchCommand::Export(args) => crate::export::bench::run(&args, progress)?,
        BenchCommand::Latency { net, children, threads, seed, rebuild, ort_lib } => {
            let kind = net.kind()?;
            let opts =
                crate::latency::check::CheckOptions { kind, children, threads, seed, rebuild, ort_lib };
            let isa = crate::host::isa();
            for checked in crate::latency::check::run(&opts, progress)? {
                let mut result = checked.summary();
                result["bench"] = json!("latency");
                result["space"] = json!(opts.kind.name());
                result["params"] = opts.kind.params_json();
                result["cpu"] = json!(crate::host::cpu_model());
                result["isa"] = json!(isa);
                let pct = |k: &str| 100.0 * result[k].as_f64().unwrap_or(f64::NAN);
                let line = format!(
                    "latency {} {} at {} thread(s), {} ({isa}): {} children, |error| median {:.1}%, p90 {:.1}%, worst {:.1}%; session spread median {:.1}% (table {})",
                    opts.kind.name(),
                    opts.kind.params_json(),
                    checked.threads,
                    crate::host::cpu_model(),
                    checked.rows.len(),
                    pct("median_abs_error"),
                    pct("p90_abs_error"),
                    pct("worst_abs_error"),
                    pct("median_session_spread"),
                    checked.table.display(),
                );
                print_result(progress, &result, &line);
            }
        }
        BenchCommand::TrainStep {
            net,
            run: StepRun { batch_size, steps, warmup, device },
            sampler: which,
        } => {
            let device = crate::device::parse(&device)?;
            let kind = net.kind()?;
            let space = Space::full(kind.clone());
            tch::manual_seed(0);
            let supernet = Supernet::new(&space, device);
            let cfg = TrainSettings::default();
            let mut sgd = Sgd::new(&cfg);
            let [c, h, w] = kind.input_shape();
            let x = Tensor::randn([batch_size as i64, c as i64, h as i64, w as i64], (Kind::Float, device));
            let y = Tensor::randint(kind.classes() as i64, [batch_size as i64], (Kind::Int64, device));
            let mut rng = ChaCha8Rng::seed_from_u64(0);
            let mut images = 0usize;
            let mut start = Instant::now();
            for step in 0..warmup + steps {
                if step == warmup {
                    sync(device);
                    start = Instant::now();
                    images = 0;
                }
                let children = match which {
                    Sampler::Uniform => vec![nth_child(&space, step)],
                    Sampler::Fair => sampler::sample(which, &space, &mut rng),
                };
                let stats =
                    train_step(&supernet, None, &mut sgd, &cfg, &x, &y, &children, cfg.lr, Mode::TRAIN);
                images += stats.seen;
            }
            sync(device);
            let secs = start.elapsed().as_secs_f64();
            let result = json!({
                "bench": "train-step", "space": kind.name(), "params": kind.params_json(), "sampler": which,
                "batch_size": batch_size, "steps": steps, "device": crate::device::name(device),
                "threads": tch::get_num_threads(), "seconds": secs, "images_per_sec": images as f64 / secs,
                "ms_per_step": secs * 1e3 / steps as f64,
            });
            print_result(progress, &result, &format!(
                "train-step {} {}: {:.1} images/s ({:.2} ms/step, batch {batch_size}, {} sampler, {}, {} threads)",
                kind.name(), kind.params_json(), images as f64 / secs, secs * 1e3 / steps as f64, format!("{which:?}").to_lowercase(), crate::device::name(device), tch::get_num_threads()
            ));
        }
        BenchCommand::DartsStep { net, run } => darts_step(&net, &run, progress)?,
        BenchCommand::Score { net, samples_per_op, device } => {
            let device = crate::device::parse(&device)?;
            let kind = net.kind()?;
            let space = Space::full(kind.clone());
            tch::manual_seed(0);
            let supernet = Supernet::new(&space, device);
            let w0 = supernet.named_tensors().into_iter().map(|(n, t)| (n, t.detach().copy())).collect();
            // Move the weights as training would, so angles are not all zero.
            tch::no_grad(|| {
                for (_, t) in supernet.named_tensors() {
                    let _ = t.shallow_clone().g_add_(&(Tensor::randn_like(&t) * 0.01));
                }
            });
            let current = supernet.named_tensors().into_iter().collect();
            let start = Instant::now();
            let mut scorer = Scorer::new(
                &supernet,
                &[Origin { epoch: 0, w0: &w0 }],
                &current,
                None,
                Wanted::for_metric(Metric::Angle, Composition::Ops),
            );
            let cps: Vec<usize> = (0..space.choices.len()).collect();
            let unconstrained = Constraints::default();
            let scores = score_candidates(
                &mut scorer,
                &Pool::new(&space, &unconstrained, 0),
                &cps,
                "angle",
                samples_per_op,
                false,
                0,
                progress,
                &mut |_| {},
            );
            let secs = start.elapsed().as_secs_f64();
            let children = scorer.children().len();
            let result = json!({
                "bench": "score", "space": kind.name(), "params": kind.params_json(), "samples_per_op": samples_per_op,
                "candidates": scores.len(), "distinct_children": children, "seconds": secs, "device": crate::device::name(device),
            });
            print_result(
                progress,
                &result,
                &format!(
                "score {}: {} candidates × S={samples_per_op} ({children} distinct children) in {secs:.3} s",
                kind.name(), scores.len()
            ),
            );
        }
    }
    Ok(())
}

/// `pwsnas bench darts-step`: the method's own α and weight steps ([`crate::method::darts`]) with
/// the default `[gradient]` settings, on two fixed random batches (α batch, weight batch).
fn darts_step(net: &BenchNet, run: &StepRun, progress: &Progress) -> Result<()> {
    use crate::method::{alpha, darts};
    let StepRun { batch_size, steps, warmup, ref device } = *run;
    let device = crate::device::parse(device)?;
    let kind = net.kind()?;
    let space = Space::full(kind.clone());
    tch::manual_seed(0);
    let supernet = Supernet::new(&space, device);
    let settings = crate::settings::Settings::default();
    let cfg = crate::method::weight_cfg(&settings);
    let mut sgd = Sgd::new(&cfg);
    let alphas = alpha::Alphas::init(&space, 0, device);
    let mut adam = alpha::Adam::for_alphas(&settings.gradient, &alphas);
    let [c, h, w] = kind.input_shape();
    let shape = [batch_size as i64, c as i64, h as i64, w as i64];
    let batch = || {
        let x = Tensor::randn(shape, (Kind::Float, device));
        (x, Tensor::randint(kind.classes() as i64, [batch_size as i64], (Kind::Int64, device)))
    };
    let ((xa, ya), (xw, yw)) = (batch(), batch());
    // Seconds of the α steps and of the weight steps, timed apart (synchronised on CUDA).
    let (mut alpha_secs, mut weight_secs) = (0.0, 0.0);
    for step in 0..warmup + steps {
        sync(device);
        let t = Instant::now();
        darts::alpha_step(&supernet, &space, &alphas, &mut adam, (&xa, &ya), &cfg, Mode::TRAIN);
        sync(device);
        let a = t.elapsed().as_secs_f64();
        darts::weight_step(&supernet, &space, &alphas, &mut sgd, (&xw, &yw), &cfg, cfg.lr, Mode::TRAIN);
        sync(device);
        if step >= warmup {
            alpha_secs += a;
            weight_secs += t.elapsed().as_secs_f64() - a;
        }
    }
    let secs = alpha_secs + weight_secs;
    let per_step = |s: f64| s * 1e3 / steps as f64;
    let ms = per_step(secs);
    let result = json!({
        "bench": "darts-step", "space": kind.name(), "params": kind.params_json(),
        "batch_size": batch_size, "steps": steps, "device": crate::device::name(device),
        "threads": tch::get_num_threads(), "seconds": secs, "ms_per_step": ms,
        "alpha_ms": per_step(alpha_secs), "weight_ms": per_step(weight_secs),
    });
    let line = format!(
        "darts-step {} {}: {ms:.2} ms/step (α step {:.2} + weight step {:.2}, batch {batch_size}, {}, {} threads)",
        kind.name(),
        kind.params_json(),
        per_step(alpha_secs),
        per_step(weight_secs),
        crate::device::name(device),
        tch::get_num_threads()
    );
    print_result(progress, &result, &line);
    Ok(())
}

/// The child of step `step` in a fixed sequence that `benches/pytorch_train_step.py` reproduces, so
/// both benchmarks train the same children: index `(7919 · step) mod size`, written in the mixed
/// radix of the choice points' op counts (first choice point least significant).
fn nth_child(space: &Space, step: usize) -> pwsnas_models::Arch {
    let size = space.size();
    let mut index = (7919u128 * step as u128) % size;
    let ops = space
        .choices
        .iter()
        .map(|cp| {
            let n = cp.ops.len() as u128;
            let op = cp.ops[(index % n) as usize];
            index /= n;
            op
        })
        .collect();
    pwsnas_models::Arch { ops }
}

fn sync(device: tch::Device) {
    if let tch::Device::Cuda(n) = device {
        tch::Cuda::synchronize(n as i64);
    }
}

fn print_result(progress: &Progress, result: &serde_json::Value, line: &str) {
    if progress.json() {
        println!("{result}");
    } else {
        println!("{line}");
    }
}
