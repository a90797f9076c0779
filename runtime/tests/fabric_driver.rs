//! The libfabric driver with real providers (`tcp`, which libfabric runs as
//! `tcp;ofi_rxm`, and `shm`), ranks as processes started by the driver's own local
//! launcher: 2 and 3 ranks run a plan with many small and large messages, kept in each
//! source's order, and gather the right sums to rank 0; payloads around the inject size
//! and around the pool's largest (64 KiB, and one byte more, which the pool does not
//! take) arrive intact in bursts deeper than the pool's credits, and a corrupted one
//! fails the check; registered memory (a window
//! and exposed payloads) round-trips bytes at offsets through `fi_read` and
//! `fi_writemsg`; a failing kernel and a killed
//! rank end the job within seconds, naming the rank; an unknown provider is refused with
//! the list of those available. Run by `cargo test` (feature `fabric`), this program
//! starts itself as the ranks.

mod common;

use common::{Push, Sequenced};
use dagwire_runtime::drivers::fabric::{self, FabricConfig, FabricJob, raw};
use dagwire_runtime::drivers::launch;
use dagwire_runtime::{ChunkId, DagBuilder, KernelId, Kernels, Payload, Rank, Strategy, Task, TaskSpec};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a rank process does (the test's parent sets it).
const MODE: &str = "DAGWIRE_TEST_FABRIC_MODE";
/// The provider the ranks use.
const PROVIDER: &str = "DAGWIRE_TEST_FABRIC_PROVIDER";

fn main() {
    if let Ok(mode) = std::env::var(MODE) {
        let job = FabricJob::from_env().expect("started by the local launcher");
        let provider = std::env::var(PROVIDER).expect("the parent names the provider");
        match mode.as_str() {
            "sums" => sums_main(&job, &provider),
            "failing" => failing_main(&job, &provider),
            "killed" => killed_main(&job, &provider),
            "memory" => memory_main(&job, &provider),
            "sizes" => sizes_main(&job, &provider, None),
            "sizes-corrupt" => sizes_main(&job, &provider, Some(CORRUPTED)),
            "sizes-corrupt-pool" => sizes_main(&job, &provider, Some(CORRUPTED_POOL)),
            "pool-burst" => pool_burst_main(&job, &provider),
            m => panic!("unknown mode {m}"),
        }
        return;
    }
    unknown_provider_is_refused_with_the_available_ones();
    for provider in ["tcp", "shm"] {
        for ranks in [2, 3] {
            let job = start(provider, ranks, "sums");
            assert!(job.0.success(), "{provider}, {ranks} ranks: {:?}\n{}", job.0.failure(), job.1);
            let job = start(provider, ranks, "memory");
            assert!(job.0.success(), "{provider}, {ranks} ranks, memory: {:?}\n{}", job.0.failure(), job.1);
            assert!(job.1.contains("memory round trip checked"), "{provider}, {ranks} ranks:\n{}", job.1);
            let job = start(provider, ranks, "sizes");
            assert!(job.0.success(), "{provider}, {ranks} ranks, sizes: {:?}\n{}", job.0.failure(), job.1);
            // More pool-sized payloads than credits, from every rank at once: the pool's
            // credits run out and come back (never more than granted, or the rank fails
            // saying so), the rest takes the paths without the pool, nothing hangs.
            let job = start(provider, ranks, "pool-burst");
            assert!(job.0.success(), "{provider}, {ranks} ranks, pool burst: {:?}\n{}", job.0.failure(), job.1);
        }
        // The check that passes above catches a flipped bit in a message of the inject size.
        let limit = raw::Endpoint::open(provider).expect("the endpoint opens").inject_limit().expect("64-bit data");
        let (job, stderr) = start(provider, 2, "sizes-corrupt");
        assert!(!job.success(), "{provider}: a corrupted message went unnoticed:\n{stderr}");
        let named = format!("input {CORRUPTED} of rank");
        let sized = format!("{limit} bytes, {limit} expected; byte Some(");
        assert!(
            stderr.contains(&named) && stderr.contains(&sized),
            "{provider}: the failure does not name the corrupted message of the inject size:\n{stderr}"
        );
        // And one in the pool: 64 KiB, sent while credits are left.
        let (job, stderr) = start(provider, 2, "sizes-corrupt-pool");
        assert!(!job.success(), "{provider}: a corrupted pooled message went unnoticed:\n{stderr}");
        let named = format!("input {CORRUPTED_POOL} of rank");
        let sized = format!("{} bytes, {} expected; byte Some(", fabric::POOL_BYTES, fabric::POOL_BYTES);
        assert!(
            stderr.contains(&named) && stderr.contains(&sized),
            "{provider}: the failure does not name the corrupted pooled message:\n{stderr}"
        );
        let started = Instant::now();
        let (job, stderr) = start(provider, 3, "failing");
        assert_eq!(job.failed.map(|(r, _)| r), Some(1), "{provider}: rank 1 should fail first:\n{stderr}");
        assert!(
            stderr.contains("rank 1 failed: task t1 (kernel 9) on rank r1 failed: kernel 9 refuses"),
            "{provider}: the failure does not name the rank, task and reason:\n{stderr}"
        );
        let (job, stderr) = start(provider, 3, "killed");
        let (rank, status) = job.failed.expect("a killed rank fails the job");
        assert_eq!(rank, 2, "{provider}: {stderr}");
        assert!(job.failure().unwrap().contains("rank 2 was killed by signal 9"), "{:?}", job.failure());
        assert!(!status.success());
        assert!(started.elapsed() < Duration::from_secs(30), "{provider}: failures took {:?}", started.elapsed());
    }
}

/// Starts this program as `ranks` ranks in `mode`; returns how the job ended and the ranks' stderr.
fn start(provider: &str, ranks: usize, mode: &str) -> (launch::LocalJob, String) {
    let dir =
        std::env::temp_dir().join(format!("dagwire-fabric-test-{}-{provider}-{ranks}-{mode}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a log directory");
    let log = |r: usize| dir.join(format!("rank-{r}.err"));
    let exe = std::env::current_exe().expect("own path");
    let job = launch::run(
        ranks,
        |r| {
            let mut cmd = Command::new(&exe);
            cmd.env(MODE, mode)
                .env(PROVIDER, provider)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(log(r)).expect("a log file"));
            cmd
        },
        Duration::from_secs(60),
    )
    .expect("the ranks start");
    let stderr = (0..ranks).map(|r| std::fs::read_to_string(log(r)).unwrap_or_default()).collect::<Vec<_>>().join("");
    let _ = std::fs::remove_dir_all(&dir);
    (job, stderr)
}

fn unknown_provider_is_refused_with_the_available_ones() {
    let available = raw::providers();
    assert!(available.iter().any(|p| p == "shm"), "shm is not listed: {available:?}");
    assert!(available.iter().any(|p| p.starts_with("tcp")), "tcp is not listed: {available:?}");
    let Err(e) = raw::Endpoint::open("no-such-provider") else { panic!("an unknown provider opened") };
    assert!(e.0.contains("no libfabric provider `no-such-provider`") && e.0.contains("shm"), "{e}");
}

fn config(provider: &str) -> FabricConfig {
    FabricConfig {
        provider: provider.into(),
        workers: 1,
        progress: dagwire_runtime::Progress::Auto,
        timeout: Duration::from_secs(30),
        fault: None,
    }
}

/// Kernel 0 writes `args[0]` repeated over `args[1]` f64s; kernel 9 fails; any other
/// sums every value of its inputs.
struct Sums;

impl Kernels for Sums {
    fn run(&self, task: &Task, inputs: Vec<Payload>) -> Result<Vec<Payload>, String> {
        Ok(vec![match task.kernel.0 {
            0 => Payload::from_f64(vec![task.args[0] as f64; task.args[1] as usize]),
            9 => return Err("kernel 9 refuses".into()),
            _ => Payload::from_f64(vec![inputs.iter().flat_map(|p| p.as_f64()).sum()]),
        }])
    }
}

/// Every rank makes 40 values, alternately small and above the inline limit; every rank
/// sums everyone's values (so every pair of ranks exchanges 80 messages in order).
fn sums_main(job: &FabricJob, provider: &str) {
    // Two runs of different DAGs in one job (as calibration and benchmarks do): each
    // bootstraps afresh, never reading the other run's addresses and plan.
    sums_run(job, provider, 40);
    sums_run(job, provider, 7);
}

fn sums_run(job: &FabricJob, provider: &str, values: u32) {
    use dagwire_runtime::drivers::JobRank;
    let n = job.size();
    let mut b = DagBuilder::new(n);
    let lens = |i: u32| if i.is_multiple_of(2) { 3 } else { (fabric::INLINE_LIMIT / 8) as u32 * 3 + 1 };
    let mut parts: Vec<ChunkId> = Vec::new();
    for r in 0..n as u32 {
        for i in 0..values {
            let len = lens(i);
            let bytes = [len as u64 * 8];
            let spec = TaskSpec::new(KernelId(0), Rank(r)).args([r + i, len, 0, 0]).outputs(&bytes);
            parts.push(b.add(spec).output(0));
        }
    }
    for r in 0..n as u32 {
        b.add(TaskSpec::new(KernelId(1), Rank(r)).inputs(&parts).outputs(&[8]));
    }
    let dag = Arc::new(b.finish());
    let results: Vec<ChunkId> = dag.results().to_vec();
    let strategy = |_: Rank| -> Box<dyn Strategy> { Box::<Sequenced>::default() };
    let out = fabric::run(job, &dag, &Sums, &strategy, &config(provider)).unwrap_or_else(|e| panic!("{e}"));
    let expected: f64 = (0..n as u32).flat_map(|r| (0..values).map(move |i| (r + i) as f64 * lens(i) as f64)).sum();
    match out {
        Some(out) => {
            assert_eq!(job.rank(), 0, "only rank 0 gets the outcome");
            assert_eq!(out.results.len(), n);
            for c in results {
                assert_eq!(out.results[&c].as_f64(), &[expected], "result {c:?}");
            }
            let t = out.trace.message_totals();
            assert_eq!(t.data_messages as usize, n * (n - 1) * values as usize, "{t:?}");
        }
        None => assert_ne!(job.rank(), 0),
    }
}

/// Payload sizes around the provider's inject size (the largest message whose header
/// travels in its tag and completion data; just above it, the pool's), then one above
/// the inline limit (the pool's while a credit is left, else pulled with `fi_read`), the
/// pool's largest and one byte more (always pulled).
fn sizes_around(limit: usize) -> Vec<usize> {
    let mut sizes: Vec<usize> = [limit.saturating_sub(8), limit.saturating_sub(1), limit, limit + 1, limit + 8]
        .into_iter()
        .filter(|&s| s > 0)
        .collect();
    sizes.extend([1, 3 * fabric::INLINE_LIMIT + 1, fabric::POOL_BYTES, fabric::POOL_BYTES + 1]);
    sizes
}

/// Rounds of [`sizes_around`] each rank sends each other rank: more than 64 messages per
/// pair, so the later ones carry an `arg` too large for a header in the tag and take the
/// mailbox, interleaved in one source's order with those before.
const SIZE_ROUNDS: usize = 11;

/// The data message each rank corrupts in `sizes-corrupt`: with 2 ranks, its third
/// (round 0's payload of exactly the inject size).
const CORRUPTED: usize = 2;

/// The data message each rank corrupts in `sizes-corrupt-pool`: with 2 ranks, round 0's
/// payload of [`fabric::POOL_BYTES`] (sent into the pool: 16 credits granted, at most 4
/// spent before it).
const CORRUPTED_POOL: usize = 7;

/// Byte `i` of the payload seeded `seed`: a shifted, dropped or reordered byte changes it.
fn pattern(seed: u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(31).wrapping_add(seed.wrapping_mul(131)).wrapping_add((i >> 8) as u32) as u8)
        .collect()
}

/// Kernel 2 writes `pattern(args[0], args[1])`; kernel 3 checks that each input `k` is
/// `pattern` of the `k`th chunk of the plan, byte for byte, and fails naming the first
/// that differs.
struct Patterns {
    sizes: Vec<usize>,
    rounds: usize,
    ranks: usize,
    me: usize,
}

impl Kernels for Patterns {
    fn run(&self, task: &Task, inputs: Vec<Payload>) -> Result<Vec<Payload>, String> {
        if task.kernel.0 == 2 {
            return Ok(vec![Payload::from_bytes(&pattern(task.args[0], task.args[1] as usize))]);
        }
        let from: Vec<usize> = (0..self.ranks).filter(|&r| r != self.me).collect();
        let per_rank = self.sizes.len() * self.rounds;
        assert_eq!(inputs.len(), from.len() * per_rank);
        for (k, input) in inputs.iter().enumerate() {
            let (r, i) = (from[k / per_rank], k % per_rank);
            let want = pattern(seed(r, i), self.sizes[i % self.sizes.len()]);
            if input.as_bytes() != want {
                let at = input.as_bytes().iter().zip(&want).position(|(a, b)| a != b);
                return Err(format!(
                    "input {i} of rank {r}'s chunks: {} bytes, {} expected; byte {at:?} differs",
                    input.len(),
                    want.len()
                ));
            }
        }
        Ok(vec![Payload::zeroed(8)])
    }
}

fn seed(rank: usize, i: usize) -> u32 {
    (rank * 1000 + i) as u32
}

/// Every rank sends every other rank payloads of sizes around the inject limit and the
/// pool's, in rounds; each receiver checks every byte (kernel 3) and the trace's send times.
fn sizes_main(job: &FabricJob, provider: &str, corrupt: Option<usize>) {
    let limit = raw::Endpoint::open(provider).expect("the endpoint opens").inject_limit();
    if provider == "shm" {
        assert_eq!(limit, Some(4096), "shm injects 4096 bytes with 64 bits of completion data here");
    }
    let sizes = sizes_around(limit.unwrap_or(fabric::INLINE_LIMIT));
    assert_eq!(sizes[CORRUPTED_POOL], fabric::POOL_BYTES);
    patterns_main(job, provider, sizes, SIZE_ROUNDS, corrupt);
}

/// Every rank sends every other rank 24 payloads of the pool's largest size and 24 of one
/// byte more, at once (all with a header in the tag: fewer than 64 per pair), so pooled
/// messages outnumber the credits (16 with 2 ranks, 8 with 3).
fn pool_burst_main(job: &FabricJob, provider: &str) {
    patterns_main(job, provider, vec![fabric::POOL_BYTES, fabric::POOL_BYTES + 1], 24, None);
}

/// Every rank sends every other rank `rounds` rounds of payloads of `sizes`; each receiver
/// checks every byte (kernel 3) and the trace's send times.
fn patterns_main(job: &FabricJob, provider: &str, sizes: Vec<usize>, rounds: usize, corrupt: Option<usize>) {
    use dagwire_runtime::drivers::JobRank;
    let n = job.size();
    let mut b = DagBuilder::new(n);
    let mut parts = vec![Vec::new(); n];
    for (r, mine) in parts.iter_mut().enumerate() {
        for i in 0..sizes.len() * rounds {
            let len = sizes[i % sizes.len()];
            let bytes = [len as u64];
            let spec = TaskSpec::new(KernelId(2), Rank(r as u32)).args([seed(r, i), len as u32, 0, 0]).outputs(&bytes);
            mine.push(b.add(spec).output(0));
        }
    }
    for r in 0..n {
        let inputs: Vec<ChunkId> = (0..n).filter(|&q| q != r).flat_map(|q| parts[q].clone()).collect();
        b.add(TaskSpec::new(KernelId(3), Rank(r as u32)).inputs(&inputs).outputs(&[8]));
    }
    let dag = Arc::new(b.finish());
    let strategy = |_: Rank| -> Box<dyn Strategy> { Box::<Sequenced>::default() };
    let cfg = FabricConfig {
        fault: corrupt.map(|nth| dagwire_runtime::Fault::CorruptDataMessage { nth: nth as u64 }),
        ..config(provider)
    };
    let kernels = Patterns { sizes, rounds, ranks: n, me: job.rank() };
    let result = fabric::run(job, &dag, &kernels, &strategy, &cfg);
    if result.is_ok() {
        // Every rank's peers sent payloads the pool takes while credits last.
        assert!(fabric::pooled_received() > 0, "rank {}: no message came through the pool", job.rank());
    }
    match result {
        Ok(Some(out)) => {
            let t = &out.trace;
            assert_eq!(t.messages.len(), n * (n - 1) * kernels.sizes.len() * rounds);
            for m in &t.messages {
                // Send times restored from 39 bits: within the run, never after arrival
                // by more than the ranks' clock offsets. Those are at most half the best
                // of the start-up's clock round trips: microseconds on a quiet host, over
                // a millisecond on a loaded 2-core one (seen in CI: 1.2 ms), so allow
                // 100 ms; a wrong restoration is off by a multiple of 2^39 ns (9 minutes).
                assert!(m.sent_ns <= out.makespan_ns && m.sent_ns <= m.recv_ns + 100_000_000, "{m:?}");
            }
        }
        Ok(None) => assert_ne!(job.rank(), 0),
        Err(e) => {
            eprintln!("rank {} failed: {e}", job.rank());
            job.abort(3);
        }
    }
}

/// Rank 1's only task fails; it says why and exits, while the others wait for it.
fn failing_main(job: &FabricJob, provider: &str) {
    use dagwire_runtime::drivers::JobRank;
    let n = job.size();
    let mut b = DagBuilder::new(n);
    let first = b.add(TaskSpec::new(KernelId(0), Rank(0)).args([1, 1, 0, 0]).outputs(&[8])).output(0);
    b.add(TaskSpec::new(KernelId(9), Rank(1)).inputs(&[first]).outputs(&[8]));
    b.add(TaskSpec::new(KernelId(1), Rank(2)).inputs(&[first]).outputs(&[8]));
    let push = |_: Rank| -> Box<dyn Strategy> { Box::new(Push) };
    if let Err(e) = fabric::run(job, &Arc::new(b.finish()), &Sums, &push, &config(provider)) {
        eprintln!("rank {} failed: {e}", job.rank());
        job.abort(3);
    }
}

/// Rank 2 is killed (SIGKILL) in the middle of the run; the others wait for its data.
fn killed_main(job: &FabricJob, provider: &str) {
    use dagwire_runtime::drivers::JobRank;
    let n = job.size();
    let mut b = DagBuilder::new(n);
    let from2 = b.add(TaskSpec::new(KernelId(0), Rank(2)).args([1, 1, 0, 0]).outputs(&[8])).output(0);
    b.add(TaskSpec::new(KernelId(1), Rank(0)).inputs(&[from2]).outputs(&[8]));
    b.add(TaskSpec::new(KernelId(1), Rank(1)).inputs(&[from2]).outputs(&[8]));
    struct KillsRank2;
    impl Kernels for KillsRank2 {
        fn run(&self, task: &Task, inputs: Vec<Payload>) -> Result<Vec<Payload>, String> {
            if task.owner == Rank(2) {
                let _ = Command::new("kill").args(["-KILL", &std::process::id().to_string()]).status();
                std::thread::sleep(Duration::from_secs(60));
            }
            Sums.run(task, inputs)
        }
    }
    let push = |_: Rank| -> Box<dyn Strategy> { Box::new(Push) };
    if let Err(e) = fabric::run(job, &Arc::new(b.finish()), &KillsRank2, &push, &config(provider)) {
        eprintln!("rank {} failed: {e}", job.rank());
        job.abort(3);
    }
}

/// Registered memory on the raw endpoint: every rank registers a 4 KiB window and
/// exposes a payload; each writes a pattern at an odd offset of the next rank's window
/// and reads a slice at an odd offset of the previous rank's payload and window, then
/// (after a barrier of tagged messages) checks the bytes its own window received.
fn memory_main(job: &FabricJob, provider: &str) {
    use dagwire_runtime::drivers::JobRank;
    use raw::{Completion, Endpoint, MemoryKey};
    let (rank, n) = (job.rank(), job.size());
    let dir = std::path::PathBuf::from(std::env::var(fabric::JOB_DIR_ENV).expect("the launcher sets it"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut ep = Endpoint::open(provider).expect("the endpoint opens");
    let window = ep.register_window(4096).expect("the window registers");
    let exposed: Vec<u8> = (0..1000u32).map(|i| (i * 7 + rank as u32) as u8).collect();
    let (region, key) = ep.register(Payload::from_bytes(&exposed)).expect("the payload registers");
    assert_eq!(ep.regions(), 2);
    // Barrier receives and the window's initial bytes, before anyone knows our address.
    let barrier = |ep: &mut Endpoint, round: u32| {
        let posted: Vec<u64> =
            (0..n).filter(|&r| r != rank).map(|r| ep.post_recv_bytes(fabric::tag(15, r, round), 0).unwrap()).collect();
        posted
    };
    let first = barrier(&mut ep, 0);
    ep.window_write(0, &[0xee; 16]).unwrap();
    // Publish name and keys.
    let mut mine = Vec::new();
    for w in [window.addr, window.key, key.addr, key.key] {
        mine.extend_from_slice(&w.to_le_bytes());
    }
    mine.extend_from_slice(&ep.name().unwrap());
    std::fs::write(dir.join(format!(".m{rank}")), &mine).unwrap();
    std::fs::rename(dir.join(format!(".m{rank}")), dir.join(format!("m{rank}"))).unwrap();
    let mut names = Vec::new();
    let mut keys = Vec::new();
    for r in 0..n {
        let b = loop {
            match std::fs::read(dir.join(format!("m{r}"))) {
                Ok(b) if b.len() > 32 => break b,
                _ => std::thread::sleep(Duration::from_millis(5)),
            }
        };
        let w = |i: usize| u64::from_le_bytes(b[8 * i..8 * i + 8].try_into().unwrap());
        keys.push((MemoryKey { addr: w(0), key: w(1), len: 4096 }, MemoryKey { addr: w(2), key: w(3), len: 1000 }));
        names.push(b[32..].to_vec());
    }
    ep.insert_peers(&names).unwrap();
    let (next, prev) = ((rank + 1) % n, (rank + n - 1) % n);
    let pattern = |from: usize| -> Vec<u8> { (0..300u32).map(|i| (i as usize * 3 + from * 11 + 1) as u8).collect() };
    let at = |from: usize| 8 * from as u64 + 101;
    ep.write(next, keys[next].0, at(rank), Payload::from_bytes(&pattern(rank)), 1).unwrap();
    ep.read(prev, keys[prev].1, 37, 500, 2).unwrap();
    ep.read(prev, keys[prev].0, 0, 16, 3).unwrap();
    let mut done = Vec::new();
    let mut got = std::collections::BTreeMap::new();
    while got.len() < 3 {
        assert!(Instant::now() < deadline, "one-sided operations did not complete: {got:?}");
        ep.poll(&mut done).unwrap();
        for c in done.drain(..) {
            match c {
                Completion::Read { token, data } => drop(got.insert(token, Some(data))),
                Completion::Written { token } => drop(got.insert(token, None)),
                c => panic!("unexpected completion {c:?}"),
            }
        }
    }
    let expected: Vec<u8> = (37..537u32).map(|i| (i * 7 + prev as u32) as u8).collect();
    assert_eq!(got[&2].as_ref().unwrap().as_bytes(), &expected[..], "read of rank {prev}'s payload at offset 37");
    assert_eq!(got[&3].as_ref().unwrap().as_bytes(), &[0xee; 16], "read of rank {prev}'s window at offset 0");
    // Barrier: every write is complete (delivered) before anyone checks its window.
    let tell = |ep: &mut Endpoint, round: u32| {
        for r in (0..n).filter(|&r| r != rank) {
            ep.send_blocking(r, fabric::tag(15, rank, round), Vec::new(), deadline).unwrap();
        }
    };
    let second = barrier(&mut ep, 1);
    tell(&mut ep, 0);
    first.into_iter().for_each(|t| drop(ep.wait_recv(t, deadline).unwrap()));
    let mine = ep.window_read(at(prev), 300).unwrap();
    assert_eq!(mine.as_bytes(), &pattern(prev)[..], "rank {prev}'s write into this window at offset {}", at(prev));
    assert!(ep.window_read(4090, 8).unwrap_err().contains("past the end of a 4096-byte window"));
    // Keep the memory registered until every rank is done reading it.
    tell(&mut ep, 1);
    second.into_iter().for_each(|t| drop(ep.wait_recv(t, deadline).unwrap()));
    ep.deregister(region).unwrap();
    assert_eq!(ep.regions(), 1);
    assert!(ep.deregister(region).is_err(), "a region deregisters once");
    eprintln!("rank {rank}: memory round trip checked");
}
