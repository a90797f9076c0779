//! **rma** (one-sided windows, as with MPI RMA): every rank exposes a window; chunks
//! move by one-sided `get` (the reader pulls) or `put` (the producer pushes).
//!
//! # Windows
//!
//! Layouts come from the DAG alone ([`Layout`]); every rank's is laid out once per run
//! ([`RunPlan`], with the fence schedule's epochs) and shared read-only by every rank's
//! instance, so a rank looks any peer's window up instead of computing it:
//! - `mode = "get"`: a rank's window holds the chunks it produces that other ranks
//!   read ([`Layout::exposed`]); the producer stores each there (a put on its own
//!   window, a local copy) and readers get it.
//! - `mode = "put"`: a rank's window holds the chunks it reads that other ranks
//!   produce ([`Layout::received`]); the producer puts each straight into every
//!   reader's window, and the reader takes it out with a get on its own window.
//!
//! # Synchronisation
//!
//! - `sync = "passive"` (lock_all + flush): the producer tells each reader with a small
//!   `rma-notify` control message once the chunk is readable (get: stored in its own
//!   window; put: the put completed). The reader then gets it (get mode) or reads its
//!   own window (put mode). Chunks of at most `inline_limit` bytes skip the window and
//!   travel inside the notification (`rma-inline`, one data message). At most
//!   `max_outstanding` remote operations are in flight per rank; later ones queue.
//! - `sync = "fence"`: no notification at all. The DAG is cut into epochs as by the
//!   batched strategy ([`crate::batched::epochs`], parameters `epochs`, `epoch_tasks`);
//!   a task's remote inputs come from strictly earlier epochs. Only epochs that produce
//!   a chunk read on another rank get fences. Every rank joins every fence, in order,
//!   each once the previous one completed here. Put mode: fence `e`
//!   once the local producers of epoch `e`'s remotely read chunks finished (their puts
//!   issued); after it, the rank reads epoch `e`'s chunks from its window. Get mode:
//!   two fences per epoch — fence `2e` as above (the producers stored their chunks),
//!   after which the rank gets epoch `e`'s chunks it reads, then at once fence `2e+1`,
//!   which completes those gets. No rank ever reads before the fence that closed the
//!   producing epoch. Deadlock-free by the batched strategy's induction: fence `k`
//!   waits only for tasks whose remote inputs arrived by fence `k - 1`.
//!
//! # Chunks sized at run time
//!
//! A chunk [sized at run time](Dag::is_sized_at_run_time) gets a window slot of its
//! bound plus an 8-byte length. With `sync = "passive"` only its real bytes move: the
//! notification is `rma-notify-sized`, whose `arg` is the real length (the offset comes
//! from the plan). With fences no message tells the reader the size, so the slot is
//! moved whole, framed ([`frame`]): the bytes, zeros up to the bound, then the length;
//! the reader strips the frame. Fence mode therefore moves the bound for such chunks.
//!
//! Phases: the engine records `Posted`; `Started` when the remote put (producer) or
//! get (reader) is issued, or the inline notification sent; `Wire` when a put
//! completed, when a get is issued (a one-sided read needs nothing more of the producer)
//! or with the inline notification; `Completed` on delivery. The engine records each remote put or get as one
//! data message (`rma-put`, `rma-get`); notifications are control messages.

use crate::StrategyInfo;
use crate::batched::{Epochs, epochs};
use dagwire_runtime::one_sided::{WindowSpec, WindowSync};
use dagwire_runtime::trace::Phase;
use dagwire_runtime::{
    Capability, ChunkId, CollectiveKind, Contribution, Dag, Message, ParamSpec, Params, Payload, Rank, Strategy,
    StrategyCtx, TaskId,
};
use std::collections::{BTreeMap, VecDeque};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Registration.
pub const INFO: StrategyInfo = StrategyInfo {
    name: "rma",
    summary: "every rank exposes a window; readers get chunks (or producers put them) one-sided, synchronised by \
              lock_all+flush with a small notification, or by fence epochs",
    params,
    needs: |params| Config::from_params(params).needs(),
    plan: |params, dag| {
        let plan = Arc::new(RunPlan::new(dag, Config::from_params(params)));
        Box::new(move |rank, _| Box::new(Rma::new(&plan, rank)))
    },
};

/// The parameters a sweep may set (`rma.mode`, `rma.sync`, `rma.inline_limit`,
/// `rma.max_outstanding`, `rma.epochs`, `rma.epoch_tasks`).
///
/// ```
/// use dagwire_runtime::Params;
/// let p = Params::resolve(&dagwire_strategies::rma::params(), Default::default()).unwrap();
/// assert_eq!((p.str("mode"), p.str("sync"), p.int("inline_limit"), p.int("max_outstanding")), ("get", "passive", 0, 0));
/// ```
pub fn params() -> Vec<ParamSpec> {
    vec![
        ParamSpec::choice(
            "mode",
            &["get", "put"],
            "get",
            "get: readers pull chunks from the producer's window; put: producers push them into readers' windows",
        ),
        ParamSpec::choice(
            "sync",
            &["passive", "fence"],
            "passive",
            "passive: lock_all + flush per operation, with a notification message per transfer; fence: collective \
             fence epochs, no notifications",
        ),
        ParamSpec::int(
            "inline_limit",
            0,
            u32::MAX as i64,
            0,
            "with sync = passive: chunks of at most this many bytes travel inside the notification (as PaRSEC \
             piggybacks short data on its activation message); 0 = never",
        ),
        ParamSpec::int(
            "max_outstanding",
            0,
            u32::MAX as i64,
            0,
            "with sync = passive: most remote puts/gets one rank has in flight; later ones wait; 0 = no cap",
        ),
        ParamSpec::choice(
            "epochs",
            &["level", "tasks"],
            "level",
            "with sync = fence: how the DAG is cut into fence epochs (as the batched strategy's `epochs`)",
        ),
        ParamSpec::int(
            "epoch_tasks",
            1,
            u32::MAX as i64,
            crate::batched::DEFAULT_EPOCH_TASKS as i64,
            "with sync = fence and epochs = tasks: most tasks per epoch",
        ),
    ]
}

/// Who moves the data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The reader pulls from the producer's window.
    Get,
    /// The producer pushes into the reader's window.
    Put,
}

/// The rma strategy's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Get or put.
    pub mode: Mode,
    /// Passive target or fence epochs.
    pub sync: WindowSync,
    /// Passive only: chunks of at most this many bytes go inside the notification (0: never).
    pub inline_limit: u64,
    /// Passive only: cap on remote operations in flight per rank.
    pub max_outstanding: Option<NonZeroU32>,
    /// Fence only: how the DAG is cut into epochs.
    pub epochs: Epochs,
}

impl Config {
    /// The settings for checked parameters.
    pub fn from_params(p: &Params) -> Self {
        let mode = if p.str("mode") == "put" { Mode::Put } else { Mode::Get };
        let sync = if p.str("sync") == "fence" { WindowSync::Fence } else { WindowSync::Passive };
        let epochs = match p.str("epochs") {
            "tasks" => Epochs::Tasks(NonZeroU32::new(p.int("epoch_tasks") as u32).expect("checked: at least 1")),
            _ => Epochs::Level,
        };
        Config {
            mode,
            sync,
            inline_limit: p.int("inline_limit") as u64,
            max_outstanding: NonZeroU32::new(p.int("max_outstanding") as u32),
            epochs,
        }
    }

    /// What a driver must offer.
    pub fn needs(&self) -> &'static [Capability] {
        match self.sync {
            WindowSync::Passive => &[Capability::PointToPoint, Capability::OneSidedPassive],
            WindowSync::Fence => &[Capability::OneSidedFence],
        }
    }
}

/// Where each chunk sits in one rank's window: chunks in id order, each at an 8-byte
/// aligned offset.
///
/// ```
/// use dagwire_runtime::{DagBuilder, KernelId, Rank, TaskSpec};
/// use dagwire_strategies::rma::Layout;
/// let mut b = DagBuilder::new(2);
/// let a = b.add(TaskSpec::new(KernelId(0), Rank(0)).outputs(&[12, 8]));
/// b.add(TaskSpec::new(KernelId(0), Rank(1)).inputs(&[a.output(0), a.output(1)]).outputs(&[8]));
/// let dag = b.finish();
/// let exposed = Layout::exposed(&dag, Rank(0));
/// assert_eq!((exposed.offset(a.output(0)), exposed.offset(a.output(1)), exposed.bytes()), (Some(0), Some(16), 24));
/// assert_eq!(Layout::received(&dag, Rank(1)).bytes(), 24);
/// assert_eq!(Layout::exposed(&dag, Rank(1)).bytes(), 0);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    /// (chunk, offset), sorted by chunk.
    chunks: Vec<(ChunkId, u64)>,
    bytes: u64,
}

impl Layout {
    /// The window of `rank` in get mode: the chunks it produces that other ranks read.
    pub fn exposed(dag: &Dag, rank: Rank) -> Layout {
        let chunks =
            dag.tasks_of(rank).iter().flat_map(|&t| dag.task(t).outputs()).filter(|&c| dag.is_read_remotely(c));
        Layout::of(dag, chunks.collect())
    }

    /// The window of `rank` in put mode: the chunks it reads that other ranks produce.
    pub fn received(dag: &Dag, rank: Rank) -> Layout {
        let inputs = dag.tasks_of(rank).iter().flat_map(|&t| dag.inputs(t)).copied();
        Layout::of(dag, inputs.filter(|&c| dag.chunk_owner(c) != rank).collect())
    }

    /// Every rank's window in `mode` ([`Layout::exposed`] or [`Layout::received`]), by
    /// rank, in one pass over the chunks.
    ///
    /// ```
    /// use dagwire_runtime::{DagBuilder, KernelId, Rank, TaskSpec};
    /// use dagwire_strategies::rma::{Layout, Mode};
    /// let mut b = DagBuilder::new(3);
    /// let a = b.add(TaskSpec::new(KernelId(0), Rank(0)).outputs(&[12, 8]));
    /// b.add(TaskSpec::new(KernelId(0), Rank(1)).inputs(&[a.output(0), a.output(1)]).outputs(&[8]));
    /// b.add(TaskSpec::new(KernelId(0), Rank(2)).inputs(&[a.output(1)]).outputs(&[8]));
    /// let dag = b.finish();
    /// for (mode, one) in [(Mode::Get, Layout::exposed as fn(_, _) -> _), (Mode::Put, Layout::received)] {
    ///     assert_eq!(Layout::every_rank(&dag, mode), (0..3).map(|r| one(&dag, Rank(r))).collect::<Vec<_>>());
    /// }
    /// ```
    pub fn every_rank(dag: &Dag, mode: Mode) -> Vec<Layout> {
        let mut chunks: Vec<Vec<ChunkId>> = vec![Vec::new(); dag.ranks()];
        let mut readers = Vec::new();
        for c in (0..dag.chunk_count() as u32).map(ChunkId) {
            match mode {
                Mode::Get if dag.is_read_remotely(c) => chunks[dag.chunk_owner(c).index()].push(c),
                Mode::Get => {}
                Mode::Put => {
                    dag.remote_readers_into(c, &mut readers);
                    readers.iter().for_each(|r| chunks[r.index()].push(c));
                }
            }
        }
        chunks.into_iter().map(|c| Layout::of(dag, c)).collect()
    }

    fn of(dag: &Dag, mut chunks: Vec<ChunkId>) -> Layout {
        chunks.sort_unstable();
        chunks.dedup();
        let mut bytes = 0;
        let chunks = chunks
            .into_iter()
            .map(|c| {
                let at = bytes;
                bytes += slot_bytes(dag, c);
                (c, at)
            })
            .collect();
        Layout { chunks, bytes }
    }

    /// Where `chunk` sits, if this window holds it.
    pub fn offset(&self, chunk: ChunkId) -> Option<u64> {
        self.chunks.binary_search_by_key(&chunk, |&(c, _)| c).ok().map(|i| self.chunks[i].1)
    }

    /// The window's size.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

/// Operation code of a notification: the chunk is readable; `arg` is its offset in the
/// window to read (the producer's in get mode, the reader's own in put mode).
const NOTIFY: u8 = 1;
/// Operation code of a notification that carries the chunk itself.
const INLINE: u8 = 2;
/// Operation code of a notification about a chunk sized at run time: `arg` is its real
/// length; the offset comes from the plan.
const NOTIFY_SIZED: u8 = 3;

/// Bytes of `chunk`'s window slot: its size rounded up to 8, plus an 8-byte length for a
/// chunk sized at run time (see the [module docs](self)).
fn slot_bytes(dag: &Dag, chunk: ChunkId) -> u64 {
    let framing = if dag.is_sized_at_run_time(chunk) { 8 } else { 0 };
    dag.chunk(chunk).bytes.next_multiple_of(8) + framing
}

/// `data` (a chunk sized at run time, at most `bound` bytes) framed to fill its slot: the
/// bytes, zeros up to `bound` rounded to 8, then the length as a little-endian `u64`. A
/// phantom (simulated) payload stays a phantom of the framed size.
///
/// ```
/// use dagwire_runtime::Payload;
/// use dagwire_strategies::rma::{frame, unframe};
/// let framed = frame(&Payload::from_bytes(&[1, 2, 3]), 10);
/// assert_eq!(framed.len(), 24);
/// assert_eq!(unframe(framed, 10).unwrap().as_bytes(), &[1, 2, 3]);
/// ```
pub fn frame(data: &Payload, bound: u64) -> Payload {
    let slot = bound.next_multiple_of(8) as usize;
    if data.is_phantom() {
        return Payload::phantom(slot + 8);
    }
    let mut bytes = vec![0u8; slot + 8];
    bytes[..data.len()].copy_from_slice(data.as_bytes());
    bytes[slot..].copy_from_slice(&(data.len() as u64).to_le_bytes());
    Payload::from_bytes(&bytes)
}

/// The chunk inside a [`frame`]d slot of a chunk bounded by `bound`; an error if the
/// slot's length is past the bound (corrupt or not framed). A phantom slot gives a
/// phantom of the bound (a simulation does not know the real size inside).
pub fn unframe(slot: Payload, bound: u64) -> Result<Payload, String> {
    let at = bound.next_multiple_of(8) as usize;
    if slot.len() != at + 8 {
        return Err(format!("a framed slot of {} bytes, expected {}", slot.len(), at + 8));
    }
    if slot.is_phantom() {
        return Ok(Payload::phantom(bound as usize));
    }
    let len = u64::from_le_bytes(slot.as_bytes()[at..].try_into().expect("8 bytes"));
    if len > bound {
        return Err(format!("a framed slot says {len} bytes, above its bound of {bound}"));
    }
    Ok(Payload::from_bytes(&slot.as_bytes()[..len as usize]))
}

/// What to do when a one-sided operation completes.
#[derive(Debug)]
enum Op {
    /// Get mode: the chunk (`bytes` long) is stored in this rank's window; tell its
    /// readers (passive).
    Exposed { chunk: ChunkId, readers: Vec<Rank>, bytes: u64 },
    /// Put mode: the chunk (`bytes` long) reached `to`'s window; tell it (passive).
    Pushed { chunk: ChunkId, to: Rank, offset: u64, bytes: u64 },
    /// The chunk's bytes are here (a remote get, or a read of this rank's own window),
    /// [framed](frame) if `framed`.
    Fetched { chunk: ChunkId, from: Rank, remote: bool, framed: bool },
}

/// A remote operation waiting for the outstanding cap.
#[derive(Debug)]
enum Queued {
    Get { from: Rank, offset: u64, chunk: ChunkId, len: u64 },
    Put { to: Rank, offset: u64, chunk: ChunkId, data: Payload },
}

/// The fence schedule of one rank (see the [module docs](self)).
#[derive(Debug)]
struct Fences {
    /// Fences per epoch: 1 in put mode, 2 in get mode.
    per_epoch: u64,
    /// Fences in the run: `carrying.len() * per_epoch`.
    total: u64,
    /// Local tasks with an output read on another rank, with their epoch; sorted by task.
    senders: Vec<(TaskId, u32)>,
    /// Per epoch: local senders not finished yet (absent: none).
    unfinished: BTreeMap<u32, u32>,
    /// Per epoch: chunks this rank reads that another rank produced in it, with their producer.
    incoming: BTreeMap<u32, Vec<(ChunkId, Rank)>>,
    /// The next fence to join.
    next: u64,
    /// A fence joined and not completed yet.
    open: bool,
}

impl Fences {
    /// Rank `rank`'s fence schedule from the run's `schedule`: a pass over its own tasks.
    fn new(dag: &Dag, rank: Rank, mode: Mode, schedule: &FenceSchedule) -> Fences {
        let epoch = &schedule.epoch;
        let per_epoch = if mode == Mode::Get { 2 } else { 1 };
        let mut senders = Vec::new();
        let mut unfinished = BTreeMap::new();
        let mut reads = Vec::new();
        for &t in dag.tasks_of(rank) {
            if dag.task(t).outputs().any(|c| dag.is_read_remotely(c)) {
                senders.push((t, epoch[t.index()]));
                *unfinished.entry(epoch[t.index()]).or_insert(0) += 1;
            }
            reads.extend(dag.inputs(t).iter().copied().filter(|&c| dag.chunk_owner(c) != rank));
        }
        reads.sort_unstable();
        reads.dedup();
        let mut incoming: BTreeMap<u32, Vec<(ChunkId, Rank)>> = BTreeMap::new();
        for c in reads {
            let producer = dag.chunk(c).producer;
            incoming.entry(epoch[producer.index()]).or_default().push((c, dag.chunk_owner(c)));
        }
        let total = schedule.carrying.len() as u64 * per_epoch;
        Fences { per_epoch, total, senders, unfinished, incoming, next: 0, open: false }
    }

    fn epoch_of_sender(&self, task: TaskId) -> Option<u32> {
        self.senders.binary_search_by_key(&task, |&(t, _)| t).ok().map(|i| self.senders[i].1)
    }

    /// The epoch fence `k` belongs to, and whether it is the one that closes the
    /// epoch's production (else it completes the epoch's gets).
    fn epoch_of_fence(&self, carrying: &[u32], k: u64) -> (u32, bool) {
        (carrying[(k / self.per_epoch) as usize], k.is_multiple_of(self.per_epoch))
    }

    /// Whether fence `next` may be joined now.
    fn may_join(&self, carrying: &[u32]) -> bool {
        if self.open || self.next >= self.total {
            return false;
        }
        let (epoch, closes_production) = self.epoch_of_fence(carrying, self.next);
        !(closes_production && self.unfinished.get(&epoch).is_some_and(|&n| n > 0))
    }
}

/// Whole-DAG plans made so far in this process ([`RunPlan::new`]), so tests can check
/// that a run plans once, not once per rank.
static PLANS: AtomicU64 = AtomicU64::new(0);

/// How many [`RunPlan`]s this process has made.
pub fn plans_made() -> u64 {
    PLANS.load(Ordering::Relaxed)
}

/// The epochs a fenced run is cut into, the same for every rank.
#[derive(Debug)]
struct FenceSchedule {
    /// The epoch of every task.
    epoch: Vec<u32>,
    /// The epochs that produce a chunk read on another rank (the others need no fence),
    /// ascending.
    carrying: Vec<u32>,
}

/// What rma derives from the whole DAG, once per run, shared read-only by every rank's
/// instance: every rank's window layout and, with fences, the epoch cut.
///
/// ```
/// use dagwire_runtime::one_sided::WindowSync;
/// use dagwire_runtime::{DagBuilder, KernelId, Rank, TaskSpec};
/// use dagwire_strategies::batched::Epochs;
/// use dagwire_strategies::rma::{Config, Mode, RunPlan};
/// use std::sync::Arc;
/// let mut b = DagBuilder::new(2);
/// let a = b.add(TaskSpec::new(KernelId(0), Rank(0)).outputs(&[12]));
/// b.add(TaskSpec::new(KernelId(0), Rank(1)).inputs(&[a.output(0)]).outputs(&[8]));
/// let cfg = Config { mode: Mode::Get, sync: WindowSync::Fence, inline_limit: 0, max_outstanding: None,
///                    epochs: Epochs::Level };
/// let plan = RunPlan::new(&Arc::new(b.finish()), cfg);
/// assert_eq!((plan.window(Rank(0)).bytes(), plan.window(Rank(1)).bytes()), (16, 0));
/// ```
#[derive(Debug)]
pub struct RunPlan {
    cfg: Config,
    dag: Arc<Dag>,
    /// Every rank's window, by rank.
    windows: Vec<Layout>,
    /// With sync = fence.
    fences: Option<FenceSchedule>,
}

impl RunPlan {
    /// Plans a run of `dag` with settings `cfg`: a pass over the chunks (and, with
    /// fences, one over the tasks to cut epochs).
    pub fn new(dag: &Arc<Dag>, cfg: Config) -> RunPlan {
        PLANS.fetch_add(1, Ordering::Relaxed);
        let fences = (cfg.sync == WindowSync::Fence).then(|| {
            let epoch = epochs(dag, cfg.epochs);
            let mut carrying: Vec<u32> = (0..dag.chunk_count() as u32)
                .map(ChunkId)
                .filter(|&c| dag.is_read_remotely(c))
                .map(|c| epoch[dag.chunk(c).producer.index()])
                .collect();
            carrying.sort_unstable();
            carrying.dedup();
            FenceSchedule { epoch, carrying }
        });
        RunPlan { cfg, dag: Arc::clone(dag), windows: Layout::every_rank(dag, cfg.mode), fences }
    }

    /// The settings planned with.
    pub fn config(&self) -> Config {
        self.cfg
    }

    /// `rank`'s window.
    pub fn window(&self, rank: Rank) -> &Layout {
        &self.windows[rank.index()]
    }
}

/// The rma protocol, one instance per rank, built from the run's shared [`RunPlan`] in
/// time and memory of the order of what the rank owns and reads.
///
/// ```
/// use dagwire_runtime::one_sided::WindowSync;
/// use dagwire_runtime::{Capability, DagBuilder, KernelId, Rank, Strategy, TaskSpec};
/// use dagwire_strategies::batched::Epochs;
/// use dagwire_strategies::rma::{Config, Mode, Rma, RunPlan};
/// use std::sync::Arc;
/// let mut b = DagBuilder::new(2);
/// b.add(TaskSpec::new(KernelId(0), Rank(0)).outputs(&[8]));
/// let dag = Arc::new(b.finish());
/// let cfg = Config { mode: Mode::Get, sync: WindowSync::Passive, inline_limit: 0, max_outstanding: None,
///                    epochs: Epochs::Level };
/// let passive = Rma::new(&Arc::new(RunPlan::new(&dag, cfg)), Rank(0));
/// assert_eq!(passive.needs(), &[Capability::PointToPoint, Capability::OneSidedPassive]);
/// let fence = Rma::new(&Arc::new(RunPlan::new(&dag, Config { sync: WindowSync::Fence, ..cfg })), Rank(0));
/// assert_eq!(fence.needs(), &[Capability::OneSidedFence]);
/// assert_eq!([1, 2].map(|op| fence.op_name(op)), ["rma-notify", "rma-inline"]);
/// ```
#[derive(Debug)]
pub struct Rma {
    plan: Arc<RunPlan>,
    cfg: Config,
    rank: Rank,
    /// One-sided operations in flight, by id.
    ops: BTreeMap<u64, Op>,
    /// Remote operations in flight (for the cap).
    remote: u32,
    /// Remote operations waiting for the cap.
    waiting: VecDeque<Queued>,
    /// This rank's fence schedule, with sync = fence.
    fences: Option<Fences>,
}

impl Rma {
    /// Rank `rank`'s instance for the run `plan` was made for.
    pub fn new(plan: &Arc<RunPlan>, rank: Rank) -> Self {
        let fences = plan.fences.as_ref().map(|f| Fences::new(&plan.dag, rank, plan.cfg.mode, f));
        Rma {
            plan: Arc::clone(plan),
            cfg: plan.cfg,
            rank,
            ops: BTreeMap::new(),
            remote: 0,
            waiting: VecDeque::new(),
            fences,
        }
    }

    /// This rank's window.
    fn own(&self) -> &Layout {
        self.plan.window(self.rank)
    }

    /// Issues a remote operation now, or queues it behind the cap.
    fn remote_op(&mut self, ctx: &mut StrategyCtx<'_>, op: Queued) {
        // With fences an operation completes only at the next fence, so a cap would stall it.
        let passive = self.cfg.sync == WindowSync::Passive;
        if passive && self.cfg.max_outstanding.is_some_and(|cap| self.remote >= cap.get()) {
            self.waiting.push_back(op);
            return;
        }
        self.remote += 1;
        match op {
            Queued::Get { from, offset, chunk, len } => {
                // A one-sided read moves the bytes without the producer's engine: they are
                // on their way from the moment the get is issued.
                ctx.phase(chunk, from, ctx.rank, Phase::Started);
                ctx.phase(chunk, from, ctx.rank, Phase::Wire);
                let framed = self.framed(ctx.dag, chunk);
                let id = ctx.get(from, offset, chunk, len);
                self.ops.insert(id, Op::Fetched { chunk, from, remote: true, framed });
            }
            Queued::Put { to, offset, chunk, data } => {
                ctx.phase(chunk, ctx.rank, to, Phase::Started);
                let bytes = data.len() as u64;
                let id = ctx.put(to, offset, chunk, data);
                self.ops.insert(id, Op::Pushed { chunk, to, offset, bytes });
            }
        }
    }

    /// A remote operation completed: the next queued one may go.
    fn remote_done(&mut self, ctx: &mut StrategyCtx<'_>) {
        self.remote -= 1;
        if let Some(next) = self.waiting.pop_front() {
            self.remote_op(ctx, next);
        }
    }

    /// Reads `chunk` (produced on `from`, `len` bytes in the window) out of this rank's
    /// own window.
    fn read_own(&mut self, ctx: &mut StrategyCtx<'_>, chunk: ChunkId, from: Rank, len: u64) -> Result<(), String> {
        let offset =
            self.own().offset(chunk).ok_or_else(|| format!("chunk {chunk} has no place in this rank's window"))?;
        let framed = self.framed(ctx.dag, chunk);
        let id = ctx.get(ctx.rank, offset, chunk, len);
        self.ops.insert(id, Op::Fetched { chunk, from, remote: false, framed });
        Ok(())
    }

    /// Whether `chunk` moves [framed](frame): sized at run time, with fences.
    fn framed(&self, dag: &Dag, chunk: ChunkId) -> bool {
        self.cfg.sync == WindowSync::Fence && dag.is_sized_at_run_time(chunk)
    }

    /// The bytes a fenced read of `chunk` moves: the chunk, or its whole framed slot.
    fn fenced_len(&self, dag: &Dag, chunk: ChunkId) -> u64 {
        if self.framed(dag, chunk) { slot_bytes(dag, chunk) } else { dag.chunk(chunk).bytes }
    }

    /// Joins every fence that may be joined now.
    fn try_fence(&mut self, ctx: &mut StrategyCtx<'_>) {
        let Some(f) = self.fences.as_mut() else { return };
        if f.may_join(self.plan.fences.as_ref().map_or(&[], |s| &s.carrying)) {
            ctx.join_collective(f.next, CollectiveKind::Fence, Vec::new());
            f.open = true;
        }
    }

    /// Fence `id` completed: read (put mode) or get (get mode) the chunks its epoch made
    /// readable, then go on to the next fence.
    fn fence_done(&mut self, ctx: &mut StrategyCtx<'_>, id: u64) -> Result<(), String> {
        let f = self.fences.as_mut().ok_or("a fence completed, but sync is not fence")?;
        if !f.open || f.next != id {
            return Err(format!("fence {id} completed, but this rank is in fence {:?}", f.open.then_some(f.next)));
        }
        (f.open, f.next) = (false, f.next + 1);
        let carrying = self.plan.fences.as_ref().map_or(&[][..], |s| &s.carrying);
        let (epoch, closes_production) = f.epoch_of_fence(carrying, id);
        let incoming = if closes_production { f.incoming.remove(&epoch).unwrap_or_default() } else { Vec::new() };
        for (chunk, from) in incoming {
            let len = self.fenced_len(ctx.dag, chunk);
            match self.cfg.mode {
                Mode::Put => self.read_own(ctx, chunk, from, len)?,
                Mode::Get => {
                    let offset = self.plan.window(from).offset(chunk).expect("a remotely read chunk is exposed");
                    self.remote_op(ctx, Queued::Get { from, offset, chunk, len });
                }
            }
        }
        self.try_fence(ctx);
        Ok(())
    }
}

impl Strategy for Rma {
    fn name(&self) -> &'static str {
        "rma"
    }

    fn op_name(&self, op: u8) -> &'static str {
        match op {
            NOTIFY => "rma-notify",
            INLINE => "rma-inline",
            NOTIFY_SIZED => "rma-notify-sized",
            _ => "unknown",
        }
    }

    fn needs(&self) -> &'static [Capability] {
        self.cfg.needs()
    }

    fn window(&mut self, dag: &Dag, rank: Rank) -> Option<WindowSpec> {
        assert!(
            std::ptr::eq(dag, &*self.plan.dag) && rank == self.rank,
            "rma was planned for another DAG or rank than the engine runs: build the strategy factory from the \
             run's DAG and each rank's instance with its own rank"
        );
        Some(WindowSpec { bytes: self.own().bytes(), sync: self.cfg.sync })
    }

    fn on_start(&mut self, ctx: &mut StrategyCtx<'_>) {
        self.try_fence(ctx);
    }

    fn on_chunk_ready(&mut self, ctx: &mut StrategyCtx<'_>, chunk: ChunkId, data: &Payload, readers: &[Rank]) {
        let passive = self.cfg.sync == WindowSync::Passive;
        if passive && (data.len() as u64) <= self.cfg.inline_limit {
            for &reader in readers {
                ctx.phase(chunk, ctx.rank, reader, Phase::Started);
                ctx.phase(chunk, ctx.rank, reader, Phase::Wire);
                ctx.send(reader, Message::data(INLINE, chunk, data.clone()));
            }
            return;
        }
        let framed;
        let data = if self.framed(ctx.dag, chunk) {
            framed = frame(data, ctx.dag.chunk(chunk).bytes);
            &framed
        } else {
            data
        };
        match self.cfg.mode {
            Mode::Get => {
                let offset = self.own().offset(chunk).expect("a chunk read on another rank is exposed");
                let id = ctx.put(ctx.rank, offset, chunk, data.clone());
                self.ops.insert(id, Op::Exposed { chunk, readers: readers.to_vec(), bytes: data.len() as u64 });
            }
            Mode::Put => {
                for &to in readers {
                    let offset = self.plan.window(to).offset(chunk).expect("a reader's window holds what it reads");
                    self.remote_op(ctx, Queued::Put { to, offset, chunk, data: data.clone() });
                }
            }
        }
    }

    fn on_task_done(&mut self, ctx: &mut StrategyCtx<'_>, task: TaskId) {
        let Some(f) = self.fences.as_mut() else { return };
        if let Some(epoch) = f.epoch_of_sender(task) {
            *f.unfinished.get_mut(&epoch).expect("counted at start") -= 1;
            self.try_fence(ctx);
        }
    }

    fn on_message(&mut self, ctx: &mut StrategyCtx<'_>, from: Rank, msg: Message) -> Result<(), String> {
        let chunk = msg.chunk;
        if ctx.dag.chunk_owner(chunk) != from {
            return Err(format!("{from} sent a notification about chunk {chunk}, which it does not produce"));
        }
        let bound = ctx.dag.chunk(chunk).bytes;
        match (msg.op, msg.payload, self.cfg.mode) {
            (INLINE, Some(payload), _) => ctx.deliver(chunk, from, payload),
            (NOTIFY, None, Mode::Get) => self.remote_op(ctx, Queued::Get { from, offset: msg.arg, chunk, len: bound }),
            (NOTIFY, None, Mode::Put) => {
                let offset = self.own().offset(chunk);
                if offset != Some(msg.arg) {
                    return Err(format!(
                        "{from} put chunk {chunk} at offset {}, its place here is {offset:?}",
                        msg.arg
                    ));
                }
                self.read_own(ctx, chunk, from, bound)?;
            }
            (NOTIFY_SIZED, None, _) if msg.arg > bound || !ctx.dag.is_sized_at_run_time(chunk) => {
                return Err(format!(
                    "{from} announced {} bytes of chunk {chunk}, whose bound is {bound} (sized at run time: {})",
                    msg.arg,
                    ctx.dag.is_sized_at_run_time(chunk)
                ));
            }
            (NOTIFY_SIZED, None, Mode::Get) => {
                let offset = self.plan.window(from).offset(chunk).expect("a remotely read chunk is exposed");
                self.remote_op(ctx, Queued::Get { from, offset, chunk, len: msg.arg });
            }
            (NOTIFY_SIZED, None, Mode::Put) => self.read_own(ctx, chunk, from, msg.arg)?,
            (op, _, _) => return Err(format!("rma got operation {op} from {from}, expected rma-notify or rma-inline")),
        }
        Ok(())
    }

    fn on_one_sided_done(&mut self, ctx: &mut StrategyCtx<'_>, id: u64, data: Option<Payload>) -> Result<(), String> {
        let op = self.ops.remove(&id).ok_or_else(|| format!("one-sided operation {id} is not this strategy's"))?;
        let passive = self.cfg.sync == WindowSync::Passive;
        match (op, data) {
            (Op::Exposed { chunk, readers, bytes }, None) => {
                let offset = self.own().offset(chunk).expect("stored there");
                let notify = notification(ctx.dag, chunk, offset, bytes);
                for reader in readers.into_iter().filter(|_| passive) {
                    ctx.send(reader, notify.clone());
                }
            }
            (Op::Pushed { chunk, to, offset, bytes }, None) => {
                ctx.phase(chunk, ctx.rank, to, Phase::Wire);
                if passive {
                    ctx.send(to, notification(ctx.dag, chunk, offset, bytes));
                }
                self.remote_done(ctx);
            }
            (Op::Fetched { chunk, from, remote, framed }, Some(payload)) => {
                let payload = if framed { unframe(payload, ctx.dag.chunk(chunk).bytes)? } else { payload };
                ctx.deliver(chunk, from, payload);
                if remote {
                    self.remote_done(ctx);
                }
            }
            (op, data) => {
                return Err(format!("operation {id} ({op:?}) completed with data {:?}", data.map(|d| d.len())));
            }
        }
        Ok(())
    }

    fn on_collective_done(
        &mut self,
        ctx: &mut StrategyCtx<'_>,
        id: u64,
        received: Vec<Contribution>,
    ) -> Result<(), String> {
        if !received.is_empty() {
            return Err(format!("fence {id} brought {} contributions, expected none", received.len()));
        }
        self.fence_done(ctx, id)
    }

    /// Idle once no operation is in flight or queued and every fence completed.
    fn is_idle(&self) -> bool {
        self.ops.is_empty()
            && self.waiting.is_empty()
            && self.fences.as_ref().is_none_or(|f| f.next == f.total && !f.open)
    }
}

/// The passive notification that `chunk` (`bytes` long) is readable at `offset`: with
/// the offset, or, for a chunk sized at run time, with its real length.
fn notification(dag: &Dag, chunk: ChunkId, offset: u64, bytes: u64) -> Message {
    if dag.is_sized_at_run_time(chunk) {
        Message::control(NOTIFY_SIZED, chunk, bytes)
    } else {
        Message::control(NOTIFY, chunk, offset)
    }
}
