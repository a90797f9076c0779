//! `experiment bench collectives`: the all-reduce curve on the `mpi` driver. For each
//! vector size (8 B to 64 MiB in powers of 4) and rank count (2 and 4), back-to-back
//! f64 sum all-reduces through the engine with
//! - **native**: `collectives = native`, MPI's own `MPI_Iallreduce`;
//! - **ring** and **recursive-doubling**: `collectives = runtime`, the runtime's shared
//!   algorithms ([`dagwire_runtime::collectives`]) piece by piece over MPI point-to-point;
//!
//! and, as a floor, **mpi-raw**: blocking `MPI_Allreduce` called straight through rsmpi,
//! no engine. Time per all-reduce is the median over the measured repetitions of the
//! time between one completion and the next on a rank, the slowest rank's median;
//! `algbw = bytes / time` and `busbw = algbw * 2 (p - 1) / p` (the nccl-tests
//! convention, so figures compare across rank counts); `vs native` is the row's time
//! over the native row's, measured in the same job.
//!
//! Started outside an MPI job it launches itself once per rank count with `LAUNCHER -n
//! R` (`DAGWIRE_MPI_LAUNCHER`, default `mpirun`; arguments from
//! `DAGWIRE_MPI_LAUNCHER_ARGS`, default `--oversubscribe`), with the malloc settings
//! `experiment run` gives MPI jobs.

use anyhow::{Result, bail};

/// `experiment bench collectives` arguments.
#[derive(Clone, Debug, clap::Args)]
pub struct Args {
    /// Largest vector, bytes (sizes go 8, 32, 128, ... by 4, and end at this one).
    #[arg(long, default_value_t = 64 << 20)]
    pub max_bytes: usize,
    /// Rank counts, each a job of its own (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "2,4")]
    pub ranks: Vec<usize>,
    /// Measured all-reduces per size and algorithm (default: about 2^24 / bytes,
    /// between 10 and 500); a tenth as many more, at least 2, warm up first.
    #[arg(long)]
    pub reps: Option<usize>,
}

/// The header line and the column names of the table, as printed.
pub const COLUMNS: [&str; 7] = ["bytes", "ranks", "algorithm", "time us", "algbw GB/s", "busbw GB/s", "vs native"];

/// Runs the benchmark: launches a job per rank count, or, inside one, measures.
#[cfg(feature = "mpi")]
pub fn run(args: &Args) -> Result<()> {
    use dagwire_runtime::drivers::mpi::Mpi;
    if Mpi::launched() {
        return imp::run(args);
    }
    if args.max_bytes < 8 {
        bail!("--max-bytes {} is below one f64 element; use at least 8", args.max_bytes);
    }
    if let Some(&bad) = args.ranks.iter().find(|&&r| r < 2) {
        bail!("--ranks {bad}: an all-reduce needs at least 2 ranks");
    }
    println!(
        "all-reduce (sum of f64) through the engine on the mpi driver; time = median per all-reduce, slowest rank"
    );
    println!(
        "native = collectives=native (MPI_Iallreduce); ring, recursive-doubling = collectives=runtime (the runtime's \
         algorithms over MPI point-to-point); mpi-raw = MPI_Allreduce without the engine; busbw = algbw * 2(p-1)/p; \
         vs native = time / native's time"
    );
    println!(
        "{:>10} {:>5} {:>18} {:>12} {:>10} {:>10} {:>9}",
        COLUMNS[0], COLUMNS[1], COLUMNS[2], COLUMNS[3], COLUMNS[4], COLUMNS[5], COLUMNS[6]
    );
    for &ranks in &args.ranks {
        relaunch(ranks)?;
    }
    Ok(())
}

/// Without the `mpi` feature there is no MPI to measure.
#[cfg(not(feature = "mpi"))]
pub fn run(_args: &Args) -> Result<()> {
    bail!("this experiment binary was built without the `mpi` feature; rebuild it with MPI installed")
}

/// Runs this same command under `LAUNCHER -n ranks`.
#[cfg(feature = "mpi")]
fn relaunch(ranks: usize) -> Result<()> {
    use crate::launcher::{LAUNCHER_ARGS_ENV, LAUNCHER_ENV};
    let launcher = std::env::var(LAUNCHER_ENV).unwrap_or_else(|_| "mpirun".into());
    let extra = std::env::var(LAUNCHER_ARGS_ENV).unwrap_or_else(|_| "--oversubscribe".into());
    let mut cmd = std::process::Command::new(&launcher);
    cmd.args(["-n", &ranks.to_string()])
        .args(extra.split_whitespace())
        .arg(std::env::current_exe()?)
        .args(std::env::args().skip(1));
    crate::launcher::tune_malloc(&mut cmd);
    let status = cmd
        .status()
        .map_err(|e| anyhow::anyhow!("cannot start `{launcher}` ({e}); set ${LAUNCHER_ENV} or install an MPI"))?;
    if !status.success() {
        bail!("the {ranks}-rank benchmark job failed: {launcher} {status}");
    }
    Ok(())
}

/// The vector sizes measured: 8, 32, 128, ... (powers of 4 times 8) up to `max`, and
/// `max` itself, rounded down to whole f64 elements.
///
/// ```
/// use dagwire_experiments::bench_collectives::sizes;
/// assert_eq!(sizes(100), [8, 32, 96]);
/// assert_eq!(sizes(128), [8, 32, 128]);
/// assert_eq!(sizes(64 << 20).len(), 13);
/// ```
pub fn sizes(max: usize) -> Vec<usize> {
    let mut sizes: Vec<usize> =
        std::iter::successors(Some(8usize), |s| s.checked_mul(4)).take_while(|&s| s <= max).collect();
    let max = max / 8 * 8;
    if sizes.last() != Some(&max) && max >= 8 {
        sizes.push(max);
    }
    sizes
}

/// Bus bandwidth from algorithm bandwidth on `p` ranks (nccl-tests' all-reduce factor).
///
/// ```
/// assert_eq!(dagwire_experiments::bench_collectives::busbw(3.0, 4), 4.5);
/// ```
pub fn busbw(algbw: f64, p: usize) -> f64 {
    algbw * 2.0 * (p as f64 - 1.0) / p as f64
}

#[cfg(feature = "mpi")]
mod imp {
    use super::{Args, busbw, sizes};
    use anyhow::Result;
    use dagwire_runtime::collective::{AllReduceAlgorithm, CollectiveKind, Contribution, DType, ReduceOp};
    use dagwire_runtime::drivers::CollectivesMode;
    use dagwire_runtime::drivers::mpi::rsmpi as mpi_api;
    use dagwire_runtime::drivers::mpi::{self, Mpi, MpiConfig};
    use dagwire_runtime::drivers::probe::probe_dag;
    use dagwire_runtime::{
        Capability, ChunkId, Kernels, Message, Payload, Progress, Rank, Strategy, StrategyCtx, Task,
    };
    use mpi_api::collective::{CommunicatorCollectives, SystemOperation};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    /// The engine rows: (name, driver mode, the runtime's algorithm).
    const ENGINE: [(&str, CollectivesMode, AllReduceAlgorithm); 3] = [
        ("native", CollectivesMode::Native, AllReduceAlgorithm::Ring),
        ("ring", CollectivesMode::Runtime, AllReduceAlgorithm::Ring),
        ("recursive-doubling", CollectivesMode::Runtime, AllReduceAlgorithm::RecursiveDoubling),
    ];

    pub fn run(args: &Args) -> Result<()> {
        let mpi = Mpi::init()?;
        let p = mpi.size();
        let dag = Arc::new(probe_dag(p));
        for bytes in sizes(args.max_bytes) {
            let reps = args.reps.unwrap_or(((1usize << 24) / bytes).clamp(10, 500)).max(1);
            let warmup = (reps / 10).max(2);
            let mut rows: Vec<(&str, f64)> = Vec::new();
            for (name, collectives, algorithm) in ENGINE {
                let mine = engine_median(&mpi, &dag, bytes, warmup, reps, collectives, algorithm)?;
                rows.push((name, slowest(&mpi, mine)));
            }
            let raw = raw_median(&mpi, bytes, warmup, reps);
            rows.push(("mpi-raw", slowest(&mpi, raw)));
            if mpi.rank() == 0 {
                let native = rows[0].1;
                for (name, ns) in rows {
                    let algbw = bytes as f64 / ns; // bytes per ns = GB/s
                    println!(
                        "{bytes:>10} {p:>5} {name:>18} {:>12.2} {algbw:>10.3} {:>10.3} {:>8}x",
                        ns / 1e3,
                        busbw(algbw, p),
                        crate::bench_mpi::three_digits(ns / native)
                    );
                }
            }
        }
        Ok(())
    }

    /// The slowest rank's figure.
    fn slowest(mpi: &Mpi, mine: f64) -> f64 {
        let mut max = 0.0f64;
        mpi.world().all_reduce_into(&mine, &mut max, SystemOperation::max());
        max
    }

    fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }

    struct Nothing;
    impl Kernels for Nothing {
        fn run(&self, task: &Task, _: Vec<Payload>) -> Result<Vec<Payload>, String> {
            Ok(task.outputs().map(|_| Payload::zeroed(8)).collect())
        }
    }

    /// This rank's median ns per all-reduce through the engine.
    fn engine_median(
        mpi: &Mpi,
        dag: &Arc<dagwire_runtime::Dag>,
        bytes: usize,
        warmup: usize,
        reps: usize,
        collectives: CollectivesMode,
        algorithm: AllReduceAlgorithm,
    ) -> Result<f64> {
        let times: Arc<Mutex<Vec<u64>>> = Arc::default();
        let factory = |_: Rank| -> Box<dyn Strategy> {
            Box::new(Reducer { bytes, total: warmup + reps, algorithm, done: 0, times: Arc::clone(&times) })
        };
        let cfg = MpiConfig {
            collectives,
            progress: Progress::Inline,
            timeout: Duration::from_secs(600),
            ..MpiConfig::default()
        };
        if let Err(e) = mpi::run(mpi, dag, &Nothing, &factory, &cfg) {
            eprintln!("rank {}: {e}", mpi.rank());
            mpi.abort(1)
        }
        let t = std::mem::take(&mut *times.lock().unwrap_or_else(|e| e.into_inner()));
        anyhow::ensure!(
            t.len() == warmup + reps + 1,
            "the reducer recorded {} times, not {}",
            t.len(),
            warmup + reps + 1
        );
        Ok(median(t.windows(2).skip(warmup).map(|w| (w[1] - w[0]) as f64).collect()))
    }

    /// This rank's median ns per blocking `MPI_Allreduce` straight through rsmpi.
    fn raw_median(mpi: &Mpi, bytes: usize, warmup: usize, reps: usize) -> f64 {
        let send = vec![0f64; bytes / 8];
        let mut recv = vec![0f64; bytes / 8];
        let world = mpi.world();
        mpi.barrier();
        let mut times = Vec::with_capacity(reps);
        for i in 0..warmup + reps {
            let start = Instant::now();
            world.all_reduce_into(&send[..], &mut recv[..], SystemOperation::sum());
            if i >= warmup {
                times.push(start.elapsed().as_nanos() as f64);
            }
        }
        median(times)
    }

    /// Joins `total` all-reduces of `bytes`, one after the other, each fed the previous
    /// one's sum (zeros: the arithmetic is the same, nothing overflows), and records the
    /// time of its start and of each completion.
    struct Reducer {
        bytes: usize,
        total: usize,
        algorithm: AllReduceAlgorithm,
        done: usize,
        times: Arc<Mutex<Vec<u64>>>,
    }

    impl Reducer {
        fn join(&self, ctx: &mut StrategyCtx<'_>, vector: Payload) {
            let kind = CollectiveKind::AllReduce { op: ReduceOp::Sum, dtype: DType::F64, algorithm: self.algorithm };
            let me = ctx.rank;
            ctx.join_collective(self.done as u64 + 1, kind, vec![(me, vec![Message::data(1, ChunkId(0), vector)])]);
        }

        fn stamp(&self, now: u64) {
            self.times.lock().unwrap_or_else(|e| e.into_inner()).push(now);
        }
    }

    impl Strategy for Reducer {
        fn name(&self) -> &'static str {
            "bench-all-reduce"
        }
        fn op_name(&self, _: u8) -> &'static str {
            "all-reduce"
        }
        fn needs(&self) -> &'static [Capability] {
            &[Capability::AllReduce]
        }
        fn on_start(&mut self, ctx: &mut StrategyCtx<'_>) {
            self.stamp(ctx.now);
            self.join(ctx, Payload::zeroed(self.bytes));
        }
        fn on_chunk_ready(&mut self, _: &mut StrategyCtx<'_>, _: ChunkId, _: &Payload, _: &[Rank]) {}
        fn on_message(&mut self, _: &mut StrategyCtx<'_>, from: Rank, _: Message) -> Result<(), String> {
            Err(format!("a point-to-point message from {from}"))
        }
        fn on_collective_done(
            &mut self,
            ctx: &mut StrategyCtx<'_>,
            _: u64,
            mut got: Vec<Contribution>,
        ) -> Result<(), String> {
            self.stamp(ctx.now);
            self.done += 1;
            let sum = got.pop().and_then(|mut c| c.messages.pop()).and_then(|m| m.payload).ok_or("no sum")?;
            if sum.len() != self.bytes {
                return Err(format!("a sum of {} bytes, expected {}", sum.len(), self.bytes));
            }
            if self.done < self.total {
                self.join(ctx, sum);
            }
            Ok(())
        }
        fn is_idle(&self) -> bool {
            self.done == self.total
        }
    }
}
