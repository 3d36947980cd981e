//! The framing of the chunk stream (RTMP specification §5.3), shared by everything that reads
//! chunks: basic and message headers, what each chunk stream remembers (timestamp deltas,
//! extended timestamps, type-3 reuse), chunk boundaries and the chunk size. What happens to
//! the payload bytes is the caller's: `ChunkDecoder` reassembles messages, the load tool's
//! skimmer keeps only the first bytes of each.
//!
//! Input may be split at any byte: a partial header is kept here (at most 18 bytes), payload
//! bytes are handed out as they arrive, borrowed from the input.

/// Chunk size until the peer sends Set Chunk Size (§5.4.1).
pub const DEFAULT_CHUNK_SIZE: u32 = 128;
/// The largest header: 3-byte basic header, 11-byte type-0 header, 4-byte extended timestamp.
const MAX_HEADER_LEN: usize = 3 + 11 + 4;
/// The timestamp field value that says "the real value follows in 4 more bytes".
const EXTENDED_TIMESTAMP: u32 = 0xFF_FFFF;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("more than {0} chunk streams")]
    TooManyChunkStreams(usize),
    #[error("chunk type {fmt} on chunk stream {csid} with no previous header")]
    NoPreviousHeader { fmt: u8, csid: u32 },
}

/// The header of a message, as its chunks describe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageInfo {
    pub csid: u32,
    /// Absolute timestamp (deltas applied; wraps at 2^32).
    pub timestamp: u32,
    pub length: u32,
    pub type_id: u8,
    pub stream_id: u32,
}

/// One step of the chunk stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Framed<'a> {
    /// A message starts on chunk-stream slot `slot`, a small stable index the caller may use
    /// for its own per-stream storage. `dropped` is the length of a message that was in
    /// progress on that chunk stream and is abandoned (a type 0/1/2 header mid-message).
    Start {
        slot: usize,
        message: MessageInfo,
        dropped: Option<u32>,
    },
    /// Payload bytes of `message`, in progress on `slot`, `offset` bytes into it; `last`
    /// when they complete it (an empty message completes with an empty `bytes`).
    Payload {
        slot: usize,
        message: MessageInfo,
        offset: u32,
        bytes: &'a [u8],
        last: bool,
    },
}

/// What the framer remembers about one chunk stream.
#[derive(Debug)]
struct ChunkStream {
    info: MessageInfo,
    /// The last timestamp field (a delta, or the absolute value after a type-0 header), which a
    /// type-3 chunk starting a new message reuses — as ffmpeg and librtmp read it.
    delta: u32,
    /// Whether the last type 0/1/2 header used the extended timestamp; type-3 chunks then
    /// carry it again (§5.3.1.3, and what ffmpeg's and librtmp's writers do).
    extended: bool,
    /// Bytes received of the message in progress, if one is.
    have: Option<u32>,
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
pub struct ChunkFramer {
    max_chunk_streams: usize,
    chunk_size: u32,
    streams: Vec<ChunkStream>,
    /// Bytes of a header split across calls.
    header: [u8; MAX_HEADER_LEN],
    header_len: usize,
    /// Inside a chunk's payload: slot and bytes left in this chunk (0 for an empty message
    /// whose completion is still to be reported).
    reading: Option<(usize, u32)>,
}

impl ChunkFramer {
    pub fn new(max_chunk_streams: usize) -> Self {
        ChunkFramer {
            max_chunk_streams,
            chunk_size: DEFAULT_CHUNK_SIZE,
            streams: Vec::new(),
            header: [0; MAX_HEADER_LEN],
            header_len: 0,
            reading: None,
        }
    }

    /// The peer's current chunk size.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Applies a Set Chunk Size the caller has validated.
    pub fn set_chunk_size(&mut self, size: u32) {
        self.chunk_size = size;
    }

    /// Abandons the message in progress on chunk stream `csid` (Abort, §5.4.2); returns its
    /// slot and announced length if there was one.
    pub fn abort(&mut self, csid: u32) -> Option<(usize, u32)> {
        let slot = self.find(csid)?;
        let s = &mut self.streams[slot];
        s.have.take().map(|_| (slot, s.info.length))
    }

    /// Takes the next step from the front of `input`: the bytes consumed, and the step, or
    /// `None` once `input` is used up (a partial header is kept for the next call).
    #[inline]
    pub fn next<'a>(&mut self, input: &'a [u8]) -> Result<(usize, Option<Framed<'a>>), FrameError> {
        let mut pos = 0;
        loop {
            if let Some((slot, left)) = self.reading {
                let rest = &input[pos..];
                if left > 0 && rest.is_empty() {
                    return Ok((pos, None));
                }
                let n = (left as usize).min(rest.len());
                let s = &mut self.streams[slot];
                let offset = s.have.unwrap_or(0);
                let have = offset + n as u32;
                let left = left - n as u32;
                self.reading = (left > 0).then_some((slot, left));
                let last = have == s.info.length;
                s.have = if last { None } else { Some(have) };
                let step = Framed::Payload {
                    slot,
                    message: s.info,
                    offset,
                    bytes: &rest[..n],
                    last,
                };
                return Ok((pos + n, Some(step)));
            }
            if pos == input.len() {
                return Ok((pos, None));
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
                        return Ok((input.len(), None));
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
                        return Ok((input.len(), None));
                    }
                }
            };
            if let Some(start) = self.start_chunk(header)? {
                return Ok((pos, Some(start)));
            }
        }
    }

    #[inline]
    fn find(&self, csid: u32) -> Option<usize> {
        self.streams.iter().position(|s| s.info.csid == csid)
    }

    /// Parses one chunk header from the front of `b`; `None` if `b` ends inside it.
    #[inline]
    fn parse_header(&self, b: &[u8]) -> Result<Option<Header>, FrameError> {
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
                return Err(FrameError::NoPreviousHeader { fmt, csid });
            }
            return Self::parse_message_header(b, fmt, csid, at, None);
        };
        if fmt == 3 {
            let mut h = Header {
                fmt,
                csid,
                timestamp: prev.delta,
                extended: prev.extended,
                length: prev.info.length,
                type_id: prev.info.type_id,
                stream_id: prev.info.stream_id,
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
        Self::parse_message_header(b, fmt, csid, at, Some(prev))
    }

    /// Message header of types 0, 1 and 2 (11, 7 and 3 bytes), then the extended timestamp.
    #[inline]
    fn parse_message_header(
        b: &[u8],
        fmt: u8,
        csid: u32,
        at: usize,
        prev: Option<&ChunkStream>,
    ) -> Result<Option<Header>, FrameError> {
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
            (1, Some(p)) => (be24(&m[3..6]), m[6], p.info.stream_id),
            (_, Some(p)) => (p.info.length, p.info.type_id, p.info.stream_id),
            (_, None) => return Err(FrameError::NoPreviousHeader { fmt, csid }),
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

    /// Applies a parsed header: starts a message (returned as a step) or continues one, and
    /// sets up the payload read for this chunk.
    #[inline]
    fn start_chunk(&mut self, h: Header) -> Result<Option<Framed<'static>>, FrameError> {
        let slot = match self.find(h.csid) {
            Some(i) => i,
            None => {
                if self.streams.len() >= self.max_chunk_streams {
                    return Err(FrameError::TooManyChunkStreams(self.max_chunk_streams));
                }
                let info = MessageInfo {
                    csid: h.csid,
                    timestamp: 0,
                    length: 0,
                    type_id: 0,
                    stream_id: 0,
                };
                self.streams.push(ChunkStream {
                    info,
                    delta: 0,
                    extended: false,
                    have: None,
                });
                self.streams.len() - 1
            }
        };
        let s = &mut self.streams[slot];
        let continuing = h.fmt == 3 && s.have.is_some();
        let mut start = None;
        if !continuing {
            // A new message. A type 0/1/2 header in the middle of a message drops the partial
            // one, as if the peer had sent Abort (ffmpeg does the same when the size changes).
            let dropped = s.have.take().map(|_| s.info.length);
            s.info.timestamp = match h.fmt {
                0 => h.timestamp,
                _ => s.info.timestamp.wrapping_add(h.timestamp),
            };
            s.delta = h.timestamp;
            if h.fmt != 3 {
                s.extended = h.extended;
            }
            s.info.length = h.length;
            s.info.type_id = h.type_id;
            s.info.stream_id = h.stream_id;
            s.have = Some(0);
            start = Some(Framed::Start {
                slot,
                message: s.info,
                dropped,
            });
        }
        // A continuation's extended timestamp repeats the message's and is ignored.
        let have = s.have.unwrap_or(0);
        self.reading = Some((slot, (s.info.length - have).min(self.chunk_size)));
        Ok(start)
    }
}
