//! One phase vocabulary: every strategy, in every configuration, records every phase of
//! every transfer it makes (posted, started, on the wire, completed), in that order, on
//! every in-process driver — the in-memory harness, the local driver and the simulator
//! (the mpi driver's runs are checked in the experiments crate's mpi tests). Without it,
//! cross-strategy latency and overlap comparisons would compare different things.

use dagwire_runtime::drivers::local::{self, LocalConfig};
use dagwire_runtime::drivers::testing::{Timing, drive};
use dagwire_runtime::trace::{Trace, TransferRecord};
use dagwire_runtime::{ChunkId, Dag, ParamValue, Rank, Strategy};
use dagwire_sim::driver::{SimConfig, SimKernels};
use dagwire_workloads::Workload;
use std::collections::BTreeSet;
use std::time::Duration;

/// Every strategy with the parameters that change which phases it records where.
fn configurations() -> Vec<(&'static str, Vec<(&'static str, ParamValue)>)> {
    let s = |v: &str| ParamValue::Str(v.into());
    let i = ParamValue::Int;
    let mut all = vec![
        ("eager", vec![]),
        ("rendezvous", vec![("eager_limit", i(0))]),
        ("rendezvous", vec![("eager_limit", i(4096))]),
        ("batched", vec![]),
        ("batched", vec![("epochs", s("tasks")), ("epoch_tasks", i(3))]),
        ("batched", vec![("bcast_threshold", i(1))]),
        ("batched", vec![("bcast_threshold", i(1)), ("tree", s("chain")), ("segment_bytes", i(1000))]),
        ("batched", vec![("exchange", s("neighbor"))]),
        ("batched", vec![("window_usec", i(1))]),
        ("batched", vec![("exchange", s("neighbor")), ("window_usec", i(1)), ("bcast_threshold", i(1))]),
    ];
    for mode in ["get", "put"] {
        for sync in ["passive", "fence"] {
            all.push(("rma", vec![("mode", s(mode)), ("sync", s(sync))]));
        }
        all.push(("rma", vec![("mode", s(mode)), ("inline_limit", i(1 << 20))]));
        all.push(("rma", vec![("mode", s(mode)), ("max_outstanding", i(1))]));
    }
    for metadata in ["all", "readers", "none"] {
        all.push(("dagger", vec![("metadata", s(metadata))]));
    }
    all.push(("dagger", vec![("header", s("inline")), ("tag_bound", i(1))]));
    for propagation in ["star", "chain", "binomial"] {
        all.push(("parsec", vec![("propagation", s(propagation))]));
        all.push(("parsec", vec![("propagation", s(propagation)), ("short_limit", i(0)), ("max_concurrent", i(1))]));
    }
    for cache in ["on", "off"] {
        all.push(("starpu", vec![("cache", s(cache))]));
        all.push(("starpu", vec![("cache", s(cache)), ("eager_limit", i(0))]));
    }
    all
}

fn cholesky(ranks: usize) -> Box<dyn Workload> {
    let given = [("n", ParamValue::Int(96)), ("tile", ParamValue::Int(32))];
    dagwire_workloads::find("cholesky").unwrap().build(&given, ranks, 3).unwrap()
}

/// Every (chunk, reader rank) pair the DAG moves between ranks.
fn expected_transfers(dag: &Dag) -> BTreeSet<(ChunkId, Rank)> {
    (0..dag.chunk_count() as u32)
        .map(ChunkId)
        .flat_map(|c| dag.remote_readers(c).into_iter().map(move |r| (c, r)))
        .collect()
}

/// Checks that `trace` has one row per transfer of `dag`, each with every phase in order.
fn check(label: &str, dag: &Dag, trace: &Trace) {
    let rows: Vec<TransferRecord> = trace.transfers(|c| dag.chunk(c).bytes);
    let seen: BTreeSet<(ChunkId, Rank)> = rows.iter().map(|r| (r.chunk, r.dst)).collect();
    assert_eq!(seen, expected_transfers(dag), "{label}: transfer rows");
    for r in &rows {
        let phases = [r.posted_ns, r.started_ns, r.wire_ns, r.completed_ns];
        let Some(times) = phases.iter().copied().collect::<Option<Vec<u64>>>() else {
            panic!("{label}: chunk {} {} -> {} lacks a phase: {phases:?}", r.chunk, r.src, r.dst);
        };
        assert!(times.is_sorted(), "{label}: chunk {} {} -> {} phases out of order: {times:?}", r.chunk, r.src, r.dst);
    }
}

#[test]
fn every_strategy_records_every_phase_on_the_harness() {
    for ranks in [2, 4] {
        let w = cholesky(ranks);
        for (name, given) in configurations() {
            let factory = dagwire_strategies::find(name).unwrap().factory_with(&given, w.dag(), 1).unwrap();
            let strategy = |r: Rank| -> Box<dyn Strategy> { factory(r) };
            let timing = Timing { latency: 50, task_ns: 100 };
            let label = format!("harness {name} {given:?} {ranks} ranks");
            let run = drive(w.dag(), &strategy, 2, timing, 1_000_000, &mut |_| Ok(()))
                .unwrap_or_else(|e| panic!("{label}: {e}"));
            check(&label, w.dag(), &run.trace);
        }
    }
}

#[test]
fn every_strategy_records_every_phase_on_the_local_driver() {
    let ranks = 3;
    let w = cholesky(ranks);
    for (name, given) in configurations() {
        let factory = dagwire_strategies::find(name).unwrap().factory_with(&given, w.dag(), 1).unwrap();
        let cfg = LocalConfig { ranks, workers: 2, timeout: Duration::from_secs(60), ..LocalConfig::default() };
        let label = format!("local {name} {given:?}");
        let out = local::run(w.dag(), w.kernels(), &factory, &cfg).unwrap_or_else(|e| panic!("{label}: {e}"));
        assert!(w.verify(&out.results).passed, "{label}");
        check(&label, w.dag(), &out.trace);
    }
}

#[test]
fn every_strategy_records_every_phase_on_the_simulator() {
    let ranks = 4;
    let w = cholesky(ranks);
    let machine = dagwire_sim::machine::load_machine("ib-hdr-fattree").unwrap();
    for (name, given) in configurations() {
        let factory = dagwire_strategies::find(name).unwrap().factory_with(&given, w.dag(), 1).unwrap();
        let kernel_name = |k| w.kernel_name(k);
        let kernels = SimKernels { kernels: w.kernels(), name: &kernel_name };
        let cfg = SimConfig { ranks, workers: 1, run_kernels: true, seed: 1, trace: Default::default() };
        let label = format!("sim {name} {given:?}");
        let out = dagwire_sim::driver::run(w.dag(), &kernels, &factory, &machine, cfg)
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        assert!(w.verify(&out.run.results).passed, "{label}");
        check(&label, w.dag(), &out.run.trace);
    }
}
