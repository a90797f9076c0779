//! Every `unsafe` line of the MPI driver: nonblocking point-to-point operations that
//! own their buffers, receives posted ahead ([`Mailbox`]), matched probes, the
//! nonblocking all-to-all-v and all-reduce, a communicator's tag limit, and
//! [`Window`], a safe wrapper over MPI one-sided communication (RMA), which rsmpi does
//! not offer. Nothing outside this module calls `::mpi::ffi`.
//!
//! # Invariants (why the safe functions are safe)
//! 1. **Buffers outlive their requests.** Every nonblocking operation ([`SendOp`],
//!    [`RecvOp`], [`AllToAllV`], [`AllReduce`]) owns the heap buffers MPI reads or
//!    writes, and gives them back only once `MPI_Test` says the request completed.
//!    Moving the owning struct moves only the `Vec`/`Payload` handles, not the heap
//!    memory MPI was given.
//!    Dropping an operation that has not completed leaks its buffers on purpose
//!    (`mem::forget`) and frees the request handle, so MPI never writes into freed memory;
//!    a [`Mailbox`] instead cancels its receives and waits for them before freeing.
//! 2. **Counts fit a C `int`.** Lengths are checked against `c_int::MAX` before every
//!    call; a larger message is refused with a message saying so (split the chunk).
//! 3. **Window memory is never a Rust reference.** The bytes of a [`Window`] are
//!    allocated by MPI (`MPI_Win_allocate`) and touched only through raw pointer copies
//!    ([`Window::read_local`], [`Window::write_local`]), so a remote `put` landing while
//!    this rank reads is a wrong value at worst, never undefined behaviour in Rust.
//!    Origin buffers of `put`/`get` are owned by the window until the operation is
//!    complete (a flush, a fence or the end of the epoch).
//! 4. **RMA calls happen only inside an access epoch of the right kind**
//!    ([`Epoch`]), and remote offsets are checked against the target's window size
//!    (exchanged when the window was created), so MPI never sees an out-of-range access.
//! 5. **Handles are MPI's.** The communicator passed in (an rsmpi communicator's raw
//!    handle) outlives every operation started on it: the driver drops operations
//!    before the communicator.
//! 6. **One thread.** The driver asks for `MPI_THREAD_FUNNELED` and calls everything
//!    here from the thread that initialised MPI (its progress loop).
//!
//! MPI's default error handler (`MPI_ERRORS_ARE_FATAL`) aborts the job on any error, so
//! return codes are checked only to turn an impossible one into a clear panic.

#![allow(unsafe_code)]

use crate::collective::DType;
use crate::payload::Payload;
use ::mpi::ffi;
use std::ffi::c_void;
use std::mem::MaybeUninit;
use std::os::raw::c_int;
use std::ptr;

/// A raw communicator handle (from rsmpi's `AsRaw::as_raw`).
pub type RawComm = ffi::MPI_Comm;

fn ok(code: c_int, what: &str) {
    assert_eq!(code, ffi::MPI_SUCCESS as c_int, "{what} returned MPI error code {code}");
}

fn byte() -> ffi::MPI_Datatype {
    // SAFETY: reading an extern static that rsmpi's C shim initialises at load time.
    unsafe { ffi::RSMPI_UINT8_T }
}

fn request_null() -> ffi::MPI_Request {
    // SAFETY: as above.
    unsafe { ffi::RSMPI_REQUEST_NULL }
}

/// A length as a C `int` count, or an error naming the limit (invariant 2).
pub fn count(len: usize, what: &str) -> Result<c_int, String> {
    c_int::try_from(len).map_err(|_| {
        format!("{what} of {len} bytes exceeds MPI's count limit of {} bytes; use smaller chunks", c_int::MAX)
    })
}

/// The largest tag the communicator accepts (`MPI_TAG_UB`, at least 32767 by the standard).
pub fn tag_ub(comm: RawComm) -> i32 {
    let mut value: *mut c_int = ptr::null_mut();
    let mut flag: c_int = 0;
    // SAFETY: MPI_TAG_UB's attribute value is a pointer to an int owned by MPI.
    unsafe {
        ok(
            ffi::MPI_Comm_get_attr(comm, ffi::MPI_TAG_UB as c_int, &mut value as *mut _ as *mut c_void, &mut flag),
            "MPI_Comm_get_attr(MPI_TAG_UB)",
        );
        if flag != 0 && !value.is_null() { *value } else { 32767 }
    }
}

/// Aborts every rank of the job with `code` (`MPI_Abort` on `MPI_COMM_WORLD`).
pub fn abort(code: i32) -> ! {
    // SAFETY: MPI_Abort takes any communicator; it does not return when MPI is initialised.
    unsafe {
        ffi::MPI_Abort(ffi::RSMPI_COMM_WORLD, code);
    }
    std::process::exit(code)
}

/// True once `MPI_Init` ran in this process (and `MPI_Finalize` did not).
pub fn initialized() -> bool {
    let (mut init, mut fin) = (0, 0);
    // SAFETY: both may be called at any time, even before MPI_Init.
    unsafe {
        ffi::MPI_Initialized(&mut init);
        ffi::MPI_Finalized(&mut fin);
    }
    init != 0 && fin == 0
}

/// Tests a request; true (and the handle nulled) when it completed.
fn test(req: &mut ffi::MPI_Request) -> bool {
    let mut flag: c_int = 0;
    // SAFETY: `req` is a live request or MPI_REQUEST_NULL (then MPI_Test sets flag).
    unsafe { ok(ffi::MPI_Test(req, &mut flag, ffi::RSMPI_STATUS_IGNORE), "MPI_Test") };
    flag != 0
}

/// Releases an unfinished request whose buffers the caller leaks (invariant 1).
fn abandon(req: &mut ffi::MPI_Request) {
    if *req != request_null() {
        // SAFETY: frees the handle only; the operation may still complete into leaked memory.
        unsafe { ffi::MPI_Request_free(req) };
    }
}

/// Bytes a send reads from: a byte buffer or a chunk's payload.
#[derive(Debug)]
pub enum SendBuf {
    /// Serialized headers and small payloads.
    Bytes(Vec<u8>),
    /// A chunk sent without a copy.
    Payload(Payload),
}

impl SendBuf {
    fn as_bytes(&self) -> &[u8] {
        match self {
            SendBuf::Bytes(b) => b,
            SendBuf::Payload(p) => p.as_bytes(),
        }
    }
}

/// A nonblocking send that owns its buffer (`MPI_Isend`).
#[derive(Debug)]
pub struct SendOp {
    req: ffi::MPI_Request,
    buf: Option<SendBuf>,
}

impl SendOp {
    /// Starts sending `buf` to `dest` with `tag`.
    pub fn start(comm: RawComm, dest: i32, tag: i32, buf: SendBuf) -> Result<SendOp, String> {
        let bytes = buf.as_bytes();
        let n = count(bytes.len(), "a message")?;
        let mut req = request_null();
        // SAFETY: the buffer is owned by the returned SendOp until the request completes.
        unsafe { ok(ffi::MPI_Isend(bytes.as_ptr().cast(), n, byte(), dest, tag, comm, &mut req), "MPI_Isend") };
        Ok(SendOp { req, buf: Some(buf) })
    }

    /// True once the send completed (its buffer is then released).
    pub fn test(&mut self) -> bool {
        if self.buf.is_none() {
            return true;
        }
        if test(&mut self.req) {
            self.buf = None;
            return true;
        }
        false
    }
}

impl Drop for SendOp {
    fn drop(&mut self) {
        if let Some(buf) = self.buf.take() {
            abandon(&mut self.req);
            std::mem::forget(buf);
        }
    }
}

/// A nonblocking receive into a chunk's payload (`MPI_Irecv`).
///
/// A payload of whole `f64`s (most chunks) is received into memory that is allocated but
/// not zeroed, saving a pass over it; the request completes only once MPI wrote exactly
/// `len` bytes (checked with `MPI_Get_count`), so no uninitialised byte is ever read.
#[derive(Debug)]
pub struct RecvOp {
    req: ffi::MPI_Request,
    len: usize,
    buf: Option<RecvBuf>,
}

#[derive(Debug)]
enum RecvBuf {
    /// `len / 8` values of capacity, length 0 until the receive completed.
    Words(Vec<f64>),
    /// Any length, zeroed first.
    Bytes(Payload),
}

impl RecvOp {
    /// Starts receiving exactly `len` bytes from `source` with `tag`.
    pub fn start(comm: RawComm, source: i32, tag: i32, len: usize) -> Result<RecvOp, String> {
        let n = count(len, "a message")?;
        let mut buf = if len.is_multiple_of(8) {
            RecvBuf::Words(Vec::with_capacity(len / 8))
        } else {
            RecvBuf::Bytes(Payload::zeroed(len))
        };
        let ptr: *mut c_void = match &mut buf {
            RecvBuf::Words(v) => v.as_mut_ptr().cast(),
            RecvBuf::Bytes(p) => p.as_bytes_mut().as_mut_ptr().cast(),
        };
        let mut req = request_null();
        // SAFETY: `ptr` points at `len` writable bytes (capacity or zeroed payload) owned
        // by the RecvOp until the request completes (invariant 1).
        unsafe { ok(ffi::MPI_Irecv(ptr, n, byte(), source, tag, comm, &mut req), "MPI_Irecv") };
        Ok(RecvOp { req, len, buf: Some(buf) })
    }

    /// The received bytes once the receive completed, or an error if the message was
    /// shorter than announced.
    pub fn test(&mut self) -> Result<Option<Payload>, String> {
        if self.buf.is_none() {
            return Ok(None);
        }
        let mut flag: c_int = 0;
        let mut status = MaybeUninit::<ffi::MPI_Status>::uninit();
        // SAFETY: a live request; MPI writes the status when it reports completion.
        let status = unsafe {
            ok(ffi::MPI_Test(&mut self.req, &mut flag, status.as_mut_ptr()), "MPI_Test");
            if flag == 0 {
                return Ok(None);
            }
            status.assume_init()
        };
        let mut got: c_int = 0;
        // SAFETY: a status MPI filled in for a completed receive.
        unsafe { ok(ffi::MPI_Get_count(&status, byte(), &mut got), "MPI_Get_count") };
        let buf = self.buf.take().expect("checked above");
        if got as usize != self.len {
            return Err(format!("a payload announced as {} bytes arrived with {got}", self.len));
        }
        Ok(Some(match buf {
            RecvBuf::Words(mut v) => {
                // SAFETY: MPI wrote all `len` = 8 * capacity bytes (count checked above).
                unsafe { v.set_len(self.len / 8) };
                Payload::from_f64(v)
            }
            RecvBuf::Bytes(p) => p,
        }))
    }
}

impl Drop for RecvOp {
    fn drop(&mut self) {
        if let Some(buf) = self.buf.take() {
            abandon(&mut self.req);
            std::mem::forget(buf);
        }
    }
}

/// Receives of small messages from any source on one tag, posted ahead of time
/// (`MPI_Irecv` into fixed buffers) so an arriving message lands straight in one:
/// cheaper than a matched probe, which leaves the message in MPI's unexpected queue
/// first. Receives are posted and completed in ring order; MPI's non-overtaking rule
/// matches messages of one source to them in sending order, so taking them in that
/// order keeps each source's messages in order.
#[derive(Debug)]
pub struct Mailbox {
    comm: RawComm,
    tag: i32,
    /// Posted receives in posting order (the front is tested first).
    slots: std::collections::VecDeque<Slot>,
    /// Receives whose message was taken, to post again ([`Mailbox::rearm`]).
    taken: Vec<Slot>,
    capacity: c_int,
}

#[derive(Debug)]
struct Slot {
    req: ffi::MPI_Request,
    buf: Box<[u8]>,
}

impl Mailbox {
    /// Posts `depth` receives of up to `capacity` bytes each; a longer message on `tag`
    /// is an error (MPI's truncation), so senders must keep under it.
    pub fn post(comm: RawComm, tag: i32, depth: usize, capacity: usize) -> Result<Mailbox, String> {
        let capacity = count(capacity, "a mailbox slot")?;
        let slots = std::collections::VecDeque::with_capacity(depth);
        let mut mailbox = Mailbox { comm, tag, slots, taken: Vec::with_capacity(depth), capacity };
        for _ in 0..depth.max(1) {
            let slot = Slot { req: request_null(), buf: vec![0u8; capacity as usize].into_boxed_slice() };
            mailbox.repost(slot);
        }
        Ok(mailbox)
    }

    fn repost(&mut self, mut slot: Slot) {
        let ptr: *mut c_void = slot.buf.as_mut_ptr().cast();
        // SAFETY: the slot's buffer has `capacity` writable bytes and stays owned by the
        // mailbox, at a stable heap address, until the request completes or is cancelled
        // (invariant 1).
        unsafe {
            ok(
                ffi::MPI_Irecv(ptr, self.capacity, byte(), ffi::RSMPI_ANY_SOURCE, self.tag, self.comm, &mut slot.req),
                "MPI_Irecv",
            )
        };
        self.slots.push_back(slot);
    }

    /// Hands the oldest posted receive's message, if it arrived, to `read` as
    /// `(source, bytes)`; [`Mailbox::rearm`] posts that receive again.
    pub fn try_next<R>(&mut self, read: impl FnOnce(i32, &[u8]) -> R) -> Option<R> {
        let front = self.slots.front_mut()?;
        let mut flag: c_int = 0;
        let mut status = MaybeUninit::<ffi::MPI_Status>::uninit();
        // SAFETY: a live request; MPI writes the status when it reports completion.
        let status = unsafe {
            ok(ffi::MPI_Test(&mut front.req, &mut flag, status.as_mut_ptr()), "MPI_Test");
            if flag == 0 {
                return None;
            }
            status.assume_init()
        };
        let mut n: c_int = 0;
        // SAFETY: a status MPI filled in for a completed receive.
        unsafe { ok(ffi::MPI_Get_count(&status, byte(), &mut n), "MPI_Get_count") };
        let slot = self.slots.pop_front().expect("tested above");
        let out = read(status.MPI_SOURCE, &slot.buf[..n.max(0) as usize]);
        self.taken.push(slot);
        Some(out)
    }

    /// Posts again the receives whose messages were taken (call it once the messages are
    /// handled: posting is then off the critical path). Until then, messages that find no
    /// posted receive wait in MPI's unexpected queue and match when it is posted.
    pub fn rearm(&mut self) {
        while let Some(slot) = self.taken.pop() {
            self.repost(slot);
        }
    }
}

impl Drop for Mailbox {
    /// Cancels the posted receives and waits for each to end (cancelled, or completed by
    /// a message nobody will read), so MPI holds no pointer into the buffers freed next.
    fn drop(&mut self) {
        for slot in &mut self.slots {
            // SAFETY: a live receive request; after MPI_Wait returns MPI no longer uses the buffer.
            unsafe {
                ok(ffi::MPI_Cancel(&mut slot.req), "MPI_Cancel");
                ok(ffi::MPI_Wait(&mut slot.req, ffi::RSMPI_STATUS_IGNORE), "MPI_Wait");
            }
        }
    }
}

/// Receives one message with `tag` from any source if one has arrived
/// (`MPI_Improbe` then `MPI_Mrecv` of exactly that message): `(source, bytes)`.
pub fn try_receive(comm: RawComm, tag: i32) -> Option<(i32, Vec<u8>)> {
    let mut flag: c_int = 0;
    // SAFETY: MPI_MESSAGE_NULL is a valid initial handle; status is written by MPI.
    unsafe {
        let mut msg = ffi::RSMPI_MESSAGE_NULL;
        let mut status = MaybeUninit::<ffi::MPI_Status>::uninit();
        ok(ffi::MPI_Improbe(ffi::RSMPI_ANY_SOURCE, tag, comm, &mut flag, &mut msg, status.as_mut_ptr()), "MPI_Improbe");
        if flag == 0 {
            return None;
        }
        let status = status.assume_init();
        let mut n: c_int = 0;
        ok(ffi::MPI_Get_count(&status, byte(), &mut n), "MPI_Get_count");
        let mut buf = vec![0u8; n.max(0) as usize];
        // The matched message is received into a buffer of exactly its size.
        ok(ffi::MPI_Mrecv(buf.as_mut_ptr().cast(), n, byte(), &mut msg, ffi::RSMPI_STATUS_IGNORE), "MPI_Mrecv");
        Some((status.MPI_SOURCE, buf))
    }
}

/// A nonblocking all-to-all-v of bytes, in two steps: the counts (`MPI_Ialltoall`),
/// then the data (`MPI_Ialltoallv`). Every rank of the communicator must start the same
/// sequence of these, one completing before the next starts.
#[derive(Debug)]
pub struct AllToAllV {
    comm: RawComm,
    req: ffi::MPI_Request,
    step: Step,
    send: Vec<u8>,
    send_counts: Vec<c_int>,
    send_displs: Vec<c_int>,
    recv_counts: Vec<c_int>,
    recv_displs: Vec<c_int>,
    recv: Vec<u8>,
}

#[derive(Debug, PartialEq, Eq)]
enum Step {
    Counts,
    Data,
    Done,
}

impl AllToAllV {
    /// Starts sending `send[displacement r .. + counts[r]]` to rank `r` (one count per
    /// rank of the communicator; the parts packed in rank order, as the caller wrote
    /// them into one buffer: no copy here).
    pub fn start(comm: RawComm, send: Vec<u8>, counts: &[usize]) -> Result<AllToAllV, String> {
        let n = counts.len();
        let total: usize = counts.iter().sum();
        if total != send.len() {
            return Err(format!("an all-to-all-v of {} bytes whose parts count {total}", send.len()));
        }
        count(total, "one rank's all-to-all-v contribution")?;
        let (mut send_counts, mut send_displs) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let mut at = 0;
        for &c in counts {
            send_displs.push(at as c_int);
            send_counts.push(c as c_int);
            at += c;
        }
        let mut op = AllToAllV {
            comm,
            req: request_null(),
            step: Step::Counts,
            send,
            send_counts,
            send_displs,
            recv_counts: vec![0; n],
            recv_displs: vec![0; n],
            recv: Vec::new(),
        };
        // SAFETY: the count arrays live in `op` (heap) until the request completes.
        unsafe {
            ok(
                ffi::MPI_Ialltoall(
                    op.send_counts.as_ptr().cast(),
                    1,
                    ffi::RSMPI_INT32_T,
                    op.recv_counts.as_mut_ptr().cast(),
                    1,
                    ffi::RSMPI_INT32_T,
                    comm,
                    &mut op.req,
                ),
                "MPI_Ialltoall",
            )
        };
        Ok(op)
    }

    /// Advances the exchange; once it is complete, what each rank sent to this one: one
    /// buffer and, per rank, the range of it that rank sent (read in place, not copied out).
    pub fn test(&mut self) -> Result<Option<Received>, String> {
        if self.step == Step::Done || !test(&mut self.req) {
            return Ok(None);
        }
        match self.step {
            Step::Counts => {
                let mut at = 0usize;
                for (d, &c) in self.recv_displs.iter_mut().zip(&self.recv_counts) {
                    *d = count(at, "an all-to-all-v receive")?;
                    at += c as usize;
                }
                count(at, "an all-to-all-v receive")?;
                self.recv = vec![0; at];
                self.step = Step::Data;
                // SAFETY: all six buffers live in `self` until the request completes.
                unsafe {
                    ok(
                        ffi::MPI_Ialltoallv(
                            self.send.as_ptr().cast(),
                            self.send_counts.as_ptr(),
                            self.send_displs.as_ptr(),
                            byte(),
                            self.recv.as_mut_ptr().cast(),
                            self.recv_counts.as_ptr(),
                            self.recv_displs.as_ptr(),
                            byte(),
                            self.comm,
                            &mut self.req,
                        ),
                        "MPI_Ialltoallv",
                    )
                };
                Ok(None)
            }
            Step::Data => {
                self.step = Step::Done;
                let parts = self
                    .recv_counts
                    .iter()
                    .zip(&self.recv_displs)
                    .map(|(&c, &d)| d as usize..(d + c) as usize)
                    .collect();
                Ok(Some(Received { bytes: std::mem::take(&mut self.recv), parts }))
            }
            Step::Done => Ok(None),
        }
    }
}

/// What an [`AllToAllV`] received: every rank's part in one buffer.
#[derive(Debug)]
pub struct Received {
    /// The receive buffer.
    pub bytes: Vec<u8>,
    /// Per rank of the communicator, where its part lies in `bytes`.
    pub parts: Vec<std::ops::Range<usize>>,
}

impl Received {
    /// The part rank `r` sent.
    pub fn part(&self, r: usize) -> &[u8] {
        &self.bytes[self.parts[r].clone()]
    }
}

impl Drop for AllToAllV {
    fn drop(&mut self) {
        if self.step != Step::Done {
            abandon(&mut self.req);
            std::mem::forget(std::mem::take(&mut self.send));
            std::mem::forget(std::mem::take(&mut self.send_counts));
            std::mem::forget(std::mem::take(&mut self.recv_counts));
            std::mem::forget(std::mem::take(&mut self.send_displs));
            std::mem::forget(std::mem::take(&mut self.recv_displs));
            std::mem::forget(std::mem::take(&mut self.recv));
        }
    }
}

/// A nonblocking element-wise sum over every rank of a communicator
/// (`MPI_Iallreduce` with `MPI_SUM` on `MPI_DOUBLE` or `MPI_FLOAT`), from the vector's
/// own buffer into one of its own. Every rank of the communicator must start the same
/// sequence of collectives on it.
#[derive(Debug)]
pub struct AllReduce {
    req: ffi::MPI_Request,
    /// Read by MPI until the request completes (invariant 1).
    send: Option<Payload>,
    /// Written by MPI until the request completes; `None` once handed out.
    recv: Option<Payload>,
}

impl AllReduce {
    /// Starts summing `data`, a vector of whole `dtype` elements (the same length on
    /// every rank).
    pub fn start(comm: RawComm, data: Payload, dtype: DType) -> Result<AllReduce, String> {
        if !data.len().is_multiple_of(dtype.size()) || data.is_phantom() {
            return Err(format!(
                "an all-reduce over {} of {} bytes: not a whole number of elements",
                dtype.name(),
                data.len()
            ));
        }
        let n = count(data.len() / dtype.size(), "an all-reduce vector's elements")?;
        // SAFETY: extern statics rsmpi's C shim initialises at load time.
        let (datatype, sum) = unsafe {
            (
                match dtype {
                    DType::F64 => ffi::RSMPI_DOUBLE,
                    DType::F32 => ffi::RSMPI_FLOAT,
                },
                ffi::RSMPI_SUM,
            )
        };
        let mut recv = Payload::zeroed(data.len());
        let recv_ptr: *mut c_void = recv.as_bytes_mut().as_mut_ptr().cast();
        let send_ptr: *const c_void = data.as_bytes().as_ptr().cast();
        let mut req = request_null();
        // SAFETY: both buffers hold `n` elements and are owned by the returned AllReduce
        // (heap memory that moving it does not move) until the request completes; the
        // receive buffer is this payload's alone, so nothing else writes it.
        unsafe { ok(ffi::MPI_Iallreduce(send_ptr, recv_ptr, n, datatype, sum, comm, &mut req), "MPI_Iallreduce") };
        Ok(AllReduce { req, send: Some(data), recv: Some(recv) })
    }

    /// The sum once every rank's vector is in, once.
    pub fn test(&mut self) -> Option<Payload> {
        if self.recv.is_none() || !test(&mut self.req) {
            return None;
        }
        self.send = None;
        self.recv.take()
    }
}

impl Drop for AllReduce {
    fn drop(&mut self) {
        if self.recv.is_some() {
            abandon(&mut self.req);
            std::mem::forget(self.send.take());
            std::mem::forget(self.recv.take());
        }
    }
}

/// A nonblocking barrier (`MPI_Ibarrier`): the driver runs one before each window
/// fence, so no rank blocks in `MPI_Win_fence` while a peer still needs its progress.
#[derive(Debug)]
pub struct IBarrier {
    req: ffi::MPI_Request,
    done: bool,
}

impl IBarrier {
    /// Enters the barrier.
    pub fn start(comm: RawComm) -> IBarrier {
        let mut req = request_null();
        // SAFETY: no buffers; the communicator outlives the request (invariant 5).
        unsafe { ok(ffi::MPI_Ibarrier(comm, &mut req), "MPI_Ibarrier") };
        IBarrier { req, done: false }
    }

    /// True once every rank entered the barrier.
    pub fn test(&mut self) -> bool {
        if !self.done {
            self.done = test(&mut self.req);
        }
        self.done
    }
}

impl Drop for IBarrier {
    fn drop(&mut self) {
        if !self.done {
            abandon(&mut self.req);
        }
    }
}

/// Which kind of access epoch a [`Window`] is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Epoch {
    /// No epoch: only local reads and writes, [`Window::fence`] or [`Window::lock_all`].
    None,
    /// Active target: between two [`Window::fence`]s (every rank takes part in each).
    Fence,
    /// Passive target: between [`Window::lock_all`] and [`Window::unlock_all`] (shared
    /// locks on every rank; [`Window::flush`] completes operations without ending it).
    LockAll,
}

/// A misuse of a [`Window`] that MPI would not have caught (or would have crashed on).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    /// An access outside the target's window.
    #[error(
        "{op} of {len} bytes at offset {offset} of rank {target}'s window is out of range: the window holds {size} bytes"
    )]
    OutOfRange {
        /// `put`, `get`, `read_local` or `write_local`.
        op: &'static str,
        /// Target rank.
        target: usize,
        /// Offset asked for.
        offset: usize,
        /// Bytes asked for.
        len: usize,
        /// The target window's size.
        size: usize,
    },
    /// An operation outside the epoch it needs.
    #[error("{op} needs {needs}, but the window is in epoch {current:?}")]
    WrongEpoch {
        /// The operation.
        op: &'static str,
        /// What it needs.
        needs: &'static str,
        /// The epoch the window is in.
        current: Epoch,
    },
    /// A size or count above MPI's `int` limit.
    #[error("{0}")]
    TooLarge(String),
}

/// A ticket for a [`Window::get`]: redeem it with [`Window::take_get`] once the
/// operation is complete (after a flush, a fence or `unlock_all`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GetId(u64);

/// An MPI RMA window over `bytes` bytes of MPI-allocated memory on every rank of a
/// communicator, with puts and gets checked against each target's size and the
/// epoch rules (see the module invariants 3 and 4).
///
/// Creating and freeing a window are collective: every rank of the communicator calls
/// [`Window::allocate`] (sizes may differ), and every rank drops it.
#[derive(Debug)]
pub struct Window {
    win: ffi::MPI_Win,
    base: *mut u8,
    sizes: Vec<usize>,
    rank: usize,
    epoch: Epoch,
    /// Origin buffers of puts not yet known complete, with their target (invariant 3).
    puts: Vec<(usize, Vec<u8>)>,
    /// Destination buffers of gets not yet known complete.
    gets: Vec<(GetId, usize, Vec<u8>)>,
    /// Completed gets, by ticket.
    done: Vec<(GetId, Vec<u8>)>,
    next_get: u64,
}

impl Window {
    /// Collectively allocates a window of `bytes` (zeroed) on this rank of `comm`.
    pub fn allocate(comm: RawComm, bytes: usize) -> Result<Window, WindowError> {
        let (mut rank, mut size) = (0, 0);
        let mut win = MaybeUninit::<ffi::MPI_Win>::uninit();
        let mut base: *mut u8 = ptr::null_mut();
        let my_size = bytes as u64;
        // SAFETY: MPI writes the new window and its base pointer; sizes are exchanged
        // with a blocking allgather into a buffer of one u64 per rank.
        unsafe {
            ok(ffi::MPI_Comm_rank(comm, &mut rank), "MPI_Comm_rank");
            ok(ffi::MPI_Comm_size(comm, &mut size), "MPI_Comm_size");
            let mut sizes = vec![0u64; size as usize];
            ok(
                ffi::MPI_Allgather(
                    (&my_size as *const u64).cast(),
                    1,
                    ffi::RSMPI_UINT64_T,
                    sizes.as_mut_ptr().cast(),
                    1,
                    ffi::RSMPI_UINT64_T,
                    comm,
                ),
                "MPI_Allgather",
            );
            ok(
                ffi::MPI_Win_allocate(
                    bytes as ffi::MPI_Aint,
                    1,
                    ffi::RSMPI_INFO_NULL,
                    comm,
                    (&mut base as *mut *mut u8).cast(),
                    win.as_mut_ptr(),
                ),
                "MPI_Win_allocate",
            );
            if bytes > 0 {
                ptr::write_bytes(base, 0, bytes);
            }
            // No rank may access a window before its owner zeroed it.
            ok(ffi::MPI_Barrier(comm), "MPI_Barrier");
            Ok(Window {
                win: win.assume_init(),
                base,
                sizes: sizes.into_iter().map(|s| s as usize).collect(),
                rank: rank as usize,
                epoch: Epoch::None,
                puts: Vec::new(),
                gets: Vec::new(),
                done: Vec::new(),
                next_get: 0,
            })
        }
    }

    /// Bytes of `rank`'s window.
    pub fn size_of(&self, rank: usize) -> usize {
        self.sizes[rank]
    }

    /// The epoch the window is in.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    fn check_range(&self, op: &'static str, target: usize, offset: usize, len: usize) -> Result<(), WindowError> {
        let size = *self.sizes.get(target).unwrap_or(&0);
        if target >= self.sizes.len() || offset.checked_add(len).is_none_or(|end| end > size) {
            return Err(WindowError::OutOfRange { op, target, offset, len, size });
        }
        Ok(())
    }

    fn check_access(&self, op: &'static str) -> Result<(), WindowError> {
        match self.epoch {
            Epoch::None => {
                Err(WindowError::WrongEpoch { op, needs: "an access epoch (fence or lock_all)", current: self.epoch })
            }
            _ => Ok(()),
        }
    }

    /// Copies `data` into this rank's own window at `offset`. Remote ranks see it after
    /// the next fence (or, in a lock_all epoch, once they synchronise with this rank).
    pub fn write_local(&mut self, offset: usize, data: &[u8]) -> Result<(), WindowError> {
        self.check_range("write_local", self.rank, offset, data.len())?;
        // SAFETY: in range (checked); window memory is only touched by raw copies (invariant 3).
        unsafe {
            if self.epoch == Epoch::LockAll {
                ffi::MPI_Win_sync(self.win);
            }
            ptr::copy_nonoverlapping(data.as_ptr(), self.base.add(offset), data.len());
        }
        Ok(())
    }

    /// Copies `out.len()` bytes of this rank's own window at `offset` into `out`.
    pub fn read_local(&mut self, offset: usize, out: &mut [u8]) -> Result<(), WindowError> {
        self.check_range("read_local", self.rank, offset, out.len())?;
        // SAFETY: as in write_local; MPI_Win_sync makes remote puts visible in a passive epoch.
        unsafe {
            if self.epoch == Epoch::LockAll {
                ffi::MPI_Win_sync(self.win);
            }
            ptr::copy_nonoverlapping(self.base.add(offset), out.as_mut_ptr(), out.len());
        }
        Ok(())
    }

    /// Starts writing `data` into `target`'s window at `offset`. The window keeps the
    /// bytes until the put is complete; it is visible at the target after the next
    /// fence, or after [`Window::flush`] in a lock_all epoch.
    pub fn put(&mut self, target: usize, offset: usize, data: Vec<u8>) -> Result<(), WindowError> {
        self.check_access("put")?;
        self.check_range("put", target, offset, data.len())?;
        let n = count(data.len(), "a put").map_err(WindowError::TooLarge)?;
        // SAFETY: in range and in an epoch (checked); `data` stays in self.puts until completion.
        unsafe {
            ok(
                ffi::MPI_Put(
                    data.as_ptr().cast(),
                    n,
                    byte(),
                    target as c_int,
                    offset as ffi::MPI_Aint,
                    n,
                    byte(),
                    self.win,
                ),
                "MPI_Put",
            )
        };
        self.puts.push((target, data));
        Ok(())
    }

    /// Starts reading `len` bytes of `target`'s window at `offset`; the bytes are ready
    /// with [`Window::take_get`] after the next flush, fence or `unlock_all`.
    pub fn get(&mut self, target: usize, offset: usize, len: usize) -> Result<GetId, WindowError> {
        self.check_access("get")?;
        self.check_range("get", target, offset, len)?;
        let n = count(len, "a get").map_err(WindowError::TooLarge)?;
        let mut buf = vec![0u8; len];
        // SAFETY: in range and in an epoch; `buf` stays in self.gets until completion.
        unsafe {
            ok(
                ffi::MPI_Get(
                    buf.as_mut_ptr().cast(),
                    n,
                    byte(),
                    target as c_int,
                    offset as ffi::MPI_Aint,
                    n,
                    byte(),
                    self.win,
                ),
                "MPI_Get",
            )
        };
        let id = GetId(self.next_get);
        self.next_get += 1;
        self.gets.push((id, target, buf));
        Ok(id)
    }

    /// The bytes of a completed get (each ticket once); `None` while it may still run.
    pub fn take_get(&mut self, id: GetId) -> Option<Vec<u8>> {
        let at = self.done.iter().position(|(d, _)| *d == id)?;
        Some(self.done.swap_remove(at).1)
    }

    /// Marks every operation toward `target` (all targets for `None`) as complete.
    fn completed(&mut self, target: Option<usize>) {
        self.puts.retain(|(t, _)| target.is_some_and(|x| x != *t));
        let (done, pending): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.gets).into_iter().partition(|(_, t, _)| target.is_none_or(|x| x == *t));
        self.gets = pending;
        self.done.extend(done.into_iter().map(|(id, _, buf)| (id, buf)));
    }

    /// Collective: ends the current fence epoch (completing every put and get of every
    /// rank) and starts the next one. The first fence starts the first epoch.
    pub fn fence(&mut self) -> Result<(), WindowError> {
        if self.epoch == Epoch::LockAll {
            return Err(WindowError::WrongEpoch { op: "fence", needs: "no lock_all epoch", current: self.epoch });
        }
        // SAFETY: a live window, not in a passive epoch (checked).
        unsafe { ok(ffi::MPI_Win_fence(0, self.win), "MPI_Win_fence") };
        self.completed(None);
        self.epoch = Epoch::Fence;
        Ok(())
    }

    /// Starts a passive-target epoch toward every rank (shared locks, `MPI_MODE_NOCHECK`
    /// is not assumed). Ends a fence epoch first if one is open (collectively).
    pub fn lock_all(&mut self) -> Result<(), WindowError> {
        match self.epoch {
            Epoch::LockAll => {
                return Err(WindowError::WrongEpoch {
                    op: "lock_all",
                    needs: "no lock_all epoch",
                    current: self.epoch,
                });
            }
            Epoch::Fence => {
                // SAFETY: closes the fence sequence; no RMA call may follow until the lock.
                unsafe { ok(ffi::MPI_Win_fence(ffi::MPI_MODE_NOSUCCEED as c_int, self.win), "MPI_Win_fence") };
                self.completed(None);
            }
            Epoch::None => {}
        }
        // SAFETY: a live window outside any epoch.
        unsafe { ok(ffi::MPI_Win_lock_all(0, self.win), "MPI_Win_lock_all") };
        self.epoch = Epoch::LockAll;
        Ok(())
    }

    /// Completes every operation toward `target` (at origin and target) without ending
    /// the lock_all epoch.
    pub fn flush(&mut self, target: usize) -> Result<(), WindowError> {
        if self.epoch != Epoch::LockAll {
            return Err(WindowError::WrongEpoch { op: "flush", needs: "a lock_all epoch", current: self.epoch });
        }
        self.check_range("flush", target, 0, 0)?;
        // SAFETY: a live window in a passive epoch; the target is a rank of it.
        unsafe { ok(ffi::MPI_Win_flush(target as c_int, self.win), "MPI_Win_flush") };
        self.completed(Some(target));
        Ok(())
    }

    /// Completes every operation toward every rank without ending the lock_all epoch.
    pub fn flush_all(&mut self) -> Result<(), WindowError> {
        if self.epoch != Epoch::LockAll {
            return Err(WindowError::WrongEpoch { op: "flush_all", needs: "a lock_all epoch", current: self.epoch });
        }
        // SAFETY: a live window in a passive epoch.
        unsafe { ok(ffi::MPI_Win_flush_all(self.win), "MPI_Win_flush_all") };
        self.completed(None);
        Ok(())
    }

    /// Ends the lock_all epoch, completing every operation.
    pub fn unlock_all(&mut self) -> Result<(), WindowError> {
        if self.epoch != Epoch::LockAll {
            return Err(WindowError::WrongEpoch { op: "unlock_all", needs: "a lock_all epoch", current: self.epoch });
        }
        // SAFETY: a live window in a passive epoch.
        unsafe { ok(ffi::MPI_Win_unlock_all(self.win), "MPI_Win_unlock_all") };
        self.completed(None);
        self.epoch = Epoch::None;
        Ok(())
    }
}

impl Drop for Window {
    /// Collective, like `MPI_Win_free`: ends an open epoch (completing its operations)
    /// and frees the window and its memory. While the thread panics it does nothing
    /// (the peers may never join; the job is about to be aborted) and leaks the window.
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        // SAFETY: a live window; after MPI_Win_free no pointer into it is used again.
        unsafe {
            match self.epoch {
                Epoch::LockAll => {
                    ffi::MPI_Win_unlock_all(self.win);
                }
                Epoch::Fence => {
                    ffi::MPI_Win_fence(ffi::MPI_MODE_NOSUCCEED as c_int, self.win);
                }
                Epoch::None => {}
            }
            ffi::MPI_Win_free(&mut self.win);
        }
    }
}
