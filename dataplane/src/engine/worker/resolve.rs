//! Upstream hostnames (host.ini and `pull` accept names): resolved off the worker's thread,
//! since getaddrinfo blocks and a worker's loop never may. An attempt at a name spawns a
//! short-lived thread (attempts are seconds apart at most per group, so threads stay few)
//! that resolves it and posts the answer to the worker's mailbox; the worker then connects
//! as to an IP. A name is resolved again at every attempt, so DNS changes are followed.

use std::net::{SocketAddr, ToSocketAddrs};

use super::*;
use crate::engine::slab::SlabRef;

impl Worker {
    /// Resolves `host`:`port` for pull `p`'s group `group`; the answer comes back as
    /// `WorkerMsg::Resolved`.
    pub(super) fn resolve_upstream(&mut self, p: SlabRef, group: u16, host: String, port: u16) {
        let shared = Arc::clone(&self.shared);
        let worker = self.id;
        let spawned = std::thread::Builder::new()
            .name("strata-resolve".into())
            .spawn(move || {
                let result = (host.as_str(), port)
                    .to_socket_addrs()
                    .map_err(|e| format!("cannot resolve {host}: {e}"))
                    .and_then(|addrs| {
                        let addrs: Vec<SocketAddr> = addrs.collect();
                        // IPv4 first when a name has both: loopback and most RTMP
                        // servers listen on IPv4 only.
                        addrs
                            .iter()
                            .find(|a| a.is_ipv4())
                            .or(addrs.first())
                            .copied()
                            .ok_or_else(|| format!("{host} has no address"))
                    });
                if let Some(m) = shared.mailboxes.get(worker) {
                    m.post(WorkerMsg::Resolved {
                        pull: p,
                        group,
                        result,
                    });
                    m.wake();
                }
            });
        if let Err(e) = spawned {
            self.upstream_resolved(p, group, Err(format!("no resolver thread: {e}")));
        }
    }
}
