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

/// Whether any run was exported (ONNX Runtime figures) and whether any has a benchmark value.
fn has(r: &SweepReport) -> (bool, bool) {
    (r.runs.iter().any(|e| e.result.is_some()), r.runs.iter().any(|e| e.found.benchmark.is_some()))
}

fn opt_pm(s: &Option<Stat>, f: impl Fn(f64) -> String) -> String {
    s.as_ref().map_or_else(|| "–".into(), |s| pm(s, f))
}

fn opt_pm_signed(s: &Option<Stat>, f: impl Fn(f64) -> String) -> String {
    s.as_ref().map_or_else(|| "–".into(), |s| pm_signed(s, f))
}

fn two(v: f64) -> String {
    format!("{v:.2}")
}

fn groups_table(r: &SweepReport) -> Table {
    let (exported, bench) = has(r);
    let mut head = group_keys(r);
    head.push("runs".into());
    if bench {
        head.push("benchmark (%)".into());
    }
    if exported {
        head.push("acc. ORT (%)".into());
    }
    head.extend(["params (M)", "MACs (M)"].map(String::from));
    if exported {
        head.push("p50 ms (b1)".into());
    }
    let rows = r
        .groups
        .iter()
        .map(|g| {
            let mut row: Vec<String> = g.values.values().map(text).collect();
            row.push(g.runs.to_string());
            if bench {
                row.push(opt_pm(&g.benchmark, two));
            }
            if exported {
                row.push(opt_pm(&g.accuracy_ort, pct_number));
            }
            row.extend([pm(&g.params, millions), pm(&g.flops, millions)]);
            if exported {
                row.push(opt_pm(&g.latency_p50_ms, ms));
            }
            row
        })
        .collect();
    (head, rows)
}

fn gains_table(r: &SweepReport) -> Table {
    let (exported, bench) = has(r);
    let mut head: Vec<String> =
        r.gains.first().map(|g| g.method.keys().cloned().collect()).unwrap_or_default();
    head.extend(["shrinking", "pairs"].map(String::from));
    if bench {
        head.extend(["Δ benchmark (pp)", "better (benchmark)"].map(String::from));
    }
    if exported {
        head.extend(["Δ acc. (pp)", "better", "Δ p50 ms (b1)"].map(String::from));
    }
    head.extend(["Δ params (M)", "Δ MACs (M)"].map(String::from));
    let rows = r
        .gains
        .iter()
        .map(|g| {
            let mut row: Vec<String> = g.method.values().map(text).collect();
            row.extend([text(&g.metric), g.pairs.to_string()]);
            let of = |wins: Option<usize>| wins.map_or_else(|| "–".into(), |w| format!("{w}/{}", g.pairs));
            if bench {
                row.extend([opt_pm_signed(&g.benchmark_pp, two), of(g.benchmark_wins)]);
            }
            if exported {
                row.extend([
                    opt_pm_signed(&g.accuracy_pp, two),
                    of(g.wins),
                    opt_pm_signed(&g.latency_p50_ms, ms),
                ]);
            }
            row.extend([pm_signed(&g.params, millions), pm_signed(&g.flops, millions)]);
            row
        })
        .collect();
    (head, rows)
}

fn runs_table(r: &SweepReport) -> Table {
    let (exported, bench) = has(r);
    let mut head: Vec<String> = ["#", "run"].map(String::from).to_vec();
    if bench {
        head.push("benchmark".into());
    }
    if exported {
        head.extend(["acc. ORT", "p50 ms (b1)"].map(String::from));
    }
    head.extend(["params (M)", "MACs (M)"].map(String::from));
    if exported {
        head.push("Pareto".into());
    }
    head.push("architecture".into());
    let rows = r
        .runs
        .iter()
        .map(|e| {
            let mut row = vec![e.index.to_string(), e.name.clone()];
            if bench {
                row.push(e.found.benchmark.map_or_else(|| "–".into(), |b| format!("{b:.2}%")));
            }
            if exported {
                match &e.result {
                    Some(x) => row.extend([pct(x.accuracy_ort), ms(x.latency_p50_ms)]),
                    None => row.extend(["–".into(), "–".into()]),
                }
            }
            row.extend([millions(e.found.params), millions(e.found.flops)]);
            if exported {
                row.push(if e.result.as_ref().is_some_and(|x| x.pareto) {
                    "★".into()
                } else {
                    String::new()
                });
            }
            row.push(e.found.arch.clone());
            row
        })
        .collect();
    (head, rows)
}

/// The numeric columns of the runs table (after `#` and the name, up to the architecture).
fn runs_numeric(r: &SweepReport) -> Range<usize> {
    2..runs_table(r).0.len() - 1
}

const LEGEND: &str = "Mean ± sample standard deviation over the seeds of each group (no ± for a single run). \
    benchmark: the found cell's value in the runs' benchmark table (--benchmark); acc. ORT: test top-1 of the \
    exported model in ONNX Runtime; MACs: multiply-adds per image; p50 ms (b1): ONNX Runtime median latency at \
    batch 1 (– for a run that ends with its search, retrain.epochs = 0). Gains: each shrunk run minus the \
    shrink.metric = none run with the same other grid values and seed, then mean ± std over seeds; better: seeds \
    where shrinking was more accurate. ★ Pareto-optimal: no other run is both at least as accurate and at least as \
    fast, and better in one.";

/// The benchmark's best and mean cell, for scale.
fn scale_note(r: &SweepReport) -> Option<String> {
    r.benchmark.as_ref().map(|b| {
        format!(
            "Benchmark {} (column {}, {} cells): best cell {:.2} % ({}), mean cell {:.2} %.",
            b.table, b.column, b.cells, b.best_accuracy, b.best_arch, b.mean_accuracy
        )
    })
}

fn setting_note(r: &SweepReport) -> String {
    let first = r.runs.iter().find_map(|e| e.result.as_ref());
    match (r.mixed.is_empty(), first) {
        (true, Some(x)) => format!("Latencies measured with {}.", x.setting),
        (true, None) => "No run was exported: no latency or ONNX Runtime figures.".into(),
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
    if let Some(note) = scale_note(r) {
        let _ = writeln!(s, "{note}\n");
    }
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
    md_table(&mut s, runs_table(r), runs_numeric(r));
    let _ = writeln!(s, "\n{LEGEND}");
    s
}

/// One row per group: its grid values, the run count, and each figure's mean and std (plain
/// numbers: fractions, counts, ms, %; empty where a group has no such figure or a single run).
pub fn csv(r: &SweepReport) -> String {
    let figures = ["benchmark", "accuracy_ort", "params", "flops", "latency_p50_ms"];
    let mut head: Vec<String> = group_keys(r).iter().map(|k| field(k)).collect();
    head.push("runs".into());
    for f in figures {
        head.extend([format!("{f}_mean"), format!("{f}_std")]);
    }
    let mut s = head.join(",") + "\n";
    for g in &r.groups {
        let mut row: Vec<String> = g.values.values().map(|v| field(&text(v))).collect();
        row.push(g.runs.to_string());
        let (params, flops) = (Some(g.params.clone()), Some(g.flops.clone()));
        for stat in [&g.benchmark, &g.accuracy_ort, &params, &flops, &g.latency_p50_ms] {
            match stat {
                Some(st) => {
                    row.extend([st.mean.to_string(), st.std.map(|d| d.to_string()).unwrap_or_default()])
                }
                None => row.extend([String::new(), String::new()]),
            }
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
    if let Some(note) = scale_note(r) {
        let _ = writeln!(s, "<p class=\"sub\">{}</p>", escape(&note));
    }
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
    s.push_str("</section>\n");
    if has(r).0 {
        chart_section(&mut s, r);
    }
    s.push_str("<section>\n<h2>Runs</h2>\n");
    html_table(&mut s, runs_table(r), runs_numeric(r));
    let _ = writeln!(s, "<p>{}</p>\n</section>\n</main>\n</body>\n</html>", escape(LEGEND));
    s
}

/// The accuracy-against-latency chart of the exported runs.
fn chart_section(s: &mut String, r: &SweepReport) {
    s.push_str("<section>\n<h2>Accuracy against latency</h2>\n");
    let points: Vec<charts::RunPoint> = r
        .runs
        .iter()
        .filter_map(|e| {
            let x = e.result.as_ref()?;
            Some(charts::RunPoint {
                label: e.label.clone(),
                latency_ms: x.latency_p50_ms,
                accuracy: x.accuracy_ort,
                predicted_ms: None,
                pareto: x.pareto,
            })
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
    s.push_str("</section>\n");
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
            accuracy_ort: Some(Stat { mean: acc, std: Some(0.01) }),
            params: Stat { mean: 1e4, std: Some(0.0) },
            flops: Stat { mean: 1e6, std: Some(1e5) },
            latency_p50_ms: Some(Stat { mean: 0.1, std: None }),
            benchmark: None,
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
            benchmark: None,
        }
    }

    /// Runs that end with their search, judged by a benchmark table.
    fn benchmark_report() -> SweepReport {
        use super::super::report::{tests::searched, Scale};
        let mut r = report();
        r.runs = vec![searched(0, "none", 0, 88.0, 1e5), searched(1, "angle", 0, 91.0, 2e5)];
        for (g, b) in r.groups.iter_mut().zip([88.0, 91.0]) {
            (g.accuracy_ort, g.latency_p50_ms) = (None, None);
            g.benchmark = Some(Stat { mean: b, std: Some(0.5) });
        }
        r.benchmark = Some(Scale {
            table: "nb201.csv".into(),
            column: "cifar10-test@12".into(),
            cells: 15625,
            best_accuracy: 91.1,
            best_arch: "|best|".into(),
            mean_accuracy: 80.6,
        });
        r
    }

    #[test]
    fn a_sweep_without_exports_reports_the_benchmark_and_no_latency() {
        let r = benchmark_report();
        let md = markdown(&r);
        assert!(
            md.contains("| sampler | shrink.metric | runs | benchmark (%) | params (M) | MACs (M) |"),
            "{md}"
        );
        assert!(
            md.contains("| uniform | angle | 2 | 91.00 ± 0.50 | 0.010 ± 0.000 | 1.000 ± 0.100 |"),
            "{md}"
        );
        assert!(md.contains("best cell 91.10 % (|best|), mean cell 80.60 %"), "{md}");
        assert!(md.contains("No run was exported"), "{md}");
        assert!(!md.contains("| acc. ORT") && !md.contains("| Pareto |"), "{md}");
        assert!(md.contains("| 1 | sampler=uniform,shrink.metric=angle,seed=0 | 91.00% | 0.200 |"), "{md}");
        let text = csv(&r);
        assert_eq!(text.lines().nth(2).unwrap(), "uniform,angle,2,91,0.5,,,10000,0,1000000,100000,,");
        let page = html(&r);
        assert_eq!(page.matches("<svg").count(), 0, "no latency chart without exports");
        assert!(page.trim_end().ends_with("</html>"));
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
        assert_eq!(lines[0], "sampler,shrink.metric,runs,benchmark_mean,benchmark_std,accuracy_ort_mean,accuracy_ort_std,params_mean,params_std,flops_mean,flops_std,latency_p50_ms_mean,latency_p50_ms_std");
        assert_eq!(lines[2], "uniform,angle,2,,,0.9,0.01,10000,0,1000000,100000,0.1,");
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
