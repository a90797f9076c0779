//! A strategy that joins every kind of collective in turn and checks what each brings,
//! for driver tests: a driver that runs [`CollectiveProbe`] on [`probe_dag`] to the end
//! serves every collective as [`crate::collective::CollectiveJoin`] documents it (a
//! broadcast's contribution names the tree parent, a reduction's sum is exact, ...).
//! A mismatch fails the run with a protocol error naming the collective.

use crate::collective::{
    AllReduceAlgorithm, AllToAllAlgorithm, Capability, CollectiveKind, Contribution, DType, ReduceOp, Tree, block_range,
};
use crate::dag::{Dag, DagBuilder, TaskSpec};
use crate::ids::{ChunkId, KernelId, Rank};
use crate::message::{Message, NO_CHUNK};
use crate::payload::Payload;
use crate::strategy::{Strategy, StrategyCtx};

/// Operation code of a probe's data message.
const DATA: u8 = 1;
/// Operation code of a probe's control message.
const CTRL: u8 = 2;

/// A DAG of one task without inputs per rank: all a probe run needs.
///
/// ```
/// assert_eq!(dagwire_runtime::drivers::probe::probe_dag(3).task_count(), 3);
/// ```
pub fn probe_dag(ranks: usize) -> Dag {
    let mut b = DagBuilder::new(ranks);
    for r in 0..ranks as u32 {
        b.add(TaskSpec::new(KernelId(0), Rank(r)).outputs(&[8]));
    }
    b.finish()
}

/// The collectives a probe joins, in order, as rank `rank` of `ranks` joins them (ids
/// 1, 2, ...): both all-to-all-v algorithms, a neighbour all-to-all-v along the path
/// `0 -> 1 -> ... -> p-1` (rank 0 has no source and completes at once), a binomial
/// broadcast rooted at rank 0 and a segmented chain rooted at the last rank, a fence,
/// every all-reduce algorithm (f64) and a ring one over f32, a reduce-scatter and an
/// all-gather.
///
/// ```
/// use dagwire_runtime::drivers::probe::probe_kinds;
/// assert_eq!(probe_kinds(Default::default(), 4).len(), 12);
/// ```
pub fn probe_kinds(rank: Rank, ranks: usize) -> Vec<CollectiveKind> {
    let r = rank.index();
    let all: Vec<Rank> = (0..ranks as u32).map(Rank).collect();
    let sum = |dtype, algorithm| CollectiveKind::AllReduce { op: ReduceOp::Sum, dtype, algorithm };
    vec![
        CollectiveKind::AllToAllV { algorithm: AllToAllAlgorithm::Pairwise },
        CollectiveKind::AllToAllV { algorithm: AllToAllAlgorithm::Bruck },
        CollectiveKind::NeighborAllToAllV {
            sources: (r > 0).then(|| Rank(r as u32 - 1)).into_iter().collect(),
            destinations: (r + 1 < ranks).then(|| Rank(r as u32 + 1)).into_iter().collect(),
        },
        CollectiveKind::Broadcast { members: all.clone(), tree: Tree::Binomial },
        CollectiveKind::Broadcast {
            members: all.into_iter().rev().collect(),
            tree: Tree::Chain { segment_bytes: 100 },
        },
        CollectiveKind::Fence,
        sum(DType::F64, AllReduceAlgorithm::Ring),
        sum(DType::F64, AllReduceAlgorithm::RecursiveDoubling),
        sum(DType::F64, AllReduceAlgorithm::BinomialTree),
        sum(DType::F32, AllReduceAlgorithm::Ring),
        CollectiveKind::ReduceScatter { op: ReduceOp::Sum, dtype: DType::F64 },
        CollectiveKind::AllGather,
    ]
}

/// Joins [`probe_kinds`] one after the other and checks each completion.
///
/// ```
/// use dagwire_runtime::drivers::probe::CollectiveProbe;
/// use dagwire_runtime::{Rank, Strategy};
/// let probe = CollectiveProbe::new(Rank(0), 2);
/// assert!(!probe.is_idle());
/// ```
#[derive(Debug)]
pub struct CollectiveProbe {
    rank: Rank,
    ranks: usize,
    kinds: Vec<CollectiveKind>,
    /// Index of the collective joined and not completed, or of the next to join.
    next: usize,
    joined: bool,
}

impl CollectiveProbe {
    /// The probe of rank `rank` of `ranks`: every collective of [`probe_kinds`].
    pub fn new(rank: Rank, ranks: usize) -> Self {
        CollectiveProbe { rank, ranks, kinds: probe_kinds(rank, ranks), next: 0, joined: false }
    }

    /// A probe that joins only collective `which` of [`probe_kinds`] (id `which + 1`).
    pub fn only(rank: Rank, ranks: usize, which: usize) -> Self {
        let mut probe = CollectiveProbe::new(rank, ranks);
        probe.kinds.truncate(which + 1);
        probe.next = which;
        probe
    }

    fn id(&self) -> u64 {
        self.next as u64 + 1
    }

    fn join_next(&mut self, ctx: &mut StrategyCtx<'_>) {
        let Some(kind) = self.kinds.get(self.next).cloned() else { return };
        let (id, r, p) = (self.id(), self.rank.index(), self.ranks);
        let me = self.rank;
        let sends = match &kind {
            CollectiveKind::AllToAllV { .. } => {
                (0..p).filter(|&d| d != r).map(|d| (Rank(d as u32), parts(id, r, d))).collect()
            }
            CollectiveKind::NeighborAllToAllV { destinations, .. } => {
                destinations.iter().map(|&d| (d, parts(id, r, d.index()))).collect()
            }
            CollectiveKind::Broadcast { members, .. } if members[0] == me => vec![(me, parts(id, r, usize::MAX))],
            CollectiveKind::AllReduce { dtype, .. } | CollectiveKind::ReduceScatter { dtype, .. } => {
                vec![(me, vec![Message::data(DATA, ChunkId(r as u32), vector(&values(id, r), *dtype))])]
            }
            CollectiveKind::AllGather => vec![(me, parts(id, r, r))],
            _ => Vec::new(),
        };
        ctx.join_collective(id, kind, sends);
        self.joined = true;
    }

    /// Checks what collective `self.next` brought to this rank.
    fn check(&self, received: &[Contribution]) -> Result<(), String> {
        let (id, r, p, me) = (self.id(), self.rank.index(), self.ranks, self.rank);
        // Messages as sent, without the join time the engine stamped on them.
        let got: Vec<(Rank, Vec<Message>)> = received
            .iter()
            .map(|c| (c.from, c.messages.iter().map(|m| Message { sent_ns: 0, ..m.clone() }).collect()))
            .collect();
        let expect = |want: Vec<(Rank, Vec<Message>)>| -> Result<(), String> {
            if got == want { Ok(()) } else { Err(format!("received {got:?}, expected {want:?}")) }
        };
        match &self.kinds[self.next] {
            CollectiveKind::AllToAllV { .. } => {
                expect((0..p).filter(|&s| s != r).map(|s| (Rank(s as u32), parts(id, s, r))).collect())
            }
            CollectiveKind::NeighborAllToAllV { sources, .. } => {
                expect(sources.iter().map(|&s| (s, parts(id, s.index(), r))).collect())
            }
            CollectiveKind::Broadcast { members, tree } => {
                let v = members.iter().position(|&m| m == me).expect("a member");
                match tree.parent(v) {
                    None => expect(Vec::new()),
                    Some(parent) => expect(vec![(members[parent], parts(id, members[0].index(), usize::MAX))]),
                }
            }
            CollectiveKind::Fence => expect(Vec::new()),
            CollectiveKind::AllReduce { dtype, .. } | CollectiveKind::ReduceScatter { dtype, .. } => {
                let sum: Vec<f64> = (0..values(id, 0).len()).map(|i| (0..p).map(|s| values(id, s)[i]).sum()).collect();
                let result = match self.kinds[self.next] {
                    CollectiveKind::ReduceScatter { .. } => &sum[block_range(sum.len(), p, r)],
                    _ => &sum[..],
                };
                expect(vec![(me, vec![Message::data(DATA, ChunkId(r as u32), vector(result, *dtype))])])
            }
            CollectiveKind::AllGather => expect((0..p).map(|s| (Rank(s as u32), parts(id, s, s))).collect()),
        }
    }
}

/// What rank `from` sends `to` in collective `id` (`to = usize::MAX`: a broadcast's
/// data, never empty): a data message of 1000 + some bytes of a pattern and a control
/// message, or nothing for about one pair in three.
fn parts(id: u64, from: usize, to: usize) -> Vec<Message> {
    if to != usize::MAX && (id as usize + from + to * 7).is_multiple_of(3) {
        return Vec::new();
    }
    let len = 1000 + (id as usize * 13 + from * 7 + to % 1000) % 50;
    let bytes: Vec<u8> = (0..len).map(|i| (i + from * 31 + to % 251 + id as usize) as u8).collect();
    let mut data = Message::data(DATA, ChunkId(from as u32), Payload::from_bytes(&bytes));
    data.arg = id;
    vec![data, Message::control(CTRL, NO_CHUNK, to as u64)]
}

/// Rank `r`'s vector in collective `id`: 7 whole numbers (sums are exact, in f32 too).
fn values(id: u64, r: usize) -> Vec<f64> {
    (0..7).map(|i| ((id as usize * 5 + r * 11 + i * 3) % 97) as f64 - 40.0).collect()
}

fn vector(values: &[f64], dtype: DType) -> Payload {
    match dtype {
        DType::F64 => Payload::from_f64(values.to_vec()),
        DType::F32 => {
            let v: Vec<f32> = values.iter().map(|&x| x as f32).collect();
            Payload::from_bytes(bytemuck::cast_slice(&v))
        }
    }
}

impl Strategy for CollectiveProbe {
    fn name(&self) -> &'static str {
        "collective-probe"
    }

    fn op_name(&self, op: u8) -> &'static str {
        match op {
            DATA => "probe-data",
            CTRL => "probe-ctrl",
            _ => "unknown",
        }
    }

    fn needs(&self) -> &'static [Capability] {
        &[
            Capability::AllToAllV,
            Capability::NeighborAllToAllV,
            Capability::Broadcast,
            Capability::OneSidedFence,
            Capability::AllReduce,
            Capability::ReduceScatter,
            Capability::AllGather,
        ]
    }

    fn on_start(&mut self, ctx: &mut StrategyCtx<'_>) {
        self.join_next(ctx);
    }

    fn on_chunk_ready(&mut self, _: &mut StrategyCtx<'_>, _: ChunkId, _: &Payload, _: &[Rank]) {}

    fn on_message(&mut self, _: &mut StrategyCtx<'_>, from: Rank, _: Message) -> Result<(), String> {
        Err(format!("the probe got a point-to-point message from {from}; it only joins collectives"))
    }

    fn on_collective_done(
        &mut self,
        ctx: &mut StrategyCtx<'_>,
        id: u64,
        received: Vec<Contribution>,
    ) -> Result<(), String> {
        if !self.joined || id != self.id() {
            return Err(format!("collective {id} completed, but the probe is in {}", self.id()));
        }
        self.check(&received).map_err(|e| format!("collective {id} ({}): {e}", self.kinds[self.next].name()))?;
        (self.next, self.joined) = (self.next + 1, false);
        self.join_next(ctx);
        Ok(())
    }

    fn is_idle(&self) -> bool {
        self.next == self.kinds.len()
    }
}
