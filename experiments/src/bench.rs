//! `experiment bench`: figures, not tests. Each benchmark measures its baseline in
//! the same run and prints the ratio.

use anyhow::{Result, ensure};
use dagwire_runtime::drivers::local::{self, LocalConfig};
use dagwire_runtime::engine::{Action, Engine, TaskDone};
use dagwire_runtime::{
    Dag, DagBuilder, KernelId, Kernels, ParamValue, Payload, Progress, Rank, Strategy, Task, TaskSpec,
};
use dagwire_strategies::eager::Eager;
use std::sync::Arc;
use std::time::Instant;

/// Which benchmark.
#[derive(Clone, Debug, clap::Subcommand)]
pub enum Which {
    /// Tiled Cholesky through the runtime (local driver, eager) against faer's own
    /// one-call Cholesky of the same matrix on ranks x workers threads.
    Cholesky {
        /// Matrix order.
        #[arg(long, default_value_t = 4096)]
        n: usize,
        /// Tile edge.
        #[arg(long, default_value_t = 256)]
        tile: usize,
        /// Ranks (threads).
        #[arg(long, default_value_t = 2)]
        ranks: usize,
        /// Kernel workers per rank.
        #[arg(long, default_value_t = 1)]
        workers: usize,
        /// Repetitions of each side (the best is reported).
        #[arg(long, default_value_t = 3)]
        reps: usize,
    },
    /// Runtime overhead: a DAG of empty tasks with dependencies; time per task on
    /// one rank and across two, against the bare engine with no threads.
    Overhead {
        /// Number of tasks.
        #[arg(long, default_value_t = 100_000)]
        tasks: usize,
        /// Independent chains the tasks form (each also reads its neighbour chain).
        #[arg(long, default_value_t = 16)]
        width: usize,
    },
    /// The simulator: raw event-queue throughput, then a cost-model tiled Cholesky of
    /// about a million tasks on 1024 ranks (wall time, events/s, peak memory per task)
    /// and how wall time grows from 1/8 of that size to the full size. Each size runs
    /// with the full trace, then counts only, each in a process of its own whose row is
    /// printed as it finishes; while one runs, its progress shows on stderr.
    Sim {
        /// Machine preset or file.
        #[arg(long, default_value = "ib-hdr-fattree")]
        machine: String,
        /// Simulated ranks.
        #[arg(long, default_value_t = 1024)]
        ranks: usize,
        /// Tiles per matrix dimension at full size (180 gives about one million tasks).
        #[arg(long, default_value_t = 180)]
        tiles: usize,
        /// Tile edge.
        #[arg(long, default_value_t = 256)]
        tile: usize,
        /// Network fidelity: analytic (LogGP, no link contention), flow (max-min link
        /// sharing) or machine (the machine file's choice: flow for ib-hdr-fattree).
        #[arg(long, default_value = "analytic")]
        fidelity: String,
        /// Transfer strategy (with its default parameters).
        #[arg(long, default_value = "eager")]
        strategy: String,
        /// Internal: measure only this many tiles, in this process, and print one line
        /// (the benchmark runs each size in a fresh process so sizes do not share a heap).
        #[arg(long, hide = true)]
        only_tiles: Option<usize>,
        /// Internal, with --only-tiles: keep only counts in the trace.
        #[arg(long, hide = true)]
        counts_only: bool,
    },
    /// MPI all-reduce curve: 8 B .. 64 MiB on 2 and 4 ranks, MPI's native all-reduce
    /// against the runtime's ring and recursive doubling through the mpi driver (and raw
    /// MPI_Allreduce); time per all-reduce, algbw, busbw (nccl-tests) and the ratio to
    /// native. Launches `mpirun -n R --oversubscribe` itself (DAGWIRE_MPI_LAUNCHER,
    /// DAGWIRE_MPI_LAUNCHER_ARGS override).
    Collectives(crate::bench_collectives::Args),
    /// MPI: ping-pong latency and streaming bandwidth through the engine on the mpi
    /// driver against raw rsmpi in the same job (2 ranks; launches `mpirun -n 2` itself).
    Mpi {
        /// Largest message, bytes (sizes go 8, 64, 512, ... up to it).
        #[arg(long, default_value_t = 4 << 20)]
        max_size: usize,
        /// Measured iterations (divided by 10 above 8 KiB, as OSU does).
        #[arg(long, default_value_t = 2000)]
        iterations: u32,
        /// Bandwidth: messages in flight per iteration.
        #[arg(long, default_value_t = 16)]
        window: u32,
    },
    /// libfabric against MPI: ping-pong latency and streaming bandwidth, raw libfabric
    /// tagged messages vs the engine on the libfabric driver vs the engine on the mpi
    /// driver vs raw MPI, with ratios, in one 2-rank job (launches `mpirun -n 2` itself).
    /// Sizes go 8, 64, 512, ... up to --max-size, or exactly those of --sizes (e.g.
    /// `--sizes 4096,32768,65536,65537` around the driver's pool for mid-size payloads,
    /// which takes up to 64 KiB).
    Fabric {
        /// Largest message, bytes (sizes go 8, 64, 512, ... up to it).
        #[arg(long, default_value_t = 4 << 20)]
        max_size: usize,
        /// Message sizes to measure instead, bytes, comma-separated, each at least 1
        /// (e.g. 8,4096,32768); replaces the 8, 64, 512, ... series and --max-size.
        #[arg(long, value_delimiter = ',', value_parser = parse_size, conflicts_with = "max_size")]
        sizes: Vec<usize>,
        /// Measured iterations (divided by 10 above 8 KiB, as OSU does).
        #[arg(long, default_value_t = 2000)]
        iterations: u32,
        /// Bandwidth: messages in flight per iteration.
        #[arg(long, default_value_t = 16)]
        window: u32,
        /// The libfabric provider (shm: the same shared memory Open MPI uses here).
        #[arg(long, default_value = "shm")]
        provider: String,
    },
}

/// One message size of `--sizes`: a whole number of bytes, at least 1.
///
/// ```
/// use dagwire_experiments::bench::parse_size;
/// assert_eq!(parse_size(" 32768"), Ok(32768));
/// assert!(parse_size("32k").unwrap_err().contains("whole numbers of bytes"));
/// assert!(parse_size("0").is_err());
/// ```
pub fn parse_size(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("a message size must be at least 1 byte".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!(
            "`{s}` is not a message size: give whole numbers of bytes separated by commas, e.g. --sizes 8,4096,32768"
        )),
    }
}

/// Runs a benchmark and prints its figures.
pub fn run(which: Which) -> Result<()> {
    match which {
        Which::Cholesky { n, tile, ranks, workers, reps } => cholesky(n, tile, ranks, workers, reps),
        Which::Overhead { tasks, width } => overhead(tasks, width),
        Which::Collectives(args) => crate::bench_collectives::run(&args),
        Which::Mpi { max_size, iterations, window } => crate::bench_mpi::run(max_size, iterations, window),
        Which::Fabric { max_size, sizes, iterations, window, provider } => {
            crate::bench_fabric::run(max_size, &sizes, iterations, window, &provider)
        }
        Which::Sim { machine, ranks, tiles, tile, fidelity, strategy, only_tiles, counts_only } => {
            let setup = crate::bench_sim::Setup { machine, ranks, tile, fidelity, strategy };
            match only_tiles {
                Some(nt) => crate::bench_sim::one_size_line(&setup, nt, counts_only),
                None => crate::bench_sim::run(&setup, tiles),
            }
        }
    }
}

fn eager_factory(_: Rank) -> Box<dyn Strategy> {
    Box::new(Eager)
}

fn cholesky(n: usize, tile: usize, ranks: usize, workers: usize, reps: usize) -> Result<()> {
    let threads = ranks * workers;
    let info = dagwire_workloads::find("cholesky")?;
    let given = [("n", ParamValue::Int(n as i64)), ("tile", ParamValue::Int(tile as i64))];
    let seed = 1;
    let flops = (n as f64).powi(3) / 3.0;
    println!(
        "Cholesky n={n}, tile={tile}: dagwire local/eager on {ranks} ranks x {workers} workers vs faer one-call on {threads} threads"
    );
    let mut best_dag = f64::INFINITY;
    let mut best_ref = f64::INFINITY;
    for rep in 0..reps {
        let workload = info.build(&given, ranks, seed)?;
        let cfg = LocalConfig { ranks, workers, ..LocalConfig::default() };
        let out = local::run(workload.dag(), workload.kernels(), &eager_factory, &cfg)?;
        let check = workload.verify(&out.results);
        ensure!(check.passed, "dagwire result did not verify: {}", check.detail);
        let dag_s = out.makespan_ns as f64 * 1e-9;
        let reference =
            dagwire_workloads::cholesky::reference_cholesky(n, seed, threads).map_err(anyhow::Error::msg)?;
        let (ref_s, ref_residual) = (reference.seconds, reference.scaled_residual);
        println!(
            "  rep {rep}: dagwire {dag_s:.3} s ({:.1} GFLOP/s, {} = {:.2e}), faer {ref_s:.3} s ({:.1} GFLOP/s, residual {ref_residual:.2e})",
            flops / dag_s * 1e-9,
            check.metric,
            check.value,
            flops / ref_s * 1e-9
        );
        best_dag = best_dag.min(dag_s);
        best_ref = best_ref.min(ref_s);
    }
    println!(
        "best: dagwire {:.1} GFLOP/s, faer {:.1} GFLOP/s, ratio dagwire/faer = {:.2}",
        flops / best_dag * 1e-9,
        flops / best_ref * 1e-9,
        best_ref / best_dag
    );
    Ok(())
}

/// Empty kernels: each output is 8 zero bytes.
struct Empty;

impl Kernels for Empty {
    fn run(&self, task: &Task, _inputs: Vec<Payload>) -> Result<Vec<Payload>, String> {
        Ok(task.outputs().map(|_| Payload::zeroed(8)).collect())
    }
}

/// `tasks` tasks in `width` chains; step s of chain c reads step s-1 of chains c and
/// c+1. Chains are split into contiguous blocks per rank, so most edges stay local.
fn overhead_dag(tasks: usize, width: usize, ranks: usize) -> Arc<Dag> {
    let mut b = DagBuilder::new(ranks);
    let owner = |c: usize| Rank((c * ranks / width) as u32);
    let mut prev: Vec<dagwire_runtime::ChunkId> =
        (0..width).map(|c| b.add(TaskSpec::new(KernelId(0), owner(c)).outputs(&[8])).output(0)).collect();
    let steps = tasks.saturating_sub(width).div_ceil(width);
    for _ in 0..steps {
        prev = (0..width)
            .map(|c| {
                let inputs = [prev[c], prev[(c + 1) % width]];
                b.add(TaskSpec::new(KernelId(0), owner(c)).inputs(&inputs).outputs(&[8])).output(0)
            })
            .collect();
    }
    Arc::new(b.finish())
}

fn overhead(tasks: usize, width: usize) -> Result<()> {
    ensure!(width >= 2 && tasks >= width, "need width >= 2 and tasks >= width");
    let bare = bare_engine_ns(&overhead_dag(tasks, width, 1));
    println!("runtime overhead, {tasks} empty tasks in {width} chains");
    println!("  {:<34} {:>10}", "configuration", "ns/task");
    println!("  {:<34} {:>10.0}", "bare engine, 1 rank, no threads", bare);
    let hop = bare_hop_ns(tasks);
    println!("  {:<34} {:>10.0}   (every input remote: a message per task)", "bare engines, 2 ranks, one chain", hop);
    let mut inline = 0.0;
    for (ranks, progress) in
        [(1, Progress::Inline), (1, Progress::Thread), (2, Progress::Inline), (2, Progress::Thread)]
    {
        let dag = overhead_dag(tasks, width, ranks);
        let cfg = LocalConfig { ranks, workers: 1, progress, ..LocalConfig::default() };
        let out = local::run(&dag, &Empty, &eager_factory, &cfg)?;
        let per_task = out.makespan_ns as f64 / dag.task_count() as f64;
        let vs_inline =
            if progress == Progress::Thread { format!(", {:.2}x inline", per_task / inline) } else { String::new() };
        inline = per_task;
        println!(
            "  {:<34} {:>10.0}   ({:.2}x bare engine{vs_inline})",
            format!("local, {ranks} rank(s), {progress:?} progress"),
            per_task,
            per_task / bare
        );
    }
    let cores = dagwire_runtime::drivers::usable_cores();
    for ranks in [1, 2] {
        println!("  progress = \"auto\" on {ranks} rank(s) here: {}", Progress::Auto.resolve(ranks, 1, cores).1);
    }
    Ok(())
}

/// Two engines in the calling thread passing one chain back and forth, eager: the
/// engine's own share of a message hop (a task, its message out and in), ns per task.
fn bare_hop_ns(tasks: usize) -> f64 {
    let mut b = DagBuilder::new(2);
    let mut prev = b.add(TaskSpec::new(KernelId(0), Rank(0)).outputs(&[8])).output(0);
    for t in 1..tasks {
        prev = b.add(TaskSpec::new(KernelId(0), Rank(t as u32 % 2)).inputs(&[prev]).outputs(&[8])).output(0);
    }
    let dag = Arc::new(b.finish());
    let mut engines = [Rank(0), Rank(1)].map(|r| Engine::new(r, Arc::clone(&dag), Box::new(Eager), 1));
    let start = Instant::now();
    engines.iter_mut().for_each(|e| e.handle_start(0));
    let mut moved = true;
    while moved {
        moved = false;
        for r in 0..2 {
            while let Some(action) = engines[r].poll_action(0) {
                moved = true;
                match action {
                    Action::Run(run) => {
                        let outputs = vec![Payload::zeroed(8)];
                        drop(run.inputs);
                        let done = TaskDone { task: run.task, worker: 0, start_ns: 0, end_ns: 0, outputs };
                        engines[r].handle_task_done(0, done);
                    }
                    Action::Send(out) => engines[out.to.index()].handle_message(0, Rank(r as u32), out.msg),
                    _ => unreachable!("eager only sends messages"),
                }
            }
        }
    }
    assert!(engines.iter().all(Engine::is_done), "bare engines stalled");
    start.elapsed().as_nanos() as f64 / tasks as f64
}

/// The engine alone: tasks completed immediately in the calling thread.
fn bare_engine_ns(dag: &Arc<Dag>) -> f64 {
    let mut engine = Engine::new(Rank(0), Arc::clone(dag), Box::new(Eager), 1);
    let start = Instant::now();
    engine.handle_start(0);
    while let Some(action) = engine.poll_action(0) {
        if let Action::Run(run) = action {
            let outputs = dag.task(run.task).outputs().map(|_| Payload::zeroed(8)).collect();
            drop(run.inputs);
            engine.handle_task_done(0, TaskDone { task: run.task, worker: 0, start_ns: 0, end_ns: 0, outputs });
        }
    }
    assert!(engine.is_done(), "bare engine stalled");
    start.elapsed().as_nanos() as f64 / dag.task_count() as f64
}

#[cfg(test)]
mod tests {
    use super::Which;
    use clap::{CommandFactory, Parser};

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        which: Which,
    }

    /// `bench sim` with no flags runs what its help and the README say: the setup the
    /// parsed defaults make is the one the help's `[default: ...]` values describe, and
    /// the README's command line lists every visible flag with that same default.
    #[test]
    fn bench_sim_runs_the_defaults_its_help_and_the_readme_state() {
        let command = Cli::command();
        let sim = command.find_subcommand("sim").expect("a sim benchmark");
        let help: Vec<(String, String)> = sim
            .get_arguments()
            .filter(|a| !a.is_hide_set() && a.get_long().is_some_and(|l| l != "help"))
            .map(|a| {
                let default = a.get_default_values().iter().map(|v| v.to_string_lossy()).collect::<Vec<_>>().join(",");
                (a.get_long().unwrap().to_string(), default)
            })
            .collect();
        let Which::Sim { machine, ranks, tiles, tile, fidelity, strategy, only_tiles, counts_only } =
            Cli::parse_from(["bench", "sim"]).which
        else {
            panic!("parsed as another benchmark")
        };
        assert_eq!((only_tiles, counts_only), (None, false), "no flag: the whole benchmark");
        let ran = [
            ("machine", machine),
            ("ranks", ranks.to_string()),
            ("tiles", tiles.to_string()),
            ("tile", tile.to_string()),
            ("fidelity", fidelity),
            ("strategy", strategy),
        ];
        let ran: Vec<(String, String)> = ran.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        assert_eq!(help, ran, "the help's defaults are what a run without flags uses");

        let readme = include_str!("../../README.md");
        let line = readme.lines().find(|l| l.contains("`experiment bench sim [")).expect("README documents bench sim");
        let flags = line.split('[').nth(1).and_then(|rest| rest.split(']').next()).unwrap();
        let words: Vec<&str> = flags.split_whitespace().collect();
        let documented: Vec<(String, String)> =
            words.chunks(2).map(|kv| (kv[0].trim_start_matches("--").to_string(), kv[1].to_string())).collect();
        assert_eq!(documented, help, "README's `experiment bench sim [...]` lists every flag with its default");
    }
}
