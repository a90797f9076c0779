//! Collective algorithms, written once as sans-IO state machines that turn a join into
//! point-to-point [`Piece`]s; the `local` driver, the simulator and the in-memory test
//! harness all run these, and so does the `mpi` driver (with `collectives = native`,
//! only for the kinds MPI has no native collective for in that driver).
//!
//! One [`Collectives`] per rank holds that rank's open collectives by id and the pieces
//! that arrived before the rank joined their collective. It is driven like the engine,
//! with `now` passed in and no I/O of its own:
//!
//! 1. [`Collectives::join`] with each [`crate::Action::Collective`] the engine asks for;
//! 2. [`Collectives::handle_piece`] with each piece the transport delivers to this rank;
//! 3. after either, drain [`Collectives::poll_send`] (hand each piece to the transport,
//!    towards its `dst`) and then [`Collectives::poll_done`] (feed each to
//!    [`crate::Engine::handle_collective_done`]);
//! 4. check [`Collectives::error`]: a malformed join or piece is a fatal, sticky error;
//! 5. at the end, [`Collectives::is_idle`] holds; [`Collectives::summary`] says what an
//!    open collective waits for when a run stalls.
//!
//! A driver with devices ([`crate::space`]) also gives each rank's collectives its
//! [`Memory`] ([`Collectives::set_memory`]) and says when each copy of a chunk to host
//! memory that the engine asked for starts and ends ([`Collectives::stage`],
//! [`Collectives::staged`]): a piece to another node that carries a chunk still being
//! copied waits for it, so staging pipelines with the exchange.
//!
//! The algorithms, one family per file (`p` ranks; every step one piece):
//! - all-to-all-v: **pairwise** exchange (`p - 1` steps) and **Bruck** (`ceil(log2 p)`
//!   rounds, blocks forwarded);
//! - **neighbour** all-to-all-v: one piece to each destination, one awaited from each source;
//! - broadcast: **binomial** tree and **pipelined chain** (in segments of
//!   `segment_bytes` when the transport asks for [`Segmenting::Segments`]);
//! - fence: **dissemination** barrier (`ceil(log2 p)` rounds of headers);
//! - all-reduce: **ring** (reduce-scatter then all-gather, `2 (p - 1)` steps),
//!   **recursive doubling** (`log2 p` steps for a power of two `p`, two fold steps more
//!   otherwise) and **binomial tree** (reduce to rank 0, then broadcast); **ring
//!   reduce-scatter** and **ring all-gather** (`p - 1` steps each).
//!
//! Reductions give bit-identical results on every rank: each block of a ring is summed
//! on one rank and copied to the others, recursive doubling adds the lower rank's
//! vector first on both sides, and the tree's result is the root's.

mod alltoall;
mod barrier;
mod broadcast;
mod doubling;
mod neighbor;
mod piece;
mod ring;
mod staging;
mod tree;
mod values;

pub use piece::{Block, Body, Piece, body_bytes};

use crate::collective::{AllReduceAlgorithm, AllToAllAlgorithm, CollectiveJoin, CollectiveKind, Contribution, DType};
use crate::ids::ChunkId;
use crate::ids::Rank;
use crate::message::Message;
use crate::space::Memory;
use rustc_hash::FxHashMap;
use std::collections::{BTreeMap, VecDeque};
use values::Vector;

/// Whether a pipelined chain broadcast really cuts its data into segments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Segmenting {
    /// Segments of `segment_bytes`, each its own piece, forwarded as it arrives (the
    /// simulator: the pipelining shows in time). The messages ride on the last segment.
    Segments,
    /// One piece with all the data (a transport that moves data whole anyway, such as
    /// the `local` driver's channels).
    Whole,
}

/// A malformed join or piece: which rank, which collective, what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("rank {rank}, collective {id}: {reason}")]
pub struct CollectiveError {
    /// The rank whose [`Collectives`] found it.
    pub rank: Rank,
    /// The collective.
    pub id: u64,
    /// What is wrong.
    pub reason: String,
}

/// One rank's collectives: open ones by id, pieces that came early, and what to send
/// and report next. See the [module docs](self) for the call order.
///
/// ```
/// use dagwire_runtime::collective::{AllToAllAlgorithm, CollectiveJoin, CollectiveKind};
/// use dagwire_runtime::collectives::{Collectives, Segmenting};
/// use dagwire_runtime::{Message, Rank};
/// use dagwire_runtime::message::NO_CHUNK;
/// let kind = CollectiveKind::AllToAllV { algorithm: AllToAllAlgorithm::Pairwise };
/// let mut ranks: Vec<Collectives> = (0..2).map(|r| Collectives::new(Rank(r), 2, Segmenting::Whole)).collect();
/// for r in 0..2u32 {
///     let sends = vec![(Rank(1 - r), vec![Message::control(1, NO_CHUNK, r as u64)])];
///     ranks[r as usize].join(10, CollectiveJoin { id: 7, kind: kind.clone(), sends });
/// }
/// // Move the pieces (a transport would), then collect the results.
/// let pieces: Vec<_> = ranks.iter_mut().flat_map(|c| std::iter::from_fn(|| c.poll_send()).collect::<Vec<_>>()).collect();
/// for piece in pieces {
///     let dst = piece.dst.index();
///     ranks[dst].handle_piece(20, piece);
/// }
/// let (id, received) = ranks[0].poll_done().unwrap();
/// assert_eq!((id, received[0].from, received[0].messages[0].arg, received[0].recv_ns), (7, Rank(1), 1, 20));
/// assert!(ranks.iter_mut().all(|c| c.poll_done().is_some() || c.is_idle()));
/// ```
#[derive(Debug)]
pub struct Collectives {
    rank: Rank,
    ranks: usize,
    segmenting: Segmenting,
    open: BTreeMap<u64, Open>,
    /// Pieces for collectives this rank has not joined yet, with their arrival times.
    early: BTreeMap<u64, Inbox>,
    last_joined: Option<u64>,
    sends: VecDeque<Piece>,
    done: VecDeque<(u64, Vec<Contribution>)>,
    error: Option<CollectiveError>,
    /// Pieces waiting for their chunks to reach host memory.
    staging: staging::Staging,
}

/// A collective this rank joined that has not completed.
#[derive(Debug)]
struct Open {
    algorithm: Algorithm,
    inbox: Inbox,
}

impl Collectives {
    /// No collective open, for rank `rank` of a run of `ranks`.
    pub fn new(rank: Rank, ranks: usize, segmenting: Segmenting) -> Self {
        Collectives {
            rank,
            ranks,
            segmenting,
            open: BTreeMap::new(),
            early: BTreeMap::new(),
            last_joined: None,
            sends: VecDeque::new(),
            done: VecDeque::new(),
            error: None,
            staging: staging::Staging::default(),
        }
    }

    /// This rank joins `join` at `now` (ids must increase from one join to the next).
    /// Pieces it sends wait in [`Collectives::poll_send`]; if it completes at once (a
    /// broadcast's root, a rank without neighbours, a run of one rank), it waits in
    /// [`Collectives::poll_done`]. The join should pass [`CollectiveJoin::check`] (the
    /// engine checks every join it hands out); what would derail an algorithm here (a
    /// broadcast this rank is no member of, a neighbour out of range, a reduction
    /// without its vector) is an error all the same.
    pub fn join(&mut self, now: u64, join: CollectiveJoin) {
        if self.error.is_some() {
            return;
        }
        let id = join.id;
        if let Some(last) = self.last_joined.filter(|&last| id <= last) {
            return self.fail(id, format!("joined after collective {last}; ids must increase"));
        }
        self.last_joined = Some(id);
        let algorithm = match Algorithm::new(self.rank, self.ranks, now, join, self.segmenting) {
            Ok(a) => a,
            Err(reason) => return self.fail(id, reason),
        };
        let inbox = self.early.remove(&id).unwrap_or_default();
        self.open.insert(id, Open { algorithm, inbox });
        self.advance(now, id);
    }

    /// `piece` reached this rank at `now`.
    pub fn handle_piece(&mut self, now: u64, piece: Piece) {
        if self.error.is_some() {
            return;
        }
        let id = piece.id;
        if piece.dst != self.rank {
            return self.fail(id, format!("a piece for {} from {} was handed to this rank", piece.dst, piece.src));
        }
        if let Some(open) = self.open.get_mut(&id) {
            let mut out = Out { id, me: self.rank, p: self.ranks, now, sends: &mut self.sends };
            let moved = open.inbox.put(piece, now).and_then(|()| open.algorithm.advance(&mut out, &mut open.inbox));
            return self.settle(id, moved);
        }
        if self.last_joined.is_some_and(|last| id <= last) {
            let (src, step) = (piece.src, piece.step);
            return self.fail(id, format!("step {step} from {src} arrived after the collective completed here"));
        }
        if let Err(reason) = self.early.entry(id).or_default().put(piece, now) {
            self.fail(id, reason);
        }
    }

    /// The next piece to hand to the transport, towards its `dst`.
    #[inline]
    pub fn poll_send(&mut self) -> Option<Piece> {
        while let Some(piece) = self.sends.pop_front() {
            if let Some(piece) = self.staging.admit(piece) {
                return Some(piece);
            }
        }
        None
    }

    /// Gives this rank's collectives its memory (a driver with devices, before the run):
    /// which ranks a piece reaches by a peer copy rather than the network.
    pub fn set_memory(&mut self, memory: Memory) {
        self.staging.set_memory(memory);
    }

    /// A copy of `chunk` from device to host memory has started on this rank: a piece to
    /// another node carrying it waits in [`Collectives::poll_send`] until
    /// [`Collectives::staged`].
    ///
    /// ```
    /// use dagwire_runtime::collective::{AllToAllAlgorithm, CollectiveJoin, CollectiveKind};
    /// use dagwire_runtime::collectives::{Collectives, Segmenting};
    /// use dagwire_runtime::space::Memory;
    /// use dagwire_runtime::{ChunkId, Message, Payload, Rank};
    /// let mut c = Collectives::new(Rank(0), 3, Segmenting::Whole);
    /// c.set_memory(Memory::device(Rank(0), 0, false, 0..1));
    /// c.stage(ChunkId(7));
    /// let kind = CollectiveKind::AllToAllV { algorithm: AllToAllAlgorithm::Pairwise };
    /// let data = |c| vec![Message::data(1, ChunkId(c), Payload::phantom(64))];
    /// c.join(0, CollectiveJoin { id: 1, kind, sends: vec![(Rank(1), data(7)), (Rank(2), data(8))] });
    /// assert!(c.poll_send().is_none()); // step 1's piece (to r1) carries chunk 7
    /// c.staged(50, ChunkId(7));
    /// let piece = c.poll_send().unwrap();
    /// assert_eq!((piece.dst, piece.sent_ns), (Rank(1), 50));
    /// ```
    pub fn stage(&mut self, chunk: ChunkId) {
        self.staging.stage(chunk);
    }

    /// `chunk`'s copy to host memory ended at `now`: the pieces that waited for it go
    /// (stamped as sent now).
    pub fn staged(&mut self, now: u64, chunk: ChunkId) {
        self.staging.staged(now, chunk, &mut self.sends);
    }

    /// The next collective that completed on this rank, with what it received (for
    /// [`crate::Engine::handle_collective_done`]).
    #[inline]
    pub fn poll_done(&mut self) -> Option<(u64, Vec<Contribution>)> {
        self.done.pop_front()
    }

    /// The first malformed join or piece, if any; once set, every call does nothing.
    #[inline]
    pub fn error(&self) -> Option<&CollectiveError> {
        self.error.as_ref()
    }

    /// True when nothing is open, waiting early, to send or to report.
    pub fn is_idle(&self) -> bool {
        self.open.is_empty()
            && self.early.is_empty()
            && self.sends.is_empty()
            && self.done.is_empty()
            && self.staging.is_idle()
    }

    /// Collectives open on this rank: which, at which step, waiting for whom, and
    /// pieces that came before their join; empty when idle. One line.
    ///
    /// ```
    /// use dagwire_runtime::collective::{CollectiveJoin, CollectiveKind};
    /// use dagwire_runtime::collectives::{Collectives, Segmenting};
    /// use dagwire_runtime::Rank;
    /// let mut c = Collectives::new(Rank(0), 5, Segmenting::Whole);
    /// assert_eq!(c.summary(), "");
    /// c.join(0, CollectiveJoin { id: 3, kind: CollectiveKind::Fence, sends: vec![] });
    /// assert_eq!(c.summary(), "collectives open: 3 fence (dissemination) at round 1 of 3, waiting for r4");
    /// ```
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = self
            .open
            .iter()
            .map(|(id, o)| {
                let (name, state) = (o.algorithm.name(), o.algorithm.waiting(self.rank, self.ranks));
                format!("{id} {name} {state}")
            })
            .collect();
        parts.extend(self.early.iter().map(|(id, inbox)| {
            let pieces = inbox.keys();
            let from: Vec<String> = pieces.iter().take(4).map(|(step, src)| format!("{src}@{step}")).collect();
            format!("{id} not joined yet, {} pieces in (from {})", pieces.len(), from.join(" "))
        }));
        parts.extend(self.staging.summary());
        if parts.is_empty() { String::new() } else { format!("collectives open: {}", parts.join("; ")) }
    }

    fn fail(&mut self, id: u64, reason: String) {
        self.error.get_or_insert(CollectiveError { rank: self.rank, id, reason });
    }

    /// Moves open collective `id` as far as its pieces allow; reports it once done.
    /// (It stays in place in `open` meanwhile: moving it in and out per piece costs.)
    fn advance(&mut self, now: u64, id: u64) {
        let open = self.open.get_mut(&id).expect("advancing an open collective");
        let mut out = Out { id, me: self.rank, p: self.ranks, now, sends: &mut self.sends };
        let moved = open.algorithm.advance(&mut out, &mut open.inbox);
        self.settle(id, moved);
    }

    /// Acts on how far open collective `id` got: an error, still open, or done.
    fn settle(&mut self, id: u64, moved: Result<Option<Vec<Contribution>>, String>) {
        match moved {
            Err(reason) => self.fail(id, reason),
            Ok(None) => {}
            Ok(Some(received)) => {
                let open = self.open.remove(&id).expect("present");
                if open.inbox.is_empty() {
                    self.done.push_back((id, received));
                } else {
                    let left: Vec<String> =
                        open.inbox.keys().iter().map(|(step, src)| format!("{src}@{step}")).collect();
                    self.fail(id, format!("completed with pieces it never used: {}", left.join(" ")));
                }
            }
        }
    }
}

/// What an algorithm may do while it advances: send pieces of collective `id` from
/// `me`, of `p` ranks, at `now`.
pub(crate) struct Out<'a> {
    id: u64,
    pub(crate) me: Rank,
    pub(crate) p: usize,
    pub(crate) now: u64,
    sends: &'a mut VecDeque<Piece>,
}

impl Out<'_> {
    /// Sends step `step` to `dst`, charging `bytes`.
    pub(crate) fn send(&mut self, dst: Rank, step: u32, bytes: u64, body: Body) {
        let (id, src, sent_ns) = (self.id, self.me, self.now);
        self.sends.push_back(Piece { id, src, dst, sent_ns, step, bytes, body });
    }

    /// Sends step `step` to `dst`, charging what `body` weighs ([`body_bytes`]).
    pub(crate) fn send_body(&mut self, dst: Rank, step: u32, body: Body) {
        let bytes = body_bytes(&body);
        self.send(dst, step, bytes, body);
    }

    /// This rank's index.
    pub(crate) fn r(&self) -> usize {
        self.me.index()
    }
}

/// A piece that reached this rank, and when.
#[derive(Debug)]
pub(crate) struct Arrived {
    pub(crate) piece: Piece,
    pub(crate) at: u64,
}

impl Arrived {
    fn key(&self) -> (u32, Rank) {
        (self.piece.step, self.piece.src)
    }
}

/// Pieces of one collective that arrived and were not used yet, by (step, sender).
/// Most pieces are taken soon after they arrive, so a few wait in a short list searched
/// in order (allocated once per collective) and only a backlog goes to a hash map.
#[derive(Debug, Default)]
pub(crate) struct Inbox {
    few: Vec<Arrived>,
    more: FxHashMap<(u32, Rank), Arrived>,
}

/// Pieces an [`Inbox`] keeps in its short list before it uses its map.
const FEW: usize = 8;

impl Inbox {
    fn put(&mut self, piece: Piece, at: u64) -> Result<(), String> {
        let key = (piece.step, piece.src);
        if self.few.iter().any(|a| a.key() == key) || (!self.more.is_empty() && self.more.contains_key(&key)) {
            return Err(format!("step {} from {} arrived twice", piece.step, piece.src));
        }
        let arrived = Arrived { piece, at };
        if self.few.len() < FEW {
            self.few.push(arrived);
        } else {
            self.more.insert(key, arrived);
        }
        Ok(())
    }

    /// Step `step` from `src`, if it arrived.
    pub(crate) fn take(&mut self, src: Rank, step: u32) -> Option<Arrived> {
        if let Some(i) = self.few.iter().position(|a| a.key() == (step, src)) {
            return Some(self.few.swap_remove(i));
        }
        if self.more.is_empty() { None } else { self.more.remove(&(step, src)) }
    }

    /// Every piece that arrived, by (step, sender), leaving the inbox empty (and its
    /// short list's allocation in place).
    pub(crate) fn drain(&mut self) -> std::vec::Drain<'_, Arrived> {
        self.few.extend(self.more.drain().map(|(_, a)| a));
        self.few.sort_unstable_by_key(Arrived::key);
        self.few.drain(..)
    }

    fn is_empty(&self) -> bool {
        self.few.is_empty() && self.more.is_empty()
    }

    /// The (step, sender) of every piece waiting, in order.
    fn keys(&self) -> Vec<(u32, Rank)> {
        let mut keys: Vec<(u32, Rank)> = self.more.keys().copied().chain(self.few.iter().map(Arrived::key)).collect();
        keys.sort_unstable();
        keys
    }
}

/// The error for a piece whose body is not what its step carries.
pub(crate) fn unexpected(piece: &Piece, want: &str) -> String {
    let got = match &piece.body {
        Body::Header => "a header",
        Body::Messages(_) => "messages",
        Body::Segment { .. } => "a broadcast segment",
        Body::Blocks(_) => "blocks",
        Body::Values(_) => "a vector block",
    };
    format!("step {} from {} carried {got}, expected {want}", piece.step, piece.src)
}

/// One rank's part in one collective.
#[derive(Debug)]
enum Algorithm {
    Pairwise(alltoall::Pairwise),
    Bruck(alltoall::Bruck),
    Neighbor(neighbor::Neighbor),
    Broadcast(broadcast::Broadcast),
    Barrier(barrier::Dissemination),
    RingReduce(ring::RingReduce),
    RingGather(ring::RingGather),
    Doubling(doubling::Doubling),
    Tree(tree::TreeReduce),
}

impl Algorithm {
    fn new(me: Rank, p: usize, now: u64, join: CollectiveJoin, segmenting: Segmenting) -> Result<Self, String> {
        let CollectiveJoin { kind, sends, .. } = join;
        Ok(match kind {
            CollectiveKind::AllToAllV { algorithm: AllToAllAlgorithm::Pairwise } => {
                Algorithm::Pairwise(alltoall::Pairwise::new(p, sends))
            }
            CollectiveKind::AllToAllV { algorithm: AllToAllAlgorithm::Bruck } => {
                Algorithm::Bruck(alltoall::Bruck::new(me, p, now, sends))
            }
            CollectiveKind::NeighborAllToAllV { sources, .. } => {
                if let Some(r) =
                    sources.iter().chain(sends.iter().map(|(r, _)| r)).find(|r| r.index() >= p || **r == me)
                {
                    return Err(format!("a neighbour all-to-all-v with {r} as a neighbour, in a run of {p} ranks"));
                }
                Algorithm::Neighbor(neighbor::Neighbor::new(p, &sources, sends))
            }
            CollectiveKind::Broadcast { members, tree } => {
                let Some(v) = members.iter().position(|&m| m == me) else {
                    return Err(format!("joined a broadcast over {members:?}, which it is no member of"));
                };
                Algorithm::Broadcast(broadcast::Broadcast::new(v, &members, tree, sends, segmenting))
            }
            CollectiveKind::Fence => Algorithm::Barrier(barrier::Dissemination::new(p)),
            CollectiveKind::AllReduce { op, dtype, algorithm } => {
                let (template, data) = vector_of(sends, dtype)?;
                let vector = Vector { dtype, data };
                match algorithm {
                    AllReduceAlgorithm::Ring => {
                        Algorithm::RingReduce(ring::RingReduce::new(p, now, op, vector, template, false))
                    }
                    AllReduceAlgorithm::RecursiveDoubling => {
                        Algorithm::Doubling(doubling::Doubling::new(me, p, now, op, vector, template))
                    }
                    AllReduceAlgorithm::BinomialTree => {
                        Algorithm::Tree(tree::TreeReduce::new(me, p, now, op, vector, template))
                    }
                }
            }
            CollectiveKind::ReduceScatter { op, dtype } => {
                let (template, data) = vector_of(sends, dtype)?;
                Algorithm::RingReduce(ring::RingReduce::new(p, now, op, Vector { dtype, data }, template, true))
            }
            CollectiveKind::AllGather => {
                let messages = sends.into_iter().flat_map(|(_, m)| m).collect();
                Algorithm::RingGather(ring::RingGather::new(me, p, now, messages))
            }
        })
    }

    fn advance(&mut self, out: &mut Out<'_>, inbox: &mut Inbox) -> Result<Option<Vec<Contribution>>, String> {
        match self {
            Algorithm::Pairwise(a) => a.advance(out, inbox),
            Algorithm::Bruck(a) => a.advance(out, inbox),
            Algorithm::Neighbor(a) => a.advance(out, inbox),
            Algorithm::Broadcast(a) => a.advance(out, inbox),
            Algorithm::Barrier(a) => a.advance(out, inbox),
            Algorithm::RingReduce(a) => a.advance(out, inbox),
            Algorithm::RingGather(a) => a.advance(out, inbox),
            Algorithm::Doubling(a) => a.advance(out, inbox),
            Algorithm::Tree(a) => a.advance(out, inbox),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Algorithm::Pairwise(_) => "all-to-all-v (pairwise)",
            Algorithm::Bruck(_) => "all-to-all-v (bruck)",
            Algorithm::Neighbor(_) => "neighbor all-to-all-v",
            Algorithm::Broadcast(_) => "broadcast",
            Algorithm::Barrier(_) => "fence (dissemination)",
            Algorithm::RingReduce(a) if a.scatter() => "reduce-scatter (ring)",
            Algorithm::RingReduce(_) => "all-reduce (ring)",
            Algorithm::RingGather(_) => "all-gather (ring)",
            Algorithm::Doubling(_) => "all-reduce (recursive doubling)",
            Algorithm::Tree(_) => "all-reduce (binomial tree)",
        }
    }

    /// Where it stands: its step and whom it waits for.
    fn waiting(&self, me: Rank, p: usize) -> String {
        let me = me.index();
        match self {
            Algorithm::Pairwise(a) => a.waiting(me, p),
            Algorithm::Bruck(a) => a.waiting(me, p),
            Algorithm::Neighbor(a) => a.waiting(),
            Algorithm::Broadcast(a) => a.waiting(),
            Algorithm::Barrier(a) => a.waiting(me, p),
            Algorithm::RingReduce(a) => a.waiting(me, p),
            Algorithm::RingGather(a) => a.waiting(me, p),
            Algorithm::Doubling(a) => a.waiting(),
            Algorithm::Tree(a) => a.waiting(),
        }
    }
}

/// A reduction's one data message: its header (to hand back with the result) and its
/// vector of whole `dtype` elements.
fn vector_of(sends: Vec<(Rank, Vec<Message>)>, dtype: DType) -> Result<(Message, crate::Payload), String> {
    let mut messages = sends.into_iter().flat_map(|(_, m)| m);
    match (messages.next(), messages.next()) {
        (Some(mut m), None) if m.payload.as_ref().is_some_and(|p| p.len().is_multiple_of(dtype.size())) => {
            let data = m.payload.take().expect("checked");
            Ok((m, data))
        }
        _ => Err(format!(
            "joined a reduction without exactly one data message of whole {} elements (its vector)",
            dtype.name()
        )),
    }
}

/// `(r + k) mod p` as a rank.
pub(crate) fn plus(r: usize, k: usize, p: usize) -> Rank {
    Rank(((r + k) % p) as u32)
}

/// `(r - k) mod p` as a rank, for `k <= p`.
pub(crate) fn minus(r: usize, k: usize, p: usize) -> Rank {
    Rank(((r + p - k % p) % p) as u32)
}
