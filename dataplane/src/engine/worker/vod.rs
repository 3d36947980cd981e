//! Files as streams on this worker: a `play` the content root can serve becomes a
//! `FilePlay` (`media/vod/file_play.rs`) driven here. A file's index is built once (per
//! worker) from io_uring reads where the sans-IO indexer asks, and shared by every
//! NetStream playing it. Its samples are read in blocks shared by all its viewers
//! (`media/vod/block_cache.rs`, each block read once through the ring), each sample is
//! made into a frame once for all of them (`media/vod/sample_frames.rs`), and the worker's
//! timers pace what is not yet due on a shared tick, the lead growing from a play's start
//! (`media/vod/pacing.rs`) so a start storm sends everyone's first frames first.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tracing::{info, warn};

use super::port::port;
use super::Worker;
use crate::app::request::PlayParams;
use crate::engine::conn::ConnRef;
use crate::engine::content_root::{ContentRoot, RootError};
use crate::engine::file_open::{open_dir, FileOpens};
use crate::engine::file_read::FileReadError;
use crate::engine::io::Completion;
use crate::engine::owner::{Owner, VodReader};
use crate::engine::shared_indexes::FileKey;
use crate::engine::timers::TimerKind;
use crate::engine::token::Token;
use crate::media::port::Urgency;
use crate::media::vod::block_cache::{BlockCache, FileId, Lookup, BLOCK_BYTES};
use crate::media::vod::content_path::ContentPath;
use crate::media::vod::file_play::{FilePlay, Item, Turn};
use crate::media::vod::index::{Feed, MediaIndex};
use crate::media::vod::indexer::Indexer;
use crate::media::vod::pacing::Pacing;
use crate::media::vod::play_order::PlayOrder;
use crate::media::vod::play_status;
use crate::media::vod::playback::Length;
use crate::media::vod::sample_frames::SampleFrames;
use crate::media::StreamKey;

/// Bytes an index build reads at least at a time: an FLV file's tags are walked in order.
const READ_AHEAD_BYTES: usize = 256 * 1024;
/// How fast a play's lead grows (see `Pacing::ramp`): a 3 s buffer is full 750 ms in.
const LEAD_RAMP: u32 = 4;
/// Most bytes a viewer may have queued and not yet taken: past it, its play sends nothing
/// until the next tick finds it below (the play's clock goes on; what fell due then goes
/// out at once). A player that stops reading holds this much, not the rest of the file.
const MAX_UNSENT_BYTES: usize = 8 << 20;

#[derive(Default)]
pub(crate) struct VodState {
    /// Files by canonical path.
    files: HashMap<PathBuf, FileEntry>,
    /// Indexes being built, by the id their reads carry.
    building: HashMap<u32, PathBuf>,
    next_id: u32,
    /// The id the next file indexed gets.
    next_file: FileId,
    plays: HashMap<(ConnRef, u32), Play>,
    /// Read blocks shared by the files' viewers, and those being read with the plays
    /// waiting for them.
    blocks: BlockCache,
    block_reads: HashMap<(FileId, u64), Vec<(ConnRef, u32)>>,
    /// Frames made of the files' samples, shared by their viewers.
    frames: SampleFrames,
    /// The content root as configured, its canonical path and its directory, the base
    /// of every open.
    root: Option<(PathBuf, PathBuf, Arc<OwnedFd>)>,
    /// Opens in flight through the ring, and what waits for each, by the id they carry.
    opens: FileOpens<u32>,
    opening: HashMap<u32, Opening>,
    /// A NetStream's plays take effect in the order they were made.
    order: PlayOrder<(ConnRef, u32), PlayOutcome>,
}

/// What a play turned into once its file was opened and indexed (or was not).
enum PlayOutcome {
    Begin(PlayWait, Arc<File>, Arc<MediaIndex>),
    NotFound(PlayWait),
    /// A -2 play with no file: the live stream.
    Live(PlayWait, StreamKey, PlayParams),
}

/// What waits for a file's open: the play (or length call) and, for a -2 play, the live
/// play it becomes if there is no such file.
struct Opening {
    real: PathBuf,
    format: crate::media::vod::content_path::FileFormat,
    waiting: Waiting,
    live: Option<(StreamKey, PlayParams)>,
    /// A server stream's -2 item: the live stream if there is no file.
    server_live: bool,
    peer: String,
}

impl VodState {
    /// No open in flight (the kernel may read an open's path until it completes).
    pub(super) fn opens_idle(&self) -> bool {
        self.opens.is_empty()
    }

    /// The files whose index is built, by canonical path, with their durations.
    pub(super) fn durations(&self) -> Vec<(PathBuf, u32)> {
        self.files
            .iter()
            .filter_map(|(path, f)| match f {
                FileEntry::Ready { index, .. } => {
                    Some((path.clone(), index.upgrade()?.duration_ms))
                }
                FileEntry::Building { .. } => None,
            })
            .collect()
    }
}

enum FileEntry {
    Building {
        file: Arc<File>,
        key: FileKey,
        indexer: Box<Indexer>,
        /// The last read asked for: asked again with nothing new, the file changed.
        asked: (u64, usize),
        waiting: Vec<Waiting>,
    },
    /// Indexed. The entry does not keep the index alive: what plays the file (or waits
    /// on it) does, here or on another worker (`shared_indexes`); once nothing does, the
    /// entry goes (`vod_forget_unused`).
    Ready {
        file: Arc<File>,
        index: Weak<MediaIndex>,
        id: FileId,
    },
}

/// What waits for a file's index: a play, a `getStreamLength` call, or an item of a
/// server-side stream's playlist (`server_streams.rs`).
pub(super) enum Waiting {
    Server(super::server_streams::ServerItem),
    Play(PlayWait),
    Length {
        r: ConnRef,
        stream_id: u32,
        transaction: f64,
    },
}

impl Waiting {
    fn is_play_of(&self, r: ConnRef, stream_id: u32) -> bool {
        matches!(self, Waiting::Play(w) if w.r == r && w.stream_id == stream_id)
    }
}

/// A play waiting for its file's index.
pub(super) struct PlayWait {
    r: ConnRef,
    stream_id: u32,
    /// Its place among the NetStream's plays (`PlayOrder`).
    ticket: u64,
    name: String,
    start_ms: u32,
    len: Length,
    reset: bool,
}

struct Play {
    play: FilePlay,
    /// The files of the playlist's items, by index.
    files: Vec<(Arc<MediaIndex>, Arc<File>, FileId)>,
    /// A sample larger than a block, read for this play alone: (file, offset, bytes; empty
    /// while the read is in flight).
    alone: Option<(FileId, u64, Bytes)>,
    /// Waiting for a read (a shared block or its own).
    reading: bool,
    /// The pacing timer armed (clock ms), so one is armed per wake-up.
    wake_at: Option<u64>,
}

impl Worker {
    /// Takes a play that names a file: true when VOD handled it (playing, waiting for the
    /// file's index, or refused with StreamNotFound); false leaves it to the live path.
    pub(super) fn start_vod(
        &mut self,
        r: ConnRef,
        stream_id: u32,
        key: &StreamKey,
        params: &PlayParams,
    ) -> bool {
        if self.config.vod.root.is_none() {
            return false;
        }
        // -1: live only; -2 (and other negatives): live if published, else the file.
        if params.start == -1.0 || (params.start < 0.0 && self.shared.registry.is_published(key)) {
            return false;
        }
        let wants_file = params.start >= 0.0;
        let peer = self
            .conns
            .get(r)
            .map(|c| c.peer.to_string())
            .unwrap_or_default();
        let path = match ContentPath::resolve(key.app(), key.instance(), &params.name) {
            Ok(p) => p,
            Err(e) => {
                warn!(worker = self.id, peer = %peer, name = %params.name, reason = %e,
                    "play refused: stream not found");
                self.vod_not_found(r, stream_id, key.name());
                return true;
            }
        };
        let Some(ticket) = self.vod.order.ticket((r, stream_id)) else {
            warn!(worker = self.id, peer = %peer, name = %params.name,
                "play refused: too many plays waiting on this NetStream");
            self.vod_not_found(r, stream_id, key.name());
            return true;
        };
        let waiting = Waiting::Play(PlayWait {
            r,
            stream_id,
            ticket,
            name: key.name().to_string(),
            start_ms: params.start.clamp(0.0, f64::from(u32::MAX)) as u32,
            len: Length::from_wire(Some(params.duration)),
            reset: params.reset,
        });
        // -2: whether the file is there is known once it is opened; if not, the play
        // goes live then.
        let live = (!wants_file).then(|| (key.clone(), params.clone()));
        self.vod_open(&path, waiting, live, peer);
        true
    }

    /// Runs `waiting` once the file `path` names is indexed: now if it is, when it is if
    /// it is being indexed, else once it is opened (through the ring, beneath the content
    /// root's directory) and indexed. A `live` play falls back to the live stream if the
    /// file cannot be opened (but not if its name leads out of the root).
    fn vod_open(
        &mut self,
        path: &ContentPath,
        waiting: Waiting,
        live: Option<(StreamKey, PlayParams)>,
        peer: String,
    ) {
        self.vod_open_with(path, waiting, live, false, peer);
    }

    /// A server stream's item, opened as a play's file is; `live`: a -2 item, which plays
    /// the live stream if there is no file.
    pub(super) fn vod_open_for_server(
        &mut self,
        path: &ContentPath,
        item: super::server_streams::ServerItem,
        live: bool,
    ) {
        self.vod_open_with(path, Waiting::Server(item), None, live, "script".into());
    }

    fn vod_open_with(
        &mut self,
        path: &ContentPath,
        waiting: Waiting,
        live: Option<(StreamKey, PlayParams)>,
        server_live: bool,
        peer: String,
    ) {
        let Some((real, dir)) = self
            .vod_root()
            .map(|(root, dir)| (root.join(path.relative()), dir))
        else {
            let reason = "the content root cannot be opened";
            self.vod_open_failed(waiting, live, server_live, &peer, reason);
            return;
        };
        let Err(waiting) = self.vod_join(&real, waiting) else {
            return;
        };
        let Some(relative) = path
            .relative()
            .to_str()
            .and_then(|p| std::ffi::CString::new(p).ok())
        else {
            self.vod_open_failed(waiting, live, server_live, &peer, "the name is not a path");
            return;
        };
        let opening = Opening {
            real,
            format: path.format(),
            waiting,
            live,
            server_live,
            peer,
        };
        self.vod.next_id = self.vod.next_id.wrapping_add(1);
        let id = self.vod.next_id;
        self.vod.opening.insert(id, opening);
        self.vod.opens.start(&mut self.io, &dir, relative, id);
    }

    /// The content root's directory (canonical path and descriptor), opened on first use
    /// and again when the configured root changes.
    fn vod_root(&mut self) -> Option<(PathBuf, Arc<OwnedFd>)> {
        let configured = self.config.vod.root.as_ref()?;
        if let Some((path, canonical, dir)) = &self.vod.root {
            if path == configured {
                return Some((canonical.clone(), Arc::clone(dir)));
            }
        }
        let opened = ContentRoot::new(configured).and_then(|root| {
            let dir = open_dir(root.root()).map_err(|source| RootError::Io {
                path: root.root().to_path_buf(),
                source,
            })?;
            Ok((root.root().to_path_buf(), Arc::new(dir)))
        });
        match opened {
            Ok((canonical, dir)) => {
                self.vod.root = Some((configured.clone(), canonical.clone(), Arc::clone(&dir)));
                Some((canonical, dir))
            }
            Err(e) => {
                warn!(worker = self.id, reason = %e, "the content root cannot be opened");
                None
            }
        }
    }

    /// An open through the ring ended.
    pub(super) fn on_vod_open(&mut self, token: Token, c: Completion) {
        let Some(done) = self.vod.opens.complete(token, c) else {
            return;
        };
        let Some(o) = self.vod.opening.remove(&done.owner) else {
            return;
        };
        let opened = done.result.map_err(|errno| match errno {
            libc::EXDEV | libc::ELOOP => RootError::Escapes {
                path: o.real.clone(),
            },
            errno => RootError::Io {
                path: o.real.clone(),
                source: std::io::Error::from_raw_os_error(errno),
            },
        });
        let opened = opened.and_then(|file| {
            let meta = file.metadata().map_err(|source| RootError::Io {
                path: o.real.clone(),
                source,
            })?;
            if meta.is_file() {
                Ok((file, meta))
            } else {
                Err(RootError::NotAFile {
                    path: o.real.clone(),
                })
            }
        });
        match opened {
            Ok((file, meta)) => {
                // Another open of the same name may have finished first.
                if let Err(waiting) = self.vod_join(&o.real, o.waiting) {
                    self.vod_index_opened(o.real, o.format, waiting, file, &meta);
                }
            }
            // No such file (a -2 play or item goes live).
            Err(e @ RootError::Io { .. }) => {
                let reason = e.to_string();
                self.vod_open_failed(o.waiting, o.live, o.server_live, &o.peer, &reason);
            }
            Err(e) => self.vod_open_failed(o.waiting, None, false, &o.peer, &e.to_string()),
        }
    }

    /// What waited for an open learns the file cannot be served (a `live` play goes live).
    fn vod_open_failed(
        &mut self,
        waiting: Waiting,
        live: Option<(StreamKey, PlayParams)>,
        server_live: bool,
        peer: &str,
        reason: &str,
    ) {
        let waiting = match (waiting, live) {
            (Waiting::Play(w), Some((key, params))) => {
                self.vod_play_outcome(PlayOutcome::Live(w, key, params));
                return;
            }
            (Waiting::Server(item), _) if server_live => {
                self.server_stream_missing(item);
                return;
            }
            (waiting, _) => waiting,
        };
        match &waiting {
            Waiting::Play(w) => warn!(worker = self.id, peer = %peer, name = %w.name,
                reason = %reason, "play refused: stream not found"),
            Waiting::Server(_) => warn!(worker = self.id, reason = %reason,
                "server stream: no such file under the content root"),
            Waiting::Length { .. } => {}
        }
        self.vod_indexed(waiting, Err(()));
    }

    /// Runs `waiting` once the file at `real` is indexed, if this worker has its entry:
    /// now if it is indexed, or when it is. Without a live entry `waiting` comes back (to
    /// wait for an open of the file).
    fn vod_join(&mut self, real: &std::path::Path, waiting: Waiting) -> Result<(), Waiting> {
        match self.vod.files.get_mut(real) {
            Some(FileEntry::Ready { file, index, .. }) => match index.upgrade() {
                Some(index) => {
                    let file = Arc::clone(file);
                    self.vod_indexed(waiting, Ok((file, index)));
                    Ok(())
                }
                None => {
                    self.vod_forget_unused();
                    Err(waiting)
                }
            },
            Some(FileEntry::Building { waiting: w, .. }) => {
                w.push(waiting);
                Ok(())
            }
            None => Err(waiting),
        }
    }

    /// What waited for an index gets it (or learns the file cannot be served).
    fn vod_indexed(&mut self, waiting: Waiting, indexed: Result<(Arc<File>, Arc<MediaIndex>), ()>) {
        match (waiting, indexed) {
            (Waiting::Play(w), Ok((file, index))) => {
                self.vod_play_outcome(PlayOutcome::Begin(w, file, index))
            }
            (Waiting::Play(w), Err(())) => self.vod_play_outcome(PlayOutcome::NotFound(w)),
            (Waiting::Server(w), indexed) => self.server_stream_indexed(w, indexed),
            (
                Waiting::Length {
                    r,
                    stream_id,
                    transaction,
                },
                indexed,
            ) => {
                let secs = indexed.map_or(0.0, |(_, i)| f64::from(i.duration_ms) / 1000.0);
                self.reply(
                    r,
                    stream_id,
                    &crate::app::status::result(
                        transaction,
                        crate::proto::amf0::Amf0Value::Null,
                        crate::proto::amf0::Amf0Value::Number(secs),
                    ),
                );
                // It may come after an index read, outside any handling of `r`'s input.
                self.flush_out(r);
                // An index built only to answer this is not kept.
                self.vod_forget_unused();
            }
        }
    }

    /// A play's outcome takes effect in its turn: after those of the NetStream's plays
    /// made before it.
    fn vod_play_outcome(&mut self, outcome: PlayOutcome) {
        let w = match &outcome {
            PlayOutcome::Begin(w, ..) | PlayOutcome::NotFound(w) | PlayOutcome::Live(w, ..) => w,
        };
        let (key, ticket) = ((w.r, w.stream_id), w.ticket);
        for outcome in self.vod.order.arrive(key, ticket, outcome) {
            match outcome {
                PlayOutcome::Begin(w, file, index) => self.vod_begin(w, file, index),
                PlayOutcome::NotFound(w) => self.vod_not_found(w.r, w.stream_id, &w.name),
                PlayOutcome::Live(w, key, params) => {
                    self.start_live_play(w.r, w.stream_id, key, params)
                }
            }
        }
    }

    /// `getStreamLength(name)`: a file's duration in seconds (its index built if need be),
    /// 0 for anything that is not a file under the content root.
    pub(super) fn vod_length(
        &mut self,
        r: ConnRef,
        stream_id: u32,
        transaction: f64,
        key: &StreamKey,
        name: &str,
    ) {
        let waiting = Waiting::Length {
            r,
            stream_id,
            transaction,
        };
        let peer = self
            .conns
            .get(r)
            .map(|c| c.peer.to_string())
            .unwrap_or_default();
        match ContentPath::resolve(key.app(), key.instance(), name) {
            Ok(path) if self.config.vod.root.is_some() => self.vod_open(&path, waiting, None, peer),
            _ => self.vod_indexed(waiting, Err(())),
        }
    }

    fn vod_not_found(&mut self, r: ConnRef, stream_id: u32, name: &str) {
        if let Some(c) = self.conns.get_mut(r) {
            c.client.nc.stream_idle(stream_id);
        }
        play_status::not_found(&mut port!(self), r, stream_id, name);
    }

    /// Starts building the index of `file`, open as `real`, unless another worker holds
    /// the index of this version of the file.
    fn vod_index_opened(
        &mut self,
        real: PathBuf,
        format: crate::media::vod::content_path::FileFormat,
        waiting: Waiting,
        file: File,
        meta: &std::fs::Metadata,
    ) {
        let (key, len) = (FileKey::of(meta), meta.len());
        let file = Arc::new(file);
        if let Some(index) = self.shared.indexes.get(&key) {
            info!(worker = self.id, file = %real.display(), "file index shared by another worker");
            self.vod_ready(real, &file, &index);
            self.vod_indexed(waiting, Ok((file, index)));
            return;
        }
        let indexer = Indexer::new(format, len);
        let Feed::Read { at, len: want } = indexer.start() else {
            return;
        };
        self.vod.next_id = self.vod.next_id.wrapping_add(1);
        let id = self.vod.next_id;
        self.vod.building.insert(id, real.clone());
        self.file_reads.start(
            &mut self.io,
            Arc::clone(&file),
            at,
            want.max(READ_AHEAD_BYTES),
            Owner::Vod(VodReader::Index(id)),
        );
        self.vod.files.insert(
            real,
            FileEntry::Building {
                file,
                key,
                indexer: Box::new(indexer),
                asked: (at, want),
                waiting: vec![waiting],
            },
        );
    }

    pub(super) fn on_vod_read(
        &mut self,
        reader: VodReader,
        at: u64,
        result: Result<Bytes, FileReadError>,
    ) {
        match reader {
            VodReader::Index(id) => self.vod_index_read(id, at, result),
            VodReader::Server(id) => self.server_stream_read(id, at, result),
            VodReader::Block(file) => self.vod_block_read(file, at, result),
            VodReader::Viewer(r, stream_id) => {
                let Some(play) = self.vod.plays.get_mut(&(r, stream_id)) else {
                    return;
                };
                play.reading = false;
                match result {
                    Ok(bytes) => {
                        if let Some(alone) = play.alone.as_mut().filter(|a| a.1 == at) {
                            alone.2 = bytes;
                        }
                    }
                    Err(e) => {
                        warn!(worker = self.id, error = %e, "file read failed; play stopped");
                        self.vod_end(r, stream_id);
                        return;
                    }
                }
                self.vod_pump(r, stream_id);
            }
        }
    }

    /// A shared block arrived: kept, and the plays waiting for it go on.
    fn vod_block_read(&mut self, file: FileId, at: u64, result: Result<Bytes, FileReadError>) {
        let waiting = self.vod.block_reads.remove(&(file, at)).unwrap_or_default();
        let failed = match result {
            Ok(bytes) => {
                self.vod.blocks.insert(file, at, bytes);
                None
            }
            Err(e) => Some(e),
        };
        for (r, stream_id) in waiting {
            let Some(play) = self.vod.plays.get_mut(&(r, stream_id)) else {
                continue;
            };
            play.reading = false;
            if let Some(e) = failed {
                warn!(worker = self.id, error = %e, "file read failed; play stopped");
                self.vod_end(r, stream_id);
            } else {
                self.vod_pump(r, stream_id);
            }
        }
    }

    fn vod_index_read(&mut self, id: u32, at: u64, result: Result<Bytes, FileReadError>) {
        let Some(path) = self.vod.building.get(&id).cloned() else {
            return;
        };
        let Some(FileEntry::Building {
            file,
            indexer,
            asked,
            ..
        }) = self.vod.files.get_mut(&path)
        else {
            return;
        };
        let fed = match result {
            Ok(bytes) => indexer.feed(at, &bytes).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let next = match fed {
            Ok(Feed::Read { at, len }) if (at, len) != *asked => {
                *asked = (at, len);
                let file = Arc::clone(file);
                self.file_reads.start(
                    &mut self.io,
                    file,
                    at,
                    len.max(READ_AHEAD_BYTES),
                    Owner::Vod(VodReader::Index(id)),
                );
                return;
            }
            Ok(Feed::Read { .. }) => Err("the file changed while it was indexed".to_string()),
            Ok(Feed::Done(index)) => Ok(Arc::new(*index)),
            Err(e) => Err(e),
        };
        self.vod.building.remove(&id);
        let Some(FileEntry::Building {
            file, key, waiting, ..
        }) = self.vod.files.remove(&path)
        else {
            return;
        };
        match next {
            Ok(index) => {
                info!(worker = self.id, file = %path.display(), samples = index.samples.len(),
                    duration_ms = index.duration_ms, "file indexed");
                self.shared.indexes.insert(key, &index);
                self.vod_ready(path, &file, &index);
                for w in waiting {
                    self.vod_indexed(w, Ok((Arc::clone(&file), Arc::clone(&index))));
                }
            }
            Err(e) => {
                warn!(worker = self.id, file = %path.display(), reason = %e,
                    "play refused: the file cannot be served");
                for w in waiting {
                    self.vod_indexed(w, Err(()));
                }
            }
        }
    }

    /// The file at `path` is indexed: an entry with its id for the shared caches.
    fn vod_ready(&mut self, path: PathBuf, file: &Arc<File>, index: &Arc<MediaIndex>) {
        self.vod.next_file += 1;
        self.vod.files.insert(
            path,
            FileEntry::Ready {
                file: Arc::clone(file),
                index: Arc::downgrade(index),
                id: self.vod.next_file,
            },
        );
    }

    /// A play's file is indexed: it starts (or joins the NetStream's playlist).
    fn vod_begin(&mut self, w: PlayWait, file: Arc<File>, index: Arc<MediaIndex>) {
        if let Some(c) = self.conns.get(w.r) {
            info!(worker = self.id, peer = %c.peer, stream = %w.name, start = w.start_ms,
                "file play");
        }
        let now = self.clock_ms(Instant::now());
        let item = Item {
            name: w.name,
            index: Arc::clone(&index),
            start_ms: w.start_ms,
            len: w.len,
        };
        let key = (w.r, w.stream_id);
        // A SetBufferLength that came before the index was ready (players send it right
        // after `play`) applies from the start.
        let buffer = self
            .conns
            .get(w.r)
            .and_then(|c| c.client.nc.buffer_length(w.stream_id));
        // Its id for the shared caches (the entry is there: it holds the index).
        let id = self
            .vod
            .files
            .values()
            .find_map(|f| match f {
                FileEntry::Ready { index: i, id, .. } if i.as_ptr() == Arc::as_ptr(&index) => {
                    Some(*id)
                }
                _ => None,
            })
            .unwrap_or_default();
        let pacing = self.vod_pacing();
        let play = self.vod.plays.entry(key).or_insert_with(|| {
            let mut play = FilePlay::new(w.r, w.stream_id);
            if let Some(ms) = buffer {
                play.set_buffer(ms);
            }
            play.set_pacing(pacing);
            Play {
                play,
                files: Vec::new(),
                alone: None,
                reading: false,
                wake_at: None,
            }
        });
        if w.reset {
            play.files.clear();
            play.alone = None;
        }
        play.files.push((index, file, id));
        let mut port = port!(self);
        play.play.play(item, w.reset, now, &mut port);
        self.vod_pump(w.r, w.stream_id);
    }

    /// Sends what is due for a NetStream playing a file, reading blocks as it goes, and
    /// arms its timer for the next tick with something due.
    pub(super) fn vod_pump(&mut self, r: ConnRef, stream_id: u32) {
        let now = self.clock_ms(Instant::now());
        let pacing = self.vod_pacing();
        let mut port = port!(self);
        let VodState {
            plays,
            blocks,
            block_reads,
            frames,
            ..
        } = &mut self.vod;
        let Some(play) = plays.get_mut(&(r, stream_id)) else {
            return;
        };
        if play.reading {
            return;
        }
        // Bounded by the samples of the file (each round sends one or returns).
        let ended = loop {
            match play.play.poll(now, &mut port) {
                Turn::Send(index, i) => {
                    if crate::media::port::Port::unsent(&port, r) > MAX_UNSENT_BYTES {
                        play.play.unsend(i);
                        let t = pacing.next_tick(now);
                        if play.wake_at != Some(t) {
                            play.wake_at = Some(t);
                            let at = self.started + Duration::from_millis(t);
                            self.timers
                                .arm_for(Owner::Conn(r), at, TimerKind::VodPace(stream_id));
                        }
                        return;
                    }
                    let Some(sample) = index.samples.get(i).copied() else {
                        continue;
                    };
                    let Some((file, id)) = play
                        .files
                        .iter()
                        .find(|(x, ..)| Arc::ptr_eq(x, &index))
                        .map(|(_, f, id)| (Arc::clone(f), *id))
                    else {
                        return;
                    };
                    if let Some(frame) = frames.get(id, i) {
                        crate::media::port::Port::frame(
                            &mut port,
                            r,
                            stream_id,
                            &frame,
                            Urgency::Now,
                        );
                        continue;
                    }
                    let bytes = match blocks.get(id, sample.offset, sample.size) {
                        Lookup::Found(bytes) => bytes,
                        Lookup::Missing(at) => {
                            // Read first, then send: step back so poll returns it again.
                            play.play.unsend(i);
                            play.reading = true;
                            let waiting = block_reads.entry((id, at)).or_default();
                            if waiting.is_empty() {
                                self.file_reads.start(
                                    &mut self.io,
                                    file,
                                    at,
                                    BLOCK_BYTES as usize,
                                    Owner::Vod(VodReader::Block(id)),
                                );
                            }
                            waiting.push((r, stream_id));
                            return;
                        }
                        Lookup::TooLarge => match play.alone.take() {
                            Some((of, at, bytes)) if of == id && at == sample.offset => {
                                match bytes.get(..sample.size as usize) {
                                    Some(_) => bytes.slice(..sample.size as usize),
                                    None => break Err("the file is shorter than its index"),
                                }
                            }
                            _ => {
                                play.play.unsend(i);
                                play.reading = true;
                                play.alone = Some((id, sample.offset, Bytes::new()));
                                self.file_reads.start(
                                    &mut self.io,
                                    file,
                                    sample.offset,
                                    sample.size as usize,
                                    Owner::Vod(VodReader::Viewer(r, stream_id)),
                                );
                                return;
                            }
                        },
                        Lookup::Short => break Err("the file is shorter than its index"),
                    };
                    let frame = play_status::sample_frame(&index, &sample, bytes);
                    frames.put(id, i, &frame);
                    crate::media::port::Port::frame(&mut port, r, stream_id, &frame, Urgency::Now);
                }
                Turn::WaitUntil(t) => {
                    if play.wake_at != Some(t) {
                        play.wake_at = Some(t);
                        let at = self.started + Duration::from_millis(t);
                        self.timers
                            .arm_for(Owner::Conn(r), at, TimerKind::VodPace(stream_id));
                    }
                    return;
                }
                Turn::Idle => break Ok(!play.play.is_playing()),
            }
        };
        match ended {
            Ok(false) => {}
            Ok(true) => self.vod_end(r, stream_id),
            Err(reason) => {
                warn!(worker = self.id, reason, "file play stopped");
                self.vod_end(r, stream_id);
            }
        }
    }

    /// How this worker paces its file plays: on the send tick, the lead growing.
    fn vod_pacing(&self) -> Pacing {
        Pacing {
            tick_ms: self.config.live.send_batch_ms,
            ramp: LEAD_RAMP,
        }
    }

    /// The NetStream's play ended or failed: it is idle again.
    fn vod_end(&mut self, r: ConnRef, stream_id: u32) {
        self.vod.plays.remove(&(r, stream_id));
        if let Some(c) = self.conns.get_mut(r) {
            c.client.nc.stream_idle(stream_id);
        }
        self.vod_forget_unused();
    }

    /// A play on `stream_id` stopped (closeStream, a new play, the client gone): true if it
    /// was a file play.
    pub(super) fn stop_vod(&mut self, r: ConnRef, stream_id: u32) -> bool {
        let mut was = self.vod.plays.remove(&(r, stream_id)).is_some();
        // Plays waiting for their files' opens are dropped (the opens' files close when
        // they complete), and so is what waited for its turn.
        let opening = self.vod.opening.len();
        self.vod
            .opening
            .retain(|_, o| !o.waiting.is_play_of(r, stream_id));
        was |= self.vod.opening.len() != opening;
        self.vod.order.forget((r, stream_id));
        for f in self.vod.files.values_mut() {
            if let FileEntry::Building { waiting, .. } = f {
                let before = waiting.len();
                waiting.retain(|w| !w.is_play_of(r, stream_id));
                was |= waiting.len() != before;
            }
        }
        if was {
            self.vod_forget_unused();
        }
        was
    }

    /// Whether `stream_id` plays a file (or waits for one's index).
    pub(super) fn vod_plays(&self, r: ConnRef, stream_id: u32) -> bool {
        self.vod.plays.contains_key(&(r, stream_id))
            || self
                .vod
                .opening
                .values()
                .any(|o| o.waiting.is_play_of(r, stream_id))
            || self.vod.files.values().any(|f| match f {
                FileEntry::Building { waiting, .. } => {
                    waiting.iter().any(|w| w.is_play_of(r, stream_id))
                }
                FileEntry::Ready { .. } => false,
            })
    }

    /// pause / unpause of a file play: true if `stream_id` plays a file.
    pub(super) fn vod_pause(&mut self, r: ConnRef, stream_id: u32, pause: bool) -> bool {
        let now = self.clock_ms(Instant::now());
        let mut port = port!(self);
        let Some(play) = self.vod.plays.get_mut(&(r, stream_id)) else {
            return false;
        };
        play.play.pause(pause, now, &mut port);
        play.wake_at = None;
        self.vod_pump(r, stream_id);
        true
    }

    /// `seek`: a file play moves to the key frame at or before `ms`; anything else (a live
    /// stream, an idle NetStream) cannot seek.
    pub(super) fn vod_seek(&mut self, r: ConnRef, stream_id: u32, ms: f64) {
        let now = self.clock_ms(Instant::now());
        let mut port = port!(self);
        let Some(play) = self.vod.plays.get_mut(&(r, stream_id)) else {
            play_status::seek_failed(&mut port, r, stream_id);
            return;
        };
        play.play
            .seek(ms.clamp(0.0, f64::from(u32::MAX)) as u32, now, &mut port);
        play.alone = None;
        play.wake_at = None;
        self.vod_pump(r, stream_id);
    }

    /// SetBufferLength: how far ahead of real time a file play may send.
    pub(super) fn vod_buffer(&mut self, r: ConnRef, stream_id: u32, ms: u32) {
        if let Some(play) = self.vod.plays.get_mut(&(r, stream_id)) {
            play.play.set_buffer(ms);
            play.wake_at = None;
            self.vod_pump(r, stream_id);
        }
    }

    /// Files being played, as streams for `stratactl streams` and /metrics: one per file
    /// name, with its viewers on this worker (no publisher; the manager adds the workers up).
    pub(super) fn vod_stream_infos(&self) -> Vec<control_protocol::StreamInfo> {
        let mut viewers: HashMap<(String, String, String), u64> = HashMap::new();
        for ((r, _), play) in &self.vod.plays {
            let (Some(c), Some(name)) = (self.conns.get(*r), play.play.current_name()) else {
                continue;
            };
            let key = (
                c.client.nc.app.clone(),
                c.client.nc.instance.clone(),
                name.to_string(),
            );
            *viewers.entry(key).or_default() += 1;
        }
        viewers
            .into_iter()
            .map(
                |((app, instance, name), viewers)| control_protocol::StreamInfo {
                    app,
                    instance,
                    name,
                    publisher: None,
                    publisher_client: None,
                    video_codec: None,
                    audio_codec: None,
                    bitrate_in: 0.0,
                    bitrate_out: 0.0,
                    viewers,
                    gop_frames: 0,
                    since: 0.0,
                    recording: None,
                    multicast: Vec::new(),
                },
            )
            .collect()
    }

    /// Indexes nobody plays any more are let go (a later play builds them again).
    pub(super) fn vod_forget_unused(&mut self) {
        let mut gone = Vec::new();
        self.vod.files.retain(|_, f| match f {
            FileEntry::Ready { index, id, .. } => {
                let used = index.strong_count() > 0;
                if !used {
                    gone.push(*id);
                }
                used
            }
            FileEntry::Building { .. } => true,
        });
        for id in gone {
            self.vod.blocks.forget(id);
            self.vod.frames.forget(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::engine::worker::testing::{shared, turn_until};
    use crate::media::vod::content_path::FileFormat;

    const FLV: &[u8] = include_bytes!("../../media/vod/testdata/avc_aac.flv");
    const MP4: &[u8] = include_bytes!("../../media/vod/testdata/avc_aac.mp4");

    /// A client that is not there: what it is told goes nowhere.
    const VIEWER: ConnRef = ConnRef {
        slot: 999,
        generation: 1,
    };

    /// What an open of the FLV file `path` completing does (without a content root).
    fn index_file(w: &mut Worker, path: &std::path::Path, waiting: Waiting) {
        let file = File::open(path).expect("open");
        let meta = file.metadata().expect("metadata");
        w.vod_index_opened(path.to_path_buf(), FileFormat::Flv, waiting, file, &meta);
    }

    fn play(stream_id: u32) -> Waiting {
        Waiting::Play(PlayWait {
            r: VIEWER,
            stream_id,
            ticket: 0,
            name: "clip".into(),
            start_ms: 0,
            len: Length::ToEnd,
            reset: true,
        })
    }

    #[test]
    fn a_viewer_that_does_not_read_holds_a_bounded_queue_then_gets_the_rest() {
        use std::os::fd::IntoRawFd;
        use std::os::unix::net::UnixStream;
        // A key frame and 95 more frames of 128 KiB, a millisecond apart: 12 MiB due at once.
        let mut flv = Vec::new();
        crate::proto::flv::writer::file_header(&mut flv);
        let mut body = vec![0u8; 128 * 1024];
        for ms in 0..96 {
            let frame_type = if ms == 0 { 0x17 } else { 0x27 };
            body[..5].copy_from_slice(&[frame_type, 1, 0, 0, 0]);
            crate::proto::flv::writer::tag(&mut flv, 9, ms, &body);
        }
        let path = std::env::temp_dir().join(format!("strata-vod-slow-{}.flv", std::process::id()));
        std::fs::write(&path, &flv).expect("write");
        let (mut w, _control) = crate::engine::worker::testing::worker();
        // The peer's end stays open and unread; the connection never gets past its
        // handshake, so the worker queues for it but sends nothing.
        let (ours, _theirs) = UnixStream::pair().expect("socketpair");
        let r = w.adopt(ours.into_raw_fd(), false);
        let waiting = Waiting::Play(PlayWait {
            r,
            stream_id: 1,
            ticket: 0,
            name: "slow".into(),
            start_ms: 0,
            len: Length::ToEnd,
            reset: true,
        });
        index_file(&mut w, &path, waiting);
        let unsent = |w: &mut Worker| crate::media::port::Port::unsent(&port!(w), r);
        // Nobody reads: the queue fills up to the bound, and stays there for a few ticks.
        turn_until(&mut w, |w| unsent(w) > MAX_UNSENT_BYTES - 256 * 1024);
        let mut turns = 0;
        turn_until(&mut w, |_| {
            turns += 1;
            turns > 30
        });
        let held = unsent(&mut w);
        assert!(held <= MAX_UNSENT_BYTES + 256 * 1024, "{held} bytes queued");
        assert!(!w.vod.plays.is_empty(), "held back, still playing");
        let position = w.vod.plays.values().next().and_then(|p| p.play.position());
        assert!(position.is_some_and(|ms| ms < 95), "{position:?}");
        // The client takes what was queued (as the transport would once it sends): the play
        // goes on from where it was held and completes.
        let mut got = 0;
        let mut batch = Vec::new();
        turn_until(&mut w, |w| {
            if let Some(c) = w.conns.get_mut(r) {
                for _ in 0..1_000 {
                    let n = c.queue.next_batch_bytes(&mut batch, 64, usize::MAX);
                    if n == 0 {
                        break;
                    }
                    c.queue.complete(n);
                    got += n;
                }
            }
            w.vod.plays.is_empty()
        });
        assert!(got > 12 << 20, "{got} bytes");
        let _ = std::fs::remove_file(&path);
    }

    /// A worker whose content root holds `vod/_definst_/clip.flv` and `clip.mp4`, and a
    /// link out of it as `out.flv`.
    fn worker_with_root(tag: &str) -> (Worker, PathBuf) {
        let base = std::env::temp_dir().join(format!("strata-vod-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let dir = base.join("root/vod/_definst_");
        std::fs::create_dir_all(&dir).expect("content dir");
        std::fs::write(dir.join("clip.flv"), FLV).expect("write");
        std::fs::write(dir.join("clip.mp4"), MP4).expect("write");
        std::fs::write(dir.join("other.flv"), FLV).expect("write");
        std::fs::write(base.join("secret.flv"), FLV).expect("write");
        std::os::unix::fs::symlink(base.join("secret.flv"), dir.join("out.flv")).expect("link");
        let (shared, mut receivers, _control) = shared(1);
        let mut config = Config::default();
        config.server.listen = Vec::new();
        config.vod.root = Some(base.join("root"));
        let w = Worker::new(0, shared, Arc::new(config), receivers.remove(0)).expect("io_uring");
        (w, base)
    }

    fn params(name: &str, start: f64, reset: bool) -> PlayParams {
        PlayParams {
            name: name.into(),
            start,
            duration: -1.0,
            reset,
        }
    }

    #[test]
    fn plays_open_off_the_thread_and_take_effect_in_the_order_made() {
        let (mut w, base) = worker_with_root("order");
        let key = |name: &str| StreamKey::new("vod", "_definst_", name);
        // A playlist: the FLV, the MP4, the FLV again. The FLV's second play finds its
        // file indexing (or indexed) and the MP4 indexes on its own: whichever is ready
        // first, the items join in the order played.
        for (name, reset) in [("clip", true), ("mp4:clip.mp4", false), ("clip", false)] {
            assert!(w.start_vod(VIEWER, 1, &key(name), &params(name, 0.0, reset)));
        }
        assert!(w.vod.plays.is_empty(), "nothing plays before its open");
        assert!(w.vod_plays(VIEWER, 1), "but the NetStream is taken");
        turn_until(&mut w, |w| {
            w.vod
                .plays
                .values()
                .next()
                .is_some_and(|p| p.files.len() == 3)
        });
        let play = w.vod.plays.values().next().expect("the play");
        let containers: Vec<_> = play.files.iter().map(|f| f.0.container).collect();
        assert_eq!(
            containers,
            [
                crate::media::vod::index::Container::Flv,
                crate::media::vod::index::Container::Iso,
                crate::media::vod::index::Container::Flv
            ]
        );
        assert!(w.vod.opening.is_empty());

        // -2 of a name with no file, and a link out of the root: no file play; the open
        // refuses the link (EXDEV) without reading what it points to.
        assert!(w.start_vod(VIEWER, 2, &key("none"), &params("none", -2.0, true)));
        assert!(w.start_vod(VIEWER, 3, &key("out"), &params("out", 0.0, true)));
        turn_until(&mut w, |w| w.vod.opening.is_empty());
        assert!(!w.vod_plays(VIEWER, 2) && !w.vod_plays(VIEWER, 3));
        assert_eq!(
            w.vod.files.len(),
            2,
            "only the two files in the root were opened"
        );
        // A stop while the open is in flight drops the play; the open's file closes.
        assert!(w.start_vod(VIEWER, 5, &key("other"), &params("other", 0.0, true)));
        assert!(w.vod_plays(VIEWER, 5));
        assert!(w.stop_vod(VIEWER, 5));
        assert!(!w.vod_plays(VIEWER, 5));
        turn_until(&mut w, |w| w.vod.opens_idle());
        assert!(
            w.vod.plays.len() == 1 && w.vod.files.len() == 2,
            "nothing began"
        );
        let _ = std::fs::remove_dir_all(&base);
    }

    fn played_index(w: &Worker) -> Arc<MediaIndex> {
        let play = w.vod.plays.values().next().expect("a play");
        Arc::clone(&play.files[0].0)
    }

    #[test]
    fn a_second_worker_plays_the_index_the_first_built() {
        let path =
            std::env::temp_dir().join(format!("strata-vod-shared-{}.flv", std::process::id()));
        std::fs::write(&path, FLV).expect("write");
        let (shared, mut receivers, _control) = shared(2);
        let worker = |id, rx| {
            let mut config = Config::default();
            config.server.listen = Vec::new();
            Worker::new(id, Arc::clone(&shared), Arc::new(config), rx).expect("io_uring")
        };
        let mut a = worker(0, receivers.remove(0));
        let mut b = worker(1, receivers.remove(0));

        index_file(&mut a, &path, play(1));
        assert!(a.vod.plays.is_empty(), "the index is read first");
        turn_until(&mut a, |a| !a.vod.plays.is_empty());
        // The second worker starts at once, on the same index, without reading the file.
        index_file(&mut b, &path, play(1));
        assert!(Arc::ptr_eq(&played_index(&a), &played_index(&b)));
        assert!(b.vod.building.is_empty());

        // Once nobody plays it, it is let go everywhere (the first worker's entry, which
        // outlived its play while the second played, at its next tick).
        let index = Arc::downgrade(&played_index(&a));
        a.stop_vod(VIEWER, 1);
        b.stop_vod(VIEWER, 1);
        assert!(index.upgrade().is_none());
        assert!(b.vod.files.is_empty());
        a.tick(Instant::now());
        assert!(a.vod.files.is_empty());
        let _ = std::fs::remove_file(&path);
    }
}
