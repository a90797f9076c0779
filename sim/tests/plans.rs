//! A strategy plans once per run, not once per rank: a run of R ranks on the local
//! driver and on the simulator makes exactly one whole-DAG plan, which every rank's
//! instance shares. (Its own test binary: the plan counters are per process, and no
//! other test may plan while this one counts.)

use dagwire_runtime::drivers::local::{self, LocalConfig};
use dagwire_runtime::{ParamValue, Params, Progress};
use dagwire_sim::driver::{self as sim, SimConfig, SimKernels};
use dagwire_sim::machine::{Fidelity, load_machine};
use dagwire_strategies::{batched, rma};
use dagwire_workloads::Workload;
use std::time::Duration;

/// Runs `strategy` with `given` on `w`, on the local driver when `local`, else on the
/// simulator; both verify.
fn run(w: &dyn Workload, strategy: &str, given: &[(&str, ParamValue)], local: bool) {
    let info = dagwire_strategies::find(strategy).unwrap();
    let params = Params::from_pairs(&(info.params)(), given).unwrap();
    let factory = info.factory(&params, w.dag(), 3);
    let ranks = w.dag().ranks();
    let results = if local {
        let cfg = LocalConfig {
            ranks,
            workers: 1,
            progress: Progress::Inline,
            timeout: Duration::from_secs(60),
            fault: None,
        };
        local::run(w.dag(), w.kernels(), &factory, &cfg).unwrap().results
    } else {
        let mut machine = load_machine("ib-hdr-fattree").unwrap();
        machine.fidelity = Fidelity::Analytic;
        let name = |k| w.kernel_name(k);
        let kernels = SimKernels { kernels: w.kernels(), name: &name };
        let cfg = SimConfig { ranks, workers: 1, run_kernels: true, seed: 3, trace: Default::default() };
        sim::run(w.dag(), &kernels, &factory, &machine, cfg).unwrap().run.results
    };
    let check = w.verify(&results);
    assert!(check.passed, "{strategy} {given:?} local={local}: {check:?}");
}

#[test]
fn every_run_plans_once_whatever_its_ranks_and_driver() {
    let str = |s: &str| ParamValue::Str(s.into());
    let cases: [(&str, Vec<(&str, ParamValue)>); 6] = [
        ("batched", vec![]),
        ("batched", vec![("epochs", str("tasks")), ("bcast_threshold", ParamValue::Int(1))]),
        ("batched", vec![("exchange", str("neighbor")), ("window_usec", ParamValue::Int(1))]),
        ("rma", vec![]),
        ("rma", vec![("mode", str("put")), ("sync", str("fence"))]),
        ("rma", vec![("mode", str("get")), ("sync", str("fence"))]),
    ];
    let plans = || (batched::plans_made(), rma::plans_made());
    let cholesky = dagwire_workloads::find("cholesky").unwrap();
    for ranks in [3, 6] {
        let given = [("n", ParamValue::Int(192)), ("tile", ParamValue::Int(32))];
        let w = cholesky.build(&given, ranks, 5).unwrap();
        for (strategy, params) in &cases {
            for local in [true, false] {
                let before = plans();
                run(&*w, strategy, params, local);
                let after = plans();
                let made = (after.0 - before.0, after.1 - before.1);
                let want = if *strategy == "batched" { (1, 0) } else { (0, 1) };
                assert_eq!(made, want, "{strategy} {params:?} on {ranks} ranks, local={local}: (batched, rma) plans");
            }
        }
    }
    // The count can fail: a factory made per rank (what every rank used to do) plans
    // once per rank.
    let w = cholesky.build(&[("n", ParamValue::Int(96)), ("tile", ParamValue::Int(32))], 4, 5).unwrap();
    let info = dagwire_strategies::find("batched").unwrap();
    let params = Params::resolve(&(info.params)(), Default::default()).unwrap();
    let before = batched::plans_made();
    let per_rank: Vec<_> = (0..4).map(|r| info.factory(&params, w.dag(), 3)(dagwire_runtime::Rank(r))).collect();
    assert_eq!((batched::plans_made() - before, per_rank.len()), (4, 4));
}
