//! A [`TableWriter`] on a thread of its own, so a sweep runs its next point while the
//! last one's rows are turned into part files and appended to the tables.
//!
//! The sweep hands over each finished point with its trace ([`OwnedRows`]); at most one
//! point waits in line, so a sweep faster than its writer waits for it instead of
//! holding every trace in memory. The first error stops the thread; the next call
//! returns it. Dropping a [`TableThread`] without [`TableThread::finish`] waits for the
//! points handed over to be in their part files and leaves the tables alone.
//!
//! ```
//! use dagwire_analysis::table_thread::TableThread;
//! use dagwire_analysis::{read_points, PointRecord};
//! let dir = tempfile::tempdir()?;
//! let mut thread = TableThread::start(dir.path())?;
//! thread.write_point(PointRecord { point_id: 0, verified: true, ..Default::default() }, None)?;
//! let finished = thread.finish()?;
//! assert_eq!((finished.summary.points, finished.fell_back), (1, None));
//! assert_eq!(read_points(dir.path())?.height(), 1);
//! # anyhow::Ok(())
//! ```

use crate::table_writer::{Finished, TableWriter};
use crate::tables::{PointRecord, TraceRows};
use anyhow::{Context, anyhow};
use dagwire_runtime::trace::TransferRecord;
use dagwire_runtime::{Dag, KernelId, Trace};
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

/// What a finished run recorded, owned so that it can go to the writer's thread: the
/// owned form of [`TraceRows`].
pub struct OwnedRows {
    /// The merged trace of the run.
    pub trace: Trace,
    /// Its transfers, phases joined (`trace.transfers(bytes_of)`).
    pub transfers: Vec<TransferRecord>,
    /// The name of each kernel id (an id past the end is named `"?"`).
    pub kernel_names: Vec<&'static str>,
    /// The DAG that ran, for `chain_ns`; `None` leaves that column null.
    pub dag: Option<Arc<Dag>>,
}

impl OwnedRows {
    /// `trace` with its transfers and DAG, naming the kernels its tasks ran with `kernel_name`.
    ///
    /// ```
    /// use dagwire_analysis::table_thread::OwnedRows;
    /// use dagwire_runtime::trace::TaskRecord;
    /// use dagwire_runtime::{KernelId, Rank, TaskId, Trace};
    /// let mut trace = Trace::default();
    /// let task = TaskRecord { task: TaskId(0), kernel: KernelId(2), rank: Rank(0), worker: 0, start_ns: 0, end_ns: 5, flops: 0.0 };
    /// trace.tasks.push(task);
    /// let rows = OwnedRows::new(trace, Vec::new(), &|k| ["a", "b", "c"][k.0 as usize], None);
    /// assert_eq!(rows.kernel_names, ["a", "b", "c"]);
    /// ```
    pub fn new(
        trace: Trace,
        transfers: Vec<TransferRecord>,
        kernel_name: &dyn Fn(KernelId) -> &'static str,
        dag: Option<Arc<Dag>>,
    ) -> Self {
        let kernels = trace.tasks.iter().map(|t| usize::from(t.kernel.0) + 1).max().unwrap_or(0);
        let kernel_names = (0..kernels).map(|k| kernel_name(KernelId(k as u16))).collect();
        Self { trace, transfers, kernel_names, dag }
    }
}

enum Job {
    Point(Box<(PointRecord, Option<OwnedRows>)>),
    Part(u32, u32),
    Finish,
}

/// The writer's thread; see the module documentation.
pub struct TableThread {
    sender: Option<SyncSender<Job>>,
    handle: Option<JoinHandle<anyhow::Result<Option<Finished>>>>,
}

impl TableThread {
    /// Starts a writer for the tables of `dir` (which must exist).
    pub fn start(dir: &Path) -> anyhow::Result<Self> {
        let writer = TableWriter::new(dir)?;
        let (sender, receiver) = sync_channel(1);
        let handle = std::thread::Builder::new()
            .name("dagwire-tables".into())
            .spawn(move || serve(writer, receiver))
            .context("starting the table writer's thread")?;
        Ok(Self { sender: Some(sender), handle: Some(handle) })
    }

    /// Hands over a finished point: its part files and its rows of the tables are
    /// written on the thread ([`TableWriter::write_point`]).
    pub fn write_point(&mut self, point: PointRecord, rows: Option<OwnedRows>) -> anyhow::Result<()> {
        self.send(Job::Point(Box::new((point, rows))))
    }

    /// Appends a point whose part files are on disk ([`TableWriter::append_part`]).
    pub fn append_part(&mut self, point_id: u32, repetition: u32) -> anyhow::Result<()> {
        self.send(Job::Part(point_id, repetition))
    }

    /// Waits for every point handed over, then finishes the tables ([`TableWriter::finish`]).
    pub fn finish(mut self) -> anyhow::Result<Finished> {
        self.send(Job::Finish)?;
        self.join()?.ok_or_else(|| anyhow!("the table writer stopped before finishing"))
    }

    fn send(&mut self, job: Job) -> anyhow::Result<()> {
        let sent = self.sender.as_ref().map(|s| s.send(job).is_ok());
        if sent == Some(true) {
            return Ok(());
        }
        // The thread stopped on an error (or was joined already): its result says why.
        self.join()?;
        Err(anyhow!("the table writer stopped"))
    }

    fn join(&mut self) -> anyhow::Result<Option<Finished>> {
        self.sender = None;
        let Some(handle) = self.handle.take() else {
            return Ok(None);
        };
        match handle.join() {
            Ok(result) => result,
            Err(panic) => {
                Err(anyhow!("the table writer panicked: {}", dagwire_runtime::drivers::panics::text(&*panic)))
            }
        }
    }
}

impl Drop for TableThread {
    fn drop(&mut self) {
        let _ = self.join();
    }
}

/// The thread's loop: jobs in order until `Finish`, or the sender's end.
fn serve(mut writer: TableWriter, jobs: Receiver<Job>) -> anyhow::Result<Option<Finished>> {
    for job in jobs {
        match job {
            Job::Point(point) => match *point {
                (point, None) => writer.write_point(&point, None)?,
                (point, Some(rows)) => {
                    let kernel_name = |k: KernelId| rows.kernel_names.get(usize::from(k.0)).copied().unwrap_or("?");
                    let view = TraceRows {
                        trace: &rows.trace,
                        transfers: &rows.transfers,
                        kernel_name: &kernel_name,
                        dag: rows.dag.as_deref(),
                    };
                    writer.write_point(&point, Some(view))?;
                }
            },
            Job::Part(id, rep) => writer.append_part(id, rep)?,
            Job::Finish => return writer.finish().map(Some),
        }
    }
    Ok(None)
}
