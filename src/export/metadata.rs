//! What an exported model says about itself: the keys pwsnas writes into the ONNX `metadata_props`
//! and [`ModelInfo`], the typed view that export writes and `pwsnas infer` reads back.
//!
//! Why: a deployed `model.onnx` must be usable without its run directory, so it carries everything
//! preprocessing and labelling need (input shape and layout, normalisation, class names) plus where
//! it came from (arch, space, dataset, pwsnas version). The keys are defined once, here, for both
//! sides.
use anyhow::{bail, Context, Result};
use pwsnas_onnx::Metadata;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The metadata keys. Values are plain strings or JSON where noted.
pub mod keys {
    /// The architecture string (NB201 format for `nb201`).
    pub const ARCH: &str = "arch";
    /// The search space name (`nb201`, `mobile`).
    pub const SPACE: &str = "space";
    /// The space parameters (JSON object).
    pub const SPACE_PARAMS: &str = "space_params";
    /// One input image as `[channels, height, width]` (JSON); the batch dimension is dynamic.
    pub const INPUT_SHAPE: &str = "input_shape";
    /// Always `NCHW`.
    pub const INPUT_LAYOUT: &str = "input_layout";
    /// Per-channel mean in `[0, 1]` pixel units (JSON array).
    pub const MEAN: &str = "mean";
    /// Per-channel standard deviation in `[0, 1]` pixel units (JSON array).
    pub const STD: &str = "std";
    /// Class names by output index (JSON array).
    pub const CLASSES: &str = "classes";
    /// How to turn an image into the input, in words.
    pub const PREPROCESSING: &str = "preprocessing";
    pub const DATASET: &str = "dataset";
    pub const PWSNAS_VERSION: &str = "pwsnas_version";
}

/// The only layout pwsnas exports.
pub const LAYOUT: &str = "NCHW";

const PREPROCESSING_TEXT: &str =
    "resize to input_shape (triangle filter), convert to the input's channels (1 = luma, 3 = RGB), \
     x = (pixel/255 - mean[c]) / std[c], NCHW float32";

/// The facts stored in a pwsnas model's metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelInfo {
    pub arch: String,
    pub space: String,
    pub space_params: Value,
    /// `[channels, height, width]`.
    pub input_shape: [usize; 3],
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    pub classes: Vec<String>,
    pub dataset: String,
    pub pwsnas_version: String,
}

impl ModelInfo {
    /// The ONNX metadata entries.
    pub fn to_metadata(&self) -> Metadata {
        Metadata::new()
            .with(keys::ARCH, self.arch.clone())
            .with(keys::SPACE, self.space.clone())
            .with(keys::SPACE_PARAMS, self.space_params.to_string())
            .with(keys::INPUT_SHAPE, json(&self.input_shape))
            .with(keys::INPUT_LAYOUT, LAYOUT)
            .with(keys::MEAN, json(&self.mean))
            .with(keys::STD, json(&self.std))
            .with(keys::CLASSES, json(&self.classes))
            .with(keys::PREPROCESSING, PREPROCESSING_TEXT)
            .with(keys::DATASET, self.dataset.clone())
            .with(keys::PWSNAS_VERSION, self.pwsnas_version.clone())
    }

    /// Reads the entries of the model file `file`, checking that they are complete and consistent.
    pub fn from_entries(entries: &[(String, String)], file: &str) -> Result<ModelInfo> {
        let get = |key: &str| -> Result<&str> {
            entries.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).with_context(|| {
                format!(
                    "{file} has no metadata '{key}': it was not exported by `pwsnas export` (re-export it)"
                )
            })
        };
        fn parse<T: DeserializeOwned>(file: &str, key: &str, text: &str, expected: &str) -> Result<T> {
            serde_json::from_str(text)
                .with_context(|| format!("{file}: metadata '{key}' is '{text}', expected {expected}"))
        }
        let layout = get(keys::INPUT_LAYOUT)?;
        if layout != LAYOUT {
            bail!("{file}: metadata '{}' is '{layout}', expected {LAYOUT}", keys::INPUT_LAYOUT);
        }
        let input_shape: [usize; 3] =
            parse(file, keys::INPUT_SHAPE, get(keys::INPUT_SHAPE)?, "[channels, height, width]")?;
        let mean: Vec<f32> = parse(file, keys::MEAN, get(keys::MEAN)?, "a JSON array of numbers")?;
        let std: Vec<f32> = parse(file, keys::STD, get(keys::STD)?, "a JSON array of numbers")?;
        let classes: Vec<String> = parse(file, keys::CLASSES, get(keys::CLASSES)?, "a JSON array of names")?;
        let c = input_shape[0];
        if input_shape.contains(&0) {
            bail!("{file}: metadata '{}' is {input_shape:?}, expected positive sizes", keys::INPUT_SHAPE);
        }
        if mean.len() != c || std.len() != c {
            bail!(
                "{file}: metadata has {} means and {} stds for {c} input channels; expected one of each per channel",
                mean.len(),
                std.len()
            );
        }
        if std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            bail!("{file}: metadata '{}' is {std:?}, expected positive numbers", keys::STD);
        }
        if classes.is_empty() {
            bail!("{file}: metadata '{}' is empty, expected the class names", keys::CLASSES);
        }
        Ok(ModelInfo {
            arch: get(keys::ARCH)?.to_string(),
            space: get(keys::SPACE)?.to_string(),
            space_params: parse(file, keys::SPACE_PARAMS, get(keys::SPACE_PARAMS)?, "a JSON object")?,
            input_shape,
            mean,
            std,
            classes,
            dataset: get(keys::DATASET).unwrap_or("unknown").to_string(),
            pwsnas_version: get(keys::PWSNAS_VERSION).unwrap_or("unknown").to_string(),
        })
    }
}

/// Compact JSON of a value (metadata values are strings).
fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("metadata values serialise")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> ModelInfo {
        ModelInfo {
            arch: "|nor_conv_3x3~0|".into(),
            space: "nb201".into(),
            space_params: serde_json::json!({"channels": 8}),
            input_shape: [1, 28, 28],
            mean: vec![0.286],
            std: vec![0.353],
            classes: vec!["T-shirt/top".into(), "Trouser, \"long\"".into()],
            dataset: "fashion-mnist".into(),
            pwsnas_version: "0.1.0".into(),
        }
    }

    #[test]
    fn round_trips_through_entries() {
        let meta = info().to_metadata();
        assert_eq!(meta.get(keys::INPUT_LAYOUT), Some("NCHW"));
        assert_eq!(meta.get(keys::INPUT_SHAPE), Some("[1,28,28]"));
        assert_eq!(ModelInfo::from_entries(&meta.entries, "m.onnx").unwrap(), info());
    }

    #[test]
    fn missing_and_inconsistent_entries_are_named() {
        let mut meta = info().to_metadata();
        meta.entries.retain(|(k, _)| k != keys::CLASSES);
        let err = ModelInfo::from_entries(&meta.entries, "m.onnx").unwrap_err().to_string();
        assert!(err.contains("m.onnx has no metadata 'classes'"), "{err}");

        let mut meta = info().to_metadata();
        meta.insert(keys::MEAN, "[0.1, 0.2, 0.3]");
        let err = ModelInfo::from_entries(&meta.entries, "m.onnx").unwrap_err().to_string();
        assert!(err.contains("3 means and 1 stds for 1 input channels"), "{err}");

        let mut meta = info().to_metadata();
        meta.insert(keys::INPUT_SHAPE, "28x28");
        let err = ModelInfo::from_entries(&meta.entries, "m.onnx").unwrap_err().to_string();
        assert!(err.contains("'input_shape' is '28x28'"), "{err}");
    }
}
