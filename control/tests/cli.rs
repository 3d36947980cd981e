//! `stratactl`'s one-shot commands against an in-process fake stratad.

mod common;

use common::{FakeStratad, Scratch};
use control::protocol::Call;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn stratactl(socket: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stratactl"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("STRATA_SOCKET")
        .stdin(Stdio::null())
        .output()
        .expect("run stratactl")
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

#[test]
fn status_prints_a_summary_and_a_worker_table() {
    let dir = Scratch::new("cli-status");
    let fake = FakeStratad::start(&dir.join("s.sock"));
    let out = stratactl(&fake.path, &["status"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("stratad 0.1.0-fake"), "{stdout}");
    assert!(stdout.contains("pid 4242, up 1h 2m"), "{stdout}");
    assert!(stdout.contains("WORKER  CONNECTIONS"), "{stdout}");
    assert!(stdout.contains("25%"), "{stdout}");
    // Worker 0 of the fake: 9,000 bytes out in 3 sends.
    assert!(stdout.contains("PER SEND"), "{stdout}");
    let row = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("0 "))
        .unwrap_or_else(|| panic!("no row for worker 0:\n{stdout}"));
    assert!(row.contains(" 3 "), "{row}");
}

#[test]
fn streams_table_and_json_show_the_viewers() {
    let dir = Scratch::new("cli-streams");
    let fake = FakeStratad::start(&dir.join("s.sock"));
    let out = stratactl(&fake.path, &["streams"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let header = table.lines().next().expect("header");
    assert!(
        header.starts_with("APP") && header.contains("VIEWERS"),
        "{table}"
    );
    let row = table.lines().nth(1).expect("row");
    assert!(
        row.contains("cam1") && row.contains("h264/aac") && row.contains("1.00 Mb/s"),
        "{row}"
    );

    let out = stratactl(&fake.path, &["streams", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["streams"][0]["name"], "cam1");
    assert_eq!(v["streams"][0]["viewers"], 3);
}

#[test]
fn clients_table_lists_every_client() {
    let dir = Scratch::new("cli-clients");
    let fake = FakeStratad::start(&dir.join("s.sock"));
    let out = stratactl(&fake.path, &["clients"]);
    assert!(out.status.success());
    let t = text(&out.stdout);
    assert_eq!(t.lines().count(), 5, "{t}");
    assert!(t.contains("pub:cam1") && t.contains("play:cam1"), "{t}");
}

#[test]
fn kick_sends_the_id_and_reports_stratads_answer() {
    let dir = Scratch::new("cli-kick");
    let fake = FakeStratad::start(&dir.join("s.sock"));
    let out = stratactl(&fake.path, &["kick", "3"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("client 3 disconnected"));
    assert!(fake.seen(|s| s.calls.contains(&Call::Kick { client: 3 })));

    let out = stratactl(&fake.path, &["kick", "99"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no client 99"),
        "{}",
        text(&out.stderr)
    );
    let out = stratactl(&fake.path, &["--json", "kick", "99"]);
    assert!(!out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json error");
    assert_eq!(v["code"], "not_found");
}

#[test]
fn stop_and_reload_are_forwarded() {
    let dir = Scratch::new("cli-stop");
    let fake = FakeStratad::start(&dir.join("s.sock"));
    assert!(stratactl(&fake.path, &["stop", "live/_definst_/cam1"])
        .status
        .success());
    assert!(stratactl(&fake.path, &["reload"]).status.success());
    fake.seen(|s| {
        assert!(s.calls.contains(&Call::StopStream {
            stream: "live/_definst_/cam1".into()
        }));
        assert!(s.calls.contains(&Call::Reload));
    });
}

#[test]
fn no_stratad_is_said_plainly() {
    let dir = Scratch::new("cli-none");
    let missing = dir.join("missing.sock");
    let out = stratactl(&missing, &["status"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "no stratad at {} (is it running? is --socket right?)",
            missing.display()
        )),
        "{err}"
    );

    // A stale socket file (its server gone): connection refused, the same message.
    let stale = dir.join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).expect("bind"));
    let out = stratactl(&stale, &["streams", "--json"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no stratad at"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_stratad_that_does_not_answer_times_out() {
    let dir = Scratch::new("cli-slow");
    let fake = FakeStratad::start(&dir.join("s.sock"));
    fake.set_delay(Duration::from_secs(7));
    let started = std::time::Instant::now();
    let out = stratactl(&fake.path, &["status"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("did not answer"),
        "{}",
        text(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(7));
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn events_stream_until_interrupted() {
    let dir = Scratch::new("cli-events");
    let fake = FakeStratad::start(&dir.join("s.sock"));
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_stratactl"))
            .arg("--socket")
            .arg(&fake.path)
            .arg("events")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn"),
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    common::wait_for(Duration::from_secs(5), || {
        (fake.subscribers() > 0).then_some(())
    })
    .expect("events subscribes");
    fake.broadcast(br#"{"event":"connect","ts":1.5,"client":3,"addr":"127.0.0.1:5"}"#);
    fake.broadcast(b"not json at all");
    fake.broadcast(br#"{"event":"publish_start","ts":2.0,"client":3,"addr":"127.0.0.1:5","app":"live","stream":"cam1"}"#);
    let first = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("first event");
    assert_eq!(first, "1.500 connect client=3 addr=127.0.0.1:5");
    let second = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("second event");
    assert!(
        second.contains("publish_start") && second.contains("stream=cam1"),
        "{second}"
    );
    drop(child);
    let _ = reader.join();
}

#[test]
fn upstreams_table_shows_groups_state_attempts_and_the_active_one() {
    let dir = Scratch::new("cli-upstreams");
    let fake = FakeStratad::start(&dir.join("s.sock"));
    let out = stratactl(&fake.path, &["upstreams"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let header = table.lines().next().expect("header");
    assert!(
        header.starts_with("APP") && header.contains("STATE") && header.contains("ACTIVE"),
        "{table}"
    );
    let waiting = table.lines().nth(1).expect("row");
    assert!(
        waiting.contains("server1") && waiting.contains("waiting") && waiting.contains(" 2 "),
        "{table}"
    );
    let streaming = table.lines().nth(2).expect("row");
    assert!(
        streaming.contains("server2") && streaming.contains("streaming") && streaming.contains('*'),
        "{table}"
    );
    let out = stratactl(&fake.path, &["--json", "upstreams"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["upstreams"][1]["active"], true);
}

#[test]
fn upstreams_links_lists_each_standing_link_with_its_streams() {
    let dir = Scratch::new("cli-upstream-links");
    let fake = FakeStratad::start(&dir.join("s.sock"));
    let out = stratactl(&fake.path, &["upstreams", "--links"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let registered = table.lines().nth(2).expect("row");
    assert!(
        registered.contains("* [cam news]") && registered.contains("registered"),
        "{table}"
    );
    let waiting = table.lines().nth(1).expect("row");
    assert!(
        waiting.contains("waiting") && !waiting.contains('['),
        "{table}"
    );
    let out = stratactl(&fake.path, &["--json", "upstreams", "--links"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["upstreams"][1]["streams"][1], "news");
    assert!(json["upstreams"][0].get("streams").is_none());
}

#[test]
fn so_commands_send_their_call_and_print_the_object() {
    use control::protocol::SoCall;
    let dir = Scratch::new("cli-so");
    let fake = FakeStratad::start(&dir.join("s.sock"));
    let out = stratactl(&fake.path, &["so", "get", "live/room", "chat"]);
    assert!(out.status.success());
    let printed = text(&out.stdout);
    assert!(
        printed.contains("chat") && printed.contains("temporary"),
        "{printed}"
    );
    assert!(
        printed.contains("topic") && printed.contains("\"rust\""),
        "{printed}"
    );
    assert!(
        stratactl(&fake.path, &["so", "set", "live", "chat", "n", "{\"a\":1}"])
            .status
            .success()
    );
    assert!(stratactl(&fake.path, &["so", "delete", "live", "chat"])
        .status
        .success());
    fake.seen(|s| {
        assert!(s.calls.contains(&Call::So(SoCall::Get {
            app: "live".into(),
            instance: "room".into(),
            name: "chat".into()
        })));
        assert!(s.calls.contains(&Call::So(SoCall::Set {
            app: "live".into(),
            instance: "_definst_".into(),
            name: "chat".into(),
            slot: "n".into(),
            value: serde_json::json!({"a": 1}),
        })));
        assert!(s.calls.contains(&Call::So(SoCall::Delete {
            app: "live".into(),
            instance: "_definst_".into(),
            name: "chat".into(),
            slot: None,
        })));
    });
}

#[test]
fn vod_lists_the_content_roots_files_and_asks_for_one_instance() {
    let dir = Scratch::new("cli-vod");
    let fake = FakeStratad::start(&dir.join("s.sock"));
    let out = stratactl(&fake.path, &["vod"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let t = text(&out.stdout);
    let header = t.lines().next().expect("header");
    assert!(
        header.starts_with("APP") && header.contains("NAME") && header.contains("SIZE"),
        "{t}"
    );
    assert_eq!(t.lines().count(), 4, "{t}");
    assert!(
        t.contains("mp4:dir/talk.mp4") && t.contains("16.2 MB"),
        "{t}"
    );
    // The duration when a worker has the file's index, else `-`.
    let clip = t.lines().find(|l| l.contains(" clip ")).expect("clip row");
    assert!(clip.trim_end().ends_with("60.1 s"), "{clip}");
    let talk = t.lines().find(|l| l.contains("talk")).expect("talk row");
    assert!(talk.trim_end().ends_with('-'), "{talk}");

    let out = stratactl(&fake.path, &["vod", "vod/room1", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["vod_files"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v["vod_files"][0]["name"], "rec");
    assert_eq!(v["truncated"], false);
    let asked = fake.seen(|s| s.calls.clone());
    assert!(asked.contains(&Call::Vod {
        app: None,
        instance: None
    }));
    assert!(asked.contains(&Call::Vod {
        app: Some("vod".into()),
        instance: Some("room1".into())
    }));
}

#[test]
fn multicast_lists_adds_and_removes_outputs() {
    use control::protocol::MulticastCall;
    let dir = Scratch::new("cli-multicast");
    let fake = FakeStratad::start(&dir.join("s.sock"));
    let out = stratactl(&fake.path, &["multicast", "list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let t = text(&out.stdout);
    assert!(
        t.starts_with("STREAM") && t.contains("239.1.1.1:5000") && t.contains("rtp"),
        "{t}"
    );
    let out = stratactl(
        &fake.path,
        &[
            "multicast",
            "add",
            "live/cam",
            "239.1.1.2:5002",
            "--ttl",
            "2",
            "--rate",
            "3000000",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = stratactl(
        &fake.path,
        &["multicast", "remove", "live/cam", "239.1.1.2:5002"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = stratactl(&fake.path, &["multicast", "add", "live/cam", "not-a-group"]);
    assert!(
        !out.status.success(),
        "a group that is not an address is refused"
    );
    fake.seen(|s| {
        let added = s.calls.iter().find_map(|c| match c {
            Call::Multicast(MulticastCall::Add { output }) => Some(output.clone()),
            _ => None,
        });
        let added = added.expect("an add call");
        assert_eq!((added.ttl, added.rate, added.rtp), (2, 3_000_000, false));
        assert!(s.calls.contains(&Call::Multicast(MulticastCall::Remove {
            stream: "live/cam".into(),
            group: "239.1.1.2:5002".parse().expect("addr"),
        })));
    });
}
