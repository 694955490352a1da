//! What a child looks like, as plain data: a [`Drawing`] that a renderer turns into a picture.
//!
//! NAS users read architectures as pictures (DARTS's `visualize.py` cells, NAS-Bench-201's cell
//! figures, Netron's layer lists), not as arch strings. Each space says what its children look like
//! through [`crate::SpaceDef::drawing`]; the SVG renderer (`pwsnas`'s `report::drawing`) knows no
//! space, only the two shapes here:
//!
//! - a **cell** ([`CellDrawing`]): a DAG whose nodes sit in their topological order and whose edges
//!   carry the op on them (an NB201 cell; DARTS's normal and reduction cells);
//! - a **chain** ([`ChainDrawing`]): a sequence of blocks, each with a label and a line of detail (a
//!   mobile network's stem, searchable layers and head).
//!
//! A space that does not override the hook is drawn as a chain of its choice points and the op each
//! picks, which is true of any space even where it says less than a space's own drawing.
use crate::op::Op;

/// A child drawn as one or more cells, or as a chain of blocks.
#[derive(Clone, Debug, PartialEq)]
pub enum Drawing {
    /// Cells side by side (DARTS: normal, then reduction).
    Cells(Vec<CellDrawing>),
    /// One sequence of blocks, input first.
    Chain(ChainDrawing),
}

/// What a node of a cell is, for its style.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeRole {
    /// A cell input (NB201's node 0; DARTS's `c_{k-2}`, `c_{k-1}`).
    Input,
    /// A node that sums its incoming edges.
    Inner,
    /// The cell output.
    Output,
}

/// One node of a cell.
#[derive(Clone, Debug, PartialEq)]
pub struct CellNode {
    pub label: String,
    pub role: NodeRole,
}

/// One edge `from → to` of a cell (indices into [`CellDrawing::nodes`], `from < to`). `op` is the
/// operator candidate on the edge; `None` marks a fixed connection with no op (DARTS's
/// concatenation into the cell output). Edges whose op is the zero op are not drawn: they carry
/// nothing.
#[derive(Clone, Debug, PartialEq)]
pub struct CellEdge {
    pub from: usize,
    pub to: usize,
    pub op: Option<Op>,
}

/// A cell as a DAG, nodes in topological order.
#[derive(Clone, Debug, PartialEq)]
pub struct CellDrawing {
    pub title: String,
    pub nodes: Vec<CellNode>,
    pub edges: Vec<CellEdge>,
}

/// What a block of a chain is, for its style.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockRole {
    /// Part of every child (stem, head, classifier).
    Fixed,
    /// A choice point and the op the child picks there.
    Chosen,
    /// A choice point whose op skips it (`identity`).
    Skipped,
}

/// One block of a chain.
#[derive(Clone, Debug, PartialEq)]
pub struct ChainBlock {
    /// Short name (`stem`, `layer3`, `head`).
    pub name: String,
    /// What it computes (`mb_k5_e6`, `conv 3×3`).
    pub label: String,
    /// Shapes and strides (`24→40 ch, stride 2, 16×16`).
    pub detail: String,
    pub role: BlockRole,
}

/// A chain of blocks, input first.
#[derive(Clone, Debug, PartialEq)]
pub struct ChainDrawing {
    pub title: String,
    pub blocks: Vec<ChainBlock>,
}

impl CellDrawing {
    /// The edges that carry an op other than the zero op, plus the fixed connections: what is drawn.
    pub fn drawn_edges(&self) -> impl Iterator<Item = &CellEdge> {
        self.edges.iter().filter(|e| e.op != Some(Op::None))
    }
}

impl ChainDrawing {
    /// The default drawing of a space: one block per choice point with the op the child picks there
    /// (`identity` drawn as skipped).
    pub fn of_choices(title: &str, names: &[String], ops: &[Op]) -> ChainDrawing {
        let blocks = names
            .iter()
            .zip(ops)
            .map(|(name, op)| ChainBlock {
                name: name.clone(),
                label: op.name(),
                detail: String::new(),
                role: if *op == Op::Identity { BlockRole::Skipped } else { BlockRole::Chosen },
            })
            .collect();
        ChainDrawing { title: title.to_string(), blocks }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_op_edges_are_not_drawn_but_fixed_connections_are() {
        let node = |label: &str, role| CellNode { label: label.into(), role };
        let cell = CellDrawing {
            title: "t".into(),
            nodes: vec![node("0", NodeRole::Input), node("1", NodeRole::Inner), node("2", NodeRole::Output)],
            edges: vec![
                CellEdge { from: 0, to: 1, op: Some(Op::NorConv3x3) },
                CellEdge { from: 0, to: 2, op: Some(Op::None) },
                CellEdge { from: 1, to: 2, op: None },
            ],
        };
        let drawn: Vec<_> = cell.drawn_edges().map(|e| (e.from, e.to)).collect();
        assert_eq!(drawn, vec![(0, 1), (1, 2)]);
    }

    #[test]
    fn the_default_chain_has_a_block_per_choice_point_and_skips_identity() {
        let names = vec!["a".to_string(), "b".to_string()];
        let chain =
            ChainDrawing::of_choices("x", &names, &[Op::MbConv { kernel: 3, expand: 6 }, Op::Identity]);
        assert_eq!(chain.blocks.len(), 2);
        assert_eq!(chain.blocks[0].label, "mb_k3_e6");
        assert_eq!(chain.blocks[0].role, BlockRole::Chosen);
        assert_eq!(chain.blocks[1].role, BlockRole::Skipped);
    }
}
