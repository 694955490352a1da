//! The one way pwsnas times ONNX Runtime: [`Protocol`], runs spread over fresh sessions.
//!
//! Why fresh sessions: a session's speed is partly luck that lasts as long as the session (where its
//! arenas and threads landed, which core the scheduler keeps it on); timing one session many times
//! measures that luck precisely. `pwsnas export`, latency tables, `pwsnas bench latency` and
//! `pwsnas bench export` therefore all time a model the same way: `sessions` fresh sessions, each
//! warmed up and then timed for its share of the runs, the sessions of several models taking turns
//! (so that a burst of load elsewhere falls on every model alike). The latency is the **trimmed
//! mean of the sessions' median runs** ([`latency_of`]: the fastest and slowest fifth of the
//! sessions left out), reported with the [`Noise`] that says how far to trust it.
use anyhow::Result;
use serde::Serialize;

use super::noise::Noise;
use super::{measure_for, LatencyStats, Plan};
use crate::host::CpuClock;
use crate::ort_runtime::OrtModel;

/// How to time a model in ONNX Runtime.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Protocol {
    /// Fresh sessions (at least 1).
    pub sessions: usize,
    /// Warm-up runs in each session, and timed runs in all (split evenly over the sessions, at
    /// least one each).
    pub plan: Plan,
    /// Each session goes on timing runs until it has timed for at least this long (ms), so that
    /// the sessions together span the machine's slower and faster spells rather than one instant
    /// (0: the runs alone decide). At most [`MAX_RUNS_FACTOR`] times the session's share of runs.
    pub min_session_ms: f64,
}

/// A session times at most this many times its share of the runs to reach
/// [`Protocol::min_session_ms`].
pub const MAX_RUNS_FACTOR: usize = 1000;

impl Default for Protocol {
    /// What `pwsnas export` uses: 10 sessions of at least half a second each, 10 warm-up runs
    /// each, 100 timed runs in all at least.
    fn default() -> Self {
        Protocol { sessions: 10, plan: Plan::default(), min_session_ms: 500.0 }
    }
}

impl Protocol {
    /// Timed runs in each session.
    pub fn runs_per_session(&self) -> usize {
        self.plan.runs.div_ceil(self.sessions.max(1)).max(1)
    }
}

/// One model to time: how to open a fresh session of it, and its input.
pub struct Timed<'a> {
    pub open: Box<dyn FnMut() -> Result<OrtModel> + 'a>,
    pub input: &'a [f32],
    pub shape: [usize; 4],
}

/// Times every model with `protocol`, the models taking turns session by session; `tick` is called
/// after each session. Returns each model's statistics (pooled runs; `p50_ms` the latency,
/// [`latency_of`] the session medians) with its [`Noise`].
pub fn time_all(
    protocol: Protocol,
    models: &mut [Timed<'_>],
    mut tick: impl FnMut(),
) -> Result<Vec<LatencyStats>> {
    let sessions = protocol.sessions.max(1);
    let plan = Plan { warmup: protocol.plan.warmup, runs: protocol.runs_per_session() };
    let mut runs: Vec<Vec<Vec<f64>>> = vec![Vec::with_capacity(sessions); models.len()];
    let clock = CpuClock::now();
    for s in 0..sessions {
        // The models' order rotates from one round to the next.
        for k in 0..models.len() {
            let m = (s + k) % models.len();
            let model = &mut models[m];
            let mut session = (model.open)()?;
            let (input, shape) = (model.input, model.shape);
            let max_runs = plan.runs * MAX_RUNS_FACTOR;
            let timed = measure_for(plan, protocol.min_session_ms, max_runs, shape[0], || {
                session.run(input, shape).map(drop)
            })?;
            runs[m].push(timed.samples_ms);
            tick();
        }
    }
    let busy = clock.and_then(|c| c.busy_elsewhere());
    Ok(models
        .iter()
        .zip(runs)
        .map(|(model, sessions_ms)| {
            let noise = Noise::judge(&sessions_ms, busy);
            let mut stats = LatencyStats::from_samples(model.shape[0], plan.warmup, sessions_ms.concat());
            stats.p50_ms = latency_of(&noise.session_p50_ms);
            stats.noise = Some(noise);
            stats
        })
        .collect())
}

/// Times one model with `protocol` (see [`time_all`]).
pub fn time_one(protocol: Protocol, model: Timed<'_>) -> Result<LatencyStats> {
    Ok(time_all(protocol, &mut [model], || {})?.remove(0))
}

/// The latency from the sessions' medians: their mean without the fastest and the slowest fifth
/// (one session each of 5 to 9, two of 10 to 14, ...; none below 5).
///
/// Why not their median: on a machine with slower and faster spells (the 2-core AMD EPYC VM this
/// project runs on alternates between about 0.25 and 0.37 ms for the demo model), the median of
/// five sessions jumps to whichever spell most sessions fell in: three exports of one run read
/// 0.31, 0.37 and 0.34 ms (five sessions of a second each); the trimmed mean of the same sessions
/// gives 0.31, 0.34 and 0.34 ms. It averages the spells, as a deployed model lives through them,
/// and still ignores one session hit by a burst of load. Spells longer than a measurement it cannot
/// average (docs/latency.md, "One protocol for every ONNX Runtime latency").
pub fn latency_of(session_medians: &[f64]) -> f64 {
    let kept = super::noise::middle(session_medians);
    if kept.is_empty() {
        return 0.0;
    }
    kept.iter().sum::<f64>() / kept.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latency_is_the_mean_of_the_middle_sessions() {
        assert_eq!(latency_of(&[0.3, 0.2]), 0.25);
        // One session of five trimmed at each end.
        assert!((latency_of(&[0.3065, 0.2483, 0.2674, 0.3682, 0.3861]) - 0.31403).abs() < 1e-5);
        // Two of ten.
        let ten = [9.0, 1.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 100.0, 0.0];
        assert_eq!(latency_of(&ten), 5.0);
        assert_eq!(latency_of(&[]), 0.0);
    }
}
