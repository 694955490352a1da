//! The one way pwsnas times ONNX Runtime: [`Protocol`], runs spread over fresh sessions.
//!
//! Why fresh sessions: a session's speed is partly luck that lasts as long as the session (where its
//! arenas and threads landed, which core the scheduler keeps it on); timing one session many times
//! measures that luck precisely. `pwsnas export`, latency tables, `pwsnas bench latency` and
//! `pwsnas bench export` therefore all time a model the same way: `sessions` fresh sessions, each
//! warmed up and then timed for its share of the runs, the sessions of several models taking turns
//! (so that a burst of load elsewhere falls on every model alike). The latency is the **median over
//! the sessions of each session's median run** (one slow session cannot move it), reported with the
//! [`Noise`] that says how far to trust it.
use anyhow::Result;
use serde::Serialize;

use super::noise::Noise;
use super::{measure, LatencyStats, Plan};
use crate::host::CpuClock;
use crate::ort_runtime::OrtModel;

/// How to time a model in ONNX Runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Protocol {
    /// Fresh sessions (at least 1).
    pub sessions: usize,
    /// Warm-up runs in each session, and timed runs in all (split evenly over the sessions, at
    /// least one each).
    pub plan: Plan,
}

impl Default for Protocol {
    fn default() -> Self {
        Protocol { sessions: 5, plan: Plan::default() }
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
/// after each session. Returns each model's statistics (pooled runs, `p50_ms` the median of the
/// session medians) with its [`Noise`].
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
            runs[m].push(measure(plan, shape[0], || session.run(input, shape).map(drop))?.samples_ms);
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
            stats.p50_ms = super::percentile(&sorted(&noise.session_p50_ms), 50.0);
            stats.noise = Some(noise);
            stats
        })
        .collect())
}

/// Times one model with `protocol` (see [`time_all`]).
pub fn time_one(protocol: Protocol, model: Timed<'_>) -> Result<LatencyStats> {
    Ok(time_all(protocol, &mut [model], || {})?.remove(0))
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s
}
