//! The compute model: how long a task takes in virtual time.

use crate::machine::{Compute, ComputeMode};
use crate::queue::Time;
use rustc_hash::FxHashMap;

/// Kernel durations for one run: modelled from flops and a per-kernel rate, or
/// measured once per kernel shape by running the kernel for real.
///
/// ```
/// use dagwire_sim::compute::ComputeModel;
/// use dagwire_sim::machine::{Compute, ComputeMode};
/// let model = ComputeModel::new(&Compute {
///     mode: ComputeMode::Model,
///     cores_per_rank: 1,
///     kernel_gflops: [("gemm".to_string(), 50.0)].into(),
///     default_gflops: 10.0,
///     task_overhead_ns: 100.0,
/// });
/// assert_eq!(model.modelled("gemm", 1e6), 100 + 20_000); // 1 MFLOP at 50 GFLOP/s
/// assert_eq!(model.modelled("potrf", 1e6), 100 + 100_000);
/// ```
#[derive(Debug)]
pub struct ComputeModel {
    spec: Compute,
    measured: FxHashMap<(u16, u64), Time>,
}

impl ComputeModel {
    /// A model from a machine's compute section.
    pub fn new(spec: &Compute) -> Self {
        ComputeModel { spec: spec.clone(), measured: FxHashMap::default() }
    }

    /// True when durations come from running kernels.
    pub fn measures(&self) -> bool {
        self.spec.mode == ComputeMode::Measure
    }

    /// Modelled duration of a task of `flops` running kernel `name` on one core.
    pub fn modelled(&self, name: &str, flops: f64) -> Time {
        let rate = self.spec.kernel_gflops.get(name).copied().unwrap_or(self.spec.default_gflops);
        (self.spec.task_overhead_ns + flops / rate).ceil() as Time
    }

    /// A measured duration for this kernel shape, if one was recorded.
    pub fn measured(&self, kernel: u16, flops: f64) -> Option<Time> {
        self.measured.get(&(kernel, flops.to_bits())).copied()
    }

    /// Records the first measurement of a kernel shape (later ones are ignored, so a
    /// run's virtual times do not depend on machine noise after the first call).
    pub fn record(&mut self, kernel: u16, flops: f64, nanos: Time) -> Time {
        *self.measured.entry((kernel, flops.to_bits())).or_insert(nanos.max(1))
    }
}
