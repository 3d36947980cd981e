//! Bad input closes only the connection that sent it, with a log line naming the client and
//! the reason, while a real ffmpeg viewer of a live stream keeps receiving.

use control::client::ControlClient;
use control::protocol::{Call, Reply};
use e2e::live_fixture::LiveFixture;
use e2e::raw_chunk::{set_chunk_size, single_chunk_message, type0_header};
use e2e::rtmp_client::{wait_closed, RtmpClient};
use e2e::server::ServerOptions;
use rand::RngCore;
use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long the server may take to close a connection after bad input.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends `bytes` right after a completed handshake and checks the aftermath.
fn after_handshake_expect_close(bytes: &[u8], reasons: &[&str]) {
    let mut fx = LiveFixture::start();
    let mut client = RtmpClient::open(fx.server.addr()).expect("handshake");
    let peer = client.local_addr();
    // The server may close before it has read all of it; that is a pass, not a failure.
    let _ = client.send_raw(bytes);
    client
        .wait_closed(CLOSE_TIMEOUT)
        .expect("the server closes the connection");
    aftermath(&mut fx, peer, reasons);
}

fn aftermath(fx: &mut LiveFixture, peer: SocketAddr, reasons: &[&str]) {
    fx.assert_others_unaffected();
    fx.server.assert_closed_with_reason(peer, reasons);
    fx.server.assert_alive();
}

#[test]
fn garbage_handshake_closes_only_that_connection() {
    let mut fx = LiveFixture::start();
    // C0 = 7 (no such version), then random bytes; and an all-random "handshake".
    let mut bad_version = vec![0x07u8; 1 + 1536];
    rand::thread_rng().fill_bytes(&mut bad_version[1..]);
    let mut random = vec![0u8; 1 + 1536];
    rand::thread_rng().fill_bytes(&mut random);
    random[0] = 0xA5; // never a valid version byte
    for garbage in [bad_version, random] {
        let mut stream = RtmpClient::tcp(fx.server.addr()).expect("tcp connect");
        let peer = stream.local_addr().expect("local addr");
        let _ = stream.write_all(&garbage);
        wait_closed(&mut stream, CLOSE_TIMEOUT).expect("the server closes the connection");
        aftermath(&mut fx, peer, &["handshake"]);
    }
}

#[test]
fn set_chunk_size_zero_closes_only_that_connection() {
    after_handshake_expect_close(&set_chunk_size(0), &["chunk size"]);
}

#[test]
fn set_chunk_size_2_pow_31_closes_only_that_connection() {
    after_handshake_expect_close(&set_chunk_size(0x8000_0000), &["chunk size"]);
}

#[test]
fn message_announcing_16_mib_closes_only_that_connection() {
    let mut bytes = type0_header(3, 0, 0xFF_FFFF, 20, 0);
    bytes.extend_from_slice(&[0u8; 128]);
    after_handshake_expect_close(&bytes, &["over the limit"]);
}

#[test]
fn truncated_amf_command_closes_only_that_connection() {
    // "connect" announced as a 7-byte AMF0 string, cut after 4 bytes.
    let payload = [0x02, 0x00, 0x07, b'c', b'o', b'n', b'n'];
    after_handshake_expect_close(&single_chunk_message(3, 20, 0, &payload), &["AMF"]);
}

#[test]
fn thousands_of_chunk_streams_close_only_that_connection() {
    // The first 128-byte chunk of a 1000-byte message on each of 3000 chunk stream ids: each
    // one leaves a partial message behind.
    let mut bytes = Vec::new();
    for csid in 64..64 + 3000 {
        bytes.extend_from_slice(&type0_header(csid, 0, 1000, 9, 1));
        bytes.extend_from_slice(&[0u8; 128]);
    }
    after_handshake_expect_close(&bytes, &["chunk streams"]);
}

#[test]
fn viewer_that_stops_reading_is_closed_for_lag() {
    stopped_reader_is_closed_for_lag("");
}

/// With zero-copy sends the kernel holds the viewer's unacknowledged data until the peer
/// acknowledges it, which this one never does: the server must still let go.
#[test]
fn viewer_that_stops_reading_is_closed_for_lag_with_zero_copy_sends() {
    stopped_reader_is_closed_for_lag("send_zerocopy = true\nsend_zerocopy_min_bytes = 0\n");
}

/// `live` is extra `[live]` settings.
fn stopped_reader_is_closed_for_lag(live: &str) {
    let config = format!("[live]\ngop_cache = true\ndrop_lag_ms = 500\nmax_lag_ms = 3000\n{live}");
    let mut fx = LiveFixture::start_with(ServerOptions {
        config: Some(config),
        ..ServerOptions::default()
    });
    // A tiny receive buffer, set before connect so the window stays small.
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    socket
        .connect_timeout(&fx.server.addr().into(), Duration::from_secs(5))
        .expect("connect");
    let stream: std::net::TcpStream = socket.into();
    let handshake = dataplane::proto::rtmp::handshake::HandshakeKind::Simple;
    let mut slow = RtmpClient::handshake(stream, handshake).expect("handshake");
    let peer = slow.local_addr();
    slow.connect("live", &fx.server.tc_url("live"))
        .expect("connect");
    slow.create_stream().expect("createStream");
    slow.play("test").expect("play");
    slow.wait_first_video(Duration::from_secs(10))
        .expect("media starts");

    // Now it never reads again. The server must give up on it within max_lag_ms plus the
    // time for its kernel buffers to fill.
    let closed = fx.server.wait_log_line(
        &[&format!("peer={peer}"), "reason="],
        Duration::from_secs(30),
    );
    assert!(
        closed.is_some(),
        "no close logged for the slow viewer {peer} within 30 s"
    );
    fx.server
        .assert_closed_with_reason(peer, &["InsufficientBW", "lag"]);
    // Freed (descriptor closed, memory released) although it still reads nothing: the
    // fixture's publisher and viewer are all that is left.
    let socket = fx.server.control_socket().expect("a control socket");
    let deadline = Instant::now() + CLOSE_TIMEOUT;
    loop {
        let connections =
            match ControlClient::connect(socket).and_then(|mut c| c.request(Call::Status)) {
                Ok(Reply::Status(status)) => status.connections,
                other => panic!("status answered {other:?}"),
            };
        if connections == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{connections} connections {CLOSE_TIMEOUT:?} after the slow viewer was closed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    slow.wait_closed(CLOSE_TIMEOUT)
        .expect("the slow viewer's connection is closed");
    fx.assert_others_unaffected();
}
