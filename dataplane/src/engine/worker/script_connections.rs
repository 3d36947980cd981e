//! Server-side scripts' `NetConnection`s (AMS's server-to-server connections, as
//! FCRemoteConnection.asc relays with them). The instance's owner worker holds them: a
//! script's `connect` opens a connection in the client role through the same machinery as
//! relays (`Worker::connect`, `adopt_outbound`, the one `Session`), its conversation is
//! `relay::script_link::ScriptLink`, and what happens on it goes back to the script thread:
//! connect's outcome and the connection's end as statuses (NetConnection.Connect.Success,
//! .Rejected, .Failed, .Closed), calls' answers as call results, the far application's calls
//! as `NcCall` (answered when the script has run). A connection is never retried: the
//! script decides what to do on its onStatus, as in AMS.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::*;
use crate::app::instance::InstanceKey;
use crate::app::rpc;
use crate::engine::conn::LinkConn;
use crate::engine::connect::ConnectError;
use crate::engine::slab::{Slab, SlabRef};
use crate::proto::amf_json;
use crate::proto::rtmp::session::CallAnswer;
use crate::relay::host_ini::UpstreamGroup;
use crate::relay::pull_url;
use crate::relay::script_link::{ScriptLink, ScriptLinkStep};
use crate::scripts::{ScriptNcAction, ToScripts};

/// How long one connect may take (then NetConnection.Connect.Failed).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The most connections one instance's script may hold (a script that opens them in a
/// loop gets Connect.Failed past this, not thousands of sockets).
const MAX_PER_INSTANCE: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NcState {
    Connecting,
    /// The connection is open; `accepted` once the far application accepted connect.
    Linked {
        conn: ConnRef,
        accepted: bool,
    },
}

struct ScriptNc {
    instance: InstanceKey,
    nc: u64,
    target: UpstreamGroup,
    args: Vec<Amf0Value>,
    state: NcState,
    /// Our calls' transactions, and the script's call each answers (`calls` in prelude.js).
    calls: HashMap<u32, u64>,
}

/// This worker's script connections, by the slot their `Owner::ScriptNc` names and by
/// instance and number.
#[derive(Default)]
pub(super) struct ScriptConnections {
    slab: Slab<ScriptNc>,
    by_nc: HashMap<(InstanceKey, u64), SlabRef>,
}

fn status(level: &str, code: &str, description: &str) -> Value {
    json!({"level": level, "code": code, "description": description})
}

impl Worker {
    fn tell_script(&self, msg: ToScripts) {
        if let Some(s) = self.shared.scripts.as_ref() {
            s.send(msg);
        }
    }

    fn nc_status(&self, instance: &InstanceKey, nc: u64, info: Value) {
        self.tell_script(ToScripts::NcStatus {
            instance: instance.clone(),
            nc,
            info,
        });
    }

    /// A script's NetConnection operation (this worker owns the instance).
    pub(super) fn script_nc(&mut self, instance: InstanceKey, nc: u64, action: ScriptNcAction) {
        let id = (instance, nc);
        match action {
            ScriptNcAction::Connect { uri, args } => {
                // A second connect on the same object replaces the first connection.
                if let Some(n) = self.script_ncs.by_nc.remove(&id) {
                    self.script_nc_end(n, None);
                }
                self.script_nc_connect(id.0, nc, &uri, &args);
            }
            ScriptNcAction::Call { method, call, args } => {
                let sent = self.script_nc_call(&id, &method, &args);
                match sent {
                    Ok(transaction) if call != 0 => {
                        if let Some(n) = self.script_ncs.by_nc.get(&id).copied() {
                            if let Some(s) = self.script_ncs.slab.get_mut(n) {
                                s.calls.insert(transaction, call);
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(why) if call != 0 => self.tell_script(ToScripts::CallResult {
                        instance: id.0,
                        call,
                        ok: false,
                        value: status("error", "NetConnection.Call.Failed", &why),
                    }),
                    Err(why) => {
                        debug!(app = %id.0, nc, method, why, "script NetConnection call not sent")
                    }
                }
            }
            ScriptNcAction::Close => {
                if let Some(n) = self.script_ncs.by_nc.remove(&id) {
                    let info = status(
                        "status",
                        "NetConnection.Connect.Closed",
                        "closed by the script",
                    );
                    self.script_nc_end(n, Some(info));
                }
            }
            ScriptNcAction::Answer {
                transaction,
                ok,
                value,
            } => {
                let Some(conn) = self.script_nc_conn(&id) else {
                    return;
                };
                let value = amf_json::from_json(&value).unwrap_or(Amf0Value::Null);
                let answer = if ok {
                    CallAnswer::Result(value)
                } else {
                    CallAnswer::Error(value)
                };
                if let Some(c) = self.conns.get_mut(conn) {
                    if let Some(LinkConn::Script { link, .. }) = c.upstream.as_deref_mut() {
                        link.answer(&mut c.session, transaction, answer, &mut c.out);
                    }
                }
                self.flush_out(conn);
            }
        }
    }

    fn script_nc_conn(&self, id: &(InstanceKey, u64)) -> Option<ConnRef> {
        let n = self.script_ncs.by_nc.get(id)?;
        match self.script_ncs.slab.get(*n)?.state {
            NcState::Linked { conn, .. } => Some(conn),
            NcState::Connecting => None,
        }
    }

    fn script_nc_call(
        &mut self,
        id: &(InstanceKey, u64),
        method: &str,
        args: &[Value],
    ) -> Result<u32, String> {
        let conn = self
            .script_nc_conn(id)
            .ok_or_else(|| "the NetConnection is not connected".to_string())?;
        let args = rpc::args_from_json(args)?;
        let c = self
            .conns
            .get_mut(conn)
            .ok_or_else(|| "the connection is gone".to_string())?;
        let Some(LinkConn::Script { link, .. }) = c.upstream.as_deref_mut() else {
            return Err("the connection is gone".into());
        };
        let t = link.call(&mut c.session, method, &args, &mut c.out)?;
        self.flush_out(conn);
        Ok(t)
    }

    /// `rtmp://host[:port]/app[/instance]`, or `rtmp:/app[/instance]` (no host) for this
    /// server, as in AMS: its first listen address (loopback if that is a wildcard).
    fn script_nc_target(&self, uri: &str) -> Result<UpstreamGroup, String> {
        let scheme = |p: &str| {
            uri.get(..p.len())
                .is_some_and(|s| s.eq_ignore_ascii_case(p))
        };
        if scheme("rtmp://") {
            return pull_url::parse_script(&format!("rtmp://{}", &uri[7..]));
        }
        if !scheme("rtmp:/") {
            return Err(format!(
                "NetConnection {uri:?}: expected rtmp://host/app or rtmp:/app"
            ));
        }
        let mut local = self
            .config
            .server
            .listen
            .first()
            .copied()
            .ok_or("no listen address")?;
        if local.ip().is_unspecified() {
            local.set_ip(if local.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        pull_url::parse_script(&format!("rtmp://{local}/{}", &uri[6..]))
    }

    fn script_nc_connect(&mut self, instance: InstanceKey, nc: u64, uri: &str, args: &[Value]) {
        let target = match self.script_nc_target(uri) {
            Ok(t) => t,
            Err(why) => {
                return self.nc_status(
                    &instance,
                    nc,
                    status("error", "NetConnection.Connect.Failed", &why),
                )
            }
        };
        let args = match rpc::args_from_json(args) {
            Ok(a) => a,
            Err(why) => {
                return self.nc_status(
                    &instance,
                    nc,
                    status("error", "NetConnection.Connect.Failed", &why),
                )
            }
        };
        let held = self
            .script_ncs
            .by_nc
            .keys()
            .filter(|(i, _)| *i == instance)
            .count();
        if held >= MAX_PER_INSTANCE {
            let why = format!("the script holds {MAX_PER_INSTANCE} connections already");
            return self.nc_status(
                &instance,
                nc,
                status("error", "NetConnection.Connect.Failed", &why),
            );
        }
        let addr = target.primary.clone();
        let n = self.script_ncs.slab.insert(ScriptNc {
            instance: instance.clone(),
            nc,
            target,
            args,
            state: NcState::Connecting,
            calls: HashMap::new(),
        });
        self.script_ncs.by_nc.insert((instance.clone(), nc), n);
        info!(worker = self.id, app = %instance, to = %addr, "script NetConnection connecting");
        match addr.to_string().parse::<SocketAddr>() {
            Ok(to) => self.script_nc_dial(n, to),
            Err(_) => self.resolve(Owner::ScriptNc(n), addr.host.clone(), addr.port),
        }
    }

    fn script_nc_dial(&mut self, n: SlabRef, to: SocketAddr) {
        if let Err(e) = self.connect(to, CONNECT_TIMEOUT, Owner::ScriptNc(n)) {
            self.script_nc_failed(n, &format!("no socket for {to}: {e}"));
        }
    }

    pub(super) fn script_nc_resolved(&mut self, n: SlabRef, result: Result<SocketAddr, String>) {
        let connecting = self
            .script_ncs
            .slab
            .get(n)
            .is_some_and(|s| s.state == NcState::Connecting);
        if !connecting {
            return; // Closed meanwhile.
        }
        match result {
            Ok(to) => self.script_nc_dial(n, to),
            Err(why) => self.script_nc_failed(n, &why),
        }
    }

    pub(super) fn script_nc_connected(
        &mut self,
        n: SlabRef,
        to: SocketAddr,
        result: Result<Socket, ConnectError>,
    ) {
        let socket = match result {
            Ok(socket) => socket,
            Err(e) => return self.script_nc_failed(n, &format!("connect to {to}: {e}")),
        };
        let Some(s) = self.script_ncs.slab.get(n) else {
            return; // Closed meanwhile; the socket closes here.
        };
        let path = match &s.target.instance {
            Some(instance) => format!("{}/{instance}", s.target.app),
            None => s.target.app.clone(),
        };
        let link = ScriptLink::new(path.clone(), format!("rtmp://{to}/{path}"), s.args.clone());
        let conn = self.adopt_outbound(socket, LinkConn::Script { nc: n, link });
        if let Some(s) = self.script_ncs.slab.get_mut(n) {
            s.state = NcState::Linked {
                conn,
                accepted: false,
            };
        }
        self.flush_out(conn);
    }

    /// A connect that never made a connection: Connect.Failed, and the entry goes.
    fn script_nc_failed(&mut self, n: SlabRef, reason: &str) {
        let Some(s) = self.script_ncs.slab.remove(n) else {
            return;
        };
        self.script_ncs.by_nc.remove(&(s.instance.clone(), s.nc));
        warn!(worker = self.id, app = %s.instance, reason, "script NetConnection failed");
        self.nc_status(
            &s.instance,
            s.nc,
            status("error", "NetConnection.Connect.Failed", reason),
        );
    }

    /// Removes `n` (already out of `by_nc`), closing its connection; its calls waiting for
    /// an answer fail; `info` (if any) goes to the script's onStatus.
    fn script_nc_end(&mut self, n: SlabRef, info: Option<Value>) {
        let Some(s) = self.script_ncs.slab.remove(n) else {
            return;
        };
        for call in s.calls.values() {
            self.tell_script(ToScripts::CallResult {
                instance: s.instance.clone(),
                call: *call,
                ok: false,
                value: status(
                    "error",
                    "NetConnection.Call.Failed",
                    "the connection closed before the answer",
                ),
            });
        }
        if let Some(info) = info {
            self.nc_status(&s.instance, s.nc, info);
        }
        if let NcState::Linked { conn, .. } = s.state {
            self.close(conn, "the script's NetConnection closed", false);
        }
    }

    /// What the far application said on script connection `conn`.
    pub(super) fn on_script_nc_event(&mut self, conn: ConnRef, ev: SessionEvent) {
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        let Some(LinkConn::Script { nc: n, link }) = c.upstream.as_deref_mut() else {
            return;
        };
        let n = *n;
        let step = link.on_event(&mut c.session, ev, &mut c.out);
        let Some(s) = self.script_ncs.slab.get_mut(n) else {
            return self.close(conn, "its script's NetConnection is gone", false);
        };
        let (instance, nc) = (s.instance.clone(), s.nc);
        match step {
            ScriptLinkStep::Nothing => {}
            ScriptLinkStep::Connected => {
                s.state = NcState::Linked {
                    conn,
                    accepted: true,
                };
                info!(worker = self.id, app = %instance, to = %s.target.primary,
                    "script NetConnection connected");
                let info = status(
                    "status",
                    "NetConnection.Connect.Success",
                    "Connection succeeded.",
                );
                self.nc_status(&instance, nc, info);
            }
            ScriptLinkStep::Rejected(info) => {
                self.script_ncs.by_nc.remove(&(instance.clone(), nc));
                let mut info = amf_json::to_json(&info);
                if info.get("code").is_none() {
                    info = status("error", "NetConnection.Connect.Rejected", "refused");
                }
                self.script_nc_end(n, Some(info));
            }
            ScriptLinkStep::Answer {
                transaction,
                ok,
                value,
            } => {
                if let Some(call) = s.calls.remove(&transaction) {
                    self.tell_script(ToScripts::CallResult {
                        instance,
                        call,
                        ok,
                        value: amf_json::to_json(&value),
                    });
                }
            }
            ScriptLinkStep::Call {
                transaction,
                method,
                args,
            } => self.tell_script(ToScripts::NcCall {
                worker: self.id,
                instance,
                nc,
                transaction,
                method,
                args: args.iter().map(amf_json::to_json).collect(),
            }),
            ScriptLinkStep::Status(info) => self.nc_status(&instance, nc, amf_json::to_json(&info)),
            ScriptLinkStep::Failed(reason) => self.close(conn, &reason, true),
        }
    }

    /// Script connection `conn` closed (by either side): Connect.Closed if the far
    /// application had accepted it, Connect.Failed if not.
    pub(super) fn script_nc_closed(&mut self, conn: ConnRef, n: SlabRef, reason: &str) {
        let Some(s) = self.script_ncs.slab.get(n) else {
            return;
        };
        let accepted = match s.state {
            NcState::Linked { conn: c, accepted } if c == conn => accepted,
            _ => return,
        };
        self.script_ncs.by_nc.remove(&(s.instance.clone(), s.nc));
        let info = if accepted {
            status("status", "NetConnection.Connect.Closed", reason)
        } else {
            status("error", "NetConnection.Connect.Failed", reason)
        };
        // Its connection is closing already: the entry only goes.
        if let Some(s) = self.script_ncs.slab.get_mut(n) {
            s.state = NcState::Connecting;
        }
        self.script_nc_end(n, Some(info));
    }

    /// The instance's script is gone: its connections close, nobody to tell.
    pub(super) fn script_ncs_leave(&mut self, instance: &InstanceKey) {
        let ours: Vec<(InstanceKey, u64)> = self
            .script_ncs
            .by_nc
            .keys()
            .filter(|(i, _)| i == instance)
            .cloned()
            .collect();
        for id in ours {
            if let Some(n) = self.script_ncs.by_nc.remove(&id) {
                if let Some(s) = self.script_ncs.slab.get_mut(n) {
                    s.calls.clear();
                }
                self.script_nc_end(n, None);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::connect::tests::unanswered_listener;
    use crate::engine::worker::testing::{shared, worker_of};
    use crate::scripts::Scripts;

    /// A script that opens connections in a loop gets Connect.Failed past the cap; a bad
    /// URI fails at once; the instance's end closes every connection it held.
    #[test]
    fn a_scripts_connections_are_capped_and_end_with_it() {
        let (mut shared, mut receivers, _control) = shared(1);
        let (tx, rx) = crossbeam_channel::unbounded();
        Arc::get_mut(&mut shared).expect("not shared yet").scripts = Some(Scripts::new(tx));
        let mut w = worker_of(shared, receivers.remove(0));
        let (_silent, addr) = unanswered_listener();
        let instance = InstanceKey::new("relay", "_definst_");
        let failed = |rx: &crossbeam_channel::Receiver<ToScripts>| {
            rx.try_iter()
                .filter_map(|m| match m {
                    ToScripts::NcStatus { nc, info, .. } => Some((nc, info["code"].clone())),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
        for nc in 1..=MAX_PER_INSTANCE as u64 + 1 {
            let uri = format!("rtmp://{addr}/far");
            w.script_nc(
                instance.clone(),
                nc,
                ScriptNcAction::Connect { uri, args: vec![] },
            );
        }
        let over = MAX_PER_INSTANCE as u64 + 1;
        assert_eq!(failed(&rx), [(over, json!("NetConnection.Connect.Failed"))]);
        assert_eq!(w.script_ncs.by_nc.len(), MAX_PER_INSTANCE);

        let bad = ScriptNcAction::Connect {
            uri: "rtmp://127.0.0.1:0/far".into(),
            args: vec![],
        };
        w.script_nc(InstanceKey::new("other", "_definst_"), 1, bad);
        assert_eq!(failed(&rx), [(1, json!("NetConnection.Connect.Failed"))]);

        // A call on a connection not yet accepted fails, to its result object.
        let call = ScriptNcAction::Call {
            method: "x".into(),
            call: 9,
            args: vec![],
        };
        w.script_nc(instance.clone(), 1, call);
        assert!(matches!(
            rx.try_recv(),
            Ok(ToScripts::CallResult {
                call: 9,
                ok: false,
                ..
            })
        ));

        w.script_ncs_leave(&instance);
        assert!(w.script_ncs.by_nc.is_empty());
        assert!(w.script_ncs.slab.refs().is_empty());
        assert!(failed(&rx).is_empty(), "nobody to tell");
    }
}
