//! **parsec**: PaRSEC's remote dependencies, written from ICLDisco/parsec
//! `parsec/remote_dep_mpi.c` and `parsec/remote_dep.c` at revision `0a7c845a`
//! (2026-05-21).
//!
//! What PaRSEC does there:
//! - When a task completes, its output goes to each remote successor's rank as an
//!   *activation* active message (`PARSEC_CE_REMOTE_DEP_ACTIVATE_TAG`, carrying the task
//!   identity); data of at most `runtime_comm_short_limit` bytes travels inside it
//!   (`parsec_param_short_limit`, default `RDEP_MSG_SHORT_LIMIT` = `PARSEC_DIST_SHORT_LIMIT`
//!   KiB = 1 KiB, `CMakeLists.txt`).
//! - The receiver queues activations (`dep_activates_fifo`) and, while the comm engine
//!   `can_serve` (at most `DEP_NB_CONCURRENT` = 3 operations in flight,
//!   `parsec/remote_dep.h`), starts one: `remote_dep_mpi_get_start` sends a GET
//!   (`PARSEC_CE_REMOTE_DEP_GET_DATA_TAG`) back to the sender, which answers by putting
//!   the data (`remote_dep_mpi_put_start`).
//! - Data with several remote successors propagates along a tree over the destination
//!   ranks (`remote_dep_bcast_child` in `remote_dep.c`): `star` (the root sends to all),
//!   chain (`him == me + 1`, the default `runtime_comm_coll_bcast = 1`) or binomial (a
//!   node's parent is its index with the leading one bit cleared); a rank that received
//!   the data activates its own children (`parsec_remote_dep_propagate`).
//!
//! dagwire's version, per chunk: the destinations are the producer (index 0) and its
//! remote reader ranks in rank order; each node of the tree sends `parsec-activate`
//! (control, `arg` = bytes) or, at most `short_limit` bytes, `parsec-short` (the data
//! inline) to its children; a child with fewer than `max_concurrent` GETs in flight
//! sends `parsec-get` to its parent, which sends `parsec-put` (the data); on arrival
//! the child delivers the chunk and activates its own children. Simplifications: the
//! bound covers GETs only (PaRSEC's `can_serve` also paces puts), activations are not
//! reordered by priority and the datatype and memory registration work is not
//! modelled.

use crate::StrategyInfo;
use dagwire_runtime::trace::Phase;
use dagwire_runtime::{Capability, ChunkId, Message, ParamSpec, Params, Payload, Rank, Strategy, StrategyCtx};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Registration.
pub const INFO: StrategyInfo = StrategyInfo {
    name: "parsec",
    summary: "PaRSEC's remote dependencies: activation (data inline up to short_limit), then the reader's GET \
              when it has capacity and the sender's put; several readers along a star, chain or binomial tree",
    params,
    needs: |_| Capability::POINT_TO_POINT,
    plan: |params, _| {
        let config = Config::from_params(params);
        Box::new(move |_, _| Box::new(Parsec::new(config)))
    },
};

/// Default of `short_limit`: `RDEP_MSG_SHORT_LIMIT`, 1 KiB (`PARSEC_DIST_SHORT_LIMIT` = 1).
pub const DEFAULT_SHORT_LIMIT: i64 = 1024;

/// Default of `max_concurrent`: `DEP_NB_CONCURRENT` (`parsec/remote_dep.h`).
pub const DEFAULT_MAX_CONCURRENT: i64 = 3;

/// The parameters a sweep may set (`parsec.short_limit`, `parsec.max_concurrent`,
/// `parsec.propagation`).
///
/// ```
/// use dagwire_runtime::Params;
/// let p = Params::resolve(&dagwire_strategies::parsec::params(), Default::default()).unwrap();
/// assert_eq!((p.int("short_limit"), p.int("max_concurrent"), p.str("propagation")), (1024, 3, "chain"));
/// ```
pub fn params() -> Vec<ParamSpec> {
    vec![
        ParamSpec::int(
            "short_limit",
            0,
            u32::MAX as i64,
            DEFAULT_SHORT_LIMIT,
            "chunks of at most this many bytes travel inside the activation message; 0 = never",
        ),
        ParamSpec::int(
            "max_concurrent",
            1,
            u32::MAX as i64,
            DEFAULT_MAX_CONCURRENT,
            "GETs a rank has in flight at most (DEP_NB_CONCURRENT); later activations wait in arrival order",
        ),
        ParamSpec::choice(
            "propagation",
            &["star", "chain", "binomial"],
            "chain",
            "how data with several remote readers spreads: the producer activates all (star), each reader the \
             next (chain, PaRSEC's default), or a binomial tree; forwarding readers serve their children's GETs",
        ),
    ]
}

/// Tree shape over (producer, readers...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Propagation {
    /// The producer activates every reader.
    Star,
    /// Destination `i` activates `i + 1`.
    Chain,
    /// Destination `i` activates `i + 2^k` for every `2^k > i`.
    Binomial,
}

impl Propagation {
    /// Positions of `me`'s children in a tree over `n` destinations (0 = the producer).
    ///
    /// ```
    /// use dagwire_strategies::parsec::Propagation;
    /// assert_eq!(Propagation::Star.children(0, 4).collect::<Vec<_>>(), [1, 2, 3]);
    /// assert_eq!(Propagation::Chain.children(1, 4).collect::<Vec<_>>(), [2]);
    /// assert_eq!(Propagation::Binomial.children(0, 6).collect::<Vec<_>>(), [1, 2, 4]);
    /// assert_eq!(Propagation::Binomial.children(1, 6).collect::<Vec<_>>(), [3, 5]);
    /// ```
    pub fn children(self, me: usize, n: usize) -> impl Iterator<Item = usize> {
        let (star, chain) = (self == Propagation::Star, self == Propagation::Chain);
        (me + 1..n).filter(move |&him| {
            if star {
                me == 0
            } else if chain {
                him == me + 1
            } else {
                // remote_dep_bcast_binomial_child: clear him's leading one bit.
                him ^ (1 << (usize::BITS - 1 - him.leading_zeros())) == me
            }
        })
    }
}

/// The checked parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Chunks of at most this many bytes go inside the activation (0: none).
    pub short_limit: u64,
    /// GETs in flight per rank at most.
    pub max_concurrent: usize,
    /// Tree shape.
    pub propagation: Propagation,
}

impl Config {
    /// From parameters resolved against [`params`].
    pub fn from_params(p: &Params) -> Self {
        let propagation = match p.str("propagation") {
            "star" => Propagation::Star,
            "binomial" => Propagation::Binomial,
            _ => Propagation::Chain,
        };
        Config {
            short_limit: p.int("short_limit") as u64,
            max_concurrent: p.int("max_concurrent").max(1) as usize,
            propagation,
        }
    }
}

/// Activation without data; `arg` is the chunk's size.
const ACTIVATE: u8 = 1;
/// Activation with the data inline.
const SHORT: u8 = 2;
/// A child asks its parent for the data.
const GET: u8 = 3;
/// The data, answering a GET.
const PUT: u8 = 4;

/// The PaRSEC protocol, one instance per rank: a node of each chunk's tree.
///
/// ```
/// use dagwire_strategies::parsec::{Config, Parsec, Propagation};
/// use dagwire_runtime::Strategy;
/// let p = Parsec::new(Config { short_limit: 1024, max_concurrent: 3, propagation: Propagation::Chain });
/// assert_eq!([1, 2, 3, 4].map(|op| p.op_name(op)), ["parsec-activate", "parsec-short", "parsec-get", "parsec-put"]);
/// assert!(p.is_idle());
/// ```
#[derive(Debug)]
pub struct Parsec {
    config: Config,
    /// Chunks this rank holds for children that have not fetched them yet.
    owed: BTreeMap<ChunkId, (Payload, Vec<Rank>)>,
    /// Activations received and not yet answered with a GET, in arrival order.
    activations: VecDeque<(ChunkId, Rank)>,
    /// GETs sent whose data has not arrived, by (chunk, parent).
    in_flight: BTreeSet<(ChunkId, Rank)>,
    /// Destinations of the chunk being handled (scratch).
    dests: Vec<Rank>,
    /// Its remote readers (scratch).
    remote: Vec<Rank>,
}

impl Parsec {
    /// A rank's instance.
    pub fn new(config: Config) -> Self {
        Parsec {
            config,
            owed: BTreeMap::new(),
            activations: VecDeque::new(),
            in_flight: BTreeSet::new(),
            dests: Vec::new(),
            remote: Vec::new(),
        }
    }

    /// GETs in flight now (never above `max_concurrent`).
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// This rank holds `chunk` (produced or received): activate its children in the tree.
    fn propagate(&mut self, ctx: &mut StrategyCtx<'_>, chunk: ChunkId, data: &Payload) {
        let producer = ctx.dag.chunk_owner(chunk);
        let mut readers = std::mem::take(&mut self.dests);
        readers.clear();
        readers.push(producer);
        ctx.dag.remote_readers_into(chunk, &mut self.remote);
        readers.extend_from_slice(&self.remote);
        let Some(me) = readers.iter().position(|&r| r == ctx.rank) else {
            self.dests = readers;
            return;
        };
        let short = (data.len() as u64) <= self.config.short_limit;
        let mut waiting = Vec::new();
        for child in self.config.propagation.children(me, readers.len()).map(|i| readers[i]) {
            ctx.phase(chunk, producer, child, Phase::Started);
            if short {
                ctx.phase(chunk, producer, child, Phase::Wire);
                ctx.send(child, Message::data(SHORT, chunk, data.clone()));
            } else {
                ctx.send(child, Message::control(ACTIVATE, chunk, data.len() as u64));
                waiting.push(child);
            }
        }
        if !waiting.is_empty() {
            self.owed.insert(chunk, (data.clone(), waiting));
        }
        self.dests = readers;
    }

    /// Sends GETs for queued activations while fewer than `max_concurrent` are in flight.
    fn start_gets(&mut self, ctx: &mut StrategyCtx<'_>) {
        while self.in_flight.len() < self.config.max_concurrent {
            let Some((chunk, parent)) = self.activations.pop_front() else { break };
            self.in_flight.insert((chunk, parent));
            ctx.send(parent, Message::control(GET, chunk, ctx.dag.chunk(chunk).bytes));
        }
    }

    /// Checks that `chunk` exists and that `from` is this rank's parent in its tree.
    fn check_parent(&mut self, ctx: &StrategyCtx<'_>, from: Rank, chunk: ChunkId, what: &str) -> Result<(), String> {
        if chunk.index() >= ctx.dag.chunk_count() {
            return Err(format!("{what} from {from} for chunk {chunk}, which the DAG does not have"));
        }
        let mut dests = vec![ctx.dag.chunk_owner(chunk)];
        dests.extend(ctx.dag.remote_readers(chunk));
        let me = dests.iter().position(|&r| r == ctx.rank);
        let parent = dests.iter().position(|&r| r == from);
        let ok = match (me, parent) {
            (Some(me), Some(p)) => self.config.propagation.children(p, dests.len()).any(|c| c == me),
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(format!("{what} from {from} for chunk {chunk}, which is not this rank's parent in the chunk's tree"))
        }
    }

    /// The data arrived: forward it down the tree, then hand it to the engine.
    fn on_data(&mut self, ctx: &mut StrategyCtx<'_>, chunk: ChunkId, data: Payload) {
        let producer = ctx.dag.chunk_owner(chunk);
        self.propagate(ctx, chunk, &data);
        ctx.deliver(chunk, producer, data);
    }
}

impl Strategy for Parsec {
    fn name(&self) -> &'static str {
        "parsec"
    }

    fn op_name(&self, op: u8) -> &'static str {
        match op {
            ACTIVATE => "parsec-activate",
            SHORT => "parsec-short",
            GET => "parsec-get",
            PUT => "parsec-put",
            _ => "unknown",
        }
    }

    fn on_chunk_ready(&mut self, ctx: &mut StrategyCtx<'_>, chunk: ChunkId, data: &Payload, _: &[Rank]) {
        self.propagate(ctx, chunk, data);
    }

    fn on_message(&mut self, ctx: &mut StrategyCtx<'_>, from: Rank, msg: Message) -> Result<(), String> {
        let chunk = msg.chunk;
        match (msg.op, msg.payload) {
            (ACTIVATE, None) => {
                self.check_parent(ctx, from, chunk, "activation")?;
                if self.in_flight.contains(&(chunk, from)) || self.activations.contains(&(chunk, from)) {
                    return Err(format!("second activation for chunk {chunk} from {from}"));
                }
                self.activations.push_back((chunk, from));
                self.start_gets(ctx);
                Ok(())
            }
            (SHORT, Some(data)) => {
                self.check_parent(ctx, from, chunk, "short activation")?;
                self.on_data(ctx, chunk, data);
                Ok(())
            }
            (GET, None) => {
                let unexpected =
                    || format!("GET from {from} for chunk {chunk}, which this rank did not activate it for");
                let (data, children) = self.owed.get_mut(&chunk).ok_or_else(unexpected)?;
                let at = children.iter().position(|&c| c == from).ok_or_else(unexpected)?;
                children.swap_remove(at);
                let data =
                    if children.is_empty() { self.owed.remove(&chunk).expect("present").0 } else { data.clone() };
                ctx.phase(chunk, ctx.dag.chunk_owner(chunk), from, Phase::Wire);
                ctx.send(from, Message::data(PUT, chunk, data));
                Ok(())
            }
            (PUT, Some(data)) => {
                if !self.in_flight.remove(&(chunk, from)) {
                    return Err(format!(
                        "data for chunk {chunk} from {from} without a GET; expected activate, GET, put"
                    ));
                }
                self.on_data(ctx, chunk, data);
                self.start_gets(ctx);
                Ok(())
            }
            (op, payload) => Err(format!(
                "parsec got {} ({op}, {}) from {from}; expected parsec-activate, parsec-short, parsec-get or parsec-put",
                self.op_name(op),
                if payload.is_some() { "with data" } else { "control" }
            )),
        }
    }

    /// Idle when this rank owes no child data and waits for none.
    fn is_idle(&self) -> bool {
        self.owed.is_empty() && self.activations.is_empty() && self.in_flight.is_empty()
    }
}
