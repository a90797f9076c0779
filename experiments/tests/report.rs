//! The report and the trace export on a real small sweep, and on bad input.

use dagwire_analysis::report::write_report;
use dagwire_analysis::tables::{self, Table};
use dagwire_experiments::{plan, report, runner, sweep, trace_export};
use serde_json::Value;
use std::path::Path;

/// Two strategies, 2 and 3 ranks, and corrupted runs that fail verification.
const SWEEP: &str = r#"name = "tiny-report"
seed = 5
repetitions = 2

[grid]
workload = "cholesky"
strategy = ["eager", "rendezvous"]
driver = "local"
ranks = [2, 3]
fault = ["none", "corrupt-data"]

[grid.cholesky]
n = 96
tile = 32
"#;

const ONE_POINT: &str = r#"name = "one"
seed = 1
repetitions = 1

[grid]
workload = "cholesky"
strategy = "eager"
driver = "local"
ranks = 2

[grid.cholesky]
n = 64
tile = 32
"#;

fn run(dir: &Path, text: &str) {
    let s = sweep::parse(Path::new("tiny.toml"), text).unwrap();
    let mut points = plan::expand(&s).unwrap();
    runner::run_sweep(&s, &mut points, dir, false).unwrap();
}

/// Checks that every non-void element is closed in order; returns the tag names seen.
fn check_balanced(html: &str) -> Vec<String> {
    const VOID: &[&str] = &["meta", "br", "img", "hr", "link", "input"];
    let mut stack: Vec<String> = Vec::new();
    let mut seen = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        let end = rest.find('>').expect("a tag is not closed with '>'");
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        if tag.starts_with('!') || tag.starts_with('?') {
            continue;
        }
        let name: String = tag.trim_start_matches('/').chars().take_while(|c| c.is_alphanumeric()).collect();
        if let Some(closing) = tag.strip_prefix('/') {
            let closing: String = closing.chars().take_while(|c| c.is_alphanumeric()).collect();
            assert_eq!(stack.pop().as_deref(), Some(closing.as_str()), "mismatched </{closing}>");
        } else if !tag.ends_with('/') && !VOID.contains(&name.as_str()) {
            stack.push(name.clone());
        }
        seen.push(name);
    }
    assert!(stack.is_empty(), "unclosed elements: {stack:?}");
    seen
}

#[test]
fn a_report_of_a_real_sweep_has_every_figure_valid_html_and_the_failed_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    run(&dir, SWEEP);
    let (written, printed) = report::run(&dir).unwrap();
    assert!(printed.contains("report.html"), "{printed}");

    let names: Vec<String> =
        written.figures.iter().map(|f| f.file_name().unwrap().to_string_lossy().into_owned()).collect();
    for stem in ["comparison-cholesky", "figure-cholesky-gflops", "scaling", "timeline", "load"] {
        for ext in ["svg", "png"] {
            let name = format!("{stem}.{ext}");
            assert!(names.contains(&name), "{name} missing from {names:?}");
            let path = written.dir.join("figures").join(&name);
            assert!(std::fs::metadata(&path).unwrap().len() > 1000, "{} is too small", path.display());
        }
    }
    for f in &written.figures {
        assert!(f.is_file(), "{} listed but not written", f.display());
    }
    let png = std::fs::read(written.dir.join("figures/timeline.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    // No micro benchmark and no simulation: those figures are skipped with a reason.
    let skipped: Vec<&str> = written.skipped.iter().map(|(t, _)| t.as_str()).collect();
    assert!(skipped.contains(&"Simulated against real") && skipped.contains(&"Latency against message size"));

    let html = std::fs::read_to_string(&written.html).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    let tags = check_balanced(&html);
    assert_eq!(tags.iter().filter(|t| *t == "svg").count(), 5 * 2, "5 inline SVGs, opened and closed");
    assert!(!html.contains("src=\"http") && !html.contains("<script"), "self-contained: nothing fetched");
    assert!(html.contains("verification failed"), "failed runs are listed with their error");
    assert!(html.contains("Not drawn: the sweep has no simulated points"));
    assert!(html.contains("Which strategy wins where"));
    let md = std::fs::read_to_string(&written.markdown).unwrap();
    for stem in ["comparison-cholesky", "scaling", "timeline", "load"] {
        assert!(md.contains(&format!("](figures/{stem}.png)")), "report.md does not show {stem}");
    }
    assert!(md.contains("| FAILED |") || md.contains("some runs failed"), "{md}");
    // Rewriting replaces the report and leaves no temporary directory behind.
    write_report(&dir).unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".report"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn dp_train_and_gemm_reports_chart_their_figures_by_bucket_algorithm_and_layout() {
    let sweep = r#"name = "figures"
seed = 2
repetitions = 1

[grid]
workload = ["dp-train", "gemm"]
strategy = ["eager", "batched"]
driver = "local"
ranks = 2

[grid.dp-train]
steps = 3
batch = 8
bucket_mb = [0.01, 25.0]
allreduce = ["strategy", "ring"]

[grid.gemm]
n = 64
tile = 32
layout = ["1d-cyclic", "2d-block-cyclic"]
"#;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    run(&dir, sweep);
    let written = write_report(&dir).unwrap();
    let names: Vec<String> =
        written.figures.iter().map(|f| f.file_name().unwrap().to_string_lossy().into_owned()).collect();
    for stem in [
        "figure-dp-train-step_us",
        "figure-dp-train-exposed_comm_share",
        "figure-dp-train-busbw_gbps",
        "figure-gemm-gflops",
        "figure-gemm-bytes_per_rank",
    ] {
        assert!(names.contains(&format!("{stem}.svg")), "{stem} missing from {names:?}");
    }
    assert!(!names.iter().any(|n| n.contains("bucket_count")), "counts are not charted: {names:?}");
    // The rows are the configurations: bucket size and algorithm, layout.
    let svg = std::fs::read_to_string(written.dir.join("figures/figure-dp-train-step_us.svg")).unwrap();
    assert!(svg.contains("allreduce=ring") && svg.contains("bucket_mb=25"), "{}", &svg[..svg.len().min(2000)]);
    let svg = std::fs::read_to_string(written.dir.join("figures/figure-gemm-gflops.svg")).unwrap();
    assert!(svg.contains("layout=2d-block-cyclic"));
}

#[test]
fn a_single_point_sweep_gets_a_report_without_empty_charts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("one");
    run(&dir, ONE_POINT);
    let written = write_report(&dir).unwrap();
    let skipped: Vec<String> = written.skipped.iter().map(|(t, r)| format!("{t}: {r}")).collect();
    assert!(
        skipped.iter().any(|s| s.contains("Scaling over ranks: every successful point ran on 2 ranks")),
        "{skipped:?}"
    );
    let md = std::fs::read_to_string(&written.markdown).unwrap();
    assert!(md.contains("Only **eager** ran"), "{md}");
    assert!(written.dir.join("figures/comparison-cholesky.svg").is_file());
}

#[test]
fn the_perfetto_trace_has_a_slice_per_task_and_a_flow_per_transfer() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    run(&dir, SWEEP);
    let points = tables::read_points(&dir).unwrap();
    let tasks = tables::read_table(&dir, Table::Tasks).unwrap();
    let transfers = tables::read_table(&dir, Table::Transfers).unwrap();
    // A 2-rank run without fault: the summary's point with ranks = 2, fault none.
    let ranks = points.column("ranks").unwrap().i64().unwrap().clone();
    let fault = points.column("fault").unwrap().str().unwrap().clone();
    let ids = points.column("point_id").unwrap().i64().unwrap().clone();
    let row = (0..points.height()).find(|&i| ranks.get(i) == Some(2) && fault.get(i) == Some("none")).unwrap();
    let point = ids.get(row).unwrap();
    let count = |df: &polars::prelude::DataFrame| {
        let p = df.column("point_id").unwrap().i64().unwrap().clone();
        let r = df.column("repetition").unwrap().i64().unwrap().clone();
        (0..df.height()).filter(|&i| p.get(i) == Some(point) && r.get(i) == Some(1)).count()
    };
    let (n_tasks, n_transfers) = (count(&tasks), count(&transfers));
    assert!(n_tasks > 0 && n_transfers > 0);

    let out = tmp.path().join("t.json");
    let written = trace_export::run(&dir, point, 1, trace_export::Format::Perfetto, Some(out.clone())).unwrap();
    assert_eq!(written, out);
    let trace: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let events = trace["traceEvents"].as_array().unwrap();
    let of = |ph: &str| events.iter().filter(|e| e["ph"] == ph).collect::<Vec<_>>();
    assert_eq!(of("X").len(), n_tasks, "one complete slice per task");
    assert_eq!(of("b").len(), n_transfers, "one async slice per transfer");
    assert_eq!(of("e").len(), n_transfers);
    let (starts, ends) = (of("s"), of("f"));
    assert_eq!(starts.len(), n_transfers, "one flow per transfer");
    assert_eq!(ends.len(), n_transfers);
    let mut start_ids: Vec<i64> = starts.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    let mut end_ids: Vec<i64> = ends.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    start_ids.sort();
    end_ids.sort();
    assert_eq!(start_ids, end_ids, "every flow starts and ends");
    for e in of("X") {
        assert!(e["dur"].as_f64().unwrap() >= 0.0 && e["pid"].as_i64().unwrap() < 2);
    }
    let names: Vec<&str> =
        of("M").iter().filter(|e| e["name"] == "process_name").map(|e| e["args"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["rank 0", "rank 1"]);
    // No devices: no copies in the tables or the trace, and the threads are workers.
    assert_eq!(tables::read_table(&dir, Table::Copies).unwrap().height(), 0);
    assert!(events.iter().all(|e| e["cat"] != "copy"));
    let threads = of("M").into_iter().filter(|e| e["name"] == "thread_name");
    assert!(threads.map(|e| e["args"]["name"].as_str().unwrap()).all(|n| n.starts_with("worker ")));

    let err = trace_export::run(&dir, 999, 0, trace_export::Format::Perfetto, None).unwrap_err();
    assert!(format!("{err:#}").contains("point 999 repetition 0 recorded no tasks"), "{err:#}");
}

/// Staged Cholesky on two nodes of four simulated GPUs (peer copies over PCIe inside a
/// node), two streams and one copy engine per GPU: the report's timeline fits.
const ACCEL: &str = r#"name = "accel-copies"
seed = 1
repetitions = 1

[grid]
workload = "cholesky"
strategy = "eager"
driver = "sim"
ranks = 8

[grid.sim]
machine = "pcie-4gpu"
kernels = "run"
streams = 2
copy_engines = 1

[grid.cholesky]
n = 1024
tile = 128
"#;

#[test]
fn an_accelerator_run_shows_its_copies_per_copy_engine_in_the_table_the_timeline_and_the_perfetto_trace() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    run(&dir, ACCEL);
    let copies = tables::read_table(&dir, Table::Copies).unwrap();
    let int = |name: &str| -> Vec<i64> { copies.column(name).unwrap().i64().unwrap().into_no_null_iter().collect() };
    let kind: Vec<String> =
        copies.column("kind").unwrap().str().unwrap().iter().map(|k| k.unwrap().to_string()).collect();
    let (rank, engine, start, end, src, dst) =
        (int("rank"), int("engine"), int("start_ns"), int("end_ns"), int("src"), int("dst"));
    assert!(!kind.is_empty());
    for k in ["d2h", "h2d", "peer"] {
        assert!(kind.iter().any(|x| x == k), "no {k} copy in {kind:?}");
    }
    for i in 0..kind.len() {
        // Inside a node (4 GPUs) a peer copy, between nodes a staged pair; the copying rank is
        // the sender except for the host-to-device copy.
        let same_node = src[i] / 4 == dst[i] / 4;
        assert_eq!(kind[i] == "peer", same_node, "row {i}");
        assert_eq!(rank[i], if kind[i] == "h2d" { dst[i] } else { src[i] }, "row {i}");
        assert_eq!(engine[i], 0, "one copy engine");
        assert!(end[i] > start[i]);
    }
    // One engine per GPU: a rank's copies follow each other, never overlap.
    for r in 0..8 {
        let mut spans: Vec<(i64, i64)> =
            (0..kind.len()).filter(|&i| rank[i] == r).map(|i| (start[i], end[i])).collect();
        spans.sort();
        assert!(spans.windows(2).all(|w| w[0].1 <= w[1].0), "rank {r}: {spans:?}");
    }

    let out = tmp.path().join("t.json");
    trace_export::run(&dir, 0, 0, trace_export::Format::Perfetto, Some(out.clone())).unwrap();
    let trace: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let events = trace["traceEvents"].as_array().unwrap();
    let ce = dagwire_analysis::perfetto::COPY_ENGINE_TID;
    let slices: Vec<&Value> = events.iter().filter(|e| e["cat"] == "copy").collect();
    assert_eq!(slices.len(), kind.len(), "one slice per copy");
    assert!(slices.iter().all(|e| e["ph"] == "X" && e["tid"] == ce), "every copy on its engine's thread");
    let thread = |name: &str| events.iter().filter(|e| e["name"] == "thread_name" && e["args"]["name"] == name).count();
    assert_eq!((thread("copy engine 0"), thread("stream 0"), thread("stream 1")), (8, 8, 8));

    let written = write_report(&dir).unwrap();
    let svg = std::fs::read_to_string(written.dir.join("figures/timeline.svg")).unwrap();
    for label in ["rank 7 · ce0", "rank 7 · w1", "d2h copy", "h2d copy", "peer copy"] {
        assert!(svg.contains(label), "the timeline lacks {label:?}");
    }
}

#[test]
fn bad_results_directories_are_refused_naming_the_file_and_leave_no_report() {
    let tmp = tempfile::tempdir().unwrap();
    let err = format!("{:#}", write_report(tmp.path()).unwrap_err());
    assert!(err.contains("manifest.json") && err.contains("not a dagwire results directory"), "{err}");

    let dir = tmp.path().join("out");
    run(&dir, ONE_POINT);
    write_report(&dir).unwrap();
    let before = std::fs::read_to_string(dir.join("report/report.html")).unwrap();

    // A truncated table: its checksum no longer matches; the error names it, and the old
    // report is left as it was.
    let tasks = dir.join("tasks.parquet");
    let bytes = std::fs::read(&tasks).unwrap();
    std::fs::write(&tasks, &bytes[..bytes.len() / 2]).unwrap();
    let err = format!("{:#}", write_report(&dir).unwrap_err());
    assert!(err.contains("tasks.parquet does not match the SHA-256"), "{err}");
    assert_eq!(std::fs::read_to_string(dir.join("report/report.html")).unwrap(), before);
    std::fs::write(&tasks, &bytes).unwrap();

    // An older results format.
    let manifest = dir.join("manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replace(dagwire_analysis::RESULTS_FORMAT, "dagwire-results/1")).unwrap();
    let err = format!("{:#}", write_report(&dir).unwrap_err());
    assert!(err.contains("manifest.json") && err.contains("older"), "{err}");
    std::fs::write(&manifest, text).unwrap();

    // A missing table.
    std::fs::remove_file(dir.join("transfers.parquet")).unwrap();
    let err = format!("{:#}", write_report(&dir).unwrap_err());
    assert!(err.contains("transfers.parquet does not exist"), "{err}");
    let leftovers = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".report"))
        .count();
    assert_eq!(leftovers, 0);
}
