//! Accelerators in the simulator: device compute streams, copy engines and the links
//! between device memory, host memory and the NIC, as next-free-time resources (the way
//! LogGOPSim models its CPUs and NICs). Used when the machine has an
//! [`Accelerators`] section; without one the simulator never builds a [`Devices`].
//!
//! # Placement and memory spaces
//!
//! Ranks are placed one per device: rank `r` is device `r % devices` of node
//! `r / devices` (the machine's `ranks_per_node` equals `devices`). A chunk lives in the
//! memory of the device of the rank that produced it, and a data transfer between two
//! ranks follows from the two memory spaces and the machine:
//!
//! - **same node**: one peer copy, device to device, over the peer link (NVLink, xGMI)
//!   or, without one, over the host links (PCIe peer-to-peer); it bypasses the network;
//! - **between nodes, staged** (`gpu_direct = false`): a device-to-host copy on the
//!   sender, the network (LogGP, NIC, topology) from host to host, a host-to-device copy
//!   on the receiver (a chunk the sender has already copied to host memory is sent from
//!   there again: one device-to-host copy per chunk and sender, however many nodes read it);
//! - **between nodes, direct** (`gpu_direct = true`): the NIC reads and writes device
//!   memory; the message takes the network path only.
//!
//! Control messages (headers, requests, acknowledgements) come from the host runtime
//! and take the network path as on a machine without devices.
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
use crate::network::MessageId;
use crate::queue::Time;
use dagwire_runtime::Rank;
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

/// How a data transfer leaves its device (see the [module docs](self)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Through the network, handed to it at `at`; `land` when the receiver copies the
    /// bytes from host to device memory after delivery (staged).
    Network {
        /// When the network gets the message.
        at: Time,
        /// Whether a host-to-device copy follows delivery.
        land: bool,
        /// The device-to-host copy the sender made for it (`None` when direct, or when
        /// the chunk was already in host memory).
        copy: Option<Span>,
    },
    /// A peer copy inside the node; the bytes are in the receiver's device memory at
    /// the copy's end.
    Peer {
        /// The copy, on the sender's stream and copy engine.
        copy: Span,
    },
}

impl Route {
    /// The copy the sending device made for the transfer, if any.
    ///
    /// ```
    /// use dagwire_sim::device::{Route, Span};
    /// let copy = Span { stream: 0, engine: 1, start: 5, end: 9 };
    /// assert_eq!(Route::Peer { copy }.copy(), Some(copy));
    /// assert_eq!(Route::Network { at: 3, land: false, copy: None }.copy(), None);
    /// ```
    pub fn copy(&self) -> Option<Span> {
        match *self {
            Route::Network { copy, .. } => copy,
            Route::Peer { copy } => Some(copy),
        }
    }
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
    /// When a chunk's copy in host memory is ready, by (sending rank, chunk).
    in_host: FxHashMap<(u32, u32), Time>,
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
            in_host: FxHashMap::default(),
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

    /// How a data transfer of `bytes` from `src` to `dst` asked for at `now` leaves
    /// `src`'s device memory (see the [module docs](self)): a peer copy inside a node,
    /// else the network at once (direct) or after a device-to-host copy (staged). A staged
    /// transfer of a whole `chunk` that `src` already copied to host memory goes from there
    /// (no second copy).
    pub fn depart(&mut self, now: Time, src: Rank, dst: Rank, bytes: u64, chunk: Option<u32>) -> Route {
        if src.0 / self.per_node == dst.0 / self.per_node {
            let copy = self.copy(src.0, now, Via::Peer { dst: dst.0 }, bytes);
            return Route::Peer { copy };
        }
        if self.gpu_direct {
            return Route::Network { at: now, land: false, copy: None };
        }
        if let Some(c) = chunk
            && let Some(&ready) = self.in_host.get(&(src.0, c))
        {
            return Route::Network { at: now.max(ready), land: true, copy: None };
        }
        let span = self.copy(src.0, now, Via::Up, bytes);
        if let Some(c) = chunk {
            self.in_host.insert((src.0, c), span.end);
        }
        Route::Network { at: span.end, land: true, copy: Some(span) }
    }

    /// A staged transfer of `bytes` delivered to `dst`'s host memory at `now`: the
    /// host-to-device copy into its device memory.
    pub fn land(&mut self, now: Time, dst: Rank, bytes: u64) -> Span {
        self.copy(dst.0, now, Via::Down, bytes)
    }

    /// A copy of `bytes` by `rank`'s device (see the [module docs](self)).
    fn copy(&mut self, rank: u32, now: Time, via: Via, bytes: u64) -> Span {
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

/// The driver's side of the device model: [`Devices`] plus what waits on a copy, by
/// slot (`T` is the driver's in-flight item), and the network messages that land in
/// device memory with a host-to-device copy after delivery.
#[derive(Debug)]
pub struct Accel<T> {
    /// The devices' resources.
    pub devices: Devices,
    held: FxHashMap<u64, Held<T>>,
    next: u64,
    landing: FxHashMap<MessageId, Landing>,
}

/// A network message that lands in device memory: its sender, receiver and bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Landing {
    /// Sender.
    pub src: Rank,
    /// Receiver, whose device copies the bytes from host memory.
    pub dst: Rank,
    /// Bytes to copy.
    pub bytes: u64,
}

/// An item waiting for a copy: who sends it to whom, its bytes, and the item.
#[derive(Debug)]
pub struct Held<T> {
    /// Sender.
    pub src: Rank,
    /// Receiver.
    pub dst: Rank,
    /// Bytes on the wire.
    pub bytes: u64,
    /// The driver's item.
    pub item: T,
}

impl<T> Accel<T> {
    /// The driver side for `devices`.
    pub fn new(devices: Devices) -> Self {
        Accel { devices, held: FxHashMap::default(), next: 0, landing: FxHashMap::default() }
    }

    /// Keeps `held` until its copy ends; returns the slot to [`take`](Self::take) it by.
    pub fn hold(&mut self, held: Held<T>) -> u64 {
        let slot = self.next;
        self.next += 1;
        self.held.insert(slot, held);
        slot
    }

    /// The item kept under `slot`.
    ///
    /// # Panics
    /// If nothing is kept there (a driver bug).
    pub fn take(&mut self, slot: u64) -> Held<T> {
        self.held.remove(&slot).expect("a held transfer")
    }

    /// Marks network message `id` as landing in device memory.
    pub fn will_land(&mut self, id: MessageId, landing: Landing) {
        self.landing.insert(id, landing);
    }

    /// If network message `id` lands in device memory: its sender, receiver and bytes.
    pub fn landing(&mut self, id: MessageId) -> Option<Landing> {
        self.landing.remove(&id)
    }

    /// Nothing held or landing (checked at the end of a run).
    pub fn is_idle(&self) -> bool {
        self.held.is_empty() && self.landing.is_empty()
    }
}
