//! A worker's view of one live stream: where its media comes from, its GOP cache, its local
//! viewers and its other sinks, and the fan-out of each frame to them. The statuses a viewer
//! gets about the stream (Play.Start/Reset, PublishNotify, UnpublishNotify, Play.Stop,
//! InsufficientBW) are decided here and told through the `Port`.

use super::frame::{Batch, Frame, FrameRef, MediaMessage};
use super::gop_cache::{GopCache, GopCacheLimits};
use super::port::{ClientRef, Level, Port, StreamEvent, Urgency};
use super::recorder::RecorderRef;
use super::sink::Sink;
use super::stream_key::StreamKey;
use super::tag::{self, FrameKind};
use super::viewer::{Delivered, Viewer};
use catch_up::CatchingUp;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// Nobody publishes (viewers wait for PublishNotify).
    None,
    /// A client of this worker publishes.
    Local {
        publisher: ClientRef,
        publish_id: u64,
    },
    /// Another worker's client publishes; its frames cross to this worker.
    Remote { publish_id: u64 },
    /// An upstream server (a relay link of this worker, a connection in the client role)
    /// plays the stream to us. Towards viewers and other workers it is a local publisher.
    Upstream { link: ClientRef, publish_id: u64 },
}

impl Source {
    /// The stream enters on this worker (a local publisher or an upstream link): the
    /// client it comes from, and its publish id.
    pub(crate) fn here(&self) -> Option<(ClientRef, u64)> {
        match *self {
            Source::Local {
                publisher,
                publish_id,
            } => Some((publisher, publish_id)),
            Source::Upstream { link, publish_id } => Some((link, publish_id)),
            Source::None | Source::Remote { .. } => None,
        }
    }
}

/// Viewers that stopped playing during a fan-out (play duration reached): the caller ends
/// their play (the client's NetStream state, the registry). Reused between calls.
pub type Stopped = Vec<(ClientRef, u32)>;

pub struct LiveStream {
    pub(crate) key: StreamKey,
    pub(crate) source: Source,
    pub(crate) gop: GopCache<FrameRef>,
    /// Local viewers that are caught up, each with its policy state.
    pub(crate) viewers: Vec<Viewer>,
    /// Local viewers that joined and still take the rest of their GOP in rounds (see
    /// `catch_up`); kept apart so the fan-out over `viewers` does not look at them.
    catching_up: Vec<CatchingUp>,
    /// Other outputs, fed every frame as it arrives (only while the publisher is local).
    pub(crate) sinks: Vec<Sink>,
    pub(crate) stats: StreamStats,
    /// Audio and video that arrived since the last media flush, numbered: at the flush,
    /// every viewer that is caught up gets all of it as one shared buffer (one queue item,
    /// one iovec) instead of one item per message.
    pending: Vec<(u64, FrameRef)>,
    /// The number the next pending frame gets.
    next_seq: u64,
    /// Server-side streams of this worker that follow this one (a script's live
    /// playlist item): like viewers, they keep it here and fed from another worker.
    followers: usize,
}

/// What `publish_frame` did with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// It waits for the media flush; `first` is true for the first of this batch (the
    /// caller lists the stream for the flush).
    Pending { first: bool },
    /// It went to the viewers already (or there are none).
    Done,
}

/// What the control socket reports about a stream; rates are refreshed once a second.
#[derive(Debug, Default, Clone)]
pub(crate) struct StreamStats {
    pub(crate) bytes_in: u64,
    pub(crate) bytes_out: u64,
    pub(crate) rate_in: f64,
    pub(crate) rate_out: f64,
    last_in: u64,
    last_out: u64,
    /// Unix time the current publish started.
    pub(crate) since: f64,
    pub(crate) video_codec: Option<String>,
    pub(crate) audio_codec: Option<String>,
    /// Client id and address of a local publisher.
    pub(crate) publisher: Option<(u64, String)>,
}

impl StreamStats {
    /// Fresh statistics for a publish that starts now.
    pub(crate) fn published(since: f64, publisher: Option<(u64, String)>) -> Self {
        StreamStats {
            since,
            publisher,
            ..Default::default()
        }
    }

    pub(crate) fn tick(&mut self, secs: f64) {
        if secs > 0.0 {
            self.rate_in = (self.bytes_in - self.last_in) as f64 * 8.0 / secs;
            self.rate_out = (self.bytes_out - self.last_out) as f64 * 8.0 / secs;
        }
        self.last_in = self.bytes_in;
        self.last_out = self.bytes_out;
    }

    /// Codec names from sequence headers, as they arrive.
    fn note_codecs(&mut self, frame: &Frame) {
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
    pub fn new(key: StreamKey) -> Self {
        LiveStream {
            key,
            source: Source::None,
            gop: GopCache::new(GopCacheLimits::default()),
            viewers: Vec::new(),
            catching_up: Vec::new(),
            sinks: Vec::new(),
            stats: StreamStats::default(),
            pending: Vec::new(),
            next_seq: 0,
            followers: 0,
        }
    }

    pub(crate) fn is_live(&self) -> bool {
        self.source != Source::None
    }

    pub(crate) fn publish_id(&self) -> Option<u64> {
        match self.source {
            Source::None => None,
            Source::Local { publish_id, .. }
            | Source::Remote { publish_id }
            | Source::Upstream { publish_id, .. } => Some(publish_id),
        }
    }

    pub(crate) fn is_unused(&self) -> bool {
        self.viewer_count() == 0 && self.followers == 0 && self.source.here().is_none()
    }

    /// A server-side stream of this worker starts (or stops) following this one.
    pub(crate) fn follow(&mut self, on: bool) {
        if on {
            self.followers += 1;
        } else {
            self.followers = self.followers.saturating_sub(1);
        }
    }

    /// Local viewers, caught up or catching up.
    pub(crate) fn viewer_count(&self) -> usize {
        self.viewers.len() + self.catching_up.len()
    }

    pub(crate) fn viewer_mut(&mut self, client: ClientRef, stream_id: u32) -> Option<&mut Viewer> {
        self.viewers
            .iter_mut()
            .chain(self.catching_up.iter_mut().map(|c| &mut c.viewer))
            .find(|v| v.client == client && v.stream_id == stream_id)
    }

    /// A local client starts publishing: a fresh GOP and statistics; waiting viewers are
    /// told (`went_live`) by the caller once other workers have been asked along.
    pub fn publish_local(
        &mut self,
        publisher: ClientRef,
        publish_id: u64,
        since: f64,
        who: Option<(u64, String)>,
        workers: impl IntoIterator<Item = usize>,
    ) {
        self.source = Source::Local {
            publisher,
            publish_id,
        };
        self.gop.clear();
        self.stats = StreamStats::published(since, who);
        self.sinks = workers.into_iter().map(Sink::Worker).collect();
    }

    /// An upstream link of this worker starts playing the stream to us: as `publish_local`,
    /// with the link as the source.
    pub(crate) fn publish_upstream(
        &mut self,
        link: ClientRef,
        publish_id: u64,
        since: f64,
        who: Option<(u64, String)>,
        workers: impl IntoIterator<Item = usize>,
    ) {
        self.publish_local(link, publish_id, since, who, workers);
        self.source = Source::Upstream { link, publish_id };
    }

    /// Failover: the stream now comes from another upstream link, with no break for
    /// viewers (the same publish, the GOP cache and sinks kept; the new link starts on a key
    /// frame, which begins a new GOP).
    pub(crate) fn relink(&mut self, link: ClientRef) {
        if let Source::Upstream { publish_id, .. } = self.source {
            self.source = Source::Upstream { link, publish_id };
        }
    }

    /// The publisher's worker sent the stream's start and its snapshot: this worker's copy
    /// goes live from it. Returns false (and does nothing) if this worker has no viewers
    /// or publishes the stream itself.
    pub(crate) fn follow_remote(&mut self, publish_id: u64, snapshot: Vec<MediaMessage>) -> bool {
        if (self.viewer_count() == 0 && self.followers == 0) || self.source.here().is_some() {
            return false;
        }
        self.source = Source::Remote { publish_id };
        self.gop.clear();
        for m in snapshot {
            self.gop.push(&Frame::new(m));
        }
        true
    }

    /// Another worker has viewers now (while the publisher is local): it gets every frame
    /// from here on; returns what it needs first (metadata, headers, the current GOP).
    pub(crate) fn add_worker(&mut self, worker: usize) -> Option<(u64, Vec<MediaMessage>)> {
        let (_, publish_id) = self.source.here()?;
        if !self.sinks.contains(&Sink::Worker(worker)) {
            self.sinks.push(Sink::Worker(worker));
        }
        Some((
            publish_id,
            self.gop.snapshot().map(|f| f.message()).collect(),
        ))
    }

    pub(crate) fn remove_worker(&mut self, worker: usize) {
        self.sinks.retain(|s| *s != Sink::Worker(worker));
    }

    /// A recording starts (while the source is here: a local publisher, or an upstream
    /// link such as a script's server-side stream): it gets every frame from here on,
    /// after what a new file needs first (metadata and codec headers, when the stream
    /// already sent them: a recording that starts mid-stream or a file after rotation).
    pub(crate) fn add_recorder(&mut self, recorder: RecorderRef) -> Vec<FrameRef> {
        if self.source.here().is_none() {
            return Vec::new();
        }
        if !self.sinks.contains(&Sink::Recorder(recorder)) {
            self.sinks.push(Sink::Recorder(recorder));
        }
        self.gop.headers().cloned().collect()
    }

    /// A recording ended or failed: it gets nothing more.
    pub(crate) fn remove_recorder(&mut self, recorder: RecorderRef) {
        self.sinks.retain(|s| *s != Sink::Recorder(recorder));
    }

    /// The stream's multicast outputs on this worker start (while its source is here: a
    /// local publisher or an upstream link): they get every frame from here on. Returns
    /// what they start from when the sink is new: the GOP cache (metadata, headers, the
    /// last key frame and the frames since), so that they need not wait for the next key
    /// frame.
    pub(crate) fn add_multicast(&mut self) -> Vec<FrameRef> {
        if self.source.here().is_none() || self.sinks.contains(&Sink::Multicast) {
            return Vec::new();
        }
        self.sinks.push(Sink::Multicast);
        self.gop.snapshot().cloned().collect()
    }

    /// The stream has no multicast output left here.
    pub(crate) fn remove_multicast(&mut self) {
        self.sinks.retain(|s| *s != Sink::Multicast);
    }

    /// A push relay's target accepted the publish (while the publisher is local): it gets
    /// metadata, codec headers and the current GOP from its key frame, so the target's
    /// viewers can start at once, then every frame as it arrives. The GOP goes as a
    /// viewer's snapshot does: at once and never dropped (it is bounded by the GOP cache's
    /// limits), so its age does not read as lag.
    pub(crate) fn add_push<P: Port>(&mut self, link: ClientRef, stream_id: u32, port: &mut P) {
        let sink = Sink::Push { link, stream_id };
        if !matches!(self.source, Source::Local { .. }) || self.sinks.contains(&sink) {
            return;
        }
        for f in self.gop.snapshot() {
            port.frame(link, stream_id, f, Urgency::Now);
        }
        self.sinks.push(sink);
        port.flush(link);
    }

    /// A push's connection closed: it gets nothing more.
    pub(crate) fn remove_push(&mut self, link: ClientRef) {
        self.sinks
            .retain(|s| !matches!(*s, Sink::Push { link: l, .. } if l == link));
    }

    /// A NetStream starts playing: Stream Begin, Play.Reset (if asked), Play.Start, and if
    /// the stream is live, the start of the snapshot so it starts on a key frame (the rest
    /// follows in rounds: `catch_up`).
    pub fn add_viewer<P: Port>(
        &mut self,
        mut viewer: Viewer,
        reset: bool,
        port: &mut P,
        stopped: &mut Stopped,
    ) {
        let (client, stream_id) = (viewer.client, viewer.stream_id);
        viewer.from_seq = self.next_seq;
        self.viewers.push(viewer);
        super::play_statuses::announce(port, client, stream_id, self.key.name(), reset);
        if self.is_live() {
            self.send_snapshot(self.viewers.len() - 1, port, stopped);
        }
        port.flush(client);
    }

    /// A NetStream stops playing (or its client went away); true if it was a viewer.
    pub(crate) fn remove_viewer(&mut self, client: ClientRef, stream_id: u32) -> bool {
        let before = self.viewer_count();
        self.viewers
            .retain(|v| !(v.client == client && v.stream_id == stream_id));
        self.catching_up
            .retain(|c| !(c.viewer.client == client && c.viewer.stream_id == stream_id));
        self.viewer_count() != before
    }

    /// `pause`/unpause from a viewer: it is told, and video resumes on a key frame.
    pub(crate) fn pause_viewer<P: Port>(
        &mut self,
        client: ClientRef,
        stream_id: u32,
        pause: bool,
        port: &mut P,
    ) {
        let Some(v) = self.viewer_mut(client, stream_id) else {
            return;
        };
        v.set_paused(pause);
        let name = self.key.name();
        let (code, description) = if pause {
            ("NetStream.Pause.Notify", "Paused live stream.")
        } else {
            ("NetStream.Unpause.Notify", "Unpaused live stream.")
        };
        port.status(client, stream_id, Level::Status, code, description, name);
    }

    /// The stream just went live on this worker: waiting viewers get PublishNotify and
    /// the snapshot.
    pub(crate) fn went_live<P: Port>(&mut self, port: &mut P, stopped: &mut Stopped) {
        // A viewer still catching up on an earlier source starts over on this one.
        self.viewers
            .extend(self.catching_up.drain(..).map(|c| c.viewer));
        let mut i = 0;
        while i < self.viewers.len() {
            let v = &mut self.viewers[i];
            v.need_key = true;
            let (client, stream_id) = (v.client, v.stream_id);
            if std::mem::replace(&mut v.notify_on_publish, false) {
                let name = self.key.name();
                port.status(
                    client,
                    stream_id,
                    Level::Status,
                    "NetStream.Play.PublishNotify",
                    &format!("{name} is now published."),
                    name,
                );
            }
            if self.send_snapshot(i, port, stopped) {
                i += 1;
            }
            port.flush(client);
        }
    }

    /// The stream's source is gone: the last media goes out, then viewers get Stream EOF and
    /// UnpublishNotify and wait for the next publisher.
    pub(crate) fn went_offline<P: Port>(&mut self, port: &mut P, stopped: &mut Stopped) {
        self.flush_pending(port, stopped);
        // Viewers catching up get the rest of their GOP before the end of the stream.
        self.catch_up_with(usize::MAX, port, stopped);
        self.source = Source::None;
        self.gop.clear();
        self.sinks.clear();
        let name = self.key.name();
        for v in &mut self.viewers {
            v.notify_on_publish = true;
            v.need_key = true;
            port.stream_event(v.client, StreamEvent::Eof(v.stream_id));
            port.status(
                v.client,
                v.stream_id,
                Level::Status,
                "NetStream.Play.UnpublishNotify",
                &format!("{name} is now unpublished."),
                name,
            );
            port.flush(v.client);
        }
    }

    /// Metadata, codec headers and the GOP's first frame (its key frame) for viewer `i` at
    /// once, never dropped; if more of the GOP is cached, the viewer moves to `catching_up`
    /// and gets the rest in rounds. False if it left `viewers` (to catch up, or stopped on
    /// the way: its play duration is shorter than what it was sent).
    fn send_snapshot<P: Port>(&mut self, i: usize, port: &mut P, stopped: &mut Stopped) -> bool {
        // The snapshot holds every cached frame, the pending ones included.
        self.viewers[i].from_seq = self.next_seq;
        let (start, gop) = self.gop.current();
        let mut next = start;
        let mut outcome = Delivered::Sent;
        for f in self.gop.headers().chain(gop.take(1)) {
            outcome = self.viewers[i].deliver(&self.key, f, true, port);
            if matches!(outcome, Delivered::Closed | Delivered::Stopped) {
                break;
            }
        }
        if self.gop.end() > start {
            next += 1;
        }
        match outcome {
            Delivered::Stopped => {
                let v = self.viewers.swap_remove(i);
                stopped.push((v.client, v.stream_id));
                false
            }
            Delivered::Sent | Delivered::Skipped if next < self.gop.end() => {
                let viewer = self.viewers.swap_remove(i);
                self.catching_up.push(CatchingUp { viewer, next });
                false
            }
            _ => true,
        }
    }

    /// `@clearDataFrame` from this stream's source: the kept metadata goes, here and (from a
    /// local publisher) on every worker this stream feeds, which get `m` to do the same.
    /// Viewers are sent nothing.
    pub fn clear_metadata<P: Port>(&mut self, m: MediaMessage, port: &mut P) {
        self.gop.clear_metadata();
        if let Source::Local { publish_id, .. } = self.source {
            let frame = Frame::new(m);
            for sink in &self.sinks {
                sink.offer(&self.key, publish_id, &frame, port);
            }
        }
    }

    /// A message from this stream's source (local publisher or another worker): into the
    /// GOP cache (if `cache`), to every sink, and to the local viewers: audio and video at
    /// the next media flush, anything else at once (after what is pending, so order holds).
    pub fn publish_frame<P: Port>(
        &mut self,
        m: MediaMessage,
        cache: bool,
        gop_cache: bool,
        port: &mut P,
        stopped: &mut Stopped,
    ) -> Published {
        let frame = Frame::new(m);
        self.stats.note_codecs(&frame);
        if let Some((_, publish_id)) = self.source.here() {
            self.stats.bytes_in += frame.payload.len() as u64;
            for sink in &self.sinks {
                sink.offer(&self.key, publish_id, &frame, port);
            }
        }
        let picture = matches!(frame.kind, FrameKind::VideoKey | FrameKind::VideoInter);
        if cache && (gop_cache || !picture) {
            // Without a GOP cache, metadata and codec headers are still kept.
            self.gop.push(&frame);
            if self.catching_up.is_empty() {
                // No joiner is in the GOP a key frame may just have ended.
                self.gop.keep_from(u64::MAX);
            }
        }
        if frame.kind.is_droppable() {
            if self.viewers.is_empty() {
                return Published::Done;
            }
            let first = self.pending.is_empty();
            self.pending.push((self.next_seq, frame));
            self.next_seq += 1;
            return Published::Pending { first };
        }
        self.flush_pending(port, stopped);
        // Viewers catching up get the rest of their GOP first, so that order holds (a new
        // video header dropped the GOP already: they wait for its key frame).
        self.catch_up_with(usize::MAX, port, stopped);
        let mut delivered = 0u64;
        // Metadata and headers go through the policy too (never dropped, never stopping).
        for v in &mut self.viewers {
            if v.deliver(&self.key, &frame, false, port) == Delivered::Sent {
                delivered += 1;
            }
        }
        self.stats.bytes_out += delivered * frame.payload.len() as u64;
        Published::Done
    }

    /// Hands the pending audio and video to the viewers. A viewer that is caught up
    /// (nothing queued, not skipping, nothing in the batch filtered out for it) gets the
    /// batch as one buffer shared with every viewer of the same output format: one queue
    /// item, one refcount and one iovec per viewer per batch instead of one per message.
    /// Any other viewer gets the frames one by one through its policy, each frame it has
    /// not had yet (`from_seq`) once. The bytes on the wire are the same either way.
    pub fn flush_pending<P: Port>(&mut self, port: &mut P, stopped: &mut Stopped) {
        let mut pending = std::mem::take(&mut self.pending);
        if let Some(batch) = Batch::new(&pending) {
            let mut delivered = 0u64;
            let mut i = 0;
            while i < self.viewers.len() {
                let v = &mut self.viewers[i];
                if v.takes_whole_batch(batch.first_seq, batch.has_video())
                    && port.batch(v.client, v.stream_id, &batch)
                {
                    // Lag is measured from the batch's first frame. The queue was empty, so
                    // the push is never dropped; if the viewer falls behind later, the whole
                    // batch is droppable like any media item.
                    delivered += batch.payload_bytes;
                    i += 1;
                    continue;
                }
                let mut keep = true;
                for (seq, f) in &pending {
                    if *seq < v.from_seq {
                        continue;
                    }
                    match v.deliver(&self.key, f, false, port) {
                        Delivered::Sent => delivered += f.payload.len() as u64,
                        Delivered::Skipped => {}
                        Delivered::Closed => break,
                        Delivered::Stopped => {
                            stopped.push((v.client, v.stream_id));
                            keep = false;
                            break;
                        }
                    }
                }
                if keep {
                    i += 1;
                } else {
                    self.viewers.remove(i);
                }
            }
            self.stats.bytes_out += delivered;
        }
        // The allocation is kept for the next batch.
        pending.clear();
        self.pending = pending;
    }
}

mod catch_up;
#[cfg(test)]
mod tests;
