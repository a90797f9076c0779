//! The rendezvous strategy on an in-memory N-rank harness (simulated time, a message
//! latency, a task duration, a bounded number of steps) over the sans-IO engine, plus
//! scripted single-engine exchanges for the protocol's error paths.

use dagwire_runtime::drivers::testing::{self, Run, Timing};
use dagwire_runtime::engine::{Action, Engine, EngineError, TaskDone};
use dagwire_runtime::message::HEADER_BYTES;
use dagwire_runtime::trace::{MessageRecord, MessageTotals, Phase, Trace};
use dagwire_runtime::{
    ChunkId, Dag, DagBuilder, KernelId, Message, MessageClass, ParamValue, Params, Payload, Rank, Strategy, TaskSpec,
};
use dagwire_strategies::eager::Eager;
use dagwire_strategies::rendezvous::Rendezvous;
use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroUsize;
use std::sync::Arc;

// ---------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------

/// A rendezvous instance through the registry, as a sweep would build it.
fn rndv(dag: &Arc<Dag>, eager_limit: u64, max_receives: i64) -> impl Fn(Rank) -> Box<dyn Strategy> + use<> {
    let given = [("eager_limit", ParamValue::Int(eager_limit as i64)), ("max_receives", ParamValue::Int(max_receives))];
    dagwire_strategies::find("rendezvous").unwrap().factory_with(&given, dag, 1).unwrap()
}

/// Runs `dag` on the shared harness (two workers per rank); rendezvous never joins a
/// collective, so a join fails the run.
fn drive(
    dag: &Arc<Dag>,
    strategy: &dyn Fn(Rank) -> Box<dyn Strategy>,
    timing: Timing,
    max_steps: usize,
) -> Result<Run, String> {
    testing::drive(dag, strategy, 2, timing, max_steps, &mut |v| {
        Err(format!("{} joined collective {}", v.rank, v.join.id))
    })
}

/// Chunk sizes in the test DAG, so eager limits can fall between them.
const A: u64 = 40;
const B: u64 = 256;
const C: u64 = 1000;
const D: u64 = 4096;

/// Rank 0 produces chunks of 40, 256, 1000 and 4096 bytes; ranks 1..3 read them (some
/// tasks read a chunk twice, some ranks read a chunk from two tasks), send partial
/// results back to rank 0, and rank 2 also reads one of rank 1's outputs. 15 transfers.
fn fan_dag() -> Arc<Dag> {
    const K: KernelId = KernelId(0);
    let mut b = DagBuilder::new(4);
    let p0 = b.add(TaskSpec::new(K, Rank(0)).outputs(&[A, B]));
    let p1 = b.add(TaskSpec::new(K, Rank(0)).outputs(&[C, D]));
    let (a, bb, c, d) = (p0.output(0), p0.output(1), p1.output(0), p1.output(1));
    let r1a = b.add(TaskSpec::new(K, Rank(1)).inputs(&[a, a]).outputs(&[64]));
    let r1b = b.add(TaskSpec::new(K, Rank(1)).inputs(&[bb, c]).outputs(&[2048]));
    b.add(TaskSpec::new(K, Rank(1)).inputs(&[c]).outputs(&[8]));
    let r2a = b.add(TaskSpec::new(K, Rank(2)).inputs(&[a, bb, d]).outputs(&[200]));
    let r2b = b.add(TaskSpec::new(K, Rank(2)).inputs(&[d, d, r1b.output(0)]).outputs(&[64]));
    let r3a = b.add(TaskSpec::new(K, Rank(3)).inputs(&[c, d]).outputs(&[1000]));
    b.add(TaskSpec::new(K, Rank(3)).inputs(&[a, a]).outputs(&[8]));
    let back = [r1a.output(0), r1b.output(0), r2a.output(0), r2b.output(0), r3a.output(0)];
    b.add(TaskSpec::new(K, Rank(0)).inputs(&back).outputs(&[8]));
    let dag = Arc::new(b.finish());
    assert_eq!(transfers(&dag).len(), 15, "the DAG this file's expectations are written for");
    dag
}

/// Every (chunk, producer rank, reader rank) the DAG moves.
fn transfers(dag: &Dag) -> Vec<(ChunkId, Rank, Rank)> {
    (0..dag.chunk_count() as u32)
        .map(ChunkId)
        .flat_map(|c| dag.remote_readers(c).into_iter().map(move |r| (c, dag.chunk_owner(c), r)))
        .collect()
}

/// The messages of one transfer: those about `chunk` between its producer and reader.
fn messages_of(trace: &Trace, (chunk, src, dst): (ChunkId, Rank, Rank)) -> Vec<&MessageRecord> {
    let mut ms: Vec<&MessageRecord> = trace
        .messages
        .iter()
        .filter(|m| m.chunk == chunk && ((m.src, m.dst) == (src, dst) || (m.src, m.dst) == (dst, src)))
        .collect();
    ms.sort_by_key(|m| (m.sent_ns, m.recv_ns));
    ms
}

/// Checks that every transfer whose chunk is at least `eager_limit` bytes went rts,
/// cts, rndv-data (by send time, each sent only after the previous one arrived) and
/// was completed no earlier than its data arrived.
fn check_handshakes(dag: &Dag, trace: &Trace, eager_limit: u64) -> Result<(), String> {
    let phases: BTreeMap<(ChunkId, Rank, Rank, Phase), u64> =
        trace.transfer_events.iter().map(|e| ((e.chunk, e.src, e.dst, e.phase), e.at_ns)).collect();
    for t @ (chunk, src, dst) in transfers(dag) {
        if dag.chunk(chunk).bytes < eager_limit {
            continue;
        }
        let ms = messages_of(trace, t);
        let kinds: Vec<&str> = ms.iter().map(|m| m.kind).collect();
        let [rts, cts, data] = &ms[..] else {
            return Err(format!("{chunk} {src}->{dst}: messages {kinds:?}, expected [rts, cts, rndv-data]"));
        };
        if kinds != ["rts", "cts", "rndv-data"] || (rts.src, cts.src, data.src) != (src, dst, src) {
            return Err(format!("{chunk} {src}->{dst}: messages {kinds:?} in the wrong order or direction"));
        }
        if cts.sent_ns < rts.recv_ns || data.sent_ns < cts.recv_ns {
            return Err(format!("{chunk} {src}->{dst}: a message was sent before the one it answers arrived"));
        }
        let wire = phases.get(&(chunk, src, dst, Phase::Wire)).copied();
        let done = phases.get(&(chunk, src, dst, Phase::Completed)).copied();
        if wire.is_none_or(|w| w < cts.recv_ns) || done.is_none_or(|d| d < data.recv_ns) {
            return Err(format!(
                "{chunk} {src}->{dst}: Wire {wire:?} before the cts or Completed {done:?} before the data"
            ));
        }
    }
    Ok(())
}

/// The message totals the protocol implies for `dag` at `eager_limit`.
fn expected_totals(dag: &Dag, eager_limit: u64) -> MessageTotals {
    let mut t = MessageTotals::default();
    for (chunk, _, _) in transfers(dag) {
        let bytes = dag.chunk(chunk).bytes;
        t.data_messages += 1;
        t.data_bytes += bytes;
        if bytes >= eager_limit {
            t.control_messages += 2;
            t.control_bytes += 2 * HEADER_BYTES;
        }
    }
    t
}

/// The most rendezvous receives any one rank had granted (cts sent) but not completed
/// (data arrived) at once, per rank. A data arrival at the same instant as a grant is
/// counted first: the engine handles inputs one at a time and the strategy grants
/// only in answer to one, so a grant at time t can only follow the arrivals at t.
fn peak_outstanding(trace: &Trace, ranks: usize) -> Vec<i64> {
    let mut steps: Vec<(Rank, u64, i64)> = Vec::new();
    for m in &trace.messages {
        match m.kind {
            "cts" => steps.push((m.src, m.sent_ns, 1)),
            "rndv-data" => steps.push((m.dst, m.recv_ns, -1)),
            _ => {}
        }
    }
    steps.sort_unstable();
    let mut peak = vec![0; ranks];
    let mut now = vec![0; ranks];
    for (rank, _, delta) in steps {
        now[rank.index()] += delta;
        peak[rank.index()] = peak[rank.index()].max(now[rank.index()]);
    }
    peak
}

fn count(trace: &Trace, kind: &str) -> usize {
    trace.messages.iter().filter(|m| m.kind == kind).count()
}

const TIMINGS: [Timing; 4] = [
    Timing { latency: 10, task_ns: 10 },
    Timing { latency: 1, task_ns: 100 },
    Timing { latency: 1000, task_ns: 7 },
    Timing { latency: 3, task_ns: 0 },
];

/// Limits below, at and above each chunk size in [`fan_dag`], and one above them all.
const EAGER_LIMITS: [u64; 8] = [0, A, A + 1, B + 1, C, C + 1, D + 1, u64::MAX >> 1];

// ---------------------------------------------------------------------------------
// Whole runs
// ---------------------------------------------------------------------------------

#[test]
fn rendezvous_data_never_moves_before_its_clear_to_send() {
    let dag = fan_dag();
    for timing in TIMINGS {
        for max_receives in [1, 2, 64] {
            let run = drive(&dag, &rndv(&dag, 0, max_receives), timing, 10_000).unwrap();
            check_handshakes(&dag, &run.trace, 0).unwrap_or_else(|e| panic!("{timing:?} max={max_receives}: {e}"));
            assert_eq!(count(&run.trace, "rndv-data"), 15, "{timing:?}");
        }
    }
}

#[test]
fn the_handshake_check_rejects_data_without_a_clear_to_send() {
    // The check above must be able to fail: eager traffic has no handshake at all.
    let dag = fan_dag();
    let eager = |_: Rank| Box::new(Eager) as Box<dyn Strategy>;
    let run = drive(&dag, &eager, TIMINGS[0], 10_000).unwrap();
    let err = check_handshakes(&dag, &run.trace, 0).unwrap_err();
    assert!(err.contains("expected [rts, cts, rndv-data]"), "{err}");
    // And a rendezvous run checked as if its eager chunks had to handshake.
    let run = drive(&dag, &rndv(&dag, B + 1, 64), TIMINGS[0], 10_000).unwrap();
    assert!(check_handshakes(&dag, &run.trace, 0).is_err());
    check_handshakes(&dag, &run.trace, B + 1).unwrap();
}

#[test]
fn message_and_byte_counts_match_the_protocol() {
    let dag = fan_dag();
    for eager_limit in EAGER_LIMITS {
        let run = drive(&dag, &rndv(&dag, eager_limit, 64), TIMINGS[0], 10_000).unwrap();
        let label = format!("eager_limit={eager_limit}");
        assert_eq!(run.trace.message_totals(), expected_totals(&dag, eager_limit), "{label}");
        for t @ (chunk, src, dst) in transfers(&dag) {
            let ms = messages_of(&run.trace, t);
            let shape: Vec<(&str, MessageClass, u64)> = ms.iter().map(|m| (m.kind, m.class, m.bytes)).collect();
            let bytes = dag.chunk(chunk).bytes;
            let want = if bytes < eager_limit {
                vec![("eager-data", MessageClass::Data, bytes)]
            } else {
                vec![
                    ("rts", MessageClass::Control, HEADER_BYTES),
                    ("cts", MessageClass::Control, HEADER_BYTES),
                    ("rndv-data", MessageClass::Data, bytes),
                ]
            };
            assert_eq!(shape, want, "{label}: {chunk} {src}->{dst}");
        }
        check_handshakes(&dag, &run.trace, eager_limit).unwrap_or_else(|e| panic!("{label}: {e}"));
    }
}

#[test]
fn the_eager_limit_is_exclusive_and_zero_means_always_rendezvous() {
    let dag = fan_dag();
    let eager_at = |limit| count(&drive(&dag, &rndv(&dag, limit, 64), TIMINGS[0], 10_000).unwrap().trace, "eager-data");
    assert_eq!(eager_at(0), 0);
    assert_eq!(eager_at(A), 0, "a chunk of exactly eager_limit bytes takes the rendezvous");
    assert_eq!(eager_at(A + 1), 3, "the 40-byte chunk goes eagerly to its three reader ranks");
    assert_eq!(eager_at(u64::MAX >> 1), 15);
    let all_eager = drive(&dag, &rndv(&dag, u64::MAX >> 1, 64), TIMINGS[0], 10_000).unwrap();
    assert_eq!(all_eager.trace.message_totals().control_messages, 0);
}

#[test]
fn one_receive_buffer_means_at_most_one_granted_receive_per_rank() {
    let dag = fan_dag();
    for timing in TIMINGS {
        for eager_limit in [0, A + 1, C + 1] {
            for max_receives in [1, 2] {
                let run = drive(&dag, &rndv(&dag, eager_limit, max_receives), timing, 10_000).unwrap();
                let peak = peak_outstanding(&run.trace, 4);
                let label = format!("{timing:?} eager_limit={eager_limit} max_receives={max_receives}");
                assert!(peak.iter().all(|&p| p <= max_receives), "{label}: peaks {peak:?}");
                assert!(peak.iter().all(|&p| p >= 0), "{label}: more data than clear-to-sends {peak:?}");
            }
        }
    }
}

#[test]
fn without_the_cap_receives_overlap_so_the_cap_is_what_bounds_them() {
    // The count above must be able to fail: with many buffers, ranks of this DAG do
    // take several receives at once.
    let dag = fan_dag();
    for timing in TIMINGS {
        let peak = peak_outstanding(&drive(&dag, &rndv(&dag, 0, 64), timing, 10_000).unwrap().trace, 4);
        assert!(peak.iter().any(|&p| p >= 3), "{timing:?}: peaks {peak:?}");
        let peak = peak_outstanding(&drive(&dag, &rndv(&dag, 0, 2), timing, 10_000).unwrap().trace, 4);
        assert!(peak.contains(&2), "{timing:?}: peaks {peak:?}");
    }
}

#[test]
fn every_rank_finishes_for_every_eager_limit() {
    let dag = fan_dag();
    let sinks: BTreeSet<ChunkId> = dag.sinks().collect();
    for timing in TIMINGS {
        for eager_limit in EAGER_LIMITS {
            for max_receives in [1, 3, 64] {
                let label = format!("{timing:?} eager_limit={eager_limit} max_receives={max_receives}");
                let run = drive(&dag, &rndv(&dag, eager_limit, max_receives), timing, 10_000)
                    .unwrap_or_else(|e| panic!("{label}: {e}"));
                assert_eq!(run.results, sinks, "{label}");
                let rows = run.trace.transfers(|c| dag.chunk(c).bytes);
                assert_eq!(rows.len(), 15, "{label}");
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
fn the_handshake_costs_two_latencies_on_a_chain() {
    // r0 -> r1 over one 4096-byte chunk: rendezvous pays rts + cts before the data.
    let mut b = DagBuilder::new(2);
    let p = b.add(TaskSpec::new(KernelId(0), Rank(0)).outputs(&[D]));
    b.add(TaskSpec::new(KernelId(0), Rank(1)).inputs(&[p.output(0)]).outputs(&[8]));
    let dag = Arc::new(b.finish());
    let timing = Timing { latency: 10, task_ns: 100 };
    let end = |limit| drive(&dag, &rndv(&dag, limit, 1), timing, 100).unwrap().end_ns;
    assert_eq!(end(0), 100 + 3 * 10 + 100);
    assert_eq!(end(D + 1), 100 + 10 + 100);
}

// ---------------------------------------------------------------------------------
// Scripted exchanges on single engines
// ---------------------------------------------------------------------------------

fn engine(rank: u32, dag: &Arc<Dag>, eager_limit: u64, max_receives: usize) -> Engine {
    let strategy = Rendezvous::new(eager_limit, NonZeroUsize::new(max_receives).unwrap());
    Engine::new(Rank(rank), Arc::clone(dag), Box::new(strategy), 1)
}

fn sends(e: &mut Engine, now: u64) -> Vec<(Rank, Message)> {
    std::iter::from_fn(|| e.poll_action(now))
        .filter_map(|a| match a {
            Action::Send(out) => Some((out.to, out.msg)),
            Action::Run(_) => None,
            Action::Collective(_) | Action::OneSided(_) | Action::Copy(_) => {
                panic!(
                    "rendezvous joins no collective, issues no put or get, and a rank without a device copies nothing"
                )
            }
        })
        .collect()
}

/// r0 produces two chunks (16 and 24 bytes); r1 reads both; r2 reads the first.
fn two_chunks() -> (Arc<Dag>, ChunkId, ChunkId) {
    let mut b = DagBuilder::new(3);
    let p = b.add(TaskSpec::new(KernelId(0), Rank(0)).outputs(&[16, 24]));
    b.add(TaskSpec::new(KernelId(0), Rank(1)).inputs(&[p.output(0), p.output(1)]).outputs(&[8]));
    b.add(TaskSpec::new(KernelId(0), Rank(2)).inputs(&[p.output(0)]).outputs(&[8]));
    (Arc::new(b.finish()), p.output(0), p.output(1))
}

fn protocol_error(e: &Engine) -> String {
    match e.error() {
        Some(EngineError::Protocol { strategy: "rendezvous", reason, .. }) => reason.clone(),
        other => panic!("expected a rendezvous protocol error, got {other:?}"),
    }
}

/// Runs r0's producer task and returns its ready-to-sends.
fn produce(r0: &mut Engine) -> Vec<(Rank, Message)> {
    r0.handle_start(0);
    let Some(Action::Run(run)) = r0.poll_action(0) else { panic!("r0 runs its producer") };
    let outputs = vec![Payload::from_bytes(&[1; 16]), Payload::from_bytes(&[2; 24])];
    r0.handle_task_done(5, TaskDone { task: run.task, worker: 0, start_ns: 0, end_ns: 5, outputs });
    sends(r0, 5)
}

#[test]
fn the_producer_owes_data_until_every_clear_to_send_is_answered() {
    let (dag, x, y) = two_chunks();
    let mut r0 = engine(0, &dag, 0, 4);
    let rts = produce(&mut r0);
    let offered: Vec<(Rank, u8, ChunkId, u64)> = rts.iter().map(|(to, m)| (*to, m.op, m.chunk, m.arg)).collect();
    assert_eq!(offered, [(Rank(1), 1, x, 16), (Rank(2), 1, x, 16), (Rank(1), 1, y, 24)]);
    assert!(!r0.is_done(), "r0 ran all its tasks but still owes three transfers");
    for (i, (reader, chunk)) in [(Rank(2), x), (Rank(1), y), (Rank(1), x)].into_iter().enumerate() {
        assert!(!r0.is_done());
        r0.handle_message(10 + i as u64, reader, Message::control(2, chunk, dag.chunk(chunk).bytes));
        let [(to, data)] = &sends(&mut r0, 10 + i as u64)[..] else { panic!("one data message per cts") };
        assert_eq!((*to, data.op, data.chunk), (reader, 3, chunk));
        assert_eq!(data.payload.as_ref().unwrap().as_bytes()[0], if chunk == x { 1 } else { 2 });
    }
    assert!(r0.is_done(), "everything answered");
    let phases: Vec<(ChunkId, Rank, Phase)> =
        r0.take_trace().transfer_events.iter().map(|e| (e.chunk, e.dst, e.phase)).collect();
    assert!(phases.contains(&(x, Rank(2), Phase::Started)) && phases.contains(&(x, Rank(2), Phase::Wire)));
}

#[test]
fn a_reader_grants_clear_to_sends_first_come_first_served_within_its_buffers() {
    // r0 makes three chunks, r1 reads them all; the offers arrive out of chunk order.
    let mut b = DagBuilder::new(2);
    let p = b.add(TaskSpec::new(KernelId(0), Rank(0)).outputs(&[8, 16, 24]));
    let [x, y, z] = [0, 1, 2].map(|i| p.output(i));
    b.add(TaskSpec::new(KernelId(0), Rank(1)).inputs(&[x, y, z]).outputs(&[8]));
    let dag = Arc::new(b.finish());
    let mut r1 = engine(1, &dag, 0, 1);
    r1.handle_start(0);
    for (t, c) in [(1, z), (2, x), (3, y)] {
        r1.handle_message(t, Rank(0), Message::control(1, c, dag.chunk(c).bytes));
    }
    let grants =
        |r1: &mut Engine, now| -> Vec<(u8, ChunkId)> { sends(r1, now).iter().map(|(_, m)| (m.op, m.chunk)).collect() };
    assert_eq!(grants(&mut r1, 3), [(2, z)], "one buffer: only the first ready-to-send is granted");
    for (t, done, next) in [(4, z, x), (5, x, y)] {
        r1.handle_message(t, Rank(0), Message::data(3, done, Payload::zeroed(dag.chunk(done).bytes as usize)));
        assert_eq!(grants(&mut r1, t), [(2, next)], "the buffer is free again: the oldest waiting offer gets it");
    }
    assert!(!r1.is_done(), "y has not arrived");
    r1.handle_message(6, Rank(0), Message::data(3, y, Payload::zeroed(16)));
    assert!(r1.error().is_none(), "{:?}", r1.error());
    assert!(matches!(r1.poll_action(6), Some(Action::Run(_))), "all inputs present");
}

#[test]
fn a_clear_to_send_for_a_chunk_not_offered_is_refused() {
    let (dag, x, y) = two_chunks();
    let mut r0 = engine(0, &dag, 0, 4);
    r0.handle_message(1, Rank(1), Message::control(2, x, 16));
    let reason = protocol_error(&r0);
    assert!(reason.contains("clear-to-send") && reason.contains("expected"), "{reason}");

    // Offered, but not to this reader; and answered once already.
    let mut r0 = engine(0, &dag, 0, 4);
    let _ = produce(&mut r0);
    r0.handle_message(6, Rank(2), Message::control(2, y, 24));
    assert!(protocol_error(&r0).contains("owes no data"));
    let mut r0 = engine(0, &dag, 0, 4);
    let _ = produce(&mut r0);
    r0.handle_message(6, Rank(2), Message::control(2, x, 16));
    let _ = sends(&mut r0, 6);
    r0.handle_message(7, Rank(2), Message::control(2, x, 16));
    assert!(protocol_error(&r0).contains("owes no data"));
}

#[test]
fn data_without_a_clear_to_send_is_refused() {
    let (dag, x, _) = two_chunks();
    let mut r1 = engine(1, &dag, 0, 4);
    r1.handle_start(0);
    r1.handle_message(1, Rank(0), Message::data(3, x, Payload::zeroed(16)));
    let reason = protocol_error(&r1);
    assert!(reason.contains("without a clear-to-send") && reason.contains("expected rts"), "{reason}");
}

#[test]
fn malformed_control_messages_are_refused() {
    let (dag, x, _) = two_chunks();
    let cases: [(Message, &str); 5] = [
        (Message::control(1, x, 999), "expected 16"),
        (Message::control(1, ChunkId(99), 8), "does not have"),
        (Message::data(1, x, Payload::zeroed(16)), "expected a control message"),
        (Message::control(3, x, 16), "no payload"),
        (Message::control(9, x, 16), "expected rts (1)"),
    ];
    for (msg, want) in cases {
        let mut r1 = engine(1, &dag, 0, 4);
        r1.handle_message(1, Rank(0), msg);
        let reason = protocol_error(&r1);
        assert!(reason.contains(want), "{reason} (wanted `{want}`)");
    }
    let mut r1 = engine(1, &dag, 0, 4);
    r1.handle_message(1, Rank(0), Message::control(1, x, 16));
    r1.handle_message(2, Rank(0), Message::control(1, x, 16));
    assert!(protocol_error(&r1).contains("second ready-to-send"));
}

#[test]
fn small_chunks_go_eagerly_with_both_phases_at_once() {
    let (dag, x, y) = two_chunks();
    let mut r0 = engine(0, &dag, 20, 4);
    let sent: Vec<(Rank, &str, ChunkId)> = {
        let s = produce(&mut r0);
        s.iter().map(|(to, m)| (*to, if m.payload.is_some() { "data" } else { "control" }, m.chunk)).collect()
    };
    assert_eq!(sent, [(Rank(1), "data", x), (Rank(2), "data", x), (Rank(1), "control", y)]);
    assert!(!r0.is_done(), "y (24 bytes) is still owed");
}

#[test]
fn registered_with_checked_parameters() {
    let info = dagwire_strategies::find("rendezvous").unwrap();
    assert_eq!(info.name, "rendezvous");
    let err = dagwire_strategies::find("rendevous").unwrap_err().to_string();
    assert!(err.contains("did you mean `rendezvous`"), "{err}");
    let specs = (info.params)();
    let bad = |key: &str, v: i64| Params::resolve(&specs, [(key.to_string(), ParamValue::Int(v))].into()).unwrap_err();
    assert!(bad("max_receives", 0).reason.contains(">= 1"));
    assert!(bad("eager_limit", -1).reason.contains(">= 0"));
    let defaults = Params::resolve(&specs, Default::default()).unwrap();
    let s = info.factory(&defaults, &two_chunks().0, 1)(Rank(0));
    assert_eq!((s.name(), s.op_name(1), s.op_name(4), s.op_name(0)), ("rendezvous", "rts", "eager-data", "unknown"));
    assert!(s.is_idle());
}
