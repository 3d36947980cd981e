//! rtmpdump (librtmp) as a viewer: its recording is a valid FLV with video and audio.

use e2e::media_probe::{of_type, probe_packets, probe_streams};
use e2e::publisher::publish_sample;
use e2e::scratch_dir::ScratchDir;
use e2e::server::Server;
use e2e::tools::rtmpdump;
use std::time::Duration;

#[test]
fn rtmpdump_records_a_valid_flv_with_video_and_audio() {
    let mut server = Server::start();
    let url = server.url("live/test");
    let _publisher = publish_sample(&url);

    let dir = ScratchDir::new("rtmpdump");
    let out = dir.join("out.flv");
    let mut dump = rtmpdump(&url, &out, &[]);
    // Let it record, then stop it like an operator would (SIGINT), killing it if it hangs.
    std::thread::sleep(Duration::from_secs(6));
    assert!(
        dump.is_running(),
        "rtmpdump exited early:\n{}",
        dump.stderr()
    );
    dump.interrupt(Duration::from_secs(5));

    let out_str = out.to_str().expect("utf-8 path");
    let streams = probe_streams(out_str);
    assert!(
        streams
            .iter()
            .any(|s| s.codec_type == "video" && s.codec_name == "h264"),
        "no H.264 video in the rtmpdump recording: {streams:?}\n{}",
        dump.stderr()
    );
    assert!(
        streams
            .iter()
            .any(|s| s.codec_type == "audio" && s.codec_name == "aac"),
        "no AAC audio in the rtmpdump recording: {streams:?}"
    );
    let packets = probe_packets(&out);
    let video = of_type(&packets, "video");
    assert!(
        video.len() >= 50,
        "only {} video packets in ~6 s",
        video.len()
    );
    assert!(!of_type(&packets, "audio").is_empty(), "no audio packets");
    server.assert_alive();
}
