//! The latency pieces of an `nb201` child: which pieces the lowering (see [`super::net`]) emits for
//! it and how often (see [`crate::net::pieces`] for the contract). A node whose every outgoing edge
//! is `none` is dropped from the graph together with the ops feeding it, and a value a cell would
//! compute twice (an op without weights on a value it was already applied to, directly or through
//! `skip_connect`; a second zeros node or sum of the same terms) is computed once.
use super::Nb201Params;
use crate::net::pieces::{PieceKey, Tally};
use crate::op::Op;

/// The pieces of child `ops`, with their counts, in network order (stem first, head last).
pub(super) fn composition(p: &Nb201Params, ops: &[Op]) -> Vec<(PieceKey, usize)> {
    let mut out = Tally::default();
    out.add(PieceKey::Stem, 1);
    let cell = cell(p, ops);
    for stage in 0..3 {
        if stage > 0 {
            out.add(PieceKey::Reduction(stage), 1);
        }
        for expr in &cell {
            let key = match expr {
                Expr::Input => continue,
                Expr::Relu { .. } => PieceKey::Relu { stage },
                Expr::Zeros => PieceKey::Merge { stage, terms: 0 },
                Expr::Sum(terms) => PieceKey::Merge { stage, terms: terms.len() },
                Expr::Op { op, .. } => PieceKey::Op { at: stage, op: *op },
            };
            out.add(key, p.cells_per_stage);
        }
    }
    out.add(PieceKey::Head, 1);
    out.into_vec()
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
fn cell(p: &Nb201Params, ops: &[Op]) -> Vec<Expr> {
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
