//! Decoding `.onnx` bytes into a [`ModelProto`], with a check that the bytes really are a model.
//!
//! Protobuf decoding alone accepts too much (an empty buffer is a valid, empty `ModelProto`, and many
//! short byte strings parse as unknown fields), so a decoded message must also carry an IR version and
//! a graph before it is treated as a model.

use prost::Message;

use crate::error::OnnxError;
use crate::proto::ModelProto;

/// Decodes an ONNX model, failing with [`OnnxError`] on bytes that are not one.
pub fn decode_model(bytes: &[u8]) -> Result<ModelProto, OnnxError> {
    let model = ModelProto::decode(bytes)?;
    if model.ir_version() <= 0 {
        return Err(OnnxError::NotAModel("it has no IR version"));
    }
    if model.graph.is_none() {
        return Err(OnnxError::NotAModel("it has no graph"));
    }
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::every_op_graph;
    use crate::Metadata;

    #[test]
    fn rejects_bytes_that_are_not_a_model() {
        let garbage: &[&[u8]] =
            &[b"", b"\xff\xff\xff\xff\xff", b"this is a text file, not a model\n", &[0x08, 0x08]];
        for bytes in garbage {
            let err = decode_model(bytes).expect_err("garbage decoded");
            assert!(err.to_string().starts_with("not an ONNX model"), "{err}");
        }
        let model = every_op_graph().to_onnx_bytes(&Metadata::new());
        let err = decode_model(&model[..model.len() / 2]).expect_err("half a model decoded");
        assert!(matches!(err, OnnxError::Decode(_)), "{err}");
    }
}
