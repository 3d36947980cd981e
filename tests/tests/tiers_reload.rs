//! A reload that changes the upstream groups of an edge while it pulls a stream (issue 9):
//! the running pull takes the new groups. The group it streams from left the host.ini, so
//! the stream moves to the new group (the viewer keeps its connection and gets video from
//! it) and the old origin's link is closed.

use control::client::ControlClient;
use control::protocol::{Call, Reply};
use e2e::bounds;
use e2e::publisher::publish_sample;
use e2e::recorder::Recorder;
use e2e::scratch_dir::ScratchDir;
use e2e::server::free_addr_on;
use e2e::tiers::{check_viewer, host, origin_at, tier, watch, MAX_GAP};
use std::time::{Duration, Instant};

#[test]
fn a_reload_moves_a_running_pull_to_the_new_groups() {
    let dir = ScratchDir::new("tiers-reload");
    let (a_addr, b_addr) = (free_addr_on(host(2)), free_addr_on(host(3)));
    let origins = [origin_at(a_addr), origin_at(b_addr)];
    let _publishers = [
        publish_sample(&format!("rtmp://{a_addr}/lsc_origin/cam")),
        publish_sample(&format!("rtmp://{b_addr}/lsc_origin/cam")),
    ];
    let edge = tier(
        &dir,
        "lsc_edge",
        "edge",
        host(5),
        &[("server1", a_addr, a_addr, "lsc_origin")],
        1000,
    );
    let mut recorder = Recorder::start(&edge.url("lsc_edge/cam"));
    recorder.assert_keeps_receiving(bounds::STREAM_UP);
    assert!(edge
        .wait_log_line(&["upstream plays", "group=server1"], bounds::MESSAGE)
        .is_some());
    let until = Instant::now() + Duration::from_secs(6);
    let watcher = watch(edge.addr(), "lsc_edge", until);
    std::thread::sleep(Duration::from_secs(2));

    std::fs::write(
        dir.join("lsc_edge-host.ini"),
        format!("server2 {b_addr};{b_addr} lsc_origin\n"),
    )
    .expect("new host.ini");
    let socket = edge.control_socket().expect("control socket").to_path_buf();
    let mut control = ControlClient::connect(&socket).expect("control");
    let reloaded = Instant::now();
    match control.request(Call::Reload) {
        Ok(Reply::Done { done: true, .. }) => {}
        other => panic!("the reload was refused: {other:?}"),
    }
    assert!(
        edge.wait_log_line(
            &["stream switched upstream", "group=server2"],
            Duration::from_secs(5)
        )
        .is_some(),
        "the running pull did not move to the new group:\n{}",
        edge.log()
    );
    let upstreams = match control.request(Call::Upstreams).expect("upstreams") {
        Reply::Upstreams { upstreams } => upstreams,
        other => panic!("upstreams answered {other:?}"),
    };
    let groups: Vec<(&str, &str)> = upstreams
        .iter()
        .map(|u| (u.group.as_str(), u.state.as_str()))
        .collect();
    assert_eq!(groups, [("server2", "streaming")], "{upstreams:?}");
    let seen = watcher
        .join()
        .expect("watcher thread")
        .unwrap_or_else(|e| panic!("{e}"));
    match check_viewer("edge viewer", &seen, reloaded, MAX_GAP) {
        Ok(gap) => println!("reload: largest gap between video frames {gap:?}"),
        Err(e) => panic!("{e}\n{}", edge.log()),
    }
    recorder.assert_keeps_receiving(Duration::from_secs(10));
    assert!(
        origins[0]
            .wait_log_line(&["play stopped"], bounds::MESSAGE)
            .is_some(),
        "the old group still plays to the edge:\n{}",
        origins[0].log()
    );
}
