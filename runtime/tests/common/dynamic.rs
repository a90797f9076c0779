//! DAGs that exercise dynamic scheduling (priorities, run-time sizes, run-time
//! placement), shared by the local, sim and mpi tests so every driver runs the same
//! plans and must reach the same decisions and results.

#![allow(dead_code)]

use dagwire_runtime::policies::{self, PlacementPolicy};
use dagwire_runtime::{
    ChunkId, Dag, DagBuilder, KernelId, Kernels, Payload, Rank, SlotSpec, Task, TaskId, TaskSpec, Trace,
};
use std::sync::{Arc, Mutex};

/// Kernel numbers of the fixtures.
pub const FILL: KernelId = KernelId(0);
/// Sums every f64 of its inputs; its output is the sum and the count.
pub const SUM: KernelId = KernelId(1);
/// Writes a placement report: base load `args[0]`, one slot of load `args[1]`.
pub const REPORT: KernelId = KernelId(2);
/// Routes `args[1]` f64s of value `args[0]` to the rank the decision (input 0) picks
/// for slot `args[2]`: output `i` (one per rank) is full for that rank, empty otherwise.
pub const ROUTE: KernelId = KernelId(3);
/// Doubles every f64 of input 1 and appends the rank it ran on.
pub const WORK: KernelId = KernelId(4);
/// Concatenates its inputs.
pub const COMBINE: KernelId = KernelId(5);
/// Names engine-run tasks in traces.
pub const DECIDE: KernelId = KernelId(6);
/// Names engine-run checks in traces.
pub const CHECK: KernelId = KernelId(7);

/// Kernels that record the order they ran in. `FILL` writes `args[1]` f64s of value
/// `args[0]` (fewer than its bound for run-time-sized outputs); `SUM` writes the sum of
/// every f64 of every input, then the total count of input f64s.
#[derive(Default)]
pub struct Recording {
    /// Tasks in the order their kernels ran.
    pub order: Mutex<Vec<TaskId>>,
}

impl Kernels for Recording {
    fn run(&self, task: &Task, inputs: Vec<Payload>) -> Result<Vec<Payload>, String> {
        self.order.lock().unwrap().push(TaskId(task.args[3]));
        let out = match task.kernel {
            FILL => Payload::from_f64(vec![task.args[0] as f64; task.args[1] as usize]),
            SUM => {
                let sum: f64 = inputs.iter().flat_map(|p| p.as_f64().iter()).sum();
                let count = inputs.iter().map(|p| p.len() / 8).sum::<usize>() as f64;
                Payload::from_f64(vec![sum, count])
            }
            REPORT => policies::write_report(task.args[0] as u64, &[task.args[1] as u64]),
            ROUTE => {
                let picked = policies::read_decision(&inputs[0])[task.args[2] as usize];
                let ranks = task.outputs().len();
                let data = Payload::from_f64(vec![task.args[0] as f64; task.args[1] as usize]);
                return Ok((0..ranks)
                    .map(|r| if r == picked.index() { data.clone() } else { Payload::default() })
                    .collect());
            }
            WORK => {
                let mut v: Vec<f64> = inputs[1].as_f64().iter().map(|x| 2.0 * x).collect();
                v.push(task.owner.0 as f64);
                Payload::from_f64(v)
            }
            COMBINE => Payload::from_f64(inputs.iter().flat_map(|p| p.as_f64().iter().copied()).collect()),
            k => return Err(format!("no kernel {k:?}")),
        };
        Ok(vec![out])
    }

    fn modelled_outputs(&self, task: &Task, inputs: &[Payload]) -> Option<Vec<Payload>> {
        match task.kernel {
            FILL => Some(vec![Payload::phantom(task.args[1] as usize * 8)]),
            // Reports and routing are small and decide the run: made for real.
            REPORT | ROUTE => self.run(task, inputs.to_vec()).ok().map(|out| {
                out.into_iter().map(|p| if task.kernel == ROUTE { Payload::phantom(p.len()) } else { p }).collect()
            }),
            _ => None,
        }
    }
}

/// One rank, roots of priorities 1, 9, 5, 5 (in id order): with one worker they run
/// 9, then the two 5s in id order, then 1. Returns the DAG and the expected order.
pub fn priorities() -> (Arc<Dag>, Vec<TaskId>) {
    priorities_on(1)
}

/// [`priorities`] in a DAG over `ranks` ranks (the tasks all on rank 0).
pub fn priorities_on(ranks: usize) -> (Arc<Dag>, Vec<TaskId>) {
    let mut b = DagBuilder::new(ranks);
    let mut ids = Vec::new();
    for (i, p) in [1u32, 9, 5, 5].into_iter().enumerate() {
        let spec = TaskSpec::new(FILL, Rank(0)).args([i as u32, 1, 0, i as u32]).flops(1e6).priority(p);
        ids.push(b.add(spec.outputs(&[8])).task);
    }
    (Arc::new(b.finish()), vec![ids[1], ids[2], ids[3], ids[0]])
}

/// Every rank fills one run-time-sized chunk (bound 64 f64s, real size `rank + 1` f64s
/// of value `rank + 1`) read by a sum on rank 0, which sees sum(r+1)^2 over r and
/// sum(r+1) values. Returns the DAG, the sized chunks and the result chunk.
pub fn sized(ranks: usize) -> (Arc<Dag>, Vec<ChunkId>, ChunkId) {
    let mut b = DagBuilder::new(ranks);
    let parts: Vec<ChunkId> = (0..ranks as u32)
        .map(|r| {
            let spec = TaskSpec::new(FILL, Rank(r)).args([r + 1, r + 1, 0, r]).flops(1e3);
            b.add(spec.bounded_outputs(&[64 * 8])).output(0)
        })
        .collect();
    let sum = b.add(TaskSpec::new(SUM, Rank(0)).args([0, 0, 0, ranks as u32]).inputs(&parts).outputs(&[16]));
    (Arc::new(b.finish()), parts, sum.output(0))
}

/// What [`sized`]'s result must hold on `ranks` ranks.
pub fn sized_expected(ranks: usize) -> [f64; 2] {
    let n = ranks as f64;
    [(1..=ranks).map(|r| (r * r) as f64).sum(), n * (n + 1.0) / 2.0]
}

/// Checks [`sized`]'s run: the result and the real sizes its trace records.
pub fn check_sized(ranks: usize, parts: &[ChunkId], result: &Payload, trace: &Trace) -> Result<(), String> {
    let got = result.as_f64();
    if got != sized_expected(ranks) {
        return Err(format!("sum and count {got:?}, expected {:?}", sized_expected(ranks)));
    }
    let sizes: Vec<(ChunkId, u32, u64, u64)> =
        trace.sizes.iter().map(|s| (s.chunk, s.rank.0, s.bytes, s.bound)).collect();
    let expected: Vec<_> = parts.iter().enumerate().map(|(r, &c)| (c, r as u32, (r as u64 + 1) * 8, 512)).collect();
    if sizes != expected {
        return Err(format!("trace sizes {sizes:?}, expected {expected:?}"));
    }
    Ok(())
}

/// A DAG placed at run time on `ranks` ranks by `policy`: rank `r` reports one slot of
/// load `10 (r + 1)` (base load 0) whose candidates are every rank; every rank decides;
/// rank `r` routes `r + 1` values `r + 1` to the shadow the decision picks; that shadow
/// doubles them and appends its rank; rank `r` combines what comes back. The decisions
/// are results, so drivers can be compared. Returns the DAG, the decision chunks (by
/// rank) and the combined chunks (by rank).
pub fn placed(ranks: usize, policy: &'static dyn PlacementPolicy) -> (Arc<Dag>, Vec<ChunkId>, Vec<ChunkId>) {
    let mut b = DagBuilder::new(ranks);
    let all: Vec<Rank> = (0..ranks as u32).map(Rank).collect();
    let reports: Vec<ChunkId> = (0..ranks as u32)
        .map(|r| b.add(TaskSpec::new(REPORT, Rank(r)).args([0, 10 * (r + 1), 0, r]).outputs(&[16])).output(0))
        .collect();
    let slots: Vec<SlotSpec> = (0..ranks as u32).map(|r| SlotSpec { report: r, candidates: &all }).collect();
    let decision = b.add_decision(policy, &reports, &slots);
    let decided: Vec<ChunkId> = all.iter().map(|&r| b.add_decide(decision, r, DECIDE).output(0)).collect();
    b.add_decision_check(decision, &decided, CHECK);
    let bounds = vec![8 * ranks as u64; ranks];
    let routed: Vec<Vec<ChunkId>> = (0..ranks as u32)
        .map(|r| {
            let spec =
                TaskSpec::new(ROUTE, Rank(r)).args([r + 1, r + 1, r, r]).inputs(&decided[r as usize..=r as usize]);
            let a = b.add(spec.bounded_outputs(&bounds));
            (0..ranks).map(|i| a.output(i)).collect()
        })
        .collect();
    let out_bounds = [8 * (ranks as u64 + 1)];
    let worked: Vec<Vec<ChunkId>> = (0..ranks)
        .map(|slot| {
            (0..ranks)
                .map(|c| {
                    let inputs = [decided[c], routed[slot][c]];
                    let spec = TaskSpec::new(WORK, Rank(c as u32)).args([0, 0, 0, 1000]).inputs(&inputs);
                    b.add(spec.bounded_outputs(&out_bounds).placed(decided[c], slot as u32)).output(0)
                })
                .collect()
        })
        .collect();
    let combined: Vec<ChunkId> = (0..ranks)
        .map(|r| {
            b.add(
                TaskSpec::new(COMBINE, Rank(r as u32))
                    .args([0, 0, 0, 2000])
                    .inputs(&worked[r])
                    .bounded_outputs(&out_bounds),
            )
            .output(0)
        })
        .collect();
    for &d in &decided {
        b.mark_result(d);
    }
    (Arc::new(b.finish()), decided, combined)
}

/// Checks [`placed`]'s results: every rank's decision is `expected` (the rank per
/// slot) and rank `r`'s combined chunk holds its values doubled, then that rank.
pub fn check_placed(
    results: &std::collections::BTreeMap<ChunkId, Payload>,
    decided: &[ChunkId],
    combined: &[ChunkId],
    expected: &[Rank],
) -> Result<(), String> {
    for &d in decided {
        let got = policies::read_decision(&results[&d]);
        if got != expected {
            return Err(format!("decision {d}: {got:?}, expected {expected:?}"));
        }
    }
    for (r, c) in combined.iter().enumerate() {
        let mut want = vec![2.0 * (r + 1) as f64; r + 1];
        want.push(expected[r].0 as f64);
        let got = results[c].as_f64();
        if got[..want.len()] != want[..] {
            return Err(format!("rank {r} combined {got:?}, expected {want:?} first"));
        }
    }
    Ok(())
}

/// A policy that decides differently on every rank (candidate `rank mod n`): the run
/// must catch it.
#[derive(Debug)]
pub struct Contrary;

impl PlacementPolicy for Contrary {
    fn name(&self) -> &'static str {
        "contrary"
    }
    fn summary(&self) -> &'static str {
        "each rank picks another candidate (a broken policy, for tests)"
    }
    fn decide(&self, input: &policies::DecisionInput<'_>, rank: Rank, out: &mut Vec<Rank>) {
        out.extend(input.slots.iter().map(|s| s.candidates[rank.index() % s.candidates.len()]));
    }
}

/// What each registered policy decides for [`placed`] on `ranks` ranks.
pub fn placed_expected(policy: &str, ranks: usize) -> Vec<Rank> {
    (0..ranks as u32)
        .map(|slot| match policy {
            "first" => Rank(0),
            "spread" => Rank(slot),
            // Heaviest slot (the last) first, each to the least-loaded rank.
            "least-loaded" => Rank(ranks as u32 - 1 - slot),
            p => panic!("no expectation for {p}"),
        })
        .collect()
}
