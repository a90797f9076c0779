//! `experiment`: run sweeps of dagwire workloads over strategies and drivers.
//!
//! Exit codes: 0 every run verified; 1 some run failed or did not verify; 2 the
//! command could not do its job (bad sweep file, unwritable directory, ...).

use anyhow::Result;
use clap::{Parser, Subcommand};
use dagwire_experiments::{
    bench, calibrate, list, plan, point, report, results, runner, summary, sweep, trace_export, whatif,
};
use std::path::PathBuf;
use std::process::ExitCode;

/// Run sweeps of task-DAG workloads over communication strategies and drivers, and
/// write verified results as Parquet tables.
#[derive(Parser)]
#[command(
    version,
    about = "Run sweeps of task-DAG workloads over communication strategies and drivers; write verified results as Parquet tables",
    after_help = "Examples:\n  experiment run sweeps/quickstart.toml\n  experiment run sweeps/sim-cholesky.toml --out results/sim\n  experiment run sweeps/sim-cholesky.toml --out results/sim --resume\n  experiment run sweeps/quickstart.toml --report\n  experiment report results/quickstart-20261123T203000Z\n  experiment trace results/quickstart-20261123T203000Z --point 0 --format perfetto\n  experiment list strategies\n  experiment bench cholesky --n 4096 --tile 256\n  experiment calibrate --driver mpi --out machines/this-host.toml\n  experiment whatif results/sim-cholesky-20261123T203000Z --set latency=0.5x --set latency=2x --set bandwidth=2x\n  experiment whatif sweeps/sim-cholesky.toml --sensitivity --perturb 20%\n\nExit codes: 0 every run verified, 1 a run failed or did not verify, 2 the command could not run."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every point of a sweep file and write a results directory.
    ///
    /// The directory gets manifest.json and points/tasks/transfers/messages.parquet
    /// (columns documented in README.md). Each finished run is saved at once, so an
    /// interrupted sweep continues with --resume.
    Run {
        /// The sweep file (TOML), e.g. sweeps/quickstart.toml.
        sweep: PathBuf,
        /// Results directory [default: results/<sweep name>-<UTC timestamp>].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Continue an interrupted sweep in --out DIR, skipping finished runs.
        #[arg(long, requires = "out")]
        resume: bool,
        /// Only check the sweep file and print its points; run nothing.
        #[arg(long)]
        dry_run: bool,
        /// Write the report (as `experiment report DIR`) once the sweep is done.
        #[arg(long)]
        report: bool,
        /// Refuse a grid that expands to more points than this (checked before expanding).
        #[arg(long, default_value_t = 100_000)]
        max_points: u64,
    },
    /// Write the performance report of a results directory: DIR/report/report.html
    /// (self-contained), report.md and the figures (SVG and PNG).
    Report {
        /// The results directory `experiment run` printed.
        dir: PathBuf,
    },
    /// Export one run's trace for a viewer (ui.perfetto.dev, chrome://tracing).
    Trace {
        /// The results directory.
        dir: PathBuf,
        /// The point (the `point` column of the summary).
        #[arg(long)]
        point: i64,
        /// The repetition.
        #[arg(long, default_value_t = 0)]
        repetition: i64,
        /// Output format.
        #[arg(long, value_enum, default_value = "perfetto")]
        format: trace_export::Format,
        /// Output file [default: DIR/trace-<point>-<repetition>.json].
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// List workloads, strategies, drivers, machines or the results tables' columns.
    List {
        /// What to list.
        #[arg(value_enum, default_value = "all")]
        what: list::What,
    },
    /// Run one rank of an mpi point (SPMD): `mpirun -n 4 experiment point SWEEP --point 0`.
    ///
    /// `experiment run` launches this for every point with driver = "mpi"; inside an
    /// allocation you can run one point yourself. Rank 0 writes the results under --out.
    Point(point::PointArgs),
    /// Measure this host through a driver and write a machine file the simulator reads
    /// (LogGP fitted piecewise, task overhead, kernel rates; each value with its residual
    /// and source in a comment) and a measured-vs-fitted figure next to it.
    Calibrate(calibrate::Args),
    /// Rerun a sweep's simulated points on changed machine parameters (--set, several
    /// form a grid) and compare: per strategy and point, baseline vs what-if makespan,
    /// the winner and whether the ranking changed; --sensitivity ranks the parameters.
    Whatif(whatif::Args),
    /// Benchmarks that print figures (not tests): see `experiment bench --help`.
    Bench {
        #[command(subcommand)]
        which: bench::Which,
    },
    /// Start N processes of a command as the ranks of a job on this host (what
    /// `launcher = "local"` runs; `experiment run` calls it): each gets its rank and a
    /// job directory in its environment; when one fails the others are stopped.
    #[command(hide = true)]
    LaunchLocal {
        /// Ranks.
        #[arg(short = 'n')]
        ranks: usize,
        /// The program and its arguments.
        #[arg(trailing_var_arg = true, required = true)]
        command: Vec<String>,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Run { sweep, out, resume, dry_run, report, max_points } => {
            run_sweep(sweep, out, resume, dry_run, report, max_points)
        }
        Command::Report { dir } => {
            print!("{}", report::run(&dir)?.1);
            Ok(ExitCode::SUCCESS)
        }
        Command::Trace { dir, point, repetition, format, out } => {
            let path = trace_export::run(&dir, point, repetition, format, out)?;
            println!("trace: {} (open it in ui.perfetto.dev or chrome://tracing)", path.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::List { what } => {
            print!("{}", list::render(what));
            Ok(ExitCode::SUCCESS)
        }
        Command::Point(args) => point::run(args),
        Command::Calibrate(args) => {
            calibrate::run(&args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Whatif(args) => {
            print!("{}", whatif::run(&args)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::LaunchLocal { ranks, command } => dagwire_experiments::launcher::launch_local(ranks, &command),
        Command::Bench { which } => {
            bench::run(which)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn run_sweep(
    path: PathBuf,
    out: Option<PathBuf>,
    resume: bool,
    dry_run: bool,
    write_report: bool,
    max_points: u64,
) -> Result<ExitCode> {
    let sweep = sweep::load(&path)?;
    sweep.check_size(max_points)?;
    let mut points = plan::expand(&sweep)?;
    let runs = points.len() * sweep.repetitions as usize;
    eprintln!("sweep {}: {} points x {} repetitions = {runs} runs", sweep.name, points.len(), sweep.repetitions);
    if dry_run {
        points.iter().for_each(|p| println!("point {}: {}", p.id, p.label()));
        return Ok(ExitCode::SUCCESS);
    }
    let dir = out.unwrap_or_else(|| results::default_dir(&sweep, std::time::SystemTime::now()));
    let outcome = runner::run_sweep(&sweep, &mut points, &dir, resume)?;
    print!("{}", summary::render(&dir)?);
    println!("results: {}", dir.display());
    if write_report {
        print!("{}", report::run(&dir)?.1);
    }
    if outcome.bad_runs > 0 {
        eprintln!("{} runs failed or did not verify; see the error column of points.parquet", outcome.bad_runs);
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
