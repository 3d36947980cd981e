//! Hot standby (issue 9, beyond the seed): an edge with `hot_standby = true` keeps the next
//! upstream group playing beside the current one (`stratactl upstreams` shows it as
//! `standby`). `kill -9` of the origin it streams from switches the stream to the standby
//! (the edge logs it): the viewer keeps its connection, timestamps stay monotonic, and the
//! time from its last picture of the old source to the new source's start stays within the
//! issue's 200 ms. On loopback the default rule's reconnect is quick too, so that bound does
//! not tell the two rules apart; the log line and the standby state are what show the
//! standby was used (benches/examples/tiers.rs measures both rules). The same kill over
//! links with 40 ms of latency each way (a delaying relay) keeps within 200 ms too, and a
//! frozen origin is left for the standby before `idle_ms`.

use control::client::ControlClient;
use control::protocol::{Call, Reply};
use e2e::bounds;
use e2e::delay_proxy::DelayProxy;
use e2e::publisher::publish_sample;
use e2e::recorder::Recorder;
use e2e::rtmp_client::RtmpClient;
use e2e::scratch_dir::ScratchDir;
use e2e::server::{free_addr_on, Server};
use e2e::tiers::{check_viewer, host, origin_at, switch_gap, tier_with, watch, MAX_GAP};
use e2e::tools::ChildGuard;
use std::time::{Duration, Instant};

/// The target for a failover with hot standby.
const HOT_MAX_GAP: Duration = Duration::from_millis(200);

#[test]
fn a_hot_standby_takes_over_within_a_few_frames() {
    let dir = ScratchDir::new("tiers-hot-standby");
    let (a_addr, b_addr) = (free_addr_on(host(2)), free_addr_on(host(3)));
    let mut origins = [Some(origin_at(a_addr)), Some(origin_at(b_addr))];
    let mut publishers = [
        Some(publish_sample(&format!("rtmp://{a_addr}/lsc_origin/cam"))),
        Some(publish_sample(&format!("rtmp://{b_addr}/lsc_origin/cam"))),
    ];
    let edge = tier_with(
        &dir,
        "lsc_edge",
        "edge",
        host(5),
        &[
            ("server1", a_addr, a_addr, "lsc_origin"),
            ("server2", b_addr, b_addr, "lsc_origin"),
        ],
        1000,
        "hot_standby = true\n",
    );
    let mut recorder = Recorder::start(&edge.url("lsc_edge/cam"));
    recorder.assert_keeps_receiving(bounds::STREAM_UP);
    let line = edge
        .wait_log_line(&["upstream plays"], bounds::MESSAGE)
        .expect("the edge plays from an origin");
    let current = if line.contains("group=server1") { 0 } else { 1 };
    assert!(
        edge.wait_log_line(&["hot standby"], bounds::MESSAGE)
            .is_some(),
        "the other group did not become the standby:\n{}",
        edge.log()
    );
    // `stratactl upstreams` says which is which.
    let socket = edge.control_socket().expect("socket").to_path_buf();
    let mut control = ControlClient::connect(&socket).expect("control");
    let upstreams = match control.request(Call::Upstreams).expect("upstreams") {
        Reply::Upstreams { upstreams } => upstreams,
        other => panic!("upstreams answered {other:?}"),
    };
    let states: Vec<_> = upstreams
        .iter()
        .map(|u| (u.group.clone(), u.state.clone()))
        .collect();
    let expect_state = |g: usize| if g == current { "streaming" } else { "standby" };
    assert_eq!(
        states,
        (0..2)
            .map(|g| (format!("server{}", g + 1), expect_state(g).to_string()))
            .collect::<Vec<_>>()
    );

    let gap = kill_current_and_time_the_switch(&edge, &mut origins, &mut publishers, current);
    println!("hot standby failover: from the last picture to the new source {gap:?}");
    assert!(
        gap <= HOT_MAX_GAP,
        "a gap of {gap:?} at the switch (limit {HOT_MAX_GAP:?})\n{}",
        edge.log()
    );
    assert!(recorder.child.is_running(), "the ffmpeg viewer stopped");
    recorder.assert_keeps_receiving(Duration::from_secs(10));
}

/// A frozen origin (SIGSTOP: its connection stays open, nothing comes) with a hot standby:
/// the edge leaves it as soon as it has been quiet for a few frame intervals while the
/// standby keeps sending, not after `idle_ms` (1 s here).
#[test]
fn a_quiet_upstream_with_a_standby_is_left_before_the_idle_interval() {
    const IDLE: Duration = Duration::from_millis(1_000);
    let dir = ScratchDir::new("tiers-hot-standby-quiet");
    let (a_addr, b_addr) = (free_addr_on(host(2)), free_addr_on(host(3)));
    let origins = [origin_at(a_addr), origin_at(b_addr)];
    let _publishers = [
        publish_sample(&format!("rtmp://{a_addr}/lsc_origin/cam")),
        publish_sample(&format!("rtmp://{b_addr}/lsc_origin/cam")),
    ];
    let edge = tier_with(
        &dir,
        "lsc_edge",
        "edge",
        host(5),
        &[
            ("server1", a_addr, a_addr, "lsc_origin"),
            ("server2", b_addr, b_addr, "lsc_origin"),
        ],
        IDLE.as_millis() as u32,
        "hot_standby = true\n",
    );
    let mut recorder = Recorder::start(&edge.url("lsc_edge/cam"));
    recorder.assert_keeps_receiving(bounds::STREAM_UP);
    let line = edge
        .wait_log_line(&["upstream plays"], bounds::MESSAGE)
        .expect("the edge plays from an origin");
    let current = if line.contains("group=server1") { 0 } else { 1 };
    assert!(
        edge.wait_log_line(&["hot standby"], bounds::MESSAGE)
            .is_some(),
        "no standby:\n{}",
        edge.log()
    );
    let until = Instant::now() + Duration::from_secs(6);
    let watcher = watch(edge.addr(), "lsc_edge", until);
    std::thread::sleep(Duration::from_secs(2));

    let frozen = Instant::now();
    origins[current].signal(libc::SIGSTOP);
    let switched = edge.wait_log_line(&["failing over to the hot standby"], Duration::from_secs(5));
    let took = frozen.elapsed();
    origins[current].signal(libc::SIGCONT);
    assert!(
        switched.is_some(),
        "the edge did not switch:\n{}",
        edge.log()
    );
    assert!(
        edge.log().contains("while the hot standby sends"),
        "the switch was not for a quiet upstream:\n{}",
        edge.log()
    );
    let seen = watcher
        .join()
        .expect("watcher thread")
        .unwrap_or_else(|e| panic!("{e}"));
    let gap = match check_viewer("edge viewer", &seen, frozen, MAX_GAP) {
        Ok(gap) => gap,
        Err(e) => panic!("{e}\n{}", edge.log()),
    };
    println!("quiet upstream with a standby: switched after {took:?}; largest gap {gap:?}");
    assert!(
        gap < IDLE,
        "the viewer waited {gap:?}, no better than the idle interval\n{}",
        edge.log()
    );
    recorder.assert_keeps_receiving(Duration::from_secs(10));
}

/// The same between hosts with real latency: each origin reaches the edge through a relay
/// that delays everything (a `kill -9` too) by 40 ms each way. The standby still takes over
/// within the 200 ms from the viewer's last picture of the old source.
#[test]
fn a_hot_standby_takes_over_within_200_ms_over_links_with_latency() {
    const DELAY: Duration = Duration::from_millis(40);
    let dir = ScratchDir::new("tiers-hot-standby-latency");
    let (a_addr, b_addr) = (free_addr_on(host(2)), free_addr_on(host(3)));
    let mut origins = [Some(origin_at(a_addr)), Some(origin_at(b_addr))];
    let mut publishers = [
        Some(publish_sample(&format!("rtmp://{a_addr}/lsc_origin/cam"))),
        Some(publish_sample(&format!("rtmp://{b_addr}/lsc_origin/cam"))),
    ];
    let proxies = [
        DelayProxy::start(host(6), a_addr, DELAY),
        DelayProxy::start(host(7), b_addr, DELAY),
    ];
    let (pa, pb) = (proxies[0].addr(), proxies[1].addr());
    // The links really are slow: a connect through one takes at least a round trip.
    let asked = Instant::now();
    let probe = RtmpClient::connected(pa, "lsc_origin").expect("connect through the proxy");
    let rtt = asked.elapsed();
    assert!(rtt >= 2 * DELAY, "a connect through the proxy took {rtt:?}");
    drop(probe);
    let edge = tier_with(
        &dir,
        "lsc_edge",
        "edge",
        host(5),
        &[
            ("server1", pa, pa, "lsc_origin"),
            ("server2", pb, pb, "lsc_origin"),
        ],
        1000,
        "hot_standby = true\n",
    );
    let mut recorder = Recorder::start(&edge.url("lsc_edge/cam"));
    recorder.assert_keeps_receiving(bounds::STREAM_UP);
    let line = edge
        .wait_log_line(&["upstream plays"], bounds::MESSAGE)
        .expect("the edge plays from an origin");
    let current = if line.contains("group=server1") { 0 } else { 1 };
    assert!(
        edge.wait_log_line(&["hot standby"], bounds::MESSAGE)
            .is_some(),
        "no standby:\n{}",
        edge.log()
    );
    let gap = kill_current_and_time_the_switch(&edge, &mut origins, &mut publishers, current);
    println!("hot standby over {DELAY:?} links: from the last picture to the new source {gap:?}");
    assert!(
        gap <= HOT_MAX_GAP,
        "a gap of {gap:?} at the switch (limit {HOT_MAX_GAP:?})\n{}",
        edge.log()
    );
    recorder.assert_keeps_receiving(Duration::from_secs(10));
}

/// Kills the origin (and its publisher) the edge streams from while a viewer watches, waits
/// for the switch to the hot standby, checks the viewer saw no gap over `MAX_GAP` and no
/// timestamp going back, and returns the gap from the last picture to the new source's first.
fn kill_current_and_time_the_switch(
    edge: &Server,
    origins: &mut [Option<Server>; 2],
    publishers: &mut [Option<ChildGuard>; 2],
    current: usize,
) -> Duration {
    let until = Instant::now() + Duration::from_secs(7);
    let watcher = watch(edge.addr(), "lsc_edge", until);
    std::thread::sleep(Duration::from_secs(3));
    let killed = Instant::now();
    if let Some(mut o) = origins[current].take() {
        o.signal(libc::SIGKILL);
        assert!(o.wait_exit(Duration::from_secs(5)).is_some());
    }
    if let Some(mut p) = publishers[current].take() {
        p.kill();
    }
    assert!(
        edge.wait_log_line(&["failing over to the hot standby"], Duration::from_secs(5))
            .is_some(),
        "the edge did not switch to its standby:\n{}",
        edge.log()
    );
    let seen = watcher
        .join()
        .expect("watcher thread")
        .unwrap_or_else(|e| panic!("{e}"));
    if let Err(e) = check_viewer("edge viewer", &seen, killed, MAX_GAP) {
        panic!("{e}\n{}", edge.log());
    }
    switch_gap(&seen, killed).expect("the viewer saw the new source start")
}
