//! The drivers a sweep can name, their parameters, and how a point is executed on each.

use dagwire_runtime::TraceLevel;
use dagwire_runtime::collective::Capability;
use dagwire_runtime::local::{self, LocalConfig};
use dagwire_runtime::{Fault, ParamSpec, Params, Progress, RunError, RunOutcome, StrategyFactory};
use dagwire_sim::driver::{SimConfig, SimKernels};
use dagwire_sim::machine::{Fidelity, Machine};
use dagwire_workloads::Workload;
use std::time::Duration;

/// One registered driver.
#[derive(Debug)]
pub struct DriverInfo {
    /// Name used in sweep files.
    pub name: &'static str,
    /// One line on how ranks run.
    pub summary: &'static str,
    /// Parameters a sweep may set in `[grid.<driver>]`.
    pub params: fn() -> Vec<ParamSpec>,
    /// The engine actions it can execute (a strategy needing more is refused).
    pub offers: &'static [Capability],
}

/// Every driver, in the order `experiment list` shows them.
pub static REGISTRY: &[DriverInfo] = &[
    DriverInfo {
        name: "local",
        summary: "ranks are threads of this process, messages move through in-process channels, kernels run for real; needs nothing installed",
        params: Vec::new,
        offers: local::CAPABILITIES,
    },
    DriverInfo {
        name: "mpi",
        summary: "one process per rank: each point is an MPI job (`mpirun -n R experiment point ...`, launcher configurable), kernels run for real; needs an MPI library",
        params: crate::launcher::params,
        offers: MPI_CAPABILITIES,
    },
    DriverInfo {
        name: "sim",
        summary: "discrete-event simulation of a machine model in virtual time (any rank count); kernels run for real or are only costed",
        params: sim_params,
        offers: dagwire_sim::driver::CAPABILITIES,
    },
];

/// What the MPI driver offers (nothing, in a binary built without the `mpi` feature:
/// sweeps naming it are then refused at check time).
#[cfg(feature = "mpi")]
const MPI_CAPABILITIES: &[Capability] = dagwire_runtime::mpi::CAPABILITIES;
#[cfg(not(feature = "mpi"))]
const MPI_CAPABILITIES: &[Capability] = &[];

fn sim_params() -> Vec<ParamSpec> {
    vec![
        ParamSpec::text(
            "machine",
            "ib-hdr-fattree",
            "a machine preset (experiment list machines) or a path to a machine TOML file",
        ),
        ParamSpec::choice(
            "fidelity",
            &["machine", "analytic", "flow"],
            "machine",
            "network model: the machine file's choice, analytic (LogGP, no link contention) or flow (max-min link sharing)",
        ),
        ParamSpec::choice(
            "kernels",
            &["run", "model"],
            "run",
            "run: execute kernels so results verify; model: cost model only (large sizes), verification skipped",
        ),
        ParamSpec::choice(
            "trace",
            &["full", "counts"],
            "full",
            "full: every task, message and transfer phase in the tables; counts: only the points table's counts (runs \
             whose records would not fit in memory, about 170 bytes per task)",
        ),
    ]
}

/// Looks a driver up by name.
pub fn find(name: &str) -> Option<&'static DriverInfo> {
    REGISTRY.iter().find(|d| d.name == name)
}

/// How to execute one run, whatever the driver.
pub struct Execution<'a> {
    /// Driver name from [`REGISTRY`].
    pub driver: &'a str,
    /// The driver's parameters (defaults filled in).
    pub params: &'a Params,
    /// Ranks.
    pub ranks: usize,
    /// Kernel workers per rank.
    pub workers: usize,
    /// Progress mode.
    pub progress: Progress,
    /// No-progress timeout.
    pub timeout: Duration,
    /// A deliberate fault, if any.
    pub fault: Option<Fault>,
    /// Seed for the run's modelled randomness (the simulator's jitter).
    pub seed: u64,
}

/// A finished run and whether its kernels really ran (so it can be verified).
pub struct Executed {
    /// The run.
    pub outcome: RunOutcome,
    /// False for cost-model-only simulations.
    pub kernels_ran: bool,
}

/// Runs a workload with the named driver.
pub fn execute(
    exec: &Execution<'_>,
    workload: &dyn Workload,
    strategy: StrategyFactory<'_>,
) -> Result<Executed, RunError> {
    match exec.driver {
        "local" => {
            let cfg = LocalConfig {
                ranks: exec.ranks,
                workers: exec.workers,
                progress: exec.progress,
                timeout: exec.timeout,
                fault: exec.fault,
            };
            let outcome = local::run(workload.dag(), workload.kernels(), strategy, &cfg)?;
            Ok(Executed { outcome, kernels_ran: true })
        }
        "sim" => {
            if exec.fault.is_some() {
                return Err(RunError::Config("the sim driver does not inject faults; use driver = \"local\"".into()));
            }
            let machine = sim_machine(exec.params).map_err(RunError::Config)?;
            let run_kernels = exec.params.str("kernels") == "run";
            let cfg = SimConfig {
                ranks: exec.ranks,
                workers: exec.workers,
                run_kernels,
                seed: exec.seed,
                trace: if exec.params.str("trace") == "counts" { TraceLevel::Counts } else { TraceLevel::Full },
            };
            let name = |k| workload.kernel_name(k);
            let kernels = SimKernels { kernels: workload.kernels(), name: &name };
            let out = dagwire_sim::driver::run(workload.dag(), &kernels, strategy, &machine, cfg)?;
            Ok(Executed { outcome: out.run, kernels_ran: run_kernels })
        }
        "mpi" => Err(RunError::Config(
            "the mpi driver runs each point as an MPI job of its own: `experiment run` launches it, or run \
             `mpirun -n RANKS experiment point SWEEP --point ID` inside an allocation"
                .into(),
        )),
        other => Err(RunError::Config(format!("driver `{other}` is not built into this binary"))),
    }
}

/// The machine a sim point runs on, with its fidelity override applied.
pub fn sim_machine(params: &Params) -> Result<Machine, String> {
    let mut machine = dagwire_sim::machine::load_machine(params.str("machine")).map_err(|e| e.to_string())?;
    match params.str("fidelity") {
        "analytic" => machine.fidelity = Fidelity::Analytic,
        "flow" => machine.fidelity = Fidelity::Flow,
        _ => {}
    }
    Ok(machine)
}
