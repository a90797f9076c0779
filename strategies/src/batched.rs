//! **batched** (collective batching): transfers are gathered per epoch and moved with
//! one all-to-all-v per epoch; chunks with many reader ranks may instead go by a
//! broadcast tree. Fewer, larger messages; an epoch boundary is a synchronisation point.
//!
//! # Epochs
//!
//! The DAG is cut into epochs from the DAG alone ([`epochs`]), so all ranks agree
//! without talking; the cut, and the run's order of collectives, are planned once per
//! run ([`RunPlan`]) and shared read-only by every rank's instance, which keeps only
//! what concerns its own tasks. A chunk belongs to the epoch of the task that produces it.
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
//! per chunk of epoch `e` that peer reads, or no message at all when there is none (the
//! collective still tells the peer with a header, recorded as an `empty` control
//! message; no allocation per empty contribution, which at 1024 ranks is most of them); a broadcast carries one `batch-bcast` message. Chunks arrive only through these
//! collectives; nothing moves point to point (except late sends, with a time window).
//!
//! **Exchange.** With `exchange = alltoallv` (the default) every rank joins every
//! epoch's all-to-all-v and contributes to every other rank (`p (p - 1)` contributions
//! per epoch, most of them empty headers at scale). With `exchange = neighbor` the
//! epoch's data moves in a **neighbour all-to-all-v** over the epoch's communication
//! graph instead (`MPI_Neighbor_alltoallv`'s semantics): the run's plan holds, per
//! epoch, who sends to whom ([`RunPlan::graph`]); every rank joins with its in- and
//! out-neighbours of that epoch (possibly none) and contributes only to its
//! out-neighbours, so an epoch costs one contribution per communicating rank pair.
//!
//! **Time window.** With `window_usec = W > 0` an epoch's exchange may close early: each
//! chunk a rank produces for an epoch's all-to-all-v (or neighbour exchange) re-arms a
//! timer `W` µs ahead (an engine timer, [`StrategyCtx::set_timer`]); when it fires
//! (nothing new produced for that epoch for `W`) the epoch is *quiet*, and the rank
//! joins the epoch's exchange as soon as it is next in the run's order, with what it
//! has, instead of waiting for the epoch's last producer (a time-window batcher, as
//! Horovod's fusion buffer and Lamellar's aggregation do). Chunks of that epoch produced
//! after the early join are **late sends**: one `batch-late` point-to-point message per
//! (chunk, reader rank), with every phase recorded as for any transfer. A reader
//! accepts each chunk once, by either path. With `exchange = neighbor` the graph is the
//! planned one, so a destination whose chunks all go late gets an empty contribution.
//! `window_usec = 0` (the default) turns the window off: nothing moves point to point.
//!
//! **No deadlock**, by induction over that order: when every collective before `C`
//! (of epoch `e`) has completed on every rank, each rank holds every remote chunk its
//! epoch-`e` tasks read (remote inputs come from earlier epochs, hence earlier
//! collectives) and its local inputs come from local tasks of epoch `<= e`; so all its
//! epoch-`e` producers can run, every member of `C` joins it, and `C` completes.
//! Collectives take no worker, so tasks of later epochs keep running meanwhile.
//! An early join (the time window) only joins sooner; a late send waits for nothing.
//!
//! Phases: the engine records `Posted`; `Started` when the producer joins the chunk's
//! collective; `Wire` when the contribution carrying the chunk left the producer (the
//! driver's time, recorded by the reader; for a broadcast, the root's join); `Completed`
//! when the collective completed on the reader. Messages: one record per contribution a
//! rank receives — all-to-all-v: per (collective, sender, receiver), data (its chunks'
//! bytes, named after its first chunk) or control (a header); neighbour exchange: the
//! same, per edge of the epoch's graph; broadcast: per tree edge. A late send records
//! `Started` and `Wire` when it leaves and `Completed` on delivery, like an eager send,
//! and is one `batch-late` data record.

use crate::StrategyInfo;
use dagwire_runtime::collective::{AllToAllAlgorithm, Tree};
use dagwire_runtime::trace::Phase;
use dagwire_runtime::{
    Capability, ChunkId, CollectiveKind, Contribution, Dag, Message, ParamSpec, Params, Payload, Rank, Strategy,
    StrategyCtx, TaskId,
};
use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Registration.
pub const INFO: StrategyInfo = StrategyInfo {
    name: "batched",
    summary: "the DAG is cut into epochs every rank computes alike; each epoch's transfers move in one all-to-all-v \
              (or a neighbour all-to-all-v over the epoch's graph), chunks with many reader ranks optionally by \
              broadcast trees, an epoch optionally closed by a time window (fewer, larger messages; an epoch \
              boundary synchronises the ranks)",
    params,
    needs: |params| Config::from_params(params).needs(),
    plan: |params, dag| {
        let plan = Arc::new(RunPlan::new(dag, Config::from_params(params)));
        Box::new(move |rank, _| Box::new(Batched::new(&plan, rank)))
    },
};

/// Default of the `epoch_tasks` parameter.
pub const DEFAULT_EPOCH_TASKS: u32 = 64;

/// Largest `window_usec` (an hour).
pub const MAX_WINDOW_US: i64 = 3_600_000_000;

/// Default of the `segment_bytes` parameter.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 * 1024;

/// The parameters a sweep may set (`batched.epochs`, `batched.epoch_tasks`,
/// `batched.exchange`, `batched.alltoall`, `batched.window_usec`, `batched.bcast_threshold`,
/// `batched.tree`, `batched.segment_bytes`).
///
/// ```
/// use dagwire_runtime::{ParamValue, Params};
/// let specs = dagwire_strategies::batched::params();
/// let p = Params::resolve(&specs, Default::default()).unwrap();
/// assert_eq!((p.str("epochs"), p.int("epoch_tasks")), ("level", 64));
/// assert_eq!((p.int("bcast_threshold"), p.str("tree"), p.int("segment_bytes")), (0, "binomial", 65536));
/// assert_eq!((p.str("alltoall"), p.str("exchange"), p.int("window_usec")), ("pairwise", "alltoallv", 0));
/// let bad_exchange = [("exchange".to_string(), ParamValue::Str("sparse".into()))].into();
/// assert!(Params::resolve(&specs, bad_exchange).unwrap_err().to_string().contains("one of alltoallv, neighbor"));
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
            "exchange",
            Exchange::NAMES,
            "alltoallv",
            "how an epoch's data moves: alltoallv (every rank contributes to every other rank, empty or not) or \
             neighbor (a neighbour all-to-all-v over the epoch's communication graph: only between the ranks that \
             exchange data in that epoch)",
        ),
        ParamSpec::int(
            "window_usec",
            0,
            MAX_WINDOW_US,
            0,
            "time window, microseconds: an epoch whose producers made nothing new for this long joins its exchange \
             early, and its chunks produced later go point to point (late sends); 0 = off",
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
// Operation code 2 was an empty contribution's header; an empty contribution now
// carries no message at all.
/// Operation code of a broadcast chunk; `arg` is the epoch.
const BCAST: u8 = 3;
/// Operation code of a late send (a chunk produced after its epoch's early join);
/// `arg` is the epoch.
const LATE: u8 = 4;

/// How an epoch's data moves (the `exchange` parameter).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Exchange {
    /// One all-to-all-v per epoch: every rank contributes to every other rank.
    AllToAllV,
    /// One neighbour all-to-all-v per epoch over its communication graph.
    Neighbor,
}

impl Exchange {
    /// Names accepted by the `exchange` parameter.
    pub const NAMES: &'static [&'static str] = &["alltoallv", "neighbor"];

    /// Parses a name from [`Exchange::NAMES`].
    ///
    /// ```
    /// use dagwire_strategies::batched::Exchange;
    /// assert_eq!(Exchange::from_name("neighbor"), Some(Exchange::Neighbor));
    /// assert_eq!(Exchange::from_name("sparse"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "alltoallv" => Some(Exchange::AllToAllV),
            "neighbor" => Some(Exchange::Neighbor),
            _ => None,
        }
    }
}

/// The batched strategy's settings.
///
/// ```
/// use dagwire_runtime::collective::Tree;
/// use dagwire_runtime::Capability;
/// use dagwire_strategies::batched::{Config, Epochs, Exchange};
/// assert_eq!(Config::new(Epochs::Level).needs(), &[Capability::AllToAllV]);
/// let with_trees = Config::new(Epochs::Level).with_broadcast(3, Tree::Binomial);
/// assert_eq!(with_trees.needs(), &[Capability::AllToAllV, Capability::Broadcast]);
/// let sparse = Config::new(Epochs::Level).with_exchange(Exchange::Neighbor);
/// assert_eq!(sparse.needs(), &[Capability::NeighborAllToAllV]);
/// assert_eq!(
///     sparse.with_window_usec(5).needs(),
///     &[Capability::PointToPoint, Capability::NeighborAllToAllV]
/// );
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// How the DAG is cut into epochs.
    pub epochs: Epochs,
    /// How an epoch's data moves.
    pub exchange: Exchange,
    /// The algorithm of each epoch's all-to-all-v (where the driver runs the shared layer).
    pub alltoall: AllToAllAlgorithm,
    /// The time window, ns (0: off).
    pub window_ns: u64,
    /// Chunks read on more than this many other ranks go by broadcast (`None`: never).
    pub broadcast: Option<NonZeroU32>,
    /// The broadcast tree.
    pub tree: Tree,
}

impl Config {
    /// Epochs cut by `epochs`, every chunk moved in all-to-all-vs, no time window.
    pub fn new(epochs: Epochs) -> Self {
        Config {
            epochs,
            exchange: Exchange::AllToAllV,
            alltoall: AllToAllAlgorithm::Pairwise,
            window_ns: 0,
            broadcast: None,
            tree: Tree::Binomial,
        }
    }

    /// Chunks read on more than `threshold` other ranks go by a broadcast along `tree`
    /// (a `threshold` of 0 means never, as the parameter does).
    pub fn with_broadcast(mut self, threshold: u32, tree: Tree) -> Self {
        self.broadcast = NonZeroU32::new(threshold);
        self.tree = tree;
        self
    }

    /// Moves each epoch's all-to-all-v with `algorithm` (default: pairwise).
    pub fn with_alltoall(mut self, algorithm: AllToAllAlgorithm) -> Self {
        self.alltoall = algorithm;
        self
    }

    /// Moves each epoch's data by `exchange` (default: all-to-all-v).
    pub fn with_exchange(mut self, exchange: Exchange) -> Self {
        self.exchange = exchange;
        self
    }

    /// Closes an epoch early after `us` microseconds without a new chunk (0: never).
    pub fn with_window_usec(mut self, us: u64) -> Self {
        self.window_ns = us.saturating_mul(1000);
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
        let exchange = Exchange::from_name(params.str("exchange"))
            .unwrap_or_else(|| panic!("exchange = {} was not checked against batched::params", params.str("exchange")));
        let window_usec = u64::try_from(params.int("window_usec")).expect("window_usec is checked >= 0");
        Config::new(mode)
            .with_broadcast(threshold, tree)
            .with_alltoall(alltoall)
            .with_exchange(exchange)
            .with_window_usec(window_usec)
    }

    /// What a driver must offer: the epoch exchange's collective, broadcasts if chunks
    /// go by trees, and point-to-point messages if a time window may send late.
    pub fn needs(&self) -> &'static [Capability] {
        use Capability::{AllToAllV as A, Broadcast as B, NeighborAllToAllV as N, PointToPoint as P};
        match (self.window_ns > 0, self.exchange, self.broadcast.is_some()) {
            (false, Exchange::AllToAllV, false) => &[A],
            (false, Exchange::AllToAllV, true) => &[A, B],
            (false, Exchange::Neighbor, false) => &[N],
            (false, Exchange::Neighbor, true) => &[N, B],
            (true, Exchange::AllToAllV, false) => &[P, A],
            (true, Exchange::AllToAllV, true) => &[P, A, B],
            (true, Exchange::Neighbor, false) => &[P, N],
            (true, Exchange::Neighbor, true) => &[P, N, B],
        }
    }

    /// Whether a chunk read on `readers` other ranks goes by broadcast.
    fn by_broadcast(&self, readers: usize) -> bool {
        self.broadcast.is_some_and(|t| readers > t.get() as usize)
    }
}

/// Whole-DAG plans made so far in this process ([`RunPlan::new`]), so tests can check
/// that a run plans once, not once per rank.
static PLANS: AtomicU64 = AtomicU64::new(0);

/// How many [`RunPlan`]s this process has made.
pub fn plans_made() -> u64 {
    PLANS.load(Ordering::Relaxed)
}

/// What batched derives from the whole DAG, once per run, shared read-only by every
/// rank's instance: the epoch of every task and the run's collectives in their order
/// (the epochs that have an all-to-all-v, which every rank joins, and the broadcasts
/// with their members) and, with `exchange = neighbor`, each such epoch's communication
/// graph: who sends to whom ([`RunPlan::graph`]).
///
/// ```
/// use dagwire_runtime::{DagBuilder, KernelId, Rank, TaskSpec};
/// use dagwire_strategies::batched::{Config, Epochs, RunPlan};
/// use std::sync::Arc;
/// let mut b = DagBuilder::new(2);
/// let a = b.add(TaskSpec::new(KernelId(0), Rank(0)).outputs(&[8]));
/// b.add(TaskSpec::new(KernelId(0), Rank(1)).inputs(&[a.output(0)]).outputs(&[8]));
/// let plan = RunPlan::new(&Arc::new(b.finish()), Config::new(Epochs::Level));
/// assert_eq!((plan.epochs(), plan.all_to_all_epochs()), (&[0, 1][..], &[0][..]));
/// assert_eq!(plan.graph(0), None, "no graph without exchange = neighbor");
/// ```
#[derive(Debug)]
pub struct RunPlan {
    cfg: Config,
    dag: Arc<Dag>,
    /// The epoch of every task.
    epoch: Vec<u32>,
    /// Epochs with an all-to-all-v, ascending.
    all_to_all: Vec<u32>,
    /// Chunks that go by broadcast, ascending.
    bcast_chunks: Vec<ChunkId>,
    /// Broadcast `i`'s members are `members[offsets[i]..offsets[i + 1]]`: the producer,
    /// then the reader ranks in order.
    offsets: Vec<u32>,
    members: Vec<Rank>,
    /// With `exchange = neighbor`: each all-to-all-v epoch's graph.
    graph: Option<Graph>,
}

/// Every all-to-all-v epoch's communication graph: the rank pairs (sender, reader) of
/// its chunks, each once. Epoch `plan.all_to_all[i]`'s edges are
/// `out[offsets[i]..offsets[i + 1]]`, sorted by (sender, reader), and the same edges as
/// (reader, sender) in `into`, sorted, so a rank finds its destinations and its sources
/// by binary search.
#[derive(Debug)]
struct Graph {
    offsets: Vec<u32>,
    out: Vec<(Rank, Rank)>,
    into: Vec<(Rank, Rank)>,
}

impl Graph {
    /// From every (epoch, sender, reader) of the run's all-to-all-v chunks, any order,
    /// repeats allowed; `epochs` are the all-to-all-v epochs, ascending.
    fn new(mut edges: Vec<(u32, Rank, Rank)>, epochs: &[u32]) -> Graph {
        edges.sort_unstable();
        edges.dedup();
        let mut offsets = Vec::with_capacity(epochs.len() + 1);
        let mut at = 0;
        for &e in epochs {
            offsets.push(at as u32);
            at += edges[at..].partition_point(|&(x, _, _)| x == e);
        }
        offsets.push(at as u32);
        let out: Vec<(Rank, Rank)> = edges.iter().map(|&(_, s, d)| (s, d)).collect();
        drop(edges);
        let mut into: Vec<(Rank, Rank)> = out.iter().map(|&(s, d)| (d, s)).collect();
        for w in offsets.windows(2) {
            into[w[0] as usize..w[1] as usize].sort_unstable();
        }
        Graph { offsets, out, into }
    }

    /// The edges of all-to-all-v epoch number `i` (index into the plan's list).
    fn edges(&self, i: usize) -> std::ops::Range<usize> {
        self.offsets[i] as usize..self.offsets[i + 1] as usize
    }

    /// The ranks `rank` is paired with in `edges` (sorted by first rank), in order.
    fn of(edges: &[(Rank, Rank)], rank: Rank) -> Vec<Rank> {
        let from = edges.partition_point(|&(a, _)| a < rank);
        let to = from + edges[from..].partition_point(|&(a, _)| a == rank);
        edges[from..to].iter().map(|&(_, b)| b).collect()
    }
}

impl RunPlan {
    /// Plans a run of `dag` with settings `cfg`: one pass over the DAG.
    pub fn new(dag: &Arc<Dag>, cfg: Config) -> RunPlan {
        PLANS.fetch_add(1, Ordering::Relaxed);
        let epoch = epochs(dag, cfg.epochs);
        let mut a2a = vec![false; epoch.iter().max().map_or(0, |&e| e as usize + 1)];
        let (mut bcast_chunks, mut offsets, mut members) = (Vec::new(), vec![0u32], Vec::new());
        let mut readers = Vec::new();
        let mut edges = Vec::new();
        let neighbor = cfg.exchange == Exchange::Neighbor;
        for c in (0..dag.chunk_count() as u32).map(ChunkId) {
            dag.remote_readers_into(c, &mut readers);
            if readers.is_empty() {
                continue;
            }
            if cfg.by_broadcast(readers.len()) {
                bcast_chunks.push(c);
                members.push(dag.chunk_owner(c));
                members.extend_from_slice(&readers);
                offsets.push(members.len() as u32);
            } else {
                let e = epoch[dag.chunk(c).producer.index()];
                a2a[e as usize] = true;
                if neighbor {
                    let owner = dag.chunk_owner(c);
                    edges.extend(readers.iter().map(|&r| (e, owner, r)));
                }
            }
        }
        let all_to_all: Vec<u32> = (0..a2a.len() as u32).filter(|&e| a2a[e as usize]).collect();
        let graph = neighbor.then(|| Graph::new(edges, &all_to_all));
        RunPlan { cfg, dag: Arc::clone(dag), epoch, all_to_all, bcast_chunks, offsets, members, graph }
    }

    /// The settings planned with.
    pub fn config(&self) -> Config {
        self.cfg
    }

    /// The epoch of every task, by task id ([`epochs`]).
    pub fn epochs(&self) -> &[u32] {
        &self.epoch
    }

    /// The epochs that have an all-to-all-v (every rank joins each), ascending.
    pub fn all_to_all_epochs(&self) -> &[u32] {
        &self.all_to_all
    }

    /// With `exchange = neighbor`, epoch `epoch`'s communication graph: every (sender,
    /// reader) rank pair with a chunk of that epoch to move in its exchange, sorted, each
    /// once (empty for an epoch without an exchange); `None` with `exchange = alltoallv`.
    ///
    /// ```
    /// use dagwire_runtime::{DagBuilder, KernelId, Rank, TaskSpec};
    /// use dagwire_strategies::batched::{Config, Epochs, Exchange, RunPlan};
    /// use std::sync::Arc;
    /// let mut b = DagBuilder::new(4);
    /// let a = b.add(TaskSpec::new(KernelId(0), Rank(2)).outputs(&[8, 8]));
    /// b.add(TaskSpec::new(KernelId(0), Rank(0)).inputs(&[a.output(0), a.output(1)]).outputs(&[8]));
    /// b.add(TaskSpec::new(KernelId(0), Rank(3)).inputs(&[a.output(1)]).outputs(&[8]));
    /// let cfg = Config::new(Epochs::Level).with_exchange(Exchange::Neighbor);
    /// let plan = RunPlan::new(&Arc::new(b.finish()), cfg);
    /// assert_eq!(plan.graph(0), Some(vec![(Rank(2), Rank(0)), (Rank(2), Rank(3))]));
    /// assert_eq!(plan.graph(1), Some(vec![]));
    /// ```
    pub fn graph(&self, epoch: u32) -> Option<Vec<(Rank, Rank)>> {
        let g = self.graph.as_ref()?;
        Some(match self.all_to_all.binary_search(&epoch) {
            Ok(i) => g.out[g.edges(i)].to_vec(),
            Err(_) => Vec::new(),
        })
    }

    /// `rank`'s sources and destinations in the exchange of all-to-all-v epoch number
    /// `i` (index into [`RunPlan::all_to_all_epochs`]), each ascending.
    fn neighbors(&self, i: usize, rank: Rank) -> (Vec<Rank>, Vec<Rank>) {
        let g = self.graph.as_ref().expect("planned with exchange = neighbor");
        let edges = g.edges(i);
        (Graph::of(&g.into[edges.clone()], rank), Graph::of(&g.out[edges], rank))
    }

    /// The epoch of the task producing `c`.
    fn epoch_of_chunk(&self, c: ChunkId) -> u32 {
        self.epoch[self.dag.chunk(c).producer.index()]
    }

    /// The index of `c`'s broadcast, if it goes by one.
    fn broadcast_index(&self, c: ChunkId) -> Option<u32> {
        self.bcast_chunks.binary_search(&c).ok().map(|i| i as u32)
    }

    /// Broadcast `i`'s members (its producer first).
    fn members(&self, i: u32) -> &[Rank] {
        &self.members[self.offsets[i as usize] as usize..self.offsets[i as usize + 1] as usize]
    }

    /// Broadcast `i`'s collective id.
    fn broadcast_id(&self, i: u32) -> u64 {
        let chunk = self.bcast_chunks[i as usize];
        broadcast_id(self.epoch_of_chunk(chunk), chunk)
    }
}

/// A collective of the run, as one rank walks them in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    /// Epoch `epoch`'s all-to-all-v.
    AllToAllV { epoch: u32 },
    /// Broadcast `index` of the plan, of `chunk`, of epoch `epoch`.
    Broadcast { epoch: u32, chunk: ChunkId, index: u32 },
}

impl Next {
    fn id(self) -> u64 {
        match self {
            Next::AllToAllV { epoch } => all_to_all_id(epoch),
            Next::Broadcast { epoch, chunk, .. } => broadcast_id(epoch, chunk),
        }
    }

    fn epoch(self) -> u32 {
        match self {
            Next::AllToAllV { epoch } | Next::Broadcast { epoch, .. } => epoch,
        }
    }
}

/// The batched protocol, one instance per rank, built from the run's shared
/// [`RunPlan`] in time and memory of the order of what the rank owns and reads.
///
/// ```
/// use dagwire_runtime::{Capability, DagBuilder, KernelId, Rank, Strategy, TaskSpec};
/// use dagwire_strategies::batched::{Batched, Config, Epochs, RunPlan, all_to_all_id};
/// use std::sync::Arc;
/// let mut b = DagBuilder::new(2);
/// let a = b.add(TaskSpec::new(KernelId(0), Rank(0)).outputs(&[8]));
/// b.add(TaskSpec::new(KernelId(0), Rank(1)).inputs(&[a.output(0)]).outputs(&[8]));
/// let plan = Arc::new(RunPlan::new(&Arc::new(b.finish()), Config::new(Epochs::Level)));
/// let r1 = Batched::new(&plan, Rank(1));
/// assert_eq!([1, 3, 4].map(|op| r1.op_name(op)), ["batch-data", "batch-bcast", "batch-late"]);
/// assert_eq!(r1.needs(), &[Capability::AllToAllV]);
/// assert_eq!(r1.collective_ids(), [all_to_all_id(0)]);
/// assert!(!r1.is_idle(), "epoch 0's all-to-all-v is still to join");
/// ```
#[derive(Debug)]
pub struct Batched {
    plan: Arc<RunPlan>,
    /// The broadcasts this rank is a member of, in id order: (id, index in the plan).
    broadcasts: Vec<(u64, u32)>,
    /// Chunks this rank receives in all-to-all-vs, with their epoch; sorted.
    incoming: Vec<(u32, ChunkId)>,
    /// Per entry of `incoming`: delivered already (by its epoch's exchange or late).
    got: Vec<bool>,
    /// Epochs whose time window elapsed: their exchange is joined without waiting for
    /// their last producers.
    quiet: BTreeSet<u32>,
    /// Local tasks with an output read on another rank, with their epoch; sorted by task.
    senders: Vec<(TaskId, u32)>,
    /// Per epoch: local senders not finished yet (absent: none).
    unfinished: BTreeMap<u32, u32>,
    /// Per epoch: (reader, chunk, bytes) this rank contributes to its all-to-all-v.
    outbox: BTreeMap<u32, Vec<(Rank, ChunkId, Payload)>>,
    /// Chunks this rank broadcasts, until their broadcast.
    roots: BTreeMap<ChunkId, Payload>,
    /// The next all-to-all-v to join (index into the plan's) and the next broadcast
    /// (index into `broadcasts`).
    next_a2a: usize,
    next_bcast: usize,
    /// The collective joined and not completed yet.
    joined: Option<Next>,
}

impl Batched {
    /// Rank `rank`'s instance for the run `plan` was made for: a pass over the rank's
    /// own tasks, their outputs and their inputs.
    pub fn new(plan: &Arc<RunPlan>, rank: Rank) -> Self {
        let dag = &*plan.dag;
        let epoch = &plan.epoch;
        let (mut broadcasts, mut incoming, mut senders) = (Vec::new(), Vec::new(), Vec::new());
        let mut unfinished = BTreeMap::new();
        for &t in dag.tasks_of(rank) {
            let mut sends = false;
            for c in dag.task(t).outputs().filter(|&c| dag.is_read_remotely(c)) {
                sends = true;
                broadcasts.extend(plan.broadcast_index(c));
            }
            if sends {
                senders.push((t, epoch[t.index()]));
                *unfinished.entry(epoch[t.index()]).or_insert(0) += 1;
            }
            for &c in dag.inputs(t).iter().filter(|&&c| dag.chunk_owner(c) != rank) {
                match plan.broadcast_index(c) {
                    Some(i) => broadcasts.push(i),
                    None => incoming.push((plan.epoch_of_chunk(c), c)),
                }
            }
        }
        let mut broadcasts: Vec<(u64, u32)> = broadcasts.into_iter().map(|i| (plan.broadcast_id(i), i)).collect();
        broadcasts.sort_unstable();
        broadcasts.dedup();
        incoming.sort_unstable();
        incoming.dedup();
        Batched {
            plan: Arc::clone(plan),
            broadcasts,
            got: vec![false; incoming.len()],
            quiet: BTreeSet::new(),
            incoming,
            senders,
            unfinished,
            outbox: BTreeMap::new(),
            roots: BTreeMap::new(),
            next_a2a: 0,
            next_bcast: 0,
            joined: None,
        }
    }

    /// The settings of the run.
    pub fn config(&self) -> Config {
        self.plan.cfg
    }

    /// The ids of the collectives this rank takes part in, in order.
    pub fn collective_ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.plan.all_to_all.iter().map(|&e| all_to_all_id(e)).collect();
        ids.extend(self.broadcasts.iter().map(|&(id, _)| id));
        ids.sort_unstable();
        ids
    }

    /// The next collective to join, in the run's order: the earlier of the next
    /// all-to-all-v and this rank's next broadcast.
    fn peek(&self) -> Option<Next> {
        let a2a = self.plan.all_to_all.get(self.next_a2a).map(|&epoch| Next::AllToAllV { epoch });
        let bcast = self.broadcasts.get(self.next_bcast).map(|&(_, index)| {
            let chunk = self.plan.bcast_chunks[index as usize];
            Next::Broadcast { epoch: self.plan.epoch_of_chunk(chunk), chunk, index }
        });
        match (a2a, bcast) {
            (Some(a), Some(b)) => Some(if a.id() < b.id() { a } else { b }),
            (a, b) => a.or(b),
        }
    }

    /// The epoch of a local sending task.
    fn epoch_of_sender(&self, task: TaskId) -> Option<u32> {
        self.senders.binary_search_by_key(&task, |&(t, _)| t).ok().map(|i| self.senders[i].1)
    }

    /// Where the chunks this rank receives in epoch `epoch`'s all-to-all-v are in
    /// `incoming` (sorted).
    fn incoming_of(&self, epoch: u32) -> std::ops::Range<usize> {
        let from = self.incoming.partition_point(|&(e, _)| e < epoch);
        let to = self.incoming.partition_point(|&(e, _)| e <= epoch);
        from..to
    }

    /// Whether epoch `epoch`'s all-to-all-v was joined here already (only a time window
    /// lets a chunk of it be produced after that).
    fn joined_already(&self, epoch: u32) -> bool {
        self.next_a2a > 0 && epoch <= self.plan.all_to_all[self.next_a2a - 1]
    }

    /// Sends a chunk produced after its epoch's early join straight to its readers.
    fn send_late(ctx: &mut StrategyCtx<'_>, epoch: u32, chunk: ChunkId, data: &Payload, readers: &[Rank]) {
        for &reader in readers {
            ctx.phase(chunk, ctx.rank, reader, Phase::Started);
            ctx.phase(chunk, ctx.rank, reader, Phase::Wire);
            let mut msg = Message::data(LATE, chunk, data.clone());
            msg.arg = epoch as u64;
            ctx.send(reader, msg);
        }
    }

    /// A late send of `chunk` (epoch `epoch`) from `from`: checked and delivered.
    fn take_late(&mut self, ctx: &mut StrategyCtx<'_>, from: Rank, msg: Message) -> Result<(), String> {
        let (chunk, epoch) = (msg.chunk, msg.arg);
        let Some(payload) = msg.payload.filter(|_| msg.op == LATE) else {
            return Err(format!(
                "batched got a point-to-point message (operation {}, chunk {chunk}) from {from}; only late sends \
                 (batch-late, with bytes) move point to point",
                msg.op
            ));
        };
        let at = u32::try_from(epoch).ok().and_then(|e| self.incoming.binary_search(&(e, chunk)).ok());
        let Some(at) = at else {
            return Err(format!("{from} sent chunk {chunk} late in epoch {epoch}, which this rank does not receive"));
        };
        if ctx.dag.chunk_owner(chunk) != from {
            return Err(format!("{from} sent chunk {chunk} late, which it does not produce"));
        }
        if std::mem::replace(&mut self.got[at], true) {
            return Err(format!("{from} sent chunk {chunk} late, which this rank already received"));
        }
        ctx.deliver(chunk, from, payload);
        Ok(())
    }

    /// Joins the next collective if the previous one completed and the local producers
    /// of its epoch are all done.
    fn try_join(&mut self, ctx: &mut StrategyCtx<'_>) {
        let Some(next) = self.peek() else { return };
        if self.joined.is_some() {
            return;
        }
        let waiting = self.unfinished.get(&next.epoch()).is_some_and(|&n| n > 0);
        let early = matches!(next, Next::AllToAllV { epoch } if self.quiet.contains(&epoch));
        if waiting && !early {
            return;
        }
        match next {
            Next::AllToAllV { epoch } => {
                if self.plan.cfg.window_ns > 0 {
                    ctx.cancel_timer(epoch as u64);
                    self.quiet.remove(&epoch);
                }
                let mut outbox = self.outbox.remove(&epoch).unwrap_or_default();
                outbox.sort_unstable_by_key(|&(reader, chunk, _)| (reader, chunk));
                // This rank's destinations: every other rank, or its out-neighbours.
                let (kind, destinations) = match self.plan.cfg.exchange {
                    Exchange::AllToAllV => {
                        let all = (0..ctx.dag.ranks() as u32).map(Rank).filter(|&r| r != ctx.rank).collect();
                        (CollectiveKind::AllToAllV { algorithm: self.plan.cfg.alltoall }, all)
                    }
                    Exchange::Neighbor => {
                        let (sources, destinations) = self.plan.neighbors(self.next_a2a, ctx.rank);
                        (
                            CollectiveKind::NeighborAllToAllV { sources, destinations: destinations.clone() },
                            destinations,
                        )
                    }
                };
                let mut chunks = outbox.into_iter().peekable();
                let mut sends = Vec::with_capacity(destinations.len());
                for to in destinations {
                    let mut messages = Vec::new();
                    while let Some((_, chunk, data)) = chunks.next_if(|&(reader, ..)| reader == to) {
                        ctx.phase(chunk, ctx.rank, to, Phase::Started);
                        let mut msg = Message::data(DATA, chunk, data);
                        msg.arg = epoch as u64;
                        messages.push(msg);
                    }
                    sends.push((to, messages));
                }
                // A chunk for a rank that is no destination is a planning bug: the join
                // check refuses it, naming the rank.
                sends.extend(chunks.map(|(reader, chunk, data)| (reader, vec![Message::data(DATA, chunk, data)])));
                ctx.join_collective(next.id(), kind, sends);
                self.next_a2a += 1;
            }
            Next::Broadcast { epoch, chunk, index } => {
                let members = self.plan.members(index);
                let mut sends = Vec::new();
                if members[0] == ctx.rank {
                    let data = self.roots.remove(&chunk).expect("the epoch's producers are done");
                    for &reader in &members[1..] {
                        ctx.phase(chunk, ctx.rank, reader, Phase::Started);
                        ctx.phase(chunk, ctx.rank, reader, Phase::Wire);
                    }
                    let mut msg = Message::data(BCAST, chunk, data);
                    msg.arg = epoch as u64;
                    sends.push((ctx.rank, vec![msg]));
                }
                let kind = CollectiveKind::Broadcast { members: members.to_vec(), tree: self.plan.cfg.tree };
                ctx.join_collective(next.id(), kind, sends);
                self.next_bcast += 1;
            }
        }
        self.joined = Some(next);
    }

    /// Checks one all-to-all-v contribution of epoch `epoch` from `c.from` against
    /// `expected` (the chunks this rank receives in that collective, with `got` saying
    /// which arrived already, late) and delivers its chunks; returns how many it carried.
    fn take(
        ctx: &mut StrategyCtx<'_>,
        epoch: u32,
        (expected, got): (&[(u32, ChunkId)], &mut [bool]),
        c: Contribution,
    ) -> Result<usize, String> {
        let (from, count) = (c.from, c.messages.len());
        let mut chunks = 0;
        for msg in c.messages {
            let chunk = msg.chunk;
            if msg.arg != epoch as u64 {
                return Err(format!("{from} sent a message of epoch {} in epoch {epoch}'s collective", msg.arg));
            }
            match (msg.op, msg.payload) {
                (DATA, Some(payload)) => {
                    let Ok(at) = expected.binary_search(&(epoch, chunk)) else {
                        return Err(format!(
                            "{from} sent chunk {chunk}, which this rank does not receive in epoch {epoch}'s collective"
                        ));
                    };
                    if ctx.dag.chunk_owner(chunk) != from {
                        return Err(format!("{from} sent chunk {chunk}, which it does not produce"));
                    }
                    if std::mem::replace(&mut got[at], true) {
                        return Err(format!("{from} sent chunk {chunk}, which this rank already received"));
                    }
                    ctx.phase_at(chunk, from, ctx.rank, Phase::Wire, c.sent_ns);
                    ctx.deliver(chunk, from, payload);
                    chunks += 1;
                }
                (op, _) => {
                    return Err(format!(
                        "{from} contributed operation {op} ({count} messages) to epoch {epoch}; expected batch-data \
                         messages with bytes, or no message for an empty contribution"
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
            BCAST => "batch-bcast",
            LATE => "batch-late",
            _ => "unknown",
        }
    }

    fn needs(&self) -> &'static [Capability] {
        self.plan.cfg.needs()
    }

    fn on_start(&mut self, ctx: &mut StrategyCtx<'_>) {
        assert!(
            std::ptr::eq(ctx.dag, &*self.plan.dag),
            "batched was planned for another DAG than the one this run executes: build the strategy factory from \
             the run's DAG"
        );
        self.try_join(ctx);
    }

    fn on_chunk_ready(&mut self, ctx: &mut StrategyCtx<'_>, chunk: ChunkId, data: &Payload, readers: &[Rank]) {
        let producer = ctx.dag.chunk(chunk).producer;
        let epoch = self.epoch_of_sender(producer).expect("a chunk with remote readers comes from a planned sender");
        if self.plan.cfg.by_broadcast(readers.len()) {
            self.roots.insert(chunk, data.clone());
        } else if self.joined_already(epoch) {
            Self::send_late(ctx, epoch, chunk, data, readers);
        } else {
            let outbox = self.outbox.entry(epoch).or_default();
            outbox.extend(readers.iter().map(|&r| (r, chunk, data.clone())));
            if self.plan.cfg.window_ns > 0 {
                // Something new for the epoch: its window starts over.
                self.quiet.remove(&epoch);
                ctx.set_timer(ctx.now.saturating_add(self.plan.cfg.window_ns), epoch as u64);
            }
        }
    }

    /// Epoch `token`'s window elapsed with nothing new: join its exchange as soon as it
    /// is next, with what it has.
    fn on_timer(&mut self, ctx: &mut StrategyCtx<'_>, token: u64) -> Result<(), String> {
        let epoch = u32::try_from(token).map_err(|_| format!("timer {token} is no epoch"))?;
        if self.plan.cfg.window_ns == 0 || self.joined_already(epoch) {
            return Err(format!("the window of epoch {epoch} fired, but it has no window open"));
        }
        self.quiet.insert(epoch);
        self.try_join(ctx);
        Ok(())
    }

    fn on_task_done(&mut self, ctx: &mut StrategyCtx<'_>, task: TaskId) {
        if let Some(epoch) = self.epoch_of_sender(task) {
            *self.unfinished.get_mut(&epoch).expect("counted at start") -= 1;
            self.try_join(ctx);
        }
    }

    fn on_message(&mut self, ctx: &mut StrategyCtx<'_>, from: Rank, msg: Message) -> Result<(), String> {
        if self.plan.cfg.window_ns == 0 {
            return Err(format!(
                "batched got a point-to-point message (operation {}, chunk {}) from {from}; without a time window \
                 it moves chunks only in collectives",
                msg.op, msg.chunk
            ));
        }
        self.take_late(ctx, from, msg)
    }

    fn on_collective_done(
        &mut self,
        ctx: &mut StrategyCtx<'_>,
        id: u64,
        received: Vec<Contribution>,
    ) -> Result<(), String> {
        let Some(joined) = self.joined.filter(|j| j.id() == id) else {
            let joined = self.joined.map(Next::id);
            return Err(format!("collective {id} completed, but this rank is in collective {joined:?}"));
        };
        match joined {
            Next::AllToAllV { epoch } => {
                let expected = match self.plan.cfg.exchange {
                    Exchange::AllToAllV => ctx.dag.ranks() - 1,
                    Exchange::Neighbor => self.plan.neighbors(self.next_a2a - 1, ctx.rank).0.len(),
                };
                if received.len() != expected {
                    let whom = match self.plan.cfg.exchange {
                        Exchange::AllToAllV => "one per other rank",
                        Exchange::Neighbor => "one per source of its graph",
                    };
                    return Err(format!(
                        "epoch {epoch}: {} contributions, expected {expected} ({whom})",
                        received.len()
                    ));
                }
                let range = self.incoming_of(epoch);
                let (incoming, got) = (&self.incoming[range.clone()], &mut self.got[range]);
                let mut chunks = 0;
                for c in received {
                    chunks += Self::take(ctx, epoch, (incoming, &mut *got), c)?;
                }
                // Every chunk arrived now, or (with a window) arrived or comes late.
                let missing = got.iter().filter(|&&g| !g).count();
                if missing > 0 && self.plan.cfg.window_ns == 0 {
                    return Err(format!("epoch {epoch}: received {chunks} chunks, expected {}", incoming.len()));
                }
            }
            Next::Broadcast { epoch, chunk, index } => {
                Self::take_broadcast(ctx, epoch, chunk, self.plan.members(index)[0], received)?
            }
        }
        self.joined = None;
        self.try_join(ctx);
        Ok(())
    }

    /// Idle once every collective was joined and completed.
    fn is_idle(&self) -> bool {
        self.joined.is_none() && self.peek().is_none()
    }
}
