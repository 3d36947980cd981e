//! UDP sockets in the worker's loop, for RTMFP (and later multicast output): one socket per
//! worker and address (SO_REUSEPORT, so the kernel spreads peers over workers as it does
//! TCP connections), received with a multishot `recvmsg` into the worker's provided
//! buffers, sent with one `sendmsg` per run of datagrams to one peer (UDP GSO: the kernel
//! cuts the run into datagrams), each completion routed by its token to the socket's owner.
//!
//! Why multishot `recvmsg` on the provided-buffer ring rather than one `recvmsg` re-armed
//! per datagram: one submission serves every datagram until the buffers run short (no
//! submission per datagram), and the buffers are the ones TCP receives already share, so an
//! idle socket holds no memory of its own. The price: a datagram briefly takes a whole
//! receive buffer (handed back in the same loop turn), and one larger than a buffer is
//! dropped, which RTMFP, whose datagrams stay under the path MTU, never sends.
//!
//! Why GSO: at hundreds of RTMFP viewers the kernel's per-`sendmsg` work (the ring's
//! submission, the header copy, routing, the UDP send path) was about a fifth of the
//! worker's time, and each viewer gets its media in bursts of equal-size packets
//! (`proto::rtmfp` pads full ones to one size). A kernel that refuses GSO (EIO where the
//! device cannot checksum, EINVAL) turns it off for the worker at its first refusal.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use io_uring::{opcode, types};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tracing::{debug, warn};

use super::io::{Completion, Io};
use super::slab::{Slab, SlabRef};
use super::token::{OpKind, Token};

/// Datagrams a worker may have in the ring at once. Sends complete within a loop turn or
/// two, so this is a turn's worth of output with room to spare; past it a sender is told
/// `Full` (RTMFP treats that as loss and its congestion control slows down) rather than the
/// worker queueing without bound.
const MAX_SENDS_IN_FLIGHT: usize = 4096;

/// Most datagrams one GSO send carries (the kernel's UDP_MAX_SEGMENTS).
pub(crate) const MAX_SEGMENTS: usize = 64;
/// Most bytes one GSO send carries: the IPv4 UDP payload limit (65,507) with room to spare.
pub(crate) const MAX_RUN_BYTES: usize = 65_000;
/// Bytes a worker may have in the ring's sends at once. Before GSO the send slots bounded
/// it (4,096 datagrams, ~5 MB); a slot now carries up to `MAX_RUN_BYTES`, so the bytes are
/// bounded themselves: a join storm's bursts must not pin hundreds of megabytes.
const MAX_BYTES_IN_FLIGHT: usize = 4 << 20;
/// Send buffers kept for reuse once their sends complete; more are freed, so a burst's
/// buffers do not stay allocated (the bound is ~4 MiB with runs of `MAX_RUN_BYTES`).
const MAX_SPARE_BUFFERS: usize = 64;

/// SO_RCVBUF asked for each UDP socket (the kernel doubles it for its bookkeeping and caps
/// it at net.core.rmem_max).
const RECV_BUFFER: usize = 4 << 20;

/// Blocking, like every socket on the ring (see `engine::connect`): the ring never blocks
/// the worker, and a send the kernel hands to io-wq then waits for room instead of failing
/// with EAGAIN.
fn bind(addr: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::DGRAM.cloexec(),
        Some(Protocol::UDP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    // Room for the bursts of acknowledgements hundreds of RTMFP viewers send (the default
    // 208 KiB overflowed at 500 viewers on one worker: 39,000 drops in 20 s, each a
    // spurious loss to the sender). The kernel caps it at net.core.rmem_max; failing to
    // raise it is not fatal.
    if let Err(e) = socket.set_recv_buffer_size(RECV_BUFFER) {
        debug!(%addr, error = %e, "SO_RCVBUF not raised");
    }
    if addr.is_ipv6() {
        socket.set_only_v6(false)?;
    }
    socket.bind(&addr.into())?;
    Ok(socket)
}

/// Whether the kernel knows UDP GSO (Linux 4.18 and later): setting the socket's default
/// segment size to 0 (none) is accepted exactly when it does.
fn knows_gso(socket: &Socket) -> bool {
    let zero: libc::c_int = 0;
    // SAFETY: a valid descriptor and an int option of the right size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_UDP,
            libc::UDP_SEGMENT,
            std::ptr::addr_of!(zero).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    rc == 0
}

/// The msghdr a multishot recvmsg is armed with: it only tells the kernel how much room the
/// source address gets in each buffer, and tells us how to parse a buffer. Boxed: its
/// address goes to the kernel.
struct RecvTemplate {
    msghdr: Box<libc::msghdr>,
}

impl RecvTemplate {
    fn new() -> Self {
        // SAFETY: msghdr is plain old data; all-zero is its empty value.
        let mut msghdr: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
        msghdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        RecvTemplate { msghdr }
    }

    /// The source address and payload of one received datagram, from its provided buffer.
    fn parse<'a>(&self, buffer: &'a [u8]) -> Result<(SocketAddr, &'a [u8]), Unreadable> {
        let out = types::RecvMsgOut::parse(buffer, &self.msghdr).map_err(|()| Unreadable)?;
        if out.is_name_data_truncated() || out.is_payload_truncated() {
            return Err(Unreadable);
        }
        let name = out.name_data();
        // SAFETY: sockaddr_storage is plain old data; we copy at most its size from `name`.
        let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let len = name
            .len()
            .min(std::mem::size_of::<libc::sockaddr_storage>());
        // SAFETY: both regions are valid for `len` bytes and do not overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(
                name.as_ptr(),
                std::ptr::addr_of_mut!(storage).cast::<u8>(),
                len,
            )
        };
        // SAFETY: the kernel wrote a sockaddr of `len` bytes.
        let addr = unsafe { SockAddr::new(storage, len as libc::socklen_t) };
        // The payload lies inside `buffer`; re-slice it there so it outlives the header.
        let payload = out.payload_data();
        let start = (payload.as_ptr() as usize)
            .checked_sub(buffer.as_ptr() as usize)
            .ok_or(Unreadable)?;
        let from = addr.as_socket().ok_or(Unreadable)?;
        let payload = buffer.get(start..start + payload.len()).ok_or(Unreadable)?;
        Ok((from, payload))
    }
}

/// A datagram larger than a receive buffer, or from an address that is not IP.
struct Unreadable;

struct UdpSocket<O> {
    socket: Socket,
    local: SocketAddr,
    owner: O,
    template: RecvTemplate,
    recv_armed: bool,
    closing: bool,
    sends_in_flight: u32,
}

/// One datagram or GSO run on its way out, in a reusable send slot. Boxed: the kernel
/// reads the header, the address, the control message and the payload in place until the
/// send completes.
struct Outgoing {
    addr: SockAddr,
    iov: libc::iovec,
    msghdr: libc::msghdr,
    /// Room for one `cmsghdr` with a `u16` (UDP_SEGMENT), aligned as cmsghdr is.
    cmsg: [u64; 4],
    /// The bytes the kernel reads, held until the send completes.
    payload: Vec<u8>,
    busy: bool,
    /// Sent with UDP_SEGMENT.
    gso: bool,
    socket: SlabRef,
}

/// A datagram for a socket's owner. The payload is borrowed from a receive buffer that goes
/// back to the kernel when `on_recv` returns: the owner parses it there (RTMFP decrypts into
/// its own buffer) or copies what it keeps.
pub(crate) struct Datagram<'a, O> {
    pub(crate) owner: O,
    pub(crate) socket: SlabRef,
    pub(crate) from: SocketAddr,
    pub(crate) payload: &'a [u8],
}

/// How a send ended, for the socket's owner.
pub(crate) struct Sent<O> {
    pub(crate) owner: O,
    pub(crate) socket: SlabRef,
    pub(crate) result: io::Result<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum UdpSendError {
    #[error("too many datagrams in flight")]
    Full,
    #[error("the socket is closed")]
    Closed,
}

/// A worker's UDP sockets and the send slots their datagrams go out in.
pub(crate) struct UdpSockets<O> {
    sockets: Slab<UdpSocket<O>>,
    /// Boxed: the kernel holds pointers into each slot, which growing the vector must not
    /// move.
    #[expect(clippy::vec_box, reason = "the kernel reads each slot in place")]
    sends: Vec<Box<Outgoing>>,
    free_sends: Vec<u32>,
    /// Buffers of completed sends, for the next runs (at most `MAX_SPARE_BUFFERS`).
    spare: Vec<Vec<u8>>,
    /// UDP GSO is used: the kernel knows it and has not refused a send with it.
    gso: bool,
    /// Bytes of the sends in the ring.
    bytes_in_flight: usize,
}

impl<O> Default for UdpSockets<O> {
    fn default() -> Self {
        UdpSockets {
            sockets: Slab::default(),
            sends: Vec::new(),
            free_sends: Vec::new(),
            spare: Vec::new(),
            gso: true,
            bytes_in_flight: 0,
        }
    }
}

impl<O: Copy> UdpSockets<O> {
    /// Binds `addr` (with SO_REUSEPORT: every worker binds the same address) and starts
    /// receiving; datagrams come back through `on_recv` for `owner`.
    pub(crate) fn open(&mut self, io: &mut Io, addr: SocketAddr, owner: O) -> io::Result<SlabRef> {
        let socket = bind(addr)?;
        if self.gso && !knows_gso(&socket) {
            debug!(%addr, "no UDP GSO in this kernel: one sendmsg per datagram");
            self.gso = false;
        }
        let local = socket
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not an IP address"))?;
        let r = self.sockets.insert(UdpSocket {
            socket,
            local,
            owner,
            template: RecvTemplate::new(),
            recv_armed: false,
            closing: false,
            sends_in_flight: 0,
        });
        self.arm_recv(io, r);
        Ok(r)
    }

    fn arm_recv(&mut self, io: &mut Io, r: SlabRef) {
        let Some(s) = self.sockets.get_mut(r) else {
            return;
        };
        if s.recv_armed || s.closing {
            return;
        }
        s.recv_armed = true;
        let e = opcode::RecvMsgMulti::new(
            types::Fd(s.socket.as_raw_fd()),
            &*s.template.msghdr,
            io.ingest.bgid,
        )
        .build()
        .user_data(Token::new(OpKind::UdpRecv, r.slot, r.generation).to_user_data());
        // SAFETY: the template is boxed in the socket's entry, which is freed only once the
        // receive has ended (`recv_armed` false); the kernel writes into `io`'s buffers.
        unsafe { io.push(e) };
    }

    /// Datagrams one `send_run` may carry: `MAX_SEGMENTS`, or 1 without GSO.
    pub(crate) fn max_segments(&self) -> usize {
        if self.gso {
            MAX_SEGMENTS
        } else {
            1
        }
    }

    /// Queues `buf[..len]` to `to`: datagrams of `segment` bytes, the last one possibly
    /// shorter (at most `max_segments()` of them, `MAX_RUN_BYTES` together), sent as one
    /// `sendmsg` with UDP_SEGMENT when there are several. The bytes go to the send slot
    /// without a copy: `buf` is swapped for a spare buffer, into which what followed `len`
    /// is moved (the caller's next datagram, already made). It reaches the kernel with the
    /// loop turn's other submissions (one `io_uring_enter` for all of them).
    pub(crate) fn send_run(
        &mut self,
        io: &mut Io,
        r: SlabRef,
        to: SocketAddr,
        buf: &mut Vec<u8>,
        len: usize,
        segment: usize,
    ) -> Result<(), UdpSendError> {
        let s = match self.sockets.get_mut(r) {
            Some(s) if !s.closing => s,
            _ => return Err(UdpSendError::Closed),
        };
        let index = match self.free_sends.pop() {
            Some(i) => i,
            None if self.sends.len() < MAX_SENDS_IN_FLIGHT => {
                self.sends.push(Outgoing::empty());
                (self.sends.len() - 1) as u32
            }
            None => return Err(UdpSendError::Full),
        };
        let Some(out) = self.sends.get_mut(index as usize) else {
            return Err(UdpSendError::Full);
        };
        let mut next = self.spare.pop().unwrap_or_default();
        next.extend_from_slice(buf.get(len..).unwrap_or_default());
        buf.truncate(len);
        let payload = std::mem::replace(buf, next);
        self.bytes_in_flight += payload.len();
        // Several segments only with GSO on; `segment` fits the kernel's u16.
        let gso = match u16::try_from(segment) {
            Ok(seg) if self.gso && seg > 0 && payload.len() > usize::from(seg) => Some(seg),
            _ => None,
        };
        out.load(r, to, payload, gso);
        s.sends_in_flight += 1;
        let e = opcode::SendMsg::new(types::Fd(s.socket.as_raw_fd()), &out.msghdr)
            .build()
            .user_data(Token::new(OpKind::UdpSend, index, 0).to_user_data());
        // SAFETY: the send slot is boxed and neither reused nor dropped until this send's
        // completion (`on_sent` frees it); the socket stays open while it has sends in
        // flight.
        unsafe { io.push(e) };
        Ok(())
    }

    /// Whether `sends` more sends of `bytes` together fit in the ring: a sender asks before
    /// it makes a datagram it could not send (RTMFP's are counted in flight once made, so
    /// one refused was a silent loss, and at a burst's tail one only a retransmission
    /// timeout repairs).
    pub(crate) fn has_room(&self, sends: usize, bytes: usize) -> bool {
        self.free_sends.len() + (MAX_SENDS_IN_FLIGHT - self.sends.len()) >= sends
            && self.bytes_in_flight + bytes <= MAX_BYTES_IN_FLIGHT
    }

    /// Handles a `UdpRecv` completion: each datagram goes to `deliver`, for the owner.
    pub(crate) fn on_recv(
        &mut self,
        io: &mut Io,
        token: Token,
        c: Completion,
        mut deliver: impl FnMut(Datagram<'_, O>),
    ) {
        let r = SlabRef::of(token);
        let bid = Io::buffer_id(c.flags);
        let Some(s) = self.sockets.get_mut(r) else {
            if let Some(bid) = bid {
                io.ingest.recycle(bid);
            }
            return;
        };
        let more = Io::more(c.flags);
        if !more {
            s.recv_armed = false;
        }
        if let Some(bid) = bid {
            if c.result > 0 && !s.closing {
                let buffer = io.ingest.buffer(bid, c.result as usize);
                match s.template.parse(buffer) {
                    Ok((from, payload)) => deliver(Datagram {
                        owner: s.owner,
                        socket: r,
                        from,
                        payload,
                    }),
                    Err(Unreadable) => debug!(
                        local = %s.local,
                        "datagram larger than a receive buffer, or not from IP; dropped"
                    ),
                }
            }
            io.ingest.recycle(bid);
        } else if c.result < 0 && !matches!(-c.result, libc::ENOBUFS | libc::ECANCELED) {
            // ENOBUFS: every buffer was in use; armed again below, after this turn returns
            // them. ECANCELED: closing.
            let e = io::Error::from_raw_os_error(-c.result);
            warn!(local = %s.local, error = %e, "UDP receive failed; receiving again");
        }
        if !more {
            self.arm_recv(io, r);
            self.maybe_free(r);
        }
    }

    /// Handles a `UdpSend` completion: frees its send slot and says how it went.
    pub(crate) fn on_sent(&mut self, token: Token, c: Completion) -> Option<Sent<O>> {
        let out = self.sends.get_mut(token.slot as usize)?;
        if !std::mem::replace(&mut out.busy, false) {
            return None;
        }
        // The kernel no longer reads the bytes: the buffer is kept for a next run, or freed.
        let mut payload = std::mem::take(&mut out.payload);
        self.bytes_in_flight = self.bytes_in_flight.saturating_sub(payload.len());
        if self.spare.len() < MAX_SPARE_BUFFERS {
            payload.clear();
            self.spare.push(payload);
        }
        let r = out.socket;
        self.free_sends.push(token.slot);
        if out.gso && matches!(-c.result, libc::EIO | libc::EINVAL) && self.gso {
            // EIO: the device cannot checksum segments; EINVAL: a segment size or count
            // this kernel does not take. Both mean no GSO here, for good.
            warn!(error = %io::Error::from_raw_os_error(-c.result),
                "UDP GSO refused by the kernel; sending one sendmsg per datagram from now on");
            self.gso = false;
        }
        let s = self.sockets.get_mut(r)?;
        s.sends_in_flight = s.sends_in_flight.saturating_sub(1);
        let sent = Sent {
            owner: s.owner,
            socket: r,
            result: usize::try_from(c.result)
                .map_err(|_| io::Error::from_raw_os_error(c.result.saturating_neg())),
        };
        self.maybe_free(r);
        Some(sent)
    }

    /// Stops receiving and closes the socket once the ring holds nothing of it.
    pub(crate) fn close(&mut self, io: &mut Io, r: SlabRef) {
        let Some(s) = self.sockets.get_mut(r) else {
            return;
        };
        s.closing = true;
        if s.recv_armed {
            let target = Token::new(OpKind::UdpRecv, r.slot, r.generation).to_user_data();
            let e = opcode::AsyncCancel::new(target)
                .build()
                .user_data(Token::new(OpKind::Cancel, 0, 0).to_user_data());
            // SAFETY: no buffers.
            unsafe { io.push(e) };
        }
        self.maybe_free(r);
    }

    /// Closes every socket (shutdown).
    pub(crate) fn close_all(&mut self, io: &mut Io) {
        for r in self.sockets.refs() {
            self.close(io, r);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.sockets.is_empty()
    }

    /// The address a socket is bound to (its port, when bound to port 0).
    pub(crate) fn local_addr(&self, r: SlabRef) -> Option<SocketAddr> {
        self.sockets.get(r).map(|s| s.local)
    }

    #[cfg(test)]
    pub(crate) fn sends_in_flight(&self) -> usize {
        self.sends.len() - self.free_sends.len()
    }

    fn maybe_free(&mut self, r: SlabRef) {
        if self
            .sockets
            .get(r)
            .is_some_and(|s| s.closing && !s.recv_armed && s.sends_in_flight == 0)
        {
            // Dropping the socket closes it: no operation of the ring refers to it.
            self.sockets.remove(r);
        }
    }
}

impl Outgoing {
    fn empty() -> Box<Outgoing> {
        let mut out = Box::new(Outgoing {
            addr: SockAddr::from(SocketAddr::from(([0, 0, 0, 0], 0))),
            iov: libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            },
            // SAFETY: msghdr is plain old data; all-zero is its empty value.
            msghdr: unsafe { std::mem::zeroed() },
            cmsg: [0; 4],
            payload: Vec::new(),
            busy: false,
            gso: false,
            socket: SlabRef {
                slot: 0,
                generation: 0,
            },
        });
        // The box does not move: these pointers hold for every use of the slot.
        out.msghdr.msg_name = out.addr.as_ptr() as *mut libc::c_void;
        out.msghdr.msg_iov = std::ptr::addr_of_mut!(out.iov);
        out.msghdr.msg_iovlen = 1;
        out
    }

    fn load(&mut self, socket: SlabRef, to: SocketAddr, payload: Vec<u8>, gso: Option<u16>) {
        self.addr = SockAddr::from(to);
        self.msghdr.msg_name = self.addr.as_ptr() as *mut libc::c_void;
        self.msghdr.msg_namelen = self.addr.len();
        self.iov.iov_base = payload.as_ptr() as *mut libc::c_void;
        self.iov.iov_len = payload.len();
        // Moving the Vec keeps its heap bytes where they are: the iovec stays valid.
        self.payload = payload;
        self.busy = true;
        self.socket = socket;
        self.gso = gso.is_some();
        match gso {
            Some(segment) => {
                // SAFETY: cmsg has room for one cmsghdr and a u16 (CMSG_SPACE(2) is 24
                // bytes on 64-bit Linux, it holds 32), aligned as u64; the box does not move.
                unsafe {
                    let space = libc::CMSG_SPACE(std::mem::size_of::<u16>() as u32) as usize;
                    self.msghdr.msg_control = self.cmsg.as_mut_ptr().cast();
                    self.msghdr.msg_controllen = space as _;
                    let c = libc::CMSG_FIRSTHDR(&self.msghdr);
                    (*c).cmsg_level = libc::SOL_UDP;
                    (*c).cmsg_type = libc::UDP_SEGMENT;
                    (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<u16>() as u32) as _;
                    std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), segment);
                }
            }
            None => {
                self.msghdr.msg_control = std::ptr::null_mut();
                self.msghdr.msg_controllen = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// One loop turn as the worker runs it: wait, reap, dispatch each completion by its
    /// token, hand the receive buffers back.
    fn turn(
        io: &mut Io,
        udp: &mut UdpSockets<u32>,
        got: &mut Vec<(u32, SocketAddr, Vec<u8>)>,
        sent: &mut Vec<(u32, usize)>,
    ) {
        let mut completions = Vec::new();
        io.submit_and_wait(Some(Duration::from_millis(50)))
            .expect("wait");
        io.drain(&mut completions);
        for c in completions {
            let token = Token::from_user_data(c.user_data).expect("a token");
            match token.kind {
                OpKind::UdpRecv => udp.on_recv(io, token, c, |d| {
                    got.push((d.owner, d.from, d.payload.to_vec()));
                }),
                OpKind::UdpSend => {
                    let s = udp.on_sent(token, c).expect("a send in flight");
                    sent.push((s.owner, s.result.expect("sent")));
                }
                OpKind::Cancel => {}
                other => panic!("unexpected completion {other:?}"),
            }
        }
        io.ingest.publish();
    }

    #[test]
    fn a_socket_in_the_loop_receives_datagrams_and_echoes_them() {
        let mut io = Io::new().expect("io_uring is required for the engine");
        let mut udp = UdpSockets::default();
        let r = udp
            .open(&mut io, "127.0.0.1:0".parse().expect("addr"), 5)
            .expect("open");
        let local = udp.sockets.get(r).map(|s| s.local).expect("local");

        let peer = std::net::UdpSocket::bind("127.0.0.1:0").expect("peer");
        peer.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let peer_addr = peer.local_addr().expect("peer addr");
        for i in 0..3u8 {
            peer.send_to(&[b'h', b'i', i], local).expect("send");
        }
        let (mut got, mut sent) = (Vec::new(), Vec::new());
        let deadline = Instant::now() + Duration::from_secs(5);
        while got.len() < 3 && Instant::now() < deadline {
            turn(&mut io, &mut udp, &mut got, &mut sent);
        }
        assert_eq!(
            got,
            (0..3u8)
                .map(|i| (5, peer_addr, vec![b'h', b'i', i]))
                .collect::<Vec<_>>()
        );

        for (_, from, data) in &got {
            let mut reply = b"echo ".to_vec();
            reply.extend_from_slice(data);
            let len = reply.len();
            udp.send_run(&mut io, r, *from, &mut reply, len, len)
                .expect("queued");
        }
        while sent.len() < 3 && Instant::now() < deadline {
            turn(&mut io, &mut udp, &mut got, &mut sent);
        }
        assert_eq!(sent, vec![(5, 8); 3]);
        for i in 0..3u8 {
            let mut buf = [0u8; 16];
            let (n, from) = peer.recv_from(&mut buf).expect("reply");
            assert_eq!(
                (&buf[..n], from),
                (&[b'e', b'c', b'h', b'o', b' ', b'h', b'i', i][..], local)
            );
        }
        // Send slots are reused, not allocated per datagram.
        assert_eq!(udp.sends.len(), 3);
        assert_eq!(udp.free_sends.len(), 3);

        udp.close(&mut io, r);
        while !udp.is_empty() && Instant::now() < deadline {
            turn(&mut io, &mut udp, &mut got, &mut sent);
        }
        assert!(udp.is_empty(), "the socket is freed once its receive ends");
        let mut late = b"late".to_vec();
        assert_eq!(
            udp.send_run(&mut io, r, peer_addr, &mut late, 4, 4),
            Err(UdpSendError::Closed)
        );
    }

    #[test]
    fn a_run_of_datagrams_goes_out_in_one_send_and_arrives_as_datagrams() {
        let mut io = Io::new().expect("io_uring is required for the engine");
        let mut udp = UdpSockets::default();
        let r = udp
            .open(&mut io, "127.0.0.1:0".parse().expect("addr"), 5)
            .expect("open");
        assert!(
            udp.max_segments() > 1,
            "this kernel has UDP GSO (Linux 4.18 and later)"
        );
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").expect("peer");
        peer.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let to = peer.local_addr().expect("peer addr");

        // Three datagrams of 100 bytes, a shorter last one, and after them the first
        // datagram of the next run, which stays in the buffer.
        let mut buf = Vec::new();
        for i in 0..3u8 {
            buf.extend_from_slice(&[i; 100]);
        }
        buf.extend_from_slice(&[3; 40]);
        buf.extend_from_slice(b"next");
        udp.send_run(&mut io, r, to, &mut buf, 340, 100)
            .expect("queued");
        assert_eq!(buf, b"next", "what followed the run stays for the caller");
        let (mut got, mut sent) = (Vec::new(), Vec::new());
        let deadline = Instant::now() + Duration::from_secs(5);
        while sent.is_empty() && Instant::now() < deadline {
            turn(&mut io, &mut udp, &mut got, &mut sent);
        }
        assert_eq!(sent, vec![(5, 340)], "one send for the run");
        for (i, len) in [(0u8, 100), (1, 100), (2, 100), (3, 40)] {
            let mut b = [0u8; 200];
            let (n, _) = peer.recv_from(&mut b).expect("a datagram");
            assert_eq!(&b[..n], &vec![i; len][..], "datagram {i}");
        }
        assert!(udp.max_segments() > 1, "the kernel took it: GSO stays on");
        // The run's buffer is kept for the next one.
        assert_eq!(udp.spare.len(), 1);
    }
}
