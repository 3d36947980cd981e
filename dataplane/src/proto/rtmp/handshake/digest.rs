//! Digest arithmetic of the Flash Player 9 handshake, as Flash Player, FMS, librtmp
//! (handshake.h) and ffmpeg (rtmpproto.c) implement it.
//!
//! A 1536-byte C1/S1 hides a 32-byte HMAC-SHA256 digest at an offset derived from four of its
//! own bytes. Two layouts ("schemes") exist: scheme 0 reads the offset bytes at 8..12 and
//! places the digest in 12..772; scheme 1 reads them at 772..776 and places it in 776..1536.
//! The digest covers the whole packet except the digest itself.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::PACKET_SIZE;

pub(crate) const DIGEST_LEN: usize = 32;

/// "Genuine Adobe Flash Player 001" followed by 32 constant bytes. Clients sign C1 with the
/// first 30 bytes (the text) and derive the C2 key with all 62.
pub(crate) const FP_KEY: [u8; 62] = {
    let mut k = [0u8; 62];
    let text = b"Genuine Adobe Flash Player 001";
    let mut i = 0;
    while i < 30 {
        k[i] = text[i];
        i += 1;
    }
    let mut j = 0;
    while j < 32 {
        k[30 + j] = KEY_TAIL[j];
        j += 1;
    }
    k
};
pub(crate) const FP_KEY_TEXT_LEN: usize = 30;

/// "Genuine Adobe Flash Media Server 001" followed by the same 32 bytes. Servers sign S1 with
/// the first 36 bytes and derive the S2 key with all 68.
pub(crate) const FMS_KEY: [u8; 68] = {
    let mut k = [0u8; 68];
    let text = b"Genuine Adobe Flash Media Server 001";
    let mut i = 0;
    while i < 36 {
        k[i] = text[i];
        i += 1;
    }
    let mut j = 0;
    while j < 32 {
        k[36 + j] = KEY_TAIL[j];
        j += 1;
    }
    k
};
pub(crate) const FMS_KEY_TEXT_LEN: usize = 36;

const KEY_TAIL: [u8; 32] = [
    0xF0, 0xEE, 0xC2, 0x4A, 0x80, 0x68, 0xBE, 0xE8, 0x2E, 0x00, 0xD0, 0xD1, 0x02, 0x9E, 0x7E, 0x57,
    0x6E, 0xEC, 0x5D, 0x2D, 0x29, 0x80, 0x6F, 0xAB, 0x93, 0xB8, 0xE6, 0x36, 0xCF, 0xEB, 0x31, 0xAE,
];

/// The two digest layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    Zero,
    One,
}

impl Scheme {
    pub(crate) const ALL: [Scheme; 2] = [Scheme::Zero, Scheme::One];

    /// Where the four offset bytes start.
    fn base(self) -> usize {
        match self {
            Scheme::Zero => 8,
            Scheme::One => 772,
        }
    }
}

/// Offset of the digest in a 1536-byte packet for `scheme`: the four bytes at `base` summed,
/// modulo 728, plus `base + 4` (ffmpeg's `ff_rtmp_calc_digest_pos`). Always leaves room for
/// the 32 digest bytes: at most 1503 + 32 = 1535.
pub(crate) fn digest_pos(packet: &[u8; PACKET_SIZE], scheme: Scheme) -> usize {
    let base = scheme.base();
    let sum: usize = packet[base..base + 4].iter().map(|&b| usize::from(b)).sum();
    sum % 728 + base + 4
}

pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; DIGEST_LEN] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// The digest of `packet` (everything but the 32 bytes at `pos`) under `key`.
pub(crate) fn compute(packet: &[u8; PACKET_SIZE], pos: usize, key: &[u8]) -> [u8; DIGEST_LEN] {
    hmac_sha256(key, &[&packet[..pos], &packet[pos + DIGEST_LEN..]])
}

/// Writes the digest into `packet` at the place `scheme` dictates; returns its offset.
pub(crate) fn imprint(packet: &mut [u8; PACKET_SIZE], scheme: Scheme, key: &[u8]) -> usize {
    let pos = digest_pos(packet, scheme);
    let d = compute(packet, pos, key);
    packet[pos..pos + DIGEST_LEN].copy_from_slice(&d);
    pos
}

/// Looks for a valid digest at either scheme (scheme 0 first, as ffmpeg and Flash Player 9
/// use it for plain RTMP); returns the scheme and the digest's offset.
pub(crate) fn find(packet: &[u8; PACKET_SIZE], key: &[u8]) -> Option<(Scheme, usize)> {
    Scheme::ALL.into_iter().find_map(|scheme| {
        let pos = digest_pos(packet, scheme);
        (compute(packet, pos, key) == packet[pos..pos + DIGEST_LEN]).then_some((scheme, pos))
    })
}

/// The signature that closes C2/S2: the last 32 bytes of the packet are the HMAC of the first
/// 1504 under a key that is itself the HMAC of the peer's C1/S1 digest under `long_key`.
pub(crate) fn sign_response(packet: &mut [u8; PACKET_SIZE], peer_digest: &[u8], long_key: &[u8]) {
    let key = hmac_sha256(long_key, &[peer_digest]);
    let sig = hmac_sha256(&key, &[&packet[..PACKET_SIZE - DIGEST_LEN]]);
    packet[PACKET_SIZE - DIGEST_LEN..].copy_from_slice(&sig);
}

pub(crate) fn response_is_signed(packet: &[u8], peer_digest: &[u8], long_key: &[u8]) -> bool {
    if packet.len() != PACKET_SIZE {
        return false;
    }
    let key = hmac_sha256(long_key, &[peer_digest]);
    hmac_sha256(&key, &[&packet[..PACKET_SIZE - DIGEST_LEN]])[..]
        == packet[PACKET_SIZE - DIGEST_LEN..]
}
