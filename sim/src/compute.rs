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
///     kernel_curves: [("trsm".to_string(), vec![[1e6, 1.0], [1e8, 4.0]])].into(),
///     kernel_ns_per_byte: [("gen".to_string(), 2.0)].into(),
///     task_overhead_ns: 100.0,
///     control_message_ns: 0.0,
///     progress: Default::default(),
/// });
/// assert_eq!(model.modelled("gemm", 1e6, 8), 100 + 20_000); // 1 MFLOP at 50 GFLOP/s
/// assert_eq!(model.modelled("potrf", 1e6, 8), 100 + 100_000);
/// assert_eq!(model.modelled("trsm", 1e5, 8), 100 + 100_000); // below the curve: its first rate
/// assert_eq!(model.modelled("trsm", 1e7, 8), 100 + 4_000_000); // halfway in log(flops): 2.5 GFLOP/s
/// assert_eq!(model.modelled("trsm", 1e9, 8), 100 + 250_000_000); // above: its last rate
/// assert_eq!(model.modelled("gen", 0.0, 1000), 100 + 2_000); // 1000 bytes written at 2 ns each
/// assert!(model.charges_bytes());
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

    /// True when some kernel costs per byte it writes (`kernel_ns_per_byte`): only then
    /// does [`ComputeModel::modelled`] read its `bytes`.
    pub fn charges_bytes(&self) -> bool {
        !self.spec.kernel_ns_per_byte.is_empty()
    }

    /// Modelled duration of a task of `flops` running kernel `name` on one core and
    /// writing `bytes` (the sum of its outputs' sizes).
    pub fn modelled(&self, name: &str, flops: f64, bytes: u64) -> Time {
        let rate = match self.spec.kernel_curves.get(name) {
            Some(curve) => interpolate(curve, flops),
            None => self.spec.kernel_gflops.get(name).copied().unwrap_or(self.spec.default_gflops),
        };
        let writing = self.spec.kernel_ns_per_byte.get(name).map_or(0.0, |ns| ns * bytes as f64);
        (self.spec.task_overhead_ns + flops / rate + writing).ceil() as Time
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

/// The rate at `flops` on a curve of `[flops, rate]` points in increasing flops:
/// linear in log(flops) between points, the end points' rates outside them.
fn interpolate(curve: &[[f64; 2]], flops: f64) -> f64 {
    let (Some(first), Some(last)) = (curve.first(), curve.last()) else { return f64::NAN };
    if flops.is_nan() || flops <= first[0] {
        return first[1];
    }
    if flops >= last[0] {
        return last[1];
    }
    let i = curve.partition_point(|p| p[0] <= flops);
    let ([x0, y0], [x1, y1]) = (curve[i - 1], curve[i]);
    let t = (flops.ln() - x0.ln()) / (x1.ln() - x0.ln());
    y0 + t * (y1 - y0)
}
