//! Reassembles RTMP messages from the chunk stream (RTMP specification §5.3), sans-IO.
//!
//! The framing (headers, chunk streams, chunk boundaries) is `ChunkFramer`'s; this keeps the
//! payloads. Input may be split at any byte: a partial payload lives in the message's own
//! buffer, allocated once at the size the header announces, and handed out as `Bytes`
//! without another copy.

use bytes::BytesMut;

use super::chunk_framer::{ChunkFramer, FrameError, Framed, MessageInfo};
use super::control::{check_chunk_size, ControlError};
use super::{msg_type, Message};

pub use super::chunk_framer::DEFAULT_CHUNK_SIZE;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecoderLimits {
    /// Largest message accepted; checked at the header, before the payload buffer is
    /// allocated, so a peer cannot make us reserve 16 MiB per chunk stream. Unfinished
    /// messages together may announce at most twice this (see `PENDING_FACTOR`).
    pub(crate) max_message_size: u32,
    /// Most distinct chunk streams one peer may use; each keeps a header and maybe a
    /// partial message.
    pub(crate) max_chunk_streams: usize,
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

impl From<FrameError> for ChunkError {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::TooManyChunkStreams(n) => ChunkError::TooManyChunkStreams(n),
            FrameError::NoPreviousHeader { fmt, csid } => {
                ChunkError::NoPreviousHeader { fmt, csid }
            }
        }
    }
}

#[derive(Debug)]
pub struct ChunkDecoder {
    limits: DecoderLimits,
    framer: ChunkFramer,
    /// The message being reassembled on each chunk-stream slot of the framer.
    partial: Vec<Option<BytesMut>>,
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
    pub(crate) fn new(limits: DecoderLimits) -> Self {
        ChunkDecoder {
            limits,
            framer: ChunkFramer::new(limits.max_chunk_streams),
            partial: Vec::new(),
            pending: 0,
        }
    }

    #[cfg(test)]
    /// The peer's current chunk size.
    pub(crate) fn chunk_size(&self) -> u32 {
        self.framer.chunk_size()
    }

    /// Decodes as much of `input` as it can; complete messages are pushed to `out`. Set Chunk
    /// Size and Abort take effect at the byte where they complete (and are pushed too). After
    /// an error the connection is to be closed.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<Message>) -> Result<(), ChunkError> {
        self.feed_inner(input, None, out)
    }

    /// `feed` for input held in `Bytes`: a message whose whole payload is in one chunk of
    /// `input` is handed out as a slice of it, not copied. Our RTMFP viewers read back
    /// the chunk stream the engine wrote for them this way (with a chunk size that keeps
    /// every message in one chunk), so their flows share the frames' bytes with every
    /// other viewer instead of holding a copy each.
    pub(crate) fn feed_shared(
        &mut self,
        input: &bytes::Bytes,
        out: &mut Vec<Message>,
    ) -> Result<(), ChunkError> {
        self.feed_inner(input, Some(input), out)
    }

    fn feed_inner(
        &mut self,
        input: &[u8],
        shared: Option<&bytes::Bytes>,
        out: &mut Vec<Message>,
    ) -> Result<(), ChunkError> {
        let mut pos = 0;
        loop {
            let (n, step) = self.framer.next(&input[pos..])?;
            pos += n;
            match step {
                None => return Ok(()),
                Some(Framed::Start {
                    slot,
                    message,
                    dropped,
                }) => self.start(slot, message, dropped)?,
                Some(Framed::Payload {
                    slot,
                    message,
                    bytes,
                    last,
                    ..
                }) => {
                    let mut whole = None;
                    if let Some(p) = self.partial.get_mut(slot).and_then(Option::as_mut) {
                        match shared {
                            // The whole payload in this one chunk: a slice of the input.
                            Some(s) if last && p.is_empty() => whole = Some(s.slice_ref(bytes)),
                            _ => {
                                // The one allocation per message, at the announced size.
                                if p.capacity() == 0 {
                                    p.reserve(message.length as usize);
                                }
                                p.extend_from_slice(bytes);
                            }
                        }
                    }
                    if last {
                        self.complete(slot, message, whole, out)?;
                    }
                }
            }
        }
    }

    fn start(
        &mut self,
        slot: usize,
        message: MessageInfo,
        dropped: Option<u32>,
    ) -> Result<(), ChunkError> {
        let limit = self.limits.max_message_size;
        if message.length > limit {
            return Err(ChunkError::MessageTooLarge {
                size: message.length,
                limit,
            });
        }
        if self.partial.len() <= slot {
            self.partial.resize_with(slot + 1, || None);
        }
        // The partial message being replaced (if any) no longer counts as pending.
        let pending = self.pending.saturating_sub(u64::from(dropped.unwrap_or(0)))
            + u64::from(message.length);
        let pending_limit = u64::from(limit) * PENDING_FACTOR;
        if pending > pending_limit {
            return Err(ChunkError::PendingTooLarge {
                size: pending,
                limit: pending_limit,
            });
        }
        self.pending = pending;
        // Allocated at the first payload bytes that must be copied, at the size the header
        // announces, never grown (`feed_shared` may need no buffer at all).
        self.partial[slot] = Some(BytesMut::new());
        Ok(())
    }

    /// Hands out the finished message on `slot`, acting on Set Chunk Size and Abort.
    fn complete(
        &mut self,
        slot: usize,
        info: MessageInfo,
        whole: Option<bytes::Bytes>,
        out: &mut Vec<Message>,
    ) -> Result<(), ChunkError> {
        let partial = self
            .partial
            .get_mut(slot)
            .and_then(Option::take)
            .unwrap_or_default();
        let payload = whole.unwrap_or_else(|| partial.freeze());
        self.pending = self.pending.saturating_sub(u64::from(info.length));
        let msg = Message {
            csid: info.csid,
            timestamp: info.timestamp,
            type_id: info.type_id,
            stream_id: info.stream_id,
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
                self.framer
                    .set_chunk_size(check_chunk_size(n).map_err(ChunkError::BadChunkSize)?);
            }
            msg_type::ABORT => {
                let target = word(&msg.payload).ok_or(ChunkError::ShortAbort(msg.payload.len()))?;
                if let Some((slot, length)) = self.framer.abort(target) {
                    if let Some(p) = self.partial.get_mut(slot) {
                        *p = None;
                    }
                    self.pending = self.pending.saturating_sub(u64::from(length));
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
