//! Both roles through the `Endpoint`s, over a simulated network (latency, seeded random
//! loss, address changes) with a simulated clock.

use std::collections::VecDeque;
use std::net::SocketAddr;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::crypto::{self, PacketCrypto};
use super::dh::DhGroup;
use super::endpoint::{Endpoint, EndpointConfig};
use super::keys::{self, Policy};
use super::session::{Event, SessionId};

struct Net {
    client: Endpoint,
    server: Endpoint,
    caddr: SocketAddr,
    saddr: SocketAddr,
    now: u64,
    latency: u64,
    loss: f64,
    rng: StdRng,
    wire: VecDeque<(u64, SocketAddr, SocketAddr, Vec<u8>)>,
    client_events: Vec<(SessionId, Event)>,
    server_events: Vec<(SessionId, Event)>,
    /// Every datagram seen, for checks on what went over the wire.
    seen: Vec<Vec<u8>>,
    /// The last datagram the server sent, and how many it sent.
    last_from_server: Vec<u8>,
    from_server: usize,
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

impl Net {
    fn new(client: EndpointConfig, server: EndpointConfig) -> Self {
        Net {
            client: Endpoint::new(EndpointConfig { seed: 11, ..client }),
            server: Endpoint::new(EndpointConfig {
                accept: true,
                seed: 22,
                ..server
            }),
            caddr: addr("127.0.0.2:40000"),
            saddr: addr("127.0.0.1:1935"),
            now: 1_000_000,
            latency: 20,
            loss: 0.0,
            rng: StdRng::seed_from_u64(7),
            wire: VecDeque::new(),
            client_events: Vec::new(),
            server_events: Vec::new(),
            seen: Vec::new(),
            last_from_server: Vec::new(),
            from_server: 0,
        }
    }

    fn flush(&mut self) {
        while let Some(t) = self.client.poll_transmit(self.now) {
            self.put(self.caddr, t.to, t.data);
        }
        while let Some(t) = self.server.poll_transmit(self.now) {
            self.put(self.saddr, t.to, t.data);
        }
        while let Some(e) = self.client.poll_event() {
            self.client_events.push(e);
        }
        while let Some(e) = self.server.poll_event() {
            self.server_events.push(e);
        }
    }

    fn put(&mut self, from: SocketAddr, to: SocketAddr, data: Vec<u8>) {
        assert!(data.len() <= 1200, "datagram of {} bytes", data.len());
        self.seen.push(data.clone());
        if from == self.saddr {
            self.last_from_server = data.clone();
            self.from_server += 1;
        }
        if self.rng.gen_bool(self.loss) {
            return;
        }
        self.wire
            .push_back((self.now + self.latency, from, to, data));
    }

    /// Runs the network until `done` or `limit_ms` of simulated time pass.
    fn run(&mut self, limit_ms: u64, mut done: impl FnMut(&Net) -> bool) -> bool {
        let end = self.now + limit_ms;
        for _ in 0..1_000_000 {
            self.flush();
            if done(self) {
                return true;
            }
            let next_wire = self.wire.iter().map(|w| w.0).min();
            let next = [
                next_wire,
                self.client.poll_timeout(),
                self.server.poll_timeout(),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(end)
            .max(self.now);
            if next > end {
                self.now = end;
                return done(self);
            }
            self.now = next;
            let due: Vec<_> = {
                let (d, keep): (Vec<_>, Vec<_>) =
                    self.wire.drain(..).partition(|w| w.0 <= self.now);
                self.wire = keep.into();
                d
            };
            for (_, from, to, data) in due {
                if to == self.saddr {
                    self.server.handle(self.now, from, &data);
                } else if to == self.caddr {
                    self.client.handle(self.now, self.saddr, &data);
                }
            }
            if self.client.poll_timeout().is_some_and(|t| t <= self.now) {
                self.client.handle_timeout(self.now);
            }
            if self.server.poll_timeout().is_some_and(|t| t <= self.now) {
                self.server.handle_timeout(self.now);
            }
        }
        false
    }

    fn connect(&mut self) -> (SessionId, SessionId) {
        let epd = keys::epd_url("rtmfp://127.0.0.1/live");
        let c = self.client.connect(self.now, self.saddr, epd);
        let ok = self.run(30_000, |n| {
            n.client_events
                .iter()
                .any(|e| matches!(e.1, Event::Connected { .. }))
                && n.server_events
                    .iter()
                    .any(|e| matches!(e.1, Event::Accepted { .. }))
        });
        assert!(
            ok,
            "handshake: client {:?} server {:?}",
            self.client_events, self.server_events
        );
        let s = self
            .server_events
            .iter()
            .find_map(|(id, e)| matches!(e, Event::Accepted { .. }).then_some(*id))
            .expect("accepted");
        (c, s)
    }

    fn messages(events: &[(SessionId, Event)], flow: Option<u64>) -> Vec<Vec<u8>> {
        events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::Message { flow: f, data } if flow.is_none_or(|x| x == *f) => {
                    Some(data.clone())
                }
                _ => None,
            })
            .collect()
    }
}

#[test]
fn client_and_server_shake_hands_and_exchange_encrypted_messages() {
    let mut net = Net::new(EndpointConfig::default(), EndpointConfig::default());
    let (c, s) = net.connect();
    // Identities: the client knows the server's peer id; the server's is the SHA-256 of
    // the client's certificate.
    let server_id = *net.server.peer_id();
    assert!(net
        .client_events
        .iter()
        .any(|e| e.1 == Event::Connected { peer_id: server_id }));
    assert_eq!(net.client.session(c).expect("session").peer_id, server_id);
    let handshake_datagrams = net.seen.len();

    let flow = net
        .client
        .session_mut(c)
        .expect("session")
        .open_flow(b"TC\x04\x00", None);
    let sent = net.client.session_mut(c).expect("session").send(
        flow,
        Bytes::from_static(b"hello over rtmfp"),
        None,
    );
    assert!(sent);
    let ok = net.run(5_000, |n| !Net::messages(&n.server_events, None).is_empty());
    assert!(ok);
    assert!(net
        .server_events
        .iter()
        .any(|e| matches!(&e.1, Event::FlowOpened { metadata, .. } if metadata == b"TC\x04\x00")));
    assert_eq!(
        Net::messages(&net.server_events, None),
        vec![b"hello over rtmfp".to_vec()]
    );

    // The answer on a flow associated with the client's.
    let reply = net
        .server
        .session_mut(s)
        .expect("session")
        .open_flow(b"TC\x04\x00", Some(flow));
    net.server
        .session_mut(s)
        .expect("session")
        .send(reply, Bytes::from_static(b"welcome"), None);
    assert!(net.run(5_000, |n| !Net::messages(&n.client_events, None).is_empty()));
    assert!(net.client_events.iter().any(
        |e| matches!(e.1, Event::FlowOpened { return_association: Some(f), .. } if f == flow)
    ));
    assert_eq!(
        Net::messages(&net.client_events, None),
        vec![b"welcome".to_vec()]
    );

    // Session packets are not readable with the startup key, and name the peer's session.
    for d in &net.seen[handshake_datagrams..] {
        assert!(PacketCrypto::startup().open(d, &mut Vec::new()).is_err());
        let sid = crypto::session_id_of(d).expect("sid");
        assert!(sid == c || sid == net.client.session(c).expect("s").peer_session_id);
    }
    assert!(
        net.client.session(c).expect("s").rtt_ms().is_some(),
        "timestamp echoes give an RTT"
    );
    assert_eq!(net.server.dropped + net.client.dropped, 0);
}

#[test]
fn hmac_and_sequence_numbers_when_the_peer_asks_and_group_2_only() {
    let strict = Policy {
        hmac_recv_required: true,
        sseq_recv_required: true,
        hmac_send_always: true,
        ..Policy::default()
    };
    let client = EndpointConfig {
        policy: strict,
        ..EndpointConfig::default()
    };
    let server = EndpointConfig {
        groups: vec![DhGroup::Modp1024],
        ..EndpointConfig::default()
    };
    let mut net = Net::new(client, server);
    let (c, s) = net.connect();
    let flow = net.client.session_mut(c).expect("s").open_flow(b"x", None);
    for i in 0..20u8 {
        net.client
            .session_mut(c)
            .expect("s")
            .send(flow, Bytes::from(vec![i; 3000]), None);
    }
    assert!(
        net.run(10_000, |n| Net::messages(&n.server_events, None).len()
            == 20)
    );
    let back = net
        .server
        .session_mut(s)
        .expect("s")
        .open_flow(b"y", Some(flow));
    net.server
        .session_mut(s)
        .expect("s")
        .send(back, Bytes::from_static(b"ok"), None);
    assert!(net.run(5_000, |n| Net::messages(&n.client_events, None).len() == 1));
    // The client asked for sequence numbers: a replayed server datagram is refused (the
    // server did not ask, so it does not check them).
    net.run(1_000, |_| false);
    let last = net.last_from_server.clone();
    let before = net.client.session(c).expect("s").dropped;
    net.client.handle(net.now, net.saddr, &last);
    assert_eq!(net.client.session(c).expect("s").dropped, before + 1);
    assert_eq!(before, 0);
}

#[test]
fn an_ihello_costs_the_server_no_state_and_bad_cookies_make_no_session() {
    let mut net = Net::new(EndpointConfig::default(), EndpointConfig::default());
    for port in 0..200u16 {
        let from = SocketAddr::new(net.caddr.ip(), 20_000 + port);
        let mut c = Vec::new();
        super::chunk::encode::ihello(
            &mut c,
            &keys::epd_url("rtmfp://127.0.0.1/live"),
            &[port as u8; 16],
        );
        let mut plain = vec![0x0b, 0, 0];
        plain.extend_from_slice(&c);
        let mut d = Vec::new();
        PacketCrypto::startup().seal(0, &plain, &mut d);
        net.server.handle(net.now, from, &d);
    }
    assert_eq!(net.server.session_count(), 0);
    let mut answers = 0;
    while net.server.poll_transmit(net.now).is_some() {
        answers += 1;
    }
    assert_eq!(answers, 200);
    // An IIKeying with a forged cookie is dropped without a session.
    let mut c = Vec::new();
    super::chunk::encode::iikeying(&mut c, 5, &[0; 64], b"\x02\x1d\x02", b"", b"X");
    let mut plain = vec![0x0b, 0, 0];
    plain.extend_from_slice(&c);
    let mut d = Vec::new();
    PacketCrypto::startup().seal(0, &plain, &mut d);
    net.server.handle(net.now, net.caddr, &d);
    assert_eq!(net.server.session_count(), 0);
    assert!(net.server.poll_transmit(net.now).is_none());
}

#[test]
fn every_message_arrives_through_five_percent_loss() {
    let mut net = Net::new(EndpointConfig::default(), EndpointConfig::default());
    let (c, _) = net.connect();
    net.loss = 0.05;
    let flow = net.client.session_mut(c).expect("s").open_flow(b"TC", None);
    let mut rng = StdRng::seed_from_u64(99);
    let mut want = Vec::new();
    for i in 0..300u32 {
        let len = rng.gen_range(1..5000);
        let mut m = i.to_be_bytes().to_vec();
        m.resize(len.max(4), (i % 251) as u8);
        want.push(m.clone());
        net.client
            .session_mut(c)
            .expect("s")
            .send(flow, Bytes::from(m), None);
    }
    let ok = net.run(300_000, |n| {
        Net::messages(&n.server_events, None).len() == 300
    });
    assert!(
        ok,
        "delivered {}: {} / {:?}",
        Net::messages(&net.server_events, None).len(),
        net.client.session(c).expect("s").debug_state(),
        net.server.poll_timeout()
    );
    assert_eq!(Net::messages(&net.server_events, None), want);
    // The sender's queue drains once the last acks arrive.
    assert!(net.run(30_000, |n| n
        .client
        .session(c)
        .is_some_and(|s| s.queued_bytes() == 0)));
}

#[test]
fn late_messages_are_abandoned_and_later_ones_still_arrive() {
    let mut net = Net::new(EndpointConfig::default(), EndpointConfig::default());
    let (c, _) = net.connect();
    let flow = net.client.session_mut(c).expect("s").open_flow(b"TC", None);
    // The link goes dead while the first message is sent; its deadline passes.
    net.loss = 1.0;
    let deadline = net.now + 500;
    net.client
        .session_mut(c)
        .expect("s")
        .send(flow, Bytes::from(vec![1u8; 4000]), Some(deadline));
    net.run(1_000, |_| false);
    net.loss = 0.0;
    net.client
        .session_mut(c)
        .expect("s")
        .send(flow, Bytes::from_static(b"next frame"), None);
    let ok = net.run(20_000, |n| {
        !Net::messages(&n.server_events, None).is_empty()
    });
    assert!(
        ok,
        "{} {:?}",
        net.client.session(c).expect("s").debug_state(),
        net.server_events
    );
    assert_eq!(
        Net::messages(&net.server_events, None),
        vec![b"next frame".to_vec()]
    );
}

#[test]
fn close_and_idle_timeout() {
    let mut net = Net::new(EndpointConfig::default(), EndpointConfig::default());
    let (c, _) = net.connect();
    net.client.session_mut(c).expect("s").close(net.now);
    let both = net.run(10_000, |n| {
        n.client_events
            .iter()
            .any(|e| matches!(e.1, Event::Closed { .. }))
            && n.server_events
                .iter()
                .any(|e| matches!(e.1, Event::Closed { .. }))
    });
    assert!(both);
    net.run(1_000, |_| false);
    assert_eq!(net.server.session_count(), 0);

    // One address may hold a bounded number of sessions; a closed one frees its place.
    let server = EndpointConfig {
        max_sessions_per_ip: 1,
        ..EndpointConfig::default()
    };
    let mut net = Net::new(EndpointConfig::default(), server);
    let (c, _) = net.connect();
    let second = net
        .client
        .connect(net.now, net.saddr, keys::epd_url("rtmfp://127.0.0.1/live"));
    net.run(3_000, |_| false);
    assert_eq!(net.server.session_count(), 1);
    assert!(!net
        .client_events
        .iter()
        .any(|e| e.0 == second && matches!(e.1, Event::Connected { .. })));
    net.client.session_mut(c).expect("s").close(net.now);
    assert!(net
        .run(30_000, |n| n.client_events.iter().any(
            |e| e.0 == second && matches!(e.1, Event::Connected { .. })
        )));

    // A peer that goes silent: keepalive pings, then the session ends.
    let mut net = Net::new(EndpointConfig::default(), EndpointConfig::default());
    net.connect();
    net.loss = 1.0;
    assert!(net.run(200_000, |n| n.server_events.iter().any(|e| e.1
        == Event::Closed {
            reason: "peer silent"
        })));
}

#[test]
fn an_unasked_close_acknowledgement_ends_the_session_at_once() {
    let mut net = Net::new(EndpointConfig::default(), EndpointConfig::default());
    let (c, _) = net.connect();
    net.client.session_mut(c).expect("s").abort();
    // Well inside the idle timeout and the close handshake's retransmissions.
    assert!(net.run(500, |n| n.server_events.iter().any(|e| e.1
        == Event::Closed {
            reason: "peer closed the session abruptly"
        })));
    net.run(1_000, |_| false);
    assert_eq!(net.server.session_count(), 0);
}

#[test]
fn a_session_follows_its_peer_to_a_new_address() {
    let mut net = Net::new(EndpointConfig::default(), EndpointConfig::default());
    let (c, s) = net.connect();
    let flow = net.client.session_mut(c).expect("s").open_flow(b"TC", None);
    net.client
        .session_mut(c)
        .expect("s")
        .send(flow, Bytes::from_static(b"one"), None);
    assert!(net.run(5_000, |n| Net::messages(&n.server_events, None).len() == 1));
    // The client's NAT mapping changes.
    net.caddr = addr("127.0.0.9:41000");
    net.client
        .session_mut(c)
        .expect("s")
        .send(flow, Bytes::from_static(b"two"), None);
    let ok = net.run(10_000, |n| {
        Net::messages(&n.server_events, None).len() == 2
            && n.server_events
                .iter()
                .any(|e| matches!(e.1, Event::AddressChanged { .. }))
    });
    assert!(ok, "{:?}", net.server_events);
    assert_eq!(net.server.session(s).expect("s").peer, net.caddr);
    let back = net
        .server
        .session_mut(s)
        .expect("s")
        .open_flow(b"r", Some(flow));
    net.server
        .session_mut(s)
        .expect("s")
        .send(back, Bytes::from_static(b"reply"), None);
    assert!(net.run(5_000, |n| Net::messages(&n.client_events, None).len() == 1));
}

#[test]
fn an_unknown_peer_id_gets_an_empty_redirect() {
    let mut net = Net::new(EndpointConfig::default(), EndpointConfig::default());
    let c = net
        .client
        .connect(net.now, net.saddr, keys::epd_peer_id(&[0x42; 32]));
    assert!(net.run(5_000, |n| !n.client_events.is_empty()));
    assert_eq!(net.client_events[0], (c, Event::Redirected { to: vec![] }));
    assert_eq!(net.server.session_count(), 0);
}

#[test]
fn netconnection_commands_and_media_travel_as_rtmp_messages_on_flows() {
    use super::flash::StreamFlows;
    use crate::proto::amf0::Amf0Value;
    use crate::proto::rtmp::{csid, msg_type, Message};

    let mut net = Net::new(EndpointConfig::default(), EndpointConfig::default());
    let (c, s) = net.connect();
    let mut client_flows = StreamFlows::default();
    let mut server_flows = StreamFlows::default();
    let connect = Message::command(
        0,
        false,
        &[Amf0Value::string("connect"), Amf0Value::Number(1.0)],
    );
    let video = Message {
        csid: csid::VIDEO,
        timestamp: 40,
        type_id: msg_type::VIDEO,
        stream_id: 1,
        payload: Bytes::from(vec![0x17; 3000]),
    };
    assert!(client_flows.send(net.client.session_mut(c).expect("s"), &connect, None));
    assert!(client_flows.send(
        net.client.session_mut(c).expect("s"),
        &video,
        Some(net.now + 2_000)
    ));
    assert!(net.run(5_000, |n| Net::messages(&n.server_events, None).len() == 2));
    let mut got = Vec::new();
    for (_, e) in &net.server_events {
        match e {
            Event::FlowOpened { flow, metadata, .. } => {
                server_flows
                    .on_flow_opened(*flow, metadata)
                    .expect("a Flash flow");
            }
            Event::Message { flow, data } => {
                got.push(server_flows.on_message(*flow, data).expect("message"))
            }
            _ => {}
        }
    }
    assert_eq!(got, vec![connect, video]);

    let result = Message::command(
        0,
        false,
        &[Amf0Value::string("_result"), Amf0Value::Number(1.0)],
    );
    server_flows.send(net.server.session_mut(s).expect("s"), &result, None);
    assert!(net.run(5_000, |n| Net::messages(&n.client_events, None).len() == 1));
    let mut answer = None;
    for (_, e) in &net.client_events {
        match e {
            Event::FlowOpened {
                flow,
                metadata,
                return_association,
            } => {
                assert!(
                    return_association.is_some(),
                    "the answer names the client's stream 0 flow"
                );
                client_flows
                    .on_flow_opened(*flow, metadata)
                    .expect("a Flash flow");
            }
            Event::Message { flow, data } => {
                answer = Some(client_flows.on_message(*flow, data).expect("message"))
            }
            _ => {}
        }
    }
    assert_eq!(answer, Some(result));
}

#[test]
fn the_server_introduces_a_peer_by_its_peer_id() {
    let mut net = Net::new(EndpointConfig::default(), EndpointConfig::default());
    let (c, s) = net.connect();
    let a_id = net.server.session(s).expect("s").peer_id;
    net.server.session_mut(s).expect("s").announced = vec![addr("192.168.1.5:40000")];
    // A second client asks the server for the first one by peer id.
    let b_addr = addr("127.0.0.3:50000");
    let mut b = Endpoint::new(EndpointConfig {
        seed: 33,
        ..EndpointConfig::default()
    });
    let bid = b.connect(net.now, net.saddr, keys::epd_peer_id(&a_id));
    let ihello = b.poll_transmit(net.now).expect("IHello");
    net.server.handle(net.now, b_addr, &ihello.data);
    // The server answers B with A's addresses...
    let redirect = net.server.poll_transmit(net.now).expect("Redirect");
    assert_eq!(redirect.to, b_addr);
    b.handle(net.now, net.saddr, &redirect.data);
    assert_eq!(
        b.poll_event(),
        Some((
            bid,
            Event::Redirected {
                to: vec![net.caddr, addr("192.168.1.5:40000")]
            }
        ))
    );
    // ... B sends its IHello on to them directly ...
    let direct: Vec<_> = std::iter::from_fn(|| b.poll_transmit(net.now))
        .map(|t| t.to)
        .collect();
    assert_eq!(direct, vec![net.caddr, addr("192.168.1.5:40000")]);
    // ... and A hears of B through its session with the server.
    assert!(net.run(5_000, |n| n
        .client_events
        .iter()
        .any(|e| matches!(e.1, Event::Introduction { .. }))));
    let intro = net.client_events.iter().find_map(|(id, e)| match e {
        Event::Introduction { reply_to, epd, .. } => Some((*id, *reply_to, epd.clone())),
        _ => None,
    });
    assert_eq!(intro, Some((c, b_addr, keys::epd_peer_id(&a_id))));
    // The server's side says whom it introduced to whom (the engine logs it).
    assert!(net
        .server_events
        .iter()
        .any(|e| e.0 == s && e.1 == Event::Introduced { initiator: b_addr }));
    // An IHello for nobody's peer id changes nothing at A.
    let before = net.client_events.len();
    let mut b2 = Endpoint::new(EndpointConfig {
        seed: 44,
        ..EndpointConfig::default()
    });
    b2.connect(net.now, net.saddr, keys::epd_peer_id(&[1; 32]));
    let ihello = b2.poll_transmit(net.now).expect("IHello");
    net.server.handle(net.now, b_addr, &ihello.data);
    net.run(1_000, |_| false);
    assert_eq!(net.client_events.len(), before);
}

#[test]
fn flows_past_the_limit_are_refused_with_a_flow_exception() {
    use super::session::SessionConfig;
    let server = EndpointConfig {
        session: SessionConfig {
            max_recv_flows: 1,
            ..SessionConfig::default()
        },
        ..EndpointConfig::default()
    };
    let mut net = Net::new(EndpointConfig::default(), server);
    let (c, _) = net.connect();
    let first = net.client.session_mut(c).expect("s").open_flow(b"a", None);
    let second = net.client.session_mut(c).expect("s").open_flow(b"b", None);
    net.client
        .session_mut(c)
        .expect("s")
        .send(first, Bytes::from_static(b"1"), None);
    net.client
        .session_mut(c)
        .expect("s")
        .send(second, Bytes::from_static(b"2"), None);
    assert!(net.run(5_000, |n| n
        .client_events
        .iter()
        .any(|e| matches!(e.1, Event::FlowRejected { .. }))));
    assert!(net.client_events.iter().any(|e| e.1
        == Event::FlowRejected {
            flow: second,
            code: super::session::EXCEPTION_REFUSED
        }));
    assert_eq!(Net::messages(&net.server_events, None), vec![b"1".to_vec()]);
    // The refused flow is gone; the other goes on.
    net.client
        .session_mut(c)
        .expect("s")
        .send(first, Bytes::from_static(b"3"), None);
    assert!(!net
        .client
        .session_mut(c)
        .expect("s")
        .send(second, Bytes::from_static(b"4"), None));
    assert!(net.run(5_000, |n| Net::messages(&n.server_events, None).len() == 2));
}

/// One endpoint on the simulated network: its address, itself, the events it gave.
type Node<'a> = (
    SocketAddr,
    &'a mut Endpoint,
    &'a mut Vec<(SessionId, Event)>,
);

/// Three endpoints on one simulated network (no loss), for introductions.
fn route(nodes: &mut [Node<'_>], now: &mut u64, rounds: usize) {
    for _ in 0..rounds {
        let mut wire = Vec::new();
        for (a, e, ev) in nodes.iter_mut() {
            while let Some(t) = e.poll_transmit(*now) {
                wire.push((*a, t.to, t.data));
            }
            while let Some(x) = e.poll_event() {
                ev.push(x);
            }
        }
        *now += 10;
        for (from, to, data) in wire {
            if let Some((_, e, _)) = nodes.iter_mut().find(|(a, _, _)| *a == to) {
                e.handle(*now, from, &data);
            }
        }
        for (_, e, _) in nodes.iter_mut() {
            if e.poll_timeout().is_some_and(|t| t <= *now) {
                e.handle_timeout(*now);
            }
        }
    }
}

#[test]
fn two_clients_introduced_by_the_server_talk_directly() {
    let (sa, aa, ba) = (
        addr("127.0.0.1:1935"),
        addr("127.0.0.2:40000"),
        addr("127.0.0.3:50000"),
    );
    let mut server = Endpoint::new(EndpointConfig {
        accept: true,
        seed: 1,
        ..EndpointConfig::default()
    });
    let mut a = Endpoint::new(EndpointConfig {
        accept_peers: true,
        seed: 2,
        ..EndpointConfig::default()
    });
    let mut b = Endpoint::new(EndpointConfig {
        seed: 3,
        ..EndpointConfig::default()
    });
    let (mut se, mut ae, mut be) = (Vec::new(), Vec::new(), Vec::new());
    let mut now = 1_000_000;
    let url = keys::epd_url("rtmfp://127.0.0.1/live");
    a.connect(now, sa, url.clone());
    b.connect(now, sa, url);
    route(
        &mut [
            (sa, &mut server, &mut se),
            (aa, &mut a, &mut ae),
            (ba, &mut b, &mut be),
        ],
        &mut now,
        20,
    );
    assert_eq!(server.session_count(), 2);
    // The server knows A by its client identity.
    let a_id = *a.identity_id();
    assert!(se
        .iter()
        .any(|e| matches!(e.1, Event::Accepted { peer_id, .. } if peer_id == a_id)));

    // B asks for A by peer id: the server redirects B to A and forwards B's IHello to A,
    // which answers B directly; B keys with A; the server carries none of it after that.
    let p2p = b.connect(now, sa, keys::epd_peer_id(&a_id));
    route(
        &mut [
            (sa, &mut server, &mut se),
            (aa, &mut a, &mut ae),
            (ba, &mut b, &mut be),
        ],
        &mut now,
        30,
    );
    assert!(
        be.contains(&(p2p, Event::Connected { peer_id: a_id })),
        "{be:?}"
    );
    let accepted = ae.iter().find_map(|(id, e)| match e {
        Event::Accepted { addr, .. } if *addr == ba => Some(*id),
        _ => None,
    });
    let a_side = accepted.expect("A accepted B's session");
    assert!(ae
        .iter()
        .any(|e| matches!(e.1, Event::Introduction { reply_to, .. } if reply_to == ba)));

    // Media straight from B to A.
    let flow = b
        .session_mut(p2p)
        .expect("p2p")
        .open_flow(b"TC\x04\x01", None);
    b.session_mut(p2p)
        .expect("p2p")
        .send(flow, Bytes::from_static(b"direct video"), None);
    route(
        &mut [
            (sa, &mut server, &mut se),
            (aa, &mut a, &mut ae),
            (ba, &mut b, &mut be),
        ],
        &mut now,
        10,
    );
    assert!(ae.iter().any(|e| *e
        == (
            a_side,
            Event::Message {
                flow,
                data: b"direct video".to_vec()
            }
        )));
    assert_eq!(b.session(p2p).expect("p2p").peer, aa);
}

#[test]
fn a_bursts_full_packets_are_one_size_for_udp_gso() {
    let mut net = Net::new(EndpointConfig::default(), EndpointConfig::default());
    let (c, _) = net.connect();
    let flow = net.client.session_mut(c).expect("s").open_flow(b"TC", None);
    // Two messages per packet, pairs of 540 and of 550 bytes: both kinds of packet are
    // nearly full, 20 bytes apart, so unpadded they would seal to different lengths.
    let sizes = [540, 540, 550, 550, 540, 540, 550, 550, 540, 540];
    for (i, n) in sizes.iter().enumerate() {
        net.client
            .session_mut(c)
            .expect("s")
            .send(flow, Bytes::from(vec![i as u8; *n]), None);
    }
    let mut burst = Vec::new();
    while let Some(t) = net.client.poll_transmit(net.now) {
        burst.push(t.data.len());
        net.put(net.caddr, t.to, t.data);
    }
    assert!(burst.len() >= 4, "a burst of {} packets", burst.len());
    assert!(
        burst[..burst.len() - 1].iter().all(|l| *l == burst[0])
            && burst[burst.len() - 1] <= burst[0],
        "full packets of one size, the last no longer: {burst:?}"
    );
    // The padding inside the encryption is read as padding: every message arrives whole.
    assert!(
        net.run(10_000, |n| Net::messages(&n.server_events, None).len()
            == sizes.len())
    );
    let got = Net::messages(&net.server_events, None);
    for (i, n) in sizes.iter().enumerate() {
        assert_eq!(got[i], vec![i as u8; *n], "message {i}");
    }
}

#[test]
fn acknowledgements_cover_two_packets_or_wait_for_the_delayed_ack_time() {
    let mut net = Net::new(EndpointConfig::default(), EndpointConfig::default());
    let (c, _) = net.connect();
    let flow = net.client.session_mut(c).expect("s").open_flow(b"TC", None);
    for i in 0..40u8 {
        net.client
            .session_mut(c)
            .expect("s")
            .send(flow, Bytes::from(vec![i; 1000]), None);
    }
    // Packets fed one at a time: every second one is acknowledged at once.
    let sent: Vec<Vec<u8>> = std::iter::from_fn(|| net.client.poll_transmit(net.now))
        .map(|t| t.data)
        .collect();
    assert!(sent.len() >= 4, "{} packets", sent.len());
    for (i, d) in sent.iter().enumerate() {
        net.server.handle(net.now, net.caddr, d);
        let acks = std::iter::from_fn(|| net.server.poll_transmit(net.now)).count();
        assert_eq!(acks, i % 2, "packet {i}");
    }
    assert!(
        net.run(10_000, |n| Net::messages(&n.server_events, None).len()
            == 40)
    );
    net.run(1_000, |_| false);
    // A lone packet is acknowledged after the delayed-ack time, not at once.
    let t0 = net.now;
    net.client
        .session_mut(c)
        .expect("s")
        .send(flow, Bytes::from_static(b"lone"), None);
    let before = net.from_server;
    assert!(net.run(5_000, |n| n.from_server > before));
    assert!(
        net.now - t0 >= 200,
        "acknowledged after {} ms",
        net.now - t0
    );
}

#[test]
fn the_engine_is_told_of_an_ihello_for_a_peer_id_this_endpoint_does_not_hold() {
    let mut server = Endpoint::new(EndpointConfig {
        accept: true,
        ..EndpointConfig::default()
    });
    let to = addr("127.0.0.1:1935");
    let ihello = |epd: Vec<u8>| {
        let mut c = Endpoint::new(EndpointConfig::default());
        c.connect(0, to, epd);
        c.poll_transmit(0).expect("an IHello").data
    };
    let foreign = ihello(keys::epd_peer_id(&[9; 32]));
    assert_eq!(server.foreign_peer_wanted(&foreign), Some([9; 32]));
    let own = *server.peer_id();
    assert_eq!(
        server.foreign_peer_wanted(&ihello(keys::epd_peer_id(&own))),
        None
    );
    assert_eq!(
        server.foreign_peer_wanted(&ihello(keys::epd_url("rtmfp://x/live"))),
        None
    );
    assert_eq!(
        server.foreign_peer_wanted(&foreign[..foreign.len() - 3]),
        None
    );
    assert_eq!(server.foreign_peer_wanted(b"garbage"), None);
    assert_eq!(server.session_count(), 0, "asking keeps no state");
}

/// A live stream as the engine sends it to a viewer (about 2.15 Mbit/s: a 100 KB key
/// frame every 2 s, 25 fps, audio every 23 ms; at most 256 KiB on the flows), over a
/// lossless link of 1 and 20 ms: it arrives with no gap near a stall (500 ms), and the
/// window, used by a trickle, stays near what the stream needs.
#[test]
fn a_live_stream_over_a_clean_link_arrives_without_gaps() {
    for latency in [1u64, 20] {
        let mut net = Net::new(EndpointConfig::default(), EndpointConfig::default());
        net.latency = latency;
        let (_c, s) = net.connect();
        let flow = net.server.session_mut(s).expect("s").open_flow(b"TC", None);
        let start = net.now;
        let mut pending: VecDeque<Bytes> = VecDeque::new();
        let mut next_video = start;
        let mut next_audio = start;
        let mut frame = 0u64;
        let mut arrivals = Vec::new();
        let mut seen = 0;
        while net.now < start + 10_000 {
            while next_video <= net.now {
                let len = if frame.is_multiple_of(50) {
                    100_000
                } else {
                    8_200
                };
                pending.push_back(Bytes::from(vec![9u8; len]));
                frame += 1;
                next_video += 40;
            }
            while next_audio <= net.now {
                pending.push_back(Bytes::from(vec![8u8; 372]));
                next_audio += 23;
            }
            let now = net.now;
            let sess = net.server.session_mut(s).expect("s");
            while sess.queued_bytes() < 256 * 1024 {
                let Some(m) = pending.pop_front() else { break };
                sess.send(flow, m, Some(now + 10_000));
            }
            let until = net.now + 10;
            net.run(10, |n| n.now >= until);
            let got = Net::messages(&net.client_events, None).len();
            for _ in seen..got {
                arrivals.push(net.now);
            }
            seen = got;
        }
        let max = arrivals.windows(2).map(|w| w[1] - w[0]).max();
        let state = net.server.session(s).expect("s").debug_state();
        assert!(arrivals.len() > 650, "{} arrived; {state}", arrivals.len());
        assert!(max.is_some_and(|m| m <= 100), "gap of {max:?} ms; {state}");
    }
}

#[test]
fn a_deferred_iikeying_is_answered_once_when_the_engine_completes_it() {
    let server = EndpointConfig {
        defer_keying: true,
        ..EndpointConfig::default()
    };
    let mut net = Net::new(EndpointConfig::default(), server);
    let epd = keys::epd_url("rtmfp://127.0.0.1/live");
    net.client.connect(net.now, net.saddr, epd);
    assert!(net.run(5_000, |n| n.server.pending_keyings() == 1));
    // The client sends its IIKeying again (at 1 and 2.5 s): it waits once, unanswered.
    let sent = net.from_server;
    net.run(3_000, |_| false);
    assert_eq!(net.server.pending_keyings(), 1);
    assert_eq!(net.server.session_count(), 0);
    assert_eq!(net.from_server, sent, "nothing answered before completion");
    assert!(!net
        .client_events
        .iter()
        .any(|e| matches!(e.1, Event::Connected { .. })));
    assert_eq!(net.server.complete_keyings(net.now, 8), 0);
    assert_eq!(net.server.session_count(), 1);
    assert!(net.run(5_000, |n| n
        .client_events
        .iter()
        .any(|e| matches!(e.1, Event::Connected { .. }))));
    assert_eq!(net.server.session_count(), 1);
}

/// IIKeyings from `n` ports of one address, each with a good cookie and the same key.
fn iikeyings(net: &Net, n: u16) -> Vec<(SocketAddr, Vec<u8>)> {
    let key = super::dh::DhKey::generate(DhGroup::Modp1024, &mut StdRng::seed_from_u64(5));
    let cert = keys::initiator_cert(std::slice::from_ref(&key));
    let skic = Policy::default().initiator_component(&key);
    (0..n)
        .map(|port| {
            let from = SocketAddr::new(net.caddr.ip(), 10_000 + port);
            let cookie = net.server.cookie_for(from, net.now / 1000);
            let mut c = Vec::new();
            super::chunk::encode::iikeying(&mut c, 7, &cookie, &cert, &skic, b"X");
            let mut plain = vec![0x0b, 0, 0];
            plain.extend_from_slice(&c);
            let mut d = Vec::new();
            PacketCrypto::startup().seal(0, &plain, &mut d);
            (from, d)
        })
        .collect()
}

#[test]
fn waiting_iikeyings_are_bounded_and_stale_ones_are_dropped_unanswered() {
    let server = EndpointConfig {
        defer_keying: true,
        max_sessions_per_ip: 2_000,
        ..EndpointConfig::default()
    };
    let mut net = Net::new(EndpointConfig::default(), server);
    let all = iikeyings(&net, 1_025);
    for (from, d) in &all {
        net.server.handle(net.now, *from, d);
    }
    assert_eq!(net.server.pending_keyings(), 1_024);
    assert_eq!(net.server.dropped, 1, "the one past the bound");
    assert!(net.server.poll_transmit(net.now).is_none());
    // One answered now; the rest have waited past the initiators' patience.
    assert_eq!(net.server.complete_keyings(net.now, 1), 1_023);
    assert_eq!(net.server.session_count(), 1);
    assert_eq!(net.server.complete_keyings(net.now + 20_000, 2_000), 0);
    assert_eq!(net.server.session_count(), 1);
    assert_eq!(net.server.dropped, 1_024);
}
