//! A run's trace as rows of the `tasks`, `transfers`, `messages` and `copies` tables.

use anyhow::Context;
use dagwire_runtime::trace::TransferRecord;
use dagwire_runtime::{Dag, KernelId, Trace};
use polars::prelude::{Column, DataFrame};

/// What a finished run recorded, borrowed for writing its part files.
///
/// `transfers` is `trace.transfers(bytes_of)`, computed by the caller because chunk
/// sizes come from the DAG; `kernel_name` names a kernel the way the workload does;
/// `dag`, when given, lets the `tasks` rows carry `chain_ns` (the longest chain of
/// measured durations ending at each task, from which the report takes the critical path).
///
/// ```
/// use dagwire_analysis::TraceRows;
/// use dagwire_runtime::{Dag, KernelId, Trace};
/// let trace = Trace::default();
/// let transfers = trace.transfers(|_| 0);
/// let name = |k: KernelId| if k.0 == 0 { "potrf" } else { "gemm" };
/// let rows = TraceRows { trace: &trace, transfers: &transfers, kernel_name: &name, dag: None };
/// assert_eq!((rows.kernel_name)(KernelId(0)), "potrf");
/// ```
#[derive(Clone, Copy)]
pub struct TraceRows<'a> {
    /// The merged trace of the run.
    pub trace: &'a Trace,
    /// Its transfers, phases joined.
    pub transfers: &'a [TransferRecord],
    /// The name of each kernel.
    pub kernel_name: &'a dyn Fn(KernelId) -> &'static str,
    /// The DAG that ran, for `chain_ns`; `None` leaves that column null.
    pub dag: Option<&'a Dag>,
}

/// `v` as Int64, or an error naming the column.
fn int(v: u64, column: &str) -> anyhow::Result<i64> {
    i64::try_from(v).with_context(|| format!("{column} = {v} does not fit in Int64"))
}

fn ints<T>(rows: &[T], column: &str, f: impl Fn(&T) -> u64) -> anyhow::Result<Column> {
    let values = rows.iter().map(|r| int(f(r), column)).collect::<anyhow::Result<Vec<i64>>>()?;
    Ok(Column::new(column.into(), values))
}

fn opt_ints<T>(rows: &[T], column: &str, f: impl Fn(&T) -> Option<u64>) -> anyhow::Result<Column> {
    let values =
        rows.iter().map(|r| f(r).map(|v| int(v, column)).transpose()).collect::<anyhow::Result<Vec<Option<i64>>>>()?;
    Ok(Column::new(column.into(), values))
}

/// `point_id` and `repetition` columns of `n` rows.
fn key_columns(point_id: u32, repetition: u32, n: usize) -> [Column; 2] {
    [
        Column::new("point_id".into(), vec![i64::from(point_id); n]),
        Column::new("repetition".into(), vec![i64::from(repetition); n]),
    ]
}

fn frame(n: usize, columns: Vec<Column>) -> anyhow::Result<DataFrame> {
    Ok(DataFrame::new(n, columns)?)
}

/// The indices of `0..n` in the order of `key`, stable (ties keep their order): the rows
/// come out in their table's order ([`crate::Table::sort_keys`] after the point's key), so
/// neither a point's part nor the combined table needs a sort of a DataFrame.
fn table_order<K: Ord>(n: usize, key: impl Fn(usize) -> K) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    if !order.is_sorted_by_key(|&i| key(i)) {
        order.sort_by_key(|&i| key(i));
    }
    order
}

/// The `tasks` rows of one point (none when `rows` is `None`).
pub(crate) fn tasks_frame(point_id: u32, repetition: u32, rows: Option<&TraceRows<'_>>) -> anyhow::Result<DataFrame> {
    let records = rows.map_or(&[][..], |r| &r.trace.tasks[..]);
    let n = records.len();
    let order = table_order(n, |i| (records[i].start_ns, records[i].rank, records[i].task));
    let tasks: Vec<_> = order.iter().map(|&i| &records[i]).collect();
    let tasks = &tasks[..];
    let mut columns = Vec::from(key_columns(point_id, repetition, n));
    let kernel: Vec<&str> = match rows {
        Some(r) => tasks.iter().map(|t| (r.kernel_name)(t.kernel)).collect(),
        None => Vec::new(),
    };
    columns.extend([
        ints(tasks, "task", |t| t.task.0.into())?,
        Column::new("kernel".into(), kernel),
        ints(tasks, "rank", |t| t.rank.0.into())?,
        ints(tasks, "worker", |t| t.worker.into())?,
        ints(tasks, "start_ns", |t| t.start_ns)?,
        ints(tasks, "end_ns", |t| t.end_ns)?,
        ints(tasks, "duration_ns", |t| t.end_ns.saturating_sub(t.start_ns))?,
        Column::new("flops".into(), tasks.iter().map(|t| t.flops).collect::<Vec<f64>>()),
    ]);
    let chains = match rows.and_then(|r| r.dag.map(|dag| (dag, r.trace))) {
        Some((dag, trace)) => chain_ns(dag, trace),
        None => vec![None; n],
    };
    let chains =
        order.iter().map(|&i| chains[i].map(|v| int(v, "chain_ns")).transpose()).collect::<anyhow::Result<Vec<_>>>()?;
    columns.push(Column::new("chain_ns".into(), chains));
    frame(n, columns)
}

/// For each task record of `trace`, in order: the longest chain of measured kernel
/// durations through `dag` ending with that task, its own duration included (an input
/// whose producer did not run adds nothing). `None` for a record whose task is not in
/// the DAG. Task ids follow a topological order, so one pass in id order suffices.
fn chain_ns(dag: &Dag, trace: &Trace) -> Vec<Option<u64>> {
    let mut duration: Vec<Option<u64>> = vec![None; dag.task_count()];
    for rec in &trace.tasks {
        if let Some(d) = duration.get_mut(rec.task.index()) {
            *d = Some(rec.end_ns.saturating_sub(rec.start_ns));
        }
    }
    let mut chain = vec![0u64; dag.task_count()];
    for t in dag.task_ids() {
        let before = dag.inputs(t).iter().map(|&c| chain[dag.chunk(c).producer.index()]).max().unwrap_or(0);
        chain[t.index()] = before + duration[t.index()].unwrap_or(0);
    }
    trace.tasks.iter().map(|rec| chain.get(rec.task.index()).copied()).collect()
}

/// The `transfers` rows of one point.
pub(crate) fn transfers_frame(
    point_id: u32,
    repetition: u32,
    rows: Option<&TraceRows<'_>>,
) -> anyhow::Result<DataFrame> {
    let records = rows.map_or(&[][..], |r| r.transfers);
    let n = records.len();
    let key = |i: usize| {
        let t = &records[i];
        (t.posted_ns, t.src, t.dst, t.chunk)
    };
    let transfers: Vec<_> = table_order(n, key).into_iter().map(|i| &records[i]).collect();
    let transfers = &transfers[..];
    let mut columns = Vec::from(key_columns(point_id, repetition, n));
    columns.extend([
        ints(transfers, "chunk", |t| t.chunk.0.into())?,
        ints(transfers, "src", |t| t.src.0.into())?,
        ints(transfers, "dst", |t| t.dst.0.into())?,
        ints(transfers, "bytes", |t| t.bytes)?,
        opt_ints(transfers, "posted_ns", |t| t.posted_ns)?,
        opt_ints(transfers, "started_ns", |t| t.started_ns)?,
        opt_ints(transfers, "wire_ns", |t| t.wire_ns)?,
        opt_ints(transfers, "completed_ns", |t| t.completed_ns)?,
    ]);
    // Signed: a completion recorded on another rank's clock may precede the post.
    let latency = transfers
        .iter()
        .map(|t| match (t.posted_ns, t.completed_ns) {
            (Some(p), Some(c)) => Ok(Some(int(c, "completed_ns")? - int(p, "posted_ns")?)),
            _ => Ok(None),
        })
        .collect::<anyhow::Result<Vec<Option<i64>>>>()?;
    columns.push(Column::new("latency_ns".into(), latency));
    frame(n, columns)
}

/// The `messages` rows of one point.
pub(crate) fn messages_frame(
    point_id: u32,
    repetition: u32,
    rows: Option<&TraceRows<'_>>,
) -> anyhow::Result<DataFrame> {
    let records = rows.map_or(&[][..], |r| &r.trace.messages[..]);
    let n = records.len();
    let key = |i: usize| {
        let m = &records[i];
        (m.sent_ns, m.src, m.dst, m.chunk, m.recv_ns)
    };
    let messages: Vec<_> = table_order(n, key).into_iter().map(|i| &records[i]).collect();
    let messages = &messages[..];
    let mut columns = Vec::from(key_columns(point_id, repetition, n));
    columns.extend([
        ints(messages, "src", |m| m.src.0.into())?,
        ints(messages, "dst", |m| m.dst.0.into())?,
        Column::new("kind".into(), messages.iter().map(|m| m.kind).collect::<Vec<&str>>()),
        Column::new("class".into(), messages.iter().map(|m| m.class.as_str()).collect::<Vec<&str>>()),
        ints(messages, "bytes", |m| m.bytes)?,
        ints(messages, "chunk", |m| m.chunk.0.into())?,
        ints(messages, "sent_ns", |m| m.sent_ns)?,
        ints(messages, "recv_ns", |m| m.recv_ns)?,
    ]);
    frame(n, columns)
}

/// The `copies` rows of one point (none unless the simulator ran devices).
pub(crate) fn copies_frame(point_id: u32, repetition: u32, rows: Option<&TraceRows<'_>>) -> anyhow::Result<DataFrame> {
    let records = rows.map_or(&[][..], |r| &r.trace.copies[..]);
    let n = records.len();
    let key = |i: usize| {
        let c = &records[i];
        (c.start_ns, c.rank, c.engine)
    };
    let copies: Vec<_> = table_order(n, key).into_iter().map(|i| &records[i]).collect();
    let copies = &copies[..];
    let mut columns = Vec::from(key_columns(point_id, repetition, n));
    columns.extend([
        ints(copies, "rank", |c| c.rank.0.into())?,
        ints(copies, "engine", |c| c.engine.into())?,
        ints(copies, "stream", |c| c.stream.into())?,
        Column::new("kind".into(), copies.iter().map(|c| c.kind.as_str()).collect::<Vec<&str>>()),
        ints(copies, "bytes", |c| c.bytes)?,
        ints(copies, "start_ns", |c| c.start_ns)?,
        ints(copies, "end_ns", |c| c.end_ns)?,
        ints(copies, "duration_ns", |c| c.end_ns.saturating_sub(c.start_ns))?,
        ints(copies, "src", |c| c.src.0.into())?,
        ints(copies, "dst", |c| c.dst.0.into())?,
        opt_ints(copies, "chunk", |c| c.chunk.map(|k| k.0.into()))?,
        Column::new("carries".into(), copies.iter().map(|c| c.carries).collect::<Vec<&str>>()),
    ]);
    frame(n, columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dagwire_runtime::trace::TaskRecord;
    use dagwire_runtime::{DagBuilder, Rank, TaskSpec};

    #[test]
    fn chain_is_the_longest_path_of_measured_durations() {
        // a -> c, b -> c, c -> d; a takes 10, b 30, c 5, d 1: the chain to d is b, c, d = 36.
        let mut dag = DagBuilder::new(2);
        let k = KernelId(0);
        let a = dag.add(TaskSpec::new(k, Rank(0)).outputs(&[8]));
        let b = dag.add(TaskSpec::new(k, Rank(1)).outputs(&[8]));
        let c = dag.add(TaskSpec::new(k, Rank(0)).inputs(&[a.output(0), b.output(0)]).outputs(&[8]));
        let _d = dag.add(TaskSpec::new(k, Rank(1)).inputs(&[c.output(0)]));
        let dag = dag.finish();
        let times = [(0, 10), (0, 30), (40, 45), (60, 61)];
        let mut trace = Trace::default();
        // Records in another order than the ids, as a merged trace may have them.
        for t in [3usize, 1, 0, 2] {
            trace.tasks.push(TaskRecord {
                task: dagwire_runtime::TaskId(t as u32),
                kernel: k,
                rank: dag.task(dagwire_runtime::TaskId(t as u32)).owner,
                worker: 0,
                start_ns: times[t].0,
                end_ns: times[t].1,
                flops: 0.0,
            });
        }
        assert_eq!(chain_ns(&dag, &trace), [Some(36), Some(30), Some(10), Some(35)]);
    }
}
