//! The data of a run: the dataset named by `--data`, split into train / validation / test, with the
//! normalisation (computed on the training part) and the augmentation, plus the bridge from
//! `f32` batches to tensors.
use anyhow::{bail, Context, Result};
use pwsnas_datasets::{
    batches, load, split_train_val, Augment, Batch, DataSpec, Dataset, LoadOptions, Normalization, Order,
};
use tch::{Device, Kind, Tensor};

use crate::settings::Settings;

pub struct RunData {
    /// Dataset name, e.g. `fashion-mnist`.
    pub name: String,
    pub classes: Vec<String>,
    pub train: Dataset,
    /// Held out of the training split (seeded): what the search's accuracy is measured on.
    pub val: Dataset,
    pub test: Dataset,
    pub norm: Normalization,
    pub augment: Augment,
}

impl RunData {
    pub fn load(settings: &Settings) -> Result<RunData> {
        let spec: DataSpec =
            settings.data.parse().with_context(|| format!("setting data = '{}'", settings.data))?;
        let opts = LoadOptions {
            image_size: settings.image_size.map(|s| (s, s)),
            seed: settings.seed,
            ..Default::default()
        };
        let splits = load(&spec, &opts)?;
        if splits.train.height != splits.train.width {
            bail!(
                "the search spaces take square images but {} has {}×{} images: pass --image-size N to resize",
                settings.data,
                splits.train.height,
                splits.train.width
            );
        }
        let (train, val) = split_train_val(&splits.train, settings.val_fraction, settings.seed);
        let norm = Normalization::compute(&train);
        let augment = Augment::standard_for(&splits.name, train.height);
        Ok(RunData {
            name: splits.name,
            classes: train.classes.clone(),
            train,
            val,
            test: splits.test,
            norm,
            augment,
        })
    }

    /// `[channels, height, width]`.
    pub fn shape(&self) -> [usize; 3] {
        [self.train.channels, self.train.height, self.train.width]
    }
}

/// Images and labels of a batch as tensors on `device`.
pub fn to_tensors(batch: &Batch, device: Device) -> (Tensor, Tensor) {
    let dims = [batch.n as i64, batch.channels as i64, batch.height as i64, batch.width as i64];
    let x = Tensor::from_slice(&batch.images).view(dims).to_device(device);
    let y = Tensor::from_slice(&batch.labels).to_device(device);
    (x, y)
}

/// Top-1 accuracy of `logits_of` over the first `limit` images of `ds` (all when `None`).
pub fn accuracy(
    ds: &Dataset,
    norm: &Normalization,
    limit: Option<usize>,
    batch_size: usize,
    device: Device,
    mut logits_of: impl FnMut(&Tensor) -> Tensor,
) -> f64 {
    let n = limit.map_or(ds.len(), |l| l.min(ds.len()));
    let subset;
    let ds = if n < ds.len() {
        subset = ds.subset(&(0..n).collect::<Vec<_>>());
        &subset
    } else {
        ds
    };
    let mut correct = 0i64;
    tch::no_grad(|| {
        for batch in batches(ds, norm, batch_size, Order::Sequential, &Augment::none(), false, 0) {
            let (x, y) = to_tensors(&batch, device);
            let pred = logits_of(&x).argmax(1, false);
            correct += pred.eq_tensor(&y).to_kind(Kind::Int64).sum(Kind::Int64).int64_value(&[]);
        }
    });
    if n == 0 {
        0.0
    } else {
        correct as f64 / n as f64
    }
}
