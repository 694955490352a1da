//! The run directory: where every stage writes, and `run.json`, which records the settings, the
//! versions and the status of each stage.
//!
//! Why stages record a fingerprint: rerunning a command must skip what is done, but must never
//! silently reuse a finished stage made with other settings. Each stage stores the settings that
//! shaped it (its own and those of every stage before it); a rerun whose settings differ for a stage
//! that has started is refused with the list of differences, or, with `--force`, that stage and every
//! later one are discarded and redone.
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::fsutil::write_json;
use crate::settings::Settings;

/// Version of the run-directory layout; a run of another format is refused.
pub const FORMAT: u32 = 1;

/// The stages of `pwsnas search`, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Supernet,
    Shrink,
    Search,
    Retrain,
}

impl Stage {
    pub const ALL: [Stage; 4] = [Stage::Supernet, Stage::Shrink, Stage::Search, Stage::Retrain];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Supernet => "supernet",
            Stage::Shrink => "shrink",
            Stage::Search => "search",
            Stage::Retrain => "retrain",
        }
    }

    /// The settings this stage depends on: its own and every earlier stage's.
    pub fn fingerprint(self, s: &Settings) -> Value {
        let mut v = json!({
            "space": s.space, "space_params": s.space_params, "space_file": s.space_file, "data": s.data,
            "image_size": s.image_size, "val_fraction": s.val_fraction, "seed": s.seed,
            "sampler": s.sampler, "supernet": s.supernet,
        });
        if self >= Stage::Shrink {
            v["shrink"] = json!(s.shrink);
            // Shrinking scores admissible children only and keeps what they need: the constraints shape it.
            let c = &s.search;
            v["constraints"] = json!({ "max_flops": c.max_flops, "max_params": c.max_params, "max_latency_ms": c.max_latency_ms });
            if c.max_latency_ms.is_some() {
                v["constraints"]["latency_threads"] = json!(c.latency_threads);
                v["constraints"]["latency_ep"] = json!(c.latency_ep);
            }
        }
        if self >= Stage::Search {
            v["search"] = json!(s.search);
            if let Some((name, section)) = crate::method::own_settings(s) {
                v[name] = section;
            }
        }
        if self >= Stage::Retrain {
            v["retrain"] = json!(s.retrain);
        }
        v
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Running,
    Done,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StageRecord {
    pub status: Status,
    pub fingerprint: Value,
    /// Seconds since the Unix epoch when the stage finished.
    #[serde(default)]
    pub finished_at: Option<u64>,
    /// Stage-specific facts worth keeping (e.g. the retrained test accuracy).
    #[serde(default)]
    pub summary: Value,
}

/// `run.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunInfo {
    pub format: u32,
    pub pwsnas_version: String,
    pub libtorch: String,
    pub created_at: u64,
    pub device: String,
    pub settings: Settings,
    pub stages: IndexMap<Stage, StageRecord>,
}

impl RunInfo {
    /// Reads the bytes of `run.json` (`file` names it in errors): the run format first, so that a
    /// run of another pwsnas version gets that message, then every field, then the settings' values.
    pub fn parse(file: &Path, bytes: &[u8]) -> Result<RunInfo> {
        let raw: Value = serde_json::from_slice(bytes)
            .with_context(|| format!("{} is not valid: expected the JSON pwsnas writes", file.display()))?;
        let format = raw.get("format").and_then(Value::as_u64).unwrap_or(0);
        if format != FORMAT as u64 {
            bail!(
                "{} was written by another pwsnas version (run format {format}, this pwsnas reads format {FORMAT}); use a new run directory",
                file.display()
            );
        }
        let info: RunInfo = serde_json::from_value(raw)
            .with_context(|| format!("{} is not a valid run.json", file.display()))?;
        info.settings.validate().with_context(|| format!("{} holds invalid settings", file.display()))?;
        Ok(info)
    }
}

pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A run directory.
pub struct RunDir {
    pub root: PathBuf,
    pub info: RunInfo,
    /// Held while this process writes into the run (see [`RunDir::lock`]).
    lock: Option<std::fs::File>,
}

impl RunDir {
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn supernet_dir(&self) -> PathBuf {
        self.path("supernet")
    }

    pub fn retrain_dir(&self) -> PathBuf {
        self.path("retrain")
    }

    fn run_json(root: &Path) -> PathBuf {
        root.join("run.json")
    }

    /// Opens an existing run (for `export`, `eval`, ...), checking its format.
    pub fn open(root: &Path) -> Result<RunDir> {
        let file = Self::run_json(root);
        if !file.exists() {
            bail!(
                "{} is not a pwsnas run directory (no run.json): run `pwsnas search --out {}` first",
                root.display(),
                root.display()
            );
        }
        let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
        let info = RunInfo::parse(&file, &bytes)?;
        Ok(RunDir { root: root.to_path_buf(), info, lock: None })
    }

    /// Takes the run's lock (`run.lock`, an OS file lock released when the process ends), so that two
    /// processes never write the same run. Fails at once, naming the holder, when another has it.
    pub fn lock(&mut self) -> Result<()> {
        if self.lock.is_some() {
            return Ok(());
        }
        let path = self.root.join("run.lock");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        if file.try_lock().is_err() {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            bail!(
                "another pwsnas process ({}) is working in {}; wait for it to finish or stop it",
                holder.trim(),
                self.root.display()
            );
        }
        use std::io::Write;
        file.set_len(0)?;
        write!(file, "pid {}", std::process::id())?;
        self.lock = Some(file);
        Ok(())
    }

    /// Opens or creates a run with these settings. Stages whose fingerprint changed are refused,
    /// or discarded with `force`.
    pub fn open_or_create(root: &Path, settings: &Settings, device: &str, force: bool) -> Result<RunDir> {
        let mut run = if Self::run_json(root).exists() {
            Self::open(root)?
        } else {
            std::fs::create_dir_all(root)
                .with_context(|| format!("cannot create run directory {}", root.display()))?;
            RunDir {
                root: root.to_path_buf(),
                lock: None,
                info: RunInfo {
                    format: FORMAT,
                    pwsnas_version: env!("CARGO_PKG_VERSION").to_string(),
                    libtorch: crate::doctor::libtorch_version(),
                    created_at: now(),
                    device: device.to_string(),
                    settings: settings.clone(),
                    stages: IndexMap::new(),
                },
            }
        };
        run.lock()?;
        for stage in Stage::ALL {
            let Some(rec) = run.info.stages.get(&stage) else { continue };
            let new = stage.fingerprint(settings);
            if rec.fingerprint == new {
                continue;
            }
            let changes = diff(&rec.fingerprint, &new);
            if !force {
                bail!(
                    "the {} stage of {} was made with other settings ({}); use the same settings, a new --out, or --force to redo it and every later stage",
                    stage.name(),
                    root.display(),
                    changes.join("; ")
                );
            }
            for later in Stage::ALL.iter().filter(|s| **s >= stage) {
                run.discard(*later)?;
            }
            break;
        }
        run.info.settings = settings.clone();
        run.info.device = device.to_string();
        run.save()?;
        Ok(run)
    }

    pub fn save(&self) -> Result<()> {
        write_json(&Self::run_json(&self.root), &self.info)
    }

    pub fn is_done(&self, stage: Stage) -> bool {
        self.info.stages.get(&stage).is_some_and(|r| r.status == Status::Done)
    }

    pub fn begin(&mut self, stage: Stage) -> Result<()> {
        let fingerprint = stage.fingerprint(&self.info.settings);
        let rec = self.info.stages.entry(stage).or_insert(StageRecord {
            status: Status::Running,
            fingerprint: fingerprint.clone(),
            finished_at: None,
            summary: Value::Null,
        });
        rec.fingerprint = fingerprint;
        self.save()
    }

    pub fn finish(&mut self, stage: Stage, summary: Value) -> Result<()> {
        let rec = self.info.stages.get_mut(&stage).context("stage finished before it began")?;
        rec.status = Status::Done;
        rec.finished_at = Some(now());
        rec.summary = summary;
        self.save()
    }

    /// Forgets a stage and deletes what it wrote.
    pub fn discard(&mut self, stage: Stage) -> Result<()> {
        let outputs: &[&str] = match stage {
            Stage::Supernet => &["supernet"],
            Stage::Shrink => &["shrink.json", "shrink-scoring.json", "space.json"],
            Stage::Search => &["search.json", "arch.json", "method.json", "method"],
            Stage::Retrain => &["retrain", "model.onnx", "report.json", "report.md", "report.html"],
        };
        for rel in outputs {
            let p = self.path(rel);
            if p.is_dir() {
                std::fs::remove_dir_all(&p).with_context(|| format!("cannot remove {}", p.display()))?;
            } else if p.exists() {
                std::fs::remove_file(&p).with_context(|| format!("cannot remove {}", p.display()))?;
            }
        }
        self.info.stages.shift_remove(&stage);
        Ok(())
    }
}

/// Human-readable differences between two JSON values, e.g. fingerprints (`path: old → new`).
pub(crate) fn diff(old: &Value, new: &Value) -> Vec<String> {
    fn walk(prefix: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for k in keys {
                    let p = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    walk(&p, x.get(k).unwrap_or(&Value::Null), y.get(k).unwrap_or(&Value::Null), out);
                }
            }
            _ if a != b => out.push(format!("{prefix}: {a} → {b}")),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk("", old, new, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_settings_of_a_started_stage_are_refused_or_forced() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("r");
        let s = Settings::default();
        let mut run = RunDir::open_or_create(&root, &s, "cpu", false).unwrap();
        run.begin(Stage::Supernet).unwrap();
        run.finish(Stage::Supernet, Value::Null).unwrap();
        run.begin(Stage::Shrink).unwrap();
        std::fs::write(run.path("shrink.json"), "{}").unwrap();
        drop(run);

        // Changing a search setting does not touch the started stages.
        let mut later = s.clone();
        later.search.population = 12;
        RunDir::open_or_create(&root, &later, "cpu", false).unwrap();

        let mut changed = s.clone();
        changed.shrink.copies = 2;
        let err = RunDir::open_or_create(&root, &changed, "cpu", false).err().unwrap().to_string();
        assert!(err.contains("shrink") && err.contains("copies: 1 → 2"), "{err}");

        let run = RunDir::open_or_create(&root, &changed, "cpu", true).unwrap();
        assert!(run.is_done(Stage::Supernet));
        assert!(!run.info.stages.contains_key(&Stage::Shrink));
        assert!(!run.path("shrink.json").exists());
    }

    #[test]
    fn the_w0_epoch_shapes_the_shrink_stage_not_the_supernet() {
        // The supernet saves the snapshot of `shrink.w0_epoch`, but changing the setting later must
        // not retrain it: the shrink stage refuses a missing snapshot itself.
        let s = Settings::default();
        let mut changed = s.clone();
        changed.shrink.w0_epoch = 2;
        assert_eq!(Stage::Supernet.fingerprint(&s), Stage::Supernet.fingerprint(&changed));
        let diff = diff(&Stage::Shrink.fingerprint(&s), &Stage::Shrink.fingerprint(&changed));
        assert_eq!(diff, vec!["shrink.w0_epoch: 1 → 2".to_string()]);
    }

    #[test]
    fn a_second_writer_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = RunDir::open_or_create(dir.path(), &Settings::default(), "cpu", false).unwrap();
        let err =
            RunDir::open_or_create(dir.path(), &Settings::default(), "cpu", false).err().unwrap().to_string();
        assert!(err.contains("another pwsnas process (pid"), "{err}");
    }

    #[test]
    fn a_run_of_another_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("run.json"), r#"{"format": 99}"#).unwrap();
        let err = RunDir::open(dir.path()).err().unwrap().to_string();
        assert!(err.contains("another pwsnas version"), "{err}");
    }

    #[test]
    fn a_run_json_with_an_unknown_stage_or_invalid_settings_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::open_or_create(dir.path(), &Settings::default(), "cpu", false).unwrap();
        let mut good = serde_json::to_value(&run.info).unwrap();
        drop(run);
        let file = dir.path().join("run.json");
        let parse = |v: &Value| format!("{:#}", RunInfo::parse(&file, v.to_string().as_bytes()).unwrap_err());
        good["stages"] = json!({ "pretrain": { "status": "done", "fingerprint": {} } });
        let err = parse(&good);
        assert!(
            err.contains(
                "unknown variant `pretrain`, expected one of `supernet`, `shrink`, `search`, `retrain`"
            ),
            "{err}"
        );
        good["stages"] = json!({ "supernet": { "status": "half", "fingerprint": {} } });
        assert!(parse(&good).contains("unknown variant `half`, expected `running` or `done`"));
        good["stages"] = json!({});
        good["settings"]["shrink"]["copies"] = json!(0);
        let err = parse(&good);
        assert!(err.contains("holds invalid settings: setting shrink.copies must be at least 1"), "{err}");
        assert!(
            parse(&json!([1])).contains("is not valid")
                || parse(&json!([1])).contains("another pwsnas version")
        );
        let err = format!("{:#}", RunInfo::parse(&file, b"{\"format\": 1,").unwrap_err());
        assert!(err.contains("run.json is not valid: expected the JSON pwsnas writes"), "{err}");
    }
}
