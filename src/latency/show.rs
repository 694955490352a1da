//! `pwsnas latency-table`: gets the table of a space for this machine (reused or measured, see
//! [`super::table::obtain`]) and prints it — as aligned text for people, or with `--json` as one
//! JSON object (`path`, `reused`, `mismatches`, `table`, `space_range`, and with `--arch` the child's
//! `prediction`) — with the range of predicted latencies over the space's children (what a
//! `--max-latency-ms` can ask for) and optionally the predicted latency of one architecture, piece
//! by piece.
use std::fmt::Write;
use std::path::Path;

use anyhow::{Context, Result};
use pwsnas_models::{Arch, Space, SpaceKind};
use rand::SeedableRng;
use serde::Serialize;
use serde_json::json;

use super::measure::BuildOptions;
use super::table::{obtain, LatencyTable, Obtained, Request};
use super::Predictor;
use crate::ort_runtime::SessionConfig;
use crate::progress::Progress;

/// Spaces up to this size are enumerated for [`SpaceRange`]; larger ones are sampled.
const ENUMERATE_UP_TO: u128 = 20_000;

/// Predicted latencies over the children of a space.
#[derive(Clone, Debug, Serialize)]
pub struct SpaceRange {
    /// Children the range is over, and whether they were sampled (uniformly, seeded) rather than all.
    pub children: usize,
    pub sampled: bool,
    pub min_ms: f64,
    pub median_ms: f64,
    pub max_ms: f64,
    pub fastest: String,
    pub slowest: String,
}

impl SpaceRange {
    /// The range over every child of `space`, or over 5000 sampled ones when it is large.
    pub fn of(space: &Space, predictor: &Predictor) -> SpaceRange {
        let sampled = space.size() > ENUMERATE_UP_TO;
        let children = if sampled {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
            (0..5000).map(|_| space.sample_child(&mut rng)).collect()
        } else {
            space.enumerate()
        };
        let mut predicted: Vec<(f64, &Arch)> =
            children.iter().map(|a| (predictor.predict_ms(a), a)).collect();
        predicted.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (first, last) = (predicted[0], predicted[predicted.len() - 1]);
        SpaceRange {
            children: predicted.len(),
            sampled,
            min_ms: first.0,
            median_ms: predicted[predicted.len() / 2].0,
            max_ms: last.0,
            fastest: space.format_arch(first.1),
            slowest: space.format_arch(last.1),
        }
    }
}

/// Gets the table of `space`'s kind for `cfg` and prints it with the range of predictions over
/// `space` (and the prediction for `arch`, when given).
pub fn latency_table(
    space: &Space,
    cfg: SessionConfig,
    ort_lib: Option<&Path>,
    rebuild: bool,
    build: BuildOptions,
    arch: Option<&str>,
    progress: &Progress,
) -> Result<()> {
    if build.timing.plan.runs == 0 {
        anyhow::bail!("--runs must be at least 1");
    }
    let kind = &space.kind;
    let arch = arch.map(|a| kind.parse_arch(a).with_context(|| format!("--arch '{a}'"))).transpose()?;
    let got = obtain(&Request { kind, cfg, ort_lib, rebuild, build, first: None }, progress)?;
    let predictor =
        Predictor::new(&got.table, kind).with_context(|| format!("latency table {}", got.path.display()))?;
    let range = SpaceRange::of(space, &predictor);
    if progress.json() {
        let prediction = arch.as_ref().map(|a| {
            let pieces: Vec<_> = predictor
                .breakdown(a)
                .iter()
                .map(|(key, n, ms)| json!({ "piece": key.to_string(), "count": n, "ms": ms }))
                .collect();
            json!({ "arch": kind.format_arch(a), "ms": predictor.predict_ms(a), "base_ms": predictor.base_ms(),
                    "pieces": pieces })
        });
        println!(
            "{}",
            json!({ "path": got.path, "reused": got.reused, "mismatches": got.mismatches, "table": got.table,
                    "space_range": range, "prediction": prediction })
        );
    } else {
        print!("{}", render(&got));
        println!(
            "\npredicted latency of the {} children of the space{}: min {:.4} ms, median {:.4} ms, max {:.4} ms\n  \
             fastest {}\n  slowest {}",
            range.children,
            if range.sampled { " (sampled)" } else { "" },
            range.min_ms,
            range.median_ms,
            range.max_ms,
            range.fastest,
            range.slowest
        );
        if let Some(a) = &arch {
            print!("\n{}", render_prediction(kind, &predictor, a));
        }
    }
    Ok(())
}

/// The table as aligned text.
pub fn render(got: &Obtained) -> String {
    let t: &LatencyTable = &got.table;
    let mut s = String::new();
    let how = if got.reused { "reused" } else { "measured now" };
    let _ = writeln!(s, "latency table {} ({how})", got.path.display());
    let _ = writeln!(s, "space:    {} {}", t.space.space, t.space.params);
    let _ = writeln!(s, "machine:  {}", t.machine);
    let _ = writeln!(
        s,
        "measured: {}{}; {} warm-up + {} timed runs per model, chains of {}; times are medians in ms at batch 1",
        crate::report::utc(t.built_at),
        t.busy_elsewhere.map(|b| format!(" with {:.0}% of the CPU time used elsewhere", b * 100.0)).unwrap_or_default()
            + &t.session_spread.map(|v| format!(", {:.0}% variation between sessions", v * 100.0)).unwrap_or_default(),
        t.method.warmup,
        t.method.runs,
        t.method.chain
    );
    let _ = writeln!(s, "\n{:<28} {:>14} {:>7} {:>10}", "piece", "input", "method", "ms");
    for e in &t.entries {
        let input = format!("{}×{}×{}", e.input[0], e.input[1], e.input[2]);
        let _ = writeln!(s, "{:<28} {:>14} {:>7} {:>10.4}", e.piece, input, e.method, e.ms);
    }
    let _ = writeln!(s, "{:<51} {:>10.4}", "run overhead (once per model)", t.overhead_ms);
    let _ = writeln!(
        s,
        "{:<51} {:>+10.4}",
        format!("correction (median of {} whole children)", t.calibration.len()),
        t.correction_ms
    );
    if !t.calibration.is_empty() {
        let _ = writeln!(s, "\n{:<72} {:>9} {:>9} {:>9}", "calibration child", "measured", "pieces", "diff");
        for c in &t.calibration {
            let _ = writeln!(
                s,
                "{:<72} {:>9.4} {:>9.4} {:>+9.4}",
                c.arch,
                c.measured_ms,
                c.pieces_ms,
                c.measured_ms - c.pieces_ms
            );
        }
    }
    s
}

/// The predicted latency of `arch` with the pieces it adds up from.
pub fn render_prediction(kind: &SpaceKind, predictor: &Predictor, arch: &Arch) -> String {
    let mut s = String::new();
    let _ =
        writeln!(s, "predicted latency of {}: {:.4} ms", kind.format_arch(arch), predictor.predict_ms(arch));
    let _ = writeln!(s, "{:<28} {:>6} {:>10} {:>10}", "piece", "count", "ms each", "ms");
    for (key, n, ms) in predictor.breakdown(arch) {
        let _ = writeln!(s, "{:<28} {:>6} {:>10.4} {:>10.4}", key.to_string(), n, ms, n as f64 * ms);
    }
    let _ = writeln!(s, "{:<28} {:>6} {:>10} {:>10.4}", "overhead + correction", 1, "", predictor.base_ms());
    if predictor.summed_ms(arch) < predictor.floor_ms() {
        let _ = writeln!(
            s,
            "(the sum, {:.4} ms, is below the run overhead: the prediction is the overhead)",
            predictor.summed_ms(arch)
        );
    }
    s
}
