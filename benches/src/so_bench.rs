//! `strata-load so`: N users of one remote shared object (spread over stratad's workers by
//! SO_REUSEPORT), one of them changing a slot at a fixed rate; measures the time from each
//! change to the LAST other user seeing it, the server's CPU, and its memory per user.
//! Every user is our `Session`'s client role on a non-blocking socket, all in one epoll
//! thread.

use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use dataplane::proto::amf0::Amf0Value;
use dataplane::proto::rtmp::handshake::HandshakeKind;
use dataplane::proto::rtmp::session::{CallKind, Session, SessionConfig, SessionEvent};
use dataplane::proto::rtmp::shared_object::{SoEvent, SoMessage};

use crate::epoll::Epoll;
use crate::procstat;
use crate::report::Percentiles;

const FLASH_VER: &str = "LNX 9,0,124,2";

pub struct SoBenchConfig {
    pub addr: SocketAddr,
    pub app: String,
    pub tc_url: String,
    /// The shared object's name.
    pub object: String,
    pub users: usize,
    /// Changes per second (by user 0).
    pub rate: f64,
    /// Changes are made for this long once every user joined.
    pub duration: Duration,
    pub server_pid: Option<u32>,
}

#[derive(Debug)]
pub struct SoReport {
    pub users: usize,
    pub changes: usize,
    /// Changes every other user saw within the run.
    pub complete: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// stratad's CPU over the change window, in % of one core.
    pub server_cpu_pct: Option<f64>,
    /// stratad's RSS growth from before the users connected to after they joined, per user.
    pub rss_per_user_kib: Option<f64>,
}

impl SoReport {
    pub fn to_table(&self) -> String {
        let opt = |v: Option<f64>, unit: &str| v.map_or("-".into(), |v| format!("{v:.1}{unit}"));
        format!(
            "users {}  changes {} (complete {})\nchange -> last user: p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms\nstratad cpu {}  rss per user {}\n",
            self.users,
            self.changes,
            self.complete,
            self.p50_ms,
            self.p99_ms,
            self.max_ms,
            opt(self.server_cpu_pct, " %"),
            opt(self.rss_per_user_kib, " KiB"),
        )
    }
}

struct User {
    sock: TcpStream,
    session: Session,
    /// Bytes the session wrote that the socket has not taken yet.
    pending: Vec<u8>,
    joined: bool,
}

impl User {
    fn flush(&mut self) -> Result<(), String> {
        crate::epoll::write_pending(&mut self.sock, &mut self.pending)
    }
}

fn so(name: &str, events: Vec<SoEvent>) -> SoMessage {
    SoMessage {
        name: name.into(),
        version: 0,
        persistent: false,
        events,
    }
}

pub fn run(cfg: &SoBenchConfig) -> Result<SoReport, String> {
    let rss_before = cfg.server_pid.and_then(procstat::rss_kib);
    let epoll = Epoll::new().map_err(|e| e.to_string())?;
    let mut rng = rand::thread_rng();
    let mut users = Vec::with_capacity(cfg.users);
    for i in 0..cfg.users {
        let sock = TcpStream::connect(cfg.addr).map_err(|e| format!("connect {i}: {e}"))?;
        sock.set_nodelay(true).map_err(|e| e.to_string())?;
        sock.set_nonblocking(true).map_err(|e| e.to_string())?;
        let mut pending = Vec::new();
        let session = Session::client(
            SessionConfig::client(4096),
            HandshakeKind::Simple,
            &mut rng,
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
        let mut u = User {
            sock,
            session,
            pending,
            joined: false,
        };
        u.flush()?;
        users.push(u);
    }

    let mut evs = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    let mut buf = vec![0u8; 64 * 1024];
    let mut events = Vec::new();
    let mut joined = 0usize;
    // Per change: when it was sent, how many users saw it, when the last did.
    let mut sent: Vec<Instant> = Vec::new();
    let mut seen: Vec<(usize, Instant)> = Vec::new();
    let join_deadline = Instant::now() + Duration::from_secs(60);
    let mut window: Option<(Instant, procstat::CpuSample)> = None;
    let mut rss_joined = None;
    let interval = Duration::from_secs_f64(1.0 / cfg.rate.max(0.1));
    let mut next_change = Instant::now();
    loop {
        let now = Instant::now();
        match window {
            None if joined == cfg.users => {
                rss_joined = cfg.server_pid.and_then(procstat::rss_kib);
                window = Some((now, procstat::CpuSample::take(cfg.server_pid)));
                next_change = now;
            }
            None if now > join_deadline => {
                return Err(format!("only {joined} of {} users joined", cfg.users))
            }
            Some((start, _))
                if now.duration_since(start) > cfg.duration + Duration::from_secs(2) =>
            {
                break
            }
            Some((start, _)) if now.duration_since(start) < cfg.duration => {
                // Every change due by now: a slow turn of this loop must not lower the rate,
                // and latency counts from when a change was due, so a late send shows.
                while now >= next_change {
                    let seq = sent.len();
                    let u = &mut users[0];
                    let change = so(
                        &cfg.object,
                        vec![SoEvent::RequestChange {
                            key: "t".into(),
                            value: Amf0Value::Number(seq as f64),
                        }],
                    );
                    u.session
                        .write_shared_object(false, &change, &mut u.pending);
                    u.flush()?;
                    sent.push(next_change);
                    seen.push((0, now));
                    next_change += interval;
                }
            }
            _ => {}
        }
        let n = epoll.wait(&mut evs, 1);
        for ev in evs.iter().take(n) {
            let i = ev.u64 as usize;
            let Some(u) = users.get_mut(i) else { continue };
            loop {
                match u.sock.read(&mut buf) {
                    Ok(0) => return Err(format!("user {i}: server closed the connection")),
                    Ok(n) => {
                        u.session
                            .feed(&buf[..n], &mut u.pending, &mut events)
                            .map_err(|e| format!("user {i}: {e}"))?;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => return Err(format!("user {i}: read: {e}")),
                }
            }
            let at = Instant::now();
            for event in events.drain(..) {
                match event {
                    SessionEvent::HandshakeDone(_) => {
                        u.session
                            .connect(&cfg.app, &cfg.tc_url, FLASH_VER, &mut u.pending)
                            .map_err(|e| e.to_string())?;
                    }
                    SessionEvent::Result {
                        call: CallKind::Connect,
                        ..
                    } => u.session.write_shared_object(
                        false,
                        &so(&cfg.object, vec![SoEvent::Use]),
                        &mut u.pending,
                    ),
                    SessionEvent::SharedObject { message, .. } => {
                        for e in &message.events {
                            match e {
                                SoEvent::UseSuccess if !u.joined => {
                                    u.joined = true;
                                    joined += 1;
                                }
                                SoEvent::Change(pairs) => {
                                    for (_, v) in pairs {
                                        if let Amf0Value::Number(s) = v {
                                            if let Some(entry) = seen.get_mut(*s as usize) {
                                                entry.0 += 1;
                                                entry.1 = at;
                                            }
                                        }
                                    }
                                }
                                _ => {}
                            }
                        }
                    }
                    _ => {}
                }
            }
            u.flush()?;
        }
    }
    let cpu = window.and_then(|(_, before)| {
        let after = procstat::CpuSample::take(cfg.server_pid);
        let secs = after.at.duration_since(before.at).as_secs_f64();
        Some(100.0 * (after.server? - before.server?) / secs)
    });
    let others = cfg.users.saturating_sub(1);
    let lat: Vec<f64> = sent
        .iter()
        .zip(&seen)
        .filter(|(_, (count, _))| *count >= others)
        .map(|(t, (_, last))| last.duration_since(*t).as_secs_f64() * 1000.0)
        .collect();
    let latency = Percentiles::of(lat.iter().copied()).unwrap_or_default();
    Ok(SoReport {
        users: cfg.users,
        changes: sent.len(),
        complete: lat.len(),
        p50_ms: latency.p50,
        p99_ms: latency.p99,
        max_ms: latency.max,
        server_cpu_pct: cpu,
        rss_per_user_kib: match (rss_before, rss_joined) {
            (Some(b), Some(a)) if cfg.users > 0 => {
                Some(a.saturating_sub(b) as f64 / cfg.users as f64)
            }
            _ => None,
        },
    })
}
