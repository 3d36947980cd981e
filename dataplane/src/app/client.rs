//! One client, whatever carries it (an RTMP connection today; an RTMFP session, an RTMPT
//! session or an upstream link later): its NetConnection with the only copy of its
//! NetStreams' state, the decision it may be waiting for, and the calls the server made to
//! it. The transport keeps only its own things (socket, protocol session, send queue).

use super::calls::Calls;
use super::gate::Gate;
use super::incoming_calls::IncomingCalls;
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
    /// session; see `calls`), each with the method called and who waits for the answer.
    pub(crate) calls: Calls<OutgoingCall>,
    /// Its calls to application methods, waiting for the manager's hook.
    pub(crate) incoming: IncomingCalls,
}

/// A call the server made to the client: the method, and the control-socket query that
/// waits for the answer (an operator's `client_call`), if any.
#[derive(Debug)]
pub(crate) struct OutgoingCall {
    pub(crate) method: String,
    pub(crate) query: Option<u64>,
    /// The application instance whose script waits for the answer, and its call number.
    pub(crate) script: Option<(super::instance::InstanceKey, u64)>,
}

impl<E> Client<E> {
    pub(crate) fn new(id: u64) -> Self {
        Client {
            id,
            nc: NetConnection::new(),
            gate: Gate::default(),
            calls: Calls::default(),
            incoming: IncomingCalls::default(),
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
