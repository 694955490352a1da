//! Constraints a child must meet before it is evaluated: FLOPs, parameters, predicted latency.
use anyhow::{bail, Result};
use pwsnas_models::{Arch, Space};
use serde::{Deserialize, Serialize};

use crate::latency::table::Machine;
use crate::latency::Predictor;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Constraints {
    pub max_flops: Option<f64>,
    pub max_params: Option<f64>,
    pub max_latency_ms: Option<f64>,
    /// The latency table predictions come from (needed by `max_latency_ms`, recorded otherwise when available).
    #[serde(skip)]
    pub predictor: Option<Predictor>,
    /// Which table that is (`search.json` records it).
    #[serde(default)]
    pub latency_table: Option<TableRef>,
}

/// Where a latency table was read from and what it was measured on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TableRef {
    pub path: String,
    pub machine: Machine,
    /// Seconds since the Unix epoch.
    pub built_at: u64,
}

/// What the constraints look at.
pub struct Facts {
    pub flops: f64,
    pub params: f64,
    pub latency_ms: Option<f64>,
}

impl Constraints {
    pub fn facts(&self, space: &Space, arch: &Arch) -> Facts {
        let cost = space.kind.cost(arch);
        Facts {
            flops: cost.flops() as f64,
            params: cost.params() as f64,
            latency_ms: self.predictor.as_ref().map(|p| p.predict_ms(arch)),
        }
    }

    /// Ok when the child meets every constraint; else which one it breaks.
    pub fn check(&self, space: &Space, arch: &Arch) -> Result<()> {
        let f = self.facts(space, arch);
        if let Some(max) = self.max_flops {
            if f.flops > max {
                bail!("{} FLOPs > max {max}", f.flops);
            }
        }
        if let Some(max) = self.max_params {
            if f.params > max {
                bail!("{} params > max {max}", f.params);
            }
        }
        if let (Some(max), Some(ms)) = (self.max_latency_ms, f.latency_ms) {
            if ms > max {
                bail!("predicted {ms:.3} ms > max {max} ms");
            }
        }
        Ok(())
    }
}
