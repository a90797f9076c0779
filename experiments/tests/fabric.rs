//! The libfabric driver end to end through `experiment run`: ranks started by the local
//! launcher (no MPI), Cholesky and the micro workload with the eager and rendezvous
//! strategies over `tcp` and `shm` verify, Cholesky with batched, rma and fabric
//! verifies, ranks started by `mpirun` (bytes over libfabric) verify Cholesky,
//! `experiment bench fabric` prints its four-way table, a provider that is not there is refused
//! before the run with those that are, and a killed rank fails its point within
//! seconds, naming the rank; `experiment list drivers` shows the providers libfabric
//! reports here (and says so when there are none). The tests take turns (a lock): jobs
//! on two cores are slow enough alone.

#![cfg(feature = "fabric")]

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const EXE: &str = env!("CARGO_BIN_EXE_experiment");

fn sweep(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, format!("name = \"{name}\"\nseed = 9\ntimeout_s = 60\n\n{body}")).unwrap();
    path
}

fn experiment(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(EXE);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run the experiment binary")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn cholesky_and_micro_verify_over_tcp_and_shm_with_eager_and_rendezvous() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let cholesky = sweep(
        dir.path(),
        "fabric-cholesky",
        r#"[grid]
workload = "cholesky"
strategy = ["eager", "rendezvous"]
driver = "libfabric"
ranks = [2, 3]

[grid.libfabric]
provider = ["tcp", "shm"]

[grid.cholesky]
n = 256
tile = 64
"#,
    );
    let micro = sweep(
        dir.path(),
        "fabric-micro",
        r#"[grid]
workload = "micro"
strategy = ["eager", "rendezvous"]
driver = "libfabric"
ranks = 2

[grid.libfabric]
provider = ["tcp", "shm"]

[grid.micro]
pattern = ["pingpong", "bandwidth"]
size = [8, 1048576]
iterations = 4
warmup = 1
"#,
    );
    for (path, points) in [(&cholesky, 8), (&micro, 16)] {
        let out_dir = dir.path().join(path.file_stem().unwrap());
        let out = experiment(&["run", path.to_str().unwrap(), "--out", out_dir.to_str().unwrap()], &[]);
        let all = text(&out);
        assert!(out.status.success(), "{}: {all}", path.display());
        let verified = all.lines().filter(|l| l.starts_with("[") && l.contains(", verified (")).count();
        assert_eq!(verified, points, "{}: {all}", path.display());
    }
}

#[test]
fn a_missing_provider_is_refused_with_the_available_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = sweep(
        dir.path(),
        "fabric-missing",
        "[grid]\nworkload = \"cholesky\"\nstrategy = \"eager\"\ndriver = \"libfabric\"\nranks = 2\n\n\
         [grid.libfabric]\nprovider = \"no-such-provider\"\n\n[grid.cholesky]\nn = 128\ntile = 64\n",
    );
    let out = experiment(&["run", path.to_str().unwrap(), "--dry-run"], &[]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(all.contains("key `grid.libfabric.provider`: libfabric offers no provider `no-such-provider`"), "{all}");
    assert!(all.contains("available: ") && all.contains("shm"), "{all}");
}

#[test]
fn list_drivers_shows_the_providers_libfabric_reports_here() {
    let out = experiment(&["list", "drivers"], &[]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    // The line right after the libfabric entry's summary, before its parameters.
    let mut lines = all.lines().skip_while(|l| !l.trim_start().starts_with("libfabric "));
    lines.next().expect("a libfabric entry");
    let here = lines.next().unwrap_or_default();
    assert!(here.trim_start().starts_with("here: providers on this host"), "{all}");
    let providers: Vec<&str> = here.rsplit(": ").next().unwrap_or_default().split(", ").collect();
    assert!(providers.contains(&"shm") && providers.iter().any(|p| p.starts_with("tcp")), "{all}");
    // libfabric reporting nothing (FI_PROVIDER filters every provider out) is said, not an error.
    let out = experiment(&["list", "drivers"], &[("FI_PROVIDER", "no-such-provider")]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("here: libfabric reports no provider"), "{all}");
}

#[test]
fn a_killed_rank_fails_its_point_naming_the_rank() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let path = sweep(
        dir.path(),
        "fabric-killed",
        "[grid]\nworkload = \"cholesky\"\nstrategy = \"eager\"\ndriver = \"libfabric\"\nranks = 3\n\n\
         [grid.cholesky]\nn = 2048\ntile = 64\n",
    );
    let out_dir = dir.path().join("out");
    let started = Instant::now();
    let out = experiment(
        &["run", path.to_str().unwrap(), "--out", out_dir.to_str().unwrap()],
        &[("DAGWIRE_TEST_KILL_RANK", "1"), ("DAGWIRE_TEST_KILL_AFTER_MS", "200")],
    );
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("FAILED: the job failed") && all.contains("rank 1 was killed by signal 9"), "{all}");
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}: {all}", started.elapsed());
}

#[test]
fn batched_rma_and_fabric_verify_cholesky_through_experiment_run() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let path = sweep(
        dir.path(),
        "fabric-one-sided",
        r#"[grid]
workload = "cholesky"
strategy = ["batched", "rma", "fabric"]
driver = "libfabric"
ranks = 3

[grid.libfabric]
provider = "shm"

[grid.fabric]
rdv_limit = 0

[grid.cholesky]
n = 256
tile = 64
"#,
    );
    let out_dir = dir.path().join("out");
    let out = experiment(&["run", path.to_str().unwrap(), "--out", out_dir.to_str().unwrap()], &[]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    let verified = all.lines().filter(|l| l.starts_with("[") && l.contains(", verified (")).count();
    assert_eq!(verified, 3, "{all}");
    // The fabric strategy registers every chunk it exposes (rdv_limit 0), the others none.
    let points = dagwire_analysis::tables::read_points(&out_dir).unwrap();
    let strategy = points.column("strategy").unwrap().str().unwrap().clone();
    let registrations = points.column("registrations").unwrap().i64().unwrap().clone();
    let registration_ns = points.column("registration_ns").unwrap().i64().unwrap().clone();
    for row in 0..points.height() {
        let (s, n, ns) =
            (strategy.get(row).unwrap(), registrations.get(row).unwrap(), registration_ns.get(row).unwrap());
        if s == "fabric" {
            assert!(n > 0 && ns > 0, "fabric registered {n} buffers in {ns} ns");
        } else {
            assert_eq!((n, ns), (0, 0), "{s} registers nothing");
        }
    }
}

/// `launcher = "mpirun"`: mpirun only starts the processes (each finds its rank in Open
/// MPI's environment); every byte goes over libfabric.
#[cfg(feature = "mpi")]
#[test]
fn ranks_started_by_mpirun_verify_cholesky_over_libfabric() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let path = sweep(
        dir.path(),
        "fabric-mpirun",
        r#"[grid]
workload = "cholesky"
strategy = ["eager", "fabric"]
driver = "libfabric"
ranks = 2

[grid.libfabric]
provider = "tcp"
launcher = "mpirun"
launcher_args = "--oversubscribe"

[grid.cholesky]
n = 256
tile = 64
"#,
    );
    let out_dir = dir.path().join("out");
    let root = [("OMPI_ALLOW_RUN_AS_ROOT", "1"), ("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")];
    let out = experiment(&["run", path.to_str().unwrap(), "--out", out_dir.to_str().unwrap()], &root);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    let verified = all.lines().filter(|l| l.starts_with("[") && l.contains(", verified (")).count();
    assert_eq!(verified, 2, "{all}");
}

/// `experiment bench fabric` at tiny sizes: one row per size with the four latencies,
/// the four bandwidths and their ratios, all positive; then each engine's hop.
#[cfg(feature = "mpi")]
#[test]
fn the_fabric_benchmark_prints_four_ways_and_their_ratios() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let args = ["bench", "fabric", "--max-size", "64", "--iterations", "100", "--window", "2", "--provider", "tcp"];
    let env = [
        ("OMPI_ALLOW_RUN_AS_ROOT", "1"),
        ("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1"),
        ("DAGWIRE_MPI_LAUNCHER_ARGS", "--oversubscribe"),
    ];
    let out = experiment(&args, &env);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "bench fabric failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let header = stdout.lines().find(|l| l.trim_start().starts_with("bytes |")).expect("a header");
    let mut at = 0;
    for name in dagwire_experiments::bench_fabric::COLUMNS {
        at += header[at..].find(name).unwrap_or_else(|| panic!("column {name:?} missing or out of order: {header}"));
        at += name.len();
    }
    for size in ["8", "64"] {
        let figures = common::row_figures(&stdout, size);
        assert_eq!(figures.len(), 14, "7 latency and 7 bandwidth columns: {figures:?}");
        assert!(figures.iter().all(|f| f.is_finite() && *f > 0.0), "every figure positive: {figures:?}");
    }
    for name in ["libfabric", "mpi"] {
        assert!(stdout.contains(&format!("a lean 8-byte hop on {name}")), "{stdout}");
    }
}
