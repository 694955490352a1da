//! The NAS-Bench-201 cell space (Dong & Yang, ICLR 2020): its parameters, choice points (the edges
//! `j<-i` of a cell DAG), arch strings in NB201's format ([`arch`]), the paths used by the angle
//! metric, the cost of a child, its latency pieces ([`pieces`]) and its network ([`net`]).
//!
//! Skeleton: stem 3×3 conv + BN, three stages of N cells (C, 2C, 4C channels) with ResNet basic-block
//! reductions between them, BN-ReLU, global average pool, linear. Every cell shares one arch.
mod arch;
pub mod net;
mod pieces;

use serde::{Deserialize, Serialize};
use tch::nn;

use crate::cost::{out_size, Cost};
use crate::drawing::{CellDrawing, CellEdge, CellNode, Drawing, NodeRole};
use crate::error::{ModelError, Result};
use crate::net::pieces::PieceKey;
use crate::net::Network;
use crate::op::Op;
use crate::space::{Arch, ShrinkDefaults, Space, SpaceDef, SpaceKind, SpaceParams};

/// Parameters of the `nb201` space. Defaults are NAS-Bench-201's CIFAR-10 setting.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Nb201Params {
    /// Nodes of a cell including its input and output node (4 gives 6 edges).
    pub nodes: usize,
    /// The op set of every edge.
    pub ops: Vec<Op>,
    /// Channels of the first stage (C).
    pub channels: usize,
    /// Cells per stage (N).
    pub cells_per_stage: usize,
    pub classes: usize,
    pub input_channels: usize,
    /// Height = width of the input images.
    pub input_size: usize,
}

impl Default for Nb201Params {
    fn default() -> Self {
        Nb201Params {
            nodes: 4,
            ops: Op::NB201.to_vec(),
            channels: 16,
            cells_per_stage: 5,
            classes: 10,
            input_channels: 3,
            input_size: 32,
        }
    }
}

impl Nb201Params {
    /// The edges `(to, from)` of a cell in NB201's order: node 1's inputs, then node 2's, ...
    pub fn edges(&self) -> Vec<(usize, usize)> {
        (1..self.nodes).flat_map(|j| (0..j).map(move |i| (j, i))).collect()
    }

    /// Index of the edge `to<-from`.
    pub fn edge_index(&self, to: usize, from: usize) -> usize {
        to * (to - 1) / 2 + from
    }

    /// Every path from the cell input to the cell output, as edge indices, in a fixed order
    /// (depth-first, lower node first).
    pub fn paths(&self) -> Vec<Vec<usize>> {
        fn walk(p: &Nb201Params, node: usize, path: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
            if node == p.nodes - 1 {
                out.push(path.clone());
                return;
            }
            for next in node + 1..p.nodes {
                path.push(p.edge_index(next, node));
                walk(p, next, path, out);
                path.pop();
            }
        }
        let mut out = Vec::new();
        walk(self, 0, &mut Vec::new(), &mut out);
        out
    }

    /// Channels and spatial size of each of the three stages.
    pub fn stages(&self) -> [(usize, usize); 3] {
        let c = self.channels;
        let s = self.input_size;
        [(c, s), (2 * c, s / 2), (4 * c, s / 4)]
    }
}

impl SpaceParams for Nb201Params {
    const NAME: &'static str = "nb201";
}

impl SpaceDef for Nb201Params {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn params_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("nb201 parameters serialise")
    }

    fn validate(&self) -> Result<()> {
        let bad = |field: &str, reason: String| {
            Err(ModelError::InvalidParam { space: Self::NAME.into(), field: field.into(), reason })
        };
        if self.nodes < 2 {
            return bad("nodes", format!("need at least 2 nodes (input and output), got {}", self.nodes));
        }
        // Upper bounds far above any real cell or network, so that a damaged or mistyped file is an
        // error instead of a network that never finishes building or exhausts the memory.
        for (field, value, max) in [
            ("nodes", self.nodes, 8),
            ("channels", self.channels, 4096),
            ("cells_per_stage", self.cells_per_stage, 64),
            ("classes", self.classes, 100_000),
            ("input_channels", self.input_channels, 64),
            ("input_size", self.input_size, 4096),
        ] {
            if value > max {
                return bad(field, format!("{value} is more than the largest supported, {max}"));
            }
        }
        if self.ops.is_empty() {
            return bad("ops", "the op set is empty".into());
        }
        for (i, op) in self.ops.iter().enumerate() {
            if !Op::NB201.contains(op) {
                let known: Vec<String> = Op::NB201.iter().map(Op::name).collect();
                return bad("ops", format!("'{op}' is not an nb201 op ({})", known.join(", ")));
            }
            if self.ops[..i].contains(op) {
                return bad("ops", format!("'{op}' appears twice"));
            }
        }
        if self.channels == 0 || self.cells_per_stage == 0 {
            return bad("channels", "channels and cells_per_stage must be at least 1".into());
        }
        if self.classes < 2 {
            return bad("classes", format!("need at least 2 classes, got {}", self.classes));
        }
        if self.input_channels == 0 {
            return bad("input_channels", "must be at least 1".into());
        }
        if self.input_size < 4 || !self.input_size.is_multiple_of(4) {
            return bad(
                "input_size",
                format!("the two stride-2 reductions need a size divisible by 4, got {}", self.input_size),
            );
        }
        Ok(())
    }

    fn classes(&self) -> usize {
        self.classes
    }

    fn input_shape(&self) -> [usize; 3] {
        [self.input_channels, self.input_size, self.input_size]
    }

    fn for_data(&self, channels: usize, size: usize, classes: usize) -> SpaceKind {
        SpaceKind::new(Nb201Params { input_channels: channels, input_size: size, classes, ..self.clone() })
    }

    /// Depth is N, the cells per stage (every cell repeats the one searched).
    fn with_depth(&self, depth: usize) -> Option<SpaceKind> {
        Some(SpaceKind::new(Nb201Params { cells_per_stage: depth, ..self.clone() }))
    }

    fn choice_point_names(&self) -> Vec<String> {
        self.edges().iter().map(|(j, i)| format!("{j}<-{i}")).collect()
    }

    fn full_ops(&self) -> Vec<Vec<Op>> {
        vec![self.ops.clone(); self.edges().len()]
    }

    /// The choice points whose op may route the weight copies of edge `cp` (strategy 2,
    /// `docs/method.md`), in order of preference: the edges into its source node `i`, nearest first
    /// (`i<-(i-1)`, `i<-(i-2)`, ...); for edges out of the cell input (node 0), the edges into the
    /// cell output, which feed the next cell (every cell shares the arch). Never `cp` itself.
    fn previous_choices(&self, cp: usize) -> Vec<usize> {
        let (_, from) = self.edges()[cp];
        let node = if from == 0 { self.nodes - 1 } else { from };
        (0..node).rev().map(|m| self.edge_index(node, m)).filter(|&e| e != cp).collect()
    }

    fn format_arch(&self, arch: &Arch) -> String {
        arch::format(self, &arch.ops)
    }

    /// The cell as NAS-Bench-201 draws it: nodes 0 (input) to `nodes - 1` (output), each edge `i → j`
    /// labelled with its op; `none` edges are left out.
    fn drawing(&self, arch: &Arch) -> Drawing {
        let last = self.nodes - 1;
        let nodes = (0..self.nodes)
            .map(|n| CellNode {
                label: n.to_string(),
                role: match n {
                    0 => NodeRole::Input,
                    n if n == last => NodeRole::Output,
                    _ => NodeRole::Inner,
                },
            })
            .collect();
        let edges = self
            .edges()
            .into_iter()
            .zip(&arch.ops)
            .map(|((to, from), op)| CellEdge { from, to, op: Some(*op) })
            .collect();
        Drawing::Cells(vec![CellDrawing { title: "cell".into(), nodes, edges }])
    }

    fn read_arch(&self, s: &str) -> Result<Arch> {
        Ok(Arch { ops: arch::parse(self, s)? })
    }

    fn cost(&self, arch: &Arch) -> Cost {
        let ops = &arch.ops;
        let mut cost = Cost::default();
        let s = self.input_size;
        cost.conv_bn("stem".into(), "conv3x3+bn", self.input_channels, self.channels, 3, 1, s, true);
        let stages = self.stages();
        for (stage, &(c, size)) in stages.iter().enumerate() {
            if stage > 0 {
                let (c_in, _) = stages[stage - 1];
                let name = format!("reduction{stage}");
                cost.conv_bn(format!("{name}.conv_a"), "relu+conv3x3/2+bn", c_in, c, 3, 1, size, true);
                cost.conv_bn(format!("{name}.conv_b"), "relu+conv3x3+bn", c, c, 3, 1, size, true);
                cost.conv_bn(format!("{name}.downsample"), "avgpool2x2+conv1x1", c_in, c, 1, 1, size, false);
            }
            for cell in 0..self.cells_per_stage {
                for (e, &(j, i)) in self.edges().iter().enumerate() {
                    let name = format!("stage{stage}.cell{cell}.{j}<-{i}");
                    match ops[e] {
                        Op::NorConv1x1 => cost.conv_bn(name, "relu+conv1x1+bn", c, c, 1, 1, size, true),
                        Op::NorConv3x3 => cost.conv_bn(name, "relu+conv3x3+bn", c, c, 3, 1, size, true),
                        _ => {}
                    }
                }
            }
        }
        let (c_last, s_last) = stages[2];
        cost.bn("lastact".into(), c_last, s_last);
        cost.linear("classifier".into(), c_last, self.classes);
        debug_assert_eq!(out_size(s, 3, 2), s / 2);
        cost
    }
    fn composition(&self, arch: &Arch) -> Vec<(PieceKey, usize)> {
        pieces::composition(self, &arch.ops)
    }

    /// ABS drops two thirds of NB201's candidates in one round (20 of 30) and stops.
    fn shrink_defaults(&self, candidates: usize) -> ShrinkDefaults {
        ShrinkDefaults {
            drop_per_round: (candidates as f64 * 2.0 / 3.0).round() as usize,
            target_size: 100.0,
            per_choice_point: false,
        }
    }

    fn build(&self, root: &nn::Path, space: &Space) -> Box<dyn Network> {
        Box::new(net::Nb201Net::new(root, self, space))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges_names_and_paths_of_a_4_node_cell() {
        let p = Nb201Params::default();
        assert_eq!(p.choice_point_names(), ["1<-0", "2<-0", "2<-1", "3<-0", "3<-1", "3<-2"]);
        // 0→1→2→3, 0→1→3, 0→2→3, 0→3
        assert_eq!(p.paths(), vec![vec![0, 2, 5], vec![0, 4], vec![1, 5], vec![3]]);
        assert_eq!(Nb201Params { nodes: 3, ..p.clone() }.paths(), vec![vec![0, 2], vec![1]]);
    }

    #[test]
    fn previous_choices_are_the_edges_into_the_source_node() {
        let p = Nb201Params::default();
        // 1<-0, 2<-0 and 3<-0 leave the cell input: routed by the edges into the cell output (3<-2 first).
        assert_eq!(p.previous_choices(0), vec![5, 4, 3]);
        assert_eq!(p.previous_choices(1), vec![5, 4, 3]);
        assert_eq!(p.previous_choices(3), vec![5, 4]);
        // 2<-1 and 3<-1 leave node 1: only 1<-0 enters it; 3<-2 leaves node 2: 2<-1, then 2<-0.
        assert_eq!(p.previous_choices(2), vec![0]);
        assert_eq!(p.previous_choices(4), vec![0]);
        assert_eq!(p.previous_choices(5), vec![2, 1]);
        // A 2-node cell has one edge and nothing to route it.
        assert!(Nb201Params { nodes: 2, ..p }.previous_choices(0).is_empty());
    }
}
