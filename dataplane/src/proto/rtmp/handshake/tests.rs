#![allow(clippy::unwrap_used)]

use super::digest::{self, Scheme, DIGEST_LEN, FMS_KEY, FMS_KEY_TEXT_LEN, FP_KEY, FP_KEY_TEXT_LEN};
use super::*;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// Runs a client and a server against each other, feeding `step` bytes at a time.
/// Returns (server, client, C0+C1, S0+S1+S2).
fn run(
    kind: HandshakeKind,
    scheme: Scheme,
    step: usize,
) -> (ServerHandshake, ClientHandshake, Vec<u8>, Vec<u8>) {
    let mut c_out = Vec::new();
    let mut client = ClientHandshake::with_scheme(&mut rng(1), 1000, kind, scheme, &mut c_out);
    let mut server = ServerHandshake::new(&mut rng(2), 2000);
    let c0c1 = c_out.clone();
    let mut s_out = Vec::new();
    let mut to_server = c_out.split_off(0);
    let mut to_client = Vec::new();
    for _ in 0..10_000 {
        if server.is_done() && client.is_done() {
            break;
        }
        if !to_server.is_empty() && !server.is_done() {
            let n = step.min(to_server.len());
            let mut out = Vec::new();
            let used = server.feed(&to_server[..n], &mut out).unwrap();
            assert_eq!(used, n, "the server takes everything before it is done");
            to_server.drain(..used);
            s_out.extend_from_slice(&out);
            to_client.extend_from_slice(&out);
        }
        if !to_client.is_empty() && !client.is_done() {
            let n = step.min(to_client.len());
            let mut out = Vec::new();
            let used = client.feed(&to_client[..n], &mut out).unwrap();
            to_client.drain(..used);
            to_server.extend_from_slice(&out);
        }
    }
    assert!(server.is_done() && client.is_done());
    assert!(to_server.is_empty() && to_client.is_empty());
    (server, client, c0c1, s_out)
}

#[test]
fn simple_handshake_completes_and_s2_echoes_c1() {
    let (server, _, c0c1, s) = run(HandshakeKind::Simple, Scheme::Zero, 4096);
    assert_eq!(server.kind(), Some(HandshakeKind::Simple));
    assert_eq!(s.len(), 1 + 2 * PACKET_SIZE);
    assert_eq!(s[0], 3);
    assert_eq!(
        &s[1..5],
        &2000u32.to_be_bytes(),
        "S1 time is the epoch passed in"
    );
    assert_eq!(&s[5..9], &[0; 4], "a simple S1 has a zero version");
    assert_eq!(&s[1 + PACKET_SIZE..], &c0c1[1..]);
}

#[test]
fn digest_handshake_scheme_0_signs_s1_and_s2() {
    let (server, _, c0c1, s) = run(HandshakeKind::Digest, Scheme::Zero, 4096);
    assert_eq!(server.kind(), Some(HandshakeKind::Digest));
    check_digest_answer(&c0c1, &s, Scheme::Zero);
}

#[test]
fn digest_handshake_scheme_1_signs_s1_and_s2() {
    let (server, _, c0c1, s) = run(HandshakeKind::Digest, Scheme::One, 4096);
    assert_eq!(server.kind(), Some(HandshakeKind::Digest));
    check_digest_answer(&c0c1, &s, Scheme::One);
}

/// Checks S1 and S2 the way ffmpeg's rtmp_handshake does, independently of the client code.
fn check_digest_answer(c0c1: &[u8], s: &[u8], scheme: Scheme) {
    let c1: [u8; PACKET_SIZE] = c0c1[1..].try_into().unwrap();
    let s1: [u8; PACKET_SIZE] = s[1..1 + PACKET_SIZE].try_into().unwrap();
    assert!(
        s1[4] >= 3,
        "ffmpeg only checks the digest when S1's version byte is >= 3"
    );
    let (found, _) = digest::find(&s1, &FMS_KEY[..FMS_KEY_TEXT_LEN]).unwrap();
    assert_eq!(found, scheme, "S1 digest sits at the client's scheme");
    let (_, cpos) = digest::find(&c1, &FP_KEY[..FP_KEY_TEXT_LEN]).unwrap();
    let key = digest::hmac_sha256(&FMS_KEY, &[&c1[cpos..cpos + DIGEST_LEN]]);
    let sig = digest::hmac_sha256(&key, &[&s[1 + PACKET_SIZE..1 + 2 * PACKET_SIZE - 32]]);
    assert_eq!(&sig[..], &s[s.len() - 32..]);
}

#[test]
fn byte_at_a_time_digest_handshake() {
    let (server, _, _, _) = run(HandshakeKind::Digest, Scheme::One, 1);
    assert_eq!(server.kind(), Some(HandshakeKind::Digest));
}

#[test]
fn odd_split_simple_handshake() {
    let (server, _, _, _) = run(HandshakeKind::Simple, Scheme::Zero, 700);
    assert_eq!(server.kind(), Some(HandshakeKind::Simple));
}

#[test]
fn c1_with_version_but_no_valid_digest_falls_back_to_simple() {
    let mut input = vec![3u8];
    let mut c1 = [0x5au8; PACKET_SIZE];
    c1[4..8].copy_from_slice(&[9, 0, 124, 2]);
    input.extend_from_slice(&c1);
    let mut server = ServerHandshake::new(&mut rng(3), 0);
    let mut out = Vec::new();
    assert_eq!(server.feed(&input, &mut out).unwrap(), input.len());
    assert_eq!(server.kind(), Some(HandshakeKind::Simple));
    assert_eq!(&out[5..9], &[0; 4]);
    assert_eq!(&out[1 + PACKET_SIZE..], &c1[..]);
}

#[test]
fn rtmpe_version_is_refused_with_a_clear_message() {
    let mut server = ServerHandshake::new(&mut rng(4), 0);
    let err = server.feed(&[6], &mut Vec::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "handshake: client asked for RTMP version 6 (RTMPE), only 3 is served"
    );
    let mut server = ServerHandshake::new(&mut rng(4), 0);
    let err = server
        .feed(&[0x16, 0x03, 0x01], &mut Vec::new())
        .unwrap_err();
    assert_eq!(
        err,
        HandshakeError::BadVersion(0x16),
        "a TLS ClientHello on the plain port"
    );
}

#[test]
fn bytes_after_c2_are_left_for_the_chunk_stream() {
    let mut server = ServerHandshake::new(&mut rng(5), 0);
    let mut input = vec![3u8];
    input.extend_from_slice(&[0u8; PACKET_SIZE]);
    input.extend_from_slice(&[7u8; PACKET_SIZE]);
    input.extend_from_slice(&[0x03, 0xAA]);
    let mut out = Vec::new();
    let used = server.feed(&input, &mut out).unwrap();
    assert_eq!(used, 1 + 2 * PACKET_SIZE);
    assert!(server.is_done());
    assert_eq!(server.feed(&input[used..], &mut out).unwrap(), 0);
}

#[test]
fn client_refuses_a_forged_s2() {
    let mut c_out = Vec::new();
    let mut client = ClientHandshake::new(&mut rng(6), 0, HandshakeKind::Digest, &mut c_out);
    let mut server = ServerHandshake::new(&mut rng(7), 0);
    let mut s_out = Vec::new();
    server.feed(&c_out, &mut s_out).unwrap();
    let last = s_out.len() - 1;
    s_out[last] ^= 1;
    let err = client.feed(&s_out, &mut Vec::new()).unwrap_err();
    assert_eq!(err, HandshakeError::BadServerSignature);
}

#[test]
fn client_refuses_an_s1_with_version_and_no_digest() {
    let mut c_out = Vec::new();
    let mut client = ClientHandshake::new(&mut rng(8), 0, HandshakeKind::Digest, &mut c_out);
    let mut s = vec![3u8];
    let mut s1 = [0x11u8; PACKET_SIZE];
    s1[4] = 4;
    s.extend_from_slice(&s1);
    let err = client.feed(&s, &mut Vec::new()).unwrap_err();
    assert_eq!(err, HandshakeError::BadServerDigest);
}

#[test]
fn keys_are_the_genuine_adobe_keys() {
    assert_eq!(&FP_KEY[..30], b"Genuine Adobe Flash Player 001");
    assert_eq!(&FMS_KEY[..36], b"Genuine Adobe Flash Media Server 001");
    assert_eq!(FP_KEY[30..], FMS_KEY[36..]);
    assert_eq!(&FMS_KEY[36..40], &[0xF0, 0xEE, 0xC2, 0x4A]);
    assert_eq!(&FMS_KEY[64..], &[0xCF, 0xEB, 0x31, 0xAE]);
}

#[test]
fn digest_position_follows_the_offset_bytes() {
    let mut p = [0u8; PACKET_SIZE];
    p[8..12].copy_from_slice(&[200, 200, 200, 200]);
    assert_eq!(digest::digest_pos(&p, Scheme::Zero), 800 % 728 + 12);
    p[772..776].copy_from_slice(&[255, 255, 255, 255]);
    assert_eq!(digest::digest_pos(&p, Scheme::One), 1020 % 728 + 776);
}

proptest! {
    #[test]
    fn server_never_panics(data in proptest::collection::vec(any::<u8>(), 0..4000), step in 1usize..5000, seed: u64) {
        let mut server = ServerHandshake::new(&mut rng(seed), 0);
        let mut out = Vec::new();
        let mut rest = &data[..];
        while !rest.is_empty() && !server.is_done() {
            let n = step.min(rest.len());
            match server.feed(&rest[..n], &mut out) {
                Ok(used) => { prop_assert!(used <= n); rest = &rest[used.max(1).min(rest.len())..]; }
                Err(_) => break,
            }
        }
    }

    #[test]
    fn server_answers_any_c1(c1 in proptest::collection::vec(any::<u8>(), PACKET_SIZE)) {
        let mut server = ServerHandshake::new(&mut rng(0), 0);
        let mut input = vec![3u8];
        input.extend_from_slice(&c1);
        let mut out = Vec::new();
        prop_assert_eq!(server.feed(&input, &mut out).unwrap(), input.len());
        prop_assert_eq!(out.len(), 1 + 2 * PACKET_SIZE);
    }
}

/// Deterministic bytes (x -> 5x + 1 mod 256) so that S1 and S2 can be checked byte for byte
/// against values computed independently (Python's hmac/hashlib, following ffmpeg's
/// rtmpproto.c layout).
struct PatternRng(u8);

impl rand::RngCore for PatternRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0; 4];
        self.fill_bytes(&mut b);
        u32::from_be_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0; 8];
        self.fill_bytes(&mut b);
        u64::from_be_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for b in dest {
            self.0 = self.0.wrapping_mul(5).wrapping_add(1);
            *b = self.0;
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn digest_handshake_matches_independently_computed_vectors() {
    // C1: time 0, version 9.0.124.2, byte i = i % 251, digest at scheme 1 (offset 858).
    let mut c1 = [0u8; PACKET_SIZE];
    for (i, b) in c1.iter_mut().enumerate().skip(8) {
        *b = (i % 251) as u8;
    }
    c1[4..8].copy_from_slice(&[9, 0, 124, 2]);
    let c1_digest = unhex("277b0b10a7757a490994c2ab78cc0a4e6ef4ca178bd69b0cf849aa25b631d351");
    assert_eq!(
        digest::imprint(&mut c1, Scheme::One, &FP_KEY[..FP_KEY_TEXT_LEN]),
        858
    );
    assert_eq!(&c1[858..890], &c1_digest[..]);

    let mut server = ServerHandshake::new(&mut PatternRng(0), 1234);
    let mut input = vec![3u8];
    input.extend_from_slice(&c1);
    let mut out = Vec::new();
    server.feed(&input, &mut out).unwrap();
    assert_eq!(server.kind(), Some(HandshakeKind::Digest));
    let s1 = &out[1..1 + PACKET_SIZE];
    assert_eq!(&s1[..8], &[0, 0, 0x04, 0xd2, 13, 14, 10, 13]);
    let s1_digest = unhex("f170d399c71d41c586ca969f786122ba4389fd2b18786df69adffcadd2aa5312");
    assert_eq!(
        &s1[890..922],
        &s1_digest[..],
        "S1 digest at scheme 1, offset 890"
    );
    let s2_sig = unhex("ec7f0fe6be53d842be0beb5af27c4c4e454f1802853c1b3c6eae372e7ddebe4e");
    assert_eq!(&out[out.len() - 32..], &s2_sig[..]);
}
