//! Checkpoints: one safetensors file holding the network's variables, the optimiser's momentum
//! buffers and the JSON state, so that a single atomic rename commits all three together. A
//! readable copy of the state is written beside it as `state.json`.
use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};
use pwsnas_models::Supernet;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tch::{Device, Tensor};

use super::sgd::Sgd;
use crate::fsutil::{load_tensors, save_tensors, write_json};

const STATE_KEY: &str = "meta.state_json";

/// Writes `dir/last.safetensors` (weights, optimiser, state) and `dir/state.json`.
pub fn save<S: Serialize>(dir: &Path, net: &Supernet, sgd: &Sgd, state: &S) -> Result<()> {
    let json = serde_json::to_vec(state)?;
    let mut tensors = net.named_tensors();
    tensors.extend(sgd.state());
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
    let tensors = load_tensors(&file)?;
    let raw = tensors
        .get(STATE_KEY)
        .with_context(|| format!("{} has no state: not a pwsnas checkpoint", file.display()))?;
    let bytes = Vec::<u8>::try_from(raw).context("checkpoint state is not bytes")?;
    let state = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} holds a state this pwsnas cannot read", file.display()))?;
    Ok(Some((state, tensors)))
}

/// Loads a checkpoint's weights into `net` and its momentum buffers into `sgd`.
pub fn restore(
    tensors: &HashMap<String, Tensor>,
    net: &Supernet,
    sgd: &mut Sgd,
    device: Device,
) -> Result<()> {
    net.load(tensors).context("the checkpoint does not fit the network")?;
    sgd.load_state(tensors, device);
    Ok(())
}
