//! One viewer's position in a file and its pacing, as AMS plays a recorded stream: start at
//! the key frame at or before the requested time, send ahead of real time up to the
//! client's buffer length (so a player starts at once), then one sample as each falls due;
//! stop at the end of the file or after `len`; pause, resume and seek. Sans-IO: the clock
//! is the millisecond time passed in, and the answer is which sample to send now or when
//! to ask again (the engine sets a timer for it).

use std::sync::Arc;

use super::index::MediaIndex;
use super::pacing::Pacing;
use crate::media::tag::FrameKind;

/// The buffer assumed until the client says (SetBufferLength): Flash's NetStream default is
/// 0.1 s, but players that never set one (ffmpeg) are served better by a second's lead.
pub(crate) const DEFAULT_BUFFER_MS: u32 = 1_000;
/// Most a viewer is sent ahead of real time, whatever buffer it asks for (rtmpdump asks
/// for ten hours): bounds each viewer's queued bytes and read-ahead.
pub(crate) const MAX_LEAD_MS: u32 = 60_000;

/// How long to play from the start point (`play`'s `len`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Length {
    /// -1 (or absent): to the end of the file.
    ToEnd,
    /// 0: the single frame at the start point.
    SingleFrame,
    /// This many milliseconds of media.
    Ms(u32),
}

impl Length {
    /// `play`'s `len` argument as it travels: milliseconds (Flash Player and librtmp send
    /// ms, like `start`; -1: to the end).
    pub(crate) fn from_wire(len: Option<f64>) -> Self {
        match len {
            Some(0.0) => Length::SingleFrame,
            Some(l) if l > 0.0 => Length::Ms(l.min(f64::from(u32::MAX)) as u32),
            _ => Length::ToEnd,
        }
    }
}

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Send this sample (index into `MediaIndex::samples`) now.
    Send(usize),
    /// Nothing is due before this clock time.
    WaitUntil(u64),
    /// Paused: nothing until resumed.
    Paused,
    /// The play reached its end: the file's, or its length's.
    Complete,
}

pub(crate) struct Playback {
    index: Arc<MediaIndex>,
    /// The next sample to send.
    next: usize,
    /// Media time after which nothing is sent (start + len); None: the end of the file.
    stop_at: Option<u32>,
    single_frame: bool,
    /// The clock time at which media time `origin_ts` plays.
    origin_clock: u64,
    origin_ts: u32,
    buffer_ms: u32,
    pacing: Pacing,
    paused_at: Option<u64>,
    /// Media time of the last sample sent (where a pause or a stop leaves the viewer).
    position: u32,
}

impl Playback {
    pub(crate) fn new(index: Arc<MediaIndex>, start_ms: u32, len: Length, now: u64) -> Self {
        let mut p = Playback {
            index,
            next: 0,
            stop_at: match len {
                Length::Ms(ms) => Some(start_ms.saturating_add(ms)),
                _ => None,
            },
            single_frame: len == Length::SingleFrame,
            origin_clock: now,
            origin_ts: 0,
            buffer_ms: DEFAULT_BUFFER_MS,
            pacing: Pacing::EXACT,
            paused_at: None,
            position: start_ms,
        };
        p.seek(start_ms, now);
        p
    }

    pub(crate) fn index(&self) -> &Arc<MediaIndex> {
        &self.index
    }

    /// The client's buffer length (SetBufferLength).
    pub(crate) fn set_buffer(&mut self, ms: u32) {
        self.buffer_ms = ms;
    }

    /// How wake-ups and the lead are paced (`Pacing::EXACT` unless set).
    pub(crate) fn set_pacing(&mut self, pacing: Pacing) {
        self.pacing = pacing;
    }

    /// Media time of the last sample sent.
    pub(crate) fn position(&self) -> u32 {
        self.position
    }

    /// Moves to the key frame at or before `ms`; sending starts again with a full lead.
    pub(crate) fn seek(&mut self, ms: u32, now: u64) {
        self.next = self.index.start_at(ms);
        self.origin_ts = self
            .index
            .samples
            .get(self.next)
            .map_or(ms, |s| s.timestamp);
        self.origin_clock = now;
        self.position = self.origin_ts;
        if self.paused_at.is_some() {
            self.paused_at = Some(now);
        }
    }

    pub(crate) fn pause(&mut self, now: u64) {
        self.paused_at.get_or_insert(now);
    }

    /// Resumes where it paused: the clock moves on by the time spent paused.
    pub(crate) fn resume(&mut self, now: u64) {
        if let Some(at) = self.paused_at.take() {
            self.origin_clock = self.origin_clock.saturating_add(now.saturating_sub(at));
        }
    }

    /// Takes back the sample `poll` just returned: the caller must read it first and will
    /// poll for it again.
    pub(crate) fn unsend(&mut self, i: usize) {
        self.next = i;
    }

    /// What to do at clock time `now`. Call until it says to wait.
    pub(crate) fn poll(&mut self, now: u64) -> Next {
        if self.paused_at.is_some() {
            return Next::Paused;
        }
        let Some(sample) = self.index.samples.get(self.next) else {
            return Next::Complete;
        };
        if self.stop_at.is_some_and(|stop| sample.timestamp > stop) {
            return Next::Complete;
        }
        if self.single_frame && self.next > self.index.start_at(self.position) {
            return Next::Complete;
        }
        let full = u64::from(self.buffer_ms.min(MAX_LEAD_MS));
        let lead = self
            .pacing
            .lead(self.buffer_ms, now.saturating_sub(self.origin_clock));
        let due = self.origin_clock + u64::from(sample.timestamp.saturating_sub(self.origin_ts));
        let due = due.saturating_sub(lead);
        if let Some(at) = self.pacing.wake(due, now, lead < full) {
            return Next::WaitUntil(at);
        }
        let i = self.next;
        self.next += 1;
        if matches!(
            sample.kind,
            FrameKind::VideoKey | FrameKind::VideoInter | FrameKind::Audio
        ) {
            self.position = sample.timestamp;
        }
        if self.single_frame {
            // One frame: the key frame only, whatever precedes or follows it.
            self.next = self.index.samples.len();
        }
        Next::Send(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::vod::index::Sample;
    use crate::media::vod::pacing::Pacing;

    /// 10 s at 25 fps with a key frame every second and audio every 20 ms.
    fn file() -> Arc<MediaIndex> {
        let mut samples = Vec::new();
        for ms in (0..10_000u32).step_by(20) {
            if ms % 40 == 0 {
                let kind = if ms % 1000 == 0 {
                    FrameKind::VideoKey
                } else {
                    FrameKind::VideoInter
                };
                samples.push(Sample {
                    offset: 0,
                    size: 100,
                    timestamp: ms,
                    composition: 0,
                    kind,
                    track: 0,
                });
            }
            samples.push(Sample {
                offset: 0,
                size: 10,
                timestamp: ms,
                composition: 0,
                kind: FrameKind::Audio,
                track: 0,
            });
        }
        Arc::new(MediaIndex::from_samples(samples))
    }

    /// Everything sent at `now`, and what it said after.
    fn run(p: &mut Playback, now: u64) -> (Vec<Sample>, Next) {
        let mut sent = Vec::new();
        for _ in 0..100_000 {
            match p.poll(now) {
                Next::Send(i) => sent.push(p.index().samples[i]),
                other => return (sent, other),
            }
        }
        panic!("poll never stopped sending");
    }

    #[test]
    fn sends_a_buffer_ahead_then_paces() {
        let mut p = Playback::new(file(), 0, Length::ToEnd, 5_000);
        p.set_buffer(2_000);
        let (sent, next) = run(&mut p, 5_000);
        assert_eq!(sent.first().map(|s| s.kind), Some(FrameKind::VideoKey));
        assert_eq!(sent.last().map(|s| s.timestamp), Some(2_000));
        assert_eq!(next, Next::WaitUntil(5_020));
        // 500 ms later, 500 ms more media.
        let (sent, _) = run(&mut p, 5_500);
        assert_eq!(sent.last().map(|s| s.timestamp), Some(2_500));
        // At the end of the file: complete.
        let (sent, next) = run(&mut p, 20_000);
        assert_eq!(sent.last().map(|s| s.timestamp), Some(9_980));
        assert_eq!(next, Next::Complete);
    }

    #[test]
    fn start_and_len_give_a_range_from_a_key_frame() {
        let mut p = Playback::new(file(), 3_500, Length::from_wire(Some(2000.0)), 0);
        let (sent, next) = run(&mut p, 1_000_000);
        assert_eq!(sent[0].kind, FrameKind::VideoKey);
        assert_eq!(sent[0].timestamp, 3_000);
        assert_eq!(sent.last().map(|s| s.timestamp), Some(5_500));
        assert_eq!(next, Next::Complete);
        let mut p = Playback::new(file(), 4_200, Length::from_wire(Some(0.0)), 0);
        let (sent, next) = run(&mut p, 1_000_000);
        assert_eq!(sent.len(), 1);
        assert_eq!(
            (sent[0].kind, sent[0].timestamp),
            (FrameKind::VideoKey, 4_000)
        );
        assert_eq!(next, Next::Complete);
    }

    #[test]
    fn pause_holds_and_resume_goes_on_from_there() {
        let mut p = Playback::new(file(), 0, Length::ToEnd, 0);
        p.set_buffer(0);
        run(&mut p, 1_000);
        assert_eq!(p.position(), 1_000);
        p.pause(1_000);
        assert_eq!(run(&mut p, 9_000).1, Next::Paused);
        p.resume(9_000);
        let (sent, _) = run(&mut p, 9_500);
        assert_eq!(sent.first().map(|s| s.timestamp), Some(1_020));
        assert_eq!(sent.last().map(|s| s.timestamp), Some(1_500));
    }

    #[test]
    fn seek_restarts_on_the_key_frame_at_or_before() {
        let mut p = Playback::new(file(), 0, Length::ToEnd, 0);
        p.set_buffer(100);
        run(&mut p, 0);
        p.seek(7_300, 50);
        let (sent, _) = run(&mut p, 50);
        assert_eq!(
            (sent[0].kind, sent[0].timestamp),
            (FrameKind::VideoKey, 7_000)
        );
        assert_eq!(sent.last().map(|s| s.timestamp), Some(7_100));
        // A seek past the end lands on the last key frame, and the play completes from there.
        p.seek(60_000, 60);
        let (sent, next) = run(&mut p, 100_000);
        assert_eq!(
            (sent[0].kind, sent[0].timestamp),
            (FrameKind::VideoKey, 9_000)
        );
        assert_eq!(next, Next::Complete);
    }

    #[test]
    fn ticked_pacing_sends_first_frames_first_then_the_buffer_in_rounds() {
        let mut p = Playback::new(file(), 0, Length::ToEnd, 1_000);
        p.set_buffer(3_000);
        p.set_pacing(Pacing {
            tick_ms: 100,
            ramp: 4,
        });
        // The first round: the key frame and what falls due within the coming tick.
        let (sent, next) = run(&mut p, 1_000);
        assert_eq!(sent[0].kind, FrameKind::VideoKey);
        assert_eq!(sent.last().map(|s| s.timestamp), Some(100));
        assert_eq!(next, Next::WaitUntil(1_100));
        // A round a tick, the lead four times the time played: 100 ms played, 400 ms lead.
        let (sent, next) = run(&mut p, 1_100);
        assert_eq!(sent.first().map(|s| s.timestamp), Some(120));
        assert_eq!(sent.last().map(|s| s.timestamp), Some(600));
        assert_eq!(next, Next::WaitUntil(1_200));
        // Woken only on ticks, every sample sent once and in order; the lead is full from
        // 750 ms played on.
        let mut now = 1_200;
        let mut last = 600;
        let mut wakes = 0;
        while now < 3_000 {
            let (sent, next) = run(&mut p, now);
            for s in &sent {
                assert!(s.timestamp >= last, "in order");
                last = s.timestamp;
            }
            wakes += 1;
            let Next::WaitUntil(at) = next else {
                panic!("{next:?}");
            };
            assert!(at > now && at % 100 == 0, "woken on a tick: {at}");
            now = at;
        }
        assert_eq!(wakes, 18, "one wake-up a tick");
        let (sent, _) = run(&mut p, 3_000);
        // 2 s played, 3 s lead, one tick early.
        assert_eq!(sent.last().map(|s| s.timestamp), Some(5_100));
    }

    #[test]
    fn a_huge_buffer_is_capped() {
        let mut p = Playback::new(file(), 0, Length::ToEnd, 0);
        p.set_buffer(36_000_000);
        let (sent, _) = run(&mut p, 0);
        assert_eq!(
            sent.len(),
            p.index().samples.len(),
            "10 s is within the cap"
        );
    }
}
