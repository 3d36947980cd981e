//! Fast start: a viewer joining mid-GOP starts on a key frame at once (GOP cache).

use e2e::bounds;
use e2e::media_probe::{of_type, probe_packets};
use e2e::publisher::publish_sample;
use e2e::rtmp_client::{is_avc_key_frame, is_avc_sequence_header, RtmpClient};
use e2e::scratch_dir::ScratchDir;
use e2e::server::Server;
use e2e::tools::ffmpeg;
use std::time::{Duration, Instant};

/// How long the publisher runs before the late viewer joins: past one 2 s GOP, mid-way into
/// the second.
const JOIN_AFTER: Duration = Duration::from_millis(3_300);
/// The first key frame must arrive this soon after play.
const FAST_START: Duration = Duration::from_millis(500);

/// Starts the sample publisher and returns once media flows (seen by a warm-up viewer).
fn live_stream(server: &Server) -> e2e::tools::ChildGuard {
    let publisher = publish_sample(&server.url("live/test"));
    let mut warm_up = RtmpClient::connected(server.addr(), "live").expect("warm-up connect");
    warm_up.play("test").expect("warm-up play");
    warm_up
        .wait_first_video(bounds::STREAM_UP)
        .expect("the stream goes live");
    publisher
}

#[test]
fn late_viewer_starts_on_key_frame() {
    let mut server = Server::start();
    let _publisher = live_stream(&server);
    std::thread::sleep(JOIN_AFTER);

    let mut viewer = RtmpClient::connected(server.addr(), "live").expect("connect");
    let sent = viewer.play("test").expect("play");
    let (first, _) = viewer
        .wait_first_video(bounds::MESSAGE)
        .expect("first video");
    assert!(
        is_avc_key_frame(&first.payload),
        "the first video message is not an AVC key frame: header byte {:#04x}",
        first.payload.first().copied().unwrap_or_default()
    );
    // Past the decoder configuration, the first coded frame.
    let mut frame = first;
    while is_avc_sequence_header(&frame.payload) {
        frame = viewer
            .wait_first_video(bounds::MESSAGE)
            .expect("a coded frame")
            .0;
    }
    let elapsed = sent.elapsed();
    eprintln!("late viewer: first key frame {elapsed:?} after play");
    assert!(
        is_avc_key_frame(&frame.payload),
        "the first coded video frame is not a key frame: header byte {:#04x}",
        frame.payload[0]
    );
    assert!(
        elapsed <= FAST_START,
        "first key frame {elapsed:?} after play; want ≤ {FAST_START:?}"
    );
    server.assert_alive();
}

#[test]
fn late_ffmpeg_viewer_first_video_packet_is_key_frame() {
    let mut server = Server::start();
    let _publisher = live_stream(&server);
    std::thread::sleep(JOIN_AFTER);

    let dir = ScratchDir::new("late-ffmpeg");
    let out = dir.join("late.flv");
    let started = Instant::now();
    ffmpeg(&[
        "-i",
        &server.url("live/test"),
        "-c",
        "copy",
        "-t",
        "2",
        "-y",
        out.to_str().expect("utf-8"),
    ])
    .expect_success(Duration::from_secs(30));
    let packets = probe_packets(&out);
    let video = of_type(&packets, "video");
    assert!(
        !video.is_empty(),
        "no video recorded in {:?}",
        started.elapsed()
    );
    assert!(
        video[0].key,
        "the late ffmpeg viewer's first video packet is not a key frame"
    );
    server.assert_alive();
}
