//! Collectives: what a strategy may ask every rank to do together, and what drivers
//! must offer for it.
//!
//! A strategy joins a collective through [`crate::StrategyCtx::join_collective`]; the
//! engine hands the join to the driver as [`crate::Action::Collective`]; the driver moves
//! the contributions (how is its business: the `local` driver sends them through its
//! channels, the simulator decomposes them into its algorithm's point-to-point steps)
//! and, once the collective has completed on that rank, calls
//! [`crate::Engine::handle_collective_done`] with what the other ranks contributed.
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
    /// Broadcasts along a tree ([`CollectiveKind::Broadcast`]).
    Broadcast,
    /// One-sided put/get on windows with passive-target synchronisation
    /// ([`crate::one_sided::WindowSync::Passive`]).
    OneSidedPassive,
    /// One-sided put/get on windows synchronised by fences
    /// ([`crate::one_sided::WindowSync::Fence`], [`CollectiveKind::Fence`]).
    OneSidedFence,
}

impl Capability {
    /// What a strategy that needs only messages needs.
    pub const POINT_TO_POINT: &'static [Capability] = &[Capability::PointToPoint];

    /// Everything the engine can ask of a driver (what a complete driver offers).
    pub const ALL: &'static [Capability] = &[
        Capability::PointToPoint,
        Capability::AllToAllV,
        Capability::Broadcast,
        Capability::OneSidedPassive,
        Capability::OneSidedFence,
    ];
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Capability::PointToPoint => "point-to-point messages",
            Capability::AllToAllV => "collectives (all-to-all-v)",
            Capability::Broadcast => "collectives (broadcast)",
            Capability::OneSidedPassive => "one-sided access (passive target: lock_all + flush)",
            Capability::OneSidedFence => "one-sided access (fence epochs)",
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

/// Which collective to join.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CollectiveKind {
    /// Every rank of the run sends one contribution (a possibly empty list of messages)
    /// to every other rank and receives one from each. Needs [`Capability::AllToAllV`].
    AllToAllV,
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
}

impl CollectiveKind {
    /// The capability a driver needs to run this collective.
    pub fn capability(&self) -> Capability {
        match self {
            CollectiveKind::AllToAllV => Capability::AllToAllV,
            CollectiveKind::Broadcast { .. } => Capability::Broadcast,
            CollectiveKind::Fence => Capability::OneSidedFence,
        }
    }
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
/// For [`CollectiveKind::AllToAllV`], `sends` has exactly one entry per other rank, in
/// rank order (the engine fills in empty contributions for ranks the strategy left
/// out), and every rank of the run joins the collective with the same `id`; the same
/// for [`CollectiveKind::Fence`], whose `sends` is empty. For
/// [`CollectiveKind::Broadcast`], the root's `sends` is one entry `(root, messages)`,
/// the messages every other member receives, and other members' `sends` is empty.
#[derive(Debug)]
pub struct CollectiveJoin {
    /// Names the collective; the same on every rank that joins it, unique per run.
    pub id: u64,
    /// Which collective.
    pub kind: CollectiveKind,
    /// This rank's contribution to each peer; each message's `sent_ns` is stamped with
    /// the time the rank joined.
    pub sends: Vec<(Rank, Vec<Message>)>,
}

/// What one peer contributed to a collective, as it reached this rank.
#[derive(Clone, Debug, PartialEq)]
pub struct Contribution {
    /// The rank it came from: the contributing rank in an all-to-all-v, the member's
    /// parent in a broadcast's tree (which forwarded the root's messages).
    pub from: Rank,
    /// When it left `from`, ns (in the simulator, when its step was handed to the network).
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
