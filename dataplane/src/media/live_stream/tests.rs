//! Live stream semantics in memory: a `LiveStream`, an in-memory `Port` whose clients have
//! real send queues, and a simulated clock (the publisher's media timestamps, and a media
//! flush every `BATCH_MS` of them). No socket, no thread, no real time.

use bytes::Bytes;

use super::*;
use crate::media::send_queue::{QueueLimits, SendQueue};
use crate::media::test_port::{TestClient, TestPort, Told};
use crate::proto::rtmp::msg_type;

const BATCH_MS: u32 = 50;
const FPS: u32 = 25;
/// One key frame a second.
const GOP_FRAMES: u32 = 25;
const AUDIO_MS: u32 = 23;
const NS: u32 = 1;

/// One stream, its clients and the publisher's clock.
struct Sim {
    stream: LiveStream,
    port: TestPort,
    stopped: Stopped,
    next_client: u32,
    /// Media time of the next frame the publisher sends.
    now: u32,
    next_audio: u32,
    next_video: u32,
    video_frames: u32,
    since_flush: u32,
    /// Bytes of each picture (big ones make joiners catch up over several rounds).
    picture_bytes: usize,
    /// The publisher sends video (false: an audio-only stream).
    video: bool,
    /// `live.gop_cache`.
    gop_cache: bool,
}

fn media(type_id: u8, ts: u32, payload: &[u8]) -> MediaMessage {
    MediaMessage {
        timestamp: ts,
        type_id,
        payload: Bytes::copy_from_slice(payload),
    }
}

impl Sim {
    fn new() -> Sim {
        Sim {
            stream: LiveStream::new(StreamKey::new("live", "_definst_", "dir/cam")),
            port: TestPort::default(),
            stopped: Vec::new(),
            next_client: 0,
            now: 0,
            next_audio: 0,
            next_video: 0,
            video_frames: 0,
            since_flush: 0,
            picture_bytes: 6,
            video: true,
            gop_cache: true,
        }
    }

    /// The same stream's copy on another worker, its clock where `self`'s is.
    fn follower(&self) -> Sim {
        Sim {
            now: self.now,
            next_audio: self.next_audio,
            next_video: self.next_video,
            video_frames: self.video_frames,
            since_flush: self.since_flush,
            picture_bytes: self.picture_bytes,
            next_client: 2000,
            ..Sim::new()
        }
    }

    fn client(&mut self, reads: bool) -> ClientRef {
        self.next_client += 1;
        let c = ClientRef {
            slot: self.next_client,
            generation: 0,
        };
        let limits = QueueLimits {
            drop_lag_ms: 500,
            max_lag_ms: 3_000,
            max_bytes: QueueLimits::DEFAULT_MAX_BYTES,
        };
        self.port
            .clients
            .insert(c, TestClient::new(SendQueue::new(limits), reads));
        c
    }

    fn play_for(&mut self, c: ClientRef, duration_secs: f64) {
        let live = self.stream.is_live();
        let viewer = Viewer::new(c, NS, duration_secs, live);
        self.stream
            .add_viewer(viewer, false, &mut self.port, &mut self.stopped);
    }

    fn play(&mut self, c: ClientRef) {
        self.play_for(c, -1.0);
    }

    /// A publisher arrives: metadata and sequence headers first, as encoders send them.
    fn publish(&mut self) {
        let publisher = ClientRef {
            slot: 1000,
            generation: 0,
        };
        self.stream
            .publish_local(publisher, 1, 0.0, None, std::iter::empty());
        self.stream.went_live(&mut self.port, &mut self.stopped);
        self.video_frames = 0;
        self.send(media(msg_type::DATA_AMF0, self.now, &[2, 0, 10]));
        if self.video {
            self.send(media(msg_type::VIDEO, self.now, &[0x17, 0, 0, 0, 0, 1]));
        }
        self.send(media(msg_type::AUDIO, self.now, &[0xAF, 0, 0x12, 0x10]));
    }

    fn unpublish(&mut self) {
        self.stream.went_offline(&mut self.port, &mut self.stopped);
    }

    fn send(&mut self, m: MediaMessage) {
        self.stream
            .publish_frame(m, true, self.gop_cache, &mut self.port, &mut self.stopped);
    }

    /// The publisher sends `ms` of audio and video; the media flush runs every `BATCH_MS`
    /// and readers drain their queues after each.
    fn run(&mut self, ms: u32) {
        let end = self.now + ms;
        while self.now < end {
            if self.video && self.now >= self.next_video {
                let key = self.video_frames.is_multiple_of(GOP_FRAMES);
                let first = if key { 0x17 } else { 0x27 };
                let mut picture = vec![first, 1, 0, 0, 0, 9];
                picture.resize(self.picture_bytes.max(6), 9);
                self.send(media(msg_type::VIDEO, self.now, &picture));
                self.video_frames += 1;
                self.next_video += 1000 / FPS;
            }
            if self.now >= self.next_audio {
                self.send(media(msg_type::AUDIO, self.now, &[0xAF, 1, 7, 7]));
                self.next_audio += AUDIO_MS;
            }
            self.now += 1;
            self.since_flush += 1;
            if self.since_flush >= BATCH_MS {
                self.flush();
            }
        }
    }

    /// A loop turn with a media flush: a catch-up round for joiners, then the pending
    /// frames, and readers drain their queues.
    fn flush(&mut self) {
        self.since_flush = 0;
        self.stream.catch_up(&mut self.port, &mut self.stopped);
        self.stream.flush_pending(&mut self.port, &mut self.stopped);
        self.port.drain();
    }

    /// Every audio and video frame reached `c` at most once and in the stream's order, and
    /// its video has no gap except where its GOP rolled over (`rolled`: the key frames it
    /// may jump to).
    fn assert_in_order_once(&self, c: ClientRef, rolled: &[u32]) {
        let mut seen = std::collections::HashSet::new();
        let mut last = (0u32, 0u32);
        for (t, ts, kind) in self.frames(c) {
            if matches!(
                kind,
                FrameKind::VideoHeader | FrameKind::AudioHeader | FrameKind::Metadata
            ) {
                continue;
            }
            assert!(seen.insert((t, ts)), "type {t} at {ts} ms arrived twice");
            let last = if t == msg_type::VIDEO {
                &mut last.0
            } else {
                &mut last.1
            };
            assert!(ts >= *last, "type {t} at {ts} ms after {last} ms");
            *last = ts;
        }
        let video = self.video(c);
        for w in video.windows(2) {
            let step = w[1].0 - w[0].0;
            assert!(
                step == 1000 / FPS || (w[1].1 == FrameKind::VideoKey && rolled.contains(&w[1].0)),
                "gap {w:?} in {video:?}"
            );
        }
    }

    /// Where in the port's log each of `clients` got its first key frame (the last of
    /// those) and any first non-key audio or video frame (the first of those).
    fn last_key_first_other(&self, clients: &[ClientRef]) -> (usize, usize) {
        let ours: std::collections::HashSet<_> = clients.iter().collect();
        let mut keyed = std::collections::HashSet::new();
        let (mut last_key, mut first_other) = (0, usize::MAX);
        for (i, (c, kind)) in self.port.log.iter().enumerate() {
            if !ours.contains(c) {
                continue;
            }
            match kind {
                FrameKind::VideoKey if keyed.insert(*c) => last_key = i,
                FrameKind::Audio | FrameKind::VideoInter | FrameKind::VideoOther => {
                    first_other = first_other.min(i)
                }
                _ => {}
            }
        }
        assert_eq!(keyed.len(), clients.len(), "some joiner got no key frame");
        (last_key, first_other)
    }

    fn told(&self, c: ClientRef) -> &[Told] {
        &self.port.clients[&c].told
    }

    fn codes(&self, c: ClientRef) -> Vec<&str> {
        self.told(c)
            .iter()
            .filter_map(|t| match t {
                Told::Status { code, .. } => Some(code.as_str()),
                _ => None,
            })
            .collect()
    }

    fn frames(&self, c: ClientRef) -> Vec<(u8, u32, FrameKind)> {
        self.told(c)
            .iter()
            .filter_map(|t| match t {
                Told::Frame { type_id, ts, kind } => Some((*type_id, *ts, *kind)),
                _ => None,
            })
            .collect()
    }

    fn video(&self, c: ClientRef) -> Vec<(u32, FrameKind)> {
        self.frames(c)
            .into_iter()
            .filter(|(t, _, k)| *t == msg_type::VIDEO && *k != FrameKind::VideoHeader)
            .map(|(_, ts, k)| (ts, k))
            .collect()
    }

    /// Pauses `v` for a second of media (it must get none), unpauses it, runs another
    /// second, and returns the kind of the first picture it got after Unpause.Notify.
    fn pause_then_resume(&mut self, v: ClientRef) -> Option<FrameKind> {
        self.stream.pause_viewer(v, NS, true, &mut self.port);
        let n = self.frames(v).len();
        self.run(1_000);
        assert_eq!(self.frames(v).len(), n, "media while paused");
        self.stream.pause_viewer(v, NS, false, &mut self.port);
        self.run(1_000);
        self.after_status(v, "NetStream.Unpause.Notify")
            .iter()
            .find_map(|t| match t {
                Told::Frame {
                    type_id: msg_type::VIDEO,
                    kind,
                    ..
                } => Some(*kind),
                _ => None,
            })
    }

    fn after_status(&self, c: ClientRef, code: &str) -> Vec<Told> {
        let told = self.told(c);
        let at = told
            .iter()
            .position(|t| matches!(t, Told::Status { code: c, .. } if c == code))
            .unwrap_or_else(|| panic!("no {code} in {told:?}"));
        told[at + 1..].to_vec()
    }
}

#[test]
fn player_gets_begin_start_with_the_full_name_then_sample_access() {
    let mut sim = Sim::new();
    let v = sim.client(true);
    sim.play(v);
    assert_eq!(
        sim.told(v)[..3],
        [
            Told::Event(StreamEvent::Begin(NS)),
            Told::Status {
                code: "NetStream.Play.Start".into(),
                details: "dir/cam".into(),
                description: "Started playing dir/cam.".into()
            },
            Told::Data("|RtmpSampleAccess".into()),
        ]
    );
}

#[test]
fn early_player_gets_publish_notify_then_media() {
    let mut sim = Sim::new();
    let v = sim.client(true);
    sim.play(v);
    assert!(sim.frames(v).is_empty(), "media before anyone publishes");
    sim.publish();
    sim.run(1_000);
    assert_eq!(
        sim.codes(v),
        ["NetStream.Play.Start", "NetStream.Play.PublishNotify"]
    );
    let after = sim.after_status(v, "NetStream.Play.PublishNotify");
    let first_video = after.iter().find_map(|t| match t {
        Told::Frame {
            type_id: msg_type::VIDEO,
            kind,
            ..
        } if *kind != FrameKind::VideoHeader => Some(*kind),
        _ => None,
    });
    assert_eq!(first_video, Some(FrameKind::VideoKey));
    assert!(sim.frames(v).iter().any(|f| f.0 == msg_type::AUDIO));
}

#[test]
fn viewer_gets_unpublish_notify_and_the_next_publisher() {
    let mut sim = Sim::new();
    let v = sim.client(true);
    sim.publish();
    sim.run(300);
    sim.play(v);
    sim.run(700);
    sim.unpublish();
    let after = sim.after_status(v, "NetStream.Play.UnpublishNotify");
    assert!(after.is_empty(), "{after:?}");
    let told = sim.told(v);
    assert_eq!(
        told[told.len() - 2],
        Told::Event(StreamEvent::Eof(NS)),
        "Stream EOF comes before UnpublishNotify"
    );
    assert!(sim.stream.is_unused() || !sim.stream.viewers.is_empty());
    assert_eq!(
        sim.stream.viewers.len(),
        1,
        "the viewer waits for the next one"
    );

    sim.run(400); // nobody publishes: nothing arrives
    sim.publish();
    sim.run(600);
    let after = sim.after_status(v, "NetStream.Play.PublishNotify");
    assert!(after.iter().any(|t| matches!(
        t,
        Told::Frame {
            kind: FrameKind::VideoKey,
            ..
        }
    )));
}

#[test]
fn late_viewer_starts_on_key_frame() {
    let mut sim = Sim::new();
    sim.publish();
    sim.run(1_500); // mid-GOP
    let v = sim.client(true);
    sim.play(v);
    sim.run(1_000);
    let frames = sim.frames(v);
    let header_at = frames.iter().position(|f| f.2 == FrameKind::VideoHeader);
    let video = sim.video(v);
    assert!(header_at.is_some(), "the sequence header comes first");
    assert_eq!(video[0].1, FrameKind::VideoKey, "{video:?}");
    assert_eq!(
        video[0].0, 1_000,
        "the cached GOP starts at the last key frame"
    );
    // Fast start: the whole cached GOP, then live.
    assert!(video.windows(2).all(|w| w[0].0 < w[1].0));
}

#[test]
fn viewers_joining_mid_batch_get_each_frame_once() {
    let mut sim = Sim::new();
    sim.publish();
    sim.run(1_030);
    let mut viewers = Vec::new();
    for _ in 0..6 {
        // Joins at every point of a batch window, pending frames and all.
        let v = sim.client(true);
        sim.play(v);
        viewers.push(v);
        sim.run(7);
    }
    sim.run(1_000);
    for v in viewers {
        let mut seen = std::collections::HashSet::new();
        for (t, ts, kind) in sim.frames(v) {
            if matches!(
                kind,
                FrameKind::VideoHeader | FrameKind::AudioHeader | FrameKind::Metadata
            ) {
                continue;
            }
            assert!(seen.insert((t, ts)), "type {t} at {ts} ms arrived twice");
        }
        assert!(seen.len() > 60, "only {} frames", seen.len());
        // Nothing between the snapshot and the live edge is missing either.
        let video: Vec<u32> = sim.video(v).iter().map(|(ts, _)| *ts).collect();
        assert!(
            video.windows(2).all(|w| w[1] - w[0] == 1000 / FPS),
            "{video:?}"
        );
    }
}

#[test]
fn caught_up_viewers_get_each_batch_as_one_shared_buffer() {
    let mut sim = Sim::new();
    sim.publish();
    sim.run(1_000);
    let (a, b) = (sim.client(true), sim.client(true));
    sim.play(a);
    sim.play(b);
    sim.flush();
    let before = sim.port.clients[&a].batches;
    sim.run(1_000);
    let batches = sim.port.clients[&a].batches - before;
    assert_eq!(
        batches,
        (1_000 / BATCH_MS) as usize,
        "one queue item per batch"
    );
    assert_eq!(sim.port.clients[&b].batches - before, batches);
}

#[test]
fn stopped_reader_drops_to_key_frames_then_gets_insufficient_bw_and_is_closed() {
    let mut sim = Sim::new();
    sim.publish();
    let (slow, fast) = (sim.client(false), sim.client(true));
    sim.play(slow);
    sim.play(fast);
    sim.run(5_000);
    let client = &sim.port.clients[&slow];
    assert!(
        client.queue.dropped_frames() > 0,
        "lagging media is dropped first"
    );
    let reason = client.closed.clone().expect("the stopped reader is closed");
    assert!(reason.contains("InsufficientBW"), "{reason}");
    assert_eq!(
        sim.codes(slow).last().copied(),
        Some("NetStream.Play.InsufficientBW")
    );
    // Nothing is handed to a closed client, and the others carry on.
    let told = sim.after_status(slow, "NetStream.Play.InsufficientBW");
    assert!(told.is_empty(), "{told:?}");
    assert!(sim.port.clients[&fast].closed.is_none());
    assert!(sim.video(fast).last().is_some_and(|(ts, _)| *ts > 4_900));
}

#[test]
fn play_with_a_duration_stops_after_that_much_media() {
    let mut sim = Sim::new();
    sim.publish();
    sim.run(1_000);
    let v = sim.client(true);
    sim.play_for(v, 2.0);
    sim.run(4_000);
    let video = sim.video(v);
    let span = video.last().expect("video").0 - video[0].0;
    assert!((1_800..2_000).contains(&span), "played {span} ms");
    assert_eq!(sim.codes(v).last().copied(), Some("NetStream.Play.Stop"));
    assert!(sim.after_status(v, "NetStream.Play.Stop").is_empty());
    assert_eq!(sim.stopped, vec![(v, NS)], "the caller ends the play");
    assert!(sim.stream.viewers.is_empty());
}

#[test]
fn paused_viewer_gets_nothing_and_resumes_on_a_key_frame() {
    let mut sim = Sim::new();
    sim.publish();
    let v = sim.client(true);
    sim.play(v);
    sim.run(500);
    assert_eq!(sim.pause_then_resume(v), Some(FrameKind::VideoKey));
    assert!(sim.codes(v).contains(&"NetStream.Pause.Notify"));
}

#[test]
fn receive_video_false_keeps_audio_only() {
    let mut sim = Sim::new();
    sim.publish();
    let v = sim.client(true);
    sim.play(v);
    sim.run(300);
    if let Some(viewer) = sim.stream.viewer_mut(v, NS) {
        viewer.set_receive(None, Some(false));
    }
    let n = sim.video(v).len();
    sim.run(1_000);
    assert_eq!(sim.video(v).len(), n, "video after receiveVideo(false)");
    assert!(sim
        .frames(v)
        .iter()
        .rev()
        .take(10)
        .all(|f| f.0 == msg_type::AUDIO));
}

#[test]
fn other_workers_get_every_frame_once_while_the_publisher_is_here() {
    let mut sim = Sim::new();
    sim.publish();
    sim.run(200);
    assert!(sim.port.forwarded.is_empty());
    let (publish_id, snapshot) = sim.stream.add_worker(3).expect("local publisher");
    assert_eq!(publish_id, 1);
    assert!(!snapshot.is_empty(), "the GOP so far goes first");
    sim.run(200);
    let n = sim.port.forwarded.len();
    assert!(n > 10 && sim.port.forwarded.iter().all(|(w, _)| *w == 3));
    sim.stream.remove_worker(3);
    sim.run(200);
    assert_eq!(sim.port.forwarded.len(), n);
}

/// A 1 MB-class GOP: 30 KB pictures, 25 a second.
const BIG_PICTURE: usize = 30_000;

#[test]
fn with_500_joiners_in_one_batch_every_key_frame_goes_before_any_non_key_frame() {
    let mut sim = Sim::new();
    sim.picture_bytes = BIG_PICTURE;
    sim.publish();
    sim.run(1_900); // 900 ms into the GOP: ~700 KB of it cached
    sim.port.log.clear();
    let joiners: Vec<ClientRef> = (0..500).map(|_| sim.client(true)).collect();
    for &v in &joiners {
        sim.play(v);
    }
    let (last_key, first_other) = sim.last_key_first_other(&joiners);
    assert!(
        last_key < first_other,
        "a joiner's non-key frame (at {first_other}) before another's key frame (at {last_key})"
    );
    sim.flush();
    assert!(
        sim.stream.is_catching_up(),
        "the GOP is handed over in rounds, not at once"
    );
    sim.run(2_000);
    assert!(!sim.stream.is_catching_up());
    assert_eq!(sim.stream.viewers.len(), 500);
    for &v in &joiners {
        assert_eq!(sim.video(v)[0], (1_000, FrameKind::VideoKey));
        sim.assert_in_order_once(v, &[2_000]);
    }
}

#[test]
fn joiner_catching_up_while_the_gop_rolls_over_goes_on_through_it_into_the_new_key_frame() {
    let mut sim = Sim::new();
    sim.picture_bytes = BIG_PICTURE;
    sim.publish();
    sim.run(1_900);
    let v = sim.client(true);
    sim.play(v);
    sim.run(90); // a few rounds, not the whole GOP
    assert!(sim.stream.is_catching_up());
    sim.run(1_000); // the key frame at 2 s ends the GOP it was taking
    assert!(!sim.stream.is_catching_up());
    let video = sim.video(v);
    assert_eq!(video[0], (1_000, FrameKind::VideoKey));
    assert!(
        video.contains(&(1_960, FrameKind::VideoInter)),
        "the old GOP's end too: {video:?}"
    );
    assert!(video.contains(&(2_000, FrameKind::VideoKey)), "{video:?}");
    sim.assert_in_order_once(v, &[]);
    assert!(sim.video(v).last().is_some_and(|(ts, _)| *ts > 2_900));
    assert_eq!(
        sim.stream.gop.gop_len().0,
        sim.stream.gop.current().1.count()
    );
}

/// A join storm's last joiners: their first round is still unsent when the GOP ends.
#[test]
fn joiner_whose_round_is_still_unsent_when_the_gop_ends_goes_on_without_a_gap() {
    let mut sim = Sim::new();
    sim.picture_bytes = BIG_PICTURE;
    sim.publish();
    sim.run(1_900);
    let v = sim.client(false);
    sim.play(v);
    sim.run(200); // the key frame at 2 s comes while its transport takes nothing
    assert!(sim.stream.is_catching_up());
    // Its transport writes again: the send in flight completes, and it reads from now on.
    let c = sim.port.clients.get_mut(&v).expect("client");
    c.queue.complete(usize::MAX);
    c.reads = true;
    sim.run(1_000);
    assert!(!sim.stream.is_catching_up());
    let video = sim.video(v);
    assert_eq!(video[0], (1_000, FrameKind::VideoKey));
    assert!(video.contains(&(2_000, FrameKind::VideoKey)), "{video:?}");
    sim.assert_in_order_once(v, &[]);
    assert!(video.last().is_some_and(|(ts, _)| *ts > 2_900), "{video:?}");
    assert_eq!(sim.port.clients[&v].queue.dropped_frames(), 0);
}

#[test]
fn joiner_catching_up_when_the_publisher_leaves_gets_its_gop_then_the_end() {
    let mut sim = Sim::new();
    sim.picture_bytes = BIG_PICTURE;
    sim.publish();
    sim.run(1_900);
    let v = sim.client(true);
    sim.play(v);
    sim.flush();
    assert!(sim.stream.is_catching_up());
    sim.unpublish();
    assert!(!sim.stream.is_catching_up());
    assert!(sim
        .after_status(v, "NetStream.Play.UnpublishNotify")
        .is_empty());
    let video = sim.video(v);
    assert_eq!(video.first(), Some(&(1_000, FrameKind::VideoKey)));
    assert_eq!(video.last().map(|f| f.0), Some(1_880), "{video:?}");
    sim.assert_in_order_once(v, &[]);
    // It waits for the next publisher like any viewer.
    sim.publish();
    sim.run(600);
    let after = sim.after_status(v, "NetStream.Play.PublishNotify");
    assert!(after.iter().any(|t| matches!(
        t,
        Told::Frame {
            kind: FrameKind::VideoKey,
            ..
        }
    )));
}

#[test]
fn joiner_paused_while_catching_up_gets_nothing_then_resumes_on_a_key_frame() {
    let mut sim = Sim::new();
    sim.picture_bytes = BIG_PICTURE;
    sim.publish();
    sim.run(1_900);
    let v = sim.client(true);
    sim.play(v);
    sim.flush();
    assert!(sim.stream.is_catching_up());
    assert_eq!(sim.pause_then_resume(v), Some(FrameKind::VideoKey));
    sim.assert_in_order_once(v, &[3_000, 4_000]);
}

#[test]
fn joiner_turning_video_off_while_catching_up_gets_audio_only() {
    let mut sim = Sim::new();
    sim.picture_bytes = BIG_PICTURE;
    sim.publish();
    sim.run(1_900);
    let v = sim.client(true);
    sim.play(v);
    sim.flush();
    assert!(sim.stream.is_catching_up());
    if let Some(viewer) = sim.stream.viewer_mut(v, NS) {
        viewer.set_receive(None, Some(false));
    }
    let n = sim.video(v).len();
    sim.run(1_000);
    assert!(!sim.stream.is_catching_up());
    assert_eq!(sim.video(v).len(), n, "video after receiveVideo(false)");
    assert!(sim
        .frames(v)
        .iter()
        .rev()
        .take(10)
        .all(|f| f.0 == msg_type::AUDIO));
    sim.assert_in_order_once(v, &[]);
}

#[test]
fn joiner_whose_play_duration_ends_while_catching_up_stops() {
    let mut sim = Sim::new();
    sim.picture_bytes = BIG_PICTURE;
    sim.publish();
    sim.run(1_900);
    let v = sim.client(true);
    sim.play_for(v, 0.3);
    sim.run(1_000);
    let video = sim.video(v);
    let span = video.last().expect("video").0 - video[0].0;
    assert!((200..300).contains(&span), "played {span} ms");
    assert_eq!(sim.codes(v).last().copied(), Some("NetStream.Play.Stop"));
    assert!(sim.after_status(v, "NetStream.Play.Stop").is_empty());
    assert_eq!(sim.stopped, vec![(v, NS)], "the caller ends the play");
    assert_eq!(sim.stream.viewer_count(), 0);
}

#[test]
fn joiners_of_an_audio_only_stream_catch_up_on_its_audio_window() {
    let mut sim = Sim::new();
    sim.video = false;
    sim.publish();
    sim.run(1_500);
    let joiners: Vec<ClientRef> = (0..20).map(|_| sim.client(true)).collect();
    for &v in &joiners {
        sim.play(v);
    }
    sim.run(1_000);
    assert!(!sim.stream.is_catching_up());
    for &v in &joiners {
        let frames = sim.frames(v);
        let audio = frames.iter().filter(|f| f.2 == FrameKind::Audio).count();
        assert!(audio > 80, "only {audio} audio frames");
        assert!(sim.video(v).is_empty());
        sim.assert_in_order_once(v, &[]);
    }
}

#[test]
fn joiner_without_a_gop_cache_is_caught_up_at_once_and_starts_on_a_key_frame() {
    let mut sim = Sim::new();
    sim.gop_cache = false;
    sim.picture_bytes = BIG_PICTURE;
    sim.publish();
    sim.run(1_500);
    let v = sim.client(true);
    sim.play(v);
    assert!(!sim.stream.is_catching_up(), "nothing to catch up on");
    sim.run(1_000);
    let video = sim.video(v);
    assert_eq!(video[0], (2_000, FrameKind::VideoKey));
    sim.assert_in_order_once(v, &[]);
}

#[test]
fn viewers_on_another_worker_get_key_frames_first_then_catch_up() {
    let mut origin = Sim::new();
    origin.picture_bytes = BIG_PICTURE;
    origin.publish();
    origin.run(1_900);
    let mut sim = origin.follower();
    let viewers: Vec<ClientRef> = (0..50).map(|_| sim.client(true)).collect();
    for &v in &viewers {
        sim.play(v); // not live here yet: they wait
    }
    let (publish_id, snapshot) = origin.stream.add_worker(3).expect("local publisher");
    assert!(sim.stream.follow_remote(publish_id, snapshot));
    sim.stream.went_live(&mut sim.port, &mut sim.stopped);
    let (last_key, first_other) = sim.last_key_first_other(&viewers);
    assert!(last_key < first_other, "{first_other} before {last_key}");
    assert!(sim.stream.is_catching_up());
    sim.run(1_000);
    assert!(!sim.stream.is_catching_up());
    for &v in &viewers {
        assert_eq!(sim.video(v)[0], (1_000, FrameKind::VideoKey));
        sim.assert_in_order_once(v, &[2_000]);
    }
}

#[test]
fn a_catch_up_round_hands_each_joiner_at_most_its_budget() {
    let mut sim = Sim::new();
    sim.picture_bytes = BIG_PICTURE;
    sim.publish();
    sim.run(1_900);
    let joiners: Vec<ClientRef> = (0..10).map(|_| sim.client(true)).collect();
    for &v in &joiners {
        sim.play(v);
    }
    let before: Vec<usize> = joiners.iter().map(|&v| sim.video(v).len()).collect();
    assert!(before.iter().all(|n| *n == 1), "only the key frame at once");
    sim.stream.catch_up(&mut sim.port, &mut sim.stopped);
    let most = catch_up::CATCH_UP_BYTES_PER_ROUND / BIG_PICTURE + 1;
    for &v in &joiners {
        let got = sim.video(v).len() - 1;
        assert!((1..=most).contains(&got), "{got} pictures in one round");
    }
    assert!(sim.stream.is_catching_up());
}

#[test]
fn clear_data_frame_drops_the_kept_metadata_here_and_on_other_workers() {
    let mut sim = Sim::new();
    sim.publish();
    sim.run(200);
    sim.stream.add_worker(3).expect("local publisher");
    let has_metadata = |s: &LiveStream| s.gop.snapshot().any(|f| f.type_id == msg_type::DATA_AMF0);
    assert!(has_metadata(&sim.stream));
    let forwarded = sim.port.forwarded.len();
    let viewer = sim.client(true);
    sim.play(viewer);
    let seen = sim.frames(viewer).len();
    sim.stream.clear_metadata(
        media(msg_type::DATA_AMF0, sim.now, &[2, 0, 1, b'@']),
        &mut sim.port,
    );
    assert!(!has_metadata(&sim.stream), "a late joiner gets no metadata");
    assert_eq!(
        sim.port.forwarded.len(),
        forwarded + 1,
        "the other worker is told"
    );
    assert_eq!(sim.frames(viewer).len(), seen, "viewers are sent nothing");
}

/// A recording is one more sink: it gets every frame the publisher sends, in order, with
/// or without viewers and whatever they drop; one that starts mid-stream first gets the
/// metadata and headers a file needs; removed, it gets nothing more.
#[test]
fn a_recorder_gets_every_frame_in_order() {
    use crate::media::recorder::RecorderRef;
    let mut sim = Sim::new();
    let r = RecorderRef {
        slot: 1,
        generation: 0,
    };
    sim.publish();
    assert!(
        sim.stream.add_recorder(r).len() >= 3,
        "metadata and both headers first"
    );
    let slow = sim.client(false);
    sim.play(slow);
    let before = sim.port.recorded.len();
    sim.run(2000);
    let recorded: Vec<u32> = sim.port.recorded[before..]
        .iter()
        .map(|(_, _, ts)| *ts)
        .collect();
    assert!(
        recorded.len() > 2 * FPS as usize,
        "every frame: {}",
        recorded.len()
    );
    assert!(recorded.windows(2).all(|w| w[0] <= w[1]), "in order");
    assert!(sim.port.recorded.iter().all(|(to, _, _)| *to == r));
    sim.stream.remove_recorder(r);
    let after = sim.port.recorded.len();
    sim.run(500);
    assert_eq!(sim.port.recorded.len(), after, "nothing after removal");
    // Not while nobody publishes here.
    sim.unpublish();
    assert!(sim.stream.add_recorder(r).is_empty());
    assert!(!sim.stream.sinks.contains(&Sink::Recorder(r)));
}

/// Multicast outputs are one more sink: added mid-stream they start from the GOP cache (a
/// key frame first among the pictures), then get every frame, whatever viewers drop;
/// removed, nothing more; not while nobody publishes here.
#[test]
fn multicast_outputs_start_from_the_gop_cache_then_get_every_frame() {
    let mut sim = Sim::new();
    sim.publish();
    sim.run(1000);
    let start = sim.stream.add_multicast();
    let first_picture = start
        .iter()
        .find(|f| matches!(f.kind, FrameKind::VideoKey | FrameKind::VideoInter));
    assert_eq!(first_picture.map(|f| f.kind), Some(FrameKind::VideoKey));
    assert!(sim.stream.add_multicast().is_empty(), "one sink per stream");
    let slow = sim.client(false);
    sim.play(slow);
    sim.run(2000);
    let sent: Vec<u32> = sim.port.multicast.iter().map(|(_, _, ts)| *ts).collect();
    assert!(sent.len() > 2 * FPS as usize, "every frame: {}", sent.len());
    assert!(sent.windows(2).all(|w| w[0] <= w[1]), "in order");
    assert!(sim
        .port
        .multicast
        .iter()
        .all(|(key, _, _)| key == &sim.stream.key.to_string()));
    sim.stream.remove_multicast();
    let after = sim.port.multicast.len();
    sim.run(500);
    assert_eq!(sim.port.multicast.len(), after, "nothing after removal");
    sim.unpublish();
    assert!(sim.stream.add_multicast().is_empty());
    assert!(!sim.stream.sinks.contains(&Sink::Multicast));
}

#[test]
fn an_upstream_link_feeds_like_a_publisher_and_a_relink_costs_viewers_no_status() {
    let mut sim = Sim::new();
    let early = sim.client(true);
    sim.play(early);
    let link = |slot| ClientRef {
        slot,
        generation: 0,
    };
    sim.stream
        .publish_upstream(link(500), 7, 0.0, None, std::iter::empty());
    assert_eq!(sim.stream.source.here(), Some((link(500), 7)));
    assert!(
        !sim.stream.is_unused(),
        "a pulled stream stays while linked"
    );
    sim.stream.went_live(&mut sim.port, &mut sim.stopped);
    sim.send(media(msg_type::DATA_AMF0, 0, &[2, 0, 10]));
    sim.send(media(msg_type::VIDEO, 0, &[0x17, 0, 0, 0, 0, 1]));
    sim.send(media(msg_type::AUDIO, 0, &[0xAF, 0, 0x12, 0x10]));
    sim.run(1_000);
    // Another worker's viewers follow a pulled stream as a local one.
    assert_eq!(sim.stream.add_worker(3).map(|(id, _)| id), Some(7));

    // Failover: the source moves to another link, same publish; viewers are told nothing.
    let codes_before = sim.codes(early).len();
    let frames_before = sim.video(early).len();
    sim.stream.relink(link(600));
    assert_eq!(sim.stream.source.here(), Some((link(600), 7)));
    sim.run(1_000);
    assert_eq!(
        sim.codes(early).len(),
        codes_before,
        "{:?}",
        sim.codes(early)
    );
    assert!(
        sim.video(early).len() > frames_before,
        "media stopped after the relink"
    );
    let video = sim.video(early);
    assert!(
        video.windows(2).all(|w| w[1].0 > w[0].0),
        "video timestamps rise across the relink"
    );

    // A late viewer joins the relinked stream on a key frame.
    let late = sim.client(true);
    sim.play(late);
    sim.run(1_000);
    assert_eq!(
        sim.video(late).first().map(|(_, k)| *k),
        Some(FrameKind::VideoKey)
    );
}

#[test]
fn a_joiner_gets_its_next_round_only_once_the_last_is_out_and_lags_like_any_viewer_if_never() {
    let mut sim = Sim::new();
    sim.picture_bytes = BIG_PICTURE;
    sim.publish();
    sim.run(1_700); // 700 ms into the GOP: ~20 pictures of 30 KB cached
    let stuck = sim.client(false);
    let reader = sim.client(true);
    sim.play(stuck);
    sim.play(reader);
    sim.run(200); // four loop turns: four rounds for a joiner whose transport keeps up
    let most = catch_up::CATCH_UP_BYTES_PER_ROUND / BIG_PICTURE + 1;
    let stuck_got = sim.video(stuck).len() - 1;
    assert!(
        (1..=most).contains(&stuck_got),
        "one round while nothing was written: {stuck_got} pictures"
    );
    assert!(
        sim.video(reader).len() - 1 > most,
        "a reader takes a round per turn"
    );
    assert!(sim.stream.is_catching_up());
    // The GOP it was taking rolls over: it becomes a lagging viewer under the usual policy,
    // its media dropped until a key frame, never the old GOP's rest.
    sim.run(5_000);
    assert!(!sim.stream.is_catching_up());
    assert!(sim.stream.viewers.len() == 2);
    let video = sim.video(stuck);
    assert_eq!(video[0], (1_000, FrameKind::VideoKey));
    assert_eq!(video[stuck_got + 1].1, FrameKind::VideoKey, "{video:?}");
    assert!(video[stuck_got + 1].0 >= 2_000, "{video:?}");
    assert!(sim.port.clients[&stuck].queue.dropped_frames() > 0);
    assert!(sim.port.clients[&reader].closed.is_none());
    sim.assert_in_order_once(reader, &[2_000]);
}

/// A push target's message stream (what its createStream answered).
const PUSH_NS: u32 = 7;

#[test]
fn a_push_starts_with_headers_and_the_gop_then_gets_every_frame_and_no_statuses() {
    let mut sim = Sim::new();
    sim.publish();
    sim.run(1_500);
    let push = sim.client(true);
    sim.stream.add_push(push, PUSH_NS, &mut sim.port);
    // Added twice (a repeated Publish.Start) it is still one sink.
    sim.stream.add_push(push, PUSH_NS, &mut sim.port);
    let first: Vec<FrameKind> = sim.frames(push).iter().take(4).map(|f| f.2).collect();
    assert_eq!(
        first,
        [
            FrameKind::Metadata,
            FrameKind::VideoHeader,
            FrameKind::AudioHeader,
            FrameKind::VideoKey
        ]
    );
    assert_eq!(
        sim.video(push)[0],
        (1_000, FrameKind::VideoKey),
        "the GOP's key frame"
    );
    sim.run(2_000);
    // Every frame once, in order, no gap: the GOP, then live.
    sim.assert_in_order_once(push, &[]);
    let video = sim.video(push);
    assert!(video.last().is_some_and(|(ts, _)| *ts > 3_400), "{video:?}");
    // A target is a server: it is told nothing but the stream (no Play statuses, no
    // stream events), and it is not a viewer.
    assert!(
        sim.told(push)
            .iter()
            .all(|t| matches!(t, Told::Frame { .. })),
        "{:?}",
        sim.told(push)
    );
    assert!(sim.stream.viewers.is_empty() && sim.stream.viewer_count() == 0);
    // Removed (its connection closed), it gets nothing more.
    sim.stream.remove_push(push);
    let n = sim.frames(push).len();
    sim.run(1_000);
    assert_eq!(sim.frames(push).len(), n);
}

#[test]
fn a_push_is_only_for_a_local_publisher() {
    let mut sim = Sim::new();
    let push = sim.client(true);
    sim.stream.add_push(push, PUSH_NS, &mut sim.port);
    sim.publish();
    sim.run(500);
    assert!(sim.frames(push).is_empty(), "added before the publish");
    // The publisher leaves: the sinks go with it.
    sim.stream.add_push(push, PUSH_NS, &mut sim.port);
    sim.unpublish();
    let n = sim.frames(push).len();
    sim.publish();
    sim.run(500);
    assert_eq!(sim.frames(push).len(), n, "a push outlived its publish");
}

#[test]
fn a_slow_push_target_drops_to_the_next_key_frame_while_the_publisher_and_viewers_go_on() {
    let mut sim = Sim::new();
    sim.publish();
    let (push, viewer) = (sim.client(true), sim.client(true));
    sim.play(viewer);
    sim.run(1_000);
    sim.stream.add_push(push, PUSH_NS, &mut sim.port);
    sim.run(500);
    // The target stops reading for 1.2 s (past the queue's 500 ms drop lag), then reads
    // again: what waited in its queue is dropped, and it resumes on a key frame.
    sim.port.clients.get_mut(&push).expect("push").reads = false;
    sim.run(1_200);
    let q = &mut sim.port.clients.get_mut(&push).expect("push").queue;
    assert!(q.dropped_frames() > 0, "a slow target's media is dropped");
    let in_flight = q.in_flight_bytes();
    q.complete(in_flight);
    sim.port.clients.get_mut(&push).expect("push").reads = true;
    sim.run(2_300);
    assert!(sim.port.clients[&push].closed.is_none());
    // Its video jumps only to key frames (1 s apart here), and it is live again.
    let rolled: Vec<u32> = (0..10).map(|s| s * 1_000).collect();
    sim.assert_in_order_once(push, &rolled);
    let video = sim.video(push);
    assert!(video.last().is_some_and(|(ts, _)| *ts > 4_900), "{video:?}");
    // Metadata and headers are never dropped: they were sent once, at the start.
    assert_eq!(
        sim.frames(push)
            .iter()
            .filter(|f| f.2 == FrameKind::VideoHeader)
            .count(),
        1
    );
    // The viewer got everything meanwhile.
    sim.assert_in_order_once(viewer, &[]);
    assert!(sim.video(viewer).last().is_some_and(|(ts, _)| *ts > 4_900));
}

#[test]
fn a_push_target_that_stops_reading_is_closed_not_waited_for() {
    let mut sim = Sim::new();
    sim.publish();
    let (push, viewer) = (sim.client(false), sim.client(true));
    sim.play(viewer);
    sim.stream.add_push(push, PUSH_NS, &mut sim.port);
    sim.run(5_000);
    let reason = sim.port.clients[&push]
        .closed
        .clone()
        .expect("closed past max_lag_ms");
    assert!(reason.contains("push target too slow"), "{reason}");
    // Not told InsufficientBW (a target is no player), and nothing after the close.
    assert!(sim.codes(push).is_empty());
    let n = sim.frames(push).len();
    sim.run(500);
    assert_eq!(sim.frames(push).len(), n);
    assert!(sim.video(viewer).last().is_some_and(|(ts, _)| *ts > 5_400));
}
