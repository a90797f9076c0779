//! Sweeps that survive faults. A sweep is one writer that takes its jobs down with it:
//! killing `experiment run` (SIGKILL or SIGTERM) while an MPI point runs leaves no
//! process of that job behind, a second writer on a live results directory is refused
//! with the holder's PID, and a resume after the kill ends with the same runs as a sweep
//! never interrupted. A sweep is one immutable input: editing its file while it runs
//! changes none of its points.

#![cfg(feature = "mpi")]

mod common;

use common::{processes_mentioning, runs};
use dagwire_analysis::tables;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const EXE: &str = env!("CARGO_BIN_EXE_experiment");

/// Two MPI points long enough to be caught running (Cholesky n = 768 on 2 ranks).
fn sweep(dir: &Path) -> PathBuf {
    let text = r#"name = "kill-test"
seed = 2
repetitions = 1
timeout_s = 120

[grid]
workload = "cholesky"
strategy = ["eager", "rendezvous"]
driver = "mpi"
ranks = 2

[grid.mpi]
launcher_args = "--oversubscribe"
job_timeout_s = 120

[grid.cholesky]
n = 768
tile = 64
"#;
    let path = dir.join("kill-test.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn start(args: &[&str]) -> Child {
    start_with(args, &[])
}

fn start_with(args: &[&str], env: &[(&str, &str)]) -> Child {
    Command::new(EXE)
        .args(args)
        .envs(env.iter().copied())
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until `cond` holds, up to `limit`; returns how long it took.
fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Kills `experiment run` with `signal` once its first MPI job's ranks run, checks the
/// job is gone in time, then resumes and checks the runs match an uninterrupted sweep.
fn killed_and_resumed(signal: &str) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let file = sweep(tmp.path());
    let out = tmp.path().join("out");
    let out_s = out.to_str().unwrap().to_string();
    // Rank 1 stops itself at once: the job hangs until something ends it.
    let hang = [("DAGWIRE_TEST_KILL_RANK", "1"), ("DAGWIRE_TEST_KILL_SIGNAL", "STOP")];
    let mut run = start_with(&["run", file.to_str().unwrap(), "--out", &out_s], &hang);
    let ranks_up = wait_for(Duration::from_secs(60), || {
        processes_mentioning(&out_s).iter().any(|&p| {
            let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            cmd.contains(" point ") && !cmd.contains("mpirun")
        })
    });
    assert!(ranks_up.is_some(), "the MPI job's ranks never showed up");
    let killed_at = Instant::now();
    Command::new("kill").args([&format!("-{signal}"), &run.id().to_string()]).status().unwrap();
    let _ = run.wait();
    let gone = wait_for(Duration::from_secs(30), || processes_mentioning(&out_s).is_empty());
    let left = processes_mentioning(&out_s);
    for pid in &left {
        let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
    }
    assert!(gone.is_some(), "{signal}: processes of the killed sweep still run 30 s later: {left:?}");
    eprintln!("{signal}: the killed sweep's last process was gone {:?} after the kill", killed_at.elapsed());

    let resumed = start(&["run", file.to_str().unwrap(), "--out", &out_s, "--resume"]).wait_with_output().unwrap();
    assert!(resumed.status.success(), "resume failed: {}", String::from_utf8_lossy(&resumed.stderr));
    assert_eq!(runs(&out), BTreeSet::from([(0, 0), (1, 0)]), "every run once, none lost or doubled");
}

#[test]
fn a_sigkilled_sweep_takes_its_mpi_job_down_and_resumes_to_the_same_runs() {
    killed_and_resumed("KILL");
}

#[test]
fn a_sigtermed_sweep_takes_its_mpi_job_down_and_resumes_to_the_same_runs() {
    killed_and_resumed("TERM");
}

#[test]
fn a_second_writer_on_a_live_results_directory_is_refused_with_the_holders_pid() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let file = sweep(tmp.path());
    let out = tmp.path().join("out");
    let out_s = out.to_str().unwrap().to_string();
    let mut first = start(&["run", file.to_str().unwrap(), "--out", &out_s]);
    assert!(wait_for(Duration::from_secs(60), || out.join("manifest.json").exists()).is_some());
    let second = start(&["run", file.to_str().unwrap(), "--out", &out_s, "--resume"]).wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("is in use by another process") && stderr.contains(&format!("PID {}", first.id())),
        "{stderr}"
    );
    assert!(first.wait().unwrap().success(), "the first writer finished its sweep");
    assert_eq!(runs(&out), BTreeSet::from([(0, 0), (1, 0)]));
}

#[test]
fn editing_the_sweep_file_while_it_runs_changes_none_of_its_points() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let file = sweep(tmp.path());
    let out = tmp.path().join("out");
    let out_s = out.to_str().unwrap().to_string();
    // A launcher that waits a second before it starts mpirun: time to edit the file.
    let slow = tmp.path().join("slow-mpirun");
    std::fs::write(&slow, "#!/bin/sh\nsleep 1\nexec mpirun \"$@\"\n").unwrap();
    std::fs::set_permissions(&slow, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let launcher = [("DAGWIRE_MPI_LAUNCHER", slow.to_str().unwrap())];
    let run = start_with(&["run", file.to_str().unwrap(), "--out", &out_s], &launcher);
    assert!(wait_for(Duration::from_secs(60), || out.join("manifest.json").exists()).is_some());
    let original = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, original.replace("n = 768", "n = 128")).unwrap();
    let done = run.wait_with_output().unwrap();
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    let points = tables::read_points(&out).unwrap();
    let tasks = points.column("tasks").unwrap().i64().unwrap().clone();
    // n = 768 in 64-wide tiles: 12 tile rows, 12 * 13 * 14 / 6 = 364 Cholesky tasks + 78 generators.
    let expected = 12 * 13 * 14 / 6 + 12 * 13 / 2;
    assert_eq!(tasks.iter().collect::<Vec<_>>(), vec![Some(expected), Some(expected)], "both points ran n = 768");
}
