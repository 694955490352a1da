//! The error type of reading ONNX bytes.
//!
//! Building and exporting a graph cannot fail at run time (misuse of the builder is a programming error
//! and panics, see [`GraphBuilder`](crate::GraphBuilder)); reading a file that a user points at can, and
//! must say why instead of panicking.

/// Why bytes could not be read as an ONNX model.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// The bytes are not a valid protobuf encoding of an ONNX `ModelProto`.
    #[error("not an ONNX model: the bytes do not decode as an ONNX ModelProto ({0})")]
    Decode(#[from] prost::DecodeError),
    /// The bytes decode, but lack what every ONNX model has.
    #[error("not an ONNX model: {0}")]
    NotAModel(&'static str),
}
