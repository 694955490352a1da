//! DARTS's steps (Liu et al., ICLR 2019, first order) and PDARTS's stage rules (Chen et al., ICCV
//! 2019), on any space through the weighted forward ([`Mix::weighted`]).
//!
//! - α step: on an α batch, the loss of the mix weighted by softmax(α) of every surviving op,
//!   differentiated in α only (first order: the weights are taken as they are, DARTS's
//!   `--unrolled False`), one Adam step.
//! - weight step: on a weight batch, the same mix with softmax(α) held fixed, one SGD step of every
//!   tensor the mix uses.
//! - PDARTS between stages: every choice point keeps its `k` strongest ops ([`keep_strongest`]);
//!   at the end, no more than `max_skip` choice points may derive `skip_connect` ([`cap_skips`]).
use pwsnas_models::{Arch, Mix, Mode, Op, Space, Supernet};
use tch::{Reduction, Tensor};

use super::alpha::{Adam, Alphas};
use crate::settings::TrainSettings;
use crate::train::sgd::Sgd;

/// Cross-entropy of `net` on (x, y) for `mix`, and the logits.
pub fn loss(net: &Supernet, mix: &Mix, x: &Tensor, y: &Tensor, cfg: &TrainSettings) -> (Tensor, Tensor) {
    let logits = net.forward_mix(x, mix, Mode::TRAIN);
    let loss = logits.cross_entropy_loss::<Tensor>(y, None, Reduction::Mean, -100, cfg.label_smoothing);
    (loss, logits)
}

/// One first-order α step on (x, y).
pub fn alpha_step(
    net: &Supernet,
    space: &Space,
    alphas: &Alphas,
    adam: &mut Adam,
    x: &Tensor,
    y: &Tensor,
    cfg: &TrainSettings,
) -> f64 {
    let mix = Mix::weighted(space, &alphas.softmax());
    let (loss, _) = loss(net, &mix, x, y, cfg);
    let refs: Vec<&Tensor> = alphas.t.iter().collect();
    let grads = Tensor::run_backward(&[&loss], &refs, false, false);
    adam.step(&alphas.t, &grads);
    loss.double_value(&[])
}

/// One SGD step of the weights on (x, y), softmax(α) fixed. Returns (loss, correct).
pub fn weight_step(
    net: &Supernet,
    space: &Space,
    alphas: &Alphas,
    sgd: &mut Sgd,
    x: &Tensor,
    y: &Tensor,
    cfg: &TrainSettings,
    lr: f64,
) -> (f64, f64) {
    let weights: Vec<Tensor> = alphas.softmax().iter().map(Tensor::detach).collect();
    let mix = Mix::weighted(space, &weights);
    let (loss, logits) = loss(net, &mix, x, y, cfg);
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

/// PDARTS's final rule: when more than `max_skip` choice points of `arch` pick `skip_connect`, only
/// the `max_skip` whose `skip_connect` weighs most keep it; the others take their strongest op
/// that is neither `skip_connect` nor `none` (when they have one).
pub fn cap_skips(space: &Space, probs: &[Vec<f64>], arch: &Arch, max_skip: usize) -> Arch {
    let weight =
        |cp: usize, op: Op| space.choices[cp].ops.iter().position(|o| *o == op).map(|k| probs[cp][k]);
    let mut skips: Vec<usize> = (0..arch.ops.len()).filter(|&cp| arch.ops[cp] == Op::SkipConnect).collect();
    if skips.len() <= max_skip {
        return arch.clone();
    }
    skips.sort_by(|&a, &b| {
        weight(b, Op::SkipConnect).unwrap_or(0.0).total_cmp(&weight(a, Op::SkipConnect).unwrap_or(0.0))
    });
    let mut out = arch.clone();
    for &cp in &skips[max_skip..] {
        let best = space.choices[cp]
            .ops
            .iter()
            .enumerate()
            .filter(|(_, op)| !matches!(op, Op::SkipConnect | Op::None))
            .max_by(|a, b| probs[cp][a.0].total_cmp(&probs[cp][b.0]));
        if let Some((_, op)) = best {
            out.ops[cp] = *op;
        }
    }
    out
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
        let capped = cap_skips(&space, &p, &arch, 2);
        let skips: Vec<usize> = (0..6).filter(|&cp| capped.ops[cp] == Op::SkipConnect).collect();
        assert_eq!(skips, [2, 4], "the two strongest skips stay");
        assert_eq!((capped.ops[1], capped.ops[3]), (Op::NorConv1x1, Op::AvgPool3x3));
        let next = keep_strongest(&space, &p, 2);
        assert_eq!(next.choices[0].ops, [Op::None, Op::NorConv1x1]);
        assert_eq!(next.choices[5].ops.len(), 2);
        assert!(next.choices[5].ops.contains(&Op::NorConv3x3));
    }
}
