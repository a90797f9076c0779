//! The simulator at machine scale: 16,384 ranks at a small task count (the micro halo
//! exchange in both network fidelities, and a broadcast from one rank to all in the
//! analytic one), with every task run on every rank. What is checked is behaviour (the run completes,
//! the trace holds every task, a second run repeats it bit for bit); the speed is in
//! `cargo run --release -p dagwire-sim --example sim_scale`.

use dagwire_runtime::{ParamValue, TraceLevel};
use dagwire_sim::driver::{SimConfig, SimKernels, run};
use dagwire_sim::machine::{Fidelity, load_machine};
use dagwire_workloads::Workload;

const RANKS: usize = 16_384;

#[test]
fn cost_model_runs_on_16384_ranks_in_both_fidelities() {
    for (pattern, fidelities) in
        [("halo", &[Fidelity::Analytic, Fidelity::Flow][..]), ("broadcast", &[Fidelity::Analytic])]
    {
        let given = [
            ("pattern", ParamValue::Str(pattern.into())),
            ("size", ParamValue::Int(4096)),
            ("iterations", ParamValue::Int(1)),
            ("warmup", ParamValue::Int(0)),
        ];
        let w = dagwire_workloads::find("micro").unwrap().build(&given, RANKS, 1).unwrap();
        simulate_twice(pattern, w.as_ref(), fidelities);
    }
}

/// Runs `w` in each of `fidelities`, twice each: every task runs on every rank, messages
/// move, and the second run's trace equals the first's.
fn simulate_twice(label: &str, w: &dyn Workload, fidelities: &[Fidelity]) {
    let name = |k| w.kernel_name(k);
    let kernels = SimKernels { kernels: w.kernels(), name: &name };
    let factory = dagwire_strategies::find("eager").unwrap().factory_with(&[], w.dag(), 1).unwrap();
    for &fidelity in fidelities {
        let mut machine = load_machine("ib-hdr-fattree").unwrap();
        machine.fidelity = fidelity;
        // The preset's k = 16 fat-tree holds 1024 nodes: 16 ranks a node fill it.
        machine.ranks_per_node = 16;
        let cfg = SimConfig { ranks: RANKS, workers: 1, run_kernels: false, seed: 1, trace: TraceLevel::Full };
        let out =
            run(w.dag(), &kernels, &factory, &machine, cfg).unwrap_or_else(|e| panic!("{label} {fidelity:?}: {e}"));
        assert_eq!(out.run.trace.task_count(), w.dag().task_count() as u64, "{label} {fidelity:?}: every task ran");
        let busy: std::collections::BTreeSet<_> = out.run.trace.tasks.iter().map(|t| t.rank).collect();
        assert_eq!(busy.len(), RANKS, "{label} {fidelity:?}: every rank ran tasks");
        assert!(out.run.trace.messages.len() >= RANKS - 1 && out.run.makespan_ns > 0, "{label} {fidelity:?}");
        let again = run(w.dag(), &kernels, &factory, &machine, cfg).unwrap();
        assert_eq!(again.run.trace, out.run.trace, "{label} {fidelity:?}: the same inputs give the same trace");
    }
}
