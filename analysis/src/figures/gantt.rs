//! A per-lane timeline (Gantt chart) of one run: a lane per rank and worker (and per
//! copy engine of a simulated device), kernels and copies as boxes coloured by kernel
//! or copy kind, transfers as thin lines from the sender's lane to the receiver's.

use super::style::{color, si, text, with_legend};
use super::{Chart, plot_err};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// A kernel run, or a device copy.
#[derive(Clone, Debug, PartialEq)]
pub struct Slice {
    /// Lane, from 0 at the top.
    pub lane: usize,
    /// Start, ms.
    pub start_ms: f64,
    /// End, ms.
    pub end_ms: f64,
    /// Kernel or copy kind (index into [`GanttChart::kinds`]).
    pub kind: usize,
}

/// A transfer drawn from lane to lane.
#[derive(Clone, Debug, PartialEq)]
pub struct Arrow {
    /// Sender's lane and time, ms.
    pub from: (usize, f64),
    /// Receiver's lane and time, ms.
    pub to: (usize, f64),
}

/// A Gantt chart.
///
/// ```
/// use dagwire_analysis::figures::gantt::{Arrow, GanttChart, Slice};
/// let chart = GanttChart {
///     title: "One run".into(), lanes: vec!["rank 0".into(), "rank 1".into()], kinds: vec!["gemm".into()],
///     slices: vec![Slice { lane: 0, start_ms: 0.0, end_ms: 1.0, kind: 0 }, Slice { lane: 1, start_ms: 1.5, end_ms: 2.0, kind: 0 }],
///     arrows: vec![Arrow { from: (0, 1.0), to: (1, 1.4) }],
/// };
/// let dir = tempfile::tempdir()?;
/// dagwire_analysis::figures::render(&chart, dir.path(), "gantt", "One run", "")?;
/// # anyhow::Ok(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct GanttChart {
    /// Title above the plot.
    pub title: String,
    /// Lane labels, top to bottom.
    pub lanes: Vec<String>,
    /// Kernel names, then copy kinds (the legend).
    pub kinds: Vec<String>,
    /// Kernel runs and copies.
    pub slices: Vec<Slice>,
    /// Transfers.
    pub arrows: Vec<Arrow>,
}

/// Colour of the transfer lines.
const TRANSFER: RGBColor = RGBColor(40, 40, 40);

impl Chart for GanttChart {
    fn size(&self) -> (u32, u32) {
        (1400, (160 + 40 * self.lanes.len() as u32).clamp(360, 1800))
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        let mut entries: Vec<(String, RGBColor)> =
            self.kinds.iter().enumerate().map(|(i, k)| (k.clone(), color(i))).collect();
        if !self.arrows.is_empty() {
            entries.push(("transfer (send → usable)".into(), TRANSFER));
        }
        let plot = with_legend(root, &entries)?;
        let end = self.slices.iter().map(|s| s.end_ms).chain(self.arrows.iter().map(|a| a.to.1)).fold(0.0, f64::max);
        let end = if end > 0.0 { end * 1.02 } else { 1.0 };
        let n = self.lanes.len().max(1) as f64;
        let mut chart = ChartBuilder::on(&plot)
            .caption(&self.title, text(24))
            .margin(16)
            .x_label_area_size(60)
            .y_label_area_size(130)
            .build_cartesian_2d(0.0..end, 0.0..n)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .y_labels(0)
            .disable_y_mesh()
            .x_desc("time since the run started (ms)")
            .x_label_formatter(&|v| si(*v))
            .label_style(text(15))
            .axis_desc_style(text(17))
            .draw()
            .map_err(plot_err)?;
        let lane_y = |lane: usize| n - lane as f64 - 0.5;
        chart
            .draw_series(self.slices.iter().map(|s| {
                let y = lane_y(s.lane);
                Rectangle::new([(s.start_ms, y - 0.38), (s.end_ms, y + 0.38)], color(s.kind).filled())
            }))
            .map_err(plot_err)?;
        chart
            .draw_series(self.arrows.iter().map(|a| {
                PathElement::new(vec![(a.from.1, lane_y(a.from.0)), (a.to.1, lane_y(a.to.0))], TRANSFER.mix(0.45))
            }))
            .map_err(plot_err)?;
        chart
            .draw_series(self.arrows.iter().map(|a| Circle::new((a.to.1, lane_y(a.to.0)), 2, TRANSFER.filled())))
            .map_err(plot_err)?;
        for (i, label) in self.lanes.iter().enumerate() {
            let (px, py) = chart.backend_coord(&(0.0, lane_y(i)));
            plot.draw(&Text::new(label.clone(), (px - 8, py), text(15).pos(Pos::new(HPos::Right, VPos::Center))))
                .map_err(plot_err)?;
        }
        Ok(())
    }
}
