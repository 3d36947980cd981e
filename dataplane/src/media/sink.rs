//! Where a live stream's frames go besides its local viewers.

use super::frame::FrameRef;
use super::port::{ClientRef, Port, Pushed, Urgency};
use super::recorder::RecorderRef;
use super::stream_key::StreamKey;

/// An output of a live stream that takes every frame as it arrives, in order. Local viewers
/// are the one kind kept apart (`LiveStream::viewers`): each has its own policy and they
/// share one buffer per media batch, which is the hot path at thousands of viewers.
/// Recorders, relay pushes, multicast and HTTP outputs become new variants here, each
/// handled in `offer`, without touching the fan-out loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sink {
    /// Another worker with viewers of this stream: each frame crosses to it once, as
    /// refcounted bytes, and it fans out locally.
    Worker(usize),
    /// A recording of the stream on this worker (see `media::recorder`): each frame
    /// becomes an FLV tag in its buffer; the worker writes it out through its ring.
    Recorder(RecorderRef),
    /// The stream's multicast outputs on this worker (see `multicast/`): each frame is
    /// muxed to MPEG-TS once and the bytes shared by all of them.
    Multicast,
    /// A push relay's connection to its target (`relay::push`), publishing on its message
    /// stream `stream_id`: each frame joins that connection's bounded send queue as it
    /// would a viewer's, so a slow target drops to the next key frame (and one that stops
    /// reading is closed and retried) while the publisher never waits.
    Push { link: ClientRef, stream_id: u32 },
}

impl Sink {
    pub(crate) fn offer<P: Port>(
        &self,
        key: &StreamKey,
        publish_id: u64,
        frame: &FrameRef,
        port: &mut P,
    ) {
        match *self {
            Sink::Worker(w) => port.to_worker(w, key, publish_id, frame.message()),
            Sink::Recorder(r) => port.record(r, frame),
            Sink::Multicast => port.multicast(key, frame),
            Sink::Push { link, stream_id } => push(link, stream_id, frame, port),
        }
    }
}

/// A frame into a push's queue; a target past the queue's `max_lag_ms` is closed (the
/// engine retries it after back-off).
fn push<P: Port>(link: ClientRef, stream_id: u32, frame: &FrameRef, port: &mut P) {
    if let Pushed::TooSlow { lag_ms, max_lag_ms } =
        port.frame(link, stream_id, frame, Urgency::Media)
    {
        port.close(
            link,
            format!("push target too slow: {lag_ms} ms behind (limit {max_lag_ms} ms)"),
        );
    }
}
