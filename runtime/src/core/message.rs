//! Messages between ranks: a fixed small header plus optional chunk bytes. Drivers
//! move them; only strategies give them meaning.

use crate::ids::ChunkId;
use crate::one_sided::MemoryKey;
use crate::payload::Payload;

/// Bytes a message header takes on the wire (counted as control traffic).
pub const HEADER_BYTES: u64 = 32;

/// The `chunk` of a message about no chunk in particular (an empty contribution to a
/// collective). It names no chunk of any DAG.
pub const NO_CHUNK: ChunkId = ChunkId(u32::MAX);

/// One message. `op` is defined by the strategy that sent it (it names it in
/// traces through [`crate::Strategy::op_name`]); `chunk` and `arg` are its fields.
///
/// ```
/// use dagwire_runtime::{ChunkId, Message, MessageClass, Payload};
/// let ctrl = Message::control(1, ChunkId(7), 4096);
/// assert_eq!(ctrl.class(), MessageClass::Control);
/// assert_eq!(ctrl.wire_bytes(), dagwire_runtime::message::HEADER_BYTES);
/// let data = Message::data(2, ChunkId(7), Payload::zeroed(4096));
/// assert_eq!(data.class(), MessageClass::Data);
/// assert_eq!(data.wire_bytes(), 4096);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// Strategy-defined operation code.
    pub op: u8,
    /// The chunk the message is about.
    pub chunk: ChunkId,
    /// A strategy-defined argument (a size, an offset, a sequence number).
    pub arg: u64,
    /// Sender's clock when it was sent, in ns since the run started; set by the engine.
    pub sent_ns: u64,
    /// Chunk bytes, for data messages.
    pub payload: Option<Payload>,
    /// The key of memory the sender exposed ([`crate::one_sided::Access::Expose`]), for
    /// the receiver to read it one-sided; part of the header, not data.
    pub key: Option<MemoryKey>,
}

/// Whether a message carries chunk data or only protocol control.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageClass {
    /// Carries chunk bytes.
    Data,
    /// Protocol only (ready-to-send, clear-to-send, notifications).
    Control,
}

impl MessageClass {
    /// `"data"` or `"control"`, as written in the tables.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageClass::Data => "data",
            MessageClass::Control => "control",
        }
    }
}

impl Message {
    /// A control message.
    pub fn control(op: u8, chunk: ChunkId, arg: u64) -> Self {
        Message { op, chunk, arg, sent_ns: 0, payload: None, key: None }
    }

    /// A message carrying chunk bytes.
    pub fn data(op: u8, chunk: ChunkId, payload: Payload) -> Self {
        Message { op, chunk, arg: 0, sent_ns: 0, payload: Some(payload), key: None }
    }

    /// A control message carrying the key of memory the sender exposed.
    ///
    /// ```
    /// use dagwire_runtime::one_sided::MemoryKey;
    /// use dagwire_runtime::{ChunkId, Message, MessageClass};
    /// let key = MemoryKey { addr: 0x1000, key: 7, len: 64 };
    /// let m = Message::keyed(3, ChunkId(1), 64, key);
    /// assert_eq!((m.class(), m.key), (MessageClass::Control, Some(key)));
    /// ```
    pub fn keyed(op: u8, chunk: ChunkId, arg: u64, key: MemoryKey) -> Self {
        Message { key: Some(key), ..Message::control(op, chunk, arg) }
    }

    /// Data or control.
    pub fn class(&self) -> MessageClass {
        if self.payload.is_some() { MessageClass::Data } else { MessageClass::Control }
    }

    /// Bytes counted for this message: the payload for data, the header for control.
    pub fn wire_bytes(&self) -> u64 {
        self.payload.as_ref().map_or(HEADER_BYTES, |p| p.len() as u64)
    }
}
