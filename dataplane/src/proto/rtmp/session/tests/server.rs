//! The server role, fed by a bare chunk encoder as a client would write.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::super::{Session, SessionEvent};
use super::{controls, decode, server_config};
use crate::proto::amf0::Amf0Value;
use crate::proto::command;
use crate::proto::rtmp::chunk_encoder::ChunkEncoder;
use crate::proto::rtmp::control::{ControlMessage, UserControl};
use crate::proto::rtmp::handshake::{ClientHandshake, HandshakeKind};
use crate::proto::rtmp::{msg_type, Message};

/// A server session past the handshake, and the client's chunk encoder.
fn connected() -> (Session, ChunkEncoder) {
    let mut rng = StdRng::seed_from_u64(1);
    let mut server = Session::server(server_config(), &mut rng, 0);
    let mut c0c1 = Vec::new();
    let mut client = ClientHandshake::new(&mut rng, 0, HandshakeKind::Digest, &mut c0c1);
    let (mut out, mut events) = (BytesMut::new(), Vec::new());
    server.feed(&c0c1, &mut out, &mut events).expect("C0C1");
    let mut c2 = Vec::new();
    client.feed(&out, &mut c2).expect("S0S1S2");
    server.feed(&c2, &mut out, &mut events).expect("C2");
    assert!(matches!(
        events[..],
        [SessionEvent::HandshakeDone(HandshakeKind::Digest)]
    ));
    (server, ChunkEncoder::new(128))
}

fn command(values: &[Amf0Value]) -> Message {
    let payload = Bytes::from(command::encode_values(false, values));
    Message {
        csid: 3,
        timestamp: 0,
        type_id: msg_type::COMMAND_AMF0,
        stream_id: 0,
        payload,
    }
}

#[test]
fn commands_and_media_become_events() {
    let (mut server, mut enc) = connected();
    let mut bytes = BytesMut::new();
    enc.encode(
        &command(&[
            Amf0Value::string("connect"),
            Amf0Value::Number(1.0),
            Amf0Value::Null,
        ]),
        &mut bytes,
    );
    let video = Message {
        csid: 6,
        timestamp: 40,
        type_id: msg_type::VIDEO,
        stream_id: 1,
        payload: Bytes::from_static(&[0x17, 1, 0, 0, 0]),
    };
    enc.encode(&video, &mut bytes);
    let (mut out, mut events) = (BytesMut::new(), Vec::new());
    server.feed(&bytes, &mut out, &mut events).expect("feed");
    assert!(
        matches!(&events[0], SessionEvent::Command { command, .. } if command.name == "connect")
    );
    assert!(matches!(&events[1], SessionEvent::Media { message } if message.timestamp == 40));
}

#[test]
fn ping_requests_are_answered() {
    let (mut server, mut enc) = connected();
    let mut bytes = BytesMut::new();
    enc.encode(
        &ControlMessage::UserControl(UserControl::PingRequest(77)).to_message(),
        &mut bytes,
    );
    let (mut out, mut events) = (BytesMut::new(), Vec::new());
    server.feed(&bytes, &mut out, &mut events).expect("feed");
    let decoded = decode(&out);
    let reply = ControlMessage::decode(decoded[0].type_id, &decoded[0].payload).expect("control");
    assert_eq!(
        reply,
        ControlMessage::UserControl(UserControl::PingResponse(77))
    );
}

#[test]
fn truncated_amf_in_a_command_is_an_error() {
    let (mut server, mut enc) = connected();
    let mut body = command::encode_values(
        false,
        &[Amf0Value::string("connect"), Amf0Value::Number(1.0)],
    );
    body.truncate(6);
    let msg = Message {
        csid: 3,
        timestamp: 0,
        type_id: msg_type::COMMAND_AMF0,
        stream_id: 0,
        payload: Bytes::from(body),
    };
    let mut bytes = BytesMut::new();
    enc.encode(&msg, &mut bytes);
    let err = server
        .feed(&bytes, &mut BytesMut::new(), &mut Vec::new())
        .expect_err("truncated AMF");
    assert!(err.to_string().contains("AMF"), "{err}");
}

#[test]
fn acknowledges_per_client_window() {
    let (mut server, mut enc) = connected();
    let mut bytes = BytesMut::new();
    enc.encode(
        &ControlMessage::WindowAckSize(1000).to_message(),
        &mut bytes,
    );
    let audio = Message {
        csid: 4,
        timestamp: 0,
        type_id: msg_type::AUDIO,
        stream_id: 1,
        payload: Bytes::from(vec![0xAF; 1200]),
    };
    enc.encode(&audio, &mut bytes);
    let (mut out, mut events) = (BytesMut::new(), Vec::new());
    server.feed(&bytes, &mut out, &mut events).expect("feed");
    assert!(
        controls(&decode(&out))
            .iter()
            .any(|c| matches!(c, ControlMessage::Acknowledgement(_))),
        "no acknowledgement sent"
    );
}

/// A client's `_result` or `_error` that answers no call of the server reaches the
/// application as a command, as before the server could make calls.
#[test]
fn a_reply_to_no_call_is_a_command() {
    let (mut server, mut enc) = connected();
    let mut bytes = BytesMut::new();
    for name in ["_result", "_error", "onStatus"] {
        enc.encode(
            &command(&[
                Amf0Value::string(name),
                Amf0Value::Number(1.0),
                Amf0Value::Null,
            ]),
            &mut bytes,
        );
    }
    let mut events = Vec::new();
    server
        .feed(&bytes, &mut BytesMut::new(), &mut events)
        .expect("feed");
    let names: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Command { command, .. } => Some(command.name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(names, ["_result", "_error", "onStatus"]);
}

proptest! {
    #[test]
    fn arbitrary_bytes_after_handshake_never_panic(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
        crate::fuzzing::rtmp_session(&data);
    }
}

#[test]
fn a_peer_bandwidth_limit_is_a_hard_set_peer_bandwidth() {
    let (mut server, _) = connected();
    let mut out = BytesMut::new();
    server.set_peer_bandwidth(64_000, &mut out);
    assert_eq!(
        controls(&decode(&out)),
        [ControlMessage::SetPeerBandwidth {
            size: 64_000,
            limit: 0
        }]
    );
}
