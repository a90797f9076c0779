//! Max-min fair sharing of links by flows (progressive filling), recomputed only for the
//! flows whose rate can change.
//!
//! Links have capacities (bytes/ns) and flows have a route (a list of links), a cap on
//! their own rate and bytes left. Rates are max-min fair: raise every flow's rate together
//! until a link is full or a flow reaches its cap; freeze those flows; go on with the rest.
//! Link levels (remaining capacity over unfrozen flows) come from a heap; when flows freeze
//! at level `m`, every other link's share can only rise, so a link found below its current
//! share is raised in place. Flow caps that can bind (below the route's narrowest link) come
//! from a sorted list.
//!
//! # Incremental recomputation
//!
//! An allocation is max-min fair exactly when it is feasible and every flow is *held*:
//! at its cap, or by a full link on which no flow has a higher rate. Each flow remembers
//! what holds it (its cap or one link), each link how many flows it holds and at what
//! level, and the sum of its flows' rates (in fixed point, so adding and removing rates
//! never drifts). A recomputation refills only a set of flows, the others keeping their
//! rates: progressive filling over the set's links with each link's capacity less what the
//! other flows use. Then every link the set crosses, or a finished flow left, is checked:
//! - a link the refill filled at level `m`: a flow outside the set with a higher rate there
//!   must come down (it joins the set), and so must the flows the link held at a lower level
//!   (they may rise);
//! - a link holding outside flows at level `b` that is no longer full, or on which a flow of
//!   the set now runs faster than `b`: the flows it held join the set (their rate can rise
//!   or must fall).
//!
//! The set starts as the flows that started plus those held by links a finished flow left,
//! and grows until no check fails; a flow outside the set on no checked link keeps what held
//! it, so the result is the max-min allocation (equal, within rounding, to a progressive
//! filling from scratch). A set that grows beyond half the running flows, or through many
//! rounds, becomes every running flow (a filling from scratch). Under all-to-all traffic a
//! rank's new batch of flows is usually the whole set: the cost follows the flows whose rate
//! changes, not the flows that share links with them.
//!
//! A flow's bytes are settled only when its rate changes: bytes left at its last rate change
//! less rate times the time since (one subtraction, not one per recomputation), and its
//! predicted end, in a heap that knows each slot's place ([`super::ends`]), is updated only
//! then, so no stale end is ever scheduled.

use super::ends::Ends;
use super::loggp::ceil_ns;
use crate::queue::Time;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::collections::binary_heap::PeekMut;

/// What holds a flow that its cap holds.
const BY_CAP: u32 = u32::MAX;
/// What holds a flow that has not been through a recomputation yet.
const UNHELD: u32 = u32::MAX - 1;
/// Rates and slack within this fraction of a link's capacity count as equal (rounding).
const TOL: f64 = 1e-11;
/// Link usage is summed in units of 2^-64 bytes/ns, as integers: exact, order-independent.
const SCALE: f64 = 18_446_744_073_709_551_616.0;
/// Rounds of a growing refill set before it becomes every running flow.
const MAX_ROUNDS: u32 = 16;
/// Up to this many running flows, a set is never widened to all of them for its size.
const SMALL: usize = 64;

/// A rate in link-usage units (a deterministic function of the rate).
#[inline]
fn fixed(rate: f64) -> i128 {
    (rate * SCALE) as i128
}

/// A flow's bytes and predicted end, four to a 128-byte pair of cache lines (its route,
/// cap and marks live in [`FlowNet`]'s dense per-slot arrays).
#[derive(Clone, Copy, Debug, Default)]
#[repr(align(32))]
struct Flow {
    /// Bytes left at `since`, its last rate change.
    left: f64,
    rate: f64,
    since: Time,
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
#[derive(Debug, Default)]
pub(crate) struct FlowNet {
    capacity: Vec<f64>,
    /// Per link: its flows, each with the index of that link in the flow's route (one
    /// list, so a flow joining or leaving touches one place per link).
    on_link: Vec<Vec<(u32, u32)>>,
    /// Per link: the sum of its flows' rates, in units of 2^-64 bytes/ns.
    used: Vec<i128>,
    /// Per link: how many flows it holds, and at what rate (the level it filled at).
    held: Vec<u32>,
    level: Vec<f64>,
    flows: Vec<Flow>,
    /// Per slot: its rate cap (infinite when it cannot bind), its route's length, whether
    /// it is sharing links, what holds it (a link, [`BY_CAP`] or [`UNHELD`]).
    cap: Vec<f64>,
    len: Vec<u32>,
    running: Vec<bool>,
    by: Vec<u32>,
    /// Every slot's route, `stride` entries a slot (the longest route so far), so a
    /// recomputation reads routes from one array instead of one allocation per flow.
    routes: Vec<u32>,
    /// Beside `routes`: where the flow stands in each of its links' lists
    /// (`on_link[route[i]][pos[i]].0`), so it leaves them in O(1).
    pos: Vec<u32>,
    stride: usize,
    free: Vec<u32>,
    /// Flows started and links left by finished flows since the last recomputation.
    started: Vec<u32>,
    touched: Vec<u32>,
    active: usize,
    /// Predicted ends of running flows, `(time, slot)`: the earliest is the next flow event.
    ends: Ends,
    // Scratch, reused by every recomputation. `epoch` counts recomputations, `round` the
    // refills within them; a mark equal to the current count means "yes".
    epoch: u32,
    round: u32,
    /// Per slot: in this recomputation's refill set; frozen in this round; the rate it
    /// froze at and what froze it.
    in_set: Vec<u32>,
    fixed_in: Vec<u32>,
    new_rate: Vec<f64>,
    new_by: Vec<u32>,
    /// Per link: among this recomputation's touched links; set up in this round.
    link_touched: Vec<u32>,
    link_round: Vec<u32>,
    /// Per link, for this round: usage and held flows outside the set, capacity left and
    /// set flows not frozen yet, sum and maximum of the set's new rates, the level the
    /// refill filled it at (NaN: it did not), and where its set flows sit in `csr`.
    outside: Vec<i128>,
    held_out: Vec<u32>,
    left: Vec<f64>,
    unfixed: Vec<u32>,
    sum_new: Vec<f64>,
    max_new: Vec<f64>,
    filled: Vec<f64>,
    csr_at: Vec<u32>,
    csr_end: Vec<u32>,
    csr: Vec<u32>,
    set: Vec<u32>,
    set_links: Vec<u32>,
    checked: Vec<u32>,
    grow: Vec<u32>,
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
        self.used.push(0);
        self.held.push(0);
        self.level.push(0.0);
        self.link_touched.push(0);
        self.link_round.push(0);
        self.outside.push(0);
        self.held_out.push(0);
        self.left.push(0.0);
        self.unfixed.push(0);
        self.sum_new.push(0.0);
        self.max_new.push(0.0);
        self.filled.push(f64::NAN);
        self.csr_at.push(0);
        self.csr_end.push(0);
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
                self.by.push(UNHELD);
                self.in_set.push(0);
                self.fixed_in.push(0);
                self.new_rate.push(0.0);
                self.new_by.push(UNHELD);
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
        self.by[s] = UNHELD;
        self.flows[s] = Flow { left: bytes, rate: 0.0, since: 0, end: Time::MAX };
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
        f.since = t;
        f.rate = 0.0;
        let at = s * self.stride;
        for hop in 0..self.len[s] as usize {
            let l = self.routes[at + hop];
            let list = &mut self.on_link[l as usize];
            self.pos[at + hop] = list.len() as u32;
            list.push((slot, hop as u32));
        }
        self.started.push(slot);
        self.active += 1;
    }

    /// The earliest predicted flow end, `(time, slot)`.
    #[inline]
    pub fn next_end(&self) -> Option<(Time, u32)> {
        self.ends.first()
    }

    /// The flow in `slot` is through: it leaves its links and its slot is free for reuse.
    pub fn finish(&mut self, slot: u32) {
        let s = slot as usize;
        debug_assert!(self.running[s]);
        self.running[s] = false;
        let f = &mut self.flows[s];
        if f.end != Time::MAX {
            self.ends.set(slot, None);
            f.end = Time::MAX;
        }
        let used = fixed(f.rate);
        if (self.by[s] as usize) < self.capacity.len() {
            self.held[self.by[s] as usize] -= 1;
        }
        self.by[s] = UNHELD;
        let at = s * self.stride;
        for hop in at..at + self.len[s] as usize {
            let (l, at) = (self.routes[hop] as usize, self.pos[hop] as usize);
            debug_assert_eq!(self.on_link[l][at].0, slot, "an active flow is on its links where it says");
            self.used[l] -= used;
            self.on_link[l].swap_remove(at);
            // The flow moved into the hole learns its new place.
            if let Some(&(moved, hop)) = self.on_link[l].get(at) {
                self.pos[moved as usize * self.stride + hop as usize] = at as u32;
            }
            self.touched.push(l as u32);
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

    /// Flows the last recomputation refilled (for tests).
    #[cfg(test)]
    pub fn refilled(&self) -> usize {
        self.set.len()
    }

    /// Predicted end of a flow (for tests).
    #[cfg(test)]
    pub fn end(&self, slot: u32) -> Time {
        self.flows[slot as usize].end
    }

    /// Bytes a flow has left at `t` under its current rate (for tests).
    #[cfg(test)]
    pub fn left_at(&self, slot: u32, t: Time) -> f64 {
        let f = &self.flows[slot as usize];
        (f.left - f.rate * (t - f.since) as f64).max(0.0)
    }

    /// Adds `f` to the refill set unless it is in it.
    fn join(&mut self, f: u32) {
        if self.in_set[f as usize] != self.epoch {
            self.in_set[f as usize] = self.epoch;
            self.grow.push(f);
        }
    }

    /// New rates for the flows that started or finished since the last call, at time `t`,
    /// and new predicted ends for every flow whose rate changed (other flows' predicted
    /// ends still hold). Returns how many flows changed rate.
    pub fn recompute(&mut self, t: Time) -> usize {
        if self.started.is_empty() && self.touched.is_empty() {
            return 0;
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            // Wrapped: clear the marks so an old stamp can never look current.
            self.in_set.iter_mut().for_each(|m| *m = 0);
            self.link_touched.iter_mut().for_each(|m| *m = 0);
            self.epoch = 1;
        }
        let epoch = self.epoch;
        self.set.clear();
        self.grow.clear();
        for i in 0..self.started.len() {
            let f = self.started[i];
            // A flow may have finished (and its slot been reused) before its first refill.
            if self.running[f as usize] && self.by[f as usize] == UNHELD {
                self.join(f);
            }
        }
        self.started.clear();
        std::mem::swap(&mut self.set, &mut self.grow);
        self.checked.clear();
        for i in 0..self.touched.len() {
            let l = self.touched[i];
            if self.link_touched[l as usize] != epoch {
                self.link_touched[l as usize] = epoch;
                self.checked.push(l);
            }
        }
        self.touched.clear();

        let mut rounds = 0;
        let mut whole = false;
        loop {
            rounds += 1;
            self.refill();
            if whole {
                break;
            }
            self.grow.clear();
            self.check();
            if self.grow.is_empty() {
                break;
            }
            let most = self.active > SMALL && (self.set.len() + self.grow.len()) * 2 > self.active;
            if rounds >= MAX_ROUNDS || most {
                // Every running flow, in slot order after those already in the set.
                whole = true;
                for f in 0..self.flows.len() {
                    if self.running[f] {
                        self.join(f as u32);
                    }
                }
            }
            self.set.extend_from_slice(&self.grow);
        }
        self.commit(t)
    }

    /// One round: progressive filling over the refill set, every other flow keeping its
    /// rate (and its share of each link).
    fn refill(&mut self) {
        self.round = self.round.wrapping_add(1);
        if self.round == 0 {
            self.fixed_in.iter_mut().for_each(|m| *m = 0);
            self.link_round.iter_mut().for_each(|m| *m = 0);
            self.round = 1;
        }
        let round = self.round;
        self.set_links.clear();
        self.capped.clear();
        // The set's links: what the flows outside it use and hold there.
        for &f in &self.set {
            let s = f as usize;
            let rate = fixed(self.flows[s].rate);
            let at = s * self.stride;
            for &l in &self.routes[at..at + self.len[s] as usize] {
                let l = l as usize;
                if self.link_round[l] != round {
                    self.link_round[l] = round;
                    self.set_links.push(l as u32);
                    self.outside[l] = self.used[l];
                    self.held_out[l] = self.held[l];
                    self.unfixed[l] = 0;
                    self.sum_new[l] = 0.0;
                    self.max_new[l] = 0.0;
                    self.filled[l] = f64::NAN;
                }
                self.outside[l] -= rate;
                self.held_out[l] -= u32::from(self.by[s] == l as u32);
                self.unfixed[l] += 1;
            }
            if self.cap[s].is_finite() {
                self.capped.push((self.cap[s], f));
            }
        }
        // Each link's set flows, together in `csr`.
        let mut at = 0;
        for &l in &self.set_links {
            let l = l as usize;
            (self.csr_at[l], self.csr_end[l]) = (at, at);
            at += self.unfixed[l];
        }
        self.csr.resize(at as usize, 0);
        for &f in &self.set {
            let at = f as usize * self.stride;
            for &l in &self.routes[at..at + self.len[f as usize] as usize] {
                self.csr[self.csr_end[l as usize] as usize] = f;
                self.csr_end[l as usize] += 1;
            }
        }

        // Progressive filling. Link shares come from a heap: a link's entry is pushed once
        // and raised in place when it comes out below its current share (shares only rise).
        // Binding flow caps come from a sorted list; at equal levels links go first.
        let mut levels = std::mem::take(&mut self.heap).into_vec();
        levels.clear();
        for &l in &self.set_links {
            let l = l as usize;
            self.left[l] = (self.capacity[l] - self.outside[l] as f64 / SCALE).max(0.0);
            let value = self.left[l] / self.unfixed[l] as f64;
            levels.push(Reverse(Level { value, index: l as u32 }));
        }
        self.heap = BinaryHeap::from(levels);
        self.to_fix = self.set.len();
        self.capped.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut next_cap = 0;
        while self.to_fix > 0 {
            while next_cap < self.capped.len() && self.fixed_in[self.capped[next_cap].1 as usize] == round {
                next_cap += 1;
            }
            let link_level = self.heap.peek().map(|Reverse(level)| level.value);
            let binding_cap = self.capped.get(next_cap).filter(|c| link_level.is_none_or(|v| c.0 < v));
            if let Some(&(cap, f)) = binding_cap {
                self.fix(f, cap, BY_CAP);
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
            self.filled[l] = share;
            for k in self.csr_at[l]..self.csr_end[l] {
                let f = self.csr[k as usize];
                if self.fixed_in[f as usize] != round {
                    self.fix(f, share, l as u32);
                }
            }
        }
    }

    /// Freezes flow `f` of the set at `rate`, held by `by`, and takes that rate off each of
    /// its links.
    fn fix(&mut self, f: u32, rate: f64, by: u32) {
        let s = f as usize;
        self.fixed_in[s] = self.round;
        self.new_rate[s] = rate;
        self.new_by[s] = by;
        self.to_fix -= 1;
        let at = s * self.stride;
        for &l in &self.routes[at..at + self.len[s] as usize] {
            let l = l as usize;
            self.left[l] = (self.left[l] - rate).max(0.0);
            self.unfixed[l] -= 1;
            self.sum_new[l] += rate;
            self.max_new[l] = self.max_new[l].max(rate);
        }
    }

    /// Flows outside the set that this round's refill leaves without something holding
    /// them (see the module docs) go to `grow`.
    fn check(&mut self) {
        let round = self.round;
        for i in 0..self.set_links.len() + self.checked.len() {
            let (l, in_round) = match i.checked_sub(self.set_links.len()) {
                None => (self.set_links[i] as usize, true),
                Some(j) => {
                    let l = self.checked[j] as usize;
                    if self.link_round[l] == round {
                        continue; // Checked as one of the set's links.
                    }
                    (l, false)
                }
            };
            let tol = TOL * self.capacity[l];
            if !in_round {
                // A link finished flows left and no flow of the set crosses.
                let slack = self.capacity[l] - self.used[l] as f64 / SCALE;
                if self.held[l] > 0 && slack > tol {
                    self.join_held(l);
                }
                continue;
            }
            let filled = self.filled[l];
            let (held, level) = (self.held_out[l] > 0, self.level[l]);
            if !filled.is_nan() {
                if held && filled > level + tol {
                    // The link's held flows run slower than the set's flows there.
                    self.join_held(l);
                } else if !held || filled < level - tol {
                    // Outside flows faster than the filled level must come down.
                    for k in 0..self.on_link[l].len() {
                        let f = self.on_link[l][k].0;
                        if self.in_set[f as usize] != self.epoch && self.flows[f as usize].rate > filled + tol {
                            self.join(f);
                        }
                    }
                }
            } else if held {
                let slack = self.capacity[l] - self.outside[l] as f64 / SCALE - self.sum_new[l];
                if slack > tol || self.max_new[l] > level + tol {
                    self.join_held(l);
                }
            }
        }
    }

    /// The flows outside the set that link `l` holds join it.
    fn join_held(&mut self, l: usize) {
        for k in 0..self.on_link[l].len() {
            let f = self.on_link[l][k].0;
            if self.by[f as usize] == l as u32 {
                self.join(f);
            }
        }
    }

    /// The last round's rates become the set's rates: links' usage and held counts follow,
    /// and each flow whose rate changed settles its bytes and gets a new predicted end.
    fn commit(&mut self, t: Time) -> usize {
        let round = self.round;
        for &l in &self.set_links {
            if !self.filled[l as usize].is_nan() {
                self.level[l as usize] = self.filled[l as usize];
            }
        }
        let mut changed = 0;
        for &f in &self.set {
            let s = f as usize;
            debug_assert_eq!(self.fixed_in[s], round, "every flow of the set froze");
            let (old_by, by) = (self.by[s], self.new_by[s]);
            if old_by != by {
                if (old_by as usize) < self.capacity.len() {
                    self.held[old_by as usize] -= 1;
                }
                if (by as usize) < self.capacity.len() {
                    self.held[by as usize] += 1;
                }
                self.by[s] = by;
            }
            let (old, new) = (self.flows[s].rate, self.new_rate[s]);
            if new == old {
                continue;
            }
            changed += 1;
            let delta = fixed(new) - fixed(old);
            let at = s * self.stride;
            for &l in &self.routes[at..at + self.len[s] as usize] {
                self.used[l as usize] += delta;
            }
            let fl = &mut self.flows[s];
            fl.left = (fl.left - old * (t - fl.since) as f64).max(0.0);
            fl.since = t;
            fl.rate = new;
            fl.end = if new > 0.0 { t.saturating_add(ceil_ns(fl.left / new)) } else { Time::MAX };
            self.ends.set(f, (fl.end != Time::MAX).then_some(fl.end));
        }
        changed
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
        assert_eq!(net.refilled(), 2, "fb was not refilled");
        assert_eq!((net.rate(fa), net.rate(fa2), net.rate(fb)), (5.0, 5.0, 10.0));
    }

    #[test]
    fn bytes_left_and_ends_follow_the_closed_form_under_staggered_starts() {
        // One 10 B/ns link. f1 (3000 B) alone from t = 0; f2 (3000 B) joins at 100; f3,
        // capped at 1/3 B/ns (never representable exactly), joins at 130; f1 ends, then f2.
        let mut net = FlowNet::default();
        let l = net.add_link(10.0);
        let f1 = net.insert(&[l], 3000.0, f64::INFINITY);
        net.start(f1, 0);
        net.recompute(0);
        assert_eq!(net.end(f1), 300);
        let f2 = net.insert(&[l], 3000.0, f64::INFINITY);
        net.start(f2, 100);
        net.recompute(100);
        // f1 has 3000 - 10 * 100 = 2000 B left, now at 5 B/ns: ends at 100 + 400.
        assert_eq!((net.left_at(f1, 100), net.rate(f1), net.end(f1)), (2000.0, 5.0, 500));
        assert_eq!(net.end(f2), 100 + 600);
        let f3 = net.insert(&[l], 1000.0, 1.0 / 3.0);
        net.start(f3, 130);
        net.recompute(130);
        // f3 takes 1/3; f1 and f2 share 10 - 1/3 = 29/6 each. At 130: f1 1850 B, f2 2850 B.
        let share = (10.0 - 1.0 / 3.0) / 2.0;
        assert_eq!((net.rate(f1), net.rate(f2), net.rate(f3)), (share, share, 1.0 / 3.0));
        assert_eq!(net.left_at(f1, 130), 1850.0);
        assert_eq!(net.end(f1), 130 + (1850.0 / share).ceil() as Time);
        assert_eq!(net.end(f2), 130 + (2850.0 / share).ceil() as Time);
        assert_eq!(net.end(f3), 130 + 3000, "1000 B at 1/3 B/ns");
        // Many more recomputations around f3 (flows coming and going beside it) leave its
        // bytes and end where the closed form puts them: they are not settled again.
        let (end1, t1) = (net.end(f1), 130.0 + 1850.0 / share);
        for k in 0..50 {
            let g = net.insert(&[l], 1e9, 0.25);
            net.start(g, 140 + k);
            net.recompute(140 + k);
            net.finish(g);
            net.recompute(140 + k);
        }
        assert_eq!(net.end(f3), 130 + 3000);
        assert_eq!(net.left_at(f3, 190), 1000.0 - 60.0 / 3.0);
        // f1 ends (its rate back where it was, its end too); f2 then runs alone at 10 B/ns.
        assert_eq!(net.end(f1), end1);
        net.finish(f1);
        net.recompute(end1);
        let f2_left = 2850.0 - share * (end1 - 130) as f64;
        assert!((net.left_at(f2, end1) - f2_left).abs() < 1e-9, "{} against {f2_left}", net.left_at(f2, end1));
        assert_eq!(net.rate(f2), 10.0 - 1.0 / 3.0);
        assert_eq!(net.end(f2), end1 + (f2_left / (10.0 - 1.0 / 3.0)).ceil() as Time);
        assert!(t1 <= end1 as f64);
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

    /// Every running flow's rate is the from-scratch max-min rate (within rounding).
    fn check_max_min(net: &FlowNet, capacity: &[f64], running: &[(u32, Vec<u32>, f64)]) -> Result<(), TestCaseError> {
        let flows: Vec<(Vec<u32>, f64)> = running.iter().map(|(_, r, c)| (r.clone(), *c)).collect();
        for ((slot, _, _), want) in running.iter().zip(max_min(capacity, &flows)) {
            let got = net.rate(*slot);
            prop_assert!((got - want).abs() <= 1e-9 * want.max(1.0), "flow {slot}: {got} against {want}");
        }
        Ok(())
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
                check_max_min(&net, &capacity, &running)?;
            }
        }

        /// A two-level network as the fabrics build (each of `nodes` nodes has an up-link
        /// and a down-link, flows cross one of `cores` core links between them), with more
        /// flows than above: refill sets that grow over several rounds and, past 64
        /// running flows, that become every running flow. After each batch every rate is
        /// the from-scratch max-min rate.
        #[test]
        fn incremental_rates_are_max_min_on_a_two_level_network(
            nodes in 3u32..12,
            cores in 1u32..4,
            batches in proptest::collection::vec(
                proptest::collection::vec((0u32..64, 0u32..64, 0u32..8, 1u32..60, 0u32..4), 1..24), 1..24),
        ) {
            let mut net = FlowNet::default();
            // Up-links 0..nodes, down-links nodes..2*nodes, core links after them.
            let capacity: Vec<f64> = (0..2 * nodes + cores)
                .map(|l| if l < 2 * nodes { 10.0 + f64::from(l % 3) } else { 7.0 + f64::from(l) / 3.0 })
                .collect();
            for &c in &capacity {
                net.add_link(c);
            }
            let mut running: Vec<(u32, Vec<u32>, f64)> = Vec::new();
            for (t, batch) in batches.iter().enumerate() {
                for &(a, b, core, cap, what) in batch {
                    if what == 0 && !running.is_empty() {
                        let (slot, _, _) = running.swap_remove(a as usize % running.len());
                        net.finish(slot);
                        continue;
                    }
                    let (src, dst) = (a % nodes, b % nodes);
                    let dst = if dst == src { (dst + 1) % nodes } else { dst };
                    let route = vec![src, 2 * nodes + core % cores, nodes + dst];
                    let cap = if cap > 40 { f64::INFINITY } else { f64::from(cap) / 8.0 };
                    let slot = net.insert(&route, 1e6, cap);
                    net.start(slot, t as Time);
                    running.push((slot, route, cap));
                }
                net.recompute(t as Time);
                check_max_min(&net, &capacity, &running)?;
            }
        }
    }
}
