//! `report.html`: the export report as one self-contained page — inline CSS, inline SVG charts
//! ([`super::charts`]), no scripts and no external resources — so it can be mailed, archived or
//! opened offline and always looks the same.
use std::fmt::Write;

use super::{charts, ms, noise_sentences, pct, prediction_sentence, utc, History, LatencyPair, Report};

/// The style of every pwsnas HTML page (export reports, comparisons).
pub(crate) const CSS: &str = r#"
:root { --fg: #1d2330; --muted: #5b6475; --line: #dde1e8; --ok: #1a7f37; --bad: #c62828; --accent: #1f77b4; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: var(--fg); background: #f6f7f9; }
main { max-width: 1100px; margin: 0 auto; padding: 28px 28px 48px; }
header h1 { margin: 0 0 4px; font-size: 26px; }
.sub { color: var(--muted); margin: 0 0 14px; word-break: break-all; }
.badge { display: inline-block; padding: 3px 10px; border-radius: 12px; font-weight: 600; font-size: 13px;
         color: #fff; margin-right: 6px; }
.badge.ok { background: var(--ok); } .badge.bad { background: var(--bad); } .badge.info { background: var(--accent); }
.cards { display: grid; grid-template-columns: repeat(4, 1fr); gap: 14px; margin: 20px 0 8px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px; }
.card .k { color: var(--muted); font-size: 13px; } .card .v { font-size: 24px; font-weight: 650; margin-top: 2px; }
.card .d { color: var(--muted); font-size: 13px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 18px 22px; margin-top: 18px; }
h2 { font-size: 19px; margin: 0 0 12px; } h3 { font-size: 15px; margin: 18px 0 6px; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; }
table.kv th { white-space: nowrap; width: 1%; padding-right: 24px; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
code { font: 13px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: #f0f2f5;
       padding: 1px 5px; border-radius: 4px; word-break: break-all; }
.arch { display: block; padding: 10px 12px; font-size: 14px; }
.fail { color: var(--bad); font-weight: 600; }
.charts { display: grid; grid-template-columns: 1fr; gap: 6px; }
figure { margin: 0; } figcaption { color: var(--muted); font-size: 13px; margin-top: 2px; }
svg { width: 100%; height: auto; max-width: 760px; display: block; }
svg.arch-drawing { width: auto; max-width: 100%; }
.missing { color: var(--muted); font-style: italic; }
"#;

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The HTML report.
pub fn render(r: &Report, history: &History) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>pwsnas export report — {}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n",
        escape(&r.provenance.run)
    );
    header(&mut s, r);
    cards(&mut s, r);
    architecture(&mut s, r);
    validation(&mut s, r);
    latency(&mut s, r);
    search(&mut s, r, history);
    model_file(&mut s, r);
    provenance(&mut s, r);
    s.push_str("</main>\n</body>\n</html>\n");
    s
}

fn header(s: &mut String, r: &Report) {
    let (class, text) = if r.parity.passed { ("ok", "parity passed") } else { ("bad", "parity FAILED") };
    let _ = write!(
        s,
        "<header>\n<h1>pwsnas export report</h1>\n<p class=\"sub\">run <code>{}</code> · {} space · dataset {}</p>\n\
         <span class=\"badge {class}\">{text}</span><span class=\"badge info\">ONNX opset {}</span>\
         <span class=\"badge info\">ONNX Runtime {} ({})</span>\n</header>\n",
        escape(&r.provenance.run),
        escape(&r.space),
        escape(&r.provenance.dataset),
        r.onnx.opset,
        escape(&r.provenance.onnxruntime),
        escape(&r.latency.ep),
    );
}

fn cards(s: &mut String, r: &Report) {
    let card = |s: &mut String, k: &str, v: String, d: String| {
        let _ = writeln!(
            s,
            "<div class=\"card\"><div class=\"k\">{}</div><div class=\"v\">{}</div><div class=\"d\">{}</div></div>",
            escape(k),
            escape(&v),
            escape(&d)
        );
    };
    s.push_str("<div class=\"cards\">\n");
    card(
        s,
        "test accuracy (ONNX Runtime)",
        pct(r.accuracy.ort),
        format!("libtorch {} · {} images", pct(r.accuracy.libtorch), r.accuracy.test_images),
    );
    card(
        s,
        "batch-1 latency (ONNX Runtime p50)",
        format!("{} ms", ms(r.latency.ort.batch1.p50_ms)),
        format!(
            "{:.2}× libtorch eager ({} ms)",
            r.latency.batch1_speedup,
            ms(r.latency.libtorch.batch1.p50_ms)
        ),
    );
    card(
        s,
        "size",
        format!("{:.1} kB", r.onnx.bytes as f64 / 1e3),
        format!("{} stored weights", r.onnx.parameters),
    );
    card(
        s,
        "compute",
        format!("{:.2} M", r.flops / 1e6),
        format!("multiply-adds · {:.3} M params", r.params / 1e6),
    );
    s.push_str("</div>\n");
}

fn architecture(s: &mut String, r: &Report) {
    let _ = write!(
        s,
        "<section>\n<h2>Architecture</h2>\n<code class=\"arch\">{}</code>\n<h3>Space parameters</h3>\n<code class=\"arch\">{}</code>\n",
        escape(&r.arch),
        escape(&r.space_params.to_string())
    );
    match super::drawing::of_text(&r.space, &r.space_params, &r.arch) {
        Ok(svg) => {
            let _ = writeln!(
                s,
                "<figure class=\"arch-figure\">\n{svg}\n<figcaption>The architecture (also <code>arch.svg</code> \
                 beside <code>model.onnx</code>).</figcaption>\n</figure>"
            );
        }
        Err(e) => {
            let _ = writeln!(
                s,
                "<p class=\"missing\">The architecture cannot be drawn: {}</p>",
                escape(&format!("{e:#}"))
            );
        }
    }
    if let Some(b) = &r.benchmark {
        let _ = write!(
            s,
            "<h3>Benchmark</h3>\n<p class=\"benchmark\">{}</p>\n",
            escape(&crate::benchmark::sentence(b))
        );
    }
    s.push_str("</section>\n");
}

fn row(s: &mut String, k: &str, v_html: &str) {
    let _ = writeln!(s, "<tr><th>{}</th><td>{v_html}</td></tr>", escape(k));
}

fn validation(s: &mut String, r: &Report) {
    let p = &r.parity;
    let a = &r.accuracy;
    s.push_str("<section>\n<h2>Validation: ONNX Runtime against libtorch</h2>\n<table class=\"kv\">\n");
    let verdict =
        if p.passed { "passed".to_string() } else { "<span class=\"fail\">FAILED</span>".to_string() };
    row(
        s,
        &format!("logit parity ({} validation images)", p.images),
        &format!(
            "{verdict}: max abs diff {:.3e} = {:.3e} of the logit scale {:.4} (tolerance {:.1e})",
            p.max_abs_diff, p.scaled_diff, p.logit_scale, p.tolerance
        ),
    );
    if let Some(reason) = &p.reason {
        row(s, "why it failed", &format!("<span class=\"fail\">{}</span>", escape(reason)));
    }
    row(s, "top-1 agreement on that batch", &pct(p.top1_agreement));
    row(
        s,
        &format!("test accuracy ({} images)", a.test_images),
        &format!(
            "libtorch {} · ONNX Runtime {} · difference {:+.2} percentage points",
            pct(a.libtorch),
            pct(a.ort),
            a.difference_pp
        ),
    );
    row(s, "predictions that agree on the test split", &pct(a.prediction_agreement));
    if let Some(acc) = a.retrain_test_accuracy {
        row(s, "test accuracy recorded by retraining", &pct(acc));
    }
    if let Some(c) = &r.precision {
        let verdict =
            if c.passed { "accepted".to_string() } else { "<span class=\"fail\">REFUSED</span>".to_string() };
        row(
            s,
            &format!("{} accuracy loss against libtorch in fp32", escape(&c.precision)),
            &format!(
                "{verdict}: {:+.2} pp (at most {:.2} pp allowed)",
                c.accuracy_loss_pp, c.max_accuracy_loss_pp
            ),
        );
        if let Some(reason) = &c.reason {
            row(s, "why it was refused", &format!("<span class=\"fail\">{}</span>", escape(reason)));
        }
    }
    s.push_str("</table>\n</section>\n");
}

fn latency_rows(s: &mut String, name: &str, pair: &LatencyPair) {
    for st in [&pair.batch1, &pair.batch64] {
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{:.0}</td></tr>",
            escape(name),
            st.batch,
            st.runs,
            ms(st.min_ms),
            ms(st.p50_ms),
            ms(st.p90_ms),
            ms(st.p99_ms),
            ms(st.mean_ms),
            st.throughput_per_s
        );
    }
}

/// A chart, or a note saying why it is missing.
fn figure(s: &mut String, chart: anyhow::Result<String>, caption: &str) {
    match chart {
        Ok(svg) => {
            let _ = write!(s, "<figure>\n{svg}\n<figcaption>{}</figcaption>\n</figure>\n", escape(caption));
        }
        Err(e) => {
            let _ = writeln!(
                s,
                "<p class=\"missing\">{}: no chart ({})</p>",
                escape(caption),
                escape(&format!("{e:#}"))
            );
        }
    }
}

fn latency(s: &mut String, r: &Report) {
    let l = &r.latency;
    let _ = write!(
        s,
        "<section>\n<h2>Latency</h2>\n<p>ONNX Runtime on <code>{}</code> and libtorch eager on <code>{}</code>, {} intra-op thread(s), \
         {}. Milliseconds per batch after {} warm-up runs.</p>\n<table>\n<tr><th>runtime</th><th class=\"n\">batch</th>\
         <th class=\"n\">runs</th><th class=\"n\">min</th><th class=\"n\">p50</th><th class=\"n\">p90</th><th class=\"n\">p99</th>\
         <th class=\"n\">mean</th><th class=\"n\">images/s</th></tr>\n",
        escape(&l.ep),
        escape(&l.libtorch_device),
        l.threads,
        escape(&format!("{}{}", l.cpu, l.gpu.as_deref().map(|g| format!(", GPU {g}")).unwrap_or_default())),
        l.ort.batch1.warmup
    );
    latency_rows(s, "ONNX Runtime", &l.ort);
    latency_rows(s, "libtorch eager", &l.libtorch);
    let _ = write!(
        s,
        "</table>\n<p>At batch 1 ONNX Runtime is <b>{:.2}×</b> as fast as libtorch eager (p50); at batch 64, <b>{:.2}×</b>.</p>\n",
        l.batch1_speedup, l.batch64_speedup
    );
    for (warning, sentence) in noise_sentences(l) {
        let class = if warning { " class=\"fail\"" } else { "" };
        let _ = writeln!(s, "<p{class}>{}</p>", escape(&sentence));
    }
    if let Some(p) = l.predicted_ms {
        let _ = writeln!(s, "<p>{}</p>", escape(&prediction_sentence(p, l)));
    }
    s.push_str("<div class=\"charts\">\n");
    figure(
        s,
        charts::latency_runs(&l.ort.batch1, &l.libtorch.batch1),
        "Every timed run at batch 1 (dashed: medians)",
    );
    figure(
        s,
        charts::latency_runs(&l.ort.batch64, &l.libtorch.batch64),
        "Every timed run at batch 64 (dashed: medians)",
    );
    s.push_str("</div>\n</section>\n");
}

fn search(s: &mut String, r: &Report, history: &History) {
    s.push_str("<section>\n<h2>How the architecture was found</h2>\n");
    if let Some(sh) = &r.shrinking {
        let _ = writeln!(s, "<p>{}</p>", escape(&sh.sentence()));
    }
    s.push_str("<div class=\"charts\">\n");
    match &history.shrink {
        Ok(shrink) => {
            figure(
                s,
                charts::space_size(shrink),
                "Search-space shrinking: log10 of the number of architectures per round",
            );
            figure(
                s,
                charts::candidate_scores(shrink),
                "Operator candidates scored per round (crosses: dropped)",
            );
        }
        Err(e) => {
            let _ = writeln!(s, "<p class=\"missing\">Shrinking: no chart ({})</p>", escape(e));
        }
    }
    match &history.search {
        Ok(search) => figure(
            s,
            charts::search_scatter(search, &r.arch),
            "Search: supernet accuracy of every evaluated child against its multiply-adds (red: the exported architecture)",
        ),
        Err(e) => {
            let _ = writeln!(s, "<p class=\"missing\">Search: no chart ({})</p>", escape(e));
        }
    }
    s.push_str("</div>\n");
    match &history.method {
        None => {}
        Some(Ok(method)) => alpha_charts(s, method),
        Some(Err(e)) => {
            let _ = writeln!(s, "<p class=\"missing\">Method: no α chart ({})</p>", escape(e));
        }
    }
    s.push_str("</section>\n");
}

/// softmax(α) of every choice point over the method's epochs, one chart per choice point, folded
/// away (a DARTS space has 28).
fn alpha_charts(s: &mut String, method: &crate::method::MethodReport) {
    let per_cp = charts::alpha_by_choice_point(method);
    let _ = writeln!(
        s,
        "<details>\n<summary>{}: softmax(α) per op over its {} epochs, for each of {} choice points</summary>\n<div class=\"charts\">",
        escape(method.method.name()),
        method.history.len(),
        per_cp.len()
    );
    for (cp, series) in &per_cp {
        figure(s, charts::by_epoch(series, "method epoch", "softmax(α)"), &format!("choice point {cp}"));
    }
    s.push_str("</div>\n</details>\n");
}

fn model_file(s: &mut String, r: &Report) {
    let o = &r.onnx;
    s.push_str("<section>\n<h2>Model file</h2>\n<table class=\"kv\">\n");
    row(s, "file", &format!("<code>{}</code> · {} bytes", escape(&o.path), o.bytes));
    row(s, "format", &format!("ONNX IR version {}, opset {}", o.ir_version, o.opset));
    row(s, "graph", &format!("{} lowering, {}", escape(&o.lowering), escape(&o.precision)));
    row(s, "input", &format!("<code>{}</code> (NCHW, float32)", escape(&o.input)));
    row(s, "output", &format!("<code>{}</code> (logits)", escape(&o.output)));
    let ops: Vec<String> = o.op_counts.iter().map(|(k, v)| format!("{} ×{v}", escape(k))).collect();
    row(s, &format!("nodes ({})", o.nodes), &ops.join(", "));
    row(s, "stored weights", &o.parameters.to_string());
    for (k, v) in &o.metadata {
        row(s, &format!("metadata {k}"), &format!("<code>{}</code>", escape(v)));
    }
    s.push_str("</table>\n</section>\n");
}

fn provenance(s: &mut String, r: &Report) {
    let p = &r.provenance;
    s.push_str("<section>\n<h2>Provenance</h2>\n<table class=\"kv\">\n");
    row(s, "run", &format!("<code>{}</code>", escape(&p.run)));
    row(s, "dataset", &escape(&p.dataset));
    row(s, "seed", &p.seed.to_string());
    row(
        s,
        "versions",
        &escape(&format!("pwsnas {} · libtorch {} · ONNX Runtime {}", p.pwsnas, p.libtorch, p.onnxruntime)),
    );
    row(s, "ONNX Runtime library", &format!("<code>{}</code>", escape(&p.onnxruntime_library)));
    if let Some(e) = p.retrain_epochs {
        row(s, "retraining epochs", &e.to_string());
    }
    row(s, "settings", &format!("<code>{}</code>", escape(&p.settings.to_string())));
    row(s, "export options", &format!("<code>{}</code>", escape(&p.export.to_string())));
    row(s, "exported at", &utc(p.exported_at));
    s.push_str("</table>\n</section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::sample;

    #[test]
    fn self_contained_with_escaped_text_and_notes_for_missing_history() {
        let history = History {
            shrink: Err("shrink.json does not exist".into()),
            search: Err("search.json does not exist".into()),
            method: None,
        };
        let html = render(&sample(), &history);
        assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
        assert!(
            !html.contains("src=") && !html.contains("href=") && !html.contains("<script"),
            "external resources"
        );
        assert!(html.contains("<code>/tmp/run &lt;1&gt;</code>"), "run path escaped");
        assert_eq!(html.matches("<svg").count(), 3, "the architecture and the two latency charts");
        assert_eq!(html.matches("class=\"arch-drawing\"").count(), 1);
        assert!(!html.contains("cannot be drawn"));
        assert!(html.contains("Shrinking: no chart (shrink.json does not exist)"));
        assert!(html.contains("parity passed"));
        assert!(html.contains("<h3>Benchmark</h3>") && html.contains("rank 41 of 15625 cells"));
        assert_eq!(escape("a<b & \"c\"'"), "a&lt;b &amp; &quot;c&quot;&#39;");
    }

    #[test]
    fn an_arch_the_space_cannot_read_is_reported_instead_of_drawn() {
        let history = History { shrink: Err("none".into()), search: Err("none".into()), method: None };
        let mut r = sample();
        r.arch = "|nor_conv_3x3~0|+|bogus~0|avg_pool_3x3~1|".into();
        let html = render(&r, &history);
        assert!(!html.contains("class=\"arch-drawing\""));
        assert!(html.contains("The architecture cannot be drawn") && html.contains("bogus"), "{html}");
    }

    #[test]
    fn a_methods_alpha_is_charted_per_choice_point_and_ops_a_stage_drops_end_their_line() {
        use crate::method::{Method, MethodEpoch, MethodReport};
        use indexmap::IndexMap;
        let probs = |rows: &[(&str, &[(&str, f64)])]| -> IndexMap<String, IndexMap<String, f64>> {
            rows.iter()
                .map(|(cp, ops)| (cp.to_string(), ops.iter().map(|(o, p)| (o.to_string(), *p)).collect()))
                .collect()
        };
        let epoch = |stage, probs| MethodEpoch {
            stage,
            epoch: 0,
            weight_steps: 4,
            alpha_steps: 4,
            loss: 1.0,
            train_accuracy: 0.5,
            probs,
            derived: "child".into(),
            expected_latency_ms: None,
            skip_dropout: None,
            seconds: 1.0,
        };
        // PDARTS-like: stage 1 keeps one op of the first choice point.
        let method = MethodReport {
            method: Method::Pdarts,
            history: vec![
                epoch(
                    0,
                    probs(&[
                        ("normal/2<-0", &[("sep_conv_3x3", 0.6), ("max_pool_3x3", 0.4)]),
                        ("1<-0", &[("a", 0.5), ("b", 0.5)]),
                    ]),
                ),
                epoch(
                    1,
                    probs(&[("normal/2<-0", &[("sep_conv_3x3", 1.0)]), ("1<-0", &[("a", 0.2), ("b", 0.8)])]),
                ),
            ],
            derived: Some("child".into()),
        };
        let per_cp = charts::alpha_by_choice_point(&method);
        let names: Vec<&str> = per_cp.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["normal/2<-0", "1<-0"]);
        let lines: Vec<(&str, usize)> =
            per_cp[0].1.iter().map(|s| (s.label.as_str(), s.points.len())).collect();
        assert_eq!(lines, [("sep_conv_3x3", 2), ("max_pool_3x3", 1)]);
        assert_eq!(per_cp[1].1[1].points, [(1.0, 0.5), (2.0, 0.8)]);

        let history = History {
            shrink: Err("shrink.json does not exist".into()),
            search: Err("search.json does not exist".into()),
            method: Some(Ok(method)),
        };
        let html = render(&sample(), &history);
        assert!(
            html.contains("pdarts: softmax(α) per op over its 2 epochs, for each of 2 choice points"),
            "{html}"
        );
        assert!(html.contains("<figcaption>choice point normal/2&lt;-0</figcaption>"));
        assert_eq!(
            html.matches("<svg").count(),
            5,
            "the architecture, two latency charts and one per choice point"
        );
        let unreadable = History { method: Some(Err("method.json: bad".into())), ..history };
        assert!(render(&sample(), &unreadable).contains("Method: no α chart (method.json: bad)"));
    }
}
