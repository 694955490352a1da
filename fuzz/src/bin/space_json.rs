//! `space.json` (`--space-file`, a run's shrunk space): what reads back writes the same file.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pwsnas_models::Space;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    if let Ok(space) = Space::from_json(value) {
        let json = space.to_json();
        assert_eq!(Space::from_json(json.clone()).expect("a written space reads back").to_json(), json);
        let _ = (space.size(), space.log10_size());
    }
});
