//! Every codec the content root may hold, played end to end: files made by this machine's
//! ffmpeg (H.264, HEVC, AV1 video; AAC, MP3, Opus audio; FLV and MP4), played through stratad
//! by our RTMP client and checked message by message against ffprobe's reading of the file:
//! the tag headers (legacy FLV for H.264, AAC and MP3; Enhanced RTMP FourCCs `hvc1`, `av01`
//! and `Opus`), the sequence start before the coded frames, a key frame first, the counts
//! within one frame and timestamps that never go back. ffmpeg plays what its version (5.1,
//! no Enhanced RTMP in its FLV demuxer) reads: H.264 with MP3, and the H.264 of H.264 + Opus.

use std::path::Path;
use std::time::{Duration, Instant};

use dataplane::proto::rtmp::session::SessionEvent;
use dataplane::proto::rtmp::{msg_type, Message};
use e2e::media_probe::{of_type, probe_packets, probe_streams, Packet};
use e2e::rtmp_client::{info_code, RtmpClient};
use e2e::scratch_dir::ScratchDir;
use e2e::tools::ffmpeg;
use e2e::vod_fixture::{make_clip_with, play, play_status, vod_server};

/// One frame of the 25 fps clips, in milliseconds.
const FRAME_MS: u32 = 40;
const SECONDS: u32 = 2;

/// How a track's messages must look on the wire.
#[derive(Debug, Clone, Copy)]
enum Wire {
    /// Legacy FLV AVC: a sequence header (packet type 0), then NALUs (packet type 1).
    Avc,
    /// Enhanced RTMP video with this FourCC: SequenceStart, then CodedFrames(X).
    ExVideo(&'static [u8; 4]),
    /// Legacy FLV AAC: AudioSpecificConfig (packet type 0), then raw frames.
    Aac,
    /// Legacy FLV MP3: sound format 2, every message a frame, no header.
    Mp3,
    /// Enhanced RTMP audio with this FourCC: SequenceStart, then CodedFrames.
    ExAudio(&'static [u8; 4]),
}

/// What a message is, read from its first bytes as `wire` says the track looks.
#[derive(Debug, PartialEq)]
enum Seen {
    Header,
    /// A coded frame; for video, whether it is a key frame.
    Frame {
        key: bool,
    },
    /// A video message that is no picture (an AVC end of sequence).
    Other,
}

fn read(wire: Wire, payload: &[u8]) -> Result<Seen, String> {
    let first = *payload.first().ok_or("empty message")?;
    let fourcc_is = |want: &[u8; 4]| -> Result<(), String> {
        match payload.get(1..5) {
            Some(got) if got == want => Ok(()),
            got => Err(format!(
                "FourCC {:?}, not {:?}",
                got.map(String::from_utf8_lossy),
                String::from_utf8_lossy(want)
            )),
        }
    };
    match wire {
        Wire::Avc => {
            if first & 0x0f != 7 || first & 0x80 != 0 {
                return Err(format!("not a legacy AVC tag: {first:#04x}"));
            }
            match payload.get(1) {
                Some(0) => Ok(Seen::Header),
                Some(1) => Ok(Seen::Frame {
                    key: first >> 4 == 1,
                }),
                Some(2) => Ok(Seen::Other),
                other => Err(format!("AVC packet type {other:?}")),
            }
        }
        Wire::ExVideo(fourcc) => {
            if first & 0x80 == 0 {
                return Err(format!("no Enhanced RTMP header: {first:#04x}"));
            }
            fourcc_is(fourcc)?;
            let frame_type = (first >> 4) & 0x07;
            match first & 0x0f {
                0 => Ok(Seen::Header),
                // CodedFrames (with a composition time) and CodedFramesX (without).
                1 | 3 => Ok(Seen::Frame {
                    key: frame_type == 1,
                }),
                2 => Ok(Seen::Other),
                other => Err(format!("video packet type {other}")),
            }
        }
        Wire::Aac => match (first, payload.get(1)) {
            (0xaf, Some(0)) => Ok(Seen::Header),
            (0xaf, Some(1)) => Ok(Seen::Frame { key: true }),
            _ => Err(format!(
                "not an AAC tag: {:02x?}",
                &payload[..2.min(payload.len())]
            )),
        },
        Wire::Mp3 => match first >> 4 {
            2 => Ok(Seen::Frame { key: true }),
            other => Err(format!("sound format {other}, not MP3 (2)")),
        },
        Wire::ExAudio(fourcc) => {
            if first >> 4 != 9 {
                return Err(format!("no Enhanced RTMP audio header: {first:#04x}"));
            }
            fourcc_is(fourcc)?;
            match first & 0x0f {
                0 => Ok(Seen::Header),
                1 => Ok(Seen::Frame { key: true }),
                other => Err(format!("audio packet type {other}")),
            }
        }
    }
}

/// Everything a play of `name` from its start sends, up to Play.Stop: the media messages in
/// order, and the onPlayStatus codes.
fn play_to_the_end(addr: std::net::SocketAddr, name: &str) -> (Vec<Message>, Vec<String>) {
    let mut c = RtmpClient::connected(addr, "vod").expect("connect");
    let sid = c.create_stream().expect("createStream");
    play(&mut c, sid, name, 0.0, -1.0, true);
    // The 2 s clip is sent at once within a 5 s buffer.
    c.set_buffer_length(sid, 5_000).expect("buffer length");
    let mut media = Vec::new();
    let mut statuses = Vec::new();
    let mut play_statuses = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !statuses.iter().any(|s| s == "NetStream.Play.Stop") {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "{name}: no Play.Stop in time; statuses {statuses:?}, {} media messages",
            media.len()
        );
        match c.read_event(left).expect("event") {
            SessionEvent::Command { command, .. }
            | SessionEvent::Status { command, .. }
            | SessionEvent::Result { command, .. }
            | SessionEvent::Error { command, .. }
                if command.name == "onStatus" =>
            {
                let code = info_code(&command).unwrap_or_default();
                assert!(
                    code != "NetStream.Play.StreamNotFound" && code != "NetStream.Play.Failed",
                    "{name}: {code}"
                );
                statuses.push(code);
            }
            SessionEvent::Data { message } if message.type_id == msg_type::DATA_AMF0 => {
                play_statuses.extend(play_status(&message.payload));
            }
            SessionEvent::Media { message } => media.push(message),
            _ => {}
        }
    }
    (media, play_statuses)
}

/// Checks one track's messages (`payload`s of one type, in order) against `wire` and the
/// file's `packets` of that kind; returns the timestamps of its coded frames.
fn check_track(
    name: &str,
    wire: Wire,
    messages: &[&Message],
    packets: &[&Packet],
    expect_header: bool,
) -> Vec<u32> {
    let seen: Vec<Seen> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            read(wire, &m.payload).unwrap_or_else(|e| panic!("{name} {wire:?} message {i}: {e}"))
        })
        .collect();
    if expect_header {
        assert_eq!(
            seen.first(),
            Some(&Seen::Header),
            "{name} {wire:?}: the sequence start comes first"
        );
        assert_eq!(
            seen.iter().filter(|s| **s == Seen::Header).count(),
            1,
            "{name} {wire:?}: one sequence start"
        );
    } else {
        assert!(!seen.contains(&Seen::Header));
    }
    let frames: Vec<(&Seen, u32)> = seen
        .iter()
        .zip(messages)
        .filter(|(s, _)| matches!(s, Seen::Frame { .. }))
        .map(|(s, m)| (s, m.timestamp))
        .collect();
    assert_eq!(
        frames.first().map(|f| f.0),
        Some(&Seen::Frame { key: true }),
        "{name} {wire:?}: the first coded frame is a key frame"
    );
    assert!(
        frames.len().abs_diff(packets.len()) <= 1,
        "{name} {wire:?}: {} frames sent, the file has {}",
        frames.len(),
        packets.len()
    );
    let times: Vec<u32> = frames.iter().map(|f| f.1).collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "{name} {wire:?}: timestamps go back: {times:?}"
    );
    times
}

/// Makes `file` (under the content root's `vod/_definst_/`) with ffmpeg's `codecs`, plays
/// it as `name` and checks every message against the file.
fn play_and_check(file: &str, codecs: &[&str], name: &str, video: Wire, audio: Wire) {
    let dir = ScratchDir::new("vod-codecs");
    let root = dir.join("root");
    let path = root.join("vod/_definst_").join(file);
    make_clip_with(&path, SECONDS, codecs);
    let packets = probe_packets(&path);
    let (file_video, file_audio) = (of_type(&packets, "video"), of_type(&packets, "audio"));
    assert_eq!(file_video.len(), 50, "{file}: ffmpeg wrote 2 s at 25 fps");
    assert!(!file_audio.is_empty(), "{file}: no audio");

    let mut server = vod_server(&root);
    let (media, play_statuses) = play_to_the_end(server.addr(), name);
    assert_eq!(play_statuses, ["NetStream.Play.Complete"], "{name}");
    let of = |type_id| -> Vec<&Message> { media.iter().filter(|m| m.type_id == type_id).collect() };
    let expect_audio_header = !matches!(audio, Wire::Mp3);
    let video_times = check_track(name, video, &of(msg_type::VIDEO), &file_video, true);
    check_track(
        name,
        audio,
        &of(msg_type::AUDIO),
        &file_audio,
        expect_audio_header,
    );
    // Audio and video interleave in time order.
    let all: Vec<u32> = media.iter().map(|m| m.timestamp).collect();
    assert!(
        all.windows(2).all(|w| w[0] <= w[1]),
        "{name}: media timestamps go back: {all:?}"
    );
    // The video spans what the file's does, within a frame.
    let span = |t: &[u32]| t.last().unwrap_or(&0) - t.first().unwrap_or(&0);
    let file_span = (file_video.last().map_or(0.0, |p| p.dts)
        - file_video.first().map_or(0.0, |p| p.dts))
        * 1000.0;
    assert!(
        (f64::from(span(&video_times)) - file_span).abs() <= f64::from(FRAME_MS),
        "{name}: video spans {} ms, the file {file_span} ms",
        span(&video_times)
    );
    server.assert_alive();
}

const X264: [&str; 4] = ["-c:v", "libx264", "-pix_fmt", "yuv420p"];

fn with(video: &[&'static str], audio: &[&'static str]) -> Vec<&'static str> {
    [video, audio].concat()
}

#[test]
fn h264_and_mp3_in_flv_are_sent_as_legacy_tags() {
    let codecs = with(&X264, &["-c:a", "libmp3lame", "-b:a", "64k"]);
    play_and_check("mp3.flv", &codecs, "mp3", Wire::Avc, Wire::Mp3);
}

#[test]
fn h264_and_mp3_in_mp4_are_sent_as_legacy_tags() {
    let codecs = with(&X264, &["-c:a", "libmp3lame", "-b:a", "64k"]);
    play_and_check("mp3.mp4", &codecs, "mp4:mp3.mp4", Wire::Avc, Wire::Mp3);
}

#[test]
fn hevc_and_aac_in_mp4_are_sent_as_enhanced_rtmp_hvc1() {
    let codecs = with(
        &[
            "-c:v",
            "libx265",
            "-tag:v",
            "hvc1",
            "-pix_fmt",
            "yuv420p",
            "-x265-params",
            "log-level=error",
        ],
        &["-c:a", "aac", "-b:a", "32k"],
    );
    play_and_check(
        "hevc.mp4",
        &codecs,
        "mp4:hevc.mp4",
        Wire::ExVideo(b"hvc1"),
        Wire::Aac,
    );
}

#[test]
fn h264_and_opus_in_mp4_are_sent_with_enhanced_rtmp_opus() {
    let codecs = with(&X264, &["-c:a", "libopus", "-b:a", "32k"]);
    play_and_check(
        "opus.mp4",
        &codecs,
        "mp4:opus.mp4",
        Wire::Avc,
        Wire::ExAudio(b"Opus"),
    );
}

#[test]
fn av1_and_aac_in_mp4_are_sent_as_enhanced_rtmp_av01() {
    let codecs = with(
        &[
            "-c:v",
            "libaom-av1",
            "-cpu-used",
            "8",
            "-pix_fmt",
            "yuv420p",
        ],
        &["-c:a", "aac", "-b:a", "32k"],
    );
    play_and_check(
        "av1.mp4",
        &codecs,
        "mp4:av1.mp4",
        Wire::ExVideo(b"av01"),
        Wire::Aac,
    );
}

/// ffmpeg 5.1 reads legacy FLV tags only: it plays H.264 with MP3, from an FLV and from an
/// MP4, every video frame and MP3 as MP3.
#[test]
fn ffmpeg_plays_h264_and_mp3_from_flv_and_mp4() {
    let dir = ScratchDir::new("vod-mp3-ffmpeg");
    let root = dir.join("root");
    let codecs = with(&X264, &["-c:a", "libmp3lame", "-b:a", "64k"]);
    for file in ["mp3.flv", "mp3.mp4"] {
        make_clip_with(&root.join("vod/_definst_").join(file), SECONDS, &codecs);
    }
    let mut server = vod_server(&root);
    for (i, name) in ["mp3", "mp4:mp3.mp4"].into_iter().enumerate() {
        let out = dir.join(&format!("out-{i}.flv"));
        let out_str = out.to_str().expect("utf-8 path");
        let url = server.url(&format!("vod/{name}"));
        ffmpeg(&["-i", &url, "-c", "copy", "-f", "flv", "-y", out_str])
            .expect_success(Duration::from_secs(30));
        let streams = probe_streams(out_str);
        let codec = |kind: &str| {
            streams
                .iter()
                .find(|s| s.codec_type == kind)
                .map(|s| s.codec_name.clone())
        };
        assert_eq!(
            codec("video").as_deref(),
            Some("h264"),
            "{name}: {streams:?}"
        );
        assert_eq!(
            codec("audio").as_deref(),
            Some("mp3"),
            "{name}: {streams:?}"
        );
        let packets = probe_packets(&out);
        let video = of_type(&packets, "video").len();
        assert!(video.abs_diff(50) <= 1, "{name}: {video} video frames");
        assert!(
            of_type(&packets, "audio").len() >= 70,
            "{name}: too little MP3"
        );
        played_audio_is_mp3(&out, name);
    }
    server.assert_alive();
}

/// ffmpeg decodes the MP3 it received: a decode error would be in its log as an error.
fn played_audio_is_mp3(out: &Path, name: &str) {
    let out = out.to_str().expect("utf-8 path");
    let mut decode = ffmpeg(&["-v", "error", "-i", out, "-map", "0:a", "-f", "null", "-"]);
    decode.expect_success(Duration::from_secs(30));
    let errors = decode.stderr();
    assert!(errors.trim().is_empty(), "{name}: decoding: {errors}");
}

/// A player without Enhanced RTMP still gets the legacy track of a mixed file: ffmpeg 5.1
/// skips the Opus messages (sound format 9, unknown to it) and copies every H.264 frame.
#[test]
fn ffmpeg_without_enhanced_rtmp_plays_the_h264_of_an_h264_and_opus_file() {
    let dir = ScratchDir::new("vod-opus-ffmpeg");
    let root = dir.join("root");
    let codecs = with(&X264, &["-c:a", "libopus", "-b:a", "32k"]);
    make_clip_with(&root.join("vod/_definst_/opus.mp4"), SECONDS, &codecs);
    let mut server = vod_server(&root);
    let out = dir.join("video.flv");
    let out_str = out.to_str().expect("utf-8 path");
    let url = server.url("vod/mp4:opus.mp4");
    ffmpeg(&[
        "-v", "error", "-i", &url, "-map", "0:v", "-c", "copy", "-f", "flv", "-y", out_str,
    ])
    .expect_success(Duration::from_secs(30));
    let packets = probe_packets(&out);
    let video = of_type(&packets, "video");
    assert_eq!(video.len(), 50, "every H.264 frame");
    assert!(video[0].key, "first video is a key frame");
    server.assert_alive();
}
