//! NetConnection/NetStream status flows as AMS clients expect them.

use dataplane::proto::amf0::Amf0Value;
use e2e::bounds;
use e2e::publisher::publish_sample;
use e2e::rtmp_client::{info_code, RtmpClient};
use e2e::server::Server;
use std::time::Duration;

#[test]
fn second_publisher_gets_bad_name() {
    let mut server = Server::start();
    let mut ffmpeg_publisher = publish_sample(&server.url("live/test"));
    let mut viewer = RtmpClient::connected(server.addr(), "live").expect("connect viewer");
    viewer.play("test").expect("play");
    viewer
        .wait_first_video(bounds::STREAM_UP)
        .expect("the stream goes live");

    let mut second = RtmpClient::connected(server.addr(), "live").expect("connect publisher");
    second.publish("test").expect("publish");
    second
        .wait_status("NetStream.Publish.BadName", bounds::MESSAGE)
        .expect("BadName for the second publisher");

    // The first publisher and its viewer carry on.
    viewer
        .wait_first_video(bounds::MESSAGE)
        .expect("video still flows");
    assert!(
        ffmpeg_publisher.is_running(),
        "the first publisher was dropped"
    );
    server.assert_alive();
}

#[test]
fn early_player_gets_publish_notify_then_media() {
    let mut server = Server::start();
    let mut player = RtmpClient::connected(server.addr(), "live").expect("connect");
    player.play("early").expect("play");
    // Nobody publishes yet: the player waits.
    std::thread::sleep(Duration::from_millis(500));

    let _publisher = publish_sample(&server.url("live/early"));
    player
        .wait_status("NetStream.Play.PublishNotify", bounds::STREAM_UP)
        .expect("PublishNotify when the publisher arrives");
    player
        .wait_first_video(bounds::MESSAGE)
        .expect("media after PublishNotify");
    player
        .wait_media(8, bounds::MESSAGE)
        .expect("audio after PublishNotify");
    server.assert_alive();
}

#[test]
fn viewer_gets_unpublish_notify_and_keeps_connection() {
    let mut server = Server::start();
    let mut publisher = publish_sample(&server.url("live/test"));
    let mut viewer = RtmpClient::connected(server.addr(), "live").expect("connect");
    viewer.play("test").expect("play");
    viewer
        .wait_first_video(bounds::STREAM_UP)
        .expect("the stream goes live");

    publisher.kill();
    viewer
        .wait_status("NetStream.Play.UnpublishNotify", bounds::MESSAGE)
        .expect("UnpublishNotify when the publisher leaves");

    // The connection is kept: a call still gets its answer...
    let reply = viewer
        .call("createStream", &[], bounds::MESSAGE)
        .expect("a call after unpublish");
    assert_eq!(reply.name, "_result", "{reply:?}");
    // ...and the next publisher of the name reaches the waiting viewer.
    let _next = publish_sample(&server.url("live/test"));
    viewer
        .wait_status("NetStream.Play.PublishNotify", bounds::STREAM_UP)
        .expect("PublishNotify for the next publisher");
    viewer
        .wait_first_video(bounds::MESSAGE)
        .expect("media from the next publisher");
    server.assert_alive();
}

#[test]
fn unknown_call_gets_call_failed_and_connection_stays_up() {
    let mut server = Server::start();
    let mut client = RtmpClient::open(server.addr()).expect("handshake");
    client
        .connect("live", &server.tc_url("live"))
        .expect("connect");

    let reply = client
        .call("fooBar", &[Amf0Value::Null], bounds::MESSAGE)
        .expect("a reply to fooBar");
    assert_eq!(reply.name, "_error", "{reply:?}");
    assert_eq!(
        info_code(&reply).as_deref(),
        Some("NetConnection.Call.Failed"),
        "{reply:?}"
    );

    let reply = client
        .call("createStream", &[], bounds::MESSAGE)
        .expect("the connection stays up");
    assert_eq!(reply.name, "_result", "{reply:?}");
    server.assert_alive();
}
