//! A server-side stream's playlist (a script's `Stream.get(name).play(...)`): files played
//! one after another, in real time, as the source of a live stream that every viewer joins
//! at the same point. Unlike a viewer's `FilePlay` there is no client to tell and no
//! buffer to fill ahead: each sample is due at its own time, and the items share one
//! timeline, each starting where the clock is (never before the last timestamp sent), so
//! timestamps keep growing across items. The engine publishes what `poll` names; the
//! statuses go to the script. Sans-IO like the rest of `media/`.

use std::collections::VecDeque;
use std::sync::Arc;

use super::file_play::{Item, MAX_PLAYLIST_ITEMS};
use super::index::MediaIndex;
use super::playback::{Length, Next, Playback};

/// What the engine does next for this stream.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    /// An item begins: publish its metadata and codec headers at this stream time.
    Headers(Arc<MediaIndex>, u32),
    /// Read this sample of this file and publish it at this stream time.
    Send(Arc<MediaIndex>, usize, u32),
    /// Nothing is due before this clock time: set a timer.
    WaitUntil(u64),
    /// The playlist ended (or is empty).
    Idle,
}

/// An item of the playlist: a file, or a live stream of the instance followed for `len`
/// (or until it is unpublished).
pub(crate) enum Entry {
    File(Item),
    Live { name: String, len: Length },
}

impl Entry {
    fn name(&self) -> &str {
        match self {
            Entry::File(item) => &item.name,
            Entry::Live { name, .. } => name,
        }
    }
}

/// A status for the script's `Stream.onStatus`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Status {
    pub(crate) code: &'static str,
    pub(crate) name: String,
}

struct Current {
    name: String,
    play: Playing,
}

enum Playing {
    File {
        playback: Playback,
        /// Stream time minus media time for this item.
        offset: i64,
        headers_sent: bool,
    },
    Live {
        /// Stream time minus the live stream's time, set by its first frame.
        offset: Option<i64>,
        /// The clock time the item ends (its `len`), if it has one.
        until: Option<u64>,
        /// The live stream was unpublished: the item is over.
        ended: bool,
    },
}

pub(crate) struct ServerPlaylist {
    /// The clock time of stream time 0.
    origin: u64,
    current: Option<Current>,
    queued: VecDeque<Entry>,
    /// The stream time of the last message published.
    last: Option<u32>,
    statuses: Vec<Status>,
}

impl ServerPlaylist {
    pub(crate) fn new(now: u64) -> Self {
        ServerPlaylist {
            origin: now,
            current: None,
            queued: VecDeque::new(),
            last: None,
            statuses: Vec::new(),
        }
    }

    /// `play(source, start, len, reset)`: `reset` replaces what plays and what is queued,
    /// else the item joins the playlist. False when the playlist is full.
    pub(crate) fn play(&mut self, item: Entry, reset: bool, now: u64) -> bool {
        if reset {
            if self.current.take().is_some() || !self.queued.is_empty() {
                self.status("NetStream.Play.Reset", item.name());
            }
            self.queued.clear();
        }
        if self.current.is_some() {
            if self.queued.len() >= MAX_PLAYLIST_ITEMS {
                return false;
            }
            self.queued.push_back(item);
            return true;
        }
        self.begin(item, now, "NetStream.Play.Start");
        true
    }

    /// `play(false)`: everything stops.
    pub(crate) fn stop(&mut self) {
        self.queued.clear();
        if let Some(c) = self.current.take() {
            self.status("NetStream.Play.Stop", &c.name);
        }
    }

    /// Takes back the sample `poll` just returned (it is read first, then polled again).
    pub(crate) fn unsend(&mut self, i: usize) {
        if let Some(Playing::File { playback, .. }) = self.current.as_mut().map(|c| &mut c.play) {
            playback.unsend(i);
        }
    }

    /// The live stream the item playing follows, if it is a live item.
    pub(crate) fn live_source(&self) -> Option<&str> {
        match &self.current {
            Some(Current {
                name,
                play: Playing::Live { ended: false, .. },
            }) => Some(name),
            _ => None,
        }
    }

    /// A frame of the followed live stream at its time `ts`: its stream time here. The
    /// first audio or video frame (`media`) sets the offset, so the item starts where the
    /// clock is; metadata and codec headers (whose timestamps say little, often 0) go at
    /// the stream's present time without setting it.
    pub(crate) fn live_frame(&mut self, ts: u32, media: bool, now: u64) -> Option<u32> {
        let start = self
            .clock_time(now)
            .max(self.last.map_or(0, |l| l.saturating_add(1)));
        let Some(Current {
            play: Playing::Live { offset, .. },
            ..
        }) = &mut self.current
        else {
            return None;
        };
        if !media && offset.is_none() {
            return Some(self.last.unwrap_or(start));
        }
        let offset = *offset.get_or_insert(i64::from(start) - i64::from(ts));
        let at = stream_time(offset, ts);
        self.last = Some(self.last.map_or(at, |l| l.max(at)));
        Some(at)
    }

    /// The followed live stream was unpublished: its item is over (at the next `poll`).
    pub(crate) fn live_ended(&mut self) {
        if let Some(Playing::Live { ended, .. }) = self.current.as_mut().map(|c| &mut c.play) {
            *ended = true;
        }
    }

    pub(crate) fn is_playing(&self) -> bool {
        self.current.is_some()
    }

    /// The item playing.
    #[cfg(test)]
    pub(crate) fn current_name(&self) -> Option<&str> {
        self.current.as_ref().map(|c| c.name.as_str())
    }

    /// The file of the item playing (the one a read `poll` asked for is from).
    pub(crate) fn current_index(&self) -> Option<Arc<MediaIndex>> {
        match &self.current.as_ref()?.play {
            Playing::File { playback, .. } => Some(Arc::clone(playback.index())),
            Playing::Live { .. } => None,
        }
    }

    /// The statuses since the last call, for the script.
    pub(crate) fn take_statuses(&mut self) -> Vec<Status> {
        std::mem::take(&mut self.statuses)
    }

    /// The stream time of a message sent now that is not a file's (a script's `send`).
    pub(crate) fn time_now(&self, now: u64) -> u32 {
        self.clock_time(now)
    }

    /// What to do at clock time `now`.
    pub(crate) fn poll(&mut self, now: u64) -> Step {
        // Bounded: each round returns or drops one item of the finite playlist.
        loop {
            let Some(c) = &mut self.current else {
                return Step::Idle;
            };
            match &mut c.play {
                Playing::File {
                    playback,
                    offset,
                    headers_sent,
                } => {
                    if !*headers_sent {
                        *headers_sent = true;
                        let at = stream_time(*offset, playback.position());
                        return Step::Headers(Arc::clone(playback.index()), at);
                    }
                    match playback.poll(now) {
                        Next::Send(i) => {
                            let index = Arc::clone(playback.index());
                            let media = index.samples.get(i).map_or(0, |s| s.timestamp);
                            let at = stream_time(*offset, media);
                            self.last = Some(self.last.map_or(at, |l| l.max(at)));
                            return Step::Send(index, i, at);
                        }
                        Next::WaitUntil(t) => return Step::WaitUntil(t),
                        // A server stream is never paused.
                        Next::Paused => return Step::Idle,
                        Next::Complete => {}
                    }
                }
                Playing::Live { until, ended, .. } => match *until {
                    _ if *ended => {}
                    Some(t) if t <= now => {}
                    Some(t) => return Step::WaitUntil(t),
                    // Frames come as the live stream sends them.
                    None => return Step::Idle,
                },
            }
            // The item is over: the next one, or the playlist's end.
            let name = c.name.clone();
            self.current = None;
            match self.queued.pop_front() {
                Some(item) => self.begin(item, now, "NetStream.Play.Switch"),
                None => self.status("NetStream.Play.Complete", &name),
            }
        }
    }

    fn begin(&mut self, item: Entry, now: u64, code: &'static str) {
        self.status(code, item.name());
        let (name, play) = match item {
            Entry::File(item) => {
                let mut playback = Playback::new(item.index, item.start_ms, item.len, now);
                // Real time: each sample at its own time; viewers buffer for themselves.
                playback.set_buffer(0);
                // The item starts at the clock's stream time, after anything already sent.
                let at = self
                    .clock_time(now)
                    .max(self.last.map_or(0, |l| l.saturating_add(1)));
                let offset = i64::from(at) - i64::from(playback.position());
                let play = Playing::File {
                    playback,
                    offset,
                    headers_sent: false,
                };
                (item.name, play)
            }
            Entry::Live { name, len } => {
                let until = match len {
                    Length::Ms(ms) => Some(now + u64::from(ms)),
                    Length::SingleFrame | Length::ToEnd => None,
                };
                let play = Playing::Live {
                    offset: None,
                    until,
                    ended: false,
                };
                (name, play)
            }
        };
        self.current = Some(Current { name, play });
    }

    fn clock_time(&self, now: u64) -> u32 {
        u32::try_from(now.saturating_sub(self.origin)).unwrap_or(u32::MAX)
    }

    fn status(&mut self, code: &'static str, name: &str) {
        self.statuses.push(Status {
            code,
            name: name.to_string(),
        });
    }
}

fn stream_time(offset: i64, media: u32) -> u32 {
    u32::try_from((i64::from(media) + offset).max(0)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::vod::content_path::FileFormat;
    use crate::media::vod::indexer::index_bytes;

    const FLV: &[u8] = include_bytes!("testdata/avc_aac.flv");

    fn file(name: &str) -> Item {
        Item {
            name: name.into(),
            index: Arc::new(index_bytes(FileFormat::Flv, FLV).expect("test file")),
            start_ms: 0,
            len: Length::ToEnd,
        }
    }

    fn item(name: &str) -> Entry {
        Entry::File(file(name))
    }

    /// Runs the playlist on a simulated clock until idle: (clock, stream time) of each
    /// sample published, and the number of header steps.
    fn run(p: &mut ServerPlaylist, mut now: u64) -> (Vec<(u64, u32)>, usize) {
        let (mut sent, mut headers) = (Vec::new(), 0);
        for _ in 0..100_000 {
            match p.poll(now) {
                Step::Headers(..) => headers += 1,
                Step::Send(_, _, at) => sent.push((now, at)),
                Step::WaitUntil(t) => {
                    assert!(t > now, "a wake-up in the future");
                    now = t;
                }
                Step::Idle => return (sent, headers),
            }
        }
        panic!("the playlist never ended");
    }

    #[test]
    fn items_play_in_sequence_on_one_growing_timeline_in_real_time() {
        let mut p = ServerPlaylist::new(1_000);
        assert!(p.play(item("a"), true, 1_000));
        assert!(p.play(item("b"), false, 1_000));
        let (sent, headers) = run(&mut p, 1_000);
        assert_eq!(headers, 2, "each item publishes its headers");
        let index = file("a").index;
        let end = index.samples.iter().map(|s| s.timestamp).max().unwrap_or(0);
        assert!(end > 500, "a test file of some length");
        let (first, last) = (sent[0], sent[sent.len() - 1]);
        assert_eq!(first.1, 0, "the stream starts at time 0");
        // Two items back to back, in real time: both span about twice the file.
        assert!(last.1 >= 2 * end, "{last:?} after 2 x {end}");
        for (clock, at) in &sent {
            let stream_clock = clock - 1_000;
            assert!(
                u64::from(*at).abs_diff(stream_clock) <= 50,
                "stream time {at} at clock {stream_clock}: paced in real time"
            );
        }
        // Video timestamps never go back across the switch.
        let mut prev = 0;
        for (_, at) in sent.iter().skip(1) {
            assert!(*at + 100 >= prev, "{at} after {prev}");
            prev = prev.max(*at);
        }
        let codes: Vec<_> = p.take_statuses().into_iter().map(|s| s.code).collect();
        assert_eq!(
            codes,
            [
                "NetStream.Play.Start",
                "NetStream.Play.Switch",
                "NetStream.Play.Complete"
            ]
        );
        assert!(!p.is_playing());
    }

    #[test]
    fn an_item_played_later_starts_at_the_clock_and_reset_replaces_the_playlist() {
        let mut p = ServerPlaylist::new(0);
        assert!(p.play(item("a"), true, 5_000));
        let Step::Headers(_, at) = p.poll(5_000) else {
            panic!("headers first");
        };
        assert_eq!(at, 5_000, "a stream started 5 s ago is at 5 s");
        assert!(p.play(item("b"), false, 5_000));
        assert!(p.play(item("c"), true, 5_000));
        assert_eq!(p.current_name(), Some("c"));
        let codes: Vec<_> = p.take_statuses().into_iter().map(|s| s.code).collect();
        assert_eq!(
            codes,
            [
                "NetStream.Play.Start",
                "NetStream.Play.Reset",
                "NetStream.Play.Start"
            ]
        );
        p.stop();
        assert_eq!(p.poll(5_000), Step::Idle);
    }

    #[test]
    fn a_live_item_follows_on_the_same_timeline_until_unpublished_or_its_length() {
        let mut p = ServerPlaylist::new(0);
        assert!(p.play(item("a"), true, 0));
        let live = |len| Entry::Live {
            name: "studio".into(),
            len,
        };
        assert!(p.play(live(Length::ToEnd), false, 0));
        assert!(p.play(live(Length::Ms(2_000)), false, 0));
        let (sent, _) = run(&mut p, 0);
        let file_end = sent.last().map_or(0, |x| x.1);
        // `run` stops at Idle: the first live item is waiting for frames.
        assert_eq!(p.live_source(), Some("studio"));
        let now = file_end as u64 + 40;
        // The studio's own clock is elsewhere: its first frame lands where the clock is.
        let header = p.live_frame(0, false, now).expect("live item");
        assert_eq!(header, file_end, "a header goes at the present time");
        let first = p.live_frame(90_000, true, now).expect("live item");
        assert_eq!(first, file_end + 40);
        assert_eq!(p.live_frame(90_040, true, now + 40), Some(first + 40));
        p.live_ended();
        assert_eq!(
            p.live_source(),
            None,
            "an unpublished stream is not followed"
        );
        // The next item, 2 s of the studio, starts and ends by the clock.
        let Step::WaitUntil(t) = p.poll(now + 100) else {
            panic!("a live item with a length waits for its end");
        };
        assert_eq!(t, now + 2_100);
        assert_eq!(p.live_source(), Some("studio"));
        let later = p.live_frame(10, true, now + 200).expect("live item");
        assert!(later > first + 40, "timestamps never go back: {later}");
        assert_eq!(p.poll(t), Step::Idle);
        let codes: Vec<_> = p.take_statuses().into_iter().map(|s| s.code).collect();
        assert_eq!(
            codes,
            [
                "NetStream.Play.Start",
                "NetStream.Play.Switch",
                "NetStream.Play.Switch",
                "NetStream.Play.Complete"
            ]
        );
    }
}
