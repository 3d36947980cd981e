//! Fuzz entry points for the RTMP handshake, chunk stream and messages.

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::proto::rtmp::chunk_decoder::{ChunkDecoder, DecoderLimits};
use crate::proto::rtmp::control::ControlMessage;
use crate::proto::rtmp::handshake::digest::{self, Scheme, FP_KEY, FP_KEY_TEXT_LEN};
use crate::proto::rtmp::handshake::{HandshakeKind, ServerHandshake, PACKET_SIZE};

/// Server handshake on arbitrary client bytes. Byte 0: low 6 bits pick the feed size (1..=63
/// bytes, or everything at once for 0); bit 7 asks the harness to sign C1 with a valid digest
/// (at scheme 0, or 1 if bit 6 is set), since random bytes never carry one and the digest path
/// would stay unreached. After the handshake the rest goes to a chunk decoder, as a connection
/// would.
pub fn rtmp_handshake(data: &[u8]) {
    let Some((&ctl, data)) = data.split_first() else {
        return;
    };
    let step = match usize::from(ctl & 0x3f) {
        0 => data.len().max(1),
        n => n,
    };
    let mut data = data.to_vec();
    let signed = ctl & 0x80 != 0 && data.len() > PACKET_SIZE;
    if signed {
        data[0] = 3;
        let mut c1 = [0u8; PACKET_SIZE];
        c1.copy_from_slice(&data[1..=PACKET_SIZE]);
        c1[4] |= 1;
        let scheme = if ctl & 0x40 == 0 {
            Scheme::Zero
        } else {
            Scheme::One
        };
        digest::imprint(&mut c1, scheme, &FP_KEY[..FP_KEY_TEXT_LEN]);
        data[1..=PACKET_SIZE].copy_from_slice(&c1);
    }
    let mut hs = ServerHandshake::new(&mut StdRng::seed_from_u64(0), 0);
    let mut out = Vec::new();
    let mut rest = &data[..];
    while !rest.is_empty() && !hs.is_done() {
        let n = step.min(rest.len());
        match hs.feed(&rest[..n], &mut out) {
            Ok(used) => {
                assert!(used <= n, "handshake consumed more than it was given");
                assert!(
                    used > 0 || hs.is_done(),
                    "handshake made no progress on {n} bytes"
                );
                rest = &rest[used..];
            }
            Err(_) => return,
        }
    }
    if signed {
        assert_eq!(
            hs.kind(),
            Some(HandshakeKind::Digest),
            "a signed C1 must get the digest handshake"
        );
    }
    if hs.is_done() {
        let _ = ChunkDecoder::default().feed(rest, &mut Vec::new());
    }
}

/// Chunk decoder on arbitrary bytes. Byte 0: feed size (0 = all at once); byte 1: the limits
/// (low nibble picks the message size limit, high nibble the chunk stream limit), so the limit
/// paths are reached without megabytes of input.
pub fn rtmp_chunk_decode(data: &[u8]) {
    let [step, limits, data @ ..] = data else {
        return;
    };
    let step = if *step == 0 {
        data.len().max(1)
    } else {
        usize::from(*step)
    };
    let limits = DecoderLimits {
        max_message_size: 1 << (limits & 0x0f).min(23),
        max_chunk_streams: usize::from(limits >> 4) + 1,
    };
    let mut d = ChunkDecoder::new(limits);
    let mut out = Vec::new();
    for piece in data.chunks(step) {
        if d.feed(piece, &mut out).is_err() {
            return;
        }
        for m in &out {
            assert!(m.payload.len() as u64 <= u64::from(limits.max_message_size));
        }
        out.clear();
    }
}

/// Control message decoding: byte 0 is the message type (folded onto 0..=7 half the time so
/// that the control types are hit often), the rest the payload; a decoded message must
/// re-encode to a payload that decodes to itself.
pub fn rtmp_message(data: &[u8]) {
    let Some((&t, payload)) = data.split_first() else {
        return;
    };
    let type_id = if t & 0x80 == 0 { t & 0x07 } else { t };
    if let Ok(m) = ControlMessage::decode(type_id, payload) {
        let again = m.to_message();
        assert_eq!(
            ControlMessage::decode(again.type_id, &again.payload).ok(),
            Some(m)
        );
    }
}
