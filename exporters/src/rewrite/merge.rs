//! Parallel convolutions that read one tensor, each with fewer output channels than a block of ONNX
//! Runtime's blocked (NCHWc) layout, merged into one convolution and a `Split`.
//!
//! On x86 ONNX Runtime runs a convolution in a blocked layout (NCHWc) of [`nchwc_block`] channels:
//! the floats of one vector register, 16 with AVX-512 and 8 without (MLAS, its kernel library, sets
//! `NchwcBlockSize` so in `platform.cpp`). It pads the output channels of a convolution to a whole
//! number of blocks: with AVX-512 a convolution with 8 output channels costs as much as one with 16. So
//! when a tensor feeds several such convolutions (in NAS-Bench-201's cells, the `nor_conv` edges
//! leaving one node share their input and its ReLU), one convolution with their filters stacked
//! fills the blocks that would otherwise be padding, and a `Split` hands each consumer its part
//! under its old name. Convolutions with a full block or more are left alone: there merging only
//! adds the `Split` (measured slower with `pwsnas bench export`, and the consumers lose ONNX
//! Runtime's fusion of the convolution with the following `Add`).
//!
//! Merged: convolutions of the same input value, kernel, stride, padding, dilation, input channels
//! and output channels (so that the parts are equal, as a `Split` without sizes makes them), with
//! one group.
use std::collections::HashMap;

use crate::ir::{Graph, Node, Op, Tensor};

/// Channels per block of ONNX Runtime's blocked layout on this machine: 16 where the CPU has
/// AVX-512F, 8 on other x86-64 CPUs, and 1 (merge nothing) elsewhere, where ONNX Runtime's CPU
/// provider has no blocked layout to fill. The export is tuned for the machine that runs it (the
/// machine whose latency `pwsnas export` measures); the function is the same on any machine.
pub fn nchwc_block() -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            16
        } else {
            8
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        1
    }
}

/// What convolutions must share to be merged: input, kernel, attributes, weight dims.
type Key = (String, usize, (usize, usize, usize), [usize; 4]);

impl Graph {
    /// See the module docs; `block` is [`nchwc_block`] outside tests.
    pub(crate) fn merge_parallel_convs(&mut self, block: usize) {
        let mut groups: HashMap<Key, Vec<usize>> = HashMap::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let Op::Conv { kernel, attrs } = node.op else { continue };
            let Some(w) = self.initializers.get(&node.inputs[1]) else { continue };
            let [out, cin, kh, kw] = w.dims[..] else { continue };
            if attrs.groups != 1 || out >= block {
                continue;
            }
            let key = (
                node.inputs[0].clone(),
                kernel,
                (attrs.stride, attrs.padding, attrs.dilation),
                [out, cin, kh, kw],
            );
            groups.entry(key).or_default().push(i);
        }
        // The first conv of each group of two or more -> the whole group.
        let mut merged: HashMap<usize, Vec<usize>> = HashMap::new();
        let mut dropped = vec![false; self.nodes.len()];
        for members in groups.into_values().filter(|m| m.len() > 1) {
            for &m in &members[1..] {
                dropped[m] = true;
            }
            merged.insert(members[0], members);
        }
        let old = std::mem::take(&mut self.nodes);
        let mut nodes = Vec::with_capacity(old.len());
        for (i, node) in old.iter().enumerate() {
            if dropped[i] {
                continue;
            }
            match merged.get(&i) {
                Some(members) => {
                    let convs: Vec<&Node> = members.iter().map(|&m| &old[m]).collect();
                    nodes.extend(self.merged_conv(&convs));
                }
                None => nodes.push(node.clone()),
            }
        }
        self.nodes = nodes;
        self.drop_dead();
    }

    /// One convolution with the filters (and biases, zero where absent) of `convs` stacked, and a
    /// `Split` whose outputs carry the names of the convolutions' outputs.
    fn merged_conv(&mut self, convs: &[&Node]) -> [Node; 2] {
        let first = convs[0];
        let Op::Conv { kernel, attrs } = first.op else { unreachable!("only convolutions are merged") };
        let mut weight = Vec::new();
        let mut bias = Vec::new();
        let mut dims = self.initializers[&first.inputs[1]].dims.clone();
        for conv in convs {
            let w = &self.initializers[&conv.inputs[1]];
            weight.extend_from_slice(&w.data);
            match conv.inputs.get(2) {
                Some(b) => bias.extend_from_slice(&self.initializers[b].data),
                None => bias.extend(std::iter::repeat_n(0.0, w.dims[0])),
            }
        }
        dims[0] *= convs.len();
        let name = self.fresh_name(&first.name, "merged");
        let (w, b) = (format!("{name}.weight"), format!("{name}.bias"));
        self.initializers.insert(w.clone(), Tensor { dims: dims.clone(), data: weight });
        self.initializers.insert(b.clone(), Tensor { dims: vec![dims[0]], data: bias });
        let conv = Node {
            name: name.clone(),
            op: Op::Conv { kernel, attrs },
            inputs: vec![first.inputs[0].clone(), w, b],
            output: name.clone(),
        };
        let others = convs[1..].iter().map(|c| c.output.clone()).collect();
        let split = Node {
            name: self.fresh_name(&first.name, "split"),
            op: Op::Split { axis: 1, others },
            inputs: vec![name],
            output: first.output.clone(),
        };
        [conv, split]
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::assert_same_function;
    use crate::ir::Op;
    use crate::testkit::{bn_params, uniform};
    use crate::{ConvAttrs, Dim, GraphBuilder};

    #[test]
    fn narrow_convs_of_one_input_become_one_conv_and_a_split() {
        let shape = |c| vec![Dim::Batch, Dim::Fixed(c), Dim::Fixed(5), Dim::Fixed(5)];
        let mut b = GraphBuilder::new("g", "x", shape(4));
        let x = b.input();
        let r = b.relu(&x);
        let pad = ConvAttrs { padding: 1, ..ConvAttrs::default() };
        let conv = |b: &mut GraphBuilder, x: &crate::Value, out: usize, seed| {
            let c = b.conv(x, uniform(out * 4 * 9, seed, -0.5, 0.5), [out, 4, 3, 3], None, pad);
            b.batch_norm(&c, bn_params(out, seed + 1))
        };
        let a = conv(&mut b, &r, 4, 1);
        let c = conv(&mut b, &r, 4, 3);
        // Another kernel size, a full block, and another input: not merged.
        let one = b.conv(&r, uniform(16, 5, -0.5, 0.5), [4, 4, 1, 1], None, ConvAttrs::default());
        let wide = conv(&mut b, &r, 16, 7);
        let other = conv(&mut b, &x, 4, 9);
        let s = b.sum(&[a.clone(), c, one, other]);
        let wide = b.global_avg_pool(&wide);
        let s = b.global_avg_pool(&s);
        let out = b.concat(&[s, wide], 1);
        let mut g = b.finish(&out, vec![Dim::Batch, Dim::Fixed(20), Dim::Fixed(1), Dim::Fixed(1)]);
        g.fold_batch_norm();
        assert_eq!(g.node_count("Conv"), 5);
        let after = assert_same_function(&g, &[2, 4, 5, 5], |g| g.merge_parallel_convs(16));
        assert_eq!((after.node_count("Conv"), after.node_count("Split")), (4, 1));
        let split = after.nodes.iter().find(|n| matches!(n.op, Op::Split { .. })).unwrap();
        // The parts keep the names of the convs they replace, so their readers are unchanged.
        assert_eq!(split.outputs().collect::<Vec<_>>(), ["conv_0", "conv_1"]);
        assert_eq!(after.initializers["conv_0.merged.weight"].dims, [8, 4, 3, 3]);
        assert_eq!(after.initializers["conv_0.merged.bias"].dims, [8]);
        // Where a block is 4 channels (or less), 4-channel convs fill it already: nothing merges.
        for block in [4, 1] {
            let mut same = g.clone();
            same.merge_parallel_convs(block);
            assert_eq!((same.node_count("Conv"), same.node_count("Split")), (5, 0));
        }
    }
}
