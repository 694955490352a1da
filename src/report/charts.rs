//! The report's charts as SVG strings (plotters' SVG backend), for inlining into `report.html`: the
//! shrinking trajectory (space size per round, candidate scores per round), the search's accuracy
//! against FLOPs with the winner highlighted, and the per-run latency of ONNX Runtime and libtorch;
//! for `compare.html`, the accuracy of runs against their latency with the Pareto front; and, for
//! `fidelity.html`, a value per supernet epoch and metric.
//!
//! Each function returns the `<svg>` element or an error saying why there is nothing to draw.
use anyhow::{bail, Result};
use plotters::chart::MeshStyle;
use plotters::coord::combinators::BindKeyPoints;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;

use crate::method::MethodReport;
use crate::search::SearchReport;
use crate::shrink::report::ShrinkReport;
use crate::timing::LatencyStats;

const SIZE: (u32, u32) = (760, 360);
const FONT: &str = "sans-serif";
const BLUE: RGBColor = RGBColor(31, 119, 180);
const ORANGE: RGBColor = RGBColor(255, 127, 14);
const RED: RGBColor = RGBColor(214, 39, 40);
const GREY: RGBColor = RGBColor(150, 150, 150);
const LIGHT: RGBColor = RGBColor(246, 247, 249);
const BOLD: RGBColor = RGBColor(226, 229, 234);

/// `[lo, hi]` widened by `frac` of its width on both sides (or by 1 when it is a single value).
fn padded(lo: f64, hi: f64, frac: f64) -> (f64, f64) {
    let w = hi - lo;
    if w.abs() < 1e-12 {
        (lo - 1.0, hi + 1.0)
    } else {
        (lo - w * frac, hi + w * frac)
    }
}

fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)))
}

/// Integer tick labels only (rounds are integers).
fn integer_label(x: &f64) -> String {
    if (x - x.round()).abs() < 1e-6 {
        format!("{}", x.round() as i64)
    } else {
        String::new()
    }
}

/// The 1-2-5 values of every decade within `[lo, hi]` (log-scale ticks).
fn ticks_125(lo: f64, hi: f64) -> Vec<f64> {
    let (first, last) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    (first..=last)
        .flat_map(|d| [1.0, 2.0, 5.0].map(|m| m * 10f64.powi(d)))
        .filter(|v| (lo..=hi).contains(v))
        .collect()
}

/// A positive tick value with two significant digits and no float noise (`0.7`, `0.15`, `20`).
fn significant(v: f64) -> String {
    if !(v.is_finite() && v > 0.0) {
        return format!("{v}");
    }
    let decimals = (1 - v.log10().floor() as i32).max(0) as usize;
    format!("{v:.decimals$}")
}

/// Runs `draw` on an SVG drawing area and returns the SVG text.
fn svg(draw: impl FnOnce(&DrawingArea<SVGBackend, plotters::coord::Shift>) -> Result<()>) -> Result<String> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root)?;
        root.present()?;
    }
    Ok(out)
}

/// A chart drawn into an SVG string, over the coordinates `X` × `Y`.
type Chart<'a, 's, X, Y> = ChartContext<'a, SVGBackend<'s>, Cartesian2d<X, Y>>;

/// A chart on `root` over `x` × `y`, with the margins and label areas every chart uses
/// (`y_labels`: the width of the y tick labels, wider for long ones).
fn frame<'a, 's, X, Y>(
    root: &'a DrawingArea<SVGBackend<'s>, plotters::coord::Shift>,
    y_labels: u32,
    x: X,
    y: Y,
) -> Result<Chart<'a, 's, X::CoordDescType, Y::CoordDescType>>
where
    X: AsRangedCoord,
    Y: AsRangedCoord,
{
    Ok(ChartBuilder::on(root)
        .margin(14)
        .x_label_area_size(42)
        .y_label_area_size(y_labels)
        .build_cartesian_2d(x, y)?)
}

/// The grid and axis descriptions of a chart, in the one style every chart uses; the caller adds a
/// tick formatter where it needs one and draws it.
fn mesh<'a, 'b, 's, X, Y>(
    chart: &'b mut Chart<'a, 's, X, Y>,
    x_desc: impl Into<String>,
    y_desc: impl Into<String>,
) -> MeshStyle<'a, 'b, X, Y, SVGBackend<'s>>
where
    X: Ranged + ValueFormatter<X::ValueType>,
    Y: Ranged + ValueFormatter<Y::ValueType>,
{
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(x_desc)
        .y_desc(y_desc)
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .light_line_style(LIGHT)
        .bold_line_style(BOLD);
    mesh
}

/// The legend of a chart, in the one style every chart uses.
fn legend<'a, 's: 'a, X, Y>(chart: &mut Chart<'a, 's, X, Y>, position: SeriesLabelPosition) -> Result<()>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    chart
        .configure_series_labels()
        .position(position)
        .label_font((FONT, 13))
        .background_style(WHITE.mix(0.85))
        .border_style(GREY)
        .draw()?;
    Ok(())
}

/// log10 of the space size before the first round and after every round.
pub fn space_size(shrink: &ShrinkReport) -> Result<String> {
    let Some(first) = shrink.rounds.first() else {
        bail!("no shrinking rounds were recorded (metric {:?})", shrink.metric);
    };
    let mut points = vec![(0.0, first.log10_space_size)];
    points.extend(shrink.rounds.iter().enumerate().map(|(i, r)| ((i + 1) as f64, r.log10_space_size_after)));
    let (y0, y1) = bounds(points.iter().map(|p| p.1));
    let (y0, y1) = padded(y0.min(0.0), y1, 0.08);
    let n = points.len() as f64;
    svg(|root| {
        let mut chart = frame(root, 56, -0.3..n - 0.7, y0..y1)?;
        mesh(&mut chart, "after round (0 = before shrinking)", "log10 space size")
            .x_label_formatter(&integer_label)
            .draw()?;
        chart.draw_series(LineSeries::new(points.clone(), BLUE.stroke_width(2)))?;
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, BLUE.filled())))?;
        chart.draw_series(points.iter().map(|&(x, y)| {
            Text::new(format!("{y:.2}"), (x + 0.04, y), (FONT, 13).into_font().color(&BLACK))
        }))?;
        Ok(())
    })
}

/// Every candidate's score per round, the dropped ones in red.
pub fn candidate_scores(shrink: &ShrinkReport) -> Result<String> {
    if shrink.rounds.iter().all(|r| r.candidates.is_empty()) {
        bail!("no candidate was scored (metric {:?})", shrink.metric);
    }
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    for (ri, round) in shrink.rounds.iter().enumerate() {
        let n = round.candidates.len().max(2) as f64;
        for (ci, c) in round.candidates.iter().enumerate() {
            // Candidates no admissible child contains have no score to plot.
            let Some(score) = c.score else { continue };
            // Spread a round's candidates across a band around its index so that they do not overlap.
            let x = ri as f64 + (ci as f64 / (n - 1.0) - 0.5) * 0.7;
            let is_dropped = round.dropped.iter().any(|d| d.choice_point == c.choice_point && d.op == c.op);
            if is_dropped { &mut dropped } else { &mut kept }.push((x, score));
        }
    }
    let (y0, y1) = bounds(kept.iter().chain(&dropped).map(|p| p.1));
    let (y0, y1) = padded(y0, y1, 0.1);
    let rounds = shrink.rounds.len() as f64;
    svg(|root| {
        let mut chart = frame(root, 64, -0.6..rounds - 0.4, y0..y1)?;
        mesh(
            &mut chart,
            "round (candidates spread within each round)",
            format!("score ({:?})", shrink.metric).to_lowercase(),
        )
        .x_label_formatter(&integer_label)
        .draw()?;
        chart
            .draw_series(kept.iter().map(|&p| Circle::new(p, 3, BLUE.mix(0.75).filled())))?
            .label("kept")
            .legend(|(x, y)| Circle::new((x, y), 4, BLUE.filled()));
        chart
            .draw_series(dropped.iter().map(|&p| Cross::new(p, 4, RED.stroke_width(2))))?
            .label("dropped")
            .legend(|(x, y)| Cross::new((x, y), 4, RED.stroke_width(2)));
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        Ok(())
    })
}

/// One line of [`by_epoch`]: a label and its `(epoch, value)` points.
pub struct EpochSeries {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// Lines of a value against an epoch (`x_desc` says which), one per series: the fidelity study's τ
/// per metric against the supernet epoch, a method's softmax(α) per op against its epoch.
pub fn by_epoch(series: &[EpochSeries], x_desc: &str, y_desc: &str) -> Result<String> {
    let all: Vec<(f64, f64)> = series.iter().flat_map(|s| s.points.iter().copied()).collect();
    if all.is_empty() {
        bail!("no value to draw");
    }
    let (x0, x1) = padded(bounds(all.iter().map(|p| p.0)).0, bounds(all.iter().map(|p| p.0)).1, 0.05);
    let (y0, y1) = bounds(all.iter().map(|p| p.1));
    let (y0, y1) = padded(y0.min(0.0), y1.max(0.0), 0.1);
    let colors =
        [BLUE, ORANGE, RED, RGBColor(44, 160, 44), RGBColor(148, 103, 189), RGBColor(140, 86, 75), GREY];
    svg(|root| {
        let mut chart = frame(root, 56, x0..x1, y0..y1)?;
        mesh(&mut chart, x_desc, y_desc).x_label_formatter(&integer_label).draw()?;
        for (i, s) in series.iter().enumerate() {
            let color = colors[i % colors.len()];
            chart
                .draw_series(LineSeries::new(s.points.clone(), color.stroke_width(2)))?
                .label(s.label.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
            chart.draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        }
        legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        Ok(())
    })
}

/// softmax(α) of every choice point over the method's epochs (counted across PDARTS's stages), as
/// `method.json` records them: per choice point its name and one line per op, which ends where a
/// stage drops the op.
pub fn alpha_by_choice_point(method: &MethodReport) -> Vec<(String, Vec<EpochSeries>)> {
    let mut out: Vec<(String, Vec<EpochSeries>)> = Vec::new();
    for (e, epoch) in method.history.iter().enumerate() {
        for (cp, ops) in &epoch.probs {
            let k = match out.iter().position(|(name, _)| name == cp) {
                Some(k) => k,
                None => {
                    out.push((cp.clone(), Vec::new()));
                    out.len() - 1
                }
            };
            for (op, &p) in ops {
                let series = &mut out[k].1;
                let i = match series.iter().position(|s| &s.label == op) {
                    Some(i) => i,
                    None => {
                        series.push(EpochSeries { label: op.clone(), points: Vec::new() });
                        series.len() - 1
                    }
                };
                series[i].points.push(((e + 1) as f64, p));
            }
        }
    }
    out
}

/// Supernet accuracy against FLOPs of every evaluated child; `winner` (an arch string) highlighted.
pub fn search_scatter(search: &SearchReport, winner: &str) -> Result<String> {
    if search.evaluated.is_empty() {
        bail!("the search evaluated no child");
    }
    let pts: Vec<(f64, f64, bool)> =
        search.evaluated.iter().map(|e| (e.flops / 1e6, e.accuracy * 100.0, e.arch == winner)).collect();
    let (x0, x1) = bounds(pts.iter().map(|p| p.0));
    let (y0, y1) = bounds(pts.iter().map(|p| p.1));
    let ((x0, x1), (y0, y1)) = (padded(x0, x1, 0.1), padded(y0, y1, 0.12));
    svg(|root| {
        let mut chart = frame(root, 56, x0..x1, y0..y1)?;
        mesh(&mut chart, "M multiply-adds", "supernet accuracy (%)").draw()?;
        chart
            .draw_series(
                pts.iter().filter(|p| !p.2).map(|p| Circle::new((p.0, p.1), 4, BLUE.mix(0.6).filled())),
            )?
            .label(format!("evaluated child ({})", pts.len()))
            .legend(|(x, y)| Circle::new((x, y), 4, BLUE.filled()));
        chart
            .draw_series(pts.iter().filter(|p| p.2).map(|p| {
                EmptyElement::at((p.0, p.1))
                    + Circle::new((0, 0), 8, RED.filled())
                    + Circle::new((0, 0), 11, RED.stroke_width(2))
            }))?
            .label("exported architecture")
            .legend(|(x, y)| Circle::new((x, y), 5, RED.filled()));
        legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        Ok(())
    })
}

/// Every timed run of ONNX Runtime and libtorch at the same batch size, in run order, with their
/// medians as dashed lines, on a logarithmic time axis (the runtimes can differ by 10× and the
/// slowest runs by 100×).
pub fn latency_runs(ort: &LatencyStats, libtorch: &LatencyStats) -> Result<String> {
    if ort.samples_ms.is_empty() || libtorch.samples_ms.is_empty() {
        bail!("no timed runs were recorded");
    }
    let n = ort.samples_ms.len().max(libtorch.samples_ms.len()) as f64;
    let (y0, y1) = bounds(ort.samples_ms.iter().chain(&libtorch.samples_ms).copied().filter(|v| *v > 0.0));
    if !(y0.is_finite() && y1.is_finite()) {
        bail!("no positive run time was recorded");
    }
    let (lo, hi) = (y0 * 0.8, y1 * 1.6);
    svg(|root| {
        let mut chart =
            frame(root, 64, 0.0..n + 1.0, (lo..hi).log_scale().with_key_points(ticks_125(lo, hi)))?;
        mesh(&mut chart, format!("timed run (batch {})", ort.batch), "latency (ms, log scale)")
            .y_label_formatter(&|v| significant(*v))
            .draw()?;
        for (name, stats, color) in [("ONNX Runtime", ort, BLUE), ("libtorch eager", libtorch, ORANGE)] {
            let points = stats.samples_ms.iter().enumerate().map(|(i, &v)| ((i + 1) as f64, v));
            chart
                .draw_series(points.map(|p| Circle::new(p, 3, color.mix(0.8).filled())))?
                .label(format!("{name}: p50 {:.3} ms", stats.p50_ms))
                .legend(move |(x, y)| Circle::new((x, y), 4, color.filled()));
            chart.draw_series(DashedLineSeries::new(
                [(0.0, stats.p50_ms), (n + 1.0, stats.p50_ms)],
                6,
                4,
                color.stroke_width(1),
            ))?;
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        Ok(())
    })
}

/// One run on the accuracy-latency chart.
pub struct RunPoint {
    pub label: String,
    /// Measured batch-1 p50 (ms).
    pub latency_ms: f64,
    /// Test accuracy (fraction).
    pub accuracy: f64,
    /// The latency table's prediction (ms).
    pub predicted_ms: Option<f64>,
    pub pareto: bool,
}

/// Accuracy (%) against batch-1 latency of each run, labelled; Pareto-optimal runs in red joined by
/// the front, the others in blue; each prediction a hollow grey circle joined to its measurement.
pub fn accuracy_latency(runs: &[RunPoint]) -> Result<String> {
    if runs.is_empty() {
        bail!("no runs to draw");
    }
    let xs = runs.iter().flat_map(|r| std::iter::once(r.latency_ms).chain(r.predicted_ms));
    let (x0, x1) = bounds(xs);
    let (y0, y1) = bounds(runs.iter().map(|r| r.accuracy * 100.0));
    let (x0, x1) = padded(x0.min(0.0), x1, 0.12);
    // A band above the highest run for the legend, so that it never hides a run.
    let (y0, y1) = padded(y0, y1, 0.12);
    let y1 = y1 + (y1 - y0) * 0.45;
    let mut front: Vec<(f64, f64)> =
        runs.iter().filter(|r| r.pareto).map(|r| (r.latency_ms, r.accuracy * 100.0)).collect();
    front.sort_by(|a, b| a.0.total_cmp(&b.0));
    svg(|root| {
        let mut chart = frame(root, 56, x0.max(0.0)..x1, y0..y1)?;
        mesh(&mut chart, "ONNX Runtime latency, batch 1, p50 (ms)", "test accuracy, ONNX Runtime (%)")
            .draw()?;
        let predicted: Vec<(f64, f64, f64)> = runs
            .iter()
            .filter_map(|r| r.predicted_ms.map(|p| (p, r.latency_ms, r.accuracy * 100.0)))
            .collect();
        for &(p, m, y) in &predicted {
            chart.draw_series(LineSeries::new([(p, y), (m, y)], GREY.stroke_width(1)))?;
        }
        if !predicted.is_empty() {
            chart
                .draw_series(predicted.iter().map(|&(p, _, y)| Circle::new((p, y), 5, GREY.stroke_width(2))))?
                .label("predicted latency")
                .legend(|(x, y)| Circle::new((x, y), 5, GREY.stroke_width(2)));
        }
        chart.draw_series(DashedLineSeries::new(front.clone(), 6, 4, RED.stroke_width(2)))?;
        chart
            .draw_series(
                runs.iter()
                    .filter(|r| !r.pareto)
                    .map(|r| Circle::new((r.latency_ms, r.accuracy * 100.0), 6, BLUE.filled())),
            )?
            .label("run")
            .legend(|(x, y)| Circle::new((x, y), 5, BLUE.filled()));
        chart
            .draw_series(front.iter().map(|&p| Circle::new(p, 7, RED.filled())))?
            .label("Pareto-optimal run")
            .legend(|(x, y)| Circle::new((x, y), 5, RED.filled()));
        chart.draw_series(runs.iter().map(|r| {
            EmptyElement::at((r.latency_ms, r.accuracy * 100.0))
                + Text::new(r.label.clone(), (8, 6), (FONT, 13).into_font().color(&BLACK))
        }))?;
        legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_latency_chart_labels_runs_and_predictions() {
        let run = |label: &str, latency_ms, accuracy, pareto| RunPoint {
            label: label.into(),
            latency_ms,
            accuracy,
            predicted_ms: Some(latency_ms * 1.1),
            pareto,
        };
        let s = accuracy_latency(&[run("runs/a", 0.1, 0.8, true), run("runs/b", 0.2, 0.7, false)]).unwrap();
        assert!(s.starts_with("<svg") && s.contains("runs/a") && s.contains("runs/b"));
        assert!(s.contains("Pareto-optimal run") && s.contains("predicted latency"));
        assert!(accuracy_latency(&[]).is_err());
    }

    #[test]
    fn latency_chart_is_an_svg_with_both_series() {
        let a = LatencyStats::from_samples(1, 0, vec![0.1, 0.12, 0.11]);
        let b = LatencyStats::from_samples(1, 0, vec![0.3, 0.35, 0.31]);
        let s = latency_runs(&a, &b).unwrap();
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"), "{}", &s[..60]);
        assert!(s.contains("ONNX Runtime: p50 0.110 ms") && s.contains("libtorch eager: p50 0.310 ms"));
        assert_eq!(s.matches("<circle").count(), 6 + 2, "six runs and two legend markers");
    }

    #[test]
    fn tick_labels_have_two_significant_digits() {
        let labels: Vec<String> = [0.7000000000000001, 0.15, 2.0, 20.0, 0.012].map(significant).to_vec();
        assert_eq!(labels, ["0.70", "0.15", "2.0", "20", "0.012"]);
    }

    #[test]
    fn log_ticks_are_one_two_five() {
        assert_eq!(ticks_125(0.07, 3.0), [0.1, 0.2, 0.5, 1.0, 2.0]);
    }

    #[test]
    fn padding_handles_single_values() {
        assert_eq!(padded(2.0, 2.0, 0.1), (1.0, 3.0));
        assert_eq!(padded(0.0, 10.0, 0.1), (-1.0, 11.0));
    }
}
