//! The per-rank engine: a deterministic state machine with no I/O and no clock.
//!
//! # Call order
//! 1. [`Engine::handle_start`] once.
//! 2. Loop: drain [`Engine::poll_action`] and execute every action; then feed what
//!    happened back with [`Engine::handle_task_done`] / [`Engine::handle_message`] /
//!    [`Engine::handle_collective_done`] (or [`Engine::handle_task_failed`]); when the
//!    driver's clock reaches [`Engine::poll_timeout`], call [`Engine::handle_timeout`]
//!    (strategy timers, the stall watch); stop when [`Engine::is_done`] or
//!    [`Engine::error`] says so.
//! 3. [`Engine::take_results`] and [`Engine::take_trace`].
//!
//! Before step 1 a driver checks that it offers what the strategy and the DAG's
//! collective tasks [`Engine::needs`] ([`crate::collective::check_capabilities`]).
//!
//! A **collective task** ([`crate::DagBuilder::add_collective`]) runs no kernel: once
//! its input is present the engine joins its collective (the [`Action::Collective`] of
//! id [`TASK_COLLECTIVE`]` | group`, groups in order) and its result becomes the task's
//! output. Its trace record spans the join to the completion, on lane `workers` (one past
//! the last worker), so timelines show it beside the kernels.
//!
//! **Memory spaces** ([`crate::space`]): a driver that gives the engine a device
//! ([`Engine::set_memory`]) is asked for [`Action::Copy`]s between host and device memory,
//! and answers each with [`Engine::handle_copy_done`]; the engine holds the messages,
//! collectives and one-sided operations that wait for a chunk to reach host memory, and
//! the tasks that wait for one to reach device memory. A strategy's collective is the
//! exception: it goes out at once, and the driver's collective layer holds each piece
//! until its chunks' copies end ([`crate::collectives::Collectives::stage`]), so staging
//! pipelines with the exchange. Without a device (every real driver) it asks for none.
//!
//! `now` (ns since the run started) is always an argument, so the same engine runs
//! under real threads, MPI and the simulator's virtual time.

use crate::collective::{Capability, CollectiveJoin, Contribution, wire_bytes};
use crate::dag::{Dag, Reader, Role};
use crate::ids::{ChunkId, Rank, TaskId};
use crate::message::{Message, MessageClass, NO_CHUNK};
use crate::one_sided::{Access, MemoryKey, OneSided, WindowSpec};
use crate::payload::Payload;
use crate::policies::{self, DecisionInput, SlotView};
use crate::space::{DeviceMemory, Memory, Path, Space};
use crate::store::ChunkStore;
use crate::strategy::{Strategy, StrategyCtx};
use crate::timer::Timers;
use crate::trace::{ChunkSize, MessageRecord, Phase, TaskRecord, Trace};
use rustc_hash::FxHashMap as HashMap;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;

/// Bytes in a GiB, for messages.
const GIB: f64 = (1u64 << 30) as f64;

/// The bit that marks the ids of collectives the engine joins for collective tasks
/// (strategies' own collective ids stay below it).
pub const TASK_COLLECTIVE: u64 = 1 << 63;

/// No collective group: an ordinary task.
const NO_GROUP: u32 = u32::MAX;

/// Something the driver must do now.
#[must_use = "an action the driver does not execute stalls the run"]
#[derive(Debug)]
pub enum Action {
    /// Run a task's kernel on a free worker, then call [`Engine::handle_task_done`].
    Run(RunTask),
    /// Deliver a message to another rank's [`Engine::handle_message`].
    Send(Outgoing),
    /// Join a collective with the other ranks; once it has completed on this rank, call
    /// [`Engine::handle_collective_done`] with what the peers contributed. Only strategies
    /// that [need](Engine::needs) a collective capability ask for this.
    Collective(CollectiveJoin),
    /// Put into or get from a rank's one-sided window; once complete here, call
    /// [`Engine::handle_one_sided_done`]. Only strategies with a [window](Engine::window)
    /// ask for this (see [`crate::one_sided`] for what drivers guarantee).
    OneSided(OneSided),
    /// Copy a chunk between this rank's host and device memory, then call
    /// [`Engine::handle_copy_done`]. Only an engine given a device
    /// ([`Engine::set_memory`]) asks for this (see [`crate::space`]).
    Copy(DeviceCopy),
}

/// A copy between this rank's host and device memory (see [`crate::space`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceCopy {
    /// Names the copy in [`Engine::handle_copy_done`]; unique per rank.
    pub id: u64,
    /// The chunk copied.
    pub chunk: ChunkId,
    /// Bytes copied.
    pub bytes: u64,
    /// Where the bytes are.
    pub from: Space,
    /// Where they go.
    pub to: Space,
    /// The other rank of the transfer it serves: the first receiver a chunk is staged
    /// for (device to host), the sender it came from (host to device; this rank for the
    /// output of a task that ran on the host).
    pub peer: Rank,
    /// What the transfer is: `message`, `collective`, `put`, `get`, `read`, or `output`
    /// (a host task's output a device task reads).
    pub carries: &'static str,
}

/// A task to run with its inputs, in declared order.
#[derive(Debug)]
pub struct RunTask {
    /// The task.
    pub task: TaskId,
    /// Its inputs.
    pub inputs: Vec<Payload>,
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
    /// A kernel returned the wrong number or size of outputs (a workload bug): sizes
    /// other than declared, or above the bound of a run-time-sized output.
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
    /// The driver reported a collective this rank had not joined (or had already seen complete).
    #[error(
        "rank {rank} was told collective {id} completed, but it has not joined it (joined and pending: {pending:?})"
    )]
    UnknownCollective {
        /// Rank.
        rank: Rank,
        /// The collective's id.
        id: u64,
        /// Collectives this rank joined that have not completed.
        pending: Vec<u64>,
    },
    /// The strategy joined a collective whose id was not above every id it used before.
    #[error("strategy {strategy} on rank {rank} joined collective {id} after a higher or equal id; ids must increase")]
    CollectiveTwice {
        /// Strategy name.
        strategy: &'static str,
        /// Rank.
        rank: Rank,
        /// The repeated id.
        id: u64,
    },
    /// The driver reported a one-sided operation this rank has not issued (or whose
    /// completion it already saw), or a get that returned the wrong number of bytes.
    #[error("rank {rank}: one-sided operation {id} {why}")]
    OneSided {
        /// Rank.
        rank: Rank,
        /// The operation's id.
        id: u64,
        /// What is wrong with it.
        why: String,
    },
    /// The rank took no input for the engine's stall timeout
    /// ([`Engine::set_stall_timeout`]) while work remained.
    #[error("rank {rank} made no progress for {:.1} s: {waiting}", *.idle_ns as f64 * 1e-9)]
    Stalled {
        /// Rank.
        rank: Rank,
        /// How long it went without input, ns.
        idle_ns: u64,
        /// What it waits for ([`Engine::waiting_summary`]).
        waiting: String,
    },
    /// The driver reported a copy this rank has not asked for (or whose completion it
    /// already saw).
    #[error("rank {rank} was told copy {id} completed, but it has no such copy in flight")]
    UnknownCopy {
        /// Rank.
        rank: Rank,
        /// The copy's id.
        id: u64,
    },
    /// The chunks this rank's device tasks need at once do not fit its device's memory
    /// (see [`crate::space::DeviceMemory`]).
    #[error(
        "rank {rank}'s {device} needs {need} bytes ({:.2} GiB) at once (with chunk {chunk}), more than its memory of \
         {capacity} bytes ({:.2} GiB): device memory is not evicted to host memory; give the device more memory \
         (memory_gib) or run more ranks",
        *.need as f64 / GIB, *.capacity as f64 / GIB
    )]
    DeviceMemory {
        /// Rank.
        rank: Rank,
        /// Its device.
        device: Space,
        /// Bytes needed at once.
        need: u64,
        /// The chunk that did not fit.
        chunk: ChunkId,
        /// The device's memory, bytes.
        capacity: u64,
    },
    /// The driver reported a task that was not running.
    #[error("rank {rank} was told task {task} finished, but it was not running")]
    NotRunning {
        /// Rank.
        rank: Rank,
        /// Task.
        task: TaskId,
    },
    /// Run-time placement went wrong: a policy decided differently on two ranks, picked
    /// a rank that is not a candidate, or a report had the wrong length (see
    /// [`crate::policies`]).
    #[error("run-time placement on rank {rank}, task {task}: {reason}")]
    Placement {
        /// Rank.
        rank: Rank,
        /// The decide, check or placed task concerned.
        task: TaskId,
        /// What went wrong, naming the ranks that disagree.
        reason: String,
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
            collectives: &mut $engine.collectives,
            delivered: &mut $engine.delivered,
            events: &mut $engine.trace.transfer_events,
            one_sided: &mut $engine.one_sided,
            next_one_sided: &mut $engine.next_one_sided,
            timers: &mut $engine.timers,
        }
    };
}

/// Ready tasks come out by priority, then lowest id: deterministic.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Ready {
    priority: u32,
    id: std::cmp::Reverse<TaskId>,
}

impl Ready {
    fn of(dag: &Dag, t: TaskId) -> Ready {
        Ready { priority: dag.task(t).priority, id: std::cmp::Reverse(t) }
    }
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
/// #         _: &dagwire_runtime::Payload, _: &[Rank]) {}
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
    /// Inputs each local task still waits for, by [`Dag::local_index`].
    missing: Vec<u32>,
    /// Local tasks (by [`Dag::local_index`], sorted) that read some chunk more than once;
    /// every other task reads each of its inputs once, which spares a scan of its inputs
    /// on every arrival (an all-to-all's receive task reads one chunk per rank).
    reads_twice: Vec<u32>,
    ready: BinaryHeap<Ready>,
    /// Ready tasks the engine runs itself (run-time placement), in the order they became ready.
    immediate: VecDeque<TaskId>,
    running: Vec<TaskId>,
    unfinished: usize,
    /// The chunks present for local tasks, by read slot ([`Dag::reading_on`]).
    store: ChunkStore,
    results: Vec<(ChunkId, Payload)>,
    sends: VecDeque<(Rank, Message)>,
    collectives: VecDeque<CollectiveJoin>,
    /// Collectives joined (handed to the driver) and not yet completed, in join order.
    joined: Vec<u64>,
    /// The highest collective id joined so far, so an id is never used twice.
    last_joined: Option<u64>,
    delivered: Vec<(ChunkId, Rank, Payload)>,
    /// Scratch list of a produced chunk's remote readers, reused for every chunk.
    readers: Vec<Rank>,
    /// The window the strategy declared, if it uses one-sided access.
    window: Option<WindowSpec>,
    /// One-sided operations the strategy issued, not yet handed to the driver.
    one_sided: VecDeque<OneSided>,
    next_one_sided: u64,
    /// Handed to the driver and not complete yet, by id.
    in_flight: HashMap<u64, Issued>,
    /// Timers the strategy armed.
    timers: Timers,
    /// Scratch list of due timers, reused by every [`Engine::handle_timeout`].
    due: Vec<(u64, u64)>,
    /// With a stall timeout: how long the rank may go without input, and when it last had one.
    stall: Option<Stall>,
    trace: Trace,
    error: Option<EngineError>,
    /// What the strategy and the collective tasks need from the driver.
    needs: Vec<Capability>,
    /// Each local task's collective group, by [`Dag::local_index`] ([`NO_GROUP`]: none).
    group_of: Vec<u32>,
    /// This rank's collective tasks in group order, with whether each is ready and when it was joined.
    groups: Vec<GroupTask>,
    /// The next group to join (groups are joined in order).
    next_group: usize,
    /// The latest time an input brought.
    now: u64,
    /// This rank's memory: [`Memory::host`] unless the driver gave it a device.
    memory: Memory,
    /// With a device: the spaces holding each chunk produced or received here that some
    /// device memory holds (a chunk not listed is in host memory only).
    resident: HashMap<ChunkId, Resident>,
    /// Data messages that arrived and where their bytes landed, until the strategy
    /// delivers their chunk (with a device only).
    landed: HashMap<ChunkId, (Space, &'static str)>,
    /// Copies to hand the driver.
    copies: VecDeque<DeviceCopy>,
    /// Copies handed out and not done, by id.
    copying: HashMap<u64, Copying>,
    /// Chunks copied to the device as their collective piece landed
    /// ([`Engine::handle_landed`]) and not delivered yet: the copy's id while it runs,
    /// `None` once it ended.
    early: HashMap<ChunkId, Option<u64>>,
    /// With a device: the chunks its tasks hold in its memory.
    device_memory: DeviceMemory,
    next_copy: u64,
    /// Communication waiting for chunks to reach host memory, in the order asked.
    held: Vec<HeldAction>,
    /// Held communication whose chunks are in host memory now, in release order.
    released: VecDeque<Action>,
}

/// Which of a rank's spaces hold a chunk, and whether a copy to host memory is under way.
#[derive(Clone, Copy, Debug, Default)]
struct Resident {
    host: bool,
    to_host: bool,
}

/// What a copy under way is for.
enum Copying {
    /// Staging a chunk in host memory for the network.
    ToHost(ChunkId),
    /// Bringing a chunk that arrived in host memory to the device, for its readers; the
    /// chunk's bytes once it is delivered (a copy started as its collective piece landed,
    /// [`Engine::handle_landed`], may end before the collective completes).
    ToDevice(ChunkId, Option<Payload>),
}

/// A message, collective join or one-sided operation waiting for `waits` to reach host
/// memory; `ordered` ones (all but messages) also wait for every earlier ordered one, so
/// operations reach the driver before the fence after them.
struct HeldAction {
    waits: Vec<ChunkId>,
    ordered: bool,
    action: Action,
}

/// One of this rank's collective tasks.
struct GroupTask {
    task: TaskId,
    ready: bool,
    joined_ns: u64,
}

/// The stall watch: the rank fails when it takes no input for `after_ns` while work remains.
#[derive(Clone, Copy, Debug)]
struct Stall {
    after_ns: u64,
    last_input_ns: u64,
}

/// A one-sided operation handed to the driver, remembered for its completion.
struct Issued {
    target: Rank,
    chunk: ChunkId,
    kind: IssuedKind,
    bytes: u64,
    issued_ns: u64,
}

/// What an issued one-sided operation is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IssuedKind {
    Put,
    /// A get from a window: it returns `bytes` bytes.
    Get,
    /// A registration: it completes through [`Engine::handle_exposed`].
    Expose,
    /// A read of exposed memory: it returns `bytes` bytes.
    Read,
}

impl Engine {
    /// An engine for `rank` running at most `workers` tasks at once.
    pub fn new(rank: Rank, dag: Arc<Dag>, mut strategy: Box<dyn Strategy>, workers: usize) -> Self {
        let window = strategy.window(&dag, rank);
        let local = dag.tasks_of(rank);
        let missing = local.iter().map(|&t| dag.inputs(t).len() as u32).collect();
        let mut scratch = Vec::new();
        let reads_twice = (0..local.len() as u32)
            .filter(|&i| {
                let inputs = dag.inputs(local[i as usize]);
                if inputs.len() < 2 {
                    return false;
                }
                scratch.clear();
                scratch.extend_from_slice(inputs);
                scratch.sort_unstable();
                scratch.windows(2).any(|w| w[0] == w[1])
            })
            .collect();
        let mut needs = strategy.needs().to_vec();
        let (mut group_of, mut groups) = (Vec::new(), Vec::new());
        if !dag.collective_tasks().is_empty() {
            group_of = vec![NO_GROUP; local.len()];
            for (t, kind) in dag.collective_tasks().iter().filter(|(t, _)| dag.task(*t).owner == rank) {
                group_of[dag.local_index(*t)] = groups.len() as u32;
                groups.push(GroupTask { task: *t, ready: false, joined_ns: 0 });
                if !needs.contains(&kind.capability()) {
                    needs.push(kind.capability());
                }
            }
        }
        let store = ChunkStore::new(dag.read_slots(rank));
        Engine {
            rank,
            unfinished: local.len(),
            dag,
            strategy,
            workers: workers.max(1) as u32,
            busy: 0,
            missing,
            reads_twice,
            ready: BinaryHeap::new(),
            immediate: VecDeque::new(),
            running: Vec::new(),
            store,
            results: Vec::new(),
            sends: VecDeque::new(),
            collectives: VecDeque::new(),
            joined: Vec::new(),
            last_joined: None,
            delivered: Vec::new(),
            readers: Vec::new(),
            window,
            one_sided: VecDeque::new(),
            next_one_sided: 0,
            in_flight: HashMap::default(),
            timers: Timers::default(),
            due: Vec::new(),
            stall: None,
            trace: Trace::default(),
            error: None,
            needs,
            group_of,
            groups,
            next_group: 0,
            now: 0,
            memory: Memory::host(),
            resident: HashMap::default(),
            landed: HashMap::default(),
            copies: VecDeque::new(),
            copying: HashMap::default(),
            early: HashMap::default(),
            device_memory: DeviceMemory::default(),
            next_copy: 0,
            held: Vec::new(),
            released: VecDeque::new(),
        }
    }

    /// Gives the engine its rank's memory (before [`Engine::handle_start`]); without
    /// this call it has no device (see [`crate::space`]).
    pub fn set_memory(&mut self, memory: Memory) {
        self.memory = memory;
    }

    /// This rank's memory: a driver with devices moves data along its
    /// [`Memory::path`] (a peer copy or the network), the path the engine staged it for.
    pub fn memory(&self) -> &Memory {
        &self.memory
    }

    /// The one-sided window this rank exposes, if the strategy uses one (declared when
    /// the engine was built): drivers allocate every rank's window before the run.
    pub fn window(&self) -> Option<WindowSpec> {
        self.window
    }

    /// This engine's rank.
    pub fn rank(&self) -> Rank {
        self.rank
    }

    /// Ranks in the run (the DAG's).
    pub fn ranks(&self) -> usize {
        self.dag.ranks()
    }

    /// The strategy's name.
    pub fn strategy_name(&self) -> &'static str {
        self.strategy.name()
    }

    /// The strategy's name of message operation `op` (for diagnostics).
    pub fn op_name(&self, op: u8) -> &'static str {
        self.strategy.op_name(op)
    }

    /// What the run needs from the driver: the strategy's [`Strategy::needs`], plus the
    /// capability of each kind of collective task in the DAG.
    pub fn needs(&self) -> &[Capability] {
        &self.needs
    }

    /// Starts the run: tasks without inputs become ready, and the strategy is told.
    pub fn handle_start(&mut self, now: u64) {
        self.touch(now);
        let dag = &*self.dag;
        let roots = dag.tasks_of(self.rank).iter().zip(&self.missing).filter(|(_, n)| **n == 0);
        for (&t, _) in roots {
            make_ready(&self.group_of, &mut self.groups, &mut self.ready, &mut self.immediate, dag, t);
        }
        self.strategy.on_start(&mut strategy_ctx!(self, now));
        self.run_immediate(now);
    }

    /// The next action, or `None` when there is nothing to do until an input arrives.
    /// Communication goes first (it is cheap and others wait on it): one-sided
    /// operations, then messages, then collectives, each in the order the strategy asked
    /// (so operations issued before a fence reach the driver before it); then tasks, as
    /// long as a worker is free.
    pub fn poll_action(&mut self, now: u64) -> Option<Action> {
        self.poll_communication(now).or_else(|| self.next_task().map(Action::Run))
    }

    /// Whether [`poll_communication`](Self::poll_communication) has something to hand
    /// out (cheap: drivers ask before reading the clock for it).
    pub fn has_communication(&self) -> bool {
        self.error.is_none()
            && !(self.one_sided.is_empty()
                && self.sends.is_empty()
                && self.collectives.is_empty()
                && self.copies.is_empty()
                && self.released.is_empty()
                && !self.groups.get(self.next_group).is_some_and(|g| g.ready))
    }

    /// The next communication action (one-sided operation, message or collective, in
    /// that order), never a task. [`poll_action`](Self::poll_action) is this, then
    /// [`next_task`](Self::next_task); a driver that runs kernels on its own thread calls
    /// them apart, to send what a kernel's outputs caused before it runs the next one.
    ///
    /// ```
    /// use dagwire_runtime::engine::Engine;
    /// use dagwire_runtime::{DagBuilder, KernelId, Rank, TaskSpec};
    /// use std::sync::Arc;
    /// # struct NoStrategy;
    /// # impl dagwire_runtime::Strategy for NoStrategy {
    /// #     fn name(&self) -> &'static str { "none" }
    /// #     fn op_name(&self, _: u8) -> &'static str { "none" }
    /// #     fn on_chunk_ready(&mut self, _: &mut dagwire_runtime::StrategyCtx<'_>, _: dagwire_runtime::ChunkId,
    /// #         _: &dagwire_runtime::Payload, _: &[Rank]) {}
    /// #     fn on_message(&mut self, _: &mut dagwire_runtime::StrategyCtx<'_>, _: Rank,
    /// #         _: dagwire_runtime::Message) -> Result<(), String> { Ok(()) }
    /// # }
    /// let mut b = DagBuilder::new(1);
    /// b.add(TaskSpec::new(KernelId(0), Rank(0)).outputs(&[8]));
    /// let mut engine = Engine::new(Rank(0), Arc::new(b.finish()), Box::new(NoStrategy), 1);
    /// engine.handle_start(0);
    /// assert!(!engine.has_communication());
    /// assert!(engine.poll_communication(0).is_none()); // a task is ready, no communication
    /// assert!(engine.next_task().is_some());
    /// assert!(engine.next_task().is_none()); // the one worker is busy
    /// ```
    pub fn poll_communication(&mut self, now: u64) -> Option<Action> {
        loop {
            if self.error.is_some() {
                return None;
            }
            if let Some(copy) = self.copies.pop_front() {
                return Some(Action::Copy(copy));
            }
            if let Some(action) = self.released.pop_front() {
                return Some(action);
            }
            let action = self.next_communication(now)?;
            if let Some(action) = self.hold_for_host(action) {
                return Some(action);
            }
        }
    }

    /// The next communication the strategy or a collective task asks for, checked.
    fn next_communication(&mut self, now: u64) -> Option<Action> {
        if let Some(op) = self.one_sided.pop_front() {
            return self.issue(now, op);
        }
        if let Some((to, mut msg)) = self.sends.pop_front() {
            msg.sent_ns = now;
            return Some(Action::Send(Outgoing { to, msg }));
        }
        if let Some(mut join) = self.collectives.pop_front() {
            // Ids only grow (a strategy joins in order), so "already used" is one comparison.
            if self.last_joined.is_some_and(|last| join.id <= last) {
                let (strategy, rank, id) = (self.strategy.name(), self.rank, join.id);
                self.error = Some(EngineError::CollectiveTwice { strategy, rank, id });
                return None;
            }
            if let Err(reason) = join.check(self.rank, self.dag.ranks()) {
                self.error = Some(EngineError::Protocol { strategy: self.strategy.name(), rank: self.rank, reason });
                return None;
            }
            self.last_joined = Some(join.id);
            self.joined.push(join.id);
            join.sends.iter_mut().flat_map(|(_, m)| m.iter_mut()).for_each(|m| m.sent_ns = now);
            return Some(Action::Collective(join));
        }
        if self.groups.get(self.next_group).is_some_and(|g| g.ready) {
            return self.join_group(now);
        }
        None
    }

    /// Joins the next group's collective with its task's input.
    fn join_group(&mut self, now: u64) -> Option<Action> {
        let g = self.next_group;
        self.next_group += 1;
        let group = &mut self.groups[g];
        group.joined_ns = now;
        let task = group.task;
        let kind = self.dag.collective_of(task).expect("a collective task").clone();
        let input = self.store.read(self.dag.input_slots(task)[0]);
        let output = self.dag.task(task).outputs().next().expect("one output");
        let mut msg = Message::data(0, output, input);
        msg.sent_ns = now;
        let join = CollectiveJoin { id: TASK_COLLECTIVE | g as u64, kind, sends: vec![(self.rank, vec![msg])] };
        if let Err(reason) = join.check(self.rank, self.dag.ranks()) {
            self.error = Some(EngineError::Protocol { strategy: self.strategy.name(), rank: self.rank, reason });
            return None;
        }
        self.joined.push(join.id);
        Some(Action::Collective(join))
    }

    /// A collective task's collective completed with `result`: the task is done.
    fn group_done(&mut self, now: u64, g: usize, result: Option<Payload>) {
        let task = self.groups[g].task;
        let output = self.dag.task(task).outputs().next().expect("one output");
        let expected = self.dag.chunk(output).bytes;
        let Some(result) = result.filter(|p| p.len() as u64 == expected) else {
            let reason = format!("collective task {task} (group {g}) completed without its {expected}-byte result");
            self.error = Some(EngineError::Protocol { strategy: self.strategy.name(), rank: self.rank, reason });
            return;
        };
        self.unfinished -= 1;
        let t = self.dag.task(task);
        self.trace.tasks.push(TaskRecord {
            task,
            kernel: t.kernel,
            rank: self.rank,
            worker: self.workers,
            start_ns: self.groups[g].joined_ns,
            end_ns: now,
            flops: t.flops,
        });
        let space = self.output_space(task);
        self.produced(now, output, space, result);
        self.strategy.on_task_done(&mut strategy_ctx!(self, now), task);
    }

    /// The next ready task, if a worker is free (the highest priority, then the lowest
    /// id), with its inputs.
    pub fn next_task(&mut self) -> Option<RunTask> {
        if self.error.is_some() || self.busy >= self.workers {
            return None;
        }
        let task = self.ready.pop()?.id.0;
        self.busy += 1;
        self.running.push(task);
        let store = &mut self.store;
        let inputs = self.dag.input_slots(task).iter().map(|&s| store.read(s)).collect();
        Some(RunTask { task, inputs })
    }

    /// A task this rank ran has finished.
    pub fn handle_task_done(&mut self, now: u64, done: TaskDone) {
        if self.error.is_some() {
            return;
        }
        self.touch(now);
        let Some(pos) = self.running.iter().position(|&t| t == done.task) else {
            self.error = Some(EngineError::NotRunning { rank: self.rank, task: done.task });
            return;
        };
        self.running.swap_remove(pos);
        self.busy -= 1;
        self.complete(now, done);
        self.run_immediate(now);
    }

    /// A local task finished (run by a worker, or by the engine itself): checks and
    /// records its outputs and hands them on.
    fn complete(&mut self, now: u64, done: TaskDone) {
        self.unfinished -= 1;
        // The DAG is read through `self.dag` field by field, not through a clone of the
        // Arc: a clone is two atomic operations per task on a counter every rank shares.
        let (dag, task) = (&*self.dag, self.dag.task(done.task));
        // A run-time-sized output may be anything up to its bound.
        let bounded = task.sized_at_run_time();
        let fits = |bound: u64, got: u64| if bounded { got <= bound } else { got == bound };
        let sizes_match = task.outputs().len() == done.outputs.len()
            && task.outputs().zip(&done.outputs).all(|(c, p)| fits(dag.chunk(c).bytes, p.len() as u64));
        if !sizes_match {
            let expected = task.outputs().map(|c| dag.chunk(c).bytes).collect();
            let got = done.outputs.iter().map(|p| p.len() as u64).collect();
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
        if bounded {
            for (chunk, p) in task.outputs().zip(&done.outputs) {
                let (bytes, bound) = (p.len() as u64, dag.chunk(chunk).bytes);
                self.trace.sizes.push(ChunkSize { chunk, rank: self.rank, bytes, bound });
            }
        }
        let space = self.output_space(done.task);
        for (chunk, payload) in self.dag.output_range(done.task).map(ChunkId).zip(done.outputs) {
            self.produced(now, chunk, space, payload);
        }
        if self.on_device(done.task) {
            for &chunk in self.dag.inputs(done.task) {
                self.device_memory.release(chunk);
            }
        }
        self.strategy.on_task_done(&mut strategy_ctx!(self, now), done.task);
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
        self.touch(now);
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
        if self.memory.has_device() && msg.payload.is_some() {
            self.landed.insert(msg.chunk, (self.memory.lands(from), "message"));
        }
        let result = self.strategy.on_message(&mut strategy_ctx!(self, now), from, msg);
        self.after_input(result);
    }

    /// Collective `id`, which this rank joined, completed here: `received` is what it
    /// got ([`CollectiveJoin`] says what, per kind), in any order; the strategy sees it
    /// in rank order. Each contribution from another rank is recorded as one message of
    /// its [`wire_bytes`], named after its first message: data if it carries chunk
    /// bytes, else control; one with no message at all is a header of kind `empty`
    /// about [`NO_CHUNK`]. A contribution from this rank itself (a reduction's result,
    /// its own all-gather block) moved nothing and is not recorded.
    pub fn handle_collective_done(&mut self, now: u64, id: u64, mut received: Vec<Contribution>) {
        if self.error.is_some() {
            return;
        }
        self.touch(now);
        let Some(at) = self.joined.iter().position(|&j| j == id) else {
            self.error = Some(EngineError::UnknownCollective { rank: self.rank, id, pending: self.joined.clone() });
            return;
        };
        self.joined.remove(at);
        if id & TASK_COLLECTIVE != 0 {
            let mine = received.into_iter().find(|c| c.from == self.rank);
            let result = mine.and_then(|c| c.messages.into_iter().next()).and_then(|m| m.payload);
            self.group_done(now, (id & !TASK_COLLECTIVE) as usize, result);
            self.after_input(Ok(()));
            return;
        }
        received.sort_by_key(|c| c.from);
        if self.memory.has_device() {
            for c in received.iter().filter(|c| c.from != self.rank) {
                let space = self.memory.lands(c.from);
                for m in c.messages.iter().filter(|m| m.payload.is_some()) {
                    self.landed.insert(m.chunk, (space, "collective"));
                }
            }
        }
        for c in received.iter().filter(|c| c.from != self.rank) {
            let first = c.messages.first();
            let data = c.messages.iter().any(|m| m.payload.is_some());
            self.trace.messages.push(MessageRecord {
                src: c.from,
                dst: self.rank,
                kind: first.map_or("empty", |m| self.strategy.op_name(m.op)),
                class: if data { MessageClass::Data } else { MessageClass::Control },
                bytes: wire_bytes(&c.messages),
                chunk: first.map_or(NO_CHUNK, |m| m.chunk),
                sent_ns: c.sent_ns,
                recv_ns: c.recv_ns,
            });
        }
        let result = self.strategy.on_collective_done(&mut strategy_ctx!(self, now), id, received);
        self.after_input(result);
    }

    /// One-sided operation `id`, which this rank issued, completed here: `data` holds a
    /// get's bytes (`None` for a put). A remote operation is recorded as one data
    /// message (`rma-put` from here to the target, `rma-get` from the target to here)
    /// from its issue to now; an operation on this rank's own window is a local copy and
    /// is not.
    pub fn handle_one_sided_done(&mut self, now: u64, id: u64, data: Option<Payload>) {
        if self.error.is_some() {
            return;
        }
        self.touch(now);
        let Some(op) = self.in_flight.remove(&id) else {
            let why = "was reported complete, but it is not in flight here".to_string();
            self.error = Some(EngineError::OneSided { rank: self.rank, id, why });
            return;
        };
        if op.kind == IssuedKind::Expose {
            let why = "is a registration, but was reported as a put or get (drivers answer handle_exposed)".into();
            self.error = Some(EngineError::OneSided { rank: self.rank, id, why });
            return;
        }
        let returns = matches!(op.kind, IssuedKind::Get | IssuedKind::Read);
        let (got, want) = (data.as_ref().map(|d| d.len() as u64), returns.then_some(op.bytes));
        if got != want {
            let why = format!("should return {want:?} bytes, the driver returned {got:?}");
            self.error = Some(EngineError::OneSided { rank: self.rank, id, why });
            return;
        }
        if self.memory.has_device() && returns {
            let carries = if op.kind == IssuedKind::Get { "get" } else { "read" };
            // Bytes read from this rank's own window are where the chunk's producer put them.
            let from = if op.target == self.rank { self.dag.chunk_owner(op.chunk) } else { op.target };
            self.landed.insert(op.chunk, (self.memory.lands(from), carries));
        }
        if op.target != self.rank {
            let (src, dst, kind) = match op.kind {
                IssuedKind::Get => (op.target, self.rank, "rma-get"),
                IssuedKind::Read => (op.target, self.rank, "rdma-read"),
                _ => (self.rank, op.target, "rma-put"),
            };
            self.trace.messages.push(MessageRecord {
                src,
                dst,
                kind,
                class: MessageClass::Data,
                bytes: op.bytes,
                chunk: op.chunk,
                sent_ns: op.issued_ns,
                recv_ns: now,
            });
        }
        let result = self.strategy.on_one_sided_done(&mut strategy_ctx!(self, now), id, data);
        self.after_input(result);
    }

    /// Registration `id` ([`crate::one_sided::Access::Expose`]), which this rank issued,
    /// completed: its bytes can be read remotely with `key`. Recorded as a
    /// [`crate::trace::REGISTRATION`] record from its issue to now.
    pub fn handle_exposed(&mut self, now: u64, id: u64, key: MemoryKey) {
        if self.error.is_some() {
            return;
        }
        self.touch(now);
        let op = match self.in_flight.remove(&id) {
            Some(op) if op.kind == IssuedKind::Expose => op,
            Some(_) | None => {
                let why = "was reported registered, but no registration of that id is in flight here".to_string();
                self.error = Some(EngineError::OneSided { rank: self.rank, id, why });
                return;
            }
        };
        self.trace.messages.push(MessageRecord {
            src: self.rank,
            dst: self.rank,
            kind: crate::trace::REGISTRATION,
            class: MessageClass::Control,
            bytes: op.bytes,
            chunk: op.chunk,
            sent_ns: op.issued_ns,
            recv_ns: now,
        });
        let result = self.strategy.on_exposed(&mut strategy_ctx!(self, now), id, key);
        self.after_input(result);
    }

    /// Copy `id` ([`Action::Copy`]), which this rank asked for, is done: a chunk staged
    /// in host memory lets what waited for it go to the driver; a chunk brought to the
    /// device reaches its readers.
    pub fn handle_copy_done(&mut self, now: u64, id: u64) {
        if self.error.is_some() {
            return;
        }
        self.touch(now);
        match self.copying.remove(&id) {
            None => self.error = Some(EngineError::UnknownCopy { rank: self.rank, id }),
            Some(Copying::ToHost(chunk)) => {
                let r = self.resident.get_mut(&chunk).expect("a chunk staged from the device");
                (r.host, r.to_host) = (true, false);
                self.release(chunk);
            }
            Some(Copying::ToDevice(chunk, Some(data))) => {
                self.arrived(chunk, data);
                self.run_immediate(now);
            }
            Some(Copying::ToDevice(chunk, None)) => {
                self.early.insert(chunk, None);
            }
        }
    }

    /// Bytes of `chunk` (`bytes`) from `from` have landed here as part of a collective
    /// still under way (a driver with devices calls this per [`Piece::data`] entry as a
    /// piece arrives): if they landed in host memory and a device task here reads the
    /// chunk, its copy to device memory starts now rather than when the collective
    /// completes and the strategy delivers it. Without a device it does nothing.
    ///
    /// [`Piece::data`]: crate::collectives::Piece::data
    pub fn handle_landed(&mut self, now: u64, from: Rank, chunk: ChunkId, bytes: u64) {
        if self.error.is_some() || !self.memory.has_device() || bytes == 0 || self.memory.lands(from).is_device() {
            return;
        }
        let (slot, consumers) = self.dag.reading_on(chunk, self.rank);
        let unread = slot.is_some_and(|s| !self.store.contains(s));
        if !unread
            || self.early.contains_key(&chunk)
            || self.resident.contains_key(&chunk)
            || !consumers.iter().any(|r| self.on_device(r.task))
        {
            return;
        }
        self.touch(now);
        let id = self.next_copy;
        self.next_copy += 1;
        let to = self.memory.compute();
        self.copies.push_back(DeviceCopy {
            id,
            chunk,
            bytes,
            from: Space::Host,
            to,
            peer: from,
            carries: "collective",
        });
        self.copying.insert(id, Copying::ToDevice(chunk, None));
        self.early.insert(chunk, Some(id));
        self.hold_on_device(chunk, bytes);
    }

    /// One-sided operation `id` failed in the driver (for example it reached past the end
    /// of its target's window); the run is over for this rank.
    pub fn handle_one_sided_failed(&mut self, id: u64, why: String) {
        self.error.get_or_insert(EngineError::OneSided { rank: self.rank, id, why });
    }

    /// Watches for stalls: once set, a rank that takes no input for `after_ns` while
    /// work remains fails with [`EngineError::Stalled`], saying what it waits for, at
    /// the first [`Engine::handle_timeout`] past that. Real drivers set it from the run's
    /// no-progress timeout; the simulator does not (virtual time has no hangs, only
    /// deadlocks, which it finds when its queue runs dry). `None` turns it off.
    pub fn set_stall_timeout(&mut self, after_ns: Option<u64>, now: u64) {
        self.stall = after_ns.map(|after_ns| Stall { after_ns, last_input_ns: now });
    }

    /// Whether the strategy has a timer armed (cheap: a driver that reads its clock
    /// sparingly asks this before it reads the clock for [`Engine::poll_timeout`]).
    pub fn has_timer(&self) -> bool {
        !self.timers.is_empty()
    }

    /// When the engine next needs [`Engine::handle_timeout`]: the earliest of the
    /// strategy's timers and the stall deadline (`None`: no deadline; never after an
    /// error or once done).
    pub fn poll_timeout(&self) -> Option<u64> {
        if self.error.is_some() {
            return None;
        }
        let stall = self.stall.filter(|_| !self.is_done()).map(|s| s.last_input_ns.saturating_add(s.after_ns));
        match (self.timers.next(), stall) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The time is `now`: fires every strategy timer due by then (earliest first), and
    /// fails the rank if it stalled. A call before any deadline does nothing.
    pub fn handle_timeout(&mut self, now: u64) {
        if self.error.is_some() {
            return;
        }
        let mut due = std::mem::take(&mut self.due);
        self.timers.take_due(now, &mut due);
        if !due.is_empty() {
            self.touch(now);
        }
        for (_, token) in due.drain(..) {
            let result = self.strategy.on_timer(&mut strategy_ctx!(self, now), token);
            self.after_input(result);
            if self.error.is_some() {
                break;
            }
        }
        self.due = due;
        if let Some(stall) = self.stall
            && self.error.is_none()
            && !self.is_done()
            && now >= stall.last_input_ns.saturating_add(stall.after_ns)
        {
            let (rank, idle_ns, waiting) = (self.rank, now - stall.last_input_ns, self.waiting_summary());
            self.error = Some(EngineError::Stalled { rank, idle_ns, waiting });
        }
    }

    /// An input came at `now`: the stall watch starts over.
    fn touch(&mut self, now: u64) {
        self.now = self.now.max(now);
        if let Some(stall) = self.stall.as_mut() {
            stall.last_input_ns = stall.last_input_ns.max(now);
        }
    }

    /// True when every local task ran, the strategy has nothing in flight and every
    /// collective this rank joined and one-sided operation it issued has completed.
    pub fn is_done(&self) -> bool {
        self.unfinished == 0
            && self.sends.is_empty()
            && self.collectives.is_empty()
            && self.joined.is_empty()
            && self.one_sided.is_empty()
            && self.in_flight.is_empty()
            && self.copies.is_empty()
            && self.copying.is_empty()
            && self.held.is_empty()
            && self.released.is_empty()
            && self.strategy.is_idle()
    }

    /// The sticky fatal error, if any.
    pub fn error(&self) -> Option<&EngineError> {
        self.error.as_ref()
    }

    /// Result chunks ([`Dag::results`]) produced on this rank.
    pub fn take_results(&mut self) -> Vec<(ChunkId, Payload)> {
        std::mem::take(&mut self.results)
    }

    /// The trace recorded so far.
    pub fn take_trace(&mut self) -> Trace {
        std::mem::take(&mut self.trace)
    }

    /// Moves the records so far into `sink`, keeping this engine's buffers: a driver
    /// that owns all ranks (the simulator) collects one trace as it goes instead of
    /// merging per-rank copies at the end.
    pub fn drain_trace_into(&mut self, sink: &mut Trace) {
        sink.append(&mut self.trace);
    }

    /// Swaps the tables of records this engine writes (tasks, messages, transfer
    /// phases) with `sink`'s ([`Trace::swap_records`]): a driver that owns all ranks
    /// lends the run's tables to the engine it calls, so records go straight into them,
    /// and takes them back with a second call. Drain the engine first
    /// ([`Engine::drain_trace_into`]) to keep the records in the order they were made.
    pub fn swap_records(&mut self, sink: &mut Trace) {
        self.trace.swap_records(sink);
    }

    /// Why this rank is not done: for stall diagnostics.
    pub fn waiting_summary(&self) -> String {
        let mut waiting: Vec<ChunkId> = Vec::new();
        for (&t, _) in self.dag.tasks_of(self.rank).iter().zip(&self.missing).filter(|(_, n)| **n > 0) {
            let slots = self.dag.input_slots(t);
            waiting.extend(
                self.dag.inputs(t).iter().zip(slots).filter(|(_, s)| !self.store.contains(**s)).map(|(c, _)| c),
            );
        }
        waiting.sort_unstable();
        waiting.dedup();
        let shown: Vec<String> =
            waiting.iter().take(5).map(|&c| format!("{c} from {}", self.dag.chunk_owner(c))).collect();
        let mut collectives =
            if self.joined.is_empty() { String::new() } else { format!(", in collectives {:?}", self.joined) };
        if !self.in_flight.is_empty() {
            let mut ids: Vec<u64> = self.in_flight.keys().copied().collect();
            ids.sort_unstable();
            collectives += &format!(", one-sided operations in flight {ids:?}");
        }
        if !self.copying.is_empty() || !self.held.is_empty() {
            let mut ids: Vec<u64> = self.copying.keys().copied().collect();
            ids.sort_unstable();
            collectives += &format!(", copies in flight {ids:?} ({} operations wait for them)", self.held.len());
        }
        if let Some(next) = self.timers.next() {
            collectives += &format!(", strategy timer due at {next} ns");
        }
        format!(
            "rank {}: {} tasks unfinished ({} running, {} ready), waiting for {} chunks [{}]{collectives}, strategy idle: {}",
            self.rank,
            self.unfinished,
            self.running.len(),
            self.ready.len(),
            waiting.len(),
            shown.join(", "),
            self.strategy.is_idle()
        )
    }

    /// `action` if it can go to the driver now; else holds it until the chunks it
    /// carries are in host memory (asking for their copies), or, for an ordered one,
    /// until the ordered ones before it went.
    fn hold_for_host(&mut self, mut action: Action) -> Option<Action> {
        if !self.memory.has_device() {
            return Some(action);
        }
        let mut waits = Vec::new();
        match &mut action {
            Action::Send(out) => {
                if let Some(p) = &out.msg.payload
                    && self.memory.path(out.to) == Path::Network
                {
                    self.stage(out.msg.chunk, p.len() as u64, out.to, "message", &mut waits);
                }
            }
            Action::Collective(join) if join.id & TASK_COLLECTIVE != 0 => {
                // A collective of every rank: its input leaves the node if a rank is elsewhere.
                let group = &self.groups[(join.id & !TASK_COLLECTIVE) as usize];
                let input = self.dag.inputs(group.task)[0];
                let bytes = wire_bytes(&join.sends[0].1);
                let away = (0..self.dag.ranks() as u32).map(Rank).find(|&r| self.memory.path(r) == Path::Network);
                if let Some(away) = away {
                    self.stage(input, bytes, away, "collective", &mut waits);
                }
            }
            Action::Collective(join) => {
                // The join goes at once: each piece waits in the driver's collective
                // layer for its own chunks' copies (`Collectives::stage`), so staging
                // pipelines with the exchange. Copies are asked nearest destination
                // first, the order the algorithms send in.
                let (me, n) = (self.rank.index(), self.dag.ranks());
                let mut order: Vec<usize> = (0..join.sends.len()).collect();
                order.sort_by_key(|&i| (join.sends[i].0.index() + n - me) % n);
                let mut staged = Vec::new();
                for (to, msgs) in order.into_iter().map(|i| &join.sends[i]) {
                    if self.memory.path(*to) == Path::Network {
                        for m in msgs {
                            if let Some(p) = &m.payload {
                                self.stage(m.chunk, p.len() as u64, *to, "collective", &mut staged);
                            }
                        }
                    }
                }
            }
            Action::OneSided(op) => {
                // A rank's own window and exposed memory are read from elsewhere later:
                // staged if a reader of the chunk is on another node.
                let data = match &op.access {
                    Access::Put(p) => Some((p.len() as u64, "put")),
                    Access::Expose(p) => Some((p.len() as u64, "read")),
                    _ => None,
                };
                let reader = if op.target == self.rank {
                    self.dag.consumer_owners(op.chunk).find(|&r| self.memory.path(r) == Path::Network)
                } else {
                    Some(op.target).filter(|&t| self.memory.path(t) == Path::Network)
                };
                if let (Some((bytes, carries)), Some(reader)) = (data, reader) {
                    self.stage(op.chunk, bytes, reader, carries, &mut waits);
                }
            }
            Action::Run(_) | Action::Copy(_) => {}
        }
        let ordered = !matches!(action, Action::Send(_));
        if waits.is_empty() && !(ordered && self.held.iter().any(|h| h.ordered)) {
            return Some(action);
        }
        self.held.push(HeldAction { waits, ordered, action });
        None
    }

    /// Notes that data of `chunk` (`bytes`) goes to the network for `peer`: if it is only
    /// in device memory and the network reads host memory, it waits for a copy to host
    /// memory (asked for once per chunk).
    fn stage(&mut self, chunk: ChunkId, bytes: u64, peer: Rank, carries: &'static str, waits: &mut Vec<ChunkId>) {
        if self.memory.network_space().is_device() || bytes == 0 {
            return;
        }
        let Some(r) = self.resident.get_mut(&chunk) else { return };
        if r.host {
            return;
        }
        if !waits.contains(&chunk) {
            waits.push(chunk);
        }
        if r.to_host {
            return;
        }
        r.to_host = true;
        let id = self.next_copy;
        self.next_copy += 1;
        let from = self.memory.compute();
        self.copies.push_back(DeviceCopy { id, chunk, bytes, from, to: Space::Host, peer, carries });
        self.copying.insert(id, Copying::ToHost(chunk));
    }

    /// `chunk` is in host memory now: what waited only for it goes (ordered ones in order).
    fn release(&mut self, chunk: ChunkId) {
        let mut ordered_waiting = false;
        let mut i = 0;
        while i < self.held.len() {
            let h = &mut self.held[i];
            h.waits.retain(|&c| c != chunk);
            if h.waits.is_empty() && !(h.ordered && ordered_waiting) {
                let h = self.held.remove(i);
                self.released.push_back(h.action);
                continue;
            }
            ordered_waiting |= h.ordered;
            i += 1;
        }
    }

    /// `chunk` is on this rank now, in `space` (from `from`, as `carries` says): it reaches
    /// its readers, after a copy to device memory if it is in host memory and a device
    /// task reads it.
    fn place(&mut self, chunk: ChunkId, space: Space, from: Rank, carries: &'static str, data: Payload) {
        if !self.memory.has_device() {
            return self.arrived(chunk, data);
        }
        if space.is_device() {
            // Only a chunk that may leave the rank needs its spaces remembered.
            let leaves = self.dag.consumer_owners(chunk).any(|r| r != self.rank)
                || self.dag.consumers_on(chunk, self.rank).any(|t| self.group_of_task(t).is_some());
            if leaves {
                self.resident.insert(chunk, Resident::default());
            }
            self.hold_on_device(chunk, data.len() as u64);
            return self.arrived(chunk, data);
        }
        if data.is_empty() || !self.dag.consumers_on(chunk, self.rank).any(|t| self.on_device(t)) {
            return self.arrived(chunk, data);
        }
        self.resident.insert(chunk, Resident { host: true, to_host: false });
        match self.early.remove(&chunk) {
            // Its copy started as its piece landed: it ended, or the bytes wait for it.
            Some(None) => return self.arrived(chunk, data),
            Some(Some(id)) => {
                self.copying.insert(id, Copying::ToDevice(chunk, Some(data)));
                return;
            }
            None => {}
        }
        let id = self.next_copy;
        self.next_copy += 1;
        let bytes = data.len() as u64;
        self.hold_on_device(chunk, bytes);
        let to = self.memory.compute();
        self.copies.push_back(DeviceCopy { id, chunk, bytes, from: Space::Host, to, peer: from, carries });
        self.copying.insert(id, Copying::ToDevice(chunk, Some(data)));
    }

    /// `chunk` (`bytes`) is in device memory now (or on its way): held there for its
    /// local device readers; fails the rank if the device's memory cannot hold it.
    fn hold_on_device(&mut self, chunk: ChunkId, bytes: u64) {
        let (dag, rank) = (&*self.dag, self.rank);
        let reads: usize = dag
            .consumers_on(chunk, rank)
            .filter(|&t| self.on_device(t))
            .map(|t| dag.inputs(t).iter().filter(|&&c| c == chunk).count())
            .sum();
        let need = self.device_memory.hold(chunk, bytes, reads as u32);
        if let Some(capacity) = self.memory.capacity().filter(|&c| need > c) {
            let device = self.memory.compute();
            self.error.get_or_insert(EngineError::DeviceMemory { rank, device, need, chunk, capacity });
        }
    }

    /// Whether local task `t` runs on the device: a kernel (a task placed at run time
    /// may become one), on a rank with a device; not a collective task.
    fn on_device(&self, t: TaskId) -> bool {
        self.memory.has_device()
            && self.group_of_task(t).is_none()
            && matches!(self.dag.task(t).role(), Role::Kernel | Role::Placed { .. })
    }

    /// Local task `t`'s collective group, if it is a collective task.
    fn group_of_task(&self, t: TaskId) -> Option<u32> {
        self.group_of.get(self.dag.local_index(t)).copied().filter(|&g| g != NO_GROUP)
    }

    /// Where local task `t` leaves its outputs: a device task in device memory, a
    /// collective task where the network writes, a task the engine runs in host memory.
    fn output_space(&self, t: TaskId) -> Space {
        if self.on_device(t) {
            self.memory.compute()
        } else if self.group_of_task(t).is_some() {
            self.memory.network_space()
        } else {
            Space::Host
        }
    }

    /// Hands one-sided operation `op` to the driver, once it is checked against the
    /// declared window.
    fn issue(&mut self, now: u64, op: OneSided) -> Option<Action> {
        let on_window = matches!(op.access, Access::Put(_) | Access::Get { .. });
        let mine = matches!(op.access, Access::Expose(_) | Access::Withdraw(_));
        let why = if on_window && self.window.is_none() {
            Some("was issued, but the strategy declared no window".to_string())
        } else if mine && op.target != self.rank {
            Some(format!("exposes or withdraws memory of {}, but only a rank's own memory can be", op.target))
        } else if op.target.index() >= self.dag.ranks() {
            Some(format!("targets {}, but the run has {} ranks", op.target, self.dag.ranks()))
        } else {
            None
        };
        if let Some(why) = why {
            self.error = Some(EngineError::OneSided { rank: self.rank, id: op.id, why });
            return None;
        }
        let kind = match op.access {
            Access::Put(_) => IssuedKind::Put,
            Access::Get { .. } => IssuedKind::Get,
            Access::Expose(_) => IssuedKind::Expose,
            Access::Read { .. } => IssuedKind::Read,
            // Withdrawn at once, with nothing to report.
            Access::Withdraw(_) => return Some(Action::OneSided(op)),
        };
        let issued = Issued { target: op.target, chunk: op.chunk, kind, bytes: op.bytes(), issued_ns: now };
        self.in_flight.insert(op.id, issued);
        Some(Action::OneSided(op))
    }

    /// After the strategy handled an input: a refusal becomes the sticky error, and
    /// chunks it delivered reach their readers.
    fn after_input(&mut self, result: Result<(), String>) {
        if let Err(reason) = result {
            self.error = Some(EngineError::Protocol { strategy: self.strategy.name(), rank: self.rank, reason });
            return;
        }
        // Drained through a taken list handed back afterwards, so its allocation is reused.
        let mut delivered = std::mem::take(&mut self.delivered);
        for (chunk, src, payload) in delivered.drain(..) {
            self.received(chunk, src, payload);
        }
        self.delivered = delivered;
        self.run_immediate(self.last_now());
    }

    /// The latest time an input told this engine (for tasks it runs itself after an input).
    fn last_now(&self) -> u64 {
        self.now
    }

    /// Runs the ready tasks the engine runs itself (decide, check, placed shadows),
    /// until none is left: each completes at `now`, and what it produces may make more
    /// ready. Nothing to do, at the cost of one check, for a DAG without run-time placement.
    fn run_immediate(&mut self, now: u64) {
        while self.error.is_none()
            && let Some(task) = self.immediate.pop_front()
        {
            let outputs = match self.dag.task(task).role() {
                Role::Kernel => unreachable!("kernel tasks go to the ready queue"),
                Role::Decide(d) => self.decide(task, d),
                Role::Check(_) => self.check(task),
                Role::Placed { decision, slot } => match self.shadow(task, decision, slot) {
                    Ok(Some(outputs)) => Ok(outputs),
                    Ok(None) => {
                        self.ready.push(Ready::of(&self.dag, task));
                        continue;
                    }
                    Err(reason) => Err(reason),
                },
            };
            match outputs {
                Ok(outputs) => {
                    let done = TaskDone { task, worker: 0, start_ns: now, end_ns: now, outputs };
                    self.complete(now, done);
                }
                Err(reason) => self.error = Some(EngineError::Placement { rank: self.rank, task, reason }),
            }
        }
    }

    /// The inputs of `task`, taken out of the store as a run would.
    fn take_inputs(&mut self, task: TaskId) -> Vec<Payload> {
        let store = &mut self.store;
        self.dag.input_slots(task).iter().map(|&s| store.read(s)).collect()
    }

    /// Runs decision `d`'s policy on the reports (the inputs of `task`).
    fn decide(&mut self, task: TaskId, d: crate::dag::DecisionId) -> Result<Vec<Payload>, String> {
        let reports = self.take_inputs(task);
        let dag = &*self.dag;
        let decision = dag.decision(d);
        let mut base = vec![0u64; dag.ranks()];
        let mut loads: Vec<std::iter::Skip<std::vec::IntoIter<u64>>> = Vec::with_capacity(reports.len());
        for (i, report) in reports.iter().enumerate() {
            let values = policies::read_report(report);
            let want = 1 + decision.slots.iter().filter(|s| s.0 as usize == i).count();
            if values.len() != want || report.len() % 8 != 0 {
                return Err(format!(
                    "report {i} (chunk {}) holds {} bytes, expected {} (a base load and one load per slot it carries)",
                    decision.reports[i],
                    report.len(),
                    8 * want
                ));
            }
            base[dag.chunk_owner(decision.reports[i]).index()] += values[0];
            loads.push(values.into_iter().skip(1));
        }
        let slots: Vec<SlotView<'_>> = decision
            .slots
            .iter()
            .map(|(report, candidates)| SlotView {
                report: *report,
                source: dag.chunk_owner(decision.reports[*report as usize]),
                candidates,
                load: loads[*report as usize].next().expect("counted above"),
            })
            .collect();
        let mut picked = Vec::with_capacity(slots.len());
        let policy = decision.policy.0;
        policy.decide(&DecisionInput { ranks: dag.ranks(), base: &base, slots: &slots }, self.rank, &mut picked);
        if picked.len() != slots.len() {
            return Err(format!("policy `{}` decided {} slots of {}", policy.name(), picked.len(), slots.len()));
        }
        if let Some((i, (r, s))) = picked.iter().zip(&slots).enumerate().find(|(_, (r, s))| !s.candidates.contains(r)) {
            return Err(format!(
                "policy `{}` put slot {i} on {r}, which is not one of its candidates {:?}",
                policy.name(),
                s.candidates
            ));
        }
        Ok(vec![policies::write_decision(&picked)])
    }

    /// Compares this rank's decision (input 0) with another rank's (input 1).
    fn check(&mut self, task: TaskId) -> Result<Vec<Payload>, String> {
        let inputs = self.take_inputs(task);
        let (mine, theirs) = (policies::read_decision(&inputs[0]), policies::read_decision(&inputs[1]));
        if mine == theirs {
            return Ok(Vec::new());
        }
        let dag = &*self.dag;
        let other = dag.chunk_owner(dag.inputs(task)[1]);
        let policy = match dag.task(dag.chunk(dag.inputs(task)[0]).producer).role() {
            Role::Decide(d) => dag.decision(d).policy.0.name(),
            _ => "?",
        };
        let (slot, (a, b)) = mine
            .iter()
            .zip(&theirs)
            .enumerate()
            .find(|(_, (a, b))| a != b)
            .map_or((mine.len().min(theirs.len()), (None, None)), |(i, (a, b))| (i, (Some(*a), Some(*b))));
        Err(format!(
            "the decision differs between ranks: policy `{policy}` put slot {slot} on {a:?} here ({}) and on {b:?} on \
             {other}; a policy must decide from the reports alone",
            self.rank
        ))
    }

    /// A shadow of a task placed at run time became ready: `None` if the decision picks
    /// this rank (it runs as a kernel), else its empty outputs, once checked that it
    /// received no data (a rank that sent some decided otherwise).
    fn shadow(&mut self, task: TaskId, decision: ChunkId, slot: u32) -> Result<Option<Vec<Payload>>, String> {
        let picked = {
            let held = self.dag.reading_on(decision, self.rank).0.expect("a placed task reads its decision");
            let stored = self.store.get(held).expect("a placed task's decision is present");
            let bytes = stored.as_bytes();
            let at = slot as usize * 4;
            bytes.get(at..at + 4).map(|b| Rank(u32::from_le_bytes(b.try_into().expect("4 bytes"))))
        };
        let Some(picked) = picked else { return Err(format!("the decision in {decision} has no slot {slot}")) };
        if picked == self.rank {
            return Ok(None);
        }
        let inputs = self.take_inputs(task);
        let dag = &*self.dag;
        for (&c, p) in dag.inputs(task).iter().zip(&inputs) {
            let from = dag.chunk_owner(c);
            if from != self.rank && dag.is_sized_at_run_time(c) && !p.is_empty() {
                return Err(format!(
                    "the decision differs between ranks: {from} sent {} bytes of chunk {c} for slot {slot} to this \
                     rank ({}), but this rank's decision puts the slot on {picked}",
                    p.len(),
                    self.rank
                ));
            }
        }
        Ok(Some(dag.task(task).outputs().map(|_| Payload::default()).collect()))
    }

    /// A local task produced `chunk` in `space`: hand it to remote readers and local ones.
    fn produced(&mut self, now: u64, chunk: ChunkId, space: Space, data: Payload) {
        let mut readers = std::mem::take(&mut self.readers);
        self.dag.remote_readers_into(chunk, &mut readers);
        if !readers.is_empty() {
            let mut ctx = strategy_ctx!(self, now);
            for &r in &readers {
                ctx.phase(chunk, self.rank, r, Phase::Posted);
            }
            self.strategy.on_chunk_ready(&mut ctx, chunk, &data, &readers);
        }
        self.readers = readers;
        if self.dag.is_result(chunk) {
            self.results.push((chunk, data.clone()));
        }
        self.place(chunk, space, self.rank, "output", data);
    }

    /// A chunk came in from `src`.
    fn received(&mut self, chunk: ChunkId, src: Rank, payload: Payload) {
        let why = match self.dag.reading_on(chunk, self.rank).0 {
            None => Some("does not read"),
            Some(slot) if self.store.contains(slot) => Some("already has"),
            Some(_) => None,
        };
        if let Some(why) = why {
            self.error = Some(EngineError::UnexpectedChunk { rank: self.rank, chunk, from: src, why });
            return;
        }
        // Where the bytes landed: as their message came, else where the network writes.
        // (Only a rank with a device records where bytes landed: no map to look in otherwise.)
        let landed = if self.memory.has_device() { self.landed.remove(&chunk) } else { None };
        let (space, carries) = match landed {
            Some(landed) => landed,
            None => (self.memory.network_space(), "message"),
        };
        self.place(chunk, space, src, carries, payload);
    }

    /// `chunk` is now present here: count its local readers and wake them.
    fn arrived(&mut self, chunk: ChunkId, data: Payload) {
        let (dag, rank, mut readers) = (&*self.dag, self.rank, 0);
        let (slot, consumers) = dag.reading_on(chunk, rank);
        for &Reader { task: t, local, .. } in consumers {
            // A task may read the same chunk twice; it waits for it (and reads it) each time.
            let uses = if self.reads_twice.binary_search(&local).is_ok() {
                dag.inputs(t).iter().filter(|&&c| c == chunk).count() as u32
            } else {
                1
            };
            readers += uses;
            let left = &mut self.missing[local as usize];
            *left -= uses;
            if *left == 0 {
                make_ready(&self.group_of, &mut self.groups, &mut self.ready, &mut self.immediate, dag, t);
            }
        }
        if let Some(slot) = slot.filter(|_| readers > 0) {
            self.store.insert(slot, data, readers);
        }
    }
}

/// Task `t` has all its inputs: a collective task waits for its group's turn, a kernel
/// for a worker, a decision's bookkeeping task runs at once.
fn make_ready(
    group_of: &[u32],
    groups: &mut [GroupTask],
    ready: &mut BinaryHeap<Ready>,
    immediate: &mut VecDeque<TaskId>,
    dag: &Dag,
    t: TaskId,
) {
    match (group_of.get(dag.local_index(t)), dag.task(t).role()) {
        (Some(&g), _) if g != NO_GROUP => groups[g as usize].ready = true,
        (_, Role::Kernel) => ready.push(Ready::of(dag, t)),
        _ => immediate.push_back(t),
    }
}
