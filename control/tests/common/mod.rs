//! Test support: an in-process fake stratad (a Unix socket speaking the control protocol in
//! threads), a tiny hook server, and scratch paths. Everything stops on drop.
#![allow(dead_code)]

use control::line_reader::{Line, LineReader};
use control::protocol::*;
use std::io::Write;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_millis(20);

/// A fresh directory under the temp dir, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(label: &str) -> Scratch {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "strata-ctl-{label}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Polls `f` until it returns Some, at most `timeout`.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

pub fn status() -> ServerStatus {
    ServerStatus {
        version: "0.1.0-fake".into(),
        protocol: PROTOCOL_VERSION,
        pid: 4242,
        uptime_s: 3725.0,
        workers: vec![
            WorkerStatus {
                id: 0,
                connections: 3,
                bytes_in: 1_000,
                bytes_out: 9_000,
                sends: 3,
                so_messages_in: 0,
                so_messages_out: 0,
                rtmfp_sessions: 0,
                load: 0.25,
            },
            WorkerStatus {
                id: 1,
                connections: 1,
                bytes_in: 500,
                bytes_out: 3_000,
                sends: 1,
                so_messages_in: 0,
                so_messages_out: 0,
                rtmfp_sessions: 0,
                load: 0.5,
            },
        ],
        connections: 4,
        streams: 1,
        bytes_in: 1_500,
        bytes_out: 12_000,
        bits_in_per_s: 1_000_000.0,
        bits_out_per_s: 3_000_000.0,
        dropped_frames: 7,
        recordings_started: 0,
        recordings_failed: 0,
    }
}

pub fn upstreams() -> Vec<control::protocol::UpstreamInfo> {
    let group = |label: &str, primary: &str, state: &str, active, position, attempts| {
        control::protocol::UpstreamInfo {
            app: "lsc_edge".into(),
            stream: "cam".into(),
            worker: 0,
            group: label.into(),
            primary: primary.into(),
            secondary: "127.0.0.9:1935".into(),
            address: primary.into(),
            state: state.into(),
            attempts,
            active,
            position,
            since: 1_700_000_000.0,
            streams: Vec::new(),
        }
    };
    vec![
        group("server1", "127.0.0.2:1935", "waiting", false, None, 2),
        group("server2", "127.0.0.3:1935", "streaming", true, Some(0), 0),
    ]
}

/// Standing links: one registered with two live streams, one waiting.
pub fn upstream_links() -> Vec<control::protocol::UpstreamInfo> {
    let mut links = upstreams();
    for (link, streams) in links.iter_mut().zip([vec![], vec!["cam", "news"]]) {
        link.stream = "*".into();
        link.state = if streams.is_empty() {
            "waiting"
        } else {
            "registered"
        }
        .into();
        link.streams = streams.into_iter().map(String::from).collect();
    }
    links
}

pub fn streams() -> Vec<StreamInfo> {
    vec![StreamInfo {
        app: "live".into(),
        instance: "_definst_".into(),
        name: "cam1".into(),
        publisher: Some("127.0.0.1:40000".into()),
        publisher_client: Some(1),
        video_codec: Some("h264".into()),
        audio_codec: Some("aac".into()),
        bitrate_in: 1_000_000.0,
        bitrate_out: 3_000_000.0,
        viewers: 3,
        gop_frames: 50,
        since: 0.0,
        recording: None,
        multicast: Vec::new(),
    }]
}

/// The fake's content root: two files of `vod`'s default instance, one of `vod/room1`.
pub fn vod_files() -> Vec<control::protocol::VodFileInfo> {
    let file = |instance: &str, name: &str, size, duration_s| control::protocol::VodFileInfo {
        app: "vod".into(),
        instance: instance.into(),
        name: name.into(),
        size,
        duration_s,
    };
    vec![
        file("_definst_", "clip", 16_221_938, Some(60.067)),
        file("_definst_", "mp4:dir/talk.mp4", 2_048, None),
        file("room1", "rec", 512, None),
    ]
}

pub fn clients() -> Vec<ClientInfo> {
    (1..=4)
        .map(|id| ClientInfo {
            id,
            addr: format!("127.0.0.1:{}", 40000 + id),
            protocol: "rtmp".into(),
            app: Some("live".into()),
            worker: (id % 2) as usize,
            publishing: if id == 1 { vec!["cam1".into()] } else { vec![] },
            playing: if id == 1 { vec![] } else { vec!["cam1".into()] },
            bytes_in: 100,
            bytes_out: 200,
            lag_ms: 5,
            since: 0.0,
            peer_id: None,
            rtt_ms: None,
        })
        .collect()
}

/// What the fake saw.
#[derive(Default)]
pub struct Seen {
    pub calls: Vec<Call>,
    /// (request, allow) of each auth_reply.
    pub auth_replies: Vec<(u64, bool)>,
    /// Lines that did not parse as requests.
    pub bad_lines: usize,
}

/// A connection's write half. The connection's thread (responses) and the test thread
/// (`broadcast`) both write to it, so every line goes out whole, in one write under `lock`,
/// as in stratad, where one thread writes each client's lines: two writers on one socket
/// would otherwise splice a response into an event line, and the client would lose it.
struct Writer {
    stream: UnixStream,
    lock: Mutex<()>,
}

impl Writer {
    fn line(&self, line: &[u8]) -> std::io::Result<()> {
        let mut whole = Vec::with_capacity(line.len() + 1);
        whole.extend_from_slice(line);
        whole.push(b'\n');
        let _one_writer = self.lock.lock().expect("writer");
        (&self.stream).write_all(&whole)
    }
}

struct Inner {
    stop: AtomicBool,
    seen: Mutex<Seen>,
    /// Write halves of subscribed connections.
    subscribers: Mutex<Vec<Arc<Writer>>>,
    /// A delay before every response (to test timeouts).
    delay_ms: AtomicU64,
}

pub struct FakeStratad {
    pub path: PathBuf,
    inner: Arc<Inner>,
    accept: Option<JoinHandle<()>>,
}

impl FakeStratad {
    pub fn start(path: &Path) -> FakeStratad {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).expect("bind fake stratad");
        listener.set_nonblocking(true).expect("nonblocking");
        let inner = Arc::new(Inner {
            stop: AtomicBool::new(false),
            seen: Mutex::new(Seen::default()),
            subscribers: Mutex::new(Vec::new()),
            delay_ms: AtomicU64::new(0),
        });
        let i = inner.clone();
        let accept = std::thread::spawn(move || {
            let mut conns = Vec::new();
            while !i.stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let i = i.clone();
                        conns.push(std::thread::spawn(move || serve_conn(&i, s)));
                    }
                    Err(_) => std::thread::sleep(POLL),
                }
            }
            for c in conns {
                let _ = c.join();
            }
        });
        FakeStratad {
            path: path.to_path_buf(),
            inner,
            accept: Some(accept),
        }
    }

    pub fn set_delay(&self, d: Duration) {
        self.inner
            .delay_ms
            .store(d.as_millis() as u64, Ordering::Relaxed);
    }

    pub fn seen<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.inner.seen.lock().expect("seen"))
    }

    pub fn subscribers(&self) -> usize {
        self.inner.subscribers.lock().expect("subs").len()
    }

    /// Sends a raw line (plus newline) to every subscribed connection.
    pub fn broadcast(&self, line: &[u8]) {
        for s in self.inner.subscribers.lock().expect("subs").iter() {
            let _ = s.line(line);
        }
    }

    pub fn send_auth(&self, request: u64, action: &str, stream: &str, query: &str) {
        let line = serde_json::to_string(&AuthRequestLine {
            auth: AuthRequest {
                request,
                action: action.into(),
                client: request,
                addr: "127.0.0.1:50000".into(),
                app: "live".into(),
                stream: Some(stream.into()),
                query: Some(query.into()),
                tc_url: Some("rtmp://127.0.0.1/live".into()),
            },
        })
        .expect("encode");
        self.broadcast(line.as_bytes());
    }

    /// The allow flag of the reply to auth request `request`, waiting up to `timeout`.
    pub fn auth_reply(&self, request: u64, timeout: Duration) -> Option<bool> {
        wait_for(timeout, || {
            self.seen(|s| {
                s.auth_replies
                    .iter()
                    .find(|(r, _)| *r == request)
                    .map(|(_, a)| *a)
            })
        })
    }
}

impl Drop for FakeStratad {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::Relaxed);
        for s in self.inner.subscribers.lock().expect("subs").drain(..) {
            let _ = s.stream.shutdown(std::net::Shutdown::Both);
        }
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn serve_conn(inner: &Inner, stream: UnixStream) {
    stream.set_read_timeout(Some(POLL)).expect("timeout");
    let writer = Arc::new(Writer {
        stream: stream.try_clone().expect("clone"),
        lock: Mutex::new(()),
    });
    let mut reader = LineReader::new(stream);
    while !inner.stop.load(Ordering::Relaxed) {
        let line = match reader.read_line() {
            Ok(Line::Text(t)) => t,
            Ok(Line::NotUtf8) => continue,
            Ok(_) => return,
            Err(e) if control::line_reader::is_timeout(&e) => continue,
            Err(_) => return,
        };
        let delay = inner.delay_ms.load(Ordering::Relaxed);
        if delay > 0 {
            std::thread::sleep(Duration::from_millis(delay));
        }
        let req: Request = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => {
                inner.seen.lock().expect("seen").bad_lines += 1;
                let line = format!(
                    r#"{{"id":0,"error":{{"code":"bad_request","message":{}}}}}"#,
                    serde_json::to_string(&e.to_string()).expect("str")
                );
                let _ = writer.line(line.as_bytes());
                continue;
            }
        };
        inner
            .seen
            .lock()
            .expect("seen")
            .calls
            .push(req.call.clone());
        let done = |message: Option<&str>| {
            Some(Reply::Done {
                done: true,
                message: message.map(String::from),
            })
        };
        let (result, error) = match &req.call {
            Call::Status => (Some(Reply::Status(status())), None),
            Call::Streams => (Some(Reply::Streams { streams: streams() }), None),
            Call::Clients => (Some(Reply::Clients { clients: clients() }), None),
            Call::Upstreams => (
                Some(Reply::Upstreams {
                    upstreams: upstreams(),
                }),
                None,
            ),
            Call::UpstreamLinks => (
                Some(Reply::Upstreams {
                    upstreams: upstream_links(),
                }),
                None,
            ),
            Call::Kick { client } if (1..=4).contains(client) => {
                (done(Some(&format!("client {client} disconnected"))), None)
            }
            Call::Kick { client } => (
                None,
                Some(ErrorBody {
                    code: "not_found".into(),
                    message: format!("no client {client}"),
                }),
            ),
            Call::StopStream { .. }
            | Call::Reload
            | Call::AppReload { .. }
            | Call::Subscribe
            | Call::AuthRegister
            | Call::RpcRegister
            | Call::RpcReply { .. }
            | Call::Broadcast { .. } => (done(None), None),
            Call::ClientCall { client, .. } => (
                None,
                Some(ErrorBody {
                    code: "not_found".into(),
                    message: format!("no client {client}"),
                }),
            ),
            Call::Vod { app, instance } => (
                Some(Reply::VodFiles {
                    vod_files: vod_files()
                        .into_iter()
                        .filter(|f| app.as_ref().is_none_or(|a| *a == f.app))
                        .filter(|f| instance.as_ref().is_none_or(|i| *i == f.instance))
                        .collect(),
                    truncated: false,
                }),
                None,
            ),
            Call::Multicast(control::protocol::MulticastCall::List) => (
                Some(Reply::Multicast {
                    multicast: vec![control::protocol::MulticastListed {
                        output: serde_json::from_str(
                            r#"{"stream":"live/cam","group":"239.1.1.1:5000","rtp":true}"#,
                        )
                        .expect("output"),
                        origin: "config".into(),
                    }],
                }),
                None,
            ),
            Call::Multicast(_) => (done(None), None),
            Call::So(_) => (
                Some(Reply::SharedObjects {
                    shared_objects: vec![control::protocol::SoInfo {
                        name: "chat".into(),
                        persistent: false,
                        version: 3,
                        users: 2,
                        slots: Some(serde_json::json!({"topic": "rust"})),
                    }],
                }),
                None,
            ),
            Call::AuthReply { request, allow, .. } => {
                inner
                    .seen
                    .lock()
                    .expect("seen")
                    .auth_replies
                    .push((*request, *allow));
                (done(None), None)
            }
        };
        let resp = Response {
            id: req.id,
            result,
            error,
        };
        let _ = writer.line(&serde_json::to_vec(&resp).expect("encode"));
        // Events only after the answer to `subscribe`, as stratad sends them: a test that
        // waits for `subscribers()` and then broadcasts knows the answer went first.
        if matches!(req.call, Call::Subscribe) {
            inner
                .subscribers
                .lock()
                .expect("subs")
                .push(Arc::clone(&writer));
        }
    }
}

/// A hook endpoint in the style of nginx-rtmp's on_publish targets: 200 for `key=good`, 403
/// for anything else, and for `key=slow` a 200 after `slow` (too late for the manager).
pub struct HookServer {
    pub url: String,
    server: Arc<tiny_http::Server>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    pub bodies: Arc<Mutex<Vec<String>>>,
}

impl HookServer {
    pub fn start(slow: Duration) -> HookServer {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("hook server"));
        let port = server.server_addr().to_ip().expect("ip").port();
        let stop = Arc::new(AtomicBool::new(false));
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let (s, st, b) = (server.clone(), stop.clone(), bodies.clone());
        let thread = std::thread::spawn(move || {
            let mut handlers = Vec::new();
            while !st.load(Ordering::Relaxed) {
                let Ok(Some(mut req)) = s.recv_timeout(POLL) else {
                    continue;
                };
                let b = b.clone();
                let st = st.clone();
                handlers.push(std::thread::spawn(move || {
                    let mut body = String::new();
                    let _ = req.as_reader().read_to_string(&mut body);
                    b.lock().expect("bodies").push(body.clone());
                    let fields: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
                        .into_owned()
                        .collect();
                    let key = fields
                        .iter()
                        .find(|(k, _)| k == "key")
                        .map(|(_, v)| v.as_str());
                    let code = match key {
                        Some("good") => 200,
                        Some("slow") => {
                            let deadline = Instant::now() + slow;
                            while Instant::now() < deadline && !st.load(Ordering::Relaxed) {
                                std::thread::sleep(POLL);
                            }
                            200
                        }
                        _ => 403,
                    };
                    let _ = req.respond(tiny_http::Response::empty(code));
                }));
            }
            for h in handlers {
                let _ = h.join();
            }
        });
        HookServer {
            url: format!("http://127.0.0.1:{port}/auth"),
            server,
            stop,
            thread: Some(thread),
            bodies,
        }
    }
}

impl Drop for HookServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A loopback URL where nothing listens.
pub fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    drop(l);
    format!("http://127.0.0.1:{port}/auth")
}
