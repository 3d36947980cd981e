//! The worker's multicast outputs of the streams that enter on it (a local publisher or an
//! upstream link): per stream one `TsMuxer` whose bytes every output of the stream shares,
//! per output a UDP socket and a `multicast::Output` (where it starts, what waits, pacing,
//! back-off). Pumped once per loop turn: each output with something due gets one `sendmsg`
//! on the ring, its datagrams cut by the kernel (UDP GSO, `UDP_SEGMENT`) from iovecs over
//! the shared frames and, for RTP, the output's headers; never a system call per packet.
//!
//! An output lives as long as its stream is live here: it opens when the stream goes live
//! (or when an operator adds it while it is live) and closes when the source leaves; the
//! next source (on this worker or another) opens it again, from its first key frame, its
//! first packets flagging the discontinuity.

use std::ffi::CString;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;

use control_protocol::{Event, MulticastOutputInfo};
use rand::Rng;
use socket2::{Domain, Protocol, SockAddr, Type};

use super::*;
use crate::engine::slab::{Slab, SlabRef};
use crate::media::frame::{Frame, FrameRef};
use crate::multicast::output::{Output, Part, State};
use crate::multicast::spec::MulticastSpec;
use crate::proto::mpegts::muxer::TsMuxer;

/// One output on this worker.
struct Entry {
    key: StreamKey,
    spec: MulticastSpec,
    socket: Socket,
    output: Output,
    /// The msghdr, iovecs and control message of the send in flight (the kernel reads
    /// them in place until it completes). Boxed so the slab may grow.
    slot: Box<SendSlot>,
    in_flight: bool,
    /// The stream stopped or the output was removed: freed once no send is in flight.
    closing: bool,
    /// In `Multicasts::touched` (so it is there once).
    touched: bool,
}

struct SendSlot {
    addr: SockAddr,
    msghdr: libc::msghdr,
    iov: Vec<libc::iovec>,
    /// Room for one `cmsghdr` with a `u16` (UDP_SEGMENT), aligned as cmsghdr is.
    cmsg: [u64; 4],
}

/// A stream's muxer and its outputs on this worker.
struct StreamMux {
    muxer: TsMuxer,
    outputs: Vec<SlabRef>,
    /// A bad frame was logged for this source already (the next are counted, not logged).
    logged_error: bool,
}

#[derive(Default)]
pub(crate) struct Multicasts {
    streams: HashMap<StreamKey, StreamMux>,
    entries: Slab<Entry>,
    /// Every output (no allocation per pump).
    active: Vec<SlabRef>,
    /// Outputs offered a frame or whose send completed since the last pump: the next pump
    /// looks at these alone unless `due` has come. A frame of one stream costs a look at
    /// that stream's outputs, not at every output of the worker (with a stream per output,
    /// a walk of all N per frame made N streams cost N² looks a second).
    touched: Vec<SlabRef>,
    /// An output was added or removed: the next pump walks them all.
    dirty: bool,
    /// The earliest time (worker clock, ms) an output has a send due, as of the last pump.
    due: Option<u64>,
}

impl Multicasts {
    /// A frame of a stream with outputs (from `Port::multicast`, inside the fan-out):
    /// muxed once, offered to each output.
    pub(crate) fn offer(&mut self, key: &StreamKey, frame: &Frame) {
        let Some(s) = self.streams.get_mut(key) else {
            return;
        };
        let muxed = match s.muxer.push(frame.type_id, frame.timestamp, &frame.payload) {
            Ok(Some(m)) => m,
            Ok(None) => return,
            Err(e) => {
                if !std::mem::replace(&mut s.logged_error, true) {
                    warn!(stream = %key, error = %e,
                        "multicast: a frame the TS muxer cannot carry; dropped (further ones silently)");
                }
                return;
            }
        };
        for r in &s.outputs {
            if let Some(e) = self.entries.get_mut(*r) {
                e.output.offer(&muxed);
                if !std::mem::replace(&mut e.touched, true) {
                    self.touched.push(*r);
                }
            }
        }
    }

    /// An output added to a stream whose muxer runs already: its own start from `gop`
    /// (see `TsMuxer::catch_up`), queued before the shared frames to come.
    fn catch_up(&mut self, key: &StreamKey, r: SlabRef, gop: &[FrameRef]) {
        let (Some(s), Some(e)) = (self.streams.get(key), self.entries.get_mut(r)) else {
            return;
        };
        let frames = gop.iter().map(|f| (f.type_id, f.timestamp, &f.payload[..]));
        for m in s.muxer.catch_up(frames) {
            e.output.offer(&m);
        }
        self.dirty = true;
    }

    /// What `streams` shows of `key`'s outputs.
    pub(crate) fn reports(&self, key: &StreamKey) -> Vec<MulticastOutputInfo> {
        let Some(s) = self.streams.get(key) else {
            return Vec::new();
        };
        s.outputs
            .iter()
            .filter_map(|r| self.entries.get(*r))
            .map(|e| {
                let stats = e.output.stats;
                MulticastOutputInfo {
                    group: e.spec.group.to_string(),
                    rtp: e.spec.rtp,
                    state: match e.output.state() {
                        State::WaitingForKey => "waiting_for_key",
                        State::Sending => "sending",
                        State::BackingOff { .. } => "backing_off",
                    }
                    .to_string(),
                    datagrams: stats.datagrams,
                    bytes: stats.bytes,
                    dropped_bytes: stats.dropped_bytes,
                    failures: stats.failures,
                }
            })
            .collect()
    }
}

/// A UDP socket for `spec`: TTL, outgoing interface, DSCP, and the source address when
/// given (it must be an address of this host: binding to it is the check).
fn open_socket(spec: &MulticastSpec) -> io::Result<Socket> {
    let group = spec.group;
    let socket = Socket::new(
        Domain::for_address(group),
        Type::DGRAM.cloexec(),
        Some(Protocol::UDP),
    )?;
    let tos = i32::from(spec.dscp) << 2;
    if group.is_ipv4() {
        socket.set_multicast_ttl_v4(spec.ttl)?;
        socket.set_tos(tos as u32)?;
    } else {
        socket.set_multicast_hops_v6(spec.ttl)?;
        set_int(&socket, libc::IPPROTO_IPV6, libc::IPV6_TCLASS, tos)?;
    }
    if let Some(iface) = &spec.interface {
        match iface.parse::<Ipv4Addr>() {
            Ok(addr) if group.is_ipv4() => socket.set_multicast_if_v4(&addr)?,
            _ => {
                let index = interface_index(iface)?;
                if group.is_ipv4() {
                    set_multicast_if_index_v4(&socket, index)?;
                } else {
                    socket.set_multicast_if_v6(index)?;
                }
            }
        }
    }
    if let Some(source) = spec.source {
        socket.bind(&SocketAddr::new(source, 0).into())?;
    }
    Ok(socket)
}

fn interface_index(name: &str) -> io::Result<u32> {
    let c = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name with NUL"))?;
    // SAFETY: a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(index)
}

fn set_int(socket: &Socket, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: a plain int option on a socket we own.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            std::ptr::addr_of!(value).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// IP_MULTICAST_IF by interface index (socket2 takes only an address).
fn set_multicast_if_index_v4(socket: &Socket, index: u32) -> io::Result<()> {
    let mreqn = libc::ip_mreqn {
        imr_multiaddr: libc::in_addr { s_addr: 0 },
        imr_address: libc::in_addr { s_addr: 0 },
        imr_ifindex: index as i32,
    };
    // SAFETY: an ip_mreqn, as the option takes, on a socket we own.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_IF,
            std::ptr::addr_of!(mreqn).cast(),
            std::mem::size_of::<libc::ip_mreqn>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl SendSlot {
    fn new(group: SocketAddr) -> Self {
        SendSlot {
            addr: group.into(),
            // SAFETY: msghdr is plain old data; all-zero is its empty value.
            msghdr: unsafe { std::mem::zeroed() },
            iov: Vec::new(),
            cmsg: [0; 4],
        }
    }
}

impl Worker {
    /// The stream went live here: the outputs configured for it (and those added at run
    /// time) open, and the stream gets its multicast sink.
    pub(super) fn start_multicast(&mut self, key: &StreamKey) {
        if self
            .streams
            .get(key)
            .and_then(|s| s.source.here())
            .is_none()
        {
            return;
        }
        let specs: Vec<MulticastSpec> = self
            .multicast_specs()
            .filter(|s| crate::multicast::spec::matches(s, key))
            .collect();
        for spec in specs {
            self.open_output(key, spec);
        }
    }

    /// Every output spec this worker knows: the configuration's, then those added at run
    /// time.
    fn multicast_specs(&self) -> impl Iterator<Item = MulticastSpec> + '_ {
        self.config
            .multicast
            .iter()
            .chain(self.multicast_added.iter())
            .cloned()
    }

    pub(super) fn open_output(&mut self, key: &StreamKey, spec: MulticastSpec) {
        let Some(stream) = self.streams.get_mut(key) else {
            return;
        };
        let socket = match open_socket(&spec) {
            Ok(s) => s,
            Err(e) => {
                warn!(stream = %key, group = %spec.group, error = %e,
                    errno = e.raw_os_error().unwrap_or(0), "multicast output cannot open its socket");
                self.multicast_event("multicast_failed", key, &spec, Some(e.to_string()));
                return;
            }
        };
        let new_stream = !self.multicasts.streams.contains_key(key);
        let s = self
            .multicasts
            .streams
            .entry(key.clone())
            .or_insert_with(|| StreamMux {
                muxer: TsMuxer::new(),
                outputs: Vec::new(),
                logged_error: false,
            });
        if new_stream {
            // Whatever a receiver decoded before (another source, another worker) is
            // not continued by these packets.
            s.muxer.discontinuity();
        }
        let ssrc = self.rng.gen::<u32>();
        let r = self.multicasts.entries.insert(Entry {
            key: key.clone(),
            socket,
            output: Output::new(
                spec.packet_size,
                spec.rtp,
                spec.rate,
                u64::from(self.config.live.send_batch_ms),
                ssrc,
            )
            .aligned(),
            slot: Box::new(SendSlot::new(spec.group)),
            spec: spec.clone(),
            in_flight: false,
            closing: false,
            touched: false,
        });
        s.outputs.push(r);
        self.multicasts.active.push(r);
        self.multicasts.dirty = true;
        // A stream already under way: every output starts on the GOP cache's key frame.
        // The first through the shared muxer (its bytes are every output's); a later one
        // gets the cache muxed for it alone, its continuity counters leading into the
        // shared packets of the frames that follow.
        if new_stream {
            for f in stream.add_multicast() {
                self.multicasts.offer(key, &f);
            }
        } else {
            let gop: Vec<FrameRef> = stream.gop.snapshot().cloned().collect();
            self.multicasts.catch_up(key, r, &gop);
        }
        info!(stream = %key, group = %spec.group, rtp = spec.rtp, "multicast output started");
        self.multicast_event("multicast_start", key, &spec, None);
    }

    /// An operator added an output: kept for streams going live later, and opened now for
    /// those live here.
    pub(super) fn add_multicast(&mut self, spec: MulticastSpec) {
        let live: Vec<StreamKey> = self
            .streams
            .iter()
            .filter(|(k, s)| s.source.here().is_some() && crate::multicast::spec::matches(&spec, k))
            .map(|(k, _)| k.clone())
            .collect();
        self.multicast_added.push(spec.clone());
        for key in live {
            self.open_output(&key, spec.clone());
        }
    }

    /// An operator removed an output added at run time: it closes wherever it is open.
    pub(super) fn remove_multicast(&mut self, stream: &str, group: SocketAddr) {
        self.multicast_added
            .retain(|s| !(s.stream == stream && s.group == group));
        let doomed: Vec<SlabRef> = self
            .multicasts
            .active
            .iter()
            .copied()
            .filter(|r| {
                self.multicasts
                    .entries
                    .get(*r)
                    .is_some_and(|e| e.spec.stream == stream && e.spec.group == group)
            })
            .collect();
        for r in doomed {
            let Some(key) = self.multicasts.entries.get(r).map(|e| e.key.clone()) else {
                continue;
            };
            if let Some(s) = self.multicasts.streams.get_mut(&key) {
                s.outputs.retain(|o| *o != r);
                if s.outputs.is_empty() {
                    self.multicasts.streams.remove(&key);
                    if let Some(stream) = self.streams.get_mut(&key) {
                        stream.remove_multicast();
                    }
                }
            }
            self.close_output(r, "removed by an operator");
        }
    }

    /// The stream's source left (or the stream ends here): its outputs close once what
    /// is in flight completes.
    pub(super) fn stop_multicast(&mut self, key: &StreamKey) {
        let Some(s) = self.multicasts.streams.remove(key) else {
            return;
        };
        for r in s.outputs {
            self.close_output(r, "the stream's source left");
        }
    }

    fn close_output(&mut self, r: SlabRef, why: &str) {
        let Some(e) = self.multicasts.entries.get_mut(r) else {
            return;
        };
        if e.closing {
            return;
        }
        e.closing = true;
        e.output.source_left();
        let (key, spec) = (e.key.clone(), e.spec.clone());
        info!(stream = %key, group = %spec.group, reason = why, "multicast output stopped");
        self.multicast_event("multicast_stop", &key, &spec, Some(why.to_string()));
        self.free_if_idle(r);
    }

    fn free_if_idle(&mut self, r: SlabRef) {
        if self
            .multicasts
            .entries
            .get(r)
            .is_some_and(|e| e.closing && !e.in_flight)
        {
            self.multicasts.entries.remove(r);
            self.multicasts.active.retain(|a| *a != r);
        }
    }

    /// Each output with a send due gets one `sendmsg` on the ring; the next time one is
    /// due is kept for `multicast_wait`. Runs after everything else of the loop turn that
    /// touches the outputs (completions, mailbox, timers).
    pub(super) fn pump_multicast(&mut self) {
        if self.multicasts.active.is_empty() {
            // The last output may have closed on a completion that made them dirty: with
            // none left nothing is due (else `multicast_wait` would keep the loop spinning).
            self.multicasts.due = None;
            self.multicasts.dirty = false;
            self.multicasts.touched.clear();
            return;
        }
        let now = self.clock_ms(Instant::now());
        let m = &mut self.multicasts;
        if !m.dirty && m.touched.is_empty() && m.due.is_none_or(|due| due > now) {
            return;
        }
        // Every output when one may be due (with batches aligned on the clock, they all
        // are at once) or the set changed; else only those touched since the last pump,
        // and the earliest due of the others stands.
        let all = std::mem::take(&mut m.dirty) || m.due.is_some_and(|due| due <= now);
        let walk = if all {
            for r in m.touched.drain(..) {
                if let Some(e) = m.entries.get_mut(r) {
                    e.touched = false;
                }
            }
            std::mem::take(&mut m.active)
        } else {
            std::mem::take(&mut m.touched)
        };
        let mut next: Option<u64> = if all { None } else { m.due };
        for &r in &walk {
            let Some(e) = self.multicasts.entries.get_mut(r) else {
                continue;
            };
            e.touched = false;
            if e.in_flight || e.closing {
                continue;
            }
            if e.output.poll_send(now).is_none() {
                if let Some(due) = e.output.next_due(now) {
                    next = Some(next.map_or(due, |n| n.min(due)));
                }
                continue;
            }
            let (send, headers) = e.output.in_flight();
            let slot = &mut *e.slot;
            slot.iov.clear();
            for p in &send.parts {
                let (base, len) = match p {
                    Part::Header(h) => {
                        let h = &headers[*h];
                        (h.as_ptr(), h.len())
                    }
                    Part::Data(b) => (b.as_ptr(), b.len()),
                };
                slot.iov.push(libc::iovec {
                    iov_base: base as *mut libc::c_void,
                    iov_len: len,
                });
            }
            slot.msghdr.msg_name = slot.addr.as_ptr() as *mut libc::c_void;
            slot.msghdr.msg_namelen = slot.addr.len();
            slot.msghdr.msg_iov = slot.iov.as_mut_ptr();
            slot.msghdr.msg_iovlen = slot.iov.len() as _;
            if send.datagrams > 1 {
                // UDP GSO: the kernel cuts the payload into datagrams of `segment` bytes.
                let segment = send.segment as u16;
                // SAFETY: cmsg has room for one cmsghdr and a u16 (CMSG_SPACE(2) is 24
                // bytes on 64-bit Linux, it holds 32), aligned as u64.
                unsafe {
                    let space = libc::CMSG_SPACE(std::mem::size_of::<u16>() as u32) as usize;
                    slot.msghdr.msg_control = slot.cmsg.as_mut_ptr().cast();
                    slot.msghdr.msg_controllen = space as _;
                    let c = libc::CMSG_FIRSTHDR(&slot.msghdr);
                    (*c).cmsg_level = libc::SOL_UDP;
                    (*c).cmsg_type = libc::UDP_SEGMENT;
                    (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<u16>() as u32) as _;
                    std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), segment);
                }
            } else {
                slot.msghdr.msg_control = std::ptr::null_mut();
                slot.msghdr.msg_controllen = 0;
            }
            e.in_flight = true;
            let entry = opcode::SendMsg::new(types::Fd(e.socket.as_raw_fd()), &slot.msghdr)
                .build()
                .user_data(Token::new(OpKind::MulticastSend, r.slot, r.generation).to_user_data());
            // SAFETY: the msghdr, iovecs, address and control message are boxed in the
            // entry and the bytes they point at are held by the output's send; neither is
            // touched or freed until this send's completion (`in_flight`).
            unsafe { self.io.push(entry) };
        }
        // The lists go back with their capacity: no allocation per pump.
        let m = &mut self.multicasts;
        if all {
            m.active = walk;
        } else {
            m.touched = walk;
            m.touched.clear();
        }
        m.due = next;
    }

    /// How long until an output has a send due (batching, pacing, back-off), as of the
    /// last pump (an output in flight has none until its completion, which makes the
    /// outputs dirty).
    pub(super) fn multicast_wait(&self) -> Option<Duration> {
        if self.multicasts.dirty || !self.multicasts.touched.is_empty() {
            return Some(Duration::ZERO);
        }
        let due = self.multicasts.due?;
        let now = self.clock_ms(Instant::now());
        Some(Duration::from_millis(due.saturating_sub(now)))
    }

    pub(super) fn on_multicast_sent(&mut self, token: Token, c: Completion) {
        let r = SlabRef::of(token);
        let now = self.clock_ms(Instant::now());
        let Some(e) = self.multicasts.entries.get_mut(r) else {
            return;
        };
        e.in_flight = false;
        // It may have more to send (a remainder, or frames that came meanwhile).
        if !std::mem::replace(&mut e.touched, true) {
            self.multicasts.touched.push(r);
        }
        let result = usize::try_from(c.result).map_err(|_| c.result.saturating_neg());
        if let Err(errno) = e.output.completed(result, now) {
            let failures = e.output.failures();
            let (key, spec) = (e.key.clone(), e.spec.clone());
            // One line per failure streak (and every 100th after), with the errno: no
            // route, interface down, ...
            if failures == 1 || failures % 100 == 0 {
                let error = io::Error::from_raw_os_error(errno);
                warn!(stream = %key, group = %spec.group, errno, %error, failures,
                    "multicast send failed; retrying with back-off from the next key frame");
                self.multicast_event(
                    "multicast_failed",
                    &key,
                    &spec,
                    Some(format!("{error} (errno {errno})")),
                );
            }
        }
        self.free_if_idle(r);
    }

    fn multicast_event(
        &self,
        event: &str,
        key: &StreamKey,
        spec: &MulticastSpec,
        reason: Option<String>,
    ) {
        self.shared.control.post(ControlInbound::Event(Event {
            event: event.to_string(),
            ts: unix_now(),
            client: 0,
            addr: spec.group.to_string(),
            app: Some(key.app().to_string()),
            stream: Some(key.name().to_string()),
            reason,
            protocol: None,
        }));
        self.shared.control.wake();
    }
}
