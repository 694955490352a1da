//! The metadata `pwsnas infer` reads from a model file before it runs anything.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pwsnas::export::metadata::ModelInfo;

fuzz_target!(|data: &[u8]| {
    if let Ok(entries) = pwsnas_onnx::read_metadata(data) {
        if let Ok(info) = ModelInfo::from_entries(&entries, "model.onnx") {
            let again = info.to_metadata();
            let _ = again;
        }
    }
});
