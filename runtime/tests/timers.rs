//! Engine timers and the stall watch on scripted events: no threads, no clock.

use dagwire_runtime::drivers::testing::{Delayed, Timing, drive};
use dagwire_runtime::engine::{Action, Engine, EngineError, TaskDone};
use dagwire_runtime::{ChunkId, Dag, DagBuilder, KernelId, Message, Payload, Rank, Strategy, StrategyCtx, TaskSpec};
use std::sync::Arc;

/// r0 produces a 16-byte chunk, r1 reads it.
fn chain() -> Arc<Dag> {
    let mut b = DagBuilder::new(2);
    let p = b.add(TaskSpec::new(KernelId(0), Rank(0)).outputs(&[16]));
    b.add(TaskSpec::new(KernelId(1), Rank(1)).inputs(&[p.output(0)]).outputs(&[8]));
    Arc::new(b.finish())
}

fn delayed(rank: u32, dag: &Arc<Dag>, delay: u64) -> Engine {
    Engine::new(Rank(rank), Arc::clone(dag), Box::new(Delayed::new(delay)), 1)
}

fn drain(e: &mut Engine, now: u64) -> Vec<Action> {
    std::iter::from_fn(|| e.poll_action(now)).collect()
}

#[test]
fn a_strategy_timer_fires_at_its_deadline_and_not_before() {
    let dag = chain();
    let mut r0 = delayed(0, &dag, 100);
    r0.handle_start(0);
    assert_eq!(r0.poll_timeout(), None, "nothing armed yet");
    let [Action::Run(run)] = &drain(&mut r0, 0)[..] else { panic!("r0 runs its producer") };
    let done = TaskDone { task: run.task, worker: 0, start_ns: 0, end_ns: 10, outputs: vec![Payload::zeroed(16)] };
    r0.handle_task_done(10, done);
    assert!(drain(&mut r0, 10).is_empty(), "the chunk is held");
    assert_eq!(r0.poll_timeout(), Some(110));
    assert!(!r0.is_done(), "a held chunk keeps the rank busy");
    r0.handle_timeout(109);
    assert!(drain(&mut r0, 109).is_empty(), "an early wake-up does nothing");
    assert_eq!(r0.poll_timeout(), Some(110));
    r0.handle_timeout(115);
    let [Action::Send(out)] = &drain(&mut r0, 115)[..] else { panic!("the timer sends the chunk") };
    assert_eq!((out.to, out.msg.sent_ns), (Rank(1), 115));
    assert_eq!(r0.poll_timeout(), None);
    assert!(r0.is_done());
}

#[test]
fn due_timers_fire_earliest_first_and_a_token_set_again_moves() {
    /// Records the order its timers fire in.
    struct Order(Vec<u64>);
    impl Strategy for Order {
        fn name(&self) -> &'static str {
            "order"
        }
        fn op_name(&self, _: u8) -> &'static str {
            "none"
        }
        fn on_start(&mut self, ctx: &mut StrategyCtx<'_>) {
            ctx.set_timer(30, 1);
            ctx.set_timer(20, 2);
            ctx.set_timer(20, 3);
            ctx.set_timer(10, 4);
            ctx.set_timer(99, 4); // moves token 4 past the others
            ctx.set_timer(25, 5);
            ctx.cancel_timer(5);
        }
        fn on_chunk_ready(&mut self, _: &mut StrategyCtx<'_>, _: ChunkId, _: &Payload, _: &[Rank]) {}
        fn on_message(&mut self, _: &mut StrategyCtx<'_>, _: Rank, _: Message) -> Result<(), String> {
            Ok(())
        }
        fn on_timer(&mut self, _: &mut StrategyCtx<'_>, token: u64) -> Result<(), String> {
            self.0.push(token);
            if token == 1 { Err("token 1 is refused".into()) } else { Ok(()) }
        }
    }
    let mut b = DagBuilder::new(1);
    b.add(TaskSpec::new(KernelId(0), Rank(0)).outputs(&[8]));
    let mut e = Engine::new(Rank(0), Arc::new(b.finish()), Box::new(Order(Vec::new())), 1);
    e.handle_start(0);
    assert_eq!(e.poll_timeout(), Some(20));
    e.handle_timeout(25);
    assert_eq!(e.poll_timeout(), Some(30), "2 and 3 fired; 4 was moved to 99, 5 cancelled");
    assert!(e.error().is_none());
    e.handle_timeout(1000);
    let Some(EngineError::Protocol { reason, .. }) = e.error() else {
        panic!("a refused timer is fatal: {:?}", e.error())
    };
    assert_eq!(reason, "token 1 is refused");
    assert_eq!(e.poll_timeout(), None, "nothing more after an error");
}

#[test]
fn a_timer_the_strategy_does_not_handle_is_a_protocol_error() {
    /// Arms a timer but keeps the trait's default `on_timer`.
    struct Forgetful;
    impl Strategy for Forgetful {
        fn name(&self) -> &'static str {
            "forgetful"
        }
        fn op_name(&self, _: u8) -> &'static str {
            "none"
        }
        fn on_start(&mut self, ctx: &mut StrategyCtx<'_>) {
            ctx.set_timer(5, 7);
        }
        fn on_chunk_ready(&mut self, _: &mut StrategyCtx<'_>, _: ChunkId, _: &Payload, _: &[Rank]) {}
        fn on_message(&mut self, _: &mut StrategyCtx<'_>, _: Rank, _: Message) -> Result<(), String> {
            Ok(())
        }
    }
    let mut e = Engine::new(Rank(1), chain(), Box::new(Forgetful), 1);
    e.handle_start(0);
    e.handle_timeout(4);
    assert!(e.error().is_none());
    e.handle_timeout(5);
    let err = e.error().expect("the default on_timer refuses").to_string();
    assert_eq!(err, "strategy forgetful on rank r1: timer 7 fired, but this strategy sets no timers");
}

#[test]
fn the_stall_watch_fails_a_rank_that_waits_too_long_and_says_for_what() {
    let dag = chain();
    let mut r1 = delayed(1, &dag, 0);
    r1.set_stall_timeout(Some(1_000), 0);
    r1.handle_start(0);
    assert!(drain(&mut r1, 0).is_empty(), "r1 waits for the chunk");
    assert_eq!(r1.poll_timeout(), Some(1_000));
    r1.handle_timeout(999);
    assert!(r1.error().is_none(), "not yet");
    r1.handle_timeout(1_000);
    let Some(EngineError::Stalled { rank, idle_ns, waiting }) = r1.error() else { panic!("stalled: {:?}", r1.error()) };
    assert_eq!((*rank, *idle_ns), (Rank(1), 1_000));
    assert!(waiting.contains("waiting for 1 chunks") && waiting.contains("c0 from r0"), "{waiting}");
    let msg = r1.error().unwrap().to_string();
    assert!(msg.starts_with("rank r1 made no progress for 0.0 s"), "{msg}");
}

#[test]
fn input_restarts_the_stall_watch_and_a_done_rank_never_stalls() {
    let dag = chain();
    let mut r1 = delayed(1, &dag, 0);
    r1.set_stall_timeout(Some(1_000), 0);
    r1.handle_start(0);
    r1.handle_message(900, Rank(0), Message::data(1, ChunkId(0), Payload::zeroed(16)));
    assert_eq!(r1.poll_timeout(), Some(1_900), "the message was input");
    r1.handle_timeout(1_500);
    assert!(r1.error().is_none());
    let [Action::Run(run)] = &drain(&mut r1, 1_500)[..] else { panic!("r1 runs its reader") };
    let done =
        TaskDone { task: run.task, worker: 0, start_ns: 1_500, end_ns: 1_600, outputs: vec![Payload::zeroed(8)] };
    r1.handle_task_done(1_600, done);
    assert!(r1.is_done());
    assert_eq!(r1.poll_timeout(), None, "a done rank has no deadline");
    r1.handle_timeout(u64::MAX);
    assert!(r1.error().is_none());
}

#[test]
fn the_harness_fires_timers_at_their_virtual_time() {
    let timing = Timing { latency: 7, task_ns: 10 };
    for delay in [0, 1, 100] {
        let run = drive(&chain(), &|_| Box::new(Delayed::new(delay)), 1, timing, 100, &mut |_| Ok(())).unwrap();
        // Producer 10 ns, held `delay`, on the wire 7 ns, reader 10 ns.
        assert_eq!(run.end_ns, 10 + delay + 7 + 10, "delay {delay}");
        let sent = run.trace.messages[0].sent_ns;
        assert_eq!(sent, 10 + delay, "the chunk left when its timer fired");
    }
}

#[test]
fn the_local_driver_honours_timers() {
    use dagwire_runtime::drivers::local::{LocalConfig, run};
    use dagwire_runtime::{Kernels, Progress, Task};
    struct Zeros;
    impl Kernels for Zeros {
        fn run(&self, task: &Task, _: Vec<Payload>) -> Result<Vec<Payload>, String> {
            Ok(vec![Payload::zeroed(if task.kernel == KernelId(0) { 16 } else { 8 })])
        }
    }
    for progress in [Progress::Thread, Progress::Inline] {
        let cfg = LocalConfig { ranks: 2, progress, ..LocalConfig::default() };
        let delay = 20_000_000; // 20 ms: long against a thread's wake-up, short for a test
        let out = run(&chain(), &Zeros, &|_| Box::new(Delayed::new(delay)), &cfg).unwrap();
        let producer_end = out.trace.tasks.iter().find(|t| t.rank == Rank(0)).unwrap().end_ns;
        let sent = out.trace.messages[0].sent_ns;
        assert!(sent >= producer_end + delay, "{progress:?}: sent at {sent}, producer ended at {producer_end}");
        assert_eq!(out.results.len(), 1);
    }
}

#[test]
fn a_local_rank_that_waits_past_the_timeout_fails_with_what_it_waits_for() {
    use dagwire_runtime::drivers::local::{LocalConfig, run};
    use dagwire_runtime::{Kernels, RunError, Task};
    use std::time::Duration;
    struct Zeros;
    impl Kernels for Zeros {
        fn run(&self, task: &Task, _: Vec<Payload>) -> Result<Vec<Payload>, String> {
            Ok(vec![Payload::zeroed(if task.kernel == KernelId(0) { 16 } else { 8 })])
        }
    }
    /// Never sends anything: its reader waits forever.
    struct Mute;
    impl Strategy for Mute {
        fn name(&self) -> &'static str {
            "mute"
        }
        fn op_name(&self, _: u8) -> &'static str {
            "none"
        }
        fn on_chunk_ready(&mut self, _: &mut StrategyCtx<'_>, _: ChunkId, _: &Payload, _: &[Rank]) {}
        fn on_message(&mut self, _: &mut StrategyCtx<'_>, _: Rank, _: Message) -> Result<(), String> {
            Ok(())
        }
    }
    let cfg = LocalConfig { ranks: 2, timeout: Duration::from_millis(200), ..LocalConfig::default() };
    let err = run(&chain(), &Zeros, &|_| Box::new(Mute), &cfg).unwrap_err();
    let RunError::Stalled { timeout, ranks } = &err else { panic!("a stall: {err}") };
    assert_eq!(*timeout, Duration::from_millis(200));
    assert!(ranks.iter().any(|r| r.starts_with("rank r1") && r.contains("c0 from r0")), "{ranks:?}");
}
