//! The local driver's failures: a panic in a strategy (on a message, on a chunk being
//! ready) or in a kernel fails the run within a second or so, naming the rank, what it
//! was handling and the panic's text, and the other ranks stop instead of waiting for
//! the run's timeout (600 s here). The bounds are generous: these are hang checks, not
//! speed tests. Also: the run's fault corrupts exactly the nth data message.

mod common;

use common::Push;
use dagwire_runtime::collective::AllToAllAlgorithm;
use dagwire_runtime::drivers::local::{LocalConfig, run};
use dagwire_runtime::{
    Capability, ChunkId, CollectiveKind, Contribution, Dag, DagBuilder, EngineError, Fault, KernelId, Kernels, Message,
    Payload, Progress, Rank, RunError, Strategy, StrategyCtx, Task, TaskId, TaskSpec,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a failing run may take at most (it should take milliseconds).
const HANG: Duration = Duration::from_secs(2);

/// Copies its first input to its output, or fills it with `args[0]` when it has none;
/// panics in the task numbered `args[1] - 1` (0: none).
struct CopyOrFill;

impl Kernels for CopyOrFill {
    fn run(&self, task: &Task, inputs: Vec<Payload>) -> Result<Vec<Payload>, String> {
        if task.args[1] == 1 {
            panic!("the kernel of this task exploded");
        }
        Ok(vec![match inputs.into_iter().next() {
            Some(input) => input.copied(),
            None => Payload::from_bytes(&[task.args[0] as u8; 16]),
        }])
    }
}

/// Rank 0 produces a chunk, rank 1 reads it and produces one, rank 2 reads that: rank
/// 2 waits for rank 1 whatever happens there. `boom` makes task 1's kernel panic.
fn chain(boom: bool) -> Arc<Dag> {
    let mut b = DagBuilder::new(3);
    let a = b.add(TaskSpec::new(KernelId(0), Rank(0)).args([7, 0, 0, 0]).outputs(&[16])).output(0);
    let mid = b.add(TaskSpec::new(KernelId(0), Rank(1)).args([0, u32::from(boom), 0, 0]).inputs(&[a]).outputs(&[16]));
    b.add(TaskSpec::new(KernelId(0), Rank(2)).inputs(&[mid.output(0)]).outputs(&[16]));
    Arc::new(b.finish())
}

/// Where [`Panicky`] panics.
#[derive(Clone, Copy, PartialEq)]
enum Where {
    OnMessage,
    OnChunkReady,
}

/// [`Push`], except that rank 1 panics at `at`.
struct Panicky {
    rank: Rank,
    at: Where,
}

impl Strategy for Panicky {
    fn name(&self) -> &'static str {
        "panicky"
    }
    fn op_name(&self, op: u8) -> &'static str {
        Push.op_name(op)
    }
    fn on_chunk_ready(&mut self, ctx: &mut StrategyCtx<'_>, chunk: ChunkId, data: &Payload, readers: &[Rank]) {
        if self.rank == Rank(1) && self.at == Where::OnChunkReady {
            panic!("on_chunk_ready of {chunk} exploded");
        }
        Push.on_chunk_ready(ctx, chunk, data, readers);
    }
    fn on_message(&mut self, ctx: &mut StrategyCtx<'_>, from: Rank, msg: Message) -> Result<(), String> {
        if self.rank == Rank(1) && self.at == Where::OnMessage {
            panic!("on_message from {from} exploded");
        }
        Push.on_message(ctx, from, msg)
    }
}

fn config(progress: Progress) -> LocalConfig {
    LocalConfig { ranks: 3, progress, ..LocalConfig::default() }
}

/// Runs `dag` with `strategy` and returns its error and how long it took.
fn fail(
    dag: &Arc<Dag>,
    strategy: &(dyn Fn(Rank) -> Box<dyn Strategy> + Sync),
    cfg: &LocalConfig,
) -> (RunError, Duration) {
    let started = Instant::now();
    let result = run(dag, &CopyOrFill, strategy, cfg);
    let took = started.elapsed();
    assert!(cfg.timeout >= Duration::from_secs(600), "the run's own timeout must not be what ends it");
    (result.expect_err("the run should fail"), took)
}

#[test]
fn a_strategy_panicking_on_a_message_fails_the_run_at_once_naming_the_rank_the_message_and_the_text() {
    for progress in [Progress::Thread, Progress::Inline] {
        let panicky = |rank| -> Box<dyn Strategy> { Box::new(Panicky { rank, at: Where::OnMessage }) };
        let (e, took) = fail(&chain(false), &panicky, &config(progress));
        assert!(took < HANG, "{progress:?}: the run took {took:?} to fail");
        let RunError::Panicked { rank, ref handling, ref text } = e else { panic!("{progress:?}: not a panic: {e}") };
        assert_eq!(rank, Rank(1));
        assert_eq!(handling, "a message from rank r0 (op 1 `push-data`, chunk c0)");
        assert_eq!(text, "on_message from r0 exploded");
        assert_eq!(
            e.to_string(),
            "rank r1 panicked while handling a message from rank r0 (op 1 `push-data`, chunk c0): on_message from r0 \
             exploded"
        );
    }
}

#[test]
fn a_strategy_panicking_on_a_ready_chunk_fails_the_run_at_once_naming_the_task() {
    for progress in [Progress::Thread, Progress::Inline] {
        let panicky = |rank| -> Box<dyn Strategy> { Box::new(Panicky { rank, at: Where::OnChunkReady }) };
        let (e, took) = fail(&chain(false), &panicky, &config(progress));
        assert!(took < HANG, "{progress:?}: the run took {took:?} to fail");
        assert_eq!(
            e.to_string(),
            "rank r1 panicked while handling the result of task t1: on_chunk_ready of c1 exploded"
        );
    }
}

#[test]
fn a_kernel_panicking_fails_the_run_at_once_naming_the_rank_the_task_and_the_text() {
    for progress in [Progress::Thread, Progress::Inline] {
        let push = |_| -> Box<dyn Strategy> { Box::new(Push) };
        let (e, took) = fail(&chain(true), &push, &config(progress));
        assert!(took < HANG, "{progress:?}: the run took {took:?} to fail");
        let RunError::Engine(EngineError::Kernel { task, rank, ref reason, .. }) = e else {
            panic!("{progress:?}: not a kernel failure: {e}")
        };
        assert_eq!((task, rank), (TaskId(1), Rank(1)));
        assert_eq!(reason, "kernel panicked: the kernel of this task exploded");
    }
}

/// Joins all-to-all-v 7 (nothing to send) at the start; rank 1 panics when it completes.
struct PanicsOnCollective {
    rank: Rank,
}

impl Strategy for PanicsOnCollective {
    fn name(&self) -> &'static str {
        "panics-on-collective"
    }
    fn op_name(&self, _: u8) -> &'static str {
        "none"
    }
    fn needs(&self) -> &'static [Capability] {
        &[Capability::AllToAllV]
    }
    fn on_start(&mut self, ctx: &mut StrategyCtx<'_>) {
        let others = (0..ctx.dag.ranks() as u32).map(Rank).filter(|&r| r != ctx.rank);
        ctx.join_collective(
            7,
            CollectiveKind::AllToAllV { algorithm: AllToAllAlgorithm::Pairwise },
            others.map(|r| (r, Vec::new())).collect(),
        );
    }
    fn on_chunk_ready(&mut self, _: &mut StrategyCtx<'_>, _: ChunkId, _: &Payload, _: &[Rank]) {}
    fn on_message(&mut self, _: &mut StrategyCtx<'_>, _: Rank, _: Message) -> Result<(), String> {
        Err("no messages expected".into())
    }
    fn on_collective_done(&mut self, _: &mut StrategyCtx<'_>, id: u64, _: Vec<Contribution>) -> Result<(), String> {
        if self.rank == Rank(1) {
            panic!("collective {id} exploded");
        }
        Ok(())
    }
}

#[test]
fn a_strategy_panicking_on_a_collective_fails_the_run_at_once_naming_the_collective() {
    let mut b = DagBuilder::new(2);
    for r in 0..2 {
        b.add(TaskSpec::new(KernelId(0), Rank(r)).outputs(&[16]));
    }
    let dag = Arc::new(b.finish());
    for progress in [Progress::Thread, Progress::Inline] {
        let strategy = |rank| -> Box<dyn Strategy> { Box::new(PanicsOnCollective { rank }) };
        let cfg = LocalConfig { ranks: 2, progress, ..LocalConfig::default() };
        let (e, took) = fail(&dag, &strategy, &cfg);
        assert!(took < HANG, "{progress:?}: the run took {took:?} to fail");
        let text = e.to_string();
        assert!(
            text.starts_with("rank r1 panicked while handling collective 7")
                && text.ends_with(": collective 7 exploded"),
            "{progress:?}: {text}"
        );
    }
}

#[test]
fn a_run_without_failures_still_finishes_and_every_progress_mode_gives_the_same_results() {
    let push = |_| -> Box<dyn Strategy> { Box::new(Push) };
    for progress in [Progress::Auto, Progress::Thread, Progress::Inline] {
        let out = run(&chain(false), &CopyOrFill, &push, &config(progress)).expect("the run succeeds");
        assert_eq!(out.results.values().map(|p| p.as_bytes().to_vec()).collect::<Vec<_>>(), [vec![7u8; 16]]);
    }
}

#[test]
fn the_fault_corrupts_exactly_the_nth_data_message_of_the_run() {
    // Rank 0 makes five chunks (filled with 0..5) in order and sends each to rank 1,
    // whose tasks copy them into results: the nth data message is the nth chunk.
    let mut b = DagBuilder::new(2);
    for i in 0..5 {
        let c = b.add(TaskSpec::new(KernelId(0), Rank(0)).args([i, 0, 0, 0]).outputs(&[16])).output(0);
        b.add(TaskSpec::new(KernelId(0), Rank(1)).inputs(&[c]).outputs(&[16]));
    }
    let dag = Arc::new(b.finish());
    let push = |_| -> Box<dyn Strategy> { Box::new(Push) };
    for progress in [Progress::Thread, Progress::Inline] {
        for nth in [0, 2, 4] {
            let cfg = LocalConfig {
                ranks: 2,
                progress,
                fault: Some(Fault::CorruptDataMessage { nth }),
                ..LocalConfig::default()
            };
            let out = run(&dag, &CopyOrFill, &push, &cfg).expect("the run succeeds");
            let corrupted: Vec<usize> = out
                .results
                .values()
                .enumerate()
                .filter(|(i, p)| p.as_bytes().iter().any(|&byte| byte != *i as u8))
                .map(|(i, _)| i)
                .collect();
            assert_eq!(corrupted, [nth as usize], "{progress:?}, nth = {nth}");
        }
    }
}
