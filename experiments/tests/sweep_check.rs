//! A sweep checks every point before the first runs without building any point's DAG
//! (a 1024-rank all-to-all DAG takes tens of seconds and gigabytes to build); each DAG is
//! built when its point runs, once per run. Counted with the runtime's count of DAGs
//! finished on this thread (the check and the runs of in-process drivers happen here).

use dagwire_experiments::{plan, runner, sweep};
use dagwire_runtime::dag::finished_on_this_thread;
use std::path::Path;

fn sweep_of(ranks: &str) -> sweep::Sweep {
    let text = format!(
        r#"name = "alltoall"
repetitions = 2
[grid]
workload = "micro"
strategy = "eager"
driver = "sim"
ranks = {ranks}
[grid.sim]
machine = "ib-hdr-fattree"
fidelity = "analytic"
kernels = "model"
trace = "counts"
[grid.micro]
pattern = "alltoall"
size = [1024, 65536]
iterations = 10
warmup = 0
"#
    );
    sweep::parse(Path::new("alltoall.toml"), &text).unwrap()
}

#[test]
fn checking_a_sweep_builds_no_dag() {
    let s = sweep_of("[4, 256, 1024]");
    let before = finished_on_this_thread();
    let points = plan::expand(&s).unwrap();
    assert_eq!(points.len(), 6);
    assert_eq!(finished_on_this_thread(), before, "the check built DAGs");
}

#[test]
fn each_run_builds_its_dag_once() {
    let s = sweep_of("[2, 4]");
    let mut points = plan::expand(&s).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let before = finished_on_this_thread();
    let outcome = runner::run_sweep(&s, &mut points, &tmp.path().join("out"), false).unwrap();
    assert_eq!(outcome.records.len(), 8);
    assert!(outcome.records.iter().all(|r| r.error.is_none()), "{:?}", outcome.records[0].error);
    assert_eq!(finished_on_this_thread() - before, 8, "one DAG per run (4 points, 2 repetitions)");
}
