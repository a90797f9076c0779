//! A strategy the runtime's own tests share, so they do not depend on the strategies crate.

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
