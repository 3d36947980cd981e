//! Shared objects on the worker. A client's shared-object messages go, through the
//! mailboxes, to the worker that owns its application instance (`InstanceKey::owner`),
//! which applies them (`app::shared_objects`) and sends each update ONCE per worker that
//! has users of the object; that worker fans it out to its local users, encoding it once
//! per framing (type 19 or 16). The owner posts to itself the same way, so every user sees
//! one order.
//!
//! A user joins a worker's fan-out list when its use success passes through that worker:
//! the owner's messages to one worker keep their order, so no update made after the use can
//! reach a worker before the user is listed there, and none made before reaches the user
//! (the use success carries every slot).

use std::collections::HashMap;

use bytes::Bytes;

use super::super::so_disk;
use super::*;
use crate::app::instance::InstanceKey;
use control_protocol::{SoCall, SoInfo};

use crate::app::shared_object::{code, SharedObject, To};
use crate::app::shared_objects::{SharedObjects, Stored};
use crate::proto::amf_json;
use crate::proto::rtmp::chunk_encoder::encode_message;
use crate::proto::rtmp::shared_object::{SoEvent, SoMessage};

/// A user of a shared object, as its owner knows it: the worker and the connection.
pub(crate) type SoUser = (usize, ConnRef);

/// The instance's script as a user of its objects: no worker has this index, so its
/// updates go to the script thread instead of a mailbox (`so_route`).
pub(crate) const SCRIPT_USER: SoUser = (
    usize::MAX,
    ConnRef {
        slot: u32::MAX,
        generation: u32::MAX,
    },
);

/// Who on the receiving worker gets an update.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SoTarget {
    One(ConnRef),
    /// Every local user of the object, but this one (the sender of the change).
    All {
        except: Option<ConnRef>,
    },
}

/// The worker's shared-object state: the objects of the instances it owns, and its local
/// users of any instance's objects.
#[derive(Default)]
pub(crate) struct SoWorker {
    owned: HashMap<InstanceKey, SharedObjects<SoUser>>,
    /// Local users of each (instance, object), with the framing each reads (true: 16).
    local: HashMap<(InstanceKey, String), Vec<(ConnRef, bool)>>,
    /// Local connections that sent any shared-object message, and their framing: they
    /// leave their instance's objects when they close.
    clients: HashMap<ConnRef, bool>,
    /// Persistent objects' disk writer, started at the first write.
    writer: Option<so_disk::Writer>,
}

impl Worker {
    fn instance_of(&self, r: ConnRef) -> Option<InstanceKey> {
        let c = self.conns.get(r)?;
        c.client
            .nc
            .is_connected()
            .then(|| InstanceKey::new(&c.client.nc.app, &c.client.nc.instance))
    }

    /// A shared-object message from client `r`: to its instance's owner.
    pub(super) fn on_shared_object(&mut self, r: ConnRef, amf3: bool, message: SoMessage) {
        let Some(instance) = self.instance_of(r) else {
            self.close(r, "shared object message before connect", true);
            return;
        };
        self.so.clients.insert(r, amf3);
        let Some(message) = self.so_access(r, &instance, message) else {
            return;
        };
        let mut changes = false;
        for event in &message.events {
            match event {
                SoEvent::Use => self.emit("so_use", r, Some(&message.name), None),
                SoEvent::Release => {
                    self.unlist(&instance, &message.name, r);
                    self.emit("so_release", r, Some(&message.name), None);
                }
                SoEvent::RequestChange { .. } | SoEvent::RequestRemove(_) => changes = true,
                _ => {}
            }
        }
        if changes {
            self.emit("so_change", r, Some(&message.name), None);
        }
        WorkerStats::add(&self.stats().so_messages_in, 1);
        let client = self.conns.get(r).map_or(0, |c| c.client.id);
        let owner = instance.owner(self.shared.mailboxes.len());
        self.post(
            owner,
            WorkerMsg::SoRequest {
                instance,
                user: (self.id, r),
                client,
                message,
            },
        );
    }

    /// What the client's script access (readAccess/writeAccess, `script_access`) leaves of
    /// its message: a use of an object it may not read is refused whole
    /// (`SharedObject.NoReadAccess`), changes and sends to one it may not write are taken
    /// out (`SharedObject.NoWriteAccess`); each refusal is a status to the client and a log
    /// line. None: nothing is left to pass on.
    fn so_access(
        &mut self,
        r: ConnRef,
        instance: &InstanceKey,
        mut message: SoMessage,
    ) -> Option<SoMessage> {
        let Some(c) = self.conns.get(r) else {
            return Some(message);
        };
        let Some(access) = self.script_access.get(&c.client.id) else {
            return Some(message);
        };
        let (peer, name) = (c.peer, message.name.clone());
        let writes = |e: &SoEvent| {
            matches!(
                e,
                SoEvent::RequestChange { .. }
                    | SoEvent::RequestRemove(_)
                    | SoEvent::SendMessage { .. }
            )
        };
        let refusal = if message.events.contains(&SoEvent::Use) && !access.can_read(&name) {
            message.events.clear();
            Some(code::NO_READ_ACCESS)
        } else if message.events.iter().any(writes) && !access.can_write(&name) {
            message.events.retain(|e| !writes(e));
            Some(code::NO_WRITE_ACCESS)
        } else {
            None
        };
        if let Some(code) = refusal {
            info!(%peer, %instance, object = name, code, "shared object refused by the script's access");
            let status = SoMessage {
                name: name.clone(),
                version: 0,
                persistent: message.persistent,
                events: vec![SoEvent::Status {
                    code: code.into(),
                    level: "error".into(),
                }],
            };
            // Through the mailbox, as every delivery comes: after what is queued already.
            self.post(
                self.id,
                WorkerMsg::SoDeliver {
                    instance: instance.clone(),
                    target: SoTarget::One(r),
                    message: Arc::new(status),
                },
            );
        }
        (!message.events.is_empty()).then_some(message)
    }

    fn unlist(&mut self, instance: &InstanceKey, name: &str, r: ConnRef) {
        let key = (instance.clone(), name.to_string());
        if let Some(users) = self.so.local.get_mut(&key) {
            users.retain(|(u, _)| *u != r);
            if users.is_empty() {
                self.so.local.remove(&key);
            }
        }
    }

    /// Client `r` closes: it leaves every object of its instance, here and at the owner.
    pub(super) fn so_client_closed(&mut self, r: ConnRef) {
        if self.so.clients.remove(&r).is_none() {
            return;
        }
        let Some(instance) = self.instance_of(r) else {
            return;
        };
        self.so.local.retain(|(i, _), users| {
            if *i == instance {
                users.retain(|(u, _)| *u != r);
            }
            !users.is_empty()
        });
        let owner = instance.owner(self.shared.mailboxes.len());
        self.post(
            owner,
            WorkerMsg::SoLeave {
                instance,
                user: (self.id, r),
            },
        );
    }

    /// On the owner: a client's message, applied; its outcome delivered.
    pub(super) fn so_request(
        &mut self,
        instance: InstanceKey,
        user: SoUser,
        client: u64,
        message: SoMessage,
    ) {
        let now_ms = self.clock_ms(Instant::now());
        let config = Arc::clone(&self.config);
        let mut load = |name: &str| so_load(&config, &instance, name);
        let sos = self.so.owned.entry(instance.clone()).or_default();
        let outcome = sos.on_message(user, message, now_ms, &config.shared_objects, &mut load);
        for warning in &outcome.warnings {
            info!(client, %instance, "shared object: {warning}");
        }
        self.so_persist(&instance, &outcome.persist);
        self.so_route(&instance, outcome.sends);
    }

    /// On the owner: a user is gone.
    pub(super) fn so_leave(&mut self, instance: InstanceKey, user: SoUser) {
        if let Some(sos) = self.so.owned.get_mut(&instance) {
            sos.leave(user);
            if sos.is_empty() {
                self.so.owned.remove(&instance);
            }
        }
    }

    /// Sends each update once per worker concerned.
    pub(super) fn so_route(&mut self, instance: &InstanceKey, sends: Vec<(To<SoUser>, SoMessage)>) {
        let workers = self.shared.mailboxes.len();
        for (to, message) in sends {
            let message = Arc::new(message);
            let sender = match to {
                To::User(SCRIPT_USER) => {
                    self.so_to_script(instance, &message);
                    continue;
                }
                To::User((w, r)) => {
                    self.post(
                        w,
                        WorkerMsg::SoDeliver {
                            instance: instance.clone(),
                            target: SoTarget::One(r),
                            message,
                        },
                    );
                    continue;
                }
                To::All => None,
                To::AllBut(u) => Some(u),
            };
            let mut with_users = vec![false; workers];
            if let Some(so) = self
                .so
                .owned
                .get(instance)
                .and_then(|sos| sos.get(&message.name))
            {
                let script = so.users().contains(&SCRIPT_USER);
                if script && sender != Some(SCRIPT_USER) {
                    self.so_to_script(instance, &message);
                }
                for (w, _) in so.users() {
                    if let Some(flag) = with_users.get_mut(*w) {
                        *flag = true;
                    }
                }
            }
            for (w, _) in with_users.iter().enumerate().filter(|(_, has)| **has) {
                let except = sender.filter(|(sw, _)| *sw == w).map(|(_, r)| r);
                self.post(
                    w,
                    WorkerMsg::SoDeliver {
                        instance: instance.clone(),
                        target: SoTarget::All { except },
                        message: Arc::clone(&message),
                    },
                );
            }
        }
    }

    fn so_to_script(&self, instance: &InstanceKey, message: &SoMessage) {
        if let Some(scripts) = self.shared.scripts.as_ref() {
            scripts.send(crate::scripts::ToScripts::So {
                instance: instance.clone(),
                message: message.clone(),
            });
        }
    }

    /// On the owner: what the instance's script does to one of its objects. The script
    /// is one more user (`SCRIPT_USER`); its changes are the server's own (no rate limit,
    /// every user sees them).
    pub(super) fn so_script(
        &mut self,
        instance: InstanceKey,
        name: String,
        persistent: bool,
        action: crate::scripts::ScriptSoAction,
    ) {
        use crate::scripts::ScriptSoAction as A;
        let now_ms = self.clock_ms(Instant::now());
        let config = Arc::clone(&self.config);
        let mut load = |name: &str| so_load(&config, &instance, name);
        let sos = self.so.owned.entry(instance.clone()).or_default();
        let message = |events| SoMessage {
            name: name.clone(),
            version: 0,
            persistent,
            events,
        };
        let limits = &config.shared_objects;
        let outcome = match action {
            A::Use => Ok(sos.on_message(
                SCRIPT_USER,
                message(vec![SoEvent::Use]),
                now_ms,
                limits,
                &mut load,
            )),
            A::Release => Ok(sos.on_message(
                SCRIPT_USER,
                message(vec![SoEvent::Release]),
                now_ms,
                limits,
                &mut load,
            )),
            A::Send { handler, args } => match crate::app::rpc::args_from_json(&args) {
                Ok(args) => Ok(sos.on_message(
                    SCRIPT_USER,
                    message(vec![SoEvent::SendMessage { handler, args }]),
                    now_ms,
                    limits,
                    &mut load,
                )),
                Err(e) => Err(format!("send arguments: {e}")),
            },
            A::Set { key, value } => match value {
                serde_json::Value::Null => sos.operator_set(&name, &key, None, limits, &mut load),
                v => match amf_json::from_json(&v) {
                    Ok(v) => sos.operator_set(&name, &key, Some(v), limits, &mut load),
                    Err(e) => Err(format!("value of {key}: {e}")),
                },
            },
            A::Clear => sos.operator_clear(&name, &mut load),
        };
        match outcome {
            Ok(outcome) => {
                for warning in &outcome.warnings {
                    info!(%instance, "script's shared object: {warning}");
                }
                self.so_persist(&instance, &outcome.persist);
                self.so_route(&instance, outcome.sends);
            }
            Err(e) => {
                warn!(%instance, object = %name, error = %e, "script's shared object change refused")
            }
        }
    }

    /// On a worker with users: an update from the owner, to its local users.
    pub(super) fn so_deliver(
        &mut self,
        instance: InstanceKey,
        target: SoTarget,
        message: Arc<SoMessage>,
    ) {
        // Chunked at most once per framing (and chunk size), whatever the number of users:
        // each user's queue gets the same bytes, as viewers share a media frame. A server
        // session starts every message with a full header (`Framing::Full`), so the bytes
        // do not depend on what the connection sent before.
        let mut encoded: [Option<(u32, Bytes)>; 2] = [None, None];
        let mut write = |w: &mut Worker, r: ConnRef, amf3: bool| {
            let Some(c) = w.conns.get_mut(r).filter(|c| c.closing == Closing::Open) else {
                return;
            };
            let chunk_size = c.session.config().chunk_size;
            let slot = &mut encoded[usize::from(amf3)];
            let bytes = match slot {
                Some((size, bytes)) if *size == chunk_size => bytes.clone(),
                _ => {
                    let mut out = BytesMut::new();
                    encode_message(&message.to_message(amf3), chunk_size, &mut out);
                    let bytes = out.freeze();
                    *slot = Some((chunk_size, bytes.clone()));
                    bytes
                }
            };
            // What the session wrote for this client before goes first.
            c.queue_out();
            c.queue.push_control(bytes);
            w.send_now(r);
            WorkerStats::add(&w.shared.stats[w.id].so_messages_out, 1);
        };
        match target {
            SoTarget::One(r) => {
                let Some(&amf3) = self.so.clients.get(&r) else {
                    return; // gone meanwhile
                };
                if message.events.first() == Some(&SoEvent::UseSuccess) {
                    let users = self
                        .so
                        .local
                        .entry((instance, message.name.clone()))
                        .or_default();
                    if !users.iter().any(|(u, _)| *u == r) {
                        users.push((r, amf3));
                    }
                }
                write(self, r, amf3);
            }
            SoTarget::All { except } => {
                let key = (instance, message.name.clone());
                // Taken out while the connections are written to, then put back.
                let Some(users) = self.so.local.remove(&key) else {
                    return;
                };
                for &(r, amf3) in &users {
                    if Some(r) != except {
                        write(self, r, amf3);
                    }
                }
                self.so.local.insert(key, users);
            }
        }
    }

    /// Hands the changed persistent objects' state to the disk writer (with
    /// `[shared_objects] dir`; without it they live in memory only).
    pub(super) fn so_persist(&mut self, instance: &InstanceKey, names: &[String]) {
        let Some(dir) = self.config.shared_objects.dir.as_deref() else {
            return;
        };
        if names.is_empty() {
            return;
        }
        if self.so.writer.is_none() {
            match so_disk::Writer::start() {
                Ok(w) => self.so.writer = Some(w),
                Err(e) => {
                    warn!(error = %e, "cannot start the shared object writer; not stored");
                    return;
                }
            }
        }
        let (Some(writer), Some(sos)) = (&self.so.writer, self.so.owned.get(instance)) else {
            return;
        };
        for name in names {
            if let Some(so) = sos.get(name) {
                writer.write(
                    so_disk::path(dir, instance, name),
                    so.version(),
                    &so.slots(),
                );
            }
        }
    }
}

impl Worker {
    /// On the owner: an operator's `so` request. A change reaches the users at once, as a
    /// change by the server.
    pub(super) fn so_operator(&mut self, call: SoCall) -> Result<Vec<SoInfo>, String> {
        let config = Arc::clone(&self.config);
        let (app, instance, name) = match &call {
            SoCall::List { app, instance } => (app, instance, None),
            SoCall::Get {
                app,
                instance,
                name,
            }
            | SoCall::Set {
                app,
                instance,
                name,
                ..
            }
            | SoCall::Delete {
                app,
                instance,
                name,
                ..
            } => (app, instance, Some(name.clone())),
        };
        let key = InstanceKey::new(app, instance);
        let mut load = |name: &str| so_load(&config, &key, name);
        let sos = self.so.owned.entry(key.clone()).or_default();
        let outcome = match call {
            SoCall::List { .. } => {
                let infos = sos
                    .names()
                    .iter()
                    .filter_map(|n| sos.get(n).map(|so| so_info(so, false)))
                    .collect();
                self.so_forget_if_empty(&key);
                return Ok(infos);
            }
            SoCall::Get { name, .. } => {
                let info = match sos.get(&name) {
                    Some(so) => Some(so_info(so, true)),
                    None => load(&name).map(|(version, slots)| SoInfo {
                        name: name.clone(),
                        persistent: true,
                        version,
                        users: 0,
                        slots: Some(slots_json(&slots)),
                    }),
                };
                self.so_forget_if_empty(&key);
                return info
                    .map(|i| vec![i])
                    .ok_or(format!("no shared object {name}"));
            }
            SoCall::Set {
                name, slot, value, ..
            } => {
                // The control thread checked the value against the mapping already.
                let value = match amf_json::from_json(&value) {
                    Ok(v) => Some(v),
                    Err(e) => return Err(format!("value: {e}")),
                };
                sos.operator_set(&name, &slot, value, &config.shared_objects, &mut load)
            }
            SoCall::Delete {
                name,
                slot: Some(slot),
                ..
            } => sos.operator_set(&name, &slot, None, &config.shared_objects, &mut load),
            SoCall::Delete {
                name, slot: None, ..
            } => sos.operator_clear(&name, &mut load),
        };
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                self.so_forget_if_empty(&key);
                return Err(e);
            }
        };
        self.so_persist(&key, &outcome.persist);
        self.so_route(&key, outcome.sends);
        let name = name.unwrap_or_default();
        info!(instance = %key, object = %name, "shared object changed by an operator");
        Ok(self
            .so
            .owned
            .get(&key)
            .and_then(|sos| sos.get(&name))
            .map(|so| vec![so_info(so, true)])
            .unwrap_or_default())
    }

    fn so_forget_if_empty(&mut self, key: &InstanceKey) {
        if self.so.owned.get(key).is_some_and(SharedObjects::is_empty) {
            self.so.owned.remove(key);
        }
    }
}

fn slots_json(slots: &[(String, Amf0Value)]) -> serde_json::Value {
    serde_json::Value::Object(
        slots
            .iter()
            .map(|(k, v)| (k.clone(), amf_json::to_json(v)))
            .collect(),
    )
}

fn so_info(so: &SharedObject<SoUser>, with_slots: bool) -> SoInfo {
    SoInfo {
        name: so.name.clone(),
        persistent: so.persistent,
        version: so.version(),
        users: so.users().len() as u64,
        slots: with_slots.then(|| slots_json(&so.slots())),
    }
}

/// A persistent object's stored state, read at its first use.
fn so_load(config: &Config, instance: &InstanceKey, name: &str) -> Option<Stored> {
    let dir = config.shared_objects.dir.as_deref()?;
    so_disk::read(&so_disk::path(dir, instance, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Worker 0 of two, and worker 1's mailbox (the test reads what worker 0 posts there).
    fn two_workers() -> (Worker, MailboxReceiver<WorkerMsg>) {
        let (shared, mut receivers, _control_rx) = super::super::testing::shared(2);
        let rx1 = receivers.pop().expect("worker 1");
        let rx0 = receivers.pop().expect("worker 0");
        (super::super::testing::worker_of(shared, rx0), rx1)
    }

    /// The shared-object deliveries waiting in a mailbox: (target, first event).
    fn deliveries(rx: &MailboxReceiver<WorkerMsg>) -> Vec<(SoTarget, SoEvent)> {
        let mut out = Vec::new();
        while let Some(msg) = rx.try_recv() {
            if let WorkerMsg::SoDeliver {
                target, message, ..
            } = msg
            {
                out.push((target, message.events[0].clone()));
            }
        }
        out
    }

    fn user(worker: usize, slot: u32) -> SoUser {
        (
            worker,
            ConnRef {
                slot,
                generation: 1,
            },
        )
    }

    #[test]
    fn a_change_costs_each_worker_one_message_whatever_its_users() {
        let (mut w, rx1) = two_workers();
        let instance = InstanceKey::new("room", "_definst_");
        let message = |events| SoMessage {
            name: "chat".into(),
            version: 0,
            persistent: false,
            events,
        };
        for slot in 0..100 {
            w.so_request(
                instance.clone(),
                user((slot % 2) as usize, slot),
                0,
                message(vec![SoEvent::Use]),
            );
        }
        // Each use is answered to its user on its worker.
        assert_eq!(deliveries(&rx1).len(), 50);
        assert_eq!(deliveries(&w.mailbox).len(), 50);

        let sender = user(1, 7);
        w.so_request(
            instance,
            sender,
            0,
            message(vec![SoEvent::RequestChange {
                key: "x".into(),
                value: Amf0Value::Number(1.0),
            }]),
        );
        let to_1 = deliveries(&rx1);
        let to_0 = deliveries(&w.mailbox);
        assert!(
            matches!(&to_1[..], [
                (SoTarget::One(r), SoEvent::Success(_)),
                (SoTarget::All { except: Some(e) }, SoEvent::Change(_)),
            ] if *r == sender.1 && *e == sender.1),
            "{to_1:?}"
        );
        assert!(
            matches!(
                &to_0[..],
                [(SoTarget::All { except: None }, SoEvent::Change(_))]
            ),
            "{to_0:?}"
        );
    }
}
