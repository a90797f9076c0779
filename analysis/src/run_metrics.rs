//! The metrics of each run (one point, one repetition), computed from the tables with
//! polars' lazy API; interval arithmetic (overlap) on the extracted columns.
//!
//! Definitions:
//! - **busy** of a rank: the sum of its kernels' durations; **busy fraction**: busy
//!   over `makespan × workers` of that rank;
//! - **load imbalance**: the largest per-rank busy time over the mean over all ranks
//!   of the run (ranks that ran nothing count as 0); 1.0 is perfect balance;
//! - **transfer latency** p50/p99: percentiles (linear interpolation) of
//!   `transfers.latency_ns` (posted to completed);
//! - **overlap**: of the time during which a rank had data coming in (some transfer to
//!   it between its start — `started_ns`, else `posted_ns` — and `completed_ns`), the
//!   fraction during which the same rank was also running a kernel: communication
//!   hidden under compute. `None` when the run moved nothing;
//! - **critical path**: the largest `tasks.chain_ns` of the run: the longest chain
//!   of measured kernel durations through the DAG, so `makespan / critical path` ≥ 1
//!   is what communication and scheduling added.

use crate::intervals;
use anyhow::Context;
use polars::prelude::{DataFrame, DataType, IntoLazy, QuantileMethod, col, lit};
use std::collections::{BTreeMap, HashMap};

/// The metrics of one run.
///
/// ```
/// use dagwire_analysis::RunMetrics;
/// let m = RunMetrics { busy_ns: vec![30, 10], makespan_ns: Some(40), ..Default::default() };
/// assert_eq!(m.busy_ns.len(), 2);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunMetrics {
    /// The point.
    pub point_id: i64,
    /// The repetition.
    pub repetition: i64,
    /// Why the run failed (`points.error`); `None` when it ran and verified.
    pub error: Option<String>,
    /// Makespan, ns.
    pub makespan_ns: Option<i64>,
    /// Workload GFLOP/s over the makespan.
    pub gflops: Option<f64>,
    /// Data messages.
    pub data_messages: i64,
    /// Data bytes.
    pub data_bytes: i64,
    /// Control messages.
    pub control_messages: i64,
    /// Control bytes.
    pub control_bytes: i64,
    /// Median transfer latency, ns.
    pub latency_p50_ns: Option<f64>,
    /// 99th percentile of transfer latency, ns.
    pub latency_p99_ns: Option<f64>,
    /// Fraction (0..=1) of incoming-communication time hidden under compute.
    pub overlap: Option<f64>,
    /// Critical path of measured kernel durations, ns.
    pub critical_path_ns: Option<i64>,
    /// Busy time of each rank (index = rank), ns.
    pub busy_ns: Vec<i64>,
    /// Busy fraction of each rank: busy / (makespan × workers).
    pub busy_fraction: Vec<f64>,
    /// Largest per-rank busy time over the mean; `None` if nothing ran.
    pub imbalance: Option<f64>,
}

/// The metrics of every run in `points` (same order), from the `tasks` and
/// `transfers` rows of those runs.
///
/// ```
/// use dagwire_analysis::run_metrics::run_metrics;
/// use polars::prelude::*;
/// let points = df!("point_id" => [0i64], "repetition" => [0i64], "ranks" => [2i64],
///     "makespan_ns" => [Some(100i64)], "gflops" => [None::<f64>], "data_messages" => [1i64],
///     "data_bytes" => [8i64], "control_messages" => [0i64], "control_bytes" => [0i64],
///     "error" => [None::<&str>])?;
/// let tasks = df!("point_id" => [0i64, 0], "repetition" => [0i64, 0], "rank" => [0i64, 1],
///     "worker" => [0i64, 0], "start_ns" => [0i64, 60], "end_ns" => [50i64, 100],
///     "duration_ns" => [50i64, 40], "chain_ns" => [Some(50i64), Some(90)])?;
/// let transfers = df!("point_id" => [0i64], "repetition" => [0i64], "dst" => [1i64],
///     "posted_ns" => [Some(50i64)], "started_ns" => [Some(50i64)], "completed_ns" => [Some(70i64)],
///     "latency_ns" => [Some(20i64)])?;
/// let m = &run_metrics(&points, &tasks, &transfers)?[0];
/// assert_eq!(m.busy_ns, [50, 40]);
/// assert_eq!(m.critical_path_ns, Some(90));
/// assert_eq!(m.overlap, Some(0.5)); // rank 1 receives over [50,70), computes from 60
/// # anyhow::Ok(())
/// ```
pub fn run_metrics(points: &DataFrame, tasks: &DataFrame, transfers: &DataFrame) -> anyhow::Result<Vec<RunMetrics>> {
    let key = [col("point_id"), col("repetition")];
    let per_rank = tasks
        .clone()
        .lazy()
        .group_by([col("point_id"), col("repetition"), col("rank")])
        .agg([col("duration_ns").sum().alias("busy_ns")])
        .collect()
        .context("summing busy time per rank")?;
    let per_run = tasks
        .clone()
        .lazy()
        .group_by(key.clone())
        .agg([col("chain_ns").max().alias("critical_path_ns")])
        .collect()
        .context("finding the critical path of each run")?;
    let latency = transfers
        .clone()
        .lazy()
        .group_by(key)
        .agg([
            col("latency_ns").cast(DataType::Float64).quantile(lit(0.5), QuantileMethod::Linear).alias("p50"),
            col("latency_ns").cast(DataType::Float64).quantile(lit(0.99), QuantileMethod::Linear).alias("p99"),
        ])
        .collect()
        .context("computing transfer latency percentiles")?;

    let busy = by_key3(&per_rank, "rank", "busy_ns")?;
    let critical = by_key(&per_run, "critical_path_ns")?;
    let p50 = by_key_f(&latency, "p50")?;
    let p99 = by_key_f(&latency, "p99")?;
    let hidden = overlaps(tasks, transfers)?;

    let ids = ints(points, "point_id")?;
    let reps = ints(points, "repetition")?;
    let ranks = ints(points, "ranks").unwrap_or_else(|_| vec![None; points.height()]);
    let workers = ints(points, "workers").unwrap_or_else(|_| vec![None; points.height()]);
    let makespan = ints(points, "makespan_ns")?;
    let gflops = floats(points, "gflops")?;
    let errors = strs(points, "error")?;
    let (dm, db, cm, cb) = (
        ints(points, "data_messages")?,
        ints(points, "data_bytes")?,
        ints(points, "control_messages")?,
        ints(points, "control_bytes")?,
    );
    let mut out = Vec::with_capacity(points.height());
    for row in 0..points.height() {
        let k = (ids[row].unwrap_or(-1), reps[row].unwrap_or(-1));
        let rank_busy = busy.get(&k).cloned().unwrap_or_default();
        let n_ranks = ranks[row]
            .map(|r| r.max(0) as usize)
            .unwrap_or(0)
            .max(rank_busy.keys().next_back().map_or(0, |r| *r as usize + 1));
        let busy_ns: Vec<i64> = (0..n_ranks as i64).map(|r| rank_busy.get(&r).copied().unwrap_or(0)).collect();
        let capacity = makespan[row].filter(|m| *m > 0).map(|m| m as f64 * workers[row].unwrap_or(1).max(1) as f64);
        let busy_fraction = match capacity {
            Some(c) => busy_ns.iter().map(|b| *b as f64 / c).collect(),
            None => Vec::new(),
        };
        let mean = busy_ns.iter().sum::<i64>() as f64 / busy_ns.len().max(1) as f64;
        let imbalance = (mean > 0.0).then(|| *busy_ns.iter().max().unwrap_or(&0) as f64 / mean);
        out.push(RunMetrics {
            point_id: k.0,
            repetition: k.1,
            error: errors[row].clone(),
            makespan_ns: makespan[row],
            gflops: gflops[row],
            data_messages: dm[row].unwrap_or(0),
            data_bytes: db[row].unwrap_or(0),
            control_messages: cm[row].unwrap_or(0),
            control_bytes: cb[row].unwrap_or(0),
            latency_p50_ns: p50.get(&k).copied().flatten(),
            latency_p99_ns: p99.get(&k).copied().flatten(),
            overlap: hidden.get(&k).copied().flatten(),
            critical_path_ns: critical.get(&k).copied().flatten(),
            busy_ns,
            busy_fraction,
            imbalance,
        });
    }
    Ok(out)
}

type Key = (i64, i64);

/// Communication hidden under compute, per run (see the module documentation).
fn overlaps(tasks: &DataFrame, transfers: &DataFrame) -> anyhow::Result<HashMap<Key, Option<f64>>> {
    let mut compute: HashMap<(i64, i64, i64), Vec<(i64, i64)>> = HashMap::new();
    let (tp, tr, rank, start, end) = (
        ints(tasks, "point_id")?,
        ints(tasks, "repetition")?,
        ints(tasks, "rank")?,
        ints(tasks, "start_ns")?,
        ints(tasks, "end_ns")?,
    );
    for i in 0..tasks.height() {
        if let (Some(p), Some(r), Some(k), Some(s), Some(e)) = (tp[i], tr[i], rank[i], start[i], end[i]) {
            compute.entry((p, r, k)).or_default().push((s, e));
        }
    }
    let mut comm: HashMap<(i64, i64, i64), Vec<(i64, i64)>> = HashMap::new();
    let (xp, xr, dst, posted, started, done) = (
        ints(transfers, "point_id")?,
        ints(transfers, "repetition")?,
        ints(transfers, "dst")?,
        ints(transfers, "posted_ns")?,
        ints(transfers, "started_ns")?,
        ints(transfers, "completed_ns")?,
    );
    for i in 0..transfers.height() {
        let begin = started[i].or(posted[i]);
        if let (Some(p), Some(r), Some(d), Some(b), Some(e)) = (xp[i], xr[i], dst[i], begin, done[i]) {
            comm.entry((p, r, d)).or_default().push((b, e));
        }
    }
    let mut totals: HashMap<Key, (i64, i64)> = HashMap::new();
    for ((p, r, k), intervals) in comm {
        let incoming = intervals::union(intervals);
        let busy = intervals::union(compute.remove(&(p, r, k)).unwrap_or_default());
        let t = totals.entry((p, r)).or_default();
        t.0 += intervals::overlap(&incoming, &busy);
        t.1 += intervals::length(&incoming);
    }
    Ok(totals.into_iter().map(|(k, (hidden, all))| (k, (all > 0).then(|| hidden as f64 / all as f64))).collect())
}

/// The Int64 column `name` as options (nulls kept), cast if needed.
pub(crate) fn ints(df: &DataFrame, name: &str) -> anyhow::Result<Vec<Option<i64>>> {
    let c = df.column(name).with_context(|| format!("no column {name:?}"))?;
    let c = c.cast(&DataType::Int64).with_context(|| format!("column {name:?} is not numeric"))?;
    Ok(c.i64()?.iter().collect())
}

/// The column `name` as Float64 options.
pub(crate) fn floats(df: &DataFrame, name: &str) -> anyhow::Result<Vec<Option<f64>>> {
    let c = df.column(name).with_context(|| format!("no column {name:?}"))?;
    let c = c.cast(&DataType::Float64).with_context(|| format!("column {name:?} is not numeric"))?;
    Ok(c.f64()?.iter().collect())
}

/// The String column `name` as options.
pub(crate) fn strs(df: &DataFrame, name: &str) -> anyhow::Result<Vec<Option<String>>> {
    let c = df.column(name).with_context(|| format!("no column {name:?}"))?;
    let c = c.cast(&DataType::String)?;
    Ok(c.str()?.iter().map(|v| v.map(String::from)).collect())
}

fn by_key(df: &DataFrame, value: &str) -> anyhow::Result<HashMap<Key, Option<i64>>> {
    let (p, r, v) = (ints(df, "point_id")?, ints(df, "repetition")?, ints(df, value)?);
    Ok((0..df.height()).map(|i| ((p[i].unwrap_or(-1), r[i].unwrap_or(-1)), v[i])).collect())
}

fn by_key_f(df: &DataFrame, value: &str) -> anyhow::Result<HashMap<Key, Option<f64>>> {
    let (p, r, v) = (ints(df, "point_id")?, ints(df, "repetition")?, floats(df, value)?);
    Ok((0..df.height()).map(|i| ((p[i].unwrap_or(-1), r[i].unwrap_or(-1)), v[i])).collect())
}

fn by_key3(df: &DataFrame, third: &str, value: &str) -> anyhow::Result<HashMap<Key, BTreeMap<i64, i64>>> {
    let (p, r, k, v) = (ints(df, "point_id")?, ints(df, "repetition")?, ints(df, third)?, ints(df, value)?);
    let mut out: HashMap<Key, BTreeMap<i64, i64>> = HashMap::new();
    for i in 0..df.height() {
        out.entry((p[i].unwrap_or(-1), r[i].unwrap_or(-1))).or_default().insert(k[i].unwrap_or(0), v[i].unwrap_or(0));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use polars::df;

    fn points(ranks: i64, makespan: i64) -> DataFrame {
        df!("point_id" => [0i64], "repetition" => [0i64], "ranks" => [ranks], "workers" => [1i64],
            "makespan_ns" => [Some(makespan)], "gflops" => [Some(1.0)], "data_messages" => [3i64],
            "data_bytes" => [300i64], "control_messages" => [1i64], "control_bytes" => [16i64],
            "error" => [None::<&str>])
        .unwrap()
    }

    fn tasks(rows: &[(i64, i64, i64)]) -> DataFrame {
        let n = rows.len();
        df!("point_id" => vec![0i64; n], "repetition" => vec![0i64; n],
            "rank" => rows.iter().map(|r| r.0).collect::<Vec<_>>(), "worker" => vec![0i64; n],
            "start_ns" => rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            "end_ns" => rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            "duration_ns" => rows.iter().map(|r| r.2 - r.1).collect::<Vec<_>>(),
            "chain_ns" => rows.iter().map(|r| Some(r.2 - r.1)).collect::<Vec<_>>())
        .unwrap()
    }

    fn transfers(rows: &[(i64, Option<i64>, Option<i64>)]) -> DataFrame {
        let n = rows.len();
        let lat: Vec<Option<i64>> = rows.iter().map(|r| Some(r.2? - r.1?)).collect();
        df!("point_id" => vec![0i64; n], "repetition" => vec![0i64; n],
            "dst" => rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            "posted_ns" => rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            "started_ns" => vec![None::<i64>; n],
            "completed_ns" => rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            "latency_ns" => lat)
        .unwrap()
    }

    #[test]
    fn imbalance_counts_idle_ranks_and_busy_fraction_divides_by_makespan() {
        // 4 ranks: 80, 40, 0 (no tasks), 40 ns busy; mean 40, max 80.
        let t = tasks(&[(0, 0, 50), (0, 60, 90), (1, 0, 40), (3, 10, 50)]);
        let m = &run_metrics(&points(4, 100), &t, &transfers(&[])).unwrap()[0];
        assert_eq!(m.busy_ns, [80, 40, 0, 40]);
        assert_eq!(m.imbalance, Some(2.0));
        assert_eq!(m.busy_fraction, [0.8, 0.4, 0.0, 0.4]);
        assert_eq!(m.overlap, None, "nothing moved");
        assert_eq!(m.latency_p50_ns, None);
    }

    #[test]
    fn overlap_is_incoming_time_under_kernels_over_all_incoming_time() {
        // rank 1 computes [0,100); receives [50,150) and [140,200): incoming union [50,200)=150 ns,
        // hidden [50,100) = 50 ns. rank 0 computes nothing and receives [0,50): 50 ns, none hidden.
        let t = tasks(&[(1, 0, 100)]);
        let x = transfers(&[(1, Some(50), Some(150)), (1, Some(140), Some(200)), (0, Some(0), Some(50))]);
        let m = &run_metrics(&points(2, 200), &t, &x).unwrap()[0];
        assert_eq!(m.overlap, Some(50.0 / 200.0));
    }

    #[test]
    fn latency_percentiles_interpolate_linearly() {
        let rows: Vec<(i64, Option<i64>, Option<i64>)> = (1..=100).map(|i| (1, Some(0), Some(i * 10))).collect();
        let mut rows = rows;
        rows.push((1, None, Some(5))); // not posted: no latency, ignored
        let m = &run_metrics(&points(2, 2000), &tasks(&[]), &transfers(&rows)).unwrap()[0];
        assert_eq!(m.latency_p50_ns, Some(505.0));
        assert!((m.latency_p99_ns.unwrap() - 990.1).abs() < 1e-6);
    }
}
