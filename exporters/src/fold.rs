//! BatchNormalization folding: removes every `BatchNormalization` node from a [`Graph`].
//!
//! At inference a batch norm is a per-channel affine map `y = x·s + t` with `s = γ/√(var+ε)` and
//! `t = β − mean·s`. When its input is a convolution whose output nothing else reads, the map is
//! merged into the convolution (`W'[o] = W[o]·s[o]`, `b'[o] = b[o]·s[o] + t[o]`), which removes a node
//! and a full pass over the activation: the exported model is smaller and faster, and matches what
//! `torch.onnx.export` produces for a network in eval mode. Any other batch norm (after an `Add`, on the
//! graph input, after a convolution whose output is also used elsewhere) becomes `Mul` + `Add` with
//! constants of shape `[1, C, 1, …]`, which every runtime executes well and keeps the graph free of
//! training-mode operators. Scale and shift are computed in `f64` and rounded once to `f32`.

use std::collections::HashMap;

use crate::ir::{Graph, Node, Op, Tensor};

impl Graph {
    /// Folds every `BatchNormalization` whose input comes from a `Conv` with no other consumer into that
    /// `Conv`'s weight and bias (adding a bias if it had none), and turns every other one into `Mul` +
    /// `Add` with per-channel constants. Afterwards the graph has no `BatchNormalization` node. The
    /// function is exact up to `f32` rounding of the folded parameters.
    ///
    /// # Panics
    /// If a folded batch norm's channel count differs from its convolution's output channels.
    pub fn fold_batch_norm(&mut self) {
        let mut uses: HashMap<String, usize> = HashMap::new();
        for input in self.nodes.iter().flat_map(|n| &n.inputs) {
            *uses.entry(input.clone()).or_default() += 1;
        }
        *uses.entry(self.output.name.clone()).or_default() += 1;

        // A removed batch norm's output name -> the value that now carries its result.
        let mut alias: HashMap<String, String> = HashMap::new();
        // Output name -> index in `nodes` of the node producing it.
        let mut producer: HashMap<String, usize> = HashMap::new();
        let mut nodes: Vec<Node> = Vec::with_capacity(self.nodes.len());
        for mut node in std::mem::take(&mut self.nodes) {
            for input in &mut node.inputs {
                if let Some(target) = alias.get(input) {
                    input.clone_from(target);
                }
            }
            let Op::BatchNormalization { eps, rank } = node.op else {
                producer.insert(node.output.clone(), nodes.len());
                nodes.push(node);
                continue;
            };
            let (scale, shift) = self.take_affine(&node, eps);
            let x = &node.inputs[0];
            match producer.get(x) {
                Some(&conv) if matches!(nodes[conv].op, Op::Conv { .. }) && uses[x] == 1 => {
                    self.merge_into_conv(&mut nodes[conv], &node.name, &scale, &shift);
                    let carried = uses.get(&node.output).copied().unwrap_or(0);
                    uses.insert(x.clone(), carried);
                    alias.insert(node.output, x.clone());
                }
                _ => {
                    for affine in self.affine_nodes(node, rank, &scale, &shift) {
                        producer.insert(affine.output.clone(), nodes.len());
                        nodes.push(affine);
                    }
                }
            }
        }
        self.nodes = nodes;
        if let Some(target) = alias.get(&self.output.name) {
            self.output.name.clone_from(target);
        }
    }

    /// Removes a batch norm's parameters from the initializers and returns its per-channel scale `s`
    /// and shift `t` in `f64`.
    fn take_affine(&mut self, bn: &Node, eps: f32) -> (Vec<f64>, Vec<f64>) {
        let mut take = |i: usize| {
            let name = &bn.inputs[i];
            let t = self.initializers.shift_remove(name);
            t.unwrap_or_else(|| panic!("{}: parameter {name} is not an initializer", bn.name)).data
        };
        let (gamma, beta, mean, var) = (take(1), take(2), take(3), take(4));
        let scale: Vec<f64> = gamma
            .iter()
            .zip(&var)
            .map(|(&g, &v)| f64::from(g) / (f64::from(v) + f64::from(eps)).sqrt())
            .collect();
        let shift = beta
            .iter()
            .zip(&mean)
            .zip(&scale)
            .map(|((&b, &m), &s)| f64::from(b) - f64::from(m) * s)
            .collect();
        (scale, shift)
    }

    /// Scales `conv`'s weight per output channel and sets its bias to `b·s + t`.
    fn merge_into_conv(&mut self, conv: &mut Node, bn: &str, scale: &[f64], shift: &[f64]) {
        let weight = self.initializers.get_mut(&conv.inputs[1]).expect("conv weight is an initializer");
        let out = weight.dims[0];
        assert_eq!(out, scale.len(), "{bn} has {} channels but {} has {out}", scale.len(), conv.name);
        let per_channel = weight.data.len() / out;
        for (chunk, &s) in weight.data.chunks_mut(per_channel).zip(scale) {
            for w in chunk {
                *w = (f64::from(*w) * s) as f32;
            }
        }
        if let Some(bias) = conv.inputs.get(2) {
            let bias = self.initializers.get_mut(bias).expect("conv bias is an initializer");
            for ((b, &s), &t) in bias.data.iter_mut().zip(scale).zip(shift) {
                *b = (f64::from(*b) * s + t) as f32;
            }
        } else {
            let name = format!("{}.bias", conv.name);
            let data = shift.iter().map(|&t| t as f32).collect();
            self.initializers.insert(name.clone(), Tensor { dims: vec![out], data });
            conv.inputs.push(name);
        }
    }

    /// Replaces a batch norm by `Mul` (`<bn>.mul`) and `Add` (named like the batch norm, so its consumers
    /// are unchanged), with constants `<bn>.scale` and `<bn>.shift` of shape `[1, C, 1, …]`.
    fn affine_nodes(&mut self, bn: Node, rank: usize, scale: &[f64], shift: &[f64]) -> [Node; 2] {
        let mut dims = vec![1; rank];
        dims[1] = scale.len();
        let mut constant = |role: &str, values: &[f64]| {
            let name = format!("{}.{role}", bn.name);
            let data = values.iter().map(|&v| v as f32).collect();
            self.initializers.insert(name.clone(), Tensor { dims: dims.clone(), data });
            name
        };
        let (scale, shift) = (constant("scale", scale), constant("shift", shift));
        let mul = format!("{}.mul", bn.name);
        let x = bn.inputs.into_iter().next().expect("batch norm has an input");
        [
            Node { name: mul.clone(), op: Op::Mul, inputs: vec![x, scale], output: mul.clone() },
            Node { name: bn.name, op: Op::Add, inputs: vec![mul, shift], output: bn.output },
        ]
    }
}

#[cfg(test)]
mod tests {
    use crate::testkit::{bn_params, max_abs_diff, run_graph, uniform, Array};
    use crate::{ConvAttrs, Dim, Graph, GraphBuilder};

    fn nchw(c: usize, h: usize, w: usize) -> Vec<Dim> {
        vec![Dim::Batch, Dim::Fixed(c), Dim::Fixed(h), Dim::Fixed(w)]
    }

    /// Folds `graph` and checks that it has no batch norm left, that `expect` are its op types, and
    /// that it computes what it computed before, within 1e-5.
    fn assert_fold_exact(mut graph: Graph, input_dims: &[usize], expect: &[&str]) -> Graph {
        let input = Array::random(input_dims, 42);
        let before = run_graph(&graph, &input);
        graph.fold_batch_norm();
        assert_eq!(graph.node_count("BatchNormalization"), 0);
        assert_eq!(graph.op_types(), expect);
        let after = run_graph(&graph, &input);
        let diff = max_abs_diff(&before, &after);
        assert!(diff < 1e-5, "folding changed the output by {diff}");
        graph
    }

    #[test]
    fn folds_conv_bn_with_stride_padding_dilation_and_missing_bias() {
        let mut b = GraphBuilder::new("g", "x", nchw(3, 9, 9));
        let x = b.input();
        let attrs = ConvAttrs { stride: 2, padding: 1, dilation: 1, groups: 1 };
        let y =
            b.conv(&x, uniform(6 * 3 * 9, 1, -1.0, 1.0), [6, 3, 3, 3], Some(uniform(6, 2, -1.0, 1.0)), attrs);
        let y = b.batch_norm(&y, bn_params(6, 3));
        let y = b.relu(&y);
        let attrs = ConvAttrs { stride: 1, padding: 2, dilation: 2, groups: 1 };
        let y = b.conv(&y, uniform(4 * 6 * 9, 4, -1.0, 1.0), [4, 6, 3, 3], None, attrs);
        let y = b.batch_norm(&y, bn_params(4, 5));
        let graph = b.finish(&y, nchw(4, 5, 5));
        let graph = assert_fold_exact(graph, &[2, 3, 9, 9], &["Conv", "Relu", "Conv"]);
        // The bias-less conv got a bias, and the graph output is now the conv's output.
        assert!(graph.initializers.contains_key("conv_1.bias"));
        assert_eq!(graph.output_name(), "conv_1");
        assert!(graph.initializers.keys().all(|k| !k.starts_with("bn_")), "batch-norm parameters left");
    }

    #[test]
    fn folds_depthwise_and_grouped_conv() {
        let mut b = GraphBuilder::new("g", "x", nchw(4, 6, 6));
        let x = b.input();
        let dw = ConvAttrs { stride: 1, padding: 1, dilation: 1, groups: 4 };
        let y = b.conv(&x, uniform(4 * 9, 1, -1.0, 1.0), [4, 1, 3, 3], None, dw);
        let y = b.batch_norm(&y, bn_params(4, 2));
        let grouped = ConvAttrs { stride: 2, padding: 0, dilation: 1, groups: 2 };
        let y = b.conv(
            &y,
            uniform(6 * 2 * 4, 3, -1.0, 1.0),
            [6, 2, 2, 2],
            Some(uniform(6, 4, -1.0, 1.0)),
            grouped,
        );
        let y = b.batch_norm(&y, bn_params(6, 5));
        let graph = b.finish(&y, nchw(6, 3, 3));
        assert_fold_exact(graph, &[3, 4, 6, 6], &["Conv", "Conv"]);
    }

    #[test]
    fn folds_chained_batch_norms_into_one_conv() {
        let mut b = GraphBuilder::new("g", "x", nchw(2, 4, 4));
        let x = b.input();
        let y = b.conv(&x, uniform(3 * 2, 1, -1.0, 1.0), [3, 2, 1, 1], None, ConvAttrs::default());
        let y = b.batch_norm(&y, bn_params(3, 2));
        let y = b.batch_norm(&y, bn_params(3, 3));
        let y = b.relu(&y);
        let graph = b.finish(&y, nchw(3, 4, 4));
        assert_fold_exact(graph, &[2, 2, 4, 4], &["Conv", "Relu"]);
    }

    #[test]
    fn batch_norm_not_after_a_single_use_conv_becomes_mul_add() {
        let mut b = GraphBuilder::new("g", "x", nchw(3, 5, 5));
        let x = b.input();
        // On the graph input.
        let y = b.batch_norm(&x, bn_params(3, 1));
        // After a conv whose output is also read by a relu.
        let c = b.conv(
            &y,
            uniform(3 * 3 * 9, 2, -1.0, 1.0),
            [3, 3, 3, 3],
            None,
            ConvAttrs { padding: 1, ..Default::default() },
        );
        let n = b.batch_norm(&c, bn_params(3, 3));
        let r = b.relu(&c);
        let y = b.add(&n, &r);
        // After an add.
        let y = b.batch_norm(&y, bn_params(3, 4));
        let graph = b.finish(&y, nchw(3, 5, 5));
        let expect = ["Mul", "Add", "Conv", "Mul", "Add", "Relu", "Add", "Mul", "Add"];
        let graph = assert_fold_exact(graph, &[2, 3, 5, 5], &expect);
        assert_eq!(graph.initializers["bn_0.scale"].dims, [1, 3, 1, 1]);
        assert_eq!(graph.initializers["bn_2.shift"].dims, [1, 3, 1, 1]);
        // The last Add keeps the batch norm's name, so the graph output is unchanged.
        assert_eq!(graph.output_name(), "bn_2");
    }

    #[test]
    fn batch_norm_on_a_flat_tensor_broadcasts_over_channels() {
        let mut b = GraphBuilder::new("g", "x", vec![Dim::Batch, Dim::Fixed(5)]);
        let x = b.input();
        let y = b.batch_norm(&x, bn_params(5, 1));
        let graph = b.finish(&y, vec![Dim::Batch, Dim::Fixed(5)]);
        let graph = assert_fold_exact(graph, &[3, 5], &["Mul", "Add"]);
        assert_eq!(graph.initializers["bn_0.scale"].dims, [1, 5]);
    }

    #[test]
    fn every_op_graph_keeps_its_output_after_folding() {
        let mut graph = crate::testkit::every_op_graph();
        let convs = graph.node_count("Conv");
        graph.fold_batch_norm();
        assert_eq!(graph.node_count("BatchNormalization"), 0);
        assert_eq!(graph.node_count("Conv"), convs);
        assert_eq!((graph.node_count("Mul"), graph.node_count("Add")), (1, 3));
        assert_eq!(graph.node_count("Identity"), 0);
    }
}
