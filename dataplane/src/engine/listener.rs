//! Listening sockets: one per worker and address, with SO_REUSEPORT so the kernel spreads
//! new connections across workers without a shared accept lock.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

fn bound(addr: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.cloexec(),
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(false)?;
    }
    socket.bind(&addr.into())?;
    Ok(socket)
}

/// A listening socket with `backlog` (`server.listen_backlog`, validated to fit an i32;
/// the kernel caps it at net.core.somaxconn, see `server::limits::note_backlog`).
pub(crate) fn tcp_listener(addr: SocketAddr, backlog: u32) -> io::Result<Socket> {
    let socket = bound(addr)?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(socket)
}

/// Binds (without listening) and closes each address once before the workers start, so a
/// port in use is reported once, clearly, instead of by every worker. Not listening matters:
/// a listening socket would accept, then reset, connections made before the workers are
/// ready, and a client probing for readiness would believe the server up too early.
pub(crate) fn check_bindable(addrs: &[SocketAddr]) -> Result<(), String> {
    for addr in addrs {
        bound(*addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    }
    Ok(())
}
