//! One line per run point: its parameters, whether its runs succeeded, and its
//! metrics over repetitions (median, spread, confidence interval).
//!
//! The columns of `points` between `repetition` and `makespan_ns` are the point's
//! parameters, except the workload's own figures (the micro benchmarks'
//! `micro.latency_us`, ...), which are Float64 columns whose name ends with a unit
//! suffix from [`FIGURE_SUFFIXES`].

use crate::run_metrics::{RunMetrics, floats};
use crate::schema::POINTS_COLUMNS;
use crate::stats::Spread;
use anyhow::Context;
use polars::prelude::{DataFrame, DataType};
use std::collections::BTreeMap;

/// Name endings of the workload figure columns in `points` (a unit suffix).
///
/// ```
/// assert!(dagwire_analysis::point_summary::FIGURE_SUFFIXES.contains(&"_us"));
/// ```
pub const FIGURE_SUFFIXES: &[&str] =
    &["_us", "_ms", "_ns", "_mbps", "_gbps", "_gflops", "_per_rank", "_share", "_count"];

/// A run point summarised over its repetitions.
///
/// ```
/// use dagwire_analysis::point_summary::PointSummary;
/// let p = PointSummary { params: vec![("strategy".into(), "eager".into())], ..Default::default() };
/// assert_eq!(p.param("strategy"), Some("eager"));
/// assert_eq!(p.param("ranks"), None);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PointSummary {
    /// The point.
    pub point_id: i64,
    /// Every parameter, as `(column, value as text)`; `-` for null.
    pub params: Vec<(String, String)>,
    /// Repetitions recorded.
    pub runs: usize,
    /// Repetitions that ran to the end and verified (or were not checkable).
    pub ok_runs: usize,
    /// The distinct errors of the failed repetitions.
    pub errors: Vec<String>,
    /// The runs were simulated with costed kernels, so nothing could be verified.
    pub unverifiable: bool,
    /// Makespan over the successful repetitions, ms.
    pub makespan_ms: Option<Spread>,
    /// GFLOP/s over the successful repetitions.
    pub gflops: Option<Spread>,
    /// Workload figures (`micro.latency_us`, ...) over the successful repetitions.
    pub figures: Vec<(String, Spread)>,
    /// Median data bytes.
    pub data_bytes: Option<f64>,
    /// Median data messages.
    pub data_messages: Option<f64>,
    /// Median control messages.
    pub control_messages: Option<f64>,
    /// Median control bytes.
    pub control_bytes: Option<f64>,
    /// Median over repetitions of the run's transfer latency p50, µs.
    pub latency_p50_us: Option<f64>,
    /// Median over repetitions of the run's transfer latency p99, µs.
    pub latency_p99_us: Option<f64>,
    /// Median fraction of incoming-communication time hidden under compute.
    pub overlap: Option<f64>,
    /// Median critical path, ms.
    pub critical_path_ms: Option<f64>,
    /// Median of the mean per-rank busy fraction.
    pub busy_fraction: Option<f64>,
    /// Median load imbalance (max/mean busy time over ranks).
    pub imbalance: Option<f64>,
}

impl PointSummary {
    /// The value of parameter `name`, if the point has it (not null).
    ///
    /// ```
    /// let p = dagwire_analysis::point_summary::PointSummary { params: vec![("x".into(), "-".into())], ..Default::default() };
    /// assert_eq!(p.param("x"), None);
    /// ```
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| *v != "-")
    }

    /// The summary of figure `suffix` (`latency_us` matches `micro.latency_us`).
    ///
    /// ```
    /// use dagwire_analysis::{Spread, point_summary::PointSummary};
    /// let s = Spread::of(&[2.0]).unwrap();
    /// let p = PointSummary { figures: vec![("micro.latency_us".into(), s)], ..Default::default() };
    /// assert_eq!(p.figure("latency_us").map(|s| s.median), Some(2.0));
    /// ```
    pub fn figure(&self, suffix: &str) -> Option<&Spread> {
        self.figures.iter().find(|(k, _)| k.rsplit('.').next() == Some(suffix)).map(|(_, s)| s)
    }

    /// Every repetition failed.
    ///
    /// ```
    /// let p = dagwire_analysis::point_summary::PointSummary { runs: 2, ok_runs: 0, ..Default::default() };
    /// assert!(p.failed());
    /// ```
    pub fn failed(&self) -> bool {
        self.ok_runs == 0
    }
}

/// Whether a `points` column is a workload figure rather than a parameter.
///
/// ```
/// use dagwire_analysis::point_summary::is_figure_column;
/// assert!(is_figure_column("micro.bandwidth_mbps"));
/// assert!(!is_figure_column("cholesky.tile"));
/// ```
pub fn is_figure_column(name: &str) -> bool {
    name.contains('.') && FIGURE_SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// The parameter columns of `points`, in table order.
///
/// ```
/// use polars::df;
/// let points = df!("point_id" => [0i64], "repetition" => [0i64], "ranks" => [2i64],
///     "micro.latency_us" => [1.5], "makespan_ns" => [Some(5i64)])?;
/// assert_eq!(dagwire_analysis::point_summary::param_columns(&points), ["ranks"]);
/// # anyhow::Ok(())
/// ```
pub fn param_columns(points: &DataFrame) -> Vec<String> {
    points
        .get_column_names()
        .into_iter()
        .map(|n| n.to_string())
        .filter(|n| !POINTS_COLUMNS.iter().any(|c| c.name == n) && !is_figure_column(n))
        .collect()
}

/// The parameters whose values differ between points (nulls aside), in table order.
///
/// ```
/// use polars::df;
/// let points = df!("point_id" => [0i64, 1], "repetition" => [0i64, 0], "ranks" => [2i64, 4],
///     "workers" => [1i64, 1], "makespan_ns" => [Some(5i64), None])?;
/// assert_eq!(dagwire_analysis::point_summary::varying_params(&points)?, ["ranks"]);
/// # anyhow::Ok(())
/// ```
pub fn varying_params(points: &DataFrame) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for name in param_columns(points) {
        let distinct = points.column(&name)?.as_materialized_series().drop_nulls().n_unique()?;
        if distinct > 1 {
            out.push(name);
        }
    }
    Ok(out)
}

/// One summary per point, in point order, from `points` and the per-run metrics of
/// the same rows ([`crate::run_metrics::run_metrics`]). `unverifiable_check` is the
/// `check_metric` text of runs whose kernels were only costed.
pub fn summarize(
    points: &DataFrame,
    runs: &[RunMetrics],
    unverifiable_check: &str,
) -> anyhow::Result<Vec<PointSummary>> {
    let params = param_columns(points);
    let figure_cols: Vec<String> = points
        .get_column_names()
        .into_iter()
        .map(|n| n.to_string())
        .filter(|n| is_figure_column(n) && points.column(n).is_ok_and(|c| c.dtype() == &DataType::Float64))
        .collect();
    let figure_values: Vec<Vec<Option<f64>>> =
        figure_cols.iter().map(|c| floats(points, c)).collect::<anyhow::Result<_>>()?;
    let checks = crate::run_metrics::strs(points, "check_metric")?;
    let param_series: Vec<_> = params
        .iter()
        .map(|p| points.column(p).map(|c| c.as_materialized_series().clone()))
        .collect::<Result<_, _>>()?;
    let mut rows: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for (row, run) in runs.iter().enumerate() {
        rows.entry(run.point_id).or_default().push(row);
    }
    let mut out = Vec::new();
    for (id, members) in rows {
        let first = members[0];
        let mut p = PointSummary { point_id: id, runs: members.len(), ..Default::default() };
        for (name, s) in params.iter().zip(&param_series) {
            let v = s.get(first).context("reading a parameter")?;
            let text = if v.is_null() { "-".to_string() } else { v.str_value().to_string() };
            p.params.push((name.clone(), text));
        }
        let ok: Vec<usize> = members.iter().copied().filter(|&r| runs[r].error.is_none()).collect();
        p.ok_runs = ok.len();
        for &r in &members {
            if let Some(e) = &runs[r].error
                && !p.errors.contains(e)
            {
                p.errors.push(e.clone());
            }
        }
        p.unverifiable = members.iter().all(|&r| checks[r].as_deref() == Some(unverifiable_check));
        let spread = |f: &dyn Fn(&RunMetrics) -> Option<f64>| {
            Spread::of(&ok.iter().filter_map(|&r| f(&runs[r])).collect::<Vec<_>>())
        };
        let median = |f: &dyn Fn(&RunMetrics) -> Option<f64>| spread(f).map(|s| s.median);
        p.makespan_ms = spread(&|m| m.makespan_ns.map(|v| v as f64 * 1e-6));
        p.gflops = spread(&|m| m.gflops);
        p.data_bytes = median(&|m| Some(m.data_bytes as f64));
        p.data_messages = median(&|m| Some(m.data_messages as f64));
        p.control_messages = median(&|m| Some(m.control_messages as f64));
        p.control_bytes = median(&|m| Some(m.control_bytes as f64));
        p.latency_p50_us = median(&|m| m.latency_p50_ns.map(|v| v * 1e-3));
        p.latency_p99_us = median(&|m| m.latency_p99_ns.map(|v| v * 1e-3));
        p.overlap = median(&|m| m.overlap);
        p.critical_path_ms = median(&|m| m.critical_path_ns.map(|v| v as f64 * 1e-6));
        p.busy_fraction = median(&|m| {
            (!m.busy_fraction.is_empty()).then(|| m.busy_fraction.iter().sum::<f64>() / m.busy_fraction.len() as f64)
        });
        p.imbalance = median(&|m| m.imbalance);
        for (name, values) in figure_cols.iter().zip(&figure_values) {
            if let Some(s) = Spread::of(&ok.iter().filter_map(|&r| values[r]).collect::<Vec<_>>()) {
                p.figures.push((name.clone(), s));
            }
        }
        out.push(p);
    }
    Ok(out)
}
