//! The model, the data and the arithmetic of one training step, as plain functions
//! on column-major `f64` slices: the DAG's kernels call them, and so does
//! [`reference`], the plain single-process training the run is checked against.
//!
//! A layer `l` maps `widths[l]` inputs to `widths[l + 1]` outputs: `Z = W X + b`, then
//! ReLU except after the last layer, whose outputs are the logits of a softmax
//! cross-entropy loss. Its **state** chunk is `[W, b, velocity of W, velocity of b]`;
//! its **gradient** is `[dW, db]`, summed (not averaged) over the rank's batch. The
//! optimiser step is PyTorch's SGD with momentum: `v = mu v + g / global_batch`,
//! `w -= lr v`.
//!
//! The data: sample `s` has features uniform in `[-0.5, 0.5)` and the label a fixed
//! random linear teacher gives it (the class with the largest `T x`), so the task is
//! learnable; all of it hashed from the seed ([`dagwire_runtime::rng`]).

use dagwire_runtime::rng;
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

/// Training hyper-parameters and sizes that every kernel needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Layer widths, input first, classes last.
    pub widths: Vec<usize>,
    /// Samples per rank per step.
    pub batch: usize,
    /// Samples in the data set (batches wrap around it).
    pub samples: usize,
    /// Ranks (data-parallel replicas).
    pub ranks: usize,
    /// Learning rate.
    pub lr: f64,
    /// Momentum.
    pub momentum: f64,
    /// The run's seed.
    pub seed: u64,
}

impl Config {
    /// Layers.
    pub fn layers(&self) -> usize {
        self.widths.len() - 1
    }
    /// Parameters of layer `l` (`W` and `b`): its gradient's length.
    pub fn params(&self, l: usize) -> usize {
        self.widths[l + 1] * (self.widths[l] + 1)
    }
    /// Length of layer `l`'s state chunk (parameters and velocities).
    pub fn state_len(&self, l: usize) -> usize {
        2 * self.params(l)
    }
    /// Length of the forward pass's activations chunk: labels, then every layer's
    /// output (the input first, the logits last), `batch` columns each.
    pub fn acts_len(&self) -> usize {
        self.batch * (1 + self.widths.iter().sum::<usize>())
    }
    /// Offset of layer output `h` (0: the input) in the activations chunk.
    fn act_offset(&self, h: usize) -> usize {
        self.batch * (1 + self.widths[..h].iter().sum::<usize>())
    }
    /// The global index of sample `i` of rank `rank`'s batch at step `step`.
    pub fn sample(&self, step: usize, rank: usize, i: usize) -> usize {
        ((step * self.ranks + rank) * self.batch + i) % self.samples
    }
    /// Samples per step over all ranks.
    pub fn global_batch(&self) -> f64 {
        (self.batch * self.ranks) as f64
    }
}

fn hashed(seed: u64, what: u32, a: u64, b: u64) -> f64 {
    let s = rng::derive(seed, rng::stream::user(0x6470_0000 | what));
    rng::unit(rng::hash(rng::derive(s, a) ^ b)) - 0.5
}

/// Feature `f` of sample `s`.
pub fn feature(seed: u64, s: usize, f: usize) -> f64 {
    hashed(seed, 0, s as u64, f as u64)
}

/// The label of sample `s`: the class the teacher scores highest.
pub fn label(c: &Config, s: usize) -> usize {
    let (inputs, classes) = (c.widths[0], *c.widths.last().expect("two widths at least"));
    let score =
        |k: usize| (0..inputs).map(|f| hashed(c.seed, 1, k as u64, f as u64) * feature(c.seed, s, f)).sum::<f64>();
    (0..classes).map(|k| (k, score(k))).max_by(|a, b| a.1.total_cmp(&b.1)).map_or(0, |(k, _)| k)
}

/// Layer `l`'s initial state: `W` uniform in `±sqrt(6 / fan_in)` (He), `b` and the
/// velocities zero. Every rank generates the same.
pub fn init_state(c: &Config, l: usize) -> Vec<f64> {
    let (fan_in, out) = (c.widths[l], c.widths[l + 1]);
    let scale = 2.0 * (6.0 / fan_in as f64).sqrt();
    let mut state = vec![0.0; c.state_len(l)];
    for (x, w) in state[..out * fan_in].iter_mut().enumerate() {
        *w = scale * hashed(c.seed, 2 + l as u32, x as u64, 0);
    }
    state
}

/// The forward pass of rank `rank`'s batch at `step` with the layers' `states`:
/// returns the activations chunk ([`Config::acts_len`]) and the summed loss.
pub fn forward(c: &Config, step: usize, rank: usize, states: &[&[f64]]) -> (Vec<f64>, f64) {
    let b = c.batch;
    let mut acts = vec![0.0; c.acts_len()];
    let (x0, w0) = (c.act_offset(1), c.widths[0]);
    for i in 0..b {
        let s = c.sample(step, rank, i);
        acts[i] = label(c, s) as f64;
        for f in 0..w0 {
            acts[b + i * w0 + f] = feature(c.seed, s, f);
        }
    }
    debug_assert_eq!(x0, b + b * w0);
    for (l, state) in states.iter().enumerate() {
        let (fan_in, out) = (c.widths[l], c.widths[l + 1]);
        let (lo, hi) = acts.split_at_mut(c.act_offset(l + 1));
        let x = MatRef::from_column_major_slice(&lo[c.act_offset(l)..], fan_in, b);
        let z = &mut hi[..out * b];
        for col in z.chunks_exact_mut(out) {
            col.copy_from_slice(&state[out * fan_in..out * fan_in + out]);
        }
        let w = MatRef::from_column_major_slice(&state[..out * fan_in], out, fan_in);
        matmul(MatMut::from_column_major_slice_mut(z, out, b), Accum::Add, w, x, 1.0, Par::Seq);
        if l + 1 < c.layers() {
            z.iter_mut().for_each(|v| *v = v.max(0.0));
        }
    }
    let classes = *c.widths.last().expect("widths");
    let logits = &acts[c.act_offset(c.layers())..];
    let loss = (0..b)
        .map(|i| {
            let col = &logits[i * classes..(i + 1) * classes];
            let max = col.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let lse = max + col.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
            lse - col[acts[i] as usize]
        })
        .sum();
    (acts, loss)
}

/// Backward through layer `l`: from the activations, the layer's state and the
/// gradient of the loss with respect to its output `Z` (`None` for the last layer,
/// whose softmax cross-entropy gradient is computed here), returns the layer's
/// gradient `[dW, db]` and, for `l > 0`, the gradient with respect to the previous
/// layer's `Z`.
pub fn backward(
    c: &Config,
    l: usize,
    acts: &[f64],
    state: &[f64],
    delta: Option<&[f64]>,
) -> (Vec<f64>, Option<Vec<f64>>) {
    let (b, fan_in, out) = (c.batch, c.widths[l], c.widths[l + 1]);
    let top;
    let delta = match delta {
        Some(d) => d,
        None => {
            let logits = &acts[c.act_offset(l + 1)..c.act_offset(l + 1) + out * b];
            let mut d = logits.to_vec();
            for (i, col) in d.chunks_exact_mut(out).enumerate() {
                let max = col.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                col.iter_mut().for_each(|v| *v = (*v - max).exp());
                let sum: f64 = col.iter().sum();
                col.iter_mut().for_each(|v| *v /= sum);
                col[acts[i] as usize] -= 1.0;
            }
            top = d;
            &top
        }
    };
    let dz = MatRef::from_column_major_slice(delta, out, b);
    let x = MatRef::from_column_major_slice(&acts[c.act_offset(l)..c.act_offset(l) + fan_in * b], fan_in, b);
    let mut grad = vec![0.0; c.params(l)];
    let (gw, gb) = grad.split_at_mut(out * fan_in);
    matmul(MatMut::from_column_major_slice_mut(gw, out, fan_in), Accum::Replace, dz, x.transpose(), 1.0, Par::Seq);
    for col in delta.chunks_exact(out) {
        gb.iter_mut().zip(col).for_each(|(g, d)| *g += d);
    }
    if l == 0 {
        return (grad, None);
    }
    let w = MatRef::from_column_major_slice(&state[..out * fan_in], out, fan_in);
    let mut prev = vec![0.0; fan_in * b];
    matmul(MatMut::from_column_major_slice_mut(&mut prev, fan_in, b), Accum::Replace, w.transpose(), dz, 1.0, Par::Seq);
    // ReLU's derivative: the previous layer's output is max(Z, 0).
    let inputs = &acts[c.act_offset(l)..c.act_offset(l) + fan_in * b];
    prev.iter_mut().zip(inputs).filter(|(_, h)| **h <= 0.0).for_each(|(d, _)| *d = 0.0);
    (grad, Some(prev))
}

/// The optimiser step of one layer: `state` updated in place with the all-reduced
/// gradient sum `grad` of the global batch.
pub fn sgd_step(c: &Config, state: &mut [f64], grad: &[f64]) {
    let (params, scale) = (grad.len(), 1.0 / c.global_batch());
    let (w, v) = state.split_at_mut(params);
    for ((w, v), g) in w.iter_mut().zip(v.iter_mut()).zip(grad) {
        *v = c.momentum * *v + g * scale;
        *w -= c.lr * *v;
    }
}

/// Adds `incoming` into `acc` element by element (`acc[x] = acc[x] + incoming[x]`):
/// the one reduction the all-reduce applies, so its order is fixed and reproducible.
pub fn add_into(acc: &mut [f64], incoming: &[f64]) {
    acc.iter_mut().zip(incoming).for_each(|(a, x)| *a += x);
}
