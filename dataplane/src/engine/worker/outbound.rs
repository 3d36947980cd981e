//! The worker's outbound verbs: TCP connections it opens and UDP sockets it binds, and the
//! routing of their completions to the owner that asked. The ring work is in
//! `engine::connect` and `engine::udp`; this file only joins them to the loop:
//! `on_completion` hands `Connect`, `UdpRecv` and `UdpSend` completions here, and shutdown
//! cancels connects in flight and closes the sockets.
//!
//! Relay pulls (`Owner::Pull`, `upstream.rs`) and pushes (`Owner::Push`, `push.rs`) open
//! connections; RTMFP sessions will be the
//! first to take datagrams. Each owner has its `Owner` variant and its arm in the routing
//! below; an outcome for an owner that takes none is logged and let go.

use std::io;
use std::net::SocketAddr;
use std::os::fd::IntoRawFd;
use std::time::Duration;

use socket2::Socket;
use tracing::debug;

use super::Worker;
use crate::engine::conn::{ConnRef, LinkConn};
use crate::engine::connect::Connected;
use crate::engine::io::Completion;
use crate::engine::owner::Owner;
use crate::engine::slab::SlabRef;
use crate::engine::token::Token;
use crate::proto::rtmp::handshake::HandshakeKind;
use crate::proto::rtmp::session::Session;

impl Worker {
    /// Starts a TCP connect to `to` for `owner`, failing after `timeout`; the outcome goes
    /// to the owner from `on_connect`.
    pub(crate) fn connect(
        &mut self,
        to: SocketAddr,
        timeout: Duration,
        owner: Owner,
    ) -> io::Result<SlabRef> {
        self.connects.start(&mut self.io, to, timeout, owner)
    }

    pub(super) fn on_connect(&mut self, token: Token, c: Completion) {
        if let Some(done) = self.connects.complete(token, c) {
            self.connected(done);
        }
    }

    /// Hands a connect's outcome to its owner. A relay pull or push takes the socket and
    /// makes it a connection in the client role (`adopt_outbound`). Any other owner takes
    /// none, so the socket is closed.
    fn connected(&mut self, done: Connected<Owner>) {
        match done.owner {
            Owner::Pull { pull, group } => {
                return self.pull_connected(pull, group, done.to, done.result)
            }
            Owner::Push(push) => return self.push_connected(push, done.to, done.result),
            Owner::Registration(r) => return self.registration_connected(r, done.to, done.result),
            Owner::ScriptNc(n) => return self.script_nc_connected(n, done.to, done.result),
            _ => {}
        }
        match done.result {
            Ok(socket) => {
                debug!(worker = self.id, owner = ?done.owner, to = %done.to,
                    "connected, but no owner takes outbound connections yet; closing");
                drop(socket);
            }
            Err(e) => {
                debug!(worker = self.id, owner = ?done.owner, to = %done.to, error = %e,
                    "outbound connect failed");
            }
        }
    }

    /// A socket we connected becomes a connection whose session is in the client role,
    /// its events going to `link`: its receive and sends are armed exactly as for an
    /// accepted one (the ring does not care who opened a socket).
    pub(super) fn adopt_outbound(&mut self, socket: Socket, link: LinkConn) -> ConnRef {
        let session_config = self.session_config();
        let r = self.adopt(socket.into_raw_fd(), true);
        let epoch = self.started.elapsed().as_millis() as u32;
        if let Some(c) = self.conns.get_mut(r) {
            c.session = Session::client(
                session_config,
                HandshakeKind::Digest,
                &mut self.rng,
                epoch,
                &mut c.out,
            );
            // No connect preamble: a client's first message is connect itself.
            c.preamble_sent = true;
            c.upstream = Some(Box::new(link));
        }
        r
    }

    /// Binds a UDP socket on `addr` for `owner` (every worker binds the same address:
    /// SO_REUSEPORT spreads peers over them) and starts receiving.
    pub(crate) fn open_udp(&mut self, addr: SocketAddr, owner: Owner) -> io::Result<SlabRef> {
        self.udp.open(&mut self.io, addr, owner)
    }

    /// Routes each received datagram to its socket's owner.
    pub(super) fn on_udp_recv(&mut self, token: Token, c: Completion) {
        let id = self.id;
        let now = self.clock_ms(std::time::Instant::now());
        let (rtmfp, shared, wake) = (&mut self.rtmfp, &self.shared, &mut self.wake);
        self.udp.on_recv(&mut self.io, token, c, |d| match d.owner {
            Owner::Rtmfp(e) => {
                rtmfp.on_datagram(id, now, e, d.from, d.payload, false, shared, wake);
            }
            owner => {
                debug!(worker = id, ?owner, socket = d.socket.slot, from = %d.from,
                    bytes = d.payload.len(), "datagram for an owner that takes none; dropped");
            }
        });
    }

    pub(super) fn on_udp_sent(&mut self, token: Token, c: Completion) {
        let Some(sent) = self.udp.on_sent(token, c) else {
            return;
        };
        if let Err(e) = sent.result {
            debug!(worker = self.id, owner = ?sent.owner, socket = sent.socket.slot,
                error = %e, "datagram send failed");
        }
    }

    /// Shutdown: connects in flight are cancelled (their completions still come) and the
    /// UDP sockets closed once the ring lets go of them.
    pub(super) fn stop_outbound(&mut self) {
        self.connects.cancel_all(&mut self.io);
        self.udp.close_all(&mut self.io);
    }

    pub(super) fn outbound_idle(&self) -> bool {
        // File reads are not cancelled (they end on their own, quickly) but waited for:
        // the kernel writes into their buffers until they complete.
        self.connects.is_empty() && self.udp.is_empty() && self.file_reads.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::net::TcpListener;

    use super::*;
    use crate::engine::connect::tests::unanswered_listener;
    use crate::engine::udp::UdpSendError;
    use crate::engine::worker::testing::{turn_until, worker};

    #[test]
    fn the_loop_routes_connects_and_datagrams_and_lets_go_of_them() {
        let (mut w, _control) = worker();

        // A connect completes through the worker's dispatch; with no owner to take it the
        // socket is closed, not leaked: the far end sees the connection end.
        let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
        let to = listener.local_addr().expect("addr");
        w.connect(to, Duration::from_secs(5), Owner::Worker)
            .expect("connect");
        turn_until(&mut w, |w| w.connects.is_empty());
        let (mut accepted, _) = listener.accept().expect("accept");
        accepted
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        assert_eq!(accepted.read(&mut [0u8; 8]).expect("eof"), 0);

        // A UDP socket in the loop: what it sends arrives, and its send completion comes
        // back through the worker's dispatch.
        let socket = w
            .open_udp("127.0.0.1:0".parse().expect("addr"), Owner::Worker)
            .expect("bind");
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").expect("peer");
        peer.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let peer_addr = peer.local_addr().expect("peer addr");
        let mut ping = b"ping".to_vec();
        w.udp
            .send_run(&mut w.io, socket, peer_addr, &mut ping, 4, 4)
            .expect("queued");
        turn_until(&mut w, |w| w.udp.sends_in_flight() == 0);
        let mut buf = [0u8; 8];
        let (n, _) = peer.recv_from(&mut buf).expect("datagram");
        assert_eq!(&buf[..n], b"ping");

        // Shutdown cancels a connect nobody answers (its timeout is far off) and closes the
        // socket; the worker's exit waits for both.
        let (_silent, silent_addr) = unanswered_listener();
        w.connect(silent_addr, Duration::from_secs(30), Owner::Worker)
            .expect("connect");
        turn_until(&mut w, |_| true);
        assert!(!w.outbound_idle());
        w.begin_shutdown();
        turn_until(&mut w, |w| w.outbound_idle());
        let mut late = b"late".to_vec();
        assert_eq!(
            w.udp
                .send_run(&mut w.io, socket, peer_addr, &mut late, 4, 4),
            Err(UdpSendError::Closed)
        );
    }
}
