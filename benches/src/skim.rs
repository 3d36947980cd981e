//! A skimming RTMP chunk parser for the load tool's players.
//!
//! `dataplane::proto::rtmp::chunk_decoder::ChunkDecoder` reassembles every message into its
//! own `BytesMut`: one allocation and a copy of every payload byte. For 5,000 players at
//! 2 Mbit/s that is ~385,000 allocations and ~1.25 GB of memcpy a second spent on bytes a
//! player throws away, enough to make the load tool the bottleneck it is meant to measure.
//! A player only needs the boundaries and timestamps of audio and video messages and the first
//! bytes of each (to tell a picture from a sequence header), so this parser follows the same
//! header rules as `ChunkDecoder` (it mirrors its timestamp and type-3 handling) but keeps
//! only a small per-stream head of each media payload. Other messages (control, commands,
//! data) are small and rare; they are reassembled into a per-chunk-stream buffer that is
//! reused, so steady state allocates nothing.

use dataplane::proto::rtmp::msg_type;

/// Chunk size until the peer sends Set Chunk Size.
pub const DEFAULT_CHUNK_SIZE: u32 = 128;
/// 3-byte basic header, 11-byte type-0 header, 4-byte extended timestamp.
const MAX_HEADER_LEN: usize = 3 + 11 + 4;
const EXTENDED_TIMESTAMP: u32 = 0xFF_FFFF;
/// Bytes kept from the front of each media payload: enough for `media::classify` on legacy
/// and Enhanced RTMP headers (a FourCC after a ModEx/multitrack prefix).
pub const MEDIA_HEAD_LEN: usize = 16;
/// Non-media messages (commands, control, data) larger than this are refused: a player gets
/// nothing that big except onMetaData, which is a few hundred bytes.
const MAX_BUFFERED_MESSAGE: u32 = 1 << 20;
/// Chunk streams a server may use towards one player.
const MAX_CHUNK_STREAMS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkimError {
    #[error("chunk type {fmt} on chunk stream {csid} with no previous header")]
    NoPreviousHeader { fmt: u8, csid: u32 },
    #[error("more than {MAX_CHUNK_STREAMS} chunk streams")]
    TooManyChunkStreams,
    #[error("non-media message of {0} bytes")]
    TooLarge(u32),
    #[error("bad set chunk size")]
    BadChunkSize,
}

/// What the skimmer reports, borrowed from its buffers for the length of the callback.
#[derive(Debug)]
pub enum Skimmed<'a> {
    /// An audio or video message has been received completely.
    Media {
        type_id: u8,
        timestamp: u32,
        len: u32,
        /// The first `MEDIA_HEAD_LEN` bytes of its payload (fewer if it is shorter).
        head: &'a [u8],
    },
    /// Any other message, reassembled.
    Message {
        type_id: u8,
        stream_id: u32,
        timestamp: u32,
        payload: &'a [u8],
    },
}

#[derive(Debug)]
struct ChunkStream {
    csid: u32,
    timestamp: u32,
    delta: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
    extended: bool,
    /// A message is in progress and this many of its bytes have been received.
    have: Option<u32>,
    /// Reassembly buffer for non-media messages (reused).
    buf: Vec<u8>,
    head: [u8; MEDIA_HEAD_LEN],
}

#[derive(Debug, Clone, Copy)]
struct Header {
    fmt: u8,
    csid: u32,
    timestamp: u32,
    extended: bool,
    length: u32,
    type_id: u8,
    stream_id: u32,
    len: usize,
}

fn is_media(type_id: u8) -> bool {
    type_id == msg_type::AUDIO || type_id == msg_type::VIDEO
}

#[derive(Debug)]
pub struct Skimmer {
    chunk_size: u32,
    streams: Vec<ChunkStream>,
    header: [u8; MAX_HEADER_LEN],
    header_len: usize,
    reading: Option<(usize, u32)>,
}

impl Default for Skimmer {
    fn default() -> Self {
        Self::new()
    }
}

impl Skimmer {
    pub fn new() -> Self {
        Skimmer {
            chunk_size: DEFAULT_CHUNK_SIZE,
            streams: Vec::new(),
            header: [0; MAX_HEADER_LEN],
            header_len: 0,
            reading: None,
        }
    }

    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Parses `input`, calling `on` for each message completed. Set Chunk Size and Abort take
    /// effect where they complete.
    pub fn feed(
        &mut self,
        input: &[u8],
        on: &mut impl FnMut(Skimmed<'_>),
    ) -> Result<(), SkimError> {
        let mut pos = 0;
        while pos < input.len() {
            if let Some((idx, left)) = self.reading {
                pos += self.read_payload(idx, left, &input[pos..], on)?;
                continue;
            }
            let header = if self.header_len == 0 {
                match self.parse_header(&input[pos..])? {
                    Some(h) => {
                        pos += h.len;
                        h
                    }
                    None => {
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
                        pos += h.len.saturating_sub(had);
                        h
                    }
                    None => {
                        self.header_len = had + take;
                        return Ok(());
                    }
                }
            };
            self.start_chunk(header, on)?;
        }
        Ok(())
    }

    fn find(&self, csid: u32) -> Option<usize> {
        self.streams.iter().position(|s| s.csid == csid)
    }

    fn parse_header(&self, b: &[u8]) -> Result<Option<Header>, SkimError> {
        let Some(&b0) = b.first() else {
            return Ok(None);
        };
        let fmt = b0 >> 6;
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
        let prev = self.find(csid).map(|i| &self.streams[i]);
        if fmt == 3 {
            let Some(prev) = prev else {
                return Err(SkimError::NoPreviousHeader { fmt, csid });
            };
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
        let size = [11, 7, 3][usize::from(fmt)];
        let Some(m) = b.get(at..at + size) else {
            return Ok(None);
        };
        let be24 = |s: &[u8]| u32::from_be_bytes([0, s[0], s[1], s[2]]);
        let field = be24(&m[0..3]);
        let (length, type_id, stream_id) = match (fmt, prev) {
            (0, _) => (
                be24(&m[3..6]),
                m[6],
                u32::from_le_bytes([m[7], m[8], m[9], m[10]]),
            ),
            (1, Some(p)) => (be24(&m[3..6]), m[6], p.stream_id),
            (_, Some(p)) => (p.length, p.type_id, p.stream_id),
            (_, None) => return Err(SkimError::NoPreviousHeader { fmt, csid }),
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

    fn start_chunk(
        &mut self,
        h: Header,
        on: &mut impl FnMut(Skimmed<'_>),
    ) -> Result<(), SkimError> {
        let idx = match self.find(h.csid) {
            Some(i) => i,
            None => {
                if self.streams.len() >= MAX_CHUNK_STREAMS {
                    return Err(SkimError::TooManyChunkStreams);
                }
                self.streams.push(ChunkStream {
                    csid: h.csid,
                    timestamp: 0,
                    delta: 0,
                    length: 0,
                    type_id: 0,
                    stream_id: 0,
                    extended: false,
                    have: None,
                    buf: Vec::new(),
                    head: [0; MEDIA_HEAD_LEN],
                });
                self.streams.len() - 1
            }
        };
        let s = &mut self.streams[idx];
        let continuing = h.fmt == 3 && s.have.is_some();
        if !continuing {
            if !is_media(h.type_id) && h.length > MAX_BUFFERED_MESSAGE {
                return Err(SkimError::TooLarge(h.length));
            }
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
            s.have = Some(0);
            s.buf.clear();
        }
        let have = s.have.unwrap_or(0);
        let left = (s.length - have).min(self.chunk_size);
        if left == 0 {
            return self.complete(idx, on);
        }
        self.reading = Some((idx, left));
        Ok(())
    }

    fn read_payload(
        &mut self,
        idx: usize,
        left: u32,
        input: &[u8],
        on: &mut impl FnMut(Skimmed<'_>),
    ) -> Result<usize, SkimError> {
        let n = (left as usize).min(input.len());
        let s = &mut self.streams[idx];
        let have = s.have.unwrap_or(0);
        let bytes = &input[..n];
        if is_media(s.type_id) {
            let h = have as usize;
            if h < MEDIA_HEAD_LEN {
                let k = (MEDIA_HEAD_LEN - h).min(n);
                s.head[h..h + k].copy_from_slice(&bytes[..k]);
            }
        } else {
            s.buf.extend_from_slice(bytes);
        }
        let have = have + n as u32;
        s.have = Some(have);
        let done = have == s.length;
        let left = left - n as u32;
        self.reading = (left > 0).then_some((idx, left));
        if done {
            self.complete(idx, on)?;
        }
        Ok(n)
    }

    fn complete(&mut self, idx: usize, on: &mut impl FnMut(Skimmed<'_>)) -> Result<(), SkimError> {
        let word = |p: &[u8]| {
            p.get(..4)
                .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
        };
        let s = &mut self.streams[idx];
        s.have = None;
        let type_id = s.type_id;
        if is_media(type_id) {
            let head_len = (s.length as usize).min(MEDIA_HEAD_LEN);
            on(Skimmed::Media {
                type_id,
                timestamp: s.timestamp,
                len: s.length,
                head: &s.head[..head_len],
            });
            return Ok(());
        }
        match type_id {
            msg_type::SET_CHUNK_SIZE => {
                let n = word(&s.buf).ok_or(SkimError::BadChunkSize)?;
                if n == 0 || n > 0x7FFF_FFFF {
                    return Err(SkimError::BadChunkSize);
                }
                self.chunk_size = n;
            }
            msg_type::ABORT => {
                if let Some(target) = word(&s.buf) {
                    if let Some(i) = self.find(target) {
                        self.streams[i].have = None;
                    }
                }
            }
            _ => {}
        }
        let s = &self.streams[idx];
        on(Skimmed::Message {
            type_id,
            stream_id: s.stream_id,
            timestamp: s.timestamp,
            payload: &s.buf,
        });
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use dataplane::proto::rtmp::chunk_decoder::ChunkDecoder;
    use dataplane::proto::rtmp::chunk_encoder::ChunkEncoder;
    use dataplane::proto::rtmp::control::ControlMessage;
    use dataplane::proto::rtmp::Message;

    fn msg(csid: u32, ts: u32, type_id: u8, len: usize) -> Message {
        Message {
            csid,
            timestamp: ts,
            type_id,
            stream_id: 1,
            payload: Bytes::from((0..len).map(|i| i as u8).collect::<Vec<_>>()),
        }
    }

    /// The skimmer sees the same messages (type, timestamp, length, head) as the full decoder,
    /// whatever the split of the input and across a chunk size change.
    #[test]
    fn agrees_with_chunk_decoder_at_any_split() {
        let mut enc = ChunkEncoder::new(128);
        let mut wire = Vec::new();
        enc.encode(&msg(6, 0, 9, 9000), &mut wire);
        enc.encode(&msg(4, 0, 8, 300), &mut wire);
        enc.encode(&msg(4, 23, 8, 300), &mut wire);
        enc.encode(&msg(4, 46, 8, 300), &mut wire);
        let mut scs = ControlMessage::SetChunkSize(4096).to_message();
        scs.stream_id = 0;
        enc.encode(&scs, &mut wire);
        enc.set_chunk_size(4096);
        enc.encode(&msg(6, 33, 9, 9000), &mut wire);
        enc.encode(&msg(6, 0x0100_0000, 9, 10), &mut wire);
        enc.encode(&msg(6, 0x0100_0021, 9, 5000), &mut wire);
        enc.encode(&msg(5, 40, 18, 200), &mut wire);

        let mut dec = ChunkDecoder::default();
        let mut want = Vec::new();
        dec.feed(&wire, &mut want).unwrap();
        for step in [1, 2, 7, 100, 4099, wire.len()] {
            let mut sk = Skimmer::new();
            let mut got = Vec::new();
            for part in wire.chunks(step) {
                sk.feed(part, &mut |m| match m {
                    Skimmed::Media {
                        type_id,
                        timestamp,
                        len,
                        head,
                    } => got.push((type_id, timestamp, len as usize, head.to_vec())),
                    Skimmed::Message {
                        type_id,
                        timestamp,
                        payload,
                        ..
                    } => got.push((type_id, timestamp, payload.len(), payload.to_vec())),
                })
                .unwrap();
            }
            let expect: Vec<_> = want
                .iter()
                .map(|m| {
                    let head = if is_media(m.type_id) {
                        m.payload[..m.payload.len().min(MEDIA_HEAD_LEN)].to_vec()
                    } else {
                        m.payload.to_vec()
                    };
                    (m.type_id, m.timestamp, m.payload.len(), head)
                })
                .collect();
            assert_eq!(got, expect, "split {step}");
            assert_eq!(sk.chunk_size(), 4096);
        }
    }
}
