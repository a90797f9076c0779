//! The `sim` driver: every rank's [`Engine`] in one process, in virtual time.
//!
//! Task durations come from the [`ComputeModel`]; message times from the
//! [`Network`]. Kernels run for real when asked (so results verify), otherwise
//! outputs are [`Payload::phantom`]s of the declared size, or what
//! [`Kernels::modelled_outputs`] returns (the real sizes of outputs sized at run time,
//! the reports run-time placement decides from). With modelled compute the
//! run is a pure function of its inputs: the same DAG, strategy, machine and seed give
//! the same trace, bit for bit.
//!
//! Collectives run the shared algorithms of [`dagwire_runtime::collectives`] (one
//! [`Collectives`] per rank): every piece they send is a message of its `bytes` through
//! the [`Network`], so they share links and NICs with everything else, and a chain
//! broadcast really moves in segments ([`Segmenting::Segments`]), so its pipelining
//! shows in time.
//!
//! A strategy's control message (no payload) also costs its receiver the machine's
//! `compute.control_message_ns` (see [`Network::send_control`]). Joining a collective
//! costs the rank's CPU `compute.collective_call_ns` ([`Network::collective_call`]);
//! each piece costs both ends' CPU per message and per payload byte it carries
//! (`compute.collective_message_ns`, `collective_ns_per_byte`: [`Network::send_piece`]).
//! A kernel starts once the rank's CPU is free of the message work that holds it
//! ([`Network::cpu_free`]: messages under LogGOPS, collective calls); with inline
//! progress a message held for a running kernel costs its CPU time when the kernel ends.
//!
//! One-sided operations cost what RDMA does: a put is its data to the target then an
//! acknowledgement header back (it completes at the origin when the acknowledgement
//! arrives); a get is a request header to the target then the data back. Windows hold
//! the payloads put into them, by (rank, offset); an operation on a rank's own window
//! is a local copy and completes at once. A rank's fence starts only once its own
//! operations have completed, so a fence costs the wait for them plus the barrier.
//!
//! Exposed memory ([`Access::Expose`], the `fabric` strategy's registrations): an
//! exposure completes after the machine's [`Registration`] cost for its bytes (the rank
//! goes on meanwhile; the cost delays only what waits for the key); a read is a request
//! header to the exposing rank then the data back, as a get; a withdrawal is free.

use crate::compute::ComputeModel;
use crate::device::{Accel, Devices, Span};
use crate::machine::{Machine, ProgressModel, Registration};
use crate::network::{MessageId, Network};
use crate::queue::{EventQueue, Time};
use dagwire_runtime::collective::check_capabilities;
use dagwire_runtime::collectives::{Body, Collectives, Piece, Segmenting};
use dagwire_runtime::drivers::{Observer, RunProgress};
use dagwire_runtime::engine::{Action, DeviceCopy, Engine, RunTask, TaskDone};
use dagwire_runtime::message::HEADER_BYTES;
use dagwire_runtime::one_sided::{Access, MemoryKey, OneSided};
use dagwire_runtime::space::{Path, Space};
use dagwire_runtime::trace::{CopyKind, CopyRecord, TraceLevel};
use dagwire_runtime::{
    Capability, ChunkId, CollectiveJoin, CollectiveKind, Dag, KernelId, Kernels, Message, Payload, Rank, RunError,
    RunOutcome, StrategyFactory, TaskId, Trace,
};
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the sim driver offers strategies.
pub const CAPABILITIES: &[Capability] = Capability::ALL;

/// Settings of a simulated run.
#[derive(Clone, Copy, Debug)]
pub struct SimConfig {
    /// Ranks simulated.
    pub ranks: usize,
    /// Concurrent tasks per rank (capped by the machine's cores per rank; on a machine
    /// with accelerators, the device's streams instead).
    pub workers: usize,
    /// Run the kernels for real (results can be verified) or only model their time.
    pub run_kernels: bool,
    /// Seed of everything random in the model (latency jitter).
    pub seed: u64,
    /// What the run's trace keeps: every record, or only counts (for runs whose
    /// records would not fit in memory).
    pub trace: TraceLevel,
}

/// What the kernels are and what they are called (rates are per kernel name).
pub struct SimKernels<'a> {
    /// The kernels, needed when [`SimConfig::run_kernels`] is set.
    pub kernels: &'a dyn Kernels,
    /// Names of kernels, for the compute model's rates.
    pub name: &'a dyn Fn(KernelId) -> &'static str,
}

/// A simulated run's outcome plus simulator statistics.
#[derive(Debug)]
pub struct SimOutcome {
    /// Trace, results, makespan (virtual).
    pub run: RunOutcome,
    /// Events processed (task completions and message deliveries).
    pub events: u64,
    /// Where the run's wall time went.
    pub timing: SimTiming,
}

/// The wall time of a simulated run's parts, so the event loop's speed is measured
/// apart from setting up and from gathering the trace.
#[derive(Clone, Copy, Debug, Default)]
pub struct SimTiming {
    /// Building the network, every rank's engine and strategy.
    pub setup: Duration,
    /// The event loop: from the first rank's start to the last event.
    pub event_loop: Duration,
    /// The CPU time the event loop's thread used meanwhile (where the system says:
    /// Linux), the loop's cost on a host shared with other work, where wall time also
    /// counts the time the thread waited for a core.
    pub event_loop_cpu: Option<Duration>,
    /// Checking every rank finished, gathering results and sorting the trace.
    pub finish: Duration,
}

/// Loop passes between two reports to a [`Watch::observer`] (each report reads the
/// clock once; the pass count is a counter check).
pub const PROGRESS_EVERY: u32 = 1 << 16;

/// What watches a simulated run from outside: a wall-time limit and an observer of its
/// progress. Neither changes the simulated result: the trace is the same with or
/// without them.
#[derive(Clone, Copy, Default)]
pub struct Watch<'a> {
    /// Stop the run with [`RunError::TimedOut`] once it has taken this much real time
    /// (the sweep's `timeout_s`), checked every few thousand events.
    pub wall_limit: Option<Duration>,
    /// Told the virtual time reached and the events handled every [`PROGRESS_EVERY`]
    /// passes of the event loop, and once more at its end with the run's totals.
    pub observer: Option<Observer<'a>>,
}

/// An event in the queue: a task finishing, or a rank's engine deadline
/// ([`Engine::poll_timeout`]: a strategy timer). Small on purpose; outputs wait in a side
/// table. Message deliveries live in the network's own timeline.
#[derive(Clone, Copy, Debug)]
enum Event {
    TaskFinished {
        rank: u32,
        task: TaskId,
        worker: u32,
    },
    Timeout {
        rank: u32,
    },
    /// Registration `id` of `rank` completes (its key waits in [`Sim::exposing`]).
    Exposed {
        rank: u32,
        id: u64,
    },
    /// Copy `id` that `rank`'s engine asked for ([`Action::Copy`]) ended.
    Copied {
        rank: u32,
        id: u64,
    },
    /// A peer copy, or a GPU-direct receive's hop from the NIC to the device, ended: the
    /// held message `slot` has arrived.
    Land {
        slot: u64,
    },
    /// A GPU-direct send's hop from the device to its NIC ended: the network takes the
    /// held data `slot` now.
    Inject {
        slot: u64,
    },
}

/// What the network is carrying, by message id.
enum InFlight {
    /// A point-to-point message.
    Message { src: Rank, dst: Rank, msg: Message },
    /// One step of a collective.
    Piece(Piece),
    /// A put's data, on its way to the target window.
    Put { origin: Rank, id: u64, target: Rank, offset: u64, data: Payload },
    /// A put's acknowledgement, on its way back to the origin.
    PutAck { origin: Rank, id: u64 },
    /// A get's request, on its way to the target.
    GetRequest { origin: Rank, id: u64, target: Rank, offset: u64, len: u64 },
    /// A get's data, on its way back to the origin.
    GetData { origin: Rank, id: u64, data: Payload },
    /// A read of exposed memory, on its way to the exposing rank.
    ReadRequest { origin: Rank, id: u64, target: Rank, key: u64, offset: u64, len: u64 },
}

impl InFlight {
    /// Whether it carries chunk data (which lives in device memory when the machine has
    /// accelerators), rather than protocol control from the host.
    fn is_data(&self) -> bool {
        match self {
            InFlight::Message { msg, .. } => msg.payload.is_some(),
            InFlight::Piece(piece) => !matches!(piece.body, Body::Header),
            InFlight::Put { .. } | InFlight::GetData { .. } => true,
            InFlight::PutAck { .. } | InFlight::GetRequest { .. } | InFlight::ReadRequest { .. } => false,
        }
    }

    /// What a peer copy of it carries, for its [`CopyRecord`]: the chunk when it is one
    /// whole chunk (a point-to-point message), and the kind of operation.
    fn served(&self) -> (Option<ChunkId>, &'static str) {
        match self {
            InFlight::Message { msg, .. } => (Some(msg.chunk), "message"),
            InFlight::Piece(_) => (None, "collective"),
            InFlight::Put { .. } | InFlight::PutAck { .. } => (None, "put"),
            InFlight::GetRequest { .. } | InFlight::GetData { .. } | InFlight::ReadRequest { .. } => (None, "get"),
        }
    }

    /// Whether it is a strategy's control message (no payload: ready-to-send,
    /// clear-to-send, requests, acknowledgements), whose receiver pays the machine's
    /// control-message cost. Collective pieces and one-sided legs are not: the cost is
    /// the engine's handling of a strategy message, which they do not go through.
    fn is_control_message(&self) -> bool {
        matches!(self, InFlight::Message { msg, .. } if msg.payload.is_none())
    }
}

/// The trace record of `copy`, made by `rank`'s device for a transfer from `src` to
/// `dst` of `chunk` (when one whole chunk), serving `carries`.
fn copy_record(
    rank: Rank,
    kind: CopyKind,
    copy: Span,
    bytes: u64,
    (src, dst): (Rank, Rank),
    (chunk, carries): (Option<ChunkId>, &'static str),
) -> CopyRecord {
    CopyRecord {
        rank,
        engine: copy.engine,
        stream: copy.stream,
        kind,
        bytes,
        start_ns: copy.start,
        end_ns: copy.end,
        src,
        dst,
        chunk,
        carries,
    }
}

/// A running task's results and timing, until its completion event fires.
struct Pending {
    /// The task (a completion event of another task on this worker is stale).
    task: TaskId,
    outputs: Vec<Payload>,
    /// The timeline lane it ran on: its worker, or its device stream.
    lane: u32,
    start: Time,
    /// When it ends: a completion event at another time is stale (a kernel sharing its
    /// device with one started later ends later, [`Devices::moved`]).
    end: Time,
}

/// What the network carries, by message id: ids count up from 0 in send order and most
/// messages are delivered roughly in that order, so the table is a window of slots from
/// the oldest undelivered id on (an index, not a hash: a million messages in flight
/// would otherwise be a million random accesses into a hash table). Its memory is the
/// span of ids between the oldest message still in flight and the newest.
#[derive(Default)]
struct InFlightTable {
    /// Id of `slots[0]`.
    base: MessageId,
    slots: std::collections::VecDeque<Option<InFlight>>,
    live: usize,
}

impl InFlightTable {
    /// Records message `id`, the next id the network handed out.
    fn insert(&mut self, id: MessageId, what: InFlight) {
        debug_assert_eq!(id, self.base + self.slots.len() as u64, "the network numbers messages in send order");
        self.slots.push_back(Some(what));
        self.live += 1;
    }

    /// Takes message `id` out.
    fn remove(&mut self, id: MessageId) -> Option<InFlight> {
        let what = self.slots.get_mut(id.checked_sub(self.base)? as usize)?.take()?;
        self.live -= 1;
        while let Some(None) = self.slots.front() {
            self.slots.pop_front();
            self.base += 1;
        }
        Some(what)
    }

    fn is_empty(&self) -> bool {
        self.live == 0
    }
}

/// The CPU time the calling thread has used so far (POSIX `CLOCK_THREAD_CPUTIME_ID`);
/// `None` where the system has no such clock.
pub fn thread_cpu_time() -> Option<Duration> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec for the call's duration; the call reads
    // nothing else and keeps no pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

/// The whole simulated machine.
struct Sim<'a> {
    dag: &'a Arc<Dag>,
    kernels: &'a SimKernels<'a>,
    cfg: SimConfig,
    engines: Vec<Engine>,
    free_workers: Vec<Vec<u32>>,
    queue: EventQueue<Event>,
    /// Per rank, the engine deadline a [`Event::Timeout`] is queued for.
    timeout_queued: Vec<Option<Time>>,
    network: Network,
    compute: ComputeModel,
    in_flight: InFlightTable,
    /// Running tasks, by `rank * workers + worker`.
    pending: Vec<Option<Pending>>,
    /// Workers per rank.
    workers: usize,
    /// Deliveries of one instant, reused.
    delivered: Vec<(Time, MessageId)>,
    /// Every rank's collectives in progress.
    collectives: Vec<Collectives>,
    /// Per rank, whether its collectives took an input (a join, a piece, a staging
    /// change) since [`Sim::pump`] last drained them: only then can they have pieces to
    /// send, completions or an error, so a rank that uses none costs the pump no look at
    /// its (cold) collectives. Set by [`Sim::collectives_of`].
    collectives_touched: Vec<bool>,
    /// What puts wrote into the windows, by (rank, offset).
    windows: FxHashMap<(u32, u64), Payload>,
    /// Per rank, remote one-sided operations not yet complete.
    outstanding: Vec<u32>,
    /// Per rank, a fence joined while operations were outstanding: it starts when they complete.
    parked_fence: Vec<Option<CollectiveJoin>>,
    /// What registering memory costs.
    registration: Registration,
    /// Exposed memory, by (rank, key).
    exposed: FxHashMap<(u32, u64), Payload>,
    /// The next key handed out.
    next_key: u64,
    /// Registrations under way, by (rank, operation id): the key they will give.
    exposing: FxHashMap<(u32, u64), MemoryKey>,
    /// The devices, when the machine has accelerators (see [`crate::device`]).
    accel: Option<Accel<InFlight>>,
    /// Inline progress ([`ProgressModel::Inline`], no devices): per rank, the messages
    /// and pieces that reached it while it ran a kernel, handled when the kernel ends.
    held_for_kernel: Option<Vec<Vec<InFlight>>>,
    events: u64,
    timing: SimTiming,
    trace: Trace,
    /// Whether the trace's record tables are lent to the engine being called
    /// ([`Sim::engine`]): with the full trace, so every rank writes into the one set of
    /// tables, whose ends stay in cache, not into a buffer of its own that has gone
    /// cold since it last ran (then copied over).
    lend_records: bool,
    /// The rank whose engine holds the trace's record tables now.
    lent: Option<usize>,
    /// When the run started (wall time) and how long it may take.
    deadline: Option<(std::time::Instant, std::time::Duration)>,
    /// Told how far the run has got, now and then.
    observer: Option<Observer<'a>>,
}

/// Simulates `dag` on `machine`.
pub fn run(
    dag: &Arc<Dag>,
    kernels: &SimKernels<'_>,
    strategy: StrategyFactory<'_>,
    machine: &Machine,
    cfg: SimConfig,
) -> Result<SimOutcome, RunError> {
    run_watched(dag, kernels, strategy, machine, cfg, Watch::default())
}

/// [`run`] under a [`Watch`]: a wall-time limit (the run stops with
/// [`RunError::TimedOut`] once it has taken that much real time: the sweep's
/// `timeout_s`), an observer of its progress, or both. The limit is checked every few
/// thousand events, so it costs nothing measurable, and neither changes the simulated result.
pub fn run_watched(
    dag: &Arc<Dag>,
    kernels: &SimKernels<'_>,
    strategy: StrategyFactory<'_>,
    machine: &Machine,
    cfg: SimConfig,
    watch: Watch<'_>,
) -> Result<SimOutcome, RunError> {
    if cfg.ranks != dag.ranks() {
        return Err(RunError::Config(format!(
            "the DAG was placed on {} ranks, the run has {}",
            dag.ranks(),
            cfg.ranks
        )));
    }
    if machine.compute.mode == crate::machine::ComputeMode::Measure && !cfg.run_kernels {
        return Err(RunError::Config(
            "machine compute mode `measure` needs kernels to run: set kernels = \"run\" or use mode = \"model\"".into(),
        ));
    }
    let started = Instant::now();
    let mut network = Network::new(machine, cfg.ranks).map_err(RunError::Config)?;
    network.seed(cfg.seed);
    let devices = machine.accelerators.as_ref().map(|a| Devices::new(a, cfg.ranks));
    // With devices a rank runs as many kernels at once as it has streams.
    let workers = match &devices {
        Some(d) => d.streams() as usize,
        None => cfg.workers.clamp(1, machine.compute.cores_per_rank.max(1) as usize),
    };
    let mut engines: Vec<Engine> =
        (0..cfg.ranks as u32).map(|r| Engine::new(Rank(r), Arc::clone(dag), strategy(Rank(r)), workers)).collect();
    if let Some(d) = &devices {
        for e in &mut engines {
            e.set_memory(d.memory(e.rank()));
        }
    }
    for e in &engines {
        check_capabilities("sim", CAPABILITIES, e.strategy_name(), e.needs())?;
    }
    let mut collectives: Vec<Collectives> =
        (0..cfg.ranks as u32).map(|r| Collectives::new(Rank(r), cfg.ranks, Segmenting::Segments)).collect();
    if let Some(d) = &devices {
        for (r, c) in collectives.iter_mut().enumerate() {
            c.set_memory(d.memory(Rank(r as u32)));
        }
    }
    let sim = Sim {
        dag,
        kernels,
        cfg,
        engines,
        free_workers: vec![(0..workers as u32).rev().collect(); cfg.ranks],
        queue: EventQueue::default(),
        timeout_queued: vec![None; cfg.ranks],
        network,
        compute: ComputeModel::new(&machine.compute),
        in_flight: InFlightTable::default(),
        pending: (0..cfg.ranks * workers).map(|_| None).collect(),
        workers,
        delivered: Vec::new(),
        collectives,
        collectives_touched: vec![false; cfg.ranks],
        windows: FxHashMap::default(),
        outstanding: vec![0; cfg.ranks],
        parked_fence: (0..cfg.ranks).map(|_| None).collect(),
        registration: machine.registration,
        exposed: FxHashMap::default(),
        next_key: 0,
        exposing: FxHashMap::default(),
        held_for_kernel: (machine.compute.progress == ProgressModel::Inline && devices.is_none())
            .then(|| (0..cfg.ranks).map(|_| Vec::new()).collect()),
        accel: devices.map(Accel::new),
        events: 0,
        trace: Trace::with_level(cfg.trace),
        lend_records: cfg.trace == TraceLevel::Full,
        lent: None,
        deadline: watch.wall_limit.map(|limit| (std::time::Instant::now(), limit)),
        observer: watch.observer,
        timing: SimTiming::default(),
    };
    sim.run(started)
}

impl Sim<'_> {
    fn run(mut self, started: Instant) -> Result<SimOutcome, RunError> {
        let looping = Instant::now();
        let looping_cpu = thread_cpu_time();
        self.timing.setup = looping - started;
        for r in 0..self.engines.len() {
            self.engine(r).handle_start(0);
            self.pump(r, 0)?;
        }
        let mut now = 0;
        let mut steps: u32 = 0;
        loop {
            steps = steps.wrapping_add(1);
            if steps.is_multiple_of(4096) {
                self.check_deadline(now)?;
                if steps.is_multiple_of(PROGRESS_EVERY) {
                    self.report(now, looping.elapsed());
                }
            }
            let next_task = self.queue.peek_time();
            let next_msg = self.network.next_delivery();
            match (next_task, next_msg) {
                (None, None) => break,
                // At equal times messages go first: a fixed rule keeps runs deterministic.
                (Some(t), Some(m)) if m <= t => now = self.deliver(m)?,
                (None, Some(m)) => now = self.deliver(m)?,
                (Some(_), _) => now = self.next_event()?,
            }
        }
        // The CPU clock is read inside the wall clock's span, so the CPU time is never the longer.
        self.timing.event_loop_cpu = thread_cpu_time().zip(looping_cpu).map(|(end, start)| end.saturating_sub(start));
        self.timing.event_loop = looping.elapsed();
        self.report(now, self.timing.event_loop);
        self.finish(now)
    }

    /// Tells the observer, if any, how far the run has got.
    fn report(&self, now: Time, wall: Duration) {
        if let Some(observe) = self.observer {
            observe(RunProgress { virtual_ns: now, events: self.events, wall });
        }
    }

    /// Fails the run once it has used its wall time.
    fn check_deadline(&self, now: Time) -> Result<(), RunError> {
        let Some((started, limit)) = self.deadline else { return Ok(()) };
        if started.elapsed() < limit {
            return Ok(());
        }
        let done = self.engines.iter().filter(|e| e.is_done()).count();
        Err(RunError::TimedOut {
            limit,
            progress: format!(
                "reached {now} ns of simulated time after {} events, {done} of {} ranks done, {} tasks in the DAG",
                self.events,
                self.engines.len(),
                self.dag.task_count()
            ),
        })
    }

    /// Delivers every message due at `at`.
    fn deliver(&mut self, at: Time) -> Result<Time, RunError> {
        let mut delivered = std::mem::take(&mut self.delivered);
        self.network.deliver_until_into(at, &mut delivered);
        for &(t, id) in &delivered {
            self.events += 1;
            let item = self.in_flight.remove(id).expect("the network delivers only what was sent");
            if let Some(accel) = &mut self.accel
                && let Some((dst, bytes)) = accel.from_nic(id)
            {
                // GPU-direct data whose NIC is under another switch than the device's.
                let end = accel.devices.nic_hop(t, dst, false, bytes).expect("only data that crosses is expected");
                let slot = accel.hold(item);
                self.queue.push(end, Event::Land { slot });
                continue;
            }
            self.arrived(t, item)?;
        }
        delivered.clear();
        self.delivered = delivered;
        Ok(at)
    }

    /// `item` reached its receiver at `t`.
    fn arrived(&mut self, t: Time, item: InFlight) -> Result<(), RunError> {
        let dst = match &item {
            InFlight::Message { dst, .. } => dst.index(),
            InFlight::Piece(piece) => piece.dst.index(),
            _ => return self.one_sided_arrived(t, item),
        };
        if let Some(held) = &mut self.held_for_kernel
            && self.pending[dst * self.workers..(dst + 1) * self.workers].iter().flatten().any(|p| p.end > t)
        {
            held[dst].push(item);
            return Ok(());
        }
        self.receive(t, item);
        self.pump(dst, t)
    }

    /// Hands a message or a collective piece to its receiver's engine or collectives.
    fn receive(&mut self, t: Time, item: InFlight) {
        match item {
            InFlight::Message { src, dst, msg } => self.engine(dst.index()).handle_message(t, src, msg),
            InFlight::Piece(piece) => {
                let dst = piece.dst.index();
                if self.accel.is_some() {
                    // Chunks a device task reads start their copy to the device as their
                    // piece lands, not when the whole collective completes.
                    for (chunk, bytes) in piece.data() {
                        self.engine(dst).handle_landed(t, piece.src, chunk, bytes);
                    }
                }
                self.collectives_of(dst).handle_piece(t, piece)
            }
            _ => unreachable!("only messages and pieces are received"),
        }
    }

    /// Hands `item` (`bytes` from `src` to `dst`) to the network at `now`, or, for data
    /// between two devices of one node ([`Path::Peer`] of the sender's engine's memory),
    /// to a peer copy. GPU-direct data of a device whose NIC is under another PCIe switch
    /// first crosses to the NIC ([`Devices::nic_hop`]).
    fn transmit(&mut self, now: Time, src: Rank, dst: Rank, bytes: u64, item: InFlight) {
        if let Some(accel) = &mut self.accel
            && item.is_data()
            && src != dst
        {
            let memory = self.engines[src.index()].memory();
            if memory.path(dst) == Path::Peer {
                return self.peer_copy(now, src, dst, bytes, item);
            }
            if memory.network_space().is_device()
                && let Some(end) = accel.devices.nic_hop(now, src, true, bytes)
            {
                let slot = accel.hold_to_nic(item, src, dst, bytes);
                self.queue.push(end, Event::Inject { slot });
                return;
            }
        }
        self.send(now, src, dst, bytes, item);
    }

    /// Hands `item` (`bytes` from `src` to `dst`) to the network at `now`; GPU-direct data
    /// for a device whose NIC is under another PCIe switch will cross from the NIC once
    /// delivered.
    fn send(&mut self, now: Time, src: Rank, dst: Rank, bytes: u64, item: InFlight) {
        let id = match &item {
            InFlight::Piece(piece) => self.network.send_piece(now, src, dst, bytes, self.piece_cpu(piece)),
            item if item.is_control_message() => self.network.send_control(now, src, dst, bytes),
            _ => self.network.send(now, src, dst, bytes),
        };
        if let Some(accel) = &mut self.accel
            && item.is_data()
            && src != dst
            && accel.devices.crosses_to_nic(dst)
            && self.engines[dst.index()].memory().path(src) == Path::Network
            && self.engines[dst.index()].memory().network_space().is_device()
        {
            accel.expect_from_nic(id, dst, bytes);
        }
        self.in_flight.insert(id, item);
    }

    /// What `piece` costs each end's CPU ([`Network::piece_cpu`]): per message it
    /// carries (its own, or its blocks') and per payload byte (its messages', or its
    /// vector block's).
    fn piece_cpu(&self, piece: &Piece) -> Time {
        let (messages, payload) = match &piece.body {
            Body::Values(v) => (0, v.len() as u64),
            Body::Messages(m) | Body::Segment { messages: Some(m), .. } => {
                (m.len() as u64, piece.data().map(|d| d.1).sum())
            }
            Body::Blocks(blocks) => {
                (blocks.iter().map(|b| b.messages.len() as u64).sum(), piece.data().map(|d| d.1).sum())
            }
            Body::Header | Body::Segment { messages: None, .. } => (0, 0),
        };
        self.network.piece_cpu(messages, payload)
    }

    /// Moves data `item` from `src`'s device memory into `dst`'s by a peer copy; it
    /// arrives when the copy ends.
    fn peer_copy(&mut self, now: Time, src: Rank, dst: Rank, bytes: u64, item: InFlight) {
        let accel = self.accel.as_mut().expect("checked by the caller");
        let copy = accel.devices.peer(now, src, dst, bytes);
        self.trace.record_copy(copy_record(src, CopyKind::Peer, copy, bytes, (src, dst), item.served()));
        let slot = accel.hold(item);
        self.queue.push(copy.end, Event::Land { slot });
    }

    /// Runs the copy rank `r`'s engine asked for on its device; the engine hears of its end.
    fn device_copy(&mut self, r: usize, now: Time, c: DeviceCopy) {
        let accel = self.accel.as_mut().expect("only an engine with a device asks for a copy");
        let rank = Rank(r as u32);
        let span = accel.devices.copy(now, rank, c.to, c.bytes);
        let (kind, ends) = match c.to {
            Space::Host => (CopyKind::DeviceToHost, (rank, c.peer)),
            Space::Device(_) => (CopyKind::HostToDevice, (c.peer, rank)),
        };
        self.trace.record_copy(copy_record(rank, kind, span, c.bytes, ends, (Some(c.chunk), c.carries)));
        if c.to == Space::Host {
            // Collective pieces carrying the chunk wait for the copy.
            accel.stage(rank, c.id, c.chunk);
            self.collectives_of(r).stage(c.chunk);
        }
        self.queue.push(span.end, Event::Copied { rank: rank.0, id: c.id });
    }

    /// Handles the earliest queued event: completes a task, or wakes a rank whose
    /// engine deadline came.
    fn next_event(&mut self) -> Result<Time, RunError> {
        let (now, ev) = self.queue.pop().expect("peeked");
        self.events += 1;
        match ev {
            Event::Land { slot } => {
                let item = self.accel.as_mut().expect("only devices hold transfers").take(slot);
                self.arrived(now, item)?;
                return Ok(now);
            }
            Event::Inject { slot } => {
                let (item, src, dst, bytes) =
                    self.accel.as_mut().expect("only devices hold transfers").take_to_nic(slot);
                self.send(now, src, dst, bytes, item);
                return Ok(now);
            }
            Event::TaskFinished { rank, task, worker } => {
                let slot = rank as usize * self.workers + worker as usize;
                if !self.pending[slot].as_ref().is_some_and(|p| p.task == task && p.end == now) {
                    // Its kernel's end moved later (device sharing): a later event ends it.
                    self.events -= 1;
                    return Ok(now);
                }
                let p = self.pending[slot].take().expect("a finishing task was started");
                self.free_workers[rank as usize].push(worker);
                let done = TaskDone { task, worker: p.lane, start_ns: p.start, end_ns: now, outputs: p.outputs };
                self.engine(rank as usize).handle_task_done(now, done);
                // Inline progress: what arrived during the kernel is handled now, before
                // the rank starts another (the pump below).
                if let Some(held) = &mut self.held_for_kernel {
                    for item in std::mem::take(&mut held[rank as usize]) {
                        // Under LogGOPS its CPU time comes now, after the kernel.
                        let cpu = match &item {
                            InFlight::Message { src, dst, msg } => {
                                self.network.receive_cpu(*src, *dst, msg.wire_bytes(), item.is_control_message())
                            }
                            InFlight::Piece(p) => {
                                self.network.piece_receive_cpu(p.src, p.dst, p.bytes, self.piece_cpu(p))
                            }
                            _ => 0,
                        };
                        self.network.cpu_busy(now, Rank(rank), cpu);
                        self.receive(now, item);
                    }
                }
            }
            Event::Timeout { rank } => {
                self.timeout_queued[rank as usize] = None;
                self.engine(rank as usize).handle_timeout(now);
            }
            Event::Exposed { rank, id } => {
                let key = self.exposing.remove(&(rank, id)).expect("a registration under way");
                self.engine(rank as usize).handle_exposed(now, id, key);
            }
            Event::Copied { rank, id } => {
                if let Some(chunk) = self.accel.as_mut().and_then(|a| a.staged(Rank(rank), id)) {
                    self.collectives_of(rank as usize).staged(now, chunk);
                }
                self.engine(rank as usize).handle_copy_done(now, id);
            }
        }
        let rank = match ev {
            Event::TaskFinished { rank, .. }
            | Event::Timeout { rank }
            | Event::Exposed { rank, .. }
            | Event::Copied { rank, .. } => rank as usize,
            Event::Land { .. } | Event::Inject { .. } => unreachable!("handled above"),
        };
        self.pump(rank, now)?;
        Ok(now)
    }

    /// Executes everything rank `r` wants to do at `now`, including collective steps
    /// that can go ahead and the completions they lead to.
    fn pump(&mut self, r: usize, now: Time) -> Result<(), RunError> {
        loop {
            while let Some(action) = self.engine(r).poll_action(now) {
                match action {
                    Action::Send(out) => {
                        let (src, dst) = (Rank(r as u32), out.to);
                        let bytes = out.msg.wire_bytes();
                        self.transmit(now, src, dst, bytes, InFlight::Message { src, dst, msg: out.msg });
                    }
                    Action::Copy(c) => self.device_copy(r, now, c),
                    Action::Run(job) => self.start_task(r, now, job)?,
                    Action::Collective(join) if join.kind == CollectiveKind::Fence && self.outstanding[r] > 0 => {
                        self.parked_fence[r] = Some(join);
                    }
                    Action::Collective(join) => {
                        self.network.collective_call(now, Rank(r as u32));
                        self.collectives_of(r).join(now, join)
                    }
                    Action::OneSided(op) => self.one_sided(r, now, op),
                }
            }
            if let Some(e) = self.engines[r].error() {
                return Err(RunError::Engine(e.clone()));
            }
            // Only collectives that took an input since they were last drained can have
            // something to send, a completion or an error.
            let mut completed = false;
            if self.collectives_touched[r] {
                while let Some(piece) = self.collectives[r].poll_send() {
                    self.transmit(now, piece.src, piece.dst, piece.bytes, InFlight::Piece(piece));
                }
                if let Some(e) = self.collectives[r].error() {
                    return Err(RunError::Collective(e.clone()));
                }
                while let Some((id, received)) = self.collectives[r].poll_done() {
                    self.engine(r).handle_collective_done(now, id, received);
                    completed = true;
                }
            }
            if !completed {
                // Drained: nothing more can come out until their next input.
                self.collectives_touched[r] = false;
                // Collect records as the run goes: no per-rank copies to merge at the end.
                self.take_records_back();
                self.engines[r].drain_trace_into(&mut self.trace);
                self.queue_timeout(r, now);
                return Ok(());
            }
        }
    }

    /// Rank `r`'s engine, about to be called: with the full trace it gets the trace's
    /// record tables (taken back from the engine that had them), after its own records
    /// so far went into them, so records stay in the order they were made.
    fn engine(&mut self, r: usize) -> &mut Engine {
        if self.lend_records && self.lent != Some(r) {
            self.take_records_back();
            self.engines[r].drain_trace_into(&mut self.trace);
            self.engines[r].swap_records(&mut self.trace);
            self.lent = Some(r);
        }
        &mut self.engines[r]
    }

    /// The trace's record tables back from the engine they are lent to, if any.
    fn take_records_back(&mut self) {
        if let Some(q) = self.lent.take() {
            self.engines[q].swap_records(&mut self.trace);
        }
    }

    /// Rank `r`'s collectives, about to take an input: the next [`Sim::pump`] of `r`
    /// looks for what it causes.
    fn collectives_of(&mut self, r: usize) -> &mut Collectives {
        self.collectives_touched[r] = true;
        &mut self.collectives[r]
    }

    /// Queues a wake-up at rank `r`'s engine deadline, unless one is queued for it
    /// already (a stale wake-up finds nothing due and does nothing).
    fn queue_timeout(&mut self, r: usize, now: Time) {
        let Some(at) = self.engines[r].poll_timeout() else { return };
        if self.timeout_queued[r] != Some(at) {
            self.timeout_queued[r] = Some(at);
            self.queue.push(at.max(now), Event::Timeout { rank: r as u32 });
        }
    }

    /// Starts rank `r`'s one-sided operation: a local copy completes now, a remote one
    /// sends its first leg.
    fn one_sided(&mut self, r: usize, now: Time, op: OneSided) {
        let origin = Rank(r as u32);
        let OneSided { id, target, offset, access, .. } = op;
        let access = match access {
            Access::Expose(data) => {
                let key = MemoryKey { addr: 0, key: self.next_key, len: data.len() as u64 };
                self.next_key += 1;
                let at = now + self.registration.ns(key.len);
                self.exposed.insert((origin.0, key.key), data);
                self.exposing.insert((origin.0, id), key);
                self.queue.push(at, Event::Exposed { rank: origin.0, id });
                return;
            }
            Access::Withdraw(key) => {
                if self.exposed.remove(&(origin.0, key.key)).is_none() {
                    let why = format!("withdraws memory key {}, which {origin} has not exposed", key.key);
                    self.engine(r).handle_one_sided_failed(id, why);
                }
                return;
            }
            Access::Read { key, len } => {
                self.outstanding[r] += 1;
                let leg = InFlight::ReadRequest { origin, id, target, key: key.key, offset, len };
                self.transmit(now, origin, target, HEADER_BYTES, leg);
                return;
            }
            access => access,
        };
        if target == origin {
            match access {
                Access::Put(data) => {
                    self.windows.insert((target.0, offset), data);
                    self.engine(r).handle_one_sided_done(now, id, None);
                }
                Access::Get { len } => match self.read_window(target, offset, len) {
                    Ok(data) => self.engine(r).handle_one_sided_done(now, id, Some(data)),
                    Err(why) => self.engine(r).handle_one_sided_failed(id, why),
                },
                _ => unreachable!("handled above"),
            }
            return;
        }
        self.outstanding[r] += 1;
        let (bytes, leg) = match access {
            Access::Put(data) => (data.len() as u64, InFlight::Put { origin, id, target, offset, data }),
            Access::Get { len } => (HEADER_BYTES, InFlight::GetRequest { origin, id, target, offset, len }),
            _ => unreachable!("handled above"),
        };
        self.transmit(now, origin, target, bytes, leg);
    }

    /// A get or read request reached `target`: the bytes go back to `origin` (`len` on the
    /// wire), or the operation fails there if they could not be read.
    fn answer_read(
        &mut self,
        t: Time,
        origin: Rank,
        id: u64,
        target: Rank,
        len: u64,
        read: Result<Payload, String>,
    ) -> Result<(), RunError> {
        match read {
            Ok(data) => {
                self.transmit(t, target, origin, len, InFlight::GetData { origin, id, data });
                Ok(())
            }
            Err(why) => {
                self.engine(origin.index()).handle_one_sided_failed(id, why);
                self.pump(origin.index(), t)
            }
        }
    }

    /// A one-sided operation's leg arrived at `t`: the first leg turns around, the
    /// second completes the operation at its origin.
    fn one_sided_arrived(&mut self, t: Time, leg: InFlight) -> Result<(), RunError> {
        let (origin, id, data) = match leg {
            InFlight::Put { origin, id, target, offset, data } => {
                self.windows.insert((target.0, offset), data);
                self.transmit(t, target, origin, HEADER_BYTES, InFlight::PutAck { origin, id });
                return Ok(());
            }
            InFlight::GetRequest { origin, id, target, offset, len } => {
                let read = self.read_window(target, offset, len);
                return self.answer_read(t, origin, id, target, len, read);
            }
            InFlight::ReadRequest { origin, id, target, key, offset, len } => {
                let read = self.read_exposed(target, key, offset, len);
                return self.answer_read(t, origin, id, target, len, read);
            }
            InFlight::PutAck { origin, id } => (origin, id, None),
            InFlight::GetData { origin, id, data } => (origin, id, Some(data)),
            InFlight::Message { .. } | InFlight::Piece(_) => unreachable!("not a one-sided leg"),
        };
        let r = origin.index();
        self.engine(r).handle_one_sided_done(t, id, data);
        self.outstanding[r] -= 1;
        if self.outstanding[r] == 0
            && let Some(fence) = self.parked_fence[r].take()
        {
            self.network.collective_call(t, origin);
            self.collectives_of(r).join(t, fence);
        }
        self.pump(r, t)
    }

    /// The bytes a read of `len` at `offset` of `target`'s exposure `key` gets (a phantom
    /// of `len` when the run moves no real bytes).
    fn read_exposed(&self, target: Rank, key: u64, offset: u64, len: u64) -> Result<Payload, String> {
        let Some(data) = self.exposed.get(&(target.0, key)) else {
            return Err(format!("read of memory key {key} of {target}, which is not exposed"));
        };
        match offset.checked_add(len) {
            Some(end) if end <= data.len() as u64 => Ok(if offset == 0 && len == data.len() as u64 {
                Payload::clone(data)
            } else if data.is_phantom() {
                Payload::phantom(len as usize)
            } else {
                Payload::from_bytes(&data.as_bytes()[offset as usize..end as usize])
            }),
            _ => Err(format!(
                "read of {len} bytes at offset {offset} of {target}'s exposure, which has {} bytes",
                data.len()
            )),
        }
    }

    /// The bytes a get of `len` at `offset` of `target`'s window reads: exactly what one
    /// earlier put wrote there.
    fn read_window(&self, target: Rank, offset: u64, len: u64) -> Result<Payload, String> {
        match self.windows.get(&(target.0, offset)) {
            Some(data) if data.len() as u64 == len => Ok(Payload::clone(data)),
            Some(data) => Err(format!(
                "get of {len} bytes at offset {offset} of {target}'s window, where a put wrote {} bytes",
                data.len()
            )),
            None => Err(format!("get of {len} bytes at offset {offset} of {target}'s window, which no put wrote")),
        }
    }

    /// Starts a task: runs its kernel now if asked, and schedules its end.
    fn start_task(&mut self, r: usize, now: Time, job: RunTask) -> Result<(), RunError> {
        let task = self.dag.task(job.task);
        let worker = self.free_workers[r].pop().expect("the engine never exceeds its workers");
        if let Some(accel) = &mut self.accel {
            // The kernel's time on the device, whether or not it also runs on the host.
            let span = accel.devices.kernel(r as u32, now, (self.kernels.name)(task.kernel), task.flops);
            // Kernels the new one shares the device with end later: their completion
            // events move (the old ones, found stale, are skipped).
            let lanes = r * self.workers..(r + 1) * self.workers;
            for m in accel.devices.moved() {
                let (worker, p) = self.pending[lanes.clone()]
                    .iter_mut()
                    .enumerate()
                    .find_map(|(w, p)| p.as_mut().filter(|p| p.lane == m.stream && p.end == m.was).map(|p| (w, p)))
                    .expect("a moved kernel is running");
                p.end = m.end;
                self.queue.push(m.end, Event::TaskFinished { rank: r as u32, task: p.task, worker: worker as u32 });
            }
            let outputs = if self.cfg.run_kernels {
                self.kernels
                    .kernels
                    .run(task, job.inputs)
                    .map_err(|reason| kernel_failed(job.task, task.kernel, r, reason))?
            } else {
                self.modelled_outputs(task, &job.inputs)
            };
            self.pending[r * self.workers + worker as usize] =
                Some(Pending { task: job.task, outputs, lane: span.stream, start: span.start, end: span.end });
            self.queue.push(span.end, Event::TaskFinished { rank: r as u32, task: job.task, worker });
            return Ok(());
        }
        let bytes =
            if self.compute.charges_bytes() { task.outputs().map(|c| self.dag.chunk(c).bytes).sum() } else { 0 };
        let (outputs, duration) = if self.cfg.run_kernels {
            let started = Instant::now();
            let outputs = self
                .kernels
                .kernels
                .run(task, job.inputs)
                .map_err(|reason| kernel_failed(job.task, task.kernel, r, reason))?;
            let duration = if self.compute.measures() {
                self.compute.record(task.kernel.0, task.flops, started.elapsed().as_nanos() as Time)
            } else {
                self.compute.modelled_kernel(task.kernel.0, || (self.kernels.name)(task.kernel), task.flops, bytes)
            };
            (outputs, duration)
        } else {
            let duration =
                self.compute.modelled_kernel(task.kernel.0, || (self.kernels.name)(task.kernel), task.flops, bytes);
            (self.modelled_outputs(task, &job.inputs), duration)
        };
        // A kernel waits for the rank's CPU to finish the message work that holds it.
        let start = now.max(self.network.cpu_free(Rank(r as u32)));
        self.pending[r * self.workers + worker as usize] =
            Some(Pending { task: job.task, outputs, lane: worker, start, end: start + duration });
        self.queue.push(start + duration, Event::TaskFinished { rank: r as u32, task: job.task, worker });
        Ok(())
    }

    /// A task's outputs when its kernel does not run: what the kernels say they would be,
    /// else phantoms of the declared sizes.
    fn modelled_outputs(&self, task: &dagwire_runtime::Task, inputs: &[Payload]) -> Vec<Payload> {
        self.kernels
            .kernels
            .modelled_outputs(task, inputs)
            .unwrap_or_else(|| task.outputs().map(|c| Payload::phantom(self.dag.chunk(c).bytes as usize)).collect())
    }

    /// Checks every rank finished and gathers the outcome.
    fn finish(mut self, end: Time) -> Result<SimOutcome, RunError> {
        let finishing = Instant::now();
        let stuck: Vec<String> = self
            .engines
            .iter()
            .enumerate()
            .filter(|(_, e)| !e.is_done())
            .map(|(r, e)| match self.collectives[r].summary() {
                open if open.is_empty() => e.waiting_summary(),
                open => format!("{}; {open}", e.waiting_summary()),
            })
            .collect();
        if !stuck.is_empty() {
            return Err(RunError::Config(format!(
                "simulation deadlocked at {end} ns: no event left but {} ranks unfinished\n{}",
                stuck.len(),
                stuck.join("\n")
            )));
        }
        debug_assert!(self.in_flight.is_empty() && self.pending.iter().all(Option::is_none));
        debug_assert!(self.accel.as_ref().is_none_or(Accel::is_idle));
        debug_assert!(self.held_for_kernel.iter().flatten().all(Vec::is_empty));
        debug_assert!(self.collectives.iter().all(Collectives::is_idle));
        let mut results: BTreeMap<ChunkId, Payload> = BTreeMap::new();
        self.take_records_back();
        let mut trace = std::mem::take(&mut self.trace);
        for e in &mut self.engines {
            results.extend(e.take_results());
            e.drain_trace_into(&mut trace);
        }
        trace.sort();
        let run = RunOutcome { trace, results, makespan_ns: end };
        let timing = SimTiming { finish: finishing.elapsed(), ..self.timing };
        Ok(SimOutcome { run, events: self.events, timing })
    }
}

/// The run error of a kernel that failed on `r`.
fn kernel_failed(task: TaskId, kernel: KernelId, r: usize, reason: String) -> RunError {
    RunError::Engine(dagwire_runtime::EngineError::Kernel { task, kernel: kernel.0, rank: Rank(r as u32), reason })
}
