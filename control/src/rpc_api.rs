//! The admin API's RPC routes (see `admin_api`'s table): a call to one client, answered
//! with what the client returned, and a broadcast to an application (instance).

use crate::admin_api::{client_error, control, error, Answer, JSON};
use crate::client::ControlClient;
use crate::manager::Shared;
use crate::protocol::{Call, Reply};
use serde::Deserialize;
use serde_json::Value;
use std::io::Read;
use std::time::Duration;

/// Request bodies are a method and its arguments: small.
const MAX_BODY: u64 = 64 * 1024;

/// The request's body, as text (empty for none).
pub(crate) fn body(req: &mut tiny_http::Request) -> Result<String, Answer> {
    let mut text = String::new();
    let read = req.as_reader().take(MAX_BODY + 1).read_to_string(&mut text);
    match read {
        Ok(_) if text.len() as u64 > MAX_BODY => Err(error(413, "too_large", "body over 64 KiB")),
        Ok(_) => Ok(text),
        Err(e) => Err(error(400, "bad_request", &format!("body: {e}"))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallBody {
    method: String,
    #[serde(default)]
    args: Vec<Value>,
    timeout_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BroadcastBody {
    method: String,
    #[serde(default)]
    args: Vec<Value>,
}

/// `POST /api/v1/clients/{id}/call`: 200 with `{"result": v}` or `{"error": {...}}` as the
/// client answered; 404 for no such client, 504 when it does not answer in time.
pub(crate) fn client_call(shared: &Shared, rest: &str, body: &str) -> Answer {
    let Some((id, "call")) = rest.split_once('/') else {
        return error(404, "not_found", "expected /api/v1/clients/{id}/call");
    };
    let Ok(client) = id.parse::<u64>() else {
        return error(400, "bad_request", &format!("not a client id: {id:?}"));
    };
    let b: CallBody = match serde_json::from_str(body) {
        Ok(b) => b,
        Err(e) => return error(400, "bad_request", &format!("body: {e}")),
    };
    let wait = Duration::from_millis(b.timeout_ms.unwrap_or(5_000)) + Duration::from_secs(2);
    let call = Call::ClientCall {
        client,
        method: b.method,
        args: b.args,
        timeout_ms: b.timeout_ms,
    };
    let asked = ControlClient::connect_with_timeout(&shared.opts.socket, wait)
        .and_then(|mut c| c.request(call));
    match asked {
        Ok(Reply::Answer { answer }) => match serde_json::to_string(&answer) {
            Ok(text) => (200, JSON, text),
            Err(e) => error(500, "internal", &e.to_string()),
        },
        Ok(other) => error(502, "bad_gateway", &format!("unexpected answer: {other:?}")),
        Err(e) => client_error(&e),
    }
}

/// `POST /api/v1/broadcast/{app}[/{instance}]`.
pub(crate) fn broadcast(shared: &Shared, target: &str, body: &str) -> Answer {
    let (app, instance) = crate::rpc_cli::target(&crate::admin_api::percent_decode(target));
    if app.is_empty() {
        return error(400, "bad_request", "no application named");
    }
    let b: BroadcastBody = match serde_json::from_str(body) {
        Ok(b) => b,
        Err(e) => return error(400, "bad_request", &format!("body: {e}")),
    };
    control(
        shared,
        Call::Broadcast {
            app,
            instance,
            method: b.method,
            args: b.args,
        },
    )
}
