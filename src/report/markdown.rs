//! `report.md`: the export report as Markdown tables, for terminals, pull requests and notebooks.
use std::fmt::Write;

#[cfg(test)]
use super::Accuracy;
use super::{ms, noise_sentences, pct, prediction_sentence, utc, LatencyPair, Report};

/// The Markdown report.
pub fn render(r: &Report) -> String {
    let mut s = String::new();
    let verdict = if r.parity.passed { "passed" } else { "FAILED" };
    let _ = writeln!(s, "# pwsnas export report\n");
    let _ =
        writeln!(s, "Run `{}` — `{}` space, exported model `{}`.\n", r.provenance.run, r.space, r.onnx.path);
    let _ = writeln!(s, "Architecture: `{}`\n", r.arch);
    let _ = writeln!(
        s,
        "{:.3} M multiply-adds, {:.3} M parameters; input `{}`, output `{}`.\n",
        r.flops / 1e6,
        r.params / 1e6,
        r.onnx.input,
        r.onnx.output
    );

    let _ = writeln!(s, "## Validation (ONNX Runtime vs libtorch)\n");
    let _ = writeln!(s, "| check | result |\n| --- | --- |");
    let _ = writeln!(
        s,
        "| logit parity ({} validation images) | **{verdict}**: max abs diff {:.3e} = {:.3e} of the logit scale {:.4} (tolerance {:.1e}) |",
        r.parity.images, r.parity.max_abs_diff, r.parity.scaled_diff, r.parity.logit_scale, r.parity.tolerance
    );
    let _ = writeln!(s, "| top-1 agreement on that batch | {} |", pct(r.parity.top1_agreement));
    let _ = writeln!(
        s,
        "| test accuracy ({} images) | libtorch {}, ONNX Runtime {} (difference {:+.2} pp) |",
        r.accuracy.test_images,
        pct(r.accuracy.libtorch),
        pct(r.accuracy.ort),
        r.accuracy.difference_pp
    );
    let _ = writeln!(
        s,
        "| predictions that agree on the test split | {} |",
        pct(r.accuracy.prediction_agreement)
    );
    if let Some(acc) = r.accuracy.retrain_test_accuracy {
        let _ = writeln!(s, "| test accuracy recorded by retraining | {} |", pct(acc));
    }
    if let Some(c) = &r.precision {
        let _ = writeln!(
            s,
            "| {} accuracy loss against libtorch in fp32 | **{}**: {:+.2} pp (at most {:.2} pp allowed) |",
            c.precision,
            if c.passed { "accepted" } else { "REFUSED" },
            c.accuracy_loss_pp,
            c.max_accuracy_loss_pp
        );
    }
    if let Some(reason) = &r.parity.reason {
        let _ = writeln!(s, "\n**Parity failed:** {reason}");
    }
    if let Some(reason) = r.precision.as_ref().and_then(|c| c.reason.as_ref()) {
        let _ = writeln!(s, "\n**Precision refused:** {reason}");
    }

    let l = &r.latency;
    let _ = writeln!(s, "\n## Latency\n");
    let _ = writeln!(
        s,
        "ONNX Runtime on `{}` and libtorch eager on `{}`, {} intra-op thread(s), {}{}. Times in ms per batch.\n",
        l.ep,
        l.libtorch_device,
        l.threads,
        l.cpu,
        l.gpu.as_deref().map(|g| format!(", GPU {g}")).unwrap_or_default()
    );
    let _ = writeln!(s, "| runtime | batch | runs | min | p50 | p90 | p99 | mean | images/s |");
    let _ = writeln!(s, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (name, pair) in [("ONNX Runtime", &l.ort), ("libtorch eager", &l.libtorch)] {
        latency_rows(&mut s, name, pair);
    }
    let _ = writeln!(
        s,
        "\nAt batch 1 ONNX Runtime is **{:.2}×** as fast as libtorch eager (p50); at batch 64, {:.2}×.",
        l.batch1_speedup, l.batch64_speedup
    );
    for (warning, sentence) in noise_sentences(l) {
        let _ = writeln!(s, "\n{}{sentence}", if warning { "**Warning:** " } else { "" });
    }
    if let Some(p) = l.predicted_ms {
        let _ = writeln!(s, "\n{}", prediction_sentence(p, l));
    }

    if let Some(m) = &r.method {
        let _ = writeln!(s, "\nSearch method: **{m}**.");
    }
    if let Some(b) = &r.benchmark {
        let _ = writeln!(s, "\n## Benchmark\n\n{}", crate::benchmark::sentence(b));
    }
    if let Some(sh) = &r.shrinking {
        let _ = writeln!(s, "\n## Shrinking\n\n{}", sh.sentence());
    }

    let _ = writeln!(s, "\n## Model file\n");
    let _ = writeln!(s, "| | |\n| --- | --- |");
    let _ = writeln!(s, "| file | `{}` ({} bytes) |", r.onnx.path, r.onnx.bytes);
    let _ = writeln!(s, "| ONNX | IR version {}, opset {} |", r.onnx.ir_version, r.onnx.opset);
    let _ = writeln!(s, "| graph | {} lowering, {} |", r.onnx.lowering, r.onnx.precision);
    let ops: Vec<String> = r.onnx.op_counts.iter().map(|(k, v)| format!("{k} ×{v}")).collect();
    let _ = writeln!(s, "| nodes | {} ({}) |", r.onnx.nodes, ops.join(", "));
    let _ = writeln!(s, "| stored weights | {} |", r.onnx.parameters);
    for (k, v) in &r.onnx.metadata {
        let _ = writeln!(s, "| metadata `{k}` | `{}` |", v.replace('|', "\\|"));
    }

    let p = &r.provenance;
    let _ = writeln!(s, "\n## Provenance\n");
    let _ = writeln!(s, "| | |\n| --- | --- |");
    let _ = writeln!(s, "| run | `{}` |", p.run);
    let _ = writeln!(s, "| dataset | {} |", p.dataset);
    let _ = writeln!(s, "| seed | {} |", p.seed);
    let _ = writeln!(
        s,
        "| versions | pwsnas {}, libtorch {}, ONNX Runtime {} |",
        p.pwsnas, p.libtorch, p.onnxruntime
    );
    let _ = writeln!(s, "| ONNX Runtime library | `{}` |", p.onnxruntime_library);
    if let Some(e) = p.retrain_epochs {
        let _ = writeln!(s, "| retraining epochs | {e} |");
    }
    let _ = writeln!(s, "| settings | `{}` |", p.settings);
    let _ = writeln!(s, "| export options | `{}` |", p.export);
    let _ = writeln!(s, "| exported at | {} |", utc(p.exported_at));
    s
}

fn latency_rows(s: &mut String, name: &str, pair: &LatencyPair) {
    for st in [&pair.batch1, &pair.batch64] {
        let _ = writeln!(
            s,
            "| {name} | {} | {} | {} | {} | {} | {} | {} | {:.0} |",
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::sample;

    #[test]
    fn each_ort_figure_says_how_it_was_measured_and_a_noisy_one_is_flagged_with_what_to_do() {
        use crate::timing::Noise;
        let mut r = sample();
        assert!(!render(&r).contains("fresh sessions"), "no noise recorded, nothing claimed");
        let steady = vec![vec![0.2, 0.21, 0.2], vec![0.2, 0.2, 0.21]];
        r.latency.ort.batch1.noise = Some(Noise::judge(&steady, Some(0.01)));
        let busy = vec![vec![10.0, 10.5, 10.2], vec![13.0, 13.2, 13.1]];
        r.latency.ort.batch64.noise = Some(Noise::judge(&busy, Some(0.45)));
        let md = render(&r);
        assert!(md.contains("ONNX Runtime at batch 1: p50 0.2000 ms is the trimmed mean of 2 fresh sessions' medians (0.2000–0.2000 ms, spread 0%)."), "{md}");
        assert!(md.contains("**Warning:** ONNX Runtime at batch 64:"), "{md}");
        assert!(md.contains("NOT RELIABLE — the median latency varied by 28% from one fresh ONNX Runtime session to the next; other processes used 45% of the machine's CPU time meanwhile"), "{md}");
        assert!(md.contains("Measure on an idle machine"), "{md}");
    }

    #[test]
    fn tables_carry_the_numbers_and_the_verdict() {
        let mut r = sample();
        let md = render(&r);
        assert!(md.contains("**passed**"), "{md}");
        assert!(md.contains("| ONNX Runtime | 1 | 3 | 0.1000 | 0.2000 |"), "{md}");
        assert!(md.contains("libtorch 90.00%, ONNX Runtime 90.00% (difference +0.00 pp)"), "{md}");
        assert!(md.contains("**2.50×**"), "{md}");
        assert!(md.contains("Search method: **darts**."), "{md}");
        assert!(
            md.contains("this cell scores 88.50 %, rank 41 of 15625 cells; the best cell scores 91.10 %"),
            "{md}"
        );
        assert!(md.contains("predicted 0.1800 ms at batch 1, -10.0% off the measured p50 0.2000 ms"), "{md}");
        assert!(
            md.contains("copies per choice point [2, 1, 1]")
                && md.contains("20000 parameters (original 18000)"),
            "{md}"
        );
        r.parity.passed = false;
        r.parity.reason = Some("too far".into());
        let md = render(&r);
        assert!(md.contains("**FAILED**") && md.contains("**Parity failed:** too far"), "{md}");
        assert!(md.contains("| graph | optimized lowering, fp32 |"), "{md}");
        assert!(md.contains(r#"| export options | `{"ep":"cpu""#), "{md}");
        r.latency.gpu = Some("NVIDIA H200".into());
        r.precision = Some(crate::report::PrecisionCheck::judge(
            "fp16",
            &Accuracy { difference_pp: -1.0, ..r.accuracy.clone() },
            0.5,
        ));
        let md = render(&r);
        assert!(md.contains(", GPU NVIDIA H200."), "{md}");
        assert!(md.contains("| fp16 accuracy loss against libtorch in fp32 | **REFUSED**: +1.00 pp"), "{md}");
        assert!(md.contains("**Precision refused:** fp16 loses 1.00 pp"), "{md}");
    }
}
