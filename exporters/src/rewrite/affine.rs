//! A per-channel affine map `x·s + t` (what BatchNorm folding leaves where a batch norm cannot merge
//! into a convolution, e.g. after a sum) as one 1×1 depthwise `Conv` with bias.
//!
//! `Mul` + `Add` are two passes over the tensor and, in ONNX Runtime's blocked layout, a layout change
//! between them; a 1×1 depthwise convolution is one pass in that layout, and ONNX Runtime fuses a
//! following `Relu` into it (as it does for the `BatchNormalization` that `torch.onnx.export` writes).
//! Only 4-D tensors with `[1, C, 1, 1]` constants are rewritten.
use crate::ir::{ConvAttrs, Dim, Graph, Node, Op, Tensor};

impl Graph {
    /// See the module docs.
    pub(crate) fn affine_to_depthwise(&mut self) {
        let uses = self.use_counts();
        let shapes = self.shapes();
        let per_channel = |g: &Graph, name: &str, c: usize| {
            g.initializers.get(name).filter(|t| t.dims == [1, c, 1, 1]).map(|t| t.data.clone())
        };
        let mut nodes: Vec<Node> = Vec::with_capacity(self.nodes.len());
        for node in std::mem::take(&mut self.nodes) {
            let rewritten = (|| {
                if node.op != Op::Add {
                    return None;
                }
                // The Mul is the node just before (folding emits them together) and only read here.
                let mul = nodes.last().filter(|m| m.op == Op::Mul && uses.get(&m.output) == Some(&1))?;
                let shift = node.inputs.iter().find(|i| **i != mul.output)?;
                if !node.inputs.contains(&mul.output) {
                    return None;
                }
                let x = &mul.inputs[0];
                let Some([Dim::Batch, Dim::Fixed(c), _, _]) = shapes.get(x).map(Vec::as_slice) else {
                    return None;
                };
                let c = *c;
                let scale = per_channel(self, &mul.inputs[1], c)?;
                let shift = per_channel(self, shift, c)?;
                Some((x.clone(), c, scale, shift))
            })();
            let Some((x, c, scale, shift)) = rewritten else {
                nodes.push(node);
                continue;
            };
            nodes.pop();
            let (w, b) = (self.fresh_name(&node.name, "weight"), self.fresh_name(&node.name, "bias"));
            self.initializers.insert(w.clone(), Tensor { dims: vec![c, 1, 1, 1], data: scale });
            self.initializers.insert(b.clone(), Tensor { dims: vec![c], data: shift });
            let attrs = ConvAttrs { groups: c, ..ConvAttrs::default() };
            nodes.push(Node { op: Op::Conv { kernel: 1, attrs }, inputs: vec![x, w, b], ..node });
        }
        self.nodes = nodes;
        self.drop_dead();
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::assert_same_function;
    use crate::testkit::{bn_params, uniform};
    use crate::{ConvAttrs, Dim, GraphBuilder};

    #[test]
    fn a_batch_norm_after_a_sum_becomes_a_depthwise_conv() {
        let shape = vec![Dim::Batch, Dim::Fixed(3), Dim::Fixed(4), Dim::Fixed(4)];
        let mut b = GraphBuilder::new("g", "x", shape.clone());
        let x = b.input();
        let c = b.conv(&x, uniform(9, 1, -1.0, 1.0), [3, 3, 1, 1], None, ConvAttrs::default());
        let s = b.add(&c, &x);
        let n = b.batch_norm(&s, bn_params(3, 2));
        let out = b.relu(&n);
        let mut g = b.finish(&out, shape);
        g.fold_batch_norm();
        assert_eq!(g.op_types(), ["Conv", "Add", "Mul", "Add", "Relu"]);
        let after = assert_same_function(&g, &[2, 3, 4, 4], |g| g.affine_to_depthwise());
        assert_eq!(after.op_types(), ["Conv", "Add", "Conv", "Relu"]);
        assert_eq!(after.nodes[2].name, "bn_0");
        assert_eq!(after.initializers["bn_0.weight"].dims, [3, 1, 1, 1]);
        assert!(!after.initializers.contains_key("bn_0.scale"), "the Mul's constants are dropped");
    }

    #[test]
    fn a_flat_batch_norm_stays_mul_add() {
        let shape = vec![Dim::Batch, Dim::Fixed(5)];
        let mut b = GraphBuilder::new("g", "x", shape.clone());
        let x = b.input();
        let y = b.batch_norm(&x, bn_params(5, 1));
        let mut g = b.finish(&y, shape);
        g.fold_batch_norm();
        let after = assert_same_function(&g, &[3, 5], |g| g.affine_to_depthwise());
        assert_eq!(after.op_types(), ["Mul", "Add"]);
    }
}
