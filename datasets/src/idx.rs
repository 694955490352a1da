//! Reader for the IDX format of MNIST and Fashion-MNIST.
//!
//! A folder holds `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`
//! and `t10k-labels-idx1-ubyte`, each gzip-compressed (`.gz`, as distributed) or raw; the variant
//! spelling `train-images.idx3-ubyte` is accepted too. Image files start with magic 2051 (`u8`,
//! three dimensions: count, rows, columns) and label files with 2049 (`u8`, one dimension), all
//! big-endian. The reader checks the magic, that the file holds exactly what its header
//! describes, that images and labels agree in number and that every label names a class.

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use crate::dataset::{Dataset, Splits};
use crate::error::DataError;

/// Fashion-MNIST's class names, by label.
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// MNIST's class names, by label.
pub const MNIST_CLASSES: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

const IMAGES_MAGIC: u32 = 2051;
const LABELS_MAGIC: u32 = 2049;

/// The four files of an IDX dataset, by their canonical (uncompressed) names.
pub(crate) const IDX_FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// The file in `dir` for the canonical name `stem`: `stem.gz`, `stem`, or the same with the
/// `.idx` spelling, in that order.
pub(crate) fn find_file(dir: &Path, stem: &str) -> Option<PathBuf> {
    let dotted = stem.replacen("-idx", ".idx", 1);
    [format!("{stem}.gz"), stem.to_string(), format!("{dotted}.gz"), dotted]
        .into_iter()
        .map(|name| dir.join(name))
        .find(|p| p.is_file())
}

/// Reads the IDX dataset in `dir`, naming its classes `classes` and the result `name`.
pub(crate) fn read_dir(dir: &Path, classes: &[&str], name: &str) -> Result<Splits, DataError> {
    if !dir.is_dir() {
        return Err(DataError::Missing {
            path: dir.to_path_buf(),
            what: format!("{name} folder"),
            hint: format!("it should hold {} (each .gz or raw)", IDX_FILES.join(", ")),
        });
    }
    let mut paths = Vec::with_capacity(4);
    for stem in IDX_FILES {
        let path = find_file(dir, stem).ok_or_else(|| DataError::Missing {
            path: dir.join(stem),
            what: "IDX file".into(),
            hint: format!("expected {stem}.gz or {stem} in {}", dir.display()),
        })?;
        paths.push(path);
    }
    let classes: Vec<String> = classes.iter().map(|c| c.to_string()).collect();
    // Decompressing is the slow part: read the two splits side by side.
    let (train, test) = std::thread::scope(|s| {
        let test = s.spawn(|| read_split(&paths[2], &paths[3], &classes));
        let train = read_split(&paths[0], &paths[1], &classes);
        (train, test.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
    });
    let (train, test) = (train?, test?);
    if (train.height, train.width) != (test.height, test.width) {
        return Err(DataError::malformed(
            &paths[2],
            format!(
                "its images are {}x{} but the training images ({}) are {}x{}",
                test.height,
                test.width,
                paths[0].display(),
                train.height,
                train.width
            ),
        ));
    }
    Ok(Splits { train, test, name: name.to_string(), source: dir.to_path_buf() })
}

fn read_split(images_path: &Path, labels_path: &Path, classes: &[String]) -> Result<Dataset, DataError> {
    let images = read_maybe_gz(images_path)?;
    let labels = read_maybe_gz(labels_path)?;
    split_from_bytes(images_path, images, labels_path, labels, classes)
}

/// One split from the (decompressed) bytes of its images and labels files; the paths name the
/// files in errors.
pub fn split_from_bytes(
    images_path: &Path,
    images: Vec<u8>,
    labels_path: &Path,
    labels: Vec<u8>,
    classes: &[String],
) -> Result<Dataset, DataError> {
    let (dims, images) = parse_idx(images_path, images, "images", IMAGES_MAGIC)?;
    let (_, labels) = parse_idx(labels_path, labels, "labels", LABELS_MAGIC)?;
    let (n, height, width) = (dims[0], dims[1], dims[2]);
    if n != labels.len() {
        return Err(DataError::CountMismatch {
            images_path: images_path.to_path_buf(),
            images: n,
            labels_path: labels_path.to_path_buf(),
            labels: labels.len(),
        });
    }
    if n > 0 && (height == 0 || width == 0) {
        return Err(DataError::malformed(images_path, format!("its images are {height}x{width} pixels")));
    }
    if let Some((index, &label)) = labels.iter().enumerate().find(|(_, &l)| l as usize >= classes.len()) {
        return Err(DataError::LabelOutOfRange {
            path: labels_path.to_path_buf(),
            index,
            label: label.into(),
            classes: classes.len(),
        });
    }
    Ok(Dataset {
        channels: 1,
        height,
        width,
        classes: classes.to_vec(),
        images,
        labels: labels.into_iter().map(u32::from).collect(),
    })
}

/// Checks the bytes of one IDX file of unsigned bytes and returns its dimensions and its data.
fn parse_idx(
    path: &Path,
    mut bytes: Vec<u8>,
    kind: &'static str,
    magic: u32,
) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let found_len = bytes.len() as u64;
    if bytes.len() < 4 {
        return Err(DataError::Truncated { path: path.to_path_buf(), expected: 4, found: found_len });
    }
    let found = be_u32(&bytes[..4]);
    if found != magic {
        return Err(DataError::BadMagic { path: path.to_path_buf(), kind, expected: magic, found });
    }
    let ndims = (magic & 0xff) as usize;
    let header = 4 + 4 * ndims;
    if bytes.len() < header {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            expected: header as u64,
            found: found_len,
        });
    }
    let dims: Vec<usize> = bytes[4..header].chunks_exact(4).map(|c| be_u32(c) as usize).collect();
    let body = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| DataError::malformed(path, format!("its dimensions {dims:?} are too large")))?;
    let expected = body as u64 + header as u64;
    if found_len < expected {
        return Err(DataError::Truncated { path: path.to_path_buf(), expected, found: found_len });
    }
    if found_len > expected {
        return Err(DataError::malformed(
            path,
            format!(
                "it holds {} bytes after the {expected} its header {dims:?} describes",
                found_len - expected
            ),
        ));
    }
    bytes.drain(..header);
    Ok((dims, bytes))
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// The whole content of `path`, gunzipped when its name ends in `.gz`.
fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gz")) {
        gunzip(path, &bytes)
    } else {
        Ok(bytes)
    }
}

/// The decompressed content of the gzip file `path` whose bytes are `compressed`.
pub fn gunzip(path: &Path, compressed: &[u8]) -> Result<Vec<u8>, DataError> {
    let mut out = Vec::with_capacity(compressed.len().saturating_mul(4));
    MultiGzDecoder::new(compressed).read_to_end(&mut out).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidData
        | std::io::ErrorKind::InvalidInput
        | std::io::ErrorKind::UnexpectedEof => DataError::Gzip { path: path.to_path_buf(), cause: e },
        _ => DataError::Io { path: path.to_path_buf(), cause: e },
    })?;
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use flate2::Compression;
    use std::io::Write;

    pub(crate) fn idx_images(n: u32, h: u32, w: u32, fill: impl Fn(usize) -> u8) -> Vec<u8> {
        let mut b = Vec::new();
        for v in [IMAGES_MAGIC, n, h, w] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        b.extend((0..(n * h * w) as usize).map(fill));
        b
    }

    pub(crate) fn idx_labels(labels: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        for v in [LABELS_MAGIC, labels.len() as u32] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        b.extend_from_slice(labels);
        b
    }

    pub(crate) fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    /// Writes a tiny valid IDX dataset (5 train and 3 test 4×3 images), compressed or not.
    pub(crate) fn write_tiny(dir: &Path, compressed: bool) {
        let files = [
            idx_images(5, 4, 3, |i| (i % 251) as u8),
            idx_labels(&[0, 1, 2, 3, 9]),
            idx_images(3, 4, 3, |i| (i * 7 % 256) as u8),
            idx_labels(&[9, 8, 7]),
        ];
        for (stem, bytes) in IDX_FILES.iter().zip(files) {
            if compressed {
                std::fs::write(dir.join(format!("{stem}.gz")), gz(&bytes)).unwrap();
            } else {
                std::fs::write(dir.join(stem), bytes).unwrap();
            }
        }
    }

    fn read_mnist(dir: &Path) -> Result<Splits, DataError> {
        read_dir(dir, &MNIST_CLASSES, "mnist")
    }

    #[test]
    fn reads_gzipped_and_raw_files_alike() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        write_tiny(a.path(), true);
        write_tiny(b.path(), false);
        let (sa, sb) = (read_mnist(a.path()).unwrap(), read_mnist(b.path()).unwrap());
        assert_eq!(sa.train, sb.train);
        assert_eq!(sa.test, sb.test);
        assert_eq!((sa.train.len(), sa.test.len()), (5, 3));
        assert_eq!((sa.train.channels, sa.train.height, sa.train.width), (1, 4, 3));
        assert_eq!(sa.train.labels, vec![0, 1, 2, 3, 9]);
        assert_eq!(sa.test.labels, vec![9, 8, 7]);
        assert_eq!(sa.train.image(1), &(12..24).map(|i| i as u8).collect::<Vec<_>>()[..]);
        assert_eq!(sa.train.classes[9], "9");
        assert_eq!(sa.name, "mnist");
        assert_eq!(sa.source, a.path());
    }

    #[test]
    fn accepts_the_dotted_spelling() {
        let d = tempfile::tempdir().unwrap();
        write_tiny(d.path(), false);
        std::fs::rename(d.path().join(IDX_FILES[0]), d.path().join("train-images.idx3-ubyte")).unwrap();
        assert_eq!(read_mnist(d.path()).unwrap().train.len(), 5);
    }

    fn replace(dir: &Path, which: usize, bytes: Vec<u8>) -> PathBuf {
        let path = dir.join(IDX_FILES[which]);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn wrong_magic_is_reported_with_the_file() {
        let d = tempfile::tempdir().unwrap();
        write_tiny(d.path(), false);
        // A label file where an image file belongs.
        let path = replace(d.path(), 0, idx_labels(&[1, 2]));
        match read_mnist(d.path()) {
            Err(DataError::BadMagic { path: p, expected: 2051, found: 2049, .. }) => assert_eq!(p, path),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn truncated_file_is_reported() {
        let d = tempfile::tempdir().unwrap();
        write_tiny(d.path(), false);
        let mut bytes = idx_images(5, 4, 3, |_| 0);
        bytes.truncate(bytes.len() - 7);
        let path = replace(d.path(), 0, bytes);
        let err = read_mnist(d.path()).unwrap_err();
        assert!(
            matches!(&err, DataError::Truncated { path: p, expected: 76, found: 69 } if *p == path),
            "{err:?}"
        );
        assert!(err.to_string().contains("truncated"), "{err}");
        // Shorter than the header itself.
        replace(d.path(), 0, vec![0, 0, 8]);
        assert!(matches!(read_mnist(d.path()), Err(DataError::Truncated { expected: 4, found: 3, .. })));
    }

    #[test]
    fn trailing_bytes_are_reported() {
        let d = tempfile::tempdir().unwrap();
        write_tiny(d.path(), false);
        let mut bytes = idx_labels(&[0, 1, 2, 3, 4]);
        bytes.push(0);
        replace(d.path(), 1, bytes);
        assert!(matches!(read_mnist(d.path()), Err(DataError::Malformed { .. })));
    }

    #[test]
    fn count_mismatch_is_reported() {
        let d = tempfile::tempdir().unwrap();
        write_tiny(d.path(), false);
        replace(d.path(), 3, idx_labels(&[1, 2]));
        match read_mnist(d.path()) {
            Err(DataError::CountMismatch { images: 3, labels: 2, images_path, labels_path }) => {
                assert!(images_path.ends_with(IDX_FILES[2]));
                assert!(labels_path.ends_with(IDX_FILES[3]));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn label_out_of_range_is_reported() {
        let d = tempfile::tempdir().unwrap();
        write_tiny(d.path(), false);
        replace(d.path(), 1, idx_labels(&[0, 1, 10, 3, 4]));
        match read_mnist(d.path()) {
            Err(e @ DataError::LabelOutOfRange { index: 2, label: 10, classes: 10, .. }) => {
                assert!(e.to_string().contains(IDX_FILES[1]), "{e}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn corrupt_gzip_is_reported() {
        let d = tempfile::tempdir().unwrap();
        write_tiny(d.path(), true);
        let path = d.path().join(format!("{}.gz", IDX_FILES[2]));
        // A cut-off stream.
        let good = gz(&idx_images(3, 4, 3, |_| 1));
        std::fs::write(&path, &good[..good.len() / 2]).unwrap();
        assert!(matches!(read_mnist(d.path()), Err(DataError::Gzip { path: p, .. }) if p == path));
        // Not gzip at all.
        std::fs::write(&path, b"this is not gzip data, just text").unwrap();
        let err = read_mnist(d.path()).unwrap_err();
        assert!(matches!(&err, DataError::Gzip { .. }), "{err:?}");
        assert!(err.to_string().contains("gzip"), "{err}");
    }

    #[test]
    fn missing_folder_and_file_are_reported() {
        let d = tempfile::tempdir().unwrap();
        let err = read_mnist(&d.path().join("nope")).unwrap_err();
        assert!(matches!(err, DataError::Missing { .. }), "{err:?}");
        write_tiny(d.path(), true);
        std::fs::remove_file(d.path().join(format!("{}.gz", IDX_FILES[3]))).unwrap();
        let err = read_mnist(d.path()).unwrap_err();
        assert!(err.to_string().contains(IDX_FILES[3]), "{err}");
    }
}
