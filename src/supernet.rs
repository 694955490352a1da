//! The supernet stage: build the supernet of the run's space, save `W0` before the first step, train
//! with the SPOS or FairNAS sampler, checkpoint every epoch, resume from the last checkpoint. With
//! `shrink.w0_epoch = K > 0`, the weights after epoch `K` are saved too
//! (`W0-epochK.safetensors`): the `W0` the angle is then measured from.
//!
//! The supernet is always built from the run's *initial* space (every op keeps its weights even after
//! it is dropped, see docs/method.md); the current, possibly shrunk, space and the weight copies of strategy 2
//! are part of the checkpointed state.
use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use pwsnas_models::net::aux_head::MIN_SIZE;
use pwsnas_models::{Route, Space, SpaceKind, Supernet};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tch::{Device, Tensor};

use crate::data::RunData;
use crate::fsutil::{load_tensors, read_json, save_tensors};
use crate::progress::Progress;
use crate::run::{RunDir, Stage};
use crate::settings::Settings;
use crate::train::epoch::{train_epoch, EpochLog, Phase};
use crate::train::sgd::Sgd;
use crate::train::{checkpoint, sampler};

/// The space kind of a run: the space named in the settings with its parameters, fitted to the data.
pub fn space_kind(settings: &Settings, data: &RunData) -> Result<SpaceKind> {
    let kind = SpaceKind::from_params(&settings.space, Value::Object(settings.space_params.clone()))
        .with_context(|| format!("setting space = '{}' with space_params", settings.space))?;
    let [c, h, _] = data.shape();
    let kind = kind.with_data(c, h, data.classes.len())?;
    let w = settings.retrain.auxiliary_weight;
    if let Some(aux) = kind.aux_shape().filter(|_| w > 0.0) {
        if aux.size < MIN_SIZE {
            bail!(
                "setting retrain.auxiliary_weight is {w}, but the auxiliary head needs at least {MIN_SIZE}×{MIN_SIZE} pixels where it reads, and these {h}×{h} images give {0}×{0}: use larger images or set it to 0",
                aux.size
            );
        }
    }
    Ok(kind)
}

/// The space the run starts from: `space_file` when given (checked against the kind), else the full space.
pub fn initial_space(settings: &Settings, kind: &SpaceKind) -> Result<Space> {
    let Some(file) = &settings.space_file else { return Ok(Space::full(kind.clone())) };
    let path = PathBuf::from(file);
    let space = Space::from_json(read_json(&path)?)
        .with_context(|| format!("{} does not hold a valid space", path.display()))?;
    if &space.kind != kind {
        bail!(
            "{} is a space for {} with params {}, but this run needs {} with params {} (same space parameters and data shape)",
            path.display(),
            space.kind.name(),
            space.kind.params_json(),
            kind.name(),
            kind.params_json()
        );
    }
    Ok(space)
}

/// What a supernet checkpoint records besides the weights.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SupernetState {
    /// Completed epochs.
    pub epoch: usize,
    /// The space the supernet's modules were built from.
    pub built_space: Value,
    /// The current (possibly shrunk) space.
    pub space: Value,
    /// Weight copies per choice point (strategy 2).
    pub copies: Vec<usize>,
    /// How each choice point with copies routes a child to one (the choice point whose op picks it
    /// and that choice point's surviving ops when the route was set), so a resumed supernet gives
    /// every child the copies it had.
    #[serde(default)]
    pub routes: Vec<Option<Route>>,
    /// Shrinking rounds already applied to `space` and `copies`.
    pub rounds_applied: usize,
    pub seed: u64,
    /// How randomness is derived: each epoch's data order, augmentation and sampled children come
    /// from generators seeded by (seed, epoch), so no generator state needs saving.
    pub rng: String,
    pub history: Vec<EpochLog>,
}

/// A supernet with its optimiser and state, in its run directory.
pub struct SupernetRun {
    pub net: Supernet,
    pub sgd: Sgd,
    pub space: Space,
    pub state: SupernetState,
    dir: PathBuf,
}

impl SupernetRun {
    /// Resumes from the last checkpoint, or builds a fresh supernet and saves `W0` first.
    pub fn open(run: &RunDir, data: &RunData, device: Device) -> Result<SupernetRun> {
        let settings = &run.info.settings;
        let dir = run.supernet_dir();
        let kind = space_kind(settings, data)?;
        let mut sgd = Sgd::new(&settings.supernet);
        if let Some((state, tensors)) = checkpoint::read_state::<SupernetState>(&dir)? {
            let built = Space::from_json(state.built_space.clone())?;
            if built.kind != kind {
                bail!(
                    "the supernet checkpoint in {} was built for another space or data shape",
                    dir.display()
                );
            }
            let mut net = Supernet::new(&built, device);
            for (cp, &k) in state.copies.iter().enumerate().filter(|(_, &k)| k > 1) {
                net.grow_copies(cp, k, state.routes.get(cp).cloned().flatten());
            }
            checkpoint::restore(&tensors, &net, None, &mut sgd, device)?;
            let space = Space::from_json(state.space.clone())?;
            return Ok(SupernetRun { net, sgd, space, state, dir });
        }
        let space = initial_space(settings, &kind)?;
        tch::manual_seed(settings.seed as i64);
        let net = Supernet::initialised(&space, device, settings.supernet.init);
        save_tensors(&dir.join("W0.safetensors"), &net.named_tensors())?;
        let state = SupernetState {
            epoch: 0,
            built_space: space.to_json(),
            space: space.to_json(),
            copies: net.copies().to_vec(),
            routes: net.routes().to_vec(),
            rounds_applied: 0,
            seed: settings.seed,
            rng: "per-epoch ChaCha8 generators seeded from (seed, purpose, epoch)".into(),
            history: Vec::new(),
        };
        let me = SupernetRun { net, sgd, space, state, dir };
        me.save()?;
        Ok(me)
    }

    pub fn save(&self) -> Result<()> {
        let mut state = self.state.clone();
        state.space = self.space.to_json();
        state.copies = self.net.copies().to_vec();
        state.routes = self.net.routes().to_vec();
        checkpoint::save(&self.dir, &self.net, &self.sgd, &state)
    }

    /// The weights at initialisation, checked against the network as first built (every variable
    /// there, with its shape), so that a damaged `W0` is refused before any angle is computed.
    pub fn w0(&self) -> Result<HashMap<String, Tensor>> {
        self.w0_at(0)
    }

    /// The file of the weights after `epoch` epochs: `W0.safetensors` for 0 (initialisation),
    /// `W0-epochK.safetensors` for `K`.
    pub fn w0_path(&self, epoch: usize) -> PathBuf {
        if epoch == 0 {
            self.dir.join("W0.safetensors")
        } else {
            self.dir.join(format!("W0-epoch{epoch}.safetensors"))
        }
    }

    /// The weights after `epoch` epochs (`shrink.w0_epoch`), checked as [`SupernetRun::w0`]. A
    /// missing snapshot is refused with the fix: it is only written while the supernet trains
    /// through that epoch with the setting.
    pub fn w0_at(&self, epoch: usize) -> Result<HashMap<String, Tensor>> {
        let path = self.w0_path(epoch);
        if epoch > 0 && !path.exists() {
            bail!(
                "{} is missing: shrink.w0_epoch = {epoch} measures the angle from the supernet's weights after epoch {epoch}, which are saved only when the supernet completes that epoch with the setting, and this supernet ({} epoch(s) trained) went past it without; retrain the supernet with --w0-epoch {epoch} (a new --out, or --force on the supernet stage) or use --w0-epoch 0 (the weights at initialisation)",
                path.display(),
                self.state.epoch
            );
        }
        let w0 = load_tensors(&path)?;
        let built = Space::from_json(self.state.built_space.clone())?;
        check_w0(&built, &w0).with_context(|| format!("{} does not fit the supernet", path.display()))?;
        Ok(w0)
    }

    /// Saves the weights as the `W0` of `shrink.w0_epoch = K` when the supernet stands at epoch
    /// `K > 0` and they are not saved yet (after training epoch `K`, or on resuming there).
    pub fn save_w0_snapshot(&self, w0_epoch: usize) -> Result<()> {
        let path = self.w0_path(w0_epoch);
        if w0_epoch > 0 && self.state.epoch == w0_epoch && !path.exists() {
            save_tensors(&path, &self.net.named_tensors())?;
        }
        Ok(())
    }

    /// Trains on the current space until `end` epochs are complete, checkpointing every epoch.
    pub fn train_to(
        &mut self,
        end: usize,
        phase: Phase,
        settings: &Settings,
        data: &RunData,
        progress: &Progress,
    ) -> Result<()> {
        let device = self.net.device();
        while self.state.epoch < end {
            let epoch = self.state.epoch;
            let space = &self.space;
            let log = train_epoch(
                &self.net,
                None,
                &mut self.sgd,
                &settings.supernet,
                data,
                device,
                settings.seed,
                epoch,
                phase,
                |rng| sampler::sample(settings.sampler, space, rng),
                progress,
                "supernet",
            );
            progress.info(format!(
                "supernet epoch {}: loss {:.4}, train acc {:.3}, {:.0} img/s",
                epoch + 1,
                log.loss,
                log.train_accuracy,
                log.images_per_sec
            ));
            progress.event("supernet_epoch", json!(log));
            self.state.history.push(log);
            self.state.epoch += 1;
            self.save()?;
            // After the checkpoint: a run killed in between resumes at epoch K and saves it then.
            self.save_w0_snapshot(settings.shrink.w0_epoch)?;
        }
        Ok(())
    }
}

/// `pwsnas supernet` and the first stage of `pwsnas search`: train `supernet.epochs` epochs.
pub fn run_stage(
    run: &mut RunDir,
    data: &RunData,
    device: Device,
    progress: &Progress,
) -> Result<SupernetRun> {
    let settings = run.info.settings.clone();
    let mut sn = SupernetRun::open(run, data, device)?;
    sn.save_w0_snapshot(settings.shrink.w0_epoch)?;
    if run.is_done(Stage::Supernet) {
        return Ok(sn);
    }
    run.begin(Stage::Supernet)?;
    let epochs = settings.supernet.epochs;
    progress.info(format!(
        "supernet: {} space of {} children ({}log10 {:.2}), {} params, {} epochs from epoch {}",
        sn.space.kind.name(),
        sn.space.kind.child_count(&sn.space),
        if sn.space.kind.children_are_paths() {
            String::new()
        } else {
            format!("{} paths, ", sn.space.size())
        },
        sn.space.log10_size(),
        sn.net.param_count(),
        epochs,
        sn.state.epoch
    ));
    sn.train_to(epochs, Phase { start: 0, end: epochs }, &settings, data, progress)?;
    let last = sn.state.history.last().cloned();
    run.finish(Stage::Supernet, json!({ "epochs": epochs, "last_epoch": last }))?;
    Ok(sn)
}

/// Whether `w0` holds every variable of the supernet of `built` with its shape.
pub fn check_w0(built: &Space, w0: &HashMap<String, Tensor>) -> Result<()> {
    Supernet::new(built, Device::Cpu).load(w0)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pwsnas_models::Nb201Params;

    fn space(channels: usize) -> Space {
        Space::full(SpaceKind::new(Nb201Params {
            nodes: 3,
            channels,
            cells_per_stage: 1,
            classes: 2,
            input_size: 4,
            input_channels: 1,
            ..Default::default()
        }))
    }

    #[test]
    fn a_w0_of_another_network_is_refused_naming_the_variable() {
        let w0 = |channels| -> HashMap<String, Tensor> {
            Supernet::new(&space(channels), Device::Cpu).named_tensors().into_iter().collect()
        };
        check_w0(&space(2), &w0(2)).unwrap();
        let err = format!("{:#}", check_w0(&space(4), &w0(2)).unwrap_err());
        assert!(
            err.contains("weights do not fit the network: variable '") && err.contains("has shape ["),
            "{err}"
        );
        let mut missing = w0(2);
        let name = missing.keys().next().unwrap().clone();
        missing.remove(&name);
        let err = format!("{:#}", check_w0(&space(2), &missing).unwrap_err());
        assert!(err.contains(&format!("variable '{name}' is missing")), "{err}");
    }
}
