//! The combined tables written as a sweep runs, instead of by [`crate::combine`] at its
//! end.
//!
//! Each finished point's rows are appended to `tasks`, `transfers`, `messages` and
//! `copies` (one Parquet file each, written batch by batch into a temporary file next to
//! the table); `points` is small and is written at the end. The part files stay the
//! durable record ([`crate::write_point_parts`]): [`TableWriter::finish`] renames the
//! temporary files over the tables only if what was appended is exactly the complete
//! parts on disk, each once and in key order (so the rows come out as [`crate::combine`]
//! would sort them); otherwise it drops them and calls [`crate::combine`]. A resumed
//! sweep appends the earlier session's parts ([`TableWriter::append_part`]) in their
//! place in the key order.
//!
//! ```
//! use dagwire_analysis::table_writer::TableWriter;
//! use dagwire_analysis::{read_points, PointRecord};
//! let dir = tempfile::tempdir()?;
//! let mut writer = TableWriter::new(dir.path())?;
//! for id in 0..3 {
//!     let point = PointRecord { point_id: id, makespan_ns: Some(10), verified: true, ..Default::default() };
//!     writer.write_point(&point, None)?;
//! }
//! let finished = writer.finish()?;
//! assert_eq!((finished.summary.points, finished.fell_back), (3, None));
//! assert_eq!(read_points(dir.path())?.height(), 3);
//! # anyhow::Ok(())
//! ```

use crate::parquet_file;
use crate::tables::{
    CombineSummary, PointFrames, PointRecord, Table, TraceRows, combine, concat_sorted, point_frames, read_part,
    scan_parts, write_parts,
};
use anyhow::{Context, bail};
use polars::io::parquet::write::BatchedWriter;
use polars::prelude::{DataFrame, ParquetWriter, SchemaRef};
use std::fs::{self, File};
use std::path::{Path, PathBuf};

/// What marks a table's temporary file: `.<table>.parquet.append-<pid>`.
const APPEND_MARK: &str = ".append-";

/// Rows gathered before they are written as one row group (polars' default size).
const ROW_GROUP_ROWS: usize = 512 * 512;

/// How [`TableWriter::finish`] ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finished {
    /// Row counts of the tables written.
    pub summary: CombineSummary,
    /// Why the appended tables were not used and [`crate::combine`] wrote them instead;
    /// `None` when the appended ones were.
    pub fell_back: Option<String>,
}

/// Appends finished points to the combined tables of one results directory.
pub struct TableWriter {
    dir: PathBuf,
    /// `tasks`, `transfers`, `messages`, `copies`, in [`Table::ALL`] order after `points`.
    streams: Vec<Stream>,
    points: Vec<DataFrame>,
    appended: Vec<(u32, u32)>,
    /// Set once appending went wrong (a key out of order, a schema that changed): the
    /// rest is not appended and `finish` combines the parts.
    broken: Option<String>,
}

/// One table being appended to.
struct Stream {
    table: Table,
    tmp: PathBuf,
    /// A second handle of the temporary file, to flush it to disk at the end.
    file: Option<File>,
    writer: Option<BatchedWriter<File>>,
    /// The columns of the first point's rows, which every later point's must have.
    schema: Option<SchemaRef>,
    pending: Vec<DataFrame>,
    pending_rows: usize,
    rows: usize,
}

impl TableWriter {
    /// A writer for the tables of `dir` (which must exist); nothing is written until
    /// the first point. Temporary files a killed writer left in `dir` are removed (the
    /// caller holds the directory: one writer at a time).
    pub fn new(dir: &Path) -> anyhow::Result<Self> {
        if !dir.is_dir() {
            bail!("{} is not a directory", dir.display());
        }
        for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
            let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') && name.contains(APPEND_MARK) {
                fs::remove_file(entry.path())
                    .with_context(|| format!("removing the leftover {}", entry.path().display()))?;
            }
        }
        let streams = Table::ALL[1..]
            .iter()
            .map(|&table| Stream {
                table,
                tmp: dir.join(format!(".{}{APPEND_MARK}{}", table.file_name(), std::process::id())),
                file: None,
                writer: None,
                schema: None,
                pending: Vec::new(),
                pending_rows: 0,
                rows: 0,
            })
            .collect();
        Ok(Self { dir: dir.to_path_buf(), streams, points: Vec::new(), appended: Vec::new(), broken: None })
    }

    /// Writes the part files of a finished point (see [`crate::write_point_parts`]), then
    /// appends its rows to the tables.
    pub fn write_point(&mut self, point: &PointRecord, rows: Option<TraceRows<'_>>) -> anyhow::Result<()> {
        let key = (point.point_id, point.repetition);
        let mut frames = point_frames(point, rows)?;
        write_parts(&self.dir, key, &mut frames)?;
        self.append(key, frames)
    }

    /// Appends a point whose part files are already on disk (an earlier session's, or one
    /// a job wrote).
    pub fn append_part(&mut self, point_id: u32, repetition: u32) -> anyhow::Result<()> {
        let key = (point_id, repetition);
        if self.broken.is_some() {
            return Ok(());
        }
        let frames = read_part(&self.dir, key)?;
        self.append(key, frames)
    }

    fn append(&mut self, key: (u32, u32), frames: PointFrames) -> anyhow::Result<()> {
        if self.broken.is_some() {
            return Ok(());
        }
        if let Some(&last) = self.appended.last()
            && key <= last
        {
            self.broken = Some(format!("point {} repetition {} came after {last:?}", key.0, key.1));
            return Ok(());
        }
        let [points, rest @ ..] = frames;
        for (stream, df) in self.streams.iter_mut().zip(rest) {
            if let Some(why) = stream.append(df)? {
                self.broken = Some(why);
                return Ok(());
            }
        }
        self.points.push(points);
        self.appended.push(key);
        Ok(())
    }

    /// Finishes the tables: the appended ones if they are exactly the complete parts on
    /// disk, else [`crate::combine`]'s (which fails, as it does, on an incomplete part or
    /// none at all).
    pub fn finish(mut self) -> anyhow::Result<Finished> {
        let disk = scan_parts(&self.dir)?;
        let matches = disk.iter().all(|p| p.complete)
            && disk.len() == self.appended.len()
            && disk.iter().zip(&self.appended).all(|(p, k)| p.key == *k);
        let why = match self.broken.take() {
            Some(why) => Some(why),
            None if self.appended.is_empty() => Some("no point was appended".to_string()),
            None if !matches => Some(format!(
                "the parts on disk ({} complete of {}) are not the {} points appended",
                disk.iter().filter(|p| p.complete).count(),
                disk.len(),
                self.appended.len()
            )),
            None => None,
        };
        if let Some(why) = why {
            self.remove_temporaries();
            let summary = combine(&self.dir)?;
            return Ok(Finished { summary, fell_back: Some(why) });
        }
        let mut summary = CombineSummary::default();
        let points = std::mem::take(&mut self.points);
        let path = self.dir.join(Table::Points.file_name());
        let mut df = concat_sorted(points, Table::Points).with_context(|| format!("combining {}", path.display()))?;
        summary.points = df.height();
        for stream in &mut self.streams {
            stream.finish()?;
            *summary_rows(&mut summary, stream.table) = stream.rows;
        }
        for stream in &self.streams {
            let path = self.dir.join(stream.table.file_name());
            fs::rename(&stream.tmp, &path)
                .with_context(|| format!("renaming {} to {}", stream.tmp.display(), path.display()))?;
        }
        parquet_file::write_atomic(&path, &mut df)?;
        Ok(Finished { summary, fell_back: None })
    }

    fn remove_temporaries(&mut self) {
        for stream in &mut self.streams {
            stream.writer = None;
            stream.file = None;
            let _ = fs::remove_file(&stream.tmp);
        }
    }
}

impl Drop for TableWriter {
    /// A writer dropped without [`TableWriter::finish`] (an error, a panic) leaves no
    /// temporary file.
    fn drop(&mut self) {
        self.remove_temporaries();
    }
}

fn summary_rows(summary: &mut CombineSummary, table: Table) -> &mut usize {
    match table {
        Table::Points => &mut summary.points,
        Table::Tasks => &mut summary.tasks,
        Table::Transfers => &mut summary.transfers,
        Table::Messages => &mut summary.messages,
        Table::Copies => &mut summary.copies,
    }
}

impl Stream {
    /// Appends `df`; `Some(reason)` if it cannot be (its columns differ from the first
    /// point's).
    fn append(&mut self, df: DataFrame) -> anyhow::Result<Option<String>> {
        if let Some(schema) = &self.schema {
            if schema != df.schema() {
                return Ok(Some(format!(
                    "the {} columns of a point ({:?}) differ from the first point's ({:?})",
                    self.table.name(),
                    df.schema(),
                    schema
                )));
            }
        } else {
            let file = File::create(&self.tmp).with_context(|| format!("creating {}", self.tmp.display()))?;
            let handle = file.try_clone().with_context(|| format!("opening {}", self.tmp.display()))?;
            let writer = ParquetWriter::new(file)
                .batched(df.schema())
                .with_context(|| format!("starting {}", self.tmp.display()))?;
            self.writer = Some(writer);
            self.file = Some(handle);
            self.schema = Some(df.schema().clone());
        }
        self.rows += df.height();
        self.pending_rows += df.height();
        self.pending.push(df);
        if self.pending_rows >= ROW_GROUP_ROWS {
            self.flush()?;
        }
        Ok(None)
    }

    /// Writes the pending rows as row groups of at most [`ROW_GROUP_ROWS`].
    fn flush(&mut self) -> anyhow::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut frames = std::mem::take(&mut self.pending).into_iter();
        let mut df = frames.next().expect("pending is not empty");
        for more in frames {
            df.vstack_mut_owned(more)?;
        }
        self.pending_rows = 0;
        df.rechunk_mut();
        let writer = self.writer.as_mut().expect("a stream with pending rows has a writer");
        let mut offset = 0;
        while offset < df.height() {
            let len = ROW_GROUP_ROWS.min(df.height() - offset);
            writer.write_batch(&df.slice(offset as i64, len))?;
            offset += len;
        }
        Ok(())
    }

    fn finish(&mut self) -> anyhow::Result<()> {
        self.flush().with_context(|| format!("writing {}", self.tmp.display()))?;
        let writer = self.writer.take().expect("every table got a point");
        writer.finish().with_context(|| format!("finishing {}", self.tmp.display()))?;
        drop(writer);
        if let Some(file) = self.file.take() {
            file.sync_all().with_context(|| format!("flushing {}", self.tmp.display()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
