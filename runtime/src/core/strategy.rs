//! The transfer-strategy interface: a protocol state machine that moves chunks
//! between ranks using only what the engine lets it do (send messages, join
//! collectives, deliver chunks, record phases). It never touches a network or a clock.

use crate::collective::{Capability, CollectiveJoin, CollectiveKind, Contribution};
use crate::dag::Dag;
use crate::ids::{ChunkId, Rank, TaskId};
use crate::message::Message;
use crate::one_sided::{Access, MemoryKey, OneSided, WindowSpec};
use crate::payload::Payload;
use crate::timer::Timers;
use crate::trace::{Phase, TransferEvent};
use std::collections::VecDeque;

/// A transfer protocol, one instance per rank.
///
/// The engine calls [`Strategy::window`] once when it is built, [`Strategy::on_start`]
/// once, [`Strategy::on_chunk_ready`] when a chunk it produced has readers on other
/// ranks, [`Strategy::on_task_done`] after each local task's outputs were handed over,
/// [`Strategy::on_message`] for every message that arrives,
/// [`Strategy::on_collective_done`] for every collective the strategy joined and
/// [`Strategy::on_one_sided_done`] for every one-sided operation it issued and
/// [`Strategy::on_timer`] for every timer it set that came due; the strategy
/// answers through the [`StrategyCtx`]. See `dagwire-strategies` for the protocols
/// themselves.
pub trait Strategy: Send {
    /// The registered name (`eager`, `rendezvous`, ...).
    fn name(&self) -> &'static str;

    /// Name of one of this strategy's message operations, for traces.
    fn op_name(&self, op: u8) -> &'static str;

    /// `chunk` now exists on this rank and `readers` (never this rank) need it.
    fn on_chunk_ready(&mut self, ctx: &mut StrategyCtx<'_>, chunk: ChunkId, data: &Payload, readers: &[Rank]);

    /// A message of this strategy arrived from `from`. An error is fatal to the run
    /// and should say what was expected.
    fn on_message(&mut self, ctx: &mut StrategyCtx<'_>, from: Rank, msg: Message) -> Result<(), String>;

    /// True when nothing is in flight on the sending side (the rank may finish).
    fn is_idle(&self) -> bool {
        true
    }

    /// What the strategy needs from a driver; drivers refuse to run it without all of it
    /// ([`crate::collective::check_capabilities`]). Default: point-to-point messages only.
    fn needs(&self) -> &'static [Capability] {
        Capability::POINT_TO_POINT
    }

    /// The run starts on this rank (before any task runs). Default: nothing.
    fn on_start(&mut self, _ctx: &mut StrategyCtx<'_>) {}

    /// Local task `task` finished and each of its outputs went through
    /// [`Strategy::on_chunk_ready`] (those with remote readers). Default: nothing.
    fn on_task_done(&mut self, _ctx: &mut StrategyCtx<'_>, _task: TaskId) {}

    /// Collective `id`, which this strategy joined, completed on this rank; `received`
    /// holds every peer's contribution to this rank, in rank order. An error is fatal to
    /// the run. Default: refuses, as a strategy that joins no collective gets none.
    fn on_collective_done(
        &mut self,
        _ctx: &mut StrategyCtx<'_>,
        id: u64,
        _received: Vec<Contribution>,
    ) -> Result<(), String> {
        Err(format!("collective {id} completed, but this strategy joins no collectives"))
    }

    /// The one-sided window this rank exposes, if the strategy uses one-sided access
    /// ([`crate::one_sided`]). Called once, when the engine is built and before the run
    /// starts, so drivers can allocate every window up front. Default: none.
    fn window(&mut self, _dag: &Dag, _rank: Rank) -> Option<WindowSpec> {
        None
    }

    /// Timer `token`, which this strategy armed with [`StrategyCtx::set_timer`], is due
    /// (`ctx.now` is at or past its deadline). An error is fatal to the run. Default:
    /// refuses, as a strategy that sets no timers gets none.
    fn on_timer(&mut self, _ctx: &mut StrategyCtx<'_>, token: u64) -> Result<(), String> {
        Err(format!("timer {token} fired, but this strategy sets no timers"))
    }

    /// One-sided operation `id`, which this strategy issued, completed: `data` holds a
    /// get's bytes, `None` for a put. An error is fatal to the run. Default: refuses, as
    /// a strategy that issues none gets none.
    fn on_one_sided_done(&mut self, _ctx: &mut StrategyCtx<'_>, id: u64, _data: Option<Payload>) -> Result<(), String> {
        Err(format!("one-sided operation {id} completed, but this strategy issues none"))
    }

    /// Registration `id` ([`StrategyCtx::expose`]) completed: readers can read the bytes
    /// with `key`. An error is fatal to the run. Default: refuses, as a strategy that
    /// exposes nothing gets none.
    fn on_exposed(&mut self, _ctx: &mut StrategyCtx<'_>, id: u64, _key: MemoryKey) -> Result<(), String> {
        Err(format!("registration {id} completed, but this strategy exposes no memory"))
    }
}

/// Builds one strategy instance per rank.
pub type StrategyFactory<'a> = &'a (dyn Fn(Rank) -> Box<dyn Strategy> + Sync);

/// What a strategy may do while handling an input. Built by the engine.
pub struct StrategyCtx<'a> {
    /// Current time, ns since the run started.
    pub now: u64,
    /// This rank.
    pub rank: Rank,
    /// The DAG (chunk sizes, producers, readers).
    pub dag: &'a Dag,
    pub(crate) sends: &'a mut VecDeque<(Rank, Message)>,
    pub(crate) collectives: &'a mut VecDeque<CollectiveJoin>,
    pub(crate) delivered: &'a mut Vec<(ChunkId, Rank, Payload)>,
    pub(crate) events: &'a mut Vec<TransferEvent>,
    pub(crate) one_sided: &'a mut VecDeque<OneSided>,
    pub(crate) next_one_sided: &'a mut u64,
    pub(crate) timers: &'a mut Timers,
}

impl StrategyCtx<'_> {
    /// Queues a message to `to`.
    pub fn send(&mut self, to: Rank, msg: Message) {
        self.sends.push_back((to, msg));
    }

    /// Joins collective `id` of `kind` with this rank's contribution to each peer. The
    /// engine hands it to the driver, which calls back through
    /// [`Strategy::on_collective_done`]. Every rank taking part joins with the same `id`,
    /// and a rank's ids must increase from one join to the next (a repeat is a fatal
    /// [`crate::EngineError::CollectiveTwice`]). `sends` is normalised into the shape
    /// [`CollectiveJoin`] documents: for [`CollectiveKind::AllToAllV`], peers left out
    /// of `sends` get an empty contribution and a peer named twice gets both lists,
    /// concatenated; contributions to this rank itself are dropped. For
    /// [`CollectiveKind::NeighborAllToAllV`] the same, per destination (a list for a rank
    /// that is not a destination is kept, so the join is refused as malformed). For
    /// [`CollectiveKind::Broadcast`], the root's lists are concatenated into the one list
    /// every member receives, and a non-root's are dropped. For reductions and
    /// all-gathers every list is concatenated into this rank's one contribution.
    pub fn join_collective(&mut self, id: u64, kind: CollectiveKind, sends: Vec<(Rank, Vec<Message>)>) {
        let concatenated =
            |sends: Vec<(Rank, Vec<Message>)>| -> Vec<Message> { sends.into_iter().flat_map(|(_, m)| m).collect() };
        let sends = match &kind {
            CollectiveKind::Fence => Vec::new(),
            CollectiveKind::Broadcast { members, .. } => {
                let messages = concatenated(sends);
                if members.first() == Some(&self.rank) { vec![(self.rank, messages)] } else { Vec::new() }
            }
            CollectiveKind::AllToAllV { .. } => {
                let mut per_peer: Vec<Vec<Message>> = vec![Vec::new(); self.dag.ranks()];
                for (to, messages) in sends {
                    per_peer[to.index()].extend(messages);
                }
                per_peer
                    .into_iter()
                    .enumerate()
                    .map(|(r, m)| (Rank(r as u32), m))
                    .filter(|&(r, _)| r != self.rank)
                    .collect()
            }
            CollectiveKind::NeighborAllToAllV { destinations, .. } => {
                let mut per_peer: Vec<(Rank, Vec<Message>)> = destinations.iter().map(|&d| (d, Vec::new())).collect();
                // Position of each destination by rank, so normalising costs O(ranks + sends).
                let mut at = vec![usize::MAX; self.dag.ranks()];
                for (i, d) in destinations.iter().enumerate() {
                    if let Some(slot) = at.get_mut(d.index()) {
                        *slot = i;
                    }
                }
                for (to, messages) in sends {
                    match at.get(to.index()).filter(|&&i| i != usize::MAX) {
                        Some(&i) => per_peer[i].1.extend(messages),
                        None => per_peer.push((to, messages)),
                    }
                }
                per_peer
            }
            CollectiveKind::AllReduce { .. } | CollectiveKind::ReduceScatter { .. } | CollectiveKind::AllGather => {
                vec![(self.rank, concatenated(sends))]
            }
        };
        self.collectives.push_back(CollectiveJoin { id, kind, sends });
    }

    /// Writes `data` (the bytes of `chunk`, named for traces) at `offset` of `target`'s
    /// window (this rank's own, for a local store) and returns the operation's id, which
    /// [`Strategy::on_one_sided_done`] reports once the bytes are there.
    pub fn put(&mut self, target: Rank, offset: u64, chunk: ChunkId, data: Payload) -> u64 {
        self.one_sided_op(target, offset, chunk, Access::Put(data))
    }

    /// Reads `len` bytes (of `chunk`, named for traces) at `offset` of `target`'s window
    /// (this rank's own, for a local load) and returns the operation's id;
    /// [`Strategy::on_one_sided_done`] hands over the bytes.
    pub fn get(&mut self, target: Rank, offset: u64, chunk: ChunkId, len: u64) -> u64 {
        self.one_sided_op(target, offset, chunk, Access::Get { len })
    }

    /// Registers `data` (the bytes of `chunk`) for remote reads and returns the
    /// registration's id; [`Strategy::on_exposed`] hands over the key readers need
    /// ([`crate::one_sided`]).
    pub fn expose(&mut self, chunk: ChunkId, data: Payload) -> u64 {
        self.one_sided_op(self.rank, 0, chunk, Access::Expose(data))
    }

    /// Reads `len` bytes at `offset` of the memory `from` exposed under `key` (bytes of
    /// `chunk`, named for traces) and returns the operation's id;
    /// [`Strategy::on_one_sided_done`] hands over the bytes.
    pub fn read(&mut self, from: Rank, key: MemoryKey, offset: u64, chunk: ChunkId, len: u64) -> u64 {
        self.one_sided_op(from, offset, chunk, Access::Read { key, len })
    }

    /// Withdraws this rank's exposure `key` (of `chunk`): no reader may read it after.
    pub fn withdraw(&mut self, chunk: ChunkId, key: MemoryKey) {
        self.one_sided_op(self.rank, 0, chunk, Access::Withdraw(key));
    }

    fn one_sided_op(&mut self, target: Rank, offset: u64, chunk: ChunkId, access: Access) -> u64 {
        let id = *self.next_one_sided;
        *self.next_one_sided += 1;
        self.one_sided.push_back(OneSided { id, target, offset, chunk, access });
        id
    }

    /// Arms timer `token` to fire at `at` (ns since the run started; a time already past
    /// fires at the driver's next [`crate::Engine::handle_timeout`]), replacing the
    /// token's earlier deadline. [`Strategy::on_timer`] receives it.
    pub fn set_timer(&mut self, at: u64, token: u64) {
        self.timers.set(at, token);
    }

    /// Disarms timer `token`, if armed.
    pub fn cancel_timer(&mut self, token: u64) {
        self.timers.cancel(token);
    }

    /// Hands a received chunk produced on `src` to the engine (records `Completed`).
    pub fn deliver(&mut self, chunk: ChunkId, src: Rank, payload: Payload) {
        self.phase(chunk, src, self.rank, Phase::Completed);
        self.delivered.push((chunk, src, payload));
    }

    /// Records a phase of the transfer of `chunk` from `src` to `dst`, now.
    pub fn phase(&mut self, chunk: ChunkId, src: Rank, dst: Rank, phase: Phase) {
        self.phase_at(chunk, src, dst, phase, self.now);
    }

    /// Records a phase that happened at `at_ns` (not now), e.g. when a received collective
    /// contribution says when it left its producer.
    pub fn phase_at(&mut self, chunk: ChunkId, src: Rank, dst: Rank, phase: Phase, at_ns: u64) {
        self.events.push(TransferEvent { chunk, src, dst, phase, at_ns });
    }
}
