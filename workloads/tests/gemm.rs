//! End to end: the GEMM workload on every layout through the local driver and the
//! simulator with each registered strategy, verified against a one-rank product.

use dagwire_runtime::drivers::local::{LocalConfig, run};
use dagwire_runtime::{Fault, MessageClass, ParamError, ParamValue, Progress, RunOutcome, Trace};
use dagwire_sim::driver::{SimConfig, SimKernels};
use dagwire_sim::machine::load_machine;
use dagwire_workloads::gemm::ERROR_BOUND;
use dagwire_workloads::gemm::layout::summa_bytes;
use dagwire_workloads::{Verification, Workload, find};
use std::time::Duration;

const STRATEGIES: [&str; 7] = ["eager", "rendezvous", "batched", "rma", "dagger", "parsec", "starpu"];

/// The strategies whose corrupted transfers are checked: eager and the other runtimes' protocols.
const CORRUPTED: [&str; 4] = ["eager", "dagger", "parsec", "starpu"];

/// `(layout, grid, replicas)`.
type Dist = (&'static str, &'static str, i64);

fn gemm(
    mkn: [i64; 3],
    tile: i64,
    (layout, grid, replicas): Dist,
    accumulate: bool,
    ranks: usize,
) -> Result<Box<dyn Workload>, ParamError> {
    let [m, k, n] = mkn;
    let given = [
        ("m", ParamValue::Int(m)),
        ("k", ParamValue::Int(k)),
        ("n", ParamValue::Int(n)),
        ("tile", ParamValue::Int(tile)),
        ("layout", ParamValue::Str(layout.into())),
        ("grid", ParamValue::Str(grid.into())),
        ("replicas", ParamValue::Int(replicas)),
        ("accumulate", ParamValue::Bool(accumulate)),
    ];
    find("gemm").unwrap().build(&given, ranks, 2024)
}

fn local(w: &dyn Workload, strategy: &str, ranks: usize, fault: Option<Fault>) -> (RunOutcome, Verification) {
    let factory = dagwire_strategies::find(strategy).unwrap().factory_with(&[], w.dag(), 1).unwrap();
    let cfg = LocalConfig { ranks, workers: 2, progress: Progress::Thread, timeout: Duration::from_secs(60), fault };
    let out = run(w.dag(), w.kernels(), &factory, &cfg).unwrap_or_else(|e| panic!("{strategy} on {ranks}: {e}"));
    let v = w.verify(&out.results);
    (out, v)
}

fn sim(w: &dyn Workload, strategy: &str, ranks: usize, run_kernels: bool) -> RunOutcome {
    let machine = load_machine("ib-hdr-fattree").unwrap();
    let factory = dagwire_strategies::find(strategy).unwrap().factory_with(&[], w.dag(), 1).unwrap();
    let name = |k| w.kernel_name(k);
    let kernels = SimKernels { kernels: w.kernels(), name: &name };
    let cfg = SimConfig { ranks, workers: 1, run_kernels, seed: 1, trace: Default::default() };
    dagwire_sim::driver::run(w.dag(), &kernels, &factory, &machine, cfg)
        .unwrap_or_else(|e| panic!("{strategy}: {e}"))
        .run
}

fn data_bytes(trace: &Trace) -> u64 {
    trace.messages.iter().filter(|m| m.class == MessageClass::Data).map(|m| m.bytes).sum()
}

const DISTS: [(Dist, usize); 6] = [
    (("1d-cyclic", "auto", 1), 3),
    (("2d-block-cyclic", "auto", 1), 2),
    (("2d-block-cyclic", "auto", 1), 4),
    (("2d-block-cyclic", "1x3", 1), 3),
    (("3d", "auto", 2), 2),
    (("3d", "1x2", 2), 4),
];

#[test]
fn every_layout_and_strategy_verifies_locally_with_ragged_tiles() {
    for strategy in STRATEGIES {
        for (dist, ranks) in DISTS {
            // 70 x 50 x 45 in tiles of 16: ragged in every dimension.
            for (mkn, acc) in [([70, 50, 45], false), ([48, 64, 40], true)] {
                let w = gemm(mkn, 16, dist, acc, ranks).unwrap();
                let (_, v) = local(&*w, strategy, ranks, None);
                assert!(v.passed && v.value <= ERROR_BOUND, "{strategy} {dist:?} {ranks} {mkn:?} acc={acc}: {v:?}");
            }
        }
    }
}

#[test]
fn every_layout_and_strategy_verifies_in_the_simulator_with_kernels_run() {
    for strategy in STRATEGIES {
        for (dist, ranks) in DISTS {
            let w = gemm([60, 40, 50], 16, dist, false, ranks).unwrap();
            let out = sim(&*w, strategy, ranks, true);
            let v = w.verify(&out.results);
            assert!(v.passed, "{strategy} {dist:?} {ranks}: {v:?}");
            assert!(out.makespan_ns > 0);
        }
    }
}

#[test]
fn modelled_kernels_cost_their_flops() {
    // kernels = "model": nothing runs, the multiplies cost 2 m k n flops at the machine's gemm rate.
    let w = gemm([256, 256, 256], 64, ("2d-block-cyclic", "auto", 1), false, 4).unwrap();
    let out = sim(&*w, "eager", 4, false);
    let flops: f64 = out.trace.tasks.iter().map(|t| t.flops).sum();
    assert_eq!(flops, w.useful_flops());
    let busy: u64 = out.trace.tasks.iter().filter(|t| t.flops > 0.0).map(|t| t.end_ns - t.start_ns).sum();
    assert!(busy > 0 && out.makespan_ns > busy / 4, "{busy} {}", out.makespan_ns);
}

#[test]
fn eager_moves_exactly_summas_closed_form_count() {
    // (m, k, n, tile, P, Q): square, ragged, fewer tile columns than grid columns.
    for (mkn, tile, grid, p, q) in [
        ([64, 64, 64], 16, "2x2", 2, 2),
        ([70, 50, 45], 16, "2x2", 2, 2),
        ([40, 33, 20], 8, "2x3", 2, 3),
        ([30, 30, 10], 8, "1x4", 1, 4),
    ] {
        let w = gemm(mkn, tile, ("2d-block-cyclic", grid, 1), false, p * q).unwrap();
        let (out, v) = local(&*w, "eager", p * q, None);
        assert!(v.passed, "{v:?}");
        let want = summa_bytes(mkn.map(|x| x as usize), tile as usize, p, q);
        assert_eq!(data_bytes(&out.trace), want, "{mkn:?} tile {tile} on {grid}");
        let figures = w.figures(&out.trace);
        let get = |k| figures.iter().find(|f| f.0 == k).map(|f| f.1).unwrap();
        assert_eq!(get("bytes_per_rank"), get("model_bytes_per_rank"), "{figures:?}");
        assert!(get("bytes_per_rank") >= get("bound_bytes_per_rank"), "{figures:?}");
    }
}

#[test]
fn three_d_moves_its_closed_form_count() {
    // c layers of P x Q, tile counts multiples of P, Q and c: each panel goes to the Q (A)
    // or P (B) ranks of its layer, once less on layer 0, and c - 1 partial C's go to layer 0.
    for (grid, p, q, c) in [("2x2", 2, 2, 2), ("1x2", 1, 2, 2), ("2x1", 2, 1, 3), ("1x1", 1, 1, 4)] {
        let (m, k, n) = (96u64, 96u64, 48u64);
        let ranks = p * q * c;
        let w = gemm([m as i64, k as i64, n as i64], 8, ("3d", grid, c as i64), false, ranks).unwrap();
        let (out, v) = local(&*w, "eager", ranks, None);
        assert!(v.passed, "{v:?}");
        let (p, q, c) = (p as u64, q as u64, c as u64);
        let want = 8 * ((m * k * (c * q - 1) + k * n * (c * p - 1)) / c + (c - 1) * m * n);
        assert_eq!(data_bytes(&out.trace), want, "{grid} x {c}");
    }
}

#[test]
fn a_corrupted_transfer_fails_verification() {
    for strategy in CORRUPTED {
        for (dist, ranks) in DISTS {
            let w = gemm([64, 48, 40], 16, dist, false, ranks).unwrap();
            let (_, v) = local(&*w, strategy, ranks, Some(Fault::CorruptDataMessage { nth: 0 }));
            assert!(
                !v.passed && v.value > ERROR_BOUND,
                "{strategy} {dist:?} {ranks}: corruption went unnoticed: {v:?}"
            );
        }
    }
}

#[test]
fn missing_results_and_parameter_errors() {
    let w = gemm([32, 32, 32], 16, ("2d-block-cyclic", "auto", 1), false, 1).unwrap();
    let v = w.verify(&Default::default());
    assert!(!v.passed && v.detail.contains("missing"), "{v:?}");
    let key = |r: Result<Box<dyn Workload>, ParamError>| r.err().expect("refused").key;
    assert_eq!(key(gemm([32, 32, 32], 64, ("2d-block-cyclic", "auto", 1), false, 1)), "tile");
    assert_eq!(key(gemm([32, 32, 32], 8, ("2d-block-cyclic", "3x3", 1), false, 4)), "grid");
    assert_eq!(key(gemm([32, 32, 32], 8, ("3d", "auto", 3), false, 4)), "replicas");
    assert_eq!(key(gemm([32, 32, 32], 8, ("2d-block-cyclic", "auto", 2), false, 4)), "replicas");
    assert_eq!(key(gemm([32, 32, 32], 8, ("2d-block-cyclic", "auto", 1), false, 0)), "ranks");
}
