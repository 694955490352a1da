//! Progress for people and for programs.
//!
//! People get indicatif bars and short lines on stderr (hidden by `--quiet`). Programs get one JSON
//! object per event: appended to the run's `events.jsonl` always, and printed on stdout with
//! `--json` (stdout then carries nothing else).
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Value};

pub struct Progress {
    quiet: bool,
    json: bool,
    events: Mutex<Option<std::fs::File>>,
}

impl Progress {
    pub fn new(quiet: bool, json: bool) -> Progress {
        Progress { quiet, json, events: Mutex::new(None) }
    }

    /// A reporter that prints nothing (library use, tests).
    pub fn silent() -> Progress {
        Progress::new(true, false)
    }

    pub fn json(&self) -> bool {
        self.json
    }

    /// Appends events to this file from now on.
    pub fn attach_events(&self, path: &Path) -> anyhow::Result<()> {
        let f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        *self.events.lock().expect("events lock") = Some(f);
        Ok(())
    }

    /// A progress bar of `len` steps (hidden when quiet or in JSON mode).
    pub fn bar(&self, len: u64, prefix: &str) -> ProgressBar {
        if self.quiet || self.json {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} {msg} ({elapsed}<{eta})")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(prefix.to_string());
        bar
    }

    /// Progress through `total` steps of a long loop, for people and programs alike: a bar with its
    /// ETA on a terminal; when stderr is not a terminal (a log file, a batch job), a plain line
    /// every [`Steps::EVERY`]; and in both cases a `progress` event (`what`, `done`, `total`,
    /// `eta_s`) as often, in `events.jsonl` and on stdout with `--json`. Why: a loop of many
    /// minutes (scoring all 15,625 NAS-Bench-201 children) must not look hung in any of the three.
    pub fn steps(&self, total: u64, what: &str) -> Steps<'_> {
        let terminal = std::io::stderr().is_terminal();
        let bar = if terminal { self.bar(total, what) } else { ProgressBar::hidden() };
        let now = Instant::now();
        Steps { progress: self, bar, what: what.to_string(), total, done: 0, start: now, last: now, terminal }
    }

    /// Bars drawn together, one above the other (a sweep's run lines over its overall bar);
    /// hidden when quiet or in JSON mode.
    pub fn multi(&self) -> MultiProgress {
        if self.quiet || self.json {
            return MultiProgress::with_draw_target(ProgressDrawTarget::hidden());
        }
        MultiProgress::with_draw_target(ProgressDrawTarget::stderr())
    }

    /// A status line: a prefix, a spinner, the time since it started and a message (hidden when
    /// quiet or in JSON mode).
    pub fn line(&self, prefix: &str) -> ProgressBar {
        if self.quiet || self.json {
            return ProgressBar::hidden();
        }
        let line = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        line.set_style(
            ProgressStyle::with_template("{spinner} {prefix} {elapsed:>4} {msg}").expect("valid template"),
        );
        line.set_prefix(prefix.to_string());
        line.enable_steady_tick(std::time::Duration::from_millis(250));
        line
    }

    /// A line for people.
    pub fn info(&self, msg: impl AsRef<str>) {
        if !self.quiet && !self.json {
            eprintln!("{}", msg.as_ref());
        }
    }

    /// A machine-readable event `{"event": kind, ...data}`.
    pub fn event(&self, kind: &str, data: Value) {
        let mut obj = json!({ "event": kind, "time": crate::run::now() });
        if let (Value::Object(o), Value::Object(d)) = (&mut obj, data) {
            o.extend(d);
        }
        let line = obj.to_string();
        if let Some(f) = self.events.lock().expect("events lock").as_mut() {
            // One write per line; a line that cannot be written whole (a full disk) is cut off again,
            // so the log never ends in half an event.
            let before = f.metadata().map(|m| m.len());
            if f.write_all(format!("{line}\n").as_bytes()).is_err() {
                if let Ok(len) = before {
                    let _ = f.set_len(len);
                }
            }
        }
        if self.json {
            println!("{line}");
        }
    }
}

/// See [`Progress::steps`].
pub struct Steps<'a> {
    progress: &'a Progress,
    bar: ProgressBar,
    what: String,
    total: u64,
    done: u64,
    start: Instant,
    last: Instant,
    terminal: bool,
}

impl Steps<'_> {
    /// How often a line (off a terminal) and an event are written.
    pub const EVERY: Duration = Duration::from_secs(30);

    /// `n` more steps done.
    pub fn inc(&mut self, n: u64) {
        self.done += n;
        self.bar.inc(n);
        if self.last.elapsed() >= Self::EVERY {
            self.last = Instant::now();
            self.report();
        }
    }

    /// Seconds left at the rate so far (none before the first step).
    fn eta_s(&self) -> Option<f64> {
        (self.done > 0).then(|| {
            let rate = self.done as f64 / self.start.elapsed().as_secs_f64().max(1e-9);
            self.total.saturating_sub(self.done) as f64 / rate
        })
    }

    fn report(&self) {
        let eta = self.eta_s();
        self.progress.event(
            "progress",
            json!({ "what": self.what, "done": self.done, "total": self.total, "elapsed_s": self.start.elapsed().as_secs_f64(), "eta_s": eta }),
        );
        if !self.terminal {
            self.progress.info(format!(
                "{}: {}/{} ({:.0}%), {:.0}s elapsed, about {} left",
                self.what,
                self.done,
                self.total,
                100.0 * self.done as f64 / self.total.max(1) as f64,
                self.start.elapsed().as_secs_f64(),
                eta.map_or("?".into(), |s| format!("{s:.0}s"))
            ));
        }
    }

    pub fn finish(self) {
        self.bar.finish_and_clear();
    }
}
