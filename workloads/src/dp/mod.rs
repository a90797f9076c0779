//! **dp-train**: data-parallel training of a small MLP (ReLU, softmax cross-entropy)
//! by SGD with momentum on a seeded synthetic classification set sharded across ranks.
//!
//! - [`model`]: the model, the data and the arithmetic of a step (faer);
//! - [`plan`]: the DAG per step (forward, backward last layer first, bucketed gradient
//!   all-reduce, optimiser step) and the bucketing rule;
//! - [`kernels`]: the tasks' kernels;
//! - [`reference`]: the same training in one process, the result to match.
//!
//! Verification: every rank's final weights and every step's loss equal, bit for bit,
//! the plain single-process training of [`reference`] that folds the ranks' gradients
//! in the ring's fixed order (with 1 rank that is ordinary training: no reduction at
//! all), so the replicas are identical. With `allreduce` a collective algorithm the sums
//! associate in that algorithm's order, so the replicas must be bit-identical to each
//! other and within [`COLLECTIVE_TOLERANCE`] (relative) of the reference; and, for runs of at least [`LOSS_MIN_STEPS`]
//! steps, the mean loss of the last quarter of the steps is below [`LOSS_FRACTION`] of
//! the first step's (a step's loss is its global batch's mean; one batch is noisy).
//! With the defaults (mlp-small, 20 steps, batch 32, lr 0.3, momentum 0.9) the loss
//! falls from about 2.4 to about 1.6 on 2 ranks.
//!
//! Figures: `bucket_count`, `step_us` (makespan per step), `exposed_comm_share` (the share of the
//! run in which a rank computes nothing, mean over ranks), `busbw_gbps` (nccl-tests'
//! bus bandwidth of the all-reduces: bucket bytes over the time from the last rank's
//! pack to the last rank's optimiser step, times `2 (p - 1) / p`) and `loss_ratio`.
//!
//! ```
//! use dagwire_runtime::ParamValue;
//! let info = dagwire_workloads::find("dp-train").unwrap();
//! let w = info.build(&[("steps", ParamValue::Int(2)), ("batch", ParamValue::Int(4))], 2, 7).unwrap();
//! assert_eq!(w.dag().ranks(), 2);
//! ```

pub mod kernels;
pub mod model;
pub mod plan;

pub use kernels::DpKernels;
pub use model::Config;
pub use plan::Kind;

use crate::{Verification, Workload, WorkloadInfo};
use dagwire_runtime::collective::block_range;
use dagwire_runtime::{ChunkId, Dag, KernelId, Kernels, ParamError, ParamSpec, Params, Payload, Trace};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Registration.
pub const INFO: WorkloadInfo = WorkloadInfo {
    name: "dp-train",
    summary: "data-parallel MLP training (SGD with momentum), bucketed gradient all-reduce (the strategy's \
              transfers or the driver's collective); verified against one-process training, loss must fall",
    params,
    prepare: |params, ranks, seed| Ok(Box::new(DpTrain::new(params, ranks, seed)?)),
    check: |params, ranks| DpTrain::checked(params, ranks, 0).map(drop),
    kernel_kinds: &plan::Kind::NAMES,
};

/// Model presets: name and layer widths (input first).
pub const MODELS: &[(&str, &[usize])] = &[
    ("mlp-small", &[32, 64, 64, 10]),
    ("mlp-medium", &[256, 1024, 1024, 10]),
    // 12.6 M parameters, about a d = 1024 transformer block's 12 d^2, for communication studies.
    ("transformer-block-like", &[1024, 4096, 1024, 2048, 1024]),
];

/// The last quarter's mean loss must be below this fraction of the first step's.
pub const LOSS_FRACTION: f64 = 0.8;

/// With a collective all-reduce: the largest relative difference (`|got - want| / (1 +
/// |want|)`) allowed from one-process training, whose sums associate in another order.
/// Reassociating a sum of a few f64 values changes it by a few ulps (about 1e-16);
/// 20 steps of momentum SGD amplify that to about 1e-13 here, so 1e-9 leaves room and
/// still catches any lost or corrupted gradient (which moves weights by 1e-3 or more).
pub const COLLECTIVE_TOLERANCE: f64 = 1e-9;

/// Runs shorter than this are not held to [`LOSS_FRACTION`].
pub const LOSS_MIN_STEPS: usize = 20;

/// Largest DAG `prepare` builds.
pub const MAX_TASKS: usize = 20_000_000;

/// The parameters a sweep may set.
pub fn params() -> Vec<ParamSpec> {
    vec![
        ParamSpec::text(
            "model",
            "mlp-small",
            "mlp-small | mlp-medium | transformer-block-like, or widths \"32,64,10\"",
        ),
        ParamSpec::int("steps", 1, 100_000, 20, "training steps"),
        ParamSpec::int("batch", 1, 1 << 20, 32, "samples per rank per step"),
        ParamSpec::int("samples", 1, 1 << 30, 4096, "samples in the data set"),
        ParamSpec::float("lr", 0.0, 10.0, 0.3, "learning rate"),
        ParamSpec::float("momentum", 0.0, 1.0, 0.9, "SGD momentum"),
        ParamSpec::float(
            "bucket_mb",
            0.0,
            1e6,
            25.0,
            "gradient bucket size, MB of 2^20 bytes (PyTorch DDP's bucket_cap_mb)",
        ),
        ParamSpec::choice(
            "allreduce",
            plan::Reduction::NAMES,
            "strategy",
            "strategy: ring reduce-scatter of the strategy's transfers; ring | recursive-doubling | tree: the \
             driver's collective layer with that algorithm (the strategy moves nothing); native: the driver's own \
             (MPI_Iallreduce on mpi with collectives = native, the ring elsewhere)",
        ),
    ]
}

/// One training run: its DAG, kernels and result chunks.
pub struct DpTrain {
    dag: Arc<Dag>,
    kernels: DpKernels,
    steps: usize,
    states: Vec<Vec<ChunkId>>,
    losses: Vec<Vec<ChunkId>>,
    reduction: plan::Reduction,
}

/// What [`DpTrain::checked`] finds: configuration, steps, buckets, reduction.
pub type Checked = (Config, usize, Vec<Vec<usize>>, plan::Reduction);

/// The widest layer `model` may have.
pub const MAX_WIDTH: usize = 1 << 16;

/// Parses `model`: a preset or comma-separated widths.
fn widths(model: &str) -> Result<Vec<usize>, ParamError> {
    if let Some((_, w)) = MODELS.iter().find(|(n, _)| *n == model) {
        return Ok(w.to_vec());
    }
    let parsed: Option<Vec<usize>> =
        model.split(',').map(|w| w.trim().parse().ok().filter(|&w| w > 0 && w <= MAX_WIDTH)).collect();
    match parsed {
        Some(w) if w.len() >= 2 && w.len() <= 64 => Ok(w),
        _ => Err(ParamError::new(
            "model",
            format!(
                "model {model:?} is neither a preset ({}) nor 2 to 64 widths of 1..={MAX_WIDTH} like \"32,64,10\"",
                MODELS.iter().map(|m| m.0).collect::<Vec<_>>().join(", ")
            ),
        )),
    }
}

impl DpTrain {
    /// Checks the parameters against the rank count and builds the DAG.
    ///
    /// # Errors
    /// Names the parameter (`model`, `ranks`, `steps`) and says what is allowed.
    pub fn new(params: &Params, ranks: usize, seed: u64) -> Result<Self, ParamError> {
        let (config, steps, buckets, reduction) = Self::checked(params, ranks, seed)?;
        let built = plan::build(&config, steps, buckets.clone(), reduction);
        Ok(DpTrain {
            dag: Arc::new(built.dag),
            kernels: DpKernels { config, buckets },
            steps,
            states: built.states,
            losses: built.losses,
            reduction,
        })
    }

    /// The checks of [`DpTrain::new`] without building: the configuration, steps,
    /// buckets and reduction.
    ///
    /// # Errors
    /// As [`DpTrain::new`].
    pub fn checked(params: &Params, ranks: usize, seed: u64) -> Result<Checked, ParamError> {
        if ranks == 0 {
            return Err(ParamError::new("ranks", "0 ranks cannot run anything; use at least 1"));
        }
        let config = Config {
            widths: widths(params.str("model"))?,
            batch: params.int("batch") as usize,
            samples: params.int("samples") as usize,
            ranks,
            lr: params.float("lr"),
            momentum: params.float("momentum"),
            seed,
        };
        let steps = params.int("steps") as usize;
        let bucket_bytes = (params.float("bucket_mb") * (1u64 << 20) as f64) as u64;
        let sizes: Vec<usize> = (0..config.layers()).map(|l| config.params(l)).collect();
        let buckets = plan::buckets(&sizes, bucket_bytes);
        let reduction = plan::Reduction::from_name(params.str("allreduce")).expect("a checked choice");
        let tasks = plan::task_count(&config, steps, buckets.len(), reduction);
        if tasks > MAX_TASKS {
            return Err(ParamError::new(
                "steps",
                format!("{steps} steps give {tasks} tasks, more than {MAX_TASKS}; use fewer"),
            ));
        }
        Ok((config, steps, buckets, reduction))
    }

    /// The buckets, layers in backward order.
    pub fn buckets(&self) -> &[Vec<usize>] {
        &self.kernels.buckets
    }

    /// The model and hyper-parameters.
    pub fn config(&self) -> &Config {
        &self.kernels.config
    }
}

/// The outcome of [`reference`]: final layer states and every step's loss per rank.
#[derive(Clone, Debug, PartialEq)]
pub struct Trained {
    /// `[layer]`: final state (`[W, b, velocities]`).
    pub states: Vec<Vec<f64>>,
    /// `[step][rank]`: the rank's summed loss.
    pub losses: Vec<Vec<f64>>,
}

/// Plain training in one process: each step computes every rank's gradients, sums each
/// bucket block by block in the ring's order (block `b`: rank `b`'s, then `b + 1`'s, ...),
/// and steps the one replica. With 1 rank it is ordinary single-process training.
pub fn reference(c: &Config, steps: usize, buckets: &[Vec<usize>]) -> Trained {
    let p = c.ranks;
    let mut states: Vec<Vec<f64>> = (0..c.layers()).map(|l| model::init_state(c, l)).collect();
    let mut losses = Vec::with_capacity(steps);
    for s in 0..steps {
        let mut grads: Vec<Vec<Vec<f64>>> = Vec::with_capacity(p);
        let mut step_losses = Vec::with_capacity(p);
        for r in 0..p {
            let views: Vec<&[f64]> = states.iter().map(Vec::as_slice).collect();
            let (acts, loss) = model::forward(c, s, r, &views);
            step_losses.push(loss);
            let mut g = vec![Vec::new(); c.layers()];
            let mut delta = None;
            for l in (0..c.layers()).rev() {
                let (grad, prev) = model::backward(c, l, &acts, &states[l], delta.as_deref());
                g[l] = grad;
                delta = prev;
            }
            grads.push(g);
        }
        for bucket in buckets {
            let vectors: Vec<Vec<f64>> =
                grads.iter().map(|g| bucket.iter().flat_map(|&l| g[l].iter().copied()).collect()).collect();
            let len = vectors[0].len();
            let mut sum = Vec::with_capacity(len);
            for b in 0..p {
                let range = block_range(len, p, b);
                let mut acc = vectors[b][range.clone()].to_vec();
                for i in 1..p {
                    model::add_into(&mut acc, &vectors[(b + i) % p][range.clone()]);
                }
                sum.extend(acc);
            }
            let mut at = 0;
            for &l in bucket {
                model::sgd_step(c, &mut states[l], &sum[at..at + c.params(l)]);
                at += c.params(l);
            }
        }
        losses.push(step_losses);
    }
    Trained { states, losses }
}

impl Workload for DpTrain {
    fn dag(&self) -> &Arc<Dag> {
        &self.dag
    }

    fn kernels(&self) -> &dyn Kernels {
        &self.kernels
    }

    fn kernel_name(&self, kernel: KernelId) -> &'static str {
        Kind::from_id(kernel).map_or("unknown", Kind::name)
    }

    fn useful_flops(&self) -> f64 {
        let c = &self.kernels.config;
        // Forward 2 P B, backward 4 P B (2 P B for the first layer), per rank and step.
        let per_sample: f64 = (0..c.layers()).map(|l| c.params(l) as f64 * if l > 0 { 6.0 } else { 4.0 }).sum();
        per_sample * (c.batch * c.ranks * self.steps) as f64
    }

    fn verify(&self, results: &BTreeMap<ChunkId, Payload>) -> Verification {
        let c = &self.kernels.config;
        // The strategy's ring sums in the reference's order: bit for bit. A collective
        // associates in its own order: within COLLECTIVE_TOLERANCE, replicas still identical.
        let bound = if self.reduction == plan::Reduction::Strategy { 0.0 } else { COLLECTIVE_TOLERANCE };
        let diff = |g: f64, w: f64| {
            if g.to_bits() == w.to_bits() {
                0.0
            } else {
                let d = (g - w).abs() / if bound == 0.0 { 1.0 } else { 1.0 + w.abs() };
                if d.is_nan() { f64::INFINITY } else { d }
            }
        };
        let failed = |detail| Verification { passed: false, metric: "max_weight_diff", value: f64::NAN, bound, detail };
        let want = reference(c, self.steps, &self.kernels.buckets);
        let fail_loss = |detail| Verification { value: f64::INFINITY, ..failed(detail) };
        let mut worst = 0.0f64;
        for (r, layers) in self.states.iter().enumerate() {
            for (l, chunk) in layers.iter().enumerate() {
                let Some(got) = results.get(chunk) else {
                    return failed(format!("rank {r}'s final state of layer {l} (chunk {chunk}) is missing"));
                };
                if got.len() != want.states[l].len() * 8 {
                    return failed(format!("rank {r}'s layer {l} state has {} bytes", got.len()));
                }
                if let Some(first) = results.get(&self.states[0][l])
                    && first.as_bytes() != got.as_bytes()
                {
                    let detail = format!("rank {r}'s layer {l} weights differ from rank 0's: the replicas diverged");
                    return Verification { value: f64::INFINITY, ..failed(detail) };
                }
                for (g, w) in got.as_f64().iter().zip(&want.states[l]) {
                    worst = worst.max(diff(*g, *w));
                }
            }
        }
        for (s, ranks) in self.losses.iter().enumerate() {
            for (r, chunk) in ranks.iter().enumerate() {
                match results.get(chunk).map(|p| p.as_f64().to_vec()) {
                    Some(v) if v.len() == 1 && diff(v[0], want.losses[s][r]) <= bound => {}
                    Some(v) => {
                        return fail_loss(format!(
                            "rank {r}'s loss at step {s} is {v:?}, one-process training gives {}",
                            want.losses[s][r]
                        ));
                    }
                    None => return fail_loss(format!("rank {r}'s loss at step {s} is missing")),
                }
            }
        }
        let mean = |s: usize| want.losses[s].iter().sum::<f64>() / c.global_batch();
        let last = self.steps - (self.steps / 4).max(1)..self.steps;
        let ratio = last.clone().map(mean).sum::<f64>() / last.len() as f64 / mean(0);
        let learns = self.steps < LOSS_MIN_STEPS || ratio < LOSS_FRACTION;
        let passed = worst <= bound && learns;
        let how =
            if bound == 0.0 { "bit for bit".to_string() } else { format!("within {worst:.1e} (bound {bound:e})") };
        let detail = if worst > bound {
            format!(
                "the replicas' weights differ from one-process training by up to {worst:e} (bound {bound:e}): a transfer or the reduction is wrong"
            )
        } else if !learns {
            format!(
                "weights match one-process training {how}, but the last quarter's loss is {ratio:.3} of the first step's (>= {LOSS_FRACTION}): raise lr or steps"
            )
        } else {
            format!(
                "all {} replicas identical and equal to one-process training {how}; last quarter's loss {ratio:.3} of the first step's {:.4}",
                c.ranks,
                mean(0)
            )
        };
        Verification { passed, metric: "max_weight_diff", value: worst, bound, detail }
    }

    fn figures(&self, trace: &Trace) -> Vec<(&'static str, f64)> {
        let c = &self.kernels.config;
        let mut out = vec![("bucket_count", self.kernels.buckets.len() as f64)];
        if trace.tasks.is_empty() {
            return out;
        }
        let end = trace.tasks.iter().map(|t| t.end_ns).max().unwrap_or(0);
        let start = trace.tasks.iter().map(|t| t.start_ns).min().unwrap_or(0);
        let span = (end - start).max(1) as f64;
        out.push(("step_us", span / self.steps as f64 / 1e3));
        // Exposed communication: the share of the run in which a rank runs no task.
        let mut per_rank: Vec<Vec<(u64, u64)>> = vec![Vec::new(); c.ranks];
        // A collective task's record spans its all-reduce: communication, not compute.
        for t in trace.tasks.iter().filter(|t| t.kernel != Kind::AllReduce.id()) {
            per_rank[t.rank.index()].push((t.start_ns, t.end_ns));
        }
        let idle: f64 = per_rank
            .iter_mut()
            .map(|iv| {
                iv.sort_unstable();
                let (mut busy, mut until) = (0u64, 0u64);
                for &(a, b) in iv.iter() {
                    let a = a.max(until);
                    if b > a {
                        busy += b - a;
                        until = b;
                    }
                }
                1.0 - busy as f64 / span
            })
            .sum();
        out.push(("exposed_comm_share", idle / c.ranks as f64));
        // Bus bandwidth: per (step, bucket), last pack end to last optimiser step start.
        if c.ranks > 1 {
            let mut spans: BTreeMap<(u32, u32), (u64, u64)> = BTreeMap::new();
            for t in &trace.tasks {
                let task = self.dag.task(t.task);
                let key = (task.args[0], task.args[2]);
                match Kind::from_id(task.kernel) {
                    Some(Kind::Pack) => {
                        spans.entry(key).or_default().0 = spans.get(&key).map_or(0, |s| s.0).max(t.end_ns)
                    }
                    Some(Kind::Step) => {
                        spans.entry(key).or_default().1 = spans.get(&key).map_or(0, |s| s.1).max(t.start_ns)
                    }
                    _ => {}
                }
            }
            let p = c.ranks as f64;
            let rates: Vec<f64> = spans
                .iter()
                .filter(|(_, (a, b))| b > a)
                .map(|(&(_, k), &(a, b))| {
                    let bytes: usize = self.kernels.buckets[k as usize].iter().map(|&l| c.params(l) * 8).sum();
                    bytes as f64 / (b - a) as f64 * 2.0 * (p - 1.0) / p
                })
                .collect();
            if !rates.is_empty() {
                out.push(("busbw_gbps", rates.iter().sum::<f64>() / rates.len() as f64));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use dagwire_runtime::ParamValue::{Int, Str};

    /// `reduce` with the strategy's ring, `allreduce` with a collective.
    #[test]
    fn its_kernel_kinds_are_exactly_those_its_dag_runs() {
        let ring: &[(&str, _)] = &[("steps", Int(1)), ("batch", Int(2))];
        let collective: &[(&str, _)] = &[("steps", Int(1)), ("batch", Int(2)), ("allreduce", Str("ring".into()))];
        crate::testing::assert_kernel_kinds_are_the_dags(&super::INFO, &[(ring, 2), (collective, 2)]);
    }
}
