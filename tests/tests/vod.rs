//! Video on demand: files under the content root played by ffmpeg and rtmpdump (made by
//! ffmpeg in the test), and names that try to leave the root refused with StreamNotFound
//! and a log line.

use std::path::Path;
use std::time::Duration;

use e2e::media_probe::{of_type, probe_packets, Packet};
use e2e::scratch_dir::ScratchDir;
use e2e::tools::{ffmpeg, ChildGuard};
use e2e::vod_fixture::{make_clip, vod_server};

/// 4 s of 25 fps H.264 (a key frame every second) and AAC, as `<root>/vod/_definst_/`
/// `clip.flv` and `sub/clip.mp4`.
fn content_root(dir: &ScratchDir) -> std::path::PathBuf {
    let root = dir.join("root");
    for out in ["vod/_definst_/clip.flv", "vod/_definst_/sub/clip.mp4"] {
        make_clip(&root.join(out));
    }
    root
}

fn video(file: &Path) -> Vec<Packet> {
    of_type(&probe_packets(file), "video")
        .into_iter()
        .cloned()
        .collect()
}

/// Video frames and the time from first to last, in seconds.
fn span(packets: &[Packet]) -> (usize, f64) {
    let first = packets.first().map_or(0.0, |p| p.dts);
    let last = packets.last().map_or(0.0, |p| p.dts);
    (packets.len(), last - first)
}

fn rtmpdump(args: &[&str]) -> ChildGuard {
    ChildGuard::spawn("rtmpdump", args)
}

/// Runs rtmpdump to its end. Exit status 2 is its "download may be incomplete": it compares
/// the last timestamp with onMetaData's duration, which counts the last frame's length, so
/// a whole file is "99 %"; the frame counts below say what arrived.
fn rtmpdump_to_end(args: &[&str]) {
    let mut dump = rtmpdump(args);
    let status = dump.wait_timeout(Duration::from_secs(30));
    let code = status.and_then(|s| s.code());
    assert!(
        matches!(code, Some(0 | 2)),
        "rtmpdump ended with {status:?}:\n{}",
        dump.stderr()
    );
}

const FRAME: f64 = 0.04;

#[test]
fn ffmpeg_and_rtmpdump_play_an_flv_and_an_mp4_frame_for_frame() {
    let dir = ScratchDir::new("vod-play");
    let root = content_root(&dir);
    let mut server = vod_server(&root);
    let source = span(&video(&root.join("vod/_definst_/clip.flv")));
    assert_eq!(source.0, 100);

    for (i, name) in ["clip", "mp4:sub/clip.mp4", "mp4:sub/clip"]
        .iter()
        .enumerate()
    {
        let url = server.url(&format!("vod/{name}"));
        let out = dir.join(&format!("rtmpdump-{i}.flv"));
        let out_str = out.to_str().expect("utf-8 path");
        // The play path apart (-y): librtmp's URL parsing reads `mp4:sub/...` as the app.
        rtmpdump_to_end(&["-q", "-r", &server.url("vod"), "-y", name, "-o", out_str]);
        let got = span(&video(&out));
        assert!(
            got.0.abs_diff(source.0) <= 1,
            "rtmpdump {name}: {got:?} vs {source:?}"
        );
        assert!(
            (got.1 - source.1).abs() <= FRAME,
            "rtmpdump {name}: {got:?} vs {source:?}"
        );
        assert!(
            video(&out)[0].key,
            "rtmpdump {name}: first video is not a key frame"
        );

        let out = dir.join(&format!("ffmpeg-{i}.flv"));
        let out_str = out.to_str().expect("utf-8 path");
        ffmpeg(&["-i", &url, "-c", "copy", "-f", "flv", "-y", out_str])
            .expect_success(Duration::from_secs(30));
        let got = span(&video(&out));
        assert!(
            got.0.abs_diff(source.0) <= 1,
            "ffmpeg {name}: {got:?} vs {source:?}"
        );
        assert!(
            (got.1 - source.1).abs() <= FRAME,
            "ffmpeg {name}: {got:?} vs {source:?}"
        );
        let audio = of_type(&probe_packets(&out), "audio").len();
        assert!(audio >= 170, "ffmpeg {name}: only {audio} audio packets");
    }
    server.assert_alive();
}

/// rtmpdump's -A (start) and -B (stop) become play(clip, start, len) in milliseconds: the
/// server starts on the key frame at or before the start and stops after `len`.
#[test]
fn rtmpdump_start_and_stop_give_the_range_from_the_key_frame_at_or_before() {
    let dir = ScratchDir::new("vod-start");
    let root = content_root(&dir);
    let mut server = vod_server(&root);
    let url = server.url("vod/clip");
    for (i, (args, frames)) in [
        // From 2.5 s: the key frame at 2 s and the 2 s after it.
        (&["-A", "2.5"][..], 50),
        // From 1.5 s for 1.5 s: the key frame at 1 s to 3 s.
        (&["-A", "1.5", "-B", "3"][..], 50),
    ]
    .into_iter()
    .enumerate()
    {
        let out = dir.join(&format!("range-{i}.flv"));
        let out_str = out.to_str().expect("utf-8 path");
        let mut all = vec!["-q", "-r", url.as_str(), "-o", out_str];
        all.extend_from_slice(args);
        rtmpdump_to_end(&all);
        let packets = video(&out);
        assert!(packets[0].key, "{args:?}: first video is not a key frame");
        let (got, _) = span(&packets);
        assert!(
            got.abs_diff(frames) <= 1,
            "{args:?}: {got} frames, {frames} expected"
        );
        // The start travels in milliseconds.
        let line = server.wait_log_line(
            &[
                "file play",
                &format!("start={}", args[1].parse::<f64>().expect("number") * 1000.0),
            ],
            Duration::from_secs(5),
        );
        assert!(line.is_some(), "{args:?}: {}", server.log());
    }
    server.assert_alive();
}

#[test]
fn names_leaving_the_content_root_get_stream_not_found_and_a_log_line() {
    let dir = ScratchDir::new("vod-escape");
    let root = content_root(&dir);
    std::fs::write(dir.join("secret.flv"), b"FLV").expect("outside file");
    std::os::unix::fs::symlink(dir.join("secret.flv"), root.join("vod/_definst_/out.flv"))
        .expect("symlink out");
    let mut server = vod_server(&root);
    let app = server.url("vod");
    let long = "a".repeat(300);
    for (name, reason) in [
        ("../../secret", "'..' path component"),
        ("mp4:/etc/passwd.mp4", "absolute path"),
        ("out", "out of the content root"),
        (long.as_str(), "longer than 255 bytes"),
    ] {
        let out = dir.join("x.flv");
        let mut dump = rtmpdump(&[
            "-r",
            &app,
            "-y",
            name,
            "-A",
            "0",
            "-o",
            out.to_str().expect("utf-8"),
        ]);
        let _ = dump.wait_timeout(Duration::from_secs(15));
        assert!(
            dump.stderr().contains("NetStream.Play.StreamNotFound"),
            "{name}: {}",
            dump.stderr()
        );
        let line = server.wait_log_line(&["play refused", reason], Duration::from_secs(5));
        assert!(line.is_some(), "no log line for {name}:\n{}", server.log());
    }
    // Nothing else disturbed: a good name still plays.
    let out = dir.join("good.flv");
    rtmpdump_to_end(&[
        "-q",
        "-r",
        &server.url("vod/clip"),
        "-o",
        out.to_str().expect("utf-8"),
    ]);
    assert_eq!(video(&out).len(), 100);
    server.assert_alive();
}
