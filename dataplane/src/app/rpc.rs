//! NetConnection RPC as the application sees it, whatever answers it: which client calls
//! are for the application (not built in), what a call and its arguments look like to the
//! manager (JSON, in the mapping of `proto::amf_json`), and what an answer becomes on the
//! wire (`_result` / `_error`) — in both directions.

use control_protocol::{RpcClient, RpcOutcome, RpcRequest, CALL_FAILED};

use super::incoming_calls::Caller;
use super::request::Request;
use super::status;
use super::NetConnection;
use crate::proto::amf0::Amf0Value;
use crate::proto::amf_json;
use crate::proto::command::Command;

/// Whether `cmd` calls an application method: the client is connected and the method is
/// none of the built-in ones (those keep their own answers).
pub(crate) fn is_application_call(nc: &NetConnection, cmd: &Command) -> bool {
    nc.is_connected() && matches!(Request::from_command(cmd), Request::Unknown)
}

/// The manager's request for `cmd`, made by client `id` at `addr`.
pub(crate) fn request(
    request: u64,
    nc: &NetConnection,
    id: u64,
    addr: String,
    cmd: &Command,
) -> RpcRequest {
    RpcRequest {
        request,
        app: nc.app.clone(),
        instance: nc.instance.clone(),
        client: RpcClient {
            id,
            addr,
            tc_url: nc.tc_url.clone(),
            object_encoding: nc.object_encoding,
        },
        method: cmd.name.clone(),
        args: cmd.args.iter().map(amf_json::to_json).collect(),
    }
}

/// What `caller` is told: `_result` with the value or `_error` with the code and
/// description; None when it expects no answer (transaction 0).
pub(crate) fn answer(caller: Caller, outcome: &RpcOutcome) -> Option<Vec<Amf0Value>> {
    if caller.transaction == 0.0 {
        return None;
    }
    let tid = caller.transaction;
    Some(match (&outcome.result, &outcome.error) {
        (_, Some(e)) => status::error(tid, &e.code, &e.description),
        (Some(v), None) => match amf_json::from_json(v) {
            Ok(value) => status::result(tid, Amf0Value::Null, value),
            Err(e) => status::error(
                tid,
                CALL_FAILED,
                &format!("The handler's result does not map to AMF ({e})."),
            ),
        },
        // `{}`: a handler that returns nothing, as a function without `return` does.
        (None, None) => status::result(tid, Amf0Value::Null, Amf0Value::Undefined),
    })
}

/// A client's answer to our call: its `_result` value (the first argument after the command
/// object, which Flash sends as null), or its `_error` info's code and description.
pub(crate) fn outcome_of(ok: bool, answer: &Command) -> RpcOutcome {
    if ok {
        let value = answer.args.first().unwrap_or(&answer.command_object);
        return RpcOutcome::result(amf_json::to_json(value));
    }
    let code = answer.info_str("code").unwrap_or(CALL_FAILED);
    let description = answer.info_str("description").unwrap_or("");
    RpcOutcome::error(code, description)
}

/// A server-to-client call's arguments from JSON.
pub(crate) fn args_from_json(args: &[serde_json::Value]) -> Result<Vec<Amf0Value>, String> {
    args.iter()
        .map(|a| amf_json::from_json(a).map_err(|e| e.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::Config;
    use crate::proto::amf0::Amf0Value as V;

    fn cmd(name: &str, tid: f64, args: Vec<V>) -> Command {
        Command {
            name: name.into(),
            transaction_id: tid,
            command_object: V::Null,
            args,
        }
    }

    fn connected() -> NetConnection {
        let mut nc = NetConnection::new();
        let mut c = cmd("connect", 1.0, vec![]);
        c.command_object = V::object([("app", V::string("chat/room"))]);
        nc.on_command(0, &c, &Config::default(), &mut Vec::new());
        nc
    }

    #[test]
    fn only_unknown_methods_of_connected_clients_are_application_calls() {
        let nc = connected();
        assert!(is_application_call(&nc, &cmd("addUser", 2.0, vec![])));
        assert!(!is_application_call(&nc, &cmd("createStream", 2.0, vec![])));
        assert!(!is_application_call(&nc, &cmd("_result", 2.0, vec![])));
        assert!(!is_application_call(
            &NetConnection::new(),
            &cmd("addUser", 2.0, vec![])
        ));
    }

    #[test]
    fn the_request_carries_the_call_as_json() {
        let nc = connected();
        let c = cmd(
            "add",
            3.0,
            vec![V::Number(1.0), V::object([("x", V::Undefined)])],
        );
        let r = request(9, &nc, 4, "127.0.0.1:1".into(), &c);
        assert_eq!((r.app.as_str(), r.instance.as_str()), ("chat", "room"));
        assert_eq!(r.method, "add");
        assert_eq!(r.args, vec![json!(1.0), json!({"x": {"$undefined": true}})]);
        assert_eq!(r.client.id, 4);
    }

    #[test]
    fn outcomes_become_result_or_error_with_the_transaction() {
        let caller = Caller {
            stream_id: 0,
            transaction: 5.0,
        };
        let ok = answer(caller, &RpcOutcome::result(json!({"$date": 2.0}))).expect("answer");
        assert_eq!(ok[0].as_str(), Some("_result"));
        assert_eq!(ok[1], V::Number(5.0));
        assert_eq!(
            ok[3],
            V::Date {
                millis: 2.0,
                time_zone: 0
            }
        );
        let err = answer(caller, &RpcOutcome::error("App.Denied", "no")).expect("answer");
        assert_eq!(err[0].as_str(), Some("_error"));
        assert_eq!(err[3].get("code").and_then(V::as_str), Some("App.Denied"));
        assert_eq!(err[3].get("description").and_then(V::as_str), Some("no"));
        let bad = answer(caller, &RpcOutcome::result(json!({"$bytes": "%%"}))).expect("answer");
        assert_eq!(bad[3].get("code").and_then(V::as_str), Some(CALL_FAILED));
        let silent = Caller {
            stream_id: 0,
            transaction: 0.0,
        };
        assert_eq!(
            answer(silent, &RpcOutcome::failed("x")),
            None,
            "transaction 0 expects no answer"
        );
    }

    #[test]
    fn a_clients_answer_becomes_an_outcome() {
        let ok = cmd("_result", 1.0, vec![V::string("pong")]);
        assert_eq!(outcome_of(true, &ok), RpcOutcome::result(json!("pong")));
        let info = V::object([
            ("code", V::string("NetConnection.Call.Failed")),
            ("description", V::string("Method not found")),
        ]);
        let err = cmd("_error", 1.0, vec![info]);
        assert_eq!(
            outcome_of(false, &err),
            RpcOutcome::error("NetConnection.Call.Failed", "Method not found")
        );
    }
}
