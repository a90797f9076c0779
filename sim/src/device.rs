//! Accelerators in the simulator: device compute streams, copy engines and the links
//! between device memory, host memory and the NIC, as next-free-time resources (the way
//! LogGOPSim models its CPUs and NICs). Used when the machine has an
//! [`Accelerators`] section; without one the simulator never builds a [`Devices`].
//!
//! # Placement and memory spaces
//!
//! Ranks are placed one per device: rank `r` is device `r % devices` of node
//! `r / devices` (the machine's `ranks_per_node` equals `devices`); [`Devices::memory`] is
//! what the sim driver tells each rank's engine of it. Where chunks live and when bytes
//! move between spaces is the engine's decision ([`dagwire_runtime::space`]): it asks for
//! each device-to-host and host-to-device copy ([`Devices::copy`]), and data between two
//! devices of one node goes by a peer copy ([`Devices::peer`]) as the rank's
//! [`Memory::path`] says. This module only times them:
//!
//! - **same node**: a peer copy, device to device, over the peer link (NVLink, xGMI)
//!   or, without one, over the host links (PCIe peer-to-peer); it bypasses the network;
//! - **between nodes, staged** (`gpu_direct = false`): a device-to-host copy on the
//!   sender (once per chunk, however many nodes read it), the network (LogGP, NIC,
//!   topology) from host to host, a host-to-device copy on the receiver before a kernel
//!   reads the chunk;
//! - **between nodes, direct** (`gpu_direct = true`): the NIC reads and writes device
//!   memory; the bytes take the network path only.
//!
//! Control messages (headers, requests, acknowledgements) come from the host runtime
//! and take the network path as on a machine without devices. A collective's pieces
//! each leave as soon as their own chunks' copies to host end
//! ([`dagwire_runtime::collectives::Collectives::stage`]), so staging pipelines with the
//! exchange. Data of collectives and
//! one-sided operations take the same paths as messages' (a piece a collective relays
//! through another node is taken to be in host memory there: relays' own copies are not
//! modelled).
//!
//! # Resources and timing
//!
//! Every resource is a next-free time; an operation starts when all it needs are free
//! (and not before it is asked for), holds them, and frees them at its end. Ties between
//! equal resources go to the lowest index, so timing is a function of the call order only.
//!
//! - A **kernel** of `flops` needs `W = ceil(launch_ns + flops / rate)` of the whole
//!   device (`rate` from `kernel_gflops`, else `default_gflops`) and holds the device's
//!   earliest-free stream that runs no unfinished kernel. Kernels on different streams
//!   share the device's compute (processor sharing): while `k` of them run, each
//!   progresses at `1/k` of its rate, so a kernel alone takes `W` (one stream: exactly as
//!   without sharing), two equal ones started together both end at `2W`, and a short `S`
//!   beside a long `L` ends at `2S`, the long one at `S + L`. A kernel's end is projected
//!   when it starts, from the kernels then running or waiting for their stream, and every
//!   other kernel's end is projected again then ([`Devices::moved`]: a new kernel only
//!   delays the others; one that ends only speeds them up, which the projection already
//!   counts). Nothing is ever queued behind a kernel whose end then moves: the driver
//!   gives a rank as many workers as streams, so a kernel starts only on a stream running
//!   no other kernel, no earlier than that stream is free; a copy queued behind a kernel
//!   took the stream that frees first, so no later kernel starts before that kernel ends
//!   (`a_copy_queued_behind_a_kernel_starts_at_its_final_end…` in `tests/accel.rs`).
//!   Launch overhead is shared like the rest of `W`.
//! - A **copy** of `b` bytes over a link of latency `lat` and bandwidth `bw` holds the
//!   device's earliest-free stream and earliest-free copy engine for
//!   `ceil(lat) + ceil(b / bw)` and the link for `ceil(b / bw)`. Device-to-host copies use
//!   the up direction of the device's PCIe switch, host-to-device copies its down
//!   direction (`devices_per_switch` consecutive devices share one switch, so copies of
//!   devices on one switch queue behind each other: two at once take twice as long as one).
//!   A peer copy holds the sender's stream and copy engine, the sender's peer-link port
//!   out and the receiver's port in (or, without a peer link, the sender's switch up and
//!   the receiver's switch down, at the host link's latency and bandwidth).
//!
//! - **NIC affinity** (`nics = N` in `[accelerators]`): NIC `i` of a node serves its
//!   devices `i * D/N .. (i+1) * D/N` (`D` devices) and sits under the PCIe switch of the
//!   first of them (`nic_switch = "first-device"`, the default) or on the host's root
//!   complex (`nic_switch = "host"`, under no device's switch). GPU-direct data of a device
//!   under another switch than its NIC (every device, with `"host"`) crosses the host
//!   root complex between the device and its NIC ([`Devices::nic_hop`]): on the way out
//!   the device's switch up and the NIC's switch down (with `"host"` only the device's
//!   switch up), on the way in the NIC's switch up and the device's switch down (only the
//!   device's switch down), each held for `ceil(b / bw)` of the host link, the hop
//!   ending `ceil(lat)` later (store and forward, as a peer copy over PCIe, but on no
//!   stream or copy engine: the NIC moves the bytes). The sender's hop ends before the
//!   network takes the message, the receiver's starts when the network delivers it. Staged
//!   transfers are unchanged (their host copies already cross the device's switch; the
//!   NIC reads host memory; under either `nic_switch`). The NICs' bandwidth and who shares it is the network's
//!   (`network` module docs). Without `nics`, every device is next to the node's NIC.
//!
//! An isolated staged transfer of `b` bytes therefore takes
//! `copy(b) + T_net(b) + copy(b)` with `copy(b) = ceil(lat) + ceil(b / bw)` and `T_net` the
//! network's time for the message; a direct one takes `T_net(b)`, plus `copy(b)` at each
//! end whose device is not under its NIC's switch; with one stream a copy waits for the
//! kernel running on it, with two it runs beside it.
//!
//! On real drivers nothing of this exists: chunks stay in host memory and kernels run on
//! the CPU; the simulator models the device's timing (kernels may still run for real on
//! the host, so results verify).

use crate::machine::{Accelerators, NicSwitch};
use crate::queue::Time;
use dagwire_runtime::space::{Memory, Space};
use dagwire_runtime::{ChunkId, Rank};
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;

/// Where a kernel or copy ran and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// The device stream it held.
    pub stream: u32,
    /// The copy engine it held (copies only; 0 for kernels).
    pub engine: u32,
    /// When it started (all its resources free).
    pub start: Time,
    /// When it ended.
    pub end: Time,
}

/// One link's cost: latency (ns) and bandwidth (bytes per ns).
#[derive(Clone, Copy, Debug)]
struct Link {
    latency: Time,
    bytes_per_ns: f64,
}

impl Link {
    fn new(latency_ns: f64, gbps: f64) -> Link {
        Link { latency: ceil_ns(latency_ns), bytes_per_ns: gbps / 8.0 }
    }

    /// Time the bytes occupy the link.
    fn occupancy(&self, bytes: u64) -> Time {
        ceil_ns(bytes as f64 / self.bytes_per_ns)
    }
}

/// Whole nanoseconds, rounded up (within 1e-9 of an integer counts as it); saturates.
fn ceil_ns(x: f64) -> Time {
    let r = x.round();
    let v = if (x - r).abs() < 1e-9 { r } else { x.ceil() };
    v.max(0.0) as Time
}

/// Which resources a copy holds besides a stream and a copy engine.
#[derive(Clone, Copy, Debug)]
enum Via {
    /// Device to host: the switch's up direction.
    Up,
    /// Host to device: the switch's down direction.
    Down,
    /// Device to device inside a node.
    Peer { dst: u32 },
}

/// The devices of one run: every rank's streams and copy engines, every PCIe switch's two
/// directions, every device's peer-link ports (see the [module docs](self)).
#[derive(Clone, Debug)]
pub struct Devices {
    per_node: u32,
    per_switch: u32,
    switches_per_node: u32,
    /// Devices per NIC (`devices / nics`); `None`: every device next to the node's NIC.
    per_nic: Option<u32>,
    /// The NICs hang off the host's root complex, under no device's switch.
    nic_at_host: bool,
    streams: u32,
    engines: u32,
    gpu_direct: bool,
    /// Each device's memory, bytes.
    memory_bytes: u64,
    launch_ns: f64,
    default_gflops: f64,
    kernel_gflops: BTreeMap<String, f64>,
    host: Link,
    peer: Option<Link>,
    /// Next-free time of stream `s` of rank `r` at `r * streams + s`.
    stream_free: Vec<Time>,
    /// Next-free time of copy engine `e` of rank `r` at `r * engines + e`.
    engine_free: Vec<Time>,
    /// Per switch, next-free time of its device-to-host direction.
    up_free: Vec<Time>,
    /// Per switch, next-free time of its host-to-device direction.
    down_free: Vec<Time>,
    /// Per device, next-free time of its peer-link port out.
    peer_out: Vec<Time>,
    /// Per device, next-free time of its peer-link port in.
    peer_in: Vec<Time>,
    /// The kernels each device runs or will run once its stream frees, stream `s` of
    /// rank `r` at `r * streams + s` (see [`Devices::kernel`]).
    running: Vec<Option<Running>>,
    /// Per device, the time its kernels' `left` is counted from.
    as_of: Vec<Time>,
    /// Kernels whose end the last [`Devices::kernel`] moved, reused.
    moved: Vec<Moved>,
    /// One device's kernels, for projecting their ends, reused.
    scratch: Vec<Option<Running>>,
}

/// A kernel on a device's compute, shared with the device's other kernels.
#[derive(Clone, Copy, Debug)]
struct Running {
    /// When it starts (its stream free).
    start: Time,
    /// Its work still to do at the device's `as_of`, ns at the whole device's rate.
    left: f64,
    /// When it ends, as last projected.
    end: Time,
}

/// A kernel whose projected end a later kernel on its device moved ([`Devices::moved`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Moved {
    /// Its stream.
    pub stream: u32,
    /// The end it had.
    pub was: Time,
    /// The end it has now.
    pub end: Time,
}

impl Devices {
    /// The devices of `ranks` ranks placed one per device on machines with `a`.
    ///
    /// ```
    /// use dagwire_sim::device::Devices;
    /// use dagwire_sim::machine::load_machine;
    /// let m = load_machine("dgx-h100").unwrap();
    /// let mut d = Devices::new(m.accelerators.as_ref().unwrap(), 16);
    /// let k = d.kernel(0, 100, "gemm", 0.0);
    /// assert_eq!((k.stream, k.start), (0, 100));
    /// ```
    pub fn new(a: &Accelerators, ranks: usize) -> Devices {
        let per_node = a.devices.max(1);
        let per_switch = a.host_link.devices_per_switch.clamp(1, per_node);
        let switches_per_node = per_node.div_ceil(per_switch);
        let nodes = ranks.div_ceil(per_node as usize);
        Devices {
            per_node,
            per_switch,
            switches_per_node,
            per_nic: a.nics.map(|n| (per_node / n.clamp(1, per_node)).max(1)),
            nic_at_host: a.nic_switch == NicSwitch::Host && a.nics.is_some(),
            streams: a.streams.max(1),
            engines: a.copy_engines.max(1),
            gpu_direct: a.gpu_direct,
            memory_bytes: (a.memory_gib * (1u64 << 30) as f64) as u64,
            launch_ns: a.launch_ns,
            default_gflops: a.default_gflops,
            kernel_gflops: a.kernel_gflops.clone(),
            host: Link::new(a.host_link.latency_ns, a.host_link.gbps),
            peer: a.peer_link.as_ref().map(|p| Link::new(p.latency_ns, p.gbps)),
            stream_free: vec![0; ranks * a.streams.max(1) as usize],
            engine_free: vec![0; ranks * a.copy_engines.max(1) as usize],
            up_free: vec![0; nodes * switches_per_node as usize],
            down_free: vec![0; nodes * switches_per_node as usize],
            peer_out: vec![0; ranks],
            peer_in: vec![0; ranks],
            running: vec![None; ranks * a.streams.max(1) as usize],
            as_of: vec![0; ranks],
            moved: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// Streams per device (the concurrent kernels a rank may have).
    pub fn streams(&self) -> u32 {
        self.streams
    }

    /// How long a kernel `name` of `flops` holds its stream.
    pub fn kernel_ns(&self, name: &str, flops: f64) -> Time {
        let rate = self.kernel_gflops.get(name).copied().unwrap_or(self.default_gflops);
        ceil_ns(self.launch_ns + flops / rate)
    }

    /// Runs kernel `name` of `flops` for rank `rank`, asked for at `now`, on the rank's
    /// earliest-free stream that runs no unfinished kernel (the earliest-free of all if
    /// every stream runs one). The device's compute is shared (see the
    /// [module docs](self)): the span's end is projected from the kernels the device
    /// runs, and the ends of those the new one slows down move later
    /// ([`Devices::moved`]).
    ///
    /// ```
    /// use dagwire_sim::device::{Devices, Moved};
    /// use dagwire_sim::machine::load_machine;
    /// let mut a = load_machine("dgx-h100").unwrap().accelerators.unwrap();
    /// (a.launch_ns, a.default_gflops) = (0.0, 1.0);
    /// let mut d = Devices::new(&a, 8);
    /// let short = d.kernel(0, 0, "k", 1000.0);
    /// assert_eq!((short.stream, short.end), (0, 1000));
    /// // A second kernel at once shares the device: each runs at half the rate.
    /// let long = d.kernel(0, 0, "k", 3000.0);
    /// assert_eq!((long.stream, long.end), (1, 4000));
    /// assert_eq!(d.moved(), [Moved { stream: 0, was: 1000, end: 2000 }]);
    /// ```
    pub fn kernel(&mut self, rank: u32, now: Time, name: &str, flops: f64) -> Span {
        let base = (rank * self.streams) as usize;
        let streams = base..base + self.streams as usize;
        self.advance(rank as usize, now);
        let idle = self.stream_free[streams.clone()]
            .iter()
            .zip(&self.running[streams.clone()])
            .enumerate()
            .filter(|(_, (_, k))| k.is_none())
            .map(|(i, (&t, _))| (t, i))
            .min();
        let (s, free) = match idle {
            Some((t, i)) => (i, t),
            None => earliest(&self.stream_free[streams.clone()]),
        };
        let start = now.max(free);
        let work = self.kernel_ns(name, flops);
        let mut end = start.saturating_add(work);
        self.moved.clear();
        if self.running[streams.clone()].iter().any(Option::is_some) {
            // Others run or wait on the device: project every end again with this one.
            self.running[base + s] = Some(Running { start, left: work as f64, end });
            self.project(rank as usize, s);
            end = self.running[base + s].expect("just placed").end;
            for m in &self.moved {
                let free = &mut self.stream_free[base + m.stream as usize];
                *free = (*free).max(m.end);
            }
        } else {
            // Alone on the device: its own time (the model before sharing, exactly).
            self.as_of[rank as usize] = now;
            self.running[base + s] = Some(Running { start, left: work as f64, end });
        }
        self.stream_free[base + s] = end;
        Span { stream: s as u32, engine: 0, start, end }
    }

    /// The kernels of the device the last [`Devices::kernel`] ran on whose projected end
    /// it moved later (the new kernel shares the device with them): their stream, the
    /// end they had and the end they have now.
    pub fn moved(&self) -> &[Moved] {
        &self.moved
    }

    /// Counts rank `r`'s kernels' work done from the device's `as_of` to `now`, sharing
    /// the device; kernels done by `now` leave it.
    fn advance(&mut self, r: usize, now: Time) {
        let from = self.as_of[r];
        let base = r * self.streams as usize;
        let kernels = &mut self.running[base..base + self.streams as usize];
        if now > from {
            share(kernels, from as f64, now as f64, |_, _| {});
            self.as_of[r] = now;
        }
        for k in kernels.iter_mut() {
            if k.is_some_and(|k| k.left <= 0.0 || k.end <= now) {
                *k = None;
            }
        }
    }

    /// Projects the ends of rank `r`'s kernels from the device's `as_of` on, sharing the
    /// device, into their `end`; those of streams other than `new`'s that change go to
    /// [`Devices::moved`].
    fn project(&mut self, r: usize, new: usize) {
        let base = r * self.streams as usize;
        let kernels = &mut self.running[base..base + self.streams as usize];
        let moved = &mut self.moved;
        self.scratch.clear();
        self.scratch.extend_from_slice(kernels);
        share(&mut self.scratch, self.as_of[r] as f64, f64::INFINITY, |i, t| {
            if let Some(k) = &mut kernels[i] {
                let end = ceil_ns(t).max(k.start);
                if i != new && end != k.end {
                    moved.push(Moved { stream: i as u32, was: k.end, end });
                }
                k.end = end;
            }
        });
    }

    /// What `rank`'s engine knows of its memory: its device and its size, whether the
    /// NIC reads device memory, the ranks of its node.
    ///
    /// ```
    /// use dagwire_runtime::space::{Memory, Path};
    /// use dagwire_runtime::Rank;
    /// use dagwire_sim::device::Devices;
    /// use dagwire_sim::machine::load_machine;
    /// let m = load_machine("dgx-h100").unwrap();
    /// let d = Devices::new(m.accelerators.as_ref().unwrap(), 16);
    /// assert_eq!(d.memory(Rank(9)).path(Rank(15)), Path::Peer);
    /// assert_eq!(d.memory(Rank(9)).path(Rank(7)), Path::Network);
    /// ```
    pub fn memory(&self, rank: Rank) -> Memory {
        let first = rank.0 / self.per_node * self.per_node;
        Memory::device(rank, (rank.0 % self.per_node) as u16, self.gpu_direct, first..first + self.per_node)
            .with_capacity(self.memory_bytes)
    }

    /// A copy of `bytes` between `rank`'s device memory and host memory, to `to`, asked
    /// for at `now` (see the [module docs](self)).
    pub fn copy(&mut self, now: Time, rank: Rank, to: Space, bytes: u64) -> Span {
        let via = if to.is_device() { Via::Down } else { Via::Up };
        self.occupy(rank.0, now, via, bytes)
    }

    /// A peer copy of `bytes` from `src`'s device memory into `dst`'s (one node), asked
    /// for at `now`, on `src`'s stream and copy engine.
    pub fn peer(&mut self, now: Time, src: Rank, dst: Rank, bytes: u64) -> Span {
        self.occupy(src.0, now, Via::Peer { dst: dst.0 }, bytes)
    }

    /// Whether GPU-direct data of `rank`'s device crosses the host to reach its NIC: the
    /// NIC sits under another PCIe switch (see the [module docs](self)).
    ///
    /// ```
    /// use dagwire_runtime::Rank;
    /// use dagwire_sim::device::Devices;
    /// use dagwire_sim::machine::load_machine;
    /// let mut a = load_machine("dgx-h100").unwrap().accelerators.unwrap();
    /// assert!(!Devices::new(&a, 16).crosses_to_nic(Rank(3)));
    /// a.nics = Some(2); // NIC 1 serves devices 4-7, under device 4's switch (4 and 5)
    /// let d = Devices::new(&a, 16);
    /// assert_eq!((5..8).map(|r| d.crosses_to_nic(Rank(r))).collect::<Vec<_>>(), [false, true, true]);
    /// ```
    pub fn crosses_to_nic(&self, rank: Rank) -> bool {
        let Some(per_nic) = self.per_nic else { return false };
        if self.nic_at_host {
            return true;
        }
        let device = rank.0 % self.per_node;
        device / self.per_switch != device / per_nic * per_nic / self.per_switch
    }

    /// GPU-direct data of `bytes` between `rank`'s device memory and its NIC, asked for at
    /// `now`, when the NIC sits under another switch ([`Devices::crosses_to_nic`]):
    /// towards the NIC (`to_nic`, before the network takes it) it holds the device's switch
    /// up and the NIC's switch down, from the NIC (after the network delivered it) the
    /// NIC's switch up and the device's switch down, for `ceil(b / bw)` of the host link,
    /// and ends `ceil(lat)` later. No stream or copy engine: the NIC moves the bytes.
    /// Returns when it ends, or `None` when the NIC is under the device's own switch (the
    /// data goes straight to the network).
    pub fn nic_hop(&mut self, now: Time, rank: Rank, to_nic: bool, bytes: u64) -> Option<Time> {
        if !self.crosses_to_nic(rank) {
            return None;
        }
        let per_nic = self.per_nic.expect("crosses only with NICs");
        let node = rank.0 / self.per_node;
        let device = rank.0 % self.per_node;
        let at = |d: u32| (node * self.switches_per_node + d / self.per_switch) as usize;
        let (own, nic) = (at(device), at(device / per_nic * per_nic));
        let (up, down) = if to_nic { (own, nic) } else { (nic, own) };
        if self.nic_at_host {
            // The NIC is on the root complex: only the device's own switch is crossed.
            let free = if to_nic { &mut self.up_free[own] } else { &mut self.down_free[own] };
            let occupied = now.max(*free).saturating_add(self.host.occupancy(bytes));
            *free = occupied;
            return Some(occupied.saturating_add(self.host.latency));
        }
        let start = now.max(self.up_free[up]).max(self.down_free[down]);
        let occupied = start.saturating_add(self.host.occupancy(bytes));
        self.up_free[up] = occupied;
        self.down_free[down] = occupied;
        Some(occupied.saturating_add(self.host.latency))
    }

    /// A copy of `bytes` by `rank`'s device (see the [module docs](self)).
    fn occupy(&mut self, rank: u32, now: Time, via: Via, bytes: u64) -> Span {
        let sbase = (rank * self.streams) as usize;
        let (s, stream_free) = earliest(&self.stream_free[sbase..sbase + self.streams as usize]);
        let ebase = (rank * self.engines) as usize;
        let (e, engine_free) = earliest(&self.engine_free[ebase..ebase + self.engines as usize]);
        let switch =
            |r: u32| ((r / self.per_node) * self.switches_per_node + (r % self.per_node) / self.per_switch) as usize;
        let (link, a, b) = match (via, self.peer) {
            (Via::Up, _) => (self.host, &mut self.up_free[switch(rank)], None),
            (Via::Down, _) => (self.host, &mut self.down_free[switch(rank)], None),
            (Via::Peer { dst }, Some(peer)) => {
                (peer, &mut self.peer_out[rank as usize], Some(&mut self.peer_in[dst as usize]))
            }
            (Via::Peer { dst }, None) => {
                let (up, down) = (switch(rank), switch(dst));
                (self.host, &mut self.up_free[up], Some(&mut self.down_free[down]))
            }
        };
        let start = now.max(stream_free).max(engine_free).max(*a).max(b.as_ref().map_or(0, |t| **t));
        let occupied = start.saturating_add(link.occupancy(bytes));
        let end = occupied.saturating_add(link.latency);
        *a = occupied;
        if let Some(b) = b {
            *b = occupied;
        }
        self.stream_free[sbase + s] = end;
        self.engine_free[ebase + e] = end;
        Span { stream: s as u32, engine: e as u32, start, end }
    }
}

/// Processor sharing of one device's compute among `kernels` from time `from` until
/// `until`: the `n` kernels started and not done each do `1/n` of the device's work per
/// ns (`left` falls by `dt / n`); a kernel not yet started joins at its `start`.
/// `done(i, t)` hears of kernel `i` finishing at `t <= until`.
fn share(kernels: &mut [Option<Running>], from: f64, until: f64, mut done: impl FnMut(usize, f64)) {
    let mut t = from;
    while t < until {
        let (mut n, mut least, mut next_start) = (0u32, f64::INFINITY, f64::INFINITY);
        for k in kernels.iter().flatten().filter(|k| k.left > 0.0) {
            if k.start as f64 <= t {
                n += 1;
                least = least.min(k.left);
            } else {
                next_start = next_start.min(k.start as f64);
            }
        }
        if n == 0 {
            if next_start == f64::INFINITY {
                return;
            }
            t = next_start;
            continue;
        }
        let finish = t + least * f64::from(n);
        let to = finish.min(next_start).min(until);
        let finishes = to == finish;
        let each = if finishes { least } else { (to - t) / f64::from(n) };
        for (i, slot) in kernels.iter_mut().enumerate() {
            let Some(k) = slot else { continue };
            if k.left <= 0.0 || k.start as f64 > t {
                continue;
            }
            if finishes && k.left == least {
                k.left = 0.0;
                done(i, finish);
            } else {
                k.left -= each;
                if k.left <= 0.0 {
                    // Rounding: it finished with the step.
                    k.left = 0.0;
                    done(i, to);
                }
            }
        }
        t = to;
    }
}

/// The index and time of the earliest-free resource, the lowest index on ties.
fn earliest(free: &[Time]) -> (usize, Time) {
    free.iter().copied().enumerate().min_by_key(|&(i, t)| (t, i)).expect("at least one resource")
}

/// The driver's side of the device model: [`Devices`] plus the peer copies under way
/// (`T` is the driver's in-flight item), by slot.
#[derive(Debug)]
pub struct Accel<T> {
    /// The devices' resources.
    pub devices: Devices,
    held: FxHashMap<u64, T>,
    next: u64,
    /// Copies to host memory under way, by (rank, copy id): the chunk each stages.
    staging: FxHashMap<(Rank, u64), ChunkId>,
    /// Data crossing to its sender's NIC ([`Devices::nic_hop`]), by slot: the sender, the
    /// receiver and the bytes to hand the network when the hop ends.
    to_nic: FxHashMap<u64, (Rank, Rank, u64)>,
    /// Data that crosses from its receiver's NIC to the device once the network delivers
    /// it, by message id: the receiver and the bytes.
    from_nic: FxHashMap<u64, (Rank, u64)>,
}

impl<T> Accel<T> {
    /// The driver side for `devices`.
    pub fn new(devices: Devices) -> Self {
        Accel {
            devices,
            held: FxHashMap::default(),
            next: 0,
            staging: FxHashMap::default(),
            to_nic: FxHashMap::default(),
            from_nic: FxHashMap::default(),
        }
    }

    /// Copy `id` of `rank` stages `chunk` in host memory.
    pub fn stage(&mut self, rank: Rank, id: u64, chunk: ChunkId) {
        self.staging.insert((rank, id), chunk);
    }

    /// Copy `id` of `rank` ended: the chunk it staged, if it was a copy to host memory.
    pub fn staged(&mut self, rank: Rank, id: u64) -> Option<ChunkId> {
        if self.staging.is_empty() { None } else { self.staging.remove(&(rank, id)) }
    }

    /// Keeps `item` until its peer copy ends; returns the slot to [`take`](Self::take) it by.
    pub fn hold(&mut self, item: T) -> u64 {
        let slot = self.next;
        self.next += 1;
        self.held.insert(slot, item);
        slot
    }

    /// The item kept under `slot`.
    ///
    /// # Panics
    /// If nothing is kept there (a driver bug).
    pub fn take(&mut self, slot: u64) -> T {
        self.held.remove(&slot).expect("a held transfer")
    }

    /// Keeps `item`, `bytes` from `src` to `dst`, until its hop to `src`'s NIC ends;
    /// returns the slot to [`take_to_nic`](Self::take_to_nic) it by.
    pub fn hold_to_nic(&mut self, item: T, src: Rank, dst: Rank, bytes: u64) -> u64 {
        let slot = self.hold(item);
        self.to_nic.insert(slot, (src, dst, bytes));
        slot
    }

    /// The item kept under `slot` by [`hold_to_nic`](Self::hold_to_nic), its sender,
    /// receiver and bytes.
    ///
    /// # Panics
    /// If nothing is kept there (a driver bug).
    pub fn take_to_nic(&mut self, slot: u64) -> (T, Rank, Rank, u64) {
        let (src, dst, bytes) = self.to_nic.remove(&slot).expect("a transfer crossing to its NIC");
        (self.take(slot), src, dst, bytes)
    }

    /// Message `id`'s `bytes` cross from `dst`'s NIC to its device once delivered.
    pub fn expect_from_nic(&mut self, id: u64, dst: Rank, bytes: u64) {
        self.from_nic.insert(id, (dst, bytes));
    }

    /// If message `id` crosses from its receiver's NIC to the device: the receiver and bytes.
    pub fn from_nic(&mut self, id: u64) -> Option<(Rank, u64)> {
        if self.from_nic.is_empty() { None } else { self.from_nic.remove(&id) }
    }

    /// Nothing held (checked at the end of a run).
    pub fn is_idle(&self) -> bool {
        self.held.is_empty() && self.staging.is_empty() && self.to_nic.is_empty() && self.from_nic.is_empty()
    }
}
