//! The `sim` driver's registry entry: its parameters (`[grid.sim]`), the check that
//! loads the machine and fits the ranks on it before anything runs, and how a point
//! runs (every rank in this process, in virtual time).

use crate::driver::{self, SimConfig, SimKernels};
use crate::machine::{Fidelity, Machine};
use crate::network::Network;
use dagwire_runtime::drivers::{CheckError, DriverCheck, DriverInfo, Executed, Launch, RunRequest};
use dagwire_runtime::{ParamSpec, ParamValue, Params, RunError, TraceLevel};

/// The simulator's registry entry.
pub const DRIVER: DriverInfo = DriverInfo {
    name: "sim",
    summary: "discrete-event simulation of a machine model in virtual time (any rank count); kernels run for real \
              or are only costed",
    params,
    offers: driver::CAPABILITIES,
    host: dagwire_runtime::drivers::nothing_about_host,
    check,
    launch: Launch::InProcess(run_request),
};

/// The parameter naming the machine model a point runs on.
pub const MACHINE: &str = "machine";

/// Whether `driver` runs points on a machine model (it takes a [`MACHINE`] parameter):
/// the points a machine what-if can rerun on a changed machine.
///
/// ```
/// assert!(dagwire_sim::registry::models_a_machine(&dagwire_sim::DRIVER));
/// assert!(!dagwire_sim::registry::models_a_machine(&dagwire_runtime::drivers::local::DRIVER));
/// ```
pub fn models_a_machine(driver: &DriverInfo) -> bool {
    (driver.params)().iter().any(|p| p.name == MACHINE)
}

/// The parameters of `[grid.sim]`.
pub fn params() -> Vec<ParamSpec> {
    vec![
        ParamSpec::input(
            MACHINE,
            crate::machine::PRESETS,
            "ib-hdr-fattree",
            "a machine preset (experiment list machines) or the path of a machine TOML file, relative to the sweep \
             file's folder",
        ),
        ParamSpec::choice(
            "fidelity",
            &["machine", "analytic", "flow"],
            "machine",
            "network model: the machine file's choice, analytic (LogGP, no link contention) or flow (max-min link sharing)",
        ),
        ParamSpec::int(
            "streams",
            0,
            1024,
            0,
            "compute streams per device (0: the machine file's); needs a machine with [accelerators]",
        ),
        ParamSpec::int(
            "copy_engines",
            0,
            1024,
            0,
            "copy engines per device (0: the machine file's); needs a machine with [accelerators]",
        ),
        ParamSpec::choice(
            "gpu_direct",
            &["machine", "on", "off"],
            "machine",
            "on: the NIC reads and writes device memory; off: inter-node data is staged through host memory; \
             machine: the machine file's choice (needs a machine with [accelerators] unless `machine`)",
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

/// The machine a point runs on: its `machine` loaded, its `fidelity` and device
/// (`streams`, `copy_engines`, `gpu_direct`) overrides applied.
pub fn machine(params: &Params) -> Result<Machine, String> {
    let mut machine = crate::machine::load_machine(params.str("machine")).map_err(|e| e.to_string())?;
    match params.str("fidelity") {
        "analytic" => machine.fidelity = Fidelity::Analytic,
        "flow" => machine.fidelity = Fidelity::Flow,
        _ => {}
    }
    // Read leniently: parameters recorded before these existed have none of them.
    let int = |key: &str| match params.get(key) {
        Some(ParamValue::Int(i)) => u32::try_from(*i).unwrap_or(0),
        _ => 0,
    };
    let (streams, copy_engines) = (int("streams"), int("copy_engines"));
    let gpu_direct = match params.get("gpu_direct") {
        Some(ParamValue::Str(s)) => s.as_str(),
        _ => "machine",
    };
    if streams == 0 && copy_engines == 0 && gpu_direct == "machine" {
        return Ok(machine);
    }
    let name = machine.name.clone();
    let Some(a) = machine.accelerators.as_mut() else {
        return Err(format!(
            "machine `{name}` has no [accelerators] section, so streams, copy_engines and gpu_direct cannot be set; \
             use a machine with devices (dgx-h100, pcie-4gpu, aurora) or leave them at their defaults"
        ));
    };
    if streams > 0 {
        a.streams = streams;
    }
    if copy_engines > 0 {
        a.copy_engines = copy_engines;
    }
    match gpu_direct {
        "on" => a.gpu_direct = true,
        "off" => a.gpu_direct = false,
        _ => {}
    }
    Ok(machine)
}

/// Loads the machine and lays the ranks out on it; refuses faults, which the simulator
/// does not inject.
fn check(c: &DriverCheck<'_>) -> Result<(), CheckError> {
    if c.fault.is_some() {
        return Err(CheckError::axis(
            "fault",
            "the sim driver does not inject faults (its messages carry no bytes to corrupt when kernels are \
             modelled); use driver = \"local\" or \"mpi\"",
        ));
    }
    let machine = machine(c.params).map_err(|m| CheckError::param("machine", m))?;
    Network::new(&machine, c.ranks).map_err(|m| CheckError::axis("ranks", m))?;
    Ok(())
}

/// Runs a point from the registry's request.
fn run_request(req: &RunRequest<'_>) -> Result<Executed, RunError> {
    let machine = machine(req.params).map_err(RunError::Config)?;
    let run_kernels = req.params.str("kernels") == "run";
    let cfg = SimConfig {
        ranks: req.ranks,
        workers: req.workers,
        run_kernels,
        seed: req.seed,
        trace: if req.params.str("trace") == "counts" { TraceLevel::Counts } else { TraceLevel::Full },
    };
    let kernels = SimKernels { kernels: req.kernels, name: req.kernel_name };
    let watch = driver::Watch { wall_limit: Some(req.timeout), observer: req.observer };
    let out = driver::run_watched(req.dag, &kernels, req.strategy, &machine, cfg, watch)?;
    Ok(Executed { outcome: out.run, kernels_ran: run_kernels })
}
