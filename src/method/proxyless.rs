//! ProxylessNAS's binary gates (Cai et al., ICLR 2019) and its expected-latency loss, on any space
//! through the weighted forward.
//!
//! - sampling: per choice point two distinct ops drawn from softmax(α) ([`sample_pairs`]), and of
//!   the pair one active op drawn from softmax over the pair's α (the renormalised probabilities);
//! - weight step: the active path alone (a single-path step: only its weights update);
//! - α step (every `alpha_every` weight steps, on an α batch): the two gated ops of every choice
//!   point, gate `g` one-hot on the active op. The mix weight of op `j` is `g_j + p̃_j − p̃_j`
//!   (the second term detached): its value is the binary gate, and its gradient
//!   `∂L/∂g_j · ∂p̃_j/∂α` is the paper's `Σ_j ∂L/∂g_j p̃_j(δ_ij − p̃_i)`. After the Adam step the
//!   pair's α are shifted together so that their total probability mass, hence every other op's
//!   probability, is what it was ([`rescale_pairs`]);
//! - latency: `E[lat] = fixed + Σ_cp Σ_op p(op)·ms(cp, op)` from the run's latency table
//!   ([`LatencyModel`]), differentiable in α, in the loss as `add-linear` or `mul-log`.
use anyhow::{bail, Context, Result};
use pwsnas_models::{Arch, Mix, Mode, Space, Weighted};
use rand::Rng;
use tch::{Kind, Tensor};

use super::alpha::Alphas;
use super::settings::{GradientSettings, LatencyLoss};
use super::{darts, MethodNet, SearchMethod, Step, Training};
use crate::latency::Predictor;
use crate::search::constraints::Constraints;
use crate::train::epoch::train_step;

/// ProxylessNAS.
pub struct Proxyless;

impl SearchMethod for Proxyless {
    fn name(&self) -> &'static str {
        "proxyless"
    }

    /// ProxylessNAS updates α every 5 weight steps.
    fn training(&self) -> Training {
        Training::Gradient { alpha_every: 5 }
    }

    /// With `gradient.target_latency_ms`: the model of E[lat] on the starting space, from the run's
    /// latency table, and the target, which some child must reach.
    fn latency(
        &self,
        g: &GradientSettings,
        start: &Space,
        constraints: &Constraints,
    ) -> Result<Option<(LatencyModel, f64)>> {
        let Some(target) = g.target_latency_ms else { return Ok(None) };
        let predictor = constraints.predictor.as_ref().context(
            "setting gradient.target_latency_ms needs the latency table of the run's space (ONNX Runtime could not measure one)",
        )?;
        let model = LatencyModel::new(start, predictor);
        model.check_target(target)?;
        Ok(Some((model, target)))
    }

    /// The gated two-op mix of every choice point (see the module docs), with the latency term;
    /// then the pairs' α are rescaled.
    fn alpha_step(&self, net: &mut MethodNet, step: &mut Step<'_>, (xa, ya): (&Tensor, &Tensor)) {
        let before: Vec<Vec<f64>> = net
            .alphas
            .t
            .iter()
            .map(|a| Vec::<f64>::try_from(a.detach().to_kind(Kind::Double)).expect("1-D"))
            .collect();
        let pairs = sample_pairs(&net.alphas.probs(), step.rng);
        let mix = gated_mix(&net.space, &net.alphas, &pairs);
        let (ce, _) = darts::loss(&net.supernet, &mix, xa, ya, step.cfg, step.mode);
        let loss = with_latency(ce, step.latency.map(|(m, t)| (m, *t)), &net.alphas, step.g);
        let refs: Vec<&Tensor> = net.alphas.t.iter().collect();
        let grads = Tensor::run_backward(&[&loss], &refs, false, false);
        net.adam.step(&net.alphas.t, &grads);
        rescale_pairs(&net.alphas, &before, &pairs);
    }

    /// The active path of freshly sampled pairs alone (a single-path step).
    fn weight_step(&self, net: &mut MethodNet, step: &mut Step<'_>) -> (f64, f64) {
        let pairs = sample_pairs(&net.alphas.probs(), step.rng);
        let arch = active_arch(&net.space, &pairs);
        let (x, y) = step.batch;
        let stats =
            train_step(&net.supernet, None, &mut net.sgd, step.cfg, x, y, &[arch], step.lr, Mode::TRAIN);
        (stats.loss_sum.double_value(&[]), stats.correct.double_value(&[]))
    }
}

/// The ops a step uses at one choice point: indices into its surviving ops (one index when the
/// choice point has one op), the active one first.
#[derive(Clone, Debug, PartialEq)]
pub struct Pair {
    pub active: usize,
    pub other: Option<usize>,
}

/// Draws a [`Pair`] per choice point from `probs` (softmax(α)).
pub fn sample_pairs<R: Rng>(probs: &[Vec<f64>], rng: &mut R) -> Vec<Pair> {
    probs
        .iter()
        .map(|p| {
            if p.len() == 1 {
                return Pair { active: 0, other: None };
            }
            let draw = |rng: &mut R, skip: Option<usize>| {
                let total: f64 = p.iter().enumerate().filter(|(i, _)| Some(*i) != skip).map(|(_, v)| v).sum();
                let mut u = rng.random::<f64>() * total;
                let mut last = 0;
                for (i, v) in p.iter().enumerate().filter(|(i, _)| Some(*i) != skip) {
                    last = i;
                    if u < *v {
                        return i;
                    }
                    u -= v;
                }
                last
            };
            let a = draw(rng, None);
            let b = draw(rng, Some(a));
            // The active op of the pair, by the pair's renormalised probabilities.
            if rng.random::<f64>() * (p[a] + p[b]) < p[a] {
                Pair { active: a, other: Some(b) }
            } else {
                Pair { active: b, other: Some(a) }
            }
        })
        .collect()
}

/// The child of the active ops.
pub fn active_arch(space: &Space, pairs: &[Pair]) -> Arch {
    Arch { ops: space.choices.iter().zip(pairs).map(|(cp, p)| cp.ops[p.active]).collect() }
}

/// The gated two-op mix of an α step (see the module docs), differentiable in α.
pub fn gated_mix(space: &Space, alphas: &Alphas, pairs: &[Pair]) -> Mix {
    let choices = space
        .choices
        .iter()
        .zip(pairs)
        .zip(&alphas.t)
        .map(|((cp, pair), a)| match pair.other {
            None => vec![Weighted { op: cp.ops[pair.active], weight: None }],
            Some(other) => {
                let idx = Tensor::from_slice(&[pair.active as i64, other as i64]).to_device(a.device());
                let p = a.index_select(0, &idx).softmax(0, Kind::Float);
                let gate = |k: i64, g: f64| p.get(k) - p.get(k).detach() + g;
                vec![
                    Weighted { op: cp.ops[pair.active], weight: Some(gate(0, 1.0)) },
                    Weighted { op: cp.ops[other], weight: Some(gate(1, 0.0)) },
                ]
            }
        })
        .collect();
    Mix::new(choices)
}

/// After an α step: shifts each pair's two α by one offset so that their softmax mass over the
/// whole choice point is what it was before the step (`before`: α then).
pub fn rescale_pairs(alphas: &Alphas, before: &[Vec<f64>], pairs: &[Pair]) {
    tch::no_grad(|| {
        for ((a, old), pair) in alphas.t.iter().zip(before).zip(pairs) {
            let Some(other) = pair.other else { continue };
            let new = [a.double_value(&[pair.active as i64]), a.double_value(&[other as i64])];
            let lse = |x: [f64; 2]| x[0].max(x[1]) + (1.0 + (-(x[0] - x[1]).abs()).exp()).ln();
            let offset = lse([old[pair.active], old[other]]) - lse(new);
            for k in [pair.active, other] {
                let _ = a.get(k as i64).g_add_scalar_(offset);
            }
        }
    });
}

/// Expected latency as a function of op probabilities: `fixed + Σ_cp Σ_k p[cp][k]·ms[cp][k]`.
///
/// `ms[cp][k]` is the predicted latency change of putting op `k` at `cp` into a reference child
/// (every choice point's first op), `fixed` that child's predicted latency with the reference ops'
/// own terms taken out: exact wherever a child's predicted latency is a sum of per-choice-point
/// terms (`nb201`, `mobile`: a piece per layer).
///
/// The model is built from the predictor's sums ([`Predictor::summed_ms`]) so that it stays linear;
/// `floor` is the predictor's run overhead, below which [`LatencyModel::fastest`] never goes.
#[derive(Clone, Debug)]
pub struct LatencyModel {
    pub fixed: f64,
    pub ms: Vec<Vec<f64>>,
    pub floor: f64,
}

impl LatencyModel {
    pub fn new(space: &Space, predictor: &Predictor) -> LatencyModel {
        let reference = Arch { ops: space.choices.iter().map(|cp| cp.ops[0]).collect() };
        let base = predictor.summed_ms(&reference);
        let ms = space
            .choices
            .iter()
            .enumerate()
            .map(|(i, cp)| {
                cp.ops
                    .iter()
                    .map(|&op| {
                        let mut arch = reference.clone();
                        arch.ops[i] = op;
                        predictor.summed_ms(&arch) - base
                    })
                    .collect()
            })
            .collect();
        LatencyModel { fixed: base, ms, floor: predictor.floor_ms() }
    }

    /// E[lat] under `probs` (numbers).
    pub fn expected(&self, probs: &[Vec<f64>]) -> f64 {
        self.fixed
            + self
                .ms
                .iter()
                .zip(probs)
                .map(|(m, p)| m.iter().zip(p).map(|(a, b)| a * b).sum::<f64>())
                .sum::<f64>()
    }

    /// The fastest child's predicted latency (the smallest op of every choice point), never below
    /// the run overhead.
    pub fn fastest(&self) -> f64 {
        let summed =
            self.fixed + self.ms.iter().map(|m| m.iter().copied().fold(f64::INFINITY, f64::min)).sum::<f64>();
        summed.max(self.floor)
    }

    /// E[lat] as a tensor differentiable in α.
    pub fn expected_tensor(&self, alphas: &Alphas) -> Tensor {
        let mut total = Tensor::from(self.fixed as f32);
        for (a, m) in alphas.t.iter().zip(&self.ms) {
            let ms =
                Tensor::from_slice(&m.iter().map(|v| *v as f32).collect::<Vec<_>>()).to_device(a.device());
            total = total.to_device(a.device()) + (a.softmax(0, Kind::Float) * ms).sum(Kind::Float);
        }
        total
    }

    /// Refuses a target no child of the space reaches, naming the fastest child's prediction.
    pub fn check_target(&self, target_ms: f64) -> Result<()> {
        let fastest = self.fastest();
        if target_ms < fastest {
            bail!(
                "setting gradient.target_latency_ms = {target_ms} is below the fastest child of the space ({fastest:.4} ms predicted at batch 1): raise it to at least that"
            );
        }
        Ok(())
    }
}

/// The loss with ProxylessNAS's latency term (`ce` alone without a target).
pub fn with_latency(
    ce: Tensor,
    latency: Option<(&LatencyModel, f64)>,
    alphas: &Alphas,
    g: &GradientSettings,
) -> Tensor {
    let Some((model, target)) = latency else { return ce };
    let expected = model.expected_tensor(alphas);
    match g.latency_loss {
        LatencyLoss::AddLinear => ce + (expected - target) / target * g.latency_weight,
        // ProxylessNAS's `mul#log`: CE · (log E[lat] / log T)^β.
        LatencyLoss::MulLog => ce * (expected.log() / target.ln()).pow_tensor_scalar(g.latency_weight),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn pairs_are_distinct_and_follow_the_probabilities() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let probs = vec![vec![0.7, 0.2, 0.1], vec![1.0]];
        let mut active0 = 0;
        for _ in 0..2000 {
            let pairs = sample_pairs(&probs, &mut rng);
            assert_eq!(pairs[1], Pair { active: 0, other: None });
            assert_ne!(Some(pairs[0].active), pairs[0].other);
            active0 += (pairs[0].active == 0) as usize;
        }
        // P(op 0 active) = Σ over pairs containing 0 of P(pair)·p0/(p0+pj) > its share 0.7 ≥ 0.6.
        assert!(active0 > 1200, "op 0 active {active0} of 2000");
    }

    #[test]
    fn the_latency_loss_moves_alpha_towards_fast_ops_and_rescaling_keeps_other_ops() {
        let model = LatencyModel { fixed: 1.0, ms: vec![vec![0.0, 2.0, 4.0]], floor: 0.1 };
        assert!((model.fastest() - 1.0).abs() < 1e-12);
        // A negative sum (a correction larger than the pieces) stops at the floor.
        let below = LatencyModel { fixed: -1.0, ms: vec![vec![0.5, 2.0]], floor: 0.1 };
        assert!((below.fastest() - 0.1).abs() < 1e-12);
        assert!(below.check_target(0.000001).is_err());
        assert!(model
            .check_target(0.5)
            .unwrap_err()
            .to_string()
            .contains("fastest child of the space (1.0000 ms"));
        let alphas =
            Alphas { t: vec![Tensor::zeros([3], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true)] };
        assert!((model.expected(&alphas.probs()) - 3.0).abs() < 1e-6);
        for loss in [LatencyLoss::AddLinear, LatencyLoss::MulLog] {
            let g = GradientSettings { latency_loss: loss, latency_weight: 0.3, ..Default::default() };
            let total = with_latency(Tensor::from(2.0f32), Some((&model, 2.0)), &alphas, &g);
            let grad = &Tensor::run_backward(&[total], &[&alphas.t[0]], false, false)[0];
            let grad: Vec<f64> = Vec::try_from(grad.to_kind(Kind::Double)).unwrap();
            assert!(grad[0] < 0.0 && grad[2] > 0.0, "{loss:?}: descent raises the fast op: {grad:?}");
        }
        // Rescaling: after a step on the pair (0, 1), op 2's probability is what it was.
        let before = vec![vec![0.0, 0.0, 0.0]];
        tch::no_grad(|| {
            alphas.t[0].shallow_clone().copy_(&Tensor::from_slice(&[0.5f32, -0.2, 0.0]));
        });
        rescale_pairs(&alphas, &before, &[Pair { active: 0, other: Some(1) }]);
        let p = alphas.probs();
        assert!((p[0][2] - 1.0 / 3.0).abs() < 1e-6, "{p:?}");
        assert!(p[0][0] > p[0][1]);
    }
}
