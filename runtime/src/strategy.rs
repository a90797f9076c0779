//! The transfer-strategy interface: a protocol state machine that moves chunks
//! between ranks using only what the engine lets it do (send messages, deliver
//! chunks, record phases). It never touches a network or a clock.

use crate::dag::Dag;
use crate::ids::{ChunkId, Rank};
use crate::message::Message;
use crate::payload::Payload;
use crate::trace::{Phase, TransferEvent};
use std::collections::VecDeque;
use std::sync::Arc;

/// A transfer protocol, one instance per rank.
///
/// The engine calls [`Strategy::on_chunk_ready`] when a chunk it produced has readers
/// on other ranks and [`Strategy::on_message`] for every message that arrives; the
/// strategy answers through the [`StrategyCtx`]. See `dagwire-strategies` for the
/// protocols themselves.
pub trait Strategy: Send {
    /// The registered name (`eager`, `rendezvous`, ...).
    fn name(&self) -> &'static str;

    /// Name of one of this strategy's message operations, for traces.
    fn op_name(&self, op: u8) -> &'static str;

    /// `chunk` now exists on this rank and `readers` (never this rank) need it.
    fn on_chunk_ready(&mut self, ctx: &mut StrategyCtx<'_>, chunk: ChunkId, data: &Arc<Payload>, readers: &[Rank]);

    /// A message of this strategy arrived from `from`. An error is fatal to the run
    /// and should say what was expected.
    fn on_message(&mut self, ctx: &mut StrategyCtx<'_>, from: Rank, msg: Message) -> Result<(), String>;

    /// True when nothing is in flight on the sending side (the rank may finish).
    fn is_idle(&self) -> bool {
        true
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
    pub(crate) delivered: &'a mut Vec<(ChunkId, Rank, Payload)>,
    pub(crate) events: &'a mut Vec<TransferEvent>,
}

impl StrategyCtx<'_> {
    /// Queues a message to `to`.
    pub fn send(&mut self, to: Rank, msg: Message) {
        self.sends.push_back((to, msg));
    }

    /// Hands a received chunk produced on `src` to the engine (records `Completed`).
    pub fn deliver(&mut self, chunk: ChunkId, src: Rank, payload: Payload) {
        self.phase(chunk, src, self.rank, Phase::Completed);
        self.delivered.push((chunk, src, payload));
    }

    /// Records a phase of the transfer of `chunk` from `src` to `dst`, now.
    pub fn phase(&mut self, chunk: ChunkId, src: Rank, dst: Rank, phase: Phase) {
        self.events.push(TransferEvent { chunk, src, dst, phase, at_ns: self.now });
    }
}
