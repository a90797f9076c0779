//! The gate and the routing it produces: for every token, its top-k experts and their
//! gate weights; drawn from a seeded Zipf popularity with weights from seeded gate
//! logits, or read from a routing trace file.
//!
//! # The gate
//! Token `t` of rank `r` has `d` values `x = unit(hash) - 0.5`; the gate weights are a
//! `d x E` matrix of `(unit - 0.5) * 12 / sqrt(d)`, so a logit `x . Wg[:, e]` has unit
//! variance. **Which** experts a token picks is drawn from expert popularity:
//! `rand_distr::Zipf(E, zipf)` (expert `e` has probability proportional to
//! `(e + 1)^-zipf`: `zipf = 0` is uniform, expert 0 the most popular), sampled from the
//! run's one seeded source ([`rng::rng`], stream [`ROUTING`] then the rank: each rank's
//! gate draws its own tokens in order, so a gate kernel needs no other rank). The `k`
//! experts are the first `k` distinct draws, in draw order (the first is the token's
//! first choice); after [`DRAWS_PER_CHOICE`]` x k` draws without `k` distinct experts
//! (a steep skew), the remaining choices are the most popular experts not yet picked
//! (the distribution's mode among them). **How much** each contributes is the softmax
//! of their gate logits renormalised over those `k` (soft routing). Only the picked
//! experts' logits are computed; the DAG still costs the gate as a full `x . Wg`.
//!
//! # Routing trace files
//! One line per token, every rank's tokens in rank order (rank 0's `T`, then rank 1's,
//! ...): `k` expert ids then `k` weights, separated by blanks, e.g. `3 17 0.75 0.25`.
//! Empty lines and lines starting with `#` are skipped. [`Routing::write`] writes one
//! that [`Routing::read`] reads back exactly.

use dagwire_runtime::rng::{self, hash, unit};
use rand_distr::{Distribution, Zipf};
use std::fmt::Write as _;
use std::path::Path;

/// Stream tags of the seeded values (mixed into the counter hash).
pub const TOKENS: u64 = 0x746f_6b65_6e73;
/// Stream of the gate weights.
pub const GATE: u64 = 0x6761_7465;
/// The routing's stream of the run's seeded source (`rng::stream::user(ROUTING)`);
/// rank `r` draws from `rng(derive(seed, that), r)`.
pub const ROUTING: u32 = 0x726f_7574;
/// Zipf draws allowed per choice before the rest are the most popular unpicked experts.
pub const DRAWS_PER_CHOICE: usize = 64;

/// The `d` values of token `t` of rank `r`.
pub fn token(seed: u64, r: usize, t: usize, d: usize) -> Vec<f64> {
    let base = hash(hash(hash(seed) ^ TOKENS) ^ r as u64);
    (0..d).map(|j| unit(hash(hash(base ^ t as u64) ^ j as u64)) - 0.5).collect()
}

/// The gate weight `Wg[j, e]` of a `d x E` gate (row-major index `j * E + e`).
fn gate_weight(base: u64, d: usize, experts: usize, j: usize, e: usize) -> f64 {
    (unit(hash(base ^ (j * experts + e) as u64)) - 0.5) * 12.0 / (d as f64).sqrt()
}

/// The gate weights, `d x E` row-major.
pub fn gate_weights(seed: u64, d: usize, experts: usize) -> Vec<f64> {
    let base = hash(hash(seed) ^ GATE);
    (0..d * experts).map(|i| gate_weight(base, d, experts, i / experts, i % experts)).collect()
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

/// `k` distinct experts of `experts`, drawn from `popularity` (values `1..=experts`)
/// by `rng` (see the [module docs](self)), in choice order.
pub fn pick(rng: &mut rng::SeededRng, popularity: &Zipf<f64>, experts: usize, k: usize) -> Vec<u32> {
    let mut picked: Vec<u32> = Vec::with_capacity(k);
    let mut draws = 0;
    while picked.len() < k && draws < DRAWS_PER_CHOICE * k {
        draws += 1;
        // Zipf gives a whole number in 1..=experts as a float.
        let e = ((popularity.sample(rng) as usize).clamp(1, experts) - 1) as u32;
        if !picked.contains(&e) {
            picked.push(e);
        }
    }
    let mut next = 0u32;
    while picked.len() < k {
        if !picked.contains(&next) {
            picked.push(next);
        }
        next += 1;
    }
    picked
}

/// The gate weights of token `x` over its `picked` experts: the softmax of their
/// logits, renormalised over them.
pub fn weights(seed: u64, x: &[f64], experts: usize, picked: &[u32]) -> Vec<f64> {
    let (base, d) = (hash(hash(seed) ^ GATE), x.len());
    let logits: Vec<f64> = picked
        .iter()
        .map(|&e| (0..d).map(|j| x[j] * gate_weight(base, d, experts, j, e as usize)).sum::<f64>())
        .collect();
    let top = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = logits.iter().map(|l| (l - top).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|w| w / sum).collect()
}

impl Routing {
    /// The gate's routing of rank `r`'s tokens (what its gate kernel computes).
    ///
    /// # Panics
    /// When `experts` is 0 or `zipf` is negative or not a number (a sweep's parameters
    /// never are).
    pub fn gate_rank(seed: u64, r: usize, tokens: usize, d: usize, experts: usize, k: usize, zipf: f64) -> Self {
        let popularity = Zipf::new(experts as f64, zipf).expect("at least one expert and zipf >= 0");
        let mut draw = rng::rng(rng::derive(seed, rng::stream::user(ROUTING)), r as u64);
        let (mut expert, mut weight) = (Vec::with_capacity(tokens * k), Vec::with_capacity(tokens * k));
        for t in 0..tokens {
            let picked = pick(&mut draw, &popularity, experts, k);
            weight.extend(weights(seed, &token(seed, r, t, d), experts, &picked));
            expert.extend(picked);
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

    /// First choices follow Zipf(E, s): within 4 standard deviations of the expected
    /// count for every expert; zipf 0 is uniform.
    #[test]
    fn first_choices_follow_the_zipf_law() {
        let (n, e_n) = (20_000usize, 8usize);
        for s in [0.0, 0.8, 1.2] {
            let r = Routing::gate(5, 1, n, 1, e_n, 2, s);
            let mut first = [0f64; 8];
            (0..n).for_each(|t| first[r.expert[2 * t] as usize] += 1.0);
            let norm: f64 = (1..=e_n).map(|i| (i as f64).powf(-s)).sum();
            for (e, &got) in first.iter().enumerate() {
                let p = ((e + 1) as f64).powf(-s) / norm;
                let (want, sd) = (n as f64 * p, (n as f64 * p * (1.0 - p)).sqrt());
                assert!((got - want).abs() < 4.0 * sd, "s {s} expert {e}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn a_steep_skew_still_gives_k_distinct_experts_most_popular_first() {
        // At zipf 8 expert 0 takes ~99.6 % of draws: the rest come from the fallback.
        let r = Routing::gate(2, 1, 50, 4, 64, 8, 8.0);
        for t in 0..50 {
            let mut picked = r.expert[8 * t..8 * t + 8].to_vec();
            assert_eq!(picked[0], 0);
            picked.sort_unstable();
            picked.dedup();
            assert_eq!(picked.len(), 8);
        }
        // A rank's gate alone draws what the all-rank routing holds for it.
        let all = Routing::gate(9, 3, 7, 5, 6, 2, 1.0);
        let one = Routing::gate_rank(9, 2, 7, 5, 6, 2, 1.0);
        assert_eq!(all.of_rank(2), (&one.expert[..], &one.weight[..]));
    }
}
