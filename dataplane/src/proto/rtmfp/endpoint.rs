//! The RTMFP endpoint: one per UDP socket, both roles. It routes each datagram by its
//! session id — 0 for startup packets (the handshake under the default key), the
//! initiator's id while it waits for RIKeying, else an open session — and runs the Flash
//! handshake (RFC 7016 §3.5.1, RFC 7425 §4):
//!
//! - responder: an IHello gets an RHello with a stateless cookie and our certificate (no
//!   state kept); an IIKeying with a valid cookie makes the session and gets RIKeying, at
//!   once or, with `defer_keying`, when the caller completes it (`complete_keyings`);
//! - initiator: `connect` sends IHello (retried with back-off), RHello gets IIKeying with our
//!   certificate and key component, RIKeying completes the session; a Redirect sends the
//!   IHello on to the addresses it names.
//!
//! Sans-IO: the caller passes the time (ms) in, takes datagrams and events out, and calls
//! `handle_timeout` at `poll_timeout`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use super::address::Origin;
use super::chunk::{self, encode, Chunk, ChunkDecoder};
use super::cookie::{CookieCheck, CookieJar};
use super::crypto::{self, PacketCrypto};
use super::dh::{DhGroup, DhKey};
use super::error::{Result, RtmfpError};
use super::keys::{self, Policy};
use super::packet::{self, Header, Mode, MAX_PLAIN};
use super::session::{Event, Session, SessionConfig, SessionId, Transmit};

const TAG_LEN: usize = 16;
const HELLO_RETRY_MS: u64 = 1_000;
const CONNECT_GIVE_UP_MS: u64 = 20_000;
/// IIKeyings waiting for their Diffie-Hellman (`EndpointConfig::defer_keying`) at most: past
/// it a new one is dropped, and its initiator sends it again (RFC 7016 §3.5.1.2).
const MAX_PENDING_KEYINGS: usize = 1024;

#[derive(Debug, Clone)]
pub(crate) struct EndpointConfig {
    /// Answer IHellos (the server role).
    pub accept: bool,
    /// Answer IHellos that name our own client identity (peer id), and the introductions a
    /// server forwards: peer-to-peer sessions.
    pub accept_peers: bool,
    /// Diffie-Hellman groups, in order of preference (offered as a responder).
    pub groups: Vec<DhGroup>,
    pub policy: Policy,
    pub session: SessionConfig,
    pub max_sessions: usize,
    /// Sessions one IP address may hold (many clients behind one NAT share an address).
    pub max_sessions_per_ip: usize,
    /// Seeds keys, tags, session ids and the cookie secret: tests pass a constant, the
    /// engine a random one.
    pub seed: u64,
    /// Our session ids are `index` modulo `count` (count ≥ 1): the engine gives each worker
    /// its index, so a datagram that reaches another worker's socket names the worker that
    /// holds its session (see `session_owner`).
    pub id_space: IdSpace,
    /// Responder: an IIKeying whose cookie checks out waits for `complete_keyings` instead
    /// of being answered at once. Each costs two modular exponentiations (about 1 ms for
    /// group 14): the engine completes a few per loop turn, so that a storm of joins does
    /// not hold up the sessions already playing for whole turns.
    pub defer_keying: bool,
}

/// Which session ids an endpoint hands out: those equal to `index` modulo `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IdSpace {
    pub index: u32,
    pub count: u32,
}

impl IdSpace {
    pub(crate) const ALL: IdSpace = IdSpace { index: 0, count: 1 };

    /// The index (worker) whose endpoint handed out session id `id`.
    pub(crate) fn owner_of(self, id: u32) -> u32 {
        id % self.count.max(1)
    }
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            accept: false,
            accept_peers: false,
            groups: vec![DhGroup::Modp2048, DhGroup::Modp1024],
            policy: Policy::default(),
            session: SessionConfig::default(),
            max_sessions: 10_000,
            max_sessions_per_ip: 256,
            seed: 0,
            id_space: IdSpace::ALL,
            defer_keying: false,
        }
    }
}

enum Opening {
    HelloSent,
    KeyingSent {
        key: DhKey,
        skic: Vec<u8>,
        iikeying: Vec<u8>,
        responder_cert: Vec<u8>,
        to: SocketAddr,
    },
}

/// An IIKeying with a good cookie, waiting for its Diffie-Hellman (`defer_keying`).
struct Keying {
    from: SocketAddr,
    isid: u32,
    cert: Vec<u8>,
    skic: Vec<u8>,
    at: u64,
}

struct Initiator {
    epd: Vec<u8>,
    tag: [u8; TAG_LEN],
    targets: Vec<SocketAddr>,
    state: Opening,
    started: u64,
    next_retry: u64,
    retry_ms: u64,
}

pub(crate) struct Endpoint {
    config: EndpointConfig,
    rng: StdRng,
    cookies: CookieJar,
    cert: Vec<u8>,
    peer_id: keys::PeerId,
    /// Our client identity: static keys (one per group), their certificate and its hash.
    identity: Vec<DhKey>,
    identity_cert: Vec<u8>,
    identity_id: keys::PeerId,
    startup: PacketCrypto,
    sessions: HashMap<SessionId, Session>,
    /// Responder: (initiator address, initiator session id) → our session, to answer a
    /// repeated IIKeying with the same RIKeying.
    by_initiator: HashMap<(SocketAddr, u32), SessionId>,
    /// Responder sessions per initiator IP address.
    per_ip: HashMap<std::net::IpAddr, usize>,
    /// Open sessions by their peer's id, for introductions.
    by_peer_id: HashMap<keys::PeerId, SessionId>,
    opening: HashMap<SessionId, Initiator>,
    /// Responder: IIKeyings waiting for `complete_keyings`, oldest first.
    keying: VecDeque<Keying>,
    /// Sessions' next deadlines, earliest first: at most one live entry per session (its
    /// `armed`), plus superseded ones that are skipped when they come up. So finding what
    /// is due costs nothing per idle session, where a scan of every session and flow per
    /// loop turn was a tenth of a worker at 1,000 viewers.
    timers: BinaryHeap<Reverse<(u64, SessionId)>>,
    /// Sessions the engine acted on since events were last polled: the only ones, besides
    /// those that had input or timers (whose events are taken there), that may hold events.
    maybe_events: Vec<SessionId>,
    /// Sessions that may have something to send, in the order they got it.
    dirty: VecDeque<SessionId>,
    is_dirty: std::collections::HashSet<SessionId>,
    next_id: SessionId,
    out: VecDeque<Transmit>,
    events: VecDeque<(SessionId, Event)>,
    plain: Vec<u8>,
    scratch: Vec<u8>,
    /// Datagrams dropped before reaching a session (unknown id, bad startup packet).
    pub(crate) dropped: u64,
    /// The time of the last input, for answers made while draining events.
    last_now: u64,
}

impl Endpoint {
    pub(crate) fn new(config: EndpointConfig) -> Self {
        let mut rng = StdRng::seed_from_u64(config.seed);
        let mut secret = [0u8; 32];
        rng.fill_bytes(&mut secret);
        let mut randomness = [0u8; 64];
        rng.fill_bytes(&mut randomness);
        let cert = keys::responder_cert(&config.groups, &randomness);
        let peer_id = keys::peer_id(&cert);
        let identity: Vec<DhKey> = config
            .groups
            .iter()
            .map(|g| DhKey::generate(*g, &mut rng))
            .collect();
        let identity_cert = keys::initiator_cert(&identity);
        let identity_id = keys::peer_id(&identity_cert);
        Endpoint {
            identity,
            identity_cert,
            identity_id,
            next_id: rng.next_u32() % 0x1000,
            config,
            rng,
            cookies: CookieJar::new(secret),
            cert,
            peer_id,
            startup: PacketCrypto::startup(),
            sessions: HashMap::new(),
            by_initiator: HashMap::new(),
            by_peer_id: HashMap::new(),
            per_ip: HashMap::new(),
            opening: HashMap::new(),
            keying: VecDeque::new(),
            dirty: VecDeque::new(),
            is_dirty: std::collections::HashSet::new(),
            out: VecDeque::new(),
            events: VecDeque::new(),
            plain: Vec::with_capacity(MAX_PLAIN),
            scratch: Vec::with_capacity(packet::MAX_PACKET),
            timers: BinaryHeap::new(),
            maybe_events: Vec::new(),
            dropped: 0,
            last_now: 0,
        }
    }

    /// Our peer id as a server (the SHA-256 of our server certificate).
    pub(crate) fn peer_id(&self) -> &keys::PeerId {
        &self.peer_id
    }

    /// Our peer id as a client (the SHA-256 of our client certificate): what servers and
    /// peers know us by.
    pub(crate) fn identity_id(&self) -> &keys::PeerId {
        &self.identity_id
    }

    /// Which certificate answers IHellos: the server's, or (a peer-to-peer endpoint) our
    /// client identity's.
    fn as_peer(&self) -> bool {
        !self.config.accept && self.config.accept_peers
    }

    /// The cookie an RHello to `addr` carries at `now_s` (for the fuzz harness, which
    /// cannot guess one).
    pub(crate) fn cookie_for(
        &self,
        addr: SocketAddr,
        now_s: u64,
    ) -> [u8; super::cookie::COOKIE_LEN] {
        self.cookies.make(addr, now_s)
    }

    /// A free session id of our id space (never 0, which names startup packets). Bounded:
    /// the sessions and openings are capped far below the ids a space holds.
    fn alloc_id(&mut self) -> SessionId {
        let IdSpace { index, count } = self.config.id_space;
        let count = count.max(1);
        loop {
            let base = self.next_id.wrapping_mul(count);
            self.next_id = self.next_id.wrapping_add(1) % (u32::MAX / count);
            let id = base.wrapping_add(index % count);
            if id != 0 && !self.sessions.contains_key(&id) && !self.opening.contains_key(&id) {
                return id;
            }
        }
    }

    pub(crate) fn session(&self, id: SessionId) -> Option<&Session> {
        self.sessions.get(&id)
    }

    /// A session to act on (open flows, send, close): it is flushed at the next
    /// `poll_transmit`.
    pub(crate) fn session_mut(&mut self, id: SessionId) -> Option<&mut Session> {
        if self.sessions.contains_key(&id) {
            self.mark(id);
            self.maybe_events.push(id);
        }
        self.sessions.get_mut(&id)
    }

    #[cfg(test)]
    pub(crate) fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Initiator: opens a session to `to` for the endpoint discriminator `epd` (see
    /// `keys::epd_url` and friends). Its id names it in events until and after it opens.
    pub(crate) fn connect(&mut self, now: u64, to: SocketAddr, epd: Vec<u8>) -> SessionId {
        let id = self.alloc_id();
        let mut tag = [0u8; TAG_LEN];
        self.rng.fill_bytes(&mut tag);
        let i = Initiator {
            epd,
            tag,
            targets: vec![to],
            state: Opening::HelloSent,
            started: now,
            next_retry: now + HELLO_RETRY_MS,
            retry_ms: HELLO_RETRY_MS,
        };
        self.send_hello(now, &i);
        self.opening.insert(id, i);
        id
    }

    fn startup_packet(&mut self, now: u64, to: SocketAddr, session_id: u32, chunks: &[u8]) {
        self.plain.clear();
        let mut h = Header::new(Mode::Startup);
        h.timestamp = Some(packet::timestamp(now));
        h.encode(&mut self.plain);
        self.plain.extend_from_slice(chunks);
        let mut data = Vec::new();
        self.startup.seal(session_id, &self.plain, &mut data);
        self.out.push_back(Transmit { to, data });
    }

    fn send_hello(&mut self, now: u64, i: &Initiator) {
        let mut c = Vec::new();
        encode::ihello(&mut c, &i.epd, &i.tag);
        for &t in &i.targets {
            self.startup_packet(now, t, 0, &c);
        }
    }

    /// The peer id an IHello in this startup datagram asks for, when it is neither ours nor
    /// one of our sessions' peers: the caller may know another endpoint that has it (the
    /// engine's other workers). Costs one startup-key decryption; no state.
    pub(crate) fn foreign_peer_wanted(&mut self, datagram: &[u8]) -> Option<keys::PeerId> {
        if crypto::session_id_of(datagram).ok()? != 0 {
            return None;
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        let wanted = self.ihello_peer_id(datagram, &mut scratch);
        self.scratch = scratch;
        wanted.filter(|id| *id != self.peer_id && !self.by_peer_id.contains_key(id))
    }

    fn ihello_peer_id(&mut self, datagram: &[u8], scratch: &mut Vec<u8>) -> Option<keys::PeerId> {
        let plain = self.startup.open(datagram, scratch).ok()?;
        let (header, area) = Header::decode(plain).ok()?;
        if header.mode != Mode::Startup {
            return None;
        }
        let mut dec = ChunkDecoder::default();
        for c in packet::chunks(area) {
            let (k, v) = c.ok()?;
            if let Ok(Chunk::IHello { epd, .. }) = dec.decode(k, v) {
                let id = keys::parse_epd(epd).ok()?.peer_id?;
                return id.try_into().ok();
            }
        }
        None
    }

    /// The addresses a session's peer says it also has (Flash's `setPeerInfo`), given out
    /// with the observed one when another endpoint asks for this peer. At most 8 kept.
    pub(crate) fn set_announced(&mut self, id: SessionId, addrs: Vec<SocketAddr>) {
        if let Some(s) = self.sessions.get_mut(&id) {
            s.announced = addrs.into_iter().take(8).collect();
        }
    }

    /// One received datagram.
    pub(crate) fn handle(&mut self, now: u64, from: SocketAddr, datagram: &[u8]) {
        self.last_now = now;
        if self.handle_inner(now, from, datagram).is_err() {
            self.dropped += 1;
        }
    }

    fn handle_inner(&mut self, now: u64, from: SocketAddr, datagram: &[u8]) -> Result<()> {
        let sid = crypto::session_id_of(datagram)?;
        if let Some(s) = self.sessions.get_mut(&sid) {
            let r = s.handle(now, from, datagram, &mut self.scratch);
            let closed = s.is_closed();
            self.mark(sid);
            self.drain_session_events(sid);
            if closed {
                self.reap(now, sid);
            } else {
                self.rearm(sid);
            }
            return r;
        }
        if sid != 0 && !self.opening.contains_key(&sid) {
            return Err(RtmfpError::Malformed("unknown session id"));
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        let r = self.handle_startup(now, from, sid, datagram, &mut scratch);
        self.scratch = scratch;
        r
    }

    fn handle_startup(
        &mut self,
        now: u64,
        from: SocketAddr,
        sid: u32,
        datagram: &[u8],
        scratch: &mut Vec<u8>,
    ) -> Result<()> {
        let plain = self.startup.open(datagram, scratch)?;
        let (header, area) = Header::decode(plain)?;
        if header.mode != Mode::Startup {
            return Err(RtmfpError::Malformed("startup packet mode"));
        }
        let mut dec = ChunkDecoder::default();
        for c in packet::chunks(area) {
            let (k, v) = c?;
            match dec.decode(k, v)? {
                Chunk::IHello { epd, tag } if sid == 0 => self.on_ihello(now, from, epd, tag)?,
                Chunk::RHello { tag, cookie, cert } if sid == 0 => {
                    self.on_rhello(now, from, tag, cookie, cert)?
                }
                Chunk::Redirect { tag, destinations } if sid == 0 => {
                    self.on_redirect(now, tag, destinations)
                }
                Chunk::IIKeying {
                    initiator_session_id,
                    cookie,
                    cert,
                    skic,
                    ..
                } if sid == 0 => {
                    self.on_iikeying(now, from, initiator_session_id, cookie, cert, skic)?
                }
                Chunk::RIKeying {
                    responder_session_id,
                    skrc,
                    ..
                } if sid != 0 => self.on_rikeying(now, from, sid, responder_session_id, skrc)?,
                _ => {}
            }
        }
        Ok(())
    }

    fn on_ihello(&mut self, now: u64, from: SocketAddr, epd: &[u8], tag: &[u8]) -> Result<()> {
        let e = keys::parse_epd(epd)?;
        if self.as_peer() {
            // Only IHellos for us by our peer id.
            if e.peer_id == Some(&self.identity_id[..]) {
                self.send_rhello(now, from, tag);
            }
            return Ok(());
        }
        if !self.config.accept {
            return Ok(());
        }
        if let Some(id) = e.peer_id {
            if id != self.peer_id {
                self.introduce(now, from, id, epd, tag);
                return Ok(());
            }
        }
        self.send_rhello(now, from, tag);
        Ok(())
    }

    fn send_rhello(&mut self, now: u64, to: SocketAddr, tag: &[u8]) {
        let cookie = self.cookies.make(to, now / 1000);
        let cert = if self.as_peer() {
            &self.identity_cert
        } else {
            &self.cert
        };
        let mut c = Vec::new();
        encode::rhello(&mut c, tag, &cookie, cert);
        self.startup_packet(now, to, 0, &c);
    }

    /// An IHello for another endpoint's peer id (RFC 7016 §3.5.1.4, RFC 7425 §4.4): the
    /// initiator gets a Redirect to that client's addresses, and the client a Forwarded IHello
    /// with the initiator's address, so that the two can meet directly. An unknown peer id
    /// gets an empty Redirect, which clients read as "not here". Stateless, like RHello.
    fn introduce(&mut self, now: u64, from: SocketAddr, id: &[u8], epd: &[u8], tag: &[u8]) {
        let sid = self.by_peer_id.get(id).copied();
        let target = sid
            .and_then(|sid| self.sessions.get_mut(&sid))
            .filter(|s| !s.is_closed() && s.peer != from);
        let mut to = Vec::new();
        let mut forwarded = false;
        if let Some(s) = target {
            forwarded = true;
            to.push((s.peer, Origin::Remote));
            to.extend(
                s.announced
                    .iter()
                    .filter(|a| **a != s.peer)
                    .take(7)
                    .map(|a| (*a, Origin::Local)),
            );
            s.forward_hello(epd, from, tag);
        }
        if let (true, Some(sid)) = (forwarded, sid) {
            self.mark(sid);
            self.events
                .push_back((sid, Event::Introduced { initiator: from }));
        }
        let mut c = Vec::new();
        encode::redirect(&mut c, tag, &to);
        self.startup_packet(now, from, 0, &c);
    }

    fn on_rhello(
        &mut self,
        now: u64,
        from: SocketAddr,
        tag: &[u8],
        cookie: &[u8],
        cert: &[u8],
    ) -> Result<()> {
        let Some((&id, _)) = self
            .opening
            .iter()
            .find(|(_, i)| matches!(i.state, Opening::HelloSent) && i.tag[..] == *tag)
        else {
            return Ok(());
        };
        let offered = keys::cert_groups(cert);
        let group = self
            .config
            .groups
            .iter()
            .copied()
            .find(|g| offered.contains(&g.id()))
            .ok_or(RtmfpError::Unsupported("no common Diffie-Hellman group"))?;
        let Some(key) = self.identity.iter().find(|k| k.group() == group).cloned() else {
            return Err(RtmfpError::Unsupported("Diffie-Hellman group"));
        };
        let our_cert = self.identity_cert.clone();
        let skic = self.config.policy.initiator_component(&key);
        let mut c = Vec::new();
        encode::iikeying(&mut c, id, cookie, &our_cert, &skic, b"X");
        self.startup_packet(now, from, 0, &c);
        if let Some(i) = self.opening.get_mut(&id) {
            i.state = Opening::KeyingSent {
                key,
                skic,
                iikeying: c,
                responder_cert: cert.to_vec(),
                to: from,
            };
            i.retry_ms = HELLO_RETRY_MS;
            i.next_retry = now + HELLO_RETRY_MS;
        }
        Ok(())
    }

    fn on_redirect(&mut self, now: u64, tag: &[u8], destinations: &[u8]) {
        let Some((&id, i)) = self
            .opening
            .iter_mut()
            .find(|(_, i)| matches!(i.state, Opening::HelloSent) && i.tag[..] == *tag)
        else {
            return;
        };
        let to: Vec<SocketAddr> = chunk::redirect_addresses(destinations)
            .map_while(|a| a.ok())
            .map(|(a, _)| a)
            .filter(|a| !a.ip().is_unspecified())
            .take(8)
            .collect();
        for a in &to {
            if !i.targets.contains(a) {
                i.targets.push(*a);
            }
        }
        let mut c = Vec::new();
        encode::ihello(&mut c, &i.epd, &i.tag);
        for a in &to {
            self.startup_packet(now, *a, 0, &c);
        }
        self.events.push_back((id, Event::Redirected { to }));
    }

    fn on_iikeying(
        &mut self,
        now: u64,
        from: SocketAddr,
        isid: u32,
        cookie: &[u8],
        cert: &[u8],
        skic: &[u8],
    ) -> Result<()> {
        if !self.config.accept && !self.config.accept_peers {
            return Ok(());
        }
        match self.cookies.check(cookie, from, now / 1000) {
            CookieCheck::Ok => {}
            CookieCheck::OtherAddress => {
                // The initiator's address changed since RHello: give it a cookie for the
                // new one (RFC 7016 §3.5.1.1.2).
                let fresh = self.cookies.make(from, now / 1000);
                let mut v = Vec::new();
                super::vlu::put_field(cookie, &mut v);
                v.extend_from_slice(&fresh);
                let mut c = Vec::new();
                encode::bytes(&mut c, chunk::kind::COOKIE_CHANGE, &v);
                self.startup_packet(now, from, isid, &c);
                return Ok(());
            }
            CookieCheck::Bad => return Err(RtmfpError::Malformed("cookie")),
        }
        if let Some(&sid) = self.by_initiator.get(&(from, isid)) {
            // A repeated IIKeying (our RIKeying was lost): the same answer again.
            let again = self
                .sessions
                .get(&sid)
                .and_then(|s| s.rikeying.as_ref())
                .filter(|(_, k, _)| k[..] == *skic)
                .map(|(_, _, c)| c.clone());
            if let Some(c) = again {
                self.startup_packet(now, from, isid, &c);
            }
            return Ok(());
        }
        if !self.config.defer_keying {
            return self.complete_keying(now, from, isid, cert, skic);
        }
        self.check_keying(from, cert, skic)?;
        if self.keying.iter().any(|k| k.from == from && k.isid == isid) {
            // Sent again while it waits: it will be answered once.
            return Ok(());
        }
        if self.keying.len() >= MAX_PENDING_KEYINGS {
            return Err(RtmfpError::Unsupported("handshakes waiting"));
        }
        self.keying.push_back(Keying {
            from,
            isid,
            cert: cert.to_vec(),
            skic: skic.to_vec(),
            at: now,
        });
        Ok(())
    }

    /// What refuses an IIKeying before its Diffie-Hellman: the session limits, and a key
    /// or an option we cannot take.
    fn check_keying(&self, from: SocketAddr, cert: &[u8], skic: &[u8]) -> Result<()> {
        if self.sessions.len() >= self.config.max_sessions
            || self
                .per_ip
                .get(&from.ip())
                .is_some_and(|n| *n >= self.config.max_sessions_per_ip)
        {
            return Err(RtmfpError::Unsupported("session limit"));
        }
        let (group, _) = keys::initiator_public_key(skic, cert)?;
        if !self.config.groups.contains(&group) {
            return Err(RtmfpError::Unsupported("Diffie-Hellman group"));
        }
        self.config.policy.negotiate(skic)?;
        Ok(())
    }

    /// IIKeyings waiting (`defer_keying`).
    pub(crate) fn pending_keyings(&self) -> usize {
        self.keying.len()
    }

    /// Answers up to `max` of the IIKeyings waiting, oldest first, and returns how many
    /// wait still. One whose initiator has given up by now (20 s) is dropped unanswered.
    pub(crate) fn complete_keyings(&mut self, now: u64, max: usize) -> usize {
        self.last_now = now;
        for _ in 0..max {
            let Some(k) = self.keying.pop_front() else {
                break;
            };
            let stale = now.saturating_sub(k.at) >= CONNECT_GIVE_UP_MS;
            if stale
                || self
                    .complete_keying(now, k.from, k.isid, &k.cert, &k.skic)
                    .is_err()
            {
                self.dropped += 1;
            }
        }
        self.keying.len()
    }

    /// An IIKeying's Diffie-Hellman, its session and the RIKeying.
    fn complete_keying(
        &mut self,
        now: u64,
        from: SocketAddr,
        isid: u32,
        cert: &[u8],
        skic: &[u8],
    ) -> Result<()> {
        // For a deferred one again: sessions may have opened while it waited.
        self.check_keying(from, cert, skic)?;
        let (group, their_key) = keys::initiator_public_key(skic, cert)?;
        let (policy, protection) = self.config.policy.negotiate(skic)?;
        // A server answers with a fresh key; a peer with its identity's static key, the one
        // its certificate (which the initiator may already have used) carries.
        let key = if self.as_peer() {
            self.identity
                .iter()
                .find(|k| k.group() == group)
                .cloned()
                .ok_or(RtmfpError::Unsupported("Diffie-Hellman group"))?
        } else {
            DhKey::generate(group, &mut self.rng)
        };
        let secret = key.shared_secret(their_key)?;
        let skrc = policy.responder_component(&key);
        let derived = keys::derive(&secret, &skrc, skic);
        let id = self.alloc_id();
        let mut c = Vec::new();
        encode::rikeying(&mut c, id, &skrc, b"X");
        self.startup_packet(now, from, isid, &c);
        let peer_id = keys::peer_id(cert);
        let mut s = Session::new(
            isid,
            from,
            peer_id,
            Mode::Responder,
            PacketCrypto::session(&derived, protection),
            self.config.session,
            now,
        );
        s.rikeying = Some((isid, skic.to_vec(), c));
        self.sessions.insert(id, s);
        self.rearm(id);
        self.by_initiator.insert((from, isid), id);
        self.by_peer_id.insert(peer_id, id);
        *self.per_ip.entry(from.ip()).or_default() += 1;
        self.events.push_back((
            id,
            Event::Accepted {
                peer_id,
                addr: from,
            },
        ));
        Ok(())
    }

    fn on_rikeying(
        &mut self,
        now: u64,
        from: SocketAddr,
        sid: u32,
        rsid: u32,
        skrc: &[u8],
    ) -> Result<()> {
        let Some(i) = self.opening.get(&sid) else {
            return Ok(());
        };
        let Opening::KeyingSent {
            key,
            skic,
            responder_cert,
            to,
            ..
        } = &i.state
        else {
            return Ok(());
        };
        if *to != from {
            return Err(RtmfpError::Malformed("RIKeying from another address"));
        }
        let (_, protection) = self.config.policy.negotiate(skrc)?;
        // The key is in the responder's component, or (a static-key peer) its certificate.
        let their_key = match keys::responder_public_key(skrc, key.group()) {
            Ok(k) => k,
            Err(e) => keys::cert_public_key(responder_cert, key.group()).ok_or(e)?,
        };
        let secret = key.shared_secret(their_key)?;
        let derived = keys::derive(&secret, skic, skrc);
        let peer_id = keys::peer_id(responder_cert);
        self.opening.remove(&sid);
        let s = Session::new(
            rsid,
            from,
            peer_id,
            Mode::Initiator,
            PacketCrypto::session(&derived, protection),
            self.config.session,
            now,
        );
        self.sessions.insert(sid, s);
        self.rearm(sid);
        self.events.push_back((sid, Event::Connected { peer_id }));
        Ok(())
    }

    fn drain_session_events(&mut self, sid: SessionId) {
        let mut answer = Vec::new();
        if let Some(s) = self.sessions.get_mut(&sid) {
            while let Some(e) = s.poll_event() {
                if let Event::Introduction { epd, reply_to, tag } = &e {
                    answer.push((epd.clone(), *reply_to, tag.clone()));
                }
                self.events.push_back((sid, e));
            }
        }
        // A server introduced another endpoint to us: answer it directly (RFC 7016
        // §3.5.1.5), which also opens our NAT to it.
        for (epd, reply_to, tag) in answer {
            if self.config.accept_peers
                && keys::parse_epd(&epd).is_ok_and(|e| e.peer_id == Some(&self.identity_id[..]))
            {
                self.send_rhello(self.last_now, reply_to, &tag);
            }
        }
    }

    pub(crate) fn poll_event(&mut self) -> Option<(SessionId, Event)> {
        if self.events.is_empty() && !self.maybe_events.is_empty() {
            // A reused list: the engine acts on sessions every turn.
            let mut ids = std::mem::take(&mut self.maybe_events);
            for &id in &ids {
                self.drain_session_events(id);
                if self.sessions.get(&id).is_some_and(|s| s.is_closed()) {
                    self.reap(self.last_now, id);
                }
            }
            ids.clear();
            self.maybe_events = ids;
        }
        self.events.pop_front()
    }

    /// Writes the next datagram to send into `buf` (cleared first) and returns its
    /// destination: handshake packets first, then the sessions that had input, timers or
    /// calls since they last had nothing to send (so a flush costs nothing for idle ones).
    pub(crate) fn poll_transmit_into(&mut self, now: u64, buf: &mut Vec<u8>) -> Option<SocketAddr> {
        buf.clear();
        self.poll_transmit_burst(now, buf, &mut [0])
            .map(|(to, _)| to)
    }

    /// The next datagrams to one destination, appended to `buf` one after another, each
    /// one's length in `lens` (up to `lens.len()` of them); returns the destination and how
    /// many. A session's packets come in bursts, encrypted together, until it has nothing
    /// more to send now: the engine seals them straight into the buffer of their UDP GSO
    /// send.
    pub(crate) fn poll_transmit_burst(
        &mut self,
        now: u64,
        buf: &mut Vec<u8>,
        lens: &mut [usize],
    ) -> Option<(SocketAddr, usize)> {
        if let Some(t) = self.out.pop_front() {
            buf.extend_from_slice(&t.data);
            *lens.first_mut()? = t.data.len();
            return Some((t.to, 1));
        }
        while let Some(&id) = self.dirty.front() {
            if let Some(sent) = self
                .sessions
                .get_mut(&id)
                .and_then(|s| s.poll_transmit_burst(now, buf, lens))
            {
                return Some(sent);
            }
            // Done for now: what it sent started and moved its timers (retransmission,
            // delayed ack, expiry). Once per session and turn, not per burst; one left
            // with more to send stays first in line and is filed when it is done.
            self.rearm(id);
            self.dirty.pop_front();
            self.is_dirty.remove(&id);
        }
        None
    }

    /// `poll_transmit_into` with a datagram of its own (tests and tools).
    pub(crate) fn poll_transmit(&mut self, now: u64) -> Option<Transmit> {
        let mut data = Vec::new();
        let to = self.poll_transmit_into(now, &mut data)?;
        Some(Transmit { to, data })
    }

    fn mark(&mut self, id: SessionId) {
        if self.is_dirty.insert(id) {
            self.dirty.push_back(id);
        }
    }

    /// Puts a session's next deadline in the timer heap when it is earlier than the one
    /// already there (a later one is found when the earlier entry comes up). Every change
    /// of a session's state is followed by this: input, sending, timers, and its creation.
    fn rearm(&mut self, id: SessionId) {
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        let Some(t) = s.poll_timeout() else {
            return;
        };
        if s.armed.is_none_or(|a| t < a) {
            s.armed = Some(t);
            self.timers.push(Reverse((t, id)));
        }
    }

    /// The earliest deadline: an opening's retry, or the first timer entry (which may be
    /// earlier than its session's deadline now; then `handle_timeout` finds nothing due
    /// and files the real one).
    pub(crate) fn poll_timeout(&self) -> Option<u64> {
        let opening = self.opening.values().map(|i| i.next_retry);
        let timer = self.timers.peek().map(|Reverse((t, _))| *t);
        opening.chain(timer).min()
    }

    pub(crate) fn handle_timeout(&mut self, now: u64) {
        self.last_now = now;
        let due: Vec<SessionId> = self
            .opening
            .iter()
            .filter(|(_, i)| i.next_retry <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let Some(mut i) = self.opening.remove(&id) else {
                continue;
            };
            if now >= i.started + CONNECT_GIVE_UP_MS {
                self.events.push_back((
                    id,
                    Event::ConnectFailed {
                        reason: "no answer",
                    },
                ));
                continue;
            }
            match &i.state {
                Opening::HelloSent => self.send_hello(now, &i),
                Opening::KeyingSent { iikeying, to, .. } => {
                    let (c, to) = (iikeying.clone(), *to);
                    self.startup_packet(now, to, 0, &c);
                }
            }
            i.retry_ms = i.retry_ms * 3 / 2;
            i.next_retry = now + i.retry_ms;
            self.opening.insert(id, i);
        }
        while let Some(&Reverse((t, id))) = self.timers.peek() {
            if t > now {
                break;
            }
            self.timers.pop();
            let Some(s) = self.sessions.get_mut(&id) else {
                continue;
            };
            if s.armed != Some(t) {
                // Superseded by an earlier entry, already handled.
                continue;
            }
            s.armed = None;
            if s.poll_timeout().is_some_and(|d| d <= now) {
                s.handle_timeout(now);
                self.mark(id);
                self.drain_session_events(id);
            }
            if self.sessions.get(&id).is_some_and(|s| s.is_closed()) {
                self.reap(now, id);
            } else {
                self.rearm(id);
            }
        }
    }

    /// Removes a closed session, after its last events and packets (a close ack).
    fn reap(&mut self, now: u64, id: SessionId) {
        self.drain_session_events(id);
        if let Some(mut s) = self.sessions.remove(&id) {
            let mut data = Vec::new();
            while let Some(to) = s.poll_transmit(now, &mut data) {
                self.out.push_back(Transmit {
                    to,
                    data: std::mem::take(&mut data),
                });
            }
            if let Some((isid, _, _)) = s.rikeying {
                let origin = match self.by_initiator.remove_entry(&(s.peer, isid)) {
                    Some(((a, _), _)) => Some(a),
                    None => {
                        // The peer moved since it connected.
                        let mut origin = None;
                        self.by_initiator.retain(|(a, _), v| {
                            let keep = *v != id;
                            if !keep {
                                origin = Some(*a);
                            }
                            keep
                        });
                        origin
                    }
                };
                if let Some(a) = origin {
                    if let Some(n) = self.per_ip.get_mut(&a.ip()) {
                        *n -= 1;
                        if *n == 0 {
                            self.per_ip.remove(&a.ip());
                        }
                    }
                }
            }
            if self.by_peer_id.get(&s.peer_id) == Some(&id) {
                self.by_peer_id.remove(&s.peer_id);
            }
        }
    }
}
