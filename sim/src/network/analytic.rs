//! The analytic path: resources as next-free times (LogGOPSim's `nexto`/`nextgs`/`nextgr`).
//!
//! Every rank has a sender CPU (`o_s` serialises its sends), a receiver CPU (`o_r`
//! serialises its receives) and a shared-memory injector (intra-node messages at least
//! `max(g, k*G)` apart); every NIC (one per node, or the node's `nics`) has a queue
//! (inter-node injections at least `max(g, k*G, k / NIC bandwidth)` apart). No link is shared: an injected message arrives
//! `(k-1)*G + L (+ hops)` later. The flow fidelity reuses the CPUs and the NIC's `g`.
//!
//! With LogGOPS's `O` (`one_cpu`), a rank's sends and receives share one CPU, each taking
//! `o + (k-1)*O` of it, and the rank's kernels wait for it (`hold`); collective calls
//! take that CPU too ([`Resources::busy`]).

use super::loggp::Segment;
use crate::queue::Time;

/// Next-free times of every CPU, injector and NIC.
#[derive(Clone, Debug)]
pub(crate) struct Resources {
    send_cpu: Vec<Time>,
    recv_cpu: Vec<Time>,
    local: Vec<Time>,
    nic: Vec<Time>,
    /// Per rank, the end of the latest CPU work that holds its kernels (messages' CPU
    /// time with `one_cpu`, collective calls always).
    hold: Vec<Time>,
    /// LogGOPS: receives run on the sender CPU (one CPU a rank) and hold the kernels.
    one_cpu: bool,
}

impl Resources {
    /// Idle resources for `ranks` ranks sharing `nics` NICs.
    /// `one_cpu`: LogGOPS (see the module docs).
    pub fn new(ranks: usize, nics: usize, one_cpu: bool) -> Resources {
        Resources {
            send_cpu: vec![0; ranks],
            recv_cpu: vec![0; ranks],
            local: vec![0; ranks],
            nic: vec![0; nics],
            hold: vec![0; ranks],
            one_cpu,
        }
    }

    /// Runs `o_s` (with `O`, `o_s + (k-1)*O`) on `rank`'s sender CPU from `now` (or when
    /// it frees up); returns when the message is ready to inject.
    pub fn send_overhead(&mut self, now: Time, rank: usize, o_s: Time) -> Time {
        let done = now.max(self.send_cpu[rank]) + o_s;
        self.send_cpu[rank] = done;
        if self.one_cpu {
            self.hold[rank] = done;
        }
        done
    }

    /// `rank`'s CPU is busy for `ns` from `now` (or when it frees up): a collective call,
    /// or (LogGOPS) a receive handled late. Its sends queue behind it and its kernels
    /// wait for it.
    pub fn busy(&mut self, now: Time, rank: usize, ns: Time) {
        if ns == 0 {
            return;
        }
        let done = now.max(self.send_cpu[rank]) + ns;
        self.send_cpu[rank] = done;
        self.hold[rank] = self.hold[rank].max(done);
    }

    /// When `rank`'s CPU is free of the message work that holds its kernels (0 when none
    /// ever did).
    #[inline]
    pub fn held_until(&self, rank: usize) -> Time {
        self.hold[rank]
    }

    /// Injects into NIC `nic` at `ready` or when it frees up; the NIC then stays busy for
    /// `gap`. Returns the injection start.
    pub fn inject_nic(&mut self, ready: Time, nic: usize, gap: Time) -> Time {
        let start = ready.max(self.nic[nic]);
        self.nic[nic] = start + gap;
        start
    }

    /// Like [`Self::inject_nic`] for `rank`'s shared-memory injector.
    pub fn inject_local(&mut self, ready: Time, rank: usize, gap: Time) -> Time {
        let start = ready.max(self.local[rank]);
        self.local[rank] = start + gap;
        start
    }

    /// Runs `o_r` on `rank`'s receiver CPU from `arrive` (or when it frees up); returns the
    /// delivery time.
    pub fn receive(&mut self, arrive: Time, rank: usize, o_r: Time) -> Time {
        if self.one_cpu {
            let done = arrive.max(self.send_cpu[rank]) + o_r;
            self.send_cpu[rank] = done;
            self.hold[rank] = done;
            return done;
        }
        let done = arrive.max(self.recv_cpu[rank]) + o_r;
        self.recv_cpu[rank] = done;
        done
    }
}

/// Arrival time (before `o_r`) of an intra-node message sent at `now`; `cpu` is the
/// sender's CPU time after `o_s` (LogGOPS's copy, a collective piece's packing).
pub(crate) fn intra_node_arrival(
    res: &mut Resources,
    seg: &Segment,
    now: Time,
    src: usize,
    bytes: u64,
    cpu: u32,
) -> Time {
    let ready = res.send_overhead(now, src, seg.o_s + Time::from(cpu));
    let start = res.inject_local(ready, src, seg.gap_ns(bytes, f64::INFINITY));
    start + seg.data_ns(bytes) + seg.latency_ns(0, 0.0)
}

/// Arrival time (before `o_r`) of an inter-node message sent at `now` in the analytic
/// fidelity; `latency` is the route's `ceil(L + (hops-1)*hop_ns)`, `cpu` as for
/// [`intra_node_arrival`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn inter_node_arrival(
    res: &mut Resources,
    seg: &Segment,
    now: Time,
    src: usize,
    src_nic: usize,
    bytes: u64,
    nic_bytes_per_ns: f64,
    latency: Time,
    cpu: u32,
) -> Time {
    let ready = res.send_overhead(now, src, seg.o_s + Time::from(cpu));
    let start = res.inject_nic(ready, src_nic, seg.gap_ns(bytes, nic_bytes_per_ns));
    start + seg.data_ns(bytes) + latency
}
