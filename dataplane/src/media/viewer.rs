//! The viewer policy: what one local viewer of a live stream gets, decided here once for
//! every transport. Start on a key frame; pause; receiveAudio/receiveVideo; play duration;
//! under lag its queue drops to the next key frame, and past `max_lag_ms` it is told
//! InsufficientBW and closed. Snapshot frames (the cached GOP it starts with) and
//! metadata/sequence headers are never dropped.

use super::frame::FrameRef;
use super::port::{ClientRef, Level, Port, Pushed, Urgency};
use super::stream_key::StreamKey;
use super::tag::FrameKind;
use crate::proto::rtmp::msg_type;

/// One NetStream playing a live stream on this worker.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub(crate) client: ClientRef,
    pub(crate) stream_id: u32,
    pub(crate) audio: bool,
    pub(crate) video: bool,
    pub(crate) paused: bool,
    /// Video waits for a key frame (start, after drops, after receiveVideo(true), unpause).
    pub(crate) need_key: bool,
    /// PublishNotify is due when the stream goes live (it was not live at play time).
    pub(crate) notify_on_publish: bool,
    /// `play`'s duration for a live stream: stop after this many milliseconds of media,
    /// counted from the first media frame sent (the timestamp is set then).
    pub(crate) duration: Option<(Option<u32>, u32)>,
    /// The first of the stream's batched frames this viewer has not been given (see
    /// `LiveStream::pending`): frames before it reached the viewer in its snapshot.
    pub(crate) from_seq: u64,
}

/// What became of one frame for one viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivered {
    /// Queued for the viewer.
    Sent,
    /// Not for this viewer (paused, filtered, waiting for a key frame), or dropped.
    Skipped,
    /// Its play duration is reached: it was told (Play.Stop) and stops playing.
    Stopped,
    /// It lags too much: it was told (InsufficientBW) and is being closed.
    Closed,
}

impl Viewer {
    /// A viewer that just asked to play; `live` says whether the stream has a source now.
    pub fn new(client: ClientRef, stream_id: u32, duration_secs: f64, live: bool) -> Self {
        Viewer {
            client,
            stream_id,
            audio: true,
            video: true,
            paused: false,
            need_key: true,
            notify_on_publish: !live,
            // Flash: -1 (or absent) plays to the end; a live stream has no "single frame"
            // for 0, so 0 counts as to the end too.
            duration: (duration_secs > 0.0).then(|| {
                (
                    None,
                    (duration_secs * 1000.0).min(f64::from(u32::MAX)) as u32,
                )
            }),
            from_seq: 0,
        }
    }

    /// Whether it can take a whole batch unfiltered (the port then decides whether its
    /// queue is caught up): nothing filtered out, no key frame awaited if the batch has
    /// video, no duration to count, and none of the batch already seen.
    pub(crate) fn takes_whole_batch(&self, first_seq: u64, has_video: bool) -> bool {
        !self.paused
            && self.audio
            && self.video
            && (!self.need_key || !has_video)
            && self.duration.is_none()
            && self.from_seq <= first_seq
    }

    pub(crate) fn set_receive(&mut self, audio: Option<bool>, video: Option<bool>) {
        if let Some(a) = audio {
            self.audio = a;
        }
        if let Some(on) = video {
            self.need_key |= on && !self.video;
            self.video = on;
        }
    }

    pub(crate) fn set_paused(&mut self, pause: bool) {
        self.paused = pause;
        self.need_key |= !pause;
    }

    /// Hands `frame` to the viewer through `port` if its policy lets it through.
    pub(crate) fn deliver<P: Port>(
        &mut self,
        key: &StreamKey,
        frame: &FrameRef,
        snapshot: bool,
        port: &mut P,
    ) -> Delivered {
        let kind = frame.kind;
        let is_video = frame.type_id == msg_type::VIDEO;
        let is_audio = frame.type_id == msg_type::AUDIO;
        let header_or_meta = matches!(
            kind,
            FrameKind::Metadata | FrameKind::AudioHeader | FrameKind::VideoHeader
        );
        if !header_or_meta {
            if self.paused || (is_video && !self.video) || (is_audio && !self.audio) {
                return Delivered::Skipped;
            }
            if is_video {
                if self.need_key && kind != FrameKind::VideoKey {
                    return Delivered::Skipped;
                }
                if kind == FrameKind::VideoKey {
                    self.need_key = false;
                }
            }
            if let Some((first, limit)) = &mut self.duration {
                let start = *first.get_or_insert(frame.timestamp);
                if frame.timestamp.wrapping_sub(start) >= *limit {
                    if !port.is_open(self.client) {
                        return Delivered::Skipped;
                    }
                    port.status(
                        self.client,
                        self.stream_id,
                        Level::Status,
                        "NetStream.Play.Stop",
                        "Play duration reached.",
                        key.name(),
                    );
                    port.flush(self.client);
                    return Delivered::Stopped;
                }
            }
        }
        let urgency = if header_or_meta || snapshot {
            Urgency::Now
        } else {
            Urgency::Media
        };
        match port.frame(self.client, self.stream_id, frame, urgency) {
            Pushed::Queued => Delivered::Sent,
            Pushed::Dropped | Pushed::Gone => Delivered::Skipped,
            Pushed::TooSlow { lag_ms, max_lag_ms } => {
                port.status(
                    self.client,
                    self.stream_id,
                    Level::Warning,
                    "NetStream.Play.InsufficientBW",
                    "The client is too slow for this stream.",
                    key.name(),
                );
                port.flush(self.client);
                port.close(
                    self.client,
                    format!(
                        "viewer lag {lag_ms} ms over max_lag_ms {max_lag_ms} (NetStream.Play.InsufficientBW)"
                    ),
                );
                Delivered::Closed
            }
        }
    }
}
