//! `experiment report DIR`: writes the generated performance report of a results
//! directory (the work is in [`dagwire_analysis::report`]) and says where it is.

use anyhow::Result;
use dagwire_analysis::report::{Report, write_report};
use std::path::Path;

/// Writes the report of `dir` and returns the lines to print.
pub fn run(dir: &Path) -> Result<(Report, String)> {
    let report = write_report(dir)?;
    let mut out = String::new();
    out.push_str(&format!("report: {}\n", report.html.display()));
    out.push_str(&format!("        {}\n", report.markdown.display()));
    let svgs = report.figures.iter().filter(|f| f.extension().is_some_and(|e| e == "svg")).count();
    out.push_str(&format!("figures: {svgs} (SVG and PNG) in {}\n", report.dir.join("figures").display()));
    for (title, reason) in &report.skipped {
        out.push_str(&format!("not drawn: {title}: {reason}\n"));
    }
    Ok((report, out))
}
