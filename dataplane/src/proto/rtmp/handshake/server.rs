//! Server side: reads C0+C1, answers S0+S1+S2 at once, then reads (and accepts) C2.

use super::digest::{self, DIGEST_LEN, FMS_KEY, FMS_KEY_TEXT_LEN, FP_KEY};
use super::{fill, HandshakeError, HandshakeKind, PACKET_SIZE, RTMP_VERSION};

/// Version we put in a digest S1. ffmpeg verifies the S1 digest only when the first byte is at
/// least 3 (rtmpproto.c, `serverdata[5] >= 3`); 13.14.10.13 is the value other servers send.
const SERVER_VERSION: [u8; 4] = [0x0d, 0x0e, 0x0a, 0x0d];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Collecting C0 and C1 (1 + 1536 bytes).
    C0C1,
    /// S0+S1+S2 sent; skipping this many more bytes of C2.
    C2(usize),
    Done,
}

pub struct ServerHandshake {
    phase: Phase,
    kind: Option<HandshakeKind>,
    c0c1: Vec<u8>,
    /// S1 with our time and random bytes (version and digest filled in once C1 is known).
    s1: Box<[u8; PACKET_SIZE]>,
    /// Random bytes for a digest S2 (its last 32 bytes become the signature).
    s2: Box<[u8; PACKET_SIZE]>,
}

impl std::fmt::Debug for ServerHandshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandshake")
            .field("phase", &self.phase)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl ServerHandshake {
    /// `epoch_ms` is the S1 time field; the randomness for S1 and S2 is drawn here so that
    /// `feed` needs nothing but bytes.
    pub fn new(rng: &mut impl rand::RngCore, epoch_ms: u32) -> Self {
        let mut s1 = Box::new([0u8; PACKET_SIZE]);
        s1[..4].copy_from_slice(&epoch_ms.to_be_bytes());
        rng.fill_bytes(&mut s1[8..]);
        let mut s2 = Box::new([0u8; PACKET_SIZE]);
        rng.fill_bytes(&mut s2[..]);
        ServerHandshake {
            phase: Phase::C0C1,
            kind: None,
            c0c1: Vec::with_capacity(1 + PACKET_SIZE),
            s1,
            s2,
        }
    }

    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, HandshakeError> {
        let mut used = 0;
        if self.phase == Phase::C0C1 {
            used += fill(&mut self.c0c1, 1 + PACKET_SIZE, input);
            // Reject a wrong version as soon as its byte arrives, before waiting for C1.
            if let Some(&v) = self.c0c1.first() {
                if v != RTMP_VERSION {
                    return Err(HandshakeError::for_version(v));
                }
            }
            if self.c0c1.len() < 1 + PACKET_SIZE {
                return Ok(used);
            }
            self.answer(out);
            self.c0c1 = Vec::new();
            self.phase = Phase::C2(PACKET_SIZE);
        }
        if let Phase::C2(left) = self.phase {
            // C2 is only counted: clients fill it differently (an echo of S1, a signed random
            // block, or anything), and none of that changes what we do next.
            let take = left.min(input.len() - used);
            used += take;
            self.phase = if left == take {
                Phase::Done
            } else {
                Phase::C2(left - take)
            };
        }
        Ok(used)
    }

    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Known once C1 has arrived.
    pub fn kind(&self) -> Option<HandshakeKind> {
        self.kind
    }

    /// Writes S0+S1+S2 for the C1 in `self.c0c1`.
    fn answer(&mut self, out: &mut Vec<u8>) {
        let mut c1 = [0u8; PACKET_SIZE];
        c1.copy_from_slice(&self.c0c1[1..]);
        out.reserve(1 + 2 * PACKET_SIZE);
        out.push(RTMP_VERSION);
        // A zero version in C1 means the simple handshake; otherwise the client may have
        // signed C1, at either scheme. Without a valid digest we fall back to simple.
        let client_digest = if c1[4..8] == [0; 4] {
            None
        } else {
            digest::find(&c1, &FP_KEY[..digest::FP_KEY_TEXT_LEN])
        };
        match client_digest {
            None => {
                self.kind = Some(HandshakeKind::Simple);
                // S1 keeps a zero version so that clients do not look for a digest in it.
                out.extend_from_slice(&self.s1[..]);
                // S2 echoes C1 verbatim: librtmp compares all 1536 bytes (and only warns),
                // and the time2 field carries no meaning for anyone.
                out.extend_from_slice(&c1);
            }
            Some((scheme, pos)) => {
                self.kind = Some(HandshakeKind::Digest);
                self.s1[4..8].copy_from_slice(&SERVER_VERSION);
                // Same scheme as the client's: Flash Player looks for it there.
                digest::imprint(&mut self.s1, scheme, &FMS_KEY[..FMS_KEY_TEXT_LEN]);
                out.extend_from_slice(&self.s1[..]);
                digest::sign_response(&mut self.s2, &c1[pos..pos + DIGEST_LEN], &FMS_KEY);
                out.extend_from_slice(&self.s2[..]);
            }
        }
    }
}
