//! The ceiling: what the simplest possible server costs on this machine, measured in the same
//! setup as the server benchmarks, so that stratad's cost can be stated as a fraction of it.
//!
//! One writer thread writes the same bytes (one allocation, filled once) to N loopback TCP
//! sockets with plain write(2), one write per socket per turn; a sink thread reads and
//! discards everything. Two modes:
//!
//! - paced (`rate_mbps > 0`): every `interval`, each socket gets one write of
//!   rate × interval bytes, the shape of stratad's batched sends (`live.send_batch_ms`). What
//!   a socket does not take (EAGAIN, short write) is counted and carried to its next write.
//! - unpaced (`rate_mbps == 0`): `write_size` bytes to each socket in turn as fast as the
//!   sockets take them; a socket that would block is skipped until epoll says it is writable
//!   again, and the writer sleeps in epoll_wait when every socket is full. This is the setup
//!   of issue 3's "48 Gbit/s per sending core with 64 KiB writes".
//!
//! Why the writer's CPU is the figure, loopback included: on loopback the receiving half of
//! each segment's TCP processing (the NET_RX softirq raised by the loopback transmit) runs on
//! the sending core, in the sending thread's context. Kernels with tick-based accounting and
//! without CONFIG_IRQ_TIME_ACCOUNTING charge that time to the sender's stime. So the writer
//! pays for part of the receiver's work, exactly as stratad does when `strata-load
//! --server-pid` measures it with the players on another core; the ceiling is measured the
//! same way (writer pinned on core 0, sink on core 1) so that the two figures compare. The
//! busy time of both cores from /proc/stat is reported as well, since it also covers softirq
//! work that no thread is charged for (ksoftirqd aside, or IRQ time accounting).
//!
//! Everything is bounded: both threads stop by themselves at the deadline and close their
//! sockets, and only 127.0.0.1 is ever used.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, Socket, Type};

use crate::epoll::{Epoll, EDGE, ERR, IN, OUT};
use crate::procstat::{core_busy_seconds, current_tid, thread_cpu_seconds};

/// The sink's receive buffer, as the players': one read takes all a socket holds.
const READ_BUF: usize = 256 << 10;
/// epoll events taken per wait.
const EVENTS: usize = 1024;
/// In paced mode one write carries at most this many intervals' worth of a socket's debt, so
/// that a socket that fell behind catches up without the buffer growing without bound.
const MAX_CARRY: usize = 4;
/// The steady window ends this long before the deadline, while both threads still run.
const END_MARGIN: Duration = Duration::from_millis(200);
/// The sink outlives the writer's deadline by up to this much, so the writer never writes
/// to a socket whose reader has gone (a reset would look like an error).
const SINK_GRACE: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const MIN_WINDOW: Duration = Duration::from_millis(200);
/// Longest sleep of any loop, so that a stop request is seen promptly.
const POLL: Duration = Duration::from_millis(50);
const LISTENER: u64 = u64::MAX;
/// Bytes one write may carry (the payload buffer is at most `MAX_CARRY` times this).
const MAX_WRITE: usize = 16 << 20;

/// Where the line-a-second goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    Stdout,
    Stderr,
    Off,
}

/// Most pieces a write may be split into (stratad sends at most 64 iovecs at a time).
const MAX_IOVECS: usize = 64;

#[derive(Debug, Clone)]
pub struct CeilingConfig {
    pub sockets: usize,
    /// Per socket, in Mbit/s; 0 writes as fast as the sockets take it.
    pub rate_mbps: f64,
    /// Paced mode: each socket gets one write per interval.
    pub interval: Duration,
    /// Unpaced mode: bytes per write.
    pub write_size: usize,
    /// Pieces each write's bytes are split into (writev when above 1), to price the
    /// iovecs a server that sends queued messages without joining them pays.
    pub iovecs: usize,
    /// Whole run, connecting included.
    pub duration: Duration,
    /// From every socket connected to the start of the steady window.
    pub warmup: Duration,
    /// Core the writer is pinned to (None: not pinned).
    pub writer_cpu: Option<usize>,
    /// Core the sink is pinned to (None: not pinned).
    pub sink_cpu: Option<usize>,
    pub progress: Progress,
}

impl Default for CeilingConfig {
    fn default() -> Self {
        CeilingConfig {
            sockets: 2000,
            rate_mbps: 2.16,
            interval: Duration::from_millis(100),
            write_size: 65536,
            iovecs: 1,
            duration: Duration::from_secs(20),
            warmup: Duration::from_secs(3),
            writer_cpu: Some(0),
            sink_cpu: Some(1),
            progress: Progress::Stdout,
        }
    }
}

impl CeilingConfig {
    pub fn paced(&self) -> bool {
        self.rate_mbps > 0.0
    }

    /// Bytes one write is meant to carry: rate × interval when paced, else `write_size`.
    pub fn write_bytes(&self) -> usize {
        if self.paced() {
            let b = self.rate_mbps * 1e6 / 8.0 * self.interval.as_secs_f64();
            (b.round() as usize).max(1)
        } else {
            self.write_size
        }
    }

    /// The one payload buffer's length.
    fn buffer_len(&self) -> usize {
        if self.paced() {
            self.write_bytes() * MAX_CARRY
        } else {
            self.write_size
        }
    }

    fn validate(&self) -> Result<(), String> {
        if self.sockets == 0 {
            return Err("-n must be at least 1".into());
        }
        if !(1..=MAX_IOVECS).contains(&self.iovecs) {
            return Err(format!("--iovecs must be 1 to {MAX_IOVECS}"));
        }
        if !self.rate_mbps.is_finite() || self.rate_mbps < 0.0 {
            return Err("--rate-mbps must be 0 (unpaced) or positive".into());
        }
        if self.paced()
            && !(Duration::from_millis(1)..=Duration::from_secs(10)).contains(&self.interval)
        {
            return Err("--interval-ms must be between 1 and 10000".into());
        }
        if self.write_bytes() == 0 || self.write_bytes() > MAX_WRITE {
            return Err(format!(
                "one write would be {} bytes: keep it between 1 byte and 16 MiB",
                self.write_bytes()
            ));
        }
        if self.duration.is_zero() || self.duration > Duration::from_secs(86_400) {
            return Err("--duration must be positive and at most a day".into());
        }
        if self.warmup.saturating_add(MIN_WINDOW + END_MARGIN) > self.duration {
            return Err(format!(
                "--duration must exceed the warm-up by more than {:.1} s, connecting not counted",
                (MIN_WINDOW + END_MARGIN).as_secs_f64()
            ));
        }
        Ok(())
    }
}

/// The result, over the steady window unless said otherwise.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CeilingReport {
    /// "paced" or "unpaced".
    pub mode: String,
    pub sockets: usize,
    /// Per socket (0 when unpaced).
    pub rate_mbps: f64,
    pub interval_ms: f64,
    /// Bytes one write is meant to carry.
    pub write_bytes: usize,
    /// Pieces each write is split into (1: write, more: writev).
    #[serde(default = "one")]
    pub iovecs: usize,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub writer_core: Option<usize>,
    pub sink_core: Option<usize>,
    /// From the start until every socket was connected and accepted.
    pub connect_secs: f64,
    pub steady_secs: f64,
    pub bytes_written: u64,
    /// What the sink read: the delivered bytes.
    pub bytes_read: u64,
    /// write(2) calls that took bytes.
    pub writes: u64,
    /// write(2) calls that took nothing (EAGAIN).
    pub would_block: u64,
    /// Writes that took less than asked.
    pub short_writes: u64,
    /// Paced mode: bytes owed to the sockets at the end of the run (carried, not yet taken).
    pub backlog_bytes: u64,
    pub delivered_gbps: f64,
    /// Paced mode: sockets × rate.
    pub expected_gbps: Option<f64>,
    /// The writer thread's utime + stime, in % of one core.
    pub writer_cpu_pct: Option<f64>,
    pub sink_cpu_pct: Option<f64>,
    /// Busy time of the writer's core from /proc/stat, whoever ran there.
    pub writer_core_busy_pct: Option<f64>,
    pub sink_core_busy_pct: Option<f64>,
    /// delivered_gbps ÷ the writer's CPU as a fraction of one core.
    pub gbps_per_writer_core: Option<f64>,
    pub writes_per_s: f64,
    pub mean_write_bytes: Option<f64>,
    /// The writer's CPU time divided by the writes that took bytes.
    pub writer_us_per_write: Option<f64>,
}

/// What the threads publish for the monitor.
#[derive(Default)]
struct Shared {
    /// The run is over (or a thread failed): the writer stops.
    stop: AtomicBool,
    /// The writer has closed its sockets: the sink may go once it has read them all.
    writer_done: AtomicBool,
    writer_tid: AtomicI32,
    sink_tid: AtomicI32,
    connected: AtomicU64,
    accepted: AtomicU64,
    bytes_written: AtomicU64,
    writes: AtomicU64,
    would_block: AtomicU64,
    short_writes: AtomicU64,
    backlog: AtomicU64,
    bytes_read: AtomicU64,
}

fn one() -> usize {
    1
}

/// Sets the flag when dropped, so the sink learns that the writer is gone even if it panics.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

pub fn run(cfg: &CeilingConfig) -> Result<CeilingReport, String> {
    cfg.validate()?;
    // Both ends of every connection are ours.
    crate::limits::raise_nofile(
        2 * cfg.sockets as u64 + 32,
        &format!("{} sockets (both ends)", cfg.sockets),
    )?;
    let listener = listen(cfg.sockets)?;
    let addr = listener
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .ok_or("listener: no local address")?;
    let payload: Vec<u8> = (0..cfg.buffer_len()).map(|i| (i % 251) as u8).collect();
    let shared = Shared::default();
    let start = Instant::now();
    let deadline = start + cfg.duration;

    let (window, writer_r, sink_r) = std::thread::scope(|s| {
        let sink = std::thread::Builder::new()
            .name("ceiling-sink".into())
            .spawn_scoped(s, || {
                let r = sink(cfg, &listener, deadline + SINK_GRACE, &shared);
                if r.is_err() {
                    shared.stop.store(true, Ordering::Relaxed);
                }
                r
            });
        let writer = std::thread::Builder::new()
            .name("ceiling-writer".into())
            .spawn_scoped(s, || {
                let _done = SetOnDrop(&shared.writer_done);
                let r = writer(cfg, addr, &payload, deadline, &shared);
                if r.is_err() {
                    shared.stop.store(true, Ordering::Relaxed);
                }
                r
            });
        let window = if sink.is_ok() && writer.is_ok() {
            monitor(cfg, &shared, start, deadline)
        } else {
            Err("could not start the threads".into())
        };
        shared.stop.store(true, Ordering::Relaxed);
        let writer_r = match writer {
            Ok(h) => h.join().unwrap_or_else(|_| Err("writer panicked".into())),
            Err(e) => {
                shared.writer_done.store(true, Ordering::Relaxed);
                Err(format!("writer thread: {e}"))
            }
        };
        let sink_r = match sink {
            Ok(h) => h.join().unwrap_or_else(|_| Err("sink panicked".into())),
            Err(e) => Err(format!("sink thread: {e}")),
        };
        (window, writer_r, sink_r)
    });
    // A thread's own error says more than the monitor's "stopped early".
    match (writer_r, sink_r) {
        (Err(w), Err(s)) => return Err(format!("{w}; {s}")),
        (Err(e), _) | (_, Err(e)) => return Err(e),
        _ => {}
    }
    Ok(report(
        cfg,
        &window?,
        shared.backlog.load(Ordering::Relaxed),
    ))
}

fn listen(sockets: usize) -> Result<Socket, String> {
    let sock = Socket::new(
        Domain::IPV4,
        Type::STREAM.nonblocking().cloexec(),
        Some(Protocol::TCP),
    )
    .map_err(|e| format!("listener: socket: {e}"))?;
    let addr: SocketAddr = (Ipv4Addr::LOCALHOST, 0).into();
    sock.bind(&addr.into())
        .map_err(|e| format!("listener: bind {addr}: {e}"))?;
    // The writer may connect faster than the sink accepts: a full backlog drops SYNs, and a
    // dropped SYN costs a second's retransmission.
    let backlog = sockets.clamp(128, 65535) as i32;
    sock.listen(backlog)
        .map_err(|e| format!("listener: listen: {e}"))?;
    Ok(sock)
}

fn pin(cpu: Option<usize>, who: &str) -> Result<(), String> {
    match cpu {
        Some(id) if !core_affinity::set_for_current(core_affinity::CoreId { id }) => {
            Err(format!("{who}: cannot pin to core {id}"))
        }
        _ => Ok(()),
    }
}

/// Accepts the connections and reads everything, discarding it, until the writer has closed
/// every socket (or the hard deadline).
fn sink(
    cfg: &CeilingConfig,
    listener: &Socket,
    hard_deadline: Instant,
    shared: &Shared,
) -> Result<(), String> {
    pin(cfg.sink_cpu, "sink")?;
    shared.sink_tid.store(current_tid(), Ordering::Relaxed);
    let ep = Epoll::new().map_err(|e| format!("sink: epoll_create1: {e}"))?;
    ep.ctl(libc::EPOLL_CTL_ADD, listener.as_raw_fd(), IN, LISTENER)
        .map_err(|e| format!("sink: epoll_ctl: {e}"))?;
    let mut conns: Vec<Option<Socket>> = Vec::with_capacity(cfg.sockets);
    let mut open = 0usize;
    let mut buf = vec![0u8; READ_BUF];
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS];
    let mut bytes = 0u64;
    loop {
        let now = Instant::now();
        if now >= hard_deadline || (open == 0 && shared.writer_done.load(Ordering::Relaxed)) {
            return Ok(());
        }
        let wait = hard_deadline.saturating_duration_since(now).min(POLL);
        let n = ep.wait(&mut events, wait.as_millis() as i32);
        for ev in &events[..n] {
            let token = ev.u64;
            if token == LISTENER {
                accept_all(listener, &ep, &mut conns, &mut open, shared)?;
                continue;
            }
            let i = token as usize;
            let Some(sock) = conns.get(i).and_then(Option::as_ref) else {
                continue;
            };
            if drain(sock, &mut buf, &mut bytes).map_err(|e| format!("sink: read: {e}"))? {
                let _ = ep.ctl(libc::EPOLL_CTL_DEL, sock.as_raw_fd(), 0, 0);
                conns[i] = None;
                open -= 1;
            }
        }
        shared.bytes_read.store(bytes, Ordering::Relaxed);
    }
}

fn accept_all(
    listener: &Socket,
    ep: &Epoll,
    conns: &mut Vec<Option<Socket>>,
    open: &mut usize,
    shared: &Shared,
) -> Result<(), String> {
    loop {
        match listener.accept() {
            Ok((sock, _)) => {
                sock.set_nonblocking(true)
                    .map_err(|e| format!("sink: O_NONBLOCK: {e}"))?;
                ep.ctl(
                    libc::EPOLL_CTL_ADD,
                    sock.as_raw_fd(),
                    IN | ERR,
                    conns.len() as u64,
                )
                .map_err(|e| format!("sink: epoll_ctl: {e}"))?;
                conns.push(Some(sock));
                *open += 1;
                shared.accepted.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("sink: accept: {e}")),
        }
    }
}

/// Reads what the socket holds; true at end of stream.
fn drain(sock: &Socket, buf: &mut [u8], bytes: &mut u64) -> std::io::Result<bool> {
    loop {
        match std::io::Read::read(&mut &*sock, buf) {
            Ok(0) => return Ok(true),
            Ok(n) => {
                *bytes += n as u64;
                // A partial read emptied the socket: another read would only say EAGAIN.
                if n < buf.len() {
                    return Ok(false);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The writer's counters, published after every write so the monitor's samples are exact.
#[derive(Default)]
struct WriteCounters {
    bytes: u64,
    writes: u64,
    would_block: u64,
    short: u64,
}

impl WriteCounters {
    fn publish(&self, shared: &Shared) {
        shared.bytes_written.store(self.bytes, Ordering::Relaxed);
        shared.writes.store(self.writes, Ordering::Relaxed);
        shared
            .would_block
            .store(self.would_block, Ordering::Relaxed);
        shared.short_writes.store(self.short, Ordering::Relaxed);
    }
}

fn writer(
    cfg: &CeilingConfig,
    addr: SocketAddr,
    payload: &[u8],
    deadline: Instant,
    shared: &Shared,
) -> Result<(), String> {
    pin(cfg.writer_cpu, "writer")?;
    shared.writer_tid.store(current_tid(), Ordering::Relaxed);
    let n = cfg.sockets;
    let mut socks = Vec::with_capacity(n);
    for i in 0..n {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || shared.stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let what = |e: std::io::Error| format!("writer: socket {} of {n} to {addr}: {e}", i + 1);
        // Blocking connect: on loopback it completes in the kernel, whether or not the
        // sink has accepted yet.
        let s = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT.min(left)).map_err(what)?;
        s.set_nodelay(true).map_err(what)?;
        s.set_nonblocking(true).map_err(what)?;
        socks.push(s);
        shared.connected.fetch_add(1, Ordering::Relaxed);
    }
    let mut c = WriteCounters::default();
    if cfg.paced() {
        paced(cfg, &socks, payload, deadline, shared, &mut c)
    } else {
        unpaced(cfg.iovecs, &socks, payload, deadline, shared, &mut c)
    }
}

/// One write per socket per interval, on an absolute schedule: a late turn is followed at
/// once by the next, so the rate holds as long as the writer keeps up.
fn paced(
    cfg: &CeilingConfig,
    socks: &[TcpStream],
    payload: &[u8],
    deadline: Instant,
    shared: &Shared,
    c: &mut WriteCounters,
) -> Result<(), String> {
    let chunk = cfg.write_bytes();
    let mut owed = vec![0usize; socks.len()];
    let t0 = Instant::now();
    let mut turn = 0u32;
    loop {
        let now = Instant::now();
        if now >= deadline || shared.stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let due = t0 + cfg.interval.saturating_mul(turn);
        if now < due {
            std::thread::sleep(due.min(deadline).duration_since(now).min(POLL));
            continue;
        }
        for (s, o) in socks.iter().zip(owed.iter_mut()) {
            *o += chunk;
            let want = (*o).min(payload.len());
            if let Some(n) = write_once(s.as_raw_fd(), &payload[..want], cfg.iovecs, c, shared)? {
                *o -= n;
            }
        }
        let backlog: usize = owed.iter().sum();
        shared.backlog.store(backlog as u64, Ordering::Relaxed);
        turn = turn.saturating_add(1);
    }
}

/// Round robin as fast as the sockets take it. Sockets that would block wait for their
/// edge-triggered EPOLLOUT; when all of them do, the writer sleeps in epoll_wait.
fn unpaced(
    iovecs: usize,
    socks: &[TcpStream],
    payload: &[u8],
    deadline: Instant,
    shared: &Shared,
    c: &mut WriteCounters,
) -> Result<(), String> {
    let ep = Epoll::new().map_err(|e| format!("writer: epoll_create1: {e}"))?;
    for (i, s) in socks.iter().enumerate() {
        ep.ctl(
            libc::EPOLL_CTL_ADD,
            s.as_raw_fd(),
            OUT | ERR | EDGE,
            i as u64,
        )
        .map_err(|e| format!("writer: epoll_ctl: {e}"))?;
    }
    let mut ready = vec![true; socks.len()];
    let mut n_ready = socks.len();
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS];
    loop {
        let now = Instant::now();
        if now >= deadline || shared.stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        for (s, r) in socks.iter().zip(ready.iter_mut()) {
            if !*r {
                continue;
            }
            // A short write also leaves the socket flagged as out of space, so its EPOLLOUT
            // edge will come as surely as after EAGAIN.
            match write_once(s.as_raw_fd(), payload, iovecs, c, shared)? {
                Some(n) if n == payload.len() => {}
                _ => {
                    *r = false;
                    n_ready -= 1;
                }
            }
        }
        if n_ready == socks.len() {
            continue;
        }
        let timeout = if n_ready > 0 {
            Duration::ZERO
        } else {
            deadline.saturating_duration_since(now).min(POLL)
        };
        let k = ep.wait(&mut events, timeout.as_millis() as i32);
        for ev in &events[..k] {
            if let Some(r) = ready.get_mut(ev.u64 as usize) {
                if !*r {
                    *r = true;
                    n_ready += 1;
                }
            }
        }
        if n_ready == 0 && k == 0 && !timeout.is_zero() {
            // Nothing became writable in a whole poll period: try them all again rather
            // than trust that no edge was missed. Costs one EAGAIN per socket.
            ready.fill(true);
            n_ready = socks.len();
        }
    }
}

/// One write(2); `None` if the socket took nothing (EAGAIN).
fn write_once(
    fd: RawFd,
    buf: &[u8],
    iovecs: usize,
    c: &mut WriteCounters,
    shared: &Shared,
) -> Result<Option<usize>, String> {
    loop {
        match write_fd(fd, buf, iovecs) {
            Ok(n) => {
                c.bytes += n as u64;
                c.writes += 1;
                if n < buf.len() {
                    c.short += 1;
                }
                c.publish(shared);
                return Ok(Some(n));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                c.would_block += 1;
                c.publish(shared);
                return Ok(None);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("writer: write: {e}")),
        }
    }
}

/// Plain write(2), not send(2): the baseline is the simplest server, and std's `write` on a
/// socket is a send() with flags. With `iovecs` above 1, writev(2) of that many equal pieces.
fn write_fd(fd: RawFd, buf: &[u8], iovecs: usize) -> std::io::Result<usize> {
    let n = if iovecs <= 1 {
        // SAFETY: `fd` is an open socket the caller borrows for the whole call, and `buf` is
        // valid for `buf.len()` bytes, which the kernel only reads.
        unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) }
    } else {
        let mut iov = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; MAX_IOVECS];
        let piece = buf.len().div_ceil(iovecs).max(1);
        let mut count = 0;
        for (slot, part) in iov.iter_mut().zip(buf.chunks(piece)) {
            slot.iov_base = part.as_ptr().cast_mut().cast();
            slot.iov_len = part.len();
            count += 1;
        }
        // SAFETY: the first `count` iovecs point into `buf`, valid for the whole call and
        // only read by the kernel.
        unsafe { libc::writev(fd, iov.as_ptr(), count as libc::c_int) }
    };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(n as usize)
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    writer_cpu: Option<f64>,
    sink_cpu: Option<f64>,
    writer_core: Option<f64>,
    sink_core: Option<f64>,
    bytes_written: u64,
    bytes_read: u64,
    writes: u64,
    would_block: u64,
    short_writes: u64,
}

impl Sample {
    fn take(cfg: &CeilingConfig, shared: &Shared) -> Self {
        let tid_cpu = |t: &AtomicI32| match t.load(Ordering::Relaxed) {
            0 => None,
            tid => thread_cpu_seconds(tid),
        };
        Sample {
            at: Instant::now(),
            writer_cpu: tid_cpu(&shared.writer_tid),
            sink_cpu: tid_cpu(&shared.sink_tid),
            writer_core: cfg.writer_cpu.and_then(core_busy_seconds),
            sink_core: cfg.sink_cpu.and_then(core_busy_seconds),
            bytes_written: shared.bytes_written.load(Ordering::Relaxed),
            bytes_read: shared.bytes_read.load(Ordering::Relaxed),
            writes: shared.writes.load(Ordering::Relaxed),
            would_block: shared.would_block.load(Ordering::Relaxed),
            short_writes: shared.short_writes.load(Ordering::Relaxed),
        }
    }
}

struct Window {
    connect_secs: f64,
    start: Sample,
    end: Sample,
}

/// % of one core between two CPU-seconds readings.
fn pct(a: Option<f64>, b: Option<f64>, secs: f64) -> Option<f64> {
    Some((b? - a?) / secs * 100.0)
}

/// Waits for every socket, prints a line a second, and takes the window's two samples.
fn monitor(
    cfg: &CeilingConfig,
    shared: &Shared,
    start: Instant,
    deadline: Instant,
) -> Result<Window, String> {
    let n = cfg.sockets as u64;
    let end_at = deadline.checked_sub(END_MARGIN).unwrap_or(deadline);
    let stopped = || "stopped early".to_string();
    let ready_at = loop {
        if shared.stop.load(Ordering::Relaxed) {
            return Err(stopped());
        }
        let (c, a) = (
            shared.connected.load(Ordering::Relaxed),
            shared.accepted.load(Ordering::Relaxed),
        );
        let now = Instant::now();
        if c == n && a == n {
            break now;
        }
        if now >= end_at {
            return Err(format!(
                "only {c} of {n} sockets connected ({a} accepted) in {:.1} s",
                now.duration_since(start).as_secs_f64()
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let connect_secs = ready_at.duration_since(start).as_secs_f64();
    let window_from = ready_at + cfg.warmup;
    if window_from + MIN_WINDOW > end_at {
        return Err(format!(
            "no steady window: connecting took {connect_secs:.2} s and the warm-up is {:.2} s of a {:.2} s run",
            cfg.warmup.as_secs_f64(),
            cfg.duration.as_secs_f64()
        ));
    }
    let mut out: Box<dyn Write> = match cfg.progress {
        Progress::Stdout => Box::new(std::io::stdout()),
        Progress::Stderr => Box::new(std::io::stderr()),
        Progress::Off => Box::new(std::io::sink()),
    };
    let mut last = Sample::take(cfg, shared);
    let mut first: Option<Sample> = None;
    let mut next_line = start + Duration::from_secs(connect_secs.floor() as u64 + 1);
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            return Err(stopped());
        }
        let now = Instant::now();
        if first.is_none() && now >= window_from {
            first = Some(Sample::take(cfg, shared));
        }
        if now >= end_at {
            let end = Sample::take(cfg, shared);
            return first
                .map(|start| Window {
                    connect_secs,
                    start,
                    end,
                })
                .ok_or_else(stopped);
        }
        if now >= next_line {
            let s = Sample::take(cfg, shared);
            let secs = s.at.duration_since(last.at).as_secs_f64().max(1e-3);
            let opt = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1}"));
            let _ = writeln!(
                out,
                "{:>4.0}s {:>8.3} Gbit/s | writer {:>5}% cpu | sink {:>5}% cpu | would-block {:>7}{}",
                s.at.duration_since(start).as_secs_f64(),
                (s.bytes_read - last.bytes_read) as f64 * 8.0 / secs / 1e9,
                opt(pct(last.writer_cpu, s.writer_cpu, secs)),
                opt(pct(last.sink_cpu, s.sink_cpu, secs)),
                s.would_block - last.would_block,
                if first.is_some() { " [steady]" } else { "" },
            );
            last = s;
            next_line += Duration::from_secs(1);
            continue;
        }
        let mut until = next_line.min(end_at);
        if first.is_none() {
            until = until.min(window_from);
        }
        std::thread::sleep(until.saturating_duration_since(now).min(POLL));
    }
}

fn report(cfg: &CeilingConfig, w: &Window, backlog_bytes: u64) -> CeilingReport {
    let (a, b) = (&w.start, &w.end);
    let secs = b.at.duration_since(a.at).as_secs_f64().max(1e-9);
    let bytes_read = b.bytes_read - a.bytes_read;
    let writes = b.writes - a.writes;
    let delivered_gbps = bytes_read as f64 * 8.0 / secs / 1e9;
    let writer_cpu_pct = pct(a.writer_cpu, b.writer_cpu, secs);
    let bytes_written = b.bytes_written - a.bytes_written;
    CeilingReport {
        mode: if cfg.paced() { "paced" } else { "unpaced" }.into(),
        sockets: cfg.sockets,
        rate_mbps: cfg.rate_mbps,
        interval_ms: cfg.interval.as_secs_f64() * 1e3,
        write_bytes: cfg.write_bytes(),
        iovecs: cfg.iovecs,
        duration_s: cfg.duration.as_secs_f64(),
        warmup_s: cfg.warmup.as_secs_f64(),
        writer_core: cfg.writer_cpu,
        sink_core: cfg.sink_cpu,
        connect_secs: w.connect_secs,
        steady_secs: secs,
        bytes_written,
        bytes_read,
        writes,
        would_block: b.would_block - a.would_block,
        short_writes: b.short_writes - a.short_writes,
        backlog_bytes,
        delivered_gbps,
        expected_gbps: cfg
            .paced()
            .then(|| cfg.sockets as f64 * cfg.rate_mbps / 1e3),
        writer_cpu_pct,
        sink_cpu_pct: pct(a.sink_cpu, b.sink_cpu, secs),
        writer_core_busy_pct: pct(a.writer_core, b.writer_core, secs),
        sink_core_busy_pct: pct(a.sink_core, b.sink_core, secs),
        gbps_per_writer_core: writer_cpu_pct
            .filter(|&p| p > 0.0)
            .map(|p| delivered_gbps / (p / 100.0)),
        writes_per_s: writes as f64 / secs,
        mean_write_bytes: (writes > 0).then(|| bytes_written as f64 / writes as f64),
        writer_us_per_write: writer_cpu_pct
            .filter(|_| writes > 0)
            .map(|p| p / 100.0 * secs / writes as f64 * 1e6),
    }
}

impl CeilingReport {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    pub fn to_table(&self) -> String {
        let opt = |v: Option<f64>, unit: &str, prec: usize| match v {
            Some(v) => format!("{v:.prec$}{unit}"),
            None => "-".into(),
        };
        let core = |c: Option<usize>| c.map_or("unpinned".into(), |c| format!("core {c}"));
        let busy = |c: Option<usize>, p: Option<f64>| match (c, p) {
            (Some(c), Some(p)) => format!(" (core {c} busy {p:.1} %)"),
            _ => String::new(),
        };
        let mode = if self.mode == "paced" {
            format!(
                "paced: {} Mbit/s per socket, one write of {} B every {} ms",
                self.rate_mbps, self.write_bytes, self.interval_ms
            )
        } else {
            format!(
                "unpaced: writes of {} B, round robin, as fast as they go",
                self.write_bytes
            )
        };
        let mode = if self.iovecs > 1 {
            format!("{mode}, writev of {} pieces", self.iovecs)
        } else {
            mode
        };
        let rows = [
            ("mode", mode),
            (
                "sockets",
                format!(
                    "{} (writer on {}, sink on {})",
                    self.sockets,
                    core(self.writer_core),
                    core(self.sink_core)
                ),
            ),
            (
                "steady window",
                format!(
                    "{:.1} s (all connected after {:.2} s, warm-up {} s)",
                    self.steady_secs, self.connect_secs, self.warmup_s
                ),
            ),
            (
                "delivered",
                format!(
                    "{:.3} Gbit/s{}",
                    self.delivered_gbps,
                    self.expected_gbps
                        .map(|e| format!(" (expected {e:.3})"))
                        .unwrap_or_default()
                ),
            ),
            (
                "written",
                format!(
                    "{:.1} MB in {} writes ({:.0} writes/s, mean {} per write)",
                    self.bytes_written as f64 / 1e6,
                    self.writes,
                    self.writes_per_s,
                    opt(self.mean_write_bytes, " B", 0)
                ),
            ),
            (
                "would block / short writes",
                format!(
                    "{} / {} (backlog at the end {} B)",
                    self.would_block, self.short_writes, self.backlog_bytes
                ),
            ),
            (
                "writer cpu",
                opt(self.writer_cpu_pct, " % of a core", 1)
                    + &busy(self.writer_core, self.writer_core_busy_pct),
            ),
            (
                "sink cpu",
                opt(self.sink_cpu_pct, " % of a core", 1)
                    + &busy(self.sink_core, self.sink_core_busy_pct),
            ),
            (
                "Gbit/s per writer core",
                opt(self.gbps_per_writer_core, "", 2),
            ),
            (
                "writer cpu per write",
                opt(self.writer_us_per_write, " µs", 2),
            ),
        ];
        let w = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        rows.iter()
            .map(|(k, v)| format!("{k:<w$}  {v}\n"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_sizes() {
        let paced = CeilingConfig::default();
        // 2.16 Mbit/s × 100 ms.
        assert_eq!(paced.write_bytes(), 27_000);
        assert_eq!(paced.buffer_len(), 27_000 * MAX_CARRY);
        let unpaced = CeilingConfig {
            rate_mbps: 0.0,
            ..CeilingConfig::default()
        };
        assert!(!unpaced.paced());
        assert_eq!(unpaced.write_bytes(), 65_536);
        assert_eq!(unpaced.buffer_len(), 65_536);
    }

    #[test]
    fn rejects_nonsense() {
        let bad = [
            CeilingConfig {
                sockets: 0,
                ..CeilingConfig::default()
            },
            CeilingConfig {
                rate_mbps: f64::NAN,
                ..CeilingConfig::default()
            },
            CeilingConfig {
                interval: Duration::ZERO,
                ..CeilingConfig::default()
            },
            CeilingConfig {
                rate_mbps: 0.0,
                write_size: 0,
                ..CeilingConfig::default()
            },
            CeilingConfig {
                duration: Duration::ZERO,
                ..CeilingConfig::default()
            },
            CeilingConfig {
                iovecs: 0,
                ..CeilingConfig::default()
            },
            CeilingConfig {
                iovecs: MAX_IOVECS + 1,
                ..CeilingConfig::default()
            },
            CeilingConfig {
                duration: Duration::from_secs(3),
                ..CeilingConfig::default()
            },
        ];
        for cfg in &bad {
            assert!(cfg.validate().is_err(), "{cfg:?}");
        }
        assert!(CeilingConfig::default().validate().is_ok());
    }
}
