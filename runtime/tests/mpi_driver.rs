//! The mpi driver under a real MPI job: ranks with the same plan run it and gather every
//! result to rank 0; ranks that built different plans all fail with the same clear error
//! instead of hanging; a kernel that fails on one rank fails that rank with the task,
//! the rank and the kernel's reason, and the job ends. Dynamic scheduling: run-time-sized
//! chunks and run-time placement decide and move as on the other drivers, and a policy
//! that decides differently on each rank fails the job naming the disagreement. Run by `cargo test` (feature
//! `mpi`), this program launches itself with `mpirun -n 3` (`DAGWIRE_MPI_LAUNCHER`,
//! `DAGWIRE_MPI_LAUNCHER_ARGS` override the launcher and its `--oversubscribe`).

mod common;

use common::{Push, Sequenced};
use dagwire_runtime::drivers::mpi::{self, Mpi, MpiConfig};
use dagwire_runtime::{ChunkId, DagBuilder, KernelId, Kernels, Payload, Rank, RunError, Strategy, Task, TaskSpec};
use std::process::Command;
use std::sync::Arc;

/// Set for the job whose kernel fails on rank 1.
const FAILING: &str = "DAGWIRE_TEST_FAILING_KERNEL";
/// Set for the job whose placement policy decides differently on every rank.
const CONTRARY: &str = "DAGWIRE_TEST_CONTRARY_POLICY";

fn main() {
    if Mpi::launched() {
        if std::env::var_os(FAILING).is_some() {
            failing_kernel_main()
        } else if std::env::var_os(CONTRARY).is_some() {
            contrary_policy_main()
        } else {
            ranks_main()
        }
        return;
    }
    let ok = launch(None);
    assert!(ok.ended, "the driver checks did not end within {LIMIT:?}:\n{}", ok.stderr);
    assert!(ok.success, "the driver checks failed:\n{}", ok.stderr);
    let contrary = launch(Some(CONTRARY));
    assert!(!contrary.success, "a policy deciding differently on each rank did not fail the job");
    assert!(
        contrary.stderr.contains("run-time placement")
            && contrary.stderr.contains("the decision differs between ranks"),
        "the job's error does not say the ranks decided differently:\n{}",
        contrary.stderr
    );
    let failed = launch(Some(FAILING));
    assert!(!failed.success, "a failing kernel did not fail the job");
    assert!(
        failed.stderr.contains("rank 1 failed: task t1 (kernel 9) on rank r1 failed: kernel 9 refuses"),
        "the job's error does not name the rank, task and reason:\n{}",
        failed.stderr
    );
    // Open MPI 4.1 sometimes hangs (or crashes) tearing down an aborted job after every
    // rank is gone; the ranks ending is what the driver owns (`experiment run` kills
    // such a launcher shortly after the failure shows).
    assert!(failed.ended || failed.ranks_gone, "the ranks of the failed job were still running 10 s after the failure");
}

/// How long a launch may take before it is killed.
const LIMIT: std::time::Duration = std::time::Duration::from_secs(40);

/// What one launch of this program under the MPI launcher left.
struct Launch {
    /// The launcher exited by itself in time.
    ended: bool,
    success: bool,
    /// When it did not: whether every rank had already exited (the launcher alone hung).
    ranks_gone: bool,
    stderr: String,
}

/// Runs this program on 3 ranks (`job`: the variable that selects a failing job, where
/// rank 1 fails), killing the launcher and ranks after [`LIMIT`], or 10 s after the failing
/// rank said why.
fn launch(job: Option<&str>) -> Launch {
    let failing = job.is_some();
    use std::os::unix::process::CommandExt;
    let launcher = std::env::var("DAGWIRE_MPI_LAUNCHER").unwrap_or_else(|_| "mpirun".into());
    let args = std::env::var("DAGWIRE_MPI_LAUNCHER_ARGS").unwrap_or_else(|_| "--oversubscribe".into());
    let log =
        std::env::temp_dir().join(format!("dagwire-mpi-driver-{}-{}.err", std::process::id(), job.unwrap_or("ok")));
    let mut cmd = Command::new(&launcher);
    cmd.args(["-n", "3"])
        .args(args.split_whitespace())
        .arg(std::env::current_exe().expect("own path"))
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("a log file in the temp dir"))
        .process_group(0);
    if let Some(var) = job {
        cmd.env(var, "1");
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{launcher}` ({e}); install Open MPI (scripts/packages.txt)"));
    let started = std::time::Instant::now();
    let (mut status, mut limit) = (None, LIMIT);
    while status.is_none() && started.elapsed() < limit {
        status = child.try_wait().unwrap_or(None);
        std::thread::sleep(std::time::Duration::from_millis(50));
        // Once the failing rank has said why, the job should end within seconds.
        if failing && limit == LIMIT && std::fs::read_to_string(&log).is_ok_and(|e| e.contains("rank 1 failed")) {
            limit = started.elapsed() + std::time::Duration::from_secs(10);
        }
    }
    let ranks_gone = status.is_none() && children_all_exited(child.id());
    if status.is_none() {
        eprintln!("`{launcher}` had not exited after {limit:?} (ranks all gone: {ranks_gone}); killing it");
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", child.id())]).status();
    }
    let _ = child.wait();
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    Launch { ended: status.is_some(), success: status.is_some_and(|s| s.success()), ranks_gone, stderr }
}

/// Whether every child process of `parent` has exited (is a zombie), read from /proc.
fn children_all_exited(parent: u32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else { return false };
    entries.filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("stat")).ok()).all(|stat| {
        // "pid (comm) state ppid ...": the fields after the command name's last ')'.
        let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
        fields.get(1).and_then(|p| p.parse::<u32>().ok()) != Some(parent) || fields.first() == Some(&"Z")
    })
}

/// Rank 1's only task fails; it reports why and aborts the job while the others wait.
fn failing_kernel_main() {
    let mpi = Mpi::init().expect("MPI initialises");
    let n = mpi.size();
    let mut b = DagBuilder::new(n);
    let first = b.add(TaskSpec::new(KernelId(0), Rank(0)).args([1, 1, 0, 0]).outputs(&[8])).output(0);
    b.add(TaskSpec::new(KernelId(9), Rank(1)).inputs(&[first]).outputs(&[8]));
    let push = |_: Rank| -> Box<dyn Strategy> { Box::new(Push) };
    if let Err(e) = mpi::run(&mpi, &Arc::new(b.finish()), &Sums, &push, &MpiConfig::default()) {
        eprintln!("rank {} failed: {e}", mpi.rank());
        mpi.abort(3);
    }
    // Ranks 0 and 2 finish and wait in the gather for rank 1, which never reports.
}

/// Kernel 0 writes `args[0]` repeated over `args[1]` f64s; kernel 1 sums its inputs' first values.
struct Sums;

impl Kernels for Sums {
    fn run(&self, task: &Task, inputs: Vec<Payload>) -> Result<Vec<Payload>, String> {
        Ok(vec![match task.kernel.0 {
            0 => Payload::from_f64(vec![task.args[0] as f64; task.args[1] as usize]),
            9 => return Err("kernel 9 refuses".into()),
            _ => Payload::from_f64(vec![inputs.iter().map(|p| p.as_f64()[0]).sum()]),
        }])
    }
}

fn ranks_main() {
    let mpi = Mpi::init().expect("MPI initialises");
    let (me, n) = (mpi.rank(), mpi.size());
    let push = |_: Rank| -> Box<dyn Strategy> { Box::new(Push) };

    // Every rank makes a value (one small, one above the driver's inline limit);
    // rank 0 sums them.
    let plan = |owner_of_sum: u32| {
        let mut b = DagBuilder::new(n);
        let parts: Vec<ChunkId> = (0..n as u32)
            .map(|r| {
                let len = if r == 1 { 1 << 16 } else { 4 };
                b.add(TaskSpec::new(KernelId(0), Rank(r)).args([r + 1, len, 0, 0]).outputs(&[len as u64 * 8])).output(0)
            })
            .collect();
        b.add(TaskSpec::new(KernelId(1), Rank(owner_of_sum)).inputs(&parts).outputs(&[8]));
        Arc::new(b.finish())
    };
    let cfg = MpiConfig::default();
    let out = mpi::run(&mpi, &plan(0), &Sums, &push, &cfg).expect("same plans run");
    match out {
        Some(out) => {
            assert_eq!(me, 0, "only rank 0 gets the outcome");
            let expected: f64 = (1..=n).map(|r| r as f64).sum();
            let sum = out.results.values().find(|p| p.len() == 8).expect("the sum is a result");
            assert_eq!(sum.as_f64()[0], expected);
            assert_eq!(out.trace.tasks.len(), n + 1, "every rank's tasks gathered");
            assert!(out.makespan_ns > 0);
        }
        None => assert_ne!(me, 0),
    }

    in_order_burst(&mpi);
    timers_are_honoured(&mpi);

    // Rank 2 puts the sum elsewhere: a different plan, refused on every rank.
    let owner = if me == 2 { 1 } else { 0 };
    match mpi::run(&mpi, &plan(owner), &Sums, &push, &cfg) {
        Err(RunError::Config(msg)) => {
            assert!(msg.contains("ranks [2] built a different plan from rank 0"), "rank {me}: {msg}");
            assert!(msg.contains("DAG fingerprint"), "rank {me}: {msg}");
        }
        other => panic!("rank {me}: a different plan was not refused: {other:?}"),
    }
    mpi.barrier();
    dynamic_scheduling(&mpi);
}

/// Priorities order rank 0's ready tasks; chunks sized at run time move their real size
/// and the gathered trace records it; tasks placed at run time run where the policy
/// decides, every rank deciding alike.
fn dynamic_scheduling(mpi: &Mpi) {
    use common::dynamic::{self, Recording};
    let (me, n) = (mpi.rank(), mpi.size());
    let push = |_: Rank| -> Box<dyn Strategy> { Box::new(Push) };
    let cfg = MpiConfig::default();
    for progress in [dagwire_runtime::Progress::Inline, dagwire_runtime::Progress::Thread] {
        let (dag, expected) = dynamic::priorities_on(n);
        let kernels = Recording::default();
        let cfg = MpiConfig { progress, ..MpiConfig::default() };
        mpi::run(mpi, &dag, &kernels, &push, &cfg).unwrap_or_else(|e| panic!("rank {me}: {e}"));
        if me == 0 {
            assert_eq!(*kernels.order.lock().unwrap(), expected, "priority order under {progress:?}");
        }
    }
    let (dag, parts, result) = dynamic::sized(n);
    let out = mpi::run(mpi, &dag, &Recording::default(), &push, &cfg).unwrap_or_else(|e| panic!("rank {me}: {e}"));
    if let Some(out) = out {
        dynamic::check_sized(n, &parts, &out.results[&result], &out.trace).unwrap_or_else(|e| panic!("sized: {e}"));
        let mut bytes: Vec<u64> = out.trace.messages.iter().map(|m| m.bytes).collect();
        bytes.sort_unstable();
        assert_eq!(bytes, (2..=n as u64).map(|r| r * 8).collect::<Vec<_>>(), "real sizes on the wire");
    }
    for policy in dagwire_runtime::policies::REGISTRY {
        let (dag, decided, combined) = dynamic::placed(n, *policy);
        let out = mpi::run(mpi, &dag, &Recording::default(), &push, &cfg);
        let out = out.unwrap_or_else(|e| panic!("rank {me}, policy {}: {e}", policy.name()));
        if let Some(out) = out {
            let expected = dynamic::placed_expected(policy.name(), n);
            dynamic::check_placed(&out.results, &decided, &combined, &expected)
                .unwrap_or_else(|e| panic!("policy {}: {e}", policy.name()));
        }
    }
    mpi.barrier();
}

/// Every rank decides with a policy that picks another candidate on each rank: the
/// decision check fails every rank with a clear error, which it reports before the job
/// is aborted (as after any failure).
fn contrary_policy_main() {
    use common::dynamic::{self, Recording};
    let mpi = Mpi::init().expect("MPI initialises");
    let push = |_: Rank| -> Box<dyn Strategy> { Box::new(Push) };
    let (dag, _, _) = dynamic::placed(mpi.size(), &dynamic::Contrary);
    match mpi::run(&mpi, &dag, &Recording::default(), &push, &MpiConfig::default()) {
        Err(e) => {
            eprintln!("rank {} failed: {e}", mpi.rank());
            mpi.abort(3);
        }
        Ok(_) => eprintln!("rank {}: the contrary policy was not caught", mpi.rank()),
    }
}

/// Every other rank sends rank 0 a burst of many more messages than the driver posts
/// receives for, small ones inline and large ones (above the inline limit) with their
/// payload apart, interleaved; they must reach the strategy in sending order and sum right.
fn in_order_burst(mpi: &Mpi) {
    const BURST: u32 = 64;
    let n = mpi.size();
    let mut b = DagBuilder::new(n);
    let mut parts = Vec::new();
    for r in 1..n as u32 {
        for i in 0..BURST {
            let len = if i % 3 == 0 { 4096 } else { 2 };
            let bytes = [len as u64 * 8];
            parts.push(b.add(TaskSpec::new(KernelId(0), Rank(r)).args([i + 1, len, 0, 0]).outputs(&bytes)).output(0));
        }
    }
    b.add(TaskSpec::new(KernelId(1), Rank(0)).inputs(&parts).outputs(&[8]));
    let sequenced = |_: Rank| -> Box<dyn Strategy> { Box::new(Sequenced::default()) };
    let cfg = MpiConfig { progress: dagwire_runtime::Progress::Inline, ..MpiConfig::default() };
    let out = mpi::run(mpi, &Arc::new(b.finish()), &Sums, &sequenced, &cfg);
    let out = out.unwrap_or_else(|e| panic!("rank {}: the burst failed: {e}", mpi.rank()));
    if let Some(out) = out {
        let expected = (n - 1) as f64 * (BURST * (BURST + 1) / 2) as f64;
        let sum = out.results.values().find(|p| p.len() == 8).expect("the sum is a result");
        assert_eq!(sum.as_f64()[0], expected, "the burst's sum");
    }
}

/// Every rank holds its value 20 ms with a strategy timer before sending it to rank 0,
/// under both progress modes: the driver wakes for the timer, and the sum arrives.
fn timers_are_honoured(mpi: &Mpi) {
    use dagwire_runtime::drivers::testing::Delayed;
    const DELAY: u64 = 20_000_000;
    let n = mpi.size();
    for progress in [dagwire_runtime::Progress::Thread, dagwire_runtime::Progress::Inline] {
        let mut b = DagBuilder::new(n);
        let parts: Vec<ChunkId> = (0..n as u32)
            .map(|r| b.add(TaskSpec::new(KernelId(0), Rank(r)).args([r + 1, 1, 0, 0]).outputs(&[8])).output(0))
            .collect();
        b.add(TaskSpec::new(KernelId(1), Rank(0)).inputs(&parts).outputs(&[8]));
        let delayed = |_: Rank| -> Box<dyn Strategy> { Box::new(Delayed::new(DELAY)) };
        let cfg = MpiConfig { progress, ..MpiConfig::default() };
        let out = mpi::run(mpi, &Arc::new(b.finish()), &Sums, &delayed, &cfg);
        let out = out.unwrap_or_else(|e| panic!("rank {}: the delayed run failed: {e}", mpi.rank()));
        if let Some(out) = out {
            let expected: f64 = (1..=n).map(|r| r as f64).sum();
            let sum = out.results.values().find(|p| p.len() == 8);
            assert_eq!(sum.expect("the sum is a result").as_f64()[0], expected, "{progress:?}");
            for m in &out.trace.messages {
                let producer = out.trace.tasks.iter().find(|t| t.rank == m.src).expect("the sender ran a task");
                assert!(m.sent_ns >= producer.end_ns + DELAY, "{progress:?}: {m:?} left before its timer");
            }
        }
    }
}
