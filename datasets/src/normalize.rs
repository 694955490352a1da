//! Per-channel normalisation statistics.
//!
//! Batches feed the network `(x/255 - mean) / std` per channel; the statistics come from the
//! training split and travel with the model (run directory, ONNX metadata), hence their own type.

use crate::dataset::Dataset;

/// Per-channel mean and standard deviation, in `[0, 1]` pixel units.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Normalization {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Normalization {
    /// The mean and (population) standard deviation of every channel over all pixels of `ds`.
    ///
    /// Sums are kept in exact integers, so the result does not depend on summation order. A
    /// channel that is constant (or a dataset that is empty) gets std 1 rather than 0, so that
    /// normalising never divides by zero; an empty dataset gets mean 0.
    pub fn compute(ds: &Dataset) -> Normalization {
        let plane = ds.height * ds.width;
        let mut sum = vec![0u64; ds.channels];
        let mut sum_sq = vec![0u64; ds.channels];
        if plane > 0 {
            for (k, chunk) in ds.images.chunks_exact(plane).enumerate() {
                let c = k % ds.channels;
                let (s, q) = chunk.iter().fold((0u64, 0u64), |(s, q), &v| {
                    let v = u64::from(v);
                    (s + v, q + v * v)
                });
                sum[c] += s;
                sum_sq[c] += q;
            }
        }
        let count = (ds.len() * plane) as f64;
        let mut mean = Vec::with_capacity(ds.channels);
        let mut std = Vec::with_capacity(ds.channels);
        for (&s, &q) in sum.iter().zip(&sum_sq) {
            if count == 0.0 {
                mean.push(0.0);
                std.push(1.0);
                continue;
            }
            let m = s as f64 / count;
            let var = (q as f64 / count - m * m).max(0.0);
            let sd = var.sqrt() / 255.0;
            mean.push((m / 255.0) as f32);
            std.push(if sd > 1e-6 { sd as f32 } else { 1.0 });
        }
        Normalization { mean, std }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // Channel 0 holds 0 and 255 equally often; channel 1 is constant 51.
        let ds = Dataset {
            channels: 2,
            height: 1,
            width: 2,
            classes: vec!["x".into()],
            images: vec![0, 255, 51, 51, 255, 0, 51, 51],
            labels: vec![0, 0],
        };
        let n = Normalization::compute(&ds);
        assert_eq!(n.mean, vec![0.5, 0.2]);
        assert!((n.std[0] - 0.5).abs() < 1e-6, "{:?}", n.std);
        assert_eq!(n.std[1], 1.0, "a constant channel keeps std 1");
        let empty = Normalization::compute(&ds.subset(&[]));
        assert_eq!(empty, Normalization { mean: vec![0.0; 2], std: vec![1.0; 2] });
    }
}
