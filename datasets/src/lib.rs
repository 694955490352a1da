//! Data for pwsnas: dataset readers, splits, normalisation, augmentation and batching into plain
//! `f32` buffers. The crate knows nothing of libtorch; a batch is a `Vec<f32>` in `N×C×H×W` order
//! plus `i64` labels, ready to become a tensor.
//!
//! Sources (see [`DataSpec`] for the `--data` syntax): Fashion-MNIST and MNIST IDX files (gzip
//! or raw), CIFAR-10/100 binary files, folders of class folders of PNG/JPEG images, and a
//! generated synthetic set. Every reader checks its input and reports problems as a
//! [`DataError`] naming the file and what to do; none panics on bad input.
//!
//! ```
//! use pwsnas_datasets::{batches, load, split_train_val, Augment, DataSpec, LoadOptions, Normalization, Order};
//!
//! let spec: DataSpec = "synthetic:classes=4,channels=1,size=8,train=256,test=64".parse()?;
//! let splits = load(&spec, &LoadOptions::default())?;
//! let (train, val) = split_train_val(&splits.train, 0.1, 0);
//! let norm = Normalization::compute(&train);
//! let augment = Augment::standard_for(&splits.name, train.height);
//! for epoch in 0..2u64 {
//!     for batch in batches(&train, &norm, 32, Order::Shuffled, &augment, true, 1000 + epoch) {
//!         assert_eq!(batch.images.len(), batch.n * 8 * 8);
//!     }
//! }
//! let val_batches = batches(&val, &norm, 64, Order::Sequential, &Augment::none(), false, 0);
//! assert_eq!(val_batches.map(|b| b.n).sum::<usize>(), val.len());
//! # Ok::<(), pwsnas_datasets::DataError>(())
//! ```

mod augment;
mod batch;
mod cifar;
mod dataset;
mod error;
mod folder;
mod idx;
pub mod image_file;
mod load;
mod normalize;
mod spec;
mod split;
mod summary;
mod synthetic;

/// What each reader does with a file's bytes once they are read, for callers that hold the bytes
/// (the fuzz targets use these): the same checks and errors as [`load`], the paths only naming the
/// files in errors.
pub mod from_bytes {
    pub use crate::cifar::split_from_bytes as cifar_split;
    pub use crate::folder::image_from_bytes as folder_image;
    pub use crate::idx::{gunzip, split_from_bytes as idx_split};
}

pub use augment::Augment;
pub use batch::{batches, Batch, BatchIter, Order};
pub use cifar::CIFAR10_CLASSES;
pub use dataset::{Dataset, Splits};
pub use error::{DataError, ACCEPTED_FORMS};
pub use idx::{FASHION_MNIST_CLASSES, MNIST_CLASSES};
pub use load::{fashion_mnist_candidates, fashion_mnist_dir, load, LoadOptions, FASHION_MNIST_ENV};
pub use normalize::Normalization;
pub use spec::DataSpec;
pub use split::split_train_val;
pub use summary::{summary, ClassSummary, DataSummary};
pub use synthetic::SyntheticSpec;
