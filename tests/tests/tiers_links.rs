//! LiveStreamCast's standing links (issue 9, "connect to every group, register with
//! FCAddChild, keep a list of active publishers per upstream"): two origins (127.0.0.2,
//! .3), an intermediate (.4) with both as groups, an edge (.5) below it. Every lower tier
//! registers with its groups when it starts; the lists follow publishers starting and
//! stopping on the origins, down through the intermediate; a subscribe for a name no list
//! has is answered StreamNotFound at once without asking any origin; a player waiting for a
//! name gets it when an origin's publisher starts.

use control::client::ControlClient;
use control::protocol::{Call, Reply, UpstreamInfo};
use dataplane::proto::amf0::Amf0Value;
use e2e::bounds;
use e2e::publisher::publish_sample;
use e2e::rtmp_client::{info_code, RtmpClient};
use e2e::scratch_dir::ScratchDir;
use e2e::server::{free_addr_on, Server};
use e2e::tiers::{host, origin_at, tier};
use std::time::{Duration, Instant};

fn links(server: &Server) -> Vec<UpstreamInfo> {
    let socket = server
        .control_socket()
        .expect("control socket")
        .to_path_buf();
    let mut control = ControlClient::connect(&socket).expect("control");
    match control
        .request(Call::UpstreamLinks)
        .expect("upstream links")
    {
        Reply::Upstreams { upstreams } => upstreams,
        other => panic!("upstream links answered {other:?}"),
    }
}

/// Waits (bounded) until `server`'s links satisfy `ok`; the last listing otherwise.
fn wait_links(server: &Server, what: &str, ok: impl Fn(&[UpstreamInfo]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let l = links(server);
        if ok(&l) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {l:#?}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn lists(l: &[UpstreamInfo], group: &str, name: &str) -> bool {
    l.iter()
        .any(|u| u.group == group && u.state == "registered" && u.streams.iter().any(|s| s == name))
}

fn subscribe(client: &mut RtmpClient, name: &str) -> String {
    client
        .send_command(
            0,
            "FCSubscribe",
            Amf0Value::Null,
            &[Amf0Value::string(name)],
        )
        .expect("FCSubscribe sent");
    let reply = client
        .wait_command(bounds::STREAM_UP, "onFMSubscribe", |c| {
            c.name == "onFMSubscribe"
        })
        .unwrap_or_else(|e| panic!("no onFMSubscribe: {e}"));
    info_code(&reply).unwrap_or_default()
}

#[test]
fn lower_tiers_register_keep_the_lists_and_answer_from_them() {
    let dir = ScratchDir::new("tiers-links");
    let (a_addr, b_addr) = (free_addr_on(host(2)), free_addr_on(host(3)));
    let origins = [origin_at(a_addr), origin_at(b_addr)];
    let intermediate = tier(
        &dir,
        "lsc_intermediate",
        "intermediate",
        host(4),
        &[
            ("server1", a_addr, a_addr, "lsc_origin"),
            ("server2", b_addr, b_addr, "lsc_origin"),
        ],
        1000,
    );
    let i_addr = intermediate.addr();
    let edge = tier(
        &dir,
        "lsc_edge",
        "edge",
        host(5),
        &[("server1", i_addr, i_addr, "lsc_intermediate")],
        1000,
    );

    // Both tiers register with every group when they start, before any viewer.
    wait_links(
        &intermediate,
        "the intermediate registers with both origins",
        |l| l.len() == 2 && l.iter().all(|u| u.state == "registered" && u.active),
    );
    wait_links(&edge, "the edge registers with the intermediate", |l| {
        l.len() == 1 && l[0].state == "registered"
    });
    for o in &origins {
        assert!(
            o.log().contains("child server registered"),
            "an origin saw no FCAddChild:\n{}",
            o.log()
        );
    }

    // A publisher on the first origin: its group lists it, and the edge hears of it from
    // the intermediate (which pulls nothing for that).
    let mut publisher = publish_sample(&origins[0].url("lsc_origin/cam"));
    wait_links(&intermediate, "server1 lists cam", |l| {
        lists(l, "server1", "cam") && !lists(l, "server2", "cam")
    });
    wait_links(&edge, "the edge's list has cam", |l| {
        lists(l, "server1", "cam")
    });
    assert!(!intermediate.log().contains("upstream plays"));

    // A name no list has: StreamNotFound at once (after the lists' 150 ms grace for an
    // addStream still on its way), and no origin is asked for it.
    let mut subscriber = RtmpClient::connected(edge.addr(), "lsc_edge").expect("connect");
    let asked = Instant::now();
    assert_eq!(
        subscribe(&mut subscriber, "nosuch"),
        "NetStream.Play.StreamNotFound"
    );
    let answered = asked.elapsed();
    assert!(
        answered < Duration::from_millis(500),
        "answered after {answered:?}"
    );
    println!("StreamNotFound from the lists after {answered:?}");
    for o in &origins {
        assert!(
            !o.log().contains("nosuch"),
            "an origin was asked:\n{}",
            o.log()
        );
    }
    assert!(
        !intermediate.log().contains("stream=\"nosuch\""),
        "{}",
        intermediate.log()
    );

    // A player waits for a name nobody publishes yet; a publisher starts on the second
    // origin: the lists carry it down and the edge pulls it for the waiting player.
    let mut waiting = RtmpClient::connected(edge.addr(), "lsc_edge").expect("connect");
    waiting.play("later").expect("play");
    std::thread::sleep(Duration::from_millis(500));
    for o in &origins {
        assert!(!o.log().contains("play started"), "{}", o.log());
    }
    let _later = publish_sample(&origins[1].url("lsc_origin/later"));
    waiting
        .wait_first_video(bounds::STREAM_UP)
        .expect("the waiting player gets video once an origin publishes it");

    // The first publisher stops: removeStream reaches the edge's list.
    publisher.kill();
    wait_links(&edge, "cam leaves the edge's list", |l| {
        !lists(l, "server1", "cam") && lists(l, "server1", "later")
    });
    assert_eq!(
        subscribe(&mut subscriber, "cam"),
        "NetStream.Play.StreamNotFound"
    );
}

/// A reload that changes an edge's host.ini: its links to the old groups close and the new
/// groups' open and register, with their own lists.
#[test]
fn a_reload_with_new_groups_moves_the_standing_links() {
    let dir = ScratchDir::new("tiers-links-reload");
    let (a_addr, b_addr) = (free_addr_on(host(2)), free_addr_on(host(3)));
    let origins = [origin_at(a_addr), origin_at(b_addr)];
    let _on_b = publish_sample(&origins[1].url("lsc_origin/cam"));
    let edge = tier(
        &dir,
        "lsc_edge",
        "edge",
        host(5),
        &[("server1", a_addr, a_addr, "lsc_origin")],
        1000,
    );
    wait_links(&edge, "the edge registers with the first origin", |l| {
        l.len() == 1 && l[0].state == "registered" && l[0].primary == a_addr.to_string()
    });
    let mut subscriber = RtmpClient::connected(edge.addr(), "lsc_edge").expect("connect");
    assert_eq!(
        subscribe(&mut subscriber, "cam"),
        "NetStream.Play.StreamNotFound"
    );

    std::fs::write(
        dir.join("lsc_edge-host.ini"),
        format!("server2 {b_addr};{b_addr} lsc_origin\n"),
    )
    .expect("new host.ini");
    let socket = edge.control_socket().expect("control socket").to_path_buf();
    let mut control = ControlClient::connect(&socket).expect("control");
    match control.request(Call::Reload) {
        Ok(Reply::Done { done: true, .. }) => {}
        other => panic!("the reload was refused: {other:?}"),
    }
    wait_links(&edge, "the edge's link moves to the new group", |l| {
        l.len() == 1 && l[0].group == "server2" && lists(l, "server2", "cam")
    });
    assert!(
        origins[0]
            .wait_log_line(&["connection closed", "app=lsc_origin"], bounds::MESSAGE)
            .is_some(),
        "the old group's link stayed:\n{}",
        origins[0].log()
    );
    assert_eq!(subscribe(&mut subscriber, "cam"), "NetStream.Play.Start");
}
