//! Broadcast along a binomial tree or a pipelined chain.

use super::{Body, Inbox, Out, Segmenting, unexpected};
use crate::collective::{Contribution, Tree, wire_bytes};
use crate::ids::Rank;
use crate::message::Message;

/// One member's part in a broadcast over `members` (root first) along `tree`. The root
/// sends its data to its children when it joins and completes at once. Every other
/// member forwards each piece from its parent to its children as it arrives (the tree's
/// order: a binomial tree's farthest subtree first) and completes once all of the data
/// is in, with one contribution from its parent.
///
/// The data goes whole along a binomial tree, and along a chain under
/// [`Segmenting::Whole`]; under [`Segmenting::Segments`] a chain cuts it into
/// `ceil(bytes / segment_bytes)` segments (step `i` is segment `i`), so a member
/// forwards segment `i` while `i + 1` is still on its way. The messages ride on the
/// last segment; segments may arrive in any order.
#[derive(Debug)]
pub(crate) struct Broadcast {
    parent: Option<Rank>,
    children: Vec<Rank>,
    /// The root's messages, until it sends them.
    root: Option<Vec<Message>>,
    /// Bytes per segment (`u64::MAX`: whole).
    segment: u64,
    /// Segments in all, once the first one arrived.
    of: Option<u32>,
    got: u32,
    messages: Option<Vec<Message>>,
    first_sent: u64,
    last_recv: u64,
}

impl Broadcast {
    /// Member `v` of `members` (this rank) joins.
    pub(crate) fn new(
        v: usize,
        members: &[Rank],
        tree: Tree,
        sends: Vec<(Rank, Vec<Message>)>,
        segmenting: Segmenting,
    ) -> Self {
        let parent = tree.parent(v).map(|i| members[i]);
        let children = tree.children(v, members.len()).into_iter().map(|c| members[c]).collect();
        let root = parent.is_none().then(|| sends.into_iter().flat_map(|(_, m)| m).collect());
        let segment = match (tree, segmenting) {
            (Tree::Chain { segment_bytes }, Segmenting::Segments) => segment_bytes.max(1),
            _ => u64::MAX,
        };
        Broadcast {
            parent,
            children,
            root,
            segment,
            of: None,
            got: 0,
            messages: None,
            first_sent: u64::MAX,
            last_recv: 0,
        }
    }

    pub(crate) fn advance(
        &mut self,
        out: &mut Out<'_>,
        inbox: &mut Inbox,
    ) -> Result<Option<Vec<Contribution>>, String> {
        let Some(parent) = self.parent else {
            let messages = self.root.take().expect("the root advances once");
            let bytes = wire_bytes(&messages);
            let of = bytes.div_ceil(self.segment).max(1);
            let of = u32::try_from(of).map_err(|_| format!("{bytes} bytes make more than 2^32 segments"))?;
            let mut messages = Some(messages);
            for i in 0..of {
                let size = if of == 1 { bytes } else { self.segment.min(bytes - i as u64 * self.segment) };
                let last = i + 1 == of;
                for (c, &child) in self.children.iter().enumerate() {
                    let carried = match (last, c + 1 == self.children.len()) {
                        (false, _) => None,
                        (true, false) => messages.clone(),
                        (true, true) => messages.take(),
                    };
                    out.send(child, i, size, Body::Segment { of, messages: carried });
                }
            }
            return Ok(Some(Vec::new()));
        };
        for a in inbox.drain() {
            let piece = a.piece;
            let Body::Segment { of, messages } = piece.body else { return Err(unexpected(&piece, "a segment")) };
            if piece.src != parent || piece.step >= of || self.of.is_some_and(|o| o != of) {
                return Err(format!(
                    "segment {} of {of} from {}; expected segments of {:?} from the tree parent {parent}",
                    piece.step, piece.src, self.of
                ));
            }
            self.of = Some(of);
            for &child in &self.children {
                out.send(child, piece.step, piece.bytes, Body::Segment { of, messages: messages.clone() });
            }
            if messages.is_some() {
                self.messages = messages;
            }
            self.got += 1;
            self.first_sent = self.first_sent.min(piece.sent_ns);
            self.last_recv = self.last_recv.max(a.at);
        }
        if self.of != Some(self.got) {
            return Ok(None);
        }
        let messages = self.messages.take().ok_or("all segments arrived, none with the messages")?;
        Ok(Some(vec![Contribution { from: parent, sent_ns: self.first_sent, recv_ns: self.last_recv, messages }]))
    }

    pub(crate) fn waiting(&self) -> String {
        match (self.parent, self.of) {
            (Some(parent), Some(of)) => format!("has {} of {of} segments, waiting for {parent}", self.got),
            (Some(parent), None) => format!("waiting for {parent}"),
            (None, _) => "root, sending".into(),
        }
    }
}
