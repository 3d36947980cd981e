//! One live message as every output shares it: the payload once, and each output format's
//! encoding of it made at most once per worker.

use std::cell::RefCell;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};

use super::gop_cache::CachedFrame;
use super::tag::{self, FrameKind};
use crate::proto::rtmp::chunk_encoder::{encode_message, encoded_len};
use crate::proto::rtmp::{csid, msg_type, Message};

/// One audio, video or data message as the publisher sent it (what crosses between workers).
#[derive(Debug, Clone)]
pub struct MediaMessage {
    pub timestamp: u32,
    pub type_id: u8,
    pub payload: Bytes,
}

/// How an output puts a message on the wire. Each viewer has one; viewers with the same one
/// share the same encoded bytes. FLV tags and MPEG-TS packets become new variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// RTMP chunks of `chunk_size` on message stream `stream_id`.
    Rtmp { chunk_size: u32, stream_id: u32 },
}

impl OutputFormat {
    /// A message encoded in this format, appended to `out`.
    fn encode(self, timestamp: u32, type_id: u8, payload: &Bytes, out: &mut BytesMut) {
        match self {
            OutputFormat::Rtmp {
                chunk_size,
                stream_id,
            } => {
                let csid = match type_id {
                    msg_type::AUDIO => csid::AUDIO,
                    msg_type::VIDEO => csid::VIDEO,
                    _ => csid::DATA,
                };
                let msg = Message {
                    csid,
                    timestamp,
                    type_id,
                    stream_id,
                    payload: payload.clone(),
                };
                out.reserve(encoded_len(&msg, chunk_size));
                encode_message(&msg, chunk_size, out);
            }
        }
    }
}

/// A media message on this worker with its encodings; every viewer's send queue holds
/// handles to those same bytes.
pub struct Frame {
    pub timestamp: u32,
    pub(crate) type_id: u8,
    pub kind: FrameKind,
    pub(crate) payload: Bytes,
    encodings: RefCell<Vec<(OutputFormat, Bytes)>>,
}

/// Frames are shared by the GOP cache, the pending batch and the fan-out of one worker only
/// (another worker gets the `MediaMessage` and makes its own), hence `Rc`.
pub type FrameRef = Rc<Frame>;

impl Frame {
    pub(crate) fn new(m: MediaMessage) -> FrameRef {
        let kind = tag::classify(m.type_id, &m.payload);
        Rc::new(Frame {
            timestamp: m.timestamp,
            type_id: m.type_id,
            kind,
            payload: m.payload,
            encodings: RefCell::new(Vec::new()),
        })
    }

    pub(crate) fn message(&self) -> MediaMessage {
        MediaMessage {
            timestamp: self.timestamp,
            type_id: self.type_id,
            payload: self.payload.clone(),
        }
    }

    /// This frame in `format`, encoded the first time it is asked for.
    pub fn encoded(&self, format: OutputFormat) -> Bytes {
        let mut cache = self.encodings.borrow_mut();
        if let Some((_, b)) = cache.iter().find(|(f, _)| *f == format) {
            return b.clone();
        }
        let mut out = BytesMut::new();
        format.encode(self.timestamp, self.type_id, &self.payload, &mut out);
        let bytes = out.freeze();
        cache.push((format, bytes.clone()));
        bytes
    }
}

impl CachedFrame for FrameRef {
    fn kind(&self) -> FrameKind {
        self.kind
    }
    fn timestamp(&self) -> u32 {
        self.timestamp
    }
    fn size(&self) -> usize {
        self.payload.len()
    }
}

/// The audio and video a stream gathered since its last media flush, numbered, with the
/// whole batch's encodings per output format: caught-up viewers of the same format share
/// one buffer for all of it (one queue item, one iovec, one refcount per viewer).
pub struct Batch<'a> {
    pub(crate) frames: &'a [(u64, FrameRef)],
    pub(crate) first_seq: u64,
    pub first_timestamp: u32,
    /// What the batch counts as in a send queue: video if any frame is video.
    pub kind: FrameKind,
    /// Payload bytes in the batch, for the stream's statistics.
    pub(crate) payload_bytes: u64,
    joined: RefCell<Vec<(OutputFormat, Bytes)>>,
}

impl<'a> Batch<'a> {
    /// None for an empty batch.
    pub(crate) fn new(frames: &'a [(u64, FrameRef)]) -> Option<Self> {
        let (first_seq, first) = frames.first()?;
        let has_video = frames.iter().any(|(_, f)| f.kind.is_video());
        Some(Batch {
            frames,
            first_seq: *first_seq,
            first_timestamp: first.timestamp,
            kind: if has_video {
                FrameKind::VideoInter
            } else {
                FrameKind::Audio
            },
            payload_bytes: frames.iter().map(|(_, f)| f.payload.len() as u64).sum(),
            joined: RefCell::new(Vec::new()),
        })
    }

    pub(crate) fn has_video(&self) -> bool {
        self.kind == FrameKind::VideoInter
    }

    /// The whole batch in `format`, joined into one buffer the first time it is asked for.
    /// Built from each frame's own encoding, so the bytes on the wire are the same as when
    /// the frames go one by one.
    pub fn encoded(&self, format: OutputFormat) -> Bytes {
        let mut cache = self.joined.borrow_mut();
        if let Some((_, b)) = cache.iter().find(|(f, _)| *f == format) {
            return b.clone();
        }
        let parts: Vec<Bytes> = self.frames.iter().map(|(_, f)| f.encoded(format)).collect();
        let mut out = BytesMut::with_capacity(parts.iter().map(Bytes::len).sum());
        for p in &parts {
            out.extend_from_slice(p);
        }
        let bytes = out.freeze();
        cache.push((format, bytes.clone()));
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(type_id: u8, payload: &'static [u8]) -> FrameRef {
        Frame::new(MediaMessage {
            timestamp: 40,
            type_id,
            payload: Bytes::from_static(payload),
        })
    }

    #[test]
    fn each_format_is_encoded_once_and_shared() {
        let f = frame(msg_type::VIDEO, &[0x27, 1, 0, 0, 0]);
        let a = OutputFormat::Rtmp {
            chunk_size: 128,
            stream_id: 1,
        };
        let b = OutputFormat::Rtmp {
            chunk_size: 4096,
            stream_id: 1,
        };
        let (a1, a2, b1) = (f.encoded(a), f.encoded(a), f.encoded(b));
        assert_eq!(a1.as_ptr(), a2.as_ptr(), "same format, same bytes");
        assert_eq!(a1, b1, "a small message chunks alike at both sizes");
        assert_ne!(a1.as_ptr(), b1.as_ptr());
    }

    #[test]
    fn a_batch_is_its_frames_encodings_joined() {
        let frames = vec![
            (3, frame(msg_type::AUDIO, &[0xAF, 1, 9])),
            (4, frame(msg_type::VIDEO, &[0x27, 1, 0, 0, 0])),
        ];
        let batch = Batch::new(&frames).expect("a batch");
        let fmt = OutputFormat::Rtmp {
            chunk_size: 128,
            stream_id: 1,
        };
        let mut expected = BytesMut::new();
        expected.extend_from_slice(&frames[0].1.encoded(fmt));
        expected.extend_from_slice(&frames[1].1.encoded(fmt));
        assert_eq!(batch.encoded(fmt), expected.freeze());
        assert_eq!((batch.first_seq, batch.has_video()), (3, true));
        assert!(Batch::new(&[]).is_none());
    }
}
