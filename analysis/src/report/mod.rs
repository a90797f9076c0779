//! The generated performance report of a results directory: `DIR/report/` with
//! `report.html` (self-contained: CSS inline, figures as inline SVG), `report.md`,
//! `osu.txt` for micro benchmarks, and `figures/*.svg` + `figures/*.png`.
//!
//! Everything is written into a temporary directory next to it and renamed into
//! place at the end, so a failure never leaves a half-written report (an older
//! report stays as it was).
//!
//! ```no_run
//! let report = dagwire_analysis::report::write_report(std::path::Path::new("results/quickstart-20261123T203000Z"))?;
//! println!("{}", report.html.display());
//! # anyhow::Ok(())
//! ```

pub mod charts;
pub mod content;
pub mod doc;

use crate::compare::{Configuration, configurations, verdicts};
use crate::figures::Drawn;
use crate::osu::{OsuTable, osu_tables};
use crate::point_summary::{PointSummary, summarize, varying_params};
use crate::results_dir::ResultsDir;
use crate::run_metrics::{RunMetrics, run_metrics};
use anyhow::Context;
use std::fs;
use std::path::{Path, PathBuf};

/// Name of the report directory inside a results directory.
///
/// ```
/// assert_eq!(dagwire_analysis::report::REPORT_DIR, "report");
/// ```
pub const REPORT_DIR: &str = "report";

/// `check_metric` of runs whose kernels were only costed (the experiments runner
/// writes this constant).
pub const UNVERIFIABLE: &str = "skipped: kernels not run (cost model)";

/// A results directory and everything computed from it.
#[derive(Clone, Debug)]
pub struct Analysis {
    /// The directory, read.
    pub results: ResultsDir,
    /// Metrics of every run, in `points` order.
    pub runs: Vec<RunMetrics>,
    /// One summary per point.
    pub points: Vec<PointSummary>,
    /// Parameters that vary between points.
    pub varying: Vec<String>,
    /// Configurations and their rankings.
    pub configs: Vec<Configuration>,
    /// Which strategy wins where, as sentences.
    pub verdicts: Vec<String>,
    /// OSU tables of the micro benchmarks.
    pub osu: Vec<OsuTable>,
}

impl Analysis {
    /// Reads `dir` and computes every metric.
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// assert!(dagwire_analysis::report::Analysis::of(dir.path()).is_err());
    /// # anyhow::Ok(())
    /// ```
    pub fn of(dir: &Path) -> anyhow::Result<Analysis> {
        let results = ResultsDir::open(dir)?;
        let runs = run_metrics(&results.points, &results.tasks, &results.transfers)
            .with_context(|| format!("computing the metrics of {}", dir.display()))?;
        let points = summarize(&results.points, &runs, UNVERIFIABLE)?;
        let varying = varying_params(&results.points)?;
        let configs = configurations(&points, &varying);
        let verdicts = verdicts(&configs);
        let osu = osu_tables(&points, &varying);
        Ok(Analysis { results, runs, points, varying, configs, verdicts, osu })
    }
}

/// Where a written report is.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// `DIR/report`.
    pub dir: PathBuf,
    /// `DIR/report/report.html`.
    pub html: PathBuf,
    /// `DIR/report/report.md`.
    pub markdown: PathBuf,
    /// The figure files (SVG and PNG).
    pub figures: Vec<PathBuf>,
    /// Figures not drawn: `(title, reason)`.
    pub skipped: Vec<(String, String)>,
}

/// Writes the report of the results directory `dir` into `dir/report/`, replacing
/// an older one only once the new one is complete.
pub fn write_report(dir: &Path) -> anyhow::Result<Report> {
    let analysis = Analysis::of(dir)?;
    let final_dir = dir.join(REPORT_DIR);
    let tmp = dir.join(format!(".{REPORT_DIR}.tmp-{}", std::process::id()));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).with_context(|| format!("removing the leftover {}", tmp.display()))?;
    }
    let result = write_into(&analysis, &tmp);
    let files = match result {
        Ok(files) => files,
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e.context(format!("writing the report of {}", dir.display())));
        }
    };
    let old = dir.join(format!(".{REPORT_DIR}.old-{}", std::process::id()));
    if final_dir.exists() {
        fs::rename(&final_dir, &old).with_context(|| format!("moving the old {} aside", final_dir.display()))?;
    }
    fs::rename(&tmp, &final_dir).with_context(|| format!("renaming {} to {}", tmp.display(), final_dir.display()))?;
    if old.exists() {
        fs::remove_dir_all(&old).with_context(|| format!("removing the old report {}", old.display()))?;
    }
    let (figures, skipped) = files;
    Ok(Report {
        html: final_dir.join("report.html"),
        markdown: final_dir.join("report.md"),
        figures: figures.into_iter().map(|f| final_dir.join("figures").join(f)).collect(),
        skipped,
        dir: final_dir,
    })
}

type Written = (Vec<String>, Vec<(String, String)>);

fn write_into(a: &Analysis, tmp: &Path) -> anyhow::Result<Written> {
    let figures_dir = tmp.join("figures");
    fs::create_dir_all(&figures_dir).with_context(|| format!("creating {}", figures_dir.display()))?;
    let drawn = charts::all(a, &figures_dir)?;
    let blocks = content::blocks(a, &drawn);
    let title = format!("dagwire report: {}", a.results.manifest.sweep_name);
    let write = |name: &str, text: &str| {
        let path = tmp.join(name);
        fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    };
    write("report.md", &doc::markdown(&blocks))?;
    write("report.html", &doc::html(&title, &blocks))?;
    if !a.osu.is_empty() {
        write("osu.txt", &a.osu.iter().map(|t| t.render()).collect::<Vec<_>>().join("\n"))?;
    }
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    for d in &drawn {
        match d {
            Drawn::Figure(f) => files.extend([format!("{}.svg", f.name), format!("{}.png", f.name)]),
            Drawn::Skipped { title, reason } => skipped.push((title.clone(), reason.clone())),
        }
    }
    Ok((files, skipped))
}
