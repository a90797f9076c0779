//! Grouped horizontal bars with whiskers: one group per configuration, one bar per
//! contender, the value at the end of each bar. Horizontal so that long
//! configuration labels stay readable.

use super::style::{color, si, text, with_legend};
use super::{Chart, plot_err};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// One bar.
#[derive(Clone, Debug, PartialEq)]
pub struct Bar {
    /// Group (row), from 0 at the top.
    pub group: usize,
    /// Series (colour).
    pub series: usize,
    /// Length of the bar.
    pub value: f64,
    /// Whisker from `lo` to `hi`, if any.
    pub whisker: Option<(f64, f64)>,
}

/// Grouped horizontal bars.
///
/// ```
/// use dagwire_analysis::figures::bars::{Bar, BarChart};
/// let chart = BarChart {
///     title: "Makespan".into(), value_label: "makespan (ms)".into(),
///     groups: vec!["tile=128".into()], series: vec!["eager".into()],
///     bars: vec![Bar { group: 0, series: 0, value: 12.0, whisker: Some((11.0, 13.0)) }],
/// };
/// let dir = tempfile::tempdir()?;
/// dagwire_analysis::figures::render(&chart, dir.path(), "bars", "Makespan", "")?;
/// # anyhow::Ok(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct BarChart {
    /// Title drawn above the plot.
    pub title: String,
    /// Axis description of the values, with the unit.
    pub value_label: String,
    /// Group labels, top to bottom.
    pub groups: Vec<String>,
    /// Series names (the legend).
    pub series: Vec<String>,
    /// The bars.
    pub bars: Vec<Bar>,
}

impl Chart for BarChart {
    fn size(&self) -> (u32, u32) {
        let per_group = 14 + 22 * self.series.len().max(1) as u32;
        (1200, (170 + per_group * self.groups.len() as u32).clamp(360, 2400))
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        let entries: Vec<(String, RGBColor)> =
            self.series.iter().enumerate().map(|(i, s)| (s.clone(), color(i))).collect();
        let plot = with_legend(root, if self.series.len() > 1 { &entries } else { &[] })?;
        let xmax = self.bars.iter().map(|b| b.whisker.map_or(b.value, |w| w.1.max(b.value))).fold(0.0, f64::max);
        let xmax = if xmax > 0.0 { xmax * 1.15 } else { 1.0 };
        let n = self.groups.len().max(1) as f64;
        let longest = self.groups.iter().map(|g| g.chars().count()).max().unwrap_or(4) as u32;
        let label_w = (longest * 9 + 20).clamp(90, 420);
        let mut chart = ChartBuilder::on(&plot)
            .caption(&self.title, text(24))
            .margin(16)
            .x_label_area_size(60)
            .y_label_area_size(label_w)
            .build_cartesian_2d(0.0..xmax, 0.0..n)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .y_labels(0)
            .disable_y_mesh()
            .x_desc(&self.value_label)
            .x_label_formatter(&|v| si(*v))
            .label_style(text(15))
            .axis_desc_style(text(17))
            .draw()
            .map_err(plot_err)?;
        let k = self.series.len().max(1) as f64;
        let band = 0.8 / k;
        for b in &self.bars {
            let top = n - b.group as f64 - 0.1 - b.series as f64 * band;
            let (y0, y1) = (top - band * 0.92, top);
            let c = color(b.series);
            chart.draw_series([Rectangle::new([(0.0, y0), (b.value, y1)], c.filled())]).map_err(plot_err)?;
            let mid = (y0 + y1) / 2.0;
            let mut end = b.value;
            if let Some((lo, hi)) = b.whisker {
                let cap = band * 0.3;
                let ink = BLACK.stroke_width(2);
                chart
                    .draw_series([
                        PathElement::new(vec![(lo, mid), (hi, mid)], ink),
                        PathElement::new(vec![(lo, mid - cap), (lo, mid + cap)], ink),
                        PathElement::new(vec![(hi, mid - cap), (hi, mid + cap)], ink),
                    ])
                    .map_err(plot_err)?;
                end = end.max(hi);
            }
            if self.bars.len() <= 60 {
                let (px, py) = chart.backend_coord(&(end, mid));
                plot.draw(&Text::new(si(b.value), (px + 6, py), text(13).pos(Pos::new(HPos::Left, VPos::Center))))
                    .map_err(plot_err)?;
            }
        }
        for (g, label) in self.groups.iter().enumerate() {
            let (px, py) = chart.backend_coord(&(0.0, n - g as f64 - 0.5));
            plot.draw(&Text::new(label.clone(), (px - 8, py), text(15).pos(Pos::new(HPos::Right, VPos::Center))))
                .map_err(plot_err)?;
        }
        Ok(())
    }
}
