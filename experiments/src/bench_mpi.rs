//! `experiment bench mpi`: OSU-style ping-pong latency and streaming bandwidth through
//! the engine on the `mpi` driver, next to a raw rsmpi ping-pong and window of sends in
//! the same job, with their ratio. Two engine columns each:
//! - **micro**: the `micro` workload (eager strategy), whose kernels fill every message
//!   with a pattern and check every byte received — what a task-based program pays;
//! - **lean**: the same DAG shapes with kernels that only hand chunks on (the ping-pong
//!   moves one buffer back and forth without copying it in a kernel; the bandwidth
//!   sender's messages are allocated, not filled), so the column shows the engine,
//!   strategy and driver alone.
//!
//! Below the table, the smallest size's lean ping-pong is taken apart hop by hop from
//! its own trace (medians, rank 0's timeline): from a kernel's end (when its message is
//! stamped sent) to the message's arrival, from there to the next kernel's start, and
//! the kernel itself — where the engine's latency over raw MPI goes.
//!
//! Started outside an MPI job it launches itself with `mpirun -n 2` (the launcher and
//! its arguments from `DAGWIRE_MPI_LAUNCHER` and `DAGWIRE_MPI_LAUNCHER_ARGS`) and the
//! same malloc settings as `experiment run` gives MPI jobs
//! ([`crate::launcher::MALLOC_TUNABLES`]).

use anyhow::{Result, bail};

/// Runs the benchmark (launching itself under MPI first if needed).
#[cfg(feature = "mpi")]
pub fn run(max_size: usize, iterations: u32, window: u32) -> Result<()> {
    use dagwire_runtime::drivers::mpi::Mpi;
    if !Mpi::launched() {
        return relaunch_self(2);
    }
    imp::run(max_size, iterations, window)
}

/// Without the `mpi` feature there is no MPI to measure.
#[cfg(not(feature = "mpi"))]
pub fn run(_max_size: usize, _iterations: u32, _window: u32) -> Result<()> {
    bail!("this experiment binary was built without the `mpi` feature; rebuild it with MPI installed")
}

/// Runs this same command under `LAUNCHER -n RANKS` (also
/// `experiment calibrate --driver mpi` and `experiment bench fabric`).
pub(crate) fn relaunch_self(ranks: usize) -> Result<()> {
    use crate::launcher::{JOB_DIR_ENV, LAUNCHER_ARGS_ENV, LAUNCHER_ENV};
    let launcher = std::env::var(LAUNCHER_ENV).unwrap_or_else(|_| "mpirun".into());
    let extra = std::env::var(LAUNCHER_ARGS_ENV).unwrap_or_default();
    let mut cmd = std::process::Command::new(&launcher);
    cmd.args(["-n", &ranks.to_string()])
        .args(extra.split_whitespace())
        .arg(std::env::current_exe()?)
        .args(std::env::args().skip(1));
    crate::launcher::tune_malloc(&mut cmd);
    // A directory of the job's own where a libfabric job's ranks exchange addresses,
    // unless the user named one (on several nodes it must be on a shared file system).
    let own_dir = std::env::var_os(JOB_DIR_ENV)
        .is_none()
        .then(|| std::env::temp_dir().join(format!("dagwire-job-{}", std::process::id())));
    if let Some(dir) = &own_dir {
        std::fs::create_dir_all(dir)?;
        cmd.env(JOB_DIR_ENV, dir);
    }
    let status = cmd.status();
    if let Some(dir) = &own_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    let status = status
        .map_err(|e| anyhow::anyhow!("cannot start `{launcher}` ({e}); set ${LAUNCHER_ENV} or install an MPI"))?;
    if !status.success() {
        bail!("the MPI job failed: {launcher} {status}");
    }
    Ok(())
}

#[cfg(feature = "mpi")]
pub(crate) mod imp {
    use anyhow::{Result, bail, ensure};
    use dagwire_runtime::drivers::mpi::rsmpi as mpi_api;
    use dagwire_runtime::drivers::mpi::{self, Mpi, MpiConfig};
    use dagwire_runtime::{
        ChunkId, Dag, DagBuilder, KernelId, Kernels, ParamValue, Payload, Progress, Rank, Strategy, Task, TaskSpec,
    };
    use dagwire_strategies::eager::Eager;
    use dagwire_workloads::micro::effective_iterations;
    use mpi_api::point_to_point::{Destination, Source};
    use mpi_api::topology::Communicator;
    use std::sync::Arc;
    use std::time::Instant;

    pub(crate) fn eager(_: Rank) -> Box<dyn Strategy> {
        Box::new(Eager)
    }

    pub fn run(max_size: usize, iterations: u32, window: u32) -> Result<()> {
        let mpi = Mpi::init()?;
        ensure!(mpi.size() == 2, "bench mpi needs exactly 2 ranks, the job has {}", mpi.size());
        let root = mpi.rank() == 0;
        let sizes = sizes(max_size);
        if root {
            println!("MPI ping-pong latency (one way, us) and streaming bandwidth (MB/s, window {window}), 2 ranks");
            println!(
                "raw = rsmpi send/receive; micro = micro workload (pattern fill + check), lean = hand-on kernels; \
                 both eager, mpi driver, inline progress; ratio = engine / raw"
            );
            println!(
                "{:>9} | {:>8} {:>8} {:>6} {:>8} {:>6} | {:>8} {:>8} {:>6} {:>8} {:>6}",
                "bytes", "raw lat", "micro", "ratio", "lean", "ratio", "raw bw", "micro", "ratio", "lean", "ratio"
            );
        }
        let mut first_hops = None;
        for &size in &sizes {
            let (measured, warmup) = effective_iterations(size as u64, iterations, iterations / 10);
            let raw_lat = raw_pingpong(&mpi, size, measured, warmup);
            let micro_lat = engine_figure(&mpi, "pingpong", size, iterations, 1)?;
            let (lean_lat, hops) = lean(&mpi, lean_pingpong(size, measured, warmup), size, measured, 1)?;
            first_hops = first_hops.or(hops.map(|h| (size, h, raw_lat)));
            let raw_bw = raw_bandwidth(&mpi, size, measured, warmup, window);
            let micro_bw = engine_figure(&mpi, "bandwidth", size, iterations, window)?;
            let (lean_bw, _) = lean(&mpi, lean_bandwidth(size, measured, warmup, window), size, measured, window)?;
            if root {
                println!(
                    "{size:>9} | {raw_lat:>8.2} {micro_lat:>8.2} {:>5.2}x {lean_lat:>8.2} {:>5.2}x | {:>8} \
                     {:>8} {:>5}x {:>8} {:>5}x",
                    micro_lat / raw_lat,
                    lean_lat / raw_lat,
                    super::three_digits(raw_bw),
                    super::three_digits(micro_bw),
                    super::three_digits(micro_bw / raw_bw),
                    super::three_digits(lean_bw),
                    super::three_digits(lean_bw / raw_bw)
                );
            }
        }
        if let Some((size, h, raw)) = first_hops {
            println!(
                "a lean {size}-byte hop, median ns: kernel end (message sent) -> received {}, received -> next \
                 kernel starts {}, kernel {}; one way {:.0} against raw {:.0}",
                h.wire,
                h.dispatch,
                h.kernel,
                h.total(),
                raw * 1e3
            );
        }
        Ok(())
    }

    /// 8, 64, 512, ... bytes up to `max_size` (and `max_size` itself).
    pub(crate) fn sizes(max_size: usize) -> Vec<usize> {
        let mut sizes: Vec<usize> =
            std::iter::successors(Some(8usize), |s| Some(s * 8)).take_while(|&s| s <= max_size).collect();
        if sizes.last() != Some(&max_size) {
            sizes.push(max_size);
        }
        sizes
    }

    /// Where one hop of the lean ping-pong goes, medians over the measured hops, ns.
    pub(crate) struct Hops {
        /// From the sending kernel's end (the message's send stamp) to its arrival.
        pub(crate) wire: i64,
        /// From the arrival to the start of the kernel that reads it.
        pub(crate) dispatch: i64,
        /// The reading kernel (it hands the buffer on).
        pub(crate) kernel: i64,
    }

    impl Hops {
        pub(crate) fn total(&self) -> f64 {
            (self.wire + self.dispatch + self.kernel) as f64
        }

        /// Medians over the messages whose producer is a measured hop of `plan`.
        fn of(plan: &LeanPlan, trace: &dagwire_runtime::Trace) -> Option<Hops> {
            let at: std::collections::HashMap<u32, (u64, u64)> =
                trace.tasks.iter().map(|r| (r.task.0, (r.start_ns, r.end_ns))).collect();
            let (mut wire, mut dispatch, mut kernel) = (Vec::new(), Vec::new(), Vec::new());
            for m in &trace.messages {
                let producer = plan.dag.chunk(m.chunk).producer.0;
                if producer < plan.first || producer >= plan.last {
                    continue;
                }
                let (start, end) = *at.get(&plan.dag.consumers(m.chunk).first()?.0)?;
                wire.push(m.recv_ns as i64 - m.sent_ns as i64);
                dispatch.push(start as i64 - m.recv_ns as i64);
                kernel.push(end as i64 - start as i64);
            }
            let median = |mut v: Vec<i64>| {
                v.sort_unstable();
                v.get(v.len() / 2).copied()
            };
            Some(Hops { wire: median(wire)?, dispatch: median(dispatch)?, kernel: median(kernel)? })
        }
    }

    /// Lean kernels: 0 = hand out `args[2]` chunks sharing one zeroed buffer of `args[1]`
    /// bytes (payloads are copy-on-write and nothing writes them, so, like the raw
    /// baseline's one send buffer, it is allocated once); 1 = hand the first input on
    /// unchanged (moved, not copied, when nothing else holds it); 2 = an 8-byte
    /// acknowledgement.
    pub(crate) struct Lean {
        source: std::sync::Mutex<Payload>,
    }

    impl Lean {
        pub(crate) fn new() -> Self {
            Lean { source: std::sync::Mutex::new(Payload::default()) }
        }

        /// The shared source buffer, `len` bytes long.
        fn source(&self, len: usize) -> Payload {
            let mut source = self.source.lock().unwrap_or_else(|e| e.into_inner());
            if source.len() != len {
                *source = Payload::zeroed(len);
            }
            source.clone()
        }
    }

    impl Kernels for Lean {
        fn run(&self, task: &Task, mut inputs: Vec<Payload>) -> Result<Vec<Payload>, String> {
            match task.kernel.0 {
                0 => Ok((0..task.args[2]).map(|_| self.source(task.args[1] as usize)).collect()),
                1 => Ok(vec![inputs.swap_remove(0)]),
                _ => Ok(vec![Payload::zeroed(8)]),
            }
        }
    }

    /// A lean DAG and which tasks time its measured part: (first measured task, last one).
    pub(crate) struct LeanPlan {
        pub(crate) dag: Arc<Dag>,
        first: u32,
        last: u32,
    }

    /// One buffer bounced `warmup + measured` times there and back: the hop tasks
    /// alternate between the ranks, each reading the previous hop's chunk.
    pub(crate) fn lean_pingpong(size: usize, measured: u32, warmup: u32) -> LeanPlan {
        let mut b = DagBuilder::new(2);
        let mut prev: ChunkId =
            b.add(TaskSpec::new(KernelId(0), Rank(0)).args([0, size as u32, 1, 0]).outputs(&[size as u64])).output(0);
        let (mut first, mut last) = (0, 0);
        for hop in 1..=2 * (warmup + measured) {
            let rank = Rank(hop % 2);
            let t = b.add(TaskSpec::new(KernelId(1), rank).inputs(&[prev]).outputs(&[size as u64]));
            if hop == 2 * warmup {
                first = t.task.0;
            }
            last = t.task.0;
            prev = t.output(0);
        }
        LeanPlan { dag: Arc::new(b.finish()), first, last }
    }

    /// Per iteration, rank 0 makes `window` chunks that rank 1 reads, and rank 1's
    /// acknowledgement gates rank 0's next iteration.
    pub(crate) fn lean_bandwidth(size: usize, measured: u32, warmup: u32, window: u32) -> LeanPlan {
        let mut b = DagBuilder::new(2);
        let mut ack: Option<ChunkId> = None;
        let (mut first, mut last) = (0, 0);
        let outputs = vec![size as u64; window as usize];
        for i in 0..warmup + measured {
            let gate: Vec<ChunkId> = ack.into_iter().collect();
            let spec = TaskSpec::new(KernelId(0), Rank(0)).inputs(&gate).args([0, size as u32, window, 0]);
            let send = b.add(spec.outputs(&outputs));
            let chunks: Vec<ChunkId> = (0..window as usize).map(|k| send.output(k)).collect();
            let recv = b.add(TaskSpec::new(KernelId(2), Rank(1)).inputs(&chunks).outputs(&[8]));
            let back = b.add(TaskSpec::new(KernelId(2), Rank(0)).inputs(&[recv.output(0)]).outputs(&[8]));
            if i == warmup {
                first = send.task.0;
            }
            last = back.task.0;
            ack = Some(back.output(0));
        }
        LeanPlan { dag: Arc::new(b.finish()), first, last }
    }

    /// Runs a lean plan on the mpi driver; rank 0 returns its figure ([`lean_figure`]).
    fn lean(mpi: &Mpi, plan: LeanPlan, size: usize, measured: u32, window: u32) -> Result<(f64, Option<Hops>)> {
        let cfg = MpiConfig { progress: Progress::Inline, ..MpiConfig::default() };
        let out = match mpi::run(mpi, &plan.dag, &Lean::new(), &eager, &cfg) {
            Ok(out) => out,
            Err(e) => {
                eprintln!("rank {}: {e}", mpi.rank());
                mpi.abort(1)
            }
        };
        lean_figure(&plan, out, size, measured, window)
    }

    /// Rank 0's figure of a lean plan's run `out` (the others have none): one-way
    /// latency (window 1, with where its hops go) or bandwidth, from the start of the
    /// first measured task to the end of the last.
    pub(crate) fn lean_figure(
        plan: &LeanPlan,
        out: Option<dagwire_runtime::RunOutcome>,
        size: usize,
        measured: u32,
        window: u32,
    ) -> Result<(f64, Option<Hops>)> {
        let Some(out) = out else { return Ok((0.0, None)) };
        let at = |t: u32| out.trace.tasks.iter().find(|r| r.task.0 == t).map(|r| (r.start_ns, r.end_ns));
        // Ping-pong: from the end of the last warm-up hop; bandwidth: from the start of
        // the first measured send task.
        let (Some((first_start, first_end)), Some((_, end))) = (at(plan.first), at(plan.last)) else {
            bail!("the lean run's trace lacks its measured tasks");
        };
        let start = if window == 1 { first_end } else { first_start };
        let span = (end - start) as f64;
        Ok(if window == 1 {
            (span / (2.0 * measured as f64) / 1e3, Hops::of(plan, &out.trace))
        } else {
            (size as f64 * window as f64 * measured as f64 * 1e3 / span, None)
        })
    }

    /// One-way latency of a blocking rsmpi ping-pong, us.
    pub(crate) fn raw_pingpong(mpi: &Mpi, size: usize, measured: u32, warmup: u32) -> f64 {
        let world = mpi.world();
        let (me, peer) = (world.rank(), world.process_at_rank(1 - world.rank()));
        let mut buf = vec![1u8; size];
        mpi.barrier();
        let mut start = Instant::now();
        for i in 0..warmup + measured {
            if i == warmup {
                start = Instant::now();
            }
            if me == 0 {
                peer.send(&buf[..]);
                peer.receive_into(&mut buf[..]);
            } else {
                peer.receive_into(&mut buf[..]);
                peer.send(&buf[..]);
            }
        }
        start.elapsed().as_secs_f64() * 1e6 / (2.0 * measured as f64)
    }

    /// Streaming bandwidth as osu_bw: a window of nonblocking sends, then an ack, MB/s.
    pub(crate) fn raw_bandwidth(mpi: &Mpi, size: usize, measured: u32, warmup: u32, window: u32) -> f64 {
        let world = mpi.world();
        let (me, peer) = (world.rank(), world.process_at_rank(1 - world.rank()));
        let send = vec![1u8; size];
        let mut recv: Vec<Vec<u8>> = (0..window).map(|_| vec![0u8; size]).collect();
        let mut ack = [0u8; 4];
        mpi.barrier();
        let mut start = Instant::now();
        for i in 0..warmup + measured {
            if i == warmup {
                start = Instant::now();
            }
            if me == 0 {
                mpi_api::request::multiple_scope(window as usize, |scope, coll| {
                    for _ in 0..window {
                        coll.add(peer.immediate_send(scope, &send[..]));
                    }
                    let mut out = Vec::new();
                    coll.wait_all(&mut out);
                });
                peer.receive_into(&mut ack[..]);
            } else {
                mpi_api::request::multiple_scope(window as usize, |scope, coll| {
                    for r in recv.iter_mut() {
                        coll.add(peer.immediate_receive_into(scope, &mut r[..]));
                    }
                    let mut out = Vec::new();
                    coll.wait_all(&mut out);
                });
                peer.send(&ack[..]);
            }
        }
        (size as f64 * window as f64 * measured as f64) / start.elapsed().as_secs_f64() / 1e6
    }

    /// The micro workload's figure for `pattern` through the engine on the mpi driver.
    fn engine_figure(mpi: &Mpi, pattern: &str, size: usize, iterations: u32, window: u32) -> Result<f64> {
        let info = dagwire_workloads::find("micro")?;
        let given = [
            ("pattern", ParamValue::Str(pattern.into())),
            ("size", ParamValue::Int(size as i64)),
            ("iterations", ParamValue::Int(iterations as i64)),
            ("warmup", ParamValue::Int((iterations / 10) as i64)),
            ("window", ParamValue::Int(window as i64)),
        ];
        let workload = info.build(&given, 2, 1)?;
        let cfg = MpiConfig { progress: Progress::Inline, ..MpiConfig::default() };
        let out = match mpi::run(mpi, workload.dag(), workload.kernels(), &eager, &cfg) {
            Ok(out) => out,
            Err(e) => {
                eprintln!("rank {}: {e}", mpi.rank());
                mpi.abort(1)
            }
        };
        // Rank 0 holds the trace; it tells rank 1 nothing, so rank 1 returns 0.
        let Some(out) = out else { return Ok(0.0) };
        let check = workload.verify(&out.results);
        if !check.passed {
            bail!("the {pattern} run of {size} bytes did not verify: {}", check.detail);
        }
        let figures = workload.figures(&out.trace);
        figures.first().map(|(_, v)| *v).ok_or_else(|| anyhow::anyhow!("the {pattern} run produced no figure"))
    }
}

/// A bandwidth in MB/s (or a ratio of two) with about three significant digits, so a
/// small figure (under 1 MB/s on a loaded host, a ratio under 0.01) never prints as 0.
pub(crate) fn three_digits(x: f64) -> String {
    match x {
        x if x >= 100.0 => format!("{x:.0}"),
        x if x >= 10.0 => format!("{x:.1}"),
        x if x >= 1.0 => format!("{x:.2}"),
        x if x >= 0.001 || x <= 0.0 => format!("{x:.3}"),
        x => format!("{x:.2e}"),
    }
}
