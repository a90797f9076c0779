//! `experiment point`: one rank of a point on a job driver (SPMD: every rank of the job
//! runs this same command). `experiment run` launches it for each point whose driver
//! runs points as jobs (`mpi`); a user inside an allocation can run it too:
//! `mpirun -n 4 experiment point sweeps/mpi.toml --point 0`.
//!
//! Every rank builds the point's workload and strategy from the sweep file and joins the
//! job through its driver's registry entry; rank 0 gathers the trace and results,
//! verifies them and writes the point's parts under `--out` (and, run by hand, the
//! combined tables). A rank whose run fails prints `dagwire: rank R failed: REASON` and
//! aborts the job; a rank that panics prints `dagwire: rank R panicked: ...` and aborts
//! it, so no rank waits forever.

use anyhow::Result;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `experiment point`.
#[derive(Clone, Debug, clap::Args)]
pub struct PointArgs {
    /// The sweep file the point comes from.
    pub sweep: PathBuf,
    /// The point's id (see `experiment run SWEEP --dry-run`).
    #[arg(long)]
    pub point: u32,
    /// Which repetition this is.
    #[arg(long, default_value_t = 0)]
    pub rep: u32,
    /// Results directory (created if missing).
    #[arg(long, default_value = "results/point")]
    pub out: PathBuf,
    /// Launched by `experiment run`: read the sweep from the text recorded in `--out`'s
    /// manifest (a sweep is one immutable input: editing the file during a sweep changes
    /// nothing) and print the record on one line (`experiment run` combines the tables).
    #[arg(long, hide = true)]
    pub record_line: bool,
}

/// Runs this process's rank of the point.
pub fn run(args: PointArgs) -> Result<ExitCode> {
    imp::run(args)
}

mod imp {
    use super::PointArgs;
    use crate::launcher::{FAILURE_PREFIX, launcher_rank, record_line};
    use crate::plan::{self, Point};
    use crate::results::{self, ManifestInfo};
    use crate::runner::{base_record, outcome_line, run_seed, write_success};
    use crate::sweep::{self, Sweep};
    use anyhow::{Context, Result, bail};
    use dagwire_runtime::drivers::panics::{self, Handling};
    use dagwire_runtime::drivers::{JobDriver, JobRank, Launch};
    use std::process::ExitCode;
    use std::time::{Duration, Instant, SystemTime};

    /// Environment hook for tests: the rank with this number fails on purpose...
    pub const KILL_RANK_ENV: &str = "DAGWIRE_TEST_KILL_RANK";
    /// ...this many milliseconds after the point started (default 0)...
    pub const KILL_AFTER_ENV: &str = "DAGWIRE_TEST_KILL_AFTER_MS";
    /// ...by sending itself this signal (`KILL`, the default, or `STOP` to hang), or by
    /// panicking (`panic`).
    pub const KILL_SIGNAL_ENV: &str = "DAGWIRE_TEST_KILL_SIGNAL";

    pub fn run(args: PointArgs) -> Result<ExitCode> {
        let (sweep, point, job_driver) = match find_point(&args) {
            Ok(found) => found,
            Err(e) => {
                // Every rank reads the same file and finds the same problem: say it once.
                if launcher_rank().is_none_or(|r| r == 0) {
                    eprintln!("error: {e:#}");
                }
                return Ok(ExitCode::from(2));
            }
        };
        let job = (job_driver.join)()?;
        let rank = job.rank();
        let abort = job_driver.abort;
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // A kernel's panic on a worker is caught and fails its task with the reason.
            if std::thread::current().name().is_some_and(|n| n.contains("-worker-")) {
                return default_hook(info);
            }
            // One line, so the launcher can quote it whole.
            let text = panics::text(info.payload());
            let at = info.location().map(|l| format!(" (at {}:{})", l.file(), l.line())).unwrap_or_default();
            let handling = match panics::handling() {
                Handling::Nothing => String::new(),
                h => format!(" while handling {h}"),
            };
            eprintln!("{FAILURE_PREFIX}{rank} panicked{handling}: {}{at}", text.replace('\n', " "));
            abort(101);
        }));
        if point.ranks != job.size() {
            if rank == 0 {
                eprintln!(
                    "error: point {} needs {} ranks, this job has {}; launch it with -n {}",
                    point.id,
                    point.ranks,
                    job.size(),
                    point.ranks
                );
            }
            return Ok(ExitCode::from(2));
        }
        kill_hook(rank);
        let started = Instant::now();
        let workload = match (point.workload.prepare)(&point.workload_params, point.ranks, sweep.seed) {
            Ok(w) => w,
            Err(e) => fail(job.as_ref(), &format!("building the workload: {e}")),
        };
        let seed = run_seed(sweep.seed, args.rep);
        let factory = point.strategy.factory(&point.strategy_params, workload.dag(), seed);
        let kernel_name = |k| workload.kernel_name(k);
        let timeout = Duration::from_secs(sweep.timeout_s);
        let req = point.request(workload.dag(), workload.kernels(), &kernel_name, &factory, timeout, seed);
        let executed = match job.run(&req) {
            Ok(executed) => executed,
            Err(e) => fail(job.as_ref(), &format!("{e}")),
        };
        let Some(executed) = executed else {
            return Ok(ExitCode::SUCCESS);
        };
        let mut record = base_record(&point, args.rep, started.elapsed().as_secs_f64());
        // By hand: a new results directory, or more points into one of the same sweep.
        let _lock = if args.record_line { None } else { Some(results::open(&args.out, &sweep, args.out.exists())?) };
        write_success(&args.out, &mut record, workload.as_ref(), &executed.outcome, executed.kernels_ran)?;
        if args.record_line {
            println!("{}", record_line(&record, point.columns.len()));
        } else {
            let info = ManifestInfo {
                sweep: &sweep,
                inputs: &[],
                points: 1,
                started: SystemTime::now(),
                finished: None,
                failed_runs: 0,
            };
            // Tables first: the manifest records their checksums.
            dagwire_analysis::tables::combine(&args.out)?;
            results::write_manifest(&args.out, &info)?;
            eprintln!("point {} rep {}: {}", point.id, args.rep, outcome_line(&record));
            println!("results: {}", args.out.display());
        }
        Ok(if record.error.is_none() { ExitCode::SUCCESS } else { ExitCode::from(1) })
    }

    /// The point to run, and its driver, which must run points as jobs.
    fn find_point(args: &PointArgs) -> Result<(Sweep, Point, &'static JobDriver)> {
        let sweep = if args.record_line { recorded_sweep(args)? } else { sweep::load(&args.sweep)? };
        let points = plan::expand(&sweep)?;
        let count = points.len();
        let Some(mut point) = points.into_iter().find(|p| p.id == args.point) else {
            bail!("{} has {count} points (0..{count}); there is no point {}", args.sweep.display(), args.point);
        };
        if args.record_line {
            // Launched by `experiment run`: read input files from the copies it recorded.
            crate::inputs::pin_recorded(&args.out, std::slice::from_mut(&mut point))?;
        }
        let Launch::Job(job_driver) = &point.driver.launch else {
            bail!(
                "point {} of {} runs on driver `{}`, which runs points in one process; `experiment point` runs \
                 points of job drivers (mpi) only (use `experiment run`)",
                point.id,
                args.sweep.display(),
                point.driver.name
            );
        };
        Ok((sweep, point, job_driver))
    }

    /// The sweep as `experiment run` recorded it in `--out`'s manifest when the sweep
    /// began (named after the file it came from, for error messages).
    fn recorded_sweep(args: &PointArgs) -> Result<Sweep> {
        let path = args.out.join("manifest.json");
        let manifest: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(&path)
                .with_context(|| format!("reading the sweep's manifest {}", path.display()))?,
        )
        .with_context(|| format!("{} is not valid JSON", path.display()))?;
        let text =
            manifest["sweep"]["text"].as_str().with_context(|| format!("{} records no sweep text", path.display()))?;
        Ok(sweep::parse(&args.sweep, text)?)
    }

    /// Says why this rank failed and ends the job.
    fn fail(job: &dyn JobRank, reason: &str) -> ! {
        eprintln!("{FAILURE_PREFIX}{} failed: {reason}", job.rank());
        job.abort(1)
    }

    /// For the failure tests: kill, stop or panic this rank after a while, if asked to.
    fn kill_hook(rank: usize) {
        if std::env::var(KILL_RANK_ENV).ok().and_then(|v| v.parse::<usize>().ok()) != Some(rank) {
            return;
        }
        let after = std::env::var(KILL_AFTER_ENV).ok().and_then(|v| v.parse().ok()).unwrap_or(0);
        let signal = std::env::var(KILL_SIGNAL_ENV).unwrap_or_else(|_| "KILL".into());
        let strike = move || {
            std::thread::sleep(Duration::from_millis(after));
            if signal == "panic" {
                panic!("{KILL_RANK_ENV} asked rank {rank} to panic");
            }
            let pid = std::process::id().to_string();
            let _ = std::process::Command::new("kill").args([&format!("-{signal}"), &pid]).status();
        };
        // At once: before the run, while the peers wait in its start-up exchange.
        if after == 0 {
            strike();
        } else {
            std::thread::spawn(strike);
        }
    }
}
