//! The worker's recordings of the streams published on it: each a `media::Recorder` (the
//! FLV state machine) with its file, fed as a sink of its stream (`Port::record`), and
//! pumped once per loop turn: its writes and syncs go through the worker's ring (the
//! engine's `file` verb), one at a time, and their completions come back here by token.
//!
//! Opening a file (and, for `append`, reading its tail to recover a torn end) is a plain
//! system call, once per recording start; nothing per frame touches the disk from the loop.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::port::port;
use super::*;
use crate::app::net_stream::{self, RecordStatus};
use crate::app::record_path::record_path;
use crate::config::DEFAULT_RECORD_PATH;
use crate::engine::content_root::{ContentRoot, RootError};
use crate::engine::file::FileDone;
use crate::engine::slab::{Slab, SlabRef};
use crate::media::frame::Frame;
use crate::media::recorder::{FileOp, RecordError, Recorder, RecorderLimits, RecorderRef, Start};
use crate::media::vod::content_path::ContentPath;
use crate::media::FrameKind;
use crate::proto::flv::{self, recovery, writer};

struct Recording {
    key: StreamKey,
    path: PathBuf,
    /// Kept open while the recording has an operation in flight.
    file: File,
    recorder: Recorder,
    /// The publisher that asked for it (`record`, `append`) and its NetStream, told how it
    /// goes; None for a server-side recording.
    asked_by: Option<(ConnRef, u32)>,
    /// Server-side rotation: a new file after this many bytes or milliseconds (0: never).
    max_bytes: u64,
    max_ms: u64,
    /// The limit was reached: the next key frame starts the next file (the next audio
    /// frame, for a stream without video).
    rotate_at_key: bool,
    seen_video: bool,
}

/// A worker's recordings.
#[derive(Default)]
pub(crate) struct Recordings {
    slab: Slab<Recording>,
    /// Every recording, pumped each loop turn by index (no allocation per turn).
    active: Vec<SlabRef>,
    /// Recordings that could not take a frame during a fan-out; handled right after it.
    failed: Vec<SlabRef>,
    /// Recordings whose next file starts with this key frame.
    rotate: Vec<(SlabRef, MediaMessage)>,
}

/// How a recording is to start.
struct Plan {
    append: bool,
    asked_by: Option<(ConnRef, u32)>,
    max_bytes: u64,
    max_ms: u64,
    /// A key frame that starts the file (rotation): its time is the file's start.
    first: Option<MediaMessage>,
}

fn recorder_ref(r: SlabRef) -> RecorderRef {
    RecorderRef {
        slot: r.slot,
        generation: r.generation,
    }
}

impl Recordings {
    /// A frame of a recorded stream (from `Port::record`, inside the fan-out).
    pub(crate) fn offer(&mut self, r: RecorderRef, frame: &Frame) {
        let sr = SlabRef {
            slot: r.slot,
            generation: r.generation,
        };
        let Some(rec) = self.slab.get_mut(sr) else {
            return;
        };
        rec.seen_video |= frame.kind.is_video();
        let starts_file = match frame.kind {
            FrameKind::VideoKey => true,
            FrameKind::Audio => !rec.seen_video,
            _ => false,
        };
        if rec.rotate_at_key && starts_file {
            rec.rotate_at_key = false;
            self.rotate.push((sr, frame.message()));
            return;
        }
        let offered = rec
            .recorder
            .offer(frame.type_id, frame.timestamp, &frame.payload);
        if offered.is_err() && !self.failed.contains(&sr) {
            self.failed.push(sr);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.active.is_empty()
    }

    /// The file `key` is being recorded to, for the control socket.
    pub(crate) fn path_of(&self, key: &StreamKey) -> Option<String> {
        self.active
            .iter()
            .filter_map(|r| self.slab.get(*r))
            .find(|rec| {
                rec.key == *key && rec.recorder.failed().is_none() && !rec.recorder.is_finishing()
            })
            .map(|rec| rec.path.display().to_string())
    }
}

/// The tail an `append` reads first to find the last whole tag.
const FIRST_TAIL_WINDOW: u64 = 1024 * 1024;

/// Opens the file of a recording (placed below the content root, its directories made):
/// truncated for `record`; for `append`, its tail recovered (a torn last tag or zeros cut
/// off) so that writing goes on after its last whole tag.
fn open_recording(path: &Path, append: bool) -> io::Result<(File, Start)> {
    let mut options = OpenOptions::new();
    options
        .read(true)
        .write(true)
        .create(true)
        .truncate(!append)
        // The last part is never a symlink (out of the content root).
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    let file = options.open(path)?;
    let len = file.metadata()?.len();
    if !append || len == 0 {
        return Ok((file, Start::Fresh));
    }
    let mut head = vec![0u8; (flv::FIRST_TAG_AT + writer::METADATA_TAG_LEN).min(len as usize)];
    file.read_exact_at(&mut head, 0)?;
    // Most torn ends are a fraction of a tag: a small window first, the whole bound (two of
    // the largest tags) only if that finds no boundary.
    let mut found = Err(recovery::RecoveryError::NoBoundary);
    for window in [FIRST_TAIL_WINDOW, recovery::TAIL_WINDOW] {
        let tail_len = len.min(window);
        let mut tail = vec![0u8; tail_len as usize];
        file.read_exact_at(&mut tail, len - tail_len)?;
        found = recovery::recover(&head, &tail, len);
        if found.is_ok() || tail_len == len {
            break;
        }
    }
    let found = found.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    if found.end < len {
        file.set_len(found.end)?;
    }
    let has_metadata = head
        .get(flv::FIRST_TAG_AT..)
        .is_some_and(writer::is_metadata_tag);
    Ok((
        file,
        Start::Append {
            end: found.end,
            last_timestamp: found.last_timestamp,
            has_metadata,
        },
    ))
}

impl Worker {
    /// A publish started: it is recorded if the publisher asked (`record`, `append`) or
    /// its application records everything (`record = "all"`).
    pub(super) fn start_recording(
        &mut self,
        r: ConnRef,
        stream_id: u32,
        key: &StreamKey,
        mode: PublishMode,
    ) {
        let Some(c) = self.conns.get(r) else { return };
        let policy = c
            .client
            .nc
            .policy
            .as_ref()
            .map(|p| p.record.clone())
            .unwrap_or_default();
        let asked = mode != PublishMode::Live;
        if !asked && !policy.all {
            return;
        }
        let (peer, app, instance) = (
            c.peer,
            c.client.nc.app.clone(),
            c.client.nc.instance.clone(),
        );
        // What a publisher asks for goes where VOD plays it by the same name; server-side
        // recordings follow the application's pattern and rotate.
        let (pattern, max_bytes, max_ms) = if asked {
            (DEFAULT_RECORD_PATH.to_string(), 0, 0)
        } else {
            (
                policy.path,
                policy.max_bytes,
                policy.max_seconds.saturating_mul(1000),
            )
        };
        let asked_by = asked.then_some((r, stream_id));
        let root = self.config.vod.root.clone();
        let path = match record_path(
            root.as_deref(),
            &app,
            &instance,
            key.name(),
            &pattern,
            unix_now() as u64,
        ) {
            Ok(p) => p,
            Err(e) => {
                warn!(%peer, %app, stream = key.name(), reason = %e, "recording refused");
                if asked {
                    let status = RecordStatus::NoAccess(e.to_string());
                    net_stream::record_status(&mut port!(self), r, stream_id, key, status);
                }
                return;
            }
        };
        let append = mode == PublishMode::Append;
        let plan = Plan {
            append,
            asked_by,
            max_bytes,
            max_ms,
            first: None,
        };
        self.open_and_record(key, path, plan);
    }

    /// A script's `Stream.record` of its server-side stream `key` (live on this worker):
    /// recorded where VOD plays it by name (`append` goes on after the file's end). The
    /// file's path, or why it is not recorded.
    pub(super) fn record_server_stream(
        &mut self,
        key: &StreamKey,
        append: bool,
    ) -> Result<PathBuf, String> {
        if let Some(path) = self.recordings.path_of(key) {
            return Ok(PathBuf::from(path));
        }
        let root = self.config.vod.root.clone();
        let content = record_path(
            root.as_deref(),
            key.app(),
            key.instance(),
            key.name(),
            DEFAULT_RECORD_PATH,
            unix_now() as u64,
        )
        .map_err(|e| e.to_string())?;
        let plan = Plan {
            append,
            asked_by: None,
            max_bytes: 0,
            max_ms: 0,
            first: None,
        };
        let relative = content.relative().to_path_buf();
        self.open_and_record(key, content, plan);
        match self.recordings.path_of(key) {
            Some(path) => Ok(PathBuf::from(path)),
            None => Err(format!("{} could not be opened", relative.display())),
        }
    }

    /// Places the file below the content root, opens it and joins the recording to its
    /// stream (headers first).
    fn open_and_record(&mut self, key: &StreamKey, content: ContentPath, plan: Plan) {
        let Plan {
            append,
            asked_by,
            max_bytes,
            max_ms,
            first,
        } = plan;
        // `record_path` refused a recording without a root.
        let root = self.config.vod.root.clone().unwrap_or_default();
        let path = match ContentRoot::new(&root).and_then(|root| root.place_file(&content)) {
            Ok(path) => Ok(path),
            Err(RootError::Io { source, .. }) => Err(source),
            Err(e) => {
                // A link out of the root (or a directory in the file's place): refused as a
                // bad name is.
                warn!(worker = self.id, stream = key.name(), reason = %e, "recording refused");
                if let Some((r, stream_id)) = asked_by {
                    let status = RecordStatus::NoAccess(e.to_string());
                    net_stream::record_status(&mut port!(self), r, stream_id, key, status);
                }
                return;
            }
        };
        let opened = path.and_then(|path| open_recording(&path, append).map(|o| (path, o)));
        let (path, (file, start)) = match opened {
            Ok(opened) => opened,
            Err(e) => {
                let path = root.join(content.relative());
                warn!(worker = self.id, stream = key.name(), path = %path.display(),
                    errno = e.raw_os_error().unwrap_or(0), error = %e, "recording could not start");
                if let Some((r, stream_id)) = asked_by {
                    let status = RecordStatus::Failed(e.to_string());
                    net_stream::record_status(&mut port!(self), r, stream_id, key, status);
                }
                return;
            }
        };
        info!(worker = self.id, stream = key.name(), path = %path.display(), append,
            "recording started");
        WorkerStats::add(&self.stats().recordings_started, 1);
        let mut recorder = Recorder::new(
            start,
            RecorderLimits::default(),
            self.clock_ms(Instant::now()),
        );
        if let Some(m) = &first {
            recorder.start_at(m.timestamp);
        }
        let sr = self.recordings.slab.insert(Recording {
            key: key.clone(),
            path,
            file,
            recorder,
            asked_by,
            max_bytes,
            max_ms,
            rotate_at_key: false,
            seen_video: false,
        });
        self.recordings.active.push(sr);
        let rref = recorder_ref(sr);
        let headers = self
            .streams
            .get_mut(key)
            .map(|s| s.add_recorder(rref))
            .unwrap_or_default();
        for f in &headers {
            self.recordings.offer(rref, f);
        }
        if let Some(m) = first {
            self.recordings.offer(rref, &Frame::new(m));
        }
        if let Some((r, stream_id)) = asked_by {
            net_stream::record_status(&mut port!(self), r, stream_id, key, RecordStatus::Started);
        }
    }

    /// The stream's publisher stopped: its recordings write what they hold, complete their
    /// metadata and close; a publisher that asked is told Record.Stop.
    pub(super) fn finish_recordings(&mut self, key: &StreamKey) {
        for i in 0..self.recordings.active.len() {
            let sr = self.recordings.active[i];
            let Some(rec) = self.recordings.slab.get_mut(sr) else {
                continue;
            };
            if rec.key != *key || rec.recorder.failed().is_some() {
                continue;
            }
            rec.recorder.finish();
            let asked_by = rec.asked_by.take();
            if let Some(s) = self.streams.get_mut(key) {
                s.remove_recorder(recorder_ref(sr));
            }
            if let Some((r, stream_id)) = asked_by {
                net_stream::record_status(
                    &mut port!(self),
                    r,
                    stream_id,
                    key,
                    RecordStatus::Stopped,
                );
            }
        }
    }

    /// What fan-outs left: failed recordings are told and let go, rotations start their
    /// next file. Two empty lists in the common case.
    pub(super) fn settle_recordings(&mut self) {
        if !self.recordings.failed.is_empty() {
            for sr in std::mem::take(&mut self.recordings.failed) {
                self.recording_failed(sr);
            }
        }
        if !self.recordings.rotate.is_empty() {
            for (sr, key_frame) in std::mem::take(&mut self.recordings.rotate) {
                self.rotate_recording(sr, key_frame);
            }
        }
    }

    fn recording_failed(&mut self, sr: SlabRef) {
        let Some(rec) = self.recordings.slab.get_mut(sr) else {
            return;
        };
        let Some(error) = rec.recorder.failed() else {
            return;
        };
        let errno = match error {
            RecordError::Io(e) => e,
            RecordError::TooSlow => 0,
        };
        warn!(worker = self.id, stream = rec.key.name(), path = %rec.path.display(), errno,
            error = %error, "recording failed; the stream goes on live");
        let key = rec.key.clone();
        let asked_by = rec.asked_by.take();
        WorkerStats::add(&self.shared.stats[self.id].recordings_failed, 1);
        if let Some(s) = self.streams.get_mut(&key) {
            s.remove_recorder(recorder_ref(sr));
        }
        if let Some((r, stream_id)) = asked_by {
            let status = RecordStatus::Failed(error.to_string());
            net_stream::record_status(&mut port!(self), r, stream_id, &key, status);
        }
    }

    /// A server-side recording reached its size or duration: this file ends and the next
    /// starts with the key frame (after the stream's metadata and headers).
    fn rotate_recording(&mut self, sr: SlabRef, key_frame: MediaMessage) {
        let Some(rec) = self.recordings.slab.get_mut(sr) else {
            return;
        };
        rec.recorder.finish();
        let (key, max_bytes, max_ms) = (rec.key.clone(), rec.max_bytes, rec.max_ms);
        if let Some(s) = self.streams.get_mut(&key) {
            s.remove_recorder(recorder_ref(sr));
        }
        let Some(pattern) = self.publisher_policy(&key).map(|p| p.path) else {
            return;
        };
        let (app, instance) = (key.app(), key.instance());
        let root = self.config.vod.root.clone();
        match record_path(
            root.as_deref(),
            app,
            instance,
            key.name(),
            &pattern,
            unix_now() as u64,
        ) {
            Ok(path) => {
                let plan = Plan {
                    append: false,
                    asked_by: None,
                    max_bytes,
                    max_ms,
                    first: Some(key_frame),
                };
                self.open_and_record(&key, path, plan)
            }
            Err(e) => warn!(stream = key.name(), reason = %e, "recording rotation refused"),
        }
    }

    /// The recording policy of the application `key`'s local publisher is connected to.
    fn publisher_policy(&self, key: &StreamKey) -> Option<crate::config::RecordPolicy> {
        let Source::Local { publisher, .. } = self.streams.get(key)?.source else {
            return None;
        };
        let c = self.conns.get(publisher)?;
        c.client.nc.policy.as_ref().map(|p| p.record.clone())
    }

    /// One turn for every recording: the next write or sync if one is due; recordings that
    /// are done (or failed with nothing in flight) are closed and let go.
    pub(super) fn pump_recordings(&mut self) {
        if self.recordings.active.is_empty() {
            return;
        }
        let now = self.clock_ms(Instant::now());
        let mut i = 0;
        while i < self.recordings.active.len() {
            let sr = self.recordings.active[i];
            if self.pump_recording(sr, now) {
                i += 1;
            } else {
                self.recordings.active.swap_remove(i);
            }
        }
    }

    /// False once the recording is gone.
    fn pump_recording(&mut self, sr: SlabRef, now: u64) -> bool {
        let Some(rec) = self.recordings.slab.get_mut(sr) else {
            return false;
        };
        let over = (rec.max_bytes > 0 && rec.recorder.size() >= rec.max_bytes)
            || (rec.max_ms > 0 && u64::from(rec.recorder.duration_ms()) >= rec.max_ms);
        if over && rec.recorder.failed().is_none() && !rec.recorder.is_finishing() {
            rec.rotate_at_key = true;
        }
        if let Some(op) = rec.recorder.poll(now) {
            let fd = rec.file.as_raw_fd();
            self.submit_file_op(sr, fd, op);
            return true;
        }
        let finished = rec.recorder.is_done();
        if finished || (rec.recorder.failed().is_some() && rec.recorder.is_idle()) {
            if let Some(rec) = self.recordings.slab.remove(sr) {
                if finished {
                    info!(worker = self.id, stream = rec.key.name(), path = %rec.path.display(),
                        bytes = rec.recorder.size(), duration_ms = rec.recorder.duration_ms(),
                        "recording finished");
                }
                if let Some(s) = self.streams.get_mut(&rec.key) {
                    s.remove_recorder(recorder_ref(sr));
                }
            }
            return false;
        }
        true
    }

    fn submit_file_op(&mut self, sr: SlabRef, fd: RawFd, op: FileOp) {
        let owner = Owner::Recording(sr);
        match op {
            FileOp::Write { offset, bytes } => {
                self.files.write(&mut self.io, fd, offset, bytes, owner)
            }
            FileOp::Sync => self.files.sync(&mut self.io, fd, owner),
        }
    }

    /// When the next recording needs the loop without a completion to wake it.
    pub(super) fn recordings_wait(&self) -> Option<Duration> {
        let now = self.clock_ms(Instant::now());
        self.recordings
            .active
            .iter()
            .filter_map(|r| self.recordings.slab.get(*r)?.recorder.next_due())
            .min()
            .map(|due| Duration::from_millis(due.saturating_sub(now)))
    }

    /// A file operation completed: to its recording, which goes on at once.
    pub(super) fn on_file(&mut self, token: Token, c: Completion) {
        let Some(FileDone { owner, result }) = self.files.complete(token, c) else {
            return;
        };
        let Owner::Recording(sr) = owner else {
            debug_assert!(false, "a file operation for {owner:?}");
            return;
        };
        let Some(rec) = self.recordings.slab.get_mut(sr) else {
            return;
        };
        if rec.recorder.completed(result).is_err() {
            self.recording_failed(sr);
        } else if let Some(op) = rec.recorder.retry() {
            let fd = rec.file.as_raw_fd();
            self.submit_file_op(sr, fd, op);
            return;
        }
        let now = self.clock_ms(Instant::now());
        if !self.pump_recording(sr, now) {
            self.recordings.active.retain(|r| *r != sr);
        }
    }
}
