//! The origin's side of LiveStreamCast's protocol (issue 9): FCPublish / FCUnpublish
//! answers, a child server registering with FCAddChild, and addStream / removeStream
//! reaching every child, on a stratad of its own at 127.0.0.2 with two workers (children
//! and publishers land on different workers).

use dataplane::proto::amf0::Amf0Value;
use e2e::bounds;
use e2e::publisher::publish_sample;
use e2e::rtmp_client::{info_code, RtmpClient};
use e2e::server::{Server, ServerOptions};
use std::net::IpAddr;

fn origin() -> Server {
    Server::start_with(ServerOptions {
        config: Some(
            "[[application]]\nname = \"lsc_origin\"\nrole = \"origin\"\n\
             [[application]]\nname = \"plain\"\n"
                .into(),
        ),
        host: Some(IpAddr::from([127, 0, 0, 2])),
        ..ServerOptions::default()
    })
}

/// Waits for `addStream` / `removeStream` naming `name`.
fn wait_notice(child: &mut RtmpClient, method: &str, name: &str) {
    child
        .wait_command(bounds::MESSAGE, method, |c| {
            c.name == method && c.args.first().and_then(Amf0Value::as_str) == Some(name)
        })
        .unwrap_or_else(|e| panic!("no {method}({name}) at the child: {e}"));
}

fn add_child(origin: &Server) -> RtmpClient {
    let mut child = RtmpClient::connected(origin.addr(), "lsc_origin").expect("child connects");
    let reply = child
        .call("FCAddChild", &[], bounds::MESSAGE)
        .expect("FCAddChild answered");
    assert_eq!(reply.name, "_result", "{reply:?}");
    child
}

#[test]
fn children_hear_of_every_stream_and_publishers_get_the_seeds_answers() {
    let origin = origin();

    // A stream live before the child registers is told at registration.
    let mut early = RtmpClient::connected(origin.addr(), "lsc_origin").expect("publisher");
    early.publish("early").expect("publish");
    early
        .wait_status("NetStream.Publish.Start", bounds::MESSAGE)
        .expect("publishing");
    let mut children: Vec<RtmpClient> = (0..3).map(|_| add_child(&origin)).collect();
    for child in &mut children {
        wait_notice(child, "addStream", "early");
    }

    // ffmpeg publishes: every child hears addStream (FMLE-style FCPublish comes first).
    let mut publisher = publish_sample(&origin.url("lsc_origin/cam"));
    for child in &mut children {
        wait_notice(child, "addStream", "cam");
    }

    // FCPublish of a name that is live: BadName; of a free one: Start.
    let mut other = RtmpClient::connected(origin.addr(), "lsc_origin").expect("client");
    let fc_publish = |c: &mut RtmpClient, name: &str| {
        c.send_command(0, "FCPublish", Amf0Value::Null, &[Amf0Value::string(name)])
            .expect("FCPublish");
        let answer = c
            .wait_command(bounds::MESSAGE, "onFCPublish", |c| c.name == "onFCPublish")
            .expect("onFCPublish");
        info_code(&answer).unwrap_or_default()
    };
    assert_eq!(fc_publish(&mut other, "cam"), "NetStream.Publish.BadName");
    assert_eq!(fc_publish(&mut other, "fresh"), "NetStream.Publish.Start");

    // FCUnpublish: onFCUnpublish with Unpublish.Success; the children hear removeStream.
    early
        .send_command(
            0,
            "FCUnpublish",
            Amf0Value::Null,
            &[Amf0Value::string("early")],
        )
        .expect("FCUnpublish");
    let answer = early
        .wait_command(bounds::MESSAGE, "onFCUnpublish", |c| {
            c.name == "onFCUnpublish"
        })
        .expect("onFCUnpublish");
    assert_eq!(
        info_code(&answer).as_deref(),
        Some("NetStream.Unpublish.Success")
    );
    for child in &mut children {
        wait_notice(child, "removeStream", "early");
    }

    // The encoder stops: removeStream.
    publisher.kill();
    for child in &mut children {
        wait_notice(child, "removeStream", "cam");
    }

    // A departed child is forgotten; the others still hear.
    let mut gone = children.pop().expect("a child");
    gone.shutdown();
    let mut again = RtmpClient::connected(origin.addr(), "lsc_origin").expect("publisher");
    again.publish("again").expect("publish");
    for child in &mut children {
        wait_notice(child, "addStream", "again");
    }
}

#[test]
fn a_plain_application_takes_no_children() {
    let origin = origin();
    let mut child = RtmpClient::connected(origin.addr(), "plain").expect("connects");
    let reply = child
        .call("FCAddChild", &[], bounds::MESSAGE)
        .expect("answered");
    assert_eq!(reply.name, "_error", "{reply:?}");
}
