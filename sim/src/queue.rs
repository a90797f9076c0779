//! The event queue: a binary heap ordered by (time, insertion sequence), so events at
//! the same virtual time come out in the order they were scheduled. Determinism is
//! never a build option.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Virtual time in nanoseconds.
pub type Time = u64;

/// A deterministic priority queue of events.
///
/// ```
/// use dagwire_sim::queue::EventQueue;
/// let mut q = EventQueue::default();
/// q.push(20, "late");
/// q.push(10, "first");
/// q.push(10, "second");
/// assert_eq!(q.pop(), Some((10, "first")));
/// assert_eq!(q.pop(), Some((10, "second")));
/// assert_eq!(q.pop(), Some((20, "late")));
/// assert_eq!(q.pop(), None);
/// ```
#[derive(Debug)]
pub struct EventQueue<E> {
    heap: BinaryHeap<Reverse<Entry<E>>>,
    next_seq: u64,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        EventQueue { heap: BinaryHeap::new(), next_seq: 0 }
    }
}

#[derive(Debug)]
struct Entry<E> {
    time: Time,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.seq) == (other.time, other.seq)
    }
}
impl<E> Eq for Entry<E> {}
impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Entry<E> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.time, self.seq).cmp(&(other.time, other.seq))
    }
}

impl<E> EventQueue<E> {
    /// Schedules `event` at `time`.
    pub fn push(&mut self, time: Time, event: E) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Reverse(Entry { time, seq, event }));
    }

    /// The earliest event, ties broken by insertion order.
    pub fn pop(&mut self) -> Option<(Time, E)> {
        self.heap.pop().map(|Reverse(e)| (e.time, e.event))
    }

    /// Time of the earliest event.
    pub fn peek_time(&self) -> Option<Time> {
        self.heap.peek().map(|Reverse(e)| e.time)
    }

    /// Events pending.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// True when nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
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
