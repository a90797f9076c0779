//! All-to-all-v: pairwise exchange and Bruck's algorithm.

use super::{Block, Body, Inbox, Out, minus, plus, unexpected};
use crate::collective::{Contribution, wire_bytes};
use crate::ids::Rank;
use crate::message::Message;

/// Pairwise exchange over `p` ranks: in step `s` (from 0; `p - 1` steps) rank `r`
/// sends its contribution for `r + s + 1` and waits for the one from `r - s - 1` (mod
/// `p`) before it moves on, as `MPI_Sendrecv` in a loop does.
#[derive(Debug)]
pub(crate) struct Pairwise {
    /// This rank's contribution per peer, taken when its step is sent.
    sends: Vec<Vec<Message>>,
    step: u32,
    sent: bool,
    received: Vec<Contribution>,
}

impl Pairwise {
    pub(crate) fn new(p: usize, sends: Vec<(Rank, Vec<Message>)>) -> Self {
        let mut by_peer = vec![Vec::new(); p];
        for (to, messages) in sends {
            append(&mut by_peer[to.index()], messages);
        }
        Pairwise { sends: by_peer, step: 0, sent: false, received: Vec::with_capacity(p.saturating_sub(1)) }
    }

    pub(crate) fn advance(
        &mut self,
        out: &mut Out<'_>,
        inbox: &mut Inbox,
    ) -> Result<Option<Vec<Contribution>>, String> {
        let (r, p) = (out.r(), out.p);
        while (self.step as usize) + 1 < p {
            let distance = self.step as usize + 1;
            if !self.sent {
                let to = plus(r, distance, p);
                let messages = std::mem::take(&mut self.sends[to.index()]);
                out.send(to, self.step, wire_bytes(&messages), Body::Messages(messages));
                self.sent = true;
            }
            let from = minus(r, distance, p);
            let Some(a) = inbox.take(from, self.step) else { return Ok(None) };
            let Body::Messages(messages) = a.piece.body else { return Err(unexpected(&a.piece, "messages")) };
            self.received.push(Contribution { from, sent_ns: a.piece.sent_ns, recv_ns: a.at, messages });
            (self.step, self.sent) = (self.step + 1, false);
        }
        Ok(Some(std::mem::take(&mut self.received)))
    }

    pub(crate) fn waiting(&self, r: usize, p: usize) -> String {
        let from = minus(r, self.step as usize + 1, p);
        format!("at step {} of {}, waiting for {from}", self.step + 1, p - 1)
    }
}

/// Bruck's all-to-all-v over `p` ranks, `ceil(log2 p)` rounds. Rank `r` keeps its
/// blocks by distance `j` (block `j` is bound for `r + j`); in round `k` it sends every
/// block whose `j` has bit `k` set to `r + 2^k`, in increasing `j`, and puts the blocks
/// arriving from `r - 2^k` in their place. After the last round block `j` holds the
/// contribution of `r - j` to `r`. Blocks keep their sizes (the variable-size variant):
/// a round's piece weighs the sum of its blocks' [`wire_bytes`].
#[derive(Debug)]
pub(crate) struct Bruck {
    /// Block per distance `j` (index 0 unused); `None` while sent and not yet replaced.
    blocks: Vec<Option<Block>>,
    /// When each block reached this rank.
    arrived: Vec<u64>,
    round: u32,
    rounds: u32,
    sent: bool,
}

impl Bruck {
    pub(crate) fn new(me: Rank, p: usize, now: u64, sends: Vec<(Rank, Vec<Message>)>) -> Self {
        let mut blocks: Vec<Option<Block>> =
            (0..p).map(|j| (j > 0).then(|| Block { origin: me, sent_ns: now, messages: Vec::new() })).collect();
        for (to, messages) in sends {
            let j = (to.index() + p - me.index()) % p;
            if let Some(b) = blocks[j].as_mut() {
                append(&mut b.messages, messages);
            }
        }
        let rounds = p.next_power_of_two().trailing_zeros();
        Bruck { blocks, arrived: vec![now; p], round: 0, rounds, sent: false }
    }

    pub(crate) fn advance(
        &mut self,
        out: &mut Out<'_>,
        inbox: &mut Inbox,
    ) -> Result<Option<Vec<Contribution>>, String> {
        let (r, p) = (out.r(), out.p);
        while self.round < self.rounds {
            let bit = 1usize << self.round;
            if !self.sent {
                let mut moving = Vec::new();
                for j in (1..p).filter(|j| j & bit != 0) {
                    let mut b = self.blocks[j].take().expect("every block is back after each round");
                    if b.origin == out.me {
                        b.sent_ns = out.now;
                    }
                    moving.push(b);
                }
                out.send_body(plus(r, bit, p), self.round, Body::Blocks(moving));
                self.sent = true;
            }
            let from = minus(r, bit, p);
            let Some(a) = inbox.take(from, self.round) else { return Ok(None) };
            let Body::Blocks(incoming) = a.piece.body else { return Err(unexpected(&a.piece, "blocks")) };
            let slots: Vec<usize> = (1..p).filter(|j| j & bit != 0).collect();
            if incoming.len() != slots.len() {
                return Err(format!(
                    "round {} from {from} carried {} blocks, expected {}",
                    self.round,
                    incoming.len(),
                    slots.len()
                ));
            }
            let moved = (bit << 1) - 1;
            for (j, b) in slots.into_iter().zip(incoming) {
                let origin = minus(r, j & moved, p);
                if b.origin != origin {
                    return Err(format!(
                        "round {} from {from} put {}'s block where {origin}'s belongs",
                        self.round, b.origin
                    ));
                }
                self.blocks[j] = Some(b);
                self.arrived[j] = a.at;
            }
            (self.round, self.sent) = (self.round + 1, false);
        }
        let received = (1..p)
            .map(|j| {
                let b = self.blocks[j].take().expect("every block is back after the last round");
                Contribution { from: b.origin, sent_ns: b.sent_ns, recv_ns: self.arrived[j], messages: b.messages }
            })
            .collect();
        Ok(Some(received))
    }

    pub(crate) fn waiting(&self, r: usize, p: usize) -> String {
        let from = minus(r, 1 << self.round, p);
        format!("at round {} of {}, waiting for {from}", self.round + 1, self.rounds)
    }
}

/// Appends `more` to `list`, taking `more` whole when `list` is empty (the usual case:
/// one list per peer), so no contribution is copied.
fn append(list: &mut Vec<Message>, mut more: Vec<Message>) {
    if list.is_empty() {
        *list = more;
    } else {
        list.append(&mut more);
    }
}
