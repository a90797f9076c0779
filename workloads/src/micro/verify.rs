//! The self-check: every receive task's count chunk must be present, 8 bytes long,
//! and hold zero; the value reported is the total number of wrong bytes received.

use super::kernels::COUNT_BYTES;
use super::plan::CountChunk;
use crate::Verification;
use dagwire_runtime::{ChunkId, Payload};
use std::collections::BTreeMap;

/// The name under which the number of wrong bytes is reported.
pub const METRIC: &str = "mismatched_bytes";

/// The count must stay below 1: a single wrong byte fails the run.
pub const BOUND: f64 = 1.0;

/// Checks the count chunks of a run; `checked_bytes` (the message bytes the receive
/// tasks compare, for the report) is only used in the detail.
///
/// ```
/// use dagwire_runtime::{ChunkId, Payload};
/// use dagwire_workloads::micro::{verify, CountChunk};
/// use std::sync::Arc;
/// let counts = [CountChunk { iteration: 0, rank: 1, chunk: ChunkId(1) }];
/// let zero = [(ChunkId(1), Payload::from_bytes(&0u64.to_le_bytes()))].into();
/// assert!(verify(&counts, &zero, 8).passed);
/// let three = [(ChunkId(1), Payload::from_bytes(&3u64.to_le_bytes()))].into();
/// let v = verify(&counts, &three, 8);
/// assert!(!v.passed && v.value == 3.0);
/// ```
pub fn verify(counts: &[CountChunk], results: &BTreeMap<ChunkId, Payload>, checked_bytes: u64) -> Verification {
    let failed =
        |value: f64, detail: String| Verification { passed: false, metric: METRIC, value, bound: BOUND, detail };
    let mut total: u128 = 0;
    let mut first_bad: Option<(CountChunk, u64)> = None;
    let mut bad_receives = 0usize;
    for &c in counts {
        let Some(payload) = results.get(&c.chunk) else {
            let why = format!(
                "the count of rank {}'s receive in iteration {} (chunk {}) is missing: the receive never ran or its result was lost",
                c.rank, c.iteration, c.chunk
            );
            return failed(f64::NAN, why);
        };
        if payload.len() as u64 != COUNT_BYTES {
            let why = format!(
                "the count of rank {}'s receive in iteration {} has {} bytes, expected {COUNT_BYTES}",
                c.rank,
                c.iteration,
                payload.len()
            );
            return failed(f64::NAN, why);
        }
        let bad = u64::from_le_bytes(payload.as_bytes().try_into().expect("8 bytes"));
        if bad > 0 {
            bad_receives += 1;
            first_bad.get_or_insert((c, bad));
        }
        total += bad as u128;
    }
    let value = total as f64;
    match first_bad {
        None => Verification {
            passed: true,
            metric: METRIC,
            value,
            bound: BOUND,
            detail: format!("all {checked_bytes} message bytes of {} receives matched their pattern", counts.len()),
        },
        Some((c, bad)) => failed(
            value,
            format!(
                "{total} of {checked_bytes} received bytes were wrong, in {bad_receives} of {} receives; \
                 the first: {bad} bytes in rank {}'s receive of iteration {}",
                counts.len(),
                c.rank,
                c.iteration
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(v: u64) -> Payload {
        Payload::from_bytes(&v.to_le_bytes())
    }

    #[test]
    fn sums_counts_and_names_the_first_bad_receive() {
        let counts: Vec<CountChunk> =
            (0..3).map(|i| CountChunk { iteration: i, rank: 2, chunk: ChunkId(i * 2) }).collect();
        let results = BTreeMap::from([(ChunkId(0), count(0)), (ChunkId(2), count(5)), (ChunkId(4), count(1))]);
        let v = verify(&counts, &results, 300);
        assert!(!v.passed);
        assert_eq!(v.value, 6.0);
        assert!(v.detail.contains("6 of 300") && v.detail.contains("iteration 1"), "{}", v.detail);
    }

    #[test]
    fn missing_or_misshapen_counts_fail() {
        let counts = [CountChunk { iteration: 7, rank: 1, chunk: ChunkId(9) }];
        let v = verify(&counts, &BTreeMap::new(), 8);
        assert!(!v.passed && v.value.is_nan() && v.detail.contains("iteration 7"), "{v:?}");
        let short = BTreeMap::from([(ChunkId(9), Payload::from_bytes(&[0; 4]))]);
        let v = verify(&counts, &short, 8);
        assert!(!v.passed && v.detail.contains("4 bytes"), "{v:?}");
    }
}
