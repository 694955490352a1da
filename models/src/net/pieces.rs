//! Pieces of a network lowered alone, for latency tables.
//!
//! A latency table times, in the runtime a model is deployed to, every *piece* the inference graph
//! of a child can be made of — the parts every child has (stem, reductions, head; in `darts` each
//! cell's preprocessing and output concatenation), each op of each choice point at its real input
//! shape, and (`nb201`, `darts`) the sums at cell nodes — and predicts the latency of a child as the
//! sum over the pieces its graph contains. Each space owns both halves of
//! that contract, next to the lowering they describe, so that they cannot drift apart: its network's
//! [`Network::pieces`](super::Network::pieces) and
//! [`Network::piece_graph`](super::Network::piece_graph) give each piece as a graph of its own
//! (a piece that keeps its shape can be lowered as a chain of copies: timing chains of two lengths
//! and taking the difference removes the fixed cost of a runtime call), and its
//! [`SpaceDef::composition`](crate::space::SpaceDef::composition) lists the pieces, with their
//! counts, that [`Supernet::graph`](super::Supernet::graph) emits for a child's stand-alone network
//! (the graph `pwsnas export` lowers; `nb201`: see `crate::nb201::pieces` for the nodes its lowering
//! drops or shares, `darts`: `crate::darts::pieces`, whose pieces are those of a child's evaluation
//! network even when the network listing them is the search network). This module holds what the
//! spaces share: the piece keys and their names, and the chains.
//!
//! Where pieces are keyed: every cell of an `nb201` stage has the same shapes, so an op's piece is
//! keyed by its stage (it stands for that op on any edge of any cell of the stage); a `mobile` op is
//! keyed by its layer. In `darts` (see `crate::darts::pieces`) the ops at stride 1 are keyed by
//! their stage too (every edge of every cell of a stage, normal or reduction, that does not start at
//! a cell input of a reduction cell has the stage's shape), the ops at stride 2 by the reduction
//! cell that begins the stage, the node sums and the concatenation of a cell's output by the stage,
//! and the preprocessing of a cell input by its cell (its input shape and module depend on the cells
//! before it). Ops that emit no node (`none`, `skip_connect` at stride 1, `identity`) have no piece;
//! `skip_connect` at stride 2 is a FactorizedReduce and has one.
use std::fmt;
use std::str::FromStr;

use pwsnas_onnx::{Dim, Graph, GraphBuilder, Value};

use crate::error::ModelError;
use crate::op::Op;

/// One piece of a network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PieceKey {
    /// The stem.
    Stem,
    /// `nb201`: the reduction block before stage `s` (1 or 2).
    Reduction(usize),
    /// Everything after the last choice point: `nb201` BN-ReLU, global pooling and the classifier;
    /// `mobile` the 1×1 head conv, global pooling and the classifier; `darts` global pooling and
    /// the classifier.
    Head,
    /// An op where it sits: `nb201` the stage (any edge of any cell of it), `mobile` the layer,
    /// `darts` the stage (any edge at stride 1 of any cell of it).
    /// For `nb201`'s `nor_conv` ops, the conv alone: their ReLU is a piece of its own, since the
    /// convs of one value share it.
    Op { at: usize, op: Op },
    /// `darts`: an op at stride 2, on an edge out of a cell input of the reduction cell that begins
    /// stage `stage` (1 or 2); `skip_connect` there is a FactorizedReduce.
    Reduce { stage: usize, op: Op },
    /// `darts`: the preprocessing of input `input` (0 or 1) of cell `cell` (ReLU-1×1 conv-BN, or a
    /// FactorizedReduce for input 0 when the previous cell is a reduction cell).
    Preprocess { cell: usize, input: usize },
    /// `darts`: the concatenation of the four intermediate nodes of a cell of stage `stage` (its
    /// output).
    Concat { stage: usize },
    /// `nb201`: the ReLU in front of the `nor_conv` ops on one value in a cell of stage `stage`.
    Relu { stage: usize },
    /// `nb201`, `darts`: the node of a cell in stage `stage` that adds `terms` edge outputs (`Add`
    /// for two, `Sum` for more), or, with 0 terms, outputs zeros (`Clip` to 0). A node with one term
    /// emits nothing; every node of a `darts` child has two.
    Merge { stage: usize, terms: usize },
}

impl PieceKey {
    /// The forms of a piece's name, as [`PieceKey`]'s `Display` writes them: what an unknown name's
    /// error lists.
    pub const FORMS: [&'static str; 11] = [
        "stem",
        "head",
        "reduction<S>",
        "stage<S>/<op>",
        "stage<S>/relu",
        "stage<S>/sum<K>",
        "stage<S>/zeros",
        "stage<S>/concat",
        "reduce<S>/<op>",
        "cell<K>/pre<I>",
        "layer<L>/<op>",
    ];

    /// Whether `op` emits graph nodes when lowered (`none`, `skip_connect` and `identity` do not).
    pub fn op_emits_nodes(op: Op) -> bool {
        !matches!(op, Op::None | Op::SkipConnect | Op::Identity)
    }
}

/// `stem`, `reduction1`, `head`, `stage0/nor_conv_3x3`, `layer4/mb_k5_e6`, `stage1/relu`,
/// `stage2/sum3`, `stage0/zeros`, `stage1/concat`, `reduce2/skip_connect`, `cell3/pre0`. The site
/// prefix of an op is `stage` in `nb201` and `darts` and `layer` in `mobile`; [`FromStr`] reads
/// either, so the name alone is the key.
impl fmt::Display for PieceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PieceKey::Stem => f.write_str("stem"),
            PieceKey::Reduction(s) => write!(f, "reduction{s}"),
            PieceKey::Head => f.write_str("head"),
            PieceKey::Op { at, op: op @ Op::MbConv { .. } } => write!(f, "layer{at}/{op}"),
            PieceKey::Op { at, op } => write!(f, "stage{at}/{op}"),
            PieceKey::Relu { stage } => write!(f, "stage{stage}/relu"),
            PieceKey::Merge { stage, terms: 0 } => write!(f, "stage{stage}/zeros"),
            PieceKey::Merge { stage, terms } => write!(f, "stage{stage}/sum{terms}"),
            PieceKey::Concat { stage } => write!(f, "stage{stage}/concat"),
            PieceKey::Reduce { stage, op } => write!(f, "reduce{stage}/{op}"),
            PieceKey::Preprocess { cell, input } => write!(f, "cell{cell}/pre{input}"),
        }
    }
}

impl FromStr for PieceKey {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ModelError::UnknownPiece { name: s.to_string(), expected: PieceKey::FORMS.join(", ") };
        let index = |digits: &str| digits.parse::<usize>().map_err(|_| bad());
        match s {
            "stem" => return Ok(PieceKey::Stem),
            "head" => return Ok(PieceKey::Head),
            _ => {}
        }
        if let Some(rest) = s.strip_prefix("reduction") {
            return Ok(PieceKey::Reduction(index(rest)?));
        }
        let (site, what) = s.split_once('/').ok_or_else(bad)?;
        if let Some(d) = site.strip_prefix("cell") {
            let input = what.strip_prefix("pre").ok_or_else(bad)?;
            return Ok(PieceKey::Preprocess { cell: index(d)?, input: index(input)? });
        }
        if let Some(d) = site.strip_prefix("reduce") {
            // At stride 2 `skip_connect` emits nodes too (a FactorizedReduce).
            let op: Op = what.parse().map_err(|_| bad())?;
            if matches!(op, Op::None | Op::Identity) {
                return Err(bad());
            }
            return Ok(PieceKey::Reduce { stage: index(d)?, op });
        }
        let at = match (site.strip_prefix("stage"), site.strip_prefix("layer")) {
            (Some(d), _) | (_, Some(d)) => index(d)?,
            _ => return Err(bad()),
        };
        if site.starts_with("stage") {
            if what == "concat" {
                return Ok(PieceKey::Concat { stage: at });
            }
            if what == "relu" {
                return Ok(PieceKey::Relu { stage: at });
            }
            if what == "zeros" {
                return Ok(PieceKey::Merge { stage: at, terms: 0 });
            }
            if let Some(n) = what.strip_prefix("sum") {
                return Ok(PieceKey::Merge { stage: at, terms: index(n)? });
            }
        }
        let op: Op = what.parse().map_err(|_| bad())?;
        if !PieceKey::op_emits_nodes(op) {
            return Err(bad());
        }
        Ok(PieceKey::Op { at, op })
    }
}

/// A piece and the facts its measurement needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    pub key: PieceKey,
    /// `[channels, height, width]` of its input.
    pub input: [usize; 3],
    /// Whether its output has the shape of its input, so that copies of it can be chained.
    pub chainable: bool,
}

/// Counts of pieces in the order they were first added: what a space's
/// [`SpaceDef::composition`](crate::space::SpaceDef::composition) builds.
#[derive(Default)]
pub(crate) struct Tally(Vec<(PieceKey, usize)>);

impl Tally {
    pub(crate) fn add(&mut self, key: PieceKey, n: usize) {
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some((_, count)) => *count += n,
            None => self.0.push((key, n)),
        }
    }

    pub(crate) fn into_vec(self) -> Vec<(PieceKey, usize)> {
        self.0
    }
}

/// A graph with input shape `[batch] + input` whose body `lower` emits once per copy, each copy
/// reading the previous one's output; `output` is the body's output shape without the batch.
pub(crate) fn chain_graph(
    name: &str,
    input: [usize; 3],
    output: &[usize],
    copies: usize,
    mut lower: impl FnMut(&mut GraphBuilder, &Value) -> Value,
) -> Graph {
    assert!(copies >= 1, "a chain of {name} needs at least one copy");
    let dims =
        |shape: &[usize]| std::iter::once(Dim::Batch).chain(shape.iter().map(|&d| Dim::Fixed(d))).collect();
    let mut g = GraphBuilder::new(name, "input", dims(&input));
    let mut x = g.input();
    for _ in 0..copies {
        x = lower(&mut g, &x);
    }
    g.finish(&x, dims(output))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn piece_names_round_trip() {
        let keys = [
            PieceKey::Stem,
            PieceKey::Reduction(2),
            PieceKey::Head,
            PieceKey::Op { at: 1, op: Op::NorConv3x3 },
            PieceKey::Op { at: 0, op: Op::AvgPool3x3 },
            PieceKey::Op { at: 12, op: Op::MbConv { kernel: 5, expand: 6 } },
            PieceKey::Merge { stage: 2, terms: 3 },
            PieceKey::Merge { stage: 0, terms: 0 },
            PieceKey::Relu { stage: 1 },
            PieceKey::Concat { stage: 2 },
            PieceKey::Reduce { stage: 1, op: Op::SkipConnect },
            PieceKey::Reduce { stage: 2, op: Op::DilConv { kernel: 5 } },
            PieceKey::Op { at: 1, op: Op::SepConv { kernel: 3 } },
            PieceKey::Preprocess { cell: 7, input: 0 },
            PieceKey::Preprocess { cell: 0, input: 1 },
        ];
        for key in keys {
            assert_eq!(key.to_string().parse::<PieceKey>().unwrap(), key, "{key}");
        }
        for bad in [
            "",
            "stage",
            "stage0",
            "stage0/none",
            "layer1/identity",
            "stagex/sum2",
            "tail",
            "reduction",
            "reduce1/none",
            "reduce1/identity",
            "reduce/max_pool_3x3",
            "stage1/skip_connect",
            "cell2/post0",
            "cell2/pre",
            "cellx/pre1",
        ] {
            assert!(bad.parse::<PieceKey>().is_err(), "{bad}");
        }
        let err = "tail".parse::<PieceKey>().unwrap_err().to_string();
        assert!(PieceKey::FORMS.iter().all(|form| err.contains(form)), "{err}");
    }
}
