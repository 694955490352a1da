//! A structural summary of an ONNX model (operator counts, versions, input and output shapes,
//! parameter count), for reports and tests. Works on any ONNX file, not only pwsnas exports.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use crate::decode::decode_model;
use crate::error::OnnxError;
use crate::proto::{tensor_proto::DataType, tensor_shape_proto::dimension, type_proto, ValueInfoProto};

/// What [`summary`] reports about a model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelSummary {
    pub ir_version: i64,
    /// The imported version of the default operator set (domain `""` or `"ai.onnx"`), if any.
    pub opset: Option<i64>,
    pub producer: String,
    pub graph_name: String,
    /// Graph inputs that are not initializers.
    pub inputs: Vec<TensorSummary>,
    pub outputs: Vec<TensorSummary>,
    /// Number of nodes per `op_type`.
    pub op_counts: BTreeMap<String, usize>,
    pub node_count: usize,
    /// Total number of elements of the floating-point initializers (integer ones hold shapes and
    /// ranges, such as a `Slice`'s, not weights).
    pub parameter_count: u64,
}

/// A graph input or output: its name and, when the model declares it, its shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSummary {
    pub name: String,
    pub shape: Option<Vec<ShapeDim>>,
}

/// One dimension of a declared shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShapeDim {
    Value(i64),
    /// A symbolic dimension, e.g. `"batch"`.
    Param(String),
    Unknown,
}

impl fmt::Display for ShapeDim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShapeDim::Value(v) => write!(f, "{v}"),
            ShapeDim::Param(p) => f.write_str(p),
            ShapeDim::Unknown => f.write_str("?"),
        }
    }
}

/// `name [batch, 3, 32, 32]`, or `name [?]` when the shape is not declared.
impl fmt::Display for TensorSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.shape {
            Some(dims) => {
                let dims: Vec<String> = dims.iter().map(ToString::to_string).collect();
                write!(f, "{} [{}]", self.name, dims.join(", "))
            }
            None => write!(f, "{} [?]", self.name),
        }
    }
}

/// Summarises an ONNX model, failing with [`OnnxError`] on bytes that are not one.
pub fn summary(bytes: &[u8]) -> Result<ModelSummary, OnnxError> {
    let mut model = decode_model(bytes)?;
    let graph = model.graph.take().unwrap_or_default();
    let initializers: HashSet<&str> = graph.initializer.iter().map(|t| t.name()).collect();
    let mut op_counts = BTreeMap::new();
    for node in &graph.node {
        *op_counts.entry(node.op_type().to_string()).or_insert(0) += 1;
    }
    let floating =
        [DataType::Float, DataType::Float16, DataType::Bfloat16, DataType::Double].map(|t| t as i32);
    let parameter_count = graph
        .initializer
        .iter()
        .filter(|t| floating.contains(&t.data_type()))
        .map(|t| t.dims.iter().map(|&d| d.max(0) as u64).product::<u64>())
        .sum();
    Ok(ModelSummary {
        ir_version: model.ir_version(),
        opset: model.opset_import.iter().find(|o| matches!(o.domain(), "" | "ai.onnx")).map(|o| o.version()),
        producer: model.producer_name().to_string(),
        graph_name: graph.name().to_string(),
        inputs: graph.input.iter().filter(|v| !initializers.contains(v.name())).map(tensor_summary).collect(),
        outputs: graph.output.iter().map(tensor_summary).collect(),
        op_counts,
        node_count: graph.node.len(),
        parameter_count,
    })
}

fn tensor_summary(info: &ValueInfoProto) -> TensorSummary {
    let shape = match info.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::TensorType(t)) => t.shape.as_ref().map(|s| {
            s.dim
                .iter()
                .map(|d| match &d.value {
                    Some(dimension::Value::DimValue(v)) => ShapeDim::Value(*v),
                    Some(dimension::Value::DimParam(p)) => ShapeDim::Param(p.clone()),
                    None => ShapeDim::Unknown,
                })
                .collect()
        }),
        None => None,
    };
    TensorSummary { name: info.name().to_string(), shape }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::every_op_graph;
    use crate::{Metadata, OPSET_VERSION};

    #[test]
    fn summarises_an_export() {
        let mut graph = every_op_graph();
        graph.fold_batch_norm();
        let s = summary(&graph.to_onnx_bytes(&Metadata::new())).unwrap();
        assert_eq!((s.ir_version, s.opset, s.producer.as_str()), (8, Some(OPSET_VERSION), "pwsnas"));
        assert_eq!(s.graph_name, "every_op");
        assert_eq!(s.inputs.iter().map(ToString::to_string).collect::<Vec<_>>(), ["input [batch, 3, 8, 8]"]);
        assert_eq!(s.outputs.iter().map(ToString::to_string).collect::<Vec<_>>(), ["gemm_0 [batch, 10]"]);
        assert_eq!(s.node_count, graph.op_types().len());
        assert_eq!((s.op_counts["Conv"], s.op_counts["Add"], s.op_counts["Mul"]), (3, 3, 1));
        // The Slice's INT64 ranges are initializers but not parameters.
        assert_eq!(s.op_counts["Slice"], 1);
        assert!(!s.op_counts.contains_key("BatchNormalization"));
        assert_eq!(s.parameter_count, graph.parameter_count() as u64);
    }

    #[test]
    fn undeclared_shapes_and_initializer_inputs() {
        // Older exporters list initializers among the graph inputs and may leave shapes out.
        let mut model = every_op_graph().to_model(&Metadata::new());
        let g = model.graph.as_mut().unwrap();
        g.input.push(ValueInfoProto { name: Some("conv_0.weight".into()), ..Default::default() });
        g.output[0].r#type = None;
        let s = summary(&prost::Message::encode_to_vec(&model)).unwrap();
        assert_eq!(s.inputs.len(), 1);
        assert_eq!(s.outputs[0].to_string(), "gemm_0 [?]");
        assert_eq!(ShapeDim::Unknown.to_string(), "?");
    }
}
