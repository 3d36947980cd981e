//! `stratactl reload` reloads the scripts that changed (issue 13): the changed
//! application's clients get NetConnection.Connect.AppShutdown and its next client runs
//! the new script; another application's clients stay connected, script state and all.

use control::client::ControlClient;
use control::protocol::{Call, Reply};
use dataplane::proto::amf0::Amf0Value;
use e2e::rtmp_client::RtmpClient;
use e2e::scratch_dir::ScratchDir;
use e2e::server::{Server, ServerOptions};
use std::path::Path;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

fn version_script(version: u32) -> String {
    format!(
        "var count = 0;\n\
         Client.prototype.version = function () {{ return {version}; }};\n\
         Client.prototype.next = function () {{ count += 1; return count; }};\n"
    )
}

fn call(c: &mut RtmpClient, method: &str) -> Option<Amf0Value> {
    let r = c.call(method, &[], WAIT).expect("an answer");
    assert_eq!(r.name, "_result", "{r:?}");
    r.args.first().cloned()
}

fn write(dir: &Path, app: &str, text: &str) {
    std::fs::create_dir_all(dir.join(app)).expect("mkdir");
    std::fs::write(dir.join(app).join("main.asc"), text).expect("write");
}

#[test]
fn reload_replaces_changed_scripts_only() {
    let dir = ScratchDir::new("scripts-reload");
    let apps = dir.join("apps");
    write(&apps, "one", &version_script(1));
    write(&apps, "two", &version_script(1));
    let socket = dir.join("stratad.sock");
    let server = Server::start_with(ServerOptions {
        config: Some(format!(
            "[control]\nsocket = {:?}\n[scripts]\ndir = {:?}\n",
            socket.display().to_string(),
            apps.display().to_string()
        )),
        ..ServerOptions::default()
    });
    let mut one = RtmpClient::connected(server.addr(), "one").expect("one");
    let mut two = RtmpClient::connected(server.addr(), "two").expect("two");
    assert_eq!(call(&mut one, "version"), Some(Amf0Value::Number(1.0)));
    assert_eq!(call(&mut two, "next"), Some(Amf0Value::Number(1.0)));

    write(&apps, "one", &version_script(2));
    let mut control = ControlClient::connect(&socket).expect("control socket");
    match control.request(Call::Reload) {
        Ok(Reply::Done { done: true, .. }) => {}
        other => panic!("reload answered {other:?}"),
    }
    one.wait_status("NetConnection.Connect.AppShutdown", WAIT)
        .expect("the changed application's client is told");
    assert!(server
        .wait_log_line(
            &["application instance unloaded", "app=one", "reloaded"],
            WAIT
        )
        .is_some());

    // The other application kept its client and its script's state.
    assert_eq!(call(&mut two, "next"), Some(Amf0Value::Number(2.0)));
    let mut again = RtmpClient::connected(server.addr(), "one").expect("one again");
    assert_eq!(call(&mut again, "version"), Some(Amf0Value::Number(2.0)));
}

/// `stratactl app reload APP` (the `app_reload` control request): APP's instance is
/// unloaded though nothing changed (its client gets AppShutdown, its next client a fresh
/// script); another application keeps its client and state; an application without a
/// script is an error.
#[test]
fn app_reload_unloads_one_application_only() {
    let dir = ScratchDir::new("scripts-app-reload");
    let apps = dir.join("apps");
    write(&apps, "one", &version_script(1));
    write(&apps, "two", &version_script(1));
    let socket = dir.join("stratad.sock");
    let server = Server::start_with(ServerOptions {
        config: Some(format!(
            "[control]\nsocket = {:?}\n[scripts]\ndir = {:?}\n",
            socket.display().to_string(),
            apps.display().to_string()
        )),
        ..ServerOptions::default()
    });
    let mut one = RtmpClient::connected(server.addr(), "one").expect("one");
    let mut two = RtmpClient::connected(server.addr(), "two").expect("two");
    assert_eq!(call(&mut one, "next"), Some(Amf0Value::Number(1.0)));
    assert_eq!(call(&mut two, "next"), Some(Amf0Value::Number(1.0)));

    let mut control = ControlClient::connect(&socket).expect("control socket");
    match control.request(Call::AppReload { app: "one".into() }) {
        Ok(Reply::Done { done: true, .. }) => {}
        other => panic!("app reload answered {other:?}"),
    }
    one.wait_status("NetConnection.Connect.AppShutdown", WAIT)
        .expect("the reloaded application's client is told");
    assert!(server
        .wait_log_line(
            &["application instance unloaded", "app=one", "operator"],
            WAIT
        )
        .is_some());
    assert_eq!(call(&mut two, "next"), Some(Amf0Value::Number(2.0)));
    let mut again = RtmpClient::connected(server.addr(), "one").expect("one again");
    assert_eq!(
        call(&mut again, "next"),
        Some(Amf0Value::Number(1.0)),
        "a fresh script"
    );
    assert!(
        control
            .request(Call::AppReload {
                app: "nothing".into()
            })
            .is_err(),
        "an application without a script is an error"
    );
}
