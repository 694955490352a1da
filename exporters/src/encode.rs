//! Lowering of a [`Graph`] to an ONNX [`ModelProto`] and its bytes.
//!
//! This is the one place that knows ONNX spellings: operator attribute names, the opset-17 signatures
//! (Clip's bounds are inputs, ConstantOfShape's value is a tensor attribute), how shapes and tensors are
//! written. The model targets IR version [`IR_VERSION`] (8, accepted by ONNX Runtime ≥ 1.10) and the
//! default operator set at [`OPSET_VERSION`] (17). Parameters are `FLOAT` initializers whose elements are
//! stored little-endian in `raw_data`, the compact form every ONNX reader supports; the input and output
//! are `FLOAT` tensors whose [`Dim::Batch`] dimension is the symbolic `"batch"`. A `Slice` takes its
//! ranges as inputs in opset 17: they become `INT64` initializers `<node>.starts`, `<node>.ends`,
//! `<node>.axes` and `<node>.steps` (an open end is `i64::MAX`, which ONNX clamps to the axis length).
//!
//! [`Precision::Fp16`] writes the same graph for half-precision deployment (GPUs): every parameter
//! (and the zero of `ConstantOfShape`) as `FLOAT16`, a `Cast` to `FLOAT16` after the input and one
//! back to `FLOAT` before the output, so the model's input and output stay `FLOAT` and every reader
//! of an `f32` model reads it unchanged (a `Slice`'s ranges stay `INT64`).

use prost::Message;
use serde::{Deserialize, Serialize};

use crate::ir::{Dim, Graph, Node, Op, Port, SliceAxis, Tensor};
use crate::metadata::Metadata;
use crate::proto::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto, type_proto, AttributeProto,
    GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};

/// The ONNX IR version of exported models.
pub const IR_VERSION: i64 = 8;
/// The version of the default ONNX operator set that exported models import.
pub const OPSET_VERSION: i64 = 17;
/// The `producer_name` of exported models.
pub const PRODUCER: &str = "pwsnas";

/// The floating-point type the exported model computes in (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// `FLOAT` everywhere.
    #[default]
    Fp32,
    /// `FLOAT16` parameters and computation, `FLOAT` input and output.
    Fp16,
}

impl Precision {
    /// `fp32` or `fp16`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Fp16 => "fp16",
        }
    }

    fn data_type(self) -> DataType {
        match self {
            Precision::Fp32 => DataType::Float,
            Precision::Fp16 => DataType::Float16,
        }
    }
}

impl Graph {
    /// The ONNX model of this graph (opset [`OPSET_VERSION`], IR [`IR_VERSION`], producer
    /// [`PRODUCER`] with this crate's version), with `meta` as `metadata_props`. ONNX wants distinct
    /// metadata keys: when `meta` repeats a key, the last value is written at the first position.
    pub fn to_model(&self, meta: &Metadata) -> ModelProto {
        self.to_model_as(meta, Precision::Fp32)
    }

    /// [`Graph::to_model`] computing in `precision` (see the module docs).
    pub fn to_model_as(&self, meta: &Metadata, precision: Precision) -> ModelProto {
        let mut node: Vec<NodeProto> = self.nodes.iter().map(|n| node_proto(n, precision)).collect();
        if precision != Precision::Fp32 {
            cast_at_the_ports(&mut node, &self.input.name, &self.output.name, precision);
        }
        let graph = GraphProto {
            node,
            name: Some(self.name.clone()),
            initializer: self
                .initializers
                .iter()
                .map(|(name, t)| tensor_proto(name, t, precision))
                .chain(self.nodes.iter().flat_map(slice_inputs))
                .collect(),
            input: vec![value_info(&self.input)],
            output: vec![value_info(&self.output)],
            ..Default::default()
        };
        ModelProto {
            ir_version: Some(IR_VERSION),
            producer_name: Some(PRODUCER.to_string()),
            producer_version: Some(env!("CARGO_PKG_VERSION").to_string()),
            graph: Some(graph),
            opset_import: vec![OperatorSetIdProto {
                domain: Some(String::new()),
                version: Some(OPSET_VERSION),
            }],
            metadata_props: distinct_entries(meta),
            ..Default::default()
        }
    }

    /// The serialized ONNX model (the content of a `.onnx` file); see [`Graph::to_model`].
    pub fn to_onnx_bytes(&self, meta: &Metadata) -> Vec<u8> {
        self.to_model(meta).encode_to_vec()
    }

    /// [`Graph::to_onnx_bytes`] computing in `precision`.
    pub fn to_onnx_bytes_as(&self, meta: &Metadata, precision: Precision) -> Vec<u8> {
        self.to_model_as(meta, precision).encode_to_vec()
    }
}

/// Makes `nodes` compute in `precision` between the `FLOAT` ports: `<input>.<precision>` =
/// `Cast(input)` first, and the output's producer writes `<output>.<precision>`, cast back last.
fn cast_at_the_ports(nodes: &mut Vec<NodeProto>, input: &str, output: &str, precision: Precision) {
    let inner_in = format!("{input}.{}", precision.name());
    let inner_out = format!("{output}.{}", precision.name());
    for node in nodes.iter_mut() {
        for i in node.input.iter_mut() {
            if i == input {
                i.clone_from(&inner_in);
            } else if i == output {
                i.clone_from(&inner_out);
            }
        }
        for o in node.output.iter_mut().filter(|o| *o == output) {
            o.clone_from(&inner_out);
        }
    }
    // Named `<port>.cast`: the port's name is the graph's (input) or its producer's (output).
    let cast = |from: &str, to: &str, port: &str, dt: DataType| NodeProto {
        input: vec![from.to_string()],
        output: vec![to.to_string()],
        name: Some(format!("{port}.cast")),
        op_type: Some("Cast".to_string()),
        attribute: vec![int("to", dt as i64)],
        ..Default::default()
    };
    nodes.insert(0, cast(input, &inner_in, input, precision.data_type()));
    nodes.push(cast(&inner_out, output, output, DataType::Float));
}

fn distinct_entries(meta: &Metadata) -> Vec<StringStringEntryProto> {
    let mut entries: indexmap::IndexMap<&str, &str> = indexmap::IndexMap::new();
    for (key, value) in &meta.entries {
        entries.insert(key, value);
    }
    entries
        .into_iter()
        .map(|(k, v)| StringStringEntryProto { key: Some(k.to_string()), value: Some(v.to_string()) })
        .collect()
}

fn node_proto(node: &Node, precision: Precision) -> NodeProto {
    let mut input = node.inputs.clone();
    input.extend(slice_inputs(node).into_iter().map(|t| t.name.expect("slice inputs are named")));
    NodeProto {
        input,
        output: node.outputs().cloned().collect(),
        name: Some(node.name.clone()),
        op_type: Some(node.op.op_type().to_string()),
        attribute: attributes(&node.op, precision),
        ..Default::default()
    }
}

fn attributes(op: &Op, precision: Precision) -> Vec<AttributeProto> {
    let square = |v: usize| vec![v as i64; 2];
    let pads = |p: usize| vec![p as i64; 4];
    match *op {
        Op::Conv { kernel, attrs } => vec![
            ints("kernel_shape", square(kernel)),
            ints("strides", square(attrs.stride)),
            ints("pads", pads(attrs.padding)),
            ints("dilations", square(attrs.dilation)),
            int("group", attrs.groups as i64),
        ],
        Op::BatchNormalization { eps, .. } => vec![float("epsilon", eps)],
        Op::AveragePool { kernel, stride, padding, count_include_pad } => vec![
            ints("kernel_shape", square(kernel)),
            ints("strides", square(stride)),
            ints("pads", pads(padding)),
            int("count_include_pad", i64::from(count_include_pad)),
        ],
        Op::MaxPool { kernel, stride, padding } => vec![
            ints("kernel_shape", square(kernel)),
            ints("strides", square(stride)),
            ints("pads", pads(padding)),
        ],
        Op::Concat { axis } | Op::Split { axis, .. } => vec![int("axis", axis)],
        Op::Flatten => vec![int("axis", 1)],
        Op::Gemm => vec![int("transB", 1)],
        Op::ConstantOfShape => {
            let zero = Tensor { dims: vec![1], data: vec![0.0] };
            vec![AttributeProto {
                name: Some("value".to_string()),
                r#type: Some(AttributeType::Tensor as i32),
                t: Some(tensor_proto("", &zero, precision)),
                ..Default::default()
            }]
        }
        Op::Relu
        | Op::Clip
        | Op::Add
        | Op::Mul
        | Op::Sum
        | Op::Shape
        | Op::GlobalAveragePool
        | Op::Slice { .. } => vec![],
    }
}

/// The `starts`, `ends`, `axes` and `steps` inputs of a `Slice` node (none for other nodes), in ONNX's
/// input order.
fn slice_inputs(node: &Node) -> Vec<TensorProto> {
    let Op::Slice { axes } = &node.op else { return Vec::new() };
    let column = |f: fn(&SliceAxis) -> i64| axes.iter().map(f).collect::<Vec<i64>>();
    [
        ("starts", column(|a| a.start)),
        ("ends", column(|a| a.end.unwrap_or(i64::MAX))),
        ("axes", column(|a| a.axis as i64)),
        ("steps", column(|a| a.step)),
    ]
    .into_iter()
    .map(|(role, values)| TensorProto {
        dims: vec![values.len() as i64],
        data_type: Some(DataType::Int64 as i32),
        name: Some(format!("{}.{role}", node.name)),
        raw_data: Some(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
        ..Default::default()
    })
    .collect()
}

fn int(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_string()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(i),
        ..Default::default()
    }
}

fn ints(name: &str, ints: Vec<i64>) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_string()),
        r#type: Some(AttributeType::Ints as i32),
        ints,
        ..Default::default()
    }
}

fn float(name: &str, f: f32) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_string()),
        r#type: Some(AttributeType::Float as i32),
        f: Some(f),
        ..Default::default()
    }
}

/// A `FLOAT` (or `FLOAT16`) tensor with its elements little-endian in `raw_data`; an empty name is
/// left out.
fn tensor_proto(name: &str, t: &Tensor, precision: Precision) -> TensorProto {
    let raw_data = match precision {
        Precision::Fp32 => t.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        Precision::Fp16 => t.data.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect(),
    };
    TensorProto {
        dims: t.dims.iter().map(|&d| d as i64).collect(),
        data_type: Some(precision.data_type() as i32),
        name: (!name.is_empty()).then(|| name.to_string()),
        raw_data: Some(raw_data),
        ..Default::default()
    }
}

fn value_info(port: &Port) -> ValueInfoProto {
    let dim = |d: &Dim| tensor_shape_proto::Dimension {
        value: Some(match *d {
            Dim::Batch => tensor_shape_proto::dimension::Value::DimParam(Dim::BATCH_PARAM.to_string()),
            Dim::Fixed(n) => tensor_shape_proto::dimension::Value::DimValue(n as i64),
        }),
        denotation: None,
    };
    let tensor = type_proto::Tensor {
        elem_type: Some(DataType::Float as i32),
        shape: Some(TensorShapeProto { dim: port.shape.iter().map(dim).collect() }),
    };
    ValueInfoProto {
        name: Some(port.name.clone()),
        r#type: Some(TypeProto { value: Some(type_proto::Value::TensorType(tensor)), denotation: None }),
        doc_string: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode_model;
    use crate::proto::tensor_shape_proto::dimension::Value as DimValue;
    use crate::testkit::{every_op_graph, onnx_checker};

    fn dims(info: &ValueInfoProto) -> Vec<DimValue> {
        let Some(type_proto::Value::TensorType(t)) = info.r#type.as_ref().and_then(|t| t.value.clone())
        else {
            panic!("{} is not a tensor", info.name())
        };
        assert_eq!(t.elem_type(), DataType::Float as i32);
        t.shape.expect("shape").dim.into_iter().map(|d| d.value.expect("dim")).collect()
    }

    fn node<'a>(graph: &'a GraphProto, name: &str) -> &'a NodeProto {
        graph.node.iter().find(|n| n.name() == name).unwrap_or_else(|| panic!("no node {name}"))
    }

    fn attr<'a>(node: &'a NodeProto, name: &str) -> &'a AttributeProto {
        node.attribute
            .iter()
            .find(|a| a.name() == name)
            .unwrap_or_else(|| panic!("{} has no {name}", node.name()))
    }

    #[test]
    fn encoding_round_trips() {
        let graph = every_op_graph();
        let meta = Metadata::new().with("arch", "|nor_conv_3x3~0|").with("classes", "a,b");
        let model = decode_model(&graph.to_onnx_bytes(&meta)).unwrap();
        assert_eq!(model, graph.to_model(&meta));
        assert_eq!((model.ir_version(), model.producer_name()), (8, "pwsnas"));
        assert_eq!(model.opset_import.len(), 1);
        assert_eq!((model.opset_import[0].domain(), model.opset_import[0].version()), ("", 17));
        let meta: Vec<_> = model.metadata_props.iter().map(|e| (e.key(), e.value())).collect();
        assert_eq!(meta, [("arch", "|nor_conv_3x3~0|"), ("classes", "a,b")]);

        let g = model.graph.as_ref().unwrap();
        assert_eq!(g.name(), "every_op");
        assert_eq!(g.input.len(), 1);
        assert_eq!(g.input[0].name(), "input");
        let batch = DimValue::DimParam("batch".into());
        assert_eq!(
            dims(&g.input[0]),
            [batch.clone(), DimValue::DimValue(3), DimValue::DimValue(8), DimValue::DimValue(8)]
        );
        assert_eq!(g.output[0].name(), "gemm_0");
        assert_eq!(dims(&g.output[0]), [batch, DimValue::DimValue(10)]);

        // Every parameter is a FLOAT initializer, little-endian raw data of the size its dims say, and
        // holds the IR's values; the only other initializers are the INT64 ranges of the Slice.
        let (floats, ints): (Vec<&TensorProto>, Vec<&TensorProto>) =
            g.initializer.iter().partition(|t| t.data_type() == DataType::Float as i32);
        assert_eq!(floats.len(), graph.initializers.len());
        let int64 = |name: &str| {
            let t = ints.iter().find(|t| t.name() == name).unwrap_or_else(|| panic!("no initializer {name}"));
            assert_eq!(t.data_type(), DataType::Int64 as i32);
            let values: Vec<i64> =
                t.raw_data().chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap())).collect();
            assert_eq!(t.dims, [values.len() as i64], "{name}");
            values
        };
        assert_eq!(
            node(g, "slice_0").input,
            ["relu_0", "slice_0.starts", "slice_0.ends", "slice_0.axes", "slice_0.steps"]
        );
        assert_eq!(int64("slice_0.starts"), [1, 0]);
        assert_eq!(int64("slice_0.ends"), [i64::MAX, i64::MAX]);
        assert_eq!(int64("slice_0.axes"), [2, 3]);
        assert_eq!(int64("slice_0.steps"), [1, 2]);
        assert_eq!(ints.len(), 4);
        for t in floats {
            let ir = &graph.initializers[t.name()];
            assert_eq!(t.data_type(), DataType::Float as i32);
            assert_eq!(t.dims, ir.dims.iter().map(|&d| d as i64).collect::<Vec<_>>(), "{}", t.name());
            assert!(t.float_data.is_empty());
            let values: Vec<f32> =
                t.raw_data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
            assert_eq!(values, ir.data, "{}", t.name());
        }
        assert_eq!(g.initializer.iter().find(|t| t.name() == "conv_0.weight").unwrap().dims, [8, 3, 3, 3]);
        assert!(g.initializer.iter().find(|t| t.name() == "clip_0.min").unwrap().dims.is_empty());

        let dw = node(g, "conv_1");
        assert_eq!((dw.op_type(), dw.input.len()), ("Conv", 2));
        assert_eq!(attr(dw, "pads").ints, [1, 1, 1, 1]);
        assert_eq!(attr(dw, "group").i(), 8);
        assert_eq!(attr(dw, "kernel_shape").r#type(), AttributeType::Ints);
        assert_eq!(attr(node(g, "avgpool_0"), "count_include_pad").i(), 0);
        assert_eq!(attr(node(g, "gemm_0"), "transB").i(), 1);
        let zeros = attr(node(g, "zeros_0"), "value").t.as_ref().unwrap();
        assert_eq!((zeros.dims.as_slice(), zeros.raw_data()), (&[1][..], &[0u8; 4][..]));
        assert_eq!(node(g, "zeros_0").input, ["zeros_0.shape"]);
        assert_eq!(node(g, "clip_0").input, ["bn_1", "clip_0.min", "clip_0.max"]);
    }

    #[test]
    fn slice_and_concat_compute_what_numpy_would() {
        use crate::testkit::{run_graph, Array};
        use crate::{GraphBuilder, SliceAxis};
        let mut b =
            GraphBuilder::new("g", "x", vec![Dim::Batch, Dim::Fixed(1), Dim::Fixed(3), Dim::Fixed(4)]);
        let x = b.input();
        // x[:, :, 1:, ::3] and x[:, :, :2, 1:3] (a bounded end), concatenated along the last axis.
        let a = b.slice(&x, &[SliceAxis::from(2, 1), SliceAxis::every(3, 3)]);
        let c = b.slice(
            &x,
            &[
                SliceAxis { axis: 2, start: 0, end: Some(2), step: 1 },
                SliceAxis { axis: 3, start: 1, end: Some(3), step: 1 },
            ],
        );
        let a2 = b.slice(&a, &[SliceAxis::from(2, 0)]);
        let y = b.concat(&[a2, c], 3);
        let graph = b.finish(&y, vec![Dim::Batch, Dim::Fixed(1), Dim::Fixed(2), Dim::Fixed(4)]);
        let input = Array { dims: vec![1, 1, 3, 4], data: (0..12).map(f64::from).collect() };
        let out = run_graph(&graph, &input);
        // Rows 1..3 of [[0,1,2,3],[4,5,6,7],[8,9,10,11]] at columns 0, 3, then rows 0..2 at columns 1, 2.
        assert_eq!(
            out,
            Array { dims: vec![1, 1, 2, 4], data: vec![4.0, 7.0, 1.0, 2.0, 8.0, 11.0, 5.0, 6.0] }
        );
    }

    #[test]
    fn repeated_metadata_keys_keep_the_last_value_at_the_first_position() {
        let meta = Metadata {
            entries: vec![("a".into(), "1".into()), ("b".into(), "2".into()), ("a".into(), "3".into())],
        };
        let model = every_op_graph().to_model(&meta);
        let meta: Vec<_> = model.metadata_props.iter().map(|e| (e.key(), e.value())).collect();
        assert_eq!(meta, [("a", "3"), ("b", "2")]);
    }

    #[test]
    fn onnx_checker_accepts_every_node_type_before_and_after_folding() {
        let mut graph = every_op_graph();
        let meta = Metadata::new().with("arch", "x");
        if let Err(e) = onnx_checker(&graph.to_onnx_bytes(&meta)) {
            panic!("onnx.checker rejected the unfolded model:\n{e}");
        }
        graph.fold_batch_norm();
        if let Err(e) = onnx_checker(&graph.to_onnx_bytes(&meta)) {
            panic!("onnx.checker rejected the folded model:\n{e}");
        }
    }

    #[test]
    fn fp16_keeps_float_ports_and_computes_what_fp32_computes_within_half_precision() {
        use crate::testkit::{max_abs_diff, run, Array};
        let mut graph = every_op_graph();
        graph.fold_batch_norm();
        let meta = Metadata::new().with("arch", "x");
        let model = graph.to_model_as(&meta, Precision::Fp16);
        let g = model.graph.as_ref().unwrap();
        assert_eq!(dims(&g.input[0]).len(), 4, "the input stays FLOAT (checked by dims())");
        assert_eq!(dims(&g.output[0]).len(), 2);
        // Every parameter is FLOAT16; the Slice's ranges stay INT64.
        for t in &g.initializer {
            let want = if t.name().starts_with("slice_") { DataType::Int64 } else { DataType::Float16 };
            assert_eq!(t.data_type(), want as i32, "{}", t.name());
        }
        let w = g.initializer.iter().find(|t| t.name() == "conv_0.weight").unwrap();
        assert_eq!(w.raw_data().len(), 8 * 3 * 9 * 2, "two bytes per weight");
        assert_eq!((g.node[0].op_type(), g.node[0].input[0].as_str()), ("Cast", "input"));
        let last = g.node.last().unwrap();
        assert_eq!((last.op_type(), last.output[0].as_str(), last.name()), ("Cast", "gemm_0", "gemm_0.cast"));
        let mut names: Vec<&str> = g.node.iter().map(|n| n.name()).collect();
        names.sort_unstable();
        assert!(names.windows(2).all(|w| w[0] != w[1]), "node names repeat: {names:?}");
        if let Err(e) = onnx_checker(&model.encode_to_vec()) {
            panic!("onnx.checker rejected the fp16 model:\n{e}");
        }
        let input = Array::random(&[2, 3, 8, 8], 5);
        let want = run(&graph.to_model(&meta), &input);
        let got = run(&model, &input);
        let scale = want.data.iter().fold(0f64, |m, v| m.max(v.abs()));
        let diff = max_abs_diff(&want, &got);
        assert!(diff > 0.0 && diff < 1e-2 * scale, "fp16 is off by {diff} (scale {scale})");
    }

    #[test]
    fn onnx_checker_rejects_a_wrong_output_shape() {
        // Guards the checker test itself: a declared output shape that contradicts the graph must fail.
        let mut graph = every_op_graph();
        graph.output.shape = vec![Dim::Batch, Dim::Fixed(11)];
        let bytes = graph.to_onnx_bytes(&Metadata::new());
        let err = onnx_checker(&bytes)
            .expect_err("the checker accepted output shape [batch, 11] for a 10-class Gemm");
        assert!(err.contains("ShapeInferenceError"), "unexpected checker failure:\n{err}");
    }
}
