//! Running one task's kernel, for every driver that runs kernels for real: the kernel
//! is timed on the driver's [`Clock`], a panic in it is caught and becomes the task's
//! failure with the panic's text, and the result is what the engine is told
//! ([`Finished::report`]). The worker threads that call this live in
//! [`crate::drivers::workers`].

use crate::dag::Dag;
use crate::drivers::panics::{self, Handling};
use crate::engine::{Engine, RunTask, TaskDone};
use crate::ids::TaskId;
use crate::kernel::Kernels;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// A driver's clock: ns since the run's common start (each driver decides what that
/// start is; the MPI driver puts every rank on rank 0's timeline).
pub trait Clock: Sync {
    /// Now, ns since the common start.
    fn now(&self) -> u64;
}

/// A kernel's outcome, as the engine is told it.
#[derive(Debug)]
pub enum Finished {
    /// It returned outputs (their shape is the engine's to check).
    Done(TaskDone),
    /// It returned an error or panicked.
    Failed {
        /// The task.
        task: TaskId,
        /// Why: the kernel's error, or `kernel panicked: TEXT`.
        reason: String,
    },
}

impl Finished {
    /// The task it is about.
    pub fn task(&self) -> TaskId {
        match self {
            Finished::Done(done) => done.task,
            Finished::Failed { task, .. } => *task,
        }
    }

    /// Tells `engine` (at `now`).
    pub fn report(self, engine: &mut Engine, now: u64) {
        match self {
            Finished::Done(done) => engine.handle_task_done(now, done),
            Finished::Failed { task, reason } => engine.handle_task_failed(task, reason),
        }
    }
}

/// Runs kernels of one DAG, timed on one clock.
///
/// ```
/// use dagwire_runtime::drivers::kernels::{Clock, Finished, KernelRunner};
/// use dagwire_runtime::engine::RunTask;
/// use dagwire_runtime::{DagBuilder, KernelId, Kernels, Payload, Rank, Task, TaskId, TaskSpec};
/// struct Ticks(std::sync::atomic::AtomicU64);
/// impl Clock for Ticks {
///     fn now(&self) -> u64 {
///         self.0.fetch_add(10, std::sync::atomic::Ordering::Relaxed)
///     }
/// }
/// struct Refuses;
/// impl Kernels for Refuses {
///     fn run(&self, _: &Task, _: Vec<Payload>) -> Result<Vec<Payload>, String> {
///         panic!("no {}", "way")
///     }
/// }
/// let mut b = DagBuilder::new(1);
/// b.add(TaskSpec::new(KernelId(0), Rank(0)).outputs(&[8]));
/// let (dag, clock) = (b.finish(), Ticks(Default::default()));
/// let runner = KernelRunner::new(&dag, &Refuses, &clock);
/// match runner.run(0, RunTask { task: TaskId(0), inputs: Vec::new() }) {
///     Finished::Failed { task, reason } => assert_eq!((task, reason.as_str()), (TaskId(0), "kernel panicked: no way")),
///     Finished::Done(_) => unreachable!(),
/// }
/// ```
#[derive(Clone, Copy)]
pub struct KernelRunner<'a> {
    dag: &'a Dag,
    kernels: &'a dyn Kernels,
    clock: &'a dyn Clock,
}

impl<'a> KernelRunner<'a> {
    /// A runner of `kernels` over `dag`'s tasks, timing them on `clock`.
    pub fn new(dag: &'a Dag, kernels: &'a dyn Kernels, clock: &'a dyn Clock) -> Self {
        KernelRunner { dag, kernels, clock }
    }

    /// The clock kernels are timed on.
    pub fn clock(&self) -> &'a dyn Clock {
        self.clock
    }

    /// Runs one task's kernel as `worker`; a panic becomes a failure with its text.
    /// While it runs, this thread [handles](panics::handling) the task.
    pub fn run(&self, worker: u32, job: RunTask) -> Finished {
        let task = self.dag.task(job.task);
        let before = panics::set_handling(Handling::Task(job.task));
        let start_ns = self.clock.now();
        let result = catch_unwind(AssertUnwindSafe(|| self.kernels.run(task, job.inputs)));
        let end_ns = self.clock.now();
        panics::set_handling(before);
        match result {
            Ok(Ok(outputs)) => Finished::Done(TaskDone { task: job.task, worker, start_ns, end_ns, outputs }),
            Ok(Err(reason)) => Finished::Failed { task: job.task, reason },
            Err(panic) => {
                Finished::Failed { task: job.task, reason: format!("kernel panicked: {}", panics::text(&*panic)) }
            }
        }
    }
}

impl std::fmt::Debug for KernelRunner<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelRunner").field("tasks", &self.dag.task_count()).finish_non_exhaustive()
    }
}
