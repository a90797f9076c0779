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
///     collective_call_ns: 0.0,
///     collective_message_ns: 0.0,
///     collective_ns_per_byte: 0.0,
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
///
/// A run asks by kernel id ([`ComputeModel::modelled_kernel`]): each kernel's rate is
/// looked up by name once, then read from a dense table.
#[derive(Debug)]
pub struct ComputeModel {
    spec: Compute,
    measured: FxHashMap<(u16, u64), Time>,
    /// By kernel id: its rate and byte cost, once asked for.
    by_kernel: Vec<Option<KernelCost>>,
}

/// What a kernel costs, resolved from its name.
#[derive(Clone, Debug)]
struct KernelCost {
    rate: Rate,
    /// ns per output byte (0 when the kernel has no byte cost).
    ns_per_byte: f64,
}

/// A kernel's speed: one rate, or a curve by flops.
#[derive(Clone, Debug)]
enum Rate {
    Flat(f64),
    Curve(Vec<[f64; 2]>),
}

impl ComputeModel {
    /// A model from a machine's compute section.
    pub fn new(spec: &Compute) -> Self {
        ComputeModel { spec: spec.clone(), measured: FxHashMap::default(), by_kernel: Vec::new() }
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
        self.cost(&self.resolve(name), flops, bytes)
    }

    /// [`ComputeModel::modelled`] for kernel id `kernel`, whose name `name` gives (asked
    /// only the first time the kernel comes up): the same duration, without looking the
    /// name up per task.
    pub fn modelled_kernel(
        &mut self,
        kernel: u16,
        name: impl FnOnce() -> &'static str,
        flops: f64,
        bytes: u64,
    ) -> Time {
        let k = usize::from(kernel);
        if k >= self.by_kernel.len() {
            self.by_kernel.resize(k + 1, None);
        }
        if self.by_kernel[k].is_none() {
            self.by_kernel[k] = Some(self.resolve(name()));
        }
        let cost = self.by_kernel[k].as_ref().expect("resolved above");
        self.cost(cost, flops, bytes)
    }

    /// Kernel `name`'s rate and byte cost.
    fn resolve(&self, name: &str) -> KernelCost {
        let rate = match self.spec.kernel_curves.get(name) {
            Some(curve) => Rate::Curve(curve.clone()),
            None => Rate::Flat(self.spec.kernel_gflops.get(name).copied().unwrap_or(self.spec.default_gflops)),
        };
        KernelCost { rate, ns_per_byte: self.spec.kernel_ns_per_byte.get(name).copied().unwrap_or(0.0) }
    }

    fn cost(&self, cost: &KernelCost, flops: f64, bytes: u64) -> Time {
        let rate = match &cost.rate {
            Rate::Flat(rate) => *rate,
            Rate::Curve(curve) => interpolate(curve, flops),
        };
        let writing = if cost.ns_per_byte == 0.0 { 0.0 } else { cost.ns_per_byte * bytes as f64 };
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// By kernel id a task costs what it does by name, for flat rates, curves, byte
    /// costs and kernels the machine does not name; each name is looked up once.
    #[test]
    fn a_kernel_costs_by_id_what_it_costs_by_name_and_its_name_is_asked_once() {
        let mut model = ComputeModel::new(&Compute {
            mode: ComputeMode::Model,
            cores_per_rank: 1,
            kernel_gflops: [("gemm".to_string(), 50.0), ("gen".to_string(), 3.0)].into(),
            default_gflops: 10.0,
            kernel_curves: [("trsm".to_string(), vec![[1e6, 1.0], [1e8, 4.0]])].into(),
            kernel_ns_per_byte: [("gen".to_string(), 2.5)].into(),
            task_overhead_ns: 7.5,
            control_message_ns: 0.0,
            collective_call_ns: 0.0,
            collective_message_ns: 0.0,
            collective_ns_per_byte: 0.0,
            progress: Default::default(),
        });
        let names = ["gemm", "trsm", "gen", "potrf"];
        let asked = Cell::new(0);
        for (flops, bytes) in [(0.0, 0), (1e5, 8), (3.3e6, 1000), (1e7, 77), (2e9, 1 << 20)] {
            for (k, name) in names.iter().enumerate() {
                let by_id = model.modelled_kernel(
                    k as u16 * 3,
                    || {
                        asked.set(asked.get() + 1);
                        name
                    },
                    flops,
                    bytes,
                );
                assert_eq!(by_id, model.modelled(name, flops, bytes), "{name} at {flops} flops, {bytes} bytes");
            }
        }
        assert_eq!(asked.get(), names.len());
    }
}
