//! The OSU-style figures of a finished run, from the task records of its measured
//! iterations only (warm-up tasks carry `args[1] == 0` and are skipped). Times are
//! kernel start and end stamps, so a figure includes the engine's scheduling, the
//! strategy's protocol and the kernels' pattern fill and check — what a task-based
//! program pays per message, not the bare transport.
//!
//! - **pingpong** `latency_us`: as osu_latency, the time of all measured round trips
//!   divided by twice their number: from the start of rank 0's first measured send
//!   to the end of rank 0's last measured receive, over `2 * iterations`.
//! - **bandwidth** `bandwidth_mbps`: as osu_bw, `size * window * iterations` bytes
//!   over the same span (rank 0's first measured send to the end of its last
//!   acknowledgement receive), in MB/s of 10^6 bytes.
//! - **alltoall**, **broadcast**, **halo** `avg_us`, `min_us`, `max_us`: as the OSU
//!   collectives, a per-rank mean time per measured iteration, then the mean, the
//!   minimum and the maximum over ranks. One iteration on rank `r` lasts from the
//!   start of the send it waits for — its own send for alltoall and halo, rank 0's
//!   for broadcast — to the end of its receive. Broadcast's root runs no receive and
//!   is not counted.
//!
//! A figure whose tasks are missing from the trace (a trace of another run) is left
//! out rather than guessed.

use super::kernels::Kind;
use super::pattern::{Layout, Pattern};
use dagwire_runtime::{Dag, Trace};
use std::collections::HashMap;

/// Pingpong's one-way latency, µs.
pub const LATENCY_US: &str = "latency_us";
/// Bandwidth's throughput, MB/s (10^6 bytes per second).
pub const BANDWIDTH_MBPS: &str = "bandwidth_mbps";
/// The collectives' mean over ranks of the per-rank mean iteration time, µs.
pub const AVG_US: &str = "avg_us";
/// The smallest per-rank mean iteration time, µs.
pub const MIN_US: &str = "min_us";
/// The largest per-rank mean iteration time, µs.
pub const MAX_US: &str = "max_us";

/// The figures of `trace`, a run of `dag` with this `layout`, whose iterations
/// `warmup..warmup + measured` were measured.
pub fn figures(dag: &Dag, layout: Layout, warmup: u32, measured: u32, trace: &Trace) -> Vec<(&'static str, f64)> {
    // (kind, rank, iteration) -> (start, end) of measured tasks.
    let mut spans: HashMap<(u16, u32, u32), (u64, u64)> = HashMap::new();
    for rec in &trace.tasks {
        if rec.task.index() >= dag.task_count() {
            continue;
        }
        let task = dag.task(rec.task);
        if task.args[1] == 0 || Kind::from_id(task.kernel).is_none() {
            continue;
        }
        spans.insert((task.kernel.0, rec.rank.0, task.args[0]), (rec.start_ns, rec.end_ns));
    }
    let get = |kind: Kind, rank: u32, iteration: u32| spans.get(&(kind.id().0, rank, iteration)).copied();
    let (first, last) = (warmup, warmup + measured - 1);
    match layout.pattern {
        Pattern::PingPong | Pattern::Bandwidth => {
            let (Some((start, _)), Some((_, end))) = (get(Kind::Send, 0, first), get(Kind::Recv, 0, last)) else {
                return Vec::new();
            };
            let span = end.saturating_sub(start);
            if span == 0 {
                return Vec::new();
            }
            if layout.pattern == Pattern::PingPong {
                vec![(LATENCY_US, span as f64 / (2.0 * measured as f64) / 1e3)]
            } else {
                let bytes = layout.size as f64 * layout.window as f64 * measured as f64;
                vec![(BANDWIDTH_MBPS, bytes * 1e3 / span as f64)]
            }
        }
        Pattern::AllToAll | Pattern::Broadcast | Pattern::Halo => {
            let per_rank: Vec<f64> = layout
                .receivers()
                .filter_map(|r| {
                    let sender = if layout.pattern == Pattern::Broadcast { 0 } else { r };
                    let times: Vec<u64> = (first..=last)
                        .filter_map(|i| {
                            let (start, _) = get(Kind::Send, sender, i)?;
                            let (_, end) = get(Kind::Recv, r, i)?;
                            Some(end.saturating_sub(start))
                        })
                        .collect();
                    (!times.is_empty()).then(|| times.iter().sum::<u64>() as f64 / times.len() as f64 / 1e3)
                })
                .collect();
            if per_rank.is_empty() {
                return Vec::new();
            }
            let avg = per_rank.iter().sum::<f64>() / per_rank.len() as f64;
            let min = per_rank.iter().copied().fold(f64::INFINITY, f64::min);
            let max = per_rank.iter().copied().fold(0.0, f64::max);
            vec![(AVG_US, avg), (MIN_US, min), (MAX_US, max)]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::micro::plan::build;
    use dagwire_runtime::trace::TaskRecord;
    use dagwire_runtime::{Rank, TaskId};

    /// A trace in which task `t` runs from `start(t)` for `len(t)` ns.
    fn trace(dag: &Dag, times: impl Fn(TaskId) -> (u64, u64)) -> Trace {
        let tasks = dag
            .task_ids()
            .map(|t| {
                let (start_ns, end_ns) = times(t);
                let task = dag.task(t);
                TaskRecord { task: t, kernel: task.kernel, rank: task.owner, worker: 0, start_ns, end_ns, flops: 0.0 }
            })
            .collect();
        Trace { tasks, ..Trace::default() }
    }

    #[test]
    fn pingpong_skips_the_warm_up() {
        let layout = Layout::new(Pattern::PingPong, 2, 8, 1);
        let plan = build(layout, 2, 3);
        // Warm-up tasks (0..8) take 1 ms each; measured ones 1 µs each, back to back.
        let t = trace(&plan.dag, |t| {
            if t.0 < 8 {
                (t.0 as u64 * 1_000_000, (t.0 as u64 + 1) * 1_000_000)
            } else {
                let at = 8_000_000 + (t.0 as u64 - 8) * 1_000;
                (at, at + 1_000)
            }
        });
        let f = figures(&plan.dag, layout, 2, 3, &t);
        // 12 measured tasks of 1 µs = 12 µs for 3 round trips = 6 one-way trips.
        assert_eq!(f, vec![(LATENCY_US, 2.0)]);
    }

    #[test]
    fn bandwidth_counts_bytes_of_measured_iterations() {
        let layout = Layout::new(Pattern::Bandwidth, 2, 1000, 10);
        let plan = build(layout, 1, 2);
        let t = trace(&plan.dag, |t| (t.0 as u64 * 1_000, t.0 as u64 * 1_000 + 500));
        // Measured: tasks 4..12, from 4000 ns to 11500 ns; 2 * 10 * 1000 bytes.
        let f = figures(&plan.dag, layout, 1, 2, &t);
        assert_eq!(f.len(), 1);
        assert!((f[0].1 - 20_000.0 * 1e3 / 7_500.0).abs() < 1e-9, "{f:?}");
    }

    #[test]
    fn collectives_report_mean_min_max_over_ranks() {
        let layout = Layout::new(Pattern::Broadcast, 3, 8, 1);
        let plan = build(layout, 0, 2);
        // Rank 1 receives 10 µs after the send starts, rank 2 after 30 µs.
        let t = trace(&plan.dag, |t| {
            let task = plan.dag.task(t);
            let base = task.args[0] as u64 * 100_000;
            match task.owner {
                Rank(0) => (base, base + 1_000),
                Rank(1) => (base + 5_000, base + 10_000),
                _ => (base + 5_000, base + 30_000),
            }
        });
        let f = figures(&plan.dag, layout, 0, 2, &t);
        assert_eq!(f, vec![(AVG_US, 20.0), (MIN_US, 10.0), (MAX_US, 30.0)]);
        assert!(figures(&plan.dag, layout, 0, 2, &Trace::default()).is_empty());
    }
}
