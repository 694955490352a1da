//! Generates the prost types of `proto/onnx.proto` into `OUT_DIR/onnx.rs`.
//!
//! The proto is parsed by `protox` (pure Rust), so no `protoc` binary is needed at build time.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/onnx.proto");
    let fds = protox::compile(["onnx.proto"], ["proto"])?;
    prost_build::Config::new().compile_fds(fds)?;
    Ok(())
}
