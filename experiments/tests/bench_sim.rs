//! `experiment bench sim` at tiny sizes: it prints the configuration it runs, then one
//! row per configuration (each size with the full trace, then counts only) as soon as
//! that configuration finishes, after its progress lines, which are plain without a
//! terminal.

use dagwire_experiments::bench_sim::{COLUMNS, sizes};
use std::io::Read;
use std::process::Command;

#[test]
fn bench_sim_prints_each_configuration_as_it_finishes_after_its_progress() {
    // stdout and stderr into one pipe: the order of the lines is the order of the writes.
    let (mut reader, writer) = std::io::pipe().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_experiment"))
        .args(["bench", "sim", "--ranks", "4", "--tiles", "8", "--tile", "16", "--fidelity", "flow"])
        .env(dagwire_experiments::progress::EVERY_ENV, "0")
        .stdout(writer.try_clone().unwrap())
        .stderr(writer)
        .spawn()
        .unwrap();
    let mut text = String::new();
    reader.read_to_string(&mut text).unwrap();
    assert!(child.wait().unwrap().success(), "bench sim failed:\n{text}");
    assert!(!text.contains('\r') && !text.contains('\x1b'), "plain lines only:\n{text}");

    let header = text.lines().find(|l| l.starts_with("cost-model tiled Cholesky")).expect("a header");
    for said in ["on 4 ranks of ib-hdr-fattree", "(Flow fidelity)", "tile 16", "strategy eager", "8 tiles at full"] {
        assert!(header.contains(said), "the header states `{said}`: {header}");
    }
    let columns = text.lines().position(|l| l.split_whitespace().next() == Some(COLUMNS[0])).expect("column names");

    // After the column names: for each size and trace level, the run's progress lines,
    // then its row; nothing of a configuration before the previous one's row.
    let mut expected = Vec::new();
    for nt in sizes(8) {
        for level in ["full", "counts"] {
            expected.push((nt, level));
        }
    }
    let mut lines = text.lines().skip(columns + 1).filter(|l| !l.trim_start().starts_with('('));
    let mut tasks_of_size = None;
    for (nt, level) in expected {
        let progress = format!("  {nt} tiles, {level} trace: ");
        let mut reports = 0;
        let row = loop {
            let line = lines.next().unwrap_or_else(|| panic!("no row for {nt} tiles, {level}:\n{text}"));
            if line.starts_with(&progress) {
                assert!(line.contains(" simulated, ") && line.contains(" events/s, "), "{line}");
                reports += 1;
            } else {
                break line;
            }
        };
        assert!(reports >= 1, "{nt} tiles, {level}: its progress comes before its row:\n{text}");
        let fields: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(fields.len(), COLUMNS.len(), "{row}");
        assert_eq!((fields[0], fields[1]), (nt.to_string().as_str(), level), "rows in order:\n{text}");
        let tasks: u64 = fields[2].parse().unwrap();
        // The parts (DAG build, setup, event loop, finish), each printed to 0.01 s, fit
        // in the whole; events/s is over the loop alone, so never a dash or negative.
        let secs: Vec<f64> = fields[3..8].iter().map(|f| f.parse().unwrap()).collect();
        assert!(secs.iter().all(|&s| s >= 0.0), "{row}");
        assert!(secs[..4].iter().sum::<f64>() <= secs[4] + 0.025, "the parts exceed the wall time: {row}");
        let (wall_rate, cpu_rate): (f64, f64) = (fields[8].parse().unwrap(), fields[9].parse().unwrap());
        assert!(wall_rate > 0.0, "{row}");
        // One thread runs the loop: its CPU time is at most the loop's wall time (both
        // rounded to whole events/s when printed).
        assert!(cpu_rate + 1.0 >= wall_rate, "events over the loop's CPU time, not its wall time: {row}");
        if level == "full" {
            tasks_of_size = Some(tasks);
        } else {
            assert_eq!(Some(tasks), tasks_of_size, "both trace levels run the same DAG");
        }
    }
    assert!(lines.next().is_some_and(|l| l.contains("wall time grows as tasks^")), "{text}");
}
