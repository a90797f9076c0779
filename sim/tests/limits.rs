//! The sweep's `timeout_s` bounds a simulated run's wall time too: a run past its
//! limit stops with an error saying how far it got, and a run within it gives the
//! same result as an unlimited one.

use dagwire_runtime::{ParamValue, Rank, RunError, Strategy};
use dagwire_sim::driver::{SimConfig, SimKernels, Watch, run, run_watched};
use dagwire_sim::machine::load_machine;
use dagwire_strategies::eager::Eager;
use std::time::Duration;

fn eager(_: Rank) -> Box<dyn Strategy> {
    Box::new(Eager)
}

#[test]
fn a_simulation_past_its_wall_time_limit_stops_with_how_far_it_got() {
    let given = [("n", ParamValue::Int(1024)), ("tile", ParamValue::Int(32))];
    let w = dagwire_workloads::find("cholesky").unwrap().build(&given, 4, 7).unwrap();
    let machine = load_machine("ib-hdr-fattree").unwrap();
    let name = |k| w.kernel_name(k);
    let kernels = SimKernels { kernels: w.kernels(), name: &name };
    let cfg = SimConfig { ranks: 4, workers: 1, run_kernels: false, seed: 1, trace: Default::default() };
    let e = run_watched(
        w.dag(),
        &kernels,
        &eager,
        &machine,
        cfg,
        Watch { wall_limit: Some(Duration::ZERO), observer: None },
    )
    .expect_err("a zero limit stops the run at its first check");
    let RunError::TimedOut { limit, progress } = &e else { panic!("expected TimedOut, got {e}") };
    assert_eq!(*limit, Duration::ZERO);
    assert!(progress.contains("ns of simulated time") && progress.contains("of 4 ranks done"), "{progress}");
    assert!(e.to_string().contains("timeout_s"), "{e}");

    let limited = run_watched(
        w.dag(),
        &kernels,
        &eager,
        &machine,
        cfg,
        Watch { wall_limit: Some(Duration::from_secs(3600)), observer: None },
    )
    .unwrap();
    let free = run(w.dag(), &kernels, &eager, &machine, cfg).unwrap();
    assert_eq!(limited.run.makespan_ns, free.run.makespan_ns);
}
