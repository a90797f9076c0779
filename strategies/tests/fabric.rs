//! The fabric strategy: its protocol on the in-memory harness (chunks below and above
//! `rdv_limit`, with and without the registration cache; every read after its key
//! arrived, every registration withdrawn only after its readers released it, which the
//! harness checks), then tiled Cholesky verified through the local and sim drivers,
//! and a corrupted one-sided read failing verification. (The mpi driver's refusal is
//! checked where sweeps are: `experiments/tests/sweep_errors.rs`.)

use dagwire_runtime::drivers::local::{self, LocalConfig};
use dagwire_runtime::drivers::testing::{self, Run, Timing};
use dagwire_runtime::trace::{MessageRecord, REGISTRATION};
use dagwire_runtime::{ChunkId, Dag, DagBuilder, Fault, KernelId, ParamValue, Rank, RunOutcome, Strategy, TaskSpec};
use dagwire_sim::driver::{SimConfig, SimKernels};
use dagwire_workloads::Workload;
use dagwire_workloads::cholesky::RESIDUAL_BOUND;
use std::sync::Arc;
use std::time::Duration;

fn fabric(dag: &Arc<Dag>, rdv_limit: i64, mr_cache: &str) -> impl Fn(Rank) -> Box<dyn Strategy> + Sync + use<> {
    let given = [("rdv_limit", ParamValue::Int(rdv_limit)), ("mr_cache", ParamValue::Str(mr_cache.into()))];
    dagwire_strategies::find("fabric").unwrap().factory_with(&given, dag, 1).unwrap()
}

/// Rank 0 produces a 40-byte and a 4096-byte chunk; ranks 1, 2 and 3 read both; rank 1
/// produces a 2048-byte chunk that ranks 0 and 2 read. 8 transfers, 3 chunks.
fn fan_dag() -> Arc<Dag> {
    const K: KernelId = KernelId(0);
    let mut b = DagBuilder::new(4);
    let p = b.add(TaskSpec::new(K, Rank(0)).outputs(&[40, 4096]));
    let (small, big) = (p.output(0), p.output(1));
    let q = b.add(TaskSpec::new(K, Rank(1)).inputs(&[small, big]).outputs(&[2048])).output(0);
    b.add(TaskSpec::new(K, Rank(2)).inputs(&[small, big, q]).outputs(&[8]));
    b.add(TaskSpec::new(K, Rank(3)).inputs(&[big, small]).outputs(&[8]));
    b.add(TaskSpec::new(K, Rank(0)).inputs(&[q]).outputs(&[8]));
    Arc::new(b.finish())
}

fn harness(dag: &Arc<Dag>, rdv_limit: i64, mr_cache: &str) -> Run {
    let factory = fabric(dag, rdv_limit, mr_cache);
    let timing = Timing { latency: 1000, task_ns: 5000 };
    testing::drive(dag, &factory, 2, timing, 100_000, &mut |v| Err(format!("{} joined a collective", v.rank)))
        .unwrap_or_else(|e| panic!("rdv_limit {rdv_limit}, mr_cache {mr_cache}: {e}"))
}

fn kinds(run: &Run, chunk: ChunkId) -> Vec<&MessageRecord> {
    let mut ms: Vec<&MessageRecord> = run.trace.messages.iter().filter(|m| m.chunk == chunk).collect();
    ms.sort_by_key(|m| (m.sent_ns, m.recv_ns));
    ms
}

#[test]
fn below_the_limit_chunks_go_as_one_tagged_message() {
    let dag = fan_dag();
    let run = harness(&dag, 1 << 20, "on");
    let t = run.trace.message_totals();
    assert_eq!((t.data_messages, t.control_messages, t.registrations), (8, 0, 0), "{t:?}");
    assert!(run.trace.messages.iter().all(|m| m.kind == "fabric-eager"));
}

#[test]
fn above_the_limit_the_reader_pulls_the_registered_chunk_and_releases_it() {
    let dag = fan_dag();
    for (cache, registrations) in [("on", 2), ("off", 5)] {
        // 100 bytes: the 40-byte chunk goes eagerly (3 transfers), the others are pulled
        // (3 readers of the 4096-byte chunk, 2 of the 2048-byte one).
        let run = harness(&dag, 100, cache);
        let t = run.trace.message_totals();
        assert_eq!((t.data_messages, t.control_messages), (3 + 5, 2 * 5), "{cache}: {t:?}");
        assert_eq!(t.registrations, registrations, "mr_cache = {cache}: {t:?}");
        assert!(t.registration_ns > 0);
        let big = ChunkId(1);
        for reader in [Rank(1), Rank(2), Rank(3)] {
            let of_pair: Vec<&str> = kinds(&run, big)
                .into_iter()
                .filter(|m| m.kind != REGISTRATION && (m.src == reader || m.dst == reader))
                .map(|m| m.kind)
                .collect();
            assert_eq!(of_pair, ["fabric-key", "rdma-read", "fabric-release"], "{cache}, {reader}");
        }
        // The key message leaves only once its registration completed; reads start
        // after their key arrived.
        let ms = kinds(&run, big);
        let reg_done = ms.iter().filter(|m| m.kind == REGISTRATION).map(|m| m.recv_ns).min().unwrap();
        let first_key = ms.iter().find(|m| m.kind == "fabric-key").unwrap();
        assert!(first_key.sent_ns >= reg_done, "{cache}: key sent before the registration completed");
        for r in run.trace.transfers(|_| 0).into_iter().filter(|r| r.chunk == big) {
            let phases = [r.posted_ns, r.started_ns, r.wire_ns, r.completed_ns];
            assert!(phases.iter().all(Option::is_some) && phases.is_sorted(), "{cache}: {r:?}");
        }
    }
}

fn cholesky(ranks: usize) -> Box<dyn Workload> {
    let given = [("n", ParamValue::Int(192)), ("tile", ParamValue::Int(32))];
    dagwire_workloads::find("cholesky").unwrap().build(&given, ranks, 5).unwrap()
}

fn on_local(w: &dyn Workload, ranks: usize, rdv_limit: i64, cache: &str, fault: Option<Fault>) -> RunOutcome {
    let factory = fabric(w.dag(), rdv_limit, cache);
    let cfg = LocalConfig { ranks, workers: 2, timeout: Duration::from_secs(60), fault, ..LocalConfig::default() };
    local::run(w.dag(), w.kernels(), &factory, &cfg).unwrap_or_else(|e| panic!("local {rdv_limit} {cache}: {e}"))
}

fn on_sim(w: &dyn Workload, ranks: usize, rdv_limit: i64, cache: &str) -> RunOutcome {
    let factory = fabric(w.dag(), rdv_limit, cache);
    let machine = dagwire_sim::machine::load_machine("ib-hdr-fattree").unwrap();
    let name = |k| w.kernel_name(k);
    let kernels = SimKernels { kernels: w.kernels(), name: &name };
    let cfg = SimConfig { ranks, workers: 2, run_kernels: true, seed: 3, trace: Default::default() };
    dagwire_sim::driver::run(w.dag(), &kernels, &factory, &machine, cfg)
        .unwrap_or_else(|e| panic!("sim {rdv_limit} {cache}: {e}"))
        .run
}

#[test]
fn cholesky_verifies_on_local_and_sim_below_and_above_the_limit() {
    for ranks in [2, 3, 4] {
        let w = cholesky(ranks);
        // 32 x 32 tiles are 8 KiB: a limit of 1 MiB sends them all as messages, 0 pulls them all.
        for (rdv_limit, cache) in [(1 << 20, "on"), (0, "on"), (0, "off")] {
            for (driver, out) in
                [("local", on_local(&*w, ranks, rdv_limit, cache, None)), ("sim", on_sim(&*w, ranks, rdv_limit, cache))]
            {
                let v = w.verify(&out.results);
                assert!(v.passed && v.value < RESIDUAL_BOUND, "{driver} {ranks} ranks {rdv_limit} {cache}: {v:?}");
                let t = out.trace.message_totals();
                if rdv_limit == 0 {
                    assert!(t.registrations > 0 && t.control_messages == 2 * t.data_messages, "{driver}: {t:?}");
                    assert!(out.trace.messages.iter().any(|m| m.kind == "rdma-read"));
                } else {
                    assert_eq!((t.registrations, t.control_messages), (0, 0), "{driver}: {t:?}");
                }
            }
        }
    }
}

#[test]
fn the_registration_cache_saves_registrations_when_chunks_have_several_readers() {
    // 2D block-cyclic on 4 ranks: a panel tile is read on several ranks.
    let w = cholesky(4);
    let on = on_sim(&*w, 4, 0, "on").trace.message_totals();
    let off = on_sim(&*w, 4, 0, "off").trace.message_totals();
    assert_eq!(off.registrations, off.data_messages, "off: one registration per transfer: {off:?}");
    assert!(on.registrations < off.registrations, "on {on:?} vs off {off:?}");
    assert!(on.registration_ns < off.registration_ns);
}

#[test]
fn a_corrupted_one_sided_read_fails_verification() {
    let w = cholesky(2);
    let out = on_local(&*w, 2, 0, "on", Some(Fault::CorruptDataMessage { nth: 0 }));
    let v = w.verify(&out.results);
    assert!(!v.passed && v.value > RESIDUAL_BOUND, "corruption went unnoticed: {v:?}");
}
