//! A results directory opened for analysis: its manifest and its five tables, each
//! checked against the documented schema, with errors that name the file and say
//! what to do.
//!
//! ```
//! use dagwire_analysis::ResultsDir;
//! let dir = tempfile::tempdir()?;
//! let err = ResultsDir::open(dir.path()).unwrap_err();
//! assert!(format!("{err:#}").contains("manifest.json"));
//! # anyhow::Ok(())
//! ```

use crate::integrity;
use crate::tables::{Table, read_table};
use anyhow::{Context, bail};
use polars::prelude::DataFrame;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The format tag of the results directories this version writes and reads, kept
/// in `manifest.json` as `"format"`. Version 2 added `chain_ns` to `tasks`, version 3 the
/// `copies` table.
///
/// ```
/// assert!(dagwire_analysis::RESULTS_FORMAT.starts_with("dagwire-results/"));
/// ```
pub const RESULTS_FORMAT: &str = "dagwire-results/3";

/// What `manifest.json` says about the sweep that made a results directory.
///
/// ```
/// use dagwire_analysis::Manifest;
/// let m = Manifest::from_json(&serde_json::json!({
///     "format": "dagwire-results/3", "sweep": {"name": "quick", "text": "name = \"quick\""},
///     "seed": 42, "repetitions": 3, "status": "complete"
/// }));
/// assert_eq!((m.sweep_name.as_str(), m.seed, m.repetitions), ("quick", Some(42), Some(3)));
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Manifest {
    /// The format tag (`dagwire-results/N`).
    pub format: String,
    /// The sweep's name.
    pub sweep_name: String,
    /// The sweep's description, if it has one.
    pub description: Option<String>,
    /// The sweep file's path when it ran.
    pub sweep_path: Option<String>,
    /// The sweep file's text.
    pub sweep_text: Option<String>,
    /// The sweep's seed.
    pub seed: Option<u64>,
    /// Repetitions per point.
    pub repetitions: Option<u64>,
    /// Points in the grid.
    pub points: Option<u64>,
    /// Git revision of the tool that ran it.
    pub git_revision: Option<String>,
    /// Tool version.
    pub tool_version: Option<String>,
    /// Host name.
    pub host: Option<String>,
    /// Cores of the host.
    pub cores: Option<u64>,
    /// First start, RFC 3339.
    pub started_at: Option<String>,
    /// End, RFC 3339; `None` while running or if interrupted.
    pub finished_at: Option<String>,
    /// `complete` or `running` (an interrupted sweep stays `running`).
    pub status: String,
    /// Runs that failed or did not verify.
    pub failed_runs: Option<u64>,
    /// SHA-256 (hex) of each combined table when it was written, by file name.
    pub tables: std::collections::BTreeMap<String, String>,
}

impl Manifest {
    /// Reads the fields this crate knows from a parsed `manifest.json` (missing
    /// fields are empty; [`ResultsDir::open`] checks the format tag).
    ///
    /// ```
    /// let m = dagwire_analysis::Manifest::from_json(&serde_json::json!({}));
    /// assert_eq!(m.status, "");
    /// ```
    pub fn from_json(v: &Value) -> Manifest {
        let s = |v: &Value| v.as_str().map(String::from);
        Manifest {
            format: s(&v["format"]).unwrap_or_default(),
            sweep_name: s(&v["sweep"]["name"]).unwrap_or_default(),
            description: s(&v["sweep"]["description"]),
            sweep_path: s(&v["sweep"]["path"]),
            sweep_text: s(&v["sweep"]["text"]),
            seed: v["seed"].as_u64(),
            repetitions: v["repetitions"].as_u64(),
            points: v["points"].as_u64(),
            git_revision: s(&v["git_revision"]),
            tool_version: s(&v["tool_version"]),
            host: s(&v["host"]),
            cores: v["cores"].as_u64(),
            started_at: s(&v["started_at"]),
            finished_at: s(&v["finished_at"]),
            status: s(&v["status"]).unwrap_or_default(),
            failed_runs: v["failed_runs"].as_u64(),
            tables: v["tables"]
                .as_object()
                .map(|t| t.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
                .unwrap_or_default(),
        }
    }
}

/// A results directory, read whole: the manifest and the `points`, `tasks`,
/// `transfers`, `messages` and `copies` tables.
///
/// ```no_run
/// let results = dagwire_analysis::ResultsDir::open(std::path::Path::new("results/quickstart-20261123T203000Z"))?;
/// println!("{} runs of sweep {}", results.points.height(), results.manifest.sweep_name);
/// # anyhow::Ok(())
/// ```
#[derive(Clone, Debug)]
pub struct ResultsDir {
    /// The directory.
    pub path: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// `points.parquet`.
    pub points: DataFrame,
    /// `tasks.parquet`.
    pub tasks: DataFrame,
    /// `transfers.parquet`.
    pub transfers: DataFrame,
    /// `messages.parquet`.
    pub messages: DataFrame,
    /// `copies.parquet`.
    pub copies: DataFrame,
}

impl ResultsDir {
    /// Opens `dir`: reads and checks `manifest.json` (it must exist and carry
    /// [`RESULTS_FORMAT`]) and the five tables (documented columns and types, the
    /// checksums the manifest recorded, and their rows against each other: see
    /// [`crate::integrity`]). Every error names the file and what is wrong.
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// std::fs::write(dir.path().join("manifest.json"), r#"{"format": "dagwire-results/1"}"#)?;
    /// let err = format!("{:#}", dagwire_analysis::ResultsDir::open(dir.path()).unwrap_err());
    /// assert!(err.contains("older"), "{err}");
    /// # anyhow::Ok(())
    /// ```
    pub fn open(dir: &Path) -> anyhow::Result<ResultsDir> {
        if !dir.is_dir() {
            bail!("{} is not a directory; give the results directory that `experiment run` printed", dir.display());
        }
        let manifest = read_manifest(dir)?;
        integrity::check_checksums(dir, &manifest.tables)?;
        let read = |t| read_table(dir, t);
        let results = ResultsDir {
            path: dir.to_path_buf(),
            manifest,
            points: read(Table::Points)?,
            tasks: read(Table::Tasks)?,
            transfers: read(Table::Transfers)?,
            messages: read(Table::Messages)?,
            copies: read(Table::Copies)?,
        };
        integrity::check_tables(dir, &results)?;
        Ok(results)
    }
}

fn read_manifest(dir: &Path) -> anyhow::Result<Manifest> {
    let path = dir.join("manifest.json");
    if !path.is_file() {
        bail!(
            "{} does not exist: {} is not a dagwire results directory (give the directory `experiment run` printed)",
            path.display(),
            dir.display()
        );
    }
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let json: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON (truncated?); rerun the sweep", path.display()))?;
    let manifest = Manifest::from_json(&json);
    if manifest.format != RESULTS_FORMAT {
        let older = manifest.format.strip_prefix("dagwire-results/").and_then(|v| v.parse::<u32>().ok());
        let current: u32 = RESULTS_FORMAT.rsplit('/').next().and_then(|v| v.parse().ok()).unwrap_or(0);
        match older {
            Some(v) if v < current => bail!(
                "{}: format {:?} is older than this tool reads ({RESULTS_FORMAT:?}); rerun the sweep into a new directory",
                path.display(),
                manifest.format
            ),
            Some(_) => bail!(
                "{}: format {:?} is newer than this tool reads ({RESULTS_FORMAT:?}); update dagwire",
                path.display(),
                manifest.format
            ),
            None => bail!(
                "{}: no dagwire results format tag (found {:?}, expected {RESULTS_FORMAT:?}); is this a dagwire results directory?",
                path.display(),
                manifest.format
            ),
        }
    }
    Ok(manifest)
}
