//! Model metadata: the ordered key/value pairs stored in an ONNX model's `metadata_props`.
//!
//! pwsnas records there what a deployment needs to use the model without the run directory (the
//! architecture string, search space, input shape and layout, normalisation, class names); the keys
//! are chosen by the exporting code. [`read_metadata`] reads them back from any ONNX file.

use crate::decode::decode_model;
use crate::error::OnnxError;

/// Ordered key/value pairs for `metadata_props`. ONNX wants distinct keys: [`Metadata::insert`] keeps
/// them distinct, and export writes only the last value of a key pushed twice onto `entries`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    pub entries: Vec<(String, String)>,
}

impl Metadata {
    /// No entries.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builder form of [`Metadata::insert`].
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.insert(key, value);
        self
    }

    /// Sets `key` to `value`, replacing an existing value in place or appending a new entry.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let (key, value) = (key.into(), value.into());
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => self.entries.push((key, value)),
        }
    }

    /// The value of `key`, if any.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Metadata {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        iter.into_iter().fold(Metadata::new(), |m, (k, v)| m.with(k, v))
    }
}

/// The `metadata_props` of an ONNX model, in file order.
pub fn read_metadata(bytes: &[u8]) -> Result<Vec<(String, String)>, OnnxError> {
    let model = decode_model(bytes)?;
    Ok(model.metadata_props.into_iter().map(|e| (e.key().to_string(), e.value().to_string())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::every_op_graph;

    #[test]
    fn insert_replaces_in_place() {
        let mut meta: Metadata = [("space", "nb201"), ("arch", "a")].into_iter().collect();
        meta.insert("arch", "b");
        meta.insert("mean", "0.5");
        assert_eq!(meta, Metadata::new().with("space", "nb201").with("arch", "b").with("mean", "0.5"));
        assert_eq!((meta.get("arch"), meta.get("std")), (Some("b"), None));
    }

    #[test]
    fn metadata_round_trips_in_order() {
        let meta = Metadata::new()
            .with("z", "last key first")
            .with("a", "ünïcode, commas, \"quotes\"")
            .with("empty", "");
        let bytes = every_op_graph().to_onnx_bytes(&meta);
        assert_eq!(read_metadata(&bytes).unwrap(), meta.entries);
    }

    #[test]
    fn read_metadata_reports_garbage() {
        let err = read_metadata(b"\x00\x01garbage").expect_err("garbage has no metadata");
        assert!(err.to_string().contains("not an ONNX model"), "{err}");
    }
}
