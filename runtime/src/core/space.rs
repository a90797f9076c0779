//! Memory spaces: where a chunk's bytes live (host memory, or a device's), and what the
//! engine knows of its rank's memory to decide when bytes must move between them.
//!
//! A driver gives its engine a [`Memory`] before the run ([`crate::Engine::set_memory`]).
//! The real drivers (local, mpi, libfabric) give [`Memory::host`]: no device, so every
//! chunk stays in host memory, kernels run on the CPU and the engine never asks for a
//! copy. The simulator gives each rank of a machine with accelerators its device.
//!
//! # The model
//! With a device, the rank's kernel tasks run on it ([`Memory::compute`]) and read and
//! write device memory; the tasks the engine runs itself (run-time placement's
//! bookkeeping) run on the host. Bytes move between ranks along a [`Path`] that follows
//! from the two ranks and the machine ([`Memory::path`]):
//!
//! - between the devices of one node, a **peer copy** carries data (a point-to-point
//!   message's, a collective piece's, a one-sided operation's) from the sender's device
//!   memory straight into the receiver's;
//! - otherwise the **network** carries the bytes from and into the ranks'
//!   [network space](Memory::network_space): device memory when the NIC reads and writes it
//!   (GPU-direct RDMA), else host memory.
//!
//! So the engine asks its driver for a [copy](crate::engine::DeviceCopy) from device to
//! host memory before it hands the network a chunk that lives only in device memory
//! (staged; once per chunk, however many ranks read it; a chunk put into the rank's own
//! window or exposed for reads is staged when a reader is on another node), and one from
//! host to device memory before a device task reads a chunk that arrived in host memory.
//! Strategies never see any of this: the engine holds their messages and operations until
//! the copy is done. A driver with devices moves each piece of data along [`Memory::path`]
//! of its two ranks, the one rule both sides follow (a collective's relays are taken to
//! hold what they forward where that path needs it: their own staging is not modelled).
//!
//! # Device memory capacity
//!
//! A device's memory is finite ([`Memory::with_capacity`]); chunks are not evicted to
//! host memory (a runtime that spills would need its own copies and policy, which no
//! strategy here has), so a run that needs more fails, naming the device, the need and
//! the capacity ([`DeviceMemory`]). What is counted is what the device's own tasks need:
//! a chunk a device task reads occupies device memory from when it is produced there or
//! its copy to the device starts until its last local reader ends; a device task's
//! outputs count when they are produced (with the task's inputs still held). Buffers
//! the network or a copy to host still reads after that are not counted (the engine does
//! not learn when the NIC is done with them), so the check never fails a run that fits,
//! and may pass one that needs a little more.

use crate::ids::{ChunkId, Rank};
use rustc_hash::FxHashMap as HashMap;

/// Where bytes live.
///
/// ```
/// use dagwire_runtime::space::Space;
/// assert!(Space::Device(1).is_device() && !Space::Host.is_device());
/// assert_eq!(Space::Device(3).to_string(), "device 3");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Space {
    /// Host memory.
    #[default]
    Host,
    /// The memory of device `d` of the rank's node.
    Device(u16),
}

impl Space {
    /// Whether it is a device's memory.
    pub fn is_device(self) -> bool {
        matches!(self, Space::Device(_))
    }
}

impl std::fmt::Display for Space {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Space::Host => write!(f, "host"),
            Space::Device(d) => write!(f, "device {d}"),
        }
    }
}

/// How a rank's data reaches another rank (see the [module docs](self)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Path {
    /// The driver's transport (network, shared memory), from and into the ranks'
    /// [network spaces](Memory::network_space).
    #[default]
    Network,
    /// A device-to-device copy into the receiver's device memory inside a node, then the
    /// data is delivered.
    Peer,
}

/// What an engine knows of its rank's memory: its device, if any; whether the NIC reads
/// device memory; which ranks share its node (their devices a peer copy reaches).
///
/// ```
/// use dagwire_runtime::space::{Memory, Path, Space};
/// use dagwire_runtime::Rank;
/// let staged = Memory::device(Rank(5), 1, false, 4..8);
/// assert_eq!((staged.compute(), staged.network_space()), (Space::Device(1), Space::Host));
/// assert_eq!((staged.path(Rank(6)), staged.path(Rank(9))), (Path::Peer, Path::Network));
/// assert_eq!(Memory::device(Rank(5), 1, true, 4..8).network_space(), Space::Device(1));
/// let host = Memory::host();
/// assert_eq!((host.compute(), host.path(Rank(6))), (Space::Host, Path::Network));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Memory {
    device: Option<u16>,
    gpu_direct: bool,
    /// First rank of the node and one past its last.
    node: (u32, u32),
    /// The device's memory, bytes (`None`: not limited).
    capacity: Option<u64>,
}

impl Memory {
    /// No device: everything in host memory (every real driver).
    pub fn host() -> Memory {
        Memory::default()
    }

    /// `rank` owns device `device`; the NIC reads device memory when `gpu_direct`; ranks
    /// `node` share its node (the rank among them).
    pub fn device(rank: Rank, device: u16, gpu_direct: bool, node: std::ops::Range<u32>) -> Memory {
        debug_assert!(node.contains(&rank.0), "{rank} is on its own node");
        Memory { device: Some(device), gpu_direct, node: (node.start, node.end), capacity: None }
    }

    /// The same, with `bytes` of device memory (see [`DeviceMemory`]).
    pub fn with_capacity(self, bytes: u64) -> Memory {
        Memory { capacity: Some(bytes), ..self }
    }

    /// The device's memory, bytes, if limited.
    pub fn capacity(&self) -> Option<u64> {
        self.capacity
    }

    /// Whether the rank has a device.
    pub fn has_device(&self) -> bool {
        self.device.is_some()
    }

    /// Where the rank's kernel tasks run and leave their outputs: its device, else the host.
    pub fn compute(&self) -> Space {
        self.device.map_or(Space::Host, Space::Device)
    }

    /// Where the network reads what the rank sends and writes what it receives: device
    /// memory with GPU-direct RDMA, else host memory.
    pub fn network_space(&self) -> Space {
        if self.gpu_direct { self.compute() } else { Space::Host }
    }

    /// How data moves between this rank and `other` (either way): a peer copy between two
    /// devices of one node, else the network.
    pub fn path(&self, other: Rank) -> Path {
        let same_node = (self.node.0..self.node.1).contains(&other.0);
        if self.device.is_some() && same_node { Path::Peer } else { Path::Network }
    }

    /// Where data from `src` lands here: device memory over a peer copy, else the
    /// network space.
    pub fn lands(&self, src: Rank) -> Space {
        match self.path(src) {
            Path::Peer => self.compute(),
            Path::Network => self.network_space(),
        }
    }
}

/// The chunks a device's tasks hold in its memory (see the [module docs](self)).
///
/// ```
/// use dagwire_runtime::space::DeviceMemory;
/// use dagwire_runtime::ChunkId;
/// let mut m = DeviceMemory::default();
/// assert_eq!(m.hold(ChunkId(1), 100, 2), 100); // read by two local tasks
/// assert_eq!(m.hold(ChunkId(2), 50, 0), 150); // counted as produced, then gone
/// m.release(ChunkId(1));
/// assert_eq!(m.hold(ChunkId(3), 10, 1), 110);
/// m.release(ChunkId(1)); // its second reader ended
/// m.release(ChunkId(9)); // not held: nothing
/// assert_eq!((m.used(), m.peak()), (10, 150));
/// ```
#[derive(Clone, Debug, Default)]
pub struct DeviceMemory {
    /// Held chunks: bytes, and how many local reads still hold each.
    held: HashMap<ChunkId, (u64, u32)>,
    used: u64,
    peak: u64,
}

impl DeviceMemory {
    /// `chunk` (`bytes`) is now in device memory, for `reads` local reads (0: it is
    /// counted now, then gone). Returns the bytes in use with it.
    pub fn hold(&mut self, chunk: ChunkId, bytes: u64, reads: u32) -> u64 {
        if let Some(held) = self.held.get_mut(&chunk) {
            held.1 += reads;
            return self.used;
        }
        let with = self.used.saturating_add(bytes);
        self.peak = self.peak.max(with);
        if reads > 0 {
            self.held.insert(chunk, (bytes, reads));
            self.used = with;
        }
        with
    }

    /// One local read of `chunk` ended; the last frees it.
    pub fn release(&mut self, chunk: ChunkId) {
        if let Some((bytes, reads)) = self.held.get_mut(&chunk) {
            *reads -= 1;
            if *reads == 0 {
                self.used -= *bytes;
                self.held.remove(&chunk);
            }
        }
    }

    /// Bytes held now.
    pub fn used(&self) -> u64 {
        self.used
    }

    /// The most bytes held at once so far.
    pub fn peak(&self) -> u64 {
        self.peak
    }
}
