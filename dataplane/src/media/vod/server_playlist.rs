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
use super::playback::{Next, Playback};

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

/// A status for the script's `Stream.onStatus`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Status {
    pub(crate) code: &'static str,
    pub(crate) name: String,
}

struct Current {
    name: String,
    playback: Playback,
    /// Stream time minus media time for this item.
    offset: i64,
    headers_sent: bool,
}

pub(crate) struct ServerPlaylist {
    /// The clock time of stream time 0.
    origin: u64,
    current: Option<Current>,
    queued: VecDeque<Item>,
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
    pub(crate) fn play(&mut self, item: Item, reset: bool, now: u64) -> bool {
        if reset {
            if self.current.take().is_some() || !self.queued.is_empty() {
                self.status("NetStream.Play.Reset", &item.name);
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
        if let Some(c) = &mut self.current {
            c.playback.unsend(i);
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
        self.current
            .as_ref()
            .map(|c| Arc::clone(c.playback.index()))
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
            if !c.headers_sent {
                c.headers_sent = true;
                let at = stream_time(c.offset, c.playback.position());
                return Step::Headers(Arc::clone(c.playback.index()), at);
            }
            match c.playback.poll(now) {
                Next::Send(i) => {
                    let index = Arc::clone(c.playback.index());
                    let media = index.samples.get(i).map_or(0, |s| s.timestamp);
                    let at = stream_time(c.offset, media);
                    self.last = Some(self.last.map_or(at, |l| l.max(at)));
                    return Step::Send(index, i, at);
                }
                Next::WaitUntil(t) => return Step::WaitUntil(t),
                // A server stream is never paused.
                Next::Paused => return Step::Idle,
                Next::Complete => {
                    let name = c.name.clone();
                    self.current = None;
                    match self.queued.pop_front() {
                        Some(item) => self.begin(item, now, "NetStream.Play.Switch"),
                        None => self.status("NetStream.Play.Complete", &name),
                    }
                }
            }
        }
    }

    fn begin(&mut self, item: Item, now: u64, code: &'static str) {
        let mut playback = Playback::new(item.index, item.start_ms, item.len, now);
        // Real time: each sample at its own time; viewers buffer for themselves.
        playback.set_buffer(0);
        // The item starts at the clock's stream time, after anything already sent.
        let at = self
            .clock_time(now)
            .max(self.last.map_or(0, |l| l.saturating_add(1)));
        let offset = i64::from(at) - i64::from(playback.position());
        self.status(code, &item.name);
        self.current = Some(Current {
            name: item.name,
            playback,
            offset,
            headers_sent: false,
        });
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
    use crate::media::vod::playback::Length;

    const FLV: &[u8] = include_bytes!("testdata/avc_aac.flv");

    fn item(name: &str) -> Item {
        Item {
            name: name.into(),
            index: Arc::new(index_bytes(FileFormat::Flv, FLV).expect("test file")),
            start_ms: 0,
            len: Length::ToEnd,
        }
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
        let index = item("a").index;
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
}
