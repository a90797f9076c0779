//! Runs one `mpi` point as an MPI job of its own: `LAUNCHER -n RANKS [ARGS] experiment
//! point SWEEP --point ID --rep REP --out DIR --record-line`, where every rank runs the
//! point ([`crate::point`]) and rank 0 writes its results parts and prints its record.
//!
//! The launcher and its arguments come from the sweep (`[grid.mpi] launcher`,
//! `launcher_args`) or, when those are `auto`, from the environment
//! (`DAGWIRE_MPI_LAUNCHER`, `DAGWIRE_MPI_LAUNCHER_ARGS`), so `srun` works as well as
//! `mpirun`. A job that runs longer than `job_timeout_s` is killed (its whole process
//! group), and so is one that has not ended [`TEARDOWN_GRACE`] after its output showed
//! a failure (Open MPI sometimes hangs tearing down an aborted job); a job that fails (a
//! rank's kernel failed, a rank panicked or was killed) is recorded as a failed point
//! with the reason the ranks or the launcher gave, and the sweep goes on.

use crate::plan::Point;
use crate::runner::base_record;
use crate::sweep::Sweep;
use anyhow::{Context, Result};
use dagwire_analysis::tables::{self, PointRecord};
use dagwire_runtime::{ParamValue, Params};
use serde_json::{Value, json};
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The launcher name that starts the ranks on this host without MPI ([`launch_local`]).
pub const LOCAL: &str = "local";

/// Environment variable naming a directory of the job's own that every rank can read.
pub use dagwire_runtime::drivers::launch::JOB_DIR_ENV;

/// `experiment launch-local -n N PROGRAM ARGS...`: starts N processes of the program as
/// the ranks of a job on this host ([`dagwire_runtime::drivers::launch::run`]) and exits
/// with 0 when all of them did; when one fails it stops the others and says which rank
/// failed and how, on a line starting with [`LOCAL_FAILURE`].
pub fn launch_local(ranks: usize, command: &[String]) -> Result<std::process::ExitCode> {
    let (program, args) = command.split_first().context("launch-local needs a program to start")?;
    let job = dagwire_runtime::drivers::launch::run(
        ranks,
        |_| {
            let mut cmd = Command::new(program);
            cmd.args(args);
            cmd
        },
        Duration::MAX,
    )
    .with_context(|| format!("starting {program}"))?;
    Ok(match job.failure() {
        None => std::process::ExitCode::SUCCESS,
        Some(why) => {
            eprintln!("{LOCAL_FAILURE}{why}");
            std::process::ExitCode::from(1)
        }
    })
}

/// How the local launcher's line about a failed rank starts.
pub const LOCAL_FAILURE: &str = "dagwire launch-local: ";

/// Environment variable naming the launcher when `[grid.mpi] launcher = "auto"`.
pub const LAUNCHER_ENV: &str = "DAGWIRE_MPI_LAUNCHER";
/// Environment variable with extra launcher arguments when `launcher_args = "auto"`.
pub const LAUNCHER_ARGS_ENV: &str = "DAGWIRE_MPI_LAUNCHER_ARGS";
/// glibc malloc settings for the ranks (unless `GLIBC_TUNABLES` is set already): chunk
/// buffers up to 32 MiB come from the heap and freed memory stays there, so a rank reuses
/// memory instead of mapping fresh pages for every large message. Page faults otherwise
/// cost more than the transfer itself (measured with `experiment bench mpi`: a 4 MiB
/// ping-pong through the engine took 3.7 ms one way without, 0.94 ms with).
pub const MALLOC_TUNABLES: &str = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=268435456";

/// Sets [`MALLOC_TUNABLES`] on a command that starts ranks, unless the user chose their own.
pub fn tune_malloc(cmd: &mut Command) {
    if std::env::var_os("GLIBC_TUNABLES").is_none() {
        cmd.env("GLIBC_TUNABLES", MALLOC_TUNABLES);
    }
}

/// Prefix of the line on which rank 0 prints its record for the launcher.
pub const RECORD_PREFIX: &str = "dagwire-record: ";
/// Prefix of the lines on which a failing rank says why (before aborting the job).
pub const FAILURE_PREFIX: &str = "dagwire: rank ";

/// The launcher command and its extra arguments for a point's parameters.
///
/// ```
/// use dagwire_experiments::launcher::command_line;
/// use dagwire_runtime::drivers::JobDriver;
/// use dagwire_runtime::{ParamValue, Params};
/// let given = [("launcher", ParamValue::Str("srun".into())), ("launcher_args", ParamValue::Str("--mpi=pmix -c 2".into()))];
/// let p = Params::from_pairs(&JobDriver::launcher_params(), &given).unwrap();
/// assert_eq!(command_line(&p), ("srun".to_string(), vec!["--mpi=pmix".to_string(), "-c".into(), "2".into()]));
/// ```
pub fn command_line(params: &Params) -> (String, Vec<String>) {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let launcher = match params.str("launcher") {
        "auto" => env(LAUNCHER_ENV).unwrap_or_else(|| "mpirun".into()),
        l => l.to_string(),
    };
    let args = match params.str("launcher_args") {
        // The environment's arguments are an MPI launcher's (--oversubscribe...), not
        // dagwire's own local launcher's.
        "auto" if launcher == LOCAL => String::new(),
        "auto" => env(LAUNCHER_ARGS_ENV).unwrap_or_default(),
        "none" => String::new(),
        a => a.to_string(),
    };
    (launcher, args.split_whitespace().map(str::to_string).collect())
}

/// Runs one repetition of an `mpi` point as its own job and records it. Only a failure
/// to write results is an error; a failed job is a recorded outcome.
pub fn run_and_record(sweep: &Sweep, point: &Point, rep: u32, dir: &Path) -> Result<PointRecord> {
    let started = Instant::now();
    let (launcher, args) = command_line(&point.driver_params);
    let exe = std::env::current_exe().context("finding the experiment binary to launch")?;
    // `local`: this binary starts the ranks itself (`experiment launch-local`), no MPI.
    let mut cmd = if launcher == LOCAL { Command::new(&exe) } else { Command::new(&launcher) };
    if launcher == LOCAL {
        cmd.arg("launch-local");
    }
    // A directory of the job's own, which every rank can read (the results directory is
    // where the ranks write anyway): the libfabric driver exchanges addresses there.
    let job_dir = dir.join(format!(".job-{}-{rep}", point.id));
    let _ = std::fs::remove_dir_all(&job_dir);
    std::fs::create_dir_all(&job_dir).with_context(|| format!("creating {}", job_dir.display()))?;
    cmd.env(JOB_DIR_ENV, &job_dir);
    cmd.arg("-n")
        .arg(point.ranks.to_string())
        .args(&args)
        .arg(&exe)
        .arg("point")
        .arg(&sweep.path)
        .args(["--point", &point.id.to_string(), "--rep", &rep.to_string(), "--out"])
        .arg(dir)
        .arg("--record-line");
    tune_malloc(&mut cmd);
    let timeout = Duration::from_secs(point.driver_params.int("job_timeout_s") as u64);
    let job = run_job(&mut cmd, timeout);
    let _ = std::fs::remove_dir_all(&job_dir);
    let wall_s = started.elapsed().as_secs_f64();
    let record = match job {
        Err(e) => Err(format!(
            "cannot start the MPI launcher `{launcher}`: {e}; install an MPI (scripts/packages.txt) or set \
             [grid.mpi] launcher or ${LAUNCHER_ENV}"
        )),
        Ok(job) => interpret(point, rep, wall_s, &launcher, &job, timeout),
    };
    match record {
        Ok(record) => Ok(record),
        Err(error) => {
            let mut record = base_record(point, rep, wall_s);
            record.error = Some(error);
            tables::write_point_parts(dir, &record, None)?;
            Ok(record)
        }
    }
}

/// What a finished (or killed) job left.
struct Job {
    status: Option<ExitStatus>,
    /// The job was killed because it had not ended [`TEARDOWN_GRACE`] after a failure
    /// showed in its output.
    stuck_after_failure: bool,
    stdout: String,
    stderr: String,
}

/// How long a job may take to end once its output shows it failed (a rank's failure
/// line, or the launcher reporting an abort or a rank killed by a signal). Open MPI 4.1
/// sometimes never exits, or crashes, while tearing down such a job; waiting for
/// `job_timeout_s` would cost the whole timeout for an answer already known.
pub const TEARDOWN_GRACE: Duration = Duration::from_secs(10);

/// Whether an output line shows the job failed: one of our ranks said why, or the
/// launcher reports an abort or a rank that died.
fn shows_failure(line: &str) -> bool {
    line.starts_with(FAILURE_PREFIX)
        || line.starts_with(LOCAL_FAILURE)
        || line.contains("MPI_ABORT was invoked")
        || line.contains("exited on signal")
        || line.contains("exited with non-zero status")
}

/// Runs `cmd` in a process group of its own, capturing its output; after `timeout`,
/// or [`TEARDOWN_GRACE`] after its output showed a failure, the whole group (launcher
/// and ranks) is terminated, then killed.
fn run_job(cmd: &mut Command, timeout: Duration) -> std::io::Result<Job> {
    use std::io::BufRead;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    crate::process::end_jobs_on_signals();
    crate::process::die_with_parent(cmd);
    crate::process::pass_to_job(cmd);
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0).spawn()?;
    crate::process::set_job_group(Some(child.id()));
    let failed = Arc::new(AtomicBool::new(false));
    let drain = |r: Box<dyn Read + Send>| {
        let failed = Arc::clone(&failed);
        std::thread::spawn(move || {
            let mut s = String::new();
            for line in std::io::BufReader::new(r).lines().map_while(Result::ok) {
                if shows_failure(&line) {
                    failed.store(true, Ordering::Relaxed);
                }
                // The rank's choice of progress mode, said once per sweep and choice.
                if line.starts_with(dagwire_runtime::drivers::PROGRESS_NOTE) {
                    dagwire_runtime::drivers::note_progress(&line);
                }
                s.push_str(&line);
                s.push('\n');
            }
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("piped")));
    let err = drain(Box::new(child.stderr.take().expect("piped")));
    let mut deadline = Instant::now() + timeout;
    let mut grace_started = false;
    let mut status = None;
    while Instant::now() < deadline {
        if let Some(s) = child.try_wait()? {
            status = Some(s);
            break;
        }
        if !grace_started && failed.load(Ordering::Relaxed) {
            grace_started = true;
            deadline = deadline.min(Instant::now() + TEARDOWN_GRACE);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if status.is_none() {
        let group = format!("-{}", child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let grace = Instant::now() + Duration::from_secs(3);
        while Instant::now() < grace && child.try_wait()?.is_none() {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = child.wait();
    }
    crate::process::set_job_group(None);
    Ok(Job {
        status,
        stuck_after_failure: status.is_none() && grace_started,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// The record of a finished job, or why it failed.
fn interpret(
    point: &Point,
    rep: u32,
    wall_s: f64,
    launcher: &str,
    job: &Job,
    timeout: Duration,
) -> Result<PointRecord, String> {
    let reasons: Vec<&str> =
        job.stderr.lines().chain(job.stdout.lines()).filter(|l| l.starts_with(FAILURE_PREFIX)).collect();
    let record = job.stdout.lines().find_map(|l| l.strip_prefix(RECORD_PREFIX));
    match (job.status, record) {
        (None, _) if job.stuck_after_failure => {
            let why = if reasons.is_empty() { launcher_says(job) } else { reasons.join("; ") };
            Err(format!(
                "the job failed ({launcher} had not exited {}s after the failure and was killed): {why}",
                TEARDOWN_GRACE.as_secs()
            ))
        }
        (None, _) => Err(format!(
            "the job ran longer than {}s (job_timeout_s of the driver) and was killed{}",
            timeout.as_secs(),
            if reasons.is_empty() { String::new() } else { format!(": {}", reasons.join("; ")) }
        )),
        (Some(_), Some(line)) if reasons.is_empty() => record_from_json(point, rep, wall_s, line),
        (Some(status), _) => {
            // A rank killed by a signal is the cause; the ranks that then lost it only
            // report the loss, so the launcher's line about the signal goes first.
            let killed = job.stderr.lines().chain(job.stdout.lines()).map(str::trim).filter(|l| {
                (l.starts_with(LOCAL_FAILURE) && l.contains("killed by signal")) || l.contains("exited on signal")
            });
            let why: Vec<&str> = killed.chain(reasons.iter().copied()).collect();
            let why = if why.is_empty() { launcher_says(job) } else { why.join("; ") };
            Err(format!("the job failed ({launcher} {status}): {why}"))
        }
    }
}

/// The launcher's own explanation: its lines naming a rank or a signal, else its last
/// lines of output.
fn launcher_says(job: &Job) -> String {
    let lines: Vec<&str> = job
        .stderr
        .lines()
        .chain(job.stdout.lines())
        .map(str::trim)
        .filter(|l| {
            !l.is_empty()
                && !l.starts_with("---")
                && !l.starts_with(RECORD_PREFIX)
                && !l.starts_with(dagwire_runtime::drivers::PROGRESS_NOTE)
        })
        .collect();
    let telling: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.contains("signal") || l.contains("exited") || l.contains("rank") || l.contains("error"))
        .collect();
    let shown = if telling.is_empty() { &lines[lines.len().saturating_sub(4)..] } else { &telling[..] };
    if shown.is_empty() { "it printed nothing".into() } else { shown.join(" / ") }
}

/// The line rank 0 prints for the launcher: the metrics of its record and the columns
/// it added to the point's own (workload figures).
pub fn record_line(record: &PointRecord, base_columns: usize) -> String {
    let figures: Vec<Value> = record.params[base_columns.min(record.params.len())..]
        .iter()
        .map(|(k, v)| match v {
            ParamValue::Float(f) => json!([k, f]),
            ParamValue::Int(i) => json!([k, *i as f64]),
            other => json!([k, other.to_string()]),
        })
        .collect();
    let v = json!({
        "makespan_ns": record.makespan_ns,
        "gflops": record.gflops,
        "data_messages": record.data_messages,
        "data_bytes": record.data_bytes,
        "control_messages": record.control_messages,
        "control_bytes": record.control_bytes,
        "registrations": record.registrations,
        "registration_ns": record.registration_ns,
        "tasks": record.tasks,
        "verified": record.verified,
        "check_metric": record.check_metric,
        "check_value": record.check_value,
        "error": record.error,
        "figures": figures,
    });
    format!("{RECORD_PREFIX}{v}")
}

fn record_from_json(point: &Point, rep: u32, wall_s: f64, line: &str) -> Result<PointRecord, String> {
    let bad = |what: &str| format!("rank 0 printed a record the launcher cannot read ({what}): {line}");
    let v: Value = serde_json::from_str(line).map_err(|e| bad(&e.to_string()))?;
    let mut r = base_record(point, rep, wall_s);
    let u = |k: &str| v[k].as_u64().unwrap_or(0);
    r.makespan_ns = v["makespan_ns"].as_u64();
    r.gflops = v["gflops"].as_f64();
    (r.data_messages, r.data_bytes, r.control_messages, r.control_bytes, r.tasks) =
        (u("data_messages"), u("data_bytes"), u("control_messages"), u("control_bytes"), u("tasks"));
    (r.registrations, r.registration_ns) = (u("registrations"), u("registration_ns"));
    r.verified = v["verified"].as_bool().ok_or_else(|| bad("no `verified`"))?;
    r.check_metric = v["check_metric"].as_str().map(str::to_string);
    r.check_value = v["check_value"].as_f64();
    r.error = v["error"].as_str().map(str::to_string);
    for f in v["figures"].as_array().into_iter().flatten() {
        let (Some(k), Some(x)) = (f[0].as_str(), f[1].as_f64()) else { continue };
        r.params.push((k.to_string(), ParamValue::Float(x)));
    }
    Ok(r)
}

/// This process's rank as a launcher told it in the environment (Open MPI, MPICH/Hydra,
/// PMIx, Slurm), before any job is joined; `None` when no launcher started it.
pub fn launcher_rank() -> Option<usize> {
    ["OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "SLURM_PROCID"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.parse().ok())
}
