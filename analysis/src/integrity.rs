//! Readers that do not trust their tables: before a report or a trace export counts
//! anything, a results directory's tables are checked against each other and against
//! the checksums its manifest recorded when they were written.
//!
//! - Every table file must match the SHA-256 in `manifest.json` (`"tables"`), when the
//!   manifest has one: a flipped byte in a Parquet page is caught, not read as data.
//! - `points` holds each (point_id, repetition) once: a duplicated row would count as
//!   another run and narrow every confidence interval.
//! - Every row of `tasks`, `transfers`, `messages` and `copies` belongs to a run in
//!   `points`, its ranks lie in `0..ranks` of that run, its workers (streams, copy
//!   engines) in `0..MAX_WORKERS`, and its times
//!   are not negative: a corrupted rank of 2^40 must not become an allocation of that size.
//!
//! Errors name the file, the row and the value, and say what to do.

use crate::results_dir::ResultsDir;
use crate::tables::Table;
use anyhow::{Context, bail};
use polars::prelude::DataFrame;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// The most kernel workers per rank a valid row may name.
pub const MAX_WORKERS: i64 = 1 << 16;

/// The SHA-256 (hex) of every combined table of `dir`, by file name: what the manifest
/// records once the tables are written.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// assert!(dagwire_analysis::integrity::table_checksums(dir.path())?.is_empty(), "no tables yet");
/// # anyhow::Ok(())
/// ```
pub fn table_checksums(dir: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let mut sums = BTreeMap::new();
    for table in Table::ALL {
        let path = dir.join(table.file_name());
        if path.is_file() {
            sums.insert(table.file_name().to_string(), file_sha256(&path)?);
        }
    }
    Ok(sums)
}

fn file_sha256(path: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect())
}

/// Checks every table file of `dir` against the checksums in `recorded` (file name ->
/// hex SHA-256); a table the manifest does not list is not checked.
pub fn check_checksums(dir: &Path, recorded: &BTreeMap<String, String>) -> anyhow::Result<()> {
    for (name, want) in recorded {
        let path = dir.join(name);
        if !path.exists() {
            continue; // reading the table says it is missing, and what to do
        }
        let got = file_sha256(&path)?;
        if &got != want {
            bail!(
                "{} does not match the SHA-256 manifest.json recorded for it (the file was corrupted or changed after \
                 the sweep wrote it); recombine it from the parts with `experiment run SWEEP --out {} --resume`",
                path.display(),
                dir.display()
            );
        }
    }
    Ok(())
}

/// Checks the tables of `results` (read from `dir`) against each other (see the
/// [module docs](self)).
pub fn check_tables(dir: &Path, results: &ResultsDir) -> anyhow::Result<()> {
    let runs = runs(dir, &results.points)?;
    let rows =
        |table: Table, df: &DataFrame, ranks: &[&str], times: &[&str]| check_rows(dir, table, df, &runs, ranks, times);
    rows(Table::Tasks, &results.tasks, &["rank"], &["start_ns", "end_ns"])?;
    check_range(dir, Table::Tasks, &results.tasks, "worker", 0, MAX_WORKERS)?;
    let phases = ["posted_ns", "started_ns", "wire_ns", "completed_ns"];
    rows(Table::Transfers, &results.transfers, &["src", "dst"], &phases)?;
    rows(Table::Messages, &results.messages, &["src", "dst"], &["sent_ns", "recv_ns"])?;
    rows(Table::Copies, &results.copies, &["rank", "src", "dst"], &["start_ns", "end_ns"])?;
    for lane in ["engine", "stream"] {
        check_range(dir, Table::Copies, &results.copies, lane, 0, MAX_WORKERS)?;
    }
    Ok(())
}

/// The runs in `points`: (point_id, repetition) -> ranks, each run once.
fn runs(dir: &Path, points: &DataFrame) -> anyhow::Result<HashMap<(i64, i64), i64>> {
    let path = dir.join(Table::Points.file_name());
    let (ids, reps) = (int_column(points, "point_id")?, int_column(points, "repetition")?);
    // A points table without a `ranks` column (only failed runs of a foreign writer) bounds nothing.
    let ranks = points.column("ranks").ok().and_then(|c| c.i64().ok().cloned());
    let mut runs = HashMap::with_capacity(points.height());
    for row in 0..points.height() {
        let key = (ids.get(row).unwrap_or(-1), reps.get(row).unwrap_or(-1));
        if key.0 < 0 || key.1 < 0 {
            bail!("{}: row {row} has point_id {} and repetition {}; both must be >= 0", path.display(), key.0, key.1);
        }
        let r = ranks.as_ref().and_then(|c| c.get(row)).unwrap_or(i64::MAX);
        if runs.insert(key, r).is_some() {
            bail!(
                "{}: point {} repetition {} appears twice (a run counted twice would narrow every interval); the \
                 table was not written by one `experiment run` — recombine it with `--resume`, or remove the extra \
                 part directory under parts/",
                path.display(),
                key.0,
                key.1
            );
        }
    }
    Ok(runs)
}

/// Checks that every row of `df` belongs to a run, names ranks of that run and has no
/// negative time.
fn check_rows(
    dir: &Path,
    table: Table,
    df: &DataFrame,
    runs: &HashMap<(i64, i64), i64>,
    rank_columns: &[&str],
    time_columns: &[&str],
) -> anyhow::Result<()> {
    let path = dir.join(table.file_name());
    let (ids, reps) = (int_column(df, "point_id")?, int_column(df, "repetition")?);
    let ranks: Vec<_> = rank_columns.iter().map(|c| int_column(df, c)).collect::<anyhow::Result<_>>()?;
    for row in 0..df.height() {
        let key = (ids.get(row).unwrap_or(-1), reps.get(row).unwrap_or(-1));
        let Some(&of) = runs.get(&key) else {
            bail!(
                "{}: row {row} belongs to point {} repetition {}, which points.parquet does not have; the tables \
                 disagree (recombine them with `experiment run SWEEP --out {} --resume`)",
                path.display(),
                key.0,
                key.1,
                dir.display()
            );
        };
        for (name, column) in rank_columns.iter().zip(&ranks) {
            let rank = column.get(row).unwrap_or(-1);
            if !(0..of).contains(&rank) {
                bail!(
                    "{}: row {row} has {name} = {rank}, but point {} repetition {} ran on {of} ranks (valid: 0..{of}); \
                     the table is corrupted: rerun that point",
                    path.display(),
                    key.0,
                    key.1
                );
            }
        }
    }
    for name in time_columns {
        check_range(dir, table, df, name, 0, i64::MAX)?;
    }
    Ok(())
}

/// Checks that the non-null values of integer column `name` lie in `lo..hi`.
fn check_range(dir: &Path, table: Table, df: &DataFrame, name: &str, lo: i64, hi: i64) -> anyhow::Result<()> {
    let column = int_column(df, name)?;
    if let Some((row, v)) =
        column.iter().enumerate().find_map(|(i, v)| v.filter(|v| !(lo..hi).contains(v)).map(|v| (i, v)))
    {
        bail!(
            "{}: row {row} has {name} = {v}, outside {lo}..{hi}; the table is corrupted: rerun that point",
            dir.join(table.file_name()).display()
        );
    }
    Ok(())
}

fn int_column<'a>(df: &'a DataFrame, name: &str) -> anyhow::Result<&'a polars::prelude::Int64Chunked> {
    df.column(name)
        .with_context(|| format!("column {name} is missing"))?
        .i64()
        .with_context(|| format!("column {name} is not Int64"))
}
