//! What a driver is, as a registry entry: its name, parameters, what it offers
//! strategies, what it refuses, and how a point runs on it — in this process, or as a
//! job of one process per rank started by a launcher.
//!
//! Each driver declares one [`DriverInfo`] next to its code (`local::DRIVER`,
//! `mpi::DRIVER`, the simulator's `dagwire_sim::DRIVER`); the `experiment` command
//! lists them in one table and looks drivers up by name there. Nothing else branches
//! on a driver's name: adding a driver is its file plus one line in that table.

use crate::collective::Capability;
use crate::dag::Dag;
use crate::drivers::run::{Fault, Progress, RunError, RunOutcome};
use crate::ids::KernelId;
use crate::kernel::Kernels;
use crate::params::{ParamSpec, Params};
use crate::strategy::StrategyFactory;
use std::sync::Arc;
use std::time::Duration;

/// One registered driver.
#[derive(Debug)]
pub struct DriverInfo {
    /// Name used in sweep files (`grid.driver`).
    pub name: &'static str,
    /// One line on how ranks run.
    pub summary: &'static str,
    /// Parameters a sweep may set in `[grid.<driver>]`.
    pub params: fn() -> Vec<ParamSpec>,
    /// The engine actions it can execute (a strategy needing more is refused).
    pub offers: &'static [Capability],
    /// What this host offers the driver, one line for `experiment list drivers` (the
    /// libfabric driver: the providers libfabric reports here), or `None`. Looked up
    /// each time it is listed: it must be cheap and must not fail.
    pub host: fn() -> Option<String>,
    /// Refuses, before anything runs, a point this driver cannot run (a machine file
    /// that does not load, a rank count the machine cannot hold, a fault it cannot
    /// inject), naming the key at fault.
    pub check: fn(&DriverCheck<'_>) -> Result<(), CheckError>,
    /// How a point runs.
    pub launch: Launch,
}

/// A [`DriverInfo::host`] for drivers with nothing to say about the host.
pub fn nothing_about_host() -> Option<String> {
    None
}

/// What a driver's [`DriverInfo::check`] looks at.
#[derive(Clone, Copy, Debug)]
pub struct DriverCheck<'a> {
    /// The driver's parameters, defaults filled in.
    pub params: &'a Params,
    /// Ranks of the point.
    pub ranks: usize,
    /// Kernel workers per rank.
    pub workers: usize,
    /// The deliberate fault asked for, if any.
    pub fault: Option<Fault>,
}

/// Why a driver refuses a point, and which key to change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckError {
    /// The key at fault.
    pub key: CheckKey,
    /// What is wrong and what is allowed.
    pub reason: String,
}

/// Where a [`CheckError`] points in a sweep file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckKey {
    /// One of the driver's own parameters (`machine` is `grid.<driver>.machine`).
    Param(&'static str),
    /// An axis every point has (`ranks`, `workers`, `fault`, `progress`).
    Axis(&'static str),
}

impl CheckError {
    /// A refusal naming the driver's own parameter `key`.
    pub fn param(key: &'static str, reason: impl Into<String>) -> Self {
        CheckError { key: CheckKey::Param(key), reason: reason.into() }
    }

    /// A refusal naming the core axis `key` (`ranks`, `fault`, ...).
    pub fn axis(key: &'static str, reason: impl Into<String>) -> Self {
        CheckError { key: CheckKey::Axis(key), reason: reason.into() }
    }
}

/// A check that accepts every point.
pub fn accept_all(_: &DriverCheck<'_>) -> Result<(), CheckError> {
    Ok(())
}

/// The check of drivers that run kernels for real and can inject faults: a fault
/// corrupts a message between ranks, so a faulted point needs two ranks at least (on one
/// rank it would verify, silently unfaulted).
///
/// ```
/// use dagwire_runtime::drivers::registry::{DriverCheck, faults_need_two_ranks};
/// use dagwire_runtime::{Fault, Params};
/// let params = Params::default();
/// let check = |ranks, fault| faults_need_two_ranks(&DriverCheck { params: &params, ranks, workers: 1, fault });
/// assert!(check(1, None).is_ok() && check(2, Some(Fault::CorruptDataMessage { nth: 0 })).is_ok());
/// assert!(check(1, Some(Fault::CorruptDataMessage { nth: 0 })).unwrap_err().reason.contains("ranks >= 2"));
/// ```
pub fn faults_need_two_ranks(c: &DriverCheck<'_>) -> Result<(), CheckError> {
    if c.fault.is_some() && c.ranks < 2 {
        return Err(CheckError::axis(
            "fault",
            "a fault corrupts a message between ranks, and a 1-rank run sends none: use ranks >= 2 with it",
        ));
    }
    Ok(())
}

/// How a driver runs a point.
#[derive(Debug)]
pub enum Launch {
    /// Every rank runs inside this process.
    InProcess(fn(&RunRequest<'_>) -> Result<Executed, RunError>),
    /// Each point is a job of one process per rank, started by a launcher (`mpirun`,
    /// `srun`); every process runs the same program and joins the job.
    Job(JobDriver),
}

/// A driver whose points run as launched jobs.
#[derive(Debug)]
pub struct JobDriver {
    /// Joins the job this process was started in (initialises the transport). Call it
    /// once per process, first thing.
    pub join: fn() -> Result<Box<dyn JobRank>, RunError>,
    /// Ends every process of the job from anywhere (a panic hook), with exit code `code`.
    pub abort: fn(code: i32) -> !,
}

/// This process's place in a launched job.
pub trait JobRank {
    /// This process's rank.
    fn rank(&self) -> usize;
    /// Processes in the job.
    fn size(&self) -> usize;
    /// Runs one point as this rank of the job. Every rank calls it with the same
    /// request; rank 0 gets the outcome with every rank's trace and results, the others
    /// `None`. On `Err`, end the job with [`JobRank::abort`]: peers may wait forever.
    fn run(&self, req: &RunRequest<'_>) -> Result<Option<Executed>, RunError>;
    /// Ends every process of the job with exit code `code` (say why first).
    fn abort(&self, code: i32) -> !;
}

/// Everything a driver needs to run one point.
pub struct RunRequest<'a> {
    /// The workload's DAG, placed on `ranks` ranks.
    pub dag: &'a Arc<Dag>,
    /// Its kernels.
    pub kernels: &'a dyn Kernels,
    /// Names of its kernels (the simulator's compute rates are per name).
    pub kernel_name: &'a (dyn Fn(KernelId) -> &'static str + Sync),
    /// Builds each rank's strategy instance.
    pub strategy: StrategyFactory<'a>,
    /// The driver's own parameters, defaults filled in.
    pub params: &'a Params,
    /// Ranks.
    pub ranks: usize,
    /// Kernel workers per rank.
    pub workers: usize,
    /// How communication progresses while kernels run.
    pub progress: Progress,
    /// A rank making no progress this long fails the run with a diagnosis.
    pub timeout: Duration,
    /// A deliberate fault, if any.
    pub fault: Option<Fault>,
    /// Seed of the run's modelled randomness (the simulator's jitter).
    pub seed: u64,
    /// Told how far the run has got, now and then, by drivers that can say (the
    /// simulator: virtual time reached and events handled); others ignore it. It only
    /// watches: a run's outcome is the same with or without it.
    pub observer: Option<Observer<'a>>,
}

/// How far a running point has got: what a driver tells its [`RunRequest::observer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunProgress {
    /// Virtual time reached, ns (the simulator's clock).
    pub virtual_ns: u64,
    /// Events handled so far (task completions, message deliveries, wake-ups).
    pub events: u64,
    /// Wall time since the run's event loop started.
    pub wall: Duration,
}

/// Watches a run's [`RunProgress`] (a progress bar, a log line); called from the thread
/// running the point, so it should be quick.
pub type Observer<'a> = &'a (dyn Fn(RunProgress) + Sync);

/// A finished run and whether its kernels really ran (so its results can be verified).
#[derive(Debug)]
pub struct Executed {
    /// The run.
    pub outcome: RunOutcome,
    /// False when kernels were only costed (a cost-model simulation).
    pub kernels_ran: bool,
}

impl std::fmt::Debug for dyn JobRank {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JobRank {} of {}", self.rank(), self.size())
    }
}

impl JobDriver {
    /// The parameters every job driver takes for its launcher (`[grid.<driver>]`
    /// `launcher`, `launcher_args`, `job_timeout_s`), next to its own.
    pub fn launcher_params() -> Vec<ParamSpec> {
        vec![
            ParamSpec::text(
                "launcher",
                "auto",
                "the launcher that starts the ranks (mpirun, mpiexec, srun); auto: $DAGWIRE_MPI_LAUNCHER, else mpirun",
            ),
            ParamSpec::text(
                "launcher_args",
                "auto",
                "extra launcher arguments, split at spaces (e.g. \"--oversubscribe --bind-to none\"); auto: \
                 $DAGWIRE_MPI_LAUNCHER_ARGS (none with launcher = local), else none; none: none",
            ),
            ParamSpec::int(
                "job_timeout_s",
                1,
                7 * 24 * 3600,
                600,
                "wall-clock limit of one point's job, s; a job still running then is killed and the point fails",
            ),
        ]
    }
}
