//! The NAS-Bench-201 cell space (Dong & Yang, ICLR 2020): its parameters, choice points (the edges
//! `j<-i` of a cell DAG), arch strings in NB201's format, the paths used by the angle metric, and the
//! cost of a child.
//!
//! Skeleton: stem 3×3 conv + BN, three stages of N cells (C, 2C, 4C channels) with ResNet basic-block
//! reductions between them, BN-ReLU, global average pool, linear. Every cell shares one arch.
use serde::{Deserialize, Serialize};

use crate::cost::{out_size, Cost};
use crate::error::{ModelError, Result};
use crate::op::Op;

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
    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |field: &str, reason: String| {
            Err(ModelError::InvalidParam { space: "nb201".into(), field: field.into(), reason })
        };
        if self.nodes < 2 {
            return bad("nodes", format!("need at least 2 nodes (input and output), got {}", self.nodes));
        }
        if self.ops.is_empty() {
            return bad("ops", "the op set is empty".into());
        }
        for (i, op) in self.ops.iter().enumerate() {
            if !Op::NB201.contains(op) {
                return bad("ops", format!("'{op}' is not an nb201 op (none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3)"));
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

    /// The edges `(to, from)` of a cell in NB201's order: node 1's inputs, then node 2's, ...
    pub fn edges(&self) -> Vec<(usize, usize)> {
        (1..self.nodes).flat_map(|j| (0..j).map(move |i| (j, i))).collect()
    }

    pub fn choice_point_names(&self) -> Vec<String> {
        self.edges().iter().map(|(j, i)| format!("{j}<-{i}")).collect()
    }

    /// Index of the edge `to<-from`.
    pub fn edge_index(&self, to: usize, from: usize) -> usize {
        to * (to - 1) / 2 + from
    }

    /// The choice points whose op may route the weight copies of edge `cp` (strategy 2,
    /// `docs/method.md`), in order of preference: the edges into its source node `i`, nearest first
    /// (`i<-(i-1)`, `i<-(i-2)`, ...); for edges out of the cell input (node 0), the edges into the
    /// cell output, which feed the next cell (every cell shares the arch). Never `cp` itself.
    pub fn previous_choices(&self, cp: usize) -> Vec<usize> {
        let (_, from) = self.edges()[cp];
        let node = if from == 0 { self.nodes - 1 } else { from };
        (0..node).rev().map(|m| self.edge_index(node, m)).filter(|&e| e != cp).collect()
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

    /// `|op~0|+|op~0|op~1|+|...|`
    pub fn format_arch(&self, ops: &[Op]) -> String {
        let mut nodes = Vec::new();
        let mut k = 0;
        for j in 1..self.nodes {
            let mut s = String::from("|");
            for i in 0..j {
                s.push_str(&format!("{}~{i}|", ops[k]));
                k += 1;
            }
            nodes.push(s);
        }
        nodes.join("+")
    }

    pub fn parse_arch(&self, s: &str) -> Result<Vec<Op>> {
        let bad = |reason: String| Err(ModelError::MalformedArch { arch: s.to_string(), reason });
        let nodes: Vec<&str> = s.trim().split('+').collect();
        if nodes.len() != self.nodes - 1 {
            return bad(format!(
                "expected {} node groups separated by '+' (a {}-node cell), got {}",
                self.nodes - 1,
                self.nodes,
                nodes.len()
            ));
        }
        let mut ops = Vec::new();
        for (j, group) in nodes.iter().enumerate() {
            let node = j + 1;
            let Some(inner) = group.strip_prefix('|').and_then(|g| g.strip_suffix('|')) else {
                return bad(format!("node {node}: '{group}' must start and end with '|'"));
            };
            let inputs: Vec<&str> = inner.split('|').collect();
            if inputs.len() != node {
                return bad(format!("node {node} must have {node} inputs, got {}", inputs.len()));
            }
            for (i, input) in inputs.iter().enumerate() {
                let Some((op, from)) = input.split_once('~') else {
                    return bad(format!("'{input}' must be OP~INPUT"));
                };
                if from != i.to_string() {
                    return bad(format!("node {node}: input {i} is written as '~{from}'"));
                }
                ops.push(op.parse::<Op>()?);
            }
        }
        Ok(ops)
    }

    /// Cost of the child with these ops (one per edge).
    pub fn cost(&self, ops: &[Op]) -> Cost {
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
    fn arch_strings_round_trip_and_reject_garbage() {
        let p = Nb201Params::default();
        let s = "|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|none~2|";
        let ops = p.parse_arch(s).unwrap();
        assert_eq!(ops[1], Op::None);
        assert_eq!(p.format_arch(&ops), s);
        for bad in [
            "",
            "|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|",
            "|nor_conv_3x3~0|+|none~0|avg_pool_3x3~2|+|skip_connect~0|nor_conv_1x1~1|none~2|",
            "|conv~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|none~2|",
            "nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|none~2|",
        ] {
            assert!(p.parse_arch(bad).is_err(), "{bad}");
        }
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
