//! The media layer: what live messages are and how each output format encodes them, live
//! streams with their sources and sinks, the viewer policy, the GOP cache a new viewer
//! starts from, and each viewer's send queue. It reaches clients only through a `Port`.
//! Sans-IO like `proto`: no sockets, threads or clocks; time is the media timestamps
//! passed in.

pub(crate) mod data_frame;
pub mod frame;
pub(crate) mod gop_cache;
pub mod live_stream;
pub(crate) mod play_statuses;
pub mod port;
pub mod recorder;
pub(crate) mod send_queue;
pub(crate) mod sink;
pub(crate) mod stream_key;
pub(crate) mod tag;
#[cfg(test)]
pub(crate) mod test_port;
pub mod viewer;
pub(crate) mod vod;

pub use gop_cache::{CachedFrame, GopCache, GopCacheLimits};
pub use send_queue::{PushOutcome, QueueLimits, SendQueue};
pub use stream_key::StreamKey;
pub use tag::{classify, FrameKind};
