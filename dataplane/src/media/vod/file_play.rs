//! One NetStream playing files: the current item's playback, the playlist items queued
//! behind it (`play` with reset false), and what the client is told at each turn. The
//! engine asks `poll` what to do, reads the sample it names from the file and hands it
//! to the viewer's queue (`play_status::sample_frame`); sans-IO like the rest of `media/`.

use std::collections::VecDeque;
use std::sync::Arc;

use super::index::MediaIndex;
use super::pacing::Pacing;
use super::play_status;
use super::playback::{Length, Next, Playback, DEFAULT_BUFFER_MS};
use crate::media::port::{ClientRef, Port};

/// AMS keeps playlists short; a bound keeps a client from queueing without end.
pub(crate) const MAX_PLAYLIST_ITEMS: usize = 64;

/// One `play` of a file.
pub(crate) struct Item {
    pub(crate) name: String,
    pub(crate) index: Arc<MediaIndex>,
    pub(crate) start_ms: u32,
    pub(crate) len: Length,
}

/// What the engine does next for this NetStream.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Turn {
    /// Read this sample of this file and send it (as `play_status::sample_frame`).
    Send(Arc<MediaIndex>, usize),
    /// Nothing is due before this clock time: set a timer.
    WaitUntil(u64),
    /// Paused, or the playlist ended: nothing until the client asks.
    Idle,
}

pub(crate) struct FilePlay {
    client: ClientRef,
    stream_id: u32,
    current: Option<(String, Playback)>,
    queued: VecDeque<Item>,
    buffer_ms: u32,
    pacing: Pacing,
}

impl FilePlay {
    pub(crate) fn new(client: ClientRef, stream_id: u32) -> Self {
        FilePlay {
            client,
            stream_id,
            current: None,
            queued: VecDeque::new(),
            buffer_ms: DEFAULT_BUFFER_MS,
            pacing: Pacing::EXACT,
        }
    }

    /// `play(name, start, len, reset)` of a file. `reset` replaces whatever plays or is
    /// queued; otherwise the item joins the playlist (and starts if nothing plays). False
    /// when the playlist is full.
    pub(crate) fn play<P: Port>(
        &mut self,
        item: Item,
        reset: bool,
        now: u64,
        port: &mut P,
    ) -> bool {
        if reset {
            self.queued.clear();
            self.current = None;
        }
        if self.current.is_some() {
            if self.queued.len() >= MAX_PLAYLIST_ITEMS {
                return false;
            }
            self.queued.push_back(item);
            return true;
        }
        self.begin(item, now, port, |port, c, s, name, index, at| {
            play_status::start(port, c, s, name, reset, index, at)
        });
        true
    }

    pub(crate) fn set_buffer(&mut self, ms: u32) {
        self.buffer_ms = ms;
        if let Some((_, p)) = &mut self.current {
            p.set_buffer(ms);
        }
    }

    /// How this play's items are paced (`Pacing::EXACT` unless set).
    pub(crate) fn set_pacing(&mut self, pacing: Pacing) {
        self.pacing = pacing;
        if let Some((_, p)) = &mut self.current {
            p.set_pacing(pacing);
        }
    }

    pub(crate) fn pause<P: Port>(&mut self, pause: bool, now: u64, port: &mut P) {
        let Some((name, p)) = &mut self.current else {
            return;
        };
        if pause {
            p.pause(now);
        } else {
            p.resume(now);
        }
        play_status::paused(port, self.client, self.stream_id, name, pause);
    }

    pub(crate) fn seek<P: Port>(&mut self, ms: u32, now: u64, port: &mut P) {
        let Some((name, p)) = &mut self.current else {
            return;
        };
        p.seek(ms, now);
        let at = p.position();
        play_status::seeked(port, self.client, self.stream_id, name, p.index(), at);
    }

    /// Takes back the sample `poll` just returned (see `Playback::unsend`).
    pub(crate) fn unsend(&mut self, i: usize) {
        if let Some((_, p)) = &mut self.current {
            p.unsend(i);
        }
    }

    /// The name of the item playing.
    pub(crate) fn current_name(&self) -> Option<&str> {
        self.current.as_ref().map(|(name, _)| name.as_str())
    }

    /// Whether an item plays (false once the playlist completed).
    pub(crate) fn is_playing(&self) -> bool {
        self.current.is_some()
    }

    /// Media time of the current item's last sample sent.
    #[cfg(test)]
    pub(crate) fn position(&self) -> Option<u32> {
        self.current.as_ref().map(|(_, p)| p.position())
    }

    /// What to do at clock time `now`: moves through the playlist, telling the client.
    pub(crate) fn poll<P: Port>(&mut self, now: u64, port: &mut P) -> Turn {
        // Bounded: each round either returns or drops one item of the finite playlist.
        loop {
            let Some((name, p)) = &mut self.current else {
                return Turn::Idle;
            };
            match p.poll(now) {
                Next::Send(i) => return Turn::Send(Arc::clone(p.index()), i),
                Next::WaitUntil(t) => return Turn::WaitUntil(t),
                Next::Paused => return Turn::Idle,
                Next::Complete => match self.queued.pop_front() {
                    Some(item) => self.begin(item, now, port, |port, c, s, _, index, at| {
                        play_status::switch(port, c, s, index, at)
                    }),
                    None => {
                        play_status::complete(port, self.client, self.stream_id, name, p.index());
                        self.current = None;
                    }
                },
            }
        }
    }

    fn begin<P: Port>(
        &mut self,
        item: Item,
        now: u64,
        port: &mut P,
        tell: impl FnOnce(&mut P, ClientRef, u32, &str, &MediaIndex, u32),
    ) {
        let mut playback = Playback::new(item.index, item.start_ms, item.len, now);
        playback.set_buffer(self.buffer_ms);
        playback.set_pacing(self.pacing);
        tell(
            port,
            self.client,
            self.stream_id,
            &item.name,
            playback.index(),
            playback.position(),
        );
        self.current = Some((item.name, playback));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::port::StreamEvent;
    use crate::media::port::Urgency;
    use crate::media::tag::FrameKind;
    use crate::media::test_port::{TestPort, Told};
    use crate::media::vod::content_path::FileFormat;
    use crate::media::vod::indexer::index_bytes;
    use crate::media::vod::play_status::sample_frame;

    const FLV: &[u8] = include_bytes!("testdata/avc_aac.flv");
    const C: ClientRef = ClientRef {
        slot: 1,
        generation: 1,
    };

    fn flv() -> Arc<MediaIndex> {
        Arc::new(index_bytes(FileFormat::Flv, FLV).expect("test file"))
    }

    fn item(name: &str, start_ms: u32, len: Length) -> Item {
        Item {
            name: name.into(),
            index: flv(),
            start_ms,
            len,
        }
    }

    /// Plays until idle, reading samples from the in-memory file as the engine would from
    /// disk, advancing the simulated clock to each wake-up; returns the frames' kinds.
    fn play_out(f: &mut FilePlay, port: &mut TestPort, mut now: u64) -> (Vec<FrameKind>, u64) {
        let mut kinds = Vec::new();
        for _ in 0..100_000 {
            match f.poll(now, port) {
                Turn::Send(index, i) => {
                    let s = index.samples[i];
                    let data = &FLV[s.offset as usize..][..s.size as usize];
                    let frame = sample_frame(&index, &s, bytes::Bytes::copy_from_slice(data));
                    kinds.push(frame.kind);
                    crate::media::port::Port::frame(port, C, 1, &frame, Urgency::Media);
                    port.drain();
                }
                Turn::WaitUntil(t) => {
                    assert!(t > now, "a wake-up in the future");
                    now = t;
                }
                Turn::Idle => return (kinds, now),
            }
        }
        panic!("the play never went idle");
    }

    fn data_names(port: &TestPort) -> Vec<String> {
        port.clients[&C]
            .told
            .iter()
            .filter_map(|t| match t {
                Told::Data(n) => Some(n.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_file_plays_out_in_real_time_with_its_statuses() {
        let mut port = TestPort::default();
        port.add(C);
        let mut f = FilePlay::new(C, 1);
        f.set_buffer(100);
        assert!(f.play(item("clip", 0, Length::ToEnd), true, 10_000, &mut port));
        let (kinds, end) = play_out(&mut f, &mut port, 10_000);
        assert_eq!(kinds[0], FrameKind::VideoKey);
        assert_eq!(kinds.len(), flv().samples.len());
        // Paced: the last sample (about 1 s in) went out a buffer's length before its time.
        assert!((10_900..=11_100).contains(&end), "{end}");
        assert_eq!(
            port.codes(C),
            [
                "NetStream.Play.Reset",
                "NetStream.Play.Start",
                "NetStream.Play.Stop"
            ]
        );
        assert_eq!(data_names(&port), ["|RtmpSampleAccess", "onPlayStatus"]);
        let told = &port.clients[&C].told;
        assert!(told.contains(&Told::Event(StreamEvent::Begin(1))));
        assert_eq!(told.last(), Some(&Told::Event(StreamEvent::Eof(1))));
        // Metadata and both sequence headers come before any sample.
        let headers: Vec<_> = told
            .iter()
            .filter_map(|t| match t {
                Told::Frame { kind, .. } => Some(*kind),
                _ => None,
            })
            .take(4)
            .collect();
        assert_eq!(
            headers,
            [
                FrameKind::Metadata,
                FrameKind::VideoHeader,
                FrameKind::AudioHeader,
                FrameKind::VideoKey
            ]
        );
    }

    #[test]
    fn a_three_item_playlist_switches_then_completes() {
        let mut port = TestPort::default();
        port.add(C);
        let mut f = FilePlay::new(C, 1);
        f.set_buffer(60_000);
        assert!(f.play(item("a", 0, Length::ToEnd), true, 0, &mut port));
        assert!(f.play(item("b", 400, Length::Ms(300)), false, 0, &mut port));
        assert!(f.play(item("c", 0, Length::SingleFrame), false, 0, &mut port));
        let (kinds, _) = play_out(&mut f, &mut port, 0);
        assert_eq!(
            port.codes(C),
            [
                "NetStream.Play.Reset",
                "NetStream.Play.Start",
                "NetStream.Play.Stop"
            ]
        );
        assert_eq!(
            data_names(&port),
            [
                "|RtmpSampleAccess",
                "onPlayStatus",
                "onPlayStatus",
                "onPlayStatus"
            ]
        );
        let keys = kinds.iter().filter(|k| **k == FrameKind::VideoKey).count();
        // a: 3 key frames; b: from 400 ms, the key frame there, to 700 ms; c: one frame.
        assert_eq!(keys, 3 + 1 + 1);
        assert_eq!(kinds.last(), Some(&FrameKind::VideoKey));
    }

    #[test]
    fn pause_and_seek_are_told_and_obeyed() {
        let mut port = TestPort::default();
        port.add(C);
        let mut f = FilePlay::new(C, 1);
        f.set_buffer(0);
        f.play(item("clip", 0, Length::ToEnd), true, 0, &mut port);
        let sent_by = |f: &mut FilePlay, port: &mut TestPort, now| {
            let mut n = 0;
            while let Turn::Send(..) = f.poll(now, port) {
                n += 1;
            }
            n
        };
        assert!(sent_by(&mut f, &mut port, 200) > 0);
        f.pause(true, 200, &mut port);
        assert_eq!(f.poll(5_000, &mut port), Turn::Idle);
        f.pause(false, 5_000, &mut port);
        assert!(matches!(
            f.poll(5_000, &mut port),
            Turn::WaitUntil(_) | Turn::Send(..)
        ));
        f.seek(500, 5_000, &mut port);
        assert_eq!(f.position(), Some(400), "the key frame at or before 500 ms");
        assert!(
            matches!(f.poll(5_000, &mut port), Turn::Send(_, i) if flv().samples[i].kind == FrameKind::VideoKey)
        );
        assert_eq!(
            port.codes(C),
            [
                "NetStream.Play.Reset",
                "NetStream.Play.Start",
                "NetStream.Pause.Notify",
                "NetStream.Unpause.Notify",
                "NetStream.Seek.Notify",
                "NetStream.Play.Start"
            ]
        );
    }

    #[test]
    fn not_found_has_the_ams_description() {
        let mut port = TestPort::default();
        port.add(C);
        play_status::not_found(&mut port, C, 1, "../etc/passwd");
        assert_eq!(
            port.clients[&C].told,
            [Told::Status {
                code: "NetStream.Play.StreamNotFound".into(),
                details: "../etc/passwd".into(),
                description: "Failed to play ../etc/passwd; stream not found.".into(),
            }]
        );
    }
}
