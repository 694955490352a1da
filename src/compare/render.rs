//! The comparison as Markdown (`compare.md`, also printed), CSV (`compare.csv`, one row per run,
//! plain numbers for spreadsheets) and a self-contained HTML page (`compare.html`: the table and an
//! inline SVG chart of accuracy against latency, in the style of `report.html`).
use std::fmt::Write;

use super::{Comparison, Row};
use crate::report::html::{escape, CSS};
use crate::report::{charts, ms, pct};

fn opt_ms(v: Option<f64>) -> String {
    v.map(ms).unwrap_or_else(|| "–".into())
}

fn opt_error(v: Option<f64>) -> String {
    v.map(|e| format!("{:+.1}%", e * 100.0)).unwrap_or_else(|| "–".into())
}

/// The setting the latencies were measured with, or the differences `--allow-mixed` let through.
fn setting_note(c: &Comparison) -> String {
    match (c.mixed.is_empty(), c.runs.first()) {
        (true, Some(r)) => format!("Latencies measured with {}.", r.setting),
        _ => format!(
            "Latencies were measured with different settings (--allow-mixed): {}.",
            c.mixed.join("; ")
        ),
    }
}

/// Copies per choice point as `2·1·1`.
fn copies(v: &Option<Vec<usize>>, sep: &str) -> Option<String> {
    v.as_ref().map(|c| c.iter().map(ToString::to_string).collect::<Vec<_>>().join(sep))
}

/// The column of the benchmark value in [`HEADERS`] and [`cells`]: shown only when a run has one.
const BENCHMARK_COLUMN: usize = 3;

/// Whether the comparison shows the benchmark column (some run was looked up in a table).
fn with_benchmark(c: &Comparison) -> bool {
    c.runs.iter().any(|r| r.benchmark.is_some())
}

/// `items` without the benchmark column unless `benchmark`.
fn shown<T: Clone>(items: &[T], benchmark: bool) -> Vec<T> {
    items
        .iter()
        .enumerate()
        .filter(|(i, _)| benchmark || *i != BENCHMARK_COLUMN)
        .map(|(_, x)| x.clone())
        .collect()
}

/// The batch-1 p50 with the spread of its sessions, marked ⚠ when the measurement showed a sign of
/// noise (listed under the table by [`warnings`]).
fn p50(r: &Row) -> String {
    let spread = r.latency_spread.map(|s| format!(" ±{:.0}%", s * 100.0 / 2.0)).unwrap_or_default();
    let mark = if r.latency_warnings.is_empty() { "" } else { " ⚠" };
    format!("{}{spread}{mark}", ms(r.latency_p50_ms))
}

/// One line per run whose latency should not be trusted, with why.
fn warnings(c: &Comparison) -> Vec<String> {
    c.runs
        .iter()
        .filter(|r| !r.latency_warnings.is_empty())
        .map(|r| format!("⚠ {}: {}", r.run, r.latency_warnings.join("; ")))
        .collect()
}

/// The columns of the main table, as text cells.
fn cells(r: &Row) -> [String; 17] {
    [
        r.run.clone(),
        pct(r.accuracy_libtorch),
        pct(r.accuracy_ort),
        r.benchmark.map(|b| format!("{b:.2}%")).unwrap_or_else(|| "–".into()),
        copies(&r.copies, "·").unwrap_or_else(|| "–".into()),
        r.supernet_params.map(|p| format!("{:.3} M", p as f64 / 1e6)).unwrap_or_else(|| "–".into()),
        r.sharing_degree.map(|d| format!("{d:.2}")).unwrap_or_else(|| "–".into()),
        p50(r),
        ms(r.latency_p90_ms),
        format!("{:.0}", r.throughput_batch64),
        format!("{:.3} M", r.params / 1e6),
        format!("{:.2} M", r.flops / 1e6),
        format!("{:.1} kB", r.model_bytes as f64 / 1e3),
        opt_ms(r.budget_ms),
        opt_ms(r.predicted_ms),
        opt_error(r.prediction_error),
        if r.pareto { "★".into() } else { String::new() },
    ]
}

const HEADERS: [&str; 17] = [
    "run",
    "acc. libtorch",
    "acc. ORT",
    "benchmark",
    "copies",
    "supernet params",
    "sharing",
    "p50 ms (b1)",
    "p90 ms (b1)",
    "img/s (b64)",
    "params",
    "MACs",
    "size",
    "budget ms",
    "predicted ms",
    "pred. error",
    "Pareto",
];

/// What the short headers mean.
const LEGEND: &str = "acc.: test top-1; ORT: ONNX Runtime; benchmark (when a run has one): the cell's value in the \
    run's benchmark table (--benchmark, e.g. NAS-Bench-201's CIFAR-10 test top-1); copies: weight copies per choice point of the supernet the \
    search used (strategy 2), supernet params: its effective parameters, sharing: children per weight copy of the \
    final space (mean); b1/b64: batch 1/64, ORT latency and throughput (p50: the trimmed mean of fresh sessions' \
    medians, ± half their range; ⚠: a measurement not to trust, listed below the table); MACs: \
    multiply-adds per image; size: model.onnx; budget: the search's --max-latency-ms; predicted: the latency \
    table's prediction at batch 1, and its error, predicted / measured p50 − 1. ★ Pareto-optimal: no other run \
    is both at least as accurate (ORT) and at least as fast (p50 at batch 1), and better in one.";

/// The Markdown table, the architectures, and the setting.
pub fn markdown(c: &Comparison) -> String {
    let mut s = String::from("# pwsnas comparison\n\n");
    let bench = with_benchmark(c);
    let headers = shown(&HEADERS, bench);
    let _ = writeln!(s, "| {} |", headers.join(" | "));
    let _ = writeln!(s, "| --- |{}", " ---: |".repeat(headers.len() - 2) + " :---: |");
    for r in &c.runs {
        let row: Vec<String> = shown(&cells(r), bench).iter().map(|c| c.replace('|', "\\|")).collect();
        let _ = writeln!(s, "| {} |", row.join(" | "));
    }
    let _ = writeln!(s, "\n{LEGEND}\n");
    for w in warnings(c) {
        let _ = writeln!(s, "{}\n", w.replace('|', "\\|"));
    }
    let _ = writeln!(s, "{}\n", setting_note(c));
    let _ = writeln!(s, "| run | space | architecture |\n| --- | --- | --- |");
    for r in &c.runs {
        let _ =
            writeln!(s, "| {} | {} | `{}` |", r.run.replace('|', "\\|"), r.space, r.arch.replace('|', "\\|"));
    }
    s
}

/// One CSV field, quoted when it needs to be (RFC 4180).
pub(crate) fn field(v: &str) -> String {
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_string()
    }
}

/// One row per run with plain numbers (fractions, milliseconds, counts).
pub fn csv(c: &Comparison) -> String {
    let mut s = String::from(
        "run,arch,space,accuracy_libtorch,accuracy_ort,latency_p50_ms,latency_p90_ms,throughput_batch64_per_s,params,\
         flops,model_bytes,budget_ms,predicted_ms,prediction_error,pareto,cpu,threads,ep,onnxruntime,copies,\
         supernet_params,sharing_degree,benchmark,latency_spread,latency_reliable\n",
    );
    let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    for r in &c.runs {
        let fields = [
            field(&r.run),
            field(&r.arch),
            field(&r.space),
            r.accuracy_libtorch.to_string(),
            r.accuracy_ort.to_string(),
            r.latency_p50_ms.to_string(),
            r.latency_p90_ms.to_string(),
            r.throughput_batch64.to_string(),
            r.params.to_string(),
            r.flops.to_string(),
            r.model_bytes.to_string(),
            opt(r.budget_ms),
            opt(r.predicted_ms),
            opt(r.prediction_error),
            r.pareto.to_string(),
            field(&r.setting.cpu),
            r.setting.threads.to_string(),
            field(&r.setting.ep),
            field(&r.setting.onnxruntime),
            copies(&r.copies, " ").unwrap_or_default(),
            r.supernet_params.map(|p| p.to_string()).unwrap_or_default(),
            opt(r.sharing_degree),
            opt(r.benchmark),
            opt(r.latency_spread),
            r.latency_warnings.is_empty().to_string(),
        ];
        let _ = writeln!(s, "{}", fields.join(","));
    }
    s
}

/// The self-contained HTML page.
pub fn html(c: &Comparison) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>pwsnas comparison of {} runs</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n\
         <header>\n<h1>pwsnas comparison</h1>\n<p class=\"sub\">{} runs · {}</p>\n</header>\n",
        c.runs.len(),
        c.runs.len(),
        escape(&setting_note(c))
    );
    let points: Vec<charts::RunPoint> = c
        .runs
        .iter()
        .map(|r| charts::RunPoint {
            label: r.run.clone(),
            latency_ms: r.latency_p50_ms,
            accuracy: r.accuracy_ort,
            predicted_ms: r.predicted_ms,
            pareto: r.pareto,
        })
        .collect();
    s.push_str("<section>\n<h2>Accuracy against latency</h2>\n");
    match charts::accuracy_latency(&points) {
        Ok(svg) => {
            let _ = write!(
                s,
                "<figure>\n{svg}\n<figcaption>ONNX Runtime test accuracy against its batch-1 p50 latency (red: \
                 Pareto-optimal runs, joined by the front; hollow grey: the latency table's prediction)</figcaption>\n</figure>\n"
            );
        }
        Err(e) => {
            let _ = writeln!(s, "<p class=\"missing\">no chart ({})</p>", escape(&format!("{e:#}")));
        }
    }
    s.push_str("</section>\n<section>\n<h2>Runs</h2>\n<div style=\"overflow-x: auto\">\n<table>\n<tr>");
    let bench = with_benchmark(c);
    for (i, h) in shown(&HEADERS, bench).iter().enumerate() {
        let class = if i == 0 { "" } else { " class=\"n\"" };
        let _ = write!(s, "<th{class}>{}</th>", escape(h));
    }
    s.push_str("</tr>\n");
    for r in &c.runs {
        s.push_str("<tr>");
        for (i, cell) in shown(&cells(r), bench).iter().enumerate() {
            if i == 0 {
                let _ = write!(s, "<td style=\"white-space: nowrap\"><code>{}</code></td>", escape(cell));
            } else {
                let _ = write!(s, "<td class=\"n\">{}</td>", escape(cell));
            }
        }
        s.push_str("</tr>\n");
    }
    let _ = writeln!(s, "</table>\n</div>\n<p>{}</p>", escape(LEGEND));
    for w in warnings(c) {
        let _ = writeln!(s, "<p class=\"fail\">{}</p>", escape(&w));
    }
    s.push_str("</section>\n");
    s.push_str("<section>\n<h2>Architectures</h2>\n<table class=\"kv\">\n");
    for r in &c.runs {
        let _ = writeln!(
            s,
            "<tr><th><code>{}</code></th><td>{} · <code>{}</code></td></tr>",
            escape(&r.run),
            escape(&r.space),
            escape(&r.arch)
        );
    }
    s.push_str("</table>\n</section>\n</main>\n</body>\n</html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::tests::row;
    use crate::compare::{mark_pareto, Comparison, SCHEMA_VERSION};

    fn comparison() -> Comparison {
        let mut runs = vec![row("runs/a,b", 0.9, 0.2), row("runs/c", 0.8, 0.1), row("runs/d", 0.7, 0.3)];
        mark_pareto(&mut runs);
        Comparison { schema_version: SCHEMA_VERSION, runs, mixed: Vec::new() }
    }

    #[test]
    fn markdown_has_one_row_per_run_with_pareto_marks() {
        let md = markdown(&comparison());
        assert!(
            md.contains("| runs/c | 80.00% | 80.00% | 2·1·1 | 0.012 M | 2.50 | 0.1000 ±2% | 0.1100 | 1000 | 0.010 M | 1.00 M | 40.0 kB | – | 0.0900 | -10.0% | ★ |"),
            "{md}"
        );
        assert_eq!(md.matches(" ★ |").count(), 2, "{md}");
        assert!(md.contains("ONNX Runtime 1.31.1 on cpu, 2 thread(s), Test CPU"), "{md}");
        assert!(md.contains("`\\|nor_conv_3x3~0\\|+"), "{md}");
    }

    #[test]
    fn the_benchmark_column_appears_when_a_run_has_a_benchmark_value() {
        let mut c = comparison();
        c.runs[1].benchmark = Some(88.25);
        let md = markdown(&c);
        assert!(md.contains("| run | acc. libtorch | acc. ORT | benchmark | copies |"), "{md}");
        assert!(md.contains("| runs/c | 80.00% | 80.00% | 88.25% | 2·1·1 |"), "{md}");
        assert!(md.contains("| runs/d | 70.00% | 70.00% | – | 2·1·1 |"), "{md}");
        assert!(html(&c).contains("<td class=\"n\">88.25%</td>"));
        assert!(csv(&c).lines().nth(2).unwrap().ends_with(",88.25,0.04,true"), "{}", csv(&c));
    }

    #[test]
    fn a_latency_not_to_trust_is_marked_and_explained() {
        let mut c = comparison();
        c.runs[2].latency_warnings =
            vec!["batch 1: other processes used 48% of the machine's CPU time meanwhile".into()];
        let md = markdown(&c);
        assert!(md.contains("| 0.3000 ±2% ⚠ |"), "{md}");
        assert!(md.contains("⚠ runs/d: batch 1: other processes used 48%"), "{md}");
        assert_eq!(md.matches(" ⚠ |").count(), 1, "{md}");
        assert!(html(&c).contains("<p class=\"fail\">⚠ runs/d: batch 1: other processes used 48%"));
        assert!(csv(&c).lines().nth(3).unwrap().ends_with(",0.04,false"), "{}", csv(&c));
    }

    #[test]
    fn csv_quotes_fields_and_keeps_plain_numbers() {
        let text = csv(&comparison());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(
            lines[1].starts_with("\"runs/a,b\",|nor_conv_3x3~0|+|none~0|skip_connect~1|,nb201,0.9,0.9,0.2,"),
            "{}",
            lines[1]
        );
        assert!(lines[3].contains(",false,Test CPU,2,cpu,1.31.1,2 1 1,12345,2.5"), "{}", lines[3]);
        assert_eq!(field("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn html_is_self_contained_with_the_chart_and_every_run() {
        let page = html(&comparison());
        assert!(page.starts_with("<!DOCTYPE html>") && page.trim_end().ends_with("</html>"));
        assert!(!page.contains("src=") && !page.contains("href=") && !page.contains("<script"));
        assert_eq!(page.matches("<svg").count(), 1);
        for run in ["runs/a,b", "runs/c", "runs/d"] {
            assert!(page.contains(&format!("<code>{run}</code></td>")), "{run}");
        }
    }
}
