//! A push against an in-memory target (`relay::test_peer`), so each status a target can
//! send is tried.

use super::*;
use crate::proto::amf0::Amf0Value;
use crate::relay::test_peer::{info, Peer, STREAM};

struct Target {
    push: PushLink,
    peer: Peer,
    steps: Vec<PushStep>,
}

impl Target {
    fn new() -> Target {
        Target {
            push: PushLink::new(
                "live/inst".into(),
                "rtmp://127.0.0.3:1935/live/inst".into(),
                "cam".into(),
            ),
            peer: Peer::new(),
            steps: Vec::new(),
        }
    }

    fn pump(&mut self) {
        let (push, steps) = (&mut self.push, &mut self.steps);
        self.peer.pump(|session, e, out| {
            let step = push.on_event(session, e, out);
            if step != PushStep::Nothing {
                steps.push(step);
            }
        });
    }

    fn status(&mut self, level: &str, code: &str) {
        let values = [
            Amf0Value::string("onStatus"),
            Amf0Value::Number(0.0),
            Amf0Value::Null,
            info(level, code),
        ];
        self.peer.send(STREAM, &values);
        self.pump();
    }

    fn steps(&mut self) -> Vec<PushStep> {
        std::mem::take(&mut self.steps)
    }
}

/// Past the handshake, connect and createStream: the push has asked to publish.
fn publish_asked() -> Target {
    let mut t = Target::new();
    t.pump();
    assert_eq!(
        t.peer.received,
        [
            ("connect".to_string(), "live/inst".to_string()),
            ("createStream".into(), String::new()),
            ("publish".into(), "cam".into()),
        ]
    );
    assert!(t.push.is_connected());
    assert!(t.steps().is_empty());
    t
}

#[test]
fn connects_creates_a_stream_and_publishes_the_name() {
    let mut t = publish_asked();
    t.status("status", "NetStream.Publish.Start");
    assert_eq!(t.steps(), [PushStep::Publishing { stream_id: STREAM }]);
    // A repeated Start (a confused target) does not start the push twice.
    t.status("status", "NetStream.Publish.Start");
    assert!(t.steps().is_empty());
    // Statuses that change nothing for a push.
    t.status("status", "NetStream.Play.PublishNotify");
    t.status("status", "NetStream.Data.Start");
    assert!(t.steps().is_empty());
}

#[test]
fn a_refused_publish_or_an_unpublish_ends_the_push_saying_why() {
    for code in [
        "NetStream.Publish.BadName",
        "NetStream.Publish.Denied",
        "NetStream.Unpublish.Success",
    ] {
        let mut t = publish_asked();
        t.status("error", code);
        assert_eq!(
            t.steps(),
            [PushStep::Failed(format!("target said {code}"))],
            "{code}"
        );
    }
    // Once publishing too: the target ending our publish ends the push.
    let mut t = publish_asked();
    t.status("status", "NetStream.Publish.Start");
    t.steps();
    t.status("status", "NetStream.Unpublish.Success");
    assert!(matches!(t.steps().as_slice(), [PushStep::Failed(_)]));
}

#[test]
fn a_refused_connect_ends_the_push() {
    let mut t = Target::new();
    t.peer.refuse_connect = true;
    t.pump();
    assert_eq!(
        t.peer.received,
        [("connect".to_string(), "live/inst".to_string())]
    );
    assert!(!t.push.is_connected());
    let steps = t.steps();
    assert!(
        matches!(steps.as_slice(), [PushStep::Failed(why)] if why.contains("Connect.Rejected")),
        "{steps:?}"
    );
}
