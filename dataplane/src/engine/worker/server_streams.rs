//! Server-side streams (a script's `Stream.get(name)`): a playlist of files published as a
//! live stream under `name` in the script's instance, so every viewer joins it at the same
//! point. The instance's owner worker holds it: it claims the name in the registry like a
//! publisher, reads the files through the ring as VOD does (`vod.rs` builds and shares the
//! indexes), paces the samples in real time with its timers (`ServerPlaylist` says when),
//! and publishes them into the `LiveStream` as an upstream link would, from a source no
//! connection has (`link`). A live item follows another stream of the instance as one
//! more viewer of it would (a registry join, a subscription to its publisher's worker):
//! `publish_frame` hands its frames here, re-timed onto the stream's timeline. Statuses
//! go back to the script's `Stream.onStatus`.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tracing::{info, warn};

use super::*;
use crate::app::instance::InstanceKey;
use crate::engine::file_read::FileReadError;
use crate::engine::owner::VodReader;
use crate::media::tag::{self as frame_tag, FrameKind};
use crate::media::vod::content_path::ContentPath;
use crate::media::vod::file_play::Item;
use crate::media::vod::index::MediaIndex;
use crate::media::vod::play_status;
use crate::media::vod::playback::Length;
use crate::media::vod::server_playlist::{Entry, ServerPlaylist, Step};
use crate::proto::amf0::{self, Amf0Value};
use crate::proto::rtmp::msg_type;
use crate::scripts::{ScriptStreamAction, ToScripts};

/// Bytes read ahead of the sample needed (as a viewer's file play does).
const READ_AHEAD_BYTES: usize = 256 * 1024;

#[derive(Default)]
pub(crate) struct ServerStreams {
    by_id: HashMap<u32, ServerStream>,
    next_id: u32,
    /// Live streams a server stream's live item follows, and by which.
    follows: Vec<(StreamKey, u32)>,
    /// A followed frame is being re-published: a server stream that follows another one
    /// gets nothing through it (so no loop of streams can recurse).
    relaying: bool,
}

impl ServerStreams {
    /// Whether `publish_frame` has anything to hand over (checked once per message).
    pub(super) fn follows_any(&self) -> bool {
        !self.follows.is_empty() && !self.relaying
    }
}

struct ServerStream {
    key: StreamKey,
    instance: InstanceKey,
    playlist: ServerPlaylist,
    files: Vec<(Arc<MediaIndex>, Arc<File>)>,
    ahead: Option<(Arc<MediaIndex>, u64, bytes::Bytes)>,
    reading: bool,
    wake_at: Option<u64>,
    /// The registry claim while the stream is published.
    publish_id: Option<u64>,
    /// Plays in the order the script made them: a file's waits for its index, and what
    /// is behind it waits too. (seq, reset, the item and its file once known.)
    order: VecDeque<(u64, bool, Option<Ready>)>,
    next_seq: u64,
    /// The live stream the current item follows.
    following: Option<StreamKey>,
    /// A key frame of the followed stream came through (inter frames before it are not
    /// passed on: nothing could decode them).
    keyed: bool,
    /// `record(mode)`: recorded whenever published; `true` appends (after the first file
    /// is started, so a playlist played again goes on in the same file).
    record: Option<bool>,
}

/// A play ready for the playlist: the item, and its file if it is one.
type Ready = (Entry, Option<Arc<File>>);

/// An item waiting for its file's index (see `vod.rs`'s `Waiting`).
pub(super) struct ServerItem {
    pub(super) id: u32,
    pub(super) seq: u64,
    pub(super) name: String,
    pub(super) start_ms: u32,
    pub(super) len: Length,
}

/// The source the stream's frames come from: no connection has this slot.
fn link(id: u32) -> ConnRef {
    ConnRef {
        slot: u32::MAX - 1,
        generation: id,
    }
}

impl Worker {
    /// A script's operation on its server-side stream `name`.
    pub(super) fn server_stream(
        &mut self,
        instance: InstanceKey,
        name: String,
        action: ScriptStreamAction,
    ) {
        let key = StreamKey::new(&instance.app, &instance.instance, &name);
        let found = self
            .server_streams
            .by_id
            .iter()
            .find(|(_, s)| s.key == key)
            .map(|(id, _)| *id);
        match action {
            ScriptStreamAction::Play {
                source,
                start,
                len,
                reset,
            } => {
                let id = found.unwrap_or_else(|| self.server_stream_new(key, instance.clone()));
                self.server_stream_play(id, &instance, &source, start, len, reset);
            }
            ScriptStreamAction::Stop => {
                if let Some(id) = found {
                    if let Some(s) = self.server_streams.by_id.get_mut(&id) {
                        s.playlist.stop();
                    }
                    self.server_stream_pump(id);
                }
            }
            ScriptStreamAction::Send { handler, args } => {
                let Some(id) = found else { return };
                self.server_stream_send(id, &handler, &args);
            }
            ScriptStreamAction::Record { mode } => {
                let id = found.unwrap_or_else(|| self.server_stream_new(key, instance.clone()));
                self.server_stream_record(id, &mode);
            }
        }
    }

    /// `record(mode)`: starts now if the stream is published, else when it is.
    fn server_stream_record(&mut self, id: u32, mode: &str) {
        let Some(s) = self.server_streams.by_id.get_mut(&id) else {
            return;
        };
        let key = s.key.clone();
        if mode == "false" {
            if s.record.take().is_some() && self.recordings.path_of(&key).is_some() {
                self.finish_recordings(&key);
                self.server_stream_status(id, "NetStream.Record.Stop", key.name());
            }
            return;
        }
        s.record = Some(mode == "append");
        if s.publish_id.is_some() {
            self.server_stream_record_start(id);
        }
    }

    /// The stream is published and recorded: its file is opened (a status says how).
    fn server_stream_record_start(&mut self, id: u32) {
        let Some(s) = self.server_streams.by_id.get(&id) else {
            return;
        };
        let (Some(append), key) = (s.record, s.key.clone()) else {
            return;
        };
        match self.record_server_stream(&key, append) {
            Ok(path) => {
                if let Some(s) = self.server_streams.by_id.get_mut(&id) {
                    s.record = Some(true);
                }
                let path = path.display().to_string();
                self.server_stream_status(id, "NetStream.Record.Start", &path);
            }
            Err(why) => {
                warn!(worker = self.id, stream = key.name(), reason = %why,
                    "server stream not recorded");
                let code = if self.config.vod.root.is_none() {
                    "NetStream.Record.NoAccess"
                } else {
                    "NetStream.Record.Failed"
                };
                self.server_stream_status(id, code, &why);
            }
        }
    }

    fn server_stream_new(&mut self, key: StreamKey, instance: InstanceKey) -> u32 {
        let now = self.clock_ms(Instant::now());
        let ss = &mut self.server_streams;
        ss.next_id = ss.next_id.wrapping_add(1);
        let id = ss.next_id;
        ss.by_id.insert(
            id,
            ServerStream {
                key,
                instance,
                playlist: ServerPlaylist::new(now),
                files: Vec::new(),
                ahead: None,
                reading: false,
                wake_at: None,
                publish_id: None,
                order: VecDeque::new(),
                next_seq: 0,
                following: None,
                keyed: false,
                record: None,
            },
        );
        id
    }

    /// `play(source, start, len, reset)`: start -1 follows the live stream `source` of the
    /// instance; 0 and up plays the file under the content root (as a client's play of the
    /// name in this instance would find it) once indexed; -2 the file if there is one,
    /// else the live stream.
    fn server_stream_play(
        &mut self,
        id: u32,
        instance: &InstanceKey,
        source: &str,
        start: f64,
        len: f64,
        reset: bool,
    ) {
        let len = Length::from_wire(Some(len));
        // Whether the file is there is known once it is opened (off the worker's thread):
        // a -2 item without one plays the live stream then (`server_stream_missing`).
        let path = (start != -1.0 && self.config.vod.root.is_some())
            .then(|| ContentPath::resolve(&instance.app, &instance.instance, source).ok())
            .flatten();
        let Some(s) = self.server_streams.by_id.get_mut(&id) else {
            return;
        };
        let seq = s.next_seq;
        s.next_seq += 1;
        match path {
            None if start >= 0.0 => {
                warn!(worker = self.id, app = %instance, source,
                    "server stream: no such file under the content root");
                self.server_stream_status(id, "NetStream.Play.StreamNotFound", source);
            }
            None => {
                s.order.push_back((seq, reset, None));
                self.server_stream_live(id, seq, source, len);
            }
            Some(path) => {
                s.order.push_back((seq, reset, None));
                let item = ServerItem {
                    id,
                    seq,
                    name: source.to_string(),
                    start_ms: start.clamp(0.0, f64::from(u32::MAX)) as u32,
                    len,
                };
                self.vod_open_for_server(&path, item, start < 0.0);
            }
        }
    }

    /// A -2 item has no file: the live stream of its name, in its turn (a server stream
    /// cannot play its own name live: Play.Failed).
    pub(super) fn server_stream_missing(&mut self, w: ServerItem) {
        self.server_stream_live(w.id, w.seq, &w.name, w.len);
    }

    fn server_stream_live(&mut self, id: u32, seq: u64, name: &str, len: Length) {
        let Some(s) = self.server_streams.by_id.get_mut(&id) else {
            return;
        };
        let Some(at) = s.order.iter().position(|(sq, ..)| *sq == seq) else {
            return;
        };
        if name == s.key.name() {
            s.order.remove(at);
            self.server_stream_status(id, "NetStream.Play.Failed", name);
        } else {
            let live = Entry::Live {
                name: name.to_string(),
                len,
            };
            s.order[at].2 = Some((live, None));
        }
        self.server_stream_drain(id);
    }

    /// An item's file is indexed (or cannot be served).
    pub(super) fn server_stream_indexed(
        &mut self,
        w: ServerItem,
        indexed: Result<(Arc<File>, Arc<MediaIndex>), ()>,
    ) {
        let Some(s) = self.server_streams.by_id.get_mut(&w.id) else {
            return;
        };
        let Some(at) = s.order.iter().position(|(seq, ..)| *seq == w.seq) else {
            return;
        };
        match indexed {
            Ok((file, index)) => {
                let item = Item {
                    name: w.name,
                    index,
                    start_ms: w.start_ms,
                    len: w.len,
                };
                s.order[at].2 = Some((Entry::File(item), Some(file)));
            }
            Err(()) => {
                s.order.remove(at);
                self.server_stream_status(w.id, "NetStream.Play.StreamNotFound", &w.name);
            }
        }
        self.server_stream_drain(w.id);
    }

    /// Hands the plays that are ready, in order, to the playlist.
    fn server_stream_drain(&mut self, id: u32) {
        let now = self.clock_ms(Instant::now());
        let Some(s) = self.server_streams.by_id.get_mut(&id) else {
            return;
        };
        let mut played = false;
        let mut refused = Vec::new();
        // Bounded by the plays queued.
        while s.order.front().is_some_and(|(_, _, ready)| ready.is_some()) {
            let Some((_, reset, Some((entry, file)))) = s.order.pop_front() else {
                break;
            };
            if reset {
                s.files.clear();
                s.ahead = None;
            }
            let index = match &entry {
                Entry::File(item) => Some(Arc::clone(&item.index)),
                Entry::Live { .. } => None,
            };
            let name = match &entry {
                Entry::File(item) => item.name.clone(),
                Entry::Live { name, .. } => name.clone(),
            };
            if !s.playlist.play(entry, reset, now) {
                refused.push(name);
                continue;
            }
            if let (Some(index), Some(file)) = (index, file) {
                s.files.push((index, file));
            }
            played = true;
        }
        s.wake_at = None;
        for name in refused {
            self.server_stream_status(id, "NetStream.Play.Failed", &name);
        }
        if played {
            self.server_stream_claim(id);
            self.server_stream_pump(id);
        }
    }

    /// The stream's name is claimed, as a publisher's would be; false if another
    /// publisher has it.
    fn server_stream_claim(&mut self, id: u32) -> bool {
        let Some(s) = self.server_streams.by_id.get(&id) else {
            return false;
        };
        if s.publish_id.is_some() {
            return true;
        }
        let key = s.key.clone();
        let Ok((publish_id, remote_workers)) = self.claim_stream(&key, None) else {
            warn!(
                worker = self.id,
                stream = key.name(),
                "server stream: name already published"
            );
            if let Some(s) = self.server_streams.by_id.get_mut(&id) {
                s.playlist.stop();
                s.playlist.take_statuses();
            }
            self.server_stream_status(id, "NetStream.Publish.BadName", key.name());
            return false;
        };
        if let Some(s) = self.server_streams.by_id.get_mut(&id) {
            s.publish_id = Some(publish_id);
        }
        info!(
            worker = self.id,
            app = key.app(),
            stream = key.name(),
            "server stream published"
        );
        self.streams
            .entry(key.clone())
            .or_insert_with(|| LiveStream::new(key.clone()))
            .publish_upstream(
                link(id),
                publish_id,
                unix_now(),
                Some((0, "script".to_string())),
                remote_workers.iter().copied(),
            );
        self.tell_workers_started(&key, publish_id, &remote_workers);
        self.went_live(&key);
        self.announce_to_children(&key, true);
        self.server_stream_record_start(id);
        true
    }

    /// Publishes what is due, reading ahead as it goes, and arms the timer for what is
    /// next; an ended playlist unpublishes the stream.
    pub(super) fn server_stream_pump(&mut self, id: u32) {
        let now = self.clock_ms(Instant::now());
        // Bounded by the samples of the playlist's files (each round publishes or returns).
        let ended = loop {
            let Some(s) = self.server_streams.by_id.get_mut(&id) else {
                return;
            };
            if s.reading {
                return;
            }
            let key = s.key.clone();
            match s.playlist.poll(now) {
                Step::Headers(index, at) => {
                    for m in play_status::header_messages(&index, at) {
                        self.server_stream_publish(id, &key, m, true);
                    }
                }
                Step::Send(index, i, at) => {
                    let Some(sample) = index.samples.get(i).copied() else {
                        continue;
                    };
                    let start = sample.offset;
                    let end = start + u64::from(sample.size);
                    let cached = s.ahead.as_ref().and_then(|(ai, from_at, bytes)| {
                        let from = usize::try_from(start.checked_sub(*from_at)?).ok()?;
                        let to = usize::try_from(end - *from_at).ok()?;
                        let slice = bytes.get(from..to)?;
                        Arc::ptr_eq(ai, &index).then(|| index.message(&sample, slice))
                    });
                    if let Some((type_id, payload)) = cached {
                        let m = MediaMessage {
                            timestamp: at,
                            type_id,
                            payload,
                        };
                        self.server_stream_publish(id, &key, m, true);
                        continue;
                    }
                    let Some(file) = s
                        .files
                        .iter()
                        .find(|(f, _)| Arc::ptr_eq(f, &index))
                        .map(|(_, f)| Arc::clone(f))
                    else {
                        return;
                    };
                    let left = index.file_len.saturating_sub(start) as usize;
                    let len = (sample.size as usize).max(READ_AHEAD_BYTES.min(left));
                    // Read first, then publish: step back so poll returns it again.
                    s.playlist.unsend(i);
                    s.reading = true;
                    self.file_reads.start(
                        &mut self.io,
                        file,
                        start,
                        len,
                        Owner::Vod(VodReader::Server(id)),
                    );
                    break false;
                }
                Step::WaitUntil(t) => {
                    if s.wake_at != Some(t) {
                        s.wake_at = Some(t);
                        let at = self.started + Duration::from_millis(t);
                        self.timers.arm_for(
                            Owner::Vod(VodReader::Server(id)),
                            at,
                            TimerKind::VodPace(0),
                        );
                    }
                    break false;
                }
                Step::Idle => break !s.playlist.is_playing(),
            }
        };
        self.server_stream_statuses(id);
        self.server_stream_follow(id);
        if ended {
            self.server_stream_unpublish(id);
        }
    }

    pub(super) fn server_stream_read(
        &mut self,
        id: u32,
        at: u64,
        result: Result<bytes::Bytes, FileReadError>,
    ) {
        let Some(s) = self.server_streams.by_id.get_mut(&id) else {
            return;
        };
        s.reading = false;
        match result {
            Ok(bytes) => {
                if let Some(index) = s.playlist.current_index() {
                    s.ahead = Some((index, at, bytes));
                }
            }
            Err(e) => {
                warn!(worker = self.id, stream = s.key.name(), error = %e,
                    "server stream: file read failed; playlist stopped");
                s.playlist.stop();
            }
        }
        self.server_stream_pump(id);
    }

    /// `stream.send(handler, ...args)`: a data message to every viewer, in the stream.
    fn server_stream_send(&mut self, id: u32, handler: &str, args: &[Value]) {
        let now = self.clock_ms(Instant::now());
        let Some(s) = self.server_streams.by_id.get(&id) else {
            return;
        };
        let key = s.key.clone();
        let timestamp = s.playlist.time_now(now);
        let mut values = vec![Amf0Value::string(handler)];
        match crate::app::rpc::args_from_json(args) {
            Ok(a) => values.extend(a),
            Err(e) => {
                warn!(worker = self.id, stream = key.name(), error = %e,
                    "server stream send: arguments do not map to AMF");
                return;
            }
        }
        let mut payload = Vec::new();
        amf0::encode_all(&values, &mut payload);
        let m = MediaMessage {
            timestamp,
            type_id: msg_type::DATA_AMF0,
            payload: payload.into(),
        };
        self.server_stream_publish(id, &key, m, false);
    }

    fn server_stream_publish(&mut self, id: u32, key: &StreamKey, m: MediaMessage, cache: bool) {
        let me = link(id);
        let from = |s: &Source| matches!(s, Source::Upstream { link, .. } if *link == me);
        self.publish_frame(key, m, cache, from);
    }

    /// The playlist ended: viewers get UnpublishNotify (and wait for the next play).
    fn server_stream_unpublish(&mut self, id: u32) {
        let Some(s) = self.server_streams.by_id.get_mut(&id) else {
            return;
        };
        s.files.clear();
        s.ahead = None;
        let Some(publish_id) = s.publish_id.take() else {
            return;
        };
        let key = s.key.clone();
        let recorded = s.record.is_some();
        info!(
            worker = self.id,
            app = key.app(),
            stream = key.name(),
            "server stream ended"
        );
        if recorded && self.recordings.path_of(&key).is_some() {
            self.finish_recordings(&key);
            self.server_stream_status(id, "NetStream.Record.Stop", key.name());
        }
        for w in self.shared.registry.unpublish(&key, publish_id) {
            self.post(
                w,
                WorkerMsg::StreamStopped {
                    key: key.clone(),
                    publish_id,
                },
            );
        }
        self.went_offline(&key);
        self.announce_to_children(&key, false);
        self.vod_forget_unused();
    }

    /// The instance's script is gone: its streams end.
    pub(super) fn server_streams_leave(&mut self, instance: &InstanceKey) {
        let ids: Vec<u32> = self
            .server_streams
            .by_id
            .iter()
            .filter(|(_, s)| &s.instance == instance)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if let Some(s) = self.server_streams.by_id.get_mut(&id) {
                s.playlist.stop();
                s.playlist.take_statuses();
            }
            self.server_stream_follow(id);
            self.server_stream_unpublish(id);
            self.server_streams.by_id.remove(&id);
        }
    }

    fn server_stream_statuses(&mut self, id: u32) {
        let Some(s) = self.server_streams.by_id.get_mut(&id) else {
            return;
        };
        let statuses = s.playlist.take_statuses();
        for st in statuses {
            self.server_stream_status(id, st.code, &st.name);
        }
    }

    fn server_stream_status(&self, id: u32, code: &str, details: &str) {
        let (Some(scripts), Some(s)) = (
            self.shared.scripts.as_ref(),
            self.server_streams.by_id.get(&id),
        ) else {
            return;
        };
        scripts.send(ToScripts::StreamStatus {
            instance: s.instance.clone(),
            name: s.key.name().to_string(),
            code: code.to_string(),
            details: details.to_string(),
        });
    }

    /// Follows the live stream the current item names (and lets go of the one before).
    fn server_stream_follow(&mut self, id: u32) {
        let Some(s) = self.server_streams.by_id.get_mut(&id) else {
            return;
        };
        let want = s
            .playlist
            .live_source()
            .map(|name| StreamKey::new(s.key.app(), s.key.instance(), name));
        if want == s.following {
            return;
        }
        let old = std::mem::replace(&mut s.following, want.clone());
        s.keyed = false;
        if let Some(old) = old {
            self.server_streams
                .follows
                .retain(|(k, i)| !(*i == id && *k == old));
            if let Some(stream) = self.streams.get_mut(&old) {
                stream.follow(false);
                if stream.is_unused() {
                    self.streams.remove(&old);
                }
            }
            if let Some(pub_worker) = self.shared.registry.leave(&old, self.id) {
                if pub_worker != self.id {
                    let msg = WorkerMsg::Unsubscribe {
                        key: old.clone(),
                        worker: self.id,
                    };
                    self.post(pub_worker, msg);
                }
            }
        }
        let Some(key) = want else { return };
        info!(
            worker = self.id,
            stream = key.name(),
            "server stream follows a live stream"
        );
        self.server_streams.follows.push((key.clone(), id));
        let joined = self.shared.registry.join(&key, self.id);
        if let Some((pub_worker, _)) = joined.publisher {
            if pub_worker != self.id && joined.first_on_worker {
                let msg = WorkerMsg::Subscribe {
                    key: key.clone(),
                    worker: self.id,
                };
                self.post(pub_worker, msg);
            }
        }
        self.streams
            .entry(key.clone())
            .or_insert_with(|| LiveStream::new(key.clone()))
            .follow(true);
        self.server_streams_went_live(&key);
    }

    /// `key` is live on this worker (or was when followed): its followers start from its
    /// snapshot (metadata, headers, the GOP), as a joining viewer does.
    pub(super) fn server_streams_went_live(&mut self, key: &StreamKey) {
        if !self.server_streams.follows.iter().any(|(k, _)| k == key) {
            return;
        }
        let Some(stream) = self.streams.get(key).filter(|s| s.is_live()) else {
            return;
        };
        let snapshot: Vec<MediaMessage> = stream.gop.snapshot().map(|f| f.message()).collect();
        for m in snapshot {
            self.server_streams_frame(key, m, true);
        }
    }

    /// A frame of live stream `key` (from its source): to the server streams following it.
    pub(super) fn server_streams_frame(&mut self, key: &StreamKey, m: MediaMessage, cache: bool) {
        let now = self.clock_ms(Instant::now());
        let ids: Vec<u32> = self
            .server_streams
            .follows
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, id)| *id)
            .collect();
        for id in ids {
            let Some(s) = self.server_streams.by_id.get_mut(&id) else {
                continue;
            };
            let kind = frame_tag::classify(m.type_id, &m.payload);
            s.keyed |= kind == FrameKind::VideoKey;
            if kind == FrameKind::VideoInter && !s.keyed {
                continue;
            }
            let media = matches!(
                kind,
                FrameKind::VideoKey | FrameKind::VideoInter | FrameKind::Audio
            );
            let Some(timestamp) = s.playlist.live_frame(m.timestamp, media, now) else {
                continue;
            };
            let own = s.key.clone();
            let m = MediaMessage {
                timestamp,
                ..m.clone()
            };
            self.server_streams.relaying = true;
            self.server_stream_publish(id, &own, m, cache);
            self.server_streams.relaying = false;
        }
    }

    /// Live stream `key` was unpublished: the items following it are over.
    pub(super) fn server_streams_went_offline(&mut self, key: &StreamKey) {
        let ids: Vec<u32> = self
            .server_streams
            .follows
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, id)| *id)
            .collect();
        for id in ids {
            if let Some(s) = self.server_streams.by_id.get_mut(&id) {
                s.playlist.live_ended();
            }
            self.server_stream_pump(id);
        }
    }
}
