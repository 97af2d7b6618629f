//! Plots `echo-bench --json` run records as one SVG picture.
//!
//! The picture has two panels:
//!
//! * left, two thirds of the width: the latency percentile spectrum of every
//!   run that has one, in the style of the HdrHistogram plotter. The x axis is
//!   the percentile `p` on a log scale of `1 / (1 - p)`, so 90%, 99%, 99.9%...
//!   are evenly spaced; the y axis is the latency on a log scale. The final
//!   100% point (the maximum), whose `1 / (1 - p)` is infinite, is drawn 1.5
//!   times further right than the last finite point, so the maximum stays
//!   visible. With [`PlotOptions::uncorrected`], runs at a fixed rate also get
//!   a lighter curve of their latency without coordinated-omission
//!   correction.
//! * right, one third: one horizontal throughput bar per run that has a
//!   throughput, in the colour of its curve, labelled with the run's label and
//!   its value.
//!
//! A run record is one JSON object as `echo-bench --json` writes it; the
//! fields used are `label` (or `scenario` and `addr`), `throughput_per_sec`,
//! `throughput_unit`, `latency_us.spectrum` and
//! `latency_uncorrected_us.spectrum`. A spectrum is an array of
//! `[percentile, value_us]` pairs, percentiles ascending in `0..=100`.
//!
//! # Example
//!
//! ```no_run
//! use credit_bench::loadgen::plot::{plot_files, PlotOptions};
//! let opts = PlotOptions {
//!     title: Some("ours vs tokio".to_string()),
//!     ..PlotOptions::default()
//! };
//! let inputs = vec!["runs.jsonl".into()];
//! let summary = plot_files(&inputs, "runs.svg".as_ref(), &opts).unwrap();
//! println!("{} runs, {} curves", summary.runs, summary.curves);
//! ```

use std::collections::HashSet;
use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};

use plotters::chart::MeshStyle;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde_json::Value;

/// What to draw and how big.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlotOptions {
    /// Title drawn at the top, if any.
    pub title: Option<String>,
    /// Also draw the uncorrected latency (`latency_uncorrected_us`) of runs
    /// that have it, as a lighter curve in the run's colour.
    pub uncorrected: bool,
    /// Width of the picture in pixels.
    pub width: u32,
    /// Height of the picture in pixels.
    pub height: u32,
}

impl Default for PlotOptions {
    fn default() -> PlotOptions {
        PlotOptions {
            title: None,
            uncorrected: false,
            width: 1200,
            height: 600,
        }
    }
}

/// What [`plot_files`] drew.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlotSummary {
    /// Run records read from all inputs.
    pub runs: usize,
    /// Latency curves drawn (uncorrected ones included).
    pub curves: usize,
}

/// Smallest picture [`render_svg`] accepts, in pixels.
const MIN_SIZE: (u32, u32) = (300, 200);

/// Colours of the runs, in record order; reused from the start past the end.
/// None of them is an axis, grid or text colour.
const PALETTE: [RGBColor; 8] = [
    RGBColor(0x00, 0x72, 0xB2), // blue
    RGBColor(0xD5, 0x5E, 0x00), // vermillion
    RGBColor(0x00, 0x9E, 0x73), // green
    RGBColor(0xCC, 0x79, 0xA7), // purple
    RGBColor(0xE6, 0x9F, 0x00), // orange
    RGBColor(0x56, 0xB4, 0xE9), // sky blue
    RGBColor(0x8C, 0x56, 0x4B), // brown
    RGBColor(0x33, 0x22, 0x88), // indigo
];

/// Axis lines and tick marks.
const AXIS_COLOUR: RGBColor = RGBColor(0x40, 0x40, 0x40);
/// Text.
const TEXT_COLOUR: RGBColor = RGBColor(0x20, 0x20, 0x20);
/// Grid lines at labelled ticks.
const GRID_BOLD: RGBColor = RGBColor(0xC8, 0xC8, 0xC8);
/// Grid lines between labelled ticks.
const GRID_LIGHT: RGBColor = RGBColor(0xEC, 0xEC, 0xEC);
/// Opacity of uncorrected curves.
const UNCORRECTED_ALPHA: f64 = 0.4;
/// Where the 100% point goes, relative to the last finite `1 / (1 - p)`.
const MAX_POINT_STRETCH: f64 = 1.5;
const FONT: &str = "sans-serif";

/// Reads run records from a file: JSON objects and arrays of objects, one
/// after another, so JSON Lines (blank lines skipped) as well as one object
/// or array spread over any number of lines. Errors name the file and the
/// line (for a value that is not a record, the line it ends on).
pub fn read_records(path: &Path) -> Result<Vec<Value>, String> {
    let name = path.display();
    let text = fs::read_to_string(path).map_err(|e| format!("{name}: {e}"))?;
    let mut values = serde_json::Deserializer::from_str(&text).into_iter::<Value>();
    let mut records = Vec::new();
    while let Some(value) = values.next() {
        // serde_json's message ends with "at line L column C".
        let value = value.map_err(|e| format!("{name}: {e}"))?;
        let line = || text[..values.byte_offset()].lines().count();
        match value {
            Value::Object(_) => records.push(value),
            Value::Array(items) => match items.iter().position(|v| !v.is_object()) {
                None => records.extend(items),
                Some(i) => {
                    return Err(format!(
                        "{name}: line {}: element {i} of the array is {}, not a JSON object",
                        line(),
                        kind(&items[i])
                    ))
                }
            },
            other => {
                return Err(format!(
                    "{name}: line {}: expected a JSON object, found {}",
                    line(),
                    kind(&other)
                ))
            }
        }
    }
    Ok(records)
}

/// Renders the records as an SVG document (see the module documentation).
///
/// Fails when there are no records, when no record has a latency spectrum or
/// a throughput, when a record is malformed (the message names the run), or
/// when the size is below 300 x 200.
pub fn render_svg(records: &[Value], opts: &PlotOptions) -> Result<String, String> {
    render(records, opts).map(|(svg, _)| svg)
}

/// Reads every input with [`read_records`], renders them together with
/// [`render_svg`] and writes the SVG to `out`.
pub fn plot_files(
    inputs: &[PathBuf],
    out: &Path,
    opts: &PlotOptions,
) -> Result<PlotSummary, String> {
    let mut records = Vec::new();
    for path in inputs {
        records.extend(read_records(path)?);
    }
    if records.is_empty() {
        let names: Vec<String> = inputs.iter().map(|p| p.display().to_string()).collect();
        return Err(format!("no run records in {}", names.join(", ")));
    }
    let (svg, curves) = render(&records, opts)?;
    fs::write(out, svg).map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(PlotSummary {
        runs: records.len(),
        curves,
    })
}

/// One record, checked and reduced to what the plot needs.
#[derive(Debug)]
struct Run {
    label: String,
    colour: RGBColor,
    /// `[percentile, value_us]` pairs; `None` when absent or empty.
    spectrum: Option<Vec<(f64, f64)>>,
    uncorrected: Option<Vec<(f64, f64)>>,
    /// Value and unit.
    throughput: Option<(f64, String)>,
}

/// One latency curve in plot coordinates: `(1 / (1 - p), value_us)`.
#[derive(Debug)]
struct Curve {
    label: String,
    colour: RGBAColor,
    points: Vec<(f64, f64)>,
}

/// Renders and also returns the number of curves drawn.
fn render(records: &[Value], opts: &PlotOptions) -> Result<(String, usize), String> {
    if records.is_empty() {
        return Err("no run records to plot".to_string());
    }
    if opts.width < MIN_SIZE.0 || opts.height < MIN_SIZE.1 {
        return Err(format!(
            "plot size {}x{} is too small (at least {}x{})",
            opts.width, opts.height, MIN_SIZE.0, MIN_SIZE.1
        ));
    }
    let runs = parse_runs(records)?;
    let mut curves = Vec::new();
    for run in &runs {
        if let Some(s) = &run.spectrum {
            curves.push(Curve {
                label: run.label.clone(),
                colour: run.colour.to_rgba(),
                points: spectrum_points(s),
            });
        }
        if opts.uncorrected {
            if let Some(s) = &run.uncorrected {
                curves.push(Curve {
                    label: format!("{} (uncorrected)", run.label),
                    colour: run.colour.mix(UNCORRECTED_ALPHA),
                    points: spectrum_points(s),
                });
            }
        }
    }
    let bars = runs.iter().filter(|r| r.throughput.is_some()).count();
    if curves.is_empty() && bars == 0 {
        return Err(format!(
            "none of the {} run records has a latency spectrum or a throughput to plot",
            runs.len()
        ));
    }

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (opts.width, opts.height)).into_drawing_area();
        draw_all(&root, &runs, &curves, opts).map_err(|e| format!("drawing the plot: {e}"))?;
        root.present()
            .map_err(|e| format!("drawing the plot: {e}"))?;
    }
    Ok((svg, curves.len()))
}

type DrawResult = Result<(), DrawingAreaErrorKind<std::io::Error>>;

fn draw_all(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    runs: &[Run],
    curves: &[Curve],
    opts: &PlotOptions,
) -> DrawResult {
    root.fill(&WHITE)?;
    let body = match &opts.title {
        Some(t) if !t.is_empty() => root.titled(t, font(26))?,
        _ => root.margin(8, 0, 0, 0),
    };
    let (w, _) = body.dim_in_pixel();
    let (left, right) = body.split_horizontally((w * 2 / 3) as i32);
    if curves.is_empty() {
        draw_placeholder(&left, "no latency spectrum in these runs")?;
    } else {
        draw_spectrum(&left, curves)?;
    }
    if runs.iter().any(|r| r.throughput.is_some()) {
        draw_bars(&right, runs)?;
    } else {
        draw_placeholder(&right, "no throughput in these runs")?;
    }
    Ok(())
}

/// Text in the picture's font and colour.
fn font(size: u32) -> TextStyle<'static> {
    (FONT, size).into_font().color(&TEXT_COLOUR)
}

/// The mesh of `chart` with the picture's axis, grid and label styles.
fn mesh<'a, 'b, X, Y, XT, YT, DB>(
    chart: &'b mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
) -> MeshStyle<'a, 'b, X, Y, DB>
where
    X: Ranged<ValueType = XT> + ValueFormatter<XT>,
    Y: Ranged<ValueType = YT> + ValueFormatter<YT>,
    DB: DrawingBackend,
{
    let mut mesh = chart.configure_mesh();
    mesh.axis_style(AXIS_COLOUR)
        .bold_line_style(GRID_BOLD)
        .light_line_style(GRID_LIGHT)
        .label_style(font(15))
        .axis_desc_style(font(16));
    mesh
}

fn draw_placeholder(area: &DrawingArea<SVGBackend<'_>, Shift>, text: &str) -> DrawResult {
    let (w, h) = area.dim_in_pixel();
    let style = font(16).pos(Pos::new(HPos::Center, VPos::Center));
    area.draw(&Text::new(text, (w as i32 / 2, h as i32 / 2), style))
}

fn draw_spectrum(area: &DrawingArea<SVGBackend<'_>, Shift>, curves: &[Curve]) -> DrawResult {
    let all = curves.iter().flat_map(|c| c.points.iter());
    let x_max = all.clone().map(|p| p.0).fold(1.0, f64::max);
    let x_range = 1.0..(x_max * 1.2).max(2.0);
    let y_range = latency_range(all.map(|p| p.1));
    // Margins (all sides, then the right one), heights of the x labels and
    // the caption (about 30 px at 20 px), and width of the y labels.
    const MARGIN: u32 = 10;
    const MARGIN_RIGHT: u32 = 24;
    const X_LABELS: u32 = 48;
    const CAPTION: u32 = 30;
    const Y_LABELS: u32 = 78;
    let (area_w, area_h) = area.dim_in_pixel();
    // The plot itself: the area less caption, margins and label areas.
    let plot_px = (
        area_w
            .saturating_sub(MARGIN + MARGIN_RIGHT + Y_LABELS)
            .max(1),
        area_h
            .saturating_sub(2 * MARGIN + CAPTION + X_LABELS)
            .max(1),
    );
    let (x_bold, x_light) = percentile_ticks(&x_range);
    let (y_bold, y_light) = log_ticks(&y_range, plot_px.1);
    let y_floor = y_range.start;
    let legend_at = legend_position(curves, &x_range, &y_range, plot_px);

    let mut chart = ChartBuilder::on(area)
        .caption("latency by percentile", font(20))
        .margin(MARGIN)
        .margin_right(MARGIN_RIGHT)
        .x_label_area_size(X_LABELS)
        .y_label_area_size(Y_LABELS)
        .build_cartesian_2d(
            x_range
                .log_scale()
                .with_key_points(x_bold)
                .with_light_points(x_light),
            y_range
                .log_scale()
                .with_key_points(y_bold)
                .with_light_points(y_light),
        )?;
    mesh(&mut chart)
        .x_desc("percentile")
        .y_desc("latency")
        .x_label_formatter(&|x| percentile_label(*x))
        .y_label_formatter(&|y| latency_label(*y))
        .draw()?;

    for curve in curves {
        let colour = curve.colour;
        // One LineSeries is one <polyline> in the SVG, stroked in the curve's
        // colour. The legend swatch is a filled rectangle, not a line.
        chart
            .draw_series(LineSeries::new(
                curve.points.iter().map(|&(x, y)| (x, y.max(y_floor))),
                colour.stroke_width(2),
            ))?
            .label(curve.label.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 20, y + 5)], colour.filled()));
    }
    chart
        .configure_series_labels()
        .position(legend_at)
        .margin(10)
        .legend_area_size(26)
        .background_style(WHITE.mix(0.85))
        .border_style(GRID_BOLD)
        .label_font(font(15))
        .draw()
}

fn draw_bars(area: &DrawingArea<SVGBackend<'_>, Shift>, runs: &[Run]) -> DrawResult {
    let bars: Vec<(&Run, f64, &str)> = runs
        .iter()
        .filter_map(|r| r.throughput.as_ref().map(|(v, u)| (r, *v, u.as_str())))
        .collect();
    let units: HashSet<&str> = bars.iter().map(|b| b.2).collect();
    let x_desc = match units.iter().next() {
        Some(u) if units.len() == 1 => format!("throughput ({u})"),
        _ => "throughput (units differ, see labels)".to_string(),
    };
    let max = bars.iter().map(|b| b.1).fold(0.0, f64::max);
    let x_max = if max > 0.0 { max * 1.08 } else { 1.0 };
    // Rows from the top; at least 6 so a few bars are not drawn too thick.
    let rows = bars.len().max(6);

    let mut chart = ChartBuilder::on(area)
        .caption("throughput", font(20))
        .margin(10)
        .margin_right(30)
        .x_label_area_size(48)
        .y_label_area_size(8)
        .build_cartesian_2d(0.0..x_max, 0.0..rows as f64)?;
    mesh(&mut chart)
        .disable_y_mesh()
        .y_labels(0)
        .x_labels(4)
        .x_desc(x_desc)
        .x_label_formatter(&|v| si(*v))
        .draw()?;

    let text_style = font(15);
    for (i, (run, value, unit)) in bars.iter().enumerate() {
        let top = (rows - i) as f64;
        // A tiny bar still gets a sliver, so its colour shows.
        let end = value.max(x_max * 0.004);
        chart.draw_series(std::iter::once(Rectangle::new(
            [(0.0, top - 0.85), (end, top - 0.45)],
            run.colour.filled(),
        )))?;
        // Anchored at the bar's start, 4 px right of the axis line.
        let label = EmptyElement::at((0.0, top - 0.1))
            + Text::new(
                format!("{}: {} {}", run.label, si(*value), unit),
                (4, 0),
                text_style.clone(),
            );
        chart.draw_series(std::iter::once(label))?;
    }
    Ok(())
}

/// Checks every record and gives each run its label and colour.
fn parse_runs(records: &[Value]) -> Result<Vec<Run>, String> {
    let mut used = HashSet::new();
    let mut runs = Vec::with_capacity(records.len());
    for (i, rec) in records.iter().enumerate() {
        if !rec.is_object() {
            return Err(format!(
                "run record {} is {}, not a JSON object",
                i + 1,
                kind(rec)
            ));
        }
        let base = base_label(rec, i);
        let mut label = base.clone();
        let mut n = 2;
        while !used.insert(label.clone()) {
            label = format!("{base} ({n})");
            n += 1;
        }
        let ctx = |what: &str| format!("run {:?} (record {}): {what}", label, i + 1);
        let spectrum = parse_spectrum(rec, "latency_us").map_err(|e| ctx(&e))?;
        let uncorrected = parse_spectrum(rec, "latency_uncorrected_us").map_err(|e| ctx(&e))?;
        let throughput = match rec.get("throughput_per_sec") {
            None | Some(Value::Null) => None,
            Some(v) => {
                let t = v
                    .as_f64()
                    .filter(|t| *t >= 0.0)
                    .ok_or_else(|| ctx(&format!("throughput_per_sec is {v}, not a number >= 0")))?;
                let unit = rec.get("throughput_unit").and_then(Value::as_str);
                let unit = unit.filter(|u| !u.is_empty()).unwrap_or("/s");
                Some((t, unit.to_string()))
            }
        };
        runs.push(Run {
            colour: PALETTE[i % PALETTE.len()],
            label,
            spectrum,
            uncorrected,
            throughput,
        });
    }
    Ok(runs)
}

/// `label`, else `"<scenario> <addr>"`, else `"run <n>"`.
fn base_label(rec: &Value, index: usize) -> String {
    let field = |k: &str| {
        rec.get(k)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    if let Some(l) = field("label") {
        return l.to_string();
    }
    match (field("scenario"), field("addr")) {
        (Some(s), Some(a)) => format!("{s} {a}"),
        (Some(s), None) => s.to_string(),
        (None, Some(a)) => a.to_string(),
        (None, None) => format!("run {}", index + 1),
    }
}

/// The `spectrum` of the latency object under `key`, checked. `None` when the
/// object, or its spectrum, is absent, null or empty.
fn parse_spectrum(rec: &Value, key: &str) -> Result<Option<Vec<(f64, f64)>>, String> {
    let lat = match rec.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(o)) => o,
        Some(other) => return Err(format!("{key} is {}, not an object", kind(other))),
    };
    let items = match lat.get("spectrum") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(a)) => a,
        Some(other) => return Err(format!("{key}.spectrum is {}, not an array", kind(other))),
    };
    let mut points = Vec::with_capacity(items.len());
    let mut last_p = f64::NEG_INFINITY;
    for (i, item) in items.iter().enumerate() {
        let pair = item
            .as_array()
            .filter(|a| a.len() == 2)
            .and_then(|a| Some((a[0].as_f64()?, a[1].as_f64()?)));
        let Some((p, v)) = pair else {
            return Err(format!(
                "{key}.spectrum[{i}] is {item}, not a [percentile, value_us] pair"
            ));
        };
        if !(0.0..=100.0).contains(&p) || p < last_p {
            return Err(format!(
                "{key}.spectrum[{i}]: percentile {p} is outside 0..=100 or not ascending"
            ));
        }
        if v < 0.0 {
            return Err(format!("{key}.spectrum[{i}]: latency {v} is negative"));
        }
        last_p = p;
        points.push((p, v));
    }
    Ok((!points.is_empty()).then_some(points))
}

/// Maps `[percentile, value]` pairs to `(1 / (1 - p), value)`. Points at 100%
/// go [`MAX_POINT_STRETCH`] times past the last finite point.
fn spectrum_points(spectrum: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let x_of = |p: f64| 1.0 / (1.0 - p / 100.0);
    let last_finite = spectrum
        .iter()
        .filter(|(p, _)| *p < 100.0)
        .map(|&(p, _)| x_of(p))
        .fold(1.0, f64::max);
    spectrum
        .iter()
        .map(|&(p, v)| {
            let x = if p < 100.0 {
                x_of(p)
            } else {
                last_finite * MAX_POINT_STRETCH
            };
            (x, v)
        })
        .collect()
}

/// A log range covering the positive values, widened to 1-2-5 steps.
fn latency_range(values: impl Iterator<Item = f64>) -> Range<f64> {
    let (lo, hi) = values
        .filter(|v| *v > 0.0)
        .fold((f64::INFINITY, 0.0_f64), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if hi <= 0.0 {
        return 0.5..2.0;
    }
    nice_floor(lo / 1.1)..nice_ceil(hi * 1.1)
}

/// Largest `m * 10^k <= v` with `m` in 1, 2, 5.
fn nice_floor(v: f64) -> f64 {
    let base = 10f64.powi(v.log10().floor() as i32);
    [5.0, 2.0, 1.0]
        .into_iter()
        .map(|m| m * base)
        .find(|s| *s <= v * (1.0 + 1e-9))
        .unwrap_or(base)
}

/// Smallest `m * 10^k >= v` with `m` in 1, 2, 5.
fn nice_ceil(v: f64) -> f64 {
    let base = 10f64.powi(v.log10().floor() as i32);
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * base)
        .find(|s| *s >= v * (1.0 - 1e-9))
        .unwrap_or(10.0 * base)
}

/// Labelled and grid-only ticks of a log axis `pixels` long: 1-2-5 steps
/// labelled when a decade has room for them, else decades only.
fn log_ticks(range: &Range<f64>, pixels: u32) -> (Vec<f64>, Vec<f64>) {
    let decades = (range.end / range.start).log10();
    let bold: &[f64] = if f64::from(pixels) / decades >= 110.0 {
        &[1.0, 2.0, 5.0]
    } else {
        &[1.0]
    };
    let light = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
    decade_ticks(range, bold, &light)
}

/// Labelled and grid-only ticks at the mantissas given times each power of
/// ten, within the range (give or take rounding).
fn decade_ticks(
    range: &Range<f64>,
    bold_mantissas: &[f64],
    light_mantissas: &[f64],
) -> (Vec<f64>, Vec<f64>) {
    let d0 = range.start.log10().floor() as i32;
    let d1 = range.end.log10().ceil() as i32;
    let inside = |v: &f64| *v >= range.start * (1.0 - 1e-9) && *v <= range.end * (1.0 + 1e-9);
    let mut bold = Vec::new();
    let mut light = Vec::new();
    for d in d0..=d1 {
        let base = 10f64.powi(d);
        bold.extend(bold_mantissas.iter().map(|m| m * base).filter(inside));
        light.extend(light_mantissas.iter().map(|m| m * base).filter(inside));
    }
    (bold, light)
}

/// The corner of the plot where the legend hides the least of the curves:
/// the corner whose box (estimated from the labels) covers the fewest points
/// sampled along the curves, preferring upper left, then lower right.
fn legend_position(
    curves: &[Curve],
    x: &Range<f64>,
    y: &Range<f64>,
    plot_px: (u32, u32),
) -> SeriesLabelPosition {
    let (pw, ph) = (f64::from(plot_px.0), f64::from(plot_px.1));
    let chars = curves
        .iter()
        .map(|c| c.label.chars().count())
        .max()
        .unwrap_or(0);
    // Margins, swatch, text (about 7.5 px a character at 15 px), padding.
    let w = (20.0 + 26.0 + 7.5 * chars as f64 + 10.0) / pw;
    let h = (20.0 + 19.0 * curves.len() as f64 + 10.0) / ph;
    let (dx, dy) = (5.0 / pw, 5.0 / ph);
    // Boxes as (left, right, bottom, top), in fractions of the plot, y up.
    let candidates = [
        (
            SeriesLabelPosition::UpperLeft,
            (dx, dx + w, 1.0 - dy - h, 1.0 - dy),
        ),
        (
            SeriesLabelPosition::LowerRight,
            (1.0 - dx - w, 1.0 - dx, dy, dy + h),
        ),
        (
            SeriesLabelPosition::UpperRight,
            (1.0 - dx - w, 1.0 - dx, 1.0 - dy - h, 1.0 - dy),
        ),
        (SeriesLabelPosition::LowerLeft, (dx, dx + w, dy, dy + h)),
    ];
    let norm = |v: f64, r: &Range<f64>| (v.max(r.start) / r.start).ln() / (r.end / r.start).ln();
    let mut samples = Vec::new();
    for c in curves {
        let pts: Vec<(f64, f64)> = c
            .points
            .iter()
            .map(|&(px, py)| (norm(px, x), norm(py, y)))
            .collect();
        for seg in pts.windows(2) {
            let ((x0, y0), (x1, y1)) = (seg[0], seg[1]);
            samples.extend((0..16).map(|k| {
                let t = f64::from(k) / 16.0;
                (x0 + t * (x1 - x0), y0 + t * (y1 - y0))
            }));
        }
        samples.extend(pts.last().copied());
    }
    let covered = |&(l, r, b, t): &(f64, f64, f64, f64)| {
        samples
            .iter()
            .filter(|&&(sx, sy)| sx >= l && sx <= r && sy >= b && sy <= t)
            .count()
    };
    // The first of the least covered, so the order above is the preference.
    candidates
        .into_iter()
        .min_by_key(|(_, bounds)| covered(bounds))
        .map_or(SeriesLabelPosition::UpperLeft, |(pos, _)| pos)
}

/// Ticks of the percentile axis (values of `1 / (1 - p)`): labelled at 0%,
/// 90%, 99%, 99.9%... up to the end of the range, plus 50% and 80% steps
/// while the range is under two decades.
fn percentile_ticks(range: &Range<f64>) -> (Vec<f64>, Vec<f64>) {
    let bold: &[f64] = if range.end < 100.0 {
        &[1.0, 2.0, 5.0]
    } else {
        &[1.0]
    };
    decade_ticks(range, bold, &[1.0, 2.0, 5.0])
}

/// `"99.9%"` for `1 / (1 - p) = 1000`.
fn percentile_label(x: f64) -> String {
    let p = 100.0 * (1.0 - 1.0 / x);
    let decimals = (x.log10() - 1e-9).ceil().max(2.0) as usize - 2;
    format!("{}%", trim_zeros(&format!("{p:.decimals$}")))
}

/// `"500 µs"`, `"2 ms"`, `"1.5 s"`.
fn latency_label(us: f64) -> String {
    let (v, unit) = if us >= 999_999.5 {
        (us / 1e6, "s")
    } else if us >= 999.5 {
        (us / 1e3, "ms")
    } else {
        (us, "µs")
    };
    format!("{} {unit}", significant(v))
}

/// Three significant digits with SI prefix: `"1.23M"`, `"950"`, `"12.3k"`.
fn si(v: f64) -> String {
    const PREFIXES: [&str; 5] = ["", "k", "M", "G", "T"];
    let mut scaled = v;
    let mut i = 0;
    while i + 1 < PREFIXES.len() && significant(scaled).parse::<f64>().unwrap_or(0.0) >= 1000.0 {
        scaled /= 1000.0;
        i += 1;
    }
    format!("{}{}", significant(scaled), PREFIXES[i])
}

/// Three significant digits, trailing zeros removed: `"1.5"`, `"0.25"`, `"120"`.
fn significant(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return "0".to_string();
    }
    let magnitude = v.abs().log10().floor() as i32;
    let decimals = (2 - magnitude).max(0) as usize;
    let s = format!("{v:.decimals$}");
    // Rounding may add a digit (999.7 -> "1000"), which is still fine.
    trim_zeros(&s)
}

fn trim_zeros(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Percentiles as HdrHistogram's percentile iteration spaces them (five
    /// steps per halving of the distance to 100%), down to 1 - p = 1e-5, then
    /// 100%.
    fn percentiles() -> Vec<f64> {
        let mut ps: Vec<f64> = (0..)
            .map(|k| 100.0 * (1.0 - 0.5f64.powf(f64::from(k) / 5.0)))
            .take_while(|p| 100.0 - p > 1e-3)
            .collect();
        ps.push(100.0);
        ps
    }

    fn spectrum(f: impl Fn(f64) -> f64) -> Value {
        let pairs: Vec<Value> = percentiles()
            .into_iter()
            .map(|p| json!([p, f(p)]))
            .collect();
        Value::Array(pairs)
    }

    fn record(label: &str, tput: Value, unit: &str, f: impl Fn(f64) -> f64 + Copy) -> Value {
        json!({
            "label": label,
            "scenario": "pingpong",
            "addr": "127.0.0.1:4096",
            "throughput_per_sec": tput,
            "throughput_unit": unit,
            "latency_us": {"p50": f(50.0), "max": f(100.0), "spectrum": spectrum(f)},
            "latency_uncorrected_us": {"p50": f(50.0) / 2.0, "spectrum": spectrum(move |p| f(p) / 2.0)},
        })
    }

    /// Three runs with spectra of different shapes and throughputs of
    /// different magnitudes.
    fn three() -> Vec<Value> {
        vec![
            // Slowly rising, 40 µs to ~300 µs.
            record("ours", json!(1_234_567.0), "lines/s", |p| {
                40.0 + 25.0 * (1.0 / (1.0 - p.min(99.999) / 100.0)).ln()
            }),
            // Flat, then a jump to milliseconds past 99%.
            record("tokio", json!(45_600.0), "lines/s", |p| {
                if p < 99.0 {
                    180.0
                } else {
                    4_000.0
                }
            }),
            // Linear in p, 0.5 ms to 20 ms.
            record("ours --rate 50000", json!(870.0), "lines/s", |p| {
                500.0 + 195.0 * p
            }),
        ]
    }

    fn hex(c: RGBColor) -> String {
        format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2)
    }

    /// The latency curves in an SVG from `render_svg`.
    ///
    /// A curve is a `<polyline>` stroked in a palette colour. Nothing else in
    /// the picture can be both: plotters draws grid (mesh) lines with
    /// `draw_line`, which the SVG backend emits as `<line>`; axis lines and
    /// tick marks are two-point `<polyline>`s, but stroked in `AXIS_COLOUR`,
    /// which is not in the palette; the legend swatches and its box, and the
    /// throughput bars, are `<rect>`s; labels are `<text>`.
    fn curves(svg: &str) -> Vec<(String, usize)> {
        let doc = roxmltree::Document::parse(svg).expect("well-formed XML");
        let palette: HashSet<String> = PALETTE.iter().map(|c| hex(*c)).collect();
        doc.descendants()
            .filter(|n| n.has_tag_name("polyline"))
            .filter_map(|n| {
                let stroke = n.attribute("stroke")?;
                let points = n.attribute("points")?.split_whitespace().count();
                palette
                    .contains(stroke)
                    .then(|| (stroke.to_string(), points))
            })
            .collect()
    }

    /// The stroke of every `<polyline>`.
    fn polyline_strokes(svg: &str) -> Vec<String> {
        let doc = roxmltree::Document::parse(svg).expect("well-formed XML");
        doc.descendants()
            .filter(|n| n.has_tag_name("polyline"))
            .map(|n| n.attribute("stroke").unwrap_or_default().to_string())
            .collect()
    }

    fn texts(svg: &str) -> Vec<String> {
        let doc = roxmltree::Document::parse(svg).expect("well-formed XML");
        doc.descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| n.text())
            .map(|t| t.trim().to_string())
            .collect()
    }

    /// Filled `<rect>`s of colour `c` whose left edge is at or right of `x`.
    fn rects_right_of(svg: &str, c: RGBColor, x: f64) -> usize {
        let doc = roxmltree::Document::parse(svg).expect("well-formed XML");
        doc.descendants()
            .filter(|n| n.has_tag_name("rect") && n.attribute("fill") == Some(hex(c).as_str()))
            .filter(|n| {
                n.attribute("x")
                    .and_then(|v| v.parse::<f64>().ok())
                    .is_some_and(|v| v >= x)
            })
            .count()
    }

    #[test]
    fn three_runs_make_three_curves_and_bars() {
        let opts = PlotOptions {
            title: Some("three runs".to_string()),
            ..PlotOptions::default()
        };
        let svg = render_svg(&three(), &opts).unwrap();
        let found = curves(&svg);
        assert_eq!(found.len(), 3, "curves: {found:?}");
        let colours: HashSet<&str> = found.iter().map(|c| c.0.as_str()).collect();
        assert_eq!(colours.len(), 3, "each curve its own colour: {found:?}");
        let points = percentiles().len();
        assert!(
            found.iter().all(|c| c.1 == points),
            "{found:?} vs {points} points"
        );
        // The other polylines are axis lines and tick marks, in the axis colour.
        let strokes = polyline_strokes(&svg);
        let axis = strokes.iter().filter(|s| **s == hex(AXIS_COLOUR)).count();
        assert_eq!(strokes.len(), found.len() + axis, "{strokes:?}");

        let texts = texts(&svg);
        for (label, value) in [
            ("ours", "1.23M"),
            ("tokio", "45.6k"),
            ("ours --rate 50000", "870"),
        ] {
            assert!(
                texts.iter().any(|t| t == label),
                "legend {label}: {texts:?}"
            );
            let bar = format!("{label}: {value} lines/s");
            assert!(texts.contains(&bar), "bar {bar}: {texts:?}");
        }
        assert!(texts.iter().any(|t| t == "three runs"), "title: {texts:?}");
        // One bar per run in the right third, in the run's colour.
        for c in &PALETTE[..3] {
            assert_eq!(rects_right_of(&svg, *c, 800.0), 1, "bar {}", hex(*c));
        }
        // The spectra reach 99.999% (1 - p >= 1e-5 but not 1e-6).
        for tick in ["0%", "90%", "99%", "99.9%", "99.99%"] {
            assert!(texts.iter().any(|t| t == tick), "tick {tick}: {texts:?}");
        }
        assert!(!texts.iter().any(|t| t == "99.9999%"), "{texts:?}");
        assert!(texts.iter().any(|t| t.ends_with(" ms")), "{texts:?}");
        assert!(texts.iter().any(|t| t.ends_with(" µs")), "{texts:?}");
    }

    #[test]
    fn uncorrected_curves_are_drawn_on_request() {
        let records = three();
        let svg = render_svg(&records, &PlotOptions::default()).unwrap();
        assert_eq!(curves(&svg).len(), 3);
        let texts_plain = texts(&svg);
        assert!(!texts_plain.iter().any(|t| t.ends_with("(uncorrected)")));

        let opts = PlotOptions {
            uncorrected: true,
            ..PlotOptions::default()
        };
        let svg = render_svg(&records, &opts).unwrap();
        let found = curves(&svg);
        assert_eq!(found.len(), 6, "curves: {found:?}");
        // Two curves of each run's colour, one of them lighter.
        for c in &PALETTE[..3] {
            assert_eq!(found.iter().filter(|f| f.0 == hex(*c)).count(), 2);
        }
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let light = doc
            .descendants()
            .filter(|n| n.has_tag_name("polyline"))
            .filter(|n| n.attribute("opacity") == Some(UNCORRECTED_ALPHA.to_string().as_str()))
            .count();
        assert_eq!(light, 3);
        assert!(texts(&svg).iter().any(|t| t == "tokio (uncorrected)"));
    }

    #[test]
    fn run_without_latency_still_gets_its_bar() {
        // A pipeline record: no label, no latency.
        let rec = json!({
            "scenario": "pipeline",
            "addr": "127.0.0.1:4096",
            "throughput_per_sec": 1234.0,
            "throughput_unit": "lines/s",
            "latency_us": null,
            "latency_uncorrected_us": null,
        });
        let opts = PlotOptions {
            uncorrected: true,
            ..PlotOptions::default()
        };
        let svg = render_svg(&[rec], &opts).unwrap();
        assert_eq!(curves(&svg).len(), 0);
        assert_eq!(rects_right_of(&svg, PALETTE[0], 800.0), 1);
        let texts = texts(&svg);
        assert!(
            texts.contains(&"pipeline 127.0.0.1:4096: 1.23k lines/s".to_string()),
            "{texts:?}"
        );
    }

    #[test]
    fn nothing_to_draw_is_an_error() {
        let err = render_svg(&[], &PlotOptions::default()).unwrap_err();
        assert!(err.contains("no run records"), "{err}");
        let rec = json!({"scenario": "c10k", "throughput_per_sec": null, "latency_us": null});
        let err = render_svg(&[rec], &PlotOptions::default()).unwrap_err();
        assert!(err.contains("none of the 1 run records"), "{err}");
        let err = render_svg(&[json!([1, 2])], &PlotOptions::default()).unwrap_err();
        assert!(err.contains("not a JSON object"), "{err}");
    }

    #[test]
    fn malformed_spectrum_names_the_run() {
        let rec = json!({
            "label": "bad",
            "latency_us": {"spectrum": [[0.0, 10.0], [50.0, "x"]]},
        });
        let err = render_svg(&[rec], &PlotOptions::default()).unwrap_err();
        assert!(
            err.contains("\"bad\"") && err.contains("spectrum[1]"),
            "{err}"
        );
    }

    #[test]
    fn labels_fall_back_and_are_made_unique() {
        let recs = [
            json!({"label": "ours", "throughput_per_sec": 1.0}),
            json!({"label": "ours", "throughput_per_sec": 2.0}),
            json!({"label": "", "scenario": "chat", "throughput_per_sec": 3.0, "throughput_unit": "deliveries/s"}),
            json!({"scenario": "churn", "addr": "[::1]:7", "throughput_per_sec": 4.0, "throughput_unit": "conns/s"}),
        ];
        let runs = parse_runs(&recs).unwrap();
        let labels: Vec<&str> = runs.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(labels, ["ours", "ours (2)", "chat", "churn [::1]:7"]);
        // Units differ: each bar names its own.
        let texts = texts(&render_svg(&recs, &PlotOptions::default()).unwrap());
        assert!(
            texts.contains(&"chat: 3 deliveries/s".to_string()),
            "{texts:?}"
        );
        assert!(
            texts.contains(&"churn [::1]:7: 4 conns/s".to_string()),
            "{texts:?}"
        );
        assert!(
            texts.iter().any(|t| t.contains("units differ")),
            "{texts:?}"
        );
    }

    #[test]
    fn max_point_is_clamped_past_the_last_finite_point() {
        let pts = spectrum_points(&[(0.0, 1.0), (90.0, 2.0), (99.0, 3.0), (100.0, 9.0)]);
        assert_eq!(pts.len(), 4);
        assert!((pts[2].0 - 100.0).abs() < 1e-6);
        assert!((pts[3].0 - 100.0 * MAX_POINT_STRETCH).abs() < 1e-6);
        assert_eq!(pts[3].1, 9.0);
    }

    #[test]
    fn number_formats() {
        assert_eq!(si(1_234_567.0), "1.23M");
        assert_eq!(si(999_700.0), "1M");
        assert_eq!(si(950.0), "950");
        assert_eq!(si(12_345.0), "12.3k");
        assert_eq!(si(0.0), "0");
        assert_eq!(latency_label(500.0), "500 µs");
        assert_eq!(latency_label(0.5), "0.5 µs");
        assert_eq!(latency_label(2000.0), "2 ms");
        assert_eq!(latency_label(1500.0), "1.5 ms");
        assert_eq!(latency_label(2_000_000.0), "2 s");
        assert_eq!(percentile_label(1.0), "0%");
        assert_eq!(percentile_label(2.0), "50%");
        assert_eq!(percentile_label(10.0), "90%");
        assert_eq!(percentile_label(1000.0), "99.9%");
        assert_eq!(percentile_label(100_000.0), "99.999%");
        assert_eq!(nice_floor(37.0), 20.0);
        assert_eq!(nice_ceil(37.0), 50.0);
        assert_eq!(nice_ceil(0.07), 0.1);
    }

    /// Writes `text` to the file `name` in `dir`.
    fn file(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
        let p = dir.path().join(name);
        fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn read_records_accepts_json_lines_and_whole_documents() {
        let dir = tempfile::tempdir().unwrap();
        let lines = file(
            &dir,
            "runs.jsonl",
            "{\"label\": \"a\"}\n\n   \n{\"label\": \"b\"}\n",
        );
        let recs = read_records(&lines).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[1]["label"], "b");

        let pretty = serde_json::to_string_pretty(&three()[0]).unwrap();
        assert!(pretty.lines().count() > 10);
        let recs = read_records(&file(&dir, "one.json", &pretty)).unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0]["label"], "ours");

        let array = serde_json::to_string_pretty(&three()).unwrap();
        assert_eq!(
            read_records(&file(&dir, "all.json", &array)).unwrap().len(),
            3
        );
        assert_eq!(
            read_records(&file(&dir, "empty.jsonl", "\n\n"))
                .unwrap()
                .len(),
            0
        );
    }

    #[test]
    fn read_records_names_the_bad_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(
            &dir,
            "bad.jsonl",
            "{\"label\": \"a\"}\n\nnot json at all\n{}\n",
        );
        let err = read_records(&path).unwrap_err();
        assert!(err.contains("bad.jsonl") && err.contains("line 3"), "{err}");

        let path = file(&dir, "scalar.jsonl", "{}\n42\n");
        let err = read_records(&path).unwrap_err();
        assert!(err.contains("line 2") && err.contains("a number"), "{err}");

        // A broken pretty-printed object: the line of the fault.
        let path = file(
            &dir,
            "broken.json",
            "{\n  \"label\": \"a\",\n  \"x\": ]\n}\n",
        );
        let err = read_records(&path).unwrap_err();
        assert!(
            err.contains("broken.json") && err.contains("line 3"),
            "{err}"
        );

        let err = read_records(&dir.path().join("missing.jsonl")).unwrap_err();
        assert!(err.contains("missing.jsonl"), "{err}");
    }

    #[test]
    fn plot_files_writes_the_svg_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let runs = three();
        let a = file(&dir, "a.jsonl", &format!("{}\n\n{}\n", runs[0], runs[1]));
        let pipeline = json!({"label": "pipe", "throughput_per_sec": 5e6, "throughput_unit": "lines/s", "latency_us": null});
        let b = file(
            &dir,
            "b.json",
            &serde_json::to_string_pretty(&pipeline).unwrap(),
        );
        let out = dir.path().join("out.svg");
        let opts = PlotOptions {
            uncorrected: true,
            ..PlotOptions::default()
        };
        let summary = plot_files(&[a, b], &out, &opts).unwrap();
        assert_eq!(summary, PlotSummary { runs: 3, curves: 4 });
        let svg = fs::read_to_string(&out).unwrap();
        assert_eq!(curves(&svg).len(), 4);
        assert!(texts(&svg).contains(&"pipe: 5M lines/s".to_string()));

        let empty = file(&dir, "empty.jsonl", "");
        let err = plot_files(&[empty], &out, &opts).unwrap_err();
        assert!(
            err.contains("no run records") && err.contains("empty.jsonl"),
            "{err}"
        );
    }
}
