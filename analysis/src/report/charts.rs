//! Which figures a results directory gets, built from its analysis: each is drawn,
//! or skipped with the reason.

use super::Analysis;
use crate::compare::{Merit, contender, short};
use crate::figures::bars::{Bar, BarChart};
use crate::figures::gantt::{Arrow, GanttChart, Slice};
use crate::figures::load::LoadChart;
use crate::figures::xy::{Series, XyChart, XyPoint};
use crate::figures::{Drawn, render};
use crate::point_summary::PointSummary;
use crate::run_metrics::{ints, strs};
use std::collections::BTreeMap;
use std::path::Path;

/// Runs drawn in the timeline have at most this many tasks and lanes.
const GANTT_TASKS: usize = 20_000;
const GANTT_LANES: usize = 32;

const CI_NOTE: &str =
    "whiskers: 95% confidence interval of the mean over repetitions (Student t); none where a point ran once";

/// Every figure of the report, written into `dir`.
pub fn all(a: &Analysis, dir: &Path) -> anyhow::Result<Vec<Drawn>> {
    let mut out = Vec::new();
    out.extend(comparisons(a, dir)?);
    out.extend(workload_figures(a, dir)?);
    out.push(scaling(a, dir)?);
    out.extend(micro(a, dir)?);
    out.push(timeline(a, dir)?);
    out.push(load(a, dir)?);
    out.push(sim_vs_real(a, dir)?);
    Ok(out)
}

fn skipped(title: &str, reason: impl Into<String>) -> Drawn {
    Drawn::Skipped { title: title.into(), reason: reason.into() }
}

fn ok_points(a: &Analysis) -> impl Iterator<Item = &PointSummary> {
    a.points.iter().filter(|p| !p.failed())
}

fn whisker(s: &crate::Spread) -> Option<(f64, f64)> {
    s.ci95.map(|(lo, hi)| (lo.max(0.0), hi))
}

/// A label of `p`'s values of `keys`: `driver=local tile=128`.
fn label(p: &PointSummary, keys: &[String]) -> String {
    let parts: Vec<String> = keys.iter().filter_map(|k| p.param(k).map(|v| format!("{}={v}", short(k)))).collect();
    if parts.is_empty() { "all points".into() } else { parts.join(" ") }
}

/// Strategy comparison: makespan bars per configuration and contender, per workload.
fn comparisons(a: &Analysis, dir: &Path) -> anyhow::Result<Vec<Drawn>> {
    let title = "Strategy comparison";
    let mut by_workload: BTreeMap<String, Vec<&crate::compare::Configuration>> = BTreeMap::new();
    for c in a.configs.iter().filter(|c| c.merit == Merit::Makespan) {
        let workload = a
            .points
            .iter()
            .find(|p| p.point_id == c.ranking[0].1)
            .and_then(|p| p.param("workload"))
            .unwrap_or("workload");
        by_workload.entry(workload.to_string()).or_default().push(c);
    }
    if by_workload.is_empty() {
        let why = if ok_points(a).next().is_none() {
            "no point finished successfully"
        } else {
            "the sweep has only micro benchmarks (see their latency and bandwidth curves)"
        };
        return Ok(vec![skipped(title, why)]);
    }
    let mut out = Vec::new();
    for (workload, configs) in by_workload {
        let mut series: Vec<String> = Vec::new();
        for c in &configs {
            for r in &c.ranking {
                if !series.contains(&r.0) {
                    series.push(r.0.clone());
                }
            }
        }
        series.sort();
        let mut bars = Vec::new();
        for (g, c) in configs.iter().enumerate() {
            for r in &c.ranking {
                let s = series.iter().position(|x| *x == r.0).unwrap_or(0);
                bars.push(Bar { group: g, series: s, value: r.2.median, whisker: whisker(&r.2) });
            }
        }
        let chart = BarChart {
            title: format!("{workload}: makespan by configuration and strategy"),
            value_label: "makespan (ms), median over repetitions".into(),
            groups: configs.iter().map(|c| c.label()).collect(),
            series: series.clone(),
            bars,
        };
        let caption = format!(
            "Median makespan of each {workload} point, shorter is better; {CI_NOTE}. Rows are the configurations (the varying parameters other than the strategy){}.",
            if series.len() == 1 { format!("; only {} ran", series[0]) } else { String::new() }
        );
        let name = format!("comparison-{workload}");
        out.push(Drawn::Figure(render(&chart, dir, &name, &format!("{title}: {workload}"), &caption)?));
    }
    Ok(out)
}

/// A workload's own figures by configuration and strategy, one chart per figure: GFLOP/s
/// (gemm's by layout, Cholesky's by tile, ...) and every figure column of the workload
/// (dp-train's step time, exposed communication and bus bandwidth by bucket size and
/// all-reduce algorithm, ...), except counts. Micro benchmarks have their own curves.
fn workload_figures(a: &Analysis, dir: &Path) -> anyhow::Result<Vec<Drawn>> {
    let point = |id: i64| a.points.iter().find(|p| p.point_id == id);
    let mut by_workload: BTreeMap<String, Vec<&crate::compare::Configuration>> = BTreeMap::new();
    for c in a.configs.iter().filter(|c| c.merit == Merit::Makespan) {
        if let Some(w) = point(c.ranking[0].1).and_then(|p| p.param("workload")).filter(|w| *w != "micro") {
            by_workload.entry(w.to_string()).or_default().push(c);
        }
    }
    let mut out = Vec::new();
    for (workload, configs) in by_workload {
        let mut names: Vec<String> = vec!["gflops".into()];
        for c in &configs {
            for p in c.ranking.iter().filter_map(|r| point(r.1)) {
                for (name, _) in p.figures.iter().filter(|(n, _)| !n.ends_with("_count")) {
                    if !names.contains(name) {
                        names.push(name.clone());
                    }
                }
            }
        }
        let value = |p: &PointSummary, name: &str| {
            if name == "gflops" { p.gflops.as_ref() } else { p.figures.iter().find(|(n, _)| n == name).map(|(_, s)| s) }
                .map(|s| (s.median, whisker(s)))
        };
        let mut series: Vec<String> = configs.iter().flat_map(|c| c.ranking.iter().map(|r| r.0.clone())).collect();
        series.sort();
        series.dedup();
        for name in names {
            let mut bars = Vec::new();
            for (g, c) in configs.iter().enumerate() {
                for r in &c.ranking {
                    if let Some((median, whisker)) = point(r.1).and_then(|p| value(p, &name)) {
                        let s = series.iter().position(|x| *x == r.0).unwrap_or(0);
                        bars.push(Bar { group: g, series: s, value: median, whisker });
                    }
                }
            }
            if bars.is_empty() {
                continue;
            }
            let unit = short(&name);
            let chart = BarChart {
                title: format!("{workload}: {unit} by configuration and strategy"),
                value_label: format!("{unit}, median over repetitions"),
                groups: configs.iter().map(|c| c.label()).collect(),
                series: series.clone(),
                bars,
            };
            let caption = format!(
                "The {workload} figure `{name}` (see the results schema) of each point; {CI_NOTE}. Rows are the configurations (the varying parameters other than the strategy)."
            );
            let file = format!("figure-{workload}-{unit}");
            let title = format!("{workload}: {unit}");
            out.push(Drawn::Figure(render(&chart, dir, &file, &title, &caption)?));
        }
    }
    Ok(out)
}

/// Makespan over ranks, one line per contender and setting of the other parameters.
fn scaling(a: &Analysis, dir: &Path) -> anyhow::Result<Drawn> {
    let title = "Scaling over ranks";
    let pts: Vec<&PointSummary> = ok_points(a).filter(|p| p.param("workload") != Some("micro")).collect();
    let mut ranks: Vec<f64> = pts.iter().filter_map(|p| p.param("ranks")?.parse().ok()).collect();
    ranks.sort_by(f64::total_cmp);
    ranks.dedup();
    if ranks.len() < 2 {
        let why = match ranks.first() {
            Some(r) => format!("every successful point ran on {r} ranks, so there is no scaling to show"),
            None => "no successful point of a non-micro workload".into(),
        };
        return Ok(skipped(title, why));
    }
    let others: Vec<String> = a
        .varying
        .iter()
        .filter(|k| *k != "ranks" && *k != "strategy")
        .filter(|k| !a.points.iter().any(|p| p.param("strategy").is_some_and(|s| k.starts_with(&format!("{s}.")))))
        .cloned()
        .collect();
    let mut series: BTreeMap<String, Vec<XyPoint>> = BTreeMap::new();
    for p in &pts {
        let (Some(r), Some(m)) = (p.param("ranks").and_then(|r| r.parse::<f64>().ok()), p.makespan_ms) else {
            continue;
        };
        let rest = label(p, &others);
        let name =
            if others.is_empty() { contender(p, &a.varying) } else { format!("{} {rest}", contender(p, &a.varying)) };
        series.entry(name).or_default().push((r, m.median, whisker(&m)));
    }
    let mut list: Vec<Series> = series
        .into_iter()
        .map(|(name, mut points)| {
            points.sort_by(|x, y| x.0.total_cmp(&y.0));
            Series { name, points }
        })
        .collect();
    list.retain(|s| !s.points.is_empty());
    let spread = ranks[ranks.len() - 1] / ranks[0];
    let ys: Vec<f64> = list.iter().flat_map(|s| s.points.iter().map(|p| p.1)).filter(|v| *v > 0.0).collect();
    let y_spread = ys.iter().copied().fold(0.0, f64::max) / ys.iter().copied().fold(f64::INFINITY, f64::min);
    let chart = XyChart {
        title: "Makespan over ranks".into(),
        x_label: "ranks".into(),
        y_label: "makespan (ms), median".into(),
        log_x: spread >= 8.0,
        log_y: y_spread >= 10.0,
        lines: true,
        diagonal: false,
        series: list,
    };
    let caption = format!(
        "Median makespan against the number of ranks, one line per strategy and setting of the other varying parameters; {CI_NOTE}."
    );
    Ok(Drawn::Figure(render(&chart, dir, "scaling", title, &caption)?))
}

/// Latency and bandwidth against message size (log-log) for the micro benchmarks.
fn micro(a: &Analysis, dir: &Path) -> anyhow::Result<Vec<Drawn>> {
    let pts: Vec<&PointSummary> = ok_points(a).filter(|p| p.param("workload") == Some("micro")).collect();
    let kinds = [
        (
            "micro-latency",
            "Latency against message size",
            "latency_us",
            "latency (µs), one way",
            "Ping-pong one-way latency (half a round trip, as osu_latency) and the collectives' average iteration time, against message size; log-log, lower is better.",
        ),
        (
            "micro-bandwidth",
            "Bandwidth against message size",
            "bandwidth_mbps",
            "bandwidth (MB/s, 10^6 bytes/s)",
            "Streaming bandwidth (a window of messages then an acknowledgement, as osu_bw) against message size; log-log, higher is better.",
        ),
    ];
    if pts.is_empty() {
        return Ok(kinds.iter().map(|k| skipped(k.1, "no micro benchmark in this sweep")).collect());
    }
    let others: Vec<String> =
        a.varying.iter().filter(|k| *k != "micro.size" && *k != "micro.pattern" && *k != "strategy").cloned().collect();
    let mut out = Vec::new();
    for (name, title, figure, y_label, caption) in kinds {
        let mut series: BTreeMap<String, Vec<XyPoint>> = BTreeMap::new();
        for p in &pts {
            let value = p.figure(figure).or_else(|| if figure == "latency_us" { p.figure("avg_us") } else { None });
            let (Some(size), Some(v)) = (p.param("micro.size").and_then(|s| s.parse::<f64>().ok()), value) else {
                continue;
            };
            let strategy = p.param("strategy").unwrap_or("?");
            let pattern = p.param("micro.pattern").unwrap_or("micro");
            let rest = label(p, &others);
            let key = if others.is_empty() {
                format!("{strategy} ({pattern})")
            } else {
                format!("{strategy} ({pattern}) {rest}")
            };
            series.entry(key).or_default().push((size, v.median, whisker(v)));
        }
        if series.is_empty() {
            out.push(skipped(title, format!("no micro point measured {}", figure.replace('_', " "))));
            continue;
        }
        let list = series
            .into_iter()
            .map(|(name, mut points)| {
                points.sort_by(|x, y| x.0.total_cmp(&y.0));
                Series { name, points }
            })
            .collect();
        let chart = XyChart {
            title: title.into(),
            x_label: "message size (bytes)".into(),
            y_label: y_label.into(),
            log_x: true,
            log_y: true,
            lines: true,
            diagonal: false,
            series: list,
        };
        out.push(Drawn::Figure(render(&chart, dir, name, title, caption)?));
    }
    Ok(out)
}

/// The run shown in the timeline: a successful run with tasks, preferring a
/// non-micro workload, at most [`GANTT_TASKS`] tasks and [`GANTT_LANES`] lanes,
/// then the most ranks, then the lowest point.
fn timeline_run(a: &Analysis) -> Option<(i64, i64)> {
    let tasks = &a.results.tasks;
    let (p, r, rank, worker) = (
        ints(tasks, "point_id").ok()?,
        ints(tasks, "repetition").ok()?,
        ints(tasks, "rank").ok()?,
        ints(tasks, "worker").ok()?,
    );
    type Lanes = std::collections::BTreeSet<(i64, bool, i64)>;
    let mut count: BTreeMap<(i64, i64), (usize, Lanes)> = BTreeMap::new();
    for i in 0..tasks.height() {
        let e = count.entry((p[i]?, r[i]?)).or_default();
        e.0 += 1;
        e.1.insert((rank[i]?, false, worker[i]?));
    }
    // Copy engines of simulated devices are lanes too (a run with copies has tasks).
    let copies = &a.results.copies;
    let (cp, cr, crank, engine) = (
        ints(copies, "point_id").ok()?,
        ints(copies, "repetition").ok()?,
        ints(copies, "rank").ok()?,
        ints(copies, "engine").ok()?,
    );
    for i in 0..copies.height() {
        if let Some(e) = count.get_mut(&(cp[i]?, cr[i]?)) {
            e.1.insert((crank[i]?, true, engine[i]?));
        }
    }
    let micro = |id: i64| a.points.iter().any(|s| s.point_id == id && s.param("workload") == Some("micro"));
    let ok = |k: &(i64, i64)| a.runs.iter().any(|m| (m.point_id, m.repetition) == *k && m.error.is_none());
    count
        .into_iter()
        .filter(|(k, (n, lanes))| *n <= GANTT_TASKS && lanes.len() <= GANTT_LANES && ok(k))
        .max_by_key(|(k, (_, lanes))| (!micro(k.0), lanes.iter().map(|l| l.0).max(), std::cmp::Reverse(*k)))
        .map(|(k, _)| k)
}

/// A per-rank, per-worker timeline of one run, transfers drawn.
fn timeline(a: &Analysis, dir: &Path) -> anyhow::Result<Drawn> {
    let title = "Timeline of one run";
    let Some((pid, rep)) = timeline_run(a) else {
        return Ok(skipped(
            title,
            format!(
                "no successful run has tasks recorded with at most {GANTT_TASKS} tasks and {GANTT_LANES} lanes (rank workers and copy engines)"
            ),
        ));
    };
    let t = &a.results.tasks;
    let (p, r, rank, worker, start, end) = (
        ints(t, "point_id")?,
        ints(t, "repetition")?,
        ints(t, "rank")?,
        ints(t, "worker")?,
        ints(t, "start_ns")?,
        ints(t, "end_ns")?,
    );
    let kernel = strs(t, "kernel")?;
    let rows: Vec<usize> = (0..t.height()).filter(|&i| p[i] == Some(pid) && r[i] == Some(rep)).collect();
    // Lanes: (rank, is a copy engine, worker or engine), each rank's workers (streams) first.
    let mut lanes: Vec<(i64, bool, i64)> =
        rows.iter().map(|&i| (rank[i].unwrap_or(0), false, worker[i].unwrap_or(0))).collect();
    let c = &a.results.copies;
    let (cp, cr, crank, engine, cstart, cend) = (
        ints(c, "point_id")?,
        ints(c, "repetition")?,
        ints(c, "rank")?,
        ints(c, "engine")?,
        ints(c, "start_ns")?,
        ints(c, "end_ns")?,
    );
    let ckind = strs(c, "kind")?;
    let crows: Vec<usize> = (0..c.height()).filter(|&i| cp[i] == Some(pid) && cr[i] == Some(rep)).collect();
    lanes.extend(crows.iter().map(|&i| (crank[i].unwrap_or(0), true, engine[i].unwrap_or(0))));
    lanes.sort();
    lanes.dedup();
    let mut kinds: Vec<String> = rows.iter().filter_map(|&i| kernel[i].clone()).collect();
    kinds.sort();
    kinds.dedup();
    // Copies after the kernels in the legend, one entry per kind.
    let copy_kind = |i: usize| format!("{} copy", ckind[i].as_deref().unwrap_or("?"));
    let mut copy_kinds: Vec<String> = crows.iter().map(|&i| copy_kind(i)).collect();
    copy_kinds.sort();
    copy_kinds.dedup();
    let kernels = kinds.len();
    kinds.extend(copy_kinds.iter().cloned());
    let ms = |ns: Option<i64>| ns.unwrap_or(0) as f64 * 1e-6;
    let mut slices: Vec<Slice> = rows
        .iter()
        .map(|&i| Slice {
            lane: lanes.binary_search(&(rank[i].unwrap_or(0), false, worker[i].unwrap_or(0))).unwrap_or(0),
            start_ms: ms(start[i]),
            end_ms: ms(end[i]),
            kind: kernel[i].as_ref().and_then(|k| kinds[..kernels].binary_search(k).ok()).unwrap_or(0),
        })
        .collect();
    slices.extend(crows.iter().map(|&i| Slice {
        lane: lanes.binary_search(&(crank[i].unwrap_or(0), true, engine[i].unwrap_or(0))).unwrap_or(0),
        start_ms: ms(cstart[i]),
        end_ms: ms(cend[i]),
        kind: kernels + copy_kinds.binary_search(&copy_kind(i)).unwrap_or(0),
    }));
    let first_lane = |rk: i64| lanes.iter().position(|l| l.0 == rk);
    let x = &a.results.transfers;
    let (xp, xr, src, dst) = (ints(x, "point_id")?, ints(x, "repetition")?, ints(x, "src")?, ints(x, "dst")?);
    let (posted, started, wire, done) =
        (ints(x, "posted_ns")?, ints(x, "started_ns")?, ints(x, "wire_ns")?, ints(x, "completed_ns")?);
    let mut arrows = Vec::new();
    for i in (0..x.height()).filter(|&i| xp[i] == Some(pid) && xr[i] == Some(rep)) {
        let from = wire[i].or(started[i]).or(posted[i]);
        if let (Some(s), Some(d), Some(f), Some(c)) =
            (src[i].and_then(first_lane), dst[i].and_then(first_lane), from, done[i])
        {
            arrows.push(Arrow { from: (s, ms(Some(f))), to: (d, ms(Some(c))) });
        }
    }
    let summary = a.points.iter().find(|s| s.point_id == pid);
    let what = summary.map(|s| label(s, &a.varying)).unwrap_or_default();
    let chart = GanttChart {
        title: format!("Point {pid} repetition {rep}: {what}"),
        lanes: lanes
            .iter()
            .map(|&(r, engine, w)| if engine { format!("rank {r} · ce{w}") } else { format!("rank {r} · w{w}") })
            .collect(),
        kinds,
        slices,
        arrows,
    };
    let caption = format!(
        "Every kernel of point {pid} (repetition {rep}) on its rank and worker (w; on simulated accelerators, its device stream), coloured by kernel, and every device copy on its rank's copy engine (ce), coloured by kind; each grey line is one transfer, from the moment its data left the sender (or the protocol started) to the moment it was usable on the receiver (dot). Chosen as the successful run with the most ranks that fits ({GANTT_TASKS} tasks, {GANTT_LANES} lanes at most). For an interactive view: `experiment trace {} --point {pid} --repetition {rep}`.",
        a.results.path.display()
    );
    Ok(Drawn::Figure(render(&chart, dir, "timeline", title, &caption)?))
}

/// Per-rank busy time of the successful run with the most ranks.
fn load(a: &Analysis, dir: &Path) -> anyhow::Result<Drawn> {
    let title = "Load per rank";
    let Some(run) = a
        .runs
        .iter()
        .filter(|m| m.error.is_none() && m.busy_ns.iter().any(|b| *b > 0))
        .max_by_key(|m| (m.busy_ns.len(), std::cmp::Reverse((m.point_id, m.repetition))))
    else {
        return Ok(skipped(title, "no successful run recorded any task"));
    };
    let loads: Vec<f64> = run.busy_ns.iter().map(|b| *b as f64 * 1e-6).collect();
    let chart = LoadChart {
        title: format!("Busy time per rank, point {} repetition {}", run.point_id, run.repetition),
        loads,
        unit: "ms".into(),
        what: "busy time".into(),
    };
    let caption = format!(
        "Sum of kernel durations on each rank of point {} (repetition {}), the successful run with the most ranks ({}); the red line is the mean. Load imbalance = max/mean{}. With more than {} ranks this is a histogram of the per-rank values.",
        run.point_id,
        run.repetition,
        run.busy_ns.len(),
        chart.imbalance().map(|i| format!(" = {i:.2}")).unwrap_or_default(),
        crate::figures::load::BAR_LIMIT
    );
    Ok(Drawn::Figure(render(&chart, dir, "load", title, &caption)?))
}

/// The simulated points paired with the real points that differ only in the driver
/// (and the drivers' own parameters: `sim.*`, `mpi.*`...): `(real, simulated)`.
pub fn sim_pairs(a: &Analysis) -> Vec<(&PointSummary, &PointSummary)> {
    let key = |p: &PointSummary| -> Vec<(String, String)> {
        let workload = format!("{}.", p.param("workload").unwrap_or("?"));
        let strategy = format!("{}.", p.param("strategy").unwrap_or("?"));
        p.params
            .iter()
            .filter(|(k, _)| {
                k != "driver" && (!k.contains('.') || k.starts_with(&workload) || k.starts_with(&strategy))
            })
            .cloned()
            .collect()
    };
    let mut out = Vec::new();
    for sim in ok_points(a).filter(|p| p.param("driver") == Some("sim")) {
        if let Some(real) = ok_points(a).find(|p| p.param("driver") != Some("sim") && key(p) == key(sim)) {
            out.push((real, sim));
        }
    }
    out
}

/// Simulated against real makespan.
fn sim_vs_real(a: &Analysis, dir: &Path) -> anyhow::Result<Drawn> {
    let title = "Simulated against real";
    let pairs = sim_pairs(a);
    if pairs.is_empty() {
        let sims = ok_points(a).any(|p| p.param("driver") == Some("sim"));
        let why = if sims {
            "no simulated point has a real run with the same parameters in this sweep"
        } else {
            "the sweep has no simulated points"
        };
        return Ok(skipped(title, why));
    }
    let mut series: BTreeMap<String, Vec<XyPoint>> = BTreeMap::new();
    for (real, sim) in &pairs {
        if let (Some(x), Some(y)) = (real.makespan_ms.map(|s| s.median), sim.makespan_ms.map(|s| s.median)) {
            let name = format!("{} (real: {})", contender(sim, &a.varying), real.param("driver").unwrap_or("?"));
            series.entry(name).or_default().push((x, y, None));
        }
    }
    let chart = XyChart {
        title: "Simulated against measured".into(),
        x_label: "measured makespan (ms), median".into(),
        y_label: "simulated makespan (ms), median".into(),
        log_x: true,
        log_y: true,
        lines: false,
        diagonal: true,
        series: series.into_iter().map(|(name, points)| Series { name, points }).collect(),
    };
    let caption = "Each dot is a simulated point against the real point with the same parameters (the grey line is y = x: above it the simulator predicts slower than measured); log-log. The prediction errors are in the table above.";
    Ok(Drawn::Figure(render(&chart, dir, "sim-vs-real", title, caption)?))
}
