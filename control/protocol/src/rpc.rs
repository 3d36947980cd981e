//! RPC over the control socket, both ways (NetConnection calls; see README "RPC").
//!
//! - Client to server: after `rpc_register`, stratad sends `{"rpc": RpcRequest}` lines for
//!   every call a client makes to a method stratad does not have built in; the manager
//!   answers each with an `rpc_reply` request carrying an `RpcOutcome`.
//! - Server to client: `client_call` calls a method on one client and answers with
//!   `{"answer": RpcOutcome}` once the client answered (or with the timeout as an error);
//!   `broadcast` calls a method on every client of an application (instance) and expects
//!   no answer from them (transaction 0).
//!
//! Arguments and results are JSON in the AMF mapping that README.md documents
//! (`{"$date": ms}`, `{"$class": name, ...}`, `{"$bytes": base64}`, ...).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The `code` of an `_error` when no handler answered (none configured, the manager is
/// gone, the hook failed or timed out), as AMS says it.
pub const CALL_FAILED: &str = "NetConnection.Call.Failed";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RpcRequestLine {
    pub rpc: RpcRequest,
}

/// A client's call for the manager's `on_call` hook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RpcRequest {
    /// Answer with `rpc_reply { request: this }`.
    pub request: u64,
    pub app: String,
    pub instance: String,
    pub client: RpcClient,
    pub method: String,
    pub args: Vec<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RpcClient {
    pub id: u64,
    pub addr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tc_url: Option<String>,
    /// The NetConnection's objectEncoding (0: AMF0, 3: AMF3).
    pub object_encoding: f64,
}

/// What a call returned: `result` (its `_result`) or `error` (its `_error`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RpcOutcome {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RpcError>,
}

impl RpcOutcome {
    pub fn result(value: Value) -> Self {
        RpcOutcome {
            result: Some(value),
            error: None,
        }
    }

    pub fn error(code: &str, description: impl Into<String>) -> Self {
        RpcOutcome {
            result: None,
            error: Some(RpcError {
                code: code.into(),
                description: description.into(),
            }),
        }
    }

    /// `NetConnection.Call.Failed` with this description.
    pub fn failed(description: impl Into<String>) -> Self {
        RpcOutcome::error(CALL_FAILED, description)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RpcError {
    pub code: String,
    #[serde(default)]
    pub description: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_result_or_error() {
        let ok: RpcOutcome = serde_json::from_str(r#"{"result":{"a":1}}"#).expect("result");
        assert_eq!(ok, RpcOutcome::result(serde_json::json!({"a": 1})));
        let err: RpcOutcome =
            serde_json::from_str(r#"{"error":{"code":"App.Nope","description":"no"}}"#)
                .expect("error");
        assert_eq!(err, RpcOutcome::error("App.Nope", "no"));
        assert_eq!(
            serde_json::to_string(&RpcOutcome::failed("x")).expect("encode"),
            r#"{"error":{"code":"NetConnection.Call.Failed","description":"x"}}"#
        );
    }

    #[test]
    fn rpc_lines_round_trip() {
        for line in [
            r#"{"v":1,"id":5,"method":"rpc_register"}"#,
            r#"{"v":1,"id":6,"method":"rpc_reply","params":{"request":3,"result":[1,"a"]}}"#,
            r#"{"v":1,"id":7,"method":"rpc_reply","params":{"request":4,"error":{"code":"X","description":"y"}}}"#,
            r#"{"v":1,"id":8,"method":"client_call","params":{"client":2,"method":"hello","args":[{"$date":5.0}],"timeout_ms":500}}"#,
            r#"{"v":1,"id":9,"method":"broadcast","params":{"app":"chat","instance":"room","method":"say","args":["hi"]}}"#,
        ] {
            let r: crate::Request = serde_json::from_str(line).expect(line);
            assert_eq!(serde_json::to_string(&r).expect("encode"), line);
        }
        let rpc = r#"{"rpc":{"request":1,"app":"chat","instance":"_definst_","client":{"id":3,"addr":"127.0.0.1:5","object_encoding":0.0},"method":"add","args":[1,2]}}"#;
        assert!(matches!(
            serde_json::from_str::<crate::ServerLine>(rpc),
            Ok(crate::ServerLine::Rpc(_))
        ));
        let answer = r#"{"id":8,"result":{"answer":{"result":3}}}"#;
        let Ok(crate::ServerLine::Response(r)) = serde_json::from_str::<crate::ServerLine>(answer)
        else {
            panic!("a response")
        };
        assert!(
            matches!(r.result, Some(crate::Reply::Answer { .. })),
            "{r:?}"
        );
    }
}
