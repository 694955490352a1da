//! Evaluating a child with the supernet's shared weights (SPOS practice): reset the BatchNorm
//! statistics of the layers the child uses, re-estimate them as a cumulative average over a few
//! training batches, then measure top-1 on a fixed validation subset.
//!
//! The calibration and validation batches are converted to tensors once, so evaluating thousands of
//! children (the accuracy metric, the search) costs only forward passes.
use pwsnas_datasets::{batches, Augment, Order};
use pwsnas_models::{Arch, Mode, Supernet};
use tch::{Device, Kind, Tensor};

use crate::data::{to_tensors, RunData};
use crate::train::derive_seed;

pub struct Evaluator {
    calibration: Vec<Tensor>,
    validation: Vec<(Tensor, Tensor)>,
    images: usize,
}

impl Evaluator {
    /// `bn_batches` batches of training images (a seeded sample, no augmentation) and the first
    /// `val_images` images of the validation split.
    pub fn new(
        data: &RunData,
        bn_batches: usize,
        batch_size: usize,
        val_images: usize,
        seed: u64,
        device: Device,
    ) -> Evaluator {
        let calib_seed = derive_seed(seed, "bn-calibration", 0);
        let calibration =
            batches(&data.train, &data.norm, batch_size, Order::Shuffled, &Augment::none(), true, calib_seed)
                .take(bn_batches)
                .map(|b| to_tensors(&b, device).0)
                .collect();
        let n = val_images.min(data.val.len());
        let val = data.val.subset(&(0..n).collect::<Vec<_>>());
        let validation =
            batches(&val, &data.norm, batch_size.max(256), Order::Sequential, &Augment::none(), false, 0)
                .map(|b| to_tensors(&b, device))
                .collect();
        Evaluator { calibration, validation, images: n }
    }

    /// Number of validation images each evaluation uses.
    pub fn images(&self) -> usize {
        self.images
    }

    /// BN recalibration for `arch`, then its top-1 accuracy on the validation subset.
    pub fn accuracy(&self, net: &Supernet, arch: &Arch) -> f64 {
        tch::no_grad(|| {
            if !self.calibration.is_empty() {
                for bn in net.batch_norms_for(arch) {
                    bn.reset_stats();
                }
                for (t, x) in self.calibration.iter().enumerate() {
                    let _ = net.forward(x, arch, Mode::recalibrate(t));
                }
            }
            let mut correct = 0i64;
            for (x, y) in &self.validation {
                let pred = net.forward(x, arch, Mode::EVAL).argmax(1, false);
                correct += pred.eq_tensor(y).to_kind(Kind::Int64).sum(Kind::Int64).int64_value(&[]);
            }
            if self.images == 0 {
                0.0
            } else {
                correct as f64 / self.images as f64
            }
        })
    }
}
