//! `experiment trace DIR --point ID --format perfetto`: one run as Chrome/Perfetto
//! trace-event JSON (the work is in [`dagwire_analysis::perfetto`]), written
//! atomically.

use anyhow::{Context, Result};
use dagwire_analysis::ResultsDir;
use dagwire_analysis::perfetto::trace_events;
use std::path::{Path, PathBuf};

/// Trace formats `experiment trace` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Chrome trace-event JSON, for ui.perfetto.dev or chrome://tracing.
    Perfetto,
}

/// Writes the trace of `point`/`repetition` of `dir` to `out` (default
/// `DIR/trace-<point>-<repetition>.json`) and returns the path written.
pub fn run(dir: &Path, point: i64, repetition: i64, _format: Format, out: Option<PathBuf>) -> Result<PathBuf> {
    let results = ResultsDir::open(dir)?;
    let trace = trace_events(&results.tasks, &results.transfers, &results.copies, point, repetition)
        .with_context(|| format!("exporting the trace of {}", dir.display()))?;
    let out = out.unwrap_or_else(|| dir.join(format!("trace-{point}-{repetition}.json")));
    let name = out.file_name().with_context(|| format!("{} has no file name", out.display()))?;
    let tmp = out.with_file_name(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
    std::fs::write(&tmp, serde_json::to_vec(&trace)?).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &out).with_context(|| format!("renaming {} to {}", tmp.display(), out.display()))?;
    Ok(out)
}
