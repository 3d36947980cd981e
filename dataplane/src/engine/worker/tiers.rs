//! The parent side of LiveStreamCast's tiers (origin and intermediate applications):
//! FCPublish's answer, child servers registering with FCAddChild, and addStream /
//! removeStream to every child when a stream of the application starts or stops. Children
//! may sit on any worker and publishers on any other, so a start or stop is posted to every
//! worker (`WorkerMsg::TierStream`), each telling its own children; a child that registers
//! is told at once what the registry has live.

use super::*;
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
        for name in self.shared.registry.live_names(&app, &instance) {
            self.notify_child(r, true, &name);
        }
    }

    /// `key` started (`live`) or stopped: if its application takes children, every worker
    /// tells its children.
    pub(super) fn announce_to_children(&mut self, key: &StreamKey, live: bool) {
        if !self
            .config
            .application(key.app())
            .is_some_and(|p| p.has_children())
        {
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

    /// addStream / removeStream to this worker's children of `key`'s application instance.
    pub(super) fn tell_children(&mut self, key: &StreamKey, live: bool) {
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

    fn notify_child(&mut self, r: ConnRef, live: bool, name: &str) {
        if let Some(c) = self.conns.get_mut(r) {
            debug!(peer = %c.peer, name, live, "telling a child server");
            c.write_command(0, &tier::stream_notice(live, name));
        }
        self.flush_out(r);
    }
}
