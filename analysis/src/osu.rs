//! The micro benchmarks' results as OSU-shaped text tables, since that is what HPC
//! users compare against: size in bytes; latency in µs; bandwidth in MB/s (10^6
//! bytes per second); for the collectives, the average, minimum and maximum over
//! ranks (as `osu_alltoall -f`). Values are medians over repetitions.

use crate::compare::short;
use crate::point_summary::PointSummary;
use std::collections::BTreeMap;

/// One OSU table: a header comment and rows by size.
#[derive(Clone, Debug, PartialEq)]
pub struct OsuTable {
    /// What ran: `pingpong, strategy=eager driver=local ranks=2`.
    pub title: String,
    /// The column header line (without the leading `# `).
    pub columns: Vec<String>,
    /// `(size in bytes, values)`, by size.
    pub rows: Vec<(u64, Vec<f64>)>,
}

impl OsuTable {
    /// The table as OSU prints it.
    ///
    /// ```
    /// use dagwire_analysis::osu::OsuTable;
    /// let t = OsuTable { title: "pingpong".into(), columns: vec!["Size".into(), "Latency (us)".into()], rows: vec![(8, vec![1.234])] };
    /// assert_eq!(t.render(), "# dagwire pingpong\n# Size      Latency (us)\n8                   1.23\n");
    /// ```
    pub fn render(&self) -> String {
        let mut out = format!("# dagwire {}\n# {:<10}", self.title, self.columns[0]);
        for c in &self.columns[1..] {
            out.push_str(&format!("{c:>12}"));
        }
        out = out.trim_end().to_string();
        out.push('\n');
        for (size, values) in &self.rows {
            out.push_str(&format!("{size:<12}"));
            for v in values {
                out.push_str(&format!("{:>w$.2}", v, w = 12.max(self.columns[1].len())));
            }
            out.push('\n');
        }
        out
    }
}

/// The OSU tables of the micro points among `points`, one per pattern and setting
/// of the other `varying` parameters (sizes are rows). Failed points are left out
/// (the report lists them separately).
///
/// ```
/// use dagwire_analysis::{Spread, osu::osu_tables, point_summary::PointSummary};
/// let p = |size: &str, us: f64| PointSummary {
///     params: vec![("workload".into(), "micro".into()), ("micro.pattern".into(), "pingpong".into()), ("micro.size".into(), size.into())],
///     runs: 1, ok_runs: 1,
///     figures: vec![("micro.latency_us".into(), Spread::of(&[us]).unwrap())],
///     ..Default::default()
/// };
/// let tables = osu_tables(&[p("8", 1.5), p("1", 1.0)], &["micro.size".into()]);
/// assert_eq!(tables[0].rows, [(1, vec![1.0]), (8, vec![1.5])]);
/// ```
pub fn osu_tables(points: &[PointSummary], varying: &[String]) -> Vec<OsuTable> {
    let mut groups: BTreeMap<String, OsuTable> = BTreeMap::new();
    for p in points.iter().filter(|p| !p.failed() && p.param("workload") == Some("micro")) {
        let Some(size) = p.param("micro.size").and_then(|s| s.parse::<u64>().ok()) else { continue };
        let pattern = p.param("micro.pattern").unwrap_or("micro");
        let (columns, values): (Vec<&str>, Vec<f64>) = if let Some(s) = p.figure("latency_us") {
            (vec!["Latency (us)"], vec![s.median])
        } else if let Some(s) = p.figure("bandwidth_mbps") {
            (vec!["Bandwidth (MB/s)"], vec![s.median])
        } else if let (Some(a), Some(lo), Some(hi)) = (p.figure("avg_us"), p.figure("min_us"), p.figure("max_us")) {
            (vec!["Avg Latency(us)", "Min Latency(us)", "Max Latency(us)"], vec![a.median, lo.median, hi.median])
        } else {
            continue;
        };
        let others: Vec<String> = varying
            .iter()
            .filter(|k| *k != "micro.size" && *k != "micro.pattern")
            .filter_map(|k| p.param(k).map(|v| format!("{}={v}", short(k))))
            .collect();
        let title = if others.is_empty() { pattern.to_string() } else { format!("{pattern}, {}", others.join(" ")) };
        let table = groups.entry(title.clone()).or_insert_with(|| OsuTable {
            title,
            columns: std::iter::once("Size").chain(columns.iter().copied()).map(String::from).collect(),
            rows: Vec::new(),
        });
        table.rows.push((size, values));
    }
    let mut out: Vec<OsuTable> = groups.into_values().collect();
    for t in &mut out {
        t.rows.sort_by_key(|r| r.0);
    }
    out
}
