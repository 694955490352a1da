//! `pwsnas search`: supernet → shrink → search → retrain, each stage skipped when done.
use std::path::Path;

use anyhow::{bail, Result};
use serde_json::json;
use tch::Device;

use crate::data::RunData;
use crate::fsutil::read_json;
use crate::progress::Progress;
use crate::retrain::{self, RetrainResult};
use crate::run::{RunDir, Stage};
use crate::search::constraints::Constraints;
use crate::search::{self, ArchFile};
use crate::settings::Settings;
use crate::{device, shrink, supernet};

/// The constraints of the search settings.
pub fn constraints(settings: &Settings) -> Result<Constraints> {
    let s = &settings.search;
    if s.max_latency_ms.is_some() {
        bail!("--max-latency-ms needs a latency table: build one with `pwsnas latency-table` first");
    }
    Ok(Constraints {
        max_flops: s.max_flops,
        max_params: s.max_params,
        max_latency_ms: s.max_latency_ms,
        predictor: None,
    })
}

/// Runs (or resumes) every stage of a search into `out`.
pub fn search(
    out: &Path,
    settings: &Settings,
    device: Device,
    force: bool,
    progress: &Progress,
) -> Result<RetrainResult> {
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
    let arch: ArchFile = if run.is_done(Stage::Search) {
        read_json(&run.path("arch.json"))?
    } else {
        let constraints = constraints(settings)?;
        let mut sn = supernet::run_stage(&mut run, &data, device, progress)?;
        let space = shrink::run_stage(&mut run, &mut sn, &data, device, progress)?;
        search::run_stage(&mut run, &sn.net, &space, &data, device, constraints, progress)?
    };
    let result = retrain::run_stage(&mut run, &arch, &data, device, progress)?;
    progress.event(
        "search_finished",
        json!({ "run": out, "arch": result.arch, "test_accuracy": result.test_accuracy }),
    );
    Ok(result)
}
