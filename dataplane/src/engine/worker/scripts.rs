//! The worker's side of application scripts (`crate::scripts`): a connect to a scripted
//! application waits in the client's gate while the script thread runs onConnect; calls
//! to script methods go there by request id; what a script asks of a client (calls,
//! disconnect, broadcast, the instance's shutdown) comes back through the mailbox. The
//! worker never waits for the script thread.

use control_protocol::CALL_FAILED;
use serde_json::{json, Value};

use super::*;
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

    /// Client `r` goes away: its script is told (if it has one).
    pub(super) fn script_client_closed(&mut self, r: ConnRef) {
        let (Some(scripts), Some(c)) = (self.shared.scripts.as_ref(), self.conns.get(r)) else {
            return;
        };
        let admitted = self.script_clients.remove(&c.client.id).is_some();
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
            } => self.script_decided(request, accept, error, &reason),
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
            FromScripts::SoLeave { instance } => {
                self.so_leave(instance, super::shared_objects::SCRIPT_USER)
            }
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

    fn script_decided(&mut self, request: u64, accept: bool, error: Value, reason: &str) {
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
