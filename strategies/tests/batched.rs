//! The batched strategy on an in-memory N-rank harness (simulated time, a latency for
//! collectives, a task duration, a bounded number of steps) over the sans-IO engine,
//! plus scripted single-engine exchanges for the protocol's error paths and property
//! checks of the epoch cut.

use dagwire_runtime::collective::{
    AllToAllAlgorithm, Capability, CollectiveKind, Contribution, Tree, check_capabilities,
};
use dagwire_runtime::drivers::testing::{self, JoinView, Run, Timing};
use dagwire_runtime::engine::{Action, Engine, EngineError, TaskDone};
use dagwire_runtime::message::{HEADER_BYTES, NO_CHUNK};
use dagwire_runtime::rng::{self, RngExt};
use dagwire_runtime::trace::Phase;
use dagwire_runtime::{
    ChunkId, Dag, DagBuilder, KernelId, Message, MessageClass, ParamValue, Params, Payload, Rank, Strategy, TaskId,
    TaskSpec,
};
use dagwire_strategies::batched::{Batched, Config, Epochs, RunPlan, all_to_all_id, broadcast_id, epochs};
use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU32;
use std::sync::Arc;

/// The all-to-all-v kind most tests join.
const PAIRWISE: CollectiveKind = CollectiveKind::AllToAllV { algorithm: AllToAllAlgorithm::Pairwise };

// ---------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------

/// A batched instance through the registry, as a sweep would build it, moving every
/// chunk in all-to-all-vs.
fn batched(dag: &Arc<Dag>, mode: &str, epoch_tasks: i64) -> impl Fn(Rank) -> Box<dyn Strategy> + use<> {
    with_trees(dag, mode, epoch_tasks, 0, "binomial")
}

/// The same with broadcasts for chunks read on more than `threshold` other ranks.
fn with_trees(
    dag: &Arc<Dag>,
    mode: &str,
    epoch_tasks: i64,
    threshold: i64,
    tree: &str,
) -> impl Fn(Rank) -> Box<dyn Strategy> + use<> {
    with_alltoall(dag, mode, epoch_tasks, threshold, tree, "pairwise")
}

/// The same with the all-to-all-v algorithm `alltoall`.
fn with_alltoall(
    dag: &Arc<Dag>,
    mode: &str,
    epoch_tasks: i64,
    threshold: i64,
    tree: &str,
    alltoall: &str,
) -> impl Fn(Rank) -> Box<dyn Strategy> + use<> {
    let given = [
        ("alltoall", ParamValue::Str(alltoall.into())),
        ("epochs", ParamValue::Str(mode.into())),
        ("epoch_tasks", ParamValue::Int(epoch_tasks)),
        ("bcast_threshold", ParamValue::Int(threshold)),
        ("tree", ParamValue::Str(tree.into())),
        ("segment_bytes", ParamValue::Int(100)),
    ];
    dagwire_strategies::find("batched").unwrap().factory_with(&given, dag, 1).unwrap()
}

fn mode_of(mode: &str, epoch_tasks: i64) -> Epochs {
    match mode {
        "level" => Epochs::Level,
        _ => Epochs::Tasks(NonZeroU32::new(epoch_tasks as u32).unwrap()),
    }
}

/// Runs `dag` on the shared harness (two workers per rank), which checks that each
/// rank has one collective open at a time, in increasing id order, with members
/// agreeing on its kind; this adds batched's own rule: a rank joins epoch e's
/// collective (epoch = id / 2^32) only once all its tasks of that epoch producing
/// chunks read elsewhere have finished (`epoch_of` gives each task's epoch).
fn drive(
    dag: &Arc<Dag>,
    strategy: &dyn Fn(Rank) -> Box<dyn Strategy>,
    epoch_of: &[u32],
    timing: Timing,
    max_steps: usize,
) -> Result<Run, String> {
    let crosses = |c: ChunkId| dag.consumers(c).iter().any(|&t| dag.task(t).owner != dag.chunk_owner(c));
    let mut producers_done = |v: &JoinView<'_>| {
        let epoch = v.join.id >> 32;
        let early: Vec<TaskId> = dag
            .tasks_of(v.rank)
            .iter()
            .copied()
            .filter(|&t| epoch_of[t.index()] as u64 == epoch)
            .filter(|&t| dag.task(t).outputs().any(crosses) && !v.finished.contains(&t))
            .collect();
        if early.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} joined collective {} (epoch {epoch}) before its producers {early:?} finished",
                v.rank, v.join.id
            ))
        }
    };
    testing::drive(dag, strategy, 2, timing, max_steps, &mut producers_done)
}

/// Every (chunk, producer rank, reader rank) the DAG moves.
fn transfers(dag: &Dag) -> Vec<(ChunkId, Rank, Rank)> {
    (0..dag.chunk_count() as u32)
        .map(ChunkId)
        .flat_map(|c| dag.remote_readers(c).into_iter().map(move |r| (c, dag.chunk_owner(c), r)))
        .collect()
}

/// The epochs in which some chunk crosses ranks, ascending.
fn carrying_epochs(dag: &Dag, epoch_of: &[u32]) -> Vec<u64> {
    let set: BTreeSet<u64> =
        transfers(dag).iter().map(|&(c, _, _)| epoch_of[dag.chunk(c).producer.index()] as u64).collect();
    set.into_iter().collect()
}

/// The collectives `rank` must join, in order: epoch `e`'s all-to-all-v if a chunk of
/// `e` read on at most `threshold` other ranks (any, for 0) crosses ranks, and the
/// broadcast of each chunk of `e` read on more, if `rank` produces or reads it.
fn expected_ids(dag: &Dag, epoch_of: &[u32], threshold: usize, rank: Rank) -> Vec<u64> {
    let mut ids = BTreeSet::new();
    for c in (0..dag.chunk_count() as u32).map(ChunkId) {
        let readers = dag.remote_readers(c);
        let e = epoch_of[dag.chunk(c).producer.index()];
        if readers.is_empty() {
            continue;
        }
        if threshold == 0 || readers.len() <= threshold {
            ids.insert(all_to_all_id(e));
        } else if dag.chunk_owner(c) == rank || readers.contains(&rank) {
            ids.insert(broadcast_id(e, c));
        }
    }
    ids.into_iter().collect()
}

/// The message records a run must leave: `p (p - 1)` per all-to-all-v, one per tree
/// edge (reader rank) per broadcast.
fn expected_messages(dag: &Dag, epoch_of: &[u32], threshold: usize) -> usize {
    let p = dag.ranks();
    let a2a =
        (0..p).flat_map(|r| expected_ids(dag, epoch_of, threshold, Rank(r as u32))).filter(|id| id & 0xffff_ffff == 0);
    let a2a: BTreeSet<u64> = a2a.collect();
    let broadcast_edges: usize = (0..dag.chunk_count() as u32)
        .map(|c| dag.remote_readers(ChunkId(c)).len())
        .filter(|&n| threshold > 0 && n > threshold)
        .sum();
    a2a.len() * p * (p - 1) + broadcast_edges
}

/// Rank 0 produces four chunks read by ranks 1..3, which send partial results back to
/// rank 0; rank 2 also reads one of rank 1's outputs; a long local chain on rank 3.
fn fan_dag() -> Arc<Dag> {
    const K: KernelId = KernelId(0);
    let mut b = DagBuilder::new(4);
    let p0 = b.add(TaskSpec::new(K, Rank(0)).outputs(&[40, 256]));
    let p1 = b.add(TaskSpec::new(K, Rank(0)).outputs(&[1000, 4096]));
    let (a, bb, c, d) = (p0.output(0), p0.output(1), p1.output(0), p1.output(1));
    let r1a = b.add(TaskSpec::new(K, Rank(1)).inputs(&[a, a]).outputs(&[64]));
    let r1b = b.add(TaskSpec::new(K, Rank(1)).inputs(&[bb, c]).outputs(&[2048]));
    b.add(TaskSpec::new(K, Rank(1)).inputs(&[c]).outputs(&[8]));
    let r2a = b.add(TaskSpec::new(K, Rank(2)).inputs(&[a, bb, d]).outputs(&[200]));
    let r2b = b.add(TaskSpec::new(K, Rank(2)).inputs(&[d, d, r1b.output(0)]).outputs(&[64]));
    let mut chain = b.add(TaskSpec::new(K, Rank(3)).inputs(&[c, d]).outputs(&[1000])).output(0);
    for _ in 0..5 {
        chain = b.add(TaskSpec::new(K, Rank(3)).inputs(&[chain]).outputs(&[1000])).output(0);
    }
    b.add(TaskSpec::new(K, Rank(3)).inputs(&[a, a]).outputs(&[8]));
    let back = [r1a.output(0), r1b.output(0), r2a.output(0), r2b.output(0), chain];
    b.add(TaskSpec::new(K, Rank(0)).inputs(&back).outputs(&[8]));
    Arc::new(b.finish())
}

/// Tiled Cholesky's DAG (tile 4, so chunks stay small) on `ranks` ranks.
fn cholesky_dag(tiles: i64, ranks: usize) -> Arc<Dag> {
    let given = [("n", ParamValue::Int(4 * tiles)), ("tile", ParamValue::Int(4))];
    Arc::clone(dagwire_workloads::find("cholesky").unwrap().build(&given, ranks, 1).unwrap().dag())
}

const TIMINGS: [Timing; 4] = [
    Timing { latency: 10, task_ns: 10 },
    Timing { latency: 1, task_ns: 100 },
    Timing { latency: 1000, task_ns: 7 },
    Timing { latency: 3, task_ns: 0 },
];

/// Epoch settings every whole-run test goes through.
const MODES: [(&str, i64); 5] = [("level", 64), ("tasks", 1), ("tasks", 2), ("tasks", 5), ("tasks", 64)];

fn dags() -> Vec<(&'static str, Arc<Dag>)> {
    vec![
        ("fan", fan_dag()),
        ("cholesky-2", cholesky_dag(5, 2)),
        ("cholesky-3", cholesky_dag(4, 3)),
        ("cholesky-4", cholesky_dag(6, 4)),
    ]
}

// ---------------------------------------------------------------------------------
// Whole runs
// ---------------------------------------------------------------------------------

/// Broadcast settings every whole-run test goes through: (threshold, tree).
const TREES: [(i64, &str); 3] = [(0, "binomial"), (1, "binomial"), (2, "chain")];

#[test]
fn every_rank_joins_exactly_one_collective_per_carrying_epoch_in_order() {
    for (name, dag) in dags() {
        for (mode, k) in MODES {
            let epoch_of = epochs(&dag, mode_of(mode, k));
            let want: Vec<u64> =
                carrying_epochs(&dag, &epoch_of).into_iter().map(|e| all_to_all_id(e as u32)).collect();
            assert!(!want.is_empty());
            for timing in TIMINGS {
                let label = format!("{name} {mode}/{k} {timing:?}");
                let run = drive(&dag, &batched(&dag, mode, k), &epoch_of, timing, 200_000)
                    .unwrap_or_else(|e| panic!("{label}: {e}"));
                for (r, joined) in run.joins.iter().enumerate() {
                    assert_eq!(joined, &want, "{label}: r{r} joined other collectives than the carrying epochs");
                }
            }
        }
    }
}

#[test]
fn with_broadcasts_every_rank_joins_its_collectives_in_the_runs_order() {
    for (name, dag) in dags() {
        for (mode, k) in MODES {
            let epoch_of = epochs(&dag, mode_of(mode, k));
            for (threshold, tree) in TREES {
                for timing in TIMINGS {
                    let label = format!("{name} {mode}/{k} bcast>{threshold} {tree} {timing:?}");
                    let run = drive(&dag, &with_trees(&dag, mode, k, threshold, tree), &epoch_of, timing, 200_000)
                        .unwrap_or_else(|e| panic!("{label}: {e}"));
                    for (r, joined) in run.joins.iter().enumerate() {
                        let want = expected_ids(&dag, &epoch_of, threshold as usize, Rank(r as u32));
                        assert_eq!(joined, &want, "{label}: r{r}");
                    }
                }
            }
        }
    }
}

#[test]
fn bruck_moves_the_same_chunks_in_the_same_collectives_as_pairwise() {
    for (name, dag) in dags() {
        for (mode, k) in MODES {
            let epoch_of = epochs(&dag, mode_of(mode, k));
            for (threshold, tree) in TREES {
                let label = format!("{name} {mode}/{k} bcast>{threshold} {tree}");
                let runs = ["pairwise", "bruck"].map(|a| {
                    drive(&dag, &with_alltoall(&dag, mode, k, threshold, tree, a), &epoch_of, TIMINGS[0], 200_000)
                        .unwrap_or_else(|e| panic!("{label} {a}: {e}"))
                });
                assert_eq!(runs[0].joins, runs[1].joins, "{label}");
                assert_eq!(runs[0].results, runs[1].results, "{label}");
                // The same record per (collective, sender, receiver): Bruck forwards
                // contributions through other ranks but delivers them as their origin's.
                let records = |run: &Run| {
                    let mut v: Vec<_> =
                        run.trace.messages.iter().map(|m| (m.src, m.dst, m.kind, m.bytes, m.chunk)).collect();
                    v.sort_unstable();
                    v
                };
                assert_eq!(records(&runs[0]), records(&runs[1]), "{label}");
            }
        }
    }
}

#[test]
fn a_low_threshold_sends_the_many_reader_chunks_by_broadcast() {
    // The comparison above must be able to fail: with threshold 1, the fan DAG's
    // chunks read on 2 or 3 ranks each get a broadcast, so ranks join more collectives
    // than with all-to-all-vs only, and not all ranks the same ones.
    let dag = fan_dag();
    let epoch_of = epochs(&dag, Epochs::Level);
    let only_a2a = drive(&dag, &batched(&dag, "level", 1), &epoch_of, TIMINGS[0], 10_000).unwrap();
    let trees = drive(&dag, &with_trees(&dag, "level", 1, 1, "binomial"), &epoch_of, TIMINGS[0], 10_000).unwrap();
    assert_ne!(only_a2a.joins, trees.joins);
    assert!(trees.joins[0].len() > only_a2a.joins[0].len(), "{:?}", trees.joins);
    assert_ne!(trees.joins[1], trees.joins[3], "r1 and r3 read different chunks");
    let kinds: BTreeSet<&str> = trees.trace.messages.iter().map(|m| m.kind).collect();
    assert!(kinds.contains("batch-bcast"), "{kinds:?}");
}

#[test]
fn data_moves_only_in_collectives_and_every_transfer_completes() {
    for (name, dag) in dags() {
        for (mode, k) in MODES {
            let epoch_of = epochs(&dag, mode_of(mode, k));
            for (threshold, tree) in TREES {
                let label = format!("{name} {mode}/{k} bcast>{threshold} {tree}");
                let run =
                    drive(&dag, &with_trees(&dag, mode, k, threshold, tree), &epoch_of, TIMINGS[0], 200_000).unwrap();
                assert_eq!(run.p2p_sends, 0, "{label}: point-to-point sends");
                let kinds: BTreeSet<&str> = run.trace.messages.iter().map(|m| m.kind).collect();
                assert!(kinds.is_subset(&["batch-data", "empty", "batch-bcast"].into()), "{label}: {kinds:?}");
                // One record per (all-to-all-v, sender, receiver) and per broadcast edge.
                let want = expected_messages(&dag, &epoch_of, threshold as usize);
                assert_eq!(run.trace.messages.len(), want, "{label}");
                // The data records carry exactly the bytes of every transfer, each once.
                let totals = run.trace.message_totals();
                let want: u64 = transfers(&dag).iter().map(|&(c, _, _)| dag.chunk(c).bytes).sum();
                assert_eq!(totals.data_bytes, want, "{label}");
                assert_eq!(totals.control_bytes, totals.control_messages * HEADER_BYTES, "{label}");
                for m in &run.trace.messages {
                    assert_eq!(m.class == MessageClass::Data, m.kind != "empty", "{label}: {m:?}");
                    assert_eq!(m.chunk == NO_CHUNK, m.kind == "empty", "{label}: {m:?}");
                }
                let rows = run.trace.transfers(|c| dag.chunk(c).bytes);
                assert_eq!(rows.len(), transfers(&dag).len(), "{label}");
                for r in rows {
                    let phases = [r.posted_ns, r.started_ns, r.wire_ns, r.completed_ns];
                    assert!(phases.iter().all(Option::is_some), "{label}: {r:?}");
                    assert!(phases.is_sorted(), "{label}: phases out of order {r:?}");
                }
            }
        }
    }
}

#[test]
fn the_harness_catches_a_strategy_that_sends_point_to_point() {
    // The checks above must be able to fail: eager moves everything point to point and
    // joins nothing.
    let dag = fan_dag();
    let epoch_of = epochs(&dag, Epochs::Level);
    let eager = |_: Rank| Box::new(dagwire_strategies::eager::Eager) as Box<dyn Strategy>;
    let run = drive(&dag, &eager, &epoch_of, TIMINGS[0], 10_000).unwrap();
    assert!(run.p2p_sends > 0);
    assert!(run.joins.iter().all(Vec::is_empty));
}

/// Batched, but at start it tells the strategy that its first producing task has
/// finished already (and hides the real news later): it joins too early.
struct Hasty {
    inner: Box<dyn Strategy>,
    faked: Option<TaskId>,
}

impl Strategy for Hasty {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn op_name(&self, op: u8) -> &'static str {
        self.inner.op_name(op)
    }
    fn needs(&self) -> &'static [Capability] {
        self.inner.needs()
    }
    fn on_start(&mut self, ctx: &mut dagwire_runtime::StrategyCtx<'_>) {
        self.inner.on_start(ctx);
        let dag = ctx.dag;
        let first = dag
            .tasks_of(ctx.rank)
            .iter()
            .copied()
            .find(|&t| dag.task(t).outputs().any(|c| !dag.remote_readers(c).is_empty()));
        if let Some(t) = first {
            self.faked = Some(t);
            self.inner.on_task_done(ctx, t);
        }
    }
    fn on_chunk_ready(&mut self, ctx: &mut dagwire_runtime::StrategyCtx<'_>, c: ChunkId, d: &Payload, r: &[Rank]) {
        self.inner.on_chunk_ready(ctx, c, d, r);
    }
    fn on_task_done(&mut self, ctx: &mut dagwire_runtime::StrategyCtx<'_>, task: TaskId) {
        if self.faked != Some(task) {
            self.inner.on_task_done(ctx, task);
        }
    }
    fn on_message(
        &mut self,
        ctx: &mut dagwire_runtime::StrategyCtx<'_>,
        from: Rank,
        msg: Message,
    ) -> Result<(), String> {
        self.inner.on_message(ctx, from, msg)
    }
    fn on_collective_done(
        &mut self,
        ctx: &mut dagwire_runtime::StrategyCtx<'_>,
        id: u64,
        received: Vec<Contribution>,
    ) -> Result<(), String> {
        self.inner.on_collective_done(ctx, id, received)
    }
    fn is_idle(&self) -> bool {
        self.inner.is_idle()
    }
}

#[test]
fn the_harness_catches_a_join_before_the_epochs_producers_finished() {
    // The join rule above must be able to fail.
    let dag = fan_dag();
    let epoch_of = epochs(&dag, Epochs::Level);
    let inner = batched(&dag, "level", 1);
    let hasty = |r: Rank| Box::new(Hasty { inner: inner(r), faked: None }) as Box<dyn Strategy>;
    let err = drive(&dag, &hasty, &epoch_of, TIMINGS[0], 10_000).expect_err("a broken rule");
    assert!(err.contains("r2 joined collective 4294967296 (epoch 1) before its producers [t5] finished"), "{err}");
}

#[test]
fn longer_epochs_mean_fewer_collectives() {
    let dag = cholesky_dag(6, 4);
    let count = |mode, k| {
        let epoch_of = epochs(&dag, mode_of(mode, k));
        drive(&dag, &batched(&dag, mode, k), &epoch_of, TIMINGS[0], 200_000).unwrap().joins[0].len()
    };
    let (one, three, many) = (count("tasks", 1), count("tasks", 3), count("tasks", 1 << 20));
    assert!(one > three && three >= many, "{one} {three} {many}");
    // With unbounded epochs, epochs close only at remote reads: one per wave of the
    // factorisation, never more than the levels.
    assert!(many <= count("level", 1), "{many}");
}

#[test]
fn an_epoch_boundary_synchronises_a_chain_across_ranks() {
    // r0 -> r1 -> r0 -> r1: three transfers in three epochs; each costs one collective
    // latency after the task, whatever the epoch mode.
    let mut b = DagBuilder::new(2);
    let mut prev = b.add(TaskSpec::new(KernelId(0), Rank(0)).outputs(&[16])).output(0);
    for i in 1..4 {
        let inputs = [prev];
        prev = b.add(TaskSpec::new(KernelId(0), Rank(i % 2)).inputs(&inputs).outputs(&[16])).output(0);
    }
    let dag = Arc::new(b.finish());
    for (mode, k) in [("level", 1), ("tasks", 1), ("tasks", 100)] {
        let epoch_of = epochs(&dag, mode_of(mode, k));
        let timing = Timing { latency: 10, task_ns: 100 };
        let run = drive(&dag, &batched(&dag, mode, k), &epoch_of, timing, 1000).unwrap();
        assert_eq!(run.end_ns, 4 * 100 + 3 * 10, "{mode}/{k}");
        assert_eq!(run.joins, vec![[0, 1, 2].map(all_to_all_id).to_vec(); 2], "{mode}/{k}");
    }
}

// ---------------------------------------------------------------------------------
// The epoch cut
// ---------------------------------------------------------------------------------

/// A pseudo-random DAG: `tasks` tasks on `ranks` ranks, each reading up to three
/// earlier chunks.
fn random_dag(seed: u64, ranks: usize, tasks: usize) -> Dag {
    let mut rng = rng::rng(seed, rng::stream::user(0));
    let mut next = move |n: usize| rng.random_range(0..n);
    let mut b = DagBuilder::new(ranks);
    let mut chunks: Vec<ChunkId> = Vec::new();
    for _ in 0..tasks {
        let inputs: Vec<ChunkId> =
            if chunks.is_empty() { Vec::new() } else { (0..next(4)).map(|_| chunks[next(chunks.len())]).collect() };
        let owner = Rank(next(ranks) as u32);
        chunks.push(b.add(TaskSpec::new(KernelId(0), owner).inputs(&inputs).outputs(&[8])).output(0));
    }
    b.finish()
}

#[test]
fn epochs_put_remote_inputs_strictly_earlier_and_respect_the_task_target() {
    let mut dags: Vec<Dag> = (0..20).map(|s| random_dag(s, 1 + (s as usize % 4), 200)).collect();
    dags.push((*cholesky_dag(7, 4)).clone());
    for (i, dag) in dags.iter().enumerate() {
        for k in [1, 2, 3, 10, 1000] {
            let epoch_of = epochs(dag, Epochs::Tasks(NonZeroU32::new(k).unwrap()));
            assert!(epoch_of.is_sorted(), "dag {i}: epochs decrease with task id");
            let mut sizes: BTreeMap<u32, u32> = BTreeMap::new();
            epoch_of.iter().for_each(|&e| *sizes.entry(e).or_default() += 1);
            assert!(sizes.values().all(|&n| n <= k), "dag {i} k={k}: {sizes:?}");
            for t in dag.task_ids() {
                for &c in dag.inputs(t) {
                    let (pe, te) = (epoch_of[dag.chunk(c).producer.index()], epoch_of[t.index()]);
                    if dag.chunk_owner(c) != dag.task(t).owner {
                        assert!(pe < te, "dag {i} k={k}: {t} reads remote {c} of its own epoch {te}");
                    }
                }
            }
        }
        let level = epochs(dag, Epochs::Level);
        for t in dag.task_ids() {
            let want = dag.inputs(t).iter().map(|&c| level[dag.chunk(c).producer.index()] + 1).max().unwrap_or(0);
            assert_eq!(level[t.index()], want, "dag {i}: {t}");
        }
    }
}

#[test]
fn random_dags_finish_in_every_mode() {
    for seed in 0..12 {
        let ranks = 2 + seed as usize % 3;
        let dag = Arc::new(random_dag(seed, ranks, 120));
        for (mode, k) in MODES {
            let epoch_of = epochs(&dag, mode_of(mode, k));
            for (threshold, tree) in TREES {
                for timing in TIMINGS {
                    drive(&dag, &with_trees(&dag, mode, k, threshold, tree), &epoch_of, timing, 100_000)
                        .unwrap_or_else(|e| panic!("seed {seed} {mode}/{k} bcast>{threshold} {tree} {timing:?}: {e}"));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// Scripted exchanges on single engines
// ---------------------------------------------------------------------------------

/// r0 produces `x` (16 bytes), read by r1 and r2; r1 produces `y` (24 bytes) from `x`,
/// read by r2.
fn three_ranks() -> (Arc<Dag>, ChunkId, ChunkId) {
    let mut b = DagBuilder::new(3);
    let p = b.add(TaskSpec::new(KernelId(0), Rank(0)).outputs(&[16]));
    let q = b.add(TaskSpec::new(KernelId(0), Rank(1)).inputs(&[p.output(0)]).outputs(&[24]));
    b.add(TaskSpec::new(KernelId(0), Rank(2)).inputs(&[p.output(0), q.output(0)]).outputs(&[8]));
    (Arc::new(b.finish()), p.output(0), q.output(0))
}

/// Rank `rank`'s engine with a batched instance (`cfg`) planned for `dag`.
fn engine_with(rank: u32, dag: &Arc<Dag>, cfg: Config) -> Engine {
    let plan = Arc::new(RunPlan::new(dag, cfg));
    Engine::new(Rank(rank), Arc::clone(dag), Box::new(Batched::new(&plan, Rank(rank))), 1)
}

fn engine(rank: u32, dag: &Arc<Dag>) -> Engine {
    engine_with(rank, dag, Config::new(Epochs::Level))
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

fn data(chunk: ChunkId, bytes: usize, epoch: u64) -> Message {
    let mut m = Message::data(1, chunk, Payload::zeroed(bytes));
    m.arg = epoch;
    m
}

/// What an empty all-to-all-v contribution carries: no message.
fn empty() -> Vec<Message> {
    Vec::new()
}

fn part(from: u32, messages: Vec<Message>) -> Contribution {
    Contribution { from: Rank(from), sent_ns: 1, recv_ns: 2, messages }
}

#[test]
fn a_rank_joins_only_after_its_producers_and_sends_each_peer_one_contribution() {
    let (dag, x, _) = three_ranks();
    let mut r0 = engine(0, &dag);
    r0.handle_start(0);
    let [Action::Run(run)] = &actions(&mut r0, 0)[..] else { panic!("r0 runs its producer, joins nothing yet") };
    let task = run.task;
    r0.handle_task_done(5, TaskDone { task, worker: 0, start_ns: 0, end_ns: 5, outputs: vec![Payload::zeroed(16)] });
    let [Action::Collective(join)] = &actions(&mut r0, 6)[..] else { panic!("r0 joins epoch 0 once x exists") };
    assert_eq!((join.id, &join.kind), (0, &PAIRWISE));
    let shape: Vec<(Rank, u8, ChunkId, u64, u64)> = join
        .sends
        .iter()
        .flat_map(|(to, ms)| ms.iter().map(|m| (*to, m.op, m.chunk, m.wire_bytes(), m.sent_ns)))
        .collect();
    assert_eq!(shape, [(Rank(1), 1, x, 16, 6), (Rank(2), 1, x, 16, 6)]);
    assert_eq!(join.sends.len(), 2, "one contribution per peer");
    assert!(!r0.is_done(), "epochs 0 and 1 still to complete");

    // r2 produces nothing: it joins epoch 0 at once, with empty contributions.
    let mut r2 = engine(2, &dag);
    r2.handle_start(0);
    let [Action::Collective(join)] = &actions(&mut r2, 0)[..] else { panic!("r2 joins at once") };
    assert!(join.sends.iter().all(|(_, ms)| ms.is_empty()), "{:?}", join.sends);
    // Epoch 0 brings x; r2 then joins epoch 1 before anything else.
    r2.handle_collective_done(10, 0, vec![part(0, vec![data(x, 16, 0)]), part(1, empty())]);
    assert!(r2.error().is_none(), "{:?}", r2.error());
    let [Action::Collective(join)] = &actions(&mut r2, 10)[..] else { panic!("r2 joins epoch 1") };
    assert_eq!(join.id, all_to_all_id(1));
    let trace = r2.take_trace();
    let recorded: Vec<(Rank, &str, MessageClass, u64)> =
        trace.messages.iter().map(|m| (m.src, m.kind, m.class, m.bytes)).collect();
    assert_eq!(
        recorded,
        [(Rank(0), "batch-data", MessageClass::Data, 16), (Rank(1), "empty", MessageClass::Control, 32)]
    );
    let x_phases: Vec<(Phase, u64)> =
        trace.transfer_events.iter().filter(|e| e.chunk == x).map(|e| (e.phase, e.at_ns)).collect();
    assert_eq!(x_phases, [(Phase::Wire, 1), (Phase::Completed, 10)]);
}

#[test]
fn point_to_point_messages_are_refused() {
    let (dag, x, _) = three_ranks();
    let mut r1 = engine(1, &dag);
    r1.handle_start(0);
    r1.handle_message(1, Rank(0), Message::data(1, x, Payload::zeroed(16)));
    assert!(protocol_error(&r1).contains("only in collectives"));
}

#[test]
fn malformed_collectives_are_refused() {
    let (dag, x, y) = three_ranks();
    let cases: [(Vec<Contribution>, &str); 6] = [
        (vec![part(0, empty()), part(1, empty())], "received 0 chunks, expected 1"),
        (vec![part(0, vec![data(x, 16, 0)])], "expected 2 (one per other rank)"),
        (vec![part(0, vec![data(x, 16, 0)]), part(1, vec![data(y, 24, 0)])], "does not receive in epoch 0"),
        (vec![part(0, vec![data(x, 16, 0)]), part(1, vec![data(x, 16, 0)])], "does not produce"),
        (vec![part(0, vec![data(x, 16, 3)]), part(1, empty())], "epoch 3"),
        (
            vec![part(0, vec![data(x, 16, 0), Message::control(2, NO_CHUNK, 0)]), part(1, empty())],
            "expected batch-data messages with bytes",
        ),
    ];
    for (received, want) in cases {
        let mut r2 = engine(2, &dag);
        r2.handle_start(0);
        let _ = actions(&mut r2, 0);
        r2.handle_collective_done(5, 0, received);
        let reason = protocol_error(&r2);
        assert!(reason.contains(want), "{reason} (wanted `{want}`)");
    }
    // A collective this rank did not join is the engine's to refuse.
    let mut r2 = engine(2, &dag);
    r2.handle_start(0);
    let _ = actions(&mut r2, 0);
    r2.handle_collective_done(5, 1, vec![]);
    assert!(matches!(r2.error(), Some(EngineError::UnknownCollective { id: 1, .. })), "{:?}", r2.error());
}

#[test]
fn a_broadcast_goes_from_the_producer_to_exactly_its_reader_ranks() {
    // With threshold 1, x (read on r1 and r2) goes by broadcast; y (read on r2 only) by
    // epoch 1's all-to-all-v. Epoch 0 has no all-to-all-v at all.
    let (dag, x, _) = three_ranks();
    let tree = Tree::Chain { segment_bytes: 8 };
    let engine = |rank| engine_with(rank, &dag, Config::new(Epochs::Level).with_broadcast(1, tree));
    let members = vec![Rank(0), Rank(1), Rank(2)];
    let mut r0 = engine(0);
    r0.handle_start(0);
    let [Action::Run(run)] = &actions(&mut r0, 0)[..] else { panic!("r0 runs its producer") };
    let task = run.task;
    r0.handle_task_done(5, TaskDone { task, worker: 0, start_ns: 0, end_ns: 5, outputs: vec![Payload::zeroed(16)] });
    let [Action::Collective(join)] = &actions(&mut r0, 5)[..] else { panic!("r0 roots x's broadcast") };
    assert_eq!(join.id, broadcast_id(0, x));
    assert_eq!(join.kind, CollectiveKind::Broadcast { members: members.clone(), tree });
    let [(root, messages)] = &join.sends[..] else { panic!("the root sends one list: {:?}", join.sends) };
    assert_eq!((*root, messages.len(), messages[0].chunk, messages[0].wire_bytes()), (Rank(0), 1, x, 16));
    r0.handle_collective_done(6, broadcast_id(0, x), vec![]);
    assert!(r0.error().is_none(), "{:?}", r0.error());
    let [Action::Collective(join)] = &actions(&mut r0, 6)[..] else { panic!("then epoch 1's all-to-all-v") };
    assert_eq!(join.id, all_to_all_id(1));

    // A reader joins at once (it produces nothing of epoch 0) and takes x from its parent.
    let mut r2 = engine(2);
    r2.handle_start(0);
    let [Action::Collective(join)] = &actions(&mut r2, 0)[..] else { panic!("r2 joins x's broadcast") };
    assert_eq!((join.id, join.sends.len()), (broadcast_id(0, x), 0));
    // Epoch 0's broadcast message (arg 0), forwarded by r1 (r2's parent in the chain).
    let msg = Message::data(3, x, Payload::zeroed(16));
    let good = vec![Contribution { from: Rank(1), sent_ns: 7, recv_ns: 9, messages: vec![msg] }];
    let nothing = vec![Contribution { messages: vec![], ..good[0].clone() }];
    r2.handle_collective_done(9, broadcast_id(0, x), nothing);
    assert!(protocol_error(&r2).contains("expected one batch-bcast message"));
    let mut r2 = engine(2);
    r2.handle_start(0);
    let _ = actions(&mut r2, 0);
    r2.handle_collective_done(9, broadcast_id(0, x), good);
    assert!(r2.error().is_none(), "{:?}", r2.error());
    let trace = r2.take_trace();
    let records: Vec<(Rank, &str, u64)> = trace.messages.iter().map(|m| (m.src, m.kind, m.bytes)).collect();
    assert_eq!(records, [(Rank(1), "batch-bcast", 16)], "one record per tree edge, from the parent");
    let done: Vec<(ChunkId, Rank, Phase)> = trace.transfer_events.iter().map(|e| (e.chunk, e.src, e.phase)).collect();
    assert_eq!(done, [(x, Rank(0), Phase::Completed)], "delivered as coming from its producer");
}

// ---------------------------------------------------------------------------------
// Registration and capabilities
// ---------------------------------------------------------------------------------

#[test]
fn registered_with_checked_parameters() {
    let info = dagwire_strategies::find("batched").unwrap();
    assert!(dagwire_strategies::find("bached").unwrap_err().to_string().contains("did you mean `batched`"));
    let specs = (info.params)();
    let bad = |key: &str, v: ParamValue| Params::resolve(&specs, [(key.to_string(), v)].into()).unwrap_err();
    assert!(bad("epoch_tasks", ParamValue::Int(0)).reason.contains("1..="));
    assert!(bad("epochs", ParamValue::Str("rounds".into())).reason.contains("level, tasks"));
    assert!(bad("bcast_threshold", ParamValue::Int(-1)).reason.contains("0..="));
    assert!(bad("tree", ParamValue::Str("ring".into())).reason.contains("binomial, chain"));
    assert!(bad("segment_bytes", ParamValue::Int(0)).reason.contains(">= 1"));
    let defaults = Params::resolve(&specs, Default::default()).unwrap();
    let dag = fan_dag();
    let s = info.factory(&defaults, &dag, 1)(Rank(0));
    assert_eq!((info.needs)(&defaults), s.needs());
    assert_eq!((s.name(), s.op_name(1), s.op_name(2), s.op_name(0)), ("batched", "batch-data", "unknown", "unknown"));
    assert_eq!(s.needs(), &[Capability::AllToAllV]);
    let trees = with_trees(&dag, "level", 1, 3, "chain")(Rank(0));
    assert_eq!(trees.needs(), &[Capability::AllToAllV, Capability::Broadcast]);
}

#[test]
fn a_driver_without_collectives_refuses_batched_naming_both() {
    let s = batched(&fan_dag(), "level", 1)(Rank(0));
    let err = check_capabilities("mpi-p2p", Capability::POINT_TO_POINT, s.name(), s.needs()).unwrap_err().to_string();
    assert!(
        err.contains("strategy batched needs collectives (all-to-all-v), which driver mpi-p2p does not offer"),
        "{err}"
    );
    // The local driver offers them (the sim driver's test says the same of it); eager
    // needs nothing it lacks.
    let offers = dagwire_runtime::drivers::local::CAPABILITIES;
    check_capabilities("local", offers, s.name(), s.needs()).unwrap();
    let eager = dagwire_strategies::eager::Eager;
    check_capabilities("local", offers, eager.name(), eager.needs()).unwrap();
}
