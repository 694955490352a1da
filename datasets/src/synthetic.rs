//! A generated dataset for tests, demos and smoke runs that need no files.
//!
//! Each class is a plaid pattern `cos(2π·fx·x/S + φx) · cos(2π·fy·y/S + φy)` with its own
//! frequency pair `(fx, fy)` (both in `1..=max(1, S/4)`), and with three channels its own colour;
//! when there are more classes than frequency pairs, classes sharing a pair differ in brightness.
//! Every image draws its own phases, contrast and pixel noise. A class is therefore recognisable
//! from local texture and colour wherever it is looked at, and a small CNN learns it quickly,
//! while a pixel template cannot. Shifts and horizontal mirrors of a pattern are patterns of the
//! same class (they only change the phases), so the standard augmentation keeps labels valid.
//!
//! Everything is drawn from ChaCha8 generators seeded by [`SyntheticSpec::seed`]: the class
//! patterns, the training images and the test images use separate streams, so the same spec gives
//! the same bytes on every platform, and the training set does not change when `test` does.

use std::f32::consts::TAU;
use std::path::PathBuf;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::dataset::{Dataset, Splits};
use crate::error::DataError;

/// Parameters of the synthetic dataset: `synthetic:classes=…,channels=…,size=…,train=…,test=…,seed=…`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SyntheticSpec {
    /// Number of classes, 2 to 1000.
    pub classes: usize,
    /// 1 (greyscale) or 3 (RGB).
    pub channels: usize,
    /// Height and width in pixels, 4 to 512.
    pub size: usize,
    /// Training images (labels cycle through the classes, so the split is balanced).
    pub train: usize,
    /// Test images.
    pub test: usize,
    pub seed: u64,
}

impl Default for SyntheticSpec {
    fn default() -> Self {
        SyntheticSpec { classes: 10, channels: 3, size: 16, train: 1000, test: 200, seed: 0 }
    }
}

/// Most bytes a synthetic dataset may take, so that a typo cannot exhaust memory.
const MAX_BYTES: usize = 4 << 30;

impl SyntheticSpec {
    fn validate(&self) -> Result<(), DataError> {
        let bad = |key: &str, reason: String| Err(DataError::invalid(format!("synthetic {key}"), reason));
        if !(2..=1000).contains(&self.classes) {
            return bad("classes", format!("{} is not in 2..=1000", self.classes));
        }
        if self.channels != 1 && self.channels != 3 {
            return bad("channels", format!("{} is neither 1 nor 3", self.channels));
        }
        if !(4..=512).contains(&self.size) {
            return bad("size", format!("{} is not in 4..=512", self.size));
        }
        if self.train == 0 || self.test == 0 {
            return bad("train/test", "both splits need at least one image".into());
        }
        let bytes =
            (self.train.saturating_add(self.test)).saturating_mul(self.channels * self.size * self.size);
        if bytes > MAX_BYTES {
            return bad("size", format!("{bytes} bytes of images is more than the {MAX_BYTES} allowed"));
        }
        Ok(())
    }
}

/// What makes one class: its frequencies, per-channel colour and base brightness.
struct ClassPattern {
    fx: f32,
    fy: f32,
    colour: Vec<f32>,
    base: Vec<f32>,
}

fn class_patterns(spec: &SyntheticSpec, rng: &mut ChaCha8Rng) -> Vec<ClassPattern> {
    let fmax = (spec.size / 4).max(1);
    let pairs: Vec<(usize, usize)> = (1..=fmax).flat_map(|fx| (1..=fmax).map(move |fy| (fx, fy))).collect();
    let groups = spec.classes.div_ceil(pairs.len());
    (0..spec.classes)
        .map(|k| {
            let (fx, fy) = pairs[k % pairs.len()];
            let group = k / pairs.len();
            let offset = if groups > 1 { -0.2 + 0.4 * group as f32 / (groups - 1) as f32 } else { 0.0 };
            let (colour, base) = if spec.channels == 1 {
                (vec![1.0], vec![0.5 + offset])
            } else {
                let colour = (0..3).map(|_| rng.random_range(0.2..1.0)).collect();
                let base = (0..3).map(|_| 0.5 + offset + rng.random_range(-0.15..0.15)).collect();
                (colour, base)
            };
            ClassPattern { fx: fx as f32, fy: fy as f32, colour, base }
        })
        .collect()
}

/// Generates the dataset described by `spec`.
pub(crate) fn generate(spec: &SyntheticSpec) -> Result<Splits, DataError> {
    spec.validate()?;
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let patterns = class_patterns(spec, &mut rng);
    let classes: Vec<String> = (0..spec.classes).map(|k| format!("class_{k}")).collect();
    let split = |n: usize, stream: u64| {
        let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
        rng.set_stream(stream);
        render(spec, &patterns, &classes, n, &mut rng)
    };
    Ok(Splits {
        train: split(spec.train, 1),
        test: split(spec.test, 2),
        name: "synthetic".into(),
        source: PathBuf::from("synthetic"),
    })
}

fn render(
    spec: &SyntheticSpec,
    patterns: &[ClassPattern],
    classes: &[String],
    n: usize,
    rng: &mut ChaCha8Rng,
) -> Dataset {
    let s = spec.size;
    let mut images = Vec::with_capacity(n * spec.channels * s * s);
    let mut labels = Vec::with_capacity(n);
    let (mut cx, mut cy) = (vec![0f32; s], vec![0f32; s]);
    for i in 0..n {
        let label = i % spec.classes;
        let p = &patterns[label];
        let (phx, phy): (f32, f32) = (rng.random_range(0.0..TAU), rng.random_range(0.0..TAU));
        let contrast: f32 = rng.random_range(0.25..0.4);
        for (x, v) in cx.iter_mut().enumerate() {
            *v = (TAU * p.fx * x as f32 / s as f32 + phx).cos();
        }
        for (y, v) in cy.iter_mut().enumerate() {
            *v = (TAU * p.fy * y as f32 / s as f32 + phy).cos();
        }
        for c in 0..spec.channels {
            let amp = contrast * p.colour[c];
            for &vy in &cy {
                for &vx in &cx {
                    let noise = rng.random_range(-0.08f32..0.08) + rng.random_range(-0.08f32..0.08);
                    let v = p.base[c] + amp * vx * vy + noise;
                    images.push((v * 255.0).round().clamp(0.0, 255.0) as u8);
                }
            }
        }
        labels.push(label as u32);
    }
    Dataset { channels: spec.channels, height: s, width: s, classes: classes.to_vec(), images, labels }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(classes: usize, channels: usize, size: usize) -> SyntheticSpec {
        SyntheticSpec { classes, channels, size, train: 40 * classes, test: 20 * classes, seed: 3 }
    }

    #[test]
    fn shape_balance_and_determinism() {
        let s = generate(&SyntheticSpec::default()).unwrap();
        assert_eq!((s.train.len(), s.test.len()), (1000, 200));
        assert_eq!((s.train.channels, s.train.height, s.train.width), (3, 16, 16));
        assert_eq!(s.train.class_counts(), vec![100; 10]);
        assert_eq!(s.test.class_counts(), vec![20; 10]);
        assert_eq!(s.source, PathBuf::from("synthetic"));
        let again = generate(&SyntheticSpec::default()).unwrap();
        assert_eq!(s.train, again.train);
        assert_eq!(s.test, again.test);
        let other = generate(&SyntheticSpec { seed: 1, ..Default::default() }).unwrap();
        assert_ne!(s.train.images, other.train.images);
        // The training set does not depend on the size of the test set.
        let more_test = generate(&SyntheticSpec { test: 5, ..Default::default() }).unwrap();
        assert_eq!(s.train, more_test.train);
    }

    /// Magnitudes of the 2-D Fourier coefficients at the pattern frequencies, plus channel means:
    /// features invariant to the random phases.
    fn features(ds: &Dataset, i: usize) -> Vec<f32> {
        let (c, s) = (ds.channels, ds.height);
        let img = ds.image(i);
        let fmax = (s / 4).max(1) as i64;
        let mut out = Vec::new();
        for ch in 0..c {
            let plane = &img[ch * s * s..(ch + 1) * s * s];
            out.push(plane.iter().map(|&v| v as f32).sum::<f32>() / (s * s) as f32);
            for fx in 1..=fmax {
                for fy in -fmax..=fmax {
                    let (mut re, mut im) = (0f32, 0f32);
                    for (k, &v) in plane.iter().enumerate() {
                        let (y, x) = ((k / s) as f32, (k % s) as f32);
                        let a = TAU * (fx as f32 * x + fy as f32 * y) / s as f32;
                        re += v as f32 * a.cos();
                        im -= v as f32 * a.sin();
                    }
                    out.push((re * re + im * im).sqrt() / (s * s) as f32);
                }
            }
        }
        out
    }

    /// Test accuracy of a nearest-centroid classifier on phase-invariant features.
    fn centroid_accuracy(spec: &SyntheticSpec) -> f64 {
        let s = generate(spec).unwrap();
        let dim = features(&s.train, 0).len();
        let mut centroids = vec![vec![0f32; dim]; spec.classes];
        for i in 0..s.train.len() {
            let l = s.train.labels[i] as usize;
            for (c, f) in centroids[l].iter_mut().zip(features(&s.train, i)) {
                *c += f;
            }
        }
        let counts = s.train.class_counts();
        for (c, &n) in centroids.iter_mut().zip(&counts) {
            c.iter_mut().for_each(|v| *v /= n as f32);
        }
        let correct = (0..s.test.len())
            .filter(|&i| {
                let f = features(&s.test, i);
                let dist = |c: &Vec<f32>| c.iter().zip(&f).map(|(a, b)| (a - b).powi(2)).sum::<f32>();
                let best =
                    (0..spec.classes).min_by(|&a, &b| dist(&centroids[a]).total_cmp(&dist(&centroids[b])));
                best == Some(s.test.labels[i] as usize)
            })
            .count();
        correct as f64 / s.test.len() as f64
    }

    #[test]
    fn classes_are_learnable() {
        for (classes, channels, size) in [(10, 3, 16), (10, 1, 16), (4, 1, 8), (10, 1, 8)] {
            let acc = centroid_accuracy(&spec(classes, channels, size));
            assert!(acc > 0.9, "{classes} classes, {channels} channels, {size}px: accuracy {acc}");
        }
    }

    #[test]
    fn invalid_specs_are_refused() {
        for bad in [
            SyntheticSpec { classes: 1, ..Default::default() },
            SyntheticSpec { channels: 2, ..Default::default() },
            SyntheticSpec { size: 3, ..Default::default() },
            SyntheticSpec { train: 0, ..Default::default() },
            SyntheticSpec { train: usize::MAX, ..Default::default() },
        ] {
            assert!(matches!(generate(&bad), Err(DataError::InvalidOption { .. })), "{bad:?}");
        }
    }
}
