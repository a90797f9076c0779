//! End to end: tiled Cholesky through the local driver (ranks as threads, real kernels,
//! real window bytes) with the rma strategy, verified by the workload's residual.

mod common;

use common::run_local;
use dagwire_runtime::{Fault, ParamValue, Progress, RunOutcome};
use dagwire_workloads::cholesky::RESIDUAL_BOUND;
use dagwire_workloads::{Verification, Workload};

#[derive(Clone, Copy, Debug)]
struct Point {
    n: i64,
    ranks: usize,
    mode: &'static str,
    sync: &'static str,
    inline_limit: i64,
    max_outstanding: i64,
    progress: Progress,
    fault: Option<Fault>,
}

fn point(ranks: usize, mode: &'static str, sync: &'static str) -> Point {
    Point { n: 160, ranks, mode, sync, inline_limit: 0, max_outstanding: 0, progress: Progress::Thread, fault: None }
}

impl Point {
    fn run(&self) -> (Box<dyn Workload>, RunOutcome, Verification) {
        let given = [("n", ParamValue::Int(self.n)), ("tile", ParamValue::Int(32))];
        let w = dagwire_workloads::find("cholesky").unwrap().build(&given, self.ranks, 11).unwrap();
        let given = [
            ("mode", ParamValue::Str(self.mode.into())),
            ("sync", ParamValue::Str(self.sync.into())),
            ("inline_limit", ParamValue::Int(self.inline_limit)),
            ("max_outstanding", ParamValue::Int(self.max_outstanding)),
        ];
        let (out, v) = run_local(&*w, "rma", &given, self.ranks, (self.progress, self.fault), &format!("{self:?}"));
        (w, out, v)
    }
}

#[test]
fn verified_in_every_mode_and_sync_at_two_to_four_ranks() {
    for ranks in [2, 3, 4] {
        for mode in ["get", "put"] {
            for sync in ["passive", "fence"] {
                let p = point(ranks, mode, sync);
                let (_, out, v) = p.run();
                assert!(v.passed && v.value < RESIDUAL_BOUND, "{p:?}: {v:?}");
                let kind = if mode == "get" { "rma-get" } else { "rma-put" };
                assert!(out.trace.messages.iter().any(|m| m.kind == kind), "{p:?}");
                // Every phase, in both modes: a get's bytes are on the wire from its issue.
                for r in out.trace.transfers(|_| 0) {
                    let phases = [r.posted_ns, r.started_ns, r.wire_ns, r.completed_ns];
                    assert!(phases.iter().all(Option::is_some) && phases.is_sorted(), "{p:?}: {r:?}");
                }
            }
        }
    }
}

#[test]
fn verified_with_ragged_tiles_inline_data_a_cap_and_inline_progress() {
    for mode in ["get", "put"] {
        let p = Point {
            n: 150,
            inline_limit: 6000, // edge tiles (22 x 32 x 8 bytes) go inline, full ones do not
            max_outstanding: 2,
            progress: Progress::Inline,
            ..point(4, mode, "passive")
        };
        let (_, out, v) = p.run();
        assert!(v.passed, "{p:?}: {v:?}");
        assert!(out.trace.messages.iter().any(|m| m.kind == "rma-inline"), "ragged edge tiles are small: {p:?}");
    }
}

#[test]
fn a_corrupted_put_or_get_fails_verification() {
    // The local driver flips a high mantissa bit of the run's first data transfer between
    // ranks, here a one-sided put or get. On 2 ranks only panel tiles travel.
    for mode in ["get", "put"] {
        for sync in ["passive", "fence"] {
            let p = Point { fault: Some(Fault::CorruptDataMessage { nth: 0 }), ..point(2, mode, sync) };
            let (_, _, v) = p.run();
            assert!(!v.passed && v.value > RESIDUAL_BOUND, "{p:?}: corruption went unnoticed: {v:?}");
        }
    }
}
