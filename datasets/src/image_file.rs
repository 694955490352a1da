//! One image file (PNG or JPEG) decoded from its bytes: the one place that knows the decoder's
//! limits and that a decoder can crash. The folder reader (`--data folder:PATH`) and `pwsnas infer`
//! both decode through [`decode`].
//!
//! Why a crash is caught here: the `image` crate decodes JPEG with zune-jpeg, and zune-jpeg 0.5.15
//! panics on some damaged files, indexing past a block of its output (in its AVX2 inverse DCT and in
//! its portable one alike; found by pwsnas's `image` fuzz target, and open upstream as zune-image
//! issue #361). A user's folder of images must not bring pwsnas down with a decoder's panic
//! message, so [`decode`] runs the decoder under `catch_unwind` and turns a panic into the same
//! "not a readable image" error as any other undecodable file, naming the file and what to do.
//! While a decoder runs, a panic hook installed once (wrapping whatever hook was there) keeps the
//! panic quiet; every other panic goes to the previous hook as before.
use std::any::Any;
use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;

use image::error::{DecodingError, ImageFormatHint};
use image::imageops::FilterType;
use image::{DynamicImage, ImageError, ImageFormat};

use crate::error::DataError;

/// The largest image pwsnas decodes: 10,000 pixels a side and 256 MiB of pixels. A damaged header
/// can claim any size (a 600-byte JPEG claiming 32772×1028 took seconds to decode), and no dataset
/// image or photo to classify comes near this.
fn limits() -> image::Limits {
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(10_000);
    limits.max_image_height = Some(10_000);
    limits.max_alloc = Some(256 << 20);
    limits
}

/// Decodes the image file `path` from its `bytes` (its content decides the format, its extension is
/// the fallback) within [`limits`], resized to `size` (height, width) when given and different. A
/// file the decoder fails or crashes on is [`DataError::NotAnImage`].
pub fn decode(path: &Path, bytes: &[u8], size: Option<(usize, usize)>) -> Result<DynamicImage, DataError> {
    let img = decode_as_stored(path, bytes)?;
    Ok(match size {
        Some((h, w)) if (img.height() as usize, img.width() as usize) != (h, w) => {
            img.resize_exact(w as u32, h as u32, FilterType::Triangle)
        }
        _ => img,
    })
}

/// [`decode`] without the resizing.
fn decode_as_stored(path: &Path, bytes: &[u8]) -> Result<DynamicImage, DataError> {
    let not_an_image = |cause| DataError::NotAnImage { path: path.to_path_buf(), cause };
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes));
    let format = image::guess_format(bytes).or_else(|_| ImageFormat::from_path(path));
    if let Ok(format) = format {
        reader.set_format(format);
    }
    reader.limits(limits());
    match quietly(AssertUnwindSafe(|| reader.decode())) {
        Ok(decoded) => decoded.map_err(not_an_image),
        Err(payload) => {
            let hint = format.map_or(ImageFormatHint::Unknown, ImageFormatHint::Exact);
            let cause = format!(
                "the image decoder crashed on it ({}), a bug of the decoder on this damaged or unusual \
                 file; save the image again (e.g. as PNG) or remove it",
                panic_message(&*payload)
            );
            Err(not_an_image(ImageError::Decoding(DecodingError::new(hint, cause))))
        }
    }
}

thread_local! {
    /// Whether this thread is inside [`quietly`].
    static DECODING: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f`, catching a panic as `Err(payload)`, with the panic message kept off stderr.
fn quietly<T>(f: AssertUnwindSafe<impl FnOnce() -> T>) -> Result<T, Box<dyn Any + Send>> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !DECODING.with(Cell::get) {
                previous(info);
            }
        }));
    });
    DECODING.with(|d| d.set(true));
    let result = panic::catch_unwind(f);
    DECODING.with(|d| d.set(false));
    result
}

/// The message of a panic payload (`panic!` with a literal or a format string), or a placeholder.
fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message")
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, RgbImage};

    /// A damaged JPEG (a 781×19 frame whose third component is sampled 4×1 against the others'
    /// 1×1) on which zune-jpeg 0.5.15 panics; found by the `image` fuzz target.
    const DECODER_PANIC: &[u8] = include_bytes!("../tests/data/zune-jpeg-panic.jpg");

    #[test]
    fn a_file_the_decoder_crashes_on_is_not_a_readable_image() {
        let err = decode(Path::new("cat/a.jpg"), DECODER_PANIC, None).unwrap_err();
        assert!(matches!(err, DataError::NotAnImage { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.starts_with("cat/a.jpg is not a readable image: "), "{text}");
        assert!(text.contains("the image decoder crashed on it (") && text.contains("save the image again"));
        // The catch is per call: the next file decodes, and a panic elsewhere is still a panic.
        assert!(decode(Path::new("b.png"), &encode(gray(), ImageFormat::Png), None).is_ok());
        assert!(panic::catch_unwind(|| panic!("elsewhere")).is_err());
    }

    #[test]
    fn jpeg_and_png_decode_to_the_pixels_they_hold() {
        for img in [DynamicImage::ImageRgb8(rgb()), DynamicImage::ImageLuma8(gray())] {
            let png = decode(Path::new("a.png"), &encode(img.clone(), ImageFormat::Png), None).unwrap();
            let jpeg = decode(Path::new("a.jpg"), &encode(img.clone(), ImageFormat::Jpeg), None).unwrap();
            assert_eq!((png.color(), png.as_bytes()), (img.color(), img.as_bytes()));
            assert_eq!(jpeg.color(), img.color());
            // JPEG is lossy: close, not equal.
            let worst = img.as_bytes().iter().zip(jpeg.as_bytes()).map(|(a, b)| a.abs_diff(*b)).max();
            assert!(worst.unwrap() <= 24, "JPEG pixels off by {worst:?}");
        }
    }

    fn rgb() -> RgbImage {
        RgbImage::from_fn(16, 8, |x, y| image::Rgb([(x * 16) as u8, (y * 32) as u8, 128]))
    }

    fn gray() -> GrayImage {
        GrayImage::from_fn(8, 8, |x, y| image::Luma([(x * 30 + y) as u8]))
    }

    fn encode(img: impl Into<DynamicImage>, format: ImageFormat) -> Vec<u8> {
        let mut bytes = std::io::Cursor::new(Vec::new());
        img.into().write_to(&mut bytes, format).unwrap();
        bytes.into_inner()
    }
}
