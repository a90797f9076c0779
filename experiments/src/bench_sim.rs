//! `experiment bench sim`: how fast and how lean the simulator is.
//!
//! Each configuration (a size with the full trace, then with counts only) runs in a
//! fresh process of this binary and its row is printed as soon as it finishes; while it
//! runs, the child shows its progress on stderr (a line on a terminal, plain lines every
//! `DAGWIRE_PROGRESS_EVERY_S` seconds otherwise: [`crate::progress`]).

use crate::progress::RunWatch;
use anyhow::{Result, ensure};
use dagwire_runtime::{ParamValue, Params, TraceLevel};
use dagwire_sim::driver::{SimConfig, SimKernels, Watch};
use std::process::Stdio;
use std::time::Instant;

/// Columns of the benchmark's table, one row per configuration: the DAG's build, the
/// simulator's setup, its event loop and its finish (gathering and sorting the trace)
/// timed apart, their total (with the strategy's plan), and events/s over the event
/// loop alone, by wall time and by the CPU time its thread used (the figure that holds
/// on a host shared with other work).
pub const COLUMNS: [&str; 12] = [
    "tiles",
    "trace",
    "tasks",
    "build s",
    "setup s",
    "loop s",
    "finish s",
    "wall s",
    "loop ev/s",
    "CPU ev/s",
    "peak MB",
    "bytes/task",
];

/// What every size of the benchmark simulates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setup {
    /// Machine preset or file.
    pub machine: String,
    /// Simulated ranks.
    pub ranks: usize,
    /// Tile edge.
    pub tile: usize,
    /// Network fidelity.
    pub fidelity: String,
    /// Transfer strategy, with its default parameters.
    pub strategy: String,
}

impl Setup {
    /// The settings as one line, as the measuring process echoes them back (so a
    /// setting not handed on to it cannot go unnoticed).
    fn describe(&self) -> String {
        format!(
            "setup: machine={} ranks={} tile={} fidelity={} strategy={}",
            self.machine, self.ranks, self.tile, self.fidelity, self.strategy
        )
    }
}

/// The sizes the benchmark runs for `tiles` at full size: 1/2 to 1 of the tile count,
/// so 1/8 to all of the tasks.
pub fn sizes(tiles: usize) -> Vec<usize> {
    [0.5f64, 0.63, 0.794, 1.0].iter().map(|f| ((tiles as f64) * f).round() as usize).collect()
}

/// Runs the simulator benchmark: the raw queue, then each configuration in a fresh
/// process of this binary (so one size's freed heap does not flatter or inflate the
/// next one's peak), printing its row as it finishes.
pub fn run(setup: &Setup, tiles: usize) -> Result<()> {
    queue_throughput();
    let machine = machine(setup)?;
    let sizes = sizes(tiles);
    println!(
        "\ncost-model tiled Cholesky on {} ranks of {} ({:?} fidelity), tile {}, strategy {}, {} tiles at full size \
         (sizes {sizes:?}), each configuration in its own process",
        setup.ranks, machine.name, machine.fidelity, setup.tile, setup.strategy, tiles
    );
    println!("  peak memory: the whole process's growth, DAG included; trace full: every task, message and");
    println!("  transfer-phase record kept; counts: a counts-only trace (sim.trace = \"counts\"); build: the DAG;");
    println!("  setup: the simulator's network, engines and strategies; loop: the event loop; finish: gathering");
    println!("  and sorting the trace; wall: all of it, the strategy's plan included; loop ev/s: events over the loop");
    println!(
        "  (wall time); CPU ev/s: events over the CPU time the loop's thread used (on a busy host, the loop's own cost)"
    );
    let [c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11] = COLUMNS;
    println!(
        "  {c0:>6} {c1:>6} {c2:>10} {c3:>8} {c4:>8} {c5:>8} {c6:>8} {c7:>8} {c8:>12} {c9:>12} {c10:>10} {c11:>12}"
    );
    let (mut points, mut loop_points) = (Vec::new(), Vec::new());
    for nt in sizes {
        for counts_only in [false, true] {
            let m = measure_in_child(setup, nt, counts_only)?;
            println!(
                "  {nt:>6} {:>6} {:>10} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>12.0} {:>12.0} {:>10.0} {:>12.0}",
                if counts_only { "counts" } else { "full" },
                m.tasks,
                m.build_s,
                m.timing[0],
                m.timing[1],
                m.timing[2],
                m.wall,
                m.events as f64 / m.timing[1].max(1e-9),
                m.events as f64 / m.loop_cpu.max(1e-9),
                m.peak as f64 / 1e6,
                m.peak as f64 / m.tasks as f64,
            );
            if counts_only {
                continue;
            }
            let [tasks, messages, phases] = m.records;
            println!("         (trace: {tasks} task, {messages} message, {phases} transfer-phase records)");
            println!(
                "         (the strategy's plan, made once and shared by all {} ranks: {:.3} s, {:.1} MB)",
                setup.ranks,
                m.plan_s,
                m.plan_bytes as f64 / 1e6
            );
            points.push(((m.tasks as f64).ln(), m.wall.ln()));
            loop_points.push(((m.tasks as f64).ln(), m.timing[1].max(1e-9).ln()));
        }
    }
    println!(
        "  wall time grows as tasks^{:.2}, the event loop's as tasks^{:.2} (least-squares slopes of log time vs log \
         tasks, full trace)",
        slope(&points),
        slope(&loop_points)
    );
    Ok(())
}

/// Measures `nt` tiles in this process (its progress on stderr) and prints the setup
/// it ran and the figures, one line each, for the parent.
pub fn one_size_line(setup: &Setup, nt: usize, counts_only: bool) -> Result<()> {
    let trace = if counts_only { TraceLevel::Counts } else { TraceLevel::Full };
    let m = one_size(&machine(setup)?, setup, nt, trace)?;
    let [a, b, c] = m.records;
    println!("{}", setup.describe());
    let [setup_s, loop_s, finish_s] = m.timing;
    println!(
        "{} {} {} {} {a} {b} {c} {} {} {} {setup_s} {loop_s} {finish_s} {}",
        m.tasks, m.wall, m.events, m.peak, m.plan_s, m.plan_bytes, m.build_s, m.loop_cpu
    );
    Ok(())
}

fn machine(setup: &Setup) -> Result<dagwire_sim::machine::Machine> {
    let params = Params::from_pairs(
        &dagwire_sim::registry::params(),
        &[("machine", ParamValue::Str(setup.machine.clone())), ("fidelity", ParamValue::Str(setup.fidelity.clone()))],
    )?;
    dagwire_sim::registry::machine(&params).map_err(anyhow::Error::msg)
}

/// Runs `experiment bench sim --only-tiles nt ...` (its stderr, with its progress and
/// any error, straight to ours) and parses its lines.
fn measure_in_child(setup: &Setup, nt: usize, counts_only: bool) -> Result<Measured> {
    let out = std::process::Command::new(std::env::current_exe()?)
        .args(["bench", "sim", "--machine", &setup.machine, "--fidelity", &setup.fidelity])
        .args(["--ranks", &setup.ranks.to_string(), "--tile", &setup.tile.to_string(), "--strategy", &setup.strategy])
        .args(["--only-tiles", &nt.to_string()])
        .args(counts_only.then_some("--counts-only"))
        .stderr(Stdio::inherit())
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(out.status.success(), "measuring {nt} tiles failed ({}): see its error above", out.status);
    let (echo, figures) = text.split_once('\n').unwrap_or((&text, ""));
    ensure!(echo == setup.describe(), "the measuring process ran `{echo}`, not `{}`", setup.describe());
    let f: Vec<f64> = figures.split_whitespace().map(str::parse).collect::<Result<_, _>>()?;
    ensure!(f.len() == 14, "unexpected line from the measuring process: {text}");
    Ok(Measured {
        tasks: f[0] as usize,
        wall: f[1],
        events: f[2] as u64,
        peak: f[3] as u64,
        records: [f[4] as usize, f[5] as usize, f[6] as usize],
        plan_s: f[7],
        plan_bytes: f[8] as u64,
        build_s: f[9],
        timing: [f[10], f[11], f[12]],
        loop_cpu: f[13],
    })
}

/// One size's figures.
struct Measured {
    tasks: usize,
    wall: f64,
    events: u64,
    /// Peak RSS above the RSS before the workload was built, bytes.
    peak: u64,
    /// Trace records: tasks, messages, transfer phases.
    records: [usize; 3],
    /// Time the strategy took to plan the run (once, for all ranks).
    plan_s: f64,
    /// RSS the plan added, bytes.
    plan_bytes: u64,
    /// Time building the DAG took.
    build_s: f64,
    /// The simulator's setup, event loop and finish, seconds ([`dagwire_sim::driver::SimTiming`]).
    timing: [f64; 3],
    /// CPU time the event loop's thread used, seconds (its wall time where the system
    /// does not say).
    loop_cpu: f64,
}

/// Raw queue: pop+push with scattered times, at two pending-set sizes.
fn queue_throughput() {
    println!("event queue (radix heap, (time, seq) order):");
    for pending in [1_000usize, 1_000_000] {
        let rate = dagwire_sim::queue::throughput(pending, 4_000_000);
        println!("  {pending:>9} pending: {:.1} M pop+push per second", rate / 1e6);
    }
}

/// One cost-model run, with the peak RSS it added (the DAG is about 100 bytes a task
/// of it, the trace most of the rest).
fn one_size(machine: &dagwire_sim::machine::Machine, setup: &Setup, nt: usize, trace: TraceLevel) -> Result<Measured> {
    let (ranks, tile) = (setup.ranks, setup.tile);
    let strategy = dagwire_strategies::find(&setup.strategy)?;
    let strategy_params = Params::resolve(&(strategy.params)(), Default::default())?;
    reset_peak_rss();
    let base = rss_bytes();
    let given = [("n", ParamValue::Int((nt * tile) as i64)), ("tile", ParamValue::Int(tile as i64))];
    let start = Instant::now();
    let workload = dagwire_workloads::find("cholesky")?.build(&given, ranks, 1)?;
    let build_s = start.elapsed().as_secs_f64();
    let name = |k| workload.kernel_name(k);
    let kernels = SimKernels { kernels: workload.kernels(), name: &name };
    let (before_plan, plan_start) = (rss_bytes(), Instant::now());
    let factory = strategy.factory(&strategy_params, workload.dag(), 1);
    let (plan_s, plan_bytes) = (plan_start.elapsed().as_secs_f64(), rss_bytes().saturating_sub(before_plan));
    let cfg = SimConfig { ranks, workers: 1, run_kernels: false, seed: 1, trace };
    let level = if trace == TraceLevel::Counts { "counts" } else { "full" };
    let watch = RunWatch::standalone(&format!("{nt} tiles, {level} trace"));
    let observe = |p| watch.observe(p);
    let out = dagwire_sim::driver::run_watched(
        workload.dag(),
        &kernels,
        &factory,
        machine,
        cfg,
        Watch { wall_limit: None, observer: Some(&observe) },
    );
    watch.close();
    let out = out?;
    let wall = start.elapsed().as_secs_f64();
    let tasks = workload.dag().task_count();
    ensure!(out.run.trace.task_count() == tasks as u64, "not every task ran");
    let peak = peak_rss_bytes().saturating_sub(base);
    let t = &out.run.trace;
    let records = [t.tasks.len(), t.messages.len(), t.transfer_events.len()];
    let timing = [out.timing.setup, out.timing.event_loop, out.timing.finish].map(|d| d.as_secs_f64());
    let loop_cpu = out.timing.event_loop_cpu.unwrap_or(out.timing.event_loop).as_secs_f64();
    Ok(Measured { tasks, wall, events: out.events, peak, records, plan_s, plan_bytes, build_s, timing, loop_cpu })
}

fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let (mx, my) = (points.iter().map(|p| p.0).sum::<f64>() / n, points.iter().map(|p| p.1).sum::<f64>() / n);
    let num: f64 = points.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    let den: f64 = points.iter().map(|(x, _)| (x - mx).powi(2)).sum();
    num / den
}

/// Resets the kernel's peak-RSS counter (Linux: writing 5 to clear_refs).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

fn rss_bytes() -> u64 {
    status_kb("VmRSS:") * 1024
}

fn peak_rss_bytes() -> u64 {
    status_kb("VmHWM:") * 1024
}
