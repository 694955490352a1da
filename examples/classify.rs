//! Classify images with a model written by `pwsnas export`, through the library API: the ONNX
//! Runtime library is found as the CLI finds it (`ORT_DYLIB_PATH`, else the path set-up recorded),
//! and the preprocessing comes from the model's own metadata.
//!
//! ```text
//! cargo run --example classify -- runs/demo/model.onnx shirt.png boot.jpg
//! ```
use std::path::PathBuf;

use pwsnas::infer::Classifier;
use pwsnas::ort_runtime::{Ep, SessionConfig};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1).map(PathBuf::from);
    let model = args.next().ok_or_else(|| anyhow::anyhow!("usage: classify MODEL.onnx IMAGE..."))?;
    let images: Vec<PathBuf> = args.collect();
    let mut classifier = Classifier::load(&model, None, SessionConfig { ep: Ep::Cpu, threads: 1 })?;
    println!(
        "{} ({} classes, input {:?})",
        classifier.info.arch,
        classifier.info.classes.len(),
        classifier.info.input_shape
    );
    for result in classifier.classify(&images, 3)? {
        let best = &result.top[0];
        println!("{}: {} ({:.1} %)", result.image, best.class, best.probability * 100.0);
    }
    Ok(())
}
