//! An edge pulls from its upstream (issue 9, the engine's upstream links): separate stratad
//! processes on 127.0.0.2 (origin) and 127.0.0.3 (edge), the edge's host.ini in the seed's
//! format. A viewer on the edge gets what ffmpeg publishes on the origin; a dead upstream
//! leaves the edge's viewer connected while the link retries with back-off; the pull lets
//! go of the upstream when its last viewer leaves.

use e2e::bounds;
use e2e::publisher::publish_sample;
use e2e::recorder::Recorder;
use e2e::rtmp_client::{is_avc_key_frame, RtmpClient};
use e2e::scratch_dir::ScratchDir;
use e2e::server::{Server, ServerOptions};
use e2e::tools::rtmpdump;
use std::net::IpAddr;
use std::time::{Duration, Instant};

const ORIGIN_HOST: [u8; 4] = [127, 0, 0, 2];
const EDGE_HOST: [u8; 4] = [127, 0, 0, 3];

fn origin() -> Server {
    Server::start_with(ServerOptions {
        config: Some("[[application]]\nname = \"lsc_origin\"\nrole = \"origin\"\n".into()),
        host: Some(IpAddr::from(ORIGIN_HOST)),
        ..ServerOptions::default()
    })
}

/// An edge whose host.ini names `origin` as both primary and secondary of one group.
fn edge(dir: &ScratchDir, origin: &Server) -> Server {
    let host_ini = dir.join("host.ini");
    std::fs::write(
        &host_ini,
        format!(
            "#server group name primaryIP;secondaryIP appToConnect\n\
             server1 {0};{0} lsc_origin\n",
            origin.addr()
        ),
    )
    .expect("host.ini");
    Server::start_with(ServerOptions {
        config: Some(format!(
            "[[application]]\nname = \"lsc_edge\"\nrole = \"edge\"\nhost_ini = {:?}\n",
            host_ini.display().to_string()
        )),
        host: Some(IpAddr::from(EDGE_HOST)),
        rust_log: "info,dataplane=debug".into(),
        ..ServerOptions::default()
    })
}

#[test]
fn an_edge_viewer_gets_the_origins_stream_and_survives_the_origins_death() {
    let dir = ScratchDir::new("tiers-pull");
    let mut origin = origin();
    let mut edge = edge(&dir, &origin);
    let mut publisher = publish_sample(&origin.url("lsc_origin/cam"));

    // ffmpeg and rtmpdump on the edge, and our client (plain play) for what arrives.
    let mut viewer = Recorder::start(&edge.url("lsc_edge/cam"));
    viewer.assert_keeps_receiving(bounds::STREAM_UP);
    let dump_dir = ScratchDir::new("tiers-pull-dump");
    let dump_path = dump_dir.join("dump.flv");
    let mut dump = rtmpdump(&edge.url("lsc_edge/cam"), &dump_path, &[]);
    let mut client = RtmpClient::connected(edge.addr(), "lsc_edge").expect("edge connect");
    client.play("cam").expect("play");
    let (first, _) = client
        .wait_first_video(bounds::STREAM_UP)
        .expect("video through the edge");
    assert!(
        is_avc_key_frame(&first.payload) || first.payload.get(1) == Some(&0),
        "the first video through the edge is a key frame or its sequence header"
    );
    let deadline = Instant::now() + bounds::STREAM_UP;
    while std::fs::metadata(&dump_path).map_or(0, |m| m.len()) < 64 * 1024 {
        assert!(
            Instant::now() < deadline,
            "rtmpdump on the edge received too little:\n{}",
            dump.stderr()
        );
        assert!(dump.is_running(), "rtmpdump ended:\n{}", dump.stderr());
        std::thread::sleep(Duration::from_millis(100));
    }
    // One link for all of the edge's viewers.
    assert!(
        edge.wait_log_line(&["upstream plays"], bounds::MESSAGE)
            .is_some(),
        "the edge did not log its upstream link"
    );
    let links = edge.log().matches("upstream plays").count();
    assert_eq!(links, 1, "one upstream link per stream:\n{}", edge.log());

    // kill -9 the origin: the link fails and retries with back-off, the edge's viewers
    // stay connected.
    publisher.kill();
    origin.signal(9);
    assert!(origin.wait_exit(Duration::from_secs(5)).is_some());
    assert!(
        edge.wait_log_line(
            &["upstream link failed", "failures=2"],
            Duration::from_secs(10)
        )
        .is_some(),
        "the edge did not retry its upstream:\n{}",
        edge.log()
    );
    edge.assert_alive();
    // Our viewer is still connected: the edge closed nothing of it, and it still answers.
    let peer_tag = format!("peer={}", client.local_addr());
    assert!(
        !edge
            .log()
            .lines()
            .any(|l| l.contains(&peer_tag) && l.contains("connection closed")),
        "the edge dropped a viewer when its upstream died:\n{}",
        edge.log()
    );
    client
        .call("noSuchMethod", &[], bounds::MESSAGE)
        .expect("the viewer's connection still answers");
    client.shutdown();

    // The last viewers leave: the pull lets go (no more attempts).
    viewer.child.kill();
    dump.kill();
    assert!(
        edge.wait_log_line(&["pull ended"], Duration::from_secs(15))
            .is_some(),
        "the pull did not end after its last viewer left:\n{}",
        edge.log()
    );
}
