//! The summary table printed at the end of `experiment run`: one line per point,
//! medians over repetitions (workload figures such as `micro.latency_us` included),
//! read back from the written tables (so a resumed sweep shows every point, not just
//! this session's).

use anyhow::{Context, Result};
use dagwire_analysis::point_summary::is_figure_column;
use dagwire_analysis::tables;
use polars::prelude::{DataFrame, DataType};
use std::collections::BTreeMap;
use std::path::Path;

/// Parameter columns always shown, whether or not they vary.
const ALWAYS: &[&str] = &["ranks"];

/// Renders the summary of the results in `dir`.
pub fn render(dir: &Path) -> Result<String> {
    let df = tables::read_points(dir)?;
    let (shown, figures) = shown_columns(&df)?;
    let ids = numbers(&df, "point_id")?;
    let mut groups: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (row, id) in ids.iter().enumerate() {
        groups.entry(id.unwrap_or(f64::NAN) as u64).or_default().push(row);
    }
    let makespan = numbers(&df, "makespan_ns")?;
    let gflops = numbers(&df, "gflops")?;
    let bytes = numbers(&df, "data_bytes")?;
    let msgs: Vec<Option<f64>> = numbers(&df, "data_messages")?
        .iter()
        .zip(numbers(&df, "control_messages")?)
        .map(|(d, c)| Some(d.unwrap_or(0.0) + c.unwrap_or(0.0)))
        .collect();
    let verified = df.column("verified")?.bool().context("column verified")?.clone();
    let checks = df.column("check_metric")?.as_materialized_series().clone();
    let mut header: Vec<String> = vec!["point".into()];
    header.extend(shown.iter().cloned());
    header.extend(figures.iter().cloned());
    header.extend(["makespan ms", "GFLOP/s", "data MB", "messages", "verified"].map(String::from));
    let figure_values = figures.iter().map(|f| numbers(&df, f)).collect::<Result<Vec<_>>>()?;
    let mut rows = vec![header];
    for (id, members) in &groups {
        let mut row = vec![id.to_string()];
        for col in &shown {
            let s = df.column(col)?.as_materialized_series().clone();
            let value = s.str_value(members[0]).map(|v| v.to_string()).unwrap_or_default();
            row.push(match value.parse::<f64>() {
                _ if value == "null" => "-".into(),
                Ok(v) if value.contains('.') => format!("{v:.2}"),
                _ => value,
            });
        }
        for values in &figure_values {
            row.push(fmt(median(members, values), 2));
        }
        let ok = members.iter().filter(|&&r| verified.get(r) == Some(true)).count();
        row.push(fmt(median(members, &makespan).map(|v| v * 1e-6), 2));
        row.push(fmt(median(members, &gflops), 2));
        row.push(fmt(median(members, &bytes).map(|v| v * 1e-6), 2));
        row.push(fmt(median(members, &msgs), 0));
        let skipped = members.iter().all(|&r| checks.str_value(r).is_ok_and(|v| v == crate::runner::SKIPPED));
        row.push(match () {
            _ if skipped => "skipped".into(),
            _ if ok == members.len() => "yes".into(),
            _ => format!("NO ({ok}/{})", members.len()),
        });
        rows.push(row);
    }
    Ok(table(&rows))
}

/// Parameter columns that differ between points (plus [`ALWAYS`]), and workload
/// figure columns that hold a value somewhere, in table order.
fn shown_columns(df: &DataFrame) -> Result<(Vec<String>, Vec<String>)> {
    let (mut shown, mut figures) = (Vec::new(), Vec::new());
    for name in df.get_column_names() {
        let name = name.as_str();
        let column = df.column(name)?.as_materialized_series();
        if is_figure_column(name) {
            if column.null_count() < column.len() {
                figures.push(name.to_string());
            }
            continue;
        }
        if !(crate::sweep::CORE_AXES.contains(&name) || name.contains('.')) {
            continue;
        }
        // Columns set for only some points differ by nulls alone: those are not worth a column.
        let distinct = column.drop_nulls().n_unique().unwrap_or(2);
        if ALWAYS.contains(&name) || distinct > 1 {
            shown.push(name.to_string());
        }
    }
    Ok((shown, figures))
}

fn numbers(df: &DataFrame, name: &str) -> Result<Vec<Option<f64>>> {
    let s = df.column(name).with_context(|| format!("points table has no column {name}"))?;
    let s = s.as_materialized_series().cast(&DataType::Float64)?;
    Ok(s.f64()?.iter().collect())
}

fn median(rows: &[usize], values: &[Option<f64>]) -> Option<f64> {
    let mut v: Vec<f64> = rows.iter().filter_map(|&r| values[r]).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 { v[mid] } else { (v[mid - 1] + v[mid]) / 2.0 })
}

fn fmt(v: Option<f64>, decimals: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.decimals$}"))
}

/// Left-aligned text columns, right-aligned numbers.
fn table(rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..rows[0].len()).map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(
                |(cell, w)| {
                    if i > 0 && cell.parse::<f64>().is_ok() { format!("{cell:>w$}") } else { format!("{cell:<w$}") }
                },
            )
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}
