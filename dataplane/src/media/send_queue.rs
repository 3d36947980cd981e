//! One viewer's bounded send queue: slow viewers never slow the publisher or the other
//! viewers.
//!
//! Items are refcounted [`Bytes`] (already-chunked RTMP messages shared by every viewer of
//! the same output format): the queue never copies payload bytes, and a push allocates
//! nothing beyond the `VecDeque`'s amortised growth.
//!
//! The engine sends one batch at a time: [`SendQueue::next_batch`] fills iovecs from the
//! current send offset and marks those bytes in flight; [`SendQueue::complete`] reports how
//! many were written (possibly fewer), and the next batch resumes at the right byte.
//! [`SendQueue::complete_into`] is the same for zero-copy sends: fully sent items go to the
//! caller, who keeps them alive until the kernel says it no longer reads them.
//!
//! Policy. Lag is the newest media timestamp pushed minus the timestamp of the oldest media
//! item not completely sent (in flight included), wrapping-aware. Past `drop_lag_ms` (or past
//! `max_bytes` queued) every queued media item that is neither in flight nor partly sent is
//! discarded (a partly sent message must finish or the chunk stream is corrupt) and the
//! queue skips incoming audio and video until the next video key frame (or, for a viewer
//! that has never been sent video, the next audio frame). Past `max_lag_ms` a push answers
//! [`PushOutcome::TooSlow`] and the caller closes the viewer (NetStream.Play.InsufficientBW):
//! that is what becomes of a client that stops reading, whose in-flight send never completes
//! and so keeps the oldest timestamp old. Control items, metadata and sequence headers are
//! never dropped and do not count towards lag (headers in a fast-start burst carry
//! timestamps from whenever the publisher sent them).
//!
//! Timestamps are compared against the newest pushed, not the maximum seen, so a publisher
//! whose clock restarts reads as "no lag" rather than an enormous one. Forward jumps in the
//! publisher's timestamps read as lag; the stream layer is where to smooth them.

use std::collections::VecDeque;
use std::ops::Range;

use bytes::Bytes;

use super::tag::FrameKind;

/// Bounds on one viewer's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Lag past which queued media is dropped and the viewer skips to the next key frame.
    pub(crate) drop_lag_ms: u32,
    /// Lag past which the viewer is closed.
    pub(crate) max_lag_ms: u32,
    /// Queued bytes past which queued media is dropped, as for `drop_lag_ms`.
    pub(crate) max_bytes: usize,
}

impl QueueLimits {
    /// A new viewer's fast-start burst is a whole GOP, which reads as lag of the GOP's
    /// length until it drains: this must exceed the GOPs publishers send (2 s is the usual
    /// advice, some encoders use up to 10 s) or fast start would drop itself.
    pub(crate) const DEFAULT_DROP_LAG_MS: u32 = 10_000;
    /// A viewer this far behind live after dropping to key frames is not reading at all (or
    /// its link cannot carry the stream); closing it frees its share of the buffers it pins.
    pub(crate) const DEFAULT_MAX_LAG_MS: u32 = 30_000;
    /// Twice the GOP cache's default bytes, so a full fast-start snapshot fits with room for
    /// the live stream behind it. The bytes are shared between viewers; this bounds how much
    /// of the stream's history one slow viewer can keep alive.
    pub(crate) const DEFAULT_MAX_BYTES: usize = 32 << 20;
}

impl Default for QueueLimits {
    fn default() -> Self {
        QueueLimits {
            drop_lag_ms: Self::DEFAULT_DROP_LAG_MS,
            max_lag_ms: Self::DEFAULT_MAX_LAG_MS,
            max_bytes: Self::DEFAULT_MAX_BYTES,
        }
    }
}

/// What became of a pushed media item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    Queued,
    /// Discarded by the lag policy (counted in [`SendQueue::dropped_frames`]).
    Dropped,
    /// The viewer is past `max_lag_ms`: close it with NetStream.Play.InsufficientBW. The item
    /// was not queued (only audio and video answer this; metadata and headers are always
    /// queued).
    TooSlow,
}

/// How the policy treats an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Commands, status, protocol control: never dropped, no timestamp.
    Control,
    /// Metadata and sequence headers: never dropped (nothing decodes without them), and not
    /// counted in lag.
    Essential,
    /// Audio and video: droppable, and what lag is measured on.
    Media { timestamp: u32 },
}

#[derive(Debug)]
struct Item {
    bytes: Bytes,
    class: Class,
}

/// One viewer's send queue. See the module documentation for the policy.
#[derive(Debug)]
pub struct SendQueue {
    limits: QueueLimits,
    /// Not yet completely sent, in order. Never holds an empty item.
    items: VecDeque<Item>,
    /// Bytes of the front item already written (0 ≤ offset < its length).
    sent_offset: usize,
    /// How many items from the front the batch in flight touches (0: none in flight).
    in_flight_items: usize,
    /// Bytes in the batch in flight.
    in_flight_bytes: usize,
    /// Bytes not yet written (in flight included).
    queued_bytes: usize,
    /// Timestamp of the newest media item pushed.
    newest_ts: Option<u32>,
    /// Dropping incoming audio/video until a resume point.
    skipping: bool,
    /// Video has been pushed to this viewer: resume only on a video key frame.
    seen_video: bool,
    dropped: u64,
}

impl SendQueue {
    pub fn new(limits: QueueLimits) -> Self {
        SendQueue {
            limits,
            items: VecDeque::new(),
            sent_offset: 0,
            in_flight_items: 0,
            in_flight_bytes: 0,
            queued_bytes: 0,
            newest_ts: None,
            skipping: false,
            seen_video: false,
            dropped: 0,
        }
    }

    /// Never dropped: commands, status messages, control, metadata, sequence headers.
    /// Per-application limits are known only once the client has said which application
    /// it connects to; they apply from the next push on.
    pub(crate) fn set_limits(&mut self, limits: QueueLimits) {
        self.limits = limits;
    }

    pub fn push_control(&mut self, bytes: Bytes) {
        self.enqueue(bytes, Class::Control);
    }

    /// Queues one media message (already chunked), applying the lag policy. Metadata and
    /// sequence headers are accepted here too and are never dropped.
    pub fn push_media(&mut self, bytes: Bytes, timestamp: u32, kind: FrameKind) -> PushOutcome {
        // Decided before this item updates `seen_video`: a key frame always resumes; audio
        // resumes only a viewer that has never been sent video.
        let resumes = match kind {
            FrameKind::VideoKey => true,
            FrameKind::Audio => !self.seen_video,
            _ => false,
        };
        if kind.is_video() {
            self.seen_video = true;
        }
        if !kind.is_droppable() {
            // Always queued, and never the trigger for closing: its timestamp is not media
            // progress. A stuck viewer is caught by the next audio or video push.
            self.enqueue(bytes, Class::Essential);
            return PushOutcome::Queued;
        }
        self.newest_ts = Some(timestamp);
        if self.lag_ms() > self.limits.max_lag_ms {
            return PushOutcome::TooSlow;
        }
        if self.skipping {
            if !resumes {
                self.dropped += 1;
                return PushOutcome::Dropped;
            }
            self.skipping = false;
        }
        self.enqueue(bytes, Class::Media { timestamp });
        if self.lag_ms() > self.limits.drop_lag_ms || self.queued_bytes > self.limits.max_bytes {
            // The item just queued is neither in flight nor partly sent: it goes too.
            self.drop_queued_media();
            self.skipping = true;
            return PushOutcome::Dropped;
        }
        PushOutcome::Queued
    }

    /// Fills `iov` (cleared first) with up to `max_iov` entries / at most `max_bytes` of
    /// not-yet-sent bytes starting at the current send offset, marks them in flight, and
    /// returns the byte count. Returns 0 (and fills nothing) while a batch is in flight: one
    /// send at a time keeps the byte stream in order.
    ///
    /// The pointers stay valid until [`complete`](Self::complete): the queue holds the
    /// `Bytes` they point into, and nothing in flight is ever dropped.
    pub fn next_batch(
        &mut self,
        iov: &mut Vec<libc::iovec>,
        max_iov: usize,
        max_bytes: usize,
    ) -> usize {
        iov.clear();
        self.fill_batch(max_iov, max_bytes, |bytes, range| {
            if let Some(slice) = bytes.get(range) {
                iov.push(libc::iovec {
                    // The kernel only reads through it (a send); `*mut` is how iovec spells it.
                    iov_base: slice.as_ptr() as *mut libc::c_void,
                    iov_len: slice.len(),
                });
            }
        })
    }

    /// [`next_batch`](Self::next_batch) for drivers that want `Bytes` handles rather than
    /// iovecs (RTMFP clients, test clients, in-memory transports): the same batch, as sub-slices sharing
    /// the queue's buffers.
    pub(crate) fn next_batch_bytes(
        &mut self,
        out: &mut Vec<Bytes>,
        max_iov: usize,
        max_bytes: usize,
    ) -> usize {
        out.clear();
        self.fill_batch(max_iov, max_bytes, |bytes, range| {
            out.push(bytes.slice(range))
        })
    }

    /// The batch in flight completed with `n` bytes written. A short write ends the batch
    /// too: the unwritten rest is no longer in flight, and the next batch starts from it.
    /// `n` beyond the batch is clamped (the kernel cannot write more than it was given).
    pub fn complete(&mut self, n: usize) {
        self.complete_with(n, drop);
    }

    /// [`complete`](Self::complete) for zero-copy sends, where the kernel may read the
    /// memory after the send completes: every item now fully sent is moved into `held`
    /// (whose owner keeps it until the kernel is done) instead of being dropped. A partly
    /// sent item stays queued, as with `complete`, and moves only once it is fully sent.
    /// Returns the bytes moved.
    pub(crate) fn complete_into(&mut self, n: usize, held: &mut Vec<Bytes>) -> usize {
        let mut moved = 0;
        self.complete_with(n, |bytes| {
            moved += bytes.len();
            held.push(bytes);
        });
        moved
    }

    /// The one place a completion is applied: `sent` receives each item that is now fully
    /// sent, in order.
    fn complete_with(&mut self, n: usize, mut sent: impl FnMut(Bytes)) {
        if self.in_flight_items == 0 {
            return;
        }
        let mut n = n.min(self.in_flight_bytes);
        self.in_flight_items = 0;
        self.in_flight_bytes = 0;
        self.queued_bytes -= n;
        while n > 0 {
            let Some(front) = self.items.front() else {
                break;
            };
            let rest = front.bytes.len() - self.sent_offset;
            if n >= rest {
                if let Some(item) = self.items.pop_front() {
                    sent(item.bytes);
                }
                self.sent_offset = 0;
                n -= rest;
            } else {
                self.sent_offset += n;
                n = 0;
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn in_flight(&self) -> bool {
        self.in_flight_items > 0
    }

    /// Bytes in the batch in flight (0: none).
    pub(crate) fn in_flight_bytes(&self) -> usize {
        self.in_flight_bytes
    }

    /// Nothing queued or in flight.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Bytes not yet written, in flight included.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Newest media timestamp pushed minus the oldest media item's not completely sent;
    /// 0 when no media is queued or timestamps went backwards.
    pub(crate) fn lag_ms(&self) -> u32 {
        let Some(newest) = self.newest_ts else {
            return 0;
        };
        // Control and essential items sit at the front only briefly and are few, so this
        // finds the oldest media item within the first few entries.
        let oldest = self.items.iter().find_map(|item| match item.class {
            Class::Media { timestamp } => Some(timestamp),
            _ => None,
        });
        match oldest {
            // Signed difference: wrap-around at 2^32 ms (~49.7 days) reads right, and a
            // backwards step (publisher restart) reads as no lag.
            Some(oldest) => u32::try_from(newest.wrapping_sub(oldest) as i32).unwrap_or(0),
            None => 0,
        }
    }

    #[cfg(test)]
    /// Media frames this viewer was not sent because of the lag policy.
    pub(crate) fn dropped_frames(&self) -> u64 {
        self.dropped
    }

    /// Skipping incoming media until the next resume point (for statistics and tests).
    pub fn is_skipping(&self) -> bool {
        self.skipping
    }

    fn enqueue(&mut self, bytes: Bytes, class: Class) {
        // An empty item has nothing to send, and the batch logic relies on every queued
        // item having at least one byte.
        if bytes.is_empty() {
            return;
        }
        self.queued_bytes += bytes.len();
        self.items.push_back(Item { bytes, class });
    }

    /// Walks the not-yet-sent bytes from the send offset, handing each (sub)slice to `emit`,
    /// and marks them in flight. Returns the byte count (0: nothing to send, or a batch is
    /// already in flight).
    fn fill_batch(
        &mut self,
        max_iov: usize,
        max_bytes: usize,
        mut emit: impl FnMut(&Bytes, Range<usize>),
    ) -> usize {
        if self.in_flight_items > 0 {
            return 0;
        }
        let mut offset = self.sent_offset;
        let mut total = 0;
        let mut count = 0;
        for item in self.items.iter().take(max_iov) {
            // `offset` is below the front item's length (invariant) and 0 for the others;
            // every item holds at least one byte, so `take` is 0 only when the budget is.
            let start = offset.min(item.bytes.len());
            let take = (item.bytes.len() - start).min(max_bytes - total);
            if take == 0 {
                break;
            }
            emit(&item.bytes, start..start + take);
            total += take;
            count += 1;
            offset = 0;
        }
        self.in_flight_items = count;
        self.in_flight_bytes = total;
        total
    }

    /// Discards every queued media item that is neither in flight nor partly sent.
    fn drop_queued_media(&mut self) {
        // The batch in flight covers a prefix; a partly sent item can only be the front.
        let keep_prefix = self.in_flight_items.max(usize::from(self.sent_offset > 0));
        let mut index = 0;
        let mut dropped_bytes = 0;
        let mut dropped = 0;
        self.items.retain(|item| {
            let keep = index < keep_prefix || !matches!(item.class, Class::Media { .. });
            index += 1;
            if !keep {
                dropped_bytes += item.bytes.len();
                dropped += 1;
            }
            keep
        });
        self.queued_bytes -= dropped_bytes;
        self.dropped += dropped;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use FrameKind::*;

    const LIMITS: QueueLimits = QueueLimits {
        drop_lag_ms: 1_000,
        max_lag_ms: 5_000,
        max_bytes: 1 << 20,
    };

    fn item(tag: u8, len: usize) -> Bytes {
        Bytes::from(vec![tag; len])
    }

    /// Sends everything queued, `chunk` bytes per send, and returns what was written.
    fn drain(q: &mut SendQueue, chunk: usize) -> Vec<u8> {
        drain_with(q, chunk, None)
    }

    /// `drain`, completing into `held` (as zero-copy sends do) when given one.
    fn drain_with(q: &mut SendQueue, chunk: usize, mut held: Option<&mut Vec<Bytes>>) -> Vec<u8> {
        let mut written = Vec::new();
        let mut out = Vec::new();
        while q.next_batch_bytes(&mut out, 8, chunk) > 0 {
            for b in &out {
                written.extend_from_slice(b);
            }
            match held.as_deref_mut() {
                Some(held) => {
                    q.complete_into(chunk, held);
                }
                None => q.complete(chunk),
            }
        }
        assert!(q.is_empty());
        assert_eq!(q.queued_bytes(), 0);
        written
    }

    #[test]
    fn slow_viewer_drops_to_the_next_key_frame() {
        let mut q = SendQueue::new(LIMITS);
        assert_eq!(q.push_media(item(1, 10), 0, VideoKey), PushOutcome::Queued);
        let mut iov = Vec::new();
        // The first frame goes out but its send does not complete for a while.
        assert_eq!(q.next_batch(&mut iov, 16, 1 << 16), 10);
        assert_eq!(
            q.push_media(item(2, 10), 500, VideoInter),
            PushOutcome::Queued
        );
        assert_eq!(q.push_media(item(3, 10), 510, Audio), PushOutcome::Queued);
        // 1001 ms behind: everything not in flight goes, including this frame.
        assert_eq!(
            q.push_media(item(4, 10), 1001, VideoInter),
            PushOutcome::Dropped
        );
        assert!(q.is_skipping());
        assert_eq!(q.dropped_frames(), 3);
        // Audio waits for the key frame too: this viewer has seen video.
        assert_eq!(q.push_media(item(5, 10), 1010, Audio), PushOutcome::Dropped);
        q.complete(10);
        assert_eq!(q.lag_ms(), 0);
        assert_eq!(
            q.push_media(item(6, 10), 1033, VideoInter),
            PushOutcome::Dropped
        );
        assert_eq!(
            q.push_media(item(7, 10), 2000, VideoKey),
            PushOutcome::Queued
        );
        assert!(!q.is_skipping());
        assert_eq!(q.push_media(item(8, 10), 2010, Audio), PushOutcome::Queued);
        assert_eq!(q.dropped_frames(), 5);
        let mut expected = vec![7; 10];
        expected.extend_from_slice(&[8; 10]);
        assert_eq!(drain(&mut q, 7), expected);
    }

    #[test]
    fn partial_writes_resume_at_the_right_byte() {
        let mut q = SendQueue::new(LIMITS);
        let a = Bytes::from((0u8..100).collect::<Vec<_>>());
        let b = Bytes::from((100u8..150).collect::<Vec<_>>());
        q.push_control(a.clone());
        q.push_media(b.clone(), 0, VideoKey);
        let mut iov = Vec::new();
        assert_eq!(q.next_batch(&mut iov, 16, 1 << 16), 150);
        assert_eq!(iov.len(), 2);
        assert_eq!(iov[0].iov_base as usize, a.as_ptr() as usize);
        assert_eq!(iov[1].iov_base as usize, b.as_ptr() as usize);
        assert!(q.in_flight());
        // Another batch while one is in flight: nothing.
        assert_eq!(q.next_batch(&mut iov, 16, 1 << 16), 0);
        assert!(iov.is_empty());
        q.complete(37);
        assert!(!q.in_flight());
        assert_eq!(q.queued_bytes(), 113);
        assert_eq!(q.next_batch(&mut iov, 16, 1 << 16), 113);
        assert_eq!(iov[0].iov_base as usize, a.as_ptr() as usize + 37);
        assert_eq!(iov[0].iov_len, 63);
        q.complete(70);
        assert_eq!(q.next_batch(&mut iov, 16, 1 << 16), 43);
        assert_eq!(iov.len(), 1);
        assert_eq!(iov[0].iov_base as usize, b.as_ptr() as usize + 7);
        q.complete(43);
        assert!(q.is_empty());
    }

    #[test]
    fn complete_into_holds_items_only_once_fully_sent() {
        let mut q = SendQueue::new(LIMITS);
        let (a, b, c) = (item(1, 100), item(2, 50), item(3, 30));
        q.push_control(a.clone());
        q.push_media(b.clone(), 0, VideoKey);
        q.push_media(c.clone(), 10, VideoInter);
        let mut iov = Vec::new();
        let mut held = Vec::new();
        assert_eq!(q.next_batch(&mut iov, 16, 1 << 16), 180);
        // All of a and 20 bytes of b: only a is done with.
        assert_eq!(q.complete_into(120, &mut held), 100);
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].as_ptr(), a.as_ptr());
        assert_eq!(held[0].len(), 100);
        assert_eq!(q.queued_bytes(), 60);
        // Another 10 bytes of b: still partly sent, so still queued and not held.
        assert_eq!(q.next_batch(&mut iov, 16, 1 << 16), 60);
        assert_eq!(iov[0].iov_base as usize, b.as_ptr() as usize + 20);
        assert_eq!(q.complete_into(10, &mut held), 0);
        assert_eq!(held.len(), 1);
        // The rest: b and c are held whole, the very buffers that were queued.
        assert_eq!(q.next_batch(&mut iov, 16, 1 << 16), 50);
        assert_eq!(q.complete_into(50, &mut held), 80);
        let held_ptrs: Vec<_> = held.iter().map(|h| (h.as_ptr(), h.len())).collect();
        assert_eq!(
            held_ptrs,
            [(a.as_ptr(), 100), (b.as_ptr(), 50), (c.as_ptr(), 30)]
        );
        assert!(q.is_empty());
        // Nothing in flight: nothing moves.
        assert_eq!(q.complete_into(10, &mut held), 0);
        assert_eq!(held.len(), 3);
    }

    #[test]
    fn drops_never_touch_held_or_partly_sent_items() {
        let mut q = SendQueue::new(LIMITS);
        q.push_media(item(1, 100), 0, VideoKey);
        q.push_media(item(2, 100), 10, VideoInter);
        q.push_media(item(3, 100), 20, VideoInter);
        let mut iov = Vec::new();
        let mut held = Vec::new();
        q.next_batch(&mut iov, 16, 1 << 16);
        // Item 1 sent (held), half of item 2 sent (queued).
        assert_eq!(q.complete_into(150, &mut held), 100);
        assert_eq!(
            q.push_media(item(4, 10), 1_100, VideoInter),
            PushOutcome::Dropped
        );
        assert_eq!(q.dropped_frames(), 2);
        assert_eq!(held.len(), 1);
        assert_eq!(held[0], item(1, 100));
        // Item 2's second half still goes out whole, then moves to the holder.
        assert_eq!(drain_with(&mut q, 7, Some(&mut held)), vec![2; 50]);
        assert_eq!(held, [item(1, 100), item(2, 100)]);
    }

    #[test]
    fn batches_respect_max_iov_and_max_bytes() {
        let mut q = SendQueue::new(LIMITS);
        for i in 0..10 {
            q.push_control(item(i, 100));
        }
        let mut iov = Vec::new();
        assert_eq!(q.next_batch(&mut iov, 3, 1 << 16), 300);
        assert_eq!(iov.len(), 3);
        q.complete(300);
        assert_eq!(q.next_batch(&mut iov, 16, 250), 250);
        assert_eq!(
            iov.iter().map(|v| v.iov_len).collect::<Vec<_>>(),
            [100, 100, 50]
        );
        q.complete(1 << 20); // clamped to the batch
        assert_eq!(q.queued_bytes(), 450);
        assert_eq!(q.next_batch(&mut iov, 0, 1000), 0);
        assert!(!q.in_flight());
        assert_eq!(q.next_batch(&mut iov, 10, 0), 0);
        q.complete(5); // nothing in flight: ignored
        assert_eq!(q.queued_bytes(), 450);
    }

    #[test]
    fn partly_sent_item_survives_a_drop() {
        let mut q = SendQueue::new(LIMITS);
        q.push_media(item(1, 100), 0, VideoKey);
        q.push_media(item(2, 100), 10, VideoInter);
        let mut iov = Vec::new();
        q.next_batch(&mut iov, 16, 1 << 16);
        q.complete(50); // half of item 1 written, nothing in flight
        assert_eq!(
            q.push_media(item(3, 10), 1100, VideoInter),
            PushOutcome::Dropped
        );
        // Item 1's second half must still go out whole; item 2 and 3 were dropped.
        assert_eq!(drain(&mut q, 1000), vec![1; 50]);
        assert_eq!(q.dropped_frames(), 2);
    }

    #[test]
    fn stopped_reader_gets_too_slow() {
        let mut q = SendQueue::new(LIMITS);
        let mut iov = Vec::new();
        q.push_control(item(0, 10));
        q.push_media(item(1, 10), 0, VideoKey);
        q.next_batch(&mut iov, 16, 1 << 16);
        // The send never completes. Frames arrive at 30 fps with a key frame every 2 s.
        let mut outcomes = Vec::new();
        for i in 1..=200u32 {
            let ts = i * 33;
            let kind = if i % 60 == 0 { VideoKey } else { VideoInter };
            let outcome = q.push_media(item(2, 10), ts, kind);
            outcomes.push((ts, outcome));
            if outcome == PushOutcome::TooSlow {
                break;
            }
        }
        let (ts, last) = outcomes[outcomes.len() - 1];
        assert_eq!(last, PushOutcome::TooSlow);
        assert!(ts > LIMITS.max_lag_ms && ts - 33 <= LIMITS.max_lag_ms);
        // Nothing beyond the in-flight batch was kept while it was stuck.
        assert!(outcomes
            .iter()
            .all(|&(t, o)| t <= LIMITS.drop_lag_ms || o != PushOutcome::Queued));
        assert_eq!(q.queued_bytes(), 20);
    }

    #[test]
    fn control_survives_drops() {
        let mut q = SendQueue::new(LIMITS);
        q.push_media(item(1, 10), 0, VideoKey);
        q.push_control(item(2, 10));
        q.push_media(item(3, 10), 100, VideoInter);
        q.push_media(item(4, 10), 100, VideoHeader);
        q.push_media(item(5, 10), 100, Metadata);
        q.push_control(item(6, 10));
        assert_eq!(
            q.push_media(item(7, 10), 5_000, Audio),
            PushOutcome::Dropped
        );
        q.push_control(item(8, 10));
        assert_eq!(
            q.push_media(item(9, 10), 5_100, AudioHeader),
            PushOutcome::Queued
        );
        let written = drain(&mut q, 9);
        let tags: Vec<u8> = written.chunks(10).map(|c| c[0]).collect();
        assert_eq!(tags, [2, 4, 5, 6, 8, 9]);
        assert_eq!(q.dropped_frames(), 3);
    }

    #[test]
    fn headers_do_not_count_as_lag() {
        let mut q = SendQueue::new(LIMITS);
        // A fast-start snapshot: headers from long ago, then the current GOP.
        q.push_media(item(1, 10), 0, Metadata);
        q.push_media(item(2, 10), 0, VideoHeader);
        assert_eq!(
            q.push_media(item(3, 10), 600_000, VideoKey),
            PushOutcome::Queued
        );
        assert_eq!(
            q.push_media(item(4, 10), 600_400, VideoInter),
            PushOutcome::Queued
        );
        assert_eq!(q.lag_ms(), 400);
    }

    #[test]
    fn fast_start_burst_of_a_long_gop_is_not_dropped_with_default_limits() {
        // A new viewer is sent headers from long ago, then an 8 s GOP (30 fps video, AAC)
        // at once, then live: the burst reads as 8 s of lag until it drains.
        let mut q = SendQueue::new(QueueLimits::default());
        q.push_media(item(1, 300), 0, Metadata);
        q.push_media(item(2, 40), 0, VideoHeader);
        q.push_media(item(3, 4), 0, AudioHeader);
        let start = 3_600_000;
        for i in 0..240u32 {
            let kind = if i == 0 { VideoKey } else { VideoInter };
            let ts = start + i * 33;
            assert_eq!(q.push_media(item(4, 20_000), ts, kind), PushOutcome::Queued);
            assert_eq!(
                q.push_media(item(5, 400), ts + 10, Audio),
                PushOutcome::Queued
            );
        }
        assert!(q.lag_ms() < QueueLimits::DEFAULT_DROP_LAG_MS);
        assert_eq!(q.dropped_frames(), 0);
    }

    #[test]
    fn headers_are_queued_even_for_a_stuck_viewer() {
        let mut q = SendQueue::new(LIMITS);
        let mut iov = Vec::new();
        q.push_media(item(1, 10), 0, VideoKey);
        q.next_batch(&mut iov, 16, 1 << 16);
        assert_eq!(
            q.push_media(item(2, 10), 6_000, VideoInter),
            PushOutcome::TooSlow
        );
        assert_eq!(
            q.push_media(item(3, 10), 6_000, VideoHeader),
            PushOutcome::Queued
        );
        assert_eq!(
            q.push_media(item(4, 10), 6_033, VideoInter),
            PushOutcome::TooSlow
        );
        assert_eq!(q.queued_bytes(), 20);
    }

    #[test]
    fn audio_only_viewer_resumes_on_the_next_audio_frame() {
        let mut q = SendQueue::new(LIMITS);
        let mut iov = Vec::new();
        q.push_media(item(0, 10), 0, AudioHeader);
        q.push_media(item(1, 10), 0, Audio);
        q.next_batch(&mut iov, 16, 1 << 16);
        q.push_media(item(2, 10), 23, Audio);
        assert_eq!(q.push_media(item(3, 10), 1024, Audio), PushOutcome::Dropped);
        q.complete(20);
        assert_eq!(q.push_media(item(4, 10), 1047, Audio), PushOutcome::Queued);
        let written = drain(&mut q, 100);
        assert_eq!(written, vec![4; 10]);
    }

    #[test]
    fn too_many_bytes_drops_like_lag() {
        let mut q = SendQueue::new(QueueLimits {
            max_bytes: 100,
            ..LIMITS
        });
        q.push_media(item(1, 60), 0, VideoKey);
        assert_eq!(
            q.push_media(item(2, 60), 10, VideoInter),
            PushOutcome::Dropped
        );
        assert!(q.is_empty());
        assert_eq!(q.push_media(item(3, 60), 20, VideoKey), PushOutcome::Queued);
    }

    #[test]
    fn timestamps_wrap_around() {
        let mut q = SendQueue::new(LIMITS);
        let start = u32::MAX - 300;
        for i in 0..30u32 {
            let ts = start.wrapping_add(i * 33);
            let kind = if i == 0 { VideoKey } else { VideoInter };
            assert_eq!(q.push_media(item(1, 10), ts, kind), PushOutcome::Queued);
        }
        assert_eq!(q.lag_ms(), 29 * 33);
        assert_eq!(q.dropped_frames(), 0);
        // Across the wrap, 1001 ms behind still drops.
        assert_eq!(
            q.push_media(item(1, 10), start.wrapping_add(1_001), VideoInter),
            PushOutcome::Dropped
        );
    }

    #[test]
    fn publisher_restart_reads_as_no_lag() {
        let mut q = SendQueue::new(LIMITS);
        q.push_media(item(1, 10), 900_000, VideoKey);
        assert_eq!(q.push_media(item(2, 10), 0, VideoKey), PushOutcome::Queued);
        assert_eq!(q.lag_ms(), 0);
    }

    #[test]
    fn empty_items_are_not_queued() {
        let mut q = SendQueue::new(LIMITS);
        q.push_control(Bytes::new());
        assert_eq!(q.push_media(Bytes::new(), 0, Audio), PushOutcome::Queued);
        assert!(q.is_empty());
    }

    // --- Property tests: random interleavings of pushes, batches and (short) completions.

    #[derive(Debug, Clone)]
    enum Op {
        Control(usize),
        Media(usize, u32, FrameKind),
        Batch(usize, usize),
        /// Complete with this fraction (per mille) of the batch.
        Complete(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        let kind = prop_oneof![
            4 => Just(Audio),
            4 => Just(VideoInter),
            1 => Just(VideoKey),
            1 => Just(VideoOther),
            1 => Just(VideoHeader),
            1 => Just(AudioHeader),
            1 => Just(Metadata),
        ];
        prop_oneof![
            1 => (1usize..8).prop_map(Op::Control),
            6 => (1usize..40, 0u32..400, kind).prop_map(|(w, d, k)| Op::Media(w, d, k)),
            3 => (0usize..6, 0usize..400).prop_map(|(i, b)| Op::Batch(i, b)),
            3 => (0u32..=1000).prop_map(Op::Complete),
        ]
    }

    /// Item `id`: `words` copies of its id as 4 big-endian bytes, so the written stream
    /// can be cut back into items and each checked whole.
    fn tagged(id: u32, words: usize) -> Bytes {
        Bytes::from(id.to_be_bytes().repeat(words))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn written_stream_is_the_surviving_items_whole_and_in_order(
            start in any::<u32>(),
            use_iovecs in any::<bool>(),
            hold in any::<bool>(),
            ops in proptest::collection::vec(op(), 0..300),
        ) {
            let limits = QueueLimits { drop_lag_ms: 500, max_lag_ms: 2_000, max_bytes: 2_000 };
            let mut q = SendQueue::new(limits);
            // Every item pushed: (id, bytes, must survive, queued).
            let mut pushed: Vec<(u32, Bytes, bool, bool)> = Vec::new();
            let mut media_pushed_not_too_slow = 0u64;
            let mut ts = start;
            let mut batch: Vec<u8> = Vec::new();
            let mut written: Vec<u8> = Vec::new();
            let mut iov = Vec::new();
            let mut out = Vec::new();
            // With `hold`, completions go through `complete_into`, as zero-copy sends do.
            let mut held: Vec<Bytes> = Vec::new();

            // Turns the batch just filled into bytes: from `Bytes` handles, or by finding
            // the pushed item each iovec points into (pointer arithmetic only, no reads).
            let collect = |iov: &Vec<libc::iovec>, out: &Vec<Bytes>, pushed: &[(u32, Bytes, bool, bool)], use_iovecs: bool| -> Vec<u8> {
                let mut bytes = Vec::new();
                if use_iovecs {
                    for v in iov {
                        let addr = v.iov_base as usize;
                        let owner = pushed.iter().find(|(_, b, _, _)| {
                            let base = b.as_ptr() as usize;
                            base <= addr && addr + v.iov_len <= base + b.len()
                        });
                        let (_, b, _, _) = owner.expect("iovec points into a pushed item");
                        let off = addr - b.as_ptr() as usize;
                        bytes.extend_from_slice(&b[off..off + v.iov_len]);
                    }
                } else {
                    for b in out {
                        bytes.extend_from_slice(b);
                    }
                }
                bytes
            };

            for op in ops {
                match op {
                    Op::Control(words) => {
                        let id = pushed.len() as u32;
                        let b = tagged(id, words);
                        q.push_control(b.clone());
                        pushed.push((id, b, true, true));
                    }
                    Op::Media(words, delta, kind) => {
                        let id = pushed.len() as u32;
                        let b = tagged(id, words);
                        ts = ts.wrapping_add(delta);
                        let outcome = q.push_media(b.clone(), ts, kind);
                        if kind.is_droppable() {
                            if outcome != PushOutcome::TooSlow {
                                media_pushed_not_too_slow += 1;
                            }
                        } else {
                            prop_assert_ne!(outcome, PushOutcome::Dropped);
                        }
                        let queued = !kind.is_droppable() || outcome == PushOutcome::Queued;
                        pushed.push((id, b, !kind.is_droppable(), queued));
                    }
                    Op::Batch(max_iov, max_bytes) => {
                        let was_in_flight = q.in_flight();
                        let n = if use_iovecs {
                            q.next_batch(&mut iov, max_iov, max_bytes)
                        } else {
                            q.next_batch_bytes(&mut out, max_iov, max_bytes)
                        };
                        prop_assert!(n <= max_bytes);
                        if was_in_flight {
                            prop_assert_eq!(n, 0);
                        } else {
                            batch = collect(&iov, &out, &pushed, use_iovecs);
                            prop_assert_eq!(batch.len(), n);
                            prop_assert_eq!(q.in_flight(), n > 0);
                        }
                    }
                    Op::Complete(per_mille) => {
                        if q.in_flight() {
                            let n = batch.len() * per_mille as usize / 1000;
                            written.extend_from_slice(&batch[..n]);
                            if hold {
                                let before = held.len();
                                let moved = q.complete_into(n, &mut held);
                                let lens: usize = held[before..].iter().map(Bytes::len).sum();
                                prop_assert_eq!(moved, lens);
                                // Held: exactly the items written whole; the rest of what
                                // was written is the front item's sent part, still queued.
                                prop_assert_eq!(
                                    held.concat(),
                                    &written[..written.len() - q.sent_offset]
                                );
                            } else {
                                q.complete(n);
                            }
                            batch.clear();
                            prop_assert!(!q.in_flight());
                        }
                    }
                }
            }
            // The viewer catches up: everything left goes out.
            if q.in_flight() {
                written.extend_from_slice(&batch);
                let n = batch.len();
                if hold {
                    q.complete_into(n, &mut held);
                } else {
                    q.complete(n);
                }
            }
            written.extend_from_slice(&drain_with(&mut q, 64, hold.then_some(&mut held)));
            if hold {
                prop_assert_eq!(held.concat(), written.clone());
            }

            // Cut the stream back into items.
            prop_assert_eq!(written.len() % 4, 0);
            let mut runs: Vec<(u32, usize)> = Vec::new();
            for word in written.chunks(4) {
                let id = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
                match runs.last_mut() {
                    Some((last, count)) if *last == id => *count += 1,
                    _ => runs.push((id, 1)),
                }
            }
            // In order, each whole, only items that were queued; every item that must
            // survive did.
            prop_assert!(runs.windows(2).all(|w| w[0].0 < w[1].0));
            for &(id, words) in &runs {
                let (_, b, _, queued) = &pushed[id as usize];
                prop_assert!(*queued);
                prop_assert_eq!(words * 4, b.len());
            }
            let written_ids: std::collections::HashSet<u32> = runs.iter().map(|r| r.0).collect();
            for (id, _, must, _) in &pushed {
                if *must {
                    prop_assert!(written_ids.contains(id));
                }
            }
            // Every media frame pushed (and not refused as TooSlow) was written or dropped.
            let media_written = runs
                .iter()
                .filter(|r| !pushed[r.0 as usize].2)
                .count() as u64;
            prop_assert_eq!(q.dropped_frames() + media_written, media_pushed_not_too_slow);
        }
    }
}
