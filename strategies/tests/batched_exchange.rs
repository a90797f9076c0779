//! batched's sparse exchange (`exchange = neighbor`) and time window (`window_usec`), on
//! every in-process driver: the in-memory harness (whose kernels check every input's
//! bytes), the local driver and the simulator (real kernels, verified by the workload).

use dagwire_runtime::collective::{CollectiveKind, Contribution};
use dagwire_runtime::drivers::local::{self, LocalConfig};
use dagwire_runtime::drivers::testing::{self, Run, Timing, fill};
use dagwire_runtime::engine::{Action, Engine, EngineError, TaskDone};
use dagwire_runtime::message::NO_CHUNK;
use dagwire_runtime::trace::{Phase, Trace};
use dagwire_runtime::{
    Capability, ChunkId, Dag, DagBuilder, Fault, KernelId, Kernels, Message, ParamValue, Payload, Rank, RunOutcome,
    Strategy, Task, TaskSpec,
};
use dagwire_sim::driver::{SimConfig, SimKernels};
use dagwire_strategies::batched::{Batched, Config, Epochs, Exchange, RunPlan, all_to_all_id, epochs};
use dagwire_workloads::Workload;
use dagwire_workloads::cholesky::RESIDUAL_BOUND;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

// ---------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------

type Given = Vec<(&'static str, ParamValue)>;

fn s(v: &str) -> ParamValue {
    ParamValue::Str(v.into())
}

/// Batched with `given` (defaults for the rest), as a sweep builds it.
fn batched(dag: &Arc<Dag>, given: &[(&'static str, ParamValue)]) -> impl Fn(Rank) -> Box<dyn Strategy> + use<> {
    dagwire_strategies::find("batched").unwrap().factory_with(given, dag, 1).unwrap()
}

fn neighbor() -> Given {
    vec![("exchange", s("neighbor"))]
}

fn cholesky(n: i64, tile: i64, ranks: usize) -> Box<dyn Workload> {
    let given = [("n", ParamValue::Int(n)), ("tile", ParamValue::Int(tile))];
    dagwire_workloads::find("cholesky").unwrap().build(&given, ranks, 2024).unwrap()
}

fn micro(pattern: &str, ranks: usize) -> Box<dyn Workload> {
    let given = [
        ("pattern", s(pattern)),
        ("size", ParamValue::Int(64)),
        ("iterations", ParamValue::Int(2)),
        ("warmup", ParamValue::Int(1)),
        ("window", ParamValue::Int(3)),
    ];
    dagwire_workloads::find("micro").unwrap().build(&given, ranks, 1).unwrap()
}

/// The micro patterns with their rank counts.
const MICRO: [(&str, usize); 5] = [("pingpong", 2), ("bandwidth", 2), ("alltoall", 4), ("broadcast", 3), ("halo", 4)];

fn harness(dag: &Arc<Dag>, given: &[(&'static str, ParamValue)], timing: Timing) -> Result<Run, String> {
    let factory = batched(dag, given);
    testing::drive(dag, &factory, 2, timing, 1_000_000, &mut |_| Ok(()))
}

fn on_local(w: &dyn Workload, given: &[(&'static str, ParamValue)], ranks: usize, fault: Option<Fault>) -> RunOutcome {
    let factory = batched(w.dag(), given);
    let cfg = LocalConfig { ranks, workers: 2, timeout: Duration::from_secs(60), fault, ..LocalConfig::default() };
    local::run(w.dag(), w.kernels(), &factory, &cfg).unwrap_or_else(|e| panic!("local {given:?}: {e}"))
}

fn on_sim(w: &dyn Workload, given: &[(&'static str, ParamValue)], ranks: usize, seed: u64) -> RunOutcome {
    let factory = batched(w.dag(), given);
    let machine = dagwire_sim::machine::load_machine("ib-hdr-fattree").unwrap();
    let name = |k| w.kernel_name(k);
    let kernels = SimKernels { kernels: w.kernels(), name: &name };
    let cfg = SimConfig { ranks, workers: 2, run_kernels: true, seed, trace: Default::default() };
    dagwire_sim::driver::run(w.dag(), &kernels, &factory, &machine, cfg)
        .unwrap_or_else(|e| panic!("sim {given:?}: {e}"))
        .run
}

/// Every (chunk, producer, reader rank) the DAG moves.
fn transfers(dag: &Dag) -> Vec<(ChunkId, Rank, Rank)> {
    (0..dag.chunk_count() as u32)
        .map(ChunkId)
        .flat_map(|c| dag.remote_readers(c).into_iter().map(move |r| (c, dag.chunk_owner(c), r)))
        .collect()
}

/// Every transfer has one row with every phase, in order.
fn check_phases(label: &str, dag: &Dag, trace: &Trace) {
    let rows = trace.transfers(|c| dag.chunk(c).bytes);
    assert_eq!(rows.len(), transfers(dag).len(), "{label}: transfer rows");
    for r in rows {
        let phases = [r.posted_ns, r.started_ns, r.wire_ns, r.completed_ns];
        assert!(phases.iter().all(Option::is_some) && phases.is_sorted(), "{label}: {r:?}");
    }
}

/// The distinct (epoch, sender, reader) of the DAG's transfers: the contributions a
/// neighbour exchange makes.
fn graph_edges(dag: &Dag, mode: Epochs) -> BTreeSet<(u32, Rank, Rank)> {
    let epoch_of = epochs(dag, mode);
    transfers(dag).into_iter().map(|(c, s, r)| (epoch_of[dag.chunk(c).producer.index()], s, r)).collect()
}

// ---------------------------------------------------------------------------------
// exchange = neighbor
// ---------------------------------------------------------------------------------

#[test]
fn neighbor_moves_every_chunk_once_per_graph_edge_on_the_harness() {
    let modes = [("level", 64, Epochs::Level), ("tasks", 5, Epochs::Tasks(5.try_into().unwrap()))];
    for ranks in [2, 3, 4, 6] {
        let w = cholesky(24, 4, ranks);
        let dag = w.dag();
        for (mode, k, epochs_mode) in modes {
            for timing in [Timing { latency: 10, task_ns: 10 }, Timing { latency: 1000, task_ns: 3 }] {
                let mut given = neighbor();
                given.extend([("epochs", s(mode)), ("epoch_tasks", ParamValue::Int(k))]);
                let label = format!("cholesky {ranks} ranks {mode}/{k} {timing:?}");
                let run = harness(dag, &given, timing).unwrap_or_else(|e| panic!("{label}: {e}"));
                assert_eq!(run.p2p_sends, 0, "{label}");
                // One contribution (message record) per edge of each epoch's graph.
                let edges = graph_edges(dag, epochs_mode);
                let records: BTreeSet<(Rank, Rank)> = run.trace.messages.iter().map(|m| (m.src, m.dst)).collect();
                assert_eq!(run.trace.messages.len(), edges.len(), "{label}");
                assert_eq!(records, edges.iter().map(|&(_, s, r)| (s, r)).collect(), "{label}");
                assert!(run.trace.messages.iter().all(|m| m.kind == "batch-data"), "{label}: no empty headers");
                let want: u64 = transfers(dag).iter().map(|&(c, _, _)| dag.chunk(c).bytes).sum();
                assert_eq!(run.trace.message_totals().data_bytes, want, "{label}");
                check_phases(&label, dag, &run.trace);
                // Every rank joins every carrying epoch's exchange, in order.
                let carrying: BTreeSet<u64> = edges.iter().map(|&(e, _, _)| all_to_all_id(e)).collect();
                for joined in &run.joins {
                    assert_eq!(joined, &carrying.iter().copied().collect::<Vec<_>>(), "{label}");
                }
            }
        }
    }
}

#[test]
fn neighbor_runs_the_micro_patterns_and_broadcast_trees_on_the_harness() {
    let timing = Timing { latency: 7, task_ns: 20 };
    for (pattern, ranks) in MICRO {
        let w = micro(pattern, ranks);
        let run = harness(w.dag(), &neighbor(), timing).unwrap_or_else(|e| panic!("{pattern}: {e}"));
        check_phases(pattern, w.dag(), &run.trace);
    }
    let w = cholesky(24, 4, 6);
    for tree in ["binomial", "chain"] {
        let mut given = neighbor();
        given.extend([("bcast_threshold", ParamValue::Int(1)), ("tree", s(tree))]);
        let run = harness(w.dag(), &given, timing).unwrap_or_else(|e| panic!("{tree}: {e}"));
        assert!(run.trace.messages.iter().any(|m| m.kind == "batch-bcast"), "{tree}");
        check_phases(tree, w.dag(), &run.trace);
    }
}

#[test]
fn a_sparse_epoch_costs_its_edges_with_neighbor_and_all_pairs_with_alltoallv() {
    // 4 ranks; epoch 0 moves one chunk r0 -> r1 and nothing else.
    let mut b = DagBuilder::new(4);
    let x = b.add(TaskSpec::new(KernelId(0), Rank(0)).outputs(&[16])).output(0);
    for r in 1..4 {
        b.add(TaskSpec::new(KernelId(0), Rank(r)).outputs(&[8]));
    }
    b.add(TaskSpec::new(KernelId(0), Rank(1)).inputs(&[x]).outputs(&[8]));
    let dag = Arc::new(b.finish());
    let timing = Timing { latency: 10, task_ns: 10 };
    let dense = harness(&dag, &[], timing).unwrap();
    let sparse = harness(&dag, &neighbor(), timing).unwrap();
    assert_eq!((dense.trace.messages.len(), sparse.trace.messages.len()), (12, 1));
    assert_eq!((dense.joins, sparse.joins.clone()), (vec![vec![0]; 4], vec![vec![0]; 4]), "every rank joins either");
    let m = &sparse.trace.messages[0];
    assert_eq!((m.src, m.dst, m.kind, m.chunk, m.bytes), (Rank(0), Rank(1), "batch-data", x, 16));
    // The same holds over whole Cholesky runs: strictly fewer contributions, the same bytes.
    let w = cholesky(32, 4, 6);
    let (dense, sparse) = (harness(w.dag(), &[], timing).unwrap(), harness(w.dag(), &neighbor(), timing).unwrap());
    let (d, s) = (dense.trace.message_totals(), sparse.trace.message_totals());
    assert!(sparse.trace.messages.len() < dense.trace.messages.len(), "{d:?} vs {s:?}");
    assert_eq!((d.data_bytes, s.control_messages), (s.data_bytes, 0));
    assert_eq!(dense.results, sparse.results);
}

#[test]
fn neighbor_is_verified_on_the_local_driver() {
    for ranks in [2, 3, 4] {
        for given in
            [neighbor(), vec![("exchange", s("neighbor")), ("epochs", s("tasks")), ("epoch_tasks", ParamValue::Int(7))]]
        {
            let w = cholesky(128, 32, ranks);
            let out = on_local(&*w, &given, ranks, None);
            let v = w.verify(&out.results);
            assert!(v.passed && v.value < RESIDUAL_BOUND, "{ranks} ranks {given:?}: {v:?}");
            assert!(out.trace.messages.iter().all(|m| m.kind == "batch-data"), "{given:?}");
            check_phases("local", w.dag(), &out.trace);
        }
    }
    for (pattern, ranks) in MICRO {
        let w = micro(pattern, ranks);
        let out = on_local(&*w, &neighbor(), ranks, None);
        assert!(w.verify(&out.results).passed, "{pattern}");
    }
}

#[test]
fn neighbor_is_verified_on_the_simulator() {
    for ranks in [2, 4, 6] {
        let w = cholesky(160, 32, ranks);
        let out = on_sim(&*w, &neighbor(), ranks, 1);
        let v = w.verify(&out.results);
        assert!(v.passed && v.value < RESIDUAL_BOUND, "{ranks} ranks: {v:?}");
        let edges = graph_edges(w.dag(), Epochs::Level);
        assert_eq!(out.trace.messages.len(), edges.len(), "{ranks} ranks: one contribution per edge");
        check_phases("sim", w.dag(), &out.trace);
    }
    for (pattern, ranks) in MICRO {
        let w = micro(pattern, ranks);
        let out = on_sim(&*w, &neighbor(), ranks, 1);
        assert!(w.verify(&out.results).passed, "{pattern}");
    }
}

#[test]
fn a_corrupted_neighbor_contribution_fails_verification() {
    let w = cholesky(128, 32, 2);
    let out = on_local(&*w, &neighbor(), 2, Some(Fault::CorruptDataMessage { nth: 0 }));
    let v = w.verify(&out.results);
    assert!(!v.passed && v.value > RESIDUAL_BOUND, "corruption went unnoticed: {v:?}");
}

/// r0 produces `x` (16 bytes), read by r1 and r2; r1 produces `y` (24 bytes) from `x`,
/// read by r2.
fn three_ranks() -> (Arc<Dag>, ChunkId, ChunkId) {
    let mut b = DagBuilder::new(3);
    let p = b.add(TaskSpec::new(KernelId(0), Rank(0)).outputs(&[16]));
    let q = b.add(TaskSpec::new(KernelId(0), Rank(1)).inputs(&[p.output(0)]).outputs(&[24]));
    b.add(TaskSpec::new(KernelId(0), Rank(2)).inputs(&[p.output(0), q.output(0)]).outputs(&[8]));
    (Arc::new(b.finish()), p.output(0), q.output(0))
}

fn engine_with(rank: u32, dag: &Arc<Dag>, cfg: Config) -> Engine {
    let plan = Arc::new(RunPlan::new(dag, cfg));
    Engine::new(Rank(rank), Arc::clone(dag), Box::new(Batched::new(&plan, Rank(rank))), 1)
}

fn actions(e: &mut Engine, now: u64) -> Vec<Action> {
    std::iter::from_fn(|| e.poll_action(now)).collect()
}

fn protocol_error(e: &Engine) -> String {
    match e.error() {
        Some(EngineError::Protocol { strategy: "batched", reason, .. }) => reason.clone(),
        other => panic!("expected a batched protocol error, got {other:?}"),
    }
}

fn data(op: u8, chunk: ChunkId, bytes: usize, epoch: u64) -> Message {
    let mut m = Message::data(op, chunk, Payload::zeroed(bytes));
    m.arg = epoch;
    m
}

fn part(from: u32, messages: Vec<Message>) -> Contribution {
    Contribution { from: Rank(from), sent_ns: 1, recv_ns: 2, messages }
}

#[test]
fn a_rank_joins_with_its_neighbours_and_refuses_lost_or_foreign_chunks() {
    let (dag, x, y) = three_ranks();
    let cfg = Config::new(Epochs::Level).with_exchange(Exchange::Neighbor);
    // r2 reads x (epoch 0, from r0) and y (epoch 1, from r1): it joins epoch 0 at once,
    // sending nothing, awaiting r0 only.
    let mut r2 = engine_with(2, &dag, cfg);
    r2.handle_start(0);
    let [Action::Collective(join)] = &actions(&mut r2, 0)[..] else { panic!("r2 joins epoch 0 at once") };
    let want = CollectiveKind::NeighborAllToAllV { sources: vec![Rank(0)], destinations: vec![] };
    assert_eq!((join.id, &join.kind, join.sends.len()), (0, &want, 0));
    // r0 sends x to r1 and r2 once it exists.
    let mut r0 = engine_with(0, &dag, cfg);
    r0.handle_start(0);
    let [Action::Run(run)] = &actions(&mut r0, 0)[..] else { panic!("r0 runs its producer") };
    let task = run.task;
    r0.handle_task_done(5, TaskDone { task, worker: 0, start_ns: 0, end_ns: 5, outputs: vec![Payload::zeroed(16)] });
    let [Action::Collective(join)] = &actions(&mut r0, 5)[..] else { panic!("r0 joins epoch 0") };
    let want = CollectiveKind::NeighborAllToAllV { sources: vec![], destinations: vec![Rank(1), Rank(2)] };
    assert_eq!(join.kind, want);
    let shape: Vec<(Rank, u8, ChunkId)> =
        join.sends.iter().flat_map(|(to, ms)| ms.iter().map(|m| (*to, m.op, m.chunk))).collect();
    assert_eq!(shape, [(Rank(1), 1, x), (Rank(2), 1, x)]);

    let cases: [(Vec<Contribution>, &str); 6] = [
        (vec![], "0 contributions, expected 1 (one per source of its graph)"),
        (vec![part(0, vec![])], "received 0 chunks, expected 1"),
        (vec![part(0, vec![Message::control(2, NO_CHUNK, 0)])], "expected batch-data messages with bytes"),
        (vec![part(0, vec![data(1, y, 24, 0)])], "does not receive in epoch 0"),
        (vec![part(0, vec![data(1, x, 16, 0), data(1, x, 16, 0)])], "already received"),
        (vec![part(1, vec![data(1, x, 16, 0)])], "does not produce"),
    ];
    for (received, want) in cases {
        let mut r2 = engine_with(2, &dag, cfg);
        r2.handle_start(0);
        let _ = actions(&mut r2, 0);
        r2.handle_collective_done(5, 0, received);
        let reason = protocol_error(&r2);
        assert!(reason.contains(want), "{reason} (wanted `{want}`)");
    }
    let mut r2 = engine_with(2, &dag, cfg);
    r2.handle_start(0);
    let _ = actions(&mut r2, 0);
    r2.handle_collective_done(5, 0, vec![part(0, vec![data(1, x, 16, 0)])]);
    assert!(r2.error().is_none(), "{:?}", r2.error());
    // Without a window, a point-to-point message is refused.
    r2.handle_message(6, Rank(1), data(4, y, 24, 1));
    assert!(protocol_error(&r2).contains("without a time window"));
}

#[test]
fn registered_with_checked_exchange_and_window() {
    let info = dagwire_strategies::find("batched").unwrap();
    let err = info.needs_with(&[("exchange", s("sparse"))]).unwrap_err().to_string();
    assert!(err.contains("exchange") && err.contains("alltoallv, neighbor"), "{err}");
    let err = info.needs_with(&[("window_usec", ParamValue::Int(-1))]).unwrap_err().to_string();
    assert!(err.contains("window_usec"), "{err}");
    assert_eq!(info.needs_with(&neighbor()).unwrap(), &[Capability::NeighborAllToAllV]);
    let both =
        [("exchange", s("neighbor")), ("window_usec", ParamValue::Int(3)), ("bcast_threshold", ParamValue::Int(2))];
    assert_eq!(
        info.needs_with(&both).unwrap(),
        &[Capability::PointToPoint, Capability::NeighborAllToAllV, Capability::Broadcast]
    );
    // A driver without neighbour collectives refuses it, naming both.
    let offers = [Capability::PointToPoint, Capability::AllToAllV];
    let err = dagwire_runtime::collective::check_capabilities(
        "old",
        &offers,
        "batched",
        info.needs_with(&neighbor()).unwrap(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("neighbor all-to-all-v") && err.contains("old"), "{err}");
}

// ---------------------------------------------------------------------------------
// window_usec
// ---------------------------------------------------------------------------------

/// r0 runs three epoch-0 tasks one after the other, each producing a chunk read on r1;
/// r1 adds them up.
fn slow_producer() -> (Arc<Dag>, [ChunkId; 3]) {
    let mut b = DagBuilder::new(2);
    let c: [ChunkId; 3] =
        std::array::from_fn(|i| b.add(TaskSpec::new(KernelId(0), Rank(0)).outputs(&[8 * (i as u64 + 1)])).output(0));
    b.add(TaskSpec::new(KernelId(0), Rank(1)).inputs(&c).outputs(&[8]));
    (Arc::new(b.finish()), c)
}

fn window(us: i64, exchange: &str) -> Given {
    vec![("window_usec", ParamValue::Int(us)), ("exchange", s(exchange))]
}

/// When each chunk first reached a reader (its earliest `Completed`).
fn first_delivery(trace: &Trace) -> u64 {
    trace.transfer_events.iter().filter(|e| e.phase == Phase::Completed).map(|e| e.at_ns).min().unwrap()
}

#[test]
fn a_window_joins_early_and_sends_the_rest_late_on_the_harness() {
    let (dag, c) = slow_producer();
    // One worker: r0's tasks end at 5, 10 and 15 us; the window is 1 us.
    let timing = Timing { latency: 100, task_ns: 5_000 };
    let one_worker = |given: &[(&'static str, ParamValue)]| {
        let factory = batched(&dag, given);
        testing::drive(&dag, &factory, 1, timing, 10_000, &mut |_| Ok(())).unwrap()
    };
    for exchange in ["alltoallv", "neighbor"] {
        let off = one_worker(&[("exchange", s(exchange))]);
        let on = one_worker(&window(1, exchange));
        assert_eq!(off.results, on.results, "{exchange}");
        // Without a window epoch 0 joins at 15 us; with it at 5 + 1 us, carrying c0.
        let started = |run: &Run, chunk| {
            run.trace.transfer_events.iter().find(|e| e.chunk == chunk && e.phase == Phase::Started).unwrap().at_ns
        };
        assert_eq!((started(&off, c[0]), started(&on, c[0])), (15_000, 6_000), "{exchange}");
        assert_eq!(first_delivery(&off.trace), 15_000 + 100, "{exchange}");
        assert_eq!(first_delivery(&on.trace), 6_000 + 100, "{exchange}");
        // c1 and c2 come after the early join: late sends, straight from their producer.
        let late: Vec<(ChunkId, u64, u64)> = on
            .trace
            .messages
            .iter()
            .filter(|m| m.kind == "batch-late")
            .map(|m| (m.chunk, m.sent_ns, m.recv_ns))
            .collect();
        assert_eq!(late, [(c[1], 10_000, 10_100), (c[2], 15_000, 15_100)], "{exchange}");
        assert_eq!(on.p2p_sends, 2, "{exchange}");
        check_phases(exchange, &dag, &on.trace);
        check_phases(exchange, &dag, &off.trace);
    }
    // A window longer than the gaps between chunks never fires: the same schedule.
    let long = one_worker(&window(50, "alltoallv"));
    assert_eq!(first_delivery(&long.trace), 15_100);
    assert_eq!(long.p2p_sends, 0);
}

#[test]
fn windowed_runs_stay_correct_on_the_harness() {
    // Short windows on whole Cholesky and micro DAGs: joins early often, every chunk
    // still arrives once with the right bytes (the harness's kernels check them).
    let timing = Timing { latency: 300, task_ns: 2_000 };
    for exchange in ["alltoallv", "neighbor"] {
        let mut late = 0;
        for ranks in [2, 4] {
            let w = cholesky(24, 4, ranks);
            for mode in ["level", "tasks"] {
                let mut given = window(1, exchange);
                given.extend([("epochs", s(mode)), ("epoch_tasks", ParamValue::Int(3))]);
                let run = harness(w.dag(), &given, timing).unwrap_or_else(|e| panic!("{exchange} {mode}: {e}"));
                late += run.p2p_sends;
                check_phases(exchange, w.dag(), &run.trace);
            }
        }
        assert!(late > 0, "{exchange}: the window never sent late; the test proves nothing");
        for (pattern, ranks) in MICRO {
            let w = micro(pattern, ranks);
            harness(w.dag(), &window(1, exchange), timing).unwrap_or_else(|e| panic!("{pattern}: {e}"));
        }
    }
}

#[test]
fn a_late_chunk_is_checked_like_any_other() {
    let (dag, x, y) = three_ranks();
    let cfg = Config::new(Epochs::Level).with_window_usec(1);
    let fresh = || {
        let mut r2 = engine_with(2, &dag, cfg);
        r2.handle_start(0);
        let _ = actions(&mut r2, 0);
        r2
    };
    // x comes late from r0 before epoch 0's exchange completes; the exchange must not
    // bring it again.
    let mut r2 = fresh();
    r2.handle_message(3, Rank(0), data(4, x, 16, 0));
    assert!(r2.error().is_none(), "{:?}", r2.error());
    r2.handle_collective_done(5, 0, vec![part(0, vec![data(1, x, 16, 0)]), part(1, vec![])]);
    assert!(protocol_error(&r2).contains("already received"));
    let cases = [
        (Rank(0), data(4, x, 16, 1), "does not receive"),
        (Rank(1), data(4, x, 16, 0), "does not produce"),
        (Rank(0), data(1, x, 16, 0), "only late sends"),
    ];
    for (from, msg, want) in cases {
        let mut r2 = fresh();
        r2.handle_message(3, from, msg);
        let reason = protocol_error(&r2);
        assert!(reason.contains(want), "{reason} (wanted `{want}`)");
    }
    let mut r2 = fresh();
    r2.handle_message(3, Rank(0), data(4, x, 16, 0));
    r2.handle_message(4, Rank(0), data(4, x, 16, 0));
    assert!(protocol_error(&r2).contains("already received"));
    // An exchange that brings fewer chunks is fine with a window (the rest come late).
    let mut r2 = fresh();
    r2.handle_collective_done(5, 0, vec![part(0, vec![]), part(1, vec![])]);
    assert!(r2.error().is_none(), "{:?}", r2.error());
    let _ = y;
}

#[test]
fn windowed_cholesky_is_verified_on_local_and_sim() {
    for exchange in ["alltoallv", "neighbor"] {
        for ranks in [2, 4] {
            let w = cholesky(128, 32, ranks);
            let out = on_local(&*w, &window(1, exchange), ranks, None);
            let v = w.verify(&out.results);
            assert!(v.passed && v.value < RESIDUAL_BOUND, "local {exchange} {ranks}: {v:?}");
            check_phases("local", w.dag(), &out.trace);
            let out = on_sim(&*w, &window(1, exchange), ranks, 1);
            let v = w.verify(&out.results);
            assert!(v.passed && v.value < RESIDUAL_BOUND, "sim {exchange} {ranks}: {v:?}");
            check_phases("sim", w.dag(), &out.trace);
        }
        let w = micro("alltoall", 4);
        assert!(w.verify(&on_local(&*w, &window(1, exchange), 4, None).results).passed);
        assert!(w.verify(&on_sim(&*w, &window(1, exchange), 4, 1).results).passed);
    }
}

/// Kernels for hand-made DAGs: each output is filled with [`fill`] of its chunk, and
/// each input (listed in the task's `args`) must hold its chunk's fill.
struct Filled(Arc<Dag>);

impl Kernels for Filled {
    fn run(&self, task: &Task, inputs: Vec<Payload>) -> Result<Vec<Payload>, String> {
        for (i, p) in inputs.iter().enumerate() {
            let c = ChunkId(task.args[i]);
            if p.as_bytes().iter().any(|&b| b != fill(c)) {
                return Err(format!("wrong bytes for chunk {c}"));
            }
        }
        Ok(task.outputs().map(|c| Payload::from_bytes(&vec![fill(c); self.0.chunk(c).bytes as usize])).collect())
    }
}

#[test]
fn in_the_simulator_a_window_fires_at_its_virtual_time_and_moves_the_first_delivery() {
    // r0: a short task then a long one (10 GFLOP), both of epoch 0, read on r1.
    let mut b = DagBuilder::new(2);
    let short = b.add(TaskSpec::new(KernelId(0), Rank(0)).outputs(&[64]).flops(1e3)).output(0);
    let long = b.add(TaskSpec::new(KernelId(0), Rank(0)).outputs(&[64]).flops(1e10)).output(0);
    let args = [short.0, long.0, 0, 0];
    b.add(TaskSpec::new(KernelId(0), Rank(1)).inputs(&[short, long]).outputs(&[8]).args(args));
    let dag = Arc::new(b.finish());
    let machine = dagwire_sim::machine::load_machine("ib-hdr-fattree").unwrap();
    let kernels = Filled(Arc::clone(&dag));
    let run = |given: &[(&'static str, ParamValue)], seed: u64| {
        let factory = batched(&dag, given);
        let sk = SimKernels { kernels: &kernels, name: &|_| "work" };
        let cfg = SimConfig { ranks: 2, workers: 1, run_kernels: true, seed, trace: Default::default() };
        dagwire_sim::driver::run(&dag, &sk, &factory, &machine, cfg).unwrap().run
    };
    for exchange in ["alltoallv", "neighbor"] {
        let off = run(&[("exchange", s(exchange))], 1);
        let on = run(&window(3, exchange), 1);
        let end_of = |out: &RunOutcome, chunk: ChunkId| {
            out.trace.tasks.iter().find(|t| t.task == dag.chunk(chunk).producer).unwrap().end_ns
        };
        let started = |out: &RunOutcome, chunk: ChunkId| {
            out.trace.transfer_events.iter().find(|e| e.chunk == chunk && e.phase == Phase::Started).unwrap().at_ns
        };
        // The window fires exactly 3 us after the short chunk: that is when r0 joins.
        assert_eq!(started(&on, short), end_of(&on, short) + 3_000, "{exchange}");
        assert!(end_of(&on, long) > end_of(&on, short) + 3_000, "{exchange}: the long task outlasts the window");
        assert_eq!(started(&off, short), end_of(&off, long), "{exchange}: without it, after the last producer");
        assert!(first_delivery(&on.trace) < end_of(&on, long), "{exchange}: delivered before the long task ends");
        assert!(first_delivery(&off.trace) > end_of(&off, long), "{exchange}");
        let late: Vec<ChunkId> = on.trace.messages.iter().filter(|m| m.kind == "batch-late").map(|m| m.chunk).collect();
        assert_eq!(late, [long], "{exchange}");
        // Verified: r1's kernel checked both inputs' bytes; the result exists.
        assert_eq!(on.results.len(), 1);
        assert_eq!(on.results.values().next().unwrap().as_bytes(), off.results.values().next().unwrap().as_bytes());
        check_phases(exchange, &dag, &on.trace);
        // Deterministic: the same inputs and seed give the same trace.
        assert_eq!(on.trace, run(&window(3, exchange), 1).trace, "{exchange}");
    }
    // And on Cholesky, bit for bit.
    let w = cholesky(160, 32, 4);
    let (a, b) = (on_sim(&*w, &window(1, "neighbor"), 4, 9), on_sim(&*w, &window(1, "neighbor"), 4, 9));
    assert_eq!(a.trace, b.trace);
    assert_eq!(a.makespan_ns, b.makespan_ns);
}
