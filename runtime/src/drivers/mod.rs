//! The drivers: they execute the engine's actions with real I/O (threads, MPI) or in an
//! in-memory harness, and feed what happened back. Each is a thin adapter over the
//! sans-IO [`crate::core`]; what they share is written once here.
//!
//! - [`run`]: what every driver takes and returns (settings, outcome, errors);
//! - [`registry`]: a driver as a registry entry ([`DriverInfo`]): name, parameters,
//!   capabilities, and how a point runs (in this process, or as a launched job);
//! - [`kernels`]: running one task's kernel (timing, panic capture), for every driver
//!   that runs kernels; [`workers`]: the kernel worker threads of a rank and the cheap
//!   hand-off to them; [`fault`]: deliberate faults injected into transfers;
//!   [`panics`]: what a rank was handling when it panicked;
//! - [`collectives_mode`]: `collectives = native | runtime`, whose collective
//!   algorithms a driver with native collectives (mpi) runs;
//! - [`local`]: ranks as threads of one process (the embedded default);
//! - [`launch`]: dagwire's own launcher of a job's processes on one host (no MPI);
//! - [`mpi`] (cargo feature `mpi`): one process per rank under an MPI launcher;
//! - [`fabric`] (cargo feature `fabric`): one process per rank, libfabric carrying
//!   every byte (`wire` is the byte layout both put on the wire, `rank_loop` the
//!   progress loop both run);
//! - [`testing`]: an in-memory N-rank harness with simulated time, for engine and
//!   strategy tests;
//! - [`probe`]: a strategy that joins every kind of collective and checks what each
//!   brings, for driver tests.
//!
//! The simulator's driver lives in the `dagwire-sim` crate.

pub mod collectives_mode;
#[cfg(feature = "fabric")]
pub mod fabric;
pub mod fault;
pub mod kernels;
pub mod launch;
pub mod local;
#[cfg(feature = "mpi")]
pub mod mpi;
pub mod panics;
pub mod probe;
#[cfg(any(feature = "mpi", feature = "fabric"))]
pub(crate) mod rank_loop;
pub mod registry;
pub mod run;
pub mod testing;
#[cfg(any(feature = "mpi", feature = "fabric"))]
pub(crate) mod wire;
pub mod workers;

pub use collectives_mode::CollectivesMode;
pub use registry::{
    CheckError, CheckKey, DriverCheck, DriverInfo, Executed, JobDriver, JobRank, Launch, Observer, RunProgress,
    RunRequest, nothing_about_host,
};
pub use run::{Fault, PROGRESS_NOTE, Progress, RunError, RunOutcome, note_progress, online_cores, usable_cores};
