//! A link against an in-memory upstream: a server-role `Session` whose answers each test
//! writes, so every status an upstream can send is tried.

use bytes::{Bytes, BytesMut};
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::*;
use crate::proto::amf0::Amf0Value;
use crate::proto::rtmp::chunk_decoder::DecoderLimits;
use crate::proto::rtmp::handshake::HandshakeKind;
use crate::proto::rtmp::session::SessionConfig;
use crate::proto::rtmp::{csid, msg_type};

const STREAM: u32 = 1;

struct Upstream {
    link: PullLink,
    client: Session,
    server: Session,
    to_server: BytesMut,
    to_client: BytesMut,
    /// Commands the upstream received: (name, first argument as a string).
    received: Vec<(String, String)>,
    steps: Vec<LinkStep>,
}

fn status(code: &str) -> Amf0Value {
    Amf0Value::object([
        ("level", Amf0Value::string("status")),
        ("code", Amf0Value::string(code)),
    ])
}

impl Upstream {
    fn new() -> Upstream {
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
        Upstream {
            link: PullLink::new(
                "lsc_origin/room".into(),
                "rtmp://127.0.0.2:1935/lsc_origin/room".into(),
                "cam".into(),
            ),
            client,
            server,
            to_server,
            to_client: BytesMut::new(),
            received: Vec::new(),
            steps: Vec::new(),
        }
    }

    /// Moves bytes both ways; the upstream answers connect and createStream as a server
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
                .expect("the upstream takes what the link sends");
            for e in events {
                if let SessionEvent::Command { command, .. } = e {
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
                            self.reply(&[
                                Amf0Value::string("_result"),
                                tx,
                                Amf0Value::Null,
                                status("NetConnection.Connect.Success"),
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
            }
            let mut events = Vec::new();
            let bytes = self.to_client.split();
            self.client
                .feed(&bytes, &mut self.to_server, &mut events)
                .expect("the link takes what the upstream sends");
            for e in events {
                let step = self.link.on_event(&mut self.client, e, &mut self.to_server);
                if step != LinkStep::Nothing {
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

    fn status(&mut self, code: &str) {
        let values = [
            Amf0Value::string("onStatus"),
            Amf0Value::Number(0.0),
            Amf0Value::Null,
            status(code),
        ];
        self.server
            .write_command(STREAM, false, &values, &mut self.to_client);
        self.pump();
    }

    fn video(&mut self, timestamp: u32, stream_id: u32) {
        let m = Message {
            csid: csid::VIDEO,
            timestamp,
            type_id: msg_type::VIDEO,
            stream_id,
            payload: Bytes::from_static(&[0x17, 1, 0, 0, 0, 9]),
        };
        self.server.write_message(&m, &mut self.to_client);
        self.pump();
    }

    fn steps(&mut self) -> Vec<LinkStep> {
        std::mem::take(&mut self.steps)
    }
}

/// Past the handshake, connect and createStream: the link has asked to play.
fn playing_asked() -> Upstream {
    let mut u = Upstream::new();
    u.pump();
    assert_eq!(
        u.received,
        [
            ("connect".to_string(), "lsc_origin/room".to_string()),
            ("createStream".into(), String::new()),
            ("FCSubscribe".into(), "cam".into()),
            ("play".into(), "cam".into()),
        ]
    );
    assert!(u.link.is_connected());
    assert!(u.steps().is_empty());
    u
}

#[test]
fn connects_creates_a_stream_and_plays_then_frames_flow_once_live() {
    let mut u = playing_asked();
    // Media on another stream is not the link's; on ours it is, even before Play.Start.
    u.video(0, STREAM + 1);
    assert!(u.steps().is_empty());
    u.video(0, STREAM);
    assert!(matches!(u.steps().as_slice(), [LinkStep::Media(_)]));
    u.status("NetStream.Play.Reset");
    assert!(u.steps().is_empty());
    u.status("NetStream.Play.Start");
    assert_eq!(u.steps(), [LinkStep::Live]);
    u.status("NetStream.Play.Start");
    assert!(u.steps().is_empty(), "a repeated Start is nothing new");
    u.video(40, STREAM);
    match u.steps().as_slice() {
        [LinkStep::Media(m)] => assert_eq!((m.timestamp, m.type_id), (40, msg_type::VIDEO)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_upstream_without_the_stream_says_so_to_fc_subscribe() {
    let mut u = playing_asked();
    let values = [
        Amf0Value::string("onFMSubscribe"),
        Amf0Value::Number(0.0),
        Amf0Value::Null,
        Amf0Value::object([
            ("level", Amf0Value::string("error")),
            ("code", Amf0Value::string("NetStream.Play.StreamNotFound")),
        ]),
    ];
    u.server.write_command(0, false, &values, &mut u.to_client);
    u.pump();
    assert_eq!(u.steps(), [LinkStep::NotFound]);
}

#[test]
fn the_upstreams_publisher_leaving_and_coming_back() {
    let mut u = playing_asked();
    u.status("NetStream.Play.Start");
    u.status("NetStream.Play.UnpublishNotify");
    u.status("NetStream.Play.PublishNotify");
    assert_eq!(
        u.steps(),
        [LinkStep::Live, LinkStep::Offline, LinkStep::Live]
    );
}

#[test]
fn refusals_fail_the_link_saying_why() {
    for code in [
        "NetStream.Play.StreamNotFound",
        "NetStream.Play.Failed",
        "NetStream.Play.Stop",
    ] {
        let mut u = playing_asked();
        u.status(code);
        assert_eq!(
            u.steps(),
            [LinkStep::Failed(format!("upstream said {code}"))]
        );
    }

    // connect refused with _error.
    let mut u = Upstream::new();
    let bytes = u.to_server.split();
    let mut events = Vec::new();
    u.server
        .feed(&bytes, &mut u.to_client, &mut events)
        .expect("handshake");
    let bytes = u.to_client.split();
    let mut events = Vec::new();
    u.client
        .feed(&bytes, &mut u.to_server, &mut events)
        .expect("handshake");
    for e in events {
        assert_eq!(
            u.link.on_event(&mut u.client, e, &mut u.to_server),
            LinkStep::Nothing
        );
    }
    let bytes = u.to_server.split();
    let mut events = Vec::new();
    u.server
        .feed(&bytes, &mut u.to_client, &mut events)
        .expect("connect");
    let connect = events
        .into_iter()
        .find_map(|e| match e {
            SessionEvent::Command { command, .. } if command.name == "connect" => Some(command),
            _ => None,
        })
        .expect("the link connects");
    assert!(!u.link.is_connected());
    u.reply(&[
        Amf0Value::string("_error"),
        Amf0Value::Number(connect.transaction_id),
        Amf0Value::Null,
        Amf0Value::object([
            ("level", Amf0Value::string("error")),
            ("code", Amf0Value::string("NetConnection.Connect.Rejected")),
        ]),
    ]);
    u.pump();
    assert_eq!(
        u.steps(),
        [LinkStep::Failed(
            "upstream refused connect: NetConnection.Connect.Rejected".into()
        )]
    );
}
