//! The UDP ceiling: what sending multicast outputs costs at the least on this machine, to
//! state stratad's multicast cost as a multiple of it. One pinned thread sends the same
//! datagrams (one buffer, filled once) to N multicast groups the way stratad's outputs
//! do: every `interval`, one `sendmsg` per output carrying rate × interval bytes cut into
//! 1316-byte datagrams by the kernel (UDP GSO, `UDP_SEGMENT`), with a 12-byte RTP header
//! per datagram as its own iovec when `rtp`. Nothing receives: like stratad's benchmark,
//! the groups have no members, so the figure is the sender's.
//!
//! Only where groups stay on this machine: every group must route through `lo` (run it
//! under `ip netns exec NS` with `ip route add 224.0.0.0/4 dev lo` in NS) or through a
//! device that drops what it is given, `dummy` or `ifb` (an ifb drops all but what tc
//! redirects to it): a NIC's send path with no wire, and no second delivery to this host's
//! stack as `lo` makes. The tool checks with `ip route get` and refuses otherwise. Bounded: it stops at its deadline.
//!
//! `zerocopy`: the same sends with `MSG_ZEROCOPY` (pages pinned, not copied; completions
//! read from each socket's error queue once per interval, which the sender's CPU includes),
//! counting the sends the kernel reported it copied anyway.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::msg_zerocopy::{self, Completions};
use crate::procstat::{current_tid, thread_run_seconds};
pub use crate::udp_uring::UringSend;
use crate::udp_uring::{UringCounts, UringSender};

/// 7 TS packets of 188 bytes: what stratad's outputs send by default.
pub const DATAGRAM: usize = 7 * 188;
const RTP_HEADER: usize = 12;
/// UDP GSO's limit of segments per call (the unicast floor's too).
pub(crate) const MAX_SEGMENTS: usize = 64;
const MAX_GSO_BYTES: usize = 65_000;

#[derive(Debug, Clone)]
pub struct UdpCeilingConfig {
    pub outputs: usize,
    /// The first group; output i sends to first + i (port `port`).
    pub first_group: Ipv4Addr,
    pub port: u16,
    /// Per output, Mbit/s.
    pub rate_mbps: f64,
    /// One send per output per interval (stratad's outputs send what came within
    /// `live.send_batch_ms`, 150 ms by default, in one send).
    pub interval: Duration,
    pub rtp: bool,
    /// Each datagram gathered from two iovecs per TS packet (its 4-byte header from one
    /// buffer, its 184 bytes of payload from another), as a muxer that copies no payload
    /// would send it: what the kernel's walk of ~14 iovecs per datagram costs.
    pub scatter: bool,
    /// Send with `MSG_ZEROCOPY` (see the module's comment).
    pub zerocopy: bool,
    /// Zero-copy mode: read the error queues every this many intervals (at least 1). Each
    /// read is two `recvmsg` calls per socket (the notification, then EAGAIN), a cost an
    /// io_uring sender does not pay (its notifications are completions); the kernel merges
    /// consecutive sends' notifications into one, so reading less often shows the sends'
    /// own cost.
    pub drain_every: u32,
    /// The payload in a transparent huge page (2 MiB, `MADV_HUGEPAGE`): a zero-copy send
    /// pins one folio rather than ten 4 KiB pages.
    pub hugepage: bool,
    /// Send through io_uring (one submission for every output's send of an interval, as
    /// stratad does) rather than a `sendmsg` per output; see `udp_uring`.
    pub uring: Option<UringSend>,
    /// `IP_MULTICAST_LOOP` off: no copy of each datagram looped back to this host's stack
    /// (stratad leaves it on, the default).
    pub no_loop: bool,
    pub duration: Duration,
    pub warmup: Duration,
    pub cpu: Option<usize>,
}

impl Default for UdpCeilingConfig {
    fn default() -> Self {
        UdpCeilingConfig {
            outputs: 500,
            first_group: Ipv4Addr::new(239, 20, 0, 1),
            port: 5000,
            rate_mbps: 2.15,
            interval: Duration::from_millis(150),
            rtp: false,
            scatter: false,
            zerocopy: false,
            drain_every: 1,
            hugepage: false,
            uring: None,
            no_loop: false,
            duration: Duration::from_secs(20),
            warmup: Duration::from_secs(3),
            cpu: Some(0),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UdpCeilingReport {
    pub outputs: usize,
    pub rate_mbps: f64,
    pub interval_ms: f64,
    pub rtp: bool,
    #[serde(default)]
    pub scatter: bool,
    #[serde(default)]
    pub zerocopy: bool,
    #[serde(default)]
    pub drain_every: u32,
    #[serde(default)]
    pub hugepage: bool,
    /// "", or how io_uring sent: "send", "send_zc", "send_zc_fixed".
    #[serde(default)]
    pub uring: String,
    /// The process's AnonHugePages (smaps_rollup) once the payload is written, in KiB:
    /// whether `hugepage` got one.
    #[serde(default)]
    pub anon_huge_kb: u64,
    #[serde(default)]
    pub no_loop: bool,
    /// The device the groups route through (`lo` or a dummy).
    #[serde(default)]
    pub dev: String,
    /// Zero-copy mode: sends the kernel completed within the steady window, and how many
    /// of them it reported copied anyway (a send is one `sendmsg`).
    #[serde(default)]
    pub zc_completed: u64,
    #[serde(default)]
    pub zc_copied: u64,
    pub steady_secs: f64,
    pub sends: u64,
    pub datagrams: u64,
    pub bytes: u64,
    pub send_errors: u64,
    pub gbps: f64,
    /// The sender thread's time on a CPU (schedstat's nanoseconds: stat's 10 ms ticks gave
    /// 20 outputs' 0.1 % of a core a resolution of a third of itself), in % of one core.
    pub cpu_pct: f64,
    /// cpu_pct ÷ outputs.
    pub cpu_pct_per_output: f64,
    /// Core-seconds per second per Gbit/s sent.
    pub cores_per_gbps: f64,
    pub us_per_send: f64,
}

impl UdpCeilingReport {
    pub fn human(&self) -> String {
        format!(
            "udp ceiling: {} outputs x {:.2} Mbit/s ({}{}{}{}{}{}; one sendmsg per output every {:.0} ms, dev {})\n\
             {}sent {:.3} Gbit/s in {:.1} s: {} sends, {} datagrams, {} errors\n\
             sender CPU {:.1} % of a core: {:.4} % per output, {:.3} cores per Gbit/s, {:.2} us per send\n",
            self.outputs,
            self.rate_mbps,
            if self.rtp { "RTP" } else { "UDP" },
            if self.scatter {
                ", an iovec per TS packet's header and payload"
            } else {
                ""
            },
            if self.zerocopy && self.uring.is_empty() {
                ", MSG_ZEROCOPY"
            } else {
                ""
            },
            if self.no_loop { ", no multicast loop" } else { "" },
            if self.hugepage { ", payload in a huge page" } else { "" },
            if self.uring.is_empty() {
                String::new()
            } else {
                format!(", io_uring {}", self.uring)
            },
            self.interval_ms,
            self.dev,
            if self.zerocopy {
                format!(
                    "zero-copy sends completed: {}, of which reported copied by the kernel: {} \
                     (error queues read every {} intervals)\n",
                    self.zc_completed, self.zc_copied, self.drain_every
                )
            } else {
                String::new()
            },
            self.gbps,
            self.steady_secs,
            self.sends,
            self.datagrams,
            self.send_errors,
            self.cpu_pct,
            self.cpu_pct_per_output,
            self.cores_per_gbps,
            self.us_per_send,
        )
    }
}

fn group(cfg: &UdpCeilingConfig, i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(cfg.first_group).wrapping_add(i as u32))
}

/// The device `addr` routes through; refuses unless it is `lo` (a namespace made for it) or
/// a device that drops everything.
fn check_route(addr: Ipv4Addr) -> Result<String, String> {
    let out = Command::new("ip")
        .args(["route", "get", &addr.to_string()])
        .output()
        .map_err(|e| format!("cannot run `ip route get`: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let dev = route_dev(&text);
    let ok = out.status.success()
        && match dev {
            Some("lo") => true,
            Some(dev) => drops_everything(dev),
            None => false,
        };
    match dev {
        Some(dev) if ok => Ok(dev.to_string()),
        _ => Err(format!(
            "{addr} does not route through lo or a dummy or ifb device ({}); run under `ip netns \
             exec NS` in a namespace with `ip link set lo up`, `ip link set lo multicast on` \
             and `ip route add 224.0.0.0/4 dev lo`",
            text.trim()
        )),
    }
}

/// The word after ` dev ` in `ip route get`'s answer.
fn route_dev(text: &str) -> Option<&str> {
    let mut words = text.split_whitespace();
    words.find(|w| *w == "dev")?;
    words.next()
}

/// `dev` is a dummy or an ifb (`ip -d` names the kind after the link's flags).
fn drops_everything(dev: &str) -> bool {
    Command::new("ip")
        .args(["-d", "-o", "link", "show", "dev", dev])
        .output()
        .map(|o| {
            let text = String::from_utf8_lossy(&o.stdout);
            o.status.success() && (text.contains(" dummy ") || text.contains(" ifb "))
        })
        .unwrap_or(false)
}

pub fn run(cfg: &UdpCeilingConfig) -> Result<UdpCeilingReport, String> {
    if cfg.outputs == 0 || !(cfg.rate_mbps > 0.0 && cfg.rate_mbps.is_finite()) {
        return Err("-n and --rate-mbps must be positive".into());
    }
    if !group(cfg, 0).is_multicast() || !group(cfg, cfg.outputs - 1).is_multicast() {
        return Err("the groups must be multicast addresses".into());
    }
    let dev = check_route(group(cfg, 0))?;
    if check_route(group(cfg, cfg.outputs - 1))? != dev {
        return Err("the first and last groups route through different devices".into());
    }
    if let Some(id) = cfg.cpu {
        if !core_affinity::set_for_current(core_affinity::CoreId { id }) {
            return Err(format!("cannot pin to core {id}"));
        }
    }
    let per_send = (cfg.rate_mbps * 1e6 / 8.0 * cfg.interval.as_secs_f64()).round() as usize;
    let (huge, plain);
    let payload: &[u8] = if cfg.hugepage {
        huge = Some(HugeBuffer::new(per_send.max(1))?);
        huge.as_ref().map_or(&[], |h| h.bytes())
    } else {
        huge = None;
        plain = vec![0x47u8; per_send.max(1)];
        &plain
    };
    let anon_huge_kb = anon_huge_kb();
    let rtp_headers = vec![[0x80u8, 33, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]; MAX_SEGMENTS];
    // Scatter mode: the packets' headers, each datagram's 7 in a row.
    let ts_heads = vec![[0x47u8, 0x01, 0x00, 0x10]; MAX_SEGMENTS * TS_PER_DATAGRAM];
    let mut sockets = Vec::with_capacity(cfg.outputs);
    for i in 0..cfg.outputs {
        let s = Socket::new(Domain::IPV4, Type::DGRAM.cloexec(), Some(Protocol::UDP))
            .map_err(|e| e.to_string())?;
        s.set_multicast_ttl_v4(1).map_err(|e| e.to_string())?;
        if cfg.no_loop {
            s.set_multicast_loop_v4(false).map_err(|e| e.to_string())?;
        }
        if cfg.zerocopy && cfg.uring.is_none() {
            msg_zerocopy::enable(s.as_raw_fd()).map_err(|e| format!("SO_ZEROCOPY: {e}"))?;
        }
        let to: SockAddr = SocketAddr::V4(SocketAddrV4::new(group(cfg, i), cfg.port)).into();
        sockets.push((s, to));
    }
    let tid = current_tid();
    let start = Instant::now();
    let steady_from = start + cfg.warmup;
    let end = start + cfg.duration;
    let mut next = start;
    let (mut sends, mut datagrams, mut bytes, mut errors) = (0u64, 0u64, 0u64, 0u64);
    let mut at_steady: Option<(Instant, f64, u64, u64, u64, u64, Completions)> = None;
    let mut zc = Completions::default();
    let mut intervals = 0u64;
    let segment = DATAGRAM + if cfg.rtp { RTP_HEADER } else { 0 };
    let mut uring = match cfg.uring {
        Some(kind) => {
            if cfg.rtp || cfg.scatter || payload.len() > MAX_GSO_BYTES {
                return Err(
                    "io_uring mode: one plain send of at most 65,000 bytes per output \
                            and interval (no --rtp, no --scatter)"
                        .into(),
                );
            }
            Some(UringSender::new(
                kind,
                cfg.outputs,
                &sockets,
                segment as u16,
                payload,
            )?)
        }
        None => None,
    };
    let mut ucounts = UringCounts::default();
    let flags = if cfg.zerocopy { libc::MSG_ZEROCOPY } else { 0 };
    let mut iov: Vec<libc::iovec> = Vec::with_capacity((1 + 2 * TS_PER_DATAGRAM) * MAX_SEGMENTS);
    let mut cmsg = [0u64; 4];
    while Instant::now() < end {
        if at_steady.is_none() && Instant::now() >= steady_from {
            let cpu = thread_run_seconds(tid).unwrap_or(0.0);
            at_steady = Some((Instant::now(), cpu, sends, datagrams, bytes, errors, zc));
        }
        if let Some(sender) = uring.as_mut() {
            let before = ucounts;
            sender.send_all(&sockets, payload, &mut ucounts)?;
            let sent = ucounts.sends - before.sends;
            sends += sent;
            datagrams += sent * payload.len().div_ceil(DATAGRAM) as u64;
            bytes += ucounts.bytes - before.bytes;
            errors += ucounts.errors - before.errors;
            zc.add_counts(
                ucounts.notified - before.notified,
                ucounts.copied - before.copied,
            );
        }
        for (socket, to) in sockets.iter().filter(|_| uring.is_none()) {
            // One send per output per interval: the interval's bytes, at most one GSO
            // call's worth (more calls if the rate asks for more).
            let mut left = payload.len();
            while left > 0 {
                let n_dgrams = left
                    .div_ceil(DATAGRAM)
                    .min(MAX_SEGMENTS)
                    .min(MAX_GSO_BYTES / segment);
                let take = left.min(n_dgrams * DATAGRAM);
                iov.clear();
                let mut at = payload.len() - left;
                for (d, header) in rtp_headers.iter().enumerate().take(n_dgrams) {
                    if cfg.rtp {
                        iov.push(libc::iovec {
                            iov_base: header.as_ptr() as *mut libc::c_void,
                            iov_len: RTP_HEADER,
                        });
                    }
                    let len = DATAGRAM.min(payload.len() - at).min(take - d * DATAGRAM);
                    if cfg.scatter {
                        gather_ts(
                            &mut iov,
                            &payload[at..at + len],
                            &ts_heads[d * TS_PER_DATAGRAM..],
                        );
                    } else {
                        iov.push(libc::iovec {
                            iov_base: payload[at..].as_ptr() as *mut libc::c_void,
                            iov_len: len,
                        });
                    }
                    at += len;
                }
                // SAFETY: msghdr is plain old data.
                let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
                msg.msg_name = to.as_ptr() as *mut libc::c_void;
                msg.msg_namelen = to.len();
                msg.msg_iov = iov.as_mut_ptr();
                msg.msg_iovlen = iov.len() as _;
                if n_dgrams > 1 {
                    set_gso_segment(&mut msg, &mut cmsg, segment as u16);
                }
                // SAFETY: every pointer in msg is valid for the call.
                let rc = unsafe { libc::sendmsg(socket.as_raw_fd(), &msg, flags) };
                if rc < 0 {
                    errors += 1;
                } else {
                    sends += 1;
                    datagrams += n_dgrams as u64;
                    bytes += take as u64;
                }
                left -= take;
            }
        }
        intervals += 1;
        if cfg.zerocopy
            && uring.is_none()
            && intervals.is_multiple_of(u64::from(cfg.drain_every.max(1)))
        {
            // The payload is never written, so its pages may stay pinned for as long as the
            // kernel likes; the notifications are read once per interval, as an io_uring
            // sender would reap its notification CQEs once per batch.
            for (socket, _) in &sockets {
                if msg_zerocopy::drain(socket.as_raw_fd(), &mut zc).is_err() {
                    errors += 1;
                }
            }
        }
        next += cfg.interval;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now; // behind: no burst to catch up
        }
    }
    let Some((t0, cpu0, s0, d0, b0, e0, zc0)) = at_steady else {
        return Err("the run ended before its steady window".into());
    };
    let secs = t0.elapsed().as_secs_f64();
    let cpu = thread_run_seconds(tid).unwrap_or(0.0) - cpu0;
    let gbps = (bytes - b0) as f64 * 8.0 / secs / 1e9;
    let cpu_pct = cpu / secs * 100.0;
    Ok(UdpCeilingReport {
        outputs: cfg.outputs,
        rate_mbps: cfg.rate_mbps,
        interval_ms: cfg.interval.as_secs_f64() * 1000.0,
        rtp: cfg.rtp,
        scatter: cfg.scatter,
        zerocopy: cfg.zerocopy || matches!(cfg.uring, Some(k) if k != UringSend::Copy),
        uring: match cfg.uring {
            None => "",
            Some(UringSend::Copy) => "send",
            Some(UringSend::ZeroCopy) => "send_zc",
            Some(UringSend::ZeroCopyFixed) => "send_zc_fixed",
        }
        .to_string(),
        drain_every: cfg.drain_every.max(1),
        hugepage: huge.is_some(),
        anon_huge_kb,
        no_loop: cfg.no_loop,
        dev,
        zc_completed: zc.done - zc0.done,
        zc_copied: zc.copied - zc0.copied,
        steady_secs: secs,
        sends: sends - s0,
        datagrams: datagrams - d0,
        bytes: bytes - b0,
        send_errors: errors - e0,
        gbps,
        cpu_pct,
        cpu_pct_per_output: cpu_pct / cfg.outputs as f64,
        cores_per_gbps: if gbps > 0.0 { cpu / secs / gbps } else { 0.0 },
        us_per_send: if sends > s0 {
            cpu * 1e6 / (sends - s0) as f64
        } else {
            0.0
        },
    })
}

/// A buffer in one 2 MiB-aligned transparent huge page, filled with 0x47.
struct HugeBuffer {
    base: *mut u8,
    map_len: usize,
    at: usize,
    len: usize,
}

const HUGE: usize = 2 << 20;

impl HugeBuffer {
    fn new(len: usize) -> Result<Self, String> {
        if len > HUGE {
            return Err("--hugepage: a send larger than 2 MiB".into());
        }
        let map_len = 2 * HUGE;
        // SAFETY: an anonymous private mapping of our own, unmapped on drop.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(format!("mmap: {}", std::io::Error::last_os_error()));
        }
        let base = base.cast::<u8>();
        let at = (HUGE - base as usize % HUGE) % HUGE;
        // SAFETY: [at, at + HUGE) lies within the mapping (it is twice that long).
        unsafe {
            libc::madvise(base.add(at).cast(), HUGE, libc::MADV_HUGEPAGE);
            std::ptr::write_bytes(base.add(at), 0x47, HUGE);
        }
        Ok(HugeBuffer {
            base,
            map_len,
            at,
            len,
        })
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: written in `new`, alive until drop.
        unsafe { std::slice::from_raw_parts(self.base.add(self.at), self.len) }
    }
}

impl Drop for HugeBuffer {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`.
        unsafe { libc::munmap(self.base.cast(), self.map_len) };
    }
}

fn anon_huge_kb() -> u64 {
    std::fs::read_to_string("/proc/self/smaps_rollup")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("AnonHugePages:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

const TS_PACKET: usize = 188;
const TS_HEAD: usize = 4;
const TS_PER_DATAGRAM: usize = DATAGRAM / TS_PACKET;

/// Scatter mode: `datagram`'s bytes as iovecs, per 188-byte packet a 4-byte header from
/// `heads` and the rest from `datagram` (the same number of bytes as the one slice).
fn gather_ts(iov: &mut Vec<libc::iovec>, datagram: &[u8], heads: &[[u8; TS_HEAD]]) {
    for (packet, head) in datagram.chunks(TS_PACKET).zip(heads) {
        let h = TS_HEAD.min(packet.len());
        iov.push(libc::iovec {
            iov_base: head.as_ptr() as *mut libc::c_void,
            iov_len: h,
        });
        if packet.len() > h {
            iov.push(libc::iovec {
                iov_base: packet[h..].as_ptr() as *mut libc::c_void,
                iov_len: packet.len() - h,
            });
        }
    }
}

/// `[[multicast]]` entries for a stratad benchmark: `streams` streams (live/bench0, ...)
/// each to `groups` groups, numbered from `first_group` as the ceiling numbers its outputs.
pub fn multicast_config(
    streams: usize,
    groups: usize,
    first_group: Ipv4Addr,
    port: u16,
    rtp: bool,
) -> String {
    let mut out = String::new();
    for s in 0..streams {
        for g in 0..groups {
            let addr = Ipv4Addr::from(u32::from(first_group).wrapping_add((s * groups + g) as u32));
            out.push_str(&format!(
                "[[multicast]]\nstream = \"live/bench{s}\"\ngroup = \"{addr}:{port}\"\nrtp = {rtp}\n\n"
            ));
        }
    }
    out
}

/// Asks the kernel to cut `msg`'s payload into `segment`-byte datagrams (`UDP_SEGMENT`),
/// with `cmsg` as the control buffer; `msg` must be sent while `cmsg` lives.
pub(crate) fn set_gso_segment(msg: &mut libc::msghdr, cmsg: &mut [u64; 4], segment: u16) {
    // SAFETY: cmsg holds one cmsghdr and a u16 (24 of its 32 bytes, 8-aligned), and
    // CMSG_FIRSTHDR of a msghdr whose control buffer is that large is non-null.
    unsafe {
        msg.msg_control = cmsg.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(2) as _;
        let c = libc::CMSG_FIRSTHDR(msg);
        (*c).cmsg_level = libc::SOL_UDP;
        (*c).cmsg_type = libc::UDP_SEGMENT;
        (*c).cmsg_len = libc::CMSG_LEN(2) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), segment);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_numbers_groups_like_the_ceiling() {
        let c = multicast_config(2, 2, Ipv4Addr::new(239, 20, 0, 1), 5000, false);
        assert_eq!(c.matches("[[multicast]]").count(), 4);
        assert!(c.contains("stream = \"live/bench1\"\ngroup = \"239.20.0.4:5000\""));
    }

    #[test]
    fn scatter_sends_as_many_bytes_in_two_iovecs_a_packet() {
        let datagram: Vec<u8> = (0..DATAGRAM + 100).map(|i| i as u8).collect();
        let heads = vec![[0x47u8, 1, 2, 3]; TS_PER_DATAGRAM];
        for len in [DATAGRAM, 100, 2] {
            let mut iov = Vec::new();
            gather_ts(&mut iov, &datagram[..len], &heads);
            let total: usize = iov.iter().map(|v| v.iov_len).sum();
            assert_eq!(total, len);
            assert_eq!(
                iov.len(),
                2 * len.div_ceil(TS_PACKET)
                    - usize::from(len % TS_PACKET != 0 && len % TS_PACKET <= TS_HEAD)
            );
            // Every second iovec is the datagram's own bytes past a packet's header.
            for (k, v) in iov.iter().skip(1).step_by(2).enumerate() {
                assert_eq!(
                    v.iov_base as *const u8,
                    datagram[k * TS_PACKET + TS_HEAD..].as_ptr()
                );
            }
        }
    }

    #[test]
    fn finds_the_route_device() {
        let text = "239.20.0.1 dev lo table local src 127.0.0.1 uid 0 \n    cache <mc> \n";
        assert_eq!(route_dev(text), Some("lo"));
        assert_eq!(
            route_dev("239.20.0.1 via 10.0.0.1 dev eth0 src 10.0.0.2"),
            Some("eth0")
        );
        assert_eq!(route_dev("RTNETLINK answers: Network is unreachable"), None);
    }

    #[test]
    fn refuses_groups_that_leave_the_machine() {
        let cfg = UdpCeilingConfig {
            first_group: Ipv4Addr::new(10, 0, 0, 1),
            ..Default::default()
        };
        assert!(run(&cfg).is_err());
    }
}
