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
//! - A **kernel** of `flops` holds the device's earliest-free stream for
//!   `ceil(launch_ns + flops / rate)` (`rate` from `kernel_gflops`, else `default_gflops`);
//!   kernels on different streams run side by side.
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
//! An isolated staged transfer of `b` bytes therefore takes
//! `copy(b) + T_net(b) + copy(b)` with `copy(b) = ceil(lat) + ceil(b / bw)` and `T_net` the
//! network's time for the message; a direct one takes `T_net(b)`; with one stream a copy
//! waits for the kernel running on it, with two it runs beside it.
//!
//! On real drivers nothing of this exists: chunks stay in host memory and kernels run on
//! the CPU; the simulator models the device's timing (kernels may still run for real on
//! the host, so results verify).

use crate::machine::Accelerators;
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
    /// earliest-free stream.
    pub fn kernel(&mut self, rank: u32, now: Time, name: &str, flops: f64) -> Span {
        let base = (rank * self.streams) as usize;
        let (s, free) = earliest(&self.stream_free[base..base + self.streams as usize]);
        let start = now.max(free);
        let end = start.saturating_add(self.kernel_ns(name, flops));
        self.stream_free[base + s] = end;
        Span { stream: s as u32, engine: 0, start, end }
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
}

impl<T> Accel<T> {
    /// The driver side for `devices`.
    pub fn new(devices: Devices) -> Self {
        Accel { devices, held: FxHashMap::default(), next: 0, staging: FxHashMap::default() }
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

    /// Nothing held (checked at the end of a run).
    pub fn is_idle(&self) -> bool {
        self.held.is_empty() && self.staging.is_empty()
    }
}
