//! Reader for datasets laid out as folders of image files, one folder per class.
//!
//! Two layouts: `ROOT/train/<class>/*` with `ROOT/test/<class>/*` (the classes are the sorted
//! training folders; test classes must be among them), or `ROOT/<class>/*` alone, split per class
//! into train and test by a seeded fraction. Files ending in `.png`, `.jpg` or `.jpeg` (any case)
//! are decoded by [`crate::image_file`]; other files and hidden entries are ignored. The images
//! decide the channels: all greyscale gives one channel, anything else three (greyscale images are
//! then replicated into RGB, alpha is dropped). All images must share one size unless a size to
//! resize them to is given.

use std::path::{Path, PathBuf};

use image::{GrayImage, RgbImage};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::dataset::{Dataset, Splits};
use crate::error::DataError;

/// One image file to read and the split and label it belongs to.
struct Job {
    path: PathBuf,
    label: u32,
    test: bool,
}

enum Pixels {
    Gray(GrayImage),
    Rgb(RgbImage),
}

impl Pixels {
    /// (height, width)
    fn size(&self) -> (usize, usize) {
        let (w, h) = match self {
            Pixels::Gray(i) => i.dimensions(),
            Pixels::Rgb(i) => i.dimensions(),
        };
        (h as usize, w as usize)
    }

    /// Appends the image in `C×H×W` order with `channels` channels (1 only for greyscale images).
    fn append_chw(&self, channels: usize, out: &mut Vec<u8>) {
        match self {
            Pixels::Gray(img) => {
                for _ in 0..channels {
                    out.extend_from_slice(img.as_raw());
                }
            }
            Pixels::Rgb(img) => {
                let raw = img.as_raw();
                for c in 0..3 {
                    out.extend(raw.iter().skip(c).step_by(3));
                }
            }
        }
    }
}

/// Reads the image folder dataset at `root`.
///
/// `image_size` is the `(height, width)` to resize every image to; `test_fraction` and `seed`
/// split the single-folder layout and are ignored for the train/test layout.
pub(crate) fn read(
    root: &Path,
    image_size: Option<(usize, usize)>,
    test_fraction: f64,
    seed: u64,
) -> Result<Splits, DataError> {
    if !root.is_dir() {
        return Err(DataError::Missing {
            path: root.to_path_buf(),
            what: "image folder".into(),
            hint: "expected ROOT/<class>/*.png|jpg|jpeg or ROOT/train/<class>/… with ROOT/test/<class>/…"
                .into(),
        });
    }
    let (train_dir, test_dir) = (root.join("train"), root.join("test"));
    let (classes, jobs) = match (train_dir.is_dir(), test_dir.is_dir()) {
        (true, true) => split_layout(&train_dir, &test_dir)?,
        (false, false) => single_layout(root, test_fraction, seed)?,
        (has_train, _) => {
            let (there, missing) = if has_train { ("train", "test") } else { ("test", "train") };
            return Err(DataError::Missing {
                path: root.join(missing),
                what: format!("{missing} folder"),
                hint: format!(
                    "{} exists, so {missing}/<class>/… must too; or put the class folders directly \
                     in {} to split them into train and test",
                    root.join(there).display(),
                    root.display()
                ),
            });
        }
    };
    let decoded = decode_all(&jobs, image_size)?;
    assemble(root, classes, &jobs, &decoded)
}

fn split_layout(train_dir: &Path, test_dir: &Path) -> Result<(Vec<String>, Vec<Job>), DataError> {
    let train = class_folders(train_dir)?;
    let classes: Vec<String> = train.iter().map(|(name, _)| name.clone()).collect();
    let mut jobs = Vec::new();
    for (label, (_, dir)) in train.iter().enumerate() {
        jobs.extend(image_files(dir)?.into_iter().map(|path| Job { path, label: label as u32, test: false }));
    }
    for (name, dir) in class_folders(test_dir)? {
        let label = classes
            .iter()
            .position(|c| *c == name)
            .ok_or_else(|| DataError::UnknownTestClass { path: dir.clone(), class: name.clone() })?;
        jobs.extend(image_files(&dir)?.into_iter().map(|path| Job { path, label: label as u32, test: true }));
    }
    Ok((classes, jobs))
}

/// Splits each class folder of `root` with its own shuffle of a generator seeded by `seed`:
/// `round(n * test_fraction)` images go to test, at most `n - 1` so every class keeps a training
/// image.
fn single_layout(root: &Path, test_fraction: f64, seed: u64) -> Result<(Vec<String>, Vec<Job>), DataError> {
    if !(0.0..1.0).contains(&test_fraction) {
        return Err(DataError::invalid("folder test fraction", format!("{test_fraction} is not in [0, 1)")));
    }
    let folders = class_folders(root)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut jobs = Vec::new();
    for (label, (_, dir)) in folders.iter().enumerate() {
        let mut files = image_files(dir)?;
        let n_test = ((files.len() as f64 * test_fraction).round() as usize).min(files.len() - 1);
        files.shuffle(&mut rng);
        let mut test = files.split_off(files.len() - n_test);
        files.sort();
        test.sort();
        let label = label as u32;
        jobs.extend(files.into_iter().map(|path| Job { path, label, test: false }));
        jobs.extend(test.into_iter().map(|path| Job { path, label, test: true }));
    }
    Ok((folders.into_iter().map(|(name, _)| name).collect(), jobs))
}

fn is_hidden(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'))
}

fn list_dir(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| DataError::io(dir, e))?.path();
        if !is_hidden(&path) {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}

/// The sub-folders of `dir`, sorted by name.
fn class_folders(dir: &Path) -> Result<Vec<(String, PathBuf)>, DataError> {
    let folders: Vec<(String, PathBuf)> = list_dir(dir)?
        .into_iter()
        .filter(|p| p.is_dir())
        .map(|p| (p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(), p))
        .collect();
    if folders.is_empty() {
        return Err(DataError::NoClasses { path: dir.to_path_buf() });
    }
    Ok(folders)
}

/// The image files of a class folder, sorted; an error when there are none.
fn image_files(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let files: Vec<PathBuf> = list_dir(dir)?
        .into_iter()
        .filter(|p| {
            let ext = p.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
            matches!(ext.as_deref(), Some("png" | "jpg" | "jpeg")) && p.is_file()
        })
        .collect();
    if files.is_empty() {
        return Err(DataError::EmptyClass { path: dir.to_path_buf() });
    }
    Ok(files)
}

fn decode(path: &Path, image_size: Option<(usize, usize)>) -> Result<Pixels, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    decode_bytes(path, &bytes, image_size)
}

/// Decodes the bytes of the image file `path`, resized to `image_size` when given
/// ([`crate::image_file::decode`]), into the pixels the reader keeps.
fn decode_bytes(path: &Path, bytes: &[u8], image_size: Option<(usize, usize)>) -> Result<Pixels, DataError> {
    let img = crate::image_file::decode(path, bytes, image_size)?;
    Ok(if img.color().has_color() { Pixels::Rgb(img.into_rgb8()) } else { Pixels::Gray(img.into_luma8()) })
}

/// One image file as the folder reader takes it, from its bytes: `(channels, height, width)` and
/// its pixels in `C×H×W` order (1 channel for a greyscale image, else 3).
pub fn image_from_bytes(
    path: &Path,
    bytes: &[u8],
    image_size: Option<(usize, usize)>,
) -> Result<([usize; 3], Vec<u8>), DataError> {
    let pixels = decode_bytes(path, bytes, image_size)?;
    let channels = if matches!(pixels, Pixels::Gray(_)) { 1 } else { 3 };
    let (height, width) = pixels.size();
    let mut out = Vec::with_capacity(channels * height * width);
    pixels.append_chw(channels, &mut out);
    Ok(([channels, height, width], out))
}

/// Decodes every job's file on all cores; the first failure in job order is the error.
fn decode_all(jobs: &[Job], image_size: Option<(usize, usize)>) -> Result<Vec<Pixels>, DataError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(jobs.len()).max(1);
    let chunk = jobs.len().div_ceil(threads).max(1);
    let parts: Vec<Vec<Result<Pixels, DataError>>> = std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().map(|j| decode(&j.path, image_size)).collect()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
    });
    parts.into_iter().flatten().collect()
}

fn assemble(
    root: &Path,
    classes: Vec<String>,
    jobs: &[Job],
    decoded: &[Pixels],
) -> Result<Splits, DataError> {
    let channels = if decoded.iter().all(|p| matches!(p, Pixels::Gray(_))) { 1 } else { 3 };
    let (height, width) = decoded[0].size();
    if let Some((job, pixels)) = jobs.iter().zip(decoded).find(|(_, p)| p.size() != (height, width)) {
        return Err(DataError::MixedSizes {
            first: jobs[0].path.clone(),
            first_size: (height, width),
            path: job.path.clone(),
            size: pixels.size(),
        });
    }
    let empty = Dataset { channels, height, width, classes, images: Vec::new(), labels: Vec::new() };
    let (mut train, mut test) = (empty.clone(), empty);
    for (job, pixels) in jobs.iter().zip(decoded) {
        let ds = if job.test { &mut test } else { &mut train };
        pixels.append_chw(channels, &mut ds.images);
        ds.labels.push(job.label);
    }
    Ok(Splits { train, test, name: "folder".into(), source: root.to_path_buf() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Luma, Rgb};

    fn gray(dir: &Path, name: &str, (h, w): (u32, u32), v: u8) {
        std::fs::create_dir_all(dir).unwrap();
        GrayImage::from_pixel(w, h, Luma([v])).save(dir.join(name)).unwrap();
    }

    fn rgb(dir: &Path, name: &str, (h, w): (u32, u32), v: [u8; 3]) {
        std::fs::create_dir_all(dir).unwrap();
        RgbImage::from_pixel(w, h, Rgb(v)).save(dir.join(name)).unwrap();
    }

    #[test]
    fn train_test_layout_grayscale() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        gray(&r.join("train/cat"), "a.png", (3, 2), 10);
        gray(&r.join("train/cat"), "b.PNG", (3, 2), 11);
        gray(&r.join("train/ant"), "a.png", (3, 2), 20);
        gray(&r.join("test/cat"), "x.png", (3, 2), 30);
        std::fs::write(r.join("train/cat/notes.txt"), "ignored").unwrap();
        std::fs::create_dir_all(r.join("train/.hidden")).unwrap();
        let s = read(r, None, 0.2, 0).unwrap();
        assert_eq!(s.train.classes, vec!["ant", "cat"]);
        assert_eq!((s.train.channels, s.train.height, s.train.width), (1, 3, 2));
        assert_eq!(s.train.labels, vec![0, 1, 1]);
        assert_eq!(s.train.image(1), &[10; 6]);
        assert_eq!(s.test.labels, vec![1]);
        assert_eq!(s.test.image(0), &[30; 6]);
        assert_eq!(s.name, "folder");
    }

    #[test]
    fn colour_images_are_planar_and_gray_is_promoted_when_mixed() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        rgb(&r.join("red"), "a.png", (2, 2), [200, 10, 0]);
        gray(&r.join("gray"), "a.png", (2, 2), 7);
        let s = read(r, None, 0.0, 0).unwrap();
        assert_eq!(s.train.channels, 3);
        assert_eq!(s.train.classes, vec!["gray", "red"]);
        assert_eq!(s.train.image(0), &[7; 12]);
        assert_eq!(s.train.image(1), &[200, 200, 200, 200, 10, 10, 10, 10, 0, 0, 0, 0]);
        assert!(s.test.is_empty());
    }

    #[test]
    fn single_folder_split_is_seeded_stratified_and_disjoint() {
        let d = tempfile::tempdir().unwrap();
        for i in 0..10u8 {
            gray(&d.path().join("a"), &format!("{i}.png"), (1, 1), i);
            gray(&d.path().join("b"), &format!("{i}.jpg"), (1, 1), 100 + i * 10);
        }
        let s = read(d.path(), None, 0.3, 7).unwrap();
        assert_eq!(s.train.class_counts(), vec![7, 7]);
        assert_eq!(s.test.class_counts(), vec![3, 3]);
        let firsts = |ds: &Dataset| (0..ds.len()).map(|i| ds.image(i)[0]).collect::<Vec<_>>();
        let mut all = [firsts(&s.train), firsts(&s.test)].concat();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 20, "train and test overlap");
        let again = read(d.path(), None, 0.3, 7).unwrap();
        assert_eq!(again.test, s.test);
        let other = (1..20).map(|seed| read(d.path(), None, 0.3, seed).unwrap().test);
        assert!(other.into_iter().any(|t| t != s.test), "the seed does not change the split");
        assert!(matches!(read(d.path(), None, 1.0, 0), Err(DataError::InvalidOption { .. })));
    }

    #[test]
    fn resizes_to_the_requested_size() {
        let d = tempfile::tempdir().unwrap();
        gray(&d.path().join("a"), "big.png", (8, 6), 50);
        gray(&d.path().join("a"), "small.png", (2, 3), 50);
        let err = read(d.path(), None, 0.0, 0).unwrap_err();
        assert!(matches!(&err, DataError::MixedSizes { first_size: (8, 6), size: (2, 3), .. }), "{err:?}");
        assert!(err.to_string().contains("small.png"), "{err}");
        let s = read(d.path(), Some((4, 5)), 0.0, 0).unwrap();
        assert_eq!((s.train.height, s.train.width, s.train.len()), (4, 5, 2));
        assert!(s.train.images.iter().all(|&v| v == 50));
    }

    #[test]
    fn bad_inputs_are_reported() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        assert!(matches!(read(&r.join("nope"), None, 0.2, 0), Err(DataError::Missing { .. })));
        assert!(matches!(read(r, None, 0.2, 0), Err(DataError::NoClasses { .. })));

        gray(&r.join("a"), "1.png", (2, 2), 1);
        std::fs::create_dir(r.join("empty")).unwrap();
        std::fs::write(r.join("empty/readme.txt"), "no images here").unwrap();
        let err = read(r, None, 0.2, 0).unwrap_err();
        assert!(matches!(&err, DataError::EmptyClass { path } if path.ends_with("empty")), "{err:?}");

        std::fs::write(r.join("empty/bad.png"), "this is text, not a PNG").unwrap();
        let err = read(r, None, 0.2, 0).unwrap_err();
        assert!(matches!(&err, DataError::NotAnImage { path, .. } if path.ends_with("bad.png")), "{err:?}");
    }

    #[test]
    fn an_image_claiming_a_huge_size_is_refused_at_once() {
        // A valid 3×2 JPEG whose header then claims 32772×1028 pixels (found by fuzzing: decoding
        // and resizing it took seconds).
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("a.jpg");
        RgbImage::from_pixel(3, 2, Rgb([9, 9, 9])).save(&path).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let sof = bytes.windows(2).position(|w| w == [0xff, 0xc0]).unwrap();
        bytes[sof + 5..sof + 9].copy_from_slice(&[0x80, 0x04, 0x04, 0x04]);
        let start = std::time::Instant::now();
        let err = image_from_bytes(&path, &bytes, Some((8, 8))).unwrap_err();
        assert!(matches!(&err, DataError::NotAnImage { .. }), "{err:?}");
        assert!(err.to_string().contains("limit"), "{err}");
        assert!(start.elapsed().as_secs_f64() < 1.0, "{:?}", start.elapsed());
    }

    #[test]
    fn layout_errors_are_reported() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        gray(&r.join("train/a"), "1.png", (2, 2), 1);
        let err = read(r, None, 0.2, 0).unwrap_err();
        assert!(matches!(&err, DataError::Missing { path, .. } if path.ends_with("test")), "{err:?}");
        gray(&r.join("test/zebra"), "1.png", (2, 2), 1);
        let err = read(r, None, 0.2, 0).unwrap_err();
        assert!(matches!(&err, DataError::UnknownTestClass { class, .. } if class == "zebra"), "{err:?}");
    }
}
