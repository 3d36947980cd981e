//! Live streams on this worker: publishing, playing, and the fan-out of each frame.

use super::*;
use bytes::Bytes;

impl Worker {
    pub(super) fn start_publish(
        &mut self,
        r: ConnRef,
        stream_id: u32,
        key: StreamKey,
        mode: PublishMode,
    ) {
        let Some(c) = self.conns.get(r) else { return };
        let peer = c.peer;
        let app = c.nc.app.clone();
        let limit = c.nc.policy.as_ref().map(|p| p.max_streams).unwrap_or(0);
        let publish_id = self
            .shared
            .next_publish_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match self
            .shared
            .registry
            .publish(&key, self.id, publish_id, Some((app.as_str(), limit)))
        {
            Err(refused) => {
                if let Some(c) = self.conns.get_mut(r) {
                    c.nc.stream_idle(stream_id);
                }
                let why = match refused {
                    PublishRefused::NameInUse => "Stream name is already in use.",
                    PublishRefused::TooManyStreams => {
                        "This application publishes as many streams as it may."
                    }
                };
                info!(%peer, %app, stream = key.name(), reason = why, "publish refused");
                self.status(
                    r,
                    stream_id,
                    Level::Error,
                    "NetStream.Publish.BadName",
                    why,
                    key.name(),
                );
            }
            Ok(remote_workers) => {
                info!(%peer, %app, stream = key.name(), "publish started");
                self.user_control(r, UserControl::StreamBegin(stream_id));
                self.status(
                    r,
                    stream_id,
                    Level::Status,
                    "NetStream.Publish.Start",
                    &format!("Publishing {}.", key.name()),
                    key.name(),
                );
                if mode != PublishMode::Live {
                    self.status(
                        r,
                        stream_id,
                        Level::Warning,
                        "NetStream.Record.NoAccess",
                        "Recording is not available on this server yet; the stream is published live only.",
                        key.name(),
                    );
                }
                let mut publisher = None;
                if let Some(c) = self.conns.get_mut(r) {
                    c.publishing.push(Publishing {
                        stream_id,
                        key: key.clone(),
                        publish_id,
                    });
                    publisher = Some((c.id, c.peer.to_string()));
                }
                self.emit("publish_start", r, Some(key.name()), None);
                let stream = self
                    .streams
                    .entry(key.clone())
                    .or_insert_with(LiveStream::new);
                stream.source = Source::Local {
                    publisher: r,
                    publish_id,
                };
                stream.gop.clear();
                stream.stats = StreamStats::published(unix_now(), publisher);
                stream.remote_workers = remote_workers.clone();
                for w in remote_workers {
                    self.post(
                        w,
                        WorkerMsg::StreamStarted {
                            key: key.clone(),
                            publish_id,
                            snapshot: Vec::new(),
                        },
                    );
                }
                self.went_live(&key);
            }
        }
    }

    /// The stream just went live on this worker: waiting viewers get PublishNotify.
    pub(super) fn went_live(&mut self, key: &StreamKey) {
        let Some(stream) = self.streams.get(key) else {
            return;
        };
        let viewers = stream.viewers.clone();
        for (v, stream_id) in viewers {
            let notify = self
                .conns
                .get_mut(v)
                .and_then(|c| c.viewer_mut(stream_id))
                .map(|vw| {
                    vw.need_key = true;
                    std::mem::replace(&mut vw.notify_on_publish, false)
                });
            if notify == Some(true) {
                self.status(
                    v,
                    stream_id,
                    Level::Status,
                    "NetStream.Play.PublishNotify",
                    &format!("{} is now published.", key.name()),
                    key.name(),
                );
            }
            self.send_snapshot(v, stream_id, key);
            self.flush_out(v);
        }
    }

    pub(super) fn stop_publish(&mut self, r: ConnRef, stream_id: u32, key: &StreamKey) {
        let Some(c) = self.conns.get_mut(r) else {
            return;
        };
        let Some(pos) = c
            .publishing
            .iter()
            .position(|p| p.stream_id == stream_id && p.key == *key)
        else {
            return;
        };
        let p = c.publishing.remove(pos);
        info!(peer = %c.peer, app = %c.nc.app, stream = key.name(), "publish stopped");
        self.emit("publish_stop", r, Some(key.name()), None);
        let remote = self.shared.registry.unpublish(key, p.publish_id);
        for w in remote {
            self.post(
                w,
                WorkerMsg::StreamStopped {
                    key: key.clone(),
                    publish_id: p.publish_id,
                },
            );
        }
        self.went_offline(key);
    }

    /// The stream's publisher left: viewers get UnpublishNotify and wait for the next one.
    pub(super) fn went_offline(&mut self, key: &StreamKey) {
        // The last media goes before UnpublishNotify.
        self.flush_stream(key);
        let Some(stream) = self.streams.get_mut(key) else {
            return;
        };
        stream.source = Source::None;
        stream.gop.clear();
        stream.remote_workers.clear();
        let viewers = stream.viewers.clone();
        let unused = stream.is_unused();
        if unused {
            self.streams.remove(key);
        }
        for (v, stream_id) in viewers {
            if let Some(vw) = self.conns.get_mut(v).and_then(|c| c.viewer_mut(stream_id)) {
                vw.notify_on_publish = true;
                vw.need_key = true;
            }
            self.user_control(v, UserControl::StreamEof(stream_id));
            self.status(
                v,
                stream_id,
                Level::Status,
                "NetStream.Play.UnpublishNotify",
                &format!("{} is now unpublished.", key.name()),
                key.name(),
            );
            self.flush_out(v);
        }
    }

    pub(super) fn start_play(
        &mut self,
        r: ConnRef,
        stream_id: u32,
        key: StreamKey,
        params: PlayParams,
    ) {
        let Some(c) = self.conns.get(r) else { return };
        info!(peer = %c.peer, app = %c.nc.app, stream = key.name(), start = params.start, "play started");
        self.emit("play_start", r, Some(key.name()), None);
        let joined = self.shared.registry.join(&key, self.id);
        let stream = self
            .streams
            .entry(key.clone())
            .or_insert_with(LiveStream::new);
        stream.viewers.push((r, stream_id));
        let live_here = stream.is_live();
        let from_seq = stream.next_seq;
        if let Some((pub_worker, _)) = joined.publisher {
            if pub_worker != self.id && joined.first_on_worker {
                self.post(
                    pub_worker,
                    WorkerMsg::Subscribe {
                        key: key.clone(),
                        worker: self.id,
                    },
                );
            }
        }
        if let Some(c) = self.conns.get_mut(r) {
            c.plays.retain(|v| v.stream_id != stream_id);
            c.plays.push(Viewer {
                stream_id,
                key: key.clone(),
                audio: true,
                video: true,
                paused: false,
                need_key: true,
                notify_on_publish: joined.publisher.is_none(),
                // Flash: -1 (or absent) plays to the end; a live stream has no "single frame"
                // for 0, so 0 counts as to the end too.
                duration: (params.duration > 0.0).then(|| {
                    (
                        None,
                        (params.duration * 1000.0).min(f64::from(u32::MAX)) as u32,
                    )
                }),
                from_seq,
            });
        }
        self.user_control(r, UserControl::StreamBegin(stream_id));
        if params.reset {
            self.status(
                r,
                stream_id,
                Level::Status,
                "NetStream.Play.Reset",
                &format!("Playing and resetting {}.", key.name()),
                key.name(),
            );
        }
        self.status(
            r,
            stream_id,
            Level::Status,
            "NetStream.Play.Start",
            &format!("Started playing {}.", key.name()),
            key.name(),
        );
        if let Some(c) = self.conns.get_mut(r) {
            c.session.write_data(
                stream_id,
                &[
                    Amf0Value::string("|RtmpSampleAccess"),
                    Amf0Value::Boolean(true),
                    Amf0Value::Boolean(true),
                ],
                &mut c.out,
            );
        }
        if live_here {
            self.send_snapshot(r, stream_id, &key);
        }
        self.flush_out(r);
    }

    /// Metadata, codec headers and the current GOP, so the viewer starts on a key frame.
    pub(super) fn send_snapshot(&mut self, r: ConnRef, stream_id: u32, key: &StreamKey) {
        let Some(stream) = self.streams.get(key) else {
            return;
        };
        let frames: Vec<FrameRef> = stream.gop.snapshot().cloned().collect();
        // The snapshot holds every cached frame, the pending ones included.
        let next_seq = stream.next_seq;
        if let Some(v) = self.conns.get_mut(r).and_then(|c| c.viewer_mut(stream_id)) {
            v.from_seq = next_seq;
        }
        for f in frames {
            self.deliver(r, stream_id, &f, true);
        }
    }

    pub(super) fn stop_play(&mut self, r: ConnRef, stream_id: u32, key: &StreamKey) {
        if let Some(c) = self.conns.get_mut(r) {
            c.plays
                .retain(|v| !(v.stream_id == stream_id && v.key == *key));
            info!(peer = %c.peer, app = %c.nc.app, stream = key.name(), "play stopped");
            self.emit("play_stop", r, Some(key.name()), None);
        }
        if let Some(stream) = self.streams.get_mut(key) {
            stream
                .viewers
                .retain(|(v, s)| !(*v == r && *s == stream_id));
            if stream.is_unused() {
                self.streams.remove(key);
            }
        }
        if let Some(pub_worker) = self.shared.registry.leave(key, self.id) {
            if pub_worker != self.id {
                self.post(
                    pub_worker,
                    WorkerMsg::Unsubscribe {
                        key: key.clone(),
                        worker: self.id,
                    },
                );
            }
        }
    }

    /// A message from this stream's source (local publisher or another worker): into the
    /// GOP cache (if `cache`), to every local viewer, and, for a local publisher, once to
    /// each other worker with viewers.
    pub(super) fn publish_frame(&mut self, key: &StreamKey, m: MediaMessage, cache: bool) {
        let Some(stream) = self.streams.get_mut(key) else {
            return;
        };
        let frame = Frame::new(m);
        stream.stats.note_codecs(&frame);
        if matches!(stream.source, Source::Local { .. }) {
            stream.stats.bytes_in += frame.payload.len() as u64;
        }
        if cache && self.config.live.gop_cache {
            stream.gop.push(&frame);
        } else if cache
            && frame.kind() != FrameKind::VideoKey
            && frame.kind() != FrameKind::VideoInter
        {
            // Without a GOP cache, metadata and codec headers are still kept.
            stream.gop.push(&frame);
        }
        if let Source::Local { publish_id, .. } = stream.source {
            for &w in &stream.remote_workers {
                let message = frame.message();
                let msg = WorkerMsg::Media {
                    key: key.clone(),
                    publish_id,
                    message,
                };
                post_to(&self.shared.mailboxes, &mut self.wake, w, msg);
            }
        }
        if frame.kind.is_droppable() {
            // Audio and video wait for the media flush, where caught-up viewers get the
            // whole batch as one buffer.
            let Some(stream) = self.streams.get_mut(key) else {
                return;
            };
            if stream.viewers.is_empty() {
                return;
            }
            if stream.pending.is_empty() {
                self.pending_streams.push(key.clone());
            }
            stream.pending.push((stream.next_seq, frame));
            stream.next_seq += 1;
            self.media.arm(self.config.live.send_batch_ms);
            return;
        }
        // Metadata, headers and other data go out now, after what is pending (order holds).
        self.flush_stream(key);
        let Some(stream) = self.streams.get(key) else {
            return;
        };
        // A reused scratch list: delivering may close viewers, which edits the stream's list.
        let mut viewers = std::mem::take(&mut self.fanout);
        viewers.clear();
        viewers.extend_from_slice(&stream.viewers);
        let mut delivered = 0u64;
        for (v, stream_id) in &viewers {
            delivered += u64::from(self.deliver(*v, *stream_id, &frame, false));
        }
        self.fanout = viewers;
        if let Some(stream) = self.streams.get_mut(key) {
            stream.stats.bytes_out += delivered * frame.payload.len() as u64;
        }
    }

    /// Hands a stream's pending audio and video to its viewers (see `LiveStream::pending`).
    /// A viewer that is caught up (nothing queued, not skipping, nothing in the batch
    /// filtered out for it) gets the batch as one buffer shared with every viewer of the
    /// same output format: one queue item, one refcount and one iovec per viewer per batch
    /// instead of one per message. Any other viewer gets the frames one by one through
    /// `deliver` and its policies. The bytes on the wire are the same either way.
    pub(super) fn flush_stream(&mut self, key: &StreamKey) {
        let Some(stream) = self.streams.get_mut(key) else {
            return;
        };
        let pending = std::mem::take(&mut stream.pending);
        let Some((first_seq, first)) = pending.first() else {
            return;
        };
        let (first_seq, first_ts) = (*first_seq, first.timestamp);
        let has_video = pending.iter().any(|(_, f)| f.kind.is_video());
        let batch_payload: u64 = pending.iter().map(|(_, f)| f.payload.len() as u64).sum();
        let mut viewers = std::mem::take(&mut self.fanout);
        viewers.clear();
        viewers.extend_from_slice(&stream.viewers);
        // The joined batch, built once per output format (chunk size, message stream id).
        let mut joined: Vec<(u32, u32, Bytes)> = Vec::new();
        let mut delivered = 0u64;
        for &(r, stream_id) in &viewers {
            let Some(c) = self.conns.get_mut(r) else {
                continue;
            };
            let chunk_size = c.session.config().chunk_size;
            let open = c.closing == Closing::Open;
            let idle = c.queue.is_empty() && !c.queue.is_skipping();
            let Some(v) = c.viewer_mut(stream_id) else {
                continue;
            };
            let from_seq = v.from_seq;
            let takes_all = !v.paused
                && v.audio
                && v.video
                && (!v.need_key || !has_video)
                && v.duration.is_none()
                && from_seq <= first_seq;
            if !(open && idle && takes_all) {
                for (seq, f) in &pending {
                    if *seq >= from_seq && self.deliver(r, stream_id, f, false) {
                        delivered += f.payload.len() as u64;
                    }
                }
                continue;
            }
            let bytes = match joined
                .iter()
                .find(|(cs, sid, _)| *cs == chunk_size && *sid == stream_id)
            {
                Some((_, _, b)) => b.clone(),
                None => {
                    let parts: Vec<Bytes> = pending
                        .iter()
                        .map(|(_, f)| f.chunked(chunk_size, stream_id))
                        .collect();
                    let mut out = BytesMut::with_capacity(parts.iter().map(Bytes::len).sum());
                    for p in &parts {
                        out.extend_from_slice(p);
                    }
                    let b = out.freeze();
                    joined.push((chunk_size, stream_id, b.clone()));
                    b
                }
            };
            // Lag is measured from the batch's first frame. The queue was empty, so the
            // push is never dropped; if the viewer falls behind later, the whole batch is
            // droppable like any media item and the next batches take the slow path.
            let kind = if has_video {
                FrameKind::VideoInter
            } else {
                FrameKind::Audio
            };
            c.queue.push_media(bytes, first_ts, kind);
            delivered += batch_payload;
            self.media.list(r, c, self.config.live.send_batch_ms);
        }
        self.fanout = viewers;
        if let Some(stream) = self.streams.get_mut(key) {
            stream.stats.bytes_out += delivered;
        }
    }

    /// Queues one frame for one viewer, honouring its receive flags, pause and key-frame wait.
    /// Snapshot frames (the cached GOP a viewer starts with) are queued as never dropped and
    /// not counted as lag: a GOP is seconds old by design, and dropping it would defeat fast
    /// start for streams whose GOP is longer than `drop_lag_ms`.
    pub(super) fn deliver(
        &mut self,
        r: ConnRef,
        stream_id: u32,
        frame: &FrameRef,
        snapshot: bool,
    ) -> bool {
        let Some(c) = self.conns.get_mut(r) else {
            return false;
        };
        if c.closing != Closing::Open {
            return false;
        }
        let chunk_size = c.session.config().chunk_size;
        let Some(v) = c.viewer_mut(stream_id) else {
            return false;
        };
        let kind = frame.kind;
        let is_video = frame.type_id == msg_type::VIDEO;
        let is_audio = frame.type_id == msg_type::AUDIO;
        let header_or_meta = matches!(
            kind,
            FrameKind::Metadata | FrameKind::AudioHeader | FrameKind::VideoHeader
        );
        if !header_or_meta {
            if v.paused || (is_video && !v.video) || (is_audio && !v.audio) {
                return false;
            }
            if is_video {
                if v.need_key && kind != FrameKind::VideoKey {
                    return false;
                }
                if kind == FrameKind::VideoKey {
                    v.need_key = false;
                }
            }
        }
        if !header_or_meta {
            if let Some((first, limit)) = &mut v.duration {
                let start = *first.get_or_insert(frame.timestamp);
                if frame.timestamp.wrapping_sub(start) >= *limit {
                    let key = v.key.clone();
                    c.nc.stream_idle(stream_id);
                    self.stop_play(r, stream_id, &key);
                    self.status(
                        r,
                        stream_id,
                        Level::Status,
                        "NetStream.Play.Stop",
                        "Play duration reached.",
                        key.name(),
                    );
                    self.flush_out(r);
                    return false;
                }
            }
        }
        let bytes = frame.chunked(chunk_size, stream_id);
        let outcome = if header_or_meta || snapshot {
            c.queue.push_control(bytes);
            PushOutcome::Queued
        } else {
            c.queue.push_media(bytes, frame.timestamp, kind)
        };
        if snapshot || header_or_meta {
            c.send_due = true;
            self.dirty.push(r);
        } else {
            // Sent with the next media flush, at most `send_batch_ms` after the first
            // message waiting.
            self.media.list(r, c, self.config.live.send_batch_ms);
        }
        if let PushOutcome::Dropped = outcome {
            WorkerStats::add(&self.shared.stats[self.id].dropped_frames, 1);
        }
        if let PushOutcome::TooSlow = outcome {
            let lag = c.queue.lag_ms();
            let max =
                c.nc.policy
                    .as_ref()
                    .map_or(self.config.live.max_lag_ms, |p| p.max_lag_ms);
            let name = frame_key_of(c, stream_id).name().to_string();
            self.status(
                r,
                stream_id,
                Level::Warning,
                "NetStream.Play.InsufficientBW",
                "The client is too slow for this stream.",
                &name,
            );
            self.flush_out(r);
            self.close(
                r,
                &format!(
                    "viewer lag {lag} ms over max_lag_ms {max} (NetStream.Play.InsufficientBW)"
                ),
                true,
            );
        }
        matches!(outcome, PushOutcome::Queued)
    }
}
