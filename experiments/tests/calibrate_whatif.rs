//! `experiment calibrate` and `experiment whatif` end to end: a calibration through the
//! local driver at small settings writes a machine file a simulated sweep runs on, and
//! a what-if over that sweep compares strategies.

use dagwire_experiments::{calibrate, plan, runner, sweep, whatif};

#[test]
fn calibrate_local_writes_a_machine_a_sim_point_runs_on_and_whatif_compares_on_it() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("machines/host.toml");
    calibrate::run(&calibrate::Args {
        driver: "local".into(),
        ranks: 2,
        out: out.clone(),
        max_size: 4096,
        iterations: 20,
        kernel_n: 512,
        cpu_per_byte: true,
    })
    .unwrap();
    let text = std::fs::read_to_string(&out).unwrap();
    // Asked for, LogGOPS's O is written for every segment, with where it came from.
    assert!(text.contains("\no_per_byte_ns = ") && text.contains("O: the slope of the streaming interval"), "{text}");
    assert!(text.contains("\ncollective_call_ns = "), "{text}");
    assert!(text.contains("rms residual") && text.contains("task_overhead_ns"), "{text}");
    // The control-message cost, from the rendezvous ping-pong at 8, 64 and 512 B (its
    // value depends on the host: only that it was measured and written).
    assert!(text.contains("rendezvous ping-pong (eager_limit = 0) hops at 8 / 64 / 512 B"), "{text}");
    assert!(text.contains("\ncontrol_message_ns = "), "{text}");
    let machine = dagwire_sim::machine::load_machine(out.to_str().unwrap()).unwrap();
    assert_eq!(machine.name, "host");
    assert!(machine.compute.kernel_gflops.contains_key("gemm"), "{:?}", machine.compute);
    // The matrix generator has no flops: it is charged per byte it writes.
    assert!(machine.compute.kernel_ns_per_byte.get("gen").is_some_and(|&c| c > 0.0), "{:?}", machine.compute);
    assert!(!machine.compute.kernel_gflops.contains_key("gen"), "{:?}", machine.compute);
    assert!(tmp.path().join("machines/host-fit.svg").is_file() && tmp.path().join("machines/host-fit.png").is_file());

    // A simulated sweep on the calibrated file, two strategies.
    let sweep_text = r#"name = "on-calibrated"
seed = 3
[grid]
workload = "cholesky"
strategy = ["eager", "rendezvous"]
driver = "sim"
ranks = 2
[grid.cholesky]
n = 256
tile = 64
[grid.sim]
machine = "../machines/host.toml"
kernels = "model"
"#;
    std::fs::create_dir_all(tmp.path().join("sweeps")).unwrap();
    let sweep_path = tmp.path().join("sweeps/s.toml");
    std::fs::write(&sweep_path, sweep_text).unwrap();
    let s = sweep::load(&sweep_path).unwrap();
    let mut points = plan::expand(&s).unwrap();
    let dir = tmp.path().join("results");
    let outcome = runner::run_sweep(&s, &mut points, &dir, false).unwrap();
    assert_eq!(outcome.bad_runs, 0);
    assert!(outcome.records.iter().all(|r| r.makespan_ns.unwrap_or(0) > 0));

    // What-if on the results directory: factor 1 reproduces the recorded makespans.
    let args = |sets: &[&str], sensitivity: bool| whatif::Args {
        target: dir.clone(),
        sets: sets.iter().map(|s| s.to_string()).collect(),
        sensitivity,
        perturb: "20%".into(),
        out: Some(tmp.path().join("whatif")),
    };
    let text = whatif::run(&args(&["latency=1x"], false)).unwrap();
    let csv = std::fs::read_to_string(tmp.path().join("whatif/whatif.csv")).unwrap();
    let recorded: Vec<u64> = outcome.records.iter().map(|r| r.makespan_ns.unwrap()).collect();
    for line in csv.lines().skip(1) {
        let cols: Vec<&str> = line.split(',').collect();
        let (base, what): (u64, u64) = (cols[3].parse().unwrap(), cols[4].parse().unwrap());
        assert_eq!(base, what, "{text}");
        assert!(recorded.contains(&base), "{base} not among {recorded:?}");
    }
    // A grid: two latencies x one compute change = two rows per strategy.
    whatif::run(&args(&["latency=0.5x", "latency=4x", "compute=2x"], false)).unwrap();
    let csv = std::fs::read_to_string(tmp.path().join("whatif/whatif.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 2 * 2, "{csv}");
    assert!(csv.contains("latency=4x compute=2x"), "{csv}");
    // Sensitivity writes a ranking and a tornado figure.
    let text = whatif::run(&args(&[], true)).unwrap();
    assert!(text.contains("| eager | 1 |"), "{text}");
    assert!(tmp.path().join("whatif/tornado-0.svg").is_file());
    // A bad --set is refused naming the key.
    let err = whatif::run(&args(&["latency=fast"], false)).unwrap_err();
    assert!(format!("{err:#}").contains("--set latency"), "{err:#}");
}
