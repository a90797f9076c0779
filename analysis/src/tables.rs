//! The results tables of a run: per-point part files written as points finish, and
//! the five combined tables.
//!
//! ```text
//! DIR/parts/<point_id>-<repetition>/{point,tasks,transfers,messages,copies}.parquet
//! DIR/points.parquet  DIR/tasks.parquet  DIR/transfers.parquet  DIR/messages.parquet  DIR/copies.parquet
//! ```
//!
//! A part directory is written into `DIR/parts/.tmp-*` and then renamed, so a part
//! directory with a plain name is complete; [`finished_parts`] lists them for
//! `--resume`. [`combine`] concatenates the parts into the combined tables, each
//! written to a temporary file and renamed. The columns are documented in
//! [`crate::schema`].
//!
//! ```
//! use dagwire_analysis::tables::{combine, finished_parts, read_points, write_point_parts, PointRecord};
//! use dagwire_runtime::ParamValue;
//! let dir = tempfile::tempdir()?;
//! let params = vec![("workload".to_string(), ParamValue::Str("cholesky".into()))];
//! let failed = PointRecord::failed(0, 0, params, "out of memory", 0.2);
//! write_point_parts(dir.path(), &failed, None)?;
//! assert!(finished_parts(dir.path())?.contains(&(0, 0)));
//! let summary = combine(dir.path())?;
//! assert_eq!((summary.points, summary.tasks), (1, 0));
//! let points = read_points(dir.path())?;
//! assert_eq!(points.column("error")?.str()?.get(0), Some("out of memory"));
//! # anyhow::Ok(())
//! ```

use crate::parquet_file;
use crate::trace_rows::{copies_frame, messages_frame, tasks_frame, transfers_frame};
use anyhow::{Context, bail};
use polars::prelude::{DataFrame, IntoLazy, LazyFrame, SortMultipleOptions, UnionArgs, concat};
use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

pub use crate::point::PointRecord;
pub use crate::schema::{
    COPIES_COLUMNS, ColumnDoc, MESSAGES_COLUMNS, POINTS_COLUMNS, TASKS_COLUMNS, TRANSFERS_COLUMNS, Table,
    schema_markdown,
};
pub use crate::trace_rows::TraceRows;

/// Name of the directory, inside a results directory, that holds the part directories.
///
/// ```
/// assert_eq!(dagwire_analysis::tables::PARTS_DIR, "parts");
/// ```
pub const PARTS_DIR: &str = "parts";

/// Prefix of part directories still being written; they are ignored when reading.
const TMP_PREFIX: &str = ".tmp-";

/// Writes the part files of one finished point (one repetition) under
/// `dir/parts/<point_id>-<repetition>/`, creating `dir` if needed. `rows` is `None`
/// for a failed point: its `tasks`, `transfers`, `messages` and `copies` files are then empty
/// tables with the documented columns.
///
/// The files are written into `dir/parts/.tmp-...` and the directory is then renamed,
/// so a part directory is either complete or absent. An existing part directory for
/// the same point and repetition is replaced.
///
/// ```
/// use dagwire_analysis::tables::{finished_parts, write_point_parts, PointRecord, TraceRows};
/// use dagwire_runtime::trace::TaskRecord;
/// use dagwire_runtime::{KernelId, Rank, TaskId, Trace};
/// let dir = tempfile::tempdir()?;
/// let mut trace = Trace::default();
/// trace.tasks.push(TaskRecord {
///     task: TaskId(0), kernel: KernelId(0), rank: Rank(0), worker: 0, start_ns: 0, end_ns: 50, flops: 1e3,
/// });
/// let transfers = trace.transfers(|_| 0);
/// let rows = TraceRows { trace: &trace, transfers: &transfers, kernel_name: &|_| "potrf", dag: None };
/// let mut point = PointRecord { point_id: 7, makespan_ns: Some(50), verified: true, ..Default::default() };
/// point.count_trace(&trace);
/// write_point_parts(dir.path(), &point, Some(rows))?;
/// assert!(dir.path().join("parts/7-0/tasks.parquet").is_file());
/// assert_eq!(finished_parts(dir.path())?.into_iter().collect::<Vec<_>>(), [(7, 0)]);
/// # anyhow::Ok(())
/// ```
pub fn write_point_parts(dir: &Path, point: &PointRecord, rows: Option<TraceRows<'_>>) -> anyhow::Result<()> {
    let mut frames = point_frames(point, rows)?;
    write_parts(dir, (point.point_id, point.repetition), &mut frames)
}

/// One point's rows of every table, in [`Table::ALL`] order, each in its table's order.
pub(crate) type PointFrames = [DataFrame; 5];

/// The rows of one finished point (one repetition) in every table; see [`write_point_parts`].
pub(crate) fn point_frames(point: &PointRecord, rows: Option<TraceRows<'_>>) -> anyhow::Result<PointFrames> {
    let (id, rep) = (point.point_id, point.repetition);
    let rows = rows.as_ref();
    let frame = |table: Table| {
        match table {
            Table::Points => point.to_frame(),
            Table::Tasks => tasks_frame(id, rep, rows),
            Table::Transfers => transfers_frame(id, rep, rows),
            Table::Messages => messages_frame(id, rep, rows),
            Table::Copies => copies_frame(id, rep, rows),
        }
        .with_context(|| format!("building the {} rows of point {id} repetition {rep}", table.name()))
    };
    Ok([
        frame(Table::Points)?,
        frame(Table::Tasks)?,
        frame(Table::Transfers)?,
        frame(Table::Messages)?,
        frame(Table::Copies)?,
    ])
}

/// Writes `frames` as the part directory of `key` (see [`write_point_parts`]).
pub(crate) fn write_parts(dir: &Path, key: (u32, u32), frames: &mut PointFrames) -> anyhow::Result<()> {
    let (id, rep) = key;
    let parts = dir.join(PARTS_DIR);
    fs::create_dir_all(&parts).with_context(|| format!("creating {}", parts.display()))?;
    let done = parts.join(part_name(id, rep));
    let tmp = parts.join(format!("{TMP_PREFIX}{}-{}", part_name(id, rep), std::process::id()));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).with_context(|| format!("removing the leftover {}", tmp.display()))?;
    }
    fs::create_dir(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let written = (|| {
        for (table, df) in Table::ALL.into_iter().zip(frames.iter_mut()) {
            parquet_file::write(&tmp.join(table.part_file_name()), df, parquet_file::Kind::Part)?;
        }
        if done.exists() {
            fs::remove_dir_all(&done).with_context(|| format!("replacing {}", done.display()))?;
        }
        fs::rename(&tmp, &done).with_context(|| format!("renaming {} to {}", tmp.display(), done.display()))
    })();
    if written.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    written.with_context(|| format!("writing the results of point {id} repetition {rep} under {}", dir.display()))
}

/// Reads the part directory of `key` under `dir`, every file checked against its
/// table's documented columns.
pub(crate) fn read_part(dir: &Path, key: (u32, u32)) -> anyhow::Result<PointFrames> {
    let path = dir.join(PARTS_DIR).join(part_name(key.0, key.1));
    let read = |table: Table| parquet_file::read(&path.join(table.part_file_name()), table.columns());
    Ok([
        read(Table::Points)?,
        read(Table::Tasks)?,
        read(Table::Transfers)?,
        read(Table::Messages)?,
        read(Table::Copies)?,
    ])
}

/// The `(point_id, repetition)` of every complete part directory under `dir/parts`,
/// for `--resume`. Directories still being written (`.tmp-*`), incomplete ones and
/// other names are left out; a `dir` without `parts/` has none.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// assert!(dagwire_analysis::finished_parts(dir.path())?.is_empty());
/// assert!(dagwire_analysis::finished_parts(&dir.path().join("missing")).is_err());
/// # anyhow::Ok(())
/// ```
pub fn finished_parts(dir: &Path) -> anyhow::Result<BTreeSet<(u32, u32)>> {
    if !dir.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    Ok(scan_parts(dir)?.into_iter().filter(|p| p.complete).map(|p| p.key).collect())
}

/// Row counts of the combined tables.
///
/// ```
/// use dagwire_analysis::tables::{CombineSummary, Table};
/// let s = CombineSummary { points: 2, tasks: 30, transfers: 4, messages: 9, copies: 0 };
/// assert_eq!(s.rows(Table::Tasks), 30);
/// assert_eq!(s.to_string(), "2 points, 30 tasks, 4 transfers, 9 messages, 0 copies");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CombineSummary {
    /// Rows of `points.parquet` (one per point and repetition).
    pub points: usize,
    /// Rows of `tasks.parquet`.
    pub tasks: usize,
    /// Rows of `transfers.parquet`.
    pub transfers: usize,
    /// Rows of `messages.parquet`.
    pub messages: usize,
    /// Rows of `copies.parquet`.
    pub copies: usize,
}

impl CombineSummary {
    /// The row count of `table`.
    ///
    /// ```
    /// use dagwire_analysis::{CombineSummary, Table};
    /// let s = CombineSummary { messages: 5, ..Default::default() };
    /// assert_eq!((s.rows(Table::Messages), s.rows(Table::Points)), (5, 0));
    /// ```
    pub fn rows(&self, table: Table) -> usize {
        match table {
            Table::Points => self.points,
            Table::Tasks => self.tasks,
            Table::Transfers => self.transfers,
            Table::Messages => self.messages,
            Table::Copies => self.copies,
        }
    }

    fn rows_mut(&mut self, table: Table) -> &mut usize {
        match table {
            Table::Points => &mut self.points,
            Table::Tasks => &mut self.tasks,
            Table::Transfers => &mut self.transfers,
            Table::Messages => &mut self.messages,
            Table::Copies => &mut self.copies,
        }
    }
}

impl fmt::Display for CombineSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all: Vec<String> = Table::ALL.iter().map(|&t| format!("{} {}", self.rows(t), t.name())).collect();
        f.write_str(&all.join(", "))
    }
}

/// Concatenates every part under `dir/parts` into `dir/{points,tasks,transfers,messages,copies}.parquet`,
/// replacing them. Points with different parameters are concatenated diagonally (a
/// parameter a point does not have is null there); in `points` the columns are
/// `point_id`, `repetition`, the parameters in order of first appearance, then the
/// fixed metrics. Each table is sorted by [`Table::sort_keys`].
///
/// Fails, naming the file or directory, if `dir` has no parts, a part directory is
/// incomplete, or a part file cannot be read.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let err = dagwire_analysis::combine(dir.path()).unwrap_err();
/// assert!(format!("{err:#}").contains("parts"));
/// # anyhow::Ok(())
/// ```
pub fn combine(dir: &Path) -> anyhow::Result<CombineSummary> {
    if !dir.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    let parts_dir = dir.join(PARTS_DIR);
    if !parts_dir.is_dir() {
        bail!("{} is not a dagwire results directory: it has no {PARTS_DIR}/", dir.display());
    }
    let parts = scan_parts(dir)?;
    if let Some(p) = parts.iter().find(|p| !p.complete) {
        bail!("{} is incomplete (missing part files); delete it and run the point again (--resume)", p.path.display());
    }
    if parts.is_empty() {
        bail!("{} holds no finished points: nothing to combine", parts_dir.display());
    }
    let mut summary = CombineSummary::default();
    for table in Table::ALL {
        let frames = parts
            .iter()
            .map(|p| parquet_file::read(&p.path.join(table.part_file_name()), table.columns()))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let path = dir.join(table.file_name());
        let mut df = concat_sorted(frames, table).with_context(|| format!("combining {}", path.display()))?;
        *summary.rows_mut(table) = df.height();
        parquet_file::write_atomic(&path, &mut df)?;
    }
    Ok(summary)
}

/// Reads `dir/points.parquet`, written by [`combine`].
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let err = dagwire_analysis::read_points(dir.path()).unwrap_err();
/// assert!(format!("{err:#}").contains("points.parquet"));
/// # anyhow::Ok(())
/// ```
pub fn read_points(dir: &Path) -> anyhow::Result<DataFrame> {
    read_table(dir, Table::Points)
}

/// Reads one combined table of a results directory, checking that its documented
/// columns are there with their documented types. Errors name the file.
///
/// ```
/// use dagwire_analysis::tables::{read_table, Table};
/// let err = read_table(std::path::Path::new("/nonexistent"), Table::Tasks).unwrap_err();
/// assert!(format!("{err:#}").contains("/nonexistent"));
/// ```
pub fn read_table(dir: &Path, table: Table) -> anyhow::Result<DataFrame> {
    let path = dir.join(table.file_name());
    if !dir.is_dir() {
        bail!("cannot read {}: {} is not a directory", path.display(), dir.display());
    }
    if !path.exists() {
        if dir.join(PARTS_DIR).is_dir() {
            bail!("{} does not exist: the parts of this run were not combined yet", path.display());
        }
        bail!("{} does not exist: {} is not a dagwire results directory", path.display(), dir.display());
    }
    parquet_file::read(&path, table.columns())
}

/// One directory under `parts/` named like a part.
pub(crate) struct Part {
    pub(crate) key: (u32, u32),
    pub(crate) path: PathBuf,
    pub(crate) complete: bool,
}

fn part_name(point_id: u32, repetition: u32) -> String {
    format!("{point_id}-{repetition}")
}

fn parse_part_name(name: &str) -> Option<(u32, u32)> {
    let (id, rep) = name.split_once('-')?;
    Some((id.parse().ok()?, rep.parse().ok()?))
}

/// The part directories of `dir`, sorted by key (none if there is no `parts/`).
pub(crate) fn scan_parts(dir: &Path) -> anyhow::Result<Vec<Part>> {
    let parts_dir = dir.join(PARTS_DIR);
    if !parts_dir.exists() {
        return Ok(Vec::new());
    }
    let mut parts = Vec::new();
    for entry in fs::read_dir(&parts_dir).with_context(|| format!("listing {}", parts_dir.display()))? {
        let entry = entry.with_context(|| format!("listing {}", parts_dir.display()))?;
        let name = entry.file_name();
        let Some(key) = name.to_str().filter(|n| !n.starts_with('.')).and_then(parse_part_name) else {
            continue;
        };
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let complete = Table::ALL.iter().all(|t| path.join(t.part_file_name()).is_file());
        parts.push(Part { key, path, complete });
    }
    parts.sort_by_key(|p| p.key);
    Ok(parts)
}

/// Diagonal concatenation of `frames`, sorted by the table's keys; for `points`, the
/// parameter columns are moved between the identifiers and the metrics.
pub(crate) fn concat_sorted(frames: Vec<DataFrame>, table: Table) -> anyhow::Result<DataFrame> {
    let lazy: Vec<LazyFrame> = frames.into_iter().map(|df| df.lazy()).collect();
    let args = UnionArgs { diagonal: true, to_supertypes: true, rechunk: true, ..Default::default() };
    let sort = SortMultipleOptions::default().with_maintain_order(true);
    let df = concat(lazy, args)?.sort(table.sort_keys().iter().copied(), sort).collect()?;
    if table != Table::Points {
        return Ok(df);
    }
    let fixed = |name: &str| POINTS_COLUMNS.iter().any(|c| c.name == name);
    let params = df.get_column_names().into_iter().filter(|n| !fixed(n.as_str())).map(|n| n.to_string());
    let order: Vec<String> = ["point_id", "repetition"]
        .into_iter()
        .map(String::from)
        .chain(params)
        .chain(POINTS_COLUMNS[2..].iter().map(|c| c.name.to_string()))
        .collect();
    Ok(df.select(order)?)
}

#[cfg(test)]
mod tests;
