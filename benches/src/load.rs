//! The players' event loop: non-blocking sockets on one epoll instance per thread, one big
//! receive buffer per thread (shared by its players, since a player keeps nothing of the
//! media it reads), players started on a schedule (`ramp` per second).

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dataplane::proto::rtmp::handshake::HandshakeKind;
use rand::SeedableRng;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::epoll::{Epoll, ERR, IN, OUT};
use crate::player::{Player, PlayerStats};
use crate::url::RtmpUrl;

/// Each thread's receive buffer: large enough that one read takes everything a socket
/// holds after a GOP burst or a scheduling hiccup.
const READ_BUF: usize = 256 << 10;
/// epoll events taken per wait.
const EVENTS: usize = 1024;
/// How long one loop turn may spend opening due players before it reads again.
const START_BUDGET: Duration = Duration::from_millis(5);
/// Error messages kept for the report.
const MAX_ERROR_SAMPLES: usize = 8;

#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub url: RtmpUrl,
    pub players: usize,
    pub threads: usize,
    /// Players started per second; 0 starts them all at once.
    pub ramp: f64,
    pub handshake: HandshakeKind,
    /// SO_RCVBUF for each player socket; 0 leaves the kernel's autotuning (RTMP) or takes
    /// `rtmfp_load`'s default (RTMFP).
    pub rcvbuf: usize,
    /// SO_RCVLOWAT set on a player's socket once it has its first picture (0: never). Fewer,
    /// larger reads: a server that writes each message separately (nginx-rtmp) otherwise
    /// wakes the player ~77 times a second. 16 KiB is ~60 ms of the 2.15 Mbit/s stream,
    /// well under the 500 ms stall threshold; time to first video is measured before it
    /// applies.
    pub rcvlowat: usize,
    /// Pin thread `i` to core `cpus[i % len]` (empty: no pinning).
    pub cpus: Vec<usize>,
    /// RTMFP players over UDP at the URL's host and port instead of RTMP ones
    /// (`rtmfp_load`); `handshake` and `rcvlowat` do not apply, `rcvbuf` is each player's
    /// UDP socket's.
    pub rtmfp: bool,
    /// RTMFP players offer only the 1,024-bit Diffie-Hellman key, as Flash Player does
    /// (MonaServer2 answers nothing else).
    pub rtmfp_flash_keys: bool,
}

impl LoadConfig {
    /// When player `i` is due, from the start of the run.
    pub fn start_offset(&self, i: usize) -> Duration {
        if self.ramp <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(i as f64 / self.ramp)
        }
    }
}

/// Counters the reporting thread reads every second (each thread owns one set).
#[derive(Debug, Default)]
pub struct Counters {
    pub started: AtomicU64,
    pub connected: AtomicU64,
    pub playing: AtomicU64,
    pub first_video: AtomicU64,
    pub failed: AtomicU64,
    pub bytes: AtomicU64,
    pub stalls: AtomicU64,
    /// The longest time between two returns of this thread's epoll wait since the monitor
    /// last read it (µs): a thread late to read reports its own stalls, not the server's.
    pub longest_turn_us: AtomicU64,
    /// Datagrams the kernel dropped at this thread's player sockets because they were full
    /// (RTMFP players, read a few times a second): a thread too late to read loses the
    /// server's packets, and the repair reads as the server's stall.
    pub socket_drops: AtomicU64,
}

#[derive(Debug, Default)]
pub struct Shared {
    pub stop: AtomicBool,
    pub counters: Vec<Counters>,
    pub errors: Mutex<Vec<String>>,
}

impl Shared {
    pub fn new(threads: usize) -> Self {
        Shared {
            stop: AtomicBool::new(false),
            counters: (0..threads).map(|_| Counters::default()).collect(),
            errors: Mutex::new(Vec::new()),
        }
    }

    pub fn sum(&self, f: impl Fn(&Counters) -> &AtomicU64) -> u64 {
        self.counters
            .iter()
            .map(|c| f(c).load(Ordering::Relaxed))
            .sum()
    }

    pub(crate) fn note_error(&self, e: String) {
        if let Ok(mut v) = self.errors.lock() {
            if v.len() < MAX_ERROR_SAMPLES {
                v.push(e);
            }
        }
    }
}

/// The end state of every player, for percentiles.
#[derive(Debug, Default)]
pub struct ThreadResult {
    pub players: Vec<PlayerStats>,
}

#[derive(Debug, PartialEq, Eq)]
enum ConnState {
    Connecting,
    Open,
    Closed,
}

struct Conn {
    sock: Socket,
    state: ConnState,
    player: Player,
    /// Bytes not yet accepted by the socket.
    pending: Vec<u8>,
    want_write: bool,
    token: u64,
    lowat_set: bool,
}

/// Runs thread `t`'s share of the players (`i % threads == t`) until `deadline` or `stop`.
pub fn run_thread(
    cfg: &LoadConfig,
    t: usize,
    t0: Instant,
    deadline: Instant,
    shared: &Shared,
) -> std::io::Result<ThreadResult> {
    if let Some(&cpu) = cfg.cpus.get(t % cfg.cpus.len().max(1)) {
        core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
    }
    let addr: SockAddr = cfg.url.resolve().map_err(std::io::Error::other)?.into();
    let counters = &shared.counters[t];
    let mine: Vec<usize> = (t..cfg.players).step_by(cfg.threads.max(1)).collect();
    let ep = Epoll::new()?;
    let mut conns: Vec<Conn> = Vec::with_capacity(mine.len());
    let mut next = 0;
    let mut buf = vec![0u8; READ_BUF];
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS];
    let mut rng = rand::rngs::StdRng::from_entropy();
    let mut out = Vec::with_capacity(4096);
    let mut bytes = 0u64;
    let mut last_turn = Instant::now();

    loop {
        let now = Instant::now();
        if now >= deadline || shared.stop.load(Ordering::Relaxed) {
            break;
        }
        // Start the players that are due, for at most `START_BUDGET` per turn: 10,000
        // players due at once would otherwise be opened in one turn of over half a second
        // (a loopback connect runs the handshake in the caller), and every player already
        // connected would read that much late, which it would report as the server's delay.
        let mut started_here = 0usize;
        while next < mine.len() && t0 + cfg.start_offset(mine[next]) <= now {
            if started_here % 16 == 15 && now.elapsed() >= START_BUDGET {
                break;
            }
            started_here += 1;
            let token = conns.len() as u64;
            let player = Player::new(&cfg.url, Instant::now());
            counters.started.fetch_add(1, Ordering::Relaxed);
            match open_socket(&addr, cfg.rcvbuf) {
                Ok(sock) => {
                    ep.ctl(libc::EPOLL_CTL_ADD, sock.as_raw_fd(), IN | OUT | ERR, token)?;
                    conns.push(Conn {
                        sock,
                        state: ConnState::Connecting,
                        player,
                        pending: Vec::new(),
                        want_write: true,
                        token,
                        lowat_set: false,
                    });
                }
                Err(e) => {
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                    shared.note_error(format!("connect: {e}"));
                }
            }
            next += 1;
        }
        let until_next = mine
            .get(next)
            .map(|&i| (t0 + cfg.start_offset(i)).saturating_duration_since(now));
        let wait = until_next
            .unwrap_or(Duration::from_millis(100))
            .min(Duration::from_millis(100))
            .min(deadline.saturating_duration_since(now));
        let n = ep.wait(&mut events, wait.as_millis() as i32);
        let now = Instant::now();
        counters.longest_turn_us.fetch_max(
            now.duration_since(last_turn).as_micros() as u64,
            Ordering::Relaxed,
        );
        last_turn = now;
        for ev in &events[..n] {
            // Each player's time is read when it is served, not when the wait returned: a
            // turn of a thousand busy sockets takes tens of milliseconds, which would
            // otherwise be counted as arrivals earlier than the reads that saw them.
            let now = Instant::now();
            let flags = ev.events;
            let token = ev.u64 as usize;
            let Some(c) = conns.get_mut(token) else {
                continue;
            };
            if c.state == ConnState::Closed {
                continue;
            }
            let result = service(
                c,
                &ep,
                cfg.handshake,
                cfg.rcvlowat,
                flags,
                now,
                &mut buf,
                &mut out,
                &mut rng,
                counters,
                &mut bytes,
            );
            if let Err(e) = result {
                fail(c, &ep, counters, shared, e, now);
            }
        }
        counters.bytes.store(bytes, Ordering::Relaxed);
    }
    let end = Instant::now();
    let mut result = ThreadResult::default();
    for mut c in conns {
        if c.state != ConnState::Closed {
            c.player.stats_mut().close_at(end);
            c.player.note_phase();
        }
        result.players.push(c.player.stats().clone());
    }
    Ok(result)
}

fn open_socket(addr: &SockAddr, rcvbuf: usize) -> std::io::Result<Socket> {
    let sock = Socket::new(
        Domain::for_address(
            addr.as_socket()
                .unwrap_or_else(|| ([127, 0, 0, 1], 0).into()),
        ),
        Type::STREAM.nonblocking().cloexec(),
        Some(Protocol::TCP),
    )?;
    sock.set_nodelay(true)?;
    if rcvbuf > 0 {
        sock.set_recv_buffer_size(rcvbuf)?;
    }
    match sock.connect(addr) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(sock)
}

fn fail(c: &mut Conn, ep: &Epoll, counters: &Counters, shared: &Shared, why: String, now: Instant) {
    let was_playing = c.player.is_playing();
    let _ = ep.ctl(libc::EPOLL_CTL_DEL, c.sock.as_raw_fd(), 0, 0);
    let _ = c.sock.shutdown(std::net::Shutdown::Both);
    if c.state == ConnState::Open {
        counters.connected.fetch_sub(1, Ordering::Relaxed);
    }
    if was_playing {
        counters.playing.fetch_sub(1, Ordering::Relaxed);
    }
    c.state = ConnState::Closed;
    c.player.stats_mut().close_at(now);
    c.player.note_phase();
    counters.failed.fetch_add(1, Ordering::Relaxed);
    shared.note_error(why);
}

#[allow(clippy::too_many_arguments)]
fn service(
    c: &mut Conn,
    ep: &Epoll,
    kind: HandshakeKind,
    rcvlowat: usize,
    flags: u32,
    now: Instant,
    buf: &mut [u8],
    out: &mut Vec<u8>,
    rng: &mut impl rand::RngCore,
    counters: &Counters,
    bytes: &mut u64,
) -> Result<(), String> {
    if c.state == ConnState::Connecting {
        if flags & (OUT | ERR) == 0 {
            return Ok(());
        }
        if let Some(e) = c.sock.take_error().map_err(|e| e.to_string())? {
            return Err(format!("connect: {e}"));
        }
        c.state = ConnState::Open;
        counters.connected.fetch_add(1, Ordering::Relaxed);
        out.clear();
        c.player.on_connected(rng, kind, now, out);
        c.pending.extend_from_slice(out);
    }
    if flags & IN != 0 || flags & ERR != 0 {
        let was_playing = c.player.is_playing();
        let had_video = c.player.stats().first_video.is_some();
        let stalls = c.player.stats().stalls;
        loop {
            match (&c.sock).read_into(buf) {
                Ok(0) => return Err("server closed the connection".into()),
                Ok(n) => {
                    *bytes += n as u64;
                    out.clear();
                    c.player
                        .on_bytes(&buf[..n], now, out)
                        .map_err(|e| e.to_string())?;
                    c.pending.extend_from_slice(out);
                    if n < buf.len() {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("read: {e}")),
            }
        }
        if !was_playing && c.player.is_playing() {
            counters.playing.fetch_add(1, Ordering::Relaxed);
        }
        if !had_video && c.player.stats().first_video.is_some() {
            counters.first_video.fetch_add(1, Ordering::Relaxed);
        }
        if rcvlowat > 0 && !c.lowat_set && c.player.stats().first_video.is_some() {
            c.lowat_set = true;
            set_rcvlowat(&c.sock, rcvlowat).map_err(|e| format!("SO_RCVLOWAT: {e}"))?;
        }
        let new_stalls = c.player.stats().stalls - stalls;
        if new_stalls > 0 {
            counters
                .stalls
                .fetch_add(u64::from(new_stalls), Ordering::Relaxed);
        }
    }
    flush(c, ep)
}

fn set_rcvlowat(sock: &Socket, bytes: usize) -> std::io::Result<()> {
    let v = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: a valid socket and a c_int option value of the size passed.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Writes what is pending; asks for EPOLLOUT only while something is left.
fn flush(c: &mut Conn, ep: &Epoll) -> Result<(), String> {
    while !c.pending.is_empty() {
        match std::io::Write::write(&mut &c.sock, &c.pending) {
            Ok(n) => {
                c.pending.drain(..n);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("write: {e}")),
        }
    }
    // Level-triggered EPOLLOUT would wake us for nothing; a player writes a few small
    // messages, so the write interest is only kept while they do not fit.
    let want = !c.pending.is_empty();
    if want != c.want_write {
        c.want_write = want;
        let ev = if want { IN | OUT | ERR } else { IN | ERR };
        ep.ctl(libc::EPOLL_CTL_MOD, c.sock.as_raw_fd(), ev, c.token)
            .map_err(|e| format!("epoll_ctl: {e}"))?;
    }
    Ok(())
}

/// `Read` for a shared socket reference, into an initialised buffer.
trait ReadInto {
    fn read_into(self, buf: &mut [u8]) -> std::io::Result<usize>;
}

impl ReadInto for &Socket {
    fn read_into(self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut s = self;
        std::io::Read::read(&mut s, buf)
    }
}
