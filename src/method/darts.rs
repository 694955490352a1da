//! DARTS (Liu et al., ICLR 2019): its steps, on any space through the weighted forward
//! ([`Mix::weighted`]), which PDARTS ([`super::pdarts`]) takes as they are.
//!
//! - α step: on an α batch, the loss of the mix weighted by softmax(α) of every surviving op,
//!   differentiated in α only (first order: the weights are taken as they are, DARTS's
//!   `--unrolled False`), one Adam step; or, with `--darts-order 2`, DARTS's unrolled step at the
//!   weights of a virtual SGD step ([`alpha_step_unrolled`]).
//! - weight step: on a weight batch, the same mix with softmax(α) held fixed, one SGD step of every
//!   tensor the mix uses.
//! - the child: the space's rule (`SpaceDef::derive_child`) on softmax(α).
use anyhow::{bail, Result};
use pwsnas_models::{Mix, Mode, Param, Space, SpaceKind, Supernet};
use tch::{Kind, Reduction, Tensor};

use super::alpha::{Adam, Alphas};
use super::{MethodNet, SearchMethod, Step, Training};
use crate::settings::{Settings, TrainSettings};
use crate::train::sgd::Sgd;

/// DARTS.
pub struct Darts;

impl SearchMethod for Darts {
    fn name(&self) -> &'static str {
        "darts"
    }

    fn training(&self) -> Training {
        Training::Gradient { alpha_every: 1 }
    }

    fn check(&self, settings: &Settings, _kind: &SpaceKind) -> Result<()> {
        super::pdarts::refuse_schedule(settings)
    }
}

/// The check of a method that takes DARTS's α step neither as DARTS nor as PDARTS does: refuses
/// `gradient.darts_order = 2`, DARTS's unrolled step.
pub fn refuse_second_order(settings: &Settings) -> Result<()> {
    if settings.gradient.darts_order == 2 {
        bail!(
            "setting gradient.darts_order = 2 (--darts-order) is DARTS's unrolled step, for search.method = darts or pdarts, not {}: drop it or set it to 1",
            settings.search.method.name()
        );
    }
    Ok(())
}

/// DARTS's α step in the loop (every gradient method's by default): first order on the α batch, or
/// with `gradient.darts_order = 2` the unrolled step, whose virtual SGD step is on the weight batch.
pub fn alpha_step_of(net: &mut MethodNet, step: &Step<'_>, alpha: (&Tensor, &Tensor)) {
    let MethodNet { supernet, sgd, alphas, adam, space } = net;
    if step.g.darts_order == 2 {
        alpha_step_unrolled(supernet, space, alphas, adam, sgd, step.batch, alpha, step.cfg, step.lr);
    } else {
        alpha_step(supernet, space, alphas, adam, alpha, step.cfg, step.mode);
    }
}

/// DARTS's weight step in the loop (every gradient method's by default): [`weight_step`] on the
/// weight batch.
pub fn weight_step_of(net: &mut MethodNet, step: &Step<'_>) -> (f64, f64) {
    let MethodNet { supernet, sgd, alphas, space, .. } = net;
    weight_step(supernet, space, alphas, sgd, step.batch, step.cfg, step.lr, step.mode)
}

/// Cross-entropy of `net` on (x, y) for `mix` in a training forward of `mode` (which carries
/// PDARTS's skip dropout), and the logits.
pub fn loss(
    net: &Supernet,
    mix: &Mix,
    x: &Tensor,
    y: &Tensor,
    cfg: &TrainSettings,
    mode: Mode,
) -> (Tensor, Tensor) {
    let logits = net.forward_mix(x, mix, mode);
    let loss = logits.cross_entropy_loss::<Tensor>(y, None, Reduction::Mean, -100, cfg.label_smoothing);
    (loss, logits)
}

/// One first-order α step on (x, y).
pub fn alpha_step(
    net: &Supernet,
    space: &Space,
    alphas: &Alphas,
    adam: &mut Adam,
    (x, y): (&Tensor, &Tensor),
    cfg: &TrainSettings,
    mode: Mode,
) -> f64 {
    let mix = Mix::weighted(space, &alphas.softmax());
    let (loss, _) = loss(net, &mix, x, y, cfg, mode);
    let refs: Vec<&Tensor> = alphas.t.iter().collect();
    let grads = Tensor::run_backward(&[&loss], &refs, false, false);
    adam.step(&alphas.t, &grads);
    loss.double_value(&[])
}

/// One second-order α step, DARTS's unrolled step (`architect.py` with `--unrolled`): the gradient
/// of the α loss at the weights after one virtual SGD step on the weight batch,
/// `w' = w − ξ(μ·buffer + ∇w L_train(w, α) + λw)` with the weights' current learning rate ξ, momentum
/// and weight decay, is `∇α L_val(w', α) − ξ · ∇²α,w L_train(w, α) · ∇w' L_val(w', α)`; the second
/// term by finite differences ([`hessian_vector`]). One Adam step; the weights are left as they were.
/// Every forward here runs without PDARTS's skip dropout: the finite differences need one
/// deterministic loss. Returns the α loss at `w'`.
#[allow(clippy::too_many_arguments)]
pub fn alpha_step_unrolled(
    net: &Supernet,
    space: &Space,
    alphas: &Alphas,
    adam: &mut Adam,
    sgd: &Sgd,
    train: (&Tensor, &Tensor),
    val: (&Tensor, &Tensor),
    cfg: &TrainSettings,
    lr: f64,
) -> f64 {
    let (loss_val, grads) = unrolled_grads(net, space, alphas, sgd, train, val, cfg, lr);
    adam.step(&alphas.t, &grads);
    loss_val
}

/// The α loss at the virtual weights and the unrolled α gradient of [`alpha_step_unrolled`].
#[allow(clippy::too_many_arguments)]
fn unrolled_grads(
    net: &Supernet,
    space: &Space,
    alphas: &Alphas,
    sgd: &Sgd,
    train: (&Tensor, &Tensor),
    val: (&Tensor, &Tensor),
    cfg: &TrainSettings,
    lr: f64,
) -> (f64, Vec<Tensor>) {
    let fixed: Vec<Tensor> = alphas.softmax().iter().map(Tensor::detach).collect();
    let params = net.trainable_for_mix(&Mix::weighted(space, &fixed));
    let tensors: Vec<&Tensor> = params.iter().map(|p| &p.tensor).collect();
    let (l_train, _) = loss(net, &Mix::weighted(space, &fixed), train.0, train.1, cfg, Mode::TRAIN);
    let g = Tensor::run_backward(&[&l_train], &tensors, false, false);
    let w: Vec<Tensor> = tensors.iter().map(|t| t.detach().copy()).collect();
    tch::no_grad(|| {
        for ((p, g), w) in params.iter().zip(&g).zip(&w) {
            if !g.defined() {
                continue;
            }
            let mut step = g + w * cfg.weight_decay;
            if let Some(m) = sgd.momentum_term(&p.name) {
                step += m;
            }
            p.tensor.shallow_clone().copy_(&(w - step * lr));
        }
    });
    let (l_val, _) = loss(net, &Mix::weighted(space, &alphas.softmax()), val.0, val.1, cfg, Mode::TRAIN);
    let mut inputs: Vec<&Tensor> = alphas.t.iter().collect();
    inputs.extend(tensors.iter().copied());
    let grads = Tensor::run_backward(&[&l_val], &inputs, false, false);
    let (d_alpha, d_w) = grads.split_at(alphas.t.len());
    let hv = hessian_vector(net, space, alphas, &params, &w, d_w, train, cfg);
    let total = d_alpha.iter().zip(&hv).map(|(a, h)| a - h * lr).collect();
    (l_val.double_value(&[]), total)
}

/// `∇α (∇w L(w, α) · v)` on (x, y) by central differences, as DARTS's
/// `_hessian_vector_product`: with `R = 0.01 / ‖v‖`, `(∇α L(w + Rv) − ∇α L(w − Rv)) / 2R`. The
/// weights `params` are set from `w` (their values to differentiate at) and left there; an
/// undefined entry of `v` counts as zero.
#[allow(clippy::too_many_arguments)]
pub fn hessian_vector(
    net: &Supernet,
    space: &Space,
    alphas: &Alphas,
    params: &[&Param],
    w: &[Tensor],
    v: &[Tensor],
    (x, y): (&Tensor, &Tensor),
    cfg: &TrainSettings,
) -> Vec<Tensor> {
    let sq: f64 =
        v.iter().filter(|t| t.defined()).map(|t| t.square().sum(Kind::Double).double_value(&[])).sum();
    let r = 0.01 / sq.sqrt().max(1e-12);
    let set = |sign: f64| {
        tch::no_grad(|| {
            for ((p, w), v) in params.iter().zip(w).zip(v) {
                let at = if v.defined() && sign != 0.0 { w + v * (sign * r) } else { w.shallow_clone() };
                p.tensor.shallow_clone().copy_(&at);
            }
        })
    };
    let grad_alpha = |sign: f64| {
        set(sign);
        let (l, _) = loss(net, &Mix::weighted(space, &alphas.softmax()), x, y, cfg, Mode::TRAIN);
        let refs: Vec<&Tensor> = alphas.t.iter().collect();
        Tensor::run_backward(&[&l], &refs, false, false)
    };
    let (plus, minus) = (grad_alpha(1.0), grad_alpha(-1.0));
    set(0.0);
    plus.iter().zip(&minus).map(|(p, m)| (p - m) / (2.0 * r)).collect()
}

/// One SGD step of the weights on (x, y), softmax(α) fixed. Returns (loss, correct).
#[allow(clippy::too_many_arguments)]
pub fn weight_step(
    net: &Supernet,
    space: &Space,
    alphas: &Alphas,
    sgd: &mut Sgd,
    (x, y): (&Tensor, &Tensor),
    cfg: &TrainSettings,
    lr: f64,
    mode: Mode,
) -> (f64, f64) {
    let weights: Vec<Tensor> = alphas.softmax().iter().map(Tensor::detach).collect();
    let mix = Mix::weighted(space, &weights);
    let (loss, logits) = loss(net, &mix, x, y, cfg, mode);
    let params = net.trainable_for_mix(&mix);
    let inputs: Vec<&Tensor> = params.iter().map(|p| &p.tensor).collect();
    let grads = Tensor::run_backward(&[&loss], &inputs, false, false);
    sgd.step(&params, grads, lr, cfg.grad_clip);
    let correct = logits.argmax(1, false).eq_tensor(y).sum(tch::Kind::Double).double_value(&[]);
    (loss.double_value(&[]), correct)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pwsnas_models::Nb201Params;

    /// A tiny nb201 net (3 edges), its α at scale 1, a batch, and the method's training settings.
    fn unrolled_setup() -> (Space, Supernet, Alphas, Tensor, Tensor, TrainSettings) {
        let space = Space::full(SpaceKind::new(Nb201Params {
            nodes: 3,
            channels: 2,
            cells_per_stage: 1,
            input_size: 4,
            input_channels: 1,
            classes: 3,
            ..Default::default()
        }));
        tch::manual_seed(7);
        let net = Supernet::new(&space, tch::Device::Cpu);
        let t = space
            .choices
            .iter()
            .map(|cp| {
                Tensor::randn([cp.ops.len() as i64], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true)
            })
            .collect();
        let x = Tensor::randn([6, 1, 4, 4], (Kind::Float, tch::Device::Cpu));
        let y = Tensor::from_slice(&[0i64, 1, 2, 0, 1, 2]);
        let cfg =
            TrainSettings { weight_decay: 3e-4, momentum: 0.9, nesterov: false, ..TrainSettings::default() };
        (space, net, Alphas { t }, x, y, cfg)
    }

    fn flat(ts: &[Tensor]) -> Tensor {
        Tensor::cat(&ts.iter().map(|t| t.flatten(0, -1)).collect::<Vec<_>>(), 0)
    }

    #[test]
    fn the_unrolled_gradient_is_the_first_order_one_at_lr_0_and_leaves_the_weights() {
        let (space, net, alphas, x, y, cfg) = unrolled_setup();
        let sgd = Sgd::new(&cfg);
        let (xa, ya) = (x.flip([0]), y.flip([0]));
        let (l, _) = loss(&net, &Mix::weighted(&space, &alphas.softmax()), &xa, &ya, &cfg, Mode::TRAIN);
        let first = Tensor::run_backward(&[&l], &alphas.t.iter().collect::<Vec<_>>(), false, false);
        let (_, at_zero) = unrolled_grads(&net, &space, &alphas, &sgd, (&x, &y), (&xa, &ya), &cfg, 0.0);
        assert!(flat(&at_zero).allclose(&flat(&first), 1e-5, 1e-7, false));
        let before: Vec<Tensor> = net
            .trainable_for_mix(&Mix::weighted(&space, &alphas.softmax()))
            .iter()
            .map(|p| p.tensor.detach().copy())
            .collect();
        let (_, unrolled) = unrolled_grads(&net, &space, &alphas, &sgd, (&x, &y), (&xa, &ya), &cfg, 0.5);
        let diff = (flat(&unrolled) - flat(&first)).norm().double_value(&[]);
        assert!(diff > 1e-6, "a real step changes the gradient ({diff})");
        let after = net.trainable_for_mix(&Mix::weighted(&space, &alphas.softmax()));
        for (p, w) in after.iter().zip(&before) {
            assert!(p.tensor.equal(w), "{} moved", p.name);
        }
    }
}
