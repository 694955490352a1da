//! Scoring operator candidates (docs/method.md): the score of a candidate `(choice point, op)` is the mean
//! of a child metric over `S` distinct children that contain it (or all of them with
//! `--exhaustive`). Child metrics:
//!
//! - `angle`: θ between the child's weight vector at `W0` and now ([`pwsnas_models::vector`]), in the
//!   `ops` or `full` composition;
//! - `accuracy`: top-1 with shared weights after BN recalibration ([`crate::eval`]);
//! - `magnitude` (ours): mean over the child's sites of `|w| / sqrt(numel)` of the chosen op;
//! - `random`: a uniform random score per candidate (no children involved), the sanity floor.
//!
//! A child is scored once per round even when it is sampled for several candidates.
use std::collections::{BTreeMap, HashMap};

use pwsnas_models::{AngleMeter, Arch, Composition, Op, Space, Supernet};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::Tensor;

use super::report::{CandidateScore, ChildRecord};
use crate::eval::Evaluator;
use crate::progress::Progress;
use crate::settings::Metric;

/// Which child metrics to compute.
#[derive(Clone, Copy, Debug, Default)]
pub struct Wanted {
    pub angle: bool,
    pub angle_full: bool,
    pub accuracy: bool,
    pub magnitude: bool,
}

impl Wanted {
    pub fn all() -> Wanted {
        Wanted { angle: true, angle_full: true, accuracy: true, magnitude: true }
    }

    /// What the driving metric needs.
    pub fn for_metric(metric: Metric, composition: Composition) -> Wanted {
        let mut w = Wanted::default();
        match (metric, composition) {
            (Metric::Angle, Composition::Ops) => w.angle = true,
            (Metric::Angle, Composition::Full) => w.angle_full = true,
            (Metric::Accuracy, _) => w.accuracy = true,
            (Metric::Magnitude, _) => w.magnitude = true,
            (Metric::Random | Metric::None, _) => {}
        }
        w
    }
}

/// Scores children, caching each child's metrics.
pub struct Scorer<'a> {
    net: &'a Supernet,
    angles: AngleMeter<'a>,
    evaluator: Option<&'a Evaluator>,
    wanted: Wanted,
    cache: HashMap<Arch, ChildRecord>,
}

impl<'a> Scorer<'a> {
    pub fn new(
        net: &'a Supernet,
        w0: &'a HashMap<String, Tensor>,
        current: &'a HashMap<String, Tensor>,
        evaluator: Option<&'a Evaluator>,
        wanted: Wanted,
    ) -> Scorer<'a> {
        assert!(!wanted.accuracy || evaluator.is_some(), "the accuracy metric needs an evaluator");
        Scorer { net, angles: AngleMeter::new(w0, current), evaluator, wanted, cache: HashMap::new() }
    }

    /// The child's metrics (computed once).
    pub fn child(&mut self, arch: &Arch) -> &ChildRecord {
        if !self.cache.contains_key(arch) {
            let w = self.wanted;
            let net = self.net;
            let rec = ChildRecord {
                arch: net.kind().format_arch(arch),
                angle: w.angle.then(|| self.angles.angle(&net.segments(arch, Composition::Ops))),
                angle_full: w.angle_full.then(|| self.angles.angle(&net.segments(arch, Composition::Full))),
                accuracy: w.accuracy.then(|| self.evaluator.expect("evaluator").accuracy(net, arch)),
                magnitude: w.magnitude.then(|| {
                    let m = net.op_magnitudes(arch);
                    m.iter().sum::<f64>() / m.len().max(1) as f64
                }),
            };
            self.cache.insert(arch.clone(), rec);
        }
        &self.cache[arch]
    }

    /// Every child scored so far, in arch order.
    pub fn children(&self) -> Vec<ChildRecord> {
        let mut v: Vec<(&Arch, &ChildRecord)> = self.cache.iter().collect();
        v.sort_by(|a, b| a.0.cmp(b.0));
        v.into_iter().map(|(_, r)| r.clone()).collect()
    }
}

/// The children a candidate is scored on.
pub fn children_of(
    space: &Space,
    cp: usize,
    op: Op,
    samples: usize,
    exhaustive: bool,
    rng: &mut ChaCha8Rng,
) -> Vec<Arch> {
    if exhaustive {
        space.enumerate().into_iter().filter(|a| a.ops[cp] == op).collect()
    } else {
        space.sample_distinct_with(rng, cp, op, samples)
    }
}

/// Scores every candidate of the choice points in `cps` (their current ops).
#[allow(clippy::too_many_arguments)]
pub fn score_candidates(
    scorer: &mut Scorer<'_>,
    space: &Space,
    cps: &[usize],
    metric: Metric,
    composition: Composition,
    samples: usize,
    exhaustive: bool,
    seed: u64,
    progress: &Progress,
) -> Vec<CandidateScore> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut random = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    let total: usize = cps.iter().map(|&cp| space.choices[cp].ops.len()).sum();
    let bar = progress.bar(total as u64, "scoring");
    let mut out = Vec::new();
    for &cp in cps {
        for &op in &space.choices[cp].ops {
            let children = children_of(space, cp, op, samples, exhaustive, &mut rng);
            let mut sums: BTreeMap<String, f64> = BTreeMap::new();
            for child in &children {
                let rec = scorer.child(child);
                for (name, v) in [
                    ("angle", rec.angle),
                    ("angle_full", rec.angle_full),
                    ("accuracy", rec.accuracy),
                    ("magnitude", rec.magnitude),
                ] {
                    if let Some(v) = v {
                        *sums.entry(name.to_string()).or_default() += v;
                    }
                }
            }
            let n = children.len().max(1) as f64;
            let mut scores: BTreeMap<String, f64> = sums.into_iter().map(|(k, v)| (k, v / n)).collect();
            scores.insert("random".into(), random.random::<f64>());
            let key = match (metric, composition) {
                (Metric::Angle, Composition::Ops) => "angle",
                (Metric::Angle, Composition::Full) => "angle_full",
                (Metric::Accuracy, _) => "accuracy",
                (Metric::Magnitude, _) => "magnitude",
                (Metric::Random | Metric::None, _) => "random",
            };
            let score = scores.get(key).copied().unwrap_or(f64::NAN);
            out.push(CandidateScore {
                choice_point: space.choices[cp].name.clone(),
                op,
                score,
                children: children.len(),
                scores,
            });
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    out
}

/// The candidates to drop: the `k` lowest scores over all choice points (ties broken by choice point
/// then op order), never the last op of a choice point; or, with `per_choice_point`, the lowest of
/// every choice point that has more than one op.
pub fn choose_drops(
    space: &Space,
    scores: &[CandidateScore],
    k: usize,
    per_choice_point: bool,
) -> Vec<(usize, Op)> {
    let mut ranked: Vec<(usize, usize, &CandidateScore)> = scores
        .iter()
        .map(|c| {
            let cp = space.choice_point_index(&c.choice_point).expect("scored choice point exists");
            let pos = space.choices[cp].ops.iter().position(|o| *o == c.op).unwrap_or(usize::MAX);
            (cp, pos, c)
        })
        .collect();
    ranked.sort_by(|a, b| a.2.score.total_cmp(&b.2.score).then(a.0.cmp(&b.0)).then(a.1.cmp(&b.1)));
    let mut left: Vec<usize> = space.choices.iter().map(|c| c.ops.len()).collect();
    let mut drops = Vec::new();
    for (cp, _, c) in ranked {
        if per_choice_point {
            if left[cp] == space.choices[cp].ops.len() && left[cp] > 1 {
                left[cp] -= 1;
                drops.push((cp, c.op));
            }
        } else if drops.len() < k && left[cp] > 1 {
            left[cp] -= 1;
            drops.push((cp, c.op));
        }
    }
    drops
}

#[cfg(test)]
mod tests {
    use super::*;
    use pwsnas_models::SpaceKind;

    fn cand(space: &Space, cp: usize, op: Op, score: f64) -> CandidateScore {
        CandidateScore {
            choice_point: space.choices[cp].name.clone(),
            op,
            score,
            children: 1,
            scores: BTreeMap::new(),
        }
    }

    #[test]
    fn global_drops_take_the_lowest_but_never_the_last_op() {
        let mut space = Space::full(SpaceKind::by_name("nb201").unwrap());
        for op in [Op::None, Op::SkipConnect, Op::NorConv1x1] {
            space.remove(0, op).unwrap();
        }
        // Choice point 0 has two ops left, both scored lowest of all.
        let mut scores = vec![cand(&space, 0, Op::NorConv3x3, -2.0), cand(&space, 0, Op::AvgPool3x3, -1.0)];
        for cp in 1..6 {
            for (i, &op) in space.choices[cp].ops.iter().enumerate() {
                scores.push(cand(&space, cp, op, cp as f64 + i as f64 / 10.0));
            }
        }
        let drops = choose_drops(&space, &scores, 3, false);
        assert_eq!(drops, vec![(0, Op::NorConv3x3), (1, Op::None), (1, Op::SkipConnect)]);
        let per_cp = choose_drops(&space, &scores, 0, true);
        assert_eq!(per_cp.len(), 6);
        assert!(per_cp.iter().all(|(cp, op)| *op == if *cp == 0 { Op::NorConv3x3 } else { Op::None }));
    }
}
