//! Predicted flow ends: a 4-ary min-heap of `(time, slot)` that knows where each slot
//! sits, so a flow whose rate changed moves its end in `O(log n)` without allocating
//! (a `BTreeSet` allocates and frees nodes as ends come and go). Four children a node
//! halve the depth of a binary heap, and a node's children share a cache line or two:
//! with half a million running flows the heap is far larger than the cache.

use crate::queue::Time;

/// Where a slot with no end sits.
const ABSENT: u32 = u32::MAX;

/// The earliest `(time, slot)` first; ties by slot, so every run pops in the same order.
#[derive(Debug, Default)]
pub(crate) struct Ends {
    heap: Vec<(Time, u32)>,
    /// Per slot: its index in `heap`, or [`ABSENT`].
    at: Vec<u32>,
}

impl Ends {
    /// The earliest end.
    #[inline]
    pub fn first(&self) -> Option<(Time, u32)> {
        self.heap.first().copied()
    }

    /// Sets `slot`'s end to `time`, or removes it (`None`).
    pub fn set(&mut self, slot: u32, time: Option<Time>) {
        let s = slot as usize;
        if s >= self.at.len() {
            self.at.resize(s + 1, ABSENT);
        }
        let i = self.at[s];
        match (i, time) {
            (ABSENT, None) => {}
            (ABSENT, Some(t)) => {
                self.heap.push((t, slot));
                self.at[s] = (self.heap.len() - 1) as u32;
                self.up(self.heap.len() - 1);
            }
            (i, Some(t)) => {
                let i = i as usize;
                let old = self.heap[i];
                self.heap[i] = (t, slot);
                if (t, slot) < old { self.up(i) } else { self.down(i) }
            }
            (i, None) => {
                let i = i as usize;
                self.at[s] = ABSENT;
                let last = self.heap.pop().expect("a slot with a place is in the heap");
                if i < self.heap.len() {
                    let old = self.heap[i];
                    self.heap[i] = last;
                    self.at[last.1 as usize] = i as u32;
                    if last < old { self.up(i) } else { self.down(i) }
                }
            }
        }
    }

    /// Ends held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    fn up(&mut self, mut i: usize) {
        let item = self.heap[i];
        while i > 0 {
            let parent = (i - 1) / 4;
            if self.heap[parent] <= item {
                break;
            }
            self.heap[i] = self.heap[parent];
            self.at[self.heap[i].1 as usize] = i as u32;
            i = parent;
        }
        self.heap[i] = item;
        self.at[item.1 as usize] = i as u32;
    }

    fn down(&mut self, mut i: usize) {
        let item = self.heap[i];
        let n = self.heap.len();
        loop {
            let first = 4 * i + 1;
            if first >= n {
                break;
            }
            let mut child = first;
            for c in first + 1..(first + 4).min(n) {
                if self.heap[c] < self.heap[child] {
                    child = c;
                }
            }
            if item <= self.heap[child] {
                break;
            }
            self.heap[i] = self.heap[child];
            self.at[self.heap[i].1 as usize] = i as u32;
            i = child;
        }
        self.heap[i] = item;
        self.at[item.1 as usize] = i as u32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    proptest! {
        /// Any sequence of sets and removals leaves the same earliest end as a sorted set.
        #[test]
        fn the_first_end_is_a_sorted_sets_first(ops in proptest::collection::vec((0u32..40, 0u64..50, any::<bool>()), 1..300)) {
            let (mut ends, mut want, mut now) = (Ends::default(), BTreeSet::new(), vec![None; 40]);
            for (slot, time, remove) in ops {
                if let Some(old) = now[slot as usize].take() {
                    want.remove(&(old, slot));
                }
                if !remove {
                    want.insert((time, slot));
                    now[slot as usize] = Some(time);
                }
                ends.set(slot, (!remove).then_some(time));
                prop_assert_eq!(ends.first(), want.first().copied());
                prop_assert_eq!(ends.len(), want.len());
            }
        }
    }
}
