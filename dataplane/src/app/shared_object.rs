//! One remote shared object, sans-IO: its slots, version and users, and what each
//! operation tells whom. The instance's store (`shared_objects.rs`) holds the objects and
//! the limits; the owner worker delivers what comes out.
//!
//! Semantics, as AMS does them (PROTOCOL-NOTES §Remote shared objects; Red5
//! `SharedObject.java`; Adobe's `SharedObject.onSync` documentation):
//! - use: the user gets use success, clear when the object is temporary, then every slot as
//!   one change event;
//! - a batch of changes (one message's request change/remove events): the version rises
//!   once; the sender gets success per slot, every other user gets the changes (a null or
//!   undefined value removes the slot);
//! - concurrent changes of one slot: the first to reach the owner wins. A request based on
//!   a version older than the slot's last change by someone else is refused, and the sender
//!   gets a change with the winning value (Red5 `returnAttributeValue` sends
//!   `CLIENT_UPDATE_DATA`), which Flash Player's onSync reports as `reject` for a slot it
//!   had asked to change;
//! - send message: every user, the sender included (AMS `SharedObject.send`).

use std::collections::BTreeMap;

use crate::proto::amf0::{self, Amf0Value};
use crate::proto::rtmp::shared_object::{SoEvent, SoMessage};

/// Who an update is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum To<U> {
    User(U),
    All,
    AllBut(U),
}

/// Status codes a user may get about an object (onSync never sees them; the client's
/// `SharedObject` gets them as an `onStatus`-like status event).
pub(crate) mod code {
    /// Used as persistent while it is temporary here, or the other way round (AMS).
    pub(crate) const BAD_PERSISTENCE: &str = "SharedObject.BadPersistence";
    /// A limit (slots, bytes, objects, changes per second) refused the request.
    pub(crate) const LIMIT: &str = "SharedObject.LimitExceeded";
    /// The client's readAccess (set by the application's script) does not cover the object.
    pub(crate) const NO_READ_ACCESS: &str = "SharedObject.NoReadAccess";
    /// Its writeAccess does not: changes and sends are refused.
    pub(crate) const NO_WRITE_ACCESS: &str = "SharedObject.NoWriteAccess";
}

/// What a change of one slot became.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// Another user changed the slot after the version the request was based on.
    Conflict,
    /// Over a limit: the reason is logged and sent as a status.
    Limit(String),
}

#[derive(Debug, Clone)]
struct Slot<U> {
    value: Amf0Value,
    /// The version that last changed it, and by whom (None: an operator).
    version: u32,
    by: Option<U>,
    /// Its key and encoded value, counted against the object's byte limit.
    bytes: usize,
}

#[derive(Debug)]
pub(crate) struct SharedObject<U> {
    pub(crate) name: String,
    pub(crate) persistent: bool,
    version: u32,
    slots: BTreeMap<String, Slot<U>>,
    users: Vec<U>,
    bytes: usize,
}

/// The bytes a slot costs: its key and its value as AMF0.
fn slot_bytes(key: &str, value: &Amf0Value) -> usize {
    let mut encoded = Vec::new();
    amf0::encode(value, &mut encoded);
    key.len() + encoded.len()
}

fn removes(value: &Amf0Value) -> bool {
    matches!(value, Amf0Value::Null | Amf0Value::Undefined)
}

impl<U: Copy + PartialEq> SharedObject<U> {
    pub(crate) fn new(name: &str, persistent: bool) -> Self {
        SharedObject {
            name: name.to_string(),
            persistent,
            version: 0,
            slots: BTreeMap::new(),
            users: Vec::new(),
            bytes: 0,
        }
    }

    /// An object as stored: its version and slots (loaded from disk).
    pub(crate) fn restored(name: &str, version: u32, slots: Vec<(String, Amf0Value)>) -> Self {
        let mut so = SharedObject::new(name, true);
        so.version = version;
        for (key, value) in slots {
            let bytes = slot_bytes(&key, &value);
            so.bytes += bytes;
            so.slots.insert(
                key,
                Slot {
                    value,
                    version,
                    by: None,
                    bytes,
                },
            );
        }
        so
    }

    pub(crate) fn version(&self) -> u32 {
        self.version
    }

    pub(crate) fn users(&self) -> &[U] {
        &self.users
    }

    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    #[cfg(test)]
    pub(crate) fn slot_count(&self) -> usize {
        self.slots.len()
    }

    #[cfg(test)]
    pub(crate) fn get(&self, key: &str) -> Option<&Amf0Value> {
        self.slots.get(key).map(|s| &s.value)
    }

    /// Every slot, in key order.
    pub(crate) fn slots(&self) -> Vec<(String, Amf0Value)> {
        self.slots
            .iter()
            .map(|(k, s)| (k.clone(), s.value.clone()))
            .collect()
    }

    pub(crate) fn message(&self, events: Vec<SoEvent>) -> SoMessage {
        SoMessage {
            name: self.name.clone(),
            version: self.version,
            persistent: self.persistent,
            events,
        }
    }

    /// `user` starts using the object: what it gets first.
    pub(crate) fn add_user(&mut self, user: U) -> SoMessage {
        if !self.users.contains(&user) {
            self.users.push(user);
        }
        let mut events = vec![SoEvent::UseSuccess];
        if !self.persistent {
            events.push(SoEvent::Clear);
        }
        if !self.slots.is_empty() {
            events.push(SoEvent::Change(self.slots()));
        }
        self.message(events)
    }

    /// Returns whether `user` was using it.
    pub(crate) fn remove_user(&mut self, user: U) -> bool {
        let before = self.users.len();
        self.users.retain(|u| *u != user);
        self.users.len() != before
    }

    pub(crate) fn has_user(&self, user: U) -> bool {
        self.users.contains(&user)
    }

    /// Whether a change of `key` by `by`, based on version `base`, loses to an earlier one.
    fn conflicts(&self, key: &str, base: u32, by: Option<U>) -> bool {
        by.is_some()
            && self
                .slots
                .get(key)
                .is_some_and(|s| s.version > base && s.by != by)
    }

    /// Checks one change against the object's limits; `Ok(bytes delta)`.
    fn check(
        &self,
        key: &str,
        value: &Amf0Value,
        max_slots: usize,
        max_bytes: usize,
    ) -> Result<(usize, usize), Refusal> {
        let old = self.slots.get(key).map_or(0, |s| s.bytes);
        if removes(value) {
            return Ok((old, 0));
        }
        if old == 0 && self.slots.len() >= max_slots {
            return Err(Refusal::Limit(format!(
                "object {} has {} slots, the limit",
                self.name, max_slots
            )));
        }
        let new = slot_bytes(key, value);
        if self.bytes - old + new > max_bytes {
            return Err(Refusal::Limit(format!(
                "object {} would hold {} bytes, over the limit of {max_bytes}",
                self.name,
                self.bytes - old + new
            )));
        }
        Ok((old, new))
    }

    /// Applies a batch of changes (`None` value: remove) by `by` (None: an operator), each
    /// based on version `base`, checked against the limits (and `allowed`, the sender's
    /// rate, per change). Returns what each user must be told and the refusals; the version
    /// rises once if anything changed.
    pub(crate) fn apply(
        &mut self,
        by: Option<U>,
        base: u32,
        changes: Vec<(String, Amf0Value)>,
        limits: (usize, usize),
        mut allowed: impl FnMut() -> bool,
    ) -> Applied<U> {
        let (max_slots, max_bytes) = limits;
        let mut applied = Applied::default();
        let mut accepted: Vec<(String, Amf0Value)> = Vec::new();
        let mut to_sender = Vec::new();
        for (key, value) in changes {
            let refusal = if self.conflicts(&key, base, by) {
                Err(Refusal::Conflict)
            } else if by.is_some() && !allowed() {
                Err(Refusal::Limit("changes per second over the limit".into()))
            } else {
                self.check(&key, &value, max_slots, max_bytes)
            };
            match refusal {
                Ok((old, new)) => {
                    self.bytes = self.bytes - old + new;
                    if removes(&value) {
                        self.slots.remove(&key);
                    } else {
                        self.slots.insert(
                            key.clone(),
                            Slot {
                                value: value.clone(),
                                version: self.version + 1,
                                by,
                                bytes: new,
                            },
                        );
                    }
                    to_sender.push(SoEvent::Success(key.clone()));
                    accepted.push((key, value));
                }
                Err(refusal) => {
                    // The sender's copy goes back to what every user has.
                    to_sender.push(match self.slots.get(&key) {
                        Some(s) => SoEvent::Change(vec![(key.clone(), s.value.clone())]),
                        None => SoEvent::Remove(key.clone()),
                    });
                    if let Refusal::Limit(reason) = refusal {
                        applied.limit = Some(reason);
                    }
                }
            }
        }
        if !accepted.is_empty() {
            self.version += 1;
            applied.changed = true;
        }
        if applied.limit.is_some() {
            to_sender.push(SoEvent::Status {
                code: code::LIMIT.into(),
                level: "error".into(),
            });
        }
        let mut to_others = Vec::new();
        let mut pairs = Vec::new();
        for (key, value) in accepted {
            if removes(&value) {
                to_others.push(SoEvent::Remove(key));
            } else {
                pairs.push((key, value));
            }
        }
        if !pairs.is_empty() {
            to_others.insert(0, SoEvent::Change(pairs));
        }
        match by {
            Some(sender) => {
                if !to_sender.is_empty() {
                    applied
                        .sends
                        .push((To::User(sender), self.message(to_sender)));
                }
                if !to_others.is_empty() {
                    applied
                        .sends
                        .push((To::AllBut(sender), self.message(to_others)));
                }
            }
            None => {
                if !to_others.is_empty() {
                    applied.sends.push((To::All, self.message(to_others)));
                }
            }
        }
        applied
    }

    /// Removes every slot (an operator's clear): every user gets clear.
    pub(crate) fn clear(&mut self) -> SoMessage {
        self.slots.clear();
        self.bytes = 0;
        self.version += 1;
        self.message(vec![SoEvent::Clear])
    }
}

/// What a batch of changes became.
#[derive(Debug)]
pub(crate) struct Applied<U> {
    pub(crate) sends: Vec<(To<U>, SoMessage)>,
    /// Something changed (a persistent object must be written).
    pub(crate) changed: bool,
    /// A limit refused a change: the reason, for the log.
    pub(crate) limit: Option<String>,
}

impl<U> Default for Applied<U> {
    fn default() -> Self {
        Applied {
            sends: Vec::new(),
            changed: false,
            limit: None,
        }
    }
}
