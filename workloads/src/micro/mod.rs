//! **micro**: OSU-style microbenchmarks (ping-pong latency, streaming bandwidth,
//! all-to-all, broadcast, halo exchange) run as task DAGs through the engine, so
//! every message goes through the strategy under test.
//!
//! Each message is a chunk written by a `send` task on its sender and read by a
//! `recv` task on its receiver. The sender fills it with a byte pattern derived from
//! the message's identity (iteration, sender, receiver, slot) and the position; the
//! receiver checks every byte and writes the number of wrong ones to an 8-byte count
//! chunk. The run verifies when every count chunk is present and zero, so a strategy
//! that loses, misdelivers or corrupts a message fails verification.
//!
//! - [`pattern`]: the patterns and which messages each task writes or reads;
//! - [`plan`]: the DAG, iterations chained as in the OSU loops;
//! - [`kernels`]: `send` and `recv`, the byte pattern and its check;
//! - [`verify`](mod@verify): the sum of the counts;
//! - [`figures`](mod@figures): latency, bandwidth or time per iteration, from the trace.
//!
//! Parameters: `pattern`, `size` (bytes per message), `iterations` (measured),
//! `warmup` (run first, not measured) and `window` (bandwidth's messages per
//! iteration). As the OSU benchmarks do, messages larger than
//! [`LARGE_MESSAGE`] (8 KiB) run fewer iterations: both counts are scaled by
//! [`effective_iterations`] (iterations / 10, at least 1; warm-up / 5). The byte
//! patterns do not depend on the seed: the workload has no randomness.
//!
//! ```
//! use dagwire_runtime::{ParamValue, Params};
//! let info = dagwire_workloads::find("micro").unwrap();
//! let given = [
//!     ("pattern".to_string(), ParamValue::Str("alltoall".into())),
//!     ("size".to_string(), ParamValue::Int(64)),
//!     ("iterations".to_string(), ParamValue::Int(5)),
//!     ("warmup".to_string(), ParamValue::Int(1)),
//! ];
//! let params = Params::resolve(&(info.params)(), given.into()).unwrap();
//! let w = (info.prepare)(&params, 4, 7).unwrap();
//! assert_eq!(w.dag().task_count(), 6 * 8); // per iteration: a send and a recv on each rank
//! assert_eq!(w.useful_flops(), 0.0);
//! ```

pub mod figures;
pub mod kernels;
pub mod pattern;
pub mod plan;
pub mod verify;

pub use kernels::{Kind, MicroKernels, fill, mismatches};
pub use pattern::{Direction, Layout, MsgKey, Pattern};
pub use plan::CountChunk;
pub use verify::verify;

use crate::{Verification, Workload, WorkloadInfo};
use dagwire_runtime::{ChunkId, Dag, KernelId, Kernels, ParamError, ParamSpec, Params, Payload, Trace};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Registration.
pub const INFO: WorkloadInfo = WorkloadInfo {
    name: "micro",
    summary: "OSU-style microbenchmarks (pingpong, bandwidth, alltoall, broadcast, halo) through the engine; \
              every received byte is checked against its pattern",
    params,
    prepare: |params, ranks, _seed| Ok(Box::new(Micro::new(params, ranks)?)),
    check: |params, ranks| Micro::checked(params, ranks).map(drop),
    kernel_kinds: &kernels::Kind::NAMES,
};

/// Largest message, 64 MiB.
pub const MAX_SIZE: i64 = 64 << 20;

/// Messages larger than this (8 KiB) run fewer iterations, as in the OSU benchmarks.
pub const LARGE_MESSAGE: u64 = 8192;

/// Most bytes one rank may send per iteration (window or fan-out times size): the
/// local driver holds all ranks' messages in one process.
pub const MAX_BYTES_PER_RANK: u64 = 1 << 30;

/// Largest DAG `prepare` builds.
pub const MAX_TASKS: usize = 20_000_000;

/// The parameters a sweep may set.
pub fn params() -> Vec<ParamSpec> {
    vec![
        ParamSpec::choice("pattern", Pattern::NAMES, "pingpong", "communication pattern"),
        ParamSpec::int("size", 1, MAX_SIZE, 8, "bytes per message"),
        ParamSpec::int(
            "iterations",
            1,
            1_000_000,
            100,
            "measured iterations (divided by 10, at least 1, for messages above 8 KiB)",
        ),
        ParamSpec::int("warmup", 0, 1_000_000, 10, "unmeasured iterations first (divided by 5 above 8 KiB)"),
        ParamSpec::int("window", 1, 4096, 64, "bandwidth: messages in flight per iteration"),
    ]
}

/// The (measured, warm-up) iteration counts a run of `size`-byte messages uses:
/// unchanged up to [`LARGE_MESSAGE`] bytes, above it `iterations / 10` (at least 1)
/// and `warmup / 5`, like OSU's separate large-message loop counts.
///
/// ```
/// use dagwire_workloads::micro::effective_iterations;
/// assert_eq!(effective_iterations(8192, 100, 10), (100, 10));
/// assert_eq!(effective_iterations(8193, 100, 10), (10, 2));
/// assert_eq!(effective_iterations(1 << 20, 5, 4), (1, 0));
/// ```
pub fn effective_iterations(size: u64, iterations: u32, warmup: u32) -> (u32, u32) {
    if size > LARGE_MESSAGE { ((iterations / 10).max(1), warmup / 5) } else { (iterations, warmup) }
}

/// One micro run: its DAG, kernels and count chunks.
pub struct Micro {
    dag: Arc<Dag>,
    kernels: MicroKernels,
    warmup: u32,
    measured: u32,
    counts: Vec<CountChunk>,
}

impl Micro {
    /// Checks the parameters against the rank count and builds the DAG.
    ///
    /// # Errors
    /// Names the parameter (`ranks`, `pattern`, `size`, `window`, `iterations`) and
    /// says what is allowed.
    pub fn new(params: &Params, ranks: usize) -> Result<Self, ParamError> {
        let (layout, warmup, measured) = Self::checked(params, ranks)?;
        let built = plan::build(layout, warmup, measured);
        Ok(Micro { dag: Arc::new(built.dag), kernels: MicroKernels { layout }, warmup, measured, counts: built.counts })
    }

    /// The checks of [`Micro::new`] without building: the layout, warm-up and measured
    /// iterations.
    ///
    /// # Errors
    /// As [`Micro::new`].
    pub fn checked(params: &Params, ranks: usize) -> Result<(Layout, u32, u32), ParamError> {
        let name = params.str("pattern");
        let pattern = Pattern::from_name(name).ok_or_else(|| {
            ParamError::new("pattern", format!("unknown pattern `{name}`; known: {}", Pattern::NAMES.join(", ")))
        })?;
        let size = params.int("size");
        if !(1..=MAX_SIZE).contains(&size) {
            return Err(ParamError::new("size", format!("size {size} is outside 1..={MAX_SIZE} bytes")));
        }
        let (iterations, warmup, window) = (params.int("iterations"), params.int("warmup"), params.int("window"));
        for (key, value, min) in [("iterations", iterations, 1), ("warmup", warmup, 0), ("window", window, 1)] {
            if !(min..=1_000_000).contains(&value) {
                return Err(ParamError::new(key, format!("{key} = {value} is outside {min}..=1000000")));
            }
        }
        if ranks < 2 {
            let why = format!("{} needs at least 2 ranks to send anything, the run has {ranks}", pattern.name());
            return Err(ParamError::new("ranks", why));
        }
        let layout = Layout::new(pattern, ranks, size as u64, window as u32);
        let per_rank = layout.bytes_sent_per_rank();
        if per_rank > MAX_BYTES_PER_RANK {
            let (key, what) = match pattern {
                Pattern::Bandwidth => ("window", format!("window {window}")),
                _ => ("size", format!("{ranks} ranks")),
            };
            let why = format!(
                "{} with {what} and {size}-byte messages sends {per_rank} bytes per rank and iteration, \
                 more than {MAX_BYTES_PER_RANK}; use a smaller {key}",
                pattern.name()
            );
            return Err(ParamError::new(key, why));
        }
        let (measured, warmup) = effective_iterations(size as u64, iterations as u32, warmup as u32);
        let tasks = (measured as usize + warmup as usize) * layout.tasks_per_iteration();
        if tasks > MAX_TASKS {
            let why = format!(
                "{} iterations (warm-up included) on {ranks} ranks give {tasks} tasks, more than {MAX_TASKS}; \
                 use fewer iterations",
                measured + warmup
            );
            return Err(ParamError::new("iterations", why));
        }
        Ok((layout, warmup, measured))
    }

    /// The pattern, ranks and sizes.
    pub fn layout(&self) -> Layout {
        self.kernels.layout
    }

    /// Measured iterations, after the large-message scaling.
    pub fn measured_iterations(&self) -> u32 {
        self.measured
    }

    /// Warm-up iterations, after the large-message scaling.
    pub fn warmup_iterations(&self) -> u32 {
        self.warmup
    }

    /// Every receive task's count chunk.
    pub fn counts(&self) -> &[CountChunk] {
        &self.counts
    }

    /// Message bytes the receive tasks check over the whole run.
    pub fn checked_bytes(&self) -> u64 {
        let l = self.kernels.layout;
        let per_iteration: u64 = (0..l.ranks).flat_map(|r| l.receives(0, r)).map(|k| l.bytes_of(k)).sum();
        per_iteration * (self.warmup + self.measured) as u64
    }
}

impl Workload for Micro {
    fn dag(&self) -> &Arc<Dag> {
        &self.dag
    }

    fn kernels(&self) -> &dyn Kernels {
        &self.kernels
    }

    fn kernel_name(&self, kernel: KernelId) -> &'static str {
        Kind::from_id(kernel).map_or("unknown", Kind::name)
    }

    fn useful_flops(&self) -> f64 {
        0.0
    }

    fn verify(&self, results: &BTreeMap<ChunkId, Payload>) -> Verification {
        verify::verify(&self.counts, results, self.checked_bytes())
    }

    fn figures(&self, trace: &Trace) -> Vec<(&'static str, f64)> {
        figures::figures(&self.dag, self.kernels.layout, self.warmup, self.measured, trace)
    }
}

#[cfg(test)]
mod tests {
    use dagwire_runtime::ParamValue::{Int, Str};

    #[test]
    fn its_kernel_kinds_are_exactly_those_its_dag_runs() {
        let pingpong: &[(&str, _)] = &[("pattern", Str("pingpong".into())), ("iterations", Int(2))];
        crate::testing::assert_kernel_kinds_are_the_dags(&super::INFO, &[(pingpong, 2)]);
    }
}
