//! The latency pieces of a `darts` child: which pieces the lowering of its evaluation network (see
//! [`super::net`], [`super::net::Role::Standalone`]: what `pwsnas export` writes) emits for it and
//! how often (see [`crate::net::pieces`] for the contract).
//!
//! Every cell has its two preprocessings, four node sums (every node of a child keeps two edges:
//! one `Add` each) and the concatenation of its nodes. A kept edge is an op piece, except
//! `skip_connect` at stride 1 (the identity), which emits nothing; `none` edges emit nothing. A bare
//! pool (the evaluation network has no BN after pools) that two nodes apply to the same cell input
//! or node is computed once, as the lowering shares it. Nothing of a child is dead: node 2 reads
//! both cell inputs, so every preprocessing, and through it every cell, feeds the output.
use super::cell::{self, INPUTS, LAST};
use super::DartsParams;
use crate::net::pieces::{PieceKey, Tally};
use crate::op::Op;

/// The pieces of child `ops` (a genotype: every node keeps exactly two edges), with their counts,
/// in network order (stem first, head last).
pub(super) fn composition(p: &DartsParams, ops: &[Op]) -> Vec<(PieceKey, usize)> {
    let mut out = Tally::default();
    out.add(PieceKey::Stem, 1);
    for (k, layout) in p.cells().iter().enumerate() {
        let stage = layout.stage;
        for input in 0..INPUTS {
            out.add(PieceKey::Preprocess { cell: k, input }, 1);
        }
        // The (input, op) pairs of the bare pools already counted in this cell.
        let mut pools: Vec<(usize, Op)> = Vec::new();
        for j in INPUTS..=LAST {
            let mut terms = 0;
            for i in 0..j {
                let op = ops[layout.kind().offset() + cell::edge_index(j, i)];
                if op == Op::None {
                    continue;
                }
                terms += 1;
                if matches!(op, Op::MaxPool3x3 | Op::AvgPool3x3) {
                    if pools.contains(&(i, op)) {
                        continue;
                    }
                    pools.push((i, op));
                }
                match layout.stride(i) {
                    1 if PieceKey::op_emits_nodes(op) => out.add(PieceKey::Op { at: stage, op }, 1),
                    1 => {}
                    _ => out.add(PieceKey::Reduce { stage, op }, 1),
                }
            }
            debug_assert_eq!(terms, 2, "node {j} of cell {k} of a darts child keeps two edges");
            out.add(PieceKey::Merge { stage, terms }, 1);
        }
        out.add(PieceKey::Concat { stage }, 1);
    }
    out.add(PieceKey::Head, 1);
    out.into_vec()
}
