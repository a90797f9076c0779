//! The report's text: what ran, which strategy wins where, the summary table, the
//! failed points, the figures, the OSU tables and the definitions.

use super::Analysis;
use super::charts::sim_pairs;
use super::doc::Block;
use crate::compare::{TIE, short};
use crate::figures::Drawn;
use crate::stats::Spread;

/// The blocks of the report of `a`, with its `figures`.
pub fn blocks(a: &Analysis, figures: &[Drawn]) -> Vec<Block> {
    let m = &a.results.manifest;
    let mut b = vec![Block::Heading(1, format!("dagwire report: {}", m.sweep_name))];
    if let Some(d) = &m.description {
        b.push(Block::Para(d.clone()));
    }
    let runs = a.runs.len();
    let failed = a.runs.iter().filter(|r| r.error.is_some()).count();
    let failed_points = a.points.iter().filter(|p| p.failed()).count();
    b.push(Block::Para(format!(
        "{} points, {runs} runs{}. Results directory: `{}`.",
        a.points.len(),
        match failed {
            0 => ", all successful".to_string(),
            n => format!(", **{n} failed or did not verify** ({failed_points} points failed in every repetition; see Failed runs)"),
        },
        a.results.path.display()
    )));

    b.push(Block::Heading(2, "What ran".into()));
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let num = |v: Option<u64>| v.map_or("-".into(), |v| v.to_string());
    let mut rows = vec![
        vec!["sweep".into(), m.sweep_name.clone()],
        vec!["sweep file".into(), opt(&m.sweep_path)],
        vec!["seed".into(), num(m.seed)],
        vec!["repetitions".into(), num(m.repetitions)],
        vec!["points".into(), num(m.points)],
        vec!["status".into(), m.status.clone()],
        vec!["started".into(), opt(&m.started_at)],
        vec!["finished".into(), opt(&m.finished_at)],
        vec!["host".into(), format!("{} ({} cores)", opt(&m.host), num(m.cores))],
        vec!["dagwire".into(), format!("{} at {}", opt(&m.tool_version), opt(&m.git_revision))],
    ];
    if !a.varying.is_empty() {
        rows.push(vec!["varying".into(), a.varying.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")]);
    }
    b.push(Block::Table(vec!["".into(), "".into()], rows));
    if m.status != "complete" {
        b.push(Block::Para(format!(
            "**This sweep did not finish** (status `{}`): the report covers the runs recorded so far; `experiment run --resume --out DIR` continues it.",
            m.status
        )));
    }
    if let Some(text) = &m.sweep_text {
        b.push(Block::Folded("The sweep file".into(), text.clone()));
    }

    b.push(Block::Heading(2, "Which strategy wins where".into()));
    b.push(Block::List(a.verdicts.clone()));
    let merit_note = "Judged by the median over repetitions of the makespan (the micro benchmarks: latency, or bandwidth), within each configuration: equal values of every varying parameter other than the strategy. The margin is relative to the runner-up's median.";
    b.push(Block::Para(merit_note.into()));

    b.push(Block::Heading(2, "Summary".into()));
    b.push(summary_table(a));
    b.push(Block::Para(peak_note(a)));

    let failed: Vec<Vec<String>> = a
        .runs
        .iter()
        .filter_map(|r| {
            let e = r.error.as_ref()?;
            Some(vec![r.point_id.to_string(), r.repetition.to_string(), point_label(a, r.point_id), e.clone()])
        })
        .collect();
    b.push(Block::Heading(2, "Failed runs".into()));
    if failed.is_empty() {
        b.push(Block::Para("None: every run finished and passed its check.".into()));
    } else {
        b.push(Block::Para(format!(
            "{} runs failed or did not verify; they are left out of the medians and figures above and below.",
            failed.len()
        )));
        b.push(Block::Table(vec!["point".into(), "rep".into(), "parameters".into(), "error".into()], failed));
    }

    let pairs = sim_pairs(a);
    if !pairs.is_empty() {
        b.push(Block::Heading(2, "Simulation against measurement".into()));
        b.push(Block::Para("Each simulated point against the real point with the same parameters (other than the driver and the simulator's own). The error is only a prediction error if the simulated machine (`sim.machine`) models the machine the real runs used, for example a machine file calibrated on it; otherwise it measures how different the two machines are.".into()));
        let p50 = |p: &crate::point_summary::PointSummary| p.latency_p50_us.map_or("-".into(), |v| format!("{v:.2}"));
        let p50_error = |real: &crate::point_summary::PointSummary, sim: &crate::point_summary::PointSummary| match (
            real.latency_p50_us,
            sim.latency_p50_us,
        ) {
            (Some(r), Some(s)) if r > 0.0 => format!("{:+.1}", (s - r) / r * 100.0),
            _ => "-".into(),
        };
        // The workload's own figures (the micro benchmarks' latency or bandwidth: medians
        // over iterations, which a makespan's warm-up and first calls blur).
        let with_figures = pairs.iter().any(|(real, sim)| figure_error(real, sim).is_some());
        let rows = pairs
            .iter()
            .filter_map(|(real, sim)| {
                let (r, s) = (real.makespan_ms?.median, sim.makespan_ms?.median);
                let mut row = vec![
                    sim.point_id.to_string(),
                    real.point_id.to_string(),
                    point_label(a, sim.point_id),
                    format!("{r:.3}"),
                    format!("{s:.3}"),
                    format!("{:+.1}", (s - r) / r * 100.0),
                    format!("{} / {}", p50(real), p50(sim)),
                    p50_error(real, sim),
                ];
                if with_figures {
                    row.push(figure_error(real, sim).unwrap_or_else(|| "-".into()));
                }
                Some(row)
            })
            .collect();
        let mut header: Vec<String> = [
            "sim point",
            "real point",
            "parameters",
            "measured ms",
            "simulated ms",
            "error %",
            "transfer p50 µs measured / simulated",
            "p50 error %",
        ]
        .map(String::from)
        .to_vec();
        if with_figures {
            header.push("figure: measured / simulated (error %)".into());
        }
        b.push(Block::Table(header, rows));
        let rankings = ranking_matches(&pairs);
        if !rankings.is_empty() {
            b.push(Block::Para("Whether the simulator ranks the strategies as the real runs do (by median makespan, fastest first), per configuration with at least two strategies on both sides. Only the pairs the real runs tell apart are judged (medians at least 0.1 % apart and the repetitions' ranges disjoint); the others are named as ties:".into()));
            b.push(Block::Table(
                ["configuration", "measured order", "simulated order", "matches"].map(String::from).to_vec(),
                rankings,
            ));
        }
    }

    b.push(Block::Heading(2, "Figures".into()));
    b.extend(figures.iter().cloned().map(Block::Figure));

    if !a.osu.is_empty() {
        b.push(Block::Heading(2, "Micro benchmarks, OSU format".into()));
        b.push(Block::Para("Medians over repetitions. Size in bytes, latency in µs, bandwidth in MB/s (10^6 bytes per second). Ping-pong and bandwidth are measured on rank 0 alone, as osu_latency and osu_bw do, so they have one value per size; the collectives give the average, minimum and maximum over ranks of the per-rank mean iteration time. Also in `osu.txt`.".into()));
        b.push(Block::Code(a.osu.iter().map(|t| t.render()).collect::<Vec<_>>().join("\n")));
    }

    b.push(Block::Heading(2, "Definitions".into()));
    b.push(Block::List(vec![
        "**makespan**: from the common start of the ranks to the last rank finishing (virtual time for the simulator).".into(),
        "**CI95**: 95% confidence interval of the mean over repetitions (Student t); shown when a point ran at least twice.".into(),
        "**data / control**: messages carrying chunk bytes / protocol-only messages (ready-to-send, clear-to-send, notifications).".into(),
        "**transfer p50 / p99**: percentiles of the transfer latency (posted on the producer to usable on the reader), per run, then the median over repetitions.".into(),
        "**overlap**: of the time a rank had data coming in (a transfer to it between its start and completion), the fraction during which it also ran a kernel: communication hidden under compute.".into(),
        "**makespan / critical path**: the critical path is the longest chain of measured kernel durations through the DAG; the ratio (≥ 1) is what communication, waiting and scheduling added.".into(),
        "**busy**: mean over ranks of the kernel time over makespan × workers. **imbalance**: the largest per-rank kernel time over the mean (1.00 = balanced).".into(),
    ]));
    b
}

fn point_label(a: &Analysis, id: i64) -> String {
    let Some(p) = a.points.iter().find(|p| p.point_id == id) else { return String::new() };
    let keys: Vec<&String> = a.varying.iter().collect();
    let parts: Vec<String> = keys.iter().filter_map(|k| p.param(k).map(|v| format!("{}={v}", short(k)))).collect();
    if parts.is_empty() { "the only point".into() } else { parts.join(" ") }
}

fn spread_cell(s: Option<Spread>, digits: usize) -> String {
    match s {
        None => "-".into(),
        Some(s) => match s.ci95 {
            Some((lo, hi)) if s.n > 1 => format!("{:.digits$} [{lo:.digits$}, {hi:.digits$}]", s.median),
            _ => format!("{:.digits$}", s.median),
        },
    }
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.digits$}"))
}

fn summary_table(a: &Analysis) -> Block {
    let mut header: Vec<String> = vec!["point".into()];
    header.extend(a.varying.iter().map(|k| short(k).to_string()));
    let micro = a.points.iter().any(|p| !p.figures.is_empty());
    header.extend(
        [
            "runs ok",
            "makespan ms (median [CI95])",
            "GFLOP/s",
            "data MB",
            "data msgs",
            "control msgs",
            "transfer p50 µs",
            "p99 µs",
            "overlap %",
            "makespan / crit. path",
            "busy %",
            "imbalance",
        ]
        .map(String::from),
    );
    if micro {
        header.push("figures".into());
    }
    header.push("status".into());
    let rows = a
        .points
        .iter()
        .map(|p| {
            let mut row = vec![p.point_id.to_string()];
            row.extend(a.varying.iter().map(|k| p.param(k).unwrap_or("-").to_string()));
            let ratio = match (p.makespan_ms, p.critical_path_ms) {
                (Some(m), Some(c)) if c > 0.0 => format!("{:.2}", m.median / c),
                _ => "-".into(),
            };
            row.extend([
                format!("{}/{}", p.ok_runs, p.runs),
                spread_cell(p.makespan_ms, 3),
                opt(p.gflops.map(|s| s.median), 2),
                opt(p.data_bytes.map(|v| v * 1e-6), 2),
                opt(p.data_messages, 0),
                opt(p.control_messages, 0),
                opt(p.latency_p50_us, 1),
                opt(p.latency_p99_us, 1),
                opt(p.overlap.map(|v| v * 100.0), 1),
                ratio,
                opt(p.busy_fraction.map(|v| v * 100.0), 1),
                opt(p.imbalance, 2),
            ]);
            if micro {
                let figs: Vec<String> = p
                    .figures
                    .iter()
                    .map(|(k, s)| format!("{} {}", short(k), crate::figures::style::si(s.median)))
                    .collect();
                row.push(figs.join(", "));
            }
            row.push(if p.failed() {
                "FAILED".into()
            } else if p.ok_runs < p.runs {
                "some runs failed".into()
            } else if p.unverifiable {
                "not verifiable (cost model)".into()
            } else {
                "verified".into()
            });
            row
        })
        .collect();
    Block::Table(header, rows)
}

fn peak_note(a: &Analysis) -> String {
    let any = a.points.iter().any(|p| p.gflops.is_some());
    if any {
        "GFLOP/s are the workload's flops over the makespan. No measured peak is recorded in this results directory, so they are not given as a fraction of peak; `experiment bench cholesky` measures the same kernels' one-call speed on this machine for comparison.".into()
    } else {
        "No point counts flops (or none finished), so there are no GFLOP/s figures.".into()
    }
}

/// Per configuration (every parameter but the strategy's, the driver's and the
/// simulator's), the strategies ordered by measured and by simulated median makespan,
/// and whether the orders agree: on every pair of strategies the real runs tell apart
/// (see [`measured_apart`]); the pairs they cannot are named as ties and not judged.
fn ranking_matches(
    pairs: &[(&crate::point_summary::PointSummary, &crate::point_summary::PointSummary)],
) -> Vec<Vec<String>> {
    use std::collections::BTreeMap;
    let strategy_of = |p: &crate::point_summary::PointSummary| -> String {
        let name = p.param("strategy").unwrap_or("?").to_string();
        let own: Vec<String> = p
            .params
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("{name}.")))
            .map(|(k, v)| format!("{}={v}", k.split_once('.').map_or(k.as_str(), |(_, s)| s)))
            .collect();
        if own.is_empty() { name } else { format!("{name} {}", own.join(" ")) }
    };
    // The configuration: the core axes and the workload's parameters (every strategy's
    // and driver's own columns left out; a point has the others' as empty columns).
    let config_of = |p: &crate::point_summary::PointSummary| -> String {
        let workload = format!("{}.", p.param("workload").unwrap_or("?"));
        p.params
            .iter()
            .filter(|(k, _)| k != "driver" && k != "strategy" && (!k.contains('.') || k.starts_with(&workload)))
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut groups: BTreeMap<String, Vec<(String, Spread, f64)>> = BTreeMap::new();
    for (real, sim) in pairs {
        if let (Some(r), Some(s)) = (real.makespan_ms, sim.makespan_ms) {
            groups.entry(config_of(sim)).or_default().push((strategy_of(sim), r, s.median));
        }
    }
    groups
        .into_iter()
        .filter(|(_, v)| v.len() >= 2)
        .map(|(config, mut v)| {
            v.sort_by(|a, b| a.1.median.total_cmp(&b.1.median));
            let measured: Vec<String> = v.iter().map(|x| x.0.clone()).collect();
            let (mut agree, mut ties) = (true, Vec::new());
            for (i, a) in v.iter().enumerate() {
                for b in &v[i + 1..] {
                    // `a` measured faster than `b`.
                    if !measured_apart(&a.1, &b.1) {
                        ties.push(format!("{} ≈ {}", a.0, b.0));
                    } else if b.2 - a.2 < TIE * a.2 {
                        agree = false; // simulated slower, or a simulated tie
                    }
                }
            }
            v.sort_by(|a, b| a.2.total_cmp(&b.2));
            let simulated: Vec<String> = v.iter().map(|x| x.0.clone()).collect();
            let verdict = match (agree, ties.is_empty()) {
                (false, _) => "no".to_string(),
                (true, true) => "yes".to_string(),
                (true, false) => format!("yes (not told apart by the real runs: {})", ties.join(", ")),
            };
            vec![config, measured.join(" < "), simulated.join(" < "), verdict]
        })
        .collect()
}

/// The first workload figure both points have, as `name measured / simulated (error %)`.
fn figure_error(real: &crate::point_summary::PointSummary, sim: &crate::point_summary::PointSummary) -> Option<String> {
    sim.figures.iter().find_map(|(name, s)| {
        let r = real.figures.iter().find(|(n, _)| n == name)?.1;
        let error =
            if r.median != 0.0 { format!("{:+.1}", (s.median - r.median) / r.median * 100.0) } else { "-".into() };
        let short = name.rsplit_once('.').map_or(name.as_str(), |(_, n)| n);
        // Four significant digits or so, whatever the unit's scale.
        let v = |x: f64| {
            format!(
                "{x:.*}",
                if x.abs() >= 100.0 {
                    1
                } else if x.abs() >= 10.0 {
                    2
                } else {
                    3
                }
            )
        };
        Some(format!("{short} {} / {} ({error})", v(r.median), v(s.median)))
    })
}

/// Whether the real runs tell two strategies apart: their medians differ by at least
/// [`TIE`] and the ranges of their repetitions (min to max) do not overlap. (Their 95 %
/// intervals would overlap for nearly any pair at the two or three repetitions a
/// validation sweep runs; a single run each is told apart by its value.)
fn measured_apart(a: &Spread, b: &Spread) -> bool {
    let tie = (a.median - b.median).abs() < TIE * a.median.abs().max(b.median.abs());
    !tie && (a.max < b.min || b.max < a.min)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::point_summary::PointSummary;

    fn point(id: i64, strategy: &str, driver: &str, runs: &[f64]) -> PointSummary {
        PointSummary {
            point_id: id,
            params: vec![
                ("driver".into(), driver.into()),
                ("strategy".into(), strategy.into()),
                ("cholesky.tile".into(), "128".into()),
                ("workload".into(), "cholesky".into()),
            ],
            makespan_ms: Spread::of(runs),
            ..Default::default()
        }
    }

    /// The verdict for three strategies measured as `real` (runs per strategy) and
    /// simulated as `sim` (one value each).
    fn verdict(real: [&[f64]; 3], sim: [f64; 3]) -> String {
        let names = ["eager", "rendezvous", "rma"];
        let reals: Vec<PointSummary> = (0..3).map(|i| point(i, names[i as usize], "mpi", real[i as usize])).collect();
        let sims: Vec<PointSummary> =
            (0..3).map(|i| point(10 + i, names[i as usize], "sim", &[sim[i as usize]])).collect();
        let pairs: Vec<_> = reals.iter().zip(&sims).collect();
        let rows = ranking_matches(&pairs);
        assert_eq!(rows.len(), 1, "{rows:?}");
        rows[0][3].clone()
    }

    #[test]
    fn a_ranking_is_judged_on_the_pairs_the_real_runs_tell_apart() {
        // Clearly apart everywhere, same order: yes; one pair swapped: no.
        assert_eq!(verdict([&[10.0, 10.2], &[12.0, 12.1], &[15.0, 15.5]], [9.0, 11.0, 14.0]), "yes");
        assert_eq!(verdict([&[10.0, 10.2], &[12.0, 12.1], &[15.0, 15.5]], [11.5, 11.0, 14.0]), "no");
        // A simulated tie on a pair the real runs separate is not a match either.
        assert_eq!(verdict([&[10.0, 10.2], &[12.0, 12.1], &[15.0, 15.5]], [11.0, 11.0, 14.0]), "no");
        // Eager and rendezvous overlap in the real runs (91.0-94.0 against 90.5-93.0): their
        // simulated order is not judged, the separated pairs still are.
        let tie = verdict([&[91.0, 94.0], &[90.5, 93.0], &[150.0, 152.0]], [82.6, 82.7, 140.0]);
        assert_eq!(tie, "yes (not told apart by the real runs: rendezvous ≈ eager)");
        assert_eq!(verdict([&[91.0, 94.0], &[90.5, 93.0], &[150.0, 152.0]], [82.6, 160.0, 140.0]), "no");
        // One run each: told apart by their values unless within the tie fraction.
        assert_eq!(
            verdict([&[10.0], &[10.005], &[12.0]], [10.0, 9.0, 12.0]),
            "yes (not told apart by the real runs: eager ≈ rendezvous)"
        );
    }

    #[test]
    fn a_workload_figure_is_compared_when_both_points_have_it() {
        let mut real = point(0, "eager", "mpi", &[1.2]);
        let mut sim = point(1, "eager", "sim", &[0.7]);
        assert_eq!(figure_error(&real, &sim), None);
        real.figures = vec![("micro.latency_us".into(), Spread::of(&[2.0, 2.2]).unwrap())];
        sim.figures = vec![("micro.latency_us".into(), Spread::of(&[1.575]).unwrap())];
        assert_eq!(figure_error(&real, &sim).as_deref(), Some("latency_us 2.100 / 1.575 (-25.0)"));
        sim.figures = vec![("micro.bandwidth_mbps".into(), Spread::of(&[900.0]).unwrap())];
        assert_eq!(figure_error(&real, &sim), None, "no figure in common");
    }
}
