//! Reader for the binary versions of CIFAR-10 and CIFAR-100.
//!
//! CIFAR-10: `data_batch_1.bin` … `data_batch_5.bin` and `test_batch.bin`, records of one label
//! byte and 3072 pixel bytes (`3×32×32`, channel-major); class names from `batches.meta.txt` when
//! present, else the standard ten. CIFAR-100: `train.bin` and `test.bin`, records of a coarse label
//! byte, a fine label byte and 3072 pixel bytes; the fine labels (100 classes) are used, named
//! from `fine_label_names.txt` when present, else `class_N`. The folder given may also be the
//! one above `cifar-10-batches-bin/` or `cifar-100-binary/`, as the archives unpack.

use std::path::{Path, PathBuf};

use crate::dataset::{Dataset, Splits};
use crate::error::DataError;

const PIXELS: usize = 3 * 32 * 32;

/// CIFAR-10's class names, by label, used when `batches.meta.txt` is absent.
pub const CIFAR10_CLASSES: [&str; 10] =
    ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

/// One of the two binary layouts.
struct Format {
    name: &'static str,
    /// The sub-folder the archive unpacks into.
    subdir: &'static str,
    train: &'static [&'static str],
    test: &'static str,
    /// Bytes before the pixels, and which of them is the label used.
    label_bytes: usize,
    label_offset: usize,
    classes: usize,
    names_file: &'static str,
}

const CIFAR10: Format = Format {
    name: "CIFAR-10",
    subdir: "cifar-10-batches-bin",
    train: &[
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
    ],
    test: "test_batch.bin",
    label_bytes: 1,
    label_offset: 0,
    classes: 10,
    names_file: "batches.meta.txt",
};

const CIFAR100: Format = Format {
    name: "CIFAR-100",
    subdir: "cifar-100-binary",
    train: &["train.bin"],
    test: "test.bin",
    label_bytes: 2,
    label_offset: 1,
    classes: 100,
    names_file: "fine_label_names.txt",
};

/// Reads CIFAR-10 from `dir` (or `dir/cifar-10-batches-bin`).
pub(crate) fn read_cifar10(dir: &Path) -> Result<Splits, DataError> {
    read(dir, &CIFAR10, "cifar10")
}

/// Reads CIFAR-100 with its fine labels from `dir` (or `dir/cifar-100-binary`).
pub(crate) fn read_cifar100(dir: &Path) -> Result<Splits, DataError> {
    read(dir, &CIFAR100, "cifar100")
}

fn read(dir: &Path, format: &Format, name: &str) -> Result<Splits, DataError> {
    let dir = locate(dir, format)?;
    let classes = class_names(&dir, format)?;
    let train_paths: Vec<PathBuf> = format.train.iter().map(|f| dir.join(f)).collect();
    let train = read_files(&train_paths, format, &classes)?;
    let test = read_files(&[dir.join(format.test)], format, &classes)?;
    Ok(Splits { train, test, name: name.to_string(), source: dir })
}

/// The folder that holds the files: `dir` itself or its archive sub-folder.
fn locate(dir: &Path, format: &Format) -> Result<PathBuf, DataError> {
    let first = format.train[0];
    if dir.join(first).is_file() {
        return Ok(dir.to_path_buf());
    }
    let nested = dir.join(format.subdir);
    if nested.join(first).is_file() {
        return Ok(nested);
    }
    let files = format.train.iter().chain([&format.test]).copied().collect::<Vec<_>>().join(", ");
    Err(DataError::Missing {
        path: dir.join(first),
        what: format!("{} binary file", format.name),
        hint: format!(
            "expected {files} (the binary version of {}) in {} or in {}",
            format.name,
            dir.display(),
            nested.display()
        ),
    })
}

fn class_names(dir: &Path, format: &Format) -> Result<Vec<String>, DataError> {
    let path = dir.join(format.names_file);
    if !path.is_file() {
        return Ok(if format.classes == CIFAR10_CLASSES.len() {
            CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect()
        } else {
            (0..format.classes).map(|i| format!("class_{i}")).collect()
        });
    }
    let text = std::fs::read_to_string(&path).map_err(|e| DataError::io(&path, e))?;
    parse_names(&path, &text, format)
}

/// The class names of a names file (one per line, blank lines ignored).
fn parse_names(path: &Path, text: &str, format: &Format) -> Result<Vec<String>, DataError> {
    let names: Vec<String> =
        text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect();
    if names.len() != format.classes {
        return Err(DataError::malformed(
            path,
            format!(
                "it lists {} class names but {} has {} classes (one name per line)",
                names.len(),
                format.name,
                format.classes
            ),
        ));
    }
    Ok(names)
}

fn read_files(paths: &[PathBuf], format: &Format, classes: &[String]) -> Result<Dataset, DataError> {
    let mut files = Vec::with_capacity(paths.len());
    for path in paths {
        files.push((path.as_path(), std::fs::read(path).map_err(|e| DataError::io(path, e))?));
    }
    let files: Vec<(&Path, &[u8])> = files.iter().map(|(p, b)| (*p, b.as_slice())).collect();
    records(&files, format, classes)
}

/// One split of CIFAR-10 (or, with `cifar100`, CIFAR-100's fine labels) from the bytes of its files
/// and, when given, of its class names file; the paths name the files in errors.
pub fn split_from_bytes(
    cifar100: bool,
    files: &[(&Path, &[u8])],
    names: Option<(&Path, &str)>,
) -> Result<Dataset, DataError> {
    let format = if cifar100 { &CIFAR100 } else { &CIFAR10 };
    let classes = match names {
        Some((path, text)) => parse_names(path, text, format)?,
        None => (0..format.classes).map(|i| format!("class_{i}")).collect(),
    };
    records(files, format, &classes)
}

fn records(files: &[(&Path, &[u8])], format: &Format, classes: &[String]) -> Result<Dataset, DataError> {
    let record_len = format.label_bytes + PIXELS;
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for &(path, bytes) in files {
        if bytes.is_empty() || bytes.len() % record_len != 0 {
            return Err(DataError::BadRecordSize {
                path: path.to_path_buf(),
                len: bytes.len() as u64,
                record_len,
                format: format.name,
            });
        }
        let n = bytes.len() / record_len;
        images.reserve(n * PIXELS);
        labels.reserve(n);
        for (index, record) in bytes.chunks_exact(record_len).enumerate() {
            let label = record[format.label_offset];
            if label as usize >= format.classes {
                return Err(DataError::LabelOutOfRange {
                    path: path.to_path_buf(),
                    index,
                    label: label.into(),
                    classes: format.classes,
                });
            }
            labels.push(u32::from(label));
            images.extend_from_slice(&record[format.label_bytes..]);
        }
    }
    Ok(Dataset { channels: 3, height: 32, width: 32, classes: classes.to_vec(), images, labels })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` records with labels `label(i)`; pixel bytes encode the record index.
    fn records(format: &Format, n: usize, label: impl Fn(usize) -> u8) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..n {
            if format.label_bytes == 2 {
                out.push(0); // coarse label, ignored
            }
            out.push(label(i));
            out.extend((0..PIXELS).map(|p| ((i * 31 + p) % 256) as u8));
        }
        out
    }

    fn write_cifar10(dir: &Path) {
        for (b, f) in CIFAR10.train.iter().enumerate() {
            std::fs::write(dir.join(f), records(&CIFAR10, 2, |i| (b * 2 + i) as u8)).unwrap();
        }
        std::fs::write(dir.join(CIFAR10.test), records(&CIFAR10, 3, |i| i as u8)).unwrap();
    }

    #[test]
    fn reads_cifar10_with_default_and_listed_names() {
        let d = tempfile::tempdir().unwrap();
        write_cifar10(d.path());
        let s = read_cifar10(d.path()).unwrap();
        assert_eq!((s.train.len(), s.test.len()), (10, 3));
        assert_eq!((s.train.channels, s.train.height, s.train.width), (3, 32, 32));
        assert_eq!(s.train.labels, (0..10).collect::<Vec<u32>>());
        assert_eq!(s.train.image(3)[..3], [31u8, 32, 33]);
        assert_eq!(s.train.classes[9], "truck");
        assert_eq!(s.name, "cifar10");

        let names: String = (0..10).map(|i| format!("c{i}\n")).collect::<String>() + "\n\n";
        std::fs::write(d.path().join("batches.meta.txt"), names).unwrap();
        assert_eq!(read_cifar10(d.path()).unwrap().train.classes[4], "c4");
        std::fs::write(d.path().join("batches.meta.txt"), "a\nb\n").unwrap();
        assert!(matches!(read_cifar10(d.path()), Err(DataError::Malformed { .. })));
    }

    #[test]
    fn accepts_the_parent_folder() {
        let d = tempfile::tempdir().unwrap();
        let nested = d.path().join("cifar-10-batches-bin");
        std::fs::create_dir(&nested).unwrap();
        write_cifar10(&nested);
        let s = read_cifar10(d.path()).unwrap();
        assert_eq!(s.source, nested);
    }

    #[test]
    fn reads_cifar100_fine_labels() {
        let d = tempfile::tempdir().unwrap();
        let nested = d.path().join("cifar-100-binary");
        std::fs::create_dir(&nested).unwrap();
        std::fs::write(nested.join("train.bin"), records(&CIFAR100, 4, |i| 97 + i as u8 % 3)).unwrap();
        std::fs::write(nested.join("test.bin"), records(&CIFAR100, 1, |_| 5)).unwrap();
        let s = read_cifar100(d.path()).unwrap();
        assert_eq!(s.train.labels, vec![97, 98, 99, 97]);
        assert_eq!(s.test.labels, vec![5]);
        assert_eq!(s.train.classes.len(), 100);
        assert_eq!(s.train.classes[99], "class_99");
        assert_eq!(s.test.image(0)[..2], [0, 1]);
    }

    #[test]
    fn partial_record_is_reported() {
        let d = tempfile::tempdir().unwrap();
        write_cifar10(d.path());
        let path = d.path().join("data_batch_3.bin");
        let mut bytes = records(&CIFAR10, 2, |_| 1);
        bytes.truncate(PIXELS + 100);
        std::fs::write(&path, bytes).unwrap();
        let err = read_cifar10(d.path()).unwrap_err();
        assert!(
            matches!(&err, DataError::BadRecordSize { path: p, len: 3172, record_len: 3073, .. } if *p == path),
            "{err:?}"
        );
        assert!(err.to_string().contains("data_batch_3.bin"), "{err}");
    }

    #[test]
    fn label_out_of_range_is_reported() {
        let d = tempfile::tempdir().unwrap();
        write_cifar10(d.path());
        std::fs::write(d.path().join("test_batch.bin"), records(&CIFAR10, 3, |i| [1, 10, 2][i])).unwrap();
        assert!(matches!(
            read_cifar10(d.path()),
            Err(DataError::LabelOutOfRange { index: 1, label: 10, classes: 10, .. })
        ));
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("train.bin"), records(&CIFAR100, 1, |_| 100)).unwrap();
        std::fs::write(d.path().join("test.bin"), records(&CIFAR100, 1, |_| 0)).unwrap();
        assert!(matches!(read_cifar100(d.path()), Err(DataError::LabelOutOfRange { label: 100, .. })));
    }

    #[test]
    fn missing_files_are_reported() {
        let d = tempfile::tempdir().unwrap();
        let err = read_cifar10(d.path()).unwrap_err();
        assert!(matches!(err, DataError::Missing { .. }));
        assert!(err.to_string().contains("test_batch.bin"), "{err}");
        write_cifar10(d.path());
        std::fs::remove_file(d.path().join("data_batch_5.bin")).unwrap();
        let err = read_cifar10(d.path()).unwrap_err();
        assert!(
            matches!(&err, DataError::Missing { path, .. } if path.ends_with("data_batch_5.bin")),
            "{err:?}"
        );
    }
}
