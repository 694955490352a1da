//! Latency prediction: a child's latency is the sum of measured per-operator latencies (one entry per
//! site of the network and op) plus the fixed parts.
use std::collections::HashMap;

use pwsnas_models::{Arch, Op};

/// Per-site, per-op latencies (milliseconds) and the latency of the parts every child has.
#[derive(Clone, Debug, Default)]
pub struct Predictor {
    pub fixed_ms: f64,
    /// For every site of the network: its choice point and the latency of each op there.
    pub sites: Vec<(usize, HashMap<Op, f64>)>,
}

impl Predictor {
    /// Predicted latency of `arch` in milliseconds.
    pub fn predict_ms(&self, arch: &Arch) -> f64 {
        self.fixed_ms
            + self.sites.iter().map(|(cp, ops)| ops.get(&arch.ops[*cp]).copied().unwrap_or(0.0)).sum::<f64>()
    }
}
