//! Real ffmpeg/ffprobe clients against a live H.264 + AAC stream from a live ffmpeg encoder.

use e2e::media_probe::{assert_monotonic, of_type, probe_packets, probe_streams};
use e2e::publisher::publish_live_encoder;
use e2e::sample_media::{FPS, HEIGHT, WIDTH};
use e2e::scratch_dir::ScratchDir;
use e2e::server::{Server, ServerOptions};
use e2e::tools::ffmpeg;
use std::time::Duration;

/// Seconds recorded by `-t`.
const RECORD_SECONDS: f64 = 5.0;
/// Allowed deviation of the frame count from FPS × duration.
const RATE_TOLERANCE: f64 = 0.10;

#[test]
fn ffprobe_sees_h264_and_aac_at_640x360_on_the_play_url() {
    let mut server = Server::start();
    let url = server.url("live/test");
    let mut publisher = publish_live_encoder(&url);

    let streams = probe_streams(&url);
    let video = streams
        .iter()
        .find(|s| s.codec_type == "video")
        .expect("a video stream");
    let audio = streams
        .iter()
        .find(|s| s.codec_type == "audio")
        .expect("an audio stream");
    assert_eq!(video.codec_name, "h264", "{streams:?}");
    assert_eq!(audio.codec_name, "aac", "{streams:?}");
    assert_eq!(
        (video.width, video.height),
        (Some(u64::from(WIDTH)), Some(u64::from(HEIGHT))),
        "{streams:?}"
    );
    assert!(
        publisher.is_running(),
        "publisher exited:\n{}",
        publisher.stderr()
    );
    server.assert_alive();
}

#[test]
fn ffmpeg_recording_has_full_frame_rate_starts_on_key_frame_and_is_monotonic() {
    let mut server = Server::start();
    record_and_check(&mut server);
}

/// The same recording with every send zero-copy (`live.send_zerocopy`, from the handshake
/// on): the bytes a send points into must outlive it until the kernel's notification, or
/// the recording would not be the same.
#[test]
fn ffmpeg_recording_is_the_same_with_zero_copy_sends() {
    let mut server = Server::start_with(ServerOptions {
        config: Some(ZERO_COPY.into()),
        ..ServerOptions::default()
    });
    record_and_check(&mut server);

    // Each worker says at exit how many sends went zero-copy.
    server.signal(libc::SIGTERM);
    assert!(
        server.wait_exit(Duration::from_secs(10)).is_some(),
        "stratad did not exit"
    );
    let log = server.log();
    if log.contains("lacks zero-copy sends") {
        eprintln!("this kernel has no zero-copy sends: the plain path was tested");
        return;
    }
    let count = |field: &str| -> u64 {
        log.lines()
            .filter(|l| l.contains("zero-copy sends"))
            .filter_map(|l| field_value(l, field))
            .sum()
    };
    let (sends, notifications) = (count("sends"), count("notifications"));
    assert!(sends > 0, "no zero-copy sends logged:\n{log}");
    // A clean exit frees every connection, which waits for every notification.
    assert_eq!(sends, notifications, "{log}");
}

/// Every send zero-copy, however small.
const ZERO_COPY: &str = "[live]\nsend_zerocopy = true\nsend_zerocopy_min_bytes = 0\n";

/// `name=value` from a log line, as a number.
fn field_value(line: &str, name: &str) -> Option<u64> {
    let key = format!("{name}=");
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key.as_str()))
        .and_then(|v| v.parse().ok())
}

/// Records RECORD_SECONDS of a live encoder's stream through `server` with ffmpeg and checks
/// the recording: video and audio, starting on a key frame, at the full frame rate, with
/// monotonic timestamps.
fn record_and_check(server: &mut Server) {
    let url = server.url("live/test");
    let _publisher = publish_live_encoder(&url);

    let dir = ScratchDir::new("record");
    let out = dir.join("out.flv");
    let out_str = out.to_str().expect("utf-8 path");
    let secs = RECORD_SECONDS.to_string();
    ffmpeg(&["-i", &url, "-c", "copy", "-t", &secs, "-y", out_str])
        .expect_success(Duration::from_secs(40));

    let packets = probe_packets(&out);
    let video = of_type(&packets, "video");
    let audio = of_type(&packets, "audio");
    assert!(
        !video.is_empty() && !audio.is_empty(),
        "video and audio in {}",
        out.display()
    );

    assert!(
        video[0].key,
        "the first video packet is not a key frame: {:?}",
        video[0]
    );

    let frame = 1.0 / f64::from(FPS);
    let span = video[video.len() - 1].dts - video[0].dts + frame;
    let expected = f64::from(FPS) * span;
    let count = video.len() as f64;
    assert!(
        (count - expected).abs() <= expected * RATE_TOLERANCE,
        "{count} video frames over {span:.2} s; expected {expected:.0} ± 10%"
    );
    let nominal = f64::from(FPS) * RECORD_SECONDS;
    assert!(
        (count - nominal).abs() <= nominal * RATE_TOLERANCE,
        "{count} video frames in a {RECORD_SECONDS} s recording; expected {nominal:.0} ± 10%"
    );

    assert_monotonic(&video, "video");
    assert_monotonic(&audio, "audio");
    server.assert_alive();
}
