//! `pwsnas bench latency`: how far the latency table's predictions are from measured children.
//!
//! Why a benchmark and not a test: the error is a property of the machine (its ISA, its load, its
//! thread count), so it is printed as numbers, never asserted. It draws `children` children of the
//! space at random (a seed of its own, so not the table's calibration children, which the table has
//! already fitted its correction to), predicts each from the table of this machine and setting
//! ([`super::table::obtain`]: the cached one, else one measured now) and times each whole with the
//! table's own protocol ([`super::measure::time_children`]: fresh sessions in several sweeps,
//! the median of their medians), at every thread count asked for. The error is
//! predicted / measured − 1.
use std::path::PathBuf;

use anyhow::{Context, Result};
use pwsnas_models::{Space, SpaceKind};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use super::measure::{time_children, BuildOptions};
use super::table::{self, Request};
use super::Predictor;
use crate::ort_runtime::{self, Ep, SessionConfig};
use crate::progress::Progress;
use crate::timing::percentile;

/// What to check.
pub struct CheckOptions {
    pub kind: SpaceKind,
    /// Children drawn and timed.
    pub children: usize,
    /// Intra-op thread counts, each checked against its own table.
    pub threads: Vec<usize>,
    /// Seed of the children drawn.
    pub seed: u64,
    /// Measure the tables anew.
    pub rebuild: bool,
    pub ort_lib: Option<PathBuf>,
}

/// The errors at one thread count.
pub struct Checked {
    pub threads: usize,
    pub table: PathBuf,
    /// (child, predicted ms, measured ms, session spread of the measurement).
    pub rows: Vec<(String, f64, f64, f64)>,
}

impl Checked {
    /// |predicted / measured − 1| of every child, sorted.
    fn abs_errors(&self) -> Vec<f64> {
        let mut e: Vec<f64> = self.rows.iter().map(|(_, p, m, _)| (p / m - 1.0).abs()).collect();
        e.sort_by(f64::total_cmp);
        e
    }

    /// The summary: median, 90th percentile and worst |error|, the median session spread.
    pub fn summary(&self) -> serde_json::Value {
        let e = self.abs_errors();
        let mut spreads: Vec<f64> = self.rows.iter().map(|r| r.3).collect();
        spreads.sort_by(f64::total_cmp);
        json!({
            "threads": self.threads,
            "children": self.rows.len(),
            "median_abs_error": percentile(&e, 50.0),
            "p90_abs_error": percentile(&e, 90.0),
            "worst_abs_error": e.last().copied().unwrap_or(0.0),
            "median_session_spread": percentile(&spreads, 50.0),
            "table": self.table,
            "rows": self.rows.iter().map(|(a, p, m, s)| json!({
                "arch": a, "predicted_ms": p, "measured_ms": m, "error": p / m - 1.0, "session_spread": s,
            })).collect::<Vec<_>>(),
        })
    }
}

/// Predicts and measures the children at every thread count of `opts`.
pub fn run(opts: &CheckOptions, progress: &Progress) -> Result<Vec<Checked>> {
    anyhow::ensure!(opts.children > 0, "--children must be at least 1");
    anyhow::ensure!(
        !opts.threads.is_empty() && opts.threads.iter().all(|&t| t > 0),
        "--threads must list thread counts of at least 1, e.g. 1,2"
    );
    let space = Space::full(opts.kind.clone());
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let children: Vec<_> = (0..opts.children).map(|_| space.sample_child(&mut rng)).collect();
    let mut out = Vec::new();
    for &threads in &opts.threads {
        let cfg = SessionConfig { ep: Ep::Cpu, threads };
        let request = Request {
            kind: &opts.kind,
            cfg,
            ort_lib: opts.ort_lib.as_deref(),
            rebuild: opts.rebuild,
            build: BuildOptions::default(),
            first: None,
        };
        let got = table::obtain(&request, progress)?;
        let predictor = Predictor::new(&got.table, &opts.kind)
            .with_context(|| format!("latency table {}", got.path.display()))?;
        let rt = ort_runtime::runtime(opts.ort_lib.as_deref(), Ep::Cpu)?;
        let measured =
            time_children(rt, cfg, &opts.kind, &children, BuildOptions::default().timing, progress)?;
        let rows = children
            .iter()
            .zip(measured)
            .map(|(a, (ms, spread))| (opts.kind.format_arch(a), predictor.predict_ms(a), ms, spread))
            .collect();
        out.push(Checked { threads, table: got.path, rows });
    }
    Ok(out)
}
