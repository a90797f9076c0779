//! The network model: when does a message handed to the network at virtual time `now`
//! reach its receiver? LogGP costs per message (LogGOPSim's model), NIC and CPU queues, and,
//! in the flow fidelity, max-min fair sharing of topology links (SimGrid's flow model).
//!
//! # Semantics
//!
//! Rank `r` lives on node `r / ranks_per_node`. A message of `bytes` between two nodes uses
//! the machine's `inter_node` costs, within a node its `intra_node` costs; of those it uses
//! the **segment**: the last [`LogGpSegment`](crate::machine::LogGpSegment) with
//! `from_bytes <= bytes`. A 0-byte message costs what a 1-byte one does (`k = max(bytes, 1)`).
//!
//! Every term is rounded up to whole nanoseconds on its own (values within 1e-9 of an
//! integer count as that integer), so an **isolated message** of `k` bytes takes exactly
//!
//! ```text
//! T(k) = ceil(o_s) + ceil((k-1)*G) + ceil(L + (hops-1)*hop_ns) + ceil(o_r)
//! ```
//!
//! where `hops` is the number of switches (routers) on the route; intra-node messages and
//! single-switch routes add no hop latency.
//!
//! **Resources** are next-free times, as in LogGOPSim. Each rank has a sender CPU (`o_s`
//! serialises its sends in call order) and a receiver CPU (`o_r` serialises its receives in
//! arrival order); each node has a NIC of `nic_gbps` that all its ranks share.
//!
//! **NICs of a node with accelerators** (`[accelerators] nics = N`): the node has `N` NICs
//! of `nic_gbps / N` each, and NIC `i` serves the `ranks_per_node / N` consecutive ranks
//! (devices) from `i * ranks_per_node / N` on: rank `r` injects into, and receives through,
//! NIC `r / (ranks_per_node / N)`, which the ranks it serves share and no other rank uses.
//! Below, "its NIC" is that NIC, and `nic_gbps` reads `nic_gbps / N`. Without `nics` the
//! node's one NIC is as above (`N = 1`). Where the NIC sits relative to the devices' PCIe
//! switches is the `device` module's business.
//!
//! **Control messages** ([`Network::send_control`]) cost their receiver
//! `ceil(control_message_ns)` (the machine's `compute.control_message_ns`) more on its
//! receiver CPU, right after `o_r`: an isolated one takes `T(k) + ceil(control_message_ns)`.
//!
//! **Collective pieces** ([`Network::send_piece`]) carrying `m` messages with `b` payload
//! bytes cost both ends' CPU `c = ceil(m*collective_message_ns + b*collective_ns_per_byte)`
//! (the machine's `compute` keys) more: the sender's right after `o_s`, the receiver's
//! right after `o_r`, as LogGOPS's copies below: an isolated piece takes `T(k) + 2*c`.
//!
//! **LogGOPS** (a segment gives `o_per_byte_ns`, `O`): both ends' CPU also spend
//! `ceil((k-1)*O)` on the message, right after `o_s` and right after `o_r`, in series with
//! the wire: an isolated message takes `T(k) + 2*ceil((k-1)*O)`. A rank's sends and
//! receives then share one CPU, and that CPU time holds the rank's kernels
//! ([`Network::cpu_free`]); without `O` anywhere in the machine, `o_s` and `o_r` run on
//! separate CPUs beside the kernels, as in plain LogGP. A collective call
//! ([`Network::collective_call`], `compute.collective_call_ns`) takes the rank's CPU in
//! either model: its sends queue behind it and its kernels wait.
//!
//! **Analytic fidelity** ([`Fidelity::Analytic`]): after `o_s`, an inter-node message is
//! injected into its sender's NIC, whose consecutive injections are at least
//! `ceil(max(g, k*G, k*8/nic_gbps))` apart (so the NIC's injection bandwidth is shared by
//! the ranks it serves); its last byte arrives `ceil((k-1)*G) + ceil(L + hops)` after the
//! injection starts; then the receiver's `o_r`. No link is shared.
//!
//! **Flow fidelity** ([`Fidelity::Flow`]): after `o_s` and the NIC gap `ceil(g)`, the
//! message's `k-1` bytes (the first byte's time is part of `L`) move as a flow over the
//! sender's NIC's up-link (`nic_gbps`), the route's topology links and the receiver's NIC's
//! down-link (`nic_gbps`). Concurrent flows share links max-min fairly (progressive
//! filling); each flow's rate is also capped by `1/G`; rates are recomputed whenever a flow
//! starts or ends. When the last byte is through (the end rounded up to a whole ns), the
//! message arrives `ceil(L + hops)` later, then the receiver's `o_r`. On idle links at least
//! `1/G` fast the message therefore takes `T(k)`, as in the analytic fidelity.
//! Intra-node messages take the analytic path in both fidelities.
//!
//! **Intra-node** messages: after `o_s`, the sending rank's shared-memory injector keeps
//! consecutive intra-node sends at least `ceil(max(g, k*G))` apart; the last byte arrives
//! `ceil((k-1)*G) + ceil(L)` after the injection starts; then `o_r`.
//!
//! **Topologies** (see `topology/`): crossbar, k-ary 3-level fat-tree (destination-based
//! up-link choice), dragonfly (minimal local-global-local routing), 2D/3D torus
//! (dimension-order routing, shorter way round, `+` on a tie). Links are directional.
//!
//! Everything is deterministic: no clock, no randomness, no hash-map iteration. Within one
//! instant, flows ending then (by slot) go first, then queued steps in insertion order, then
//! one rate recomputation; deliveries come out ordered by `(time, id)`.
//!
//! # Cost
//!
//! Analytic: `O(log n)` per message (two heap events: arrival and delivery). Flow: every
//! instant at which flows start or end refills only the flows whose rate can change (those
//! that started, those held by a link a finished flow left, and those a check of the links
//! they cross adds; see `maxmin`), `O(sum of their route lengths * log)`, plus `O(log n)`
//! for each flow whose rate changed (its predicted end moves); all starts and ends of one
//! instant share one recomputation. A flow's bytes are settled only when its rate changes.
//! Measured (CPU time, zero-overhead crossbar, micro all-to-all of 1 KiB, counts trace):
//! 0.8 / 1.0 / 1.5 us per message at 64 / 256 / 1024 ranks (analytic 0.5 / 0.6 / 0.85),
//! against 1.9 / 3.6 / 16.5 us when every recomputation walked the whole component. Where
//! every event changes many rates (1024-rank Cholesky on the fat-tree: ~31 of ~780 running
//! flows per recomputation), the cost follows those changes (~8 us per event there).

mod analytic;
mod ends;
mod flow;
mod loggp;
mod maxmin;
mod topology;

#[cfg(test)]
mod tests;

use crate::machine::{Fidelity, Machine};
use crate::queue::{EventQueue, Time};
use analytic::Resources;
use dagwire_runtime::Rank;
use dagwire_runtime::rng::{self, RngExt, SeededRng};
use flow::{Flows, Meta};
use loggp::Costs;
use topology::Fabric;

/// Identifies a message handed to [`Network::send`]; ids count up from 0 in send order.
pub type MessageId = u64;

/// The route between two nodes, for tests and inspection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteInfo {
    /// Directional topology links crossed (NIC links not counted; 0 within a node).
    pub links: usize,
    /// Switches or routers traversed (0 within a node).
    pub hops: u32,
}

/// What happens next to a message, in the network's own timeline.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// The last byte reached the receiving rank, whose CPU takes `o_r` next (and the
    /// control-message cost after it, for a control message).
    Arrive { id: MessageId, dst: u32, seg: u32, control: bool, copy: u32 },
    /// `o_r` is done: the message is delivered.
    Deliver { id: MessageId },
    /// The message's flow starts taking bandwidth.
    FlowStart { slot: u32 },
    /// The flow's last byte is through (its predicted end, kept by the flows themselves).
    FlowEnd { slot: u32 },
}

/// The network of one simulated run (see the [module docs](self) for the model).
///
/// Call order: [`send`](Self::send) whenever a rank sends, with `now` never earlier than the
/// last `now` given to either call; [`next_delivery`](Self::next_delivery) to learn when to
/// come back; [`deliver_until`](Self::deliver_until) at that time (or later) to collect
/// what was delivered. `next_delivery` is a wake-up time: the earliest step the network
/// has pending (a delivery, or an arrival or flow change that leads to one). It is never
/// later than the next delivery, and a call to `deliver_until` there may return nothing;
/// ask `next_delivery` again (an early wake-up does nothing, house rule 3).
///
/// ```
/// use dagwire_runtime::Rank;
/// use dagwire_sim::machine::*;
/// use dagwire_sim::network::Network;
/// let seg = LogGpSegment { from_bytes: 0, o_s_ns: 100.0, o_r_ns: 100.0, g_ns: 0.0, l_ns: 1000.0, g_per_byte_ns: 0.5, o_per_byte_ns: None };
/// let machine = Machine {
///     name: "doc".into(),
///     description: "doc".into(),
///     fidelity: Fidelity::Analytic,
///     ranks_per_node: 1,
///     nic_gbps: 100.0,
///     inter_node: LogGp { segments: vec![seg.clone()] },
///     intra_node: LogGp { segments: vec![seg] },
///     topology: Topology::Crossbar { link_gbps: 100.0 },
///     compute: Compute {
///         mode: ComputeMode::Model,
///         cores_per_rank: 1,
///         kernel_gflops: Default::default(),
///         default_gflops: 1.0,
///         kernel_curves: Default::default(),
///         kernel_ns_per_byte: Default::default(),
///         task_overhead_ns: 0.0,
///         control_message_ns: 0.0,
///         collective_call_ns: 0.0,
///         collective_message_ns: 0.0,
///         collective_ns_per_byte: 0.0,
///         progress: Default::default(),
///     },
///     latency_jitter: 0.0,
///     registration: Default::default(),
///     accelerators: None,
/// };
/// let mut net = Network::new(&machine, 2).unwrap();
/// let id = net.send(0, Rank(0), Rank(1), 1001);
/// let mut got = Vec::new();
/// while let Some(t) = net.next_delivery() {
///     got.extend(net.deliver_until(t));
/// }
/// // o_s + (k-1)*G + L + o_r = 100 + 500 + 1000 + 100
/// assert_eq!(got, vec![(1700, id)]);
/// ```
#[derive(Debug)]
pub struct Network {
    ranks: usize,
    ranks_per_node: u32,
    /// Consecutive ranks that share one NIC: rank `r` injects into NIC `r / ranks_per_nic`
    /// (`ranks_per_node` unless the machine's `[accelerators]` give `nics`).
    ranks_per_nic: u32,
    /// One NIC's bandwidth: `nic_gbps / nics`.
    nic_bytes_per_ns: f64,
    costs: Costs,
    fabric: Fabric,
    resources: Resources,
    flows: Option<Flows>,
    /// Steps ordered by `(time, insertion sequence)` (house rule 5).
    events: EventQueue<Step>,
    clock: Time,
    next_id: MessageId,
    in_flight: usize,
    route: Vec<u32>,
    jitter: f64,
    /// `ceil(compute.control_message_ns)`: a control message's extra receive CPU time.
    control_ns: Time,
    /// `ceil(compute.collective_call_ns)`: the CPU time of joining a collective.
    call_ns: Time,
    /// `compute.collective_message_ns` and `compute.collective_ns_per_byte`: what a
    /// collective piece costs each end's CPU per message and per payload byte it carries.
    piece_message_ns: f64,
    piece_ns_per_byte: f64,
    /// The run's network stream ([`rng::stream::NETWORK`]): all of the network's
    /// randomness comes from the run's seed, never from entropy.
    rng: SeededRng,
}

impl Network {
    /// Model for `ranks` ranks on `machine`: rank r lives on node r / ranks_per_node.
    ///
    /// Errors (naming the machine key and the numbers) if the topology cannot hold the
    /// nodes, e.g. "topology fat-tree with k = 4 holds 16 nodes, the run needs 32 (raise
    /// topology.k or ranks_per_node)", or if a cost or bandwidth is not a usable number.
    pub fn new(machine: &Machine, ranks: usize) -> Result<Network, String> {
        if machine.ranks_per_node == 0 {
            return Err("ranks_per_node = 0: must be at least 1".into());
        }
        let nics = machine.accelerators.as_ref().and_then(|a| a.nics).unwrap_or(1);
        if nics == 0 || !machine.ranks_per_node.is_multiple_of(nics) {
            return Err(format!(
                "accelerators.nics = {nics}: must divide ranks_per_node = {} (one rank per device)",
                machine.ranks_per_node
            ));
        }
        let ranks_per_nic = machine.ranks_per_node / nics;
        let key = if nics > 1 { "nic_gbps / accelerators.nics" } else { "nic_gbps" };
        let nic_bytes_per_ns = topology::bytes_per_ns(key, machine.nic_gbps / f64::from(nics))?;
        let costs = Costs::new(&machine.inter_node, &machine.intra_node)?;
        let loggops = costs.loggops;
        let nodes = (ranks as u64).div_ceil(u64::from(machine.ranks_per_node));
        let fabric = Fabric::build(&machine.topology, nodes)?;
        if ranks > u32::MAX as usize {
            return Err(format!("{ranks} ranks: the simulator numbers ranks with 32 bits"));
        }
        Ok(Network {
            ranks,
            ranks_per_node: machine.ranks_per_node,
            ranks_per_nic,
            nic_bytes_per_ns,
            costs,
            fabric,
            resources: Resources::new(ranks, ranks.div_ceil(ranks_per_nic as usize), loggops),
            flows: (machine.fidelity == Fidelity::Flow).then(|| Flows::new(nic_bytes_per_ns)),
            events: EventQueue::default(),
            clock: 0,
            next_id: 0,
            in_flight: 0,
            route: Vec::new(),
            jitter: machine.latency_jitter,
            control_ns: loggp::ceil_ns(machine.compute.control_message_ns),
            call_ns: loggp::ceil_ns(machine.compute.collective_call_ns),
            piece_message_ns: machine.compute.collective_message_ns,
            piece_ns_per_byte: machine.compute.collective_ns_per_byte,
            rng: rng::rng(0, rng::stream::NETWORK),
        })
    }

    /// Seeds the latency jitter (see `Machine::latency_jitter`); without jitter the
    /// seed changes nothing.
    pub fn seed(&mut self, seed: u64) {
        self.rng = rng::rng(seed, rng::stream::NETWORK);
    }

    /// Extra latency for one message whose segment has latency `l_ns`.
    fn jitter_ns(&mut self, l_ns: f64) -> Time {
        if self.jitter == 0.0 {
            return 0;
        }
        loggp::ceil_ns(l_ns * self.jitter * self.rng.random::<f64>())
    }

    /// A message of `bytes` from `src` to `dst`, handed to the network at virtual time `now`.
    ///
    /// # Panics
    /// If `now` is earlier than a time already given to `send` or `deliver_until`, or a
    /// rank is out of range.
    pub fn send(&mut self, now: Time, src: Rank, dst: Rank, bytes: u64) -> MessageId {
        self.send_as(now, src, dst, bytes, false, 0)
    }

    /// What a collective piece carrying `messages` messages with `payload` bytes in all
    /// costs the CPU of each end: `ceil(messages * compute.collective_message_ns + payload
    /// * compute.collective_ns_per_byte)` (0 when both are 0).
    pub fn piece_cpu(&self, messages: u64, payload: u64) -> Time {
        if self.piece_message_ns == 0.0 && self.piece_ns_per_byte == 0.0 {
            return 0;
        }
        loggp::ceil_ns(messages as f64 * self.piece_message_ns + payload as f64 * self.piece_ns_per_byte)
    }

    /// A collective piece of `bytes` from `src` to `dst`: as [`send`](Self::send), and both
    /// ends' CPU also spend `cpu` ([`Network::piece_cpu`]) on it, the sender's right after
    /// `o_s` (the piece leaves after it), the receiver's right after `o_r` (it is delivered
    /// after it): an isolated piece takes `T(k) + 2*cpu`.
    ///
    /// # Panics
    /// As [`send`](Self::send).
    pub fn send_piece(&mut self, now: Time, src: Rank, dst: Rank, bytes: u64, cpu: Time) -> MessageId {
        self.send_as(now, src, dst, bytes, false, u32::try_from(cpu).unwrap_or(u32::MAX))
    }

    /// A control message (a strategy's message without payload) of `bytes` from `src` to
    /// `dst`: as [`send`](Self::send), and its receiver's CPU also spends the machine's
    /// control-message cost on it after `o_r`.
    ///
    /// # Panics
    /// As [`send`](Self::send).
    pub fn send_control(&mut self, now: Time, src: Rank, dst: Rank, bytes: u64) -> MessageId {
        self.send_as(now, src, dst, bytes, true, 0)
    }

    /// `extra`: CPU time at both ends beyond `o_s`/`o_r` and the copies (a piece's).
    fn send_as(&mut self, now: Time, src: Rank, dst: Rank, bytes: u64, control: bool, extra: u32) -> MessageId {
        assert!(now >= self.clock, "send at {now} ns, but the network is already at {} ns", self.clock);
        assert!(
            src.index() < self.ranks && dst.index() < self.ranks,
            "send {src} -> {dst}: the network has {} ranks",
            self.ranks
        );
        self.clock = now;
        let id = self.next_id;
        self.next_id += 1;
        self.in_flight += 1;
        let (src_node, dst_node) = (src.0 / self.ranks_per_node, dst.0 / self.ranks_per_node);
        if src_node == dst_node {
            let seg = self.costs.intra(bytes);
            let late = self.jitter_ns(self.costs.get(seg).l_ns);
            let copy = self.costs.get(seg).copy_ns(bytes).saturating_add(extra);
            let arrive = late
                + analytic::intra_node_arrival(&mut self.resources, self.costs.get(seg), now, src.index(), bytes, copy);
            self.push(arrive, Step::Arrive { id, dst: dst.0, seg, control, copy });
            return id;
        }
        let seg_index = self.costs.inter(bytes);
        let seg = self.costs.get(seg_index);
        let hops = self.fabric.route(src_node, dst_node, &mut self.route);
        let l_ns = seg.l_ns;
        let latency = seg.latency_ns(hops, self.fabric.hop_ns()) + self.jitter_ns(l_ns);
        let seg = self.costs.get(seg_index);
        let copy = seg.copy_ns(bytes).saturating_add(extra);
        let (src_nic, dst_nic) = (src.0 / self.ranks_per_nic, dst.0 / self.ranks_per_nic);
        let Some(flows) = &mut self.flows else {
            let arrive = analytic::inter_node_arrival(
                &mut self.resources,
                seg,
                now,
                src.index(),
                src_nic as usize,
                bytes,
                self.nic_bytes_per_ns,
                latency,
                copy,
            );
            self.push(arrive, Step::Arrive { id, dst: dst.0, seg: seg_index, control, copy });
            return id;
        };
        let ready = self.resources.send_overhead(now, src.index(), seg.o_s + Time::from(copy));
        let start = self.resources.inject_nic(ready, src_nic as usize, loggp::ceil_ns(seg.g_ns));
        let flow_bytes = loggp::counted_bytes(bytes) - 1;
        if flow_bytes == 0 {
            self.push(start + latency, Step::Arrive { id, dst: dst.0, seg: seg_index, control, copy });
            return id;
        }
        let meta = Meta { id, dst: dst.0, seg: seg_index, control, copy, latency };
        let slot = flows.prepare(&self.fabric, &self.route, src_nic, dst_nic, flow_bytes as f64, seg.rate_cap(), meta);
        self.push(start, Step::FlowStart { slot });
        id
    }

    /// The earliest time the network has a step pending, if any: a delivery (received,
    /// `o_r` included) or an earlier internal step leading to one. Never later than the next
    /// delivery; see the [type docs](Network) for why `deliver_until` there may return
    /// nothing.
    pub fn next_delivery(&self) -> Option<Time> {
        let event = self.events.peek_time();
        let flow_end = self.flows.as_ref().and_then(Flows::next_end).map(|(t, _)| t);
        match (event, flow_end) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Advances to `now` (never earlier than a previous call) and returns the messages delivered
    /// at or before `now`, ordered by (time, id).
    ///
    /// # Panics
    /// If `now` is earlier than a time already given to `send` or `deliver_until`.
    pub fn deliver_until(&mut self, now: Time) -> Vec<(Time, MessageId)> {
        let mut delivered = Vec::new();
        self.deliver_until_into(now, &mut delivered);
        delivered
    }

    /// [`Network::deliver_until`] into a list the caller reuses (appended to, in the
    /// same order), so a driver allocates nothing per delivery.
    ///
    /// # Panics
    /// If `now` is earlier than a time already given to `send` or `deliver_until`.
    pub fn deliver_until_into(&mut self, now: Time, out: &mut Vec<(Time, MessageId)>) {
        assert!(now >= self.clock, "deliver_until({now} ns), but the network is already at {} ns", self.clock);
        let from = out.len();
        let delivered = out;
        // One instant at a time: flow ends (by slot), then queued steps (by insertion), then
        // one recomputation of the rates for everything that started or ended.
        while let Some(t) = self.next_delivery().filter(|&t| t <= now) {
            while let Some((_, slot)) = self.flows.as_ref().and_then(Flows::next_end).filter(|&(end, _)| end == t) {
                self.step(t, Step::FlowEnd { slot }, delivered);
            }
            while self.events.peek_time() == Some(t) {
                let (time, step) = self.events.pop().expect("peeked");
                self.step(time, step, delivered);
            }
            if let Some(flows) = &mut self.flows {
                flows.recompute(t);
            }
        }
        self.clock = now;
        delivered[from..].sort_unstable();
    }

    /// Messages in flight (sent, not yet returned by `deliver_until`).
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// When `rank`'s CPU is done with the message work that holds its kernels: its
    /// messages' CPU time under LogGOPS (`o + (k-1)·O`, see the module docs) and its
    /// collective calls ([`Network::cpu_busy`]); 0 when none did. A kernel the rank starts
    /// at `now` begins at the later of the two.
    #[inline]
    pub fn cpu_free(&self, rank: Rank) -> Time {
        self.resources.held_until(rank.index())
    }

    /// `rank`'s CPU is busy for `ns` from `now` (or from when it frees up): its later
    /// sends (`o_s`) queue behind it, and its kernels wait for it ([`Network::cpu_free`]).
    /// Nothing happens for `ns = 0`.
    ///
    /// # Panics
    /// If `now` is earlier than a time already given to the network.
    pub fn cpu_busy(&mut self, now: Time, rank: Rank, ns: Time) {
        assert!(now >= self.clock, "cpu_busy at {now} ns, but the network is already at {} ns", self.clock);
        self.resources.busy(now, rank.index(), ns);
    }

    /// `rank` joins a collective at `now`: its CPU is busy for the machine's
    /// `compute.collective_call_ns` ([`Network::cpu_busy`]), so the collective's pieces
    /// leave after it and a kernel starting meanwhile waits.
    pub fn collective_call(&mut self, now: Time, rank: Rank) {
        self.cpu_busy(now, rank, self.call_ns);
    }

    /// Under LogGOPS, what receiving a `bytes` message from `src` costs `dst`'s CPU
    /// (`o_r + (k-1)·O`, and the control-message cost for a control message); 0 without
    /// `O`. For a receive the rank handles after a kernel (inline progress), charged
    /// again with [`Network::cpu_busy`] when the kernel ends.
    pub fn receive_cpu(&self, src: Rank, dst: Rank, bytes: u64, control: bool) -> Time {
        if !self.costs.loggops {
            return 0;
        }
        let same_node = src.0 / self.ranks_per_node == dst.0 / self.ranks_per_node;
        let seg = self.costs.get(if same_node { self.costs.intra(bytes) } else { self.costs.inter(bytes) });
        seg.o_r + Time::from(seg.copy_ns(bytes)) + if control { self.control_ns } else { 0 }
    }

    /// [`Network::receive_cpu`] for a collective piece whose ends each spend `cpu` on it
    /// ([`Network::piece_cpu`]): 0 without `O`.
    pub fn piece_receive_cpu(&self, src: Rank, dst: Rank, bytes: u64, cpu: Time) -> Time {
        if !self.costs.loggops {
            return 0;
        }
        self.receive_cpu(src, dst, bytes, false) + cpu
    }

    /// Route of a node pair, for tests/inspection: number of topology links and switch hops.
    ///
    /// # Panics
    /// If a node is beyond what the topology holds.
    pub fn route_len(&self, src_node: u32, dst_node: u32) -> RouteInfo {
        let nodes = self.fabric.nodes();
        assert!(
            src_node < nodes && dst_node < nodes,
            "route {src_node} -> {dst_node}: the topology holds {nodes} nodes"
        );
        if src_node == dst_node {
            return RouteInfo { links: 0, hops: 0 };
        }
        let mut links = Vec::new();
        let hops = self.fabric.route(src_node, dst_node, &mut links);
        RouteInfo { links: links.len(), hops }
    }

    /// Flows currently sharing links (0 in the analytic fidelity).
    pub fn active_flows(&self) -> usize {
        self.flows.as_ref().map_or(0, Flows::active)
    }

    fn push(&mut self, time: Time, step: Step) {
        self.events.push(time, step);
    }

    /// One step of the timeline at `t` (the one `match` of the network).
    fn step(&mut self, t: Time, step: Step, delivered: &mut Vec<(Time, MessageId)>) {
        match step {
            Step::Arrive { id, dst, seg, control, copy } => {
                let cpu = self.costs.get(seg).o_r + Time::from(copy) + if control { self.control_ns } else { 0 };
                let at = self.resources.receive(t, dst as usize, cpu);
                self.push(at, Step::Deliver { id });
            }
            Step::Deliver { id } => {
                self.in_flight -= 1;
                delivered.push((t, id));
            }
            Step::FlowStart { slot } => self.flows.as_mut().expect("flow fidelity").start(slot, t),
            Step::FlowEnd { slot } => {
                let m = self.flows.as_mut().expect("flow fidelity").finish(slot);
                let (id, dst, seg, control, copy) = (m.id, m.dst, m.seg, m.control, m.copy);
                self.push(t + m.latency, Step::Arrive { id, dst, seg, control, copy });
            }
        }
    }
}
