//! The two kernels: `send` fills each message it writes with the message's byte
//! pattern; `recv` checks every byte of every message it reads against the pattern
//! and writes the number of wrong bytes as one little-endian `u64` (its count chunk).
//!
//! A wrong byte does not fail the kernel: it is counted, and the workload's
//! verification fails the run when any count is not zero. That way a strategy that
//! corrupts data is reported as "verified: false" with the number of bad bytes,
//! like the other workloads' numeric checks.

use super::pattern::{Layout, MsgKey};
use dagwire_runtime::rng::{mix, splitmix};
use dagwire_runtime::{KernelId, Kernels, Payload, Task};

/// Bytes of a receive task's count chunk.
pub const COUNT_BYTES: u64 = 8;

/// The kernels of the micro workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Writes messages: one output chunk per message; its inputs are only dependencies.
    Send,
    /// Reads messages: one input per message; one 8-byte count output.
    Recv,
}

impl Kind {
    /// The kernel id in the DAG.
    pub fn id(self) -> KernelId {
        KernelId(self as u16)
    }

    /// The kind of a kernel id.
    pub fn from_id(id: KernelId) -> Option<Kind> {
        match id.0 {
            0 => Some(Kind::Send),
            1 => Some(Kind::Recv),
            _ => None,
        }
    }

    /// Names in traces, in id order: the workload's kernel kinds.
    pub const NAMES: [&'static str; 2] = ["send", "recv"];

    /// Name in traces.
    pub fn name(self) -> &'static str {
        Kind::NAMES[self as usize]
    }
}

/// Task arguments: `[iteration, measured, 0, 0]`, `measured` being 1 for measured
/// iterations and 0 for warm-up ones.
pub fn args(iteration: u32, measured: bool) -> [u32; 4] {
    [iteration, measured as u32, 0, 0]
}

/// The seed of a message's byte stream, from its whole key: two messages differing
/// in iteration, sender, receiver or slot get unrelated streams, so a chunk delivered
/// to the wrong reader is caught like a corrupted one.
fn stream_seed(key: MsgKey) -> u64 {
    let h = mix(0x6d69_6372_6f00_0000 ^ key.iteration as u64);
    let h = mix(h ^ ((key.src as u64) << 32 | key.dst as u64));
    mix(h ^ key.slot as u64)
}

/// The pattern's 8-byte word at word index `w` (bytes `8w..8w+8`, little-endian).
fn word(seed: u64, w: usize) -> u64 {
    splitmix(seed, w as u64)
}

/// Fills `bytes` with the pattern of message `key`: byte `p` is byte `p % 8` of the
/// little-endian word `mix(seed(key) + (p / 8 + 1) * golden)`, SplitMix64 over the
/// position (the runtime's counter hash, [`dagwire_runtime::rng::splitmix`]).
///
/// ```
/// use dagwire_workloads::micro::{fill, mismatches, MsgKey};
/// let key = MsgKey { iteration: 3, src: 0, dst: 1, slot: 0 };
/// let mut buf = vec![0u8; 13];
/// fill(key, &mut buf);
/// assert_eq!(mismatches(key, &buf, 13), 0);
/// buf[12] ^= 1;
/// assert_eq!(mismatches(key, &buf, 13), 1);
/// assert_eq!(mismatches(key, &buf[..10], 13), 3); // the 3 missing bytes count as wrong
/// ```
pub fn fill(key: MsgKey, bytes: &mut [u8]) {
    let seed = stream_seed(key);
    let whole = bytes.len() / 8;
    let mut words = bytes.chunks_exact_mut(8);
    for (w, out) in (&mut words).enumerate() {
        out.copy_from_slice(&word(seed, w).to_le_bytes());
    }
    let tail = words.into_remainder();
    let n = tail.len();
    if n > 0 {
        let last = word(seed, whole).to_le_bytes();
        tail.copy_from_slice(&last[..n]);
    }
}

/// Number of bytes of `bytes` that differ from the pattern of message `key` of
/// `expected` bytes; missing or extra bytes count as wrong.
pub fn mismatches(key: MsgKey, bytes: &[u8], expected: usize) -> u64 {
    let seed = stream_seed(key);
    let n = bytes.len().min(expected);
    let mut bad = bytes.len().abs_diff(expected) as u64;
    let mut words = bytes[..n].chunks_exact(8);
    for (w, got) in (&mut words).enumerate() {
        let diff = u64::from_le_bytes(got.try_into().expect("8 bytes")) ^ word(seed, w);
        if diff != 0 {
            bad += diff.to_le_bytes().iter().filter(|&&b| b != 0).count() as u64;
        }
    }
    let tail = words.remainder();
    if !tail.is_empty() {
        let want = word(seed, n / 8).to_le_bytes();
        bad += tail.iter().zip(want).filter(|(g, w)| *g != w).count() as u64;
    }
    bad
}

/// The kernels of one micro run: the layout says which messages a task writes or
/// reads, from its owner and its iteration (`args[0]`).
#[derive(Clone, Copy, Debug)]
pub struct MicroKernels {
    /// The run's pattern, ranks and sizes.
    pub layout: Layout,
}

impl Kernels for MicroKernels {
    fn run(&self, task: &Task, inputs: Vec<Payload>) -> Result<Vec<Payload>, String> {
        let kind = Kind::from_id(task.kernel).ok_or_else(|| format!("unknown micro kernel {:?}", task.kernel))?;
        let (iteration, owner) = (task.args[0], task.owner.0);
        match kind {
            Kind::Send => {
                let keys = self.layout.sends(iteration, owner);
                Ok(keys
                    .into_iter()
                    .map(|key| {
                        let mut p = Payload::zeroed(self.layout.bytes_of(key) as usize);
                        fill(key, p.as_bytes_mut());
                        p
                    })
                    .collect())
            }
            Kind::Recv => {
                let keys = self.layout.receives(iteration, owner);
                if inputs.len() != keys.len() {
                    return Err(format!(
                        "recv of rank {owner} in iteration {iteration} got {} inputs, expected {} messages",
                        inputs.len(),
                        keys.len()
                    ));
                }
                let bad: u64 = keys
                    .iter()
                    .zip(&inputs)
                    .map(|(&key, got)| mismatches(key, got.as_bytes(), self.layout.bytes_of(key) as usize))
                    .sum();
                Ok(vec![Payload::from_bytes(&bad.to_le_bytes())])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::micro::pattern::Pattern;
    use dagwire_runtime::{DagBuilder, Rank, TaskSpec};

    fn key(slot: u32) -> MsgKey {
        MsgKey { iteration: 1, src: 2, dst: 3, slot }
    }

    #[test]
    fn every_length_round_trips_and_every_byte_is_checked() {
        for len in [0, 1, 7, 8, 9, 64, 100] {
            let mut buf = vec![0u8; len];
            fill(key(0), &mut buf);
            assert_eq!(mismatches(key(0), &buf, len), 0, "len {len}");
            for p in 0..len {
                let mut bad = buf.clone();
                bad[p] ^= 0x40;
                assert_eq!(mismatches(key(0), &bad, len), 1, "len {len}, flipped byte {p}");
            }
        }
    }

    #[test]
    fn different_messages_differ() {
        let (mut a, mut b) = (vec![0u8; 64], vec![0u8; 64]);
        fill(key(0), &mut a);
        fill(key(1), &mut b);
        assert!(mismatches(key(0), &b, 64) > 48, "streams of different slots should be unrelated");
        assert_ne!(a, b);
        assert!(a.iter().any(|&x| x != 0));
    }

    #[test]
    fn recv_counts_bad_bytes_and_refuses_a_wrong_input_count() {
        let layout = Layout::new(Pattern::PingPong, 2, 16, 1);
        let k = MicroKernels { layout };
        let mut b = DagBuilder::new(2);
        let s = b.add(TaskSpec::new(Kind::Send.id(), Rank(0)).outputs(&[16]).args(args(4, true)));
        let r = b.add(TaskSpec::new(Kind::Recv.id(), Rank(1)).inputs(&[s.output(0)]).outputs(&[8]).args(args(4, true)));
        let dag = b.finish();
        let sent = k.run(dag.task(s.task), vec![]).unwrap();
        assert_eq!(sent.len(), 1);
        let mut corrupted = sent[0].clone();
        corrupted.as_bytes_mut()[3] ^= 1;
        corrupted.as_bytes_mut()[15] ^= 1;
        for (input, want) in [(sent[0].clone(), 0u64), (corrupted, 2)] {
            let out = k.run(dag.task(r.task), vec![input]).unwrap();
            assert_eq!(out[0].as_bytes(), want.to_le_bytes());
        }
        assert!(k.run(dag.task(r.task), vec![]).unwrap_err().contains("expected 1 messages"));
    }
}
