//! Retraining the chosen child from scratch: its stand-alone network, its own schedule, checkpoints
//! every epoch, and the final top-1 on the test split with libtorch. Writes `retrain/weights.safetensors`
//! (the weights `pwsnas export` takes), `retrain/last.safetensors` + `retrain/state.json` (resume;
//! with `retrain.auxiliary_weight`, the auxiliary head and its momentum too, which never reach
//! `weights.safetensors`), and `retrain/log.json` (per-epoch loss and accuracy).
use anyhow::{Context, Result};
use pwsnas_models::net::aux_head::AuxHead;
use pwsnas_models::{Arch, Mode, Space, SpaceKind, Supernet};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tch::Device;

use crate::data::{accuracy, RunData};
use crate::fsutil::{save_tensors, write_json};
use crate::progress::Progress;
use crate::run::{RunDir, Stage};
use crate::search::ArchFile;
use crate::settings::TrainSettings;
use crate::train::epoch::{train_epoch, EpochLog, Phase};
use crate::train::sgd::Sgd;
use crate::train::{checkpoint, derive_seed};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RetrainState {
    pub epoch: usize,
    pub arch: String,
    pub seed: u64,
    pub history: Vec<EpochLog>,
}

/// What retraining produced.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RetrainResult {
    pub arch: String,
    pub epochs: usize,
    pub test_accuracy: f64,
    pub test_images: usize,
    pub params: i64,
}

/// The stand-alone network of `arch` with the retrained weights.
pub fn load_trained(run: &RunDir, arch: &ArchFile, device: Device) -> Result<Supernet> {
    let kind = arch.kind()?;
    let child = kind.parse_arch(&arch.arch)?;
    let net = Supernet::standalone(&kind, &child, device);
    let file = run.retrain_dir().join("weights.safetensors");
    if !file.exists() {
        anyhow::bail!(
            "{} has no retrained weights ({} is missing): run `pwsnas train --run {}` (or finish `pwsnas search`) first",
            run.root.display(),
            file.display(),
            run.root.display()
        );
    }
    net.load(&crate::fsutil::load_tensors(&file)?)?;
    Ok(net)
}

/// The seed of training a child stand-alone under settings with this `seed`: its initial weights
/// and its batches. `pwsnas fidelity truth` uses it too, so a child's truth is what `pwsnas train`
/// gives it.
pub fn standalone_seed(seed: u64) -> u64 {
    derive_seed(seed, "retrain", 0)
}

/// DARTS's auxiliary head for training a child of `kind` alone when `cfg.auxiliary_weight > 0`
/// (drawn from libtorch's generator after the child's weights, so the child starts from the same
/// weights with or without it); none otherwise.
pub fn aux_head(kind: &SpaceKind, cfg: &TrainSettings, device: Device) -> Result<Option<AuxHead>> {
    if cfg.auxiliary_weight <= 0.0 {
        return Ok(None);
    }
    let shape = kind.aux_shape().with_context(|| {
        format!("setting retrain.auxiliary_weight: the {} space's network has no auxiliary head", kind.name())
    })?;
    Ok(Some(AuxHead::new(shape, device)?))
}

/// Epoch `epoch` (0-based) of training `child` alone (with its auxiliary head `aux`, if any) on the
/// cosine schedule of `cfg.epochs` epochs.
#[allow(clippy::too_many_arguments)]
pub fn standalone_epoch(
    net: &Supernet,
    aux: Option<&AuxHead>,
    sgd: &mut Sgd,
    cfg: &TrainSettings,
    data: &RunData,
    device: Device,
    seed: u64,
    epoch: usize,
    child: &Arch,
    progress: &Progress,
    label: &str,
) -> EpochLog {
    let phase = Phase { start: 0, end: cfg.epochs };
    let choose = |_: &mut _| vec![child.clone()];
    train_epoch(net, aux, sgd, cfg, data, device, seed, epoch, phase, choose, progress, label)
}

pub fn run_stage(
    run: &mut RunDir,
    arch: &ArchFile,
    data: &RunData,
    device: Device,
    progress: &Progress,
) -> Result<RetrainResult> {
    let dir = run.retrain_dir();
    if run.is_done(Stage::Retrain) {
        return crate::fsutil::read_json(&dir.join("result.json"));
    }
    run.begin(Stage::Retrain)?;
    let settings = run.info.settings.clone();
    let cfg = &settings.retrain;
    let kind = arch.kind()?;
    let child = kind.parse_arch(&arch.arch)?;
    let seed = standalone_seed(settings.seed);
    tch::manual_seed(seed as i64);
    let net = Supernet::initialised(&Space::single(kind.clone(), &child), device, cfg.init);
    let aux = aux_head(&kind, cfg, device)?;
    let mut sgd = Sgd::new(cfg);
    let mut state = RetrainState { epoch: 0, arch: arch.arch.clone(), seed, history: Vec::new() };
    if let Some((saved, tensors)) = checkpoint::read_state::<RetrainState>(&dir)? {
        if saved.arch == arch.arch {
            checkpoint::restore(&tensors, &net, aux.as_ref(), &mut sgd, device)?;
            state = saved;
            progress.info(format!("retrain: resuming after epoch {}", state.epoch));
        }
    }
    progress.info(format!(
        "retrain: {} ({} params, {:.2} MFLOPs) for {} epochs",
        arch.arch,
        net.param_count(),
        arch.flops / 1e6,
        cfg.epochs
    ));
    while state.epoch < cfg.epochs {
        let log = standalone_epoch(
            &net,
            aux.as_ref(),
            &mut sgd,
            cfg,
            data,
            device,
            seed,
            state.epoch,
            &child,
            progress,
            "retrain",
        );
        progress.info(format!(
            "retrain epoch {}: loss {:.4}, train acc {:.3}, {:.0} img/s",
            state.epoch + 1,
            log.loss,
            log.train_accuracy,
            log.images_per_sec
        ));
        progress.event("retrain_epoch", json!(log));
        state.history.push(log);
        state.epoch += 1;
        let extra = aux.as_ref().map(AuxHead::named_tensors).unwrap_or_default();
        checkpoint::save_with(&dir, &net, &sgd, extra, &state)?;
    }
    save_tensors(&dir.join("weights.safetensors"), &net.named_tensors())?;
    write_json(&dir.join("log.json"), &state.history)?;
    let test_accuracy =
        accuracy(&data.test, &data.norm, None, 256, device, |x| net.forward(x, &child, Mode::EVAL));
    let result = RetrainResult {
        arch: arch.arch.clone(),
        epochs: cfg.epochs,
        test_accuracy,
        test_images: data.test.len(),
        params: net.param_count(),
    };
    write_json(&dir.join("result.json"), &result)?;
    progress.info(format!("retrain: test accuracy {:.4} on {} images", test_accuracy, data.test.len()));
    run.finish(Stage::Retrain, json!(result))?;
    Ok(result)
}
