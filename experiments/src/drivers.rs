//! The drivers a sweep can name, and how a point is executed on each.

use dagwire_runtime::local::{self, LocalConfig};
use dagwire_runtime::{Dag, Fault, Kernels, Progress, RunError, RunOutcome, StrategyFactory};
use std::sync::Arc;
use std::time::Duration;

/// One registered driver.
#[derive(Debug)]
pub struct DriverInfo {
    /// Name used in sweep files.
    pub name: &'static str,
    /// One line on how ranks run.
    pub summary: &'static str,
}

/// Every driver, in the order `experiment list` shows them.
pub static REGISTRY: &[DriverInfo] = &[DriverInfo {
    name: "local",
    summary: "ranks are threads of this process, messages move through in-process channels, kernels run for real; needs nothing installed",
}];

/// How to execute one run, whatever the driver.
pub struct Execution<'a> {
    /// Driver name from [`REGISTRY`].
    pub driver: &'a str,
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
}

/// Runs a DAG with the named driver.
pub fn execute(
    exec: &Execution<'_>,
    dag: &Arc<Dag>,
    kernels: &dyn Kernels,
    strategy: StrategyFactory<'_>,
) -> Result<RunOutcome, RunError> {
    match exec.driver {
        "local" => {
            let cfg = LocalConfig {
                ranks: exec.ranks,
                workers: exec.workers,
                progress: exec.progress,
                timeout: exec.timeout,
                fault: exec.fault,
            };
            local::run(dag, kernels, strategy, &cfg)
        }
        other => Err(RunError::Config(format!("driver `{other}` is not built into this binary"))),
    }
}
