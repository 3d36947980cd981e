//! Relay pulls: a viewer asks for a stream nobody publishes here, in an application with
//! upstreams (role intermediate or edge, groups from host.ini) → this worker connects to
//! an upstream (`engine::connect`), the socket becomes a connection whose `Session` is in
//! the client role, `relay::link::PullLink` connects, creates a stream and plays the name,
//! and the link's frames enter the `LiveStream` as its source (`Source::Upstream`): local
//! viewers and other workers get them as from a local publisher, GOP cache included.
//!
//! A failed attempt or a closed link is retried with back-off (`relay::backoff`) while
//! some worker still has a viewer of the stream; bad input from the upstream closes only
//! that link. The pull ends when the last viewer leaves.

use std::collections::HashMap;
use std::os::fd::IntoRawFd;

use super::*;
use crate::engine::conn::LinkConn;
use crate::engine::connect::ConnectError;
use crate::engine::slab::{Slab, SlabRef};
use crate::proto::rtmp::handshake::HandshakeKind;
use crate::relay::backoff;
use crate::relay::host_ini::UpstreamGroup;
use crate::relay::link::{LinkStep, PullLink};

/// How long one connect attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// One stream this worker pulls from upstream.
struct Pull {
    key: StreamKey,
    group: UpstreamGroup,
    /// Failed attempts in a row (0 once a link plays).
    failures: u32,
    state: PullState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PullState {
    Connecting,
    Linked(ConnRef),
    /// Waiting for the retry timer.
    Waiting,
}

/// A worker's pulls, by the slot their `Owner::Pull` names and by stream.
#[derive(Default)]
pub(super) struct Pulls {
    slab: Slab<Pull>,
    by_key: HashMap<StreamKey, SlabRef>,
}

impl Worker {
    /// A viewer plays `key`, which nobody publishes yet: if its application has upstreams
    /// and this worker does not pull it already, start pulling.
    pub(super) fn maybe_pull(&mut self, key: &StreamKey) {
        if self.pulls.by_key.contains_key(key) || self.shutting_down.is_some() {
            return;
        }
        let Some(group) = self
            .config
            .applications
            .iter()
            .find(|a| a.name == key.app())
            .and_then(|a| a.upstreams.first())
        else {
            return;
        };
        let pull = Pull {
            key: key.clone(),
            group: group.clone(),
            failures: 0,
            state: PullState::Waiting,
        };
        let p = self.pulls.slab.insert(pull);
        self.pulls.by_key.insert(key.clone(), p);
        self.pull_attempt(p);
    }

    fn pull_attempt(&mut self, p: SlabRef) {
        let Some(pull) = self.pulls.slab.get_mut(p) else {
            return;
        };
        let addr = &pull.group.primary;
        let Ok(to) = addr.to_string().parse::<SocketAddr>() else {
            let why = format!("{addr}: upstream hostnames are not resolved yet; use an IP");
            return self.pull_failed(p, &why);
        };
        info!(worker = self.id, stream = pull.key.name(), group = %pull.group.label, %to,
            "connecting to upstream");
        pull.state = PullState::Connecting;
        if let Err(e) = self.connect(to, CONNECT_TIMEOUT, Owner::Pull(p)) {
            self.pull_failed(p, &format!("no socket for {to}: {e}"));
        }
    }

    /// A connect of pull `p` ended: the socket becomes a connection in the client role.
    pub(super) fn pull_connected(
        &mut self,
        p: SlabRef,
        to: SocketAddr,
        result: Result<Socket, ConnectError>,
    ) {
        let socket = match result {
            Ok(socket) => socket,
            Err(e) => return self.pull_failed(p, &format!("connect to {to}: {e}")),
        };
        let Some(pull) = self.pulls.slab.get(p) else {
            return; // The pull ended meanwhile; the socket closes here.
        };
        let path = match &pull.group.instance {
            Some(instance) => format!("{}/{instance}", pull.group.app),
            None => pull.group.app.clone(),
        };
        let link = PullLink::new(
            path.clone(),
            format!("rtmp://{to}/{path}"),
            pull.key.name().to_string(),
        );
        let session_config = self.session_config();
        let r = self.adopt(socket.into_raw_fd());
        let epoch = self.started.elapsed().as_millis() as u32;
        let Some(c) = self.conns.get_mut(r) else {
            return;
        };
        c.session = Session::client(
            session_config,
            HandshakeKind::Digest,
            &mut self.rng,
            epoch,
            &mut c.out,
        );
        // No connect preamble: a client's first message is connect itself.
        c.preamble_sent = true;
        c.upstream = Some(Box::new(LinkConn { pull: p, link }));
        if let Some(pull) = self.pulls.slab.get_mut(p) {
            pull.state = PullState::Linked(r);
        }
        self.flush_out(r);
    }

    /// What the upstream said on link `r`.
    pub(super) fn on_link_event(&mut self, r: ConnRef, ev: SessionEvent) {
        let Some(c) = self.conns.get_mut(r) else {
            return;
        };
        let Some(up) = c.upstream.as_mut() else {
            return;
        };
        let step = up.link.on_event(&mut c.session, ev, &mut c.out);
        let p = up.pull;
        let Some(key) = self.pulls.slab.get(p).map(|pull| pull.key.clone()) else {
            return self.close(r, "its pull ended", false);
        };
        let from_link = |s: &Source| matches!(s, Source::Upstream { link, .. } if *link == r);
        match step {
            LinkStep::Nothing => {}
            LinkStep::Live => self.link_live(r, p, key),
            LinkStep::Offline => self.stop_publish(r, &key),
            LinkStep::Media(message) => {
                let m = MediaMessage {
                    timestamp: message.timestamp,
                    type_id: message.type_id,
                    payload: message.payload,
                };
                self.publish_frame(&key, m, true, from_link);
            }
            LinkStep::Data(message) => {
                if let Some((m, keep)) = self.data_for_stream(r, &message) {
                    self.publish_frame(&key, m, keep, from_link);
                }
            }
            LinkStep::Failed(reason) => self.close(r, &reason, true),
        }
    }

    /// The upstream plays the stream: the link claims it and the local stream goes live.
    fn link_live(&mut self, r: ConnRef, p: SlabRef, key: StreamKey) {
        let held = self.streams.get(&key).and_then(|s| s.source.here());
        if held.is_some_and(|(from, _)| from == r) {
            return;
        }
        let publish_id = self
            .shared
            .next_publish_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let Ok(remote_workers) = self
            .shared
            .registry
            .publish(&key, self.id, publish_id, None)
        else {
            // Another worker's link (or a local publisher) got there first: its stream
            // reaches this worker's viewers anyway.
            info!(
                worker = self.id,
                stream = key.name(),
                "stream already fed here; link let go"
            );
            return self.end_pull(p);
        };
        if let Some(pull) = self.pulls.slab.get_mut(p) {
            pull.failures = 0;
        }
        let who = self.conns.get(r).map(|c| (c.client.id, c.peer.to_string()));
        if let Some(c) = self.conns.get(r) {
            info!(worker = self.id, peer = %c.peer, stream = key.name(), "upstream plays");
        }
        self.streams
            .entry(key.clone())
            .or_insert_with(|| LiveStream::new(key.clone()))
            .publish_upstream(
                r,
                publish_id,
                unix_now(),
                who,
                remote_workers.iter().copied(),
            );
        for w in remote_workers {
            self.post(
                w,
                WorkerMsg::StreamStarted {
                    key: key.clone(),
                    publish_id,
                    snapshot: Vec::new(),
                },
            );
        }
        self.went_live(&key);
        self.announce_to_children(&key, true);
    }

    /// Link `r` of pull `p` closed (by either side): its stream is released (viewers get
    /// UnpublishNotify and wait) and the pull tries again.
    pub(super) fn link_closed(&mut self, r: ConnRef, p: SlabRef, reason: &str) {
        let Some(pull) = self.pulls.slab.get(p) else {
            return;
        };
        if pull.state != PullState::Linked(r) {
            return;
        }
        let key = pull.key.clone();
        self.stop_publish(r, &key);
        self.pull_failed(p, reason);
    }

    /// An attempt of pull `p` failed: retried after back-off while a viewer wants it.
    fn pull_failed(&mut self, p: SlabRef, reason: &str) {
        let wanted = self
            .pulls
            .slab
            .get(p)
            .is_some_and(|pull| self.shared.registry.has_viewers(&pull.key));
        if !wanted || self.shutting_down.is_some() {
            return self.end_pull(p);
        }
        let Some(pull) = self.pulls.slab.get_mut(p) else {
            return;
        };
        pull.failures = pull.failures.saturating_add(1);
        pull.state = PullState::Waiting;
        let delay = backoff::delay(pull.failures);
        warn!(worker = self.id, stream = pull.key.name(), group = %pull.group.label,
            attempt = pull.failures, reason, retry_in_ms = delay.as_millis() as u64,
            "upstream link failed");
        self.timers
            .arm_for(Owner::Pull(p), Instant::now() + delay, TimerKind::Retry);
    }

    pub(super) fn pull_timer(&mut self, p: SlabRef, kind: TimerKind) {
        debug_assert_eq!(kind, TimerKind::Retry, "a pull arms only retries");
        if self
            .pulls
            .slab
            .get(p)
            .is_some_and(|pull| pull.state == PullState::Waiting)
        {
            self.pull_attempt(p);
        }
    }

    /// No worker has a viewer of `key` any more: its pull (if this worker has one) ends.
    pub(super) fn release_unwanted_pull(&mut self, key: &StreamKey) {
        if let Some(&p) = self.pulls.by_key.get(key) {
            if !self.shared.registry.has_viewers(key) {
                self.end_pull(p);
            }
        }
    }

    /// Ends pull `p`, closing its link if it has one.
    fn end_pull(&mut self, p: SlabRef) {
        let Some(pull) = self.pulls.slab.remove(p) else {
            return;
        };
        self.pulls.by_key.remove(&pull.key);
        debug!(worker = self.id, stream = pull.key.name(), "pull ended");
        if let PullState::Linked(r) = pull.state {
            self.stop_publish(r, &pull.key);
            self.close(r, "no viewers left", false);
        }
    }
}
