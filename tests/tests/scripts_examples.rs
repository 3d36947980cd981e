//! Server-side application scripts (issue 13) with real clients: the chat and auth
//! examples of examples/scripts driven by python-librtmp (calls both ways) and our RTMP
//! client (connect arguments, the rejection's `application` object, broadcasts, the
//! shared object), the auth example asking an HTTP service through the manager; and the
//! budget: an instance whose script loops forever is unloaded within its budget, its
//! clients get NetConnection.Connect.AppShutdown, and a viewer of another application
//! keeps playing.

use control::manager::{Manager, ManagerOptions};
use control::manager_config::{HookConfig, ReconnectConfig};
use dataplane::proto::amf0::Amf0Value;
use dataplane::proto::rtmp::session::CallAnswer;
use dataplane::proto::rtmp::shared_object::{SoEvent, SoMessage};
use e2e::json_hook::{HookAnswer, JsonHook};
use e2e::live_fixture::LiveFixture;
use e2e::pyrtmp::PyScript;
use e2e::rtmp_client::{info_code, Reply, RtmpClient};
use e2e::scratch_dir::ScratchDir;
use e2e::server::{workspace_dir, Server, ServerOptions};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);

fn scripts_config(dir: &Path, extra: &str) -> String {
    format!("[scripts]\ndir = {:?}\n{extra}", dir.display().to_string())
}

fn examples_server() -> Server {
    let dir = workspace_dir().join("examples/scripts");
    Server::start_with(ServerOptions {
        config: Some(scripts_config(&dir, "")),
        ..ServerOptions::default()
    })
}

/// Connects to `app` with these connect arguments; the client and the connect's reply
/// (`_result` or `_error`).
fn connect_with(addr: SocketAddr, app: &str, args: &[Amf0Value]) -> (RtmpClient, Reply) {
    let mut c = RtmpClient::open(addr).expect("handshake");
    let obj = Amf0Value::object([
        ("app", Amf0Value::string(app)),
        ("tcUrl", Amf0Value::string(format!("rtmp://{addr}/{app}"))),
        ("flashVer", Amf0Value::string("LNX 9,0,124,2")),
        ("objectEncoding", Amf0Value::Number(0.0)),
    ]);
    let tx = c.send_command(0, "connect", obj, args).expect("connect");
    let reply = c.wait_reply(tx, WAIT).expect("a reply to connect");
    (c, reply)
}

fn s(v: &str) -> Amf0Value {
    Amf0Value::string(v)
}

/// The `application` object of a NetConnection.Connect.Rejected reply.
fn rejection(reply: &Reply) -> Option<&Amf0Value> {
    assert_eq!(reply.name, "_error", "{reply:?}");
    assert_eq!(
        info_code(reply).as_deref(),
        Some("NetConnection.Connect.Rejected")
    );
    reply.args.first().and_then(|i| i.get("application"))
}

#[test]
fn the_chat_example_with_python_librtmp_and_our_client() {
    let server = examples_server();
    let py = PyScript::start("script_chat.py", &server.url("chat"));
    let next = |what: &str| py.next(what);

    // Server to client (welcome) and client to server (who), over python-librtmp.
    assert_eq!(next("welcomed"), "welcomed");
    assert_eq!(next("who"), "who: [\"alice\"]");
    assert_eq!(next("ready"), "ready");

    // Our client joins as bob, answers welcome, and says a line everyone hears.
    let (mut bob, reply) = connect_with(server.addr(), "chat", &[s("bob")]);
    assert_eq!(reply.name, "_result", "{reply:?}");
    let welcome = bob
        .answer_call("welcome", WAIT, |_| CallAnswer::Result(s("hi from bob")))
        .expect("the script calls welcome");
    assert_eq!(welcome.args.first(), Some(&Amf0Value::Number(2.0)));
    let said = bob.call("say", &[s("hello")], WAIT).expect("say");
    assert_eq!(said.name, "_result", "{said:?}");
    assert_eq!(said.args.first(), Some(&Amf0Value::Number(1.0)));
    assert_eq!(next("heard"), "heard: [\"bob: hello\"]");

    // python's own line, what the script kept of python's welcome answer, an exception.
    assert_eq!(next("say"), "say: 2.0");
    assert_eq!(next("welcomeAnswer"), "welcomeAnswer: \"thanks 1\"");
    let fail = next("fail");
    assert!(fail.contains("this method always fails"), "{fail}");
    bob.wait_command(WAIT, "onMessage", |c| {
        c.name == "onMessage" && c.args.first() == Some(&s("alice: hi"))
    })
    .expect("bob hears alice");
    // The script's shared object "users": a slot per user, set by the script; a slot a
    // client sets reaches the script's onSync.
    let users = |events| SoMessage {
        name: "users".into(),
        version: 0,
        persistent: false,
        events,
    };
    bob.send_shared_object(false, &users(vec![SoEvent::Use]))
        .expect("use users");
    let deadline = Instant::now() + WAIT;
    let mut names = std::collections::BTreeSet::new();
    while names.len() < 2 {
        assert!(Instant::now() < deadline, "users seen: {names:?}");
        let m = bob.wait_shared_object("users", WAIT).expect("users");
        for e in m.events {
            if let SoEvent::Change(pairs) = e {
                names.extend(pairs.into_iter().map(|(k, _)| k));
            }
        }
    }
    assert_eq!(names, ["alice", "bob"].map(String::from).into());
    let topic = users(vec![SoEvent::RequestChange {
        key: "topic".into(),
        value: s("rust"),
    }]);
    bob.send_shared_object(false, &topic).expect("set topic");
    // The change reaches the script through the object's owner, the call directly: ask
    // until the script has it (bounded).
    let deadline = Instant::now() + WAIT;
    loop {
        let t = bob.call("topic", &[], WAIT).expect("topic");
        if t.args.first() == Some(&s("rust")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the script never saw the topic: {t:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(server.wait_log_line(&["topic is now rust"], WAIT).is_some());
    let who = bob.call("who", &[], WAIT).expect("who");
    assert_eq!(
        who.args.first(),
        Some(&Amf0Value::StrictArray(vec![s("alice"), s("bob")])),
        "{who:?}"
    );
    // The exception was logged with its file and line; trace() lines name the instance.
    assert!(
        server
            .wait_log_line(&["script exception", "main.asc:68"], WAIT)
            .is_some(),
        "{}",
        server.log()
    );
    assert!(server
        .wait_log_line(&["chat room chat started", "instance=_definst_"], WAIT)
        .is_some());

    // A client without a name is refused with the script's error object.
    let (_nameless, reply) = connect_with(server.addr(), "chat", &[]);
    let app = rejection(&reply).expect("the script's error object");
    assert_eq!(
        app.get("message").and_then(Amf0Value::as_str),
        Some("a name is required")
    );
    // bob leaves: onDisconnect's broadcast reaches python.
    drop(bob);
    assert_eq!(next("left"), "left: [\"bob\"]");
}

/// The auth example's HTTP service: alice with "secret" gets in.
fn check_user(body: &Value) -> HookAnswer {
    let ok = body["method"] == "checkUser" && body["args"] == json!(["alice", "secret"]);
    let answer = if ok {
        json!({"result": {"ok": true}})
    } else {
        json!({"result": {"ok": false, "reason": "unknown user or bad token"}})
    };
    (200, answer, Duration::from_millis(20))
}

#[test]
fn the_auth_example_asks_an_http_service_through_the_manager() {
    let dir = ScratchDir::new("scripts-auth");
    let socket = dir.join("stratad.sock");
    let examples = workspace_dir().join("examples/scripts");
    let server = Server::start_with(ServerOptions {
        config: Some(format!(
            "[control]\nsocket = {:?}\n{}",
            socket.display().to_string(),
            scripts_config(&examples, "")
        )),
        ..ServerOptions::default()
    });
    let hook = JsonHook::start(check_user);
    let _manager = Manager::start(ManagerOptions {
        socket: socket.clone(),
        http: "127.0.0.1:0".into(),
        hooks: HookConfig {
            on_call: Some(hook.url.clone()),
            ..HookConfig::default()
        },
        reconnect: ReconnectConfig {
            initial_ms: 50,
            max_ms: 200,
        },
    })
    .expect("manager");

    // Until the manager has registered, the script hears "no manager" (bounded wait).
    let deadline = Instant::now() + WAIT;
    let mut alice = loop {
        let (c, reply) = connect_with(server.addr(), "auth", &[s("alice"), s("secret")]);
        if reply.name == "_result" {
            break c;
        }
        let app = rejection(&reply).expect("the script's error object");
        assert_eq!(
            app.get("code").and_then(Amf0Value::as_str),
            Some("Auth.Unavailable"),
            "{reply:?}"
        );
        assert!(Instant::now() < deadline, "the manager never answered");
        std::thread::sleep(Duration::from_millis(100));
    };
    let me = alice.call("whoami", &[], WAIT).expect("whoami");
    assert_eq!(me.args.first(), Some(&s("alice")));
    let asked = hook.seen();
    let check = asked
        .iter()
        .find(|b| b["method"] == "checkUser")
        .unwrap_or_else(|| panic!("the service saw no checkUser: {asked:?}"));
    assert_eq!(
        (check["app"].as_str(), check["client"]["addr"].as_str()),
        (Some("auth"), Some("script"))
    );

    let (_m, reply) = connect_with(server.addr(), "auth", &[s("mallory"), s("guess")]);
    let app = rejection(&reply).expect("the script's error object");
    assert_eq!(
        app.get("code").and_then(Amf0Value::as_str),
        Some("Auth.Failed")
    );
    assert_eq!(
        app.get("message").and_then(Amf0Value::as_str),
        Some("unknown user or bad token")
    );
    // Still served after a refusal.
    assert_eq!(
        alice.call("whoami", &[], WAIT).expect("whoami").name,
        "_result"
    );
}

#[test]
fn a_script_that_loops_is_unloaded_within_its_budget_and_others_go_on() {
    let dir = ScratchDir::new("scripts-loop");
    let scripts = dir.join("apps");
    for (app, main) in [
        (
            "loop",
            "application.onConnect = function () { while (true) {} };\n",
        ),
        (
            "spin",
            "Client.prototype.hang = function () { for (;;) {} };\n\
             Client.prototype.echo = function () { return 'pong'; };\n",
        ),
    ] {
        std::fs::create_dir_all(scripts.join(app)).expect("mkdir");
        std::fs::write(scripts.join(app).join("main.asc"), main).expect("write");
    }
    let mut fixture = LiveFixture::start_with(ServerOptions {
        config: Some(scripts_config(&scripts, "time_budget_ms = 500\n")),
        ..ServerOptions::default()
    });
    let addr = fixture.server.addr();

    // onConnect never returns: the connect is refused once the budget is spent.
    let started = Instant::now();
    let (_looper, reply) = connect_with(addr, "loop", &[]);
    let took = started.elapsed();
    assert_eq!(reply.name, "_error", "{reply:?}");
    assert!(
        took < Duration::from_millis(2_500),
        "refused after {took:?}"
    );
    assert!(fixture
        .server
        .wait_log_line(
            &[
                "application instance unloaded",
                "app=loop",
                "longer than its budget of 500 ms"
            ],
            WAIT
        )
        .is_some());

    // A connected client's method loops: the instance goes, its clients get AppShutdown.
    let (mut caller, reply) = connect_with(addr, "spin", &[]);
    assert_eq!(reply.name, "_result", "{reply:?}");
    let (mut other, _) = connect_with(addr, "spin", &[]);
    assert_eq!(
        other.call("echo", &[], WAIT).expect("echo").args.first(),
        Some(&s("pong"))
    );
    caller
        .send_command(0, "hang", Amf0Value::Null, &[])
        .expect("hang");
    other
        .wait_status("NetConnection.Connect.AppShutdown", WAIT)
        .expect("the instance's clients are told");

    // Meanwhile: the live viewer kept playing, and the server answers new clients.
    fixture.assert_others_unaffected();
    let started = Instant::now();
    RtmpClient::connected(addr, "live").expect("a new client is served");
    assert!(started.elapsed() < Duration::from_secs(1));
    // The scripted application loads again for its next client.
    let (mut again, reply) = connect_with(addr, "spin", &[]);
    assert_eq!(reply.name, "_result", "{reply:?}");
    assert_eq!(
        again.call("echo", &[], WAIT).expect("echo").args.first(),
        Some(&s("pong"))
    );
}

#[test]
fn stream_access_and_publish_events_of_a_script() {
    let dir = ScratchDir::new("scripts-access");
    let scripts = dir.join("apps");
    std::fs::create_dir_all(scripts.join("gated")).expect("mkdir");
    std::fs::write(
        scripts.join("gated").join("main.asc"),
        "application.onConnect = function (c) {\n\
           c.writeAccess = \"public\";\n\
           c.readAccess = \"shows;public\";\n\
           return true;\n\
         };\n\
         application.onPublish = function (c, s) { trace('published ' + s.name); };\n\
         application.onUnpublish = function (c, s) { trace('unpublished ' + s.name); };\n\
         application.onDisconnect = function (c) { trace('script saw the client leave'); };\n",
    )
    .expect("write");
    let server = Server::start_with(ServerOptions {
        config: Some(scripts_config(&scripts, "")),
        ..ServerOptions::default()
    });
    let mut c = RtmpClient::connected(server.addr(), "gated").expect("connect");
    c.publish("secret").expect("publish");
    c.wait_status("NetStream.Publish.BadName", WAIT)
        .expect("no write access to secret");
    c.publish("public").expect("publish");
    c.wait_status("NetStream.Publish.Start", WAIT)
        .expect("write access to public");
    let mut v = RtmpClient::connected(server.addr(), "gated").expect("connect");
    v.play("news").expect("play");
    v.wait_status("NetStream.Play.Failed", WAIT)
        .expect("no read access to news");
    v.play("shows").expect("play");
    v.wait_status("NetStream.Play.Start", WAIT)
        .expect("read access to shows");

    // onPublish for the stream that started only; onUnpublish before onDisconnect.
    assert!(server.wait_log_line(&["published public"], WAIT).is_some());
    drop(c);
    let unpublished = server.wait_log_line(&["unpublished public"], WAIT);
    assert!(unpublished.is_some(), "{}", server.log());
    assert!(server
        .wait_log_line(&["script saw the client leave"], WAIT)
        .is_some());
    let log = server.log();
    let at = |needle: &str| log.find(needle).unwrap_or(usize::MAX);
    assert!(
        at("unpublished public") < at("script saw the client leave"),
        "{log}"
    );
    assert!(!log.contains("published secret"), "{log}");
}

/// readAccess/writeAccess guard shared objects as they guard streams: a use of an object
/// the client may not read is refused (SharedObject.NoReadAccess), a change of one it may
/// read but not write too (SharedObject.NoWriteAccess), and one it may write changes.
#[test]
fn shared_object_access_of_a_script() {
    let dir = ScratchDir::new("scripts-so-access");
    let scripts = dir.join("apps");
    std::fs::create_dir_all(scripts.join("gated")).expect("mkdir");
    std::fs::write(
        scripts.join("gated").join("main.asc"),
        "application.onConnect = function (c) {\n\
           c.writeAccess = \"public\";\n\
           c.readAccess = \"shows;public\";\n\
           return true;\n\
         };\n",
    )
    .expect("write");
    let server = Server::start_with(ServerOptions {
        config: Some(scripts_config(&scripts, "")),
        ..ServerOptions::default()
    });
    let mut c = RtmpClient::connected(server.addr(), "gated").expect("connect");
    let so = |name: &str, events| SoMessage {
        name: name.into(),
        version: 0,
        persistent: false,
        events,
    };
    let change = || SoEvent::RequestChange {
        key: "k".into(),
        value: s("v"),
    };
    let first = |c: &mut RtmpClient, name: &str| {
        let m = c.wait_shared_object(name, WAIT).expect("an answer");
        m.events.first().cloned()
    };
    let status = |code: &str| {
        Some(SoEvent::Status {
            code: code.into(),
            level: "error".into(),
        })
    };
    c.send_shared_object(false, &so("news", vec![SoEvent::Use]))
        .expect("use");
    assert_eq!(first(&mut c, "news"), status("SharedObject.NoReadAccess"));
    c.send_shared_object(false, &so("shows", vec![SoEvent::Use]))
        .expect("use");
    assert_eq!(first(&mut c, "shows"), Some(SoEvent::UseSuccess));
    c.send_shared_object(false, &so("shows", vec![change()]))
        .expect("change");
    assert_eq!(first(&mut c, "shows"), status("SharedObject.NoWriteAccess"));
    c.send_shared_object(false, &so("public", vec![SoEvent::Use, change()]))
        .expect("use and change");
    let deadline = Instant::now() + WAIT;
    loop {
        let m = c.wait_shared_object("public", WAIT).expect("an answer");
        if m.events
            .iter()
            .any(|e| matches!(e, SoEvent::Success(k) if k == "k"))
        {
            break;
        }
        assert!(
            !m.events.iter().any(|e| matches!(e, SoEvent::Status { .. })),
            "{m:?}"
        );
        assert!(Instant::now() < deadline, "the change was never confirmed");
    }
    assert!(server
        .wait_log_line(&["shared object refused", "NoWriteAccess"], WAIT)
        .is_some());
}
