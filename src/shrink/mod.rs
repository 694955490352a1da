//! Progressive search-space shrinking (docs/method.md): score every operator candidate, drop the lowest,
//! give the survivors weight copies (strategy 2), train the supernet further, repeat until the space
//! is small enough. Writes `shrink.json` after every round and `space.json` at the end.
//!
//! Resuming: a round is first written to `shrink.json`, then applied to the supernet checkpoint
//! (space and copies). A run killed between the two finds a round that the checkpoint has not
//! applied yet and applies it; a run killed while training between rounds resumes that training
//! from its last epoch.
pub mod report;
pub mod score;
pub mod sharing;

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use pwsnas_models::Space;
use serde_json::json;
use tch::{Device, Tensor};

use crate::data::RunData;
use crate::eval::Evaluator;
use crate::fsutil::{read_json, write_json};
use crate::progress::Progress;
use crate::run::{RunDir, Stage};
use crate::settings::{Metric, Settings};
use crate::supernet::SupernetRun;
use crate::train::derive_seed;
use crate::train::epoch::Phase;
use report::{Dropped, Params, Round, Sharing, ShrinkReport};
use score::{choose_drops, score_candidates, Scorer, Wanted};

/// Spaces larger than this are not enumerated by `--exhaustive`.
pub const EXHAUSTIVE_LIMIT: u128 = 100_000;

fn new_report(settings: &Settings, space: &Space) -> ShrinkReport {
    let sh = &settings.shrink;
    let candidates = space.choices.iter().map(|c| c.ops.len()).sum();
    let (drop, target) = sh.resolved_drop_and_target(&space.kind, candidates);
    ShrinkReport {
        metric: sh.metric,
        angle_vector: sh.angle_vector,
        samples_per_op: sh.samples_per_op,
        exhaustive: sh.exhaustive,
        score_only: sh.score_only,
        drop_per_round: drop,
        per_choice_point: sh.per_choice_point,
        target_size: target,
        copies: sh.copies,
        initial_space_size: space.size() as f64,
        rounds: Vec::new(),
        final_space_size: None,
        children: Vec::new(),
    }
}

/// Applies a recorded round to the supernet: drops its ops and grows its weight copies.
fn apply_round(sn: &mut SupernetRun, round: &Round) -> Result<()> {
    for d in &round.dropped {
        let cp = sn
            .space
            .choice_point_index(&d.choice_point)
            .with_context(|| format!("shrink.json names an unknown choice point '{}'", d.choice_point))?;
        sn.space.remove(cp, d.op)?;
    }
    for (cp, &k) in round.copies.iter().enumerate() {
        sn.net.grow_copies(cp, k);
    }
    sn.state.rounds_applied += 1;
    Ok(())
}

fn current_tensors(sn: &SupernetRun) -> HashMap<String, Tensor> {
    sn.net.named_tensors().into_iter().collect()
}

/// Scores one round on the current supernet and decides what it drops.
fn score_round(
    sn: &SupernetRun,
    report: &ShrinkReport,
    settings: &Settings,
    evaluator: Option<&Evaluator>,
    w0: &HashMap<String, Tensor>,
    progress: &Progress,
) -> Result<(Round, Vec<report::ChildRecord>)> {
    let sh = &settings.shrink;
    let space = &sn.space;
    let r = report.rounds.len();
    if sh.exhaustive && space.size() > EXHAUSTIVE_LIMIT {
        bail!(
            "--exhaustive scores every child, but the space has {} children (more than {EXHAUSTIVE_LIMIT}); use --samples-per-op instead",
            space.size()
        );
    }
    let wanted = if sh.score_only { Wanted::all() } else { Wanted::for_metric(sh.metric, sh.angle_vector) };
    let current = current_tensors(sn);
    let mut scorer = Scorer::new(&sn.net, w0, &current, evaluator, wanted);
    let cps: Vec<usize> =
        (0..space.choices.len()).filter(|&cp| sh.score_only || space.choices[cp].ops.len() > 1).collect();
    let start = Instant::now();
    let candidates = score_candidates(
        &mut scorer,
        space,
        &cps,
        sh.metric,
        sh.angle_vector,
        sh.samples_per_op,
        sh.exhaustive,
        derive_seed(settings.seed, "shrink", r as u64),
        progress,
    );
    let seconds = start.elapsed().as_secs_f64();
    let drops = if sh.score_only {
        Vec::new()
    } else {
        choose_drops(space, &candidates, report.drop_per_round, sh.per_choice_point)
    };
    let mut after = space.clone();
    for &(cp, op) in &drops {
        after.remove(cp, op)?;
    }
    let original = sharing::effective_params(&sn.net, sn.net.built_space(), &vec![1; space.choices.len()]);
    let before_copies = sn.net.copies().to_vec();
    let copies = if sh.score_only {
        before_copies.clone()
    } else {
        sharing::plan_copies(&sn.net, &after, &before_copies, sh.copies, original)
    };
    let round = Round {
        round: r,
        epoch: sn.state.epoch,
        space_size: space.size() as f64,
        log10_space_size: space.log10_size(),
        candidates,
        dropped: drops
            .iter()
            .map(|&(cp, op)| Dropped { choice_point: space.choices[cp].name.clone(), op })
            .collect(),
        space_size_after: after.size() as f64,
        log10_space_size_after: after.log10_size(),
        params: Params {
            original,
            before: sharing::effective_params(&sn.net, &after, &before_copies),
            after: sharing::effective_params(&sn.net, &after, &copies),
        },
        sharing_degree: Sharing {
            before: sharing::degree(&after, &before_copies),
            after: sharing::degree(&after, &copies),
        },
        copies,
        seconds,
    };
    let children = if sh.exhaustive { scorer.children() } else { Vec::new() };
    Ok((round, children))
}

/// `pwsnas shrink` and the second stage of `pwsnas search`. Returns the shrunk space.
pub fn run_stage(
    run: &mut RunDir,
    sn: &mut SupernetRun,
    data: &RunData,
    device: Device,
    progress: &Progress,
) -> Result<Space> {
    let settings = run.info.settings.clone();
    let sh = &settings.shrink;
    let report_path = run.path("shrink.json");
    if run.is_done(Stage::Shrink) {
        return Space::from_json(read_json(&run.path("space.json"))?)
            .context("space.json of this run is not valid");
    }
    run.begin(Stage::Shrink)?;
    let mut report: ShrinkReport =
        if report_path.exists() { read_json(&report_path)? } else { new_report(&settings, &sn.space) };
    let evaluator = (sh.metric == Metric::Accuracy || sh.score_only).then(|| {
        Evaluator::new(
            data,
            sh.bn_batches,
            settings.supernet.batch_size,
            sh.val_images,
            settings.seed,
            device,
        )
    });
    let w0 = sn.w0()?;
    let warmup = settings.supernet.epochs;
    loop {
        while sn.state.rounds_applied < report.rounds.len() {
            let round = report.rounds[sn.state.rounds_applied].clone();
            apply_round(sn, &round)?;
            sn.save()?;
        }
        let r = report.rounds.len();
        let shrinkable = sn.space.choices.iter().any(|c| c.ops.len() > 1);
        let finished = if sh.metric == Metric::None {
            true
        } else if sh.score_only {
            r >= 1
        } else {
            !shrinkable || sn.space.size() as f64 <= report.target_size
        };
        if finished {
            break;
        }
        let required = warmup + r * sh.epochs_between_rounds;
        if sn.state.epoch < required {
            progress.info(format!("shrink: training the supernet to epoch {required} before round {r}"));
            sn.train_to(
                required,
                Phase { start: required - sh.epochs_between_rounds, end: required },
                &settings,
                data,
                progress,
            )?;
        }
        progress.info(format!(
            "shrink round {r}: scoring {} candidates with the {:?} metric on a space of {} children",
            sn.space
                .choices
                .iter()
                .filter(|c| sh.score_only || c.ops.len() > 1)
                .map(|c| c.ops.len())
                .sum::<usize>(),
            sh.metric,
            sn.space.size()
        ));
        let (round, children) = score_round(sn, &report, &settings, evaluator.as_ref(), &w0, progress)?;
        progress.info(format!(
            "shrink round {r}: scored in {:.2}s, dropped {} → {} children, copies {:?}",
            round.seconds,
            round.dropped.len(),
            round.space_size_after,
            round.copies
        ));
        progress.event("shrink_round", json!({ "round": r, "dropped": round.dropped, "space_size_after": round.space_size_after, "seconds": round.seconds }));
        if !children.is_empty() {
            report.children = children;
        }
        report.rounds.push(round);
        write_json(&report_path, &report)?;
    }
    report.final_space_size = Some(sn.space.size() as f64);
    write_json(&report_path, &report)?;
    write_json(&run.path("space.json"), &sn.space.to_json())?;
    run.finish(
        Stage::Shrink,
        json!({ "rounds": report.rounds.len(), "space_size": sn.space.size() as f64, "log10_space_size": sn.space.log10_size() }),
    )?;
    Ok(sn.space.clone())
}
