//! The DAG of data-parallel training: per step and rank, a forward task, backward
//! tasks layer by layer (last layer first, as autograd runs), gradient buckets packed
//! as soon as their layers' gradients exist, each bucket's all-reduce, and one
//! optimiser step per bucket.
//!
//! **Buckets** (as PyTorch DDP's `bucket_cap_mb`): layers in backward order are added
//! to the open bucket, which closes once it holds at least `bucket_bytes` of gradient;
//! so the first bucket's all-reduce starts while earlier layers still run backward.
//!
//! **All-reduce through the strategy** (`allreduce = "strategy"`): the bucket vector is
//! cut into `p` blocks ([`block_range`]). A ring reduce-scatter of `p - 1` point-to-point
//! steps (step `t` on rank `r` adds its own block `(r - t) mod p` to the partial sum from
//! rank `r - 1` and hands it on) leaves the sum of block `(r + 1) mod p` on rank `r`,
//! summed in the fixed order `v_b + v_(b+1) + ... + v_(b-1)`; every rank's optimiser
//! step then reads all `p` reduced blocks (the all-gather, `p - 1` transfers of each
//! block, which a strategy moves as sends, puts or one collective). Every transfer is
//! a chunk the strategy in use moves, so eager, rendezvous, batched and rma are
//! compared on training too.
//!
//! **All-reduce as a collective** (`allreduce = "ring" | "recursive-doubling" | "tree" |
//! "native"`): each rank's bucket vector is the input of a collective task
//! ([`DagBuilder::add_collective`]) that the driver's collective layer sums with that
//! algorithm (`native`: the driver's own, MPI_Iallreduce on the mpi driver, the ring
//! elsewhere); the optimiser step reads the summed vector. The strategy moves nothing.

use super::model::Config;
use dagwire_runtime::collective::{AllReduceAlgorithm, CollectiveKind, DType, ReduceOp, block_range};
use dagwire_runtime::{ChunkId, Dag, DagBuilder, KernelId, Rank, TaskSpec};

/// The kernels, with their [`KernelId`] numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A layer's initial state (`args = [rank, layer]`).
    Init = 0,
    /// The forward pass (`[step, rank]`).
    Forward = 1,
    /// Backward through one layer (`[step, rank, layer]`).
    Backward = 2,
    /// Concatenates a bucket's gradients (`[step, rank, bucket]`).
    Pack = 3,
    /// One reduce-scatter step (`[step, rank, bucket, t]`).
    Reduce = 4,
    /// The optimiser step of a bucket's layers (`[step, rank, bucket]`).
    Step = 5,
    /// A bucket's all-reduce as a collective task (`[step, rank, bucket]`): no kernel runs.
    AllReduce = 6,
}

impl Kind {
    /// All kernels, in id order.
    pub const ALL: [Kind; 7] =
        [Kind::Init, Kind::Forward, Kind::Backward, Kind::Pack, Kind::Reduce, Kind::Step, Kind::AllReduce];

    /// The id tasks carry.
    pub fn id(self) -> KernelId {
        KernelId(self as u16)
    }

    /// The kernel with this id, if any.
    pub fn from_id(id: KernelId) -> Option<Kind> {
        Kind::ALL.get(id.0 as usize).copied()
    }

    /// Names for traces, in id order: the workload's kernel kinds.
    pub const NAMES: [&'static str; 7] = ["init", "forward", "backward", "pack", "reduce", "step", "allreduce"];

    /// Name for traces.
    pub fn name(self) -> &'static str {
        Kind::NAMES[self as usize]
    }
}

/// The layers of each bucket, in backward order (the last layer first), for gradients
/// of `params` parameters per layer and buckets of at least `bucket_bytes` (the last
/// one may be smaller).
///
/// ```
/// use dagwire_workloads::dp::plan::buckets;
/// // Layers of 100, 300 and 50 parameters (800, 2400 and 400 bytes).
/// assert_eq!(buckets(&[100, 300, 50], 1000), vec![vec![2, 1], vec![0]]);
/// assert_eq!(buckets(&[100, 300, 50], 1), vec![vec![2], vec![1], vec![0]]);
/// assert_eq!(buckets(&[100, 300, 50], 1 << 30), vec![vec![2, 1, 0]]);
/// ```
pub fn buckets(params: &[usize], bucket_bytes: u64) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    let (mut open, mut bytes) = (Vec::new(), 0u64);
    for l in (0..params.len()).rev() {
        open.push(l);
        bytes += params[l] as u64 * 8;
        if bytes >= bucket_bytes {
            out.push(std::mem::take(&mut open));
            bytes = 0;
        }
    }
    if !open.is_empty() {
        out.push(open);
    }
    out
}

/// The built DAG and where its results are.
pub struct Plan {
    /// The DAG.
    pub dag: Dag,
    /// `[rank][layer]`: the chunk holding each replica's final state.
    pub states: Vec<Vec<ChunkId>>,
    /// `[step][rank]`: the chunk holding each rank's summed loss of each step.
    pub losses: Vec<Vec<ChunkId>>,
    /// The buckets.
    pub buckets: Vec<Vec<usize>>,
}

/// How a bucket's gradients are summed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduction {
    /// A ring reduce-scatter of the strategy's transfers, the all-gather as reads.
    Strategy,
    /// A collective task of the driver's collective layer with this algorithm.
    Collective(AllReduceAlgorithm),
}

impl Reduction {
    /// Names accepted by the `allreduce` parameter.
    pub const NAMES: &'static [&'static str] = &["strategy", "ring", "recursive-doubling", "tree", "native"];

    /// Parses a name of [`Reduction::NAMES`] (`native` is the ring in the join, which
    /// the mpi driver with `collectives = "native"` hands to MPI_Iallreduce).
    ///
    /// ```
    /// use dagwire_runtime::collective::AllReduceAlgorithm;
    /// use dagwire_workloads::dp::plan::Reduction;
    /// assert_eq!(Reduction::from_name("tree"), Some(Reduction::Collective(AllReduceAlgorithm::BinomialTree)));
    /// assert_eq!(Reduction::from_name("strategy"), Some(Reduction::Strategy));
    /// ```
    pub fn from_name(name: &str) -> Option<Reduction> {
        match name {
            "strategy" => Some(Reduction::Strategy),
            "native" => Some(Reduction::Collective(AllReduceAlgorithm::Ring)),
            other => AllReduceAlgorithm::from_name(other).map(Reduction::Collective),
        }
    }
}

/// Tasks [`build`] adds (to refuse oversized DAGs before building).
pub fn task_count(c: &Config, steps: usize, buckets: usize, reduction: Reduction) -> usize {
    let per_bucket = match reduction {
        Reduction::Strategy => 2 + c.ranks,
        Reduction::Collective(_) => 3,
    };
    c.ranks * (c.layers() + steps * (1 + c.layers() + buckets * per_bucket))
}

/// Builds `steps` steps of training for `c` with `buckets`, summing gradients by `reduction`.
pub fn build(c: &Config, steps: usize, buckets: Vec<Vec<usize>>, reduction: Reduction) -> Plan {
    let (p, layers) = (c.ranks, c.layers());
    let mut dag = DagBuilder::new(p);
    let bytes = |len: usize| len as u64 * 8;
    let mut states: Vec<Vec<ChunkId>> = (0..p)
        .map(|r| {
            (0..layers)
                .map(|l| {
                    let spec = TaskSpec::new(Kind::Init.id(), Rank(r as u32)).args([r as u32, l as u32, 0, 0]);
                    dag.add(spec.outputs(&[bytes(c.state_len(l))])).output(0)
                })
                .collect()
        })
        .collect();
    let mut losses = Vec::with_capacity(steps);
    let fwd_flops: f64 = (0..layers).map(|l| 2.0 * (c.params(l) * c.batch) as f64).sum();
    for s in 0..steps {
        // Priorities: later steps after earlier ones; within a step, backward before
        // the reduce-scatter steps, which go before optimiser steps.
        let base = ((steps - s) * 4) as u32;
        let mut step_losses = Vec::with_capacity(p);
        // grads[r][l], then each bucket's vector per rank.
        let mut grads = vec![vec![None; layers]; p];
        let mut vectors: Vec<Vec<ChunkId>> = vec![Vec::with_capacity(buckets.len()); p];
        for r in 0..p {
            let owner = Rank(r as u32);
            let fwd_out = [bytes(c.acts_len()), 8];
            let fwd = TaskSpec::new(Kind::Forward.id(), owner)
                .inputs(&states[r])
                .outputs(&fwd_out)
                .flops(fwd_flops)
                .priority(base + 3)
                .args([s as u32, r as u32, 0, 0]);
            let fwd = dag.add(fwd);
            step_losses.push(fwd.output(1));
            let mut delta = None;
            let mut next_bucket = 0;
            for l in (0..layers).rev() {
                let mut inputs = vec![fwd.output(0), states[r][l]];
                inputs.extend(delta);
                let outs = [bytes(c.params(l)), bytes(c.widths[l] * c.batch)];
                let flops = 2.0 * (c.params(l) * c.batch) as f64 * if l > 0 { 2.0 } else { 1.0 };
                let spec = TaskSpec::new(Kind::Backward.id(), owner)
                    .inputs(&inputs)
                    .outputs(&outs[..if l > 0 { 2 } else { 1 }])
                    .flops(flops)
                    .priority(base + 3)
                    .args([s as u32, r as u32, l as u32, 0]);
                let added = dag.add(spec);
                grads[r][l] = Some(added.output(0));
                delta = (l > 0).then(|| added.output(1));
                // A bucket is packed as soon as its last layer (in backward order) is done.
                if buckets[next_bucket].last() == Some(&l) {
                    let bucket = &buckets[next_bucket];
                    let ins: Vec<ChunkId> = bucket.iter().map(|&x| grads[r][x].expect("backward ran")).collect();
                    let len: usize = bucket.iter().map(|&x| c.params(x)).sum();
                    let out = [bytes(len)];
                    let spec = TaskSpec::new(Kind::Pack.id(), owner)
                        .inputs(&ins)
                        .outputs(&out)
                        .priority(base + 2)
                        .args([s as u32, r as u32, next_bucket as u32, 0]);
                    vectors[r].push(dag.add(spec).output(0));
                    next_bucket += 1;
                }
            }
        }
        // Each bucket's reduction, then the optimiser steps.
        let mut new_states = states.clone();
        for (k, bucket) in buckets.iter().enumerate() {
            let len: usize = bucket.iter().map(|&x| c.params(x)).sum();
            let reduced = match reduction {
                Reduction::Strategy => ring_reduce_scatter(&mut dag, &vectors, k, len, s, base),
                Reduction::Collective(algorithm) => {
                    let kind = CollectiveKind::AllReduce { op: ReduceOp::Sum, dtype: DType::F64, algorithm };
                    (0..p)
                        .map(|r| {
                            let (input, output) = ([vectors[r][k]], [bytes(len)]);
                            let spec = TaskSpec::new(Kind::AllReduce.id(), Rank(r as u32))
                                .inputs(&input)
                                .outputs(&output)
                                .flops(len as f64)
                                .priority(base + 2)
                                .args([s as u32, r as u32, k as u32, 0]);
                            vec![dag.add_collective(spec, kind.clone()).output(0)]
                        })
                        .collect()
                }
            };
            for r in 0..p {
                let mut inputs: Vec<ChunkId> = bucket.iter().map(|&l| states[r][l]).collect();
                inputs.extend(&reduced[r]);
                let outs: Vec<u64> = bucket.iter().map(|&l| bytes(c.state_len(l))).collect();
                let spec = TaskSpec::new(Kind::Step.id(), Rank(r as u32))
                    .inputs(&inputs)
                    .outputs(&outs)
                    .flops(4.0 * len as f64)
                    .priority(base + 1)
                    .args([s as u32, r as u32, k as u32, 0]);
                let added = dag.add(spec);
                for (x, &l) in bucket.iter().enumerate() {
                    new_states[r][l] = added.output(x);
                }
            }
        }
        states = new_states;
        losses.push(step_losses);
    }
    Plan { dag: dag.finish(), states, losses, buckets }
}

/// Bucket `k`'s ring reduce-scatter of `p - 1` transfer steps over the ranks' `vectors`;
/// returns, for each rank, the reduced blocks its optimiser step reads (all `p`, in order).
fn ring_reduce_scatter(
    dag: &mut DagBuilder,
    vectors: &[Vec<ChunkId>],
    k: usize,
    len: usize,
    s: usize,
    base: u32,
) -> Vec<Vec<ChunkId>> {
    let p = vectors.len();
    let bytes = |len: usize| len as u64 * 8;
    // partial[r]: what rank r produced at the previous ring step.
    let mut partial: Vec<Option<ChunkId>> = vec![None; p];
    for t in 0..p {
        let mut next = vec![None; p];
        for (r, slot) in next.iter_mut().enumerate() {
            let block = (r + p - t % p) % p;
            let mut inputs = vec![vectors[r][k]];
            inputs.extend(partial[(r + p - 1) % p]);
            let out = [bytes(block_range(len, p, block).len())];
            let spec = TaskSpec::new(Kind::Reduce.id(), Rank(r as u32))
                .inputs(&inputs)
                .outputs(&out)
                .flops(if t > 0 { block_range(len, p, block).len() as f64 } else { 0.0 })
                .priority(base + 2)
                .args([s as u32, r as u32, k as u32, t as u32]);
            *slot = Some(dag.add(spec).output(0));
        }
        partial = next;
    }
    // After step p - 1, rank r holds block (r + 1) mod p: block b lives on rank b - 1.
    let reduced: Vec<ChunkId> = (0..p).map(|b| partial[(b + p - 1) % p].expect("ring ran")).collect();
    vec![reduced; p]
}
