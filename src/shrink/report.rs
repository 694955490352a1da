//! `shrink.json`: every round's candidate scores, what was dropped (and what the constraints
//! protected), the space size and how much of it is admissible, the weight copies per choice point
//! and the degree of sharing; with `--exhaustive`, every scored child.
use std::collections::BTreeMap;

use pwsnas_models::{Composition, Op};
use serde::{Deserialize, Serialize};

use super::sharing::SharingDegree;
use crate::search::constraints::{Admissible, Constraints};
use crate::settings::Metric;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CandidateScore {
    pub choice_point: String,
    pub op: Op,
    /// Score of the metric that drives the shrinking (mean over the candidate's children); `null`
    /// for a candidate that no admissible child contains (it is dropped first).
    pub score: Option<f64>,
    /// Number of children the score averages (admissible ones only, under constraints).
    pub children: usize,
    /// No child that meets the constraints picks this op here.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_admissible_child: bool,
    /// Every metric computed this round, by name (`angle`, `angle_full`, `angle_pwsnas`, `accuracy`,
    /// `magnitude`, `random`; with `shrink.w0_epoch = K`, `angle_w0eK`, `angle_full_w0eK`,
    /// `angle_pwsnas_w0eK`: the angles from the weights after `K` epochs).
    pub scores: BTreeMap<String, f64>,
}

/// The caps of the constraints, as set (`--max-flops`, `--max-params`, `--max-latency-ms`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Limits {
    pub max_flops: Option<f64>,
    pub max_params: Option<f64>,
    pub max_latency_ms: Option<f64>,
}

impl Limits {
    pub fn of(c: &Constraints) -> Limits {
        Limits { max_flops: c.max_flops, max_params: c.max_params, max_latency_ms: c.max_latency_ms }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Dropped {
    pub choice_point: String,
    pub op: Op,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Params {
    /// The supernet of the initial space with one copy per op.
    pub original: i64,
    /// The surviving ops' parameters with the copies before this round.
    pub before: i64,
    pub after: i64,
    /// The most `after` may be: `--param-budget` × `original`.
    #[serde(default)]
    pub budget: i64,
}

/// One weight copy of a choice point: the ops of the routing choice point that lead to it and the
/// number of children of the shrunk space that use it (per op with weights).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CopyUse {
    pub ops: Vec<Op>,
    pub children: f64,
}

/// Strategy 2 at one choice point after a round.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ChoicePointCopies {
    pub choice_point: String,
    /// The choice point whose op picks the copy (none when no previous choice point has two ops).
    pub routed_by: Option<String>,
    /// Its surviving ops in rank order: a child uses copy `rank mod copies`.
    pub route_ops: Vec<Op>,
    /// Copies held, and copies some child uses (at most `route_ops.len()`).
    pub copies: usize,
    pub copies_used: usize,
    pub per_copy: Vec<CopyUse>,
    /// Mean children per weight copy of this choice point's ops with weights, with the copies
    /// before and after the round (on the shrunk space); none when its ops have no weights.
    pub degree_before: Option<f64>,
    pub degree_after: Option<f64>,
    /// Parameters the new copies add.
    pub params_added: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Sharing {
    pub before: SharingDegree,
    pub after: SharingDegree,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Round {
    pub round: usize,
    /// Supernet epochs trained when the round was scored.
    pub epoch: usize,
    pub space_size: f64,
    pub log10_space_size: f64,
    pub candidates: Vec<CandidateScore>,
    pub dropped: Vec<Dropped>,
    /// Low-scoring candidates kept because every admissible child left needed them.
    #[serde(default)]
    pub protected: Vec<Dropped>,
    pub space_size_after: f64,
    pub log10_space_size_after: f64,
    /// Children of the shrunk space that meet the constraints.
    #[serde(default)]
    pub admissible_after: Option<Admissible>,
    /// Weight copies per choice point after the round (strategy 2).
    pub copies: Vec<usize>,
    /// The copies per choice point: routing, use, degree before and after.
    #[serde(default)]
    pub choice_points: Vec<ChoicePointCopies>,
    pub params: Params,
    pub sharing_degree: Sharing,
    /// Seconds spent scoring.
    pub seconds: f64,
}

/// The supernet over the final space (strategy 2's outcome).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FinalSupernet {
    /// Copies held per choice point.
    pub copies: Vec<usize>,
    /// Effective parameters (shared parts + surviving ops × the copies children use), and those of
    /// the original supernet (every op, one copy).
    pub params: i64,
    pub params_original: i64,
    /// Degree of sharing of the final space with its copies, and with one copy per op.
    pub sharing_degree: SharingDegree,
    pub sharing_degree_one_copy: SharingDegree,
}

/// One scored child (`--exhaustive`): the metrics that were computed. The angles from `W0` at
/// initialisation are fields; those from the weights after `K` epochs (`shrink.w0_epoch = K`) are
/// flat keys beside them (`angle_w0eK`, `angle_full_w0eK`, `angle_pwsnas_w0eK`, in `extra`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ChildRecord {
    pub arch: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub angle: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub angle_full: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub angle_pwsnas: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub accuracy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub magnitude: Option<f64>,
    /// Other metrics by key (the angles from a `W0` after warm-up), flattened into the record.
    #[serde(flatten)]
    pub extra: BTreeMap<String, f64>,
}

impl ChildRecord {
    /// Sets the metric `key`: a field when it has one, else in `extra`.
    pub fn set(&mut self, key: &str, value: f64) {
        let slot = match key {
            "angle" => &mut self.angle,
            "angle_full" => &mut self.angle_full,
            "angle_pwsnas" => &mut self.angle_pwsnas,
            "accuracy" => &mut self.accuracy,
            "magnitude" => &mut self.magnitude,
            _ => {
                self.extra.insert(key.to_string(), value);
                return;
            }
        };
        *slot = Some(value);
    }

    /// Every metric computed, by key.
    pub fn metrics(&self) -> Vec<(&str, f64)> {
        let fields = [
            ("angle", self.angle),
            ("angle_full", self.angle_full),
            ("angle_pwsnas", self.angle_pwsnas),
            ("accuracy", self.accuracy),
            ("magnitude", self.magnitude),
        ];
        let mut out: Vec<(&str, f64)> = fields.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect();
        out.extend(self.extra.iter().map(|(k, v)| (k.as_str(), *v)));
        out
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ShrinkReport {
    pub metric: Metric,
    pub angle_vector: Composition,
    /// Epoch of the `W0` the driving angle is measured from (0: initialisation; `shrink.w0_epoch`).
    #[serde(default)]
    pub w0_epoch: usize,
    pub samples_per_op: usize,
    pub exhaustive: bool,
    pub score_only: bool,
    pub drop_per_round: usize,
    pub per_choice_point: bool,
    pub target_size: f64,
    /// Most weight copies per choice point (strategy 2; 1 = off).
    pub copies: usize,
    /// Parameter budget of the copies, as a multiple of the original supernet's parameters.
    #[serde(default = "one")]
    pub param_budget: f64,
    /// Supernet epochs trained after the last round, before the search.
    #[serde(default)]
    pub epochs_after_shrink: usize,
    /// The constraints the candidates were scored under (only admissible children are scored).
    #[serde(default)]
    pub constraints: Limits,
    pub initial_space_size: f64,
    /// Children of the initial space that meet the constraints.
    #[serde(default)]
    pub admissible_before: Option<Admissible>,
    pub rounds: Vec<Round>,
    /// Size of the final space (filled when the stage ends).
    pub final_space_size: Option<f64>,
    /// Children of the final space that meet the constraints (filled when the stage ends).
    #[serde(default)]
    pub final_admissible: Option<Admissible>,
    /// Supernet epochs trained when the stage ended (after `epochs_after_shrink`).
    #[serde(default)]
    pub final_epoch: Option<usize>,
    /// The supernet the search gets: its copies, parameters and degree of sharing (filled when the stage ends).
    #[serde(default)]
    pub final_supernet: Option<FinalSupernet>,
    pub children: Vec<ChildRecord>,
}

fn one() -> f64 {
    1.0
}
