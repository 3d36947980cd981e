//! Upstream and push target hostnames (host.ini, `pull` and `push` accept names): resolved off the worker's thread,
//! since getaddrinfo blocks and a worker's loop never may. An attempt at a name spawns a
//! short-lived thread (attempts are seconds apart at most per group, so threads stay few)
//! that resolves it and posts the answer to the worker's mailbox; the worker then connects
//! as to an IP. A name is resolved again at every attempt, so DNS changes are followed.

use std::net::{SocketAddr, ToSocketAddrs};

use super::*;

impl Worker {
    /// Resolves `host`:`port` for `owner` (a pull's group, a push); the answer comes back
    /// as `WorkerMsg::Resolved`.
    pub(super) fn resolve(&mut self, owner: Owner, host: String, port: u16) {
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
                    m.post(WorkerMsg::Resolved { owner, result });
                    m.wake();
                }
            });
        if let Err(e) = spawned {
            self.resolved(owner, Err(format!("no resolver thread: {e}")));
        }
    }

    /// The answer for an attempt at a hostname, to the owner that asked.
    pub(super) fn resolved(&mut self, owner: Owner, result: Result<SocketAddr, String>) {
        match owner {
            Owner::Pull { pull, group } => self.upstream_resolved(pull, group, result),
            Owner::Push(push) => self.push_resolved(push, result),
            Owner::Registration(r) => self.registration_resolved(r, result),
            Owner::ScriptNc(n) => self.script_nc_resolved(n, result),
            _ => debug_assert!(false, "only relays resolve names: {owner:?}"),
        }
    }
}
