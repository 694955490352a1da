//! Training-time augmentation: random crop with zero padding and random horizontal flip.
//!
//! [`Augment`] says what is enabled; for each image a [`Transform`] is drawn from the batch
//! iterator's seeded generator and applied while the image is converted to `f32`, in one pass
//! with no intermediate buffer. The crop works like torchvision's `RandomCrop(size, padding)`:
//! the image is shifted by up to `crop_padding` pixels in each direction and the uncovered border
//! is black (pixel value 0, before normalisation).

use rand::Rng;

/// Which augmentations to apply to training images.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Augment {
    /// Shift by up to this many pixels each way (0 disables the crop).
    pub crop_padding: usize,
    /// Mirror left-right with probability 1/2.
    pub hflip: bool,
}

impl Augment {
    /// No augmentation: batches hold the images as they are.
    pub fn none() -> Self {
        Augment { crop_padding: 0, hflip: false }
    }

    /// The usual augmentation for the dataset called `name` (as in [`crate::Splits::name`]) with
    /// images `height` pixels high.
    ///
    /// Padding: 4 for 32 px and above (the CIFAR recipe), 2 from 16 px (28 px MNIST-style
    /// images), 1 from 8 px, none below. Flip: on for everything except `mnist`, because a
    /// mirrored digit is not the same digit; clothes (Fashion-MNIST), CIFAR objects, image folders
    /// and the synthetic patterns keep their class when mirrored.
    pub fn standard_for(name: &str, height: usize) -> Self {
        let crop_padding = match height {
            32.. => 4,
            16..=31 => 2,
            8..=15 => 1,
            _ => 0,
        };
        Augment { crop_padding, hflip: name != "mnist" }
    }

    /// Draws the transform for one image. Nothing is drawn for what is disabled, so
    /// [`Augment::none`] leaves the generator untouched.
    pub(crate) fn sample(&self, rng: &mut impl Rng) -> Transform {
        // `isize` is not portable enough for rand's uniform sampling; draw as i64.
        let p = self.crop_padding as i64;
        let mut shift = || rng.random_range(-p..=p) as isize;
        let (dx, dy) = if p > 0 { (shift(), shift()) } else { (0, 0) };
        let flip = self.hflip && rng.random::<bool>();
        Transform { dx, dy, flip }
    }
}

/// The augmentation of one image: output pixel `(x, y)` shows input pixel
/// `(x' + dx, y + dy)`, where `x' = width - 1 - x` when flipped and `x` otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Transform {
    pub dx: isize,
    pub dy: isize,
    pub flip: bool,
}

impl Transform {
    /// Writes `src` (`C×H×W` bytes) transformed into `out` (`C×H×W` floats), mapping each byte
    /// through its channel's lookup table; pixels from outside the image take `lut[c][0]`.
    pub(crate) fn apply(&self, src: &[u8], (h, w): (usize, usize), luts: &[[f32; 256]], out: &mut [f32]) {
        let plane = h * w;
        let (wi, hi) = (w as isize, h as isize);
        // Output columns [lo, hi) read from inside the source row.
        let (lo, end) = if self.flip {
            (self.dx.clamp(0, wi), (wi + self.dx).clamp(0, wi))
        } else {
            ((-self.dx).clamp(0, wi), (wi - self.dx).clamp(0, wi))
        };
        let (lo, end) = (lo as usize, (end.max(lo)) as usize);
        for (c, lut) in luts.iter().enumerate() {
            let pad = lut[0];
            let src_plane = &src[c * plane..(c + 1) * plane];
            let out_plane = &mut out[c * plane..(c + 1) * plane];
            for (y, row) in out_plane.chunks_exact_mut(w).enumerate() {
                let sy = y as isize + self.dy;
                if !(0..hi).contains(&sy) {
                    row.fill(pad);
                    continue;
                }
                let src_row = &src_plane[sy as usize * w..(sy as usize + 1) * w];
                row[..lo].fill(pad);
                row[end..].fill(pad);
                if lo == end {
                    continue;
                }
                if self.flip {
                    // x in [lo, end) reads w-1-x+dx, from w-1-lo+dx down to w-end+dx.
                    let first = (wi - end as isize + self.dx) as usize;
                    let last = (wi - 1 - lo as isize + self.dx) as usize;
                    for (o, &v) in row[lo..end].iter_mut().zip(src_row[first..=last].iter().rev()) {
                        *o = lut[v as usize];
                    }
                } else {
                    let first = (lo as isize + self.dx) as usize;
                    for (o, &v) in row[lo..end].iter_mut().zip(&src_row[first..]) {
                        *o = lut[v as usize];
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// Identity lookup: the float equals the byte.
    fn ident() -> [f32; 256] {
        std::array::from_fn(|v| v as f32)
    }

    /// 2 channels of 3×4, pixel value = 100*c + 10*y + x + 1 (never 0, so padding shows as 0).
    fn image() -> Vec<u8> {
        (0..2)
            .flat_map(|c| (0..3).flat_map(move |y| (0..4).map(move |x| (100 * c + 10 * y + x + 1) as u8)))
            .collect()
    }

    fn run(t: Transform) -> Vec<f32> {
        let mut out = vec![-1.0; 24];
        t.apply(&image(), (3, 4), &[ident(), ident()], &mut out);
        out
    }

    #[test]
    fn no_shift_no_flip_is_the_identity() {
        let out = run(Transform { dx: 0, dy: 0, flip: false });
        assert_eq!(out, image().iter().map(|&v| v as f32).collect::<Vec<_>>());
        // And with padding 0 and no flip, sampling always gives that transform.
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        for _ in 0..20 {
            assert_eq!(Augment::none().sample(&mut rng), Transform { dx: 0, dy: 0, flip: false });
        }
    }

    #[test]
    fn flip_mirrors_each_row() {
        let out = run(Transform { dx: 0, dy: 0, flip: true });
        assert_eq!(out[..4], [4.0, 3.0, 2.0, 1.0]);
        assert_eq!(out[20..], [124.0, 123.0, 122.0, 121.0]);
    }

    #[test]
    fn shifts_pad_with_zero_pixels() {
        let out = run(Transform { dx: 1, dy: -1, flip: false });
        // Row 0 comes from above the image; row 1 is source row 0 shifted left by one.
        assert_eq!(out[..8], [0.0, 0.0, 0.0, 0.0, 2.0, 3.0, 4.0, 0.0]);
        let out = run(Transform { dx: -2, dy: 1, flip: false });
        assert_eq!(out[..4], [0.0, 0.0, 11.0, 12.0]);
        assert_eq!(out[8..12], [0.0; 4], "the last row comes from below the image");
        let out = run(Transform { dx: 1, dy: 0, flip: true });
        assert_eq!(out[..4], [0.0, 4.0, 3.0, 2.0]);
        let out = run(Transform { dx: -1, dy: 0, flip: true });
        assert_eq!(out[..4], [3.0, 2.0, 1.0, 0.0]);
        // A shift larger than the image leaves only padding.
        assert_eq!(run(Transform { dx: 9, dy: 0, flip: true }), vec![0.0; 24]);
    }

    #[test]
    fn samples_cover_the_range_and_both_flips() {
        let aug = Augment { crop_padding: 2, hflip: true };
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let draws: Vec<Transform> = (0..500).map(|_| aug.sample(&mut rng)).collect();
        assert!(draws.iter().all(|t| t.dx.abs() <= 2 && t.dy.abs() <= 2));
        for v in -2..=2 {
            assert!(draws.iter().any(|t| t.dx == v) && draws.iter().any(|t| t.dy == v));
        }
        let flips = draws.iter().filter(|t| t.flip).count();
        assert!((200..300).contains(&flips), "{flips}");
    }

    #[test]
    fn standard_choices() {
        assert_eq!(Augment::standard_for("cifar10", 32), Augment { crop_padding: 4, hflip: true });
        assert_eq!(Augment::standard_for("fashion-mnist", 28), Augment { crop_padding: 2, hflip: true });
        assert_eq!(Augment::standard_for("mnist", 28), Augment { crop_padding: 2, hflip: false });
        assert_eq!(Augment::standard_for("synthetic", 16), Augment { crop_padding: 2, hflip: true });
        assert_eq!(Augment::standard_for("synthetic", 8), Augment { crop_padding: 1, hflip: true });
        assert_eq!(Augment::standard_for("folder", 4).crop_padding, 0);
    }
}
