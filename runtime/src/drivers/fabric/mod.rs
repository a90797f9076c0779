//! The `libfabric` driver (cargo feature `fabric`): one process per rank, every byte
//! between ranks carried by libfabric itself (no MPI in between), on the provider a
//! sweep names (`tcp`, `shm`, `verbs`, `cxi`, `efa`, ... as `fi_info` lists them).
//!
//! - **Processes** are started by [`crate::drivers::launch`] (`launcher = "local"`: N processes on this
//!   host, no MPI needed) or by an MPI launcher (`mpirun`, `srun`), which only starts
//!   them: each finds its rank and the rank count in the environment ([`JOB_ENV`], or
//!   what Open MPI, PMI and Slurm set).
//! - **Bootstrap**: each rank opens an RDM endpoint and writes its address and its plan
//!   (the DAG's fingerprint, the strategy, the rank count, the workers) to a file in a
//!   directory every rank can read ([`JOB_DIR_ENV`]; the local launcher makes a fresh one
//!   per job). Each run of the job bootstraps in a subdirectory of its own, named by the
//!   launcher's job identity when it sets one (PMIx namespace, Open MPI job id, Slurm job
//!   and step) and the run's number in this process, so a job that runs several DAGs
//!   (calibration, benchmarks) or a directory reused by a later job never reads another
//!   run's addresses; each then reads every other rank's file, refuses a plan that differs from
//!   its own with the ranks that differ, and inserts the addresses into its address
//!   vector. A rank whose peers do not show up within [`BOOT_TIMEOUT`] fails saying which.
//! - **Messages**: a message with no key, an `arg` below 64 and a payload of at most the
//!   provider's inject size (`shm`: 4096 bytes) travels whole as one injected tagged
//!   message (`fi_tinjectdata`): its header is the 64-bit tag and the 64 bits of remote
//!   completion data ([`header_in_tag`]), so a payload of exactly the inject size still
//!   takes the provider's inject path (a header in the body would push it over, onto a
//!   slower protocol); it lands in a tagged mailbox of receives posted ahead. Such a
//!   message with a larger payload, up to [`POOL_BYTES`] (64 KiB), goes the same way but
//!   as `fi_tsenddata` from the payload's own bytes into the receiver's **pool**: 16
//!   receives of that room posted ahead for any source, whose buffer becomes the chunk
//!   as it landed (no copy, no registration, no extra round trip); senders spend credits
//!   the receiver grants and gives back once it posted the receives again ([`Credits`]),
//!   so no pooled message arrives unexpected, and send by the paths below when they
//!   have none (and always with more than 17 ranks). Any other
//!   engine message is tagged by 64 bits holding a kind, the source rank
//!   and a per-pair sequence number. A
//!   header (with the payload inline up to [`INLINE_LIMIT`] bytes) lands in the mailbox:
//!   untagged receives posted ahead that take every small message (headers, releases, go-aheads,
//!   collective pieces, each with its tag in front), posted again after the actions their
//!   messages led to, in a list of their own apart from the tagged receives. A larger
//!   payload is pulled by its receiver (as UCX's and PaRSEC's rendezvous do): the sender
//!   registers the payload's own bytes for remote reads and puts their address and key
//!   after the header; the receiver reads them with one `fi_read` into the chunk's fresh
//!   buffer and then tells the sender it may close the registration (a small release
//!   message). One small message and one read per payload: a push would take three legs
//!   (header, the receiver's go-ahead once its exact receive is posted, the data), since
//!   no large message may arrive unexpected (libfabric 1.17's `shm` provider hangs on
//!   unexpected large messages, and `tcp;ofi_rxm` would buffer them).
//!   Headers are handed to the engine in each source's send order (the sequence number
//!   puts them back in order whatever order the provider completes them in).
//! - **Progress**: the rank's loop is the only thread that calls libfabric (the domain is
//!   `FI_THREAD_DOMAIN`); it polls the completion queue, executes the engine's actions and
//!   runs kernels inline or hands them to worker threads, as the MPI driver does.
//! - **Clock**: each rank measures its offset to rank 0 with ping-pongs at start-up, so
//!   every timestamp is on rank 0's timeline; at the end every rank's trace and results
//!   are gathered to rank 0 over the same endpoint.
//! - **Failures**: a provider error fails the rank with libfabric's own words
//!   (`fi_strerror`, `fi_cq_strerror`); a failed rank exits, and its launcher ends the job.
//!
//! - **Collectives** run the runtime's shared algorithms ([`crate::collectives`], one
//!   [`Collectives`] per rank, as the `local` driver and the MPI driver's
//!   `collectives = runtime` run them): each piece is [`Piece::encode`]d and travels as a
//!   tagged message of its own kind, inline up to [`INLINE_LIMIT`] bytes into receives
//!   posted ahead, larger ones announced and sent once the receiver's exact receive is
//!   posted (the same go-ahead as engine payloads). A received piece goes to
//!   [`Collectives::handle_piece`]; a fence is the layer's dissemination barrier.
//! - **One-sided windows** (the `rma` strategy): a rank's window is registered memory
//!   ([`Endpoint::register_window`]); its key and size travel in the bootstrap file with
//!   the address. A put is an `fi_writemsg` with `FI_DELIVERY_COMPLETE` (reported done
//!   once the bytes are in the target's memory), a get an `fi_read`; both passive (the
//!   target takes no part), checked against the target's window size first; an
//!   operation on the rank's own window is a local copy. A fence waits until every
//!   one-sided operation this rank issued completed, then joins the shared layer's
//!   barrier, so after it every rank's writes are in place. At the end each rank keeps
//!   its endpoint (and its memory) open until rank 0 says every report arrived, so no
//!   peer reads memory that is gone.
//!
//! - **Exposed memory** (the `fabric` strategy): an exposure registers the chunk's own
//!   bytes read-only for peers ([`Endpoint::register`]; the registration keeps a shared
//!   clone of the payload alive) and hands the engine its address, key and length, which
//!   travel in a message header; a read is an `fi_read` into a fresh buffer, checked
//!   against the exposed length first; a withdrawal closes the registration.
//!
//! What it offers strategies: point-to-point messages, every collective, one-sided
//! windows with passive or fence synchronisation, and exposed memory (every strategy).
//!
//! All `unsafe` code lives in [`raw`].

#![deny(unsafe_code)]

pub mod raw;

use crate::collective::{Capability, CollectiveJoin, CollectiveKind, check_capabilities};
use crate::collectives::{Collectives, Piece, Segmenting};
use crate::dag::Dag;
use crate::drivers::fault::Injector;
use crate::drivers::kernels::{self, Finished, KernelRunner};
use crate::drivers::panics::{Handling, set_handling};
use crate::drivers::rank_loop::{RankCore, RankLoop};
use crate::drivers::registry::{
    self, CheckError, DriverCheck, DriverInfo, Executed, JobDriver, JobRank, Launch, RunRequest,
};
use crate::drivers::run::{IdleWait, PROGRESS_NOTE, Progress, RunError, RunOutcome, cores_shared, note_progress};
use crate::drivers::wire;
use crate::drivers::workers::Workers;
use crate::engine::{Action, Engine};
use crate::ids::{ChunkId, Rank};
use crate::message::Message;
use crate::one_sided::{Access, OneSided};
use crate::params::ParamSpec;
use crate::payload::Payload;
use crate::trace::Trace;
use crossbeam_channel::{Receiver, unbounded};
use raw::{Buffer, Completion, Endpoint, FabricError, MemoryKey};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use crate::drivers::launch::{JOB_DIR_ENV, JOB_ENV};

/// What the libfabric driver offers strategies: messages, the collectives the shared
/// layer runs over them, and one-sided windows (registered memory, `fi_read` and
/// `fi_writemsg`; passive, or completed before the fence's barrier).
pub const CAPABILITIES: &[Capability] = &[
    Capability::PointToPoint,
    Capability::OneSidedPassive,
    Capability::OneSidedFence,
    Capability::OneSidedExpose,
    Capability::AllToAllV,
    Capability::NeighborAllToAllV,
    Capability::Broadcast,
    Capability::AllReduce,
    Capability::ReduceScatter,
    Capability::AllGather,
];

/// The libfabric driver's registry entry.
pub const DRIVER: DriverInfo = DriverInfo {
    name: "libfabric",
    summary: "one process per rank, libfabric carries every byte (messages and tagged messages on an RDM \
              endpoint of the provider asked for, fi_read/fi_write on registered memory); processes started on this host \
              (launcher = local) or by an MPI launcher; needs libfabric",
    params,
    offers: CAPABILITIES,
    host,
    check,
    launch: Launch::Job(JobDriver { join, abort: abort_job }),
};

/// The driver's parameters: the provider, and the launcher settings of job drivers
/// (`launcher = "local"` needs no MPI).
fn params() -> Vec<ParamSpec> {
    let mut specs = vec![ParamSpec::text(
        "provider",
        "tcp",
        "the libfabric provider (tcp, shm, sockets, verbs, cxi, efa, ...; `fi_info -l` lists those installed); one \
         that is not there is refused before the run with the list of those that are",
    )];
    for spec in JobDriver::launcher_params() {
        specs.push(match spec.name {
            "launcher" => ParamSpec::text(
                "launcher",
                "local",
                "what starts the ranks: local (N processes on this host, no MPI needed), or an MPI launcher \
                 (mpirun, srun; auto: $DAGWIRE_MPI_LAUNCHER, else mpirun) that only starts them",
            ),
            _ => spec,
        });
    }
    specs
}

/// The providers libfabric reports here (those `check` accepts), for `experiment list
/// drivers`; one `fi_getinfo` call, and a line saying so when there are none.
fn host() -> Option<String> {
    let available = raw::providers();
    Some(if available.is_empty() {
        "libfabric reports no provider with RDM endpoints, messages, tagged messages and RMA on this host".to_string()
    } else {
        format!("providers on this host (RDM, messages, tagged, RMA): {}", available.join(", "))
    })
}

/// Refuses a fault on one rank, and a provider libfabric does not offer here (with the
/// list of those it does).
fn check(c: &DriverCheck<'_>) -> Result<(), CheckError> {
    registry::faults_need_two_ranks(c)?;
    let provider = c.params.str("provider");
    let available = raw::providers();
    if !available.iter().any(|p| p == provider || p.split(';').next() == Some(provider)) {
        return Err(CheckError::param(
            "provider",
            format!(
                "libfabric offers no provider `{provider}` with RDM endpoints, messages, tagged messages and RMA here; available: {}",
                if available.is_empty() { "none".to_string() } else { available.join(", ") }
            ),
        ));
    }
    Ok(())
}

/// Joins the job this process was started in: its rank and size from the environment.
fn join() -> Result<Box<dyn JobRank>, RunError> {
    Ok(Box::new(FabricJob::from_env()?))
}

/// Ends this rank with exit code `code`; its launcher ends the others.
pub fn abort_job(code: i32) -> ! {
    std::process::exit(code)
}

/// Payloads up to this many bytes travel inside their header's message.
pub const INLINE_LIMIT: usize = 16 << 10;

/// Mailbox receives posted ahead (each of [`MAILBOX_BYTES`], 2 MiB in all): enough for a
/// burst from every peer. One untagged mailbox takes every small message (headers,
/// go-aheads, pieces): a provider matches an arriving message against its list of posted
/// receives in order, so with a tagged mailbox per kind a header walked past every
/// posted go-ahead and piece receive first (192 of them: 0.4-0.8 us per message on
/// `shm`), and a large payload past the whole mailbox (~1 us at 128 receives); untagged
/// and tagged receives are separate lists. As many tagged receives of the inject size
/// take the messages whose header is their tag ([`TAG_HEADER`]): each matches any of them,
/// so the first posted takes the message; but a large collective piece's exact receive,
/// posted behind them, is matched only after them.
const MAILBOX_DEPTH: usize = 128;

/// How long a rank waits for its peers at start-up and at the end.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(60);

/// Tag kinds (bits 56..63 of a tag). Small messages (headers, releases, go-aheads, pieces) travel
/// untagged into the mailbox with their tag in front ([`PREFIX`]); the others are
/// libfabric tags, received by receives posted for their exact tag.
const KIND_MSG: u64 = 1;
/// The completion token of a large payload's read (source and sequence number below).
const KIND_DATA: u64 = 2;
const KIND_BOOT: u64 = 3;
/// A receiver has read a large payload: the sender may close its registration.
const KIND_RELEASE: u64 = 4;
/// A collective's piece (inline, or the announcement of one that follows on [`KIND_PIECE_DATA`]).
const KIND_PIECE: u64 = 5;
/// A receiver's go-ahead for a large piece.
const KIND_PIECE_GO: u64 = 6;
/// A large piece's bytes.
const KIND_PIECE_DATA: u64 = 7;
/// Completion tokens of one-sided operations (the operation's id below the kind).
const KIND_RMA: u64 = 8;
/// Pool credits given back ([`Credits`]): the count in the sequence number's place.
const KIND_CREDIT: u64 = 9;
/// First byte of a [`KIND_PIECE`] message (and of a large piece's bytes): the encoded piece follows.
const PIECE_INLINE: u8 = 0;
/// First byte of a [`KIND_PIECE`] message: the piece's length (u64) follows; its bytes come apart.
const PIECE_APART: u8 = 1;
/// Bits of a tag below the kind: the source rank (24 bits) and a sequence number (32 bits).
const BELOW_KIND: u64 = (1 << 56) - 1;

/// The tag of a message of `kind` from rank `src` with sequence number `seq`.
///
/// ```
/// use dagwire_runtime::drivers::fabric::{tag, tag_parts};
/// assert_eq!(tag_parts(tag(2, 5, 7)), (2, 5, 7));
/// ```
pub fn tag(kind: u64, src: usize, seq: u32) -> u64 {
    (kind << 56) | ((src as u64) << 32) | seq as u64
}

/// (kind, source rank, sequence number) of a tag made by [`tag`].
pub fn tag_parts(tag: u64) -> (u64, usize, u32) {
    (tag >> 56, ((tag >> 32) & 0xff_ffff) as usize, tag as u32)
}

/// Tags with this bit set carry a whole message header between them and their 64 bits
/// of remote completion data ([`header_in_tag`]); every other tag kind is below it.
pub const TAG_HEADER: u64 = 1 << 63;

/// Tags with this bit set (besides [`TAG_HEADER`]) are messages into the receiver's pool
/// for mid-size payloads ([`POOL_BYTES`]); without it, into the tagged mailbox. The bit
/// only steers matching: [`header_in_tag`] leaves it clear, the pooled send sets it.
pub const TAG_POOL: u64 = 1 << 62;

/// Widths of a header carried in tag and completion data ([`header_in_tag`]), most
/// significant first after the [`TAG_HEADER`] and [`TAG_POOL`] bits: payload present
/// (1), source rank (24), sequence number's low bits (16), op (8), arg (6), `sent_ns`'s
/// low bits (39), chunk (32): 128 bits. The full header needs 1 + 1 + 24 + 32 + 8 + 64 +
/// 64 + 32 = 226 bits (a key 192 more), so two fields travel shortened: the receiver
/// restores the sequence number from the next one it expects from that source (exact
/// while fewer than 65,536 of the source's messages are undelivered, [`seq_from_low`])
/// and `sent_ns` from its own clock on the same timeline (exact within 2^39 ns, about 9
/// minutes, of sending, [`sent_from_low`]; 40 bits until the pool took one); and only
/// messages whose `arg` is below 64 and that carry no key fit (a data message's `arg` is
/// 0 in the eager, fabric, parsec and starpu strategies).
const TH_SRC: u32 = 24;
const TH_SEQ: u32 = 16;
const TH_OP: u32 = 8;
const TH_ARG: u32 = 6;
const TH_SENT: u32 = 39;
const TH_CHUNK: u32 = 32;

/// The tag and remote completion data carrying `msg`'s header (not its payload) from
/// rank `src` with sequence number `seq`, when its fields fit ([`TAG_HEADER`]'s layout;
/// the [`TAG_POOL`] bit clear).
///
/// ```
/// use dagwire_runtime::drivers::fabric::{TAG_POOL, header_from_tag, header_in_tag};
/// use dagwire_runtime::{ChunkId, Message, Payload};
/// let msg = Message { sent_ns: 123_456, ..Message::data(2, ChunkId(7), Payload::zeroed(8)) };
/// let (tag, data) = header_in_tag(&msg, 5, 70_000).unwrap();
/// let h = header_from_tag(tag, data);
/// assert_eq!((tag & TAG_POOL, header_from_tag(tag | TAG_POOL, data)), (0, h.clone()), "the pool bit only steers");
/// assert_eq!((h.src, h.seq_low, h.payload), (5, (70_000u32 % 65_536) as u16, true));
/// assert_eq!(h.message(200_000), Message { payload: None, ..msg });
/// assert!(header_in_tag(&Message::control(1, ChunkId(7), 64), 5, 0).is_none(), "arg does not fit");
/// ```
pub fn header_in_tag(msg: &Message, src: usize, seq: u32) -> Option<(u64, u64)> {
    if msg.key.is_some() || msg.arg >> TH_ARG != 0 || (src as u64) >> TH_SRC != 0 {
        return None;
    }
    let mut w: u128 = 1;
    let mut push = |value: u64, bits: u32| w = (w << bits) | (value & ((1u64 << bits) - 1)) as u128;
    push(0, 1); // TAG_POOL
    push(msg.payload.is_some() as u64, 1);
    push(src as u64, TH_SRC);
    push(seq as u64, TH_SEQ);
    push(msg.op as u64, TH_OP);
    push(msg.arg, TH_ARG);
    push(msg.sent_ns, TH_SENT);
    push(msg.chunk.0 as u64, TH_CHUNK);
    Some(((w >> 64) as u64, w as u64))
}

/// A header read back from tag and completion data ([`header_in_tag`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagHeader {
    /// The source rank.
    pub src: usize,
    /// The low bits of the sequence number ([`seq_from_low`] restores it).
    pub seq_low: u16,
    /// Whether the message has a payload (the received bytes, maybe none).
    pub payload: bool,
    op: u8,
    arg: u64,
    sent_low: u64,
    chunk: u32,
}

impl TagHeader {
    /// The message without its payload, `sent_ns` restored from the receiver's clock `now`.
    pub fn message(&self, now: u64) -> Message {
        Message {
            op: self.op,
            chunk: ChunkId(self.chunk),
            arg: self.arg,
            sent_ns: sent_from_low(now, self.sent_low),
            payload: None,
            key: None,
        }
    }
}

/// Reads the header that [`header_in_tag`] put in `tag` and `data`.
pub fn header_from_tag(tag: u64, data: u64) -> TagHeader {
    let mut w = ((tag as u128) << 64) | data as u128;
    let mut pop = |bits: u32| {
        let v = (w & ((1u128 << bits) - 1)) as u64;
        w >>= bits;
        v
    };
    let chunk = pop(TH_CHUNK) as u32;
    let sent_low = pop(TH_SENT);
    let arg = pop(TH_ARG);
    let op = pop(TH_OP) as u8;
    let seq_low = pop(TH_SEQ) as u16;
    let src = pop(TH_SRC) as usize;
    let payload = pop(1) == 1;
    let _pool = pop(1);
    TagHeader { src, seq_low, payload, op, arg, sent_low, chunk }
}

/// The sequence number whose low 16 bits are `low`, at or after `next` (the next one the
/// receiver expects from that source).
///
/// ```
/// use dagwire_runtime::drivers::fabric::seq_from_low;
/// assert_eq!(seq_from_low(70_000, (70_005 % 65_536) as u16), 70_005);
/// assert_eq!(seq_from_low(u32::MAX, 1), 1);
/// ```
pub fn seq_from_low(next: u32, low: u16) -> u32 {
    next.wrapping_add(low.wrapping_sub(next as u16) as u32)
}

/// How far ahead of the receiver's clock a restored `sent_ns` may be (clock offsets
/// between ranks are microseconds).
const SENT_SLACK: u64 = 1 << 30;

/// The time whose low 39 bits are `low`, at most [`SENT_SLACK`] after `now` and less than
/// 2^39 ns before it.
///
/// ```
/// use dagwire_runtime::drivers::fabric::sent_from_low;
/// let sent = (3u64 << 39) + 12_345;
/// assert_eq!(sent_from_low(sent + 5_000, sent & ((1 << 39) - 1)), sent);
/// assert_eq!(sent_from_low(sent - 5_000, sent & ((1 << 39) - 1)), sent, "a clock slightly behind");
/// assert_eq!(sent_from_low(0, 700), 700);
/// ```
pub fn sent_from_low(now: u64, low: u64) -> u64 {
    let top = now + SENT_SLACK;
    top.saturating_sub(top.wrapping_sub(low) & ((1 << TH_SENT) - 1))
}

/// Receives each endpoint keeps posted for mid-size payloads (its pool).
pub const POOL_DEPTH: u32 = 16;

/// Messages this process received through its pool, over all its runs (for tests and
/// benchmarks to see the pool at work: [`pooled_received`]).
static POOLED_RECEIVED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many messages this process received through its pool so far.
pub fn pooled_received() -> u64 {
    POOLED_RECEIVED.load(std::sync::atomic::Ordering::Relaxed)
}

/// The largest payload sent into a peer's pool (each pool receive has room for this much).
pub const POOL_BYTES: usize = 64 << 10;

/// The pool's credits on one rank: how many messages it may still send into each peer's
/// pool, and what it owes each peer for messages that landed in its own.
///
/// A payload above the provider's inject size and up to [`POOL_BYTES`] whose header fits
/// its tag ([`header_in_tag`]) travels as one `fi_tsenddata` straight into one of the
/// receiver's [`POOL_DEPTH`] pool receives (posted for any source) and is handed to the
/// engine as it landed, with no copy, no registration and no extra round trip. A message
/// that arrived with no receive posted for it would wait unexpected (`shm` hangs on
/// those), so senders spend credits: each receiver grants every other rank
/// `POOL_DEPTH / (ranks - 1)` ([`Credits::grant`]), so the grants never exceed the
/// receives, and gives a credit back only once the receive its message used is posted
/// again, in a small message carrying the count (batched: [`Credits::due`]). A sender
/// with no credit left sends by the path it would take without the pool (the mailbox up
/// to the inline limit, the receiver's read above). With more than 17 ranks a grant
/// would be 0: the pool is off.
///
/// ```
/// use dagwire_runtime::drivers::fabric::Credits;
/// let mut c = Credits::new(3, 0, true);
/// assert_eq!(c.grant(), 8);
/// assert!((0..8).all(|_| c.take(1)) && !c.take(1), "8 credits for rank 1, then none");
/// c.returned(1, 8).unwrap();
/// assert!(c.returned(1, 1).is_err(), "never more than granted");
/// (0..5).for_each(|_| c.used(2));
/// assert_eq!(c.to_repost(), 5);
/// c.reposted();
/// assert_eq!(c.due(), vec![(2, 5)], "owed credits go back once they reach half the grant");
/// assert_eq!(Credits::new(17, 0, true).grant(), 1);
/// assert_eq!(Credits::new(18, 0, true).grant(), 0, "off above 17 ranks");
/// ```
#[derive(Clone, Debug)]
pub struct Credits {
    grant: u32,
    /// Per peer: messages this rank may still send into its pool.
    left: Vec<u32>,
    /// Per peer: pool receives its messages used, posted again, and not yet credited back.
    owed: Vec<u32>,
    /// Sources of the messages that used pool receives not yet posted again.
    used: Vec<usize>,
}

impl Credits {
    /// Rank `me`'s credits in a job of `ranks`; `usable` is false when the provider
    /// cannot carry a header in tag and completion data (then the pool is off).
    pub fn new(ranks: usize, me: usize, usable: bool) -> Credits {
        let grant = if usable && ranks > 1 { POOL_DEPTH / (ranks as u32 - 1) } else { 0 };
        let left = (0..ranks).map(|r| if r == me { 0 } else { grant }).collect();
        Credits { grant, left, owed: vec![0; ranks], used: Vec::new() }
    }

    /// Credits each rank grants each other rank (0: the pool is off).
    pub fn grant(&self) -> u32 {
        self.grant
    }

    /// Whether the pool is on (a grant of at least one credit).
    pub fn on(&self) -> bool {
        self.grant > 0
    }

    /// Spends a credit for a message into `to`'s pool; false when none is left.
    pub fn take(&mut self, to: usize) -> bool {
        match self.left.get_mut(to) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }

    /// `from` gave back `n` credits; more than it was granted is a protocol error.
    pub fn returned(&mut self, from: usize, n: u32) -> Result<(), String> {
        let grant = self.grant;
        match self.left.get_mut(from) {
            Some(left) if *left + n <= grant => {
                *left += n;
                Ok(())
            }
            Some(left) => Err(format!(
                "rank {from} returned {n} pool credits with {left} of {grant} not spent; never more than granted"
            )),
            None => Err(format!("pool credits from rank {from}, which is not in this job")),
        }
    }

    /// A message from `from` used a pool receive (not yet posted again).
    pub fn used(&mut self, from: usize) {
        self.used.push(from);
    }

    /// Pool receives to post again; once they are, call [`Credits::reposted`].
    pub fn to_repost(&self) -> usize {
        self.used.len()
    }

    /// The receives [`Credits::to_repost`] counted are posted again: their credits are owed.
    pub fn reposted(&mut self) {
        for from in self.used.drain(..) {
            self.owed[from] += 1;
        }
    }

    /// Credits to give back now, by peer, in one message each: those owed to a peer once
    /// they reach half the grant (a credit message per pooled message would cost a send
    /// per hop; the sender keeps at least half its grant meanwhile).
    pub fn due(&mut self) -> Vec<(usize, u32)> {
        let batch = (self.grant / 2).max(1);
        let mut due = Vec::new();
        for (peer, owed) in self.owed.iter_mut().enumerate() {
            if *owed >= batch {
                due.push((peer, std::mem::take(owed)));
            }
        }
        due
    }

    /// Credits left per peer and owed per peer, for a stall's diagnosis.
    pub fn summary(&self) -> String {
        format!("pool credits left {:?}, owed {:?}, grant {}", self.left, self.owed, self.grant)
    }
}

/// This process's place in a libfabric job.
#[derive(Debug)]
pub struct FabricJob {
    rank: usize,
    size: usize,
    boot: Option<PathBuf>,
    /// Runs started by this process: every rank runs the job's DAGs in the same order,
    /// so the count names the same bootstrap subdirectory on every rank.
    runs: std::sync::atomic::AtomicU64,
}

impl FabricJob {
    /// Reads rank, size and bootstrap directory from the environment: [`JOB_ENV`] and
    /// [`JOB_DIR_ENV`] (set by [`crate::drivers::launch`]), else the rank and size an MPI launcher or Slurm
    /// sets (then [`JOB_DIR_ENV`] must name a directory every rank can read).
    pub fn from_env() -> Result<FabricJob, RunError> {
        let var = |k: &str| std::env::var(k).ok();
        let (rank, size) = if let Some(job) = var(JOB_ENV) {
            let (r, s) =
                job.split_once('/').ok_or_else(|| RunError::Config(format!("{JOB_ENV}={job}: not RANK/SIZE")))?;
            (r.parse().ok(), s.parse().ok())
        } else {
            let pick = |names: &[&str]| names.iter().find_map(|n| var(n)?.parse::<usize>().ok());
            (
                pick(&["OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "SLURM_PROCID"]),
                pick(&["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS"]),
            )
        };
        let (Some(rank), Some(size)) = (rank, size) else {
            return Err(RunError::Config(format!(
                "this process was not started as a rank of a libfabric job: {JOB_ENV} (set by `launcher = \"local\"`) \
                 and the rank and size an MPI launcher or Slurm sets are missing"
            )));
        };
        if rank >= size || size >= 1 << 24 {
            return Err(RunError::Config(format!("rank {rank} of {size}: out of range")));
        }
        let boot = var(JOB_DIR_ENV).map(|dir| {
            // The launcher's identity of this job, so a directory reused by a later job
            // never serves it the earlier job's addresses.
            let id = ["PMIX_NAMESPACE", "OMPI_MCA_ess_base_jobid"].iter().find_map(|k| var(k)).or_else(|| {
                let job = var("SLURM_JOB_ID")?;
                Some(format!("{job}.{}", var("SLURM_STEP_ID").unwrap_or_default()))
            });
            let dir = PathBuf::from(dir);
            match id {
                Some(id) => dir.join(format!("job-{}", sanitize(&id))),
                None => dir,
            }
        });
        Ok(FabricJob { rank, size, boot, runs: Default::default() })
    }

    /// A job of `size` ranks with this process as `rank`, bootstrapping through `boot`.
    pub fn new(rank: usize, size: usize, boot: PathBuf) -> FabricJob {
        FabricJob { rank, size, boot: Some(boot), runs: Default::default() }
    }

    /// The directory the next run bootstraps in (created), inside the job's directory.
    fn next_run_dir(&self) -> Result<Option<PathBuf>, RunError> {
        let n = self.runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let Some(boot) = &self.boot else { return Ok(None) };
        let dir = boot.join(format!("run-{n}"));
        std::fs::create_dir_all(&dir).map_err(|e| {
            RunError::Config(format!("rank {}: libfabric bootstrap: cannot create {}: {e}", self.rank, dir.display()))
        })?;
        Ok(Some(dir))
    }
}

impl JobRank for FabricJob {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn run(&self, req: &RunRequest<'_>) -> Result<Option<Executed>, RunError> {
        let cfg = FabricConfig {
            provider: req.params.str("provider").to_string(),
            workers: req.workers,
            progress: req.progress,
            timeout: req.timeout,
            fault: req.fault,
        };
        let outcome = run(self, req.dag, req.kernels, req.strategy, &cfg)?;
        Ok(outcome.map(|outcome| Executed { outcome, kernels_ran: true }))
    }

    fn abort(&self, code: i32) -> ! {
        abort_job(code)
    }
}

/// `id` with every character that is not safe in a file name replaced by `_`.
fn sanitize(id: &str) -> String {
    id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' }).collect()
}

/// Settings of one rank of a libfabric run.
#[derive(Clone, Debug)]
pub struct FabricConfig {
    /// The provider, as `fi_info` names it (`tcp`, `shm`, ...).
    pub provider: String,
    /// Kernel worker threads.
    pub workers: usize,
    /// How communication progresses while kernels run.
    pub progress: Progress,
    /// A rank that makes no progress this long fails with a diagnosis.
    pub timeout: Duration,
    /// An optional deliberate fault: each rank corrupts its own `nth` data message.
    pub fault: Option<crate::drivers::run::Fault>,
}

fn fabric_error(rank: usize, e: FabricError) -> RunError {
    RunError::Config(format!("rank {rank}: libfabric: {e}"))
}

/// Runs `dag` with this process as one rank of `job`. Rank 0 gets `Some` outcome with
/// everyone's trace and results, the others `None`.
pub fn run(
    job: &FabricJob,
    dag: &Arc<Dag>,
    kernels: &dyn crate::kernel::Kernels,
    strategy: crate::strategy::StrategyFactory<'_>,
    cfg: &FabricConfig,
) -> Result<Option<RunOutcome>, RunError> {
    let (rank, size) = (job.rank, job.size);
    if dag.ranks() != size {
        return Err(RunError::Config(format!(
            "the DAG was placed on {} ranks, the libfabric job has {size}; start it with {} ranks",
            dag.ranks(),
            dag.ranks()
        )));
    }
    if cfg.workers == 0 {
        return Err(RunError::Config("workers must be at least 1".into()));
    }
    let strategy = strategy(Rank(rank as u32));
    // Every rank of a local job shares this host's cores; a launcher (mpirun) may bind
    // each to cores of its own.
    let (ranks_here, cores, _) = cores_shared(size);
    let (progress, why) = cfg.progress.resolve(ranks_here, cfg.workers, cores);
    let (idle, idle_why) = IdleWait::of(progress, ranks_here, cfg.workers, cores);
    if rank == 0 {
        note_progress(&format!("{PROGRESS_NOTE}libfabric: {why}; when idle, {idle_why}"));
    }
    let cfg = &FabricConfig { progress, ..cfg.clone() };
    if cfg.progress == Progress::Inline && cfg.workers > 1 {
        return Err(RunError::Config("inline progress runs kernels on the progress thread: use workers = 1".into()));
    }
    let slots = if cfg.progress == Progress::Thread { Workers::slots(cfg.workers) } else { cfg.workers };
    let engine = Engine::new(Rank(rank as u32), Arc::clone(dag), strategy, slots);
    check_capabilities("libfabric", CAPABILITIES, engine.strategy_name(), engine.needs())?;
    let plan = plan_of(dag, engine.strategy_name(), cfg.workers);
    let boot = job.next_run_dir()?;
    let boot = boot.as_deref().ok_or_else(|| {
        RunError::Config(format!(
            "{JOB_DIR_ENV} is not set: the libfabric driver exchanges endpoint addresses through a directory every rank \
             can read (`launcher = \"local\"` makes one; under mpirun or srun, export {JOB_DIR_ENV} to a shared directory)"
        ))
    })?;
    let mut ep = Endpoint::open(&cfg.provider).map_err(|e| fabric_error(rank, e))?;
    // Every receive a peer's first messages need is posted before this rank publishes its
    // address (so before any peer can send to it): the clock exchange, the gather, and
    // the engine messages' mailbox. No message then arrives unexpected except in a burst
    // deeper than the mailbox (libfabric 1.17's `shm` loses small messages when several
    // arrive unexpected).
    let posted = Posted::post(&mut ep, rank, size).map_err(|e| fabric_error(rank, e))?;
    // The pool first: a provider walks its tagged receives in order, so a pooled message
    // passes no mailbox receive while the pool's are at the front.
    let credits = Credits::new(size, rank, ep.inject_limit().is_some());
    if credits.on() {
        for _ in 0..POOL_DEPTH {
            repost_pool(&mut ep).map_err(|e| fabric_error(rank, e))?;
        }
    }
    for _ in 0..MAILBOX_DEPTH {
        repost(&mut ep, vec![0; MAILBOX_BYTES]).map_err(|e| fabric_error(rank, e))?;
        if let Some(limit) = ep.inject_limit() {
            repost_tagged(&mut ep, vec![0; limit]).map_err(|e| fabric_error(rank, e))?;
        }
    }
    // The window (when the strategy declares one) is registered memory; peers learn its
    // key and size with the addresses.
    let window = match engine.window() {
        Some(spec) => {
            let key = ep.register_window(spec.bytes as usize).map_err(|e| fabric_error(rank, e))?;
            (key, spec.bytes)
        }
        None => (MemoryKey::default(), 0),
    };
    let windows = bootstrap(&mut ep, boot, rank, size, plan, window)?;
    let clock = Clock::synchronise(&mut ep, rank, size, &posted).map_err(|e| fabric_error(rank, e))?;
    let runner = KernelRunner::new(dag, kernels, &clock);
    let report = std::thread::scope(|s| {
        let (done_tx, done_rx) = unbounded::<Finished>();
        let workers = (cfg.progress == Progress::Thread).then(|| {
            let progress_thread = std::thread::current();
            let deliver = move |f: Finished| {
                let delivered = done_tx.send(f).is_ok();
                progress_thread.unpark();
                delivered
            };
            Workers::start(s, Rank(rank as u32), cfg.workers, runner, deliver)
        });
        let mut driver = Driver::new(engine, &mut ep, size, cfg, &clock, workers, done_rx)?;
        driver.windows = windows;
        driver.core.idle = idle;
        driver.credits = credits;
        let result = driver.run_loop(runner);
        drop(driver);
        result
    })?;
    gather(&mut ep, rank, size, report, &posted).map_err(|e| fabric_error(rank, e))
}

/// Rounds of the clock ping-pong.
const CLOCK_ROUNDS: u32 = 16;
/// Sequence numbers of the gather's messages (on [`KIND_BOOT`] tags).
const GATHER_LEN: u32 = 1 << 20;
const GATHER_GO: u32 = GATHER_LEN + 1;
const GATHER_BYTES: u32 = GATHER_LEN + 2;
/// Rank 0's word that every report arrived: until then each rank keeps its endpoint (and
/// the memory peers may still read) open.
const GATHER_END: u32 = GATHER_LEN + 3;

/// Receives of the start-up and end exchanges, posted before the address is published.
struct Posted {
    /// Rank 0: per rank, its pings; other ranks: rank 0's pongs, then the common start.
    clock: Vec<Vec<u64>>,
    /// Rank 0: per rank, the length of its report; other ranks: rank 0's go-ahead.
    gather: Vec<u64>,
    /// Other ranks: rank 0's word that the gather is over.
    end: u64,
}

impl Posted {
    fn post(ep: &mut Endpoint, rank: usize, size: usize) -> Result<Posted, FabricError> {
        let mut posted = Posted { clock: vec![Vec::new(); size], gather: vec![0; size], end: 0 };
        if rank == 0 {
            for r in 1..size {
                for i in 0..CLOCK_ROUNDS {
                    posted.clock[r].push(ep.post_recv_bytes(tag(KIND_BOOT, r, i), 8)?);
                }
                posted.gather[r] = ep.post_recv_bytes(tag(KIND_BOOT, r, GATHER_LEN), 8)?;
            }
        } else {
            for i in 0..=CLOCK_ROUNDS {
                posted.clock[0].push(ep.post_recv_bytes(tag(KIND_BOOT, 0, i), 8)?);
            }
            posted.gather[0] = ep.post_recv_bytes(tag(KIND_BOOT, 0, GATHER_GO), 0)?;
            posted.end = ep.post_recv_bytes(tag(KIND_BOOT, 0, GATHER_END), 0)?;
        }
        Ok(posted)
    }
}

/// What every rank must agree on: the DAG's fingerprint, its rank count, the strategy
/// and the workers.
fn plan_of(dag: &Dag, strategy: &str, workers: usize) -> [u64; 4] {
    let name_hash =
        strategy.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
    [dag.fingerprint(), dag.ranks() as u64, name_hash, workers as u64]
}

/// Publishes this rank's address and plan in `dir`, waits for every other rank's, checks
/// the plans agree and inserts the addresses.
/// Returns every rank's window (its key and size; size 0 without one).
fn bootstrap(
    ep: &mut Endpoint,
    dir: &Path,
    rank: usize,
    size: usize,
    plan: [u64; 4],
    window: (MemoryKey, u64),
) -> Result<Vec<(MemoryKey, u64)>, RunError> {
    let config = |what: String| RunError::Config(format!("rank {rank}: libfabric bootstrap: {what}"));
    let name = ep.name().map_err(|e| fabric_error(rank, e))?;
    let mut mine = Vec::with_capacity(BOOT_WORDS * 8 + name.len());
    plan.iter().for_each(|w| mine.extend_from_slice(&w.to_le_bytes()));
    for w in [window.0.addr, window.0.key, window.1] {
        mine.extend_from_slice(&w.to_le_bytes());
    }
    mine.extend_from_slice(&name);
    let file = |r: usize| dir.join(format!("rank-{r}.addr"));
    let tmp = dir.join(format!(".rank-{rank}.addr.tmp"));
    std::fs::write(&tmp, &mine)
        .and_then(|()| std::fs::rename(&tmp, file(rank)))
        .map_err(|e| config(format!("cannot write {}: {e}", file(rank).display())))?;
    let deadline = Instant::now() + BOOT_TIMEOUT;
    let mut names = vec![Vec::new(); size];
    let mut plans = vec![[0u64; 4]; size];
    let mut windows = vec![(MemoryKey::default(), 0); size];
    for r in 0..size {
        let bytes = loop {
            match std::fs::read(file(r)) {
                Ok(b) if b.len() > BOOT_WORDS * 8 => break b,
                _ if Instant::now() > deadline => {
                    let missing: Vec<usize> = (r..size).filter(|&q| !file(q).exists()).collect();
                    return Err(config(format!(
                        "ranks {missing:?} did not publish their address in {} within {BOOT_TIMEOUT:?} (did they start?)",
                        dir.display()
                    )));
                }
                _ => std::thread::sleep(Duration::from_millis(5)),
            }
        };
        let word = |i: usize| u64::from_le_bytes(bytes[8 * i..8 * i + 8].try_into().expect("8 bytes"));
        for (i, w) in plans[r].iter_mut().enumerate() {
            *w = word(i);
        }
        windows[r] = (MemoryKey { addr: word(4), key: word(5), len: word(6) }, word(6));
        names[r] = bytes[BOOT_WORDS * 8..].to_vec();
    }
    let differ: Vec<usize> = (0..size).filter(|&r| plans[r] != plans[0]).collect();
    if !differ.is_empty() {
        return Err(RunError::Config(format!(
            "ranks {differ:?} built a different plan from rank 0 (rank 0 has DAG fingerprint {:#018x}, rank {} has \
             {:#018x}); every rank must run the same binary with the same workload, strategy, parameters and seed",
            plans[0][0], differ[0], plans[differ[0]][0]
        )));
    }
    ep.insert_peers(&names).map_err(|e| fabric_error(rank, e))?;
    Ok(windows)
}

/// Words before the address in a rank's bootstrap file: its plan (4) and its window's
/// address, key and size (3).
const BOOT_WORDS: usize = 7;

/// Each rank's time on rank 0's timeline: ns since the common start.
struct Clock {
    base: Instant,
    /// The common start on this rank's local clock, ns.
    start: i64,
}

impl Clock {
    fn local(base: Instant) -> i64 {
        base.elapsed().as_nanos() as i64
    }

    /// Measures this rank's offset to rank 0 (the ping-pong with the shortest round trip
    /// of several wins), then rank 0 announces a common start.
    fn synchronise(ep: &mut Endpoint, rank: usize, size: usize, posted: &Posted) -> Result<Clock, FabricError> {
        let base = Instant::now();
        let deadline = Instant::now() + BOOT_TIMEOUT;
        let mut offset = 0i64;
        let word = |b: Vec<u8>| -> Result<i64, FabricError> {
            Ok(i64::from_le_bytes(
                b.get(..8)
                    .and_then(|w| w.try_into().ok())
                    .ok_or_else(|| FabricError(format!("a clock message of {} bytes, not 8", b.len())))?,
            ))
        };
        if rank == 0 {
            for r in 1..size {
                for i in 0..CLOCK_ROUNDS {
                    ep.wait_recv(posted.clock[r][i as usize], deadline)?;
                    ep.send_blocking(r, tag(KIND_BOOT, 0, i), Clock::local(base).to_le_bytes().to_vec(), deadline)?;
                }
            }
        } else {
            let mut best = i64::MAX;
            for i in 0..CLOCK_ROUNDS {
                let a = Clock::local(base);
                ep.send_blocking(0, tag(KIND_BOOT, rank, i), a.to_le_bytes().to_vec(), deadline)?;
                let t0 = word(ep.wait_recv(posted.clock[0][i as usize], deadline)?)?;
                let b = Clock::local(base);
                if b - a < best {
                    best = b - a;
                    offset = t0 - (a + b) / 2;
                }
            }
        }
        let start = if rank == 0 {
            let start = Clock::local(base);
            for r in 1..size {
                ep.send_blocking(r, tag(KIND_BOOT, 0, CLOCK_ROUNDS), start.to_le_bytes().to_vec(), deadline)?;
            }
            start
        } else {
            word(ep.wait_recv(posted.clock[0][CLOCK_ROUNDS as usize], deadline)?)?
        };
        Ok(Clock { base, start: start - offset })
    }

    fn now(&self) -> u64 {
        (Clock::local(self.base) - self.start).max(0) as u64
    }
}

impl kernels::Clock for Clock {
    fn now(&self) -> u64 {
        Clock::now(self)
    }
}

/// Sends every rank's report to rank 0, which merges them: its length, then, once rank 0
/// has posted a receive for it and said so, its bytes.
fn gather(
    ep: &mut Endpoint,
    rank: usize,
    size: usize,
    report: wire::Report,
    posted: &Posted,
) -> Result<Option<RunOutcome>, FabricError> {
    let deadline = Instant::now() + BOOT_TIMEOUT;
    let (trace, results, end) = report;
    if rank != 0 {
        let bytes = wire::encode_report(&trace, &results, end);
        let len = (bytes.len() as u64).to_le_bytes().to_vec();
        ep.send_blocking(0, tag(KIND_BOOT, rank, GATHER_LEN), len, deadline)?;
        ep.wait_recv(posted.gather[0], deadline)?;
        ep.send_blocking(0, tag(KIND_BOOT, rank, GATHER_BYTES), bytes, deadline)?;
        // Peers may still read this rank's window or exposed chunks until every rank is
        // done: wait for rank 0's word, progressing the endpoint meanwhile.
        ep.wait_recv(posted.end, deadline)?;
        return Ok(None);
    }
    let mut parts: Vec<Trace> = vec![trace];
    let mut all: BTreeMap<ChunkId, Payload> = results.into_iter().collect();
    let mut makespan_ns = end;
    for r in 1..size {
        let len = ep.wait_recv(posted.gather[r], deadline)?;
        let len = u64::from_le_bytes(len.get(..8).and_then(|w| w.try_into().ok()).unwrap_or_default()) as usize;
        let bytes = ep.post_recv_bytes(tag(KIND_BOOT, r, GATHER_BYTES), len)?;
        ep.send_blocking(r, tag(KIND_BOOT, 0, GATHER_GO), Vec::new(), deadline)?;
        let bytes = ep.wait_recv(bytes, deadline)?;
        let (t, res, end) =
            wire::decode_report(&bytes).map_err(|e| FabricError(format!("the report of rank {r}: {e}")))?;
        parts.push(t);
        all.extend(res);
        makespan_ns = makespan_ns.max(end);
    }
    for r in 1..size {
        ep.send_blocking(r, tag(KIND_BOOT, 0, GATHER_END), Vec::new(), deadline)?;
    }
    Ok(Some(RunOutcome { trace: Trace::merge(parts), results: all, makespan_ns }))
}

/// A message from one source on its way to the engine.
enum Arriving {
    Ready(Message),
    /// Its payload is still arriving.
    Waiting(Message),
}

/// Completion tokens: the tag layout again (kind, peer, sequence number); sends use kind 0.
const TOKEN_SEND: u64 = 0;

/// One rank's progress loop and everything in flight.
struct Driver<'a> {
    /// The engine, the kernel workers and the stall timeout (the loop's share).
    core: RankCore,
    ep: &'a mut Endpoint,
    rank: usize,
    clock: &'a Clock,
    /// Next sequence number per destination.
    send_seq: Vec<u32>,
    /// Sends posted and not complete.
    sends: usize,
    /// Per source: the next sequence number to hand to the engine, and the messages
    /// that arrived ahead of it or whose payload is still arriving.
    next_seq: Vec<u32>,
    arriving: Vec<BTreeMap<u32, Arriving>>,
    faults: Injector,
    completions: Vec<Completion>,
    /// Header mailbox buffers read and not yet posted again: reposted after the actions
    /// their messages led to, so a reply's send does not wait behind an `fi_trecv`
    /// (the mailbox keeps [`MAILBOX_DEPTH`] receives posted otherwise).
    rearm: Vec<Vec<u8>>,
    /// The same for the tagged mailbox (messages whose header is their tag and completion data).
    rearm_tagged: Vec<Vec<u8>>,
    /// Messages with a payload up to this many bytes whose header fits their tag and
    /// completion data ([`header_in_tag`]) are injected whole (`fi_tinjectdata`): the
    /// provider's inject size, `None` when it carries less than 64 bits of completion data.
    inject: Option<usize>,
    /// Large payloads registered for their receiver to read, by (to, seq): the
    /// registration (which holds the payload) closes when the receiver says it has read.
    lent: BTreeMap<(usize, u32), u64>,
    /// Payloads read whose senders are yet to hear so, by (from, seq): released after the
    /// actions their messages led to, so the release is not on the next hop's path.
    releases: Vec<(usize, u32)>,
    /// The collectives, run by the shared layer over pieces.
    collectives: Collectives,
    /// Next piece sequence number per destination.
    piece_seq: Vec<u32>,
    /// Large encoded pieces sent once their receiver says its receive is posted: by (to, seq).
    held_pieces: BTreeMap<(usize, u32), Vec<u8>>,
    /// Large pieces announced to this rank whose bytes are arriving.
    pieces_arriving: usize,
    /// Every rank's window: its key and size (0 without one).
    windows: Vec<(MemoryKey, u64)>,
    /// One-sided operations posted and not complete.
    rma_in_flight: usize,
    /// Collectives joined while one-sided operations were in flight (a fence, and any
    /// join after it): they join the shared layer, in order, once those completed, so a
    /// fence's barrier starts only when this rank's operations are in their targets.
    deferred: VecDeque<CollectiveJoin>,
    /// This rank's exposed memory: the registered region of each key.
    exposures: std::collections::HashMap<u64, u64>,
    /// The pool for mid-size payloads: credits to send into peers' pools, receives of
    /// this rank's to post again and credits it owes.
    credits: Credits,
}

impl<'a> Driver<'a> {
    fn new(
        engine: Engine,
        ep: &'a mut Endpoint,
        size: usize,
        cfg: &'a FabricConfig,
        clock: &'a Clock,
        workers: Option<Workers>,
        done: Receiver<Finished>,
    ) -> Result<Self, RunError> {
        let rank = engine.rank().index();
        let inject = ep.inject_limit();
        Ok(Driver {
            core: RankCore { engine, workers, done, timeout: cfg.timeout, idle: IdleWait::Backoff },
            ep,
            rank,
            clock,
            send_seq: vec![0; size],
            sends: 0,
            next_seq: vec![0; size],
            arriving: (0..size).map(|_| BTreeMap::new()).collect(),
            faults: Injector::new(cfg.fault),
            completions: Vec::new(),
            rearm: Vec::new(),
            rearm_tagged: Vec::new(),
            inject,
            lent: BTreeMap::new(),
            releases: Vec::new(),
            collectives: Collectives::new(Rank(rank as u32), size, Segmenting::Whole),
            piece_seq: vec![0; size],
            held_pieces: BTreeMap::new(),
            pieces_arriving: 0,
            windows: Vec::new(),
            rma_in_flight: 0,
            deferred: VecDeque::new(),
            exposures: Default::default(),
            credits: Credits::new(size, rank, false),
        })
    }

    fn fail(&self, e: impl std::fmt::Display) -> RunError {
        RunError::Config(format!("rank {}: libfabric driver: {e}", self.rank))
    }

    /// What the driver has in flight, for a stall's diagnosis.
    fn flight(&self) -> String {
        let arriving: usize = self.arriving.iter().map(BTreeMap::len).sum();
        let mut flight = format!(
            "; libfabric: {} sends in flight, {} large payloads lent (registered) until their receiver has read them, \
             {} large collective pieces waiting for their receiver's go-ahead, {arriving} messages and {} large pieces arriving, {} one-sided operations in \
             flight, {} collectives waiting for them",
            self.sends,
            self.lent.len(),
            self.held_pieces.len(),
            self.pieces_arriving,
            self.rma_in_flight,
            self.deferred.len(),
        );
        if !self.collectives.is_idle() {
            flight += &format!("; {}", self.collectives.summary());
        }
        if self.credits.on() {
            flight += &format!("; {}", self.credits.summary());
        }
        flight
    }

    /// Takes in everything libfabric finished since the last poll.
    fn poll_completions(&mut self) -> Result<bool, RunError> {
        let mut got = std::mem::take(&mut self.completions);
        self.ep.poll(&mut got).map_err(|e| self.fail(e))?;
        let any = !got.is_empty();
        for c in got.drain(..) {
            match c {
                Completion::Sent { .. } => self.sends -= 1,
                Completion::Read { token, data } if tag_parts(token).0 == KIND_DATA => self.pulled(token, data)?,
                Completion::Read { token, mut data } => {
                    self.faults.transfer(&mut data);
                    self.rma_done(token, Some(data))?;
                }
                Completion::Written { token } => self.rma_done(token, None)?,
                Completion::Received { token: MAILBOX, len, buf, .. } => {
                    // The same buffer goes back to the mailbox once read: no allocation or
                    // zeroing per message.
                    let Buffer::Bytes(bytes) = buf else { unreachable!("the mailbox receives bytes") };
                    let handled = match bytes[..len].split_first_chunk::<PREFIX>() {
                        Some((t, body)) => self.small_message(u64::from_le_bytes(*t), body),
                        None => Err(self.fail(format!("a mailbox message of {len} bytes, without its tag"))),
                    };
                    self.rearm.push(bytes);
                    if self.rearm.len() >= MAILBOX_DEPTH / 2 {
                        self.rearm_mailbox()?; // a burst: keep half the mailbox posted
                    }
                    handled?;
                }
                Completion::Received { token: TAGGED_MAILBOX, tag: t, data, len, buf } => {
                    let Buffer::Bytes(bytes) = buf else { unreachable!("the mailbox receives bytes") };
                    let handled = self.tagged_message(t, data, len, || Payload::from_bytes(&bytes[..len]));
                    self.rearm_tagged.push(bytes);
                    if self.rearm_tagged.len() >= MAILBOX_DEPTH / 2 {
                        self.rearm_mailbox()?;
                    }
                    handled?;
                }
                Completion::Received { token: POOL, tag: t, data, len, buf } => {
                    // The payload is the pool receive's own buffer, handed on as it landed.
                    let Buffer::Payload(payload) = buf else { unreachable!("the pool receives payloads") };
                    let from = header_from_tag(t, data).src;
                    self.tagged_message(t, data, len, || payload)?;
                    self.credits.used(from);
                    POOLED_RECEIVED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                Completion::Received { token, tag: t, len, buf, .. } => {
                    let (kind, _, _) = tag_parts(token);
                    match kind {
                        KIND_PIECE_DATA => {
                            let (_, from, seq) = tag_parts(t);
                            let Buffer::Bytes(mut bytes) = buf else { unreachable!("pieces land in bytes") };
                            bytes.truncate(len);
                            self.pieces_arriving -= 1;
                            // The bytes keep their mailbox prefix and [`PIECE_INLINE`] mark (no
                            // copy to drop them).
                            let piece = Piece::decode(bytes.get(PREFIX + 1..).unwrap_or_default())
                                .map_err(|e| self.fail(format!("collective piece {seq} from rank {from}: {e}")))?;
                            self.handle_piece(piece)?;
                        }
                        k => return Err(self.fail(format!("a completion of unknown kind {k}"))),
                    }
                }
            }
        }
        self.completions = got;
        self.deliver();
        Ok(any)
    }

    /// A message arrived in the mailbox: a header, a piece, a release or a piece's go-ahead,
    /// by its tag's kind.
    fn small_message(&mut self, t: u64, bytes: &[u8]) -> Result<(), RunError> {
        let (kind, peer, seq) = tag_parts(t);
        match kind {
            KIND_MSG => self.header(t, bytes),
            KIND_PIECE => self.piece_message(t, bytes),
            KIND_RELEASE => {
                let region = self.lent.remove(&(peer, seq)).ok_or_else(|| {
                    self.fail(format!("rank {peer} released payload {seq}, which this rank did not lend it"))
                })?;
                self.ep.deregister(region).map_err(|e| self.fail(e))
            }
            KIND_PIECE_GO => {
                let held = self.held_pieces.remove(&(peer, seq)).map(Buffer::Bytes);
                self.release(peer, seq, KIND_PIECE_DATA, held, "collective piece")
            }
            KIND_CREDIT => self.credits.returned(peer, seq).map_err(|e| self.fail(e)),
            k => Err(self.fail(format!("a mailbox message of unknown kind {k} from rank {peer}"))),
        }
    }

    /// A message whose header is its tag and completion data arrived with `len` bytes
    /// (its payload, if it has one, which `payload` makes): queue it in its source's order.
    fn tagged_message(
        &mut self,
        t: u64,
        data: u64,
        len: usize,
        payload: impl FnOnce() -> Payload,
    ) -> Result<(), RunError> {
        let h = header_from_tag(t, data);
        let Some(&next) = self.next_seq.get(h.src) else {
            return Err(self.fail(format!("a tagged message from rank {}, which is not in this job", h.src)));
        };
        let seq = seq_from_low(next, h.seq_low);
        let mut msg = h.message(self.clock.now());
        if h.payload {
            msg.payload = Some(payload());
        } else if len > 0 {
            return Err(self.fail(format!("message {seq} from rank {} has {len} bytes and no payload", h.src)));
        }
        if self.arriving[h.src].insert(seq, Arriving::Ready(msg)).is_some() {
            return Err(self.fail(format!("message {seq} from rank {} arrived twice", h.src)));
        }
        Ok(())
    }

    /// A go-ahead arrived: sends what this rank held for it (`what` number `seq`) to `peer`
    /// as a message of `kind`.
    fn release(&mut self, peer: usize, seq: u32, kind: u64, held: Option<Buffer>, what: &str) -> Result<(), RunError> {
        let buf = held
            .ok_or_else(|| self.fail(format!("rank {peer} asked for {what} {seq}, which this rank does not hold")))?;
        self.ep.send(peer, tag(kind, self.rank, seq), buf, TOKEN_SEND).map_err(|e| self.fail(e))?;
        self.sends += 1;
        Ok(())
    }

    /// A header arrived: queue its message, posting a receive for its payload if it
    /// comes separately.
    fn header(&mut self, t: u64, bytes: &[u8]) -> Result<(), RunError> {
        let (_, from, seq) = tag_parts(t);
        let h = wire::decode(bytes).map_err(|e| self.fail(format!("a message from rank {from}: {e}")))?;
        let item = match h.data_tag {
            Some(_) => {
                let at = bytes
                    .get(wire::HEADER..wire::HEADER + 16)
                    .map(|b| MemoryKey {
                        addr: u64::from_le_bytes(b[..8].try_into().expect("8 bytes")),
                        key: u64::from_le_bytes(b[8..].try_into().expect("8 bytes")),
                        len: h.len,
                    })
                    .ok_or_else(|| self.fail(format!("message {seq} from rank {from} lacks its payload's key")))?;
                let token = tag(KIND_DATA, from, seq);
                self.ep.read(from, at, 0, h.len as usize, token).map_err(|e| self.fail(e))?;
                Arriving::Waiting(h.msg)
            }
            None => Arriving::Ready(h.msg),
        };
        self.arriving[from].insert(seq, item);
        Ok(())
    }

    /// A piece message arrived: an inline piece goes to the collectives; an announced one
    /// gets a receive for its bytes and the sender a go-ahead (pieces are pushed: the
    /// collectives' layer hands over owned bytes, with no payload to lend).
    fn piece_message(&mut self, t: u64, bytes: &[u8]) -> Result<(), RunError> {
        let (_, from, seq) = tag_parts(t);
        match bytes.split_first() {
            Some((&PIECE_INLINE, rest)) => {
                let piece = Piece::decode(rest)
                    .map_err(|e| self.fail(format!("collective piece {seq} from rank {from}: {e}")))?;
                self.handle_piece(piece)
            }
            Some((&PIECE_APART, rest)) if rest.len() == 8 => {
                let len = u64::from_le_bytes(rest.try_into().expect("8 bytes")) as usize;
                let data = tag(KIND_PIECE_DATA, from, seq);
                self.ep.recv(data, 0, Buffer::Bytes(vec![0; len]), data).map_err(|e| self.fail(e))?;
                self.pieces_arriving += 1;
                self.send_small(from, small(tag(KIND_PIECE_GO, self.rank, seq), 0))
            }
            _ => Err(self.fail(format!("a malformed collective piece message {seq} from rank {from}"))),
        }
    }

    /// Feeds a received piece to the collectives and sends what it caused.
    fn handle_piece(&mut self, piece: Piece) -> Result<(), RunError> {
        set_handling(Handling::Collective { id: piece.id, from: Some(piece.src) });
        self.collectives.handle_piece(self.clock.now(), piece);
        self.collective_progress()
    }

    /// Joins a collective (a fence is the layer's barrier), its messages as they travel
    /// (corrupted if one is the run's faulty transfer). A fence waits until this rank's
    /// one-sided operations completed (each in its target's memory), and so does every
    /// join after a waiting one, so joins keep their order.
    fn join(&mut self, join: CollectiveJoin) -> Result<(), RunError> {
        if !self.deferred.is_empty() || (join.kind == CollectiveKind::Fence && self.rma_in_flight > 0) {
            self.deferred.push_back(join);
            return Ok(());
        }
        self.join_now(join)
    }

    fn join_now(&mut self, mut join: CollectiveJoin) -> Result<(), RunError> {
        for payload in join.sends.iter_mut().flat_map(|(_, m)| m.iter_mut()).filter_map(|m| m.payload.as_mut()) {
            self.faults.transfer(payload);
        }
        set_handling(Handling::Collective { id: join.id, from: None });
        self.collectives.join(self.clock.now(), join);
        self.collective_progress()
    }

    /// Sends the pieces the collectives have to send, then reports the collectives that
    /// completed to the engine.
    fn collective_progress(&mut self) -> Result<(), RunError> {
        while let Some(piece) = self.collectives.poll_send() {
            let to = piece.dst.index();
            let seq = self.piece_seq[to];
            self.piece_seq[to] = seq.wrapping_add(1);
            let t = tag(KIND_PIECE, self.rank, seq);
            let mut bytes = small(t, 1 + piece.bytes as usize + 64);
            bytes.push(PIECE_INLINE);
            piece.encode(&mut bytes);
            if bytes.len() > MAILBOX_BYTES {
                // Sent apart, whole: the receiver skips the mailbox prefix and the mark.
                let mut announce = small(t, 9);
                announce.push(PIECE_APART);
                announce.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
                self.held_pieces.insert((to, seq), bytes);
                bytes = announce;
            }
            self.send_small(to, bytes)?;
        }
        while let Some((id, received)) = self.collectives.poll_done() {
            self.core.engine.handle_collective_done(self.clock.now(), id, received);
        }
        Ok(())
    }

    /// Sends one small message (built by [`small`]) into `to`'s mailbox.
    fn send_small(&mut self, to: usize, bytes: Vec<u8>) -> Result<(), RunError> {
        self.ep.send_untagged(to, bytes, TOKEN_SEND).map_err(|e| self.fail(e))?;
        self.sends += 1;
        Ok(())
    }

    /// Posts the header mailbox's read buffers again.
    fn rearm_mailbox(&mut self) -> Result<(), RunError> {
        while let Some(bytes) = self.rearm.pop() {
            repost(self.ep, bytes).map_err(|e| self.fail(e))?;
        }
        while let Some(bytes) = self.rearm_tagged.pop() {
            repost_tagged(self.ep, bytes).map_err(|e| self.fail(e))?;
        }
        for _ in 0..self.credits.to_repost() {
            repost_pool(self.ep).map_err(|e| self.fail(e))?;
        }
        self.credits.reposted();
        Ok(())
    }

    /// Hands the engine every message that is next in its source's order and complete.
    fn deliver(&mut self) {
        for from in 0..self.arriving.len() {
            while let Some(Arriving::Ready(_)) = self.arriving[from].get(&self.next_seq[from]) {
                let Some(Arriving::Ready(msg)) = self.arriving[from].remove(&self.next_seq[from]) else {
                    unreachable!("checked")
                };
                self.next_seq[from] = self.next_seq[from].wrapping_add(1);
                set_handling(Handling::Message { from: Rank(from as u32), op: msg.op, chunk: msg.chunk });
                self.core.engine.handle_message(self.clock.now(), Rank(from as u32), msg);
            }
        }
    }

    /// Executes a one-sided operation: on this rank's own window a local copy, complete
    /// at once; on a peer's, an `fi_writemsg` (complete once the bytes are in the
    /// target's memory) or an `fi_read`, checked against the peer's window size first.
    fn one_sided(&mut self, op: OneSided) -> Result<(), RunError> {
        let now = self.clock.now();
        let target = op.target.index();
        let op = match op.access {
            Access::Expose(data) => {
                let (region, key) = self.ep.register(data).map_err(|e| self.fail(e))?;
                self.exposures.insert(key.key, region);
                self.core.engine.handle_exposed(self.clock.now(), op.id, key);
                return Ok(());
            }
            Access::Withdraw(key) => {
                let region = self.exposures.remove(&key.key).ok_or_else(|| {
                    self.fail(format!("withdrawal of memory key {}, which this rank did not expose", key.key))
                })?;
                return self.ep.deregister(region).map_err(|e| self.fail(e));
            }
            Access::Read { key, len } => {
                if op.offset.checked_add(len).is_none_or(|end| end > key.len) {
                    let why = format!(
                        "on {}'s exposed memory: read of {len} bytes at offset {} reaches past the end of {} exposed \
                         bytes",
                        op.target, op.offset, key.len
                    );
                    self.core.engine.handle_one_sided_failed(op.id, why);
                    return Ok(());
                }
                let token = (KIND_RMA << 56) | (op.id & BELOW_KIND);
                self.ep.read(target, key, op.offset, len as usize, token).map_err(|e| self.fail(e))?;
                self.rma_in_flight += 1;
                return Ok(());
            }
            access => OneSided { access, ..op },
        };
        if target == self.rank {
            let done = match op.access {
                Access::Put(data) => self.ep.window_write(op.offset, data.as_bytes()).map(|()| None),
                Access::Get { len } => self.ep.window_read(op.offset, len as usize).map(Some),
                _ => unreachable!("handled above"),
            };
            match done {
                Ok(data) => self.core.engine.handle_one_sided_done(now, op.id, data),
                Err(why) => {
                    self.core.engine.handle_one_sided_failed(op.id, format!("on {}'s window: {why}", op.target))
                }
            }
            return Ok(());
        }
        let Some(&(key, size)) = self.windows.get(target) else {
            return Err(self.fail(format!("a one-sided operation on rank {target}, which is not in this job")));
        };
        let fits = op.offset.checked_add(op.bytes()).is_some_and(|end| end <= size);
        if !fits {
            let why = format!(
                "on {}'s window: access of {} bytes at offset {} reaches past the end of a {size}-byte window",
                op.target,
                op.bytes(),
                op.offset
            );
            self.core.engine.handle_one_sided_failed(op.id, why);
            return Ok(());
        }
        let token = (KIND_RMA << 56) | (op.id & BELOW_KIND);
        let posted = match op.access {
            Access::Put(data) => {
                let mut data = data.clone();
                self.faults.transfer(&mut data);
                self.ep.write(target, key, op.offset, data, token)
            }
            Access::Get { len } => self.ep.read(target, key, op.offset, len as usize, token),
            _ => unreachable!("handled above"),
        };
        posted.map_err(|e| self.fail(e))?;
        self.rma_in_flight += 1;
        Ok(())
    }

    /// A one-sided operation completed: report it, then join the collectives that
    /// waited for this rank's operations.
    /// A large payload this rank read (`token`: its message's tag) is here: its message is
    /// ready, and its sender may close the registration (told after this pass's actions).
    fn pulled(&mut self, token: u64, data: Payload) -> Result<(), RunError> {
        let (_, from, seq) = tag_parts(token);
        match self.arriving[from].remove(&seq) {
            Some(Arriving::Waiting(mut msg)) => {
                msg.payload = Some(data);
                self.arriving[from].insert(seq, Arriving::Ready(msg));
            }
            _ => {
                return Err(
                    self.fail(format!("a payload read from rank {from} for message {seq}, which is not awaited"))
                );
            }
        }
        self.releases.push((from, seq));
        Ok(())
    }

    fn rma_done(&mut self, token: u64, data: Option<Payload>) -> Result<(), RunError> {
        self.rma_in_flight -= 1;
        self.core.engine.handle_one_sided_done(self.clock.now(), token & BELOW_KIND, data);
        while self.rma_in_flight == 0
            && let Some(join) = self.deferred.pop_front()
        {
            self.join_now(join)?;
        }
        Ok(())
    }

    /// Sends one engine message: its header, with the payload inline when small, else
    /// with the address and key of the payload's own bytes, registered for the receiver
    /// to read.
    fn send(&mut self, to: usize, mut msg: Message) -> Result<(), RunError> {
        if let Some(payload) = msg.payload.as_mut() {
            self.faults.transfer(payload);
        }
        let seq = self.send_seq[to];
        self.send_seq[to] = seq.wrapping_add(1);
        let payload_len = msg.payload.as_ref().map_or(0, Payload::len);
        if let Some(limit) = self.inject
            && let Some((t, data)) = header_in_tag(&msg, self.rank, seq)
        {
            if payload_len <= limit {
                let bytes = msg.payload.as_ref().map(Payload::as_bytes).unwrap_or_default();
                return self.ep.inject_tagged(to, t, data, bytes).map_err(|e| self.fail(e));
            }
            // Mid-size: straight into the receiver's pool, while this rank has a credit.
            if payload_len <= POOL_BYTES
                && self.credits.take(to)
                && let Some(payload) = msg.payload.take()
            {
                self.ep.send_data(to, t | TAG_POOL, data, payload, TOKEN_SEND).map_err(|e| self.fail(e))?;
                self.sends += 1;
                return Ok(());
            }
        }
        let header_tag = tag(KIND_MSG, self.rank, seq);
        match msg.payload.take() {
            Some(payload) if payload.len() > INLINE_LIMIT => {
                let len = payload.len() as u64;
                let (region, at) = self.ep.register(payload).map_err(|e| self.fail(e))?;
                let mut header = small(header_tag, wire::HEADER + 16);
                msg.payload = Some(Payload::default());
                wire::put_header(&mut header, &msg, len, Some(0));
                header.extend_from_slice(&at.addr.to_le_bytes());
                header.extend_from_slice(&at.key.to_le_bytes());
                self.lent.insert((to, seq), region);
                self.send_small(to, header)?;
            }
            payload => {
                msg.payload = payload;
                let inline = msg.payload.as_ref().map_or(0, Payload::len);
                let mut bytes = small(header_tag, wire::HEADER + inline);
                wire::append_inline(&mut bytes, &msg);
                self.send_small(to, bytes)?;
            }
        }
        Ok(())
    }
}

impl RankLoop for Driver<'_> {
    fn core(&mut self) -> &mut RankCore {
        &mut self.core
    }

    fn now(&self) -> u64 {
        self.clock.now()
    }

    fn poll_network(&mut self) -> Result<bool, RunError> {
        self.poll_completions()
    }

    fn execute(&mut self, action: Action, now: u64) -> Result<(), RunError> {
        match action {
            // No device here (see `space`): a copy within host memory is done at once.
            Action::Copy(copy) => {
                self.core.engine.handle_copy_done(now, copy.id);
                Ok(())
            }
            Action::Send(out) => self.send(out.to.index(), out.msg),
            Action::Collective(join) => self.join(join),
            Action::OneSided(op) => {
                set_handling(Handling::OneSided { id: op.id, target: op.target });
                self.one_sided(op)
            }
            Action::Run(_) => unreachable!("poll_communication hands out no tasks"),
        }
    }

    fn after_actions(&mut self) -> Result<(), RunError> {
        for i in 0..self.releases.len() {
            let (from, seq) = self.releases[i];
            self.send_small(from, small(tag(KIND_RELEASE, self.rank, seq), 0))?;
        }
        self.releases.clear();
        self.rearm_mailbox()?;
        // Pool receives are posted again: give their credits back (batched).
        for (peer, n) in self.credits.due() {
            self.send_small(peer, small(tag(KIND_CREDIT, self.rank, n), 0))?;
        }
        Ok(())
    }

    fn drained(&self) -> bool {
        self.sends == 0
            && self.lent.is_empty()
            && self.releases.is_empty()
            && self.held_pieces.is_empty()
            && self.rma_in_flight == 0
    }

    fn failure(&self) -> Option<RunError> {
        self.collectives.error().map(|e| RunError::Collective(e.clone()))
    }

    fn in_flight(&self) -> String {
        self.flight()
    }
}

/// Bytes of a mailbox receive: the largest small message (its tag, then a header with
/// its payload inline, or an inline piece).
const MAILBOX_BYTES: usize = PREFIX + wire::HEADER + INLINE_LIMIT;

/// Bytes before a small message's body: its tag (kind, source, sequence number), since
/// untagged messages carry none of their own.
const PREFIX: usize = 8;

/// A small message's buffer: its tag `t`, room for `body` bytes more.
fn small(t: u64, body: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(PREFIX + body);
    bytes.extend_from_slice(&t.to_le_bytes());
    bytes
}

/// The completion token of mailbox receives (no receive by exact tag takes a [`KIND_MSG`]
/// tag, and it has none of the exchanges' token bits).
const MAILBOX: u64 = KIND_MSG << 56;

/// Posts `buf` (a mailbox buffer, whole) as a receive for any peer's small message.
fn repost(ep: &mut Endpoint, buf: Vec<u8>) -> Result<(), FabricError> {
    ep.recv_untagged(buf, MAILBOX)
}

/// The completion token of the tagged mailbox's receives (no other token has its bit).
const TAGGED_MAILBOX: u64 = TAG_HEADER;

/// Posts `buf` (a tagged mailbox buffer of the inject size, whole) as a receive for any
/// peer's message whose header is its tag and completion data ([`TAG_HEADER`]), and not
/// a pooled one ([`TAG_POOL`] clear).
fn repost_tagged(ep: &mut Endpoint, buf: Vec<u8>) -> Result<(), FabricError> {
    ep.recv(TAG_HEADER, TAG_POOL - 1, Buffer::Bytes(buf), TAGGED_MAILBOX)
}

/// The completion token of the pool's receives (the pool's tag bits; no other token has both).
const POOL: u64 = TAG_HEADER | TAG_POOL;

/// Posts one pool receive: room for [`POOL_BYTES`] in fresh words, for any peer's pooled
/// message ([`TAG_HEADER`] and [`TAG_POOL`] set); it completes with a payload of exactly
/// what arrived.
fn repost_pool(ep: &mut Endpoint) -> Result<(), FabricError> {
    ep.recv_fresh(POOL, TAG_POOL - 1, POOL_BYTES, POOL)
}
