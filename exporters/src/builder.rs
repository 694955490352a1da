//! [`GraphBuilder`]: the API through which a trained network is lowered into the graph IR, one operator
//! at a time, each call returning the [`Value`] it produces.
//!
//! The builder owns naming (unique, readable `<kind>_<n>` names; see [`crate::ir`]), keeps parameters
//! as `f32` initializers, and never emits no-op nodes: a sum or concatenation of a single value returns
//! that value, and [`GraphBuilder::finish`] drops every node and parameter the output does not depend
//! on, so the exported model has no `Identity` and no dead branches.
//!
//! Misuse (a weight buffer whose length does not match its dims, a [`Value`] from another builder, a
//! convolution on a tensor that is not 4-D, …) is a bug in the lowering code, not bad user input, so the
//! builder panics with a message naming the node instead of returning errors.
//!
//! Signature notes: [`Value`] carries the tensor's rank besides its name; [`GraphBuilder::sum`] and
//! [`GraphBuilder::concat`] panic on an empty slice; `concat` of one value returns it like `sum`.

use std::collections::{HashMap, HashSet};

use indexmap::IndexMap;

use crate::ir::{BatchNormParams, ConvAttrs, Dim, Graph, Node, Op, Port, SliceAxis, Tensor, Value};

/// Hands out unique node names. A name is free when no name taken so far has it as its stem (the part
/// before the first `.`), so a node also owns every `<node>.<suffix>` name.
#[derive(Debug, Default)]
struct Names {
    stems: HashSet<String>,
    next: HashMap<&'static str, usize>,
}

impl Names {
    fn reserve(&mut self, name: &str) {
        let stem = name.split('.').next().unwrap_or(name);
        self.stems.insert(stem.to_string());
    }

    fn fresh(&mut self, kind: &'static str) -> String {
        let counter = self.next.entry(kind).or_insert(0);
        loop {
            let candidate = format!("{kind}_{counter}");
            *counter += 1;
            if self.stems.insert(candidate.clone()) {
                return candidate;
            }
        }
    }
}

/// Builds a [`Graph`] with one `f32` input. See the module docs for naming and misuse.
#[derive(Debug)]
pub struct GraphBuilder {
    name: String,
    input: Value,
    input_shape: Vec<Dim>,
    nodes: Vec<Node>,
    initializers: IndexMap<String, Tensor>,
    names: Names,
    values: HashSet<String>,
}

impl GraphBuilder {
    /// Starts a graph named `name` whose input `input_name` has `input_shape` (typically
    /// `[Dim::Batch, Dim::Fixed(c), Dim::Fixed(h), Dim::Fixed(w)]`).
    pub fn new(name: &str, input_name: &str, input_shape: Vec<Dim>) -> Self {
        let mut names = Names::default();
        names.reserve(input_name);
        let input = Value { name: input_name.to_string(), rank: input_shape.len() };
        GraphBuilder {
            name: name.to_string(),
            values: HashSet::from([input.name.clone()]),
            input,
            input_shape,
            nodes: Vec::new(),
            initializers: IndexMap::new(),
            names,
        }
    }

    /// The graph input.
    pub fn input(&self) -> Value {
        self.input.clone()
    }

    /// A 2-D convolution. `weight` is row-major with `weight_dims = [out, in/groups, k, k]`; `bias`, if
    /// any, has `out` elements.
    ///
    /// # Panics
    /// If `x` is not 4-D, the kernel is not square, a buffer length does not match, `groups` does not
    /// divide `out`, or stride, dilation or groups is 0.
    pub fn conv(
        &mut self,
        x: &Value,
        weight: Vec<f32>,
        weight_dims: [usize; 4],
        bias: Option<Vec<f32>>,
        attrs: ConvAttrs,
    ) -> Value {
        let name = self.names.fresh("conv");
        self.check_value(x, &name, 4);
        let [out, _, kh, kw] = weight_dims;
        assert_eq!(kh, kw, "{name}: kernel must be square, got {kh}x{kw}");
        assert!(
            attrs.stride > 0 && attrs.dilation > 0 && attrs.groups > 0,
            "{name}: stride, dilation and groups must be positive, got {attrs:?}"
        );
        assert_eq!(
            out % attrs.groups,
            0,
            "{name}: {} groups do not divide {out} output channels",
            attrs.groups
        );
        let mut inputs = vec![x.name.clone(), self.param(&name, "weight", weight_dims.to_vec(), weight)];
        if let Some(bias) = bias {
            inputs.push(self.param(&name, "bias", vec![out], bias));
        }
        self.push(name, Op::Conv { kernel: kh, attrs }, inputs, 4)
    }

    /// Batch normalisation over axis 1 with the given inference parameters.
    ///
    /// # Panics
    /// If `x` has fewer than 2 dimensions or the four parameter vectors differ in length.
    pub fn batch_norm(&mut self, x: &Value, p: BatchNormParams) -> Value {
        let name = self.names.fresh("bn");
        self.check_value(x, &name, x.rank);
        assert!(x.rank >= 2, "{name}: batch norm needs a channel axis, input {} has rank {}", x.name, x.rank);
        let c = p.gamma.len();
        assert!(
            p.beta.len() == c && p.mean.len() == c && p.var.len() == c,
            "{name}: gamma, beta, mean and var must have the same length, got {}, {}, {}, {}",
            c,
            p.beta.len(),
            p.mean.len(),
            p.var.len()
        );
        let inputs = vec![
            x.name.clone(),
            self.param(&name, "weight", vec![c], p.gamma),
            self.param(&name, "bias", vec![c], p.beta),
            self.param(&name, "running_mean", vec![c], p.mean),
            self.param(&name, "running_var", vec![c], p.var),
        ];
        self.push(name, Op::BatchNormalization { eps: p.eps, rank: x.rank }, inputs, x.rank)
    }

    /// `max(x, 0)`.
    pub fn relu(&mut self, x: &Value) -> Value {
        let name = self.names.fresh("relu");
        self.check_value(x, &name, x.rank);
        self.push(name, Op::Relu, vec![x.name.clone()], x.rank)
    }

    /// `min(max(x, min), max)`; ReLU6 is `clip(x, 0.0, 6.0)`. The bounds are scalar initializers, as
    /// opset 17 takes them as inputs.
    pub fn clip(&mut self, x: &Value, min: f32, max: f32) -> Value {
        let name = self.names.fresh("clip");
        self.check_value(x, &name, x.rank);
        let inputs = vec![
            x.name.clone(),
            self.param(&name, "min", vec![], vec![min]),
            self.param(&name, "max", vec![], vec![max]),
        ];
        self.push(name, Op::Clip, inputs, x.rank)
    }

    /// 2-D average pooling with a square window and symmetric padding. With `count_include_pad` false
    /// (NAS-Bench-201's `avg_pool_3x3`) padded positions are left out of each average.
    ///
    /// # Panics
    /// If `x` is not 4-D or `kernel` or `stride` is 0.
    pub fn avg_pool(
        &mut self,
        x: &Value,
        kernel: usize,
        stride: usize,
        padding: usize,
        count_include_pad: bool,
    ) -> Value {
        let name = self.names.fresh("avgpool");
        self.check_value(x, &name, 4);
        assert!(kernel > 0 && stride > 0, "{name}: kernel and stride must be positive");
        let op = Op::AveragePool { kernel, stride, padding, count_include_pad };
        self.push(name, op, vec![x.name.clone()], 4)
    }

    /// 2-D max pooling with a square window and symmetric padding.
    ///
    /// # Panics
    /// If `x` is not 4-D or `kernel` or `stride` is 0.
    pub fn max_pool(&mut self, x: &Value, kernel: usize, stride: usize, padding: usize) -> Value {
        let name = self.names.fresh("maxpool");
        self.check_value(x, &name, 4);
        assert!(kernel > 0 && stride > 0, "{name}: kernel and stride must be positive");
        self.push(name, Op::MaxPool { kernel, stride, padding }, vec![x.name.clone()], 4)
    }

    /// `a + b` (with ONNX broadcasting).
    pub fn add(&mut self, a: &Value, b: &Value) -> Value {
        let name = self.names.fresh("add");
        self.check_value(a, &name, a.rank);
        self.check_value(b, &name, b.rank);
        self.push(name, Op::Add, vec![a.name.clone(), b.name.clone()], a.rank.max(b.rank))
    }

    /// The element-wise sum of `xs`: the value itself for one, an `Add` for two, a `Sum` for more.
    ///
    /// # Panics
    /// If `xs` is empty.
    pub fn sum(&mut self, xs: &[Value]) -> Value {
        match xs {
            [] => panic!("sum of no values in graph {}", self.name),
            [x] => {
                self.check_value(x, "sum", x.rank);
                x.clone()
            }
            [a, b] => self.add(a, b),
            _ => {
                let name = self.names.fresh("sum");
                for x in xs {
                    self.check_value(x, &name, x.rank);
                }
                let rank = xs.iter().map(|x| x.rank).max().unwrap_or(0);
                self.push(name, Op::Sum, xs.iter().map(|x| x.name.clone()).collect(), rank)
            }
        }
    }

    /// Concatenation along `axis` (negative counts from the end); one value is returned as is.
    ///
    /// # Panics
    /// If `xs` is empty, the ranks differ, or `axis` is out of range.
    pub fn concat(&mut self, xs: &[Value], axis: i64) -> Value {
        let Some(first) = xs.first() else { panic!("concat of no values in graph {}", self.name) };
        let rank = first.rank;
        let r = rank as i64;
        assert!((-r..r).contains(&axis), "concat: axis {axis} out of range for rank {rank}");
        if let [x] = xs {
            self.check_value(x, "concat", rank);
            return x.clone();
        }
        let name = self.names.fresh("concat");
        for x in xs {
            self.check_value(x, &name, rank);
        }
        self.push(name, Op::Concat { axis }, xs.iter().map(|x| x.name.clone()).collect(), rank)
    }

    /// The strided ranges `axes` of `x`, every other axis whole: `x[:, :, 1:, 1:]` is
    /// `slice(x, &[SliceAxis::from(2, 1), SliceAxis::from(3, 1)])` (DARTS's FactorizedReduce shifts its
    /// input by one pixel this way).
    ///
    /// # Panics
    /// If `axes` is empty, names an axis twice or one that `x` does not have, or a step is not positive.
    pub fn slice(&mut self, x: &Value, axes: &[SliceAxis]) -> Value {
        let name = self.names.fresh("slice");
        self.check_value(x, &name, x.rank);
        assert!(!axes.is_empty(), "{name}: slice of no axes");
        for (k, a) in axes.iter().enumerate() {
            assert!(a.axis < x.rank, "{name}: axis {} out of range for rank {}", a.axis, x.rank);
            assert!(a.step > 0, "{name}: step must be positive, got {}", a.step);
            assert!(axes[..k].iter().all(|b| b.axis != a.axis), "{name}: axis {} sliced twice", a.axis);
        }
        self.push(name, Op::Slice { axes: axes.to_vec() }, vec![x.name.clone()], x.rank)
    }

    /// A tensor of zeros with `x`'s runtime shape (so it follows the dynamic batch size):
    /// `Shape` followed by `ConstantOfShape` with value `0.0f32`.
    pub fn zeros_like(&mut self, x: &Value) -> Value {
        let name = self.names.fresh("zeros");
        self.check_value(x, &name, x.rank);
        let shape = format!("{name}.shape");
        self.nodes.push(Node {
            name: shape.clone(),
            op: Op::Shape,
            inputs: vec![x.name.clone()],
            output: shape.clone(),
        });
        self.push(name, Op::ConstantOfShape, vec![shape], x.rank)
    }

    /// Averages each channel over its spatial positions: `[N, C, H, W]` to `[N, C, 1, 1]`.
    pub fn global_avg_pool(&mut self, x: &Value) -> Value {
        let name = self.names.fresh("gap");
        self.check_value(x, &name, 4);
        self.push(name, Op::GlobalAveragePool, vec![x.name.clone()], 4)
    }

    /// Flattens every axis after the first: `[N, d1, d2, …]` to `[N, d1·d2·…]`.
    pub fn flatten(&mut self, x: &Value) -> Value {
        let name = self.names.fresh("flatten");
        self.check_value(x, &name, x.rank);
        self.push(name, Op::Flatten, vec![x.name.clone()], 2)
    }

    /// A fully connected layer `x Wᵀ + b` on a 2-D `x`, with `weight` row-major `[out, in]` as in
    /// `torch.nn.Linear`.
    ///
    /// # Panics
    /// If `x` is not 2-D or a buffer length does not match.
    pub fn gemm(
        &mut self,
        x: &Value,
        weight: Vec<f32>,
        out_features: usize,
        in_features: usize,
        bias: Option<Vec<f32>>,
    ) -> Value {
        let name = self.names.fresh("gemm");
        self.check_value(x, &name, 2);
        let mut inputs =
            vec![x.name.clone(), self.param(&name, "weight", vec![out_features, in_features], weight)];
        if let Some(bias) = bias {
            inputs.push(self.param(&name, "bias", vec![out_features], bias));
        }
        self.push(name, Op::Gemm, inputs, 2)
    }

    /// Ends construction with `output` as the graph output, declared with `output_shape` (typically
    /// `[Dim::Batch, Dim::Fixed(classes)]`). Nodes and parameters that `output` does not depend on are
    /// dropped.
    ///
    /// # Panics
    /// If `output` is not from this builder or `output_shape` does not have its rank.
    pub fn finish(self, output: &Value, output_shape: Vec<Dim>) -> Graph {
        self.check_value(output, "the graph output", output_shape.len());
        let mut needed: HashSet<&str> = HashSet::from([output.name.as_str()]);
        let mut keep = vec![false; self.nodes.len()];
        for (i, node) in self.nodes.iter().enumerate().rev() {
            if needed.contains(node.output.as_str()) {
                keep[i] = true;
                needed.extend(node.inputs.iter().map(String::as_str));
            }
        }
        let initializers = self
            .initializers
            .iter()
            .filter(|(name, _)| needed.contains(name.as_str()))
            .map(|(n, t)| (n.clone(), t.clone()));
        let initializers = initializers.collect();
        let nodes = self.nodes.iter().zip(&keep).filter(|(_, &k)| k).map(|(n, _)| n.clone()).collect();
        Graph {
            name: self.name,
            input: Port { name: self.input.name, shape: self.input_shape },
            output: Port { name: output.name.clone(), shape: output_shape },
            nodes,
            initializers,
        }
    }

    /// Panics unless `v` was produced by this builder and has the rank `node` needs.
    fn check_value(&self, v: &Value, node: &str, rank: usize) {
        assert!(
            self.values.contains(&v.name),
            "{node}: value {} does not belong to graph {}",
            v.name,
            self.name
        );
        assert_eq!(v.rank, rank, "{node}: value {} has rank {}, expected {rank}", v.name, v.rank);
    }

    /// Adds the initializer `<node>.<role>` and returns its name.
    fn param(&mut self, node: &str, role: &str, dims: Vec<usize>, data: Vec<f32>) -> String {
        let numel: usize = dims.iter().product();
        assert_eq!(
            data.len(),
            numel,
            "{node}: {role} has {} elements, its dims {dims:?} need {numel}",
            data.len()
        );
        let name = format!("{node}.{role}");
        self.initializers.insert(name.clone(), Tensor { dims, data });
        name
    }

    fn push(&mut self, name: String, op: Op, inputs: Vec<String>, rank: usize) -> Value {
        self.values.insert(name.clone());
        self.nodes.push(Node { name: name.clone(), op, inputs, output: name.clone() });
        Value { name, rank }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::testkit::every_op_graph;

    fn nchw(c: usize) -> Vec<Dim> {
        vec![Dim::Batch, Dim::Fixed(c), Dim::Fixed(4), Dim::Fixed(4)]
    }

    #[test]
    fn sum_and_concat_of_one_value_add_no_node() {
        let mut b = GraphBuilder::new("g", "x", nchw(2));
        let x = b.input();
        let r = b.relu(&x);
        assert_eq!(b.sum(std::slice::from_ref(&r)), r);
        assert_eq!(b.concat(std::slice::from_ref(&r), 1), r);
        assert_eq!(b.nodes.len(), 1);
        let two = b.sum(&[x.clone(), r.clone()]);
        let three = b.sum(&[x.clone(), r.clone(), two.clone()]);
        let graph = b.finish(&three, nchw(2));
        assert_eq!(graph.op_types(), ["Relu", "Add", "Sum"]);
    }

    #[test]
    fn names_are_readable_and_unique() {
        let graph = every_op_graph();
        let op_names: Vec<&str> = graph.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(&op_names[..3], ["conv_0", "bn_0", "relu_0"]);
        assert_eq!(graph.nodes[0].inputs, ["input", "conv_0.weight", "conv_0.bias"]);
        let mut seen = HashSet::from([graph.input_name()]);
        for name in
            graph.nodes.iter().map(|n| n.output.as_str()).chain(graph.initializers.keys().map(String::as_str))
        {
            assert!(seen.insert(name), "{name} is used twice");
        }
        assert_eq!(graph.node_count("Identity"), 0);
        // Every operator the builder can emit (Mul only comes from folding).
        let ops: HashSet<String> = graph.op_types().into_iter().collect();
        let all = [
            "Conv",
            "BatchNormalization",
            "Relu",
            "Clip",
            "AveragePool",
            "MaxPool",
            "Add",
            "Sum",
            "Concat",
            "Slice",
            "Shape",
            "ConstantOfShape",
            "GlobalAveragePool",
            "Flatten",
            "Gemm",
        ];
        assert_eq!(ops, all.into_iter().map(String::from).collect());
    }

    #[test]
    fn generated_names_avoid_the_input_name() {
        let mut b = GraphBuilder::new("g", "conv_0.weight", nchw(1));
        let x = b.input();
        let y = b.conv(&x, vec![1.0], [1, 1, 1, 1], None, ConvAttrs::default());
        assert_eq!(y.name(), "conv_1");
        let graph = b.finish(&y, nchw(1));
        assert_eq!(graph.nodes[0].inputs, ["conv_0.weight", "conv_1.weight"]);
    }

    #[test]
    fn finish_drops_what_the_output_does_not_need() {
        let mut b = GraphBuilder::new("g", "x", nchw(2));
        let x = b.input();
        let unused = b.conv(&x, vec![1.0; 4], [2, 2, 1, 1], Some(vec![0.0; 2]), ConvAttrs::default());
        b.relu(&unused);
        let y = b.clip(&x, 0.0, 6.0);
        let graph = b.finish(&y, nchw(2));
        assert_eq!(graph.op_types(), ["Clip"]);
        assert_eq!(graph.initializers.keys().collect::<Vec<_>>(), ["clip_0.min", "clip_0.max"]);
        assert_eq!(graph.parameter_count(), 2);
    }

    #[test]
    fn values_track_rank() {
        let mut b = GraphBuilder::new("g", "x", nchw(3));
        let x = b.input();
        let g = b.global_avg_pool(&x);
        let f = b.flatten(&g);
        assert_eq!((x.rank(), g.rank(), f.rank()), (4, 4, 2));
        assert_eq!(b.gemm(&f, vec![0.0; 6], 2, 3, None).rank(), 2);
    }

    #[test]
    #[should_panic(expected = "slice_0: axis 2 sliced twice")]
    fn rejects_a_slice_of_one_axis_twice() {
        let mut b = GraphBuilder::new("g", "x", nchw(1));
        let x = b.input();
        b.slice(&x, &[SliceAxis::from(2, 1), SliceAxis::every(2, 2)]);
    }

    #[test]
    #[should_panic(expected = "does not belong to graph a")]
    fn rejects_a_value_of_another_builder() {
        let other = GraphBuilder::new("b", "y", nchw(1)).input();
        let mut a = GraphBuilder::new("a", "x", nchw(1));
        a.relu(&other);
    }

    #[test]
    #[should_panic(expected = "conv_0: weight has 8 elements, its dims [2, 1, 3, 3] need 18")]
    fn rejects_a_weight_of_the_wrong_size() {
        let mut b = GraphBuilder::new("g", "x", nchw(1));
        let x = b.input();
        b.conv(&x, vec![0.0; 8], [2, 1, 3, 3], None, ConvAttrs::default());
    }

    #[test]
    #[should_panic(expected = "gemm_0: value x has rank 4, expected 2")]
    fn rejects_gemm_on_an_unflattened_tensor() {
        let mut b = GraphBuilder::new("g", "x", nchw(1));
        let x = b.input();
        b.gemm(&x, vec![0.0; 16], 1, 16, None);
    }
}
