//! Reading and writing one Parquet file, with errors that name the file.

use crate::schema::ColumnDoc;
use anyhow::{Context, bail};
use polars::prelude::{DataFrame, ParquetCompression, ParquetReader, ParquetWriter, SerReader, StatisticsOptions};
use std::fs::{self, File};
use std::path::{Path, PathBuf};

/// How a file is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A table users read: compressed (zstd), with column statistics.
    Table,
    /// A point's part file, read once when the parts are combined: uncompressed and
    /// without statistics, which cost most of the writing.
    Part,
}

/// Writes `df` to `path` (replacing it) and flushes it to disk.
pub(crate) fn write(path: &Path, df: &mut DataFrame, kind: Kind) -> anyhow::Result<()> {
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let file = (|| {
        let mut file = file;
        let writer = ParquetWriter::new(&mut file);
        let writer = match kind {
            Kind::Table => writer,
            Kind::Part => {
                writer.with_compression(ParquetCompression::Uncompressed).with_statistics(StatisticsOptions::empty())
            }
        };
        writer.finish(df)?;
        file.sync_all()?;
        anyhow::Ok(())
    })();
    file.with_context(|| format!("writing {}", path.display()))
}

/// Writes `df` to `path` atomically: into a temporary file next to it, then renamed
/// over it, so a reader sees the old file or the new one, never half of one.
pub(crate) fn write_atomic(path: &Path, df: &mut DataFrame) -> anyhow::Result<()> {
    let name = path.file_name().with_context(|| format!("{} has no file name", path.display()))?;
    let tmp: PathBuf = path.with_file_name(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
    let result = write(&tmp, df, Kind::Table).and_then(|()| {
        fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
    });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Reads the whole file at `path` and checks that it has the documented `columns`
/// with their documented types (other columns are allowed).
pub(crate) fn read(path: &Path, columns: &[ColumnDoc]) -> anyhow::Result<DataFrame> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    // The Parquet reader panics on some corrupted pages instead of failing: a corrupted
    // file is an error naming it, never a crash of the report.
    let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ParquetReader::new(file).finish()));
    let Ok(read) = read else {
        bail!("reading {}: its bytes are corrupted (the Parquet reader gave up); rerun the point", path.display());
    };
    let df = read.with_context(|| format!("reading {} (truncated, or not a Parquet file?)", path.display()))?;
    for doc in columns {
        let Ok(column) = df.column(doc.name) else {
            bail!(
                "{}: no column {:?}: the table was written by an older dagwire (rerun the sweep into a new directory to \
                 rewrite it), or it is not a dagwire results table",
                path.display(),
                doc.name
            );
        };
        if column.dtype() != &doc.data_type() {
            bail!("{}: column {:?} has type {}, expected {}", path.display(), doc.name, column.dtype(), doc.dtype);
        }
    }
    Ok(df)
}
