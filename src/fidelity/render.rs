//! `fidelity.md`, `fidelity.json` and `fidelity.html` of a ranking study: per metric and supernet
//! epoch, τ-b (and ρ) at the operator and the architecture level and the top-k survival, as mean ±
//! std over the supernet seeds; the truth's ceiling; charts of τ against the epoch.
use std::fmt::Write;
use std::path::{Path, PathBuf};

use anyhow::Result;

use super::study::{Cell, Study, Summary};
use crate::fsutil::{write_atomic, write_json};
use crate::report::charts::{self, EpochSeries};
use crate::report::html::{escape, CSS};
use crate::sweep::render::{html_table, md_table, Table};

/// A readable name for a metric key (`angle_full_w0e1×3` → `angle (full, ABS), W0 after epoch 1, mean of 3 supernets`).
pub fn metric_label(key: &str) -> String {
    let (base, seeds) = match key.split_once('×') {
        Some((b, k)) => (b, Some(k)),
        None => (key, None),
    };
    let (base, w0) = match base.rsplit_once("_w0e") {
        Some((b, e)) if e.chars().all(|c| c.is_ascii_digit()) => (b, Some(e)),
        _ => (base, None),
    };
    let mut label = match base {
        "angle" => "angle (ops)".to_string(),
        "angle_full" => "angle (full, ABS)".to_string(),
        "angle_pwsnas" => "angle (pwsnas)".to_string(),
        other => other.to_string(),
    };
    if let Some(e) = w0 {
        label += &format!(", W0 after epoch {e}");
    }
    if let Some(k) = seeds {
        label += &format!(", mean of {k} supernets");
    }
    label
}

fn stat(s: &Option<Summary>, digits: usize) -> String {
    match s {
        None => "—".into(),
        Some(s) if s.n > 1 => format!("{:.*} ± {:.*}", digits, s.mean, digits, s.std),
        Some(s) => format!("{:.*}", digits, s.mean),
    }
}

fn cell<'a>(study: &'a Study, metric: &str, epoch: usize) -> Option<&'a Cell> {
    study.cells.iter().find(|c| c.metric == metric && c.epoch == epoch)
}

/// A table of one value per metric (rows) and epoch (columns).
fn table(study: &Study, value: impl Fn(&Cell) -> String) -> Table {
    let mut head = vec!["metric".to_string()];
    head.extend(study.epochs.iter().map(|e| format!("epoch {e}")));
    let rows = study
        .metrics
        .iter()
        .map(|m| {
            let mut row = vec![metric_label(m)];
            row.extend(study.epochs.iter().map(|&e| cell(study, m, e).map_or("—".into(), &value)));
            row
        })
        .collect();
    (head, rows)
}

fn op_table(study: &Study) -> Table {
    table(study, |c| format!("{} (ρ {})", stat(&c.op_tau, 3), stat(&c.op_rho, 2)))
}

fn arch_table(study: &Study) -> Table {
    table(study, |c| format!("{} (ρ {})", stat(&c.arch_tau, 3), stat(&c.arch_rho, 2)))
}

fn survival_table(study: &Study) -> Table {
    table(study, |c| format!("{} of {}", stat(&c.survivors, 1), study.best))
}

fn summary_lines(study: &Study) -> Vec<String> {
    let mut lines = vec![
        format!(
            "Space {}: {} children, {} operator candidates; truth {} (mean of {} file(s)): top-1 {:.2}% mean, {:.2}–{:.2}%.",
            study.space,
            study.children,
            study.candidates,
            study.truth.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
            study.truth.len(),
            study.truth_mean * 100.0,
            study.truth_min * 100.0,
            study.truth_max * 100.0
        ),
        format!(
            "Runs: {} at supernet epochs {:?}. Cells are mean ± std over the supernet seeds at that epoch (no ± for one seed).",
            study.runs.iter().filter(|r| r.supernet_seeds == 1).count(),
            study.epochs
        ),
    ];
    for c in &study.ceilings {
        lines.push(format!(
            "Ceiling (the truth against itself, {} vs {}): τ {} at the architecture level, {} at the operator level.",
            c.files[0].display(),
            c.files[1].display(),
            c.arch_tau.map_or("—".into(), |v| format!("{v:.3}")),
            c.op_tau.map_or("—".into(), |v| format!("{v:.3}"))
        ));
    }
    lines
}

const SURVIVAL_NOTE: &str = "Top-k survival: the metric's scores shrink the space as `pwsnas shrink` does \
    (the lowest candidates over all choice points dropped, never a choice point's last op); the cell counts \
    how many of the truth's best candidates survive.";

/// The Markdown study.
pub fn markdown(study: &Study) -> String {
    let mut s = String::from("# pwsnas fidelity study\n\n");
    for l in summary_lines(study) {
        let _ = writeln!(s, "{l}\n");
    }
    s.push_str("## Operator level: Kendall τ-b (Spearman ρ) against the truth\n\n");
    md_table(&mut s, op_table(study), 1..usize::MAX);
    s.push_str("\n## Architecture level: Kendall τ-b (Spearman ρ) against the truth\n\n");
    md_table(&mut s, arch_table(study), 1..usize::MAX);
    let _ = writeln!(
        s,
        "\n## Top-k survival: of the truth's {} best candidates, how many survive dropping {} of {}\n",
        study.best, study.drop, study.candidates
    );
    md_table(&mut s, survival_table(study), 1..usize::MAX);
    let _ = writeln!(s, "\n{SURVIVAL_NOTE}");
    s
}

fn series(study: &Study, value: impl Fn(&Cell) -> Option<f64>) -> Vec<EpochSeries> {
    study
        .metrics
        .iter()
        .filter(|m| !m.contains('×') || study.metrics.iter().filter(|x| x.contains('×')).count() <= 3)
        .map(|m| EpochSeries {
            label: metric_label(m),
            points: study
                .epochs
                .iter()
                .filter_map(|&e| Some((e as f64, value(cell(study, m, e)?)?)))
                .collect(),
        })
        .filter(|s| !s.points.is_empty())
        .collect()
}

fn figure(s: &mut String, chart: Result<String>, caption: &str) {
    match chart {
        Ok(svg) => {
            let _ = writeln!(s, "<figure>{svg}<figcaption>{}</figcaption></figure>", escape(caption));
        }
        Err(e) => {
            let _ = writeln!(s, "<p class=\"missing\">No chart: {}</p>", escape(&format!("{e:#}")));
        }
    }
}

/// The self-contained HTML study.
pub fn html(study: &Study) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>pwsnas fidelity study</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n\
         <header>\n<h1>pwsnas fidelity study</h1>\n"
    );
    for l in summary_lines(study) {
        let _ = writeln!(s, "<p class=\"sub\">{}</p>", escape(&l));
    }
    s.push_str("</header>\n<section>\n<h2>Operator level</h2>\n");
    figure(
        &mut s,
        charts::by_epoch(
            &series(study, |c| c.op_tau.as_ref().map(|v| v.mean)),
            "supernet epoch",
            "operator-level τ-b",
        ),
        "Kendall τ-b of the candidates' scores against their truth (mean over supernet seeds).",
    );
    html_table(&mut s, op_table(study), 1..usize::MAX);
    s.push_str("</section>\n<section>\n<h2>Architecture level</h2>\n");
    figure(
        &mut s,
        charts::by_epoch(
            &series(study, |c| c.arch_tau.as_ref().map(|v| v.mean)),
            "supernet epoch",
            "architecture-level τ-b",
        ),
        "Kendall τ-b of the children's scores against their stand-alone top-1 (mean over supernet seeds).",
    );
    html_table(&mut s, arch_table(study), 1..usize::MAX);
    let _ = writeln!(
        s,
        "</section>\n<section>\n<h2>Top-k survival ({} best, {} of {} dropped)</h2>",
        study.best, study.drop, study.candidates
    );
    html_table(&mut s, survival_table(study), 1..usize::MAX);
    let _ = writeln!(s, "<p>{}</p>\n</section>\n</main>\n</body>\n</html>", escape(SURVIVAL_NOTE));
    s
}

/// Writes `fidelity.md`, `fidelity.json` and `fidelity.html` into `dir`; returns their paths.
pub fn write_all(dir: &Path, study: &Study) -> Result<[PathBuf; 3]> {
    let paths = ["fidelity.md", "fidelity.json", "fidelity.html"].map(|f| dir.join(f));
    write_atomic(&paths[0], markdown(study).as_bytes())?;
    write_json(&paths[1], study)?;
    write_atomic(&paths[2], html(study).as_bytes())?;
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_labels_name_the_variant() {
        assert_eq!(metric_label("angle"), "angle (ops)");
        assert_eq!(
            metric_label("angle_full_w0e1×3"),
            "angle (full, ABS), W0 after epoch 1, mean of 3 supernets"
        );
        assert_eq!(metric_label("accuracy×2"), "accuracy, mean of 2 supernets");
    }
}
