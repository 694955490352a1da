//! Headless Chromium for the tests that render pwsnas's drawings in a real browser
//! (`tests/browser/`): Debian's `chromium`, with the DejaVu fonts the drawings' monospace text is
//! measured for, installed with apt-get when missing. The tests start and stop the browser
//! themselves, one page at a time.
use std::path::PathBuf;

use anyhow::Result;

const PACKAGES: [&str; 2] = ["chromium", "fonts-dejavu-core"];
const BROWSER: &str = "/usr/bin/chromium";
const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf";

/// The browser's path, installed if needed.
pub fn ensure() -> Result<PathBuf> {
    crate::apt::ensure("Chromium", &PACKAGES, &[BROWSER, FONT])?;
    Ok(PathBuf::from(BROWSER))
}
