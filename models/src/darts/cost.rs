//! FLOPs and parameters of darts networks, from shapes alone: a stand-alone child exactly as the
//! DARTS code's evaluation network `NetworkCIFAR` builds it (no auxiliary head), and the supernet as
//! [`super::net::DartsNet`] builds it for a space.
//!
//! Counting follows [`crate::cost`]: parameters include BatchNorm's affine weights and the classifier's
//! bias; FLOPs are conv multiply-adds `k·k·c_in/groups·c_out·h_out·w_out` and the linear layer's. The
//! modules, per edge of `c` channels at output size `s`:
//! - `sep_conv_{k}x{k}`: (ReLU, depthwise k×k with the edge's stride, pointwise 1×1, BN) then (ReLU,
//!   depthwise k×k, pointwise 1×1, BN): `2(k²c + c² + 2c)` parameters;
//! - `dil_conv_{k}x{k}`: ReLU, depthwise k×k with dilation 2, pointwise 1×1, BN: `k²c + c² + 2c`;
//! - `skip_connect` at stride 2 (out of the inputs of a reduction cell): FactorizedReduce, two 1×1
//!   stride-2 convs to c/2 channels (the second on the input shifted by one pixel), concatenated, BN:
//!   `c² + 2c`; at stride 1 the identity;
//! - pools and `none`: nothing (the supernet's pools are followed by a BN without affine parameters,
//!   which has none either).
//!
//! Each cell also preprocesses its two inputs to c channels: ReLU-1×1 conv-BN, or a FactorizedReduce
//! for input 0 when the previous cell was a reduction cell.
use super::cell::{self, INPUTS, LAST};
use super::{CellLayout, DartsParams, STEM_MULTIPLIER};
use crate::cost::Cost;
use crate::op::Op;

/// Parameters and FLOPs of one module.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Count {
    params: u64,
    flops: u64,
}

impl Count {
    /// A conv without bias producing `c_out × size × size`, with its BN if `bn`.
    fn conv(c_in: usize, c_out: usize, kernel: usize, groups: usize, size: usize, bn: bool) -> Count {
        let weights = (kernel * kernel * c_in / groups * c_out) as u64;
        let bn = if bn { 2 * c_out as u64 } else { 0 };
        Count { params: weights + bn, flops: weights * (size * size) as u64 }
    }

    fn add(self, other: Count) -> Count {
        Count { params: self.params + other.params, flops: self.flops + other.flops }
    }
}

/// ReLU → 1×1 conv `c_in → c_out` → BN.
fn relu_conv_bn(c_in: usize, c_out: usize, size: usize) -> Count {
    Count::conv(c_in, c_out, 1, 1, size, true)
}

/// ReLU → two 1×1 stride-2 convs `c_in → c_out/2` → concat → BN, at output size `size`.
fn factorized_reduce(c_in: usize, c_out: usize, size: usize) -> Count {
    let half = Count::conv(c_in, c_out / 2, 1, 1, size, false);
    half.add(half).add(Count { params: 2 * c_out as u64, flops: 0 })
}

/// The module of `op` on an edge of `c` channels and `stride`, whose output has size `size`; `None`
/// for the ops without a module (pools, `none`, identity skip).
fn op_count(op: Op, c: usize, stride: usize, size: usize) -> Option<Count> {
    match op {
        Op::SepConv { kernel } => {
            let k = kernel as usize;
            let half = Count::conv(c, c, k, c, size, false).add(Count::conv(c, c, 1, 1, size, true));
            Some(half.add(half))
        }
        Op::DilConv { kernel } => {
            let k = kernel as usize;
            Some(Count::conv(c, c, k, c, size, false).add(Count::conv(c, c, 1, 1, size, true)))
        }
        Op::SkipConnect if stride == 2 => Some(factorized_reduce(c, c, size)),
        _ => None,
    }
}

/// What a module is, for the network summary.
fn op_kind(op: Op, stride: usize) -> String {
    match op {
        Op::SkipConnect if stride == 2 => "factorized_reduce".into(),
        op if stride == 2 => format!("{op}/2"),
        op => op.name(),
    }
}

impl DartsParams {
    /// Cost of the stand-alone network of the child with these ops (one per choice point, 28), as
    /// `NetworkCIFAR` builds a genotype; edges with `none` have no module.
    pub fn cost(&self, ops: &[Op]) -> Cost {
        self.network_cost(|cp| &ops[cp..=cp])
    }

    /// Cost of the supernet of a space (op lists per choice point, 28): every allowed op on every
    /// edge. Its FLOPs are those of a forward through every op, as DARTS's continuous relaxation runs.
    pub fn supernet_cost(&self, lists: &[Vec<Op>]) -> Cost {
        self.network_cost(|cp| &lists[cp])
    }

    /// Stem, cells (preprocessing, then the modules of `ops_at(choice point)` on each edge),
    /// classifier.
    fn network_cost<'a>(&self, ops_at: impl Fn(usize) -> &'a [Op]) -> Cost {
        let mut cost = Cost::default();
        let s = self.input_size;
        let stem = STEM_MULTIPLIER * self.channels;
        cost.conv_bn("stem".into(), "conv3x3+bn", self.input_channels, stem, 3, 1, s, true);
        for (k, layout) in self.cells().iter().enumerate() {
            self.cell_cost(&mut cost, k, layout, &ops_at);
        }
        let last = self.cells().last().expect("at least 3 cells").output_channels();
        cost.linear("classifier".into(), last, self.classes);
        cost
    }

    fn cell_cost<'a>(&self, cost: &mut Cost, k: usize, l: &CellLayout, ops_at: &impl Fn(usize) -> &'a [Op]) {
        let (c, size) = (l.channels, l.input_size);
        let mut push = |name: String, kind: &str, shape: [usize; 3], n: Count| {
            cost.push(name, kind, shape, n.params, n.flops);
        };
        let kind = l.kind().name();
        let pre0 = if l.reduction_prev {
            ("factorized_reduce", factorized_reduce(l.c_prev_prev, c, size))
        } else {
            ("relu+conv1x1+bn", relu_conv_bn(l.c_prev_prev, c, size))
        };
        push(format!("cell{k}.preprocess0"), pre0.0, [c, size, size], pre0.1);
        push(
            format!("cell{k}.preprocess1"),
            "relu+conv1x1+bn",
            [c, size, size],
            relu_conv_bn(l.c_prev, c, size),
        );
        let out = l.output_size;
        for j in INPUTS..=LAST {
            for i in 0..j {
                let cp = l.kind().offset() + cell::edge_index(j, i);
                let stride = l.stride(i);
                for &op in ops_at(cp) {
                    if let Some(n) = op_count(op, c, stride, out) {
                        push(format!("cell{k}.{kind}/{j}<-{i}.{op}"), &op_kind(op, stride), [c, out, out], n);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::darts::Genotype;
    use crate::space::SpaceDef;

    fn eval_params() -> DartsParams {
        DartsParams { channels: 36, layers: 20, ..DartsParams::default() }
    }

    #[test]
    fn published_genotypes_at_the_papers_evaluation_size() {
        // DARTS (Liu et al., ICLR 2019), Table 1: DARTS (second order), i.e. DARTS_V2, has 3.3 M
        // parameters at C = 36, L = 20 on CIFAR-10; the DARTS code's `count_parameters_in_MB` (all
        // parameters but the auxiliary head's) prints 3.349342 for it, which this count matches
        // exactly. P-DARTS (Chen et al., ICCV 2019), Table 1: 3.4 M. Neither paper gives CIFAR FLOPs.
        let p = eval_params();
        let cases = [
            ("DARTS_V2", 3_349_342, 528_359_050),
            ("PDARTS", 3_433_798, 532_174_474),
            // The paper lists 3.3 M for first order as well; the DARTS code's DARTS_V1 genotype keeps
            // one sep_conv fewer in the normal cell than DARTS_V2, hence fewer parameters.
            ("DARTS_V1", 3_169_414, 0),
        ];
        for (name, params, flops) in cases {
            let cost = p.cost(&Genotype::named(name).unwrap().to_ops());
            assert_eq!(cost.params(), params, "{name}");
            if flops > 0 {
                assert_eq!(cost.flops(), flops, "{name}");
            }
        }
    }

    #[test]
    fn a_tiny_network_by_hand() {
        // L = 3 (reductions at cells 1 and 2), C = 2, 1×4×4 input, 2 classes; every node of both
        // cells keeps sep_conv_3x3 on input 0 and skip_connect on input 1.
        let p = DartsParams {
            channels: 2,
            layers: 3,
            classes: 2,
            input_channels: 1,
            input_size: 4,
            ..DartsParams::default()
        };
        let node = "('sep_conv_3x3', 0), ('skip_connect', 1)";
        let list = format!("[{}]", [node; 4].join(", "));
        let g: Genotype = format!("Genotype({list}, range(2, 6), {list}, range(2, 6))").parse().unwrap();
        let cost = p.cost(&g.to_ops());
        // stem 1→6: 54 + 12 BN, 54·16 MACs.
        // cell 0 (4×4, C=2): two ReLU-conv-BN 6→2 (16 each, 192 MACs each); 4 sep_conv 3x3 of
        //   2·(18 + 4 + 4) = 52 params, 2·(18·16 + 4·16) = 704 MACs; skips are identities.
        // cell 1 (reduction to 2×2, C=4): preprocess 6→4 (32, 384), 8→4 (40, 512); per node a
        //   stride-2 sep_conv (2·(36 + 16 + 8) = 120, 2·(36·4 + 16·4) = 416) and a FactorizedReduce
        //   4→4 (16 + 8 = 24, 16·4 = 64).
        // cell 2 (reduction to 1×1, C=8, after a reduction): FactorizedReduce 8→8 at 2×2 (64 + 16,
        //   256), ReLU-conv-BN 16→8 (144, 512); per node sep_conv (2·(72 + 64 + 16) = 304, 272) and
        //   FactorizedReduce 8→8 (80, 64).
        // classifier 32→2: 66.
        let params = 66 + (16 + 16 + 4 * 52) + (32 + 40 + 4 * 144) + (80 + 144 + 4 * 384) + 66;
        let flops = 864 + (192 + 192 + 4 * 704) + (384 + 512 + 4 * 480) + (256 + 512 + 4 * 336) + 66;
        assert_eq!((cost.params(), cost.flops()), (params, flops));
        assert_eq!(cost.layers[0].output, [6, 4, 4]);
        let fr = cost.layers.iter().find(|l| l.name == "cell1.reduce/2<-1.skip_connect").unwrap();
        assert_eq!((fr.kind.as_str(), fr.output), ("factorized_reduce", [4, 2, 2]));
        let pre = cost.layers.iter().find(|l| l.name == "cell2.preprocess0").unwrap();
        assert_eq!((pre.kind.as_str(), pre.params), ("factorized_reduce", 80));
    }

    #[test]
    fn the_supernet_holds_every_op_of_the_space() {
        let p = DartsParams::default();
        let full = p.supernet_cost(&p.full_ops());
        // Cutting the conv ops from every list leaves stem, preprocessing, FactorizedReduce skips
        // and classifier.
        let weightless: Vec<Vec<Op>> = p
            .full_ops()
            .into_iter()
            .map(|ops| ops.into_iter().filter(|op| !op.has_weights()).collect())
            .collect();
        let bare = p.supernet_cost(&weightless);
        // The convs of every edge: 14 edges of each of the 8 cells, at that cell's channels.
        let dil = |k: u64, c: u64| k * k * c + c * c + 2 * c;
        let per_edge = |c: u64| 2 * dil(3, c) + 2 * dil(5, c) + dil(3, c) + dil(5, c);
        let convs: u64 = p.cells().iter().map(|l| 14 * per_edge(l.channels as u64)).sum();
        assert_eq!(full.params() - bare.params(), convs);
        // DARTS's search network (C = 16, L = 8, the 8 ops) has no affine parameters in its ops and
        // preprocessing (`affine=False`); its `train_search.py` logs "param size = 1.930618MB". Ours
        // keeps them: per edge 12c (two BNs per sep_conv, one per dil_conv), 2c more on the 8
        // stride-2 edges of a reduction cell (the FactorizedReduce skip), 4c per cell preprocessing.
        let affine: u64 = p
            .cells()
            .iter()
            .map(|l| {
                let c = l.channels as u64;
                14 * 12 * c + if l.reduction { 8 * 2 * c } else { 0 } + 4 * c
            })
            .sum();
        assert_eq!(full.params() - affine, 1_930_618);
        // The one-op supernet of a genotype is its stand-alone network.
        let ops = Genotype::named("PDARTS").unwrap().to_ops();
        let single: Vec<Vec<Op>> = ops.iter().map(|&op| vec![op]).collect();
        assert_eq!(p.supernet_cost(&single).params(), p.cost(&ops).params());
        assert_eq!((full.params(), full.flops()), (1_987_194, 300_255_754));
    }
}
