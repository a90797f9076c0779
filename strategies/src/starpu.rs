//! **starpu**: StarPU-MPI's data transfers, written from starpu-runtime/starpu
//! `mpi/src/mpi/starpu_mpi_mpi.c` and `mpi/src/starpu_mpi_cache.c` at revision
//! `3f3cc82a` (2026-08-13).
//!
//! What StarPU-MPI does there:
//! - Every rank submits the same sequential task flow; the data access modes of each
//!   task tell every rank which data it must send or receive (`starpu_mpi_task_insert`):
//!   the owner of a datum a remote task reads sends it, the task's rank receives it.
//! - A send is an envelope (`struct _starpu_mpi_envelope`: data tag and size, on
//!   `_STARPU_MPI_TAG_ENVELOPE`) followed by the data (`MPI_Isend` on the data tag,
//!   `_starpu_mpi_isend_data_func`); a receiver that gets an envelope before it posted the
//!   matching receive keeps it as early data. StarPU itself has no size threshold: small
//!   data goes eagerly and large data by rendezvous inside the MPI library. dagwire
//!   makes that library's switch explicit as `starpu.eager_limit`, default 65536 bytes:
//!   Open MPI 4.1.4's `btl_tcp_eager_limit` (`ompi_info --param btl tcp --level 9` on
//!   this machine reports 65536 as its default).
//! - The receive cache (`starpu_mpi_cache.c`, on unless `STARPU_MPI_CACHE=0`): once a
//!   rank received a version of a datum, later tasks on that rank that read the same
//!   version use the cached copy and the owner does not send it again. With the cache
//!   off, every task that reads remote data gets its own transfer.
//!
//! dagwire's version, per (chunk, reading rank), or per (chunk, reading task) with
//! `cache = off`: `starpu-envelope` (control, `arg` = bytes), then at most
//! `eager_limit` bytes go at once as `starpu-data`; larger chunks wait for the reader's
//! `starpu-ready` (MPI's clear-to-send; the reader's receive is posted at submission,
//! so it answers at once) and then go as `starpu-data`. Simplifications: the MPI
//! rendezvous's own request-to-send is folded into the envelope; early-data buffer
//! allocation, the progression thread and cooperative sends are not modelled. With the
//! cache off the reader checks that every copy holds the same bytes as the first.

use crate::StrategyInfo;
use dagwire_runtime::trace::Phase;
use dagwire_runtime::{Capability, ChunkId, Dag, Message, ParamSpec, Params, Payload, Rank, Strategy, StrategyCtx};
use std::collections::BTreeMap;

/// Registration.
pub const INFO: StrategyInfo = StrategyInfo {
    name: "starpu",
    summary: "StarPU-MPI: envelope then data, eager up to eager_limit and rendezvous above, with the receive \
              cache on (each chunk once per rank) or off (once per reading task)",
    params,
    needs: |_| Capability::POINT_TO_POINT,
    plan: |params, _| {
        let config = Config::from_params(params);
        Box::new(move |_, _| Box::new(Starpu::new(config)))
    },
};

/// Default of `eager_limit`: Open MPI 4.1.4's `btl_tcp_eager_limit`.
pub const DEFAULT_EAGER_LIMIT: i64 = 65536;

/// The parameters a sweep may set (`starpu.eager_limit`, `starpu.cache`).
///
/// ```
/// use dagwire_runtime::Params;
/// let p = Params::resolve(&dagwire_strategies::starpu::params(), Default::default()).unwrap();
/// assert_eq!((p.int("eager_limit"), p.str("cache")), (65536, "on"));
/// ```
pub fn params() -> Vec<ParamSpec> {
    vec![
        ParamSpec::int(
            "eager_limit",
            0,
            i64::MAX,
            DEFAULT_EAGER_LIMIT,
            "chunks of at most this many bytes follow their envelope at once; larger ones wait for the reader's \
             ready (the MPI library's rendezvous)",
        ),
        ParamSpec::choice(
            "cache",
            &["on", "off"],
            "on",
            "on: a rank receives each chunk once (StarPU-MPI's receive cache); off: once per task there that reads it",
        ),
    ]
}

/// The checked parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Chunks of at most this many bytes go eagerly.
    pub eager_limit: u64,
    /// The receive cache.
    pub cache: bool,
}

impl Config {
    /// From parameters resolved against [`params`].
    pub fn from_params(p: &Params) -> Self {
        Config { eager_limit: p.int("eager_limit") as u64, cache: p.str("cache") == "on" }
    }
}

/// Copies of `chunk` that `rank` receives: 1 with the cache, else one per task there
/// that reads it.
///
/// ```
/// use dagwire_runtime::{DagBuilder, KernelId, Rank, TaskSpec};
/// let mut b = DagBuilder::new(2);
/// let p = b.add(TaskSpec::new(KernelId(0), Rank(0)).outputs(&[8]));
/// for _ in 0..3 {
///     b.add(TaskSpec::new(KernelId(0), Rank(1)).inputs(&[p.output(0), p.output(0)]).outputs(&[8]));
/// }
/// let dag = b.finish();
/// assert_eq!(dagwire_strategies::starpu::copies(&dag, p.output(0), Rank(1), true), 1);
/// assert_eq!(dagwire_strategies::starpu::copies(&dag, p.output(0), Rank(1), false), 3);
/// ```
pub fn copies(dag: &Dag, chunk: ChunkId, rank: Rank, cache: bool) -> u32 {
    if cache {
        return 1;
    }
    let mut tasks = dag.consumers(chunk).iter().filter(|&&t| dag.task(t).owner == rank).peekable();
    let mut n = 0;
    while let Some(t) = tasks.next() {
        n += 1;
        while tasks.peek() == Some(&t) {
            tasks.next();
        }
    }
    n
}

/// Envelope: the chunk's size in `arg`.
const ENVELOPE: u8 = 1;
/// Reader to sender: the receive is posted, send the data (above `eager_limit`).
const READY: u8 = 2;
/// The chunk's bytes.
const DATA: u8 = 3;

/// A chunk arriving on this rank, copy by copy.
#[derive(Debug)]
struct Incoming {
    src: Rank,
    expected: u32,
    envelopes: u32,
    datas: u32,
    /// The first copy's bytes: delivered once an envelope came, then kept to compare later copies.
    first: Option<Payload>,
    delivered: bool,
}

/// The StarPU-MPI protocol, one instance per rank.
///
/// ```
/// use dagwire_strategies::starpu::{Config, Starpu};
/// use dagwire_runtime::Strategy;
/// let s = Starpu::new(Config { eager_limit: 65536, cache: true });
/// assert_eq!([1, 2, 3].map(|op| s.op_name(op)), ["starpu-envelope", "starpu-ready", "starpu-data"]);
/// assert!(s.is_idle());
/// ```
#[derive(Debug)]
pub struct Starpu {
    config: Config,
    /// Sender side, above the eager limit: (chunk, reader) -> the bytes and the copies owed.
    owed: BTreeMap<(ChunkId, Rank), (Payload, u32, bool)>,
    /// Receiver side.
    incoming: BTreeMap<ChunkId, Incoming>,
}

impl Starpu {
    /// A rank's instance.
    pub fn new(config: Config) -> Self {
        Starpu { config, owed: BTreeMap::new(), incoming: BTreeMap::new() }
    }

    fn entry(&mut self, ctx: &StrategyCtx<'_>, src: Rank, chunk: ChunkId) -> Result<&mut Incoming, String> {
        if chunk.index() >= ctx.dag.chunk_count() {
            return Err(format!("message from {src} for chunk {chunk}, which the DAG does not have"));
        }
        if ctx.dag.chunk_owner(chunk) != src {
            return Err(format!("chunk {chunk} from {src}, which did not produce it"));
        }
        let expected = copies(ctx.dag, chunk, ctx.rank, self.config.cache);
        Ok(self.incoming.entry(chunk).or_insert(Incoming {
            src,
            expected,
            envelopes: 0,
            datas: 0,
            first: None,
            delivered: false,
        }))
    }

    /// Delivers the first copy once an envelope and data are here; forgets the chunk
    /// once every copy's envelope and data arrived.
    fn settle(&mut self, ctx: &mut StrategyCtx<'_>, chunk: ChunkId) {
        let inc = self.incoming.get_mut(&chunk).expect("present");
        if !inc.delivered && inc.envelopes > 0 && inc.first.is_some() {
            inc.delivered = true;
            let data = if inc.expected == 1 { inc.first.take() } else { inc.first.clone() };
            ctx.deliver(chunk, inc.src, data.expect("checked"));
        }
        if inc.envelopes == inc.expected && inc.datas == inc.expected && inc.delivered {
            self.incoming.remove(&chunk);
        }
    }
}

impl Strategy for Starpu {
    fn name(&self) -> &'static str {
        "starpu"
    }

    fn op_name(&self, op: u8) -> &'static str {
        match op {
            ENVELOPE => "starpu-envelope",
            READY => "starpu-ready",
            DATA => "starpu-data",
            _ => "unknown",
        }
    }

    fn on_chunk_ready(&mut self, ctx: &mut StrategyCtx<'_>, chunk: ChunkId, data: &Payload, readers: &[Rank]) {
        let bytes = data.len() as u64;
        let eager = bytes <= self.config.eager_limit;
        for &reader in readers {
            let n = copies(ctx.dag, chunk, reader, self.config.cache);
            for copy in 0..n {
                if copy == 0 {
                    ctx.phase(chunk, ctx.rank, reader, Phase::Started);
                }
                ctx.send(reader, Message::control(ENVELOPE, chunk, bytes));
                if eager {
                    if copy == 0 {
                        ctx.phase(chunk, ctx.rank, reader, Phase::Wire);
                    }
                    ctx.send(reader, Message::data(DATA, chunk, data.clone()));
                }
            }
            if !eager {
                self.owed.insert((chunk, reader), (data.clone(), n, false));
            }
        }
    }

    fn on_message(&mut self, ctx: &mut StrategyCtx<'_>, from: Rank, msg: Message) -> Result<(), String> {
        let chunk = msg.chunk;
        match (msg.op, msg.payload) {
            (ENVELOPE, None) => {
                let eager_limit = self.config.eager_limit;
                let size = ctx.dag.chunk_count().gt(&chunk.index()).then(|| ctx.dag.chunk(chunk).bytes);
                let inc = self.entry(ctx, from, chunk)?;
                // A chunk sized at run time announces its real size, at most its bound.
                let fits = size == Some(msg.arg)
                    || size.is_some_and(|bound| ctx.dag.is_sized_at_run_time(chunk) && msg.arg <= bound);
                if !fits {
                    return Err(format!("envelope from {from} for chunk {chunk} announces {} bytes", msg.arg));
                }
                if inc.envelopes == inc.expected {
                    return Err(format!(
                        "envelope {} for chunk {chunk} from {from}; expected {}",
                        inc.envelopes + 1,
                        inc.expected
                    ));
                }
                inc.envelopes += 1;
                if msg.arg > eager_limit {
                    ctx.send(from, Message::control(READY, chunk, msg.arg));
                }
                self.settle(ctx, chunk);
                Ok(())
            }
            (READY, None) => {
                let unexpected = || format!("ready from {from} for chunk {chunk}, which this rank owes it no copy of");
                let (data, left, wired) = self.owed.get_mut(&(chunk, from)).ok_or_else(unexpected)?;
                if !*wired {
                    *wired = true;
                    ctx.phase(chunk, ctx.rank, from, Phase::Wire);
                }
                *left -= 1;
                let data = if *left == 0 { self.owed.remove(&(chunk, from)).expect("present").0 } else { data.clone() };
                ctx.send(from, Message::data(DATA, chunk, data));
                Ok(())
            }
            (DATA, Some(data)) => {
                let inc = self.entry(ctx, from, chunk)?;
                if inc.datas == inc.expected {
                    return Err(format!(
                        "copy {} of chunk {chunk} from {from}; expected {}",
                        inc.datas + 1,
                        inc.expected
                    ));
                }
                inc.datas += 1;
                match &inc.first {
                    None if !inc.delivered => inc.first = Some(data),
                    Some(first) if first.as_bytes() != data.as_bytes() => {
                        return Err(format!("copy {} of chunk {chunk} from {from} differs from the first", inc.datas));
                    }
                    _ => {}
                }
                self.settle(ctx, chunk);
                Ok(())
            }
            (op, payload) => Err(format!(
                "starpu got {} ({op}, {}) from {from}; expected starpu-envelope, starpu-ready or starpu-data",
                self.op_name(op),
                if payload.is_some() { "with data" } else { "control" }
            )),
        }
    }

    /// Idle when this rank owes no copy and every copy addressed to it arrived.
    fn is_idle(&self) -> bool {
        self.owed.is_empty() && self.incoming.is_empty()
    }
}
