//! Push relays (the application key `push`, as nginx-rtmp's): every stream published on
//! this worker in an application with push targets is forwarded to each of them under its
//! own name. Per target this worker opens a connection (`engine::connect`) whose `Session`
//! is in the client role; `relay::push::PushLink` connects, creates a stream and publishes.
//! Once the target says Publish.Start, the connection becomes a sink of the stream
//! (`Sink::Push`): it is sent metadata, headers and the current GOP, then every frame, all
//! through its own bounded send queue, so a slow target drops to the next key frame (and one
//! that stops reading is closed) while the publisher never waits for it.
//!
//! A push that fails (refused, the connection lost, the target gone) is tried again with
//! the relays' back-off for as long as the stream is published here; the pushes end with
//! the publish. A reload gives running pushes their application's new targets
//! (`reload_pushes`): new ones start, removed ones close, unchanged ones are not touched.

use std::collections::HashMap;

use super::port::port;
use super::*;
use crate::engine::conn::LinkConn;
use crate::engine::connect::ConnectError;
use crate::engine::slab::{Slab, SlabRef};
use crate::relay::backoff;
use crate::relay::host_ini::UpstreamGroup;
use crate::relay::push::{PushLink, PushStep};

/// How long one connect attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PushState {
    Connecting,
    /// Connected; `publishing` once the target accepted the publish.
    Linked {
        conn: ConnRef,
        publishing: bool,
    },
    /// Failed; the retry timer is armed.
    Waiting,
}

/// One stream pushed to one target.
struct Push {
    key: StreamKey,
    target: UpstreamGroup,
    state: PushState,
    /// Failed attempts since it last published.
    failures: u32,
    /// Unix time of its last change of state, for `stratactl upstreams`.
    since: f64,
}

impl Push {
    fn set(&mut self, state: PushState) {
        if std::mem::discriminant(&state) != std::mem::discriminant(&self.state)
            || matches!((state, self.state), (PushState::Linked { publishing: a, .. },
                PushState::Linked { publishing: b, .. }) if a != b)
        {
            self.since = unix_now();
        }
        self.state = state;
    }

    /// `rtmp://host:port/app[/instance]`, as the target is named in logs and listings.
    fn url(&self) -> String {
        let t = &self.target;
        match &t.instance {
            Some(instance) => format!("rtmp://{}/{}/{instance}", t.primary, t.app),
            None => format!("rtmp://{}/{}", t.primary, t.app),
        }
    }
}

/// A worker's pushes, by the slot their `Owner::Push` names and by stream.
#[derive(Default)]
pub(super) struct Pushes {
    slab: Slab<Push>,
    by_key: HashMap<StreamKey, Vec<SlabRef>>,
}

impl Worker {
    /// A client of this worker started publishing `key`: if its application pushes, a push
    /// per target starts.
    pub(super) fn start_pushes(&mut self, key: &StreamKey) {
        if self.shutting_down.is_some() || self.pushes.by_key.contains_key(key) {
            return;
        }
        let Some(app) = self
            .config
            .applications
            .iter()
            .find(|a| a.name == key.app() && !a.push_targets.is_empty())
        else {
            return;
        };
        let targets = app.push_targets.clone();
        let mut refs = Vec::with_capacity(targets.len());
        for target in targets {
            refs.push(self.pushes.slab.insert(Push {
                key: key.clone(),
                target,
                state: PushState::Waiting,
                failures: 0,
                since: unix_now(),
            }));
        }
        self.pushes.by_key.insert(key.clone(), refs.clone());
        for p in refs {
            self.push_attempt(p);
        }
    }

    /// The publish of `key` ended: its pushes end, their connections closed (after what is
    /// queued goes out).
    pub(super) fn stop_pushes(&mut self, key: &StreamKey) {
        let Some(refs) = self.pushes.by_key.remove(key) else {
            return;
        };
        for p in refs {
            let Some(push) = self.pushes.slab.remove(p) else {
                continue;
            };
            debug!(worker = self.id, stream = key.name(), target = %push.url(), "push ended");
            if let PushState::Linked { conn, .. } = push.state {
                self.close(conn, "the pushed stream's publisher stopped", false);
            }
        }
    }

    /// A reload: every pushed stream takes its application's new targets. A target that
    /// left the list is closed (the stream stops feeding it first), a new one starts
    /// pushing, and one in both lists keeps its connection as it is. A stream published
    /// here in an application that gained targets starts pushing.
    pub(super) fn reload_pushes(&mut self) {
        let keys: Vec<StreamKey> = self.pushes.by_key.keys().cloned().collect();
        for key in keys {
            let targets: Vec<UpstreamGroup> = self
                .config
                .applications
                .iter()
                .find(|a| a.name == key.app())
                .map(|a| a.push_targets.clone())
                .unwrap_or_default();
            let refs = self.pushes.by_key.remove(&key).unwrap_or_default();
            let (kept, gone): (Vec<SlabRef>, Vec<SlabRef>) = refs.into_iter().partition(|p| {
                self.pushes
                    .slab
                    .get(*p)
                    .is_some_and(|push| targets.contains(&push.target))
            });
            for p in gone {
                self.end_push(p, "its target left the application's push list");
            }
            let mut refs = kept;
            let mut started = Vec::new();
            for target in targets {
                let present = refs.iter().any(|p| {
                    self.pushes
                        .slab
                        .get(*p)
                        .is_some_and(|push| push.target == target)
                });
                if present {
                    continue;
                }
                let p = self.pushes.slab.insert(Push {
                    key: key.clone(),
                    target,
                    state: PushState::Waiting,
                    failures: 0,
                    since: unix_now(),
                });
                refs.push(p);
                started.push(p);
            }
            if !refs.is_empty() {
                self.pushes.by_key.insert(key.clone(), refs);
            }
            for p in started {
                self.push_attempt(p);
            }
        }
        // Streams published here whose application pushes only now.
        let unpushed: Vec<StreamKey> = self
            .streams
            .iter()
            .filter(|(k, s)| {
                matches!(s.source, Source::Local { .. }) && !self.pushes.by_key.contains_key(*k)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in unpushed {
            self.start_pushes(&key);
        }
    }

    /// Push `p` ends while its stream goes on: no longer a sink of the stream, its
    /// connection closed (its retry timer, if armed, finds no push).
    fn end_push(&mut self, p: SlabRef, reason: &str) {
        let Some(push) = self.pushes.slab.remove(p) else {
            return;
        };
        info!(worker = self.id, stream = push.key.name(), target = %push.url(), reason,
            "push ended");
        if let PushState::Linked { conn, .. } = push.state {
            if let Some(stream) = self.streams.get_mut(&push.key) {
                stream.remove_push(conn);
            }
            self.close(conn, reason, false);
        }
    }

    fn push_attempt(&mut self, p: SlabRef) {
        let Some(push) = self.pushes.slab.get_mut(p) else {
            return;
        };
        push.set(PushState::Connecting);
        let addr = push.target.primary.clone();
        info!(worker = self.id, stream = push.key.name(), target = %push.url(),
            attempt = push.failures + 1, "pushing");
        match addr.to_string().parse::<SocketAddr>() {
            Ok(to) => self.push_connect(p, to),
            // A hostname: resolved off this thread (`resolve.rs`), then connected.
            Err(_) => self.resolve(Owner::Push(p), addr.host.clone(), addr.port),
        }
    }

    fn push_connect(&mut self, p: SlabRef, to: SocketAddr) {
        if let Err(e) = self.connect(to, CONNECT_TIMEOUT, Owner::Push(p)) {
            self.push_failed(p, &format!("no socket for {to}: {e}"));
        }
    }

    /// The answer for an attempt at a hostname: connect, or the attempt failed.
    pub(super) fn push_resolved(&mut self, p: SlabRef, result: Result<SocketAddr, String>) {
        let connecting = self
            .pushes
            .slab
            .get(p)
            .is_some_and(|push| push.state == PushState::Connecting);
        if !connecting {
            return; // The push ended meanwhile.
        }
        match result {
            Ok(to) => self.push_connect(p, to),
            Err(why) => self.push_failed(p, &why),
        }
    }

    /// A connect of push `p` ended: the socket becomes a connection in the client role,
    /// its link publishing the stream.
    pub(super) fn push_connected(
        &mut self,
        p: SlabRef,
        to: SocketAddr,
        result: Result<Socket, ConnectError>,
    ) {
        let socket = match result {
            Ok(socket) => socket,
            Err(e) => return self.push_failed(p, &format!("connect to {to}: {e}")),
        };
        let Some(push) = self.pushes.slab.get(p) else {
            return; // The push ended meanwhile; the socket closes here.
        };
        let t = &push.target;
        let path = match &t.instance {
            Some(instance) => format!("{}/{instance}", t.app),
            None => t.app.clone(),
        };
        let link = PushLink::new(
            path.clone(),
            format!("rtmp://{to}/{path}"),
            push.key.name().to_string(),
        );
        let r = self.adopt_outbound(socket, LinkConn::Push { push: p, link });
        if let Some(push) = self.pushes.slab.get_mut(p) {
            push.set(PushState::Linked {
                conn: r,
                publishing: false,
            });
        }
        self.flush_out(r);
    }

    /// What the target said on push connection `r`.
    pub(super) fn on_push_event(&mut self, r: ConnRef, ev: SessionEvent) {
        let Some(c) = self.conns.get_mut(r) else {
            return;
        };
        let Some(LinkConn::Push { push, link }) = c.upstream.as_deref_mut() else {
            return;
        };
        let p = *push;
        match link.on_event(&mut c.session, ev, &mut c.out) {
            PushStep::Nothing => {}
            PushStep::Publishing { stream_id } => self.push_publishing(p, r, stream_id),
            PushStep::Failed(reason) => self.close(r, &reason, true),
        }
    }

    /// The target accepted the publish: the connection becomes a sink of the stream.
    fn push_publishing(&mut self, p: SlabRef, r: ConnRef, stream_id: u32) {
        let Some(push) = self.pushes.slab.get_mut(p) else {
            return self.close(r, "its push ended", false);
        };
        push.set(PushState::Linked {
            conn: r,
            publishing: true,
        });
        push.failures = 0;
        let (key, url) = (push.key.clone(), push.url());
        info!(worker = self.id, stream = key.name(), target = %url, "push publishing");
        let mut port = port!(self);
        if let Some(stream) = self.streams.get_mut(&key) {
            stream.add_push(r, stream_id, &mut port);
        }
        self.upstream_event("push_connected", &key, url, "the target publishes".into());
    }

    /// Push connection `r` closed (by either side, or too slow).
    pub(super) fn push_closed(&mut self, r: ConnRef, p: SlabRef, reason: &str) {
        let Some(push) = self.pushes.slab.get(p) else {
            return;
        };
        if !matches!(push.state, PushState::Linked { conn, .. } if conn == r) {
            return;
        }
        let key = push.key.clone();
        if let Some(stream) = self.streams.get_mut(&key) {
            stream.remove_push(r);
        }
        self.push_failed(p, reason);
    }

    /// An attempt or the connection of push `p` failed: tried again after back-off while
    /// the stream is published here.
    fn push_failed(&mut self, p: SlabRef, reason: &str) {
        if self.shutting_down.is_some() {
            return;
        }
        let Some(push) = self.pushes.slab.get_mut(p) else {
            return;
        };
        push.set(PushState::Waiting);
        push.failures += 1;
        let delay = backoff::delay(push.failures);
        let (key, url, failures) = (push.key.clone(), push.url(), push.failures);
        warn!(worker = self.id, stream = key.name(), target = %url, failures, reason,
            retry_in_ms = delay.as_millis() as u64, "push failed");
        self.timers
            .arm_for(Owner::Push(p), Instant::now() + delay, TimerKind::Retry);
        let detail = format!("{reason}; attempt {failures} failed, retry in {delay:?}");
        self.upstream_event("push_failed", &key, url, detail);
    }

    pub(super) fn push_timer(&mut self, p: SlabRef, kind: TimerKind) {
        debug_assert_eq!(kind, TimerKind::Retry, "a push arms only retries");
        let waiting = self
            .pushes
            .slab
            .get(p)
            .is_some_and(|push| push.state == PushState::Waiting);
        if waiting && self.shutting_down.is_none() {
            self.push_attempt(p);
        }
    }

    /// Every push of this worker, for `stratactl upstreams`: the group is `push <target>`,
    /// active while the target publishes.
    pub(super) fn push_infos(&self) -> Vec<control_protocol::UpstreamInfo> {
        let mut out = Vec::new();
        for p in self.pushes.by_key.values().flatten() {
            let Some(push) = self.pushes.slab.get(*p) else {
                continue;
            };
            let state = match push.state {
                PushState::Connecting => "connecting",
                PushState::Linked {
                    publishing: false, ..
                } => "linked",
                PushState::Linked {
                    publishing: true, ..
                } => "publishing",
                PushState::Waiting => "waiting",
            };
            let address = push.target.primary.to_string();
            out.push(control_protocol::UpstreamInfo {
                app: push.key.app().to_string(),
                stream: push.key.name().to_string(),
                worker: self.id,
                group: format!("push {}", push.url()),
                primary: address.clone(),
                secondary: address.clone(),
                address,
                state: state.to_string(),
                attempts: push.failures,
                active: matches!(
                    push.state,
                    PushState::Linked {
                        publishing: true,
                        ..
                    }
                ),
                position: None,
                since: push.since,
                streams: Vec::new(),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::worker::testing::{turn_until, worker};
    use std::io::{ErrorKind, Read};
    use std::net::{TcpListener, TcpStream};

    fn pushing_to(targets: &[SocketAddr]) -> Arc<Config> {
        let list: Vec<String> = targets
            .iter()
            .map(|t| format!("\"rtmp://{t}/live\""))
            .collect();
        let text = format!(
            "[[application]]\nname = \"live\"\npush = [{}]\n",
            list.join(", ")
        );
        let mut config = Config::parse(&text, "test").expect("config");
        config.server.listen = Vec::new();
        Arc::new(config)
    }

    /// The connected pushes: target address and connection.
    fn linked(w: &Worker) -> Vec<(String, ConnRef)> {
        let mut out: Vec<_> = w
            .pushes
            .by_key
            .values()
            .flatten()
            .filter_map(|p| w.pushes.slab.get(*p))
            .filter_map(|push| match push.state {
                PushState::Linked { conn, .. } => Some((push.target.primary.to_string(), conn)),
                _ => None,
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    fn accept(l: &TcpListener) -> TcpStream {
        let (s, _) = l.accept().expect("accept");
        s.set_nonblocking(true).expect("nonblocking");
        s
    }

    /// Reads what is there; true once the far end closed.
    fn ended(s: &mut TcpStream) -> bool {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
                Err(_) => return true,
            }
        }
    }

    #[test]
    fn a_reload_connects_new_targets_closes_removed_ones_and_keeps_the_rest() {
        let listeners: Vec<TcpListener> = (0..3)
            .map(|_| TcpListener::bind("127.0.0.1:0").expect("listen"))
            .collect();
        let addrs: Vec<SocketAddr> = listeners
            .iter()
            .map(|l| l.local_addr().expect("addr"))
            .collect();
        let (mut w, _control) = worker();
        w.config = pushing_to(&addrs[..2]);
        let key = StreamKey::new("live", "_definst_", "cam");
        w.start_pushes(&key);
        turn_until(&mut w, |w| linked(w).len() == 2);
        let mut removed = accept(&listeners[0]);
        let mut kept = accept(&listeners[1]);
        let kept_conn = linked(&w)
            .into_iter()
            .find(|(a, _)| *a == addrs[1].to_string())
            .expect("the push to the kept target")
            .1;

        w.reload(pushing_to(&[addrs[1], addrs[2]]));
        let mut expected = vec![addrs[1].to_string(), addrs[2].to_string()];
        expected.sort();
        turn_until(&mut w, |w| {
            linked(w).into_iter().map(|(a, _)| a).collect::<Vec<_>>() == expected
                && ended(&mut removed)
        });
        // The new target was dialled; the removed one's connection ended (above).
        let _new = accept(&listeners[2]);
        // The kept target: the same connection, still open, and not dialled again.
        assert!(linked(&w).contains(&(addrs[1].to_string(), kept_conn)));
        assert!(!ended(&mut kept), "the kept push was closed");
        listeners[1].set_nonblocking(true).expect("nonblocking");
        assert!(
            matches!(listeners[1].accept(), Err(e) if e.kind() == ErrorKind::WouldBlock),
            "the kept target was dialled again"
        );

        // A reload that removes every target ends the stream's pushes.
        w.reload(pushing_to(&[]));
        turn_until(&mut w, |w| linked(w).is_empty() && ended(&mut kept));
        assert!(w.pushes.by_key.is_empty());
    }
}
