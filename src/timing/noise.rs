//! How far a latency can be trusted: [`Noise`], what a measurement across fresh sessions says about
//! itself, and the three signs of a measurement not to believe.
//!
//! Why: a latency printed alone looks equally sure on an idle machine and on one where another
//! process takes half the CPU, where it can be twice as high. On the 2-core AMD EPYC VM this project
//! runs on, the same `model.onnx` read 0.14–0.19 ms idle and 0.32–0.35 ms under load, and two-thread
//! ONNX Runtime sessions have fast and slow episodes. So every ONNX Runtime latency pwsnas reports
//! carries its own evidence, and a measurement that shows one of these signs is flagged with what to
//! do:
//!
//! - **the sessions disagree**: the medians of the fresh sessions that count (all but the fastest
//!   and slowest fifth, [`middle`]) differ by more than [`SPREAD_LIMIT`] (slowest / fastest − 1);
//! - **the machine was busy**: other processes used more than [`BUSY_LIMIT`] of the machine's CPU
//!   time while it was measured ([`crate::host::CpuClock`]);
//! - **the timings are bimodal**: the runs fall into two separate groups (see [`modes`]), the
//!   slower one at least [`MODE_RATIO`] times the faster, each holding at least [`MODE_SHARE`] of
//!   the runs: episodes of another speed (frequency changes, a thread descheduled, a noisy
//!   neighbour), in which case no single figure describes the model.
use serde::{Deserialize, Serialize};

use super::percentile;

/// Above this spread of the session medians (slowest / fastest − 1), a measurement is flagged.
pub const SPREAD_LIMIT: f64 = 0.15;
/// Above this share of the machine's CPU time used by other processes, a measurement is flagged.
pub const BUSY_LIMIT: f64 = 0.10;
/// Two groups of runs are distinct modes when the slower group's median is at least this many
/// times the faster one's...
pub const MODE_RATIO: f64 = 1.25;
/// ...each group holds at least this share of the runs...
pub const MODE_SHARE: f64 = 0.10;
/// ...and they are separated by more than this many pooled standard deviations (Ashman's D, on the
/// logarithm of the times; D > 2 is the usual criterion for a clean separation of two modes).
pub const MODE_SEPARATION: f64 = 2.0;

/// What a measurement across fresh sessions says about itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Noise {
    /// Fresh sessions the timed runs were spread over.
    pub sessions: usize,
    /// Each session's median run (ms), in order.
    pub session_p50_ms: Vec<f64>,
    /// Slowest / fastest session median − 1, over the sessions that count ([`middle`]).
    pub spread: f64,
    /// Share of the machine's CPU time other processes used meanwhile (`None` where `/proc` cannot
    /// tell).
    pub busy_elsewhere: Option<f64>,
    /// The two groups of runs, when the timings are bimodal.
    pub modes: Option<Modes>,
    /// Why the figure should not be trusted, one sentence each; empty when none of the signs shows.
    pub warnings: Vec<String>,
}

/// Two groups of runs (see [`modes`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Modes {
    /// Median of the faster group (ms).
    pub fast_ms: f64,
    /// Median of the slower group (ms).
    pub slow_ms: f64,
    /// Share of the runs in the slower group.
    pub slow_share: f64,
}

impl Noise {
    /// Judges a measurement: `sessions_ms[s]` are the timed runs of session `s`.
    pub fn judge(sessions_ms: &[Vec<f64>], busy_elsewhere: Option<f64>) -> Noise {
        let session_p50_ms: Vec<f64> = sessions_ms.iter().map(|s| median(s)).collect();
        let middle = middle(&session_p50_ms);
        let (lo, hi) = (middle.first().copied().unwrap_or(0.0), middle.last().copied().unwrap_or(0.0));
        let spread = if lo > 0.0 { hi / lo - 1.0 } else { 0.0 };
        let mut all: Vec<f64> = sessions_ms.iter().flatten().copied().collect();
        all.sort_by(f64::total_cmp);
        let modes = modes(&all);
        let mut warnings = Vec::new();
        if sessions_ms.len() > 1 && spread > SPREAD_LIMIT {
            warnings.push(format!(
                "the median latency varied by {:.0}% from one fresh ONNX Runtime session to the next",
                spread * 100.0
            ));
        }
        if let Some(busy) = busy_elsewhere.filter(|b| *b > BUSY_LIMIT) {
            warnings.push(format!(
                "other processes used {:.0}% of the machine's CPU time meanwhile",
                busy * 100.0
            ));
        }
        if let Some(m) = &modes {
            warnings.push(format!(
                "the runs fall into two groups, around {:.4} ms and {:.4} ms ({:.0}% of them slow)",
                m.fast_ms,
                m.slow_ms,
                m.slow_share * 100.0
            ));
        }
        Noise { sessions: sessions_ms.len(), session_p50_ms, spread, busy_elsewhere, modes, warnings }
    }

    /// Whether no sign of an untrustworthy measurement showed.
    pub fn reliable(&self) -> bool {
        self.warnings.is_empty()
    }

    /// What to do about the warnings, for a measurement made with `threads` intra-op threads.
    pub fn advice(&self, threads: usize) -> String {
        let mut steps = Vec::new();
        if self.busy_elsewhere.is_some_and(|b| b > BUSY_LIMIT) {
            steps.push("measure on an idle machine".to_string());
        }
        if threads != 1 && (self.modes.is_some() || self.spread > SPREAD_LIMIT) {
            steps.push("try --threads 1, which is often steadier".to_string());
        }
        steps.push(format!(
            "more sessions (--latency-sessions, now {}) average more of it out",
            self.sessions
        ));
        let advice = steps.join("; ");
        let mut chars = advice.chars();
        chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
    }
}

/// The session medians that count, ascending: all but the fastest and the slowest fifth (one
/// session each of 5 to 9, two of 10 to 14, ...; none below 5). The latency is their mean
/// ([`super::sessions::latency_of`]) and the spread is theirs, so one session hit by a burst of
/// load moves neither.
pub fn middle(session_medians: &[f64]) -> Vec<f64> {
    let mut s = session_medians.to_vec();
    s.sort_by(f64::total_cmp);
    let cut = s.len() / 5;
    s[cut..s.len() - cut].to_vec()
}

/// The median of unsorted values (0 for none).
fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    percentile(&s, 50.0)
}

/// The two modes of ascending `sorted` times, if there are two: the split of the logarithms that
/// best separates them (Otsu's criterion: the largest between-group variance), kept when both
/// groups are large enough ([`MODE_SHARE`]), far enough apart in pooled standard deviations
/// ([`MODE_SEPARATION`]) and far enough apart in speed ([`MODE_RATIO`]).
pub fn modes(sorted: &[f64]) -> Option<Modes> {
    let n = sorted.len();
    let min_group = ((n as f64) * MODE_SHARE).ceil().max(2.0) as usize;
    if n < 2 * min_group || sorted[0] <= 0.0 {
        return None;
    }
    let logs: Vec<f64> = sorted.iter().map(|t| t.ln()).collect();
    let mut prefix = vec![0.0; n + 1];
    let mut prefix_sq = vec![0.0; n + 1];
    for (i, x) in logs.iter().enumerate() {
        prefix[i + 1] = prefix[i] + x;
        prefix_sq[i + 1] = prefix_sq[i] + x * x;
    }
    let total = prefix[n];
    // Between-group variance of a split after k values, up to the constant factor 1/n².
    let between = |k: usize| {
        let (a, b) = (k as f64, (n - k) as f64);
        let (ma, mb) = (prefix[k] / a, (total - prefix[k]) / b);
        a * b * (ma - mb).powi(2)
    };
    let k = (min_group..=n - min_group).max_by(|&x, &y| between(x).total_cmp(&between(y)))?;
    let stats = |lo: usize, hi: usize| {
        let c = (hi - lo) as f64;
        let mean = (prefix[hi] - prefix[lo]) / c;
        let var = ((prefix_sq[hi] - prefix_sq[lo]) / c - mean * mean).max(0.0);
        (mean, var)
    };
    let ((m1, v1), (m2, v2)) = (stats(0, k), stats(k, n));
    let separation = std::f64::consts::SQRT_2 * (m2 - m1) / (v1 + v2).sqrt().max(1e-12);
    let (fast_ms, slow_ms) = (percentile(&sorted[..k], 50.0), percentile(&sorted[k..], 50.0));
    (separation > MODE_SEPARATION && slow_ms >= MODE_RATIO * fast_ms).then(|| Modes {
        fast_ms,
        slow_ms,
        slow_share: (n - k) as f64 / n as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// `n` times around `center` ms with a relative jitter of ±`jitter`.
    fn runs(rng: &mut rand_chacha::ChaCha8Rng, n: usize, center: f64, jitter: f64) -> Vec<f64> {
        (0..n).map(|_| center * (1.0 + jitter * (rng.random::<f64>() * 2.0 - 1.0))).collect()
    }

    #[test]
    fn steady_sessions_on_an_idle_machine_are_reliable() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        // A long right tail (a few slow runs), as real timings have, is not a second mode.
        let sessions: Vec<Vec<f64>> = (0..5)
            .map(|_| {
                let mut s = runs(&mut rng, 40, 0.15, 0.05);
                s[7] = 0.4;
                s
            })
            .collect();
        let noise = Noise::judge(&sessions, Some(0.02));
        assert!(noise.reliable(), "{noise:?}");
        assert_eq!((noise.sessions, noise.session_p50_ms.len()), (5, 5));
        assert!(noise.spread < 0.05, "{}", noise.spread);
    }

    #[test]
    fn disagreeing_sessions_a_busy_machine_and_two_modes_are_each_flagged() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let mut sessions: Vec<Vec<f64>> = (0..5).map(|_| runs(&mut rng, 40, 0.15, 0.03)).collect();
        sessions[3] = runs(&mut rng, 40, 0.30, 0.03);
        // One slow session of five does not count towards the spread, but its runs are a second
        // group (20% slow).
        let noise = Noise::judge(&sessions, Some(0.02));
        assert!(noise.spread < SPREAD_LIMIT, "{}", noise.spread);
        let m = noise.modes.as_ref().expect("two modes");
        assert!((m.slow_share - 0.2).abs() < 1e-9 && (m.fast_ms / 0.15 - 1.0).abs() < 0.05, "{m:?}");
        // Two slow sessions of five: the sessions that count disagree.
        sessions[1] = runs(&mut rng, 40, 0.30, 0.03);
        let noise = Noise::judge(&sessions, Some(0.02));
        assert!(noise.spread > 0.9, "{}", noise.spread);
        assert!(noise.warnings.iter().any(|w| w.contains("fresh ONNX Runtime session")), "{noise:?}");
        assert!(noise.advice(2).contains("--threads 1") && !noise.advice(1).contains("--threads 1"));

        let steady: Vec<Vec<f64>> = (0..5).map(|_| runs(&mut rng, 40, 0.15, 0.03)).collect();
        let busy = Noise::judge(&steady, Some(0.5));
        assert_eq!(busy.warnings.len(), 1, "{busy:?}");
        assert!(busy.warnings[0].contains("50%") && busy.advice(2).starts_with("Measure on an idle machine"));

        // Fast and slow episodes inside every session: the sessions agree, the runs do not.
        let episodes: Vec<Vec<f64>> = (0..5)
            .map(|_| {
                let mut s = runs(&mut rng, 30, 0.15, 0.03);
                s.extend(runs(&mut rng, 10, 0.24, 0.03));
                s
            })
            .collect();
        let noise = Noise::judge(&episodes, None);
        assert!(noise.spread < SPREAD_LIMIT, "{}", noise.spread);
        let m = noise.modes.expect("two modes");
        assert!((m.slow_share - 0.25).abs() < 1e-9 && (m.slow_ms / 0.24 - 1.0).abs() < 0.05, "{m:?}");
    }

    #[test]
    fn close_or_small_groups_are_not_modes() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        // Two groups only 10% apart: jitter, not a mode.
        let mut v = runs(&mut rng, 50, 0.15, 0.02);
        v.extend(runs(&mut rng, 50, 0.165, 0.02));
        v.sort_by(f64::total_cmp);
        assert_eq!(modes(&v), None);
        // Far apart but only 4% of the runs: outliers.
        let mut v = runs(&mut rng, 96, 0.15, 0.02);
        v.extend(runs(&mut rng, 4, 0.6, 0.02));
        v.sort_by(f64::total_cmp);
        assert_eq!(modes(&v), None);
        assert_eq!(modes(&[0.1, 0.2]), None);
        assert_eq!(modes(&[]), None);
    }
}
