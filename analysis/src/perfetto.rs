//! One run as Chrome/Perfetto trace-event JSON (the "JSON Array/Object Format"
//! that ui.perfetto.dev and chrome://tracing open):
//!
//! - one process (`pid`) per rank and one thread (`tid`) per worker, named by `M`
//!   metadata events (`process_name`, `thread_name`, plus sort indices); on a simulated
//!   machine with accelerators a worker is a device stream (named `stream s` when the
//!   run made copies) and every copy engine `e` has a thread of its own,
//!   `tid` [`COPY_ENGINE_TID`]` + e`, named `copy engine e`, after the streams;
//! - every task a complete `X` slice on its rank and worker (`ts`/`dur` in µs);
//! - every device copy (the `copies` table) a complete `X` slice (category `copy`, named
//!   by its kind and bytes) on its rank's copy-engine thread: an engine holds one copy
//!   at a time, so they never overlap there, and copies beside kernels show the overlap;
//! - every transfer an async slice (`b` … `e`, category `transfer`) on the receiving
//!   rank, from the protocol's start (else the post) to completion, since transfers
//!   overlap and `X` slices on one track must nest;
//! - every transfer a flow arrow (`s` → `f`, same `id`) from the sender's task that
//!   ended last before the chunk was posted (the producer) to the receiver's first
//!   task that started after the chunk was usable (its reader), when those exist;
//!   otherwise bound to the worker-0 track at those times.

use crate::run_metrics::{ints, strs};
use anyhow::bail;
use polars::prelude::DataFrame;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// The `tid` of copy engine 0's thread (engine `e` is this plus `e`): past every worker
/// a valid `tasks` row may name ([`crate::integrity::MAX_WORKERS`]).
pub const COPY_ENGINE_TID: i64 = crate::integrity::MAX_WORKERS;

/// The trace of repetition `repetition` of point `point_id`, from the `tasks`,
/// `transfers` and `copies` tables, as a JSON object `{"traceEvents": [...], "displayTimeUnit": "ns"}`.
///
/// Fails if the run has no rows in either table (a failed point, or a point id that
/// is not in the tables), saying which points are there.
///
/// ```
/// use dagwire_analysis::perfetto::trace_events;
/// use polars::df;
/// let tasks = df!("point_id" => [0i64, 0], "repetition" => [0i64, 0], "task" => [0i64, 1],
///     "kernel" => ["potrf", "trsm"], "rank" => [0i64, 1], "worker" => [0i64, 0],
///     "start_ns" => [0i64, 3000], "end_ns" => [1000i64, 5000], "flops" => [1.0, 2.0])?;
/// let transfers = df!("point_id" => [0i64], "repetition" => [0i64], "chunk" => [0i64],
///     "src" => [0i64], "dst" => [1i64], "bytes" => [8i64],
///     "posted_ns" => [Some(1000i64)], "started_ns" => [Some(1000i64)], "wire_ns" => [Some(1100i64)],
///     "completed_ns" => [Some(2500i64)])?;
/// // Staged: a device-to-host copy on rank 0's engine 1, a host-to-device one on rank 1's engine 0.
/// let copies = df!("point_id" => [0i64, 0], "repetition" => [0i64, 0], "rank" => [0i64, 1],
///     "engine" => [1i64, 0], "stream" => [0i64, 0], "kind" => ["d2h", "h2d"], "bytes" => [8i64, 8],
///     "start_ns" => [1000i64, 2000], "end_ns" => [1100i64, 2500], "src" => [0i64, 0], "dst" => [1i64, 1],
///     "chunk" => [Some(0i64), Some(0)], "carries" => ["message", "message"])?;
/// let trace = trace_events(&tasks, &transfers, &copies, 0, 0)?;
/// let events = trace["traceEvents"].as_array().unwrap();
/// assert_eq!(events.iter().filter(|e| e["ph"] == "X" && e["cat"] == "task").count(), 2);
/// assert_eq!(events.iter().filter(|e| e["ph"] == "s").count(), 1);
/// let ce = dagwire_analysis::perfetto::COPY_ENGINE_TID;
/// let lanes: Vec<_> = events.iter().filter(|e| e["cat"] == "copy").map(|e| (e["pid"].as_i64(), e["tid"].as_i64())).collect();
/// assert_eq!(lanes, [(Some(0), Some(ce + 1)), (Some(1), Some(ce))]);
/// # anyhow::Ok(())
/// ```
pub fn trace_events(
    tasks: &DataFrame,
    transfers: &DataFrame,
    copies: &DataFrame,
    point_id: i64,
    repetition: i64,
) -> anyhow::Result<Value> {
    let (tp, tr) = (ints(tasks, "point_id")?, ints(tasks, "repetition")?);
    let rows: Vec<usize> =
        (0..tasks.height()).filter(|&i| tp[i] == Some(point_id) && tr[i] == Some(repetition)).collect();
    let (xp, xr) = (ints(transfers, "point_id")?, ints(transfers, "repetition")?);
    let xrows: Vec<usize> =
        (0..transfers.height()).filter(|&i| xp[i] == Some(point_id) && xr[i] == Some(repetition)).collect();
    if rows.is_empty() && xrows.is_empty() {
        let runs: BTreeSet<(i64, i64)> = tp.iter().zip(&tr).filter_map(|(p, r)| Some(((*p)?, (*r)?))).collect();
        let sample: Vec<String> = runs.iter().take(12).map(|(p, r)| format!("{p}/{r}")).collect();
        bail!(
            "point {point_id} repetition {repetition} recorded no tasks or transfers (a failed run, or not in this sweep); runs with tasks (point/repetition): {}{}",
            if sample.is_empty() { "none".to_string() } else { sample.join(", ") },
            if runs.len() > sample.len() { ", ..." } else { "" }
        );
    }
    let (task, kernel, rank, worker, start, end) = (
        ints(tasks, "task")?,
        strs(tasks, "kernel")?,
        ints(tasks, "rank")?,
        ints(tasks, "worker")?,
        ints(tasks, "start_ns")?,
        ints(tasks, "end_ns")?,
    );
    let flops = crate::run_metrics::floats(tasks, "flops")?;
    let us = |ns: i64| ns as f64 / 1e3;
    let mut events = Vec::new();
    let mut threads: BTreeSet<(i64, i64)> = BTreeSet::new();
    // Per rank: (start, end, worker) of its tasks, sorted by end, for binding flows.
    let mut by_rank: BTreeMap<i64, Vec<(i64, i64, i64)>> = BTreeMap::new();
    for &i in &rows {
        let (r, w, s, e) = (rank[i].unwrap_or(0), worker[i].unwrap_or(0), start[i].unwrap_or(0), end[i].unwrap_or(0));
        threads.insert((r, w));
        by_rank.entry(r).or_default().push((s, e, w));
        events.push(json!({
            "name": kernel[i].clone().unwrap_or_default(), "cat": "task", "ph": "X",
            "ts": us(s), "dur": us(e - s), "pid": r, "tid": w,
            "args": {"task": task[i], "flops": flops[i]},
        }));
    }
    let (chunk, src, dst, bytes) =
        (ints(transfers, "chunk")?, ints(transfers, "src")?, ints(transfers, "dst")?, ints(transfers, "bytes")?);
    let (posted, started, wire, done) = (
        ints(transfers, "posted_ns")?,
        ints(transfers, "started_ns")?,
        ints(transfers, "wire_ns")?,
        ints(transfers, "completed_ns")?,
    );
    for (n, &i) in xrows.iter().enumerate() {
        let (s, d) = (src[i].unwrap_or(0), dst[i].unwrap_or(0));
        threads.insert((d, 0));
        threads.insert((s, 0));
        let begin = started[i].or(posted[i]).or(wire[i]).or(done[i]).unwrap_or(0);
        let finish = done[i].unwrap_or(begin).max(begin);
        let name = format!("chunk {} from rank {s}", chunk[i].unwrap_or(-1));
        let args = json!({"chunk": chunk[i], "src": s, "dst": d, "bytes": bytes[i],
            "posted_ns": posted[i], "started_ns": started[i], "wire_ns": wire[i], "completed_ns": done[i]});
        events.push(json!({"name": name, "cat": "transfer", "ph": "b", "id": n, "ts": us(begin), "pid": d, "tid": 0, "args": args}));
        events.push(json!({"name": name, "cat": "transfer", "ph": "e", "id": n, "ts": us(finish), "pid": d, "tid": 0}));
        // Flow: from inside the producer (last task on src ending at or before the post) ...
        let post = posted[i].unwrap_or(begin);
        let producer =
            by_rank.get(&s).and_then(|ts| ts.iter().filter(|t| t.1 <= post).max_by_key(|t| (t.1, t.0)).copied());
        let (from_ts, from_tid) = match producer {
            Some((ps, pe, w)) => ((pe - 1).max(ps), w),
            None => (begin, 0),
        };
        // ... to the start of the first task on dst starting at or after completion.
        let reader = by_rank.get(&d).and_then(|ts| ts.iter().filter(|t| t.0 >= finish).min_by_key(|t| t.0).copied());
        let (to_ts, to_tid) = match reader {
            Some((rs, _, w)) => (rs, w),
            None => (finish, 0),
        };
        events.push(json!({"name": "transfer", "cat": "flow", "ph": "s", "id": n, "ts": us(from_ts), "pid": s, "tid": from_tid}));
        events.push(json!({"name": "transfer", "cat": "flow", "ph": "f", "bp": "e", "id": n, "ts": us(to_ts), "pid": d, "tid": to_tid}));
    }
    let (cp, cr) = (ints(copies, "point_id")?, ints(copies, "repetition")?);
    let crows: Vec<usize> =
        (0..copies.height()).filter(|&i| cp[i] == Some(point_id) && cr[i] == Some(repetition)).collect();
    let (crank, engine, stream, ckind) =
        (ints(copies, "rank")?, ints(copies, "engine")?, ints(copies, "stream")?, strs(copies, "kind")?);
    let (cbytes, cstart, cend) = (ints(copies, "bytes")?, ints(copies, "start_ns")?, ints(copies, "end_ns")?);
    let (csrc, cdst, cchunk, carries) =
        (ints(copies, "src")?, ints(copies, "dst")?, ints(copies, "chunk")?, strs(copies, "carries")?);
    let mut engines: BTreeSet<(i64, i64)> = BTreeSet::new();
    for &i in &crows {
        let (r, e, s, f) =
            (crank[i].unwrap_or(0), engine[i].unwrap_or(0), cstart[i].unwrap_or(0), cend[i].unwrap_or(0));
        engines.insert((r, e));
        let kind = ckind[i].clone().unwrap_or_default();
        events.push(json!({
            "name": format!("{kind} {} B", cbytes[i].unwrap_or(0)), "cat": "copy", "ph": "X",
            "ts": us(s), "dur": us(f - s), "pid": r, "tid": COPY_ENGINE_TID + e,
            "args": {"kind": kind, "bytes": cbytes[i], "stream": stream[i], "src": csrc[i], "dst": cdst[i],
                "chunk": cchunk[i], "carries": carries[i]},
        }));
    }
    // With copies the run was on devices: its workers are streams.
    let lane = if crows.is_empty() { "worker" } else { "stream" };
    let ranks: BTreeSet<i64> = threads.iter().chain(&engines).map(|t| t.0).collect();
    let mut meta = Vec::new();
    for r in &ranks {
        meta.push(
            json!({"name": "process_name", "ph": "M", "pid": r, "tid": 0, "args": {"name": format!("rank {r}")}}),
        );
        meta.push(json!({"name": "process_sort_index", "ph": "M", "pid": r, "tid": 0, "args": {"sort_index": r}}));
    }
    for (r, w) in &threads {
        meta.push(
            json!({"name": "thread_name", "ph": "M", "pid": r, "tid": w, "args": {"name": format!("{lane} {w}")}}),
        );
        meta.push(json!({"name": "thread_sort_index", "ph": "M", "pid": r, "tid": w, "args": {"sort_index": w}}));
    }
    for (r, e) in &engines {
        let tid = COPY_ENGINE_TID + e;
        let name = format!("copy engine {e}");
        meta.push(json!({"name": "thread_name", "ph": "M", "pid": r, "tid": tid, "args": {"name": name}}));
        meta.push(json!({"name": "thread_sort_index", "ph": "M", "pid": r, "tid": tid, "args": {"sort_index": tid}}));
    }
    meta.extend(events);
    Ok(json!({
        "traceEvents": meta,
        "displayTimeUnit": "ns",
        "otherData": {"point_id": point_id, "repetition": repetition, "source": "dagwire"},
    }))
}
