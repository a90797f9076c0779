//! Figures drawn with plotters, each as SVG (for the HTML report) and PNG (for the
//! Markdown report and for people who want the files), with the bundled DejaVu Sans
//! font so that text renders on a machine without system fonts.
//!
//! A figure is plain data implementing [`Chart`]; [`render`] draws it with both
//! backends. A figure that the data cannot fill is a [`Drawn::Skipped`] with the
//! reason, never an empty chart.

pub mod bars;
pub mod gantt;
pub mod load;
pub mod style;
pub mod xy;

use anyhow::{Context, anyhow};
use plotters::coord::Shift;
use plotters::prelude::{BitMapBackend, DrawingArea, DrawingBackend, IntoDrawingArea, SVGBackend};
use std::path::Path;
use std::sync::Once;

/// The bundled font (DejaVu Sans, Bitstream Vera licence: `analysis/assets/DejaVuSans-LICENSE.txt`).
const FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// The font family name the figures use; [`ensure_font`] registers it.
pub const FAMILY: &str = "sans-serif";

/// Registers the bundled font with plotters under [`FAMILY`] (once per process).
///
/// ```
/// dagwire_analysis::figures::ensure_font();
/// ```
///
/// # Panics
/// If the bundled font file is not a valid TrueType font (a broken build).
pub fn ensure_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        plotters::style::register_font(FAMILY, plotters::style::FontStyle::Normal, FONT)
            .unwrap_or_else(|_| panic!("the bundled DejaVuSans.ttf is not a valid font"));
    });
}

/// Something that can draw itself on any plotters backend.
pub trait Chart {
    /// Pixel size (width, height).
    fn size(&self) -> (u32, u32) {
        (1200, 700)
    }
    /// Draws the chart on `root`, which is already filled white.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()>;
}

/// A figure written to disk.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    /// File stem: the files are `<name>.svg` and `<name>.png`.
    pub name: String,
    /// Title, shown above it in the report.
    pub title: String,
    /// What it shows and how to read it (units, what the whiskers are).
    pub caption: String,
    /// The SVG text, for inlining.
    pub svg: String,
}

/// A figure, or why it was not drawn.
#[derive(Clone, Debug, PartialEq)]
pub enum Drawn {
    /// Drawn and written.
    Figure(Figure),
    /// Not drawn, and why (shown in the report instead of an empty chart).
    Skipped {
        /// What the figure would have shown.
        title: String,
        /// Why it is not there.
        reason: String,
    },
}

/// Draws `chart` into `dir/<name>.svg` and `dir/<name>.png` and returns the figure.
///
/// ```
/// use dagwire_analysis::figures::{render, load::LoadChart};
/// let dir = tempfile::tempdir()?;
/// let chart = LoadChart { title: "Busy time per rank".into(), loads: vec![3.0, 1.0], unit: "ms".into(), what: "busy time".into() };
/// let fig = render(&chart, dir.path(), "load", "Load", "Per-rank busy time.")?;
/// assert!(fig.svg.contains("<svg") && dir.path().join("load.png").is_file());
/// # anyhow::Ok(())
/// ```
pub fn render(chart: &impl Chart, dir: &Path, name: &str, title: &str, caption: &str) -> anyhow::Result<Figure> {
    ensure_font();
    let size = chart.size();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&plotters::style::WHITE).map_err(plot_err)?;
        chart.draw(&root).with_context(|| format!("drawing figure {name} (SVG)"))?;
        root.present().map_err(plot_err)?;
    }
    let svg_path = dir.join(format!("{name}.svg"));
    std::fs::write(&svg_path, &svg).with_context(|| format!("writing {}", svg_path.display()))?;
    let png_path = dir.join(format!("{name}.png"));
    {
        let root = BitMapBackend::new(&png_path, size).into_drawing_area();
        root.fill(&plotters::style::WHITE).map_err(plot_err)?;
        chart.draw(&root).with_context(|| format!("drawing figure {name} (PNG)"))?;
        root.present().map_err(plot_err).with_context(|| format!("writing {}", png_path.display()))?;
    }
    Ok(Figure { name: name.into(), title: title.into(), caption: caption.into(), svg })
}

/// A plotters error as an anyhow error.
pub(crate) fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("plotters: {e:?}")
}
