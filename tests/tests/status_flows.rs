//! NetConnection/NetStream status flows as AMS clients expect them.

use dataplane::proto::amf0::Amf0Value;
use dataplane::proto::rtmp::session::SessionEvent;
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

#[test]
fn play_with_a_duration_stops_after_that_much_media() {
    let mut server = Server::start();
    let _publisher = publish_sample(&server.url("live/test"));
    let mut client = RtmpClient::open(server.addr()).expect("open");
    client
        .connect("live", &server.tc_url("live"))
        .expect("connect");
    let sid = client.create_stream().expect("createStream");
    // play(name, start = -2, duration = 2 s)
    let args = [
        Amf0Value::string("test"),
        Amf0Value::Number(-2.0),
        Amf0Value::Number(2.0),
    ];
    client
        .send_command(sid, "play", Amf0Value::Null, &args)
        .expect("play");

    let (mut first, mut last) = (None::<u32>, 0u32);
    let deadline = std::time::Instant::now() + bounds::STREAM_UP;
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "no NetStream.Play.Stop within {:?}",
            bounds::STREAM_UP
        );
        let stopped = match client.read_event(bounds::MESSAGE).expect("message") {
            SessionEvent::Media { message: msg }
                if msg.type_id == dataplane::proto::rtmp::msg_type::VIDEO =>
            {
                first.get_or_insert(msg.timestamp);
                last = msg.timestamp;
                false
            }
            SessionEvent::Status { command: c, .. } => {
                info_code(&c).as_deref() == Some("NetStream.Play.Stop")
            }
            _ => false,
        };
        if stopped {
            break;
        }
    }
    let span = last.wrapping_sub(first.expect("video before the stop"));
    assert!(
        (1_800..=2_100).contains(&span),
        "played {span} ms of video for a 2 s duration"
    );
    // Nothing more on that stream, and the connection stays usable.
    let more = client.wait_media(
        dataplane::proto::rtmp::msg_type::VIDEO,
        Duration::from_secs(1),
    );
    assert!(more.is_err(), "video kept coming after NetStream.Play.Stop");
    client
        .call(
            "getStreamLength",
            &[Amf0Value::string("test")],
            bounds::MESSAGE,
        )
        .expect("the connection stays up");
    server.assert_alive();
}
