//! Collectives as their algorithms' point-to-point steps, so they cross the simulated
//! network like any message and share its links, NICs and CPU overheads.
//!
//! - **All-to-all-v: pairwise exchange** over `p` ranks, `p - 1` steps. In step `i`
//!   rank `r` sends its contribution for `(r + i) mod p` (one message of the
//!   contribution's bytes, a header when it is empty) and waits for the one from
//!   `(r - i) mod p`, then moves to step `i + 1` (each step is a send-receive). It
//!   completes when the last step's message has arrived.
//! - **Broadcast** along the join's [`Tree`]: the root sends the data to its children
//!   when it joins and is done; every other member, once it has joined, forwards what
//!   arrived from its parent to its children and completes when all of it has arrived.
//!   A binomial tree moves the data whole; a pipelined chain cuts it into segments of
//!   `segment_bytes` and forwards each as soon as it arrives.
//! - **Fence: dissemination barrier**, `ceil(log2 p)` rounds: in round `k` rank `r`
//!   sends a header to `(r + 2^k) mod p` and waits for the one from `(r - 2^k) mod p`.
//!   (The driver joins a rank only once its one-sided operations have completed.)
//!
//! Pieces that arrive before their receiver reached their step (or joined at all) wait.
//! The driver owns the network: [`Collectives::advance`] asks it to send pieces through
//! a callback, and the driver hands each delivered piece back with
//! [`Collectives::arrive`].

use crate::queue::Time;
use dagwire_runtime::collective::{Tree, wire_bytes};
use dagwire_runtime::{CollectiveJoin, CollectiveKind, Contribution, Message, Rank};
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;

/// One point-to-point piece of a collective, as it travels.
#[derive(Debug)]
pub struct Piece {
    /// The collective.
    pub id: u64,
    /// Sender.
    pub src: Rank,
    /// Receiver.
    pub dst: Rank,
    /// When it was handed to the network.
    pub sent: Time,
    /// Bytes on the wire.
    pub bytes: u64,
    /// A broadcast segment (else an all-to-all-v step).
    pub broadcast: bool,
    /// Segment `index` of `of` (all-to-all-v steps and binomial sends are one segment).
    pub index: u64,
    /// Segments the data was cut into.
    pub of: u64,
    /// The messages, on the last segment only.
    pub messages: Option<Vec<Message>>,
}

/// One rank's part in an exchange: in step `i` it sends to the rank `stride(i)` above
/// it and waits for the one `stride(i)` below (a pairwise all-to-all-v, or a
/// dissemination barrier whose steps carry only headers).
struct Exchange {
    /// This rank's contribution per peer rank, taken when its step is sent.
    sends: Vec<Option<Vec<Message>>>,
    /// The current step, `0..steps`; `steps` means complete.
    step: usize,
    steps: usize,
    stride: fn(usize) -> usize,
    /// Whether the current step's message has been sent.
    sent: bool,
    /// Contributions received so far.
    received: Vec<Contribution>,
    /// Whether what arrived is handed to the rank (a barrier's headers are not).
    keep: bool,
}

/// One member's part in a broadcast.
struct Relay {
    /// Where the data comes from; `None` for the root, which sent it all when it joined.
    parent: Option<Rank>,
    children: Vec<Rank>,
    /// Segments already forwarded to every child.
    forwarded: u64,
}

/// The segments of one broadcast that reached one member so far, joined or not.
#[derive(Default)]
struct Inbound {
    /// Size of each segment arrived, in order.
    sizes: Vec<u64>,
    /// Segments in all.
    of: u64,
    first_sent: Time,
    last_recv: Time,
    /// Present once the last segment is in.
    messages: Option<Vec<Message>>,
}

enum Part {
    Exchange(Exchange),
    Relay(Relay),
}

/// Every rank's collectives in progress, and the pieces that arrived early.
pub struct Collectives {
    ranks: usize,
    /// Per rank, the collectives it joined that have not completed, by id.
    parts: Vec<BTreeMap<u64, Part>>,
    /// All-to-all-v steps that arrived before their receiver reached them: by
    /// (receiver, collective, sender).
    early: FxHashMap<(u32, u64, u32), Contribution>,
    /// Broadcast segments that arrived, by (receiver, collective).
    inbound: FxHashMap<(u32, u64), Inbound>,
}

impl Collectives {
    /// Nothing in progress, for `ranks` ranks.
    pub fn new(ranks: usize) -> Self {
        Collectives {
            ranks,
            parts: (0..ranks).map(|_| BTreeMap::new()).collect(),
            early: FxHashMap::default(),
            inbound: FxHashMap::default(),
        }
    }

    /// True when no collective is open and no piece waits.
    pub fn is_idle(&self) -> bool {
        self.parts.iter().all(BTreeMap::is_empty) && self.early.is_empty() && self.inbound.is_empty()
    }

    /// Rank `r` joins at `now`. A broadcast's root sends all its data (through `send`)
    /// at once and is reported complete by the next [`Collectives::advance`].
    pub fn join(&mut self, r: usize, now: Time, join: CollectiveJoin, send: &mut impl FnMut(Piece)) {
        let me = Rank(r as u32);
        let part = match join.kind {
            CollectiveKind::Fence => {
                let steps = self.ranks.next_power_of_two().trailing_zeros() as usize;
                let sends = vec![None; self.ranks];
                let (stride, keep) = (|i: usize| 1 << i, false);
                Part::Exchange(Exchange { sends, step: 0, steps, stride, sent: false, received: Vec::new(), keep })
            }
            CollectiveKind::AllToAllV => {
                let mut sends: Vec<Option<Vec<Message>>> = vec![None; self.ranks];
                for (to, messages) in join.sends {
                    sends[to.index()] = Some(messages);
                }
                let (steps, stride) = (self.ranks - 1, |i: usize| i + 1);
                Part::Exchange(Exchange {
                    sends,
                    step: 0,
                    steps,
                    stride,
                    sent: false,
                    received: Vec::new(),
                    keep: true,
                })
            }
            CollectiveKind::Broadcast { members, tree } => {
                let v = members.iter().position(|&m| m == me).expect("a broadcast's members include who joins it");
                let children: Vec<Rank> = tree.children(v, members.len()).into_iter().map(|c| members[c]).collect();
                let parent = tree.parent(v).map(|p| members[p]);
                if parent.is_none() {
                    let messages: Vec<Message> = join.sends.into_iter().flat_map(|(_, m)| m).collect();
                    let sizes = segments(tree, wire_bytes(&messages));
                    let of = sizes.len() as u64;
                    for index in 0..of {
                        for &dst in &children {
                            let messages = (index + 1 == of).then(|| messages.clone());
                            let bytes = sizes[index as usize];
                            send(Piece {
                                id: join.id,
                                src: me,
                                dst,
                                sent: now,
                                bytes,
                                broadcast: true,
                                index,
                                of,
                                messages,
                            });
                        }
                    }
                }
                Part::Relay(Relay { parent, children, forwarded: 0 })
            }
        };
        self.parts[r].insert(join.id, part);
    }

    /// A piece reached its receiver at `at`.
    pub fn arrive(&mut self, piece: Piece, at: Time) {
        let Piece { id, src, dst, sent, bytes, broadcast, index, of, messages } = piece;
        if !broadcast {
            let part = Contribution { from: src, sent_ns: sent, recv_ns: at, messages: messages.unwrap_or_default() };
            self.early.insert((dst.0, id, src.0), part);
            return;
        }
        let inbound = self.inbound.entry((dst.0, id)).or_default();
        debug_assert_eq!(index, inbound.sizes.len() as u64, "segments arrive in order from one parent");
        if index == 0 {
            inbound.first_sent = sent;
        }
        inbound.sizes.push(bytes);
        (inbound.of, inbound.last_recv) = (of, at);
        if messages.is_some() {
            inbound.messages = messages;
        }
    }

    /// Moves rank `r`'s collectives as far as they go at `now`, sending pieces through
    /// `send`. Returns those that completed, with what the rank received.
    pub fn advance(&mut self, r: usize, now: Time, send: &mut impl FnMut(Piece)) -> Vec<(u64, Vec<Contribution>)> {
        let p = self.ranks;
        let me = Rank(r as u32);
        let mut completed = Vec::new();
        for (&id, part) in self.parts[r].iter_mut() {
            match part {
                Part::Exchange(ex) => {
                    while ex.step < ex.steps {
                        let stride = (ex.stride)(ex.step) % p;
                        let (to, from) = ((r + stride) % p, (r + p - stride) % p);
                        if !ex.sent {
                            let messages = ex.sends[to].take().unwrap_or_default();
                            let (dst, bytes) = (Rank(to as u32), wire_bytes(&messages));
                            let messages = Some(messages);
                            send(Piece {
                                id,
                                src: me,
                                dst,
                                sent: now,
                                bytes,
                                broadcast: false,
                                index: 0,
                                of: 1,
                                messages,
                            });
                            ex.sent = true;
                        }
                        let Some(got) = self.early.remove(&(r as u32, id, from as u32)) else { break };
                        if ex.keep {
                            ex.received.push(got);
                        }
                        (ex.step, ex.sent) = (ex.step + 1, false);
                    }
                    if ex.step >= ex.steps {
                        completed.push((id, std::mem::take(&mut ex.received)));
                    }
                }
                Part::Relay(Relay { parent: None, .. }) => completed.push((id, Vec::new())),
                Part::Relay(relay @ Relay { parent: Some(_), .. }) => {
                    let Some(inbound) = self.inbound.get(&(me.0, id)) else { continue };
                    let (have, of) = (inbound.sizes.len() as u64, inbound.of);
                    for index in relay.forwarded..have {
                        let bytes = inbound.sizes[index as usize];
                        for &dst in &relay.children {
                            let messages = if index + 1 == of { inbound.messages.clone() } else { None };
                            send(Piece { id, src: me, dst, sent: now, bytes, broadcast: true, index, of, messages });
                        }
                    }
                    relay.forwarded = have;
                    if have == of {
                        let inbound = self.inbound.remove(&(me.0, id)).expect("present");
                        let from = relay.parent.expect("not the root");
                        let messages = inbound.messages.expect("the last segment carries the messages");
                        let (sent_ns, recv_ns) = (inbound.first_sent, inbound.last_recv);
                        completed.push((id, vec![Contribution { from, sent_ns, recv_ns, messages }]));
                    }
                }
            }
        }
        for (id, _) in &completed {
            self.parts[r].remove(id);
        }
        completed
    }

    /// For deadlock diagnostics: where rank `r`'s open collectives stand.
    pub fn summary(&self, r: usize) -> String {
        let p = self.ranks;
        let open: Vec<String> = self.parts[r]
            .iter()
            .map(|(id, part)| match part {
                Part::Exchange(ex) => {
                    let stride = (ex.stride)(ex.step) % p;
                    format!("{id} at step {} of {}, waiting for r{}", ex.step + 1, ex.steps, (r + p - stride) % p)
                }
                Part::Relay(relay) => format!("broadcast {id}, waiting for {:?}", relay.parent),
            })
            .collect();
        if open.is_empty() { String::new() } else { format!("; collectives open: {}", open.join(", ")) }
    }
}

/// Segment sizes of `bytes` moved along `tree`.
fn segments(tree: Tree, bytes: u64) -> Vec<u64> {
    match tree {
        Tree::Binomial => vec![bytes],
        Tree::Chain { segment_bytes } => {
            let seg = segment_bytes.max(1);
            let n = bytes.div_ceil(seg).max(1);
            (0..n).map(|i| seg.min(bytes - i * seg)).collect()
        }
    }
}
