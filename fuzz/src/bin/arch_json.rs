//! `arch.json` (`pwsnas train --arch FILE`): the file, its space and its arch string.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pwsnas::search::ArchFile;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = serde_json::from_slice::<ArchFile>(data) else { return };
    if let Ok(kind) = file.kind() {
        if let Ok(arch) = kind.parse_arch(&file.arch) {
            let _ = kind.cost(&arch);
        }
    }
});
