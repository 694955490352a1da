//! Arch strings of every space (`--arch`, `arch.json`, `search.json`): nb201 (3 and 4 nodes),
//! mobile and darts (genotype text, the edge form, published names). What parses formats back to a string that parses to the same child, and has a cost.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pwsnas_models::{Nb201Params, Space, SpaceKind};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    thread_local! {
        static KINDS: Vec<SpaceKind> = vec![
            SpaceKind::new(Nb201Params::default()),
            SpaceKind::new(Nb201Params { nodes: 3, ..Nb201Params::default() }),
            SpaceKind::by_name("mobile").unwrap(),
            SpaceKind::by_name("darts").unwrap(),
        ];
    }
    KINDS.with(|kinds| {
        for kind in kinds {
            if let Ok(arch) = kind.parse_arch(text) {
                let again = kind.format_arch(&arch);
                assert_eq!(kind.parse_arch(&again).expect("a formatted arch parses"), arch);
                let cost = kind.cost(&arch);
                assert!(cost.params() > 0);
                let _ = Space::full(kind.clone()).contains(&arch);
            }
        }
    });
});
