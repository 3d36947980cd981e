//! `stratactl so list|get|set|delete APP[/INSTANCE] NAME [SLOT [VALUE]]`: the control call
//! each form makes, and how its answer prints.

use crate::protocol::{SoCall, SoInfo};
use crate::table::render;

/// The instance when the operator names only the application (AMS's default instance).
const DEFAULT_INSTANCE: &str = "_definst_";

#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum SoAction {
    /// The instance's shared objects: name, persistence, version, users
    List { instance: String },
    /// One object's slots
    Get { instance: String, name: String },
    /// Set a slot to a JSON value (clients see the change at once; null removes it)
    Set {
        instance: String,
        name: String,
        slot: String,
        value: String,
    },
    /// Remove a slot, or without SLOT clear the whole object
    Delete {
        instance: String,
        name: String,
        slot: Option<String>,
    },
}

/// `app/instance`, or `app` for its default instance.
fn split(path: &str) -> (String, String) {
    match path.split_once('/') {
        Some((app, instance)) if !instance.is_empty() => (app.into(), instance.into()),
        Some((app, _)) => (app.into(), DEFAULT_INSTANCE.into()),
        None => (path.into(), DEFAULT_INSTANCE.into()),
    }
}

/// The control call for an action.
pub fn call(action: SoAction) -> SoCall {
    match action {
        SoAction::List { instance } => {
            let (app, instance) = split(&instance);
            SoCall::List { app, instance }
        }
        SoAction::Get { instance, name } => {
            let (app, instance) = split(&instance);
            SoCall::Get {
                app,
                instance,
                name,
            }
        }
        SoAction::Set {
            instance,
            name,
            slot,
            value,
        } => {
            let (app, instance) = split(&instance);
            // A bare word is taken as a string, so `so set live chat topic rust` works.
            let value = serde_json::from_str(&value).unwrap_or(serde_json::Value::String(value));
            SoCall::Set {
                app,
                instance,
                name,
                slot,
                value,
            }
        }
        SoAction::Delete {
            instance,
            name,
            slot,
        } => {
            let (app, instance) = split(&instance);
            SoCall::Delete {
                app,
                instance,
                name,
                slot,
            }
        }
    }
}

/// A table of objects, each followed by its slots when the answer has them.
pub fn table(objects: &[SoInfo]) -> String {
    if objects.is_empty() {
        return "no shared objects\n".into();
    }
    let rows: Vec<Vec<String>> = objects
        .iter()
        .map(|o| {
            vec![
                o.name.clone(),
                if o.persistent {
                    "persistent"
                } else {
                    "temporary"
                }
                .into(),
                o.version.to_string(),
                o.users.to_string(),
            ]
        })
        .collect();
    let mut out = render(&["NAME", "KIND", "VERSION", "USERS"], &rows);
    for o in objects {
        if let Some(serde_json::Value::Object(slots)) = &o.slots {
            let rows: Vec<Vec<String>> = slots
                .iter()
                .map(|(k, v)| vec![k.clone(), v.to_string()])
                .collect();
            out.push('\n');
            out.push_str(&render(&["SLOT", "VALUE"], &rows));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_paths_and_values_parse_as_documented() {
        let set = call(SoAction::Set {
            instance: "live".into(),
            name: "chat".into(),
            slot: "n".into(),
            value: "[1, 2]".into(),
        });
        assert_eq!(
            set,
            SoCall::Set {
                app: "live".into(),
                instance: DEFAULT_INSTANCE.into(),
                name: "chat".into(),
                slot: "n".into(),
                value: serde_json::json!([1, 2]),
            }
        );
        assert!(matches!(
            call(SoAction::Set { instance: "a/room/1".into(), name: "x".into(), slot: "s".into(), value: "rust".into() }),
            SoCall::Set { instance, value, .. } if instance == "room/1" && value == "rust"
        ));
    }
}
