//! Compute modes of the sim driver.

use dagwire_runtime::{ParamValue, Rank, Strategy};
use dagwire_sim::driver::{SimConfig, SimKernels, run};
use dagwire_sim::machine::{ComputeMode, load_machine};
use dagwire_strategies::eager::Eager;

fn eager(_: Rank) -> Box<dyn Strategy> {
    Box::new(Eager)
}

fn cholesky(ranks: usize) -> Box<dyn dagwire_workloads::Workload> {
    let given = [("n", ParamValue::Int(256)), ("tile", ParamValue::Int(64))];
    dagwire_workloads::find("cholesky").unwrap().build(&given, ranks, 3).unwrap()
}

#[test]
fn measured_compute_runs_each_kernel_and_reuses_one_time_per_shape() {
    let mut machine = load_machine("shm-node").unwrap();
    machine.compute.mode = ComputeMode::Measure;
    let w = cholesky(2);
    let name = |k| w.kernel_name(k);
    let kernels = SimKernels { kernels: w.kernels(), name: &name };
    let out = run(
        w.dag(),
        &kernels,
        &eager,
        &machine,
        SimConfig { ranks: 2, workers: 1, run_kernels: true, seed: 1, trace: Default::default() },
    )
    .unwrap()
    .run;
    assert!(w.verify(&out.results).passed);
    // Every GEMM here has the same shape, so all take the one measured time.
    let gemm: Vec<u64> =
        out.trace.tasks.iter().filter(|t| w.kernel_name(t.kernel) == "gemm").map(|t| t.end_ns - t.start_ns).collect();
    assert!(gemm.len() > 1 && gemm.iter().all(|&d| d == gemm[0] && d > 0), "{gemm:?}");
}

#[test]
fn measured_compute_needs_kernels_to_run() {
    let mut machine = load_machine("shm-node").unwrap();
    machine.compute.mode = ComputeMode::Measure;
    let w = cholesky(2);
    let name = |k| w.kernel_name(k);
    let kernels = SimKernels { kernels: w.kernels(), name: &name };
    let err = run(
        w.dag(),
        &kernels,
        &eager,
        &machine,
        SimConfig { ranks: 2, workers: 1, run_kernels: false, seed: 1, trace: Default::default() },
    )
    .expect_err("measure without kernels is refused");
    assert!(err.to_string().contains("measure"), "{err}");
}
