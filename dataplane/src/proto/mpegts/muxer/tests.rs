#![allow(clippy::unwrap_used)]

use super::*;
use crate::proto::flv::reader::tests::walk;
use crate::proto::mpegts::crc::crc32_mpeg2;
use crate::proto::mpegts::psi::{PAT_PID, PMT_PID};
use proptest::prelude::*;
use std::collections::HashMap;

const CLIP: &[u8] = include_bytes!("../../../media/vod/testdata/avc_aac.flv");

/// The clip's messages: (type, timestamp, body).
fn clip() -> Vec<(u8, u32, Vec<u8>)> {
    walk(CLIP, 1 << 20, usize::MAX)
        .into_iter()
        .map(|(h, body)| (h.tag_type, h.timestamp, body))
        .collect()
}

fn mux_all(m: &mut TsMuxer, msgs: &[(u8, u32, Vec<u8>)]) -> Vec<Muxed> {
    msgs.iter()
        .filter_map(|(t, ts, body)| m.push(*t, *ts, body).expect("the clip muxes"))
        .collect()
}

/// What a reader of the packets sees: per PID, the payload units (with their first
/// packet's adaptation flags byte), and every continuity error.
#[derive(Default)]
struct Reader {
    cc: HashMap<u16, u8>,
    units: HashMap<u16, Vec<(u8, Vec<u8>)>>,
    cc_errors: usize,
}

impl Reader {
    fn read(&mut self, ts: &[u8]) {
        assert_eq!(ts.len() % 188, 0);
        for p in ts.chunks(188) {
            assert_eq!(p[0], 0x47);
            let pid = u16::from(p[1] & 0x1f) << 8 | u16::from(p[2]);
            let start = p[1] & 0x40 != 0;
            let cc = p[3] & 0x0f;
            let (af_flags, body) = if p[3] & 0x20 != 0 {
                let len = p[4] as usize;
                (if len > 0 { p[5] } else { 0 }, &p[5 + len..])
            } else {
                (0, &p[4..])
            };
            if let Some(&prev) = self.cc.get(&pid) {
                if (prev + 1) & 0x0f != cc && af_flags & 0x80 == 0 {
                    self.cc_errors += 1;
                }
            }
            self.cc.insert(pid, cc);
            let units = self.units.entry(pid).or_default();
            if start {
                units.push((af_flags, body.to_vec()));
            } else if let Some(u) = units.last_mut() {
                u.1.extend_from_slice(body);
            }
        }
    }
}

fn pes_pts(pes: &[u8]) -> (u64, Option<u64>) {
    assert_eq!(&pes[..3], &[0, 0, 1]);
    let t = |b: &[u8]| {
        u64::from(b[0] & 0x0e) << 29
            | u64::from(b[1]) << 22
            | u64::from(b[2] >> 1) << 15
            | u64::from(b[3]) << 7
            | u64::from(b[4] >> 1)
    };
    let pts = t(&pes[9..]);
    let dts = (pes[7] & 0x40 != 0).then(|| t(&pes[14..]));
    (pts, dts)
}

#[test]
fn the_clip_becomes_a_clean_transport_stream() {
    let msgs = clip();
    let mut m = TsMuxer::new();
    let muxed = mux_all(&mut m, &msgs);
    let mut r = Reader::default();
    for f in &muxed {
        r.read(&f.bytes);
    }
    assert_eq!(r.cc_errors, 0);
    // Each frame keeps its RTMP time (the outputs pace and stamp RTP by it).
    let latest = msgs
        .iter()
        .filter(|m| m.0 == msg_type::AUDIO)
        .map(|m| m.1)
        .max();
    assert_eq!(muxed.iter().map(|f| f.timestamp).max(), latest);
    let video = &r.units[&VIDEO_PID];
    let audio = &r.units[&AUDIO_PID];
    assert_eq!(video.len(), 25);
    assert_eq!(audio.len(), 45);
    // Tables before each key frame, each checked by its CRC.
    let keys = muxed.iter().filter(|f| f.key).count();
    assert!(keys >= 1);
    assert_eq!(r.units[&PAT_PID].len(), keys);
    for (_, s) in &r.units[&PMT_PID] {
        let len = usize::from(s[2] & 0x0f) << 8 | usize::from(s[3]);
        assert_eq!(crc32_mpeg2(&s[1..4 + len]), 0);
        assert_eq!(s[13..18], [0x1b, 0xe1, 0x00, 0xf0, 0x00]);
        assert_eq!(s[18..23], [0x0f, 0xe1, 0x01, 0xf0, 0x00]);
    }
    // The first video unit: PCR, random access, AUD, then SPS and PPS, and DTS never
    // goes back.
    let (flags, first) = &video[0];
    assert_eq!(flags & 0x50, 0x50);
    let header_len = 9 + first[8] as usize;
    assert_eq!(
        &first[header_len..header_len + 6],
        &[0, 0, 0, 1, 0x09, 0xf0]
    );
    assert_eq!(first[header_len + 10] & 0x1f, 7, "SPS after the AUD");
    let mut last_dts = 0;
    for (_, pes) in video {
        let (pts, dts) = pes_pts(pes);
        let dts = dts.unwrap_or(pts);
        assert!(pts >= dts && dts >= last_dts);
        last_dts = dts;
    }
    // Audio: ADTS behind each PES header, with the frame's length.
    for (_, pes) in audio {
        let adts = &pes[14..];
        assert_eq!(&adts[..2], &[0xff, 0xf1]);
        let len =
            usize::from(adts[3] & 3) << 11 | usize::from(adts[4]) << 3 | usize::from(adts[5] >> 5);
        assert_eq!(len, adts.len());
    }
}

#[test]
fn a_discontinuity_is_flagged_once_per_pid() {
    let msgs = clip();
    let mut m = TsMuxer::new();
    mux_all(&mut m, &msgs);
    m.discontinuity();
    let again = mux_all(&mut m, &msgs);
    let mut r = Reader::default();
    for f in &again {
        r.read(&f.bytes);
    }
    assert_eq!(r.units[&VIDEO_PID][0].0 & 0x80, 0x80);
    assert_eq!(r.units[&AUDIO_PID][0].0 & 0x80, 0x80);
    assert_eq!(r.units[&VIDEO_PID][1].0 & 0x80, 0);
    assert_eq!(r.units[&AUDIO_PID][1].0 & 0x80, 0);
}

/// A publisher back on another worker: a fresh muxer there (its counters from 0) after
/// the old one. A receiver of the group reads no continuity error: every PID's first
/// packet of the new source, the tables' too, flags the discontinuity.
#[test]
fn a_new_source_on_a_fresh_muxer_flags_every_pid() {
    let msgs = clip();
    let mut old = TsMuxer::new();
    let before = mux_all(&mut old, &msgs[..msgs.len() / 2]);
    let mut fresh = TsMuxer::new();
    fresh.discontinuity();
    let after = mux_all(&mut fresh, &msgs);
    let mut r = Reader::default();
    for f in before.iter().chain(&after) {
        r.read(&f.bytes);
    }
    assert_eq!(r.cc_errors, 0);
    let tables = r.units[&PAT_PID].len();
    assert_eq!(r.units[&PAT_PID][tables - 1].0 & 0x80, 0, "flagged once");
    let first_new = r.units[&PAT_PID].len() - after.iter().filter(|f| f.key).count();
    assert_eq!(r.units[&PAT_PID][first_new].0 & 0x80, 0x80);
    assert_eq!(r.units[&PMT_PID][first_new].0 & 0x80, 0x80);
}

/// After a discontinuity nothing is muxed before a place to start (the outputs would drop
/// it and, with it, the flags): audio ahead of the first key frame waits, and the first
/// audio packets a receiver gets still flag the discontinuity.
#[test]
fn after_a_discontinuity_frames_before_a_key_frame_keep_the_flags() {
    let msgs = clip();
    let key_at = msgs
        .iter()
        .position(|(t, _, b)| {
            *t == msg_type::VIDEO && b.first() == Some(&0x17) && b.get(1) == Some(&1)
        })
        .unwrap();
    let configs = msgs[..key_at]
        .iter()
        .filter(|(_, _, b)| b.get(1) == Some(&0));
    let audio = msgs[key_at..]
        .iter()
        .filter(|(t, _, b)| *t == msg_type::AUDIO && b.get(1) == Some(&1));
    // Configurations, three audio frames, then the key frame and the rest.
    let reordered: Vec<_> = configs
        .chain(audio.take(3))
        .chain(msgs[key_at..].iter())
        .cloned()
        .collect();
    let mut m = TsMuxer::new();
    m.discontinuity();
    let muxed = mux_all(&mut m, &reordered);
    assert!(muxed[0].key, "nothing before the key frame");
    let mut r = Reader::default();
    for f in &muxed {
        r.read(&f.bytes);
    }
    for pid in [PAT_PID, PMT_PID, VIDEO_PID, AUDIO_PID] {
        assert_eq!(r.units[&pid][0].0 & 0x80, 0x80, "pid {pid:#x} flagged");
    }
}

#[test]
fn frames_before_their_configuration_are_not_sent() {
    let mut m = TsMuxer::new();
    assert!(m
        .push(msg_type::VIDEO, 0, &[0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65])
        .unwrap()
        .is_none());
    assert!(m
        .push(msg_type::AUDIO, 0, &[0xaf, 1, 0x21])
        .unwrap()
        .is_none());
    assert!(m
        .push(msg_type::DATA_AMF0, 0, &[2, 0, 1, b'x'])
        .unwrap()
        .is_none());
}

#[test]
fn audio_only_mp3_repeats_its_tables() {
    let mut m = TsMuxer::new();
    let frame = [0x2f, 0xff, 0xfb, 0x90, 0x00];
    let keys: Vec<bool> = (0..30)
        .map(|i| {
            m.push(msg_type::AUDIO, i * 26, &frame)
                .unwrap()
                .expect("a frame")
                .key
        })
        .collect();
    assert!(keys[0]);
    assert_eq!(
        keys.iter().filter(|k| **k).count(),
        2,
        "every 500 ms of 780"
    );
}

#[test]
fn a_new_codec_changes_the_pmt_version() {
    let msgs = clip();
    let mut m = TsMuxer::new();
    mux_all(&mut m, &msgs);
    let v = m.pmt_version;
    let f = m
        .push(msg_type::AUDIO, 2000, &[0x2f, 0xff, 0xfb])
        .unwrap()
        .expect("mp3 frame");
    assert_eq!(m.pmt_version, (v + 1) & 0x1f);
    let mut r = Reader::default();
    r.read(&f.bytes);
    assert_eq!(r.units[&PMT_PID][0].1[18], stream_type::MPEG1_AUDIO);
}

/// What ffprobe reads from `muxed` (written to a file): each stream's codec, size and
/// frame count, one line each. ffprobe must not complain.
fn ffprobe_streams(muxed: &[Muxed], name: &str) -> String {
    ffprobe_entries(muxed, name, "stream=codec_name,width,height,nb_read_frames")
}

/// ffprobe's `entries` (compact, no keys) of each stream of the muxed file.
fn ffprobe_entries(muxed: &[Muxed], name: &str, entries: &str) -> String {
    let path = std::env::temp_dir().join(format!("strata-{name}-{}.ts", std::process::id()));
    let bytes: Vec<u8> = muxed.iter().flat_map(|f| f.bytes.iter().copied()).collect();
    std::fs::write(&path, &bytes).expect("write the muxed file");
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-show_entries"])
        .arg(entries)
        .args(["-of", "compact=p=0:nk=1"])
        .arg(&path)
        .output();
    let _ = std::fs::remove_file(&path);
    let out = out.expect("ffprobe must be installed for this test (tests/run installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        out.stderr,
        b"",
        "ffprobe complained: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The streams, then (after a blank line) the same streams as the program lists them.
    text.split("\n\n")
        .next()
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// ffprobe reads what we mux: h264 at the clip's size, aac, every frame.
#[test]
fn ffprobe_reads_the_muxed_clip() {
    let mut m = TsMuxer::new();
    let muxed = mux_all(&mut m, &clip());
    let streams = ffprobe_streams(&muxed, "mpegts");
    assert_eq!(streams, "h264|64|48|25\naac|45", "{streams}");
}

/// HEVC as Enhanced RTMP carries it (the VOD indexer makes those messages from an x265
/// MP4: hvcC, then frames): ffprobe reads hevc at the file's size, every frame. (ffmpeg
/// 5.1's FLV muxer cannot publish HEVC, so no end-to-end test publishes it.)
#[test]
fn ffprobe_reads_muxed_hevc() {
    use crate::media::vod::content_path::FileFormat;
    use crate::media::vod::indexer::index_bytes;
    const HEVC_OPUS: &[u8] = include_bytes!("../../../media/vod/testdata/hevc_opus.mp4");
    let index = index_bytes(FileFormat::Iso, HEVC_OPUS).expect("indexed");
    let header = index.video_header.clone().expect("hvcC");
    let mut m = TsMuxer::new();
    assert!(m.push(msg_type::VIDEO, 0, &header).expect("hvcC").is_none());
    let muxed: Vec<Muxed> = index
        .samples
        .iter()
        .filter(|s| s.type_id() == msg_type::VIDEO)
        .filter_map(|s| {
            let at = s.offset as usize;
            let (type_id, body) = index.message(s, &HEVC_OPUS[at..at + s.size as usize]);
            m.push(type_id, s.timestamp, &body).expect("an HEVC frame")
        })
        .collect();
    assert!(muxed[0].key);
    let streams = ffprobe_streams(&muxed, "mpegts-hevc");
    assert_eq!(streams, "hevc|64|48|13", "{streams}");
}

proptest! {
    /// Whatever a publisher sends, the muxer answers with packets or an error, never a
    /// panic, and what it sends is whole packets with unbroken counters.
    #[test]
    fn any_messages_never_panic(msgs in proptest::collection::vec(
        (prop_oneof![Just(msg_type::AUDIO), Just(msg_type::VIDEO), Just(msg_type::DATA_AMF0)],
         any::<u32>(),
         proptest::collection::vec(any::<u8>(), 0..64)), 0..24)) {
        let mut m = TsMuxer::new();
        let mut r = Reader::default();
        for (t, ts, body) in &msgs {
            if let Ok(Some(f)) = m.push(*t, *ts, body) {
                r.read(&f.bytes);
            }
        }
        prop_assert_eq!(r.cc_errors, 0);
    }

    /// The clip's own messages with bytes changed: a config or frame may be refused, the
    /// rest goes on.
    #[test]
    fn a_mangled_clip_never_panics(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let mut msgs = clip();
        for (at, v) in flips {
            let n = msgs.len();
            let body = &mut msgs[at % n].2;
            if !body.is_empty() {
                let j = at / n % body.len();
                body[j] = v;
            }
        }
        let mut m = TsMuxer::new();
        for (t, ts, body) in &msgs {
            let _ = m.push(*t, *ts, body);
        }
    }
}

/// An output joining mid-stream: the GOP cache (headers, the last key frame and the frames
/// since) muxed for it alone, then the shared packets of the next frames, read as one
/// transport stream: it starts on the tables and a key frame, no continuity error where
/// the two meet, time never goes back; the shared muxer's own stream is undisturbed.
#[test]
fn a_joining_output_catches_up_from_the_gop_into_the_shared_counters() {
    let msgs = clip();
    let is_config = |(t, _, b): &(u8, u32, Vec<u8>)| {
        (*t == msg_type::VIDEO || *t == msg_type::AUDIO) && b.get(1) == Some(&0)
    };
    let is_key = |(t, _, b): &(u8, u32, Vec<u8>)| {
        *t == msg_type::VIDEO && b.first().map(|f| f >> 4) == Some(1) && b.get(1) == Some(&1)
    };
    let videos_before = |i: usize| msgs[..i].iter().filter(|m| m.0 == msg_type::VIDEO).count();
    // Join after about 15 pictures, past the first key frame.
    let cut = (0..msgs.len()).find(|&i| videos_before(i) >= 16).unwrap();
    let key_at = (0..cut).rev().find(|&i| is_key(&msgs[i])).unwrap();
    let mut shared = TsMuxer::new();
    let before = mux_all(&mut shared, &msgs[..cut]);
    let gop: Vec<&(u8, u32, Vec<u8>)> = msgs[..cut]
        .iter()
        .filter(|m| is_config(m))
        .chain(msgs[key_at..cut].iter())
        .collect();
    let start = shared.catch_up(gop.iter().map(|(t, ts, b)| (*t, *ts, &b[..])));
    let after = mux_all(&mut shared, &msgs[cut..]);
    assert!(start[0].key, "starts on the tables and a key frame");
    assert!(start.len() > 10, "the whole GOP: {}", start.len());
    let mut joined = Reader::default();
    for f in start.iter().chain(&after) {
        joined.read(&f.bytes);
    }
    assert_eq!(joined.cc_errors, 0);
    let video = &joined.units[&VIDEO_PID];
    assert_eq!(video[0].0 & 0x40, 0x40, "random access first");
    let mut last_dts = 0;
    for (_, pes) in video {
        let (pts, dts) = pes_pts(pes);
        let dts = dts.unwrap_or(pts);
        assert!(dts >= last_dts);
        last_dts = dts;
    }
    // The same table version as the shared stream's.
    let pmt = |r: &Reader| r.units[&PMT_PID][0].1[6];
    let mut whole = Reader::default();
    for f in before.iter().chain(&after) {
        whole.read(&f.bytes);
    }
    assert_eq!(whole.cc_errors, 0);
    assert_eq!(pmt(&joined), pmt(&whole));
}

/// An ISO test file's messages as Enhanced RTMP carries them (the VOD indexer makes them:
/// sequence headers, then every sample), audio, video or both.
fn iso_messages(file: &[u8], kinds: &[u8]) -> Vec<(u8, u32, Vec<u8>)> {
    use crate::media::vod::content_path::FileFormat;
    use crate::media::vod::indexer::index_bytes;
    let index = index_bytes(FileFormat::Iso, file).expect("indexed");
    let mut msgs = Vec::new();
    if let Some(h) = index
        .video_header
        .as_ref()
        .filter(|_| kinds.contains(&msg_type::VIDEO))
    {
        msgs.push((msg_type::VIDEO, 0, h.to_vec()));
    }
    if let Some(h) = index
        .audio_header
        .as_ref()
        .filter(|_| kinds.contains(&msg_type::AUDIO))
    {
        msgs.push((msg_type::AUDIO, 0, h.to_vec()));
    }
    for s in index
        .samples
        .iter()
        .filter(|s| kinds.contains(&s.type_id()))
    {
        let at = s.offset as usize;
        let (type_id, body) = index.message(s, &file[at..at + s.size as usize]);
        msgs.push((type_id, s.timestamp, body.to_vec()));
    }
    msgs
}

const AV1_OPUS: &[u8] = include_bytes!("../../../media/vod/testdata/av1_opus.mp4");

/// Opus as Enhanced RTMP carries it (`OpusHead`, then packets), muxed per the Opus TS
/// mapping: ffprobe reads opus, stereo at 48 kHz, every packet (27 in the file).
#[test]
fn ffprobe_reads_muxed_opus() {
    let msgs = iso_messages(AV1_OPUS, &[msg_type::AUDIO]);
    let mut m = TsMuxer::new();
    let muxed = mux_all(&mut m, &msgs);
    assert!(
        muxed[0].key,
        "audio-only: the first frame is a place to start"
    );
    let streams = ffprobe_entries(
        &muxed,
        "mpegts-opus",
        "stream=codec_name,channels,sample_rate,nb_read_frames",
    );
    assert_eq!(streams, "opus|48000|2|27", "{streams}");
    // The bytes the mapping asks for: stream_type 6, 'Opus', the channel code; each PES
    // on private_stream_1 starting with the control header and the packet's size.
    let mut r = Reader::default();
    for f in &muxed {
        r.read(&f.bytes);
    }
    let pmt = &r.units[&PMT_PID][0].1;
    let es = &pmt[13..];
    assert_eq!(es[0], stream_type::PRIVATE_PES);
    assert_eq!(
        &es[3..5 + 10],
        &[0xf0, 10, 0x05, 4, b'O', b'p', b'u', b's', 0x7f, 2, 0x80, 2]
    );
    let pes = &r.units[&AUDIO_PID][0].1;
    assert_eq!(pes[3], 0xbd);
    let body = &pes[9 + usize::from(pes[8])..];
    assert_eq!(&body[..2], &[0x7f, 0xe0]);
    let first_packet = msgs.iter().find(|m| m.2[0] & 0x0f == 1).expect("a packet");
    assert_eq!(usize::from(body[2]), first_packet.2.len() - 5);
    assert_eq!(&body[3..], &first_packet.2[5..]);
}

/// AV1 per AOM's carriage spec, read back by the spec's own rules: the PMT entry
/// (stream_type 6, registration 'AV01' first, the AV1 video descriptor from the `av1C`),
/// one access unit per PES on private_stream_1 with data_alignment_indicator set, each
/// starting with a temporal delimiter, the key frames with the sequence header and the
/// random access flag, and every OBU back intact once start codes and emulation
/// prevention bytes are taken out. (ffmpeg 5.1's demuxer does not know AV1 in TS, so
/// this is checked against the spec's byte layout; see `ffprobe_on_av1_ts`.)
#[test]
fn av1_is_carried_as_the_aom_spec_lays_it_out() {
    let msgs = iso_messages(AV1_OPUS, &[msg_type::VIDEO]);
    let av1c = &msgs[0].2[5..];
    let mut m = TsMuxer::new();
    let muxed = mux_all(&mut m, &msgs);
    assert_eq!(muxed.len(), 13);
    let mut r = Reader::default();
    for f in &muxed {
        r.read(&f.bytes);
    }
    assert_eq!(r.cc_errors, 0);
    let pmt = &r.units[&PMT_PID][0].1;
    let es = &pmt[13..];
    assert_eq!(es[0], stream_type::PRIVATE_PES);
    assert_eq!(
        &es[3..5 + 12],
        &[
            0xf0,
            12,
            0x05,
            4,
            b'A',
            b'V',
            b'0',
            b'1',
            0x80,
            4,
            av1c[0],
            av1c[1],
            av1c[2],
            0xc0 | (av1c[3] & 0x1f)
        ]
    );
    let units = &r.units[&VIDEO_PID];
    let frames: Vec<&(u8, u32, Vec<u8>)> = msgs[1..].iter().collect();
    assert_eq!(units.len(), frames.len());
    for ((flags, pes), (_, _, body)) in units.iter().zip(frames) {
        let key = body[0] >> 4 & 7 == 1;
        assert_eq!(pes[3], 0xbd, "private_stream_1");
        assert_eq!(pes[6] & 0x04, 0x04, "data_alignment_indicator");
        assert_eq!(
            flags & 0x40 != 0,
            key,
            "random_access_indicator on key frames"
        );
        let es = &pes[9 + usize::from(pes[8])..];
        let obus = split_start_codes(es);
        assert_eq!(obus[0], [0x12, 0], "a temporal delimiter first");
        let types: Vec<u8> = obus.iter().map(|o| o[0] >> 3 & 0x0f).collect();
        assert_eq!(
            types.contains(&1),
            key,
            "a sequence header with each key frame"
        );
        // The frame's own OBUs come back byte for byte after the inserted ones.
        let back: Vec<u8> = obus.concat();
        assert!(back.ends_with(&body[5..]), "every OBU intact");
    }
}

/// The spec's `ts_open_bitstream_unit` read: split at 0x000001, drop each 0x03 after two
/// zeros.
fn split_start_codes(es: &[u8]) -> Vec<Vec<u8>> {
    let starts: Vec<usize> = (0..es.len().saturating_sub(2))
        .filter(|&j| es[j..j + 3] == [0, 0, 1])
        .collect();
    assert_eq!(starts.first(), Some(&0), "the PES starts with a start code");
    starts
        .iter()
        .enumerate()
        .map(|(k, &s)| {
            let body = &es[s + 3..starts.get(k + 1).copied().unwrap_or(es.len())];
            let mut obu = Vec::new();
            let mut i = 0;
            while i < body.len() {
                if i + 2 < body.len() && body[i..i + 3] == [0, 0, 3] {
                    obu.extend_from_slice(&[0, 0]);
                    i += 3;
                } else {
                    obu.push(body[i]);
                    i += 1;
                }
            }
            obu
        })
        .collect()
}

/// What this ffprobe makes of our AV1 stream: it reads the file without a complaint and
/// lists both streams, the Opus one as opus; the AV1 one as av1 at the file's size where
/// ffmpeg knows AV1 in TS, as private data (`bin_data`) where it does not (5.1 here).
#[test]
fn ffprobe_on_av1_ts() {
    let msgs = iso_messages(AV1_OPUS, &[msg_type::VIDEO, msg_type::AUDIO]);
    let mut m = TsMuxer::new();
    let mut msgs = msgs;
    msgs.sort_by_key(|m| m.1);
    let muxed = mux_all(&mut m, &msgs);
    let streams = ffprobe_entries(&muxed, "mpegts-av1", "stream=codec_name,width,height");
    let lines: Vec<&str> = streams.lines().collect();
    assert_eq!(lines.len(), 2, "{streams}");
    assert!(lines.contains(&"opus"), "{streams}");
    assert!(
        lines.contains(&"av1|64|48") || lines.contains(&"bin_data"),
        "{streams}"
    );
}
