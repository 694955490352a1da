//! The DARTS cell space (Liu et al., "DARTS: Differentiable Architecture Search", ICLR 2019), as its
//! public code builds it: parameters, choice points, the shape of every cell, and the submodules for
//! genotypes, arch text, cost, latency pieces ([`pieces`]) and the networks on libtorch.
//!
//! Skeleton: a stem (3×3 conv to 3C channels + BN), then L cells. Cells `L/3` and `2L/3` are
//! reduction cells: they double the channels and halve the size (their edges out of the two cell
//! inputs have stride 2). Every cell reads the outputs of the two previous cells (the stem's output
//! twice for the first cell), preprocesses them to its C channels — a FactorizedReduce for the input
//! that comes from before a reduction cell, else ReLU-1×1 conv-BN — and outputs the concatenation of
//! its four intermediate nodes (4C channels). Global average pooling and a linear classifier end the
//! network. Every normal cell shares one cell arch and every reduction cell another.
//!
//! Choice points: the 14 edges of the normal cell, `normal/j<-i`, then the 14 of the reduction cell,
//! `reduce/j<-i` (j = 2..5 the intermediate node, i < j its input; 0 and 1 are the cell inputs), in
//! the order of [`cell::edges`].
use serde::{Deserialize, Serialize};

use crate::op::Op;

pub mod arch;
pub mod cell;
pub mod cost;
pub mod genotype;
pub mod net;
pub mod ops;
mod pieces;
mod pyparse;
mod space;

pub use genotype::Genotype;

/// The channels of the stem, as a multiple of C (DARTS's `stem_multiplier`).
pub const STEM_MULTIPLIER: usize = 3;

/// Parameters of the `darts` space. Defaults are DARTS's CIFAR-10 search setting (C = 16, L = 8);
/// its evaluation network is C = 36, L = 20.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DartsParams {
    /// Channels C of the nodes of the first cells (2C after the first reduction, 4C after the second).
    pub channels: usize,
    /// Cells L in all, normal and reduction, as DARTS counts them.
    pub layers: usize,
    /// The op set of every edge.
    pub ops: Vec<Op>,
    /// Whether the edge `j<-i` of the normal cell and of the reduction cell keep the same op list, so
    /// that shrinking drops an op from both at once. Default true: ABS (Hu et al., ECCV 2020) shrinks
    /// one op list per edge shared by the two cell types, which also gives every score twice the
    /// children. Children still pick the ops of the two cells independently.
    pub linked_cells: bool,
    pub classes: usize,
    pub input_channels: usize,
    /// Height = width of the input images.
    pub input_size: usize,
}

impl Default for DartsParams {
    fn default() -> Self {
        DartsParams {
            channels: 16,
            layers: 8,
            ops: Op::DARTS.to_vec(),
            linked_cells: true,
            classes: 10,
            input_channels: 3,
            input_size: 32,
        }
    }
}

/// Which of the two cell archs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CellKind {
    Normal,
    Reduce,
}

impl CellKind {
    pub const BOTH: [CellKind; 2] = [CellKind::Normal, CellKind::Reduce];

    /// `normal` or `reduce`, as in choice point names and genotype fields.
    pub fn name(self) -> &'static str {
        match self {
            CellKind::Normal => "normal",
            CellKind::Reduce => "reduce",
        }
    }

    /// The first choice point of this cell kind.
    pub fn offset(self) -> usize {
        match self {
            CellKind::Normal => 0,
            CellKind::Reduce => cell::EDGES,
        }
    }
}

/// The shapes of one cell of the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CellLayout {
    /// 0 before the first reduction cell, 1 from it on, 2 from the second on: cells of one stage
    /// have the same channels and output size.
    pub stage: usize,
    pub reduction: bool,
    /// The previous cell was a reduction cell, so input 0 (from two cells back) is twice the size of
    /// input 1 and is preprocessed by a FactorizedReduce.
    pub reduction_prev: bool,
    /// Channels of input 0 and input 1 before preprocessing.
    pub c_prev_prev: usize,
    pub c_prev: usize,
    /// Channels of every node after preprocessing (C, 2C or 4C); the output has 4× as many.
    pub channels: usize,
    /// Size of both inputs after preprocessing (that of input 1).
    pub input_size: usize,
    /// Size of the intermediate nodes and the output (half the input size in a reduction cell).
    pub output_size: usize,
}

impl CellLayout {
    pub fn kind(&self) -> CellKind {
        if self.reduction {
            CellKind::Reduce
        } else {
            CellKind::Normal
        }
    }

    /// Stride of the op on edge `to<-from`: 2 on the edges out of the inputs of a reduction cell.
    pub fn stride(&self, from: usize) -> usize {
        if self.reduction && from < cell::INPUTS {
            2
        } else {
            1
        }
    }

    /// `[channels, height, width]` of cell input `input` (0 or 1) before preprocessing: input 0
    /// is twice the size of input 1 after a reduction cell.
    pub fn input_shape(&self, input: usize) -> [usize; 3] {
        let (c, size) = match input {
            0 if self.reduction_prev => (self.c_prev_prev, 2 * self.input_size),
            0 => (self.c_prev_prev, self.input_size),
            _ => (self.c_prev, self.input_size),
        };
        [c, size, size]
    }

    /// `[channels, height, width]` of the intermediate nodes (the edges' outputs).
    pub fn node_shape(&self) -> [usize; 3] {
        [self.channels, self.output_size, self.output_size]
    }

    /// Channels of the cell output.
    pub fn output_channels(&self) -> usize {
        cell::NODES * self.channels
    }
}

impl DartsParams {
    /// Indices of the reduction cells: `L/3` and `2L/3` (integer division, as DARTS's code).
    pub fn reduction_cells(&self) -> [usize; 2] {
        [self.layers / 3, 2 * self.layers / 3]
    }

    /// The cell whose output DARTS's auxiliary head reads: the second reduction cell, `2·layers/3`
    /// (`NetworkCIFAR`'s `i == 2 * layers // 3`).
    pub fn aux_cell(&self) -> usize {
        self.reduction_cells()[1]
    }

    /// The shapes of every cell, in order.
    pub fn cells(&self) -> Vec<CellLayout> {
        let stem = STEM_MULTIPLIER * self.channels;
        let (mut c_prev_prev, mut c_prev, mut c) = (stem, stem, self.channels);
        let mut size = self.input_size;
        let mut reduction_prev = false;
        let mut stage = 0;
        let mut out = Vec::with_capacity(self.layers);
        for k in 0..self.layers {
            let reduction = self.reduction_cells().contains(&k);
            if reduction {
                c *= 2;
                stage += 1;
            }
            let output_size = if reduction { size / 2 } else { size };
            let layout = CellLayout {
                stage,
                reduction,
                reduction_prev,
                c_prev_prev,
                c_prev,
                channels: c,
                input_size: size,
                output_size,
            };
            out.push(layout);
            (c_prev_prev, c_prev) = (c_prev, layout.output_channels());
            size = output_size;
            reduction_prev = reduction;
        }
        out
    }

    /// Channels of the last cell's output, the classifier's input.
    pub fn last_channels(&self) -> usize {
        self.cells().last().map_or(STEM_MULTIPLIER * self.channels, CellLayout::output_channels)
    }

    /// The choice point of edge `to<-from` of the `kind` cell.
    pub fn choice_point(&self, kind: CellKind, to: usize, from: usize) -> usize {
        kind.offset() + cell::edge_index(to, from)
    }

    /// Number of choice points (28).
    pub fn choice_points(&self) -> usize {
        2 * cell::EDGES
    }

    /// The choice point whose op list `cp`'s must equal: the same edge of the other cell kind, when
    /// the cells are linked.
    pub fn linked_choice(&self, cp: usize) -> Option<usize> {
        self.linked_cells.then_some((cp + cell::EDGES) % (2 * cell::EDGES))
    }
}

/// Whether `op` is one of the darts space's ops: the DARTS code's eight primitives, with any odd
/// kernel for the separable and dilated convs.
pub fn is_darts_op(op: Op) -> bool {
    matches!(
        op,
        Op::None
            | Op::MaxPool3x3
            | Op::AvgPool3x3
            | Op::SkipConnect
            | Op::SepConv { .. }
            | Op::DilConv { .. }
    )
}

/// The DARTS op names for error messages.
pub(crate) fn darts_op_names() -> String {
    let names: Vec<String> = Op::DARTS.iter().map(Op::name).collect();
    format!("{} (any odd kernel for sep_conv/dil_conv)", names.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::SpaceDef;

    #[test]
    fn layouts_follow_network_cifar() {
        let p = DartsParams { channels: 36, layers: 20, ..DartsParams::default() };
        let cells = p.cells();
        assert_eq!(p.reduction_cells(), [6, 13]);
        assert_eq!(cells.len(), 20);
        // Cell 0 reads the stem twice.
        assert_eq!((cells[0].c_prev_prev, cells[0].c_prev, cells[0].channels), (108, 108, 36));
        assert_eq!((cells[1].c_prev_prev, cells[1].c_prev), (108, 144));
        let r = cells[6];
        assert!(r.reduction && !r.reduction_prev);
        assert_eq!(
            (cells[5].stage, r.stage, cells[12].stage, cells[13].stage, cells[19].stage),
            (0, 1, 1, 2, 2)
        );
        assert_eq!((r.channels, r.input_size, r.output_size), (72, 32, 16));
        let after = cells[7];
        assert!(after.reduction_prev && !after.reduction);
        assert_eq!((after.c_prev_prev, after.c_prev, after.channels, after.input_size), (144, 288, 72, 16));
        assert_eq!((cells[13].channels, cells[13].output_size), (144, 8));
        assert_eq!(p.last_channels(), 576);
        assert_eq!(r.stride(0), 2);
        assert_eq!(r.stride(2), 1);
        assert_eq!(cells[0].stride(0), 1);
    }

    #[test]
    fn three_layers_make_two_adjacent_reductions() {
        let p = DartsParams { layers: 3, input_size: 8, ..DartsParams::default() };
        let cells = p.cells();
        assert_eq!(p.reduction_cells(), [1, 2]);
        assert!(cells[2].reduction && cells[2].reduction_prev);
        assert_eq!((cells[2].input_size, cells[2].output_size, cells[2].channels), (4, 2, 64));
    }

    #[test]
    fn choice_points_and_links() {
        let p = DartsParams::default();
        let names = p.choice_point_names();
        assert_eq!(names.len(), 28);
        assert_eq!((names[0].as_str(), names[13].as_str()), ("normal/2<-0", "normal/5<-4"));
        assert_eq!((names[14].as_str(), names[27].as_str()), ("reduce/2<-0", "reduce/5<-4"));
        assert_eq!(p.choice_point(CellKind::Reduce, 3, 2), 18);
        assert_eq!(names[18], "reduce/3<-2");
        assert_eq!((p.linked_choice(3), p.linked_choice(17)), (Some(17), Some(3)));
        assert_eq!(DartsParams { linked_cells: false, ..p }.linked_choice(3), None);
    }

    #[test]
    fn bad_parameters_name_the_field() {
        let cases: [(DartsParams, &str); 5] = [
            (DartsParams { layers: 2, ..DartsParams::default() }, "'layers'"),
            (DartsParams { input_size: 30, ..DartsParams::default() }, "FactorizedReduce"),
            (
                DartsParams { ops: vec![Op::NorConv3x3], ..DartsParams::default() },
                "'nor_conv_3x3' is not a darts op",
            ),
            (DartsParams { ops: vec![Op::None, Op::None], ..DartsParams::default() }, "appears twice"),
            (DartsParams { channels: 0, ..DartsParams::default() }, "'channels'"),
        ];
        for (p, expected) in cases {
            let msg = p.validate().unwrap_err().to_string();
            assert!(msg.contains(expected), "{msg}");
            assert!(!msg.contains('\n'), "{msg}");
        }
        DartsParams::default().validate().unwrap();
    }
}
