//! A piece: one point-to-point step of a collective, as a transport carries it, and
//! its byte encoding (for transports that move bytes, such as MPI).

use crate::collective::wire_bytes;
use crate::ids::{ChunkId, Rank};
use crate::message::{HEADER_BYTES, Message};
use crate::one_sided::MemoryKey;
use crate::payload::Payload;

/// One point-to-point step of a collective: what a driver hands its transport (to
/// `dst`) and, on arrival, back to `dst`'s [`super::Collectives::handle_piece`].
///
/// Pieces between one pair of ranks may arrive in any order: the receiver keys them by
/// (`id`, `src`, `step`), which is unique within a run.
#[derive(Clone, Debug, PartialEq)]
pub struct Piece {
    /// The collective.
    pub id: u64,
    /// Sender.
    pub src: Rank,
    /// Receiver.
    pub dst: Rank,
    /// When `src` handed it to the transport, ns.
    pub sent_ns: u64,
    /// The algorithm's step (round, segment) this piece belongs to.
    pub step: u32,
    /// Bytes to charge on a wire (the simulator charges exactly this): the data it
    /// stands for, or a header when it carries none (see [`Body`]).
    pub bytes: u64,
    /// What it carries.
    pub body: Body,
}

/// What a [`Piece`] carries.
#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    /// Nothing but its header (a barrier round).
    Header,
    /// One contribution (an all-to-all-v step, a neighbour's contribution).
    Messages(Vec<Message>),
    /// Segment `step` of `of` of a broadcast; the last one carries the root's messages.
    Segment {
        /// Segments the broadcast's data was cut into.
        of: u32,
        /// The root's messages, on segment `of - 1` only.
        messages: Option<Vec<Message>>,
    },
    /// Whole contributions on their way (Bruck's forwarded blocks, an all-gather's).
    Blocks(Vec<Block>),
    /// A block of a reduced vector (possibly a [`Payload::phantom`]).
    Values(Payload),
}

/// One rank's contribution as it travels through other ranks.
#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    /// The rank that contributed it.
    pub origin: Rank,
    /// When it first left `origin`, ns.
    pub sent_ns: u64,
    /// The contribution.
    pub messages: Vec<Message>,
}

/// The bytes a piece with `body` stands for: its messages' [`wire_bytes`] (a header
/// for an empty list), the sum of its blocks', a vector block's length, or one header
/// when it carries nothing at all. (A
/// broadcast segment's size is the algorithm's, so [`Body::Segment`] has no rule here.)
///
/// ```
/// use dagwire_runtime::collectives::{Body, body_bytes};
/// use dagwire_runtime::message::HEADER_BYTES;
/// use dagwire_runtime::Payload;
/// assert_eq!(body_bytes(&Body::Header), HEADER_BYTES);
/// assert_eq!(body_bytes(&Body::Values(Payload::phantom(4096))), 4096);
/// assert_eq!(body_bytes(&Body::Values(Payload::default())), HEADER_BYTES);
/// ```
pub fn body_bytes(body: &Body) -> u64 {
    match body {
        Body::Header | Body::Segment { .. } => HEADER_BYTES,
        Body::Messages(m) => wire_bytes(m),
        Body::Blocks(blocks) if blocks.is_empty() => HEADER_BYTES,
        Body::Blocks(blocks) => blocks.iter().map(|b| wire_bytes(&b.messages)).sum(),
        Body::Values(v) if v.is_empty() => HEADER_BYTES,
        Body::Values(v) => v.len() as u64,
    }
}

const HEADER: u8 = 0;
const MESSAGES: u8 = 1;
const SEGMENT: u8 = 2;
const BLOCKS: u8 = 3;
const VALUES: u8 = 4;

const NO_PAYLOAD: u8 = 0;
const BYTES: u8 = 1;
const PHANTOM: u8 = 2;

impl Piece {
    /// The chunks whose bytes it carries, with their sizes: its messages' payloads (a
    /// contribution's, a broadcast's last segment's, forwarded blocks'); a reduction's
    /// vector block belongs to no chunk.
    ///
    /// ```
    /// use dagwire_runtime::collectives::{Body, Piece};
    /// use dagwire_runtime::{ChunkId, Message, Payload, Rank};
    /// let body = Body::Messages(vec![Message::data(1, ChunkId(3), Payload::phantom(64)), Message::control(2, ChunkId(4), 0)]);
    /// let piece = Piece { id: 9, src: Rank(1), dst: Rank(2), sent_ns: 5, step: 0, bytes: 64, body };
    /// assert_eq!(piece.data().collect::<Vec<_>>(), [(ChunkId(3), 64)]);
    /// ```
    pub fn data(&self) -> impl Iterator<Item = (ChunkId, u64)> + '_ {
        let (messages, blocks): (&[Message], &[Block]) = match &self.body {
            Body::Messages(m) | Body::Segment { messages: Some(m), .. } => (m, &[]),
            Body::Blocks(b) => (&[], b),
            Body::Header | Body::Segment { messages: None, .. } | Body::Values(_) => (&[], &[]),
        };
        messages
            .iter()
            .chain(blocks.iter().flat_map(|b| &b.messages))
            .filter_map(|m| m.payload.as_ref().map(|p| (m.chunk, p.len() as u64)))
    }

    /// Appends the piece's encoding to `out` (little-endian; payload bytes inline; a
    /// phantom payload as its length only). [`Piece::decode`] reads it back.
    ///
    /// ```
    /// use dagwire_runtime::collectives::{Body, Piece};
    /// use dagwire_runtime::{ChunkId, Message, Payload, Rank};
    /// let msg = Message::data(1, ChunkId(3), Payload::from_bytes(&[1, 2, 3]));
    /// let piece = Piece { id: 9, src: Rank(1), dst: Rank(2), sent_ns: 5, step: 0, bytes: 3,
    ///                     body: Body::Messages(vec![msg]) };
    /// let mut buf = Vec::new();
    /// piece.encode(&mut buf);
    /// assert_eq!(Piece::decode(&buf), Ok(piece));
    /// ```
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.id.to_le_bytes());
        out.extend_from_slice(&self.src.0.to_le_bytes());
        out.extend_from_slice(&self.dst.0.to_le_bytes());
        out.extend_from_slice(&self.sent_ns.to_le_bytes());
        out.extend_from_slice(&self.step.to_le_bytes());
        out.extend_from_slice(&self.bytes.to_le_bytes());
        match &self.body {
            Body::Header => out.push(HEADER),
            Body::Messages(m) => {
                out.push(MESSAGES);
                put_messages(out, m);
            }
            Body::Segment { of, messages } => {
                out.push(SEGMENT);
                out.extend_from_slice(&of.to_le_bytes());
                match messages {
                    None => out.push(0),
                    Some(m) => {
                        out.push(1);
                        put_messages(out, m);
                    }
                }
            }
            Body::Blocks(blocks) => {
                out.push(BLOCKS);
                out.extend_from_slice(&(blocks.len() as u32).to_le_bytes());
                for b in blocks {
                    out.extend_from_slice(&b.origin.0.to_le_bytes());
                    out.extend_from_slice(&b.sent_ns.to_le_bytes());
                    put_messages(out, &b.messages);
                }
            }
            Body::Values(v) => {
                out.push(VALUES);
                put_payload(out, Some(v));
            }
        }
    }

    /// Reads a piece written by [`Piece::encode`]; refuses truncated bytes, trailing
    /// bytes and unknown tags, saying which.
    pub fn decode(bytes: &[u8]) -> Result<Piece, String> {
        let mut r = Reader { bytes, at: 0 };
        let id = r.u64()?;
        let (src, dst) = (Rank(r.u32()?), Rank(r.u32()?));
        let (sent_ns, step, size) = (r.u64()?, r.u32()?, r.u64()?);
        let body = match r.u8()? {
            HEADER => Body::Header,
            MESSAGES => Body::Messages(get_messages(&mut r)?),
            SEGMENT => {
                let of = r.u32()?;
                let messages = match r.u8()? {
                    0 => None,
                    1 => Some(get_messages(&mut r)?),
                    f => return Err(format!("a broadcast segment with messages flag {f}")),
                };
                Body::Segment { of, messages }
            }
            BLOCKS => {
                let n = r.u32()? as usize;
                let mut blocks = Vec::with_capacity(n.min(1 << 12));
                for _ in 0..n {
                    let (origin, sent_ns) = (Rank(r.u32()?), r.u64()?);
                    blocks.push(Block { origin, sent_ns, messages: get_messages(&mut r)? });
                }
                Body::Blocks(blocks)
            }
            VALUES => Body::Values(get_payload(&mut r)?.ok_or("a vector piece without its vector")?),
            tag => return Err(format!("unknown piece body tag {tag} (a peer built from another version?)")),
        };
        if r.at != bytes.len() {
            return Err(format!("{} bytes left over after a piece of {}", bytes.len() - r.at, r.at));
        }
        Ok(Piece { id, src, dst, sent_ns, step, bytes: size, body })
    }
}

fn put_messages(out: &mut Vec<u8>, messages: &[Message]) {
    out.extend_from_slice(&(messages.len() as u32).to_le_bytes());
    for m in messages {
        out.push(m.op);
        out.extend_from_slice(&m.chunk.0.to_le_bytes());
        out.extend_from_slice(&m.arg.to_le_bytes());
        out.extend_from_slice(&m.sent_ns.to_le_bytes());
        match m.key {
            None => out.push(0),
            Some(k) => {
                out.push(1);
                for w in [k.addr, k.key, k.len] {
                    out.extend_from_slice(&w.to_le_bytes());
                }
            }
        }
        put_payload(out, m.payload.as_ref());
    }
}

fn put_payload(out: &mut Vec<u8>, payload: Option<&Payload>) {
    match payload {
        None => out.push(NO_PAYLOAD),
        Some(p) if p.is_phantom() => {
            out.push(PHANTOM);
            out.extend_from_slice(&(p.len() as u64).to_le_bytes());
        }
        Some(p) => {
            out.push(BYTES);
            out.extend_from_slice(&(p.len() as u64).to_le_bytes());
            out.extend_from_slice(p.as_bytes());
        }
    }
}

fn get_messages(r: &mut Reader<'_>) -> Result<Vec<Message>, String> {
    let n = r.u32()? as usize;
    let mut out = Vec::with_capacity(n.min(1 << 12));
    for _ in 0..n {
        let (op, chunk, arg, sent_ns) = (r.u8()?, ChunkId(r.u32()?), r.u64()?, r.u64()?);
        let key = match r.u8()? {
            0 => None,
            1 => Some(MemoryKey { addr: r.u64()?, key: r.u64()?, len: r.u64()? }),
            k => return Err(format!("unknown message key flag {k}")),
        };
        out.push(Message { op, chunk, arg, sent_ns, payload: get_payload(r)?, key });
    }
    Ok(out)
}

fn get_payload(r: &mut Reader<'_>) -> Result<Option<Payload>, String> {
    match r.u8()? {
        NO_PAYLOAD => Ok(None),
        PHANTOM => Ok(Some(Payload::phantom(r.len()?))),
        BYTES => {
            let n = r.len()?;
            Ok(Some(Payload::from_bytes(r.take(n)?)))
        }
        k => Err(format!("unknown payload kind {k}")),
    }
}

/// A cursor over received bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or_else(|| {
            format!("truncated piece: wanted {n} bytes at offset {}, only {} in all", self.at, self.bytes.len())
        })?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    fn len(&mut self) -> Result<usize, String> {
        usize::try_from(self.u64()?).map_err(|_| "a length that does not fit this machine".to_string())
    }
}
