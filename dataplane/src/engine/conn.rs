//! One client connection on a worker, and the slots connections live in.

use std::net::SocketAddr;
use std::os::fd::RawFd;

use bytes::BytesMut;

use super::zerocopy::ZeroCopy;
use crate::app::Client;
use crate::media::port::ClientRef;
use crate::media::send_queue::SendQueue;
use crate::proto::amf0::Amf0Value;
use crate::proto::rtmp::session::{Session, SessionError, SessionEvent};

/// A connection slot and its generation: the engine's `ClientRef` for RTMP connections.
pub type ConnRef = ClientRef;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closing {
    Open,
    /// Flushing the last messages; the socket is shut down when the queue empties or the
    /// flush timer fires.
    Flushing,
    /// Shut down; waiting for the ring to hand back in-flight operations.
    ShutDown,
}

pub struct Conn {
    /// Unix time of the accept.
    pub since: f64,
    pub fd: RawFd,
    pub peer: SocketAddr,
    pub generation: u32,
    pub session: Session,
    /// The client this connection carries: the NetConnection and everything about it that
    /// is not RTMP or the socket.
    pub client: Client<SessionEvent>,
    pub queue: SendQueue,
    /// Bytes the protocol writes (handshake, control, commands) before they join the queue.
    pub out: BytesMut,
    pub iov: Vec<libc::iovec>,
    /// Boxed: its address goes to the kernel and must not move with the slot vector.
    pub msghdr: Box<libc::msghdr>,
    pub recv_armed: bool,
    pub send_in_flight: bool,
    /// Zero-copy sends' notifications and the bytes they keep alive.
    pub zc: ZeroCopy,
    /// What is queued must go out as soon as the socket is free: a reply, a fast-start
    /// burst, or media whose batch time has come. Media pushed meanwhile waits for the
    /// next batch instead of leaving in a send of its own when the last one completes.
    pub send_due: bool,
    /// Listed in the worker's media flush (`MediaFlush`) for the next batch (once, however many
    /// messages join the batch).
    pub media_pending: bool,
    pub closing: Closing,
    pub preamble_sent: bool,
    /// The client sends commands framed as AMF3 (type 17); replies use the same framing.
    pub amf3: bool,
    pub bytes_out: u64,
}

impl Conn {
    /// A command: after the connect preamble, which carries Set Chunk
    /// Size (nothing larger may precede it).
    pub fn write_command(&mut self, stream_id: u32, values: &[Amf0Value]) {
        self.preamble();
        self.session
            .write_command(stream_id, self.amf3, values, &mut self.out);
    }

    /// Calls `method` on the client (on its NetConnection); the session numbers the call
    /// and will match its answer.
    pub fn call(&mut self, method: &str, args: &[Amf0Value]) -> Result<u32, SessionError> {
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
    pub fn queue_out(&mut self) -> bool {
        if self.out.is_empty() {
            return false;
        }
        let bytes = self.out.split().freeze();
        self.queue.push_control(bytes);
        true
    }
}

struct Slot {
    generation: u32,
    conn: Option<Conn>,
}

/// Connection storage with generation-checked references: a stale reference (to a slot
/// freed and reused) finds nothing.
#[derive(Default)]
pub struct Slots {
    slots: Vec<Slot>,
    free: Vec<u32>,
    live: usize,
}

impl Slots {
    /// Reserves a slot; returns its index and the generation the new connection must carry.
    pub fn reserve(&mut self) -> (u32, u32) {
        if let Some(i) = self.free.pop() {
            let slot = &mut self.slots[i as usize];
            slot.generation = slot.generation.wrapping_add(1) & 0xFF_FFFF;
            (i, slot.generation)
        } else {
            self.slots.push(Slot {
                generation: 0,
                conn: None,
            });
            ((self.slots.len() - 1) as u32, 0)
        }
    }

    pub fn insert(&mut self, slot: u32, conn: Conn) {
        if let Some(s) = self.slots.get_mut(slot as usize) {
            s.conn = Some(conn);
            self.live += 1;
        }
    }

    pub fn get(&self, r: ConnRef) -> Option<&Conn> {
        let s = self.slots.get(r.slot as usize)?;
        s.conn.as_ref().filter(|c| c.generation == r.generation)
    }

    pub fn get_mut(&mut self, r: ConnRef) -> Option<&mut Conn> {
        let s = self.slots.get_mut(r.slot as usize)?;
        s.conn.as_mut().filter(|c| c.generation == r.generation)
    }

    pub fn remove(&mut self, r: ConnRef) -> Option<Conn> {
        let s = self.slots.get_mut(r.slot as usize)?;
        if s.conn
            .as_ref()
            .is_some_and(|c| c.generation == r.generation)
        {
            self.free.push(r.slot);
            self.live -= 1;
            s.conn.take()
        } else {
            None
        }
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    pub fn refs(&self) -> Vec<ConnRef> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                s.conn.as_ref().map(|c| ConnRef {
                    slot: i as u32,
                    generation: c.generation,
                })
            })
            .collect()
    }
}
