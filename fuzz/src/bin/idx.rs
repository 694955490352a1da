//! The IDX reader (MNIST, Fashion-MNIST): an images file and a labels file, each raw or gzip
//! (flag bits 0 and 1), through the same checks `--data mnist:PATH` applies.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pwsnas_datasets::from_bytes::{gunzip, idx_split};
use pwsnas_fuzz::{path, Parts};

fuzz_target!(|data: &[u8]| {
    let parts = Parts::split(data);
    let file =
        |gz: bool, name: &str, bytes: &[u8]| if gz { gunzip(path(name), bytes) } else { Ok(bytes.to_vec()) };
    let (Ok(images), Ok(labels)) = (
        file(parts.flags & 1 != 0, "images.gz", parts.first),
        file(parts.flags & 2 != 0, "labels.gz", parts.second),
    ) else {
        return;
    };
    let classes: Vec<String> = (0..10).map(|c| c.to_string()).collect();
    if let Ok(ds) = idx_split(path("images"), images, path("labels"), labels, &classes) {
        assert_eq!(ds.images.len(), ds.labels.len() * ds.height * ds.width);
        assert!(ds.labels.iter().all(|&l| (l as usize) < classes.len()));
    }
});
