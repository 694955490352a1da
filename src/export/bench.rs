//! `pwsnas bench export`: how fast pwsnas's ONNX runs against what a PyTorch user gets from
//! `torch.onnx.export` for the *same network with the same weights*, both in ONNX Runtime.
//!
//! For every network of [`NETWORKS`] (or those named with `--networks`): the stand-alone child is
//! built with random weights and perturbed BatchNorm statistics, its variables are saved
//! (safetensors), and `benches/pytorch_export.py` (embedded in the binary, run with the set-up cache's
//! PyTorch) rebuilds the network in PyTorch eager, loads them and exports it with `torch.onnx.export`.
//! pwsnas exports the child twice: the plain lowering (`--no-optimize`) and the rewritten graph (the
//! default). All three models are then checked against libtorch (logit parity, relative to the logit
//! scale) and timed in ONNX Runtime with the same threads and execution provider and the protocol of
//! every ONNX Runtime latency of pwsnas ([`crate::timing::Protocol`]): `--rounds` rounds, each a fresh
//! session of every model (warm-up, then about `--budget-ms` of timed runs, at most `--runs`), the
//! models taking turns in an order that rotates, so that load from other processes falls on all
//! models alike; a round's figure is each model's p50. A model's latency is the median of its round
//! p50s, flagged when the rounds disagree, the machine was busy or the runs were bimodal; the ratio
//! pwsnas / torch is the median of the per-round ratios, with their spread. The node counts of the
//! graphs ONNX Runtime actually runs (saved with
//! its optimized-model option) are printed beside them.
//!
//! A network of another space joins [`NETWORKS`] with an entry (space name, its parameters and an
//! arch string) here and its module in the reference script's `NETWORKS`.
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::Args;
use pwsnas_models::{Arch, Mode, SpaceKind, Supernet};
use pwsnas_onnx::Lowering;
use serde::Serialize;
use serde_json::json;
use tch::{Device, Kind, Tensor};

use super::metadata::ModelInfo;
use super::parity;
use crate::host;
use crate::ort_runtime::{self, Ep, SessionConfig};
use crate::progress::Progress;
use crate::timing::{self, percentile, sessions, Plan, Protocol};

/// The reference script, embedded so that the benchmark runs where only the binary is.
const SCRIPT: &str = include_str!("../../benches/pytorch_export.py");

/// A network of the benchmark.
pub struct Network {
    pub name: &'static str,
    pub space: &'static str,
    /// Space parameters (JSON) on top of the space's defaults.
    pub params: &'static str,
    pub arch: &'static str,
}

/// The benchmark's networks: the demo's architecture, NAS-Bench-201's C=16 N=5 all-`nor_conv_3x3`
/// and a mixed cell with every op (its node 1 receives only `none`, so zeros flow into node 2), and
/// a mobile chain mixing kernels, expansions and skipped layers, and DARTS_V2's genotype in DARTS's
/// search-size network (C = 16, 8 cells) on CIFAR-sized inputs. The darts arch is the genotype's
/// `Genotype(normal=[...], ...)` text, which the reference script parses itself.
pub const NETWORKS: &[Network] = &[
    Network {
        name: "demo",
        space: "nb201",
        params: r#"{"channels": 8, "cells_per_stage": 1, "input_channels": 1, "input_size": 28, "classes": 10}"#,
        arch: "|nor_conv_3x3~0|+|avg_pool_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    },
    Network {
        name: "nb201-conv3x3",
        space: "nb201",
        params: r#"{"channels": 16, "cells_per_stage": 5, "input_channels": 3, "input_size": 32, "classes": 10}"#,
        arch: "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    },
    Network {
        name: "nb201-mixed",
        space: "nb201",
        params: r#"{"channels": 16, "cells_per_stage": 5, "input_channels": 3, "input_size": 32, "classes": 10}"#,
        arch: "|none~0|+|nor_conv_3x3~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|nor_conv_3x3~2|",
    },
    Network {
        name: "mobile",
        space: "mobile",
        params: r#"{"input_channels": 3, "input_size": 32, "classes": 10}"#,
        arch: "mb_k3_e3,identity,mb_k5_e6,mb_k3_e3,mb_k7_e6,identity,mb_k5_e3,mb_k3_e6,identity,mb_k7_e3,mb_k5_e6",
    },
    Network {
        name: "darts",
        space: "darts",
        params: r#"{"channels": 16, "layers": 8, "input_channels": 3, "input_size": 32, "classes": 10}"#,
        arch: "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])",
    },
];

/// Flags of `pwsnas bench export`.
#[derive(Args, Clone, Debug)]
pub struct ExportBenchArgs {
    /// Networks to run (comma-separated names; default: all of demo, nb201-conv3x3, nb201-mixed, mobile, darts).
    #[arg(long, value_delimiter = ',')]
    pub networks: Vec<String>,
    /// Rounds; every round times every model once, in rotating order.
    #[arg(long, default_value_t = 7)]
    pub rounds: usize,
    /// At most this many timed runs per model and round (fewer for slow models, see --budget-ms).
    #[arg(long, default_value_t = 200)]
    pub runs: usize,
    /// Untimed runs before each timing (at most; slow models get fewer, at least 1).
    #[arg(long, default_value_t = 20)]
    pub warmup: usize,
    /// Milliseconds of timed runs per model and round to aim for: a model's runs are this budget over
    /// its latency, between 5 and --runs.
    #[arg(long, default_value_t = 400.0)]
    pub budget_ms: f64,
    /// ONNX Runtime execution provider.
    #[arg(long, value_enum, default_value = "cpu")]
    pub ep: Ep,
    /// Intra-op threads of ONNX Runtime (default: libtorch's default).
    #[arg(long)]
    pub threads: Option<usize>,
    /// The ONNX Runtime library (default: ORT_DYLIB_PATH, then the one set-up installed).
    #[arg(long)]
    pub ort_lib: Option<PathBuf>,
    /// Folder for the models, weights and results (default: runs/bench-export).
    #[arg(long, default_value = "runs/bench-export")]
    pub out: PathBuf,
    /// Python interpreter for the PyTorch reference.
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// Folder holding the `torch` package (default: the set-up cache's, via PWSNAS_DEPS).
    #[arg(long)]
    pub torch_site: Option<PathBuf>,
    /// Seed of the random weights.
    #[arg(long, default_value_t = 0)]
    pub seed: i64,
}

/// The three models of one network.
const VARIANTS: [&str; 3] = ["pwsnas", "plain", "torch"];

/// One model's figures at one batch size.
#[derive(Clone, Debug, Serialize)]
pub struct Timed {
    pub batch: usize,
    /// Median over the rounds (fresh sessions) of each round's p50 (ms).
    pub p50_ms: f64,
    /// The rounds' p50s (ms), in round order.
    pub rounds_ms: Vec<f64>,
    /// Timed runs per round.
    pub runs: usize,
    /// Signs that the figure should not be trusted ([`crate::timing::Noise`]).
    pub warnings: Vec<String>,
}

/// One model of a network.
#[derive(Clone, Debug, Serialize)]
pub struct ModelResult {
    pub variant: String,
    pub nodes: usize,
    /// Nodes of the graph ONNX Runtime runs after its own optimisations.
    pub ort_nodes: usize,
    pub ort_ops: std::collections::BTreeMap<String, usize>,
    /// `max |model - libtorch| / max |libtorch logit|` on a random batch.
    pub scaled_diff: f64,
    pub timed: Vec<Timed>,
}

/// pwsnas / torch at one batch size.
#[derive(Clone, Debug, Serialize)]
pub struct Ratio {
    pub batch: usize,
    /// Median of the per-round ratios pwsnas p50 / torch p50.
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// The target this batch size must meet (≤).
    pub target: f64,
}

/// Everything measured on one network.
#[derive(Clone, Debug, Serialize)]
pub struct NetworkResult {
    pub name: String,
    pub space: String,
    pub arch: String,
    pub models: Vec<ModelResult>,
    pub ratios: Vec<Ratio>,
}

/// The targets: pwsnas / torch.onnx.export at batch 1 and at batch 64.
pub const TARGETS: [(usize, f64); 2] = [(1, 0.9), (64, 1.0)];

pub fn run(args: &ExportBenchArgs, progress: &Progress) -> Result<()> {
    if args.rounds == 0 || args.runs == 0 {
        bail!("--rounds and --runs must be at least 1");
    }
    if !(args.budget_ms.is_finite() && args.budget_ms > 0.0) {
        bail!("--budget-ms {}: expected a positive number of milliseconds", args.budget_ms);
    }
    let networks: Vec<&Network> = if args.networks.is_empty() {
        NETWORKS.iter().collect()
    } else {
        args.networks
            .iter()
            .map(|n| {
                NETWORKS.iter().find(|net| net.name == n).with_context(|| {
                    let names: Vec<&str> = NETWORKS.iter().map(|n| n.name).collect();
                    format!("--networks: no network '{n}'; expected some of {}", names.join(", "))
                })
            })
            .collect::<Result<_>>()?
    };
    let rt = ort_runtime::runtime(args.ort_lib.as_deref(), args.ep)?;
    let threads = args.threads.unwrap_or_else(crate::latency::default_threads).max(1);
    tch::set_num_threads(threads as i32);
    let cfg = SessionConfig { ep: args.ep, threads };
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let script = args.out.join("pytorch_export.py");
    crate::fsutil::write_atomic(&script, SCRIPT.as_bytes())?;
    let python_path = python_path(args.torch_site.as_deref())?;
    let clock = host::CpuClock::now();
    let load_before = host::load_average();
    let mut results = Vec::new();
    for net in networks {
        let result = bench_network(net, args, cfg, &script, &python_path, progress)
            .with_context(|| format!("network {}", net.name))?;
        print_network(progress, &result);
        results.push(result);
    }
    let busy = clock.and_then(|c| c.busy_elsewhere());
    let load = [load_before, host::load_average()];
    let summary = json!({
        "bench": "export", "cpu": host::cpu_model(), "threads": threads, "ep": args.ep.name(),
        "onnxruntime": rt.version, "busy_elsewhere": busy, "load_average": load, "rounds": args.rounds,
        "runs": args.runs, "budget_ms": args.budget_ms, "networks": results,
    });
    crate::fsutil::write_json(&args.out.join("bench-export.json"), &summary)?;
    if progress.json() {
        println!("{summary}");
    } else {
        let load: Vec<String> = load.iter().map(|l| l.map_or("?".into(), |l| format!("{l:.1}"))).collect();
        println!(
            "{}, ONNX Runtime {} on {}, {threads} thread(s); {} of the CPU time used by other processes meanwhile, load average {} before and {} after",
            host::cpu_model(),
            rt.version,
            args.ep.name(),
            busy.map_or("an unknown share".into(), |b| format!("{:.0}%", b * 100.0)),
            load[0],
            load[1]
        );
        let misses: Vec<String> = results
            .iter()
            .flat_map(|r| {
                r.ratios
                    .iter()
                    .filter(|q| q.median > q.target)
                    .map(move |q| format!("{} at batch {}: {:.3} > {}", r.name, q.batch, q.median, q.target))
            })
            .collect();
        if misses.is_empty() {
            println!("target met on every network (pwsnas / torch.onnx.export ≤ 0.9 at batch 1, ≤ 1.0 at batch 64)");
        } else {
            println!("target missed: {}", misses.join("; "));
        }
    }
    Ok(())
}

/// `PYTHONPATH` for the reference script: the folder holding `torch`, and the set-up's `onnx` package
/// (which `torch.onnx.export` needs).
fn python_path(torch_site: Option<&Path>) -> Result<String> {
    let deps = std::env::var_os("PWSNAS_DEPS")
        .map(PathBuf::from)
        .or_else(|| option_env!("PWSNAS_DEPS").map(PathBuf::from));
    let torch = match (torch_site, &deps) {
        (Some(site), _) => site.to_path_buf(),
        (None, Some(deps)) => {
            let link = deps.join("torch");
            let pkg = link.canonicalize().with_context(|| {
                format!("no PyTorch at {}: run `cargo xtask setup` or pass --torch-site", link.display())
            })?;
            pkg.parent().context("the torch package has no parent folder")?.to_path_buf()
        }
        (None, None) => {
            bail!("PWSNAS_DEPS is not set: pass --torch-site (the folder holding the torch package)")
        }
    };
    if !torch.join("torch").is_dir() {
        bail!("--torch-site {}: no torch package there", torch.display());
    }
    let mut parts = vec![torch.display().to_string()];
    if let Some(onnx) = deps.map(|d| d.join("onnx-site")).filter(|d| d.join("onnx").is_dir()) {
        parts.push(onnx.display().to_string());
    }
    Ok(parts.join(":"))
}

fn kind_of(net: &Network) -> Result<SpaceKind> {
    let params: serde_json::Value = serde_json::from_str(net.params).context("network parameters")?;
    Ok(SpaceKind::from_params(net.space, params)?)
}

/// Random BatchNorm statistics and affine parameters everywhere (fresh ones are the identity).
fn perturb_batch_norms(net: &Supernet) {
    let tensors = net.named_tensors();
    let find = |name: &str| tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t.shallow_clone());
    tch::no_grad(|| {
        for (name, t) in &tensors {
            let Some(prefix) = name.strip_suffix("running_mean") else { continue };
            let c = t.size()[0];
            let opts = (Kind::Float, Device::Cpu);
            let set = |n: String, v: Tensor| {
                if let Some(t) = find(&n) {
                    t.shallow_clone().copy_(&v);
                }
            };
            t.shallow_clone().copy_(&(Tensor::randn([c], opts) * 0.5));
            set(format!("{prefix}running_var"), Tensor::rand([c], opts) * 1.5 + 0.3);
            set(format!("{prefix}weight"), Tensor::rand([c], opts) + 0.5);
            set(format!("{prefix}bias"), Tensor::randn([c], opts) * 0.3);
        }
    });
}

fn model_info(kind: &SpaceKind, arch: &str) -> ModelInfo {
    let [c, h, w] = kind.input_shape();
    ModelInfo {
        arch: arch.into(),
        space: kind.name().into(),
        space_params: kind.params_json(),
        input_shape: [c, h, w],
        mean: vec![0.0; c],
        std: vec![1.0; c],
        classes: (0..kind.classes()).map(|i| format!("class{i}")).collect(),
        dataset: "random".into(),
        pwsnas_version: env!("CARGO_PKG_VERSION").into(),
    }
}

fn bench_network(
    net: &Network,
    args: &ExportBenchArgs,
    cfg: SessionConfig,
    script: &Path,
    python_path: &str,
    progress: &Progress,
) -> Result<NetworkResult> {
    let kind = kind_of(net)?;
    let arch: Arch = kind.parse_arch(net.arch)?;
    tch::manual_seed(args.seed);
    let child = Supernet::standalone(&kind, &arch, Device::Cpu);
    perturb_batch_norms(&child);
    let dir = &args.out;
    let weights = dir.join(format!("{}.safetensors", net.name));
    child.var_store().save(&weights).with_context(|| format!("cannot save {}", weights.display()))?;
    let info = model_info(&kind, net.arch);
    let mut files = Vec::new();
    for (variant, lowering) in [("pwsnas", Lowering::Optimized), ("plain", Lowering::Plain)] {
        let path = dir.join(format!("{}.{variant}.onnx", net.name));
        crate::fsutil::write_atomic(&path, &super::onnx_bytes(&child, &arch, &info, lowering))?;
        files.push(path);
    }
    let torch_path = dir.join(format!("{}.torch.onnx", net.name));
    progress.info(format!("{}: torch.onnx.export of the same network ({})", net.name, script.display()));
    let out = Command::new(&args.python)
        .env("PYTHONPATH", python_path)
        .arg(script)
        .args(["--space", net.space, "--params", &kind.params_json().to_string(), "--arch", net.arch])
        .arg("--weights")
        .arg(&weights)
        .arg("--out")
        .arg(&torch_path)
        .output()
        .with_context(|| format!("cannot start {}", args.python))?;
    if !out.status.success() {
        bail!(
            "the PyTorch reference failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .rev()
                .take(15)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    files.push(torch_path);

    let rt = ort_runtime::runtime(args.ort_lib.as_deref(), args.ep)?;
    let [c, h, w] = kind.input_shape();
    let classes = kind.classes();
    // Parity on a random batch against libtorch, and what ONNX Runtime makes of each graph.
    let n = 8;
    let x = Tensor::randn([n as i64, c as i64, h as i64, w as i64], (Kind::Float, Device::Cpu));
    let reference = tch::no_grad(|| child.forward(&x, &arch, Mode::EVAL));
    let reference = Vec::<f32>::try_from(&reference.flatten(0, -1))?;
    let input = Vec::<f32>::try_from(&x.flatten(0, -1))?;
    let mut models = Vec::new();
    let mut sessions = Vec::new();
    let mut bytes_of = Vec::new();
    for (variant, path) in VARIANTS.iter().zip(&files) {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let nodes = pwsnas_onnx::summary(&bytes)?.node_count;
        let optimized = path.with_extension("ort.onnx");
        rt.save_optimized(&bytes, &path.display().to_string(), cfg, &optimized)?;
        let ort_summary = pwsnas_onnx::summary(&std::fs::read(&optimized)?)?;
        let mut session = rt.session_from_bytes(&bytes, &path.display().to_string(), cfg)?;
        let logits = session.run(&input, [n, c, h, w])?;
        let p = parity::compare(&reference, &logits, classes, super::DEFAULT_TOLERANCE);
        if !p.passed {
            bail!(
                "{variant} model {} disagrees with libtorch: {}",
                path.display(),
                p.reason.unwrap_or_default()
            );
        }
        models.push(ModelResult {
            variant: variant.to_string(),
            nodes,
            ort_nodes: ort_summary.node_count,
            ort_ops: ort_summary.op_counts,
            scaled_diff: p.scaled_diff,
            timed: Vec::new(),
        });
        sessions.push(session);
        bytes_of.push(bytes);
    }
    let bytes = bytes_of;

    let mut ratios = Vec::new();
    for (batch, target) in TARGETS {
        let x: Vec<f32> = (0..batch * c * h * w).map(|i| ((i as f32) * 0.37).sin()).collect();
        // One plan for all three models, from the slowest one's latency.
        let mut slowest = 0f64;
        for session in &mut sessions {
            let probe = timing::measure(Plan { warmup: 1, runs: 2 }, batch, || {
                session.run(&x, [batch, c, h, w]).map(drop)
            })?;
            slowest = slowest.max(probe.min_ms);
        }
        let plan = plan_for(slowest, args);
        // The protocol of every ONNX Runtime latency: a round is one fresh session of each model,
        // the models taking turns in an order that rotates.
        let protocol = Protocol {
            min_session_ms: 0.0,
            sessions: args.rounds,
            plan: Plan { warmup: plan.warmup, runs: plan.runs * args.rounds },
        };
        let mut timed: Vec<sessions::Timed<'_>> = VARIANTS
            .iter()
            .zip(&bytes)
            .map(|(variant, bytes)| sessions::Timed {
                open: Box::new(move || rt.session_from_bytes(bytes, variant, cfg)),
                input: &x,
                shape: [batch, c, h, w],
            })
            .collect();
        let bar = progress.bar((args.rounds * VARIANTS.len()) as u64, &format!("{} b{batch}", net.name));
        let stats = sessions::time_all(protocol, &mut timed, || bar.inc(1))?;
        bar.finish_and_clear();
        let rounds: Vec<Vec<f64>> = stats
            .iter()
            .map(|s| s.noise.as_ref().map(|n| n.session_p50_ms.clone()).unwrap_or_default())
            .collect();
        for (model, (s, r)) in models.iter_mut().zip(stats.iter().zip(&rounds)) {
            model.timed.push(Timed {
                batch,
                p50_ms: s.p50_ms,
                rounds_ms: r.clone(),
                runs: plan.runs,
                warnings: s.noise.as_ref().map(|n| n.warnings.clone()).unwrap_or_default(),
            });
        }
        let mut per_round: Vec<f64> = rounds[0].iter().zip(&rounds[2]).map(|(p, t)| p / t).collect();
        per_round.sort_by(f64::total_cmp);
        ratios.push(Ratio {
            batch,
            median: percentile(&per_round, 50.0),
            min: per_round[0],
            max: per_round[per_round.len() - 1],
            target,
        });
    }
    Ok(NetworkResult {
        name: net.name.into(),
        space: net.space.into(),
        arch: net.arch.into(),
        models,
        ratios,
    })
}

/// Runs per timing: `--budget-ms` over the latency, between 5 and `--runs`; warm-up runs likewise
/// capped at a quarter of the budget.
fn plan_for(latency_ms: f64, args: &ExportBenchArgs) -> Plan {
    let fit = |budget: f64| if latency_ms > 0.0 { (budget / latency_ms) as usize } else { usize::MAX };
    Plan {
        warmup: fit(args.budget_ms / 4.0).clamp(1, args.warmup.max(1)),
        runs: fit(args.budget_ms).clamp(5, args.runs.max(5)),
    }
}

fn print_network(progress: &Progress, r: &NetworkResult) {
    if progress.json() {
        return;
    }
    println!("{} ({} {})", r.name, r.space, r.arch);
    for m in &r.models {
        let times: Vec<String> = m
            .timed
            .iter()
            .map(|t| {
                let (lo, hi) =
                    t.rounds_ms.iter().fold((f64::INFINITY, 0f64), |(a, b), &v| (a.min(v), b.max(v)));
                format!("b{} p50 {:.4} ms [{:.4}–{:.4}] ×{}", t.batch, t.p50_ms, lo, hi, t.runs)
            })
            .collect();
        println!(
            "  {:<7} {:>4} nodes, {:>4} after ORT's optimisation; parity {:.1e}; {}",
            m.variant,
            m.nodes,
            m.ort_nodes,
            m.scaled_diff,
            times.join("; ")
        );
    }
    for m in &r.models {
        for t in m.timed.iter().filter(|t| !t.warnings.is_empty()) {
            println!(
                "  warning: {} at batch {} is not reliable: {}",
                m.variant,
                t.batch,
                t.warnings.join("; ")
            );
        }
    }
    for q in &r.ratios {
        println!(
            "  pwsnas / torch.onnx.export at batch {}: {:.3} (rounds {:.3}–{:.3}; target ≤ {}) {}",
            q.batch,
            q.median,
            q.min,
            q.max,
            q.target,
            if q.median <= q.target { "met" } else { "MISSED" }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_network_parses_and_its_space_has_a_reference() {
        for net in NETWORKS {
            let kind = kind_of(net).unwrap_or_else(|e| panic!("{}: {e:#}", net.name));
            kind.parse_arch(net.arch).unwrap_or_else(|e| panic!("{}: {e}", net.name));
            assert!(SCRIPT.contains(&format!("\"{}\": ", net.space)), "{}: no reference module", net.name);
        }
        let darts = NETWORKS.iter().find(|n| n.name == "darts").expect("the darts network");
        let kind = kind_of(darts).unwrap();
        assert_eq!(kind.parse_arch(darts.arch).unwrap(), kind.parse_arch("DARTS_V2").unwrap());
    }
}
