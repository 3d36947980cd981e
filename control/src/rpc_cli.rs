//! `stratactl call` and `stratactl broadcast`: server-to-client calls from the command line.
//! Arguments are JSON values in the AMF mapping README.md documents; a word that is not
//! JSON is taken as a string, so `stratactl call 7 greet ann` works unquoted.

use crate::client::{ControlClient, DEFAULT_TIMEOUT};
use crate::protocol::{Call, Reply, RpcOutcome};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// Command-line arguments as JSON values.
pub fn args(words: &[String]) -> Vec<Value> {
    words
        .iter()
        .map(|w| serde_json::from_str(w).unwrap_or_else(|_| Value::String(w.clone())))
        .collect()
}

/// `APP` or `APP/INSTANCE`.
pub fn target(spec: &str) -> (String, Option<String>) {
    match spec.trim_matches('/').split_once('/') {
        Some((app, instance)) => (app.to_string(), Some(instance.to_string())),
        None => (spec.trim_matches('/').to_string(), None),
    }
}

/// Calls `method` on client `client` and returns what it answered.
pub fn call(
    socket: &Path,
    client: u64,
    method: String,
    args: Vec<Value>,
    timeout_ms: Option<u64>,
) -> Result<RpcOutcome, String> {
    let wait = Duration::from_millis(timeout_ms.unwrap_or(5_000)) + Duration::from_secs(2);
    let mut c = ControlClient::connect_with_timeout(socket, wait).map_err(|e| e.to_string())?;
    let call = Call::ClientCall {
        client,
        method,
        args,
        timeout_ms,
    };
    match c.request(call).map_err(|e| e.to_string())? {
        Reply::Answer { answer } => Ok(answer),
        other => Err(format!("unexpected answer: {other:?}")),
    }
}

/// Calls `method` on every client of `spec` (`APP` or `APP/INSTANCE`); says how many.
pub fn broadcast(
    socket: &Path,
    spec: &str,
    method: String,
    args: Vec<Value>,
) -> Result<String, String> {
    let (app, instance) = target(spec);
    let mut c =
        ControlClient::connect_with_timeout(socket, DEFAULT_TIMEOUT).map_err(|e| e.to_string())?;
    let call = Call::Broadcast {
        app,
        instance,
        method,
        args,
    };
    match c.request(call).map_err(|e| e.to_string())? {
        Reply::Done { message, .. } => Ok(message.unwrap_or_else(|| "sent".into())),
        other => Err(format!("unexpected answer: {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn words_are_json_or_strings() {
        let words: Vec<String> = ["1", "ann", r#"{"$date": 5}"#, "\"q\"", "[true]"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            args(&words),
            vec![
                json!(1),
                json!("ann"),
                json!({"$date": 5}),
                json!("q"),
                json!([true])
            ]
        );
    }

    #[test]
    fn targets_split_at_the_first_slash() {
        assert_eq!(target("chat"), ("chat".into(), None));
        assert_eq!(
            target("chat/room/1"),
            ("chat".into(), Some("room/1".into()))
        );
    }
}
