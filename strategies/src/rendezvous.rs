//! **rendezvous**: receiver-driven transfers. For each (chunk, reader rank) the
//! producer sends a small ready-to-send (`rts`, its argument is the chunk's size);
//! the reader answers clear-to-send (`cts`) once it has a receive buffer for it;
//! only then does the producer send the bytes (`rndv-data`). Three messages per
//! transfer and no unexpected data on the reader.
//!
//! Receive buffers are the reader's to give: at most `max_receives` transfers may
//! hold a clear-to-send that has not been answered with data yet, per rank; further
//! ready-to-sends wait in arrival (FIFO) order and are granted as data arrives.
//!
//! With `eager_limit > 0` this is the classic hybrid: a chunk smaller than
//! `eager_limit` bytes goes in one `eager-data` message with no control traffic.
//!
//! Phases recorded: `Started` when the ready-to-send (or the eager data) is sent and
//! `Wire` when the data is sent, both on the producer; the engine records `Posted`
//! and the reader's delivery records `Completed`.

use crate::StrategyInfo;
use dagwire_runtime::trace::Phase;
use dagwire_runtime::{Capability, ChunkId, Message, ParamSpec, Params, Payload, Rank, Strategy, StrategyCtx};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::num::NonZeroUsize;

/// Registration.
pub const INFO: StrategyInfo = StrategyInfo {
    name: "rendezvous",
    summary: "ready-to-send, clear-to-send when the reader has a buffer, then the data (3 messages per \
              transfer); chunks below `eager_limit` bytes go eagerly",
    params,
    needs: |_| Capability::POINT_TO_POINT,
    plan: |params, _| {
        let (eager_limit, max_receives) = {
            let r = Rendezvous::from_params(params);
            (r.eager_limit, NonZeroUsize::new(r.max_receives).expect("checked to be >= 1"))
        };
        Box::new(move |_, _| Box::new(Rendezvous::new(eager_limit, max_receives)))
    },
};

/// Default of the `eager_limit` parameter: every chunk goes through the rendezvous.
pub const DEFAULT_EAGER_LIMIT: u64 = 0;

/// Default of the `max_receives` parameter.
pub const DEFAULT_MAX_RECEIVES: usize = 64;

/// The parameters a sweep may set (`rendezvous.eager_limit`, `rendezvous.max_receives`).
///
/// ```
/// use dagwire_runtime::{ParamValue, Params};
/// let specs = dagwire_strategies::rendezvous::params();
/// let p = Params::resolve(&specs, Default::default()).unwrap();
/// assert_eq!((p.int("eager_limit"), p.int("max_receives")), (0, 64));
/// let zero = [("max_receives".to_string(), ParamValue::Int(0))].into();
/// assert!(Params::resolve(&specs, zero).unwrap_err().to_string().contains(">= 1"));
/// ```
pub fn params() -> Vec<ParamSpec> {
    vec![
        ParamSpec::int(
            "eager_limit",
            0,
            i64::MAX,
            DEFAULT_EAGER_LIMIT as i64,
            "chunks smaller than this many bytes are sent eagerly in one message; 0 = always rendezvous",
        ),
        ParamSpec::int(
            "max_receives",
            1,
            i64::MAX,
            DEFAULT_MAX_RECEIVES as i64,
            "receive buffers per rank: clear-to-sends granted but not yet answered with data",
        ),
    ]
}

/// Ready-to-send, producer to reader; `arg` is the chunk's size in bytes.
const RTS: u8 = 1;
/// Clear-to-send, reader to producer; `arg` echoes the size.
const CTS: u8 = 2;
/// The chunk's bytes after a clear-to-send.
const RNDV_DATA: u8 = 3;
/// The chunk's bytes without a handshake (below `eager_limit`).
const EAGER_DATA: u8 = 4;

/// A chunk this rank produced and still owes to some readers.
#[derive(Debug)]
struct Owed {
    /// The bytes, kept alive until the last clear-to-send is answered.
    data: Payload,
    /// Readers that were sent a ready-to-send and have not been sent the data yet.
    readers: Vec<Rank>,
}

/// A ready-to-send this rank received: which chunk, from which producer, how big.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Offer {
    chunk: ChunkId,
    src: Rank,
    bytes: u64,
}

/// The rendezvous protocol (with an optional eager path), one instance per rank.
///
/// It is both sides at once: as a producer it keeps each chunk until every reader's
/// clear-to-send has been answered; as a reader it grants at most `max_receives`
/// clear-to-sends at a time, first come first served.
///
/// ```
/// use dagwire_strategies::rendezvous::Rendezvous;
/// use dagwire_runtime::Strategy;
/// use std::num::NonZeroUsize;
/// let r = Rendezvous::new(4096, NonZeroUsize::new(8).unwrap());
/// assert_eq!((r.eager_limit(), r.max_receives()), (4096, 8));
/// assert_eq!(r.name(), "rendezvous");
/// assert_eq!([1, 2, 3, 4].map(|op| r.op_name(op)), ["rts", "cts", "rndv-data", "eager-data"]);
/// assert!(r.is_idle());
/// ```
#[derive(Debug)]
pub struct Rendezvous {
    eager_limit: u64,
    max_receives: usize,
    /// Producer side: chunks with readers still owed data.
    owed: BTreeMap<ChunkId, Owed>,
    /// Reader side: ready-to-sends not yet granted, in arrival order.
    waiting: VecDeque<Offer>,
    /// Reader side: clear-to-sends sent whose data has not arrived, by (chunk, producer).
    granted: BTreeSet<(ChunkId, Rank)>,
}

impl Default for Rendezvous {
    /// [`DEFAULT_EAGER_LIMIT`] and [`DEFAULT_MAX_RECEIVES`].
    fn default() -> Self {
        Rendezvous::new(DEFAULT_EAGER_LIMIT, NonZeroUsize::new(DEFAULT_MAX_RECEIVES).expect("non-zero"))
    }
}

impl Rendezvous {
    /// Chunks smaller than `eager_limit` bytes go eagerly (0: none do); at most
    /// `max_receives` clear-to-sends are outstanding on this rank at a time.
    pub fn new(eager_limit: u64, max_receives: NonZeroUsize) -> Self {
        Rendezvous {
            eager_limit,
            max_receives: max_receives.get(),
            owed: BTreeMap::new(),
            waiting: VecDeque::new(),
            granted: BTreeSet::new(),
        }
    }

    /// From checked parameters ([`params`]).
    ///
    /// # Panics
    /// If `params` were not resolved against [`params`] (a missing or negative value,
    /// or `max_receives = 0`), which is a bug in the caller.
    pub fn from_params(params: &Params) -> Self {
        let eager_limit = u64::try_from(params.int("eager_limit")).expect("eager_limit is checked to be >= 0");
        let max_receives = usize::try_from(params.int("max_receives")).unwrap_or(usize::MAX);
        Rendezvous::new(eager_limit, NonZeroUsize::new(max_receives).expect("max_receives is checked to be >= 1"))
    }

    /// Chunks smaller than this many bytes are sent eagerly.
    pub fn eager_limit(&self) -> u64 {
        self.eager_limit
    }

    /// Most clear-to-sends this rank has outstanding at once.
    pub fn max_receives(&self) -> usize {
        self.max_receives
    }

    /// Clear-to-sends this rank sent whose data has not arrived yet (never above
    /// [`Rendezvous::max_receives`]).
    pub fn granted(&self) -> usize {
        self.granted.len()
    }

    /// Ready-to-sends this rank received and has not granted yet.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// (chunk, reader) pairs this rank still owes data to.
    pub fn owed(&self) -> usize {
        self.owed.values().map(|o| o.readers.len()).sum()
    }

    /// Grants clear-to-sends, oldest ready-to-send first, while buffers are free.
    fn grant(&mut self, ctx: &mut StrategyCtx<'_>) {
        while self.granted.len() < self.max_receives {
            let Some(offer) = self.waiting.pop_front() else { break };
            self.granted.insert((offer.chunk, offer.src));
            ctx.send(offer.src, Message::control(CTS, offer.chunk, offer.bytes));
        }
    }

    /// A ready-to-send from `src`: queue it and grant what the buffers allow.
    fn on_rts(&mut self, ctx: &mut StrategyCtx<'_>, src: Rank, chunk: ChunkId, bytes: u64) -> Result<(), String> {
        let known =
            self.granted.contains(&(chunk, src)) || self.waiting.iter().any(|o| (o.chunk, o.src) == (chunk, src));
        if known {
            return Err(format!("second ready-to-send for chunk {chunk} from {src}; expected one per transfer"));
        }
        if ctx.dag.chunk_count() <= chunk.index() {
            return Err(format!("ready-to-send from {src} for chunk {chunk}, which the DAG does not have"));
        }
        let size = ctx.dag.chunk(chunk).bytes;
        if ctx.dag.is_sized_at_run_time(chunk) && bytes > size {
            return Err(format!(
                "ready-to-send from {src} for chunk {chunk} announces {bytes} bytes, above its bound of {size}"
            ));
        }
        if !ctx.dag.is_sized_at_run_time(chunk) && size != bytes {
            return Err(format!("ready-to-send from {src} for chunk {chunk} announces {bytes} bytes; expected {size}"));
        }
        self.waiting.push_back(Offer { chunk, src, bytes });
        self.grant(ctx);
        Ok(())
    }

    /// A clear-to-send from `reader`: send it the data, dropping the chunk after the last one.
    fn on_cts(&mut self, ctx: &mut StrategyCtx<'_>, reader: Rank, chunk: ChunkId) -> Result<(), String> {
        let unexpected = || {
            format!(
                "clear-to-send from {reader} for chunk {chunk}, to which this rank owes no data; expected one only \
                 in answer to a ready-to-send, once"
            )
        };
        let owed = self.owed.get_mut(&chunk).ok_or_else(unexpected)?;
        let at = owed.readers.iter().position(|&r| r == reader).ok_or_else(unexpected)?;
        owed.readers.swap_remove(at);
        let payload =
            if owed.readers.is_empty() { self.owed.remove(&chunk).expect("present").data } else { owed.data.clone() };
        ctx.phase(chunk, ctx.rank, reader, Phase::Wire);
        ctx.send(reader, Message::data(RNDV_DATA, chunk, payload));
        Ok(())
    }

    /// Rendezvous data from `src`: it must answer a clear-to-send of ours.
    fn on_data(
        &mut self,
        ctx: &mut StrategyCtx<'_>,
        src: Rank,
        chunk: ChunkId,
        payload: Payload,
    ) -> Result<(), String> {
        if !self.granted.remove(&(chunk, src)) {
            return Err(format!(
                "rendezvous data for chunk {chunk} from {src} without a clear-to-send; expected rts, then cts, then data"
            ));
        }
        ctx.deliver(chunk, src, payload);
        self.grant(ctx);
        Ok(())
    }
}

impl Strategy for Rendezvous {
    fn name(&self) -> &'static str {
        "rendezvous"
    }

    fn op_name(&self, op: u8) -> &'static str {
        match op {
            RTS => "rts",
            CTS => "cts",
            RNDV_DATA => "rndv-data",
            EAGER_DATA => "eager-data",
            _ => "unknown",
        }
    }

    fn on_chunk_ready(&mut self, ctx: &mut StrategyCtx<'_>, chunk: ChunkId, data: &Payload, readers: &[Rank]) {
        let bytes = data.len() as u64;
        if bytes < self.eager_limit {
            for &reader in readers {
                ctx.phase(chunk, ctx.rank, reader, Phase::Started);
                ctx.phase(chunk, ctx.rank, reader, Phase::Wire);
                ctx.send(reader, Message::data(EAGER_DATA, chunk, data.clone()));
            }
            return;
        }
        for &reader in readers {
            ctx.phase(chunk, ctx.rank, reader, Phase::Started);
            ctx.send(reader, Message::control(RTS, chunk, bytes));
        }
        if !readers.is_empty() {
            self.owed.insert(chunk, Owed { data: data.clone(), readers: readers.to_vec() });
        }
    }

    fn on_message(&mut self, ctx: &mut StrategyCtx<'_>, from: Rank, msg: Message) -> Result<(), String> {
        match (msg.op, msg.payload) {
            (RTS, None) => self.on_rts(ctx, from, msg.chunk, msg.arg),
            (CTS, None) => self.on_cts(ctx, from, msg.chunk),
            (RNDV_DATA, Some(payload)) => self.on_data(ctx, from, msg.chunk, payload),
            (EAGER_DATA, Some(payload)) => {
                ctx.deliver(msg.chunk, from, payload);
                Ok(())
            }
            (op @ (RTS | CTS), Some(_)) => Err(format!(
                "{} from {from} for chunk {} carries data; expected a control message",
                self.op_name(op),
                msg.chunk
            )),
            (op @ (RNDV_DATA | EAGER_DATA), None) => Err(format!(
                "{} from {from} for chunk {} has no payload; expected the chunk's bytes",
                self.op_name(op),
                msg.chunk
            )),
            (op, _) => Err(format!(
                "rendezvous got operation {op} from {from}, expected rts ({RTS}), cts ({CTS}), rndv-data ({RNDV_DATA}) \
                 or eager-data ({EAGER_DATA})"
            )),
        }
    }

    /// Idle when this rank owes no data and expects none through a handshake.
    fn is_idle(&self) -> bool {
        self.owed.is_empty() && self.waiting.is_empty() && self.granted.is_empty()
    }
}
