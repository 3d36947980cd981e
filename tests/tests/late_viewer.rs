//! Fast start: a viewer joining mid-GOP starts on a key frame at once (GOP cache).

use e2e::bounds;
use e2e::media_probe::{of_type, probe_packets};
use e2e::publisher::publish_sample;
use e2e::rtmp_client::{is_avc_key_frame, is_avc_sequence_header, RtmpClient};
use e2e::scratch_dir::ScratchDir;
use e2e::server::{Server, ServerOptions};
use e2e::tools::ffmpeg;
use std::collections::HashSet;
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

/// Viewers that join while a batch is pending (`live.send_batch_ms`) get each frame once:
/// their cached GOP covers what arrived before they joined, the batch only what came after.
/// With 2 workers some of them sit on the worker without the publisher.
#[test]
fn viewers_joining_mid_batch_get_each_frame_once() {
    use dataplane::proto::rtmp::msg_type::{AUDIO, VIDEO};
    const VIEWERS: u64 = 6;
    const WATCH: Duration = Duration::from_millis(2_500);
    let mut server = Server::start_with(ServerOptions {
        config: Some("[live]\nsend_batch_ms = 300\n".into()),
        ..ServerOptions::default()
    });
    let _publisher = live_stream(&server);
    let addr = server.addr();
    let viewers: Vec<_> = (0..VIEWERS)
        .map(|i| {
            std::thread::spawn(move || -> Result<usize, String> {
                // Joins spread over more than one batch window.
                std::thread::sleep(Duration::from_millis(70 * i));
                let mut v = RtmpClient::connected(addr, "live").map_err(|e| format!("{e}"))?;
                v.play("test").map_err(|e| format!("play: {e}"))?;
                let mut seen = HashSet::new();
                let until = Instant::now() + WATCH;
                while Instant::now() < until {
                    let m = v
                        .read_message(bounds::MESSAGE)
                        .map_err(|e| format!("read: {e}"))?;
                    let header = match m.type_id {
                        VIDEO => is_avc_sequence_header(&m.payload),
                        // AAC: sound format 10, packet type 0 is the AudioSpecificConfig.
                        AUDIO => m.payload.get(1) == Some(&0) && m.payload[0] >> 4 == 10,
                        _ => continue,
                    };
                    if !header && !seen.insert((m.type_id, m.timestamp)) {
                        return Err(format!(
                            "type {} at {} ms arrived twice",
                            m.type_id, m.timestamp
                        ));
                    }
                }
                Ok(seen.len())
            })
        })
        .collect();
    for (i, v) in viewers.into_iter().enumerate() {
        let frames = v
            .join()
            .expect("viewer thread")
            .unwrap_or_else(|e| panic!("viewer {i}: {e}"));
        // The cached GOP plus 2.5 s of 25 fps video and ~43 AAC frames a second.
        assert!(frames > 100, "viewer {i} got only {frames} frames");
    }
    server.assert_alive();
}
