//! **fabric** (libfabric direct): tagged messages for small chunks, a receiver-pull
//! rendezvous over registered memory for large ones, as UCX's `rndv` get protocol and
//! PaRSEC's remote-dependency engine do.
//!
//! - A chunk smaller than `rdv_limit` bytes (or empty) goes whole in one `fabric-eager`
//!   data message to each reader rank.
//! - A larger chunk is **exposed** (registered for remote reads,
//!   [`StrategyCtx::expose`]); once the driver hands back its key, the producer sends each
//!   reader a small `fabric-key` control message carrying it. The reader **pulls** the
//!   bytes with a one-sided read ([`StrategyCtx::read`], `fi_read` on libfabric, recorded
//!   as an `rdma-read` data message) and then tells the producer it may release them
//!   (`fabric-release`); the producer withdraws the registration once every reader it
//!   covers has released it. Two control messages and one one-sided read per transfer;
//!   the reader never buffers unexpected data, and the producer's CPU takes no part in
//!   moving the bytes.
//! - `mr_cache = on` (the registration cache): one registration per chunk serves all its
//!   reader ranks and lives until the last of them released it. `off`: every transfer
//!   registers the chunk anew and withdraws it after that reader's read, so a chunk read
//!   on `k` ranks is registered `k` times. With one remote reader per chunk the two
//!   coincide. Each registration lands in the trace as a `registration` record (bytes,
//!   and the time it took: the `registrations` and `registration_us` of a run).
//!
//! Phases: the engine records `Posted`; `Started` when the eager data or the key message
//! is sent (producer); `Wire` with the eager data, or when the reader issues its read;
//! `Completed` on delivery.
//!
//! Drivers must offer [`Capability::OneSidedExpose`]: `local` (a table of shared
//! payloads), `sim` (registration cost from the machine model, the read as a one-sided
//! transfer) and `libfabric` (`fi_mr_reg` + `fi_read`); the `mpi` driver has only
//! windows allocated before the run and refuses it.

use crate::StrategyInfo;
use dagwire_runtime::one_sided::MemoryKey;
use dagwire_runtime::trace::Phase;
use dagwire_runtime::{Capability, ChunkId, Message, ParamSpec, Params, Payload, Rank, Strategy, StrategyCtx};
use std::collections::BTreeMap;

/// Registration.
pub const INFO: StrategyInfo = StrategyInfo {
    name: "fabric",
    summary: "libfabric direct: tagged messages below `rdv_limit` bytes; above, the producer registers the chunk \
              and sends its key, the reader pulls it with a one-sided read and tells the producer to release it",
    params,
    needs: |_| NEEDS,
    plan: |params, _| {
        let cfg = Config::from_params(params);
        Box::new(move |_, _| Box::new(Fabric::new(cfg)))
    },
};

/// What the strategy needs from a driver.
pub const NEEDS: &[Capability] = &[Capability::PointToPoint, Capability::OneSidedExpose];

/// Default of `rdv_limit`: 64 KiB, the libfabric driver's pool for mid-size payloads
/// (`POOL_BYTES`): an eager message up to that size lands in a receive the receiver
/// posted ahead, with no registration and no round trip. Measured with `experiment bench
/// fabric` (shm, 2 ranks, 2026-12-06, under `chrt -f 10`): a 32 KiB hop through the
/// engine took 30.0 us one way when the driver pulled the payload (a header, then an
/// `fi_read`: 11.4 us over raw `fi_tsend`), 17.4 us through the pool (1.0 us over raw);
/// this strategy's pull (key message, `fi_read`, release) costs at least the former, so
/// below 64 KiB eager wins. Until the pool the default was 16 KiB, the driver's inline
/// limit, above which an eager payload was itself pulled by the driver.
pub const DEFAULT_RDV_LIMIT: u64 = 64 << 10;

/// The parameters a sweep may set (`fabric.rdv_limit`, `fabric.mr_cache`).
///
/// ```
/// use dagwire_runtime::Params;
/// let p = Params::resolve(&dagwire_strategies::fabric::params(), Default::default()).unwrap();
/// assert_eq!((p.int("rdv_limit"), p.str("mr_cache")), (65536, "on"));
/// ```
pub fn params() -> Vec<ParamSpec> {
    vec![
        ParamSpec::int(
            "rdv_limit",
            0,
            i64::MAX,
            DEFAULT_RDV_LIMIT as i64,
            "chunks smaller than this many bytes go as one tagged message; larger ones are registered and pulled by \
             the reader with a one-sided read (0 = every non-empty chunk)",
        ),
        ParamSpec::choice(
            "mr_cache",
            &["on", "off"],
            "on",
            "on: one registration per chunk serves every reader rank until the last released it; off: every transfer \
             registers the chunk anew and releases it after its read",
        ),
    ]
}

/// The fabric strategy's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Chunks of at least this many bytes (and not empty) go by the pull rendezvous.
    pub rdv_limit: u64,
    /// One registration per chunk (true) or per transfer (false).
    pub mr_cache: bool,
}

impl Config {
    /// The settings for checked parameters.
    pub fn from_params(p: &Params) -> Self {
        Config { rdv_limit: p.int("rdv_limit") as u64, mr_cache: p.str("mr_cache") == "on" }
    }
}

/// The chunk's bytes, for readers below `rdv_limit`.
const EAGER: u8 = 1;
/// Producer to reader: the chunk is exposed; the message's key names it, `arg` is its size.
const KEY: u8 = 2;
/// Reader to producer: the read is done, the registration may go.
const RELEASE: u8 = 3;

/// A registration under way: the chunk and the readers its key goes to.
#[derive(Debug)]
struct Exposing {
    chunk: ChunkId,
    readers: Vec<Rank>,
}

/// A registration readers still need: its key and who has not released it yet.
#[derive(Debug)]
struct Exposed {
    key: MemoryKey,
    waiting: Vec<Rank>,
}

/// A read under way on this rank.
#[derive(Debug)]
struct Reading {
    chunk: ChunkId,
    from: Rank,
}

/// The fabric protocol on one rank.
///
/// ```
/// use dagwire_runtime::Strategy;
/// use dagwire_strategies::fabric::{Config, Fabric};
/// let f = Fabric::new(Config { rdv_limit: 1024, mr_cache: true });
/// assert_eq!((f.name(), f.op_name(2)), ("fabric", "fabric-key"));
/// assert!(f.is_idle());
/// ```
#[derive(Debug)]
pub struct Fabric {
    cfg: Config,
    /// Registrations under way, by operation id.
    exposing: BTreeMap<u64, Exposing>,
    /// Registrations readers hold, by (chunk, reader) with `mr_cache = off`, by (chunk,
    /// this rank) with `on`.
    exposed: BTreeMap<(ChunkId, Rank), Exposed>,
    /// Reads under way, by operation id.
    reading: BTreeMap<u64, Reading>,
}

impl Fabric {
    /// A rank's instance.
    pub fn new(cfg: Config) -> Self {
        Fabric { cfg, exposing: BTreeMap::new(), exposed: BTreeMap::new(), reading: BTreeMap::new() }
    }

    /// Where the registration of `chunk` for `reader` is kept.
    fn slot(&self, chunk: ChunkId, reader: Rank, me: Rank) -> (ChunkId, Rank) {
        if self.cfg.mr_cache { (chunk, me) } else { (chunk, reader) }
    }
}

impl Strategy for Fabric {
    fn name(&self) -> &'static str {
        "fabric"
    }

    fn op_name(&self, op: u8) -> &'static str {
        match op {
            EAGER => "fabric-eager",
            KEY => "fabric-key",
            RELEASE => "fabric-release",
            _ => "unknown",
        }
    }

    fn needs(&self) -> &'static [Capability] {
        NEEDS
    }

    fn on_chunk_ready(&mut self, ctx: &mut StrategyCtx<'_>, chunk: ChunkId, data: &Payload, readers: &[Rank]) {
        if data.is_empty() || (data.len() as u64) < self.cfg.rdv_limit {
            for &reader in readers {
                ctx.phase(chunk, ctx.rank, reader, Phase::Started);
                ctx.phase(chunk, ctx.rank, reader, Phase::Wire);
                ctx.send(reader, Message::data(EAGER, chunk, data.clone()));
            }
            return;
        }
        if self.cfg.mr_cache {
            let id = ctx.expose(chunk, data.clone());
            self.exposing.insert(id, Exposing { chunk, readers: readers.to_vec() });
        } else {
            for &reader in readers {
                let id = ctx.expose(chunk, data.clone());
                self.exposing.insert(id, Exposing { chunk, readers: vec![reader] });
            }
        }
    }

    fn on_exposed(&mut self, ctx: &mut StrategyCtx<'_>, id: u64, key: MemoryKey) -> Result<(), String> {
        let Exposing { chunk, readers } =
            self.exposing.remove(&id).ok_or_else(|| format!("registration {id} completed, but none is under way"))?;
        for &reader in &readers {
            ctx.phase(chunk, ctx.rank, reader, Phase::Started);
            ctx.send(reader, Message::keyed(KEY, chunk, key.len, key));
        }
        let slot = self.slot(chunk, readers[0], ctx.rank);
        self.exposed.insert(slot, Exposed { key, waiting: readers });
        Ok(())
    }

    fn on_message(&mut self, ctx: &mut StrategyCtx<'_>, from: Rank, msg: Message) -> Result<(), String> {
        match (msg.op, msg.payload, msg.key) {
            (EAGER, Some(payload), _) => {
                ctx.deliver(msg.chunk, from, payload);
                Ok(())
            }
            (KEY, None, Some(key)) => {
                ctx.phase(msg.chunk, from, ctx.rank, Phase::Wire);
                let id = ctx.read(from, key, 0, msg.chunk, msg.arg);
                self.reading.insert(id, Reading { chunk: msg.chunk, from });
                Ok(())
            }
            (RELEASE, None, _) => {
                let slot = self.slot(msg.chunk, from, ctx.rank);
                let exposed = self.exposed.get_mut(&slot).ok_or_else(|| {
                    format!("{from} released chunk {}, which this rank has not exposed to it", msg.chunk)
                })?;
                let at = exposed.waiting.iter().position(|&r| r == from).ok_or_else(|| {
                    format!("{from} released chunk {} twice, or without having been sent its key", msg.chunk)
                })?;
                exposed.waiting.swap_remove(at);
                if exposed.waiting.is_empty() {
                    let key = exposed.key;
                    self.exposed.remove(&slot);
                    ctx.withdraw(msg.chunk, key);
                }
                Ok(())
            }
            (op, payload, key) => Err(format!(
                "fabric got operation {op} from {from} with {} and {}; expected eager data ({EAGER}), a key message \
                 ({KEY}) or a release ({RELEASE})",
                if payload.is_some() { "data" } else { "no data" },
                if key.is_some() { "a key" } else { "no key" },
            )),
        }
    }

    fn on_one_sided_done(&mut self, ctx: &mut StrategyCtx<'_>, id: u64, data: Option<Payload>) -> Result<(), String> {
        let Reading { chunk, from } =
            self.reading.remove(&id).ok_or_else(|| format!("read {id} completed, but none is under way"))?;
        let data = data.ok_or_else(|| format!("read {id} of chunk {chunk} completed without its bytes"))?;
        ctx.deliver(chunk, from, data);
        ctx.send(from, Message::control(RELEASE, chunk, 0));
        Ok(())
    }

    fn is_idle(&self) -> bool {
        self.exposing.is_empty() && self.exposed.is_empty() && self.reading.is_empty()
    }
}
