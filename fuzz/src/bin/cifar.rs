//! The CIFAR-10/100 binary reader (flag bit 0: CIFAR-100): a names file (when flag bit 1 is set)
//! and a file of records.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pwsnas_datasets::from_bytes::cifar_split;
use pwsnas_fuzz::{path, Parts};

fuzz_target!(|data: &[u8]| {
    let parts = Parts::split(data);
    let names = std::str::from_utf8(parts.first).ok().filter(|_| parts.flags & 2 != 0);
    let result = cifar_split(
        parts.flags & 1 != 0,
        &[(path("data_batch_1.bin"), parts.second)],
        names.map(|n| (path("names.txt"), n)),
    );
    if let Ok(ds) = result {
        assert_eq!(ds.images.len(), ds.labels.len() * 3 * 32 * 32);
        assert!(ds.labels.iter().all(|&l| (l as usize) < ds.classes.len()));
    }
});
