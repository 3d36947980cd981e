//! LiveStreamCast's subscribers (issue 9): FCSubscribe / FMSubscribe answered with
//! onFMSubscribe (Play.Start, StreamNotFound for a name no origin has, UnpublishNotify when
//! the publisher stops) and FCUnsubscribe with onFCUnsubscribe (Play.Stop), on an origin
//! (127.0.0.2) and through an edge (127.0.0.5) that asks it.

use dataplane::proto::amf0::Amf0Value;
use e2e::bounds;
use e2e::publisher::publish_sample;
use e2e::rtmp_client::{info_code, RtmpClient};
use e2e::scratch_dir::ScratchDir;
use e2e::server::{Server, ServerOptions};
use std::net::IpAddr;

fn subscribe(client: &mut RtmpClient, method: &str, name: &str) -> String {
    client
        .send_command(0, method, Amf0Value::Null, &[Amf0Value::string(name)])
        .expect("FCSubscribe sent");
    answer(client, "onFMSubscribe")
}

fn answer(client: &mut RtmpClient, method: &str) -> String {
    let reply = client
        .wait_command(bounds::STREAM_UP, method, |c| c.name == method)
        .unwrap_or_else(|e| panic!("no {method}: {e}"));
    info_code(&reply).unwrap_or_default()
}

#[test]
fn subscribers_hear_start_not_found_unpublish_and_stop_on_origin_and_edge() {
    let dir = ScratchDir::new("tiers-subscribe");
    let origin = Server::start_with(ServerOptions {
        config: Some("[[application]]\nname = \"lsc_origin\"\nrole = \"origin\"\n".into()),
        host: Some(IpAddr::from([127, 0, 0, 2])),
        ..ServerOptions::default()
    });
    let host_ini = dir.join("host.ini");
    std::fs::write(
        &host_ini,
        format!("server1 {0};{0} lsc_origin\n", origin.addr()),
    )
    .expect("host.ini");
    let edge = Server::start_with(ServerOptions {
        config: Some(format!(
            "[[application]]\nname = \"lsc_edge\"\nrole = \"edge\"\nhost_ini = {:?}\n",
            host_ini.display().to_string()
        )),
        host: Some(IpAddr::from([127, 0, 0, 5])),
        ..ServerOptions::default()
    });

    // A name nobody publishes: StreamNotFound from the origin, and through the edge.
    let mut at_origin = RtmpClient::connected(origin.addr(), "lsc_origin").expect("connect");
    assert_eq!(
        subscribe(&mut at_origin, "FMSubscribe", "nosuch"),
        "NetStream.Play.StreamNotFound"
    );
    let mut at_edge = RtmpClient::connected(edge.addr(), "lsc_edge").expect("connect");
    assert_eq!(
        subscribe(&mut at_edge, "FCSubscribe", "nosuch"),
        "NetStream.Play.StreamNotFound"
    );

    // A live one: Play.Start at both; the edge's subscriber then plays it.
    let mut publisher = publish_sample(&origin.url("lsc_origin/cam"));
    let mut waited = 0;
    let code = loop {
        let code = subscribe(&mut at_origin, "FCSubscribe", "cam");
        if code == "NetStream.Play.Start" || waited >= 50 {
            break code;
        }
        waited += 1;
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(code, "NetStream.Play.Start");
    assert_eq!(
        subscribe(&mut at_edge, "FCSubscribe", "cam"),
        "NetStream.Play.Start"
    );
    let mut viewer = RtmpClient::connected(edge.addr(), "lsc_edge").expect("connect");
    viewer.play("cam").expect("play");
    viewer
        .wait_first_video(bounds::STREAM_UP)
        .expect("video through the edge");

    // The publisher stops: UnpublishNotify to the subscribers of both.
    publisher.kill();
    assert_eq!(
        answer(&mut at_origin, "onFMSubscribe"),
        "NetStream.Play.UnpublishNotify"
    );
    assert_eq!(
        answer(&mut at_edge, "onFMSubscribe"),
        "NetStream.Play.UnpublishNotify"
    );

    // FCUnsubscribe: onFCUnsubscribe with Play.Stop.
    at_edge
        .send_command(
            0,
            "FCUnsubscribe",
            Amf0Value::Null,
            &[Amf0Value::string("cam")],
        )
        .expect("FCUnsubscribe sent");
    assert_eq!(
        answer(&mut at_edge, "onFCUnsubscribe"),
        "NetStream.Play.Stop"
    );
}
