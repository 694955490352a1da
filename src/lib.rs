//! pwsnas: angle-based search-space shrinking for weight-sharing NAS (PWSNAS, TNNLS 2022) on
//! libtorch, from data to a validated, deployable ONNX model.
//!
//! The stages of `pwsnas search` are plain functions over a [`run::RunDir`], each resumable:
//! [`supernet`] (train the supernet, checkpoint every epoch) → [`shrink`] (angle-based shrinking and
//! weight copies) → [`search`] (evolution or random search on the shrunk space) → [`retrain`] (the
//! winner from scratch). They pass plain data (`Space`, `Arch`, reports) from one to the next.
//! [`export`] then lowers the retrained child to ONNX, validates it with ONNX Runtime
//! ([`ort_runtime`]) against libtorch and writes the [`report`]s; [`infer`] classifies images with
//! the exported model alone.
//!
//! Latency: [`latency`] measures latency tables of a space's pieces in ONNX Runtime and predicts a
//! child's latency from them (the search's `--max-latency-ms`, and `pwsnas export`'s prediction
//! error); [`compare`] puts exported runs side by side with their Pareto front. [`sweep`] runs a
//! plan's grid of runs (locally, on Slurm or Kubernetes) and reports their means over seeds.
//! [`fidelity`] is the ranking study: every child of a small space trained stand-alone, and how
//! well each shrinking metric ranks children and operator candidates against that truth.
pub mod bench;
pub mod benchmark;
pub mod cli;
pub mod compare;
pub mod data;
pub mod device;
pub mod doctor;
pub mod eval;
pub mod export;
pub mod fidelity;
pub mod fsutil;
pub mod host;
pub mod infer;
pub mod latency;
pub mod malloc;
pub mod method;
pub mod ort_probe;
pub mod ort_runtime;
pub mod pipeline;
pub mod progress;
pub mod report;
pub mod retrain;
pub mod run;
pub mod search;
pub mod settings;
pub mod shrink;
pub mod supernet;
pub mod sweep;
pub mod timing;
pub mod train;
