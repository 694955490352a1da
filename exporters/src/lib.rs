//! `pwsnas-onnx`: a small graph IR for the CNNs pwsnas searches, BatchNorm folding, and their export
//! to ONNX, without libtorch and without `protoc`.
//!
//! The export pipeline is: lower a trained network with a [`GraphBuilder`] (one call per layer), take
//! the [`Graph`] from [`GraphBuilder::finish`], fold batch norms with [`Graph::fold_batch_norm`], and
//! write [`Graph::to_onnx_bytes`] with [`Metadata`] describing the model. [`read_metadata`] and
//! [`summary`] read any `.onnx` file back.
//!
//! ```
//! use pwsnas_onnx::{BatchNormParams, ConvAttrs, Dim, GraphBuilder, Metadata};
//!
//! let mut b = GraphBuilder::new("tiny", "input", vec![Dim::Batch, Dim::Fixed(1), Dim::Fixed(8), Dim::Fixed(8)]);
//! let x = b.input();
//! let x = b.conv(&x, vec![0.1; 4 * 9], [4, 1, 3, 3], None, ConvAttrs { padding: 1, ..ConvAttrs::default() });
//! let bn = BatchNormParams { gamma: vec![1.0; 4], beta: vec![0.0; 4], mean: vec![0.0; 4], var: vec![1.0; 4], eps: 1e-5 };
//! let x = b.batch_norm(&x, bn);
//! let x = b.relu(&x);
//! let x = b.global_avg_pool(&x);
//! let x = b.flatten(&x);
//! let logits = b.gemm(&x, vec![0.5; 10 * 4], 10, 4, Some(vec![0.0; 10]));
//! let mut graph = b.finish(&logits, vec![Dim::Batch, Dim::Fixed(10)]);
//! graph.fold_batch_norm();
//! assert_eq!(graph.op_types(), ["Conv", "Relu", "GlobalAveragePool", "Flatten", "Gemm"]);
//!
//! let bytes = graph.to_onnx_bytes(&Metadata::new().with("arch", "|nor_conv_3x3~0|"));
//! assert_eq!(pwsnas_onnx::read_metadata(&bytes).unwrap(), [("arch".to_string(), "|nor_conv_3x3~0|".to_string())]);
//! assert_eq!(pwsnas_onnx::summary(&bytes).unwrap().opset, Some(17));
//! ```

mod builder;
mod decode;
mod encode;
mod error;
mod fold;
mod ir;
mod metadata;
pub mod proto;
mod rewrite;
mod summary;

#[cfg(test)]
mod testkit;

pub use builder::GraphBuilder;
pub use decode::decode_model;
pub use encode::{Precision, IR_VERSION, OPSET_VERSION, PRODUCER};
pub use error::OnnxError;
pub use ir::{BatchNormParams, ConvAttrs, Dim, Graph, SliceAxis, Value};
pub use metadata::{read_metadata, Metadata};
pub use rewrite::{nchwc_block, Lowering};
pub use summary::{summary, ModelSummary, ShapeDim, TensorSummary};
