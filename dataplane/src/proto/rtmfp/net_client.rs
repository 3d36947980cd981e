//! A NetConnection over RTMFP in the client role, sans-IO: the endpoint, its session to a
//! server and the Flash flows, with RTMP messages in and out; and peer-to-peer sessions,
//! opened by peer id through the server's introduction or accepted from other clients.
//! What our tests' RTMFP client (`tests/src/bin/rtmfp_client.rs`) and tools drive; the
//! caller owns the socket and the clock.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

use super::dh::DhGroup;
use super::endpoint::{Endpoint, EndpointConfig};
use super::flash::StreamFlows;
use super::keys;
use super::session::{Event, SessionId};
use crate::proto::rtmp::{msg_type, Message};

/// Where the session stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientState {
    Connecting,
    Connected,
    /// The handshake failed or the server sent us nowhere (an empty Redirect).
    Failed(String),
    Closed(String),
}

pub struct RtmfpNetClient {
    endpoint: Endpoint,
    server: SocketAddr,
    session: SessionId,
    state: ClientState,
    flows: StreamFlows,
    inbox: VecDeque<Message>,
    /// Peer-to-peer sessions (ours or accepted), open ones, and what they received.
    peers: HashMap<SessionId, StreamFlows>,
    peer_inbox: VecDeque<(u32, Message)>,
    /// Datagrams the server refused or that made no sense (counted, never fatal).
    pub dropped: u64,
}

/// The Diffie-Hellman keys a client's certificate offers the server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum KeyOffer {
    /// Groups 14 and 2 (2,048 and 1,024 bits); the server answers in the one it prefers.
    #[default]
    Both,
    /// Group 2 alone, as Flash Player's certificate: MonaServer2 reads only the first key of
    /// a certificate and answers in 1,024 bits whatever it was, which a client that offered
    /// 2,048 bits first must drop.
    FlashPlayer,
}

impl RtmfpNetClient {
    /// Starts the handshake with the server at `server` for `url` (`rtmfp://host/app`);
    /// `seed` seeds our keys (any random value).
    pub fn connect(now_ms: u64, server: SocketAddr, url: &str, seed: u64) -> Self {
        let mut c = RtmfpNetClient::new(server, seed);
        c.start(now_ms, url);
        c
    }

    /// A client for the server at `server` that has not started its handshake yet (`start`
    /// does): its keys are made here, which costs milliseconds (Diffie-Hellman), so a load
    /// tool makes its clients before its clock starts, as real clients make theirs each
    /// on its own machine.
    pub fn new(server: SocketAddr, seed: u64) -> Self {
        Self::with_keys(server, seed, KeyOffer::default())
    }

    /// [`new`](Self::new) with the Diffie-Hellman keys its certificate offers.
    pub fn with_keys(server: SocketAddr, seed: u64, keys: KeyOffer) -> Self {
        let groups = match keys {
            KeyOffer::Both => EndpointConfig::default().groups,
            KeyOffer::FlashPlayer => vec![DhGroup::Modp1024],
        };
        let endpoint = Endpoint::new(EndpointConfig {
            seed,
            // Other clients the server introduces may open sessions to us.
            accept_peers: true,
            groups,
            ..EndpointConfig::default()
        });
        RtmfpNetClient {
            endpoint,
            server,
            peers: HashMap::new(),
            peer_inbox: VecDeque::new(),
            session: 0,
            state: ClientState::Connecting,
            flows: StreamFlows::default(),
            inbox: VecDeque::new(),
            dropped: 0,
        }
    }

    /// Starts the handshake for `url` (`rtmfp://host/app`).
    pub fn start(&mut self, now_ms: u64, url: &str) {
        self.session = self
            .endpoint
            .connect(now_ms, self.server, keys::epd_url(url));
    }

    /// Datagrams dropped before they reached a session: handshake answers it could not use
    /// (a key in a group it did not offer, a bad cookie echo), unknown session ids.
    pub fn dropped_before_session(&self) -> u64 {
        self.endpoint.dropped
    }

    pub fn state(&self) -> &ClientState {
        &self.state
    }

    /// Our peer id (SHA-256 of our certificate), in hex as Flash shows it.
    pub fn peer_id_hex(&self) -> String {
        hex(self.endpoint.identity_id())
    }

    /// The server's peer id, once connected.
    pub fn server_peer_id_hex(&self) -> Option<String> {
        self.endpoint.session(self.session).map(|s| hex(&s.peer_id))
    }

    pub fn rtt_ms(&self) -> Option<u64> {
        self.endpoint.session(self.session).and_then(|s| s.rtt_ms())
    }

    /// One datagram from the network.
    pub fn handle(&mut self, now_ms: u64, from: SocketAddr, datagram: &[u8]) {
        self.endpoint.handle(now_ms, from, datagram);
        self.drain();
    }

    pub fn poll_timeout(&self) -> Option<u64> {
        self.endpoint.poll_timeout()
    }

    pub fn handle_timeout(&mut self, now_ms: u64) {
        self.endpoint.handle_timeout(now_ms);
        self.drain();
    }

    /// The next datagram to send, into `buf`; its destination.
    pub fn poll_transmit(&mut self, now_ms: u64, buf: &mut Vec<u8>) -> Option<SocketAddr> {
        self.endpoint.poll_transmit_into(now_ms, buf)
    }

    /// Sends an RTMP message on the flow of its message stream (opened on first use);
    /// `deadline_ms`: abandon it if undelivered by then. False when not connected.
    pub fn send(&mut self, m: &Message, deadline_ms: Option<u64>) -> bool {
        match self.endpoint.session_mut(self.session) {
            Some(s) if self.state == ClientState::Connected => self.flows.send(s, m, deadline_ms),
            _ => false,
        }
    }

    /// Sends an AMF0 command (`values`: name, transaction id, command object, arguments) on
    /// message stream `stream_id`. False when not connected.
    pub fn send_command(
        &mut self,
        stream_id: u32,
        values: &[crate::proto::amf0::Amf0Value],
    ) -> bool {
        let m = Message {
            csid: crate::proto::rtmp::csid::COMMAND,
            timestamp: 0,
            type_id: msg_type::COMMAND_AMF0,
            stream_id,
            payload: crate::proto::command::encode_values(false, values).into(),
        };
        self.send(&m, None)
    }

    /// Bytes queued on our flows and not yet acknowledged (for pacing a publisher).
    pub fn queued_bytes(&self) -> usize {
        self.endpoint
            .session(self.session)
            .map_or(0, |s| s.queued_bytes())
    }

    /// The next RTMP message the server sent.
    pub fn recv(&mut self) -> Option<Message> {
        self.inbox.pop_front()
    }

    /// Asks the server for the client with this peer id (hex): the server redirects us to
    /// it and introduces us, and the session opens directly with that client. Its id names
    /// it in `peer_sessions` and `send_to_peer`; None for an id that is not hex.
    pub fn open_peer(&mut self, now_ms: u64, peer_id_hex: &str) -> Option<u32> {
        let id = unhex(peer_id_hex)?;
        let sid = self
            .endpoint
            .connect(now_ms, self.server, keys::epd_peer_id(&id));
        self.peers.insert(sid, StreamFlows::default());
        Some(sid)
    }

    /// Open peer-to-peer sessions: id and the peer's address.
    pub fn peer_sessions(&self) -> Vec<(u32, SocketAddr)> {
        let mut v: Vec<(u32, SocketAddr)> = self
            .peers
            .keys()
            .filter_map(|id| self.endpoint.session(*id).map(|s| (*id, s.peer)))
            .collect();
        v.sort();
        v
    }

    /// Sends an RTMP message to a peer session (reliable). False if it is not open.
    pub fn send_to_peer(&mut self, peer: u32, m: &Message) -> bool {
        match (self.peers.get_mut(&peer), self.endpoint.session_mut(peer)) {
            (Some(flows), Some(s)) => flows.send(s, m, None),
            _ => false,
        }
    }

    /// Unacknowledged bytes on a peer session's flows.
    pub fn peer_queued_bytes(&self, peer: u32) -> usize {
        self.endpoint.session(peer).map_or(0, |s| s.queued_bytes())
    }

    /// The next message a peer sent, with its session.
    pub fn recv_from_peer(&mut self) -> Option<(u32, Message)> {
        self.peer_inbox.pop_front()
    }

    pub fn close(&mut self, now_ms: u64) {
        if let Some(s) = self.endpoint.session_mut(self.session) {
            s.close(now_ms);
        }
    }

    fn drain(&mut self) {
        // Bounded: the endpoint's queue holds what the last input made.
        while let Some((id, e)) = self.endpoint.poll_event() {
            if id != self.session {
                self.peer_event(id, e);
                continue;
            }
            match e {
                Event::Connected { .. } => self.state = ClientState::Connected,
                Event::ConnectFailed { reason } => self.state = ClientState::Failed(reason.into()),
                Event::Redirected { to } if to.is_empty() => {
                    self.state = ClientState::Failed("empty redirect".into())
                }
                Event::Closed { reason } => self.state = ClientState::Closed(reason.into()),
                Event::FlowOpened { flow, metadata, .. }
                    if self.flows.on_flow_opened(flow, &metadata).is_err() =>
                {
                    self.dropped += 1;
                }
                Event::Message { flow, data } => match self.flows.on_message(flow, &data) {
                    // RTMFP's own user control events (Flow Sync, Set Keepalive) are kept
                    // too: the caller sees everything the server sent.
                    Ok(m) => self.inbox.push_back(m),
                    Err(_) => self.dropped += 1,
                },
                _ => {}
            }
        }
    }
}

/// Whether a message type rides on RTMFP flows (RFC 7425 §5.1): RTMP's chunking controls
/// do not.
pub(crate) fn carried_on_flows(type_id: u8) -> bool {
    !matches!(
        type_id,
        msg_type::SET_CHUNK_SIZE
            | msg_type::ABORT
            | msg_type::ACKNOWLEDGEMENT
            | msg_type::WINDOW_ACK_SIZE
            | msg_type::SET_PEER_BANDWIDTH
            | msg_type::AGGREGATE
    )
}

impl RtmfpNetClient {
    fn peer_event(&mut self, id: SessionId, e: Event) {
        match e {
            Event::Accepted { .. } => {
                self.peers.insert(id, StreamFlows::default());
            }
            Event::FlowOpened { flow, metadata, .. } => {
                if let Some(f) = self.peers.get_mut(&id) {
                    if f.on_flow_opened(flow, &metadata).is_err() {
                        self.dropped += 1;
                    }
                }
            }
            Event::Message { flow, data } => {
                match self.peers.get(&id).map(|f| f.on_message(flow, &data)) {
                    Some(Ok(m)) => self.peer_inbox.push_back((id, m)),
                    _ => self.dropped += 1,
                }
            }
            Event::Closed { .. } | Event::ConnectFailed { .. } => {
                self.peers.remove(&id);
            }
            _ => {}
        }
    }
}

fn unhex(s: &str) -> Option<keys::PeerId> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut id = [0u8; 32];
    for (i, pair) in b.chunks(2).enumerate() {
        let digit = |c: u8| (c as char).to_digit(16);
        id[i] = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
    }
    Some(id)
}

fn hex(id: &[u8]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// The command a message carries (`_result`, `_error`, `onStatus`, a call), if it is one.
pub fn command_of(m: &Message) -> Option<crate::proto::command::Command> {
    let amf3 = match m.type_id {
        msg_type::COMMAND_AMF0 => false,
        msg_type::COMMAND_AMF3 => true,
        _ => return None,
    };
    crate::proto::command::Command::decode(amf3, &m.payload).ok()
}
