//! Persistent shared objects with the real stratad (issue 11, "What it must show" 2): an
//! object survives a restart, and `kill -9` during a stream of changes leaves it readable
//! at a committed version, several times over.

use dataplane::proto::amf0::Amf0Value;
use dataplane::proto::rtmp::shared_object::{SoEvent, SoMessage};
use e2e::rtmp_client::RtmpClient;
use e2e::scratch_dir::ScratchDir;
use e2e::server::{Server, ServerOptions};
use std::path::Path;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);
const NAME: &str = "scores";

fn start(store: &Path) -> Server {
    Server::start_with(ServerOptions {
        workers: 2,
        config: Some(format!(
            "[shared_objects]\ndir = {:?}\n",
            store.display().to_string()
        )),
        ..ServerOptions::default()
    })
}

fn so(version: u32, events: Vec<SoEvent>) -> SoMessage {
    SoMessage {
        name: NAME.into(),
        version,
        persistent: true,
        events,
    }
}

fn set(key: &str, value: f64) -> SoEvent {
    SoEvent::RequestChange {
        key: key.into(),
        value: Amf0Value::Number(value),
    }
}

/// Connects, uses the object; returns the client and what its use answered.
fn use_object(server: &Server) -> (RtmpClient, SoMessage) {
    let mut c = RtmpClient::open(server.addr()).expect("open");
    c.connect("game", &server.tc_url("game")).expect("connect");
    c.send_shared_object(false, &so(0, vec![SoEvent::Use]))
        .expect("use");
    let m = c.wait_shared_object(NAME, WAIT).expect("use answered");
    assert_eq!(m.events.first(), Some(&SoEvent::UseSuccess), "{m:?}");
    assert!(
        !m.events.contains(&SoEvent::Clear),
        "a persistent object is not cleared on use"
    );
    (c, m)
}

/// The slots a use delivered.
fn slots(m: &SoMessage) -> Vec<(String, Amf0Value)> {
    m.events
        .iter()
        .find_map(|e| match e {
            SoEvent::Change(p) => Some(p.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

/// Waits (bounded) until the store holds a file for an object, then a little longer for
/// the writer thread to catch up with the last change.
fn wait_stored(store: &Path) {
    let deadline = Instant::now() + WAIT;
    let has_file = |dir: &Path| {
        walk(dir)
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "so"))
    };
    while !has_file(store) {
        assert!(Instant::now() < deadline, "nothing stored in {store:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn a_persistent_object_survives_a_restart() {
    let store = ScratchDir::new("so-store");
    let mut server = start(store.path());
    let (mut c, first) = use_object(&server);
    assert_eq!(first.version, 0);
    c.send_shared_object(false, &so(0, vec![set("alice", 3.0), set("bob", 5.0)]))
        .expect("change");
    let ok = c.wait_shared_object(NAME, WAIT).expect("success");
    assert_eq!(ok.version, 1);
    // A clean stop stores what is queued: no wait for the writer.
    server.signal(libc::SIGTERM);
    server.wait_exit(WAIT).expect("stratad stopped");

    let server = start(store.path());
    let (_c, m) = use_object(&server);
    assert_eq!(m.version, 1);
    assert_eq!(
        slots(&m),
        [
            ("alice".to_string(), Amf0Value::Number(3.0)),
            ("bob".to_string(), Amf0Value::Number(5.0))
        ]
    );
}

#[test]
fn kill_9_during_a_stream_of_changes_leaves_a_committed_version_every_time() {
    let store = ScratchDir::new("so-kill");
    let mut recovered = 0;
    for round in 0..4 {
        let mut server = start(store.path());
        let (mut c, m) = use_object(&server);
        // What the last kill left: a whole, consistent version (n was set to version - 1
        // by the change that made each version), never older than what the last round
        // recovered.
        let version = m.version;
        assert!(
            version >= recovered,
            "round {round}: {version} < {recovered}"
        );
        if version > 0 {
            assert_eq!(
                slots(&m),
                [("n".to_string(), Amf0Value::Number(f64::from(version - 1)))],
                "round {round}"
            );
        }
        recovered = version;
        // A stream of changes, each on the version the last success gave; killed midway.
        let mut v = version;
        for i in 0..60 {
            c.send_shared_object(false, &so(v, vec![set("n", f64::from(v))]))
                .expect("change");
            let ok = c.wait_shared_object(NAME, WAIT).expect("success");
            assert_eq!(ok.events, [SoEvent::Success("n".into())]);
            v = ok.version;
            if i == 5 {
                wait_stored(store.path());
            }
            if i == 20 + round * 10 {
                server.signal(libc::SIGKILL);
                break;
            }
        }
        server.wait_exit(WAIT).expect("stratad killed");
    }
    assert!(recovered > 0, "some version was committed");
}
