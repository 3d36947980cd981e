//! One client, whatever carries it (an RTMP connection today; an RTMFP session, an RTMPT
//! session or an upstream link later): its NetConnection with the only copy of its
//! NetStreams' state, the decision it may be waiting for, and the calls the server made to
//! it. The transport keeps only its own things (socket, protocol session, send queue).

use super::calls::Calls;
use super::gate::Gate;
use super::net_connection::NetConnection;

/// `E` is what the transport delivers (RTMP: a session event), kept in order while a
/// decision is outstanding.
#[derive(Debug)]
pub(crate) struct Client<E> {
    /// Unique across workers, for the control socket (kick, events).
    pub(crate) id: u64,
    pub(crate) nc: NetConnection,
    pub(crate) gate: Gate<E>,
    /// Server-to-client calls awaiting `_result`/`_error` (numbered by the protocol
    /// session; see `calls`), each with the method called.
    pub(crate) calls: Calls<String>,
}

impl<E> Client<E> {
    pub(crate) fn new(id: u64) -> Self {
        Client {
            id,
            nc: NetConnection::new(),
            gate: Gate::default(),
            calls: Calls::default(),
        }
    }

    /// The application for logs: `-` before connect.
    pub(crate) fn app(&self) -> &str {
        if self.nc.app.is_empty() {
            "-"
        } else {
            &self.nc.app
        }
    }
}
