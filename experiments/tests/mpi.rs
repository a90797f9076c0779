//! The mpi driver end to end: real `mpirun` jobs (2 and 4 ranks, `--oversubscribe`)
//! launched by `experiment run` and by hand, including ranks that are killed, hang or
//! panic. The tests take turns (a lock), as MPI jobs on two cores are slow enough alone.

#![cfg(feature = "mpi")]

mod common;

use dagwire_analysis::tables::{self, Table};
use polars::prelude::*;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const EXE: &str = env!("CARGO_BIN_EXE_experiment");

/// A sweep of `strategies` on the mpi driver, Cholesky n=256 with 64-wide tiles.
fn sweep(dir: &Path, strategies: &str, ranks: &str, job_timeout_s: u32) -> std::path::PathBuf {
    let rma = if strategies.contains("rma") {
        "[grid.rma]\nmode = [\"get\", \"put\"]\nsync = [\"passive\", \"fence\"]"
    } else {
        ""
    };
    let text = format!(
        r#"name = "mpi-test"
seed = 5
timeout_s = 60

[grid]
workload = "cholesky"
strategy = {strategies}
driver = "mpi"
ranks = {ranks}

{rma}

[grid.mpi]
launcher_args = "--oversubscribe"
job_timeout_s = {job_timeout_s}

[grid.cholesky]
n = 256
tile = 64
"#
    );
    let path = dir.join("mpi-test.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn experiment(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(EXE);
    cmd.args(args).env("OMPI_ALLOW_RUN_AS_ROOT", "1").env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run the experiment binary")
}

fn column(df: &DataFrame, name: &str) -> Vec<String> {
    let s = df.column(name).unwrap().as_materialized_series().clone();
    (0..df.height()).map(|i| s.str_value(i).unwrap().to_string()).collect()
}

fn u64s(df: &DataFrame, name: &str) -> Vec<u64> {
    let s = df.column(name).unwrap().as_materialized_series().cast(&DataType::UInt64).unwrap();
    s.u64().unwrap().iter().map(|v| v.unwrap_or(0)).collect()
}

/// batched's sparse exchange and time window on the mpi driver, with MPI's own
/// collectives and the runtime's: the neighbour all-to-all-v runs through the shared
/// collective layer either way, and every run verifies.
#[test]
fn batched_neighbor_exchange_and_window_verify_on_mpi_with_native_and_runtime_collectives() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("nb.toml");
    std::fs::write(
        &file,
        r#"name = "nb-mpi"
seed = 4
timeout_s = 120

[grid]
workload = "cholesky"
strategy = "batched"
driver = "mpi"
ranks = [3, 4]

[grid.batched]
exchange = "neighbor"
window_usec = [0, 20]

[grid.mpi]
launcher_args = "--oversubscribe"
collectives = ["native", "runtime"]
job_timeout_s = 120

[grid.cholesky]
n = 256
tile = 64
"#,
    )
    .unwrap();
    let out = tmp.path().join("out");
    let run = experiment(&["run", file.to_str().unwrap(), "--out", out.to_str().unwrap()], &[]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "experiment run failed: {}\n{stderr}", run.status);
    let points = tables::read_points(&out).unwrap();
    assert_eq!(points.height(), 8, "2 rank counts x 2 windows x 2 collective modes");
    let verified = column(&points, "verified");
    assert!(verified.iter().all(|v| v == "true"), "{verified:?}\n{stderr}");
    let modes: std::collections::BTreeSet<String> = column(&points, "mpi.collectives").into_iter().collect();
    assert_eq!(modes.len(), 2);
}

#[test]
fn gemm_and_dp_train_verify_on_mpi_with_strategy_and_collective_all_reduces() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("workloads.toml");
    let text = r#"name = "mpi-workloads"
seed = 3
timeout_s = 60

[grid]
workload = ["gemm", "dp-train"]
strategy = ["eager", "rma"]
driver = "mpi"
ranks = 3

[grid.mpi]
launcher_args = "--oversubscribe"
collectives = ["native", "runtime"]

[grid.gemm]
n = 96
tile = 32
layout = ["1d-cyclic", "2d-block-cyclic"]

[grid.dp-train]
steps = 4
batch = 8
bucket_mb = 0.02
allreduce = ["strategy", "tree", "native"]
"#;
    std::fs::write(&file, text).unwrap();
    let out = tmp.path().join("out");
    let run = experiment(&["run", file.to_str().unwrap(), "--out", out.to_str().unwrap()], &[]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "experiment run failed: {}\n{stderr}", run.status);
    let points = tables::read_points(&out).unwrap();
    // 2 strategies x 2 collective modes x (2 layouts + 3 all-reduces).
    assert_eq!(points.height(), 2 * 2 * (2 + 3), "{stderr}");
    let (workload, verified, error) =
        (column(&points, "workload"), column(&points, "verified"), column(&points, "error"));
    for i in 0..points.height() {
        assert_eq!(verified[i], "true", "{} point {i} did not verify: {}\n{stderr}", workload[i], error[i]);
    }
}

#[test]
fn every_strategy_verifies_on_2_and_4_ranks_with_aligned_clocks() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let strategies = r#"["eager", "rendezvous", "batched", "rma", "dagger", "parsec", "starpu"]"#;
    let file = sweep(tmp.path(), strategies, "[2, 4]", 120);
    let out = tmp.path().join("out");
    let run = experiment(&["run", file.to_str().unwrap(), "--out", out.to_str().unwrap()], &[]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "experiment run failed: {}\n{stderr}", run.status);

    let points = tables::read_points(&out).unwrap();
    assert_eq!(
        points.height(),
        2 * (3 + 4 + 3),
        "(eager, rendezvous, batched, 4 rma variants, dagger, parsec, starpu) x 2 rank counts"
    );
    let (strategy, ranks, verified) =
        (column(&points, "strategy"), column(&points, "ranks"), column(&points, "verified"));
    for i in 0..points.height() {
        assert_eq!(verified[i], "true", "{} on {} ranks did not verify: {stderr}", strategy[i], ranks[i]);
    }
    assert!(column(&points, "driver").iter().all(|d| d == "mpi"));

    // Every rank's tasks are in the table, and timestamps from different ranks line up:
    // no message arrives before it left (a rank's clock off by its start-up time would
    // show as milliseconds), within a tolerance for the offset measurement.
    let tasks = tables::read_table(&out, Table::Tasks).unwrap();
    let total: u64 = u64s(&points, "tasks").iter().sum();
    assert_eq!(tasks.height() as u64, total);
    let task_ranks: std::collections::BTreeSet<String> = column(&tasks, "rank").into_iter().collect();
    assert_eq!(task_ranks.len(), 4, "tasks from all four ranks: {task_ranks:?}");
    let messages = tables::read_table(&out, Table::Messages).unwrap();
    assert!(messages.height() > 0);
    let (sent, recv) = (u64s(&messages, "sent_ns"), u64s(&messages, "recv_ns"));
    let worst = sent.iter().zip(&recv).map(|(&s, &r)| s as i64 - r as i64).max().unwrap();
    assert!(worst < 200_000, "a message arrived {worst} ns before it was sent: clocks are not aligned");

    // One phase vocabulary: every transfer of every strategy has all four phases.
    let transfers = tables::read_table(&out, Table::Transfers).unwrap();
    assert!(transfers.height() > 0);
    for phase in ["posted_ns", "started_ns", "wire_ns", "completed_ns"] {
        let nulls = transfers.column(phase).unwrap().null_count();
        assert_eq!(nulls, 0, "{nulls} transfers on the mpi driver lack {phase}");
    }
}

#[test]
fn a_killed_rank_fails_its_point_with_a_clear_error_and_the_sweep_goes_on() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let file = sweep(tmp.path(), r#""eager""#, "[2, 4]", 60);
    let out = tmp.path().join("out");
    let started = Instant::now();
    // Rank 3 exists only in the 4-rank point.
    let run = experiment(
        &["run", file.to_str().unwrap(), "--out", out.to_str().unwrap()],
        &[("DAGWIRE_TEST_KILL_RANK", "3")],
    );
    assert!(started.elapsed() < Duration::from_secs(50), "the killed job hung until the job timeout");
    assert_eq!(run.status.code(), Some(1), "{}", String::from_utf8_lossy(&run.stderr));
    let points = tables::read_points(&out).unwrap();
    let (ranks, verified, errors) = (column(&points, "ranks"), column(&points, "verified"), column(&points, "error"));
    let two = ranks.iter().position(|r| r == "2").unwrap();
    let four = ranks.iter().position(|r| r == "4").unwrap();
    assert_eq!(verified[two], "true", "the 2-rank point ran after or before the failure: {}", errors[two]);
    assert_eq!(verified[four], "false");
    let error = &errors[four];
    assert!(error.contains("job failed") && error.contains("mpirun"), "{error}");
    assert!(error.contains("signal 9") || error.contains("Killed") || error.contains("rank 3"), "{error}");
}

#[test]
fn a_hung_rank_is_killed_at_the_job_timeout() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let file = sweep(tmp.path(), r#""eager""#, "2", 4);
    let out = tmp.path().join("out");
    let started = Instant::now();
    let run = experiment(
        &["run", file.to_str().unwrap(), "--out", out.to_str().unwrap()],
        &[("DAGWIRE_TEST_KILL_RANK", "1"), ("DAGWIRE_TEST_KILL_SIGNAL", "STOP")],
    );
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(4) && took < Duration::from_secs(40), "took {took:?}");
    assert_eq!(run.status.code(), Some(1));
    let errors = column(&tables::read_points(&out).unwrap(), "error");
    assert!(errors[0].contains("ran longer than 4s") && errors[0].contains("job_timeout_s"), "{}", errors[0]);
}

#[test]
fn a_panicking_rank_aborts_the_job_with_its_rank_and_reason() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let file = sweep(tmp.path(), r#""eager""#, "2", 60);
    let out = tmp.path().join("out");
    let run = experiment(
        &["run", file.to_str().unwrap(), "--out", out.to_str().unwrap()],
        &[("DAGWIRE_TEST_KILL_RANK", "1"), ("DAGWIRE_TEST_KILL_SIGNAL", "panic")],
    );
    assert_eq!(run.status.code(), Some(1));
    let errors = column(&tables::read_points(&out).unwrap(), "error");
    assert!(errors[0].contains("rank 1 panicked") && errors[0].contains("asked rank 1 to panic"), "{}", errors[0]);
}

#[test]
fn a_user_runs_one_point_under_mpirun_and_gets_a_results_directory() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let file = sweep(tmp.path(), r#""batched""#, "[2, 4]", 60);
    let out = tmp.path().join("by-hand");
    let mpirun = |point: &str| {
        Command::new("mpirun")
            .args(["-n", "2", "--oversubscribe", EXE, "point", file.to_str().unwrap(), "--point", point, "--out"])
            .arg(&out)
            .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
            .output()
            .expect("mpirun")
    };
    let ok = mpirun("0");
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let points = tables::read_points(&out).unwrap();
    assert_eq!(column(&points, "verified"), ["true"]);
    assert!(out.join("manifest.json").is_file());

    // Point 1 is the 4-rank one: the job has the wrong size, and says what to do.
    let wrong = mpirun("1");
    assert_eq!(wrong.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(stderr.contains("point 1 needs 4 ranks, this job has 2; launch it with -n 4"), "{stderr}");
}

#[test]
fn corrupted_data_moved_by_mpi_fails_verification() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let file = sweep(tmp.path(), r#"["eager", "dagger", "parsec", "starpu"]"#, "2", 60);
    let text = std::fs::read_to_string(&file).unwrap().replace("ranks = 2\n", "ranks = 2\nfault = \"corrupt-data\"\n");
    std::fs::write(&file, text).unwrap();
    let out = tmp.path().join("out");
    let run = experiment(&["run", file.to_str().unwrap(), "--out", out.to_str().unwrap()], &[]);
    assert_eq!(run.status.code(), Some(1), "{}", String::from_utf8_lossy(&run.stderr));
    let errors = column(&tables::read_points(&out).unwrap(), "error");
    assert_eq!(errors.len(), 4, "one point per strategy");
    for e in errors {
        assert!(e.contains("verification failed"), "{e}");
    }
}

/// `experiment bench mpi` launches its own 2-rank job and prints, for every size, the raw
/// and engine figures and their ratios, then where the smallest hop's time goes: parts
/// that add up to the one-way figure on that line.
#[test]
fn the_mpi_benchmark_prints_engine_and_raw_figures_and_where_a_hop_goes() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let args = ["bench", "mpi", "--max-size", "64", "--iterations", "200", "--window", "2"];
    let out = experiment(&args, &[("DAGWIRE_MPI_LAUNCHER_ARGS", "--oversubscribe")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "bench mpi failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for size in ["8", "64"] {
        let figures = common::row_figures(&stdout, size);
        assert_eq!(figures.len(), 10, "raw, micro, ratio, lean, ratio for latency and bandwidth: {figures:?}");
        assert!(figures.iter().all(|f| f.is_finite() && *f > 0.0), "every figure positive: {figures:?}");
        // Both latencies are printed to 0.01 us and the ratio to 0.01: allow that rounding.
        let (raw, engine) = (figures[0], figures[1]);
        let ratio = engine / raw;
        let rounding = ratio * (0.005 / raw + 0.005 / engine) + 0.006;
        assert!((ratio - figures[2]).abs() <= rounding, "the ratio is engine / raw: {figures:?}");
    }
    let hop = stdout.lines().find(|l| l.starts_with("a lean 8-byte hop")).expect("the hop breakdown line");
    let after = |key: &str| -> f64 {
        let rest = &hop[hop.find(key).unwrap_or_else(|| panic!("{key:?} missing: {hop}")) + key.len()..];
        let word: String = rest.trim_start().chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
        word.parse().unwrap_or_else(|_| panic!("no number after {key:?}: {hop}"))
    };
    let (wire, dispatch, kernel) = (after("-> received"), after("kernel starts"), after(", kernel "));
    // A message takes time to arrive, the reading kernel starts after its arrival was
    // handled, and a kernel takes time: a zero part means a stamp is missing or reused.
    assert!(wire > 0.0 && dispatch > 0.0 && kernel > 0.0, "every part of the hop takes time: {hop}");
    let (parts, one_way) = (wire + dispatch + kernel, after("one way"));
    assert!((parts - one_way).abs() <= 1.0, "the parts add up to the one-way time: {hop}");
}

/// `experiment bench collectives` with a tiny size range prints, per rank count, one
/// row per size and algorithm (native, ring, recursive-doubling, mpi-raw) under its
/// header: positive times, algbw = bytes / time, busbw = algbw * 2(p-1)/p, and a ratio
/// to the native row of the same size and rank count (1 on that row).
#[test]
fn the_collectives_benchmark_prints_the_all_reduce_table() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let args = ["bench", "collectives", "--max-bytes", "32", "--ranks", "2,3", "--reps", "20"];
    let out = experiment(&args, &[("DAGWIRE_MPI_LAUNCHER_ARGS", "--oversubscribe")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "bench collectives failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let header: Vec<&str> = dagwire_experiments::bench_collectives::COLUMNS.to_vec();
    let at = stdout.lines().position(|l| l.contains("algbw GB/s")).unwrap_or_else(|| panic!("no header:\n{stdout}"));
    for column in &header {
        assert!(stdout.lines().nth(at).unwrap().contains(column), "header lacks {column:?}:\n{stdout}");
    }
    let rows: Vec<Vec<&str>> = stdout.lines().skip(at + 1).map(|l| l.split_whitespace().collect()).collect();
    let algorithms = ["native", "ring", "recursive-doubling", "mpi-raw"];
    assert_eq!(rows.len(), 2 * 2 * algorithms.len(), "2 rank counts x 2 sizes x 4 algorithms:\n{stdout}");
    let mut at_row = 0;
    for ranks in [2usize, 3] {
        for bytes in [8usize, 32] {
            let mut native_us = 0.0;
            for algorithm in algorithms {
                let row = &rows[at_row];
                at_row += 1;
                assert_eq!(row.len(), 7, "{row:?}");
                assert_eq!((row[0], row[1], row[2]), (&*bytes.to_string(), &*ranks.to_string(), algorithm), "{row:?}");
                let num = |i: usize| -> f64 {
                    row[i].trim_end_matches('x').parse().unwrap_or_else(|_| panic!("not a number: {row:?}"))
                };
                let (us, algbw, busbw, ratio) = (num(3), num(4), num(5), num(6));
                assert!(us > 0.0 && algbw >= 0.0 && ratio > 0.0, "{row:?}");
                // Printed to 0.01 us and 0.001 GB/s: compare within that rounding.
                assert!(
                    (algbw - bytes as f64 / (us * 1e3)).abs() <= 0.0015 + algbw * 0.01,
                    "algbw = bytes / time: {row:?}"
                );
                let factor = 2.0 * (ranks as f64 - 1.0) / ranks as f64;
                assert!((busbw - algbw * factor).abs() <= 0.0015, "busbw = algbw * 2(p-1)/p: {row:?}");
                if algorithm == "native" {
                    native_us = us;
                    assert_eq!(row[6], "1.00x", "{row:?}");
                }
                assert!((ratio - us / native_us).abs() <= 0.001 + ratio * 0.01, "ratio = time / native's: {row:?}");
            }
        }
    }
}
