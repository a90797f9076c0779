//! **dagger**: the protocol of Dagger.jl's MPI acceleration, written from
//! JuliaParallel/Dagger.jl `src/mpi.jl` at revision `2f50523f` (2026-05-18, "MPI:
//! inclusion of MPIRPC and the interfaces with datadeps"; the code moved to
//! `ext/MPIExt.jl` by `59081dcb`, with the same send and receive paths).
//!
//! What Dagger does there:
//! - Every rank runs the same scheduler over the same DAG (SPMD, no central scheduler).
//! - `execute!(proc::MPIProcessor, ...)`: after a task, its owner sends the result's
//!   type and memory space `(T, space.innerSpace)` with `bcast_send_yield`, which is a
//!   loop `for other_rank in 0:(sz-1)` of `send_yield` to every other rank (no
//!   `MPI_Bcast`); every other rank `recv_yield`s it before it goes on. (Dagger skips
//!   the loop when Julia's inference gives a concrete return type; `metadata = all` is
//!   the case where it does not, `readers` and `none` are the fixes a researcher
//!   would try.)
//! - `send_yield_serialized` of a dense array sends a serialized `InplaceInfo` header
//!   (element type and shape) and then the array's bytes as a second message with the
//!   same tag (`send_yield_inplace`); the receiver `Improbe`s for the header, then for
//!   the payload, and `yield()`s between polls.
//! - Tags come from the object's reference (`to_tag(::MPIRefID)`, a thunk id, asserted
//!   below `MPI.tag_ub()`; later revisions hash `(tid, sub)`). Receives on one
//!   `(comm, src, tag)` are serialised through `RECV_WAITING`, and MPI's non-overtaking
//!   rule keeps header and payload of one send in order.
//!
//! dagwire's version, per (chunk, reader rank): the producer sends a `dagger-header`
//! (control, `arg` = the tag) then `dagger-payload` (data, same tag); with
//! `header = inline` one `dagger-inline` message carries both. After each task, its
//! owner sends `dagger-meta` (control, `arg` = the task id) to every other rank
//! (`metadata = all`), to the ranks that read one of its outputs (`readers`) or to
//! nobody (`none`: the metadata rides on the header). The metadata of a task is sent
//! before the data of its outputs, as in Dagger (the task finishes, then its
//! consumers' moves run). A reader delivers a chunk once its header, its payload and
//! (unless `none`) its producer's metadata arrived; a rank is not done before every
//! metadata message addressed to it arrived, as every Dagger rank waits in
//! `recv_yield` for each task's metadata.
//!
//! Tags are `hash(chunk) mod tag_bound`. Simplifications and the collision rule:
//! dagwire messages carry the chunk id in their envelope, and dagwire's drivers do
//! not promise that a small message sent after a large one arrives after it. So a
//! payload is matched first as MPI would (the oldest open transfer from that source
//! with that tag) and, when that transfer is another chunk's (two transfers in flight
//! with one tag: a collision), by the envelope's chunk id; collisions are counted
//! ([`Dagger::collisions`]) and never mix up data. Serialisation costs, the
//! probe-and-yield polling and Julia's task switches are not modelled: what remains is
//! the message pattern (how many, how big, in which order).

use crate::StrategyInfo;
use dagwire_runtime::message::NO_CHUNK;
use dagwire_runtime::trace::Phase;
use dagwire_runtime::{
    Capability, ChunkId, Dag, Message, ParamSpec, Params, Payload, Rank, Strategy, StrategyCtx, TaskId,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Registration.
pub const INFO: StrategyInfo = StrategyInfo {
    name: "dagger",
    summary: "Dagger.jl's MPI protocol: header then payload per transfer, the task's metadata from its owner \
              to every other rank after each task by a loop of sends, tags hashed from the reference",
    params,
    needs: |_| Capability::POINT_TO_POINT,
    plan: |params, dag| {
        let config = Config::from_params(params);
        let expected = Arc::new(expected_metadata(dag, config.metadata));
        Box::new(move |rank, _| Box::new(Dagger::new(config, expected[rank.index()])))
    },
};

/// Default of `tag_bound`: 32767, the smallest `MPI_TAG_UB` the MPI standard allows
/// (MPI 4.1, section 8.1.2; Open MPI's ob1 offers 2^31 - 1, so this is the bound a
/// portable code can count on).
pub const DEFAULT_TAG_BOUND: i64 = 32767;

/// The parameters a sweep may set (`dagger.metadata`, `dagger.header`, `dagger.tag_bound`).
///
/// ```
/// use dagwire_runtime::Params;
/// let p = Params::resolve(&dagwire_strategies::dagger::params(), Default::default()).unwrap();
/// assert_eq!((p.str("metadata"), p.str("header"), p.int("tag_bound")), ("all", "separate", 32767));
/// ```
pub fn params() -> Vec<ParamSpec> {
    vec![
        ParamSpec::choice(
            "metadata",
            &["all", "readers", "none"],
            "all",
            "after each task its owner sends the result's metadata to every other rank (all, as Dagger does \
             when inference fails), only to ranks that read the result (readers), or to nobody, piggybacked on \
             the header (none)",
        ),
        ParamSpec::choice(
            "header",
            &["separate", "inline"],
            "separate",
            "separate: a serialized header message, then the payload (Dagger's dense-array path); inline: one \
             message",
        ),
        ParamSpec::int(
            "tag_bound",
            1,
            i32::MAX as i64,
            DEFAULT_TAG_BOUND,
            "tags are hash(reference) mod this (MPI_TAG_UB); small values make transfers share tags",
        ),
    ]
}

/// Where a task's metadata goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metadata {
    /// To every other rank, after every task.
    All,
    /// To the ranks that read one of the task's outputs.
    Readers,
    /// Nowhere: it rides on the header.
    None,
}

/// The checked parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Where metadata goes.
    pub metadata: Metadata,
    /// Header and payload as two messages.
    pub separate_header: bool,
    /// Tags are below this.
    pub tag_bound: u32,
}

impl Config {
    /// From parameters resolved against [`params`].
    pub fn from_params(p: &Params) -> Self {
        let metadata = match p.str("metadata") {
            "readers" => Metadata::Readers,
            "none" => Metadata::None,
            _ => Metadata::All,
        };
        let tag_bound = u32::try_from(p.int("tag_bound")).expect("checked to be in 1..=i32::MAX");
        Config { metadata, separate_header: p.str("header") == "separate", tag_bound }
    }
}

/// Metadata messages every rank receives in a run of `dag`: with [`Metadata::All`] one
/// per task of another rank, with [`Metadata::Readers`] one per task of another rank
/// with an output it reads.
pub fn expected_metadata(dag: &Dag, metadata: Metadata) -> Vec<u64> {
    let p = dag.ranks();
    let mut expected = vec![0u64; p];
    match metadata {
        Metadata::None => {}
        Metadata::All => {
            for (r, e) in expected.iter_mut().enumerate() {
                *e = (dag.task_count() - dag.tasks_of(Rank(r as u32)).len()) as u64;
            }
        }
        Metadata::Readers => {
            let (mut readers, mut union) = (Vec::new(), Vec::new());
            for t in dag.task_ids() {
                task_readers(dag, t, &mut readers, &mut union);
                union.iter().for_each(|r| expected[r.index()] += 1);
            }
        }
    }
    expected
}

/// The ranks other than its owner that read one of `task`'s outputs, sorted, into
/// `union` (`scratch` is reused).
fn task_readers(dag: &Dag, task: TaskId, scratch: &mut Vec<Rank>, union: &mut Vec<Rank>) {
    union.clear();
    for c in dag.task(task).outputs() {
        dag.remote_readers_into(c, scratch);
        union.extend_from_slice(scratch);
    }
    union.sort_unstable();
    union.dedup();
}

/// The tag of `chunk` below `bound`: a 64-bit mix (splitmix64's finaliser) of its id,
/// as Dagger hashes its references, reduced modulo the bound.
///
/// ```
/// use dagwire_runtime::ChunkId;
/// use dagwire_strategies::dagger::tag;
/// assert!(tag(ChunkId(7), 100) < 100);
/// assert_eq!(tag(ChunkId(7), 1), 0);
/// ```
pub fn tag(chunk: ChunkId, bound: u32) -> u32 {
    let mut z = u64::from(chunk.0).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z % u64::from(bound)) as u32
}

/// The task's metadata, owner to other ranks; `arg` is the task id.
const META: u8 = 1;
/// The serialized header; `arg` is the tag.
const HEADER: u8 = 2;
/// The chunk's bytes after its header; `arg` is the tag.
const PAYLOAD: u8 = 3;
/// Header and bytes in one message (`header = inline`); `arg` is the tag.
const INLINE: u8 = 4;

/// A transfer to this rank in progress.
#[derive(Debug)]
struct Incoming {
    src: Rank,
    tag: u32,
    header: bool,
    payload: Option<Payload>,
}

/// The Dagger protocol, one instance per rank.
///
/// ```
/// use dagwire_strategies::dagger::{Config, Dagger, Metadata};
/// use dagwire_runtime::Strategy;
/// let d = Dagger::new(Config { metadata: Metadata::All, separate_header: true, tag_bound: 32767 }, 0);
/// assert_eq!([1, 2, 3, 4].map(|op| d.op_name(op)), ["dagger-meta", "dagger-header", "dagger-payload", "dagger-inline"]);
/// assert!(d.is_idle());
/// ```
#[derive(Debug)]
pub struct Dagger {
    config: Config,
    /// Metadata messages this rank must receive before it is done.
    meta_expected: u64,
    meta_received: u64,
    /// Tasks whose metadata arrived and whose outputs this rank reads.
    meta_seen: BTreeSet<TaskId>,
    /// Outputs of the task that is finishing, sent after its metadata.
    ready: Vec<(ChunkId, Payload, Vec<Rank>)>,
    /// Transfers to this rank in progress, by chunk.
    incoming: BTreeMap<ChunkId, Incoming>,
    /// Open transfers to this rank per (source, tag), in arrival order of their first message.
    by_tag: BTreeMap<(Rank, u32), Vec<ChunkId>>,
    collisions: u64,
    scratch: Vec<Rank>,
    union: Vec<Rank>,
}

impl Dagger {
    /// A rank's instance that will receive `meta_expected` metadata messages
    /// ([`expected_metadata`]).
    pub fn new(config: Config, meta_expected: u64) -> Self {
        Dagger {
            config,
            meta_expected,
            meta_received: 0,
            meta_seen: BTreeSet::new(),
            ready: Vec::new(),
            incoming: BTreeMap::new(),
            by_tag: BTreeMap::new(),
            collisions: 0,
            scratch: Vec::new(),
            union: Vec::new(),
        }
    }

    /// Payloads whose tag matched another chunk's open transfer first (resolved by the
    /// chunk id; no data was mixed up).
    pub fn collisions(&self) -> u64 {
        self.collisions
    }

    /// Metadata messages received so far.
    pub fn metadata_received(&self) -> u64 {
        self.meta_received
    }

    fn needs_meta(&self) -> bool {
        self.config.metadata != Metadata::None
    }

    /// The open transfer of `chunk` from `src` with `tag`, created at its first message.
    fn open(&mut self, src: Rank, chunk: ChunkId, tag: u32) -> Result<&mut Incoming, String> {
        if !self.incoming.contains_key(&chunk) {
            self.by_tag.entry((src, tag)).or_default().push(chunk);
            self.incoming.insert(chunk, Incoming { src, tag, header: false, payload: None });
        }
        let inc = self.incoming.get_mut(&chunk).expect("inserted");
        if (inc.src, inc.tag) != (src, tag) {
            return Err(format!(
                "chunk {chunk} came from {src} with tag {tag}, but its transfer is from {} with tag {}",
                inc.src, inc.tag
            ));
        }
        Ok(inc)
    }

    /// A payload from `src` with `tag`, for the chunk its envelope names: match it as MPI
    /// would (oldest open transfer with a header on that (source, tag)) and count a
    /// collision when that is another chunk.
    fn on_payload(
        &mut self,
        ctx: &mut StrategyCtx<'_>,
        src: Rank,
        chunk: ChunkId,
        tag: u32,
        payload: Payload,
        inline: bool,
    ) -> Result<(), String> {
        if !inline && self.config.separate_header {
            let first = self.by_tag.get(&(src, tag)).and_then(|open| {
                open.iter().copied().find(|c| self.incoming.get(c).is_some_and(|i| i.header && i.payload.is_none()))
            });
            if first.is_some_and(|c| c != chunk) {
                self.collisions += 1;
            }
        }
        let inc = self.open(src, chunk, tag)?;
        if inc.payload.is_some() {
            return Err(format!("second payload for chunk {chunk} from {src}; expected one per transfer"));
        }
        if inline {
            inc.header = true;
        }
        inc.payload = Some(payload);
        self.try_deliver(ctx, chunk);
        Ok(())
    }

    /// Hands `chunk` over if its header, payload and (when needed) metadata are here.
    fn try_deliver(&mut self, ctx: &mut StrategyCtx<'_>, chunk: ChunkId) {
        let Some(inc) = self.incoming.get(&chunk) else { return };
        let meta = !self.needs_meta() || self.meta_seen.contains(&ctx.dag.chunk(chunk).producer);
        if !(inc.header && inc.payload.is_some() && meta) {
            return;
        }
        let inc = self.incoming.remove(&chunk).expect("present");
        if let Some(open) = self.by_tag.get_mut(&(inc.src, inc.tag)) {
            open.retain(|&c| c != chunk);
            if open.is_empty() {
                self.by_tag.remove(&(inc.src, inc.tag));
            }
        }
        ctx.deliver(chunk, inc.src, inc.payload.expect("checked"));
    }

    fn on_meta(&mut self, ctx: &mut StrategyCtx<'_>, src: Rank, task: u64) -> Result<(), String> {
        let dag = ctx.dag;
        let task = u32::try_from(task)
            .ok()
            .filter(|&t| (t as usize) < dag.task_count())
            .map(TaskId)
            .ok_or_else(|| format!("metadata from {src} for task {task}, which the DAG does not have"))?;
        if dag.task(task).owner != src {
            return Err(format!("metadata for task {task} from {src}, which does not own it"));
        }
        if self.meta_received == self.meta_expected {
            return Err(format!("metadata for task {task} from {src} beyond the {} expected", self.meta_expected));
        }
        self.meta_received += 1;
        let reads = dag.task(task).outputs().any(|c| dag.consumers(c).iter().any(|&t| dag.task(t).owner == ctx.rank));
        if reads {
            if !self.meta_seen.insert(task) {
                return Err(format!("second metadata for task {task} from {src}"));
            }
            for c in dag.task(task).outputs() {
                self.try_deliver(ctx, c);
            }
        }
        Ok(())
    }
}

impl Strategy for Dagger {
    fn name(&self) -> &'static str {
        "dagger"
    }

    fn op_name(&self, op: u8) -> &'static str {
        match op {
            META => "dagger-meta",
            HEADER => "dagger-header",
            PAYLOAD => "dagger-payload",
            INLINE => "dagger-inline",
            _ => "unknown",
        }
    }

    fn on_chunk_ready(&mut self, _: &mut StrategyCtx<'_>, chunk: ChunkId, data: &Payload, readers: &[Rank]) {
        // Sent in on_task_done, after the task's metadata.
        self.ready.push((chunk, data.clone(), readers.to_vec()));
    }

    fn on_task_done(&mut self, ctx: &mut StrategyCtx<'_>, task: TaskId) {
        let meta = Message::control(META, NO_CHUNK, u64::from(task.0));
        match self.config.metadata {
            Metadata::All => {
                let me = ctx.rank;
                for r in (0..ctx.dag.ranks() as u32).map(Rank).filter(|&r| r != me) {
                    ctx.send(r, meta.clone());
                }
            }
            Metadata::Readers => {
                task_readers(ctx.dag, task, &mut self.scratch, &mut self.union);
                for &r in &self.union {
                    ctx.send(r, meta.clone());
                }
            }
            Metadata::None => {}
        }
        for (chunk, data, readers) in self.ready.drain(..) {
            let tag = u64::from(tag(chunk, self.config.tag_bound));
            for &reader in &readers {
                ctx.phase(chunk, ctx.rank, reader, Phase::Started);
                if self.config.separate_header {
                    ctx.send(reader, Message::control(HEADER, chunk, tag));
                }
                ctx.phase(chunk, ctx.rank, reader, Phase::Wire);
                let op = if self.config.separate_header { PAYLOAD } else { INLINE };
                let mut msg = Message::data(op, chunk, data.clone());
                msg.arg = tag;
                ctx.send(reader, msg);
            }
        }
    }

    fn on_message(&mut self, ctx: &mut StrategyCtx<'_>, from: Rank, msg: Message) -> Result<(), String> {
        let known = msg.chunk == NO_CHUNK || msg.chunk.index() < ctx.dag.chunk_count();
        if !known {
            return Err(format!("message from {from} for chunk {}, which the DAG does not have", msg.chunk));
        }
        let tag = u32::try_from(msg.arg).unwrap_or(u32::MAX);
        match (msg.op, msg.payload) {
            (META, None) => self.on_meta(ctx, from, msg.arg),
            (HEADER, None) if self.config.separate_header => {
                let inc = self.open(from, msg.chunk, tag)?;
                if inc.header {
                    return Err(format!("second header for chunk {} from {from}", msg.chunk));
                }
                inc.header = true;
                self.try_deliver(ctx, msg.chunk);
                Ok(())
            }
            (PAYLOAD, Some(p)) if self.config.separate_header => self.on_payload(ctx, from, msg.chunk, tag, p, false),
            (INLINE, Some(p)) if !self.config.separate_header => self.on_payload(ctx, from, msg.chunk, tag, p, true),
            (op, payload) => Err(format!(
                "dagger got {} ({op}, {}) from {from}; expected dagger-meta, then {}",
                self.op_name(op),
                if payload.is_some() { "with data" } else { "control" },
                if self.config.separate_header { "dagger-header and dagger-payload" } else { "dagger-inline" }
            )),
        }
    }

    /// Idle once every transfer to this rank was delivered and every metadata message
    /// addressed to it arrived.
    fn is_idle(&self) -> bool {
        self.incoming.is_empty() && self.ready.is_empty() && self.meta_received == self.meta_expected
    }
}
