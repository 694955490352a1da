//! Architecture parameters: α, one 1-D tensor per choice point over its surviving ops, and the Adam
//! optimiser that updates them (PyTorch's `torch.optim.Adam` rule with L2 weight decay, as DARTS's
//! code uses it). Written here rather than taken from `tch::nn::Optimizer` because its state (the
//! moments and the step count) must go into the method's checkpoint, so that a killed search resumes
//! exactly where it stopped.
use std::collections::HashMap;

use anyhow::{bail, Result};
use pwsnas_models::Space;
use tch::{Device, Kind, Tensor};

use super::settings::GradientSettings;

const ALPHA: &str = "method.alpha.";
const MOMENT1: &str = "method.adam.m.";
const MOMENT2: &str = "method.adam.v.";

/// α of every choice point of a space, each a leaf tensor that requires a gradient.
pub struct Alphas {
    pub t: Vec<Tensor>,
}

impl Alphas {
    /// DARTS's initialisation, 1e-3·N(0, 1), from a generator seeded by `seed`.
    pub fn init(space: &Space, seed: u64, device: Device) -> Alphas {
        tch::manual_seed(seed as i64);
        let t = space
            .choices
            .iter()
            .map(|cp| {
                (Tensor::randn([cp.ops.len() as i64], (Kind::Float, device)) * 1e-3).set_requires_grad(true)
            })
            .collect();
        Alphas { t }
    }

    /// softmax(α) of every choice point (the DARTS mix's weights), differentiable in α.
    pub fn softmax(&self) -> Vec<Tensor> {
        self.t.iter().map(|a| a.softmax(0, Kind::Float)).collect()
    }

    /// softmax(α) as numbers, per choice point.
    pub fn probs(&self) -> Vec<Vec<f64>> {
        tch::no_grad(|| {
            self.softmax()
                .iter()
                .map(|p| Vec::<f64>::try_from(p.to_kind(Kind::Double)).expect("1-D"))
                .collect()
        })
    }

    pub fn named(&self) -> Vec<(String, Tensor)> {
        self.t.iter().enumerate().map(|(cp, a)| (format!("{ALPHA}{cp}"), a.detach())).collect()
    }

    /// α stored in a checkpoint, which must fit `space` (one tensor per choice point, one value per op).
    pub fn load(tensors: &HashMap<String, Tensor>, space: &Space, device: Device) -> Result<Alphas> {
        let mut t = Vec::new();
        for (cp, choice) in space.choices.iter().enumerate() {
            let name = format!("{ALPHA}{cp}");
            let Some(a) = tensors.get(&name) else { bail!("the method checkpoint has no '{name}'") };
            if a.size() != [choice.ops.len() as i64] {
                bail!(
                    "the method checkpoint's '{name}' has shape {:?}, but {} has {} ops",
                    a.size(),
                    choice.name,
                    choice.ops.len()
                );
            }
            t.push(a.to_kind(Kind::Float).to_device(device).set_requires_grad(true));
        }
        Ok(Alphas { t })
    }
}

/// Adam with L2 weight decay over a list of tensors (PyTorch's update rule).
pub struct Adam {
    lr: f64,
    betas: [f64; 2],
    weight_decay: f64,
    /// Steps taken (bias correction).
    pub steps: usize,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
}

impl Adam {
    pub fn new(lr: f64, betas: [f64; 2], weight_decay: f64, params: &[Tensor]) -> Adam {
        let zeros = |t: &Tensor| t.detach().zeros_like();
        Adam {
            lr,
            betas,
            weight_decay,
            steps: 0,
            m: params.iter().map(zeros).collect(),
            v: params.iter().map(zeros).collect(),
        }
    }

    /// The optimiser of `alphas` with the `[gradient]` settings' α learning rate, betas and decay.
    pub fn for_alphas(g: &GradientSettings, alphas: &Alphas) -> Adam {
        Adam::new(g.alpha_lr, g.alpha_betas, g.alpha_weight_decay, &alphas.t)
    }

    /// One update of `params` by `grads` (same order; an undefined gradient leaves its tensor alone).
    pub fn step(&mut self, params: &[Tensor], grads: &[Tensor]) {
        self.steps += 1;
        let [b1, b2] = self.betas;
        let (c1, c2) = (1.0 - b1.powi(self.steps as i32), 1.0 - b2.powi(self.steps as i32));
        tch::no_grad(|| {
            for ((p, g), (m, v)) in params.iter().zip(grads).zip(self.m.iter_mut().zip(self.v.iter_mut())) {
                if !g.defined() {
                    continue;
                }
                let g = g + p * self.weight_decay;
                *m = &*m * b1 + &g * (1.0 - b1);
                *v = &*v * b2 + &g * &g * (1.0 - b2);
                let update = (&*m / c1) / ((&*v / c2).sqrt() + 1e-8) * self.lr;
                let _ = p.shallow_clone().g_sub_(&update);
            }
        });
    }

    pub fn state(&self) -> Vec<(String, Tensor)> {
        let m = self.m.iter().enumerate().map(|(i, t)| (format!("{MOMENT1}{i}"), t.shallow_clone()));
        let v = self.v.iter().enumerate().map(|(i, t)| (format!("{MOMENT2}{i}"), t.shallow_clone()));
        m.chain(v).collect()
    }

    /// Restores the moments from a checkpoint (each must fit its parameter) and the step count.
    pub fn load_state(
        &mut self,
        tensors: &HashMap<String, Tensor>,
        steps: usize,
        device: Device,
    ) -> Result<()> {
        for (prefix, slots) in [(MOMENT1, &mut self.m), (MOMENT2, &mut self.v)] {
            for (i, slot) in slots.iter_mut().enumerate() {
                let name = format!("{prefix}{i}");
                let Some(t) = tensors.get(&name) else { bail!("the method checkpoint has no '{name}'") };
                if t.size() != slot.size() {
                    bail!(
                        "the method checkpoint's '{name}' has shape {:?}, expected {:?}",
                        t.size(),
                        slot.size()
                    );
                }
                *slot = t.to_kind(Kind::Float).to_device(device);
            }
        }
        self.steps = steps;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// torch.optim.Adam(lr=0.1, betas=(0.5, 0.999), weight_decay=0.1) on f(w) = w²/2, by hand.
    #[test]
    fn adam_follows_the_pytorch_update_rule() {
        let p = Tensor::from_slice(&[1.0f32]).set_requires_grad(true);
        let mut adam = Adam::new(0.1, [0.5, 0.999], 0.1, std::slice::from_ref(&p));
        let (mut w, mut m, mut v) = (1.0f64, 0.0f64, 0.0f64);
        for t in 1..=3 {
            let g = Tensor::run_backward(&[(&p * &p).sum(Kind::Float) * 0.5], &[&p], false, false);
            adam.step(std::slice::from_ref(&p), &g);
            let g = w + 0.1 * w;
            m = 0.5 * m + 0.5 * g;
            v = 0.999 * v + 0.001 * g * g;
            w -= 0.1 * (m / (1.0 - 0.5f64.powi(t))) / ((v / (1.0 - 0.999f64.powi(t))).sqrt() + 1e-8);
            assert!((p.double_value(&[0]) - w).abs() < 1e-5, "step {t}: {} vs {w}", p.double_value(&[0]));
        }
    }
}
