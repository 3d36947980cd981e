//! The `on_call` webhook: a client's call to an application method, POSTed as JSON
//!
//! ```json
//! {"app": "chat", "instance": "room1",
//!  "client": {"id": 7, "addr": "127.0.0.1:50000", "tc_url": "rtmp://...", "object_encoding": 0},
//!  "method": "addUser", "args": ["ann", {"$date": 1700000000000}]}
//! ```
//!
//! and answered (2xx, JSON) with `{"result": value}` (the client's `_result`) or
//! `{"error": {"code", "description"}}` (its `_error`); anything else — a non-2xx status,
//! a body that is not such JSON, a timeout, a refused connection — is an `_error` with
//! `NetConnection.Call.Failed`. The reply may also ask the manager to call clients:
//! `"call": {"client": id, "method", "args", "timeout_ms"}` (or a list; `client` defaults
//! to the caller) and `"broadcast": {"app", "instance", "method", "args"}` (or a list; `app`
//! and `instance` default to the caller's, `"instance": "*"` means every instance). Values
//! are JSON in the AMF mapping README.md documents.

use crate::protocol::{Call, RpcError, RpcOutcome, RpcRequest};
use serde::Deserialize;
use serde_json::{json, Value};

/// What the hook said: the call's outcome, and the calls it asks for afterwards.
#[derive(Debug, Clone, PartialEq)]
pub struct HookReply {
    pub outcome: RpcOutcome,
    pub asks: Vec<Call>,
}

impl HookReply {
    fn failed(why: String) -> Self {
        HookReply {
            outcome: RpcOutcome::failed(why),
            asks: Vec::new(),
        }
    }
}

/// The JSON body POSTed for `req`.
pub fn body(req: &RpcRequest) -> Value {
    json!({
        "app": req.app,
        "instance": req.instance,
        "client": req.client,
        "method": req.method,
        "args": req.args,
    })
}

/// Calls the hook at `url` for `req`. Blocks for at most the agent's timeout.
pub fn call(agent: &ureq::Agent, url: &str, req: &RpcRequest) -> HookReply {
    let sent = agent
        .post(url)
        .set("Content-Type", "application/json")
        .send_string(&body(req).to_string());
    match sent {
        Ok(resp) => match resp.into_string() {
            Ok(text) => parse_reply(&text, req),
            Err(e) => HookReply::failed(format!("hook answer unreadable: {e}")),
        },
        Err(ureq::Error::Status(status, _)) => {
            HookReply::failed(format!("hook answered HTTP {status}"))
        }
        Err(ureq::Error::Transport(t)) => HookReply::failed(format!("hook failed: {t}")),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallAsk {
    client: Option<u64>,
    method: String,
    #[serde(default)]
    args: Vec<Value>,
    timeout_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BroadcastAsk {
    app: Option<String>,
    instance: Option<String>,
    method: String,
    #[serde(default)]
    args: Vec<Value>,
}

/// One object or a list of them.
fn one_or_many<T: for<'de> Deserialize<'de>>(v: &Value) -> Result<Vec<T>, serde_json::Error> {
    match v {
        Value::Array(_) => serde_json::from_value(v.clone()),
        _ => serde_json::from_value(v.clone()).map(|one| vec![one]),
    }
}

/// The hook's 2xx body, for the call `req`.
pub fn parse_reply(text: &str, req: &RpcRequest) -> HookReply {
    let Ok(Value::Object(m)) = serde_json::from_str::<Value>(text) else {
        return HookReply::failed("hook answered something other than a JSON object".into());
    };
    let outcome = match (m.get("result"), m.get("error")) {
        (_, Some(e)) => match serde_json::from_value::<RpcError>(e.clone()) {
            Ok(e) => RpcOutcome {
                result: None,
                error: Some(e),
            },
            Err(_) => {
                return HookReply::failed("hook's error is not {\"code\", \"description\"}".into())
            }
        },
        (Some(v), None) => RpcOutcome::result(v.clone()),
        (None, None) => RpcOutcome::result(json!({"$undefined": true})),
    };
    let mut asks = Vec::new();
    if let Some(v) = m.get("call") {
        match one_or_many::<CallAsk>(v) {
            Ok(calls) => asks.extend(calls.into_iter().map(|c| Call::ClientCall {
                client: c.client.unwrap_or(req.client.id),
                method: c.method,
                args: c.args,
                timeout_ms: c.timeout_ms,
            })),
            Err(e) => tracing::warn!("hook for {}: ignoring its \"call\": {e}", req.method),
        }
    }
    if let Some(v) = m.get("broadcast") {
        match one_or_many::<BroadcastAsk>(v) {
            Ok(all) => asks.extend(all.into_iter().map(|b| Call::Broadcast {
                app: b.app.unwrap_or_else(|| req.app.clone()),
                instance: match b.instance.as_deref() {
                    Some("*") => None,
                    Some(i) => Some(i.to_string()),
                    None => Some(req.instance.clone()),
                },
                method: b.method,
                args: b.args,
            })),
            Err(e) => tracing::warn!("hook for {}: ignoring its \"broadcast\": {e}", req.method),
        }
    }
    HookReply { outcome, asks }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::RpcClient;

    fn request() -> RpcRequest {
        RpcRequest {
            request: 1,
            app: "chat".into(),
            instance: "room".into(),
            client: RpcClient {
                id: 7,
                addr: "127.0.0.1:5".into(),
                tc_url: None,
                object_encoding: 0.0,
            },
            method: "say".into(),
            args: vec![json!("hi")],
        }
    }

    #[test]
    fn the_body_is_the_documented_shape() {
        let b = body(&request());
        assert_eq!(b["app"], "chat");
        assert_eq!(b["instance"], "room");
        assert_eq!(b["client"]["id"], 7);
        assert_eq!(b["method"], "say");
        assert_eq!(b["args"], json!(["hi"]));
        assert!(b.get("request").is_none());
    }

    #[test]
    fn replies_become_outcomes() {
        let r = request();
        assert_eq!(
            parse_reply(r#"{"result": null}"#, &r).outcome,
            RpcOutcome::result(Value::Null)
        );
        assert_eq!(
            parse_reply(
                r#"{"error": {"code": "Chat.Muted", "description": "muted"}}"#,
                &r
            )
            .outcome,
            RpcOutcome::error("Chat.Muted", "muted")
        );
        for bad in ["[1]", "not json", r#"{"error": "x"}"#] {
            let out = parse_reply(bad, &r).outcome;
            assert_eq!(
                out.error.map(|e| e.code).as_deref(),
                Some("NetConnection.Call.Failed"),
                "{bad}"
            );
        }
    }

    #[test]
    fn replies_may_ask_for_calls_and_broadcasts() {
        let r = request();
        let reply = parse_reply(
            r#"{"result": 1,
                "call": {"method": "welcome", "args": ["ann"]},
                "broadcast": [{"method": "joined", "args": ["ann"]},
                              {"instance": "*", "method": "count", "args": [3]}]}"#,
            &r,
        );
        assert_eq!(
            reply.asks,
            vec![
                Call::ClientCall {
                    client: 7,
                    method: "welcome".into(),
                    args: vec![json!("ann")],
                    timeout_ms: None
                },
                Call::Broadcast {
                    app: "chat".into(),
                    instance: Some("room".into()),
                    method: "joined".into(),
                    args: vec![json!("ann")]
                },
                Call::Broadcast {
                    app: "chat".into(),
                    instance: None,
                    method: "count".into(),
                    args: vec![json!(3)]
                },
            ]
        );
    }

    #[test]
    fn an_unreachable_hook_fails_the_call() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        let agent = crate::hooks::agent(std::time::Duration::from_millis(500));
        let out = call(&agent, &format!("http://127.0.0.1:{port}/rpc"), &request());
        assert_eq!(
            out.outcome.error.map(|e| e.code).as_deref(),
            Some("NetConnection.Call.Failed")
        );
    }
}
