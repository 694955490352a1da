//! PDARTS (Chen et al., ICCV 2019): DARTS's steps ([`super::darts`]) in stages, on any space.
//!
//! - stages: one per entry of `gradient.pdarts_keep`, plus the first; each builds its network
//!   afresh on the previous stage's space, where every choice point keeps its `k` strongest ops
//!   ([`keep_strongest`]), at the stage's depth (`gradient.pdarts_depth`, [`at_depth`]);
//! - epochs: dropout on `skip_connect` in every training forward, decaying within the stage, and
//!   weights-only epochs at the start of each stage (`GradientSettings::skip_dropout`);
//! - the child: no more than `max_skip` choice points (on a cell space, of the normal cell) may
//!   derive `skip_connect` ([`cap_skips`]).
//!
//! Its settings (`pdarts_depth`, `pdarts_skip_dropout`, `pdarts_weights_only_epochs`) are refused
//! with any other method ([`refuse_schedule`]).
use anyhow::{bail, Context, Result};
use pwsnas_models::{Arch, Op, Space, SpaceKind};

use super::settings::GradientSettings;
use super::{Schedule, SearchMethod, StageSpace, Training};
use crate::settings::Settings;

/// PDARTS.
pub struct Pdarts;

impl SearchMethod for Pdarts {
    fn name(&self) -> &'static str {
        "pdarts"
    }

    fn training(&self) -> Training {
        Training::Gradient { alpha_every: 1 }
    }

    fn stages(&self, g: &GradientSettings) -> usize {
        g.pdarts_stages()
    }

    /// The first stage: the starting space at its depth; each later one keeps the strongest ops of
    /// the previous stage's space.
    fn stage_space(
        &self,
        g: &GradientSettings,
        from: &Space,
        probs: Option<&[Vec<f64>]>,
        stage: usize,
    ) -> StageSpace {
        let Some(probs) = probs else { return StageSpace { space: at_depth(g, from, stage), note: None } };
        let keep = g.pdarts_keep[stage - 1];
        let space = at_depth(g, &keep_strongest(from, probs, keep), stage);
        let note = format!(
            "pdarts: stage {stage} keeps {keep} ops per choice point ({} children), on a new network ({})",
            space.size(),
            space.kind.params_json()
        );
        StageSpace { space, note: Some(note) }
    }

    fn schedule(&self, g: &GradientSettings, stage: usize, epoch: usize) -> Schedule {
        Schedule {
            skip_dropout: Some(g.skip_dropout(stage, epoch)),
            weights_only: epoch < g.weights_only_epochs(),
        }
    }

    fn derive(&self, g: &GradientSettings, space: &Space, probs: &[Vec<f64>]) -> Arch {
        cap_skips(space, probs, g.max_skip)
    }

    /// A depth per stage needs a space that has one apart from its choice points, and each depth
    /// must make a valid space.
    fn check(&self, settings: &Settings, kind: &SpaceKind) -> Result<()> {
        for &depth in settings.gradient.pdarts_depth.iter().flatten() {
            let Some(deeper) = kind.with_depth(depth) else {
                bail!(
                    "setting gradient.pdarts_depth: the {} space has no depth apart from its choice points (PDARTS grows cell spaces: darts, nb201); drop it",
                    settings.space
                );
            };
            deeper.validate().with_context(|| format!("setting gradient.pdarts_depth = {depth}"))?;
        }
        Ok(())
    }
}

/// The check of every method but PDARTS: refuses PDARTS's schedule settings.
pub fn refuse_schedule(settings: &Settings) -> Result<()> {
    let g = &settings.gradient;
    for (name, set) in [
        ("pdarts_depth", g.pdarts_depth.is_some()),
        ("pdarts_skip_dropout", g.pdarts_skip_dropout.is_some()),
        ("pdarts_weights_only_epochs", g.pdarts_weights_only_epochs.is_some()),
    ] {
        if set {
            bail!(
                "setting gradient.{name} is PDARTS's, for search.method = pdarts, not {}: drop it",
                settings.search.method.name()
            );
        }
    }
    Ok(())
}

/// `space` at the depth of stage `stage` (`gradient.pdarts_depth`; unchanged without it).
pub fn at_depth(g: &GradientSettings, space: &Space, stage: usize) -> Space {
    let depth = g.pdarts_depth.as_ref().map(|d| d[stage]);
    match depth.and_then(|d| space.kind.with_depth(d)) {
        Some(kind) => Space { kind, choices: space.choices.clone() },
        None => space.clone(),
    }
}

/// PDARTS's space for the next stage: every choice point keeps its `k` strongest ops by
/// `probs` (all of them when it has at most `k`), in their original order.
pub fn keep_strongest(space: &Space, probs: &[Vec<f64>], k: usize) -> Space {
    let mut next = space.clone();
    for (cp, p) in next.choices.iter_mut().zip(probs) {
        if cp.ops.len() <= k {
            continue;
        }
        let mut order: Vec<usize> = (0..cp.ops.len()).collect();
        order.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
        let kept: Vec<usize> = order[..k].to_vec();
        cp.ops = cp.ops.iter().enumerate().filter(|(i, _)| kept.contains(i)).map(|(_, op)| *op).collect();
    }
    next
}

/// PDARTS's final rule (Chen et al., ICCV 2019, `train_search.py`): while more than `max_skip`
/// choice points that the space counts ([`SpaceDef::skip_capped`]: every one, or a cell space's
/// normal cell) derive `skip_connect`, the weakest of those skips is set to 0 and the child derived
/// again ([`Space::derive_child`]), so its choice point takes its next strongest op and, in a cell
/// space, its node may take another input instead. Stops early if no counted skip has weight left.
///
/// [`SpaceDef::skip_capped`]: pwsnas_models::SpaceDef::skip_capped
pub fn cap_skips(space: &Space, probs: &[Vec<f64>], max_skip: usize) -> Arch {
    let mut probs = probs.to_vec();
    let skip_at = |cp: usize| space.choices[cp].ops.iter().position(|o| *o == Op::SkipConnect);
    loop {
        let arch = space.derive_child(&probs);
        let skips: Vec<(usize, usize)> = (0..arch.ops.len())
            .filter(|&cp| arch.ops[cp] == Op::SkipConnect && space.kind.skip_capped(cp))
            .filter_map(|cp| skip_at(cp).map(|k| (cp, k)))
            .collect();
        let weakest = skips
            .iter()
            .filter(|&&(cp, k)| probs[cp][k] > 0.0)
            .min_by(|&&(a, ka), &&(b, kb)| probs[a][ka].total_cmp(&probs[b][kb]));
        match weakest {
            Some(&(cp, k)) if skips.len() > max_skip => probs[cp][k] = 0.0,
            _ => return arch,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pwsnas_models::{Nb201Params, SpaceKind};

    fn space() -> Space {
        Space::full(SpaceKind::new(Nb201Params {
            channels: 4,
            cells_per_stage: 1,
            input_size: 8,
            ..Default::default()
        }))
    }

    /// NB201's op order: none, skip, conv1x1, conv3x3, avgpool.
    fn probs(rows: &[[f64; 5]]) -> Vec<Vec<f64>> {
        rows.iter().map(|r| r.to_vec()).collect()
    }

    #[test]
    fn derivation_leaves_none_out_and_pdarts_caps_skips_and_keeps_the_strongest() {
        let space = space();
        // Six edges: `none` strongest on the first (left out), skip strongest on four.
        let p = probs(&[
            [0.9, 0.02, 0.05, 0.02, 0.01],
            [0.1, 0.5, 0.2, 0.1, 0.1],
            [0.1, 0.6, 0.1, 0.15, 0.05],
            [0.1, 0.4, 0.1, 0.1, 0.3],
            [0.0, 0.7, 0.1, 0.1, 0.1],
            [0.1, 0.1, 0.1, 0.6, 0.1],
        ]);
        let arch = space.derive_child(&p);
        assert_eq!(arch.ops[0], Op::NorConv1x1, "none is never derived while another op survives");
        assert_eq!(arch.ops.iter().filter(|o| **o == Op::SkipConnect).count(), 4);
        let capped = cap_skips(&space, &p, 2);
        let skips: Vec<usize> = (0..6).filter(|&cp| capped.ops[cp] == Op::SkipConnect).collect();
        assert_eq!(skips, [2, 4], "the two strongest skips stay");
        assert_eq!((capped.ops[1], capped.ops[3]), (Op::NorConv1x1, Op::AvgPool3x3));
        let next = keep_strongest(&space, &p, 2);
        assert_eq!(next.choices[0].ops, [Op::None, Op::NorConv1x1]);
        assert_eq!(next.choices[5].ops.len(), 2);
        assert!(next.choices[5].ops.contains(&Op::NorConv3x3));
    }

    #[test]
    fn on_darts_pdarts_caps_the_normal_cells_skips_and_rederives_their_nodes() {
        let space = Space::full(SpaceKind::by_name("darts").unwrap());
        let cp = |name: &str| space.choices.iter().position(|c| c.name == name).unwrap();
        let at = |c: usize, op: Op| space.choices[c].ops.iter().position(|o| *o == op).unwrap();
        let mut p: Vec<Vec<f64>> = space.choices.iter().map(|c| vec![0.01; c.ops.len()]).collect();
        let mut set = |name: &str, op: Op, w: f64| {
            let c = cp(name);
            p[c][at(c, op)] = w;
        };
        let (skip, sep3, sep5) = (Op::SkipConnect, Op::SepConv { kernel: 3 }, Op::SepConv { kernel: 5 });
        // Normal cell: four skips derived, the weakest on 4<-0 and then 3<-0.
        for (name, op, w) in [
            ("normal/2<-0", skip, 0.9),
            ("normal/2<-1", skip, 0.8),
            ("normal/3<-0", skip, 0.7),
            ("normal/3<-1", sep3, 0.6),
            ("normal/3<-2", Op::MaxPool3x3, 0.5),
            ("normal/4<-0", skip, 0.3),
            ("normal/4<-1", sep5, 0.4),
            ("normal/4<-3", Op::DilConv { kernel: 3 }, 0.2),
            ("normal/5<-4", sep3, 0.5),
            ("normal/5<-2", sep3, 0.4),
        ] {
            set(name, op, w);
        }
        // Reduction cell: every node's first two inputs a skip, which the rule does not count.
        for j in 2..=5 {
            for i in 0..2 {
                set(&format!("reduce/{j}<-{i}"), skip, 0.9);
            }
        }
        let derived = space.derive_child(&p);
        let normal_skips = |a: &Arch| (0..14).filter(|&c| a.ops[c] == skip).count();
        assert_eq!(normal_skips(&derived), 4);
        let capped = cap_skips(&space, &p, 2);
        space.check_child(&capped).unwrap();
        assert_eq!(normal_skips(&capped), 2);
        let op = |name: &str| capped.ops[cp(name)];
        assert_eq!((op("normal/2<-0"), op("normal/2<-1")), (skip, skip), "the two strongest skips stay");
        // Nodes 3 and 4 lost their skip input and took their next strongest edges.
        assert_eq!(
            (op("normal/3<-0"), op("normal/3<-1"), op("normal/3<-2")),
            (Op::None, sep3, Op::MaxPool3x3)
        );
        assert_eq!(
            (op("normal/4<-0"), op("normal/4<-1"), op("normal/4<-3")),
            (Op::None, sep5, Op::DilConv { kernel: 3 })
        );
        assert_eq!(capped.ops[14..], derived.ops[14..], "the reduction cell is left as derived");
        assert_eq!((14..28).filter(|&c| capped.ops[c] == skip).count(), 8);
    }
}
