//! One recording's state machine, sans-IO: frames of a live stream in, FLV bytes to write
//! at file offsets and sync requests out, completions and the time (milliseconds, passed
//! in) back. The engine carries out one operation at a time through the worker's
//! io_uring, so writes land in order and a sync covers everything written before it.
//!
//! Crash safety: each write holds whole tags only and the file is only ever extended by
//! them, so what is on disk after a `kill -9` is a valid FLV; `fdatasync` at least every
//! `sync_ms` bounds what a power cut loses. A clean end rewrites the metadata tag with the
//! duration and file size.
//!
//! Memory is bounded: tags not yet written (buffered or in flight) above `max_buffer`
//! mean the disk is slower than the stream, and the recording fails rather than grow.

use bytes::Bytes;

use crate::proto::flv::{self, tag_type, writer};
use crate::proto::rtmp::msg_type;

/// What an appended recording's time starts after the file's last tag: one frame at
/// 10 fps, more than one at any higher rate.
const APPEND_GAP_MS: u32 = 100;

/// A recording on a worker, as a sink of its stream names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecorderRef {
    pub slot: u32,
    pub generation: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecorderLimits {
    /// Bytes buffered and in flight before the recording fails as too slow.
    pub(crate) max_buffer: usize,
    /// A write starts once this much is buffered...
    pub(crate) write_bytes: usize,
    /// ...or the oldest buffered tag is this old.
    pub(crate) write_ms: u64,
    /// Written data is synced at least this often (a power cut loses at most about this).
    pub(crate) sync_ms: u64,
}

impl Default for RecorderLimits {
    fn default() -> Self {
        RecorderLimits {
            max_buffer: 32 * 1024 * 1024,
            write_bytes: 256 * 1024,
            write_ms: 200,
            sync_ms: 500,
        }
    }
}

/// Where a recording starts: a new file, or the recovered end of an existing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    Fresh,
    Append {
        end: u64,
        last_timestamp: u32,
        /// The file starts with a recorder's metadata tag, completed at a clean end.
        has_metadata: bool,
    },
}

/// What the engine does next for this recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FileOp {
    Write { offset: u64, bytes: Bytes },
    Sync,
}

/// Why a recording stopped short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordError {
    /// A write or sync failed with this errno (ENOSPC: disk full).
    Io(i32),
    /// More than `max_buffer` waited for the disk.
    TooSlow,
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordError::Io(errno) => write!(
                f,
                "{} (errno {errno})",
                std::io::Error::from_raw_os_error(*errno)
            ),
            RecordError::TooSlow => write!(f, "the disk is slower than the stream"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Recording,
    /// Writing what is left, then the metadata, then a last sync.
    Finishing,
    Done,
    Failed(RecordError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum InFlight {
    Write { offset: u64, bytes: Bytes },
    Sync,
}

pub(crate) struct Recorder {
    limits: RecorderLimits,
    state: State,
    /// Whole tags not yet handed to a write.
    buf: Vec<u8>,
    /// When the oldest buffered tag was first seen by `poll`.
    buf_since: Option<u64>,
    in_flight: Option<InFlight>,
    /// The file's length once what is in flight is written (the next write's offset).
    end: u64,
    /// Something was written since the last sync.
    unsynced: bool,
    last_sync: u64,
    /// The publisher's timestamp that the recording's time counts from (its first audio or
    /// video), and where this recording's time starts in the file.
    base: Option<u32>,
    offset_ts: u32,
    /// The latest timestamp written.
    last_ts: u32,
    /// Where the metadata tag is (0: none to complete), and whether it was rewritten.
    metadata_at: u64,
    metadata_done: bool,
}

impl Recorder {
    pub(crate) fn new(start: Start, limits: RecorderLimits, now_ms: u64) -> Self {
        let mut r = Recorder {
            limits,
            state: State::Recording,
            buf: Vec::new(),
            buf_since: None,
            in_flight: None,
            end: 0,
            unsynced: false,
            last_sync: now_ms,
            base: None,
            offset_ts: 0,
            last_ts: 0,
            metadata_at: 0,
            metadata_done: false,
        };
        match start {
            Start::Fresh => {
                writer::file_header(&mut r.buf);
                r.metadata_at = flv::FIRST_TAG_AT as u64;
                r.buf.extend_from_slice(&writer::metadata_tag(0.0, 0.0));
            }
            Start::Append {
                end,
                last_timestamp,
                has_metadata,
            } => {
                r.end = end;
                // Continue after the last tag, so time never goes back in the file, with a
                // gap of a frame or more so that the first new frame never shares a frame
                // slot with the last old one (players at a constant frame rate would see
                // two frames at one time).
                r.offset_ts = last_timestamp.saturating_add(APPEND_GAP_MS);
                r.last_ts = last_timestamp;
                if has_metadata {
                    r.metadata_at = flv::FIRST_TAG_AT as u64;
                }
            }
        }
        r
    }

    /// The recording's time starts at this publisher timestamp rather than at the first
    /// audio or video offered: a file after rotation starts at its key frame, and the
    /// headers repeated before it (older timestamps) go at its start.
    pub(crate) fn start_at(&mut self, timestamp: u32) {
        self.base = Some(timestamp);
    }

    /// A frame of the stream, as a tag at the end of the buffer. Err if the recording
    /// cannot take it (it failed now or before, or has ended).
    pub(crate) fn offer(
        &mut self,
        type_id: u8,
        timestamp: u32,
        payload: &[u8],
    ) -> Result<(), RecordError> {
        match self.state {
            State::Recording => {}
            State::Failed(e) => return Err(e),
            State::Finishing | State::Done => return Ok(()),
        }
        let tag_type = match type_id {
            msg_type::AUDIO => tag_type::AUDIO,
            msg_type::VIDEO => tag_type::VIDEO,
            msg_type::DATA_AMF0 => tag_type::SCRIPT,
            // AMF3 data and aggregates have no FLV tag of their own.
            _ => return Ok(()),
        };
        let ts = if tag_type == tag_type::SCRIPT {
            // Metadata is timeless: it goes at the current time.
            self.last_ts
        } else {
            let base = *self.base.get_or_insert(timestamp);
            // A timestamp before the first one (a publisher's reordering) counts as the
            // first: time in the file never goes back.
            self.offset_ts
                .saturating_add(timestamp.saturating_sub(base))
                .max(self.last_ts)
        };
        let rewritten;
        let body = if tag_type == tag_type::SCRIPT {
            rewritten = writer::publisher_metadata(payload);
            rewritten.as_deref().unwrap_or(payload)
        } else {
            payload
        };
        if !writer::tag(&mut self.buf, tag_type, ts, body) {
            return Ok(());
        }
        self.last_ts = ts;
        if self.buffered() > self.limits.max_buffer {
            return Err(self.fail(RecordError::TooSlow));
        }
        Ok(())
    }

    /// Bytes waiting for the disk: buffered and in flight.
    pub(crate) fn buffered(&self) -> usize {
        let in_flight = match &self.in_flight {
            Some(InFlight::Write { bytes, .. }) => bytes.len(),
            _ => 0,
        };
        self.buf.len() + in_flight
    }

    fn fail(&mut self, e: RecordError) -> RecordError {
        self.state = State::Failed(e);
        self.buf = Vec::new();
        e
    }

    /// The stream ended: what is buffered is written, then the metadata completed.
    pub(crate) fn finish(&mut self) {
        if self.state == State::Recording {
            self.state = State::Finishing;
        }
    }

    /// The next operation, if one is due now (none while one is in flight).
    pub(crate) fn poll(&mut self, now_ms: u64) -> Option<FileOp> {
        if self.in_flight.is_some() || matches!(self.state, State::Failed(_) | State::Done) {
            return None;
        }
        let finishing = self.state == State::Finishing;
        if !self.buf.is_empty() {
            let since = *self.buf_since.get_or_insert(now_ms);
            if finishing
                || self.buf.len() >= self.limits.write_bytes
                || now_ms.saturating_sub(since) >= self.limits.write_ms
            {
                self.buf_since = None;
                let bytes = Bytes::from(std::mem::take(&mut self.buf));
                let offset = self.end;
                self.end += bytes.len() as u64;
                return Some(self.start(InFlight::Write { offset, bytes }));
            }
        }
        if finishing && self.buf.is_empty() && !self.metadata_done && self.metadata_at > 0 {
            self.metadata_done = true;
            let duration = f64::from(self.last_ts) / 1000.0;
            let bytes = Bytes::from(writer::metadata_tag(duration, self.end as f64));
            return Some(self.start(InFlight::Write {
                offset: self.metadata_at,
                bytes,
            }));
        }
        let due = finishing || now_ms.saturating_sub(self.last_sync) >= self.limits.sync_ms;
        if self.unsynced && due {
            self.last_sync = now_ms;
            return Some(self.start(InFlight::Sync));
        }
        if finishing && self.buf.is_empty() {
            self.state = State::Done;
        }
        None
    }

    fn start(&mut self, op: InFlight) -> FileOp {
        let out = match &op {
            InFlight::Write { offset, bytes } => FileOp::Write {
                offset: *offset,
                bytes: bytes.clone(),
            },
            InFlight::Sync => FileOp::Sync,
        };
        self.in_flight = Some(op);
        out
    }

    /// The operation in flight ended: `Ok(n)` bytes written (a sync: 0), or an errno.
    /// Err when the recording failed on it.
    pub(crate) fn completed(&mut self, result: Result<usize, i32>) -> Result<(), RecordError> {
        let Some(op) = self.in_flight.take() else {
            return Ok(());
        };
        let n = match result {
            Err(errno) => return Err(self.fail(RecordError::Io(errno))),
            Ok(n) => n,
        };
        match op {
            InFlight::Write { offset, bytes } if n < bytes.len() => {
                if n == 0 {
                    // No progress and no error: treat as the disk refusing (as write(2)
                    // reporting ENOSPC on the retry would).
                    return Err(self.fail(RecordError::Io(libc::ENOSPC)));
                }
                // A short write: the rest goes next, before anything else.
                self.in_flight = Some(InFlight::Write {
                    offset: offset + n as u64,
                    bytes: bytes.slice(n..),
                });
            }
            InFlight::Write { .. } => self.unsynced = true,
            InFlight::Sync => self.unsynced = false,
        }
        Ok(())
    }

    /// A short write's remainder, to submit again.
    pub(crate) fn retry(&self) -> Option<FileOp> {
        match &self.in_flight {
            Some(InFlight::Write { offset, bytes }) => Some(FileOp::Write {
                offset: *offset,
                bytes: bytes.clone(),
            }),
            _ => None,
        }
    }

    /// When `poll` next has something to do, if nothing is in flight.
    pub(crate) fn next_due(&self) -> Option<u64> {
        if self.in_flight.is_some() || self.state != State::Recording {
            return None;
        }
        // Tags that `poll` has not seen yet are due at once: it starts their clock.
        let write = match self.buf_since {
            Some(since) => Some(since + self.limits.write_ms),
            None if !self.buf.is_empty() => Some(0),
            None => None,
        };
        let sync = self.unsynced.then(|| self.last_sync + self.limits.sync_ms);
        match (write, sync) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// It ended and is writing its last bytes, or done.
    pub(crate) fn is_finishing(&self) -> bool {
        matches!(self.state, State::Finishing | State::Done)
    }

    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    pub(crate) fn failed(&self) -> Option<RecordError> {
        match self.state {
            State::Failed(e) => Some(e),
            _ => None,
        }
    }

    pub(crate) fn is_idle(&self) -> bool {
        self.in_flight.is_none()
    }

    /// The file's length so far (written or about to be), and the recorded duration in
    /// milliseconds: what rotation by size or duration looks at.
    pub(crate) fn size(&self) -> u64 {
        self.end + self.buf.len() as u64
    }

    pub(crate) fn duration_ms(&self) -> u32 {
        self.last_ts.saturating_sub(self.offset_ts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::flv::recovery;

    /// An in-memory disk that carries out the recorder's operations: the file's bytes, and
    /// what was synced (what a power cut would leave).
    #[derive(Default)]
    struct Disk {
        file: Vec<u8>,
        synced: Vec<u8>,
        writes: usize,
    }

    impl Disk {
        fn apply(&mut self, op: &FileOp) {
            match op {
                FileOp::Write { offset, bytes } => {
                    let at = *offset as usize;
                    if self.file.len() < at + bytes.len() {
                        self.file.resize(at + bytes.len(), 0);
                    }
                    self.file[at..at + bytes.len()].copy_from_slice(bytes);
                    self.writes += 1;
                }
                FileOp::Sync => self.synced = self.file.clone(),
            }
        }

        /// Runs every operation due at `now` to completion.
        fn run(&mut self, r: &mut Recorder, now: u64) {
            for _ in 0..100 {
                let Some(op) = r.poll(now) else { return };
                self.apply(&op);
                let n = match &op {
                    FileOp::Write { bytes, .. } => bytes.len(),
                    FileOp::Sync => 0,
                };
                r.completed(Ok(n)).expect("completes");
            }
        }
    }

    const KEY: &[u8] = &[0x17, 1, 0, 0, 0, 0xAA, 0xBB];
    const AUDIO: &[u8] = &[0xAF, 1, 0x21, 0x10];

    fn last_ts(file: &[u8]) -> Option<u32> {
        recovery::recover(file, file, file.len() as u64)
            .ok()
            .map(|r| r.last_timestamp)
    }

    fn metadata_numbers(file: &[u8]) -> (f64, f64) {
        use crate::proto::amf0::{self, Amf0Value};
        let at = flv::FIRST_TAG_AT + flv::TAG_HEADER_LEN;
        let v = amf0::decode_all(&file[at..at + writer::METADATA_BODY_LEN]).expect("metadata");
        let n = |k| v[1].get(k).and_then(Amf0Value::as_f64).expect("number");
        (n("duration"), n("filesize"))
    }

    #[test]
    fn a_clean_recording_is_whole_tags_with_its_duration_and_size() {
        let mut r = Recorder::new(Start::Fresh, RecorderLimits::default(), 0);
        let mut disk = Disk::default();
        for i in 0..100u32 {
            // Publisher time starts at 5000: the file's starts at 0.
            r.offer(msg_type::VIDEO, 5000 + i * 40, KEY)
                .expect("offered");
            r.offer(msg_type::AUDIO, 5000 + i * 40, AUDIO)
                .expect("offered");
            disk.run(&mut r, u64::from(i) * 40);
            assert!(
                i < 5 || last_ts(&disk.file).is_some(),
                "whole tags at every moment"
            );
        }
        disk.run(&mut r, 99 * 40 + 200);
        assert_eq!(
            last_ts(&disk.file),
            Some(99 * 40),
            "all written after write_ms"
        );
        r.finish();
        disk.run(&mut r, 4000);
        assert!(r.is_done());
        assert!(disk.synced == disk.file, "synced at the end");
        assert_eq!(metadata_numbers(&disk.file), (3.96, disk.file.len() as f64));
        assert!(disk.writes < 40, "writes are batched: {}", disk.writes);
    }

    #[test]
    fn writes_wait_for_size_or_age_and_syncs_come_every_sync_ms() {
        let limits = RecorderLimits {
            write_bytes: 1 << 20,
            ..RecorderLimits::default()
        };
        let mut r = Recorder::new(Start::Fresh, limits, 0);
        let mut disk = Disk::default();
        r.offer(msg_type::VIDEO, 0, KEY).expect("offered");
        assert_eq!(r.next_due(), Some(0), "new tags start their clock at once");
        disk.run(&mut r, 0);
        assert!(disk.file.is_empty(), "a small buffer waits");
        assert_eq!(r.next_due(), Some(limits.write_ms));
        disk.run(&mut r, limits.write_ms);
        assert!(!disk.file.is_empty(), "written once old enough");
        assert!(disk.synced.is_empty());
        assert_eq!(r.next_due(), Some(limits.sync_ms));
        disk.run(&mut r, limits.sync_ms);
        assert!(disk.synced == disk.file, "synced within sync_ms");
        // What was synced always reads as whole tags (what a power cut leaves).
        for t in 1..50u32 {
            r.offer(msg_type::VIDEO, t * 40, KEY).expect("offered");
            disk.run(&mut r, u64::from(t) * 40 + 1000);
            assert!(last_ts(&disk.synced).is_some());
        }
    }

    #[test]
    fn a_rotated_file_starts_at_its_key_frame_with_the_headers_before_it() {
        let mut r = Recorder::new(Start::Fresh, RecorderLimits::default(), 0);
        r.start_at(60_000);
        r.offer(msg_type::VIDEO, 0, &[0x17, 0, 0, 0, 0])
            .expect("header");
        r.offer(msg_type::VIDEO, 60_000, KEY).expect("key frame");
        r.offer(msg_type::VIDEO, 60_040, KEY).expect("next");
        assert_eq!(r.duration_ms(), 40);
        let mut disk = Disk::default();
        r.finish();
        disk.run(&mut r, 0);
        assert_eq!(last_ts(&disk.file), Some(40));
    }

    #[test]
    fn one_operation_at_a_time_and_short_writes_resume() {
        let mut r = Recorder::new(Start::Fresh, RecorderLimits::default(), 0);
        r.offer(msg_type::VIDEO, 0, KEY).expect("offered");
        r.finish();
        let Some(FileOp::Write { offset: 0, bytes }) = r.poll(0) else {
            panic!("a write");
        };
        assert_eq!(r.poll(0), None, "nothing while a write is in flight");
        r.completed(Ok(5)).expect("short write");
        assert_eq!(
            r.retry(),
            Some(FileOp::Write {
                offset: 5,
                bytes: bytes.slice(5..)
            })
        );
        r.completed(Ok(bytes.len() - 5)).expect("rest");
        assert!(matches!(
            r.poll(0),
            Some(FileOp::Write { offset, .. }) if offset == flv::FIRST_TAG_AT as u64
        ));
    }

    #[test]
    fn a_disk_error_fails_the_recording_and_frees_its_buffer() {
        let mut r = Recorder::new(Start::Fresh, RecorderLimits::default(), 0);
        r.offer(msg_type::VIDEO, 0, KEY).expect("offered");
        r.finish();
        assert!(r.poll(0).is_some());
        assert_eq!(
            r.completed(Err(libc::ENOSPC)),
            Err(RecordError::Io(libc::ENOSPC))
        );
        assert_eq!(r.failed(), Some(RecordError::Io(libc::ENOSPC)));
        assert_eq!(r.poll(1000), None);
        assert_eq!(r.buffered(), 0);
        assert_eq!(
            r.offer(msg_type::VIDEO, 40, KEY),
            Err(RecordError::Io(libc::ENOSPC))
        );
    }

    #[test]
    fn a_slow_disk_fails_the_recording_instead_of_growing_memory() {
        let limits = RecorderLimits {
            max_buffer: 4096,
            ..RecorderLimits::default()
        };
        let mut r = Recorder::new(Start::Fresh, limits, 0);
        let frame = vec![0x27u8; 1000];
        let mut failed = None;
        for t in 0..100u32 {
            // The write never completes.
            let _ = r.poll(u64::from(t) * 1000);
            if let Err(e) = r.offer(msg_type::VIDEO, t * 40, &frame) {
                failed = Some(t);
                assert_eq!(e, RecordError::TooSlow);
                break;
            }
        }
        assert!(failed.is_some_and(|t| t < 6), "failed at {failed:?}");
        assert!(r.buffered() <= limits.max_buffer);
    }

    #[test]
    fn append_continues_after_the_last_tag_and_completes_the_metadata() {
        let mut disk = Disk::default();
        let mut r = Recorder::new(Start::Fresh, RecorderLimits::default(), 0);
        for t in 0..25u32 {
            r.offer(msg_type::VIDEO, t * 40, KEY).expect("offered");
        }
        disk.run(&mut r, 0);
        disk.run(&mut r, 1000);
        // Killed here, mid-tag: a torn tail.
        disk.file.extend_from_slice(&[9, 0, 0, 200, 0, 0]);
        let rec =
            recovery::recover(&disk.file, &disk.file, disk.file.len() as u64).expect("recovers");
        assert_eq!(rec.last_timestamp, 960);
        disk.file.truncate(rec.end as usize);
        let start = Start::Append {
            end: rec.end,
            last_timestamp: rec.last_timestamp,
            has_metadata: writer::is_metadata_tag(&disk.file[flv::FIRST_TAG_AT..]),
        };
        let mut r = Recorder::new(start, RecorderLimits::default(), 0);
        for t in 0..25u32 {
            r.offer(msg_type::VIDEO, 90_000 + t * 40, KEY)
                .expect("offered");
        }
        r.finish();
        disk.run(&mut r, 0);
        assert!(r.is_done());
        assert_eq!(last_ts(&disk.file), Some(960 + APPEND_GAP_MS + 960));
        assert_eq!(metadata_numbers(&disk.file), (2.02, disk.file.len() as f64));
    }

    #[derive(Debug, Clone)]
    enum Step {
        Offer {
            type_id: u8,
            advance: u32,
            len: usize,
        },
        /// Time passes by this many ms and the next operation, if any, completes: whole,
        /// short by `short` bytes, or with an error.
        Run {
            ms: u64,
            short: usize,
            fail: bool,
        },
        Finish,
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            6 => (prop_oneof![Just(8u8), Just(9), Just(18), Just(15), any::<u8>()], 0u32..200, 0usize..3000)
                .prop_map(|(type_id, advance, len)| Step::Offer { type_id, advance, len }),
            4 => (0u64..700, prop_oneof![3 => Just(0usize), 1 => 1usize..50], proptest::bool::weighted(0.03))
                .prop_map(|(ms, short, fail)| Step::Run { ms, short, fail }),
            1 => Just(Step::Finish),
        ]
    }

    proptest::proptest! {
        /// Whatever frames come and however the disk answers (short writes, errors), the
        /// recorder never panics, never holds more than its bound, and what is on disk
        /// always reads back as whole tags (a torn last one only mid short write).
        #[test]
        fn any_frames_and_completions_keep_the_file_whole(steps in proptest::collection::vec(step(), 1..120)) {
            let limits = RecorderLimits { max_buffer: 64 * 1024, write_bytes: 8 * 1024, ..RecorderLimits::default() };
            let mut r = Recorder::new(Start::Fresh, limits, 0);
            let mut disk = Disk::default();
            let (mut now, mut ts) = (0u64, 0u32);
            let mut pending: Option<FileOp> = None;
            for s in steps {
                match s {
                    Step::Offer { type_id, advance, len } => {
                        ts = ts.wrapping_add(advance);
                        let body = vec![0x27u8; len];
                        let _ = r.offer(type_id, ts, &body);
                        proptest::prop_assert!(r.buffered() <= limits.max_buffer + len + 15);
                    }
                    Step::Run { ms, short, fail } => {
                        now += ms;
                        let op = pending.take().or_else(|| r.poll(now));
                        let Some(op) = op else { continue };
                        if fail {
                            proptest::prop_assert!(r.completed(Err(libc::EIO)).is_err());
                            continue;
                        }
                        let n = match &op {
                            FileOp::Write { offset, bytes } => {
                                let n = bytes.len().saturating_sub(short).max(1).min(bytes.len());
                                disk.apply(&FileOp::Write { offset: *offset, bytes: bytes.slice(..n) });
                                n
                            }
                            FileOp::Sync => { disk.apply(&op); 0 }
                        };
                        let _ = r.completed(Ok(n));
                        pending = r.retry();
                        if disk.file.len() >= flv::FIRST_TAG_AT && pending.is_none() {
                            let whole = recovery::recover(&disk.file, &disk.file, disk.file.len() as u64);
                            proptest::prop_assert_eq!(whole.map(|w| w.end), Ok(disk.file.len() as u64));
                        }
                    }
                    Step::Finish => r.finish(),
                }
            }
        }
    }
}
