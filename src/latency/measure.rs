//! Measuring a latency table: every piece of a space's network (`pwsnas_models::PieceKey`: stem,
//! reductions, head, each op of each choice point, node sums; in `darts` also each cell's
//! preprocessing and output concatenation) lowered alone at its real input shape,
//! exported to ONNX with BatchNorm folded and rewritten as `pwsnas export` does, and timed in ONNX Runtime at batch
//! 1 with the [`crate::timing::Protocol`] every ONNX Runtime latency of pwsnas uses (fresh sessions
//! taking turns through all models, each warmed up; the median of the session medians).
//!
//! Why not simply time each piece alone: the pieces of a demo-sized child (about 0.1 ms in all)
//! take from a fraction of a microsecond to about 15 µs each, while every call of ONNX Runtime has
//! a fixed cost of a few microseconds (binding the input, allocating and copying the output) that a
//! whole model pays once, not once per piece. Timed alone, the cheap pieces would be mostly that
//! fixed cost. Hence:
//! - a piece that keeps its shape (every cell op and node sum, same-shape MBConv layers) is timed as
//!   a chain of 1 and of `chain` copies; its entry is the difference divided by `chain - 1`, free of
//!   the per-call cost;
//! - the *run overhead* (one call with next to no work) is a chain of ReLUs at the network's input
//!   extrapolated to zero ReLUs; a piece that changes its shape (stem, reductions, head, strided
//!   layers) is timed alone and the run overhead at its input shape is subtracted;
//! - a prediction adds the run overhead once, plus a *correction*: a few whole children (one op per
//!   choice point in rotation, so every op occurs, and a few drawn at random) are timed as complete
//!   models, and the median of measured minus (overhead + pieces) is what running the pieces
//!   together adds or saves (fusions across pieces, shared inputs, memory traffic). It is a table
//!   entry like the others.
//!
//! Entries are clamped at 0: a difference of two medians can come out a hair below zero for a piece
//! that costs next to nothing.
use std::collections::HashMap;

use anyhow::Result;
use indicatif::ProgressBar;
use pwsnas_models::{Arch, Space, SpaceKind, Supernet};
use pwsnas_onnx::{Dim, Graph, GraphBuilder, Lowering, Metadata};
use rand::SeedableRng;
use tch::Device;

use super::table::{CalibrationChild, Entry, LatencyTable, Machine, Method, SpaceId, Timing, TABLE_FORMAT};
use crate::host::CpuClock;
use crate::ort_runtime::{Runtime, SessionConfig};
use crate::progress::Progress;
use crate::timing::sessions::{time_all, Timed};
use crate::timing::{percentile, Plan, Protocol};

/// How to measure.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BuildOptions {
    /// Sessions, warm-up and timed runs of every model.
    pub timing: Protocol,
    /// Copies in the long chain (at least 2).
    pub chain: usize,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            timing: Protocol { sessions: 5, plan: Plan { warmup: 20, runs: 200 }, min_session_ms: 0.0 },
            chain: 8,
        }
    }
}

/// Models to time: the ONNX bytes of each with its input shape, timed together by [`Bench::medians`].
struct Bench<'a> {
    rt: &'a Runtime,
    cfg: SessionConfig,
    models: Vec<(String, Vec<u8>, [usize; 3])>,
}

impl Bench<'_> {
    /// Adds `graph` (prepared as `pwsnas export` prepares a model) with input `[1] + input`; returns
    /// its index.
    fn add(&mut self, mut graph: Graph, input: [usize; 3]) -> usize {
        graph.prepare(Lowering::Optimized);
        let bytes = graph.to_onnx_bytes(&Metadata::new().with("purpose", "pwsnas latency table"));
        self.models.push((format!("the latency-table model {}", graph.name()), bytes, input));
        self.models.len() - 1
    }

    /// The batch-1 latency of every model, timed together with `protocol` (sessions of the models
    /// take turns, so a burst of load from elsewhere shifts one session of every model instead of
    /// the whole measurement of a few), and how much it varied from one fresh session to the next.
    fn medians(&self, protocol: Protocol, bar: &ProgressBar) -> Result<Timings> {
        // Values of both signs, so that ReLUs and pools do real work.
        let inputs: Vec<Vec<f32>> = self
            .models
            .iter()
            .map(|(_, _, [c, h, w])| (0..c * h * w).map(|i| ((i as f32) * 0.7).sin()).collect())
            .collect();
        let mut models: Vec<Timed<'_>> = self
            .models
            .iter()
            .zip(&inputs)
            .map(|((what, bytes, [c, h, w]), x)| Timed {
                open: Box::new(move || self.rt.session_from_bytes(bytes, what, self.cfg)),
                input: x,
                shape: [1, *c, *h, *w],
            })
            .collect();
        bar.set_length((protocol.sessions.max(1) * self.models.len()) as u64);
        let stats = time_all(protocol, &mut models, || bar.inc(1))?;
        Ok(Timings {
            medians: stats.iter().map(|s| s.p50_ms).collect(),
            spreads: stats.iter().map(|s| s.noise.as_ref().map_or(0.0, |n| n.spread)).collect(),
        })
    }
}

/// What [`Bench::medians`] measured, per model.
struct Timings {
    /// The latency.
    medians: Vec<f64>,
    /// How much its median varied from one fresh session to the next: slowest / fastest − 1.
    spreads: Vec<f64>,
}

/// `arch` as `pwsnas export` lowers it: its stand-alone network (in `darts` the evaluation network,
/// whose pools have no BN after them, unlike the search network's).
fn child_graph(kind: &SpaceKind, arch: &Arch) -> Graph {
    Supernet::standalone(kind, arch, Device::Cpu).graph(arch, "pwsnas_child")
}

/// The batch-1 median latency (ms) of each of `children` run whole, and how much it varied from one
/// fresh session to the next (slowest / fastest − 1), timed as a table times its calibration
/// children: what `pwsnas bench latency` checks the table's predictions against.
pub fn time_children(
    rt: &Runtime,
    cfg: SessionConfig,
    kind: &SpaceKind,
    children: &[Arch],
    protocol: Protocol,
    progress: &Progress,
) -> Result<Vec<(f64, f64)>> {
    let mut bench = Bench { rt, cfg, models: Vec::new() };
    for arch in children {
        bench.add(child_graph(kind, arch), kind.input_shape());
    }
    let bar = progress.bar(1, "timing children");
    let Timings { medians, spreads } = bench.medians(protocol, &bar)?;
    bar.finish_and_clear();
    Ok(medians.into_iter().zip(spreads).collect())
}

/// A chain of `copies` ReLUs on `[batch] + input`: the cheapest model of a given shape.
fn relu_chain(input: [usize; 3], copies: usize) -> Graph {
    let dims: Vec<Dim> = std::iter::once(Dim::Batch).chain(input.iter().map(|&d| Dim::Fixed(d))).collect();
    let mut g = GraphBuilder::new("pwsnas_relu_chain", "input", dims.clone());
    let mut x = g.input();
    for _ in 0..copies {
        x = g.relu(&x);
    }
    g.finish(&x, dims)
}

/// Random children timed whole for the correction, besides the rotation children.
const RANDOM_CHILDREN: usize = 10;

/// The children timed whole for the correction: child `i < n` picks, at choice point `cp`, op
/// `(i + cp) mod n` of the choice point's ops (so every op occurs at every choice point and the
/// children mix cheap and costly ops; where the space's children are not paths, the choice points
/// its child keeps, `SpaceDef::child_of_path`), then [`RANDOM_CHILDREN`] children drawn uniformly
/// with a fixed seed (so every table of a space uses the same children).
pub fn calibration_children(kind: &SpaceKind) -> Vec<Arch> {
    let full = kind.full_ops();
    let n = full.iter().map(Vec::len).max().unwrap_or(0);
    let mut children: Vec<Arch> = (0..n)
        .map(|i| Arch { ops: full.iter().enumerate().map(|(cp, ops)| ops[(i + cp) % ops.len()]).collect() })
        .map(|path| kind.child_of_path(&path))
        .collect();
    let space = Space::full(kind.clone());
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    children.extend((0..RANDOM_CHILDREN).map(|_| space.sample_child(&mut rng)));
    children
}

/// Measures the table of `kind` (see the module docs).
pub fn build(
    rt: &Runtime,
    cfg: SessionConfig,
    kind: &SpaceKind,
    space: &SpaceId,
    machine: Machine,
    opts: BuildOptions,
    progress: &Progress,
) -> Result<LatencyTable> {
    let k = opts.chain.max(2);
    let clock = CpuClock::now();
    let net = Supernet::new(&Space::full(kind.clone()), Device::Cpu);
    let pieces = net.pieces();
    let children = calibration_children(kind);
    let mut bench = Bench { rt, cfg, models: Vec::new() };

    // Every model first: the run overhead at each input shape a piece timed alone has (a ReLU chain
    // of 1 and of k), each piece (1 copy, and k for the chainable), each calibration child.
    let mut overhead_models: Vec<([usize; 3], usize, usize)> = Vec::new();
    for shape in
        std::iter::once(kind.input_shape()).chain(pieces.iter().filter(|p| !p.chainable).map(|p| p.input))
    {
        if !overhead_models.iter().any(|(s, _, _)| *s == shape) {
            let one = bench.add(relu_chain(shape, 1), shape);
            let long = bench.add(relu_chain(shape, k), shape);
            overhead_models.push((shape, one, long));
        }
    }
    let mut piece_models = Vec::with_capacity(pieces.len());
    for piece in &pieces {
        let one = bench.add(net.piece_graph(piece.key, 1), piece.input);
        let long = piece.chainable.then(|| bench.add(net.piece_graph(piece.key, k), piece.input));
        piece_models.push((one, long));
    }
    let child_models: Vec<usize> =
        children.iter().map(|arch| bench.add(child_graph(kind, arch), kind.input_shape())).collect();

    let bar = progress.bar(1, "latency table");
    let Timings { medians: t, spreads } = bench.medians(opts.timing, &bar)?;
    bar.finish_and_clear();

    let per_copy = |one: usize, long: usize| ((t[long] - t[one]) / (k - 1) as f64).max(0.0);
    let overhead = |shape: [usize; 3]| {
        let &(_, one, long) = overhead_models.iter().find(|(s, _, _)| *s == shape).expect("measured above");
        (t[one] - per_copy(one, long)).max(0.0)
    };
    let overhead_ms = overhead(kind.input_shape());
    let entries: Vec<Entry> = pieces
        .iter()
        .zip(&piece_models)
        .map(|(piece, &(one, long))| match long {
            Some(long) => Entry {
                piece: piece.key.to_string(),
                input: piece.input,
                method: Timing::Chain,
                ms: per_copy(one, long),
                timed_ms: vec![t[one], t[long]],
            },
            None => Entry {
                piece: piece.key.to_string(),
                input: piece.input,
                method: Timing::Alone,
                ms: (t[one] - overhead(piece.input)).max(0.0),
                timed_ms: vec![t[one]],
            },
        })
        .collect();

    let ms_of: HashMap<String, f64> = entries.iter().map(|e| (e.piece.clone(), e.ms)).collect();
    let calibration: Vec<CalibrationChild> = children
        .iter()
        .zip(&child_models)
        .map(|(arch, &m)| CalibrationChild {
            arch: kind.format_arch(arch),
            measured_ms: t[m],
            pieces_ms: overhead_ms
                + kind
                    .composition(arch)
                    .iter()
                    .map(|(key, n)| *n as f64 * ms_of[&key.to_string()])
                    .sum::<f64>(),
        })
        .collect();
    let mut residuals: Vec<f64> = calibration.iter().map(|c| c.measured_ms - c.pieces_ms).collect();
    residuals.sort_by(f64::total_cmp);
    let correction_ms = if residuals.is_empty() { 0.0 } else { percentile(&residuals, 50.0) };
    let mut child_spreads: Vec<f64> = child_models.iter().map(|&m| spreads[m]).collect();
    child_spreads.sort_by(f64::total_cmp);
    let session_spread = (!child_spreads.is_empty()).then(|| percentile(&child_spreads, 50.0));
    Ok(LatencyTable {
        format: TABLE_FORMAT,
        space: space.clone(),
        machine,
        built_at: crate::run::now(),
        busy_elsewhere: clock.and_then(|c| c.busy_elsewhere()),
        session_spread,
        method: Method {
            warmup: opts.timing.plan.warmup,
            runs: opts.timing.plan.runs,
            chain: k,
            description: format!(
                "ONNX Runtime at batch 1; each model's latency is the median over {} fresh sessions (taking turns through all models) of the median of its runs in that session. \
                 chain: (t({k} copies) - t(1 copy)) / {}; alone: t(piece) minus the run overhead at its input shape; \
                 overhead: a ReLU chain extrapolated to zero ReLUs; correction: median over whole calibration \
                 children of measured - (overhead + pieces)",
                opts.timing.sessions,
                k - 1
            ),
        },
        overhead_ms,
        entries,
        calibration,
        correction_ms,
    })
}
