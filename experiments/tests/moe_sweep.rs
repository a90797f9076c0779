//! The moe workload through `experiment run`'s machinery: its routing trace file is an
//! input file as machine files are (resolved against the sweep's folder, recorded with
//! its SHA-256, copied under `DIR/inputs/`, read from the copy, and a changed file
//! refuses `--resume`); a bad file is refused before any run naming file and line. The
//! transfers table reports the real size of its run-time-sized batches, not the bound.

use dagwire_analysis::tables;
use dagwire_experiments::{plan, runner, sweep};
use dagwire_workloads::moe::Routing;
use std::path::Path;

const SWEEP: &str = r#"name = "moe-routing-input"
seed = 3

[grid]
workload = "moe"
strategy = "eager"
driver = "local"
ranks = 2

[grid.moe]
tokens = 8
d = 8
hidden = 8
experts = 4
top_k = 2
policy = ["static", "dynamic"]
routing_file = "../traces/routing.txt"
"#;

fn run(sweep_path: &Path, dir: &Path, resume: bool) -> anyhow::Result<Vec<String>> {
    let s = sweep::load(sweep_path)?;
    let mut points = plan::expand(&s)?;
    runner::run_sweep(&s, &mut points, dir, resume)?;
    Ok(points.iter().map(|p| p.workload_params.str("routing_file").to_string()).collect())
}

fn string_column(df: &polars::prelude::DataFrame, name: &str) -> Vec<String> {
    let col = df.column(name).unwrap().as_materialized_series().clone();
    (0..df.height()).map(|i| col.str_value(i).unwrap().to_string()).collect()
}

#[test]
fn a_routing_file_is_an_input_file_recorded_pinned_and_guarded_on_resume() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("sweeps")).unwrap();
    std::fs::create_dir_all(tmp.path().join("traces")).unwrap();
    let routing_path = tmp.path().join("traces/routing.txt");
    let routing = Routing::gate(11, 2, 8, 8, 4, 2, 1.2);
    routing.write(&routing_path).unwrap();
    let text = std::fs::read_to_string(&routing_path).unwrap();
    let sweep_path = tmp.path().join("sweeps/s.toml");
    std::fs::write(&sweep_path, SWEEP).unwrap();
    let dir = tmp.path().join("out");

    let used = run(&sweep_path, &dir, false).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let inputs = manifest["inputs"].as_array().expect("the manifest lists the input files");
    assert_eq!(inputs.len(), 1, "{inputs:?}");
    assert_eq!(inputs[0]["sha256"], dagwire_experiments::results::sha256(&text).as_str());
    assert_eq!(Path::new(inputs[0]["path"].as_str().unwrap()), std::fs::canonicalize(&routing_path).unwrap());
    let copy = dir.join(inputs[0]["copy"].as_str().unwrap());
    assert!(copy.starts_with(dir.join("inputs")), "{}", copy.display());
    assert_eq!(std::fs::read_to_string(&copy).unwrap(), text);
    assert!(used.iter().all(|m| Path::new(m) == copy), "{used:?} vs {}", copy.display());

    // Both points replayed the file (its histogram) and verified.
    let points = tables::read_points(&dir).unwrap();
    assert_eq!(points.height(), 2);
    assert!(string_column(&points, "verified").iter().all(|v| v == "true"), "{points:?}");
    let hist = routing.histogram();
    for (e, want) in hist.iter().enumerate() {
        let got = string_column(&points, &format!("moe.tokens_e{e}"));
        assert!(got.iter().all(|g| g.parse::<f64>().unwrap() == *want as f64), "expert {e}: {got:?} vs {want}");
    }
    assert!(string_column(&points, "moe.routing_file").iter().all(|v| v == "../traces/routing.txt"));

    run(&sweep_path, &dir, true).unwrap();
    std::fs::write(&routing_path, text.replacen("# dagwire", "# edited dagwire", 1)).unwrap();
    let e = run(&sweep_path, &dir, true).expect_err("a changed routing file must refuse --resume");
    let msg = format!("{e:#}");
    assert!(msg.contains("routing.txt") && msg.contains("changed since this sweep began"), "{msg}");
}

#[test]
fn a_bad_routing_file_is_refused_before_any_run_naming_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("sweeps")).unwrap();
    std::fs::create_dir_all(tmp.path().join("traces")).unwrap();
    let routing_path = tmp.path().join("traces/routing.txt");
    let text = Routing::gate(11, 2, 8, 8, 4, 2, 0.0).to_text();
    // Line 3 (the second token) names an expert that does not exist.
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines[2] = "0 9 0.5 0.5".into();
    std::fs::write(&routing_path, lines.join("\n")).unwrap();
    let sweep_path = tmp.path().join("sweeps/s.toml");
    std::fs::write(&sweep_path, SWEEP).unwrap();
    let s = sweep::load(&sweep_path).unwrap();
    let e = format!("{:#}", plan::expand(&s).err().expect("a bad routing file"));
    assert!(e.contains("routing_file") && e.contains("routing.txt:3: expert 9 does not exist"), "{e}");
    assert!(!tmp.path().join("out").exists());
}

#[test]
fn the_transfers_table_reports_the_real_size_of_run_time_sized_batches() {
    let tmp = tempfile::tempdir().unwrap();
    let sweep_path = tmp.path().join("s.toml");
    let text = SWEEP
        .replace("routing_file = \"../traces/routing.txt\"\n", "zipf = 1.2\n")
        .replace("policy = [\"static\", \"dynamic\"]", "policy = [\"static\", \"dropless\"]")
        .replace("strategy = \"eager\"", "strategy = [\"eager\", \"rendezvous\"]");
    std::fs::write(&sweep_path, text).unwrap();
    let dir = tmp.path().join("out");
    run(&sweep_path, &dir, false).unwrap();
    let points = tables::read_points(&dir).unwrap();
    assert_eq!(points.height(), 4);
    assert!(string_column(&points, "verified").iter().all(|v| v == "true"), "{points:?}");
    let transfers = tables::read_table(&dir, dagwire_analysis::Table::Transfers).unwrap();
    let ids: Vec<i64> = string_column(&transfers, "point_id").iter().map(|v| v.parse().unwrap()).collect();
    let bytes: Vec<i64> = string_column(&transfers, "bytes").iter().map(|v| v.parse().unwrap()).collect();
    let policies = string_column(&points, "moe.policy");
    let point_ids: Vec<i64> = string_column(&points, "point_id").iter().map(|v| v.parse().unwrap()).collect();
    let moved =
        |col: &str| string_column(&points, col).iter().map(|v| v.parse::<f64>().unwrap() as i64).collect::<Vec<_>>();
    let (dispatch, combine) = (moved("moe.dispatch_bytes"), moved("moe.combine_bytes"));
    for (i, &p) in point_ids.iter().enumerate() {
        let rows: Vec<i64> = ids.iter().zip(&bytes).filter(|(id, _)| **id == p).map(|(_, &b)| b).collect();
        // Every chunk moved between ranks here is a dispatch or combine batch (the gate's
        // output and the experts' weights stay on their rank), each one data message of
        // its real size: the table's bytes add up to what the data messages carried.
        assert!(!rows.is_empty());
        assert_eq!(rows.iter().sum::<i64>(), dispatch[i] + combine[i], "point {p} ({})", policies[i]);
        // The bound is a whole rank's tokens (dropless) or the capacity (static, 5 of 8):
        // the real batches are smaller.
        let bound = 8 * 8 * if policies[i] == "static" { 5 } else { 8 };
        assert!(rows.iter().all(|&b| b <= bound) && rows.iter().any(|&b| b < bound), "point {p}: {rows:?}");
    }
}
