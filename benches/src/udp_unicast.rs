//! The UDP unicast floor (`strata-load ceiling --udp --unicast`): what sending RTMFP
//! viewers' datagrams costs at the least on this machine, to state stratad's RTMFP cost as
//! a multiple of it in the same run. One pinned thread sends N viewers' worth of
//! datagrams — the size stratad's RTMFP media packets have on the wire (1,200 bytes), as
//! many as the rate asks for — from one socket (stratad's worker has one) to N receiving
//! sockets on 127.1.x.y, the way stratad's worker batches them: every `interval`, each
//! viewer's datagrams for the interval, all of them handed to the kernel together
//! (`sendmmsg`, as stratad submits a turn's `sendmsg`s in one `io_uring_enter`), or with
//! `gso` one `sendmsg` per viewer with `UDP_SEGMENT` (what UDP GSO would save). No
//! encryption, no protocol: the floor. A second thread on another core reads every
//! socket, as the players do, so the loopback's delivery costs the sender what it costs
//! stratad. Bounded: it stops at its deadline.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use socket2::SockAddr;

use crate::epoll::{Epoll, IN};
use crate::procstat::{current_tid, thread_cpu_seconds};
use crate::udp_ceiling::{set_gso_segment, MAX_SEGMENTS};

/// An RTMFP media packet on the wire: stratad fills packets to `MAX_PACKET` (1,200 bytes).
pub const DATAGRAM: usize = 1200;
/// Messages per `sendmmsg` call (the kernel's UIO_MAXIOV bound is 1,024).
const BATCH: usize = 1024;

#[derive(Debug, Clone)]
pub struct UnicastConfig {
    pub viewers: usize,
    /// Per viewer, Mbit/s.
    pub rate_mbps: f64,
    pub interval: Duration,
    pub datagram: usize,
    /// One `sendmsg` with `UDP_SEGMENT` per viewer per interval instead of `sendmmsg`.
    pub gso: bool,
    pub duration: Duration,
    pub warmup: Duration,
    pub cpu: Option<usize>,
    pub sink_cpu: Option<usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnicastReport {
    pub viewers: usize,
    pub rate_mbps: f64,
    pub interval_ms: f64,
    pub datagram: usize,
    pub gso: bool,
    pub steady_secs: f64,
    pub syscalls: u64,
    pub datagrams: u64,
    pub received: u64,
    pub send_errors: u64,
    pub gbps: f64,
    /// The sender thread's CPU, in % of one core.
    pub cpu_pct: f64,
    pub cpu_pct_per_viewer: f64,
    /// Core-seconds per second per Gbit/s sent.
    pub cores_per_gbps: f64,
}

impl UnicastReport {
    pub fn human(&self) -> String {
        format!(
            "udp unicast floor: {} viewers x {:.2} Mbit/s, {}-byte datagrams, every {:.0} ms ({})\n\
             sent {:.3} Gbit/s in {:.1} s: {} syscalls, {} datagrams ({} received), {} errors\n\
             sender CPU {:.1} % of a core: {:.4} % per viewer, {:.3} cores per Gbit/s\n",
            self.viewers,
            self.rate_mbps,
            self.datagram,
            self.interval_ms,
            if self.gso {
                "one sendmsg with UDP_SEGMENT per viewer"
            } else {
                "sendmmsg"
            },
            self.gbps,
            self.steady_secs,
            self.syscalls,
            self.datagrams,
            self.received,
            self.send_errors,
            self.cpu_pct,
            self.cpu_pct_per_viewer,
            self.cores_per_gbps,
        )
    }
}

/// Where viewer `i` receives: 127.1.x.y as the load tool's RTMFP players bind (100 per
/// address), port chosen by the kernel.
fn receiver_ip(i: usize) -> [u8; 4] {
    let k = i / 100 + 1;
    [127, 1, (k >> 8) as u8, (k & 0xff) as u8]
}

pub fn run(cfg: &UnicastConfig) -> Result<UnicastReport, String> {
    if cfg.viewers == 0 || !(cfg.rate_mbps > 0.0 && cfg.rate_mbps.is_finite()) {
        return Err("-n and --rate-mbps must be positive".into());
    }
    if !(1..=65_000).contains(&cfg.datagram) {
        return Err("the datagram size must be 1..=65000".into());
    }
    let err = |e: std::io::Error| e.to_string();
    let mut receivers = Vec::with_capacity(cfg.viewers);
    let mut targets = Vec::with_capacity(cfg.viewers);
    for i in 0..cfg.viewers {
        let s = UdpSocket::bind(SocketAddr::from((receiver_ip(i), 0))).map_err(err)?;
        s.set_nonblocking(true).map_err(err)?;
        targets.push(SockAddr::from(s.local_addr().map_err(err)?));
        receivers.push(s);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let sink = {
        let (stop, received, cpu) = (Arc::clone(&stop), Arc::clone(&received), cfg.sink_cpu);
        std::thread::spawn(move || sink(receivers, cpu, &stop, &received))
    };
    let result = send(cfg, &targets, &received);
    stop.store(true, Ordering::Relaxed);
    let _ = sink.join();
    result
}

/// Reads every datagram the receivers get, as the players would.
fn sink(receivers: Vec<UdpSocket>, cpu: Option<usize>, stop: &AtomicBool, received: &AtomicU64) {
    if let Some(id) = cpu {
        core_affinity::set_for_current(core_affinity::CoreId { id });
    }
    let Ok(ep) = Epoll::new() else { return };
    for (i, s) in receivers.iter().enumerate() {
        let _ = ep.ctl(libc::EPOLL_CTL_ADD, s.as_raw_fd(), IN, i as u64);
    }
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    let mut buf = vec![0u8; 65_536];
    while !stop.load(Ordering::Relaxed) {
        let n = ep.wait(&mut events, 50);
        for ev in &events[..n] {
            let Some(s) = receivers.get(ev.u64 as usize) else {
                continue;
            };
            while s.recv(&mut buf).is_ok() {
                received.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn send(
    cfg: &UnicastConfig,
    targets: &[SockAddr],
    received: &AtomicU64,
) -> Result<UnicastReport, String> {
    if let Some(id) = cfg.cpu {
        if !core_affinity::set_for_current(core_affinity::CoreId { id }) {
            return Err(format!("cannot pin to core {id}"));
        }
    }
    let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let fd = socket.as_raw_fd();
    // Datagrams per viewer per interval, the fraction carried over so the rate is exact.
    let per_interval = cfg.rate_mbps * 1e6 / 8.0 * cfg.interval.as_secs_f64() / cfg.datagram as f64;
    let payload = vec![0x5au8; cfg.datagram * MAX_SEGMENTS];
    let mut owed = vec![0.0f64; targets.len()];
    let mut iov: Vec<libc::iovec> = Vec::with_capacity(BATCH);
    let mut msgs: Vec<libc::mmsghdr> = Vec::with_capacity(BATCH);
    let mut cmsg = [0u64; 4];
    let tid = current_tid();
    let start = Instant::now();
    let steady_from = start + cfg.warmup;
    let end = start + cfg.duration;
    let mut next = start;
    let mut sent = Sent::default();
    let mut at_steady: Option<(Instant, f64, [u64; 5])> = None;
    while Instant::now() < end {
        if at_steady.is_none() && Instant::now() >= steady_from {
            let cpu = thread_cpu_seconds(tid).unwrap_or(0.0);
            let r = received.load(Ordering::Relaxed);
            at_steady = Some((
                Instant::now(),
                cpu,
                [sent.syscalls, sent.datagrams, sent.bytes, sent.errors, r],
            ));
        }
        for (to, owed) in targets.iter().zip(owed.iter_mut()) {
            *owed += per_interval;
            let n = owed.floor() as usize;
            *owed -= n as f64;
            if cfg.gso {
                let mut left = n;
                while left > 0 {
                    let k = left.min(MAX_SEGMENTS);
                    let mut v = libc::iovec {
                        iov_base: payload.as_ptr() as *mut libc::c_void,
                        iov_len: k * cfg.datagram,
                    };
                    // SAFETY: msghdr is plain old data.
                    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
                    msg.msg_name = to.as_ptr() as *mut libc::c_void;
                    msg.msg_namelen = to.len();
                    msg.msg_iov = &mut v;
                    msg.msg_iovlen = 1;
                    if k > 1 {
                        set_gso_segment(&mut msg, &mut cmsg, cfg.datagram as u16);
                    }
                    // SAFETY: every pointer in msg is valid for the call.
                    let rc = unsafe { libc::sendmsg(fd, &msg, 0) };
                    sent.syscalls += 1;
                    if rc < 0 {
                        sent.errors += k as u64;
                    } else {
                        sent.datagrams += k as u64;
                        sent.bytes += (k * cfg.datagram) as u64;
                    }
                    left -= k;
                }
                continue;
            }
            for _ in 0..n {
                iov.push(libc::iovec {
                    iov_base: payload.as_ptr() as *mut libc::c_void,
                    iov_len: cfg.datagram,
                });
                // SAFETY: mmsghdr is plain old data.
                let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
                m.msg_hdr.msg_name = to.as_ptr() as *mut libc::c_void;
                m.msg_hdr.msg_namelen = to.len();
                m.msg_hdr.msg_iovlen = 1;
                msgs.push(m);
                if msgs.len() == BATCH {
                    sent.batch(fd, &mut iov, &mut msgs, cfg.datagram);
                }
            }
        }
        if !msgs.is_empty() {
            sent.batch(fd, &mut iov, &mut msgs, cfg.datagram);
        }
        next += cfg.interval;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now; // behind: no burst to catch up
        }
    }
    let Some((t0, cpu0, [s0, d0, b0, e0, r0])) = at_steady else {
        return Err("the run ended before its steady window".into());
    };
    let secs = t0.elapsed().as_secs_f64();
    let cpu = thread_cpu_seconds(tid).unwrap_or(0.0) - cpu0;
    let gbps = (sent.bytes - b0) as f64 * 8.0 / secs / 1e9;
    let cpu_pct = cpu / secs * 100.0;
    Ok(UnicastReport {
        viewers: targets.len(),
        rate_mbps: cfg.rate_mbps,
        interval_ms: cfg.interval.as_secs_f64() * 1000.0,
        datagram: cfg.datagram,
        gso: cfg.gso,
        steady_secs: secs,
        syscalls: sent.syscalls - s0,
        datagrams: sent.datagrams - d0,
        received: received.load(Ordering::Relaxed) - r0,
        send_errors: sent.errors - e0,
        gbps,
        cpu_pct,
        cpu_pct_per_viewer: cpu_pct / targets.len() as f64,
        cores_per_gbps: if gbps > 0.0 { cpu / secs / gbps } else { 0.0 },
    })
}

/// What the sending loop has done so far.
#[derive(Debug, Default)]
struct Sent {
    syscalls: u64,
    datagrams: u64,
    bytes: u64,
    errors: u64,
}

impl Sent {
    /// Sends the batch (one `sendmmsg`), counts it, and empties it.
    fn batch(
        &mut self,
        fd: i32,
        iov: &mut Vec<libc::iovec>,
        msgs: &mut Vec<libc::mmsghdr>,
        datagram: usize,
    ) {
        let (ok, failed) = flush(fd, iov, msgs);
        iov.clear();
        self.syscalls += 1;
        self.datagrams += ok;
        self.bytes += ok * datagram as u64;
        self.errors += failed;
    }
}

/// One `sendmmsg` of the batch; (sent, failed). Empties the batch.
fn flush(fd: i32, iov: &mut [libc::iovec], msgs: &mut Vec<libc::mmsghdr>) -> (u64, u64) {
    // The iovecs no longer move: point each message at its own.
    for (m, v) in msgs.iter_mut().zip(iov.iter_mut()) {
        m.msg_hdr.msg_iov = v;
    }
    // SAFETY: every message points at a live target address and iovec.
    let n = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), msgs.len() as u32, 0) };
    let total = msgs.len() as u64;
    msgs.clear();
    match u64::try_from(n) {
        Ok(n) => (n, total - n),
        Err(_) => (0, total),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receivers_spread_over_addresses_like_the_players() {
        assert_eq!(receiver_ip(0), [127, 1, 0, 1]);
        assert_eq!(receiver_ip(99), [127, 1, 0, 1]);
        assert_eq!(receiver_ip(100), [127, 1, 0, 2]);
        assert_eq!(receiver_ip(25_500), [127, 1, 1, 0]);
    }

    #[test]
    fn refuses_nonsense() {
        let cfg = UnicastConfig {
            viewers: 0,
            rate_mbps: 2.15,
            interval: Duration::from_millis(10),
            datagram: DATAGRAM,
            gso: false,
            duration: Duration::from_millis(10),
            warmup: Duration::ZERO,
            cpu: None,
            sink_cpu: None,
        };
        assert!(run(&cfg).is_err());
    }
}
