//! Holding out a validation set from a training split.
//!
//! The split is stratified: every class gives up the same fraction of its images (up to rounding),
//! so a small validation set still covers every class in proportion. Which images go is decided by
//! a ChaCha8 generator seeded by the caller, so a seed always names the same split.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::dataset::Dataset;

/// Splits `train` into `(train, validation)`, stratified by class and deterministic for `seed`.
///
/// The validation set gets `round(len * val_fraction)` images in all, shared out over the classes
/// in proportion to their sizes (largest remainders get the odd images, ties to the lower label);
/// within a class the images are picked by a seeded shuffle. Both parts keep the original order of
/// the images, and together they hold every image exactly once. `val_fraction` is clamped to
/// `[0, 1]` (NaN counts as 0): checking that a user's value is sensible is the caller's job.
pub fn split_train_val(train: &Dataset, val_fraction: f64, seed: u64) -> (Dataset, Dataset) {
    let fraction = if val_fraction.is_nan() { 0.0 } else { val_fraction.clamp(0.0, 1.0) };
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); train.classes.len()];
    for (i, &l) in train.labels.iter().enumerate() {
        by_class[l as usize].push(i);
    }
    let take = per_class_counts(&by_class.iter().map(Vec::len).collect::<Vec<_>>(), fraction);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut keep, mut val) = (Vec::new(), Vec::new());
    for (mut idx, k) in by_class.into_iter().zip(take) {
        idx.shuffle(&mut rng);
        val.extend_from_slice(&idx[..k]);
        keep.extend_from_slice(&idx[k..]);
    }
    keep.sort_unstable();
    val.sort_unstable();
    (train.subset(&keep), train.subset(&val))
}

/// How many images of each class go to validation: largest-remainder apportionment of
/// `round(total * fraction)`.
fn per_class_counts(sizes: &[usize], fraction: f64) -> Vec<usize> {
    let total: usize = sizes.iter().sum();
    let target = ((total as f64 * fraction).round() as usize).min(total);
    let exact: Vec<f64> = sizes.iter().map(|&n| n as f64 * fraction).collect();
    let mut counts: Vec<usize> =
        exact.iter().zip(sizes).map(|(&e, &n)| (e.floor() as usize).min(n)).collect();
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by(|&a, &b| {
        (exact[b] - exact[b].floor()).total_cmp(&(exact[a] - exact[a].floor())).then(a.cmp(&b))
    });
    let mut missing = target.saturating_sub(counts.iter().sum());
    // At most one image per class with a fractional share is missing, so one round suffices.
    for &c in &order {
        if missing == 0 {
            break;
        }
        if counts[c] < sizes[c] {
            counts[c] += 1;
            missing -= 1;
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::tests::counting;

    fn ids(ds: &Dataset) -> Vec<u8> {
        (0..ds.len()).map(|i| ds.image(i)[0]).collect()
    }

    #[test]
    fn sizes_stratification_and_disjointness() {
        let ds = counting(100, 4);
        let (train, val) = split_train_val(&ds, 0.2, 1);
        assert_eq!((train.len(), val.len()), (80, 20));
        assert_eq!(val.class_counts(), vec![5; 4]);
        let (t, v) = (ids(&train), ids(&val));
        assert!(t.windows(2).all(|w| w[0] < w[1]) && v.windows(2).all(|w| w[0] < w[1]), "order kept");
        let mut all = [t, v].concat();
        all.sort();
        assert_eq!(all, (0..100).collect::<Vec<u8>>(), "every image exactly once");
        for i in 0..val.len() {
            assert_eq!(val.labels[i], u32::from(val.image(i)[0]) % 4, "labels follow their images");
        }
    }

    #[test]
    fn small_classes_still_reach_the_total() {
        // 10 classes of 3: 10% is 3 images although every class's share rounds to 0.
        let (train, val) = split_train_val(&counting(30, 10), 0.1, 0);
        assert_eq!((train.len(), val.len()), (27, 3));
        assert_eq!(val.class_counts().iter().filter(|&&c| c == 1).count(), 3);
    }

    #[test]
    fn deterministic_for_a_seed_and_different_across_seeds() {
        let ds = counting(200, 5);
        let a = split_train_val(&ds, 0.25, 42);
        assert_eq!(a, split_train_val(&ds, 0.25, 42));
        assert_ne!(a.1, split_train_val(&ds, 0.25, 43).1);
    }

    #[test]
    fn extreme_fractions() {
        let ds = counting(10, 2);
        assert_eq!(split_train_val(&ds, 0.0, 0).1.len(), 0);
        assert_eq!(split_train_val(&ds, 1.0, 0).0.len(), 0);
        assert_eq!(split_train_val(&ds, 7.0, 0).1.len(), 10);
        assert_eq!(split_train_val(&ds, f64::NAN, 0).1.len(), 0);
    }
}
