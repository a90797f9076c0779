//! The per-rank engine: a deterministic state machine with no I/O and no clock.
//!
//! # Call order
//! 1. [`Engine::handle_start`] once.
//! 2. Loop: drain [`Engine::poll_action`] and execute every action; then feed what
//!    happened back with [`Engine::handle_task_done`] / [`Engine::handle_message`]
//!    (or [`Engine::handle_task_failed`]); stop when [`Engine::is_done`] or
//!    [`Engine::error`] says so.
//! 3. [`Engine::take_results`] and [`Engine::take_trace`].
//!
//! `now` (ns since the run started) is always an argument, so the same engine runs
//! under real threads, MPI and the simulator's virtual time.

use crate::dag::Dag;
use crate::ids::{ChunkId, Rank, TaskId};
use crate::message::Message;
use crate::payload::Payload;
use crate::strategy::{Strategy, StrategyCtx};
use crate::trace::{MessageRecord, Phase, TaskRecord, Trace};
use rustc_hash::FxHashMap as HashMap;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;

/// Something the driver must do now.
#[must_use = "an action the driver does not execute stalls the run"]
#[derive(Debug)]
pub enum Action {
    /// Run a task's kernel on a free worker, then call [`Engine::handle_task_done`].
    Run(RunTask),
    /// Deliver a message to another rank's [`Engine::handle_message`].
    Send(Outgoing),
}

/// A task to run with its inputs, in declared order.
#[derive(Debug)]
pub struct RunTask {
    /// The task.
    pub task: TaskId,
    /// Its inputs.
    pub inputs: Vec<Arc<Payload>>,
}

/// A message to send.
#[derive(Debug)]
pub struct Outgoing {
    /// Destination rank.
    pub to: Rank,
    /// The message (its `sent_ns` is already stamped).
    pub msg: Message,
}

/// A finished task as the driver reports it.
#[derive(Debug)]
pub struct TaskDone {
    /// The task.
    pub task: TaskId,
    /// Worker that ran it.
    pub worker: u32,
    /// Kernel start, ns.
    pub start_ns: u64,
    /// Kernel end, ns.
    pub end_ns: u64,
    /// Outputs, one per declared output chunk.
    pub outputs: Vec<Payload>,
}

/// A fatal error. Errors stick: once set, the engine does nothing more.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum EngineError {
    /// A kernel failed or panicked.
    #[error("task {task} (kernel {kernel}) on rank {rank} failed: {reason}")]
    Kernel {
        /// Task.
        task: TaskId,
        /// Its kernel number.
        kernel: u16,
        /// Rank.
        rank: Rank,
        /// What the kernel said.
        reason: String,
    },
    /// A kernel returned the wrong number or size of outputs (a workload bug).
    #[error("task {task} returned outputs of {got:?} bytes, the DAG declares {expected:?}")]
    OutputShape {
        /// Task.
        task: TaskId,
        /// Declared sizes.
        expected: Vec<u64>,
        /// Returned sizes.
        got: Vec<u64>,
    },
    /// A chunk arrived that this rank does not read, or arrived twice.
    #[error("rank {rank} received chunk {chunk} from {from}, which it {why}")]
    UnexpectedChunk {
        /// This rank.
        rank: Rank,
        /// The chunk.
        chunk: ChunkId,
        /// Sender.
        from: Rank,
        /// "does not read" or "already has".
        why: &'static str,
    },
    /// The strategy refused a message.
    #[error("strategy {strategy} on rank {rank}: {reason}")]
    Protocol {
        /// Strategy name.
        strategy: &'static str,
        /// Rank.
        rank: Rank,
        /// What went wrong.
        reason: String,
    },
    /// The driver reported a task that was not running.
    #[error("rank {rank} was told task {task} finished, but it was not running")]
    NotRunning {
        /// Rank.
        rank: Rank,
        /// Task.
        task: TaskId,
    },
}

/// A [`StrategyCtx`] over the engine's fields, borrowed one by one so the strategy
/// itself can be borrowed alongside.
macro_rules! strategy_ctx {
    ($engine:ident, $now:expr) => {
        StrategyCtx {
            now: $now,
            rank: $engine.rank,
            dag: &$engine.dag,
            sends: &mut $engine.sends,
            delivered: &mut $engine.delivered,
            events: &mut $engine.trace.transfer_events,
        }
    };
}

/// Ready tasks come out by priority, then lowest id: deterministic.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Ready {
    priority: u32,
    id: std::cmp::Reverse<TaskId>,
}

/// A chunk present on this rank and how many local tasks still need to read it.
struct Stored {
    data: Arc<Payload>,
    readers_left: u32,
}

/// The per-rank engine. See the [module docs](self) for the call order.
///
/// ```
/// use dagwire_runtime::engine::{Action, Engine, TaskDone};
/// use dagwire_runtime::{DagBuilder, KernelId, Rank, TaskSpec};
/// use std::sync::Arc;
/// # struct NoStrategy;
/// # impl dagwire_runtime::Strategy for NoStrategy {
/// #     fn name(&self) -> &'static str { "none" }
/// #     fn op_name(&self, _: u8) -> &'static str { "none" }
/// #     fn on_chunk_ready(&mut self, _: &mut dagwire_runtime::StrategyCtx<'_>, _: dagwire_runtime::ChunkId,
/// #         _: &Arc<dagwire_runtime::Payload>, _: &[Rank]) {}
/// #     fn on_message(&mut self, _: &mut dagwire_runtime::StrategyCtx<'_>, _: Rank,
/// #         _: dagwire_runtime::Message) -> Result<(), String> { Ok(()) }
/// # }
/// let mut b = DagBuilder::new(1);
/// b.add(TaskSpec::new(KernelId(0), Rank(0)).outputs(&[8]));
/// let mut engine = Engine::new(Rank(0), Arc::new(b.finish()), Box::new(NoStrategy), 1);
/// engine.handle_start(0);
/// let Some(Action::Run(run)) = engine.poll_action(0) else { panic!("expected a task") };
/// let outputs = vec![dagwire_runtime::Payload::zeroed(8)];
/// engine.handle_task_done(5, TaskDone { task: run.task, worker: 0, start_ns: 1, end_ns: 5, outputs });
/// assert!(engine.is_done());
/// assert_eq!(engine.take_results().len(), 1);
/// ```
pub struct Engine {
    rank: Rank,
    dag: Arc<Dag>,
    strategy: Box<dyn Strategy>,
    workers: u32,
    busy: u32,
    missing: HashMap<TaskId, u32>,
    ready: BinaryHeap<Ready>,
    running: Vec<TaskId>,
    unfinished: usize,
    store: HashMap<ChunkId, Stored>,
    results: Vec<(ChunkId, Arc<Payload>)>,
    sends: VecDeque<(Rank, Message)>,
    delivered: Vec<(ChunkId, Rank, Payload)>,
    trace: Trace,
    error: Option<EngineError>,
}

impl Engine {
    /// An engine for `rank` running at most `workers` tasks at once.
    pub fn new(rank: Rank, dag: Arc<Dag>, strategy: Box<dyn Strategy>, workers: usize) -> Self {
        let local = dag.tasks_of(rank);
        let missing = local.iter().map(|&t| (t, dag.inputs(t).len() as u32)).collect();
        Engine {
            rank,
            unfinished: local.len(),
            dag,
            strategy,
            workers: workers.max(1) as u32,
            busy: 0,
            missing,
            ready: BinaryHeap::new(),
            running: Vec::new(),
            store: HashMap::default(),
            results: Vec::new(),
            sends: VecDeque::new(),
            delivered: Vec::new(),
            trace: Trace::default(),
            error: None,
        }
    }

    /// This engine's rank.
    pub fn rank(&self) -> Rank {
        self.rank
    }

    /// The strategy's name.
    pub fn strategy_name(&self) -> &'static str {
        self.strategy.name()
    }

    /// Starts the run: tasks without inputs become ready.
    pub fn handle_start(&mut self, _now: u64) {
        let roots: Vec<TaskId> = self.missing.iter().filter(|(_, n)| **n == 0).map(|(&t, _)| t).collect();
        for t in roots {
            self.make_ready(t);
        }
    }

    /// The next action, or `None` when there is nothing to do until an input arrives.
    /// Messages go first (they are cheap and others wait on them), then tasks, as long
    /// as a worker is free.
    pub fn poll_action(&mut self, now: u64) -> Option<Action> {
        if self.error.is_some() {
            return None;
        }
        if let Some((to, mut msg)) = self.sends.pop_front() {
            msg.sent_ns = now;
            return Some(Action::Send(Outgoing { to, msg }));
        }
        if self.busy >= self.workers {
            return None;
        }
        let task = self.ready.pop()?.id.0;
        self.busy += 1;
        self.running.push(task);
        let dag = Arc::clone(&self.dag);
        let inputs = dag.inputs(task).iter().map(|&c| self.read(c)).collect();
        Some(Action::Run(RunTask { task, inputs }))
    }

    /// A task this rank ran has finished.
    pub fn handle_task_done(&mut self, now: u64, done: TaskDone) {
        if self.error.is_some() {
            return;
        }
        let Some(pos) = self.running.iter().position(|&t| t == done.task) else {
            self.error = Some(EngineError::NotRunning { rank: self.rank, task: done.task });
            return;
        };
        self.running.swap_remove(pos);
        self.busy -= 1;
        self.unfinished -= 1;
        let dag = Arc::clone(&self.dag);
        let task = dag.task(done.task);
        let expected: Vec<u64> = task.outputs().map(|c| dag.chunk(c).bytes).collect();
        let got: Vec<u64> = done.outputs.iter().map(|p| p.len() as u64).collect();
        if expected != got {
            self.error = Some(EngineError::OutputShape { task: done.task, expected, got });
            return;
        }
        self.trace.tasks.push(TaskRecord {
            task: done.task,
            kernel: task.kernel,
            rank: self.rank,
            worker: done.worker,
            start_ns: done.start_ns,
            end_ns: done.end_ns,
            flops: task.flops,
        });
        for (chunk, payload) in task.outputs().zip(done.outputs) {
            self.produced(now, chunk, payload);
        }
    }

    /// A task's kernel failed; the run is over for this rank.
    pub fn handle_task_failed(&mut self, task: TaskId, reason: String) {
        let kernel = self.dag.task(task).kernel.0;
        self.error.get_or_insert(EngineError::Kernel { task, kernel, rank: self.rank, reason });
    }

    /// A message arrived from `from`.
    pub fn handle_message(&mut self, now: u64, from: Rank, msg: Message) {
        if self.error.is_some() {
            return;
        }
        self.trace.messages.push(MessageRecord {
            src: from,
            dst: self.rank,
            kind: self.strategy.op_name(msg.op),
            class: msg.class(),
            bytes: msg.wire_bytes(),
            chunk: msg.chunk,
            sent_ns: msg.sent_ns,
            recv_ns: now,
        });
        let result = self.strategy.on_message(&mut strategy_ctx!(self, now), from, msg);
        if let Err(reason) = result {
            self.error = Some(EngineError::Protocol { strategy: self.strategy.name(), rank: self.rank, reason });
            return;
        }
        for (chunk, src, payload) in std::mem::take(&mut self.delivered) {
            self.received(chunk, src, payload);
        }
    }

    /// True when every local task ran and the strategy has nothing in flight.
    pub fn is_done(&self) -> bool {
        self.unfinished == 0 && self.sends.is_empty() && self.strategy.is_idle()
    }

    /// The sticky fatal error, if any.
    pub fn error(&self) -> Option<&EngineError> {
        self.error.as_ref()
    }

    /// Result chunks ([`Dag::results`]) produced on this rank.
    pub fn take_results(&mut self) -> Vec<(ChunkId, Arc<Payload>)> {
        std::mem::take(&mut self.results)
    }

    /// The trace recorded so far.
    pub fn take_trace(&mut self) -> Trace {
        std::mem::take(&mut self.trace)
    }

    /// Why this rank is not done: for stall diagnostics.
    pub fn waiting_summary(&self) -> String {
        let mut waiting: Vec<ChunkId> = Vec::new();
        for (&t, _) in self.missing.iter().filter(|(_, n)| **n > 0) {
            waiting.extend(self.dag.inputs(t).iter().filter(|c| !self.store.contains_key(c)));
        }
        waiting.sort_unstable();
        waiting.dedup();
        let shown: Vec<String> =
            waiting.iter().take(5).map(|&c| format!("{c} from {}", self.dag.chunk_owner(c))).collect();
        format!(
            "rank {}: {} tasks unfinished ({} running, {} ready), waiting for {} chunks [{}], strategy idle: {}",
            self.rank,
            self.unfinished,
            self.running.len(),
            self.ready.len(),
            waiting.len(),
            shown.join(", "),
            self.strategy.is_idle()
        )
    }

    /// A local task produced `chunk`: hand it to remote readers and local ones.
    fn produced(&mut self, now: u64, chunk: ChunkId, payload: Payload) {
        let data = Arc::new(payload);
        let readers = self.dag.remote_readers(chunk);
        if !readers.is_empty() {
            let mut ctx = strategy_ctx!(self, now);
            for &r in &readers {
                ctx.phase(chunk, self.rank, r, Phase::Posted);
            }
            self.strategy.on_chunk_ready(&mut ctx, chunk, &data, &readers);
        }
        if self.dag.is_result(chunk) {
            self.results.push((chunk, Arc::clone(&data)));
        }
        self.arrived(chunk, data);
    }

    /// A chunk came in from `src`.
    fn received(&mut self, chunk: ChunkId, src: Rank, payload: Payload) {
        let reads_it = self.dag.consumers(chunk).iter().any(|&t| self.dag.task(t).owner == self.rank);
        let why = if !reads_it {
            Some("does not read")
        } else if self.store.contains_key(&chunk) {
            Some("already has")
        } else {
            None
        };
        if let Some(why) = why {
            self.error = Some(EngineError::UnexpectedChunk { rank: self.rank, chunk, from: src, why });
            return;
        }
        self.arrived(chunk, Arc::new(payload));
    }

    /// `chunk` is now present here: count its local readers and wake them.
    fn arrived(&mut self, chunk: ChunkId, data: Arc<Payload>) {
        let dag = Arc::clone(&self.dag);
        let (rank, mut readers) = (self.rank, 0);
        for &t in dag.consumers(chunk).iter().filter(|&&t| dag.task(t).owner == rank) {
            // A task may read the same chunk twice; it waits for it (and reads it) each time.
            let uses = dag.inputs(t).iter().filter(|&&c| c == chunk).count() as u32;
            readers += uses;
            let left = self.missing.get_mut(&t).expect("local task is tracked");
            *left -= uses;
            if *left == 0 {
                self.make_ready(t);
            }
        }
        if readers > 0 {
            self.store.insert(chunk, Stored { data, readers_left: readers });
        }
    }

    fn make_ready(&mut self, t: TaskId) {
        self.missing.remove(&t);
        self.ready.push(Ready { priority: self.dag.task(t).priority, id: std::cmp::Reverse(t) });
    }

    /// One read of a stored chunk; the last read takes it out, so an in-place kernel
    /// can reuse the buffer without a copy.
    fn read(&mut self, chunk: ChunkId) -> Arc<Payload> {
        let stored = self.store.get_mut(&chunk).expect("a ready task's inputs are present");
        stored.readers_left -= 1;
        if stored.readers_left == 0 {
            self.store.remove(&chunk).expect("present").data
        } else {
            Arc::clone(&stored.data)
        }
    }
}
