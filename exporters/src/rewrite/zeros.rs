//! Zero propagation: what a `none` edge (or a node that receives only `none`) contributes is known
//! to be zero, so the graph need not compute it.
//!
//! A value is zero when it is `Clip(x, 0, 0)` (how a zeros node is lowered, for finite `x`) or
//! `ConstantOfShape` (of `0`), or an op of zeros that gives zeros: `Relu`, `Clip` keeping 0, the
//! pools, `Flatten`, `Mul` by anything, `Add`/`Sum`/`Concat` of zeros only, `Conv` and `Gemm`
//! without bias. Then:
//! - a zero term leaves an `Add` or `Sum` when the other terms still give the sum's shape (one term
//!   left: the sum is that term);
//! - a `Conv` with bias on zeros becomes its bias broadcast, `zeros + bias`, when a zero of its output
//!   shape can be had;
//! - a zero that something still reads is computed once per shape, as `Clip(a, 0, 0)` of the earliest
//!   value `a` of that shape it depends on, so that the nodes that only led to the zeros are dropped.
use std::collections::{HashMap, HashSet};

use super::shapes::{broadcast, Shape};
use crate::ir::{Graph, Node, Op, Tensor};

impl Graph {
    /// See the module docs.
    pub(crate) fn propagate_zeros(&mut self) {
        let shapes = self.shapes();
        let producer: HashMap<String, usize> =
            self.nodes.iter().enumerate().map(|(i, n)| (n.output.clone(), i)).collect();
        let original = self.nodes.clone();
        let mut state = State {
            shapes,
            producer,
            original: &original,
            zero: HashSet::new(),
            alias: HashMap::new(),
            materialized: HashMap::new(),
            emitted: HashSet::from([self.input.name.clone()]),
            nodes: Vec::with_capacity(original.len()),
        };
        let output = self.output.name.clone();
        for node in &original {
            state.visit(self, node.clone(), &output);
        }
        if state.zero.contains(&output) {
            // The whole network computes zeros: compute them as before, under the output's name.
            state.reemit(self, &output);
        }
        let alias = std::mem::take(&mut state.alias);
        self.nodes = std::mem::take(&mut state.nodes);
        self.redirect(&alias);
        self.drop_dead();
    }

    /// Whether `node` is `Clip(x, 0, 0)`.
    fn is_zero_clip(&self, node: &Node) -> bool {
        node.op == Op::Clip
            && node.inputs.len() == 3
            && (1..3).all(|i| self.scalar(&node.inputs[i]) == Some(0.0))
    }

    /// The value of a scalar parameter.
    fn scalar(&self, name: &str) -> Option<f32> {
        self.initializers.get(name).filter(|t| t.data.len() == 1).map(|t| t.data[0])
    }
}

struct State<'a> {
    shapes: HashMap<String, Shape>,
    /// Value -> index of its node in `original`.
    producer: HashMap<String, usize>,
    original: &'a [Node],
    /// Values known to be zero, whose nodes are not emitted.
    zero: HashSet<String>,
    /// Value -> the value that now carries it.
    alias: HashMap<String, String>,
    /// Shape -> the emitted zero of that shape.
    materialized: HashMap<Shape, String>,
    /// Values the new graph computes.
    emitted: HashSet<String>,
    nodes: Vec<Node>,
}

impl State<'_> {
    fn resolve(&self, v: &str) -> String {
        let mut v = v.to_string();
        while let Some(t) = self.alias.get(&v) {
            v.clone_from(t);
        }
        v
    }

    fn emit(&mut self, node: Node) {
        self.emitted.insert(node.output.clone());
        self.nodes.push(node);
    }

    fn is_zero(&self, v: &str) -> bool {
        self.zero.contains(v)
    }

    fn visit(&mut self, g: &mut Graph, mut node: Node, output: &str) {
        for input in &mut node.inputs {
            *input = self.resolve(input);
        }
        let zero_in: Vec<bool> = node.inputs.iter().map(|i| self.is_zero(i)).collect();
        let first_zero = zero_in.first().copied().unwrap_or(false);
        let out_shape = self.shapes.get(&node.output).cloned();
        let becomes_zero = match &node.op {
            Op::Clip if g.is_zero_clip(&node) => true,
            Op::ConstantOfShape => true,
            Op::Relu | Op::AveragePool { .. } | Op::MaxPool { .. } | Op::GlobalAveragePool | Op::Flatten => {
                first_zero
            }
            Op::Clip => {
                let keeps_zero = g.scalar(&node.inputs[1]).is_some_and(|lo| lo <= 0.0)
                    && g.scalar(&node.inputs[2]).is_some_and(|hi| hi >= 0.0);
                first_zero && keeps_zero
            }
            Op::Mul => zero_in.iter().any(|&z| z),
            Op::Concat { .. } => zero_in.iter().all(|&z| z),
            Op::Conv { .. } | Op::Gemm => first_zero && node.inputs.len() == 2,
            _ => false,
        };
        if becomes_zero && out_shape.is_some() {
            self.zero.insert(node.output.clone());
            return;
        }
        match node.op {
            Op::Add | Op::Sum if zero_in.iter().any(|&z| z) && out_shape.is_some() => {
                let out_shape = out_shape.expect("checked");
                let rest: Vec<String> =
                    node.inputs.iter().zip(&zero_in).filter(|(_, &z)| !z).map(|(i, _)| i.clone()).collect();
                let rest_shape = rest
                    .iter()
                    .map(|r| self.shapes.get(r).cloned())
                    .collect::<Option<Vec<_>>>()
                    .and_then(|s| s.into_iter().try_fold(Vec::new(), |acc, s| broadcast(&acc, &s)));
                if rest.is_empty() {
                    self.zero.insert(node.output.clone());
                    return;
                }
                if rest_shape.as_ref() == Some(&out_shape) {
                    if let [only] = rest.as_slice() {
                        if node.output != output {
                            self.alias.insert(node.output.clone(), only.clone());
                            return;
                        }
                    } else {
                        node.op = if rest.len() == 2 { Op::Add } else { Op::Sum };
                        node.inputs = rest;
                        self.emit(node);
                        return;
                    }
                }
            }
            Op::Conv { .. } if first_zero && node.inputs.len() == 3 && node.output != output => {
                // conv(0) = bias, broadcast over the output.
                if let Some(out_shape) = out_shape.filter(|s| s.len() == 4) {
                    if let Some(z) = self.zero_of_shape(g, &out_shape, &node.inputs[0]) {
                        let bias = g.initializers[&node.inputs[2]].clone();
                        let name = g.fresh_name(&node.name, "broadcast");
                        let b = g.fresh_name(&name, "bias");
                        let c = bias.data.len();
                        g.initializers.insert(b.clone(), Tensor { dims: vec![1, c, 1, 1], data: bias.data });
                        self.alias.insert(node.output.clone(), name.clone());
                        self.shapes.insert(name.clone(), out_shape);
                        self.emit(Node { name: name.clone(), op: Op::Add, inputs: vec![z, b], output: name });
                        return;
                    }
                }
            }
            _ => {}
        }
        // Anything else reads its zero inputs as computed tensors.
        for (input, z) in node.inputs.iter_mut().zip(zero_in) {
            if z {
                *input = self.materialize(g, input);
            }
        }
        self.emit(node);
    }

    /// The emitted zero of `v`'s shape, emitting it first if needed: `Clip(a, 0, 0)` when `v`
    /// depends on a computed value `a` of its shape, else `v`'s own node (on its inputs' zeros).
    fn materialize(&mut self, g: &mut Graph, v: &str) -> String {
        let shape = self.shapes[v].clone();
        match self.zero_of_shape(g, &shape, v) {
            Some(z) => z,
            None => self.reemit(g, v),
        }
    }

    /// Emits the original node of the zero value `v`, its zero inputs materialized.
    fn reemit(&mut self, g: &mut Graph, v: &str) -> String {
        let mut node = self.original[self.producer[v]].clone();
        for input in &mut node.inputs {
            *input = self.resolve(input);
            if self.is_zero(input) {
                *input = self.materialize(g, input);
            }
        }
        self.materialized.insert(self.shapes[v].clone(), v.to_string());
        self.emit(node);
        v.to_string()
    }

    /// The emitted zero of `shape`, emitting `Clip(a, 0, 0)` of the earliest computed value `a` of
    /// that shape that `from` depends on (itself included), if there is one.
    fn zero_of_shape(&mut self, g: &mut Graph, shape: &Shape, from: &str) -> Option<String> {
        if let Some(z) = self.materialized.get(shape) {
            return Some(z.clone());
        }
        let anchor = self.earliest_of_shape(shape, from, g.input.name.as_str())?;
        let name = g.fresh_name(&anchor, "zeros");
        let (min, max) = (format!("{name}.min"), format!("{name}.max"));
        for p in [&min, &max] {
            g.initializers.insert(p.clone(), Tensor { dims: vec![], data: vec![0.0] });
        }
        self.emit(Node {
            name: name.clone(),
            op: Op::Clip,
            inputs: vec![anchor, min, max],
            output: name.clone(),
        });
        self.materialized.insert(shape.clone(), name.clone());
        self.shapes.insert(name.clone(), shape.clone());
        Some(name)
    }

    /// Among `from` and the values it depends on (in the original graph), the earliest computed one
    /// of `shape`.
    fn earliest_of_shape(&self, shape: &Shape, from: &str, input: &str) -> Option<String> {
        let order = |v: &str| self.producer.get(v).map_or(0, |&i| i + 1);
        let mut best: Option<(usize, String)> = None;
        let mut seen = HashSet::new();
        let mut stack = vec![from.to_string()];
        while let Some(v) = stack.pop() {
            if !seen.insert(v.clone()) {
                continue;
            }
            let carried = self.resolve(&v);
            if self.shapes.get(&v) == Some(shape)
                && self.emitted.contains(&carried)
                && !self.zero.contains(&carried)
                && best.as_ref().is_none_or(|(i, _)| order(&carried) < *i)
            {
                best = Some((order(&carried), carried));
            }
            if v == input {
                continue;
            }
            if let Some(&i) = self.producer.get(&v) {
                stack
                    .extend(self.original[i].inputs.iter().filter(|x| self.shapes.contains_key(*x)).cloned());
            }
        }
        best.map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::assert_same_function;
    use crate::testkit::{bn_params, uniform};
    use crate::{ConvAttrs, Dim, GraphBuilder};

    fn nchw(c: usize, s: usize) -> Vec<Dim> {
        vec![Dim::Batch, Dim::Fixed(c), Dim::Fixed(s), Dim::Fixed(s)]
    }

    fn conv3(b: &mut GraphBuilder, x: &crate::Value, c: usize, seed: u64) -> crate::Value {
        let pad = ConvAttrs { padding: 1, ..ConvAttrs::default() };
        let y = b.conv(x, uniform(c * c * 9, seed, -0.4, 0.4), [c, c, 3, 3], None, pad);
        b.batch_norm(&y, bn_params(c, seed + 1))
    }

    /// An NB201-like cell whose node 1 receives only `none`: node 2 = conv(x) + skip(node 1), node 3 =
    /// pool(node 1) + conv(relu(node 1)) + conv(relu(node 2)), then a head.
    fn cell_with_a_zero_node() -> crate::Graph {
        let mut b = GraphBuilder::new("g", "x", nchw(4, 6));
        let x = b.input();
        let stem = conv3(&mut b, &x, 4, 1);
        let n1 = b.clip(&stem, 0.0, 0.0);
        let r0 = b.relu(&stem);
        let c = conv3(&mut b, &r0, 4, 3);
        let n2 = b.sum(&[c, n1.clone()]);
        let pool = b.avg_pool(&n1, 3, 1, 1, false);
        let r1 = b.relu(&n1);
        let from_zero = conv3(&mut b, &r1, 4, 5);
        let r2 = b.relu(&n2);
        let c2 = conv3(&mut b, &r2, 4, 7);
        let n3 = b.sum(&[pool, from_zero, c2]);
        let gap = b.global_avg_pool(&n3);
        let flat = b.flatten(&gap);
        let out = b.gemm(&flat, uniform(3 * 4, 9, -1.0, 1.0), 3, 4, Some(uniform(3, 10, -1.0, 1.0)));
        let mut g = b.finish(&out, vec![Dim::Batch, Dim::Fixed(3)]);
        g.fold_batch_norm();
        g
    }

    #[test]
    fn zero_terms_leave_sums_and_a_conv_of_zeros_becomes_its_bias() {
        let g = cell_with_a_zero_node();
        assert_eq!(g.node_count("Sum"), 1);
        let after = assert_same_function(&g, &[2, 4, 6, 6], |g| g.propagate_zeros());
        // node 2 is the conv alone; the pool and the conv of zeros are gone; conv(0) + bias is an Add
        // of a zero and the bias.
        assert_eq!(after.node_count("AveragePool"), 0);
        assert_eq!(after.node_count("Conv"), 3, "{:?}", after.op_types());
        assert_eq!(after.node_count("Sum"), 0);
        assert_eq!(after.node_count("Clip"), 1);
        assert_eq!(after.node_count("Relu"), 2);
        assert_eq!(after.node_count("Add"), 2);
        // The zeros hang off the earliest value of their shape: the graph input.
        let clip = after.nodes.iter().find(|n| n.op == crate::ir::Op::Clip).unwrap();
        assert_eq!(clip.inputs[0], "x");
    }

    #[test]
    fn nodes_that_only_feed_zeros_are_dropped() {
        // relu → conv → zeros(conv): the conv only feeds the zeros, which re-root on the input.
        let mut b = GraphBuilder::new("g", "x", nchw(3, 5));
        let x = b.input();
        let r = b.relu(&x);
        let c = conv3(&mut b, &r, 3, 1);
        let z = b.clip(&c, 0.0, 0.0);
        let y = b.add(&r, &z);
        let m = b.max_pool(&z, 3, 1, 1);
        let out = b.concat(&[y, m], 1);
        let mut g = b.finish(&out, nchw(6, 5));
        g.fold_batch_norm();
        assert_eq!(g.node_count("Conv"), 1);
        let after = assert_same_function(&g, &[1, 3, 5, 5], |g| g.propagate_zeros());
        // relu + zeros is the relu; the pool of zeros is zeros, taken from the graph input (the
        // earliest value of their shape), so the conv is not needed any more.
        assert_eq!(after.op_types(), ["Relu", "Clip", "Concat"]);
        assert_eq!(after.nodes[2].inputs, ["relu_0", "x.zeros"]);
        assert_eq!(after.nodes[1].inputs[0], "x");
    }

    #[test]
    fn a_network_of_zeros_keeps_its_output() {
        let mut b = GraphBuilder::new("g", "x", nchw(2, 4));
        let x = b.input();
        let z = b.clip(&x, 0.0, 0.0);
        let r = b.relu(&z);
        let g0 = b.global_avg_pool(&r);
        let f = b.flatten(&g0);
        let out = b.gemm(&f, uniform(4, 1, -1.0, 1.0), 2, 2, None);
        let g = b.finish(&out, vec![Dim::Batch, Dim::Fixed(2)]);
        let after = assert_same_function(&g, &[3, 2, 4, 4], |g| g.propagate_zeros());
        assert_eq!(after.output_name(), "gemm_0");
        // Computed as before, minus the ReLU of zeros.
        assert_eq!(after.op_types(), ["Clip", "GlobalAveragePool", "Flatten", "Gemm"]);
    }
}
