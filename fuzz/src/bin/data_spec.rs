//! `--data SPEC`: what parses prints back to a spec that parses to the same source.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pwsnas_datasets::DataSpec;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(spec) = text.parse::<DataSpec>() {
        let again = spec.to_string();
        assert_eq!(again.parse::<DataSpec>().expect("a printed spec parses"), spec);
    }
});
