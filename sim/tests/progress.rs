//! A simulated run's progress reports ([`Watch::observer`]): they come while the run goes,
//! never go backwards, end with the run's totals, and watching changes nothing in the
//! trace.

use dagwire_runtime::drivers::RunProgress;
use dagwire_runtime::{ParamValue, Rank, Strategy, TraceLevel};
use dagwire_sim::driver::{PROGRESS_EVERY, SimConfig, SimKernels, Watch, run, run_watched};
use dagwire_sim::machine::{Fidelity, load_machine};
use dagwire_strategies::eager::Eager;
use std::sync::Mutex;

fn eager(_: Rank) -> Box<dyn Strategy> {
    Box::new(Eager)
}

#[test]
fn progress_reports_are_monotone_end_at_the_totals_and_leave_the_trace_alone() {
    // 100 x 100 tiles on 16 ranks: some 170 k tasks and their messages, several report periods.
    let given = [("n", ParamValue::Int(100 * 8)), ("tile", ParamValue::Int(8))];
    let w = dagwire_workloads::find("cholesky").unwrap().build(&given, 16, 1).unwrap();
    let mut machine = load_machine("ib-hdr-fattree").unwrap();
    machine.fidelity = Fidelity::Analytic;
    let name = |k| w.kernel_name(k);
    let kernels = SimKernels { kernels: w.kernels(), name: &name };
    let cfg = SimConfig { ranks: 16, workers: 1, run_kernels: false, seed: 3, trace: TraceLevel::Full };

    let reports = Mutex::new(Vec::<RunProgress>::new());
    let observe = |p| reports.lock().unwrap().push(p);
    let watch = Watch { wall_limit: None, observer: Some(&observe) };
    let watched = run_watched(w.dag(), &kernels, &eager, &machine, cfg, watch).unwrap();
    let reports = reports.into_inner().unwrap();

    assert!(watched.events > 3 * PROGRESS_EVERY as u64, "the run is long enough: {} events", watched.events);
    assert!(reports.len() >= 3, "reports while the run goes, not only at its end: {}", reports.len());
    for pair in reports.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        assert!(a.virtual_ns <= b.virtual_ns && a.events < b.events && a.wall <= b.wall, "{a:?} then {b:?}");
    }
    let last = reports.last().unwrap();
    assert_eq!((last.virtual_ns, last.events), (watched.run.makespan_ns, watched.events), "the last is the totals");
    assert!(reports[0].events < watched.events && reports[0].virtual_ns < watched.run.makespan_ns);

    let unwatched = run(w.dag(), &kernels, &eager, &machine, cfg).unwrap();
    assert_eq!(unwatched.events, watched.events);
    assert_eq!(unwatched.run.makespan_ns, watched.run.makespan_ns);
    assert!(unwatched.run.trace == watched.run.trace, "watching a run leaves its trace as it was");
}
