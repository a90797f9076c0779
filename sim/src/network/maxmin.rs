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
//!
//! Under all-to-all or broadcast traffic the component is every running flow, so the
//! recomputation is memory-bound on the flows and laid out for it: routes in one arena,
//! marks and new rates in dense per-slot arrays, the per-flow state settled in 32 bytes.
//! The search for the component stops as soon as it has found every link that carries a
//! flow (it follows the links it found last first, which reaches the far side of the
//! network after a link or two), and a component that large is walked in slot order.
//! None of this changes the arithmetic: each link's share is the same sequence of
//! operations as before, so rates and ends are bit-identical.

use super::loggp::ceil_ns;
use crate::queue::Time;
use std::cmp::{Ordering, Reverse};
use std::collections::binary_heap::PeekMut;
use std::collections::{BTreeSet, BinaryHeap};

/// What a recomputation settles of a flow slot, four to a 128-byte pair of cache lines
/// (its route, cap and marks live in [`FlowNet`]'s dense per-slot arrays).
#[derive(Clone, Copy, Debug, Default)]
#[repr(align(32))]
struct Flow {
    remaining: f64,
    rate: f64,
    last: Time,
    /// Predicted end under the current rate (`Time::MAX`: none, the flow is not running).
    end: Time,
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
///
/// Per-slot data is laid out for the recomputation, which is memory-bound: it touches
/// every flow of a component, and under all-to-all traffic that is every active flow.
#[derive(Debug, Default)]
pub(crate) struct FlowNet {
    capacity: Vec<f64>,
    on_link: Vec<Vec<u32>>,
    /// Beside each entry of `on_link`: the index of that link in the flow's route.
    on_link_hop: Vec<Vec<u32>>,
    flows: Vec<Flow>,
    /// Per slot: its rate cap (infinite when it cannot bind), its route's length, whether
    /// it is sharing links.
    cap: Vec<f64>,
    len: Vec<u32>,
    running: Vec<bool>,
    /// Every slot's route, `stride` entries a slot (the longest route so far), so a
    /// recomputation reads routes from one array instead of one allocation per flow.
    routes: Vec<u32>,
    /// Beside `routes`: where the flow stands in each of its links' lists
    /// (`on_link[route[i]][pos[i]]`), so it leaves them in O(1).
    pos: Vec<u32>,
    stride: usize,
    free: Vec<u32>,
    dirty: Vec<u32>,
    active: usize,
    /// Links with at least one flow on them.
    busy_links: usize,
    /// Predicted ends of running flows, `(time, slot)`: the earliest is the next flow event.
    ends: BTreeSet<(Time, u32)>,
    // Scratch, reused by every recomputation.
    epoch: u32,
    link_seen: Vec<u32>,
    /// Per slot: the recomputation that last took the flow into its component, the one
    /// that last froze it, and the rate it froze at.
    flow_seen: Vec<u32>,
    flow_fixed: Vec<u32>,
    new_rate: Vec<f64>,
    left: Vec<f64>,
    unfixed: Vec<u32>,
    comp_links: Vec<u32>,
    comp_flows: Vec<u32>,
    todo: Vec<u32>,
    /// The last component was every running flow (`comp_flows` then left empty).
    whole: bool,
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
        if route.len() > self.stride {
            self.widen(route.len());
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.flows.push(Flow::default());
                self.cap.push(0.0);
                self.len.push(0);
                self.running.push(false);
                self.flow_seen.push(0);
                self.flow_fixed.push(0);
                self.new_rate.push(0.0);
                self.routes.resize(self.flows.len() * self.stride, 0);
                self.pos.resize(self.flows.len() * self.stride, 0);
                (self.flows.len() - 1) as u32
            }
        };
        let (s, at) = (slot as usize, slot as usize * self.stride);
        self.routes[at..at + route.len()].copy_from_slice(route);
        self.len[s] = route.len() as u32;
        // A cap at or above the narrowest link of the route can never bind.
        let narrowest = route.iter().map(|&l| self.capacity[l as usize]).fold(f64::INFINITY, f64::min);
        self.cap[s] = if cap >= narrowest { f64::INFINITY } else { cap };
        self.running[s] = false;
        self.flows[s] = Flow { remaining: bytes, rate: 0.0, last: 0, end: Time::MAX };
        slot
    }

    /// Lays the route arenas out again at `stride` entries a slot (a route longer than
    /// any before: rare, the first flows of a run).
    fn widen(&mut self, stride: usize) {
        let (old, slots) = (self.stride, self.flows.len());
        let mut routes = vec![0; slots * stride];
        let mut pos = vec![0; slots * stride];
        for s in 0..slots {
            routes[s * stride..s * stride + old].copy_from_slice(&self.routes[s * old..(s + 1) * old]);
            pos[s * stride..s * stride + old].copy_from_slice(&self.pos[s * old..(s + 1) * old]);
        }
        (self.routes, self.pos, self.stride) = (routes, pos, stride);
    }

    /// The flow in `slot` starts sharing its links at `t`.
    pub fn start(&mut self, slot: u32, t: Time) {
        let s = slot as usize;
        debug_assert!(!self.running[s]);
        self.running[s] = true;
        let f = &mut self.flows[s];
        f.last = t;
        f.rate = 0.0;
        let at = s * self.stride;
        for hop in 0..self.len[s] as usize {
            let l = self.routes[at + hop];
            let list = &mut self.on_link[l as usize];
            self.busy_links += usize::from(list.is_empty());
            self.pos[at + hop] = list.len() as u32;
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
        let s = slot as usize;
        debug_assert!(self.running[s]);
        self.running[s] = false;
        let f = &mut self.flows[s];
        if f.end != Time::MAX {
            self.ends.remove(&(f.end, slot));
            f.end = Time::MAX;
        }
        let at = s * self.stride;
        for hop in at..at + self.len[s] as usize {
            let (l, at) = (self.routes[hop] as usize, self.pos[hop] as usize);
            debug_assert_eq!(self.on_link[l][at], slot, "an active flow is on its links where it says");
            self.on_link[l].swap_remove(at);
            self.on_link_hop[l].swap_remove(at);
            self.busy_links -= usize::from(self.on_link[l].is_empty());
            // The flow moved into the hole learns its new place.
            if let (Some(&moved), Some(&hop)) = (self.on_link[l].get(at), self.on_link_hop[l].get(at)) {
                self.pos[moved as usize * self.stride + hop as usize] = at as u32;
            }
            self.dirty.push(l as u32);
        }
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
        if self.whole { self.active } else { self.comp_flows.len() }
    }

    /// Predicted end of a flow (for tests).
    #[cfg(test)]
    pub fn end(&self, slot: u32) -> Time {
        self.flows[slot as usize].end
    }

    /// Calls `visit` on every flow of the component just collected. A large component
    /// is walked in slot order, which the hardware prefetches, instead of in the order
    /// it was found; what a visit does to one flow does not depend on the others.
    fn for_component(&mut self, mut visit: impl FnMut(&mut Self, u32)) {
        let comp = std::mem::take(&mut self.comp_flows);
        if self.whole {
            for f in 0..self.flows.len() {
                if self.running[f] {
                    visit(self, f as u32);
                }
            }
        } else if comp.len() * 4 >= self.flows.len() {
            let epoch = self.epoch;
            for f in 0..self.flows.len() {
                if self.flow_seen[f] == epoch {
                    visit(self, f as u32);
                }
            }
        } else {
            for &f in &comp {
                visit(self, f);
            }
        }
        self.comp_flows = comp;
    }

    /// Refills the component touched since the last call, at time `t`, and re-predicts the
    /// end of every flow whose rate changed (other flows' predicted ends still hold).
    /// Returns how many flows changed rate.
    ///
    /// The component is collected from the dense marks and routes alone; the flows
    /// themselves are then settled in one walk and re-predicted in another (see
    /// [`Self::for_component`]), the filling in between touching only dense arrays.
    pub fn recompute(&mut self, t: Time) -> usize {
        if self.dirty.is_empty() {
            return 0;
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            // Wrapped: clear the marks so an old stamp can never look current.
            self.link_seen.iter_mut().for_each(|m| *m = 0);
            self.flow_seen.iter_mut().for_each(|m| *m = 0);
            self.flow_fixed.iter_mut().for_each(|m| *m = 0);
            self.epoch = 1;
        }
        let epoch = self.epoch;
        self.comp_links.clear();
        self.comp_flows.clear();
        self.capped.clear();
        // Busy links found so far: once that is all of them, the component is every
        // running flow and the search stops (under all-to-all traffic, almost at once).
        let mut busy = 0;
        for l in self.dirty.drain(..) {
            if self.link_seen[l as usize] != epoch {
                self.link_seen[l as usize] = epoch;
                self.comp_links.push(l);
                busy += usize::from(!self.on_link[l as usize].is_empty());
            }
        }
        // Links to search from, last found first: a link found through a flow is on the
        // far side of it, so in all-to-all traffic the other end of the network turns
        // up after a link or two.
        let mut todo = std::mem::take(&mut self.todo);
        todo.clear();
        todo.extend(self.comp_links.iter().rev());
        self.whole = false;
        while let Some(l) = todo.pop() {
            if busy == self.busy_links {
                // Every busy link is in `comp_links` already.
                self.whole = true;
                break;
            }
            let l = l as usize;
            for &f in &self.on_link[l] {
                if self.flow_seen[f as usize] == epoch {
                    continue;
                }
                self.flow_seen[f as usize] = epoch;
                self.comp_flows.push(f);
                let at = f as usize * self.stride;
                for &l2 in &self.routes[at..at + self.len[f as usize] as usize] {
                    if self.link_seen[l2 as usize] != epoch {
                        self.link_seen[l2 as usize] = epoch;
                        self.comp_links.push(l2);
                        todo.push(l2);
                        busy += 1;
                    }
                }
            }
        }
        self.todo = todo;
        if self.whole {
            self.comp_flows.clear();
        }

        // Settle bytes at the old rates; list the caps that can bind.
        self.for_component(|net, f| {
            let fl = &mut net.flows[f as usize];
            fl.remaining = (fl.remaining - fl.rate * (t - fl.last) as f64).max(0.0);
            fl.last = t;
            let cap = net.cap[f as usize];
            if cap.is_finite() {
                net.capped.push((cap, f));
            }
        });

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
        self.to_fix = if self.whole { self.active } else { self.comp_flows.len() };
        self.capped.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut next_cap = 0;
        while self.to_fix > 0 {
            while next_cap < self.capped.len() && self.flow_fixed[self.capped[next_cap].1 as usize] == epoch {
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
                if self.flow_fixed[f as usize] != epoch {
                    self.fix(f, share);
                }
            }
        }

        // New rates and, where the rate changed, new predicted ends.
        let mut changed = 0;
        self.for_component(|net, f| {
            let new_rate = net.new_rate[f as usize];
            let fl = &mut net.flows[f as usize];
            if new_rate == fl.rate {
                return;
            }
            changed += 1;
            fl.rate = new_rate;
            if fl.end != Time::MAX {
                net.ends.remove(&(fl.end, f));
            }
            fl.end = if fl.rate > 0.0 { t.saturating_add(ceil_ns(fl.remaining / fl.rate)) } else { Time::MAX };
            if fl.end != Time::MAX {
                net.ends.insert((fl.end, f));
            }
        });
        changed
    }

    /// Freezes flow `f` at `rate` and takes that rate off each of its links.
    fn fix(&mut self, f: u32, rate: f64) {
        let s = f as usize;
        self.flow_fixed[s] = self.epoch;
        self.new_rate[s] = rate;
        self.to_fix -= 1;
        let at = s * self.stride;
        for &l in &self.routes[at..at + self.len[s] as usize] {
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

#[cfg(test)]
mod reference {
    use super::*;
    use proptest::prelude::*;

    /// Max-min rates by the textbook progressive filling, recomputed from scratch over
    /// every running flow: raise all unfrozen flows together to the lowest of the link
    /// shares and the caps, freeze the flows it binds, repeat.
    fn max_min(capacity: &[f64], flows: &[(Vec<u32>, f64)]) -> Vec<f64> {
        let mut rate = vec![f64::NAN; flows.len()];
        let mut left = capacity.to_vec();
        while rate.iter().any(|r| r.is_nan()) {
            let unfrozen: Vec<usize> = (0..flows.len()).filter(|&f| rate[f].is_nan()).collect();
            let on = |l: usize| -> Vec<usize> {
                unfrozen.iter().copied().filter(|&f| flows[f].0.contains(&(l as u32))).collect()
            };
            let mut level = f64::INFINITY;
            let mut bottleneck = Vec::new();
            for (l, &room) in left.iter().enumerate() {
                let users = on(l);
                if !users.is_empty() && room / (users.len() as f64) < level {
                    level = room / users.len() as f64;
                    bottleneck = users;
                }
            }
            let cap = unfrozen.iter().map(|&f| flows[f].1).fold(f64::INFINITY, f64::min);
            let frozen: Vec<(usize, f64)> = if cap < level {
                unfrozen.iter().filter(|&&f| flows[f].1 == cap).map(|&f| (f, cap)).collect()
            } else {
                bottleneck.iter().map(|&f| (f, level)).collect()
            };
            for (f, r) in frozen {
                rate[f] = r;
                for &l in &flows[f].0 {
                    left[l as usize] = (left[l as usize] - r).max(0.0);
                }
            }
        }
        rate
    }

    proptest! {
        /// Flows start and end in random batches over few links (so the component is
        /// often every running flow) or many (small components); after each batch every
        /// running flow's rate is the from-scratch max-min rate.
        #[test]
        fn incremental_rates_are_the_from_scratch_max_min_rates(
            links in 2usize..12,
            batches in proptest::collection::vec(
                proptest::collection::vec((0u32..64, 0u32..64, 0u32..64, 1u32..40, any::<bool>()), 1..6), 1..30),
        ) {
            let mut net = FlowNet::default();
            let capacity: Vec<f64> = (0..links).map(|l| 4.0 + l as f64).collect();
            for &c in &capacity {
                net.add_link(c);
            }
            let mut running: Vec<(u32, Vec<u32>, f64)> = Vec::new();
            for (t, batch) in batches.iter().enumerate() {
                for &(a, b, c, cap, end) in batch {
                    if end && !running.is_empty() {
                        let (slot, _, _) = running.swap_remove(a as usize % running.len());
                        net.finish(slot);
                        continue;
                    }
                    let mut route: Vec<u32> = [a, b, c].iter().map(|&x| x % links as u32).collect();
                    route.sort_unstable();
                    route.dedup();
                    let cap = if cap > 30 { f64::INFINITY } else { f64::from(cap) / 4.0 };
                    let slot = net.insert(&route, 1e6, cap);
                    net.start(slot, t as Time);
                    running.push((slot, route, cap));
                }
                net.recompute(t as Time);
                let flows: Vec<(Vec<u32>, f64)> = running.iter().map(|(_, r, c)| (r.clone(), *c)).collect();
                let want = max_min(&capacity, &flows);
                for ((slot, _, _), want) in running.iter().zip(want) {
                    let got = net.rate(*slot);
                    prop_assert!((got - want).abs() <= 1e-9 * want.max(1.0), "flow {slot}: {got} against {want}");
                }
            }
        }
    }
}
