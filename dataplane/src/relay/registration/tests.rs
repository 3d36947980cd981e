//! A child link against an in-memory upstream (`relay::test_peer`): registration, the
//! notices that keep the list, and refusals.

use super::*;
use crate::relay::test_peer::{Peer, STREAM};

struct Upstream {
    link: ChildLink,
    peer: Peer,
    steps: Vec<RegistrationStep>,
}

impl Upstream {
    fn new() -> Upstream {
        Upstream {
            link: ChildLink::new(
                "lsc_origin".into(),
                "rtmp://127.0.0.2:1935/lsc_origin".into(),
            ),
            peer: Peer::new(),
            steps: Vec::new(),
        }
    }

    fn pump(&mut self) {
        let (link, steps) = (&mut self.link, &mut self.steps);
        self.peer.pump(|session, e, out| {
            let step = link.on_event(session, e, out);
            if step != RegistrationStep::Nothing {
                steps.push(step);
            }
        });
    }

    fn notice(&mut self, live: bool, name: &str) {
        self.peer.send(0, &tier::stream_notice(live, name));
        self.pump();
    }

    fn steps(&mut self) -> Vec<RegistrationStep> {
        std::mem::take(&mut self.steps)
    }
}

fn stream(name: &str, live: bool) -> RegistrationStep {
    RegistrationStep::Stream {
        name: name.into(),
        live,
    }
}

#[test]
fn connects_registers_and_turns_notices_into_list_changes() {
    let mut u = Upstream::new();
    u.pump();
    assert_eq!(
        u.peer.received,
        [
            ("connect".to_string(), "lsc_origin".to_string()),
            (FC_ADD_CHILD.into(), String::new()),
        ]
    );
    assert!(u.link.is_connected());
    assert_eq!(u.steps(), [RegistrationStep::Registered]);
    u.notice(true, "cam");
    u.notice(true, "other");
    u.notice(false, "cam");
    assert_eq!(
        u.steps(),
        [
            stream("cam", true),
            stream("other", true),
            stream("cam", false)
        ]
    );
    // A notice without a name, or another call, changes nothing.
    u.peer.send(
        0,
        &[
            Amf0Value::string(tier::ADD_STREAM),
            Amf0Value::Number(0.0),
            Amf0Value::Null,
        ],
    );
    u.peer.send(
        STREAM,
        &[
            Amf0Value::string("onBWDone"),
            Amf0Value::Number(0.0),
            Amf0Value::Null,
        ],
    );
    u.pump();
    assert!(u.steps().is_empty());
}

#[test]
fn a_refused_connect_ends_the_link_saying_why() {
    let mut u = Upstream::new();
    u.peer.refuse_connect = true;
    u.pump();
    assert!(!u.link.is_connected());
    let steps = u.steps();
    assert!(
        matches!(steps.as_slice(), [RegistrationStep::Failed(why)] if why.contains("Connect.Rejected")),
        "{steps:?}"
    );
}
