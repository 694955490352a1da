//! Helpers shared by the fuzz targets (`src/bin/*.rs`, one per reader of user input).
//!
//! A reader that takes several files gets them from one fuzz input: [`Parts`] splits it into a
//! flag byte and two files at an offset given by the next two bytes, so the fuzzer can grow either
//! file and every seed is a plain concatenation (see the seed writer in `xtask/src/fuzz.rs`).
use std::path::Path;

/// A fuzz input as a flag byte and two files.
pub struct Parts<'a> {
    pub flags: u8,
    pub first: &'a [u8],
    pub second: &'a [u8],
}

impl<'a> Parts<'a> {
    /// `[flags, len_lo, len_hi, first (len bytes), second (the rest)]`; a short input gives empty parts.
    pub fn split(data: &'a [u8]) -> Parts<'a> {
        let flags = data.first().copied().unwrap_or(0);
        let len = match data {
            [_, lo, hi, ..] => usize::from(u16::from_le_bytes([*lo, *hi])),
            _ => 0,
        };
        let rest = data.get(3..).unwrap_or(&[]);
        let (first, second) = rest.split_at(len.min(rest.len()));
        Parts { flags, first, second }
    }
}

/// The file name errors are reported with.
pub fn path(name: &str) -> &Path {
    Path::new(name)
}

/// Libtorch with one thread: fuzzing runs one input at a time.
pub fn one_thread() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| tch::set_num_threads(1));
}
