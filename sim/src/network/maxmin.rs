//! Max-min fair sharing of links by flows (progressive filling), recomputed only over the
//! part of the network a change touches.
//!
//! Links have capacities (bytes/ns) and flows have a route (a list of links), a cap on
//! their own rate and bytes left. Rates are max-min fair: raise every flow's rate together
//! until a link is full or a flow reaches its cap; freeze those flows; go on with the rest.
//! Link levels (remaining capacity over unfrozen flows) come from a heap; when flows freeze
//! at level `m`, every other link's share can only rise, so a link found below its current
//! share is raised in place. Flow caps that can bind (below the route's narrowest link) come
//! from a sorted list.
//!
//! A change (a flow starting or ending) marks its links dirty. [`FlowNet::recompute`]
//! collects the connected component of the dirty links (links to their flows to those flows'
//! links...), settles those flows' bytes at the old rates, and refills only that component:
//! max-min rates decompose over components, so flows elsewhere keep theirs. The cost is
//! proportional to the component: `O(sum of route lengths * log)` of the flows in it.
//! Predicted ends live in a `BTreeSet<(time, slot)>` updated only for flows whose rate
//! changed, so no stale end is ever scheduled.

use super::loggp::ceil_ns;
use crate::queue::Time;
use std::cmp::{Ordering, Reverse};
use std::collections::binary_heap::PeekMut;
use std::collections::{BTreeSet, BinaryHeap};

/// A flow slot.
#[derive(Clone, Debug, Default)]
struct Flow {
    route: Vec<u32>,
    /// Where the flow stands in each of its links' lists (`on_link[route[i]][pos[i]]`), so
    /// it leaves them in O(1).
    pos: Vec<u32>,
    remaining: f64,
    rate: f64,
    cap: f64,
    last: Time,
    /// Predicted end under the current rate (`Time::MAX`: none, the flow is not running).
    end: Time,
    active: bool,
    fixed: bool,
    new_rate: f64,
}

/// A link's fair share (a lower bound of it once the link has changed). Ordered by value,
/// then link index, so ties resolve the same way every run.
#[derive(Clone, Copy, Debug)]
struct Level {
    value: f64,
    index: u32,
}

impl PartialEq for Level {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Level {}
impl PartialOrd for Level {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Level {
    fn cmp(&self, other: &Self) -> Ordering {
        self.value.total_cmp(&other.value).then(self.index.cmp(&other.index))
    }
}

/// Links, the flows on them, their predicted ends, and scratch space for recomputation.
#[derive(Debug, Default)]
pub(crate) struct FlowNet {
    capacity: Vec<f64>,
    on_link: Vec<Vec<u32>>,
    /// Beside each entry of `on_link`: the index of that link in the flow's route.
    on_link_hop: Vec<Vec<u32>>,
    flows: Vec<Flow>,
    free: Vec<u32>,
    dirty: Vec<u32>,
    active: usize,
    /// Predicted ends of running flows, `(time, slot)`: the earliest is the next flow event.
    ends: BTreeSet<(Time, u32)>,
    // Scratch, reused by every recomputation.
    epoch: u32,
    link_seen: Vec<u32>,
    flow_seen: Vec<u32>,
    left: Vec<f64>,
    unfixed: Vec<u32>,
    comp_links: Vec<u32>,
    comp_flows: Vec<u32>,
    heap: BinaryHeap<Reverse<Level>>,
    capped: Vec<(f64, u32)>,
    to_fix: usize,
}

impl FlowNet {
    /// Adds a link of `bytes_per_ns` capacity (> 0) and returns its index.
    pub fn add_link(&mut self, bytes_per_ns: f64) -> u32 {
        debug_assert!(bytes_per_ns > 0.0);
        self.capacity.push(bytes_per_ns);
        self.on_link.push(Vec::new());
        self.on_link_hop.push(Vec::new());
        self.link_seen.push(0);
        self.left.push(0.0);
        self.unfixed.push(0);
        (self.capacity.len() - 1) as u32
    }

    /// Prepares a flow of `bytes` (> 0) over `route`, its rate capped at `cap` bytes/ns; it
    /// takes no bandwidth until [`Self::start`]. Returns its slot.
    pub fn insert(&mut self, route: &[u32], bytes: f64, cap: f64) -> u32 {
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.flows.push(Flow::default());
                self.flow_seen.push(0);
                (self.flows.len() - 1) as u32
            }
        };
        let f = &mut self.flows[slot as usize];
        f.route.clear();
        f.route.extend_from_slice(route);
        f.remaining = bytes;
        f.rate = 0.0;
        // A cap at or above the narrowest link of the route can never bind.
        let narrowest = route.iter().map(|&l| self.capacity[l as usize]).fold(f64::INFINITY, f64::min);
        f.cap = if cap >= narrowest { f64::INFINITY } else { cap };
        f.end = Time::MAX;
        f.active = false;
        slot
    }

    /// The flow in `slot` starts sharing its links at `t`.
    pub fn start(&mut self, slot: u32, t: Time) {
        let f = &mut self.flows[slot as usize];
        debug_assert!(!f.active);
        f.active = true;
        f.last = t;
        f.rate = 0.0;
        f.pos.clear();
        for (hop, &l) in f.route.iter().enumerate() {
            let list = &mut self.on_link[l as usize];
            f.pos.push(list.len() as u32);
            list.push(slot);
            self.on_link_hop[l as usize].push(hop as u32);
            self.dirty.push(l);
        }
        self.active += 1;
    }

    /// The earliest predicted flow end, `(time, slot)`.
    #[inline]
    pub fn next_end(&self) -> Option<(Time, u32)> {
        self.ends.first().copied()
    }

    /// The flow in `slot` is through: it leaves its links and its slot is free for reuse.
    pub fn finish(&mut self, slot: u32) {
        let f = &mut self.flows[slot as usize];
        debug_assert!(f.active);
        f.active = false;
        if f.end != Time::MAX {
            self.ends.remove(&(f.end, slot));
            f.end = Time::MAX;
        }
        let (route, pos) = (std::mem::take(&mut f.route), std::mem::take(&mut f.pos));
        for (&l, &at) in route.iter().zip(&pos) {
            let (l, at) = (l as usize, at as usize);
            debug_assert_eq!(self.on_link[l][at], slot, "an active flow is on its links where it says");
            self.on_link[l].swap_remove(at);
            self.on_link_hop[l].swap_remove(at);
            // The flow moved into the hole learns its new place.
            if let (Some(&moved), Some(&hop)) = (self.on_link[l].get(at), self.on_link_hop[l].get(at)) {
                self.flows[moved as usize].pos[hop as usize] = at as u32;
            }
            self.dirty.push(l as u32);
        }
        let f = &mut self.flows[slot as usize];
        (f.route, f.pos) = (route, pos);
        self.free.push(slot);
        self.active -= 1;
    }

    /// Flows currently sharing links.
    pub fn active(&self) -> usize {
        self.active
    }

    /// Current rate of a flow, bytes/ns (for tests).
    #[cfg(test)]
    pub fn rate(&self, slot: u32) -> f64 {
        self.flows[slot as usize].rate
    }

    /// Flows in the last recomputed component (for tests).
    #[cfg(test)]
    pub fn component_len(&self) -> usize {
        self.comp_flows.len()
    }

    /// Predicted end of a flow (for tests).
    #[cfg(test)]
    pub fn end(&self, slot: u32) -> Time {
        self.flows[slot as usize].end
    }

    /// Refills the component touched since the last call, at time `t`, and re-predicts the
    /// end of every flow whose rate changed (other flows' predicted ends still hold).
    /// Returns how many flows changed rate.
    pub fn recompute(&mut self, t: Time) -> usize {
        if self.dirty.is_empty() {
            return 0;
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            // Wrapped: clear the marks so an old stamp can never look current.
            self.link_seen.iter_mut().for_each(|m| *m = 0);
            self.flow_seen.iter_mut().for_each(|m| *m = 0);
            self.epoch = 1;
        }
        let epoch = self.epoch;
        self.comp_links.clear();
        self.comp_flows.clear();
        for l in self.dirty.drain(..) {
            if self.link_seen[l as usize] != epoch {
                self.link_seen[l as usize] = epoch;
                self.comp_links.push(l);
            }
        }
        let mut i = 0;
        while i < self.comp_links.len() {
            let l = self.comp_links[i] as usize;
            i += 1;
            for &f in &self.on_link[l] {
                if self.flow_seen[f as usize] == epoch {
                    continue;
                }
                self.flow_seen[f as usize] = epoch;
                self.comp_flows.push(f);
                for &l2 in &self.flows[f as usize].route {
                    if self.link_seen[l2 as usize] != epoch {
                        self.link_seen[l2 as usize] = epoch;
                        self.comp_links.push(l2);
                    }
                }
            }
        }

        // Settle bytes at the old rates.
        for &f in &self.comp_flows {
            let fl = &mut self.flows[f as usize];
            fl.remaining = (fl.remaining - fl.rate * (t - fl.last) as f64).max(0.0);
            fl.last = t;
            fl.fixed = false;
        }

        // Progressive filling. Link shares come from a heap: a link's entry is pushed once
        // and raised in place when it comes out below its current share (shares only rise).
        // Binding flow caps come from a sorted list; at equal levels links go first.
        let mut levels = std::mem::take(&mut self.heap).into_vec();
        levels.clear();
        for &l in &self.comp_links {
            let l = l as usize;
            self.left[l] = self.capacity[l];
            self.unfixed[l] = self.on_link[l].len() as u32;
            if self.unfixed[l] > 0 {
                let value = self.left[l] / self.unfixed[l] as f64;
                levels.push(Reverse(Level { value, index: l as u32 }));
            }
        }
        self.heap = BinaryHeap::from(levels);
        self.to_fix = self.comp_flows.len();
        self.capped.clear();
        for &f in &self.comp_flows {
            let cap = self.flows[f as usize].cap;
            if cap.is_finite() {
                self.capped.push((cap, f));
            }
        }
        self.capped.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut next_cap = 0;
        while self.to_fix > 0 {
            while next_cap < self.capped.len() && self.flows[self.capped[next_cap].1 as usize].fixed {
                next_cap += 1;
            }
            let link_level = self.heap.peek().map(|Reverse(level)| level.value);
            let binding_cap = self.capped.get(next_cap).filter(|c| link_level.is_none_or(|v| c.0 < v));
            if let Some(&(cap, f)) = binding_cap {
                self.fix(f, cap);
                continue;
            }
            let Some(mut top) = self.heap.peek_mut() else { break };
            let l = top.0.index as usize;
            if self.unfixed[l] == 0 {
                PeekMut::pop(top);
                continue;
            }
            let share = self.left[l] / self.unfixed[l] as f64;
            if share > top.0.value {
                top.0.value = share;
                continue;
            }
            PeekMut::pop(top);
            let mut k = 0;
            while k < self.on_link[l].len() {
                let f = self.on_link[l][k];
                k += 1;
                if !self.flows[f as usize].fixed {
                    self.fix(f, share);
                }
            }
        }

        let mut changed = 0;
        for &f in &self.comp_flows {
            let fl = &mut self.flows[f as usize];
            if fl.new_rate == fl.rate {
                continue;
            }
            changed += 1;
            fl.rate = fl.new_rate;
            if fl.end != Time::MAX {
                self.ends.remove(&(fl.end, f));
            }
            fl.end = if fl.rate > 0.0 { t.saturating_add(ceil_ns(fl.remaining / fl.rate)) } else { Time::MAX };
            if fl.end != Time::MAX {
                self.ends.insert((fl.end, f));
            }
        }
        changed
    }

    /// Freezes flow `f` at `rate` and takes that rate off each of its links.
    fn fix(&mut self, f: u32, rate: f64) {
        let fl = &mut self.flows[f as usize];
        fl.fixed = true;
        fl.new_rate = rate;
        self.to_fix -= 1;
        for &l in &fl.route {
            let l = l as usize;
            self.left[l] = (self.left[l] - rate).max(0.0);
            self.unfixed[l] -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Links L0 (10 B/ns) and L1 (4 B/ns); f1 on L0, f2 on L0+L1, f3 on L1.
    fn three_flows(cap1: f64) -> (FlowNet, [u32; 3]) {
        let mut net = FlowNet::default();
        let l0 = net.add_link(10.0);
        let l1 = net.add_link(4.0);
        let f1 = net.insert(&[l0], 1000.0, cap1);
        let f2 = net.insert(&[l0, l1], 1000.0, f64::INFINITY);
        let f3 = net.insert(&[l1], 1000.0, f64::INFINITY);
        for f in [f1, f2, f3] {
            net.start(f, 0);
        }
        (net, [f1, f2, f3])
    }

    #[test]
    fn progressive_filling_gives_max_min_rates() {
        let (mut net, [f1, f2, f3]) = three_flows(f64::INFINITY);
        assert_eq!(net.recompute(0), 3);
        // L1 is the bottleneck: f2 = f3 = 2; f1 gets the rest of L0.
        assert_eq!((net.rate(f1), net.rate(f2), net.rate(f3)), (8.0, 2.0, 2.0));
        // Predicted ends: 1000 / 8 = 125, 1000 / 2 = 500.
        assert_eq!((net.end(f1), net.end(f2), net.end(f3)), (125, 500, 500));
        assert_eq!(net.next_end(), Some((125, f1)));
    }

    #[test]
    fn a_flow_cap_freezes_that_flow_first() {
        let (mut net, [f1, f2, f3]) = three_flows(5.0);
        net.recompute(0);
        assert_eq!((net.rate(f1), net.rate(f2), net.rate(f3)), (5.0, 2.0, 2.0));
    }

    #[test]
    fn rates_rise_when_a_flow_leaves_and_settled_bytes_carry_over() {
        let (mut net, [f1, f2, f3]) = three_flows(f64::INFINITY);
        net.recompute(0);
        net.finish(f3); // at t = 100: f2 has 800 bytes left, f1 200.
        assert_eq!(net.recompute(100), 2);
        // L0 now shared 5/5 and L1 4/1: f2 freezes at 4, f1 gets the 6 left on L0.
        assert_eq!((net.rate(f1), net.rate(f2)), (6.0, 4.0));
        // f1: 200 bytes at 6 B/ns -> ceil(33.3) = 34; f2: 800 at 4 -> 200.
        assert_eq!((net.end(f1), net.end(f2)), (134, 300));
        assert_eq!(net.next_end(), Some((134, f1)));
        assert_eq!(net.active(), 2);
    }

    #[test]
    fn a_link_whose_share_rose_waits_for_its_turn() {
        // X is held to 1 by Lc; La's share then rises from 5 to 9, above Lb's 6,
        // so Lb must freeze s1 and s2 at 6 before La is considered.
        let mut net = FlowNet::default();
        let la = net.add_link(10.0);
        let lb = net.add_link(12.0);
        let lc = net.add_link(1.0);
        let x = net.insert(&[la, lc], 100.0, f64::INFINITY);
        let s1 = net.insert(&[la, lb], 100.0, f64::INFINITY);
        let s2 = net.insert(&[lb], 100.0, f64::INFINITY);
        for f in [x, s1, s2] {
            net.start(f, 0);
        }
        net.recompute(0);
        assert_eq!((net.rate(x), net.rate(s1), net.rate(s2)), (1.0, 6.0, 6.0));
    }

    #[test]
    fn only_the_touched_component_is_recomputed() {
        let mut net = FlowNet::default();
        let a = net.add_link(10.0);
        let b = net.add_link(10.0);
        let fa = net.insert(&[a], 100.0, f64::INFINITY);
        let fb = net.insert(&[b], 100.0, f64::INFINITY);
        net.start(fa, 0);
        net.start(fb, 0);
        assert_eq!(net.recompute(0), 2);
        let fa2 = net.insert(&[a], 100.0, f64::INFINITY);
        net.start(fa2, 5);
        assert_eq!(net.recompute(5), 2);
        assert_eq!(net.component_len(), 2, "fb's link was not touched");
        assert_eq!((net.rate(fa), net.rate(fa2), net.rate(fb)), (5.0, 5.0, 10.0));
    }
}
