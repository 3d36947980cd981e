//! The RTMP handshake (C0/C1/C2, S0/S1/S2), both the simple form of the RTMP specification
//! (§5.2) and the digest ("complex", Flash Player 9) form that Flash-era clients and ffmpeg
//! send. Sans-IO: bytes in, bytes out; randomness and the epoch are passed in.

mod client;
pub(crate) mod digest;
mod server;

pub use client::ClientHandshake;
pub use server::ServerHandshake;

/// The only RTMP version byte we serve (plain RTMP); 6, 8 and 9 ask for RTMPE.
pub(crate) const RTMP_VERSION: u8 = 3;
/// Size of C1, C2, S1 and S2.
pub const PACKET_SIZE: usize = 1536;

/// Which handshake a connection used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeKind {
    /// Zero version field, no digest: the RTMP specification's handshake.
    Simple,
    /// HMAC-SHA256 digests with the Genuine Adobe keys (Flash Player 9 and later, ffmpeg).
    Digest,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("handshake: client asked for RTMP version {0} (RTMPE), only 3 is served")]
    EncryptedRequested(u8),
    #[error("handshake: peer asked for RTMP version {0}, only 3 is served")]
    BadVersion(u8),
    #[error("handshake: server S1 digest does not verify with the Genuine FMS key")]
    BadServerDigest,
    #[error("handshake: server S2 signature does not match our C1 digest")]
    BadServerSignature,
}

impl HandshakeError {
    /// The error for a C0/S0 version byte other than 3.
    fn for_version(v: u8) -> Self {
        match v {
            6 | 8 | 9 => HandshakeError::EncryptedRequested(v),
            _ => HandshakeError::BadVersion(v),
        }
    }
}

/// Copies from `input` into `buf` until it holds `want` bytes; returns how many were taken.
fn fill(buf: &mut Vec<u8>, want: usize, input: &[u8]) -> usize {
    let take = want.saturating_sub(buf.len()).min(input.len());
    buf.extend_from_slice(&input[..take]);
    take
}

#[cfg(test)]
mod tests;
