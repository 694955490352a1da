//! The in-memory dataset: images kept compactly as `u8` (one `C×H×W` block per image) with their
//! labels and class names.
//!
//! Every reader produces a [`Dataset`] per split and wraps the pair in [`Splits`]; everything
//! downstream (splitting, normalisation, batching) works on this one representation, so nothing
//! else in the crate needs to know where the pixels came from.

use std::fmt;
use std::path::PathBuf;

/// Images with labels, stored as `u8` in `N×C×H×W` order.
///
/// Invariants kept by every reader in this crate: `images.len() == len() * image_len()` and every
/// label is `< classes.len()`.
#[derive(Clone, PartialEq, Eq)]
pub struct Dataset {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// Class names; the index of a name is its label.
    pub classes: Vec<String>,
    /// `len() * channels * height * width` bytes, image after image, each in `C×H×W` order.
    pub images: Vec<u8>,
    pub labels: Vec<u32>,
}

impl Dataset {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Bytes per image: `channels * height * width`.
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// The pixels of image `i`, `C×H×W`.
    ///
    /// # Panics
    /// If `i >= len()`.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.images[i * n..(i + 1) * n]
    }

    /// A new dataset holding the images at `idx`, in that order (indices may repeat).
    ///
    /// # Panics
    /// If an index is `>= len()`.
    pub fn subset(&self, idx: &[usize]) -> Dataset {
        let mut images = Vec::with_capacity(idx.len() * self.image_len());
        let mut labels = Vec::with_capacity(idx.len());
        for &i in idx {
            images.extend_from_slice(self.image(i));
            labels.push(self.labels[i]);
        }
        Dataset {
            channels: self.channels,
            height: self.height,
            width: self.width,
            classes: self.classes.clone(),
            images,
            labels,
        }
    }

    /// Number of images of each class, indexed by label.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes.len()];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }
}

/// Shape and counts only: printing megabytes of pixels helps nobody.
impl fmt::Debug for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dataset")
            .field("len", &self.len())
            .field("channels", &self.channels)
            .field("height", &self.height)
            .field("width", &self.width)
            .field("classes", &self.classes)
            .finish_non_exhaustive()
    }
}

/// A dataset as loaded: its train and test splits, its name and where it came from.
#[derive(Clone, Debug)]
pub struct Splits {
    pub train: Dataset,
    pub test: Dataset,
    /// `fashion-mnist`, `mnist`, `cifar10`, `cifar100`, `folder` or `synthetic`.
    pub name: String,
    /// The folder the data was read from, or `synthetic`.
    pub source: PathBuf,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A dataset of `n` 1×2×2 images whose pixels all equal the index and whose label is `i % k`.
    pub(crate) fn counting(n: usize, k: usize) -> Dataset {
        Dataset {
            channels: 1,
            height: 2,
            width: 2,
            classes: (0..k).map(|c| c.to_string()).collect(),
            images: (0..n).flat_map(|i| [i as u8; 4]).collect(),
            labels: (0..n).map(|i| (i % k) as u32).collect(),
        }
    }

    #[test]
    fn accessors_and_subset() {
        let ds = counting(6, 3);
        assert_eq!(ds.len(), 6);
        assert!(!ds.is_empty());
        assert_eq!(ds.image_len(), 4);
        assert_eq!(ds.image(4), &[4, 4, 4, 4]);
        assert_eq!(ds.class_counts(), vec![2, 2, 2]);
        let sub = ds.subset(&[5, 0, 5]);
        assert_eq!(sub.len(), 3);
        assert_eq!(sub.labels, vec![2, 0, 2]);
        assert_eq!(sub.images, vec![5, 5, 5, 5, 0, 0, 0, 0, 5, 5, 5, 5]);
        assert_eq!(sub.class_counts(), vec![1, 0, 2]);
        assert!(ds.subset(&[]).is_empty());
        let dbg = format!("{ds:?}");
        assert!(dbg.contains("len: 6") && !dbg.contains("images"), "{dbg}");
    }
}
