//! Relay pulls with LiveStreamCast's failover. A viewer asks for a stream nobody publishes
//! here, in an application with upstreams (role intermediate or edge, groups from
//! host.ini) → this worker opens a link to every group (`engine::connect`); each socket
//! becomes a connection whose `Session` is in the client role, and `relay::link::PullLink`
//! connects, creates a stream and plays the name. The order in which the groups answer
//! (first media) is the list (`relay::failover`); the stream comes from the first, and the
//! others are parked (their links closed) until needed. The current link's frames enter
//! the `LiveStream` as its source (`Source::Upstream`), with timestamps made continuous
//! across switches (`relay::rebase`): local viewers and other workers get them as from a
//! local publisher, GOP cache included.
//!
//! When the current group fails (its link drops, its upstream's publisher leaves, or no
//! media for the application's `idle_ms`), the stream switches to the next group in the
//! list; the failed group is reconnected in the background (3 attempts at its primary, then
//! its secondary; back-off between attempts) and, once it answers again, joins the bottom of
//! the list. Viewers keep their connections throughout. The pull ends when the last viewer
//! (on any worker) leaves.

use super::session::StreamData;
use super::*;
use crate::engine::conn::LinkConn;
use crate::engine::connect::ConnectError;
use crate::engine::slab::{Slab, SlabRef};
use crate::media::tag::{self, FrameKind};
use crate::proto::rtmp::Message;
use crate::relay::backoff;
use crate::relay::catalog::Known;
use crate::relay::failover::{Attempts, FailoverList};
use crate::relay::host_ini::UpstreamGroup;
use crate::relay::link::{LinkStep, PullLink};
use crate::relay::rebase::{Mapped, Rebase};
use crate::relay::standby::{self, StandbyBuffer};
use control_protocol::Event;
use std::collections::HashMap;

/// How long one connect attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Idle checks per idle interval: inactivity is noticed within 1¼ intervals.
const IDLE_CHECKS: u32 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinkState {
    /// No link: never tried, or parked after answering (it stays in the list).
    Idle,
    Connecting,
    /// `fresh` until its first media.
    Linked {
        conn: ConnRef,
        fresh: bool,
    },
    /// Failed; the retry timer is armed.
    Waiting,
}

/// One upstream group as one pull sees it.
struct GroupLink {
    state: LinkState,
    attempts: Attempts,
    /// It failed since it last answered: its next answer is a recovery.
    down: bool,
    /// Unix time of its last change of state, for `stratactl upstreams`.
    since: f64,
    /// A reload took the group out of the application: it is never tried again (its index
    /// stays, so that every reference to the pull's groups keeps meaning the same one).
    retired: bool,
}

impl GroupLink {
    fn new() -> Self {
        GroupLink {
            state: LinkState::Idle,
            attempts: Attempts::default(),
            down: false,
            since: unix_now(),
            retired: false,
        }
    }

    fn set(&mut self, state: LinkState) {
        if std::mem::discriminant(&state) != std::mem::discriminant(&self.state) {
            self.since = unix_now();
        }
        self.state = state;
    }
}

/// One stream this worker pulls from upstream.
struct Pull {
    key: StreamKey,
    groups: Vec<UpstreamGroup>,
    links: Vec<GroupLink>,
    list: FailoverList,
    /// The group being linked to take over after a failover.
    next: Option<usize>,
    rebase: Rebase,
    /// Metadata and codec headers of a new link, waiting for its first key frame (see
    /// `relay::rebase`): at most one of each kind.
    held: Vec<(FrameKind, MediaMessage)>,
    /// Metadata a group's fresh link sent before its first audio or video (an upstream
    /// sends data even for a stream it does not have): held for it if it takes over.
    early_data: Option<(usize, MediaMessage)>,
    /// The registry claim while this pull feeds the stream.
    publish_id: Option<u64>,
    idle: Duration,
    /// Messages from the current link, and when the idle check last saw the count change.
    media: u64,
    idle_seen: (u64, Instant),
    /// The application keeps a hot standby (`hot_standby`).
    hot_standby: bool,
    /// The group kept playing beside the current one, and what a switch to it replays.
    standby: Option<(usize, StandbyBuffer)>,
    /// Messages from the standby, and when a check last saw the count change.
    standby_media: u64,
    standby_seen: (u64, Instant),
    /// How long the pull stays without viewers (`pull_linger_ms`), and since when it has
    /// none; checked with the idle checks.
    linger: Duration,
    unwanted_since: Option<Instant>,
}

impl Pull {
    /// How often its idle checks run (and so how soon silence is noticed).
    fn check_every(&self) -> Duration {
        let check = self.idle / IDLE_CHECKS;
        if self.hot_standby {
            check.min(standby::CHECK)
        } else {
            check
        }
    }
}

/// A worker's pulls, by the slot their `Owner::Pull` names and by stream.
#[derive(Default)]
pub(super) struct Pulls {
    slab: Slab<Pull>,
    by_key: HashMap<StreamKey, SlabRef>,
}

impl Worker {
    /// A viewer plays `key`, which nobody publishes yet: if its application has upstreams
    /// and this worker does not pull it already, ask every group for it.
    pub(super) fn maybe_pull(&mut self, key: &StreamKey) {
        if let Some(&p) = self.pulls.by_key.get(key) {
            // A viewer back while the pull lingers: it stays.
            if let Some(pull) = self.pulls.slab.get_mut(p) {
                pull.unwanted_since = None;
            }
            return;
        }
        if self.shutting_down.is_some() {
            return;
        }
        if self.upstreams_know(key) == Known::Absent {
            // Every group's list is known and none has it: nobody is dialled; the pull
            // starts when a list gains the name (`catalog_changed`).
            debug!(
                worker = self.id,
                stream = key.name(),
                "no upstream lists it; not pulled"
            );
            return;
        }
        let Some(app) = self
            .config
            .applications
            .iter()
            .find(|a| a.name == key.app() && !a.upstreams.is_empty())
        else {
            return;
        };
        let now = Instant::now();
        let pull = Pull {
            key: key.clone(),
            groups: app.upstreams.clone(),
            links: app.upstreams.iter().map(|_| GroupLink::new()).collect(),
            list: FailoverList::default(),
            next: None,
            rebase: Rebase::default(),
            held: Vec::new(),
            early_data: None,
            publish_id: None,
            idle: Duration::from_millis(u64::from(app.idle_ms)),
            media: 0,
            idle_seen: (0, now),
            hot_standby: app.hot_standby,
            standby: None,
            standby_media: 0,
            standby_seen: (0, now),
            linger: Duration::from_millis(u64::from(app.pull_linger_ms)),
            unwanted_since: None,
        };
        let groups = pull.groups.len();
        let check = pull.check_every();
        let p = self.pulls.slab.insert(pull);
        self.pulls.by_key.insert(key.clone(), p);
        self.timers.arm_for(
            Owner::Pull { pull: p, group: 0 },
            now + check,
            TimerKind::Idle,
        );
        for g in 0..groups {
            self.attempt(p, g);
        }
    }

    /// Connects pull `p` to group `g`: its primary, or after 3 failures its secondary.
    fn attempt(&mut self, p: SlabRef, g: usize) {
        let Some(pull) = self.pulls.slab.get_mut(p) else {
            return;
        };
        let (Some(group), Some(link)) = (pull.groups.get(g), pull.links.get_mut(g)) else {
            return;
        };
        if link.retired {
            return link.set(LinkState::Waiting);
        }
        let (addr, secondary) = link.attempts.address(group);
        let which = if secondary { "secondary" } else { "primary" };
        let attempt = link.attempts.failures + 1;
        let to = addr.to_string();
        let ip = to.parse::<SocketAddr>().ok();
        let (host, port) = (addr.host.clone(), addr.port);
        link.set(LinkState::Connecting);
        info!(worker = self.id, stream = pull.key.name(), group = %group.label, %to, which,
            attempt, "connecting to upstream");
        let detail = format!("group {} {which} {to} attempt {attempt}", group.label);
        let key = pull.key.clone();
        self.upstream_event("upstream_attempt", &key, to, detail);
        match ip {
            Some(to) => self.connect_upstream(p, g, to),
            // A hostname: resolved off this thread (`resolve.rs`), then connected.
            None => self.resolve(
                Owner::Pull {
                    pull: p,
                    group: g as u16,
                },
                host,
                port,
            ),
        }
    }

    fn connect_upstream(&mut self, p: SlabRef, g: usize, to: SocketAddr) {
        let owner = Owner::Pull {
            pull: p,
            group: g as u16,
        };
        if let Err(e) = self.connect(to, CONNECT_TIMEOUT, owner) {
            self.group_failed(p, g, &format!("no socket for {to}: {e}"));
        }
    }

    /// The answer for an attempt at a hostname: connect, or the attempt failed.
    pub(super) fn upstream_resolved(
        &mut self,
        p: SlabRef,
        group: u16,
        result: Result<SocketAddr, String>,
    ) {
        let g = usize::from(group);
        let connecting = self
            .pulls
            .slab
            .get(p)
            .and_then(|pull| pull.links.get(g))
            .is_some_and(|l| l.state == LinkState::Connecting && !l.retired);
        if !connecting {
            return; // The pull ended (or a reload retired the group) meanwhile.
        }
        match result {
            Ok(to) => self.connect_upstream(p, g, to),
            Err(why) => self.group_failed(p, g, &why),
        }
    }

    /// A connect of pull `p` to group `g` ended: the socket becomes a connection in the
    /// client role, its link playing the stream.
    pub(super) fn pull_connected(
        &mut self,
        p: SlabRef,
        group: u16,
        to: SocketAddr,
        result: Result<Socket, ConnectError>,
    ) {
        let g = usize::from(group);
        let socket = match result {
            Ok(socket) => socket,
            Err(e) => return self.group_failed(p, g, &format!("connect to {to}: {e}")),
        };
        let retired = self
            .pulls
            .slab
            .get(p)
            .and_then(|pull| pull.links.get(g))
            .is_none_or(|l| l.retired);
        let Some(upstream) = self
            .pulls
            .slab
            .get(p)
            .and_then(|pull| pull.groups.get(g))
            .filter(|_| !retired)
        else {
            // The pull ended (or a reload retired the group) meanwhile; the socket closes.
            return;
        };
        let path = match &upstream.instance {
            Some(instance) => format!("{}/{instance}", upstream.app),
            None => upstream.app.clone(),
        };
        let name = self
            .pulls
            .slab
            .get(p)
            .map(|pull| pull.key.name().to_string())
            .unwrap_or_default();
        let link = PullLink::new(path.clone(), format!("rtmp://{to}/{path}"), name);
        let r = self.adopt_outbound(
            socket,
            LinkConn::Pull {
                pull: p,
                group,
                link,
            },
        );
        if let Some(l) = self
            .pulls
            .slab
            .get_mut(p)
            .and_then(|pull| pull.links.get_mut(g))
        {
            l.set(LinkState::Linked {
                conn: r,
                fresh: true,
            });
        }
        self.flush_out(r);
    }

    /// What the upstream said on link `r`.
    pub(super) fn on_link_event(&mut self, r: ConnRef, ev: SessionEvent) {
        let Some(c) = self.conns.get_mut(r) else {
            return;
        };
        let (p, g, step) = match c.upstream.as_deref_mut() {
            Some(LinkConn::Pull { pull, group, link }) => (
                *pull,
                usize::from(*group),
                link.on_event(&mut c.session, ev, &mut c.out),
            ),
            Some(LinkConn::Push { .. }) => return self.on_push_event(r, ev),
            Some(LinkConn::Child { .. }) => return self.on_child_event(r, ev),
            Some(LinkConn::Script { .. }) => return self.on_script_nc_event(r, ev),
            None => return,
        };
        if self.pulls.slab.get(p).is_none() {
            return self.close(r, "its pull ended", false);
        }
        match step {
            LinkStep::Nothing | LinkStep::Live => {}
            LinkStep::Offline => {
                // The group no longer has the stream; its link stays and answers again
                // when the upstream's publisher is back.
                if let Some(l) = self.pulls.slab.get_mut(p).and_then(|x| x.links.get_mut(g)) {
                    l.set(LinkState::Linked {
                        conn: r,
                        fresh: true,
                    });
                }
                self.group_lost(p, g, "the upstream's publisher left");
            }
            LinkStep::Media(message) => self.link_frame(p, g, r, message, false),
            LinkStep::Data(message) => self.link_frame(p, g, r, message, true),
            LinkStep::NotFound => self.close(r, "the upstream has no such stream", false),
            LinkStep::Failed(reason) => self.close(r, &reason, true),
        }
    }

    /// A message from group `g`'s link `r`: its first answers the play request (the list,
    /// the current group); the current group's go to the stream.
    fn link_frame(&mut self, p: SlabRef, g: usize, r: ConnRef, message: Message, data: bool) {
        // Data that is not for viewers (|RtmpSampleAccess, ...) answers nothing.
        let (m, keep) = if data {
            match self.data_for_stream(r, &message) {
                Some(StreamData::Frame(m, keep)) => (m, keep),
                // An origin's viewers are never sent @clearDataFrame; a link that sends one
                // anyway changes nothing here.
                Some(StreamData::ClearMetadata(_)) | None => return,
            }
        } else {
            let m = MediaMessage {
                timestamp: message.timestamp,
                type_id: message.type_id,
                payload: message.payload,
            };
            (m, true)
        };
        let Some(pull) = self.pulls.slab.get_mut(p) else {
            return;
        };
        let Some(link) = pull.links.get_mut(g) else {
            return;
        };
        let fresh = link.state
            == (LinkState::Linked {
                conn: r,
                fresh: true,
            });
        if fresh && data {
            // Only audio or video answers the play request.
            pull.early_data = Some((g, m));
            return;
        }
        if fresh {
            link.set(LinkState::Linked {
                conn: r,
                fresh: false,
            });
            link.attempts.succeeded();
            let recovered = std::mem::replace(&mut link.down, false);
            // A current group that a reload retired streams on until another answers.
            let retired_current = pull
                .list
                .active()
                .filter(|&c| c != g && pull.links[c].retired);
            let takes_over = if pull.next == Some(g) {
                pull.list.activate(g);
                true
            } else if let Some(c) = retired_current {
                pull.list.failed(c);
                pull.list.activate(g);
                true
            } else {
                pull.list.answered(g)
            };
            let retired_conn = retired_current.and_then(|c| match pull.links[c].state {
                LinkState::Linked { conn, .. } => Some(conn),
                _ => None,
            });
            let (key, label) = (pull.key.clone(), pull.groups[g].label.clone());
            let order = pull.list.order().to_vec();
            let addr = self
                .conns
                .get(r)
                .map(|c| c.peer.to_string())
                .unwrap_or_default();
            if recovered {
                let detail = format!("group {label} answers again; list {order:?}");
                self.upstream_event("upstream_recovered", &key, addr.clone(), detail);
            }
            let Some(pull) = self.pulls.slab.get_mut(p) else {
                return;
            };
            if takes_over {
                self.take_over(p, g, r);
                if let Some(old) = retired_conn {
                    self.close(old, "its group left the configuration", false);
                }
            } else if pull.hot_standby && pull.standby.is_none() {
                // Answered while another group is current: kept playing as the standby.
                let mut buffer = StandbyBuffer::default();
                if let Some((from, m)) = pull.early_data.take_if(|(from, _)| *from == g) {
                    debug_assert_eq!(from, g);
                    buffer.push(FrameKind::Metadata, m, true);
                }
                pull.standby = Some((g, buffer));
                debug!(worker = self.id, stream = key.name(), group = %label, ?order,
                    "upstream answered; hot standby");
            } else {
                // Answered, but another group is current: parked, at its place in the list.
                if let Some(l) = self.pulls.slab.get_mut(p).and_then(|x| x.links.get_mut(g)) {
                    l.set(LinkState::Idle);
                }
                debug!(worker = self.id, stream = key.name(), group = %label, ?order,
                    "upstream answered; parked");
                self.close(r, "upstream answered; parked until a failover", false);
                return;
            }
        }
        let Some(pull) = self.pulls.slab.get_mut(p) else {
            return;
        };
        let kind = tag::classify(m.type_id, &m.payload);
        if pull.list.active() != Some(g) {
            if let Some((_, buffer)) = pull.standby.as_mut().filter(|(s, _)| *s == g) {
                buffer.push(kind, m, keep);
                pull.standby_media += 1;
            }
            return;
        }
        self.feed(p, r, kind, m, keep);
    }

    /// A message of the current link `r` of pull `p`, to the stream at its rebased time.
    fn feed(&mut self, p: SlabRef, r: ConnRef, kind: FrameKind, m: MediaMessage, keep: bool) {
        let Some(pull) = self.pulls.slab.get_mut(p) else {
            return;
        };
        let timestamp = match pull.rebase.map(kind, m.timestamp) {
            Mapped::Drop => return,
            Mapped::Hold => {
                pull.held.retain(|(k, _)| *k != kind);
                pull.held.push((kind, m));
                return;
            }
            Mapped::Pass(timestamp) => timestamp,
        };
        pull.media += 1;
        let key = pull.key.clone();
        let held = std::mem::take(&mut pull.held);
        let from_link = |s: &Source| matches!(s, Source::Upstream { link, .. } if *link == r);
        for (_, h) in held {
            self.publish_frame(&key, MediaMessage { timestamp, ..h }, true, from_link);
        }
        let m = MediaMessage { timestamp, ..m };
        self.publish_frame(&key, m, keep, from_link);
    }

    /// Group `g` (link `r`) is now the current one: the stream is claimed (first time) or
    /// moved to its link, from its first key frame on.
    fn take_over(&mut self, p: SlabRef, g: usize, r: ConnRef) {
        let Some(pull) = self.pulls.slab.get_mut(p) else {
            return;
        };
        pull.next = None;
        pull.rebase.switch();
        pull.held.clear();
        if let Some((from, m)) = pull.early_data.take() {
            if from == g {
                pull.held.push((FrameKind::Metadata, m));
            }
        }
        pull.idle_seen = (pull.media, Instant::now());
        let key = pull.key.clone();
        let label = pull.groups[g].label.clone();
        let order = pull.list.order().to_vec();
        let claimed = pull.publish_id.is_some();
        let addr = self
            .conns
            .get(r)
            .map(|c| c.peer.to_string())
            .unwrap_or_default();
        if claimed {
            if let Some(stream) = self.streams.get_mut(&key) {
                stream.relink(r);
            }
            info!(worker = self.id, stream = key.name(), group = %label, %addr, ?order,
                "stream switched upstream");
            let detail = format!("now from group {label}; list {order:?}");
            return self.upstream_event("upstream_failover", &key, addr, detail);
        }
        let Ok((publish_id, remote_workers)) = self.claim_stream(&key, None) else {
            // Another worker's pull (or a local publisher) got there first: its stream
            // reaches this worker's viewers anyway.
            info!(
                worker = self.id,
                stream = key.name(),
                "stream already fed here; pull let go"
            );
            return self.end_pull(p);
        };
        if let Some(pull) = self.pulls.slab.get_mut(p) {
            pull.publish_id = Some(publish_id);
        }
        info!(worker = self.id, stream = key.name(), group = %label, %addr, ?order,
            "upstream plays");
        let detail = format!("from group {label}; list {order:?}");
        self.upstream_event("upstream_connect", &key, addr, detail);
        let who = self.conns.get(r).map(|c| (c.client.id, c.peer.to_string()));
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
        self.tell_workers_started(&key, publish_id, &remote_workers);
        self.went_live(&key);
        self.announce_to_children(&key, true);
    }

    /// Link `r` of group `g` closed (by either side). Parking closes links on purpose;
    /// any other close is a failure of the group.
    pub(super) fn link_closed(&mut self, r: ConnRef, p: SlabRef, group: u16, reason: &str) {
        let g = usize::from(group);
        let linked = self
            .pulls
            .slab
            .get(p)
            .and_then(|pull| pull.links.get(g))
            .is_some_and(|l| matches!(l.state, LinkState::Linked { conn, .. } if conn == r));
        if linked {
            self.group_failed(p, g, reason);
        }
    }

    /// Group `g` no longer has the stream, its link staying: it leaves the list (and if it
    /// was current, the stream fails over).
    fn group_lost(&mut self, p: SlabRef, g: usize, reason: &str) {
        let Some(pull) = self.pulls.slab.get_mut(p) else {
            return;
        };
        if let Some(l) = pull.links.get_mut(g) {
            l.down = true;
        }
        pull.standby.take_if(|(s, _)| *s == g);
        let was_current = pull.list.active() == Some(g) || pull.next == Some(g);
        let next = self.leave_list(p, g);
        if was_current {
            self.failover(p, g, next, reason);
        }
    }

    /// An attempt at group `g`, or its link, failed: retried after back-off, and if it was
    /// the current group the stream fails over to the next.
    fn group_failed(&mut self, p: SlabRef, g: usize, reason: &str) {
        let wanted = self.pulls.slab.get(p).is_some_and(|pull| {
            self.shared.registry.has_viewers(&pull.key) || self.subscribed(&pull.key)
        });
        if !wanted || self.shutting_down.is_some() {
            return self.end_pull(p);
        }
        let Some(pull) = self.pulls.slab.get_mut(p) else {
            return;
        };
        let Some(link) = pull.links.get_mut(g) else {
            return;
        };
        link.set(LinkState::Waiting);
        link.attempts.failed();
        link.down = true;
        pull.standby.take_if(|(s, _)| *s == g);
        let delay = backoff::delay(link.attempts.failures);
        let failures = link.attempts.failures;
        warn!(worker = self.id, stream = pull.key.name(), group = %pull.groups[g].label,
            failures, reason, retry_in_ms = delay.as_millis() as u64, "upstream link failed");
        let owner = Owner::Pull {
            pull: p,
            group: g as u16,
        };
        self.timers
            .arm_for(owner, Instant::now() + delay, TimerKind::Retry);
        let was_current = pull.list.active() == Some(g) || pull.next == Some(g);
        let next = self.leave_list(p, g);
        if was_current {
            self.failover(p, g, next, reason);
        }
        // Every group failed or lacks the stream, none plays it: subscribers are told.
        let Some(pull) = self.pulls.slab.get(p) else {
            return;
        };
        let none_left = pull.list.active().is_none()
            && pull.next.is_none()
            && pull.links.iter().all(|l| l.state == LinkState::Waiting);
        if none_left {
            let key = pull.key.clone();
            self.subscribers_not_found(&key);
        }
    }

    /// Takes group `g` out of the list; the group to go to if it was the current one (or
    /// the one being linked to take over).
    fn leave_list(&mut self, p: SlabRef, g: usize) -> Option<usize> {
        let pull = self.pulls.slab.get_mut(p)?;
        let next = pull.list.failed(g);
        if pull.next == Some(g) {
            pull.next = None;
            return pull.list.order().first().copied();
        }
        next
    }

    /// The current group `from` failed: the stream goes to `next` (linked now, or parked
    /// and linked again); with none left, it is released and viewers wait.
    fn failover(&mut self, p: SlabRef, from: usize, next: Option<usize>, reason: &str) {
        let Some(pull) = self.pulls.slab.get_mut(p) else {
            return;
        };
        let key = pull.key.clone();
        let from_label = pull.groups[from].label.clone();
        let Some(n) = next else {
            warn!(worker = self.id, stream = key.name(), group = %from_label, reason,
                "no upstream group has the stream; viewers wait");
            let detail = format!("group {from_label} failed ({reason}); none left");
            self.upstream_event("upstream_failover", &key, String::new(), detail);
            return self.release_claim(p);
        };
        // A hot standby that has a key frame takes over at once, replaying its GOP.
        let standby = pull.standby.take_if(|(s, buffer)| {
            *s != from
                && buffer.ready()
                && matches!(pull.links[*s].state, LinkState::Linked { fresh: false, .. })
        });
        if let Some((s, mut buffer)) = standby {
            let LinkState::Linked { conn, .. } = pull.links[s].state else {
                return;
            };
            info!(worker = self.id, stream = key.name(), from = %from_label,
                to = %pull.groups[s].label, reason, "failing over to the hot standby");
            pull.list.activate(s);
            self.take_over(p, s, conn);
            for (kind, m, keep) in buffer.take() {
                self.feed(p, conn, kind, m, keep);
            }
            return;
        }
        pull.next = Some(n);
        let to_label = pull.groups[n].label.clone();
        info!(worker = self.id, stream = key.name(), from = %from_label, to = %to_label,
            reason, "failing over");
        match pull.links[n].state {
            LinkState::Linked { conn, fresh: false } => {
                pull.list.activate(n);
                self.take_over(p, n, conn);
            }
            LinkState::Linked { fresh: true, .. } | LinkState::Connecting => {}
            LinkState::Idle | LinkState::Waiting => self.attempt(p, n),
        }
    }

    /// The stream is no longer fed from here: viewers get UnpublishNotify and wait.
    fn release_claim(&mut self, p: SlabRef) {
        let Some(pull) = self.pulls.slab.get_mut(p) else {
            return;
        };
        let Some(publish_id) = pull.publish_id.take() else {
            return;
        };
        let key = pull.key.clone();
        for w in self.shared.registry.unpublish(&key, publish_id) {
            self.post(
                w,
                WorkerMsg::StreamStopped {
                    key: key.clone(),
                    publish_id,
                },
            );
        }
        self.went_offline(&key);
        self.announce_to_children(&key, false);
    }

    pub(super) fn pull_timer(&mut self, p: SlabRef, group: u16, kind: TimerKind) {
        let g = usize::from(group);
        let Some(pull) = self.pulls.slab.get_mut(p) else {
            return;
        };
        match kind {
            TimerKind::Retry => {
                if pull
                    .links
                    .get(g)
                    .is_some_and(|l| l.state == LinkState::Waiting)
                {
                    self.attempt(p, g);
                }
            }
            TimerKind::Idle => {
                let now = Instant::now();
                let check = pull.check_every();
                self.timers.arm_for(
                    Owner::Pull { pull: p, group: 0 },
                    now + check,
                    TimerKind::Idle,
                );
                if let Some(since) = pull.unwanted_since {
                    if now.duration_since(since) >= pull.linger {
                        let key = pull.key.clone();
                        pull.unwanted_since = None;
                        return self.release_unwanted_pull_now(&key);
                    }
                }
                if pull.standby_media != pull.standby_seen.0 {
                    pull.standby_seen = (pull.standby_media, now);
                }
                if pull.media != pull.idle_seen.0 {
                    pull.idle_seen = (pull.media, now);
                    return;
                }
                let Some(current) = pull.list.active() else {
                    return;
                };
                let silent = now.duration_since(pull.idle_seen.1);
                // A hot standby that keeps sending while the current link is silent takes
                // over without waiting for the idle interval.
                let quiet_switch = pull.standby.as_ref().is_some_and(|(_, b)| b.ready())
                    && standby::leave_quiet_current(
                        silent,
                        now.duration_since(pull.standby_seen.1),
                        pull.idle,
                    );
                if silent < pull.idle && !quiet_switch {
                    return;
                }
                let reason = if quiet_switch {
                    format!(
                        "no media for {} ms while the hot standby sends",
                        silent.as_millis()
                    )
                } else {
                    format!("no media for {} ms", pull.idle.as_millis())
                };
                let link = pull.links[current].state;
                self.group_failed(p, current, &reason);
                if let LinkState::Linked { conn, .. } = link {
                    self.close(conn, &reason, false);
                }
            }
            _ => debug_assert!(false, "a pull arms only retries and idle checks: {kind:?}"),
        }
    }

    /// No worker has a viewer of `key` any more: its pull (if this worker has one) ends,
    /// at once or after the application's `pull_linger_ms`.
    pub(super) fn release_unwanted_pull(&mut self, key: &StreamKey) {
        let wanted = self.shared.registry.has_viewers(key) || self.subscribed(key);
        let Some(pull) = self
            .pulls
            .by_key
            .get(key)
            .and_then(|&p| self.pulls.slab.get_mut(p))
        else {
            return;
        };
        if pull.linger.is_zero() {
            return self.release_unwanted_pull_now(key);
        }
        if !wanted && pull.unwanted_since.is_none() {
            pull.unwanted_since = Some(Instant::now());
        }
    }

    fn release_unwanted_pull_now(&mut self, key: &StreamKey) {
        if let Some(&p) = self.pulls.by_key.get(key) {
            if !self.shared.registry.has_viewers(key) && !self.subscribed(key) {
                self.end_pull(p);
            }
        }
    }

    /// Ends pull `p`: its claim is released and its links closed.
    fn end_pull(&mut self, p: SlabRef) {
        self.release_claim(p);
        let Some(pull) = self.pulls.slab.remove(p) else {
            return;
        };
        self.pulls.by_key.remove(&pull.key);
        debug!(worker = self.id, stream = pull.key.name(), "pull ended");
        for link in pull.links {
            if let LinkState::Linked { conn, .. } = link.state {
                self.close(conn, "no viewers left", false);
            }
        }
    }

    /// A reload: every running pull whose application's groups changed takes the new ones.
    /// A group no longer configured is retired (its link closed; if the stream came from
    /// it, the stream fails over as if it had dropped); a new group is appended and asked
    /// at once, joining the list when it answers. Groups in both stay as they are.
    pub(super) fn reload_pulls(&mut self) {
        let same = |a: &UpstreamGroup, b: &UpstreamGroup| {
            (&a.label, &a.primary, &a.secondary, &a.app, &a.instance)
                == (&b.label, &b.primary, &b.secondary, &b.app, &b.instance)
        };
        let pulls: Vec<SlabRef> = self.pulls.by_key.values().copied().collect();
        for p in pulls {
            let Some(pull) = self.pulls.slab.get(p) else {
                continue;
            };
            let wanted: Vec<UpstreamGroup> = self
                .config
                .applications
                .iter()
                .find(|a| a.name == pull.key.app())
                .map(|a| a.upstreams.clone())
                .unwrap_or_default();
            let retire: Vec<usize> = (0..pull.groups.len())
                .filter(|&g| {
                    !pull.links[g].retired && !wanted.iter().any(|w| same(w, &pull.groups[g]))
                })
                .collect();
            let added: Vec<UpstreamGroup> = wanted
                .into_iter()
                .filter(|w| {
                    !pull
                        .groups
                        .iter()
                        .zip(&pull.links)
                        .any(|(g, l)| !l.retired && same(w, g))
                })
                .collect();
            if retire.is_empty() && added.is_empty() {
                continue;
            }
            info!(
                worker = self.id,
                stream = pull.key.name(),
                retired = retire.len(),
                added = added.len(),
                "upstream groups changed by a reload"
            );
            let first_new = pull.groups.len();
            if let Some(pull) = self.pulls.slab.get_mut(p) {
                for group in added {
                    pull.groups.push(group);
                    pull.links.push(GroupLink::new());
                }
            }
            for g in first_new..self.pulls.slab.get(p).map_or(0, |x| x.groups.len()) {
                self.attempt(p, g);
            }
            for g in retire {
                self.retire_group(p, g);
            }
        }
    }

    fn retire_group(&mut self, p: SlabRef, g: usize) {
        let Some(link) = self.pulls.slab.get_mut(p).and_then(|x| x.links.get_mut(g)) else {
            return;
        };
        link.retired = true;
        let state = link.state;
        let Some(pull) = self.pulls.slab.get(p) else {
            return;
        };
        let current = pull.list.active() == Some(g);
        let others = pull.list.order().iter().any(|&x| x != g);
        if current && !others {
            // Nothing else to stream from yet: it streams on until a new group answers
            // (`link_frame`), so viewers see a switch rather than an unpublish.
            return;
        }
        if let LinkState::Linked { conn, .. } = state {
            // Through `link_closed` → `group_failed`: out of the list, a failover if it was
            // current; its retry never attempts.
            self.close(conn, "its group left the configuration", false);
        } else {
            self.group_failed(p, g, "its group left the configuration");
        }
    }

    /// Every group of every pull of this worker, then its pushes, for `stratactl
    /// upstreams`.
    pub(super) fn upstream_infos(&self) -> Vec<control_protocol::UpstreamInfo> {
        let mut out = Vec::new();
        for p in self.pulls.by_key.values() {
            let Some(pull) = self.pulls.slab.get(*p) else {
                continue;
            };
            for (g, (group, link)) in pull.groups.iter().zip(&pull.links).enumerate() {
                if link.retired {
                    continue;
                }
                let active = pull.list.active() == Some(g);
                let state = match link.state {
                    LinkState::Linked { .. } if active => "streaming",
                    LinkState::Linked { .. }
                        if pull.standby.as_ref().is_some_and(|(s, _)| *s == g) =>
                    {
                        "standby"
                    }
                    LinkState::Linked { .. } => "linked",
                    LinkState::Idle if pull.list.order().contains(&g) => "parked",
                    LinkState::Idle => "idle",
                    LinkState::Connecting => "connecting",
                    LinkState::Waiting => "waiting",
                };
                out.push(control_protocol::UpstreamInfo {
                    app: pull.key.app().to_string(),
                    stream: pull.key.name().to_string(),
                    worker: self.id,
                    group: group.label.clone(),
                    primary: group.primary.to_string(),
                    secondary: group.secondary.to_string(),
                    address: link.attempts.address(group).0.to_string(),
                    state: state.to_string(),
                    attempts: link.attempts.failures,
                    active,
                    position: pull.list.order().iter().position(|&x| x == g),
                    since: link.since,
                    streams: Vec::new(),
                });
            }
        }
        out.extend(self.push_infos());
        out
    }

    /// An upstream event for managers (`stratactl events`): what happened to a pull's
    /// groups, by stream.
    pub(super) fn upstream_event(
        &self,
        event: &str,
        key: &StreamKey,
        addr: String,
        detail: String,
    ) {
        self.shared.control.post(ControlInbound::Event(Event {
            event: event.to_string(),
            ts: unix_now(),
            client: 0,
            addr,
            app: Some(key.app().to_string()),
            stream: Some(key.name().to_string()),
            reason: Some(detail),
            protocol: None,
        }));
        self.shared.control.wake();
    }
}
