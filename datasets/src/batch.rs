//! Batching: from a [`Dataset`] of `u8` images to normalised `f32` batches ready for a tensor.
//!
//! [`batches`] returns an iterator over one pass (epoch) of the dataset. Everything random in the
//! pass (the shuffle and the augmentation) comes from one ChaCha8 generator seeded by the `seed`
//! argument: the shuffle is drawn first, then each image's transform in the order the images are
//! served. The same dataset, seed, order and augmentation therefore give the same images in the
//! same order, whatever the batch size. Pass a different seed per epoch (e.g. `base + epoch`) to
//! get a new order each epoch.
//!
//! Conversion goes through a 256-entry lookup table per channel, `(v/255 - mean) / std`, fused
//! with the augmentation; each batch's buffers are allocated once, at their final size, or
//! reused with [`BatchIter::next_into`].

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::augment::Augment;
use crate::dataset::Dataset;
use crate::normalize::Normalization;

/// The order in which a pass visits the images.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Order {
    /// Dataset order: for evaluation.
    Sequential,
    /// A seeded random permutation: for training.
    Shuffled,
}

/// A batch of normalised images in `N×C×H×W` order with their labels.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Batch {
    /// `n * channels * height * width` values.
    pub images: Vec<f32>,
    /// Class indices, `i64` as loss functions want them.
    pub labels: Vec<i64>,
    pub n: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

/// One pass over a dataset in batches; see [`batches`].
pub struct BatchIter<'a> {
    ds: &'a Dataset,
    luts: Vec<[f32; 256]>,
    order: Vec<usize>,
    pos: usize,
    batch_size: usize,
    drop_last: bool,
    augment: Augment,
    rng: ChaCha8Rng,
}

/// Batches of `batch_size` images of `ds`, normalised with `norm` and augmented with `augment`.
///
/// The last batch is smaller when `len` is not a multiple of `batch_size`, unless `drop_last`,
/// which leaves it out. All randomness comes from `seed` (see the module documentation).
///
/// # Panics
/// If `batch_size` is 0 or `norm` does not have one mean and one std per channel of `ds`.
pub fn batches<'a>(
    ds: &'a Dataset,
    norm: &Normalization,
    batch_size: usize,
    order: Order,
    augment: &Augment,
    drop_last: bool,
    seed: u64,
) -> BatchIter<'a> {
    assert!(batch_size > 0, "batch_size must be at least 1");
    assert!(
        norm.mean.len() == ds.channels && norm.std.len() == ds.channels,
        "normalisation has {} means and {} stds for {} channels",
        norm.mean.len(),
        norm.std.len(),
        ds.channels
    );
    let luts = norm
        .mean
        .iter()
        .zip(&norm.std)
        .map(|(&m, &s)| std::array::from_fn(|v| (v as f32 / 255.0 - m) / s))
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut indices: Vec<usize> = (0..ds.len()).collect();
    if order == Order::Shuffled {
        indices.shuffle(&mut rng);
    }
    BatchIter { ds, luts, order: indices, pos: 0, batch_size, drop_last, augment: *augment, rng }
}

impl BatchIter<'_> {
    /// Fills `batch` with the next batch, reusing its buffers; `false` (and `batch` untouched)
    /// when the pass is over.
    pub fn next_into(&mut self, batch: &mut Batch) -> bool {
        let left = self.order.len() - self.pos;
        let n = left.min(self.batch_size);
        if n == 0 || (self.drop_last && n < self.batch_size) {
            return false;
        }
        let ds = self.ds;
        let image_len = ds.image_len();
        batch.images.resize(n * image_len, 0.0);
        batch.labels.clear();
        for (k, &i) in self.order[self.pos..self.pos + n].iter().enumerate() {
            let t = self.augment.sample(&mut self.rng);
            t.apply(
                ds.image(i),
                (ds.height, ds.width),
                &self.luts,
                &mut batch.images[k * image_len..][..image_len],
            );
            batch.labels.push(i64::from(ds.labels[i]));
        }
        (batch.n, batch.channels, batch.height, batch.width) = (n, ds.channels, ds.height, ds.width);
        self.pos += n;
        true
    }
}

impl Iterator for BatchIter<'_> {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        if self.len() == 0 {
            return None;
        }
        let n = self.batch_size.min(self.order.len() - self.pos);
        let mut batch = Batch {
            images: Vec::with_capacity(n * self.ds.image_len()),
            labels: Vec::with_capacity(n),
            ..Batch::default()
        };
        self.next_into(&mut batch);
        Some(batch)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.order.len() - self.pos;
        let n = if self.drop_last { left / self.batch_size } else { left.div_ceil(self.batch_size) };
        (n, Some(n))
    }
}

impl ExactSizeIterator for BatchIter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::{generate, SyntheticSpec};

    fn data() -> Dataset {
        generate(&SyntheticSpec { classes: 3, channels: 3, size: 6, train: 50, test: 1, seed: 1 })
            .unwrap()
            .train
    }

    fn all(it: BatchIter<'_>) -> Vec<Batch> {
        it.collect()
    }

    #[test]
    fn sizes_and_drop_last() {
        let ds = data();
        let norm = Normalization::compute(&ds);
        let it = batches(&ds, &norm, 16, Order::Sequential, &Augment::none(), false, 0);
        assert_eq!(it.len(), 4);
        let b = all(it);
        assert_eq!(b.iter().map(|b| b.n).collect::<Vec<_>>(), vec![16, 16, 16, 2]);
        assert_eq!(b[3].images.len(), 2 * 3 * 36);
        assert_eq!((b[0].channels, b[0].height, b[0].width), (3, 6, 6));
        let it = batches(&ds, &norm, 16, Order::Sequential, &Augment::none(), true, 0);
        assert_eq!(it.len(), 3);
        assert_eq!(all(it).len(), 3);
        assert_eq!(all(batches(&ds, &norm, 64, Order::Sequential, &Augment::none(), true, 0)).len(), 0);
    }

    #[test]
    fn sequential_unaugmented_batches_are_the_normalised_images() {
        let ds = data();
        let norm = Normalization { mean: vec![0.5, 0.25, 0.0], std: vec![0.5, 2.0, 1.0] };
        let b = all(batches(&ds, &norm, 7, Order::Sequential, &Augment::none(), false, 9));
        let images: Vec<f32> = b.iter().flat_map(|b| b.images.iter().copied()).collect();
        let labels: Vec<i64> = b.iter().flat_map(|b| b.labels.iter().copied()).collect();
        assert_eq!(labels, ds.labels.iter().map(|&l| l as i64).collect::<Vec<_>>());
        for (k, (&got, &v)) in images.iter().zip(&ds.images).enumerate() {
            let c = (k / 36) % 3;
            let want = (v as f32 / 255.0 - norm.mean[c]) / norm.std[c];
            assert!((got - want).abs() < 1e-6, "pixel {k}: {got} vs {want}");
        }
    }

    #[test]
    fn normalised_data_has_zero_mean_unit_std() {
        let ds = data();
        let norm = Normalization::compute(&ds);
        let (mut sum, mut sq, mut n) = ([0f64; 3], [0f64; 3], 0f64);
        for b in batches(&ds, &norm, 8, Order::Shuffled, &Augment::none(), false, 3) {
            for (k, &v) in b.images.iter().enumerate() {
                let c = (k / 36) % 3;
                sum[c] += v as f64;
                sq[c] += (v as f64).powi(2);
            }
            n += (b.n * 36) as f64;
        }
        for c in 0..3 {
            let mean = sum[c] / n;
            let std = (sq[c] / n - mean * mean).sqrt();
            assert!(mean.abs() < 1e-4 && (std - 1.0).abs() < 1e-4, "channel {c}: mean {mean} std {std}");
        }
    }

    #[test]
    fn shuffle_depends_on_the_seed_and_is_reproducible() {
        let ds = data();
        let norm = Normalization::compute(&ds);
        let images_of = |seed| {
            let order_of = |b: Vec<Batch>| b.into_iter().flat_map(|b| b.images).collect::<Vec<f32>>();
            order_of(all(batches(&ds, &norm, 10, Order::Shuffled, &Augment::none(), false, seed)))
        };
        assert_eq!(images_of(1), images_of(1));
        assert_ne!(images_of(1), images_of(2));
        // A shuffled pass is a permutation: the same multiset of labels.
        let mut labels: Vec<i64> = all(batches(&ds, &norm, 10, Order::Shuffled, &Augment::none(), false, 2))
            .into_iter()
            .flat_map(|b| b.labels)
            .collect();
        labels.sort();
        let mut want: Vec<i64> = ds.labels.iter().map(|&l| l as i64).collect();
        want.sort();
        assert_eq!(labels, want);
    }

    #[test]
    fn augmentation_is_deterministic_and_independent_of_batch_size() {
        let ds = data();
        let norm = Normalization::compute(&ds);
        let aug = Augment { crop_padding: 2, hflip: true, cutout: 0 };
        let flat = |bs, seed| -> Vec<f32> {
            all(batches(&ds, &norm, bs, Order::Shuffled, &aug, false, seed))
                .into_iter()
                .flat_map(|b| b.images)
                .collect()
        };
        assert_eq!(flat(8, 4), flat(8, 4));
        assert_eq!(flat(8, 4), flat(50, 4));
        assert_ne!(flat(8, 4), flat(8, 5));
        let plain: Vec<f32> = all(batches(&ds, &norm, 8, Order::Shuffled, &Augment::none(), false, 4))
            .into_iter()
            .flat_map(|b| b.images)
            .collect();
        assert_ne!(flat(8, 4), plain, "augmentation changes the images");
    }

    #[test]
    fn next_into_reuses_the_buffers() {
        let ds = data();
        let norm = Normalization::compute(&ds);
        let mut it = batches(&ds, &norm, 20, Order::Sequential, &Augment::none(), false, 0);
        let mut b = Batch::default();
        assert!(it.next_into(&mut b));
        let ptr = b.images.as_ptr();
        assert!(it.next_into(&mut b));
        assert_eq!(b.images.as_ptr(), ptr);
        assert!(it.next_into(&mut b));
        assert_eq!((b.n, b.images.len(), b.labels.len()), (10, 10 * 108, 10));
        assert!(!it.next_into(&mut b));
        assert_eq!(it.len(), 0);
    }
}
