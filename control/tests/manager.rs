//! `stratactl serve`'s manager in process, against a fake stratad: reconnection, the admin
//! API, /metrics, auth hooks, and hostile lines from the server.

mod common;

use common::{dead_url, wait_for, FakeStratad, HookServer, Scratch};
use control::manager::{Manager, ManagerOptions};
use control::manager_config::{Decision, HookConfig, ReconnectConfig};
use control::protocol::Call;
use std::path::Path;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(5);

fn options(socket: &Path, hooks: HookConfig) -> ManagerOptions {
    ManagerOptions {
        socket: socket.to_path_buf(),
        http: "127.0.0.1:0".into(),
        hooks,
        reconnect: ReconnectConfig {
            initial_ms: 20,
            max_ms: 200,
        },
    }
}

fn start(socket: &Path, hooks: HookConfig) -> Manager {
    Manager::start(options(socket, hooks)).expect("manager starts")
}

fn http(m: &Manager, method: &str, path: &str) -> (u16, String) {
    let agent = ureq::AgentBuilder::new().timeout(WAIT).build();
    let url = format!("http://{}{path}", m.http_addr());
    match agent.request(method, &url).call() {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => panic!("{method} {path}: {e}"),
    }
}

fn wait_connected(m: &Manager) {
    wait_for(WAIT, || m.connected().then_some(())).expect("manager connects to stratad");
}

/// Waits until the fake has seen `n` subscribe calls (and, when `auth`, `n` auth_register
/// calls): only then do broadcast lines reach the manager.
fn wait_registered(fake: &FakeStratad, n: usize, auth: bool) {
    wait_for(WAIT, || {
        let asked = fake.seen(|s| {
            let count = |want: &Call| s.calls.iter().filter(|c| *c == want).count();
            count(&Call::Subscribe) >= n && (!auth || count(&Call::AuthRegister) >= n)
        });
        // The fake records a call when it reads it and takes the connection as a
        // subscriber only after answering: an event broadcast in between reaches no one.
        (asked && fake.subscribers() >= n).then_some(())
    })
    .expect("manager subscribes (and registers for auth)");
}

#[test]
fn connects_when_stratad_appears_later_and_after_a_restart() {
    let dir = Scratch::new("mgr-reconnect");
    let socket = dir.join("s.sock");
    let m = start(&socket, HookConfig::default());
    std::thread::sleep(Duration::from_millis(400)); // several attempts against nothing
    assert!(!m.connected());
    assert_eq!(m.counters().reconnects, 0);
    let (code, _) = http(&m, "GET", "/api/v1/status");
    assert_eq!(code, 503, "no stratad: the API says unavailable");

    let fake = FakeStratad::start(&socket);
    wait_connected(&m);
    wait_for(WAIT, || (fake.subscribers() == 1).then_some(())).expect("subscribed");

    drop(fake);
    wait_for(WAIT, || (!m.connected()).then_some(())).expect("notices the loss");
    let fake = FakeStratad::start(&socket);
    wait_connected(&m);
    wait_for(WAIT, || (fake.subscribers() == 1).then_some(())).expect("subscribed again");
    assert_eq!(m.counters().reconnects, 2);
    m.shutdown();
}

#[test]
fn admin_api_maps_to_control_calls() {
    let dir = Scratch::new("mgr-api");
    let fake = FakeStratad::start(&dir.join("s.sock"));
    let m = start(&fake.path, HookConfig::default());

    let (code, body) = http(&m, "GET", "/api/v1/status");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["pid"], 4242);

    let (code, body) = http(&m, "GET", "/api/v1/streams");
    assert_eq!(code, 200);
    assert!(body.contains("\"viewers\":3"), "{body}");
    assert_eq!(http(&m, "GET", "/api/v1/clients").0, 200);

    let (code, body) = http(&m, "POST", "/api/v1/kick/2");
    assert_eq!(code, 200, "{body}");
    assert_eq!(http(&m, "POST", "/api/v1/kick/77").0, 404);
    assert_eq!(http(&m, "POST", "/api/v1/kick/abc").0, 400);
    assert_eq!(http(&m, "GET", "/api/v1/kick/2").0, 405);
    assert_eq!(
        http(&m, "POST", "/api/v1/stop/live%2F_definst_%2Fcam1").0,
        200
    );
    assert_eq!(http(&m, "POST", "/api/v1/reload").0, 200);
    assert_eq!(http(&m, "GET", "/api/v1/nothing").0, 404);
    assert_eq!(http(&m, "GET", "/elsewhere").0, 404);

    fake.seen(|s| {
        assert!(s.calls.contains(&Call::Kick { client: 2 }));
        assert!(s.calls.contains(&Call::StopStream {
            stream: "live/_definst_/cam1".into()
        }));
        assert!(s.calls.contains(&Call::Reload));
    });
    m.shutdown();
}

#[test]
fn admin_api_lists_vod_files() {
    let dir = Scratch::new("mgr-vod");
    let fake = FakeStratad::start(&dir.join("s.sock"));
    let m = start(&fake.path, HookConfig::default());
    let (code, body) = http(&m, "GET", "/api/v1/vod");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["vod_files"].as_array().map(Vec::len), Some(3), "{body}");
    assert_eq!(v["vod_files"][1]["name"], "mp4:dir/talk.mp4");
    let (code, body) = http(&m, "GET", "/api/v1/vod/vod%2Froom1");
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("\"name\":\"rec\"") && !body.contains("clip"),
        "{body}"
    );
    assert_eq!(http(&m, "POST", "/api/v1/vod").0, 405);
    fake.seen(|s| {
        assert!(s.calls.contains(&Call::Vod {
            app: Some("vod".into()),
            instance: Some("room1".into())
        }));
    });
    m.shutdown();
}

#[test]
fn metrics_parse_as_prometheus_text_with_viewers_per_stream() {
    let dir = Scratch::new("mgr-metrics");
    let fake = FakeStratad::start(&dir.join("s.sock"));
    let m = start(&fake.path, HookConfig::default());
    wait_registered(&fake, 1, false);
    fake.broadcast(br#"{"event":"connect","ts":1.0,"client":9,"addr":"127.0.0.1:9"}"#);
    wait_for(WAIT, || (!m.counters().events.is_empty()).then_some(())).expect("event counted");

    let (code, body) = http(&m, "GET", "/metrics");
    assert_eq!(code, 200);
    // Every non-comment line is `name{labels} value`.
    for line in body
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line.rsplit_once(' ').expect(line);
        assert!(value.parse::<f64>().is_ok(), "{line}");
        let name = series.split('{').next().expect(line);
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{line}"
        );
        if let Some(labels) = series.strip_prefix(name) {
            assert!(
                labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
                "{line}"
            );
        }
    }
    let samples = control::metrics::parse(&body).expect("well-formed exposition");
    let find = |name: &str, label: Option<(&str, &str)>| {
        samples
            .iter()
            .find(|(n, l, _)| {
                n == name && label.is_none_or(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, _, v)| *v)
    };
    assert_eq!(find("strata_up", None), Some(1.0));
    assert_eq!(
        find("strata_stream_viewers", Some(("stream", "cam1"))),
        Some(3.0)
    );
    assert_eq!(
        find("strata_stream_viewers", Some(("app", "live"))),
        Some(3.0)
    );
    assert_eq!(find("strata_connections", None), Some(4.0));
    assert_eq!(find("strata_bytes_out_total", None), Some(12_000.0));
    assert_eq!(find("strata_dropped_frames_total", None), Some(7.0));
    assert_eq!(find("strata_worker_load", Some(("worker", "1"))), Some(0.5));
    assert_eq!(
        find("strata_worker_connections", Some(("worker", "0"))),
        Some(3.0)
    );
    assert_eq!(
        find("strata_manager_events_total", Some(("event", "connect"))),
        Some(1.0)
    );
    // The standing FCAddChild links, beside the pulls' groups: server2 registered with two
    // streams listed, server1 waiting.
    let link = |name: &str, group: &str| {
        samples
            .iter()
            .find(|(n, l, _)| {
                n == name
                    && l.iter().any(|(k, v)| k == "stream" && v == "*")
                    && l.iter().any(|(k, v)| k == "group" && v == group)
            })
            .map(|(_, _, v)| *v)
    };
    assert_eq!(link("strata_upstream_listed_streams", "server2"), Some(2.0));
    assert_eq!(link("strata_upstream_active", "server2"), Some(1.0));
    assert_eq!(link("strata_upstream_active", "server1"), Some(0.0));
    assert_eq!(
        find("strata_upstream_active", Some(("stream", "cam"))),
        Some(0.0)
    );

    drop(fake);
    wait_for(WAIT, || (!m.connected()).then_some(())).expect("notices the loss");
    let (code, body) = http(&m, "GET", "/metrics");
    assert_eq!(code, 200);
    let samples = control::metrics::parse(&body).expect("well-formed without stratad");
    assert!(samples.contains(&("strata_up".into(), vec![], 0.0)));
    m.shutdown();
}

fn hooks(url: &str, default: Decision, timeout_ms: u64) -> HookConfig {
    HookConfig {
        on_publish: Some(url.into()),
        on_play: Some(url.into()),
        timeout_ms,
        default,
        ..HookConfig::default()
    }
}

#[test]
fn hooks_allow_one_key_and_deny_another() {
    let dir = Scratch::new("mgr-hooks");
    let hook = HookServer::start(Duration::from_secs(3));
    let fake = FakeStratad::start(&dir.join("s.sock"));
    let m = start(&fake.path, hooks(&hook.url, Decision::Allow, 2000));
    wait_registered(&fake, 1, true);

    fake.send_auth(1, "publish", "cam1", "key=good");
    fake.send_auth(2, "publish", "cam2", "key=bad");
    fake.send_auth(3, "play", "cam1", "key=good");
    assert_eq!(fake.auth_reply(1, WAIT), Some(true));
    assert_eq!(fake.auth_reply(2, WAIT), Some(false));
    assert_eq!(fake.auth_reply(3, WAIT), Some(true));

    let bodies = hook.bodies.lock().expect("bodies").clone();
    let publish = bodies
        .iter()
        .find(|b| b.contains("name=cam2"))
        .expect("hook called");
    for field in [
        "call=publish",
        "app=live",
        "addr=127.0.0.1",
        "clientid=2",
        "key=bad",
        "tcurl=rtmp",
    ] {
        assert!(publish.contains(field), "{field} in {publish}");
    }
    m.shutdown();
}

#[test]
fn a_dead_hook_server_gets_the_configured_default() {
    let dir = Scratch::new("mgr-dead");
    let fake = FakeStratad::start(&dir.join("s.sock"));
    for (n, (default, expected)) in [(Decision::Deny, false), (Decision::Allow, true)]
        .into_iter()
        .enumerate()
    {
        let m = start(&fake.path, hooks(&dead_url(), default, 1000));
        wait_registered(&fake, n + 1, true);
        let id = if expected { 11 } else { 10 };
        fake.send_auth(id, "publish", "cam1", "key=good");
        assert_eq!(
            fake.auth_reply(id, WAIT),
            Some(expected),
            "default {default:?}"
        );
        assert_eq!(m.counters().auth_defaulted, 1);
        m.shutdown();
    }
}

#[test]
fn a_slow_hook_times_out_to_the_default_without_blocking_others() {
    let dir = Scratch::new("mgr-slow");
    let hook = HookServer::start(Duration::from_secs(3));
    let fake = FakeStratad::start(&dir.join("s.sock"));
    let m = start(&fake.path, hooks(&hook.url, Decision::Deny, 400));
    wait_registered(&fake, 1, true);
    let sent = Instant::now();
    fake.send_auth(20, "publish", "cam1", "key=slow");
    fake.send_auth(21, "publish", "cam2", "key=good");
    assert_eq!(
        fake.auth_reply(21, WAIT),
        Some(true),
        "the quick hook is not held up"
    );
    assert!(
        fake.seen(|s| !s.auth_replies.iter().any(|(r, _)| *r == 20)),
        "the slow one answers after the quick one"
    );
    assert_eq!(
        fake.auth_reply(20, WAIT),
        Some(false),
        "timeout applies the default (deny)"
    );
    let took = sent.elapsed();
    assert!(
        took < Duration::from_millis(1500),
        "answered at the timeout, not the hook: {took:?}"
    );
    m.shutdown();
}

#[test]
fn malformed_lines_from_stratad_do_not_crash_the_manager() {
    let dir = Scratch::new("mgr-garbage");
    let hook = HookServer::start(Duration::from_secs(1));
    let fake = FakeStratad::start(&dir.join("s.sock"));
    let m = start(&fake.path, hooks(&hook.url, Decision::Deny, 2000));
    wait_registered(&fake, 1, true);
    for garbage in [
        &b"not json"[..],
        b"{}",
        b"[1,2,3]",
        b"{\"auth\":{\"request\":\"x\"}}",
        b"{\"event\":5}",
        b"\xff\xfe\xfd",
        b"",
        b"{\"id\":999999,\"result\":{\"done\":true}}",
    ] {
        fake.broadcast(garbage);
    }
    fake.send_auth(30, "publish", "cam1", "key=good");
    assert_eq!(
        fake.auth_reply(30, WAIT),
        Some(true),
        "still answering after garbage"
    );
    assert!(m.connected());
    assert_eq!(
        m.counters().reconnects,
        1,
        "garbage does not cost the connection"
    );

    // A line past the protocol's bound is a broken peer: drop it and reconnect.
    let long = vec![b'x'; control::protocol::MAX_LINE + 10];
    fake.broadcast(&long);
    wait_for(WAIT, || (m.counters().reconnects == 2).then_some(())).expect("reconnects");
    m.shutdown();
}

#[test]
fn shared_object_routes_map_to_so_calls() {
    use control::protocol::SoCall;
    let dir = Scratch::new("mgr-so");
    let fake = FakeStratad::start(&dir.join("s.sock"));
    let m = start(&fake.path, HookConfig::default());
    let agent = ureq::AgentBuilder::new().timeout(WAIT).build();
    let url = |p: &str| format!("http://{}{p}", m.http_addr());

    let (code, body) = http(&m, "GET", "/api/v1/so/live/room%2F1/chat");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"topic\":\"rust\""), "{body}");
    assert_eq!(http(&m, "GET", "/api/v1/so/live/_definst_").0, 200);
    let put = agent
        .put(&url("/api/v1/so/live/_definst_/chat/n"))
        .send_string("{\"a\": [1, 2]}")
        .expect("put");
    assert_eq!(put.status(), 200);
    let bad = agent
        .put(&url("/api/v1/so/live/_definst_/chat/n"))
        .send_string("not json");
    assert!(matches!(bad, Err(ureq::Error::Status(400, _))));
    assert_eq!(
        http(&m, "DELETE", "/api/v1/so/live/_definst_/chat/n").0,
        200
    );
    assert_eq!(http(&m, "DELETE", "/api/v1/so/live/_definst_/chat").0, 200);
    assert_eq!(http(&m, "POST", "/api/v1/so/live/_definst_/chat").0, 405);
    assert_eq!(http(&m, "GET", "/api/v1/so/live").0, 404);

    fake.seen(|s| {
        assert!(s.calls.contains(&Call::So(SoCall::Get {
            app: "live".into(),
            instance: "room/1".into(),
            name: "chat".into(),
        })));
        assert!(s.calls.contains(&Call::So(SoCall::Set {
            app: "live".into(),
            instance: "_definst_".into(),
            name: "chat".into(),
            slot: "n".into(),
            value: serde_json::json!({"a": [1, 2]}),
        })));
        assert!(s.calls.contains(&Call::So(SoCall::Delete {
            app: "live".into(),
            instance: "_definst_".into(),
            name: "chat".into(),
            slot: Some("n".into()),
        })));
        assert!(s.calls.contains(&Call::So(SoCall::Delete {
            app: "live".into(),
            instance: "_definst_".into(),
            name: "chat".into(),
            slot: None,
        })));
    });
    m.shutdown();
}

#[test]
fn admin_api_lists_adds_and_removes_multicast_outputs() {
    use control::protocol::MulticastCall;
    let dir = Scratch::new("mgr-multicast");
    let fake = FakeStratad::start(&dir.join("s.sock"));
    let m = start(&fake.path, HookConfig::default());
    let agent = ureq::AgentBuilder::new().timeout(WAIT).build();
    let url = format!("http://{}/api/v1/multicast", m.http_addr());
    let (code, body) = http(&m, "GET", "/api/v1/multicast");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["multicast"][0]["group"], "239.1.1.1:5000", "{body}");
    assert_eq!(v["multicast"][0]["origin"], "config", "{body}");
    let add = agent
        .post(&url)
        .send_string(r#"{"stream": "live/cam", "group": "239.1.1.3:5004", "rtp": true}"#)
        .expect("post");
    assert_eq!(add.status(), 200);
    let bad = agent.post(&url).send_string(r#"{"stream": "live/cam"}"#);
    assert!(matches!(bad, Err(ureq::Error::Status(400, _))));
    let del = agent
        .delete(&url)
        .send_string(r#"{"stream": "live/cam", "group": "239.1.1.3:5004"}"#)
        .expect("delete");
    assert_eq!(del.status(), 200);
    assert_eq!(http(&m, "PUT", "/api/v1/multicast").0, 405);
    fake.seen(|s| {
        assert!(s.calls.iter().any(|c| matches!(
            c,
            Call::Multicast(MulticastCall::Add { output }) if output.rtp && output.ttl == 16
        )));
        assert!(s.calls.iter().any(|c| matches!(
            c,
            Call::Multicast(MulticastCall::Remove { stream, .. }) if stream == "live/cam"
        )));
    });
    m.shutdown();
}
