//! The sweep report as Markdown (`report.md`, also printed), CSV (`report.csv`: one row per group,
//! plain numbers) and a self-contained HTML page (`report.html`: the tables and the accuracy-
//! against-latency chart of every run, in the style of the other pwsnas pages); `report.json` is
//! the [`SweepReport`] itself.
use std::fmt::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde_json::Value;

use super::report::{Stat, SweepReport};
use crate::compare::render::field;
use crate::fsutil::{write_atomic, write_json};
use crate::report::html::{escape, CSS};
use crate::report::{charts, ms, pct};

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `m ± s` with `f` formatting both (`m` alone for one run).
fn pm(s: &Stat, f: impl Fn(f64) -> String) -> String {
    match s.std {
        Some(d) => format!("{} ± {}", f(s.mean), f(d)),
        None => f(s.mean),
    }
}

/// `+m ± s`: a difference, its mean signed.
fn pm_signed(s: &Stat, f: impl Fn(f64) -> String) -> String {
    let mean = if s.mean >= 0.0 { format!("+{}", f(s.mean)) } else { format!("−{}", f(-s.mean)) };
    match s.std {
        Some(d) => format!("{mean} ± {}", f(d)),
        None => mean,
    }
}

fn pct_number(v: f64) -> String {
    format!("{:.2}", v * 100.0)
}

fn millions(v: f64) -> String {
    format!("{:.3}", v / 1e6)
}

/// The grid keys but the seed (the group columns), as in the report.
fn group_keys(r: &SweepReport) -> Vec<String> {
    r.groups.first().map(|g| g.values.keys().cloned().collect()).unwrap_or_default()
}

fn groups_table(r: &SweepReport) -> Table {
    let mut head = group_keys(r);
    head.extend(["runs", "acc. ORT (%)", "params (M)", "MACs (M)", "p50 ms (b1)"].map(String::from));
    let rows = r
        .groups
        .iter()
        .map(|g| {
            let mut row: Vec<String> = g.values.values().map(text).collect();
            row.extend([
                g.runs.to_string(),
                pm(&g.accuracy_ort, pct_number),
                pm(&g.params, millions),
                pm(&g.flops, millions),
                pm(&g.latency_p50_ms, ms),
            ]);
            row
        })
        .collect();
    (head, rows)
}

fn gains_table(r: &SweepReport) -> Table {
    let mut head: Vec<String> =
        r.gains.first().map(|g| g.method.keys().cloned().collect()).unwrap_or_default();
    head.extend(
        ["shrinking", "pairs", "Δ acc. (pp)", "better", "Δ p50 ms (b1)", "Δ params (M)", "Δ MACs (M)"]
            .map(String::from),
    );
    let rows = r
        .gains
        .iter()
        .map(|g| {
            let mut row: Vec<String> = g.method.values().map(text).collect();
            row.extend([
                text(&g.metric),
                g.pairs.to_string(),
                pm_signed(&g.accuracy_pp, |v| format!("{v:.2}")),
                format!("{}/{}", g.wins, g.pairs),
                pm_signed(&g.latency_p50_ms, ms),
                pm_signed(&g.params, millions),
                pm_signed(&g.flops, millions),
            ]);
            row
        })
        .collect();
    (head, rows)
}

fn runs_table(r: &SweepReport) -> Table {
    let head = ["#", "run", "acc. ORT", "p50 ms (b1)", "params (M)", "MACs (M)", "Pareto", "architecture"]
        .map(String::from)
        .to_vec();
    let rows = r
        .runs
        .iter()
        .map(|e| {
            vec![
                e.index.to_string(),
                e.name.clone(),
                pct(e.result.accuracy_ort),
                ms(e.result.latency_p50_ms),
                millions(e.result.params),
                millions(e.result.flops),
                if e.result.pareto { "★".into() } else { String::new() },
                e.result.arch.clone(),
            ]
        })
        .collect();
    (head, rows)
}

const LEGEND: &str = "Mean ± sample standard deviation over the seeds of each group (no ± for a single run). \
    acc. ORT: test top-1 of the exported model in ONNX Runtime; MACs: multiply-adds per image; p50 ms (b1): \
    ONNX Runtime median latency at batch 1. Gains: each shrunk run minus the shrink.metric = none run with the \
    same other grid values and seed, then mean ± std over seeds; better: seeds where shrinking was more accurate. \
    ★ Pareto-optimal: no other run is both at least as accurate and at least as fast, and better in one.";

fn setting_note(r: &SweepReport) -> String {
    match (r.mixed.is_empty(), r.runs.first()) {
        (true, Some(e)) => format!("Latencies measured with {}.", e.result.setting),
        _ => format!("Latencies were measured with different settings: {}.", r.mixed.join("; ")),
    }
}

fn coverage(r: &SweepReport) -> String {
    let mut s = format!(
        "Plan `{}`: {} runs ({}); {} done.",
        r.plan_file,
        r.runs_total,
        r.keys.join(" × "),
        r.runs.len()
    );
    if !r.missing.is_empty() {
        let _ = write!(s, " Not done yet (not in the figures): {}.", r.missing.join("; "));
    }
    s
}

/// A table as header and rows of cells; the columns in `numeric` are numbers (right-aligned).
/// A table: its header and its rows (also used by `crate::fidelity::render`).
pub(crate) type Table = (Vec<String>, Vec<Vec<String>>);

pub(crate) fn md_table(s: &mut String, (head, rows): Table, numeric: Range<usize>) {
    let cell = |c: &str| c.replace('|', "\\|");
    let _ = writeln!(s, "| {} |", head.iter().map(|h| cell(h)).collect::<Vec<_>>().join(" | "));
    let align: Vec<&str> =
        (0..head.len()).map(|i| if numeric.contains(&i) { "---:" } else { "---" }).collect();
    let _ = writeln!(s, "| {} |", align.join(" | "));
    for row in rows {
        let _ = writeln!(s, "| {} |", row.iter().map(|c| cell(c)).collect::<Vec<_>>().join(" | "));
    }
}

/// The Markdown report.
pub fn markdown(r: &SweepReport) -> String {
    let mut s = String::from("# pwsnas sweep report\n\n");
    let _ = writeln!(s, "{}\n\n{}\n", coverage(r), setting_note(r));
    s.push_str("## Groups (mean ± std over seeds)\n\n");
    md_table(&mut s, groups_table(r), group_keys(r).len()..usize::MAX);
    s.push_str("\n## Gain of shrinking over `none` (paired by seed)\n\n");
    if r.gains.is_empty() {
        s.push_str("No pairs: the grid needs `shrink.metric` with `none` and another metric, and both runs of a seed done.\n");
    } else {
        let keys = r.gains[0].method.len() + 1;
        md_table(&mut s, gains_table(r), keys..usize::MAX);
    }
    s.push_str("\n## Runs\n\n");
    md_table(&mut s, runs_table(r), 2..6);
    let _ = writeln!(s, "\n{LEGEND}");
    s
}

/// One row per group: its grid values, the run count, and each figure's mean and std (plain
/// numbers: fractions, counts, ms; an empty std for a single run).
pub fn csv(r: &SweepReport) -> String {
    let figures = ["accuracy_ort", "params", "flops", "latency_p50_ms"];
    let mut head: Vec<String> = group_keys(r).iter().map(|k| field(k)).collect();
    head.push("runs".into());
    for f in figures {
        head.extend([format!("{f}_mean"), format!("{f}_std")]);
    }
    let mut s = head.join(",") + "\n";
    for g in &r.groups {
        let mut row: Vec<String> = g.values.values().map(|v| field(&text(v))).collect();
        row.push(g.runs.to_string());
        for stat in [&g.accuracy_ort, &g.params, &g.flops, &g.latency_p50_ms] {
            row.extend([stat.mean.to_string(), stat.std.map(|d| d.to_string()).unwrap_or_default()]);
        }
        let _ = writeln!(s, "{}", row.join(","));
    }
    s
}

pub(crate) fn html_table(s: &mut String, (head, rows): Table, numeric: Range<usize>) {
    let class = |i: usize| if numeric.contains(&i) { " class=\"n\"" } else { "" };
    s.push_str("<table>\n<tr>");
    for (i, h) in head.iter().enumerate() {
        let _ = write!(s, "<th{}>{}</th>", class(i), escape(h));
    }
    s.push_str("</tr>\n");
    for row in rows {
        s.push_str("<tr>");
        for (i, c) in row.iter().enumerate() {
            let _ = write!(s, "<td{}>{}</td>", class(i), escape(c));
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</table>\n");
}

/// The self-contained HTML page.
pub fn html(r: &SweepReport) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>pwsnas sweep report</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n\
         <header>\n<h1>pwsnas sweep report</h1>\n<p class=\"sub\">{}</p>\n<p class=\"sub\">{}</p>\n</header>\n",
        escape(&coverage(r)),
        escape(&setting_note(r))
    );
    s.push_str("<section>\n<h2>Groups (mean ± std over seeds)</h2>\n");
    html_table(&mut s, groups_table(r), group_keys(r).len()..usize::MAX);
    s.push_str("</section>\n<section>\n<h2>Gain of shrinking over <code>none</code> (paired by seed)</h2>\n");
    if r.gains.is_empty() {
        s.push_str(
            "<p class=\"missing\">No pairs: the grid needs shrink.metric with none and another metric.</p>\n",
        );
    } else {
        let keys = r.gains[0].method.len() + 1;
        html_table(&mut s, gains_table(r), keys..usize::MAX);
    }
    s.push_str("</section>\n<section>\n<h2>Accuracy against latency</h2>\n");
    let points: Vec<charts::RunPoint> = r
        .runs
        .iter()
        .map(|e| charts::RunPoint {
            label: e.label.clone(),
            latency_ms: e.result.latency_p50_ms,
            accuracy: e.result.accuracy_ort,
            predicted_ms: None,
            pareto: e.result.pareto,
        })
        .collect();
    match charts::accuracy_latency(&points) {
        Ok(svg) => {
            let _ = writeln!(
                s,
                "<figure>{svg}<figcaption>Every run (labelled by its grid values); the Pareto-optimal runs in red, \
                 joined by the front.</figcaption></figure>"
            );
        }
        Err(e) => {
            let _ = writeln!(s, "<p class=\"missing\">No chart: {}</p>", escape(&format!("{e:#}")));
        }
    }
    s.push_str("</section>\n<section>\n<h2>Runs</h2>\n");
    html_table(&mut s, runs_table(r), 2..6);
    let _ = writeln!(s, "<p>{}</p>\n</section>\n</main>\n</body>\n</html>", escape(LEGEND));
    s
}

/// Writes `report.md`, `report.csv`, `report.json` and `report.html` into `dir`; returns their paths.
pub fn write_all(dir: &Path, r: &SweepReport) -> Result<[PathBuf; 4]> {
    let paths = ["report.md", "report.csv", "report.json", "report.html"].map(|f| dir.join(f));
    write_atomic(&paths[0], markdown(r).as_bytes())?;
    write_atomic(&paths[1], csv(r).as_bytes())?;
    write_json(&paths[2], r)?;
    write_atomic(&paths[3], html(r).as_bytes())?;
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::super::report::tests::entry;
    use super::super::report::{Group, SweepReport, SCHEMA_VERSION};
    use super::*;
    use indexmap::IndexMap;
    use serde_json::json;

    fn report() -> SweepReport {
        let runs = vec![entry(0, "uniform", "none", 0, 0.8, 0.1), entry(1, "uniform", "angle", 0, 0.9, 0.2)];
        let group = |metric: &str, acc: f64| Group {
            values: IndexMap::from([
                ("sampler".to_string(), json!("uniform")),
                ("shrink.metric".to_string(), json!(metric)),
            ]),
            runs: 2,
            seeds: vec![json!(0), json!(1)],
            accuracy_ort: Stat { mean: acc, std: Some(0.01) },
            params: Stat { mean: 1e4, std: Some(0.0) },
            flops: Stat { mean: 1e6, std: Some(1e5) },
            latency_p50_ms: Stat { mean: 0.1, std: None },
        };
        SweepReport {
            schema_version: SCHEMA_VERSION,
            plan_file: "plan.toml".into(),
            keys: vec!["sampler".into(), "shrink.metric".into(), "seed".into()],
            runs_total: 3,
            missing: vec!["sampler=fair,shrink.metric=none,seed=0".into()],
            groups: vec![group("none", 0.8), group("angle", 0.9)],
            gains: Vec::new(),
            runs,
            mixed: Vec::new(),
        }
    }

    #[test]
    fn markdown_has_mean_and_std_per_group_and_says_what_is_missing() {
        let md = markdown(&report());
        assert!(md.contains("| sampler | shrink.metric | runs | acc. ORT (%) |"), "{md}");
        assert!(
            md.contains("| uniform | angle | 2 | 90.00 ± 1.00 | 0.010 ± 0.000 | 1.000 ± 0.100 | 0.1000 |"),
            "{md}"
        );
        assert!(md.contains("3 runs (sampler × shrink.metric × seed); 2 done"), "{md}");
        assert!(
            md.contains("Not done yet (not in the figures): sampler=fair,shrink.metric=none,seed=0"),
            "{md}"
        );
        assert!(md.contains("No pairs"), "{md}");
    }

    #[test]
    fn csv_has_one_row_per_group_with_plain_numbers() {
        let text = csv(&report());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "sampler,shrink.metric,runs,accuracy_ort_mean,accuracy_ort_std,params_mean,params_std,flops_mean,flops_std,latency_p50_ms_mean,latency_p50_ms_std");
        assert_eq!(lines[2], "uniform,angle,2,0.9,0.01,10000,0,1000000,100000,0.1,");
        assert_eq!(lines.len(), 3);
    }

    #[test]
    fn html_is_self_contained_with_the_chart() {
        let page = html(&report());
        assert!(page.starts_with("<!DOCTYPE html>") && page.trim_end().ends_with("</html>"));
        assert!(!page.contains("src=") && !page.contains("<script"));
        assert_eq!(page.matches("<svg").count(), 1);
        assert!(page.contains("uniform/angle/0"));
    }
}
