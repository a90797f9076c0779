//! One row of the `points` table: a run point's parameters and results.

use crate::schema::POINTS_COLUMNS;
use anyhow::{Context, bail};
use dagwire_runtime::{ParamValue, Trace};
use polars::prelude::{Column, DataFrame, PlSmallStr};
use std::collections::BTreeSet;

/// The results of one repetition of one run point: a row of `points.parquet`.
///
/// A failed point is still a row: `error` says why, and the metrics are null or 0.
///
/// ```
/// use dagwire_analysis::PointRecord;
/// use dagwire_runtime::ParamValue;
/// let ok = PointRecord {
///     point_id: 3,
///     repetition: 1,
///     params: vec![("workload".into(), ParamValue::Str("cholesky".into())), ("cholesky.n".into(), ParamValue::Int(512))],
///     makespan_ns: Some(2_000_000),
///     verified: true,
///     wall_s: 0.5,
///     ..PointRecord::default()
/// };
/// assert!(ok.error.is_none());
/// let failed = PointRecord::failed(4, 0, ok.params.clone(), "rank 1 died", 0.1);
/// assert_eq!(failed.error.as_deref(), Some("rank 1 died"));
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PointRecord {
    /// Index of the point in the expanded sweep grid.
    pub point_id: u32,
    /// Repetition, from 0.
    pub repetition: u32,
    /// Every parameter of the point, each written as its own column named by the key
    /// (`workload`, `strategy`, `driver`, `ranks`, `workers`, `cholesky.n`, ...).
    /// Int → Int64, Float → Float64, Str → String, Bool → Boolean. Keys must be unique
    /// and must not be the name of a fixed column.
    pub params: Vec<(String, ParamValue)>,
    /// Start of the run to the end of its last task, ns; `None` if it failed.
    pub makespan_ns: Option<u64>,
    /// Workload flops per second over the makespan, in GFLOP/s.
    pub gflops: Option<f64>,
    /// Messages carrying chunk bytes.
    pub data_messages: u64,
    /// Chunk bytes moved.
    pub data_bytes: u64,
    /// Protocol-only messages.
    pub control_messages: u64,
    /// Header bytes of protocol-only messages.
    pub control_bytes: u64,
    /// Memory registrations (the `fabric` strategy's exposed chunks; with its cache on,
    /// only the first exposure of each buffer registers).
    pub registrations: u64,
    /// Time those registrations took, summed over ranks, ns.
    pub registration_ns: u64,
    /// Tasks run.
    pub tasks: u64,
    /// The result was checked and passed.
    pub verified: bool,
    /// What the check measured.
    pub check_metric: Option<String>,
    /// The measured value.
    pub check_value: Option<f64>,
    /// Why the point failed; `None` when it ran to the end.
    pub error: Option<String>,
    /// Wall time of the whole point including building and verifying, s.
    pub wall_s: f64,
}

impl PointRecord {
    /// A failed point: its parameters, the error (write the whole chain, `{:#}`) and
    /// the wall time spent before it failed; every metric empty.
    ///
    /// ```
    /// use dagwire_analysis::PointRecord;
    /// let p = PointRecord::failed(0, 2, vec![], "mpirun exited with 1", 1.5);
    /// assert_eq!((p.point_id, p.repetition, p.makespan_ns, p.verified), (0, 2, None, false));
    /// ```
    pub fn failed(
        point_id: u32,
        repetition: u32,
        params: Vec<(String, ParamValue)>,
        error: impl Into<String>,
        wall_s: f64,
    ) -> Self {
        PointRecord { point_id, repetition, params, error: Some(error.into()), wall_s, ..Self::default() }
    }

    /// Sets the message, byte and task counts from a run's trace.
    ///
    /// ```
    /// use dagwire_analysis::PointRecord;
    /// use dagwire_runtime::trace::MessageRecord;
    /// use dagwire_runtime::{ChunkId, MessageClass, Rank, Trace};
    /// let mut trace = Trace::default();
    /// trace.messages.push(MessageRecord {
    ///     src: Rank(0), dst: Rank(1), kind: "eager-data", class: MessageClass::Data,
    ///     bytes: 4096, chunk: ChunkId(2), sent_ns: 10, recv_ns: 20,
    /// });
    /// let mut p = PointRecord::default();
    /// p.count_trace(&trace);
    /// assert_eq!((p.data_messages, p.data_bytes, p.control_messages, p.tasks), (1, 4096, 0, 0));
    /// ```
    pub fn count_trace(&mut self, trace: &Trace) {
        let t = trace.message_totals();
        self.data_messages = t.data_messages;
        self.data_bytes = t.data_bytes;
        self.control_messages = t.control_messages;
        self.control_bytes = t.control_bytes;
        self.registrations = t.registrations;
        self.registration_ns = t.registration_ns;
        self.tasks = trace.tasks.len() as u64;
    }

    /// The one-row `points` frame: `point_id`, `repetition`, the parameters, then the
    /// fixed metrics columns in [`POINTS_COLUMNS`] order.
    pub(crate) fn to_frame(&self) -> anyhow::Result<DataFrame> {
        let mut columns = vec![
            Column::new("point_id".into(), [i64::from(self.point_id)]),
            Column::new("repetition".into(), [i64::from(self.repetition)]),
        ];
        let mut seen = BTreeSet::new();
        for (key, value) in &self.params {
            if key.is_empty() {
                bail!("point {}: a parameter has an empty name", self.point_id);
            }
            if POINTS_COLUMNS.iter().any(|c| c.name == key) {
                bail!("point {}: parameter {key:?} has the name of a fixed points column; rename it", self.point_id);
            }
            if !seen.insert(key.as_str()) {
                bail!("point {}: parameter {key:?} is given twice", self.point_id);
            }
            let name = PlSmallStr::from_str(key);
            columns.push(match value {
                ParamValue::Int(v) => Column::new(name, [*v]),
                ParamValue::Float(v) => Column::new(name, [*v]),
                ParamValue::Str(v) => Column::new(name, [v.as_str()]),
                ParamValue::Bool(v) => Column::new(name, [*v]),
            });
        }
        let int = |v: u64, what: &str| {
            i64::try_from(v).with_context(|| format!("point {}: {what} = {v} does not fit in Int64", self.point_id))
        };
        let makespan_ns = self.makespan_ns.map(|v| int(v, "makespan_ns")).transpose()?;
        columns.extend([
            Column::new("makespan_ns".into(), [makespan_ns]),
            Column::new("makespan_s".into(), [self.makespan_ns.map(|ns| ns as f64 / 1e9)]),
            Column::new("gflops".into(), [self.gflops]),
            Column::new("data_messages".into(), [int(self.data_messages, "data_messages")?]),
            Column::new("data_bytes".into(), [int(self.data_bytes, "data_bytes")?]),
            Column::new("control_messages".into(), [int(self.control_messages, "control_messages")?]),
            Column::new("control_bytes".into(), [int(self.control_bytes, "control_bytes")?]),
            Column::new("registrations".into(), [int(self.registrations, "registrations")?]),
            Column::new("registration_ns".into(), [int(self.registration_ns, "registration_ns")?]),
            Column::new("tasks".into(), [int(self.tasks, "tasks")?]),
            Column::new("verified".into(), [self.verified]),
            Column::new("check_metric".into(), [self.check_metric.clone()]),
            Column::new("check_value".into(), [self.check_value]),
            Column::new("error".into(), [self.error.clone()]),
            Column::new("wall_s".into(), [self.wall_s]),
        ]);
        Ok(DataFrame::new(1, columns)?)
    }
}
