//! A plain `push` relay (issue 9, what it must show 5, second half): ffmpeg publishes to A,
//! whose application pushes every stream to B; a viewer on B gets video. `kill -9` of B and
//! a restart where it was: A's push reconnects with back-off (seen in the control socket's
//! events and `upstreams`), a viewer on the new B gets video again, and the publisher on A
//! never notices (its one publish goes on, its ffmpeg keeps running). A reload changes a
//! running push's targets: new ones connect, removed ones close, unchanged ones stay as
//! they are.

use control::client::{ControlClient, Unsolicited};
use control::protocol::{Call, Reply};
use e2e::bounds;
use e2e::publisher::publish_sample;
use e2e::recorder::Recorder;
use e2e::server::{free_addr_on, Server, ServerOptions};
use e2e::tiers::host;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn target_at(addr: SocketAddr) -> Server {
    Server::start_with(ServerOptions {
        addr: Some(addr),
        ..ServerOptions::default()
    })
}

/// Events until one named `until` (bounded); the names seen before it.
fn events_until(events: &mut ControlClient, until: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.next_unsolicited(left).expect("events") {
            Some((_, Unsolicited::Event(e))) if e.event == until => return seen,
            Some((_, Unsolicited::Event(e))) => seen.push(e.event),
            Some(_) => {}
            None => panic!("no {until} event; seen: {seen:?}"),
        }
    }
}

fn push_row(a: &Server) -> control::protocol::UpstreamInfo {
    let socket = a.control_socket().expect("control socket").to_path_buf();
    let mut control = ControlClient::connect(&socket).expect("control");
    let upstreams = match control.request(Call::Upstreams).expect("upstreams") {
        Reply::Upstreams { upstreams } => upstreams,
        other => panic!("upstreams answered {other:?}"),
    };
    let rows: Vec<_> = upstreams
        .into_iter()
        .filter(|u| u.group.starts_with("push "))
        .collect();
    assert_eq!(rows.len(), 1, "{rows:?}");
    rows.into_iter().next().expect("one push")
}

#[test]
fn a_push_survives_a_restart_of_its_target_and_the_publisher_never_notices() {
    let b_addr = free_addr_on(host(3));
    let mut b = Some(target_at(b_addr));
    let a = Server::start_with(ServerOptions {
        config: Some(format!(
            "[[application]]\nname = \"live\"\npush = [\"rtmp://{b_addr}/live\"]\n"
        )),
        host: Some(host(2)),
        ..ServerOptions::default()
    });
    let socket = a.control_socket().expect("control socket").to_path_buf();
    let mut events = ControlClient::connect(&socket).expect("control");
    events.request(Call::Subscribe).expect("subscribe");

    let mut publisher = publish_sample(&a.url("live/cam"));
    events_until(&mut events, "push_connected");
    let target = b.as_ref().expect("B");
    assert!(
        target
            .wait_log_line(&["publish started"], bounds::STREAM_UP)
            .is_some(),
        "A's push did not publish on B:\n{}\nA:\n{}",
        target.log(),
        a.log()
    );
    let mut viewer = Recorder::start(&target.url("live/cam"));
    viewer.assert_keeps_receiving(bounds::STREAM_UP);
    let row = push_row(&a);
    assert_eq!(
        (row.state.as_str(), row.active, row.attempts),
        ("publishing", true, 0),
        "{row:?}"
    );
    assert_eq!(row.address, b_addr.to_string());
    assert_eq!(row.group, format!("push rtmp://{b_addr}/live"));

    // B dies hard; the push fails and is retried while B is down.
    if let Some(mut dead) = b.take() {
        dead.signal(libc::SIGKILL);
        assert!(dead.wait_exit(Duration::from_secs(5)).is_some());
    }
    drop(viewer);
    events_until(&mut events, "push_failed");
    // At least one more failed attempt at the dead address before B is back.
    events_until(&mut events, "push_failed");
    let row = push_row(&a);
    assert!(!row.active && row.attempts >= 2, "{row:?}");

    // B comes back where it was: the push publishes there again.
    let back = target_at(b_addr);
    let seen = events_until(&mut events, "push_connected");
    assert!(
        seen.iter().all(|e| e == "push_failed"),
        "only failures before the reconnect: {seen:?}"
    );
    let mut viewer = Recorder::start(&back.url("live/cam"));
    viewer.assert_keeps_receiving(bounds::STREAM_UP);
    let row = push_row(&a);
    assert_eq!(
        (row.state.as_str(), row.attempts),
        ("publishing", 0),
        "{row:?}"
    );

    // The publisher on A never noticed: still running, one publish that never stopped,
    // no client connection of A closed.
    assert!(
        publisher.is_running(),
        "the publisher stopped:\n{}",
        publisher.stderr()
    );
    let log = a.log();
    assert_eq!(log.matches("publish started").count(), 1, "{log}");
    assert_eq!(log.matches("publish stopped").count(), 0, "{log}");
    // (A's readiness probe closes with app=-, as the push's connections do.)
    let closed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("connection closed") && !l.contains("app=-"))
        .collect();
    assert!(
        closed.is_empty(),
        "A closed a client's connection: {closed:?}"
    );
    assert!(
        log.lines()
            .filter(|l| l.contains("connection closed") && l.contains(&b_addr.to_string()))
            .count()
            >= 1,
        "{log}"
    );
}

/// Every push row of `a`, by target address.
fn push_rows(a: &Server) -> Vec<control::protocol::UpstreamInfo> {
    let socket = a.control_socket().expect("control socket").to_path_buf();
    let mut control = ControlClient::connect(&socket).expect("control");
    let mut rows: Vec<_> = match control.request(Call::Upstreams).expect("upstreams") {
        Reply::Upstreams { upstreams } => upstreams
            .into_iter()
            .filter(|u| u.group.starts_with("push "))
            .collect(),
        other => panic!("upstreams answered {other:?}"),
    };
    rows.sort_by(|x, y| x.address.cmp(&y.address));
    rows
}

fn push_config(targets: &[SocketAddr]) -> String {
    let list: Vec<String> = targets
        .iter()
        .map(|t| format!("\"rtmp://{t}/live\""))
        .collect();
    format!(
        "[[application]]\nname = \"live\"\npush = [{}]\n",
        list.join(", ")
    )
}

/// A reload changes the targets of a running push: A pushes `cam` to B1 and B2, then its
/// configuration says B2 and B3. B3 starts getting the stream, B1's publish stops (its
/// connection closed), B2's push keeps its one connection and publish, and A's publisher
/// notices nothing.
#[test]
fn a_reload_changes_the_targets_of_a_running_push() {
    let [b1, b2, b3] = [3, 4, 6].map(|h| target_at(free_addr_on(host(h))));
    let a = Server::start_with(ServerOptions {
        config: Some(push_config(&[b1.addr(), b2.addr()])),
        host: Some(host(2)),
        ..ServerOptions::default()
    });
    let mut publisher = publish_sample(&a.url("live/cam"));
    for b in [&b1, &b2] {
        assert!(
            b.wait_log_line(&["publish started"], bounds::STREAM_UP)
                .is_some(),
            "A's push did not publish on {}:\n{}",
            b.addr(),
            a.log()
        );
    }
    let before = push_rows(&a);
    assert_eq!(before.len(), 2, "{before:?}");
    assert!(before.iter().all(|r| r.state == "publishing"), "{before:?}");
    let b2_since = before
        .iter()
        .find(|r| r.address == b2.addr().to_string())
        .expect("B2's push")
        .since;

    std::fs::write(
        a.dir().join("stratad.toml"),
        push_config(&[b2.addr(), b3.addr()]),
    )
    .expect("new config");
    let socket = a.control_socket().expect("control socket").to_path_buf();
    let mut control = ControlClient::connect(&socket).expect("control");
    match control.request(Call::Reload) {
        Ok(Reply::Done { done: true, .. }) => {}
        other => panic!("the reload was refused: {other:?}"),
    }

    // The new target gets the stream, a viewer there video.
    assert!(
        b3.wait_log_line(&["publish started"], bounds::STREAM_UP)
            .is_some(),
        "the new target got no publish:\n{}",
        a.log()
    );
    let mut viewer = Recorder::start(&b3.url("live/cam"));
    viewer.assert_keeps_receiving(bounds::STREAM_UP);
    // The removed one's publish stops.
    assert!(
        b1.wait_log_line(&["publish stopped"], bounds::MESSAGE)
            .is_some(),
        "the removed target still gets the stream:\n{}\nA:\n{}",
        b1.log(),
        a.log()
    );
    // The unchanged one was not touched: one publish, never stopped, same row.
    let after = push_rows(&a);
    let addrs: Vec<&str> = after.iter().map(|r| r.address.as_str()).collect();
    let mut expected = [b2.addr().to_string(), b3.addr().to_string()];
    expected.sort();
    assert_eq!(addrs, expected, "{after:?}");
    let kept = after
        .iter()
        .find(|r| r.address == b2.addr().to_string())
        .expect("B2's push");
    assert_eq!(
        (kept.state.as_str(), kept.attempts, kept.since),
        ("publishing", 0, b2_since),
        "{after:?}"
    );
    let b2_log = b2.log();
    assert_eq!(b2_log.matches("publish started").count(), 1, "{b2_log}");
    assert_eq!(b2_log.matches("publish stopped").count(), 0, "{b2_log}");
    let mut on_b2 = Recorder::start(&b2.url("live/cam"));
    on_b2.assert_keeps_receiving(bounds::STREAM_UP);

    assert!(
        publisher.is_running(),
        "the publisher stopped:\n{}",
        publisher.stderr()
    );
    let log = a.log();
    assert_eq!(log.matches("publish started").count(), 1, "{log}");
    assert_eq!(log.matches("publish stopped").count(), 0, "{log}");
}
