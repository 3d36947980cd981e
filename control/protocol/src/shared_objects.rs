//! `so`: operators' and backends' access to an application instance's remote shared
//! objects. A change made here reaches every client using the object at once, as a change
//! by the server (AMS server-side `SharedObject.setProperty`).
//!
//! Slot values are JSON, mapped to and from AMF as RPC arguments are (the table in the
//! README, `dataplane/src/proto/amf_json.rs`): plain JSON types map to themselves, AMF types
//! JSON lacks (dates, typed objects, ByteArrays, ...) are one-key `$` marker objects.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum SoCall {
    /// The instance's objects in memory (in use, or persistent).
    List { app: String, instance: String },
    /// One object with its slots.
    Get {
        app: String,
        instance: String,
        name: String,
    },
    /// Sets a slot (a null value removes it). A persistent object not in memory is loaded.
    Set {
        app: String,
        instance: String,
        name: String,
        slot: String,
        value: serde_json::Value,
    },
    /// Removes a slot, or with no slot clears the whole object.
    Delete {
        app: String,
        instance: String,
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        slot: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SoInfo {
    pub name: String,
    pub persistent: bool,
    pub version: u32,
    /// Clients using it, over all workers.
    pub users: u64,
    /// The slots as a JSON object (`so get`); absent in `so list`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slots: Option<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Call, Request};

    #[test]
    fn a_set_request_reads_as_documented() {
        let line = r#"{"v":1,"id":3,"method":"so","params":{"op":"set","app":"live","instance":"_definst_","name":"chat","slot":"topic","value":{"a":[1,true]}}}"#;
        let r: Request = serde_json::from_str(line).expect("parses");
        assert_eq!(
            r.call,
            Call::So(SoCall::Set {
                app: "live".into(),
                instance: "_definst_".into(),
                name: "chat".into(),
                slot: "topic".into(),
                value: serde_json::json!({"a": [1, true]}),
            })
        );
    }
}
