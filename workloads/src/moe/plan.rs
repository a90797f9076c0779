//! Where experts live, which tokens each expert batch holds (the capacity rule), and
//! the DAG of one MoE layer.
//!
//! # The DAG (per rank `r`)
//! `gate(r)` makes the tokens and routes them (output: tokens, experts, weights; with a
//! run-time placement policy also a report of its batch sizes); `weights(e, c)` makes
//! expert `e`'s FFN on each rank `c` holding it; `dispatch(r)` cuts the tokens into one
//! batch per expert (and per candidate rank with run-time placement: the picked one
//! full, the others empty), each a chunk sized at run time; `ffn(r, e, c)` runs expert
//! `e` on rank `c` over `r`'s batch (heaviest batches first: their priority is their
//! size); `combine(r)` sums every token's expert outputs weighted by the gate.
//!
//! # Policies
//! - `static`: expert `e` on rank `e mod R`; each (rank, expert) batch holds at most
//!   `capacity = ceil(k T / E * capacity_factor)` tokens. **Dropping rule** (GShard's):
//!   a rank fills each expert's batch with its tokens' first choices, in token order,
//!   then second choices, and so on; an assignment past the capacity is dropped and
//!   contributes nothing (the token's output is the gate-weighted sum over the experts
//!   it kept, not renormalised; a token that kept none outputs zeros).
//! - `dropless`: the same placement, no capacity (MegaBlocks): batches of any size.
//! - `replicate-hot`: the `hot` most popular experts (from the routing's histogram)
//!   get `replicas` replicas, on ranks `home + j * (R / replicas)`; every batch of a
//!   replicated expert goes to replica `source rank mod replicas` (policy `spread`).
//! - `dynamic`: the same replicas; each batch goes, at run time, to the replica rank
//!   with the least load (policy `least-loaded` over the batch sizes every rank reports
//!   after its gate: heaviest batch first, each to the least-loaded replica).

use super::routing::Routing;
use dagwire_runtime::policies;
use dagwire_runtime::{ChunkId, Dag, DagBuilder, Rank, SlotSpec, TaskSpec};

/// Kernel numbers.
pub mod kernel {
    use dagwire_runtime::KernelId;
    /// Makes and routes a rank's tokens.
    pub const GATE: KernelId = KernelId(0);
    /// Makes an expert's FFN weights.
    pub const WEIGHTS: KernelId = KernelId(1);
    /// Cuts a rank's tokens into expert batches.
    pub const DISPATCH: KernelId = KernelId(2);
    /// One expert's FFN over one batch.
    pub const FFN: KernelId = KernelId(3);
    /// Sums a rank's expert outputs weighted by the gate.
    pub const COMBINE: KernelId = KernelId(4);
    /// Run-time placement decision (run by the engine).
    pub const DECIDE: KernelId = KernelId(5);
    /// Cross-rank decision check (run by the engine).
    pub const CHECK: KernelId = KernelId(6);
    /// Names, by number.
    pub const NAMES: [&str; 7] =
        ["moe-gate", "moe-weights", "moe-dispatch", "moe-ffn", "moe-combine", "decide", "check"];
    /// The name of kernel `k`.
    pub fn name(k: KernelId) -> &'static str {
        NAMES.get(k.0 as usize).copied().unwrap_or("unknown")
    }
}

/// Placement policies (`moe.policy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Expert per rank with a capacity and dropping.
    Static,
    /// Expert per rank, no dropping.
    Dropless,
    /// Hot experts replicated, batches split between replicas by source.
    ReplicateHot,
    /// Hot experts replicated, each batch to the least-loaded replica at run time.
    Dynamic,
}

impl Policy {
    /// Names, as sweeps spell them.
    pub const NAMES: &'static [&'static str] = &["static", "dropless", "replicate-hot", "dynamic"];

    /// The policy named `name`.
    pub fn from_name(name: &str) -> Option<Policy> {
        Some(match name {
            "static" => Policy::Static,
            "dropless" => Policy::Dropless,
            "replicate-hot" => Policy::ReplicateHot,
            "dynamic" => Policy::Dynamic,
            _ => return None,
        })
    }

    /// The run-time placement policy that decides batches, if any.
    pub fn placement(self) -> Option<&'static dyn policies::PlacementPolicy> {
        match self {
            Policy::Static | Policy::Dropless => None,
            Policy::ReplicateHot => Some(&policies::Spread),
            Policy::Dynamic => Some(&policies::LeastLoaded),
        }
    }
}

/// Sizes and settings of one layer.
#[derive(Clone, Debug, PartialEq)]
pub struct Shape {
    /// Ranks.
    pub ranks: usize,
    /// Tokens per rank.
    pub tokens: usize,
    /// Token width.
    pub d: usize,
    /// FFN hidden width.
    pub hidden: usize,
    /// Experts.
    pub experts: usize,
    /// Experts per token.
    pub k: usize,
    /// Placement policy.
    pub policy: Policy,
    /// Per-batch token capacity (`static` only).
    pub capacity: Option<usize>,
    /// Replicas of each hot expert.
    pub replicas: usize,
    /// Hot experts (replicated).
    pub hot: usize,
}

impl Shape {
    /// Flops of one FFN over `rows` tokens (two products).
    pub fn ffn_flops(&self, rows: usize) -> f64 {
        4.0 * (rows * self.d * self.hidden) as f64
    }
    /// f64s of one expert's weights (`W1`: d x hidden, `W2`: hidden x d).
    pub fn weights_len(&self) -> usize {
        2 * self.d * self.hidden
    }
    /// f64s of a rank's gate output: tokens, then experts (as f64), then weights.
    pub fn gated_len(&self) -> usize {
        self.tokens * (self.d + 2 * self.k)
    }
}

/// Rank `r`'s batches: per expert, its kept (token, weight) in token order, and how
/// many assignments the capacity dropped (see the [module docs](self)).
pub fn batches(shape: &Shape, experts: &[u32], weights: &[f64]) -> (Vec<Vec<(u32, f64)>>, u64) {
    let (t_n, k) = (shape.tokens, shape.k);
    let mut kept = vec![vec![false; k]; t_n];
    let mut fill = vec![0usize; shape.experts];
    let mut dropped = 0;
    for j in 0..k {
        for (t, keep) in kept.iter_mut().enumerate() {
            let e = experts[t * k + j] as usize;
            if shape.capacity.is_none_or(|c| fill[e] < c) {
                fill[e] += 1;
                keep[j] = true;
            } else {
                dropped += 1;
            }
        }
    }
    let mut out = vec![Vec::new(); shape.experts];
    for (t, keep) in kept.iter().enumerate() {
        for j in (0..k).filter(|&j| keep[j]) {
            out[experts[t * k + j] as usize].push((t as u32, weights[t * k + j]));
        }
    }
    (out, dropped)
}

/// Which ranks hold each expert: its home `e mod R` first, then, for the `hot` most
/// popular experts of `histogram` with a replicating policy, `replicas - 1` more.
pub fn replicas(shape: &Shape, histogram: &[u64]) -> Vec<Vec<Rank>> {
    let r_n = shape.ranks;
    let mut holders: Vec<Vec<Rank>> = (0..shape.experts).map(|e| vec![Rank((e % r_n) as u32)]).collect();
    if shape.policy.placement().is_none() {
        return holders;
    }
    let mut by_heat: Vec<usize> = (0..shape.experts).collect();
    by_heat.sort_by_key(|&e| (std::cmp::Reverse(histogram[e]), e));
    let stride = (r_n / shape.replicas.max(1)).max(1);
    for &e in by_heat.iter().take(shape.hot) {
        for j in 1..shape.replicas {
            let c = Rank(((e % r_n + j * stride) % r_n) as u32);
            if !holders[e].contains(&c) {
                holders[e].push(c);
            }
        }
    }
    holders
}

/// One layer's DAG and where its pieces are.
#[derive(Debug)]
pub struct Plan {
    /// The DAG.
    pub dag: Dag,
    /// Per rank: its combined output.
    pub outputs: Vec<ChunkId>,
    /// Dispatch batches (sorted).
    pub dispatch: Vec<ChunkId>,
    /// Expert outputs on their way back (sorted).
    pub combine: Vec<ChunkId>,
    /// Per expert: the ranks holding it.
    pub holders: Vec<Vec<Rank>>,
    /// Per rank: its decision chunk (run-time placement only).
    pub decided: Vec<ChunkId>,
}

/// Builds the layer's DAG for `routing` (used for cost hints and priorities: the batch
/// sizes it implies are what the kernels will produce).
pub fn build(shape: &Shape, routing: &Routing) -> Plan {
    use kernel::*;
    let (r_n, e_n, d) = (shape.ranks, shape.experts, shape.d);
    let holders = replicas(shape, &routing.histogram());
    let mut b = DagBuilder::new(r_n);
    let placement = shape.policy.placement();
    let per_rank: Vec<Vec<Vec<(u32, f64)>>> = (0..r_n)
        .map(|r| {
            let (e, w) = routing.of_rank(r);
            batches(shape, e, w).0
        })
        .collect();
    let gated_bytes = [8 * shape.gated_len() as u64, 8 * (1 + e_n as u64)];
    let gates: Vec<(ChunkId, Option<ChunkId>)> = (0..r_n as u32)
        .map(|r| {
            let outs = if placement.is_some() { &gated_bytes[..] } else { &gated_bytes[..1] };
            let flops = (shape.tokens * d * e_n * 2) as f64;
            let g =
                b.add(TaskSpec::new(GATE, Rank(r)).args([r, 0, 0, 0]).flops(flops).priority(u32::MAX).outputs(outs));
            (g.output(0), placement.is_some().then(|| g.output(1)))
        })
        .collect();
    let mut weights = vec![Vec::new(); e_n];
    for (e, hs) in holders.iter().enumerate() {
        for &c in hs {
            let bytes = [8 * shape.weights_len() as u64];
            let w = b.add(TaskSpec::new(WEIGHTS, c).args([e as u32, 0, 0, 0]).priority(u32::MAX).outputs(&bytes));
            weights[e].push(w.output(0));
        }
    }
    let decided: Vec<ChunkId> = match placement {
        None => Vec::new(),
        Some(policy) => {
            let reports: Vec<ChunkId> = gates.iter().map(|g| g.1.expect("a report")).collect();
            let slots: Vec<SlotSpec> = (0..r_n)
                .flat_map(|r| holders.iter().map(move |h| SlotSpec { report: r as u32, candidates: h }))
                .collect();
            let decision = b.add_decision(policy, &reports, &slots);
            let decided: Vec<ChunkId> =
                (0..r_n as u32).map(|r| b.add_decide(decision, Rank(r), DECIDE).output(0)).collect();
            b.add_decision_check(decision, &decided, CHECK);
            decided
        }
    };
    let bound = 8 * (shape.capacity.unwrap_or(shape.tokens) * d) as u64;
    let (mut dispatch, mut combine, mut outputs) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..r_n {
        let mut inputs = vec![gates[r].0];
        inputs.extend(decided.get(r));
        let bounds: Vec<u64> = holders.iter().flat_map(|h| h.iter().map(|_| bound)).collect();
        let disp = b.add(
            TaskSpec::new(DISPATCH, Rank(r as u32))
                .args([r as u32, 0, 0, 0])
                .priority(u32::MAX)
                .inputs(&inputs)
                .bounded_outputs(&bounds),
        );
        let mut at = 0;
        let mut back = vec![gates[r].0];
        for (e, hs) in holders.iter().enumerate() {
            let rows = per_rank[r][e].len();
            for (i, &c) in hs.iter().enumerate() {
                let x = disp.output(at);
                at += 1;
                dispatch.push(x);
                let mut inputs = Vec::new();
                if hs.len() > 1 {
                    inputs.push(decided[c.index()]);
                }
                inputs.extend([weights[e][i], x]);
                let mut spec = TaskSpec::new(FFN, c)
                    .args([r as u32, e as u32, rows as u32, 0])
                    .flops(shape.ffn_flops(rows))
                    .priority(rows as u32)
                    .inputs(&inputs);
                if hs.len() > 1 {
                    spec = spec.placed(decided[c.index()], (r * e_n + e) as u32);
                }
                let y = b.add(spec.bounded_outputs(&[bound])).output(0);
                combine.push(y);
                back.push(y);
            }
        }
        let flops = (2 * shape.tokens * shape.k * d) as f64;
        let out_bytes = [8 * (shape.tokens * d) as u64];
        let c = b.add(
            TaskSpec::new(COMBINE, Rank(r as u32))
                .args([r as u32, 0, 0, 0])
                .flops(flops)
                .inputs(&back)
                .outputs(&out_bytes),
        );
        outputs.push(c.output(0));
    }
    dispatch.sort_unstable();
    combine.sort_unstable();
    Plan { dag: b.finish(), outputs, dispatch, combine, holders, decided }
}
