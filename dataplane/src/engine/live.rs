//! A worker's view of one live stream: where its media comes from (a local publisher or
//! another worker), its GOP cache, and the local viewers it fans out to.

use std::cell::RefCell;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};

use super::cross::MediaMessage;
use crate::media::gop_cache::{CachedFrame, GopCache, GopCacheLimits};
use crate::media::tag::{self, FrameKind};
use crate::proto::rtmp::chunk_encoder::{encode_message, encoded_len};
use crate::proto::rtmp::{csid, msg_type, Message};

/// One media message, chunked at most once per output format (chunk size, message stream
/// id) on this worker; every viewer's send queue holds handles to those same bytes.
pub struct Frame {
    pub timestamp: u32,
    pub type_id: u8,
    pub kind: FrameKind,
    pub payload: Bytes,
    chunked: RefCell<Vec<(u32, u32, Bytes)>>,
}

pub type FrameRef = Rc<Frame>;

impl Frame {
    pub fn new(m: MediaMessage) -> FrameRef {
        let kind = tag::classify(m.type_id, &m.payload);
        Rc::new(Frame {
            timestamp: m.timestamp,
            type_id: m.type_id,
            kind,
            payload: m.payload,
            chunked: RefCell::new(Vec::new()),
        })
    }

    pub fn message(&self) -> MediaMessage {
        MediaMessage {
            timestamp: self.timestamp,
            type_id: self.type_id,
            payload: self.payload.clone(),
        }
    }

    pub fn chunked(&self, chunk_size: u32, stream_id: u32) -> Bytes {
        let mut cache = self.chunked.borrow_mut();
        if let Some((_, _, b)) = cache
            .iter()
            .find(|(c, s, _)| *c == chunk_size && *s == stream_id)
        {
            return b.clone();
        }
        let csid = match self.type_id {
            msg_type::AUDIO => csid::AUDIO,
            msg_type::VIDEO => csid::VIDEO,
            _ => csid::DATA,
        };
        let msg = Message {
            csid,
            timestamp: self.timestamp,
            type_id: self.type_id,
            stream_id,
            payload: self.payload.clone(),
        };
        let mut out = BytesMut::with_capacity(encoded_len(&msg, chunk_size));
        encode_message(&msg, chunk_size, &mut out);
        let bytes = out.freeze();
        cache.push((chunk_size, stream_id, bytes.clone()));
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

/// A connection slot and its generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnRef {
    pub slot: u32,
    pub generation: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Nobody publishes (viewers wait for PublishNotify).
    None,
    Local {
        publisher: ConnRef,
        publish_id: u64,
    },
    Remote {
        worker: usize,
        publish_id: u64,
    },
}

pub struct LiveStream {
    pub source: Source,
    pub gop: GopCache<FrameRef>,
    /// Local viewers: connection and the message stream id they play on.
    pub viewers: Vec<(ConnRef, u32)>,
    /// Other workers with viewers (only while the publisher is local).
    pub remote_workers: Vec<usize>,
    pub stats: StreamStats,
    /// Audio and video that arrived since the last media flush, numbered: at the flush,
    /// every viewer that is caught up gets all of it as one shared buffer (one queue item,
    /// one iovec) instead of one item per message.
    pub pending: Vec<(u64, FrameRef)>,
    /// The number the next pending frame gets.
    pub next_seq: u64,
}

/// What the control socket reports about a stream; rates are refreshed once a second.
#[derive(Debug, Default, Clone)]
pub struct StreamStats {
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub rate_in: f64,
    pub rate_out: f64,
    last_in: u64,
    last_out: u64,
    /// Unix time the current publish started.
    pub since: f64,
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
    /// Client id and address of a local publisher.
    pub publisher: Option<(u64, String)>,
}

impl StreamStats {
    /// Fresh statistics for a publish that starts now.
    pub fn published(since: f64, publisher: Option<(u64, String)>) -> Self {
        StreamStats {
            since,
            publisher,
            ..Default::default()
        }
    }

    pub fn tick(&mut self, secs: f64) {
        if secs > 0.0 {
            self.rate_in = (self.bytes_in - self.last_in) as f64 * 8.0 / secs;
            self.rate_out = (self.bytes_out - self.last_out) as f64 * 8.0 / secs;
        }
        self.last_in = self.bytes_in;
        self.last_out = self.bytes_out;
    }

    /// Codec names from sequence headers, as they arrive.
    pub fn note_codecs(&mut self, frame: &Frame) {
        match frame.kind {
            FrameKind::VideoHeader => {
                self.video_codec =
                    tag::video_codec(&frame.payload).map(|c| format!("{c:?}").to_lowercase())
            }
            FrameKind::AudioHeader => {
                self.audio_codec =
                    tag::audio_codec(&frame.payload).map(|c| format!("{c:?}").to_lowercase())
            }
            _ => {}
        }
    }
}

impl LiveStream {
    pub fn new() -> Self {
        LiveStream {
            source: Source::None,
            gop: GopCache::new(GopCacheLimits::default()),
            viewers: Vec::new(),
            remote_workers: Vec::new(),
            stats: StreamStats::default(),
            pending: Vec::new(),
            next_seq: 0,
        }
    }

    pub fn is_live(&self) -> bool {
        self.source != Source::None
    }

    pub fn publish_id(&self) -> Option<u64> {
        match self.source {
            Source::None => None,
            Source::Local { publish_id, .. } | Source::Remote { publish_id, .. } => {
                Some(publish_id)
            }
        }
    }

    pub fn is_unused(&self) -> bool {
        self.viewers.is_empty() && !matches!(self.source, Source::Local { .. })
    }
}
