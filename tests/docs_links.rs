//! The documentation's relative links resolve: every Markdown link in README.md, CONTRIBUTING.md and
//! docs/*.md that is not a web or mail address names a file (or folder) that exists, and its
//! `#anchor`, if any, is the anchor of a heading of that file by GitHub's rule. README.md stays a
//! page a newcomer reads (at most 200 lines). Links inside code fences and inline code do not count.
//!
//! Plain std: no libtorch, no data, no network; it reads the repository's Markdown files only.
use std::collections::BTreeSet;
use std::fs;
use std::path::{Component, Path, PathBuf};

/// README.md's largest length in lines.
const README_MAX_LINES: usize = 200;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Markdown files whose links are checked, relative to the repository root.
fn documents() -> Vec<PathBuf> {
    let mut docs = vec![PathBuf::from("README.md"), PathBuf::from("CONTRIBUTING.md")];
    let mut pages: Vec<PathBuf> = fs::read_dir(root().join("docs"))
        .expect("docs/ is readable")
        .map(|e| e.expect("a docs/ entry is readable").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .map(|p| PathBuf::from("docs").join(p.file_name().expect("a file name")))
        .collect();
    pages.sort();
    docs.extend(pages);
    docs
}

/// A line of a document outside code fences, with inline code removed.
struct ProseLine {
    number: usize,
    text: String,
}

/// Whether `line` opens or closes a fence: its fence character and run length.
fn fence(line: &str) -> Option<(char, usize)> {
    let t = line.trim_start();
    let c = t.chars().next()?;
    if c != '`' && c != '~' {
        return None;
    }
    let n = t.chars().take_while(|&x| x == c).count();
    (n >= 3).then_some((c, n))
}

/// Removes inline code spans (a run of N backticks up to the next run of exactly N).
fn without_inline_code(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '`' {
            let n = chars[i..].iter().take_while(|&&c| c == '`').count();
            // Find the closing run of exactly n backticks.
            let mut j = i + n;
            let mut close = None;
            while j < chars.len() {
                if chars[j] == '`' {
                    let m = chars[j..].iter().take_while(|&&c| c == '`').count();
                    if m == n {
                        close = Some(j);
                        break;
                    }
                    j += m;
                } else {
                    j += 1;
                }
            }
            match close {
                Some(j) => {
                    // Keep the code's text for headings (GitHub keeps it in the anchor), but mark
                    // it so that no link is read out of it.
                    out.push('\u{0}');
                    out.extend(&chars[i + n..j]);
                    out.push('\u{0}');
                    i = j + n;
                }
                None => {
                    out.extend(&chars[i..i + n]);
                    i += n;
                }
            }
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// The lines of `text` outside code fences; inline code is kept between NUL marks.
fn prose(text: &str) -> Vec<ProseLine> {
    let mut lines = Vec::new();
    let mut open: Option<(char, usize)> = None;
    for (i, line) in text.lines().enumerate() {
        match (open, fence(line)) {
            (None, Some(f)) => open = Some(f),
            (Some((c, n)), Some((c2, n2))) if c == c2 && n2 >= n && line.trim().chars().all(|x| x == c) => {
                open = None
            }
            (Some(_), _) => {}
            (None, None) => lines.push(ProseLine { number: i + 1, text: without_inline_code(line) }),
        }
    }
    lines
}

/// Drops the inline code marked by [`without_inline_code`] (its text included).
fn outside_code(text: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for c in text.chars() {
        if c == '\u{0}' {
            inside = !inside;
        } else if !inside {
            out.push(c);
        }
    }
    out
}

/// Every link target of a line: `[text](target)`, `![alt](target)`, `[text](target "title")`,
/// `[text](<target>)`, and reference definitions `[label]: target`.
fn link_targets(line: &str) -> Vec<String> {
    let text = outside_code(line);
    let mut targets = Vec::new();
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        if let Some(end) = trimmed.find("]:") {
            let rest = trimmed[end + 2..].trim();
            if !rest.is_empty() && !trimmed[..end].contains(']') {
                targets.push(rest.split_whitespace().next().unwrap_or("").to_string());
            }
        }
    }
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i + 1 < chars.len() {
        if chars[i] == ']' && chars[i + 1] == '(' {
            let mut depth = 0usize;
            let mut j = i + 1;
            let mut end = None;
            while j < chars.len() {
                match chars[j] {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            end = Some(j);
                            break;
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            if let Some(end) = end {
                let inner: String = chars[i + 2..end].iter().collect();
                let inner = inner.trim();
                let target = if let Some(rest) = inner.strip_prefix('<') {
                    rest.split('>').next().unwrap_or("").to_string()
                } else {
                    inner.split_whitespace().next().unwrap_or("").to_string()
                };
                targets.push(target);
                i = end;
            }
        }
        i += 1;
    }
    targets
}

/// Whether a target leaves the repository (a web or mail address, or any other scheme).
fn is_external(target: &str) -> bool {
    let lower = target.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") || lower.starts_with("mailto:") {
        return true;
    }
    // Any other URL scheme (`ftp:`, `file:`): letters, digits, + - . before a colon, no slash first.
    match lower.split_once(':') {
        Some((scheme, _)) => {
            !scheme.is_empty()
                && scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        }
        None => false,
    }
}

/// GitHub's anchor of a heading's text: markup dropped, lowercased, every character but letters,
/// digits, `-`, `_` and spaces dropped, spaces turned into `-`.
fn github_anchor(heading: &str) -> String {
    // Render what GitHub renders: links keep their text, emphasis and code marks go.
    let mut rendered = String::new();
    let chars: Vec<char> = heading.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\u{0}' | '*' => i += 1,
            '[' => {
                // [text](target) → text
                if let Some(close) = chars[i..].iter().position(|&c| c == ']').map(|p| p + i) {
                    if chars.get(close + 1) == Some(&'(') {
                        if let Some(end) = chars[close..].iter().position(|&c| c == ')').map(|p| p + close) {
                            rendered.extend(&chars[i + 1..close]);
                            i = end + 1;
                            continue;
                        }
                    }
                }
                i += 1;
            }
            c => {
                rendered.push(c);
                i += 1;
            }
        }
    }
    rendered
        .trim()
        .to_lowercase()
        .chars()
        .filter(|&c| c.is_alphanumeric() || c == '-' || c == '_' || c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a Markdown file's headings (ATX headings outside code fences), with GitHub's
/// `-1`, `-2`, ... suffixes for repeated ones.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for line in prose(text) {
        let t = line.text.trim_start();
        let level = t.chars().take_while(|&c| c == '#').count();
        if level == 0 || level > 6 || !(t[level..].is_empty() || t[level..].starts_with(' ')) {
            continue;
        }
        let title = t[level..].trim().trim_end_matches('#').trim();
        let base = github_anchor(title);
        let mut anchor = base.clone();
        let mut n = 0;
        while seen.contains(&anchor) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
        seen.insert(anchor);
    }
    seen
}

/// `%XX` escapes decoded.
fn percent_decoded(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && bytes[i + 1].is_ascii_hexdigit()
            && bytes[i + 2].is_ascii_hexdigit()
        {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("ASCII");
            out.push(u8::from_str_radix(hex, 16).expect("two hex digits"));
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `dir/../x` → `x`, without touching the file system (so that a missing file is reported as such).
fn normalised(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

/// What is wrong with one link of `doc` (a path relative to the root), if anything.
fn check_link(doc: &Path, doc_text: &str, target: &str) -> Option<String> {
    if target.is_empty() {
        return Some("the link has no target".into());
    }
    let (path, anchor) = match target.split_once('#') {
        Some((p, a)) => (p, Some(a)),
        None => (target, None),
    };
    let path = percent_decoded(path);
    let (file, text) = if path.is_empty() {
        (doc.to_path_buf(), Some(doc_text.to_string()))
    } else {
        if path.starts_with('/') {
            return Some(format!(
                "`{path}` is an absolute path; write it relative to {} so that it resolves on GitHub and in a checkout",
                doc.display()
            ));
        }
        let file = normalised(&doc.parent().unwrap_or(Path::new("")).join(&path));
        if file.starts_with("..") {
            return Some(format!("`{}` points outside the repository", file.display()));
        }
        let full = root().join(&file);
        if !full.exists() {
            return Some(format!("{} does not exist", file.display()));
        }
        let text = if full.is_file() && file.extension().is_some_and(|e| e == "md") {
            Some(fs::read_to_string(&full).unwrap_or_else(|e| panic!("cannot read {}: {e}", full.display())))
        } else {
            None
        };
        (file, text)
    };
    let anchor = anchor?;
    let anchor = percent_decoded(anchor);
    let Some(text) = text else {
        return Some(format!(
            "#{anchor} is an anchor into {}, which is not a Markdown file whose headings make anchors",
            file.display()
        ));
    };
    let known = anchors(&text);
    if known.contains(&anchor) {
        return None;
    }
    let close: Vec<&String> = known
        .iter()
        .filter(|a| {
            let stem = anchor.split('-').next().unwrap_or("");
            !stem.is_empty() && a.contains(stem)
        })
        .take(5)
        .collect();
    Some(format!(
        "no heading of {} has the anchor #{anchor}{}",
        file.display(),
        if close.is_empty() {
            String::new()
        } else {
            format!(
                " (similar anchors there: {})",
                close.iter().map(|a| format!("#{a}")).collect::<Vec<_>>().join(", ")
            )
        }
    ))
}

#[test]
fn every_relative_link_of_the_documentation_resolves() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for doc in documents() {
        let full = root().join(&doc);
        let text = match fs::read_to_string(&full) {
            Ok(t) => t,
            Err(e) => {
                failures.push(format!("{}: cannot be read: {e}", doc.display()));
                continue;
            }
        };
        for line in prose(&text) {
            for target in link_targets(&line.text) {
                if is_external(&target) {
                    continue;
                }
                checked += 1;
                if let Some(what) = check_link(&doc, &text, &target) {
                    failures.push(format!("{}:{}: link ({target}): {what}", doc.display(), line.number));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} broken link(s):\n{}", failures.len(), failures.join("\n"));
    assert!(checked > 0, "no relative link was found: the link reader is broken");
}

#[test]
fn the_readme_is_short() {
    let text = fs::read_to_string(root().join("README.md")).expect("README.md is readable");
    let lines = text.lines().count();
    assert!(
        lines <= README_MAX_LINES,
        "README.md: {lines} lines, more than {README_MAX_LINES}: move reference material to docs/ and link it from the README's Documentation list"
    );
}

#[test]
fn anchors_follow_githubs_rule() {
    assert_eq!(
        github_anchor("Benchmarks (numbers, never timed tests)"),
        "benchmarks-numbers-never-timed-tests"
    );
    assert_eq!(
        github_anchor("Strategy 2: fewer children per weight"),
        "strategy-2-fewer-children-per-weight"
    );
    assert_eq!(github_anchor("Which `W0` (`--w0-epoch K`)"), "which-w0---w0-epoch-k");
    assert_eq!(github_anchor("NAS-Bench-201"), "nas-bench-201");
    assert_eq!(github_anchor("Über die Größe"), "über-die-größe");
    assert_eq!(github_anchor("snake_case and **bold**"), "snake_case-and-bold");
    let text = "# A\n```\n# not a heading\n```\n## A\n";
    assert_eq!(anchors(text), BTreeSet::from(["a".to_string(), "a-1".to_string()]));
}

#[test]
fn links_in_code_do_not_count() {
    let text = "see [a](x.md) and `[b](y.md)`\n```\n[c](z.md)\n```\n[d]: w.md\n";
    let found: Vec<String> = prose(text).iter().flat_map(|l| link_targets(&l.text)).collect();
    assert_eq!(found, ["x.md", "w.md"]);
    assert!(is_external("https://github.com/x") && is_external("mailto:a@b") && !is_external("docs/a.md#b"));
}
