//! One epoch of SGD over the training split, for any network and any way of choosing children: the
//! supernet passes its sampler, retraining passes its one child.
use std::collections::HashSet;
use std::time::Instant;

use pwsnas_datasets::{batches, Order};
use pwsnas_models::net::aux_head::AuxHead;
use pwsnas_models::{Arch, Mode, Param, Supernet};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Reduction, Tensor};

use super::derive_seed;
use super::sgd::{cosine_lr, Sgd};
use crate::data::{to_tensors, RunData};
use crate::progress::Progress;
use crate::settings::TrainSettings;

/// What an epoch did.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EpochLog {
    pub epoch: usize,
    pub steps: usize,
    pub loss: f64,
    pub train_accuracy: f64,
    pub lr: f64,
    pub images_per_sec: f64,
    pub seconds: f64,
}

/// The epochs one cosine schedule spans (training restarts the schedule at each phase: the
/// warm-up of the supernet, each training between shrinking rounds, the retraining).
#[derive(Clone, Copy, Debug)]
pub struct Phase {
    pub start: usize,
    pub end: usize,
}

pub fn steps_per_epoch(cfg: &TrainSettings, data: &RunData) -> usize {
    let full = data.train.len() / cfg.batch_size;
    cfg.steps_per_epoch.map_or(full, |s| s.min(full)).max(1)
}

/// What one step saw. Loss and correct counts stay on the device (no synchronisation per step).
pub struct StepStats {
    /// Sum over the step's children of the mean batch loss.
    pub loss_sum: Tensor,
    pub correct: Tensor,
    /// Images seen (batch size × children).
    pub seen: usize,
}

/// One SGD step on a batch: forward of every child in `mode` (a training mode, see
/// [`train_mode`]), one backward of the summed losses (FairNAS's accumulated gradients), one
/// update of the tensors the children used. With an auxiliary head (a stand-alone child with
/// `cfg.auxiliary_weight > 0`), each child's loss is DARTS's `loss + w · loss_aux` and the step
/// updates the head too; the reported loss is that sum, the accuracy the main head's.
#[allow(clippy::too_many_arguments)]
pub fn train_step(
    net: &Supernet,
    aux: Option<&AuxHead>,
    sgd: &mut Sgd,
    cfg: &TrainSettings,
    x: &Tensor,
    y: &Tensor,
    children: &[Arch],
    lr: f64,
    mode: Mode,
) -> StepStats {
    let zeros = || Tensor::zeros([], (Kind::Double, x.device()));
    let mut stats = StepStats { loss_sum: zeros(), correct: zeros(), seen: 0 };
    let mut names = HashSet::new();
    let mut params: Vec<&Param> = Vec::new();
    let mut total: Option<Tensor> = None;
    for child in children {
        let ce = |logits: &Tensor| {
            logits.cross_entropy_loss::<Tensor>(y, None, Reduction::Mean, -100, cfg.label_smoothing)
        };
        let (logits, features) = match aux {
            Some(_) => net.forward_with_aux(x, child, mode),
            None => (net.forward(x, child, mode), None),
        };
        let loss = match (aux, features) {
            (Some(head), Some(features)) => {
                ce(&logits) + ce(&head.forward(&features, mode)) * cfg.auxiliary_weight
            }
            _ => ce(&logits),
        };
        stats.loss_sum += loss.detach().to_kind(Kind::Double);
        stats.correct += logits.argmax(1, false).eq_tensor(y).sum(Kind::Double);
        stats.seen += x.size()[0] as usize;
        total = Some(match total {
            Some(t) => t + loss,
            None => loss,
        });
        for p in net.trainable_for(child) {
            if names.insert(p.name.as_str()) {
                params.push(p);
            }
        }
    }
    let Some(total) = total else { return stats };
    params.extend(aux.map(AuxHead::trainable).unwrap_or_default());
    let inputs: Vec<&Tensor> = params.iter().map(|p| &p.tensor).collect();
    let grads = Tensor::run_backward(&[total], &inputs, false, false);
    sgd.step(&params, grads, lr, cfg.grad_clip);
    stats
}

/// The forward mode of training epoch `epoch` of `phase`: DARTS's drop-path probability grows
/// linearly from 0 at the phase's first epoch, `cfg.drop_path · (epoch − start) / epochs`, as the
/// DARTS code's `drop_path_prob * epoch / epochs`.
pub fn train_mode(cfg: &TrainSettings, epoch: usize, phase: Phase) -> Mode {
    let epochs = (phase.end - phase.start).max(1) as f64;
    Mode::TRAIN.with_drop_path(cfg.drop_path * (epoch - phase.start) as f64 / epochs)
}

/// Trains `net` for epoch `epoch` (0-based) of `phase`, with the dataset's augmentation plus
/// `cfg.cutout`. With drop-path on, libtorch's generator is seeded from `seed` and the epoch first,
/// so that the masks, like the batches, do not depend on where a run was resumed.
#[allow(clippy::too_many_arguments)]
pub fn train_epoch(
    net: &Supernet,
    aux: Option<&AuxHead>,
    sgd: &mut Sgd,
    cfg: &TrainSettings,
    data: &RunData,
    device: Device,
    seed: u64,
    epoch: usize,
    phase: Phase,
    mut choose: impl FnMut(&mut ChaCha8Rng) -> Vec<Arch>,
    progress: &Progress,
    label: &str,
) -> EpochLog {
    let steps = steps_per_epoch(cfg, data);
    let total = steps * (phase.end - phase.start);
    let mut arch_rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, "arch", epoch as u64));
    let data_seed = derive_seed(seed, "data", epoch as u64);
    let mode = train_mode(cfg, epoch, phase);
    if cfg.drop_path > 0.0 {
        tch::manual_seed(derive_seed(seed, "drop-path", epoch as u64) as i64);
    }
    let augment = data.augment.with_cutout(cfg.cutout);
    let bar = progress.bar(steps as u64, &format!("{label} {}", epoch + 1));
    let start = Instant::now();
    let (mut seen, mut lr) = (0usize, cfg.lr);
    let mut loss_sum = Tensor::zeros([], (Kind::Double, device));
    let mut correct = Tensor::zeros([], (Kind::Double, device));
    let mut done = 0;
    for (i, batch) in
        batches(&data.train, &data.norm, cfg.batch_size, Order::Shuffled, &augment, true, data_seed)
            .take(steps)
            .enumerate()
    {
        lr = cosine_lr(cfg.lr, (epoch - phase.start) * steps + i, total);
        let (x, y) = to_tensors(&batch, device);
        let children = choose(&mut arch_rng);
        let step = train_step(net, aux, sgd, cfg, &x, &y, &children, lr, mode);
        loss_sum += step.loss_sum;
        correct += step.correct;
        seen += step.seen;
        done += 1;
        bar.inc(1);
        if i % 10 == 0 && !bar.is_hidden() {
            let mean = loss_sum.double_value(&[]) / (seen as f64 / batch.n as f64);
            bar.set_message(format!("loss {mean:.3} lr {lr:.4}"));
        }
    }
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    let images = (done * cfg.batch_size) as f64;
    let passes = seen as f64 / cfg.batch_size as f64;
    let (loss_sum, correct) = (loss_sum.double_value(&[]), correct.double_value(&[]));
    EpochLog {
        epoch,
        steps: done,
        loss: if passes > 0.0 { loss_sum / passes } else { 0.0 },
        train_accuracy: if seen > 0 { correct / seen as f64 } else { 0.0 },
        lr,
        images_per_sec: if seconds > 0.0 { images / seconds } else { 0.0 },
        seconds,
    }
}
