//! Every `unsafe` line of the libfabric driver: a safe wrapper over one RDM endpoint
//! (fabric, domain, endpoint, address vector, completion queue) with tagged sends and
//! receives that own their buffers, memory registration (one window per endpoint, and
//! payloads exposed for remote reads) and one-sided reads and writes (`fi_read`,
//! `fi_writemsg`). Nothing outside this module calls `dagwire_fabric_sys`.
//!
//! # Invariants (why the safe functions are safe)
//! 1. **Buffers outlive their operations.** Every posted send or receive is an [`Op`]
//!    boxed in [`Endpoint::ops`]; it owns the heap buffer libfabric reads or writes (a
//!    `Vec<u8>` or a [`Payload`], whose heap bytes do not move when the handle moves)
//!    and its `fi_context2`, which libfabric may use as scratch space until the
//!    operation completes. The box is freed only when the completion queue reports the
//!    operation done (or failed), or after the endpoint is closed in `Drop` (libfabric
//!    then touches none of them).
//! 2. **Receive buffers are written only by libfabric while posted.** A payload posted
//!    as a receive target is a fresh, unshared [`Payload`] (so `as_bytes_mut` gives its
//!    own bytes, not a copy-on-write copy); a payload being sent is a shared clone,
//!    which nobody can write through without copying it first.
//! 3. **Handles are closed once, in reverse order of opening** (endpoint, address
//!    vector, completion queue, domain, fabric), then the `fi_info` is freed; every
//!    handle is non-null from [`Endpoint::open`] on.
//! 4. **One thread.** The domain is opened with `FI_THREAD_DOMAIN`: only the thread that
//!    owns the [`Endpoint`] calls into it (it is not `Send`: it holds raw pointers).
//! 5. **Peers are addressed through the address vector only**: a rank index is checked
//!    against the inserted peers before it becomes an `fi_addr_t`.
//! 6. **Registered memory outlives its registration.** A [`Region`] owns what it
//!    registered: the window's heap words (allocated here, freed only after its `fid_mr`
//!    is closed) or a clone of the exposed [`Payload`] (whose heap bytes do not move and
//!    which nobody writes through while shared, invariant 2). Regions are closed before
//!    the domain (in `Drop`, after the endpoint, so no operation is still reading them).
//!    Remote peers reach a region only through its key; what they may do (read, or read
//!    and write) is the access it was registered with, enforced by the provider.
//! 7. **Window memory is never a Rust reference.** Peers write into the window at any
//!    time, so this rank touches it only through raw pointer copies
//!    ([`Endpoint::window_write`], [`Endpoint::window_read`]) after a bounds check: a
//!    remote write landing meanwhile gives a wrong value at worst, never undefined
//!    behaviour in Rust. Which bytes are meaningful when is the strategy's protocol
//!    (a notification, or a fence).
//! 8. **One-sided operations own their local buffers like messages (invariant 1)**: a
//!    read lands in a fresh, unshared payload; a write sends from a shared clone. Remote
//!    addresses and lengths are the caller's to check (a peer's window size is exchanged
//!    at start-up); an access outside a remote region is refused by the provider with an
//!    error completion, never performed.
//! 9. **Fresh receive buffers are never read before they are initialised.** A payload
//!    received with [`Endpoint::recv_payload`] or read with [`Endpoint::read`] lands in
//!    words allocated for it and not zeroed ([`Held::Fresh`]: zeroing 4 MiB per message
//!    cost more than moving it). Nothing reads them while posted (invariant 2); on
//!    completion the bytes past what libfabric wrote are zeroed, and only then does the
//!    vector take its length and become a [`Payload`] ([`finish_fresh`]). An operation
//!    that fails or is dropped frees the words without reading them.
//! 10. **A pooled receive hands over only what arrived.** A receive of the driver's pool
//!     for mid-size payloads ([`Endpoint::recv_fresh`]) lands in fresh words with room
//!     for the pool's largest payload, under invariant 9; on completion the bytes after
//!     what libfabric wrote are zeroed only up to the next word boundary, the vector
//!     takes the length of what arrived, gives the rest of its allocation back
//!     (`shrink_to_fit`, which moves no initialised byte it keeps) and becomes a payload
//!     of exactly those bytes. A payload sent into a peer's pool
//!     ([`Endpoint::send_data`], `fi_tsenddata`) is a shared clone owned by its
//!     operation until the completion (invariant 1). That every pooled message finds a
//!     posted pool receive is the driver's credit protocol, not a safety matter: a
//!     message that found none would wait unexpected in the provider (or be truncated
//!     to the receive's room, reported as an error completion), never written past a
//!     buffer.

#![allow(unsafe_code)]

use crate::payload::Payload;
use dagwire_fabric_sys as fi;
use std::ffi::{CStr, CString};
use std::ptr;
use std::time::Instant;

/// The libfabric API version the driver asks for (1.10: tagged, RMA, `FI_CONTEXT2`).
const API: u32 = fi::FI_VERSION(1, 10);

/// `FI_ADDR_UNSPEC` (a cast macro bindgen does not translate): any source.
const FI_ADDR_UNSPEC: fi::fi_addr_t = u64::MAX;

/// Entries read from the completion queue per call.
const CQ_BATCH: usize = 16;

/// What went wrong in libfabric, with its own words (`fi_strerror`, `fi_cq_strerror`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FabricError(pub String);

fn strerror(code: isize) -> String {
    // SAFETY: fi_strerror returns a pointer to a static, NUL-terminated string.
    let text = unsafe { CStr::from_ptr(fi::fi_strerror(code.unsigned_abs() as i32)) };
    text.to_string_lossy().into_owned()
}

fn check(code: isize, what: &str) -> Result<(), FabricError> {
    if code < 0 { Err(FabricError(format!("{what}: {} ({code})", strerror(code)))) } else { Ok(()) }
}

/// What a peer needs to reach a registered region: the address to name it by (its
/// virtual address when the provider asks for `FI_MR_VIRT_ADDR`, else 0), its key and
/// its length.
pub use crate::one_sided::MemoryKey;

/// What a registered region holds (invariant 6).
enum Memory {
    /// The window: heap words of our own, `len` bytes of them in use.
    Window { base: *mut u64, words: usize, len: usize },
    /// A payload exposed for remote reads (held, never read here: it keeps the bytes alive).
    #[allow(dead_code)]
    Payload(Payload),
}

/// One registered memory region and what it keeps alive.
struct Region {
    mr: *mut fi::fid_mr,
    mem: Memory,
}

impl Region {
    /// Closes the registration, then frees window memory.
    ///
    /// # Safety
    /// No operation may still be reading or writing the region (its endpoint is closed,
    /// or no peer was told its key since it was registered... the caller's protocol).
    unsafe fn close(self) {
        // SAFETY: the caller's promise; `mr` came from fi_mr_reg and is closed once.
        unsafe {
            if !self.mr.is_null() {
                fi::fi_close(&mut (*self.mr).fid);
            }
            if let Memory::Window { base, words, .. } = self.mem {
                drop(Box::from_raw(ptr::slice_from_raw_parts_mut(base, words)));
            }
        }
    }
}

/// The buffer of a posted operation.
#[derive(Debug)]
pub enum Buffer {
    /// Bytes of the driver's own (headers, reports).
    Bytes(Vec<u8>),
    /// A chunk's payload (sent without a copy, or received straight into place).
    Payload(Payload),
}

impl Buffer {
    fn len(&self) -> usize {
        match self {
            Buffer::Bytes(b) => b.len(),
            Buffer::Payload(p) => p.len(),
        }
    }
}

/// What a posted operation holds.
enum Held {
    /// A buffer the caller gave.
    Given(Buffer),
    /// Words allocated for a receive or a read, uninitialised until it completes
    /// (invariant 9): room for `len` bytes. `exact`: the payload is what arrived, not
    /// the whole room (invariant 10).
    Fresh { words: Vec<u64>, len: usize, exact: bool },
}

impl Held {
    /// Room for `len` bytes that libfabric may write, and where they start (null when
    /// there are none).
    fn fresh(len: usize) -> (Held, *mut u8) {
        let mut words = Vec::<u64>::with_capacity(len.div_ceil(8));
        let at = if len == 0 { ptr::null_mut() } else { words.as_mut_ptr().cast::<u8>() };
        (Held::Fresh { words, len, exact: false }, at)
    }

    /// Room for up to `room` bytes that libfabric may write, finishing as a payload of
    /// just the bytes written (invariant 10).
    fn fresh_exact(room: usize) -> (Held, *mut u8) {
        let (held, at) = Held::fresh(room);
        let Held::Fresh { words, len, .. } = held else { unreachable!("fresh gives fresh words") };
        (Held::Fresh { words, len, exact: true }, at)
    }

    /// The buffer to hand back once the operation finished, `written` bytes of it by
    /// libfabric.
    fn finish(self, written: usize) -> Buffer {
        match self {
            Held::Given(buf) => buf,
            Held::Fresh { words, len, exact: false } => Buffer::Payload(finish_fresh(words, len, written)),
            Held::Fresh { mut words, len, exact: true } => {
                let written = written.min(len);
                // Only the words holding what arrived (invariant 10): zeroed to their end,
                // the vector given their length, the rest of the room given back.
                let n = written.div_ceil(8);
                debug_assert!(words.capacity() >= n);
                // SAFETY: the allocation holds room for `len >= written` bytes
                // (`Held::fresh`); libfabric wrote the first `written`, the rest of the
                // `n` words is zeroed here, so all `n` are initialised before `set_len`.
                unsafe {
                    let base = words.as_mut_ptr().cast::<u8>();
                    ptr::write_bytes(base.add(written), 0, n * 8 - written);
                    words.set_len(n);
                }
                words.shrink_to_fit();
                Buffer::Payload(Payload::from_words(words, written))
            }
        }
    }
}

/// Turns the words of a finished fresh receive into its payload: zeroes what libfabric
/// did not write, then gives the vector its length (invariant 9).
fn finish_fresh(mut words: Vec<u64>, len: usize, written: usize) -> Payload {
    let n = len.div_ceil(8);
    let written = written.min(len);
    debug_assert!(words.capacity() >= n);
    // SAFETY: the allocation holds at least `n` words (`Held::fresh`); libfabric wrote
    // its first `written` bytes, the rest of the `n` words is zeroed here, so all `n`
    // words are initialised before `set_len`.
    unsafe {
        let base = words.as_mut_ptr().cast::<u8>();
        ptr::write_bytes(base.add(written), 0, n * 8 - written);
        words.set_len(n);
    }
    Payload::from_words(words, len)
}

/// One posted operation; `ctx` first, so the context pointer libfabric hands back is
/// the operation's own address.
#[repr(C)]
struct Op {
    ctx: fi::fi_context2,
    token: u64,
    kind: Kind,
    buf: Held,
}

/// What an [`Op`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Send,
    Recv,
    Read,
    Write,
}

/// A finished operation.
#[derive(Debug)]
pub enum Completion {
    /// A send finished; its buffer is free again.
    Sent {
        /// The token given when it was posted.
        token: u64,
    },
    /// A receive finished: `len` bytes arrived with `tag` into `buf`.
    Received {
        /// The token given when it was posted.
        token: u64,
        /// The tag of the message that matched.
        tag: u64,
        /// The 64 bits of remote completion data the sender attached
        /// ([`Endpoint::inject_tagged`]), 0 when it attached none.
        data: u64,
        /// Bytes received.
        len: usize,
        /// The receive's buffer, holding them.
        buf: Buffer,
    },
    /// A one-sided read finished: `data` holds the bytes read.
    Read {
        /// The token given when it was posted.
        token: u64,
        /// The bytes.
        data: Payload,
    },
    /// A one-sided write finished: its bytes are in the target's memory
    /// (`FI_DELIVERY_COMPLETE`).
    Written {
        /// The token given when it was posted.
        token: u64,
    },
}

impl Completion {
    /// The token of the operation that finished.
    pub fn token(&self) -> u64 {
        match self {
            Completion::Sent { token }
            | Completion::Received { token, .. }
            | Completion::Read { token, .. }
            | Completion::Written { token } => *token,
        }
    }
}

/// The RDM providers offering messages, tagged messages and RMA here (`fi_getinfo` without a
/// provider name), each once, in the order libfabric lists them.
pub fn providers() -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    if let Ok(info) = get_info(None) {
        let mut cur = info;
        while !cur.is_null() {
            // SAFETY: `cur` walks the list fi_getinfo returned, freed below.
            let name = unsafe { prov_name(cur) };
            if !names.contains(&name) {
                names.push(name);
            }
            cur = unsafe { (*cur).next };
        }
        // SAFETY: the list came from fi_getinfo and is freed once.
        unsafe { fi::fi_freeinfo(info) };
    }
    names
}

/// # Safety
/// `info` points to a valid `fi_info` with a fabric attribute.
unsafe fn prov_name(info: *const fi::fi_info) -> String {
    // SAFETY: the caller's promise; the name is NUL-terminated when present.
    unsafe {
        let attr = (*info).fabric_attr;
        if attr.is_null() || (*attr).prov_name.is_null() {
            return String::from("?");
        }
        CStr::from_ptr((*attr).prov_name).to_string_lossy().into_owned()
    }
}

/// `fi_getinfo` for RDM endpoints with messages, tagged messages and RMA, restricted to
/// `provider` when given. The caller frees the list with `fi_freeinfo`.
fn get_info(provider: Option<&str>) -> Result<*mut fi::fi_info, FabricError> {
    // SAFETY: fi_allocinfo returns a zeroed fi_info with its attribute structs
    // allocated (or null); every field set below is a plain value or a string that
    // fi_freeinfo frees with free() (hence strdup).
    unsafe {
        let hints = fi::fi_allocinfo();
        if hints.is_null() {
            return Err(FabricError("fi_allocinfo: out of memory".into()));
        }
        (*hints).caps = (fi::FI_MSG | fi::FI_TAGGED | fi::FI_RMA) as u64;
        (*hints).mode = fi::FI_CONTEXT | fi::FI_CONTEXT2;
        (*(*hints).ep_attr).type_ = fi::fi_ep_type_FI_EP_RDM;
        let dom = (*hints).domain_attr;
        (*dom).threading = fi::fi_threading_FI_THREAD_DOMAIN;
        (*dom).av_type = fi::fi_av_type_FI_AV_TABLE;
        (*dom).mr_mode = (fi::FI_MR_VIRT_ADDR | fi::FI_MR_ALLOCATED | fi::FI_MR_PROV_KEY) as i32;
        if let Some(name) = provider {
            let c = CString::new(name).map_err(|_| FabricError(format!("provider name {name:?} has a NUL byte")))?;
            (*(*hints).fabric_attr).prov_name = strdup(&c);
        }
        let mut info = ptr::null_mut();
        let code = fi::fi_getinfo(API, ptr::null(), ptr::null(), 0, hints, &mut info);
        fi::fi_freeinfo(hints);
        check(code as isize, "fi_getinfo")?;
        if info.is_null() {
            return Err(FabricError("fi_getinfo found nothing".into()));
        }
        Ok(info)
    }
}

/// A malloc'ed copy of `s`, for fields that `fi_freeinfo` frees.
///
/// # Safety
/// The result must be freed with `free` (fi_freeinfo does).
unsafe fn strdup(s: &CStr) -> *mut std::os::raw::c_char {
    unsafe extern "C" {
        fn strdup(s: *const std::os::raw::c_char) -> *mut std::os::raw::c_char;
    }
    // SAFETY: `s` is NUL-terminated.
    unsafe { strdup(s.as_ptr()) }
}

/// One RDM endpoint with its own fabric, domain, completion queue and address vector.
pub struct Endpoint {
    info: *mut fi::fi_info,
    fabric: *mut fi::fid_fabric,
    domain: *mut fi::fid_domain,
    cq: *mut fi::fid_cq,
    av: *mut fi::fid_av,
    ep: *mut fi::fid_ep,
    provider: String,
    peers: Vec<fi::fi_addr_t>,
    /// Posted operations, by address (invariant 1).
    ops: rustc_hash::FxHashMap<usize, Box<Op>>,
    /// Completions read while a post waited for queue room, handed out by the next poll.
    ready: Vec<Completion>,
    /// Completions of exchanges, until waited for.
    exchanged: Vec<Completion>,
    next_exchange: u64,
    /// Registered regions, by id; the window's is [`WINDOW`].
    regions: std::collections::HashMap<u64, Region>,
    next_region: u64,
    /// The provider wants regions named by virtual address (`FI_MR_VIRT_ADDR`).
    virt_addr: bool,
    /// The provider picks keys (`FI_MR_PROV_KEY`); else we request unique ones.
    prov_key: bool,
    /// The largest tagged message [`Endpoint::inject_tagged`] may send with 64 bits of
    /// remote completion data (the provider's inject size), or `None` when the provider
    /// carries fewer than 64 bits of completion data.
    inject_limit: Option<usize>,
}

/// The id of the window's region.
const WINDOW: u64 = 0;

impl Endpoint {
    /// Opens an RDM endpoint on `provider` (`tcp`, `shm`, `verbs`, ... as `fi_info`
    /// names them; a layered name such as `tcp;ofi_rxm` works too). An unknown or
    /// unusable provider fails with the list of those available here.
    pub fn open(provider: &str) -> Result<Endpoint, FabricError> {
        let info = get_info(Some(provider)).map_err(|e| {
            FabricError(format!(
                "no libfabric provider `{provider}` with RDM endpoints, messages, tagged messages and RMA here ({e}); \
                 available: {}",
                providers().join(", ")
            ))
        })?;
        let mut me = Endpoint {
            info,
            fabric: ptr::null_mut(),
            domain: ptr::null_mut(),
            cq: ptr::null_mut(),
            av: ptr::null_mut(),
            ep: ptr::null_mut(),
            // SAFETY: info is the non-null list fi_getinfo returned.
            provider: unsafe { prov_name(info) },
            peers: Vec::new(),
            ops: Default::default(),
            ready: Vec::new(),
            exchanged: Vec::new(),
            next_exchange: 0,
            regions: Default::default(),
            next_region: WINDOW + 1,
            // SAFETY: info is the non-null list fi_getinfo returned, with its domain attribute.
            virt_addr: unsafe { ((*(*info).domain_attr).mr_mode as u32) & fi::FI_MR_VIRT_ADDR != 0 },
            prov_key: unsafe { ((*(*info).domain_attr).mr_mode as u32) & fi::FI_MR_PROV_KEY != 0 },
            // SAFETY: as above; fi_getinfo fills the transmit attribute.
            inject_limit: unsafe {
                ((*(*info).domain_attr).cq_data_size >= 8 && !(*info).tx_attr.is_null())
                    .then(|| (*(*info).tx_attr).inject_size)
            },
        };
        // SAFETY: each call gets handles opened just before (non-null on success) and
        // the first fi_info of the list; on an error `me` drops and closes what opened.
        unsafe {
            check(fi::fi_fabric((*info).fabric_attr, &mut me.fabric, ptr::null_mut()) as isize, "fi_fabric")?;
            check(fi::fi_domain(me.fabric, info, &mut me.domain, ptr::null_mut()) as isize, "fi_domain")?;
            let mut cq_attr = fi::fi_cq_attr {
                format: fi::fi_cq_format_FI_CQ_FORMAT_TAGGED,
                wait_obj: fi::fi_wait_obj_FI_WAIT_NONE,
                ..Default::default()
            };
            check(fi::fi_cq_open(me.domain, &mut cq_attr, &mut me.cq, ptr::null_mut()) as isize, "fi_cq_open")?;
            let mut av_attr = fi::fi_av_attr { type_: fi::fi_av_type_FI_AV_TABLE, ..Default::default() };
            check(fi::fi_av_open(me.domain, &mut av_attr, &mut me.av, ptr::null_mut()) as isize, "fi_av_open")?;
            check(fi::fi_endpoint(me.domain, info, &mut me.ep, ptr::null_mut()) as isize, "fi_endpoint")?;
            let flags = (fi::FI_TRANSMIT | fi::FI_RECV) as u64;
            check(fi::fi_ep_bind(me.ep, &mut (*me.cq).fid, flags) as isize, "fi_ep_bind (completion queue)")?;
            check(fi::fi_ep_bind(me.ep, &mut (*me.av).fid, 0) as isize, "fi_ep_bind (address vector)")?;
            check(fi::fi_enable(me.ep) as isize, "fi_enable")?;
        }
        Ok(me)
    }

    /// The provider libfabric picked (`tcp;ofi_rxm` for `tcp`).
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// This endpoint's address, for peers to insert.
    pub fn name(&self) -> Result<Vec<u8>, FabricError> {
        let mut buf = vec![0u8; 256];
        let mut len = buf.len();
        // SAFETY: the endpoint is open; buf has room for `len` bytes, and libfabric
        // writes at most that (it reports a larger need as -FI_ETOOSMALL).
        let code = unsafe { fi::fi_getname(&mut (*self.ep).fid, buf.as_mut_ptr().cast(), &mut len) };
        check(code as isize, "fi_getname")?;
        buf.truncate(len);
        Ok(buf)
    }

    /// Inserts every rank's address, in rank order (this rank's own included).
    pub fn insert_peers(&mut self, names: &[Vec<u8>]) -> Result<(), FabricError> {
        let mut addrs = vec![0 as fi::fi_addr_t; names.len()];
        for (name, addr) in names.iter().zip(addrs.iter_mut()) {
            // SAFETY: the address vector is open; `name` is an address this provider's
            // fi_getname produced on a peer; one fi_addr_t is written to `addr`.
            let n = unsafe { fi::fi_av_insert(self.av, name.as_ptr().cast(), 1, addr, 0, ptr::null_mut()) };
            if n != 1 {
                return Err(FabricError(format!("fi_av_insert of a peer's address: {}", strerror(n as isize))));
            }
        }
        self.peers = addrs;
        Ok(())
    }

    fn peer(&self, rank: usize) -> Result<fi::fi_addr_t, FabricError> {
        self.peers.get(rank).copied().ok_or_else(|| FabricError(format!("rank {rank} is not a known peer")))
    }

    /// Operations posted and not yet complete.
    pub fn in_flight(&self) -> usize {
        self.ops.len()
    }

    /// Sends `buf` to rank `to` with `tag`; its completion carries `token`.
    pub fn send(&mut self, to: usize, tag: u64, buf: Buffer, token: u64) -> Result<(), FabricError> {
        self.send_op(to, Some(tag), buf, token)
    }

    /// Sends `buf` to rank `to` as an untagged message (`fi_send`), for a receive posted
    /// with [`Endpoint::recv_untagged`]; its completion carries `token`. Providers keep
    /// untagged and tagged receives in separate lists, so neither kind is matched
    /// against the other's receives.
    pub fn send_untagged(&mut self, to: usize, buf: Vec<u8>, token: u64) -> Result<(), FabricError> {
        self.send_op(to, None, Buffer::Bytes(buf), token)
    }

    /// The largest message [`Endpoint::inject_tagged`] takes (the provider's inject
    /// size), or `None` when the provider offers fewer than 64 bits of remote
    /// completion data (then it cannot be used).
    pub fn inject_limit(&self) -> Option<usize> {
        self.inject_limit
    }

    /// Sends `bytes` (at most [`Endpoint::inject_limit`]) to rank `to` with `tag` and 64
    /// bits of remote completion `data` (`fi_tinjectdata`): the provider copies the bytes
    /// before returning, so there is no buffer to keep and no completion at this end;
    /// the receive that matches completes with `tag` and `data`.
    pub fn inject_tagged(&mut self, to: usize, tag: u64, data: u64, bytes: &[u8]) -> Result<(), FabricError> {
        let addr = self.peer(to)?;
        match self.inject_limit {
            Some(limit) if bytes.len() <= limit => {}
            limit => {
                return Err(FabricError(format!(
                    "an injected message of {} bytes (the provider injects {limit:?} with completion data)",
                    bytes.len()
                )));
            }
        }
        let buf: *const u8 = if bytes.is_empty() { ptr::null() } else { bytes.as_ptr() };
        loop {
            // SAFETY: the endpoint is open; `bytes` lives through the call, and libfabric
            // copies them before returning (inject), so nothing refers to them after.
            let code = unsafe { fi::fi_tinjectdata(self.ep, buf.cast(), bytes.len(), data, addr, tag) };
            if code == -(fi::FI_EAGAIN as isize) {
                let mut got = std::mem::take(&mut self.ready);
                let read = self.read_cq(&mut got);
                self.ready = got;
                read?;
                continue;
            }
            return check(code, "fi_tinjectdata");
        }
    }

    /// Sends `payload` to rank `to` with `tag` and 64 bits of remote completion `data`
    /// (`fi_tsenddata`), straight from the payload's own bytes (a shared clone the
    /// operation holds until its completion, invariant 10); its completion carries
    /// `token`. The driver sends mid-size payloads into the peer's pool this way.
    pub fn send_data(
        &mut self,
        to: usize,
        tag: u64,
        data: u64,
        payload: Payload,
        token: u64,
    ) -> Result<(), FabricError> {
        self.send_op_data(to, Some((tag, Some(data))), Buffer::Payload(payload), token)
    }

    fn send_op(&mut self, to: usize, tag: Option<u64>, buf: Buffer, token: u64) -> Result<(), FabricError> {
        self.send_op_data(to, tag.map(|t| (t, None)), buf, token)
    }

    /// Posts a send of `buf`: tagged (with remote completion data when given) or untagged.
    fn send_op_data(
        &mut self,
        to: usize,
        tag: Option<(u64, Option<u64>)>,
        buf: Buffer,
        token: u64,
    ) -> Result<(), FabricError> {
        let addr = self.peer(to)?;
        let (data, len) = match &buf {
            Buffer::Bytes(b) => (b.as_ptr(), b.len()),
            Buffer::Payload(p) if p.is_empty() => (ptr::null(), 0),
            Buffer::Payload(p) => (p.as_bytes().as_ptr(), p.len()),
        };
        let mut op = Box::new(Op { ctx: Default::default(), token, kind: Kind::Send, buf: Held::Given(buf) });
        let ctx: *mut Op = &mut *op;
        let what = match tag {
            Some((_, Some(_))) => "fi_tsenddata",
            Some((_, None)) => "fi_tsend",
            None => "fi_send",
        };
        self.post(op, what, |ep| {
            // SAFETY: the endpoint is open; `data` stays valid until the completion
            // (the box holding the buffer lives in `ops`, invariant 1).
            unsafe {
                match tag {
                    Some((tag, Some(cq))) => {
                        fi::fi_tsenddata(ep, data.cast(), len, ptr::null_mut(), cq, addr, tag, ctx.cast())
                    }
                    Some((tag, None)) => fi::fi_tsend(ep, data.cast(), len, ptr::null_mut(), addr, tag, ctx.cast()),
                    None => fi::fi_send(ep, data.cast(), len, ptr::null_mut(), addr, ctx.cast()),
                }
            }
        })
    }

    /// Posts a receive of up to `buf`'s length for any peer's untagged message
    /// ([`Endpoint::send_untagged`]); it completes as [`Completion::Received`] with tag 0
    /// and carries `token`.
    pub fn recv_untagged(&mut self, mut buf: Vec<u8>, token: u64) -> Result<(), FabricError> {
        let (data, len) = (buf.as_mut_ptr(), buf.len());
        let op = Op { ctx: Default::default(), token, kind: Kind::Recv, buf: Held::Given(Buffer::Bytes(buf)) };
        let mut op = Box::new(op);
        let ctx: *mut Op = &mut *op;
        self.post(op, "fi_recv", |ep| {
            // SAFETY: as in send; the receive buffer is this op's own (invariant 2).
            unsafe { fi::fi_recv(ep, data.cast(), len, ptr::null_mut(), FI_ADDR_UNSPEC, ctx.cast()) }
        })
    }

    /// Posts a receive of up to `buf`'s length for a message whose tag equals `tag` in
    /// the bits not set in `ignore`, from any peer; its completion carries `token`.
    pub fn recv(&mut self, tag: u64, ignore: u64, mut buf: Buffer, token: u64) -> Result<(), FabricError> {
        let len = buf.len();
        let data: *mut u8 = match &mut buf {
            Buffer::Bytes(b) => b.as_mut_ptr(),
            Buffer::Payload(p) if p.is_empty() => ptr::null_mut(),
            Buffer::Payload(p) => p.as_bytes_mut().as_mut_ptr(),
        };
        self.post_recv(tag, ignore, Held::Given(buf), data, len, token)
    }

    /// Posts a receive of up to `len` bytes into a fresh payload (allocated, not zeroed:
    /// invariant 9), for a message whose tag equals `tag` in the bits not set in
    /// `ignore`; it completes as [`Completion::Received`] with a [`Buffer::Payload`] of
    /// `len` bytes, zero past what arrived.
    pub fn recv_payload(&mut self, tag: u64, ignore: u64, len: usize, token: u64) -> Result<(), FabricError> {
        let (held, data) = Held::fresh(len);
        self.post_recv(tag, ignore, held, data, len, token)
    }

    /// Posts a receive of up to `room` bytes into fresh words, for a message whose tag
    /// equals `tag` in the bits not set in `ignore`; it completes as
    /// [`Completion::Received`] with a [`Buffer::Payload`] of exactly the bytes that
    /// arrived (invariant 10): the driver's pool for mid-size payloads.
    pub fn recv_fresh(&mut self, tag: u64, ignore: u64, room: usize, token: u64) -> Result<(), FabricError> {
        let (held, data) = Held::fresh_exact(room);
        self.post_recv(tag, ignore, held, data, room, token)
    }

    fn post_recv(
        &mut self,
        tag: u64,
        ignore: u64,
        buf: Held,
        data: *mut u8,
        len: usize,
        token: u64,
    ) -> Result<(), FabricError> {
        let mut op = Box::new(Op { ctx: Default::default(), token, kind: Kind::Recv, buf });
        let ctx: *mut Op = &mut *op;
        self.post(op, "fi_trecv", |ep| {
            // SAFETY: as in send; the receive buffer is this op's own (invariant 2).
            unsafe { fi::fi_trecv(ep, data.cast(), len, ptr::null_mut(), FI_ADDR_UNSPEC, tag, ignore, ctx.cast()) }
        })
    }

    /// Posts an operation, progressing the completion queue while libfabric has no room.
    fn post(&mut self, op: Box<Op>, what: &str, call: impl Fn(*mut fi::fid_ep) -> isize) -> Result<(), FabricError> {
        let key = &*op as *const Op as usize;
        self.ops.insert(key, op);
        loop {
            let code = call(self.ep);
            if code == -(fi::FI_EAGAIN as isize) {
                let mut got = std::mem::take(&mut self.ready);
                let read = self.read_cq(&mut got);
                self.ready = got;
                if let Err(e) = read {
                    self.ops.remove(&key);
                    return Err(e);
                }
                continue;
            }
            if code < 0 {
                // Never posted: libfabric holds no reference to it.
                self.ops.remove(&key);
            }
            return check(code, what);
        }
    }

    /// Appends every operation completed since the last poll to `out`.
    pub fn poll(&mut self, out: &mut Vec<Completion>) -> Result<(), FabricError> {
        out.append(&mut self.ready);
        self.read_cq(out)
    }

    fn read_cq(&mut self, out: &mut Vec<Completion>) -> Result<(), FabricError> {
        let mut entries = [fi::fi_cq_tagged_entry::default(); CQ_BATCH];
        loop {
            // SAFETY: the queue is open with FI_CQ_FORMAT_TAGGED, so each entry is an
            // fi_cq_tagged_entry; at most CQ_BATCH are written.
            let n = unsafe { fi::fi_cq_read(self.cq, entries.as_mut_ptr().cast(), CQ_BATCH) };
            if n == -(fi::FI_EAGAIN as isize) {
                return Ok(());
            }
            if n == -(fi::FI_EAVAIL as isize) {
                return Err(self.cq_error());
            }
            check(n, "fi_cq_read")?;
            for e in &entries[..n as usize] {
                let op = self
                    .ops
                    .remove(&(e.op_context as usize))
                    .ok_or_else(|| FabricError("a completion for an operation this endpoint did not post".into()))?;
                let c = match op.kind {
                    Kind::Send => Completion::Sent { token: op.token },
                    Kind::Recv => {
                        let data = if e.flags & fi::FI_REMOTE_CQ_DATA as u64 != 0 { e.data } else { 0 };
                        Completion::Received {
                            token: op.token,
                            tag: e.tag,
                            data,
                            len: e.len,
                            buf: op.buf.finish(e.len),
                        }
                    }
                    // A read that completes wrote every byte it asked for.
                    Kind::Read => match op.buf.finish(usize::MAX) {
                        Buffer::Payload(data) => Completion::Read { token: op.token, data },
                        Buffer::Bytes(_) => unreachable!("reads land in payloads"),
                    },
                    Kind::Write => Completion::Written { token: op.token },
                };
                if op.token & EXCHANGE == EXCHANGE {
                    self.exchanged.push(c);
                } else {
                    out.push(c);
                }
            }
            if (n as usize) < CQ_BATCH {
                return Ok(());
            }
        }
    }

    /// The error entry waiting in the completion queue, in libfabric's words.
    fn cq_error(&mut self) -> FabricError {
        let mut e = fi::fi_cq_err_entry::default();
        // SAFETY: the queue is open and reported an error entry; `e` receives it.
        let n = unsafe { fi::fi_cq_readerr(self.cq, &mut e, 0) };
        if n < 0 {
            return FabricError(format!("fi_cq_readerr: {}", strerror(n)));
        }
        let mut buf = [0 as std::os::raw::c_char; 256];
        // SAFETY: fi_cq_strerror writes a NUL-terminated string into `buf` (or returns
        // a static one) for the provider error of the entry just read.
        let text = unsafe {
            let p = fi::fi_cq_strerror(self.cq, e.prov_errno, e.err_data, buf.as_mut_ptr(), buf.len());
            if p.is_null() { String::new() } else { CStr::from_ptr(p).to_string_lossy().into_owned() }
        };
        let what = match self.ops.remove(&(e.op_context as usize)).map(|op| op.kind) {
            Some(Kind::Send) => "a send",
            Some(Kind::Recv) => "a receive",
            Some(Kind::Read) => "a one-sided read",
            Some(Kind::Write) => "a one-sided write",
            None => "an operation",
        };
        FabricError(format!("{what} failed: {} ({text})", strerror(e.err as isize)))
    }
}

/// Memory registration and one-sided reads and writes.
impl Endpoint {
    /// Registers `buf` (`len` bytes) with remote `access` as region `id`, keeping `mem`
    /// alive with it (invariant 6).
    fn register_region(
        &mut self,
        id: u64,
        buf: *const u8,
        len: usize,
        access: u64,
        mem: Memory,
    ) -> Result<MemoryKey, FabricError> {
        let mut mr = ptr::null_mut();
        let requested = if self.prov_key { 0 } else { id };
        // SAFETY: the domain is open; `buf` points to `len` bytes that `mem` keeps alive
        // until the region is closed (invariant 6); `mr` receives the handle.
        let code =
            unsafe { fi::fi_mr_reg(self.domain, buf.cast(), len, access, 0, requested, 0, &mut mr, ptr::null_mut()) };
        if let Err(e) = check(code as isize, "fi_mr_reg") {
            // SAFETY: nothing was registered, so nobody reads `mem`.
            unsafe { Region { mr: ptr::null_mut(), mem }.close() };
            return Err(e);
        }
        // SAFETY: `mr` is the handle fi_mr_reg just opened.
        let key = unsafe { fi::fi_mr_key(mr) };
        self.regions.insert(id, Region { mr, mem });
        Ok(MemoryKey { addr: if self.virt_addr { buf as u64 } else { 0 }, key, len: len as u64 })
    }

    /// Allocates and registers this endpoint's window: `len` zeroed bytes that peers
    /// may read and write. One per endpoint.
    pub fn register_window(&mut self, len: usize) -> Result<MemoryKey, FabricError> {
        if self.regions.contains_key(&WINDOW) {
            return Err(FabricError("this endpoint already has a window".into()));
        }
        // At least one word: a zero-length registration is not portable.
        let words = len.div_ceil(8).max(1);
        let base = Box::into_raw(vec![0u64; words].into_boxed_slice()).cast::<u64>();
        let access = (fi::FI_REMOTE_READ | fi::FI_REMOTE_WRITE) as u64;
        let key = self.register_region(WINDOW, base.cast(), words * 8, access, Memory::Window { base, words, len })?;
        Ok(MemoryKey { len: len as u64, ..key })
    }

    /// The window's size in bytes (0 without one).
    pub fn window_len(&self) -> usize {
        match self.regions.get(&WINDOW).map(|r| &r.mem) {
            Some(Memory::Window { len, .. }) => *len,
            _ => 0,
        }
    }

    /// The window's base pointer, after checking `len` bytes at `offset` fit.
    fn window_at(&self, offset: u64, len: usize) -> Result<*mut u8, String> {
        let Some(Memory::Window { base, len: size, .. }) = self.regions.get(&WINDOW).map(|r| &r.mem) else {
            return Err("this rank has no window".into());
        };
        match offset.checked_add(len as u64) {
            Some(end) if end <= *size as u64 => Ok(base.cast::<u8>().wrapping_add(offset as usize)),
            _ => Err(format!("access of {len} bytes at offset {offset} reaches past the end of a {size}-byte window")),
        }
    }

    /// Copies `data` into this rank's own window at `offset`.
    pub fn window_write(&mut self, offset: u64, data: &[u8]) -> Result<(), String> {
        let at = self.window_at(offset, data.len())?;
        // SAFETY: in range (checked); window memory is touched only by raw copies (invariant 7).
        unsafe { ptr::copy_nonoverlapping(data.as_ptr(), at, data.len()) };
        Ok(())
    }

    /// Copies `len` bytes of this rank's own window at `offset` out.
    pub fn window_read(&mut self, offset: u64, len: usize) -> Result<Payload, String> {
        let at = self.window_at(offset, len)?;
        let mut out = Payload::zeroed(len);
        if len > 0 {
            // SAFETY: as in window_write; `out` is a fresh payload of `len` bytes.
            unsafe { ptr::copy_nonoverlapping(at, out.as_bytes_mut().as_mut_ptr(), len) };
        }
        Ok(out)
    }

    /// Registers `data` for remote reads; returns the region's id (for
    /// [`Endpoint::deregister`]) and the key peers read it with.
    pub fn register(&mut self, data: Payload) -> Result<(u64, MemoryKey), FabricError> {
        let id = self.next_region;
        self.next_region += 1;
        // An empty payload has no bytes: register one static word instead.
        static EMPTY: u64 = 0;
        let (buf, len) = if data.is_empty() {
            (&EMPTY as *const u64 as *const u8, 8)
        } else {
            (data.as_bytes().as_ptr(), data.len())
        };
        let len_exposed = data.len() as u64;
        let key = self.register_region(id, buf, len, fi::FI_REMOTE_READ as u64, Memory::Payload(data))?;
        Ok((id, MemoryKey { len: len_exposed, ..key }))
    }

    /// Closes region `id` (from [`Endpoint::register`]), releasing its payload. The
    /// caller's protocol guarantees no peer still reads it.
    pub fn deregister(&mut self, id: u64) -> Result<(), FabricError> {
        let region = match self.regions.remove(&id) {
            Some(r) if id != WINDOW => r,
            _ => return Err(FabricError(format!("no registered region {id}"))),
        };
        // SAFETY: the caller's protocol: every peer told of the key is done reading.
        unsafe { region.close() };
        Ok(())
    }

    /// Registered regions (the window included).
    pub fn regions(&self) -> usize {
        self.regions.len()
    }

    /// Reads `len` bytes at `offset` of rank `from`'s region `at` into a fresh payload
    /// (invariant 9); its completion ([`Completion::Read`]) carries `token`.
    pub fn read(&mut self, from: usize, at: MemoryKey, offset: u64, len: usize, token: u64) -> Result<(), FabricError> {
        let addr = self.peer(from)?;
        let (held, buf) = Held::fresh(len);
        let mut op = Box::new(Op { ctx: Default::default(), token, kind: Kind::Read, buf: held });
        let ctx: *mut Op = &mut *op;
        let remote = at.addr + offset;
        self.post(op, "fi_read", |ep| {
            // SAFETY: the endpoint is open; `buf` is the op's own fresh payload, alive in
            // `ops` until the completion (invariants 1 and 8).
            unsafe { fi::fi_read(ep, buf.cast(), len, ptr::null_mut(), addr, remote, at.key, ctx.cast()) }
        })
    }

    /// Writes `data` at `offset` of rank `to`'s region `at`; its completion
    /// ([`Completion::Written`]) carries `token` and comes once the bytes are in the
    /// target's memory (`FI_DELIVERY_COMPLETE`).
    pub fn write(
        &mut self,
        to: usize,
        at: MemoryKey,
        offset: u64,
        data: Payload,
        token: u64,
    ) -> Result<(), FabricError> {
        let addr = self.peer(to)?;
        let len = data.len();
        let src: *const u8 = if data.is_empty() { ptr::null() } else { data.as_bytes().as_ptr() };
        let buf = Held::Given(Buffer::Payload(data));
        let mut op = Box::new(Op { ctx: Default::default(), token, kind: Kind::Write, buf });
        let ctx: *mut Op = &mut *op;
        let remote = at.addr + offset;
        self.post(op, "fi_writemsg", |ep| {
            let iov = fi::iovec { iov_base: src as *mut _, iov_len: len };
            let rma = fi::fi_rma_iov { addr: remote, len, key: at.key };
            let msg = fi::fi_msg_rma {
                msg_iov: &iov,
                desc: ptr::null_mut(),
                iov_count: 1,
                addr,
                rma_iov: &rma,
                rma_iov_count: 1,
                context: ctx.cast(),
                data: 0,
            };
            let flags = (fi::FI_COMPLETION | fi::FI_DELIVERY_COMPLETE) as u64;
            // SAFETY: the endpoint is open; `iov`, `rma` and `msg` live through the call;
            // the source bytes are the op's own payload, alive in `ops` until the
            // completion (invariants 1 and 8).
            unsafe { fi::fi_writemsg(ep, &msg, flags) }
        })
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        // SAFETY: invariant 3: each handle is closed once, endpoint first, so libfabric
        // touches no posted buffer after this; then `ops` may be freed. Registered
        // regions close after the endpoint and before the domain (invariant 6).
        unsafe {
            if !self.ep.is_null() {
                fi::fi_close(self.ep.cast::<fi::fid>());
                self.ep = ptr::null_mut();
            }
            for (_, region) in self.regions.drain() {
                region.close();
            }
            for fid in [
                self.ep.cast::<fi::fid>(),
                self.av.cast::<fi::fid>(),
                self.cq.cast::<fi::fid>(),
                self.domain.cast::<fi::fid>(),
                self.fabric.cast::<fi::fid>(),
            ] {
                if !fid.is_null() {
                    fi::fi_close(fid);
                }
            }
            fi::fi_freeinfo(self.info);
        }
        self.ops.clear();
    }
}

/// Tokens of exchanges (start-up and the end of a run) have these top bits; their
/// completions are kept apart from the driver's.
const EXCHANGE: u64 = 0xf << 60;

/// Exchanges of small byte messages for start-up and the end of a run (clock, gather):
/// posted ahead, then waited for.
impl Endpoint {
    /// Posts a receive of at most `max` bytes with exactly `tag`; wait for it with
    /// [`Endpoint::wait_recv`].
    pub fn post_recv_bytes(&mut self, tag: u64, max: usize) -> Result<u64, FabricError> {
        let token = EXCHANGE | self.next_exchange;
        self.next_exchange += 1;
        self.recv(tag, 0, Buffer::Bytes(vec![0; max]), token)?;
        Ok(token)
    }

    /// Sends `bytes` to `to` with `tag`, and waits until the send completed (progressing
    /// the queue; `deadline` bounds the wait, since a peer that died never answers).
    pub fn send_blocking(&mut self, to: usize, tag: u64, bytes: Vec<u8>, deadline: Instant) -> Result<(), FabricError> {
        let token = EXCHANGE | self.next_exchange;
        self.next_exchange += 1;
        self.send(to, tag, Buffer::Bytes(bytes), token)?;
        self.wait(token, deadline).map(|_| ())
    }

    /// Waits for the receive posted as `token` and returns its bytes.
    pub fn wait_recv(&mut self, token: u64, deadline: Instant) -> Result<Vec<u8>, FabricError> {
        match self.wait(token, deadline)? {
            Completion::Received { len, buf: Buffer::Bytes(mut b), .. } => {
                b.truncate(len);
                Ok(b)
            }
            _ => Err(FabricError("an exchange's receive completed as something else".into())),
        }
    }

    fn wait(&mut self, token: u64, deadline: Instant) -> Result<Completion, FabricError> {
        loop {
            if let Some(i) = self.exchanged.iter().position(|c| c.token() == token) {
                return Ok(self.exchanged.swap_remove(i));
            }
            if Instant::now() > deadline {
                return Err(FabricError("a peer did not answer in time (did it die?)".into()));
            }
            let mut got = Vec::new();
            self.read_cq(&mut got)?;
            self.ready.append(&mut got);
            std::thread::yield_now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh buffer that received fewer bytes than it has room for becomes a payload of
    /// its full length, holding what arrived and zeros after it (invariant 9).
    #[test]
    fn a_fresh_buffer_is_zero_past_what_arrived() {
        for (len, written) in [(13, 3), (16, 16), (4096, 4095), (9, 0), (0, 0)] {
            let (held, at) = Held::fresh(len);
            for i in 0..written {
                // SAFETY: `at` has room for `len` bytes and `written <= len` (as libfabric writes).
                unsafe { at.add(i).write(0xA0 | (i % 16) as u8) };
            }
            let Buffer::Payload(p) = held.finish(written) else { panic!("a fresh buffer finishes as a payload") };
            assert_eq!(p.len(), len);
            for (i, &b) in p.as_bytes().iter().enumerate() {
                assert_eq!(
                    b,
                    if i < written { 0xA0 | (i % 16) as u8 } else { 0 },
                    "byte {i} of {len} ({written} written)"
                );
            }
        }
    }

    /// A pooled receive becomes a payload of exactly the bytes that arrived, however
    /// large its room (invariant 10).
    #[test]
    fn a_pooled_buffer_becomes_exactly_what_arrived() {
        for written in [0, 1, 13, 4097, 65536] {
            let (held, at) = Held::fresh_exact(65536);
            for i in 0..written {
                // SAFETY: `at` has room for 65536 bytes and `written <= 65536`.
                unsafe { at.add(i).write((i % 251) as u8) };
            }
            let Buffer::Payload(p) = held.finish(written) else { panic!("a fresh buffer finishes as a payload") };
            assert_eq!(p.len(), written);
            assert!(p.as_bytes().iter().enumerate().all(|(i, &b)| b == (i % 251) as u8), "{written} bytes");
        }
    }
}
