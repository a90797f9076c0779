//! One-sided access (RMA): every rank may expose one memory window that other ranks
//! put bytes into and get bytes from without the target's engine taking part.
//!
//! A strategy declares its window once, before the run, through
//! [`crate::Strategy::window`] (size and [`WindowSync`]); drivers that
//! [offer](crate::collective::check_capabilities) the matching [`Capability`] allocate
//! every rank's window before any rank starts (MPI's `MPI_Win_allocate` is collective).
//! The strategy then issues [`OneSided`] operations through
//! [`crate::StrategyCtx::put`] / [`crate::StrategyCtx::get`]; the engine hands each to the
//! driver as [`crate::Action::OneSided`], and the driver answers with
//! [`crate::Engine::handle_one_sided_done`] once the operation is complete at the origin
//! (a put's bytes are in the target window; a get's bytes are here).
//!
//! # What every driver guarantees
//! - An operation on this rank's own window (`target` = self) is a local load or store:
//!   it happens when the driver executes it, in action order, and completes at once.
//! - [`WindowSync::Passive`] (MPI: `lock_all` at start, `flush` per operation): a remote
//!   operation completes on its own, as soon as the network allows.
//! - [`WindowSync::Fence`] (MPI: `MPI_Win_fence` epochs): a remote operation completes no
//!   later than the next fence ([`crate::CollectiveKind::Fence`]) its origin joins, and
//!   its completion is reported before that fence's. Every rank joins every fence.
//!
//! Bytes outside a window, or a get of bytes nobody wrote, are the strategy's bug; drivers
//! that keep real bytes refuse out-of-range access with an error naming the operation.
//!
//! # Exposed memory (registration)
//! Without any window, a strategy may also expose one chunk's bytes for remote reads
//! ([`crate::StrategyCtx::expose`], as a NIC registers memory): the driver registers them
//! and answers [`crate::Engine::handle_exposed`] with a [`MemoryKey`], which the strategy
//! sends to readers inside a message ([`crate::Message::keyed`]); a reader reads them with
//! [`crate::StrategyCtx::read`] (completing through
//! [`crate::Engine::handle_one_sided_done`], like a get), and the exposing rank withdraws
//! the registration ([`crate::StrategyCtx::withdraw`]) once no reader needs it. Drivers
//! offering [`Capability::OneSidedExpose`] serve this; the time a registration takes is
//! recorded as a `registration` record of the trace.

use crate::collective::Capability;
use crate::ids::{ChunkId, Rank};
use crate::payload::Payload;

/// How one-sided operations on the windows are synchronised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WindowSync {
    /// Passive target: every operation completes by itself (lock_all + flush).
    Passive,
    /// Active target: operations complete at the next fence, a collective of all ranks.
    Fence,
}

impl WindowSync {
    /// The capability a driver needs for this synchronisation.
    pub fn capability(self) -> Capability {
        match self {
            WindowSync::Passive => Capability::OneSidedPassive,
            WindowSync::Fence => Capability::OneSidedFence,
        }
    }
}

/// The window a rank exposes: `bytes` long, synchronised by `sync`. Every rank of a run
/// declares the same `sync`; sizes may differ (zero is allowed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowSpec {
    /// Window size in bytes.
    pub bytes: u64,
    /// Synchronisation of every operation on it.
    pub sync: WindowSync,
}

/// What a reader needs to read memory another rank exposed: where it is and its key, as
/// the exposing rank's driver names them, and its length. Opaque to strategies, which
/// only pass it on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MemoryKey {
    /// Address of the first byte, as the driver wants it named.
    pub addr: u64,
    /// The registration's key.
    pub key: u64,
    /// Bytes exposed.
    pub len: u64,
}

/// One one-sided operation, as the engine hands it to the driver.
#[derive(Debug)]
pub struct OneSided {
    /// Names the operation in [`crate::Engine::handle_one_sided_done`]; unique per rank.
    pub id: u64,
    /// The rank whose window is accessed (possibly this rank).
    pub target: Rank,
    /// Byte offset in the target's window.
    pub offset: u64,
    /// The chunk whose bytes move, for traces.
    pub chunk: ChunkId,
    /// Put or get.
    pub access: Access,
}

/// What a one-sided operation does.
#[derive(Debug)]
pub enum Access {
    /// Write these bytes at the offset; completes with no data.
    Put(Payload),
    /// Read `len` bytes at the offset; completes with them.
    Get {
        /// Bytes to read.
        len: u64,
    },
    /// Register these bytes (of this rank, `target` = self) for remote reads; completes
    /// through [`crate::Engine::handle_exposed`] with their [`MemoryKey`].
    Expose(Payload),
    /// Read `len` bytes at the offset of memory `target` exposed under `key`; completes
    /// with them, like a get.
    Read {
        /// The key the exposing rank sent.
        key: MemoryKey,
        /// Bytes to read.
        len: u64,
    },
    /// Withdraw this rank's exposure `key` (no reader reads it any more); drivers do it
    /// at once and report nothing.
    Withdraw(MemoryKey),
}

impl OneSided {
    /// Bytes the operation moves.
    ///
    /// ```
    /// use dagwire_runtime::one_sided::{Access, OneSided};
    /// use dagwire_runtime::{ChunkId, Payload, Rank};
    /// use std::sync::Arc;
    /// let data = Access::Put(Payload::zeroed(24));
    /// let put = OneSided { id: 0, target: Rank(1), offset: 64, chunk: ChunkId(3), access: data };
    /// assert_eq!(put.bytes(), 24);
    /// let get = OneSided { id: 1, target: Rank(1), offset: 64, chunk: ChunkId(3), access: Access::Get { len: 24 } };
    /// assert_eq!(get.bytes(), 24);
    /// ```
    pub fn bytes(&self) -> u64 {
        match &self.access {
            Access::Put(data) | Access::Expose(data) => data.len() as u64,
            Access::Get { len } | Access::Read { len, .. } => *len,
            Access::Withdraw(key) => key.len,
        }
    }
}

/// A window's bytes, for drivers that keep real memory (local threads, the test
/// harness): bounds-checked puts and gets.
///
/// ```
/// use dagwire_runtime::one_sided::WindowMemory;
/// let mut w = WindowMemory::new(16);
/// w.put(8, &[1, 2, 3]).unwrap();
/// assert_eq!(w.get(8, 3).unwrap().as_bytes(), &[1, 2, 3]);
/// assert!(w.get(12, 8).unwrap_err().contains("past the end of a 16-byte window"));
/// ```
#[derive(Debug, Default)]
pub struct WindowMemory {
    bytes: Vec<u8>,
}

impl WindowMemory {
    /// A zeroed window of `len` bytes.
    pub fn new(len: u64) -> Self {
        WindowMemory { bytes: vec![0; len as usize] }
    }

    /// Writes `data` at `offset`.
    pub fn put(&mut self, offset: u64, data: &[u8]) -> Result<(), String> {
        let range = self.range(offset, data.len() as u64)?;
        self.bytes[range].copy_from_slice(data);
        Ok(())
    }

    /// Reads `len` bytes at `offset`.
    pub fn get(&self, offset: u64, len: u64) -> Result<Payload, String> {
        Ok(Payload::from_bytes(&self.bytes[self.range(offset, len)?]))
    }

    fn range(&self, offset: u64, len: u64) -> Result<std::ops::Range<usize>, String> {
        let end = offset.checked_add(len).filter(|&end| end <= self.bytes.len() as u64);
        match end {
            Some(end) => Ok(offset as usize..end as usize),
            None => Err(format!(
                "access of {len} bytes at offset {offset} reaches past the end of a {}-byte window",
                self.bytes.len()
            )),
        }
    }
}

/// Memory a rank exposed ([`Access::Expose`]), for drivers that keep real bytes (local
/// threads, the test harness): keys are handed out in order; a read copies the bytes
/// (as a network would), checked against the exposure's length.
///
/// ```
/// use dagwire_runtime::Payload;
/// use dagwire_runtime::one_sided::ExposedMemory;
/// let mut m = ExposedMemory::default();
/// let key = m.expose(Payload::from_bytes(&[1, 2, 3, 4]));
/// assert_eq!(m.read(key, 1, 2).unwrap().as_bytes(), &[2, 3]);
/// assert!(m.read(key, 3, 2).unwrap_err().contains("past the end of 4 exposed bytes"));
/// m.withdraw(key).unwrap();
/// assert!(m.read(key, 0, 1).unwrap_err().contains("not exposed"));
/// assert!(m.is_empty());
/// ```
#[derive(Debug, Default)]
pub struct ExposedMemory {
    regions: std::collections::HashMap<u64, Payload>,
    next: u64,
}

impl ExposedMemory {
    /// Exposes `data` (kept, shared, until withdrawn) and returns its key.
    pub fn expose(&mut self, data: Payload) -> MemoryKey {
        let key = MemoryKey { addr: 0, key: self.next, len: data.len() as u64 };
        self.next += 1;
        self.regions.insert(key.key, data);
        key
    }

    /// A copy of `len` bytes at `offset` of exposure `key`.
    pub fn read(&self, key: MemoryKey, offset: u64, len: u64) -> Result<Payload, String> {
        let data = self.regions.get(&key.key).ok_or_else(|| format!("memory key {} is not exposed", key.key))?;
        match offset.checked_add(len) {
            Some(end) if end <= data.len() as u64 => {
                Ok(Payload::from_bytes(&data.as_bytes()[offset as usize..end as usize]))
            }
            _ => Err(format!(
                "read of {len} bytes at offset {offset} reaches past the end of {} exposed bytes",
                data.len()
            )),
        }
    }

    /// Withdraws exposure `key`.
    pub fn withdraw(&mut self, key: MemoryKey) -> Result<(), String> {
        self.regions.remove(&key.key).map(drop).ok_or_else(|| format!("memory key {} is not exposed", key.key))
    }

    /// Exposures not withdrawn.
    pub fn len(&self) -> usize {
        self.regions.len()
    }

    /// True when nothing is exposed.
    pub fn is_empty(&self) -> bool {
        self.regions.is_empty()
    }
}
