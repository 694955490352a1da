//! Training-time augmentation: random crop with zero padding, random horizontal flip, and cutout.
//!
//! [`Augment`] says what is enabled; for each image a [`Transform`] is drawn from the batch
//! iterator's seeded generator and applied while the image is converted to `f32`, in one pass
//! with no intermediate buffer. The crop works like torchvision's `RandomCrop(size, padding)`:
//! the image is shifted by up to `crop_padding` pixels in each direction and the uncovered border
//! is black (pixel value 0, before normalisation). Cutout (DeVries & Taylor, "Improved
//! Regularization of Convolutional Neural Networks with Cutout", 2017, as DARTS's evaluation uses
//! it) then sets a `cutout × cutout` square around a uniformly drawn centre to 0 *after*
//! normalisation (the training mean), clipped at the image's border as in the DARTS code's
//! `Cutout`.

use rand::Rng;

/// Which augmentations to apply to training images.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Augment {
    /// Shift by up to this many pixels each way (0 disables the crop).
    pub crop_padding: usize,
    /// Mirror left-right with probability 1/2.
    pub hflip: bool,
    /// Side of the cutout square in pixels (0 disables it).
    #[serde(default)]
    pub cutout: usize,
}

impl Augment {
    /// No augmentation: batches hold the images as they are.
    pub fn none() -> Self {
        Augment { crop_padding: 0, hflip: false, cutout: 0 }
    }

    /// The usual augmentation for the dataset called `name` (as in [`crate::Splits::name`]) with
    /// images `height` pixels high. Cutout is off: it is an option of training
    /// ([`Augment::with_cutout`]), not part of a dataset's recipe.
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
        Augment { crop_padding, hflip: name != "mnist", cutout: 0 }
    }

    /// This augmentation with a cutout square of side `cutout` (0 = none).
    pub fn with_cutout(self, cutout: usize) -> Self {
        Augment { cutout, ..self }
    }

    /// Draws the transform for one image. Nothing is drawn for what is disabled, so
    /// [`Augment::none`] leaves the generator untouched.
    pub(crate) fn sample(&self, rng: &mut impl Rng) -> Transform {
        // `isize` is not portable enough for rand's uniform sampling; draw as i64.
        let p = self.crop_padding as i64;
        let mut shift = || rng.random_range(-p..=p) as isize;
        let (dx, dy) = if p > 0 { (shift(), shift()) } else { (0, 0) };
        let flip = self.hflip && rng.random::<bool>();
        let cutout = (self.cutout > 0).then(|| Cutout {
            side: self.cutout,
            y: rng.random_range(0..u32::MAX) as usize,
            x: rng.random_range(0..u32::MAX) as usize,
        });
        Transform { dx, dy, flip, cutout }
    }
}

/// The augmentation of one image: output pixel `(x, y)` shows input pixel
/// `(x' + dx, y + dy)`, where `x' = width - 1 - x` when flipped and `x` otherwise; then the cutout
/// square, if any, is zeroed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Transform {
    pub dx: isize,
    pub dy: isize,
    pub flip: bool,
    pub cutout: Option<Cutout>,
}

/// A cutout square of side `side` centred on pixel `(x mod width, y mod height)`: the centre is
/// drawn before the image's size is known, so that the draws do not depend on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cutout {
    pub side: usize,
    pub y: usize,
    pub x: usize,
}

impl Cutout {
    /// Rows and columns `[lo, hi)` the square covers in an `h × w` image: `centre ± side / 2`,
    /// clipped to the image (DARTS's `Cutout` clips the same way, so a square near a border is
    /// smaller).
    fn bounds(&self, (h, w): (usize, usize)) -> ((usize, usize), (usize, usize)) {
        let span = |c: usize, n: usize| {
            let half = self.side / 2;
            (c.saturating_sub(half), (c + self.side - half).min(n))
        };
        (span(self.y % h, h), span(self.x % w, w))
    }
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
        if let Some(cut) = self.cutout {
            let ((y0, y1), (x0, x1)) = cut.bounds((h, w));
            for out_plane in out.chunks_exact_mut(plane) {
                for row in out_plane.chunks_exact_mut(w).take(y1).skip(y0) {
                    row[x0..x1].fill(0.0);
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
        let out = run(Transform { dx: 0, dy: 0, flip: false, cutout: None });
        assert_eq!(out, image().iter().map(|&v| v as f32).collect::<Vec<_>>());
        // And with padding 0 and no flip, sampling always gives that transform.
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        for _ in 0..20 {
            assert_eq!(
                Augment::none().sample(&mut rng),
                Transform { dx: 0, dy: 0, flip: false, cutout: None }
            );
        }
    }

    #[test]
    fn flip_mirrors_each_row() {
        let out = run(Transform { dx: 0, dy: 0, flip: true, cutout: None });
        assert_eq!(out[..4], [4.0, 3.0, 2.0, 1.0]);
        assert_eq!(out[20..], [124.0, 123.0, 122.0, 121.0]);
    }

    #[test]
    fn shifts_pad_with_zero_pixels() {
        let out = run(Transform { dx: 1, dy: -1, flip: false, cutout: None });
        // Row 0 comes from above the image; row 1 is source row 0 shifted left by one.
        assert_eq!(out[..8], [0.0, 0.0, 0.0, 0.0, 2.0, 3.0, 4.0, 0.0]);
        let out = run(Transform { dx: -2, dy: 1, flip: false, cutout: None });
        assert_eq!(out[..4], [0.0, 0.0, 11.0, 12.0]);
        assert_eq!(out[8..12], [0.0; 4], "the last row comes from below the image");
        let out = run(Transform { dx: 1, dy: 0, flip: true, cutout: None });
        assert_eq!(out[..4], [0.0, 4.0, 3.0, 2.0]);
        let out = run(Transform { dx: -1, dy: 0, flip: true, cutout: None });
        assert_eq!(out[..4], [3.0, 2.0, 1.0, 0.0]);
        // A shift larger than the image leaves only padding.
        assert_eq!(run(Transform { dx: 9, dy: 0, flip: true, cutout: None }), vec![0.0; 24]);
    }

    #[test]
    fn samples_cover_the_range_and_both_flips() {
        let aug = Augment { crop_padding: 2, hflip: true, cutout: 0 };
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
    fn cutout_zeroes_a_square_in_every_channel_clipped_at_the_border() {
        // A 2×2 square centred on (y 1, x 2): rows 0..2, columns 1..3.
        let cut = Some(Cutout { side: 2, y: 1, x: 2 });
        let out = run(Transform { dx: 0, dy: 0, flip: false, cutout: cut });
        let plain = run(Transform { dx: 0, dy: 0, flip: false, cutout: None });
        for (k, (&o, &p)) in out.iter().zip(&plain).enumerate() {
            let (y, x) = ((k % 12) / 4, k % 4);
            let inside = y < 2 && (1..3).contains(&x);
            assert_eq!(o, if inside { 0.0 } else { p }, "pixel {k}");
        }
        // Centred on the corner (0, 0) a 3×3 square keeps only its in-image quarter, rows and
        // columns 0..2; the centre wraps modulo the image's size.
        let out = run(Transform { dx: 0, dy: 0, flip: false, cutout: Some(Cutout { side: 3, y: 3, x: 4 }) });
        let zeros: Vec<usize> = (0..24).filter(|&k| out[k] == 0.0).collect();
        assert_eq!(zeros, [0, 1, 4, 5, 12, 13, 16, 17]);
    }

    #[test]
    fn cutout_draws_only_when_enabled_and_leaves_the_other_draws_alone() {
        let base = Augment { crop_padding: 2, hflip: true, cutout: 0 };
        let (mut a, mut b) = (ChaCha8Rng::seed_from_u64(3), ChaCha8Rng::seed_from_u64(3));
        let plain: Vec<Transform> = (0..50).map(|_| base.sample(&mut a)).collect();
        let cut: Vec<Transform> = (0..50).map(|_| base.with_cutout(4).sample(&mut b)).collect();
        assert!(plain.iter().all(|t| t.cutout.is_none()));
        assert!(cut.iter().all(|t| t.cutout.is_some_and(|c| c.side == 4)));
        // The first image's shift and flip come before its cutout draw.
        assert_eq!((cut[0].dx, cut[0].dy, cut[0].flip), (plain[0].dx, plain[0].dy, plain[0].flip));
        let centres: std::collections::HashSet<(usize, usize)> =
            cut.iter().map(|t| t.cutout.map(|c| (c.y % 28, c.x % 28)).unwrap()).collect();
        assert!(centres.len() > 40, "centres vary: {}", centres.len());
    }

    #[test]
    fn standard_choices() {
        assert_eq!(Augment::standard_for("cifar10", 32), Augment { crop_padding: 4, hflip: true, cutout: 0 });
        assert_eq!(
            Augment::standard_for("fashion-mnist", 28),
            Augment { crop_padding: 2, hflip: true, cutout: 0 }
        );
        assert_eq!(Augment::standard_for("mnist", 28), Augment { crop_padding: 2, hflip: false, cutout: 0 });
        assert_eq!(
            Augment::standard_for("synthetic", 16),
            Augment { crop_padding: 2, hflip: true, cutout: 0 }
        );
        assert_eq!(
            Augment::standard_for("synthetic", 8),
            Augment { crop_padding: 1, hflip: true, cutout: 0 }
        );
        assert_eq!(Augment::standard_for("folder", 4).crop_padding, 0);
    }
}
