//! Splits RTMP messages into chunks (RTMP specification §5.3).
//!
//! Two encoders: `encode_message`, stateless (a type-0 header, then type-3 chunks), which the
//! fan-out uses to encode a message once for every viewer with the same chunk size; and
//! `ChunkEncoder`, which compresses headers (types 1, 2, 3) per chunk stream, for clients and
//! tests.

use std::collections::HashMap;

use bytes::BufMut;

use super::Message;

/// Timestamp field value announcing an extended (4-byte) timestamp.
const EXTENDED_TIMESTAMP: u32 = 0xFF_FFFF;
/// Largest message length the 24-bit length field can carry.
const MAX_MESSAGE_LEN: usize = 0xFF_FFFF;

/// Size of the basic header for `csid` (1, 2 or 3 bytes).
fn basic_header_len(csid: u32) -> usize {
    match csid {
        0..=63 => 1,
        64..=319 => 2,
        _ => 3,
    }
}

/// Writes the basic header. `csid` must be in 2..=65599 (callers pick it; peers do not).
fn put_basic_header(out: &mut impl BufMut, fmt: u8, csid: u32) {
    debug_assert!(
        (2..=65599).contains(&csid),
        "chunk stream id {csid} out of range"
    );
    match csid {
        0..=63 => out.put_u8(fmt << 6 | csid as u8),
        64..=319 => {
            out.put_u8(fmt << 6);
            out.put_u8((csid - 64) as u8);
        }
        _ => {
            let n = csid.saturating_sub(64);
            out.put_u8(fmt << 6 | 1);
            out.put_u8(n as u8);
            out.put_u8((n >> 8) as u8);
        }
    }
}

fn put_u24(out: &mut impl BufMut, v: u32) {
    out.put_u8((v >> 16) as u8);
    out.put_u16(v as u16);
}

/// The 24-bit length; messages are bounded by the decoder's limit (8 MiB by default) or
/// built by us, so a longer one is a bug upstream.
fn length_field(msg: &Message) -> u32 {
    debug_assert!(
        msg.payload.len() <= MAX_MESSAGE_LEN,
        "message too long for RTMP"
    );
    msg.payload.len().min(MAX_MESSAGE_LEN) as u32
}

/// Writes the chunk payloads after the first header: type-3 headers (repeating the extended
/// timestamp when the first header had one, as ffmpeg, librtmp and our decoder expect).
fn put_payload(out: &mut impl BufMut, msg: &Message, chunk_size: u32, ext: Option<u32>) {
    let chunk = chunk_size.max(1) as usize;
    let len = length_field(msg) as usize;
    let mut chunks = msg.payload[..len].chunks(chunk);
    if let Some(first) = chunks.next() {
        out.put_slice(first);
    }
    for c in chunks {
        put_basic_header(out, 3, msg.csid);
        if let Some(t) = ext {
            out.put_u32(t);
        }
        out.put_slice(c);
    }
}

/// Encodes `msg` with a type-0 header on the first chunk and type-3 headers on the rest.
/// A `chunk_size` of 0 is taken as 1.
pub fn encode_message(msg: &Message, chunk_size: u32, out: &mut impl BufMut) {
    put_basic_header(out, 0, msg.csid);
    put_u24(out, msg.timestamp.min(EXTENDED_TIMESTAMP));
    put_u24(out, length_field(msg));
    out.put_u8(msg.type_id);
    // Little-endian, unlike every other field.
    out.put_u32_le(msg.stream_id);
    let ext = (msg.timestamp >= EXTENDED_TIMESTAMP).then_some(msg.timestamp);
    if let Some(t) = ext {
        out.put_u32(t);
    }
    put_payload(out, msg, chunk_size, ext);
}

/// Exactly the bytes `encode_message` writes.
pub fn encoded_len(msg: &Message, chunk_size: u32) -> usize {
    let ext = if msg.timestamp >= EXTENDED_TIMESTAMP {
        4
    } else {
        0
    };
    let len = length_field(msg) as usize;
    let chunks = len.div_ceil(chunk_size.max(1) as usize).max(1);
    let basic = basic_header_len(msg.csid);
    basic + 11 + ext + (chunks - 1) * (basic + ext) + len
}

/// What the peer's decoder remembers of the last header on a chunk stream.
#[derive(Debug, Clone, Copy)]
struct Last {
    timestamp: u32,
    /// The delta a type-3 header would repeat; `None` after a type-0 header, whose field is
    /// absolute (decoders disagree on what a type-3 after it means, so we never rely on it).
    delta: Option<u32>,
    length: u32,
    type_id: u8,
    stream_id: u32,
}

/// Stateful encoder with header compression per chunk stream.
#[derive(Debug)]
pub struct ChunkEncoder {
    chunk_size: u32,
    last: HashMap<u32, Last>,
}

impl ChunkEncoder {
    pub fn new(chunk_size: u32) -> Self {
        ChunkEncoder {
            chunk_size: chunk_size.max(1),
            last: HashMap::new(),
        }
    }

    /// Takes effect for the next message; send Set Chunk Size to the peer first.
    pub fn set_chunk_size(&mut self, n: u32) {
        self.chunk_size = n.max(1);
    }

    pub(crate) fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    pub fn encode(&mut self, msg: &Message, out: &mut impl BufMut) {
        let length = length_field(msg);
        let prev = self.last.get(&msg.csid).copied();
        // Type 0 when there is nothing to refer to, the message stream changes, or time goes
        // backwards (a negative delta is a huge unsigned one to the peer).
        let Some(p) = prev.filter(|p| p.stream_id == msg.stream_id && msg.timestamp >= p.timestamp)
        else {
            self.last.insert(
                msg.csid,
                Last {
                    timestamp: msg.timestamp,
                    delta: None,
                    length,
                    type_id: msg.type_id,
                    stream_id: msg.stream_id,
                },
            );
            return encode_message(msg, self.chunk_size, out);
        };
        let delta = msg.timestamp - p.timestamp;
        let ext = (delta >= EXTENDED_TIMESTAMP).then_some(delta);
        let same_shape = length == p.length && msg.type_id == p.type_id;
        if same_shape && p.delta == Some(delta) {
            put_basic_header(out, 3, msg.csid);
        } else {
            put_basic_header(out, if same_shape { 2 } else { 1 }, msg.csid);
            put_u24(out, delta.min(EXTENDED_TIMESTAMP));
            if !same_shape {
                put_u24(out, length);
                out.put_u8(msg.type_id);
            }
        }
        if let Some(d) = ext {
            out.put_u32(d);
        }
        put_payload(out, msg, self.chunk_size, ext);
        self.last.insert(
            msg.csid,
            Last {
                timestamp: msg.timestamp,
                delta: Some(delta),
                length,
                type_id: msg.type_id,
                stream_id: msg.stream_id,
            },
        );
    }
}
