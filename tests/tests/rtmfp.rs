//! RTMFP end to end: our RTMFP client (`rtmfp_client`, the client role of
//! `dataplane::proto::rtmfp`, a separate process) against a real stratad on 127.0.0.1,
//! which serves RTMFP on UDP at its RTMP listen address; ffmpeg and ffprobe on the RTMP side.

use control::client::ControlClient;
use control::protocol::{Call, ClientInfo, Reply};
use e2e::lossy_udp_relay::LossyUdpRelay;
use e2e::media_probe::{assert_monotonic, of_type, probe_packets, Packet};
use e2e::publisher::publish_sample;
use e2e::rtmfp_cli::RtmfpCli;
use e2e::sample_media::{sample_flv, FPS};
use e2e::scratch_dir::ScratchDir;
use e2e::server::{Server, ServerOptions};
use e2e::tools::ffmpeg;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

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
    let sample = sample_flv();
    let mut publisher = client(
        &server,
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
    let dir = ScratchDir::new("rtmfp-publish");
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
    server.assert_alive();
}

#[test]
fn an_ffmpeg_publisher_is_played_over_rtmfp_into_a_valid_flv() {
    let mut server = Server::start();
    let _publisher = publish_sample(&server.url("live/cam"));
    assert!(
        server
            .wait_log_line(&["publish started", "cam"], Duration::from_secs(15))
            .is_some(),
        "{}",
        server.log()
    );
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
    let mut server = Server::start();
    let _publisher = publish_sample(&server.url("live/cam"));
    assert!(
        server
            .wait_log_line(&["publish started", "cam"], Duration::from_secs(15))
            .is_some(),
        "{}",
        server.log()
    );
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
    let mut server = Server::start();
    let _publisher = publish_sample(&server.url("live/cam"));
    assert!(
        server
            .wait_log_line(&["publish started", "cam"], Duration::from_secs(15))
            .is_some(),
        "{}",
        server.log()
    );
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
    let sample = sample_flv();
    let mut publisher = client_via(
        relay.addr(),
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
    let dir = ScratchDir::new("rtmfp-loss-publish");
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
    assert!(
        relay.dropped() > 20,
        "the relay dropped {}",
        relay.dropped()
    );
    server.assert_alive();
}
