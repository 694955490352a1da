//! Variadic `Sum` to a chain of binary `Add`s that ONNX Runtime fuses into convolutions.
//!
//! ONNX Runtime fuses `Conv` + `Add` (+ `Relu`) into one convolution that adds the other operand as
//! it writes its output (the `Sum` input of its blocked-layout `Conv`, the `Z` input of `FusedConv`),
//! but only for a binary `Add` one of whose operands a convolution produced for that `Add` alone; a
//! variadic `Sum` (how a node of three or more terms is lowered) is never fused. So `Sum(t1, …, tn)`
//! becomes `((a + b) + c) + …` with the terms that are not such convolution outputs first: then
//! every `Add` after the first (and the first too, when one of its terms is a convolution) has a
//! fresh convolution output as its second operand, and every convolution term absorbs one `Add`.
//! The last `Add` keeps the `Sum`'s name, so nothing that reads the sum changes.
use crate::ir::{Graph, Node, Op};

impl Graph {
    /// See the module docs.
    pub(crate) fn sums_to_adds(&mut self) {
        let uses = self.use_counts();
        let convs: std::collections::HashSet<String> = self
            .nodes
            .iter()
            .filter(|n| matches!(n.op, Op::Conv { .. }) && uses.get(&n.output) == Some(&1))
            .map(|n| n.output.clone())
            .collect();
        let mut nodes = Vec::with_capacity(self.nodes.len());
        for node in std::mem::take(&mut self.nodes) {
            if node.op != Op::Sum || node.inputs.len() < 3 {
                nodes.push(node);
                continue;
            }
            let (mut terms, fused): (Vec<String>, Vec<String>) =
                node.inputs.iter().cloned().partition(|t| !convs.contains(t));
            terms.extend(fused);
            let mut acc = terms[0].clone();
            for (k, term) in terms.iter().enumerate().skip(1) {
                let last = k == terms.len() - 1;
                let name =
                    if last { node.name.clone() } else { self.fresh_name(&node.name, &format!("add{k}")) };
                let output = if last { node.output.clone() } else { name.clone() };
                nodes.push(Node {
                    name,
                    op: Op::Add,
                    inputs: vec![acc, term.clone()],
                    output: output.clone(),
                });
                acc = output;
            }
        }
        self.nodes = nodes;
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::assert_same_function;
    use crate::testkit::{bn_params, uniform};
    use crate::{ConvAttrs, Dim, GraphBuilder};

    #[test]
    fn a_sum_becomes_adds_with_the_convolution_terms_last() {
        let shape = vec![Dim::Batch, Dim::Fixed(4), Dim::Fixed(5), Dim::Fixed(5)];
        let mut b = GraphBuilder::new("g", "x", shape.clone());
        let x = b.input();
        let pad = ConvAttrs { padding: 1, ..ConvAttrs::default() };
        let r = b.relu(&x);
        let conv = |b: &mut GraphBuilder, seed| {
            let c = b.conv(&r, uniform(4 * 4 * 9, seed, -0.5, 0.5), [4, 4, 3, 3], None, pad);
            b.batch_norm(&c, bn_params(4, seed + 1))
        };
        let c1 = conv(&mut b, 1);
        let c2 = conv(&mut b, 3);
        let pool = b.avg_pool(&x, 3, 1, 1, false);
        let s = b.sum(&[c1, c2, pool, x.clone()]);
        let out = b.relu(&s);
        let mut g = b.finish(&out, shape);
        g.fold_batch_norm();
        let after = assert_same_function(&g, &[2, 4, 5, 5], |g| g.sums_to_adds());
        assert_eq!(after.node_count("Sum"), 0);
        let adds: Vec<_> = after.nodes.iter().filter(|n| n.op == crate::ir::Op::Add).collect();
        let inputs: Vec<_> = adds.iter().map(|n| n.inputs.clone()).collect();
        assert_eq!(
            inputs,
            [["avgpool_0", "x"], ["sum_0.add1", "conv_0"], ["sum_0.add2", "conv_1"]]
                .map(|v| v.map(String::from))
        );
        // The last Add is the sum: the ReLU still reads `sum_0`.
        assert_eq!((adds[2].name.as_str(), adds[2].output.as_str()), ("sum_0", "sum_0"));
        assert_eq!(after.nodes.last().unwrap().inputs, ["sum_0"]);
    }
}
