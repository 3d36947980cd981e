//! Two endpoints joined by memory, for the criterion benchmark of RTMFP's send path
//! (`benches/benches/rtmfp.rs`): a responder session queues messages on a flow, packetises
//! and encrypts them, and the initiator decrypts, parses, reassembles and acknowledges
//! them. Public only because the benchmarks are another crate.

use std::net::SocketAddr;

use bytes::Bytes;

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::crypto::LANES;
use super::dh::{DhGroup, DhKey};
use super::endpoint::{Endpoint, EndpointConfig};
use super::flow_send::Head;
use super::keys;
use super::session::{Event, SessionId};

/// A connected pair: the server (responder) sends, the client receives.
pub struct Pair {
    server: Endpoint,
    client: Endpoint,
    session: SessionId,
    flow: u64,
    now: u64,
    saddr: SocketAddr,
    caddr: SocketAddr,
    buf: Vec<u8>,
    back: Vec<u8>,
}

impl Pair {
    /// Two endpoints after their handshake (`None` if it did not complete, which would be
    /// a bug of the handshake).
    pub fn connected() -> Option<Pair> {
        let saddr = SocketAddr::from(([127, 0, 0, 1], 1935));
        let caddr = SocketAddr::from(([127, 0, 0, 2], 40000));
        let mut p = Pair {
            server: Endpoint::new(EndpointConfig {
                accept: true,
                seed: 1,
                ..EndpointConfig::default()
            }),
            client: Endpoint::new(EndpointConfig {
                seed: 2,
                ..EndpointConfig::default()
            }),
            session: 0,
            flow: 0,
            now: 1_000,
            saddr,
            caddr,
            buf: Vec::new(),
            back: Vec::new(),
        };
        p.client
            .connect(p.now, saddr, keys::epd_url("rtmfp://127.0.0.1/live"));
        for _ in 0..16 {
            p.exchange(1);
            while let Some((id, e)) = p.server.poll_event() {
                if matches!(e, Event::Accepted { .. }) {
                    p.session = id;
                }
            }
            while p.client.poll_event().is_some() {}
            if p.session != 0 {
                let s = p.server.session_mut(p.session)?;
                p.flow = s.open_flow(b"TC\x04\x01", None);
                return Some(p);
            }
        }
        None
    }

    /// Datagrams both ways until neither has one; the server's in polls of up to `burst`
    /// packets (1: one packet per poll, each sealed on its own). Returns the bytes of the
    /// messages the client received.
    fn exchange(&mut self, burst: usize) -> usize {
        let mut lens = [0usize; LANES];
        let burst = burst.clamp(1, LANES);
        let mut received = 0;
        loop {
            let mut any = false;
            self.buf.clear();
            while let Some((_, n)) =
                self.server
                    .poll_transmit_burst(self.now, &mut self.buf, &mut lens[..burst])
            {
                let mut at = 0;
                for &len in &lens[..n] {
                    self.client
                        .handle(self.now, self.saddr, &self.buf[at..at + len]);
                    at += len;
                }
                self.buf.clear();
                any = true;
            }
            while self
                .client
                .poll_transmit_into(self.now, &mut self.back)
                .is_some()
            {
                self.server.handle(self.now, self.caddr, &self.back);
                any = true;
            }
            while let Some((_, e)) = self.client.poll_event() {
                if let Event::Message { data, .. } = e {
                    received += data.len();
                }
            }
            self.now += 1;
            if !any {
                // A lone last packet is acknowledged after the delayed-ack time: let it
                // pass, or the next call would start with the window not yet reopened.
                match self.client.poll_timeout() {
                    Some(t) if t <= self.now + 200 => {
                        self.now = self.now.max(t);
                        self.client.handle_timeout(self.now);
                        if self
                            .client
                            .poll_transmit_into(self.now, &mut self.back)
                            .is_some()
                        {
                            self.server.handle(self.now, self.caddr, &self.back);
                            continue;
                        }
                        return received;
                    }
                    _ => return received,
                }
            }
        }
    }

    /// Sends `messages` on the flow and carries them over; `burst` as for `exchange`.
    /// Returns the message bytes the client received.
    pub fn carry(&mut self, messages: &[Bytes], burst: usize) -> usize {
        if let Some(s) = self.server.session_mut(self.session) {
            for m in messages {
                s.send_parts(self.flow, Head::default(), m.clone(), None);
            }
        }
        self.exchange(burst)
    }
}

/// The responder's Diffie-Hellman work in a group-14 handshake, for the criterion
/// benchmark: a fresh key (g^x from the generator's table) and the shared secret with an
/// initiator's key (square-and-multiply, as the fresh key was made before the table; the
/// exponents are the same size). Each returns a length so the work is kept.
pub struct DhWork {
    server: DhKey,
    initiator: Vec<u8>,
    rng: StdRng,
}

impl Default for DhWork {
    fn default() -> Self {
        let mut rng = StdRng::seed_from_u64(9);
        let server = DhKey::generate(DhGroup::Modp2048, &mut rng);
        let initiator = DhKey::generate(DhGroup::Modp2048, &mut rng)
            .public()
            .to_vec();
        DhWork {
            server,
            initiator,
            rng,
        }
    }
}

impl DhWork {
    pub fn fresh_key(&mut self) -> usize {
        DhKey::generate(DhGroup::Modp2048, &mut self.rng)
            .public()
            .len()
    }

    pub fn shared_secret(&self) -> usize {
        self.server
            .shared_secret(&self.initiator)
            .map_or(0, |s| s.len())
    }
}
