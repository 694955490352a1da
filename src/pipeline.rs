//! `pwsnas search`: supernet → shrink → search method → retrain, each stage skipped when done. The
//! method (`search.method`, [`crate::method`]) decides which of the first three it runs: SPOS or
//! FairNAS evolution over the shrinking supernet, or a gradient-based method on the space shrinking
//! leaves (no shrinking supernet at all with `--shrink none`).
//!
//! The constraints (`--max-flops`, `--max-params`, `--max-latency-ms`) are checked before anything
//! trains: a space without a child that meets them is refused at once, naming the smallest FLOPs,
//! parameters and latency it reaches ([`checked_constraints`], also used by `pwsnas supernet` and
//! `pwsnas shrink`), instead of after hours of supernet training.
//!
//! The search stage always gets a latency predictor when it can: the latency table of the run's
//! space for the search's latency settings (`search.latency_threads`, `search.latency_ep`) is reused
//! or measured (a few seconds) before the supernet trains, kept in the run as `latency_table.json`,
//! and every evaluated child's predicted latency goes into `search.json`. With `--max-latency-ms`
//! the table is required; without it, a table that cannot be had (no ONNX Runtime) only costs the
//! predictions, and the search says so.
//!
//! With a benchmark table (`--benchmark`, nb201 only) the table is read and checked against the
//! space before anything trains, and the finished search is annotated with it
//! ([`crate::benchmark::annotate`]). With `retrain.epochs = 0` the run ends after its search: a
//! run judged by a benchmark needs no retraining, and `pwsnas export` then refuses it.
use std::path::Path;

use anyhow::{Context, Result};
use pwsnas_models::SpaceKind;
use serde_json::json;
use tch::Device;

use crate::data::RunData;
use crate::fsutil::read_json;
use crate::latency::table::{self, keep_copy, Request, RUN_COPY};
use crate::latency::{default_threads, Predictor};
use crate::ort_runtime::{Ep, SessionConfig};
use crate::progress::Progress;
use crate::retrain::{self, RetrainResult};
use crate::run::{RunDir, Stage};
use crate::search::constraints::{Constraints, TableRef};
use crate::search::ArchFile;
use crate::settings::Settings;
use crate::train::derive_seed;
use crate::{benchmark, device, method, supernet};

/// The ONNX Runtime setting the search predicts latencies for.
pub fn latency_config(settings: &Settings) -> SessionConfig {
    let s = &settings.search;
    SessionConfig {
        ep: s.latency_ep.unwrap_or(Ep::Cpu),
        threads: s.latency_threads.unwrap_or_else(default_threads),
    }
}

/// The constraints of the run's search settings, with the latency predictor of `kind` (see the
/// module docs); with `predictions` false, the predictor is only obtained when `--max-latency-ms`
/// needs it.
pub fn constraints(
    run: &RunDir,
    kind: &SpaceKind,
    predictions: bool,
    progress: &Progress,
) -> Result<Constraints> {
    let s = &run.info.settings.search;
    let mut constraints = Constraints {
        max_flops: s.max_flops,
        max_params: s.max_params,
        max_latency_ms: s.max_latency_ms,
        predictor: None,
        latency_table: None,
    };
    if !predictions && s.max_latency_ms.is_none() {
        return Ok(constraints);
    }
    let request = Request {
        kind,
        cfg: latency_config(&run.info.settings),
        ort_lib: None,
        rebuild: false,
        build: Default::default(),
        first: Some(run.path(RUN_COPY)),
    };
    let predictor = table::obtain(&request, progress).and_then(|got| {
        let predictor = Predictor::new(&got.table, kind)
            .with_context(|| format!("latency table {}", got.path.display()))?;
        keep_copy(&got.table, &run.path(RUN_COPY))?;
        let source = TableRef {
            path: got.path.display().to_string(),
            machine: got.table.machine.clone(),
            built_at: got.table.built_at,
        };
        Ok((predictor, source))
    });
    match predictor {
        Ok((predictor, source)) => {
            constraints.predictor = Some(predictor);
            constraints.latency_table = Some(source);
        }
        Err(e) if s.max_latency_ms.is_none() => {
            progress.info(format!("search: predicted latencies will not be recorded: {e:#}"));
        }
        Err(e) => return Err(e.context("--max-latency-ms needs the latency table of the run's space")),
    }
    Ok(constraints)
}

/// The run's constraints (see [`constraints`]), checked against the space the run starts from
/// before anything trains: refused when no child meets them, else the admissible share is printed.
pub fn checked_constraints(
    run: &RunDir,
    data: &RunData,
    predictions: bool,
    progress: &Progress,
) -> Result<Constraints> {
    let settings = &run.info.settings;
    let kind = supernet::space_kind(settings, data)?;
    let constraints = constraints(run, &kind, predictions, progress)?;
    if constraints.is_active() {
        let space = supernet::initial_space(settings, &kind)?;
        let found = constraints
            .require_admissible(&space, derive_seed(settings.seed, "constraints", 0))
            .context("checking the constraints before training")?;
        progress.info(format!(
            "constraints: {} of the space meet {}",
            found.describe(space.size() as f64),
            constraints.describe()
        ));
    }
    Ok(constraints)
}

/// Runs (or resumes) every stage of a search into `out`. With `retrain.epochs = 0` the run ends
/// after its search (no retrained child: `None`).
pub fn search(
    out: &Path,
    settings: &Settings,
    device: Device,
    force: bool,
    progress: &Progress,
) -> Result<Option<RetrainResult>> {
    settings.validate()?;
    let mut run = RunDir::open_or_create(out, settings, &device::name(device), force)?;
    progress.attach_events(&run.path("events.jsonl"))?;
    let data = RunData::load(settings)?;
    progress.info(format!(
        "data: {} — {} train / {} validation / {} test images of {:?}",
        data.name,
        data.train.len(),
        data.val.len(),
        data.test.len(),
        data.shape()
    ));
    // Read (and checked against the space) before anything trains.
    let benchmark = benchmark::for_run(settings, &supernet::space_kind(settings, &data)?)?;
    let mut arch: ArchFile = if run.is_done(Stage::Search) {
        read_json(&run.path("arch.json"))?
    } else {
        let constraints = checked_constraints(&run, &data, true, progress)?;
        // The method trains what it trains (a shrinking supernet, or a network of its own on the
        // space shrinking leaves) and finds the child (see `crate::method`).
        let arch = method::run_stage(&mut run, &data, device, constraints, progress)?;
        if let Some(ms) = arch.predicted_latency_ms {
            progress.info(format!(
                "search: predicted ONNX Runtime latency of {}: {ms:.4} ms at batch 1{}",
                arch.arch,
                settings.search.max_latency_ms.map(|m| format!(" (budget {m} ms)")).unwrap_or_default()
            ));
        }
        arch
    };
    if let Some(table) = &benchmark {
        let found = benchmark::annotate(&run, table)?;
        progress.info(format!("search: {} — {}", arch.arch, benchmark::describe(&found)));
        progress.event("benchmark", json!(found));
        arch.benchmark = Some(found);
    }
    if settings.retrain.epochs == 0 {
        // A run judged by a benchmark table need not retrain (how NAS-Bench-201 studies run).
        progress.info("retrain: skipped (retrain.epochs = 0); the run ends with its search");
        progress.event(
            "search_finished",
            json!({ "run": out, "arch": arch.arch, "retrained": false, "benchmark": arch.benchmark }),
        );
        return Ok(None);
    }
    let result = retrain::run_stage(&mut run, &arch, &data, device, progress)?;
    progress.event(
        "search_finished",
        json!({ "run": out, "arch": result.arch, "test_accuracy": result.test_accuracy, "benchmark": arch.benchmark }),
    );
    Ok(Some(result))
}
