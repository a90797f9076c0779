//! Strategies the runtime's own tests share, so they do not depend on the strategies crate.

use dagwire_runtime::trace::Phase;
use dagwire_runtime::{ChunkId, Message, Payload, Rank, Strategy, StrategyCtx};

/// A minimal eager protocol: every chunk goes whole to each remote reader in one data
/// message (operation 1), recorded as on the wire when sent.
pub struct Push;

impl Strategy for Push {
    fn name(&self) -> &'static str {
        "push"
    }
    fn op_name(&self, _: u8) -> &'static str {
        "push-data"
    }
    fn on_chunk_ready(&mut self, ctx: &mut StrategyCtx<'_>, chunk: ChunkId, data: &Payload, readers: &[Rank]) {
        for &r in readers {
            ctx.phase(chunk, ctx.rank, r, Phase::Wire);
            ctx.send(r, Message::data(1, chunk, data.clone()));
        }
    }
    fn on_message(&mut self, ctx: &mut StrategyCtx<'_>, from: Rank, msg: Message) -> Result<(), String> {
        let payload = msg.payload.ok_or("push expects data")?;
        ctx.deliver(msg.chunk, from, payload);
        Ok(())
    }
}

pub mod dynamic;

/// Numbers its messages to each destination and refuses any that arrives out of that
/// order: a driver keeps one source's messages in order, through its posted receives
/// and separately received large payloads.
#[derive(Default)]
#[allow(dead_code)] // not every test program uses it
pub struct Sequenced {
    sent: Vec<u64>,
    due: Vec<u64>,
}

impl Strategy for Sequenced {
    fn name(&self) -> &'static str {
        "sequenced"
    }
    fn op_name(&self, _: u8) -> &'static str {
        "sequenced-data"
    }
    fn on_chunk_ready(&mut self, ctx: &mut StrategyCtx<'_>, chunk: ChunkId, data: &Payload, readers: &[Rank]) {
        self.sent.resize(ctx.dag.ranks(), 0);
        for &r in readers {
            let mut msg = Message::data(0, chunk, data.clone());
            msg.arg = self.sent[r.index()];
            self.sent[r.index()] += 1;
            ctx.send(r, msg);
        }
    }
    fn on_message(&mut self, ctx: &mut StrategyCtx<'_>, from: Rank, msg: Message) -> Result<(), String> {
        self.due.resize(ctx.dag.ranks(), 0);
        let due = &mut self.due[from.index()];
        if msg.arg != *due {
            return Err(format!("message {} from {from} arrived when {due} was due", msg.arg));
        }
        *due += 1;
        ctx.deliver(msg.chunk, from, msg.payload.ok_or("a data message without data")?);
        Ok(())
    }
}
