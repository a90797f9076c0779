//! # dagwire-workloads
//!
//! Real workloads: each builds a task DAG with real kernels for a given rank count
//! and checks its own result. [`REGISTRY`] lists them for sweep validation and
//! `experiment list`.

pub mod cholesky;
pub mod dp;
pub mod gemm;
pub mod grid;
pub mod micro;
pub mod moe;

use dagwire_runtime::params::did_you_mean;
use dagwire_runtime::{ChunkId, Dag, KernelId, Kernels, ParamError, ParamSpec, ParamValue, Params, Payload, Trace};
use std::collections::BTreeMap;
use std::sync::Arc;

/// One registered workload.
#[derive(Debug)]
pub struct WorkloadInfo {
    /// Name used in sweep files.
    pub name: &'static str,
    /// One line on what it computes and how it is verified.
    pub summary: &'static str,
    /// Parameters a sweep may set (as `<name>.<param>`).
    pub params: fn() -> Vec<ParamSpec>,
    /// Checks the parameters against the rank count and builds the workload.
    /// Errors name the parameter and what is allowed.
    pub prepare: Prepare,
    /// The same checks as `prepare`, without building the DAG: what a sweep runs on every
    /// point before the first one starts (a DAG is built once, when its point runs).
    pub check: Check,
    /// Every kernel kind its DAGs' tasks may run, as [`Workload::kernel_name`] names them
    /// (under any parameters): the names a machine file's kernel rate tables may key (see
    /// [`kernel_kinds`]). Each workload's tests build its DAGs and check the list is exactly
    /// the kinds they use.
    pub kernel_kinds: &'static [&'static str],
}

/// Checks a workload's parameters against the rank count without building anything.
pub type Check = fn(params: &Params, ranks: usize) -> Result<(), ParamError>;

/// Checks a workload's parameters against the rank count and builds it (seeded).
pub type Prepare = fn(params: &Params, ranks: usize, seed: u64) -> Result<Box<dyn Workload>, ParamError>;

impl WorkloadInfo {
    /// Resolves `given` against this workload's parameters (defaults for the rest) and
    /// builds it for `ranks` ranks.
    ///
    /// ```
    /// use dagwire_runtime::ParamValue;
    /// let chol = dagwire_workloads::find("cholesky").unwrap();
    /// let w = chol.build(&[("n", ParamValue::Int(64)), ("tile", ParamValue::Int(32))], 2, 1).unwrap();
    /// assert_eq!(w.dag().ranks(), 2);
    /// ```
    pub fn build(
        &self,
        given: &[(&str, ParamValue)],
        ranks: usize,
        seed: u64,
    ) -> Result<Box<dyn Workload>, ParamError> {
        (self.prepare)(&Params::from_pairs(&(self.params)(), given)?, ranks, seed)
    }
}

/// A workload instance for one run: its DAG, its kernels, and its own check.
pub trait Workload: Send + Sync {
    /// The DAG, placed on the run's ranks.
    fn dag(&self) -> &Arc<Dag>;
    /// The kernels the DAG's tasks run.
    fn kernels(&self) -> &dyn Kernels;
    /// Name of a kernel, for traces (`potrf`, `gemm`, ...).
    fn kernel_name(&self, kernel: KernelId) -> &'static str;
    /// Useful floating-point operations of the whole computation (for GFLOP/s).
    fn useful_flops(&self) -> f64;
    /// Checks the result chunks of a run.
    fn verify(&self, results: &BTreeMap<ChunkId, Payload>) -> Verification;

    /// Workload-specific figures of a finished run, computed from its trace (for
    /// example a ping-pong's one-way latency in µs). Each becomes a column
    /// `<workload>.<name>` of the points table. Most workloads have none.
    fn figures(&self, _trace: &Trace) -> Vec<(&'static str, f64)> {
        Vec::new()
    }
}

/// The outcome of a workload's self-check.
#[derive(Clone, Debug, PartialEq)]
pub struct Verification {
    /// True when the result is right.
    pub passed: bool,
    /// What was measured (`scaled_residual`, `max_abs_error`, ...).
    pub metric: &'static str,
    /// The measured value.
    pub value: f64,
    /// The bound it must stay below.
    pub bound: f64,
    /// A sentence for humans (why it failed, if it did).
    pub detail: String,
}

/// Every workload, in the order `experiment list` shows them.
pub static REGISTRY: &[WorkloadInfo] = &[cholesky::INFO, gemm::INFO, dp::INFO, micro::INFO, moe::INFO];

/// Every kernel kind some registered workload runs, sorted, each once: the names a machine
/// file's kernel rate tables (`kernel_gflops`, `kernel_curves`, `kernel_ns_per_byte`) may
/// key. One machine file serves every workload, so a kind is known when any workload runs it.
///
/// ```
/// let kinds = dagwire_workloads::kernel_kinds();
/// assert!(kinds.contains(&"potrf") && kinds.contains(&"moe-ffn"));
/// assert!(!kinds.contains(&"gemn"));
/// ```
pub fn kernel_kinds() -> Vec<&'static str> {
    let mut kinds: Vec<&'static str> = REGISTRY.iter().flat_map(|w| w.kernel_kinds.iter().copied()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    kinds
}

/// A workload name that is not registered.
#[derive(Debug, thiserror::Error)]
#[error("unknown workload `{given}`{}; known workloads: {}", .suggestion.map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default(), .known.join(", "))]
pub struct UnknownWorkload {
    /// What was asked for.
    pub given: String,
    /// The closest known name, if close.
    pub suggestion: Option<&'static str>,
    /// All names.
    pub known: Vec<&'static str>,
}

/// Looks a workload up by name.
///
/// ```
/// assert_eq!(dagwire_workloads::find("cholesky").unwrap().name, "cholesky");
/// assert!(dagwire_workloads::find("cholesy").is_err());
/// ```
pub fn find(name: &str) -> Result<&'static WorkloadInfo, UnknownWorkload> {
    REGISTRY.iter().find(|w| w.name == name).ok_or_else(|| UnknownWorkload {
        given: name.to_string(),
        suggestion: did_you_mean(name, REGISTRY.iter().map(|w| w.name)),
        known: REGISTRY.iter().map(|w| w.name).collect(),
    })
}

/// What the workloads' tests share.
#[cfg(test)]
pub(crate) mod testing {
    use super::WorkloadInfo;
    use dagwire_runtime::ParamValue;
    use std::collections::BTreeSet;

    /// Builds `info`'s DAG for each `(parameters, ranks)` and checks that the kernel kinds
    /// their tasks use, together, are exactly `info.kernel_kinds` (so the list a machine
    /// file is checked against cannot drift from the DAGs).
    pub fn assert_kernel_kinds_are_the_dags(info: &WorkloadInfo, configs: &[(&[(&str, ParamValue)], usize)]) {
        let mut used = BTreeSet::new();
        for (given, ranks) in configs {
            let w = info.build(given, *ranks, 1).unwrap_or_else(|e| panic!("{} {given:?}: {e}", info.name));
            let dag = w.dag();
            used.extend(dag.task_ids().map(|t| w.kernel_name(dag.task(t).kernel)));
        }
        let listed: BTreeSet<&str> = info.kernel_kinds.iter().copied().collect();
        assert_eq!(listed.len(), info.kernel_kinds.len(), "{} lists a kind twice", info.name);
        assert_eq!(used, listed, "{}: the kinds its DAGs use against its kernel_kinds", info.name);
    }
}
