//! UDP on the worker's ring, for RTMFP and multicast output: a socket per worker (with
//! SO_REUSEPORT, so the kernel spreads peers over workers), multishot `recvmsg` into the
//! shared provided buffers, and `sendmsg` of refcounted payloads.

use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;

use bytes::Bytes;
use io_uring::{opcode, types};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::io::Io;

pub fn bind(addr: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::DGRAM.cloexec(),
        Some(Protocol::UDP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    Ok(socket)
}

/// The msghdr a multishot recvmsg is armed with: it only tells the kernel how much room the
/// source address gets in each buffer. Boxed: the kernel reads it at every completion.
pub struct RecvTemplate {
    msghdr: Box<libc::msghdr>,
}

impl Default for RecvTemplate {
    fn default() -> Self {
        // SAFETY: msghdr is plain old data; all-zero is its empty value.
        let mut msghdr: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
        msghdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        RecvTemplate { msghdr }
    }
}

/// Arms a multishot receive on `fd`; each datagram completes with a provided buffer.
///
/// # Safety
/// `template` must outlive the receive (until a completion without the "more" flag).
pub unsafe fn arm_recv(io: &mut Io, fd: RawFd, template: &RecvTemplate, user_data: u64) {
    let e = opcode::RecvMsgMulti::new(types::Fd(fd), &*template.msghdr, io.bufs.bgid)
        .build()
        .user_data(user_data);
    // SAFETY: forwarded to the caller; the buffers are the ring's own.
    unsafe { io.push(e) };
}

/// The source address and payload of one received datagram, from its provided buffer.
pub fn parse<'a>(buffer: &'a [u8], template: &RecvTemplate) -> Option<(SocketAddr, &'a [u8])> {
    let out = types::RecvMsgOut::parse(buffer, &template.msghdr).ok()?;
    if out.is_name_data_truncated() || out.is_payload_truncated() {
        return None;
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
    // The payload lies inside `buffer`; re-slice it there so it outlives the parsed header.
    let payload = out.payload_data();
    let start = (payload.as_ptr() as usize).checked_sub(buffer.as_ptr() as usize)?;
    Some((addr.as_socket()?, buffer.get(start..start + payload.len())?))
}

/// One datagram on its way out. Boxed by the caller and kept until the send completes:
/// the kernel reads the header, the address and the payload in place.
pub struct Outgoing {
    addr: SockAddr,
    iov: libc::iovec,
    msghdr: libc::msghdr,
    payload: Bytes,
}

impl Outgoing {
    pub fn new(to: SocketAddr, payload: Bytes) -> Box<Outgoing> {
        // SAFETY: msghdr is plain old data; all-zero is its empty value.
        let msghdr: libc::msghdr = unsafe { std::mem::zeroed() };
        let iov = libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        };
        let mut out = Box::new(Outgoing {
            addr: SockAddr::from(to),
            iov,
            msghdr,
            payload,
        });
        out.iov.iov_base = out.payload.as_ptr() as *mut libc::c_void;
        out.iov.iov_len = out.payload.len();
        out.msghdr.msg_name = out.addr.as_ptr() as *mut libc::c_void;
        out.msghdr.msg_namelen = out.addr.len();
        out.msghdr.msg_iov = std::ptr::addr_of_mut!(out.iov);
        out.msghdr.msg_iovlen = 1;
        out
    }
}

/// Sends one datagram.
///
/// # Safety
/// `datagram` must not be dropped or moved out of its box until the send completes.
pub unsafe fn send(io: &mut Io, fd: RawFd, datagram: &Outgoing, user_data: u64) {
    let e = opcode::SendMsg::new(types::Fd(fd), &datagram.msghdr)
        .build()
        .user_data(user_data);
    // SAFETY: forwarded to the caller.
    unsafe { io.push(e) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    use crate::engine::io::Completion;

    #[test]
    fn receives_and_sends_datagrams_through_the_ring() {
        let mut io = Io::new().expect("io_uring is required for the engine");
        let socket = bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let local = socket
            .local_addr()
            .expect("local")
            .as_socket()
            .expect("inet");
        let template = RecvTemplate::default();
        // SAFETY: `template` lives until the end of the test, after the ring is done.
        unsafe { arm_recv(&mut io, socket.as_raw_fd(), &template, 1) };

        let peer = std::net::UdpSocket::bind("127.0.0.1:0").expect("peer");
        peer.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        for i in 0..3u8 {
            peer.send_to(&[b'h', b'i', i], local).expect("send");
        }
        let mut got = Vec::new();
        let mut completions: Vec<Completion> = Vec::new();
        for _ in 0..50 {
            io.submit_and_wait(Some(Duration::from_millis(100)))
                .expect("wait");
            io.drain(&mut completions);
            for c in completions.drain(..) {
                assert_eq!(c.user_data, 1);
                assert!(c.result >= 0, "recvmsg failed: {}", c.result);
                let bid = Io::buffer_id(c.flags).expect("a provided buffer");
                let (from, data) =
                    parse(io.bufs.buffer(bid, c.result as usize), &template).expect("datagram");
                assert_eq!(from, peer.local_addr().expect("peer addr"));
                got.push(data.to_vec());
                io.bufs.recycle(bid);
            }
            io.bufs.publish();
            if got.len() == 3 {
                break;
            }
        }
        assert_eq!(
            got,
            vec![b"hi\0".to_vec(), b"hi\x01".to_vec(), b"hi\x02".to_vec()]
        );

        let reply = Outgoing::new(
            peer.local_addr().expect("peer addr"),
            Bytes::from_static(b"pong"),
        );
        // SAFETY: `reply` is kept until its completion below.
        unsafe { send(&mut io, socket.as_raw_fd(), &reply, 2) };
        io.submit_and_wait(Some(Duration::from_secs(1)))
            .expect("wait");
        let mut buf = [0u8; 16];
        let (n, from) = peer.recv_from(&mut buf).expect("reply");
        assert_eq!((&buf[..n], from), (&b"pong"[..], local));
        drop(reply);
    }
}
