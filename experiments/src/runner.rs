//! Runs a sweep: every point and repetition, one after the other, each written to
//! the results directory as soon as it finishes, so an interrupted sweep resumes
//! without redoing or losing finished runs. A failed run is recorded and the sweep
//! goes on. Each finished run's part files are written, and its rows appended to the
//! combined tables, on the table writer's thread while the next run goes
//! ([`dagwire_analysis::table_thread`]).

use crate::drivers;
use crate::plan::Point;
use crate::progress::{RunWatch, SweepProgress};
use crate::results::{self, ManifestInfo};
use crate::sweep::Sweep;
use anyhow::Result;
use dagwire_analysis::table_thread::{OwnedRows, TableThread};
use dagwire_analysis::tables::{self, PointRecord, TraceRows};
use dagwire_runtime::drivers::{Executed, Launch, Observer};
use dagwire_runtime::{RunOutcome, rng};
use dagwire_workloads::Workload;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

/// How a sweep ended.
pub struct SweepOutcome {
    /// This session's runs (an earlier session's are in the tables).
    pub records: Vec<PointRecord>,
    /// Runs that failed or did not verify, over the whole directory.
    pub bad_runs: usize,
}

/// Runs every point of `sweep` into `dir`.
///
/// The points' input files (machine files) are pinned to the copies recorded in
/// `dir` (see [`crate::inputs`]), so `points` afterwards read those copies.
pub fn run_sweep(sweep: &Sweep, points: &mut [Point], dir: &Path, resume: bool) -> Result<SweepOutcome> {
    let _lock = results::open(dir, sweep, resume)?;
    let inputs = crate::inputs::pin(dir, points, resume)?;
    let points: &[Point] = points;
    let started = SystemTime::now();
    let finished = if resume { tables::finished_parts(dir)? } else { Default::default() };
    let total = points.len() * sweep.repetitions as usize;
    let mut info =
        ManifestInfo { sweep, inputs: &inputs, points: points.len(), started, finished: None, failed_runs: 0 };
    results::write_manifest(dir, &info)?;
    let mut progress = SweepProgress::new(total, finished.len());
    let mut records = Vec::new();
    let mut tables = TableThread::start(dir)?;
    for point in points {
        for rep in 0..sweep.repetitions {
            if finished.contains(&(point.id, rep)) {
                // An earlier session's run, appended in its place in the tables' order.
                tables.append_part(point.id, rep)?;
                continue;
            }
            let label = format!("point {} rep {}: {}", point.id, rep, point.label());
            progress.start(&label);
            let watch = progress.watch(&format!("point {} rep {}", point.id, rep));
            let record = run_and_record(sweep, point, rep, dir, &watch, &mut tables)?;
            progress.finish_one(&label, &outcome_line(&record));
            records.push(record);
        }
    }
    progress.close();
    if let Some(why) = tables.finish()?.fell_back {
        eprintln!("note: the tables were combined from the part files ({why})");
    }
    let bad_runs = count_bad(&tables::read_points(dir)?);
    info.finished = Some(SystemTime::now());
    info.failed_runs = bad_runs;
    results::write_manifest(dir, &info)?;
    Ok(SweepOutcome { records, bad_runs })
}

/// Runs one repetition of a point and hands it to `tables` (which writes its parts),
/// `watch` showing how far a long run has got. Only a failure to write results is an
/// error here; a failed run is a recorded outcome.
fn run_and_record(
    sweep: &Sweep,
    point: &Point,
    rep: u32,
    dir: &Path,
    watch: &RunWatch,
    tables: &mut TableThread,
) -> Result<PointRecord> {
    if let Launch::Job(_) = point.driver.launch {
        // Each point of a job driver is a job of its own: `mpirun -n R experiment point ...`,
        // whose rank 0 writes the parts (or, if the job failed, the launcher does).
        let record = crate::launcher::run_and_record(sweep, point, rep, dir)?;
        if tables::finished_parts(dir)?.contains(&(point.id, rep)) {
            tables.append_part(point.id, rep)?;
        }
        return Ok(record);
    }
    let started = Instant::now();
    let observe = |p| watch.observe(p);
    let attempt = catch_unwind(AssertUnwindSafe(|| run_point(sweep, point, rep, Some(&observe))));
    let wall_s = started.elapsed().as_secs_f64();
    let mut record = base_record(point, rep, wall_s);
    match attempt {
        Ok(Ok((_, Executed { outcome, .. }))) if outcome.makespan_ns > i64::MAX as u64 => {
            // The tables keep times as Int64 ns (292 years); a run this long is a machine
            // model out of proportion, recorded as failed, not a sweep stopped for good.
            record.error = Some(format!(
                "the run's makespan of {} ns does not fit the tables' Int64 nanoseconds (292 years): check the \
                 machine's rates and latencies",
                outcome.makespan_ns
            ));
            tables.write_point(record.clone(), None)?;
        }
        Ok(Ok((workload, Executed { outcome, kernels_ran }))) => {
            fill_success(&mut record, workload.as_ref(), &outcome, kernels_ran);
            let dag = workload.dag();
            let transfers = outcome.trace.transfers(|c| dag.chunk(c).bytes);
            let kernel_name = |k| workload.kernel_name(k);
            let rows = OwnedRows::new(outcome.trace, transfers, &kernel_name, Some(dag.clone()));
            tables.write_point(record.clone(), Some(rows))?;
        }
        Ok(Err(error)) => {
            record.error = Some(format!("{error:#}"));
            tables.write_point(record.clone(), None)?;
        }
        Err(panic) => {
            record.error = Some(format!("run panicked: {}", dagwire_runtime::drivers::panics::text(&*panic)));
            tables.write_point(record.clone(), None)?;
        }
    }
    Ok(record)
}

/// Fills `record` from a finished run (verifying it when its kernels ran) and writes
/// the run's parts under `dir`.
pub(crate) fn write_success(
    dir: &Path,
    record: &mut PointRecord,
    workload: &dyn Workload,
    outcome: &RunOutcome,
    kernels_ran: bool,
) -> Result<()> {
    fill_success(record, workload, outcome, kernels_ran);
    let transfers = outcome.trace.transfers(|c| workload.dag().chunk(c).bytes);
    let kernel_name = |k| workload.kernel_name(k);
    let rows = TraceRows {
        trace: &outcome.trace,
        transfers: &transfers,
        kernel_name: &kernel_name,
        dag: Some(workload.dag()),
    };
    tables::write_point_parts(dir, record, Some(rows))
}

/// Builds the workload and runs it on the point's driver, which tells `observer` how
/// far the run has got if it can.
pub(crate) fn run_point(
    sweep: &Sweep,
    point: &Point,
    rep: u32,
    observer: Option<Observer<'_>>,
) -> Result<(Box<dyn Workload>, Executed)> {
    let workload = (point.workload.prepare)(&point.workload_params, point.ranks, sweep.seed)?;
    let seed = run_seed(sweep.seed, rep);
    let factory = point.strategy.factory(&point.strategy_params, workload.dag(), seed);
    let kernel_name = |k| workload.kernel_name(k);
    let timeout = Duration::from_secs(sweep.timeout_s);
    let mut req = point.request(workload.dag(), workload.kernels(), &kernel_name, &factory, timeout, seed);
    req.observer = observer;
    let executed = drivers::execute_in_process(point.driver, &req)?;
    Ok((workload, executed))
}

/// The seed of one repetition's randomness (the strategies' streams, the simulator's
/// jitter): repetitions draw differently, the same repetition always the same. The
/// workload is built from the sweep's seed itself, so every repetition computes on the
/// same data.
pub(crate) fn run_seed(sweep_seed: u64, rep: u32) -> u64 {
    rng::derive(sweep_seed, rng::stream::repetition(rep))
}

pub(crate) fn base_record(point: &Point, rep: u32, wall_s: f64) -> PointRecord {
    PointRecord {
        point_id: point.id,
        repetition: rep,
        params: point.columns.clone(),
        makespan_ns: None,
        gflops: None,
        data_messages: 0,
        data_bytes: 0,
        control_messages: 0,
        control_bytes: 0,
        registrations: 0,
        registration_ns: 0,
        tasks: 0,
        verified: false,
        check_metric: None,
        check_value: None,
        error: None,
        wall_s,
    }
}

fn fill_success(record: &mut PointRecord, workload: &dyn Workload, outcome: &RunOutcome, kernels_ran: bool) {
    let totals = outcome.trace.message_totals();
    let seconds = outcome.makespan_ns as f64 * 1e-9;
    record.makespan_ns = Some(outcome.makespan_ns);
    record.gflops = (seconds > 0.0 && workload.useful_flops() > 0.0).then(|| workload.useful_flops() / seconds * 1e-9);
    record.data_messages = totals.data_messages;
    record.data_bytes = totals.data_bytes;
    record.control_messages = totals.control_messages;
    record.control_bytes = totals.control_bytes;
    record.registrations = totals.registrations;
    record.registration_ns = totals.registration_ns;
    record.tasks = outcome.trace.task_count();
    let prefix = record.params.iter().find(|(k, _)| k == "workload").map(|(_, v)| v.to_string()).unwrap_or_default();
    for (name, value) in workload.figures(&outcome.trace) {
        record.params.push((format!("{prefix}.{name}"), dagwire_runtime::ParamValue::Float(value)));
    }
    if !kernels_ran {
        record.check_metric = Some(SKIPPED.to_string());
        return;
    }
    let check = workload.verify(&outcome.results);
    record.verified = check.passed;
    record.check_metric = Some(check.metric.to_string());
    record.check_value = Some(check.value);
    if !check.passed {
        record.error = Some(format!("verification failed: {}", check.detail));
    }
}

pub(crate) fn outcome_line(r: &PointRecord) -> String {
    if r.check_metric.as_deref() == Some(SKIPPED) {
        let ns = r.makespan_ns.unwrap_or(0) as f64;
        return format!(
            "{:.2} ms (virtual), {:.2} GFLOP/s, not verified (kernels not run)",
            ns * 1e-6,
            r.gflops.unwrap_or(0.0)
        );
    }
    match (&r.error, r.makespan_ns) {
        (Some(e), _) => format!("FAILED: {}", e.lines().next().unwrap_or_default()),
        (None, Some(ns)) => format!(
            "{:.2} ms,{} verified ({} = {:.2e})",
            ns as f64 * 1e-6,
            r.gflops.map(|g| format!(" {g:.2} GFLOP/s,")).unwrap_or_default(),
            r.check_metric.as_deref().unwrap_or("check"),
            r.check_value.unwrap_or(f64::NAN)
        ),
        (None, None) => "no result".into(),
    }
}

/// `check_metric` of a run whose kernels were only costed, so nothing could be verified
/// (the report reads the same constant).
pub const SKIPPED: &str = dagwire_analysis::report::UNVERIFIABLE;

/// Runs in the combined table that failed or did not verify (their `error` is set).
fn count_bad(points: &polars::prelude::DataFrame) -> usize {
    points.column("error").map(|c| c.len() - c.null_count()).unwrap_or(0)
}
