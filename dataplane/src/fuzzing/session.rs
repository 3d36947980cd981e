//! Fuzz entry point for a whole server connection: a valid handshake, then arbitrary bytes
//! through the chunk decoder, protocol control, command decoding and NetConnection.

use bytes::BytesMut;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::app::NetConnection;
use crate::config::Config;
use crate::proto::rtmp::chunk_decoder::DecoderLimits;
use crate::proto::rtmp::handshake::{ClientHandshake, HandshakeKind};
use crate::proto::rtmp::session::{Session, SessionConfig, SessionEvent};

/// Byte 0 picks the feed size (0 = everything at once); the rest is what the client sends
/// after the handshake.
pub fn rtmp_session(data: &[u8]) {
    let Some((&step, data)) = data.split_first() else {
        return;
    };
    let step = if step == 0 {
        data.len().max(1)
    } else {
        usize::from(step)
    };
    let config = Config::default();
    let mut rng = StdRng::seed_from_u64(7);
    let session_config = SessionConfig {
        limits: DecoderLimits {
            max_message_size: 1 << 20,
            max_chunk_streams: 16,
        },
        chunk_size: 4096,
        window_ack_size: 2_500_000,
        peer_bandwidth: 2_500_000,
    };
    let mut session = Session::server(session_config, &mut rng, 0);
    let mut c0c1 = Vec::new();
    let mut client = ClientHandshake::new(&mut rng, 0, HandshakeKind::Digest, &mut c0c1);
    let mut out = BytesMut::new();
    let mut events = Vec::new();
    assert!(
        session.feed(&c0c1, &mut out, &mut events).is_ok(),
        "valid C0C1 refused"
    );
    let mut c2 = Vec::new();
    assert!(
        client.feed(&out, &mut c2).is_ok(),
        "server S0S1S2 refused by our client"
    );
    assert!(
        session.feed(&c2, &mut out, &mut events).is_ok(),
        "valid C2 refused"
    );
    let mut nc = NetConnection::new();
    let mut actions = Vec::new();
    for piece in data.chunks(step) {
        let result = session.feed(piece, &mut out, &mut events);
        for ev in events.drain(..) {
            if let SessionEvent::Command {
                stream_id, command, ..
            } = ev
            {
                nc.on_command(stream_id, &command, &config, &mut actions);
            }
        }
        actions.clear();
        out.clear();
        if result.is_err() {
            return;
        }
    }
}
