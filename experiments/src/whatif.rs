//! `experiment whatif`: reruns a sweep's simulated points on changed machines and
//! compares. The parameter algebra (keys, units, validation, sensitivity) is
//! [`dagwire_sim::machine::whatif`]; this module finds the points, runs them, and writes
//! the tables and the tornado figure.

use crate::plan::{self, Point};
use crate::progress::RunWatch;
use crate::sweep::{self, Sweep};
use anyhow::{Context, Result, bail};
use dagwire_analysis::figures::bars::{Bar, BarChart};
use dagwire_runtime::ParamValue;
use dagwire_sim::machine::Machine;
use dagwire_sim::machine::whatif::{Change, apply, parse_set, sensitivity};
use dagwire_sim::registry::{MACHINE, models_a_machine};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// Arguments of `experiment whatif`.
#[derive(Clone, Debug, clap::Args)]
pub struct Args {
    /// A results directory (its recorded sweep and machine files) or a sweep file; its
    /// points with driver = "sim" are rerun.
    pub target: PathBuf,
    /// KEY=VALUE: a factor (`latency=0.5x`), an absolute value with a unit
    /// (`nic_bandwidth=400Gb/s`, `latency=2us`) or a name (`topology=dragonfly`). Several
    /// values of one key are one axis; several keys form a grid. Keys: latency,
    /// overhead, gap, bandwidth, path_bandwidth, nic_bandwidth, link_bandwidth,
    /// hop_latency, compute, task_overhead, control, topology, fidelity.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Rank the machine parameters by how much they move each point's makespan,
    /// perturbing each one at a time by --perturb (a tornado figure).
    #[arg(long)]
    pub sensitivity: bool,
    /// The perturbation of --sensitivity, in percent (`20%` or `20`).
    #[arg(long, default_value = "20%")]
    pub perturb: String,
    /// Where to write whatif.md, whatif.csv and the figures [default: TARGET/whatif for
    /// a results directory, results/whatif-<sweep name> for a sweep file].
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// The sweep and its simulated points, machine files pinned to a results directory's
/// recorded copies when the target is one.
fn load(target: &Path) -> Result<(Sweep, Vec<Point>)> {
    let (sweep, mut points) = if target.is_dir() {
        let path = target.join("manifest.json");
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
        let sweep_text =
            json["sweep"]["text"].as_str().with_context(|| format!("{} records no sweep", path.display()))?;
        let sweep_path = json["sweep"]["path"].as_str().map_or(target.join("sweep.toml"), PathBuf::from);
        let sweep = sweep::parse(&sweep_path, sweep_text)?;
        let mut points = plan::expand(&sweep)?;
        crate::inputs::pin_recorded(target, &mut points)?;
        (sweep, points)
    } else {
        let sweep = sweep::load(target)?;
        let points = plan::expand(&sweep)?;
        (sweep, points)
    };
    points.retain(|p| models_a_machine(p.driver));
    if points.is_empty() {
        bail!(
            "{} has no point on a machine model (driver = \"sim\"): a what-if reruns simulated points",
            target.display()
        );
    }
    Ok((sweep, points))
}

/// The grid of changes: one axis per key, in first-mention order.
pub fn grid(sets: &[String]) -> Result<Vec<Vec<Change>>> {
    let mut axes: Vec<(&'static str, Vec<Change>)> = Vec::new();
    for s in sets {
        let c = parse_set(s)?;
        match axes.iter_mut().find(|(k, _)| *k == c.key) {
            Some((_, v)) => v.push(c),
            None => axes.push((c.key, vec![c])),
        }
    }
    let mut combos: Vec<Vec<Change>> = vec![Vec::new()];
    for (_, values) in axes {
        combos = combos
            .into_iter()
            .flat_map(|base| {
                values.iter().map(move |v| {
                    let mut next = base.clone();
                    next.push(v.clone());
                    next
                })
            })
            .collect();
    }
    Ok(combos)
}

/// Runs `point` on `machine` (written to `scratch` and named in its parameters) and
/// returns the makespan, ns, `watch` showing how far a long run has got (as `experiment
/// run` does).
fn makespan(sweep: &Sweep, point: &Point, machine: &Machine, scratch: &Path, watch: RunWatch) -> Result<u64> {
    let text = toml::to_string(machine).context("writing the changed machine as TOML")?;
    std::fs::write(scratch, text).with_context(|| format!("writing {}", scratch.display()))?;
    let mut p = point.clone();
    p.driver_params.set(MACHINE, ParamValue::Str(scratch.display().to_string()));
    let observe = |progress| watch.observe(progress);
    let run = crate::runner::run_point(sweep, &p, 0, Some(&observe));
    watch.close();
    let (_, executed) = run?;
    Ok(executed.outcome.makespan_ns)
}

/// The point's label without its strategy: points that differ only in strategy compete.
fn contest(p: &Point) -> String {
    p.columns
        .iter()
        .filter(|(k, _)| {
            k != "strategy"
                && !k.starts_with(&format!("{}.", p.strategy.name))
                && *k != format!("{}.{MACHINE}", p.driver.name)
        })
        .map(|(k, v)| format!("{}={v}", k.split_once('.').map_or(k.as_str(), |(_, s)| s)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn strategy_label(p: &Point) -> String {
    let own: Vec<String> = p
        .columns
        .iter()
        .filter(|(k, _)| k.starts_with(&format!("{}.", p.strategy.name)))
        .map(|(k, v)| format!("{}={v}", k.split_once('.').map_or(k.as_str(), |(_, s)| s)))
        .collect();
    if own.is_empty() { p.strategy.name.to_string() } else { format!("{} {}", p.strategy.name, own.join(" ")) }
}

fn nodes(point: &Point, m: &Machine) -> u64 {
    (point.ranks as u64).div_ceil(u64::from(m.ranks_per_node))
}

/// One row of the comparison.
struct Row {
    contest: String,
    strategy: String,
    combo: String,
    base: u64,
    whatif: u64,
}

/// Runs the command; returns the text to print.
pub fn run(args: &Args) -> Result<String> {
    let combos = grid(&args.sets)?;
    let perturb = parse_percent(&args.perturb)?;
    if args.sets.is_empty() && !args.sensitivity {
        bail!("nothing to do: give --set KEY=VALUE (several form a grid) and/or --sensitivity");
    }
    let (sweep, points) = load(&args.target)?;
    let out = args.out.clone().unwrap_or_else(|| {
        if args.target.is_dir() {
            args.target.join("whatif")
        } else {
            PathBuf::from(format!("results/whatif-{}", sweep.name))
        }
    });
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let scratch = out.join(".machine.toml");
    let mut rows = Vec::new();
    let mut tornado: BTreeMap<String, Vec<(String, Vec<dagwire_sim::machine::whatif::Sensitivity>)>> = BTreeMap::new();
    let mut progress = crate::progress::SweepProgress::new(points.len(), 0);
    for point in &points {
        let label = point.label();
        progress.start(&label);
        let machine = dagwire_sim::registry::machine(&point.driver_params).map_err(anyhow::Error::msg)?;
        let base = makespan(&sweep, point, &machine, &scratch, progress.watch(&label))?;
        if !args.sets.is_empty() {
            for combo in &combos {
                let changed = apply(&machine, combo, nodes(point, &machine))?;
                let names: Vec<String> = combo.iter().map(|c| c.text.clone()).collect();
                let watch = progress.watch(&format!("{label} [{}]", names.join(" ")));
                let whatif = makespan(&sweep, point, &changed, &scratch, watch)?;
                rows.push(Row {
                    contest: contest(point),
                    strategy: strategy_label(point),
                    combo: names.join(" "),
                    base,
                    whatif,
                });
            }
        }
        if args.sensitivity {
            let ranked = sensitivity(&machine, perturb, nodes(point, &machine), |m| {
                makespan(&sweep, point, m, &scratch, progress.watch(&format!("{label} [sensitivity]")))
                    .map_err(|e| format!("{e:#}"))
            })
            .map_err(anyhow::Error::msg)?;
            tornado.entry(contest(point)).or_default().push((strategy_label(point), ranked));
        }
        progress.finish_one(&label, &format!("baseline {:.3} ms", base as f64 / 1e6));
    }
    progress.close();
    let _ = std::fs::remove_file(&scratch);
    let mut text = String::new();
    if !rows.is_empty() {
        let (md, csv) = comparison(&rows);
        std::fs::write(out.join("whatif.md"), &md)?;
        std::fs::write(out.join("whatif.csv"), csv)?;
        text.push_str(&md);
    }
    if args.sensitivity {
        let md = sensitivity_tables(&tornado, perturb, &out)?;
        std::fs::write(out.join("sensitivity.md"), &md)?;
        text.push_str(&md);
    }
    let _ = writeln!(text, "written to {}", out.display());
    Ok(text)
}

fn parse_percent(s: &str) -> Result<f64> {
    let v: f64 =
        s.trim().trim_end_matches('%').parse().with_context(|| format!("--perturb {s}: give a percentage like 20%"))?;
    if !(v > 0.0 && v < 100.0) {
        bail!("--perturb {s}: must be between 0% and 100% (exclusive)");
    }
    Ok(v / 100.0)
}

/// The comparison table (Markdown and CSV): per contest and change, every strategy's
/// baseline and what-if makespan, the change, the winner now, whether the ranking changed.
fn comparison(rows: &[Row]) -> (String, String) {
    let mut md = String::from(
        "| point | what-if | strategy | baseline ms | what-if ms | change | winner now | ranking changed |\n\
         |---|---|---|---:|---:|---:|---|---|\n",
    );
    let mut csv = String::from("point,whatif,strategy,baseline_ns,whatif_ns,change,winner,ranking_changed\n");
    let mut groups: BTreeMap<(&str, &str), Vec<&Row>> = BTreeMap::new();
    for r in rows {
        groups.entry((&r.contest, &r.combo)).or_default().push(r);
    }
    for ((contest, combo), members) in groups {
        let order = |key: &dyn Fn(&Row) -> u64| {
            let mut v: Vec<&Row> = members.clone();
            v.sort_by_key(|r| (key(r), r.strategy.clone()));
            v.iter().map(|r| r.strategy.clone()).collect::<Vec<_>>()
        };
        let before = order(&|r| r.base);
        let after = order(&|r| r.whatif);
        let changed = if before == after { "no" } else { "yes" };
        for r in &members {
            let change = (r.whatif as f64 - r.base as f64) / r.base.max(1) as f64 * 100.0;
            let _ = writeln!(
                md,
                "| {contest} | {combo} | {} | {:.3} | {:.3} | {change:+.1}% | {} | {changed} |",
                r.strategy,
                r.base as f64 / 1e6,
                r.whatif as f64 / 1e6,
                after[0]
            );
            let _ = writeln!(
                csv,
                "\"{contest}\",\"{combo}\",\"{}\",{},{},{:.6},\"{}\",{changed}",
                r.strategy,
                r.base,
                r.whatif,
                change / 100.0,
                after[0]
            );
        }
    }
    (md, csv)
}

type Tornado = BTreeMap<String, Vec<(String, Vec<dagwire_sim::machine::whatif::Sensitivity>)>>;

fn sensitivity_tables(tornado: &Tornado, perturb: f64, out: &Path) -> Result<String> {
    let mut md = format!("\nSensitivity: each parameter at {:.0}% below and above, one at a time\n", perturb * 100.0);
    for (i, (contest, strategies)) in tornado.iter().enumerate() {
        let _ = writeln!(
            md,
            "\n{contest}\n\n| strategy | rank | parameter | -{p:.0}% | +{p:.0}% | swing |\n|---|---:|---|---:|---:|---:|",
            p = perturb * 100.0
        );
        for (strategy, ranked) in strategies {
            for (rank, s) in ranked.iter().enumerate() {
                let rel = |x: u64| (x as f64 - s.base_ns as f64) / s.base_ns.max(1) as f64 * 100.0;
                let _ = writeln!(
                    md,
                    "| {strategy} | {} | {} | {:+.2}% | {:+.2}% | {:.2}% |",
                    rank + 1,
                    s.key,
                    rel(s.low_ns),
                    rel(s.high_ns),
                    s.swing() * 100.0
                );
            }
        }
        // Tornado: parameters by the first strategy's ranking, one bar per strategy.
        let keys: Vec<&str> = strategies[0].1.iter().map(|s| s.key).collect();
        let bars = strategies
            .iter()
            .enumerate()
            .flat_map(|(si, (_, ranked))| {
                keys.iter().enumerate().filter_map(move |(gi, k)| {
                    ranked.iter().find(|s| s.key == *k).map(|s| Bar {
                        group: gi,
                        series: si,
                        value: s.swing() * 100.0,
                        whisker: None,
                    })
                })
            })
            .collect();
        let chart = BarChart {
            title: format!("Sensitivity: {contest}"),
            value_label: format!("largest makespan change at ±{:.0}% (%)", perturb * 100.0),
            groups: keys.iter().map(|k| k.to_string()).collect(),
            series: strategies.iter().map(|(s, _)| s.clone()).collect(),
            bars,
        };
        let name = format!("tornado-{i}");
        dagwire_analysis::figures::render(&chart, out, &name, "Sensitivity", "")?;
        let _ = writeln!(md, "\ntornado figure: {}", out.join(format!("{name}.svg")).display());
    }
    Ok(md)
}
