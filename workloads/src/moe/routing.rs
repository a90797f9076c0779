//! The gate and the routing it produces: for every token, its top-k experts and their
//! gate weights; computed from seeded tokens and gate weights with a Zipf popularity
//! prior, or read from a routing trace file.
//!
//! # The gate
//! Token `t` of rank `r` has `d` values `x = unit(hash) - 0.5`; the gate weights are a
//! `d x E` matrix of `(unit - 0.5) * 12 / sqrt(d)`, so a logit has unit variance. Expert
//! `e` gets the prior `-zipf * ln(e + 1)` added to its logit (`zipf = 0`: no skew; expert
//! 0 is the most popular). The gate keeps the `k` largest logits (ties: lower expert)
//! and weights them by their softmax renormalised over those `k` (soft routing).
//!
//! # Routing trace files
//! One line per token, every rank's tokens in rank order (rank 0's `T`, then rank 1's,
//! ...): `k` expert ids then `k` weights, separated by blanks, e.g. `3 17 0.75 0.25`.
//! Empty lines and lines starting with `#` are skipped. [`Routing::write`] writes one
//! that [`Routing::read`] reads back exactly.

use dagwire_runtime::rng::{hash, unit};
use std::fmt::Write as _;
use std::path::Path;

/// Stream tags of the seeded values (mixed into the counter hash).
pub const TOKENS: u64 = 0x746f_6b65_6e73;
/// Stream of the gate weights.
pub const GATE: u64 = 0x6761_7465;

/// The `d` values of token `t` of rank `r`.
pub fn token(seed: u64, r: usize, t: usize, d: usize) -> Vec<f64> {
    let base = hash(hash(hash(seed) ^ TOKENS) ^ r as u64);
    (0..d).map(|j| unit(hash(hash(base ^ t as u64) ^ j as u64)) - 0.5).collect()
}

/// The gate weights, `d x E` row-major.
pub fn gate_weights(seed: u64, d: usize, experts: usize) -> Vec<f64> {
    let base = hash(hash(seed) ^ GATE);
    let scale = 12.0 / (d as f64).sqrt();
    (0..d * experts).map(|i| (unit(hash(base ^ i as u64)) - 0.5) * scale).collect()
}

/// The routing of every token of every rank.
#[derive(Clone, Debug, PartialEq)]
pub struct Routing {
    /// Ranks.
    pub ranks: usize,
    /// Tokens per rank.
    pub tokens: usize,
    /// Experts.
    pub experts: usize,
    /// Experts per token.
    pub k: usize,
    /// `[(r * tokens + t) * k + j]`: the `j`-th expert of token `t` of rank `r`.
    pub expert: Vec<u32>,
    /// Its gate weight, matching `expert`.
    pub weight: Vec<f64>,
}

/// Top-k of one token's logits with the prior: (experts, renormalised softmax weights).
pub fn top_k(x: &[f64], wg: &[f64], experts: usize, k: usize, zipf: f64) -> (Vec<u32>, Vec<f64>) {
    let d = x.len();
    let logits: Vec<f64> = (0..experts)
        .map(|e| (0..d).map(|j| x[j] * wg[j * experts + e]).sum::<f64>() - zipf * ((e + 1) as f64).ln())
        .collect();
    let mut order: Vec<usize> = (0..experts).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    order.truncate(k);
    let top = logits[order[0]];
    let exps: Vec<f64> = order.iter().map(|&e| (logits[e] - top).exp()).collect();
    let sum: f64 = exps.iter().sum();
    (order.iter().map(|&e| e as u32).collect(), exps.iter().map(|w| w / sum).collect())
}

impl Routing {
    /// The gate's routing of rank `r`'s tokens (what its gate kernel computes).
    pub fn gate_rank(seed: u64, r: usize, tokens: usize, d: usize, experts: usize, k: usize, zipf: f64) -> Self {
        let wg = gate_weights(seed, d, experts);
        let (mut expert, mut weight) = (Vec::with_capacity(tokens * k), Vec::with_capacity(tokens * k));
        for t in 0..tokens {
            let (e, w) = top_k(&token(seed, r, t, d), &wg, experts, k, zipf);
            expert.extend(e);
            weight.extend(w);
        }
        Routing { ranks: 1, tokens, experts, k, expert, weight }
    }

    /// The gate's routing of every rank's tokens.
    pub fn gate(seed: u64, ranks: usize, tokens: usize, d: usize, experts: usize, k: usize, zipf: f64) -> Self {
        let mut all = Routing { ranks, tokens, experts, k, expert: Vec::new(), weight: Vec::new() };
        for r in 0..ranks {
            let one = Routing::gate_rank(seed, r, tokens, d, experts, k, zipf);
            all.expert.extend(one.expert);
            all.weight.extend(one.weight);
        }
        all
    }

    /// Rank `r`'s part: (experts, weights) of its tokens, `tokens * k` each.
    pub fn of_rank(&self, r: usize) -> (&[u32], &[f64]) {
        let span = r * self.tokens * self.k..(r + 1) * self.tokens * self.k;
        (&self.expert[span.clone()], &self.weight[span])
    }

    /// Tokens routed to each expert (before any dropping), over every rank.
    pub fn histogram(&self) -> Vec<u64> {
        let mut h = vec![0u64; self.experts];
        self.expert.iter().for_each(|&e| h[e as usize] += 1);
        h
    }

    /// The routing as a trace file (see the [module docs](self)).
    pub fn to_text(&self) -> String {
        let mut out = format!("# dagwire moe routing: {} ranks x {} tokens, top-{}\n", self.ranks, self.tokens, self.k);
        for g in 0..self.ranks * self.tokens {
            let span = g * self.k..(g + 1) * self.k;
            let ids: Vec<String> = self.expert[span.clone()].iter().map(u32::to_string).collect();
            let ws: Vec<String> = self.weight[span].iter().map(|w| format!("{w:?}")).collect();
            let _ = writeln!(out, "{} {}", ids.join(" "), ws.join(" "));
        }
        out
    }

    /// Writes the routing to `path`.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.to_text())
    }

    /// Reads a routing trace file for `ranks` ranks of `tokens` tokens, `experts`
    /// experts and top-`k`. Errors name the file and the line.
    pub fn read(path: &Path, ranks: usize, tokens: usize, experts: usize, k: usize) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Routing::parse(&text, &path.display().to_string(), ranks, tokens, experts, k)
    }

    /// [`Routing::read`] from text; `name` names the source in errors.
    pub fn parse(
        text: &str,
        name: &str,
        ranks: usize,
        tokens: usize,
        experts: usize,
        k: usize,
    ) -> Result<Self, String> {
        let mut r = Routing { ranks, tokens, experts, k, expert: Vec::new(), weight: Vec::new() };
        let want = ranks * tokens;
        let mut seen = 0;
        for (n, line) in text.lines().enumerate().map(|(n, l)| (n + 1, l.trim())) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = |why: String| format!("{name}:{n}: {why}");
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() != 2 * k {
                return Err(at(format!("{} fields, expected {k} expert ids then {k} weights", fields.len())));
            }
            if seen == want {
                return Err(at(format!("more than the {want} tokens of {ranks} ranks x {tokens} tokens")));
            }
            let line_start = r.expert.len();
            for f in &fields[..k] {
                let e: u32 = f.parse().map_err(|_| at(format!("expert id `{f}` is not a whole number")))?;
                if e as usize >= experts {
                    return Err(at(format!("expert {e} does not exist ({experts} experts)")));
                }
                if r.expert[line_start..].contains(&e) {
                    return Err(at(format!("expert {e} twice for one token")));
                }
                r.expert.push(e);
            }
            for f in &fields[k..] {
                let w: f64 = f.parse().map_err(|_| at(format!("weight `{f}` is not a number")))?;
                if !w.is_finite() {
                    return Err(at(format!("weight `{f}` is not finite")));
                }
                r.weight.push(w);
            }
            seen += 1;
        }
        if seen != want {
            return Err(format!("{name}: {seen} tokens, expected {want} ({ranks} ranks x {tokens} tokens)"));
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_routing_file_round_trips_exactly() {
        let r = Routing::gate(3, 2, 5, 8, 6, 2, 0.8);
        let dir = std::env::temp_dir().join(format!("dagwire-moe-routing-{}", std::process::id()));
        r.write(&dir).unwrap();
        let back = Routing::read(&dir, 2, 5, 6, 2).unwrap();
        std::fs::remove_file(&dir).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn a_bad_file_is_refused_naming_file_and_line() {
        let good = Routing::gate(3, 1, 2, 4, 4, 2, 0.0).to_text();
        let err = |text: &str| Routing::parse(text, "r.txt", 1, 2, 4, 2).unwrap_err();
        assert!(
            err(&good.replacen(" 0.", " x.", 1)).starts_with("r.txt:2: weight `x."),
            "{}",
            err(&good.replacen(" 0.", " x.", 1))
        );
        assert_eq!(err("# c\n1 9 0.5 0.5\n"), "r.txt:2: expert 9 does not exist (4 experts)");
        assert_eq!(err("1 2 0.5\n"), "r.txt:1: 3 fields, expected 2 expert ids then 2 weights");
        assert_eq!(err("1 1 0.5 0.5\n"), "r.txt:1: expert 1 twice for one token");
        assert_eq!(err("1 2 0.5 0.5\n"), "r.txt: 1 tokens, expected 2 (1 ranks x 2 tokens)");
        assert!(
            Routing::read(Path::new("/nonexistent/routing"), 1, 1, 1, 1)
                .unwrap_err()
                .starts_with("/nonexistent/routing: ")
        );
    }

    #[test]
    fn skew_makes_low_experts_popular_and_weights_sum_to_one() {
        let flat = Routing::gate(1, 2, 200, 16, 8, 2, 0.0).histogram();
        let skewed = Routing::gate(1, 2, 200, 16, 8, 2, 1.2).histogram();
        assert_eq!(flat.iter().sum::<u64>(), 800);
        assert!(skewed[0] > 2 * flat[0].max(1) / 2 && skewed[0] > skewed[7] * 3, "{flat:?} {skewed:?}");
        let r = Routing::gate(1, 1, 10, 16, 8, 2, 0.5);
        for t in 0..10 {
            assert!((r.weight[2 * t] + r.weight[2 * t + 1] - 1.0).abs() < 1e-12);
            assert_ne!(r.expert[2 * t], r.expert[2 * t + 1]);
        }
    }
}
