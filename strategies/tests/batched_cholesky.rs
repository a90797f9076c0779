//! End to end: tiled Cholesky through the local driver (ranks as threads, real
//! kernels) with the batched strategy, verified by the workload's residual.

mod common;

use common::run_local;
use dagwire_runtime::{Fault, ParamValue, Progress, RunOutcome};
use dagwire_strategies::batched::{Epochs, epochs};
use dagwire_workloads::cholesky::RESIDUAL_BOUND;
use dagwire_workloads::{Verification, Workload};
use std::collections::BTreeSet;
use std::num::NonZeroU32;

fn cholesky(n: i64, tile: i64, ranks: usize) -> Box<dyn Workload> {
    let given = [("n", ParamValue::Int(n)), ("tile", ParamValue::Int(tile))];
    dagwire_workloads::find("cholesky").unwrap().build(&given, ranks, 2024).unwrap()
}

/// One batched run of Cholesky(`n`, `tile`) on `ranks` ranks.
#[derive(Clone, Copy, Debug)]
struct Point {
    n: i64,
    tile: i64,
    ranks: usize,
    epochs: &'static str,
    epoch_tasks: i64,
    bcast_threshold: i64,
    tree: &'static str,
    alltoall: &'static str,
    progress: Progress,
    fault: Option<Fault>,
}

impl Point {
    fn run(&self) -> (Box<dyn Workload>, RunOutcome, Verification) {
        let w = cholesky(self.n, self.tile, self.ranks);
        let given = [
            ("epochs", ParamValue::Str(self.epochs.into())),
            ("epoch_tasks", ParamValue::Int(self.epoch_tasks)),
            ("bcast_threshold", ParamValue::Int(self.bcast_threshold)),
            ("tree", ParamValue::Str(self.tree.into())),
            ("alltoall", ParamValue::Str(self.alltoall.into())),
            ("segment_bytes", ParamValue::Int(1000)),
        ];
        let (out, v) = run_local(&*w, "batched", &given, self.ranks, (self.progress, self.fault), &format!("{self:?}"));
        (w, out, v)
    }

    fn mode(&self) -> Epochs {
        match self.epochs {
            "level" => Epochs::Level,
            _ => Epochs::Tasks(NonZeroU32::new(self.epoch_tasks as u32).unwrap()),
        }
    }
}

fn point(ranks: usize, epochs: &'static str, epoch_tasks: i64) -> Point {
    Point {
        n: 128,
        tile: 32,
        ranks,
        epochs,
        epoch_tasks,
        bcast_threshold: 0,
        tree: "binomial",
        alltoall: "pairwise",
        progress: Progress::Thread,
        fault: None,
    }
}

#[test]
fn verified_at_two_to_four_ranks_in_both_epoch_modes() {
    for ranks in [2, 3, 4] {
        for (mode, k) in [("level", 64), ("tasks", 1), ("tasks", 7), ("tasks", 1000)] {
            let p = point(ranks, mode, k);
            let (w, out, v) = p.run();
            assert!(v.passed && v.value < RESIDUAL_BOUND, "{p:?}: {v:?}");
            let kinds: BTreeSet<&str> = out.trace.messages.iter().map(|m| m.kind).collect();
            assert!(kinds.contains("batch-data") && kinds.is_subset(&["batch-data", "empty"].into()), "{kinds:?}");
            // One contribution per ordered rank pair per collective, and nothing else.
            let dag = w.dag();
            let epoch_of = epochs(dag, p.mode());
            let carrying: BTreeSet<u32> = (0..dag.chunk_count() as u32)
                .map(dagwire_runtime::ChunkId)
                .filter(|&c| !dag.remote_readers(c).is_empty())
                .map(|c| epoch_of[dag.chunk(c).producer.index()])
                .collect();
            assert_eq!(out.trace.messages.len(), carrying.len() * ranks * (ranks - 1), "{p:?}");
            for r in out.trace.transfers(|_| 0) {
                let phases = [r.posted_ns, r.started_ns, r.wire_ns, r.completed_ns];
                assert!(phases.iter().all(Option::is_some) && phases.is_sorted(), "{p:?}: {r:?}");
            }
        }
    }
}

#[test]
fn verified_with_ragged_tiles_and_inline_progress() {
    for ranks in [2, 4] {
        for (mode, k) in [("level", 1), ("tasks", 3)] {
            let p = Point { n: 100, progress: Progress::Inline, ..point(ranks, mode, k) };
            let (_, _, v) = p.run();
            assert!(v.passed, "{p:?}: {v:?}");
        }
    }
}

#[test]
fn a_corrupted_collective_contribution_fails_verification() {
    // The local driver flips a high mantissa bit of the run's first data message, here
    // a chunk inside an all-to-all-v contribution. On 2 ranks only off-diagonal panel
    // tiles travel, so every flipped element is one L uses.
    for (mode, k) in [("level", 1), ("tasks", 5)] {
        let p = Point { fault: Some(Fault::CorruptDataMessage { nth: 0 }), ..point(2, mode, k) };
        let (_, _, v) = p.run();
        assert!(!v.passed && v.value > RESIDUAL_BOUND, "{p:?}: corruption went unnoticed: {v:?}");
    }
}

#[test]
fn verified_with_broadcast_trees_for_many_reader_tiles() {
    // 6 ranks on a 2 x 3 grid: panel tiles are read on up to 4 other ranks.
    for (threshold, tree) in [(1, "binomial"), (2, "chain"), (1, "chain")] {
        for (mode, k) in [("level", 1), ("tasks", 4)] {
            let p = Point { n: 192, bcast_threshold: threshold, tree, ..point(6, mode, k) };
            let (w, out, v) = p.run();
            assert!(v.passed && v.value < RESIDUAL_BOUND, "{p:?}: {v:?}");
            let bcasts = out.trace.messages.iter().filter(|m| m.kind == "batch-bcast").count();
            let dag = w.dag();
            let edges: usize = (0..dag.chunk_count() as u32)
                .map(|c| dag.remote_readers(dagwire_runtime::ChunkId(c)).len())
                .filter(|&n| n > threshold as usize)
                .sum();
            assert!(edges > 0 && bcasts == edges, "{p:?}: {bcasts} broadcast records, {edges} tree edges");
        }
    }
}

#[test]
fn verified_with_bruck_all_to_all_vs() {
    // 3 and 5 ranks are not powers of two: Bruck's last round moves fewer blocks.
    for ranks in [3, 4, 5] {
        for (mode, k) in [("level", 1), ("tasks", 4)] {
            let p = Point { n: 160, alltoall: "bruck", ..point(ranks, mode, k) };
            let (_, out, v) = p.run();
            assert!(v.passed && v.value < RESIDUAL_BOUND, "{p:?}: {v:?}");
            assert!(out.trace.messages.iter().any(|m| m.kind == "batch-data"), "{p:?}");
        }
    }
}
