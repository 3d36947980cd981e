//! The worker's side of application scripts (`crate::scripts`): a connect to a scripted
//! application waits in the client's gate while the script thread runs onConnect; calls
//! to script methods go there by request id; what a script asks of a client (calls,
//! disconnect, broadcast, the instance's shutdown) comes back through the mailbox. The
//! worker never waits for the script thread.

use control_protocol::CALL_FAILED;
use serde_json::{json, Value};

use super::*;
use crate::app::access::Access;
use crate::app::instance::InstanceKey;
use crate::app::rpc;
use crate::proto::amf_json;
use crate::scripts::{FromScripts, ToScripts};

/// How long a script's `client.call` waits for the client's answer.
const SCRIPT_CALL_TIMEOUT: Duration = Duration::from_secs(30);

impl Worker {
    /// The client's application has a script, and the client is not admitted by it yet:
    /// the connect waits for onConnect (None); otherwise the action comes back.
    pub(super) fn script_connect(&mut self, r: ConnRef, action: Action) -> Option<Action> {
        let Some(scripts) = self.shared.scripts.as_ref() else {
            return Some(action);
        };
        let Some(c) = self.conns.get_mut(r) else {
            return Some(action);
        };
        if self.script_clients.contains_key(&c.client.id) || !scripts.has_app(&c.client.nc.app) {
            return Some(action);
        }
        let request = self.shared.next_auth_id.fetch_add(1, Ordering::Relaxed);
        let nc = &c.client.nc;
        let info = nc.connect_info.as_deref();
        let text = |v: Option<&String>| v.map_or(Value::Null, |s| Value::String(s.clone()));
        let client = json!({
            "id": c.client.id,
            "ip": c.peer.ip().to_string(),
            "agent": text(info.and_then(|i| i.flash_ver.as_ref())),
            "referrer": text(info.and_then(|i| i.swf_url.as_ref())),
            "pageUrl": text(info.and_then(|i| i.page_url.as_ref())),
            "uri": text(nc.tc_url.as_ref()),
            "protocol": "rtmp",
            // What the connect preamble told the client it may send (Set Peer Bandwidth).
            "peerBandwidth": self.config.server.peer_bandwidth,
            "objectEncoding": nc.object_encoding,
        });
        let args = info
            .map(|i| i.args.iter().map(amf_json::to_json).collect())
            .unwrap_or_default();
        let msg = ToScripts::Connect {
            worker: self.id,
            request,
            instance: InstanceKey::new(&nc.app, &nc.instance),
            client,
            client_id: c.client.id,
            args,
        };
        c.client.gate.wait(request, action);
        self.pending_script.insert(request, r);
        scripts.send(msg);
        None
    }

    /// The script's readAccess/writeAccess refuse this publish or play: why.
    pub(super) fn script_refuses(&self, r: ConnRef, action: &Action) -> Option<String> {
        let c = self.conns.get(r)?;
        let access = self.script_access.get(&c.client.id)?;
        match action {
            Action::StartPublish { key, .. } if !access.can_write(key.name()) => {
                Some(format!("no write access to {}", key.name()))
            }
            Action::StartPlay { key, .. } if !access.can_read(key.name()) => {
                Some(format!("no read access to {}", key.name()))
            }
            _ => None,
        }
    }

    /// Whether `r`'s calls go to its application's script.
    pub(super) fn script_calls(&self, r: ConnRef) -> bool {
        self.conns
            .get(r)
            .is_some_and(|c| self.script_clients.contains_key(&c.client.id))
    }

    /// Sends client `r`'s call `request` of `method` to its script.
    pub(super) fn call_script(&self, r: ConnRef, request: u64, method: &str, args: &[Amf0Value]) {
        let (Some(scripts), Some(c)) = (self.shared.scripts.as_ref(), self.conns.get(r)) else {
            return;
        };
        scripts.send(ToScripts::Call {
            worker: self.id,
            request,
            instance: InstanceKey::new(&c.client.nc.app, &c.client.nc.instance),
            client: c.client.id,
            method: method.to_string(),
            args: args.iter().map(amf_json::to_json).collect(),
        });
    }

    /// Admitted client `r` started or stopped publishing `key`: its script is told.
    pub(super) fn script_stream(&self, r: ConnRef, key: &StreamKey, publish: bool) {
        let (Some(scripts), Some(c)) = (self.shared.scripts.as_ref(), self.conns.get(r)) else {
            return;
        };
        if self.script_clients.contains_key(&c.client.id) {
            scripts.send(ToScripts::Stream {
                instance: InstanceKey::new(&c.client.nc.app, &c.client.nc.instance),
                client: c.client.id,
                name: key.name().to_string(),
                publish,
            });
        }
    }

    /// Client `r` goes away: its script is told (if it has one).
    pub(super) fn script_client_closed(&mut self, r: ConnRef) {
        let (Some(scripts), Some(c)) = (self.shared.scripts.as_ref(), self.conns.get(r)) else {
            return;
        };
        let admitted = self.script_clients.remove(&c.client.id).is_some();
        self.script_access.remove(&c.client.id);
        if admitted {
            // onUnpublish before onDisconnect, as AMS calls them (the script ignores a
            // stream it was not told was published).
            for (_, s) in c.client.nc.streams() {
                if let crate::app::net_connection::StreamState::Publishing(key) = s {
                    scripts.send(ToScripts::Stream {
                        instance: InstanceKey::new(&c.client.nc.app, &c.client.nc.instance),
                        client: c.client.id,
                        name: key.name().to_string(),
                        publish: false,
                    });
                }
            }
        }
        if admitted || (c.client.gate.is_waiting() && scripts.has_app(&c.client.nc.app)) {
            scripts.send(ToScripts::Disconnect {
                instance: InstanceKey::new(&c.client.nc.app, &c.client.nc.instance),
                client: c.client.id,
            });
        }
    }

    /// A client answered a script's `client.call`.
    pub(super) fn script_call_answered(&self, to: (InstanceKey, u64), ok: bool, value: Value) {
        if let Some(scripts) = self.shared.scripts.as_ref() {
            scripts.send(ToScripts::CallResult {
                instance: to.0,
                call: to.1,
                ok,
                value,
            });
        }
    }

    pub(super) fn on_script(&mut self, msg: FromScripts) {
        match msg {
            FromScripts::Decided {
                request,
                accept,
                error,
                reason,
                access,
            } => self.script_decided(request, accept, error, &reason, access),
            FromScripts::CallClient {
                instance,
                client,
                method,
                args,
                call,
            } => {
                let Some(&r) = self.script_clients.get(&client) else {
                    return;
                };
                let script = (call != 0).then(|| (instance.clone(), call));
                let args = match rpc::args_from_json(&args) {
                    Ok(a) => a,
                    Err(e) => {
                        warn!(app = %instance, method, error = %e, "script call arguments do not map to AMF");
                        return;
                    }
                };
                let sent = self.call_client_with(
                    r,
                    &method,
                    &args,
                    SCRIPT_CALL_TIMEOUT,
                    None,
                    script.clone(),
                );
                if sent.is_none() {
                    if let Some(to) = script {
                        let value = json!({"code": CALL_FAILED, "description": "the call could not be made"});
                        self.script_call_answered(to, false, value);
                    }
                }
            }
            FromScripts::PeerBandwidth { client, bytes } => {
                // An admitted client, or one still waiting for onConnect (rare: a scan).
                let waiting = || {
                    self.pending_script
                        .values()
                        .copied()
                        .find(|r| self.conns.get(*r).is_some_and(|c| c.client.id == client))
                };
                let Some(r) = self.script_clients.get(&client).copied().or_else(waiting) else {
                    return;
                };
                if let Some(c) = self.conns.get_mut(r) {
                    c.session.set_peer_bandwidth(bytes, &mut c.out);
                }
                self.flush_out(r);
            }
            FromScripts::Disconnect { client } => {
                if let Some(&r) = self.script_clients.get(&client) {
                    self.close(r, "disconnected by the application", false);
                    self.maybe_free(r);
                }
            }
            FromScripts::Broadcast {
                instance,
                method,
                args,
            } => {
                self.broadcast(&instance.app, Some(&instance.instance), &method, &args);
            }
            FromScripts::So {
                instance,
                name,
                persistent,
                action,
            } => self.so_script(instance, name, persistent, action),
            FromScripts::Nc {
                instance,
                nc,
                action,
            } => self.script_nc(instance, nc, action),
            FromScripts::SoLeave { instance } => {
                self.server_streams_leave(&instance);
                self.script_ncs_leave(&instance);
                self.so_leave(instance, super::shared_objects::SCRIPT_USER)
            }
            FromScripts::Stream {
                instance,
                name,
                action,
            } => self.server_stream(instance, name, action),
            FromScripts::Shutdown { instance, reason } => {
                let members: Vec<ConnRef> = self
                    .script_clients
                    .values()
                    .copied()
                    .filter(|r| {
                        self.conns.get(*r).is_some_and(|c| {
                            c.client.nc.app == instance.app
                                && c.client.nc.instance == instance.instance
                        })
                    })
                    .collect();
                let status = status::on_status(
                    status::Level::Error,
                    "NetConnection.Connect.AppShutdown",
                    &format!("The application was shut down: {reason}."),
                    None,
                );
                for r in members {
                    self.reply(r, 0, &status);
                    self.flush_out(r);
                    self.close(r, "application instance shut down", false);
                    self.maybe_free(r);
                }
            }
        }
    }

    fn script_decided(
        &mut self,
        request: u64,
        accept: bool,
        error: Value,
        reason: &str,
        access: Option<Access>,
    ) {
        let Some(r) = self.pending_script.remove(&request) else {
            return;
        };
        let Some(c) = self.conns.get_mut(r) else {
            return;
        };
        let Some(action) = c.client.gate.decided(request) else {
            return;
        };
        let id = c.client.id;
        if accept {
            self.script_clients.insert(id, r);
            if let Some(access) = access {
                self.script_access.insert(id, access);
            }
            return self.auth_resolved(r, action, true, reason);
        }
        let peer = c.peer;
        info!(%peer, app = %c.client.nc.app, reason, "connect refused");
        let tid = match &action {
            Action::Accepted { reply } => reply.get(1).and_then(Amf0Value::as_f64).unwrap_or(1.0),
            _ => 1.0,
        };
        let mut values = status::error(
            tid,
            "NetConnection.Connect.Rejected",
            &format!("Connection refused: {reason}."),
        );
        if !error.is_null() {
            // The script's error object: what AMS clients read in info.application.
            if let (Some(Amf0Value::Object(props)), Ok(app)) =
                (values.get_mut(3), amf_json::from_json(&error))
            {
                props.push(("application".into(), app));
            }
        }
        self.reply(r, 0, &values);
        self.flush_out(r);
        self.close(r, &format!("connect refused: {reason}"), false);
        self.maybe_free(r);
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::IntoRawFd;
    use std::os::unix::net::UnixStream;

    use super::*;
    use crate::engine::worker::testing::{shared, worker_of};
    use crate::proto::command::Command;
    use crate::scripts::Scripts;

    fn command(name: &str, object: Amf0Value, args: Vec<Amf0Value>) -> SessionEvent {
        SessionEvent::Command {
            stream_id: 0,
            amf3: false,
            command: Command {
                name: name.into(),
                transaction_id: 1.0,
                command_object: object,
                args,
            },
        }
    }

    fn connect(app: &str, name: &str) -> SessionEvent {
        let object = Amf0Value::object([
            ("app", Amf0Value::string(app)),
            ("flashVer", Amf0Value::string("LNX 9,0,124,2")),
        ]);
        command("connect", object, vec![Amf0Value::string(name)])
    }

    #[test]
    fn a_scripted_connect_waits_in_the_gate_and_the_script_decides() {
        let (mut shared, mut receivers, _control) = shared(1);
        let (tx, rx) = crossbeam_channel::unbounded();
        let scripts = Scripts::new(tx);
        scripts.set_apps(vec!["chat".into()]);
        Arc::get_mut(&mut shared).expect("not shared yet").scripts = Some(scripts);
        let mut w = worker_of(shared, receivers.remove(0));
        let mut peers = Vec::new();
        let mut client = |w: &mut Worker| {
            let (ours, theirs) = UnixStream::pair().expect("socketpair");
            peers.push(theirs);
            w.adopt(ours.into_raw_fd(), false)
        };

        // An unscripted application is not asked about.
        let plain = client(&mut w);
        w.on_session_event(plain, connect("live", "x"));
        assert!(rx.try_recv().is_err());
        assert!(!w.conns.get(plain).expect("open").client.gate.is_waiting());

        // bob's connect waits for onConnect; what he sends meanwhile waits behind it.
        let bob = client(&mut w);
        w.on_session_event(bob, connect("chat", "bob"));
        let Ok(ToScripts::Connect {
            request,
            instance,
            client: info,
            args,
            ..
        }) = rx.try_recv()
        else {
            panic!("the script is asked")
        };
        assert_eq!(instance, InstanceKey::new("chat", "_definst_"));
        assert_eq!(args, vec![json!("bob")]);
        assert_eq!(info["agent"], json!("LNX 9,0,124,2"));
        assert!(w.conns.get(bob).expect("open").client.gate.is_waiting());
        w.on_event_or_defer(bob, command("who", Amf0Value::Null, vec![]));
        assert!(rx.try_recv().is_err(), "the call waits for the decision");

        // Accepted: the waiting call goes to the script.
        w.on_script(FromScripts::Decided {
            request,
            accept: true,
            error: Value::Null,
            reason: "ok".into(),
            access: None,
        });
        assert!(!w.conns.get(bob).expect("open").client.gate.is_waiting());
        assert!(matches!(
            rx.try_recv(),
            Ok(ToScripts::Call { method, .. }) if method == "who"
        ));

        // eve is rejected: her connection closes.
        let eve = client(&mut w);
        w.on_session_event(eve, connect("chat", "eve"));
        let Ok(ToScripts::Connect { request, .. }) = rx.try_recv() else {
            panic!("the script is asked")
        };
        w.on_script(FromScripts::Decided {
            request,
            accept: false,
            error: json!({"message": "no"}),
            reason: "rejected".into(),
            access: None,
        });
        assert!(w.conns.get(eve).is_none_or(|c| c.closing != Closing::Open));

        // The instance shuts down: bob is closed, and the script hears he left.
        w.on_script(FromScripts::Shutdown {
            instance: InstanceKey::new("chat", "_definst_"),
            reason: "test".into(),
        });
        assert!(w.conns.get(bob).is_none_or(|c| c.closing != Closing::Open));
        assert!(matches!(rx.try_recv(), Ok(ToScripts::Disconnect { .. })));
        assert!(w.script_clients.is_empty() && w.pending_script.is_empty());
        assert!(w
            .conns
            .get(plain)
            .is_some_and(|c| c.closing == Closing::Open));
    }

    /// readAccess/writeAccess cover shared objects too: a use of an object the client may
    /// not read, or a change or send to one it may not write, never reaches the owner; the
    /// client gets SharedObject.NoReadAccess / NoWriteAccess instead.
    #[test]
    fn a_scripted_clients_access_guards_shared_objects() {
        use crate::proto::rtmp::shared_object::{SoEvent, SoMessage};
        let (mut shared, mut receivers, _control) = shared(1);
        let (tx, rx) = crossbeam_channel::unbounded();
        let scripts = Scripts::new(tx);
        scripts.set_apps(vec!["chat".into()]);
        Arc::get_mut(&mut shared).expect("not shared yet").scripts = Some(scripts);
        let mut w = worker_of(shared, receivers.remove(0));
        let (ours, _theirs) = UnixStream::pair().expect("socketpair");
        let bob = w.adopt(ours.into_raw_fd(), false);
        w.on_session_event(bob, connect("chat", "bob"));
        let Ok(ToScripts::Connect { request, .. }) = rx.try_recv() else {
            panic!("the script is asked")
        };
        w.on_script(FromScripts::Decided {
            request,
            accept: true,
            error: Value::Null,
            reason: "ok".into(),
            access: Access::parse("public", "public/notes"),
        });
        while w.mailbox.try_recv().is_some() {}

        let so = |name: &str, events| SoMessage {
            name: name.into(),
            version: 0,
            persistent: false,
            events,
        };
        let change = || SoEvent::RequestChange {
            key: "k".into(),
            value: Amf0Value::Number(1.0),
        };
        // What reaches the owner (requests) and what bob is told (statuses).
        let outcome = |w: &mut Worker, m: SoMessage| {
            w.on_shared_object(bob, false, m);
            let (mut requests, mut statuses) = (Vec::new(), Vec::new());
            while let Some(msg) = w.mailbox.try_recv() {
                match msg {
                    WorkerMsg::SoRequest { message, .. } => requests.push(message.events),
                    WorkerMsg::SoDeliver { message, .. } => {
                        if let Some(SoEvent::Status { code, .. }) = message.events.first() {
                            statuses.push(code.clone());
                        }
                    }
                    _ => {}
                }
            }
            (requests, statuses)
        };
        let none: Vec<String> = Vec::new();

        let (req, st) = outcome(&mut w, so("secret", vec![SoEvent::Use, change()]));
        assert!(req.is_empty(), "{req:?}");
        assert_eq!(st, ["SharedObject.NoReadAccess"]);

        let (req, st) = outcome(&mut w, so("public/board", vec![SoEvent::Use, change()]));
        assert_eq!(
            req,
            [vec![SoEvent::Use]],
            "the use passes, the change does not"
        );
        assert_eq!(st, ["SharedObject.NoWriteAccess"]);
        let send = SoEvent::SendMessage {
            handler: "h".into(),
            args: vec![],
        };
        let (req, st) = outcome(&mut w, so("public/board", vec![send]));
        assert!(req.is_empty());
        assert_eq!(st, ["SharedObject.NoWriteAccess"]);

        let (req, st) = outcome(
            &mut w,
            so("public/notes/today", vec![SoEvent::Use, change()]),
        );
        assert_eq!(
            req,
            [vec![SoEvent::Use, change()]],
            "read and write granted"
        );
        assert_eq!(st, none);
    }
}
