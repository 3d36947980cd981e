//! Real ffmpeg/ffprobe clients against a live H.264 + AAC stream from a live ffmpeg encoder.

use e2e::media_probe::{assert_monotonic, of_type, probe_packets, probe_streams};
use e2e::publisher::publish_live_encoder;
use e2e::sample_media::{FPS, HEIGHT, WIDTH};
use e2e::scratch_dir::ScratchDir;
use e2e::server::Server;
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
