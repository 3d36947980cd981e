//! The parent side of LiveStreamCast's tiers (origin and intermediate applications):
//! FCPublish's answer, child servers registering with FCAddChild, and addStream /
//! removeStream to every child when a stream of the application starts or stops. Children
//! may sit on any worker and publishers on any other, so a start or stop is posted to every
//! worker (`WorkerMsg::TierStream`), each telling its own children; a child that registers
//! is told at once what the registry has live.

use super::*;
use crate::relay::catalog::Known;
use crate::relay::tier;

impl Worker {
    /// FCPublish: Publish.Start, or BadName when the name is published already (the seed's
    /// "publish request is denied").
    pub(super) fn fc_publish(&mut self, r: ConnRef, stream_id: u32, key: &StreamKey) {
        let code = if self.shared.registry.is_published(key) {
            "NetStream.Publish.BadName"
        } else {
            "NetStream.Publish.Start"
        };
        let level = if code.ends_with("BadName") {
            status::Level::Error
        } else {
            status::Level::Status
        };
        let info = status::info(level, code, key.name());
        self.reply(r, stream_id, &status::call("onFCPublish", info));
    }

    /// FCAddChild (already accepted by the NetConnection): remember the child and tell it
    /// what is live now.
    pub(super) fn add_child(&mut self, r: ConnRef) {
        let Some(c) = self.conns.get(r) else { return };
        let (app, instance) = (c.client.nc.app.clone(), c.client.nc.instance.clone());
        info!(peer = %c.peer, %app, "child server registered");
        if !self.children.contains(&r) {
            self.children.push(r);
        }
        let names = if self.lists_from_upstreams(&app) {
            self.upstream_names(&app)
        } else {
            self.shared.registry.live_names(&app, &instance)
        };
        for name in names {
            self.notify_child(r, true, &name);
        }
    }

    /// `key` started (`live`) or stopped: if its application has a tier role, every worker
    /// tells its children and its subscribers.
    pub(super) fn announce_to_children(&mut self, key: &StreamKey, live: bool) {
        let tiered = self
            .config
            .application(key.app())
            .is_some_and(|p| p.role.is_some());
        if !tiered {
            return;
        }
        for w in 0..self.shared.mailboxes.len() {
            if w != self.id {
                let msg = WorkerMsg::TierStream {
                    key: key.clone(),
                    live,
                };
                self.post(w, msg);
            }
        }
        self.tell_children(key, live);
    }

    /// FCSubscribe / FMSubscribe: Play.Start if the stream is live; on an intermediate or
    /// edge, a pull asks the upstreams and the answer comes when one plays it (or none has
    /// it); elsewhere StreamNotFound. Later, UnpublishNotify when it stops.
    pub(super) fn subscribe(&mut self, r: ConnRef, key: StreamKey) {
        let conns = &self.conns;
        self.subscribers
            .retain(|(s, _)| conns.get(*s).is_some_and(|c| c.closing == Closing::Open));
        if !self.subscribers.iter().any(|(s, k)| *s == r && *k == key) {
            self.subscribers.push((r, key.clone()));
        }
        if self.shared.registry.is_published(&key) {
            return self.notify_subscriber(r, &key, "NetStream.Play.Start");
        }
        let pulls = self
            .config
            .applications
            .iter()
            .any(|a| a.name == key.app() && a.role.is_some_and(|role| role.has_upstreams()));
        if pulls && self.upstreams_know(&key) == Known::Absent {
            self.subscribe_unlisted(key);
        } else if pulls {
            self.maybe_pull(&key);
        } else {
            self.subscribers_not_found(&key);
        }
    }

    pub(super) fn unsubscribe(&mut self, r: ConnRef, key: &StreamKey) {
        self.subscribers.retain(|(s, k)| !(*s == r && k == key));
        self.release_unwanted_pull(key);
    }

    /// Whether a client of this worker waits for an answer about `key` (a pull for it is
    /// kept while one does, as while a viewer plays it).
    pub(super) fn subscribed(&self, key: &StreamKey) -> bool {
        self.subscribers.iter().any(|(_, k)| k == key)
    }

    /// No upstream has `key`: StreamNotFound to its subscribers, which are let go.
    pub(super) fn subscribers_not_found(&mut self, key: &StreamKey) {
        let waiting: Vec<ConnRef> = self
            .subscribers
            .iter()
            .filter(|(_, k)| k == key)
            .map(|(r, _)| *r)
            .collect();
        self.subscribers.retain(|(_, k)| k != key);
        for r in waiting {
            self.notify_subscriber(r, key, "NetStream.Play.StreamNotFound");
        }
    }

    fn notify_subscriber(&mut self, r: ConnRef, key: &StreamKey, code: &str) {
        let level = if code.ends_with("NotFound") {
            status::Level::Error
        } else {
            status::Level::Status
        };
        let info = status::info(level, code, key.name());
        self.reply(r, 0, &status::call(tier::ON_FM_SUBSCRIBE, info));
        self.flush_out(r);
    }

    /// addStream / removeStream to this worker's children of `key`'s application instance,
    /// and onFMSubscribe (Play.Start / UnpublishNotify) to its subscribers of `key`.
    pub(super) fn tell_children(&mut self, key: &StreamKey, live: bool) {
        let code = if live {
            "NetStream.Play.Start"
        } else {
            "NetStream.Play.UnpublishNotify"
        };
        let subscribers: Vec<ConnRef> = self
            .subscribers
            .iter()
            .filter(|(_, k)| k == key)
            .map(|(r, _)| *r)
            .collect();
        for r in subscribers {
            self.notify_subscriber(r, key, code);
        }
        if self.lists_from_upstreams(key.app()) {
            // Its children hear what the upstreams' lists say (`catalog_changed`), not
            // which streams this server happens to pull.
            return;
        }
        let conns = &self.conns;
        self.children
            .retain(|r| conns.get(*r).is_some_and(|c| c.closing == Closing::Open));
        for r in self.children.clone() {
            let same_instance = self.conns.get(r).is_some_and(|c| {
                c.client.nc.app == key.app() && c.client.nc.instance == key.instance()
            });
            if same_instance {
                self.notify_child(r, live, key.name());
            }
        }
    }

    /// An intermediate (or edge) with upstream groups: it keeps their lists, and tells its
    /// own children what they list.
    fn lists_from_upstreams(&self, app: &str) -> bool {
        self.config.applications.iter().any(|a| {
            a.name == app && a.role.is_some_and(|r| r.has_upstreams()) && !a.upstreams.is_empty()
        })
    }

    fn notify_child(&mut self, r: ConnRef, live: bool, name: &str) {
        if let Some(c) = self.conns.get_mut(r) {
            debug!(peer = %c.peer, name, live, "telling a child server");
            c.write_command(0, &tier::stream_notice(live, name));
        }
        self.flush_out(r);
    }
}
