//! Fuzz entry point for the client role of an RTMP session: what a server (or anything
//! pretending to be one) sends to our test client, the load tool and, later, relays.

use bytes::BytesMut;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::proto::amf0::Amf0Value;
use crate::proto::rtmp::chunk_decoder::DecoderLimits;
use crate::proto::rtmp::handshake::{HandshakeKind, ServerHandshake};
use crate::proto::rtmp::session::{Session, SessionConfig, SessionError, SessionEvent};

/// Byte 0: the low 6 bits pick the feed size (0 = everything at once); with bit 7 set the
/// rest is fed from the first byte on, the server's S0+S1+S2 included, else a real server
/// handshake comes first and the rest is the chunk stream.
///
/// Once the handshake is done the client calls `connect` (transaction 1), `createStream` (2)
/// and `fooBar` (3) at once, and plays the stream it is given, so that the answers the input
/// makes up can match calls and reach every state.
pub fn rtmp_client_session(data: &[u8]) {
    let Some((&ctl, data)) = data.split_first() else {
        return;
    };
    let step = match usize::from(ctl & 0x3f) {
        0 => data.len().max(1),
        n => n,
    };
    let mut rng = StdRng::seed_from_u64(11);
    let config = SessionConfig {
        limits: DecoderLimits {
            max_message_size: 1 << 20,
            max_chunk_streams: 16,
        },
        ..SessionConfig::client(4096)
    };
    let mut out = BytesMut::new();
    let mut client = Session::client(config, HandshakeKind::Digest, &mut rng, 0, &mut out);
    let mut events = Vec::new();
    if ctl & 0x80 == 0 {
        let mut server = ServerHandshake::new(&mut rng, 0);
        let mut s0s1s2 = Vec::new();
        assert!(
            server.feed(&out, &mut s0s1s2).is_ok(),
            "our C0C1 refused by our server"
        );
        assert!(
            client.feed(&s0s1s2, &mut out, &mut events).is_ok(),
            "our server's S0S1S2 refused by our client"
        );
        assert!(client.is_handshake_done(), "S0S1S2 did not finish it");
    }
    if act(&mut client, &mut events, &mut out).is_err() {
        return;
    }
    for mut piece in data.chunks(step) {
        // The calls go out as soon as the handshake is done, before the bytes after it.
        if !client.is_handshake_done() {
            let Ok(used) = client.feed_handshake(piece, &mut out, &mut events) else {
                return;
            };
            piece = &piece[used..];
            if act(&mut client, &mut events, &mut out).is_err() {
                return;
            }
        }
        let fed = client.feed(piece, &mut out, &mut events);
        if act(&mut client, &mut events, &mut out).is_err() || fed.is_err() {
            return;
        }
        out.clear();
    }
}

/// What the client does about its events.
fn act(
    client: &mut Session,
    events: &mut Vec<SessionEvent>,
    out: &mut BytesMut,
) -> Result<(), SessionError> {
    for event in events.drain(..) {
        match event {
            SessionEvent::HandshakeDone(_) => {
                client.connect("live", "rtmp://127.0.0.1/live", "LNX 9,0,124,2", out)?;
                client.create_stream(out)?;
                client.call(0, "fooBar", Amf0Value::Null, &[], out)?;
            }
            SessionEvent::StreamCreated { stream_id, .. } => {
                client.play(stream_id, "cam", out);
                client.set_buffer_length(stream_id, 3000, out);
            }
            _ => {}
        }
    }
    Ok(())
}
