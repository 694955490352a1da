//! One image of an image folder (`--data folder:PATH`): decoded as the folder reader does, with the
//! file extension the flags pick (png, jpg, none) and, when flag bit 2 is set, resized to 8×8.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pwsnas_datasets::from_bytes::folder_image;
use pwsnas_fuzz::path;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, bytes)) = data.split_first() else { return };
    let name = ["a.png", "a.jpg", "a"][usize::from(flags & 3).min(2)];
    let size = (flags & 4 != 0).then_some((8, 8));
    if let Ok(([c, h, w], pixels)) = folder_image(path(name), bytes, size) {
        assert!(c == 1 || c == 3);
        assert_eq!(pixels.len(), c * h * w);
        if let Some(s) = size {
            assert_eq!((h, w), s);
        }
    }
});
