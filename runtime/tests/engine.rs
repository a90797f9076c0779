//! Engine behaviour on scripted events: no threads, no clock, every step explicit.

use dagwire_runtime::engine::{Action, Engine, EngineError, TaskDone};
use dagwire_runtime::trace::Phase;
use dagwire_runtime::{
    ChunkId, Dag, DagBuilder, KernelId, Message, Payload, Rank, Strategy, StrategyCtx, TaskId, TaskSpec,
};
use std::collections::VecDeque;
use std::sync::Arc;

/// A minimal eager protocol, so these tests do not depend on the strategies crate.
struct Push;

impl Strategy for Push {
    fn name(&self) -> &'static str {
        "push"
    }
    fn op_name(&self, _: u8) -> &'static str {
        "push-data"
    }
    fn on_chunk_ready(&mut self, ctx: &mut StrategyCtx<'_>, chunk: ChunkId, data: &Arc<Payload>, readers: &[Rank]) {
        for &r in readers {
            ctx.phase(chunk, ctx.rank, r, Phase::Wire);
            ctx.send(r, Message::data(1, chunk, (**data).clone()));
        }
    }
    fn on_message(&mut self, ctx: &mut StrategyCtx<'_>, from: Rank, msg: Message) -> Result<(), String> {
        let payload = msg.payload.ok_or("push expects data")?;
        ctx.deliver(msg.chunk, from, payload);
        Ok(())
    }
}

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
            Action::Send(_) => panic!("no sends on one rank"),
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
            Action::Send(_) => unreachable!(),
        })
        .collect();
    assert_eq!(runs.iter().map(|r| r.task).collect::<Vec<_>>(), vec![r1.task, r2.task]);
    assert_eq!(Arc::strong_count(&runs[1].inputs[0]), 2, "r1 still holds the chunk");
    let mut runs = runs.into_iter();
    drop(runs.next());
    let last = runs.next().unwrap();
    assert_eq!(Arc::strong_count(&last.inputs[0]), 1, "the engine kept no copy after the last read");
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

/// An in-memory N-rank harness with simulated time and a fixed latency: every
/// action completes `latency` ns after it is issued. Bounded: panics after `max_steps`.
fn drive(dag: &Arc<Dag>, latency: u64, max_steps: usize) -> (u64, Vec<Engine>) {
    let mut engines: Vec<Engine> = (0..dag.ranks() as u32).map(|r| engine(r, dag, 1)).collect();
    let mut events: VecDeque<(u64, usize, Result<TaskDone, (Rank, Message)>)> = VecDeque::new();
    let mut now = 0;
    engines.iter_mut().for_each(|e| e.handle_start(0));
    for _ in 0..max_steps {
        for (r, e) in engines.iter_mut().enumerate() {
            while let Some(a) = e.poll_action(now) {
                match a {
                    Action::Run(run) => {
                        let sizes: Vec<Payload> = dag
                            .task(run.task)
                            .outputs()
                            .map(|c| Payload::zeroed(dag.chunk(c).bytes as usize))
                            .collect();
                        events.push_back((now + latency, r, Ok(done(run.task, sizes))));
                    }
                    Action::Send(out) => {
                        events.push_back((now + latency, out.to.index(), Err((Rank(r as u32), out.msg))))
                    }
                }
            }
        }
        if engines.iter().all(|e| e.is_done()) {
            return (now, engines);
        }
        let (at, r, ev) = events.pop_front().expect("work remains but nothing is in flight: deadlock");
        now = at;
        match ev {
            Ok(d) => engines[r].handle_task_done(now, d),
            Err((from, msg)) => engines[r].handle_message(now, from, msg),
        }
        assert!(engines[r].error().is_none(), "{:?}", engines[r].error());
    }
    panic!("not done after {max_steps} steps");
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
    let (end, mut engines) = drive(&dag, 10, 1000);
    let messages: usize = engines.iter_mut().map(|e| e.take_trace().messages.len()).sum();
    assert_eq!(messages, 3, "a chunk crosses to each reader rank once");
    assert_eq!(end, 10 + 10 + 3 * 10, "produce, message, three reads in a row on one worker");
}
