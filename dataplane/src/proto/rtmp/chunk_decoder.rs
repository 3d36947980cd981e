//! Reassembles RTMP messages from the chunk stream (RTMP specification §5.3), sans-IO.
//!
//! Input may be split at any byte: partial headers are kept in a small buffer and partial
//! payloads in the message's own buffer, which is allocated once, at the size the header
//! announces, and handed out as `Bytes` without another copy.

use bytes::BytesMut;

use super::control::{check_chunk_size, ControlError};
use super::{msg_type, Message};

/// Chunk size until the peer sends Set Chunk Size (§5.4.1).
pub const DEFAULT_CHUNK_SIZE: u32 = 128;
/// The largest header: 3-byte basic header, 11-byte type-0 header, 4-byte extended timestamp.
const MAX_HEADER_LEN: usize = 3 + 11 + 4;
/// The timestamp field value that says "the real value follows in 4 more bytes".
const EXTENDED_TIMESTAMP: u32 = 0xFF_FFFF;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecoderLimits {
    /// Largest message accepted; checked at the header, before the payload buffer is
    /// allocated, so a peer cannot make us reserve 16 MiB per chunk stream. Unfinished
    /// messages together may announce at most twice this (see `PENDING_FACTOR`).
    pub max_message_size: u32,
    /// Most distinct chunk streams one peer may use; each keeps a header and maybe a
    /// partial message.
    pub max_chunk_streams: usize,
}

impl Default for DecoderLimits {
    /// 8 MiB holds any real video frame (a 4K key frame is a few MiB); clients use a handful
    /// of chunk streams, 64 leaves room for odd ones.
    fn default() -> Self {
        DecoderLimits {
            max_message_size: 8 << 20,
            max_chunk_streams: 64,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("message of {size} bytes over the limit of {limit}")]
    MessageTooLarge { size: u32, limit: u32 },
    #[error("more than {0} chunk streams")]
    TooManyChunkStreams(usize),
    #[error("chunk type {fmt} on chunk stream {csid} with no previous header")]
    NoPreviousHeader { fmt: u8, csid: u32 },
    #[error("{0}")]
    BadChunkSize(ControlError),
    #[error("set chunk size message of {0} bytes, needs 4")]
    ShortSetChunkSize(usize),
    #[error("abort message of {0} bytes, needs 4")]
    ShortAbort(usize),
    #[error("unfinished messages would hold {size} bytes, over the limit of {limit}")]
    PendingTooLarge { size: u64, limit: u64 },
}

/// What the decoder remembers about one chunk stream.
#[derive(Debug)]
struct ChunkStream {
    csid: u32,
    /// Timestamp of the last message started on this chunk stream.
    timestamp: u32,
    /// The last timestamp field (a delta, or the absolute value after a type-0 header), which a
    /// type-3 chunk starting a new message reuses — as ffmpeg and librtmp read it.
    delta: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
    /// Whether the last type 0/1/2 header used the extended timestamp; type-3 chunks then
    /// carry it again (§5.3.1.3, and what ffmpeg's and librtmp's writers do).
    extended: bool,
    /// The message being reassembled, if any.
    partial: Option<BytesMut>,
}

/// A parsed chunk header (basic header plus message header plus extended timestamp).
#[derive(Debug, Clone, Copy)]
struct Header {
    fmt: u8,
    csid: u32,
    /// The timestamp field, extended value substituted.
    timestamp: u32,
    extended: bool,
    length: u32,
    type_id: u8,
    stream_id: u32,
    /// Bytes the header took.
    len: usize,
}

#[derive(Debug)]
pub struct ChunkDecoder {
    limits: DecoderLimits,
    chunk_size: u32,
    streams: Vec<ChunkStream>,
    /// Bytes of a header split across `feed` calls.
    header: [u8; MAX_HEADER_LEN],
    header_len: usize,
    /// Inside a chunk's payload: index in `streams` and bytes left in this chunk.
    reading: Option<(usize, u32)>,
    /// Sum of the announced lengths of unfinished messages. Buffers are reserved at the
    /// header, so without this bound a peer could reserve `max_chunk_streams` times
    /// `max_message_size` (512 MiB by default) with a few hundred bytes of headers.
    pending: u64,
}

/// Unfinished messages may together announce this many times `max_message_size`: room for a
/// maximal video frame interleaved with audio and data, far below the per-stream worst case.
const PENDING_FACTOR: u64 = 2;

impl Default for ChunkDecoder {
    fn default() -> Self {
        Self::new(DecoderLimits::default())
    }
}

impl ChunkDecoder {
    pub fn new(limits: DecoderLimits) -> Self {
        ChunkDecoder {
            limits,
            chunk_size: DEFAULT_CHUNK_SIZE,
            streams: Vec::new(),
            header: [0; MAX_HEADER_LEN],
            header_len: 0,
            reading: None,
            pending: 0,
        }
    }

    /// The peer's current chunk size.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Decodes as much of `input` as it can; complete messages are pushed to `out`. Set Chunk
    /// Size and Abort take effect at the byte where they complete (and are pushed too). After
    /// an error the connection is to be closed.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<Message>) -> Result<(), ChunkError> {
        let mut pos = 0;
        while pos < input.len() {
            if let Some((idx, left)) = self.reading {
                pos += self.read_payload(idx, left, &input[pos..], out)?;
                continue;
            }
            let header = if self.header_len == 0 {
                match self.parse_header(&input[pos..])? {
                    Some(h) => {
                        pos += h.len;
                        h
                    }
                    None => {
                        // Shorter than the header it starts, so it fits the buffer.
                        let rest = &input[pos..];
                        self.header[..rest.len()].copy_from_slice(rest);
                        self.header_len = rest.len();
                        return Ok(());
                    }
                }
            } else {
                let had = self.header_len;
                let take = (MAX_HEADER_LEN - had).min(input.len() - pos);
                self.header[had..had + take].copy_from_slice(&input[pos..pos + take]);
                let buf = self.header;
                match self.parse_header(&buf[..had + take])? {
                    Some(h) => {
                        self.header_len = 0;
                        // `had` bytes were too few for this header, so h.len > had.
                        pos += h.len.saturating_sub(had);
                        h
                    }
                    None => {
                        self.header_len = had + take;
                        return Ok(());
                    }
                }
            };
            self.start_chunk(header, out)?;
        }
        Ok(())
    }

    fn find(&self, csid: u32) -> Option<usize> {
        self.streams.iter().position(|s| s.csid == csid)
    }

    /// Parses one chunk header from the front of `b`; `None` if `b` ends inside it.
    fn parse_header(&self, b: &[u8]) -> Result<Option<Header>, ChunkError> {
        let Some(&b0) = b.first() else {
            return Ok(None);
        };
        let fmt = b0 >> 6;
        // Basic header: csid 2..=63 in one byte; 0 and 1 announce the 2- and 3-byte forms.
        let (csid, mut at) = match b0 & 0x3f {
            0 => match b.get(1) {
                Some(&x) => (64 + u32::from(x), 2),
                None => return Ok(None),
            },
            1 => match (b.get(1), b.get(2)) {
                (Some(&lo), Some(&hi)) => (64 + u32::from(lo) + 256 * u32::from(hi), 3),
                _ => return Ok(None),
            },
            n => (u32::from(n), 1),
        };
        let Some(prev) = self.find(csid).map(|i| &self.streams[i]) else {
            if fmt != 0 {
                return Err(ChunkError::NoPreviousHeader { fmt, csid });
            }
            return self.parse_message_header(b, fmt, csid, at, None);
        };
        if fmt == 3 {
            let mut h = Header {
                fmt,
                csid,
                timestamp: prev.delta,
                extended: prev.extended,
                length: prev.length,
                type_id: prev.type_id,
                stream_id: prev.stream_id,
                len: at,
            };
            if prev.extended {
                let Some(ext) = b.get(at..at + 4) else {
                    return Ok(None);
                };
                h.timestamp = u32::from_be_bytes([ext[0], ext[1], ext[2], ext[3]]);
                at += 4;
                h.len = at;
            }
            return Ok(Some(h));
        }
        self.parse_message_header(b, fmt, csid, at, Some(prev))
    }

    /// Message header of types 0, 1 and 2 (11, 7 and 3 bytes), then the extended timestamp.
    fn parse_message_header(
        &self,
        b: &[u8],
        fmt: u8,
        csid: u32,
        at: usize,
        prev: Option<&ChunkStream>,
    ) -> Result<Option<Header>, ChunkError> {
        let size = [11, 7, 3][usize::from(fmt)];
        let Some(m) = b.get(at..at + size) else {
            return Ok(None);
        };
        let be24 = |s: &[u8]| u32::from_be_bytes([0, s[0], s[1], s[2]]);
        let field = be24(&m[0..3]);
        let (length, type_id, stream_id) = match (fmt, prev) {
            // Message stream id is little-endian (a Flash quirk the specification keeps).
            (0, _) => (
                be24(&m[3..6]),
                m[6],
                u32::from_le_bytes([m[7], m[8], m[9], m[10]]),
            ),
            (1, Some(p)) => (be24(&m[3..6]), m[6], p.stream_id),
            (_, Some(p)) => (p.length, p.type_id, p.stream_id),
            (_, None) => return Err(ChunkError::NoPreviousHeader { fmt, csid }),
        };
        let mut len = at + size;
        let extended = field == EXTENDED_TIMESTAMP;
        let timestamp = if extended {
            let Some(ext) = b.get(len..len + 4) else {
                return Ok(None);
            };
            len += 4;
            u32::from_be_bytes([ext[0], ext[1], ext[2], ext[3]])
        } else {
            field
        };
        Ok(Some(Header {
            fmt,
            csid,
            timestamp,
            extended,
            length,
            type_id,
            stream_id,
            len,
        }))
    }

    /// Applies a parsed header: starts a message or continues one, and sets up the payload
    /// read for this chunk.
    fn start_chunk(&mut self, h: Header, out: &mut Vec<Message>) -> Result<(), ChunkError> {
        let idx = match self.find(h.csid) {
            Some(i) => i,
            None => {
                if self.streams.len() >= self.limits.max_chunk_streams {
                    return Err(ChunkError::TooManyChunkStreams(
                        self.limits.max_chunk_streams,
                    ));
                }
                self.streams.push(ChunkStream {
                    csid: h.csid,
                    timestamp: 0,
                    delta: 0,
                    length: 0,
                    type_id: 0,
                    stream_id: 0,
                    extended: false,
                    partial: None,
                });
                self.streams.len() - 1
            }
        };
        let limit = self.limits.max_message_size;
        let s = &mut self.streams[idx];
        let continuing = h.fmt == 3 && s.partial.is_some();
        if !continuing {
            // A new message. A type 0/1/2 header in the middle of a message drops the partial
            // one, as if the peer had sent Abort (ffmpeg does the same when the size changes).
            if h.length > limit {
                return Err(ChunkError::MessageTooLarge {
                    size: h.length,
                    limit,
                });
            }
            // The partial message being replaced (if any) no longer counts as pending.
            let dropped = if s.partial.take().is_some() {
                u64::from(s.length)
            } else {
                0
            };
            let pending = self.pending.saturating_sub(dropped) + u64::from(h.length);
            let pending_limit = u64::from(limit) * PENDING_FACTOR;
            if pending > pending_limit {
                return Err(ChunkError::PendingTooLarge {
                    size: pending,
                    limit: pending_limit,
                });
            }
            self.pending = pending;
            s.timestamp = match h.fmt {
                0 => h.timestamp,
                _ => s.timestamp.wrapping_add(h.timestamp),
            };
            s.delta = h.timestamp;
            if h.fmt != 3 {
                s.extended = h.extended;
            }
            s.length = h.length;
            s.type_id = h.type_id;
            s.stream_id = h.stream_id;
            // The one allocation per message: sized from the header, never grown.
            s.partial = Some(BytesMut::with_capacity(h.length as usize));
        }
        // A continuation's extended timestamp repeats the message's and is ignored.
        let have = s.partial.as_ref().map_or(0, |p| p.len()) as u32;
        let left = (s.length - have).min(self.chunk_size);
        if left == 0 {
            // Zero-length message: complete with its header.
            return self.complete(idx, out);
        }
        self.reading = Some((idx, left));
        Ok(())
    }

    /// Copies payload bytes of the current chunk; returns how many it took.
    fn read_payload(
        &mut self,
        idx: usize,
        left: u32,
        input: &[u8],
        out: &mut Vec<Message>,
    ) -> Result<usize, ChunkError> {
        let n = (left as usize).min(input.len());
        let s = &mut self.streams[idx];
        let done = match s.partial.as_mut() {
            Some(p) => {
                p.extend_from_slice(&input[..n]);
                p.len() == s.length as usize
            }
            // Not reachable: a chunk is only read into a started message.
            None => false,
        };
        let left = left - n as u32;
        self.reading = (left > 0).then_some((idx, left));
        if done {
            self.complete(idx, out)?;
        }
        Ok(n)
    }

    /// Hands out the finished message on stream `idx`, acting on Set Chunk Size and Abort.
    fn complete(&mut self, idx: usize, out: &mut Vec<Message>) -> Result<(), ChunkError> {
        let s = &mut self.streams[idx];
        let payload = s.partial.take().unwrap_or_default().freeze();
        self.pending = self.pending.saturating_sub(u64::from(s.length));
        let msg = Message {
            csid: s.csid,
            timestamp: s.timestamp,
            type_id: s.type_id,
            stream_id: s.stream_id,
            payload,
        };
        let word = |p: &[u8]| {
            p.get(..4)
                .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
        };
        match msg.type_id {
            msg_type::SET_CHUNK_SIZE => {
                let n =
                    word(&msg.payload).ok_or(ChunkError::ShortSetChunkSize(msg.payload.len()))?;
                self.chunk_size = check_chunk_size(n).map_err(ChunkError::BadChunkSize)?;
            }
            msg_type::ABORT => {
                let target = word(&msg.payload).ok_or(ChunkError::ShortAbort(msg.payload.len()))?;
                if let Some(i) = self.find(target) {
                    let t = &mut self.streams[i];
                    if t.partial.take().is_some() {
                        self.pending = self.pending.saturating_sub(u64::from(t.length));
                    }
                }
            }
            _ => {}
        }
        out.push(msg);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
