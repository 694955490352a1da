//! The ONNX protobuf messages, generated at build time by `prost-build` from the hand-written subset
//! `proto/onnx.proto` (parsed by `protox`, so no `protoc` is needed).
//!
//! The subset declares only what an exported CNN needs; field numbers are those of the official
//! `onnx.proto`, so the encoded bytes are ordinary ONNX files, and undeclared fields of other producers'
//! files are skipped on decoding. ONNX uses proto2, so optional scalars are `Option`s; prefer the
//! generated accessors (`model.ir_version()`, `node.op_type()`) to read them.

include!(concat!(env!("OUT_DIR"), "/onnx.rs"));
