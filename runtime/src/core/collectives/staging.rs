//! Staging: a rank with a device whose NIC reads host memory sends a collective's
//! chunks only once they are in host memory. The engine asks for each chunk's copy to
//! host ([`crate::engine::DeviceCopy`]) and hands the join out at once; the pieces that
//! carry a chunk still being copied wait here, each until its own chunks are in host
//! memory, so the copies pipeline with the exchange (a piece's copy overlaps the
//! previous piece's time on the network) instead of the whole batch being copied first.
//!
//! The driver says when a chunk's copy to host starts ([`super::Collectives::stage`])
//! and ends ([`super::Collectives::staged`]). A piece to a rank of the same node goes by
//! a peer copy from device memory ([`Memory::path`]) and never waits. Without a device
//! nothing is ever staged and every piece goes as it is made.

use super::Piece;
use crate::ids::{ChunkId, Rank};
use crate::space::{Memory, Path};
use std::collections::VecDeque;

/// Chunks being copied to host memory and the pieces waiting for them.
#[derive(Debug, Default)]
pub(crate) struct Staging {
    memory: Memory,
    /// Chunks whose copy to host is under way (few at a time: a list).
    copying: Vec<ChunkId>,
    /// Pieces waiting for a chunk in `copying`, in the order they were made.
    waiting: VecDeque<Piece>,
}

impl Staging {
    pub(crate) fn set_memory(&mut self, memory: Memory) {
        self.memory = memory;
    }

    /// `chunk`'s copy to host memory has started.
    pub(crate) fn stage(&mut self, chunk: ChunkId) {
        if !self.copying.contains(&chunk) {
            self.copying.push(chunk);
        }
    }

    /// `chunk` is in host memory at `now`: moves the pieces that waited only for it (and
    /// for no other chunk still copying) to `sends`, in order, sent now.
    pub(crate) fn staged(&mut self, now: u64, chunk: ChunkId, sends: &mut VecDeque<Piece>) {
        let Some(i) = self.copying.iter().position(|&c| c == chunk) else { return };
        self.copying.swap_remove(i);
        let mut k = 0;
        while k < self.waiting.len() {
            if self.holds(&self.waiting[k]) {
                k += 1;
            } else {
                let mut piece = self.waiting.remove(k).expect("in range");
                piece.sent_ns = now;
                sends.push_back(piece);
            }
        }
    }

    /// `piece` if it may go to the transport now; else keeps it.
    pub(crate) fn admit(&mut self, piece: Piece) -> Option<Piece> {
        if self.copying.is_empty() || !self.holds(&piece) {
            return Some(piece);
        }
        self.waiting.push_back(piece);
        None
    }

    /// Whether `piece` goes to the network and carries a chunk still being copied.
    fn holds(&self, piece: &Piece) -> bool {
        self.memory.path(piece.dst) == Path::Network && piece.data().any(|(c, _)| self.copying.contains(&c))
    }

    pub(crate) fn is_idle(&self) -> bool {
        self.copying.is_empty() && self.waiting.is_empty()
    }

    /// The pieces waiting, for a stall's summary.
    pub(crate) fn summary(&self) -> Option<String> {
        let first = self.waiting.front()?;
        let to: Vec<Rank> = self.waiting.iter().take(4).map(|p| p.dst).collect();
        Some(format!(
            "{} pieces wait for copies to host memory (first of collective {}, to {to:?}; copying {:?})",
            self.waiting.len(),
            first.id,
            self.copying
        ))
    }
}
