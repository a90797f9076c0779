//! Every sweep file shipped under `sweeps/` loads and expands as `experiment run --dry-run`
//! does (its grid, every point's parameters and its machine files checked), so a change to
//! a parameter's name or range cannot leave a shipped sweep broken until a user runs it.

use dagwire_experiments::{plan, sweep};
use std::path::Path;

/// Machine files the validation sweeps read, which `experiment calibrate` writes on the
/// user's host; a preset stands in for them here.
const CALIBRATED: [&str; 2] = ["this-host.toml", "this-host-mpi.toml"];

#[test]
fn every_shipped_sweep_expands() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let tmp = tempfile::tempdir().unwrap();
    let (sweeps, machines) = (tmp.path().join("sweeps"), tmp.path().join("machines"));
    for (from, to) in [(repo.join("sweeps"), &sweeps), (repo.join("machines"), &machines)] {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
    for name in CALIBRATED {
        if !machines.join(name).exists() {
            std::fs::copy(machines.join("shm-node.toml"), machines.join(name)).unwrap();
        }
    }
    let mut checked = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&sweeps).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    for path in files.into_iter().filter(|p| p.extension().is_some_and(|e| e == "toml")) {
        let s = sweep::load(&path).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
        s.check_size(100_000).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
        let points = plan::expand(&s).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
        assert!(!points.is_empty(), "{} has no points", path.display());
        checked.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    for expected in ["quickstart.toml", "validate-local.toml", "validate-mpi.toml"] {
        assert!(checked.iter().any(|c| c == expected), "{expected} not among {checked:?}");
    }
}

/// Every kernel kind a preset rates is one some registered workload runs (the check every
/// sim point's machine file gets), so the presets carry no rate that is never used.
#[test]
fn every_presets_kernel_kinds_are_known() {
    let known = dagwire_workloads::kernel_kinds();
    for name in dagwire_sim::machine::preset_names() {
        dagwire_sim::machine::check_kernel_kinds(name, &known).unwrap_or_else(|e| panic!("{e}"));
    }
}
