//! All-reduce by recursive doubling.

use super::values::Vector;
use super::{Body, Inbox, Out, unexpected};
use crate::collective::{Contribution, ReduceOp};
use crate::ids::Rank;
use crate::message::Message;

/// Recursive doubling over `p` ranks. With `p2` the largest power of two `<= p` and
/// `extra = p - p2`:
/// - step 0, only when `extra > 0` (the fold): each even rank `r < 2 extra` sends its
///   vector to `r + 1`, which adds it (the lower rank's first) and stands for both;
/// - the doubling, `log2 p2` steps: the `p2` remaining ranks, renumbered `v` in rank
///   order, exchange whole vectors with `v xor 2^k` in step `k` and both compute
///   `lower + higher`, so both hold the same bytes;
/// - the last step, only when `extra > 0`: each odd rank `r < 2 extra` sends the result
///   back to `r - 1`.
///
/// A rank's part is a short list of exchanges, worked through in order.
#[derive(Debug)]
pub(crate) struct Doubling {
    op: ReduceOp,
    vector: Vector,
    template: Message,
    joined_ns: u64,
    plan: Vec<Exchange>,
    next: usize,
    sent: bool,
}

/// One step of a rank's part: send its vector to `peer` (or not), then take what
/// `peer` sends in the same step (or not).
#[derive(Debug)]
struct Exchange {
    step: u32,
    peer: Rank,
    send: bool,
    take: Take,
}

#[derive(Debug, PartialEq)]
enum Take {
    Nothing,
    /// Add the peer's vector to this rank's, the lower rank's first.
    Combine,
    /// The peer's vector is the result.
    Result,
}

impl Doubling {
    pub(crate) fn new(me: Rank, p: usize, now: u64, op: ReduceOp, vector: Vector, template: Message) -> Self {
        let r = me.index();
        let p2 = if p.is_power_of_two() { p } else { p.next_power_of_two() / 2 };
        let extra = p - p2;
        let fold = u32::from(extra > 0);
        let rounds = p2.trailing_zeros();
        let last = fold + rounds;
        // Ranks that stay in the doubling, renumbered: odd ranks below 2 extra, then the rest.
        let real = |v: usize| Rank(if v < extra { 2 * v + 1 } else { v + extra } as u32);
        let mut plan = Vec::new();
        if r < 2 * extra && r.is_multiple_of(2) {
            let partner = Rank(r as u32 + 1);
            plan.push(Exchange { step: 0, peer: partner, send: true, take: Take::Nothing });
            plan.push(Exchange { step: last, peer: partner, send: false, take: Take::Result });
        } else {
            let v = if r < 2 * extra { r / 2 } else { r - extra };
            if r < 2 * extra {
                plan.push(Exchange { step: 0, peer: Rank(r as u32 - 1), send: false, take: Take::Combine });
            }
            for k in 0..rounds {
                let peer = real(v ^ (1 << k));
                plan.push(Exchange { step: fold + k, peer, send: true, take: Take::Combine });
            }
            if r < 2 * extra {
                plan.push(Exchange { step: last, peer: Rank(r as u32 - 1), send: true, take: Take::Nothing });
            }
        }
        Doubling { op, vector, template, joined_ns: now, plan, next: 0, sent: false }
    }

    pub(crate) fn advance(
        &mut self,
        out: &mut Out<'_>,
        inbox: &mut Inbox,
    ) -> Result<Option<Vec<Contribution>>, String> {
        while let Some(x) = self.plan.get(self.next) {
            if x.send && !self.sent {
                out.send_body(x.peer, x.step, Body::Values(self.vector.data.clone()));
                self.sent = true;
            }
            if x.take != Take::Nothing {
                let Some(a) = inbox.take(x.peer, x.step) else { return Ok(None) };
                let Body::Values(incoming) = a.piece.body else { return Err(unexpected(&a.piece, "a vector")) };
                let range = 0..self.vector.data.len();
                self.vector.check(&range, &incoming).map_err(|e| format!("step {} from {}: {e}", x.step, x.peer))?;
                match x.take {
                    Take::Combine => self.vector.combine(self.op, range, &incoming, x.peer < out.me),
                    _ => self.vector.data = incoming,
                }
            }
            (self.next, self.sent) = (self.next + 1, false);
        }
        let mut msg = self.template.clone();
        msg.payload = Some(std::mem::take(&mut self.vector.data));
        Ok(Some(vec![Contribution { from: out.me, sent_ns: self.joined_ns, recv_ns: out.now, messages: vec![msg] }]))
    }

    pub(crate) fn waiting(&self) -> String {
        let x = &self.plan[self.next];
        format!("at exchange {} of {} (step {}), waiting for {}", self.next + 1, self.plan.len(), x.step, x.peer)
    }
}
