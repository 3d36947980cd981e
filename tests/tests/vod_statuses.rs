//! A file play's statuses through our RTMP client: pause, unpause and seek (on the key
//! frame at or before the target), and a three-item playlist (Play.Switch between items,
//! Play.Complete and Play.Stop at the end).

use std::time::{Duration, Instant};

use dataplane::proto::amf0::Amf0Value;
use dataplane::proto::rtmp::msg_type;
use dataplane::proto::rtmp::session::SessionEvent;
use e2e::rtmp_client::{info_code, is_avc_key_frame, is_avc_sequence_header, RtmpClient};
use e2e::scratch_dir::ScratchDir;
use e2e::server::Server;
use e2e::vod_fixture::{make_clip, play, play_status, vod_server};

const WAIT: Duration = Duration::from_secs(15);

/// 4 s of 25 fps H.264 (a key frame every second) and AAC as `clip.flv` and `clip.mp4`.
fn server(dir: &ScratchDir) -> Server {
    let root = dir.join("root");
    for name in ["clip.flv", "clip.mp4"] {
        make_clip(&root.join("vod/_definst_").join(name));
    }
    vod_server(&root)
}

fn player(server: &Server) -> (RtmpClient, u32) {
    let mut c = RtmpClient::connected(server.addr(), "vod").expect("connect");
    let sid = c.create_stream().expect("createStream");
    (c, sid)
}

#[test]
fn pause_unpause_and_seek_are_notified_and_seek_lands_on_a_key_frame() {
    let dir = ScratchDir::new("vod-seek");
    let mut server = server(&dir);
    let (mut c, sid) = player(&server);
    // The length of a file (its index built for the answer), and 0 for what is none.
    let length = |c: &mut RtmpClient, name: &str| {
        let reply = c
            .call("getStreamLength", &[Amf0Value::string(name)], WAIT)
            .expect("getStreamLength");
        match reply.args.first() {
            Some(Amf0Value::Number(n)) => *n,
            other => panic!("getStreamLength({name}) answered {other:?}"),
        }
    };
    let secs = length(&mut c, "clip");
    assert!((4.0..=4.2).contains(&secs), "clip lasts {secs} s");
    assert!((4.0..=4.2).contains(&length(&mut c, "mp4:clip.mp4")));
    assert_eq!(length(&mut c, "none"), 0.0);
    assert_eq!(length(&mut c, "../../x"), 0.0);
    play(&mut c, sid, "clip", 0.0, -1.0, true);
    c.wait_status("NetStream.Play.Reset", WAIT)
        .expect("Play.Reset");
    c.wait_status("NetStream.Play.Start", WAIT)
        .expect("Play.Start");
    let (first, _) = c.wait_first_video(WAIT).expect("video");
    assert!(
        is_avc_sequence_header(&first.payload),
        "the sequence header comes first"
    );

    let pause = |c: &mut RtmpClient, on: bool| {
        c.send_command(
            sid,
            "pause",
            Amf0Value::Null,
            &[Amf0Value::Boolean(on), Amf0Value::Number(0.0)],
        )
        .expect("pause")
    };
    pause(&mut c, true);
    c.wait_status("NetStream.Pause.Notify", WAIT)
        .expect("Pause.Notify");
    pause(&mut c, false);
    c.wait_status("NetStream.Unpause.Notify", WAIT)
        .expect("Unpause.Notify");

    c.send_command(sid, "seek", Amf0Value::Null, &[Amf0Value::Number(2500.0)])
        .expect("seek");
    c.wait_status("NetStream.Seek.Notify", WAIT)
        .expect("Seek.Notify");
    c.wait_status("NetStream.Play.Start", WAIT)
        .expect("Play.Start after the seek");
    // After the headers sent again, the first picture is the key frame at 2 s.
    let deadline = Instant::now() + WAIT;
    let key = loop {
        assert!(Instant::now() < deadline, "no picture after the seek");
        let (m, _) = c.wait_first_video(WAIT).expect("video after the seek");
        if !is_avc_sequence_header(&m.payload) {
            break m;
        }
    };
    assert!(
        is_avc_key_frame(&key.payload),
        "seek resumed on a non-key frame"
    );
    assert!(
        (1_900..=2_500).contains(&key.timestamp),
        "resumed at {} ms",
        key.timestamp
    );
    server.assert_alive();
}

#[test]
fn a_three_item_playlist_switches_twice_then_completes() {
    let dir = ScratchDir::new("vod-playlist");
    let mut server = server(&dir);
    let (mut c, sid) = player(&server);
    play(&mut c, sid, "clip", 3000.0, -1.0, true);
    play(&mut c, sid, "mp4:clip.mp4", 1000.0, 500.0, false);
    play(&mut c, sid, "clip", 2000.0, 0.0, false);

    let mut statuses = Vec::new();
    let mut play_statuses = Vec::new();
    let mut key_frames = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !statuses.iter().any(|s| s == "NetStream.Play.Stop") {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no Play.Stop; statuses {statuses:?}, {play_statuses:?}"
        );
        match c.read_event(left).expect("event") {
            // The client session may take a status for the answer to the `play` call it
            // numbered: whichever event carries it, it is an onStatus.
            SessionEvent::Command { command, .. }
            | SessionEvent::Status { command, .. }
            | SessionEvent::Result { command, .. }
            | SessionEvent::Error { command, .. }
                if command.name == "onStatus" =>
            {
                statuses.extend(info_code(&command));
            }
            SessionEvent::Data { message } if message.type_id == msg_type::DATA_AMF0 => {
                play_statuses.extend(play_status(&message.payload));
            }
            SessionEvent::Media { message }
                // A key frame picture (AVC packet type 1), not a sequence header or end.
                if message.type_id == msg_type::VIDEO
                    && is_avc_key_frame(&message.payload)
                    && message.payload.get(1) == Some(&1) =>
            {
                key_frames += 1;
            }
            _ => {}
        }
    }
    assert_eq!(
        statuses,
        [
            "NetStream.Play.Reset",
            "NetStream.Play.Start",
            "NetStream.Play.Stop"
        ]
    );
    assert_eq!(
        play_statuses,
        [
            "NetStream.Play.Switch",
            "NetStream.Play.Switch",
            "NetStream.Play.Complete"
        ]
    );
    // Item 1: from 3 s, one key frame; item 2: the key frame at 1 s for 0.5 s; item 3: the
    // single frame at 2 s.
    assert_eq!(key_frames, 3);
    server.assert_alive();
}

/// Players send Set Buffer Length right after `play`, before the file's index is built and
/// the play begins: the buffer they ask for still decides how far ahead the file is sent.
/// With 10 s asked, the whole 4 s clip (100 video frames) arrives at once; with the 1 s
/// default it would take about 3 s.
#[test]
fn a_buffer_length_sent_right_after_play_sends_that_far_ahead() {
    let dir = ScratchDir::new("vod-buffer");
    let mut server = server(&dir);
    let (mut c, sid) = player(&server);
    play(&mut c, sid, "clip", 0.0, -1.0, true);
    c.set_buffer_length(sid, 10_000).expect("set buffer length");
    let sent = Instant::now();
    let window = Duration::from_millis(1500);
    let mut frames = 0;
    while frames < 100 && sent.elapsed() < window {
        let left = window.saturating_sub(sent.elapsed());
        match c.read_message(left) {
            Ok(m) if m.type_id == msg_type::VIDEO && !is_avc_sequence_header(&m.payload) => {
                frames += 1
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    assert!(
        frames >= 95,
        "{frames} of the clip's 100 video frames within {window:?} of play: the 10 s buffer \
         was not applied\n{}",
        server.log()
    );
    server.assert_alive();
}

/// A -2 play learns whether its file is there when the file's open completes (off the
/// worker's thread): a name with a file plays the file; a name without one waits for the
/// live stream, and gets it once it is published.
#[test]
fn a_minus_two_play_plays_the_file_if_there_else_waits_for_the_live_stream() {
    let dir = ScratchDir::new("vod-minus-two");
    let server = server(&dir);
    let (mut file_viewer, _) = player(&server);
    file_viewer.play("clip").expect("play -2");
    file_viewer
        .wait_status("NetStream.Play.Start", WAIT)
        .expect("the file's Play.Start");
    let (first, _) = file_viewer
        .wait_first_video(WAIT)
        .expect("the file's video");
    assert!(is_avc_sequence_header(&first.payload));

    let (mut live_viewer, _) = player(&server);
    live_viewer.play("later").expect("play -2");
    // Nothing is published yet: no StreamNotFound, the viewer waits.
    let early = live_viewer.wait_command(Duration::from_secs(1), "StreamNotFound", |c| {
        info_code(c).as_deref() == Some("NetStream.Play.StreamNotFound")
    });
    assert!(early.is_err(), "a -2 play without a file was refused");
    let _publisher = e2e::publisher::publish_sample(&server.url("vod/later"));
    let (first, _) = live_viewer.wait_first_video(WAIT).expect("live video");
    assert!(
        is_avc_sequence_header(&first.payload) || is_avc_key_frame(&first.payload),
        "the live stream starts on its headers or a key frame"
    );
}

/// A server-side stream's -2 items (a script's `Stream.play(name, -2)`) are decided when
/// their files' opens complete too: `clip` has a file and plays it, `studio` has none and
/// plays the live stream published under that name once the file is over.
#[test]
fn a_server_stream_plays_a_file_then_a_live_stream_both_asked_with_minus_two() {
    let dir = ScratchDir::new("vod-server-minus-two");
    let root = dir.join("root");
    make_clip(&root.join("ch/_definst_/clip.flv"));
    let scripts = dir.join("scripts");
    std::fs::create_dir_all(scripts.join("ch")).expect("script dir");
    std::fs::write(
        scripts.join("ch/main.asc"),
        "application.onAppStart = function () {\n\
         var s = Stream.get(\"channel\");\n\
         s.play(\"clip\", -2, -1, true);\n\
         s.play(\"studio\", -2, -1, false);\n\
         };\n",
    )
    .expect("script");
    let mut server = Server::start_with(e2e::server::ServerOptions {
        config: Some(format!(
            "[vod]\nroot = {:?}\n[scripts]\ndir = {:?}\nload_on_startup = [\"ch\"]\n",
            root.display().to_string(),
            scripts.display().to_string()
        )),
        ..e2e::server::ServerOptions::default()
    });
    let _publisher = e2e::publisher::publish_sample(&server.url("ch/studio"));
    let mut c = RtmpClient::connected(server.addr(), "ch").expect("connect");
    c.play("channel").expect("play");
    // The 4 s clip, then the live stream: video goes on well past the clip's end.
    let start = Instant::now();
    let mut last_video = None;
    while start.elapsed() < Duration::from_secs(9) {
        match c.read_message(Duration::from_secs(2)) {
            Ok(m) if m.type_id == msg_type::VIDEO => last_video = Some(start.elapsed()),
            Ok(_) => {}
            Err(e) => panic!("the channel stopped: {e}\n{}", server.log()),
        }
    }
    assert!(
        last_video.is_some_and(|t| t > Duration::from_secs(7)),
        "no live video after the file: {last_video:?}\n{}",
        server.log()
    );
    server.assert_alive();
}
