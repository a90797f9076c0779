//! All-reduce over a binomial tree: reduce to rank 0, then broadcast.

use super::values::Vector;
use super::{Body, Inbox, Out, unexpected};
use crate::collective::{Contribution, ReduceOp, Tree};
use crate::ids::Rank;
use crate::message::Message;

/// The binomial tree of [`Tree::Binomial`] over ranks `0..p` (rank 0 the root). Step
/// 0 goes up: a rank adds its children's partial sums to its vector, nearest child
/// first, once all have arrived, and sends the sum to its parent. Step 1 goes down:
/// the root's sum, the result, is forwarded from parent to children (farthest subtree
/// first). The result is computed once, so every rank holds the same bytes.
#[derive(Debug)]
pub(crate) struct TreeReduce {
    op: ReduceOp,
    vector: Vector,
    template: Message,
    joined_ns: u64,
    parent: Option<Rank>,
    /// Farthest subtree first.
    children: Vec<Rank>,
    /// Children whose partial sums were added (nearest first).
    added: usize,
    /// Whether the sum went up (or, for the root, the result down).
    sent: bool,
}

impl TreeReduce {
    pub(crate) fn new(me: Rank, p: usize, now: u64, op: ReduceOp, vector: Vector, template: Message) -> Self {
        let v = me.index();
        let parent = Tree::Binomial.parent(v).map(|u| Rank(u as u32));
        let children = Tree::Binomial.children(v, p).into_iter().map(|c| Rank(c as u32)).collect();
        TreeReduce { op, vector, template, joined_ns: now, parent, children, added: 0, sent: false }
    }

    pub(crate) fn advance(
        &mut self,
        out: &mut Out<'_>,
        inbox: &mut Inbox,
    ) -> Result<Option<Vec<Contribution>>, String> {
        let range = 0..self.vector.data.len();
        while self.added < self.children.len() {
            let child = self.children[self.children.len() - 1 - self.added];
            let Some(a) = inbox.take(child, 0) else { return Ok(None) };
            let Body::Values(incoming) = &a.piece.body else { return Err(unexpected(&a.piece, "a partial sum")) };
            self.vector.check(&range, incoming).map_err(|e| format!("the partial sum from {child}: {e}"))?;
            self.vector.combine(self.op, range.clone(), incoming, false);
            self.added += 1;
        }
        if let Some(parent) = self.parent {
            if !self.sent {
                out.send_body(parent, 0, Body::Values(self.vector.data.clone()));
                self.sent = true;
            }
            let Some(a) = inbox.take(parent, 1) else { return Ok(None) };
            let Body::Values(incoming) = a.piece.body else { return Err(unexpected(&a.piece, "the result")) };
            self.vector.check(&range, &incoming).map_err(|e| format!("the result from {parent}: {e}"))?;
            self.vector.data = incoming;
        }
        for &child in &self.children {
            out.send_body(child, 1, Body::Values(self.vector.data.clone()));
        }
        let mut msg = self.template.clone();
        msg.payload = Some(std::mem::take(&mut self.vector.data));
        Ok(Some(vec![Contribution { from: out.me, sent_ns: self.joined_ns, recv_ns: out.now, messages: vec![msg] }]))
    }

    pub(crate) fn waiting(&self) -> String {
        if self.added < self.children.len() {
            let child = self.children[self.children.len() - 1 - self.added];
            format!("reducing, waiting for child {child}")
        } else {
            format!("waiting for the result from {:?}", self.parent)
        }
    }
}
