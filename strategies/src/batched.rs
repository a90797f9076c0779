//! **batched** (collective batching): transfers are gathered per epoch and moved with
//! one all-to-all-v per epoch; chunks with many reader ranks may instead go by a
//! broadcast tree. Fewer, larger messages; an epoch boundary is a synchronisation point.
//!
//! # Epochs
//!
//! Every rank cuts the DAG into epochs from the DAG alone ([`epochs`]), so all ranks
//! agree without talking. A chunk belongs to the epoch of the task that produces it.
//! - `epochs = "level"`: a task's epoch is its topological level (0 for tasks without
//!   inputs, otherwise one more than the deepest producer of its inputs). A chunk of
//!   epoch `e` is read only by tasks of later epochs.
//! - `epochs = "tasks"`: tasks are taken in id order (a topological order), at most
//!   `epoch_tasks` per epoch; an epoch closes early when the next task reads a chunk
//!   produced *on another rank* in the current epoch, so a task's remote inputs always
//!   come from strictly earlier epochs (its local inputs may come from its own epoch).
//!
//! # Protocol
//!
//! Every chunk read on another rank moves in a collective of its epoch. With
//! `bcast_threshold = 0` (the default) all of them go in the epoch's **all-to-all-v**
//! (`alltoall = pairwise` or `bruck`: the algorithm, where the driver runs the shared
//! collectives of [`dagwire_runtime::collectives`]);
//! otherwise a chunk read on more than `bcast_threshold` other ranks goes by its own
//! **broadcast** from its producer to exactly its reader ranks, along a binomial tree or
//! a pipelined chain (`tree`, `segment_bytes`), and the rest in the all-to-all-v.
//!
//! The collectives of one run are totally ordered, the same on every rank: by epoch,
//! then the all-to-all-v (if any chunk of the epoch goes that way) before the broadcasts,
//! by chunk. Their ids follow that order ([`all_to_all_id`], [`broadcast_id`]). Every
//! rank joins every all-to-all-v, and the broadcasts it is a member of, in that order,
//! one at a time: it joins a collective of epoch `e` once the one before has completed
//! here and every local task that produces a chunk of epoch `e` read on another rank has
//! finished. A rank's all-to-all-v contribution to each peer is one `batch-data` message
//! per chunk of epoch `e` that peer reads, or one `batch-empty` header when there is
//! none; a broadcast carries one `batch-bcast` message. Chunks arrive only through these
//! collectives; nothing moves point to point.
//!
//! **No deadlock**, by induction over that order: when every collective before `C`
//! (of epoch `e`) has completed on every rank, each rank holds every remote chunk its
//! epoch-`e` tasks read (remote inputs come from earlier epochs, hence earlier
//! collectives) and its local inputs come from local tasks of epoch `<= e`; so all its
//! epoch-`e` producers can run, every member of `C` joins it, and `C` completes.
//! Collectives take no worker, so tasks of later epochs keep running meanwhile.
//!
//! Phases: the engine records `Posted`; `Started` when the producer joins the chunk's
//! collective; `Wire` when the contribution carrying the chunk left the producer (the
//! driver's time, recorded by the reader; for a broadcast, the root's join); `Completed`
//! when the collective completed on the reader. Messages: one record per contribution a
//! rank receives — all-to-all-v: per (collective, sender, receiver), data (its chunks'
//! bytes, named after its first chunk) or control (a header); broadcast: per tree edge.

use crate::StrategyInfo;
use dagwire_runtime::collective::{AllToAllAlgorithm, Tree};
use dagwire_runtime::message::NO_CHUNK;
use dagwire_runtime::trace::Phase;
use dagwire_runtime::{
    Capability, ChunkId, CollectiveKind, Contribution, Dag, Message, ParamSpec, Params, Payload, Rank, Strategy,
    StrategyCtx, TaskId,
};
use std::collections::BTreeMap;
use std::num::NonZeroU32;

/// Registration.
pub const INFO: StrategyInfo = StrategyInfo {
    name: "batched",
    summary: "the DAG is cut into epochs every rank computes alike; each epoch's transfers move in one all-to-all-v, \
              chunks with many reader ranks optionally by broadcast trees (fewer, larger messages; an epoch boundary \
              synchronises the ranks)",
    params,
    build: |params: &Params, _rank: Rank, _ranks: usize| Box::new(Batched::from_params(params)),
};

/// Default of the `epoch_tasks` parameter.
pub const DEFAULT_EPOCH_TASKS: u32 = 64;

/// Default of the `segment_bytes` parameter.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 * 1024;

/// The parameters a sweep may set (`batched.epochs`, `batched.epoch_tasks`,
/// `batched.alltoall`, `batched.bcast_threshold`, `batched.tree`, `batched.segment_bytes`).
///
/// ```
/// use dagwire_runtime::{ParamValue, Params};
/// let specs = dagwire_strategies::batched::params();
/// let p = Params::resolve(&specs, Default::default()).unwrap();
/// assert_eq!((p.str("epochs"), p.int("epoch_tasks")), ("level", 64));
/// assert_eq!((p.int("bcast_threshold"), p.str("tree"), p.int("segment_bytes")), (0, "binomial", 65536));
/// assert_eq!(p.str("alltoall"), "pairwise");
/// let bad = [("epochs".to_string(), ParamValue::Str("rounds".into()))].into();
/// assert!(Params::resolve(&specs, bad).unwrap_err().to_string().contains("one of level, tasks"));
/// ```
pub fn params() -> Vec<ParamSpec> {
    vec![
        ParamSpec::choice(
            "epochs",
            &["level", "tasks"],
            "level",
            "how the DAG is cut into epochs: level (topological level of the producing task) or tasks \
             (epoch_tasks tasks in id order, closing early where a task reads a remote chunk of its epoch)",
        ),
        ParamSpec::int(
            "epoch_tasks",
            1,
            u32::MAX as i64,
            DEFAULT_EPOCH_TASKS as i64,
            "with epochs = tasks: most tasks per epoch (fewer means more, smaller collectives)",
        ),
        ParamSpec::choice(
            "alltoall",
            AllToAllAlgorithm::NAMES,
            "pairwise",
            "the epoch all-to-all-v's algorithm: pairwise (p - 1 steps, each contribution straight to its reader) \
             or bruck (ceil(log2 p) rounds of larger messages, blocks forwarded through other ranks); drivers with \
             native collectives (mpi) use their own",
        ),
        ParamSpec::int(
            "bcast_threshold",
            0,
            u32::MAX as i64,
            0,
            "a chunk read on more than this many other ranks goes by its own broadcast tree instead of the \
             all-to-all-v; 0 = never",
        ),
        ParamSpec::choice(
            "tree",
            &["binomial", "chain"],
            "binomial",
            "broadcast tree: binomial, or chain (pipelined in segment_bytes segments)",
        ),
        ParamSpec::int(
            "segment_bytes",
            1,
            i64::MAX,
            DEFAULT_SEGMENT_BYTES as i64,
            "with tree = chain: bytes per pipelined segment",
        ),
    ]
}

/// The id of epoch `epoch`'s all-to-all-v: `epoch * 2^32`.
///
/// ```
/// use dagwire_runtime::ChunkId;
/// use dagwire_strategies::batched::{all_to_all_id, broadcast_id};
/// assert_eq!(all_to_all_id(1), 1 << 32);
/// assert!(all_to_all_id(1) < broadcast_id(1, ChunkId(0)));
/// assert!(broadcast_id(1, ChunkId(7)) < broadcast_id(1, ChunkId(8)));
/// assert!(broadcast_id(1, ChunkId(u32::MAX - 1)) < all_to_all_id(2));
/// ```
pub fn all_to_all_id(epoch: u32) -> u64 {
    (epoch as u64) << 32
}

/// The id of the broadcast of `chunk`, of epoch `epoch`: `epoch * 2^32 + chunk + 1`.
pub fn broadcast_id(epoch: u32, chunk: ChunkId) -> u64 {
    all_to_all_id(epoch) + chunk.0 as u64 + 1
}

/// How the DAG is cut into epochs (see the [module docs](self)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Epochs {
    /// An epoch per topological level.
    Level,
    /// At most this many tasks per epoch, in id order.
    Tasks(NonZeroU32),
}

/// The epoch of every task, indexed by task id: the same on every rank, as it depends
/// on the DAG alone. Epochs never decrease with task id, and a task's inputs produced on
/// another rank always come from a strictly earlier epoch.
///
/// ```
/// use dagwire_runtime::{DagBuilder, KernelId, Rank, TaskSpec};
/// use dagwire_strategies::batched::{Epochs, epochs};
/// use std::num::NonZeroU32;
/// let mut b = DagBuilder::new(2);
/// let a = b.add(TaskSpec::new(KernelId(0), Rank(0)).outputs(&[8]));
/// let local = b.add(TaskSpec::new(KernelId(0), Rank(0)).inputs(&[a.output(0)]).outputs(&[8]));
/// b.add(TaskSpec::new(KernelId(0), Rank(1)).inputs(&[a.output(0)]).outputs(&[8]));
/// b.add(TaskSpec::new(KernelId(0), Rank(1)).inputs(&[local.output(0)]).outputs(&[8]));
/// let dag = b.finish();
/// assert_eq!(epochs(&dag, Epochs::Level), [0, 1, 1, 2]);
/// // Ten tasks per epoch, but a remote read of the current epoch closes it.
/// assert_eq!(epochs(&dag, Epochs::Tasks(NonZeroU32::new(10).unwrap())), [0, 0, 1, 1]);
/// ```
pub fn epochs(dag: &Dag, mode: Epochs) -> Vec<u32> {
    let mut epoch = vec![0u32; dag.task_count()];
    let producer_epoch = |epoch: &[u32], c: ChunkId| epoch[dag.chunk(c).producer.index()];
    match mode {
        Epochs::Level => {
            for t in dag.task_ids() {
                let e = dag.inputs(t).iter().map(|&c| producer_epoch(&epoch, c) + 1).max().unwrap_or(0);
                epoch[t.index()] = e;
            }
        }
        Epochs::Tasks(per_epoch) => {
            let (mut current, mut in_current) = (0u32, 0u32);
            for t in dag.task_ids() {
                let owner = dag.task(t).owner;
                let after_remote = dag
                    .inputs(t)
                    .iter()
                    .filter(|&&c| dag.chunk_owner(c) != owner)
                    .map(|&c| producer_epoch(&epoch, c) + 1)
                    .max()
                    .unwrap_or(0);
                if after_remote > current {
                    (current, in_current) = (after_remote, 0);
                }
                epoch[t.index()] = current;
                in_current += 1;
                if in_current == per_epoch.get() {
                    (current, in_current) = (current + 1, 0);
                }
            }
        }
    }
    epoch
}

/// Operation code of a chunk in an all-to-all-v contribution; `arg` is the epoch.
const DATA: u8 = 1;
/// Operation code of an empty contribution; `arg` is the epoch.
const EMPTY: u8 = 2;
/// Operation code of a broadcast chunk; `arg` is the epoch.
const BCAST: u8 = 3;

/// One collective this rank takes part in.
#[derive(Debug)]
struct Collective {
    id: u64,
    epoch: u32,
    what: What,
}

/// Which collective, with what this rank needs to take part.
#[derive(Debug)]
enum What {
    /// The epoch's all-to-all-v, with the chunks this rank receives in it (sorted).
    AllToAllV { incoming: Vec<ChunkId> },
    /// The broadcast of `chunk` to `members` (its producer first, then its reader ranks).
    Broadcast { chunk: ChunkId, members: Vec<Rank> },
}

/// What one rank knows and owes, built from the DAG when the run starts.
#[derive(Debug)]
struct Plan {
    /// This rank's collectives, in the run's order.
    collectives: Vec<Collective>,
    /// Local tasks with an output read on another rank, with their epoch; sorted by task.
    senders: Vec<(TaskId, u32)>,
    /// Per epoch: local senders not finished yet (absent: none).
    unfinished: BTreeMap<u32, u32>,
    /// Per epoch: (reader, chunk, bytes) this rank contributes to its all-to-all-v.
    outbox: BTreeMap<u32, Vec<(Rank, ChunkId, Payload)>>,
    /// Chunks this rank broadcasts, until their broadcast.
    roots: BTreeMap<ChunkId, Payload>,
    /// The next collective to join (index into `collectives`).
    next: usize,
    /// The collective joined and not completed yet.
    joined: Option<usize>,
}

impl Plan {
    fn new(dag: &Dag, rank: Rank, mode: Epochs, broadcast: Option<u32>) -> Plan {
        let epoch = epochs(dag, mode);
        let epoch_of = |c: ChunkId| epoch[dag.chunk(c).producer.index()];
        let by_broadcast = |readers: usize| broadcast.is_some_and(|t| readers > t as usize);
        let mut collectives: Vec<Collective> = Vec::new();
        let mut a2a_epochs: Vec<u32> = Vec::new();
        for c in (0..dag.chunk_count() as u32).map(ChunkId) {
            let readers = dag.remote_readers(c);
            if readers.is_empty() {
                continue;
            }
            let (e, owner) = (epoch_of(c), dag.chunk_owner(c));
            if !by_broadcast(readers.len()) {
                a2a_epochs.push(e);
            } else if owner == rank || readers.contains(&rank) {
                let members: Vec<Rank> = std::iter::once(owner).chain(readers).collect();
                collectives.push(Collective {
                    id: broadcast_id(e, c),
                    epoch: e,
                    what: What::Broadcast { chunk: c, members },
                });
            }
        }
        a2a_epochs.sort_unstable();
        a2a_epochs.dedup();
        collectives.extend(a2a_epochs.into_iter().map(|e| Collective {
            id: all_to_all_id(e),
            epoch: e,
            what: What::AllToAllV { incoming: Vec::new() },
        }));
        collectives.sort_unstable_by_key(|c| c.id);
        let mut incoming: Vec<ChunkId> = dag
            .tasks_of(rank)
            .iter()
            .flat_map(|&t| dag.inputs(t))
            .copied()
            .filter(|&c| dag.chunk_owner(c) != rank)
            .collect();
        incoming.sort_unstable();
        incoming.dedup();
        for c in incoming {
            if by_broadcast(dag.remote_readers(c).len()) {
                continue;
            }
            let at = collectives.binary_search_by_key(&all_to_all_id(epoch_of(c)), |k| k.id).expect("planned above");
            let What::AllToAllV { incoming } = &mut collectives[at].what else { unreachable!("an all-to-all-v id") };
            incoming.push(c);
        }
        let mut unfinished = BTreeMap::new();
        let mut senders = Vec::new();
        for &t in dag.tasks_of(rank) {
            if dag.task(t).outputs().any(|c| dag.is_read_remotely(c)) {
                senders.push((t, epoch[t.index()]));
                *unfinished.entry(epoch[t.index()]).or_insert(0) += 1;
            }
        }
        Plan {
            collectives,
            senders,
            unfinished,
            outbox: BTreeMap::new(),
            roots: BTreeMap::new(),
            next: 0,
            joined: None,
        }
    }

    /// The epoch of a local sending task.
    fn epoch_of_sender(&self, task: TaskId) -> Option<u32> {
        self.senders.binary_search_by_key(&task, |&(t, _)| t).ok().map(|i| self.senders[i].1)
    }
}

/// The batched protocol, one instance per rank. It plans lazily, when the run starts,
/// since only then does it see the DAG.
///
/// ```
/// use dagwire_runtime::collective::Tree;
/// use dagwire_runtime::{Capability, Strategy};
/// use dagwire_strategies::batched::{Batched, Epochs};
/// let b = Batched::new(Epochs::Level);
/// assert_eq!([1, 2, 3].map(|op| b.op_name(op)), ["batch-data", "batch-empty", "batch-bcast"]);
/// assert_eq!(b.needs(), &[Capability::AllToAllV]);
/// assert!(!b.is_idle(), "not started: it does not know its collectives yet");
/// let with_trees = Batched::new(Epochs::Level).with_broadcast(3, Tree::Binomial);
/// assert_eq!(with_trees.needs(), &[Capability::AllToAllV, Capability::Broadcast]);
/// ```
#[derive(Debug)]
pub struct Batched {
    mode: Epochs,
    alltoall: AllToAllAlgorithm,
    /// Chunks read on more than this many other ranks go by broadcast (`None`: never).
    broadcast: Option<u32>,
    tree: Tree,
    plan: Option<Plan>,
}

impl Batched {
    /// A batched strategy cutting epochs by `mode`, moving every chunk in all-to-all-vs.
    pub fn new(mode: Epochs) -> Self {
        Batched { mode, alltoall: AllToAllAlgorithm::Pairwise, broadcast: None, tree: Tree::Binomial, plan: None }
    }

    /// Chunks read on more than `threshold` other ranks go by a broadcast along `tree`
    /// (a `threshold` of 0 means never, as the parameter does).
    pub fn with_broadcast(mut self, threshold: u32, tree: Tree) -> Self {
        self.broadcast = (threshold > 0).then_some(threshold);
        self.tree = tree;
        self
    }

    /// Moves each epoch's all-to-all-v with `algorithm` (default: pairwise).
    pub fn with_alltoall(mut self, algorithm: AllToAllAlgorithm) -> Self {
        self.alltoall = algorithm;
        self
    }

    /// From checked parameters ([`params`]).
    ///
    /// # Panics
    /// If `params` were not resolved against [`params`], which is a bug in the caller.
    pub fn from_params(params: &Params) -> Self {
        let mode = match params.str("epochs") {
            "level" => Epochs::Level,
            "tasks" => {
                let n = u32::try_from(params.int("epoch_tasks")).expect("epoch_tasks is checked to fit");
                Epochs::Tasks(NonZeroU32::new(n).expect("epoch_tasks is checked to be >= 1"))
            }
            other => panic!("epochs = {other} was not checked against batched::params"),
        };
        let tree = match params.str("tree") {
            "binomial" => Tree::Binomial,
            "chain" => {
                let segment_bytes = u64::try_from(params.int("segment_bytes")).expect("segment_bytes is checked >= 1");
                Tree::Chain { segment_bytes }
            }
            other => panic!("tree = {other} was not checked against batched::params"),
        };
        let threshold = u32::try_from(params.int("bcast_threshold")).expect("bcast_threshold is checked to fit");
        let alltoall = AllToAllAlgorithm::from_name(params.str("alltoall"))
            .unwrap_or_else(|| panic!("alltoall = {} was not checked against batched::params", params.str("alltoall")));
        Batched::new(mode).with_broadcast(threshold, tree).with_alltoall(alltoall)
    }

    /// How epochs are cut.
    pub fn mode(&self) -> Epochs {
        self.mode
    }

    /// The ids of the collectives this rank takes part in, in order, once the run started.
    pub fn collective_ids(&self) -> Option<Vec<u64>> {
        self.plan.as_ref().map(|p| p.collectives.iter().map(|c| c.id).collect())
    }

    /// Joins the next collective if the previous one completed and the local producers
    /// of its epoch are all done.
    fn try_join(&mut self, ctx: &mut StrategyCtx<'_>) {
        let plan = self.plan.as_mut().expect("planned at start");
        let Some(next) = plan.collectives.get(plan.next) else { return };
        if plan.joined.is_some() || plan.unfinished.get(&next.epoch).is_some_and(|&n| n > 0) {
            return;
        }
        let (id, epoch) = (next.id, next.epoch);
        match &next.what {
            What::AllToAllV { .. } => {
                let mut per_peer: Vec<Vec<Message>> = vec![Vec::new(); ctx.dag.ranks()];
                for (reader, chunk, data) in plan.outbox.remove(&epoch).unwrap_or_default() {
                    ctx.phase(chunk, ctx.rank, reader, Phase::Started);
                    let mut msg = Message::data(DATA, chunk, data.clone());
                    msg.arg = epoch as u64;
                    per_peer[reader.index()].push(msg);
                }
                let empty = || vec![Message::control(EMPTY, NO_CHUNK, epoch as u64)];
                let sends = per_peer
                    .into_iter()
                    .enumerate()
                    .map(|(r, m)| (Rank(r as u32), m))
                    .filter(|&(r, _)| r != ctx.rank)
                    .map(|(r, m)| (r, if m.is_empty() { empty() } else { m }))
                    .collect();
                ctx.join_collective(id, CollectiveKind::AllToAllV { algorithm: self.alltoall }, sends);
            }
            What::Broadcast { chunk, members } => {
                let mut sends = Vec::new();
                if members[0] == ctx.rank {
                    let data = plan.roots.remove(chunk).expect("the epoch's producers are done");
                    for &reader in &members[1..] {
                        ctx.phase(*chunk, ctx.rank, reader, Phase::Started);
                        ctx.phase(*chunk, ctx.rank, reader, Phase::Wire);
                    }
                    let mut msg = Message::data(BCAST, *chunk, data);
                    msg.arg = epoch as u64;
                    sends.push((ctx.rank, vec![msg]));
                }
                let kind = CollectiveKind::Broadcast { members: members.clone(), tree: self.tree };
                ctx.join_collective(id, kind, sends);
            }
        }
        (plan.joined, plan.next) = (Some(plan.next), plan.next + 1);
    }

    /// Checks one all-to-all-v contribution of epoch `epoch` from `c.from` against
    /// `expected` (the chunks this rank receives in that collective) and delivers its
    /// chunks; returns how many it carried.
    fn take(ctx: &mut StrategyCtx<'_>, epoch: u32, expected: &[ChunkId], c: Contribution) -> Result<usize, String> {
        let (from, count) = (c.from, c.messages.len());
        let mut chunks = 0;
        for msg in c.messages {
            let chunk = msg.chunk;
            if msg.arg != epoch as u64 {
                return Err(format!("{from} sent a message of epoch {} in epoch {epoch}'s collective", msg.arg));
            }
            match (msg.op, msg.payload) {
                (DATA, Some(payload)) => {
                    if expected.binary_search(&chunk).is_err() {
                        return Err(format!(
                            "{from} sent chunk {chunk}, which this rank does not receive in epoch {epoch}'s collective"
                        ));
                    }
                    if ctx.dag.chunk_owner(chunk) != from {
                        return Err(format!("{from} sent chunk {chunk}, which it does not produce"));
                    }
                    ctx.phase_at(chunk, from, ctx.rank, Phase::Wire, c.sent_ns);
                    ctx.deliver(chunk, from, payload);
                    chunks += 1;
                }
                (EMPTY, None) if count == 1 => {}
                (op, _) => {
                    return Err(format!(
                        "{from} contributed operation {op} ({count} messages) to epoch {epoch}; expected batch-data \
                         messages with bytes, or one batch-empty header"
                    ));
                }
            }
        }
        Ok(chunks)
    }

    /// Checks what a broadcast of `chunk` brought (`members[0]` is its root) and delivers it.
    fn take_broadcast(
        ctx: &mut StrategyCtx<'_>,
        epoch: u32,
        chunk: ChunkId,
        root: Rank,
        received: Vec<Contribution>,
    ) -> Result<(), String> {
        if root == ctx.rank {
            return match received.len() {
                0 => Ok(()),
                n => Err(format!("the root of chunk {chunk}'s broadcast received {n} contributions, expected none")),
            };
        }
        let mut messages = received.into_iter().flat_map(|c| c.messages);
        match (messages.next(), messages.next()) {
            (Some(Message { op: BCAST, chunk: c, arg, payload: Some(payload), .. }), None)
                if c == chunk && arg == epoch as u64 =>
            {
                ctx.deliver(chunk, root, payload);
                Ok(())
            }
            (first, _) => Err(format!(
                "the broadcast of chunk {chunk} (epoch {epoch}) brought {:?}; expected one batch-bcast message \
                 with its bytes",
                first.map(|m| (m.op, m.chunk, m.arg))
            )),
        }
    }
}

impl Strategy for Batched {
    fn name(&self) -> &'static str {
        "batched"
    }

    fn op_name(&self, op: u8) -> &'static str {
        match op {
            DATA => "batch-data",
            EMPTY => "batch-empty",
            BCAST => "batch-bcast",
            _ => "unknown",
        }
    }

    fn needs(&self) -> &'static [Capability] {
        match self.broadcast {
            None => &[Capability::AllToAllV],
            Some(_) => &[Capability::AllToAllV, Capability::Broadcast],
        }
    }

    fn on_start(&mut self, ctx: &mut StrategyCtx<'_>) {
        self.plan = Some(Plan::new(ctx.dag, ctx.rank, self.mode, self.broadcast));
        self.try_join(ctx);
    }

    fn on_chunk_ready(&mut self, ctx: &mut StrategyCtx<'_>, chunk: ChunkId, data: &Payload, readers: &[Rank]) {
        let by_broadcast = self.broadcast.is_some_and(|t| readers.len() > t as usize);
        let plan = self.plan.as_mut().expect("planned at start");
        let producer = ctx.dag.chunk(chunk).producer;
        let epoch = plan.epoch_of_sender(producer).expect("a chunk with remote readers comes from a planned sender");
        if by_broadcast {
            plan.roots.insert(chunk, data.clone());
        } else {
            let outbox = plan.outbox.entry(epoch).or_default();
            outbox.extend(readers.iter().map(|&r| (r, chunk, data.clone())));
        }
    }

    fn on_task_done(&mut self, ctx: &mut StrategyCtx<'_>, task: TaskId) {
        let plan = self.plan.as_mut().expect("planned at start");
        if let Some(epoch) = plan.epoch_of_sender(task) {
            *plan.unfinished.get_mut(&epoch).expect("counted at start") -= 1;
            self.try_join(ctx);
        }
    }

    fn on_message(&mut self, _ctx: &mut StrategyCtx<'_>, from: Rank, msg: Message) -> Result<(), String> {
        Err(format!(
            "batched got a point-to-point message (operation {}, chunk {}) from {from}; it moves chunks only in \
             collectives",
            msg.op, msg.chunk
        ))
    }

    fn on_collective_done(
        &mut self,
        ctx: &mut StrategyCtx<'_>,
        id: u64,
        received: Vec<Contribution>,
    ) -> Result<(), String> {
        let plan = self.plan.as_mut().ok_or("collective completed before the run started")?;
        let Some(k) = plan.joined.filter(|&k| plan.collectives[k].id == id) else {
            let joined = plan.joined.map(|k| plan.collectives[k].id);
            return Err(format!("collective {id} completed, but this rank is in collective {joined:?}"));
        };
        let Collective { epoch, what, .. } = &plan.collectives[k];
        match what {
            What::AllToAllV { incoming } => {
                if received.len() != ctx.dag.ranks() - 1 {
                    return Err(format!(
                        "epoch {epoch}: {} contributions, expected one per other rank",
                        received.len()
                    ));
                }
                let mut chunks = 0;
                for c in received {
                    chunks += Self::take(ctx, *epoch, incoming, c)?;
                }
                if chunks != incoming.len() {
                    return Err(format!("epoch {epoch}: received {chunks} chunks, expected {}", incoming.len()));
                }
            }
            What::Broadcast { chunk, members } => Self::take_broadcast(ctx, *epoch, *chunk, members[0], received)?,
        }
        plan.joined = None;
        self.try_join(ctx);
        Ok(())
    }

    /// Idle once every collective was joined and completed.
    fn is_idle(&self) -> bool {
        self.plan.as_ref().is_some_and(|p| p.next == p.collectives.len() && p.joined.is_none())
    }
}
