//! DARTS's steps (Liu et al., ICLR 2019, first order) and PDARTS's stage rules (Chen et al., ICCV
//! 2019), on any space through the weighted forward ([`Mix::weighted`]).
//!
//! - α step: on an α batch, the loss of the mix weighted by softmax(α) of every surviving op,
//!   differentiated in α only (first order: the weights are taken as they are, DARTS's
//!   `--unrolled False`), one Adam step; or, with `--darts-order 2`, DARTS's unrolled step at the
//!   weights of a virtual SGD step ([`alpha_step_unrolled`]).
//! - weight step: on a weight batch, the same mix with softmax(α) held fixed, one SGD step of every
//!   tensor the mix uses.
//! - PDARTS between stages: every choice point keeps its `k` strongest ops ([`keep_strongest`]);
//!   at the end, no more than `max_skip` choice points (on a cell space, of the normal cell) may
//!   derive `skip_connect` ([`cap_skips`]).
use pwsnas_models::{Arch, Mix, Mode, Op, Param, Space, Supernet};
use tch::{Kind, Reduction, Tensor};

use super::alpha::{Adam, Alphas};
use crate::settings::TrainSettings;
use crate::train::sgd::Sgd;

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
