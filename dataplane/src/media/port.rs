//! How `media/` and `app/` reach a client without knowing its transport.
//!
//! A `Port` is the engine's side of every client on one worker: the media and application
//! code name a client by its `ClientRef` and say what it should get (a status, a stream
//! event, a frame, a whole batch); the port puts that on the client's transport (RTMP
//! chunks into a send queue today; RTMFP flows, HTTP responses later).
//!
//! It is a trait used as a generic parameter (`fn flush<P: Port>(.., port: &mut P)`), not a
//! trait object and not an enum: the engine instantiates the media functions once with its
//! port over all of a worker's transports, so every call on the fan-out path is static
//! dispatch and can be inlined, exactly as the direct calls it replaced; and the tests
//! instantiate them with an in-memory port that records what each client was told.

use super::frame::{Batch, Frame, FrameRef, MediaMessage};
use super::recorder::RecorderRef;
use super::stream_key::StreamKey;
use crate::proto::amf0::Amf0Value;

/// A client on this worker: its slot and the slot's generation, so that a stale reference
/// (to a client gone and its slot reused) finds nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientRef {
    pub slot: u32,
    pub generation: u32,
}

/// How serious a status is (`info.level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Status,
    Warning,
    Error,
}

impl Level {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Level::Status => "status",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
}

/// A NetStream's begin and end of media, apart from its statuses (RTMP: User Control
/// Stream Begin / Stream EOF).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEvent {
    Begin(u32),
    Eof(u32),
}

/// How a frame waits in the client's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgency {
    /// Never dropped and sent at once: metadata, sequence headers and the snapshot a viewer
    /// starts with (a GOP is seconds old by design; dropping it would defeat fast start).
    Now,
    /// Live media: droppable under lag, sent with the next media flush.
    Media,
}

/// What became of a frame handed to a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    /// Dropped by the client's queue (it lags; it waits for the next key frame).
    Dropped,
    /// The client lags more than it may: it must be told and closed.
    TooSlow {
        lag_ms: u32,
        max_lag_ms: u32,
    },
    /// The client is gone or closing.
    Gone,
}

pub trait Port {
    /// A status on a NetStream (`onStatus` with `level`, `code`, `description`, `details`).
    fn status(
        &mut self,
        client: ClientRef,
        stream_id: u32,
        level: Level,
        code: &str,
        description: &str,
        details: &str,
    );
    /// A command (`_result`, `_error`, `onStatus`, a call) on message stream `stream_id`.
    fn command(&mut self, client: ClientRef, stream_id: u32, values: &[Amf0Value]);
    /// A data message on a NetStream (`|RtmpSampleAccess`).
    fn data(&mut self, client: ClientRef, stream_id: u32, values: &[Amf0Value]);
    fn stream_event(&mut self, client: ClientRef, event: StreamEvent);
    /// One frame for a viewer playing on `stream_id`.
    fn frame(
        &mut self,
        client: ClientRef,
        stream_id: u32,
        frame: &FrameRef,
        urgency: Urgency,
    ) -> Pushed;
    /// The whole batch as one buffer, if the client can take it so: open, and nothing
    /// queued or being skipped (it is caught up). `false` leaves it to frame-by-frame.
    fn batch(&mut self, client: ClientRef, stream_id: u32, batch: &Batch<'_>) -> bool;
    /// Whether the client is still there and open.
    fn is_open(&self, client: ClientRef) -> bool;
    /// Bytes queued for `client` that the transport has not written yet (those in flight
    /// included); 0 for a client that is gone. A joiner catching up on its GOP gets its next
    /// round only once this is below a round (see `LiveStream::catch_up`).
    fn unsent(&self, client: ClientRef) -> usize;
    /// What was said to `client` so far goes out now (the media flush does the rest).
    fn flush(&mut self, client: ClientRef);
    /// Flushes what is queued for `client`, then closes it (after the current fan-out).
    fn close(&mut self, client: ClientRef, reason: String);
    /// A message of a stream published here, for another worker's copy of it (see
    /// `Sink::Worker`); `worker` is woken once at the end of the loop turn.
    fn to_worker(&mut self, worker: usize, key: &StreamKey, publish_id: u64, message: MediaMessage);
    /// A frame of a stream published here, for one of its recordings (see
    /// `Sink::Recorder`). A recording that cannot take it (failed) is the port's to report
    /// after the call, as a client to close is.
    fn record(&mut self, recorder: RecorderRef, frame: &Frame);
    /// A frame of a stream published here, for its multicast outputs (see
    /// `Sink::Multicast`).
    fn multicast(&mut self, key: &StreamKey, frame: &Frame);
}
