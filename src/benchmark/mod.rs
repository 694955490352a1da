//! NAS-Bench-201 inside pwsnas: a tabular benchmark as a source of truth for nb201 runs.
//!
//! NAS-Bench-201 (Dong & Yang, "NAS-Bench-201: Extending the Scope of Reproducible Neural
//! Architecture Search", ICLR 2020) trained every one of the 15,625 cells of the nb201 space
//! stand-alone. NAS researchers judge a search by looking its cell up there instead of retraining
//! it, and judge a ranking metric by its agreement with the table. This module gives pwsnas the
//! same: [`table`] reads an open CSV form of such a table (one row per cell; `pwsnas benchmark
//! import` writes it from the official files, see [`import`]), and [`Lookup`] is what a run
//! records of its cells with `--benchmark FILE[#COLUMN]`:
//!
//! - `search.json`: each evaluated child's benchmark value;
//! - `arch.json` (then `report.json`, the report pages, `pwsnas compare` and `pwsnas sweep
//!   report`): the found cell's value, its rank among the table's cells, the best and the mean cell.
//!
//! The annotation is a pass over a finished search stage ([`annotate`]), not part of it: the
//! benchmark never shapes what the search does, so it is not in any stage's fingerprint, and
//! rerunning `pwsnas search` with `--benchmark` on a finished run adds the lookups to it.
pub mod import;
pub mod table;

use anyhow::{bail, Context, Result};
use pwsnas_models::SpaceKind;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::fsutil::{read_json, write_json};
use crate::run::RunDir;
use crate::settings::Settings;
pub use table::{Table, TableRef};

/// A cell looked up in a benchmark table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Lookup {
    /// The table file and the column that counts, as the settings name them.
    pub table: String,
    pub column: String,
    /// The cell's value in that column (top-1 in %).
    pub accuracy: f64,
    /// 1 + the number of the table's cells with a higher value.
    pub rank: usize,
    /// Cells in the table.
    pub cells: usize,
    pub best_accuracy: f64,
    pub best_arch: String,
    pub mean_accuracy: f64,
}

impl Table {
    /// The cell `arch` (a canonical arch string) in this table.
    pub fn lookup(&self, arch: &str) -> Option<Lookup> {
        let accuracy = self.value(arch)?;
        Some(Lookup {
            table: self.path.display().to_string(),
            column: self.column.clone(),
            accuracy,
            rank: self.rank_of(accuracy),
            cells: self.len(),
            best_accuracy: self.best.1,
            best_arch: self.best.0.clone(),
            mean_accuracy: self.mean,
        })
    }
}

/// The benchmark table of `settings` (none without `benchmark`), read and checked against the
/// run's space `kind`.
pub fn for_run(settings: &Settings, kind: &SpaceKind) -> Result<Option<Table>> {
    let Some(spec) = &settings.benchmark else { return Ok(None) };
    let r: TableRef = spec.parse().context("setting benchmark")?;
    let table = Table::read(&r)?;
    table.check_covers(kind)?;
    Ok(Some(table))
}

/// Adds the benchmark's values to the finished search stage of `run`: each evaluated child of
/// `search.json` (key `benchmark`) and the found cell in `arch.json` (a [`Lookup`]). Returns the
/// found cell's lookup.
pub fn annotate(run: &RunDir, table: &Table) -> Result<Lookup> {
    let arch_path = run.path("arch.json");
    let mut arch: Value = read_json(&arch_path)?;
    let text =
        arch["arch"].as_str().with_context(|| format!("{} has no arch", arch_path.display()))?.to_string();
    let Some(found) = table.lookup(&text) else {
        bail!(
            "the found cell {text} is not in the benchmark table {}: the table must cover the run's space",
            table.path.display()
        );
    };
    let search_path = run.path("search.json");
    if search_path.exists() {
        let mut search: Value = read_json(&search_path)?;
        for child in search["evaluated"].as_array_mut().into_iter().flatten() {
            let value = child["arch"].as_str().and_then(|a| table.value(a));
            child["benchmark"] = value.map_or(Value::Null, Value::from);
        }
        write_json(&search_path, &search)?;
    }
    arch["benchmark"] = serde_json::to_value(&found)?;
    write_json(&arch_path, &arch)?;
    Ok(found)
}

/// One line about a looked-up cell, for people.
pub fn describe(l: &Lookup) -> String {
    format!(
        "benchmark {}: {:.2} % (rank {} of {}; best cell {:.2} %, mean {:.2} %)",
        l.column, l.accuracy, l.rank, l.cells, l.best_accuracy, l.mean_accuracy
    )
}

/// A looked-up cell as a sentence for the report pages.
pub fn sentence(l: &Lookup) -> String {
    format!(
        "In the benchmark table {} (column {}), this cell scores {:.2} %, rank {} of {} cells; the best cell scores {:.2} % ({}), the mean cell {:.2} %.",
        l.table, l.column, l.accuracy, l.rank, l.cells, l.best_accuracy, l.best_arch, l.mean_accuracy
    )
}
