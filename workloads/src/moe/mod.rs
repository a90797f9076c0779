//! **moe**: one Mixture-of-Experts layer, forward (and backward with `backward`): `tokens` tokens of width `d` on every
//! rank, `experts` experts (each a 2-layer FFN with a ReLU), a gate (top-k, softmax
//! weights, soft routing) with expert popularity drawn from Zipf(`experts`, `zipf`) or
//! replayed from a routing trace file, dispatch of each token to its experts' ranks (an
//! irregular all-to-all through the strategy in use), the expert FFNs, and the combine
//! back to the token's rank weighted by the gate.
//!
//! - [`routing`]: the gate (Zipf expert popularity, softmax weights), routing trace files;
//! - [`plan`]: placement policies (`static` with capacity and dropping, `dropless`,
//!   `replicate-hot`, `dynamic`: see there for the dropping rule) and the DAG;
//! - [`kernels`]: the kernels (faer) and the one-rank reference.
//!
//! Verified: every rank's output equals the one-rank computation of the same layer on
//! the same routing (dropped assignments contributing nothing), to the last bit (the
//! bound leaves 1e-12 for nothing but safety). With `backward`, so do every rank's
//! token gradient and gate-weight gradient; each expert's weight gradient (the sum of
//! its replicas', each summed in source-rank order) equals the one-rank sum over source
//! ranks within 1e-12 of its largest entry (the grouping by replica reorders the sum).
//! Figures add `backward_to_experts_bytes` and `backward_to_tokens_bytes` (the reverse
//! all-to-alls), which `a2a_share` then covers too.
//!
//! Figures per run (`moe.<name>`): `tokens_e<i>` (tokens routed to expert `i`, before
//! dropping: the histogram), `dropped` (assignments the capacity dropped), `imbalance`
//! (max/mean over ranks of the tokens each rank's experts processed, from the real
//! batch sizes in the trace) and `gini` (their Gini coefficient), `dispatch_bytes` and
//! `combine_bytes` (data bytes of the dispatch and combine messages), `a2a_share` (the
//! share of the layer's time, first task start to last task end, during which a
//! dispatch or combine transfer was in flight).
//!
//! ```
//! use dagwire_runtime::ParamValue;
//! let info = dagwire_workloads::find("moe").unwrap();
//! let w = info.build(&[("tokens", ParamValue::Int(16)), ("experts", ParamValue::Int(4))], 2, 7).unwrap();
//! assert_eq!(w.dag().ranks(), 2);
//! ```

pub mod kernels;
pub mod plan;
pub mod routing;

pub use kernels::MoeKernels;
pub use plan::{Policy, Shape};
pub use routing::Routing;

use crate::{Verification, Workload, WorkloadInfo};
use dagwire_runtime::{ChunkId, Dag, KernelId, Kernels, MessageClass, ParamError, ParamSpec, Params, Payload, Trace};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

/// Registration.
pub const INFO: WorkloadInfo = WorkloadInfo {
    name: "moe",
    summary: "one Mixture-of-Experts layer (gate top-k with Zipf skew or a routing file, dispatch, expert FFNs, \
              combine); policies static (capacity, dropping) | dropless | replicate-hot | dynamic (run-time \
              least-loaded placement); verified against a one-rank computation",
    params,
    prepare: |params, ranks, seed| Ok(Box::new(Moe::new(params, ranks, seed)?)),
    check: |params, ranks| Moe::checked(params, ranks).map(drop),
    kernel_kinds: &plan::kernel::NAMES,
};

/// Verification bound on the largest absolute difference from the reference.
pub const ERROR_BOUND: f64 = 1e-12;

/// The parameters a sweep may set.
pub fn params() -> Vec<ParamSpec> {
    vec![
        ParamSpec::int("tokens", 1, 1 << 20, 256, "tokens per rank"),
        ParamSpec::int("d", 1, 1 << 14, 64, "token width"),
        ParamSpec::int("hidden", 1, 1 << 15, 128, "hidden width of each expert's FFN"),
        ParamSpec::int("experts", 1, 1 << 12, 8, "experts"),
        ParamSpec::int("top_k", 1, 64, 2, "experts per token (soft routing over them)"),
        ParamSpec::float(
            "zipf",
            0.0,
            8.0,
            0.0,
            "expert popularity skew: tokens draw experts from Zipf(experts, zipf), expert e with probability \
             proportional to (e+1)^-zipf (0: uniform)",
        ),
        ParamSpec::choice("policy", Policy::NAMES, "static", "expert placement policy"),
        ParamSpec::float("capacity_factor", 0.01, 1e6, 1.25, "static: batch capacity ceil(k T / E * factor)"),
        ParamSpec::int("replicas", 1, 1 << 16, 2, "replicate-hot, dynamic: replicas of each hot expert"),
        ParamSpec::int("hot", 0, 1 << 12, 0, "replicate-hot, dynamic: experts replicated; 0: max(1, experts / 8)"),
        ParamSpec::boolean(
            "backward",
            false,
            "also the backward pass: gradients through the combine, the expert FFNs and the dispatch back (the \
             reverse all-to-alls), verified against the one-rank gradients",
        ),
        ParamSpec::input(
            "routing_file",
            &[],
            "",
            "a routing trace file to replay instead of the gate (unset: the gate), relative to the sweep file's folder",
        ),
    ]
}

/// One MoE layer: its DAG, kernels and where its outputs are.
pub struct Moe {
    dag: Arc<Dag>,
    kernels: MoeKernels,
    plan_outputs: Vec<ChunkId>,
    dispatch: Vec<ChunkId>,
    combine: Vec<ChunkId>,
    backward: Option<plan::Backward>,
    dropped: u64,
}

impl Moe {
    /// Checks the parameters against each other and the rank count, then builds the layer.
    ///
    /// # Errors
    /// Names the parameter and says what is allowed.
    pub fn new(params: &Params, ranks: usize, seed: u64) -> Result<Self, ParamError> {
        let (shape, file, zipf) = Self::checked(params, ranks)?;
        let routing = match &file {
            Some(f) => f.clone(),
            None => Routing::gate(seed, ranks, shape.tokens, shape.d, shape.experts, shape.k, zipf),
        };
        let built = plan::build(&shape, &routing);
        let dropped = (0..ranks)
            .map(|r| {
                let (e, w) = routing.of_rank(r);
                plan::batches(&shape, e, w).1
            })
            .sum();
        let kernels = MoeKernels { shape, seed, zipf, file, holders: built.holders, routing };
        Ok(Moe {
            dag: Arc::new(built.dag),
            kernels,
            plan_outputs: built.outputs,
            dispatch: built.dispatch,
            combine: built.combine,
            backward: built.backward,
            dropped,
        })
    }

    /// The checks of [`Moe::new`] without building: the shape, the routing file read
    /// (if one is named) and the Zipf skew.
    ///
    /// # Errors
    /// As [`Moe::new`].
    pub fn checked(params: &Params, ranks: usize) -> Result<(Shape, Option<Routing>, f64), ParamError> {
        let int = |k| params.int(k) as usize;
        if ranks == 0 {
            return Err(ParamError::new("ranks", "0 ranks cannot run anything; use at least 1"));
        }
        let (experts, k) = (int("experts"), int("top_k"));
        if k > experts {
            return Err(ParamError::new("top_k", format!("top_k {k} is more than the {experts} experts")));
        }
        let policy = Policy::from_name(params.str("policy")).expect("a checked choice");
        let (tokens, d, hidden) = (int("tokens"), int("d"), int("hidden"));
        // A batch never holds more than a rank's tokens (each token picks an expert once).
        let capacity = (policy == Policy::Static).then(|| {
            ((k * tokens) as f64 / experts as f64 * params.float("capacity_factor")).ceil().min(tokens as f64) as usize
        });
        let replicas = int("replicas").min(ranks);
        let hot = match int("hot") {
            0 => (experts / 8).max(1),
            h => h.min(experts),
        };
        let held = if policy.placement().is_some() { experts + hot * (replicas - 1) } else { experts };
        let backward = params.bool("backward");
        bounds(ranks, tokens, d, hidden, k, held, policy.placement().is_some(), backward)?;
        let shape = Shape { ranks, tokens, d, hidden, experts, k, policy, capacity, replicas, hot, backward };
        let zipf = params.float("zipf");
        let file = match params.str("routing_file") {
            "" => None,
            path => Some(
                Routing::read(std::path::Path::new(path), ranks, tokens, experts, k)
                    .map_err(|e| ParamError::new("routing_file", e))?,
            ),
        };
        Ok((shape, file, zipf))
    }

    /// The kernels (sizes, routing, placement).
    pub fn moe_kernels(&self) -> &MoeKernels {
        &self.kernels
    }

    /// Assignments the capacity dropped.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Per rank: its output chunk.
    pub fn outputs(&self) -> &[ChunkId] {
        &self.plan_outputs
    }

    /// Tokens each rank's experts processed, from the real batch sizes a run's trace
    /// records (the FFN outputs), by rank.
    pub fn processed(&self, trace: &Trace) -> Vec<u64> {
        let mut per_rank = vec![0u64; self.dag.ranks()];
        let row = 8 * self.kernels.shape.d as u64;
        for s in trace.sizes.iter().filter(|s| self.combine.binary_search(&s.chunk).is_ok()) {
            per_rank[s.rank.index()] += s.bytes / row;
        }
        per_rank
    }
}

/// Most tasks a layer may have (about `ranks x (expert copies + 4)`), as the other
/// workloads bound theirs.
pub const MAX_TASKS: u128 = 20_000_000;
/// Most (token, expert) assignments over every rank: the routing kept in memory.
pub const MAX_ASSIGNMENTS: u128 = 1 << 22;
/// Most gate work over every rank (token values made plus the logits of the picked
/// experts: `ranks x tokens x d x (k + 1)`), done when the layer is built.
pub const MAX_GATE_WORK: u128 = 1 << 30;
/// Most values of one expert's weights (`2 x d x hidden`).
pub const MAX_EXPERT_VALUES: u128 = 1 << 27;

/// Refuses a layer too large to build, naming the parameter to lower: `held` expert
/// copies over all ranks (experts plus the hot ones' extra replicas, an upper bound).
#[allow(clippy::too_many_arguments)]
fn bounds(
    ranks: usize,
    tokens: usize,
    d: usize,
    hidden: usize,
    k: usize,
    held: usize,
    placed: bool,
    backward: bool,
) -> Result<(), ParamError> {
    let [r, t, d, h, k, held] = [ranks, tokens, d, hidden, k, held].map(|x| x as u128);
    let forward = r * (4 + u128::from(placed)) + held + r * held + 2;
    let tasks = if backward { forward + 2 * r + held + r * held } else { forward };
    if tasks > MAX_TASKS {
        return Err(ParamError::new(
            "experts",
            format!(
                "{held} expert copies on {ranks} ranks give about {tasks} tasks, more than {MAX_TASKS}; use fewer \
                 experts (or replicas) or fewer ranks"
            ),
        ));
    }
    if r * t * k > MAX_ASSIGNMENTS {
        return Err(ParamError::new(
            "tokens",
            format!(
                "{tokens} tokens x top_k {k} on {ranks} ranks give {} assignments, more than {MAX_ASSIGNMENTS}; use \
                 fewer tokens",
                r * t * k
            ),
        ));
    }
    if r * t * d * (k + 1) > MAX_GATE_WORK {
        return Err(ParamError::new(
            "tokens",
            format!(
                "{tokens} tokens of width {d} (top_k {k}) on {ranks} ranks give {} gate values, more than \
                 {MAX_GATE_WORK}; use fewer tokens or a smaller d",
                r * t * d * (k + 1)
            ),
        ));
    }
    if 2 * d * h > MAX_EXPERT_VALUES {
        return Err(ParamError::new(
            "hidden",
            format!(
                "d {d} x hidden {h} gives {} values per expert, more than {MAX_EXPERT_VALUES}; use a smaller hidden \
                 or d",
                2 * d * h
            ),
        ));
    }
    Ok(())
}

/// Names `tokens_e<i>` for the histogram's columns, made once.
fn histogram_names(experts: usize) -> &'static [&'static str] {
    static NAMES: OnceLock<Vec<&'static str>> = OnceLock::new();
    let names = NAMES.get_or_init(|| (0..4096).map(|i| &*Box::leak(format!("tokens_e{i}").into_boxed_str())).collect());
    &names[..experts.min(names.len())]
}

/// Max over mean, and the Gini coefficient, of `values`.
pub fn imbalance(values: &[u64]) -> (f64, f64) {
    let n = values.len() as f64;
    let sum: f64 = values.iter().map(|&v| v as f64).sum();
    if sum == 0.0 {
        return (1.0, 0.0);
    }
    let max = values.iter().copied().max().unwrap_or(0) as f64;
    let mut diff = 0.0;
    for &a in values {
        for &b in values {
            diff += (a as f64 - b as f64).abs();
        }
    }
    (max / (sum / n), diff / (2.0 * n * sum))
}

/// Length of the union of `intervals`.
fn covered(mut intervals: Vec<(u64, u64)>) -> u64 {
    intervals.sort_unstable();
    let (mut total, mut end) = (0, 0);
    for (a, b) in intervals {
        if b > end {
            total += b - a.max(end);
            end = b;
        }
    }
    total
}

impl Workload for Moe {
    fn dag(&self) -> &Arc<Dag> {
        &self.dag
    }

    fn kernels(&self) -> &dyn Kernels {
        &self.kernels
    }

    fn kernel_name(&self, kernel: KernelId) -> &'static str {
        plan::kernel::name(kernel)
    }

    fn useful_flops(&self) -> f64 {
        let s = &self.kernels.shape;
        let rows: u64 = (0..s.ranks)
            .map(|r| {
                let (e, w) = self.kernels.routing.of_rank(r);
                plan::batches(s, e, w).0.iter().map(|b| b.len() as u64).sum::<u64>()
            })
            .sum();
        // The backward pass's FFN work is 2.5 times the forward's (five products to two).
        s.ffn_flops(rows as usize) * if s.backward { 3.5 } else { 1.0 }
    }

    fn verify(&self, results: &BTreeMap<ChunkId, Payload>) -> Verification {
        let reference = kernels::reference(&self.kernels);
        let mut wanted: Vec<(ChunkId, &[f64], String)> = self
            .plan_outputs
            .iter()
            .zip(&reference)
            .enumerate()
            .map(|(r, (&c, want))| (c, &want[..], format!("rank {r}'s output")))
            .collect();
        let gradients = self.backward.as_ref().map(|b| (b, kernels::reference_backward(&self.kernels)));
        if let Some((b, g)) = &gradients {
            for r in 0..self.dag.ranks() {
                wanted.push((b.dx[r], &g.dx[r], format!("rank {r}'s token gradient")));
                wanted.push((b.dgate[r], &g.dgate[r], format!("rank {r}'s gate-weight gradient")));
            }
        }
        let fail = |detail: String| Verification {
            passed: false,
            metric: "max_abs_error",
            value: f64::INFINITY,
            bound: ERROR_BOUND,
            detail,
        };
        let mut worst = 0.0f64;
        let mut add = |e: f64| worst = if e.is_nan() { f64::INFINITY } else { worst.max(e) };
        for (c, want, what) in &wanted {
            let Some(got) = results.get(c).filter(|p| p.len() == want.len() * 8 && !p.is_phantom()) else {
                return fail(format!("{what} (chunk {c}) is missing or of the wrong size"));
            };
            got.as_f64().iter().zip(*want).for_each(|(g, w)| add((g - w).abs()));
        }
        if let Some((b, g)) = &gradients {
            // An expert's gradient is the sum of its replicas' (each summed in source-rank
            // order): the same terms as the reference's, grouped by replica, so compared
            // relative to its largest entry.
            for (e, (copies, want)) in b.dw.iter().zip(&g.dw).enumerate() {
                let mut sum = vec![0.0; want.len()];
                for c in copies {
                    let Some(got) = results.get(c).filter(|p| p.len() == want.len() * 8 && !p.is_phantom()) else {
                        return fail(format!(
                            "expert {e}'s weight gradient (chunk {c}) is missing or of the wrong size"
                        ));
                    };
                    sum.iter_mut().zip(got.as_f64()).for_each(|(a, b)| *a += b);
                }
                let scale = want.iter().fold(1.0f64, |m, w| m.max(w.abs()));
                sum.iter().zip(want).for_each(|(g, w)| add((g - w).abs() / scale));
            }
        }
        let passed = worst <= ERROR_BOUND;
        Verification {
            passed,
            metric: "max_abs_error",
            value: worst,
            bound: ERROR_BOUND,
            detail: if passed {
                String::new()
            } else {
                format!("the layer's outputs or gradients differ from the one-rank computation by up to {worst:e}")
            },
        }
    }

    fn figures(&self, trace: &Trace) -> Vec<(&'static str, f64)> {
        let hist = self.kernels.routing.histogram();
        let mut out: Vec<(&'static str, f64)> =
            histogram_names(hist.len()).iter().zip(&hist).map(|(&n, &v)| (n, v as f64)).collect();
        out.push(("dropped", self.dropped as f64));
        if !trace.sizes.is_empty() {
            let (max_mean, gini) = imbalance(&self.processed(trace));
            out.extend([("imbalance", max_mean), ("gini", gini)]);
        }
        if !trace.messages.is_empty() || trace.tasks.is_empty() {
            let bytes = |set: &[ChunkId]| -> f64 {
                let data = trace.messages.iter().filter(|m| m.class == MessageClass::Data);
                data.filter(|m| set.binary_search(&m.chunk).is_ok()).map(|m| m.bytes as f64).sum()
            };
            out.extend([("dispatch_bytes", bytes(&self.dispatch)), ("combine_bytes", bytes(&self.combine))]);
            if let Some(b) = &self.backward {
                out.extend([
                    ("backward_to_experts_bytes", bytes(&b.to_experts)),
                    ("backward_to_tokens_bytes", bytes(&b.to_tokens)),
                ]);
            }
        }
        let start = trace.tasks.iter().map(|t| t.start_ns).min();
        let end = trace.tasks.iter().map(|t| t.end_ns).max();
        if let (Some(start), Some(end)) = (start, end)
            && end > start
        {
            let within = |set: &[ChunkId], c: ChunkId| set.binary_search(&c).is_ok();
            let a2a = |c: ChunkId| {
                within(&self.dispatch, c)
                    || within(&self.combine, c)
                    || self.backward.as_ref().is_some_and(|b| within(&b.to_experts, c) || within(&b.to_tokens, c))
            };
            let spans = trace
                .transfers(|c| self.dag.chunk(c).bytes)
                .into_iter()
                .filter(|t| a2a(t.chunk))
                .filter_map(|t| Some((t.posted_ns.or(t.started_ns)?, t.completed_ns?)))
                .collect();
            out.push(("a2a_share", covered(spans) as f64 / (end - start) as f64));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dagwire_runtime::ParamValue;

    /// The backward kinds only with `backward`, `decide` and `check` only with the dynamic
    /// policy (the engine runs them).
    #[test]
    fn its_kernel_kinds_are_exactly_those_its_dag_runs() {
        use ParamValue::{Bool, Int, Str};
        let small = [("tokens", Int(16)), ("d", Int(4)), ("hidden", Int(8)), ("experts", Int(4))];
        let backward: Vec<(&str, ParamValue)> = small.iter().cloned().chain([("backward", Bool(true))]).collect();
        let dynamic: Vec<(&str, ParamValue)> =
            small.iter().cloned().chain([("policy", Str("dynamic".into()))]).collect();
        crate::testing::assert_kernel_kinds_are_the_dags(&INFO, &[(&backward, 2), (&dynamic, 2)]);
    }

    #[test]
    fn imbalance_and_gini_of_known_loads() {
        assert_eq!(imbalance(&[5, 5, 5, 5]), (1.0, 0.0));
        let (m, g) = imbalance(&[0, 0, 0, 8]);
        assert_eq!(m, 4.0);
        assert!((g - 0.75).abs() < 1e-12);
        assert_eq!(covered(vec![(0, 4), (2, 6), (8, 9)]), 7);
    }
}
