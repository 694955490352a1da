//! A latency table file (the cache, a run's `latency_table.json`): read, then fitted to spaces and
//! asked for predictions.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pwsnas::latency::{table, Predictor};
use pwsnas_fuzz::path;
use pwsnas_models::{Nb201Params, Space, SpaceKind};

fuzz_target!(|data: &[u8]| {
    let Ok(t) = table::parse(path("latency_table.json"), data) else { return };
    let nb201 =
        SpaceKind::new(Nb201Params { nodes: 3, channels: 4, cells_per_stage: 1, ..Default::default() });
    for kind in [nb201, SpaceKind::by_name("mobile").unwrap()] {
        if let Ok(p) = Predictor::new(&t, &kind) {
            let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
            let child = Space::full(kind.clone()).sample(&mut rng);
            assert!(p.predict_ms(&child).is_finite());
        }
    }
});
