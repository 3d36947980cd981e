//! Remote shared objects with the real stratad on two workers (issue 11, "What it must
//! show" 1 and 5): clients on different workers share one object through its instance's
//! owner, in order and with versions; a late joiner gets the whole object; send reaches
//! every user; a malformed message closes only the client that sent it.

use control::client::ControlClient;
use control::protocol::{Call, Reply};
use dataplane::proto::amf0::Amf0Value;
use dataplane::proto::rtmp::shared_object::{SoEvent, SoMessage};
use dataplane::proto::rtmp::{csid, msg_type, Message};
use e2e::rtmp_client::RtmpClient;
use e2e::scratch_dir::ScratchDir;
use e2e::server::{Server, ServerOptions};
use std::path::{Path, PathBuf};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);
const NAME: &str = "chat";

fn server(dir: &ScratchDir) -> (Server, PathBuf) {
    let socket = dir.join("stratad.sock");
    let config = format!("[control]\nsocket = {:?}\n", socket.display().to_string());
    let server = Server::start_with(ServerOptions {
        workers: 2,
        config: Some(config),
        ..ServerOptions::default()
    });
    (server, socket)
}

/// The worker each connected client of ours landed on, by its address.
fn worker_of(socket: &Path, client: &RtmpClient) -> Option<usize> {
    let reply = ControlClient::connect(socket)
        .and_then(|mut c| c.request(Call::Clients))
        .unwrap_or_else(|e| panic!("control call: {e}"));
    let Reply::Clients { clients } = reply else {
        panic!("clients answered {reply:?}")
    };
    let addr = client.local_addr().to_string();
    clients.iter().find(|c| c.addr == addr).map(|c| c.worker)
}

fn connected(server: &Server) -> RtmpClient {
    let mut c = RtmpClient::open(server.addr()).expect("open");
    c.connect("room", &server.tc_url("room")).expect("connect");
    c
}

/// Two clients of app `room` on different workers (SO_REUSEPORT spreads connections by
/// their ports, so a few tries find one on each).
fn on_two_workers(server: &Server, socket: &Path) -> (RtmpClient, RtmpClient) {
    let mut by_worker: [Option<RtmpClient>; 2] = [None, None];
    for _ in 0..32 {
        let c = connected(server);
        let w = worker_of(socket, &c).expect("listed");
        if by_worker[w].is_none() {
            by_worker[w] = Some(c);
        }
        if by_worker.iter().all(Option::is_some) {
            let [a, b] = by_worker;
            return (a.expect("a"), b.expect("b"));
        }
    }
    panic!("32 connections all landed on one worker");
}

/// A client that connects as Flash Player does with `objectEncoding = 3` (AMF3): connect
/// itself is AMF0, the command object says 3.
fn connected_amf3(server: &Server) -> RtmpClient {
    let mut c = RtmpClient::open(server.addr()).expect("open");
    let object = Amf0Value::object([
        ("app", Amf0Value::string("room")),
        ("tcUrl", Amf0Value::string(server.tc_url("room"))),
        ("flashVer", Amf0Value::string("LNX 11,2,202,235")),
        ("objectEncoding", Amf0Value::Number(3.0)),
    ]);
    let tx = c.send_command(0, "connect", object, &[]).expect("connect");
    let reply = c.wait_reply(tx, WAIT).expect("connect answered");
    assert_eq!(reply.name, "_result", "{reply:?}");
    c
}

/// An AMF0 client and an AMF3 (objectEncoding 3) client on different workers.
fn amf0_and_amf3_on_two_workers(server: &Server, socket: &Path) -> (RtmpClient, RtmpClient) {
    for _ in 0..32 {
        let a = connected(server);
        let b = connected_amf3(server);
        if worker_of(socket, &a) != worker_of(socket, &b) {
            return (a, b);
        }
    }
    panic!("32 pairs of connections all landed on one worker each");
}

fn so(version: u32, events: Vec<SoEvent>) -> SoMessage {
    SoMessage {
        name: NAME.into(),
        version,
        persistent: false,
        events,
    }
}

fn set(key: &str, value: f64) -> SoEvent {
    SoEvent::RequestChange {
        key: key.into(),
        value: Amf0Value::Number(value),
    }
}

fn change(pairs: &[(&str, f64)]) -> SoEvent {
    SoEvent::Change(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Amf0Value::Number(*v)))
            .collect(),
    )
}

fn next(c: &mut RtmpClient) -> SoMessage {
    c.wait_shared_object(NAME, WAIT)
        .expect("a shared object message")
}

#[test]
fn clients_on_two_workers_share_one_object_in_order_with_versions() {
    let dir = ScratchDir::new("so");
    let (mut server, socket) = server(&dir);
    let (mut a, mut b) = amf0_and_amf3_on_two_workers(&server, &socket);
    // a speaks AMF0 (type 19); b connected with objectEncoding 3 and speaks type 16, as
    // Flash Player then does: each is answered in its own framing.
    a.send_shared_object(false, &so(0, vec![SoEvent::Use]))
        .expect("use");
    assert_eq!(
        next(&mut a),
        so(0, vec![SoEvent::UseSuccess, SoEvent::Clear])
    );
    b.send_shared_object(true, &so(0, vec![SoEvent::Use]))
        .expect("use");
    assert_eq!(
        next(&mut b),
        so(0, vec![SoEvent::UseSuccess, SoEvent::Clear])
    );

    // a's change: a gets success, b the change, both at version 1.
    a.send_shared_object(false, &so(0, vec![set("x", 1.0)]))
        .expect("change");
    assert_eq!(next(&mut a), so(1, vec![SoEvent::Success("x".into())]));
    assert_eq!(next(&mut b), so(1, vec![change(&[("x", 1.0)])]));

    // b's batch of two: one version.
    b.send_shared_object(true, &so(1, vec![set("x", 2.0), set("y", 3.0)]))
        .expect("change");
    assert_eq!(
        next(&mut b),
        so(
            2,
            vec![SoEvent::Success("x".into()), SoEvent::Success("y".into())]
        )
    );
    assert_eq!(next(&mut a), so(2, vec![change(&[("x", 2.0), ("y", 3.0)])]));

    // A stream of changes arrives in the order made, one version each.
    for i in 0..20 {
        a.send_shared_object(false, &so(2 + i, vec![set("n", f64::from(i))]))
            .expect("change");
    }
    for i in 0..20 {
        assert_eq!(
            next(&mut b),
            so(3 + i, vec![change(&[("n", f64::from(i))])])
        );
        assert_eq!(next(&mut a), so(3 + i, vec![SoEvent::Success("n".into())]));
    }

    // A late joiner gets the whole object at once.
    let mut c = connected(&server);
    c.send_shared_object(false, &so(0, vec![SoEvent::Use]))
        .expect("use");
    assert_eq!(
        next(&mut c),
        so(
            22,
            vec![
                SoEvent::UseSuccess,
                SoEvent::Clear,
                change(&[("n", 19.0), ("x", 2.0), ("y", 3.0)])
            ]
        )
    );

    // send reaches every user, the sender included.
    let say = SoEvent::SendMessage {
        handler: "say".into(),
        args: vec![Amf0Value::string("hello")],
    };
    b.send_shared_object(true, &so(22, vec![say.clone()]))
        .expect("send");
    for client in [&mut a, &mut b, &mut c] {
        assert_eq!(next(client), so(22, vec![say.clone()]));
    }

    // A removal reaches the others.
    b.send_shared_object(true, &so(22, vec![SoEvent::RequestRemove("y".into())]))
        .expect("remove");
    assert_eq!(next(&mut b), so(23, vec![SoEvent::Success("y".into())]));
    assert_eq!(next(&mut a), so(23, vec![SoEvent::Remove("y".into())]));
    assert_eq!(next(&mut c), so(23, vec![SoEvent::Remove("y".into())]));

    // Concurrent changes of one slot based on one version: the first to reach the owner
    // wins; the other gets a change with the winning value (onSync "reject").
    a.send_shared_object(false, &so(23, vec![set("w", 1.0)]))
        .expect("change");
    b.send_shared_object(true, &so(23, vec![set("w", 2.0)]))
        .expect("change");
    let (from_a, from_b) = (next(&mut a), next(&mut b));
    let winner = match (&from_a.events[..], &from_b.events[..]) {
        ([SoEvent::Success(_)], [SoEvent::Change(p)]) => {
            assert_eq!(p, &[("w".to_string(), Amf0Value::Number(1.0))]);
            1.0
        }
        ([SoEvent::Change(p)], [SoEvent::Success(_)]) => {
            assert_eq!(p, &[("w".to_string(), Amf0Value::Number(2.0))]);
            2.0
        }
        other => panic!("one success and one reject expected: {other:?}"),
    };
    assert_eq!(next(&mut c), so(24, vec![change(&[("w", winner)])]));
    // The loser also got the winner's change as every other user did (before or after its
    // reject, depending on which of the two the owner saw first).
    let loser = if winner == 1.0 { &mut b } else { &mut a };
    assert_eq!(next(loser), so(24, vec![change(&[("w", winner)])]));

    // An AMF3 value (0x11 in the type-16 message) reaches every user as it was sent.
    let list = Amf0Value::Amf3(dataplane::proto::amf3::Amf3Value::Array {
        associative: vec![],
        dense: vec![
            dataplane::proto::amf3::Amf3Value::Integer(7),
            dataplane::proto::amf3::Amf3Value::String("seven".into()),
        ],
    });
    b.send_shared_object(
        true,
        &so(
            24,
            vec![SoEvent::RequestChange {
                key: "list".into(),
                value: list.clone(),
            }],
        ),
    )
    .expect("change");
    assert_eq!(next(&mut b), so(25, vec![SoEvent::Success("list".into())]));
    let with_list = so(25, vec![SoEvent::Change(vec![("list".into(), list)])]);
    assert_eq!(next(&mut a), with_list);
    assert_eq!(next(&mut c), with_list);
    server.assert_alive();
}

#[test]
fn a_malformed_shared_object_message_closes_only_its_sender() {
    let dir = ScratchDir::new("so-bad");
    let (server, socket) = server(&dir);
    let (mut a, mut b) = on_two_workers(&server, &socket);
    for c in [&mut a, &mut b] {
        c.send_shared_object(false, &so(0, vec![SoEvent::Use]))
            .expect("use");
        next(c);
    }
    let header = so(0, vec![]).encode(false);
    let bad_bodies: Vec<Vec<u8>> = vec![
        // Unknown event type 12.
        [&header[..], &[12, 0, 0, 0, 0]].concat(),
        // An event longer than the message.
        [&header[..], &[3, 0, 0, 1, 0, 0, 1, b'k']].concat(),
        // A huge count of tiny events.
        [&header[..], &[1, 0, 0, 0, 0].repeat(5000)].concat(),
        // Deep AMF in a change request.
        {
            let mut data = vec![0, 1, b'k'];
            for _ in 0..5000 {
                data.extend_from_slice(&[0x0a, 0, 0, 0, 1]);
            }
            data.push(0x05);
            let mut m = header.clone();
            m.push(3);
            m.extend_from_slice(&(data.len() as u32).to_be_bytes());
            m.extend_from_slice(&data);
            m
        },
    ];
    for body in bad_bodies {
        let mut bad = connected(&server);
        bad.send_shared_object(false, &so(0, vec![SoEvent::Use]))
            .expect("use");
        next(&mut bad);
        let peer = bad.local_addr();
        bad.send(&Message {
            csid: csid::COMMAND,
            timestamp: 0,
            type_id: msg_type::SHARED_OBJECT_AMF0,
            stream_id: 0,
            payload: body.into(),
        })
        .expect("sent");
        bad.wait_closed(WAIT).expect("the bad client is closed");
        server.assert_closed_with_reason(peer, &["shared object message"]);
        // The others go on.
        a.send_shared_object(false, &so(0, vec![set("k", 1.0)]))
            .expect("change");
        assert!(matches!(&next(&mut a).events[..], [SoEvent::Success(_)]));
        assert!(matches!(&next(&mut b).events[..], [SoEvent::Change(_)]));
    }
}

fn so_call(socket: &Path, call: control::protocol::SoCall) -> Result<Reply, String> {
    ControlClient::connect(socket)
        .and_then(|mut c| c.request(Call::So(call)))
        .map_err(|e| e.to_string())
}

#[test]
fn an_operators_change_reaches_users_on_every_worker_at_once() {
    use control::protocol::SoCall;
    let dir = ScratchDir::new("so-op");
    let (server, socket) = server(&dir);
    let mut events = ControlClient::connect(&socket).expect("control");
    events.request(Call::Subscribe).expect("subscribe");
    let (mut a, mut b) = on_two_workers(&server, &socket);
    for c in [&mut a, &mut b] {
        c.send_shared_object(false, &so(0, vec![SoEvent::Use]))
            .expect("use");
        next(c);
    }
    // Each use is an event naming the object.
    let mut uses = 0;
    let deadline = std::time::Instant::now() + WAIT;
    while uses < 2 && std::time::Instant::now() < deadline {
        if let Ok(Some((_, control::client::Unsolicited::Event(e)))) =
            events.next_unsolicited(Duration::from_millis(200))
        {
            if e.event == "so_use" {
                assert_eq!(e.stream.as_deref(), Some(NAME));
                uses += 1;
            }
        }
    }
    assert_eq!(uses, 2, "an so_use event per use");
    so_call(
        &socket,
        SoCall::Set {
            app: "room".into(),
            instance: "_definst_".into(),
            name: NAME.into(),
            slot: "topic".into(),
            value: serde_json::json!({"title": "rust", "n": [1, 2]}),
        },
    )
    .expect("set");
    let expected = so(
        1,
        vec![SoEvent::Change(vec![(
            "topic".into(),
            Amf0Value::object([
                (
                    "n",
                    Amf0Value::StrictArray(vec![Amf0Value::Number(1.0), Amf0Value::Number(2.0)]),
                ),
                ("title", Amf0Value::string("rust")),
            ]),
        )])],
    );
    assert_eq!(next(&mut a), expected);
    assert_eq!(next(&mut b), expected);

    let got = so_call(
        &socket,
        SoCall::Get {
            app: "room".into(),
            instance: "_definst_".into(),
            name: NAME.into(),
        },
    )
    .expect("get");
    let Reply::SharedObjects { shared_objects } = got else {
        panic!("get answered {got:?}")
    };
    assert_eq!(shared_objects[0].users, 2);
    assert_eq!(shared_objects[0].version, 1);
    assert_eq!(
        shared_objects[0].slots,
        Some(serde_json::json!({"topic": {"title": "rust", "n": [1.0, 2.0]}}))
    );

    so_call(
        &socket,
        SoCall::Delete {
            app: "room".into(),
            instance: "_definst_".into(),
            name: NAME.into(),
            slot: None,
        },
    )
    .expect("clear");
    assert_eq!(next(&mut a), so(2, vec![SoEvent::Clear]));
    assert_eq!(next(&mut b), so(2, vec![SoEvent::Clear]));
    assert!(so_call(
        &socket,
        SoCall::Get {
            app: "room".into(),
            instance: "_definst_".into(),
            name: "nothing".into(),
        },
    )
    .is_err());
}

#[test]
fn an_oversized_object_or_a_change_flood_is_refused_to_that_client_only() {
    let dir = ScratchDir::new("so-limits");
    let socket = dir.join("stratad.sock");
    let config = format!(
        "[control]\nsocket = {:?}\n[shared_objects]\nmax_bytes = 200\nmax_changes_per_sec = 20\n",
        socket.display().to_string()
    );
    let mut server = Server::start_with(ServerOptions {
        workers: 2,
        config: Some(config),
        ..ServerOptions::default()
    });
    let (mut a, mut b) = on_two_workers(&server, &socket);
    for c in [&mut a, &mut b] {
        c.send_shared_object(false, &so(0, vec![SoEvent::Use]))
            .expect("use");
        next(c);
    }
    // Too large for the object: a gets the slot's (absent) value back and a status.
    let big = SoEvent::RequestChange {
        key: "big".into(),
        value: Amf0Value::string("x".repeat(500)),
    };
    a.send_shared_object(false, &so(0, vec![big]))
        .expect("change");
    let refused = next(&mut a);
    assert_eq!(refused.version, 0, "nothing changed");
    assert_eq!(refused.events[0], SoEvent::Remove("big".into()));
    assert!(matches!(
        &refused.events[1],
        SoEvent::Status { code, level } if code == "SharedObject.LimitExceeded" && level == "error"
    ));
    assert!(server
        .wait_log_line(&["shared object", "over the limit"], WAIT)
        .is_some());

    // A flood of changes: the first 20 pass, the rest are refused, the connection stays.
    for i in 0..40 {
        a.send_shared_object(false, &so(i, vec![set("n", f64::from(i))]))
            .expect("change");
    }
    let mut refusals = 0;
    for _ in 0..40 {
        if next(&mut a)
            .events
            .iter()
            .any(|e| matches!(e, SoEvent::Status { .. }))
        {
            refusals += 1;
        }
    }
    assert!(refusals >= 10, "{refusals} refusals of 40 changes at 20/s");
    // b saw only what was applied, and both stay connected and working.
    b.send_shared_object(
        true,
        &so(
            0,
            vec![SoEvent::SendMessage {
                handler: "ping".into(),
                args: vec![],
            }],
        ),
    )
    .expect("send");
    let ping = |m: &SoMessage| matches!(&m.events[..], [SoEvent::SendMessage { handler, .. }] if handler == "ping");
    for c in [&mut a, &mut b] {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            assert!(std::time::Instant::now() < deadline, "ping did not arrive");
            if ping(&next(c)) {
                break;
            }
        }
    }
    server.assert_alive();
}
