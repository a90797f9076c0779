//! **eager**: the producer sends the data as soon as it exists, one message per
//! reader rank; the receiver takes it whenever it arrives (unexpected messages are
//! buffered by the transport). One message per transfer, no control traffic.

use crate::StrategyInfo;
use dagwire_runtime::trace::Phase;
use dagwire_runtime::{Capability, ChunkId, Message, Payload, Rank, Strategy, StrategyCtx};

/// Registration. Eager plans nothing: every rank's instance is the same empty one.
pub const INFO: StrategyInfo = StrategyInfo {
    name: "eager",
    summary: "producer sends each chunk to every reader rank as soon as it exists (1 data message per transfer)",
    params: Vec::new,
    needs: |_| Capability::POINT_TO_POINT,
    plan: |_, _| Box::new(|_, _| Box::new(Eager)),
};

/// Operation code of the only message.
const DATA: u8 = 1;

/// The eager protocol. It keeps no state: a send is done once queued.
///
/// ```
/// use dagwire_strategies::eager::Eager;
/// use dagwire_runtime::Strategy;
/// assert_eq!(Eager.name(), "eager");
/// assert_eq!(Eager.op_name(1), "eager-data");
/// ```
#[derive(Debug, Default)]
pub struct Eager;

impl Strategy for Eager {
    fn name(&self) -> &'static str {
        "eager"
    }

    fn op_name(&self, op: u8) -> &'static str {
        match op {
            DATA => "eager-data",
            _ => "unknown",
        }
    }

    fn on_chunk_ready(&mut self, ctx: &mut StrategyCtx<'_>, chunk: ChunkId, data: &Payload, readers: &[Rank]) {
        for &reader in readers {
            ctx.phase(chunk, ctx.rank, reader, Phase::Started);
            ctx.phase(chunk, ctx.rank, reader, Phase::Wire);
            ctx.send(reader, Message::data(DATA, chunk, data.clone()));
        }
    }

    fn on_message(&mut self, ctx: &mut StrategyCtx<'_>, from: Rank, msg: Message) -> Result<(), String> {
        match (msg.op, msg.payload) {
            (DATA, Some(payload)) => {
                ctx.deliver(msg.chunk, from, payload);
                Ok(())
            }
            (op, _) => Err(format!("eager got operation {op} from {from}, expected a data message ({DATA})")),
        }
    }
}
