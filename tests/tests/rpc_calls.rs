//! NetConnection RPC both ways with real clients (issue 11, "What it must show" 3 and the
//! call-flood part of 5): python-librtmp calls a method the manager's `on_call` webhook
//! answers and one nobody answers; `stratactl call` calls a method python-librtmp
//! registered and prints its return value, and times out on one it did not; `stratactl
//! broadcast` reaches it; a flood of calls from one client leaves another's calls prompt.

use control::client::ControlClient;
use control::manager::{Manager, ManagerOptions};
use control::manager_config::{HookConfig, ReconnectConfig};
use control::protocol::{Call, Reply};
use dataplane::proto::amf0::Amf0Value;
use dataplane::proto::rtmp::session::CallAnswer;
use e2e::bounds;
use e2e::json_hook::{HookAnswer, JsonHook};
use e2e::pyrtmp::{stratactl_bin, PyScript};
use e2e::rtmp_client::{info_code, RtmpClient};
use e2e::scratch_dir::ScratchDir;
use e2e::server::{Server, ServerOptions};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `add` sums, `slow` answers after 300 ms, `join` asks for a call back and a broadcast,
/// anything else is a 404 (a failed call).
fn hook(body: &Value) -> HookAnswer {
    let arg = |i: usize| body["args"][i].as_f64().unwrap_or(f64::NAN);
    match body["method"].as_str() {
        Some("add") => (200, json!({"result": arg(0) + arg(1)}), Duration::ZERO),
        Some("slow") => (200, json!({"result": "late"}), Duration::from_millis(300)),
        // A result far over the control protocol's 64 KiB line.
        Some("huge") => (
            200,
            json!({"result": "\u{1}".repeat(100_000)}),
            Duration::ZERO,
        ),
        // Answers, then asks the manager to call the caller back and tell the room.
        Some("join") => (
            200,
            json!({"result": "joined",
                   "call": {"method": "welcome", "args": [body["args"][0]]},
                   "broadcast": {"method": "joinedRoom", "args": [body["args"][0]]}}),
            Duration::ZERO,
        ),
        _ => (404, json!({}), Duration::ZERO),
    }
}

fn server_with_socket(dir: &ScratchDir) -> (Server, PathBuf) {
    let socket = dir.join("stratad.sock");
    let config = format!("[control]\nsocket = {:?}\n", socket.display().to_string());
    let server = Server::start_with(ServerOptions {
        config: Some(config),
        ..ServerOptions::default()
    });
    (server, socket)
}

fn manager(socket: &Path, on_call: &str) -> Manager {
    manager_with(socket, on_call, HookConfig::default().timeout_ms)
}

fn manager_with(socket: &Path, on_call: &str, timeout_ms: u64) -> Manager {
    Manager::start(ManagerOptions {
        socket: socket.to_path_buf(),
        http: "127.0.0.1:0".into(),
        hooks: HookConfig {
            on_call: Some(on_call.into()),
            timeout_ms,
            ..HookConfig::default()
        },
        reconnect: ReconnectConfig {
            initial_ms: 50,
            max_ms: 200,
        },
    })
    .expect("manager")
}

/// A client of `chat` once the manager answers calls: `add` is retried (bounded) until the
/// registration has reached stratad.
fn chat_client(server: &Server) -> RtmpClient {
    let mut c = RtmpClient::connected(server.addr(), "chat").expect("connect");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = c
            .call(
                "add",
                &[Amf0Value::Number(1.0), Amf0Value::Number(2.0)],
                bounds::MESSAGE,
            )
            .expect("a reply to add");
        if reply.name == "_result" {
            assert_eq!(
                reply.args.first(),
                Some(&Amf0Value::Number(3.0)),
                "{reply:?}"
            );
            return c;
        }
        assert!(
            Instant::now() < deadline,
            "the manager never answered calls: {reply:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn stratactl(socket: &Path, args: &[&str]) -> std::process::Output {
    let mut child = Command::new(stratactl_bin())
        .arg("--socket")
        .arg(socket)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run stratactl");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("stratactl {args:?} did not finish");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

fn chat_client_ids(socket: &Path) -> Vec<(u64, String)> {
    let mut c = ControlClient::connect(socket).expect("control");
    match c.request(Call::Clients).expect("clients") {
        Reply::Clients { clients } => clients
            .into_iter()
            .filter(|c| c.app.as_deref() == Some("chat"))
            .map(|c| (c.id, c.addr))
            .collect(),
        other => panic!("clients answered {other:?}"),
    }
}

fn http_post(addr: SocketAddr, path: &str, body: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the manager");
    s.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    let (head, body) = out.split_once("\r\n\r\n").expect("HTTP response");
    (
        head.lines().next().unwrap_or_default().to_string(),
        body.to_string(),
    )
}

#[test]
fn python_librtmp_and_stratactl_call_each_other_through_the_webhook() {
    let dir = ScratchDir::new("rpc-python");
    let (server, socket) = server_with_socket(&dir);
    let hook = JsonHook::start(hook);
    let manager = manager(&socket, &hook.url);
    let ours = chat_client(&server);

    let py = PyScript::start("rpc_client.py", &server.url("chat"));
    let next = |what: &str| py.next(what);

    // Client to server: the webhook's result, and NetConnection.Call.Failed for nobody's.
    assert_eq!(next("add"), "add: 5.0");
    let nosuch = next("nosuch");
    assert!(
        nosuch.contains("NetConnection.Call.Failed"),
        "a call nobody handles: {nosuch}"
    );
    let asked = hook.seen();
    let add = asked
        .iter()
        .find(|b| b["method"] == "add" && b["args"] == json!([2.0, 3.0]))
        .unwrap_or_else(|| panic!("the hook saw no add(2, 3): {asked:?}"));
    assert_eq!(add["app"], "chat");
    assert_eq!(add["instance"], "_definst_");
    assert!(add["client"]["id"].as_u64().is_some(), "{add}");
    assert_eq!(next("ready"), "ready");

    // Server to client: the python client is the chat client that is not ours.
    let mine = ours.local_addr().to_string();
    let theirs: Vec<u64> = chat_client_ids(&socket)
        .into_iter()
        .filter(|(_, addr)| *addr != mine)
        .map(|(id, _)| id)
        .collect();
    let [id] = theirs[..] else {
        panic!("one python client expected: {theirs:?}")
    };
    let id = id.to_string();
    let silent = stratactl(&socket, &["call", &id, "nothing", "--timeout-ms", "500"]);
    assert!(!silent.status.success(), "a method python did not register");
    let err = String::from_utf8_lossy(&silent.stderr);
    assert!(err.contains("did not answer"), "{err}");

    let hello = stratactl(&socket, &["call", &id, "hello", "ann"]);
    assert!(
        hello.status.success(),
        "{}",
        String::from_utf8_lossy(&hello.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&hello.stdout).trim(),
        "\"hello ann\""
    );
    assert_eq!(next("answered hello"), "answered hello");

    let sent = stratactl(&socket, &["broadcast", "chat", "greet", "all"]);
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&sent.stdout).trim(),
        "sent to 2 clients"
    );
    assert_eq!(next("greet"), "greet: [\"all\"]");

    // The admin API's call route: an unknown client is a 404.
    let (status, body) = http_post(
        manager.http_addr(),
        "/api/v1/clients/999999/call",
        r#"{"method": "hello", "args": ["x"]}"#,
    );
    assert!(status.contains(" 404"), "{status} {body}");

    // The manager counted the hook's outcomes (/metrics: strata_manager_calls_total).
    let calls = manager.counters().calls;
    let count = |k: &str| calls.iter().find(|(o, _)| o == k).map_or(0, |(_, n)| *n);
    assert!(count("result") >= 2, "{calls:?}");
    assert!(count("failed") >= 1, "{calls:?}");
    drop(ours);
}

#[test]
fn a_call_flood_from_one_client_leaves_another_clients_calls_prompt() {
    let dir = ScratchDir::new("rpc-flood");
    let (server, socket) = server_with_socket(&dir);
    let hook = JsonHook::start(hook);
    let _manager = manager(&socket, &hook.url);
    let mut flooder = chat_client(&server);
    let mut other = chat_client(&server);

    const FLOOD: usize = 100;
    let mut sent = Vec::new();
    for _ in 0..FLOOD {
        sent.push(
            flooder
                .send_command(0, "slow", Amf0Value::Null, &[])
                .expect("send a call"),
        );
    }
    let asked = Instant::now();
    let reply = other
        .call(
            "add",
            &[Amf0Value::Number(20.0), Amf0Value::Number(22.0)],
            bounds::MESSAGE,
        )
        .expect("the other client's call is answered");
    let took = asked.elapsed();
    assert_eq!(
        reply.args.first(),
        Some(&Amf0Value::Number(42.0)),
        "{reply:?}"
    );
    assert!(
        took < Duration::from_secs(2),
        "the other client waited {took:?}"
    );

    // Answers come out of order (refusals at once, results as the hook answers): count
    // each call's one answer, whichever comes first.
    let (mut results, mut refused) = (0, 0);
    for _ in 0..FLOOD {
        let r = flooder
            .wait_command(Duration::from_secs(20), "an answer of the flood", |c| {
                (c.name == "_result" || c.name == "_error") && sent.contains(&c.transaction_id)
            })
            .expect("every call of the flood is answered");
        match r.name.as_str() {
            "_result" => results += 1,
            _ => {
                assert_eq!(info_code(&r).as_deref(), Some("NetConnection.Call.Failed"));
                refused += 1;
            }
        }
    }
    assert!(results >= 1, "some calls of the flood reached the hook");
    assert!(refused >= FLOOD / 2, "{refused} refused of {FLOOD}");
    assert!(
        server
            .wait_log_line(&["calls refused"], Duration::from_secs(5))
            .is_some(),
        "the flood is logged"
    );
    // Calls too large for the control protocol fail alone, both ways (a client's
    // arguments: 20 000 control characters are 120 000 bytes of JSON; a hook's result of
    // 600 000), and the manager stays connected: calls go on.
    let big = Amf0Value::string("\u{1}".repeat(20_000));
    for (method, args) in [("add", vec![big]), ("huge", vec![])] {
        let reply = other
            .call(method, &args, bounds::MESSAGE)
            .expect("an answer");
        assert_eq!(reply.name, "_error", "{method}");
        assert_eq!(
            info_code(&reply).as_deref(),
            Some("NetConnection.Call.Failed")
        );
    }
    let reply = other
        .call(
            "add",
            &[Amf0Value::Number(2.0), Amf0Value::Number(2.0)],
            bounds::MESSAGE,
        )
        .expect("still answered");
    assert_eq!(
        reply.args.first(),
        Some(&Amf0Value::Number(4.0)),
        "{reply:?}"
    );

    // The flooder stays connected and served.
    let reply = flooder
        .call(
            "add",
            &[Amf0Value::Number(1.0), Amf0Value::Number(1.0)],
            bounds::MESSAGE,
        )
        .expect("the flooder is still served");
    assert_eq!(reply.args.first(), Some(&Amf0Value::Number(2.0)));
}

#[test]
fn without_a_manager_an_application_call_fails_at_once() {
    let server = Server::start();
    let mut c = RtmpClient::connected(server.addr(), "chat").expect("connect");
    let reply = c
        .call("anything", &[Amf0Value::string("x")], bounds::MESSAGE)
        .expect("a reply");
    assert_eq!(reply.name, "_error");
    assert_eq!(
        info_code(&reply).as_deref(),
        Some("NetConnection.Call.Failed")
    );
    // Built-in methods keep their answers.
    let reply = c
        .call(
            "getStreamLength",
            &[Amf0Value::string("x")],
            bounds::MESSAGE,
        )
        .expect("a reply");
    assert_eq!(reply.name, "_result");
}

/// Our client (the proto session's client role) answers calls the admin API makes:
/// arguments and results cross JSON and AMF both ways (dates, typed objects), and an
/// `_error` comes back with its code and description.
#[test]
fn the_api_call_route_returns_what_our_client_answers() {
    let dir = ScratchDir::new("rpc-api");
    let (server, socket) = server_with_socket(&dir);
    let manager = manager(&socket, "http://127.0.0.1:9/unused");
    let mut client = RtmpClient::connected(server.addr(), "chat").expect("connect");
    let mine = client.local_addr().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    let id = loop {
        if let Some((id, _)) = chat_client_ids(&socket)
            .into_iter()
            .find(|(_, a)| *a == mine)
        {
            break id;
        }
        assert!(Instant::now() < deadline, "our client is not listed");
        std::thread::sleep(Duration::from_millis(100));
    };
    let http = manager.http_addr();
    let path = format!("/api/v1/clients/{id}/call");
    let asking = {
        let path = path.clone();
        std::thread::spawn(move || {
            let body = r#"{"method": "whoAreYou", "args": [{"$date": 5}, {"$class": "User", "name": "ann"}]}"#;
            http_post(http, &path, body)
        })
    };
    let call = client
        .answer_call("whoAreYou", bounds::MESSAGE, |_| {
            CallAnswer::Result(Amf0Value::object([
                ("ok", Amf0Value::Boolean(true)),
                (
                    "when",
                    Amf0Value::Date {
                        millis: 7.0,
                        time_zone: 0,
                    },
                ),
            ]))
        })
        .expect("the server calls us");
    assert_eq!(
        call.args,
        vec![
            Amf0Value::Date {
                millis: 5.0,
                time_zone: 0
            },
            Amf0Value::TypedObject {
                class_name: "User".into(),
                properties: vec![("name".into(), Amf0Value::string("ann"))],
            },
        ]
    );
    let (status, body) = asking.join().expect("the HTTP call");
    assert!(status.contains(" 200"), "{status} {body}");
    let body: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(
        body,
        json!({"result": {"ok": true, "when": {"$date": 7.0}}})
    );

    // Arguments outside the mapping are refused before any client is called.
    let (status, body) = http_post(http, &path, r#"{"method": "m", "args": [{"$bytes": 1}]}"#);
    assert!(status.contains(" 400"), "{status} {body}");
    let (status, body) = http_post(
        http,
        "/api/v1/broadcast/chat",
        r#"{"method": "m", "args": [{"$date": "soon"}]}"#,
    );
    assert!(status.contains(" 400"), "{status} {body}");

    let asking = std::thread::spawn(move || http_post(http, &path, r#"{"method": "fail"}"#));
    client
        .answer_call("fail", bounds::MESSAGE, |_| {
            CallAnswer::Error(Amf0Value::object([
                ("level", Amf0Value::string("error")),
                ("code", Amf0Value::string("App.Nope")),
                ("description", Amf0Value::string("not today")),
            ]))
        })
        .expect("the server calls us");
    let (status, body) = asking.join().expect("the HTTP call");
    assert!(status.contains(" 200"), "{status} {body}");
    let body: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(
        body,
        json!({"error": {"code": "App.Nope", "description": "not today"}})
    );
}

/// The webhook's reply asks the manager to call the caller back and to broadcast to its
/// instance: the caller gets its `_result`, then the call (which it answers), and every
/// client of the instance gets the broadcast.
#[test]
fn the_webhook_reply_can_call_back_and_broadcast() {
    let dir = ScratchDir::new("rpc-asks");
    let (server, socket) = server_with_socket(&dir);
    let hook = JsonHook::start(hook);
    let _manager = manager(&socket, &hook.url);
    let mut caller = chat_client(&server);
    let mut other = chat_client(&server);

    let reply = caller
        .call("join", &[Amf0Value::string("ann")], bounds::MESSAGE)
        .expect("join answered");
    assert_eq!(reply.name, "_result");
    assert_eq!(reply.args.first(), Some(&Amf0Value::string("joined")));
    let welcome = caller
        .answer_call("welcome", bounds::MESSAGE, |_| {
            CallAnswer::Result(Amf0Value::Null)
        })
        .expect("called back");
    assert_eq!(welcome.args, vec![Amf0Value::string("ann")]);
    for c in [&mut caller, &mut other] {
        let b = c
            .wait_command(bounds::MESSAGE, "joinedRoom", |c| c.name == "joinedRoom")
            .expect("the broadcast");
        assert_eq!(b.transaction_id, 0.0, "a broadcast expects no answer");
        assert_eq!(b.args, vec![Amf0Value::string("ann")]);
    }
}

/// A hook slower than the manager's `timeout_ms` fails the call with
/// NetConnection.Call.Failed, soon after the timeout, and the next call is served.
#[test]
fn a_slow_hook_fails_the_call_at_the_managers_timeout() {
    let dir = ScratchDir::new("rpc-slow");
    let (server, socket) = server_with_socket(&dir);
    let hook = JsonHook::start(hook);
    let _manager = manager_with(&socket, &hook.url, 150);
    let mut c = chat_client(&server);
    let asked = Instant::now();
    let reply = c.call("slow", &[], bounds::MESSAGE).expect("an answer");
    let took = asked.elapsed();
    assert_eq!(reply.name, "_error");
    assert_eq!(
        info_code(&reply).as_deref(),
        Some("NetConnection.Call.Failed")
    );
    assert!(took < Duration::from_secs(2), "failed after {took:?}");
    let reply = c
        .call(
            "add",
            &[Amf0Value::Number(1.0), Amf0Value::Number(1.0)],
            bounds::MESSAGE,
        )
        .expect("an answer");
    assert_eq!(reply.args.first(), Some(&Amf0Value::Number(2.0)));
}
