//! A sweep's machine file is one immutable input: a relative path resolves against
//! the sweep file's folder, the file is read once and recorded (text and SHA-256) in
//! the manifest with a copy every run reads, an edit after the start changes no run,
//! and `--resume` refuses a machine file whose text changed.

use dagwire_experiments::{plan, runner, sweep};
use std::path::Path;

const SWEEP: &str = r#"name = "machine-input"
seed = 5

[grid]
workload = "cholesky"
strategy = "eager"
driver = "sim"
ranks = [2, 4]

[grid.cholesky]
n = 96
tile = 32

[grid.sim]
machine = "../machines/mine.toml"
kernels = "model"
"#;

fn run(sweep_path: &Path, dir: &Path, resume: bool) -> anyhow::Result<Vec<String>> {
    let s = sweep::load(sweep_path)?;
    let mut points = plan::expand(&s)?;
    runner::run_sweep(&s, &mut points, dir, resume)?;
    Ok(points.iter().map(|p| p.driver_params.str("machine").to_string()).collect())
}

#[test]
fn machine_files_resolve_against_the_sweep_folder_are_recorded_and_pinned_and_a_change_refuses_resume() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("sweeps")).unwrap();
    std::fs::create_dir_all(tmp.path().join("machines")).unwrap();
    let machine_path = tmp.path().join("machines/mine.toml");
    let text = dagwire_sim::machine::preset_text("eth-100g").unwrap().replace("name = \"eth-100g\"", "name = \"mine\"");
    std::fs::write(&machine_path, &text).unwrap();
    let sweep_path = tmp.path().join("sweeps/s.toml");
    std::fs::write(&sweep_path, SWEEP).unwrap();
    let dir = tmp.path().join("out");

    // Run from an unrelated working directory: the path is the sweep file's, not the cwd's.
    let used = run(&sweep_path, &dir, false).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let inputs = manifest["inputs"].as_array().expect("the manifest lists the input files");
    assert_eq!(inputs.len(), 1, "{inputs:?}");
    assert_eq!(inputs[0]["text"], text.as_str());
    assert_eq!(inputs[0]["sha256"], dagwire_experiments::results::sha256(&text).as_str());
    assert_eq!(Path::new(inputs[0]["path"].as_str().unwrap()), std::fs::canonicalize(&machine_path).unwrap());
    let copy = dir.join(inputs[0]["copy"].as_str().unwrap());
    assert_eq!(std::fs::read_to_string(&copy).unwrap(), text);
    // Every run read the recorded copy, not the file the sweep names.
    assert!(used.iter().all(|m| Path::new(m) == copy), "{used:?} vs {}", copy.display());
    // The tables keep the machine as the sweep wrote it.
    let points = dagwire_analysis::tables::read_points(&dir).unwrap();
    let col = points.column("sim.machine").unwrap().as_materialized_series().clone();
    assert!((0..points.height()).all(|i| col.str_value(i).unwrap() == "../machines/mine.toml"));

    // Resuming with the same file is fine (nothing left to run).
    run(&sweep_path, &dir, true).unwrap();
    // An edited machine file is refused, naming it.
    std::fs::write(&machine_path, text.replace("name = \"mine\"", "name = \"mine\" # edited")).unwrap();
    let e = run(&sweep_path, &dir, true).expect_err("a changed machine file must refuse --resume");
    let msg = format!("{e:#}");
    assert!(msg.contains("mine.toml") && msg.contains("changed since this sweep began"), "{msg}");
    assert!(msg.contains("--out"), "{msg}");
}

#[test]
fn a_missing_relative_machine_file_names_the_sweep_file_key_and_resolved_path() {
    let tmp = tempfile::tempdir().unwrap();
    let sweep_path = tmp.path().join("s.toml");
    std::fs::write(&sweep_path, SWEEP).unwrap();
    let s = sweep::load(&sweep_path).unwrap();
    let e = plan::expand(&s).err().expect("no such machine file").to_string();
    assert!(e.contains("s.toml") && e.contains("grid.sim.machine"), "{e}");
    let resolved = std::path::absolute(tmp.path().join("../machines/mine.toml")).unwrap();
    assert!(e.contains(&resolved.display().to_string()), "{e}");
}
