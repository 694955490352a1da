//! Pieces of a network lowered alone, for latency tables.
//!
//! A latency table times, in the runtime a model is deployed to, every *piece* the inference graph
//! of a child can be made of — the parts every child has (stem, reductions, head), each op of each
//! choice point at its real input shape, and (`nb201`) the sums at cell nodes — and predicts the
//! latency of a child as the sum over the pieces its graph contains. This module owns both halves of
//! that contract, next to the lowering they describe, so that they cannot drift apart:
//! [`Supernet::pieces`](super::Supernet::pieces) and
//! [`Supernet::piece_graph`](super::Supernet::piece_graph) give each piece as a graph of its own
//! (a piece that keeps its shape can be lowered as a chain of copies: timing chains of two lengths
//! and taking the difference removes the fixed cost of a runtime call), and [`composition`] lists the
//! pieces, with their counts, that [`Supernet::graph`](super::Supernet::graph) emits for a child:
//! an `nb201` node whose every outgoing edge is `none` is dropped from the graph together with the
//! ops feeding it, and a value a cell would compute twice (an op without weights on a value it
//! was already applied to, directly or through `skip_connect`; a second zeros node or sum of the
//! same terms) is computed once.
//!
//! Where pieces are keyed: every cell of an `nb201` stage has the same shapes, so an op's piece is
//! keyed by its stage (it stands for that op on any edge of any cell of the stage); a `mobile` op is
//! keyed by its layer. Ops that emit no node (`none`, `skip_connect`, `identity`) have no piece.
use std::fmt;
use std::str::FromStr;

use pwsnas_onnx::{Dim, Graph, GraphBuilder, Value};

use crate::error::ModelError;
use crate::nb201::Nb201Params;
use crate::op::Op;
use crate::space::{Arch, SpaceKind};

/// One piece of a network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PieceKey {
    /// The stem.
    Stem,
    /// `nb201`: the reduction block before stage `s` (1 or 2).
    Reduction(usize),
    /// Everything after the last choice point: `nb201` BN-ReLU, global pooling and the classifier;
    /// `mobile` the 1×1 head conv, global pooling and the classifier.
    Head,
    /// An op where it sits: `nb201` the stage (any edge of any cell of it), `mobile` the layer.
    /// For `nb201`'s `nor_conv` ops, the conv alone: their ReLU is a piece of its own, since the
    /// convs of one value share it.
    Op { at: usize, op: Op },
    /// `nb201`: the ReLU in front of the `nor_conv` ops on one value in a cell of stage `stage`.
    Relu { stage: usize },
    /// `nb201`: the node of a cell in stage `stage` that adds `terms` edge outputs (`Add` for two,
    /// `Sum` for more), or, with 0 terms, outputs zeros (`Clip` to 0). A node with one term emits
    /// nothing.
    Merge { stage: usize, terms: usize },
}

impl PieceKey {
    /// Whether `op` emits graph nodes when lowered (`none`, `skip_connect` and `identity` do not).
    pub fn op_emits_nodes(op: Op) -> bool {
        !matches!(op, Op::None | Op::SkipConnect | Op::Identity)
    }
}

/// `stem`, `reduction1`, `head`, `stage0/nor_conv_3x3`, `layer4/mb_k5_e6`, `stage1/relu`,
/// `stage2/sum3`, `stage0/zeros`. The site prefix is `stage` in `nb201` and `layer` in `mobile`; [`FromStr`] reads
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
        }
    }
}

impl FromStr for PieceKey {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ModelError::UnknownPiece(s.to_string());
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
        let at = match (site.strip_prefix("stage"), site.strip_prefix("layer")) {
            (Some(d), _) | (_, Some(d)) => index(d)?,
            _ => return Err(bad()),
        };
        if site.starts_with("stage") {
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

/// The pieces of the graph [`Supernet::graph`](super::Supernet::graph) lowers for `arch`, each with
/// the number of times it occurs, in network order (stem first, head last).
pub fn composition(kind: &SpaceKind, arch: &Arch) -> Vec<(PieceKey, usize)> {
    let mut out: Vec<(PieceKey, usize)> = Vec::new();
    let mut add = |key: PieceKey, n: usize| match out.iter_mut().find(|(k, _)| *k == key) {
        Some((_, count)) => *count += n,
        None => out.push((key, n)),
    };
    match kind {
        SpaceKind::Nb201(p) => {
            add(PieceKey::Stem, 1);
            let cell = nb201_cell(p, &arch.ops);
            for stage in 0..3 {
                if stage > 0 {
                    add(PieceKey::Reduction(stage), 1);
                }
                for expr in &cell {
                    let key = match expr {
                        Expr::Input => continue,
                        Expr::Relu { .. } => PieceKey::Relu { stage },
                        Expr::Zeros => PieceKey::Merge { stage, terms: 0 },
                        Expr::Sum(terms) => PieceKey::Merge { stage, terms: terms.len() },
                        Expr::Op { op, .. } => PieceKey::Op { at: stage, op: *op },
                    };
                    add(key, p.cells_per_stage);
                }
            }
        }
        SpaceKind::Mobile(_) => {
            add(PieceKey::Stem, 1);
            for (l, &op) in arch.ops.iter().enumerate().filter(|(_, &op)| PieceKey::op_emits_nodes(op)) {
                add(PieceKey::Op { at: l, op }, 1);
            }
        }
    }
    add(PieceKey::Head, 1);
    out
}

/// A value computed in an `nb201` cell, by what computes it: equal expressions are one value, as in
/// the lowering, which computes nothing twice.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Expr {
    /// The cell input.
    Input,
    /// Zeros shaped like the cell input (a node whose inputs are all `none`).
    Zeros,
    /// The ReLU of a value, in front of `nor_conv` ops.
    Relu { src: usize },
    /// An op on a value; ops with weights are told apart by their edge.
    Op { op: Op, edge: Option<usize>, src: usize },
    /// The sum of values, in order.
    Sum(Vec<usize>),
}

/// The values one `nb201` cell of child `ops` computes that its output depends on (the lowering
/// drops the rest), each once.
fn nb201_cell(p: &Nb201Params, ops: &[Op]) -> Vec<Expr> {
    let mut exprs: Vec<Expr> = Vec::new();
    let mut intern = |e: Expr| match exprs.iter().position(|x| *x == e) {
        Some(id) => id,
        None => {
            exprs.push(e);
            exprs.len() - 1
        }
    };
    let mut nodes = vec![intern(Expr::Input)];
    for j in 1..p.nodes {
        let mut terms = Vec::new();
        for (i, &src) in nodes.iter().enumerate() {
            let e = p.edge_index(j, i);
            match ops[e] {
                Op::None => {}
                op if !PieceKey::op_emits_nodes(op) => terms.push(src),
                op @ (Op::NorConv1x1 | Op::NorConv3x3) => {
                    let relu = intern(Expr::Relu { src });
                    terms.push(intern(Expr::Op { op, edge: Some(e), src: relu }));
                }
                op => terms.push(intern(Expr::Op { op, edge: op.has_weights().then_some(e), src })),
            }
        }
        let node = match terms.len() {
            0 => intern(Expr::Zeros),
            1 => terms[0],
            _ => intern(Expr::Sum(terms)),
        };
        nodes.push(node);
    }
    // What the output depends on: walk back from it (inputs have lower ids than their users).
    let mut needed = vec![false; exprs.len()];
    needed[*nodes.last().expect("a cell has an output node")] = true;
    for id in (0..exprs.len()).rev() {
        if !needed[id] {
            continue;
        }
        match &exprs[id] {
            Expr::Op { src, .. } | Expr::Relu { src } => needed[*src] = true,
            Expr::Sum(terms) => terms.iter().for_each(|&t| needed[t] = true),
            Expr::Input | Expr::Zeros => {}
        }
    }
    exprs.into_iter().zip(needed).filter(|(_, n)| *n).map(|(e, _)| e).collect()
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
        ];
        for key in keys {
            assert_eq!(key.to_string().parse::<PieceKey>().unwrap(), key, "{key}");
        }
        for bad in
            ["", "stage", "stage0", "stage0/none", "layer1/identity", "stagex/sum2", "tail", "reduction"]
        {
            assert!(bad.parse::<PieceKey>().is_err(), "{bad}");
        }
    }
}
