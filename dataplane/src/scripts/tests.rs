//! The script context in memory: the AMS API's answers, exceptions with their place, and
//! the budgets.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

use super::context::{Budget, Fatal, Op, ScriptContext};

fn app(tag: &str, files: &[(&str, &str)]) -> PathBuf {
    let d = std::env::temp_dir().join(format!("strata-script-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    for (name, text) in files {
        std::fs::write(d.join(name), text).expect("write");
    }
    d
}

/// Time enough that a busy machine (a CI box running every test binary at once) never hits
/// it: these tests are about what scripts do. The one test of the time budget sets its own.
fn budget() -> Budget {
    Budget {
        time: Duration::from_secs(30),
        memory: 16 * 1024 * 1024,
    }
}

fn load(tag: &str, main: &str) -> (ScriptContext, Vec<Op>) {
    let d = app(tag, &[("main.asc", main)]);
    ScriptContext::load("chat", "_definst_", &d, &d.join("main.asc"), budget()).expect("loads")
}

/// The accept of a client whose access the script left as it was (everything).
fn accepted(client: u64) -> Op {
    Op::Accept {
        client,
        read: Some("/".into()),
        write: Some("/".into()),
    }
}

fn connect(id: u64, args: serde_json::Value) -> serde_json::Value {
    json!({"type": "connect", "client": {"id": id, "ip": "127.0.0.1", "agent": "LNX 9"}, "args": args})
}

#[test]
fn on_connect_decides_now_or_later() {
    let (mut s, ops) = load(
        "connect",
        r#"
        var waiting = null;
        application.onConnect = function (c, user) {
            if (user == "ok") return true;
            if (user == "no") { application.rejectConnection(c, {why: "bad user"}); return; }
            waiting = c;
            setTimeout(function () { application.acceptConnection(waiting); }, 10);
        };
        setInterval(function () {}, 1000);
        "#,
    );
    assert_eq!(
        ops,
        vec![Op::Timer { id: 1, ms: 1000.0 }],
        "top-level timers are taken"
    );
    let out = s.dispatch(&connect(1, json!(["ok"]))).expect("runs");
    assert_eq!(out.ops, vec![accepted(1)]);
    let out = s.dispatch(&connect(2, json!(["no"]))).expect("runs");
    assert_eq!(
        out.ops,
        vec![Op::Reject {
            client: 2,
            error: json!({"why": "bad user"})
        }]
    );
    let out = s.dispatch(&connect(3, json!(["later"]))).expect("runs");
    assert_eq!(out.ops, vec![Op::Timer { id: 2, ms: 10.0 }], "pending");
    let out = s
        .dispatch(&json!({"type": "timer", "id": 2}))
        .expect("runs");
    assert_eq!(out.ops, vec![accepted(3)]);
}

#[test]
fn client_methods_answer_calls_and_exceptions_name_their_place() {
    let (mut s, _) = load(
        "calls",
        "Client.prototype.add = function (a, b) { return a + b; };\n\
         application.onConnect = function (c) {\n\
           c.whoami = function () { return this.ip + ' ' + this.agent; };\n\
           c.fail = function () { throw new Error('no such room'); };\n\
           return true;\n\
         };\n",
    );
    s.dispatch(&connect(7, json!([]))).expect("runs");
    let call = |s: &mut ScriptContext, method: &str, args| {
        s.dispatch(&json!({"type": "call", "client": 7, "method": method, "args": args}))
            .expect("runs")
    };
    assert_eq!(call(&mut s, "add", json!([2, 3])).result, Some(json!(5)));
    assert_eq!(
        call(&mut s, "whoami", json!([])).result,
        Some(json!("127.0.0.1 LNX 9"))
    );
    let e = call(&mut s, "fail", json!([])).error.expect("thrown");
    assert_eq!(e.message, "no such room");
    assert_eq!(e.place(), "main.asc:4:34", "{e:?}");
    for hidden in ["call", "toString", "missing", "constructor"] {
        assert!(call(&mut s, hidden, json!([])).error.is_some(), "{hidden}");
    }
}

#[test]
fn a_script_that_loops_or_hoards_is_stopped_by_its_budget() {
    let d = app(
        "budget",
        &[(
            "main.asc",
            "application.onConnect = function (c, what) {\n\
               while (true) {}\n\
             };\n",
        )],
    );
    let (mut s, _) =
        ScriptContext::load("chat", "_definst_", &d, &d.join("main.asc"), budget()).expect("loads");
    s.set_time_budget(Duration::from_millis(200));
    // An endless loop comes back at all only because the time budget stopped it.
    assert_eq!(
        s.dispatch(&connect(1, json!(["loop"]))).err(),
        Some(Fatal::Time(200))
    );
    assert_unloaded_for_memory(
        "hoard",
        "application.onConnect = function () {\n\
           var a = []; while (true) { a.push(new Array(10000).join('x') + a.length); }\n\
         };\n",
    );
}

/// A connect into `main` under the memory budget alone (time enough that a busy machine
/// cannot hit the time budget first) ends the instance for its memory.
fn assert_unloaded_for_memory(tag: &str, main: &str) {
    let d = app(tag, &[("main.asc", main)]);
    let generous = Budget {
        time: Duration::from_secs(30),
        ..budget()
    };
    let (mut s, _) =
        ScriptContext::load("chat", "_definst_", &d, &d.join("main.asc"), generous).expect("ok");
    let out = s.dispatch(&connect(1, json!([])));
    assert!(
        matches!(out, Err(Fatal::Memory(_))),
        "{:?}",
        out.map(|o| o.ops)
    );
}

#[test]
fn a_budget_overrun_the_script_catches_still_unloads_it() {
    assert_unloaded_for_memory(
        "hoard-catch",
        "var a = [];\n\
         application.onConnect = function () {\n\
           try { while (true) { a.push(new Array(10000).join('x') + a.length); } }\n\
           catch (e) { a = []; }\n\
           return true;\n\
         };\n",
    );
}

#[test]
fn memory_used_is_what_the_heap_holds() {
    let (mut s, _) = load(
        "heap",
        "var kept = [];\n\
         application.onConnect = function () { return true; };\n\
         Client.prototype.grow = function () {\n\
           for (var i = 0; i < 1000; i++) kept.push(new Array(100).join('x') + i);\n\
           return kept.length;\n\
         };\n",
    );
    let loaded = s.memory_used();
    assert!(loaded > 0, "the prelude's heap is counted");
    s.dispatch(&connect(1, json!([]))).expect("runs");
    let out = s
        .dispatch(&json!({"type": "call", "client": 1, "method": "grow", "args": []}))
        .expect("runs");
    assert_eq!(out.result, Some(json!(1000)));
    // 1000 strings of 100 bytes and more: the count follows what the script keeps.
    assert!(
        s.memory_used() > loaded + 100_000,
        "{loaded} then {}",
        s.memory_used()
    );
}

#[test]
fn application_clients_keep_their_order_through_disconnects() {
    let (mut s, _) = load(
        "clients",
        "application.onConnect = function () { return true; };\n\
         Client.prototype.ids = function () {\n\
           return application.clients.map(function (c) { return c.id; });\n\
         };\n",
    );
    for id in 1..=6 {
        s.dispatch(&connect(id, json!([]))).expect("runs");
    }
    for id in [1, 4, 6] {
        s.dispatch(&json!({"type": "disconnect", "client": id}))
            .expect("runs");
    }
    s.dispatch(&connect(7, json!([]))).expect("runs");
    let out = s
        .dispatch(&json!({"type": "call", "client": 2, "method": "ids", "args": []}))
        .expect("runs");
    assert_eq!(out.result, Some(json!([2, 3, 5, 7])));
}

#[test]
fn load_reads_files_of_the_application_only() {
    let d = app(
        "load",
        &[
            ("main.asc", "load('lib.asc'); var loaded = helper();"),
            ("lib.asc", "function helper() { return 1; }"),
        ],
    );
    let (s, _) =
        ScriptContext::load("chat", "_definst_", &d, &d.join("main.asc"), budget()).expect("ok");
    assert_eq!(s.files().len(), 2);
    std::fs::write(d.join("escape.asc"), "load('../x.asc');").expect("write");
    let e = ScriptContext::load("chat", "_definst_", &d, &d.join("escape.asc"), budget())
        .err()
        .expect("refused");
    assert!(e.to_string().contains("inside the application"), "{e}");
    let e = ScriptContext::load("chat", "_definst_", &d, &d.join("lib.asc"), budget());
    assert!(e.is_ok());
    std::fs::write(d.join("bad.asc"), "var x = ;").expect("write");
    let e = ScriptContext::load("chat", "_definst_", &d, &d.join("bad.asc"), budget())
        .err()
        .expect("a syntax error");
    assert!(e.to_string().contains("bad.asc"), "{e}");
}

#[test]
fn shared_objects_mirror_the_owner_and_report_other_changes() {
    let (mut s, ops) = load(
        "so",
        r#"
        var so = SharedObject.get("room", true);
        var synced = [];
        so.onSync = function (list) { list.forEach(function (c) { synced.push(c.code + ":" + (c.name || "")); }); };
        so.setProperty("topic", "rust");
        Client.prototype.state = function () {
            return { topic: so.getProperty("topic"), names: so.getPropertyNames(), size: so.size(), synced: synced };
        };
        application.onConnect = function () { return true; };
        "#,
    );
    use super::ScriptSoAction as A;
    let so_op = |action| Op::So {
        name: "room".into(),
        persistent: true,
        action,
    };
    assert_eq!(
        ops,
        vec![
            so_op(A::Use),
            so_op(A::Set {
                key: "topic".into(),
                value: json!("rust")
            })
        ]
    );
    s.dispatch(&connect(1, json!([]))).expect("runs");
    // The echo of our own change, then a client's change and removal.
    let update = json!({"type": "so", "name": "room", "version": 2, "events": [
        {"t": "change", "slots": {"topic": "rust"}},
        {"t": "change", "slots": {"mood": "good"}},
        {"t": "remove", "key": "mood"},
    ]});
    s.dispatch(&update).expect("runs");
    let out = s
        .dispatch(&json!({"type": "call", "client": 1, "method": "state", "args": []}))
        .expect("runs");
    assert_eq!(
        out.result,
        Some(
            json!({"topic": "rust", "names": ["topic"], "size": 1, "synced": ["change:mood", "delete:mood"]})
        )
    );
}

#[test]
fn a_server_stream_plays_a_playlist_and_hears_its_statuses() {
    let (mut s, ops) = load(
        "stream",
        r#"
        var heard = [];
        var tv = Stream.get("tv");
        tv.onStatus = function (info) { heard.push(info.code + "/" + info.level); };
        tv.play("intro", 0, -1);
        tv.play("show", 2.5, 10, false);
        tv.send("onCue", "ad");
        Client.prototype.heard = function () { return heard; };
        Client.prototype.stop = function () { Stream.get("tv").play(false); };
        "#,
    );
    use super::ScriptStreamAction as A;
    let op = |action| Op::Stream {
        name: "tv".into(),
        action,
    };
    assert_eq!(
        ops,
        vec![
            op(A::Play {
                source: "intro".into(),
                start: 0.0,
                len: -1.0,
                reset: true
            }),
            op(A::Play {
                source: "show".into(),
                start: 2500.0,
                len: 10_000.0,
                reset: false
            }),
            op(A::Send {
                handler: "onCue".into(),
                args: vec![json!("ad")]
            }),
        ],
        "seconds become the ms a play carries; reset defaults to true"
    );
    s.dispatch(&connect(1, json!([]))).expect("runs");
    for code in ["NetStream.Play.Start", "NetStream.Play.StreamNotFound"] {
        let ev = json!({"type": "streamstatus", "name": "tv", "code": code, "details": "intro"});
        s.dispatch(&ev).expect("runs");
    }
    let call = |s: &mut ScriptContext, m: &str| {
        s.dispatch(&json!({"type": "call", "client": 1, "method": m, "args": []}))
            .expect("runs")
    };
    assert_eq!(
        call(&mut s, "heard").result,
        Some(json!([
            "NetStream.Play.Start/status",
            "NetStream.Play.StreamNotFound/error"
        ]))
    );
    assert_eq!(call(&mut s, "stop").ops, vec![op(A::Stop)]);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// What a peer controls (the method it calls, its arguments, its connect arguments)
    /// never breaks the context: an answer or an exception, never an engine failure.
    #[test]
    fn peers_cannot_break_the_context(method in ".{0,40}", text in ".{0,200}", n in proptest::num::f64::ANY) {
        let d = app("prop", &[("main.asc", "Client.prototype.echo = function (x) { return x; };\n\
            var nc = new NetConnection(); nc.connect('rtmp://127.0.0.1/far');\n\
            nc.echo = function (x) { return x; };")]);
        let (mut s, _) = ScriptContext::load("chat", "_definst_", &d, &d.join("main.asc"), budget())
            .expect("loads");
        s.dispatch(&connect(1, json!([text.clone(), {"$undefined": true}]))).expect("connects");
        let call = json!({"type": "call", "client": 1, "method": method, "args": [text, n]});
        let out = s.dispatch(&call);
        proptest::prop_assert!(out.is_ok(), "{out:?}");
        // The far application of a script's NetConnection is a peer too.
        let call = json!({"type": "nccall", "nc": 1, "method": method, "args": [text, n]});
        let out = s.dispatch(&call);
        proptest::prop_assert!(out.is_ok(), "{out:?}");
        let status = json!({"type": "ncstatus", "nc": 1, "info": {"code": text, "application": n}});
        let out = s.dispatch(&status);
        proptest::prop_assert!(out.is_ok(), "{out:?}");
    }
}

#[test]
fn a_net_connection_connects_calls_and_is_called() {
    use super::ScriptNcAction;
    let (mut s, ops) = load(
        "netconnection",
        r#"
        var nc = new NetConnection();
        var seen = [];
        var answer = null;
        nc.onStatus = function (info) { seen.push(info.code + " " + nc.isConnected); };
        nc.hello = function (who) { return "hi " + who; };
        var early = nc.call("x", null);
        nc.connect("rtmp://127.0.0.1:1935/echo", "relay", 2);
        Client.prototype.go = function () {
            return nc.call("upper", { onResult: function (r) { answer = r; } }, "a");
        };
        Client.prototype.state = function () {
            return { early: early, seen: seen, answer: answer, uri: nc.uri,
                     bad: new NetConnection().connect("http://x/") };
        };
        "#,
    );
    let nc = |action| Op::Nc { nc: 1, action };
    assert_eq!(
        ops,
        vec![nc(ScriptNcAction::Connect {
            uri: "rtmp://127.0.0.1:1935/echo".into(),
            args: vec![json!("relay"), json!(2)],
        })],
        "no call before connect; connect with its arguments"
    );
    s.dispatch(&connect(1, json!([]))).expect("runs");
    let call = json!({"type": "call", "client": 1, "method": "go", "args": []});
    let out = s.dispatch(&call).expect("runs");
    assert_eq!(out.result, Some(json!(false)), "not connected yet");
    assert!(out.ops.is_empty());
    let ok = json!({"type": "ncstatus", "nc": 1,
        "info": {"code": "NetConnection.Connect.Success", "level": "status"}});
    s.dispatch(&ok).expect("runs");
    let out = s.dispatch(&call).expect("runs");
    assert_eq!(out.result, Some(json!(true)));
    let Some(Op::Nc {
        nc: 1,
        action:
            ScriptNcAction::Call {
                method,
                call: id,
                args,
            },
    }) = out.ops.first().cloned()
    else {
        panic!("a call op: {:?}", out.ops)
    };
    assert_eq!((method.as_str(), args), ("upper", vec![json!("a")]));
    s.dispatch(&json!({"type": "result", "call": id, "ok": true, "value": "A"}))
        .expect("runs");
    // The far application calls a method of the connection; the API's own are not callable.
    let out = s
        .dispatch(&json!({"type": "nccall", "nc": 1, "method": "hello", "args": ["b"]}))
        .expect("runs");
    assert_eq!(out.result, Some(json!("hi b")));
    for method in ["connect", "close", "toString"] {
        let out = s
            .dispatch(&json!({"type": "nccall", "nc": 1, "method": method, "args": []}))
            .expect("runs");
        assert!(out.error.is_some(), "{method} is not callable");
    }
    let closed = json!({"type": "ncstatus", "nc": 1,
        "info": {"code": "NetConnection.Connect.Closed", "level": "status"}});
    s.dispatch(&closed).expect("runs");
    let out = s
        .dispatch(&json!({"type": "call", "client": 1, "method": "state", "args": []}))
        .expect("runs");
    assert_eq!(
        out.result,
        Some(json!({
            "early": false,
            "seen": ["NetConnection.Connect.Success true", "NetConnection.Connect.Closed false"],
            "answer": "A",
            "uri": "rtmp://127.0.0.1:1935/echo",
            "bad": false,
        }))
    );
}

#[test]
fn a_file_stays_in_the_application_folder() {
    let outside =
        std::env::temp_dir().join(format!("strata-script-outside-{}", std::process::id()));
    std::fs::write(&outside, "secret").expect("write");
    let (mut s, _) = load(
        "file",
        r#"
        Client.prototype.run = function (outside) {
            var out = {};
            var f = new File("notes/today.txt");
            out.missing = f.exists;
            out.mkdir = new File("/").mkdir("notes");
            out.open = f.open("text", "create");
            f.writeln("one");
            f.write("two");
            out.closed = f.close();
            out.length = f.length;
            f.open("text", "read");
            out.lines = f.readAll();
            f.close();
            f.open("text", "append");
            f.writeln("");
            f.writeln("three");
            f.close();
            f.open("text", "read");
            out.after = f.readAll();
            f.close();
            out.list = new File("notes").list().map(String);
            out.renamed = f.renameTo("notes/old.txt") && f.name;
            out.removed = new File("notes/old.txt").remove();
            // An absolute path is rooted at the application folder, as in AMS.
            out.absolute = new File(outside).exists;
            out.escapes = ["../x", "/../x", "notes/../../x", "link"].map(function (p) {
                try { new File(p).open("text", "read"); return "opened " + p; }
                catch (e) { return "refused"; }
            });
            return out;
        };
        "#,
    );
    let folder = std::env::temp_dir().join(format!("strata-script-file-{}", std::process::id()));
    std::os::unix::fs::symlink(&outside, folder.join("link")).expect("link");
    s.dispatch(&connect(1, json!([]))).expect("runs");
    let out = s
        .dispatch(&json!({"type": "call", "client": 1, "method": "run",
            "args": [outside.display().to_string()]}))
        .expect("runs");
    assert!(out.error.is_none(), "{:?}", out.error);
    assert_eq!(
        out.result,
        Some(json!({
            "missing": false,
            "mkdir": true,
            "open": true,
            "closed": true,
            "length": 7,
            "lines": ["one", "two"],
            "after": ["one", "two", "three"],
            "list": ["/notes/today.txt"],
            "renamed": "/notes/old.txt",
            "removed": true,
            "absolute": false,
            "escapes": ["refused", "refused", "refused", "refused"],
        }))
    );
    assert_eq!(std::fs::read_to_string(&outside).expect("read"), "secret");
    assert!(!folder.join("notes/old.txt").exists());
    let _ = std::fs::remove_file(&outside);
}

#[test]
fn stream_length_reads_the_files_duration() {
    use crate::media::vod::content_path::FileFormat;
    use crate::media::vod::indexer::index_bytes;
    const FLV: &[u8] = include_bytes!("../media/vod/testdata/avc_aac.flv");
    const MP4: &[u8] = include_bytes!("../media/vod/testdata/avc_aac.mp4");
    let root = app("lengths-root", &[]);
    std::fs::create_dir_all(root.join("chat/_definst_/shows")).expect("mkdir");
    std::fs::write(root.join("chat/_definst_/shows/clip.flv"), FLV).expect("write");
    std::fs::write(root.join("chat/_definst_/clip.mp4"), MP4).expect("write");
    std::fs::write(root.join("secret.flv"), FLV).expect("write");
    std::fs::write(root.join("chat/_definst_/broken.flv"), b"FLV not really").expect("write");
    let d = app(
        "lengths",
        &[(
            "main.asc",
            r#"Client.prototype.lengths = function () {
                 return ["shows/clip", "mp4:clip.mp4", "missing", "../../secret", "broken"]
                   .map(function (n) { return Stream.length(n); });
               };"#,
        )],
    );
    let (mut s, _) = ScriptContext::load_with(
        "chat",
        "_definst_",
        &d,
        &d.join("main.asc"),
        budget(),
        Some(root.clone()),
    )
    .expect("loads");
    s.dispatch(&connect(1, json!([]))).expect("runs");
    let out = s
        .dispatch(&json!({"type": "call", "client": 1, "method": "lengths", "args": []}))
        .expect("runs");
    let secs = |format, bytes| {
        let index = index_bytes(format, bytes).expect("indexes");
        f64::from(index.duration_ms) / 1000.0
    };
    let (flv, mp4) = (secs(FileFormat::Flv, FLV), secs(FileFormat::Iso, MP4));
    assert!(flv > 0.5 && mp4 > 0.5, "{flv} {mp4}");
    assert_eq!(out.result, Some(json!([flv, mp4, 0, 0, 0])));
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn bandwidth_limits_say_what_they_do() {
    let (mut s, _) = load(
        "bandwidth",
        r#"
        application.onConnect = function (c) {
            c.before = [c.getBandwidthLimit(0), c.getBandwidthLimit(1)];
            c.setBandwidthLimit(0, 64000);
            return true;
        };
        Client.prototype.limits = function () {
            this.setBandwidthLimit(500000, -1);
            return [this.before, this.getBandwidthLimit(0), this.getBandwidthLimit(1)];
        };
        "#,
    );
    let ev = json!({"type": "connect", "client": {"id": 1, "peerBandwidth": 2500000}, "args": []});
    let out = s.dispatch(&ev).expect("runs");
    assert_eq!(
        out.ops,
        vec![
            Op::Bandwidth {
                client: 1,
                bytes: 64000
            },
            accepted(1)
        ],
        "client to server: Set Peer Bandwidth to the client"
    );
    let out = s
        .dispatch(&json!({"type": "call", "client": 1, "method": "limits", "args": []}))
        .expect("runs");
    assert!(out.ops.is_empty(), "server to client: kept, nothing sent");
    assert_eq!(out.result, Some(json!([[2500000, 0], 64000, 500000])));
}

#[test]
fn statuses_without_a_handler_go_to_application_on_status() {
    let (mut s, _) = load(
        "appstatus",
        r#"
        var seen = [];
        application.onStatus = function (info) { seen.push(info.code); };
        var quiet = new NetConnection();
        quiet.connect("rtmp:/far");
        var loud = new NetConnection();
        loud.onStatus = function (info) { seen.push("loud " + info.code); };
        loud.connect("rtmp:/far");
        Stream.get("s");
        Client.prototype.seen = function () { return seen; };
        "#,
    );
    for ev in [
        json!({"type": "ncstatus", "nc": 1, "info": {"code": "NetConnection.Connect.Failed"}}),
        json!({"type": "ncstatus", "nc": 2, "info": {"code": "NetConnection.Connect.Closed"}}),
        json!({"type": "streamstatus", "name": "s", "code": "NetStream.Record.NoAccess", "details": ""}),
        connect(1, json!([])),
    ] {
        s.dispatch(&ev).expect("runs");
    }
    let out = s
        .dispatch(&json!({"type": "call", "client": 1, "method": "seen", "args": []}))
        .expect("runs");
    assert_eq!(
        out.result,
        Some(json!([
            "NetConnection.Connect.Failed",
            "loud NetConnection.Connect.Closed",
            "NetStream.Record.NoAccess"
        ]))
    );
}
