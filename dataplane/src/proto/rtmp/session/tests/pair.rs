//! A client and a server session talking to each other in memory, the server answering as a
//! minimal application would (connect, createStream, publish, play, an `echo` method, and
//! `_error` for anything else).

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::super::{CallAnswer, CallKind, Session, SessionConfig, SessionError, SessionEvent};
use super::{controls, decode, server_config};
use crate::proto::amf0::Amf0Value;
use crate::proto::command::Command;
use crate::proto::rtmp::control::{ControlMessage, UserControl};
use crate::proto::rtmp::handshake::HandshakeKind;
use crate::proto::rtmp::{csid, msg_type, Message};

/// The stream id the test server gives out.
const STREAM: u32 = 1;

struct Pair {
    client: Session,
    server: Session,
    to_client: BytesMut,
    to_server: BytesMut,
    /// What each side reported, in order, not yet looked at.
    client_events: Vec<SessionEvent>,
    server_events: Vec<SessionEvent>,
}

fn status(code: &str) -> Amf0Value {
    Amf0Value::object([
        ("level", Amf0Value::string("status")),
        ("code", Amf0Value::string(code)),
    ])
}

fn video(timestamp: u32, len: usize) -> Message {
    Message {
        csid: csid::VIDEO,
        timestamp,
        type_id: msg_type::VIDEO,
        stream_id: STREAM,
        payload: Bytes::from((0..len).map(|i| i as u8).collect::<Vec<_>>()),
    }
}

impl Pair {
    /// Both sessions, past the handshake, the client sending with 4096-byte chunks.
    fn new(kind: HandshakeKind) -> Pair {
        let mut rng = StdRng::seed_from_u64(5);
        let mut to_server = BytesMut::new();
        let client = Session::client(
            SessionConfig::client(4096),
            kind,
            &mut rng,
            0,
            &mut to_server,
        );
        let server = Session::server(server_config(), &mut rng, 0);
        let mut pair = Pair {
            client,
            server,
            to_client: BytesMut::new(),
            to_server,
            client_events: Vec::new(),
            server_events: Vec::new(),
        };
        pair.pump();
        let done = |events: &[SessionEvent]| matches!(events, [SessionEvent::HandshakeDone(k)] if *k == kind);
        assert!(done(&pair.client_events), "{:?}", pair.client_events);
        assert!(done(&pair.server_events), "{:?}", pair.server_events);
        pair.client_events.clear();
        pair.server_events.clear();
        pair
    }

    /// Moves bytes both ways until neither side has anything more to say.
    fn pump(&mut self) {
        while !self.to_server.is_empty() || !self.to_client.is_empty() {
            let bytes = self.to_server.split();
            self.server
                .feed(&bytes, &mut self.to_client, &mut self.server_events)
                .expect("the server takes what the client sends");
            let bytes = self.to_client.split();
            self.client
                .feed(&bytes, &mut self.to_server, &mut self.client_events)
                .expect("the client takes what the server sends");
        }
    }

    /// Lets the server answer the client's commands, until all is said; returns the server's
    /// other events (media, data, buffer lengths).
    fn converse(&mut self) -> Vec<SessionEvent> {
        let mut rest = Vec::new();
        self.pump();
        while !self.server_events.is_empty() {
            for event in std::mem::take(&mut self.server_events) {
                match event {
                    SessionEvent::Command {
                        stream_id, command, ..
                    } => self.answer(stream_id, &command),
                    other => rest.push(other),
                }
            }
            self.pump();
        }
        rest
    }

    fn answer(&mut self, stream_id: u32, command: &Command) {
        let tx = Amf0Value::Number(command.transaction_id);
        let (server, out) = (&mut self.server, &mut self.to_client);
        if command.name == "connect" {
            // Announces the server's 4096-byte chunks among others, as stratad does.
            server.write_connect_preamble(out);
        }
        let mut reply = |values: &[Amf0Value]| server.write_command(stream_id, false, values, out);
        match command.name.as_str() {
            "connect" => {
                reply(&[
                    Amf0Value::string("_result"),
                    tx,
                    Amf0Value::object([("fmsVer", Amf0Value::string("FMS/3,5,7,7009"))]),
                    status("NetConnection.Connect.Success"),
                ]);
            }
            "createStream" => reply(&[
                Amf0Value::string("_result"),
                tx,
                Amf0Value::Null,
                Amf0Value::Number(f64::from(STREAM)),
            ]),
            "echo" => reply(&[
                Amf0Value::string("_result"),
                tx,
                Amf0Value::Null,
                command.arg(0).cloned().unwrap_or(Amf0Value::Undefined),
            ]),
            "publish" => reply(&[
                Amf0Value::string("onStatus"),
                Amf0Value::Number(0.0),
                Amf0Value::Null,
                status("NetStream.Publish.Start"),
            ]),
            "play" => {
                reply(&[
                    Amf0Value::string("onStatus"),
                    Amf0Value::Number(0.0),
                    Amf0Value::Null,
                    status("NetStream.Play.Start"),
                ]);
                server.write_message(&video(0, 9000), out);
            }
            "deleteStream" => {}
            _ => reply(&[
                Amf0Value::string("_error"),
                tx,
                Amf0Value::Null,
                Amf0Value::object([
                    ("level", Amf0Value::string("error")),
                    ("code", Amf0Value::string("NetConnection.Call.Failed")),
                ]),
            ]),
        }
    }

    /// connect and createStream, checked; returns the stream id.
    fn connected_with_stream(&mut self) -> u32 {
        let tx = self
            .client
            .connect(
                "live",
                "rtmp://127.0.0.1/live",
                "LNX 9,0,124,2",
                &mut self.to_server,
            )
            .expect("connect written");
        self.converse();
        assert!(
            matches!(
                &self.client_events[..],
                [SessionEvent::Result { transaction, call: CallKind::Connect, command }]
                    if *transaction == tx
                    && command.info_str("code") == Some("NetConnection.Connect.Success")
            ),
            "{:?}",
            self.client_events
        );
        self.client_events.clear();
        let tx = self
            .client
            .create_stream(&mut self.to_server)
            .expect("createStream written");
        self.converse();
        let [SessionEvent::StreamCreated {
            transaction,
            stream_id,
        }] = self.client_events[..]
        else {
            panic!("no StreamCreated: {:?}", self.client_events);
        };
        assert_eq!(transaction, tx);
        self.client_events.clear();
        stream_id
    }

    fn statuses(&mut self) -> Vec<(u32, String)> {
        self.client_events
            .drain(..)
            .filter_map(|e| match e {
                SessionEvent::Status { stream_id, command } => {
                    Some((stream_id, command.info_str("code")?.to_string()))
                }
                _ => None,
            })
            .collect()
    }
}

#[test]
fn both_handshakes_complete_between_our_client_and_server() {
    for kind in [HandshakeKind::Simple, HandshakeKind::Digest] {
        Pair::new(kind);
    }
}

#[test]
fn connect_and_create_stream_results_match_their_transactions() {
    let mut pair = Pair::new(HandshakeKind::Digest);
    assert_eq!(pair.connected_with_stream(), STREAM);
}

#[test]
fn publish_gets_its_status_and_the_server_receives_the_media() {
    let mut pair = Pair::new(HandshakeKind::Digest);
    let sid = pair.connected_with_stream();
    pair.client.publish(sid, "cam", "live", &mut pair.to_server);
    pair.converse();
    assert_eq!(
        pair.statuses(),
        [(sid, "NetStream.Publish.Start".to_string())]
    );
    // Larger than the client's 4096-byte chunks: the server must have applied the chunk size
    // the client announced before connect.
    let sent = [video(0, 10_000), video(40, 10_000), video(80, 300)];
    for m in &sent {
        pair.client.write_message(m, &mut pair.to_server);
    }
    let got: Vec<Message> = pair
        .converse()
        .into_iter()
        .filter_map(|e| match e {
            SessionEvent::Media { message } => Some(message),
            _ => None,
        })
        .collect();
    assert_eq!(got, sent);
}

#[test]
fn play_gets_its_status_then_media_and_delete_stream_reaches_the_server() {
    let mut pair = Pair::new(HandshakeKind::Simple);
    let sid = pair.connected_with_stream();
    pair.client.play(sid, "cam", &mut pair.to_server);
    pair.client
        .set_buffer_length(sid, 3000, &mut pair.to_server);
    let server_saw = pair.converse();
    assert!(
        matches!(server_saw[..], [SessionEvent::BufferLength { stream_id, ms: 3000 }] if stream_id == sid),
        "{server_saw:?}"
    );
    assert!(matches!(
        &pair.client_events[1],
        SessionEvent::Media { message } if message.payload.len() == 9000
    ));
    assert_eq!(pair.statuses(), [(sid, "NetStream.Play.Start".to_string())]);

    pair.client.delete_stream(sid, &mut pair.to_server);
    pair.pump();
    assert!(matches!(
        &pair.server_events[..],
        [SessionEvent::Command { stream_id: 0, command, .. }]
            if command.name == "deleteStream" && command.arg(0).and_then(Amf0Value::as_f64) == Some(f64::from(sid))
    ));
}

#[test]
fn an_unknown_call_gets_an_error_matched_to_its_transaction() {
    let mut pair = Pair::new(HandshakeKind::Digest);
    pair.connected_with_stream();
    let out = &mut pair.to_server;
    let unknown = pair
        .client
        .call(0, "fooBar", Amf0Value::Null, &[], out)
        .expect("room");
    let echo = pair
        .client
        .call(0, "echo", Amf0Value::Null, &[Amf0Value::Number(7.0)], out)
        .expect("room");
    pair.converse();
    match &pair.client_events[..] {
        [SessionEvent::Error {
            transaction: t1,
            call: CallKind::Method(m1),
            command: error,
        }, SessionEvent::Result {
            transaction: t2,
            call: CallKind::Method(m2),
            command: result,
        }] => {
            assert_eq!((*t1, m1.as_str()), (unknown, "fooBar"));
            assert_eq!(error.info_str("code"), Some("NetConnection.Call.Failed"));
            assert_eq!((*t2, m2.as_str()), (echo, "echo"));
            assert_eq!(result.arg(0), Some(&Amf0Value::Number(7.0)));
        }
        other => panic!("{other:?}"),
    }
}

/// The server calls a method on the client (RPC); the client's `_result` comes back to the
/// server matched to that call.
#[test]
fn the_server_calls_the_client_and_gets_its_result() {
    let mut pair = Pair::new(HandshakeKind::Digest);
    pair.connected_with_stream();
    let tx = pair
        .server
        .call(
            0,
            "whoAreYou",
            Amf0Value::Null,
            &[Amf0Value::string("hi")],
            &mut pair.to_client,
        )
        .expect("room");
    pair.pump();
    let [SessionEvent::Command {
        stream_id: 0,
        command,
        ..
    }] = &pair.client_events[..]
    else {
        panic!("{:?}", pair.client_events);
    };
    assert_eq!(command.name, "whoAreYou");
    let answer = [
        Amf0Value::string("_result"),
        Amf0Value::Number(command.transaction_id),
        Amf0Value::Null,
        Amf0Value::string("a test"),
    ];
    pair.client_events.clear();
    pair.client
        .write_command(0, false, &answer, &mut pair.to_server);
    pair.pump();
    assert!(
        matches!(
            &pair.server_events[..],
            [SessionEvent::Result { transaction, call: CallKind::Method(m), command }]
                if *transaction == tx && m == "whoAreYou" && command.arg(0) == Some(&Amf0Value::string("a test"))
        ),
        "{:?}",
        pair.server_events
    );
}

/// The client answers the server's calls with `answer`: an `_error` reaches the server as
/// the error of that call, and a call with transaction 0 gets no answer.
#[test]
fn the_client_answers_a_call_with_an_error_and_ignores_transaction_zero() {
    let mut pair = Pair::new(HandshakeKind::Simple);
    pair.connected_with_stream();
    let tx = pair
        .server
        .call(0, "nope", Amf0Value::Null, &[], &mut pair.to_client)
        .expect("room");
    pair.pump();
    let [SessionEvent::Command { command, .. }] = &pair.client_events[..] else {
        panic!("{:?}", pair.client_events);
    };
    let transaction = command.transaction_id;
    pair.client_events.clear();
    let info = status("NetConnection.Call.Failed");
    pair.client
        .answer(0, transaction, CallAnswer::Error(info), &mut pair.to_server);
    pair.client.answer(
        0,
        0.0,
        CallAnswer::Result(Amf0Value::Null),
        &mut pair.to_server,
    );
    pair.pump();
    assert!(
        matches!(
            &pair.server_events[..],
            [SessionEvent::Error { transaction: t, command, .. }]
                if *t == tx && command.info_str("code") == Some("NetConnection.Call.Failed")
        ),
        "{:?}",
        pair.server_events
    );
}

/// A `_result` for a transaction the client never used, or one already answered, is a
/// command like any other.
#[test]
fn a_reply_to_no_call_is_a_command() {
    let mut pair = Pair::new(HandshakeKind::Digest);
    pair.connected_with_stream();
    // 99: never used; 1: connect's, answered already; 0: a call that expects no answer.
    for transaction in [99.0, 1.0, 0.0] {
        pair.server.write_command(
            0,
            false,
            &[
                Amf0Value::string("_result"),
                Amf0Value::Number(transaction),
                Amf0Value::Null,
            ],
            &mut pair.to_client,
        );
    }
    pair.pump();
    assert_eq!(pair.client_events.len(), 3);
    assert!(pair
        .client_events
        .iter()
        .all(|e| matches!(e, SessionEvent::Command { command, .. } if command.name == "_result")));
}

#[test]
fn a_created_stream_without_an_id_is_an_error() {
    for id in [
        Amf0Value::Null,
        Amf0Value::Number(0.0),
        Amf0Value::Number(1.5),
    ] {
        let mut pair = Pair::new(HandshakeKind::Simple);
        let tx = pair
            .client
            .create_stream(&mut pair.to_server)
            .expect("room");
        pair.pump();
        pair.server.write_command(
            0,
            false,
            &[
                Amf0Value::string("_result"),
                Amf0Value::Number(f64::from(tx)),
                Amf0Value::Null,
                id.clone(),
            ],
            &mut pair.to_client,
        );
        let err = pair
            .client
            .feed(
                &pair.to_client.split(),
                &mut BytesMut::new(),
                &mut Vec::new(),
            )
            .expect_err("a bad stream id");
        assert!(matches!(err, SessionError::NoStreamId), "{id:?}: {err}");
    }
}

#[test]
fn the_client_answers_pings_and_acknowledges_per_the_server_window() {
    let mut pair = Pair::new(HandshakeKind::Digest);
    let out = &mut pair.to_client;
    pair.server.write_connect_preamble(out);
    pair.server
        .write_control(&ControlMessage::WindowAckSize(5000), out);
    pair.server
        .write_user_control(UserControl::PingRequest(42), out);
    pair.server.write_message(&video(0, 6000), out);
    let mut answer = BytesMut::new();
    pair.client
        .feed(&out.split(), &mut answer, &mut pair.client_events)
        .expect("feed");
    let sent = controls(&decode(&answer));
    assert!(
        sent.contains(&ControlMessage::UserControl(UserControl::PingResponse(42))),
        "{sent:?}"
    );
    assert!(
        sent.iter()
            .any(|c| matches!(c, ControlMessage::Acknowledgement(n) if *n as u64 == pair.client.bytes_in())),
        "{sent:?}"
    );
}

proptest! {
    #[test]
    fn arbitrary_bytes_to_a_client_never_panic(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
        crate::fuzzing::rtmp_client_session(&data);
    }
}

#[test]
fn shared_object_messages_cross_both_ways_in_both_encodings() {
    use crate::proto::rtmp::shared_object::{SoEvent, SoMessage};
    let mut pair = Pair::new(HandshakeKind::Simple);
    pair.connected_with_stream();
    for amf3 in [false, true] {
        let request = SoMessage {
            name: "chat".into(),
            version: 0,
            persistent: false,
            events: vec![
                SoEvent::Use,
                SoEvent::RequestChange {
                    key: "topic".into(),
                    value: Amf0Value::string("rust"),
                },
            ],
        };
        pair.client
            .write_shared_object(amf3, &request, &mut pair.to_server);
        let server_saw = pair.converse();
        assert!(
            matches!(&server_saw[..], [SessionEvent::SharedObject { amf3: a, message }] if *a == amf3 && *message == request),
            "{server_saw:?}"
        );
        let update = SoMessage {
            name: "chat".into(),
            version: 1,
            persistent: false,
            events: vec![SoEvent::UseSuccess, SoEvent::Success("topic".into())],
        };
        pair.server
            .write_shared_object(amf3, &update, &mut pair.to_client);
        pair.pump();
        let got = std::mem::take(&mut pair.client_events);
        assert!(
            matches!(&got[..], [SessionEvent::SharedObject { message, .. }] if *message == update),
            "{got:?}"
        );
    }
}
