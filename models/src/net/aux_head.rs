//! An auxiliary classifier for training a stand-alone network (DARTS's `AuxiliaryHeadCIFAR`, Liu et
//! al., ICLR 2019, after Szegedy et al.'s auxiliary towers): a second, small head on an inner
//! feature map whose loss, weighted, is added to the main loss during training only.
//!
//! Why it has its own variables: the head is scaffolding. It is never exported, its parameters are
//! not the child's (DARTS's 3.3 M for DARTS_V2 leaves it out), and the child's weights must not
//! change with it, so it lives in a `VarStore` of its own; the trainer checkpoints it beside the
//! child's weights ([`AuxHead::named_tensors`], [`AuxHead::load`]) and the exported weights never
//! see it.
//!
//! Shape: ReLU, average pooling to 2×2 (kernel `size − 3`, stride 3, padding not counted, which is
//! DARTS's 5×5/3 on its 8×8 maps and gives 2×2 for any size ≥ 4), 1×1 conv to 128 + BN + ReLU, 2×2
//! conv to 768 + BN + ReLU, a linear classifier.
use std::collections::HashMap;

use tch::{nn, Device, Tensor};

use super::layers::{Act, ConvBn, Linear, Mode, Param};
use crate::error::{ModelError, Result};

/// Where a network offers an auxiliary head: the feature map it reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuxShape {
    pub channels: usize,
    /// Height = width of the feature map.
    pub size: usize,
    pub classes: usize,
}

/// The smallest feature map the head's 2×2 pooling fits.
pub const MIN_SIZE: usize = 4;

/// The auxiliary classifier, with its own variables.
pub struct AuxHead {
    vs: nn::VarStore,
    pool: i64,
    reduce: ConvBn,
    expand: ConvBn,
    classifier: Linear,
}

impl AuxHead {
    /// A freshly initialised head for feature maps of `shape` (drawn from libtorch's generator).
    /// Fails, naming the size, if the map is smaller than [`MIN_SIZE`].
    pub fn new(shape: AuxShape, device: Device) -> Result<AuxHead> {
        if shape.size < MIN_SIZE {
            return Err(ModelError::NoAuxHead(format!(
                "it pools its {0}×{0} feature map to 2×2 and needs at least {MIN_SIZE}×{MIN_SIZE}",
                shape.size
            )));
        }
        let vs = nn::VarStore::new(device);
        let root = vs.root() / "aux";
        let reduce = ConvBn::new(&(&root / "reduce"), Act::None, shape.channels, 128, 1, 1, 1, Act::Relu);
        let expand = ConvBn::new(&(&root / "expand"), Act::None, 128, 768, 2, 1, 1, Act::Relu);
        let classifier = Linear::new(&(&root / "classifier"), 768, shape.classes);
        Ok(AuxHead { vs, pool: (shape.size - 3) as i64, reduce, expand, classifier })
    }

    /// Logits of the head on a feature map `[N, channels, size, size]`.
    pub fn forward(&self, features: &Tensor, mode: Mode) -> Tensor {
        let x = features.relu().avg_pool2d([self.pool, self.pool], [3, 3], [0, 0], false, false, None::<i64>);
        let x = self.expand.forward(&self.reduce.forward(&x, mode), mode);
        self.classifier.forward(&x.flatten(1, -1))
    }

    /// The tensors a step trains.
    pub fn trainable(&self) -> Vec<&Param> {
        let mut out = Vec::new();
        self.reduce.trainable(&mut out);
        self.expand.trainable(&mut out);
        self.classifier.trainable(&mut out);
        out
    }

    /// Every variable (BN statistics included), named under `aux/`, for a checkpoint.
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        let mut v: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Loads every variable from `tensors` by name; fails, naming the variable, if one is missing or
    /// has another shape.
    pub fn load(&self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        super::load_variables(&self.vs, tensors, "auxiliary head variable")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn the_head_pools_any_map_of_at_least_4_pixels_to_2x2_and_refuses_smaller() {
        for size in [4, 7, 8, 13] {
            let head = AuxHead::new(AuxShape { channels: 6, size, classes: 3 }, Device::Cpu).unwrap();
            let x = Tensor::randn([2, 6, size as i64, size as i64], (Kind::Float, Device::Cpu));
            assert_eq!(head.forward(&x, Mode::TRAIN).size(), [2, 3], "size {size}");
        }
        let err = AuxHead::new(AuxShape { channels: 6, size: 3, classes: 3 }, Device::Cpu).err().unwrap();
        assert!(err.to_string().contains("3×3 feature map"), "{err}");
    }

    #[test]
    fn a_checkpoint_round_trips_and_a_wrong_one_is_named() {
        let shape = AuxShape { channels: 4, size: 4, classes: 2 };
        let a = AuxHead::new(shape, Device::Cpu).unwrap();
        let b = AuxHead::new(shape, Device::Cpu).unwrap();
        let x = Tensor::randn([3, 4, 4, 4], (Kind::Float, Device::Cpu));
        assert!(!a.forward(&x, Mode::EVAL).equal(&b.forward(&x, Mode::EVAL)));
        let saved: HashMap<String, Tensor> = a.named_tensors().into_iter().collect();
        assert!(saved.keys().all(|k| k.starts_with("aux.")), "{:?}", saved.keys());
        b.load(&saved).unwrap();
        assert!(a.forward(&x, Mode::EVAL).equal(&b.forward(&x, Mode::EVAL)));
        let mut broken = saved;
        broken.remove("aux.classifier.bias");
        let err = b.load(&broken).unwrap_err().to_string();
        assert!(err.contains("'aux.classifier.bias' is missing"), "{err}");
    }
}
