//! Kill and resume at seeded random moments: `experiment run` is SIGKILLed again and
//! again at moments drawn from a seeded generator, resumed each time, until one
//! session finishes; the results then hold every (point, repetition) exactly once
//! (the readers refuse duplicates), the same set as an uninterrupted sweep, and no
//! process of the killed sessions is left (read from /proc). On local, sim and a
//! 2-rank mpi sweep.

mod common;

use common::{processes_mentioning, runs};
use dagwire_runtime::rng::{self, RngExt};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const EXE: &str = env!("CARGO_BIN_EXE_experiment");

fn sweep_text(driver: &str) -> String {
    let extra = match driver {
        "mpi" => "[grid.mpi]\nlauncher_args = \"--oversubscribe\"\njob_timeout_s = 120\n",
        "sim" => "[grid.sim]\nmachine = \"eth-100g\"\n",
        _ => "",
    };
    format!(
        "name = \"kill-{driver}\"\nseed = 9\nrepetitions = 2\ntimeout_s = 120\n\n[grid]\nworkload = \"cholesky\"\n\
         strategy = [\"eager\", \"rendezvous\"]\ndriver = \"{driver}\"\nranks = 2\n\n[grid.cholesky]\nn = [96, 192]\n\
         tile = 32\n\n{extra}"
    )
}

fn experiment(args: &[&str]) -> Command {
    let mut c = Command::new(EXE);
    c.args(args)
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

/// Runs the sweep uninterrupted, then again under seeded kills; returns the number of
/// kills that hit a running session.
fn trial(driver: &str, seed: u64) -> usize {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join(format!("kill-{driver}.toml"));
    std::fs::write(&file, sweep_text(driver)).unwrap();
    let file = file.to_str().unwrap();

    let whole = tmp.path().join("whole");
    let started = Instant::now();
    let out = experiment(&["run", file, "--out", whole.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{driver}: {}", String::from_utf8_lossy(&out.stderr));
    let full = started.elapsed();
    let expected = runs(&whole);
    assert_eq!(expected.len(), 8, "{driver}: 4 points x 2 repetitions");

    let dir = tmp.path().join("killed");
    let dir_s = dir.to_str().unwrap().to_string();
    let mut draws = rng::rng(seed, 0);
    let (mut kills, mut sessions) = (0, 0);
    loop {
        sessions += 1;
        // A session's start-up (resume checks) can outlast the kill window on a loaded
        // host; every session that lives past it finishes points, so allow many tries.
        assert!(sessions < 120, "{driver}: no session finished in 120 tries");
        let mut args = vec!["run", file, "--out", &dir_s];
        if dir.join("manifest.json").exists() {
            args.push("--resume");
        }
        let mut child = experiment(&args).spawn().unwrap();
        // Somewhere in the first 60% of an uninterrupted sweep's time, so most kills hit;
        // the window widens by a tenth of that per session, so a host loaded enough that
        // start-up outlasts it still lets a session through in the end.
        let at = full.mul_f64(draws.random_range(0.0..0.6) * (1.0 + sessions as f64 / 10.0));
        std::thread::sleep(at);
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            let _ = child.wait();
            kills += 1;
            let gone = (0..1500).any(|_| {
                std::thread::sleep(Duration::from_millis(20));
                processes_mentioning(&dir_s).is_empty()
            });
            assert!(gone, "{driver}: processes of the killed session remain: {:?}", processes_mentioning(&dir_s));
            continue;
        }
        let out = child.wait_with_output().unwrap();
        if out.status.success() {
            break;
        }
        // A session killed before it wrote its manifest leaves a directory that
        // holds nothing; anything else must have succeeded.
        panic!("{driver}: session {sessions} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    assert_eq!(runs(&dir), expected, "{driver}: the same runs as the uninterrupted sweep");
    assert!(processes_mentioning(&dir_s).is_empty());
    eprintln!("{driver}: {kills} kills over {sessions} sessions, every run once (uninterrupted sweep {full:?})");
    kills
}

#[test]
fn local_sweeps_killed_at_seeded_moments_resume_to_the_same_runs() {
    assert!(trial("local", 11) > 0, "no kill landed: the draws are too late for this sweep");
}

#[test]
fn sim_sweeps_killed_at_seeded_moments_resume_to_the_same_runs() {
    assert!(trial("sim", 12) > 0, "no kill landed: the draws are too late for this sweep");
}

#[cfg(feature = "mpi")]
#[test]
fn mpi_sweeps_killed_at_seeded_moments_resume_to_the_same_runs() {
    assert!(trial("mpi", 13) > 0, "no kill landed: the draws are too late for this sweep");
}
