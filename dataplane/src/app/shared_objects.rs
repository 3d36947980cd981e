//! An application instance's shared objects, on its owner worker: the objects by name, the
//! limits, each user's change rate, and what a client's shared-object message does.
//! Sans-IO: time comes in as milliseconds, a persistent object's stored state through a
//! loader the caller gives, and what must be sent, logged or written comes out.

use std::collections::HashMap;
use std::hash::Hash;
use std::path::PathBuf;

use serde::Deserialize;

use super::shared_object::{code, SharedObject, To};
use crate::proto::amf0::Amf0Value;
use crate::proto::rtmp::shared_object::{SoEvent, SoMessage};

/// `[shared_objects]` in the configuration file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct SoConfig {
    /// Where persistent objects are stored, one directory per application instance. None:
    /// persistent objects live in memory only (and say so in the log at first use).
    pub(crate) dir: Option<PathBuf>,
    /// Most slots one object may hold.
    pub(crate) max_slots: usize,
    /// Most bytes (keys and AMF0-encoded values) one object may hold.
    pub(crate) max_bytes: usize,
    /// Most objects one application instance may hold at once.
    pub(crate) max_objects: usize,
    /// Most slot changes (and sends) one client may make per second (a burst of as many is
    /// allowed).
    pub(crate) max_changes_per_sec: u32,
}

impl Default for SoConfig {
    fn default() -> Self {
        SoConfig {
            dir: None,
            max_slots: 1024,
            max_bytes: 1 << 20,
            max_objects: 256,
            max_changes_per_sec: 200,
        }
    }
}

/// A client's allowance of changes: a token bucket refilled at `max_changes_per_sec`.
#[derive(Debug, Clone, Copy)]
struct Rate {
    tokens: f64,
    at_ms: u64,
}

impl Rate {
    /// Takes one change from the allowance, if there is one.
    fn take(&mut self) -> bool {
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// `user`'s allowance, refilled for the time since it was last used.
fn refill<'a, U: Eq + Hash>(
    rates: &'a mut HashMap<U, Rate>,
    user: U,
    now_ms: u64,
    config: &SoConfig,
) -> &'a mut Rate {
    let per_sec = f64::from(config.max_changes_per_sec);
    let rate = rates.entry(user).or_insert(Rate {
        tokens: per_sec,
        at_ms: now_ms,
    });
    let elapsed = now_ms.saturating_sub(rate.at_ms) as f64 / 1000.0;
    rate.tokens = (rate.tokens + elapsed * per_sec).min(per_sec);
    rate.at_ms = now_ms;
    rate
}

/// What handling one message or operator request produced.
#[derive(Debug)]
pub(crate) struct Outcome<U> {
    /// Messages to deliver, in order.
    pub(crate) sends: Vec<(To<U>, SoMessage)>,
    /// Refusals and oddities worth a log line naming the client.
    pub(crate) warnings: Vec<String>,
    /// Persistent objects whose state changed: the caller writes them.
    pub(crate) persist: Vec<String>,
}

impl<U> Default for Outcome<U> {
    fn default() -> Self {
        Outcome {
            sends: Vec::new(),
            warnings: Vec::new(),
            persist: Vec::new(),
        }
    }
}

/// A persistent object's stored state: version and slots.
pub(crate) type Stored = (u32, Vec<(String, Amf0Value)>);

#[derive(Debug)]
pub(crate) struct SharedObjects<U> {
    objects: HashMap<String, SharedObject<U>>,
    rates: HashMap<U, Rate>,
}

impl<U> Default for SharedObjects<U> {
    fn default() -> Self {
        SharedObjects {
            objects: HashMap::new(),
            rates: HashMap::new(),
        }
    }
}

fn status<U: Copy + PartialEq>(so: &SharedObject<U>, code: &str) -> SoMessage {
    so.message(vec![SoEvent::Status {
        code: code.into(),
        level: "error".into(),
    }])
}

impl<U: Copy + Eq + Hash> SharedObjects<U> {
    pub(crate) fn get(&self, name: &str) -> Option<&SharedObject<U>> {
        self.objects.get(name)
    }

    /// Names of the objects in memory.
    pub(crate) fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.objects.keys().cloned().collect();
        names.sort();
        names
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// A client's message, event by event. Consecutive changes and removals form one batch
    /// (one version step). `load` reads a persistent object's stored state.
    pub(crate) fn on_message(
        &mut self,
        user: U,
        message: SoMessage,
        now_ms: u64,
        config: &SoConfig,
        load: &mut dyn FnMut(&str) -> Option<Stored>,
    ) -> Outcome<U> {
        let mut out = Outcome::default();
        let name = message.name;
        let mut batch: Vec<(String, Amf0Value)> = Vec::new();
        for event in message.events {
            match event {
                SoEvent::RequestChange { key, value } => batch.push((key, value)),
                SoEvent::RequestRemove(key) => batch.push((key, Amf0Value::Undefined)),
                other => {
                    self.change(
                        user,
                        &name,
                        message.version,
                        &mut batch,
                        now_ms,
                        config,
                        &mut out,
                    );
                    match other {
                        SoEvent::Use => {
                            self.use_object(user, &name, message.persistent, config, load, &mut out)
                        }
                        SoEvent::Release => self.release(user, &name),
                        SoEvent::SendMessage { handler, args } => match self.objects.get(&name) {
                            // A send reaches every user: it counts against the same rate as
                            // a change, so one client cannot flood the others.
                            Some(so) if so.has_user(user) => {
                                if refill(&mut self.rates, user, now_ms, config).take() {
                                    out.sends.push((
                                        To::All,
                                        so.message(vec![SoEvent::SendMessage { handler, args }]),
                                    ));
                                } else {
                                    out.sends.push((To::User(user), status(so, code::LIMIT)));
                                    out.warnings.push(format!(
                                        "send on {name} refused: changes per second over the limit"
                                    ));
                                }
                            }
                            _ => out
                                .warnings
                                .push(format!("send on {name}, which it does not use, ignored")),
                        },
                        server_only => out.warnings.push(format!(
                            "a server's event sent by a client ignored: {server_only:?}"
                        )),
                    }
                }
            }
        }
        self.change(
            user,
            &name,
            message.version,
            &mut batch,
            now_ms,
            config,
            &mut out,
        );
        out
    }

    fn use_object(
        &mut self,
        user: U,
        name: &str,
        persistent: bool,
        config: &SoConfig,
        load: &mut dyn FnMut(&str) -> Option<Stored>,
        out: &mut Outcome<U>,
    ) {
        if !self.objects.contains_key(name) {
            if self.objects.len() >= config.max_objects {
                let so: SharedObject<U> = SharedObject::new(name, persistent);
                out.sends.push((To::User(user), status(&so, code::LIMIT)));
                out.warnings.push(format!(
                    "use of {name} refused: the instance holds {} objects, the limit",
                    config.max_objects
                ));
                return;
            }
            let so = match persistent.then(|| load(name)).flatten() {
                Some((version, slots)) => SharedObject::restored(name, version, slots),
                None => SharedObject::new(name, persistent),
            };
            self.objects.insert(name.to_string(), so);
        }
        let Some(so) = self.objects.get_mut(name) else {
            return;
        };
        if so.persistent != persistent {
            out.sends
                .push((To::User(user), status(so, code::BAD_PERSISTENCE)));
            out.warnings.push(format!(
                "use of {name} refused: it is {}",
                if so.persistent {
                    "persistent"
                } else {
                    "temporary"
                }
            ));
            return;
        }
        out.sends.push((To::User(user), so.add_user(user)));
    }

    /// `user` stops using `name`; a temporary object nobody uses is gone. A persistent one
    /// stays in memory (and on disk when `dir` is set) until the process ends: operators
    /// may change it while nobody uses it, and it counts against `max_objects`.
    fn release(&mut self, user: U, name: &str) {
        if let Some(so) = self.objects.get_mut(name) {
            so.remove_user(user);
            if so.users().is_empty() && !so.persistent {
                self.objects.remove(name);
            }
        }
    }

    /// `user` is gone (disconnected): it leaves every object.
    pub(crate) fn leave(&mut self, user: U) {
        self.rates.remove(&user);
        let names: Vec<String> = self
            .objects
            .iter()
            .filter(|(_, so)| so.has_user(user))
            .map(|(n, _)| n.clone())
            .collect();
        for name in names {
            self.release(user, &name);
        }
    }

    /// Applies the batch collected so far (empties it).
    #[expect(
        clippy::too_many_arguments,
        reason = "one batch's context, passed down from on_message once"
    )]
    fn change(
        &mut self,
        user: U,
        name: &str,
        base: u32,
        batch: &mut Vec<(String, Amf0Value)>,
        now_ms: u64,
        config: &SoConfig,
        out: &mut Outcome<U>,
    ) {
        if batch.is_empty() {
            return;
        }
        let changes = std::mem::take(batch);
        let Some(so) = self.objects.get_mut(name).filter(|so| so.has_user(user)) else {
            out.warnings
                .push(format!("change of {name}, which it does not use, ignored"));
            return;
        };
        let rate = refill(&mut self.rates, user, now_ms, config);
        let applied = so.apply(
            Some(user),
            base,
            changes,
            (config.max_slots, config.max_bytes),
            || rate.take(),
        );
        if let Some(reason) = applied.limit {
            out.warnings
                .push(format!("change of {name} refused: {reason}"));
        }
        if applied.changed && so.persistent {
            out.persist.push(name.to_string());
        }
        out.sends.extend(applied.sends);
    }

    /// An operator sets (`Some`) or removes (`None`) a slot of `name`, which must be in
    /// use or stored. Err: no such object, or a limit.
    pub(crate) fn operator_set(
        &mut self,
        name: &str,
        key: &str,
        value: Option<Amf0Value>,
        config: &SoConfig,
        load: &mut dyn FnMut(&str) -> Option<Stored>,
    ) -> Result<Outcome<U>, String> {
        self.resident(name, load)?;
        let so = self
            .objects
            .get_mut(name)
            .ok_or_else(|| format!("no shared object {name}"))?;
        let value = value.unwrap_or(Amf0Value::Undefined);
        let base = so.version();
        let applied = so.apply(
            None,
            base,
            vec![(key.to_string(), value)],
            (config.max_slots, config.max_bytes),
            || true,
        );
        if let Some(reason) = applied.limit {
            return Err(reason);
        }
        let mut out = Outcome::default();
        if applied.changed && so.persistent {
            out.persist.push(name.to_string());
        }
        out.sends = applied.sends;
        Ok(out)
    }

    /// An operator clears `name`: every user gets clear.
    pub(crate) fn operator_clear(
        &mut self,
        name: &str,
        load: &mut dyn FnMut(&str) -> Option<Stored>,
    ) -> Result<Outcome<U>, String> {
        self.resident(name, load)?;
        let so = self
            .objects
            .get_mut(name)
            .ok_or_else(|| format!("no shared object {name}"))?;
        let mut out = Outcome::default();
        out.sends.push((To::All, so.clear()));
        if so.persistent {
            out.persist.push(name.to_string());
        }
        Ok(out)
    }

    /// `name` in memory: in use, or loaded from its stored state.
    fn resident(
        &mut self,
        name: &str,
        load: &mut dyn FnMut(&str) -> Option<Stored>,
    ) -> Result<(), String> {
        if self.objects.contains_key(name) {
            return Ok(());
        }
        let (version, slots) = load(name).ok_or_else(|| format!("no shared object {name}"))?;
        self.objects.insert(
            name.to_string(),
            SharedObject::restored(name, version, slots),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests;
