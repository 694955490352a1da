//! Scoring operator candidates (docs/method.md): the score of a candidate `(choice point, op)` is the mean
//! of a child metric over `S` distinct children that contain it (or all of them with
//! `--exhaustive`). Child metrics:
//!
//! - `angle`: θ between the child's weight vector at `W0` and now ([`pwsnas_models::vector`]), in the
//!   `ops`, `full` or `pwsnas` composition (keys `angle`, `angle_full`, `angle_pwsnas`), from the
//!   weights at initialisation or after `K` warm-up epochs (`shrink.w0_epoch`; the same keys with
//!   `_w0eK` appended, see [`Origin`]);
//! - `accuracy`: top-1 with shared weights after BN recalibration ([`crate::eval`]);
//! - `magnitude` (ours): mean over the child's sites of `|w| / sqrt(numel)` of the chosen op;
//! - `random`: a uniform random score per candidate (no children involved), the sanity floor.
//!
//! A child is scored once per round even when it is sampled for several candidates.
use std::collections::{BTreeMap, HashMap, HashSet};

use pwsnas_models::{AngleMeter, Arch, Composition, Op, Space, Supernet};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::Tensor;

use super::report::{CandidateScore, ChildRecord};
use crate::eval::Evaluator;
use crate::progress::Progress;
use crate::search::constraints::{Constraints, EXACT_LIMIT};
use crate::settings::Metric;

/// Which child metrics to compute.
#[derive(Clone, Copy, Debug, Default)]
pub struct Wanted {
    pub angle: bool,
    pub angle_full: bool,
    pub angle_pwsnas: bool,
    pub accuracy: bool,
    pub magnitude: bool,
}

impl Wanted {
    pub fn all() -> Wanted {
        Wanted { angle: true, angle_full: true, angle_pwsnas: true, accuracy: true, magnitude: true }
    }

    /// What the driving metric needs.
    pub fn for_metric(metric: Metric, composition: Composition) -> Wanted {
        let mut w = Wanted::default();
        match (metric, composition) {
            (Metric::Angle, Composition::Ops) => w.angle = true,
            (Metric::Angle, Composition::Full) => w.angle_full = true,
            (Metric::Angle, Composition::Pwsnas) => w.angle_pwsnas = true,
            (Metric::Accuracy, _) => w.accuracy = true,
            (Metric::Magnitude, _) => w.magnitude = true,
            (Metric::Random | Metric::None, _) => {}
        }
        w
    }

    /// The angle compositions wanted.
    fn compositions(&self) -> Vec<Composition> {
        let on = [self.angle, self.angle_full, self.angle_pwsnas];
        Composition::ALL.into_iter().zip(on).filter_map(|(c, on)| on.then_some(c)).collect()
    }
}

/// The suffix of the angle keys measured from the weights after `w0_epoch` epochs: none for the
/// weights at initialisation (0), `_w0eK` for `K` epochs.
pub fn w0_suffix(w0_epoch: usize) -> String {
    if w0_epoch == 0 {
        String::new()
    } else {
        format!("_w0e{w0_epoch}")
    }
}

/// A `W0` angles are measured from: the supernet's weights after `epoch` epochs (0: at
/// initialisation). Its angles are keyed [`Composition::angle_key`] + [`w0_suffix`].
pub struct Origin<'a> {
    pub epoch: usize,
    pub w0: &'a HashMap<String, Tensor>,
}

/// Scores children, caching each child's metrics.
pub struct Scorer<'a> {
    net: &'a Supernet,
    /// Per origin, its key suffix and its meter.
    angles: Vec<(String, AngleMeter<'a>)>,
    evaluator: Option<&'a Evaluator>,
    wanted: Wanted,
    /// The children whose accuracy is measured (all when `None`; see
    /// [`Scorer::accuracy_only_for`]).
    accuracy_for: Option<HashSet<Arch>>,
    cache: HashMap<Arch, ChildRecord>,
}

impl<'a> Scorer<'a> {
    /// Angles are measured from every origin of `origins` to `current`.
    pub fn new(
        net: &'a Supernet,
        origins: &[Origin<'a>],
        current: &'a HashMap<String, Tensor>,
        evaluator: Option<&'a Evaluator>,
        wanted: Wanted,
    ) -> Scorer<'a> {
        assert!(!wanted.accuracy || evaluator.is_some(), "the accuracy metric needs an evaluator");
        let angles = origins.iter().map(|o| (w0_suffix(o.epoch), AngleMeter::new(o.w0, current))).collect();
        Scorer { net, angles, evaluator, wanted, accuracy_for: None, cache: HashMap::new() }
    }

    /// Measures accuracy (the costly metric) only on `children`; the others get every other
    /// metric (`shrink.accuracy_children` with `--exhaustive`).
    pub fn accuracy_only_for(mut self, children: HashSet<Arch>) -> Self {
        self.accuracy_for = Some(children);
        self
    }

    /// Takes the records of children scored before (an interrupted round) instead of scoring them again.
    pub fn preload(&mut self, records: impl IntoIterator<Item = (Arch, ChildRecord)>) {
        self.cache.extend(records);
    }

    /// Whether the child's metrics are computed already.
    pub fn has(&self, arch: &Arch) -> bool {
        self.cache.contains_key(arch)
    }

    /// Children scored so far.
    pub fn scored(&self) -> usize {
        self.cache.len()
    }

    /// The child's metrics (computed once).
    pub fn child(&mut self, arch: &Arch) -> &ChildRecord {
        if !self.cache.contains_key(arch) {
            let w = self.wanted;
            let net = self.net;
            let mut rec = ChildRecord { arch: net.kind().format_arch(arch), ..ChildRecord::default() };
            for composition in w.compositions() {
                let segments = net.segments(arch, composition);
                for (suffix, meter) in &self.angles {
                    let angle =
                        if segments.is_empty() { composition.empty_angle() } else { meter.angle(&segments) };
                    rec.set(&format!("{}{suffix}", composition.angle_key()), angle);
                }
            }
            if w.accuracy && self.accuracy_for.as_ref().is_none_or(|set| set.contains(arch)) {
                rec.accuracy = Some(self.evaluator.expect("evaluator").accuracy(net, arch));
            }
            if w.magnitude {
                let m = net.op_magnitudes(arch);
                rec.magnitude = Some(m.iter().sum::<f64>() / m.len().max(1) as f64);
            }
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

/// Draws per wanted child when sampling admissible children by rejection on a large space.
const REJECTION_TRIES: usize = 50;

/// The children operator candidates are scored on: the space's children, or under constraints its
/// admissible children only — sampling with the constraint, as ABS samples only children under its
/// FLOPs cap — so that a candidate's score says how good it is *within the budget*.
pub struct Pool<'a> {
    pub space: &'a Space,
    constraints: &'a Constraints,
    /// Every admissible child, when constraints are set and the space has at most [`EXACT_LIMIT`] children.
    listed: Option<Vec<Arch>>,
    seed: u64,
}

impl<'a> Pool<'a> {
    pub fn new(space: &'a Space, constraints: &'a Constraints, seed: u64) -> Pool<'a> {
        let listed = (constraints.is_active() && space.size() <= EXACT_LIMIT)
            .then(|| space.enumerate().into_iter().filter(|a| constraints.admits(space, a)).collect());
        Pool { space, constraints, listed, seed }
    }

    /// The children that pick `op` at `cp` a candidate is scored on: every one with `exhaustive`,
    /// else up to `samples` distinct ones drawn uniformly; admissible ones only under constraints.
    /// Empty when no admissible child picks `op` at `cp`.
    pub fn children_of(
        &self,
        cp: usize,
        op: Op,
        samples: usize,
        exhaustive: bool,
        rng: &mut ChaCha8Rng,
    ) -> Vec<Arch> {
        let space = self.space;
        if !self.constraints.is_active() {
            return if exhaustive {
                space.enumerate().into_iter().filter(|a| a.ops[cp] == op).collect()
            } else {
                space.sample_distinct_with(rng, cp, op, samples)
            };
        }
        if let Some(listed) = &self.listed {
            let with: Vec<&Arch> = listed.iter().filter(|a| a.ops[cp] == op).collect();
            if exhaustive || with.len() <= samples {
                return with.into_iter().cloned().collect();
            }
            return rand::seq::index::sample(rng, with.len(), samples)
                .into_iter()
                .map(|i| with[i].clone())
                .collect();
        }
        let mut out: Vec<Arch> = Vec::new();
        for _ in 0..samples * REJECTION_TRIES {
            if out.len() == samples {
                break;
            }
            let a = space.sample_with(rng, cp, op);
            if !out.contains(&a) && self.constraints.admits(space, &a) {
                out.push(a);
            }
        }
        if out.is_empty() {
            out.extend(self.constraints.cheapest_admissible(space, Some((cp, op)), self.seed));
        }
        out
    }

    /// Whether `shrunk` (a sub-space of this pool's space) still holds an admissible child.
    pub fn admits_some(&self, shrunk: &Space) -> bool {
        match &self.listed {
            _ if !self.constraints.is_active() => true,
            Some(listed) => listed.iter().any(|a| shrunk.contains(a)),
            None => self.constraints.cheapest_admissible(shrunk, None, self.seed).is_some(),
        }
    }
}

/// The key of `metric` in a candidate's `scores`; an angle measured from the weights after
/// `w0_epoch` epochs.
pub fn metric_key(metric: Metric, composition: Composition, w0_epoch: usize) -> String {
    match metric {
        Metric::Angle => format!("{}{}", composition.angle_key(), w0_suffix(w0_epoch)),
        Metric::Accuracy => "accuracy".into(),
        Metric::Magnitude => "magnitude".into(),
        Metric::Random | Metric::None => "random".into(),
    }
}

/// Scores every candidate of the choice points in `cps` (their current ops) on the pool's children;
/// `key` ([`metric_key`]) names the score that drives the shrinking. A candidate's score in a
/// metric is the mean over its children that have the metric (with `shrink.accuracy_children`,
/// accuracy is measured on some children only). Progress counts candidates, or with `exhaustive`
/// the space's children (the first candidates score most of them); `checkpoint` is called with the
/// scorer about once a minute, so an interrupted round can keep what it scored.
#[allow(clippy::too_many_arguments)]
pub fn score_candidates(
    scorer: &mut Scorer<'_>,
    pool: &Pool<'_>,
    cps: &[usize],
    key: &str,
    samples: usize,
    exhaustive: bool,
    seed: u64,
    progress: &Progress,
    checkpoint: &mut dyn FnMut(&Scorer<'_>),
) -> Vec<CandidateScore> {
    let space = pool.space;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut random = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    let candidates: usize = cps.iter().map(|&cp| space.choices[cp].ops.len()).sum();
    let total = if exhaustive { space.size() as u64 } else { candidates as u64 };
    let mut steps = progress.steps(total, if exhaustive { "scoring children" } else { "scoring candidates" });
    if exhaustive {
        steps.inc(scorer.scored() as u64);
    }
    let mut saved = std::time::Instant::now();
    let mut out = Vec::new();
    for &cp in cps {
        for &op in &space.choices[cp].ops {
            let children = pool.children_of(cp, op, samples, exhaustive, &mut rng);
            let mut sums: BTreeMap<String, (f64, usize)> = BTreeMap::new();
            for child in &children {
                let fresh = !scorer.has(child);
                for (name, v) in scorer.child(child).metrics() {
                    let e = sums.entry(name.to_string()).or_default();
                    e.0 += v;
                    e.1 += 1;
                }
                if exhaustive && fresh {
                    steps.inc(1);
                }
                if saved.elapsed() >= CHECKPOINT_EVERY {
                    checkpoint(scorer);
                    saved = std::time::Instant::now();
                }
            }
            let mut scores: BTreeMap<String, f64> =
                sums.into_iter().map(|(k, (v, n))| (k, v / n as f64)).collect();
            let draw = random.random::<f64>();
            let no_admissible_child = children.is_empty();
            if !no_admissible_child {
                scores.insert("random".into(), draw);
            }
            out.push(CandidateScore {
                choice_point: space.choices[cp].name.clone(),
                op,
                score: scores.get(key).copied(),
                children: children.len(),
                no_admissible_child,
                scores,
            });
            if !exhaustive {
                steps.inc(1);
            }
        }
    }
    steps.finish();
    out
}

/// How often [`score_candidates`] hands its scorer to the checkpoint.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// What a round drops, and what it kept only because the space would otherwise hold no admissible child.
#[derive(Debug, Default, PartialEq)]
pub struct Drops {
    pub dropped: Vec<(usize, Op)>,
    pub protected: Vec<(usize, Op)>,
}

/// The candidates to drop: the `k` lowest scores over all choice points (candidates no admissible
/// child contains first, then ties broken by choice point and op order), never the last op of a
/// choice point; or, with `per_choice_point`, the lowest of every choice point that has more than
/// one op. A drop after which `keeps_admissible` fails is skipped (the candidate is *protected*:
/// every admissible child left needs it) and the next candidate is taken instead.
pub fn choose_drops(
    space: &Space,
    scores: &[CandidateScore],
    k: usize,
    per_choice_point: bool,
    keeps_admissible: impl Fn(&Space) -> bool,
) -> Drops {
    let mut ranked: Vec<(usize, usize, &CandidateScore)> = scores
        .iter()
        .map(|c| {
            let cp = space.choice_point_index(&c.choice_point).expect("scored choice point exists");
            let pos = space.choices[cp].ops.iter().position(|o| *o == c.op).unwrap_or(usize::MAX);
            (cp, pos, c)
        })
        .collect();
    let key = |c: &CandidateScore| c.score.unwrap_or(f64::NEG_INFINITY);
    ranked.sort_by(|a, b| key(a.2).total_cmp(&key(b.2)).then(a.0.cmp(&b.0)).then(a.1.cmp(&b.1)));
    let mut after = space.clone();
    let mut out = Drops::default();
    for (cp, _, c) in ranked {
        let wanted = if per_choice_point {
            after.choices[cp].ops.len() == space.choices[cp].ops.len()
        } else {
            out.dropped.len() < k
        };
        if !wanted || after.choices[cp].ops.len() <= 1 {
            continue;
        }
        let mut trial = after.clone();
        trial.remove(cp, c.op).expect("a scored op of a choice point with two ops or more");
        if keeps_admissible(&trial) {
            after = trial;
            out.dropped.push((cp, c.op));
        } else {
            out.protected.push((cp, c.op));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use pwsnas_models::{Nb201Params, SpaceKind};

    fn cand(space: &Space, cp: usize, op: Op, score: f64) -> CandidateScore {
        CandidateScore {
            choice_point: space.choices[cp].name.clone(),
            op,
            score: Some(score),
            children: 1,
            no_admissible_child: false,
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
        let drops = choose_drops(&space, &scores, 3, false, |_| true);
        assert_eq!(drops.dropped, vec![(0, Op::NorConv3x3), (1, Op::None), (1, Op::SkipConnect)]);
        assert!(drops.protected.is_empty());
        let per_cp = choose_drops(&space, &scores, 0, true, |_| true).dropped;
        assert_eq!(per_cp.len(), 6);
        assert!(per_cp.iter().all(|(cp, op)| *op == if *cp == 0 { Op::NorConv3x3 } else { Op::None }));
    }

    #[test]
    fn a_drop_that_would_leave_no_admissible_child_is_skipped() {
        let space = Space::full(SpaceKind::by_name("nb201").unwrap());
        let mut scores = Vec::new();
        for (cp, c) in space.choices.iter().enumerate() {
            for (i, &op) in c.ops.iter().enumerate() {
                scores.push(cand(&space, cp, op, (cp * 10 + i) as f64));
            }
        }
        // Pretend only children with nor_conv_3x3 on 1<-0 are admissible: it is never dropped, the
        // next candidate goes instead.
        let keeps = |s: &Space| s.choices[0].ops.contains(&Op::NorConv3x3);
        let drops = choose_drops(&space, &scores, 4, false, keeps);
        assert_eq!(
            drops.dropped,
            vec![(0, Op::None), (0, Op::SkipConnect), (0, Op::NorConv1x1), (0, Op::AvgPool3x3)]
        );
        assert_eq!(drops.protected, vec![(0, Op::NorConv3x3)]);
        // Candidates without an admissible child (no score) go first, whatever the others score.
        let mut flagged = scores.clone();
        flagged[29].score = None;
        flagged[29].no_admissible_child = true;
        let drops = choose_drops(&space, &flagged, 1, false, |_| true);
        assert_eq!(drops.dropped, vec![(5, Op::AvgPool3x3)]);
    }

    #[test]
    fn under_a_budget_every_metric_scores_admissible_children_only() {
        let kind = SpaceKind::new(Nb201Params {
            channels: 4,
            cells_per_stage: 1,
            input_size: 8,
            input_channels: 1,
            classes: 4,
            ..Nb201Params::default()
        });
        let space = Space::full(kind);
        let flops = |a: &Arch| space.kind.cost(a).flops() as f64;
        let mut all: Vec<f64> = space.enumerate().iter().map(flops).collect();
        all.sort_by(f64::total_cmp);
        // A tight budget: about 4 % of the children, none with two 3x3 convs.
        let cap = all[all.len() / 25];
        let constraints = Constraints { max_flops: Some(cap), ..Constraints::default() };
        tch::manual_seed(0);
        let net = Supernet::new(&space, tch::Device::Cpu);
        let w0: HashMap<String, Tensor> =
            net.named_tensors().into_iter().map(|(n, t)| (n, t.detach().copy())).collect();
        tch::no_grad(|| {
            for (_, t) in net.named_tensors() {
                let _ = t.shallow_clone().g_add_(&(Tensor::randn_like(&t) * 0.01));
            }
        });
        let current: HashMap<String, Tensor> = net.named_tensors().into_iter().collect();
        let wanted = Wanted { accuracy: false, ..Wanted::all() };
        for (samples, exhaustive) in [(8, false), (0, true)] {
            let mut scorer = Scorer::new(&net, &[Origin { epoch: 0, w0: &w0 }], &current, None, wanted);
            let pool = Pool::new(&space, &constraints, 0);
            let cps: Vec<usize> = (0..space.choices.len()).collect();
            let scores = score_candidates(
                &mut scorer,
                &pool,
                &cps,
                "angle",
                samples,
                exhaustive,
                3,
                &Progress::silent(),
                &mut |_| {},
            );
            let scored = scorer.children();
            assert!(!scored.is_empty());
            for child in &scored {
                let arch = space.parse_arch(&child.arch).unwrap();
                assert!(flops(&arch) <= cap, "{} has {} FLOPs > {cap}", child.arch, flops(&arch));
                assert!(child.angle.is_some() && child.angle_full.is_some() && child.magnitude.is_some());
                assert!(child.angle_pwsnas.is_some() && child.extra.is_empty());
            }
            let admissible: Vec<Arch> = space.enumerate().into_iter().filter(|a| flops(a) <= cap).collect();
            for c in &scores {
                let cp = space.choice_point_index(&c.choice_point).unwrap();
                let with = admissible.iter().filter(|a| a.ops[cp] == c.op).count();
                assert_eq!(c.no_admissible_child, with == 0, "{c:?}");
                assert_eq!(c.score.is_none(), with == 0, "{c:?}");
                assert_eq!(c.children, if exhaustive { with } else { with.min(samples) }, "{c:?}");
            }
            // 3x3 convs are too expensive on some edges; those candidates go first, and the shrunk
            // space still holds an admissible child.
            let flagged = scores.iter().filter(|c| c.no_admissible_child).count();
            assert!(flagged > 0);
            let drops = choose_drops(&space, &scores, 20, false, |s| pool.admits_some(s));
            assert_eq!(drops.dropped.len(), 20);
            for (i, &(cp, op)) in drops.dropped.iter().enumerate() {
                let c =
                    scores.iter().find(|c| c.choice_point == space.choices[cp].name && c.op == op).unwrap();
                assert_eq!(c.no_admissible_child, i < flagged, "drop {i}: {c:?}");
            }
            let mut after = space.clone();
            for &(cp, op) in &drops.dropped {
                after.remove(cp, op).unwrap();
            }
            assert!(
                after.enumerate().iter().any(|a| flops(a) <= cap),
                "the shrunk space keeps an admissible child"
            );
        }
    }
}
