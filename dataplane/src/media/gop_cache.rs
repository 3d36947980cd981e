//! Fast start: what a live stream keeps so that a new viewer starts decoding at once instead
//! of waiting for the publisher's next key frame: the last metadata, the codec sequence
//! headers, and the current group of pictures (the last key frame and everything after it).
//! While joiners still take a GOP in rounds when the next key frame comes, the GOP before
//! is kept too, as far as they still need it (`keep_from`), so they go on through it into
//! the new key frame instead of waiting a whole GOP for the one after.
//!
//! The cache holds the worker's frame handles (`F`, refcounted: cloning one never copies a
//! payload), and knows frames only through [`CachedFrame`].

use std::collections::VecDeque;

use super::tag::FrameKind;

/// What the cache needs to know about a frame.
pub trait CachedFrame {
    fn kind(&self) -> FrameKind;
    /// Media timestamp in milliseconds (wraps at 2^32).
    fn timestamp(&self) -> u32;
    /// Bytes it holds (what it costs to keep and to send).
    fn size(&self) -> usize;
}

/// Bounds on the cached group of pictures (metadata and headers are not counted: there is
/// one of each, and they are small).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GopCacheLimits {
    pub(crate) max_bytes: usize,
    pub(crate) max_frames: usize,
}

impl GopCacheLimits {
    /// A 10 s GOP at 12 Mbit/s (a high-quality 1080p60 ingest) is about 15 MiB; a stream
    /// that goes past this has GOPs too long for fast start to be worth the memory, since the
    /// whole GOP is also what every new viewer must download before it sees live.
    pub(crate) const DEFAULT_MAX_BYTES: usize = 16 << 20;
    /// 60 fps video plus 48 kHz AAC (~47 frames/s) is ~107 messages/s: 4096 covers a 30 s GOP
    /// and bounds the per-viewer work of queueing a snapshot.
    pub(crate) const DEFAULT_MAX_FRAMES: usize = 4096;
}

impl Default for GopCacheLimits {
    fn default() -> Self {
        GopCacheLimits {
            max_bytes: Self::DEFAULT_MAX_BYTES,
            max_frames: Self::DEFAULT_MAX_FRAMES,
        }
    }
}

/// Audio-only streams never send a key frame, so there is no GOP to start on; every audio
/// frame is a starting point. The cache keeps this much of the newest audio so a player fills
/// its start buffer at once (Flash's default bufferTime is 0.1 s, ffplay and VLC want about a
/// second before they start) without adding more than a second of latency to the viewer.
pub(crate) const AUDIO_ONLY_WINDOW_MS: u32 = 1_000;

/// Where the cache is in the stream's GOP structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GopState {
    /// No usable GOP: before the first key frame, after a video header changed the codec
    /// configuration, or after the GOP outgrew the limits. Waits for the next key frame.
    Waiting,
    /// The GOP started by the last key frame is being recorded.
    Open,
}

/// The fast-start cache of one live stream.
#[derive(Debug)]
pub struct GopCache<F> {
    limits: GopCacheLimits,
    metadata: Option<F>,
    video_header: Option<F>,
    audio_header: Option<F>,
    /// The GOP in arrival order (or, for audio-only streams, the newest audio window).
    gop: VecDeque<F>,
    gop_bytes: usize,
    /// The GOP before `gop`, from the oldest frame a joiner still needs (`keep_from`) to
    /// the frame before `gop`'s key frame; empty unless a key frame came while joiners
    /// were taking rounds of the GOP it ended.
    previous: VecDeque<F>,
    previous_bytes: usize,
    /// Frames ever appended to `gop`: the position just past its back. A viewer that takes
    /// the GOP in rounds remembers a position; one before the front was dropped meanwhile.
    appended: u64,
    state: GopState,
    /// The stream carries video (a video header or picture came since the last `clear`).
    /// Decides between GOP mode and the audio-only window.
    seen_video: bool,
}

impl<F: CachedFrame + Clone> GopCache<F> {
    pub fn new(limits: GopCacheLimits) -> Self {
        GopCache {
            limits,
            metadata: None,
            video_header: None,
            audio_header: None,
            gop: VecDeque::new(),
            gop_bytes: 0,
            previous: VecDeque::new(),
            previous_bytes: 0,
            appended: 0,
            state: GopState::Waiting,
            seen_video: false,
        }
    }

    /// Records one live frame, in the order the publisher sent them.
    pub fn push(&mut self, frame: &F) {
        match frame.kind() {
            FrameKind::Metadata => self.metadata = Some(frame.clone()),
            FrameKind::VideoHeader => {
                self.seen_video = true;
                self.video_header = Some(frame.clone());
                // Pictures before a new configuration may not decode with it (a resolution
                // or codec change): wait for the key frame that follows it. Encoders that
                // repeat the header before every key frame lose nothing by this.
                self.drop_gop();
            }
            FrameKind::AudioHeader => {
                self.audio_header = Some(frame.clone());
                if !self.seen_video {
                    // The audio window is the whole cache of an audio-only stream: frames
                    // from an old configuration must not follow the new header.
                    self.drop_gop();
                }
            }
            FrameKind::VideoKey => {
                self.seen_video = true;
                self.retire_gop();
                self.state = GopState::Open;
                self.append(frame);
            }
            FrameKind::VideoInter | FrameKind::VideoOther => {
                if !self.seen_video {
                    // Video after all (its header may come late or never): the audio-only
                    // window goes; the cache waits for a key frame like any video stream.
                    self.seen_video = true;
                    self.drop_gop();
                }
                if self.state == GopState::Open {
                    self.append(frame);
                }
            }
            FrameKind::Audio => {
                if self.state == GopState::Open {
                    self.append(frame);
                } else if !self.seen_video {
                    self.append_audio_only(frame);
                }
            }
        }
    }

    /// What a new viewer is sent before live messages: metadata, video header, audio header,
    /// then the GOP in arrival order (never the previous one: a joiner starts on the last
    /// key frame).
    pub fn snapshot(&self) -> impl Iterator<Item = &F> {
        self.headers().chain(self.gop.iter())
    }

    /// Metadata, video header, audio header: the start of `snapshot`.
    pub(crate) fn headers(&self) -> impl Iterator<Item = &F> {
        self.metadata
            .iter()
            .chain(self.video_header.iter())
            .chain(self.audio_header.iter())
    }

    /// The position just past the GOP's last frame (see `appended`).
    pub(crate) fn end(&self) -> u64 {
        self.appended
    }

    /// The current GOP's position and frames: where a joiner starts.
    pub(crate) fn current(&self) -> (u64, impl Iterator<Item = &F>) {
        (self.front(), self.gop.iter())
    }

    /// The cached frames from position `pos` on (what is kept of the previous GOP, then the
    /// current one), with the position of the first: the oldest kept if `pos` was dropped
    /// meanwhile (a second key frame, a new header, the audio window moving on).
    pub(crate) fn gop_from(&self, pos: u64) -> (u64, impl Iterator<Item = &F>) {
        let front = self.front();
        let oldest = front - self.previous.len() as u64;
        let start = pos.max(oldest);
        let in_previous = usize::try_from(front.saturating_sub(start)).unwrap_or(usize::MAX);
        let skip_previous = self.previous.len() - in_previous.min(self.previous.len());
        let skip_gop = usize::try_from(start.saturating_sub(front)).unwrap_or(usize::MAX);
        let frames = self
            .previous
            .range(skip_previous..)
            .chain(self.gop.range(skip_gop.min(self.gop.len())..));
        (start, frames)
    }

    /// Joiners need nothing before position `pos` any more (`u64::MAX`: none catches up):
    /// what is kept of the previous GOP before it goes.
    pub(crate) fn keep_from(&mut self, pos: u64) {
        let oldest = self.front() - self.previous.len() as u64;
        let drop = usize::try_from(pos.saturating_sub(oldest))
            .unwrap_or(usize::MAX)
            .min(self.previous.len());
        if drop == self.previous.len() {
            self.previous.clear();
            self.previous_bytes = 0;
            return;
        }
        for f in self.previous.drain(..drop) {
            self.previous_bytes = self.previous_bytes.saturating_sub(f.size());
        }
    }

    /// Position of the current GOP's first frame.
    fn front(&self) -> u64 {
        self.appended - self.gop.len() as u64
    }

    /// `@clearDataFrame`: new viewers get no metadata until the publisher sends more.
    pub(crate) fn clear_metadata(&mut self) {
        self.metadata = None;
    }

    /// The publisher left: the next one may send anything.
    pub(crate) fn clear(&mut self) {
        self.metadata = None;
        self.video_header = None;
        self.audio_header = None;
        self.drop_gop();
        self.seen_video = false;
    }

    /// Whether the stream carries video (a video header or picture since the last `clear`).
    #[cfg(test)]
    pub(crate) fn has_video(&self) -> bool {
        self.seen_video
    }

    /// Frames and bytes cached (the GOP or audio window, and what is kept of the previous
    /// GOP), for statistics.
    pub(crate) fn gop_len(&self) -> (usize, usize) {
        (
            self.gop.len() + self.previous.len(),
            self.gop_bytes + self.previous_bytes,
        )
    }

    /// No usable GOP any more (a new configuration, a GOP past the limits): the previous
    /// one goes too, since a joiner going on through it would then have nothing to go on to
    /// but frames it may not decode.
    fn drop_gop(&mut self) {
        self.gop.clear();
        self.gop_bytes = 0;
        self.previous.clear();
        self.previous_bytes = 0;
        self.state = GopState::Waiting;
    }

    /// A key frame starts a new GOP: the current one becomes the previous (whatever was kept
    /// of the one before goes: a joiner still in it is two GOPs behind, and lags).
    fn retire_gop(&mut self) {
        if self.state == GopState::Open {
            self.previous = std::mem::take(&mut self.gop);
            self.previous_bytes = std::mem::replace(&mut self.gop_bytes, 0);
        } else {
            self.drop_gop();
        }
    }

    fn over_limits(&self) -> bool {
        self.gop.len() > self.limits.max_frames || self.gop_bytes > self.limits.max_bytes
    }

    fn append(&mut self, frame: &F) {
        self.gop.push_back(frame.clone());
        self.appended += 1;
        self.gop_bytes = self.gop_bytes.saturating_add(frame.size());
        if self.over_limits() {
            // A GOP that does not fit is useless: a viewer needs it from its key frame.
            // Keep metadata and headers; start again at the next key frame.
            self.drop_gop();
        }
    }

    /// Audio-only: keep the newest `AUDIO_ONLY_WINDOW_MS` of audio, within the limits,
    /// trimming from the front (every audio frame is a valid start).
    fn append_audio_only(&mut self, frame: &F) {
        self.gop.push_back(frame.clone());
        self.appended += 1;
        self.gop_bytes = self.gop_bytes.saturating_add(frame.size());
        let newest = frame.timestamp();
        while let Some(oldest) = self.gop.front() {
            // Wrapping-aware age; a timestamp from the future (a reset) counts as age 0, and
            // anything older than the window (or from before a reset far back) goes.
            let age = newest.wrapping_sub(oldest.timestamp()) as i32;
            let too_old = age > AUDIO_ONLY_WINDOW_MS as i32;
            if !(too_old || self.over_limits()) {
                break;
            }
            let size = oldest.size();
            self.gop.pop_front();
            self.gop_bytes = self.gop_bytes.saturating_sub(size);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A frame: kind, timestamp, size, and an id to check order.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct Frame(FrameKind, u32, usize, u32);

    impl CachedFrame for Frame {
        fn kind(&self) -> FrameKind {
            self.0
        }
        fn timestamp(&self) -> u32 {
            self.1
        }
        fn size(&self) -> usize {
            self.2
        }
    }

    use FrameKind::*;

    fn ids(cache: &GopCache<Frame>) -> Vec<u32> {
        cache.snapshot().map(|f| f.3).collect()
    }

    fn cache() -> GopCache<Frame> {
        GopCache::new(GopCacheLimits::default())
    }

    #[test]
    fn late_viewer_starts_on_key_frame() {
        let mut c = cache();
        for f in [
            Frame(Metadata, 0, 100, 1),
            Frame(VideoHeader, 0, 40, 2),
            Frame(AudioHeader, 0, 4, 3),
            Frame(Audio, 0, 10, 4), // before the first key frame: useless
            Frame(VideoKey, 0, 5000, 5),
            Frame(Audio, 20, 10, 6),
            Frame(VideoInter, 33, 800, 7),
            Frame(VideoKey, 2000, 5000, 8),
            Frame(Audio, 2010, 10, 9),
            Frame(VideoInter, 2033, 800, 10),
        ] {
            c.push(&f);
        }
        assert_eq!(ids(&c), [1, 2, 3, 8, 9, 10]);
        assert!(c.has_video());
        // The GOP before is kept until the caller says no joiner needs it.
        assert_eq!(c.gop_len(), (6, 11620));
        c.keep_from(u64::MAX);
        assert_eq!(c.gop_len(), (3, 5810));
    }

    fn ids_from(c: &GopCache<Frame>, pos: u64) -> (u64, Vec<u32>) {
        let (start, frames) = c.gop_from(pos);
        (start, frames.map(|f| f.3).collect())
    }

    #[test]
    fn joiners_go_on_through_the_previous_gop_as_far_as_kept() {
        let mut c = cache();
        c.push(&Frame(VideoHeader, 0, 40, 1));
        c.push(&Frame(VideoKey, 0, 500, 2)); // position 0
        c.push(&Frame(Audio, 10, 10, 3));
        c.push(&Frame(VideoInter, 40, 80, 4));
        c.push(&Frame(VideoKey, 1000, 500, 5)); // position 3
        c.push(&Frame(VideoInter, 1040, 80, 6));
        assert_eq!(c.current().0, 3);
        assert_eq!(ids_from(&c, 1), (1, vec![3, 4, 5, 6]));
        assert_eq!(ids_from(&c, 4), (4, vec![6]));
        assert_eq!(ids_from(&c, 6), (6, vec![]));
        c.keep_from(2);
        assert_eq!(ids_from(&c, 0), (2, vec![4, 5, 6]));
        assert_eq!(c.gop_len(), (3, 660));
        // A second key frame: a joiner still before it is two GOPs behind.
        c.push(&Frame(VideoKey, 2000, 500, 7)); // position 5
        assert_eq!(ids_from(&c, 2), (3, vec![5, 6, 7]));
        assert_eq!(ids(&c), [1, 7]);
        // A new configuration drops both.
        c.push(&Frame(VideoHeader, 2100, 40, 8));
        assert_eq!(c.gop_len(), (0, 0));
        assert_eq!(ids_from(&c, 0), (6, vec![]));
    }

    #[test]
    fn snapshot_orders_metadata_then_headers() {
        let mut c = cache();
        c.push(&Frame(AudioHeader, 0, 4, 1));
        c.push(&Frame(VideoHeader, 0, 40, 2));
        c.push(&Frame(Metadata, 0, 100, 3));
        c.push(&Frame(VideoKey, 0, 100, 4));
        assert_eq!(ids(&c), [3, 2, 1, 4]);
    }

    #[test]
    fn metadata_and_headers_replace_their_predecessors() {
        let mut c = cache();
        c.push(&Frame(Metadata, 0, 100, 1));
        c.push(&Frame(Metadata, 0, 100, 2));
        c.push(&Frame(AudioHeader, 0, 4, 3));
        c.push(&Frame(AudioHeader, 0, 4, 4));
        assert_eq!(ids(&c), [2, 4]);
    }

    #[test]
    fn new_video_header_waits_for_the_next_key_frame() {
        let mut c = cache();
        c.push(&Frame(VideoHeader, 0, 40, 1));
        c.push(&Frame(VideoKey, 0, 100, 2));
        c.push(&Frame(VideoHeader, 40, 40, 3));
        c.push(&Frame(VideoInter, 40, 100, 4));
        assert_eq!(ids(&c), [3]);
        c.push(&Frame(VideoKey, 80, 100, 5));
        assert_eq!(ids(&c), [3, 5]);
    }

    #[test]
    fn oversized_gop_is_dropped_until_next_key_frame_headers_kept() {
        let mut c = GopCache::new(GopCacheLimits {
            max_bytes: 1000,
            max_frames: 10,
        });
        c.push(&Frame(Metadata, 0, 10, 1));
        c.push(&Frame(VideoHeader, 0, 10, 2));
        c.push(&Frame(VideoKey, 0, 600, 3));
        c.push(&Frame(VideoInter, 33, 600, 4)); // 1200 > 1000
        assert_eq!(ids(&c), [1, 2]);
        c.push(&Frame(VideoInter, 66, 10, 5)); // still waiting
        c.push(&Frame(Audio, 70, 10, 6));
        assert_eq!(ids(&c), [1, 2]);
        c.push(&Frame(VideoKey, 100, 10, 7));
        assert_eq!(ids(&c), [1, 2, 7]);
        for i in 0..9 {
            c.push(&Frame(VideoInter, 133 + i, 1, 8 + i));
        }
        assert_eq!(c.gop_len().0, 10);
        c.push(&Frame(VideoInter, 200, 1, 100)); // 11 frames > 10
        assert_eq!(ids(&c), [1, 2]);
    }

    #[test]
    fn audio_only_stream_keeps_a_short_window() {
        let mut c = cache();
        c.push(&Frame(AudioHeader, 0, 4, 1));
        for i in 0..100u32 {
            c.push(&Frame(Audio, i * 23, 300, 10 + i));
        }
        assert!(!c.has_video());
        let snap: Vec<Frame> = c.snapshot().copied().collect();
        assert_eq!(snap[0].3, 1);
        let newest = 99 * 23;
        assert_eq!(snap.last().map(|f| f.3), Some(109));
        assert!(snap[1..]
            .iter()
            .all(|f| newest - f.1 <= AUDIO_ONLY_WINDOW_MS));
        // 1000 / 23 = 43 intervals: 44 frames fit in the window.
        assert_eq!(snap.len() - 1, 44);
    }

    #[test]
    fn audio_window_across_timestamp_wrap() {
        let mut c = cache();
        let start = u32::MAX - 500;
        for i in 0..100u32 {
            c.push(&Frame(Audio, start.wrapping_add(i * 23), 1, i));
        }
        assert_eq!(c.gop_len().0, 44);
    }

    #[test]
    fn video_arriving_ends_the_audio_window() {
        let mut c = cache();
        c.push(&Frame(Audio, 0, 1, 1));
        c.push(&Frame(VideoHeader, 10, 1, 2));
        c.push(&Frame(Audio, 20, 1, 3));
        assert_eq!(ids(&c), [2]);
        c.push(&Frame(VideoKey, 30, 1, 4));
        c.push(&Frame(Audio, 40, 1, 5));
        assert_eq!(ids(&c), [2, 4, 5]);
    }

    #[test]
    fn clear_forgets_everything() {
        let mut c = cache();
        c.push(&Frame(Metadata, 0, 1, 1));
        c.push(&Frame(VideoHeader, 0, 1, 2));
        c.push(&Frame(VideoKey, 0, 1, 3));
        c.clear();
        assert_eq!(ids(&c), Vec::<u32>::new());
        assert!(!c.has_video());
        // The next publisher may be audio-only.
        c.push(&Frame(Audio, 0, 1, 4));
        assert_eq!(ids(&c), [4]);
    }

    fn kind() -> impl Strategy<Value = FrameKind> {
        prop_oneof![
            Just(Metadata),
            Just(AudioHeader),
            Just(Audio),
            Just(VideoHeader),
            Just(VideoKey),
            Just(VideoInter),
            Just(VideoOther),
        ]
    }

    proptest! {
        /// Whatever arrives, the snapshot is metadata/headers then a GOP that (for video)
        /// starts on a key frame, is in arrival order and within the limits.
        #[test]
        fn snapshot_is_always_startable(
            frames in proptest::collection::vec((kind(), any::<u32>(), 0usize..400), 0..200)
        ) {
            let limits = GopCacheLimits { max_bytes: 2000, max_frames: 20 };
            let mut c = GopCache::new(limits);
            for (i, (k, ts, size)) in frames.into_iter().enumerate() {
                c.push(&Frame(k, ts, size, i as u32));
                let snap: Vec<Frame> = c.snapshot().copied().collect();
                let headers = snap.iter().take_while(|f| !f.0.is_droppable()).count();
                prop_assert!(headers <= 3);
                let gop = &snap[headers..];
                prop_assert!(gop.len() <= limits.max_frames);
                prop_assert!(gop.iter().map(|f| f.2).sum::<usize>() <= limits.max_bytes);
                prop_assert!(gop.windows(2).all(|w| w[0].3 < w[1].3));
                if c.has_video() {
                    if let Some(first) = gop.first() {
                        prop_assert_eq!(first.0, VideoKey);
                    }
                } else {
                    prop_assert!(gop.iter().all(|f| f.0 == Audio));
                }
            }
        }

        /// A joiner at any position gets every kept frame from there to the end, each
        /// once, in arrival order, and the kept previous GOP leads into the current key frame.
        #[test]
        fn gop_from_is_contiguous_to_the_end(
            frames in proptest::collection::vec(
                (kind(), 0usize..400, proptest::option::of(0u64..300)), 0..200)
        ) {
            let limits = GopCacheLimits { max_bytes: 2000, max_frames: 20 };
            let mut c = GopCache::new(limits);
            for (i, (k, size, keep)) in frames.into_iter().enumerate() {
                c.push(&Frame(k, 0, size, i as u32));
                if let Some(pos) = keep {
                    c.keep_from(pos);
                }
                for pos in [0, c.current().0.saturating_sub(1), c.current().0, c.end()] {
                    let (start, got) = c.gop_from(pos);
                    let got: Vec<Frame> = got.copied().collect();
                    prop_assert!(start >= pos.min(c.current().0));
                    prop_assert_eq!(got.len() as u64, c.end() - start);
                    prop_assert!(got.windows(2).all(|w| w[0].3 < w[1].3));
                    if start <= c.current().0 {
                        let current: Vec<Frame> = c.current().1.copied().collect();
                        prop_assert!(got.ends_with(&current));
                    }
                }
                let (frames, bytes) = c.gop_len();
                prop_assert!(frames <= 2 * (limits.max_frames + 1));
                prop_assert!(bytes <= 2 * (limits.max_bytes + 400));
            }
        }
    }
}
