//! An in-memory N-rank harness for engine and strategy tests: every rank's [`Engine`]
//! in one thread, simulated time, fixed latencies, a bounded number of steps
//! (house rule 10). Kernels are simulated: each checks that every input holds the
//! bytes its producer wrote ([`fill`]) and writes its own outputs the same way, so a
//! strategy that loses, mixes up or corrupts a chunk fails the run.
//!
//! Collectives run the shared algorithms of [`crate::collectives`] (one [`Collectives`]
//! per rank, chain broadcasts in real segments): every piece is an event `latency` after
//! it was sent, so a collective takes its algorithm's steps (a pairwise all-to-all-v
//! over `p` ranks `(p - 1) * latency` once all have joined, a dissemination fence
//! `ceil(log2 p) * latency`). The harness also enforces the rules every collective
//! follows, whatever the strategy: a rank has at most one collective open, joins them in
//! increasing id order, agrees with the other members on the kind (a neighbour
//! all-to-all-v: on a consistent graph), and is a member of what it joins.
//!
//! Strategy timers fire at their deadline in simulated time (the harness queues a wake-up
//! at each rank's [`Engine::poll_timeout`]).
//!
//! One-sided windows hold real bytes. A put writes when it is issued and completes
//! `2 * latency` later (data there, acknowledgement back); a get reads when it is issued
//! and completes `2 * latency` later; an operation on the rank's own window completes at
//! once. A rank's fence starts only once the operations it issued earlier completed (so
//! no fence completes before every member's operations did). The harness refuses a get that does not read
//! exactly one region an earlier put wrote, and one that reads it too soon: with passive
//! synchronisation before the put completed, with fences before a fence closed the
//! writer's epoch (house rule: "rma with fence never reads before the producing epoch
//! closed").
//!
//! Exposed memory holds real bytes too: an exposure completes `latency` later (a
//! registration takes time); a read copies the bytes when issued and completes
//! `2 * latency` later. The harness refuses a read of memory not exposed (or already
//! withdrawn), a withdrawal while a read of it is still in flight, and a run that ends
//! with memory still exposed.

use crate::collective::{CollectiveJoin, CollectiveKind};
use crate::collectives::{Collectives, Piece, Segmenting};
use crate::dag::Dag;
use crate::engine::{Action, Engine, TaskDone};
use crate::ids::{ChunkId, Rank, TaskId};
use crate::message::Message;
use crate::one_sided::{Access, ExposedMemory, MemoryKey, OneSided, WindowMemory, WindowSync};
use crate::payload::Payload;
use crate::strategy::{Strategy, StrategyCtx};
use crate::trace::Phase;
use crate::trace::Trace;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The byte every position of `chunk` holds, so a reader can tell chunks apart.
///
/// ```
/// use dagwire_runtime::{ChunkId, drivers::testing::fill};
/// assert_ne!(fill(ChunkId(1)), fill(ChunkId(2)));
/// ```
pub fn fill(chunk: ChunkId) -> u8 {
    (chunk.0 as u8).wrapping_mul(37).wrapping_add(1)
}

/// Simulated time of a harness run.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// A message arrives, and a collective completes after its last member joined,
    /// this long later.
    pub latency: u64,
    /// Every task runs this long.
    pub task_ns: u64,
}

/// A rank joining a collective, shown to the test's own check (for example batched's
/// "only after this epoch's producers finished").
pub struct JoinView<'a> {
    /// The joining rank.
    pub rank: Rank,
    /// What it joins with.
    pub join: &'a CollectiveJoin,
    /// Every task finished so far, on any rank.
    pub finished: &'a BTreeSet<TaskId>,
}

/// What a finished harness run leaves.
#[derive(Debug)]
pub struct Run {
    /// When the last rank finished, ns.
    pub end_ns: u64,
    /// All ranks' traces, merged.
    pub trace: Trace,
    /// Result chunks, from every rank.
    pub results: BTreeSet<ChunkId>,
    /// Per rank, the collective ids it joined, in join order.
    pub joins: Vec<Vec<u64>>,
    /// Point-to-point sends the engines asked for.
    pub p2p_sends: usize,
}

/// Runs `dag` with `workers` workers per rank until every rank is done, checking each
/// collective join with `check_join` as well as the harness's own rules. Events are
/// ordered by (time, insertion sequence). Fails, with every rank's diagnosis, on an
/// engine error, a wrong input, a broken rule, a deadlock or after `max_steps` events.
///
/// ```
/// use dagwire_runtime::drivers::testing::{Timing, drive};
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
/// let a = b.add(TaskSpec::new(KernelId(0), Rank(0)).outputs(&[8]));
/// b.add(TaskSpec::new(KernelId(0), Rank(0)).inputs(&[a.output(0)]).outputs(&[8]));
/// let timing = Timing { latency: 5, task_ns: 10 };
/// let run = drive(&Arc::new(b.finish()), &|_| Box::new(NoStrategy), 1, timing, 100, &mut |_| Ok(())).unwrap();
/// assert_eq!(run.end_ns, 20);
/// ```
pub fn drive(
    dag: &Arc<Dag>,
    strategy: &dyn Fn(Rank) -> Box<dyn Strategy>,
    workers: usize,
    timing: Timing,
    max_steps: usize,
    check_join: &mut dyn FnMut(&JoinView<'_>) -> Result<(), String>,
) -> Result<Run, String> {
    let p = dag.ranks();
    let engines: Vec<Engine> =
        (0..p as u32).map(|r| Engine::new(Rank(r), Arc::clone(dag), strategy(Rank(r)), workers)).collect();
    let windows = engines.iter().map(|e| WindowMemory::new(e.window().map_or(0, |w| w.bytes))).collect();
    let sync = engines.iter().find_map(Engine::window).map(|w| w.sync);
    let mut h = Harness {
        dag,
        timing,
        engines,
        windows,
        sync,
        written: BTreeMap::new(),
        fences_done: vec![0; p],
        ops_done_by: vec![0; p],
        exposed: (0..p).map(|_| ExposedMemory::default()).collect(),
        reads_until: BTreeMap::new(),
        events: BTreeMap::new(),
        seq: 0,
        now: 0,
        gathering: BTreeMap::new(),
        collectives: (0..p as u32).map(|r| Collectives::new(Rank(r), p, Segmenting::Segments)).collect(),
        finished: BTreeSet::new(),
        open: vec![None; p],
        joins: vec![Vec::new(); p],
        p2p_sends: 0,
        timeout_queued: vec![None; p],
    };
    h.engines.iter_mut().for_each(|e| e.handle_start(0));
    for _ in 0..max_steps {
        for r in 0..p {
            h.act(r, check_join)?;
        }
        if h.engines.iter().all(Engine::is_done) {
            return h.finish();
        }
        h.step()?;
    }
    Err(h.diagnose(&format!("not done after {max_steps} steps")))
}

enum Event {
    Done(TaskDone),
    Message(Rank, Message),
    /// A piece of a collective arrives.
    Piece(Piece),
    /// A fence joined while the rank's one-sided operations were in flight starts.
    FenceStart(CollectiveJoin),
    OneSidedDone(u64, Option<Payload>),
    /// A registration completes.
    Exposed(u64, MemoryKey),
    /// The rank's engine deadline ([`Engine::poll_timeout`]) came.
    Timeout,
}

/// A region a put wrote: how long, when the put completes, and in which of the
/// writer's fence epochs it was issued.
struct Written {
    len: u64,
    complete_at: u64,
    writer: Rank,
    epoch: u32,
}

/// One collective on its way, for the rules' checks: its kind as the first member
/// joined it, and who has joined (with a neighbour all-to-all-v's own lists).
struct Gathering {
    kind: CollectiveKind,
    joined: BTreeMap<Rank, CollectiveKind>,
}

struct Harness<'a> {
    dag: &'a Arc<Dag>,
    timing: Timing,
    engines: Vec<Engine>,
    windows: Vec<WindowMemory>,
    sync: Option<WindowSync>,
    /// Regions written by puts, by (target rank, offset).
    written: BTreeMap<(Rank, u64), Written>,
    /// Fences completed on each rank.
    fences_done: Vec<u32>,
    /// Per rank, when the last one-sided operation it issued completes.
    ops_done_by: Vec<u64>,
    /// Every rank's exposed memory.
    exposed: Vec<ExposedMemory>,
    /// Per (owner, key): when the last read of that exposure completes.
    reads_until: BTreeMap<(Rank, u64), u64>,
    events: BTreeMap<(u64, u64), (usize, Event)>,
    seq: u64,
    now: u64,
    gathering: BTreeMap<u64, Gathering>,
    /// Every rank's collectives.
    collectives: Vec<Collectives>,
    finished: BTreeSet<TaskId>,
    /// Per rank, the collective open and whether it is a fence.
    open: Vec<Option<(u64, bool)>>,
    joins: Vec<Vec<u64>>,
    p2p_sends: usize,
    /// Per rank, the engine deadline an [`Event::Timeout`] is queued for.
    timeout_queued: Vec<Option<u64>>,
}

impl Harness<'_> {
    fn push(&mut self, at: u64, rank: usize, event: Event) {
        self.events.insert((at, self.seq), (rank, event));
        self.seq += 1;
    }

    /// Executes everything rank `r` wants to do now.
    fn act(&mut self, r: usize, check_join: &mut dyn FnMut(&JoinView<'_>) -> Result<(), String>) -> Result<(), String> {
        while let Some(action) = self.engines[r].poll_action(self.now) {
            match action {
                Action::Run(run) => {
                    let outputs = self.kernel(r, run.task, &run.inputs)?;
                    let (start_ns, end_ns) = (self.now, self.now + self.timing.task_ns);
                    self.push(
                        end_ns,
                        r,
                        Event::Done(TaskDone { task: run.task, worker: 0, start_ns, end_ns, outputs }),
                    );
                }
                Action::Send(out) => {
                    self.p2p_sends += 1;
                    self.push(self.now + self.timing.latency, out.to.index(), Event::Message(Rank(r as u32), out.msg));
                }
                Action::Collective(join) => {
                    let view = JoinView { rank: Rank(r as u32), join: &join, finished: &self.finished };
                    check_join(&view)?;
                    self.join(Rank(r as u32), join)?;
                }
                Action::OneSided(op) => self.one_sided(r, op)?,
                // The harness gives no device: a copy within host memory is done at once.
                Action::Copy(copy) => self.engines[r].handle_copy_done(self.now, copy.id),
            }
        }
        // Wake the rank at its engine's deadline (a strategy timer), once per deadline.
        if let Some(at) = self.engines[r].poll_timeout()
            && self.timeout_queued[r] != Some(at)
        {
            self.timeout_queued[r] = Some(at);
            self.push(at.max(self.now), r, Event::Timeout);
        }
        Ok(())
    }

    /// A simulated kernel: checks its inputs' bytes and fills its outputs.
    fn kernel(&self, r: usize, task: TaskId, inputs: &[Payload]) -> Result<Vec<Payload>, String> {
        let dag = self.dag;
        let bytes_of = |c: ChunkId| vec![fill(c); dag.chunk(c).bytes as usize];
        for (&c, input) in dag.inputs(task).iter().zip(inputs) {
            if input.as_bytes() != bytes_of(c).as_slice() {
                return Err(format!("task {task} on r{r} got wrong bytes for chunk {c}"));
            }
        }
        Ok(dag.task(task).outputs().map(|c| Payload::from_bytes(&bytes_of(c))).collect())
    }

    /// Executes a put or get of rank `r` on its target's window now; schedules its
    /// completion.
    fn one_sided(&mut self, r: usize, op: OneSided) -> Result<(), String> {
        let origin = Rank(r as u32);
        let what = format!("{origin}'s one-sided operation {} on {}'s exposed memory", op.id, op.target);
        match op.access {
            Access::Expose(data) => {
                let key = self.exposed[r].expose(data);
                self.push(self.now + self.timing.latency, r, Event::Exposed(op.id, key));
                return Ok(());
            }
            Access::Withdraw(key) => {
                let until = self.reads_until.remove(&(origin, key.key)).unwrap_or(0);
                if until > self.now {
                    return Err(format!("{what}: withdraws key {} at {} ns, read until {until} ns", key.key, self.now));
                }
                return self.exposed[r].withdraw(key).map_err(|e| format!("{what}: {e}"));
            }
            Access::Read { key, len } => {
                let data =
                    self.exposed[op.target.index()].read(key, op.offset, len).map_err(|e| format!("{what}: {e}"))?;
                let complete_at = self.now + 2 * self.timing.latency;
                let until = self.reads_until.entry((op.target, key.key)).or_insert(0);
                *until = (*until).max(complete_at);
                self.ops_done_by[r] = self.ops_done_by[r].max(complete_at);
                self.push(complete_at, r, Event::OneSidedDone(op.id, Some(data)));
                return Ok(());
            }
            Access::Put(_) | Access::Get { .. } => {}
        }
        let remote = op.target != origin;
        let complete_at = if remote { self.now + 2 * self.timing.latency } else { self.now };
        let what =
            format!("{origin}'s one-sided operation {} on {}'s window at offset {}", op.id, op.target, op.offset);
        let data = match op.access {
            Access::Put(data) => {
                self.windows[op.target.index()].put(op.offset, data.as_bytes()).map_err(|e| format!("{what}: {e}"))?;
                let epoch = self.fences_done[r];
                let region = Written { len: data.len() as u64, complete_at, writer: origin, epoch };
                self.written.insert((op.target, op.offset), region);
                None
            }
            Access::Get { len } => {
                self.check_read(origin, op.target, op.offset, len).map_err(|e| format!("{what}: {e}"))?;
                Some(self.windows[op.target.index()].get(op.offset, len).map_err(|e| format!("{what}: {e}"))?)
            }
            _ => unreachable!("handled above"),
        };
        self.ops_done_by[r] = self.ops_done_by[r].max(complete_at);
        self.push(complete_at, r, Event::OneSidedDone(op.id, data));
        Ok(())
    }

    /// A get by `reader` must read exactly a region a put wrote, after that put became
    /// visible to it.
    fn check_read(&self, reader: Rank, target: Rank, offset: u64, len: u64) -> Result<(), String> {
        let Some(w) = self.written.get(&(target, offset)).filter(|w| w.len == len) else {
            return Err(format!("reads {len} bytes that no earlier put wrote there"));
        };
        match self.sync {
            Some(WindowSync::Fence) if self.fences_done[reader.index()] <= w.epoch => Err(format!(
                "reads in fence epoch {} what {} put in its epoch {}, before a fence closed that epoch",
                self.fences_done[reader.index()],
                w.writer,
                w.epoch
            )),
            Some(WindowSync::Passive) if self.now < w.complete_at => {
                Err(format!("reads at {} ns what a put completes only at {} ns", self.now, w.complete_at))
            }
            _ => Ok(()),
        }
    }

    /// A rank joins a collective (a fence once its one-sided operations completed).
    fn join(&mut self, rank: Rank, join: CollectiveJoin) -> Result<(), String> {
        let r = rank.index();
        if let Some((id, _)) = self.open[r] {
            return Err(format!("{rank} joined collective {} while {id} was still open", join.id));
        }
        if self.joins[r].last().is_some_and(|&last| last >= join.id) {
            return Err(format!("{rank} joined collective {} after {:?}", join.id, self.joins[r]));
        }
        let fence = join.kind == CollectiveKind::Fence;
        self.open[r] = Some((join.id, fence));
        self.joins[r].push(join.id);
        self.check_rules(rank, &join)?;
        if fence && self.ops_done_by[r] > self.now {
            self.push(self.ops_done_by[r], r, Event::FenceStart(join));
            return Ok(());
        }
        self.collectives[r].join(self.now, join);
        self.collective_progress(r)
    }

    /// Checks that `rank` may join `join` as the other members did: same kind, a member,
    /// and (once every member joined a neighbour all-to-all-v) a consistent graph.
    fn check_rules(&mut self, rank: Rank, join: &CollectiveJoin) -> Result<(), String> {
        let p = self.engines.len();
        let g = self
            .gathering
            .entry(join.id)
            .or_insert_with(|| Gathering { kind: join.kind.clone(), joined: BTreeMap::new() });
        let same = match (&g.kind, &join.kind) {
            (CollectiveKind::NeighborAllToAllV { .. }, CollectiveKind::NeighborAllToAllV { .. }) => true,
            (a, b) => a == b,
        };
        if !same {
            return Err(format!("{rank} joined {} as {:?}, others as {:?}", join.id, join.kind, g.kind));
        }
        let members = g.kind.members(p);
        if !members.contains(&rank) {
            return Err(format!("{rank} joined {}, which it is no member of", join.id));
        }
        g.joined.insert(rank, join.kind.clone());
        if g.joined.len() < members.len() {
            return Ok(());
        }
        let g = self.gathering.remove(&join.id).expect("present");
        let graph: BTreeMap<Rank, (&[Rank], &[Rank])> = g
            .joined
            .iter()
            .filter_map(|(&r, k)| match k {
                CollectiveKind::NeighborAllToAllV { sources, destinations } => {
                    Some((r, (&sources[..], &destinations[..])))
                }
                _ => None,
            })
            .collect();
        for (&r, &(sources, destinations)) in &graph {
            for &d in destinations {
                if !graph.get(&d).is_some_and(|(s, _)| s.contains(&r)) {
                    return Err(format!(
                        "neighbor all-to-all-v {}: {r} sends to {d}, which does not list it as a source",
                        join.id
                    ));
                }
            }
            for &s in sources {
                if !graph.get(&s).is_some_and(|(_, d)| d.contains(&r)) {
                    return Err(format!(
                        "neighbor all-to-all-v {}: {r} awaits {s}, which does not list it as a destination",
                        join.id
                    ));
                }
            }
        }
        Ok(())
    }

    /// Schedules the pieces rank `r`'s collectives send, and reports the ones that completed.
    fn collective_progress(&mut self, r: usize) -> Result<(), String> {
        while let Some(piece) = self.collectives[r].poll_send() {
            let dst = piece.dst.index();
            self.push(self.now + self.timing.latency, dst, Event::Piece(piece));
        }
        while let Some((id, received)) = self.collectives[r].poll_done() {
            if let Some((_, true)) = self.open[r].take() {
                self.fences_done[r] += 1;
            }
            self.engines[r].handle_collective_done(self.now, id, received);
        }
        match self.collectives[r].error() {
            Some(e) => Err(self.diagnose(&e.to_string())),
            None => Ok(()),
        }
    }

    /// Feeds the earliest event to its rank.
    fn step(&mut self) -> Result<(), String> {
        let Some(((at, _), (r, event))) = self.events.pop_first() else {
            return Err(self.diagnose("deadlock: work remains but nothing is in flight"));
        };
        self.now = at;
        match event {
            Event::Done(done) => {
                self.finished.insert(done.task);
                self.engines[r].handle_task_done(at, done);
            }
            Event::Message(from, msg) => self.engines[r].handle_message(at, from, msg),
            Event::Piece(piece) => {
                self.collectives[r].handle_piece(at, piece);
                self.collective_progress(r)?;
            }
            Event::FenceStart(join) => {
                self.collectives[r].join(at, join);
                self.collective_progress(r)?;
            }
            Event::OneSidedDone(id, data) => self.engines[r].handle_one_sided_done(at, id, data),
            Event::Exposed(id, key) => self.engines[r].handle_exposed(at, id, key),
            Event::Timeout => {
                self.timeout_queued[r] = None;
                self.engines[r].handle_timeout(at);
            }
        }
        match self.engines[r].error() {
            Some(e) => Err(self.diagnose(&format!("r{r} failed: {e}"))),
            None => Ok(()),
        }
    }

    fn finish(mut self) -> Result<Run, String> {
        if !self.gathering.is_empty() {
            return Err(format!("all ranks done with collectives {:?} still gathering", self.gathering.keys()));
        }
        if let Some(c) = self.collectives.iter().find(|c| !c.is_idle()) {
            return Err(format!("all ranks done with a collective not idle: {}", c.summary()));
        }
        if let Some(r) = self.exposed.iter().position(|m| !m.is_empty()) {
            return Err(format!("all ranks done with {} exposures of rank {r} never withdrawn", self.exposed[r].len()));
        }
        let results = self.engines.iter_mut().flat_map(|e| e.take_results()).map(|(c, _)| c).collect();
        let trace = Trace::merge(self.engines.iter_mut().map(Engine::take_trace).collect());
        Ok(Run { end_ns: self.now, trace, results, joins: self.joins, p2p_sends: self.p2p_sends })
    }

    /// `why`, then what every rank is waiting for.
    fn diagnose(&self, why: &str) -> String {
        let ranks: Vec<String> =
            self.engines
                .iter()
                .zip(&self.collectives)
                .map(|(e, c)| {
                    if c.is_idle() { e.waiting_summary() } else { format!("{}; {}", e.waiting_summary(), c.summary()) }
                })
                .collect();
        format!("{why} at {} ns\n{}", self.now, ranks.join("\n"))
    }
}

/// A strategy for timer tests on every driver: it holds each chunk for `delay` ns after
/// it exists, then sends it whole to each reader rank in one data message (a one-chunk
/// time window); the timer's token is the chunk id.
pub struct Delayed {
    delay: u64,
    held: Vec<(ChunkId, Payload, Vec<Rank>)>,
}

impl Delayed {
    /// Holds each chunk `delay` ns.
    pub fn new(delay: u64) -> Self {
        Delayed { delay, held: Vec::new() }
    }
}

impl Strategy for Delayed {
    fn name(&self) -> &'static str {
        "delayed"
    }
    fn op_name(&self, _: u8) -> &'static str {
        "delayed-data"
    }
    fn on_chunk_ready(&mut self, ctx: &mut StrategyCtx<'_>, chunk: ChunkId, data: &Payload, readers: &[Rank]) {
        self.held.push((chunk, data.clone(), readers.to_vec()));
        ctx.set_timer(ctx.now + self.delay, chunk.0 as u64);
    }
    fn on_timer(&mut self, ctx: &mut StrategyCtx<'_>, token: u64) -> Result<(), String> {
        let at = self.held.iter().position(|(c, ..)| c.0 as u64 == token).ok_or("a timer for no held chunk")?;
        let (chunk, data, readers) = self.held.swap_remove(at);
        for r in readers {
            ctx.phase(chunk, ctx.rank, r, Phase::Started);
            ctx.phase(chunk, ctx.rank, r, Phase::Wire);
            ctx.send(r, Message::data(1, chunk, data.clone()));
        }
        Ok(())
    }
    fn on_message(&mut self, ctx: &mut StrategyCtx<'_>, from: Rank, msg: Message) -> Result<(), String> {
        ctx.deliver(msg.chunk, from, msg.payload.ok_or("data expected")?);
        Ok(())
    }
    fn is_idle(&self) -> bool {
        self.held.is_empty()
    }
}
