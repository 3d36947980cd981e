//! `strata-load connect`: N clients connecting to one application (a scripted one, whose
//! onConnect runs for each, or a plain one to compare with), `--concurrency` connects in
//! flight at once: connects per second and the connect time's p50/p99 (from TCP connect
//! to the connect's `_result`). Then, with `--method`, every connected client calls that
//! method back to back (one call in flight each) until `--calls` were answered: calls
//! per second and their p99. Every client is our `Session`'s client role on a
//! non-blocking socket, all in one epoll thread.

use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use dataplane::proto::amf0::Amf0Value;
use dataplane::proto::rtmp::handshake::HandshakeKind;
use dataplane::proto::rtmp::session::{CallKind, Session, SessionConfig, SessionEvent};

use crate::epoll::Epoll;
use crate::report::Percentiles;

const FLASH_VER: &str = "LNX 9,0,124,2";
/// The whole run gives up after this.
const DEADLINE: Duration = Duration::from_secs(120);

pub struct ConnectBenchConfig {
    pub addr: SocketAddr,
    pub app: String,
    pub clients: usize,
    pub concurrency: usize,
    /// Called by every client once all are connected (None: connects only).
    pub method: Option<String>,
    pub calls: usize,
}

#[derive(Debug)]
pub struct ConnectReport {
    pub clients: usize,
    pub connects_per_s: f64,
    pub connect_p50_ms: f64,
    pub connect_p99_ms: f64,
    pub calls: usize,
    pub calls_per_s: f64,
    pub call_p99_ms: f64,
}

impl ConnectReport {
    pub fn to_table(&self) -> String {
        let mut s = format!(
            "clients {}  connects/s {:.0}  connect p50 {:.2} ms  p99 {:.2} ms\n",
            self.clients, self.connects_per_s, self.connect_p50_ms, self.connect_p99_ms
        );
        if self.calls > 0 {
            s.push_str(&format!(
                "calls {}  calls/s {:.0}  call p99 {:.2} ms\n",
                self.calls, self.calls_per_s, self.call_p99_ms
            ));
        }
        s
    }
}

struct Client {
    sock: TcpStream,
    session: Session,
    pending: Vec<u8>,
    started: Instant,
    connected: bool,
    call_sent: Option<Instant>,
}

impl Client {
    fn flush(&mut self) -> Result<(), String> {
        crate::epoll::write_pending(&mut self.sock, &mut self.pending)
    }
}

pub fn run(cfg: &ConnectBenchConfig) -> Result<ConnectReport, String> {
    let epoll = Epoll::new().map_err(|e| e.to_string())?;
    let mut rng = rand::thread_rng();
    let tc_url = format!("rtmp://{}/{}", cfg.addr, cfg.app);
    let mut clients: Vec<Client> = Vec::with_capacity(cfg.clients);
    let mut evs = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    let mut buf = vec![0u8; 64 * 1024];
    let mut events = Vec::new();
    let mut connect_ms = Vec::with_capacity(cfg.clients);
    let mut call_ms = Vec::new();
    let mut calls_sent = 0usize;
    let mut in_flight = 0usize;
    let begun = Instant::now();
    let mut connect_done: Option<Instant> = None;
    let mut calls_begun = None;

    let open = |i: usize, rng: &mut rand::rngs::ThreadRng| -> Result<Client, String> {
        let sock = TcpStream::connect(cfg.addr).map_err(|e| format!("connect {i}: {e}"))?;
        sock.set_nodelay(true).map_err(|e| e.to_string())?;
        sock.set_nonblocking(true).map_err(|e| e.to_string())?;
        let mut pending = Vec::new();
        let session = Session::client(
            SessionConfig::client(4096),
            HandshakeKind::Simple,
            rng,
            0,
            &mut pending,
        );
        epoll
            .ctl(
                libc::EPOLL_CTL_ADD,
                sock.as_raw_fd(),
                libc::EPOLLIN as u32,
                i as u64,
            )
            .map_err(|e| e.to_string())?;
        let mut c = Client {
            sock,
            session,
            pending,
            started: Instant::now(),
            connected: false,
            call_sent: None,
        };
        c.flush()?;
        Ok(c)
    };

    loop {
        if begun.elapsed() > DEADLINE {
            return Err(format!(
                "gave up: {} of {} connected, {} calls answered",
                connect_ms.len(),
                cfg.clients,
                call_ms.len()
            ));
        }
        while clients.len() < cfg.clients && in_flight < cfg.concurrency.max(1) {
            let c = open(clients.len(), &mut rng)?;
            clients.push(c);
            in_flight += 1;
        }
        if connect_done.is_none() && connect_ms.len() == cfg.clients {
            connect_done = Some(Instant::now());
            let Some(method) = &cfg.method else { break };
            calls_begun = Some(Instant::now());
            for c in clients.iter_mut() {
                if calls_sent < cfg.calls {
                    c.session
                        .call(
                            0,
                            method,
                            Amf0Value::Null,
                            &[Amf0Value::Number(1.0)],
                            &mut c.pending,
                        )
                        .map_err(|e| e.to_string())?;
                    c.call_sent = Some(Instant::now());
                    calls_sent += 1;
                    c.flush()?;
                }
            }
        }
        if cfg.method.is_some() && call_ms.len() >= cfg.calls {
            break;
        }
        let n = epoll.wait(&mut evs, 10);
        for ev in evs.iter().take(n) {
            let i = ev.u64 as usize;
            let Some(c) = clients.get_mut(i) else {
                continue;
            };
            loop {
                match c.sock.read(&mut buf) {
                    Ok(0) => return Err(format!("client {i}: server closed the connection")),
                    Ok(n) => c
                        .session
                        .feed(&buf[..n], &mut c.pending, &mut events)
                        .map_err(|e| format!("client {i}: {e}"))?,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => return Err(format!("client {i}: read: {e}")),
                }
            }
            for event in events.drain(..) {
                match event {
                    SessionEvent::HandshakeDone(_) => {
                        c.session
                            .connect(&cfg.app, &tc_url, FLASH_VER, &mut c.pending)
                            .map_err(|e| e.to_string())?;
                    }
                    SessionEvent::Result {
                        call: CallKind::Connect,
                        ..
                    } if !c.connected => {
                        c.connected = true;
                        in_flight -= 1;
                        connect_ms.push(c.started.elapsed().as_secs_f64() * 1000.0);
                    }
                    SessionEvent::Error {
                        call: CallKind::Connect,
                        command,
                        ..
                    } => return Err(format!("client {i}: connect refused: {command:?}")),
                    SessionEvent::Result {
                        call: CallKind::Method(_),
                        ..
                    } => {
                        if let Some(t) = c.call_sent.take() {
                            call_ms.push(t.elapsed().as_secs_f64() * 1000.0);
                        }
                        if let (Some(method), true) = (&cfg.method, calls_sent < cfg.calls) {
                            c.session
                                .call(
                                    0,
                                    method,
                                    Amf0Value::Null,
                                    &[Amf0Value::Number(1.0)],
                                    &mut c.pending,
                                )
                                .map_err(|e| e.to_string())?;
                            c.call_sent = Some(Instant::now());
                            calls_sent += 1;
                        }
                    }
                    SessionEvent::Error {
                        call: CallKind::Method(m),
                        command,
                        ..
                    } => return Err(format!("client {i}: call {m} failed: {command:?}")),
                    _ => {}
                }
            }
            c.flush()?;
        }
    }
    let connect_secs = connect_done
        .map_or(0.0, |d| d.duration_since(begun).as_secs_f64())
        .max(1e-9);
    let call_secs = calls_begun.map_or(1e-9, |b| b.elapsed().as_secs_f64().max(1e-9));
    let connect = Percentiles::of(connect_ms.iter().copied()).unwrap_or_default();
    let call = Percentiles::of(call_ms.iter().copied()).unwrap_or_default();
    Ok(ConnectReport {
        clients: cfg.clients,
        connects_per_s: cfg.clients as f64 / connect_secs,
        connect_p50_ms: connect.p50,
        connect_p99_ms: connect.p99,
        calls: call_ms.len(),
        calls_per_s: call_ms.len() as f64 / call_secs,
        call_p99_ms: call.p99,
    })
}
