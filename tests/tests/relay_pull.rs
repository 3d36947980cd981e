//! A plain `pull` relay (issue 9, what it must show 5, first half): an application with
//! `pull = "rtmp://origin/live"` fetches a stream from the origin when its first viewer
//! arrives (not before), and lets go `pull_linger_ms` after the last viewer leaves (not
//! sooner). The origin's log shows the relay's play start and stop.

use e2e::bounds;
use e2e::publisher::publish_sample;
use e2e::recorder::Recorder;
use e2e::server::{Server, ServerOptions};
use e2e::tiers::host;
use std::time::{Duration, Instant};

const LINGER: Duration = Duration::from_millis(2_000);

#[test]
fn a_pull_starts_on_the_first_viewer_and_stops_after_the_last() {
    let origin = Server::start_with(ServerOptions {
        host: Some(host(2)),
        ..ServerOptions::default()
    });
    let _publisher = publish_sample(&origin.url("live/cam"));
    assert!(
        origin
            .wait_log_line(&["publish started"], bounds::STREAM_UP)
            .is_some(),
        "the publisher did not start:\n{}",
        origin.log()
    );
    let edge = Server::start_with(ServerOptions {
        config: Some(format!(
            "[[application]]\nname = \"relay\"\npull = \"rtmp://{}/live\"\n\
             pull_linger_ms = {}\n",
            origin.addr(),
            LINGER.as_millis()
        )),
        host: Some(host(5)),
        ..ServerOptions::default()
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        origin.log().matches("play started").count(),
        0,
        "the relay played before any viewer:\n{}",
        origin.log()
    );

    // Two viewers, one after the other: one pull at the origin.
    let mut first = Recorder::start(&edge.url("relay/cam"));
    first.assert_keeps_receiving(bounds::STREAM_UP);
    let mut second = Recorder::start(&edge.url("relay/cam"));
    second.assert_keeps_receiving(bounds::STREAM_UP);
    assert_eq!(
        origin.log().matches("play started").count(),
        1,
        "{}",
        origin.log()
    );

    // The first leaves: the pull stays for the second.
    drop(first);
    std::thread::sleep(LINGER + Duration::from_millis(1_000));
    second.assert_keeps_receiving(Duration::from_secs(5));
    assert_eq!(origin.log().matches("play stopped").count(), 0);

    // The last leaves: the pull stays for the linger time, then goes.
    drop(second);
    let left = Instant::now();
    std::thread::sleep(LINGER / 2);
    assert_eq!(
        origin.log().matches("play stopped").count(),
        0,
        "the pull ended before pull_linger_ms:\n{}",
        edge.log()
    );
    assert!(
        origin
            .wait_log_line(&["play stopped"], LINGER + Duration::from_secs(5))
            .is_some(),
        "the pull did not end after the last viewer left:\n{}",
        edge.log()
    );
    let after = left.elapsed();
    assert!(after >= LINGER, "ended {after:?} after the last viewer");
    println!("the pull ended {after:?} after the last viewer left");

    // A viewer again: a new pull.
    let mut again = Recorder::start(&edge.url("relay/cam"));
    again.assert_keeps_receiving(bounds::STREAM_UP);
    assert_eq!(origin.log().matches("play started").count(), 2);
}
