//! Multicast outputs end to end, inside a network namespace each test makes (`NetNs`):
//! ffmpeg publishes over RTMP, stratad sends the stream as MPEG-TS to multicast groups,
//! and ffmpeg, ffprobe and our own sockets receive it there.

use e2e::netns::NetNs;
use e2e::publisher::publish_sample;
use e2e::sample_media::{FPS, GOP_FRAMES, HEIGHT, WIDTH};
use e2e::scratch_dir::ScratchDir;
use e2e::server::{Server, ServerOptions};
use e2e::tools::{ffmpeg, ffprobe_json, ChildGuard};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

const SECONDS: u32 = 5;
const RECEIVE_TIMEOUT: Duration = Duration::from_secs(40);

fn server(outputs: &str) -> Server {
    Server::start_with(ServerOptions {
        workers: 2,
        config: Some(outputs.to_string()),
        rust_log: "info,dataplane::engine::worker::multicast=debug".into(),
        ..Default::default()
    })
}

fn output(stream: &str, group: &str, extra: &str) -> String {
    format!("[[multicast]]\nstream = \"{stream}\"\ngroup = \"{group}\"\n{extra}\n")
}

/// `ffmpeg -i <input> -c copy -t 5 out.ts`, logging at debug so that the TS demuxer's
/// continuity checks are in its stderr.
fn receive(input_args: &[&str], out: &Path) -> ChildGuard {
    let out = out.to_str().expect("utf-8 path");
    let secs = SECONDS.to_string();
    let mut args = vec!["-hide_banner", "-nostdin", "-loglevel", "debug"];
    args.extend_from_slice(input_args);
    args.extend_from_slice(&["-c", "copy", "-t", &secs, "-y", out]);
    ChildGuard::spawn("ffmpeg", &args)
}

fn udp_input(group: &str) -> String {
    // Receive timeout in microseconds: the receiver gives up instead of hanging.
    format!("udp://{group}?timeout=30000000&fifo_size=1000000&overrun_nonfatal=1")
}

/// What the received file must be: h264 at the published size and aac, 5 s of frames
/// (within 10 %), video timestamps that never go back, and no continuity errors.
fn check_received(out: &Path, receiver: &ChildGuard) {
    let path = out.to_str().expect("utf-8 path");
    let streams = ffprobe_json(
        &["-show_entries", "stream=codec_name,width,height", path],
        Duration::from_secs(30),
    );
    let streams = streams["streams"].as_array().expect("streams").clone();
    let video = streams
        .iter()
        .find(|s| s["codec_name"] == "h264")
        .unwrap_or_else(|| panic!("no h264 in {streams:?}"));
    assert_eq!(video["width"], WIDTH);
    assert_eq!(video["height"], HEIGHT);
    assert!(
        streams.iter().any(|s| s["codec_name"] == "aac"),
        "no aac in {streams:?}"
    );
    let packets = ffprobe_json(
        &[
            "-select_streams",
            "v",
            "-show_entries",
            "packet=dts,flags",
            path,
        ],
        Duration::from_secs(30),
    );
    let packets = packets["packets"].as_array().expect("packets").clone();
    let expected = f64::from(SECONDS * FPS);
    let n = packets.len() as f64;
    assert!(
        (n - expected).abs() <= expected * 0.1,
        "{n} video frames in {SECONDS} s, expected {expected} ± 10 %"
    );
    assert!(
        packets[0]["flags"].as_str().unwrap_or("").contains('K'),
        "the output starts on a key frame: {:?}",
        packets[0]
    );
    let dts: Vec<i64> = packets.iter().filter_map(|p| p["dts"].as_i64()).collect();
    assert_eq!(dts.len(), packets.len(), "every packet has a dts");
    assert!(
        dts.windows(2).all(|w| w[0] < w[1]),
        "video timestamps go back: {dts:?}"
    );
    let log = receiver.stderr();
    for bad in [
        "Continuity check failed",
        "Packet corrupt",
        "PES packet size mismatch",
    ] {
        assert!(!log.contains(bad), "ffmpeg's log has {bad:?}");
    }
}

#[test]
fn ffmpeg_receives_h264_and_aac_from_the_group() {
    let _ns = NetNs::enter();
    let group = "239.10.0.1:5000";
    let srv = server(&output("live/cam", group, ""));
    let dir = ScratchDir::new("multicast");
    let out = dir.join("out.ts");
    let input = udp_input(group);
    let mut receiver = receive(&["-i", &input], &out);
    std::thread::sleep(Duration::from_millis(500));
    let _publisher = publish_sample(&srv.url("live/cam"));
    // ffprobe reads the group itself, while ffmpeg records it.
    let probe = ffprobe_json(
        &[
            "-show_entries",
            "stream=codec_name,width,height",
            &udp_input(group),
        ],
        Duration::from_secs(30),
    );
    let names: Vec<&str> = probe["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .filter_map(|s| s["codec_name"].as_str())
        .collect();
    assert!(names.contains(&"h264") && names.contains(&"aac"), "{probe}");
    receiver.expect_success(RECEIVE_TIMEOUT);
    check_received(&out, &receiver);
    assert!(
        srv.log().contains("multicast output started"),
        "{}",
        srv.log()
    );
}

#[test]
fn rtp_output_plays_through_an_sdp_file() {
    let _ns = NetNs::enter();
    let srv = server(&output("live/cam", "239.10.0.2:5002", "rtp = true"));
    let dir = ScratchDir::new("multicast-rtp");
    let sdp = dir.join("stream.sdp");
    std::fs::write(
        &sdp,
        "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=strata\r\nc=IN IP4 239.10.0.2/16\r\nt=0 0\r\n\
         m=video 5002 RTP/AVP 33\r\na=rtpmap:33 MP2T/90000\r\n",
    )
    .expect("write sdp");
    let out = dir.join("out.ts");
    let sdp = sdp.to_str().expect("utf-8 path").to_string();
    let mut receiver = receive(&["-protocol_whitelist", "file,udp,rtp", "-i", &sdp], &out);
    std::thread::sleep(Duration::from_millis(500));
    let _publisher = publish_sample(&srv.url("live/cam"));
    receiver.expect_success(RECEIVE_TIMEOUT);
    check_received(&out, &receiver);
}

/// Our own receiver: the group's datagrams as they come, for a bounded time.
struct Raw {
    socket: UdpSocket,
    datagrams: Vec<(Instant, Vec<u8>)>,
}

impl Raw {
    fn join(group: Ipv4Addr, port: u16) -> Raw {
        let socket = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port))
            .expect("bind the group's port");
        socket
            .join_multicast_v4(&group, &Ipv4Addr::UNSPECIFIED)
            .expect("join the group");
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .expect("timeout");
        Raw {
            socket,
            datagrams: Vec::new(),
        }
    }

    fn poll(&mut self) {
        let mut buf = [0u8; 2048];
        for _ in 0..1000 {
            match self.socket.recv(&mut buf) {
                Ok(n) => self.datagrams.push((Instant::now(), buf[..n].to_vec())),
                Err(_) => return,
            }
        }
    }

    /// The TS packets received, in order.
    fn packets(&self) -> Vec<&[u8]> {
        self.datagrams
            .iter()
            .flat_map(|(_, d)| d.chunks(188))
            .collect()
    }
}

fn pid(p: &[u8]) -> u16 {
    u16::from(p[1] & 0x1f) << 8 | u16::from(p[2])
}

/// The adaptation field's flags of a packet (0 without one).
fn af_flags(p: &[u8]) -> u8 {
    if p[3] & 0x20 != 0 && p[4] > 0 {
        p[5]
    } else {
        0
    }
}

fn receive_for(raws: &mut [&mut Raw], how_long: Duration) {
    let end = Instant::now() + how_long;
    while Instant::now() < end {
        for r in raws.iter_mut() {
            r.poll();
        }
    }
}

#[test]
fn two_streams_to_two_groups_and_one_stream_to_two_groups() {
    let _ns = NetNs::enter();
    let config = output("live/a", "239.10.0.3:5004", "")
        + &output("live/b", "239.10.0.4:5006", "")
        + &output("live/a", "239.10.0.5:5008", "");
    let srv = server(&config);
    let mut a1 = Raw::join(Ipv4Addr::new(239, 10, 0, 3), 5004);
    let mut b = Raw::join(Ipv4Addr::new(239, 10, 0, 4), 5006);
    let mut a2 = Raw::join(Ipv4Addr::new(239, 10, 0, 5), 5008);
    let _pa = publish_sample(&srv.url("live/a"));
    let _pb = publish_sample(&srv.url("live/b"));
    receive_for(&mut [&mut a1, &mut b, &mut a2], Duration::from_secs(6));
    for (name, r) in [("a1", &a1), ("b", &b), ("a2", &a2)] {
        let packets = r.packets();
        assert!(packets.len() > 1000, "{name}: {} TS packets", packets.len());
        assert!(
            packets.iter().all(|p| p.len() == 188 && p[0] == 0x47),
            "{name}"
        );
        assert_eq!(pid(packets[0]), 0, "{name} starts with the PAT");
        assert!(
            r.datagrams.iter().all(|(_, d)| d.len() <= 7 * 188),
            "{name}"
        );
    }
    // One stream to two groups: the same packets (muxed once), from the same start.
    let (x, y) = (a1.packets(), a2.packets());
    let n = x.len().min(y.len()).min(2000);
    assert_eq!(
        x[..n],
        y[..n],
        "both groups of live/a carry the same TS packets"
    );
    drop(srv);
}

#[test]
fn publisher_restart_resumes_on_a_key_frame_with_a_discontinuity() {
    let _ns = NetNs::enter();
    let srv = server(&output("live/cam", "239.10.0.6:5010", ""));
    let mut raw = Raw::join(Ipv4Addr::new(239, 10, 0, 6), 5010);
    let mut first = publish_sample(&srv.url("live/cam"));
    receive_for(&mut [&mut raw], Duration::from_secs(4));
    first.kill();
    receive_for(&mut [&mut raw], Duration::from_secs(1));
    let before = raw.datagrams.len();
    assert!(before > 100, "{before} datagrams from the first publisher");
    let _second = publish_sample(&srv.url("live/cam"));
    receive_for(&mut [&mut raw], Duration::from_secs(5));
    let after: Vec<&[u8]> = raw.datagrams[before..]
        .iter()
        .flat_map(|(_, d)| d.chunks(188))
        .collect();
    assert!(
        after.len() > 500,
        "{} TS packets after the restart",
        after.len()
    );
    // The output resumes with the tables, then a key frame flagged as a discontinuity.
    assert_eq!(pid(after[0]), 0, "resumes with the PAT");
    let first_video = after
        .iter()
        .find(|p| pid(p) == 0x100)
        .expect("video after the restart");
    assert_eq!(
        af_flags(first_video) & 0xc0,
        0xc0,
        "discontinuity and random access on the first video packet"
    );
    assert!(
        srv.log().matches("multicast output started").count() >= 2,
        "{}",
        srv.log()
    );
}

fn control(srv: &Server, call: control::protocol::MulticastCall) -> control::protocol::Reply {
    let path = srv.control_socket().expect("the server's control socket");
    let mut c = control::client::ControlClient::connect(path).expect("control socket");
    c.request(control::protocol::Call::Multicast(call))
        .expect("multicast request")
}

#[test]
fn an_output_added_and_removed_at_run_time_while_a_viewer_plays() {
    use control::protocol::{MulticastCall, Reply};
    let _ns = NetNs::enter();
    let srv = server("");
    let _publisher = publish_sample(&srv.url("live/cam"));
    std::thread::sleep(Duration::from_secs(1));
    let mut viewer = e2e::recorder::Recorder::start(&srv.url("live/cam"));
    viewer.assert_keeps_receiving(Duration::from_secs(15));
    let mut raw = Raw::join(Ipv4Addr::new(239, 10, 0, 7), 5012);
    receive_for(&mut [&mut raw], Duration::from_secs(1));
    assert!(raw.datagrams.is_empty(), "nothing before the output exists");

    let output = serde_json::from_str(r#"{"stream": "live/cam", "group": "239.10.0.7:5012"}"#)
        .expect("output");
    let added = control(&srv, MulticastCall::Add { output });
    assert!(matches!(added, Reply::Done { done: true, .. }), "{added:?}");
    let listed = control(&srv, MulticastCall::List);
    let Reply::Multicast { multicast } = listed else {
        panic!("{listed:?}");
    };
    assert_eq!(multicast.len(), 1);
    assert_eq!(multicast[0].origin, "runtime");
    receive_for(&mut [&mut raw], Duration::from_secs(3));
    let packets = raw.packets();
    assert!(
        packets.len() > 300,
        "{} TS packets after the add",
        packets.len()
    );
    // Added mid-stream: it starts on the GOP cache's key frame, after the tables.
    assert_eq!(pid(packets[0]), 0, "starts with the PAT");
    let first_video = packets.iter().find(|p| pid(p) == 0x100).expect("video");
    assert_eq!(af_flags(first_video) & 0x40, 0x40, "on a key frame");
    viewer.assert_keeps_receiving(Duration::from_secs(15));

    let group = "239.10.0.7:5012".parse().expect("addr");
    let removed = control(
        &srv,
        MulticastCall::Remove {
            stream: "live/cam".into(),
            group,
        },
    );
    assert!(
        matches!(removed, Reply::Done { done: true, .. }),
        "{removed:?}"
    );
    receive_for(&mut [&mut raw], Duration::from_millis(500));
    let after_remove = raw.datagrams.len();
    receive_for(&mut [&mut raw], Duration::from_secs(2));
    assert_eq!(
        raw.datagrams.len(),
        after_remove,
        "nothing after the remove"
    );
    viewer.assert_keeps_receiving(Duration::from_secs(15));
    assert!(
        srv.log().contains("removed by an operator"),
        "{}",
        srv.log()
    );
}

#[test]
fn a_group_without_a_route_is_logged_with_its_errno_and_retried() {
    let _ns = NetNs::enter();
    // This thread is in the namespace: take the multicast route away.
    let out = std::process::Command::new("ip")
        .args(["route", "del", "224.0.0.0/4", "dev", "lo"])
        .output()
        .expect("ip route del");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let srv = server(&output("live/cam", "239.10.0.8:5014", ""));
    let _publisher = publish_sample(&srv.url("live/cam"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !srv.log().contains("multicast send failed") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = srv.log();
    let line = log
        .lines()
        .find(|l| l.contains("multicast send failed"))
        .unwrap_or_else(|| panic!("no failure logged:\n{log}"));
    assert!(
        line.contains(&format!("errno={}", libc::ENETUNREACH)) && line.contains("239.10.0.8:5014"),
        "{line}"
    );
    // The route comes back: the output resumes (after its back-off, on a key frame).
    let out = std::process::Command::new("ip")
        .args(["route", "add", "224.0.0.0/4", "dev", "lo"])
        .output()
        .expect("ip route add");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut raw = Raw::join(Ipv4Addr::new(239, 10, 0, 8), 5014);
    receive_for(&mut [&mut raw], Duration::from_secs(10));
    let packets = raw.packets();
    assert!(
        packets.len() > 100,
        "{} TS packets after the route came back",
        packets.len()
    );
    assert_eq!(pid(packets[0]), 0, "resumes with the PAT");
}

/// What ffprobe reads from a group: the codec names.
fn probe_codecs(group: &str) -> Vec<String> {
    let probe = ffprobe_json(
        &["-show_entries", "stream=codec_name", &udp_input(group)],
        Duration::from_secs(30),
    );
    probe["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .filter_map(|s| s["codec_name"].as_str().map(str::to_string))
        .collect()
}

/// MP3 audio (the FLV muxer's own default audio codec): carried as MPEG-1 audio in the
/// TS, read back by ffprobe from the group with the H.264 video.
#[test]
fn mp3_audio_is_read_back_by_ffprobe_from_the_group() {
    let _ns = NetNs::enter();
    let group = "239.10.0.9:5000";
    let srv = server(&output("live/mp3", group, ""));
    let video = format!("testsrc2=size={WIDTH}x{HEIGHT}:rate={FPS}");
    let gop = GOP_FRAMES.to_string();
    let url = srv.url("live/mp3");
    let _publisher = ffmpeg(&[
        "-re",
        "-f",
        "lavfi",
        "-i",
        &video,
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=44100",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        &gop,
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "libmp3lame",
        "-f",
        "flv",
        &url,
    ]);
    let codecs = probe_codecs(group);
    assert!(
        codecs.iter().any(|c| c == "h264") && codecs.iter().any(|c| c == "mp3"),
        "{codecs:?}\n{}",
        srv.log()
    );
}

/// An IPv6 group (ff15::/16, site-local transient), read by ffprobe in the namespace.
#[test]
fn an_ipv6_group_is_read_by_ffprobe() {
    let ns = NetNs::enter();
    ns.enable_ipv6_multicast();
    let group = "[ff15::5:1]:5000";
    let srv = server(&output("live/six", group, ""));
    let _publisher = publish_sample(&srv.url("live/six"));
    let codecs = probe_codecs(group);
    assert!(
        codecs.iter().any(|c| c == "h264") && codecs.iter().any(|c| c == "aac"),
        "{codecs:?}\n{}",
        srv.log()
    );
}

/// Continuity errors in received TS packets: per PID, a counter that is not the last one
/// plus one, on a packet not flagged as a discontinuity. Each as (packet index, PID).
fn continuity_errors(packets: &[&[u8]]) -> Vec<(usize, u16)> {
    let mut last = std::collections::HashMap::new();
    let mut errors = Vec::new();
    for (i, p) in packets.iter().enumerate() {
        let cc = p[3] & 0x0f;
        if let Some(prev) = last.insert(pid(p), cc) {
            if (prev + 1) & 0x0f != cc && af_flags(p) & 0x80 == 0 {
                errors.push((i, pid(p)));
            }
        }
    }
    errors
}

/// The PTS of each video PES started in `packets` (90 kHz).
fn video_pts(packets: &[&[u8]]) -> Vec<u64> {
    packets
        .iter()
        .filter(|p| pid(p) == 0x100 && p[1] & 0x40 != 0)
        .filter_map(|p| {
            let start = if p[3] & 0x20 != 0 {
                5 + p[4] as usize
            } else {
                4
            };
            let pes = p.get(start..start + 14)?;
            let t = &pes[9..14];
            Some(
                u64::from(t[0] & 0x0e) << 29
                    | u64::from(t[1]) << 22
                    | u64::from(t[2] >> 1) << 15
                    | u64::from(t[3]) << 7
                    | u64::from(t[4] >> 1),
            )
        })
        .collect()
}

/// A second output added at run time to a stream whose muxer already runs (a configured
/// output sends it) starts from the GOP cache's key frame too, not the next one: its first
/// picture is older than what the first group gets after the add, its first packets are
/// the tables and a key frame, and its continuity counters run on without an error into
/// the packets it shares with the first output.
#[test]
fn a_second_output_added_at_run_time_starts_from_the_gop_cache() {
    use control::protocol::{MulticastCall, Reply};
    let _ns = NetNs::enter();
    let srv = server(&output("live/cam", "239.10.0.10:5020", ""));
    let mut first = Raw::join(Ipv4Addr::new(239, 10, 0, 10), 5020);
    let mut second = Raw::join(Ipv4Addr::new(239, 10, 0, 11), 5022);
    // The second output's start is a whole GOP at once: room for it in the receive queue
    // (a loss would read as a continuity error).
    for r in [&first, &second] {
        socket2::SockRef::from(&r.socket)
            .set_recv_buffer_size(4 << 20)
            .expect("SO_RCVBUF");
    }
    let _publisher = publish_sample(&srv.url("live/cam"));
    receive_for(&mut [&mut first], Duration::from_secs(3));
    assert!(first.datagrams.len() > 100, "the first output sends");
    let output = serde_json::from_str(r#"{"stream": "live/cam", "group": "239.10.0.11:5022"}"#)
        .expect("output");
    let added = control(&srv, MulticastCall::Add { output });
    assert!(matches!(added, Reply::Done { done: true, .. }), "{added:?}");
    let before = first.datagrams.len();
    receive_for(&mut [&mut first, &mut second], Duration::from_secs(4));
    let packets = second.packets();
    assert!(packets.len() > 500, "{} TS packets", packets.len());
    assert_eq!(pid(packets[0]), 0, "starts with the PAT");
    let first_video = packets.iter().find(|p| pid(p) == 0x100).expect("video");
    assert_eq!(af_flags(first_video) & 0x40, 0x40, "on a key frame");
    assert_eq!(continuity_errors(&packets), []);
    let after_add: Vec<&[u8]> = first.datagrams[before..]
        .iter()
        .flat_map(|(_, d)| d.chunks(188))
        .collect();
    let (joined, running) = (video_pts(&packets), video_pts(&after_add));
    assert!(
        joined[0] < running[0],
        "the second output starts from the GOP cache ({}) before what the first sends after the add ({})",
        joined[0],
        running[0]
    );

    // A reload keeps the outputs added at run time: listed, and still sending.
    let path = srv.control_socket().expect("the server's control socket");
    let mut c = control::client::ControlClient::connect(path).expect("control socket");
    let reloaded = c.request(control::protocol::Call::Reload).expect("reload");
    assert!(
        matches!(reloaded, Reply::Done { done: true, .. }),
        "{reloaded:?}"
    );
    let Reply::Multicast { multicast } = control(&srv, MulticastCall::List) else {
        panic!("a list");
    };
    assert!(
        multicast
            .iter()
            .any(|m| m.origin == "runtime" && m.output.group.to_string() == "239.10.0.11:5022"),
        "{multicast:?}"
    );
    let sent = second.datagrams.len();
    receive_for(&mut [&mut second], Duration::from_secs(2));
    assert!(
        second.datagrams.len() > sent + 50,
        "still sending after the reload"
    );
}

/// A receiver that stays on the group while the publisher leaves and comes back (on
/// whichever worker its connection lands) reads no continuity error: the new source's
/// first packets of every PID, the tables' too, flag the discontinuity.
#[test]
fn a_receiver_across_a_publisher_restart_reads_no_continuity_error() {
    let _ns = NetNs::enter();
    let srv = server(&output("live/cam", "239.10.0.12:5024", ""));
    let mut raw = Raw::join(Ipv4Addr::new(239, 10, 0, 12), 5024);
    socket2::SockRef::from(&raw.socket)
        .set_recv_buffer_size(4 << 20)
        .expect("SO_RCVBUF");
    for _ in 0..2 {
        let mut publisher = publish_sample(&srv.url("live/cam"));
        receive_for(&mut [&mut raw], Duration::from_secs(3));
        publisher.kill();
        receive_for(&mut [&mut raw], Duration::from_millis(500));
    }
    let packets = raw.packets();
    assert!(packets.len() > 1000, "{} TS packets", packets.len());
    let tables = packets.iter().filter(|p| pid(p) == 0).count();
    assert!(tables >= 2, "both sources' tables");
    assert_eq!(continuity_errors(&packets), []);
    assert!(
        srv.log().matches("multicast output started").count() >= 2,
        "{}",
        srv.log()
    );
}

/// Enhanced RTMP as a publisher sends it: stratad's own VOD plays `file` (a test file of
/// dataplane's, HEVC or AV1 with Opus, 0.52 s) to our RTMP client, which keeps the audio
/// and video messages (sequence headers, then frames), then publishes them to
/// `live/<name>` over and over, in real time, until `stop` (bounded: 30 s at most).
/// ffmpeg 5.1 cannot publish these codecs over RTMP; our client can.
fn publish_enhanced(
    srv: &Server,
    file: &str,
    name: &str,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<()> {
    use e2e::flv_source::{send_tags, Tag};
    use e2e::rtmp_client::RtmpClient;
    let mut player = RtmpClient::connected(srv.addr(), "vod").expect("connect to vod");
    player.create_stream().expect("createStream");
    player.play(&format!("mp4:{file}")).expect("play");
    let mut tags = Vec::new();
    while let Ok(m) = player.read_message(Duration::from_secs(2)) {
        if m.type_id == 8 || m.type_id == 9 {
            tags.push(Tag {
                type_id: m.type_id,
                timestamp: m.timestamp,
                body: m.payload,
            });
        }
        if tags.len() > 500 {
            break;
        }
    }
    player.shutdown();
    assert!(
        tags.len() > 20,
        "the VOD play of {file} gave {} messages",
        tags.len()
    );
    let length = tags.iter().map(|t| t.timestamp).max().unwrap_or(0) + 40;
    let mut publisher = RtmpClient::connected(srv.addr(), "live").expect("connect to live");
    publisher.create_stream().expect("createStream");
    publisher.publish(name).expect("publish");
    std::thread::spawn(move || {
        let started = Instant::now();
        for round in 0u32..60 {
            if stop.load(std::sync::atomic::Ordering::Relaxed)
                || started.elapsed() > Duration::from_secs(30)
            {
                break;
            }
            let shifted: Vec<Tag> = tags
                .iter()
                .map(|t| Tag {
                    timestamp: t.timestamp + round * length,
                    ..t.clone()
                })
                .collect();
            // Real time across rounds: wait for this round's start, then pace within it.
            let due = started + Duration::from_millis(u64::from(round * length));
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            if send_tags(&mut publisher, &shifted, u32::MAX, false).is_err() {
                break;
            }
        }
        publisher.shutdown();
    })
}

/// Where the dataplane's VOD test files are, as a content root's `vod/_definst_`.
fn enhanced_content_root(dir: &ScratchDir) -> std::path::PathBuf {
    let root = dir.join("root");
    let app = root.join("vod/_definst_");
    std::fs::create_dir_all(&app).expect("content dir");
    let testdata = e2e::server::workspace_dir().join("dataplane/src/media/vod/testdata");
    for f in ["hevc_opus.mp4", "av1_opus.mp4"] {
        std::fs::copy(testdata.join(f), app.join(f)).expect("copy the test file");
    }
    root
}

/// HEVC and Opus published over Enhanced RTMP by our client: ffprobe reads hevc at the
/// file's size and opus (mono, 48 kHz, as the file has it) from the group.
#[test]
fn hevc_and_opus_from_enhanced_rtmp_are_read_by_ffprobe_from_the_group() {
    let _ns = NetNs::enter();
    let dir = ScratchDir::new("multicast-ertmp");
    let root = enhanced_content_root(&dir);
    let group = "239.10.0.20:5000";
    let config = format!("[vod]\nroot = {root:?}\n") + &output("live/ehevc", group, "");
    let srv = server(&config);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publisher = publish_enhanced(&srv, "hevc_opus.mp4", "ehevc", stop.clone());
    let probe = ffprobe_json(
        &[
            "-show_entries",
            "stream=codec_name,width,height,channels,sample_rate",
            &udp_input(group),
        ],
        Duration::from_secs(30),
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = publisher.join();
    let streams = probe["streams"].as_array().expect("streams").clone();
    let hevc = streams
        .iter()
        .find(|s| s["codec_name"] == "hevc")
        .unwrap_or_else(|| panic!("no hevc in {streams:?}\n{}", srv.log()));
    assert_eq!(
        (hevc["width"].as_i64(), hevc["height"].as_i64()),
        (Some(64), Some(48))
    );
    let opus = streams
        .iter()
        .find(|s| s["codec_name"] == "opus")
        .unwrap_or_else(|| panic!("no opus in {streams:?}"));
    assert_eq!(opus["channels"].as_i64(), Some(1), "{opus:?}");
    assert_eq!(opus["sample_rate"].as_str(), Some("48000"), "{opus:?}");
}

/// AV1 and Opus published over Enhanced RTMP by our client: the group carries AV1 as the
/// AOM spec lays it out (stream_type 6 with the 'AV01' registration and the AV1 video
/// descriptor in the PMT, private_stream_1 PES starting with a start code and a temporal
/// delimiter); ffprobe reads the opus and lists the AV1 stream (as private data: ffmpeg
/// 5.1 does not know AV1 in TS).
#[test]
fn av1_and_opus_from_enhanced_rtmp_reach_the_group_as_the_specs_lay_them_out() {
    let _ns = NetNs::enter();
    let dir = ScratchDir::new("multicast-ertmp-av1");
    let root = enhanced_content_root(&dir);
    let group = "239.10.0.21:5000";
    let config = format!("[vod]\nroot = {root:?}\n") + &output("live/eav1", group, "");
    let srv = server(&config);
    let mut raw = Raw::join(Ipv4Addr::new(239, 10, 0, 21), 5000);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publisher = publish_enhanced(&srv, "av1_opus.mp4", "eav1", stop.clone());
    receive_for(&mut [&mut raw], Duration::from_secs(3));
    let packets = raw.packets();
    assert!(packets.len() > 50, "{} TS packets", packets.len());
    let pmt = packets.iter().find(|p| pid(p) == 0x1000).expect("a PMT");
    let pmt: &[u8] = pmt;
    let needle = [0x05, 4, b'A', b'V', b'0', b'1', 0x80, 4, 0x81];
    let at = pmt
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap_or_else(|| panic!("no AV01 registration and AV1 descriptor in {pmt:x?}"));
    assert_eq!(pmt[at - 5], 0x06, "stream_type 6 for AV1");
    assert!(
        pmt.windows(4).any(|w| w == b"Opus"),
        "the Opus registration"
    );
    // The video PID's first PES: private_stream_1, then after its header a start code and
    // a temporal delimiter OBU.
    let first = packets
        .iter()
        .find(|p| pid(p) == 0x100 && p[1] & 0x40 != 0)
        .expect("a video PES start");
    let body = if first[3] & 0x20 != 0 {
        &first[5 + usize::from(first[4])..]
    } else {
        &first[4..]
    };
    assert_eq!(&body[..4], &[0, 0, 1, 0xbd], "private_stream_1");
    let es = &body[9 + usize::from(body[8])..];
    assert_eq!(
        &es[..5],
        &[0, 0, 1, 0x12, 0],
        "a start code and a temporal delimiter"
    );
    // ffprobe binds the group's port too: our socket goes first. The stream is small
    // (64x48), and ffprobe would wait for 5 MB before giving up on the AV1 stream it
    // cannot decode: 64 KiB (a few seconds) is its probe here.
    drop(raw);
    let probe = ffprobe_json(
        &[
            "-probesize",
            "65536",
            "-show_entries",
            "stream=codec_name",
            &udp_input(group),
        ],
        Duration::from_secs(30),
    );
    let codecs: Vec<String> = probe["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .filter_map(|s| s["codec_name"].as_str().map(str::to_string))
        .collect();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = publisher.join();
    assert!(
        codecs.iter().any(|c| c == "opus") && codecs.iter().any(|c| c == "av1" || c == "bin_data"),
        "{codecs:?}\n{}",
        srv.log()
    );
}
