//! The local driver's bounds: a point asking for more threads than the machine holds
//! is refused at the check, and a run whose threads do not fit the process's address
//! space (`ulimit -v`) fails at once with a clear error before any thread starts (it
//! used to hang, or abort the whole process when a thread's signal stack did not fit).

mod common;

use common::Push;
use dagwire_runtime::drivers::local::{self, LocalConfig, run};
use dagwire_runtime::drivers::{CheckKey, DriverCheck};
use dagwire_runtime::{
    DagBuilder, KernelId, Kernels, Params, Payload, Progress, Rank, RunError, Strategy, Task, TaskSpec,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Fill;

impl Kernels for Fill {
    fn run(&self, _task: &Task, _inputs: Vec<Payload>) -> Result<Vec<Payload>, String> {
        Ok(vec![Payload::from_bytes(&[1; 8])])
    }
}

#[test]
fn more_threads_than_the_machine_holds_are_refused_at_the_check_naming_ranks() {
    let params = Params::default();
    let check = |ranks, workers| (local::DRIVER.check)(&DriverCheck { params: &params, ranks, workers, fault: None });
    assert!(check(4, 2).is_ok());
    let limit = local::thread_limit();
    assert!(check(limit, 0).is_ok(), "exactly the limit is allowed");
    let e = check(limit / 2 + 1, 1).expect_err("(limit/2 + 1) x 2 threads exceed the limit");
    assert_eq!(e.key, CheckKey::Axis("ranks"));
    assert!(e.reason.contains("threads") && e.reason.contains("sim driver"), "{}", e.reason);
    // No overflow on absurd sizes.
    let e = check(usize::MAX, usize::MAX).expect_err("refused");
    assert!(e.reason.contains("threads"), "{}", e.reason);
}

/// The environment variable that makes [`child_runs_more_ranks_than_its_address_space_holds`] run.
const CHILD: &str = "DAGWIRE_LOCAL_LIMITS_CHILD";

/// Runs in a child process whose address space is capped (`ulimit -v`), so rank
/// threads cannot all get their stacks: the run must fail at once, naming the limit.
#[test]
fn child_runs_more_ranks_than_its_address_space_holds() {
    if std::env::var(CHILD).is_err() {
        return;
    }
    let ranks = 4000;
    let mut b = DagBuilder::new(ranks);
    b.add(TaskSpec::new(KernelId(0), Rank(0)).outputs(&[8]));
    let dag = Arc::new(b.finish());
    let strategy = |_: Rank| -> Box<dyn Strategy> { Box::new(Push) };
    let cfg = LocalConfig { ranks, workers: 1, progress: Progress::Inline, ..LocalConfig::default() };
    let started = Instant::now();
    let e = run(&dag, &Fill, &strategy, &cfg).expect_err("the address space cannot hold 4000 thread stacks");
    assert!(started.elapsed() < Duration::from_secs(30), "failed at once, not after a timeout");
    let RunError::Config(text) = &e else { panic!("a configuration error, got {e}") };
    assert!(
        text.contains("could not start the threads of 4000 ranks")
            && text.contains("(ulimit -v)")
            && text.contains("fewer ranks"),
        "{text}"
    );
    println!("CHILD-OK: {text}");
}

#[test]
fn a_thread_the_system_refuses_fails_the_run_with_the_rank_instead_of_hanging() {
    let exe = std::env::current_exe().unwrap();
    // 1.5 GB of address space: the test binary fits, 4000 stacks of 2 MiB do not.
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 1500000 && exec \"$0\" --exact child_runs_more_ranks_than_its_address_space_holds --nocapture")
        .arg(&exe)
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stdout.contains("CHILD-OK"), "child failed:\n{stdout}\n{stderr}");
}
