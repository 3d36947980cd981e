//! The media layer: what live messages are, what a new viewer is sent first, and how each
//! viewer's send queue keeps a slow reader from slowing anyone else. Sans-IO like `proto`:
//! no sockets, threads or clocks; time is the media timestamps passed in.

pub mod gop_cache;
pub mod send_queue;
pub mod tag;

pub use gop_cache::{CachedFrame, GopCache, GopCacheLimits};
pub use send_queue::{PushOutcome, QueueLimits, SendQueue};
pub use tag::{audio_codec, classify, video_codec, AudioCodec, FrameKind, VideoCodec};
