//! What the end-to-end Cholesky tests share: one run of a workload through the local
//! driver with a strategy chosen by name, verified by the workload.

use dagwire_runtime::drivers::local::{LocalConfig, run};
use dagwire_runtime::{Fault, ParamValue, Progress, RunOutcome};
use dagwire_workloads::{Verification, Workload};
use std::time::Duration;

/// Runs `w` on `ranks` local ranks of 2 workers with strategy `strategy` set by `given`;
/// a run that fails (rather than verifying false) panics with `label`.
pub fn run_local(
    w: &dyn Workload,
    strategy: &str,
    given: &[(&str, ParamValue)],
    ranks: usize,
    (progress, fault): (Progress, Option<Fault>),
    label: &str,
) -> (RunOutcome, Verification) {
    let factory = dagwire_strategies::find(strategy).unwrap().factory_with(given, w.dag(), 1).unwrap();
    let cfg = LocalConfig { ranks, workers: 2, progress, timeout: Duration::from_secs(60), fault };
    let out = run(w.dag(), w.kernels(), &factory, &cfg).unwrap_or_else(|e| panic!("{label}: {e}"));
    let v = w.verify(&out.results);
    (out, v)
}
