//! How a fresh network's convolution weights are drawn.
//!
//! Why this is a setting and not a detail: the angle metric measures how far each operator's
//! weights rotate from their starting point *relative to their norm*, so the starting norms are
//! part of the method. ABS's NAS-Bench-201 code (Hu et al., ECCV 2020) builds its supernet with
//! PyTorch's default initialisation; NAS-Bench-201 itself (Dong & Yang, ICLR 2020) and DARTS train
//! their stand-alone networks with Kaiming-normal fan-out. The fan-out draw's standard deviation is
//! √(6·C_in/C_out) times the default's for a dense conv (2.4× where the channels stay the same);
//! the larger convolutions rotate less against the pools' constant kernels and the identities,
//! and ABS's own composition then ranks NAS-Bench-201's cells *backwards* (docs/nb201.md). The
//! supernet and the retrained child therefore each have their own `init` setting.
//!
//! Every conv is built with the fan-out draw ([`super::layers::Conv`]); [`Init::Pytorch`] redraws
//! the conv weights afterwards, in the order of their variable names, from libtorch's generator
//! (seeded by the caller), so a network is the same for the same seed. Linear layers already use
//! PyTorch's default (uniform in ±1/√fan_in) and BatchNorms start at γ = 1, β = 0 under both.
use tch::nn;

/// The distribution of a fresh network's conv weights (`supernet.init`, `retrain.init`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Init {
    /// PyTorch's default for `nn.Conv2d`: Kaiming-uniform with a = √5, i.e. uniform in
    /// ±1/√fan_in with fan_in = C_in/groups · k². What ABS's NAS-Bench-201 supernet uses.
    Pytorch,
    /// Kaiming-normal, fan-out, ReLU gain: normal with std √(2 / (C_out · k²)). What NAS-Bench-201
    /// and DARTS train stand-alone networks with, and what pwsnas used everywhere before `init`
    /// existed.
    FanOut,
}

impl Init {
    /// Redraws the conv weights of `vs` (every trainable 4-D variable) from this distribution, in
    /// the order of their names. [`Init::FanOut`] is how the convs were built: nothing to do.
    pub fn apply(self, vs: &nn::VarStore) {
        match self {
            Init::FanOut => {}
            Init::Pytorch => {
                let mut convs: Vec<(String, tch::Tensor)> =
                    vs.variables().into_iter().filter(|(_, t)| t.dim() == 4 && t.requires_grad()).collect();
                convs.sort_by(|a, b| a.0.cmp(&b.0));
                tch::no_grad(|| {
                    for (_, w) in convs {
                        let size = w.size();
                        let fan_in = (size[1] * size[2] * size[3]) as f64;
                        let bound = 1.0 / fan_in.sqrt();
                        let _ = w.shallow_clone().uniform_(-bound, bound);
                    }
                });
            }
        }
    }

    /// The name as settings and flags spell it.
    pub fn name(self) -> &'static str {
        match self {
            Init::Pytorch => "pytorch",
            Init::FanOut => "fan-out",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv_store(seed: i64) -> nn::VarStore {
        tch::manual_seed(seed);
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let p = vs.root();
        let _ = crate::net::layers::Conv::new(&(&p / "a"), 8, 16, 3, 1, 1);
        let _ = crate::net::layers::Conv::new(&(&p / "b"), 16, 16, 3, 1, 16);
        let _ = crate::net::layers::Linear::new(&(&p / "fc"), 16, 4);
        vs
    }

    #[test]
    fn pytorch_init_draws_convs_within_one_over_root_fan_in_and_leaves_the_rest() {
        let vs = conv_store(0);
        let fc_before = vs.variables()["fc.weight"].copy();
        Init::Pytorch.apply(&vs);
        let vars = vs.variables();
        for (name, fan_in) in [("a.weight", 8.0 * 9.0), ("b.weight", 9.0)] {
            let w = &vars[name];
            let bound = 1.0 / f64::sqrt(fan_in);
            let max = w.abs().max().double_value(&[]);
            // A uniform draw of 1152 (144) values fills most of its interval.
            assert!(max <= bound && max > 0.8 * bound, "{name}: max {max}, bound {bound}");
        }
        assert!(vars["fc.weight"].equal(&fc_before), "linear layers keep their draw");
    }

    #[test]
    fn the_same_seed_gives_the_same_weights_and_fan_out_changes_nothing() {
        let (a, b) = (conv_store(3), conv_store(3));
        let fan_out = vs_copy(&a);
        Init::FanOut.apply(&a);
        assert!(a.variables()["a.weight"].equal(&fan_out));
        tch::manual_seed(5);
        Init::Pytorch.apply(&a);
        tch::manual_seed(5);
        Init::Pytorch.apply(&b);
        assert!(a.variables()["a.weight"].equal(&b.variables()["a.weight"]));
        assert!(!a.variables()["a.weight"].equal(&fan_out));
        // The fan-out draw of a 3×3 conv from 8 to 16 channels: std √(2 / (16 · 9)) ≈ 0.118,
        // against the uniform's ≈ 0.068 (bound 1/√72 / √3).
        let std = |t: &tch::Tensor| t.std(true).double_value(&[]);
        assert!(std(&fan_out) > 1.4 * std(&a.variables()["a.weight"]));
    }

    fn vs_copy(vs: &nn::VarStore) -> tch::Tensor {
        vs.variables()["a.weight"].copy()
    }
}
