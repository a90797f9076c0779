//! The DAG of a micro run: per iteration, `send` tasks write the messages and `recv`
//! tasks on the receivers read (and check) them; iterations are chained by
//! dependencies so that, as in the OSU loops, one iteration's messages leave only
//! after the previous iteration's have arrived:
//!
//! - **pingpong**: `send@0 -> recv@1 -> send@1 -> recv@0 -> send@0 ...`, one chain
//!   (a send task reads the preceding receive's count chunk, a local dependency);
//! - **bandwidth**: `send@0` writes `window` messages, `recv@1` reads them all, then
//!   `send@1` writes a 4-byte acknowledgement that `recv@0` reads before the next
//!   iteration's `send@0`;
//! - **alltoall**, **halo**: each rank's send of iteration `i + 1` waits for its own
//!   receive of iteration `i`, which in turn waits for every message sent to it;
//! - **broadcast**: rank 0's send of iteration `i + 1` waits for every other rank's
//!   receive of iteration `i` — their 8-byte count chunks travel to rank 0, which is
//!   the DAG's version of the barrier osu_bcast runs between broadcasts.
//!
//! Every count chunk is a result ([`DagBuilder::mark_result`]), so the run hands all
//! of them back to [`super::verify()`].

use super::kernels::{COUNT_BYTES, Kind, args};
use super::pattern::{Layout, Pattern};
use dagwire_runtime::{Added, ChunkId, Dag, DagBuilder, Rank, TaskSpec};

/// One receive task's count chunk: which iteration and rank it checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CountChunk {
    /// Iteration (warm-up included, 0-based).
    pub iteration: u32,
    /// The receiving rank.
    pub rank: u32,
    /// The chunk holding the number of wrong bytes.
    pub chunk: ChunkId,
}

/// A built DAG and where its count chunks are.
#[derive(Debug)]
pub struct Plan {
    /// The DAG.
    pub dag: Dag,
    /// Every receive task's count chunk, in task order.
    pub counts: Vec<CountChunk>,
}

/// Builds the DAG of `warmup + measured` iterations; iterations `0..warmup` are
/// the warm-up (their tasks have `args[1] == 0`).
pub fn build(layout: Layout, warmup: u32, measured: u32) -> Plan {
    let total = warmup + measured;
    let mut b = Builder {
        layout,
        warmup,
        total,
        dag: DagBuilder::new(layout.ranks as usize),
        sent: vec![None; layout.ranks as usize],
        counts: Vec::new(),
    };
    match layout.pattern {
        Pattern::PingPong | Pattern::Bandwidth => {
            let mut back: Option<ChunkId> = None;
            for i in 0..total {
                b.sent.fill(None);
                b.send(i, 0, back.as_slice());
                let there = b.recv(i, 1);
                b.send(i, 1, &[there]);
                back = Some(b.recv(i, 0));
            }
        }
        Pattern::AllToAll | Pattern::Halo => {
            let mut own: Vec<Option<ChunkId>> = vec![None; layout.ranks as usize];
            for i in 0..total {
                b.sent.fill(None);
                for r in 0..layout.ranks {
                    b.send(i, r, own[r as usize].as_slice());
                }
                for r in 0..layout.ranks {
                    own[r as usize] = Some(b.recv(i, r));
                }
            }
        }
        Pattern::Broadcast => {
            let mut all: Vec<ChunkId> = Vec::new();
            for i in 0..total {
                b.sent.fill(None);
                b.send(i, 0, &all);
                all = layout.receivers().collect::<Vec<_>>().into_iter().map(|r| b.recv(i, r)).collect();
            }
        }
    }
    Plan { dag: b.dag.finish(), counts: b.counts }
}

struct Builder {
    layout: Layout,
    warmup: u32,
    total: u32,
    dag: DagBuilder,
    /// Each rank's send task of the current iteration (cleared per iteration): message
    /// `k`'s chunk is output [`Layout::send_index`]`(k)` of `sent[k.src]`. A table by
    /// rank, not a map by message: at 1024 ranks an all-to-all iteration has a million
    /// messages, and hashing each twice was most of the build.
    sent: Vec<Option<Added>>,
    counts: Vec<CountChunk>,
}

impl Builder {
    fn spec(&self, kind: Kind, iteration: u32, owner: u32) -> TaskSpec<'static> {
        // Earlier iterations first when a rank has several ready tasks.
        TaskSpec::new(kind.id(), Rank(owner))
            .priority(self.total - iteration)
            .args(args(iteration, iteration >= self.warmup))
    }

    /// The send task of `owner` in `iteration`, after the chunks `deps`.
    fn send(&mut self, iteration: u32, owner: u32, deps: &[ChunkId]) {
        let keys = self.layout.sends(iteration, owner);
        let sizes: Vec<u64> = keys.iter().map(|&k| self.layout.bytes_of(k)).collect();
        let spec = self.spec(Kind::Send, iteration, owner).inputs(deps).outputs(&sizes);
        self.sent[owner as usize] = Some(self.dag.add(spec));
    }

    /// The receive task of `owner` in `iteration`; returns its count chunk.
    fn recv(&mut self, iteration: u32, owner: u32) -> ChunkId {
        let keys = self.layout.receives(iteration, owner);
        let inputs: Vec<ChunkId> = keys
            .iter()
            .map(|&k| {
                let send = self.sent[k.src as usize].expect("a message is read after its send task is added");
                send.output(self.layout.send_index(k))
            })
            .collect();
        let spec = self.spec(Kind::Recv, iteration, owner).inputs(&inputs).outputs(&[COUNT_BYTES]);
        let chunk = self.dag.add(spec).output(0);
        self.dag.mark_result(chunk);
        self.counts.push(CountChunk { iteration, rank: owner, chunk });
        chunk
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The builder as first written: every message's chunk in a map by its key, looked
    /// up by the receive tasks. Obviously right, and slow at scale.
    fn reference(layout: Layout, warmup: u32, measured: u32) -> Plan {
        use crate::micro::pattern::MsgKey;
        use std::collections::BTreeMap;
        let total = warmup + measured;
        let mut dag = DagBuilder::new(layout.ranks as usize);
        let mut sent: BTreeMap<MsgKey, ChunkId> = BTreeMap::new();
        let mut counts = Vec::new();
        let spec = |kind: Kind, i: u32, owner: u32| {
            TaskSpec::new(kind.id(), Rank(owner)).priority(total - i).args(args(i, i >= warmup))
        };
        let send = |dag: &mut DagBuilder, sent: &mut BTreeMap<MsgKey, ChunkId>, i, owner, deps: &[ChunkId]| {
            let keys = layout.sends(i, owner);
            let sizes: Vec<u64> = keys.iter().map(|&k| layout.bytes_of(k)).collect();
            let added = dag.add(spec(Kind::Send, i, owner).inputs(deps).outputs(&sizes));
            for (x, key) in keys.into_iter().enumerate() {
                sent.insert(key, added.output(x));
            }
        };
        let mut recv = |dag: &mut DagBuilder, sent: &BTreeMap<MsgKey, ChunkId>, i, owner| {
            let inputs: Vec<ChunkId> = layout.receives(i, owner).iter().map(|k| sent[k]).collect();
            let chunk = dag.add(spec(Kind::Recv, i, owner).inputs(&inputs).outputs(&[COUNT_BYTES])).output(0);
            dag.mark_result(chunk);
            counts.push(CountChunk { iteration: i, rank: owner, chunk });
            chunk
        };
        let mut own: Vec<Vec<ChunkId>> = vec![Vec::new(); layout.ranks as usize];
        for i in 0..total {
            sent.clear();
            match layout.pattern {
                Pattern::PingPong | Pattern::Bandwidth => {
                    send(&mut dag, &mut sent, i, 0, &own[0]);
                    let there = recv(&mut dag, &sent, i, 1);
                    send(&mut dag, &mut sent, i, 1, &[there]);
                    own[0] = vec![recv(&mut dag, &sent, i, 0)];
                }
                Pattern::AllToAll | Pattern::Halo => {
                    for r in 0..layout.ranks {
                        send(&mut dag, &mut sent, i, r, &own[r as usize]);
                    }
                    for r in 0..layout.ranks {
                        own[r as usize] = vec![recv(&mut dag, &sent, i, r)];
                    }
                }
                Pattern::Broadcast => {
                    send(&mut dag, &mut sent, i, 0, &own[0]);
                    own[0] = layout.receivers().map(|r| recv(&mut dag, &sent, i, r)).collect();
                }
            }
        }
        Plan { dag: dag.finish(), counts }
    }

    /// The builder makes exactly the reference's DAG (every task, chunk, edge and
    /// result, so a simulated run's trace is unchanged) for every pattern on grids of
    /// several shapes.
    #[test]
    fn same_dag_as_the_reference_construction() {
        for pattern in Pattern::ALL {
            for ranks in [2, 3, 4, 5, 6, 9, 12, 16] {
                let layout = Layout::new(pattern, ranks, 24, 3);
                let (ours, theirs) = (build(layout, 1, 2), reference(layout, 1, 2));
                assert_eq!(ours.dag, theirs.dag, "{pattern:?} on {ranks} ranks");
                assert_eq!(ours.dag.fingerprint(), theirs.dag.fingerprint());
                assert_eq!(ours.counts, theirs.counts, "{pattern:?} on {ranks} ranks");
            }
        }
    }

    #[test]
    fn task_and_result_counts() {
        for (pattern, ranks, per_iteration, counts_per_iteration) in [
            (Pattern::PingPong, 3, 4, 2),
            (Pattern::Bandwidth, 2, 4, 2),
            (Pattern::AllToAll, 4, 8, 4),
            (Pattern::Broadcast, 4, 4, 3),
            (Pattern::Halo, 6, 12, 6),
        ] {
            let plan = build(Layout::new(pattern, ranks, 32, 5), 2, 3);
            assert_eq!(plan.dag.task_count(), 5 * per_iteration, "{pattern:?}");
            assert_eq!(plan.counts.len(), 5 * counts_per_iteration, "{pattern:?}");
            let mut counts: Vec<ChunkId> = plan.counts.iter().map(|c| c.chunk).collect();
            counts.sort_unstable();
            assert_eq!(plan.dag.results(), counts, "{pattern:?}: the results are exactly the count chunks");
        }
    }

    #[test]
    fn pingpong_is_one_chain_on_ranks_0_and_1() {
        let plan = build(Layout::new(Pattern::PingPong, 4, 8, 1), 1, 2);
        let dag = &plan.dag;
        assert!(dag.tasks_of(Rank(2)).is_empty() && dag.tasks_of(Rank(3)).is_empty());
        let owners: Vec<u32> = dag.task_ids().map(|t| dag.task(t).owner.0).collect();
        assert_eq!(owners, [0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0]);
        // Every task but the first reads exactly the previous task's (only or count) output.
        for t in dag.task_ids().skip(1) {
            let prev = dagwire_runtime::TaskId(t.0 - 1);
            assert_eq!(dag.inputs(t), &[ChunkId(dag.output_range(prev).start)], "task {t}");
        }
        let measured: Vec<u32> = dag.task_ids().map(|t| dag.task(t).args[1]).collect();
        assert_eq!(measured, [0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1]);
    }

    #[test]
    fn bandwidth_window_and_ack() {
        let plan = build(Layout::new(Pattern::Bandwidth, 2, 100, 6), 0, 2);
        let dag = &plan.dag;
        let first = dagwire_runtime::TaskId(0);
        assert_eq!(dag.output_range(first).len(), 6);
        assert_eq!(dag.inputs(dagwire_runtime::TaskId(1)).len(), 6);
        let ack = dagwire_runtime::TaskId(2);
        assert_eq!(dag.chunk(ChunkId(dag.output_range(ack).start)).bytes, 4);
        // The next iteration's window waits for the acknowledgement's receive.
        assert_eq!(dag.inputs(dagwire_runtime::TaskId(4)), &[plan.counts[1].chunk]);
    }

    #[test]
    fn broadcast_waits_for_every_receiver() {
        let plan = build(Layout::new(Pattern::Broadcast, 3, 8, 1), 1, 1);
        let dag = &plan.dag;
        let second_send = dagwire_runtime::TaskId(3);
        assert_eq!(dag.task(second_send).args, [1, 1, 0, 0]);
        assert_eq!(dag.inputs(second_send), &[plan.counts[0].chunk, plan.counts[1].chunk]);
        assert_eq!(dag.remote_readers(ChunkId(dag.output_range(dagwire_runtime::TaskId(0)).start)).len(), 2);
    }
}
