//! Standing links from an intermediate or edge application to each of its upstream groups,
//! as the seed's children keep them: opened when the server starts (by worker 0, for the
//! whole server), registered with FCAddChild (`relay::registration`), and kept: the lists of
//! active publishers they bring (addStream / removeStream) go to the shared
//! `relay::catalog::Catalog`. A link that drops or is refused is retried with the relays'
//! back-off and the reconnect rule (3 attempts at a group's primary, then its secondary);
//! while it is down its group's list is unknown.
//!
//! What the lists are for: a play or subscribe for a name no group lists (every group
//! registered) is answered at once (StreamNotFound to a subscriber; a player waits for the
//! publisher) instead of dialling every group, and a name that appears in a list starts the
//! pull for viewers waiting for it (`catalog_changed`, on every worker). An intermediate
//! tells its own children of the names its upstreams list (the union), so the lists go
//! down the tiers.
//!
//! A reload that changes an application's host.ini groups closes its links and opens the
//! new groups' (the lists start over); running pulls keep the groups they started with.

use super::*;
use crate::engine::conn::LinkConn;
use crate::engine::connect::ConnectError;
use crate::engine::slab::{Slab, SlabRef};
use crate::relay::backoff;
use crate::relay::catalog::{Change, Known};
use crate::relay::failover::Attempts;
use crate::relay::host_ini::UpstreamGroup;
use crate::relay::registration::{ChildLink, RegistrationStep};
use crate::relay::tier;

/// How long one connect attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RegState {
    Connecting,
    Linked {
        conn: ConnRef,
        registered: bool,
    },
    /// Failed; the retry timer is armed.
    Waiting,
}

/// One application's standing link to one of its upstream groups.
struct Registration {
    app: String,
    /// The group's index in the application's host.ini.
    g: usize,
    group: UpstreamGroup,
    state: RegState,
    attempts: Attempts,
    /// Unix time of its last change of state, for `stratactl upstreams`.
    since: f64,
}

impl Registration {
    fn set(&mut self, state: RegState) {
        if state != self.state {
            self.since = unix_now();
        }
        self.state = state;
    }
}

/// How long a subscribe for a name no list has waits before StreamNotFound: the lists
/// trail the upstreams by a message (an origin's addStream for a publisher that just
/// started may still be on its way), and a subscriber must not be told "not found" for it.
const LIST_GRACE: Duration = Duration::from_millis(150);

/// Worker 0's standing links; on every worker, its subscribes waiting out `LIST_GRACE`.
#[derive(Default)]
pub(super) struct Registrations {
    slab: Slab<Registration>,
    all: Vec<SlabRef>,
    unlisted: Vec<(StreamKey, Instant)>,
}

impl Worker {
    /// At start (worker 0): a link per group of every application with a tier role that
    /// has upstreams.
    pub(super) fn start_registrations(&mut self) {
        if self.id != 0 {
            return;
        }
        let apps: Vec<(String, Vec<UpstreamGroup>)> = self
            .config
            .applications
            .iter()
            .filter(|a| a.role.is_some_and(|r| r.has_upstreams()) && !a.upstreams.is_empty())
            .map(|a| (a.name.clone(), a.upstreams.clone()))
            .collect();
        for (app, groups) in apps {
            self.register_app(&app, groups);
        }
    }

    fn register_app(&mut self, app: &str, groups: Vec<UpstreamGroup>) {
        let changes = self.catalog().set_groups(app, groups.len());
        self.post_catalog(app, changes);
        for (g, group) in groups.into_iter().enumerate() {
            let r = self.registrations.slab.insert(Registration {
                app: app.to_string(),
                g,
                group,
                state: RegState::Waiting,
                attempts: Attempts::default(),
                since: unix_now(),
            });
            self.registrations.all.push(r);
            self.register_attempt(r);
        }
    }

    /// A reload (worker 0): applications whose groups changed (or that lost their role)
    /// close their links and start over with the new groups.
    pub(super) fn reload_registrations(&mut self, old: &Config) {
        if self.id != 0 {
            return;
        }
        let groups_of = |c: &Config, app: &str| {
            c.applications
                .iter()
                .find(|a| a.name == app && a.role.is_some_and(|r| r.has_upstreams()))
                .map(|a| a.upstreams.clone())
                .filter(|u| !u.is_empty())
        };
        let mut apps: Vec<String> = old
            .applications
            .iter()
            .chain(&self.config.applications)
            .map(|a| a.name.clone())
            .collect();
        apps.sort();
        apps.dedup();
        for app in apps {
            let (before, after) = (groups_of(old, &app), groups_of(&self.config, &app));
            if before == after {
                continue;
            }
            info!(%app, "upstream groups changed: links start over");
            self.end_registrations(&app);
            match after {
                Some(groups) => self.register_app(&app, groups),
                None => {
                    let changes = self.catalog().remove_app(&app);
                    self.post_catalog(&app, changes);
                }
            }
        }
    }

    fn end_registrations(&mut self, app: &str) {
        let (ours, rest): (Vec<SlabRef>, Vec<SlabRef>) =
            self.registrations.all.iter().partition(|r| {
                self.registrations
                    .slab
                    .get(**r)
                    .is_some_and(|reg| reg.app == app)
            });
        self.registrations.all = rest;
        for r in ours {
            if let Some(reg) = self.registrations.slab.remove(r) {
                if let RegState::Linked { conn, .. } = reg.state {
                    self.close(conn, "the upstream groups changed", false);
                }
            }
        }
    }

    fn register_attempt(&mut self, r: SlabRef) {
        let Some(reg) = self.registrations.slab.get_mut(r) else {
            return;
        };
        reg.set(RegState::Connecting);
        let (addr, secondary) = reg.attempts.address(&reg.group);
        let addr = addr.clone();
        debug!(app = %reg.app, group = %reg.group.label, to = %addr,
            which = if secondary { "secondary" } else { "primary" },
            attempt = reg.attempts.failures + 1, "registering with upstream");
        match addr.to_string().parse::<SocketAddr>() {
            Ok(to) => self.register_connect(r, to),
            Err(_) => self.resolve(Owner::Registration(r), addr.host.clone(), addr.port),
        }
    }

    fn register_connect(&mut self, r: SlabRef, to: SocketAddr) {
        if let Err(e) = self.connect(to, CONNECT_TIMEOUT, Owner::Registration(r)) {
            self.registration_failed(r, &format!("no socket for {to}: {e}"));
        }
    }

    pub(super) fn registration_resolved(&mut self, r: SlabRef, result: Result<SocketAddr, String>) {
        let connecting = self
            .registrations
            .slab
            .get(r)
            .is_some_and(|reg| reg.state == RegState::Connecting);
        if !connecting {
            return;
        }
        match result {
            Ok(to) => self.register_connect(r, to),
            Err(why) => self.registration_failed(r, &why),
        }
    }

    pub(super) fn registration_connected(
        &mut self,
        r: SlabRef,
        to: SocketAddr,
        result: Result<Socket, ConnectError>,
    ) {
        let socket = match result {
            Ok(socket) => socket,
            Err(e) => return self.registration_failed(r, &format!("connect to {to}: {e}")),
        };
        let Some(reg) = self.registrations.slab.get(r) else {
            return;
        };
        let path = match &reg.group.instance {
            Some(instance) => format!("{}/{instance}", reg.group.app),
            None => reg.group.app.clone(),
        };
        let link = ChildLink::new(path.clone(), format!("rtmp://{to}/{path}"));
        let conn = self.adopt_outbound(socket, LinkConn::Child { reg: r, link });
        if let Some(reg) = self.registrations.slab.get_mut(r) {
            reg.set(RegState::Linked {
                conn,
                registered: false,
            });
        }
        self.flush_out(conn);
    }

    /// What the upstream said on standing link `conn`.
    pub(super) fn on_child_event(&mut self, conn: ConnRef, ev: SessionEvent) {
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        let Some(LinkConn::Child { reg, link }) = c.upstream.as_deref_mut() else {
            return;
        };
        let r = *reg;
        let step = link.on_event(&mut c.session, ev, &mut c.out);
        let Some(registration) = self.registrations.slab.get_mut(r) else {
            return self.close(conn, "its application's groups changed", false);
        };
        let (app, g) = (registration.app.clone(), registration.g);
        match step {
            RegistrationStep::Nothing => {}
            RegistrationStep::Registered => {
                registration.set(RegState::Linked {
                    conn,
                    registered: true,
                });
                registration.attempts.succeeded();
                let label = registration.group.label.clone();
                let addr = self.conns.get(conn).map(|c| c.peer.to_string());
                info!(%app, group = %label, addr = ?addr, "registered with upstream (FCAddChild)");
                self.catalog().registered(&app, g);
                let key = StreamKey::new(&app, "_definst_", "");
                let detail = format!("group {label} registered; its list is kept");
                self.upstream_event(
                    "upstream_registered",
                    &key,
                    addr.unwrap_or_default(),
                    detail,
                );
            }
            RegistrationStep::Stream { name, live } => {
                debug!(%app, group = g, name, live, "upstream list changed");
                let change = self.catalog().stream(&app, g, &name, live);
                match change {
                    Ok(change) => self.post_catalog(&app, change.into_iter().collect()),
                    Err(why) => self.close(conn, &format!("upstream list refused: {why}"), true),
                }
            }
            RegistrationStep::Failed(reason) => self.close(conn, &reason, true),
        }
    }

    /// Standing link `conn` closed (by either side).
    pub(super) fn registration_closed(&mut self, conn: ConnRef, r: SlabRef, reason: &str) {
        let linked =
            self.registrations.slab.get(r).is_some_and(
                |reg| matches!(reg.state, RegState::Linked { conn: c, .. } if c == conn),
            );
        if linked {
            self.registration_failed(r, reason);
        }
    }

    fn registration_failed(&mut self, r: SlabRef, reason: &str) {
        if self.shutting_down.is_some() {
            return;
        }
        let Some(reg) = self.registrations.slab.get_mut(r) else {
            return;
        };
        reg.set(RegState::Waiting);
        reg.attempts.failed();
        let delay = backoff::delay(reg.attempts.failures);
        let (app, g, failures) = (reg.app.clone(), reg.g, reg.attempts.failures);
        warn!(%app, group = %reg.group.label, failures, reason,
            retry_in_ms = delay.as_millis() as u64, "upstream registration failed");
        self.timers.arm_for(
            Owner::Registration(r),
            Instant::now() + delay,
            TimerKind::Retry,
        );
        let changes = self.catalog().lost(&app, g);
        self.post_catalog(&app, changes);
    }

    pub(super) fn registration_timer(&mut self, r: SlabRef, kind: TimerKind) {
        debug_assert_eq!(kind, TimerKind::Retry, "a registration arms only retries");
        let waiting = self
            .registrations
            .slab
            .get(r)
            .is_some_and(|reg| reg.state == RegState::Waiting);
        if waiting && self.shutting_down.is_none() {
            self.register_attempt(r);
        }
    }

    /// The lists' changes go to every worker (this one included).
    fn post_catalog(&mut self, app: &str, changes: Vec<Change>) {
        for change in changes {
            for w in 0..self.shared.mailboxes.len() {
                let msg = WorkerMsg::UpstreamCatalog {
                    app: app.to_string(),
                    name: change.name.clone(),
                    live: change.live,
                };
                if w != self.id {
                    self.post(w, msg);
                }
            }
            self.catalog_changed(app, &change.name, change.live);
        }
    }

    /// A name appeared in (or left) the upstreams' lists of `app`: this worker's children
    /// of `app` hear addStream / removeStream, and if it appeared, viewers and subscribers
    /// waiting for it get their pull.
    pub(super) fn catalog_changed(&mut self, app: &str, name: &str, live: bool) {
        let conns = &self.conns;
        self.children
            .retain(|r| conns.get(*r).is_some_and(|c| c.closing == Closing::Open));
        for r in self.children.clone() {
            if self.conns.get(r).is_some_and(|c| c.client.nc.app == app) {
                if let Some(c) = self.conns.get_mut(r) {
                    c.write_command(0, &tier::stream_notice(live, name));
                }
                self.flush_out(r);
            }
        }
        if !live {
            return;
        }
        let waiting: Vec<StreamKey> = self
            .streams
            .iter()
            .filter(|(k, s)| k.app() == app && k.name() == name && !s.is_live())
            .map(|(k, _)| k.clone())
            .chain(
                self.subscribers
                    .iter()
                    .filter(|(_, k)| k.app() == app && k.name() == name)
                    .map(|(_, k)| k.clone()),
            )
            .collect();
        for key in waiting {
            self.maybe_pull(&key);
        }
    }

    /// A subscribe for `key`, which no list has: answered StreamNotFound after
    /// `LIST_GRACE` unless a list gains it meanwhile (then `catalog_changed` pulls it).
    pub(super) fn subscribe_unlisted(&mut self, key: StreamKey) {
        let due = Instant::now() + LIST_GRACE;
        self.registrations.unlisted.push((key, due));
        self.timers
            .arm_for(Owner::Worker, due, TimerKind::ListGrace);
    }

    pub(super) fn list_grace_over(&mut self, now: Instant) {
        let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.registrations.unlisted)
            .into_iter()
            .partition(|(_, at)| *at <= now);
        self.registrations.unlisted = waiting;
        for (key, _) in due {
            if !self.subscribed(&key) {
                continue;
            }
            match self.upstreams_know(&key) {
                Known::Absent => self.subscribers_not_found(&key),
                Known::Listed | Known::Unknown => self.maybe_pull(&key),
            }
        }
    }

    /// What the lists say about `key` (a pull for a name no registered group lists is not
    /// started).
    pub(super) fn upstreams_know(&self, key: &StreamKey) -> Known {
        self.catalog().lookup(key.app(), key.name())
    }

    /// The names `app`'s upstreams list, for a child registering with this intermediate.
    pub(super) fn upstream_names(&self, app: &str) -> Vec<String> {
        self.catalog().union(app).into_iter().collect()
    }

    fn catalog(&self) -> std::sync::MutexGuard<'_, crate::relay::catalog::Catalog> {
        // A worker that panicked while holding it left plain data: still usable.
        self.shared
            .catalog
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Worker 0's standing links, for `stratactl upstreams`: stream `*`, the group's list
    /// in `streams`, active while registered.
    pub(super) fn registration_infos(&self) -> Vec<control_protocol::UpstreamInfo> {
        let mut out = Vec::new();
        for r in &self.registrations.all {
            let Some(reg) = self.registrations.slab.get(*r) else {
                continue;
            };
            let (state, registered) = match reg.state {
                RegState::Connecting => ("connecting", false),
                RegState::Linked {
                    registered: false, ..
                } => ("linked", false),
                RegState::Linked {
                    registered: true, ..
                } => ("registered", true),
                RegState::Waiting => ("waiting", false),
            };
            out.push(control_protocol::UpstreamInfo {
                app: reg.app.clone(),
                stream: "*".into(),
                worker: self.id,
                group: reg.group.label.clone(),
                primary: reg.group.primary.to_string(),
                secondary: reg.group.secondary.to_string(),
                address: reg.attempts.address(&reg.group).0.to_string(),
                state: state.to_string(),
                attempts: reg.attempts.failures,
                active: registered,
                position: None,
                since: reg.since,
                streams: self.catalog().names(&reg.app, reg.g),
            });
        }
        out
    }
}
