//! `pwsnas infer MODEL.onnx IMAGE...`: classifies images with an exported model through ONNX
//! Runtime, using only what the model file says about itself (no run directory, no libtorch).
//!
//! The model's metadata ([`ModelInfo`]) gives the preprocessing: each image is decoded with the
//! `image` crate, resized to the input size (triangle filter, as the folder dataset reader does),
//! converted to the input's channels (1 = luma, 3 = RGB) and normalised with the stored mean/std.
//! Everything is checked before anything runs: a corrupt model, a model without pwsnas metadata or
//! an image that cannot be decoded is an error naming the file.
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::export::metadata::ModelInfo;
use crate::ort_runtime::{self, OrtModel, SessionConfig};

/// One class of a top-k list.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Prediction {
    pub rank: usize,
    /// Output index.
    pub index: usize,
    pub class: String,
    /// Softmax probability.
    pub probability: f64,
    pub logit: f32,
}

/// The top-k classes of one image.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ImageResult {
    pub image: String,
    pub top: Vec<Prediction>,
}

/// A pwsnas model loaded for inference.
pub struct Classifier {
    pub info: ModelInfo,
    model: OrtModel,
}

/// Images per ONNX Runtime run.
const CHUNK: usize = 64;

impl Classifier {
    /// Loads `path` (after the ONNX Runtime library, so that a missing library is reported first):
    /// reads and checks its metadata, then opens an ONNX Runtime session.
    pub fn load(path: &Path, ort_lib: Option<&Path>, cfg: SessionConfig) -> Result<Classifier> {
        let rt = ort_runtime::runtime(ort_lib, cfg.ep)?;
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read the model {}", path.display()))?;
        let what = path.display().to_string();
        let entries = pwsnas_onnx::read_metadata(&bytes).map_err(|e| {
            anyhow::anyhow!("cannot use {what} as a model: {e}; export it again with `pwsnas export RUN`")
        })?;
        let info = ModelInfo::from_entries(&entries, &what)?;
        let model = rt.session_from_bytes(&bytes, &what, cfg)?;
        Ok(Classifier { info, model })
    }

    /// The network input of one image file (`C×H×W`, normalised).
    pub fn preprocess(&self, path: &Path) -> Result<Vec<f32>> {
        let [c, h, w] = self.info.input_shape;
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read the image {}", path.display()))?;
        let img = pwsnas_datasets::image_file::decode(path, &bytes, Some((h, w)))
            .map_err(|e| anyhow::anyhow!("{e} (expected a PNG or JPEG file)"))?;
        let chw: Vec<u8> = match c {
            1 => img.into_luma8().into_raw(),
            3 => {
                let raw = img.into_rgb8().into_raw();
                (0..3).flat_map(|ch| raw.iter().skip(ch).step_by(3).copied().collect::<Vec<_>>()).collect()
            }
            other => bail!(
                "the model takes {other}-channel images; pwsnas infer supports 1 (greyscale) and 3 (RGB)"
            ),
        };
        let plane = h * w;
        Ok(chw
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let ch = i / plane;
                (f32::from(v) / 255.0 - self.info.mean[ch]) / self.info.std[ch]
            })
            .collect())
    }

    /// The `top` most likely classes of every image, in the order given. Every image is decoded
    /// before the model runs, so a bad file fails the whole call.
    pub fn classify(&mut self, images: &[PathBuf], top: usize) -> Result<Vec<ImageResult>> {
        let inputs = images.iter().map(|p| self.preprocess(p)).collect::<Result<Vec<_>>>()?;
        let [c, h, w] = self.info.input_shape;
        let classes = self.info.classes.len();
        let mut out = Vec::with_capacity(images.len());
        for (paths, chunk) in images.chunks(CHUNK).zip(inputs.chunks(CHUNK)) {
            let x: Vec<f32> = chunk.concat();
            let logits = self.model.run(&x, [chunk.len(), c, h, w])?;
            if logits.len() != chunk.len() * classes {
                bail!(
                    "the model gives {} outputs per image but its metadata names {classes} classes",
                    logits.len() / chunk.len()
                );
            }
            for (path, row) in paths.iter().zip(logits.chunks_exact(classes)) {
                out.push(ImageResult { image: path.display().to_string(), top: self.top_k(row, top) });
            }
        }
        Ok(out)
    }

    fn top_k(&self, logits: &[f32], k: usize) -> Vec<Prediction> {
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exp: Vec<f64> = logits.iter().map(|&v| f64::from(v - max).exp()).collect();
        let total: f64 = exp.iter().sum();
        let mut order: Vec<usize> = (0..logits.len()).collect();
        order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
        order
            .into_iter()
            .take(k)
            .enumerate()
            .map(|(rank, index)| Prediction {
                rank: rank + 1,
                index,
                class: self.info.classes[index].clone(),
                probability: exp[index] / total,
                logit: logits[index],
            })
            .collect()
    }
}
