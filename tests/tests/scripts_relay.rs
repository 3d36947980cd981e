//! Server-side NetConnection (issue 13): the relay example (examples/scripts/relay), as
//! LiveStreamCast's FCRemoteConnection.asc, forwards a client's calls to another
//! application over a connection its script opened, and the answers reach the client;
//! the far application calls a method on that connection; a connect to a closed port
//! reaches the script's onStatus as NetConnection.Connect.Failed, a far script's
//! rejection as NetConnection.Connect.Rejected with its error object; a far server that goes
//! away reaches it as NetConnection.Connect.Closed.

use dataplane::proto::amf0::Amf0Value;
use e2e::pyrtmp::PyScript;
use e2e::rtmp_client::RtmpClient;
use e2e::scratch_dir::ScratchDir;
use e2e::server::{workspace_dir, Server, ServerOptions};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);

fn scripts_server(dir: &std::path::Path) -> Server {
    Server::start_with(ServerOptions {
        config: Some(format!(
            "[scripts]\ndir = {:?}\n",
            dir.display().to_string()
        )),
        ..ServerOptions::default()
    })
}

/// A TCP port on 127.0.0.1 where nothing listens (bound, then let go).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

#[test]
fn python_librtmp_calls_through_the_relay_to_another_application() {
    let server = scripts_server(&workspace_dir().join("examples/scripts"));
    let nowhere = format!("rtmp://127.0.0.1:{}/x", closed_port());
    let py = PyScript::start_with_args("script_relay.py", &[&server.url("relay"), &nowhere]);
    assert_eq!(py.next("linked"), "linked");
    assert_eq!(py.next("relay"), "relay: true");
    // echo's answer, relayed: echo saw the relay's connect arguments.
    assert_eq!(
        py.next("upper"),
        "upper: [\"upper\", \"HELLO (echo for relay)\"]"
    );
    // echo called `hello` on the relay's connection and kept the answer.
    assert_eq!(
        py.next("greeting"),
        "greeting: [\"greeting\", \"relay relay greets echo\"]"
    );
    assert_eq!(
        py.next("nosuch"),
        "nosuch: [\"nosuch\", \"NetConnection.Call.Failed\"]"
    );
    assert_eq!(py.next("probe"), "probe: true");
    assert_eq!(
        py.next("probed"),
        format!("probed: [\"{nowhere}\", \"NetConnection.Connect.Failed\", null]")
    );
    // The far script's rejection, with its error object's message.
    assert_eq!(
        py.next("refused"),
        "refused: [\"rtmp:/echo\", \"NetConnection.Connect.Rejected\", \"relays only\"]"
    );
    assert!(server
        .wait_log_line(&["script NetConnection failed", "app=relay"], WAIT)
        .is_some());
}

fn call(c: &mut RtmpClient, method: &str, args: &[Amf0Value]) -> Option<Amf0Value> {
    let r = c.call(method, args, WAIT).expect("an answer");
    assert_eq!(r.name, "_result", "{r:?}");
    r.args.first().cloned()
}

fn wait_linked(c: &mut RtmpClient, linked: bool) {
    let deadline = Instant::now() + WAIT;
    while call(c, "linked", &[]) != Some(Amf0Value::Boolean(linked)) {
        assert!(Instant::now() < deadline, "never linked={linked}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The relay on one server, echo on another: the relay links to it, a call goes through,
/// and when the far server goes away the script hears NetConnection.Connect.Closed (its
/// link is down: `linked` says false).
#[test]
fn a_relay_to_another_server_hears_it_go_away() {
    let far = scripts_server(&workspace_dir().join("examples/scripts"));
    let dir = ScratchDir::new("scripts-relay");
    let apps = dir.join("apps");
    std::fs::create_dir_all(apps.join("relay")).expect("mkdir");
    let example = std::fs::read_to_string(workspace_dir().join("examples/scripts/relay/main.asc"))
        .expect("the relay example");
    let script = example.replace("\"rtmp:/echo\"", &format!("{:?}", far.url("echo")));
    assert_ne!(script, example, "the example names its remote");
    std::fs::write(apps.join("relay/main.asc"), script).expect("write");
    let near = scripts_server(&apps);

    let mut c = RtmpClient::connected(near.addr(), "relay").expect("connect");
    wait_linked(&mut c, true);
    assert_eq!(
        call(
            &mut c,
            "relay",
            &[Amf0Value::string("upper"), Amf0Value::string("far")]
        ),
        Some(Amf0Value::Boolean(true))
    );
    let relayed = c
        .wait_command(WAIT, "onRelayed", |m| m.name == "onRelayed")
        .expect("the far answer comes back");
    assert_eq!(
        relayed.args.get(1),
        Some(&Amf0Value::string("FAR (echo for relay)")),
        "{relayed:?}"
    );

    drop(far);
    wait_linked(&mut c, false);
    assert!(near
        .wait_log_line(&["NetConnection.Connect.Closed"], WAIT)
        .is_some());
}
