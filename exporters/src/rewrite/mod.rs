//! Graph rewrites after BatchNorm folding: the graph ONNX Runtime runs fastest, computing the same
//! function, for any network lowered to the IR.
//!
//! [`Graph::optimize`] runs, in order:
//! 1. [`zeros`]: zero values (a `none` edge's `Clip(x, 0, 0)`, and what only zeros flow into) are
//!    propagated: zero terms leave sums, ops of zeros become zeros or constants, and the nodes that only
//!    fed zeros are dropped;
//! 2. [`merge`]: convolutions that read one tensor and each fill less than a block of ONNX Runtime's
//!    blocked layout on this machine ([`nchwc_block`]) become one convolution and a `Split`;
//! 3. [`sums`]: every variadic `Sum` becomes a chain of binary `Add`s, ordered so that each `Add`
//!    has a convolution output as an operand, which ONNX Runtime fuses into that convolution (its
//!    `Sum` input) together with a following `Relu`;
//! 4. [`affine`]: a per-channel `Mul` + `Add` (a BatchNorm that could not fold into a convolution)
//!    becomes one 1×1 depthwise `Conv` with bias, which ONNX Runtime runs in one pass in its blocked
//!    layout and fuses with a following `Relu`.
//!
//! Each rewrite is exact up to `f32` rounding and keeps the graph's input, output (name and shape)
//! and the order-independence of names (see [`crate::ir`]). [`Lowering::Plain`] skips them, for
//! comparison (`pwsnas export --no-optimize`).
mod affine;
mod merge;
pub use merge::nchwc_block;
pub(crate) mod shapes;
mod sums;
mod zeros;

use std::collections::{HashMap, HashSet};

use crate::ir::Graph;

/// How a lowered graph becomes the exported one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lowering {
    /// BatchNorm folded, nothing else changed: one node per lowered operator.
    Plain,
    /// BatchNorm folded, then every rewrite of [`Graph::optimize`].
    #[default]
    Optimized,
}

impl Lowering {
    /// `plain` or `optimized`.
    pub fn name(self) -> &'static str {
        match self {
            Lowering::Plain => "plain",
            Lowering::Optimized => "optimized",
        }
    }
}

impl Graph {
    /// Turns the graph as lowered into the exported one: folds BatchNorm, then (for
    /// [`Lowering::Optimized`]) rewrites it.
    pub fn prepare(&mut self, lowering: Lowering) {
        self.fold_batch_norm();
        if lowering == Lowering::Optimized {
            self.optimize();
        }
    }

    /// Every rewrite of the module docs, in order, then drops what the output no longer needs.
    pub fn optimize(&mut self) {
        self.propagate_zeros();
        self.merge_parallel_convs(nchwc_block());
        self.sums_to_adds();
        self.affine_to_depthwise();
        self.drop_dead();
    }

    /// How many times each value is read: as a node input, or as the graph output.
    pub(crate) fn use_counts(&self) -> HashMap<String, usize> {
        let mut uses: HashMap<String, usize> = HashMap::new();
        for input in self.nodes.iter().flat_map(|n| &n.inputs) {
            *uses.entry(input.clone()).or_default() += 1;
        }
        *uses.entry(self.output.name.clone()).or_default() += 1;
        uses
    }

    /// Makes every node that reads a value in `alias` read its target instead (targets may chain).
    /// The graph output is never an alias: it keeps its name.
    pub(crate) fn redirect(&mut self, alias: &HashMap<String, String>) {
        debug_assert!(!alias.contains_key(&self.output.name), "the graph output must keep its name");
        for input in self.nodes.iter_mut().flat_map(|n| &mut n.inputs) {
            while let Some(t) = alias.get(input.as_str()) {
                input.clone_from(t);
            }
        }
    }

    /// Drops every node and parameter the output does not depend on.
    pub(crate) fn drop_dead(&mut self) {
        let mut needed: HashSet<String> = HashSet::from([self.output.name.clone()]);
        let mut keep = vec![false; self.nodes.len()];
        for (i, node) in self.nodes.iter().enumerate().rev() {
            if node.outputs().any(|o| needed.contains(o)) {
                keep[i] = true;
                needed.extend(node.inputs.iter().cloned());
            }
        }
        let mut k = keep.iter();
        self.nodes.retain(|_| *k.next().expect("one flag per node"));
        self.initializers.retain(|name, _| needed.contains(name));
    }

    /// A name `<stem>.<role>` (or with a counter, when taken) that no value or parameter has.
    pub(crate) fn fresh_name(&self, stem: &str, role: &str) -> String {
        let taken = |n: &str| {
            self.initializers.contains_key(n)
                || self.nodes.iter().any(|x| x.name == n || x.outputs().any(|o| o == n))
                || self.input.name == n
        };
        let mut name = format!("{stem}.{role}");
        let mut k = 1;
        while taken(&name) {
            name = format!("{stem}.{role}{k}");
            k += 1;
        }
        name
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use crate::testkit::{every_op_graph, max_abs_diff, onnx_checker, run_graph, Array};
    use crate::{Graph, Metadata};

    #[test]
    fn all_rewrites_keep_a_graph_of_every_operator() {
        let mut g = every_op_graph();
        g.fold_batch_norm();
        let after = assert_same_function(&g, &[2, 3, 8, 8], |g| g.optimize());
        // The zeros leave the sum; the affine after it is a depthwise conv; no variadic Sum is left.
        assert_eq!(
            (after.node_count("Sum"), after.node_count("ConstantOfShape"), after.node_count("Mul")),
            (0, 0, 0)
        );
        assert_eq!(after.node_count("Slice"), g.node_count("Slice"));
    }

    /// Checks that `rewrite` keeps what `graph` computes (within `1e-5` of the output scale), its
    /// input and its output, and that the official ONNX checker accepts the result; returns the
    /// rewritten graph.
    pub(crate) fn assert_same_function(
        graph: &Graph,
        input_dims: &[usize],
        rewrite: impl Fn(&mut Graph),
    ) -> Graph {
        let mut after = graph.clone();
        rewrite(&mut after);
        assert_eq!((&after.input, &after.output.shape), (&graph.input, &graph.output.shape));
        for seed in [1, 2] {
            let input = Array::random(input_dims, seed);
            let (want, got) = (run_graph(graph, &input), run_graph(&after, &input));
            let scale = want.data.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-12);
            let diff = max_abs_diff(&want, &got);
            assert!(diff <= 1e-5 * scale, "the rewrite changed the output by {diff} (scale {scale})");
        }
        if let Err(e) = onnx_checker(&after.to_onnx_bytes(&Metadata::new())) {
            panic!("onnx.checker rejected the rewritten graph {:?}:\n{e}", after.op_types());
        }
        after
    }
}
