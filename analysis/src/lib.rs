//! # dagwire-analysis
//!
//! The results tables of dagwire runs: the documented Parquet schema
//! ([`schema`]), one point's results ([`PointRecord`], [`TraceRows`]), and the
//! results directory ([`tables`]): part files written as each point finishes, combined
//! into `points`, `tasks`, `transfers`, `messages` and `copies` tables, read back with polars.
//!
//! ```
//! use dagwire_analysis::{combine, read_points, write_point_parts, PointRecord};
//! let dir = tempfile::tempdir()?;
//! let point = PointRecord { makespan_ns: Some(1_000), verified: true, wall_s: 0.01, ..Default::default() };
//! write_point_parts(dir.path(), &point, None)?;
//! combine(dir.path())?;
//! let points = read_points(dir.path())?;
//! assert_eq!(points.column("makespan_ns")?.i64()?.get(0), Some(1_000));
//! # anyhow::Ok(())
//! ```

#![warn(missing_docs)]

pub mod compare;
pub mod figures;
pub mod integrity;
pub mod intervals;
pub mod osu;
mod parquet_file;
pub mod perfetto;
pub mod point;
pub mod point_summary;
pub mod report;
pub mod results_dir;
pub mod run_metrics;
pub mod schema;
pub mod stats;
pub mod table_thread;
pub mod table_writer;
pub mod tables;
pub mod trace_rows;

pub use point::PointRecord;
pub use results_dir::{Manifest, RESULTS_FORMAT, ResultsDir};
pub use run_metrics::RunMetrics;
pub use schema::{
    COPIES_COLUMNS, ColumnDoc, MESSAGES_COLUMNS, POINTS_COLUMNS, TASKS_COLUMNS, TRANSFERS_COLUMNS, Table,
    schema_markdown,
};
pub use stats::Spread;
pub use tables::{CombineSummary, PARTS_DIR, combine, finished_parts, read_points, read_table, write_point_parts};
pub use trace_rows::TraceRows;
