//! The graph IR: a topologically ordered list of typed operator nodes, their `f32` parameters, and the
//! graph's single input and output.
//!
//! The IR is deliberately small: it holds exactly the operators an exported pwsnas CNN needs, each with
//! typed attributes, so that passes such as [`Graph::fold_batch_norm`] can reason about operators
//! without parsing ONNX attribute lists, and so that lowering to ONNX ([`Graph::to_model`]) is one
//! place that knows ONNX spellings.
//!
//! Naming: every node is named `<kind>_<n>` (`conv_3`, `relu_0`, …) and its output value carries the
//! same name; a node's parameters are named `<node>.<role>` (`conv_3.weight`, `bn_1.running_var`).
//! Values that a node needs internally also hang under its name (`zeros_0.shape`, `bn_2.mul`), so names
//! stay unique by construction.

use indexmap::IndexMap;

/// One dimension of the graph input or output shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dim {
    /// The dynamic batch dimension, written to ONNX as the symbolic dimension [`Dim::BATCH_PARAM`].
    Batch,
    /// A fixed size.
    Fixed(usize),
}

impl Dim {
    /// The ONNX `dim_param` of [`Dim::Batch`].
    pub const BATCH_PARAM: &'static str = "batch";
}

/// A handle to a tensor of the graph under construction: its name and its rank (number of dimensions).
///
/// Values are created by [`GraphBuilder`](crate::GraphBuilder) methods and are only meaningful for the
/// builder that created them. The rank is tracked so that rank-dependent lowerings (e.g. the broadcast
/// shape of a BatchNormalization turned into `Mul`+`Add`) are right for any input rank.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Value {
    pub(crate) name: String,
    pub(crate) rank: usize,
}

impl Value {
    /// The tensor's name in the graph (and in the ONNX model).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tensor's number of dimensions.
    pub fn rank(&self) -> usize {
        self.rank
    }
}

/// Attributes of a 2-D convolution with a square kernel and symmetric padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvAttrs {
    pub stride: usize,
    /// Zero padding added on every side.
    pub padding: usize,
    pub dilation: usize,
    pub groups: usize,
}

impl Default for ConvAttrs {
    /// Stride 1, no padding, no dilation, one group.
    fn default() -> Self {
        ConvAttrs { stride: 1, padding: 0, dilation: 1, groups: 1 }
    }
}

/// The part of one axis that [`GraphBuilder::slice`](crate::GraphBuilder::slice) keeps: indices
/// `start, start + step, …` below `end` (numpy's `start:end:step`), with `end` clamped to the axis
/// length as ONNX and numpy do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SliceAxis {
    pub axis: usize,
    pub start: i64,
    /// `None`: to the end of the axis.
    pub end: Option<i64>,
    pub step: i64,
}

impl SliceAxis {
    /// `start:` on `axis` (everything from `start` on).
    pub fn from(axis: usize, start: i64) -> SliceAxis {
        SliceAxis { axis, start, end: None, step: 1 }
    }

    /// `::step` on `axis` (every `step`-th element from the first).
    pub fn every(axis: usize, step: i64) -> SliceAxis {
        SliceAxis { axis, start: 0, end: None, step }
    }
}

/// Inference parameters of a batch normalisation over the channel axis (axis 1):
/// `y = (x - mean) / sqrt(var + eps) * gamma + beta`.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchNormParams {
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
    /// Running mean.
    pub mean: Vec<f32>,
    /// Running variance.
    pub var: Vec<f32>,
    pub eps: f32,
}

/// A constant `f32` tensor (row-major).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Tensor {
    pub(crate) dims: Vec<usize>,
    pub(crate) data: Vec<f32>,
}

/// An operator with its typed attributes. The comment on each variant lists the node's inputs, in ONNX
/// order; parameters are initializers named after the node.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Op {
    /// x, weight `[out, in/groups, k, k]`, optional bias `[out]`.
    Conv { kernel: usize, attrs: ConvAttrs },
    /// x, gamma, beta, mean, var (all `[C]`). `rank` is the rank of x.
    BatchNormalization { eps: f32, rank: usize },
    /// x.
    Relu,
    /// x, min and max (scalars).
    Clip,
    /// x.
    AveragePool { kernel: usize, stride: usize, padding: usize, count_include_pad: bool },
    /// x.
    MaxPool { kernel: usize, stride: usize, padding: usize },
    /// a, b (broadcasting).
    Add,
    /// a, b (broadcasting).
    Mul,
    /// Three or more operands.
    Sum,
    /// Two or more operands.
    Concat { axis: i64 },
    /// x; keeps a strided range of some axes. The ranges are typed here; the ONNX lowering turns them
    /// into the `int64` inputs `starts`, `ends`, `axes`, `steps`.
    Slice { axes: Vec<SliceAxis> },
    /// x; gives x's shape as an `int64` vector.
    Shape,
    /// A shape vector; gives an `f32` tensor of zeros of that shape.
    ConstantOfShape,
    /// x.
    GlobalAveragePool,
    /// x; flattens to `[N, rest]`.
    Flatten,
    /// x `[N, in]`, weight `[out, in]`, optional bias `[out]`: `x Wᵀ + b`.
    Gemm,
    /// x; splits it into `1 + others.len()` equal parts along `axis`: the first is the node's
    /// `output`, the others are named in `others`. Only rewrites emit it.
    Split { axis: i64, others: Vec<String> },
}

impl Op {
    /// The ONNX `op_type` of this operator.
    pub(crate) fn op_type(&self) -> &'static str {
        match self {
            Op::Conv { .. } => "Conv",
            Op::BatchNormalization { .. } => "BatchNormalization",
            Op::Relu => "Relu",
            Op::Clip => "Clip",
            Op::AveragePool { .. } => "AveragePool",
            Op::MaxPool { .. } => "MaxPool",
            Op::Add => "Add",
            Op::Mul => "Mul",
            Op::Sum => "Sum",
            Op::Concat { .. } => "Concat",
            Op::Slice { .. } => "Slice",
            Op::Shape => "Shape",
            Op::ConstantOfShape => "ConstantOfShape",
            Op::GlobalAveragePool => "GlobalAveragePool",
            Op::Flatten => "Flatten",
            Op::Gemm => "Gemm",
            Op::Split { .. } => "Split",
        }
    }
}

/// One operator application; its output value has the node's name.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Node {
    pub(crate) name: String,
    pub(crate) op: Op,
    pub(crate) inputs: Vec<String>,
    pub(crate) output: String,
}

impl Node {
    /// Every value the node computes: its `output`, then the other parts of a `Split`.
    pub(crate) fn outputs(&self) -> impl Iterator<Item = &String> {
        let others = match &self.op {
            Op::Split { others, .. } => others.as_slice(),
            _ => &[],
        };
        std::iter::once(&self.output).chain(others)
    }
}

/// The name and shape of the graph input or output.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Port {
    pub(crate) name: String,
    pub(crate) shape: Vec<Dim>,
}

/// A finished inference graph: one `f32` input, one `f32` output, nodes in topological order and their
/// parameters. Built by [`GraphBuilder`](crate::GraphBuilder); see the module docs of the crate for the
/// export pipeline.
#[derive(Clone, Debug, PartialEq)]
pub struct Graph {
    pub(crate) name: String,
    pub(crate) input: Port,
    pub(crate) output: Port,
    pub(crate) nodes: Vec<Node>,
    pub(crate) initializers: IndexMap<String, Tensor>,
}

impl Graph {
    /// The graph's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name of the graph input.
    pub fn input_name(&self) -> &str {
        &self.input.name
    }

    /// The name of the graph output.
    pub fn output_name(&self) -> &str {
        &self.output.name
    }

    /// How many nodes have the given ONNX `op_type` (e.g. `"Conv"`).
    pub fn node_count(&self, op_type: &str) -> usize {
        self.nodes.iter().filter(|n| n.op.op_type() == op_type).count()
    }

    /// The ONNX `op_type` of every node, in topological order.
    pub fn op_types(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.op.op_type().to_string()).collect()
    }

    /// The number of `f32` parameters stored in the graph.
    pub fn parameter_count(&self) -> usize {
        self.initializers.values().map(|t| t.data.len()).sum()
    }
}
