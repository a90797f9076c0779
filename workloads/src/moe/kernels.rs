//! The MoE kernels (the expert FFN through faer, sequential: parallelism comes from
//! the DAG) and the one-rank reference computation the run is verified against.

use super::plan::{Shape, batches, kernel};
use super::routing::{self, Routing};
use dagwire_runtime::policies;
use dagwire_runtime::rng::{hash, unit};
use dagwire_runtime::{Kernels, Payload, Rank, Task};
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

/// Stream of the expert weights.
const EXPERT: u64 = 0x6578_7065_7274;

/// Expert `e`'s weights: `W1` (`d x hidden`) then `W2` (`hidden x d`), column-major,
/// scaled so activations stay of order one.
pub fn expert_weights(seed: u64, shape: &Shape, e: usize) -> Vec<f64> {
    let base = hash(hash(hash(seed) ^ EXPERT) ^ e as u64);
    let (s1, s2) = (2.0 / (shape.d as f64).sqrt(), 2.0 / (shape.hidden as f64).sqrt());
    let n1 = shape.d * shape.hidden;
    (0..2 * n1).map(|i| (unit(hash(base ^ i as u64)) - 0.5) * if i < n1 { s1 } else { s2 }).collect()
}

/// `relu(X W1) W2` for `rows` tokens `x` (row-major `rows x d`), as row-major `rows x d`.
pub fn ffn(shape: &Shape, weights: &[f64], x: &[f64], rows: usize) -> Vec<f64> {
    let (d, h) = (shape.d, shape.hidden);
    if rows == 0 {
        return Vec::new();
    }
    // Row-major rows x d is column-major d x rows: compute the transposes,
    // H^T = W1^T X^T (h x rows), Y^T = W2^T H^T (d x rows).
    let w1 = MatRef::from_column_major_slice(&weights[..d * h], d, h);
    let w2 = MatRef::from_column_major_slice(&weights[d * h..], h, d);
    let xt = MatRef::from_column_major_slice(x, d, rows);
    let mut hidden = vec![0.0; h * rows];
    matmul(
        MatMut::from_column_major_slice_mut(&mut hidden, h, rows),
        Accum::Replace,
        w1.transpose(),
        xt,
        1.0,
        Par::Seq,
    );
    hidden.iter_mut().for_each(|v| *v = v.max(0.0));
    let mut y = vec![0.0; d * rows];
    let ht = MatRef::from_column_major_slice(&hidden, h, rows);
    matmul(MatMut::from_column_major_slice_mut(&mut y, d, rows), Accum::Replace, w2.transpose(), ht, 1.0, Par::Seq);
    y
}

/// Adds `weight * y` to token `t`'s row of `out` for every kept (token, weight) of a
/// batch whose expert output is `y`: the combine, in one place for the run and the
/// reference.
pub fn accumulate(out: &mut [f64], d: usize, batch: &[(u32, f64)], y: &[f64]) {
    for (i, &(t, w)) in batch.iter().enumerate() {
        let row = &mut out[t as usize * d..(t as usize + 1) * d];
        row.iter_mut().zip(&y[i * d..(i + 1) * d]).for_each(|(o, v)| *o += w * v);
    }
}

/// The kernels of one layer.
#[derive(Clone, Debug)]
pub struct MoeKernels {
    /// Sizes and policy.
    pub shape: Shape,
    /// Seed of tokens, gate and experts.
    pub seed: u64,
    /// Gate prior skew.
    pub zipf: f64,
    /// A routing read from a file, used instead of the gate's.
    pub file: Option<Routing>,
    /// Per expert: the ranks holding it (the dispatch's output order).
    pub holders: Vec<Vec<Rank>>,
    /// The routing every rank's gate produces (for modelled runs).
    pub routing: Routing,
}

impl MoeKernels {
    /// Rank `r`'s routing as its gate computes it (or the file gives it).
    fn route(&self, r: usize) -> (Vec<u32>, Vec<f64>) {
        match &self.file {
            Some(f) => {
                let (e, w) = f.of_rank(r);
                (e.to_vec(), w.to_vec())
            }
            None => {
                let s = &self.shape;
                let one = Routing::gate_rank(self.seed, r, s.tokens, s.d, s.experts, s.k, self.zipf);
                (one.expert, one.weight)
            }
        }
    }

    /// The report of rank `r`'s batch sizes (base load 0, one load per expert).
    fn report(&self, experts: &[u32], weights: &[f64]) -> Payload {
        let (b, _) = batches(&self.shape, experts, weights);
        policies::write_report(0, &b.iter().map(|x| x.len() as u64).collect::<Vec<_>>())
    }

    /// The dispatch's outputs for rank `r` (`real`: the rows, else phantoms of their size).
    fn dispatch(&self, r: usize, gated: Option<&[f64]>, decision: Option<&Payload>) -> Result<Vec<Payload>, String> {
        let s = &self.shape;
        let (experts, weights) = match gated {
            Some(g) => {
                let at = s.tokens * s.d;
                let e: Vec<u32> = g[at..at + s.tokens * s.k].iter().map(|&x| x as u32).collect();
                (e, g[at + s.tokens * s.k..].to_vec())
            }
            None => {
                let (e, w) = self.routing.of_rank(r);
                (e.to_vec(), w.to_vec())
            }
        };
        let (b, _) = batches(s, &experts, &weights);
        let picks = decision.map(policies::read_decision);
        let mut out = Vec::new();
        for (e, hs) in self.holders.iter().enumerate() {
            let picked = match &picks {
                Some(p) => *p.get(r * s.experts + e).ok_or("the decision is too short")?,
                None => hs[0],
            };
            for &c in hs {
                let rows = if c == picked { b[e].len() } else { 0 };
                out.push(match gated {
                    Some(g) if rows > 0 => {
                        let mut x = Vec::with_capacity(rows * s.d);
                        for &(t, _) in &b[e] {
                            x.extend_from_slice(&g[t as usize * s.d..(t as usize + 1) * s.d]);
                        }
                        Payload::from_f64(x)
                    }
                    _ => Payload::phantom(rows * s.d * 8),
                });
            }
        }
        Ok(out)
    }
}

impl Kernels for MoeKernels {
    fn run(&self, task: &Task, inputs: Vec<Payload>) -> Result<Vec<Payload>, String> {
        let s = &self.shape;
        let [a0, a1, _, _] = task.args.map(|a| a as usize);
        match task.kernel {
            kernel::GATE => {
                let (experts, weights) = self.route(a0);
                let mut g = Vec::with_capacity(s.gated_len());
                for t in 0..s.tokens {
                    g.extend(routing::token(self.seed, a0, t, s.d));
                }
                g.extend(experts.iter().map(|&e| e as f64));
                g.extend_from_slice(&weights);
                let mut out = vec![Payload::from_f64(g)];
                if task.outputs().len() == 2 {
                    out.push(self.report(&experts, &weights));
                }
                Ok(out)
            }
            kernel::WEIGHTS => Ok(vec![Payload::from_f64(expert_weights(self.seed, s, a0))]),
            kernel::DISPATCH => {
                let gated = inputs[0].as_f64();
                if gated.len() != s.gated_len() {
                    return Err(format!(
                        "dispatch of rank {a0}: {} gate values, expected {}",
                        gated.len(),
                        s.gated_len()
                    ));
                }
                self.dispatch(a0, Some(gated), inputs.get(1))
            }
            kernel::FFN => {
                let (w, x) = (&inputs[inputs.len() - 2], &inputs[inputs.len() - 1]);
                if w.len() != 8 * s.weights_len() || x.len() % (8 * s.d) != 0 {
                    return Err(format!(
                        "ffn of expert {a1} for rank {a0}: weights {} bytes, batch {} bytes",
                        w.len(),
                        x.len()
                    ));
                }
                let rows = x.len() / (8 * s.d);
                Ok(vec![Payload::from_f64(ffn(s, w.as_f64(), x.as_f64(), rows))])
            }
            kernel::COMBINE => {
                let gated = inputs[0].as_f64();
                let at = s.tokens * s.d;
                let experts: Vec<u32> = gated[at..at + s.tokens * s.k].iter().map(|&x| x as u32).collect();
                let (b, _) = batches(s, &experts, &gated[at + s.tokens * s.k..]);
                let mut out = vec![0.0; s.tokens * s.d];
                let mut next = 1;
                for (e, hs) in self.holders.iter().enumerate() {
                    let ys = &inputs[next..next + hs.len()];
                    next += hs.len();
                    let full: Vec<&Payload> = ys.iter().filter(|y| !y.is_empty()).collect();
                    let y = match full.as_slice() {
                        [] => &[][..],
                        [y] => y.as_f64(),
                        _ => {
                            return Err(format!(
                                "combine of rank {a0}: expert {e}'s batch came back from several replicas"
                            ));
                        }
                    };
                    if y.len() != b[e].len() * s.d {
                        return Err(format!(
                            "combine of rank {a0}: expert {e} returned {} rows, its batch has {}",
                            y.len() / s.d,
                            b[e].len()
                        ));
                    }
                    accumulate(&mut out, s.d, &b[e], y);
                }
                Ok(vec![Payload::from_f64(out)])
            }
            k => Err(format!("unknown moe kernel {k:?}")),
        }
    }

    fn modelled_outputs(&self, task: &Task, inputs: &[Payload]) -> Option<Vec<Payload>> {
        let s = &self.shape;
        let r = task.args[0] as usize;
        match task.kernel {
            kernel::GATE if task.outputs().len() == 2 => {
                let (e, w) = self.routing.of_rank(r);
                Some(vec![Payload::phantom(8 * s.gated_len()), self.report(e, w)])
            }
            kernel::DISPATCH => self.dispatch(r, None, inputs.get(1)).ok(),
            kernel::FFN => Some(vec![Payload::phantom(inputs.last().map_or(0, Payload::len))]),
            _ => None,
        }
    }
}

/// The layer computed on one rank: every rank's output, with the same batches, FFN and
/// combine as the run (so a correct run matches it to the last bit).
pub fn reference(k: &MoeKernels) -> Vec<Vec<f64>> {
    let s = &k.shape;
    let weights: Vec<Vec<f64>> = (0..s.experts).map(|e| expert_weights(k.seed, s, e)).collect();
    (0..s.ranks)
        .map(|r| {
            let (experts, gate) = k.routing.of_rank(r);
            let (b, _) = batches(s, experts, gate);
            let tokens: Vec<Vec<f64>> = (0..s.tokens).map(|t| routing::token(k.seed, r, t, s.d)).collect();
            let mut out = vec![0.0; s.tokens * s.d];
            for (e, batch) in b.iter().enumerate() {
                let x: Vec<f64> = batch.iter().flat_map(|&(t, _)| tokens[t as usize].iter().copied()).collect();
                let y = ffn(s, &weights[e], &x, batch.len());
                accumulate(&mut out, s.d, batch, &y);
            }
            out
        })
        .collect()
}
