//! SIGINT and SIGTERM: stratad stops accepting, closes its clients and exits within 2 s.

use e2e::bounds;
use e2e::publisher::publish_sample;
use e2e::rtmp_client::RtmpClient;
use e2e::server::Server;
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// The bound, plus a little for process start-up noise on a loaded CI machine.
const EXIT_WITHIN: Duration = Duration::from_millis(2500);

fn stops_cleanly_on(signal: i32) {
    let mut server = Server::start();
    let _publisher = publish_sample(&server.url("live/test"));
    let mut player = RtmpClient::connected(server.addr(), "live").expect("connect");
    player.play("test").expect("play");
    player
        .wait_first_video(bounds::STREAM_UP)
        .expect("the player receives video");

    let sent = Instant::now();
    server.signal(signal);
    let status = server
        .wait_exit(EXIT_WITHIN)
        .unwrap_or_else(|| panic!("stratad still runs {EXIT_WITHIN:?} after signal {signal}"));
    let took = sent.elapsed();
    assert!(
        status.success(),
        "stratad exited with {status} after signal {signal}"
    );

    // The player's connection was closed by the server, not left hanging.
    player
        .wait_closed(Duration::from_secs(2))
        .expect("the player's connection is closed");
    assert!(
        TcpStream::connect(server.addr()).is_err(),
        "still accepting after exit"
    );
    let log = server.log();
    assert!(
        log.contains("shutting down"),
        "no shutdown line in the log:\n{log}"
    );
    assert!(
        log.contains("server shutting down"),
        "clients were not closed with a reason:\n{log}"
    );
    eprintln!("stratad exited {took:?} after signal {signal}");
}

#[test]
fn sigterm_closes_clients_and_exits_within_two_seconds() {
    stops_cleanly_on(libc::SIGTERM);
}

#[test]
fn sigint_closes_clients_and_exits_within_two_seconds() {
    stops_cleanly_on(libc::SIGINT);
}
