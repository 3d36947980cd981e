//! RTMFP on the worker: one UDP socket per listen address (SO_REUSEPORT, the TCP listener's
//! address and port), one `proto::rtmfp::Endpoint` per socket, and each RTMFP session a
//! `Conn` like any RTMP client, so connect, auth, applications, publish, play, data and RPC
//! go through the same `Client`, `RtmpPort` and `LiveStream` code.
//!
//! How a session's datagrams reach its worker: the kernel's reuseport hash of the source
//! address sends every datagram of one peer address to one worker, so the whole handshake
//! (stateless IHello/RHello, then IIKeying) lands on one worker, which makes the session
//! there. Session ids carry that worker (`IdSpace`: id modulo the worker count), so a
//! datagram that reaches another worker's socket (the peer's address changed, or the
//! reuseport group changed) is forwarded once, over the workers' mailboxes, to the worker
//! named by its id; startup packets (session id 0) are handled where they land.
//!
//! The bridge: what a flow delivers is an RTMP message, handed to the connection's RTMP
//! `Session` with `receive` (no chunk stream, no handshake), so every command takes the
//! RTMP path. What the engine sends the client is RTMP chunks in its `SendQueue` (the lag
//! policy applies as for TCP); they are read back into messages here (`unchunk`) and sent
//! on the Flash flows, audio and video with a deadline (partial reliability), at most
//! `MAX_BUFFERED` bytes unacknowledged per session so a slow peer's backlog stays in the
//! queue, where the lag policy sees it.

use std::collections::HashMap;
use std::net::SocketAddr;

use bytes::Bytes;
use rand::RngCore;

use super::*;
use crate::engine::slab::SlabRef;
use crate::engine::udp::MAX_RUN_BYTES;
use crate::proto::rtmfp::endpoint::{Endpoint, EndpointConfig, IdSpace};
use crate::proto::rtmfp::flash::StreamFlows;
use crate::proto::rtmfp::keys::PeerId;
use crate::proto::rtmfp::net_client::carried_on_flows;
use crate::proto::rtmfp::session::{Event, SessionId, EXCEPTION_REFUSED};
use crate::proto::rtmfp::{crypto, packet};
use crate::proto::rtmp::chunk_decoder::ChunkDecoder;
use crate::proto::rtmp::Message;

/// Bytes a session may have on its flows unacknowledged before the rest waits in the
/// client's send queue (about 0.5 s of a 2 Mbit/s stream; a window of 20 Mbit/s at a 50 ms
/// round trip). On the flows each ~1,100-byte fragment costs a record of its own; in the
/// send queue a backlog is a few shared batches, and the lag policy sees it there.
const MAX_BUFFERED: usize = 128 * 1024;
/// Queue batches moved to flows per call: bounds one client's turn.
const MAX_ROUNDS: usize = 16;
/// The chunk size of the stream the engine writes for an RTMFP client (the largest RTMP
/// allows): every message is one chunk, so `unchunk` hands out slices of the frames'
/// shared bytes instead of a copy per viewer (RTMFP viewers' memory was mostly those
/// copies, up to `MAX_BUFFERED` each). The client never sees it: chunking stays inside.
const UNCHUNKED: u32 = 0x7FFF_FFFF;

/// A loop turn's time for IIKeyings' Diffie-Hellman (at least one is answered per turn):
/// the rest wait for the next turns, so the sessions already playing get their packets
/// between handshakes instead of after a whole storm of them.
const KEYING_BUDGET: Duration = Duration::from_millis(1);

/// Packets a session builds and encrypts together per poll (see `PacketCrypto::encrypt`).
const BURST: usize = crypto::LANES;

/// Datagrams to one peer being gathered for one UDP GSO send: all of `segment` bytes but
/// the last, which may be shorter (and then ends the run), as the kernel cuts them.
struct Run {
    to: SocketAddr,
    segment: usize,
    count: usize,
    /// A shorter datagram ended it.
    closed: bool,
}

impl Run {
    fn new(to: SocketAddr, len: usize) -> Run {
        Run {
            to,
            segment: len,
            count: 1,
            closed: false,
        }
    }

    /// Whether a datagram of `len` bytes to `to` may join, making the run `total` bytes.
    fn takes(&self, to: SocketAddr, len: usize, total: usize, max_segments: usize) -> bool {
        !self.closed
            && to == self.to
            && len <= self.segment
            && self.count < max_segments
            && total <= MAX_RUN_BYTES
    }

    fn add(&mut self, len: usize) {
        self.count += 1;
        self.closed = len < self.segment;
    }
}

/// What an RTMFP client's `Conn` carries besides the RTMP session.
pub(crate) struct RtmfpLink {
    endpoint: u16,
    session: SessionId,
    pub(crate) peer_id: PeerId,
    flows: StreamFlows,
    /// Reads the chunk stream the engine wrote for this client back into messages.
    unchunk: ChunkDecoder,
}

impl RtmfpLink {
    pub(crate) fn peer_id_hex(&self) -> String {
        self.peer_id.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// One listen address's RTMFP socket and endpoint.
struct RtmfpSocket {
    socket: SlabRef,
    endpoint: Endpoint,
    sessions: HashMap<SessionId, ConnRef>,
    /// Input or timeouts since its events were last read.
    active: bool,
}

/// The worker's RTMFP sockets (indexed like the listeners; `None` where binding failed or
/// RTMFP is off).
#[derive(Default)]
pub(super) struct Rtmfp {
    sockets: Vec<Option<RtmfpSocket>>,
    /// The endpoints' next deadline, on the worker's millisecond clock.
    deadline: Option<u64>,
    /// Something happened since the deadline was computed.
    changed: bool,
    /// IIKeyings wait for the next turn (the loop must not sleep).
    keying: bool,
    /// Clients whose sessions had input: acknowledgements may let queued bytes go.
    touched: Vec<ConnRef>,
    buf: Vec<u8>,
    batch: Vec<Bytes>,
    messages: Vec<Message>,
}

impl Rtmfp {
    /// One datagram received on listen address `e`'s socket (or `forwarded` by another
    /// worker): handled here, or forwarded once to the worker that holds its session — the
    /// one its session id names, or for an IHello naming a connected peer id, the one that
    /// holds that peer's session (so that its endpoint introduces them).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_datagram(
        &mut self,
        worker: usize,
        now_ms: u64,
        e: u16,
        from: SocketAddr,
        payload: &[u8],
        forwarded: bool,
        shared: &Shared,
        wake: &mut [bool],
    ) {
        let Some(Some(s)) = self.sockets.get_mut(usize::from(e)) else {
            return;
        };
        let sid = crypto::session_id_of(payload).unwrap_or(0);
        let space = IdSpace {
            index: worker as u32,
            count: shared.mailboxes.len() as u32,
        };
        // Startup packets (session id 0) are handled where they land.
        let mut owner = if sid == 0 {
            worker
        } else {
            space.owner_of(sid) as usize
        };
        if sid == 0 && !forwarded && shared.mailboxes.len() > 1 {
            if let Some(id) = s.endpoint.foreign_peer_wanted(payload) {
                let peers = shared.rtmfp_peers.lock();
                if let Some(w) = peers.ok().and_then(|p| p.get(&id).copied()) {
                    owner = w;
                }
            }
        }
        if owner != worker && !forwarded {
            // Only what could be a packet crosses (a session id, then whole AES blocks):
            // most garbage costs no other worker anything.
            if payload.len() < 4 + 16 || !(payload.len() - 4).is_multiple_of(16) {
                return;
            }
            let msg = WorkerMsg::RtmfpDatagram {
                endpoint: e,
                from,
                payload: Bytes::copy_from_slice(payload),
            };
            post_to(&shared.mailboxes, wake, owner, msg);
            return;
        }
        s.endpoint.handle(now_ms, from, payload);
        s.active = true;
        self.changed = true;
        if let Some(r) = s.sessions.get(&sid) {
            self.touched.push(*r);
        }
    }

    /// How long the loop may sleep for RTMFP's timers.
    pub(super) fn wait(&self, now_ms: u64) -> Option<Duration> {
        if self.keying {
            return Some(Duration::ZERO);
        }
        self.deadline
            .map(|d| Duration::from_millis(d.saturating_sub(now_ms)))
    }
}

impl Worker {
    /// Binds the RTMFP socket of every listen address (at start, once the ring runs). A
    /// failure costs that address its RTMFP only, and is said once.
    pub(super) fn open_rtmfp(&mut self) {
        if !self.config.server.rtmfp {
            return;
        }
        for i in 0..self.listeners.len() {
            if let Some(addr) = self.listener_addr(i) {
                self.open_rtmfp_on(i, addr);
            }
        }
    }

    /// Where listener `i` listens (its port, when configured as 0), if it still does.
    fn listener_addr(&self, i: usize) -> Option<SocketAddr> {
        let l = self.listeners.get(i)?.as_ref()?;
        Some(
            l.socket
                .local_addr()
                .ok()
                .and_then(|a| a.as_socket())
                .unwrap_or(l.addr),
        )
    }

    /// A reload: RTMFP follows the listeners and `server.rtmfp`. A listener that goes (or
    /// RTMFP turned off) closes its socket and ends its sessions; a new one gets RTMFP.
    pub(super) fn reload_rtmfp(&mut self) {
        for i in 0..self.listeners.len().max(self.rtmfp.sockets.len()) {
            let wanted = self.config.server.rtmfp && self.listener_addr(i).is_some();
            let serving = matches!(self.rtmfp.sockets.get(i), Some(Some(_)));
            if serving && !wanted {
                let sessions: Vec<ConnRef> = self
                    .rtmfp
                    .sockets
                    .get(i)
                    .and_then(|s| s.as_ref())
                    .map(|s| s.sessions.values().copied().collect())
                    .unwrap_or_default();
                for r in sessions {
                    self.close(r, "RTMFP no longer served on this address", false);
                }
                if let Some(s) = self.rtmfp.sockets.get_mut(i).and_then(Option::take) {
                    self.udp.close(&mut self.io, s.socket);
                }
            } else if wanted && !serving {
                if let Some(addr) = self.listener_addr(i) {
                    self.open_rtmfp_on(i, addr);
                }
            }
        }
    }

    /// Binds the RTMFP socket of listen address `i` (the endpoint's index); its local
    /// address, or None (said once) if it cannot be bound.
    fn open_rtmfp_on(&mut self, i: usize, addr: SocketAddr) -> Option<SocketAddr> {
        let workers = self.shared.mailboxes.len() as u32;
        if self.rtmfp.sockets.len() <= i {
            self.rtmfp.sockets.resize_with(i + 1, || None);
        }
        let socket = match self.open_udp(addr, Owner::Rtmfp(i as u16)) {
            Ok(socket) => socket,
            Err(e) => {
                if self.id == 0 {
                    warn!(%addr, error = %e, "RTMFP (UDP) not served on this address");
                }
                return None;
            }
        };
        let endpoint = Endpoint::new(EndpointConfig {
            accept: true,
            max_sessions: self.config.server.max_connections,
            seed: self.rng.next_u64(),
            id_space: IdSpace {
                index: self.id as u32,
                count: workers,
            },
            defer_keying: true,
            ..EndpointConfig::default()
        });
        if self.id == 0 {
            let peer_id: String = endpoint
                .peer_id()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            info!(%addr, %peer_id, "serving RTMFP");
        }
        if let Some(slot) = self.rtmfp.sockets.get_mut(i) {
            *slot = Some(RtmfpSocket {
                socket,
                endpoint,
                sessions: HashMap::new(),
                active: false,
            });
        }
        self.udp.local_addr(socket)
    }

    /// A datagram another worker forwarded here.
    pub(super) fn rtmfp_forwarded(&mut self, e: u16, from: SocketAddr, payload: &[u8]) {
        let now = self.clock_ms(Instant::now());
        let (id, shared) = (self.id, &self.shared);
        self.rtmfp
            .on_datagram(id, now, e, from, payload, true, shared, &mut self.wake);
    }

    /// Once per loop turn, after the completions: the endpoints' due timers, then every
    /// event the turn's input made.
    pub(super) fn rtmfp_turn(&mut self) {
        let now = self.clock_ms(Instant::now());
        if self.rtmfp.deadline.is_some_and(|d| d <= now) {
            for s in self.rtmfp.sockets.iter_mut().flatten() {
                s.endpoint.handle_timeout(now);
                s.active = true;
            }
            self.rtmfp.changed = true;
        }
        self.rtmfp_keyings(now);
        for e in 0..self.rtmfp.sockets.len() {
            let active = match self.rtmfp.sockets.get_mut(e) {
                Some(Some(s)) => std::mem::replace(&mut s.active, false),
                _ => false,
            };
            if !active {
                continue;
            }
            // Bounded: the endpoint holds the events this turn's input made.
            while let Some((sid, ev)) = self
                .rtmfp
                .sockets
                .get_mut(e)
                .and_then(|s| s.as_mut())
                .and_then(|s| s.endpoint.poll_event())
            {
                self.rtmfp_event(e as u16, sid, ev, now);
            }
        }
        // Reused, not reallocated each turn.
        let mut touched = std::mem::take(&mut self.rtmfp.touched);
        for r in touched.drain(..) {
            let waiting = self
                .conns
                .get(r)
                .is_some_and(|c| !c.queue.is_empty() || c.closing == Closing::Flushing);
            if waiting {
                self.rtmfp_send(r);
            }
        }
        self.rtmfp.touched = touched;
    }

    fn rtmfp_conn(&self, e: u16, sid: SessionId) -> Option<ConnRef> {
        self.rtmfp
            .sockets
            .get(usize::from(e))?
            .as_ref()?
            .sessions
            .get(&sid)
            .copied()
    }

    fn rtmfp_event(&mut self, e: u16, sid: SessionId, ev: Event, now: u64) {
        if let Event::Accepted { peer_id, addr } = ev {
            return self.rtmfp_accept(e, sid, peer_id, addr);
        }
        let Some(r) = self.rtmfp_conn(e, sid) else {
            return;
        };
        match ev {
            Event::FlowOpened { flow, metadata, .. } => {
                let Some(c) = self.conns.get_mut(r) else {
                    return;
                };
                let Some(link) = c.rtmfp.as_deref_mut() else {
                    return;
                };
                if let Err(err) = link.flows.on_flow_opened(flow, &metadata) {
                    debug!(peer = %c.peer, flow, error = %err, "RTMFP flow refused");
                    if let Some(s) = self.rtmfp.session_mut(e, sid) {
                        s.reject_flow(flow, EXCEPTION_REFUSED);
                    }
                }
            }
            Event::Message { flow, data } => {
                let Some(c) = self.conns.get_mut(r) else {
                    return;
                };
                let Some(link) = c.rtmfp.as_deref_mut() else {
                    return;
                };
                WorkerStats::add(&self.shared.stats[self.id].bytes_in, data.len() as u64);
                c.session.received_elsewhere(data.len());
                match link.flows.on_message(flow, &data) {
                    Ok(m) => {
                        if let Some(addrs) = peer_info(&m) {
                            // Flash's setPeerInfo: the addresses the client also has, given
                            // out when another client asks for its peer id. Transport
                            // business: the application does not see it.
                            if let Some(Some(s)) = self.rtmfp.sockets.get_mut(usize::from(e)) {
                                s.endpoint.set_announced(sid, addrs);
                            }
                            return;
                        }
                        if let Some(stream_id) = closed_stream(&m) {
                            // Our flow of that NetStream ends with it (RFC 7425 §5.3.2).
                            if let Some(s) = self.rtmfp.session_mut(e, sid) {
                                link.flows.close_stream(s, stream_id);
                            }
                        }
                        self.rtmfp_message(r, m)
                    }
                    Err(err) => {
                        debug!(peer = %c.peer, flow, error = %err, "RTMFP message dropped")
                    }
                }
            }
            Event::AddressChanged { addr } => {
                if let Some(c) = self.conns.get_mut(r) {
                    info!(from = %c.peer, to = %addr, "RTMFP client moved");
                    c.peer = addr;
                }
            }
            Event::Introduced { initiator } => {
                if let Some(c) = self.conns.get(r) {
                    debug!(peer = %c.peer, %initiator, "RTMFP introduction: an IHello for this client's peer id forwarded to it");
                }
            }
            Event::Closed { reason } => {
                if let Some(Some(s)) = self.rtmfp.sockets.get_mut(usize::from(e)) {
                    s.sessions.remove(&sid);
                }
                let _ = now;
                self.close(r, &format!("RTMFP session closed: {reason}"), false);
            }
            _ => {}
        }
    }

    /// A new RTMFP session: a client like an accepted TCP connection, with no socket.
    fn rtmfp_accept(&mut self, e: u16, sid: SessionId, peer_id: PeerId, addr: SocketAddr) {
        let r = self.new_conn(-1, addr);
        let config = crate::proto::rtmp::session::SessionConfig {
            chunk_size: UNCHUNKED,
            ..self.session_config()
        };
        let epoch = self.started.elapsed().as_millis() as u32;
        let session = Session::server(config, &mut self.rng, epoch);
        if let Some(c) = self.conns.get_mut(r) {
            c.session = session;
            c.rtmfp = Some(Box::new(RtmfpLink {
                endpoint: e,
                session: sid,
                peer_id,
                flows: StreamFlows::default(),
                unchunk: ChunkDecoder::new(DecoderLimits {
                    max_message_size: self.config.server.max_message_size,
                    max_chunk_streams: self.config.server.max_chunk_streams,
                }),
            }));
            debug!(worker = self.id, peer = %addr, peer_id = %c.rtmfp.as_ref().map(|l| l.peer_id_hex()).unwrap_or_default(), "RTMFP session");
        }
        if let Some(Some(s)) = self.rtmfp.sockets.get_mut(usize::from(e)) {
            s.sessions.insert(sid, r);
        }
        if let Ok(mut peers) = self.shared.rtmfp_peers.lock() {
            peers.insert(peer_id, self.id);
        }
        WorkerStats::add(&self.stats().rtmfp_sessions, 1);
    }

    /// One RTMP message a flow delivered: as if the chunk stream had carried it.
    fn rtmfp_message(&mut self, r: ConnRef, m: Message) {
        let mut events = std::mem::take(&mut self.events);
        let mut failure = None;
        if let Some(c) = self.conns.get_mut(r) {
            if c.closing == Closing::Open {
                if let Err(e) = c.session.receive(m, &mut c.out, &mut events) {
                    failure = Some(e.to_string());
                }
            }
        }
        for ev in events.drain(..) {
            self.on_event_or_defer(r, ev);
        }
        self.events = events;
        self.flush_out(r);
        if let Some(reason) = failure {
            self.close(r, &reason, true);
        }
    }

    /// Moves what `r` has queued onto its session's flows (`start_send` for RTMFP clients),
    /// up to `MAX_BUFFERED` unacknowledged; a flushing client whose flows are drained is
    /// shut down.
    pub(super) fn rtmfp_send(&mut self, r: ConnRef) {
        let now = self.clock_ms(Instant::now());
        let deadline = now + u64::from(self.config.live.drop_lag_ms.max(1000));
        let Some(c) = self.conns.get_mut(r) else {
            return;
        };
        if c.closing == Closing::ShutDown {
            return;
        }
        let Some(link) = c.rtmfp.as_deref_mut() else {
            return;
        };
        let Some(session) = self
            .rtmfp
            .sockets
            .get_mut(usize::from(link.endpoint))
            .and_then(|s| s.as_mut())
            .and_then(|s| s.endpoint.session_mut(link.session))
        else {
            // The session ended (the peer closed it, or it timed out): nothing more can go.
            if c.closing == Closing::Flushing {
                self.shutdown(r);
            }
            return;
        };
        let (batch, messages) = (&mut self.rtmfp.batch, &mut self.rtmfp.messages);
        let mut failure = None;
        let mut buffered = session.queued_bytes();
        let mut rounds = 0;
        while !c.queue.is_empty() && buffered < MAX_BUFFERED && rounds < MAX_ROUNDS {
            rounds += 1;
            let n = c.queue.next_batch_bytes(batch, MAX_IOV, MAX_SEND_BYTES);
            if n == 0 {
                break;
            }
            for b in batch.iter() {
                if let Err(e) = link.unchunk.feed_shared(b, messages) {
                    failure = Some(format!("our own chunk stream unreadable: {e}"));
                    break;
                }
            }
            c.queue.complete(n);
            c.bytes_out += n as u64;
            for m in messages.drain(..) {
                if !carried_on_flows(m.type_id) {
                    continue;
                }
                let media = matches!(m.type_id, msg_type::AUDIO | msg_type::VIDEO);
                buffered += m.payload.len();
                link.flows.send(session, &m, media.then_some(deadline));
            }
            if failure.is_some() {
                break;
            }
        }
        c.send_due = false;
        let flushed =
            c.closing == Closing::Flushing && c.queue.is_empty() && session.queued_bytes() == 0;
        self.rtmfp.changed = true;
        if let Some(reason) = failure {
            self.close(r, &reason, true);
        } else if flushed {
            self.shutdown(r);
        }
    }

    /// The client is shut down: its session closes (the peer is told), and it leaves the
    /// session table.
    pub(super) fn rtmfp_end(&mut self, r: ConnRef) {
        let now = self.clock_ms(Instant::now());
        let Some(link) = self.conns.get(r).and_then(|c| c.rtmfp.as_deref()) else {
            return;
        };
        let (e, sid, peer_id) = (link.endpoint, link.session, link.peer_id);
        if let Some(s) = self.rtmfp.session_mut(e, sid) {
            s.close(now);
        }
        if let Ok(mut peers) = self.shared.rtmfp_peers.lock() {
            if peers.get(&peer_id) == Some(&self.id) {
                peers.remove(&peer_id);
            }
        }
        if let Some(Some(s)) = self.rtmfp.sockets.get_mut(usize::from(e)) {
            s.sessions.remove(&sid);
        }
        self.rtmfp.changed = true;
    }

    /// Answers the IIKeyings waiting, for at most `KEYING_BUDGET` (at least one per
    /// endpoint that has some).
    fn rtmfp_keyings(&mut self, now: u64) {
        let start = Instant::now();
        let mut left = false;
        for s in self.rtmfp.sockets.iter_mut().flatten() {
            if s.endpoint.pending_keyings() == 0 {
                continue;
            }
            s.active = true;
            self.rtmfp.changed = true;
            while s.endpoint.complete_keyings(now, 1) > 0 {
                if start.elapsed() >= KEYING_BUDGET {
                    left = true;
                    break;
                }
            }
        }
        self.rtmfp.keying = left;
    }

    /// Sends what the endpoints have (after the turn's flush, so this turn's messages go in
    /// this turn's submission), and works out the next deadline if anything changed.
    ///
    /// Datagrams are sealed straight into the buffer they are sent from, a session's
    /// packets in bursts encrypted together, and a run of them to one peer goes out as one
    /// UDP GSO send: a session hands out its datagrams one after another, full ones all of
    /// one size (see `Run`).
    pub(super) fn rtmfp_transmit(&mut self) {
        if !self.rtmfp.changed {
            return;
        }
        self.rtmfp.changed = false;
        let now = self.clock_ms(Instant::now());
        let mut buf = std::mem::take(&mut self.rtmfp.buf);
        buf.clear();
        let mut deadline: Option<u64> = None;
        let mut full = false;
        let max_segments = self.udp.max_segments();
        let stats = &self.shared.stats[self.id];
        let mut lens = [0usize; BURST];
        for s in self.rtmfp.sockets.iter_mut().flatten() {
            // Bounded by the udp layer's send slots. A datagram is made only when a slot is
            // sure for it: once made, its fragments count as in flight, so a refused one
            // would be lost without a trace. Each datagram of a burst may end a run (a
            // slot) and the last run holds one more; the pending run's bytes and a whole
            // burst's count against the bytes in flight. What waits stays in the sessions
            // (still due), and the next turn, when completions have freed slots, sends it.
            let mut run: Option<Run> = None;
            while !full {
                if !self
                    .udp
                    .has_room(BURST + 1, buf.len() + BURST * packet::MAX_PACKET)
                {
                    full = true;
                    break;
                }
                let mut at = buf.len();
                let Some((to, n)) = s.endpoint.poll_transmit_burst(now, &mut buf, &mut lens) else {
                    break;
                };
                for &len in &lens[..n] {
                    WorkerStats::add(&stats.bytes_out, len as u64);
                    if let Some(r) = run
                        .as_mut()
                        .filter(|r| r.takes(to, len, at + len, max_segments))
                    {
                        r.add(len);
                    } else {
                        if let Some(r) = run.take() {
                            WorkerStats::add(&stats.sends, 1);
                            // Cannot fail: the socket is open and a slot was free. What
                            // follows `at` moves to the front of the next buffer.
                            let _ = self.udp.send_run(
                                &mut self.io,
                                s.socket,
                                r.to,
                                &mut buf,
                                at,
                                r.segment,
                            );
                            at = 0;
                        }
                        run = Some(Run::new(to, len));
                    }
                    at += len;
                }
            }
            if let Some(r) = run.take() {
                WorkerStats::add(&stats.sends, 1);
                let len = buf.len();
                let _ = self
                    .udp
                    .send_run(&mut self.io, s.socket, r.to, &mut buf, len, r.segment);
            }
            if let Some(t) = s.endpoint.poll_timeout() {
                deadline = Some(deadline.map_or(t, |d| d.min(t)));
            }
        }
        self.rtmfp.buf = buf;
        self.rtmfp.deadline = deadline;
        if full {
            // Sessions still have datagrams due: the next turn goes on with them.
            self.rtmfp.changed = true;
        }
    }

    /// How long the loop may sleep for RTMFP.
    pub(super) fn rtmfp_wait(&self) -> Option<Duration> {
        self.rtmfp.wait(self.clock_ms(Instant::now()))
    }

    /// The RTMFP facts of a client, for `stratactl clients`: peer id and round trip.
    pub(super) fn rtmfp_info(&self, c: &Conn) -> Option<(String, Option<u64>)> {
        let link = c.rtmfp.as_deref()?;
        let rtt = self
            .rtmfp
            .sockets
            .get(usize::from(link.endpoint))?
            .as_ref()?
            .endpoint
            .session(link.session)
            .and_then(|s| s.rtt_ms());
        Some((link.peer_id_hex(), rtt))
    }
}

impl Rtmfp {
    fn session_mut(
        &mut self,
        e: u16,
        sid: SessionId,
    ) -> Option<&mut crate::proto::rtmfp::session::Session> {
        self.sockets
            .get_mut(usize::from(e))?
            .as_mut()?
            .endpoint
            .session_mut(sid)
    }
}

/// The addresses of a `setPeerInfo` command ("ip:port" or "[ipv6]:port" strings), if `m`
/// is one; unreadable ones are skipped.
fn peer_info(m: &Message) -> Option<Vec<SocketAddr>> {
    if m.stream_id != 0 || !matches!(m.type_id, msg_type::COMMAND_AMF0 | msg_type::COMMAND_AMF3) {
        return None;
    }
    let c = crate::proto::rtmfp::net_client::command_of(m)?;
    if c.name != "setPeerInfo" {
        return None;
    }
    Some(
        c.args
            .iter()
            .filter_map(|a| a.as_str()?.parse::<SocketAddr>().ok())
            .take(8)
            .collect(),
    )
}

/// The NetStream a `deleteStream` or `closeStream` ends, if `m` is one.
fn closed_stream(m: &Message) -> Option<u32> {
    if !matches!(m.type_id, msg_type::COMMAND_AMF0 | msg_type::COMMAND_AMF3) {
        return None;
    }
    let c = crate::proto::rtmfp::net_client::command_of(m)?;
    match c.name.as_str() {
        "deleteStream" => match c.arg(0) {
            Some(Amf0Value::Number(n)) if *n >= 1.0 && *n <= f64::from(u32::MAX) => Some(*n as u32),
            _ => None,
        },
        "closeStream" if m.stream_id != 0 => Some(m.stream_id),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;

    use super::*;
    use crate::engine::worker::testing::{shared, worker_of};
    use crate::proto::command::encode_values;
    use crate::proto::rtmfp::crypto::PacketCrypto;
    use crate::proto::rtmfp::net_client::{command_of, ClientState, RtmfpNetClient};
    use crate::proto::rtmp::csid;

    /// A client over a real UDP socket beside the worker, both driven from this thread.
    struct Peer {
        socket: UdpSocket,
        client: RtmfpNetClient,
        started: Instant,
        buf: Vec<u8>,
        statuses: Vec<String>,
    }

    impl Peer {
        fn connect(server: SocketAddr) -> Peer {
            let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
            socket.set_nonblocking(true).expect("nonblocking");
            let client = RtmfpNetClient::connect(0, server, "rtmfp://127.0.0.1/live", 7);
            Peer {
                socket,
                client,
                started: Instant::now(),
                buf: vec![0; 2048],
                statuses: Vec::new(),
            }
        }

        fn pump(&mut self) {
            let now = self.started.elapsed().as_millis() as u64;
            let mut out = Vec::new();
            while let Some(to) = self.client.poll_transmit(now, &mut out) {
                self.socket.send_to(&out, to).expect("send");
            }
            for _ in 0..256 {
                let Ok((n, from)) = self.socket.recv_from(&mut self.buf) else {
                    break;
                };
                self.client.handle(now, from, &self.buf[..n]);
            }
            if self.client.poll_timeout().is_some_and(|t| t <= now) {
                self.client.handle_timeout(now);
            }
            while let Some(m) = self.client.recv() {
                if let Some(code) =
                    command_of(&m).and_then(|c| c.info_str("code").map(String::from))
                {
                    self.statuses.push(code);
                }
            }
        }

        fn command(&mut self, values: &[Amf0Value]) {
            let m = Message {
                csid: csid::COMMAND,
                timestamp: 0,
                type_id: msg_type::COMMAND_AMF0,
                stream_id: 0,
                payload: encode_values(false, values).into(),
            };
            assert!(self.client.send(&m, None), "connected");
        }
    }

    /// Loop turns as `Worker::run` takes them, the peer pumped between, until `done`.
    fn run_until(w: &mut Worker, peer: &mut Peer, mut done: impl FnMut(&Worker, &Peer) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut completions = Vec::new();
        while !done(w, peer) {
            assert!(Instant::now() < deadline, "not there in time");
            w.io.submit_and_wait(Some(Duration::from_millis(2)))
                .expect("wait");
            w.handle_completions(&mut completions);
            w.run_timers();
            w.rtmfp_turn();
            w.flush_dirty();
            w.rtmfp_transmit();
            peer.pump();
        }
    }

    fn rtmfp_clients(w: &Worker) -> usize {
        w.conns
            .refs()
            .into_iter()
            .filter(|r| w.conns.get(*r).is_some_and(|c| c.rtmfp.is_some()))
            .count()
    }

    #[test]
    fn an_rtmfp_session_is_a_client_that_connects_and_leaves_like_any_other() {
        let (shared, mut rx, _control) = shared(1);
        let mut w = worker_of(shared, rx.remove(0));
        let addr = w
            .open_rtmfp_on(0, "127.0.0.1:0".parse().expect("addr"))
            .expect("bound");

        // Garbage first: no state, no panic, the socket keeps serving.
        let junk = UdpSocket::bind("127.0.0.1:0").expect("bind");
        for i in 0..200u32 {
            let mut d = vec![0u8; (i % 90) as usize + 1];
            for (j, b) in d.iter_mut().enumerate() {
                *b = (i.wrapping_mul(31) as usize ^ j.wrapping_mul(7)) as u8;
            }
            junk.send_to(&d, addr).expect("send");
        }
        let mut peer = Peer::connect(addr);
        run_until(&mut w, &mut peer, |_, p| {
            *p.client.state() == ClientState::Connected
        });
        assert_eq!(
            rtmfp_clients(&w),
            1,
            "one session, one client; garbage made none"
        );
        assert_eq!(WorkerStats::get(&w.stats().rtmfp_sessions), 1);

        peer.command(&[
            Amf0Value::string("connect"),
            Amf0Value::Number(1.0),
            Amf0Value::object([
                ("app", Amf0Value::string("live")),
                ("tcUrl", Amf0Value::string("rtmfp://127.0.0.1/live")),
            ]),
        ]);
        run_until(&mut w, &mut peer, |_, p| !p.statuses.is_empty());
        assert_eq!(peer.statuses, ["NetConnection.Connect.Success"]);
        let connected = w.conns.refs().into_iter().any(|r| {
            w.conns
                .get(r)
                .is_some_and(|c| c.client.nc.is_connected() && c.client.nc.app == "live")
        });
        assert!(connected, "the NetConnection took the connect");
        let counted = w.conns.refs().into_iter().any(|r| {
            w.conns
                .get(r)
                .is_some_and(|c| c.rtmfp.is_some() && c.session.bytes_in() > 0)
        });
        assert!(
            counted,
            "the connect's bytes count as the client's bytes in"
        );

        let now = peer.started.elapsed().as_millis() as u64;
        peer.client.close(now);
        run_until(&mut w, &mut peer, |w, _| rtmfp_clients(w) == 0);
        assert_eq!(WorkerStats::get(&w.stats().rtmfp_sessions), 0);
    }

    #[test]
    fn a_datagram_for_another_workers_session_is_forwarded_to_it_once() {
        let (shared, rx, _control) = shared(2);
        let mut wake = vec![false; 2];
        let mut rtmfp = Rtmfp::default();
        rtmfp.sockets.push(Some(RtmfpSocket {
            socket: SlabRef {
                slot: 0,
                generation: 0,
            },
            endpoint: Endpoint::new(EndpointConfig {
                accept: true,
                ..EndpointConfig::default()
            }),
            sessions: HashMap::new(),
            active: false,
        }));
        let from: SocketAddr = "127.0.0.1:5000".parse().expect("addr");
        let mut datagram = Vec::new();
        // Session id 7: odd, so worker 1 of 2 made it.
        PacketCrypto::startup().seal(7, &[0u8; 16], &mut datagram);
        rtmfp.on_datagram(0, 0, 0, from, &datagram, false, &shared, &mut wake);
        assert_eq!(wake, [false, true]);
        match rx[1].try_recv() {
            Some(WorkerMsg::RtmfpDatagram {
                endpoint: 0,
                from: f,
                payload,
            }) => assert_eq!((f, &payload[..]), (from, &datagram[..])),
            other => panic!("{other:?}"),
        }
        assert!(rx[0].try_recv().is_none());
        assert!(!rtmfp.changed, "worker 0 did not handle it");

        // Not a packet's length (a session id, then whole AES blocks): not forwarded.
        wake = vec![false; 2];
        rtmfp.on_datagram(0, 0, 0, from, &datagram[..21], false, &shared, &mut wake);
        assert_eq!(wake, [false, false]);
        assert!(rx[1].try_recv().is_none());

        // Session 0 (a startup packet) and our own ids are handled here.
        datagram.clear();
        PacketCrypto::startup().seal(8, &[0u8; 16], &mut datagram);
        wake = vec![false; 2];
        rtmfp.on_datagram(0, 0, 0, from, &datagram, false, &shared, &mut wake);
        assert_eq!(wake, [false, false]);
        assert!(rtmfp.changed);
        assert!(rx[1].try_recv().is_none());
    }

    /// An endpoint of our own beside the workers (a Flash client that accepts peers).
    struct Node {
        socket: UdpSocket,
        endpoint: Endpoint,
        events: Vec<(SessionId, Event)>,
    }

    impl Node {
        fn new(seed: u64) -> Node {
            let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
            socket.set_nonblocking(true).expect("nonblocking");
            let endpoint = Endpoint::new(EndpointConfig {
                accept_peers: true,
                seed,
                ..EndpointConfig::default()
            });
            Node {
                socket,
                endpoint,
                events: Vec::new(),
            }
        }

        fn addr(&self) -> SocketAddr {
            self.socket.local_addr().expect("addr")
        }

        fn pump(&mut self, now: u64) {
            let mut out = Vec::new();
            while let Some(to) = self.endpoint.poll_transmit_into(now, &mut out) {
                // An announced address may be unreachable from loopback: lost, as on a net.
                let _ = self.socket.send_to(&out, to);
            }
            let mut buf = [0u8; 2048];
            for _ in 0..256 {
                let Ok((n, from)) = self.socket.recv_from(&mut buf) else {
                    break;
                };
                self.endpoint.handle(now, from, &buf[..n]);
            }
            if self.endpoint.poll_timeout().is_some_and(|t| t <= now) {
                self.endpoint.handle_timeout(now);
            }
            while let Some(e) = self.endpoint.poll_event() {
                self.events.push(e);
            }
        }
    }

    /// Two workers and our endpoints, turn by turn, until `done`.
    fn run_all(
        workers: &mut [Worker],
        nodes: &mut [&mut Node],
        started: Instant,
        mut done: impl FnMut(&[&mut Node]) -> bool,
    ) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut completions = Vec::new();
        while !done(nodes) {
            assert!(Instant::now() < deadline, "not there in time");
            for w in workers.iter_mut() {
                w.io.submit_and_wait(Some(Duration::from_millis(1)))
                    .expect("wait");
                w.handle_completions(&mut completions);
                w.run_timers();
                w.rtmfp_turn();
                w.flush_dirty();
                w.rtmfp_transmit();
                w.wake_peers();
            }
            let now = started.elapsed().as_millis() as u64;
            for n in nodes.iter_mut() {
                n.pump(now);
            }
        }
    }

    #[test]
    fn a_client_is_introduced_by_its_peer_id_across_workers_and_an_unknown_one_is_not() {
        let (shared, rx, _control) = shared(2);
        let mut workers: Vec<Worker> = rx
            .into_iter()
            .enumerate()
            .map(|(id, rx)| {
                let mut config = crate::config::Config::default();
                config.server.listen = Vec::new();
                Worker::new(id, Arc::clone(&shared), Arc::new(config), rx).expect("io_uring")
            })
            .collect();
        let mut addrs = Vec::new();
        // Distinct addresses: two reuseport sockets bound to port 0 may share one port.
        for (w, ip) in workers.iter_mut().zip(["127.0.0.1", "127.0.0.2"]) {
            w.arm_mailbox();
            let a = w.open_rtmfp_on(0, SocketAddr::new(ip.parse().expect("ip"), 0));
            addrs.push(a.expect("bound"));
        }
        let started = Instant::now();
        let (mut a, mut b, mut c) = (Node::new(1), Node::new(2), Node::new(3));

        // A connects to worker 1, then announces a second address (setPeerInfo).
        a.endpoint.connect(
            0,
            addrs[1],
            crate::proto::rtmfp::keys::epd_url("rtmfp://x/live"),
        );
        run_all(&mut workers, &mut [&mut a], started, |n| {
            n[0].events
                .iter()
                .any(|e| matches!(e.1, Event::Connected { .. }))
        });
        let a_id = *a.endpoint.identity_id();
        assert_eq!(
            shared.rtmfp_peers.lock().expect("lock").get(&a_id),
            Some(&1)
        );
        let to_server = a.events[0].0;
        let announced: SocketAddr = "10.1.2.3:4567".parse().expect("addr");
        let set_peer_info = Message {
            csid: csid::COMMAND,
            timestamp: 0,
            type_id: msg_type::COMMAND_AMF0,
            stream_id: 0,
            payload: encode_values(
                false,
                &[
                    Amf0Value::string("setPeerInfo"),
                    Amf0Value::Number(0.0),
                    Amf0Value::Null,
                    Amf0Value::string(announced.to_string()),
                    Amf0Value::string("not an address"),
                ],
            )
            .into(),
        };
        let mut flows = StreamFlows::default();
        let session = a.endpoint.session_mut(to_server).expect("session");
        assert!(flows.send(session, &set_peer_info, None));
        let mut turns = 0;
        run_all(&mut workers, &mut [&mut a], started, |_| {
            turns += 1;
            turns > 100
        });

        // B asks worker 0 for A by peer id: worker 0 forwards the IHello to worker 1, whose
        // endpoint redirects B to A and forwards B's IHello to A; A answers B directly.
        let epd = crate::proto::rtmfp::keys::epd_peer_id(&a_id);
        let to_a = b.endpoint.connect(0, addrs[0], epd);
        let a_addr = a.addr();
        run_all(&mut workers, &mut [&mut a, &mut b], started, |n| {
            n[1].events
                .iter()
                .any(|e| e.0 == to_a && matches!(e.1, Event::Connected { .. }))
        });
        assert!(
            b.events.iter().any(|e| matches!(&e.1,
                Event::Redirected { to } if to[..] == [a_addr, announced])),
            "B is sent to A's address and the one A announced: {:?}",
            b.events
        );
        assert!(a
            .events
            .iter()
            .any(|e| matches!(e.1, Event::Introduction { reply_to, .. } if reply_to == b.addr())));
        assert_eq!(
            b.endpoint.session(to_a).map(|s| (s.peer, s.peer_id)),
            Some((a_addr, a_id)),
            "B's session is with A itself, not with the server"
        );

        // An id no worker holds: an empty Redirect from the worker it reached.
        let nobody = c.endpoint.connect(
            0,
            addrs[0],
            crate::proto::rtmfp::keys::epd_peer_id(&[7; 32]),
        );
        run_all(&mut workers, &mut [&mut c], started, |n| {
            n[0].events
                .iter()
                .any(|e| e.0 == nobody && matches!(&e.1, Event::Redirected { to } if to.is_empty()))
        });
    }

    #[test]
    fn a_client_that_moves_keeps_its_session_even_when_it_lands_on_another_worker() {
        let (shared, rx, _control) = shared(2);
        let mut workers: Vec<Worker> = rx
            .into_iter()
            .enumerate()
            .map(|(id, rx)| {
                let mut config = crate::config::Config::default();
                config.server.listen = Vec::new();
                Worker::new(id, Arc::clone(&shared), Arc::new(config), rx).expect("io_uring")
            })
            .collect();
        let mut addrs = Vec::new();
        for (w, ip) in workers.iter_mut().zip(["127.0.0.1", "127.0.0.2"]) {
            w.arm_mailbox();
            let a = w.open_rtmfp_on(0, SocketAddr::new(ip.parse().expect("ip"), 0));
            addrs.push(a.expect("bound"));
        }
        let started = Instant::now();
        let mut c = Node::new(4);
        let sid = c.endpoint.connect(
            0,
            addrs[1],
            crate::proto::rtmfp::keys::epd_url("rtmfp://x/live"),
        );
        run_all(&mut workers, &mut [&mut c], started, |n| {
            n[0].events
                .iter()
                .any(|e| matches!(e.1, Event::Connected { .. }))
        });
        let peer_of = |w: &Worker| {
            w.conns
                .refs()
                .into_iter()
                .find_map(|r| w.conns.get(r).filter(|c| c.rtmfp.is_some()).map(|c| c.peer))
        };
        let old = c.addr();
        assert_eq!(peer_of(&workers[1]), Some(old));

        // The client's address changes (a new socket), and its next packet reaches worker
        // 0's socket: worker 0 forwards it to worker 1, whose session checks the new
        // address with a ping before it moves there.
        c.socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        c.socket.set_nonblocking(true).expect("nonblocking");
        let new = c.addr();
        let mut flows = StreamFlows::default();
        let connect = Message {
            csid: csid::COMMAND,
            timestamp: 0,
            type_id: msg_type::COMMAND_AMF0,
            stream_id: 0,
            payload: encode_values(
                false,
                &[
                    Amf0Value::string("connect"),
                    Amf0Value::Number(1.0),
                    Amf0Value::object([("app", Amf0Value::string("live"))]),
                ],
            )
            .into(),
        };
        let session = c.endpoint.session_mut(sid).expect("session");
        assert!(flows.send(session, &connect, None));
        let now = started.elapsed().as_millis() as u64;
        let mut out = Vec::new();
        while c.endpoint.poll_transmit_into(now, &mut out).is_some() {
            c.socket.send_to(&out, addrs[0]).expect("send");
        }
        run_all(&mut workers, &mut [&mut c], started, |n| {
            n[0].events.iter().any(|e| {
                matches!(&e.1, Event::Message { data, .. }
                    if data.windows(7).any(|w| w == b"Success"))
            })
        });
        let mut turns = 0;
        run_all(&mut workers, &mut [&mut c], started, |_| {
            turns += 1;
            turns > 20
        });
        assert_eq!(peer_of(&workers[1]), Some(new), "the session moved");
        assert_eq!(peer_of(&workers[0]), None, "worker 0 made no session");
        assert_eq!(WorkerStats::get(&shared.stats[1].rtmfp_sessions), 1);
    }
}
