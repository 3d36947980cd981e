//! Stream names with `/` in them (AMS-style `dir/cam`, `mp4:dir/file`) are one name: the
//! player's statuses, `stratactl streams`, events, the auth hook request and
//! `stratactl stop` all see `dir/cam`, never its last part.

use control::client::{ControlClient, Unsolicited};
use control::protocol::{Call, Event, Reply};
use dataplane::proto::amf0::Amf0Value;
use e2e::bounds;
use e2e::publisher::publish_sample_with;
use e2e::rtmp_client::{Reply as RtmpReply, RtmpClient};
use e2e::server::{Server, ServerOptions};
use std::path::Path;
use std::time::Instant;

const NAME: &str = "dir/cam";

fn control(socket: &Path) -> ControlClient {
    ControlClient::connect(socket).unwrap_or_else(|e| panic!("control socket: {e}"))
}

/// The `description` and `details` of an onStatus.
fn description_and_details(reply: &RtmpReply) -> (String, String) {
    let info = reply.args.first().expect("onStatus carries an info object");
    let field = |k: &str| {
        info.get(k)
            .and_then(Amf0Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    (field("description"), field("details"))
}

/// Events until one `event` arrives (bounded); auth requests are not expected here.
fn wait_event(events: &mut ControlClient, event: &str) -> Event {
    let deadline = Instant::now() + bounds::MESSAGE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.next_unsolicited(left).expect("events") {
            Some((_, Unsolicited::Event(e))) if e.event == event => return e,
            Some(_) => {}
            None => panic!("no {event} event within {:?}", bounds::MESSAGE),
        }
    }
}

#[test]
fn slash_in_a_stream_name_is_kept_in_statuses_streams_events_auth_and_stop() {
    let server = Server::start_with(ServerOptions {
        config: Some("[auth]\non = [\"publish\"]\ndefault = \"deny\"\ntimeout_ms = 5000\n".into()),
        ..ServerOptions::default()
    });
    let socket = server
        .control_socket()
        .expect("a control socket")
        .to_path_buf();
    let mut events = control(&socket);
    events.request(Call::Subscribe).expect("subscribe");
    let mut auth = control(&socket);
    auth.request(Call::AuthRegister).expect("auth_register");

    // ffmpeg's own way to publish a name with a slash in it.
    let url = server.url("live");
    let _publisher = publish_sample_with(&url, &["-rtmp_app", "live", "-rtmp_playpath", NAME]);

    // The auth hook is asked about `dir/cam`; only that name is allowed.
    let request = match auth.next_unsolicited(bounds::STREAM_UP).expect("auth") {
        Some((_, Unsolicited::Auth(a))) => a,
        other => panic!("expected an auth request, got {other:?}"),
    };
    assert_eq!(request.action, "publish");
    assert_eq!(request.stream.as_deref(), Some(NAME), "{request:?}");
    auth.request(Call::AuthReply {
        request: request.request,
        allow: true,
        reason: None,
    })
    .expect("auth_reply");
    let e = wait_event(&mut events, "publish_start");
    assert_eq!(e.stream.as_deref(), Some(NAME), "{e:?}");

    let mut player = RtmpClient::connected(server.addr(), "live").expect("connect player");
    player.play(NAME).expect("play");
    let start = player
        .wait_status("NetStream.Play.Start", bounds::MESSAGE)
        .expect("Play.Start");
    let (description, details) = description_and_details(&start);
    assert_eq!(details, NAME);
    assert!(description.contains(NAME), "description {description:?}");
    player
        .wait_first_video(bounds::STREAM_UP)
        .expect("the player gets video");
    let e = wait_event(&mut events, "play_start");
    assert_eq!(e.stream.as_deref(), Some(NAME), "{e:?}");

    let Reply::Streams { streams } = events.request(Call::Streams).expect("streams") else {
        panic!("streams")
    };
    let s = streams
        .iter()
        .find(|s| s.publisher.is_some())
        .unwrap_or_else(|| panic!("the published stream is listed: {streams:?}"));
    assert_eq!(
        (s.app.as_str(), s.instance.as_str(), s.name.as_str()),
        ("live", "_definst_", NAME)
    );

    // `stratactl stop live/dir/cam`: the publisher goes, the player is told about `dir/cam`.
    let stopped = events
        .request(Call::StopStream {
            stream: format!("live/{NAME}"),
        })
        .expect("stop");
    assert!(
        matches!(stopped, Reply::Done { done: true, .. }),
        "{stopped:?}"
    );
    let unpublished = player
        .wait_status("NetStream.Play.UnpublishNotify", bounds::MESSAGE)
        .expect("UnpublishNotify after stop");
    assert_eq!(description_and_details(&unpublished).1, NAME);
    let e = wait_event(&mut events, "publish_stop");
    assert_eq!(e.stream.as_deref(), Some(NAME), "{e:?}");
}
