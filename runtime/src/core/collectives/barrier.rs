//! The dissemination barrier (a fence).

use super::{Body, Inbox, Out, minus, plus, unexpected};
use crate::collective::Contribution;

/// `ceil(log2 p)` rounds: in round `k` rank `r` sends a header to `r + 2^k` and waits
/// for the one from `r - 2^k` (mod `p`). After the last round every rank has heard,
/// directly or not, from every other, so none completes before all have joined.
#[derive(Debug)]
pub(crate) struct Dissemination {
    round: u32,
    rounds: u32,
    sent: bool,
}

impl Dissemination {
    pub(crate) fn new(p: usize) -> Self {
        Dissemination { round: 0, rounds: p.next_power_of_two().trailing_zeros(), sent: false }
    }

    pub(crate) fn advance(
        &mut self,
        out: &mut Out<'_>,
        inbox: &mut Inbox,
    ) -> Result<Option<Vec<Contribution>>, String> {
        let (r, p) = (out.r(), out.p);
        while self.round < self.rounds {
            let distance = 1usize << self.round;
            if !self.sent {
                out.send_body(plus(r, distance, p), self.round, Body::Header);
                self.sent = true;
            }
            let Some(a) = inbox.take(minus(r, distance, p), self.round) else { return Ok(None) };
            if a.piece.body != Body::Header {
                return Err(unexpected(&a.piece, "a header"));
            }
            (self.round, self.sent) = (self.round + 1, false);
        }
        Ok(Some(Vec::new()))
    }

    pub(crate) fn waiting(&self, r: usize, p: usize) -> String {
        let from = minus(r, 1 << self.round, p);
        format!("at round {} of {}, waiting for {from}", self.round + 1, self.rounds)
    }
}
