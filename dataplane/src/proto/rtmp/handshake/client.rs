//! Client side, for our test clients, relays and the load tool: writes C0+C1, reads S0+S1,
//! writes C2, reads S2.

use super::digest::{self, Scheme, DIGEST_LEN, FMS_KEY, FMS_KEY_TEXT_LEN, FP_KEY, FP_KEY_TEXT_LEN};
use super::{fill, HandshakeError, HandshakeKind, PACKET_SIZE, RTMP_VERSION};

/// The Flash Player version a digest C1 announces (what ffmpeg sends: 9.0.124.2).
const CLIENT_VERSION: [u8; 4] = [9, 0, 124, 2];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Collecting S0 and S1.
    S0S1,
    /// C2 sent; collecting S2.
    S2,
    Done,
}

pub struct ClientHandshake {
    phase: Phase,
    kind: HandshakeKind,
    /// Offset of our digest in C1 (digest kind only).
    c1: Box<[u8; PACKET_SIZE]>,
    c1_digest_pos: Option<usize>,
    /// Random bytes for a digest C2.
    c2: Box<[u8; PACKET_SIZE]>,
    buf: Vec<u8>,
    /// Whether the server answered with a digest S1 (then S2 must be signed).
    server_digest: bool,
}

impl std::fmt::Debug for ClientHandshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientHandshake")
            .field("phase", &self.phase)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl ClientHandshake {
    /// Writes C0+C1 into `out`. A digest C1 is signed at scheme 0, like ffmpeg and Flash
    /// Player 9 do for plain RTMP.
    pub fn new(
        rng: &mut impl rand::RngCore,
        epoch_ms: u32,
        kind: HandshakeKind,
        out: &mut Vec<u8>,
    ) -> Self {
        Self::with_scheme(rng, epoch_ms, kind, Scheme::Zero, out)
    }

    /// As `new`, choosing the digest scheme (tests exercise both).
    pub(crate) fn with_scheme(
        rng: &mut impl rand::RngCore,
        epoch_ms: u32,
        kind: HandshakeKind,
        scheme: Scheme,
        out: &mut Vec<u8>,
    ) -> Self {
        let mut c1 = Box::new([0u8; PACKET_SIZE]);
        c1[..4].copy_from_slice(&epoch_ms.to_be_bytes());
        rng.fill_bytes(&mut c1[8..]);
        let c1_digest_pos = match kind {
            HandshakeKind::Simple => None,
            HandshakeKind::Digest => {
                c1[4..8].copy_from_slice(&CLIENT_VERSION);
                Some(digest::imprint(&mut c1, scheme, &FP_KEY[..FP_KEY_TEXT_LEN]))
            }
        };
        let mut c2 = Box::new([0u8; PACKET_SIZE]);
        rng.fill_bytes(&mut c2[..]);
        out.push(RTMP_VERSION);
        out.extend_from_slice(&c1[..]);
        ClientHandshake {
            phase: Phase::S0S1,
            kind,
            c1,
            c1_digest_pos,
            c2,
            buf: Vec::with_capacity(1 + PACKET_SIZE),
            server_digest: false,
        }
    }

    /// Consumes S0+S1 (answering C2 into `out`) and then S2; returns the count consumed.
    pub(crate) fn feed(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<usize, HandshakeError> {
        let mut used = 0;
        if self.phase == Phase::S0S1 {
            used += fill(&mut self.buf, 1 + PACKET_SIZE, input);
            if let Some(&v) = self.buf.first() {
                if v != RTMP_VERSION {
                    return Err(HandshakeError::for_version(v));
                }
            }
            if self.buf.len() < 1 + PACKET_SIZE {
                return Ok(used);
            }
            let mut s1 = [0u8; PACKET_SIZE];
            s1.copy_from_slice(&self.buf[1..]);
            self.answer(&s1, out)?;
            self.buf.clear();
            self.phase = Phase::S2;
        }
        if self.phase == Phase::S2 {
            used += fill(&mut self.buf, PACKET_SIZE, &input[used..]);
            if self.buf.len() < PACKET_SIZE {
                return Ok(used);
            }
            // Like ffmpeg, a server that signed S1 must also sign S2 with our C1 digest.
            if let (true, Some(pos)) = (self.server_digest, self.c1_digest_pos) {
                let ours = &self.c1[pos..pos + DIGEST_LEN];
                if !digest::response_is_signed(&self.buf, ours, &FMS_KEY) {
                    return Err(HandshakeError::BadServerSignature);
                }
            }
            self.buf = Vec::new();
            self.phase = Phase::Done;
        }
        Ok(used)
    }

    pub(crate) fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// The handshake both sides used: digest only if we asked for it and the server signed.
    pub(crate) fn kind(&self) -> HandshakeKind {
        if self.server_digest {
            HandshakeKind::Digest
        } else {
            HandshakeKind::Simple
        }
    }

    /// Writes C2 for `s1`.
    fn answer(&mut self, s1: &[u8; PACKET_SIZE], out: &mut Vec<u8>) -> Result<(), HandshakeError> {
        // A server that puts a version in S1 claims the digest handshake; we only hold it to
        // that if we asked for it (a simple C1 gets no digest from a conforming server).
        if self.kind == HandshakeKind::Digest && s1[4..8] != [0; 4] {
            let Some((_, pos)) = digest::find(s1, &FMS_KEY[..FMS_KEY_TEXT_LEN]) else {
                return Err(HandshakeError::BadServerDigest);
            };
            self.server_digest = true;
            digest::sign_response(&mut self.c2, &s1[pos..pos + DIGEST_LEN], &FP_KEY);
            out.extend_from_slice(&self.c2[..]);
        } else {
            // The simple handshake: C2 echoes S1.
            out.extend_from_slice(s1);
        }
        Ok(())
    }
}
