//! Collectives: what a strategy may ask every rank to do together, and what drivers
//! must offer for it.
//!
//! A strategy joins a collective through [`crate::StrategyCtx::join_collective`]; the
//! engine hands the join to the driver as [`crate::Action::Collective`]; the driver moves
//! the contributions (the `local` driver, the simulator and the test harness run the
//! algorithms of [`crate::collectives`], which turn a join into point-to-point pieces;
//! the `mpi` driver runs them too, or MPI's own collectives where it has them, as its
//! `collectives` parameter says) and, once the collective has completed
//! on that rank, calls [`crate::Engine::handle_collective_done`] with what it received.
//!
//! Not every driver can do this, so each strategy declares what it [`needs`](crate::Strategy::needs)
//! and each driver what it offers; [`check_capabilities`] refuses a mismatch before the
//! run starts, naming both.

use crate::drivers::RunError;
use crate::ids::Rank;
use crate::message::{HEADER_BYTES, Message};
use std::fmt;

/// Something a driver can do for a strategy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Capability {
    /// Point-to-point messages ([`crate::Action::Send`]); every driver offers them.
    PointToPoint,
    /// All-to-all-v collectives ([`CollectiveKind::AllToAllV`]).
    AllToAllV,
    /// Sparse all-to-all-v over a communication graph ([`CollectiveKind::NeighborAllToAllV`]).
    NeighborAllToAllV,
    /// Broadcasts along a tree ([`CollectiveKind::Broadcast`]).
    Broadcast,
    /// One-sided put/get on windows with passive-target synchronisation
    /// ([`crate::one_sided::WindowSync::Passive`]).
    OneSidedPassive,
    /// One-sided put/get on windows synchronised by fences
    /// ([`crate::one_sided::WindowSync::Fence`], [`CollectiveKind::Fence`]).
    OneSidedFence,
    /// Memory exposed for remote reads without a window: register, read by key,
    /// withdraw ([`crate::one_sided::Access::Expose`], as RDMA registration works).
    OneSidedExpose,
    /// Element-wise reductions whose result every rank gets ([`CollectiveKind::AllReduce`]).
    AllReduce,
    /// Element-wise reductions whose result is scattered in blocks ([`CollectiveKind::ReduceScatter`]).
    ReduceScatter,
    /// Every rank's contribution to every rank ([`CollectiveKind::AllGather`]).
    AllGather,
}

impl Capability {
    /// What a strategy that needs only messages needs.
    pub const POINT_TO_POINT: &'static [Capability] = &[Capability::PointToPoint];

    /// Everything the engine can ask of a driver (what a complete driver offers).
    pub const ALL: &'static [Capability] = &[
        Capability::PointToPoint,
        Capability::AllToAllV,
        Capability::NeighborAllToAllV,
        Capability::Broadcast,
        Capability::OneSidedPassive,
        Capability::OneSidedFence,
        Capability::OneSidedExpose,
        Capability::AllReduce,
        Capability::ReduceScatter,
        Capability::AllGather,
    ];
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Capability::PointToPoint => "point-to-point messages",
            Capability::AllToAllV => "collectives (all-to-all-v)",
            Capability::NeighborAllToAllV => "collectives (neighbor all-to-all-v)",
            Capability::Broadcast => "collectives (broadcast)",
            Capability::OneSidedPassive => "one-sided access (passive target: lock_all + flush)",
            Capability::OneSidedFence => "one-sided access (fence epochs)",
            Capability::OneSidedExpose => "exposed memory (registration, one-sided reads by key)",
            Capability::AllReduce => "collectives (all-reduce)",
            Capability::ReduceScatter => "collectives (reduce-scatter)",
            Capability::AllGather => "collectives (all-gather)",
        })
    }
}

/// Refuses a strategy whose needs the driver does not offer, with an error naming both
/// (drivers call this once per run, before any rank starts).
///
/// ```
/// use dagwire_runtime::collective::{Capability, check_capabilities};
/// let needs = [Capability::PointToPoint, Capability::AllToAllV];
/// assert!(check_capabilities("local", &needs, "batched", &needs).is_ok());
/// let err = check_capabilities("fake", Capability::POINT_TO_POINT, "batched", &needs).unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "invalid run configuration: strategy batched needs collectives (all-to-all-v), which driver fake does not \
///      offer (it offers point-to-point messages); choose another strategy or driver"
/// );
/// ```
pub fn check_capabilities(
    driver: &str,
    offers: &[Capability],
    strategy: &str,
    needs: &[Capability],
) -> Result<(), RunError> {
    let missing: Vec<String> = needs.iter().filter(|n| !offers.contains(n)).map(|n| n.to_string()).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let offered: Vec<String> = offers.iter().map(|c| c.to_string()).collect();
    Err(RunError::Config(format!(
        "strategy {strategy} needs {}, which driver {driver} does not offer (it offers {}); choose another strategy \
         or driver",
        missing.join(" and "),
        offered.join(", ")
    )))
}

/// Which collective to join, and with which algorithm where the choice is the
/// strategy's. What a join carries and what [`crate::Strategy::on_collective_done`]
/// receives for each kind is stated on [`CollectiveJoin`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CollectiveKind {
    /// Every rank of the run sends one contribution (a possibly empty list of messages)
    /// to every other rank and receives one from each. Needs [`Capability::AllToAllV`].
    /// Drivers with native collectives (mpi) may use their own algorithm instead.
    AllToAllV {
        /// How the contributions travel.
        algorithm: AllToAllAlgorithm,
    },
    /// A sparse all-to-all-v: this rank sends one contribution to each of
    /// `destinations` and receives exactly one from each of `sources` (MPI's
    /// `MPI_Neighbor_alltoallv` over a graph). Every rank of the run joins (with empty
    /// lists if it has no neighbours, which completes at once); the graph must be
    /// consistent: `r` lists `s` as a source exactly when `s` lists `r` as a
    /// destination. Neither list names this rank or repeats a rank. Needs
    /// [`Capability::NeighborAllToAllV`].
    NeighborAllToAllV {
        /// The ranks this rank receives from.
        sources: Vec<Rank>,
        /// The ranks this rank sends to, in the order of the join's `sends`.
        destinations: Vec<Rank>,
    },
    /// The first member (the root) sends its messages to every other member along
    /// `tree`: each member receives them from its parent and forwards them to its
    /// children. Every member joins with the same `members` (no repeats, at least one);
    /// ranks not listed take no part. Needs [`Capability::Broadcast`].
    Broadcast {
        /// The ranks taking part, root first; the tree is laid over this order.
        members: Vec<Rank>,
        /// How the data spreads.
        tree: Tree,
    },
    /// A fence on the one-sided windows: a barrier of every rank of the run that also
    /// completes every one-sided operation its members issued before joining it (see
    /// [`crate::one_sided`]). Carries no messages. Needs [`Capability::OneSidedFence`].
    Fence,
    /// Every rank of the run contributes a vector of `dtype` values (the payload of one
    /// data message) and every rank gets their element-wise reduction by `op`, with
    /// the same bytes on every rank. Needs [`Capability::AllReduce`].
    AllReduce {
        /// The reduction.
        op: ReduceOp,
        /// The element type of the vectors.
        dtype: DType,
        /// How the vectors travel and are combined.
        algorithm: AllReduceAlgorithm,
    },
    /// Like [`CollectiveKind::AllReduce`], but rank `r` gets only block `r` of the
    /// result ([`block_range`]); a ring of `p - 1` steps. Needs [`Capability::ReduceScatter`].
    ReduceScatter {
        /// The reduction.
        op: ReduceOp,
        /// The element type of the vectors.
        dtype: DType,
    },
    /// Every rank of the run contributes a list of messages and every rank gets every
    /// rank's list; a ring of `p - 1` steps. Needs [`Capability::AllGather`].
    AllGather,
}

impl CollectiveKind {
    /// The capability a driver needs to run this collective.
    pub fn capability(&self) -> Capability {
        match self {
            CollectiveKind::AllToAllV { .. } => Capability::AllToAllV,
            CollectiveKind::NeighborAllToAllV { .. } => Capability::NeighborAllToAllV,
            CollectiveKind::Broadcast { .. } => Capability::Broadcast,
            CollectiveKind::Fence => Capability::OneSidedFence,
            CollectiveKind::AllReduce { .. } => Capability::AllReduce,
            CollectiveKind::ReduceScatter { .. } => Capability::ReduceScatter,
            CollectiveKind::AllGather => Capability::AllGather,
        }
    }

    /// A short name with the algorithm, for diagnostics (`all-to-all-v (bruck)`, ...).
    ///
    /// ```
    /// use dagwire_runtime::collective::{AllReduceAlgorithm, CollectiveKind, DType, ReduceOp};
    /// let k = CollectiveKind::AllReduce { op: ReduceOp::Sum, dtype: DType::F32, algorithm: AllReduceAlgorithm::Ring };
    /// assert_eq!(k.name(), "all-reduce (ring, sum, f32)");
    /// assert_eq!(CollectiveKind::Fence.name(), "fence");
    /// ```
    pub fn name(&self) -> String {
        match self {
            CollectiveKind::AllToAllV { algorithm } => format!("all-to-all-v ({})", algorithm.name()),
            CollectiveKind::NeighborAllToAllV { .. } => "neighbor all-to-all-v".into(),
            CollectiveKind::Broadcast { tree: Tree::Binomial, .. } => "broadcast (binomial)".into(),
            CollectiveKind::Broadcast { tree: Tree::Chain { .. }, .. } => "broadcast (chain)".into(),
            CollectiveKind::Fence => "fence".into(),
            CollectiveKind::AllReduce { op, dtype, algorithm } => {
                format!("all-reduce ({}, {}, {})", algorithm.name(), op.name(), dtype.name())
            }
            CollectiveKind::ReduceScatter { op, dtype } => {
                format!("reduce-scatter (ring, {}, {})", op.name(), dtype.name())
            }
            CollectiveKind::AllGather => "all-gather (ring)".into(),
        }
    }

    /// The ranks that take part, out of a run of `ranks`: a broadcast's members, every
    /// rank for the other kinds.
    pub fn members(&self, ranks: usize) -> Vec<Rank> {
        match self {
            CollectiveKind::Broadcast { members, .. } => members.clone(),
            _ => (0..ranks as u32).map(Rank).collect(),
        }
    }
}

/// How an all-to-all-v moves its contributions over `p` ranks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AllToAllAlgorithm {
    /// Pairwise exchange: `p - 1` steps; in step `i` (from 1) rank `r` sends its
    /// contribution for `(r + i) mod p` and receives the one from `(r - i) mod p`
    /// before it moves on. Every contribution travels once, straight to its receiver.
    Pairwise,
    /// Bruck's algorithm: `ceil(log2 p)` rounds; in round `k` rank `r` sends to
    /// `(r + 2^k) mod p` every block whose distance to its destination has bit `k` set.
    /// Fewer, larger messages; blocks are forwarded through intermediate ranks.
    Bruck,
}

impl AllToAllAlgorithm {
    /// Names accepted by parameters (`batched.alltoall`).
    pub const NAMES: &'static [&'static str] = &["pairwise", "bruck"];

    /// Its name in [`AllToAllAlgorithm::NAMES`].
    pub fn name(self) -> &'static str {
        match self {
            AllToAllAlgorithm::Pairwise => "pairwise",
            AllToAllAlgorithm::Bruck => "bruck",
        }
    }

    /// Parses a name from [`AllToAllAlgorithm::NAMES`].
    ///
    /// ```
    /// use dagwire_runtime::collective::AllToAllAlgorithm;
    /// assert_eq!(AllToAllAlgorithm::from_name("bruck"), Some(AllToAllAlgorithm::Bruck));
    /// assert_eq!(AllToAllAlgorithm::from_name("ring"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "pairwise" => Some(AllToAllAlgorithm::Pairwise),
            "bruck" => Some(AllToAllAlgorithm::Bruck),
            _ => None,
        }
    }
}

/// How an all-reduce moves and combines its vectors over `p` ranks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AllReduceAlgorithm {
    /// A ring reduce-scatter then a ring all-gather: `2 (p - 1)` steps, each moving
    /// one block of about `1/p` of the vector (bandwidth-optimal).
    Ring,
    /// Recursive doubling: `log2 p` steps of whole-vector exchanges for a power of two
    /// `p` (latency-optimal); otherwise the `p - 2^floor(log2 p)` extra ranks first
    /// fold their vectors onto a partner and get the result back at the end (two more steps).
    RecursiveDoubling,
    /// A reduction to rank 0 up a binomial tree, then a binomial broadcast of the result.
    BinomialTree,
}

impl AllReduceAlgorithm {
    /// Names accepted by parameters.
    pub const NAMES: &'static [&'static str] = &["ring", "recursive-doubling", "tree"];

    /// Its name in [`AllReduceAlgorithm::NAMES`].
    pub fn name(self) -> &'static str {
        match self {
            AllReduceAlgorithm::Ring => "ring",
            AllReduceAlgorithm::RecursiveDoubling => "recursive-doubling",
            AllReduceAlgorithm::BinomialTree => "tree",
        }
    }

    /// Parses a name from [`AllReduceAlgorithm::NAMES`].
    ///
    /// ```
    /// use dagwire_runtime::collective::AllReduceAlgorithm;
    /// assert_eq!(AllReduceAlgorithm::from_name("tree"), Some(AllReduceAlgorithm::BinomialTree));
    /// ```
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "ring" => Some(AllReduceAlgorithm::Ring),
            "recursive-doubling" => Some(AllReduceAlgorithm::RecursiveDoubling),
            "tree" => Some(AllReduceAlgorithm::BinomialTree),
            _ => None,
        }
    }
}

/// An element-wise reduction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    /// The sum.
    Sum,
}

impl ReduceOp {
    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "sum",
        }
    }
}

/// The element type of a reduced vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// 64-bit IEEE floats.
    F64,
    /// 32-bit IEEE floats.
    F32,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F64 => 8,
            DType::F32 => 4,
        }
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            DType::F64 => "f64",
            DType::F32 => "f32",
        }
    }
}

/// The elements of block `b` of a vector of `n` elements cut into `p` blocks, as
/// [`CollectiveKind::ReduceScatter`] and the ring all-reduce cut it: sizes differ by at
/// most one, the larger blocks first.
///
/// ```
/// use dagwire_runtime::collective::block_range;
/// assert_eq!((0..3).map(|b| block_range(7, 3, b)).collect::<Vec<_>>(), [0..3, 3..5, 5..7]);
/// assert_eq!(block_range(2, 4, 3), 2..2);
/// ```
pub fn block_range(n: usize, p: usize, b: usize) -> std::ops::Range<usize> {
    let (base, extra) = (n / p, n % p);
    let start = b * base + b.min(extra);
    start..start + base + usize::from(b < extra)
}

/// The shape of a broadcast over `m` members, numbered `0..m` in
/// [`CollectiveKind::Broadcast::members`] order (0 is the root).
///
/// ```
/// use dagwire_runtime::collective::Tree;
/// let b = Tree::Binomial;
/// assert_eq!(b.children(0, 8), [4, 2, 1]);
/// assert_eq!((b.children(4, 8), b.parent(4)), (vec![6, 5], Some(0)));
/// assert_eq!((b.children(6, 8), b.parent(6), b.parent(7)), (vec![7], Some(4), Some(6)));
/// let c = Tree::Chain { segment_bytes: 1 << 16 };
/// assert_eq!((c.children(0, 3), c.children(2, 3), c.parent(2)), (vec![1], vec![], Some(1)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tree {
    /// A binomial tree: `ceil(log2 m)` rounds; each member sends the whole data to each
    /// of its children, farthest subtree first.
    Binomial,
    /// A pipelined chain `0 -> 1 -> ... -> m-1`: the data moves in segments of
    /// `segment_bytes`, each forwarded as soon as it arrives (drivers that move data in
    /// one piece anyway, such as the local one, forward it whole).
    Chain {
        /// Bytes per pipelined segment (at least 1).
        segment_bytes: u64,
    },
}

impl Tree {
    /// The member `v` receives from (`None` for the root).
    pub fn parent(self, v: usize) -> Option<usize> {
        match (self, v) {
            (_, 0) => None,
            (Tree::Binomial, v) => Some(v - (1 << v.trailing_zeros())),
            (Tree::Chain { .. }, v) => Some(v - 1),
        }
    }

    /// The members `v` forwards to, in sending order, out of `m`.
    pub fn children(self, v: usize, m: usize) -> Vec<usize> {
        match self {
            Tree::Binomial => {
                // Children are v + 2^k for every 2^k below v's lowest set bit (all, for the root).
                let limit = if v == 0 { m.next_power_of_two() } else { 1 << v.trailing_zeros() };
                let mut masks: Vec<usize> = (0..usize::BITS).map(|k| 1usize << k).take_while(|&b| b < limit).collect();
                masks.reverse();
                masks.into_iter().map(|b| v + b).filter(|&c| c < m).collect()
            }
            Tree::Chain { .. } => {
                if v + 1 < m {
                    vec![v + 1]
                } else {
                    Vec::new()
                }
            }
        }
    }
}

/// A collective this rank joins now; the driver answers with
/// [`crate::Engine::handle_collective_done`] once it has completed on this rank.
///
/// What `sends` holds (as [`crate::StrategyCtx::join_collective`] normalises it) and
/// what the completion's `received` holds, per kind (`p` ranks in the run, `r` this one):
///
/// | kind | `sends` | `received` |
/// |---|---|---|
/// | [`AllToAllV`](CollectiveKind::AllToAllV) | one entry per other rank, in rank order | one [`Contribution`] per other rank, `from` the rank that contributed it |
/// | [`NeighborAllToAllV`](CollectiveKind::NeighborAllToAllV) | one entry per destination, in `destinations` order | one per source, `from` that source |
/// | [`Broadcast`](CollectiveKind::Broadcast) | the root: one entry `(root, messages)`; others: none | the root: none; others: one, `from` its tree parent, with the root's messages |
/// | [`Fence`](CollectiveKind::Fence) | none | none |
/// | [`AllReduce`](CollectiveKind::AllReduce) | one entry `(r, [m])`: one data message whose payload is this rank's vector | one, `from` `r` itself: `m` with the reduced vector as its payload |
/// | [`ReduceScatter`](CollectiveKind::ReduceScatter) | as for all-reduce | one, `from` `r`: `m` with block `r` ([`block_range`]) of the reduced vector |
/// | [`AllGather`](CollectiveKind::AllGather) | one entry `(r, messages)` (possibly empty) | one per rank, this one included, `from` the contributing rank |
///
/// Every rank a kind names as a member joins with the same `id` and the same kind (a
/// neighbour all-to-all-v with its own lists); vectors of a reduction have the same
/// length on every rank and a whole number of elements. A reduction of
/// [`Payload::phantom`](crate::Payload::phantom) vectors (the simulator's cost-model
/// runs) gives a phantom of the same length, with no arithmetic.
#[derive(Clone, Debug)]
pub struct CollectiveJoin {
    /// Names the collective; the same on every rank that joins it, unique per run.
    pub id: u64,
    /// Which collective.
    pub kind: CollectiveKind,
    /// This rank's contribution to each peer; each message's `sent_ns` is stamped with
    /// the time the rank joined.
    pub sends: Vec<(Rank, Vec<Message>)>,
}

impl CollectiveJoin {
    /// Checks that rank `rank` of a run of `ranks` may join this as it stands (the
    /// engine does before handing a join to the driver; a failure is the strategy's
    /// bug): membership, the neighbour lists, and a reduction's one data message of
    /// whole elements.
    ///
    /// ```
    /// use dagwire_runtime::collective::{CollectiveJoin, CollectiveKind, Tree};
    /// use dagwire_runtime::Rank;
    /// let kind = CollectiveKind::Broadcast { members: vec![Rank(1), Rank(0)], tree: Tree::Binomial };
    /// let join = CollectiveJoin { id: 0, kind, sends: vec![] };
    /// assert!(join.check(Rank(0), 2).is_ok());
    /// assert!(join.check(Rank(2), 3).unwrap_err().contains("must include this rank, once each"));
    /// ```
    pub fn check(&self, rank: Rank, ranks: usize) -> Result<(), String> {
        let id = self.id;
        let distinct = |list: &[Rank]| {
            let mut sorted = list.to_vec();
            sorted.sort_unstable();
            sorted.dedup();
            sorted.len() == list.len() && list.iter().all(|r| r.index() < ranks)
        };
        match &self.kind {
            CollectiveKind::Broadcast { members, .. } => {
                if !members.contains(&rank) || !distinct(members) {
                    return Err(format!(
                        "joined broadcast {id} with members {members:?}; they must include this rank, once each, \
                         and be ranks of the run"
                    ));
                }
            }
            CollectiveKind::NeighborAllToAllV { sources, destinations } => {
                for (what, list) in [("sources", sources), ("destinations", destinations)] {
                    if list.contains(&rank) || !distinct(list) {
                        return Err(format!(
                            "joined neighbor all-to-all-v {id} with {what} {list:?}; they must be other ranks of the \
                             run, once each"
                        ));
                    }
                }
                let to: Vec<Rank> = self.sends.iter().map(|(r, _)| *r).collect();
                if &to != destinations {
                    return Err(format!(
                        "joined neighbor all-to-all-v {id} sending to {to:?}, but its destinations are \
                         {destinations:?}; send only to destinations"
                    ));
                }
            }
            CollectiveKind::AllReduce { dtype, .. } | CollectiveKind::ReduceScatter { dtype, .. } => {
                let one = match &self.sends[..] {
                    [(r, messages)] if *r == rank => match &messages[..] {
                        [m] => m.payload.as_ref(),
                        _ => None,
                    },
                    _ => None,
                };
                match one {
                    Some(p) if p.len().is_multiple_of(dtype.size()) => {}
                    Some(p) => {
                        return Err(format!(
                            "joined reduction {id} with a vector of {} bytes, not a whole number of {} elements",
                            p.len(),
                            dtype.name()
                        ));
                    }
                    None => {
                        return Err(format!(
                            "joined reduction {id} without exactly one data message (its vector); got {:?}",
                            self.sends.iter().map(|(r, m)| (r, m.len())).collect::<Vec<_>>()
                        ));
                    }
                }
            }
            CollectiveKind::AllToAllV { .. } | CollectiveKind::Fence | CollectiveKind::AllGather => {}
        }
        Ok(())
    }
}

/// What one peer contributed to a collective, as it reached this rank (see
/// [`CollectiveJoin`] for what each kind delivers).
#[derive(Clone, Debug, PartialEq)]
pub struct Contribution {
    /// The rank it came from: the contributing rank in an all-to-all-v (whichever ranks
    /// forwarded it) and an all-gather, the member's parent in a broadcast's tree
    /// (which forwarded the root's messages), this rank itself for a reduction's result.
    pub from: Rank,
    /// When it left `from`, ns (when its first piece was handed to the transport; for
    /// a reduction's result, when this rank joined).
    pub sent_ns: u64,
    /// When it reached this rank, ns.
    pub recv_ns: u64,
    /// The messages, as `from` gave them (possibly none).
    pub messages: Vec<Message>,
}

/// Bytes one contribution takes on the wire: its messages' [`Message::wire_bytes`], or
/// one header when it is empty (an empty contribution still tells the peer so).
///
/// ```
/// use dagwire_runtime::collective::wire_bytes;
/// use dagwire_runtime::message::{HEADER_BYTES, NO_CHUNK};
/// use dagwire_runtime::{ChunkId, Message, Payload};
/// assert_eq!(wire_bytes(&[]), HEADER_BYTES);
/// assert_eq!(wire_bytes(&[Message::control(1, NO_CHUNK, 0)]), HEADER_BYTES);
/// let two = [Message::data(2, ChunkId(1), Payload::zeroed(100)), Message::data(2, ChunkId(2), Payload::zeroed(50))];
/// assert_eq!(wire_bytes(&two), 150);
/// ```
pub fn wire_bytes(messages: &[Message]) -> u64 {
    if messages.is_empty() { HEADER_BYTES } else { messages.iter().map(Message::wire_bytes).sum() }
}
