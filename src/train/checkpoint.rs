//! Checkpoints: one safetensors file holding the network's variables, the optimiser's momentum
//! buffers and the JSON state, so that a single atomic rename commits all three together. A
//! readable copy of the state is written beside it as `state.json`.
use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};
use pwsnas_models::net::aux_head::AuxHead;
use pwsnas_models::Supernet;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tch::{Device, Tensor};

use super::sgd::Sgd;
use crate::fsutil::{save_tensors, tensors_from_bytes, write_json};

const STATE_KEY: &str = "meta.state_json";

/// Writes `dir/last.safetensors` (weights, optimiser, state) and `dir/state.json`.
pub fn save<S: Serialize>(dir: &Path, net: &Supernet, sgd: &Sgd, state: &S) -> Result<()> {
    save_with(dir, net, sgd, Vec::new(), state)
}

/// [`save`], with `extra` named tensors (e.g. a search method's α and its optimiser) committed in
/// the same file.
pub fn save_with<S: Serialize>(
    dir: &Path,
    net: &Supernet,
    sgd: &Sgd,
    extra: Vec<(String, Tensor)>,
    state: &S,
) -> Result<()> {
    let json = serde_json::to_vec(state)?;
    let mut tensors = net.named_tensors();
    tensors.extend(sgd.state());
    tensors.extend(extra);
    tensors.push((STATE_KEY.to_string(), Tensor::from_slice(&json)));
    save_tensors(&dir.join("last.safetensors"), &tensors)?;
    write_json(&dir.join("state.json"), state)
}

/// Reads the state stored in `dir/last.safetensors`, if there is a checkpoint.
pub fn read_state<S: DeserializeOwned>(dir: &Path) -> Result<Option<(S, HashMap<String, Tensor>)>> {
    let file = dir.join("last.safetensors");
    if !file.exists() {
        return Ok(None);
    }
    let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
    from_bytes(&file, &bytes).map(Some)
}

/// The state and tensors of the checkpoint `file` whose bytes are `bytes`.
pub fn from_bytes<S: DeserializeOwned>(file: &Path, bytes: &[u8]) -> Result<(S, HashMap<String, Tensor>)> {
    let tensors = tensors_from_bytes(file, bytes)?;
    Ok((state_of(file, &tensors)?, tensors))
}

/// The state stored among the tensors of the checkpoint `file`.
pub fn state_of<S: DeserializeOwned>(file: &Path, tensors: &HashMap<String, Tensor>) -> Result<S> {
    let raw = tensors
        .get(STATE_KEY)
        .with_context(|| format!("{} has no state: not a pwsnas checkpoint", file.display()))?;
    let bytes = Vec::<u8>::try_from(raw)
        .map_err(|e| anyhow::anyhow!("{}: its state is not a byte string ({e})", file.display()))?;
    serde_json::from_slice(&bytes)
        .with_context(|| format!("{} holds a state this pwsnas cannot read", file.display()))
}

/// Loads a checkpoint's weights into `net` (and `aux`, the auxiliary head saved beside it with
/// [`save_with`]) and its momentum buffers into `sgd`.
pub fn restore(
    tensors: &HashMap<String, Tensor>,
    net: &Supernet,
    aux: Option<&AuxHead>,
    sgd: &mut Sgd,
    device: Device,
) -> Result<()> {
    net.load(tensors).context("the checkpoint does not fit the network")?;
    let mut params: HashMap<String, Tensor> = net.named_tensors().into_iter().collect();
    if let Some(head) = aux {
        head.load(tensors).context("the checkpoint does not fit the network")?;
        params.extend(head.named_tensors());
    }
    sgd.load_state(tensors, &params, device)
        .map_err(|why| anyhow::anyhow!("the checkpoint does not fit the network: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pwsnas_models::{Nb201Params, Space, SpaceKind};

    fn net() -> Supernet {
        let kind = SpaceKind::new(Nb201Params {
            nodes: 3,
            channels: 2,
            cells_per_stage: 1,
            classes: 2,
            input_size: 4,
            input_channels: 1,
            ..Default::default()
        });
        Supernet::new(&Space::full(kind), Device::Cpu)
    }

    fn copy(t: &HashMap<String, Tensor>) -> HashMap<String, Tensor> {
        t.iter().map(|(k, v)| (k.clone(), v.shallow_clone())).collect()
    }

    /// A checkpoint of `net` with one momentum buffer, as named tensors.
    fn checkpoint(net: &Supernet) -> HashMap<String, Tensor> {
        let mut t: HashMap<String, Tensor> = net.named_tensors().into_iter().collect();
        let (name, w) = net.named_tensors().into_iter().find(|(n, _)| n.ends_with("conv.weight")).unwrap();
        t.insert(format!("optim.momentum.{name}"), w.zeros_like());
        t
    }

    #[test]
    fn a_checkpoint_that_fits_restores_and_a_damaged_one_is_refused_naming_what() {
        let net = net();
        let mut sgd = Sgd::new(&crate::settings::TrainSettings::default());
        let good = checkpoint(&net);
        restore(&good, &net, None, &mut sgd, Device::Cpu).unwrap();

        // A momentum buffer of the wrong shape used to load silently and fail the next step.
        let mut bad = copy(&good);
        let key = bad.keys().find(|k| k.starts_with("optim.")).unwrap().clone();
        bad.insert(key.clone(), Tensor::zeros([3], (tch::Kind::Float, Device::Cpu)));
        let err = format!("{:#}", restore(&bad, &net, None, &mut sgd, Device::Cpu).unwrap_err());
        assert!(
            err.contains("does not fit the network") && err.contains(&key) && err.contains("[3]"),
            "{err}"
        );

        // A buffer for a parameter the network does not have.
        let mut bad = copy(&good);
        bad.insert(
            "optim.momentum.nowhere.weight".into(),
            Tensor::zeros([1], (tch::Kind::Float, Device::Cpu)),
        );
        let err = format!("{:#}", restore(&bad, &net, None, &mut sgd, Device::Cpu).unwrap_err());
        assert!(err.contains("has no parameter 'nowhere.weight'"), "{err}");

        // A missing variable.
        let mut bad = copy(&good);
        let var = bad.keys().find(|k| !k.starts_with("optim.")).unwrap().clone();
        bad.remove(&var);
        let err = format!("{:#}", restore(&bad, &net, None, &mut sgd, Device::Cpu).unwrap_err());
        assert!(err.contains(&format!("variable '{var}' is missing")), "{err}");
    }

    #[test]
    fn an_auxiliary_head_and_its_momentum_are_saved_beside_the_net_and_restored() {
        use pwsnas_models::net::aux_head::AuxShape;
        use pwsnas_models::{Mode, Param};
        let dir = tempfile::tempdir().unwrap();
        let net = net();
        let shape = AuxShape { channels: 3, size: 4, classes: 2 };
        let head = AuxHead::new(shape, Device::Cpu).unwrap();
        let mut sgd = Sgd::new(&crate::settings::TrainSettings::default());
        // One step of the head alone, so that it has momentum buffers.
        let x = Tensor::randn([4, 3, 4, 4], (tch::Kind::Float, Device::Cpu));
        let loss = head.forward(&x, Mode::TRAIN).square().mean(tch::Kind::Float);
        let params: Vec<&Param> = head.trainable();
        let grads = Tensor::run_backward(
            &[loss],
            &params.iter().map(|p| &p.tensor).collect::<Vec<_>>(),
            false,
            false,
        );
        sgd.step(&params, grads, 0.1, None);
        save_with(dir.path(), &net, &sgd, head.named_tensors(), &serde_json::json!({"epoch": 1})).unwrap();

        let (_, tensors) = read_state::<serde_json::Value>(dir.path()).unwrap().unwrap();
        let fresh = AuxHead::new(shape, Device::Cpu).unwrap();
        assert!(!fresh.forward(&x, Mode::EVAL).equal(&head.forward(&x, Mode::EVAL)));
        let mut restored = Sgd::new(&crate::settings::TrainSettings::default());
        restore(&tensors, &net, Some(&fresh), &mut restored, Device::Cpu).unwrap();
        assert!(fresh.forward(&x, Mode::EVAL).equal(&head.forward(&x, Mode::EVAL)));
        assert_eq!(restored.state().len(), sgd.state().len());
        // Without the head, its momentum buffers belong to no parameter: refused, not dropped.
        let err = format!("{:#}", restore(&tensors, &net, None, &mut restored, Device::Cpu).unwrap_err());
        assert!(err.contains("has no parameter 'aux."), "{err}");
    }

    #[test]
    fn checkpoint_bytes_without_a_state_or_cut_short_are_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("last.safetensors");
        let net = net();
        crate::fsutil::save_tensors(&file, &net.named_tensors()).unwrap();
        let bytes = std::fs::read(&file).unwrap();
        let err = format!("{:#}", from_bytes::<serde_json::Value>(&file, &bytes).unwrap_err());
        assert!(err.contains("has no state: not a pwsnas checkpoint"), "{err}");
        let err =
            format!("{:#}", from_bytes::<serde_json::Value>(&file, &bytes[..bytes.len() / 2]).unwrap_err());
        assert!(err.contains("is not a safetensors file pwsnas can read"), "{err}");
        let mut with_state = net.named_tensors();
        with_state.push((STATE_KEY.into(), Tensor::from_slice(&[1.5f32, 2.0]).reshape([1, 2])));
        crate::fsutil::save_tensors(&file, &with_state).unwrap();
        let bytes = std::fs::read(&file).unwrap();
        let err = format!("{:#}", from_bytes::<serde_json::Value>(&file, &bytes).unwrap_err());
        assert!(err.contains("its state is not a byte string"), "{err}");
    }
}
