//! Outbound TCP connects, a verb of the engine like accept: a socket, an io_uring
//! `Connect` linked to a `LinkTimeout`, and the outcome handed back to the owner
//! that asked, with its error named. The connected socket is then the owner's to drive with
//! the same receive and send operations as an accepted one (relays hand it to the worker as
//! a connection in the client role).
//!
//! The socket is a blocking one, like accepted sockets: the ring tries every operation
//! without blocking first and then polls, so the worker never blocks. Were the socket
//! non-blocking, a connect the kernel hands to its worker threads (io-wq) would end with
//! EINPROGRESS instead of its outcome.
//!
//! The timeout is the kernel's (a linked timeout cancels the connect) rather than a worker
//! timer: nothing to disarm when the connect wins, and no timer entry per attempt.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::Duration;

use io_uring::{opcode, squeue, types};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::io::{Completion, Io};
use super::slab::{Slab, SlabRef};
use super::token::{OpKind, Token};

/// Why a connect failed, by name; what the owner logs and acts on (a relay retries the next
/// origin on `Refused` or `TimedOut`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ConnectError {
    #[error("connection refused")]
    Refused,
    #[error("timed out")]
    TimedOut,
    #[error("network unreachable")]
    NetworkUnreachable,
    #[error("host unreachable")]
    HostUnreachable,
    #[error("connection reset")]
    Reset,
    #[error("not permitted (a firewall rule?)")]
    NotPermitted,
    #[error("no local address or port available")]
    AddressUnavailable,
    /// The owner cancelled it (or the worker is shutting down).
    #[error("cancelled")]
    Cancelled,
    #[error("{}", io::Error::from_raw_os_error(*.0))]
    Other(i32),
}

impl ConnectError {
    /// Names a connect's errno. `cancelled` says whether the owner cancelled it: otherwise
    /// ECANCELED means the linked timeout fired.
    fn from_errno(errno: i32, cancelled: bool) -> Self {
        match errno {
            libc::ECONNREFUSED => ConnectError::Refused,
            libc::ECANCELED if cancelled => ConnectError::Cancelled,
            // ETIMEDOUT: the kernel gave up on SYN retransmissions before our timeout did.
            libc::ECANCELED | libc::ETIMEDOUT | libc::ETIME => ConnectError::TimedOut,
            libc::ENETUNREACH => ConnectError::NetworkUnreachable,
            libc::EHOSTUNREACH | libc::EHOSTDOWN => ConnectError::HostUnreachable,
            libc::ECONNRESET | libc::ECONNABORTED => ConnectError::Reset,
            libc::EACCES | libc::EPERM => ConnectError::NotPermitted,
            libc::EADDRNOTAVAIL | libc::EADDRINUSE => ConnectError::AddressUnavailable,
            _ => {
                // A fresh, unconnected socket of ours and a valid address: these would be
                // bugs in this file, not conditions of the network.
                debug_assert!(
                    !matches!(
                        errno,
                        libc::EBADF
                            | libc::ENOTSOCK
                            | libc::EFAULT
                            | libc::EISCONN
                            | libc::EALREADY
                            | libc::EINPROGRESS
                    ),
                    "connect failed with an impossible errno {errno}"
                );
                ConnectError::Other(errno)
            }
        }
    }
}

/// A connect in flight. Boxed so the address and timespec the kernel reads stay put: both
/// are read when the entries are submitted, which a full submission queue may delay.
struct Pending<O> {
    socket: Socket,
    to: SocketAddr,
    addr: SockAddr,
    timeout: types::Timespec,
    owner: O,
    cancelled: bool,
}

/// How a connect ended, for its owner. On success the socket is connected and the owner's.
pub(crate) struct Connected<O> {
    pub(crate) owner: O,
    pub(crate) to: SocketAddr,
    pub(crate) result: Result<Socket, ConnectError>,
}

/// A worker's connects in flight, by the slot their token names.
pub(crate) struct Connects<O> {
    pending: Slab<Box<Pending<O>>>,
}

impl<O> Default for Connects<O> {
    fn default() -> Self {
        Connects {
            pending: Slab::default(),
        }
    }
}

impl<O: Copy> Connects<O> {
    /// Starts connecting to `to`; the outcome comes back through `complete` within about
    /// `timeout`. Fails at once only if no socket can be made (descriptor limits).
    pub(crate) fn start(
        &mut self,
        io: &mut Io,
        to: SocketAddr,
        timeout: Duration,
        owner: O,
    ) -> io::Result<SlabRef> {
        let socket = Socket::new(
            Domain::for_address(to),
            Type::STREAM.cloexec(),
            Some(Protocol::TCP),
        )?;
        let pending = Box::new(Pending {
            socket,
            to,
            addr: SockAddr::from(to),
            timeout: types::Timespec::from(timeout),
            owner,
            cancelled: false,
        });
        let fd = types::Fd(pending.socket.as_raw_fd());
        let addr = pending.addr.as_ptr();
        let addr_len = pending.addr.len();
        let timespec: *const types::Timespec = &pending.timeout;
        let r = self.pending.insert(pending);
        let connect = opcode::Connect::new(fd, addr, addr_len)
            .build()
            .flags(squeue::Flags::IO_LINK)
            .user_data(Token::new(OpKind::Connect, r.slot, r.generation).to_user_data());
        let timeout = opcode::LinkTimeout::new(timespec)
            .build()
            .user_data(Token::new(OpKind::Cancel, 0, 0).to_user_data());
        // SAFETY: the address and timespec live in the boxed entry, which stays in
        // `pending` until the connect's completion arrives. The kernel reads both when the
        // chain is submitted, which is before the connect can complete.
        unsafe { io.push_linked([connect, timeout]) };
        Ok(r)
    }

    /// Cancels a connect in flight; its completion still comes, as `Cancelled` (or as what
    /// it had already become).
    pub(crate) fn cancel(&mut self, io: &mut Io, r: SlabRef) {
        let Some(p) = self.pending.get_mut(r) else {
            return;
        };
        p.cancelled = true;
        let target = Token::new(OpKind::Connect, r.slot, r.generation).to_user_data();
        let e = opcode::AsyncCancel::new(target)
            .build()
            .user_data(Token::new(OpKind::Cancel, 0, 0).to_user_data());
        // SAFETY: no buffers.
        unsafe { io.push(e) };
    }

    /// Cancels every connect in flight (shutdown).
    pub(crate) fn cancel_all(&mut self, io: &mut Io) {
        for r in self.pending.refs() {
            self.cancel(io, r);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The outcome of the connect a `Connect` completion belongs to; `None` for a stale
    /// token.
    pub(crate) fn complete(&mut self, token: Token, c: Completion) -> Option<Connected<O>> {
        let p = self.pending.remove(SlabRef::of(token))?;
        let result = if c.result >= 0 {
            Ok(p.socket)
        } else {
            // Dropping the socket closes it: the ring holds nothing of it any more.
            Err(ConnectError::from_errno(-c.result, p.cancelled))
        };
        Some(Connected {
            owner: p.owner,
            to: p.to,
            result,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::os::fd::RawFd;
    use std::time::Instant;

    /// Waits on the ring until the connect completes, as the worker's loop would: reap,
    /// then hand each completion to the handler its token names.
    fn wait_connected(
        io: &mut Io,
        connects: &mut Connects<u32>,
        limit: Duration,
    ) -> Connected<u32> {
        let deadline = Instant::now() + limit;
        let mut completions = Vec::new();
        while Instant::now() < deadline {
            io.submit_and_wait(Some(Duration::from_millis(50)))
                .expect("wait");
            io.drain(&mut completions);
            for c in completions.drain(..) {
                let token = Token::from_user_data(c.user_data).expect("a token");
                match token.kind {
                    OpKind::Connect => {
                        return connects.complete(token, c).expect("a pending connect");
                    }
                    OpKind::Cancel => {}
                    other => panic!("unexpected completion {other:?}"),
                }
            }
        }
        panic!("the connect did not complete within {limit:?}");
    }

    /// Receives once on `fd` through the ring, with the provided buffers the worker's
    /// connections use.
    fn recv_through_ring(io: &mut Io, fd: RawFd) -> Vec<u8> {
        let e = opcode::RecvMulti::new(types::Fd(fd), io.bufs.bgid)
            .build()
            .user_data(Token::new(OpKind::Recv, 0, 0).to_user_data());
        // SAFETY: the kernel writes into provided buffers owned by `io`.
        unsafe { io.push(e) };
        let c = first_completion(io, "receive");
        assert!(c.result > 0, "receive failed: {}", c.result);
        let bid = Io::buffer_id(c.flags).expect("a provided buffer");
        let data = io.bufs.buffer(bid, c.result as usize).to_vec();
        io.bufs.recycle(bid);
        io.bufs.publish();
        data
    }

    /// Waits (up to 5 s) for the one operation pushed on `io` to complete.
    fn first_completion(io: &mut Io, what: &str) -> Completion {
        let mut completions = Vec::new();
        for _ in 0..100 {
            io.submit_and_wait(Some(Duration::from_millis(50)))
                .expect("wait");
            io.drain(&mut completions);
            if !completions.is_empty() {
                return completions.swap_remove(0);
            }
        }
        panic!("the {what} did not complete");
    }

    /// Sends `data` on `fd` with the ring's `sendmsg`, as a connection's send queue does.
    fn send_through_ring(io: &mut Io, fd: RawFd, data: &[u8]) {
        let mut iov = libc::iovec {
            iov_base: data.as_ptr() as *mut libc::c_void,
            iov_len: data.len(),
        };
        // SAFETY: msghdr is plain old data; all-zero is its empty value.
        let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
        hdr.msg_iov = &mut iov;
        hdr.msg_iovlen = 1;
        let e = opcode::SendMsg::new(types::Fd(fd), &hdr)
            .build()
            .user_data(Token::new(OpKind::Send, 0, 0).to_user_data());
        // SAFETY: `hdr`, `iov` and `data` outlive the send: this waits for its completion.
        unsafe { io.push(e) };
        let c = first_completion(io, "send");
        assert_eq!(c.result, data.len() as i32, "send failed or short");
    }

    /// A loopback listener that answers no new connection: its accept queue (backlog 0
    /// holds one) is full of connections nobody accepts, so the kernel drops further SYNs
    /// and a connect waits for a retransmission a second away. Nothing leaves the machine.
    /// The listener and the connections filling it live as long as the first value.
    pub(crate) fn unanswered_listener() -> ((Socket, Vec<Socket>), SocketAddr) {
        let listener =
            Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
        listener
            .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .expect("bind");
        listener.listen(0).expect("listen");
        let to = listener
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .expect("addr");
        let mut fillers = Vec::new();
        for _ in 0..2 {
            let s = Socket::new(
                Domain::IPV4,
                Type::STREAM.nonblocking(),
                Some(Protocol::TCP),
            )
            .expect("socket");
            // In progress or done: either way it takes the queue's place.
            let _ = s.connect(&to.into());
            fillers.push(s);
        }
        // Let the handshakes finish, so the queue is full before the connect under test.
        std::thread::sleep(Duration::from_millis(100));
        ((listener, fillers), to)
    }

    #[test]
    fn connects_to_a_listener_and_data_flows_both_ways() {
        let mut io = Io::new().expect("io_uring is required for the engine");
        let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
        let to = listener.local_addr().expect("addr");
        let mut connects = Connects::default();
        connects
            .start(&mut io, to, Duration::from_secs(5), 42)
            .expect("start");

        let done = wait_connected(&mut io, &mut connects, Duration::from_secs(5));
        assert_eq!((done.owner, done.to), (42, to));
        let socket = done.result.expect("connected");
        assert!(connects.is_empty());
        let (mut accepted, from) = listener.accept().expect("accept");
        assert_eq!(
            from,
            socket
                .local_addr()
                .expect("local")
                .as_socket()
                .expect("inet")
        );

        accepted.write_all(b"hello from the origin").expect("write");
        assert_eq!(
            recv_through_ring(&mut io, socket.as_raw_fd()),
            b"hello from the origin"
        );
        send_through_ring(&mut io, socket.as_raw_fd(), b"and back");
        let mut buf = [0u8; 8];
        accepted.read_exact(&mut buf).expect("read");
        assert_eq!(&buf, b"and back");
    }

    #[test]
    fn connecting_to_a_closed_port_is_refused() {
        let mut io = Io::new().expect("io_uring is required for the engine");
        // A port that was just free: bound, then closed.
        let to = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        let mut connects = Connects::default();
        connects
            .start(&mut io, to, Duration::from_secs(5), 1)
            .expect("start");
        let done = wait_connected(&mut io, &mut connects, Duration::from_secs(5));
        assert_eq!(done.result.err(), Some(ConnectError::Refused));
        assert_eq!(ConnectError::Refused.to_string(), "connection refused");
    }

    #[test]
    fn a_connect_nobody_answers_times_out_within_its_timeout() {
        let mut io = Io::new().expect("io_uring is required for the engine");
        let (_listener, to) = unanswered_listener();

        let timeout = Duration::from_millis(300);
        let mut connects = Connects::default();
        let started = Instant::now();
        connects.start(&mut io, to, timeout, 7).expect("start");
        let done = wait_connected(&mut io, &mut connects, Duration::from_secs(5));
        let took = started.elapsed();
        assert_eq!(done.result.err(), Some(ConnectError::TimedOut));
        assert!(
            took >= timeout && took < timeout + Duration::from_millis(500),
            "timed out after {took:?}, asked for {timeout:?}"
        );
    }

    #[test]
    fn a_cancelled_connect_says_so() {
        let mut io = Io::new().expect("io_uring is required for the engine");
        let (_listener, to) = unanswered_listener();

        let mut connects = Connects::default();
        let r = connects
            .start(&mut io, to, Duration::from_secs(10), 3)
            .expect("start");
        io.submit_and_wait(Some(Duration::from_millis(10)))
            .expect("submit");
        connects.cancel(&mut io, r);
        let done = wait_connected(&mut io, &mut connects, Duration::from_secs(2));
        assert_eq!(done.result.err(), Some(ConnectError::Cancelled));
    }

    #[test]
    fn a_connect_behind_a_full_submission_queue_keeps_its_timeout() {
        let mut io = Io::new().expect("io_uring is required for the engine");
        // Leave one free entry in the submission queue: room for the connect but not its
        // timeout. Pushed one at a time they would be submitted apart and the timeout would
        // not apply; pushed as a chain both wait in the backlog and go in together.
        for _ in 0..io.submission_capacity() - 1 {
            let nop = opcode::Nop::new()
                .build()
                .user_data(Token::new(OpKind::Cancel, 0, 0).to_user_data());
            // SAFETY: no buffers.
            unsafe { io.push(nop) };
        }
        let (_listener, to) = unanswered_listener();
        let timeout = Duration::from_millis(200);
        let mut connects = Connects::default();
        let started = Instant::now();
        connects.start(&mut io, to, timeout, 9).expect("start");
        let done = wait_connected(&mut io, &mut connects, Duration::from_secs(5));
        assert_eq!(done.result.err(), Some(ConnectError::TimedOut));
        assert!(started.elapsed() < timeout + Duration::from_millis(500));
    }

    #[test]
    fn errors_are_named_by_errno() {
        let named = |errno| ConnectError::from_errno(errno, false);
        assert_eq!(named(libc::ECONNREFUSED), ConnectError::Refused);
        assert_eq!(named(libc::ECANCELED), ConnectError::TimedOut);
        assert_eq!(named(libc::ETIMEDOUT), ConnectError::TimedOut);
        assert_eq!(named(libc::ENETUNREACH), ConnectError::NetworkUnreachable);
        assert_eq!(named(libc::EHOSTUNREACH), ConnectError::HostUnreachable);
        assert_eq!(
            ConnectError::from_errno(libc::ECANCELED, true),
            ConnectError::Cancelled
        );
        assert_eq!(
            named(libc::ENOMEM).to_string(),
            io::Error::from_raw_os_error(libc::ENOMEM).to_string()
        );
    }
}
