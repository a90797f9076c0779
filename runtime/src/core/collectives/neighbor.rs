//! Neighbour all-to-all-v: one step over a communication graph.

use super::{Body, Inbox, Out, unexpected};
use crate::collective::{Contribution, wire_bytes};
use crate::ids::Rank;
use crate::message::Message;

/// Sends one piece to each destination when it joins (an empty contribution still
/// sends a header, so its receiver knows) and completes once one piece from each
/// source has arrived; with no sources it completes at once.
#[derive(Debug)]
pub(crate) struct Neighbor {
    /// Contributions to send, in destination order, until the join's first advance.
    sends: Vec<(Rank, Vec<Message>)>,
    /// Per rank of the run: a source whose piece has not arrived yet.
    awaited: Vec<bool>,
    left: usize,
    received: Vec<Contribution>,
}

impl Neighbor {
    pub(crate) fn new(p: usize, sources: &[Rank], sends: Vec<(Rank, Vec<Message>)>) -> Self {
        let mut awaited = vec![false; p];
        sources.iter().for_each(|s| awaited[s.index()] = true);
        Neighbor { sends, awaited, left: sources.len(), received: Vec::with_capacity(sources.len()) }
    }

    pub(crate) fn advance(
        &mut self,
        out: &mut Out<'_>,
        inbox: &mut Inbox,
    ) -> Result<Option<Vec<Contribution>>, String> {
        for (to, messages) in self.sends.drain(..) {
            out.send(to, 0, wire_bytes(&messages), Body::Messages(messages));
        }
        for a in inbox.drain() {
            let from = a.piece.src;
            if a.piece.step != 0 || !std::mem::replace(&mut self.awaited[from.index()], false) {
                return Err(format!("step {} from {from}, which is not a source still awaited", a.piece.step));
            }
            let Body::Messages(messages) = a.piece.body else { return Err(unexpected(&a.piece, "messages")) };
            self.received.push(Contribution { from, sent_ns: a.piece.sent_ns, recv_ns: a.at, messages });
            self.left -= 1;
        }
        Ok((self.left == 0).then(|| std::mem::take(&mut self.received)))
    }

    pub(crate) fn waiting(&self) -> String {
        let missing: Vec<String> =
            (0..self.awaited.len()).filter(|&r| self.awaited[r]).take(8).map(|r| format!("r{r}")).collect();
        format!("waiting for {} sources ({}{})", self.left, missing.join(" "), if self.left > 8 { " ..." } else { "" })
    }
}
