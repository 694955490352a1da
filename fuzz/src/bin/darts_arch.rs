//! DARTS arch text (`--arch`, `arch.json` of a darts run): a genotype as the DARTS code prints it,
//! the edge form, or a published genotype's name. What parses formats back to the same child.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pwsnas_models::{DartsParams, Genotype};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let params = DartsParams::default();
    if let Ok(ops) = params.parse_arch(text) {
        let again = params.format_arch(&ops);
        assert_eq!(params.parse_arch(&again).expect("a formatted arch parses"), ops);
        let _ = params.cost(&ops);
    }
    if let Ok(g) = text.parse::<Genotype>() {
        assert_eq!(g.to_string().parse::<Genotype>().expect("a printed genotype parses"), g);
    }
});
