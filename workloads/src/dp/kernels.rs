//! The [`Kernels`] of dp-train: each task calls the matching function of
//! [`super::model`] on its inputs.

use super::model::{self, Config};
use super::plan::Kind;
use dagwire_runtime::collective::block_range;
use dagwire_runtime::{Kernels, Payload, Task};

/// The kernels of one training run.
#[derive(Clone, Debug)]
pub struct DpKernels {
    /// Sizes and hyper-parameters.
    pub config: Config,
    /// `[bucket]`: its layers, in backward order.
    pub buckets: Vec<Vec<usize>>,
}

impl Kernels for DpKernels {
    fn run(&self, task: &Task, mut inputs: Vec<Payload>) -> Result<Vec<Payload>, String> {
        let c = &self.config;
        let kind = Kind::from_id(task.kernel).ok_or_else(|| format!("unknown dp-train kernel {:?}", task.kernel))?;
        let [a0, a1, a2, a3] = task.args.map(|a| a as usize);
        let f64s = |p: &Payload, want: usize, what: &str| -> Result<Vec<f64>, String> {
            if p.len() == want * 8 {
                Ok(p.as_f64().to_vec())
            } else {
                Err(format!("{} {:?}: {what} has {} bytes, expected {}", kind.name(), task.args, p.len(), want * 8))
            }
        };
        match kind {
            Kind::Init => Ok(vec![Payload::from_f64(model::init_state(c, a1))]),
            Kind::Forward => {
                for (l, s) in inputs.iter().enumerate() {
                    f64s(s, c.state_len(l), "a layer state")?;
                }
                let states: Vec<&[f64]> = inputs.iter().map(|p| p.as_f64()).collect();
                let (acts, loss) = model::forward(c, a0, a1, &states);
                Ok(vec![Payload::from_f64(acts), Payload::from_f64(vec![loss])])
            }
            Kind::Backward => {
                let l = a2;
                let acts = f64s(&inputs[0], c.acts_len(), "the activations")?;
                let state = f64s(&inputs[1], c.state_len(l), "the layer state")?;
                let delta = match inputs.get(2) {
                    Some(d) => Some(f64s(d, c.widths[l + 1] * c.batch, "the output gradient")?),
                    None => None,
                };
                let (grad, prev) = model::backward(c, l, &acts, &state, delta.as_deref());
                Ok(std::iter::once(grad).chain(prev).map(Payload::from_f64).collect())
            }
            Kind::Pack => {
                let mut out = Vec::new();
                for (p, &l) in inputs.iter().zip(&self.buckets[a2]) {
                    out.extend(f64s(p, c.params(l), "a layer gradient")?);
                }
                Ok(vec![Payload::from_f64(out)])
            }
            Kind::Reduce => {
                let (p, t, r) = (c.ranks, a3, a1);
                let len: usize = self.buckets[a2].iter().map(|&l| c.params(l)).sum();
                let range = block_range(len, p, (r + p - t % p) % p);
                let own = f64s(&inputs[0], len, "the bucket")?;
                let out = match inputs.pop().filter(|_| t > 0) {
                    Some(partial) => {
                        let mut acc = f64s(&partial, range.len(), "the partial sum")?;
                        model::add_into(&mut acc, &own[range]);
                        acc
                    }
                    None => own[range].to_vec(),
                };
                Ok(vec![Payload::from_f64(out)])
            }
            Kind::Step => {
                let bucket = &self.buckets[a2];
                let len: usize = bucket.iter().map(|&l| c.params(l)).sum();
                // The summed gradient: p blocks of the strategy's ring, or one vector of a collective.
                let blocks = inputs.split_off(bucket.len());
                let mut grad = Vec::with_capacity(len);
                if let [whole] = &blocks[..] {
                    grad = f64s(whole, len, "the reduced bucket")?;
                } else {
                    for (b, p) in blocks.iter().enumerate() {
                        grad.extend(f64s(p, block_range(len, c.ranks, b).len(), "a reduced block")?);
                    }
                }
                let mut at = 0;
                let mut out = Vec::with_capacity(bucket.len());
                for (p, &l) in inputs.into_iter().zip(bucket) {
                    let mut state = p.into_f64();
                    if state.len() != c.state_len(l) {
                        return Err(format!("step {:?}: layer {l}'s state has {} values", task.args, state.len()));
                    }
                    model::sgd_step(c, &mut state, &grad[at..at + c.params(l)]);
                    at += c.params(l);
                    out.push(Payload::from_f64(state));
                }
                Ok(out)
            }
            Kind::AllReduce => Err(format!(
                "allreduce {:?} is a collective task, which the driver's collective layer runs, not a kernel",
                task.args
            )),
        }
    }
}
