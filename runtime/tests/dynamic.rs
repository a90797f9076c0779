//! Dynamic scheduling on the local driver: task priorities order a rank's ready
//! tasks (ties in id order); chunks sized at run time move their real size, and the
//! trace records it; an output above its bound is refused; tasks placed at run time
//! run where every registered policy decides, and a policy that decides differently
//! on two ranks is caught with a clear error.

mod common;

use common::Push;
use common::dynamic::{self, Recording};
use dagwire_runtime::drivers::local::{LocalConfig, run};
use dagwire_runtime::{DagBuilder, Progress, Rank, Strategy, TaskSpec};
use std::sync::Arc;
use std::time::Duration;

fn push(_: Rank) -> Box<dyn Strategy> {
    Box::new(Push)
}

fn config(ranks: usize, progress: Progress) -> LocalConfig {
    LocalConfig { ranks, workers: 1, progress, timeout: Duration::from_secs(30), fault: None }
}

#[test]
fn priorities_order_the_ready_tasks_on_local_with_either_progress() {
    for progress in [Progress::Inline, Progress::Thread] {
        let (dag, expected) = dynamic::priorities();
        let kernels = Recording::default();
        run(&dag, &kernels, &push, &config(1, progress)).unwrap();
        assert_eq!(*kernels.order.lock().unwrap(), expected, "{progress:?}");
    }
}

#[test]
fn chunks_sized_at_run_time_move_their_real_size_on_local() {
    for ranks in [1, 3] {
        let (dag, parts, result) = dynamic::sized(ranks);
        let out = run(&dag, &Recording::default(), &push, &config(ranks, Progress::Auto)).unwrap();
        dynamic::check_sized(ranks, &parts, &out.results[&result], &out.trace).unwrap();
        let data: Vec<u64> = out.trace.messages.iter().map(|m| m.bytes).collect();
        let mut expected: Vec<u64> = (2..=ranks as u64).map(|r| r * 8).collect();
        let mut sorted = data.clone();
        sorted.sort_unstable();
        expected.sort_unstable();
        assert_eq!(sorted, expected, "each message carries the real size, not the bound of 512");
    }
}

#[test]
fn an_output_above_its_bound_is_refused() {
    let mut b = DagBuilder::new(1);
    // FILL writes args[1] = 9 f64s (72 bytes) into a chunk bounded by 64.
    b.add(TaskSpec::new(dynamic::FILL, Rank(0)).args([1, 9, 0, 0]).bounded_outputs(&[64]));
    let err = run(&Arc::new(b.finish()), &Recording::default(), &push, &config(1, Progress::Inline)).unwrap_err();
    assert!(err.to_string().contains("returned outputs of [72] bytes, the DAG declares [64]"), "{err}");
}

#[test]
fn tasks_placed_at_run_time_run_where_each_policy_decides_on_local() {
    for policy in dagwire_runtime::policies::REGISTRY {
        for ranks in [2, 3, 4] {
            let (dag, decided, combined) = dynamic::placed(ranks, *policy);
            let out = run(&dag, &Recording::default(), &push, &config(ranks, Progress::Auto))
                .unwrap_or_else(|e| panic!("{} on {ranks}: {e}", policy.name()));
            let expected = dynamic::placed_expected(policy.name(), ranks);
            dynamic::check_placed(&out.results, &decided, &combined, &expected)
                .unwrap_or_else(|e| panic!("{} on {ranks}: {e}", policy.name()));
            // Only the picked shadows ran a kernel: one WORK record per slot with time in it
            // is not guaranteed, but the data messages are: each slot's values travel to
            // the picked rank and back unless it is the source.
            assert_eq!(out.trace.tasks.len(), dag.task_count(), "every task, engine-run or not, is recorded");
        }
    }
}

#[test]
fn a_policy_that_decides_differently_on_two_ranks_is_caught() {
    for ranks in [2, 3] {
        let (dag, _, _) = dynamic::placed(ranks, &dynamic::Contrary);
        let err = run(&dag, &Recording::default(), &push, &config(ranks, Progress::Auto)).unwrap_err().to_string();
        assert!(err.contains("run-time placement") && err.contains("differs between ranks"), "{err}");
    }
}
