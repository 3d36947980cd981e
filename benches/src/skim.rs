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

use dataplane::proto::rtmp::chunk_framer::{ChunkFramer, FrameError, Framed, MessageInfo};
use dataplane::proto::rtmp::msg_type;

pub use dataplane::proto::rtmp::chunk_framer::DEFAULT_CHUNK_SIZE;

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
    #[error("{0}")]
    Frame(#[from] FrameError),
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
        csid: u32,
        type_id: u8,
        stream_id: u32,
        timestamp: u32,
        payload: &'a [u8],
    },
}

/// What the skimmer keeps per chunk-stream slot of the framer.
#[derive(Debug)]
struct Kept {
    /// Reassembly buffer for non-media messages (reused).
    buf: Vec<u8>,
    head: [u8; MEDIA_HEAD_LEN],
}

fn is_media(type_id: u8) -> bool {
    type_id == msg_type::AUDIO || type_id == msg_type::VIDEO
}

#[derive(Debug)]
pub struct Skimmer {
    framer: ChunkFramer,
    kept: Vec<Kept>,
}

impl Default for Skimmer {
    fn default() -> Self {
        Self::new()
    }
}

impl Skimmer {
    pub fn new() -> Self {
        Skimmer {
            framer: ChunkFramer::new(MAX_CHUNK_STREAMS),
            kept: Vec::new(),
        }
    }

    pub fn chunk_size(&self) -> u32 {
        self.framer.chunk_size()
    }

    /// Parses `input`, calling `on` for each message completed. Set Chunk Size and Abort take
    /// effect where they complete.
    pub fn feed(
        &mut self,
        input: &[u8],
        on: &mut impl FnMut(Skimmed<'_>),
    ) -> Result<(), SkimError> {
        let mut pos = 0;
        loop {
            let (n, step) = self.framer.next(&input[pos..])?;
            pos += n;
            match step {
                None => return Ok(()),
                Some(Framed::Start { slot, message, .. }) => {
                    if !is_media(message.type_id) && message.length > MAX_BUFFERED_MESSAGE {
                        return Err(SkimError::TooLarge(message.length));
                    }
                    if self.kept.len() <= slot {
                        self.kept.resize_with(slot + 1, || Kept {
                            buf: Vec::new(),
                            head: [0; MEDIA_HEAD_LEN],
                        });
                    }
                    self.kept[slot].buf.clear();
                }
                Some(Framed::Payload {
                    slot,
                    message,
                    offset,
                    bytes,
                    last,
                }) => {
                    let Some(k) = self.kept.get_mut(slot) else {
                        continue;
                    };
                    if is_media(message.type_id) {
                        let at = offset as usize;
                        if at < MEDIA_HEAD_LEN {
                            let take = (MEDIA_HEAD_LEN - at).min(bytes.len());
                            k.head[at..at + take].copy_from_slice(&bytes[..take]);
                        }
                    } else {
                        k.buf.extend_from_slice(bytes);
                    }
                    if last {
                        self.complete(slot, message, on)?;
                    }
                }
            }
        }
    }

    fn complete(
        &mut self,
        slot: usize,
        info: MessageInfo,
        on: &mut impl FnMut(Skimmed<'_>),
    ) -> Result<(), SkimError> {
        let Some(k) = self.kept.get(slot) else {
            return Ok(());
        };
        if is_media(info.type_id) {
            let head_len = (info.length as usize).min(MEDIA_HEAD_LEN);
            on(Skimmed::Media {
                type_id: info.type_id,
                timestamp: info.timestamp,
                len: info.length,
                head: &k.head[..head_len],
            });
            return Ok(());
        }
        let word = |p: &[u8]| {
            p.get(..4)
                .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
        };
        match info.type_id {
            msg_type::SET_CHUNK_SIZE => {
                let n = word(&k.buf).ok_or(SkimError::BadChunkSize)?;
                if n == 0 || n > 0x7FFF_FFFF {
                    return Err(SkimError::BadChunkSize);
                }
                self.framer.set_chunk_size(n);
            }
            msg_type::ABORT => {
                if let Some(target) = word(&k.buf) {
                    self.framer.abort(target);
                }
            }
            _ => {}
        }
        let k = &self.kept[slot];
        on(Skimmed::Message {
            csid: info.csid,
            type_id: info.type_id,
            stream_id: info.stream_id,
            timestamp: info.timestamp,
            payload: &k.buf,
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
