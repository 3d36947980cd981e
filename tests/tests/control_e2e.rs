//! The control socket with the real stratad (issue 4, "What it must show" 1-3): streams and
//! kick with ffmpeg players, /metrics from `stratactl serve`'s manager, and auth hooks.

use control::client::ControlClient;
use control::manager::{Manager, ManagerOptions};
use control::manager_config::{Decision, HookConfig, ReconnectConfig};
use control::protocol::{Call, Reply, StreamInfo};
use e2e::bounds;
use e2e::publisher::publish_sample;
use e2e::recorder::Recorder;
use e2e::rtmp_client::RtmpClient;
use e2e::sample_media::sample_flv;
use e2e::scratch_dir::ScratchDir;
use e2e::server::{Server, ServerOptions};
use e2e::tools::ffprobe_json;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn server_with_socket(dir: &ScratchDir, extra: &str) -> (Server, PathBuf) {
    let socket = dir.join("stratad.sock");
    let config = format!(
        "[control]\nsocket = {:?}\n{extra}",
        socket.display().to_string()
    );
    let server = Server::start_with(ServerOptions {
        config: Some(config),
        ..ServerOptions::default()
    });
    (server, socket)
}

fn call(socket: &Path, c: Call) -> Reply {
    ControlClient::connect(socket)
        .and_then(|mut client| client.request(c))
        .unwrap_or_else(|e| panic!("control call: {e}"))
}

fn stream(socket: &Path, name: &str) -> Option<StreamInfo> {
    match call(socket, Call::Streams) {
        Reply::Streams { streams } => streams.into_iter().find(|s| s.name == name),
        other => panic!("streams answered {other:?}"),
    }
}

/// Polls (bounded) until `f` holds.
fn wait_until(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect to the manager");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    let (head, body) = out.split_once("\r\n\r\n").expect("HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_string()
}

fn manager(socket: &Path, hooks: HookConfig) -> Manager {
    Manager::start(ManagerOptions {
        socket: socket.to_path_buf(),
        http: "127.0.0.1:0".into(),
        hooks,
        reconnect: ReconnectConfig {
            initial_ms: 50,
            max_ms: 500,
        },
    })
    .expect("manager")
}

#[test]
fn streams_show_three_viewers_and_bitrate_kick_closes_one_and_metrics_label_the_stream() {
    let dir = ScratchDir::new("control-streams");
    let (server, socket) = server_with_socket(&dir, "");
    let url = server.url("live/cam");
    let publisher = publish_sample(&url);
    let mut viewers: Vec<Recorder> = (0..3).map(|_| Recorder::start(&url)).collect();
    for v in viewers.iter_mut() {
        v.assert_keeps_receiving(bounds::STREAM_UP);
    }
    // The rate is over the last few seconds: let it settle on the steady publish.
    std::thread::sleep(Duration::from_secs(5));

    let probe = ffprobe_json(
        &[
            "-v",
            "error",
            "-show_format",
            "-of",
            "json",
            sample_flv().to_str().expect("utf-8"),
        ],
        Duration::from_secs(30),
    );
    let published: f64 = probe["format"]["bit_rate"]
        .as_str()
        .and_then(|b| b.parse().ok())
        .expect("sample bit_rate");
    let s = stream(&socket, "cam").expect("the stream is listed");
    assert_eq!(s.app, "live");
    assert_eq!(s.viewers, 3, "{s:?}");
    let ratio = s.bitrate_in / published;
    assert!(
        (0.8..=1.2).contains(&ratio),
        "bitrate_in {} vs published {published}",
        s.bitrate_in
    );

    // /metrics through the manager: Prometheus text with the viewer gauge for this stream.
    let m = manager(&socket, HookConfig::default());
    let text = http_get(m.http_addr(), "/metrics");
    let samples = control::metrics::parse(&text).expect("Prometheus text");
    let viewers_gauge = samples
        .iter()
        .find(|(n, l, _)| {
            n == "strata_stream_viewers" && l.contains(&("stream".into(), "cam".into()))
        })
        .unwrap_or_else(|| panic!("viewer gauge for cam in:\n{text}"));
    assert_eq!(viewers_gauge.2, 3.0);
    m.shutdown();

    // Kick one player: it stops, the others keep playing.
    let Reply::Clients { clients } = call(&socket, Call::Clients) else {
        panic!("clients")
    };
    let player = clients
        .iter()
        .find(|c| c.playing.iter().any(|p| p.contains("cam")))
        .expect("a player");
    call(&socket, Call::Kick { client: player.id });
    wait_until(Duration::from_secs(10), "2 viewers after the kick", || {
        stream(&socket, "cam").is_some_and(|s| s.viewers == 2)
    });
    // The kicked player's ffmpeg ends; the other two keep receiving.
    let mut kicked = None;
    wait_until(Duration::from_secs(15), "the kicked ffmpeg to exit", || {
        kicked = viewers.iter_mut().position(|v| !v.child.is_running());
        kicked.is_some()
    });
    viewers.remove(kicked.expect("kicked"));
    for v in viewers.iter_mut() {
        v.assert_keeps_receiving(Duration::from_secs(10));
    }
    drop(publisher);
}

/// 200 for `key=good`, 403 otherwise.
struct Hook {
    url: String,
    server: Arc<tiny_http::Server>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Hook {
    fn start() -> Hook {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("hook"));
        let port = server.server_addr().to_ip().expect("ip").port();
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (server.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                let Ok(Some(mut req)) = s.recv_timeout(Duration::from_millis(50)) else {
                    continue;
                };
                let mut body = String::new();
                let _ = req.as_reader().read_to_string(&mut body);
                let good =
                    form_urlencoded::parse(body.as_bytes()).any(|(k, v)| k == "key" && v == "good");
                let _ = req.respond(tiny_http::Response::empty(if good { 200 } else { 403 }));
            }
        });
        Hook {
            url: format!("http://127.0.0.1:{port}/on_publish"),
            server,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Hook {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Publishes `name` with our client; returns the onStatus code.
fn publish_status(server: &Server, name: &str) -> String {
    let mut c = RtmpClient::connected(server.addr(), "live").expect("connect");
    c.publish(name).expect("publish");
    let reply = c
        .wait_command(bounds::MESSAGE, "onStatus", |cmd| cmd.name == "onStatus")
        .expect("onStatus");
    e2e::rtmp_client::info_code(&reply).unwrap_or_default()
}

#[test]
fn auth_hook_denies_a_key_allows_another_and_the_default_applies_when_the_hook_is_down() {
    let dir = ScratchDir::new("control-auth");
    let (server, socket) = server_with_socket(
        &dir,
        "[auth]\non = [\"publish\"]\ndefault = \"allow\"\ntimeout_ms = 3000\n",
    );
    let hook = Hook::start();
    let hooks = HookConfig {
        on_publish: Some(hook.url.clone()),
        timeout_ms: 1000,
        default: Decision::Deny,
        ..HookConfig::default()
    };
    let m = manager(&socket, hooks.clone());
    wait_until(Duration::from_secs(10), "the manager to connect", || {
        m.connected()
    });
    std::thread::sleep(Duration::from_millis(300)); // its auth_register is processed

    assert_eq!(
        publish_status(&server, "good?key=good"),
        "NetStream.Publish.Start"
    );
    assert_eq!(
        publish_status(&server, "bad?key=bad"),
        "NetStream.Publish.BadName"
    );

    // The hook's server goes away: the manager's default (deny) applies.
    drop(hook);
    assert_eq!(
        publish_status(&server, "down?key=good"),
        "NetStream.Publish.BadName"
    );
    m.shutdown();

    // No manager at all: stratad's own default (allow) applies and it keeps working.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        publish_status(&server, "nomanager?key=bad"),
        "NetStream.Publish.Start"
    );
}

#[test]
fn malformed_and_unknown_requests_get_errors_and_a_silent_client_blocks_nothing() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::net::UnixStream;
    let dir = ScratchDir::new("control-hostile");
    let (mut server, socket) = server_with_socket(&dir, "");
    let url = server.url("live/cam");
    let _publisher = publish_sample(&url);
    let mut viewer = Recorder::start(&url);
    viewer.assert_keeps_receiving(bounds::STREAM_UP);

    let _silent = UnixStream::connect(&socket).expect("silent client");
    let conn = UnixStream::connect(&socket).expect("control client");
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut writer = conn.try_clone().expect("clone");
    let mut reader = BufReader::new(conn);
    for (line, code) in [
        ("this is not json", "bad_request"),
        (r#"{"v":1,"id":5,"method":"frobnicate"}"#, "unknown_method"),
    ] {
        writeln!(writer, "{line}").expect("send");
        let mut answer = String::new();
        reader.read_line(&mut answer).expect("an answer");
        let v: serde_json::Value = serde_json::from_str(&answer).expect("JSON answer");
        assert_eq!(v["error"]["code"], code, "{line} -> {answer}");
    }
    // With the silent client still connected, others are served and media flows.
    assert!(matches!(call(&socket, Call::Status), Reply::Status(_)));
    viewer.assert_keeps_receiving(Duration::from_secs(10));
    server.assert_alive();
}
