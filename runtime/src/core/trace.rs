//! Trace records: what every run writes, whatever the driver. Timestamps are
//! nanoseconds since the run started, on one clock per run (virtual time in the
//! simulator).

use crate::ids::{ChunkId, KernelId, Rank, TaskId};
use crate::message::MessageClass;
use std::collections::BTreeMap;

/// A task that ran.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskRecord {
    /// Which task.
    pub task: TaskId,
    /// Its kernel.
    pub kernel: KernelId,
    /// Rank that ran it.
    pub rank: Rank,
    /// Worker thread of that rank.
    pub worker: u32,
    /// Kernel start, ns.
    pub start_ns: u64,
    /// Kernel end, ns.
    pub end_ns: u64,
    /// Flop count from the DAG.
    pub flops: f64,
}

/// A message as received.
#[derive(Clone, Debug, PartialEq)]
pub struct MessageRecord {
    /// Sender.
    pub src: Rank,
    /// Receiver.
    pub dst: Rank,
    /// Strategy's name for the operation (`eager-data`, `rts`, ...).
    pub kind: &'static str,
    /// Data or control.
    pub class: MessageClass,
    /// Bytes counted (payload for data, header for control).
    pub bytes: u64,
    /// Chunk concerned.
    pub chunk: ChunkId,
    /// Sent, ns.
    pub sent_ns: u64,
    /// Received, ns.
    pub recv_ns: u64,
}

/// The real size of a chunk [sized at run time](crate::Dag::is_sized_at_run_time), as
/// its producer made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkSize {
    /// The chunk.
    pub chunk: ChunkId,
    /// Rank that produced it.
    pub rank: Rank,
    /// Its real size in bytes.
    pub bytes: u64,
    /// Its declared bound.
    pub bound: u64,
}

/// Which way a device copy moved bytes (see [`CopyRecord`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CopyKind {
    /// Device memory to host memory (a staged transfer leaving its sender's device).
    DeviceToHost,
    /// Host memory to device memory (a staged transfer landing on its receiver's device).
    HostToDevice,
    /// Device to device inside a node (over the peer link, else through PCIe).
    Peer,
}

impl CopyKind {
    /// `"d2h"`, `"h2d"` or `"peer"`, as written in the tables.
    ///
    /// ```
    /// assert_eq!(dagwire_runtime::trace::CopyKind::HostToDevice.as_str(), "h2d");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            CopyKind::DeviceToHost => "d2h",
            CopyKind::HostToDevice => "h2d",
            CopyKind::Peer => "peer",
        }
    }
}

/// A copy a simulated accelerator made on one of its copy engines: only the simulator
/// records them, and only on a machine with accelerators (a real driver keeps chunks in
/// host memory and copies nothing).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CopyRecord {
    /// Rank whose device ran the copy (the sender's for device-to-host and peer copies,
    /// the receiver's for host-to-device ones).
    pub rank: Rank,
    /// Copy engine of that device it held.
    pub engine: u32,
    /// Stream of that device it held.
    pub stream: u32,
    /// Which way it moved the bytes.
    pub kind: CopyKind,
    /// Bytes copied.
    pub bytes: u64,
    /// Start, ns (every resource it needed was free).
    pub start_ns: u64,
    /// End, ns.
    pub end_ns: u64,
    /// Sender of the transfer it served.
    pub src: Rank,
    /// Receiver of the transfer it served.
    pub dst: Rank,
    /// The chunk the transfer carried, when it was one whole chunk (a point-to-point
    /// message); `None` for collective pieces and one-sided data.
    pub chunk: Option<ChunkId>,
    /// What it carried: `message`, `collective`, `put` or `get`.
    pub carries: &'static str,
}

/// The phases of moving one chunk to one rank.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// The producer knows the chunk must move (it exists, a reader is remote).
    Posted,
    /// The protocol began (first message sent).
    Started,
    /// The data bytes left the producer.
    Wire,
    /// The chunk is usable on the reader's rank.
    Completed,
}

/// One phase of one transfer, as seen by one rank.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransferEvent {
    /// Chunk moved.
    pub chunk: ChunkId,
    /// Producer's rank.
    pub src: Rank,
    /// Reader's rank.
    pub dst: Rank,
    /// Which phase.
    pub phase: Phase,
    /// When, ns.
    pub at_ns: u64,
}

/// One transfer with all its phases joined (missing phases are `None`).
#[derive(Clone, Debug, PartialEq)]
pub struct TransferRecord {
    /// Chunk moved.
    pub chunk: ChunkId,
    /// Producer's rank.
    pub src: Rank,
    /// Reader's rank.
    pub dst: Rank,
    /// Bytes of the chunk (the real size of one sized at run time).
    pub bytes: u64,
    /// Posted, ns.
    pub posted_ns: Option<u64>,
    /// Started, ns.
    pub started_ns: Option<u64>,
    /// Data left the producer, ns.
    pub wire_ns: Option<u64>,
    /// Usable on the reader, ns.
    pub completed_ns: Option<u64>,
}

/// Everything one run recorded. Each rank fills its own; [`Trace::merge`] joins them.
///
/// ```
/// use dagwire_runtime::trace::{Phase, Trace, TransferEvent};
/// use dagwire_runtime::{ChunkId, Rank};
/// let mut a = Trace::default();
/// a.transfer_events.push(TransferEvent { chunk: ChunkId(1), src: Rank(0), dst: Rank(1), phase: Phase::Posted, at_ns: 5 });
/// let mut b = Trace::default();
/// b.transfer_events.push(TransferEvent { chunk: ChunkId(1), src: Rank(0), dst: Rank(1), phase: Phase::Completed, at_ns: 9 });
/// let t = Trace::merge(vec![a, b]);
/// let rows = t.transfers(|_| 64);
/// assert_eq!(rows.len(), 1);
/// assert_eq!((rows[0].posted_ns, rows[0].completed_ns), (Some(5), Some(9)));
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Trace {
    /// Tasks run.
    pub tasks: Vec<TaskRecord>,
    /// Messages received.
    pub messages: Vec<MessageRecord>,
    /// Transfer phases.
    pub transfer_events: Vec<TransferEvent>,
    /// Real sizes of the chunks sized at run time (kept at every [`TraceLevel`]: one
    /// record per such chunk).
    pub sizes: Vec<ChunkSize>,
    /// Device copies (simulated accelerators only; empty on every other run).
    pub copies: Vec<CopyRecord>,
    /// What this trace keeps of the records [`Trace::append`] hands it.
    pub level: TraceLevel,
    /// Records counted but not kept (at [`TraceLevel::Counts`]).
    pub counted: Counted,
}

/// How much of a run a trace keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TraceLevel {
    /// Every task, message and transfer phase.
    #[default]
    Full,
    /// Only how many tasks ran and the message totals: for runs whose records would
    /// not fit in memory (a simulated million-task run keeps about 170 bytes of records
    /// per task at [`TraceLevel::Full`]).
    Counts,
}

/// Records a [`TraceLevel::Counts`] trace counted instead of keeping.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counted {
    /// Tasks.
    pub tasks: u64,
    /// Messages, data and control.
    pub messages: MessageTotals,
    /// Transfer phases.
    pub transfer_events: u64,
    /// Device copies.
    pub copies: u64,
}

impl Trace {
    /// Joins per-rank traces into one, sorted by time so the result does not depend
    /// on the order ranks finished in.
    pub fn merge(parts: Vec<Trace>) -> Trace {
        // Allocate once and sort in place: a simulated run's trace can be most of its memory.
        let mut all = Trace {
            tasks: Vec::with_capacity(parts.iter().map(|p| p.tasks.len()).sum()),
            messages: Vec::with_capacity(parts.iter().map(|p| p.messages.len()).sum()),
            transfer_events: Vec::with_capacity(parts.iter().map(|p| p.transfer_events.len()).sum()),
            copies: Vec::with_capacity(parts.iter().map(|p| p.copies.len()).sum()),
            ..Trace::default()
        };
        for mut p in parts {
            all.counted.add(&p.counted);
            all.append(&mut p);
        }
        all.sort();
        all
    }

    /// An empty trace that keeps what `level` says.
    pub fn with_level(level: TraceLevel) -> Trace {
        Trace { level, ..Trace::default() }
    }

    /// Moves every record of `other` to the end of this trace (or, at
    /// [`TraceLevel::Counts`], counts and drops them), leaving `other` empty with its
    /// capacity (so a rank's buffers are reused as a run drains them).
    ///
    /// ```
    /// use dagwire_runtime::trace::{Trace, TraceLevel};
    /// use dagwire_runtime::{ChunkId, KernelId, Rank, TaskId};
    /// let mut rank = Trace::default();
    /// rank.tasks.push(dagwire_runtime::trace::TaskRecord {
    ///     task: TaskId(0), kernel: KernelId(0), rank: Rank(0), worker: 0, start_ns: 0, end_ns: 5, flops: 1.0,
    /// });
    /// let mut counts = Trace::with_level(TraceLevel::Counts);
    /// counts.append(&mut rank);
    /// assert!(counts.tasks.is_empty() && rank.tasks.is_empty());
    /// assert_eq!(counts.task_count(), 1);
    /// ```
    pub fn append(&mut self, other: &mut Trace) {
        self.sizes.append(&mut other.sizes);
        match self.level {
            TraceLevel::Full => {
                self.tasks.append(&mut other.tasks);
                self.messages.append(&mut other.messages);
                self.transfer_events.append(&mut other.transfer_events);
                self.copies.append(&mut other.copies);
            }
            TraceLevel::Counts => {
                self.counted.tasks += other.tasks.len() as u64;
                self.counted.messages.add(&totals(&other.messages));
                self.counted.transfer_events += other.transfer_events.len() as u64;
                self.counted.copies += other.copies.len() as u64;
                other.tasks.clear();
                other.messages.clear();
                other.transfer_events.clear();
                other.copies.clear();
            }
        }
    }

    /// Records a device copy (or, at [`TraceLevel::Counts`], counts it). Allocates only
    /// when the table outgrows its capacity.
    ///
    /// ```
    /// use dagwire_runtime::trace::{CopyKind, CopyRecord, Trace, TraceLevel};
    /// use dagwire_runtime::Rank;
    /// let copy = CopyRecord {
    ///     rank: Rank(0), engine: 0, stream: 0, kind: CopyKind::DeviceToHost, bytes: 64, start_ns: 0, end_ns: 9,
    ///     src: Rank(0), dst: Rank(1), chunk: None, carries: "message",
    /// };
    /// let (mut full, mut counts) = (Trace::default(), Trace::with_level(TraceLevel::Counts));
    /// full.record_copy(copy);
    /// counts.record_copy(copy);
    /// assert_eq!((full.copies.len(), counts.copies.len(), counts.counted.copies), (1, 0, 1));
    /// ```
    pub fn record_copy(&mut self, copy: CopyRecord) {
        match self.level {
            TraceLevel::Full => self.copies.push(copy),
            TraceLevel::Counts => self.counted.copies += 1,
        }
    }

    /// Swaps the tables an engine writes as it runs (tasks, messages, transfer phases)
    /// with `other`'s; sizes, copies, level and counts stay. A driver that owns every
    /// rank (the simulator) lends the run's tables to the engine it is about to call, so
    /// its records go straight to the end of the one set of tables, which stays in
    /// cache, instead of through a buffer of each rank's, and swaps them back after.
    ///
    /// ```
    /// use dagwire_runtime::trace::{TaskRecord, Trace};
    /// use dagwire_runtime::{KernelId, Rank, TaskId};
    /// let (mut run, mut rank) = (Trace::default(), Trace::default());
    /// run.swap_records(&mut rank);
    /// let (task, kernel, rank0) = (TaskId(0), KernelId(0), Rank(0));
    /// rank.tasks.push(TaskRecord { task, kernel, rank: rank0, worker: 0, start_ns: 0, end_ns: 1, flops: 0.0 });
    /// run.swap_records(&mut rank);
    /// assert_eq!((run.tasks.len(), rank.tasks.len()), (1, 0));
    /// ```
    pub fn swap_records(&mut self, other: &mut Trace) {
        std::mem::swap(&mut self.tasks, &mut other.tasks);
        std::mem::swap(&mut self.messages, &mut other.messages);
        std::mem::swap(&mut self.transfer_events, &mut other.transfer_events);
    }

    /// Tasks run: the records kept plus those only counted.
    pub fn task_count(&self) -> u64 {
        self.tasks.len() as u64 + self.counted.tasks
    }

    /// Sorts every table by time (then ranks and ids), so the order does not depend on
    /// the order in which ranks reported.
    pub fn sort(&mut self) {
        sort_nearly_sorted(&mut self.tasks, |t| t.start_ns, |t| (t.start_ns, t.rank, t.task));
        sort_nearly_sorted(
            &mut self.messages,
            |m| m.sent_ns,
            |m| (m.sent_ns, m.src, m.dst, m.chunk, m.recv_ns, m.kind, m.bytes),
        );
        sort_nearly_sorted(&mut self.transfer_events, |e| e.at_ns, |e| (e.at_ns, e.src, e.dst, e.chunk, e.phase));
        self.sizes.sort_unstable_by_key(|s| (s.chunk, s.rank));
        sort_nearly_sorted(
            &mut self.copies,
            |c| c.start_ns,
            |c| (c.start_ns, c.rank, c.engine, c.stream, c.end_ns, c.kind, c.src, c.dst, c.chunk, c.bytes),
        );
    }

    /// One row per (chunk, src, dst) transfer, with its phases joined; `bytes_of`
    /// gives the chunk sizes (from the DAG). A chunk [sized at run
    /// time](crate::Dag::is_sized_at_run_time) reports the real size its producer
    /// recorded in [`Trace::sizes`], not its bound.
    ///
    /// ```
    /// use dagwire_runtime::trace::{ChunkSize, Phase, Trace, TransferEvent};
    /// use dagwire_runtime::{ChunkId, Rank};
    /// let mut t = Trace::default();
    /// for c in [1, 2] {
    ///     let e = TransferEvent { chunk: ChunkId(c), src: Rank(0), dst: Rank(1), phase: Phase::Posted, at_ns: 5 };
    ///     t.transfer_events.push(e);
    /// }
    /// t.sizes.push(ChunkSize { chunk: ChunkId(2), rank: Rank(0), bytes: 24, bound: 4096 });
    /// let rows = t.transfers(|_| 4096);
    /// assert_eq!(rows.iter().map(|r| r.bytes).collect::<Vec<_>>(), [4096, 24]);
    /// ```
    pub fn transfers(&self, bytes_of: impl Fn(ChunkId) -> u64) -> Vec<TransferRecord> {
        let real: BTreeMap<(ChunkId, Rank), u64> = self.sizes.iter().map(|s| ((s.chunk, s.rank), s.bytes)).collect();
        let mut rows: BTreeMap<(ChunkId, Rank, Rank), TransferRecord> = BTreeMap::new();
        for e in &self.transfer_events {
            let row = rows.entry((e.chunk, e.src, e.dst)).or_insert_with(|| TransferRecord {
                chunk: e.chunk,
                src: e.src,
                dst: e.dst,
                bytes: real.get(&(e.chunk, e.src)).copied().unwrap_or_else(|| bytes_of(e.chunk)),
                posted_ns: None,
                started_ns: None,
                wire_ns: None,
                completed_ns: None,
            });
            let slot = match e.phase {
                Phase::Posted => &mut row.posted_ns,
                Phase::Started => &mut row.started_ns,
                Phase::Wire => &mut row.wire_ns,
                Phase::Completed => &mut row.completed_ns,
            };
            *slot = Some(slot.map_or(e.at_ns, |t| t.min(e.at_ns)));
        }
        let mut rows: Vec<_> = rows.into_values().collect();
        rows.sort_by_key(|r| (r.posted_ns, r.src, r.dst, r.chunk));
        rows
    }

    /// Totals over messages, kept and only counted: (data messages, data bytes,
    /// control messages, control bytes).
    pub fn message_totals(&self) -> MessageTotals {
        let mut t = totals(&self.messages);
        t.add(&self.counted.messages);
        t
    }
}

/// The `kind` of the records of memory registrations ([`crate::one_sided::Access::Expose`]):
/// from the rank to itself, `bytes` registered, `sent_ns..recv_ns` the time it took.
/// Counted apart from messages ([`MessageTotals::registrations`]).
pub const REGISTRATION: &str = "registration";

fn totals(messages: &[MessageRecord]) -> MessageTotals {
    let mut t = MessageTotals::default();
    for m in messages {
        if m.kind == REGISTRATION {
            t.registrations += 1;
            t.registration_ns += m.recv_ns.saturating_sub(m.sent_ns);
            continue;
        }
        match m.class {
            MessageClass::Data => {
                t.data_messages += 1;
                t.data_bytes += m.bytes;
            }
            MessageClass::Control => {
                t.control_messages += 1;
                t.control_bytes += m.bytes;
            }
        }
    }
    t
}

impl Counted {
    fn add(&mut self, other: &Counted) {
        self.tasks += other.tasks;
        self.messages.add(&other.messages);
        self.transfer_events += other.transfer_events;
        self.copies += other.copies;
    }
}

impl MessageTotals {
    fn add(&mut self, other: &MessageTotals) {
        self.data_messages += other.data_messages;
        self.data_bytes += other.data_bytes;
        self.control_messages += other.control_messages;
        self.control_bytes += other.control_bytes;
        self.registrations += other.registrations;
        self.registration_ns += other.registration_ns;
    }
}

/// Message and byte counts split into data and control.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MessageTotals {
    /// Messages carrying chunk bytes.
    pub data_messages: u64,
    /// Chunk bytes moved.
    pub data_bytes: u64,
    /// Protocol-only messages.
    pub control_messages: u64,
    /// Header bytes of protocol-only messages.
    pub control_bytes: u64,
    /// Memory registrations (records of kind [`REGISTRATION`], not messages).
    pub registrations: u64,
    /// Time those registrations took, summed over ranks, ns.
    pub registration_ns: u64,
}

/// Sorts `v` by `key` (a total order on the records), cheaply when the table is nearly
/// in order already, as the simulator leaves its tables: records come in the order
/// events ran, so mostly in the order of `prefix`, the key's leading time.
///
/// A sorted table returns after one pass. Otherwise each record that comes before the
/// previous one in `prefix` is taken out together with that previous one (at most twice
/// the fewest records whose removal leaves the rest in order); the rest is put in `key`
/// order by sorting its runs of equal `prefix`, the taken records are sorted, and the two
/// are merged from the end. When over an eighth of the records would be taken out, a
/// plain sort runs instead (the taken records are a copy: the cap bounds the memory, and
/// the pass wasted on a table far from sorted, such as messages by send time). Records with equal keys come out in some order, as with
/// `sort_unstable_by_key`.
fn sort_nearly_sorted<T: Clone, K: Ord>(v: &mut [T], prefix: impl Fn(&T) -> u64, key: impl Fn(&T) -> K) {
    if v.is_sorted_by_key(&key) {
        return;
    }
    // v[..kept] stays in `prefix` order; what breaks it goes to `out`; so
    // kept + out.len() is the number of records looked at.
    let mut out: Vec<T> = Vec::new();
    let mut kept = 0;
    for i in 0..v.len() {
        if kept > 0 && prefix(&v[i]) < prefix(&v[kept - 1]) {
            if 8 * (out.len() + 2) > v.len() {
                // Put them back in the free places and sort the lot.
                v[kept..i].clone_from_slice(&out);
                v.sort_unstable_by_key(key);
                return;
            }
            kept -= 1;
            out.push(v[kept].clone());
            out.push(v[i].clone());
        } else {
            v.swap(kept, i);
            kept += 1;
        }
    }
    for run in v[..kept].chunk_by_mut(|a, b| prefix(a) == prefix(b)) {
        if run.len() > 1 {
            run.sort_unstable_by_key(&key);
        }
    }
    out.sort_unstable_by_key(&key);
    // Merge from the end: the free places are v[kept + out.len()..], filled last first.
    let mut at = v.len();
    while let Some(last) = out.last() {
        at -= 1;
        if kept > 0 && key(&v[kept - 1]) > key(last) {
            kept -= 1;
            v.swap(kept, at);
        } else {
            v[at] = out.pop().expect("out is not empty");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sort_nearly_sorted;
    use crate::core::rng::{RngExt, SeedableRng, SeededRng};

    /// Against `sort_unstable_by_key` on tables that are sorted, nearly sorted (records
    /// late or early, runs of equal times in any order) and shuffled (the plain-sort path).
    #[test]
    fn sort_nearly_sorted_matches_a_full_sort() {
        let mut rng = SeededRng::seed_from_u64(7);
        for len in [0, 1, 2, 5, 100, 1000] {
            for disorder in [0.0, 0.01, 0.1, 0.4, 1.0] {
                // (time, id): time is the prefix, (time, id) the whole key.
                let mut v: Vec<(u64, u32)> = (0..len).map(|i| (i as u64 / 3, rng.random_range(0..4))).collect();
                for i in 0..len {
                    if rng.random_bool(disorder) {
                        let j = rng.random_range(0..len);
                        v.swap(i, j);
                    }
                }
                let mut want = v.clone();
                want.sort_unstable();
                sort_nearly_sorted(&mut v, |r| r.0, |r| *r);
                assert_eq!(v, want, "len {len}, disorder {disorder}");
            }
        }
    }
}
