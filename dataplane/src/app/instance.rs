//! Application instances: the clients of one `app/instance`, and the place for what they
//! share (shared objects, the script context, server-to-client calls to all of them).
//!
//! # Owner
//!
//! SO_REUSEPORT spreads an instance's clients over every worker, so per-instance state needs
//! exactly one owner, or two workers would each hold half of a shared object. Decision: the
//! owner is one worker per instance, chosen by a stable hash of (application, instance)
//! modulo the number of workers (`InstanceKey::owner`). Workers send the owner control
//! events only (a client connected or left, a call, a shared-object operation), never
//! media; the owner answers through the same mailboxes. A worker, not a separate app thread,
//! because an instance's control traffic is small next to its media, and a worker already
//! has the loop, the mailbox and the timers an owner needs; an instance whose scripts are
//! heavy can later move to an app thread behind the same key without changing the callers.
//!
//! Remote shared objects are the first state kept by the owner
//! (`engine/worker/shared_objects.rs`); live streams are claimed through the engine's
//! registry (one lock, touched on publish/play only). `Instance` is what the owner will
//! keep of the instance itself (its clients); scripts add fields.

use std::fmt;

/// An application instance's identity: the part of a connect URL before the stream name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct InstanceKey {
    pub(crate) app: String,
    pub(crate) instance: String,
}

impl InstanceKey {
    pub(crate) fn new(app: &str, instance: &str) -> Self {
        InstanceKey {
            app: app.to_string(),
            instance: instance.to_string(),
        }
    }

    /// The worker that owns this instance among `workers` (at least one). FNV-1a over the
    /// names, so every worker and every run agrees without talking to the others.
    pub(crate) fn owner(&self, workers: usize) -> usize {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self
            .app
            .bytes()
            .chain(std::iter::once(b'/'))
            .chain(self.instance.bytes())
        {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        (h % workers.max(1) as u64) as usize
    }
}

impl fmt::Display for InstanceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.app, self.instance)
    }
}

/// What the owner keeps about one instance (by its `InstanceKey`).
#[derive(Debug, Default)]
pub(crate) struct Instance {
    /// Connected clients, over all workers (each reports its connects and disconnects).
    clients: u64,
}

impl Instance {
    pub(crate) fn client_joined(&mut self) {
        self.clients += 1;
    }

    /// Returns true when the last client left: the owner may drop the instance.
    pub(crate) fn client_left(&mut self) -> bool {
        self.clients = self.clients.saturating_sub(1);
        self.clients == 0
    }

    pub(crate) fn clients(&self) -> u64 {
        self.clients
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_worker_agrees_on_one_owner_per_instance() {
        let k = InstanceKey::new("live", "room/a");
        let owner = k.owner(8);
        assert!(owner < 8);
        assert_eq!(InstanceKey::new("live", "room/a").owner(8), owner);
        assert_eq!(k.owner(1), 0);
        assert_eq!(k.owner(0), 0, "no workers reads as one");
        // Instances spread over the workers.
        let owners: std::collections::HashSet<usize> = (0..64)
            .map(|i| InstanceKey::new("live", &format!("room{i}")).owner(4))
            .collect();
        assert_eq!(owners.len(), 4);
    }

    #[test]
    fn the_instance_is_free_when_its_last_client_leaves() {
        let mut i = Instance::default();
        i.client_joined();
        i.client_joined();
        assert!(!i.client_left());
        assert!(i.client_left());
        assert_eq!(i.clients(), 0);
    }
}
