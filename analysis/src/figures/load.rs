//! The load of each rank: a bar per rank with the mean marked when there are few
//! ranks, a histogram of the per-rank loads when there are many. Generic over what
//! "load" is (busy time here; tokens per expert for a Mixture-of-Experts layer).

use super::style::{color, si, text};
use super::{Chart, plot_err};
use plotters::coord::Shift;
use plotters::prelude::*;

/// Ranks up to which each rank gets its own bar.
pub const BAR_LIMIT: usize = 32;

/// The loads of the ranks of one run.
///
/// ```
/// use dagwire_analysis::figures::load::LoadChart;
/// let c = LoadChart { title: "Busy time".into(), loads: vec![4.0, 2.0, 2.0, 0.0], unit: "ms".into(), what: "busy time".into() };
/// assert_eq!(c.imbalance(), Some(2.0));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct LoadChart {
    /// Title above the plot.
    pub title: String,
    /// Load of each rank (index = rank).
    pub loads: Vec<f64>,
    /// Unit of the loads.
    pub unit: String,
    /// What the load is, for the axis (`busy time`).
    pub what: String,
}

impl LoadChart {
    /// Largest load over the mean; `None` when every load is 0.
    pub fn imbalance(&self) -> Option<f64> {
        let mean = self.loads.iter().sum::<f64>() / self.loads.len().max(1) as f64;
        (mean > 0.0).then(|| self.loads.iter().copied().fold(0.0, f64::max) / mean)
    }

    /// Histogram bins: `(low edge, high edge, ranks in it)`.
    ///
    /// ```
    /// use dagwire_analysis::figures::load::LoadChart;
    /// let c = LoadChart { title: String::new(), loads: vec![0.0, 1.0, 1.0, 4.0], unit: "ms".into(), what: String::new() };
    /// let bins = c.bins(4);
    /// assert_eq!(bins.iter().map(|b| b.2).collect::<Vec<_>>(), [1, 2, 0, 1]);
    /// ```
    pub fn bins(&self, count: usize) -> Vec<(f64, f64, usize)> {
        let lo = self.loads.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = self.loads.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if !lo.is_finite() {
            return Vec::new();
        }
        let width = if hi > lo { (hi - lo) / count as f64 } else { lo.abs().max(1.0) / count as f64 };
        let mut bins: Vec<(f64, f64, usize)> =
            (0..count).map(|i| (lo + i as f64 * width, lo + (i + 1) as f64 * width, 0)).collect();
        for v in &self.loads {
            let i = (((v - lo) / width) as usize).min(count - 1);
            bins[i].2 += 1;
        }
        bins
    }
}

impl Chart for LoadChart {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        let mean = self.loads.iter().sum::<f64>() / self.loads.len().max(1) as f64;
        let max = self.loads.iter().copied().fold(0.0, f64::max);
        let caption = match self.imbalance() {
            Some(i) => format!("{} (max/mean = {i:.2})", self.title),
            None => self.title.clone(),
        };
        if self.loads.len() <= BAR_LIMIT {
            let n = self.loads.len();
            let mut chart = ChartBuilder::on(root)
                .caption(caption, text(24))
                .margin(16)
                .x_label_area_size(60)
                .y_label_area_size(90)
                .build_cartesian_2d(-0.5..n as f64 - 0.5, 0.0..(max * 1.15).max(1e-9))
                .map_err(plot_err)?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(n.min(32))
                .x_label_formatter(&|v| {
                    if (v - v.round()).abs() < 1e-6 { format!("{}", v.round() as i64) } else { String::new() }
                })
                .y_label_formatter(&|v| si(*v))
                .x_desc("rank")
                .y_desc(format!("{} ({})", self.what, self.unit))
                .label_style(text(15))
                .axis_desc_style(text(17))
                .draw()
                .map_err(plot_err)?;
            chart
                .draw_series(
                    self.loads.iter().enumerate().map(|(r, v)| {
                        Rectangle::new([(r as f64 - 0.35, 0.0), (r as f64 + 0.35, *v)], color(0).filled())
                    }),
                )
                .map_err(plot_err)?;
            chart
                .draw_series([PathElement::new(vec![(-0.5, mean), (n as f64 - 0.5, mean)], color(3).stroke_width(2))])
                .map_err(plot_err)?;
        } else {
            let bins = self.bins(20.min(self.loads.len()));
            let top = bins.iter().map(|b| b.2).max().unwrap_or(1) as f64;
            let (x0, x1) = (bins[0].0, bins[bins.len() - 1].1);
            let mut chart = ChartBuilder::on(root)
                .caption(caption, text(24))
                .margin(16)
                .x_label_area_size(60)
                .y_label_area_size(90)
                .build_cartesian_2d(x0..x1, 0.0..top * 1.15)
                .map_err(plot_err)?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_label_formatter(&|v| si(*v))
                .y_label_formatter(&|v| format!("{}", v.round() as i64))
                .x_desc(format!("{} per rank ({})", self.what, self.unit))
                .y_desc("ranks")
                .label_style(text(15))
                .axis_desc_style(text(17))
                .draw()
                .map_err(plot_err)?;
            chart
                .draw_series(bins.iter().map(|b| Rectangle::new([(b.0, 0.0), (b.1, b.2 as f64)], color(0).filled())))
                .map_err(plot_err)?;
            chart
                .draw_series([PathElement::new(vec![(mean, 0.0), (mean, top * 1.1)], color(3).stroke_width(2))])
                .map_err(plot_err)?;
        }
        Ok(())
    }
}
