//! The latency table as a file: what it holds ([`LatencyTable`]), which space and machine it is
//! for ([`SpaceId`], [`Machine`]), where tables are kept and when one is reused ([`obtain`]).
//!
//! Why tables are cached and keyed so strictly: a table is a set of measurements of one space's
//! pieces on one machine with one runtime setting, and it is valid for nothing else. It is reused
//! only when the space (kind and every parameter, input shape and classes included) and the machine
//! (CPU model and logical CPUs, GPU model with `--ep cuda`, intra-op threads, execution provider,
//! ONNX Runtime version) are exactly those of the request, and the file has this pwsnas's table
//! format; otherwise it is rebuilt, and the message says what differed. Tables live in
//! `$PWSNAS_HOME/latency/` (default `~/.cache/pwsnas/latency/`), one file per space and machine, so
//! that searches, exports and `pwsnas latency-table` share them; a search also keeps a copy of the
//! table it used in its run directory (`latency_table.json`), which is looked at first, so that a
//! resumed search predicts with the table it started with. Building holds a lock on the cache entry:
//! two processes asking for the same table measure it once, and never at the same time.
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use pwsnas_models::SpaceKind;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::measure::{self, BuildOptions};
use crate::fsutil::{read_json, write_json};
use crate::host::{cpu_model, gpu_model};
use crate::ort_runtime::{self, Ep, Runtime, SessionConfig};
use crate::progress::Progress;

/// Version of the table file (its pieces and how they are measured); tables of another version are
/// rebuilt.
pub const TABLE_FORMAT: u32 = 2;

/// File name of the table a search keeps in its run directory.
pub const RUN_COPY: &str = "latency_table.json";

/// The space a table is for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpaceId {
    pub space: String,
    /// Every parameter of the space, input shape and classes included.
    pub params: Value,
}

impl SpaceId {
    pub fn of(kind: &SpaceKind) -> SpaceId {
        SpaceId { space: kind.name().to_string(), params: kind.params_json() }
    }
}

/// What a latency depends on besides the model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    /// CPU model and number of logical CPUs.
    pub cpu: String,
    /// GPU model(s), with the CUDA execution provider.
    pub gpu: Option<String>,
    /// ONNX Runtime intra-op threads.
    pub threads: usize,
    /// ONNX Runtime execution provider.
    pub ep: Ep,
    /// ONNX Runtime version.
    pub onnxruntime: String,
}

impl Machine {
    /// This machine with the loaded ONNX Runtime and `cfg`.
    pub fn current(rt: &Runtime, cfg: SessionConfig) -> Machine {
        Machine {
            cpu: cpu_model(),
            gpu: (cfg.ep == Ep::Cuda).then(gpu_model),
            threads: cfg.threads,
            ep: cfg.ep,
            onnxruntime: rt.version.clone(),
        }
    }

    /// `field: mine vs other` for every field that differs.
    pub fn differences(&self, other: &Machine) -> Vec<String> {
        let mut out = Vec::new();
        let mut cmp = |name: &str, a: String, b: String| {
            if a != b {
                out.push(format!("{name}: {a} vs {b}"));
            }
        };
        cmp("cpu", self.cpu.clone(), other.cpu.clone());
        cmp("gpu", format!("{:?}", self.gpu), format!("{:?}", other.gpu));
        cmp("threads", self.threads.to_string(), other.threads.to_string());
        cmp("execution provider", self.ep.name().into(), other.ep.name().into());
        cmp("ONNX Runtime", self.onnxruntime.clone(), other.onnxruntime.clone());
        out
    }
}

impl std::fmt::Display for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.cpu)?;
        if let Some(gpu) = &self.gpu {
            write!(f, ", {gpu}")?;
        }
        write!(f, ", ONNX Runtime {} on {}, {} thread(s)", self.onnxruntime, self.ep.name(), self.threads)
    }
}

/// How the table was measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Method {
    pub warmup: usize,
    pub runs: usize,
    /// Copies in the long chain of a piece that keeps its shape.
    pub chain: usize,
    /// What each number is, in words.
    pub description: String,
}

/// How a piece's latency was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Timing {
    /// The difference of chains of 1 and `chain` copies, divided by `chain - 1` (pieces that keep
    /// their shape).
    Chain,
    /// Timed alone, minus the run overhead.
    Alone,
}

impl std::fmt::Display for Timing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            Timing::Chain => "chain",
            Timing::Alone => "alone",
        })
    }
}

/// The measured latency of one piece.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The piece's name (see `pwsnas_models::PieceKey`), e.g. `stage1/nor_conv_3x3`.
    pub piece: String,
    /// `[channels, height, width]` of its input.
    pub input: [usize; 3],
    pub method: Timing,
    /// The piece's latency (milliseconds, batch 1): what a prediction adds per occurrence.
    pub ms: f64,
    /// Median latency of each model that was timed for it (one copy, then the chain).
    pub timed_ms: Vec<f64>,
}

/// A whole child timed as one model, to calibrate the sum of its pieces.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CalibrationChild {
    pub arch: String,
    /// Median latency of the child's model.
    pub measured_ms: f64,
    /// The run overhead plus the entries of its pieces.
    pub pieces_ms: f64,
}

/// `latency_table.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatencyTable {
    pub format: u32,
    pub space: SpaceId,
    pub machine: Machine,
    /// Seconds since the Unix epoch.
    pub built_at: u64,
    /// Share of the machine's CPU time that other processes used while the table was measured (0
    /// to 1; a busy machine inflates every entry).
    pub busy_elsewhere: Option<f64>,
    /// How much a whole child's median latency varied between fresh sessions while the table was
    /// measured (median over the calibration children of slowest / fastest − 1): a floor under the
    /// error of any prediction from this table.
    pub session_spread: Option<f64>,
    pub method: Method,
    /// What one run of a model costs with next to no work in it (batch 1, the network's input).
    pub overhead_ms: f64,
    pub entries: Vec<Entry>,
    pub calibration: Vec<CalibrationChild>,
    /// Median of `measured - pieces` over the calibration children: what fusion across pieces and
    /// memory traffic add (or save) in a whole model. Part of every prediction.
    pub correction_ms: f64,
}

/// A table with where it came from.
pub struct Obtained {
    pub table: LatencyTable,
    /// The file it was read from or written to.
    pub path: PathBuf,
    pub reused: bool,
    /// Why existing tables were not reused (one line per file looked at).
    pub mismatches: Vec<String>,
}

/// What table to get.
pub struct Request<'a> {
    pub kind: &'a SpaceKind,
    pub cfg: SessionConfig,
    /// `--ort-lib`.
    pub ort_lib: Option<&'a Path>,
    /// Measure anew even when a matching table exists.
    pub rebuild: bool,
    pub build: BuildOptions,
    /// Another file to look at first (a run's copy).
    pub first: Option<PathBuf>,
}

/// `$PWSNAS_HOME/latency`, default `~/.cache/pwsnas/latency`.
pub fn cache_dir() -> Result<PathBuf> {
    let home = match std::env::var_os("PWSNAS_HOME").filter(|h| !h.is_empty()) {
        Some(h) => PathBuf::from(h),
        None => {
            let user = std::env::var_os("HOME").context(
                "neither PWSNAS_HOME nor HOME is set: set PWSNAS_HOME to a folder for pwsnas's cache",
            )?;
            PathBuf::from(user).join(".cache").join("pwsnas")
        }
    };
    Ok(home.join("latency"))
}

/// The cache file of a space on a machine: `<space>-<hash of space and machine>.json`.
pub fn file_name(space: &SpaceId, machine: &Machine) -> String {
    let key = json!({ "format": TABLE_FORMAT, "space": space, "machine": machine }).to_string();
    // FNV-1a, 64 bits: stable across Rust versions, unlike `DefaultHasher`.
    let hash =
        key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    format!("{}-{hash:016x}.json", space.space)
}

/// The latency table in the bytes of the file `path`: its format first (a table of another format
/// is rebuilt, not misread), then every field; the error says why not.
pub fn parse(path: &Path, bytes: &[u8]) -> std::result::Result<LatencyTable, String> {
    let raw: Value = serde_json::from_slice(bytes)
        .map_err(|e| format!("{} is not valid: expected the JSON pwsnas writes: {e}", path.display()))?;
    let format = raw.get("format").and_then(Value::as_u64);
    if format != Some(u64::from(TABLE_FORMAT)) {
        return Err(format!(
            "{} has table format {}, this pwsnas writes format {TABLE_FORMAT}",
            path.display(),
            format.map_or("(none)".into(), |f| f.to_string())
        ));
    }
    serde_json::from_value(raw).map_err(|e| format!("{} is not a valid latency table: {e}", path.display()))
}

/// Whether the table at `path` fits `space` and `machine`: `Ok(table)` if so, else why not.
pub fn check_file(
    path: &Path,
    space: &SpaceId,
    machine: &Machine,
) -> std::result::Result<LatencyTable, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let table = parse(path, &bytes)?;
    if &table.space != space {
        return Err(format!(
            "{} is for {} with params {}, not {} with params {}",
            path.display(),
            table.space.space,
            table.space.params,
            space.space,
            space.params
        ));
    }
    let diffs = table.machine.differences(machine);
    if !diffs.is_empty() {
        return Err(format!("{} was measured with other settings ({})", path.display(), diffs.join("; ")));
    }
    Ok(table)
}

/// The table for `req`: a matching one (the `first` file, then the cache) unless `rebuild`, else a
/// new measurement written to the cache. Says on `progress` which it was and why.
pub fn obtain(req: &Request<'_>, progress: &Progress) -> Result<Obtained> {
    let rt = ort_runtime::runtime(req.ort_lib, req.cfg.ep)?;
    let space = SpaceId::of(req.kind);
    let machine = Machine::current(rt, req.cfg);
    let dir = cache_dir()?;
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the latency-table cache {}", dir.display()))?;
    let path = dir.join(file_name(&space, &machine));
    let lock_path = path.with_extension("lock");
    let lock = File::create(&lock_path).with_context(|| format!("cannot create {}", lock_path.display()))?;
    // Waits while another process builds this table; released when `lock` is dropped.
    lock.lock().with_context(|| format!("cannot lock {}", lock_path.display()))?;

    let mut mismatches = Vec::new();
    if !req.rebuild {
        for candidate in req.first.iter().chain([&path]).filter(|p| p.exists()) {
            let usable = check_file(candidate, &space, &machine).and_then(|table| {
                // A table without an entry for some piece of the space cannot predict: measure anew.
                super::Predictor::new(&table, req.kind)
                    .map(|_| table)
                    .map_err(|e| format!("{}: {e:#}", candidate.display()))
            });
            match usable {
                Ok(table) => {
                    progress.info(format!("latency table: reusing {} ({machine})", candidate.display()));
                    return Ok(Obtained { table, path: candidate.clone(), reused: true, mismatches });
                }
                Err(why) => mismatches.push(why),
            }
        }
    }
    for why in &mismatches {
        progress.info(format!("latency table: not reused: {why}"));
    }
    progress.info(format!("latency table: measuring the pieces of the {} space ({machine})", space.space));
    let table = measure::build(rt, req.cfg, req.kind, &space, machine, req.build, progress)?;
    write_json(&path, &table)?;
    progress.info(format!(
        "latency table: {} entries, run overhead {:.4} ms, calibration correction {:+.4} ms; saved to {}",
        table.entries.len(),
        table.overhead_ms,
        table.correction_ms,
        path.display()
    ));
    if let Some(spread) = table.session_spread.filter(|s| *s > SPREAD) {
        progress.info(format!(
            "warning: on this machine and setting, the same model's median latency varied by {:.0}% from one ONNX \
             Runtime session to the next; predictions cannot be more accurate than that{}",
            spread * 100.0,
            if req.cfg.threads > 1 { " (fewer --threads are often steadier)" } else { "" }
        ));
    }
    if let Some(busy) = table.busy_elsewhere.filter(|b| *b > BUSY) {
        progress.info(format!(
            "warning: other processes used {:.0}% of the CPU time while the table was measured: its entries are \
             likely too high; rerun `pwsnas latency-table ... --rebuild` when the machine is quiet",
            busy * 100.0
        ));
    }
    Ok(Obtained { table, path, reused: false, mismatches })
}

/// Writes `table` to `path` unless the file there already holds it.
pub fn keep_copy(table: &LatencyTable, path: &Path) -> Result<()> {
    if path.exists() && read_json::<LatencyTable>(path).is_ok_and(|t| &t == table) {
        return Ok(());
    }
    write_json(path, table)
}

/// Above this share of CPU time used by other processes, a new table comes with a warning.
const BUSY: f64 = 0.1;

/// Above this variation between sessions (see [`LatencyTable::session_spread`]), a new table comes
/// with a warning.
const SPREAD: f64 = 0.15;

/// Refuses a table that is not for `kind`.
pub fn check_space(table: &LatencyTable, kind: &SpaceKind) -> Result<()> {
    let id = SpaceId::of(kind);
    if table.space != id {
        bail!(
            "the latency table is for {} with params {}, not {} with params {}",
            table.space.space,
            table.space.params,
            id.space,
            id.params
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine() -> Machine {
        Machine {
            cpu: "Test CPU (2 logical CPUs)".into(),
            gpu: None,
            threads: 2,
            ep: Ep::Cpu,
            onnxruntime: "1.31.1".into(),
        }
    }

    fn table(space: SpaceId) -> LatencyTable {
        LatencyTable {
            format: TABLE_FORMAT,
            space,
            machine: machine(),
            built_at: 0,
            busy_elsewhere: Some(0.01),
            session_spread: Some(0.02),
            method: Method { warmup: 1, runs: 2, chain: 8, description: "test".into() },
            overhead_ms: 0.01,
            entries: Vec::new(),
            calibration: Vec::new(),
            correction_ms: 0.0,
        }
    }

    #[test]
    fn file_names_depend_on_space_and_machine_only() {
        let space = SpaceId::of(&SpaceKind::by_name("nb201").unwrap());
        let name = file_name(&space, &machine());
        assert!(name.starts_with("nb201-") && name.ends_with(".json"), "{name}");
        assert_eq!(name, file_name(&space, &machine()));
        let other = Machine { threads: 1, ..machine() };
        assert_ne!(name, file_name(&space, &other));
        let mobile = SpaceId::of(&SpaceKind::by_name("mobile").unwrap());
        assert_ne!(name, file_name(&mobile, &machine()));
    }

    #[test]
    fn a_table_is_reused_only_for_its_space_machine_and_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json");
        let space = SpaceId::of(&SpaceKind::by_name("nb201").unwrap());
        write_json(&path, &table(space.clone())).unwrap();
        assert_eq!(check_file(&path, &space, &machine()).unwrap(), table(space.clone()));

        let other = Machine { cpu: "Other CPU".into(), threads: 1, ..machine() };
        let why = check_file(&path, &space, &other).unwrap_err();
        assert!(
            why.contains("cpu: Test CPU (2 logical CPUs) vs Other CPU") && why.contains("threads: 2 vs 1"),
            "{why}"
        );

        let mobile = SpaceId::of(&SpaceKind::by_name("mobile").unwrap());
        assert!(check_file(&path, &mobile, &machine()).unwrap_err().contains("is for nb201"));

        let mut old = serde_json::to_value(table(space.clone())).unwrap();
        old["format"] = json!(0);
        write_json(&path, &old).unwrap();
        assert!(check_file(&path, &space, &machine()).unwrap_err().contains("table format 0"));
    }

    #[test]
    fn an_unknown_execution_provider_or_timing_is_refused_with_the_valid_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json");
        let space = SpaceId::of(&SpaceKind::by_name("nb201").unwrap());
        let mut t = serde_json::to_value(table(space.clone())).unwrap();
        assert_eq!(t["machine"]["ep"], "cpu");
        t["machine"]["ep"] = json!("gpu");
        write_json(&path, &t).unwrap();
        let why = check_file(&path, &space, &machine()).unwrap_err();
        assert!(
            why.contains("not a valid latency table: unknown variant `gpu`, expected `cpu` or `cuda`"),
            "{why}"
        );
        t["machine"]["ep"] = json!("cpu");
        t["entries"] =
            json!([{ "piece": "stem", "input": [1, 8, 8], "method": "guess", "ms": 0.1, "timed_ms": [] }]);
        write_json(&path, &t).unwrap();
        let why = check_file(&path, &space, &machine()).unwrap_err();
        assert!(why.contains("unknown variant `guess`, expected `chain` or `alone`"), "{why}");
    }
}
