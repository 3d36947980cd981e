//! Viewers arriving together on an edge with two workers (issue 9): each worker that has a
//! viewer before the stream is claimed may start a pull of its own, but only one feeds the
//! stream (the registry's claim); a worker that loses the claim lets its pull go (its links
//! close) and its viewers get the winner's stream. Whether both workers raced is up to the
//! scheduler; the invariants hold either way and the test prints which happened.

use e2e::bounds;
use e2e::publisher::publish_sample;
use e2e::rtmp_client::RtmpClient;
use e2e::scratch_dir::ScratchDir;
use e2e::server::free_addr_on;
use e2e::tiers::{host, origin_at, tier};
use std::time::{Duration, Instant};

const VIEWERS: usize = 8;

#[test]
fn racing_pulls_on_two_workers_leave_one_feeding_the_stream() {
    let dir = ScratchDir::new("tiers-duplicate-pulls");
    let origin = origin_at(free_addr_on(host(2)));
    let _publisher = publish_sample(&origin.url("lsc_origin/cam"));
    assert!(origin
        .wait_log_line(&["publish started"], bounds::STREAM_UP)
        .is_some());
    let edge = tier(
        &dir,
        "lsc_edge",
        "edge",
        host(5),
        &[("server1", origin.addr(), origin.addr(), "lsc_origin")],
        1000,
    );
    // Wait for the edge's standing link to list the stream, so every viewer pulls at once.
    assert!(edge
        .wait_log_line(&["upstream list changed", "cam"], bounds::STREAM_UP)
        .is_some());
    let addr = edge.addr();
    let viewers: Vec<_> = (0..VIEWERS)
        .map(|_| {
            // Each returns its client, still connected: the edge keeps its pull while it has
            // viewers, so the origin's count below is read before any of them leaves.
            std::thread::spawn(move || -> Result<RtmpClient, String> {
                let mut c = RtmpClient::connected(addr, "lsc_edge").map_err(|e| e.to_string())?;
                c.play("cam").map_err(|e| e.to_string())?;
                c.wait_first_video(bounds::STREAM_UP)
                    .map_err(|e| e.to_string())?;
                // Still receiving after the race settled.
                std::thread::sleep(Duration::from_secs(2));
                let deadline = Instant::now() + bounds::MESSAGE;
                loop {
                    let m = c.read_message(bounds::MESSAGE).map_err(|e| e.to_string())?;
                    if m.type_id == 9 {
                        return Ok(c);
                    }
                    if Instant::now() > deadline {
                        return Err("no video after the race".into());
                    }
                }
            })
        })
        .collect();
    let _still_watching: Vec<RtmpClient> = viewers
        .into_iter()
        .map(|v| {
            v.join()
                .expect("viewer thread")
                .unwrap_or_else(|e| panic!("a viewer: {e}\n{}", edge.log()))
        })
        .collect();
    let log = edge.log();
    let workers_used = (0..2)
        .filter(|w| log.contains(&format!("connection accepted worker={w}")))
        .count();
    let pulls = log.matches("connecting to upstream").count();
    let claims = log.matches("upstream plays").count();
    let let_go = log.matches("pull let go").count();
    println!(
        "connections on {workers_used} worker(s): {pulls} pull(s) started, {claims} claimed, \
         {let_go} let go"
    );
    assert_eq!(claims, 1, "more than one pull fed the stream:\n{log}");
    assert_eq!(pulls, claims + let_go, "a losing pull stayed:\n{log}");
    // The origin plays to the edge once after the race (a loser's play stopped).
    let origin_log = origin.log();
    let plays = origin_log.matches("play started").count();
    let stopped = origin_log.matches("play stopped").count();
    assert_eq!(plays - stopped, 1, "{origin_log}");
}
