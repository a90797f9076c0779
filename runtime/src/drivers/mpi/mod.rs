//! The `mpi` driver (cargo feature `mpi`): one process per rank under `mpirun` (or
//! `srun`), every rank running the same program (SPMD).
//!
//! Each rank's thread that initialised MPI runs the **progress loop**, the only place
//! MPI is called (so the driver asks for `MPI_THREAD_FUNNELED` and checks it got it);
//! kernels run on worker threads ([`Progress::Thread`]) or between polls on the loop's
//! own thread ([`Progress::Inline`]). The loop:
//! - receives engine messages on one tag into receives posted ahead ([`Mailbox`]: an
//!   arriving message lands in place, with none of a matched probe's extra queueing and
//!   copy); a payload larger than [`INLINE_LIMIT`] travels as its own message, received
//!   with `MPI_Irecv` straight into the chunk's buffer on a tag from one allocator
//!   ([`Tags`]) that stays below the communicator's `MPI_TAG_UB`; messages from one
//!   source reach the engine in the order they were sent;
//! - sends with `MPI_Isend` from the message's own buffer (no copy for large payloads)
//!   and tests outstanding sends and receives; messages a kernel's outputs cause leave
//!   right after it, stamped with its end (inline progress), before the next poll;
//! - runs collectives one of two ways ([`CollectivesMode`], the driver's `collectives`
//!   parameter). `native`: all-to-all-v as `MPI_Ialltoall` (counts) then
//!   `MPI_Ialltoallv` (bytes), all-reduce as `MPI_Iallreduce`, a fence as an
//!   `MPI_Ibarrier` (then `MPI_Win_fence` when there is a window), on a communicator of
//!   their own, one at a time in join order (the engine makes every rank join them in
//!   the same order); the kinds MPI has no native form for here (neighbour
//!   all-to-all-v, broadcast, reduce-scatter, all-gather) run the runtime's algorithms
//!   as below. `runtime`: every collective runs the runtime's shared algorithms
//!   ([`crate::collectives`], one [`Collectives`] per rank, exactly as the `local`
//!   driver does), each piece a point-to-point message of its own tag
//!   ([`Piece::encode`]; payloads above [`INLINE_LIMIT`] travel apart, from and into
//!   their own buffers, as engine messages' do); a fence's dissemination barrier is followed by
//!   `MPI_Win_fence` when there is a window;
//! - serves one-sided operations on an MPI window ([`Window`], allocated before the run
//!   when the strategy declares one): an operation on this rank's own window is a local
//!   copy; with passive synchronisation the window is in a `lock_all` epoch for the
//!   whole run and each pass of the loop ends with one `MPI_Win_flush_all` that
//!   completes every operation it issued; with fences, operations complete at the next
//!   fence, which the loop runs as an `MPI_Ibarrier` (polled, so no rank blocks while a
//!   peer still needs its progress) followed by `MPI_Win_fence`;
//! - when idle, spins briefly, then yields, then sleeps with a growing back-off, so
//!   ranks oversubscribed on few cores do not starve each other or their workers.
//!
//! Before the run, every rank compares the plan it built ([`crate::Dag::fingerprint`],
//! the strategy and the rank count) with every other rank's, and fails with a message
//! naming the ranks that differ instead of hanging later. Each rank measures its clock
//! offset to rank 0 (the best of several ping-pongs), so every timestamp is on rank 0's
//! timeline. At the end, traces and result chunks are gathered to rank 0, which gets the
//! [`RunOutcome`].
//!
//! A rank whose kernel fails or whose run stalls returns the error; its peers may be
//! waiting for it, so the caller must end the job with [`Mpi::abort`] (the `experiment
//! point` command does, printing the rank and the reason first).
//!
//! All `unsafe` code (raw MPI requests, the RMA [`Window`]) lives in [`raw`].

#![deny(unsafe_code)]

pub mod raw;
use crate::drivers::wire;

/// rsmpi, for programs that call MPI next to the driver (benchmarks, tests).
pub use ::mpi as rsmpi;
pub use raw::{Epoch, GetId, Window, WindowError};

use crate::one_sided::{Access, OneSided, WindowSync};

use crate::collective::{Capability, CollectiveJoin, CollectiveKind, Contribution, check_capabilities};
use crate::collectives::{Body, Collectives, Piece, Segmenting};
use crate::dag::Dag;
use crate::drivers::collectives_mode::{CollectivesMode, mpi_params};
use crate::drivers::fault::Injector;
use crate::drivers::kernels::{self, Finished, KernelRunner};
use crate::drivers::panics::{Handling, set_handling};
use crate::drivers::rank_loop::{RankCore, RankLoop};
use crate::drivers::registry::{self, DriverInfo, Executed, JobDriver, JobRank, Launch, RunRequest};
use crate::drivers::run::{
    Fault, IdleWait, PROGRESS_NOTE, Progress, RunError, RunOutcome, cores_shared, note_progress,
};
use crate::drivers::workers::Workers;
use crate::engine::{Action, Engine};
use crate::ids::{ChunkId, Rank};
use crate::kernel::Kernels;
use crate::message::Message;
use crate::payload::Payload;
use crate::strategy::StrategyFactory;
use crate::trace::Trace;
use ::mpi::environment::Universe;
use ::mpi::raw::AsRaw;
use ::mpi::topology::{Communicator, SimpleCommunicator};
use ::mpi::traits::{Destination, Source};
use crossbeam_channel::{Receiver, unbounded};
use raw::{AllReduce, AllToAllV, IBarrier, Mailbox, RawComm, RecvOp, SendBuf, SendOp};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the MPI driver offers strategies: everything but exposed memory, in both
/// [`CollectivesMode`]s (the collectives MPI has no native form for here run the
/// runtime's algorithms). Its one-sided access is windows allocated before the run
/// (`MPI_Win_allocate`); memory exposed chunk by chunk during the run
/// ([`Capability::OneSidedExpose`], the `fabric` strategy) would need a dynamic window
/// (`MPI_Win_create_dynamic` + `MPI_Win_attach`), which this driver does not have.
pub const CAPABILITIES: &[Capability] = &[
    Capability::PointToPoint,
    Capability::AllToAllV,
    Capability::NeighborAllToAllV,
    Capability::Broadcast,
    Capability::OneSidedPassive,
    Capability::OneSidedFence,
    Capability::AllReduce,
    Capability::ReduceScatter,
    Capability::AllGather,
];

/// The MPI driver's registry entry.
pub const DRIVER: DriverInfo = DriverInfo {
    name: "mpi",
    summary: "one process per rank: each point is an MPI job (`mpirun -n R experiment point ...`, launcher \
              configurable), kernels run for real; needs an MPI library",
    params: mpi_params,
    offers: CAPABILITIES,
    host: crate::drivers::registry::nothing_about_host,
    check: registry::faults_need_two_ranks,
    launch: Launch::Job(JobDriver { join, abort: abort_job }),
};

/// Joins the MPI job this process was started in.
fn join() -> Result<Box<dyn JobRank>, RunError> {
    Ok(Box::new(Mpi::init()?))
}

impl JobRank for Mpi {
    fn rank(&self) -> usize {
        Mpi::rank(self)
    }

    fn size(&self) -> usize {
        Mpi::size(self)
    }

    fn run(&self, req: &RunRequest<'_>) -> Result<Option<Executed>, RunError> {
        let cfg = MpiConfig {
            workers: req.workers,
            progress: req.progress,
            timeout: req.timeout,
            fault: req.fault,
            collectives: CollectivesMode::of(req.params),
        };
        let outcome = run(self, req.dag, req.kernels, req.strategy, &cfg)?;
        Ok(outcome.map(|outcome| Executed { outcome, kernels_ran: true }))
    }

    fn abort(&self, code: i32) -> ! {
        Mpi::abort(self, code)
    }
}

/// Payloads up to this many bytes travel in the same MPI message as their header (one
/// copy on each side); larger ones as a message of their own, without copies.
pub const INLINE_LIMIT: usize = 16 << 10;

/// Receives posted ahead for engine messages: enough for a burst from a few peers;
/// more arrivals wait in MPI's unexpected queue until a receive is posted again.
const MAILBOX_DEPTH: usize = 8;

/// Tag of engine message headers (on the driver's point-to-point communicator).
const TAG_MSG: i32 = 1;
/// Tag of the pieces of collectives run by the runtime's algorithms.
const TAG_PIECE: i32 = 2;
/// Tag of clock synchronisation (on the world communicator).
const TAG_CLOCK: i32 = 3;
/// Tag of the final gather of traces and results (on the world communicator).
const TAG_GATHER: i32 = 4;
/// Smallest tag handed out for separate payloads.
const FIRST_DATA_TAG: i32 = 16;

/// MPI, initialised once per process with the threading level the driver needs.
/// Dropping it finalises MPI.
pub struct Mpi {
    world: SimpleCommunicator,
    // Dropped last: MPI_Finalize.
    _universe: Universe,
}

impl Mpi {
    /// Initialises MPI asking for `MPI_THREAD_FUNNELED` (only the thread calling this
    /// makes MPI calls) and checks that the library provides it.
    pub fn init() -> Result<Mpi, RunError> {
        let (universe, provided) = ::mpi::initialize_with_threading(::mpi::Threading::Funneled).ok_or_else(|| {
            RunError::Config("MPI is already initialised in this process; create one Mpi and reuse it".into())
        })?;
        if provided < ::mpi::Threading::Funneled {
            return Err(RunError::Config(format!(
                "the MPI library provides thread level {provided:?}, the driver needs Funneled (MPI calls from the \
                 main thread, kernels on worker threads); use an MPI built with thread support"
            )));
        }
        Ok(Mpi { world: universe.world(), _universe: universe })
    }

    /// True when this process runs under an MPI launcher (`mpirun`, `srun`), judged by
    /// the environment variables Open MPI, MPICH/Hydra and the PMI/PMIx of Slurm set for
    /// the ranks they start (a batch script itself has none of them).
    pub fn launched() -> bool {
        ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMI_RANK", "PMIX_RANK", "MPI_LOCALNRANKS"]
            .iter()
            .any(|v| std::env::var_os(v).is_some())
    }

    /// This process's rank in `MPI_COMM_WORLD`.
    pub fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    /// Ranks in `MPI_COMM_WORLD`.
    pub fn size(&self) -> usize {
        self.world.size() as usize
    }

    /// The world communicator, for programs that also call MPI themselves (benchmarks).
    pub fn world(&self) -> &SimpleCommunicator {
        &self.world
    }

    /// Waits until every rank got here.
    pub fn barrier(&self) {
        ::mpi::collective::CommunicatorCollectives::barrier(&self.world);
    }

    /// Collectively allocates an RMA window of `bytes` on every rank of the world.
    pub fn window(&self, bytes: usize) -> Result<Window, WindowError> {
        Window::allocate(self.world.as_raw(), bytes)
    }

    /// Ends every rank of the job with exit code `code` (print why first).
    pub fn abort(&self, code: i32) -> ! {
        raw::abort(code)
    }
}

impl Drop for Mpi {
    /// Finalises MPI; while the thread panics it aborts the job instead, because peers
    /// waiting for this rank would otherwise hang (and `MPI_Finalize` with them).
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("rank {}: panicked; aborting the MPI job", self.rank());
            raw::abort(101);
        }
    }
}

/// Ends the job from anywhere (a panic hook): `MPI_Abort` if MPI is up, else exit.
pub fn abort_job(code: i32) -> ! {
    if raw::initialized() { raw::abort(code) } else { std::process::exit(code) }
}

/// Settings of one rank of an MPI run (the rank count is the job's).
#[derive(Clone, Debug)]
pub struct MpiConfig {
    /// Kernel worker threads (with [`Progress::Inline`], the progress thread is the one worker).
    pub workers: usize,
    /// How communication progresses while kernels run ([`Progress::Auto`] decides from
    /// the ranks on this node, `workers` and the cores this process may use; rank 0 says
    /// what it picked on stderr).
    pub progress: Progress,
    /// A rank that makes no progress for this long fails with a diagnosis.
    pub timeout: Duration,
    /// An optional deliberate fault: each rank corrupts its own `nth` data message.
    pub fault: Option<Fault>,
    /// Whose collective algorithms run (MPI's own where it has them, or the runtime's).
    pub collectives: CollectivesMode,
}

impl Default for MpiConfig {
    fn default() -> Self {
        MpiConfig {
            workers: 1,
            progress: Progress::Auto,
            timeout: Duration::from_secs(600),
            fault: None,
            collectives: CollectivesMode::Native,
        }
    }
}

/// Runs `dag` with this process as one rank of the MPI job. Every rank calls it with
/// the same plan; rank 0 gets `Some` outcome with everyone's trace and results, the
/// others `None`. On `Err`, end the job with [`Mpi::abort`]: peers may wait forever.
pub fn run(
    mpi: &Mpi,
    dag: &Arc<Dag>,
    kernels: &dyn Kernels,
    strategy: StrategyFactory<'_>,
    cfg: &MpiConfig,
) -> Result<Option<RunOutcome>, RunError> {
    let (rank, size) = (mpi.rank(), mpi.size());
    let strategy = strategy(Rank(rank as u32));
    check_plans(mpi, dag, strategy.name(), cfg)?;
    if dag.ranks() != size {
        return Err(RunError::Config(format!(
            "the DAG was placed on {} ranks, the MPI job has {size}; launch with -n {}",
            dag.ranks(),
            dag.ranks()
        )));
    }
    if cfg.workers == 0 {
        return Err(RunError::Config("workers must be at least 1".into()));
    }
    // The ranks sharing this node's memory share its cores, unless the launcher bound
    // each to cores of its own.
    let on_node = mpi.world.split_shared(rank as i32).size() as usize;
    let (ranks_here, cores, bound) = cores_shared(on_node);
    let (progress, why) = cfg.progress.resolve(ranks_here, cfg.workers, cores);
    let (idle, idle_why) = IdleWait::of(progress, ranks_here, cfg.workers, cores);
    if rank == 0 {
        let sharing = if bound { "bound to cores of its own" } else { "sharing the node's cores" };
        note_progress(&format!(
            "{PROGRESS_NOTE}mpi: {why}; when idle, {idle_why}; rank 0, one of {on_node} rank(s) on its node, {sharing}"
        ));
    }
    let cfg = &MpiConfig { progress, ..cfg.clone() };
    if cfg.progress == Progress::Inline && cfg.workers > 1 {
        return Err(RunError::Config("inline progress runs kernels on the progress thread: use workers = 1".into()));
    }
    let slots = if cfg.progress == Progress::Thread { Workers::slots(cfg.workers) } else { cfg.workers };
    let engine = Engine::new(Rank(rank as u32), Arc::clone(dag), strategy, slots);
    check_capabilities("mpi", CAPABILITIES, engine.strategy_name(), engine.needs())?;
    let p2p = mpi.world.duplicate();
    let coll = mpi.world.duplicate();
    let win_comm = mpi.world.duplicate();
    let mut window = match engine.window() {
        None => None,
        Some(spec) => {
            let w = Window::allocate(win_comm.as_raw(), spec.bytes as usize);
            let mut w = w.map_err(|e| RunError::Config(format!("allocating the one-sided window: {e}")))?;
            let opened = match spec.sync {
                WindowSync::Passive => w.lock_all(),
                WindowSync::Fence => w.fence(),
            };
            opened.map_err(|e| RunError::Config(format!("opening the one-sided window: {e}")))?;
            Some((w, spec.sync))
        }
    };
    let clock = Clock::synchronise(mpi);
    let runner = KernelRunner::new(dag, kernels, &clock);
    let report = std::thread::scope(|s| {
        let (done_tx, done_rx) = unbounded::<Finished>();
        let workers = (cfg.progress == Progress::Thread).then(|| {
            // A result wakes the progress loop if it sleeps (it parks when idle).
            let progress_thread = std::thread::current();
            let deliver = move |f: Finished| {
                let delivered = done_tx.send(f).is_ok();
                progress_thread.unpark();
                delivered
            };
            Workers::start(s, Rank(rank as u32), cfg.workers, runner, deliver)
        });
        let mut driver = Driver::new(engine, p2p.as_raw(), coll.as_raw(), size, cfg, &clock, workers, done_rx)
            .map_err(|e| RunError::Config(format!("rank {rank}: MPI driver: {e}")))?;
        driver.window = window.take();
        driver.core.idle = idle;
        let result = driver.run_loop(runner);
        window = driver.window.take();
        drop(driver); // closes the job channel, so the workers end before the scope does
        result
    })?;
    // Collective: every rank frees its window once its run is over, before the communicator goes.
    drop(window);
    drop(win_comm);
    gather(mpi, report)
}

/// Each rank's time on rank 0's timeline: ns since the common start.
struct Clock {
    base: Instant,
    /// The common start on this rank's local clock, ns.
    start: i64,
}

impl Clock {
    /// Ping-pongs always made per rank.
    const ROUNDS: usize = 16;
    /// A round trip short enough to stop at (offset error at most half of it).
    const GOOD_RTT_NS: i64 = 20_000;
    /// Ping-pongs at most per rank.
    const MAX_ROUNDS: usize = 1000;
    /// Time a rank spends measuring at most (beyond the first [`Clock::ROUNDS`]).
    const MAX_SYNC: Duration = Duration::from_millis(500);
    /// What a rank sends rank 0 when it has measured enough (no clock reads it: they
    /// count from 0).
    const DONE: i64 = -1;

    fn local(base: Instant) -> i64 {
        base.elapsed().as_nanos() as i64
    }

    /// Measures this rank's offset to rank 0 (the ping-pong with the shortest round
    /// trip wins: its error is at most half that round trip) and agrees on a common start
    /// just after a barrier. At least [`Clock::ROUNDS`] ping-pongs, more while the best
    /// round trip is above [`Clock::GOOD_RTT_NS`] (an oversubscribed or loaded host
    /// deschedules a rank for milliseconds), within [`Clock::MAX_ROUNDS`] and
    /// [`Clock::MAX_SYNC`].
    fn synchronise(mpi: &Mpi) -> Clock {
        let base = Instant::now();
        let world = &mpi.world;
        let mut offset = 0i64;
        if mpi.rank() == 0 {
            for r in 1..mpi.size() {
                let peer = world.process_at_rank(r as i32);
                loop {
                    let (ping, _) = peer.receive_with_tag::<i64>(TAG_CLOCK);
                    if ping == Clock::DONE {
                        break;
                    }
                    peer.send_with_tag(&Clock::local(base), TAG_CLOCK);
                }
            }
        } else {
            let root = world.process_at_rank(0);
            let mut best = i64::MAX;
            let mut rounds = 0;
            while rounds < Clock::ROUNDS
                || (best > Clock::GOOD_RTT_NS && rounds < Clock::MAX_ROUNDS && base.elapsed() < Clock::MAX_SYNC)
            {
                rounds += 1;
                let a = Clock::local(base);
                root.send_with_tag(&a, TAG_CLOCK);
                let (t0, _) = root.receive_with_tag::<i64>(TAG_CLOCK);
                let b = Clock::local(base);
                if b - a < best {
                    best = b - a;
                    offset = t0 - (a + b) / 2;
                }
            }
            root.send_with_tag(&Clock::DONE, TAG_CLOCK);
        }
        mpi.barrier();
        let mut start = Clock::local(base) + offset;
        ::mpi::collective::Root::broadcast_into(&world.process_at_rank(0), &mut start);
        Clock { base, start: start - offset }
    }

    /// ns since the common start, on rank 0's timeline.
    fn now(&self) -> u64 {
        (Clock::local(self.base) - self.start).max(0) as u64
    }
}

impl kernels::Clock for Clock {
    fn now(&self) -> u64 {
        Clock::now(self)
    }
}

/// Compares every rank's plan with every other rank's; a difference fails every rank
/// with the same message.
fn check_plans(mpi: &Mpi, dag: &Dag, strategy: &str, cfg: &MpiConfig) -> Result<(), RunError> {
    let name_hash =
        strategy.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
    let mine = [dag.fingerprint(), dag.ranks() as u64, name_hash, cfg.workers as u64];
    let mut all = vec![0u64; 4 * mpi.size()];
    ::mpi::collective::CommunicatorCollectives::all_gather_into(&mpi.world, &mine[..], &mut all[..]);
    let plans: Vec<&[u64]> = all.chunks(4).collect();
    let differ: Vec<usize> = (0..plans.len()).filter(|&r| plans[r] != plans[0]).collect();
    if differ.is_empty() {
        return Ok(());
    }
    let what = ["DAG fingerprint", "DAG rank count", "strategy", "workers"];
    let fields: Vec<&str> =
        (0..4).filter(|&i| differ.iter().any(|&r| plans[r][i] != plans[0][i])).map(|i| what[i]).collect();
    Err(RunError::Config(format!(
        "ranks {differ:?} built a different plan from rank 0 ({} differ: rank 0 has DAG fingerprint {:#018x}, rank {} \
         has {:#018x}); every rank must run the same binary with the same workload, strategy, parameters and seed",
        fields.join(", "),
        plans[0][0],
        differ[0],
        plans[differ[0]][0]
    )))
}

/// Hands out tags for separate payloads, cycling through `FIRST_DATA_TAG..=MPI_TAG_UB`
/// per destination. A tag is reused only after the whole range went by; that is safe
/// even while an older message with it is in flight, because MPI keeps messages of
/// one source and tag in order and receivers post their receives in header order.
pub struct Tags {
    ub: i32,
    next: Vec<i32>,
}

impl Tags {
    /// An allocator for `ranks` destinations with `ub` the largest tag allowed.
    ///
    /// ```
    /// use dagwire_runtime::drivers::mpi::Tags;
    /// let mut t = Tags::new(2, 17);
    /// assert_eq!((t.next(1), t.next(1), t.next(1), t.next(0)), (16, 17, 16, 16));
    /// ```
    pub fn new(ranks: usize, ub: i32) -> Tags {
        assert!(ub > FIRST_DATA_TAG, "MPI_TAG_UB {ub} leaves no data tags (the standard guarantees 32767)");
        Tags { ub, next: vec![FIRST_DATA_TAG; ranks] }
    }

    /// The next tag for a payload to `to`.
    pub fn next(&mut self, to: usize) -> i32 {
        let tag = self.next[to];
        self.next[to] = if tag >= self.ub { FIRST_DATA_TAG } else { tag + 1 };
        tag
    }
}

/// A message from one source on its way to the engine, in arrival order.
enum Arriving {
    Ready(Message),
    Payload(RecvOp, Message),
}

/// A collective piece whose header arrived, waiting for the payloads that travel apart
/// (those above [`INLINE_LIMIT`]): header layout `[n: u32] n x [slot: u32, len: u64,
/// tag: i32]`, then the [`Piece::encode`]d piece with those payloads empty, where `slot`
/// counts the piece's payloads in [`payload_slots`] order.
struct ArrivingPiece {
    piece: Piece,
    apart: Vec<(usize, RecvOp, Option<Payload>)>,
}

impl ArrivingPiece {
    /// Reads a header from `from` and posts the receives of its payloads on `coll`.
    fn start(coll: RawComm, from: i32, bytes: &[u8]) -> Result<ArrivingPiece, String> {
        let take = |at: usize, n: usize| bytes.get(at..at + n).ok_or_else(|| "a truncated piece header".to_string());
        let n = u32::from_le_bytes(take(0, 4)?.try_into().expect("4 bytes")) as usize;
        let mut apart = Vec::with_capacity(n.min(64));
        let mut at = 4;
        for _ in 0..n {
            let slot = u32::from_le_bytes(take(at, 4)?.try_into().expect("4 bytes")) as usize;
            let len = u64::from_le_bytes(take(at + 4, 8)?.try_into().expect("8 bytes"));
            let tag = i32::from_le_bytes(take(at + 12, 4)?.try_into().expect("4 bytes"));
            at += 16;
            let len = usize::try_from(len).map_err(|_| format!("a payload of {len} bytes"))?;
            apart.push((slot, RecvOp::start(coll, from, tag, len)?, None));
        }
        let piece = Piece::decode(&bytes[at..])?;
        Ok(ArrivingPiece { piece, apart })
    }

    /// True once every payload arrived.
    fn test(&mut self) -> Result<bool, String> {
        for (_, op, got) in &mut self.apart {
            if got.is_none() {
                *got = op.test()?;
            }
        }
        Ok(self.apart.iter().all(|(_, _, got)| got.is_some()))
    }

    /// The whole piece (after [`ArrivingPiece::test`] said true).
    fn into_piece(mut self) -> Piece {
        let mut slots = payload_slots(&mut self.piece.body);
        for (slot, _, got) in self.apart {
            if let (Some(place), Some(payload)) = (slots.get_mut(slot), got) {
                **place = payload;
            }
        }
        self.piece
    }
}

/// Every payload a piece body carries, in a fixed order (its messages', its blocks'
/// messages', its vector).
fn payload_slots(body: &mut Body) -> Vec<&mut Payload> {
    let mut slots = Vec::new();
    match body {
        Body::Header | Body::Segment { messages: None, .. } => {}
        Body::Messages(messages) | Body::Segment { messages: Some(messages), .. } => {
            slots.extend(messages.iter_mut().filter_map(|m| m.payload.as_mut()));
        }
        Body::Blocks(blocks) => {
            for b in blocks {
                slots.extend(b.messages.iter_mut().filter_map(|m| m.payload.as_mut()));
            }
        }
        Body::Values(values) => slots.push(values),
    }
    slots
}

/// One rank's progress loop and everything in flight.
struct Driver<'a> {
    /// The engine, the kernel workers and the stall timeout (the loop's share).
    core: RankCore,
    comm: RawComm,
    coll: RawComm,
    rank: Rank,
    size: usize,
    cfg: &'a MpiConfig,
    clock: &'a Clock,
    tags: Tags,
    /// Receives posted ahead for engine messages (headers and inline payloads).
    mailbox: Mailbox,
    sends: Vec<SendOp>,
    arriving: Vec<VecDeque<Arriving>>,
    /// MPI's native collectives (all-to-all-v, all-reduce, fences) not started yet, in
    /// join order, and the one in flight.
    world_queue: VecDeque<CollectiveJoin>,
    world_op: Option<(u64, WorldOp)>,
    /// The collectives run by the runtime's algorithms (pieces over `TAG_PIECE`).
    collectives: Collectives,
    /// Fences among them: each ends with `MPI_Win_fence` when there is a window.
    fences: Vec<u64>,
    /// Pieces whose header arrived, waiting for payloads that travel apart.
    pieces_arriving: Vec<ArrivingPiece>,
    /// Tags for those payloads (on the collectives' communicator).
    piece_tags: Tags,
    /// The run's deliberate fault, counted over this rank's data transfers.
    faults: Injector,
    /// Whether the strategy may join a collective that runs as pieces (else the loop
    /// does not probe for them).
    pieces: bool,
    /// The one-sided window and its synchronisation, when the strategy declared one.
    window: Option<(Window, WindowSync)>,
    /// Remote one-sided operations issued and not yet complete: (id, get ticket).
    rma_pending: Vec<(u64, Option<GetId>)>,
}

/// A native MPI collective of every rank in flight.
enum WorldOp {
    AllToAllV(AllToAllV),
    /// The barrier before a window fence (the whole fence without a window).
    Fence(IBarrier),
    /// An all-reduce, and the header of the rank's vector message (to hand the sum
    /// back in, with the time it joined as its `sent_ns`).
    AllReduce(AllReduce, Message),
}

impl<'a> Driver<'a> {
    #[allow(clippy::too_many_arguments)]
    fn new(
        engine: Engine,
        comm: RawComm,
        coll: RawComm,
        size: usize,
        cfg: &'a MpiConfig,
        clock: &'a Clock,
        workers: Option<Workers>,
        done: Receiver<Finished>,
    ) -> Result<Self, String> {
        let rank = engine.rank();
        let native = |c: &Capability| {
            cfg.collectives == CollectivesMode::Native
                && matches!(c, Capability::AllToAllV | Capability::AllReduce | Capability::OneSidedFence)
        };
        let p2p_only = |c: &Capability| matches!(c, Capability::PointToPoint | Capability::OneSidedPassive);
        let pieces = engine.needs().iter().any(|c| !p2p_only(c) && !native(c));
        let mailbox = Mailbox::post(comm, TAG_MSG, MAILBOX_DEPTH, wire::HEADER + INLINE_LIMIT)?;
        Ok(Driver {
            pieces,
            collectives: Collectives::new(rank, size, Segmenting::Whole),
            fences: Vec::new(),
            pieces_arriving: Vec::new(),
            piece_tags: Tags::new(size, raw::tag_ub(coll)),
            core: RankCore { engine, workers, done, timeout: cfg.timeout, idle: IdleWait::Backoff },
            comm,
            coll,
            rank,
            size,
            cfg,
            clock,
            tags: Tags::new(size, raw::tag_ub(comm)),
            mailbox,
            sends: Vec::new(),
            arriving: (0..size).map(|_| VecDeque::new()).collect(),
            world_queue: VecDeque::new(),
            world_op: None,
            faults: Injector::new(cfg.fault),
            window: None,
            rma_pending: Vec::new(),
        })
    }

    fn protocol(&self, reason: String) -> RunError {
        RunError::Config(format!("rank {}: MPI driver: {reason}", self.rank))
    }

    /// What this driver has in flight, for stall diagnostics.
    fn flight(&self) -> String {
        let arriving: usize = self.arriving.iter().map(VecDeque::len).sum();
        format!(
            "; MPI: {} sends in flight, {arriving} receives in flight, {} collective pieces arriving, native \
             collective {} in flight and {} queued{}",
            self.sends.len(),
            self.pieces_arriving.len(),
            self.world_op.as_ref().map_or("none".to_string(), |(id, _)| id.to_string()),
            self.world_queue.len(),
            if self.collectives.is_idle() { String::new() } else { format!("; {}", self.collectives.summary()) }
        )
    }

    /// Everything MPI may have finished since the last poll.
    fn poll_mpi(&mut self) -> Result<bool, String> {
        let mut any = false;
        self.sends.retain_mut(|s| {
            let done = s.test();
            any |= done;
            !done
        });
        let (comm, arriving) = (self.comm, &mut self.arriving);
        while let Some(got) = self.mailbox.try_next(|from, bytes| -> Result<(), String> {
            let h = wire::decode(bytes)?;
            let item = match h.data_tag {
                Some(tag) => Arriving::Payload(RecvOp::start(comm, from, tag, h.len as usize)?, h.msg),
                None => Arriving::Ready(h.msg),
            };
            arriving[from as usize].push_back(item);
            Ok(())
        }) {
            got?;
            any = true;
        }
        for from in 0..self.size {
            while let Some(front) = self.arriving[from].front_mut() {
                // Most passes find every queue empty; this loop then costs one check per rank.
                let msg = match front {
                    Arriving::Ready(_) => match self.arriving[from].pop_front() {
                        Some(Arriving::Ready(m)) => m,
                        _ => unreachable!("front was ready"),
                    },
                    Arriving::Payload(op, _) => match op.test()? {
                        Some(payload) => match self.arriving[from].pop_front() {
                            Some(Arriving::Payload(_, mut m)) => {
                                m.payload = Some(payload);
                                m
                            }
                            _ => unreachable!("front was a payload"),
                        },
                        None => break,
                    },
                };
                any = true;
                set_handling(Handling::Message { from: Rank(from as u32), op: msg.op, chunk: msg.chunk });
                self.core.engine.handle_message(self.clock.now(), Rank(from as u32), msg);
            }
        }
        while self.pieces
            && let Some((from, bytes)) = raw::try_receive(self.comm, TAG_PIECE)
        {
            any = true;
            let arriving = ArrivingPiece::start(self.coll, from, &bytes)
                .map_err(|e| format!("a collective piece from rank {from}: {e}"))?;
            self.pieces_arriving.push(arriving);
        }
        let mut at = 0;
        while at < self.pieces_arriving.len() {
            if !self.pieces_arriving[at].test()? {
                at += 1;
                continue;
            }
            any = true;
            let piece = self.pieces_arriving.swap_remove(at).into_piece();
            set_handling(Handling::Collective { id: piece.id, from: Some(piece.src) });
            self.collectives.handle_piece(self.clock.now(), piece);
            self.collective_progress()?;
        }
        if let Some((id, WorldOp::Fence(barrier))) = self.world_op.as_mut()
            && barrier.test()
        {
            let id = *id;
            self.world_op = None;
            any = true;
            set_handling(Handling::Collective { id, from: None });
            self.window_fence()?;
            self.core.engine.handle_collective_done(self.clock.now(), id, Vec::new());
        }
        if let Some((id, WorldOp::AllReduce(op, _))) = self.world_op.as_mut()
            && let Some(sum) = op.test()
        {
            let id = *id;
            let Some((_, WorldOp::AllReduce(_, mut msg))) = self.world_op.take() else { unreachable!("matched") };
            any = true;
            set_handling(Handling::Collective { id, from: None });
            let now = self.clock.now();
            let sent_ns = msg.sent_ns;
            msg.payload = Some(sum);
            let result = Contribution { from: self.rank, sent_ns, recv_ns: now, messages: vec![msg] };
            self.core.engine.handle_collective_done(now, id, vec![result]);
        }
        if let Some((id, WorldOp::AllToAllV(op))) = self.world_op.as_mut()
            && let Some(got) = op.test()?
        {
            let id = *id;
            self.world_op = None;
            any = true;
            set_handling(Handling::Collective { id, from: None });
            let now = self.clock.now();
            let mut received = Vec::with_capacity(self.size - 1);
            // Each part is decoded from its slice of the receive buffer (payloads copied
            // once, into their own buffers), and must hold exactly its message list.
            for r in (0..self.size).filter(|&r| r != self.rank.index()) {
                let mut rd = wire::Reader::new(got.part(r));
                let sent_ns = rd.u64()?;
                let messages =
                    wire::get_last_messages(&mut rd).map_err(|e| format!("the all-to-all part from rank {r}: {e}"))?;
                received.push(Contribution { from: Rank(r as u32), sent_ns, recv_ns: now, messages });
            }
            self.core.engine.handle_collective_done(now, id, received);
        }
        if self.world_op.is_none()
            && let Some(join) = self.world_queue.pop_front()
        {
            any = true;
            match join.kind {
                CollectiveKind::Fence => self.world_op = Some((join.id, WorldOp::Fence(IBarrier::start(self.coll)))),
                CollectiveKind::AllReduce { dtype, .. } => self.start_all_reduce(join, dtype)?,
                _ => self.start_all_to_all(join)?,
            }
        }
        Ok(any)
    }

    /// Flushes passive one-sided operations issued and completes them.
    fn flush_passive(&mut self) -> Result<(), String> {
        if matches!(self.window, Some((_, WindowSync::Passive))) && !self.rma_pending.is_empty() {
            let (w, _) = self.window.as_mut().expect("matched");
            w.flush_all().map_err(|e| e.to_string())?;
            self.complete_rma()?;
        }
        Ok(())
    }

    /// Issues a one-sided operation: a local copy on this rank's own window (complete at
    /// once), otherwise an MPI put or get completed by the next flush or fence.
    fn one_sided(&mut self, op: OneSided) -> Result<(), String> {
        let now = self.clock.now();
        if matches!(op.access, Access::Expose(_) | Access::Read { .. } | Access::Withdraw(_)) {
            return Err("exposed memory, which the MPI driver does not offer (refused before the run)".into());
        }
        let (w, _) = self.window.as_mut().ok_or("a one-sided operation, but the strategy declared no window")?;
        let offset = op.offset as usize;
        if op.target == self.rank {
            let result = match op.access {
                Access::Put(data) => w.write_local(offset, data.as_bytes()).map(|()| None),
                Access::Get { len } => {
                    let mut buf = Payload::zeroed(len as usize);
                    w.read_local(offset, buf.as_bytes_mut()).map(|()| Some(buf))
                }
                _ => unreachable!("refused above"),
            };
            match result {
                Ok(data) => self.core.engine.handle_one_sided_done(now, op.id, data),
                Err(e) => self.core.engine.handle_one_sided_failed(op.id, format!("on {}'s window: {e}", op.target)),
            }
            return Ok(());
        }
        let issued = match op.access {
            Access::Put(data) => {
                let mut bytes = Payload::clone(&data);
                self.faults.transfer(&mut bytes);
                let (w, _) = self.window.as_mut().expect("checked");
                w.put(op.target.index(), offset, bytes.as_bytes().to_vec()).map(|()| None)
            }
            Access::Get { len } => w.get(op.target.index(), offset, len as usize).map(Some),
            _ => unreachable!("refused above"),
        };
        match issued {
            Ok(get) => self.rma_pending.push((op.id, get)),
            Err(e) => self.core.engine.handle_one_sided_failed(op.id, format!("on {}'s window: {e}", op.target)),
        }
        Ok(())
    }

    /// Reports every issued one-sided operation complete (after a flush or a fence).
    fn complete_rma(&mut self) -> Result<(), String> {
        let now = self.clock.now();
        for (id, get) in std::mem::take(&mut self.rma_pending) {
            let data = match get {
                None => None,
                Some(ticket) => {
                    let (w, _) = self.window.as_mut().expect("operations imply a window");
                    let bytes = w.take_get(ticket).ok_or("a get was not complete after a flush or fence")?;
                    let mut data = Payload::from_bytes(&bytes);
                    self.faults.transfer(&mut data);
                    Some(data)
                }
            };
            self.core.engine.handle_one_sided_done(now, id, data);
        }
        Ok(())
    }

    fn send(&mut self, to: Rank, mut msg: Message) -> Result<(), String> {
        self.maybe_corrupt(&mut msg);
        let dest = to.0 as i32;
        match msg.payload.take() {
            Some(payload) if payload.len() > INLINE_LIMIT => {
                let tag = self.tags.next(to.index());
                let mut header = Vec::with_capacity(wire::HEADER);
                msg.payload = Some(Payload::default());
                wire::put_header(&mut header, &msg, payload.len() as u64, Some(tag));
                self.sends.push(SendOp::start(self.comm, dest, TAG_MSG, SendBuf::Bytes(header))?);
                self.sends.push(SendOp::start(self.comm, dest, tag, SendBuf::Payload(payload))?);
            }
            payload => {
                msg.payload = payload;
                self.sends.push(SendOp::start(self.comm, dest, TAG_MSG, SendBuf::Bytes(wire::encode_inline(&msg)))?);
            }
        }
        Ok(())
    }

    fn maybe_corrupt(&mut self, msg: &mut Message) {
        if let Some(payload) = msg.payload.as_mut() {
            self.faults.transfer(payload);
        }
    }

    fn join(&mut self, mut join: CollectiveJoin) -> Result<(), String> {
        for m in join.sends.iter_mut().flat_map(|(_, m)| m.iter_mut()) {
            self.maybe_corrupt(m);
        }
        let native = self.cfg.collectives == CollectivesMode::Native
            && matches!(
                join.kind,
                CollectiveKind::AllToAllV { .. } | CollectiveKind::AllReduce { .. } | CollectiveKind::Fence
            );
        if native {
            self.world_queue.push_back(join);
            return Ok(());
        }
        if join.kind == CollectiveKind::Fence {
            self.fences.push(join.id);
        }
        set_handling(Handling::Collective { id: join.id, from: None });
        self.collectives.join(self.clock.now(), join);
        self.collective_progress()
    }

    /// Hands the pieces the runtime's collectives have to send to MPI, then reports the
    /// collectives that completed to the engine (a fence after its window fence).
    fn collective_progress(&mut self) -> Result<(), String> {
        if let Some(e) = self.collectives.error() {
            return Err(format!("collective: {e}"));
        }
        while let Some(mut piece) = self.collectives.poll_send() {
            // Payloads above the inline limit travel apart, from their own buffers, on
            // data tags of the collectives' communicator; the header lists them.
            let dst = piece.dst.0 as i32;
            let mut apart = Vec::new();
            for (slot, p) in payload_slots(&mut piece.body).into_iter().enumerate() {
                if p.len() > INLINE_LIMIT {
                    apart.push((slot as u32, std::mem::take(p)));
                }
            }
            let mut bytes = Vec::with_capacity(64 + if apart.is_empty() { piece.bytes as usize } else { 0 });
            bytes.extend_from_slice(&(apart.len() as u32).to_le_bytes());
            let mut tags = Vec::with_capacity(apart.len());
            for (slot, p) in &apart {
                let tag = self.piece_tags.next(piece.dst.index());
                bytes.extend_from_slice(&slot.to_le_bytes());
                bytes.extend_from_slice(&(p.len() as u64).to_le_bytes());
                bytes.extend_from_slice(&tag.to_le_bytes());
                tags.push(tag);
            }
            piece.encode(&mut bytes);
            self.sends.push(SendOp::start(self.comm, dst, TAG_PIECE, SendBuf::Bytes(bytes))?);
            for ((_, p), tag) in apart.into_iter().zip(tags) {
                self.sends.push(SendOp::start(self.coll, dst, tag, SendBuf::Payload(p))?);
            }
        }
        while let Some((id, received)) = self.collectives.poll_done() {
            if let Some(at) = self.fences.iter().position(|&f| f == id) {
                self.fences.swap_remove(at);
                self.window_fence()?;
            }
            self.core.engine.handle_collective_done(self.clock.now(), id, received);
        }
        Ok(())
    }

    /// The window's part of a fence every rank has reached: `MPI_Win_fence` (it returns
    /// once every rank calls it, which they all do now), completing this rank's
    /// one-sided operations. Nothing without a window.
    fn window_fence(&mut self) -> Result<(), String> {
        if let Some((w, _)) = self.window.as_mut() {
            w.fence().map_err(|e| e.to_string())?;
            self.complete_rma()?;
        }
        Ok(())
    }

    fn start_all_reduce(&mut self, mut join: CollectiveJoin, dtype: crate::collective::DType) -> Result<(), String> {
        // The engine checked the join: one entry, this rank's, with one data message.
        let mut msg =
            join.sends.pop().and_then(|(_, mut m)| m.pop()).ok_or("an all-reduce joined without its vector")?;
        let data = msg.payload.take().ok_or("an all-reduce joined without its vector")?;
        self.world_op = Some((join.id, WorldOp::AllReduce(AllReduce::start(self.coll, data, dtype)?, msg)));
        Ok(())
    }

    fn start_all_to_all(&mut self, join: CollectiveJoin) -> Result<(), String> {
        // Each destination's part (the send time, then its message list) is packed in
        // rank order straight into one buffer sized up front, which MPI sends from.
        let now = self.clock.now();
        let mut lists: Vec<Option<&[Message]>> = vec![None; self.size];
        for (to, messages) in &join.sends {
            lists[to.index()] = Some(messages);
        }
        let counts: Vec<usize> = lists.iter().map(|l| l.map_or(0, |m| 8 + wire::messages_len(m))).collect();
        let mut send = Vec::with_capacity(counts.iter().sum());
        for messages in lists.iter().flatten() {
            send.extend_from_slice(&now.to_le_bytes());
            wire::put_messages(&mut send, messages);
        }
        self.world_op = Some((join.id, WorldOp::AllToAllV(AllToAllV::start(self.coll, send, &counts)?)));
        Ok(())
    }
}

impl RankLoop for Driver<'_> {
    fn core(&mut self) -> &mut RankCore {
        &mut self.core
    }

    fn now(&self) -> u64 {
        self.clock.now()
    }

    fn poll_network(&mut self) -> Result<bool, RunError> {
        self.poll_mpi().map_err(|e| self.protocol(e))
    }

    fn execute(&mut self, action: Action, now: u64) -> Result<(), RunError> {
        match action {
            // No device here (see `space`): a copy within host memory is done at once.
            Action::Copy(copy) => {
                self.core.engine.handle_copy_done(now, copy.id);
                Ok(())
            }
            Action::Send(out) => self.send(out.to, out.msg),
            Action::Collective(join) => self.join(join),
            Action::OneSided(op) => self.one_sided(op),
            Action::Run(_) => unreachable!("poll_communication hands out no tasks"),
        }
        .map_err(|e| self.protocol(e))
    }

    fn after_actions(&mut self) -> Result<(), RunError> {
        self.flush_passive().map_err(|e| self.protocol(e))?;
        self.mailbox.rearm();
        Ok(())
    }

    fn drained(&self) -> bool {
        self.sends.is_empty()
    }

    fn in_flight(&self) -> String {
        self.flight()
    }
}

/// Sends every rank's report to rank 0, which merges them.
fn gather(mpi: &Mpi, (trace, results, end): wire::Report) -> Result<Option<RunOutcome>, RunError> {
    let world = &mpi.world;
    if mpi.rank() != 0 {
        let bytes = wire::encode_report(&trace, &results, end);
        raw::count(bytes.len(), "a rank's trace and results").map_err(RunError::Config)?;
        world.process_at_rank(0).send_with_tag(&bytes[..], TAG_GATHER);
        return Ok(None);
    }
    let mut parts: Vec<Trace> = vec![trace];
    let mut all: BTreeMap<ChunkId, Payload> = results.into_iter().collect();
    let mut makespan_ns = end;
    for r in 1..mpi.size() {
        let (bytes, _) = world.process_at_rank(r as i32).receive_vec_with_tag::<u8>(TAG_GATHER);
        let (t, res, end) =
            wire::decode_report(&bytes).map_err(|e| RunError::Config(format!("the report of rank {r}: {e}")))?;
        parts.push(t);
        all.extend(res);
        makespan_ns = makespan_ns.max(end);
    }
    Ok(Some(RunOutcome { trace: Trace::merge(parts), results: all, makespan_ns }))
}
