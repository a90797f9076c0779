//! A real small sweep written to a results directory and read back with polars.

use dagwire_analysis::tables::{self, Table};
use dagwire_experiments::{plan, runner, sweep};
use polars::prelude::*;
use std::path::Path;

const SWEEP: &str = r#"name = "tiny"
seed = 3
repetitions = 2

[grid]
workload = "cholesky"
strategy = "eager"
driver = "local"
ranks = [2, 3]
fault = ["none", "corrupt-data"]

[grid.cholesky]
n = 96
tile = 32
"#;

fn run(dir: &Path, resume: bool) -> anyhow::Result<runner::SweepOutcome> {
    let s = sweep::parse(Path::new("tiny.toml"), SWEEP)?;
    let mut points = plan::expand(&s)?;
    runner::run_sweep(&s, &mut points, dir, resume)
}

fn strings(df: &DataFrame, name: &str) -> Vec<String> {
    let s = df.column(name).unwrap().as_materialized_series().clone();
    (0..df.height()).map(|i| s.str_value(i).unwrap().to_string()).collect()
}

#[test]
fn a_sweep_writes_documented_tables_with_one_row_per_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    let outcome = run(&dir, false).unwrap();
    assert_eq!(outcome.records.len(), 8, "4 points x 2 repetitions");

    let points = tables::read_points(&dir).unwrap();
    assert_eq!(points.height(), 8);
    for col in tables::POINTS_COLUMNS {
        assert!(points.column(col.name).is_ok(), "points lacks documented column {}", col.name);
    }
    for param in
        ["workload", "strategy", "driver", "ranks", "workers", "progress", "fault", "cholesky.n", "cholesky.tile"]
    {
        assert!(points.column(param).is_ok(), "points lacks parameter column {param}");
    }
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["status"], "complete");
    assert_eq!(manifest["sweep"]["text"], SWEEP);
    assert_eq!(manifest["seed"], 3);

    // The corrupted runs are recorded as failed, and the sweep went on.
    let (fault, ranks, errors) = (strings(&points, "fault"), strings(&points, "ranks"), strings(&points, "error"));
    let verified: Vec<bool> =
        points.column("verified").unwrap().bool().unwrap().iter().map(|v| v == Some(true)).collect();
    for i in 0..points.height() {
        let corrupted = fault[i] == "corrupt-data";
        assert_eq!(verified[i], !corrupted, "row {i}: fault {} ranks {}", fault[i], ranks[i]);
        if corrupted {
            assert!(errors[i].contains("verification failed"), "row {i}: {}", errors[i]);
        }
    }
    assert_eq!(outcome.bad_runs, 4, "2 faulted points x 2 repetitions");

    // Every run's tasks are in the tasks table.
    let tasks = tables::read_table(&dir, Table::Tasks).unwrap();
    let task_counts = points.column("tasks").unwrap().as_materialized_series().cast(&DataType::Int64).unwrap();
    let total: i64 = task_counts.i64().unwrap().iter().flatten().sum();
    assert_eq!(tasks.height() as i64, total);
    let messages = tables::read_table(&dir, Table::Messages).unwrap();
    assert!(messages.height() > 0, "2-rank runs exchange messages");
}

#[test]
fn an_existing_directory_is_never_overwritten_and_resume_redoes_only_missing_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    run(&dir, false).unwrap();
    let err = run(&dir, false).err().expect("a second run into the same directory is refused");
    assert!(err.to_string().contains("already exists") && err.to_string().contains("--resume"), "{err}");

    // Lose one finished run (as if the sweep had been interrupted before it), then resume.
    std::fs::remove_dir_all(dir.join("parts").join("1-1")).unwrap();
    let resumed = run(&dir, true).unwrap();
    assert_eq!(resumed.records.len(), 1, "only the missing run is redone");
    assert_eq!((resumed.records[0].point_id, resumed.records[0].repetition), (1, 1));
    assert_eq!(tables::read_points(&dir).unwrap().height(), 8);
}

#[test]
fn the_cli_exits_2_with_file_line_and_key_on_a_bad_sweep() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("bad.toml");
    std::fs::write(&file, SWEEP.replace("ranks = [2, 3]", "ranks = [2, -3]")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_experiment"))
        .args(["run", file.to_str().unwrap(), "--out", tmp.path().join("o").to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("bad.toml:9: key `grid.ranks`"), "{stderr}");
    assert!(!tmp.path().join("o").exists(), "nothing runs when the sweep is invalid");
}

#[test]
fn a_simulated_sweep_lands_in_the_same_tables_with_virtual_times() {
    let text = r#"name = "simtiny"
[grid]
workload = "cholesky"
strategy = "eager"
driver = "sim"
ranks = [4, 64]
[grid.sim]
kernels = ["run", "model"]
[grid.cholesky]
n = 512
tile = 32
"#;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    let s = sweep::parse(Path::new("simtiny.toml"), text).unwrap();
    let mut points = plan::expand(&s).unwrap();
    let outcome = runner::run_sweep(&s, &mut points, &dir, false).unwrap();
    assert_eq!(outcome.bad_runs, 0, "cost-model runs are not failures");
    let df = tables::read_points(&dir).unwrap();
    let kernels = strings(&df, "sim.kernels");
    let checks = strings(&df, "check_metric");
    let verified: Vec<bool> = df.column("verified").unwrap().bool().unwrap().iter().map(|v| v == Some(true)).collect();
    for i in 0..df.height() {
        match kernels[i].as_str() {
            "run" => assert!(verified[i], "row {i} ran kernels and must verify"),
            _ => assert!(!verified[i] && checks[i].starts_with("skipped"), "row {i}: {}", checks[i]),
        }
    }
    let tasks = tables::read_table(&dir, Table::Tasks).unwrap();
    assert!(tasks.height() > 0);
}

#[test]
fn a_first_run_killed_before_its_manifest_leaves_a_directory_both_kinds_of_run_accept() {
    for resume in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("out");
        // What a run killed between creating the directory and writing its manifest leaves.
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(".lock"), "pid 1\n").unwrap();
        let outcome = run(&dir, resume).unwrap_or_else(|e| panic!("resume = {resume}: {e:#}"));
        assert_eq!(outcome.records.len(), 8);
    }
}

#[test]
fn temporaries_of_killed_runs_are_removed_at_the_next_start() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    run(&dir, false).unwrap();
    let leftovers = [
        dir.join("parts").join(".tmp-3-1-4242"),
        dir.join(".points.parquet.tmp-4242"),
        dir.join(".manifest.json.tmp"),
        dir.join(".report.tmp-4242"),
    ];
    std::fs::create_dir_all(&leftovers[0]).unwrap();
    std::fs::write(leftovers[0].join("tasks.parquet"), b"half").unwrap();
    std::fs::write(&leftovers[1], b"half").unwrap();
    std::fs::write(&leftovers[2], b"{").unwrap();
    std::fs::create_dir_all(&leftovers[3]).unwrap();
    run(&dir, true).unwrap();
    for l in &leftovers {
        assert!(!l.exists(), "{} was left", l.display());
    }
}
