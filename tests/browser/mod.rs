//! A real browser for the tests of what pwsnas draws: headless Chromium (Debian's `chromium`, which
//! `cargo xtask test` installs) renders a page, `check.js` measures every architecture drawing in it
//! with the browser's own layout, and the test reads the result from the rendered DOM
//! (`--dump-dom`).
//!
//! Without Chromium the tests that need it skip, unless `PWSNAS_REQUIRE_CHROMIUM` is set (as
//! `cargo xtask test` does), which makes them fail. `PWSNAS_CHROMIUM` names the browser's binary;
//! otherwise `chromium` is looked up on `PATH`. Chromium runs in a process group of its own, which is
//! killed when the page is dumped or after two minutes, so no renderer outlives a test.
#![allow(dead_code)]
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const CHECK: &str = include_str!("check.js");

/// The browser to use, or `None` (after saying so) when there is none and none is required.
pub fn chromium() -> Option<PathBuf> {
    let named = std::env::var_os("PWSNAS_CHROMIUM").map(PathBuf::from);
    let found = named.or_else(|| {
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|dir| dir.join("chromium"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("PWSNAS_REQUIRE_CHROMIUM").is_none(),
            "PWSNAS_REQUIRE_CHROMIUM is set but no Chromium was found (PWSNAS_CHROMIUM or `chromium` on PATH)"
        );
        eprintln!("skipped: no Chromium (`cargo xtask test` installs Debian's chromium)");
    }
    found
}

/// Renders `html` (a page's text) in `browser` and returns what `check.js` measured: one object per
/// `svg.arch-drawing` (`kind`, `width`, `height`, `cells`, `blocks`, `problems`).
pub fn measure(browser: &Path, html: &str) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("page.html");
    let script = format!("<script>\n{CHECK}\n</script>\n");
    let html = match html.rfind("</body>") {
        Some(at) => format!("{}{script}{}", &html[..at], &html[at..]),
        None => format!("{html}{script}"),
    };
    std::fs::write(&page, html).unwrap();
    let dom = dump_dom(browser, &page, &dir.path().join("profile"));
    let start = dom
        .rfind("<pre id=\"pwsnas-check\">")
        .unwrap_or_else(|| panic!("no check result in the DOM:\n{dom}"));
    let rest = &dom[start + "<pre id=\"pwsnas-check\">".len()..];
    let json = &rest[..rest.find("</pre>").expect("closed <pre>")];
    let json = json.replace("&lt;", "<").replace("&gt;", ">").replace("&nbsp;", " ").replace("&amp;", "&");
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("check result is not JSON ({e}): {json}"))
}

/// A page holding one SVG document (as `pwsnas arch info --svg` writes it).
pub fn page_of_svg(svg: &str) -> String {
    format!("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head><body>\n{svg}\n</body></html>\n")
}

fn dump_dom(browser: &Path, page: &Path, profile: &Path) -> String {
    use std::os::unix::process::CommandExt;
    let mut child = Command::new(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--virtual-time-budget=5000"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", browser.display()));
    let group = child.id() as i32;
    let read = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            pipe.read_to_string(&mut s).map(|_| s)
        })
    };
    let stdout = read(Box::new(child.stdout.take().unwrap()));
    let stderr = read(Box::new(child.stderr.take().unwrap()));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if start.elapsed() > Duration::from_secs(120) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // The whole group: Chromium's zygote and renderer processes as well as the browser.
    unsafe { libc::kill(-group, libc::SIGKILL) };
    let _ = child.wait();
    let stderr = stderr.join().unwrap().unwrap_or_default();
    let status =
        status.unwrap_or_else(|| panic!("Chromium did not finish within 2 minutes; stderr:\n{stderr}"));
    assert!(status.success(), "Chromium failed ({status}); stderr:\n{stderr}");
    stdout.join().unwrap().expect("Chromium's output is UTF-8")
}

/// Fails with every problem `check.js` found in a drawing.
pub fn assert_clean(drawing: &Value) {
    let problems = drawing["problems"].as_array().expect("problems");
    assert!(problems.is_empty(), "the drawing renders with problems: {problems:#?}");
}
