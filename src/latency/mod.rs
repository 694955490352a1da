//! Latency-aware search: the latency a child will have in the runtime it is deployed to (ONNX
//! Runtime), predicted from a table of measured pieces.
//!
//! - [`measure`] times every piece of a space's network in ONNX Runtime ([`measure::build`]);
//! - [`table`] is the table file, its cache (reused when space and machine match, rebuilt
//!   otherwise) and [`table::obtain`], which every user of a table calls;
//! - [`show`] is `pwsnas latency-table`'s output;
//! - [`check`] is `pwsnas bench latency`: predictions against measured children;
//! - [`Predictor`] (here) turns a table into the predicted latency of any child: the run overhead,
//!   plus the entry of every piece its ONNX graph contains (the space's `SpaceDef::composition`,
//!   which knows the dead nodes the export drops), plus the table's calibration correction, and
//!   never below the run overhead: the correction is a median of whole children's measured minus
//!   summed time and is often about minus the overhead, so on a tiny space the sum for the fastest
//!   child can come out at or below zero, which no network runs in.
//!
//! Why predicted and not measured per child: a search rejects children by latency before evaluating
//! them, hundreds of times; a prediction is a sum of a few numbers, while measuring a child means
//! exporting it and timing hundreds of runs. `pwsnas export` measures the chosen child and reports
//! how far the prediction was off.
pub mod check;
pub mod measure;
pub mod show;
pub mod table;

use std::collections::HashMap;

use anyhow::{bail, Context, Result};
use pwsnas_models::{Arch, PieceKey, SpaceKind};

use table::{check_space, LatencyTable};

/// ONNX Runtime intra-op threads when none are given: libtorch's default thread count, as
/// `pwsnas export` uses, so that search-time predictions and export-time measurements agree.
pub fn default_threads() -> usize {
    tch::get_num_threads().max(1) as usize
}

/// Predicted latencies (milliseconds, batch 1) of the children of one space from a latency table.
#[derive(Clone, Debug)]
pub struct Predictor {
    kind: SpaceKind,
    /// The part every child has: run overhead plus the calibration correction.
    base_ms: f64,
    /// The run overhead alone: no child's prediction is below it.
    floor_ms: f64,
    entries: HashMap<PieceKey, f64>,
}

impl Predictor {
    /// The predictor of `table`, which must be for `kind` and have an entry for every piece a child
    /// of `kind` can contain.
    pub fn new(table: &LatencyTable, kind: &SpaceKind) -> Result<Predictor> {
        check_space(table, kind)?;
        let mut entries = HashMap::new();
        for e in &table.entries {
            let key: PieceKey =
                e.piece.parse().with_context(|| format!("latency table entry '{}'", e.piece))?;
            if !(e.ms.is_finite() && e.ms >= 0.0) {
                bail!("latency table entry '{}' has {} ms: expected a number ≥ 0", e.piece, e.ms);
            }
            entries.insert(key, e.ms);
        }
        // Every piece a child can contain occurs in one of these (see `probe_children`).
        for arch in probe_children(kind) {
            for (key, _) in kind.composition(&arch) {
                if !entries.contains_key(&key) {
                    bail!(
                        "the latency table has no entry for {key}: rebuild it with `pwsnas latency-table ... --rebuild`"
                    );
                }
            }
        }
        let base_ms = table.overhead_ms + table.correction_ms;
        if !base_ms.is_finite() {
            bail!("the latency table's overhead_ms or correction_ms is not a number");
        }
        let floor_ms = table.overhead_ms.max(0.0);
        Ok(Predictor { kind: kind.clone(), base_ms, floor_ms, entries })
    }

    /// Predicted latency of `arch` in milliseconds: [`Predictor::summed_ms`], but never below the
    /// run overhead ([`Predictor::floor_ms`]).
    pub fn predict_ms(&self, arch: &Arch) -> f64 {
        self.summed_ms(arch).max(self.floor_ms)
    }

    /// The sum of `arch`'s pieces plus [`Predictor::base_ms`], without the floor: linear in the
    /// pieces, which is what a model of latency per choice point (ProxylessNAS's) decomposes.
    pub fn summed_ms(&self, arch: &Arch) -> f64 {
        self.breakdown(arch).iter().map(|(_, n, ms)| *n as f64 * ms).sum::<f64>() + self.base_ms
    }

    /// The pieces of `arch` with their counts and entries (milliseconds each), in network order;
    /// [`Predictor::summed_ms`] is their sum plus [`Predictor::base_ms`].
    pub fn breakdown(&self, arch: &Arch) -> Vec<(PieceKey, usize, f64)> {
        self.kind
            .composition(arch)
            .into_iter()
            .map(|(key, n)| {
                let ms = self.entries.get(&key).copied();
                (
                    key,
                    n,
                    ms.expect("Predictor::new checked that every piece a child can contain has an entry"),
                )
            })
            .collect()
    }

    /// Run overhead plus calibration correction: the part of every prediction no piece accounts for.
    pub fn base_ms(&self) -> f64 {
        self.base_ms
    }

    /// The run overhead: the least any prediction is.
    pub fn floor_ms(&self) -> f64 {
        self.floor_ms
    }
}

/// Children that together contain every piece any child can contain: child `i` picks op
/// `i mod n` of every choice point, where the space's children are not paths at the choice points
/// its child keeps (`SpaceDef::child_of_path`). In `nb201` the child of an op that emits nodes has
/// every node live with as many terms as inputs (every sum), and the child of `none` has the zeros
/// node; in `mobile` every (layer, op) occurs; in `darts` every op occurs at both strides of the
/// reduction cells and at stride 1 in every stage.
fn probe_children(kind: &SpaceKind) -> Vec<Arch> {
    let full = kind.full_ops();
    let n = full.iter().map(Vec::len).max().unwrap_or(0);
    (0..n)
        .map(|i| kind.child_of_path(&Arch { ops: full.iter().map(|ops| ops[i % ops.len()]).collect() }))
        .collect()
}

#[cfg(test)]
mod tests {
    use pwsnas_models::{Nb201Params, Space, Supernet};

    use super::table::{Entry, Machine, Method, SpaceId, Timing, TABLE_FORMAT};
    use super::*;

    fn kind() -> SpaceKind {
        SpaceKind::new(Nb201Params {
            nodes: 3,
            channels: 4,
            cells_per_stage: 2,
            input_size: 8,
            input_channels: 1,
            classes: 4,
            ..Nb201Params::default()
        })
    }

    /// A table with 1 ms per op, 0.1 ms per sum, 0.01 ms per ReLU, 0.5 ms per fixed part.
    fn table() -> LatencyTable {
        let net = Supernet::new(&Space::full(kind()), tch::Device::Cpu);
        let entries = net
            .pieces()
            .iter()
            .map(|p| Entry {
                piece: p.key.to_string(),
                input: p.input,
                method: Timing::Chain,
                ms: match p.key {
                    PieceKey::Op { .. } => 1.0,
                    PieceKey::Merge { .. } => 0.1,
                    PieceKey::Relu { .. } => 0.01,
                    _ => 0.5,
                },
                timed_ms: Vec::new(),
            })
            .collect();
        LatencyTable {
            format: TABLE_FORMAT,
            space: SpaceId::of(&kind()),
            machine: Machine {
                cpu: "test".into(),
                gpu: None,
                threads: 1,
                ep: crate::ort_runtime::Ep::Cpu,
                onnxruntime: "1.31.1".into(),
            },
            built_at: 0,
            busy_elsewhere: None,
            session_spread: None,
            method: Method { warmup: 0, runs: 1, chain: 2, description: String::new() },
            overhead_ms: 0.25,
            entries,
            calibration: Vec::new(),
            correction_ms: -0.05,
        }
    }

    #[test]
    fn a_prediction_is_the_sum_of_the_pieces_of_the_child() {
        let p = Predictor::new(&table(), &kind()).unwrap();
        let arch = |s: &str| kind().parse_arch(s).unwrap();
        // Fixed: stem, 2 reductions, head = 2 ms; base 0.2 ms.
        let empty = arch("|none~0|+|none~0|none~1|");
        // Each of the 3 stages × 2 cells has one zeros node.
        assert!((p.predict_ms(&empty) - (2.2 + 6.0 * 0.1)).abs() < 1e-12);
        // Per cell: two convs and a pool, a sum, the ReLUs of nodes 0 and 1 (node 1's conv feeds the output).
        let full = arch("|nor_conv_3x3~0|+|avg_pool_3x3~0|nor_conv_1x1~1|");
        assert!((p.predict_ms(&full) - (2.2 + 6.0 * (3.0 + 0.1 + 0.02))).abs() < 1e-12);
        // The two convs of node 0 share its ReLU: three convs, two ReLUs, a sum.
        let shared = arch("|nor_conv_3x3~0|+|nor_conv_1x1~0|nor_conv_1x1~1|");
        assert!((p.predict_ms(&shared) - (2.2 + 6.0 * (3.0 + 0.02 + 0.1))).abs() < 1e-12);
        // Node 1 is dead (its only outgoing edge is none): its conv is not counted.
        let dead = arch("|nor_conv_3x3~0|+|skip_connect~0|none~1|");
        assert!((p.predict_ms(&dead) - 2.2).abs() < 1e-12);
        assert_eq!(p.breakdown(&dead).iter().filter(|(k, _, _)| matches!(k, PieceKey::Op { .. })).count(), 0);
        assert!((p.base_ms() - 0.2).abs() < 1e-12);
    }

    /// A correction that takes more than the pieces add (a tiny space timed under load) would
    /// predict the empty child at or below zero: the prediction stops at the run overhead.
    #[test]
    fn a_prediction_is_never_below_the_run_overhead() {
        let mut t = table();
        t.correction_ms = -10.0;
        let p = Predictor::new(&t, &kind()).unwrap();
        let empty = kind().parse_arch("|none~0|+|none~0|none~1|").unwrap();
        assert!(p.summed_ms(&empty) < 0.0);
        assert_eq!(p.predict_ms(&empty), 0.25);
        assert_eq!(p.floor_ms(), 0.25);
    }

    #[test]
    fn incomplete_or_foreign_tables_are_refused() {
        let mut t = table();
        t.entries.retain(|e| e.piece != "stage1/avg_pool_3x3");
        let err = Predictor::new(&t, &kind()).unwrap_err().to_string();
        assert!(err.contains("no entry for stage1/avg_pool_3x3"), "{err}");
        let other = SpaceKind::by_name("nb201").unwrap();
        let err = Predictor::new(&table(), &other).unwrap_err().to_string();
        assert!(err.contains("the latency table is for nb201 with params"), "{err}");
        let mut t = table();
        t.entries[0].piece = "tail".into();
        let err = format!("{:#}", Predictor::new(&t, &kind()).unwrap_err());
        assert!(err.contains("unknown network piece 'tail'"), "{err}");
    }
}
