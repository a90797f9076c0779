//! A collective-heavy simulation, timed: not a test (it asserts nothing about speed).
//! Run it with `cargo test --release -p dagwire-sim --test collective_bench -- --ignored --nocapture`.
//!
//! Cost-model tiled Cholesky with the batched strategy (one all-to-all-v per
//! topological level, every step of it a network message) on the IB fat-tree, with and
//! without broadcast trees; prints wall time, events and the simulated makespan.
//! `DAGWIRE_BENCH_ONLY="128 alltoallv"` runs one case, `DAGWIRE_BENCH_REPS=1` once (for
//! an instruction count under `valgrind --tool=cachegrind`, steadier than wall time on
//! a shared machine).

use dagwire_runtime::{Dag, ParamValue, Rank, Strategy, TraceLevel};
use dagwire_sim::driver::{SimConfig, SimKernels, run};
use dagwire_sim::machine::{Fidelity, load_machine};
use std::sync::Arc;
use std::time::Instant;

fn batched(given: &[(&str, ParamValue)], dag: &Arc<Dag>) -> impl Fn(Rank) -> Box<dyn Strategy> + Sync + use<> {
    dagwire_strategies::find("batched").unwrap().factory_with(given, dag, 1).unwrap()
}

#[test]
#[ignore = "a timing, not a test: run with --ignored --nocapture in release"]
fn time_batched_cholesky_collectives() {
    let mut machine = load_machine("ib-hdr-fattree").unwrap();
    machine.fidelity = Fidelity::Analytic;
    let s = |v: &str| ParamValue::Str(v.into());
    let cases: Vec<(&str, Vec<(&str, ParamValue)>)> = vec![
        ("alltoallv", vec![]),
        ("binomial trees", vec![("bcast_threshold", ParamValue::Int(2)), ("tree", s("binomial"))]),
        (
            "chain trees",
            vec![
                ("bcast_threshold", ParamValue::Int(2)),
                ("tree", s("chain")),
                ("segment_bytes", ParamValue::Int(8192)),
            ],
        ),
    ];
    let only = std::env::var("DAGWIRE_BENCH_ONLY").ok();
    let reps: usize = std::env::var("DAGWIRE_BENCH_REPS").ok().and_then(|r| r.parse().ok()).unwrap_or(3);
    for ranks in [64, 128] {
        let given = [("n", ParamValue::Int(64 * 40)), ("tile", ParamValue::Int(64))];
        let w = dagwire_workloads::find("cholesky").unwrap().build(&given, ranks, 7).unwrap();
        let name = |k| w.kernel_name(k);
        let kernels = SimKernels { kernels: w.kernels(), name: &name };
        for (label, params) in &cases {
            if only.as_ref().is_some_and(|o| *o != format!("{ranks} {label}")) {
                continue;
            }
            let cfg = SimConfig { ranks, workers: 1, run_kernels: false, seed: 1, trace: TraceLevel::Counts };
            let strategy = batched(params, w.dag());
            let mut best = f64::INFINITY;
            let mut last = None;
            for _ in 0..reps {
                let t = Instant::now();
                let out = run(w.dag(), &kernels, &strategy, &machine, cfg).unwrap();
                best = best.min(t.elapsed().as_secs_f64());
                last = Some(out);
            }
            let out = last.unwrap();
            println!(
                "ranks {ranks:4} {label:15} tasks {:6} wall {:8.3} s (best of {reps})  events {:9}  makespan {:.3} ms",
                w.dag().task_count(),
                best,
                out.events,
                out.run.makespan_ns as f64 / 1e6
            );
        }
    }
}
