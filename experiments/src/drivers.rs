//! The drivers a sweep can name: one table of registry entries, each declared next to
//! its driver's code ([`DriverInfo`]). Adding a driver is its file plus one line here;
//! nothing else in the `experiment` command branches on a driver's name.

use dagwire_runtime::RunError;
#[cfg(not(feature = "mpi"))]
use dagwire_runtime::drivers::CheckError;
use dagwire_runtime::drivers::{DriverInfo, Executed, Launch, RunRequest};

/// Every driver, in the order `experiment list` shows them.
pub static REGISTRY: &[&DriverInfo] =
    &[&dagwire_runtime::drivers::local::DRIVER, &MPI, &LIBFABRIC, &dagwire_sim::DRIVER];

/// The MPI driver, or, in a binary built without the `mpi` feature, an entry that
/// refuses every point with what to do instead.
#[cfg(feature = "mpi")]
const MPI: DriverInfo = dagwire_runtime::drivers::mpi::DRIVER;
#[cfg(not(feature = "mpi"))]
const MPI: DriverInfo = DriverInfo {
    name: "mpi",
    summary: "one process per rank under an MPI launcher (not built into this binary: it was built without the \
              `mpi` feature)",
    params: dagwire_runtime::drivers::collectives_mode::mpi_params,
    offers: &[],
    host: dagwire_runtime::drivers::nothing_about_host,
    check: |_| {
        Err(CheckError::axis(
            "driver",
            "this experiment binary was built without the `mpi` feature; install an MPI (scripts/packages.txt) and \
             rebuild with default features",
        ))
    },
    launch: Launch::InProcess(|_| Err(RunError::Config("the mpi driver is not built into this binary".into()))),
};

/// The libfabric driver, or, in a binary built without the `fabric` feature, an entry
/// that refuses every point with what to do instead.
#[cfg(feature = "fabric")]
const LIBFABRIC: DriverInfo = dagwire_runtime::drivers::fabric::DRIVER;
#[cfg(not(feature = "fabric"))]
const LIBFABRIC: DriverInfo = DriverInfo {
    name: "libfabric",
    summary: "one process per rank, libfabric carries every byte (not built into this binary: it was built \
              without the `fabric` feature)",
    params: dagwire_runtime::drivers::JobDriver::launcher_params,
    offers: &[],
    host: dagwire_runtime::drivers::nothing_about_host,
    check: |_| {
        Err(dagwire_runtime::drivers::CheckError::axis(
            "driver",
            "this experiment binary was built without the `fabric` feature; install libfabric (scripts/packages.txt) \
             and rebuild with default features",
        ))
    },
    launch: Launch::InProcess(|_| Err(RunError::Config("the libfabric driver is not built into this binary".into()))),
};

/// Looks a driver up by name.
pub fn find(name: &str) -> Option<&'static DriverInfo> {
    REGISTRY.iter().copied().find(|d| d.name == name)
}

/// Runs a point in this process with `driver` (a job driver's points are launched
/// instead: [`crate::launcher`]).
pub fn execute_in_process(driver: &DriverInfo, req: &RunRequest<'_>) -> Result<Executed, RunError> {
    match &driver.launch {
        Launch::InProcess(run) => run(req),
        Launch::Job(_) => Err(RunError::Config(format!(
            "the {} driver runs each point as a job of its own: `experiment run` launches it, or run \
             `LAUNCHER -n RANKS experiment point SWEEP --point ID` inside an allocation",
            driver.name
        ))),
    }
}
