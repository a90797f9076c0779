//! Helpers shared by the experiments tests: killing sweeps (sweep_faults, kill_resume) and
//! reading benchmark tables (mpi, fabric).
#![allow(dead_code)]

use dagwire_analysis::tables;
use std::collections::BTreeSet;
use std::path::Path;

/// PIDs of live, non-zombie processes whose command line mentions `needle` (from /proc).
pub fn processes_mentioning(needle: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let zombie = stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z'));
        if !zombie && String::from_utf8_lossy(&cmdline).contains(needle) && pid != std::process::id() {
            pids.push(pid);
        }
    }
    pids
}

/// The (point, repetition) runs of a results directory; the readers refuse a
/// duplicated run, and every row is a distinct run.
pub fn runs(dir: &Path) -> BTreeSet<(i64, i64)> {
    let points = tables::read_points(dir).expect("the readers accept the table: no duplicated run");
    let ids = points.column("point_id").unwrap().i64().unwrap().clone();
    let reps = points.column("repetition").unwrap().i64().unwrap().clone();
    let set: BTreeSet<_> = ids.iter().zip(reps.iter()).map(|(p, r)| (p.unwrap(), r.unwrap())).collect();
    assert_eq!(set.len(), points.height(), "every run once");
    set
}

/// The figures of a benchmark table's row for `size` bytes (`size | a b 1.5x ...`): every
/// number after the size, ratios without their `x`.
///
/// # Panics
/// When the row is missing or holds something that is not a number.
pub fn row_figures(stdout: &str, size: &str) -> Vec<f64> {
    let row = stdout
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{size} |")))
        .unwrap_or_else(|| panic!("no row for {size} bytes:\n{stdout}"));
    row.split(|c: char| c == '|' || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .skip(1)
        .map(|w| w.trim_end_matches('x').parse().unwrap_or_else(|_| panic!("not a figure: {w:?} in {row}")))
        .collect()
}
