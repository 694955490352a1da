//! The one error type of the crate.
//!
//! Every reader reports bad input through [`DataError`]: each variant names the file (or the
//! `--data` string) at fault, says what was wrong and, where there is one, what to do about it.
//! Causes from `std::io`, `flate2` and `image` are folded into the message, so printing the
//! error with `{}` is enough to show the user everything.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The accepted forms of `--data`, quoted by parse errors.
pub const ACCEPTED_FORMS: &str = "fashion-mnist, mnist:PATH, cifar10:PATH, cifar100:PATH, folder:PATH, \
     synthetic, synthetic:classes=N,channels=1|3,size=N,train=N,test=N,seed=N (any subset of the keys)";

/// Everything that can go wrong while reading or generating a dataset.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// A `--data` string that does not parse.
    #[error("invalid data source {input:?}: {reason}. Accepted forms: {ACCEPTED_FORMS}")]
    BadSpec { input: String, reason: String },

    /// A named dataset (Fashion-MNIST) that is in none of the places searched.
    #[error(
        "{name} not found: run `cargo xtask setup` to fetch it, or set {env_var} to a folder holding \
         its four IDX .gz files (tried: {})",
        list_paths(.tried)
    )]
    DatasetNotFound { name: &'static str, env_var: &'static str, tried: Vec<PathBuf> },

    /// A file or folder the dataset needs does not exist.
    #[error("{}: {what} not found{}", .path.display(), with_hint(.hint))]
    Missing { path: PathBuf, what: String, hint: String },

    /// A file that exists but could not be read.
    #[error("could not read {}: {cause}", .path.display())]
    Io { path: PathBuf, cause: std::io::Error },

    /// A `.gz` file whose compressed stream is damaged.
    #[error(
        "{} is not a valid gzip file ({cause}); the download is probably corrupt or incomplete: \
         delete it and fetch it again",
        .path.display()
    )]
    Gzip { path: PathBuf, cause: std::io::Error },

    /// An IDX file whose magic number is not the one its role requires.
    #[error(
        "{} has magic number {found} but an IDX {kind} file must start with {expected}; is it the right \
         file (and not still compressed under a name without .gz)?",
        .path.display()
    )]
    BadMagic { path: PathBuf, kind: &'static str, expected: u32, found: u32 },

    /// A file shorter than its header says.
    #[error(
        "{} is truncated: its header describes {expected} bytes but the file holds {found}; fetch it again",
        .path.display()
    )]
    Truncated { path: PathBuf, expected: u64, found: u64 },

    /// A CIFAR binary file whose size is not a whole number of records.
    #[error(
        "{} holds {len} bytes, which is not a whole number of {record_len}-byte records: the file is \
         truncated or not a {format} binary file",
        .path.display()
    )]
    BadRecordSize { path: PathBuf, len: u64, record_len: usize, format: &'static str },

    /// A file whose content breaks its format in some other way.
    #[error("{} is malformed: {reason}", .path.display())]
    Malformed { path: PathBuf, reason: String },

    /// An image file and its label file that disagree on the number of items.
    #[error(
        "{} holds {images} images but {} holds {labels} labels; the two files must belong together",
        .images_path.display(),
        .labels_path.display()
    )]
    CountMismatch { images_path: PathBuf, images: usize, labels_path: PathBuf, labels: usize },

    /// A label that names no class.
    #[error(
        "{}: label {label} of item {index} is out of range (the dataset has {classes} classes, 0..={})",
        .path.display(),
        .classes.saturating_sub(1)
    )]
    LabelOutOfRange { path: PathBuf, index: usize, label: u32, classes: usize },

    /// A folder dataset with no class sub-folders.
    #[error(
        "{} has no class folders: expected ROOT/<class>/*.png|jpg|jpeg or ROOT/train/<class>/… with \
         ROOT/test/<class>/…",
        .path.display()
    )]
    NoClasses { path: PathBuf },

    /// A class folder without a single image in it.
    #[error("class folder {} holds no .png/.jpg/.jpeg images; add some or remove the folder", .path.display())]
    EmptyClass { path: PathBuf },

    /// A test class folder with no counterpart among the training classes.
    #[error(
        "{} is a test class with no training folder of the same name; every test class needs \
         train/{class}/",
        .path.display()
    )]
    UnknownTestClass { path: PathBuf, class: String },

    /// A file with an image extension that cannot be decoded.
    #[error("{} is not a readable image: {cause}", .path.display())]
    NotAnImage { path: PathBuf, cause: image::ImageError },

    /// Images of different sizes in one folder dataset, with no size to resize them to.
    #[error(
        "images differ in size: {} is {}x{} (HxW) but {} is {}x{}; resize them all to one size \
         (--image-size N makes every image NxN, e.g. --image-size {})",
        .first.display(), .first_size.0, .first_size.1,
        .path.display(), .size.0, .size.1,
        .first_size.0
    )]
    MixedSizes { first: PathBuf, first_size: (usize, usize), path: PathBuf, size: (usize, usize) },

    /// An option or parameter outside its valid range.
    #[error("invalid {what}: {reason}")]
    InvalidOption { what: String, reason: String },
}

impl DataError {
    pub(crate) fn io(path: &Path, cause: std::io::Error) -> Self {
        if cause.kind() == std::io::ErrorKind::NotFound {
            DataError::Missing { path: path.to_path_buf(), what: "file".into(), hint: String::new() }
        } else {
            DataError::Io { path: path.to_path_buf(), cause }
        }
    }

    pub(crate) fn malformed(path: &Path, reason: impl Into<String>) -> Self {
        DataError::Malformed { path: path.to_path_buf(), reason: reason.into() }
    }

    pub(crate) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        DataError::InvalidOption { what: what.into(), reason: reason.into() }
    }
}

fn list_paths(paths: &[PathBuf]) -> String {
    let mut out = String::new();
    for (i, p) in paths.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{}", p.display());
    }
    out
}

fn with_hint(hint: &str) -> String {
    if hint.is_empty() {
        String::new()
    } else {
        format!("; {hint}")
    }
}
