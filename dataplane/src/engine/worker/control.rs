//! The worker's side of the control socket: events, answers to queries, reload, and the
//! auth hooks (a command waits for the manager while the rest of the worker streams on).

use control_protocol::{AuthRequest, ClientInfo, Event, StreamInfo};

use super::port::port;
use super::*;
use crate::app::gate::{needs_decision, Next};
use crate::app::net_connection::{StreamState, DEFAULT_INSTANCE};
use crate::app::net_stream::{self, Refused};
use crate::config::{AuthAction, AuthDefault};

impl Worker {
    /// Tells the control thread (and any subscribed manager) what happened to a client.
    pub(super) fn emit(&self, event: &str, r: ConnRef, stream: Option<&str>, reason: Option<&str>) {
        let Some(c) = self.conns.get(r) else {
            return;
        };
        self.shared.control.post(ControlInbound::Event(Event {
            event: event.to_string(),
            ts: unix_now(),
            client: c.client.id,
            addr: c.peer.to_string(),
            app: (!c.client.nc.app.is_empty()).then(|| c.client.nc.app.clone()),
            stream: stream.map(str::to_string),
            reason: reason.map(str::to_string),
            protocol: Some(if c.rtmfp.is_some() { "rtmfp" } else { "rtmp" }.into()),
        }));
        self.shared.control.wake();
    }

    /// Session events go to the application unless a command of this connection waits for
    /// authorization: then they wait too, in order.
    pub(super) fn on_event_or_defer(&mut self, r: ConnRef, ev: SessionEvent) {
        let Some(c) = self.conns.get_mut(r) else {
            return;
        };
        if !c.client.gate.is_waiting() {
            self.on_session_event(r, ev);
            return;
        }
        if c.client.gate.defer_event(ev).is_err() {
            self.close(
                r,
                "too many messages while a command waits for authorization",
                true,
            );
        }
    }

    pub(super) fn answer_query(&mut self, query: u64, ask: Query) {
        let answer = match ask {
            Query::CallClient {
                client,
                method,
                args,
                timeout_ms,
            } => match self.call_for_query(query, client, &method, &args, timeout_ms) {
                Some(now) => now,
                // Answered when the client answers (or its call times out).
                None => return,
            },
            Query::Broadcast {
                app,
                instance,
                method,
                args,
            } => self.broadcast(&app, instance.as_deref(), &method, &args),
            Query::Streams => {
                let mut streams = self.stream_infos();
                streams.extend(self.vod_stream_infos());
                Answer::Streams(streams)
            }
            Query::Clients => Answer::Clients(self.client_infos()),
            Query::Upstreams => Answer::Upstreams(self.upstream_infos()),
            Query::UpstreamLinks => Answer::Upstreams(self.registration_infos()),
            Query::VodDurations => Answer::VodDurations(self.vod.durations()),
            Query::Kick { client } => {
                let target = self
                    .conns
                    .refs()
                    .into_iter()
                    .find(|r| self.conns.get(*r).is_some_and(|c| c.client.id == client));
                if let Some(r) = target {
                    self.close(r, "kicked by operator", false);
                    self.maybe_free(r);
                }
                Answer::Found(target.is_some())
            }
            Query::StopStream { stream } => {
                let publisher = self
                    .streams
                    .iter()
                    .filter(|(key, _)| key.is_named(&stream, DEFAULT_INSTANCE))
                    .find_map(|(_, s)| match s.source {
                        Source::Local { publisher, .. } => Some(publisher),
                        _ => None,
                    });
                if let Some(r) = publisher {
                    self.close(r, "stream stopped by operator", false);
                    self.maybe_free(r);
                }
                Answer::Found(publisher.is_some())
            }
            Query::So(call) => Answer::SharedObjects(self.so_operator(call)),
        };
        self.shared
            .control
            .post(ControlInbound::Answer { query, answer });
        self.shared.control.wake();
    }

    fn stream_infos(&self) -> Vec<StreamInfo> {
        self.streams
            .iter()
            .map(|(key, s)| {
                let local = s.source.here().is_some();
                StreamInfo {
                    app: key.app().to_string(),
                    instance: key.instance().to_string(),
                    name: key.name().to_string(),
                    publisher: s
                        .stats
                        .publisher
                        .as_ref()
                        .filter(|_| local)
                        .map(|(_, a)| a.clone()),
                    publisher_client: s
                        .stats
                        .publisher
                        .as_ref()
                        .filter(|_| local)
                        .map(|(id, _)| *id),
                    video_codec: s.stats.video_codec.clone(),
                    audio_codec: s.stats.audio_codec.clone(),
                    bitrate_in: if local { s.stats.rate_in } else { 0.0 },
                    bitrate_out: s.stats.rate_out,
                    viewers: s.viewer_count() as u64,
                    gop_frames: s.gop.gop_len().0 as u64,
                    since: if local { s.stats.since } else { 0.0 },
                    recording: self.recordings.path_of(key),
                    multicast: self.multicasts.reports(key),
                }
            })
            .collect()
    }

    fn client_infos(&self) -> Vec<ClientInfo> {
        self.conns
            .refs()
            .into_iter()
            .filter_map(|r| self.conns.get(r).map(|c| (r, c)))
            .map(|(r, c)| (r, c, self.rtmfp_info(c)))
            .map(|(r, c, rtmfp)| ClientInfo {
                id: c.client.id,
                addr: c.peer.to_string(),
                protocol: if rtmfp.is_some() { "rtmfp" } else { "rtmp" }.into(),
                app: (!c.client.nc.app.is_empty()).then(|| c.client.nc.app.clone()),
                worker: self.id,
                publishing: c
                    .client
                    .nc
                    .streams()
                    .filter_map(|(_, s)| match s {
                        StreamState::Publishing(k) if self.publishes(r, k) => Some(k.to_string()),
                        _ => None,
                    })
                    .collect(),
                playing: c
                    .client
                    .nc
                    .streams()
                    .filter_map(|(_, s)| match s {
                        StreamState::Playing(k) => Some(k.to_string()),
                        _ => None,
                    })
                    .collect(),
                bytes_in: c.session.bytes_in(),
                bytes_out: c.bytes_out,
                lag_ms: u64::from(c.queue.lag_ms()),
                since: c.since,
                peer_id: rtmfp.as_ref().map(|(id, _)| id.clone()),
                rtt_ms: rtmfp.and_then(|(_, rtt)| rtt),
            })
            .collect()
    }

    /// Whether `r` holds the claim on `key` (not just asked for it).
    fn publishes(&self, r: ConnRef, key: &StreamKey) -> bool {
        self.streams
            .get(key)
            .is_some_and(|s| matches!(s.source, Source::Local { publisher, .. } if publisher == r))
    }

    /// A new configuration: new clients see it at once; listeners follow `server.listen`;
    /// existing connections keep what they resolved at connect time.
    pub(super) fn reload(&mut self, config: Arc<Config>) {
        let wanted = &config.server.listen;
        for i in 0..self.listeners.len() {
            let remove = matches!(&self.listeners[i], Some(l) if !wanted.contains(&l.addr));
            if remove {
                if let Some(l) = self.listeners[i].take() {
                    info!(worker = self.id, addr = %l.addr, "listener removed");
                }
                let token =
                    Token::new(OpKind::Accept, LISTENER_SLOT_BASE + i as u32, 0).to_user_data();
                let e = opcode::AsyncCancel::new(token)
                    .build()
                    .user_data(Token::new(OpKind::Cancel, 0, 0).to_user_data());
                // SAFETY: no buffers. The kernel keeps the listening socket alive until the
                // cancelled accept completes, so dropping our descriptor now is safe.
                unsafe { self.io.push(e) };
            }
        }
        for addr in wanted {
            if self.listeners.iter().flatten().any(|l| l.addr == *addr) {
                continue;
            }
            match super::super::listener::tcp_listener(*addr, config.server.listen_backlog) {
                Ok(socket) => {
                    self.listeners.push(Some(Listener {
                        addr: *addr,
                        socket,
                    }));
                    self.arm_accept(self.listeners.len() - 1);
                    info!(worker = self.id, %addr, "listener added");
                }
                Err(e) => warn!(worker = self.id, %addr, error = %e, "cannot add listener"),
            }
        }
        if self.id == 0
            && config.live.send_zerocopy
            && !self.config.live.send_zerocopy
            && !self.io.send_zc
        {
            warn_no_zerocopy();
        }
        let old = std::mem::replace(&mut self.config, config);
        self.reload_rtmfp();
        self.reload_registrations(&old);
        self.reload_pulls();
        self.reload_pushes();
    }

    /// Runs `action` now, or first asks the manager when the configuration says so.
    pub(super) fn apply(&mut self, r: ConnRef, action: Action) {
        let Some(c) = self.conns.get_mut(r) else {
            return;
        };
        if c.client.gate.is_waiting() {
            c.client.gate.defer_action(action);
            return;
        }
        if let Some(why) = self.script_refuses(r, &action) {
            return self.refuse(r, action, &why);
        }
        match needs_decision(&action, &self.config.auth) {
            Some(kind) => self.request_auth(r, kind, action),
            None => self.apply_now(r, action),
        }
    }

    fn request_auth(&mut self, r: ConnRef, kind: AuthAction, action: Action) {
        let default_allows = self.config.auth.default == AuthDefault::Allow;
        if !self.shared.auth_manager.load(Ordering::Relaxed) {
            return self.auth_resolved(
                r,
                action,
                default_allows,
                "no manager is registered; default applied",
            );
        }
        let Some(c) = self.conns.get_mut(r) else {
            return;
        };
        let (stream, query) = match &action {
            Action::StartPublish { key, query, .. } => {
                (Some(key.name().to_string()), query.clone())
            }
            Action::StartPlay { key, params, .. } => (
                Some(key.name().to_string()),
                crate::app::net_connection::query_of(&params.name),
            ),
            _ => (None, c.client.nc.connect_query.clone()),
        };
        let request = self.shared.next_auth_id.fetch_add(1, Ordering::Relaxed);
        let auth = AuthRequest {
            request,
            action: match kind {
                AuthAction::Connect => "connect",
                AuthAction::Publish => "publish",
                AuthAction::Play => "play",
            }
            .to_string(),
            client: c.client.id,
            addr: c.peer.to_string(),
            app: c.client.nc.app.clone(),
            stream,
            query,
            tc_url: c.client.nc.tc_url.clone(),
        };
        c.client.gate.wait(request, action);
        self.pending_auth.insert(request, r);
        self.timers.arm(Timer {
            at: Instant::now() + Duration::from_millis(self.config.auth.timeout_ms),
            slot: r.slot,
            generation: r.generation,
            kind: TimerKind::Auth(request),
        });
        self.shared.control.post(ControlInbound::Auth {
            worker: self.id,
            request: auth,
        });
        self.shared.control.wake();
    }

    pub(super) fn auth_decided(&mut self, request: u64, allow: bool, reason: Option<String>) {
        let Some(r) = self.pending_auth.remove(&request) else {
            return;
        };
        let Some(action) = self
            .conns
            .get_mut(r)
            .and_then(|c| c.client.gate.decided(request))
        else {
            return;
        };
        let reason = reason.unwrap_or_else(|| {
            if allow {
                "allowed"
            } else {
                "denied by the manager"
            }
            .into()
        });
        self.auth_resolved(r, action, allow, &reason);
    }

    pub(super) fn auth_timed_out(&mut self, r: ConnRef, request: u64) {
        let Some(action) = self
            .conns
            .get_mut(r)
            .and_then(|c| c.client.gate.decided(request))
        else {
            return;
        };
        self.pending_auth.remove(&request);
        let allow = self.config.auth.default == AuthDefault::Allow;
        self.auth_resolved(
            r,
            action,
            allow,
            "the manager did not answer in time; default applied",
        );
    }

    /// Carries out (or refuses) the waiting command, then what queued up behind it.
    pub(super) fn auth_resolved(&mut self, r: ConnRef, action: Action, allow: bool, reason: &str) {
        if allow {
            self.apply_now(r, action);
        } else {
            self.refuse(r, action, reason);
        }
        loop {
            let Some(c) = self.conns.get_mut(r) else {
                return;
            };
            if c.closing != Closing::Open {
                break;
            }
            match c.client.gate.next_up() {
                Some(Next::Action(a)) => self.apply(r, a),
                Some(Next::Event(ev)) => self.on_session_event(r, ev),
                None => break,
            }
        }
        self.flush_out(r);
    }

    fn refuse(&mut self, r: ConnRef, action: Action, reason: &str) {
        let Some(c) = self.conns.get(r) else {
            return;
        };
        let (peer, what) = (c.peer, action_name(&action));
        let stream = match &action {
            Action::StartPublish { key, .. } | Action::StartPlay { key, .. } => Some(key.name()),
            _ => None,
        };
        info!(%peer, stream, reason, "{what} refused");
        match net_stream::refuse(&mut port!(self), r, action, reason) {
            Refused::Close(why) => self.close(r, &why, false),
            Refused::StreamIdle(stream_id) => {
                if let Some(c) = self.conns.get_mut(r) {
                    c.client.nc.stream_idle(stream_id);
                }
            }
            Refused::NotGated(other) => self.apply_now(r, other),
        }
    }
}

fn action_name(action: &Action) -> &'static str {
    match action {
        Action::Accepted { .. } => "connect",
        Action::StartPublish { .. } => "publish",
        Action::StartPlay { .. } => "play",
        _ => "action",
    }
}
