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

/// A startup packet (`data` is its plain header and chunks, sealed here with the default
/// key so that the handshake code is reached) to a server endpoint and to a client endpoint
/// that is connecting; then to an established session's id, as a stray datagram.
pub fn rtmfp_handshake(data: &[u8]) {
    use crate::proto::rtmfp::dh::DhGroup;
    use crate::proto::rtmfp::endpoint::{Endpoint, EndpointConfig};
    use crate::proto::rtmfp::keys;
    let from = std::net::SocketAddr::from(([127, 0, 0, 2], 5000));
    let to = std::net::SocketAddr::from(([127, 0, 0, 1], 1935));
    // Group 2 only: the fuzzer may complete a handshake, and 1024-bit keys keep it quick.
    let groups = vec![DhGroup::Modp1024];
    let mut server = Endpoint::new(EndpointConfig {
        accept: true,
        groups: groups.clone(),
        ..EndpointConfig::default()
    });
    let mut client = Endpoint::new(EndpointConfig {
        groups,
        ..EndpointConfig::default()
    });
    let id = client.connect(0, to, keys::epd_url("rtmfp://127.0.0.1/live"));
    // Random bytes never carry a valid cookie: an IIKeying gets the server's real one, so
    // that certificates, key components and Diffie-Hellman are reached.
    let fixed = with_cookie(data, &server.cookie_for(from, 0));
    let mut d = Vec::new();
    PacketCrypto::startup().seal(0, &fixed, &mut d);
    // What the engine asks of every startup packet before the endpoint sees it (an IHello
    // for a peer id another worker holds).
    let _ = server.foreign_peer_wanted(&d);
    let _ = server.foreign_peer_wanted(data);
    server.handle(1, from, &d);
    client.handle(1, to, &d);
    PacketCrypto::startup().seal(id, data, &mut d);
    client.handle(2, to, &d);
    client.handle(3, to, data);
    server.handle(3, from, data);
    for e in [&mut server, &mut client] {
        while e.poll_transmit(4).is_some() {}
        while e.poll_event().is_some() {}
        e.handle_timeout(100_000);
    }
}

/// `plain` with the cookie of any IIKeying chunk replaced by `cookie`.
fn with_cookie(plain: &[u8], cookie: &[u8]) -> Vec<u8> {
    use crate::proto::rtmfp::chunk::encode;
    let Ok((_, area)) = Header::decode(plain) else {
        return plain.to_vec();
    };
    let mut out = plain[..plain.len() - area.len()].to_vec();
    let mut d = ChunkDecoder::default();
    for c in packet::chunks(area) {
        let Ok((kind, value)) = c else { break };
        match d.decode(kind, value) {
            Ok(Chunk::IIKeying {
                initiator_session_id,
                cert,
                skic,
                signature,
                ..
            }) => encode::iikeying(
                &mut out,
                initiator_session_id,
                cookie,
                cert,
                skic,
                signature,
            ),
            _ => encode::bytes(&mut out, kind, value),
        }
    }
    out
}

/// Flow reassembly: each 4-byte record is one fragment (sequence number, forward sequence
/// number offset, flags: fragment position, abandon, fin; then data length); the receiver
/// must never deliver more than it was given, nor panic.
pub fn rtmfp_reassembly(data: &[u8]) {
    use crate::proto::rtmfp::chunk::{Fragment, UserData};
    use crate::proto::rtmfp::flow_recv::RecvFlow;
    let mut f = RecvFlow::new(1, 4096);
    let payload = [0x5a_u8; 256];
    let mut given = 0usize;
    let mut delivered = 0usize;
    for r in data.chunks_exact(4) {
        let seq = u64::from(r[0]) + 1;
        let fsn_offset = u64::from(r[1]).min(seq);
        let fragment = [
            Fragment::Whole,
            Fragment::Begin,
            Fragment::Middle,
            Fragment::End,
        ][usize::from(r[2] & 3)];
        let len = usize::from(r[3]);
        let d = UserData {
            flow_id: 1,
            seq,
            fsn_offset,
            fragment,
            abandon: r[2] & 4 != 0,
            fin: r[2] & 8 != 0,
            options: None,
            data: &payload[..len],
        };
        given += len;
        delivered += f.on_data(&d).messages.iter().map(Vec::len).sum::<usize>();
        let mut ack = Vec::new();
        f.write_ack(&mut ack);
        rtmfp_chunks(&ack);
    }
    assert!(delivered <= given, "delivered more than was received");
}

/// Flash profile flow messages and metadata.
pub fn rtmfp_flash_message(data: &[u8]) {
    use crate::proto::rtmfp::flash::{self, FlashControl, FlowMetadata};
    let _ = FlowMetadata::decode(data);
    if let Ok(m) = flash::decode_message(1, data) {
        let _ = FlashControl::from_message(&m);
        let mut again = Vec::new();
        flash::encode_message(&m, &mut again);
        assert_eq!(again, data, "a flow message re-encodes to itself");
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
    // A real IIKeying from our client role, to the server of `rtmfp_handshake`.
    let iikeying = {
        use crate::proto::rtmfp::dh::DhGroup;
        use crate::proto::rtmfp::endpoint::{Endpoint, EndpointConfig};
        use crate::proto::rtmfp::keys;
        let from = std::net::SocketAddr::from(([127, 0, 0, 2], 5000));
        let groups = vec![DhGroup::Modp1024];
        let mut server = Endpoint::new(EndpointConfig {
            accept: true,
            groups: groups.clone(),
            ..EndpointConfig::default()
        });
        let mut client = Endpoint::new(EndpointConfig {
            groups,
            ..EndpointConfig::default()
        });
        client.connect(0, addr, keys::epd_url("rtmfp://127.0.0.1/live"));
        let mut last = Vec::new();
        for _ in 0..2 {
            while let Some(t) = client.poll_transmit(1) {
                last = t.data.clone();
                server.handle(1, from, &t.data);
            }
            while let Some(t) = server.poll_transmit(1) {
                client.handle(1, addr, &t.data);
            }
        }
        let mut scratch = Vec::new();
        PacketCrypto::startup()
            .open(&last, &mut scratch)
            .map(<[u8]>::to_vec)
            .unwrap_or_default()
    };
    let mut flash_msg = vec![20, 0, 0, 0, 0];
    flash_msg.extend_from_slice(b"\x02\x00\x07connect\x00\x3f\xf0\x00\x00\x00\x00\x00\x00");
    let reassembly = vec![
        0, 0, 0, 10, 2, 2, 1, 20, 3, 3, 2, 30, 4, 4, 3, 40, 1, 1, 0, 5, 7, 2, 8, 0,
    ];
    vec![datagram, plain, area, flash_msg, reassembly, iikeying]
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
        fn arbitrary_reassembly_never_panics(data in proptest::collection::vec(any::<u8>(), 0..400)) {
            rtmfp_reassembly(&data);
        }

        #[test]
        fn arbitrary_flash_messages_never_panic(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            rtmfp_flash_message(&data);
        }

        #[test]
        fn seeds_with_arbitrary_tails_never_panic(which in 0usize..6, cut in 0usize..2000, tail in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut s = rtmfp_seeds()[which].clone();
            s.truncate(cut);
            s.extend_from_slice(&tail);
            rtmfp_packet(&s);
            rtmfp_chunks(&s);
            rtmfp_reassembly(&s);
            rtmfp_flash_message(&s);
        }

        #[test]
        fn arbitrary_startup_packets_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            rtmfp_handshake(&data);
        }
    }
}

#[cfg(test)]
mod handshake_seed {
    #[test]
    fn the_iikeying_seed_makes_a_session() {
        use crate::proto::rtmfp::endpoint::{Endpoint, EndpointConfig};
        let seeds = super::rtmfp_seeds();
        assert!(!seeds[5].is_empty(), "the client produced an IIKeying");
        // What rtmfp_handshake does, observed: the fixed-up IIKeying opens a session.
        let from = std::net::SocketAddr::from(([127, 0, 0, 2], 5000));
        let groups = vec![crate::proto::rtmfp::dh::DhGroup::Modp1024];
        let mut server = Endpoint::new(EndpointConfig {
            accept: true,
            groups,
            ..EndpointConfig::default()
        });
        let fixed = super::with_cookie(&seeds[5], &server.cookie_for(from, 0));
        let mut d = Vec::new();
        super::PacketCrypto::startup().seal(0, &fixed, &mut d);
        server.handle(1, from, &d);
        assert_eq!(server.session_count(), 1);
    }
}
