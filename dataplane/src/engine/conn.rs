//! One client connection on a worker, and the slots connections live in.

use std::net::SocketAddr;
use std::os::fd::RawFd;

use bytes::BytesMut;

use super::slab::{Slab, SlabRef};
use super::zerocopy::ZeroCopy;
use crate::app::Client;
use crate::media::port::ClientRef;
use crate::media::send_queue::SendQueue;
use crate::proto::amf0::Amf0Value;
use crate::proto::rtmp::session::{Session, SessionError, SessionEvent};

/// A connection slot and its generation: the engine's `ClientRef` for RTMP connections.
pub(crate) type ConnRef = ClientRef;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Closing {
    Open,
    /// Flushing the last messages; the socket is shut down when the queue empties or the
    /// flush timer fires.
    Flushing,
    /// Shut down; waiting for the ring to hand back in-flight operations.
    ShutDown,
}

pub(crate) struct Conn {
    /// Unix time of the accept.
    pub(crate) since: f64,
    pub(crate) fd: RawFd,
    pub(crate) peer: SocketAddr,
    pub(crate) session: Session,
    /// The client this connection carries: the NetConnection and everything about it that
    /// is not RTMP or the socket.
    pub(crate) client: Client<SessionEvent>,
    pub(crate) queue: SendQueue,
    /// Bytes the protocol writes (handshake, control, commands) before they join the queue.
    pub(crate) out: BytesMut,
    pub(crate) iov: Vec<libc::iovec>,
    /// Boxed: its address goes to the kernel and must not move with the slot vector.
    pub(crate) msghdr: Box<libc::msghdr>,
    pub(crate) recv_armed: bool,
    /// The armed receive takes the ingest buffers (`Io::ingest`), not the clients'.
    pub(crate) recv_ingest: bool,
    /// Its receives should take the ingest buffers: it publishes. Set when a publish starts;
    /// a receive armed before moves over when it is next armed (`start_publish` ends it).
    pub(crate) ingest: bool,
    pub(crate) send_in_flight: bool,
    /// Zero-copy sends' notifications and the bytes they keep alive.
    pub(crate) zc: ZeroCopy,
    /// What is queued must go out as soon as the socket is free: a reply, a fast-start
    /// burst, or media whose batch time has come. Media pushed meanwhile waits for the
    /// next batch instead of leaving in a send of its own when the last one completes.
    pub(crate) send_due: bool,
    /// Listed in the worker's media flush (`MediaFlush`) for the next batch (once, however many
    /// messages join the batch).
    pub(crate) media_pending: bool,
    pub(crate) closing: Closing,
    pub(crate) preamble_sent: bool,
    /// The client sends commands framed as AMF3 (type 17); replies use the same framing.
    pub(crate) amf3: bool,
    pub(crate) bytes_out: u64,
    /// Set when this is a connection we opened (a relay pull's link to an upstream, a push
    /// to its target, a standing link to an upstream group): its session is in the client role and its events go to the link,
    /// not to `client`.
    pub(crate) upstream: Option<Box<LinkConn>>,
    /// Set when the client came over RTMFP: it has no socket of its own, and what it is
    /// sent goes to its RTMFP session's flows (see `worker/rtmfp.rs`).
    pub(crate) rtmfp: Option<Box<super::worker::rtmfp::RtmfpLink>>,
}

/// A relay's conversation riding on a connection we opened.
pub(crate) enum LinkConn {
    /// A relay pull's link: the pull it serves, the upstream group it goes to (index in
    /// host.ini), and its conversation.
    Pull {
        pull: SlabRef,
        group: u16,
        link: crate::relay::link::PullLink,
    },
    /// A push relay's connection to its target.
    Push {
        push: SlabRef,
        link: crate::relay::push::PushLink,
    },
    /// An application's standing link to an upstream group (FCAddChild).
    Child {
        reg: SlabRef,
        link: crate::relay::registration::ChildLink,
    },
    /// A server-side script's NetConnection to another application.
    Script {
        nc: SlabRef,
        link: crate::relay::script_link::ScriptLink,
    },
}

impl LinkConn {
    /// Past connect: the connection's setup deadline no longer applies.
    pub(crate) fn is_connected(&self) -> bool {
        match self {
            LinkConn::Pull { link, .. } => link.is_connected(),
            LinkConn::Push { link, .. } => link.is_connected(),
            LinkConn::Child { link, .. } => link.is_connected(),
            LinkConn::Script { link, .. } => link.is_connected(),
        }
    }

    /// Whom the connection's end concerns.
    pub(crate) fn owner(&self) -> super::owner::Owner {
        match *self {
            LinkConn::Pull { pull, group, .. } => super::owner::Owner::Pull { pull, group },
            LinkConn::Push { push, .. } => super::owner::Owner::Push(push),
            LinkConn::Child { reg, .. } => super::owner::Owner::Registration(reg),
            LinkConn::Script { nc, .. } => super::owner::Owner::ScriptNc(nc),
        }
    }
}

impl Conn {
    /// A command: after the connect preamble, which carries Set Chunk
    /// Size (nothing larger may precede it).
    pub(crate) fn write_command(&mut self, stream_id: u32, values: &[Amf0Value]) {
        self.preamble();
        self.session
            .write_command(stream_id, self.amf3, values, &mut self.out);
    }

    /// Calls `method` on the client (on its NetConnection); the session numbers the call
    /// and will match its answer.
    pub(crate) fn call(&mut self, method: &str, args: &[Amf0Value]) -> Result<u32, SessionError> {
        self.preamble();
        self.session
            .call(0, method, Amf0Value::Null, args, &mut self.out)
    }

    fn preamble(&mut self) {
        if !self.preamble_sent {
            self.session.write_connect_preamble(&mut self.out);
            self.preamble_sent = true;
        }
    }

    /// Moves what the protocol wrote into the send queue; true if there was something (the
    /// caller marks the connection due).
    pub(crate) fn queue_out(&mut self) -> bool {
        if self.out.is_empty() {
            return false;
        }
        let bytes = self.out.split().freeze();
        self.queue.push_control(bytes);
        true
    }
}

/// Connections by `ConnRef`: a `Slab`, addressed by the reference the media layer knows a
/// client by. `get`/`get_mut` run per viewer per media flush: each is the slab's bounds
/// check and generation compare, nothing more.
#[derive(Default)]
pub(crate) struct Slots(Slab<Conn>);

fn slab_ref(r: ConnRef) -> SlabRef {
    SlabRef {
        slot: r.slot,
        generation: r.generation,
    }
}

impl Slots {
    pub(crate) fn insert(&mut self, conn: Conn) -> ConnRef {
        let r = self.0.insert(conn);
        ConnRef {
            slot: r.slot,
            generation: r.generation,
        }
    }

    pub(crate) fn get(&self, r: ConnRef) -> Option<&Conn> {
        self.0.get(slab_ref(r))
    }

    pub(crate) fn get_mut(&mut self, r: ConnRef) -> Option<&mut Conn> {
        self.0.get_mut(slab_ref(r))
    }

    pub(crate) fn remove(&mut self, r: ConnRef) -> Option<Conn> {
        self.0.remove(slab_ref(r))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// References to every connection (for shutdown: not on any per-message path).
    pub(crate) fn refs(&self) -> Vec<ConnRef> {
        self.0
            .refs()
            .into_iter()
            .map(|r| ConnRef {
                slot: r.slot,
                generation: r.generation,
            })
            .collect()
    }
}
