//! End-to-end: the Cholesky workload through the local driver with the eager strategy
//! (and, for corrupted transfers, the other runtimes' protocols; every strategy's
//! verified Cholesky runs on the harness, local and sim are in `strategies/tests/phases.rs`).

use dagwire_runtime::drivers::local::{LocalConfig, run};
use dagwire_runtime::{Fault, KernelId, ParamError, ParamValue, Params, Progress, Rank, Strategy};
use dagwire_strategies::eager::Eager;
use dagwire_workloads::cholesky::{RESIDUAL_BOUND, reference_cholesky};
use dagwire_workloads::{Verification, Workload, find};
use std::time::Duration;

fn prepare(n: i64, tile: i64, ranks: usize) -> Result<Box<dyn Workload>, ParamError> {
    find("cholesky").unwrap().build(&[("n", ParamValue::Int(n)), ("tile", ParamValue::Int(tile))], ranks, 2024)
}

fn run_cfg(n: i64, tile: i64, cfg: LocalConfig) -> Verification {
    let w = prepare(n, tile, cfg.ranks).unwrap();
    let factory = |_r: Rank| Box::new(Eager) as Box<dyn Strategy>;
    let out = run(w.dag(), w.kernels(), &factory, &cfg).unwrap();
    w.verify(&out.results)
}

fn cfg(ranks: usize, workers: usize, progress: Progress) -> LocalConfig {
    LocalConfig { ranks, workers, progress, timeout: Duration::from_secs(60), fault: None }
}

fn assert_verified(n: i64, tile: i64, cfg: LocalConfig) {
    let label = format!("n={n} tile={tile} ranks={} workers={} {:?}", cfg.ranks, cfg.workers, cfg.progress);
    let v = run_cfg(n, tile, cfg);
    assert!(v.passed, "{label}: {}", v.detail);
    assert!(v.value < RESIDUAL_BOUND && v.value.is_finite(), "{label}: {v:?}");
}

#[test]
fn verified_on_one_to_four_ranks_with_progress_threads() {
    // (n, tile, ranks): square and 1x3 grids, ragged last tiles, tile == n, a single element.
    let cases = [
        (1, 1, 1),
        (64, 64, 1),
        (100, 32, 1),
        (96, 32, 2),
        (100, 32, 2),
        (96, 24, 3),
        (100, 16, 3),
        (128, 32, 4),
        (100, 32, 4),
        (256, 64, 4),
    ];
    for (n, tile, ranks) in cases {
        assert_verified(n, tile, cfg(ranks, 2, Progress::Thread));
    }
}

#[test]
fn verified_with_inline_progress() {
    for (n, tile, ranks) in [(64, 64, 1), (100, 32, 2), (90, 20, 3), (128, 16, 4)] {
        assert_verified(n, tile, cfg(ranks, 1, Progress::Inline));
    }
}

#[test]
fn a_corrupted_transfer_fails_verification() {
    // The local driver flips a high mantissa bit of one f64 in the first data message;
    // on 2 ranks (1x2 grid) the off-diagonal panel tiles travel, so a tile of L is wrong.
    for (n, tile) in [(128, 32), (100, 32), (45, 15)] {
        let cfg = LocalConfig { fault: Some(Fault::CorruptDataMessage { nth: 0 }), ..cfg(2, 1, Progress::Thread) };
        let v = run_cfg(n, tile, cfg.clone());
        assert!(!v.passed, "n={n} tile={tile}: corruption went unnoticed: {v:?}");
        assert!(v.value > RESIDUAL_BOUND, "{v:?}");
        // The other runtimes' protocols carry the data in other messages; the flip still shows.
        for strategy in ["dagger", "parsec", "starpu"] {
            let w = prepare(n, tile, 2).unwrap();
            let factory = dagwire_strategies::find(strategy).unwrap().factory_with(&[], w.dag(), 1).unwrap();
            let v = w.verify(&run(w.dag(), w.kernels(), &factory, &cfg).unwrap().results);
            assert!(!v.passed && v.value > RESIDUAL_BOUND, "{strategy} n={n} tile={tile}: unnoticed: {v:?}");
        }
    }
}

#[test]
fn parameter_errors_name_the_key() {
    let err = prepare(256, 512, 1).err().expect("tile > n is refused");
    assert_eq!(err.key, "tile");
    assert!(err.reason.contains("512") && err.reason.contains("256"), "{err}");

    // n = 64, tile = 32: 2x2 tiles, 3 in the lower triangle.
    let err = prepare(64, 32, 4).err().expect("4 ranks for 3 tiles is refused");
    assert_eq!(err.key, "ranks");
    assert!(err.reason.contains("own none"), "{err}");
    // 3 ranks form a 1x3 grid, so the third tile column (which does not exist) is idle.
    let err = prepare(64, 32, 3).err().expect("an idle rank is refused");
    assert_eq!(err.key, "ranks");
    assert!(err.reason.contains("at most 2 ranks"), "{err}");
    assert!(prepare(64, 32, 2).is_ok());

    assert_eq!(prepare(64, 32, 0).err().expect("0 ranks is refused").key, "ranks");
    let err = prepare(1 << 20, 1, 1).err().expect("a billion tasks is refused");
    assert_eq!(err.key, "tile");
}

#[test]
fn names_flops_and_registry() {
    let w = prepare(100, 32, 2).unwrap();
    let names: Vec<_> = (0..5).map(|k| w.kernel_name(KernelId(k))).collect();
    assert_eq!(names, ["gen", "potrf", "trsm", "syrk", "gemm"]);
    assert_eq!(w.kernel_name(KernelId(9)), "unknown");
    assert_eq!(w.useful_flops(), 1e6 / 3.0);
    let defaults = Params::resolve(&(find("cholesky").unwrap().params)(), Default::default()).unwrap();
    assert_eq!((defaults.int("n"), defaults.int("tile")), (1024, 256));
}

#[test]
fn missing_results_fail_verification() {
    let w = prepare(64, 16, 1).unwrap();
    let v = w.verify(&Default::default());
    assert!(!v.passed && v.detail.contains("missing"), "{v:?}");
}

#[test]
fn faer_reference_factors_the_same_matrix() {
    for threads in [1, 2] {
        let r = reference_cholesky(200, 2024, threads).unwrap();
        assert!(r.scaled_residual < RESIDUAL_BOUND, "{r:?}");
        assert!(r.seconds >= 0.0);
    }
}

fn with_layout(n: i64, tile: i64, ranks: usize, layout: &str, grid: &str) -> Result<Box<dyn Workload>, ParamError> {
    let given = [
        ("n", ParamValue::Int(n)),
        ("tile", ParamValue::Int(tile)),
        ("layout", ParamValue::Str(layout.into())),
        ("grid", ParamValue::Str(grid.into())),
    ];
    find("cholesky").unwrap().build(&given, ranks, 2024)
}

/// `cholesky.layout` and `cholesky.grid`: every distribution verifies, places each task
/// where its layout says (the task's tile (i, j) is in its first two arguments), and
/// moves a different amount of data; a grid that does not fit is refused by key.
#[test]
fn every_layout_and_grid_verifies_and_places_tiles_as_named() {
    type Owner = fn(usize, usize) -> u32;
    let cases: [(usize, &str, &str, Owner); 4] = [
        (4, "1d-cyclic", "auto", |_, j| (j % 4) as u32),
        (4, "2d-block-cyclic", "2x2", |i, j| ((i % 2) * 2 + j % 2) as u32),
        (4, "2d-block-cyclic", "4x1", |i, _| (i % 4) as u32),
        (3, "2d-block-cyclic", "auto", |_, j| (j % 3) as u32),
    ];
    let mut remote_inputs = Vec::new();
    for (ranks, layout, grid, owner) in cases {
        let label = format!("{layout} {grid} on {ranks} ranks");
        let w = with_layout(200, 25, ranks, layout, grid).unwrap_or_else(|e| panic!("{label}: {e}"));
        let dag = w.dag();
        let mut remote = 0;
        for t in dag.task_ids() {
            let task = dag.task(t);
            let (i, j) = (task.args[0] as usize, task.args[1] as usize);
            assert_eq!(task.owner.0, owner(i, j), "{label}: task {t:?} of tile ({i}, {j})");
            remote += dag.inputs(t).iter().filter(|c| dag.task(dag.chunk(**c).producer).owner != task.owner).count();
        }
        remote_inputs.push(remote);
        let factory = |_r: Rank| Box::new(Eager) as Box<dyn Strategy>;
        let out = run(dag, w.kernels(), &factory, &cfg(ranks, 1, Progress::Inline)).unwrap();
        let v = w.verify(&out.results);
        assert!(v.passed, "{label}: {}", v.detail);
    }
    assert_ne!(remote_inputs[0], remote_inputs[1], "1D and 2D distributions move different data: {remote_inputs:?}");

    let e = with_layout(200, 25, 4, "2d-block-cyclic", "3x2").err().unwrap();
    assert_eq!(e.key, "grid", "{e}");
    let e = with_layout(200, 25, 4, "1d-cyclic", "2x2").err().unwrap();
    assert_eq!(e.key, "grid", "{e}");
    let e = with_layout(200, 25, 4, "2d-block-cyclic", "99999x99999").err().unwrap();
    assert_eq!(e.key, "grid", "{e}");
}
