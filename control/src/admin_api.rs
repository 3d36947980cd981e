//! The manager's HTTP surface: a JSON admin API under /api/v1/ mapping to control calls,
//! and Prometheus text at /metrics.
//!
//! | method and path              | control call   |
//! | ---------------------------- | -------------- |
//! | GET  /api/v1/status          | status         |
//! | GET  /api/v1/streams         | streams        |
//! | GET  /api/v1/clients         | clients        |
//! | POST /api/v1/kick/{id}       | kick           |
//! | POST /api/v1/stop/{stream}   | stop_stream    |
//! | POST /api/v1/reload          | reload         |
//! | GET  /api/v1/manager         | (the manager's own state) |
//! | POST /api/v1/clients/{id}/call, body `{"method", "args", "timeout_ms"}` | client_call |
//! | POST /api/v1/broadcast/{app}[/{instance}], body `{"method", "args"}`   | broadcast   |
//! | GET  /api/v1/so/{app}/{instance}               | so list  |
//! | GET  /api/v1/so/{app}/{instance}/{name}        | so get   |
//! | PUT  /api/v1/so/{app}/{instance}/{name}/{slot} | so set (body: the JSON value) |
//! | DELETE /api/v1/so/{app}/{instance}/{name}[/{slot}] | so delete (no slot: clear) |
//! | GET  /api/v1/multicast       | multicast list |
//! | POST /api/v1/multicast, body: an output (`{"stream", "group", "rtp", ...}`) | multicast add |
//! | DELETE /api/v1/multicast, body `{"stream", "group"}` | multicast remove |
//!
//! A success is 200 with the reply's `result` as the body. Errors are
//! `{"error": {"code", "message"}}`: 503 when stratad cannot be reached, 504 when it does not
//! answer, 404/400/409 for its `not_found`/`bad_request`/`invalid_config` errors.

use crate::client::{ClientError, ControlClient};
use crate::manager::Shared;
use crate::metrics;
use crate::protocol::{Call, Reply};
use serde_json::json;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tiny_http::{Header, Method, Request, Response};

/// How long one admin or metrics request waits for stratad.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) fn handle(shared: &Shared, mut req: Request) {
    let method = req.method().clone();
    let url = req.url().to_string();
    let path = url.split('?').next().unwrap_or("").to_string();
    let (status, content_type, body) = match crate::rpc_api::body(&mut req) {
        Ok(body) => match path.strip_prefix("/api/v1/so/") {
            Some(rest) => crate::admin_so::route(shared, &method, rest, Some(body.as_str())),
            None => route(shared, &method, &path, &body),
        },
        Err(answer) => answer,
    };
    let mut resp = Response::from_string(body).with_status_code(status);
    if let Ok(h) = Header::from_bytes("Content-Type", content_type) {
        resp = resp.with_header(h);
    }
    if let Err(e) = req.respond(resp) {
        tracing::debug!("HTTP client went away: {e}");
    }
}

pub(crate) type Answer = (u16, &'static str, String);

pub(crate) const JSON: &str = "application/json";

fn route(shared: &Shared, method: &Method, path: &str, body: &str) -> Answer {
    if path == "/metrics" {
        return match method {
            Method::Get | Method::Head => (200, metrics::CONTENT_TYPE, scrape(shared)),
            _ => not_allowed(),
        };
    }
    let Some(rest) = path.strip_prefix("/api/v1/") else {
        return error(404, "not_found", &format!("no such path: {path}"));
    };
    let get = matches!(method, Method::Get);
    let post = matches!(method, Method::Post);
    if rest == "multicast" {
        return multicast(shared, method, body);
    }
    match rest.split_once('/') {
        None => match (rest, get, post) {
            ("status", true, _) => control(shared, Call::Status),
            ("streams", true, _) => control(shared, Call::Streams),
            ("clients", true, _) => control(shared, Call::Clients),
            ("vod", true, _) => control(shared, crate::vod_command::call(None)),
            ("reload", _, true) => control(shared, Call::Reload),
            ("manager", true, _) => manager_state(shared),
            ("status" | "streams" | "clients" | "vod" | "reload" | "manager", _, _) => {
                not_allowed()
            }
            _ => error(404, "not_found", &format!("no such path: {path}")),
        },
        Some(("kick", id)) if post => match id.parse::<u64>() {
            Ok(client) => control(shared, Call::Kick { client }),
            Err(_) => error(400, "bad_request", &format!("not a client id: {id:?}")),
        },
        Some(("stop", stream)) if post => {
            let stream = percent_decode(stream);
            if stream.is_empty() {
                error(400, "bad_request", "no stream named")
            } else {
                control(shared, Call::StopStream { stream })
            }
        }
        Some(("vod", target)) if get => control(
            shared,
            crate::vod_command::call(Some(&percent_decode(target))),
        ),
        Some(("clients", rest)) if post => crate::rpc_api::client_call(shared, rest, body),
        Some(("broadcast", target)) if post => crate::rpc_api::broadcast(shared, target, body),
        Some(("kick" | "stop" | "clients" | "broadcast" | "vod", _)) => not_allowed(),
        _ => error(404, "not_found", &format!("no such path: {path}")),
    }
}

/// `/api/v1/multicast`: GET lists, POST adds the output in the body, DELETE removes the
/// one the body names.
fn multicast(shared: &Shared, method: &Method, body: &str) -> Answer {
    use crate::protocol::{MulticastCall, MulticastOutput};
    #[derive(serde::Deserialize)]
    struct Named {
        stream: String,
        group: std::net::SocketAddr,
    }
    let call = match method {
        Method::Get => MulticastCall::List,
        Method::Post => match serde_json::from_str::<MulticastOutput>(body) {
            Ok(output) => MulticastCall::Add { output },
            Err(e) => return error(400, "bad_request", &format!("body: {e}")),
        },
        Method::Delete => match serde_json::from_str::<Named>(body) {
            Ok(Named { stream, group }) => MulticastCall::Remove { stream, group },
            Err(e) => return error(400, "bad_request", &format!("body: {e}")),
        },
        _ => return not_allowed(),
    };
    control(shared, Call::Multicast(call))
}

pub(crate) fn not_allowed() -> Answer {
    error(405, "method_not_allowed", "wrong method for this path")
}

pub(crate) fn error(status: u16, code: &str, message: &str) -> Answer {
    (
        status,
        JSON,
        json!({"error": {"code": code, "message": message}}).to_string(),
    )
}

fn call(shared: &Shared, call: Call) -> Result<Reply, ClientError> {
    ControlClient::connect_with_timeout(&shared.opts.socket, CONTROL_TIMEOUT)?.request(call)
}

pub(crate) fn control(shared: &Shared, c: Call) -> Answer {
    match call(shared, c) {
        Ok(reply) => match serde_json::to_string(&reply) {
            Ok(body) => (200, JSON, body),
            Err(e) => error(500, "internal", &e.to_string()),
        },
        Err(e) => client_error(&e),
    }
}

pub(crate) fn client_error(e: &ClientError) -> Answer {
    let msg = e.to_string();
    match e {
        ClientError::NoStratad { .. } | ClientError::PermissionDenied { .. } => {
            error(503, "unavailable", &msg)
        }
        ClientError::Timeout { .. } => error(504, "timeout", &msg),
        ClientError::Server(body) => {
            let status = match body.code.as_str() {
                "not_found" => 404,
                "bad_request" | "unknown_method" | "unsupported_version" => 400,
                "invalid_config" => 409,
                "busy" => 503,
                _ => 502,
            };
            error(status, &body.code, &body.message)
        }
        _ => error(502, "bad_gateway", &msg),
    }
}

fn manager_state(shared: &Shared) -> Answer {
    let c = shared.counters();
    let body = json!({
        "socket": shared.opts.socket,
        "connected": shared.connected.load(Ordering::Relaxed),
        "reconnects": c.reconnects,
        "events": c.events.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "auth_defaulted": c.auth_defaulted,
    });
    (200, JSON, body.to_string())
}

fn scrape(shared: &Shared) -> String {
    let counters = shared.counters();
    let fetched = (|| -> Result<_, ClientError> {
        let mut client = ControlClient::connect_with_timeout(&shared.opts.socket, CONTROL_TIMEOUT)?;
        let status = match client.request(Call::Status)? {
            Reply::Status(s) => s,
            other => {
                return Err(ClientError::Protocol {
                    path: shared.opts.socket.clone(),
                    message: format!("status answered with {other:?}"),
                })
            }
        };
        let streams = match client.request(Call::Streams)? {
            Reply::Streams { streams } => streams,
            _ => Vec::new(),
        };
        let mut upstreams = match client.request(Call::Upstreams)? {
            Reply::Upstreams { upstreams } => upstreams,
            _ => Vec::new(),
        };
        // The standing FCAddChild links, as rows with stream `*`.
        if let Ok(Reply::Upstreams { upstreams: links }) = client.request(Call::UpstreamLinks) {
            upstreams.extend(links);
        }
        Ok((status, streams, upstreams))
    })();
    match fetched {
        Ok((status, streams, upstreams)) => {
            metrics::render(Some((&status, &streams)), &counters)
                + &metrics::render_upstreams(&upstreams)
        }
        Err(e) => {
            tracing::debug!("metrics scrape without stratad: {e}");
            metrics::render(None, &counters)
        }
    }
}

/// Decodes %XX escapes in a path segment (stream names may hold '/' as %2F or plainly).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn stream_paths_decode() {
        assert_eq!(
            percent_decode("live%2F_definst_%2Fcam"),
            "live/_definst_/cam"
        );
        assert_eq!(percent_decode("live/cam"), "live/cam");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("a%zz"), "a%zz");
    }
}
