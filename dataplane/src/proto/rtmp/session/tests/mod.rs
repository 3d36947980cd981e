//! The session's tests: the server role fed by a bare chunk encoder (`server`), and a client
//! and a server session talking to each other in memory (`pair`).

mod pair;
mod server;

use bytes::BytesMut;

use super::SessionConfig;
use crate::proto::rtmp::chunk_decoder::{ChunkDecoder, DecoderLimits};
use crate::proto::rtmp::control::ControlMessage;
use crate::proto::rtmp::Message;

fn server_config() -> SessionConfig {
    SessionConfig {
        limits: DecoderLimits::default(),
        chunk_size: 4096,
        window_ack_size: 2_500_000,
        peer_bandwidth: 2_500_000,
    }
}

/// The messages in `bytes`, as a fresh peer would decode them.
fn decode(bytes: &BytesMut) -> Vec<Message> {
    let mut decoded = Vec::new();
    ChunkDecoder::new(DecoderLimits::default())
        .feed(bytes, &mut decoded)
        .expect("our own output decodes");
    decoded
}

/// The protocol control messages among `messages`.
fn controls(messages: &[Message]) -> Vec<ControlMessage> {
    messages
        .iter()
        .filter_map(|m| ControlMessage::decode(m.type_id, &m.payload).ok())
        .collect()
}
