//! Ring algorithms: reduce-scatter, all-gather, and all-reduce as the one then the other.

use super::values::Vector;
use super::{Block, Body, Inbox, Out, minus, plus, unexpected};
use crate::collective::{Contribution, ReduceOp, wire_bytes};
use crate::ids::Rank;
use crate::message::Message;

/// A ring reduction over `p` ranks of a vector cut into `p` blocks
/// ([`crate::collective::block_range`]); every step sends one block to `r + 1` and
/// receives one from `r - 1`.
///
/// - Reduce-scatter, steps `s = 0 .. p-1`: send block `r - s - 1`, receive block
///   `r - s - 2` and add it to this rank's (the arriving partial sum first). After
///   `p - 1` steps block `r` holds the whole sum, accumulated along the ring starting at
///   rank `r + 1`.
/// - All-gather (the all-reduce only), steps `p - 1 + t`, `t = 0 .. p-1`: send block
///   `r - t`, receive block `r - t - 1` and take it as it is. Every block of the
///   result was summed on one rank and copied, so every rank holds the same bytes.
#[derive(Debug)]
pub(crate) struct RingReduce {
    op: ReduceOp,
    vector: Vector,
    /// This rank's message, to hand back with the result.
    template: Message,
    joined_ns: u64,
    /// Only the reduce-scatter half, this rank's block as the result.
    scatter: bool,
    step: u32,
    steps: u32,
    sent: bool,
}

impl RingReduce {
    pub(crate) fn new(p: usize, now: u64, op: ReduceOp, vector: Vector, template: Message, scatter: bool) -> Self {
        let half = p as u32 - 1;
        let steps = if scatter { half } else { 2 * half };
        RingReduce { op, vector, template, joined_ns: now, scatter, step: 0, steps, sent: false }
    }

    pub(crate) fn scatter(&self) -> bool {
        self.scatter
    }

    pub(crate) fn advance(
        &mut self,
        out: &mut Out<'_>,
        inbox: &mut Inbox,
    ) -> Result<Option<Vec<Contribution>>, String> {
        let (r, p) = (out.r(), out.p);
        while self.step < self.steps {
            let s = self.step as usize;
            let reducing = s + 1 < p;
            let (send, recv) = if reducing {
                (minus(r, s + 1, p), minus(r, s + 2, p))
            } else {
                let t = s + 1 - p;
                (minus(r, t, p), minus(r, t + 1, p))
            };
            if !self.sent {
                let block = self.vector.slice(self.vector.block_bytes(p, send.index()));
                out.send_body(plus(r, 1, p), self.step, Body::Values(block));
                self.sent = true;
            }
            let Some(a) = inbox.take(minus(r, 1, p), self.step) else { return Ok(None) };
            let Body::Values(incoming) = &a.piece.body else { return Err(unexpected(&a.piece, "a vector block")) };
            let range = self.vector.block_bytes(p, recv.index());
            self.vector.check(&range, incoming).map_err(|e| format!("step {s} from {}: {e}", a.piece.src))?;
            if reducing {
                self.vector.combine(self.op, range, incoming, true);
            } else {
                self.vector.overwrite(range, incoming);
            }
            (self.step, self.sent) = (self.step + 1, false);
        }
        let result = if self.scatter {
            self.vector.slice(self.vector.block_bytes(p, r))
        } else {
            std::mem::take(&mut self.vector.data)
        };
        let mut msg = self.template.clone();
        msg.payload = Some(result);
        Ok(Some(vec![Contribution { from: out.me, sent_ns: self.joined_ns, recv_ns: out.now, messages: vec![msg] }]))
    }

    pub(crate) fn waiting(&self, r: usize, p: usize) -> String {
        format!("at step {} of {}, waiting for {}", self.step + 1, self.steps, minus(r, 1, p))
    }
}

/// A ring all-gather of message lists over `p` ranks: in step `s` (`p - 1` steps)
/// rank `r` sends the contribution of `r - s` to `r + 1` and receives the one of
/// `r - s - 1` from `r - 1`.
#[derive(Debug)]
pub(crate) struct RingGather {
    /// Per contributing rank, its block and when it reached this rank.
    have: Vec<Option<(Block, u64)>>,
    step: u32,
    sent: bool,
}

impl RingGather {
    pub(crate) fn new(me: Rank, p: usize, now: u64, messages: Vec<Message>) -> Self {
        let mut have: Vec<Option<(Block, u64)>> = (0..p).map(|_| None).collect();
        have[me.index()] = Some((Block { origin: me, sent_ns: now, messages }, now));
        RingGather { have, step: 0, sent: false }
    }

    pub(crate) fn advance(
        &mut self,
        out: &mut Out<'_>,
        inbox: &mut Inbox,
    ) -> Result<Option<Vec<Contribution>>, String> {
        let (r, p) = (out.r(), out.p);
        while (self.step as usize) + 1 < p {
            let s = self.step as usize;
            if !self.sent {
                let (block, _) = self.have[minus(r, s, p).index()].as_mut().expect("received in the step before");
                if s == 0 {
                    block.sent_ns = out.now;
                }
                let bytes = wire_bytes(&block.messages);
                out.send(plus(r, 1, p), self.step, bytes, Body::Blocks(vec![block.clone()]));
                self.sent = true;
            }
            let from = minus(r, 1, p);
            let Some(a) = inbox.take(from, self.step) else { return Ok(None) };
            let Body::Blocks(mut blocks) = a.piece.body else { return Err(unexpected(&a.piece, "blocks")) };
            let origin = minus(r, s + 1, p);
            match blocks.pop() {
                Some(b) if blocks.is_empty() && b.origin == origin => self.have[origin.index()] = Some((b, a.at)),
                b => {
                    return Err(format!(
                        "step {s} from {from} carried {:?}, expected one block from {origin}",
                        b.map(|b| b.origin)
                    ));
                }
            }
            (self.step, self.sent) = (self.step + 1, false);
        }
        let received = self
            .have
            .iter_mut()
            .map(|h| {
                let (b, at) = h.take().expect("every block arrived");
                Contribution { from: b.origin, sent_ns: b.sent_ns, recv_ns: at, messages: b.messages }
            })
            .collect();
        Ok(Some(received))
    }

    pub(crate) fn waiting(&self, r: usize, p: usize) -> String {
        format!("at step {} of {}, waiting for {}", self.step + 1, p - 1, minus(r, 1, p))
    }
}
