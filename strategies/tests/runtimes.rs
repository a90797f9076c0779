//! The protocols of other runtimes (`dagger`, `parsec`, `starpu`) on the in-memory
//! harness: the exact messages each sends per transfer and per task, and scripted
//! single-engine exchanges for what the harness cannot provoke (messages overtaking
//! each other).

use dagwire_runtime::drivers::testing::{self, Run, Timing};
use dagwire_runtime::engine::{Action, Engine, TaskDone};
use dagwire_runtime::trace::MessageRecord;
use dagwire_runtime::{ChunkId, Dag, DagBuilder, KernelId, Message, ParamValue, Payload, Rank, Strategy, TaskSpec};
use std::collections::BTreeMap;
use std::sync::Arc;

const K: KernelId = KernelId(0);
const TIMING: Timing = Timing { latency: 50, task_ns: 100 };

fn s(v: &str) -> ParamValue {
    ParamValue::Str(v.into())
}

/// Runs `dag` on the harness with strategy `name` set by `given`; none of these
/// strategies joins a collective.
fn run(dag: &Arc<Dag>, name: &str, given: &[(&str, ParamValue)]) -> Run {
    let factory = dagwire_strategies::find(name).unwrap().factory_with(given, dag, 1).unwrap();
    let strategy = |r: Rank| -> Box<dyn Strategy> { factory(r) };
    testing::drive(dag, &strategy, 2, TIMING, 100_000, &mut |v| Err(format!("{} joined {}", v.rank, v.join.id)))
        .unwrap_or_else(|e| panic!("{name} {given:?}: {e}"))
}

/// Messages of each kind in a run.
fn kinds(run: &Run) -> BTreeMap<&'static str, usize> {
    let mut out = BTreeMap::new();
    for m in &run.trace.messages {
        *out.entry(m.kind).or_default() += 1;
    }
    out
}

fn of_kind<'a>(run: &'a Run, kind: &'a str) -> impl Iterator<Item = &'a MessageRecord> + 'a {
    run.trace.messages.iter().filter(move |m| m.kind == kind)
}

// ---------------------------------------------------------------------------------
// dagger
// ---------------------------------------------------------------------------------

/// Four ranks, four tasks: t0 on r0 makes a chunk r1 and r2 read; t1 on r1 makes one
/// r3 reads; t2 on r2 and t3 on r3 make results. Three transfers.
fn four_tasks() -> Arc<Dag> {
    let mut b = DagBuilder::new(4);
    let t0 = b.add(TaskSpec::new(K, Rank(0)).outputs(&[64]));
    let t1 = b.add(TaskSpec::new(K, Rank(1)).inputs(&[t0.output(0)]).outputs(&[128]));
    b.add(TaskSpec::new(K, Rank(2)).inputs(&[t0.output(0)]).outputs(&[32]));
    b.add(TaskSpec::new(K, Rank(3)).inputs(&[t1.output(0)]).outputs(&[16]));
    Arc::new(b.finish())
}

#[test]
fn dagger_sends_p_minus_1_metadata_messages_per_task_with_metadata_all() {
    let dag = four_tasks();
    let run = run(&dag, "dagger", &[("metadata", s("all"))]);
    let k = kinds(&run);
    assert_eq!(k.get("dagger-meta"), Some(&(4 * 3)), "4 tasks x (P - 1 = 3): {k:?}");
    assert_eq!((k.get("dagger-header"), k.get("dagger-payload")), (Some(&3), Some(&3)), "{k:?}");
    // Each task's owner sends one to every other rank, and nothing else is metadata.
    let mut per_task: BTreeMap<u32, Vec<Rank>> = BTreeMap::new();
    for m in of_kind(&run, "dagger-meta") {
        per_task.entry(m.src.0).or_default().push(m.dst);
    }
    for (owner, dsts) in per_task {
        let want: Vec<Rank> = (0..4).filter(|&r| r != owner).map(Rank).collect();
        assert_eq!(dsts, want, "owner r{owner} loops over the other ranks in order");
    }
    // A task's metadata leaves before its output's header and payload, and the reader
    // uses the chunk only after all three arrived.
    for h in of_kind(&run, "dagger-header") {
        let meta = of_kind(&run, "dagger-meta").find(|m| (m.src, m.dst) == (h.src, h.dst)).unwrap();
        assert!(meta.sent_ns <= h.sent_ns);
    }
}

#[test]
fn dagger_readers_sends_metadata_only_to_readers_and_none_sends_none() {
    let dag = four_tasks();
    let readers = run(&dag, "dagger", &[("metadata", s("readers"))]);
    let metas: Vec<(Rank, Rank)> = of_kind(&readers, "dagger-meta").map(|m| (m.src, m.dst)).collect();
    assert_eq!(metas, [(Rank(0), Rank(1)), (Rank(0), Rank(2)), (Rank(1), Rank(3))], "one per (task, reader rank)");
    let none = run(&dag, "dagger", &[("metadata", s("none"))]);
    assert_eq!(of_kind(&none, "dagger-meta").count(), 0);
    assert_eq!(of_kind(&none, "dagger-payload").count(), 3);
    assert!(none.end_ns <= readers.end_ns);
}

#[test]
fn dagger_inline_header_is_one_message_per_transfer() {
    let dag = four_tasks();
    let run = run(&dag, "dagger", &[("header", s("inline")), ("metadata", s("none"))]);
    let k = kinds(&run);
    assert_eq!(k, BTreeMap::from([("dagger-inline", 3)]), "{k:?}");
}

/// r0 makes `n` chunks of different sizes in one task; r1 reads them all.
fn many_to_one(n: usize) -> (Arc<Dag>, Vec<ChunkId>) {
    let mut b = DagBuilder::new(2);
    let sizes: Vec<u64> = (0..n as u64).map(|i| 8 * (i + 1)).collect();
    let p = b.add(TaskSpec::new(K, Rank(0)).outputs(&sizes));
    let chunks: Vec<ChunkId> = (0..n).map(|i| p.output(i)).collect();
    b.add(TaskSpec::new(K, Rank(1)).inputs(&chunks).outputs(&[8]));
    (Arc::new(b.finish()), chunks)
}

#[test]
fn dagger_transfers_sharing_one_tag_verify_on_the_harness() {
    // tag_bound = 1: every transfer has tag 0; the harness kernels check every byte.
    let (dag, _) = many_to_one(6);
    for header in ["separate", "inline"] {
        let run = run(&dag, "dagger", &[("tag_bound", ParamValue::Int(1)), ("header", s(header))]);
        assert!(of_kind(&run, "dagger-payload").chain(of_kind(&run, "dagger-inline")).all(|m| m.chunk.0 < 6));
    }
}

#[test]
fn dagger_a_tag_collision_with_overtaking_payloads_does_not_mix_up_data() {
    use dagwire_strategies::dagger::{Config, Dagger, Metadata};
    let (dag, chunks) = many_to_one(2);
    let config = Config { metadata: Metadata::None, separate_header: true, tag_bound: 1 };
    let mut r1 = Engine::new(Rank(1), Arc::clone(&dag), Box::new(Dagger::new(config, 0)), 1);
    r1.handle_start(0);
    let bytes = |c: ChunkId, v: u8| Payload::from_bytes(&vec![v; dag.chunk(c).bytes as usize]);
    let (x, y) = (chunks[0], chunks[1]);
    // Both headers (tag 0), then y's payload overtakes x's: MPI-style matching would
    // hand y's bytes to x.
    r1.handle_message(1, Rank(0), Message::control(2, x, 0));
    r1.handle_message(2, Rank(0), Message::control(2, y, 0));
    r1.handle_message(3, Rank(0), Message::data(3, y, bytes(y, 0xBB)));
    r1.handle_message(4, Rank(0), Message::data(3, x, bytes(x, 0xAA)));
    assert!(r1.error().is_none(), "{:?}", r1.error());
    let Some(Action::Run(task)) = r1.poll_action(4) else { panic!("both inputs arrived") };
    assert_eq!(task.inputs[0].as_bytes(), bytes(x, 0xAA).as_bytes());
    assert_eq!(task.inputs[1].as_bytes(), bytes(y, 0xBB).as_bytes());
    r1.handle_task_done(5, TaskDone { task: task.task, worker: 0, start_ns: 4, end_ns: 5, outputs: vec![bytes(x, 0)] });
    assert!(r1.is_done());
}

#[test]
fn dagger_a_rank_is_not_done_before_every_metadata_message_arrived() {
    use dagwire_strategies::dagger::{Config, Dagger, Metadata, expected_metadata};
    let dag = four_tasks();
    assert_eq!(expected_metadata(&dag, Metadata::All), [3, 3, 3, 3]);
    assert_eq!(expected_metadata(&dag, Metadata::Readers), [0, 1, 1, 1]);
    // r3 runs t3 only after t1's data; here it gets no data: it waits for 3 metadata
    // messages regardless.
    let config = Config { metadata: Metadata::All, separate_header: true, tag_bound: 32767 };
    let mut r0 = Engine::new(Rank(0), Arc::clone(&dag), Box::new(Dagger::new(config, 3)), 1);
    r0.handle_start(0);
    let Some(Action::Run(t0)) = r0.poll_action(0) else { panic!("r0 runs t0") };
    r0.handle_task_done(
        1,
        TaskDone { task: t0.task, worker: 0, start_ns: 0, end_ns: 1, outputs: vec![Payload::zeroed(64)] },
    );
    let sends: Vec<(Rank, u8)> = std::iter::from_fn(|| r0.poll_action(1))
        .map(|a| match a {
            Action::Send(o) => (o.to, o.msg.op),
            _ => panic!("only sends"),
        })
        .collect();
    // Metadata to r1, r2, r3, then header and payload to each reader.
    assert_eq!(
        sends,
        [(Rank(1), 1), (Rank(2), 1), (Rank(3), 1), (Rank(1), 2), (Rank(1), 3), (Rank(2), 2), (Rank(2), 3)]
    );
    for (i, task) in [1u64, 2, 3].into_iter().enumerate() {
        assert!(!r0.is_done(), "{i} of 3 metadata messages arrived");
        r0.handle_message(2 + task, Rank(task as u32), Message::control(1, dagwire_runtime::message::NO_CHUNK, task));
    }
    assert!(r0.error().is_none(), "{:?}", r0.error());
    assert!(r0.is_done());
}

// ---------------------------------------------------------------------------------
// parsec
// ---------------------------------------------------------------------------------

fn int(v: i64) -> ParamValue {
    ParamValue::Int(v)
}

#[test]
fn parsec_sends_activation_get_then_data_above_the_short_limit_and_one_message_below() {
    let dag = many_to_one(1).0; // one chunk of 8 bytes, r0 -> r1
    let big = run(&dag, "parsec", &[("short_limit", int(0))]);
    let seq: Vec<(&str, Rank, Rank)> = big.trace.messages.iter().map(|m| (m.kind, m.src, m.dst)).collect();
    assert_eq!(
        seq,
        [("parsec-activate", Rank(0), Rank(1)), ("parsec-get", Rank(1), Rank(0)), ("parsec-put", Rank(0), Rank(1))]
    );
    assert!(big.trace.messages.is_sorted_by_key(|m| m.sent_ns));
    let short = run(&dag, "parsec", &[("short_limit", int(8))]);
    let seq: Vec<&str> = short.trace.messages.iter().map(|m| m.kind).collect();
    assert_eq!(seq, ["parsec-short"], "8 bytes <= short_limit: the data rides on the activation");
}

#[test]
fn parsec_keeps_at_most_max_concurrent_gets_in_flight() {
    let (dag, _) = many_to_one(8);
    for bound in [1, 3, 5] {
        let run = run(&dag, "parsec", &[("short_limit", int(0)), ("max_concurrent", int(bound))]);
        // +1 when r1 sends a GET, -1 when a put reaches it; at equal times arrivals first.
        let mut events: Vec<(u64, i64)> = of_kind(&run, "parsec-get").map(|m| (m.sent_ns, 1)).collect();
        events.extend(of_kind(&run, "parsec-put").map(|m| (m.recv_ns, -1)));
        events.sort_unstable();
        let (mut now, mut most) = (0i64, 0i64);
        for (_, d) in events {
            now += d;
            most = most.max(now);
        }
        assert_eq!(most, bound.min(8), "bound {bound}: the most GETs in flight");
        assert_eq!(of_kind(&run, "parsec-get").count(), 8);
    }
}

/// r0 makes one chunk of 64 bytes that ranks 1..=readers read.
fn one_to_many(readers: u32) -> Arc<Dag> {
    let mut b = DagBuilder::new(readers as usize + 1);
    let p = b.add(TaskSpec::new(K, Rank(0)).outputs(&[64]));
    for r in 1..=readers {
        b.add(TaskSpec::new(K, Rank(r)).inputs(&[p.output(0)]).outputs(&[8]));
    }
    Arc::new(b.finish())
}

/// Per rank: (activations sent, GETs sent, puts sent).
fn per_rank(run: &Run, ranks: u32) -> Vec<(usize, usize, usize)> {
    (0..ranks)
        .map(|r| {
            let n = |k| of_kind(run, k).filter(|m| m.src == Rank(r)).count();
            (n("parsec-activate"), n("parsec-get"), n("parsec-put"))
        })
        .collect()
}

#[test]
fn parsec_forwards_along_star_chain_and_binomial_trees() {
    let dag = one_to_many(5);
    let go = |propagation: &str| run(&dag, "parsec", &[("short_limit", int(0)), ("propagation", s(propagation))]);
    // Star: the producer activates and serves all five.
    assert_eq!(per_rank(&go("star"), 6), [(5, 0, 5), (0, 1, 0), (0, 1, 0), (0, 1, 0), (0, 1, 0), (0, 1, 0)]);
    // Chain: each destination activates and serves the next.
    assert_eq!(per_rank(&go("chain"), 6), [(1, 0, 1), (1, 1, 1), (1, 1, 1), (1, 1, 1), (1, 1, 1), (0, 1, 0)]);
    // Binomial over positions 0..=5: 0 -> 1, 2, 4; 1 -> 3, 5.
    assert_eq!(per_rank(&go("binomial"), 6), [(3, 0, 3), (2, 1, 2), (0, 1, 0), (0, 1, 0), (0, 1, 0), (0, 1, 0)]);
    // Short data forwards the same way, one message per edge.
    let short = run(&dag, "parsec", &[("propagation", s("chain"))]);
    let edges: Vec<(Rank, Rank)> = of_kind(&short, "parsec-short").map(|m| (m.src, m.dst)).collect();
    assert_eq!(edges, (0..5).map(|r| (Rank(r), Rank(r + 1))).collect::<Vec<_>>());
}

// ---------------------------------------------------------------------------------
// starpu
// ---------------------------------------------------------------------------------

/// r0 makes a chunk of `bytes`; three tasks on r1 and one on r2 read it.
fn read_by_four_tasks(bytes: u64) -> Arc<Dag> {
    let mut b = DagBuilder::new(3);
    let p = b.add(TaskSpec::new(K, Rank(0)).outputs(&[bytes]));
    for r in [1, 1, 1, 2] {
        b.add(TaskSpec::new(K, Rank(r)).inputs(&[p.output(0)]).outputs(&[8]));
    }
    Arc::new(b.finish())
}

#[test]
fn starpu_sends_envelope_and_data_eagerly_and_waits_for_ready_above_the_limit() {
    let dag = many_to_one(1).0; // 8 bytes, r0 -> r1
    let eager = run(&dag, "starpu", &[("eager_limit", int(8))]);
    let mut seq: Vec<&str> = eager.trace.messages.iter().map(|m| m.kind).collect();
    seq.sort_unstable(); // both leave and arrive at the same instants
    assert_eq!(seq, ["starpu-data", "starpu-envelope"]);
    assert!(eager.trace.messages.iter().all(|m| m.sent_ns == eager.trace.messages[0].sent_ns));
    let rndv = run(&dag, "starpu", &[("eager_limit", int(7))]);
    let seq: Vec<(&str, Rank)> = rndv.trace.messages.iter().map(|m| (m.kind, m.src)).collect();
    assert_eq!(seq, [("starpu-envelope", Rank(0)), ("starpu-ready", Rank(1)), ("starpu-data", Rank(0))]);
    assert!(rndv.end_ns >= eager.end_ns + 2 * TIMING.latency, "one more round trip");
}

#[test]
fn starpu_cache_sends_a_chunk_once_per_rank_and_without_it_once_per_reading_task() {
    for (bytes, limit) in [(64, 65536), (64, 0)] {
        let dag = read_by_four_tasks(bytes);
        let data = |cache: &str| {
            let run = run(&dag, "starpu", &[("cache", s(cache)), ("eager_limit", int(limit))]);
            let to = |r| of_kind(&run, "starpu-data").filter(|m| m.dst == Rank(r)).count();
            (to(1), to(2), of_kind(&run, "starpu-envelope").count())
        };
        assert_eq!(data("on"), (1, 1, 2), "limit {limit}: one copy per rank");
        assert_eq!(data("off"), (3, 1, 4), "limit {limit}: one copy per reading task");
    }
}

#[test]
fn starpu_without_cache_refuses_copies_that_differ() {
    use dagwire_strategies::starpu::{Config, Starpu};
    let dag = read_by_four_tasks(16);
    let c = ChunkId(0);
    let mut r1 =
        Engine::new(Rank(1), Arc::clone(&dag), Box::new(Starpu::new(Config { eager_limit: 64, cache: false })), 1);
    r1.handle_start(0);
    for t in 0..3 {
        r1.handle_message(1 + t, Rank(0), Message::control(1, c, 16));
    }
    r1.handle_message(4, Rank(0), Message::data(3, c, Payload::from_bytes(&[7; 16])));
    r1.handle_message(5, Rank(0), Message::data(3, c, Payload::from_bytes(&[7; 16])));
    assert!(r1.error().is_none(), "{:?}", r1.error());
    assert!(!r1.is_done(), "a copy is still on its way");
    r1.handle_message(6, Rank(0), Message::data(3, c, Payload::from_bytes(&[8; 16])));
    assert!(format!("{:?}", r1.error()).contains("differs from the first"), "{:?}", r1.error());
}
