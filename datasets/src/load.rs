//! Turning a [`DataSpec`] into [`Splits`]: finding Fashion-MNIST, picking the reader, applying
//! [`LoadOptions`].

use std::ffi::OsString;
use std::path::PathBuf;

use crate::dataset::Splits;
use crate::error::DataError;
use crate::spec::DataSpec;
use crate::{cifar, folder, idx, synthetic};

/// The environment variable naming a Fashion-MNIST folder, searched first.
pub const FASHION_MNIST_ENV: &str = "PWSNAS_FASHION_MNIST";

/// Options of [`load`] beyond the data source itself.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadOptions {
    /// `(height, width)` to resize folder images to. Other sources have a fixed size: giving a
    /// different one for them is an error, not a silent resize.
    pub image_size: Option<(usize, usize)>,
    /// Share of each class held out as the test split of a single-folder image dataset
    /// (`ROOT/<class>/*`), in `[0, 1)`.
    pub folder_test_fraction: f64,
    /// Seed of that hold-out.
    pub seed: u64,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions { image_size: None, folder_test_fraction: 0.2, seed: 0 }
    }
}

/// Loads the dataset `spec` names.
pub fn load(spec: &DataSpec, opts: &LoadOptions) -> Result<Splits, DataError> {
    if let Some((h, w)) = opts.image_size {
        if !(1..=8192).contains(&h) || !(1..=8192).contains(&w) {
            return Err(DataError::invalid("image size", format!("{h}x{w} is not within 1x1 to 8192x8192")));
        }
    }
    let splits = match spec {
        DataSpec::FashionMnist => {
            let dir = fashion_mnist_dir().ok_or_else(|| DataError::DatasetNotFound {
                name: "Fashion-MNIST",
                env_var: FASHION_MNIST_ENV,
                tried: fashion_mnist_candidates(),
            })?;
            idx::read_dir(&dir, &idx::FASHION_MNIST_CLASSES, "fashion-mnist")?
        }
        DataSpec::Mnist(dir) => idx::read_dir(dir, &idx::MNIST_CLASSES, "mnist")?,
        DataSpec::Cifar10(dir) => cifar::read_cifar10(dir)?,
        DataSpec::Cifar100(dir) => cifar::read_cifar100(dir)?,
        DataSpec::Folder(dir) => {
            return folder::read(dir, opts.image_size, opts.folder_test_fraction, opts.seed)
        }
        DataSpec::Synthetic(s) => synthetic::generate(s)?,
    };
    match opts.image_size {
        Some(size) if size != (splits.train.height, splits.train.width) => Err(DataError::invalid(
            "image size",
            format!(
                "{}x{} was asked for, but only folder datasets are resized and {} images are {}x{}",
                size.0, size.1, splits.name, splits.train.height, splits.train.width
            ),
        )),
        _ => Ok(splits),
    }
}

/// The folders searched for Fashion-MNIST, in order: `$PWSNAS_FASHION_MNIST`,
/// `/usr/share/datasets/fashion-mnist` (Debian's `dataset-fashion-mnist`), and
/// `$PWSNAS_HOME/data/fashion-mnist` with `PWSNAS_HOME` defaulting to `~/.cache/pwsnas`
/// (where `cargo xtask setup` puts it).
pub fn fashion_mnist_candidates() -> Vec<PathBuf> {
    candidates(std::env::var_os(FASHION_MNIST_ENV), std::env::var_os("PWSNAS_HOME"), std::env::var_os("HOME"))
}

fn candidates(
    explicit: Option<OsString>,
    pwsnas_home: Option<OsString>,
    home: Option<OsString>,
) -> Vec<PathBuf> {
    let set = |v: Option<OsString>| v.filter(|v| !v.is_empty()).map(PathBuf::from);
    let mut out: Vec<PathBuf> = set(explicit).into_iter().collect();
    out.push(PathBuf::from("/usr/share/datasets/fashion-mnist"));
    if let Some(base) = set(pwsnas_home).or_else(|| set(home).map(|h| h.join(".cache/pwsnas"))) {
        out.push(base.join("data/fashion-mnist"));
    }
    out
}

/// The first of [`fashion_mnist_candidates`] that holds the four IDX files (`.gz` as
/// distributed, or uncompressed).
pub fn fashion_mnist_dir() -> Option<PathBuf> {
    fashion_mnist_candidates()
        .into_iter()
        .find(|d| idx::IDX_FILES.iter().all(|f| idx::find_file(d, f).is_some()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::SyntheticSpec;

    #[test]
    fn candidate_order_and_defaults() {
        let os = |s: &str| Some(OsString::from(s));
        assert_eq!(
            candidates(os("/fm"), os("/ph"), os("/home/u")),
            vec![
                PathBuf::from("/fm"),
                "/usr/share/datasets/fashion-mnist".into(),
                "/ph/data/fashion-mnist".into()
            ]
        );
        assert_eq!(
            candidates(None, os(""), os("/home/u")),
            vec![
                PathBuf::from("/usr/share/datasets/fashion-mnist"),
                "/home/u/.cache/pwsnas/data/fashion-mnist".into()
            ]
        );
    }

    #[test]
    fn loads_each_kind_through_the_spec() {
        let d = tempfile::tempdir().unwrap();
        idx::tests::write_tiny(d.path(), true);
        let spec: DataSpec = format!("mnist:{}", d.path().display()).parse().unwrap();
        let s = load(&spec, &LoadOptions::default()).unwrap();
        assert_eq!((s.name.as_str(), s.train.len()), ("mnist", 5));
        let spec: DataSpec = "synthetic:classes=3,size=8,train=30,test=6".parse().unwrap();
        let s = load(&spec, &LoadOptions::default()).unwrap();
        assert_eq!((s.name.as_str(), s.train.len(), s.test.len(), s.train.height), ("synthetic", 30, 6, 8));
    }

    #[test]
    fn image_size_is_only_for_folders() {
        let spec = DataSpec::Synthetic(SyntheticSpec { size: 8, ..Default::default() });
        let same = LoadOptions { image_size: Some((8, 8)), ..Default::default() };
        assert!(load(&spec, &same).is_ok());
        let other = LoadOptions { image_size: Some((16, 16)), ..Default::default() };
        assert!(matches!(load(&spec, &other), Err(DataError::InvalidOption { .. })));
        let zero = LoadOptions { image_size: Some((0, 16)), ..Default::default() };
        assert!(matches!(load(&spec, &zero), Err(DataError::InvalidOption { .. })));
    }

    #[test]
    fn missing_fashion_mnist_says_what_to_do() {
        let err = DataError::DatasetNotFound {
            name: "Fashion-MNIST",
            env_var: FASHION_MNIST_ENV,
            tried: candidates(Some("/a".into()), Some("/b".into()), None),
        };
        let msg = err.to_string();
        assert!(msg.contains("cargo xtask setup") && msg.contains(FASHION_MNIST_ENV), "{msg}");
        assert!(msg.contains("/a, /usr/share/datasets/fashion-mnist, /b/data/fashion-mnist"), "{msg}");
    }
}
