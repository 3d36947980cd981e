//! One open RTMFP session (RFC 7016 §3.5): decrypts its packets, dispatches their chunks to
//! its flows, builds its outgoing packets (control chunks, acknowledgements, then data as
//! the congestion window allows), and keeps its timers (retransmission, keepalive, idle,
//! close). Address mobility (§3.5.4.2): a valid packet from a new address makes the session
//! ping that address, and the session moves there once the ping is answered from there.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;

use bytes::Bytes;

use super::chunk::{self, kind, Chunk, ChunkDecoder};
use super::congestion::{Congestion, Rtt};
use super::crypto::{PacketCrypto, LANES};
use super::error::Result;
use super::flow_recv::RecvFlow;
use super::flow_send::{Head, SendFlow, OPT_METADATA, OPT_RETURN_ASSOCIATION};
use super::keys::PeerId;
use super::packet::{self, Header, Mode, MAX_PLAIN, TICK_MS};
use super::vlu;

pub(crate) type SessionId = u32;

/// A datagram to send (handshake packets, and `Endpoint::poll_transmit` for tests and
/// tools; the engine takes datagrams into its own buffers with `poll_transmit_into`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Transmit {
    pub to: SocketAddr,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    /// Initiator: the handshake completed.
    Connected {
        peer_id: PeerId,
    },
    /// Responder: a new session.
    Accepted {
        peer_id: PeerId,
        addr: SocketAddr,
    },
    ConnectFailed {
        reason: &'static str,
    },
    /// The responder sent us elsewhere (empty: the peer id is unknown to it).
    Redirected {
        to: Vec<SocketAddr>,
    },
    FlowOpened {
        flow: u64,
        metadata: Vec<u8>,
        return_association: Option<u64>,
    },
    Message {
        flow: u64,
        data: Vec<u8>,
    },
    /// The peer ended its flow (everything delivered).
    FlowFinished {
        flow: u64,
    },
    /// The peer refused our flow.
    FlowRejected {
        flow: u64,
        code: u64,
    },
    AddressChanged {
        addr: SocketAddr,
    },
    /// The server forwarded another endpoint's IHello to us (an introduction): answer it
    /// directly at `reply_to` to open a peer-to-peer session.
    Introduction {
        epd: Vec<u8>,
        reply_to: SocketAddr,
        tag: Vec<u8>,
    },
    /// Server side of an introduction: an IHello for this session's peer id, from
    /// `initiator`, was forwarded to this session's peer (so operators can see it).
    Introduced {
        initiator: SocketAddr,
    },
    Closed {
        reason: &'static str,
    },
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct SessionConfig {
    /// Ping after this long without hearing from the peer.
    pub keepalive_ms: u64,
    /// Give up after this long without hearing from the peer.
    pub idle_timeout_ms: u64,
    /// Each receiving flow buffers at most this much (what its acks advertise).
    pub recv_window: usize,
    pub max_recv_flows: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        // At most 64 flows of 256 KiB: a session buffers at most 16 MiB of a peer's data.
        SessionConfig {
            keepalive_ms: 10_000,
            idle_timeout_ms: 120_000,
            recv_window: 256 * 1024,
            max_recv_flows: 64,
        }
    }
}

/// Flow Exception code for a flow refused for lack of resources (any nonzero code will do:
/// the Flash profile gives codes no meaning).
pub(crate) const EXCEPTION_REFUSED: u64 = 1;
/// No cap on a fragment but its packet's room: flows cut each fragment to what the packet
/// has left (see `SendFlow::write_fragments`).
const MAX_FRAGMENT: usize = MAX_PLAIN;
const CLOSE_RETRY_MS: u64 = 1_000;
/// A data packet within this many bytes of `MAX_PLAIN` is padded to it (see
/// `poll_transmit`): a packet whose data goes on in the next one leaves less than this
/// free (the flows cut fragments to the room left, down to `flow_send::MIN_CUT` bytes and a
/// chunk header).
const PAD_TO_FULL: usize = 48;
/// RFC 7016 §3.6.3.4.4: a lone packet of data is acknowledged within 200 ms.
const DELAYED_ACK_MS: u64 = 200;
const CLOSE_GIVE_UP_MS: u64 = 90_000;
const MOBILITY_MARK: u8 = b'M';

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    NearClose { since: u64, last_sent: u64 },
    Closed,
}

pub(crate) struct Session {
    /// The deadline of this session's entry in its endpoint's timer heap, if one is there
    /// (the endpoint's bookkeeping: see `Endpoint::rearm`).
    pub(crate) armed: Option<u64>,
    pub(crate) peer_session_id: u32,
    pub(crate) peer: SocketAddr,
    pub(crate) peer_id: PeerId,
    mode: Mode,
    crypto: PacketCrypto,
    config: SessionConfig,
    state: State,
    last_recv: u64,
    last_ping: Option<u64>,
    ts_echo: Option<(u16, u64)>,
    rtt: Rtt,
    cc: Congestion,
    tsn: u64,
    send_flows: BTreeMap<u64, SendFlow>,
    next_flow_id: u64,
    recv_flows: BTreeMap<u64, RecvFlow>,
    control: Vec<u8>,
    probe: Option<(SocketAddr, [u8; 8], bool)>,
    events: VecDeque<Event>,
    /// Packets with user data since our last acknowledgement, and when a lone one must be
    /// acknowledged at the latest.
    data_packets_unacked: u32,
    delayed_ack_at: Option<u64>,
    ack_now: bool,
    /// Responder: the RIKeying chunk, resent if the initiator repeats its IIKeying.
    pub(crate) rikeying: Option<(u32, Vec<u8>, Vec<u8>)>,
    /// Datagrams refused (bad checksum, HMAC, replay, malformed).
    pub(crate) dropped: u64,
    /// Addresses the peer says it also has (Flash's `setPeerInfo`), given out with the
    /// observed one when another endpoint asks for this peer.
    pub(crate) announced: Vec<SocketAddr>,
}

impl Session {
    pub(crate) fn new(
        peer_session_id: u32,
        peer: SocketAddr,
        peer_id: PeerId,
        mode: Mode,
        crypto: PacketCrypto,
        config: SessionConfig,
        now: u64,
    ) -> Self {
        Session {
            peer_session_id,
            peer,
            peer_id,
            mode,
            crypto,
            config,
            state: State::Open,
            last_recv: now,
            last_ping: None,
            ts_echo: None,
            rtt: Rtt::default(),
            cc: Congestion::default(),
            tsn: 0,
            send_flows: BTreeMap::new(),
            next_flow_id: 1,
            recv_flows: BTreeMap::new(),
            control: Vec::new(),
            probe: None,
            events: VecDeque::new(),
            data_packets_unacked: 0,
            delayed_ack_at: None,
            ack_now: false,
            rikeying: None,
            armed: None,
            dropped: 0,
            announced: Vec::new(),
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    pub(crate) fn rtt_ms(&self) -> Option<u64> {
        self.rtt.srtt()
    }

    pub(crate) fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Opens a sending flow; `metadata` names it to the peer (RFC 7425: "TC" + stream).
    pub(crate) fn open_flow(&mut self, metadata: &[u8], return_association: Option<u64>) -> u64 {
        let id = self.next_flow_id;
        self.next_flow_id += 1;
        self.send_flows
            .insert(id, SendFlow::new(id, metadata, return_association));
        id
    }

    /// Queues a message on a flow; `deadline`: abandon what is unacknowledged by then.
    #[cfg(test)]
    pub(crate) fn send(&mut self, flow: u64, message: Bytes, deadline: Option<u64>) -> bool {
        self.send_parts(flow, Head::default(), message, deadline)
    }

    /// Queues a message of `head` then `body` on a flow (`body` is not copied).
    pub(crate) fn send_parts(
        &mut self,
        flow: u64,
        head: Head,
        body: Bytes,
        deadline: Option<u64>,
    ) -> bool {
        match self.send_flows.get_mut(&flow) {
            Some(f) if self.state == State::Open => {
                f.send_parts(head, body, MAX_FRAGMENT, deadline);
                true
            }
            _ => false,
        }
    }

    pub(crate) fn close_flow(&mut self, flow: u64) {
        if let Some(f) = self.send_flows.get_mut(&flow) {
            f.close();
        }
    }

    pub(crate) fn reject_flow(&mut self, flow: u64, code: u64) {
        if let Some(f) = self.recv_flows.get_mut(&flow) {
            f.rejected = Some(code);
            f.ack_due = true;
        }
    }

    /// Bytes queued or in flight on our flows.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.send_flows.values().map(|f| f.queued_bytes()).sum()
    }

    #[cfg(test)]
    pub(crate) fn debug_state(&self) -> String {
        let flows: Vec<String> = self
            .send_flows
            .values()
            .map(|f| {
                let q: Vec<String> = f
                    .queue
                    .iter()
                    .take(6)
                    .map(|q| {
                        format!(
                            "{}:{}{}{}",
                            q.seq, q.in_flight as u8, q.abandoned as u8, q.naks
                        )
                    })
                    .collect();
                format!(
                    "flow {} out {} peerbuf {} len {} [{}]",
                    f.id,
                    f.outstanding,
                    f.peer_buffer,
                    f.queue.len(),
                    q.join(" ")
                )
            })
            .collect();
        format!(
            "cwnd {} rto {} state {:?} {}",
            self.cc.cwnd,
            self.rtt.rto(),
            self.state,
            flows.join("; ")
        )
    }

    /// Asks the peer to answer another endpoint's IHello (server side of an introduction).
    pub(crate) fn forward_hello(&mut self, epd: &[u8], reply_to: SocketAddr, tag: &[u8]) {
        chunk::encode::forwarded_ihello(&mut self.control, epd, reply_to, tag);
    }

    pub(crate) fn close(&mut self, now: u64) {
        if self.state == State::Open {
            self.state = State::NearClose {
                since: now,
                last_sent: now,
            };
            chunk::encode::bytes(&mut self.control, kind::SESSION_CLOSE, &[]);
        }
    }

    /// Ends the session at once with an unasked Session Close Acknowledgement, as
    /// rtmfp-cpp and librtmfp close theirs (the tests' stand-in for those clients).
    #[cfg(test)]
    pub(crate) fn abort(&mut self) {
        chunk::encode::bytes(&mut self.control, kind::SESSION_CLOSE_ACK, &[]);
        self.closed("closed abruptly");
    }

    fn closed(&mut self, reason: &'static str) {
        if self.state != State::Closed {
            self.state = State::Closed;
            self.events.push_back(Event::Closed { reason });
        }
    }

    /// A datagram addressed to this session.
    pub(crate) fn handle(
        &mut self,
        now: u64,
        from: SocketAddr,
        datagram: &[u8],
        scratch: &mut Vec<u8>,
    ) -> Result<()> {
        let r = self.handle_inner(now, from, datagram, scratch);
        if r.is_err() {
            self.dropped += 1;
        }
        r
    }

    fn handle_inner(
        &mut self,
        now: u64,
        from: SocketAddr,
        datagram: &[u8],
        scratch: &mut Vec<u8>,
    ) -> Result<()> {
        if self.state == State::Closed {
            return Ok(());
        }
        let plain = self.crypto.open(datagram, scratch)?;
        let (header, area) = Header::decode(plain)?;
        let expected = if self.mode == Mode::Initiator {
            Mode::Responder
        } else {
            Mode::Initiator
        };
        if header.mode != expected {
            return Err(super::error::RtmfpError::Malformed("packet mode"));
        }
        self.last_recv = now;
        self.last_ping = None;
        if let Some(ts) = header.timestamp {
            self.ts_echo = Some((ts, now));
        }
        if let Some(echo) = header.timestamp_echo {
            let ticks = packet::timestamp(now).wrapping_sub(echo);
            // Echoes older than half the timestamp space are ambiguous: ignore them.
            if ticks < 0x8000 {
                self.rtt.sample(u64::from(ticks) * TICK_MS);
            }
        }
        if from != self.peer && self.probe.is_none_or(|(a, _, _)| a != from) {
            let nonce = (now ^ u64::from(self.tsn as u32) << 20).to_be_bytes();
            self.probe = Some((from, nonce, false));
        }
        let mut dec = ChunkDecoder::default();
        let mut data = false;
        for c in packet::chunks(area) {
            let (k, v) = c?;
            let c = dec.decode(k, v)?;
            data |= matches!(c, Chunk::UserData(_));
            self.on_chunk(now, from, c);
        }
        if data {
            // RFC 7016 §3.6.3.4.4: acknowledge every second packet of data, at once when
            // something is missing or the peer marked the packet time critical, else within
            // the delayed-ack time.
            self.data_packets_unacked += 1;
            if self.data_packets_unacked >= 2
                || header.time_critical
                || self.recv_flows.values().any(|f| f.has_gap() || f.complete)
            {
                self.ack_now = true;
            } else if self.delayed_ack_at.is_none() {
                self.delayed_ack_at = Some(now + DELAYED_ACK_MS);
            }
        }
        Ok(())
    }

    fn on_chunk(&mut self, now: u64, from: SocketAddr, c: Chunk<'_>) {
        match c {
            Chunk::Ping(m) => chunk::encode::bytes(&mut self.control, kind::PING_REPLY, m),
            Chunk::PingReply(m) => {
                if let Some((addr, nonce, _)) = self.probe {
                    if addr == from && m.len() == 9 && m[0] == MOBILITY_MARK && m[1..] == nonce {
                        self.peer = addr;
                        self.probe = None;
                        self.events.push_back(Event::AddressChanged { addr });
                    }
                }
            }
            Chunk::UserData(u) => {
                if !self.recv_flows.contains_key(&u.flow_id) {
                    let (metadata, assoc) = flow_options(u.options);
                    let mut f = RecvFlow::new(u.flow_id, self.config.recv_window);
                    if self.recv_flows.len() >= self.config.max_recv_flows
                        || self.state != State::Open
                    {
                        f.rejected = Some(EXCEPTION_REFUSED);
                    } else {
                        self.events.push_back(Event::FlowOpened {
                            flow: u.flow_id,
                            metadata,
                            return_association: assoc,
                        });
                    }
                    self.recv_flows.insert(u.flow_id, f);
                }
                if let Some(f) = self.recv_flows.get_mut(&u.flow_id) {
                    let r = f.on_data(&u);
                    for data in r.messages {
                        self.events.push_back(Event::Message {
                            flow: u.flow_id,
                            data,
                        });
                    }
                    if r.finished {
                        self.events
                            .push_back(Event::FlowFinished { flow: u.flow_id });
                    }
                }
            }
            Chunk::Ack {
                flow_id,
                buffer_blocks,
                cumulative,
                ranges,
                rest,
            } => {
                let in_flight: u64 = self.send_flows.values().map(|f| f.outstanding).sum();
                if let Some(f) = self.send_flows.get_mut(&flow_id) {
                    let o = f.on_ack(
                        buffer_blocks.saturating_mul(1024),
                        cumulative,
                        chunk::ack_ranges(cumulative, ranges, rest).take(1024),
                    );
                    if o.acked_bytes > 0 {
                        self.cc.on_ack(o.acked_bytes, in_flight);
                    }
                    if o.newly_lost {
                        self.cc.on_loss(now, &self.rtt);
                    }
                    if f.is_done() {
                        self.send_flows.remove(&flow_id);
                    }
                }
            }
            Chunk::BufferProbe { flow_id } => {
                if let Some(f) = self.recv_flows.get_mut(&flow_id) {
                    f.ack_due = true;
                    self.ack_now = true;
                }
            }
            Chunk::FlowException { flow_id, code } => {
                if let Some(mut f) = self.send_flows.remove(&flow_id) {
                    f.on_exception(code);
                    self.events.push_back(Event::FlowRejected {
                        flow: flow_id,
                        code,
                    });
                }
            }
            Chunk::ForwardedIHello { epd, reply_to, tag } => {
                self.events.push_back(Event::Introduction {
                    epd: epd.to_vec(),
                    reply_to,
                    tag: tag.to_vec(),
                });
            }
            Chunk::SessionClose => {
                chunk::encode::bytes(&mut self.control, kind::SESSION_CLOSE_ACK, &[]);
                self.closed("peer closed the session");
            }
            Chunk::SessionCloseAck => match self.state {
                State::NearClose { .. } => self.closed("closed"),
                // Unasked, it is the peer's abrupt close (RFC 7016 §3.5.5.6): rtmfp-cpp and
                // librtmfp end their sessions this way, which left ours open until the idle
                // timeout (a publisher held its stream name for two minutes).
                State::Open => self.closed("peer closed the session abruptly"),
                State::Closed => {}
            },
            _ => {}
        }
    }

    fn header(&self, now: u64) -> Header {
        let mut h = Header::new(self.mode);
        h.timestamp = Some(packet::timestamp(now));
        if let Some((ts, at)) = self.ts_echo {
            let elapsed = now.saturating_sub(at);
            if elapsed < 128_000 {
                h.timestamp_echo = Some(ts.wrapping_add((elapsed / TICK_MS) as u16));
            }
        }
        h
    }

    /// Builds the next packet the session has to send, appended to `buf` (the caller reuses
    /// one buffer, so a datagram costs no allocation), and returns where it goes; `None`
    /// when there is nothing to send now.
    pub(crate) fn poll_transmit(&mut self, now: u64, buf: &mut Vec<u8>) -> Option<SocketAddr> {
        let mut lens = [0; 1];
        self.poll_transmit_burst(now, buf, &mut lens)
            .map(|(to, _)| to)
    }

    /// Builds up to `lens.len()` packets (at most `crypto::LANES`), appended to `buf` one
    /// after another, each one's length in `lens`; returns where they go and how many there
    /// are. Packets are built in place and encrypted together (see `PacketCrypto::encrypt`),
    /// and the engine sends a run of them to one peer as one UDP GSO send.
    pub(crate) fn poll_transmit_burst(
        &mut self,
        now: u64,
        buf: &mut Vec<u8>,
        lens: &mut [usize],
    ) -> Option<(SocketAddr, usize)> {
        if let Some((addr, nonce, sent)) = self.probe.as_mut() {
            if !*sent {
                *sent = true;
                let (addr, nonce) = (*addr, *nonce);
                let start = self.crypto.begin(buf);
                self.header(now).encode(buf);
                let mut m = [0u8; 9];
                m[0] = MOBILITY_MARK;
                m[1..].copy_from_slice(&nonce);
                chunk::encode::bytes(buf, kind::PING, &m);
                self.crypto.end_plain(buf, start);
                self.crypto.encrypt(self.peer_session_id, buf, &[start]);
                *lens.first_mut()? = buf.len() - start;
                return Some((addr, 1));
            }
        }
        if self.state == State::Closed && self.control.is_empty() {
            return None;
        }
        let mut starts = [0usize; LANES];
        let mut n = 0;
        while n < lens.len().min(LANES) {
            let start = self.crypto.begin(buf);
            if !self.write_packet(now, buf) {
                buf.truncate(start);
                break;
            }
            self.crypto.end_plain(buf, start);
            starts[n] = start;
            n += 1;
        }
        if n == 0 {
            return None;
        }
        self.crypto.encrypt(self.peer_session_id, buf, &starts[..n]);
        let ends = starts[1..n]
            .iter()
            .copied()
            .chain(std::iter::once(buf.len()));
        for ((len, start), end) in lens.iter_mut().zip(&starts[..n]).zip(ends) {
            *len = end - start;
        }
        Some((self.peer, n))
    }

    /// Writes the next plain packet (header, control chunks, acknowledgements, then data as
    /// the congestion window allows) at the end of `out`; false when there is nothing to
    /// send now.
    fn write_packet(&mut self, now: u64, out: &mut Vec<u8>) -> bool {
        let base = out.len();
        self.header(now).encode(out);
        let body = out.len();
        // Control chunks are small; whatever does not fit waits for the next packet.
        let take = chunk_prefix(&self.control, MAX_PLAIN - (body - base));
        out.extend_from_slice(&self.control[..take]);
        self.control.drain(..take);
        if self.ack_now {
            let mut all = true;
            for f in self.recv_flows.values_mut() {
                if f.ack_due {
                    if out.len() - base + 64 + 20 * 8 < MAX_PLAIN {
                        f.write_ack(out);
                    } else {
                        all = false;
                    }
                }
            }
            if all {
                self.ack_now = false;
                self.data_packets_unacked = 0;
                self.delayed_ack_at = None;
            }
        }
        if self.state == State::Open {
            let outstanding: u64 = self.send_flows.values().map(|f| f.outstanding).sum();
            if outstanding < self.cc.cwnd {
                let mut data = 0;
                for f in self.send_flows.values_mut() {
                    let room = MAX_PLAIN - (out.len() - base);
                    if room < 32 {
                        break;
                    }
                    data += f.write_fragments(out, room, now, &mut self.tsn);
                }
                // A packet of data about full is padded to the full size, so that a burst's
                // packets are all one size but the last: what one UDP GSO send carries
                // (the kernel cuts equal segments). It costs at most `PAD_TO_FULL` bytes.
                if data > 0 && out.len() - base + PAD_TO_FULL >= MAX_PLAIN {
                    out.resize(base + MAX_PLAIN, packet::PADDING);
                }
            }
        }
        self.send_flows.retain(|_, f| !f.is_done());
        out.len() != body
    }

    pub(crate) fn poll_timeout(&self) -> Option<u64> {
        let mut t = match self.state {
            State::Closed => return None,
            State::NearClose { last_sent, .. } => last_sent + CLOSE_RETRY_MS,
            // The next keepalive ping: after the last one, or after the last packet heard.
            State::Open => self.last_ping.unwrap_or(self.last_recv) + self.config.keepalive_ms,
        };
        t = t.min(self.last_recv + self.config.idle_timeout_ms);
        if let Some(d) = self.delayed_ack_at {
            t = t.min(d);
        }
        let rto = self.rtt.rto();
        for f in self.send_flows.values() {
            let (oldest, expiry) = f.timer_floors();
            if let Some(o) = oldest {
                t = t.min(o + rto);
            }
            if let Some(e) = expiry {
                t = t.min(e);
            }
        }
        Some(t)
    }

    pub(crate) fn handle_timeout(&mut self, now: u64) {
        match self.state {
            State::Closed => return,
            State::NearClose { since, last_sent } => {
                if now >= since + CLOSE_GIVE_UP_MS {
                    self.closed("close not acknowledged");
                    return;
                }
                if now >= last_sent + CLOSE_RETRY_MS {
                    chunk::encode::bytes(&mut self.control, kind::SESSION_CLOSE, &[]);
                    self.state = State::NearClose {
                        since,
                        last_sent: now,
                    };
                }
            }
            State::Open => {}
        }
        if now >= self.last_recv + self.config.idle_timeout_ms {
            self.closed("peer silent");
            return;
        }
        if self.delayed_ack_at.is_some_and(|d| now >= d) {
            self.ack_now = true;
            self.delayed_ack_at = None;
        }
        if self.state == State::Open
            && now >= self.last_recv + self.config.keepalive_ms
            && self
                .last_ping
                .is_none_or(|p| now >= p + self.config.keepalive_ms)
        {
            chunk::encode::bytes(&mut self.control, kind::PING, &[]);
            self.last_ping = Some(now);
        }
        let rto = self.rtt.rto();
        let mut timed_out = false;
        for f in self.send_flows.values_mut() {
            f.expire(now);
            f.refresh_timers();
            if f.timer_floors().0.is_some_and(|o| now >= o + rto) {
                timed_out = true;
            }
        }
        if timed_out {
            for f in self.send_flows.values_mut() {
                // Nothing acknowledged within the timeout: a window of zero is probed by
                // the resent fragment itself.
                f.on_timeout();
                f.refresh_timers();
                if f.peer_buffer == 0 {
                    chunk::encode::flow_vlus(&mut self.control, kind::BUFFER_PROBE, &[f.id]);
                }
            }
            self.cc.on_timeout();
            self.rtt.timed_out();
        }
    }
}

/// How many bytes of a run of whole chunks fit in `room`.
fn chunk_prefix(chunks: &[u8], room: usize) -> usize {
    let mut at = 0;
    while at + 3 <= chunks.len() {
        let len = 3 + usize::from(u16::from_be_bytes([chunks[at + 1], chunks[at + 2]]));
        if at + len > room {
            break;
        }
        at += len;
    }
    at
}

/// A new flow's metadata and return association from its first fragment's options.
fn flow_options(options: Option<&[u8]>) -> (Vec<u8>, Option<u64>) {
    let Some(list) = options else {
        return (Vec::new(), None);
    };
    let metadata = vlu::find_option(list, OPT_METADATA)
        .unwrap_or_default()
        .to_vec();
    let assoc =
        vlu::find_option(list, OPT_RETURN_ASSOCIATION).and_then(|mut v| vlu::read(&mut v).ok());
    (metadata, assoc)
}
