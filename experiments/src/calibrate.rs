//! `experiment calibrate`: measures this host through the engine's own drivers and
//! writes a machine file the simulator reads (the fitting is
//! [`dagwire_sim::machine::fit`], the file [`dagwire_sim::machine::calibrated`]).
//!
//! What runs, every run through the chosen driver (`local` threads, or `mpi` under
//! `mpirun`, which this command launches itself), eager strategy unless said:
//! - the `micro` ping-pong at sizes 8 B .. `--max-size` (powers of two): a hop is half
//!   the median round trip of rank 0 (its send task's start to its receive task's end,
//!   per measured iteration; medians, as the host may be shared). At the smallest size
//!   the hop less its message alone (sent → received in the trace) is the per-task
//!   overhead, two tasks a hop. The ping-pong curve fitted is the hop less those two
//!   overheads: the message as the engine pays it, including what the micro kernels'
//!   pattern fill and check cost per byte, which the compute model (flops only) has no
//!   term for, so it lands in `G`;
//! - the `micro` bandwidth pattern (window 16) at the same sizes: a window's median
//!   span (send start to acknowledgement end) over its messages is the streaming
//!   interval;
//! - the `micro` ping-pong with the rendezvous strategy, `eager_limit = 0` (every
//!   message through the handshake), at 8, 64 and 512 B: its hop's excess over the
//!   fitted eager hop, less the fitted time of the ready-to-send and clear-to-send
//!   headers, halved, is the CPU cost of handling one control message
//!   ([`dagwire_sim::machine::fit::fit_control`]);
//! - the `micro` ping-pong (one all-to-all a hop, one message in it) and bandwidth
//!   pattern (window 16: many messages an all-to-all) with the batched strategy at 8,
//!   512, 4096, 32768 and 262144 B (those up to `--max-size`), the 8 B ping-pong three
//!   times: the CPU costs of a collective call, of each message a collective piece
//!   carries and of each payload byte, fitted by least squares against the same runs
//!   simulated on the fitted machine ([`dagwire_sim::machine::fit::fit_collective`]);
//!   the three 8 B runs give the call cost's spread;
//! - with `--cpu-per-byte`, the per-byte CPU overhead `O` of the segments: the
//!   streaming interval's slope (on one node the ranks' threads copy every byte, so a
//!   stream waits for that CPU time: the convention), split with the ping-pong slope so
//!   both curves hold, `G` giving up `2·O` ([`dagwire_sim::machine::fit::LogGpFit::with_cpu_per_byte`]);
//! - tiled Cholesky (n = 1024, tiles 128, 256 and 512): each kernel's rate from its
//!   tasks' times less the task overhead, overall (`kernel_gflops`) and per task size
//!   (`kernel_curves`: small tiles run far below large ones), and the matrix
//!   generator's cost per byte it writes (`kernel_ns_per_byte`: it has no flops, yet
//!   fills n^2/2 numbers, about 20 ms per rank at n = 2048 here).
//!
//! Then the machine file, and `<out stem>-fit.svg/png` next to it: measured against
//! fitted curves.

use crate::progress::SweepProgress;
use anyhow::{Context, Result, bail, ensure};
use dagwire_analysis::figures::{
    render,
    xy::{Series, XyChart},
};
use dagwire_runtime::drivers::usable_cores;
use dagwire_runtime::drivers::{Launch, RunRequest};
use dagwire_runtime::message::HEADER_BYTES;
use dagwire_runtime::trace::TraceLevel;
use dagwire_runtime::{MessageClass, ParamValue, Params, Progress, Rank, RunOutcome, Strategy, StrategyFactory};
use dagwire_sim::driver::{SimConfig, SimKernels};
use dagwire_sim::machine::ProgressModel;
use dagwire_sim::machine::calibrated::Calibration;
use dagwire_sim::machine::fit::{
    CollectiveCosts, CollectiveFit, CollectiveSample, ControlFit, CpuPerByteFit, LogGpFit, Sample, fit_collective,
    fit_control, fit_cpu_per_byte, fit_kernel_byte_costs, fit_kernel_curves, fit_kernel_rates, fit_loggp, median,
};
use dagwire_strategies::eager::Eager;
use dagwire_strategies::rendezvous::{DEFAULT_MAX_RECEIVES, Rendezvous};
use dagwire_workloads::Workload;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Arguments of `experiment calibrate`.
#[derive(Clone, Debug, clap::Args)]
pub struct Args {
    /// The registered driver to measure through (`experiment list drivers`): local
    /// (ranks as threads), or a job driver such as mpi or libfabric, which this command
    /// launches with `mpirun -n RANKS` (DAGWIRE_MPI_LAUNCHER and
    /// DAGWIRE_MPI_LAUNCHER_ARGS override), each with its parameters' defaults.
    #[arg(long, default_value = "local")]
    pub driver: String,
    /// Ranks (2: a ping-pong pair).
    #[arg(long, default_value_t = 2)]
    pub ranks: usize,
    /// The machine file to write; the figure goes next to it.
    #[arg(long, default_value = "machines/this-host.toml")]
    pub out: PathBuf,
    /// Largest message measured, bytes.
    #[arg(long, default_value_t = 4 << 20)]
    pub max_size: u64,
    /// Ping-pong and streaming iterations per size (the micro workload divides them
    /// by 10 above 8 KiB).
    #[arg(long, default_value_t = 200)]
    pub iterations: u32,
    /// Cholesky order for the kernel rates (tiles 128, 256 and 512, those at most half of it).
    #[arg(long, default_value_t = 1024)]
    pub kernel_n: i64,
    /// Also fit LogGOPS's per-byte CPU overhead O (`o_per_byte_ns`) from the streaming
    /// slope, moving that share of G onto the ranks' CPUs so a long message delays the
    /// kernels of both ends. Off by default: on this 2-core host it made the predicted
    /// mpi Cholesky makespans 3-8% longer than measured (main's are within 5%), as above
    /// Open MPI's eager limit one rank copies, not both; see issue 16.
    #[arg(long)]
    pub cpu_per_byte: bool,
}

/// One run with a strategy through the chosen driver: rank 0 gets the outcome, other
/// MPI ranks `None`.
type Runner<'a> = dyn Fn(&dyn Workload, StrategyFactory<'_>) -> Result<Option<RunOutcome>> + 'a;

fn eager(_: Rank) -> Box<dyn Strategy> {
    Box::new(Eager)
}

/// Rendezvous for every message (`eager_limit = 0`): the handshake on each hop.
fn rendezvous(_: Rank) -> Box<dyn Strategy> {
    Box::new(Rendezvous::new(0, NonZeroUsize::new(DEFAULT_MAX_RECEIVES).expect("a positive default")))
}

/// The ping-pong sizes of the rendezvous runs (those up to `--max-size`): small, so
/// the handshake's fixed cost dominates.
const CONTROL_SIZES: [u64; 3] = [8, 64, 512];

/// The sizes of the batched runs (those up to `--max-size`): from latency-bound to
/// copy-bound, so the fit tells the per-byte cost from the per-message one.
const BATCHED_SIZES: [u64; 5] = [8, 512, 4096, 32768, 262144];

/// Runs of the 8 B batched ping-pong (the call cost's spread across them is reported).
const CALL_REPEATS: usize = 3;

/// A `# WARNING:` when the call cost's estimates across the repeated 8 B runs spread
/// by more than this fraction of the fitted call cost (or, when it is 0, of the hop).
const CALL_SPREAD: f64 = 0.5;

/// A `# WARNING:` when the modelled batched runs miss the measured ones by more than
/// this rms relative residual.
const COLLECTIVE_RMS: f64 = 0.15;

/// Runs the calibration through the registered driver `--driver`: in this process, or,
/// for a driver whose points run as jobs (mpi, libfabric), as a job this command
/// launches itself (`LAUNCHER -n RANKS`, as `experiment bench mpi` does).
pub fn run(args: &Args) -> Result<()> {
    ensure!(args.ranks == 2, "calibrate measures a ping-pong pair: --ranks 2 (got {})", args.ranks);
    ensure!(args.max_size >= 64, "--max-size must be at least 64 bytes (three sizes per segment)");
    let Some(driver) = crate::drivers::find(&args.driver) else {
        let known: Vec<&str> = crate::drivers::REGISTRY.iter().map(|d| d.name).collect();
        bail!("unknown driver `{}`; known drivers: {}", args.driver, known.join(", "));
    };
    let params = Params::from_pairs(&(driver.params)(), &[])?;
    let request = |w: &dyn Workload,
                   strategy: StrategyFactory<'_>,
                   run: &mut dyn FnMut(&RunRequest<'_>) -> Result<Option<RunOutcome>>| {
        let name = |k| w.kernel_name(k);
        run(&RunRequest {
            dag: w.dag(),
            kernels: w.kernels(),
            kernel_name: &name,
            strategy,
            params: &params,
            ranks: args.ranks,
            workers: 1,
            progress: Progress::default(),
            timeout: Duration::from_secs(120),
            fault: None,
            seed: 1,
            observer: None,
        })
    };
    let how = format!("{} driver ({})", driver.name, driver.summary);
    match &driver.launch {
        Launch::InProcess(execute) => {
            let runner =
                |w: &dyn Workload, s: StrategyFactory<'_>| request(w, s, &mut |req| Ok(Some(execute(req)?.outcome)));
            measure_and_write(args, &runner, &how, false)
        }
        Launch::Job(job) => {
            if crate::launcher::launcher_rank().is_none() {
                return crate::bench_mpi::relaunch_self(args.ranks);
            }
            let rank = (job.join)()?;
            ensure!(rank.size() == args.ranks, "the job has {} ranks, --ranks says {}", rank.size(), args.ranks);
            let runner = |w: &dyn Workload, s: StrategyFactory<'_>| {
                request(w, s, &mut |req| match rank.run(req) {
                    Ok(out) => Ok(out.map(|e| e.outcome)),
                    Err(e) => {
                        eprintln!("rank {}: {e}", rank.rank());
                        rank.abort(1)
                    }
                })
            };
            measure_and_write(args, &runner, &how, true)
        }
    }
}

/// The Cholesky tile sizes measured for the kernel rates: those at most half of `n`.
fn tiles(n: i64) -> Vec<i64> {
    [128i64, 256, 512].into_iter().filter(|t| 2 * t <= n).collect()
}

fn sizes(max: u64) -> Vec<u64> {
    std::iter::successors(Some(8u64), |s| Some(s * 2)).take_while(|&s| s <= max).collect()
}

fn micro(pattern: &str, size: u64, iterations: u32, window: i64) -> Result<Box<dyn Workload>> {
    let given = [
        ("pattern", ParamValue::Str(pattern.into())),
        ("size", ParamValue::Int(size as i64)),
        ("iterations", ParamValue::Int(i64::from(iterations))),
        ("warmup", ParamValue::Int(i64::from(iterations / 10).max(2))),
        ("window", ParamValue::Int(window)),
    ];
    Ok(dagwire_workloads::find("micro")?.build(&given, 2, 1)?)
}

/// What the runs measured, on rank 0.
#[derive(Default)]
struct Measured {
    /// The message alone (sent → received in the trace, median), ns, per size: shown
    /// in the figure, not fitted (see the module doc).
    wire: Vec<Sample>,
    /// Streaming: a window's median span over its messages, ns per message.
    stream: Vec<Sample>,
    /// The ping-pong's whole hop (half the median round trip), ns, per size.
    hop: Vec<Sample>,
    /// The rendezvous ping-pong's hop (every message through the handshake), ns, per size.
    rendezvous: Vec<Sample>,
    /// Kernel tasks: (name, flops, bytes written, duration ns).
    tasks: Vec<(&'static str, f64, u64, f64)>,
    /// The batched runs: ping-pong hops and streaming intervals (every message in an
    /// all-to-all), ns, per size; the 8 B ping-pong [`CALL_REPEATS`] times.
    batched: Vec<CollectiveSample>,
    /// The 1-minute load average, before and after measuring.
    load: Vec<f64>,
}

/// Per measured iteration on rank 0, from the start of its `send` task to the end of
/// its `recv` task: a ping-pong round trip, or a bandwidth window plus its
/// acknowledgement. Medians of these are robust to the load spikes a shared host has.
fn iteration_spans(w: &dyn Workload, out: &RunOutcome) -> Vec<f64> {
    let mut at: std::collections::BTreeMap<u32, (Option<u64>, Option<u64>)> = Default::default();
    for t in out.trace.tasks.iter().filter(|t| t.rank == Rank(0)) {
        let task = w.dag().task(t.task);
        if task.args[1] == 0 {
            continue; // warm-up
        }
        let slot = at.entry(task.args[0]).or_default();
        match w.kernel_name(t.kernel) {
            "send" => slot.0 = Some(t.start_ns),
            "recv" => slot.1 = Some(t.end_ns),
            _ => {}
        }
    }
    at.values().filter_map(|&(s, e)| Some(e?.saturating_sub(s?) as f64)).collect()
}

/// Median one-way time of the data messages of `bytes` (sent → received in the trace).
fn wire_time(out: &RunOutcome, bytes: u64) -> f64 {
    let v: Vec<f64> = out
        .trace
        .messages
        .iter()
        .filter(|m| m.class == MessageClass::Data && m.bytes == bytes)
        .map(|m| m.recv_ns.saturating_sub(m.sent_ns) as f64)
        .collect();
    median(&v)
}

/// `jobs`: the driver's sweep points run as jobs (a fresh process each).
fn measure_and_write(args: &Args, runner: &Runner<'_>, how: &str, jobs: bool) -> Result<()> {
    let sizes = sizes(args.max_size);
    let tiles = tiles(args.kernel_n);
    ensure!(!tiles.is_empty(), "--kernel-n must be at least 256 (tiles of 128 on a 2x2 grid at least)");
    let control_sizes: Vec<u64> = CONTROL_SIZES.into_iter().filter(|&s| s <= args.max_size).collect();
    let batched_sizes: Vec<u64> = BATCHED_SIZES.into_iter().filter(|&s| s <= args.max_size).collect();
    let batched_runs: Vec<(&'static str, u64)> = std::iter::repeat_n(("pingpong", 8), CALL_REPEATS - 1)
        .chain(["pingpong", "bandwidth"].into_iter().flat_map(|p| batched_sizes.iter().map(move |&k| (p, k))))
        .collect();
    let mut progress = SweepProgress::new(2 * sizes.len() + control_sizes.len() + batched_runs.len() + tiles.len(), 0);
    let mut m = Measured { load: load_average().into_iter().collect(), ..Default::default() };
    for &size in &sizes {
        for (pattern, window) in [("pingpong", 1), ("bandwidth", 16)] {
            let label = format!("{pattern} {size} B");
            progress.start(&label);
            let w = micro(pattern, size, args.iterations, window)?;
            let Some(out) = runner(w.as_ref(), &eager)? else { continue };
            let check = w.verify(&out.results);
            ensure!(check.passed, "the {label} run did not verify: {}", check.detail);
            let span = median(&iteration_spans(w.as_ref(), &out));
            let line = if pattern == "pingpong" {
                let hop = span / 2.0;
                m.hop.push(Sample { bytes: size, ns: hop });
                m.wire.push(Sample { bytes: size, ns: wire_time(&out, size) });
                format!("{:.2} us per hop (median), message alone {:.2} us", hop / 1e3, wire_time(&out, size) / 1e3)
            } else {
                let interval = span / window as f64;
                m.stream.push(Sample { bytes: size, ns: interval });
                format!(
                    "{:.2} us per message (median window), {:.0} MB/s",
                    interval / 1e3,
                    size as f64 / interval * 1e3
                )
            };
            progress.finish_one(&label, &line);
        }
    }
    for &size in &control_sizes {
        let label = format!("pingpong {size} B, rendezvous");
        progress.start(&label);
        let w = micro("pingpong", size, args.iterations, 1)?;
        let Some(out) = runner(w.as_ref(), &rendezvous)? else { continue };
        let check = w.verify(&out.results);
        ensure!(check.passed, "the {label} run did not verify: {}", check.detail);
        let hop = median(&iteration_spans(w.as_ref(), &out)) / 2.0;
        m.rendezvous.push(Sample { bytes: size, ns: hop });
        progress.finish_one(&label, &format!("{:.2} us per hop (median)", hop / 1e3));
    }
    let batched = dagwire_strategies::find("batched")?;
    let batched_params = Params::resolve(&(batched.params)(), Default::default())?;
    for &(pattern, size) in &batched_runs {
        let label = format!("{pattern} {size} B, batched");
        progress.start(&label);
        let (w, per) = batched_micro(pattern, size, args.iterations)?;
        let factory = batched.factory(&batched_params, w.dag(), 1);
        let Some(out) = runner(w.as_ref(), &factory)? else { continue };
        let check = w.verify(&out.results);
        ensure!(check.passed, "the {label} run did not verify: {}", check.detail);
        let ns = median(&iteration_spans(w.as_ref(), &out)) / per;
        m.batched.push(CollectiveSample { pattern, bytes: size, ns });
        let what = if pattern == "pingpong" { "hop" } else { "message (median window)" };
        progress.finish_one(&label, &format!("{:.2} us per {what}", ns / 1e3));
    }
    for &tile in &tiles {
        let label = format!("cholesky n={} tile={tile}", args.kernel_n);
        progress.start(&label);
        if jobs {
            // A sweep runs each point of a job driver in a fresh process, whose matrix lands
            // on pages never touched before, while this process would reuse the heap the runs
            // before freed: hand that memory back first, so the generator pays for fresh
            // pages here too (gen 1.17-1.24 against 0.84-1.04 ns per byte without; a fresh
            // job's gen, from a sweep's trace, ~1.2).
            // SAFETY: malloc_trim only releases free heap memory; no pointer is invalidated.
            unsafe { libc::malloc_trim(0) };
        }
        let given = [("n", ParamValue::Int(args.kernel_n)), ("tile", ParamValue::Int(tile))];
        let w = dagwire_workloads::find("cholesky")?.build(&given, 2, 1)?;
        let Some(out) = runner(w.as_ref(), &eager)? else { continue };
        ensure!(w.verify(&out.results).passed, "the {label} run did not verify");
        let dag = w.dag();
        for t in &out.trace.tasks {
            let bytes = dag.task(t.task).outputs().map(|c| dag.chunk(c).bytes).sum();
            m.tasks.push((w.kernel_name(t.kernel), t.flops, bytes, (t.end_ns - t.start_ns) as f64));
        }
        progress
            .finish_one(&label, &format!("{} tasks, {:.1} ms", out.trace.tasks.len(), out.makespan_ns as f64 / 1e6));
    }
    progress.close();
    if m.hop.is_empty() {
        return Ok(()); // an MPI rank other than 0
    }
    m.load.extend(load_average());
    // The per-task overhead: what a small hop costs beyond its message, two tasks a hop.
    let overhead = ((m.hop[0].ns - m.wire[0].ns) / 2.0).max(0.0);
    let pingpong: Vec<Sample> =
        m.hop.iter().map(|h| Sample { bytes: h.bytes, ns: (h.ns - 2.0 * overhead).max(1.0) }).collect();
    let fit = fit_loggp(&pingpong, &m.stream, 3).context("fitting the ping-pong and streaming curves")?;
    // With --cpu-per-byte: on one node the transport's copy is what a stream waits for
    // (each rank's thread copies every byte, no NIC beside it), so the streaming interval
    // is taken as the CPU time per message (the convention; `with_cpu_per_byte` splits it
    // with the ping-pong slope so both curves hold). Without it O stays absent (zero).
    let cpu = fit_cpu_per_byte(&m.stream, &m.stream).context("fitting the CPU time per message byte")?;
    let fit = if args.cpu_per_byte { fit.with_cpu_per_byte(&cpu) } else { fit };
    let control = fit_control(&m.rendezvous, &fit, overhead, HEADER_BYTES)
        .context("fitting the control-message cost to the rendezvous ping-pong")?;
    let mut calibration = calibration(args, how, &m, fit, overhead, &control, &cpu)?;
    let fitted = collective(args, &m, &calibration)?;
    let c = fitted.costs;
    let notes = collective_notes(&fitted);
    calibration.collective_call_ns = (c.call_ns, notes[0].clone());
    calibration.collective_message_ns = (c.message_ns, notes[1].clone());
    calibration.collective_ns_per_byte = (c.ns_per_byte, notes[2].clone());
    calibration.warnings = warnings(&m, &fitted, &calibration.intra_node);
    for w in &calibration.warnings {
        eprintln!("WARNING: {w}");
    }
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let text = calibration.render();
    dagwire_sim::machine::parse_machine(&args.out.display().to_string(), &text)
        .context("the calibrated machine does not read back (a bug)")?;
    std::fs::write(&args.out, &text).with_context(|| format!("writing {}", args.out.display()))?;
    let figure = figure(&args.out, &m, &calibration.intra_node, overhead, control.ns)?;
    print!("{}", summary(&calibration));
    println!("machine: {}", args.out.display());
    println!("figure: {} (and .png)", figure.display());
    println!("use it: grid.sim.machine = \"{}\" (a path relative to the sweep file)", args.out.display());
    Ok(())
}

/// The batched micro run of `pattern` at `size`, and what its iteration span is
/// divided by: a ping-pong's round trip is two hops, a bandwidth window 16 messages.
fn batched_micro(pattern: &str, size: u64, iterations: u32) -> Result<(Box<dyn Workload>, f64)> {
    let window = if pattern == "pingpong" { 1 } else { 16 };
    Ok((micro(pattern, size, iterations, window)?, if pattern == "pingpong" { 2.0 } else { window as f64 }))
}

/// Fits the collective costs: the batched runs against the same runs simulated on the
/// fitted machine with probe costs (the simulator's own collectives, so every other cost
/// they pay is the model's).
fn collective(args: &Args, m: &Measured, calibration: &Calibration) -> Result<CollectiveFit> {
    let origin = args.out.display().to_string();
    let machine = dagwire_sim::machine::parse_machine(&origin, &calibration.render())
        .context("the calibrated machine does not read back (a bug)")?;
    let batched = dagwire_strategies::find("batched")?;
    let batched_params = Params::resolve(&(batched.params)(), Default::default())?;
    let mut failed = None;
    let mut simulate = |c: &CollectiveCosts, s: &CollectiveSample| {
        let run = || -> Result<f64> {
            let mut machine = machine.clone();
            machine.compute.collective_call_ns = c.call_ns;
            machine.compute.collective_message_ns = c.message_ns;
            machine.compute.collective_ns_per_byte = c.ns_per_byte;
            let (w, per) = batched_micro(s.pattern, s.bytes, args.iterations)?;
            let name = |k| w.kernel_name(k);
            let kernels = SimKernels { kernels: w.kernels(), name: &name };
            let factory = batched.factory(&batched_params, w.dag(), 1);
            let cfg = SimConfig { ranks: args.ranks, workers: 1, run_kernels: false, seed: 1, trace: TraceLevel::Full };
            let out = dagwire_sim::driver::run(w.dag(), &kernels, &factory, &machine, cfg)
                .context("simulating a batched micro run")?;
            Ok(median(&iteration_spans(w.as_ref(), &out.run)) / per)
        };
        run().unwrap_or_else(|e| {
            failed.get_or_insert(e);
            f64::NAN
        })
    };
    let fit = fit_collective(&m.batched, &mut simulate);
    if let Some(e) = failed {
        return Err(e);
    }
    fit.context("fitting the collective costs to the batched runs")
}

/// The machine file's comments on the three collective costs: call, message, byte.
fn collective_notes(fit: &CollectiveFit) -> [String; 3] {
    let runs: Vec<String> = fit
        .points
        .iter()
        .map(|(s, t)| {
            format!("{} {} B {:.0} ns (modelled {:.0}, {:+.1}%)", s.pattern, s.bytes, s.ns, t, (t / s.ns - 1.0) * 100.0)
        })
        .collect();
    [
        format!(
            "batched micro runs (every message in an all-to-all; a ping-pong hop, one message a collective, or \
             the streaming interval of a window of 16), median of each run's iterations:\n{};\n\
             the call, per-message and per-byte costs fitted together by least squares (relative residuals, each \
             cost at least 0) against the same runs simulated on this machine with probe costs; rms residual \
             {:.1}%; the call is charged on each rank's CPU when it joins a collective",
            runs.join(",\n"),
            fit.rms_rel_residual * 100.0
        ),
        "fitted with collective_call_ns above: per message a collective piece carries, on the sender's CPU \
         after o_s and on the receiver's after o_r"
            .into(),
        "fitted with collective_call_ns above: per payload byte a collective piece carries, where \
         collective_message_ns is charged"
            .into(),
    ]
}

/// The 1-minute load average (`/proc/loadavg`), if readable.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

/// What makes this calibration doubtful: a loaded host; a call cost that moves a lot
/// between repeated runs; a call cost above half the fitted hop (it then likely holds
/// waiting the model has no term for); batched runs the model misses.
fn warnings(m: &Measured, fit: &CollectiveFit, path: &LogGpFit) -> Vec<String> {
    let mut out = Vec::new();
    // SAFETY: sysconf only reads a system setting.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as f64;
    let load = m.load.iter().copied().fold(0.0, f64::max);
    if load > online / 2.0 {
        out.push(format!(
            "load average {load:.2} (before/after: {}) is over half the {online:.0} online cores: other work shared \
             the CPUs while measuring, so every figure here may be inflated",
            m.load.iter().map(|l| format!("{l:.2}")).collect::<Vec<_>>().join(" / ")
        ));
    }
    let c = fit.costs;
    let repeats: Vec<(f64, f64, [f64; 3])> = fit
        .points
        .iter()
        .zip(&fit.sensitivity)
        .filter(|((s, _), _)| s.pattern == "pingpong" && s.bytes == 8)
        .map(|((s, t), d)| (s.ns, *t, *d))
        .collect();
    // Per repeat, the call cost that alone would make the model meet it.
    let estimates: Vec<f64> =
        repeats.iter().filter(|r| r.2[0] > 0.0).map(|&(ns, t, d)| c.call_ns + (ns - t) / d[0]).collect();
    if estimates.len() >= 2 {
        let (lo, hi) = estimates.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &e| (l.min(e), h.max(e)));
        let scale = if c.call_ns > 0.0 { c.call_ns } else { repeats[0].0 };
        if hi - lo > CALL_SPREAD * scale {
            out.push(format!(
                "the call cost moves from {lo:.0} to {hi:.0} ns across {} runs of the 8 B batched ping-pong (more than \
                 {:.0}% of {scale:.0} ns): the host's timing is not steady",
                estimates.len(),
                CALL_SPREAD * 100.0
            ));
        }
    }
    let hop = path.one_way_ns(8);
    if c.call_ns > hop / 2.0 {
        out.push(format!(
            "the fitted call cost, {:.0} ns, is over half the fitted 8 B one-way time ({hop:.0} ns): it likely holds \
             waiting (scheduling on a loaded host, the progress loop) the model has no term for",
            c.call_ns
        ));
    }
    if fit.rms_rel_residual > COLLECTIVE_RMS {
        out.push(format!(
            "the batched runs' rms residual is {:.1}% (over {:.0}%): the collective costs do not explain them well",
            fit.rms_rel_residual * 100.0,
            COLLECTIVE_RMS * 100.0
        ));
    }
    out
}

fn calibration(
    args: &Args,
    how: &str,
    m: &Measured,
    fit: LogGpFit,
    overhead: f64,
    control: &ControlFit,
    cpu: &CpuPerByteFit,
) -> Result<Calibration> {
    let smallest = m.hop.first().context("no ping-pong measured")?;
    let rates = fit_kernel_rates(m.tasks.iter().map(|t| (t.0, t.1, t.3)), overhead);
    if rates.is_empty() {
        bail!("the Cholesky runs recorded no kernel with flops");
    }
    let (flops, busy) =
        m.tasks.iter().filter(|t| t.1 > 0.0).fold((0.0, 0.0), |(f, b), t| (f + t.1, b + (t.3 - overhead).max(1.0)));
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_string();
    let name = args.out.file_stem().map_or("this-host".into(), |s| s.to_string_lossy().into_owned());
    Ok(Calibration {
        name,
        description: format!("host {host} calibrated through the {how}, {} ranks", args.ranks),
        method: format!(
            "{how}, {} ranks, eager strategy; micro ping-pong and bandwidth (window 16) at {} sizes 8 B .. {} B, {} \
             iterations; the ping-pong with rendezvous (eager_limit = 0) at {} sizes for the control-message \
             cost; the ping-pong and bandwidth with batched ({} runs) for the collective costs; Cholesky n = {} \
             tiles {} for the kernel rates",
            args.ranks,
            m.hop.len(),
            args.max_size,
            args.iterations,
            m.rendezvous.len(),
            m.batched.len(),
            args.kernel_n,
            tiles(args.kernel_n).iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
        ),
        ranks_per_node: args.ranks as u32,
        intra_node: fit.clone(),
        inter_node: None,
        task_overhead_ns: (
            overhead,
            format!(
                "(ping-pong hop at {} B: {:.0} ns - its message alone: {:.0} ns) / 2 tasks per hop",
                smallest.bytes, smallest.ns, m.wire[0].ns
            ),
        ),
        control_message_ns: (control.ns, control_note(control, fit.one_way_ns(HEADER_BYTES), overhead)),
        collective_call_ns: (0.0, "not fitted yet".into()),
        collective_message_ns: (0.0, "not fitted yet".into()),
        collective_ns_per_byte: (0.0, "not fitted yet".into()),
        warnings: Vec::new(),
        cpu_per_byte: format!(
            "O: the slope of the streaming interval (window 16) against size, {:.3} ns/B (rms residual {:.1}%): \
             on one node the ranks' threads copy every byte, so a stream waits for that CPU time (the \
             convention); split with the ping-pong slope p so both curves hold: O = s and G = p - 2s if p >= \
             2s, else G = s and O = (p - s) / 2 (one copy a message), O = 0 if p < s",
            cpu.send.slope_ns_per_byte,
            cpu.send.rms_rel_residual * 100.0,
        ),
        kernels: rates,
        curves: fit_kernel_curves(m.tasks.iter().map(|t| (t.0, t.1, t.3)), overhead),
        byte_costs: fit_kernel_byte_costs(m.tasks.iter().copied(), overhead),
        default_gflops: (flops / busy, "all measured kernels together: total flops / total busy time".into()),
        progress: {
            // What the drivers chose for these runs (`progress = auto`, one worker, the ranks
            // on this host): the simulator then holds messages for a running kernel as they did.
            let (chosen, why) = Progress::default().resolve(args.ranks, 1, usable_cores());
            let model = if chosen == Progress::Inline { ProgressModel::Inline } else { ProgressModel::Thread };
            (model, why)
        },
    })
}

/// The machine file's comment on the control-message cost: what was measured and how
/// it became the value.
fn control_note(c: &ControlFit, header_ns: f64, overhead: f64) -> String {
    let list = |f: &dyn Fn(&(u64, f64, f64)) -> String| c.estimates.iter().map(f).collect::<Vec<_>>().join(" / ");
    format!(
        "rendezvous ping-pong (eager_limit = 0) hops at {} B: {} ns (median of each run's round trips / 2);\n\
         per size, (hop - 2 task overheads of {overhead:.0} ns - the fitted one-way time - 2 x the fitted \
         {HEADER_BYTES} B header, {header_ns:.0} ns) / 2 control messages = {} ns;\n\
         the median of those (at least 0), charged on the receiver after o_r; rms residual of the modelled \
         rendezvous hops {:.1}%",
        list(&|e| e.0.to_string()),
        list(&|e| format!("{:.0}", e.1)),
        list(&|e| format!("{:.0}", e.2)),
        c.rms_rel_residual * 100.0
    )
}

fn summary(c: &Calibration) -> String {
    let mut out = String::from("fitted (intra-node):\n");
    for s in &c.intra_node.segments {
        let g = &s.segment;
        out.push_str(&format!(
            "  from {:>8} B: o_s + L + o_r = {:>8.0} ns, g = {:>6.0} ns, {:>7.2} GB/s (rms residual {:.1}%)\n",
            g.from_bytes,
            g.o_s_ns + g.l_ns + g.o_r_ns,
            g.g_ns,
            1.0 / g.g_per_byte_ns,
            s.latency.rms_rel_residual * 100.0
        ));
    }
    out.push_str(&format!("  task overhead {:.0} ns\n", c.task_overhead_ns.0));
    out.push_str(&format!("  control message {:.0} ns (rendezvous ping-pong)\n", c.control_message_ns.0));
    out.push_str(&format!(
        "  collective call {:.0} ns, {:.0} ns per message, {:.3} ns per byte (batched runs)\n",
        c.collective_call_ns.0, c.collective_message_ns.0, c.collective_ns_per_byte.0
    ));
    if let Some(o) = c.intra_node.segments.iter().find_map(|s| s.segment.o_per_byte_ns) {
        out.push_str(&format!("  CPU per message byte (O) {o:.3} ns (streaming slope, split with G)\n"));
    }
    for k in &c.kernels {
        out.push_str(&format!("  {:<6} {:>6.2} GFLOP/s per core ({} tasks)\n", k.name, k.gflops, k.tasks));
    }
    for b in &c.byte_costs {
        out.push_str(&format!("  {:<6} {:>6.2} ns per byte written ({} tasks)\n", b.name, b.ns_per_byte, b.tasks));
    }
    out
}

/// Measured against fitted one-way times and streaming intervals, log-log, µs.
fn figure(out: &Path, m: &Measured, fit: &LogGpFit, overhead: f64, control: f64) -> Result<PathBuf> {
    let dir = out.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let stem = format!("{}-fit", out.file_stem().map_or("machine".into(), |s| s.to_string_lossy()));
    let pts = |s: &[Sample]| s.iter().map(|p| (p.bytes as f64, p.ns / 1e3, None)).collect::<Vec<_>>();
    let on = |sizes: &[Sample], f: &dyn Fn(u64) -> f64| {
        sizes.iter().map(|p| (p.bytes as f64, f(p.bytes) / 1e3, None)).collect::<Vec<_>>()
    };
    let fitted = |f: &dyn Fn(u64) -> f64| on(&m.hop, f);
    let header = fit.one_way_ns(HEADER_BYTES) + control;
    let chart = XyChart {
        title: "Calibration: measured against fitted".into(),
        x_label: "message size (bytes)".into(),
        y_label: "time (µs)".into(),
        log_x: true,
        log_y: true,
        lines: true,
        diagonal: false,
        series: vec![
            Series { name: "hop, measured".into(), points: pts(&m.hop) },
            Series { name: "message alone (trace), measured".into(), points: pts(&m.wire) },
            Series {
                name: "hop, fitted (one-way + 2 task overheads)".into(),
                points: fitted(&|k| fit.one_way_ns(k) + 2.0 * overhead),
            },
            Series { name: "stream interval, measured".into(), points: pts(&m.stream) },
            Series { name: "stream interval, fitted".into(), points: fitted(&|k| fit.interval_ns(k)) },
            Series { name: "rendezvous hop, measured".into(), points: pts(&m.rendezvous) },
            Series {
                name: "rendezvous hop, fitted (+ 2 control messages)".into(),
                points: on(&m.rendezvous, &|k| fit.one_way_ns(k) + 2.0 * overhead + 2.0 * header),
            },
        ],
    };
    render(&chart, dir, &stem, "Calibration", "Measured against fitted message times")?;
    Ok(dir.join(format!("{stem}.svg")))
}
