//! `shrink.json`: every round's candidate scores, what was dropped, the space size, the weight copies
//! and the degree of sharing; with `--exhaustive`, every scored child.
use std::collections::BTreeMap;

use pwsnas_models::{Composition, Op};
use serde::{Deserialize, Serialize};

use super::sharing::SharingDegree;
use crate::settings::Metric;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CandidateScore {
    pub choice_point: String,
    pub op: Op,
    /// Score of the metric that drives the shrinking (mean over the candidate's children).
    pub score: f64,
    /// Number of children the score averages.
    pub children: usize,
    /// Every metric computed this round, by name (`angle`, `angle_full`, `accuracy`, `magnitude`, `random`).
    pub scores: BTreeMap<String, f64>,
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
    pub space_size_after: f64,
    pub log10_space_size_after: f64,
    /// Weight copies per choice point after the round (strategy 2).
    pub copies: Vec<usize>,
    pub params: Params,
    pub sharing_degree: Sharing,
    /// Seconds spent scoring.
    pub seconds: f64,
}

/// One scored child (`--exhaustive`): the metrics that were computed.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ChildRecord {
    pub arch: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub angle: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub angle_full: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub accuracy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub magnitude: Option<f64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ShrinkReport {
    pub metric: Metric,
    pub angle_vector: Composition,
    pub samples_per_op: usize,
    pub exhaustive: bool,
    pub score_only: bool,
    pub drop_per_round: usize,
    pub per_choice_point: bool,
    pub target_size: f64,
    pub copies: usize,
    pub initial_space_size: f64,
    pub rounds: Vec<Round>,
    /// Size of the final space (filled when the stage ends).
    pub final_space_size: Option<f64>,
    pub children: Vec<ChildRecord>,
}
