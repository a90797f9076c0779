//! `experiment bench sim`: how fast and how lean the simulator is.

use anyhow::{Result, ensure};
use dagwire_runtime::{ParamValue, Params, Rank, Strategy};
use dagwire_sim::driver::{SimConfig, SimKernels};
use dagwire_sim::queue::EventQueue;
use dagwire_strategies::eager::Eager;
use std::time::Instant;

/// Runs the simulator benchmark.
pub fn run(machine: &str, ranks: usize, tiles: usize, tile: usize, fidelity: &str) -> Result<()> {
    queue_throughput();
    let params = Params::from_pairs(
        &crate::drivers::find("sim").map(|d| (d.params)()).unwrap_or_default(),
        &[("machine", ParamValue::Str(machine.into())), ("fidelity", ParamValue::Str(fidelity.into()))],
    )?;
    let machine = crate::drivers::sim_machine(&params).map_err(anyhow::Error::msg)?;
    println!(
        "\ncost-model tiled Cholesky (tile {tile}) on {ranks} ranks of {} ({:?} fidelity)",
        machine.name, machine.fidelity
    );
    println!(
        "  {:>6} {:>10} {:>10} {:>12} {:>12} {:>14}",
        "tiles", "tasks", "wall s", "events/s", "peak MB", "bytes/task"
    );
    let sizes: Vec<usize> = [0.5f64, 0.63, 0.794, 1.0].iter().map(|f| ((tiles as f64) * f).round() as usize).collect();
    let mut points = Vec::new();
    for nt in sizes {
        let (tasks, wall, events, peak) = one_size(&machine, ranks, nt, tile)?;
        println!(
            "  {nt:>6} {tasks:>10} {wall:>10.2} {:>12.0} {:>12.0} {:>14.0}",
            events as f64 / wall,
            peak as f64 / 1e6,
            peak as f64 / tasks as f64
        );
        points.push(((tasks as f64).ln(), wall.ln()));
    }
    println!("  wall time grows as tasks^{:.2} (least-squares slope of log wall vs log tasks)", slope(&points));
    Ok(())
}

/// Raw queue: push and pop events with scattered times, at two pending-set sizes.
fn queue_throughput() {
    println!("event queue (binary heap, (time, seq) order):");
    for pending in [1_000usize, 1_000_000] {
        let mut q = EventQueue::default();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % 1_000_000
        };
        for _ in 0..pending {
            q.push(next(), 0u64);
        }
        let ops = 4_000_000usize;
        let start = Instant::now();
        for _ in 0..ops {
            let (t, e) = q.pop().expect("never empty");
            q.push(t + next(), e);
        }
        let rate = ops as f64 / start.elapsed().as_secs_f64();
        println!("  {pending:>9} pending: {:.1} M pop+push per second", rate / 1e6);
    }
}

/// One cost-model run: (tasks, wall s, events, peak RSS bytes during the run).
fn one_size(
    machine: &dagwire_sim::machine::Machine,
    ranks: usize,
    nt: usize,
    tile: usize,
) -> Result<(usize, f64, u64, u64)> {
    reset_peak_rss();
    let base = rss_bytes();
    let given = [("n", ParamValue::Int((nt * tile) as i64)), ("tile", ParamValue::Int(tile as i64))];
    let start = Instant::now();
    let workload = dagwire_workloads::find("cholesky")?.build(&given, ranks, 1)?;
    let name = |k| workload.kernel_name(k);
    let kernels = SimKernels { kernels: workload.kernels(), name: &name };
    let factory = |_: Rank| -> Box<dyn Strategy> { Box::new(Eager) };
    let cfg = SimConfig { ranks, workers: 1, run_kernels: false, seed: 1 };
    let out = dagwire_sim::driver::run(workload.dag(), &kernels, &factory, machine, cfg)?;
    let wall = start.elapsed().as_secs_f64();
    let tasks = workload.dag().task_count();
    ensure!(out.run.trace.tasks.len() == tasks, "not every task ran");
    let peak = peak_rss_bytes().saturating_sub(base);
    let t = &out.run.trace;
    eprintln!(
        "    ({} tiles: trace holds {} task, {} message and {} transfer-phase records)",
        nt,
        t.tasks.len(),
        t.messages.len(),
        t.transfer_events.len()
    );
    Ok((tasks, wall, out.events, peak))
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
