//! Live streams on this worker: claims and joins through the registry, the cross-worker
//! messages, and the calls into `media::LiveStream` (which decides what viewers get).

use super::port::port;
use super::*;
use crate::app::net_stream;
use crate::media::live_stream::Published;
use crate::media::viewer::Viewer;

impl Worker {
    /// Claims `key` in the registry for a source on this worker (a local publisher, an
    /// upstream pull, a server-side stream) under a new publish id: the id and the other
    /// workers whose viewers wait for it, or why not.
    pub(super) fn claim_stream(
        &self,
        key: &StreamKey,
        app_limit: Option<(&str, usize)>,
    ) -> Result<(u64, Vec<usize>), PublishRefused> {
        let publish_id = self
            .shared
            .next_publish_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let remote_workers = self
            .shared
            .registry
            .publish(key, self.id, publish_id, app_limit)?;
        Ok((publish_id, remote_workers))
    }

    pub(super) fn start_publish(
        &mut self,
        r: ConnRef,
        stream_id: u32,
        key: StreamKey,
        mode: PublishMode,
    ) {
        let Some(c) = self.conns.get(r) else { return };
        let peer = c.peer;
        let app = c.client.nc.app.clone();
        let limit = c
            .client
            .nc
            .policy
            .as_ref()
            .map(|p| p.max_streams)
            .unwrap_or(0);
        match self.claim_stream(&key, Some((app.as_str(), limit))) {
            Err(refused) => {
                if let Some(c) = self.conns.get_mut(r) {
                    c.client.nc.stream_idle(stream_id);
                }
                let why = match refused {
                    PublishRefused::NameInUse => "Stream name is already in use.",
                    PublishRefused::TooManyStreams => {
                        "This application publishes as many streams as it may."
                    }
                };
                info!(%peer, %app, stream = key.name(), reason = why, "publish refused");
                net_stream::publish_refused(&mut port!(self), r, stream_id, &key, why);
            }
            Ok((publish_id, remote_workers)) => {
                info!(%peer, %app, stream = key.name(), "publish started");
                self.move_to_ingest_buffers(r);
                net_stream::publish_started(&mut port!(self), r, stream_id, &key);
                let publisher = self.conns.get(r).map(|c| (c.client.id, c.peer.to_string()));
                self.emit("publish_start", r, Some(key.name()), None);
                self.script_stream(r, &key, true);
                let stream = self
                    .streams
                    .entry(key.clone())
                    .or_insert_with(|| LiveStream::new(key.clone()));
                stream.publish_local(
                    r,
                    publish_id,
                    unix_now(),
                    publisher,
                    remote_workers.iter().copied(),
                );
                self.tell_workers_started(&key, publish_id, &remote_workers);
                self.start_recording(r, stream_id, &key, mode);
                self.start_pushes(&key);
                self.went_live(&key);
                self.announce_to_children(&key, true);
            }
        }
    }

    /// A publisher's media must not wait for a client buffer in a join storm: its receive
    /// moves to the ingest buffers. The one armed now is cancelled; its end arms the next,
    /// which takes them (see `arm_recv`).
    pub(super) fn move_to_ingest_buffers(&mut self, r: ConnRef) {
        let Some(c) = self.conns.get_mut(r) else {
            return;
        };
        if c.ingest || c.rtmfp.is_some() {
            return;
        }
        c.ingest = true;
        if c.recv_armed && !c.recv_ingest {
            self.cancel(r, OpKind::Recv);
        } else if !c.recv_armed && c.closing == Closing::Open {
            // Waiting for a client buffer (`starved`): it need not wait any more.
            self.rearm.push(r);
        }
    }

    /// The stream just went live on this worker: waiting viewers get PublishNotify.
    pub(super) fn went_live(&mut self, key: &StreamKey) {
        let mut port = port!(self);
        let Some(stream) = self.streams.get_mut(key) else {
            return;
        };
        stream.went_live(&mut port, &mut self.stopped);
        self.start_multicast(key);
        self.note_catching_up(key);
        self.settle(key);
        self.server_streams_went_live(key);
    }

    /// Lists `key` for catch-up rounds if some of its viewers take their GOP in rounds.
    fn note_catching_up(&mut self, key: &StreamKey) {
        if self
            .streams
            .get(key)
            .is_some_and(LiveStream::is_catching_up)
            && !self.catching_up.contains(key)
        {
            self.catching_up.push(key.clone());
        }
    }

    /// One catch-up round on every stream with joiners still taking their GOP (see
    /// `LiveStream::catch_up`); run once per loop turn, before sends start.
    pub(super) fn catch_up(&mut self) {
        if self.catching_up.is_empty() {
            return;
        }
        let mut keys = std::mem::take(&mut self.catching_up);
        for key in keys.drain(..) {
            let mut port = port!(self);
            let Some(stream) = self.streams.get_mut(&key) else {
                continue;
            };
            let more = stream.catch_up(&mut port, &mut self.stopped);
            self.settle(&key);
            if more && !self.catching_up.contains(&key) {
                self.catching_up.push(key);
            }
        }
        if self.catching_up.is_empty() {
            // The allocation is kept for the next join.
            self.catching_up = keys;
        }
    }

    pub(super) fn stop_publish(&mut self, r: ConnRef, key: &StreamKey) {
        // A local publisher, or an upstream link (whose upstream stopped, or which closed).
        let Some(publish_id) = self
            .streams
            .get(key)
            .and_then(|s| s.source.here())
            .and_then(|(from, publish_id)| (from == r).then_some(publish_id))
        else {
            return;
        };
        if let Some(c) = self.conns.get(r) {
            info!(peer = %c.peer, app = %c.client.nc.app, stream = key.name(), "publish stopped");
        }
        self.emit("publish_stop", r, Some(key.name()), None);
        self.script_stream(r, key, false);
        self.finish_recordings(key);
        self.stop_pushes(key);
        let remote = self.shared.registry.unpublish(key, publish_id);
        for w in remote {
            self.post(
                w,
                WorkerMsg::StreamStopped {
                    key: key.clone(),
                    publish_id,
                },
            );
        }
        self.went_offline(key);
        self.announce_to_children(key, false);
    }

    /// The stream's publisher left: viewers get UnpublishNotify and wait for the next one.
    pub(super) fn went_offline(&mut self, key: &StreamKey) {
        self.stop_multicast(key);
        let mut port = port!(self);
        let Some(stream) = self.streams.get_mut(key) else {
            return;
        };
        stream.went_offline(&mut port, &mut self.stopped);
        if stream.is_unused() {
            self.streams.remove(key);
        }
        self.settle(key);
        self.server_streams_went_offline(key);
    }

    pub(super) fn start_play(
        &mut self,
        r: ConnRef,
        stream_id: u32,
        key: StreamKey,
        params: PlayParams,
    ) {
        let Some(c) = self.conns.get(r) else { return };
        info!(peer = %c.peer, app = %c.client.nc.app, stream = key.name(), start = params.start, "play started");
        self.emit("play_start", r, Some(key.name()), None);
        if self.start_vod(r, stream_id, &key, &params) {
            return;
        }
        self.start_live_play(r, stream_id, key, params);
    }

    /// A play of the live stream `key` (also a -2 play whose file turned out not to be
    /// there, once its open says so).
    pub(super) fn start_live_play(
        &mut self,
        r: ConnRef,
        stream_id: u32,
        key: StreamKey,
        params: PlayParams,
    ) {
        if self.conns.get(r).is_none() {
            return;
        }
        // A live play after a file's (a playlist's next item): the file play ends.
        self.stop_vod(r, stream_id);
        let joined = self.shared.registry.join(&key, self.id);
        if joined.publisher.is_none() {
            self.maybe_pull(&key);
        }
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
        let viewer = Viewer::new(r, stream_id, params.duration, joined.publisher.is_some());
        let mut port = port!(self);
        let stream = self
            .streams
            .entry(key.clone())
            .or_insert_with(|| LiveStream::new(key.clone()));
        stream.add_viewer(viewer, params.reset, &mut port, &mut self.stopped);
        self.note_catching_up(&key);
        self.settle(&key);
    }

    pub(super) fn stop_play(&mut self, r: ConnRef, stream_id: u32, key: &StreamKey) {
        if let Some(c) = self.conns.get(r) {
            info!(peer = %c.peer, app = %c.client.nc.app, stream = key.name(), "play stopped");
            self.emit("play_stop", r, Some(key.name()), None);
        }
        if self.stop_vod(r, stream_id) {
            return;
        }
        if let Some(stream) = self.streams.get_mut(key) {
            stream.remove_viewer(r, stream_id);
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
        self.release_unwanted_pull(key);
    }

    /// What a fan-out on `key` left to the worker: viewers whose play ended (their
    /// NetStream is idle again and their play is released) and clients to close.
    fn settle(&mut self, key: &StreamKey) {
        self.settle_recordings();
        if !self.stopped.is_empty() {
            let mut stopped = std::mem::take(&mut self.stopped);
            for (r, stream_id) in stopped.drain(..) {
                if let Some(c) = self.conns.get_mut(r) {
                    c.client.nc.stream_idle(stream_id);
                }
                self.stop_play(r, stream_id, key);
            }
            self.stopped = stopped;
        }
        if !self.closing.is_empty() {
            for (r, reason) in std::mem::take(&mut self.closing) {
                self.close(r, &reason, true);
            }
        }
    }

    /// A message from this stream's source, if `from` is its source: to the stream's
    /// sinks and viewers (see `LiveStream::publish_frame`).
    pub(super) fn publish_frame(
        &mut self,
        key: &StreamKey,
        m: MediaMessage,
        cache: bool,
        from: impl Fn(&Source) -> bool,
    ) {
        let gop_cache = self.config.live.gop_cache;
        let mut port = port!(self);
        let Some(stream) = self.streams.get_mut(key) else {
            return;
        };
        if !from(&stream.source) {
            return;
        }
        // A server stream's live item follows this stream: it gets the frame too (a
        // refcount, and only while some script follows a stream).
        let followed = self.server_streams.follows_any().then(|| m.clone());
        match stream.publish_frame(m, cache, gop_cache, &mut port, &mut self.stopped) {
            Published::Pending { first } => {
                if first {
                    self.pending_streams.push(key.clone());
                }
                self.media.arm(self.config.live.send_batch_ms);
            }
            Published::Done => {}
        }
        self.settle(key);
        if let Some(m) = followed {
            self.server_streams_frame(key, m, cache);
        }
    }

    /// `@clearDataFrame` from the stream's source (see `LiveStream::clear_metadata`).
    pub(super) fn clear_metadata(
        &mut self,
        key: &StreamKey,
        m: MediaMessage,
        from: impl Fn(&Source) -> bool,
    ) {
        let mut port = port!(self);
        if let Some(stream) = self.streams.get_mut(key).filter(|s| from(&s.source)) {
            stream.clear_metadata(m, &mut port);
        }
    }

    /// Tells the workers with viewers of `key` waiting that it went live here (a local
    /// publisher or an upstream link), so they follow it.
    pub(super) fn tell_workers_started(
        &mut self,
        key: &StreamKey,
        publish_id: u64,
        workers: &[usize],
    ) {
        for &w in workers {
            self.post(
                w,
                WorkerMsg::StreamStarted {
                    key: key.clone(),
                    publish_id,
                    snapshot: Vec::new(),
                },
            );
        }
    }

    /// Hands a stream's pending audio and video to its viewers (see
    /// `LiveStream::flush_pending`).
    pub(super) fn flush_stream(&mut self, key: &StreamKey) {
        let mut port = port!(self);
        let Some(stream) = self.streams.get_mut(key) else {
            return;
        };
        stream.flush_pending(&mut port, &mut self.stopped);
        self.settle(key);
    }

    /// receiveAudio / receiveVideo / pause on a NetStream that plays.
    pub(super) fn viewer_control(&mut self, r: ConnRef, stream_id: u32, action: Action) {
        if let Action::Pause { pause, .. } = action {
            if self.vod_pause(r, stream_id, pause) {
                return;
            }
        }
        let Some(key) = self
            .conns
            .get(r)
            .and_then(|c| c.client.nc.playing(stream_id))
            .cloned()
        else {
            return;
        };
        let mut port = port!(self);
        let Some(stream) = self.streams.get_mut(&key) else {
            return;
        };
        match action {
            Action::SetReceive { audio, video, .. } => {
                if let Some(v) = stream.viewer_mut(r, stream_id) {
                    v.set_receive(audio, video);
                }
            }
            Action::Pause { pause, .. } => stream.pause_viewer(r, stream_id, pause, &mut port),
            _ => {}
        }
    }
}
