//! An application instance's life (issue 13): a connect the script never decides is
//! rejected at `pending_timeout_ms` with a description that says so; an instance without
//! clients is stopped (onAppStop) and unloaded after `idle_unload_ms`, and its next client
//! gets a fresh script; at server shutdown every instance's onAppStop runs, and one that
//! loops does not hold the shutdown past its budget.

use dataplane::proto::amf0::Amf0Value;
use e2e::rtmp_client::RtmpClient;
use e2e::scratch_dir::ScratchDir;
use e2e::server::{Server, ServerOptions};
use std::path::Path;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);

fn app(dir: &Path, name: &str, script: &str) {
    std::fs::create_dir_all(dir.join(name)).expect("mkdir");
    std::fs::write(dir.join(name).join("main.asc"), script).expect("write");
}

fn server(apps: &Path, extra: &str) -> Server {
    Server::start_with(ServerOptions {
        config: Some(format!(
            "[scripts]\ndir = {:?}\n{extra}",
            apps.display().to_string()
        )),
        ..ServerOptions::default()
    })
}

#[test]
fn an_undecided_connect_is_rejected_at_its_deadline() {
    let dir = ScratchDir::new("scripts-pending");
    let apps = dir.join("apps");
    app(
        &apps,
        "slow",
        "application.onConnect = function (c) { /* never decides */ };\n",
    );
    let server = server(&apps, "pending_timeout_ms = 400\n");
    let mut c = RtmpClient::open(server.addr()).expect("handshake");
    let started = Instant::now();
    let refused = c
        .connect("slow", &server.tc_url("slow"))
        .expect_err("rejected");
    let waited = started.elapsed();
    let text = refused.to_string();
    assert!(text.contains("NetConnection.Connect.Rejected"), "{text}");
    assert!(
        text.contains("did not accept or reject it within 400 ms"),
        "{text}"
    );
    assert!(
        waited >= Duration::from_millis(350) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert!(server
        .wait_log_line(&["left a connect undecided", "app=slow"], WAIT)
        .is_some());
}

#[test]
fn an_idle_instance_is_stopped_and_unloaded() {
    let dir = ScratchDir::new("scripts-idle");
    let apps = dir.join("apps");
    app(
        &apps,
        "room",
        "var count = 0;\n\
         Client.prototype.next = function () { count += 1; return count; };\n\
         application.onAppStop = function () { trace('onAppStop of ' + application.name); };\n",
    );
    let server = server(&apps, "idle_unload_ms = 500\n");
    let call = |c: &mut RtmpClient| {
        let r = c.call("next", &[], WAIT).expect("an answer");
        assert_eq!(r.name, "_result", "{r:?}");
        r.args.first().cloned()
    };
    let mut c = RtmpClient::connected(server.addr(), "room/a").expect("connect");
    assert_eq!(call(&mut c), Some(Amf0Value::Number(1.0)));
    assert_eq!(call(&mut c), Some(Amf0Value::Number(2.0)));
    // Busy for longer than the idle time: not unloaded while a client is there.
    std::thread::sleep(Duration::from_millis(900));
    assert_eq!(call(&mut c), Some(Amf0Value::Number(3.0)));
    drop(c);
    assert!(server
        .wait_log_line(&["onAppStop of room/a"], WAIT)
        .is_some());
    assert!(server
        .wait_log_line(&["application instance unloaded", "app=room", "idle"], WAIT)
        .is_some());
    let mut again = RtmpClient::connected(server.addr(), "room/a").expect("connect");
    assert_eq!(
        call(&mut again),
        Some(Amf0Value::Number(1.0)),
        "a fresh script"
    );
}

#[test]
fn on_app_stop_runs_at_shutdown_and_a_looping_one_is_cut_short() {
    let dir = ScratchDir::new("scripts-stop");
    let apps = dir.join("apps");
    app(
        &apps,
        "tidy",
        "application.onAppStop = function () { trace('tidy stopped cleanly'); };\n",
    );
    app(
        &apps,
        "stuck",
        "application.onAppStop = function () { trace('stuck stopping'); for (;;) {} };\n",
    );
    let mut server = server(&apps, "time_budget_ms = 300\n");
    let _tidy = RtmpClient::connected(server.addr(), "tidy").expect("tidy");
    let _stuck = RtmpClient::connected(server.addr(), "stuck").expect("stuck");
    let started = Instant::now();
    server.signal(libc::SIGTERM);
    let status = server.wait_exit(WAIT).expect("the server exits");
    let took = started.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(4), "shutdown took {took:?}");
    let log = server.log();
    assert!(log.contains("tidy stopped cleanly"), "{log}");
    assert!(log.contains("stuck stopping"), "{log}");
    assert!(log.contains("budget of 300 ms"), "{log}");
}
