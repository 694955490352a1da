//! SGD with momentum, Nesterov and weight decay, following PyTorch's `torch.optim.SGD` update rule.
//!
//! Why not `tch::nn::Optimizer`: a supernet step must update only the tensors of the sampled child
//! (SPOS with modern PyTorch semantics: parameters without a gradient are skipped, so momentum and
//! weight decay do not keep moving unused operators), and the momentum buffers must be saved in
//! checkpoints so a resumed run continues exactly where it stopped. Both need the state in our hands.
use std::collections::HashMap;

use pwsnas_models::Param;
use tch::{Device, Tensor};

use crate::settings::TrainSettings;

const PREFIX: &str = "optim.momentum.";

pub struct Sgd {
    momentum: f64,
    nesterov: bool,
    weight_decay: f64,
    buffers: HashMap<String, Tensor>,
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

    /// One update of `params` (those with a gradient) at learning rate `lr`; zeroes their gradients.
    pub fn step(&mut self, params: &[&Param], lr: f64) {
        tch::no_grad(|| {
            for p in params {
                let mut grad = p.tensor.grad();
                if !grad.defined() {
                    continue;
                }
                let mut d = if self.weight_decay != 0.0 {
                    &grad + &p.tensor * self.weight_decay
                } else {
                    grad.copy()
                };
                if self.momentum != 0.0 {
                    let buf = match self.buffers.get_mut(&p.name) {
                        Some(buf) => {
                            let _ = buf.g_mul_scalar_(self.momentum).g_add_(&d);
                            buf.shallow_clone()
                        }
                        None => {
                            let buf = d.copy();
                            self.buffers.insert(p.name.clone(), buf.shallow_clone());
                            buf
                        }
                    };
                    d = if self.nesterov { d + buf * self.momentum } else { buf };
                }
                let _ = p.tensor.shallow_clone().g_add_(&(d * -lr));
                let _ = grad.zero_();
            }
        });
    }

    /// Momentum buffers as named tensors for a checkpoint.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        self.buffers.iter().map(|(n, t)| (format!("{PREFIX}{n}"), t.shallow_clone())).collect()
    }

    /// Restores momentum buffers from a checkpoint's tensors.
    pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>, device: Device) {
        self.buffers = tensors
            .iter()
            .filter_map(|(n, t)| n.strip_prefix(PREFIX).map(|name| (name.to_string(), t.to_device(device))))
            .collect();
    }
}

/// Scales gradients so their global L2 norm is at most `max_norm`; returns the norm before.
pub fn clip_grad_norm(params: &[&Param], max_norm: f64) -> f64 {
    tch::no_grad(|| {
        let grads: Vec<Tensor> = params.iter().map(|p| p.tensor.grad()).filter(Tensor::defined).collect();
        if grads.is_empty() {
            return 0.0;
        }
        let sq: Vec<Tensor> = grads.iter().map(|g| g.square().sum(tch::Kind::Float)).collect();
        let norm = Tensor::stack(&sq, 0).sum(tch::Kind::Float).sqrt().double_value(&[]);
        if norm > max_norm {
            let scale = max_norm / (norm + 1e-6);
            for mut g in grads {
                let _ = g.g_mul_scalar_(scale);
            }
        }
        norm
    })
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

    /// The update rule of torch.optim.SGD(momentum=0.9, nesterov=True, weight_decay=0.1), by hand.
    #[test]
    fn matches_the_pytorch_update_rule() {
        let vs = nn::VarStore::new(Device::Cpu);
        let w = vs.root().var("w", &[2], nn::Init::Const(1.0));
        let p = Param { name: "w".into(), tensor: w.shallow_clone() };
        let cfg =
            TrainSettings { momentum: 0.9, nesterov: true, weight_decay: 0.1, ..TrainSettings::default() };
        let mut sgd = Sgd::new(&cfg);
        let (mut expected_w, mut buf) = (1.0f64, 0.0f64);
        for step in 0..3 {
            let loss = (&w * &w).sum(tch::Kind::Float) * 0.5; // grad = w
            loss.backward();
            sgd.step(&[&p], 0.1);
            let g = expected_w + 0.1 * expected_w;
            buf = if step == 0 { g } else { 0.9 * buf + g };
            expected_w -= 0.1 * (g + 0.9 * buf);
            let got = w.double_value(&[0]);
            assert!((got - expected_w).abs() < 1e-6, "step {step}: {got} vs {expected_w}");
        }
        assert_eq!(w.grad().abs().sum(tch::Kind::Float).double_value(&[]), 0.0);
        assert_eq!(sgd.state().len(), 1);
    }

    #[test]
    fn parameters_without_gradient_are_left_alone() {
        let vs = nn::VarStore::new(Device::Cpu);
        let w = vs.root().var("w", &[2], nn::Init::Const(1.0));
        let p = Param { name: "w".into(), tensor: w.shallow_clone() };
        let mut sgd = Sgd::new(&TrainSettings::default());
        sgd.step(&[&p], 0.1);
        assert_eq!(w.double_value(&[0]), 1.0);
        assert!(sgd.state().is_empty());
    }

    #[test]
    fn clipping_bounds_the_norm() {
        let vs = nn::VarStore::new(Device::Cpu);
        let w = vs.root().var("w", &[4], nn::Init::Const(3.0));
        let p = Param { name: "w".into(), tensor: w.shallow_clone() };
        (&w * &w).sum(tch::Kind::Float).backward(); // grad = 2w = 6 → norm 12
        let before = clip_grad_norm(&[&p], 1.0);
        assert!((before - 12.0).abs() < 1e-5);
        assert!((w.grad().norm().double_value(&[]) - 1.0).abs() < 1e-4);
        assert!((cosine_lr(0.1, 0, 10) - 0.1).abs() < 1e-12 && cosine_lr(0.1, 10, 10).abs() < 1e-12);
    }
}
