//! Dynamic scheduling in the simulator (and, for the registered strategies, on the
//! local driver too): task priorities order a rank's ready tasks (ties in id order),
//! with kernels run or modelled; chunks sized at run time move their real size through
//! every strategy, and the trace records it; tasks placed at run time run where the
//! policy decides through every strategy, the same on local and in the simulator, whose
//! trace is the same from run to run; a policy that decides differently is caught.

#[path = "../../runtime/tests/common/dynamic.rs"]
mod dynamic;

use dagwire_runtime::drivers::local::{LocalConfig, run as run_local};
use dagwire_runtime::{Dag, KernelId, MessageClass, ParamValue, Progress, RunOutcome, TaskId};
use dagwire_sim::driver::{SimConfig, SimKernels, run};
use dagwire_sim::machine::load_machine;
use dynamic::Recording;
use std::sync::Arc;
use std::time::Duration;

/// Every registered strategy, and rma in each mode and synchronisation.
fn strategies() -> Vec<(&'static str, Vec<(&'static str, ParamValue)>)> {
    let s = |v: &str| ParamValue::Str(v.into());
    let mut all: Vec<_> = dagwire_strategies::REGISTRY.iter().map(|i| (i.name, Vec::new())).collect();
    for (mode, sync) in [("get", "fence"), ("put", "passive"), ("put", "fence")] {
        all.push(("rma", vec![("mode", s(mode)), ("sync", s(sync))]));
    }
    all.push(("rendezvous", vec![("eager_limit", ParamValue::Int(0))]));
    all
}

fn sim(dag: &Arc<Dag>, kernels: &Recording, strategy: &str, run_kernels: bool) -> RunOutcome {
    sim_with(dag, kernels, (strategy, &[]), run_kernels)
}

fn sim_with(
    dag: &Arc<Dag>,
    kernels: &Recording,
    (strategy, params): (&str, &[(&'static str, ParamValue)]),
    run_kernels: bool,
) -> RunOutcome {
    let machine = load_machine("ib-hdr-fattree").unwrap();
    let factory = dagwire_strategies::find(strategy).unwrap().factory_with(params, dag, 1).unwrap();
    let name = |_: KernelId| "gemm";
    let k = SimKernels { kernels, name: &name };
    let cfg = SimConfig { ranks: dag.ranks(), workers: 1, run_kernels, seed: 1, trace: Default::default() };
    run(dag, &k, &factory, &machine, cfg).unwrap_or_else(|e| panic!("{strategy}: {e}")).run
}

#[test]
fn priorities_order_the_ready_tasks_in_the_simulator() {
    for run_kernels in [true, false] {
        let (dag, expected) = dynamic::priorities();
        let kernels = Recording::default();
        let out = sim(&dag, &kernels, "eager", run_kernels);
        let mut started: Vec<(u64, TaskId)> = out.trace.tasks.iter().map(|t| (t.start_ns, t.task)).collect();
        started.sort_unstable();
        assert_eq!(started.iter().map(|s| s.1).collect::<Vec<_>>(), expected, "run_kernels {run_kernels}");
        assert!(started.windows(2).all(|w| w[0].0 < w[1].0), "one worker runs one task at a time: {started:?}");
        if run_kernels {
            assert_eq!(*kernels.order.lock().unwrap(), expected);
        }
    }
}

#[test]
fn chunks_sized_at_run_time_move_their_real_size_through_every_strategy() {
    for (strategy, params) in strategies() {
        for ranks in [2, 3] {
            let label = format!("{strategy} {params:?} on {ranks}");
            let (dag, parts, result) = dynamic::sized(ranks);
            let factory = dagwire_strategies::find(strategy).unwrap().factory_with(&params, &dag, 1).unwrap();
            let cfg = LocalConfig {
                ranks,
                workers: 1,
                progress: Progress::Thread,
                timeout: Duration::from_secs(30),
                fault: None,
            };
            let local =
                run_local(&dag, &Recording::default(), &factory, &cfg).unwrap_or_else(|e| panic!("{label}: {e}"));
            dynamic::check_sized(ranks, &parts, &local.results[&result], &local.trace)
                .unwrap_or_else(|e| panic!("local {label}: {e}"));
            let real = sim_with(&dag, &Recording::default(), (strategy, &params), true);
            dynamic::check_sized(ranks, &parts, &real.results[&result], &real.trace)
                .unwrap_or_else(|e| panic!("sim {label}: {e}"));
            let modelled = sim_with(&dag, &Recording::default(), (strategy, &params), false);
            assert_eq!(modelled.trace.sizes, real.trace.sizes, "sim {label}: modelled sizes");
            let data = |t: &dagwire_runtime::Trace| -> u64 {
                t.messages.iter().filter(|m| m.class == MessageClass::Data).map(|m| m.bytes).sum()
            };
            // Fenced rma moves each run-time-sized chunk's framed slot (bound 512 + 8).
            let fenced = params.iter().any(|(k, v)| *k == "sync" && *v == ParamValue::Str("fence".into()));
            let per_part = |r: u64| if fenced { 520 } else { r * 8 };
            let expected: u64 = (2..=ranks as u64).map(per_part).sum();
            if strategy != "batched" {
                assert_eq!(data(&local.trace), expected, "local {label}: data bytes");
                assert_eq!(data(&real.trace), expected, "sim {label}: data bytes");
            }
            assert_eq!(data(&modelled.trace), data(&real.trace), "sim {label}: modelled data bytes");
            assert_eq!(sim_with(&dag, &Recording::default(), (strategy, &params), false).trace, modelled.trace);
        }
    }
}

#[test]
fn tasks_placed_at_run_time_decide_alike_on_local_and_sim_through_every_strategy() {
    let policy = dagwire_runtime::policies::find("least-loaded").unwrap();
    for (strategy, params) in strategies() {
        for ranks in [2, 4] {
            let label = format!("{strategy} {params:?} on {ranks}");
            let (dag, decided, combined) = dynamic::placed(ranks, policy);
            let expected = dynamic::placed_expected("least-loaded", ranks);
            let factory = dagwire_strategies::find(strategy).unwrap().factory_with(&params, &dag, 1).unwrap();
            let cfg = LocalConfig {
                ranks,
                workers: 2,
                progress: Progress::Thread,
                timeout: Duration::from_secs(30),
                fault: None,
            };
            let local =
                run_local(&dag, &Recording::default(), &factory, &cfg).unwrap_or_else(|e| panic!("{label}: {e}"));
            dynamic::check_placed(&local.results, &decided, &combined, &expected)
                .unwrap_or_else(|e| panic!("local {label}: {e}"));
            let real = sim_with(&dag, &Recording::default(), (strategy, &params), true);
            dynamic::check_placed(&real.results, &decided, &combined, &expected)
                .unwrap_or_else(|e| panic!("sim {label}: {e}"));
            let modelled = sim_with(&dag, &Recording::default(), (strategy, &params), false);
            for d in &decided {
                assert_eq!(modelled.results[d], real.results[d], "sim {label}: modelled decisions");
            }
            let again = sim_with(&dag, &Recording::default(), (strategy, &params), false);
            assert_eq!(again.trace, modelled.trace, "sim {label}: the same trace from run to run");
            assert_eq!(again.makespan_ns, modelled.makespan_ns);
        }
    }
}

#[test]
fn a_policy_that_decides_differently_is_caught_in_the_simulator() {
    let (dag, _, _) = dynamic::placed(3, &dynamic::Contrary);
    let machine = load_machine("ib-hdr-fattree").unwrap();
    let factory = dagwire_strategies::find("eager").unwrap().factory_with(&[], &dag, 1).unwrap();
    let name = |_: KernelId| "gemm";
    let kernels = Recording::default();
    let k = SimKernels { kernels: &kernels, name: &name };
    let cfg = SimConfig { ranks: 3, workers: 1, run_kernels: true, seed: 1, trace: Default::default() };
    let err = run(&dag, &k, &factory, &machine, cfg).unwrap_err().to_string();
    assert!(err.contains("differs between ranks"), "{err}");
}
