//! Max-min fair sharing of links by flows (progressive filling), recomputed only over the
//! part of the network a change touches.
//!
//! Links have capacities (bytes/ns) and flows have a route (a list of links), a cap on
//! their own rate and bytes left. Rates are max-min fair: raise every flow's rate together
//! until a link is full or a flow reaches its cap; freeze those flows; go on with the rest.
//! Shares are taken from a heap of "level" candidates (a link's remaining capacity over its
//! unfrozen flows, or a flow's cap); when flows freeze at level `m`, every other link's level
//! can only rise, so stale heap entries are skipped lazily.
//!
//! A change (a flow starting or ending) marks its links dirty. [`FlowNet::recompute`]
//! collects the connected component of the dirty links (links to their flows to those flows'
//! links...), settles those flows' bytes at the old rates, and refills only that component:
//! max-min rates decompose over components, so flows elsewhere keep theirs. The cost is
//! proportional to the component: `O(sum of route lengths * log)` of the flows in it.

use super::loggp::ceil_ns;
use crate::queue::Time;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// A flow slot.
#[derive(Clone, Debug, Default)]
struct Flow {
    route: Vec<u32>,
    remaining: f64,
    rate: f64,
    cap: f64,
    last: Time,
    version: u32,
    active: bool,
    fixed: bool,
    new_rate: f64,
}

/// A candidate level: a link's fair share or a flow's cap. Ordered by value, then link
/// before flow, then index, so ties resolve the same way every run.
#[derive(Clone, Copy, Debug)]
struct Level {
    value: f64,
    flow: bool,
    index: u32,
    version: u32,
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
        self.value
            .total_cmp(&other.value)
            .then(self.flow.cmp(&other.flow))
            .then(self.index.cmp(&other.index))
            .then(self.version.cmp(&other.version))
    }
}

/// Links, the flows on them, and scratch space for recomputation.
#[derive(Debug, Default)]
pub(crate) struct FlowNet {
    capacity: Vec<f64>,
    on_link: Vec<Vec<u32>>,
    flows: Vec<Flow>,
    free: Vec<u32>,
    dirty: Vec<u32>,
    active: usize,
    // Scratch, reused by every recomputation.
    epoch: u32,
    link_seen: Vec<u32>,
    flow_seen: Vec<u32>,
    left: Vec<f64>,
    unfixed: Vec<u32>,
    link_version: Vec<u32>,
    comp_links: Vec<u32>,
    comp_flows: Vec<u32>,
    heap: BinaryHeap<Reverse<Level>>,
    changed: Vec<(u32, u32, Time)>,
}

impl FlowNet {
    /// Adds a link of `bytes_per_ns` capacity (> 0) and returns its index.
    pub fn add_link(&mut self, bytes_per_ns: f64) -> u32 {
        debug_assert!(bytes_per_ns > 0.0);
        self.capacity.push(bytes_per_ns);
        self.on_link.push(Vec::new());
        self.link_seen.push(0);
        self.left.push(0.0);
        self.unfixed.push(0);
        self.link_version.push(0);
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
        f.cap = cap;
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
        f.version = f.version.wrapping_add(1);
        for &l in &f.route {
            self.on_link[l as usize].push(slot);
            self.dirty.push(l);
        }
        self.active += 1;
    }

    /// The flow in `slot` is through (at `t`, its predicted end): it leaves its links and
    /// its slot is free for reuse.
    pub fn finish(&mut self, slot: u32) {
        let f = &mut self.flows[slot as usize];
        debug_assert!(f.active);
        f.active = false;
        f.version = f.version.wrapping_add(1);
        for &l in &f.route {
            let list = &mut self.on_link[l as usize];
            let at = list.iter().position(|&s| s == slot).expect("an active flow is on its links");
            list.swap_remove(at);
            self.dirty.push(l);
        }
        self.free.push(slot);
        self.active -= 1;
    }

    /// Version of the flow's current rate; an end predicted under another version is stale.
    #[inline]
    pub fn version(&self, slot: u32) -> u32 {
        self.flows[slot as usize].version
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

    /// Refills the component touched since the last call, at time `t`. Returns the flows
    /// whose rate changed as `(slot, version, predicted end)`; other flows' predicted ends
    /// still hold.
    pub fn recompute(&mut self, t: Time) -> &[(u32, u32, Time)] {
        self.changed.clear();
        if self.dirty.is_empty() {
            return &self.changed;
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

        // Progressive filling.
        self.heap.clear();
        for &l in &self.comp_links {
            let l = l as usize;
            self.left[l] = self.capacity[l];
            self.unfixed[l] = self.on_link[l].len() as u32;
            self.link_version[l] = self.link_version[l].wrapping_add(1);
            if self.unfixed[l] > 0 {
                self.heap.push(Reverse(Level {
                    value: self.left[l] / self.unfixed[l] as f64,
                    flow: false,
                    index: l as u32,
                    version: self.link_version[l],
                }));
            }
        }
        for &f in &self.comp_flows {
            let cap = self.flows[f as usize].cap;
            if cap.is_finite() {
                self.heap.push(Reverse(Level { value: cap, flow: true, index: f, version: 0 }));
            }
        }
        while let Some(Reverse(level)) = self.heap.pop() {
            if level.flow {
                if !self.flows[level.index as usize].fixed {
                    self.fix(level.index, level.value);
                }
                continue;
            }
            let l = level.index as usize;
            if self.link_version[l] != level.version || self.unfixed[l] == 0 {
                continue;
            }
            let mut k = 0;
            while k < self.on_link[l].len() {
                let f = self.on_link[l][k];
                k += 1;
                if !self.flows[f as usize].fixed {
                    self.fix(f, level.value);
                }
            }
        }

        for &f in &self.comp_flows {
            let fl = &mut self.flows[f as usize];
            if fl.new_rate == fl.rate {
                continue;
            }
            fl.rate = fl.new_rate;
            fl.version = fl.version.wrapping_add(1);
            let end = if fl.rate > 0.0 { t.saturating_add(ceil_ns(fl.remaining / fl.rate)) } else { Time::MAX };
            self.changed.push((f, fl.version, end));
        }
        &self.changed
    }

    /// Freezes flow `f` at `rate` and takes that rate off each of its links.
    fn fix(&mut self, f: u32, rate: f64) {
        let fl = &mut self.flows[f as usize];
        fl.fixed = true;
        fl.new_rate = rate;
        for &l in &fl.route {
            let l = l as usize;
            self.left[l] = (self.left[l] - rate).max(0.0);
            self.unfixed[l] -= 1;
            self.link_version[l] = self.link_version[l].wrapping_add(1);
            if self.unfixed[l] > 0 {
                self.heap.push(Reverse(Level {
                    value: self.left[l] / self.unfixed[l] as f64,
                    flow: false,
                    index: l as u32,
                    version: self.link_version[l],
                }));
            }
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
        let changed = net.recompute(0).to_vec();
        assert_eq!(changed.len(), 3);
        // L1 is the bottleneck: f2 = f3 = 2; f1 gets the rest of L0.
        assert_eq!((net.rate(f1), net.rate(f2), net.rate(f3)), (8.0, 2.0, 2.0));
        // Predicted ends: 1000 / 8 = 125, 1000 / 2 = 500.
        assert_eq!(changed.iter().map(|c| c.2).collect::<Vec<_>>(), vec![125, 500, 500]);
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
        let mut changed = net.recompute(100).to_vec();
        changed.sort();
        // L0 now shared 5/5 and L1 4/1: f2 freezes at 4, f1 gets the 6 left on L0.
        assert_eq!((net.rate(f1), net.rate(f2)), (6.0, 4.0));
        // f1: 200 bytes at 6 B/ns -> ceil(33.3) = 34; f2: 800 at 4 -> 200.
        assert_eq!(changed, vec![(f1, net.version(f1), 134), (f2, net.version(f2), 300)]);
        assert_eq!(net.active(), 2);
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
        assert_eq!(net.recompute(0).len(), 2);
        let fa2 = net.insert(&[a], 100.0, f64::INFINITY);
        net.start(fa2, 5);
        let changed: Vec<u32> = net.recompute(5).iter().map(|c| c.0).collect();
        assert_eq!(changed, vec![fa, fa2]);
        assert_eq!((net.rate(fa), net.rate(fa2), net.rate(fb)), (5.0, 5.0, 10.0));
    }
}
