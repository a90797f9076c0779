//! End to end: tiled Cholesky through the local driver (ranks as threads, real
//! kernels) with the rendezvous strategy, verified by the workload's residual.

mod common;

use common::run_local;
use dagwire_runtime::{Fault, ParamValue, Progress, RunOutcome};
use dagwire_workloads::cholesky::RESIDUAL_BOUND;
use dagwire_workloads::{Verification, Workload};

fn cholesky(n: i64, tile: i64, ranks: usize) -> Box<dyn Workload> {
    let given = [("n", ParamValue::Int(n)), ("tile", ParamValue::Int(tile))];
    dagwire_workloads::find("cholesky").unwrap().build(&given, ranks, 2024).unwrap()
}

/// One rendezvous run of Cholesky(`n`, `tile`) on `ranks` ranks.
struct Point {
    n: i64,
    tile: i64,
    ranks: usize,
    eager_limit: i64,
    max_receives: i64,
    progress: Progress,
    fault: Option<Fault>,
}

impl Point {
    fn run(&self) -> (RunOutcome, Verification) {
        let w = cholesky(self.n, self.tile, self.ranks);
        let given =
            [("eager_limit", ParamValue::Int(self.eager_limit)), ("max_receives", ParamValue::Int(self.max_receives))];
        run_local(&*w, "rendezvous", &given, self.ranks, (self.progress, self.fault), &self.label())
    }

    fn label(&self) -> String {
        format!(
            "n={} tile={} ranks={} eager_limit={} max_receives={} {:?}",
            self.n, self.tile, self.ranks, self.eager_limit, self.max_receives, self.progress
        )
    }
}

fn point(ranks: usize, eager_limit: i64, max_receives: i64) -> Point {
    Point { n: 128, tile: 32, ranks, eager_limit, max_receives, progress: Progress::Thread, fault: None }
}

/// Larger than any tile moved here (32 x 32 f64 = 8 KiB).
const LARGE: i64 = 1 << 30;

#[test]
fn verified_at_two_and_four_ranks_with_and_without_the_eager_path() {
    for ranks in [2, 4] {
        for eager_limit in [0, LARGE] {
            for max_receives in [1, 64] {
                let p = point(ranks, eager_limit, max_receives);
                let (out, v) = p.run();
                let label = p.label();
                assert!(v.passed && v.value < RESIDUAL_BOUND, "{label}: {v:?}");
                let t = out.trace.message_totals();
                assert!(t.data_messages > 0, "{label}: nothing moved");
                let kinds = |k: &str| out.trace.messages.iter().filter(|m| m.kind == k).count() as u64;
                if eager_limit == 0 {
                    assert_eq!(t.control_messages, 2 * t.data_messages, "{label}: {t:?}");
                    assert_eq!(
                        (kinds("rts"), kinds("cts"), kinds("rndv-data")),
                        (t.data_messages, t.data_messages, t.data_messages)
                    );
                } else {
                    assert_eq!(t.control_messages, 0, "{label}: {t:?}");
                    assert_eq!(kinds("eager-data"), t.data_messages, "{label}");
                }
                for r in out.trace.transfers(|_| 0) {
                    assert!(
                        r.started_ns.is_some() && r.wire_ns.is_some() && r.completed_ns.is_some(),
                        "{label}: {r:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn verified_with_ragged_tiles_a_middle_limit_and_inline_progress() {
    // n = 100, tile = 32: the last tile row and column are 4 wide, so with a limit of
    // 4 KiB the ragged tiles go eagerly and the full ones by rendezvous.
    for ranks in [2, 4] {
        let p = Point { n: 100, tile: 32, eager_limit: 4096, progress: Progress::Inline, ..point(ranks, 0, 2) };
        let (out, v) = p.run();
        assert!(v.passed, "{}: {v:?}", p.label());
        let kinds: std::collections::BTreeSet<&str> = out.trace.messages.iter().map(|m| m.kind).collect();
        assert!(kinds.contains("eager-data") && kinds.contains("rndv-data"), "{}: {kinds:?}", p.label());
    }
}

#[test]
fn a_corrupted_rendezvous_transfer_fails_verification() {
    // The local driver flips a high mantissa bit of the first data message of the run;
    // with eager_limit 0 that is a rendezvous data message. On 2 ranks (a 1x2 grid)
    // only off-diagonal panel tiles travel, so every flipped element is one L uses.
    // (On a 2x2 grid the first message may be a diagonal tile whose flipped element
    // lies in the unused upper triangle: harmless, and rightly not detected.)
    for (n, tile) in [(128, 32), (100, 32), (45, 15)] {
        let p = Point { n, tile, fault: Some(Fault::CorruptDataMessage { nth: 0 }), ..point(2, 0, 64) };
        let (out, v) = p.run();
        assert!(!v.passed && v.value > RESIDUAL_BOUND, "{}: corruption went unnoticed: {v:?}", p.label());
        assert!(out.trace.messages.iter().all(|m| m.kind != "eager-data"), "{}", p.label());
    }
}
