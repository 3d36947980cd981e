//! A push against an in-memory target: a server-role `Session` whose answers each test
//! writes, so each status a target can send is tried.

use bytes::BytesMut;
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::*;
use crate::proto::amf0::Amf0Value;
use crate::proto::rtmp::chunk_decoder::DecoderLimits;
use crate::proto::rtmp::handshake::HandshakeKind;
use crate::proto::rtmp::session::SessionConfig;

const STREAM: u32 = 1;

struct Target {
    push: PushLink,
    client: Session,
    server: Session,
    to_server: BytesMut,
    to_client: BytesMut,
    /// Commands the target received: (name, first argument or the connect's app).
    received: Vec<(String, String)>,
    steps: Vec<PushStep>,
    /// Whether the target refuses connect.
    refuse_connect: bool,
}

fn info(level: &str, code: &str) -> Amf0Value {
    Amf0Value::object([
        ("level", Amf0Value::string(level)),
        ("code", Amf0Value::string(code)),
    ])
}

impl Target {
    fn new() -> Target {
        let mut rng = StdRng::seed_from_u64(9);
        let mut to_server = BytesMut::new();
        let client = Session::client(
            SessionConfig::client(4096),
            HandshakeKind::Simple,
            &mut rng,
            0,
            &mut to_server,
        );
        let server = Session::server(
            SessionConfig {
                limits: DecoderLimits::default(),
                chunk_size: 4096,
                window_ack_size: 2_500_000,
                peer_bandwidth: 2_500_000,
            },
            &mut rng,
            0,
        );
        Target {
            push: PushLink::new(
                "live/inst".into(),
                "rtmp://127.0.0.3:1935/live/inst".into(),
                "cam".into(),
            ),
            client,
            server,
            to_server,
            to_client: BytesMut::new(),
            received: Vec::new(),
            steps: Vec::new(),
            refuse_connect: false,
        }
    }

    /// Moves bytes both ways; the target answers connect and createStream as a server
    /// does, and records every command.
    fn pump(&mut self) {
        for _ in 0..20 {
            if self.to_server.is_empty() && self.to_client.is_empty() {
                return;
            }
            let mut events = Vec::new();
            let bytes = self.to_server.split();
            self.server
                .feed(&bytes, &mut self.to_client, &mut events)
                .expect("the target takes what the push sends");
            for e in events {
                let SessionEvent::Command { command, .. } = e else {
                    continue;
                };
                let arg = command
                    .arg(0)
                    .and_then(|a| a.as_str())
                    .unwrap_or_default()
                    .to_string();
                let tx = Amf0Value::Number(command.transaction_id);
                match command.name.as_str() {
                    "connect" => {
                        let app = command
                            .command_object
                            .get("app")
                            .and_then(|a| a.as_str())
                            .unwrap_or_default()
                            .to_string();
                        self.received.push(("connect".into(), app));
                        self.server.write_connect_preamble(&mut self.to_client);
                        let (name, code) = if self.refuse_connect {
                            ("_error", "NetConnection.Connect.Rejected")
                        } else {
                            ("_result", "NetConnection.Connect.Success")
                        };
                        self.reply(&[
                            Amf0Value::string(name),
                            tx,
                            Amf0Value::Null,
                            info("status", code),
                        ]);
                    }
                    "createStream" => {
                        self.received.push(("createStream".into(), arg));
                        self.reply(&[
                            Amf0Value::string("_result"),
                            tx,
                            Amf0Value::Null,
                            Amf0Value::Number(f64::from(STREAM)),
                        ]);
                    }
                    name => self.received.push((name.to_string(), arg)),
                }
            }
            let mut events = Vec::new();
            let bytes = self.to_client.split();
            self.client
                .feed(&bytes, &mut self.to_server, &mut events)
                .expect("the push takes what the target sends");
            for e in events {
                let step = self.push.on_event(&mut self.client, e, &mut self.to_server);
                if step != PushStep::Nothing {
                    self.steps.push(step);
                }
            }
        }
        panic!("the conversation does not settle");
    }

    fn reply(&mut self, values: &[Amf0Value]) {
        self.server
            .write_command(0, false, values, &mut self.to_client);
    }

    fn status(&mut self, level: &str, code: &str) {
        let values = [
            Amf0Value::string("onStatus"),
            Amf0Value::Number(0.0),
            Amf0Value::Null,
            info(level, code),
        ];
        self.server
            .write_command(STREAM, false, &values, &mut self.to_client);
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
        t.received,
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
    t.refuse_connect = true;
    t.pump();
    assert_eq!(
        t.received,
        [("connect".to_string(), "live/inst".to_string())]
    );
    assert!(!t.push.is_connected());
    let steps = t.steps();
    assert!(
        matches!(steps.as_slice(), [PushStep::Failed(why)] if why.contains("Connect.Rejected")),
        "{steps:?}"
    );
}
