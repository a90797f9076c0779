//! The summary printed after a sweep: medians over repetitions, figures included.

use dagwire_analysis::tables;
use dagwire_experiments::{plan, runner, summary, sweep};
use polars::prelude::*;
use std::path::Path;

const SWEEP: &str = r#"name = "pingpong"
seed = 5
repetitions = 3

[grid]
workload = "micro"
strategy = "eager"
driver = "local"
ranks = 2

[grid.micro]
pattern = "pingpong"
size = 64
iterations = 30
warmup = 3
"#;

#[test]
fn workload_figures_are_shown_as_the_median_over_repetitions() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    let s = sweep::parse(Path::new("pingpong.toml"), SWEEP).unwrap();
    runner::run_sweep(&s, &plan::expand(&s).unwrap(), &out, false).unwrap();
    let df = tables::read_points(&out).unwrap();
    let latency = df.column("micro.latency_us").unwrap().as_materialized_series().cast(&DataType::Float64).unwrap();
    let mut reps: Vec<f64> = latency.f64().unwrap().into_no_null_iter().collect();
    assert_eq!(reps.len(), 3);
    reps.sort_by(f64::total_cmp);

    let text = summary::render(&out).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split("  ").map(str::trim).filter(|c| !c.is_empty()).collect();
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    let at = header.iter().position(|&h| h == "micro.latency_us").expect("the figure has a column");
    assert_eq!(row[at], format!("{:.2}", reps[1]), "{text}");
    assert!(!header.contains(&"micro.size"), "a parameter that does not vary is not shown: {text}");
}
