//! Progress of long runs without a terminal: `experiment run` prints plain lines of a
//! simulated point's progress (virtual time, events, events/s) while it runs, no bar
//! and no cursor movement, the last with the run's totals.

use std::process::Command;

const SWEEP: &str = r#"name = "progress"
seed = 1
repetitions = 1

[grid]
workload = "cholesky"
strategy = "eager"
driver = "sim"
ranks = 16

[grid.sim]
machine = "ib-hdr-fattree"
fidelity = "analytic"
kernels = "model"
trace = "counts"

[grid.cholesky]
n = 800
tile = 8
"#;

/// A figure with its unit or suffix, in base units: `12.346 ms` -> 12_346_000 (ns),
/// `4.52 M` -> 4_520_000.
fn figure(number: &str, unit: &str) -> f64 {
    let x: f64 = number.parse().unwrap_or_else(|_| panic!("not a number: {number}"));
    x * match unit {
        "s" => 1e9,
        "ms" | "M" => 1e6,
        "us" | "k" => 1e3,
        _ => 1.0,
    }
}

/// (virtual ns, events) of a line `  LABEL: 12.346 ms simulated, 4.52 M events, ...`.
fn parse_report(line: &str) -> (f64, f64) {
    let (_, report) = line.split_once(": ").unwrap();
    let parts: Vec<&str> = report.split(", ").collect();
    let words = |i: usize| parts[i].split_whitespace().collect::<Vec<_>>();
    let (time, events) = (words(0), words(1));
    assert_eq!(time.last(), Some(&"simulated"), "{line}");
    assert_eq!(events.last(), Some(&"events"), "{line}");
    let ns = figure(time[0], time[1]);
    let events = if events.len() == 3 { figure(events[0], events[1]) } else { figure(events[0], "") };
    (ns, events)
}

#[test]
fn a_simulated_point_prints_plain_progress_lines_without_a_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let sweep = tmp.path().join("progress.toml");
    std::fs::write(&sweep, SWEEP).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_experiment"))
        .args(["run", sweep.to_str().unwrap(), "--out", tmp.path().join("out").to_str().unwrap()])
        // Every report a line (the default is one every 10 s of the run).
        .env(dagwire_experiments::progress::EVERY_ENV, "0")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "experiment run failed:\n{stderr}");
    assert!(!stderr.contains('\r') && !stderr.contains('\x1b'), "plain lines only, no bar:\n{stderr}");

    let (label, short) = ("point 0 rep 0: ", "  point 0 rep 0: ");
    let reports: Vec<(f64, f64)> = stderr.lines().filter(|l| l.starts_with(short)).map(parse_report).collect();
    assert!(reports.len() >= 2, "reports while the point runs and at its end:\n{stderr}");
    for pair in reports.windows(2) {
        assert!(pair[0].0 <= pair[1].0 && pair[0].1 <= pair[1].1, "never backwards: {pair:?}\n{stderr}");
    }
    // The point's outcome line comes after its reports, and its makespan is the last
    // report's virtual time.
    let lines: Vec<&str> = stderr.lines().collect();
    let outcome = lines.iter().position(|l| l.starts_with(&format!("[1/1] {label}"))).expect("an outcome line");
    let last_report = lines.iter().rposition(|l| l.starts_with(short)).unwrap();
    assert!(last_report < outcome, "{stderr}");
    let makespan_ms: f64 = lines[outcome].rsplit(": ").next().unwrap().split(" ms").next().unwrap().parse().unwrap();
    let (last_ns, _) = reports.last().unwrap();
    assert!((last_ns * 1e-6 - makespan_ms).abs() < 0.01, "last report {last_ns} ns, makespan {makespan_ms} ms");
}

#[test]
fn whatif_reruns_print_their_progress_like_a_run() {
    let tmp = tempfile::tempdir().unwrap();
    let sweep = tmp.path().join("progress.toml");
    std::fs::write(&sweep, SWEEP).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_experiment"))
        .args(["whatif", sweep.to_str().unwrap(), "--set", "latency=2x"])
        .args(["--out", tmp.path().join("whatif").to_str().unwrap()])
        .env(dagwire_experiments::progress::EVERY_ENV, "0")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "experiment whatif failed:\n{stderr}");
    assert!(!stderr.contains('\r') && !stderr.contains('\x1b'), "plain lines only, no bar:\n{stderr}");

    // The baseline's reports (the point's label), then the changed machine's (the label
    // with the change), each never backwards; the baseline's last is its makespan.
    let reports = |suffix: &str| -> Vec<(usize, (f64, f64))> {
        stderr
            .lines()
            .enumerate()
            .filter(|(_, l)| l.starts_with("  cholesky/") && l.split(": ").next().unwrap().ends_with(suffix))
            .map(|(i, l)| (i, parse_report(l)))
            .collect()
    };
    let (base, changed) = (reports("trace=counts"), reports(" [latency=2x]"));
    assert!(!base.is_empty() && !changed.is_empty(), "both runs report:\n{stderr}");
    assert!(base.last().unwrap().0 < changed[0].0, "the baseline runs first:\n{stderr}");
    for run in [&base, &changed] {
        for pair in run.windows(2) {
            assert!(pair[0].1.0 <= pair[1].1.0 && pair[0].1.1 <= pair[1].1.1, "never backwards: {pair:?}\n{stderr}");
        }
    }
    let outcome = stderr.lines().find(|l| l.starts_with("[1/1] ")).expect("an outcome line");
    let baseline_ms: f64 = outcome.rsplit("baseline ").next().unwrap().split(" ms").next().unwrap().parse().unwrap();
    let (last_ns, _) = base.last().unwrap().1;
    assert!((last_ns * 1e-6 - baseline_ms).abs() < 0.01, "last report {last_ns} ns, baseline {baseline_ms} ms");
}
