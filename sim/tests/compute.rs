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

#[test]
fn a_data_writing_kernel_costs_its_bytes_and_the_others_do_not_change() {
    // Cholesky n = 256, tiles of 64: each `gen` task writes one 32 KiB tile.
    let w = cholesky(2);
    let name = |k| w.kernel_name(k);
    let kernels = SimKernels { kernels: w.kernels(), name: &name };
    let sim = |machine: &dagwire_sim::machine::Machine| {
        run(
            w.dag(),
            &kernels,
            &eager,
            machine,
            SimConfig { ranks: 2, workers: 1, run_kernels: false, seed: 1, trace: Default::default() },
        )
        .unwrap()
        .run
    };
    let durations = |out: &dagwire_runtime::RunOutcome, kernel: &str| -> Vec<u64> {
        out.trace.tasks.iter().filter(|t| w.kernel_name(t.kernel) == kernel).map(|t| t.end_ns - t.start_ns).collect()
    };
    let plain = load_machine("shm-node").unwrap();
    let mut writing = plain.clone();
    writing.compute.kernel_ns_per_byte.insert("gen".into(), 2.0);
    let (before, after) = (sim(&plain), sim(&writing));
    let tile = 64 * 64 * 8;
    let overhead = plain.compute.task_overhead_ns;
    let gen_before = durations(&before, "gen");
    assert!(!gen_before.is_empty());
    assert!(gen_before.iter().all(|&d| d == overhead.ceil() as u64), "{gen_before:?}");
    let expected = (overhead + 2.0 * tile as f64).ceil() as u64;
    assert!(durations(&after, "gen").iter().all(|&d| d == expected), "{:?}", durations(&after, "gen"));
    assert_eq!(durations(&before, "gemm"), durations(&after, "gemm"));
    assert!(after.makespan_ns > before.makespan_ns);
}
