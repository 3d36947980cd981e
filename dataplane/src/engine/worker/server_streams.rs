//! Server-side streams (a script's `Stream.get(name)`): a playlist of files published as a
//! live stream under `name` in the script's instance, so every viewer joins it at the same
//! point. The instance's owner worker holds it: it claims the name in the registry like a
//! publisher, reads the files through the ring as VOD does (`vod.rs` builds and shares the
//! indexes), paces the samples in real time with its timers (`ServerPlaylist` says when),
//! and publishes them into the `LiveStream` as an upstream link would, from a source no
//! connection has (`link`). Statuses go back to the script's `Stream.onStatus`.

use std::collections::HashMap;
use std::fs::File;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tracing::{info, warn};

use super::*;
use crate::app::instance::InstanceKey;
use crate::engine::content_root::ContentRoot;
use crate::engine::file_read::FileReadError;
use crate::engine::owner::VodReader;
use crate::media::vod::content_path::ContentPath;
use crate::media::vod::file_play::Item;
use crate::media::vod::index::MediaIndex;
use crate::media::vod::play_status;
use crate::media::vod::playback::Length;
use crate::media::vod::server_playlist::{ServerPlaylist, Step};
use crate::proto::amf0::{self, Amf0Value};
use crate::proto::rtmp::msg_type;
use crate::scripts::{ScriptStreamAction, ToScripts};

/// Bytes read ahead of the sample needed (as a viewer's file play does).
const READ_AHEAD_BYTES: usize = 256 * 1024;

#[derive(Default)]
pub(crate) struct ServerStreams {
    by_id: HashMap<u32, ServerStream>,
    next_id: u32,
}

struct ServerStream {
    key: StreamKey,
    instance: InstanceKey,
    playlist: ServerPlaylist,
    files: Vec<(Arc<MediaIndex>, Arc<File>)>,
    ahead: Option<(Arc<MediaIndex>, u64, Vec<u8>)>,
    reading: bool,
    wake_at: Option<u64>,
    /// The registry claim while the stream is published.
    publish_id: Option<u64>,
}

/// An item waiting for its file's index (see `vod.rs`'s `Waiting`).
pub(super) struct ServerItem {
    pub(super) id: u32,
    pub(super) name: String,
    pub(super) start_ms: u32,
    pub(super) len: Length,
    pub(super) reset: bool,
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
            },
        );
        id
    }

    /// `play(source, start, len, reset)`: the file is found under the content root (as a
    /// client's play of the name in this instance would) and indexed, then queued.
    fn server_stream_play(
        &mut self,
        id: u32,
        instance: &InstanceKey,
        source: &str,
        start: f64,
        len: f64,
        reset: bool,
    ) {
        let found = self.config.vod.root.as_ref().and_then(|root| {
            let path = ContentPath::resolve(&instance.app, &instance.instance, source).ok()?;
            let real = ContentRoot::new(root)
                .and_then(|root| root.existing_file(&path))
                .ok()?;
            Some((real, path.format()))
        });
        let Some((real, format)) = found else {
            warn!(worker = self.id, app = %instance, source,
                "server stream: no such file under the content root");
            self.server_stream_status(id, "NetStream.Play.StreamNotFound", source);
            return;
        };
        let item = ServerItem {
            id,
            name: source.to_string(),
            start_ms: start.clamp(0.0, f64::from(u32::MAX)) as u32,
            len: Length::from_wire(Some(len)),
            reset,
        };
        self.vod_when_indexed(real, format, vod::Waiting::Server(item), "script");
    }

    /// An item's file is indexed (or cannot be served).
    pub(super) fn server_stream_indexed(
        &mut self,
        w: ServerItem,
        indexed: Result<(Arc<File>, Arc<MediaIndex>), ()>,
    ) {
        let Ok((file, index)) = indexed else {
            self.server_stream_status(w.id, "NetStream.Play.StreamNotFound", &w.name);
            return;
        };
        let now = self.clock_ms(Instant::now());
        let Some(s) = self.server_streams.by_id.get_mut(&w.id) else {
            return;
        };
        if w.reset {
            s.files.clear();
            s.ahead = None;
        }
        let item = Item {
            name: w.name.clone(),
            index: Arc::clone(&index),
            start_ms: w.start_ms,
            len: w.len,
        };
        if !s.playlist.play(item, w.reset, now) {
            self.server_stream_status(w.id, "NetStream.Play.Failed", &w.name);
            return;
        }
        s.files.push((index, file));
        s.wake_at = None;
        self.server_stream_claim(w.id);
        self.server_stream_pump(w.id);
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
        let publish_id = self
            .shared
            .next_publish_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let Ok(remote_workers) = self
            .shared
            .registry
            .publish(&key, self.id, publish_id, None)
        else {
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
                        self.server_stream_publish(id, &key, m);
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
                        self.server_stream_publish(id, &key, m);
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
        if ended {
            self.server_stream_unpublish(id);
        }
    }

    pub(super) fn server_stream_read(
        &mut self,
        id: u32,
        at: u64,
        result: Result<Vec<u8>, FileReadError>,
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
        self.server_stream_publish(id, &key, m);
    }

    fn server_stream_publish(&mut self, id: u32, key: &StreamKey, m: MediaMessage) {
        let me = link(id);
        let from = |s: &Source| matches!(s, Source::Upstream { link, .. } if *link == me);
        self.publish_frame(key, m, true, from);
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
        info!(
            worker = self.id,
            app = key.app(),
            stream = key.name(),
            "server stream ended"
        );
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
}
