//! Progressive search-space shrinking (`docs/method.md`): score every operator candidate, drop the
//! lowest, give the survivors weight copies (strategy 2), train the supernet further, repeat until
//! the space is small enough; then train the supernet `epochs_after_shrink` more epochs, so the
//! copies made last are trained before the search. Writes `shrink.json` after every round and
//! `space.json` at the end.
//!
//! Under constraints (`--max-flops`, `--max-params`, `--max-latency-ms`) the stage refuses a space
//! without admissible children before it trains, scores candidates on admissible children only
//! ([`score::Pool`]), drops the candidates that no admissible child contains first, and never drops
//! a candidate that every admissible child left needs, so the shrunk space always holds one.
//!
//! Resuming: a round is first written to `shrink.json`, then applied to the supernet checkpoint
//! (space, copies and their routes). A run killed between the two finds a round that the checkpoint
//! has not applied yet and applies it; a run killed while training between rounds or after the last
//! one resumes that training from its last epoch.
pub mod report;
pub mod score;
pub mod sharing;

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use pwsnas_models::{Arch, Route, Space};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use tch::{Device, Tensor};

use crate::data::RunData;
use crate::eval::Evaluator;
use crate::fsutil::{read_json, write_json};
use crate::progress::Progress;
use crate::run::{RunDir, Stage};
use crate::search::constraints::Constraints;
use crate::settings::{Metric, Settings, ShrinkSettings};
use crate::supernet::SupernetRun;
use crate::train::derive_seed;
use crate::train::epoch::Phase;
use report::{Dropped, FinalSupernet, Limits, Params, Round, Sharing, ShrinkReport};
use score::{choose_drops, metric_key, score_candidates, Drops, Origin, Pool, Scorer, Wanted};

/// Spaces larger than this are not enumerated by `--exhaustive`.
pub const EXHAUSTIVE_LIMIT: u128 = 100_000;

fn new_report(settings: &Settings, space: &Space, constraints: &Constraints) -> ShrinkReport {
    let sh = &settings.shrink;
    let candidates = space.choices.iter().map(|c| c.ops.len()).sum();
    let (drop, target) = sh.resolved_drop_and_target(&space.kind, candidates);
    // A space may drop one op per choice point by default (ABS's rule for DARTS).
    let per_choice_point = sh.per_choice_point || space.kind.shrink_defaults(candidates).per_choice_point;
    ShrinkReport {
        metric: sh.metric,
        angle_vector: sh.angle_vector,
        w0_epoch: sh.w0_epoch,
        samples_per_op: sh.samples_per_op,
        exhaustive: sh.exhaustive,
        score_only: sh.score_only,
        drop_per_round: drop,
        per_choice_point,
        target_size: target,
        copies: sh.copies,
        param_budget: sh.param_budget,
        epochs_after_shrink: sh.epochs_after_shrink,
        constraints: Limits::of(constraints),
        initial_space_size: space.size() as f64,
        admissible_before: None,
        rounds: Vec::new(),
        final_space_size: None,
        final_admissible: None,
        final_epoch: None,
        final_supernet: None,
        children: Vec::new(),
    }
}

/// Applies a recorded round to the supernet: drops its ops, grows its weight copies and sets their routes.
fn apply_round(sn: &mut SupernetRun, round: &Round) -> Result<()> {
    let index = |space: &Space, name: &str| {
        space
            .choice_point_index(name)
            .with_context(|| format!("shrink.json names an unknown choice point '{name}'"))
    };
    for d in &round.dropped {
        let cp = index(&sn.space, &d.choice_point)?;
        sn.space.remove(cp, d.op)?;
    }
    for (cp, &k) in round.copies.iter().enumerate().filter(|(_, &k)| k > 1) {
        let route = match round.choice_points.get(cp).and_then(|r| r.routed_by.as_deref().map(|by| (by, r))) {
            Some((by, rec)) => Some(Route { by: index(&sn.space, by)?, ops: rec.route_ops.clone() }),
            None => None,
        };
        sn.net.grow_copies(cp, k, route);
    }
    sn.state.rounds_applied += 1;
    Ok(())
}

fn current_tensors(sn: &SupernetRun) -> HashMap<String, Tensor> {
    sn.net.named_tensors().into_iter().collect()
}

/// The `W0`s of a round scored at supernet epoch `epoch`: the initialisation (key suffix none) when
/// the angle is measured from it (`w0_epoch = 0`) or with `score_only`, and for `w0_epoch = K > 0`
/// the weights after epoch `K` (suffix `_w0eK`). Until the supernet is past epoch `K` those are the
/// current weights, from which every angle is 0, so the `_w0eK` angle is measured from the
/// initialisation instead (docs/method.md, "W0").
fn origins_at<'a>(
    epoch: usize,
    sh: &ShrinkSettings,
    init: Option<&'a HashMap<String, Tensor>>,
    warm: Option<&'a HashMap<String, Tensor>>,
) -> Vec<Origin<'a>> {
    let Some(init) = init else { return Vec::new() };
    let mut origins = Vec::new();
    if sh.w0_epoch == 0 || sh.score_only {
        origins.push(Origin { epoch: 0, w0: init });
    }
    if sh.w0_epoch > 0 {
        let w0 =
            if epoch > sh.w0_epoch { warm.expect("loaded once the supernet reached w0_epoch") } else { init };
        origins.push(Origin { epoch: sh.w0_epoch, w0 });
    }
    origins
}

/// `accuracy_children` children of `space` drawn uniformly without repeats, seeded.
fn accuracy_sample(space: &Space, n: usize, seed: u64) -> HashSet<Arch> {
    let all = space.enumerate();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rand::seq::index::sample(&mut rng, all.len(), n.min(all.len()))
        .into_iter()
        .map(|i| all[i].clone())
        .collect()
}

/// The children a round has scored so far (`shrink-scoring.json`), written about once a minute
/// while it scores and removed once the round is in `shrink.json`: a round killed while scoring
/// every child of a large space resumes where it was instead of from nothing. Only a file of the
/// same round at the same supernet epoch is taken; the weights are then the checkpoint's, the same.
#[derive(serde::Serialize, serde::Deserialize)]
struct Partial {
    round: usize,
    epoch: usize,
    children: Vec<report::ChildRecord>,
}

impl Partial {
    fn path(run_root: &std::path::Path) -> std::path::PathBuf {
        run_root.join("shrink-scoring.json")
    }

    fn load(
        path: &std::path::Path,
        round: usize,
        epoch: usize,
        space: &Space,
    ) -> Result<Vec<(Arch, report::ChildRecord)>> {
        if !path.exists() {
            return Ok(Vec::new());
        }
        let Ok(p) = read_json::<Partial>(path) else { return Ok(Vec::new()) };
        if p.round != round || p.epoch != epoch {
            return Ok(Vec::new());
        }
        p.children
            .into_iter()
            .map(|c| Ok((space.parse_arch(&c.arch).with_context(|| format!("{}", path.display()))?, c)))
            .collect()
    }
}

/// Scores one round on the current supernet and decides what it drops and which copies it grants.
#[allow(clippy::too_many_arguments)]
fn score_round(
    run_root: &std::path::Path,
    sn: &SupernetRun,
    report: &ShrinkReport,
    settings: &Settings,
    evaluator: Option<&Evaluator>,
    constraints: &Constraints,
    origins: &[Origin<'_>],
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
    let mut scorer = Scorer::new(&sn.net, origins, &current, evaluator, wanted);
    if sh.exhaustive && wanted.accuracy && space.size() > sh.accuracy_children as u128 {
        let seed = derive_seed(settings.seed, "accuracy-children", r as u64);
        scorer = scorer.accuracy_only_for(accuracy_sample(space, sh.accuracy_children, seed));
        progress.info(format!(
            "shrink round {r}: supernet accuracy on {} of the {} children (--accuracy-children), every other metric on all",
            sh.accuracy_children,
            space.size()
        ));
    }
    let partial = Partial::path(run_root);
    let resumed = Partial::load(&partial, r, sn.state.epoch, space)?;
    if !resumed.is_empty() {
        progress.info(format!(
            "shrink round {r}: {} children scored before the interruption are kept",
            resumed.len()
        ));
        scorer.preload(resumed);
    }
    let mut checkpoint = |scorer: &Scorer<'_>| {
        let p = Partial { round: r, epoch: sn.state.epoch, children: scorer.children() };
        // A checkpoint that cannot be written costs only the resumability of this round.
        if let Err(e) = write_json(&partial, &p) {
            progress.info(format!("shrink: could not save the scores so far ({e:#}); going on"));
        }
    };
    let cps: Vec<usize> =
        (0..space.choices.len()).filter(|&cp| sh.score_only || space.choices[cp].ops.len() > 1).collect();
    let start = Instant::now();
    let constraint_seed = derive_seed(settings.seed, "constraints", r as u64);
    let pool = Pool::new(space, constraints, constraint_seed);
    let candidates = score_candidates(
        &mut scorer,
        &pool,
        &cps,
        &metric_key(sh.metric, sh.angle_vector, sh.w0_epoch),
        sh.samples_per_op,
        sh.exhaustive,
        derive_seed(settings.seed, "shrink", r as u64),
        progress,
        &mut checkpoint,
    );
    let seconds = start.elapsed().as_secs_f64();
    let drops = if sh.score_only {
        Drops::default()
    } else {
        choose_drops(space, &candidates, report.drop_per_round, report.per_choice_point, |s| {
            pool.admits_some(s)
        })
    };
    let mut after = space.clone();
    for &(cp, op) in &drops.dropped {
        after.remove(cp, op)?;
    }
    let original = sharing::effective_params(&sn.net, sn.net.built_space(), &vec![1; space.choices.len()]);
    let budget = (sh.param_budget * original as f64).floor() as i64;
    let before_copies = sn.net.copies().to_vec();
    let copies = if sh.score_only {
        before_copies.clone()
    } else {
        sharing::plan_copies(&sn.net, &after, &before_copies, sh.copies, budget)
    };
    let named = |list: &[(usize, pwsnas_models::Op)]| -> Vec<Dropped> {
        list.iter().map(|&(cp, op)| Dropped { choice_point: space.choices[cp].name.clone(), op }).collect()
    };
    let round = Round {
        round: r,
        epoch: sn.state.epoch,
        space_size: space.size() as f64,
        log10_space_size: space.log10_size(),
        candidates,
        dropped: named(&drops.dropped),
        protected: named(&drops.protected),
        space_size_after: after.size() as f64,
        log10_space_size_after: after.log10_size(),
        admissible_after: constraints.is_active().then(|| constraints.admissible(&after, constraint_seed)),
        choice_points: sharing::choice_point_records(&sn.net, &after, &before_copies, &copies),
        params: Params {
            original,
            before: sharing::effective_params(&sn.net, &after, &before_copies),
            after: sharing::effective_params(&sn.net, &after, &copies),
            budget,
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

/// One line about a round for people.
fn describe_round(round: &Round) -> String {
    let mut s = format!(
        "shrink round {}: scored in {:.2}s, dropped {} → {} children",
        round.round,
        round.seconds,
        round.dropped.len(),
        round.space_size_after
    );
    if let Some(a) = &round.admissible_after {
        s += &format!(" ({} meet the constraints)", a.describe(round.space_size_after));
    }
    if !round.protected.is_empty() {
        let kept: Vec<String> =
            round.protected.iter().map(|d| format!("{} on {}", d.op, d.choice_point)).collect();
        s += &format!("; kept {} because every admissible child left needs them", kept.join(", "));
    }
    let (b, a) = (&round.sharing_degree.before, &round.sharing_degree.after);
    s += &format!(
        "; copies {:?}, {} → {} params (budget {}), sharing degree {:.1} → {:.1} children per weight",
        round.copies,
        round.params.before,
        round.params.after,
        round.params.budget,
        b.mean_children_per_weight,
        a.mean_children_per_weight
    );
    s
}

/// `pwsnas shrink` and the second stage of `pwsnas search`. Returns the shrunk space.
pub fn run_stage(
    run: &mut RunDir,
    sn: &mut SupernetRun,
    data: &RunData,
    device: Device,
    constraints: &Constraints,
    progress: &Progress,
) -> Result<Space> {
    let settings = run.info.settings.clone();
    let sh = &settings.shrink;
    let report_path = run.path("shrink.json");
    if run.is_done(Stage::Shrink) {
        return Space::from_json(read_json(&run.path("space.json"))?)
            .context("space.json of this run is not valid");
    }
    // The `W0`s the angles are measured from: the driving angle's (initialisation, or after
    // `w0_epoch` epochs), and with `score_only` both. A snapshot that should exist already is loaded
    // before the stage begins, so a missing one leaves no started stage behind; one of an epoch
    // the supernet has not reached yet is loaded once training has saved it (see [`origins_at`]).
    let angles = sh.score_only || sh.metric == Metric::Angle;
    let reached_w0_epoch = |epoch: usize| angles && sh.w0_epoch > 0 && epoch >= sh.w0_epoch;
    let init = angles.then(|| sn.w0()).transpose()?;
    let mut warm = reached_w0_epoch(sn.state.epoch).then(|| sn.w0_at(sh.w0_epoch)).transpose()?;
    run.begin(Stage::Shrink)?;
    let mut report: ShrinkReport = if report_path.exists() {
        read_json(&report_path)?
    } else {
        let mut fresh = new_report(&settings, &sn.space, constraints);
        if constraints.is_active() {
            fresh.admissible_before = Some(
                constraints.require_admissible(&sn.space, derive_seed(settings.seed, "constraints", 0))?,
            );
        }
        fresh
    };
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
        if warm.is_none() && reached_w0_epoch(sn.state.epoch) {
            warm = Some(sn.w0_at(sh.w0_epoch)?);
        }
        let origins = origins_at(sn.state.epoch, sh, init.as_ref(), warm.as_ref());
        let (round, children) = score_round(
            &run.root,
            sn,
            &report,
            &settings,
            evaluator.as_ref(),
            constraints,
            &origins,
            progress,
        )?;
        progress.info(describe_round(&round));
        progress.event(
            "shrink_round",
            json!({ "round": r, "dropped": round.dropped, "protected": round.protected,
                    "space_size_after": round.space_size_after, "admissible_after": round.admissible_after,
                    "copies": round.copies, "params": round.params, "sharing_degree": round.sharing_degree,
                    "seconds": round.seconds }),
        );
        if !children.is_empty() {
            report.children = children;
        }
        report.rounds.push(round);
        write_json(&report_path, &report)?;
        let partial = Partial::path(&run.root);
        if partial.exists() {
            std::fs::remove_file(&partial).with_context(|| format!("cannot remove {}", partial.display()))?;
        }
    }
    if !sh.score_only && sh.epochs_after_shrink > 0 {
        let last = warmup + report.rounds.len().saturating_sub(1) * sh.epochs_between_rounds;
        let required = last + sh.epochs_after_shrink;
        if sn.state.epoch < required {
            progress.info(format!(
                "shrink: training the supernet {} more epoch(s) after the last round (to epoch {required}), so the newest copies are trained",
                required - sn.state.epoch
            ));
            sn.train_to(required, Phase { start: last, end: required }, &settings, data, progress)?;
        }
    }
    report.final_space_size = Some(sn.space.size() as f64);
    report.final_epoch = Some(sn.state.epoch);
    let (copies, ones) = (sn.net.copies().to_vec(), vec![1; sn.space.choices.len()]);
    report.final_supernet = Some(FinalSupernet {
        params: sharing::effective_params(&sn.net, &sn.space, &copies),
        params_original: sharing::effective_params(&sn.net, sn.net.built_space(), &ones),
        sharing_degree: sharing::degree(&sn.space, &copies),
        sharing_degree_one_copy: sharing::degree(&sn.space, &ones),
        copies,
    });
    if constraints.is_active() {
        let seed = derive_seed(settings.seed, "constraints", report.rounds.len() as u64);
        let admissible = constraints.admissible(&sn.space, seed);
        progress.info(format!(
            "shrink: the final space holds {} that meet {}",
            admissible.describe(sn.space.size() as f64),
            constraints.describe()
        ));
        report.final_admissible = Some(admissible);
    }
    write_json(&report_path, &report)?;
    write_json(&run.path("space.json"), &sn.space.to_json())?;
    run.finish(
        Stage::Shrink,
        json!({ "rounds": report.rounds.len(), "space_size": sn.space.size() as f64, "log10_space_size": sn.space.log10_size() }),
    )?;
    Ok(sn.space.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_w0_of_epoch_k_is_the_initialisation_until_the_supernet_is_past_epoch_k() {
        let (init, warm) = (HashMap::new(), HashMap::new());
        let sh = |w0_epoch, score_only| ShrinkSettings { w0_epoch, score_only, ..ShrinkSettings::default() };
        // (the epoch of its key suffix, whether it is the snapshot) of each origin.
        let seen = |epoch, sh: &ShrinkSettings| -> Vec<(usize, bool)> {
            origins_at(epoch, sh, Some(&init), Some(&warm))
                .iter()
                .map(|o| (o.epoch, std::ptr::eq(o.w0, &warm)))
                .collect()
        };
        assert_eq!(seen(1, &sh(1, false)), [(1, false)]);
        assert_eq!(seen(2, &sh(1, false)), [(1, true)]);
        assert_eq!(seen(3, &sh(0, false)), [(0, false)]);
        assert_eq!(seen(1, &sh(1, true)), [(0, false), (1, false)]);
        assert_eq!(seen(5, &sh(1, true)), [(0, false), (1, true)]);
        // Without angles there is nothing to measure from.
        assert!(origins_at(5, &sh(1, false), None, None).is_empty());
    }
}
