//! RTMFP end to end: our RTMFP client (`rtmfp_client`, the client role of
//! `dataplane::proto::rtmfp`, a separate process) against a real stratad on 127.0.0.1,
//! which serves RTMFP on UDP at its RTMP listen address; ffmpeg and ffprobe on the RTMP side.

use control::client::ControlClient;
use control::protocol::{Call, ClientInfo, Reply};
use dataplane::proto::rtmfp::net_client::RtmfpNetClient;
use e2e::lossy_udp_relay::LossyUdpRelay;
use e2e::media_probe::{assert_monotonic, of_type, probe_packets, Packet};
use e2e::publisher::publish_sample;
use e2e::rtmfp_cli::RtmfpCli;
use e2e::rtmp_client::RtmpClient;
use e2e::sample_media::{sample_flv, FPS};
use e2e::scratch_dir::ScratchDir;
use e2e::server::{Server, ServerOptions};
use e2e::tools::{ffmpeg, ChildGuard};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

const CLIENT: &str = env!("CARGO_BIN_EXE_rtmfp_client");
/// Allowed deviation of the frame rate read from a file from the stream's.
const RATE_TOLERANCE: f64 = 0.10;
const EXIT: Duration = Duration::from_secs(30);

fn client(server: &Server, app: &str, action: &[&str]) -> RtmfpCli {
    client_via(server.addr(), app, action)
}

/// A client that sends its datagrams to `addr` (the server, or a relay in front of it).
fn client_via(addr: SocketAddr, app: &str, action: &[&str]) -> RtmfpCli {
    let addr = addr.to_string();
    let url = format!("rtmfp://{addr}/{app}");
    let mut args = vec![addr.as_str(), url.as_str()];
    args.extend_from_slice(action);
    RtmfpCli::spawn(Path::new(CLIENT), &args)
}

/// Video frames per second over the file's video timeline, and that it starts on a key
/// frame and its timestamps never go back.
fn video_rate(file: &Path) -> f64 {
    let packets = probe_packets(file);
    let video: Vec<&Packet> = of_type(&packets, "video");
    assert!(
        video.len() > 2 * FPS as usize,
        "{} video packets",
        video.len()
    );
    assert!(video[0].key, "the file starts on a key frame");
    assert_monotonic(&video, "video");
    let span = video[video.len() - 1].dts - video[0].dts;
    (video.len() - 1) as f64 / span
}

/// A stratad with ffmpeg publishing the sample stream to `live/cam`, once it is live.
fn server_publishing_cam() -> (Server, ChildGuard) {
    let server = Server::start();
    let publisher = publish_sample(&server.url("live/cam"));
    assert!(
        server
            .wait_log_line(&["publish started", "cam"], Duration::from_secs(15))
            .is_some(),
        "{}",
        server.log()
    );
    (server, publisher)
}

fn assert_rate(rate: f64) {
    let want = f64::from(FPS);
    assert!(
        (rate - want).abs() <= want * RATE_TOLERANCE,
        "{rate:.2} frames/s, want {want} ± {:.0} %",
        RATE_TOLERANCE * 100.0
    );
}

#[test]
fn rtmfp_connect_gets_connect_success_calls_fail_without_a_manager_and_auth_applies() {
    let mut server = Server::start();
    // Then an application call (RPC): with no manager registered it fails at once, as
    // over RTMP.
    let mut ok = client(&server, "live", &["connect", "someMethod"]);
    let (status, out) = ok.finish(EXIT);
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{out}");
    assert!(
        out.contains("status NetConnection.Connect.Success"),
        "{out}"
    );
    assert!(out.contains("answer _error"), "{out}");
    assert!(out.contains("status NetConnection.Call.Failed"), "{out}");
    let peer_id = out
        .lines()
        .find_map(|l| l.strip_prefix("peer_id "))
        .expect("a peer id");
    assert_eq!(peer_id.len(), 64, "{out}");
    assert!(
        server
            .wait_log_line(&["client connected", "app=live"], Duration::from_secs(5))
            .is_some(),
        "{}",
        server.log()
    );
    server.assert_alive();

    // The same auth decision as for RTMP: no manager, `default = "deny"`.
    let mut denying = Server::start_with(ServerOptions {
        config: Some("[auth]\non = [\"connect\"]\ndefault = \"deny\"\n".into()),
        ..ServerOptions::default()
    });
    let mut refused = client(&denying, "live", &["connect"]);
    let (status, out) = refused.finish(EXIT);
    assert_eq!(status.and_then(|s| s.code()), Some(2), "{out}");
    assert!(
        out.contains("status NetConnection.Connect.Rejected"),
        "{out}"
    );
    denying.assert_alive();
}

#[test]
fn an_rtmfp_publisher_is_played_by_ffmpeg_over_rtmp() {
    let mut server = Server::start();
    let addr = server.addr();
    rtmfp_publisher_played_by_ffmpeg(&mut server, addr, "rtmfp-publish");
    server.assert_alive();
}

/// Our client publishes the sample over RTMFP (its datagrams sent to `via`: the server, or
/// a relay in front of it) while ffmpeg plays it over RTMP into a file read at the frame
/// rate; the publisher ends cleanly with its Publish.Start.
fn rtmfp_publisher_played_by_ffmpeg(server: &mut Server, via: SocketAddr, scratch: &str) {
    let sample = sample_flv();
    let mut publisher = client_via(
        via,
        "live",
        &["publish", "cam", sample.to_str().expect("utf-8"), "14"],
    );
    assert!(
        server
            .wait_log_line(&["publish started", "cam"], Duration::from_secs(15))
            .is_some(),
        "{}",
        publisher.output()
    );
    let dir = ScratchDir::new(scratch);
    let out = dir.join("played.flv");
    let mut viewer = ffmpeg(&[
        "-rw_timeout",
        "10000000",
        "-i",
        &server.url("live/cam"),
        "-t",
        "6",
        "-c",
        "copy",
        "-y",
        out.to_str().expect("utf-8"),
    ]);
    viewer.expect_success(EXIT);
    assert_rate(video_rate(&out));
    let (status, text) = publisher.finish(EXIT);
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{text}");
    assert!(text.contains("status NetStream.Publish.Start"), "{text}");
}

#[test]
fn an_ffmpeg_publisher_is_played_over_rtmfp_into_a_valid_flv() {
    let (mut server, _publisher) = server_publishing_cam();
    let dir = ScratchDir::new("rtmfp-play");
    let out = dir.join("played.flv");
    let mut player = client(
        &server,
        "live",
        &["play", "cam", out.to_str().expect("utf-8"), "8"],
    );

    // While it plays, operators see it: `stratactl clients` and the worker counters.
    let socket = server
        .control_socket()
        .expect("a control socket")
        .to_path_buf();
    let mut control = ControlClient::connect(&socket).expect("control socket");
    let mut seen: Option<ClientInfo> = None;
    for _ in 0..100 {
        let Ok(Reply::Clients { clients }) = control.request(Call::Clients) else {
            panic!("no client list");
        };
        seen = clients.into_iter().find(|c| {
            c.protocol == "rtmfp"
                && c.playing.iter().any(|p| p.ends_with("cam"))
                && c.rtt_ms.is_some()
        });
        if seen.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let seen = seen.unwrap_or_else(|| panic!("no RTMFP player listed\n{}", player.output()));
    let Ok(Reply::Status(status)) = control.request(Call::Status) else {
        panic!("no status");
    };
    assert_eq!(
        status.workers.iter().map(|w| w.rtmfp_sessions).sum::<u64>(),
        1,
        "{status:?}"
    );

    let (exit, text) = player.finish(EXIT);
    assert_eq!(exit.and_then(|s| s.code()), Some(0), "{text}");
    assert!(text.contains("status NetStream.Play.Start"), "{text}");
    let peer_id = text.lines().find_map(|l| l.strip_prefix("peer_id "));
    assert_eq!(seen.peer_id.as_deref(), peer_id, "{seen:?}");
    assert_rate(video_rate(&out));
    server.assert_alive();
}

/// The server's byte counters (in + out), through its control socket.
fn server_bytes(control: &mut ControlClient) -> u64 {
    let Ok(Reply::Status(status)) = control.request(Call::Status) else {
        panic!("no status");
    };
    status.bytes_in + status.bytes_out
}

#[test]
fn two_clients_introduced_by_peer_id_talk_directly_and_the_server_carries_none_of_it() {
    const MESSAGES: u32 = 200;
    const BYTES: usize = 4_000;
    let mut server = Server::start();
    let mut a = client(&server, "live", &["accept", "20"]);
    let mut a_id = None;
    for _ in 0..100 {
        let out = a.output();
        if out.contains("accepting") {
            a_id = out
                .lines()
                .find_map(|l| l.strip_prefix("peer_id "))
                .map(str::to_string);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let a_id = a_id.unwrap_or_else(|| panic!("A did not connect: {}", a.output()));
    let socket = server
        .control_socket()
        .expect("a control socket")
        .to_path_buf();
    let mut control = ControlClient::connect(&socket).expect("control socket");
    let before = server_bytes(&mut control);

    let mut b = client(
        &server,
        "live",
        &["call", &a_id, &MESSAGES.to_string(), &BYTES.to_string()],
    );
    let (status, text) = b.finish(EXIT);
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{text}");
    assert!(text.contains(&format!("sent_direct {MESSAGES}")), "{text}");
    let direct = text
        .lines()
        .find_map(|l| l.strip_prefix("direct "))
        .expect("a direct session");
    assert_ne!(
        direct,
        server.addr().to_string(),
        "B's session is not with the server"
    );
    let through_server = server_bytes(&mut control) - before;
    let sent = u64::from(MESSAGES) * BYTES as u64;
    assert!(
        through_server < sent / 10,
        "the server moved {through_server} bytes while {sent} went directly"
    );

    a.kill();
    let out = a.output();
    assert!(out.contains("peer_session "), "{out}");
    server.assert_alive();
}

#[test]
fn an_rtmfp_player_whose_address_changes_mid_stream_keeps_playing() {
    let (mut server, _publisher) = server_publishing_cam();
    let dir = ScratchDir::new("rtmfp-move");
    let out = dir.join("played.flv");
    let mut player = client(
        &server,
        "live",
        &["play", "cam", out.to_str().expect("utf-8"), "8", "move"],
    );
    let (status, text) = player.finish(EXIT);
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{text}");
    let moved = text
        .lines()
        .find_map(|l| l.strip_prefix("moved "))
        .unwrap_or_else(|| panic!("the client did not move: {text}"));
    let port = moved.rsplit(':').next().expect("a port");
    assert!(
        server
            .wait_log_line(&["RTMFP client moved", port], Duration::from_secs(5))
            .is_some(),
        "the server did not follow the client to port {port}:\n{}",
        server.log()
    );
    // One session throughout: no close at the old address (the client's own close at the
    // end, if the server heard it before the client exited, names the new one).
    let closes: Vec<String> = server
        .log()
        .lines()
        .filter(|l| l.contains("RTMFP session closed"))
        .map(str::to_string)
        .collect();
    assert!(
        closes.iter().all(|l| l.contains(&format!(":{port} "))),
        "{closes:?}"
    );
    // Frames kept coming after the move: the whole file is at the frame rate.
    assert_rate(video_rate(&out));
    server.assert_alive();
}

/// Share of datagrams the lossy relay drops, each way (issue 10: "5 % random loss").
const LOSS_PERCENT: u64 = 5;

fn lossy_relay(server: &Server, seed: u64) -> LossyUdpRelay {
    LossyUdpRelay::start(
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        server.addr(),
        LOSS_PERCENT,
        seed,
    )
}

#[test]
fn through_5_percent_loss_every_rpc_call_is_answered_in_order() {
    const CALLS: u32 = 300;
    // Larger than a datagram: every call and its fragments must be reassembled.
    const ARG_BYTES: &str = "3000";
    let mut server = Server::start();
    let relay = lossy_relay(&server, 0x1055_0001);
    let mut c = client_via(
        relay.addr(),
        "live",
        &["connect", "someMethod", &CALLS.to_string(), ARG_BYTES],
    );
    let (status, out) = c.finish(EXIT);
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{out}");
    assert!(
        out.contains("status NetConnection.Connect.Success"),
        "{out}"
    );
    assert!(out.contains(&format!("answers {CALLS}\n")), "{out}");
    assert!(out.contains("in_order true"), "{out}");
    // Over RTMP the same calls fail without a manager; every answer says so.
    assert_eq!(
        out.matches("status NetConnection.Call.Failed").count(),
        CALLS as usize,
        "{out}"
    );
    assert!(
        relay.dropped() * 100 >= (relay.dropped() + relay.forwarded()) * 2,
        "the relay dropped {} of {} datagrams",
        relay.dropped(),
        relay.dropped() + relay.forwarded()
    );
    server.assert_alive();
}

#[test]
fn through_5_percent_loss_an_rtmfp_player_writes_a_valid_flv_at_the_frame_rate() {
    let (mut server, _publisher) = server_publishing_cam();
    let relay = lossy_relay(&server, 0x1055_0002);
    let dir = ScratchDir::new("rtmfp-loss-play");
    let out = dir.join("played.flv");
    let mut player = client_via(
        relay.addr(),
        "live",
        &["play", "cam", out.to_str().expect("utf-8"), "8"],
    );
    let (status, text) = player.finish(EXIT);
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{text}");
    assert!(text.contains("status NetStream.Play.Start"), "{text}");
    assert_rate(video_rate(&out));
    assert!(
        relay.dropped() > 20,
        "the relay dropped {}",
        relay.dropped()
    );
    server.assert_alive();
}

#[test]
fn through_5_percent_loss_an_rtmfp_publisher_is_played_by_ffmpeg() {
    let mut server = Server::start();
    let relay = lossy_relay(&server, 0x1055_0003);
    rtmfp_publisher_played_by_ffmpeg(&mut server, relay.addr(), "rtmfp-loss-publish");
    assert!(
        relay.dropped() > 20,
        "the relay dropped {}",
        relay.dropped()
    );
    server.assert_alive();
}

/// UDP sockets the IHello flood comes from, each its own source port: every one a new
/// peer to the server, and spread by the kernel's reuseport hash over both workers.
const FLOOD_SOCKETS: usize = 200;
/// Loopback source addresses the flood sockets are spread over (127.0.0.1 ..= .9), so the
/// flood is not one address the server could single out.
const FLOOD_HOSTS: u8 = 9;
/// The flood lasts this long at most, while both viewers play...
const FLOOD_TIME: Duration = Duration::from_secs(5);
/// ... and sends at most this many datagrams (far more than 5 s allows on loopback).
const FLOOD_MAX: u64 = 20_000_000;
/// What each viewer plays (the RTMP one: `-t`, in media time; the RTMFP one: wall time
/// from `NetStream.Play.Start`).
const PLAY_SECONDS: u64 = 10;
/// RHellos read back per flood socket at most (its receive buffer holds a few hundred).
const DRAIN_PER_SOCKET: usize = 10_000;

/// A real IHello startup datagram to `server`: the first datagram of our client role's
/// handshake (`RtmfpNetClient::connect`), encrypted with the startup key, with its own
/// random tag from `seed`. The server answers each with an RHello (a stateless cookie).
fn ihello(server: SocketAddr, seed: u64) -> Vec<u8> {
    let url = format!("rtmfp://{server}/live");
    let mut client = RtmfpNetClient::connect(0, server, &url, seed);
    let mut datagram = Vec::new();
    let to = client
        .poll_transmit(0, &mut datagram)
        .expect("a connecting client sends its IHello first");
    assert_eq!(to, server, "the IHello goes to the server");
    datagram
}

/// The resident memory of a process, in KiB (None if /proc does not say).
fn rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// RTMFP sessions open on the server and its socket sends so far (UDP datagrams and TCP
/// writes), through its control socket.
fn sessions_and_sends(control: &mut ControlClient) -> (u64, u64) {
    let Ok(Reply::Status(status)) = control.request(Call::Status) else {
        panic!("no status");
    };
    let sessions = status.workers.iter().map(|w| w.rtmfp_sessions).sum();
    (sessions, status.workers.iter().map(|w| w.sends).sum())
}

/// Datagrams the kernel dropped at the IPv4 UDP sockets bound to `port` (the workers'
/// RTMFP sockets) because their receive queues were full: the part of a flood the server
/// never saw (the last column of /proc/net/udp).
fn udp_drops(port: u16) -> u64 {
    let table = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields.get(1)?.rsplit(':').next()?;
            (u16::from_str_radix(local_port, 16).ok()? == port)
                .then(|| fields.last()?.parse::<u64>().ok())?
        })
        .sum()
}

/// Issue 10: an IHello flood from many source ports leaves RTMP and RTMFP viewers playing.
/// Every IHello is a valid one and the server must answer it (an RHello with a stateless
/// cookie), so the flood costs it work per datagram but no state; what it must not cost
/// is the viewers' frames.
#[test]
fn an_ihello_flood_from_many_source_ports_leaves_rtmp_and_rtmfp_viewers_playing() {
    let (mut server, _publisher) = server_publishing_cam();
    // The flood is made before the viewers start, so making it takes none of their time:
    // a distinct IHello (its own tag) for each socket.
    let hellos: Vec<Vec<u8>> = (0..FLOOD_SOCKETS as u64)
        .map(|i| ihello(server.addr(), 0xf100_d000 + i))
        .collect();
    let sockets: Vec<UdpSocket> = (0..FLOOD_SOCKETS)
        .map(|i| {
            let host = Ipv4Addr::new(127, 0, 0, 1 + (i % usize::from(FLOOD_HOSTS)) as u8);
            let socket = UdpSocket::bind((host, 0)).expect("bind a loopback flood socket");
            // Never waits: a send the kernel refuses is counted, not retried.
            socket.set_nonblocking(true).expect("non-blocking");
            socket
        })
        .collect();

    let dir = ScratchDir::new("rtmfp-flood");
    let rtmp_out = dir.join("rtmp.flv");
    let rtmfp_out = dir.join("rtmfp.flv");
    let seconds = PLAY_SECONDS.to_string();
    let rtmp_started = Instant::now();
    let mut rtmp_viewer = ffmpeg(&[
        "-rw_timeout",
        "10000000",
        "-i",
        &server.url("live/cam"),
        "-t",
        &seconds,
        "-c",
        "copy",
        "-y",
        rtmp_out.to_str().expect("utf-8"),
    ]);
    let mut rtmfp_viewer = client(
        &server,
        "live",
        &["play", "cam", rtmfp_out.to_str().expect("utf-8"), &seconds],
    );
    // Both are playing before the flood starts: the RTMFP one has its Play.Start, the RTMP
    // one has written its file's first bytes.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !(rtmfp_viewer
        .output()
        .contains("status NetStream.Play.Start")
        && std::fs::metadata(&rtmp_out).is_ok_and(|m| m.len() > 0))
    {
        assert!(
            Instant::now() < deadline,
            "the viewers did not start: RTMFP:\n{}\nRTMP:\n{}",
            rtmfp_viewer.output(),
            rtmp_viewer.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let socket = server
        .control_socket()
        .expect("a control socket")
        .to_path_buf();
    let mut control = ControlClient::connect(&socket).expect("control socket");
    let (sessions, sends_before) = sessions_and_sends(&mut control);
    assert_eq!(sessions, 1, "the RTMFP viewer's session");
    let rss_before = rss_kib(server.pid());
    let drops_before = udp_drops(server.port());

    // The flood: round after round over the sockets, as fast as the loop goes, bounded by
    // time and by count.
    let (mut sent, mut refused) = (0u64, 0u64);
    let flood_started = Instant::now();
    'flood: while flood_started.elapsed() < FLOOD_TIME {
        for (socket, hello) in sockets.iter().zip(&hellos) {
            if sent + refused >= FLOOD_MAX {
                break 'flood;
            }
            match socket.send_to(hello, server.addr()) {
                Ok(_) => sent += 1,
                Err(_) => refused += 1,
            }
        }
    }
    let flooded_for = flood_started.elapsed();
    // RHellos that came back (a lower bound: each socket's receive buffer held only the
    // last few hundred), proof that these were IHellos the server took for real ones.
    let mut answered = 0u64;
    let mut buf = [0u8; 2048];
    for socket in &sockets {
        for _ in 0..DRAIN_PER_SOCKET {
            match socket.recv_from(&mut buf) {
                Ok((_, from)) if from == server.addr() => answered += 1,
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
    // No state per IHello: still the viewer's session alone (its memory is printed too).
    let (sessions_after, sends_after) = sessions_and_sends(&mut control);
    let rss_after = rss_kib(server.pid());
    let dropped = udp_drops(server.port()).saturating_sub(drops_before);
    eprintln!(
        "IHello flood: {sent} sent ({refused} refused by our kernel) from {FLOOD_SOCKETS} \
         sockets on {FLOOD_HOSTS} addresses in {flooded_for:.2?} ({:.0}/s); {dropped} \
         dropped by the kernel at the server's full sockets; the server made {} socket sends \
         meanwhile (RHellos and the viewers' media); at least {answered} RHellos read \
         back; server RSS {rss_before:?} KiB before, {rss_after:?} KiB after",
        sent as f64 / flooded_for.as_secs_f64(),
        sends_after - sends_before
    );
    assert!(sent > 0, "no IHello sent");
    assert!(answered > 0, "the server answered none of {sent} IHellos");
    assert_eq!(sessions_after, 1, "the flood left RTMFP sessions behind");

    // Both viewers played on: their whole files at the frame rate, and as many frames as
    // the time they played.
    rtmp_viewer.expect_success(EXIT);
    let rtmp_took = rtmp_started.elapsed();
    let (status, text) = rtmfp_viewer.finish(EXIT);
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{text}");
    let rtmp_rate = video_rate(&rtmp_out);
    let rtmfp_rate = video_rate(&rtmfp_out);
    let rtmp_frames = of_type(&probe_packets(&rtmp_out), "video").len();
    let rtmfp_frames: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("frames "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no frame count: {text}"));
    eprintln!(
        "RTMP viewer: {rtmp_frames} frames at {rtmp_rate:.2}/s, {rtmp_took:.2?} for \
         {PLAY_SECONDS} s; RTMFP viewer: {rtmfp_frames} frames at {rtmfp_rate:.2}/s in \
         {PLAY_SECONDS} s"
    );
    assert_rate(rtmp_rate);
    assert_rate(rtmfp_rate);
    // `-t` ends the RTMP viewer after PLAY_SECONDS of media: its frame count is that at the
    // frame rate, and a stall shows as time taken beyond it (the GOP cache's burst at the
    // start makes it a little less; ffmpeg's start a little more).
    let want = (PLAY_SECONDS * u64::from(FPS)) as f64;
    assert!(
        (rtmp_frames as f64 - want).abs() <= want * RATE_TOLERANCE,
        "the RTMP viewer wrote {rtmp_frames} frames in {PLAY_SECONDS} s"
    );
    assert!(
        rtmp_took < Duration::from_secs(PLAY_SECONDS + 5),
        "the RTMP viewer took {rtmp_took:?} to play {PLAY_SECONDS} s"
    );
    // The RTMFP viewer plays PLAY_SECONDS of wall time: at least that many seconds of
    // frames (a stall would leave fewer), at most that and the cached GOP (2 s) it starts
    // with.
    let most = (PLAY_SECONDS + 2) as f64 * f64::from(FPS) * (1.0 + RATE_TOLERANCE);
    assert!(
        rtmfp_frames as f64 >= want * (1.0 - RATE_TOLERANCE) && rtmfp_frames as f64 <= most,
        "the RTMFP viewer got {rtmfp_frames} frames in {PLAY_SECONDS} s"
    );

    // The server is unharmed: alive, nothing panicked, and it takes new clients of both
    // kinds.
    server.assert_alive();
    assert!(
        !server.log().contains("panicked"),
        "the server panicked:\n{}",
        server.log()
    );
    let mut late = RtmpClient::connected(server.addr(), "live").expect("a new RTMP client");
    late.play("cam").expect("play");
    late.wait_first_video(Duration::from_secs(10))
        .expect("a new RTMP viewer gets video");
    let mut again = client(&server, "live", &["connect"]);
    let (status, out) = again.finish(EXIT);
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{out}");
    assert!(
        out.contains("status NetConnection.Connect.Success"),
        "{out}"
    );
    server.assert_alive();
}
