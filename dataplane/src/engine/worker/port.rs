//! The worker's `Port`: how `media/` and `app/` reach this worker's RTMP connections.
//! Built for the length of one call from the worker's fields it needs (`port!`), so the
//! caller can hold a live stream of the same worker at the same time.

use super::*;
use crate::media::frame::{Batch, Frame, MediaMessage, OutputFormat};
use crate::media::port::{Level, Port, Pushed, StreamEvent, Urgency};
use crate::media::recorder::RecorderRef;

pub(super) struct RtmpPort<'a> {
    pub(crate) conns: &'a mut Slots,
    pub(crate) dirty: &'a mut Vec<ConnRef>,
    pub(crate) media: &'a mut MediaFlush,
    /// Connections media asked to close; the worker closes them once the call returns.
    pub(crate) closing: &'a mut Vec<(ConnRef, String)>,
    pub(crate) mailboxes: &'a [Mailbox<WorkerMsg>],
    pub(crate) recordings: &'a mut super::recordings::Recordings,
    pub(crate) multicasts: &'a mut super::multicast::Multicasts,
    pub(crate) wake: &'a mut [bool],
    pub(crate) stats: &'a WorkerStats,
    pub(crate) batch_ms: u32,
    pub(crate) max_lag_ms: u32,
}

/// A port over `$w`'s connections (a macro, not a method, so that it borrows only the
/// fields it names).
macro_rules! port {
    ($w:expr) => {
        $crate::engine::worker::port::RtmpPort {
            conns: &mut $w.conns,
            dirty: &mut $w.dirty,
            media: &mut $w.media,
            closing: &mut $w.closing,
            mailboxes: &$w.shared.mailboxes,
            recordings: &mut $w.recordings,
            multicasts: &mut $w.multicasts,
            wake: &mut $w.wake,
            stats: &$w.shared.stats[$w.id],
            batch_ms: $w.config.live.send_batch_ms,
            max_lag_ms: $w.config.live.max_lag_ms,
        }
    };
}
pub(super) use port;

impl RtmpPort<'_> {
    /// What `r` has queued goes out this turn (or as soon as the send in flight completes).
    fn due(&mut self, r: ConnRef) {
        if let Some(c) = self.conns.get_mut(r) {
            c.send_due = true;
            self.dirty.push(r);
        }
    }
}

fn rtmp(c: &Conn, stream_id: u32) -> OutputFormat {
    OutputFormat::Rtmp {
        chunk_size: c.session.config().chunk_size,
        stream_id,
    }
}

impl Port for RtmpPort<'_> {
    fn status(
        &mut self,
        client: ConnRef,
        stream_id: u32,
        level: Level,
        code: &str,
        description: &str,
        details: &str,
    ) {
        if let Some(c) = self.conns.get_mut(client) {
            let values = status::on_status(level, code, description, Some(details));
            c.write_command(stream_id, &values);
        }
    }

    fn command(&mut self, client: ConnRef, stream_id: u32, values: &[Amf0Value]) {
        if let Some(c) = self.conns.get_mut(client) {
            c.write_command(stream_id, values);
        }
    }

    fn data(&mut self, client: ConnRef, stream_id: u32, values: &[Amf0Value]) {
        if let Some(c) = self.conns.get_mut(client) {
            c.session.write_data(stream_id, values, &mut c.out);
        }
    }

    fn stream_event(&mut self, client: ConnRef, event: StreamEvent) {
        if let Some(c) = self.conns.get_mut(client) {
            let event = match event {
                StreamEvent::Begin(id) => UserControl::StreamBegin(id),
                StreamEvent::Eof(id) => UserControl::StreamEof(id),
            };
            c.session.write_user_control(event, &mut c.out);
        }
    }

    fn frame(
        &mut self,
        client: ConnRef,
        stream_id: u32,
        frame: &FrameRef,
        urgency: Urgency,
    ) -> Pushed {
        let Some(c) = self.conns.get_mut(client) else {
            return Pushed::Gone;
        };
        if c.closing != Closing::Open {
            return Pushed::Gone;
        }
        let bytes = frame.encoded(rtmp(c, stream_id));
        let outcome = match urgency {
            Urgency::Now => {
                c.queue.push_control(bytes);
                c.send_due = true;
                self.dirty.push(client);
                PushOutcome::Queued
            }
            Urgency::Media => {
                let outcome = c.queue.push_media(bytes, frame.timestamp, frame.kind);
                // Sent with the next media flush, at most `send_batch_ms` after the first
                // message waiting.
                self.media.list(client, c, self.batch_ms);
                outcome
            }
        };
        match outcome {
            PushOutcome::Queued => Pushed::Queued,
            PushOutcome::Dropped => {
                WorkerStats::add(&self.stats.dropped_frames, 1);
                Pushed::Dropped
            }
            PushOutcome::TooSlow => Pushed::TooSlow {
                lag_ms: c.queue.lag_ms(),
                max_lag_ms: c
                    .client
                    .nc
                    .policy
                    .as_ref()
                    .map_or(self.max_lag_ms, |p| p.max_lag_ms),
            },
        }
    }

    fn batch(&mut self, client: ConnRef, stream_id: u32, batch: &Batch<'_>) -> bool {
        let Some(c) = self.conns.get_mut(client) else {
            return false;
        };
        if c.closing != Closing::Open || !c.queue.is_empty() || c.queue.is_skipping() {
            return false;
        }
        let bytes = batch.encoded(rtmp(c, stream_id));
        c.queue.push_media(bytes, batch.first_timestamp, batch.kind);
        self.media.list(client, c, self.batch_ms);
        true
    }

    fn is_open(&self, client: ConnRef) -> bool {
        self.conns
            .get(client)
            .is_some_and(|c| c.closing == Closing::Open)
    }

    fn unsent(&self, client: ConnRef) -> usize {
        self.conns.get(client).map_or(0, |c| c.queue.queued_bytes())
    }

    fn flush(&mut self, client: ConnRef) {
        if self.conns.get_mut(client).is_some_and(Conn::queue_out) {
            self.due(client);
        }
    }

    fn close(&mut self, client: ConnRef, reason: String) {
        self.closing.push((client, reason));
    }

    fn to_worker(
        &mut self,
        worker: usize,
        key: &StreamKey,
        publish_id: u64,
        message: MediaMessage,
    ) {
        let msg = WorkerMsg::Media {
            key: key.clone(),
            publish_id,
            message,
        };
        post_to(self.mailboxes, self.wake, worker, msg);
    }

    fn record(&mut self, recorder: RecorderRef, frame: &Frame) {
        self.recordings.offer(recorder, frame);
    }

    fn multicast(&mut self, key: &StreamKey, frame: &Frame) {
        self.multicasts.offer(key, frame);
    }
}
