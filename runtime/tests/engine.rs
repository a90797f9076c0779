//! Engine behaviour on scripted events: no threads, no clock, every step explicit.

mod common;

use common::Push;
use dagwire_runtime::collective::{AllToAllAlgorithm, Tree};
use dagwire_runtime::drivers::testing::{Timing, drive};
use dagwire_runtime::engine::{Action, Engine, EngineError, TaskDone};
use dagwire_runtime::message::{HEADER_BYTES, NO_CHUNK};
use dagwire_runtime::{
    Capability, ChunkId, CollectiveKind, Contribution, Dag, DagBuilder, KernelId, Message, MessageClass, Payload, Rank,
    Strategy, StrategyCtx, TaskId, TaskSpec,
};
use std::sync::Arc;

/// The all-to-all-v kind most tests join.
const PAIRWISE: CollectiveKind = CollectiveKind::AllToAllV { algorithm: AllToAllAlgorithm::Pairwise };

fn engine(rank: u32, dag: &Arc<Dag>, workers: usize) -> Engine {
    Engine::new(Rank(rank), Arc::clone(dag), Box::new(Push), workers)
}

fn done(task: TaskId, outputs: Vec<Payload>) -> TaskDone {
    TaskDone { task, worker: 0, start_ns: 0, end_ns: 1, outputs }
}

fn drain(e: &mut Engine, now: u64) -> Vec<Action> {
    std::iter::from_fn(|| e.poll_action(now)).collect()
}

/// r0 produces a chunk, r1 reads it.
fn two_rank_chain() -> (Arc<Dag>, TaskId, TaskId) {
    let mut b = DagBuilder::new(2);
    let p = b.add(TaskSpec::new(KernelId(0), Rank(0)).outputs(&[16]));
    let c = b.add(TaskSpec::new(KernelId(1), Rank(1)).inputs(&[p.output(0)]).outputs(&[8]));
    (Arc::new(b.finish()), p.task, c.task)
}

#[test]
fn a_remote_reader_waits_for_the_message_then_runs() {
    let (dag, producer, consumer) = two_rank_chain();
    let (mut r0, mut r1) = (engine(0, &dag, 1), engine(1, &dag, 1));
    r0.handle_start(0);
    r1.handle_start(0);
    assert!(drain(&mut r1, 0).is_empty(), "the consumer must wait for its input");
    let [Action::Run(run)] = &drain(&mut r0, 0)[..] else { panic!("r0 should run its task") };
    assert_eq!(run.task, producer);
    r0.handle_task_done(10, done(producer, vec![Payload::from_bytes(&[7; 16])]));
    let [Action::Send(out)] = &mut drain(&mut r0, 12)[..] else { panic!("r0 should send the chunk") };
    assert_eq!((out.to, out.msg.sent_ns), (Rank(1), 12));
    assert!(r0.is_done());
    r1.handle_message(20, Rank(0), out.msg.clone());
    let [Action::Run(run)] = &drain(&mut r1, 20)[..] else { panic!("r1 should now run") };
    assert_eq!(run.task, consumer);
    assert_eq!(run.inputs[0].as_bytes(), &[7; 16]);
    let trace = r1.take_trace();
    assert_eq!(trace.messages[0].recv_ns - trace.messages[0].sent_ns, 8);
}

#[test]
fn ready_tasks_run_by_priority_and_never_exceed_the_workers() {
    let mut b = DagBuilder::new(1);
    let low = b.add(TaskSpec::new(KernelId(0), Rank(0)).priority(1).outputs(&[8]));
    let high = b.add(TaskSpec::new(KernelId(0), Rank(0)).priority(9).outputs(&[8]));
    let mid = b.add(TaskSpec::new(KernelId(0), Rank(0)).priority(5).outputs(&[8]));
    let dag = Arc::new(b.finish());
    let mut e = engine(0, &dag, 2);
    e.handle_start(0);
    let order: Vec<TaskId> = drain(&mut e, 0)
        .into_iter()
        .map(|a| match a {
            Action::Run(r) => r.task,
            Action::Send(_) | Action::Collective(_) | Action::OneSided(_) | Action::Copy(_) => {
                panic!("no communication on one rank")
            }
        })
        .collect();
    assert_eq!(order, vec![high.task, mid.task], "two workers, highest priorities first");
    e.handle_task_done(1, done(high.task, vec![Payload::zeroed(8)]));
    let [Action::Run(run)] = &drain(&mut e, 1)[..] else { panic!("a worker freed up") };
    assert_eq!(run.task, low.task);
    assert!(!e.is_done());
}

#[test]
fn the_last_reader_gets_the_only_reference_so_updates_need_no_copy() {
    let mut b = DagBuilder::new(1);
    let a = b.add(TaskSpec::new(KernelId(0), Rank(0)).outputs(&[8]));
    let r1 = b.add(TaskSpec::new(KernelId(1), Rank(0)).priority(2).inputs(&[a.output(0)]).outputs(&[8]));
    let r2 = b.add(TaskSpec::new(KernelId(1), Rank(0)).priority(1).inputs(&[a.output(0)]).outputs(&[8]));
    let dag = Arc::new(b.finish());
    let mut e = engine(0, &dag, 2);
    e.handle_start(0);
    let _ = drain(&mut e, 0);
    e.handle_task_done(1, done(a.task, vec![Payload::zeroed(8)]));
    let runs: Vec<_> = drain(&mut e, 1)
        .into_iter()
        .map(|a| match a {
            Action::Run(r) => r,
            Action::Send(_) | Action::Collective(_) | Action::OneSided(_) | Action::Copy(_) => unreachable!(),
        })
        .collect();
    assert_eq!(runs.iter().map(|r| r.task).collect::<Vec<_>>(), vec![r1.task, r2.task]);
    let bytes = runs[1].inputs[0].as_bytes().as_ptr();
    assert_eq!(runs[0].inputs[0].as_bytes().as_ptr(), bytes, "both readers share the chunk's bytes");
    let mut runs = runs.into_iter();
    drop(runs.next());
    let mut last = runs.next().unwrap();
    assert_eq!(
        last.inputs[0].as_bytes_mut().as_ptr(),
        bytes,
        "the engine kept no copy: the last reader writes in place"
    );
}

#[test]
fn a_task_reading_one_chunk_twice_gets_it_twice() {
    let mut b = DagBuilder::new(1);
    let a = b.add(TaskSpec::new(KernelId(0), Rank(0)).outputs(&[8]));
    let twice = b.add(TaskSpec::new(KernelId(1), Rank(0)).inputs(&[a.output(0), a.output(0)]).outputs(&[8]));
    let dag = Arc::new(b.finish());
    let mut e = engine(0, &dag, 1);
    e.handle_start(0);
    let _ = drain(&mut e, 0);
    e.handle_task_done(1, done(a.task, vec![Payload::from_bytes(&[3; 8])]));
    let [Action::Run(run)] = &drain(&mut e, 1)[..] else { panic!("ready") };
    assert_eq!(run.task, twice.task);
    assert_eq!(run.inputs.len(), 2);
    e.handle_task_done(2, done(twice.task, vec![Payload::zeroed(8)]));
    assert!(e.is_done());
    assert_eq!(e.take_results().len(), 1);
}

#[test]
fn wrong_output_sizes_are_a_sticky_error() {
    let (dag, producer, _) = two_rank_chain();
    let mut r0 = engine(0, &dag, 1);
    r0.handle_start(0);
    let _ = drain(&mut r0, 0);
    r0.handle_task_done(1, done(producer, vec![Payload::zeroed(4)]));
    assert!(
        matches!(r0.error(), Some(EngineError::OutputShape { expected, got, .. }) if expected == &[16] && got == &[4])
    );
    assert!(r0.poll_action(2).is_none(), "a failed engine does nothing more");
    let msg = r0.error().unwrap().to_string();
    assert!(msg.contains("16") && msg.contains("declares"), "{msg}");
}

#[test]
fn a_chunk_the_rank_does_not_read_or_already_has_is_refused() {
    let (dag, producer, _) = two_rank_chain();
    let chunk = dag.task(producer).outputs().next().unwrap();
    let mut r0 = engine(0, &dag, 1);
    r0.handle_message(0, Rank(1), Message::data(1, chunk, Payload::zeroed(16)));
    assert!(matches!(r0.error(), Some(EngineError::UnexpectedChunk { why: "does not read", .. })));

    let mut r1 = engine(1, &dag, 1);
    r1.handle_start(0);
    r1.handle_message(1, Rank(0), Message::data(1, chunk, Payload::zeroed(16)));
    assert!(r1.error().is_none());
    r1.handle_message(2, Rank(0), Message::data(1, chunk, Payload::zeroed(16)));
    assert!(matches!(r1.error(), Some(EngineError::UnexpectedChunk { why: "already has", .. })));
}

#[test]
fn a_task_reported_twice_is_an_error() {
    let (dag, producer, _) = two_rank_chain();
    let mut r0 = engine(0, &dag, 1);
    r0.handle_start(0);
    let _ = drain(&mut r0, 0);
    r0.handle_task_done(1, done(producer, vec![Payload::zeroed(16)]));
    r0.handle_task_done(2, done(producer, vec![Payload::zeroed(16)]));
    assert!(matches!(r0.error(), Some(EngineError::NotRunning { .. })));
}

#[test]
fn a_fan_out_over_four_ranks_finishes_with_one_message_per_reader_rank() {
    let mut b = DagBuilder::new(4);
    let root = b.add(TaskSpec::new(KernelId(0), Rank(0)).outputs(&[64]));
    for r in 0..4 {
        for _ in 0..3 {
            b.add(TaskSpec::new(KernelId(1), Rank(r)).inputs(&[root.output(0)]).outputs(&[8]));
        }
    }
    let dag = Arc::new(b.finish());
    let timing = Timing { latency: 10, task_ns: 10 };
    let run =
        drive(&dag, &|_| Box::new(Push), 1, timing, 1000, &mut |_| Err("push joins no collective".into())).unwrap();
    let (end, messages) = (run.end_ns, run.trace.messages.len());
    assert_eq!(messages, 3, "a chunk crosses to each reader rank once");
    assert_eq!(end, 10 + 10 + 3 * 10, "produce, message, three reads in a row on one worker");
}

/// Per peer, the messages of one contribution.
type Sends = Vec<(Rank, Vec<Message>)>;

/// A strategy that joins the collectives it is given when the run starts and delivers
/// whatever chunks they bring.
struct Joiner {
    joins: Vec<(u64, CollectiveKind, Sends)>,
}

impl Strategy for Joiner {
    fn name(&self) -> &'static str {
        "joiner"
    }
    fn op_name(&self, op: u8) -> &'static str {
        if op == 1 { "joiner-data" } else { "joiner-ctrl" }
    }
    fn needs(&self) -> &'static [Capability] {
        &[Capability::AllToAllV]
    }
    fn on_start(&mut self, ctx: &mut StrategyCtx<'_>) {
        for (id, kind, sends) in std::mem::take(&mut self.joins) {
            ctx.join_collective(id, kind, sends);
        }
    }
    fn on_chunk_ready(&mut self, _: &mut StrategyCtx<'_>, _: ChunkId, _: &Payload, _: &[Rank]) {}
    fn on_message(&mut self, _: &mut StrategyCtx<'_>, _: Rank, _: Message) -> Result<(), String> {
        Err("joiner takes no messages".into())
    }
    fn on_collective_done(
        &mut self,
        ctx: &mut StrategyCtx<'_>,
        _: u64,
        received: Vec<Contribution>,
    ) -> Result<(), String> {
        for c in received {
            for m in c.messages {
                if let Some(p) = m.payload {
                    ctx.deliver(m.chunk, c.from, p);
                }
            }
        }
        Ok(())
    }
}

#[test]
fn a_collective_join_names_every_other_rank_once_and_completes_with_one_record_per_contribution() {
    // r0 produces a chunk r1 reads; r1 joins collective 7 naming r2 twice and itself.
    let mut b = DagBuilder::new(3);
    let p = b.add(TaskSpec::new(KernelId(0), Rank(0)).outputs(&[16]));
    b.add(TaskSpec::new(KernelId(1), Rank(1)).inputs(&[p.output(0)]).outputs(&[8]));
    let dag = Arc::new(b.finish());
    let chunk = p.output(0);
    let ctrl = |arg| Message::control(2, NO_CHUNK, arg);
    let sends = vec![(Rank(2), vec![ctrl(1)]), (Rank(1), vec![ctrl(9)]), (Rank(2), vec![ctrl(2)])];
    let joins = vec![(7, PAIRWISE, sends)];
    let mut r1 = Engine::new(Rank(1), Arc::clone(&dag), Box::new(Joiner { joins }), 1);
    assert_eq!(r1.needs(), &[Capability::AllToAllV]);
    r1.handle_start(3);
    let [Action::Collective(join)] = &drain(&mut r1, 4)[..] else { panic!("r1 joins, it cannot run yet") };
    assert_eq!((join.id, &join.kind), (7, &PAIRWISE));
    let mut stamped = ctrl(1);
    stamped.sent_ns = 4;
    let mut second = ctrl(2);
    second.sent_ns = 4;
    assert_eq!(join.sends, [(Rank(0), vec![]), (Rank(2), vec![stamped, second])]);
    assert!(!r1.is_done(), "a joined collective is in flight");

    let received = vec![
        Contribution { from: Rank(2), sent_ns: 5, recv_ns: 9, messages: vec![] },
        Contribution {
            from: Rank(0),
            sent_ns: 6,
            recv_ns: 8,
            messages: vec![Message::data(1, chunk, Payload::zeroed(16))],
        },
    ];
    r1.handle_collective_done(10, 7, received);
    assert!(r1.error().is_none(), "{:?}", r1.error());
    let [Action::Run(run)] = &drain(&mut r1, 10)[..] else { panic!("the chunk arrived: r1 runs") };
    assert_eq!(run.inputs[0].len(), 16);
    let records: Vec<_> = r1
        .take_trace()
        .messages
        .iter()
        .map(|m| (m.src, m.kind, m.class, m.bytes, m.chunk, m.sent_ns, m.recv_ns))
        .collect();
    assert_eq!(
        records,
        [
            (Rank(0), "joiner-data", MessageClass::Data, 16, chunk, 6, 8),
            (Rank(2), "empty", MessageClass::Control, HEADER_BYTES, NO_CHUNK, 5, 9),
        ]
    );
}

#[test]
fn collective_ids_must_increase_and_only_joined_collectives_complete() {
    let (dag, _, _) = two_rank_chain();
    let joins = vec![(5, PAIRWISE, vec![]), (5, PAIRWISE, vec![])];
    let mut r0 = Engine::new(Rank(0), Arc::clone(&dag), Box::new(Joiner { joins }), 1);
    r0.handle_start(0);
    assert!(matches!(r0.poll_action(0), Some(Action::Collective(j)) if j.id == 5));
    assert!(r0.poll_action(0).is_none());
    assert!(matches!(r0.error(), Some(EngineError::CollectiveTwice { id: 5, .. })), "{:?}", r0.error());

    let joins = vec![(5, PAIRWISE, vec![])];
    let mut r0 = Engine::new(Rank(0), Arc::clone(&dag), Box::new(Joiner { joins }), 1);
    r0.handle_start(0);
    let _ = drain(&mut r0, 0);
    r0.handle_collective_done(1, 6, vec![]);
    assert!(matches!(r0.error(), Some(EngineError::UnknownCollective { id: 6, pending, .. }) if pending == &[5]));

    // A point-to-point strategy joins nothing, needs nothing more, and is told so.
    let mut r0 = engine(0, &dag, 1);
    assert_eq!(r0.needs(), Capability::POINT_TO_POINT);
    r0.handle_collective_done(1, 0, vec![]);
    assert!(matches!(r0.error(), Some(EngineError::UnknownCollective { id: 0, .. })));
}

#[test]
fn a_broadcast_join_carries_only_the_roots_messages_and_needs_this_rank_as_a_member() {
    let (dag, _, _) = two_rank_chain();
    let tree = Tree::Binomial;
    let data = |arg| Message::control(1, NO_CHUNK, arg);
    let join_as = |rank: u32, members: Vec<Rank>| {
        let kind = CollectiveKind::Broadcast { members, tree };
        let sends = vec![(Rank(1), vec![data(1)]), (Rank(0), vec![data(2)])];
        let mut e = Engine::new(Rank(rank), Arc::clone(&dag), Box::new(Joiner { joins: vec![(3, kind, sends)] }), 1);
        e.handle_start(0);
        let action = e.poll_action(0);
        (e, action)
    };
    let (_, root) = join_as(0, vec![Rank(0), Rank(1)]);
    let Some(Action::Collective(join)) = root else { panic!("the root joins") };
    let args: Vec<(Rank, Vec<u64>)> =
        join.sends.iter().map(|(r, ms)| (*r, ms.iter().map(|m| m.arg).collect())).collect();
    assert_eq!(args, [(Rank(0), vec![1, 2])], "the root's lists become the one list every member gets");
    let (_, member) = join_as(1, vec![Rank(0), Rank(1)]);
    let Some(Action::Collective(join)) = member else { panic!("a member joins") };
    assert!(join.sends.is_empty(), "a non-root sends nothing");
    for members in [vec![Rank(0)], vec![Rank(1), Rank(0), Rank(1)]] {
        let (e, action) = join_as(1, members.clone());
        assert!(action.is_none(), "{members:?}");
        let Some(EngineError::Protocol { reason, .. }) = e.error() else { panic!("{members:?}: {:?}", e.error()) };
        assert!(reason.contains("must include this rank, once each"), "{reason}");
    }
}

/// Two ranks, each with two kernels whose outputs feed two collective all-reduce tasks
/// (groups 0 and 1), and a task reading group 0's result.
fn two_groups() -> Arc<Dag> {
    use dagwire_runtime::collective::{AllReduceAlgorithm, DType, ReduceOp};
    let kind = CollectiveKind::AllReduce { op: ReduceOp::Sum, dtype: DType::F64, algorithm: AllReduceAlgorithm::Ring };
    let mut b = DagBuilder::new(2);
    for r in 0..2 {
        let a = b.add(TaskSpec::new(KernelId(0), Rank(r)).outputs(&[16]));
        let c = b.add(TaskSpec::new(KernelId(0), Rank(r)).outputs(&[8]));
        let (ia, ic) = ([a.output(0)], [c.output(0)]);
        let g0 = b.add_collective(TaskSpec::new(KernelId(2), Rank(r)).inputs(&ia).outputs(&[16]), kind.clone());
        b.add_collective(TaskSpec::new(KernelId(2), Rank(r)).inputs(&ic).outputs(&[8]), kind.clone());
        b.add(TaskSpec::new(KernelId(1), Rank(r)).inputs(&[g0.output(0)]).outputs(&[8]));
    }
    Arc::new(b.finish())
}

#[test]
fn collective_tasks_join_their_groups_in_order_and_produce_the_result() {
    use dagwire_runtime::engine::TASK_COLLECTIVE;
    let dag = two_groups();
    let mut r0 = engine(0, &dag, 2);
    assert_eq!(r0.needs(), &[Capability::PointToPoint, Capability::AllReduce]);
    r0.handle_start(0);
    let runs: Vec<TaskId> =
        drain(&mut r0, 0).into_iter().map(|a| if let Action::Run(r) = a { r.task } else { panic!("{a:?}") }).collect();
    assert_eq!(runs.len(), 2);
    // Group 1's input is ready first: it waits for group 0.
    let (a, c) = (runs[0], runs[1]);
    r0.handle_task_done(1, done(c, vec![Payload::zeroed(8)]));
    assert!(drain(&mut r0, 1).is_empty(), "group 1 must not be joined before group 0");
    r0.handle_task_done(2, done(a, vec![Payload::from_f64(vec![1.0, 2.0])]));
    let joins: Vec<(u64, usize)> = drain(&mut r0, 2)
        .into_iter()
        .map(|x| match x {
            Action::Collective(j) => (j.id, j.sends[0].1[0].payload.as_ref().unwrap().len()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(joins, [(TASK_COLLECTIVE, 16), (TASK_COLLECTIVE | 1, 8)]);
    assert!(!r0.is_done());
    // The sum comes back: the task is done, its reader runs on it.
    let sum = |bytes: Payload| {
        let m = Message::data(0, NO_CHUNK, bytes);
        vec![Contribution { from: Rank(0), sent_ns: 2, recv_ns: 5, messages: vec![m] }]
    };
    r0.handle_collective_done(5, TASK_COLLECTIVE, sum(Payload::from_f64(vec![3.0, 5.0])));
    let [Action::Run(run)] = &drain(&mut r0, 5)[..] else { panic!("the reader runs") };
    assert_eq!(run.inputs[0].as_f64(), &[3.0, 5.0]);
    r0.handle_task_done(6, done(run.task, vec![Payload::zeroed(8)]));
    // A result of the wrong size is an error naming the task, not a silent success.
    r0.handle_collective_done(7, TASK_COLLECTIVE | 1, sum(Payload::zeroed(16)));
    assert!(matches!(r0.error(), Some(EngineError::Protocol { reason, .. }) if reason.contains("8-byte result")));
    let lane = r0.take_trace().tasks.into_iter().find(|t| t.kernel == KernelId(2)).unwrap();
    assert_eq!((lane.worker, lane.start_ns, lane.end_ns), (2, 2, 5));
}

#[test]
#[should_panic(expected = "differ from rank 0's")]
fn ranks_with_different_collective_groups_are_refused_when_the_dag_is_built() {
    use dagwire_runtime::collective::{AllReduceAlgorithm, DType, ReduceOp};
    let kind = CollectiveKind::AllReduce { op: ReduceOp::Sum, dtype: DType::F64, algorithm: AllReduceAlgorithm::Ring };
    let mut b = DagBuilder::new(2);
    let a = b.add(TaskSpec::new(KernelId(0), Rank(0)).outputs(&[16]));
    b.add_collective(TaskSpec::new(KernelId(2), Rank(0)).inputs(&[a.output(0)]).outputs(&[16]), kind);
    b.finish();
}
