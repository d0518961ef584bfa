//! The SVG plot: throughput and one-way latency against payload size, log-log,
//! one line per transport (plotters, SVG backend only: no font libraries).

use std::path::Path;

use plotters::prelude::*;

use super::report::{Results, label};

type Series = Vec<(&'static str, Vec<(f64, f64)>)>;

fn series(r: &Results, latency: bool) -> Series {
    let ids = if latency { r.lat_ids() } else { r.tp_ids() };
    ids.into_iter()
        .map(|id| {
            let pts: Vec<(f64, f64)> = if latency {
                r.lat_sizes()
                    .into_iter()
                    .filter_map(|z| r.lat(id, z).map(|l| (z as f64, l.p50 as f64 / 1e3)))
                    .collect()
            } else {
                r.tp_sizes()
                    .into_iter()
                    .filter_map(|z| r.tp(id, z).map(|t| (z as f64, t.median())))
                    .collect()
            };
            (id, pts)
        })
        .filter(|(_, p)| !p.is_empty())
        .collect()
}

/// Axis range covering `v` with some room, in whole decades.
fn decades(v: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (lo, hi) = v
        .filter(|x| x.is_finite() && *x > 0.0)
        .fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
    if lo > hi {
        return 0.1..10.0;
    }
    10f64.powf(lo.log10().floor())..10f64.powf(hi.log10().ceil().max(lo.log10().floor() + 1.0))
}

/// Axis labels at powers of ten: `100 B`, `10 kB`, `1 MB`.
fn decimal_bytes(v: f64) -> String {
    match v {
        v if v >= 1e9 => format!("{} GB", v / 1e9),
        v if v >= 1e6 => format!("{} MB", v / 1e6),
        v if v >= 1e3 => format!("{} kB", v / 1e3),
        v => format!("{v} B"),
    }
}

fn color(i: usize) -> RGBColor {
    const C: [RGBColor; 12] = [
        RGBColor(120, 120, 120),
        RGBColor(180, 180, 180),
        RGBColor(60, 60, 60),
        RGBColor(255, 127, 14),
        RGBColor(31, 119, 180),
        RGBColor(23, 190, 207),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(188, 189, 34),
    ];
    C[i % C.len()]
}

fn color_of(id: &str) -> RGBColor {
    let i = super::report::TRANSPORTS
        .iter()
        .position(|(t, _)| *t == id)
        .unwrap_or(0);
    color(i)
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    data: &Series,
    title: &str,
    y_desc: &str,
) -> DrawResult {
    let x = decades(data.iter().flat_map(|(_, p)| p.iter().map(|q| q.0)));
    let y = decades(data.iter().flat_map(|(_, p)| p.iter().map(|q| q.1)));
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .margin_right(36)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x.log_scale(), y.log_scale())?;
    chart
        .configure_mesh()
        .x_desc("payload per frame")
        .y_desc(y_desc)
        .x_label_formatter(&|v| decimal_bytes(*v))
        .y_label_formatter(&|v| format!("{v}"))
        .draw()?;
    for (id, pts) in data {
        let c = color_of(id);
        chart.draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))?;
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))?;
    }
    Ok(())
}

/// One legend for both panels, in columns below them.
fn legend(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    ids: &[&'static str],
) -> DrawResult {
    let (w, _) = area.dim_in_pixel();
    let cols = 3usize;
    let col_w = (w as usize - 40) / cols;
    for (i, id) in ids.iter().enumerate() {
        let (x, y) = (20 + (i % cols) * col_w, 10 + (i / cols) * 22);
        let (x, y) = (x as i32, y as i32);
        let c = color_of(id);
        area.draw(&PathElement::new(
            vec![(x, y + 7), (x + 26, y + 7)],
            c.stroke_width(3),
        ))?;
        area.draw(&Text::new(label(id), (x + 34, y), ("sans-serif", 14)))?;
    }
    Ok(())
}

/// Write the plot to `path`.
pub fn write(r: &Results, path: &Path, subtitle: &str) -> DrawResult {
    let (tp, lat) = (series(r, false), series(r, true));
    let ids: Vec<&'static str> = super::report::TRANSPORTS
        .iter()
        .map(|(i, _)| *i)
        .filter(|i| tp.iter().chain(&lat).any(|(j, _)| j == i))
        .collect();
    let legend_h = 20 + 22 * ids.len().div_ceil(3) as u32;
    let root = SVGBackend::new(path, (1400, 600 + legend_h)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(subtitle, ("sans-serif", 16))?;
    let (charts, below) = root.split_vertically(570);
    let (left, right) = charts.split_horizontally(700);
    panel(
        &left,
        &tp,
        "Throughput (median of runs), higher is better",
        "GB/s",
    )?;
    panel(
        &right,
        &lat,
        "One-way latency p50 (ping-pong / 2), lower is better",
        "microseconds",
    )?;
    legend(&below, &ids)?;
    root.present()?;
    Ok(())
}
