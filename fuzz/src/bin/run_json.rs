//! `run.json` of a run directory (every command on an existing run reads it first).
#![no_main]
use libfuzzer_sys::fuzz_target;
use pwsnas::run::{RunInfo, Stage};
use pwsnas_fuzz::path;

fuzz_target!(|data: &[u8]| {
    if let Ok(info) = RunInfo::parse(path("run.json"), data) {
        for stage in Stage::ALL {
            let _ = stage.fingerprint(&info.settings);
        }
        let again = serde_json::to_vec(&info).expect("run.json writes");
        RunInfo::parse(path("run.json"), &again).expect("a written run.json reads back");
    }
});
