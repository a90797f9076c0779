//! Byte layouts the MPI and libfabric drivers put on the wire: engine messages (a fixed header, then
//! the payload inline or as a separate message), lists of messages (collective
//! contributions), and a rank's trace and results (gathered to rank 0). All integers are
//! little-endian; a decoder that finds the bytes inconsistent says so instead of guessing.

use crate::ids::{ChunkId, KernelId, Rank, TaskId};
use crate::message::{Message, MessageClass};
use crate::one_sided::MemoryKey;
use crate::payload::Payload;
use crate::trace::{ChunkSize, MessageRecord, Phase, TaskRecord, Trace, TransferEvent};
use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

/// Bytes of a message header (its last 24 hold an exposed memory key, when flagged).
pub const HEADER: usize = 64;

/// Third header byte: the header carries a memory key.
const KEYED: u8 = 1;

/// The header says a payload follows in the same buffer.
const INLINE: u8 = 1;
/// The header says a payload follows as its own message on the header's data tag.
const SEPARATE: u8 = 2;

/// A decoded message header.
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    /// The message without its payload.
    pub msg: Message,
    /// Payload bytes, if any.
    pub len: u64,
    /// Tag of the separate payload message, when there is one.
    pub data_tag: Option<i32>,
}

/// Appends the header of `msg` with payload length `len`; `data_tag` marks a payload
/// sent separately, otherwise a payload (if any) follows inline.
pub fn put_header(out: &mut Vec<u8>, msg: &Message, len: u64, data_tag: Option<i32>) {
    let flags = match (&msg.payload, data_tag) {
        (None, _) => 0,
        (Some(_), None) => INLINE,
        (Some(_), Some(_)) => SEPARATE,
    };
    out.extend_from_slice(&[msg.op, flags, if msg.key.is_some() { KEYED } else { 0 }, 0]);
    out.extend_from_slice(&msg.chunk.0.to_le_bytes());
    out.extend_from_slice(&msg.arg.to_le_bytes());
    out.extend_from_slice(&msg.sent_ns.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(data_tag.unwrap_or(0) as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    let key = msg.key.unwrap_or_default();
    for w in [key.addr, key.key, key.len] {
        out.extend_from_slice(&w.to_le_bytes());
    }
}

/// Reads a header at the start of `bytes`.
pub fn get_header(bytes: &[u8]) -> Result<Header, String> {
    if bytes.len() < HEADER {
        return Err(format!("a message of {} bytes is shorter than its {HEADER}-byte header", bytes.len()));
    }
    let mut r = Reader { bytes, at: 4 };
    let (op, flags) = (bytes[0], bytes[1]);
    let chunk = ChunkId(r.u32()?);
    let arg = r.u64()?;
    let sent_ns = r.u64()?;
    let len = r.u64()?;
    let tag = r.u32()? as i32;
    r.u32()?;
    let key = MemoryKey { addr: r.u64()?, key: r.u64()?, len: r.u64()? };
    let key = match bytes[2] {
        0 => None,
        KEYED => Some(key),
        f => return Err(format!("unknown message key flag {f:#x} (a peer built from another version?)")),
    };
    let msg = Message { op, chunk, arg, sent_ns, payload: None, key };
    match flags {
        0 => Ok(Header { msg, len: 0, data_tag: None }),
        INLINE => Ok(Header { msg, len, data_tag: None }),
        SEPARATE => Ok(Header { msg, len, data_tag: Some(tag) }),
        f => Err(format!("unknown message flags {f:#x} (a peer built from another version?)")),
    }
}

/// One whole message with its payload inline (the mpi driver's; the libfabric driver
/// appends to its own prefix with [`append_inline`]).
#[cfg(any(test, feature = "mpi"))]
pub fn encode_inline(msg: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    append_inline(&mut out, msg);
    out
}

/// Appends one whole message with its payload inline to `out` (after whatever a
/// transport put before it).
pub fn append_inline(out: &mut Vec<u8>, msg: &Message) {
    let payload = msg.payload.as_ref().map(|p| p.as_bytes()).unwrap_or_default();
    out.reserve(HEADER + payload.len());
    put_header(out, msg, payload.len() as u64, None);
    out.extend_from_slice(payload);
}

/// The message in `bytes` (a header, then its inline payload if it has one). A
/// header announcing a separate payload comes back with `payload: None` and its tag.
pub fn decode(bytes: &[u8]) -> Result<Header, String> {
    let mut h = get_header(bytes)?;
    if bytes[1] == INLINE {
        let body = &bytes[HEADER..];
        if body.len() as u64 != h.len {
            return Err(format!("message header announces {} payload bytes, {} arrived", h.len, body.len()));
        }
        h.msg.payload = Some(Payload::from_bytes(body));
    }
    Ok(h)
}

/// Bytes [`put_messages`] appends for `messages`: a count, then a header and the
/// inline payload of each (so a caller sizes one buffer for several lists up front).
#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
pub fn messages_len(messages: &[Message]) -> usize {
    4 + messages.iter().map(|m| HEADER + m.payload.as_ref().map_or(0, |p| p.len())).sum::<usize>()
}

/// Appends a list of messages (a collective contribution) with their payloads inline.
#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
pub fn put_messages(out: &mut Vec<u8>, messages: &[Message]) {
    out.extend_from_slice(&(messages.len() as u32).to_le_bytes());
    for m in messages {
        let payload = m.payload.as_ref().map(|p| p.as_bytes()).unwrap_or_default();
        put_header(out, m, payload.len() as u64, None);
        out.extend_from_slice(payload);
    }
}

/// Reads a list written by [`put_messages`].
#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
pub fn get_messages(r: &mut Reader<'_>) -> Result<Vec<Message>, String> {
    let n = r.u32()? as usize;
    let mut out = Vec::with_capacity(n.min(1 << 16));
    for _ in 0..n {
        let h = get_header(r.take(HEADER)?)?;
        let mut msg = h.msg;
        if h.data_tag.is_some() {
            return Err("a collective contribution holds a message with a separate payload".into());
        }
        if r.bytes[r.at - HEADER + 1] == INLINE {
            msg.payload = Some(Payload::from_bytes(r.take(h.len as usize)?));
        }
        out.push(msg);
    }
    Ok(out)
}

/// Reads a list written by [`put_messages`] that must end the reader's bytes: bytes
/// after its last message are refused (a length or count the sender and receiver
/// disagree on), not ignored.
#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
pub fn get_last_messages(r: &mut Reader<'_>) -> Result<Vec<Message>, String> {
    let messages = get_messages(r)?;
    if !r.is_empty() {
        return Err(format!(
            "{} trailing bytes after the last of {} messages in a {}-byte buffer (a peer built from another \
             version?)",
            r.bytes.len() - r.at,
            messages.len(),
            r.bytes.len()
        ));
    }
    Ok(messages)
}

/// A cursor over received bytes.
pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// Reads `bytes` from the start.
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, at: 0 }
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or_else(|| {
            format!("truncated data: wanted {n} bytes at offset {}, only {} in all", self.at, self.bytes.len())
        })?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    /// A little-endian `u32`.
    pub fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    /// A little-endian `u64`.
    pub fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    /// A length-prefixed string.
    fn str(&mut self) -> Result<&'a str, String> {
        let n = self.u32()? as usize;
        std::str::from_utf8(self.take(n)?).map_err(|e| format!("a trace string is not UTF-8: {e}"))
    }

    /// True when every byte was read.
    pub fn is_empty(&self) -> bool {
        self.at == self.bytes.len()
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A `&'static str` for an operation name that arrived from another rank. Names come
/// from strategies' `op_name` tables, so the set is small; each distinct name is
/// leaked once.
fn intern(name: &str) -> &'static str {
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    if let Some(&n) = names.get(name) {
        return n;
    }
    let leaked: &'static str = Box::leak(name.to_string().into_boxed_str());
    names.insert(leaked);
    leaked
}

fn phase_code(p: Phase) -> u8 {
    match p {
        Phase::Posted => 0,
        Phase::Started => 1,
        Phase::Wire => 2,
        Phase::Completed => 3,
    }
}

fn phase_of(code: u8) -> Result<Phase, String> {
    Ok(match code {
        0 => Phase::Posted,
        1 => Phase::Started,
        2 => Phase::Wire,
        3 => Phase::Completed,
        c => return Err(format!("unknown transfer phase code {c}")),
    })
}

/// What a rank hands rank 0 at the end: its trace, its result chunks and when it ended.
pub fn encode_report(trace: &Trace, results: &[(ChunkId, Payload)], end_ns: u64) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&end_ns.to_le_bytes());
    out.extend_from_slice(&(trace.tasks.len() as u64).to_le_bytes());
    for t in &trace.tasks {
        for v in [t.task.0, t.kernel.0 as u32, t.rank.0, t.worker] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in [t.start_ns, t.end_ns, t.flops.to_bits()] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out.extend_from_slice(&(trace.messages.len() as u64).to_le_bytes());
    for m in &trace.messages {
        for v in [m.src.0, m.dst.0, m.chunk.0, (m.class == MessageClass::Data) as u32] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in [m.bytes, m.sent_ns, m.recv_ns] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        put_str(&mut out, m.kind);
    }
    out.extend_from_slice(&(trace.transfer_events.len() as u64).to_le_bytes());
    for e in &trace.transfer_events {
        for v in [e.chunk.0, e.src.0, e.dst.0, phase_code(e.phase) as u32] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&e.at_ns.to_le_bytes());
    }
    out.extend_from_slice(&(trace.sizes.len() as u64).to_le_bytes());
    for s in &trace.sizes {
        for v in [s.chunk.0, s.rank.0] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in [s.bytes, s.bound] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out.extend_from_slice(&(results.len() as u64).to_le_bytes());
    for (c, p) in results {
        out.extend_from_slice(&c.0.to_le_bytes());
        out.extend_from_slice(&(p.len() as u64).to_le_bytes());
        out.extend_from_slice(p.as_bytes());
    }
    out
}

/// A rank's report: trace, results, end time.
pub type Report = (Trace, Vec<(ChunkId, Payload)>, u64);

/// Reads what [`encode_report`] wrote.
pub fn decode_report(bytes: &[u8]) -> Result<Report, String> {
    let mut r = Reader::new(bytes);
    let end_ns = r.u64()?;
    let mut trace = Trace::default();
    for _ in 0..r.u64()? {
        let (task, kernel, rank, worker) = (r.u32()?, r.u32()?, r.u32()?, r.u32()?);
        let (start_ns, end_ns, flops) = (r.u64()?, r.u64()?, f64::from_bits(r.u64()?));
        trace.tasks.push(TaskRecord {
            task: TaskId(task),
            kernel: KernelId(kernel as u16),
            rank: Rank(rank),
            worker,
            start_ns,
            end_ns,
            flops,
        });
    }
    for _ in 0..r.u64()? {
        let (src, dst, chunk, data) = (r.u32()?, r.u32()?, r.u32()?, r.u32()?);
        let (bytes, sent_ns, recv_ns) = (r.u64()?, r.u64()?, r.u64()?);
        let kind = intern(r.str()?);
        let class = if data == 1 { MessageClass::Data } else { MessageClass::Control };
        trace.messages.push(MessageRecord {
            src: Rank(src),
            dst: Rank(dst),
            kind,
            class,
            bytes,
            chunk: ChunkId(chunk),
            sent_ns,
            recv_ns,
        });
    }
    for _ in 0..r.u64()? {
        let (chunk, src, dst, phase) = (r.u32()?, r.u32()?, r.u32()?, r.u32()?);
        let at_ns = r.u64()?;
        trace.transfer_events.push(TransferEvent {
            chunk: ChunkId(chunk),
            src: Rank(src),
            dst: Rank(dst),
            phase: phase_of(phase as u8)?,
            at_ns,
        });
    }
    for _ in 0..r.u64()? {
        let (chunk, rank, bytes, bound) = (r.u32()?, r.u32()?, r.u64()?, r.u64()?);
        trace.sizes.push(ChunkSize { chunk: ChunkId(chunk), rank: Rank(rank), bytes, bound });
    }
    let mut results = Vec::new();
    for _ in 0..r.u64()? {
        let chunk = ChunkId(r.u32()?);
        let len = r.u64()? as usize;
        results.push((chunk, Payload::from_bytes(r.take(len)?)));
    }
    if !r.is_empty() {
        return Err("a rank's report has trailing bytes".into());
    }
    Ok((trace, results, end_ns))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_inline_and_separate() {
        let data = Message { sent_ns: 77, arg: 5, ..Message::data(3, ChunkId(9), Payload::from_bytes(&[1, 2, 3])) };
        let h = decode(&encode_inline(&data)).unwrap();
        assert_eq!(h.msg, data);
        assert_eq!(h.data_tag, None);
        let ctrl = Message::control(1, ChunkId(2), u64::MAX);
        assert_eq!(decode(&encode_inline(&ctrl)).unwrap().msg, ctrl);
        let mut sep = Vec::new();
        put_header(&mut sep, &data, 1 << 30, Some(12345));
        let h = decode(&sep).unwrap();
        assert_eq!((h.len, h.data_tag, h.msg.payload), (1 << 30, Some(12345), None));
        assert!(decode(&sep[..10]).unwrap_err().contains("shorter"));
    }

    #[test]
    fn message_lists_round_trip() {
        let list = vec![
            Message::control(1, ChunkId(4), 8),
            Message::data(2, ChunkId(5), Payload::from_bytes(&[9; 17])),
            Message::data(2, ChunkId(6), Payload::zeroed(0)),
        ];
        let mut out = Vec::new();
        put_messages(&mut out, &list);
        let mut r = Reader::new(&out);
        assert_eq!(get_messages(&mut r).unwrap(), list);
        assert!(r.is_empty());
        assert_eq!(messages_len(&list), out.len());
        assert_eq!(messages_len(&[]), 4);
    }

    /// Lists packed one after another into one buffer sized by `messages_len` (as the
    /// MPI driver packs an all-to-all) read back from slices of it; a list followed by
    /// bytes it does not account for is refused, naming them.
    #[test]
    fn packed_lists_round_trip_from_slices_and_trailing_bytes_are_refused() {
        let lists = [
            vec![Message::data(2, ChunkId(5), Payload::from_bytes(&[7; 300])), Message::control(1, ChunkId(4), 8)],
            vec![],
            vec![Message::data(3, ChunkId(9), Payload::from_bytes(&[1, 2, 3]))],
        ];
        let lens: Vec<usize> = lists.iter().map(|l| 8 + messages_len(l)).collect();
        let mut buf = Vec::with_capacity(lens.iter().sum());
        for (i, l) in lists.iter().enumerate() {
            buf.extend_from_slice(&(i as u64).to_le_bytes());
            put_messages(&mut buf, l);
        }
        assert_eq!(buf.len(), lens.iter().sum::<usize>());
        assert_eq!(buf.capacity(), buf.len(), "sized up front, never grown");
        let mut at = 0;
        for (i, l) in lists.iter().enumerate() {
            let mut r = Reader::new(&buf[at..at + lens[i]]);
            assert_eq!(r.u64().unwrap(), i as u64);
            assert_eq!(&get_last_messages(&mut r).unwrap(), l);
            at += lens[i];
        }
        let mut long = Vec::new();
        put_messages(&mut long, &lists[2]);
        long.extend_from_slice(&[0; 5]);
        let e = get_last_messages(&mut Reader::new(&long)).unwrap_err();
        assert!(e.contains("5 trailing bytes after the last of 1 messages"), "{e}");
        let e = get_last_messages(&mut Reader::new(&long[..long.len() - 8])).unwrap_err();
        assert!(e.contains("truncated"), "{e}");
    }

    #[test]
    fn reports_round_trip() {
        let mut t = Trace::default();
        t.tasks.push(TaskRecord {
            task: TaskId(1),
            kernel: KernelId(2),
            rank: Rank(1),
            worker: 0,
            start_ns: 5,
            end_ns: 9,
            flops: 1.5,
        });
        t.messages.push(MessageRecord {
            src: Rank(0),
            dst: Rank(1),
            kind: "eager-data",
            class: MessageClass::Data,
            bytes: 64,
            chunk: ChunkId(3),
            sent_ns: 1,
            recv_ns: 2,
        });
        t.transfer_events.push(TransferEvent {
            chunk: ChunkId(3),
            src: Rank(0),
            dst: Rank(1),
            phase: Phase::Wire,
            at_ns: 4,
        });
        t.sizes.push(ChunkSize { chunk: ChunkId(3), rank: Rank(0), bytes: 40, bound: 64 });
        let results = vec![(ChunkId(3), Payload::from_f64(vec![1.0, 2.0]))];
        let (t2, r2, end) = decode_report(&encode_report(&t, &results, 99)).unwrap();
        assert_eq!((t2, r2, end), (t, results, 99));
    }
}
