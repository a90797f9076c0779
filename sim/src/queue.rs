//! The event queue: events come out ordered by (time, insertion sequence), so events at
//! the same virtual time come out in the order they were scheduled. Determinism is
//! never a build option.
//!
//! It is a radix heap (Ahuja, Mehlhorn, Orlin and Tarjan, "Faster algorithms for the
//! shortest path problem", 1990): a simulation never schedules an event before the last
//! one it took out, so events can wait in 65 buckets by the highest bit in which their
//! time differs from that last time. A push appends to a bucket; a pop takes the front of
//! bucket 0 (events at exactly the last time, in sequence order) or, when that is empty,
//! moves the first non-empty bucket's events down, each event moving at most 64 times
//! over its life and always through contiguous memory. With a million events pending a
//! binary heap's pop is some twenty dependent cache misses; here it is a few sequential
//! passes.

use std::collections::VecDeque;

/// Virtual time in nanoseconds.
pub type Time = u64;

/// A deterministic priority queue of events for a simulation: every push is at or after
/// the time of the last pop (the simulation never schedules into its past).
///
/// ```
/// use dagwire_sim::queue::EventQueue;
/// let mut q = EventQueue::default();
/// q.push(20, "late");
/// q.push(10, "first");
/// q.push(10, "second");
/// assert_eq!(q.peek_time(), Some(10));
/// assert_eq!(q.pop(), Some((10, "first")));
/// q.push(10, "third"); // at the last time popped: still allowed
/// assert_eq!(q.pop(), Some((10, "second")));
/// assert_eq!(q.pop(), Some((10, "third")));
/// assert_eq!(q.pop(), Some((20, "late")));
/// assert_eq!(q.pop(), None);
/// ```
#[derive(Debug)]
pub struct EventQueue<E> {
    /// The time of the last pop: every pending event is at or after it.
    last: Time,
    /// Bucket 0: the events at `last`, in sequence order.
    front: VecDeque<Entry<E>>,
    /// Bucket `i > 0` holds events whose time first differs from `last` in bit `i - 1`
    /// (counting from the lowest); its entry 0 is unused (bucket 0 is `front`).
    buckets: Vec<Vec<Entry<E>>>,
    /// The earliest time in each bucket (`Time::MAX` when empty).
    min: [Time; BUCKETS],
    /// Bit `i` set: bucket `i` holds events.
    nonempty: u128,
    len: usize,
    next_seq: u64,
}

const BUCKETS: usize = 65;

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        EventQueue {
            last: 0,
            front: VecDeque::new(),
            buckets: (0..BUCKETS).map(|_| Vec::new()).collect(),
            min: [Time::MAX; BUCKETS],
            nonempty: 0,
            len: 0,
            next_seq: 0,
        }
    }
}

#[derive(Debug)]
struct Entry<E> {
    time: Time,
    seq: u64,
    event: E,
}

/// The bucket of `time` relative to `last` (`time >= last`).
fn bucket(last: Time, time: Time) -> usize {
    (64 - (time ^ last).leading_zeros()) as usize
}

impl<E> EventQueue<E> {
    /// Schedules `event` at `time`.
    ///
    /// # Panics
    /// If `time` is before the time of the last [`pop`](Self::pop): a simulation
    /// never schedules into its past.
    pub fn push(&mut self, time: Time, event: E) {
        assert!(time >= self.last, "event scheduled at {time} ns, before the last one taken out ({} ns)", self.last);
        let seq = self.next_seq;
        self.next_seq += 1;
        let b = bucket(self.last, time);
        let entry = Entry { time, seq, event };
        if b == 0 {
            self.front.push_back(entry);
        } else {
            self.buckets[b].push(entry);
        }
        self.min[b] = self.min[b].min(time);
        self.nonempty |= 1 << b;
        self.len += 1;
    }

    /// The earliest event, ties broken by insertion order.
    pub fn pop(&mut self) -> Option<(Time, E)> {
        if self.front.is_empty() {
            self.refill()?;
        }
        let entry = self.front.pop_front().expect("refilled");
        if self.front.is_empty() {
            self.nonempty &= !1;
            self.min[0] = Time::MAX;
        }
        self.len -= 1;
        Some((entry.time, entry.event))
    }

    /// Moves the first non-empty bucket's events down, so bucket 0 holds the earliest
    /// ones (in sequence order). `None` when the queue is empty.
    fn refill(&mut self) -> Option<()> {
        if self.nonempty == 0 {
            return None;
        }
        let i = self.nonempty.trailing_zeros() as usize;
        let last = self.min[i];
        self.last = last;
        let mut moving = std::mem::take(&mut self.buckets[i]);
        self.min[i] = Time::MAX;
        self.nonempty &= !(1 << i);
        for e in moving.drain(..) {
            let b = bucket(last, e.time);
            self.min[b] = self.min[b].min(e.time);
            self.nonempty |= 1 << b;
            if b == 0 {
                self.front.push_back(e);
            } else {
                self.buckets[b].push(e);
            }
        }
        // Keep the bucket's allocation for the events that will fall into it again.
        self.buckets[i] = moving;
        // Bucket 0 was empty: what fell into it is every event at `last`, which may have
        // reached bucket `i` by different routes; sequence order is insertion order.
        self.front.make_contiguous().sort_unstable_by_key(|e| e.seq);
        Some(())
    }

    /// Time of the earliest event.
    pub fn peek_time(&self) -> Option<Time> {
        match self.nonempty {
            0 => None,
            n if n & 1 == 1 => Some(self.last),
            n => Some(self.min[n.trailing_zeros() as usize]),
        }
    }

    /// Events pending.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Events scheduled so far (for events-per-second figures).
    pub fn scheduled(&self) -> u64 {
        self.next_seq
    }
}

/// Pop+push operations per second on a queue holding `pending` events with scattered
/// times, over `ops` operations: the raw speed of the simulator's event engine, measured
/// here so it is compiled as the simulator's own queue is (`experiment bench sim`).
///
/// ```
/// assert!(dagwire_sim::queue::throughput(100, 10_000) > 0.0);
/// ```
pub fn throughput(pending: usize, ops: usize) -> f64 {
    let mut q = EventQueue::default();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % 1_000_000
    };
    for _ in 0..pending {
        q.push(next(), 0u64);
    }
    let start = std::time::Instant::now();
    for _ in 0..ops {
        let (t, e) = q.pop().expect("never empty");
        q.push(t + next(), std::hint::black_box(e));
    }
    ops as f64 / start.elapsed().as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::EventQueue;
    use proptest::prelude::*;

    proptest! {
        /// Against a sort by (time, sequence): any interleaving of pops and pushes at or
        /// after the last pop comes out in the same order.
        #[test]
        fn pops_in_time_then_insertion_order(ops in proptest::collection::vec((0u64..3, 0u64..1 << 40, any::<bool>()), 1..400)) {
            let mut q = EventQueue::default();
            let mut reference: Vec<(u64, u64)> = Vec::new();
            let (mut now, mut seq) = (0u64, 0u64);
            for (kind, delta, small) in ops {
                if kind == 0 {
                    let got = q.pop();
                    reference.sort();
                    let want = (!reference.is_empty()).then(|| reference.remove(0));
                    prop_assert_eq!(got, want);
                    if let Some((t, _)) = want {
                        now = t;
                    }
                } else {
                    let t = now + if small { delta % 4 } else { delta };
                    q.push(t, seq);
                    reference.push((t, seq));
                    seq += 1;
                }
                reference.sort();
                prop_assert_eq!(q.peek_time(), reference.first().map(|p| p.0));
                prop_assert_eq!(q.len(), reference.len());
            }
        }
    }
}
