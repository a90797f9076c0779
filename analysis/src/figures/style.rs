//! The look shared by every figure: colours, text sizes, number formatting, and a
//! legend drawn in its own strip beside the plot so it never covers data.

use super::{FAMILY, plot_err};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Colours of series, in order (the Tableau 10 palette, distinct in colour-blind views).
pub const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// The colour of series `i` (the palette repeats).
///
/// ```
/// use dagwire_analysis::figures::style::{color, PALETTE};
/// assert_eq!(color(10), PALETTE[0]);
/// ```
pub fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Text of `size` px in the bundled font.
pub fn text(size: u32) -> TextStyle<'static> {
    (FAMILY, size).into_font().color(&BLACK)
}

/// Width of the legend strip at the right of a figure, px.
pub const LEGEND_WIDTH: u32 = 340;

/// A number for an axis or a label, short: `1k`, `4.19M`, `0.25`, `12.5`.
///
/// ```
/// use dagwire_analysis::figures::style::si;
/// assert_eq!(si(4_194_304.0), "4.19M");
/// assert_eq!(si(1000.0), "1k");
/// assert_eq!(si(8.0), "8");
/// assert_eq!(si(0.25), "0.25");
/// assert_eq!(si(12.5), "12.5");
/// ```
pub fn si(v: f64) -> String {
    let a = v.abs();
    let (x, suffix) = if a >= 1e9 {
        (v / 1e9, "G")
    } else if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let s = if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else if x.abs() >= 0.01 || x == 0.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.1e}")
    };
    let s =
        if s.contains('.') && !s.contains('e') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s };
    format!("{s}{suffix}")
}

/// Splits `root` into the plot area and a legend strip on the right, and draws the
/// legend: a colour swatch and a name per entry (at most as many as fit; the rest
/// summarised as "+ N more").
pub fn with_legend<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    entries: &[(String, RGBColor)],
) -> anyhow::Result<DrawingArea<DB, Shift>> {
    if entries.is_empty() {
        return Ok(root.clone());
    }
    let (w, _) = root.dim_in_pixel();
    let (plot, legend) = root.split_horizontally(w.saturating_sub(LEGEND_WIDTH));
    let (_, h) = legend.dim_in_pixel();
    let row = 26i32;
    let top = 70i32;
    let fit = ((h as i32 - top - 20) / row).max(1) as usize;
    for (i, (name, c)) in entries.iter().enumerate() {
        let y = top + i as i32 * row;
        if i + 1 == fit && entries.len() > fit {
            legend.draw(&Text::new(format!("+ {} more", entries.len() - i), (16, y), text(15))).map_err(plot_err)?;
            break;
        }
        legend.draw(&Rectangle::new([(10, y - 7), (28, y + 7)], c.filled())).map_err(plot_err)?;
        let label = if name.chars().count() > 36 {
            format!("{}…", name.chars().take(35).collect::<String>())
        } else {
            name.clone()
        };
        legend.draw(&Text::new(label, (36, y), text(15).pos(Pos::new(HPos::Left, VPos::Center)))).map_err(plot_err)?;
    }
    Ok(plot)
}
