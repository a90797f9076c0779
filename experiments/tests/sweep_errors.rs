//! Malformed sweep files stop before any run with the file, line and key.

use dagwire_experiments::{plan, sweep};
use std::path::Path;

fn error_of(text: &str) -> sweep::SweepError {
    let path = Path::new("bad.toml");
    match sweep::parse(path, text).and_then(|s| plan::expand(&s).map(|_| s)) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e,
    }
}

const GOOD: &str = r#"name = "ok"
seed = 7
repetitions = 2

[grid]
workload = "cholesky"
strategy = "eager"
driver = "local"
ranks = [1, 2]

[grid.cholesky]
n = 64
tile = [16, 32]
"#;

#[test]
fn a_good_sweep_expands_to_its_grid() {
    let s = sweep::parse(Path::new("ok.toml"), GOOD).unwrap();
    assert_eq!((s.name.as_str(), s.seed, s.repetitions), ("ok", 7, 2));
    let points = plan::expand(&s).unwrap();
    assert_eq!(points.len(), 4);
    let ranks: Vec<usize> = points.iter().map(|p| p.ranks).collect();
    assert_eq!(ranks, vec![1, 1, 2, 2], "earlier keys vary slowest");
    assert_eq!(points[1].workload_params.int("tile"), 32);
    assert_eq!(points.iter().map(|p| p.id).collect::<Vec<_>>(), vec![0, 1, 2, 3]);
}

#[test]
fn toml_syntax_errors_name_the_line() {
    let e = error_of("name = \"x\"\n[grid]\nranks = [1, 2\n");
    assert_eq!(e.file, Path::new("bad.toml"));
    assert!(e.line >= 3, "{e}");
    assert!(e.to_string().contains("not valid TOML"), "{e}");
}

#[test]
fn unknown_top_level_keys_are_refused_with_a_hint() {
    let e = error_of(&GOOD.replace("seed = 7", "sede = 7"));
    assert_eq!((e.line, e.key.as_str()), (2, "sede"));
    assert!(e.message.contains("did you mean `seed`"), "{e}");
}

#[test]
fn unknown_names_list_what_is_allowed() {
    let e = error_of(&GOOD.replace("strategy = \"eager\"", "strategy = \"eagr\""));
    assert_eq!((e.line, e.key.as_str()), (7, "grid.strategy"));
    assert!(e.message.contains("did you mean `eager`") && e.message.contains("known:"), "{e}");

    let e = error_of(&GOOD.replace("workload = \"cholesky\"", "workload = \"lu\""));
    assert_eq!((e.line, e.key.as_str()), (6, "grid.workload"));

    let e = error_of(&GOOD.replace("driver = \"local\"", "driver = \"slurm\""));
    assert_eq!((e.line, e.key.as_str()), (8, "grid.driver"));
}

#[test]
fn unknown_parameters_of_a_component_are_refused() {
    let e = error_of(&GOOD.replace("tile = [16, 32]", "tiles = [16, 32]"));
    assert_eq!((e.line, e.key.as_str()), (13, "grid.cholesky.tiles"));
    assert!(e.message.contains("tile"), "{e}");
}

#[test]
fn out_of_range_values_say_what_is_allowed() {
    let e = error_of(&GOOD.replace("ranks = [1, 2]", "ranks = [0, 2]"));
    assert_eq!((e.line, e.key.as_str()), (9, "grid.ranks"));
    assert!(e.message.contains("got 0") && e.message.contains("1..="), "{e}");

    let e = error_of(&GOOD.replace("tile = [16, 32]", "tile = [16, 128]"));
    assert_eq!((e.line, e.key.as_str()), (13, "grid.cholesky.tile"));
    assert!(e.message.contains("128") && e.message.contains("64"), "{e}");
}

#[test]
fn more_ranks_than_tiles_is_refused_on_the_ranks_line() {
    // n = 64, tile = 32: 2x2 tiles, 3 in the lower triangle.
    let e = error_of(&GOOD.replace("ranks = [1, 2]", "ranks = [1, 5]").replace("tile = [16, 32]", "tile = 32"));
    assert_eq!((e.line, e.key.as_str()), (9, "grid.ranks"));
}

#[test]
fn missing_required_axes_and_wrong_types_are_refused() {
    let e = error_of(&GOOD.replace("driver = \"local\"\n", ""));
    assert_eq!(e.key, "grid.driver");
    let e = error_of(&GOOD.replace("ranks = [1, 2]", "ranks = \"two\""));
    assert_eq!((e.line, e.key.as_str()), (9, "grid.ranks"));
    let e = error_of(&GOOD.replace("repetitions = 2", "repetitions = 0"));
    assert_eq!((e.line, e.key.as_str()), (3, "repetitions"));
}

#[test]
fn parameters_of_an_unselected_component_are_refused() {
    // rendezvous is a real strategy with this parameter, but the sweep only runs eager.
    let e = error_of(&format!("{GOOD}\n[grid.rendezvous]\neager_limit = 0\n"));
    assert_eq!((e.line, e.key.as_str()), (16, "grid.rendezvous.eager_limit"));
    assert!(e.message.contains("not in grid.workload, grid.strategy or grid.driver"), "{e}");
}

#[test]
fn inline_progress_with_several_workers_is_refused() {
    let e = error_of(&GOOD.replace("ranks = [1, 2]", "ranks = [1, 2]\nworkers = 2\nprogress = \"inline\""));
    assert_eq!(e.key, "grid.workers");
}

const SIM: &str = r#"name = "sim"

[grid]
workload = "cholesky"
strategy = "eager"
driver = "sim"
ranks = [4, 64]

[grid.sim]
machine = "ib-hdr-fattree"
kernels = "model"

[grid.cholesky]
n = 2048
tile = 128
"#;

#[test]
fn sim_points_expand_with_their_driver_parameters() {
    let points = plan::expand(&sweep::parse(Path::new("sim.toml"), SIM).unwrap()).unwrap();
    assert_eq!(points.len(), 2);
    assert_eq!(points[0].driver_params.str("machine"), "ib-hdr-fattree");
    assert!(points[0].columns.iter().any(|(k, _)| k == "sim.fidelity"));
}

#[test]
fn an_unknown_machine_is_refused_on_its_line() {
    let e = error_of(&SIM.replace("\"ib-hdr-fattree\"", "\"ib-hdr-fatree\""));
    assert_eq!((e.line, e.key.as_str()), (10, "grid.sim.machine"));
    assert!(e.message.contains("ib-hdr-fattree"), "{e}");
}

#[test]
fn an_invalid_machine_file_names_its_own_file_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("m.toml");
    let preset = dagwire_sim::machine::preset_text("ib-hdr-fattree").unwrap();
    let bad = preset.replacen("l_ns = ", "l_ns = -", 1);
    std::fs::write(&file, bad).unwrap();
    let e = error_of(&SIM.replace("\"ib-hdr-fattree\"", &format!("{:?}", file.to_str().unwrap())));
    assert_eq!(e.key, "grid.sim.machine");
    assert!(e.message.contains("m.toml") && e.message.contains("l_ns"), "{e}");
}

#[test]
fn a_kernel_kind_no_workload_runs_is_refused_naming_the_machine_file_line_key_and_the_closest_kind() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("typo.toml");
    let preset = dagwire_sim::machine::preset_text("dgx-h100").unwrap();
    assert!(preset.contains("gemm = 40000.0"), "the device's gemm rate moved");
    let bad = preset.replace("gemm = 40000.0", "gemn = 40000.0");
    let line = bad.lines().position(|l| l.starts_with("gemn = ")).unwrap() + 1;
    std::fs::write(&file, &bad).unwrap();
    let e = error_of(&SIM.replace("\"ib-hdr-fattree\"", &format!("{:?}", file.to_str().unwrap())));
    assert_eq!(e.key, "grid.sim.machine");
    let m = &e.message;
    assert!(m.contains(&format!("typo.toml:{line}: key `accelerators.kernel_gflops.gemn`")), "{e}");
    assert!(m.contains("did you mean `gemm`?") && m.contains("moe-ffn, "), "the suggestion and the kinds: {e}");
    // Kinds of another workload than the point's are known (one machine file serves all).
    let fine = preset.replace("gemm = 40000.0", "gemm = 40000.0\nmoe-ffn-backward = 30000.0");
    std::fs::write(&file, &fine).unwrap();
    let s = sweep::parse(
        Path::new("ok.toml"),
        &SIM.replace("\"ib-hdr-fattree\"", &format!("{:?}", file.to_str().unwrap())),
    );
    plan::expand(&s.unwrap()).unwrap();
}

#[test]
fn more_ranks_than_the_machine_holds_is_refused_on_the_ranks_line() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("small.toml");
    let preset = dagwire_sim::machine::preset_text("ib-hdr-fattree").unwrap();
    std::fs::write(&file, preset.replace("k = 16", "k = 2")).unwrap();
    let e = error_of(&SIM.replace("\"ib-hdr-fattree\"", &format!("{:?}", file.to_str().unwrap())));
    assert_eq!((e.line, e.key.as_str()), (7, "grid.ranks"));
    assert!(e.message.contains("fat-tree"), "{e}");
}

#[test]
fn sim_parameters_need_the_sim_driver() {
    let e = error_of(&SIM.replace("driver = \"sim\"", "driver = \"local\""));
    assert!(e.key.starts_with("grid.sim."), "{e}");
}

#[test]
fn a_grid_too_large_is_refused_before_it_is_expanded() {
    // 13 lines of TOML, 10^8 points: counting them must not expand them.
    let tile: Vec<String> = (1..=100).map(|t| t.to_string()).collect();
    let list = format!("[{}]", tile.join(", "));
    let text = format!(
        "name = \"huge\"\n\n[grid]\nworkload = \"cholesky\"\nstrategy = \"eager\"\ndriver = \"local\"\nranks = {list}\nworkers = {list}\n\n[grid.cholesky]\nn = {list}\ntile = {list}\n"
    );
    let s = sweep::parse(Path::new("huge.toml"), &text).unwrap();
    assert_eq!(s.grid_size(), 100_000_000);
    let started = std::time::Instant::now();
    let e = s.check_size(100_000).unwrap_err();
    assert!(started.elapsed() < std::time::Duration::from_secs(1), "counting is not expanding");
    assert_eq!((e.line, e.key.as_str()), (7, "grid.ranks"));
    assert_eq!(
        e.message,
        "the grid expands to 100000000 points (100 x 100 x 100 x 100), more than the limit of 100000; split the \
         sweep, or raise the limit with --max-points"
    );
    let ok = sweep::parse(Path::new("ok.toml"), GOOD).unwrap();
    assert!(ok.check_size(4).is_ok() && ok.check_size(3).is_err(), "GOOD has 2 x 2 points");
}

#[test]
fn a_fault_that_cannot_happen_is_refused_on_the_fault_line() {
    // One rank sends no message to corrupt: the run would verify, silently unfaulted.
    let text = GOOD.replace("ranks = [1, 2]", "ranks = [1, 2]\nfault = \"corrupt-data\"");
    let e = error_of(&text);
    assert_eq!((e.line, e.key.as_str()), (10, "grid.fault"));
    assert!(e.message.contains("use ranks >= 2 with it") && e.message.contains("ranks=1"), "{e}");
    // The simulator injects no faults: refused before the run, not recorded as failed runs.
    let e = error_of(&SIM.replace("ranks = [4, 64]", "ranks = [4, 64]\nfault = \"corrupt-data\""));
    assert_eq!((e.line, e.key.as_str()), (8, "grid.fault"));
    assert!(e.message.contains("the sim driver does not inject faults"), "{e}");
}

/// The fabric strategy needs memory exposed chunk by chunk, which the mpi driver (windows
/// allocated before the run only) does not offer: refused at check time, naming both and
/// what is missing.
#[cfg(feature = "mpi")]
#[test]
fn the_fabric_strategy_on_the_mpi_driver_is_refused_naming_what_is_missing() {
    let e = error_of(&GOOD.replace("strategy = \"eager\"", "strategy = \"fabric\"").replace("\"local\"", "\"mpi\""));
    let text = e.to_string();
    assert!(text.contains("key `grid.strategy`"), "{text}");
    assert!(
        text.contains(
            "strategy fabric needs exposed memory (registration, one-sided reads by key), which driver mpi \
                       does not offer"
        ),
        "{text}"
    );
}
