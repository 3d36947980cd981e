//! What workers tell each other. A media message crosses to each worker with viewers once,
//! as refcounted bytes; that worker fans it out locally.

use bytes::Bytes;

use crate::app::StreamKey;

/// One audio, video or data message as the publisher sent it.
#[derive(Debug, Clone)]
pub struct MediaMessage {
    pub timestamp: u32,
    pub type_id: u8,
    pub payload: Bytes,
}

#[derive(Debug)]
pub enum WorkerMsg {
    /// To the publisher's worker: `worker` now has viewers of `key`.
    Subscribe { key: StreamKey, worker: usize },
    /// To the publisher's worker: `worker` has no viewers of `key` left.
    Unsubscribe { key: StreamKey, worker: usize },
    /// To a viewers' worker: `key` is live, here is what a new viewer needs first.
    StreamStarted { key: StreamKey, publish_id: u64, snapshot: Vec<MediaMessage> },
    Media { key: StreamKey, publish_id: u64, message: MediaMessage },
    StreamStopped { key: StreamKey, publish_id: u64 },
    Shutdown,
}
