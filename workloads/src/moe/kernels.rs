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
    let hidden = relu_hidden(w1, xt);
    let mut y = vec![0.0; d * rows];
    let ht = MatRef::from_column_major_slice(&hidden, h, rows);
    matmul(MatMut::from_column_major_slice_mut(&mut y, d, rows), Accum::Replace, w2.transpose(), ht, 1.0, Par::Seq);
    y
}

/// The hidden activations `H^T = relu(W1^T X^T)` (column-major `h x rows`) of tokens
/// `xt` (column-major `d x rows`) through the first layer `w1` (`d x h`).
fn relu_hidden(w1: MatRef<'_, f64>, xt: MatRef<'_, f64>) -> Vec<f64> {
    let (h, rows) = (w1.ncols(), xt.ncols());
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
    hidden
}

/// Stream of the upstream gradient the backward pass starts from.
const UPSTREAM: u64 = 0x6772_6164;

/// The gradient arriving at token `t` of rank `r`'s output (`d` values `unit - 0.5`,
/// seeded): where the backward pass starts.
pub fn upstream(seed: u64, r: usize, t: usize, d: usize) -> Vec<f64> {
    let base = hash(hash(hash(seed) ^ UPSTREAM) ^ r as u64);
    (0..d).map(|j| unit(hash(hash(base ^ t as u64) ^ j as u64)) - 0.5).collect()
}

/// Backward of [`ffn`] for `rows` tokens `x` whose output gradient is `dz` (both
/// row-major `rows x d`): the input gradient (row-major `rows x d`) and the weights'
/// gradient (`dW1` then `dW2`, laid out as the weights). The ReLU passes gradient where
/// its output is positive.
pub fn ffn_backward(shape: &Shape, weights: &[f64], x: &[f64], dz: &[f64], rows: usize) -> (Vec<f64>, Vec<f64>) {
    let (d, h) = (shape.d, shape.hidden);
    if rows == 0 {
        return (Vec::new(), vec![0.0; shape.weights_len()]);
    }
    let w1 = MatRef::from_column_major_slice(&weights[..d * h], d, h);
    let w2 = MatRef::from_column_major_slice(&weights[d * h..], h, d);
    let xt = MatRef::from_column_major_slice(x, d, rows);
    let dzt = MatRef::from_column_major_slice(dz, d, rows);
    // Recompute the hidden activations H^T = relu(W1^T X^T) (h x rows).
    let hidden = relu_hidden(w1, xt);
    let ht = MatRef::from_column_major_slice(&hidden, h, rows);
    let mut dw = vec![0.0; shape.weights_len()];
    let (dw1, dw2) = dw.split_at_mut(d * h);
    // dW2 = H^T dZ (h x d) = H^T . (dZ^T)^T.
    matmul(MatMut::from_column_major_slice_mut(dw2, h, d), Accum::Replace, ht, dzt.transpose(), 1.0, Par::Seq);
    // dH^T = W2 dZ^T (h x rows), masked by the ReLU.
    let mut dh = vec![0.0; h * rows];
    matmul(MatMut::from_column_major_slice_mut(&mut dh, h, rows), Accum::Replace, w2, dzt, 1.0, Par::Seq);
    dh.iter_mut().zip(&hidden).for_each(|(g, &a)| *g = if a > 0.0 { *g } else { 0.0 });
    let dht = MatRef::from_column_major_slice(&dh, h, rows);
    // dW1 = X^T dH (d x h); dX^T = W1 dH^T (d x rows).
    matmul(MatMut::from_column_major_slice_mut(dw1, d, h), Accum::Replace, xt, dht.transpose(), 1.0, Par::Seq);
    let mut dx = vec![0.0; d * rows];
    matmul(MatMut::from_column_major_slice_mut(&mut dx, d, rows), Accum::Replace, w1, dht, 1.0, Par::Seq);
    (dx, dw)
}

/// The combine's backward for one batch: each kept token's output gradient times its
/// gate weight (the gradient reaching the expert's output), row-major.
pub fn output_gradient(batch: &[(u32, f64)], dy: &[Vec<f64>]) -> Vec<f64> {
    batch.iter().flat_map(|&(t, w)| dy[t as usize].iter().map(move |g| w * g)).collect()
}

/// Adds the gate weights' gradients of one batch to `dgate` (`tokens x k`): for each
/// kept token, the dot product of its output gradient and the expert's output row.
pub fn gate_gradient(
    dgate: &mut [f64],
    k: usize,
    experts: &[u32],
    e: usize,
    batch: &[(u32, f64)],
    y: &[f64],
    dy: &[Vec<f64>],
) {
    let d = dy.first().map_or(0, Vec::len);
    for (i, &(t, _)) in batch.iter().enumerate() {
        let t = t as usize;
        let j = (0..k).find(|&j| experts[t * k + j] as usize == e).expect("the token chose the expert");
        dgate[t * k + j] = dy[t].iter().zip(&y[i * d..(i + 1) * d]).map(|(a, b)| a * b).sum();
    }
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

impl MoeKernels {
    /// The combine's backward on rank `r`: `inputs` are its gate output then every
    /// expert copy's output (as the combine reads them); outputs each copy's output
    /// gradient (empty for a copy that ran nothing) then the gate weights' gradients.
    fn combine_backward(&self, r: usize, inputs: &[Payload]) -> Result<Vec<Payload>, String> {
        let s = &self.shape;
        let gated = inputs[0].as_f64();
        let at = s.tokens * s.d;
        let experts: Vec<u32> = gated[at..at + s.tokens * s.k].iter().map(|&x| x as u32).collect();
        let (b, _) = batches(s, &experts, &gated[at + s.tokens * s.k..]);
        let dy: Vec<Vec<f64>> = (0..s.tokens).map(|t| upstream(self.seed, r, t, s.d)).collect();
        let mut dgate = vec![0.0; s.tokens * s.k];
        let (mut out, mut next) = (Vec::new(), 1);
        for (e, hs) in self.holders.iter().enumerate() {
            let ys = &inputs[next..next + hs.len()];
            next += hs.len();
            let y = one_of(ys, r, e, b[e].len() * s.d)?;
            gate_gradient(&mut dgate, s.k, &experts, e, &b[e], y, &dy);
            for copy in ys {
                out.push(if copy.is_empty() || b[e].is_empty() {
                    Payload::phantom(0)
                } else {
                    Payload::from_f64(output_gradient(&b[e], &dy))
                });
            }
        }
        out.push(Payload::from_f64(dgate));
        Ok(out)
    }
}

/// The one non-empty payload of an expert's copies (or nothing), checked to hold `len`
/// values.
fn one_of(copies: &[Payload], r: usize, e: usize, len: usize) -> Result<&[f64], String> {
    let full: Vec<&Payload> = copies.iter().filter(|y| !y.is_empty()).collect();
    let y = match full.as_slice() {
        [] => &[][..],
        [y] => y.as_f64(),
        _ => return Err(format!("rank {r}: expert {e}'s batch came back from several replicas")),
    };
    if y.len() != len {
        return Err(format!("rank {r}: expert {e} returned {} values, its batch has {len}", y.len()));
    }
    Ok(y)
}

/// A batch's tokens with weight 1 (to add gradients as they are).
fn ones(batch: &[(u32, f64)]) -> Vec<(u32, f64)> {
    batch.iter().map(|&(t, _)| (t, 1.0)).collect()
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
            kernel::COMBINE_BACKWARD => self.combine_backward(a0, &inputs),
            kernel::FFN_BACKWARD => {
                let n = inputs.len();
                let (w, x, dz) = (&inputs[n - 3], &inputs[n - 2], &inputs[n - 1]);
                if x.is_empty() && dz.is_empty() {
                    return Ok(vec![Payload::phantom(0), Payload::phantom(0)]);
                }
                if w.len() != 8 * s.weights_len() || x.len() % (8 * s.d) != 0 || dz.len() != x.len() {
                    return Err(format!(
                        "ffn backward of expert {a1} for rank {a0}: weights {} bytes, batch {} bytes, gradient {} bytes",
                        w.len(),
                        x.len(),
                        dz.len()
                    ));
                }
                let rows = x.len() / (8 * s.d);
                let (dx, dw) = ffn_backward(s, w.as_f64(), x.as_f64(), dz.as_f64(), rows);
                Ok(vec![Payload::from_f64(dx), Payload::from_f64(dw)])
            }
            kernel::WEIGHT_GRADIENT => {
                let mut sum = vec![0.0; s.weights_len()];
                for part in inputs.iter().filter(|p| !p.is_empty()) {
                    if part.len() != 8 * s.weights_len() {
                        return Err(format!("weight gradient of expert {a0}: a part of {} bytes", part.len()));
                    }
                    sum.iter_mut().zip(part.as_f64()).for_each(|(a, b)| *a += b);
                }
                Ok(vec![Payload::from_f64(sum)])
            }
            kernel::DISPATCH_BACKWARD => {
                let gated = inputs[0].as_f64();
                let at = s.tokens * s.d;
                let experts: Vec<u32> = gated[at..at + s.tokens * s.k].iter().map(|&x| x as u32).collect();
                let (b, _) = batches(s, &experts, &gated[at + s.tokens * s.k..]);
                let mut out = vec![0.0; s.tokens * s.d];
                let mut next = 1;
                for (e, hs) in self.holders.iter().enumerate() {
                    let dx = one_of(&inputs[next..next + hs.len()], a0, e, b[e].len() * s.d)?;
                    next += hs.len();
                    accumulate(&mut out, s.d, &ones(&b[e]), dx);
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
            kernel::COMBINE_BACKWARD => {
                let mut out: Vec<Payload> = inputs[1..].iter().map(|y| Payload::phantom(y.len())).collect();
                out.push(Payload::phantom(8 * s.tokens * s.k));
                Some(out)
            }
            kernel::FFN_BACKWARD => {
                let x = inputs.len().checked_sub(2).map_or(0, |i| inputs[i].len());
                Some(vec![Payload::phantom(x), Payload::phantom(if x > 0 { 8 * s.weights_len() } else { 0 })])
            }
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

/// The backward pass computed on one rank, with the same batches and kernels as the
/// run: per rank its tokens' gradient and its gate weights' gradient, and per expert its
/// weights' gradient (summed over source ranks in rank order).
pub struct ReferenceGradients {
    /// Per rank: `tokens x d`.
    pub dx: Vec<Vec<f64>>,
    /// Per rank: `tokens x k`.
    pub dgate: Vec<Vec<f64>>,
    /// Per expert: `dW1` then `dW2`.
    pub dw: Vec<Vec<f64>>,
}

/// See [`ReferenceGradients`].
pub fn reference_backward(k: &MoeKernels) -> ReferenceGradients {
    let s = &k.shape;
    let weights: Vec<Vec<f64>> = (0..s.experts).map(|e| expert_weights(k.seed, s, e)).collect();
    let mut g =
        ReferenceGradients { dx: Vec::new(), dgate: Vec::new(), dw: vec![vec![0.0; s.weights_len()]; s.experts] };
    for r in 0..s.ranks {
        let (experts, gate) = k.routing.of_rank(r);
        let (b, _) = batches(s, experts, gate);
        let tokens: Vec<Vec<f64>> = (0..s.tokens).map(|t| routing::token(k.seed, r, t, s.d)).collect();
        let dy: Vec<Vec<f64>> = (0..s.tokens).map(|t| upstream(k.seed, r, t, s.d)).collect();
        let (mut dx, mut dgate) = (vec![0.0; s.tokens * s.d], vec![0.0; s.tokens * s.k]);
        for (e, batch) in b.iter().enumerate() {
            let x: Vec<f64> = batch.iter().flat_map(|&(t, _)| tokens[t as usize].iter().copied()).collect();
            let y = ffn(s, &weights[e], &x, batch.len());
            gate_gradient(&mut dgate, s.k, experts, e, batch, &y, &dy);
            let (dxe, dwe) = ffn_backward(s, &weights[e], &x, &output_gradient(batch, &dy), batch.len());
            accumulate(&mut dx, s.d, &ones(batch), &dxe);
            if !batch.is_empty() {
                g.dw[e].iter_mut().zip(&dwe).for_each(|(a, b)| *a += b);
            }
        }
        g.dx.push(dx);
        g.dgate.push(dgate);
    }
    g
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::moe::plan::Policy;

    /// The FFN's backward is the gradient of `sum(dz . ffn(x))`: checked against central
    /// differences of the forward, for the input and both weight matrices.
    #[test]
    fn ffn_backward_matches_finite_differences() {
        let shape = Shape {
            ranks: 1,
            tokens: 3,
            d: 3,
            hidden: 5,
            experts: 1,
            k: 1,
            policy: Policy::Dropless,
            capacity: None,
            replicas: 1,
            hot: 0,
            backward: true,
        };
        let rows = 3;
        let w = expert_weights(4, &shape, 0);
        let x: Vec<f64> = (0..rows * shape.d).map(|i| unit(hash(100 + i as u64)) - 0.5).collect();
        let dz: Vec<f64> = (0..rows * shape.d).map(|i| unit(hash(200 + i as u64)) - 0.5).collect();
        let loss = |w: &[f64], x: &[f64]| -> f64 { ffn(&shape, w, x, rows).iter().zip(&dz).map(|(a, b)| a * b).sum() };
        let (dx, dw) = ffn_backward(&shape, &w, &x, &dz, rows);
        let eps = 1e-6;
        for i in 0..x.len() {
            let (mut up, mut down) = (x.clone(), x.clone());
            up[i] += eps;
            down[i] -= eps;
            let numeric = (loss(&w, &up) - loss(&w, &down)) / (2.0 * eps);
            assert!((numeric - dx[i]).abs() < 1e-6, "dx[{i}]: {numeric} vs {}", dx[i]);
        }
        for i in 0..w.len() {
            let (mut up, mut down) = (w.clone(), w.clone());
            up[i] += eps;
            down[i] -= eps;
            let numeric = (loss(&up, &x) - loss(&down, &x)) / (2.0 * eps);
            assert!((numeric - dw[i]).abs() < 1e-6, "dw[{i}]: {numeric} vs {}", dw[i]);
        }
        assert!(dw.iter().any(|&g| g != 0.0) && dx.iter().any(|&g| g != 0.0));
    }
}
