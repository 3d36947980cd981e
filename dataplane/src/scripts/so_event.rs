//! A shared-object update as the script's `SharedObject` sees it (prelude.js's `so`
//! event): slots changed, removed or cleared, and `send` calls, values in the AMF-as-JSON
//! mapping.

use serde_json::{json, Map, Value};

use crate::proto::amf_json;
use crate::proto::rtmp::shared_object::{SoEvent, SoMessage};

pub(crate) fn event(message: &SoMessage) -> Value {
    let events: Vec<Value> = message
        .events
        .iter()
        .filter_map(|e| match e {
            SoEvent::Change(pairs) => {
                let slots: Map<String, Value> = pairs
                    .iter()
                    .map(|(k, v)| (k.clone(), amf_json::to_json(v)))
                    .collect();
                Some(json!({"t": "change", "slots": slots}))
            }
            SoEvent::Remove(key) => Some(json!({"t": "remove", "key": key})),
            SoEvent::Clear => Some(json!({"t": "clear"})),
            SoEvent::SendMessage { handler, args } => Some(json!({
                "t": "send",
                "handler": handler,
                "args": args.iter().map(amf_json::to_json).collect::<Vec<_>>(),
            })),
            // Use success, a change's success, statuses: nothing for the script's mirror.
            _ => None,
        })
        .collect();
    json!({"type": "so", "name": message.name, "version": message.version, "events": events})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::amf0::Amf0Value;

    #[test]
    fn updates_become_the_scripts_events() {
        let m = SoMessage {
            name: "room".into(),
            version: 3,
            persistent: false,
            events: vec![
                SoEvent::UseSuccess,
                SoEvent::Clear,
                SoEvent::Change(vec![("topic".into(), Amf0Value::string("rust"))]),
                SoEvent::Remove("old".into()),
                SoEvent::SendMessage {
                    handler: "msg".into(),
                    args: vec![Amf0Value::Number(1.0)],
                },
            ],
        };
        assert_eq!(
            event(&m),
            json!({"type": "so", "name": "room", "version": 3, "events": [
                {"t": "clear"},
                {"t": "change", "slots": {"topic": "rust"}},
                {"t": "remove", "key": "old"},
                {"t": "send", "handler": "msg", "args": [1.0]},
            ]})
        );
    }
}
