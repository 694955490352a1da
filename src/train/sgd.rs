//! SGD with momentum, Nesterov and weight decay, following PyTorch's `torch.optim.SGD` update rule,
//! with gradient-norm clipping folded into the update.
//!
//! Why not `tch::nn::Optimizer`: a supernet step must update only the tensors of the sampled child
//! (SPOS with modern PyTorch semantics: parameters without a gradient are skipped, so momentum and
//! weight decay do not keep moving unused operators), and the momentum buffers must be saved in
//! checkpoints so a resumed run continues exactly where it stopped. Both need the state in our hands.
//!
//! Why it is written the way it is: a supernet step touches hundreds of small tensors, so the cost
//! is the number of kernels launched per tensor, not arithmetic. Gradients come from
//! `autograd::grad` (fresh tensors: nothing to zero, nothing accumulated into old ones), the clip
//! coefficient stays on the device (no synchronisation), and the update takes five in-place kernels
//! per tensor. The momentum buffer is kept scaled by `1 - m`, which turns PyTorch's
//! `buf = m·buf + g` into one `lerp` (`b ← b + (1-m)(g - b)`); the update `p -= lr·(g + m·buf)`
//! becomes two `addcmul`s with device scalars. The arithmetic is PyTorch's, up to rounding.
use std::collections::HashMap;

use pwsnas_models::Param;
use tch::{Device, Kind, Tensor};

use crate::settings::TrainSettings;

const PREFIX: &str = "optim.momentum.";

pub struct Sgd {
    momentum: f64,
    nesterov: bool,
    weight_decay: f64,
    /// Momentum buffers, scaled by `1 - momentum`.
    buffers: HashMap<String, Tensor>,
}

/// A scalar on `device`, made without a host-to-device copy (a fill kernel, no synchronisation).
fn scalar(value: f64, device: Device) -> Tensor {
    Tensor::full([], value, (Kind::Float, device))
}

impl Sgd {
    pub fn new(cfg: &TrainSettings) -> Sgd {
        Sgd {
            momentum: cfg.momentum,
            nesterov: cfg.nesterov,
            weight_decay: cfg.weight_decay,
            buffers: HashMap::new(),
        }
    }

    /// One update of `params` with their gradients `grads` (same order; undefined = unused, skipped)
    /// at learning rate `lr`, after scaling the gradients so their global L2 norm is at most
    /// `max_norm` (when given).
    pub fn step(&mut self, params: &[&Param], mut grads: Vec<Tensor>, lr: f64, max_norm: Option<f64>) {
        assert_eq!(params.len(), grads.len(), "one gradient per parameter");
        let Some(device) = grads.iter().find(|g| g.defined()).map(Tensor::device) else { return };
        tch::no_grad(|| {
            if let Some(max) = max_norm {
                let flat: Vec<Tensor> =
                    grads.iter().filter(|g| g.defined()).map(|g| g.flatten(0, -1)).collect();
                let norm = Tensor::cat(&flat, 0).norm();
                let coef = (scalar(max, device) / (norm + 1e-6)).clamp_max(1.0);
                for g in grads.iter_mut().filter(|g| g.defined()) {
                    let _ = g.g_mul_(&coef);
                }
            }
            let m = self.momentum;
            let wd = scalar(self.weight_decay, device);
            let neg_lr = scalar(-lr, device);
            // p -= lr·buf = lr·b/(1-m) (plain momentum), or lr·m·buf = lr·m·b/(1-m) (Nesterov's extra term).
            let buf_coef = scalar(if self.nesterov { -lr * m / (1.0 - m) } else { -lr / (1.0 - m) }, device);
            for (p, mut g) in params.iter().zip(grads) {
                if !g.defined() {
                    continue;
                }
                let mut w = p.tensor.shallow_clone();
                if self.weight_decay != 0.0 {
                    let _ = g.addcmul_(&w, &wd);
                }
                if m == 0.0 {
                    let _ = w.addcmul_(&g, &neg_lr);
                    continue;
                }
                let buf = self.buffers.entry(p.name.clone()).or_insert_with(|| g.zeros_like());
                let _ = buf.lerp_(&g, 1.0 - m);
                if self.nesterov {
                    let _ = w.addcmul_(&g, &neg_lr);
                }
                let _ = w.addcmul_(buf, &buf_coef);
            }
        });
    }

    /// The momentum part of `name`'s next update as PyTorch's SGD writes it, `momentum · buffer`
    /// (what DARTS's unrolled step adds to the gradient of its virtual step); `None` before the
    /// parameter's first step or without momentum.
    pub fn momentum_term(&self, name: &str) -> Option<Tensor> {
        let m = self.momentum;
        self.buffers.get(name).map(|b| b * (m / (1.0 - m)))
    }

    /// Momentum buffers as named tensors for a checkpoint.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        self.buffers.iter().map(|(n, t)| (format!("{PREFIX}{n}"), t.shallow_clone())).collect()
    }

    /// Restores momentum buffers from a checkpoint's tensors; each must belong to one of `params`
    /// (name and shape), so that a damaged checkpoint is refused here and never fails a later step.
    pub fn load_state(
        &mut self,
        tensors: &HashMap<String, Tensor>,
        params: &HashMap<String, Tensor>,
        device: Device,
    ) -> Result<(), String> {
        let mut buffers = HashMap::new();
        for (n, t) in tensors {
            let Some(name) = n.strip_prefix(PREFIX) else { continue };
            let param =
                params.get(name).ok_or_else(|| format!("momentum buffer '{n}' has no parameter '{name}'"))?;
            if t.size() != param.size() {
                return Err(format!(
                    "momentum buffer '{n}' has shape {:?}, its parameter {:?}",
                    t.size(),
                    param.size()
                ));
            }
            buffers.insert(name.to_string(), t.to_kind(param.kind()).to_device(device));
        }
        self.buffers = buffers;
        Ok(())
    }
}

/// Cosine learning rate at `step` of `total` (from `lr` down to 0).
pub fn cosine_lr(lr: f64, step: usize, total: usize) -> f64 {
    if total == 0 {
        return lr;
    }
    0.5 * lr * (1.0 + (std::f64::consts::PI * step as f64 / total as f64).cos())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn;

    fn param(vs: &nn::VarStore, value: f64, n: i64) -> Param {
        let w = vs.root().var("w", &[n], nn::Init::Const(value));
        Param { name: "w".into(), tensor: w }
    }

    fn grad_of_half_square(p: &Param) -> Vec<Tensor> {
        let loss = (&p.tensor * &p.tensor).sum(Kind::Float) * 0.5; // grad = w
        Tensor::run_backward(&[loss], &[&p.tensor], false, false)
    }

    /// The update rule of torch.optim.SGD(momentum=0.9, nesterov=True, weight_decay=0.1), by hand.
    #[test]
    fn matches_the_pytorch_update_rule() {
        for nesterov in [true, false] {
            let vs = nn::VarStore::new(Device::Cpu);
            let p = param(&vs, 1.0, 2);
            let cfg =
                TrainSettings { momentum: 0.9, nesterov, weight_decay: 0.1, ..TrainSettings::default() };
            let mut sgd = Sgd::new(&cfg);
            let (mut expected_w, mut buf) = (1.0f64, 0.0f64);
            for step in 0..4 {
                sgd.step(&[&p], grad_of_half_square(&p), 0.1, None);
                let g = expected_w + 0.1 * expected_w;
                buf = if step == 0 { g } else { 0.9 * buf + g };
                expected_w -= 0.1 * if nesterov { g + 0.9 * buf } else { buf };
                let got = p.tensor.double_value(&[0]);
                assert!(
                    (got - expected_w).abs() < 1e-6,
                    "nesterov {nesterov} step {step}: {got} vs {expected_w}"
                );
            }
            assert_eq!(sgd.state().len(), 1);
        }
    }

    #[test]
    fn unused_parameters_are_left_alone_and_clipping_bounds_the_norm() {
        let vs = nn::VarStore::new(Device::Cpu);
        let p = param(&vs, 3.0, 4);
        let mut sgd =
            Sgd::new(&TrainSettings { momentum: 0.0, weight_decay: 0.0, ..TrainSettings::default() });
        sgd.step(&[&p], vec![Tensor::new()], 0.1, Some(1.0));
        assert_eq!(p.tensor.double_value(&[0]), 3.0);
        // grad = w = 3 per entry, norm 6, clipped to 1: each entry of the step is 0.1 · 3/6.
        sgd.step(&[&p], grad_of_half_square(&p), 0.1, Some(1.0));
        assert!((p.tensor.double_value(&[0]) - (3.0 - 0.05)).abs() < 1e-5);
        assert!((cosine_lr(0.1, 0, 10) - 0.1).abs() < 1e-12 && cosine_lr(0.1, 10, 10).abs() < 1e-12);
    }
}
