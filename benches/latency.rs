//! Latency of an exported model in ONNX Runtime against libtorch eager, at batch 1 and 64, for a
//! demo-sized network: `nb201` with C=8, N=1 on 1×28×28 images and 10 classes, with random weights,
//! or the retrained model of the run named by `PWSNAS_BENCH_RUN`. Criterion times each case; a
//! summary measured with pwsnas's own latency code (the numbers `pwsnas export` reports) then prints
//! the p50s and the ratio (goal: ONNX Runtime at least 1.5× as fast as libtorch at batch 1 on CPU),
//! and ONNX Runtime's batch-1 p50 at each thread count up to the one used.
//!
//! `cargo bench --bench latency`; `PWSNAS_BENCH_THREADS=N` sets the threads (default: libtorch's).
use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use criterion::Criterion;
use pwsnas::export::metadata::ModelInfo;
use pwsnas::export::onnx_bytes;
use pwsnas::ort_runtime::{runtime, Ep, OrtModel, SessionConfig};
use pwsnas::run::RunDir;
use pwsnas::search::ArchFile;
use pwsnas::timing::sessions::{time_one, Timed};
use pwsnas::timing::{self as latency, Plan, Protocol};
use pwsnas_models::{Arch, Mode, Nb201Params, SpaceKind, Supernet};
use tch::{Device, Kind, Tensor};

const DEMO_ARCH: &str =
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|";

struct Subject {
    name: String,
    net: Supernet,
    arch: Arch,
    info: ModelInfo,
}

/// The demo-sized network with random weights.
fn demo() -> Result<Subject> {
    let kind = SpaceKind::new(Nb201Params {
        channels: 8,
        cells_per_stage: 1,
        classes: 10,
        input_channels: 1,
        input_size: 28,
        ..Nb201Params::default()
    });
    let arch = kind.parse_arch(DEMO_ARCH)?;
    tch::manual_seed(0);
    let net = Supernet::standalone(&kind, &arch, Device::Cpu);
    let info = ModelInfo {
        arch: DEMO_ARCH.into(),
        space: "nb201".into(),
        space_params: kind.params_json(),
        input_shape: [1, 28, 28],
        mean: vec![0.286],
        std: vec![0.353],
        classes: (0..10).map(|i| format!("class {i}")).collect(),
        dataset: "random weights".into(),
        pwsnas_version: env!("CARGO_PKG_VERSION").into(),
    };
    Ok(Subject { name: "demo nb201 C=8 N=1, random weights".into(), net, arch, info })
}

/// The retrained model of a run.
fn from_run(dir: &Path) -> Result<Subject> {
    let run = RunDir::open(dir)?;
    let arch_file: ArchFile = pwsnas::fsutil::read_json(&run.path("arch.json"))?;
    let kind = arch_file.kind()?;
    let arch = kind.parse_arch(&arch_file.arch)?;
    let net = pwsnas::retrain::load_trained(&run, &arch_file, Device::Cpu)?;
    let [c, h, w] = kind.input_shape();
    let info = ModelInfo {
        arch: arch_file.arch.clone(),
        space: kind.name().into(),
        space_params: kind.params_json(),
        input_shape: [c, h, w],
        mean: vec![0.5; c],
        std: vec![0.25; c],
        classes: (0..kind.classes()).map(|i| format!("class {i}")).collect(),
        dataset: run.info.settings.data.clone(),
        pwsnas_version: env!("CARGO_PKG_VERSION").into(),
    };
    Ok(Subject { name: format!("retrained model of {}", dir.display()), net, arch, info })
}

fn session(s: &Subject, threads: usize) -> Result<OrtModel> {
    let bytes = onnx_bytes(&s.net, &s.arch, &s.info, pwsnas_onnx::Lowering::Optimized);
    runtime(None, Ep::Cpu)?.session_from_bytes(&bytes, &s.name, SessionConfig { ep: Ep::Cpu, threads })
}

fn main() -> Result<()> {
    // `cargo bench` passes --bench; `cargo test --benches` does not: then every case runs briefly.
    let full = std::env::args().any(|a| a == "--bench");
    let subject = match std::env::var_os("PWSNAS_BENCH_RUN") {
        Some(dir) => from_run(Path::new(&dir))?,
        None => demo()?,
    };
    let threads = std::env::var("PWSNAS_BENCH_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| tch::get_num_threads().max(1) as usize);
    tch::set_num_threads(threads as i32);
    let mut model = session(&subject, threads)?;
    let [c, h, w] = subject.info.input_shape;
    let large = Tensor::randn([64, c as i64, h as i64, w as i64], (Kind::Float, Device::Cpu));
    let one = large.narrow(0, 0, 1).contiguous();
    let as_vec = |t: &Tensor| Vec::<f32>::try_from(&t.flatten(0, -1)).expect("f32 input");
    let (x64, x1) = (as_vec(&large), as_vec(&one));
    let (s64, s1) = ([64, c, h, w], [1, c, h, w]);

    let mut criterion = Criterion::default().configure_from_args().warm_up_time(Duration::from_secs(1));
    {
        let mut group = criterion.benchmark_group(format!("latency ({threads} threads)"));
        group.measurement_time(Duration::from_secs(3));
        group.bench_function("ort/batch1", |b| b.iter(|| model.run(&x1, s1).expect("ORT runs")));
        group.bench_function("libtorch/batch1", |b| {
            b.iter(|| tch::no_grad(|| subject.net.forward(&one, &subject.arch, Mode::EVAL)))
        });
        group.bench_function("ort/batch64", |b| b.iter(|| model.run(&x64, s64).expect("ORT runs")));
        group.bench_function("libtorch/batch64", |b| {
            b.iter(|| tch::no_grad(|| subject.net.forward(&large, &subject.arch, Mode::EVAL)))
        });
        group.finish();
    }
    criterion.final_summary();

    let (plan1, plan64) = if full {
        (Plan { warmup: 50, runs: 1000 }, Plan { warmup: 5, runs: 100 })
    } else {
        (Plan { warmup: 1, runs: 3 }, Plan { warmup: 1, runs: 2 })
    };
    // ONNX Runtime with the protocol of every latency pwsnas reports: fresh sessions.
    let ort = |threads: usize, input: &[f32], shape, plan| {
        let open = Box::new(|| session(&subject, threads));
        time_one(Protocol { sessions: 5, plan, min_session_ms: 0.0 }, Timed { open, input, shape })
    };
    let ort1 = ort(threads, &x1, s1, plan1)?;
    let torch1 = latency::libtorch(&subject.net, &subject.arch, &one, plan1)?;
    let ort64 = ort(threads, &x64, s64, plan64)?;
    let torch64 = latency::libtorch(&subject.net, &subject.arch, &large, plan64)?;
    println!("\n{} — {}, {threads} thread(s)", subject.name, pwsnas::host::cpu_model());
    println!(
        "{:<16} {:>5} {:>10} {:>10} {:>10} {:>10} {:>12}",
        "runtime", "batch", "min ms", "p50 ms", "p90 ms", "p99 ms", "images/s"
    );
    for (name, s) in [
        ("ONNX Runtime", &ort1),
        ("libtorch eager", &torch1),
        ("ONNX Runtime", &ort64),
        ("libtorch eager", &torch64),
    ] {
        println!(
            "{name:<16} {:>5} {:>10.4} {:>10.4} {:>10.4} {:>10.4} {:>12.0}",
            s.batch, s.min_ms, s.p50_ms, s.p90_ms, s.p99_ms, s.throughput_per_s
        );
    }
    let ratio = torch1.p50_ms / ort1.p50_ms;
    println!(
        "batch 1: ONNX Runtime {:.4} ms vs libtorch {:.4} ms (p50) = {ratio:.2}× ({} the 1.5× goal); batch 64: {:.2}×",
        ort1.p50_ms,
        torch1.p50_ms,
        if ratio >= 1.5 { "meets" } else { "MISSES" },
        torch64.p50_ms / ort64.p50_ms
    );
    for t in 1..=threads {
        let s = ort(t, &x1, s1, plan1)?;
        println!("ONNX Runtime batch 1 with {t} intra-op thread(s): p50 {:.4} ms", s.p50_ms);
    }
    Ok(())
}
