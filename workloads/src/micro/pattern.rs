//! Who sends what to whom: the five communication patterns, the identity of every
//! message ([`MsgKey`]) and the per-iteration task layout ([`Layout`]).
//!
//! The DAG builder ([`super::plan`]) and the kernels ([`super::kernels`]) both ask
//! the same [`Layout`] which messages a task writes or reads, so they agree by
//! construction: a kernel knows its messages from its task's owner and iteration alone.

use dagwire_runtime::BlockCyclic2D;

/// The communication pattern of a run (the `pattern` parameter).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pattern {
    /// Rank 0 and rank 1 bounce one message back and forth (osu_latency).
    PingPong,
    /// Rank 0 streams `window` messages to rank 1, which acknowledges (osu_bw).
    Bandwidth,
    /// Every rank sends one message to every other rank (osu_alltoall).
    AllToAll,
    /// Rank 0's message is read by every other rank (osu_bcast).
    Broadcast,
    /// Every rank exchanges with its four neighbours on a periodic 2D grid.
    Halo,
}

impl Pattern {
    /// Names accepted by the `pattern` parameter, in [`Pattern::ALL`] order.
    pub const NAMES: &'static [&'static str] = &["pingpong", "bandwidth", "alltoall", "broadcast", "halo"];

    /// Every pattern.
    pub const ALL: [Pattern; 5] =
        [Pattern::PingPong, Pattern::Bandwidth, Pattern::AllToAll, Pattern::Broadcast, Pattern::Halo];

    /// Parses a name from [`Pattern::NAMES`].
    ///
    /// ```
    /// use dagwire_workloads::micro::Pattern;
    /// assert_eq!(Pattern::from_name("halo"), Some(Pattern::Halo));
    /// assert_eq!(Pattern::from_name("ring"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Pattern> {
        Pattern::NAMES.iter().position(|&n| n == name).map(|i| Pattern::ALL[i])
    }

    /// The pattern's name in sweep files.
    pub fn name(self) -> &'static str {
        Pattern::NAMES[Pattern::ALL.iter().position(|&p| p == self).expect("listed")]
    }
}

/// Where a halo message goes, relative to its sender on the process grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// One grid row up (periodic).
    North = 0,
    /// One grid row down (periodic).
    South = 1,
    /// One grid column left (periodic).
    West = 2,
    /// One grid column right (periodic).
    East = 3,
}

impl Direction {
    /// The four directions, in slot order.
    pub const ALL: [Direction; 4] = [Direction::North, Direction::South, Direction::West, Direction::East];

    /// The direction pointing back.
    pub fn opposite(self) -> Direction {
        match self {
            Direction::North => Direction::South,
            Direction::South => Direction::North,
            Direction::West => Direction::East,
            Direction::East => Direction::West,
        }
    }
}

/// `dst` of a message that every other rank reads (a broadcast).
pub const EVERYONE: u32 = u32::MAX;

/// `slot` of bandwidth's acknowledgement message.
pub const ACK_SLOT: u32 = u32::MAX;

/// Bytes of bandwidth's acknowledgement, as the 4-byte reply of osu_bw.
pub const ACK_BYTES: u64 = 4;

/// The identity of one message: its iteration, sender, receiver ([`EVERYONE`] for a
/// broadcast) and slot (window position, halo [`Direction`], or [`ACK_SLOT`]). The
/// byte pattern of its chunk is derived from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MsgKey {
    /// Iteration, warm-up included (0-based).
    pub iteration: u32,
    /// Sending rank.
    pub src: u32,
    /// Receiving rank, or [`EVERYONE`].
    pub dst: u32,
    /// Which message of this sender, receiver and iteration.
    pub slot: u32,
}

/// The shape of one run: enough to say which messages any task writes or reads.
///
/// ```
/// use dagwire_workloads::micro::{Layout, MsgKey, Pattern};
/// let l = Layout::new(Pattern::AllToAll, 3, 16, 1);
/// let out: Vec<u32> = l.sends(5, 1).iter().map(|k| k.dst).collect();
/// assert_eq!(out, [0, 2]);
/// assert_eq!(l.receives(5, 1)[0], MsgKey { iteration: 5, src: 0, dst: 1, slot: 0 });
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The pattern.
    pub pattern: Pattern,
    /// Ranks of the run.
    pub ranks: u32,
    /// Bytes per message (acknowledgements excepted).
    pub size: u64,
    /// Bandwidth's messages per iteration (1 for the other patterns).
    pub window: u32,
    /// The halo's process grid (`BlockCyclic2D::for_ranks(ranks)`).
    pub grid: BlockCyclic2D,
}

impl Layout {
    /// The layout of `pattern` on `ranks` ranks (at least 1).
    pub fn new(pattern: Pattern, ranks: usize, size: u64, window: u32) -> Self {
        let window = if pattern == Pattern::Bandwidth { window } else { 1 };
        Layout { pattern, ranks: ranks as u32, size, window, grid: BlockCyclic2D::for_ranks(ranks.max(1)) }
    }

    /// True if `rank` runs a send task in every iteration.
    pub fn has_send(&self, rank: u32) -> bool {
        match self.pattern {
            Pattern::PingPong | Pattern::Bandwidth => rank < 2,
            Pattern::Broadcast => rank == 0,
            Pattern::AllToAll | Pattern::Halo => rank < self.ranks,
        }
    }

    /// True if `rank` runs a receive task in every iteration.
    pub fn has_recv(&self, rank: u32) -> bool {
        match self.pattern {
            Pattern::PingPong | Pattern::Bandwidth => rank < 2,
            Pattern::Broadcast => rank != 0 && rank < self.ranks,
            Pattern::AllToAll | Pattern::Halo => rank < self.ranks,
        }
    }

    /// Ranks that run a receive task, in order.
    pub fn receivers(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.ranks).filter(|&r| self.has_recv(r))
    }

    /// Bytes of a message.
    pub fn bytes_of(&self, key: MsgKey) -> u64 {
        if key.slot == ACK_SLOT { ACK_BYTES } else { self.size }
    }

    /// The messages the send task of `owner` writes in `iteration`, one output chunk
    /// each, in output order (empty if it has no send task).
    pub fn sends(&self, iteration: u32, owner: u32) -> Vec<MsgKey> {
        let key = |dst, slot| MsgKey { iteration, src: owner, dst, slot };
        if !self.has_send(owner) {
            return Vec::new();
        }
        match self.pattern {
            Pattern::PingPong => vec![key(1 - owner, 0)],
            Pattern::Bandwidth if owner == 0 => (0..self.window).map(|s| key(1, s)).collect(),
            Pattern::Bandwidth => vec![key(0, ACK_SLOT)],
            Pattern::AllToAll => (0..self.ranks).filter(|&d| d != owner).map(|d| key(d, 0)).collect(),
            Pattern::Broadcast => vec![key(EVERYONE, 0)],
            Pattern::Halo => Direction::ALL
                .iter()
                .filter_map(|&d| {
                    let to = self.neighbour(owner, d);
                    (to != owner).then(|| key(to, d as u32))
                })
                .collect(),
        }
    }

    /// The messages the receive task of `owner` reads in `iteration`, in input order
    /// (empty if it has no receive task).
    pub fn receives(&self, iteration: u32, owner: u32) -> Vec<MsgKey> {
        if !self.has_recv(owner) {
            return Vec::new();
        }
        let key = |src, dst, slot| MsgKey { iteration, src, dst, slot };
        match self.pattern {
            Pattern::PingPong => vec![key(1 - owner, owner, 0)],
            Pattern::Bandwidth if owner == 1 => (0..self.window).map(|s| key(0, 1, s)).collect(),
            Pattern::Bandwidth => vec![key(1, 0, ACK_SLOT)],
            Pattern::AllToAll => (0..self.ranks).filter(|&s| s != owner).map(|s| key(s, owner, 0)).collect(),
            Pattern::Broadcast => vec![key(0, EVERYONE, 0)],
            Pattern::Halo => Direction::ALL
                .iter()
                .filter_map(|&d| {
                    // The neighbour in direction `d` sent this towards us, i.e. in the opposite direction.
                    let from = self.neighbour(owner, d);
                    (from != owner).then(|| key(from, owner, d.opposite() as u32))
                })
                .collect(),
        }
    }

    /// Where message `key` (one of this layout's) is among the outputs of its sender's
    /// send task: its position in [`Layout::sends`]`(key.iteration, key.src)`, computed
    /// without listing them, so the DAG builder finds a message's chunk in constant time.
    ///
    /// ```
    /// use dagwire_workloads::micro::{Layout, Pattern};
    /// let l = Layout::new(Pattern::AllToAll, 4, 16, 1);
    /// for (i, k) in l.sends(0, 2).into_iter().enumerate() {
    ///     assert_eq!(l.send_index(k), i);
    /// }
    /// ```
    pub fn send_index(&self, key: MsgKey) -> usize {
        match self.pattern {
            Pattern::PingPong | Pattern::Broadcast => 0,
            Pattern::Bandwidth if key.slot == ACK_SLOT => 0,
            Pattern::Bandwidth => key.slot as usize,
            // Every other rank in order: receivers above the sender move down one.
            Pattern::AllToAll => (key.dst - (key.dst > key.src) as u32) as usize,
            // Directions in slot order, those whose neighbour is the sender itself left out.
            Pattern::Halo => {
                Direction::ALL[..key.slot as usize].iter().filter(|&&d| self.neighbour(key.src, d) != key.src).count()
            }
        }
    }

    /// The halo neighbour of `rank` in direction `d` (periodic; may be `rank` itself
    /// on a grid one row high, in which case no message is sent).
    pub fn neighbour(&self, rank: u32, d: Direction) -> u32 {
        let (rows, cols) = (self.grid.rows, self.grid.cols);
        let (r, c) = (rank / cols, rank % cols);
        let (r, c) = match d {
            Direction::North => ((r + rows - 1) % rows, c),
            Direction::South => ((r + 1) % rows, c),
            Direction::West => (r, (c + cols - 1) % cols),
            Direction::East => (r, (c + 1) % cols),
        };
        r * cols + c
    }

    /// Bytes that one rank has in flight at most per iteration (what it sends).
    pub fn bytes_sent_per_rank(&self) -> u64 {
        (0..self.ranks).map(|r| self.sends(0, r).iter().map(|&k| self.bytes_of(k)).sum()).max().unwrap_or(0)
    }

    /// Tasks per iteration.
    pub fn tasks_per_iteration(&self) -> usize {
        (0..self.ranks).map(|r| self.has_send(r) as usize + self.has_recv(r) as usize).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Every message sent in an iteration is read by exactly the ranks the pattern says,
    /// and every message read was sent.
    #[test]
    fn sends_and_receives_match() {
        for pattern in Pattern::ALL {
            for ranks in 2..=9 {
                let l = Layout::new(pattern, ranks, 8, 3);
                let sent: BTreeSet<MsgKey> = (0..l.ranks).flat_map(|r| l.sends(4, r)).collect();
                let mut read = BTreeSet::new();
                for r in 0..l.ranks {
                    for k in l.receives(4, r) {
                        assert!(sent.contains(&k), "{pattern:?} ranks={ranks}: rank {r} reads unsent {k:?}");
                        assert!(k.dst == r || k.dst == EVERYONE, "{k:?} read by {r}");
                        assert_ne!(k.src, r, "{pattern:?}: rank {r} reads its own message");
                        read.insert(k);
                    }
                }
                assert_eq!(sent, read, "{pattern:?} ranks={ranks}: a message nobody reads");
            }
        }
    }

    /// `send_index` is each sent message's position among its send task's outputs.
    #[test]
    fn send_index_is_the_output_position() {
        for pattern in Pattern::ALL {
            for ranks in 2..=17 {
                let l = Layout::new(pattern, ranks, 8, 3);
                for r in 0..l.ranks {
                    for (i, k) in l.sends(2, r).into_iter().enumerate() {
                        assert_eq!(l.send_index(k), i, "{pattern:?} ranks={ranks}: {k:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn halo_neighbours_on_grids() {
        // 2 x 3 grid: rank 4 is row 1, column 1.
        let l = Layout::new(Pattern::Halo, 6, 8, 1);
        let n: Vec<u32> = Direction::ALL.iter().map(|&d| l.neighbour(4, d)).collect();
        assert_eq!(n, [1, 1, 3, 5]);
        assert_eq!(l.sends(0, 4).len(), 4); // north and south are the same rank, two messages
        // 1 x 3 grid: no vertical neighbours.
        let l = Layout::new(Pattern::Halo, 3, 8, 1);
        assert_eq!(l.sends(0, 0).iter().map(|k| k.dst).collect::<Vec<_>>(), [2, 1]);
        // 3 x 3: all four distinct.
        let l = Layout::new(Pattern::Halo, 9, 8, 1);
        let dsts: BTreeSet<u32> = l.sends(0, 4).iter().map(|k| k.dst).collect();
        assert_eq!(dsts, [1, 3, 5, 7].into());
    }

    #[test]
    fn names_round_trip() {
        for p in Pattern::ALL {
            assert_eq!(Pattern::from_name(p.name()), Some(p));
        }
    }

    #[test]
    fn per_rank_bytes_and_task_counts() {
        assert_eq!(Layout::new(Pattern::Bandwidth, 4, 100, 8).bytes_sent_per_rank(), 800);
        assert_eq!(Layout::new(Pattern::AllToAll, 4, 100, 8).bytes_sent_per_rank(), 300);
        assert_eq!(Layout::new(Pattern::PingPong, 4, 100, 8).tasks_per_iteration(), 4);
        assert_eq!(Layout::new(Pattern::Broadcast, 4, 100, 8).tasks_per_iteration(), 4);
        assert_eq!(Layout::new(Pattern::Halo, 4, 100, 8).tasks_per_iteration(), 8);
    }
}
