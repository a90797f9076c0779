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
//! With `backward` (`moe.backward = true`), from a seeded upstream gradient `dY` of
//! every rank's output: `combine-backward(r)` makes each batch's output gradient (its
//! tokens' `dY` rows times their gate weights) and the gate weights' gradients
//! (`dY . y` per kept assignment, 0 for a dropped one); the output gradients go to the
//! experts' ranks (the reverse of the combine); `ffn-backward(r, e, c)` on the rank that
//! ran the batch forward (placed as the forward was) gives the batch's input gradient
//! and its expert-weight gradient; the input gradients come back to the tokens' ranks
//! (the reverse of the dispatch), where `dispatch-backward(r)` sums them per token;
//! `weight-gradient(e, c)` sums replica `c`'s expert-weight gradients in source-rank
//! order (an expert's gradient is the sum over its replicas).
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
    /// Backward of the combine on a token's rank: the upstream gradient of its outputs,
    /// each expert batch's output gradient (gate weight times it) and the gate weights'
    /// gradients.
    pub const COMBINE_BACKWARD: KernelId = KernelId(7);
    /// Backward of one expert's FFN over one batch: the batch's input gradient and the
    /// expert weights' gradient from it.
    pub const FFN_BACKWARD: KernelId = KernelId(8);
    /// Sums an expert replica's weight gradients over the source ranks, in rank order.
    pub const WEIGHT_GRADIENT: KernelId = KernelId(9);
    /// Backward of the dispatch on a token's rank: sums its tokens' input gradients.
    pub const DISPATCH_BACKWARD: KernelId = KernelId(10);
    /// Names, by number.
    pub const NAMES: [&str; 11] = [
        "moe-gate",
        "moe-weights",
        "moe-dispatch",
        "moe-ffn",
        "moe-combine",
        "decide",
        "check",
        "moe-combine-backward",
        "moe-ffn-backward",
        "moe-weight-gradient",
        "moe-dispatch-backward",
    ];
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
    /// The backward pass too (`moe.backward`).
    pub backward: bool,
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
    /// The backward pass's results, when built.
    pub backward: Option<Backward>,
}

/// Where the backward pass's results are.
#[derive(Debug, Default)]
pub struct Backward {
    /// Per rank: the gradient of its tokens (`tokens x d`).
    pub dx: Vec<ChunkId>,
    /// Per rank: the gradient of its gate weights (`tokens x k`, dropped ones 0).
    pub dgate: Vec<ChunkId>,
    /// Per expert, per holder (as [`Plan::holders`]): that replica's weight gradient
    /// (`dW1` then `dW2`, as the weights); the expert's gradient is their sum.
    pub dw: Vec<Vec<ChunkId>>,
    /// Output gradients on their way to the experts (sorted): the reverse of the combine.
    pub to_experts: Vec<ChunkId>,
    /// Input gradients on their way back to the tokens (sorted): the reverse of the dispatch.
    pub to_tokens: Vec<ChunkId>,
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
    let mut bw = Building::default();
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
        if shape.backward {
            let first_x = dispatch.len() + 1 - back.len();
            let xs = dispatch[first_x..].to_vec();
            backward_of_rank(&mut b, shape, r, &holders, &per_rank[r], &back, &xs, &weights, &decided, &mut bw);
        }
    }
    if shape.backward {
        add_weight_gradients(&mut b, shape, &holders, &mut bw);
    }
    dispatch.sort_unstable();
    combine.sort_unstable();
    let backward = shape.backward.then(|| {
        bw.to_experts.sort_unstable();
        bw.to_tokens.sort_unstable();
        Backward { dx: bw.dx, dgate: bw.dgate, dw: bw.dw, to_experts: bw.to_experts, to_tokens: bw.to_tokens }
    });
    Plan { dag: b.finish(), outputs, dispatch, combine, holders, decided, backward }
}

/// The backward pass as it is built: per expert and holder, the weight-gradient parts
/// of every source rank (in rank order) until they are summed.
#[derive(Default)]
struct Building {
    dx: Vec<ChunkId>,
    dgate: Vec<ChunkId>,
    dw: Vec<Vec<ChunkId>>,
    parts: Vec<Vec<Vec<ChunkId>>>,
    to_experts: Vec<ChunkId>,
    to_tokens: Vec<ChunkId>,
}

/// Rank `r`'s backward: the combine's backward on `r` (`back`: its gate output then the
/// expert outputs, as the combine reads them), each batch's FFN backward on the rank
/// that ran its forward (reading the same batch `xs`, placed as the forward was), and
/// the dispatch's backward on `r`.
#[allow(clippy::too_many_arguments)]
fn backward_of_rank(
    b: &mut DagBuilder,
    shape: &Shape,
    r: usize,
    holders: &[Vec<Rank>],
    batches: &[Vec<(u32, f64)>],
    back: &[ChunkId],
    xs: &[ChunkId],
    weights: &[Vec<ChunkId>],
    decided: &[ChunkId],
    bw: &mut Building,
) {
    use kernel::*;
    let (d, e_n) = (shape.d, shape.experts);
    if bw.parts.is_empty() {
        bw.parts = holders.iter().map(|h| vec![Vec::new(); h.len()]).collect();
    }
    let bound = 8 * (shape.capacity.unwrap_or(shape.tokens) * d) as u64;
    let copies = xs.len();
    let mut bounds = vec![bound; copies];
    bounds.push(8 * (shape.tokens * shape.k) as u64);
    let grads = b.add(
        TaskSpec::new(COMBINE_BACKWARD, Rank(r as u32))
            .args([r as u32, 0, 0, 0])
            .flops((4 * shape.tokens * shape.k * d) as f64)
            .inputs(back)
            .bounded_outputs(&bounds),
    );
    bw.dgate.push(grads.output(copies));
    let mut into_tokens = vec![back[0]];
    let mut at = 0;
    for (e, hs) in holders.iter().enumerate() {
        let rows = batches[e].len();
        for (i, &c) in hs.iter().enumerate() {
            let dz = grads.output(at);
            bw.to_experts.push(dz);
            let mut inputs = Vec::new();
            if hs.len() > 1 {
                inputs.push(decided[c.index()]);
            }
            inputs.extend([weights[e][i], xs[at], dz]);
            let mut spec = TaskSpec::new(FFN_BACKWARD, c)
                .args([r as u32, e as u32, rows as u32, 0])
                .flops(2.5 * shape.ffn_flops(rows))
                .priority(rows as u32)
                .inputs(&inputs);
            if hs.len() > 1 {
                spec = spec.placed(decided[c.index()], (r * e_n + e) as u32);
            }
            let t = b.add(spec.bounded_outputs(&[bound, 8 * shape.weights_len() as u64]));
            bw.to_tokens.push(t.output(0));
            into_tokens.push(t.output(0));
            bw.parts[e][i].push(t.output(1));
            at += 1;
        }
    }
    let out_bytes = [8 * (shape.tokens * d) as u64];
    let dx = b.add(
        TaskSpec::new(DISPATCH_BACKWARD, Rank(r as u32))
            .args([r as u32, 0, 0, 0])
            .flops((shape.tokens * shape.k * d) as f64)
            .inputs(&into_tokens)
            .outputs(&out_bytes),
    );
    bw.dx.push(dx.output(0));
}

/// Each expert replica's weight gradient: its parts summed in source-rank order.
fn add_weight_gradients(b: &mut DagBuilder, shape: &Shape, holders: &[Vec<Rank>], bw: &mut Building) {
    let bytes = [8 * shape.weights_len() as u64];
    bw.dw = holders
        .iter()
        .enumerate()
        .map(|(e, hs)| {
            hs.iter()
                .enumerate()
                .map(|(i, &c)| {
                    let parts = &bw.parts[e][i];
                    let spec = TaskSpec::new(kernel::WEIGHT_GRADIENT, c)
                        .args([e as u32, 0, 0, 0])
                        .flops((parts.len() * shape.weights_len()) as f64)
                        .inputs(parts)
                        .outputs(&bytes);
                    b.add(spec).output(0)
                })
                .collect()
        })
        .collect();
}
