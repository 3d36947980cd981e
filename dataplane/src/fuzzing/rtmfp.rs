//! Fuzz entry points for RTMFP: whole datagrams (session id, decryption, checksum, HMAC,
//! sequence numbers) and plain chunk areas (every chunk decoder, reached without having to
//! forge a checksum).

use crate::proto::rtmfp::chunk::{self, Chunk, ChunkDecoder};
use crate::proto::rtmfp::crypto::{self, DerivedKeys, PacketCrypto, Protection};
use crate::proto::rtmfp::packet::{self, Header};
use crate::proto::rtmfp::vlu;

/// A datagram as a session would get it: opened with the startup key, and with session keys
/// that expect an HMAC and sequence numbers; whatever opens is parsed to the last chunk.
pub fn rtmfp_packet(data: &[u8]) {
    let _ = crypto::session_id_of(data);
    let mut scratch = Vec::new();
    if let Ok(plain) = PacketCrypto::startup().open(data, &mut scratch) {
        rtmfp_plain(plain);
    }
    let keys = DerivedKeys {
        encrypt: [1; 32],
        decrypt: [2; 32],
        tx_hmac: [3; 32],
        rx_hmac: [4; 32],
    };
    let p = Protection {
        tx_hmac: Some(8),
        rx_hmac: Some(8),
        tx_seq: true,
        rx_seq: true,
    };
    if let Ok(plain) = PacketCrypto::session(&keys, p).open(data, &mut scratch) {
        rtmfp_plain(plain);
    }
    // The checksum path with the plain bytes run through the decoders, as if they had
    // decrypted to themselves.
    rtmfp_plain(data);
}

/// A decrypted packet: header, then every chunk decoded and its inner lists walked.
pub fn rtmfp_plain(data: &[u8]) {
    let Ok((_, area)) = Header::decode(data) else {
        return rtmfp_chunks(data);
    };
    rtmfp_chunks(area);
}

/// A chunk area.
pub fn rtmfp_chunks(area: &[u8]) {
    let mut d = ChunkDecoder::default();
    for c in packet::chunks(area) {
        let Ok((kind, value)) = c else { break };
        let Ok(c) = d.decode(kind, value) else {
            continue;
        };
        match c {
            Chunk::IHello { epd, .. } | Chunk::ForwardedIHello { epd, .. } => {
                for _ in vlu::options(epd) {}
            }
            Chunk::Redirect { destinations, .. } => {
                for _ in chunk::redirect_addresses(destinations) {}
            }
            Chunk::Ack {
                cumulative,
                ranges,
                rest,
                ..
            } => {
                for (from, to) in chunk::ack_ranges(cumulative, ranges, rest).take(10_000) {
                    assert!(from <= to && from > cumulative, "ack range out of order");
                }
            }
            Chunk::UserData(u) => {
                if let Some(o) = u.options {
                    for _ in vlu::options(o) {}
                }
            }
            Chunk::RHello { cert, .. } => for _ in vlu::options(cert) {},
            Chunk::IIKeying { cert, skic, .. } => {
                for _ in vlu::options(cert) {}
                for _ in vlu::options(skic) {}
            }
            Chunk::RIKeying { skrc, .. } => for _ in vlu::options(skrc) {},
            _ => {}
        }
    }
}

/// Valid inputs for the smoke test and the fuzz corpora: a startup datagram carrying every
/// handshake chunk, and a plain chunk area with user data, acks and the session chunks.
pub fn rtmfp_seeds() -> Vec<Vec<u8>> {
    use crate::proto::rtmfp::address::Origin;
    use crate::proto::rtmfp::chunk::{encode, kind, Fragment, UserData};
    use crate::proto::rtmfp::packet::Mode;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 1935));
    let mut plain = Vec::new();
    let mut h = Header::new(Mode::Startup);
    h.timestamp = Some(7);
    h.encode(&mut plain);
    encode::ihello(&mut plain, b"\x16\x0artmfp://127.0.0.1/live", &[1; 16]);
    encode::rhello(&mut plain, &[1; 16], &[2; 64], b"\x02\x15\x02\x02\x15\x0e");
    encode::redirect(&mut plain, &[1; 16], &[(addr, Origin::Remote)]);
    encode::forwarded_ihello(&mut plain, b"\x21\x0f", addr, &[3; 16]);
    encode::iikeying(
        &mut plain,
        9,
        &[2; 64],
        b"\x04\x1d\x02\xaa\xbb",
        b"\x03\x1a\x00\x10\x02\x1e\x00",
        b"X",
    );
    encode::rikeying(&mut plain, 10, b"\x02\x1e\x00", b"X");
    let mut datagram = Vec::new();
    PacketCrypto::startup().seal(0, &plain, &mut datagram);

    let mut area = Vec::new();
    let meta = [3u8, 0x00, b'T', b'C'];
    let d = UserData {
        flow_id: 2,
        seq: 1,
        fsn_offset: 1,
        fragment: Fragment::Begin,
        abandon: false,
        fin: false,
        options: Some(&meta),
        data: b"\x14\x00\x00\x00\x00\x02",
    };
    encode::user_data(&mut area, &d, false);
    let e = UserData {
        seq: 2,
        fsn_offset: 2,
        fragment: Fragment::End,
        options: None,
        fin: true,
        ..d
    };
    encode::user_data(&mut area, &e, true);
    encode::ack_ranges(&mut area, 2, 64, 3, &[(5, 6), (9, 9)]);
    encode::bytes(&mut area, kind::ACK_BITMAP, &[2, 64, 3, 0x05]);
    encode::flow_vlus(&mut area, kind::BUFFER_PROBE, &[2]);
    encode::flow_vlus(&mut area, kind::FLOW_EXCEPTION, &[2, 0]);
    encode::bytes(&mut area, kind::PING, b"ping");
    encode::bytes(&mut area, kind::PING_REPLY, b"ping");
    encode::bytes(&mut area, kind::SESSION_CLOSE, b"");
    encode::bytes(&mut area, kind::SESSION_CLOSE_ACK, b"");
    vec![datagram, plain, area]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn arbitrary_datagrams_never_panic(data in proptest::collection::vec(any::<u8>(), 0..1500)) {
            rtmfp_packet(&data);
        }

        #[test]
        fn arbitrary_chunk_areas_never_panic(data in proptest::collection::vec(any::<u8>(), 0..1500)) {
            rtmfp_chunks(&data);
        }

        #[test]
        fn seeds_with_arbitrary_tails_never_panic(which in 0usize..3, cut in 0usize..2000, tail in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut s = rtmfp_seeds()[which].clone();
            s.truncate(cut);
            s.extend_from_slice(&tail);
            rtmfp_packet(&s);
            rtmfp_chunks(&s);
        }
    }
}
