//! Latency measurement: warm-up runs, then timed runs, summarised as min/p50/p90/p99/mean/max and
//! throughput; for any closure ([`measure`]) and libtorch eager ([`libtorch`]); ONNX Runtime is
//! always timed across fresh sessions with the [`sessions::Protocol`], whose measurements say how far
//! they can be trusted ([`noise::Noise`]). The facts a latency needs to be read (CPU and GPU model,
//! load) are in [`crate::host`].
//!
//! Why a module of its own: `pwsnas export`, latency tables, `pwsnas bench export` and the latency
//! benchmark all time models with these functions, so every latency pwsnas reports is measured the
//! same way, and none of them has to import another to get at the timing.
pub mod noise;
pub mod sessions;

use std::time::Instant;

use anyhow::Result;
use pwsnas_models::{Arch, Mode, Supernet};
use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

pub use noise::Noise;
pub use sessions::Protocol;

/// How many runs to make.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Untimed runs first (caches, allocator arenas, lazy initialisation, CPU frequency).
    pub warmup: usize,
    /// Timed runs (at least 1).
    pub runs: usize,
}

impl Default for Plan {
    fn default() -> Self {
        Plan { warmup: 10, runs: 100 }
    }
}

/// Summary of the timed runs at one batch size. Times are wall-clock milliseconds per run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatencyStats {
    pub batch: usize,
    pub warmup: usize,
    pub runs: usize,
    pub min_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub mean_ms: f64,
    pub max_ms: f64,
    /// Images per second at the mean latency.
    pub throughput_per_s: f64,
    /// Every timed run in order, for distributions and charts.
    pub samples_ms: Vec<f64>,
    /// For ONNX Runtime, timed across fresh sessions ([`Protocol`]): the sessions' medians and the
    /// signs of an untrustworthy figure. `p50_ms` is then the latency of
    /// [`sessions::latency_of`]: the mean of the session medians without the fastest and slowest
    /// fifth of the sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise: Option<Noise>,
}

impl LatencyStats {
    /// Summarises `samples_ms` (one entry per timed run of `batch` images).
    ///
    /// # Panics
    /// If `samples_ms` is empty.
    pub fn from_samples(batch: usize, warmup: usize, samples_ms: Vec<f64>) -> LatencyStats {
        assert!(!samples_ms.is_empty(), "latency statistics need at least one run");
        let mut sorted = samples_ms.clone();
        sorted.sort_by(f64::total_cmp);
        let mean_ms = sorted.iter().sum::<f64>() / sorted.len() as f64;
        LatencyStats {
            batch,
            warmup,
            runs: sorted.len(),
            min_ms: sorted[0],
            p50_ms: percentile(&sorted, 50.0),
            p90_ms: percentile(&sorted, 90.0),
            p99_ms: percentile(&sorted, 99.0),
            mean_ms,
            max_ms: sorted[sorted.len() - 1],
            throughput_per_s: if mean_ms > 0.0 { batch as f64 * 1000.0 / mean_ms } else { f64::INFINITY },
            samples_ms,
            noise: None,
        }
    }
}

/// The `q`-th percentile (0–100) of ascending `sorted` values, interpolating linearly between the
/// closest ranks (numpy's default).
///
/// # Panics
/// If `sorted` is empty.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    assert!(!sorted.is_empty(), "percentile of no values");
    let pos = (q / 100.0).clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Times `run` (one call = one batch of `batch` images): `plan.warmup` untimed calls, then
/// `plan.runs` timed ones. The first error stops the measurement.
pub fn measure(plan: Plan, batch: usize, run: impl FnMut() -> Result<()>) -> Result<LatencyStats> {
    measure_for(plan, 0.0, usize::MAX, batch, run)
}

/// [`measure`], going on with more timed runs until they add up to at least `min_ms`, or there are
/// `max_runs` of them.
pub fn measure_for(
    plan: Plan,
    min_ms: f64,
    max_runs: usize,
    batch: usize,
    mut run: impl FnMut() -> Result<()>,
) -> Result<LatencyStats> {
    for _ in 0..plan.warmup {
        run()?;
    }
    let mut samples = Vec::with_capacity(plan.runs.max(1));
    let mut spent = 0.0;
    while samples.len() < plan.runs.max(1) || (spent < min_ms && samples.len() < max_runs) {
        let start = Instant::now();
        run()?;
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        samples.push(ms);
        spent += ms;
    }
    Ok(LatencyStats::from_samples(batch, plan.warmup, samples))
}

/// Latency of libtorch eager (eval mode, no autograd) on `input`, on the network's device; CUDA work
/// is synchronised inside each timed run.
pub fn libtorch(net: &Supernet, arch: &Arch, input: &Tensor, plan: Plan) -> Result<LatencyStats> {
    let device = net.device();
    let x = input.to_device(device);
    let batch = x.size().first().copied().unwrap_or(1) as usize;
    tch::no_grad(|| {
        measure(plan, batch, || {
            let y = net.forward(&x, arch, Mode::EVAL);
            if let Device::Cuda(i) = device {
                tch::Cuda::synchronize(i as i64);
            }
            drop(y);
            Ok(())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_like_numpy() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&v, 100.0), 10.0);
        assert!((percentile(&v, 50.0) - 5.5).abs() < 1e-12);
        assert!((percentile(&v, 90.0) - 9.1).abs() < 1e-12);
        assert_eq!(percentile(&[3.0], 99.0), 3.0);
    }

    #[test]
    fn stats_keep_the_run_order_and_summarise_sorted() {
        let s = LatencyStats::from_samples(4, 2, vec![4.0, 1.0, 3.0, 2.0]);
        assert_eq!(s.samples_ms, [4.0, 1.0, 3.0, 2.0]);
        assert_eq!((s.min_ms, s.max_ms, s.mean_ms, s.runs), (1.0, 4.0, 2.5, 4));
        assert!((s.p50_ms - 2.5).abs() < 1e-12);
        assert!((s.throughput_per_s - 1600.0).abs() < 1e-9);
    }

    #[test]
    fn measure_for_goes_on_until_the_time_is_spent_or_the_runs_are_capped() {
        let plan = Plan { warmup: 1, runs: 2 };
        let ok = || Ok(());
        assert_eq!(measure_for(plan, 0.0, 100, 1, ok).unwrap().runs, 2);
        assert_eq!(measure_for(plan, f64::INFINITY, 7, 1, ok).unwrap().runs, 7);
        // The cap never cuts the planned runs.
        assert_eq!(measure_for(plan, f64::INFINITY, 1, 1, ok).unwrap().runs, 2);
    }

    #[test]
    fn measure_runs_warmup_and_timed_calls_and_stops_on_error() {
        let mut calls = 0;
        let s = measure(Plan { warmup: 3, runs: 5 }, 1, || {
            calls += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!((calls, s.runs, s.warmup), (8, 5, 3));
        let err = measure(Plan { warmup: 0, runs: 5 }, 1, || anyhow::bail!("boom")).unwrap_err();
        assert_eq!(err.to_string(), "boom");
    }
}
