//! Lines (or points) over a numeric x axis, each axis linear or logarithmic, with
//! optional whiskers and an optional `y = x` reference line: scaling over ranks,
//! latency and bandwidth against message size, simulated against real.

use super::style::{color, si, text, with_legend};
use super::{Chart, plot_err};
use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;

/// A point: `(x, y, whisker from lo to hi)`.
pub type XyPoint = (f64, f64, Option<(f64, f64)>);

/// One series.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Legend name.
    pub name: String,
    /// `(x, y, whisker)` points, in x order for lines.
    pub points: Vec<XyPoint>,
}

/// A line or scatter chart.
///
/// ```
/// use dagwire_analysis::figures::xy::{Series, XyChart};
/// let chart = XyChart {
///     title: "Latency".into(), x_label: "message size (bytes)".into(), y_label: "latency (µs)".into(),
///     log_x: true, log_y: true, lines: true, diagonal: false,
///     series: vec![Series { name: "eager".into(), points: vec![(8.0, 1.5, None), (4096.0, 3.0, None)] }],
/// };
/// let dir = tempfile::tempdir()?;
/// dagwire_analysis::figures::render(&chart, dir.path(), "lat", "Latency", "")?;
/// # anyhow::Ok(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct XyChart {
    /// Title above the plot.
    pub title: String,
    /// x axis description with unit.
    pub x_label: String,
    /// y axis description with unit.
    pub y_label: String,
    /// Logarithmic x axis.
    pub log_x: bool,
    /// Logarithmic y axis.
    pub log_y: bool,
    /// Join the points of a series with lines (else points only).
    pub lines: bool,
    /// Draw the `y = x` line (for predicted against measured).
    pub diagonal: bool,
    /// The series.
    pub series: Vec<Series>,
}

impl XyChart {
    fn bounds(&self, pick: impl Fn(&XyPoint) -> [f64; 3], log: bool) -> (f64, f64) {
        let vals: Vec<f64> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().flat_map(&pick))
            .filter(|v| v.is_finite() && (!log || *v > 0.0))
            .collect();
        let lo = vals.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if !lo.is_finite() {
            return (if log { 1.0 } else { 0.0 }, 1.0);
        }
        if log {
            (lo / 1.3, hi * 1.3)
        } else {
            let pad = ((hi - lo) * 0.08).max(hi.abs() * 0.05).max(1e-9);
            ((lo - pad).min(if lo >= 0.0 { 0.0 } else { lo - pad }), hi + pad)
        }
    }

    fn draw_on<DB, X, Y>(&self, plot: &DrawingArea<DB, Shift>, x: X, y: Y) -> anyhow::Result<()>
    where
        DB: DrawingBackend,
        X: AsRangedCoord<Value = f64>,
        Y: AsRangedCoord<Value = f64>,
        X::CoordDescType: ValueFormatter<f64>,
        Y::CoordDescType: ValueFormatter<f64>,
    {
        let mut chart = ChartBuilder::on(plot)
            .caption(&self.title, text(24))
            .margin(16)
            .x_label_area_size(60)
            .y_label_area_size(90)
            .build_cartesian_2d(x, y)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .x_label_formatter(&|v| si(*v))
            .y_label_formatter(&|v| si(*v))
            .label_style(text(15))
            .axis_desc_style(text(17))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(plot_err)?;
        if self.diagonal {
            let xr = chart.x_range();
            let yr = chart.y_range();
            let (lo, hi) = (xr.start.max(yr.start), xr.end.min(yr.end));
            if hi > lo {
                let ink = RGBColor(120, 120, 120).stroke_width(1);
                chart.draw_series([PathElement::new(vec![(lo, lo), (hi, hi)], ink)]).map_err(plot_err)?;
            }
        }
        for (i, s) in self.series.iter().enumerate() {
            let c = color(i);
            let pts: Vec<(f64, f64)> = s.points.iter().map(|p| (p.0, p.1)).collect();
            if self.lines && pts.len() > 1 {
                chart.draw_series(LineSeries::new(pts.clone(), c.stroke_width(3))).map_err(plot_err)?;
            }
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 5, c.filled()))).map_err(plot_err)?;
            for p in &s.points {
                if let Some((lo, hi)) = p.2 {
                    chart
                        .draw_series([PathElement::new(vec![(p.0, lo), (p.0, hi)], c.stroke_width(2))])
                        .map_err(plot_err)?;
                }
            }
        }
        Ok(())
    }
}

impl Chart for XyChart {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        let entries: Vec<(String, RGBColor)> =
            self.series.iter().enumerate().map(|(i, s)| (s.name.clone(), color(i))).collect();
        let plot = with_legend(root, &entries)?;
        let (x0, x1) = self.bounds(|p| [p.0, p.0, p.0], self.log_x);
        let (y0, y1) = self.bounds(|p| [p.1, p.2.map_or(p.1, |w| w.0), p.2.map_or(p.1, |w| w.1)], self.log_y);
        let (x0, x1, y0, y1) = if self.diagonal {
            let (lo, hi) = (x0.min(y0), x1.max(y1));
            (lo, hi, lo, hi)
        } else {
            (x0, x1, y0, y1)
        };
        match (self.log_x, self.log_y) {
            (true, true) => self.draw_on(&plot, (x0..x1).log_scale(), (y0..y1).log_scale()),
            (true, false) => self.draw_on(&plot, (x0..x1).log_scale(), y0..y1),
            (false, true) => self.draw_on(&plot, x0..x1, (y0..y1).log_scale()),
            (false, false) => self.draw_on(&plot, x0..x1, y0..y1),
        }
    }
}
