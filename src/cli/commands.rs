//! What each command does once its flags are parsed: thin glue between the flags and the stages,
//! printing for people or, with `--json`, for programs.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use pwsnas_models::{Space, SpaceKind};
use pwsnas_onnx::Lowering;
use serde_json::json;

use super::args::{
    args_over_run, settings_for, ExportArgs, LatencyTableArgs, OrtArgs, RunArgs, SettingsArgs, SpaceShapeArgs,
};
use crate::data::RunData;
use crate::eval::Evaluator;
use crate::fsutil::read_json;
use crate::infer::Classifier;
use crate::ort_runtime::SessionConfig;
use crate::progress::Progress;
use crate::run::RunDir;
use crate::search::ArchFile;
use crate::settings::Settings;
use crate::timing::{Plan, Protocol};
use crate::{device, pipeline, retrain, supernet};

/// The space of a run: its (shrunk) space.json, else the full space of its settings fitted to its data.
fn run_space(dir: &Path) -> Result<Space> {
    let run = RunDir::open(dir)?;
    let space_json = run.path("space.json");
    if space_json.exists() {
        return Space::from_json(read_json(&space_json)?)
            .with_context(|| format!("{} does not hold a valid space", space_json.display()));
    }
    let data = RunData::load(&run.info.settings)?;
    Ok(Space::full(supernet::space_kind(&run.info.settings, &data)?))
}

/// The space kind `pwsnas search` would use with these flags; the input shape and classes come from
/// the data unless a shape flag gives them.
fn flag_space_kind(
    config: Option<&Path>,
    space: Option<String>,
    data: Option<String>,
    image_size: Option<usize>,
    shape: &SpaceShapeArgs,
) -> Result<SpaceKind> {
    let args = SettingsArgs {
        config: config.map(Path::to_path_buf),
        space,
        data,
        image_size,
        shape: shape.clone(),
        ..SettingsArgs::default()
    };
    let settings = args.resolve(Settings::default())?;
    let params = serde_json::Value::Object(settings.space_params.clone());
    let kind = SpaceKind::from_params(&settings.space, params)
        .with_context(|| format!("space '{}' with space_params", settings.space))?;
    if shape.input_size.is_some() || shape.input_channels.is_some() || shape.classes.is_some() {
        return Ok(kind);
    }
    let data = RunData::load(&settings)?;
    supernet::space_kind(&settings, &data)
}

pub fn infer(model: &Path, images: &[PathBuf], top: usize, ort: &OrtArgs, json_out: bool) -> Result<()> {
    if top == 0 {
        anyhow::bail!("--top 0: expected at least 1");
    }
    let threads = ort.threads.unwrap_or_else(|| tch::get_num_threads().max(1) as usize);
    let mut classifier =
        Classifier::load(model, ort.ort_lib.as_deref(), SessionConfig { ep: ort.ep, threads })?;
    let results = classifier.classify(images, top)?;
    if json_out {
        println!("{}", json!({ "model": model, "arch": classifier.info.arch, "results": results }));
        return Ok(());
    }
    for r in &results {
        println!("{}", r.image);
        for p in &r.top {
            println!(
                "  {:>2}. {:<24} {:>7.2}%  (class {}, logit {:.3})",
                p.rank,
                p.class,
                p.probability * 100.0,
                p.index,
                p.logit
            );
        }
    }
    Ok(())
}

pub fn eval(
    dir: &Path,
    arch: &str,
    bn_batches: usize,
    val_images: usize,
    device: &str,
    progress: &Progress,
) -> Result<()> {
    let run = RunDir::open(dir)?;
    let device = device::parse(device)?;
    if !run.supernet_dir().join("last.safetensors").exists() {
        anyhow::bail!(
            "{} has no trained supernet: run `pwsnas supernet --out {}` first",
            dir.display(),
            dir.display()
        );
    }
    let data = RunData::load(&run.info.settings)?;
    let sn = supernet::SupernetRun::open(&run, &data, device)?;
    let child = sn.net.built_space().parse_arch(arch)?;
    let evaluator = Evaluator::new(
        &data,
        bn_batches,
        run.info.settings.supernet.batch_size,
        val_images,
        run.info.settings.seed,
        device,
    );
    let acc = evaluator.accuracy(&sn.net, &child);
    let in_space = sn.space.contains(&child);
    if progress.json() {
        println!(
            "{}",
            json!({ "arch": arch, "accuracy": acc, "val_images": evaluator.images(), "in_current_space": in_space })
        );
    } else {
        println!(
            "{arch}: accuracy {acc:.4} on {} validation images (supernet after epoch {})",
            evaluator.images(),
            sn.state.epoch
        );
        if !in_space {
            println!("note: this child is outside the run's current (shrunk) space");
        }
    }
    Ok(())
}

pub fn arch_info(
    space: &str,
    arch: &str,
    svg: Option<&Path>,
    shape: &SpaceShapeArgs,
    progress: &Progress,
) -> Result<()> {
    let mut params = serde_json::Map::new();
    shape.apply(&mut params);
    let kind = SpaceKind::from_params(space, serde_json::Value::Object(params))?;
    let child = kind.parse_arch(arch)?;
    let cost = kind.cost(&child);
    if let Some(path) = svg {
        crate::fsutil::write_atomic(path, crate::report::drawing::of_child(&kind, &child).as_bytes())?;
    }
    if progress.json() {
        println!(
            "{}",
            json!({ "space": kind.name(), "params": kind.params_json(), "arch": kind.format_arch(&child),
                    "params_count": cost.params(), "flops": cost.flops(), "layers": cost.layers,
                    "svg": svg.map(|p| p.display().to_string()) })
        );
        return Ok(());
    }
    println!("space: {} {}", kind.name(), kind.params_json());
    println!("arch:  {}", kind.format_arch(&child));
    println!("{:<32} {:<22} {:>16} {:>12} {:>14}", "layer", "kind", "output", "params", "FLOPs");
    for l in &cost.layers {
        println!(
            "{:<32} {:<22} {:>16} {:>12} {:>14}",
            l.name,
            l.kind,
            format!("{}×{}×{}", l.output[0], l.output[1], l.output[2]),
            l.params,
            l.flops
        );
    }
    println!(
        "params: {} ({:.3} M)   FLOPs: {} ({:.2} M multiply-adds)",
        cost.params(),
        cost.params() as f64 / 1e6,
        cost.flops(),
        cost.flops() as f64 / 1e6
    );
    if let Some(path) = svg {
        println!("drawing: {}", path.display());
    }
    Ok(())
}

pub fn search(out: &Path, args: &SettingsArgs, run: &RunArgs, progress: &Progress) -> Result<()> {
    let settings = settings_for(out, args)?;
    let device = device::parse(&run.device)?;
    match crate::pipeline::search(out, &settings, device, run.force, progress)? {
        Some(result) => progress.info(format!(
            "\ndone: {} — test accuracy {:.4} after {} retraining epochs (seed {}).\nnext: pwsnas export {}",
            result.arch,
            result.test_accuracy,
            result.epochs,
            settings.seed,
            out.display()
        )),
        None => progress.info(format!(
            "\ndone: the search's cell is in {}/arch.json (not retrained: retrain.epochs = 0, seed {}).",
            out.display(),
            settings.seed
        )),
    }
    Ok(())
}

/// Opens (or creates) a run for a stage command and loads its data.
fn open_run(
    dir: &Path,
    settings: &Settings,
    run: &RunArgs,
    progress: &Progress,
) -> Result<(RunDir, RunData, tch::Device)> {
    let device = device::parse(&run.device)?;
    let r = RunDir::open_or_create(dir, settings, &device::name(device), run.force)?;
    progress.attach_events(&r.path("events.jsonl"))?;
    let data = RunData::load(settings)?;
    Ok((r, data, device))
}

pub fn supernet(out: &Path, args: &SettingsArgs, run: &RunArgs, progress: &Progress) -> Result<()> {
    let (mut r, data, device) = open_run(out, &settings_for(out, args)?, run, progress)?;
    pipeline::checked_constraints(&r, &data, false, progress)?;
    supernet::run_stage(&mut r, &data, device, progress)?;
    Ok(())
}

pub fn shrink(dir: &Path, args: &SettingsArgs, run: &RunArgs, progress: &Progress) -> Result<()> {
    let (mut r, data, device) = open_run(dir, &args_over_run(dir, args)?, run, progress)?;
    let constraints = pipeline::checked_constraints(&r, &data, false, progress)?;
    let mut sn = supernet::run_stage(&mut r, &data, device, progress)?;
    let space = crate::shrink::run_stage(&mut r, &mut sn, &data, device, &constraints, progress)?;
    progress.info(format!(
        "space: {} children (log10 {:.2}) in {}",
        space.size(),
        space.log10_size(),
        r.path("space.json").display()
    ));
    Ok(())
}

/// `pwsnas train`: retrains the run's arch.json, or the one in `arch` (which replaces it; a finished
/// retraining of another arch is only redone with `--force`).
pub fn train(
    dir: &Path,
    arch: Option<&Path>,
    args: &SettingsArgs,
    run: &RunArgs,
    progress: &Progress,
) -> Result<()> {
    let settings = args_over_run(dir, args)?;
    if settings.retrain.epochs == 0 {
        anyhow::bail!(
            "setting retrain.epochs is 0 for {} (a run judged by its benchmark table): pass --retrain-epochs N to retrain its cell",
            dir.display()
        );
    }
    let (mut r, data, device) = open_run(dir, &settings, run, progress)?;
    let arch_file: ArchFile = match arch {
        Some(path) => {
            let a: ArchFile = read_json(path)?;
            let kind = a.kind().with_context(|| format!("{} does not name a valid space", path.display()))?;
            kind.parse_arch(&a.arch).with_context(|| format!("{} holds an invalid arch", path.display()))?;
            let shape = data.shape();
            if kind.input_shape() != shape || kind.classes() != data.classes.len() {
                anyhow::bail!(
                    "{} is for {:?} inputs and {} classes, but the run's data has {:?} and {}",
                    path.display(),
                    kind.input_shape(),
                    kind.classes(),
                    shape,
                    data.classes.len()
                );
            }
            let previous: Option<ArchFile> = read_json(&r.path("arch.json")).ok();
            if previous.as_ref().is_some_and(|p| p.arch != a.arch) && r.is_done(crate::run::Stage::Retrain) {
                if !run.force {
                    anyhow::bail!(
                        "{} already retrained {}; pass --force to retrain {} instead",
                        dir.display(),
                        previous.map(|p| p.arch).unwrap_or_default(),
                        a.arch
                    );
                }
                r.discard(crate::run::Stage::Retrain)?;
                r.save()?;
            }
            crate::fsutil::write_json(&r.path("arch.json"), &a)?;
            a
        }
        None => read_json(&r.path("arch.json"))
            .context("the run has no arch.json: finish `pwsnas search` or pass --arch FILE")?,
    };
    let result = retrain::run_stage(&mut r, &arch_file, &data, device, progress)?;
    progress.event("retrain_done", json!(result));
    Ok(())
}

pub fn data_inspect(data: &str, image_size: Option<usize>, json_out: bool) -> Result<()> {
    let spec: pwsnas_datasets::DataSpec = data.parse()?;
    let opts = pwsnas_datasets::LoadOptions { image_size: image_size.map(|s| (s, s)), ..Default::default() };
    let splits = pwsnas_datasets::load(&spec, &opts)?;
    let summary = pwsnas_datasets::summary(&splits);
    let first: Vec<u32> = splits.test.labels.iter().take(10).copied().collect();
    if json_out {
        println!("{}", json!({ "summary": summary, "first_test_labels": first }));
    } else {
        println!("{summary}");
        println!("first test labels: {}", first.iter().map(u32::to_string).collect::<Vec<_>>().join(" "));
    }
    Ok(())
}

pub fn doctor(json_out: bool) -> Result<()> {
    let report = crate::doctor::report();
    if json_out {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}

pub fn export(args: &ExportArgs, progress: &Progress) -> Result<()> {
    let dir = &args.dir;
    let opts = crate::export::ExportOptions {
        ep: args.ort.ep,
        threads: args.ort.threads,
        ort_lib: args.ort.ort_lib.clone(),
        tolerance: args.tolerance,
        timing: Protocol {
            sessions: usize::from(args.latency_sessions),
            plan: Plan { warmup: args.warmup, runs: args.latency_runs },
            min_session_ms: args.latency_session_ms,
        },
        device: args.device.clone(),
        parity_images: args.parity_images,
        lowering: if args.no_optimize { Lowering::Plain } else { Lowering::Optimized },
        precision: args.precision.into(),
        max_accuracy_loss_pp: args.max_accuracy_loss,
    };
    let report = crate::export::run(dir, &opts, progress)?;
    if let Some(reason) = report.parity.reason.as_deref().filter(|_| !report.parity.passed) {
        anyhow::bail!(
            "the exported model failed the parity check: {reason}; {} says more (model.onnx was kept for inspection)",
            dir.join("report.md").display()
        );
    }
    if let Some(reason) = report.precision.as_ref().and_then(|c| c.reason.as_deref()) {
        anyhow::bail!(
            "the {} export is refused: {reason}; {} says more (model.onnx was kept for inspection; export in fp32, or allow more with --max-accuracy-loss)",
            report.onnx.precision,
            dir.join("report.md").display()
        );
    }
    progress.info(format!(
        "done: {} passed the parity check; ONNX Runtime test accuracy {:.2}% (libtorch {:.2}%), {:.2}× libtorch's speed at batch 1",
        dir.join("model.onnx").display(),
        report.accuracy.ort * 100.0,
        report.accuracy.libtorch * 100.0,
        report.latency.batch1_speedup
    ));
    Ok(())
}

pub fn compare(
    runs: &[PathBuf],
    out: &Path,
    allow_mixed: bool,
    json_out: bool,
    progress: &Progress,
) -> Result<()> {
    let comparison = crate::compare::compare(runs, allow_mixed)?;
    let paths = crate::compare::write_all(out, &comparison)?;
    if json_out {
        println!("{}", serde_json::to_string(&comparison)?);
    } else {
        print!("{}", crate::compare::render::markdown(&comparison));
    }
    progress.info(format!(
        "written: {}",
        paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    ));
    Ok(())
}

/// `pwsnas latency-table`: the space from a run, a space.json or the search flags.
pub fn latency_table(args: &LatencyTableArgs, progress: &Progress) -> Result<()> {
    let space = match (&args.dir, &args.space_file) {
        (Some(dir), _) => run_space(dir)?,
        (None, Some(file)) => Space::from_json(read_json(file)?)
            .with_context(|| format!("{} does not hold a valid space", file.display()))?,
        (None, None) => Space::full(flag_space_kind(
            args.config.as_deref(),
            args.space.clone(),
            args.data.clone(),
            args.image_size,
            &args.shape,
        )?),
    };
    let opts = crate::latency::measure::BuildOptions {
        timing: Protocol {
            sessions: usize::from(args.sessions),
            plan: Plan { warmup: args.warmup, runs: args.runs },
            min_session_ms: 0.0,
        },
        ..Default::default()
    };
    let cfg = SessionConfig {
        ep: args.ort.ep,
        threads: args.ort.threads.unwrap_or_else(crate::latency::default_threads),
    };
    crate::latency::show::latency_table(
        &space,
        cfg,
        args.ort.ort_lib.as_deref(),
        args.rebuild,
        opts,
        args.arch.as_deref(),
        progress,
    )
}

/// `pwsnas benchmark import`.
pub fn benchmark_import(opts: &crate::benchmark::import::ImportOptions, progress: &Progress) -> Result<()> {
    let done = crate::benchmark::import::run(opts)?;
    progress.event("benchmark_imported", json!(done));
    progress.info(format!(
        "wrote {} ({} format): {} cells, columns {}",
        done.out,
        done.format,
        done.rows,
        done.columns.join(", ")
    ));
    Ok(())
}

/// `pwsnas benchmark lookup`: each cell's value and rank, or the table's summary.
pub fn benchmark_lookup(table: &str, archs: &[String], json_out: bool) -> Result<()> {
    let r: crate::benchmark::TableRef = table.parse()?;
    let t = crate::benchmark::Table::read(&r)?;
    let kind =
        pwsnas_models::SpaceKind::new(pwsnas_models::Nb201Params { nodes: t.nodes, ..Default::default() });
    if archs.is_empty() {
        let summary = json!({ "table": t.path, "column": t.column, "cells": t.len(), "nodes": t.nodes,
            "best_arch": t.best.0, "best_accuracy": t.best.1, "mean_accuracy": t.mean });
        if json_out {
            println!("{summary}");
        } else {
            println!(
                "{} column {}: {} cells of {} nodes; best {:.2} % ({}), mean {:.2} %",
                t.path.display(),
                t.column,
                t.len(),
                t.nodes,
                t.best.1,
                t.best.0,
                t.mean
            );
        }
        return Ok(());
    }
    for text in archs {
        let arch = kind
            .parse_arch(text)
            .with_context(|| format!("'{text}' is not a {}-node nb201 cell", t.nodes))?;
        let key = kind.format_arch(&arch);
        let found = t.lookup(&key).with_context(|| format!("{key} is not in {}", t.path.display()))?;
        if json_out {
            println!("{}", json!(found));
        } else {
            println!("{key}: {}", crate::benchmark::describe(&found));
        }
    }
    Ok(())
}
