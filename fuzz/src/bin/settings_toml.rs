//! `--config FILE.toml`, laid over the defaults and over stored settings of another run.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pwsnas::settings::Settings;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut stored = Settings { data: "synthetic".into(), seed: 3, ..Settings::default() };
    stored.space_params.insert("nodes".into(), 3.into());
    for base in [Settings::default(), stored] {
        if let Ok(s) = base.with_toml(text) {
            let _ = s.validate();
            let json = serde_json::to_value(&s).expect("settings write as JSON");
            assert_eq!(serde_json::from_value::<Settings>(json).expect("and read back"), s);
        }
    }
});
