//! FLOPs and parameter counts of a child, computed from shapes alone (no network is built).
//!
//! Counting follows NAS-Bench-201's conventions so figures can be compared with its tables:
//! parameters include BatchNorm's affine weights and every bias; FLOPs are the multiply-adds of
//! convolutions (`k·k·c_in/groups·c_out·h_out·w_out`) and linear layers (`in·out`, plus `out` for the
//! bias). Pooling, BatchNorm, activations and additions are not counted. The per-layer list doubles as
//! the network summary of `pwsnas arch info`.
use serde::Serialize;

/// One layer of a child: what it is, its output shape and its cost.
#[derive(Clone, Debug, Serialize)]
pub struct LayerCost {
    pub name: String,
    pub kind: String,
    /// Output shape `[channels, height, width]` (`[features, 1, 1]` for linear layers).
    pub output: [usize; 3],
    pub params: u64,
    pub flops: u64,
}

/// Cost of a child, layer by layer.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Cost {
    pub layers: Vec<LayerCost>,
}

impl Cost {
    pub fn params(&self) -> u64 {
        self.layers.iter().map(|l| l.params).sum()
    }

    pub fn flops(&self) -> u64 {
        self.layers.iter().map(|l| l.flops).sum()
    }

    pub(crate) fn push(&mut self, name: String, kind: &str, output: [usize; 3], params: u64, flops: u64) {
        self.layers.push(LayerCost { name, kind: kind.to_string(), output, params, flops });
    }

    /// A conv (no bias) followed by BatchNorm, the unit every space is built from.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn conv_bn(
        &mut self,
        name: String,
        kind: &str,
        c_in: usize,
        c_out: usize,
        kernel: usize,
        groups: usize,
        out_size: usize,
        bn: bool,
    ) {
        let weights = (kernel * kernel * c_in / groups * c_out) as u64;
        let params = weights + if bn { 2 * c_out as u64 } else { 0 };
        let flops = weights * (out_size * out_size) as u64;
        self.push(name, kind, [c_out, out_size, out_size], params, flops);
    }

    /// A linear layer with bias.
    pub(crate) fn linear(&mut self, name: String, inputs: usize, outputs: usize) {
        let n = (inputs * outputs + outputs) as u64;
        self.push(name, "linear", [outputs, 1, 1], n, n);
    }

    /// A standalone BatchNorm (no FLOPs counted).
    pub(crate) fn bn(&mut self, name: String, channels: usize, size: usize) {
        self.push(name, "batchnorm", [channels, size, size], 2 * channels as u64, 0);
    }
}

/// Output size of a square conv/pool with "same"-style padding `kernel / 2`.
pub(crate) fn out_size(size: usize, kernel: usize, stride: usize) -> usize {
    (size + 2 * (kernel / 2) - kernel) / stride + 1
}
