//! Auth hooks: asking an operator's HTTP endpoint whether a connect, publish or play may go
//! ahead, the way nginx-rtmp's `on_connect`/`on_publish`/`on_play` do: an HTTP POST of an
//! `application/x-www-form-urlencoded` form (`call`, `app`, `name`, `addr`, `clientid`,
//! `tcurl`, then the client's query arguments); any 2xx allows, anything else (including a
//! redirect, which is not followed) denies.

use crate::protocol::AuthRequest;
use std::time::Duration;

/// What the hook endpoint said, or why it could not say.
#[derive(Debug, Clone, PartialEq)]
pub enum HookOutcome {
    Allowed {
        status: u16,
    },
    Denied {
        status: u16,
    },
    /// Connection refused, timeout, bad URL...: the configured default applies.
    Failed {
        reason: String,
    },
}

/// The form fields nginx-rtmp sends, in its order, then the query arguments.
pub fn form_fields(req: &AuthRequest) -> Vec<(String, String)> {
    let mut fields = vec![
        ("call".to_string(), req.action.clone()),
        ("app".to_string(), req.app.clone()),
    ];
    if let Some(name) = &req.stream {
        fields.push(("name".into(), name.clone()));
    }
    fields.push(("addr".into(), host_of(&req.addr).to_string()));
    fields.push(("clientid".into(), req.client.to_string()));
    if let Some(tc_url) = &req.tc_url {
        fields.push(("tcurl".into(), tc_url.clone()));
    }
    if let Some(query) = &req.query {
        fields.extend(form_urlencoded::parse(query.as_bytes()).into_owned());
    }
    fields
}

/// nginx-rtmp sends the client's IP without the port.
fn host_of(addr: &str) -> &str {
    match addr.parse::<std::net::SocketAddr>() {
        Ok(_) => {
            let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
            host.trim_start_matches('[').trim_end_matches(']')
        }
        Err(_) => addr,
    }
}

/// An HTTP agent for hook calls: the whole call (connect, send, answer) bounded by
/// `timeout`, redirects not followed.
pub fn agent(timeout: Duration) -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(timeout)
        .redirects(0)
        .user_agent(concat!("stratactl/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Calls the hook at `url` for `req`. Blocks for at most the agent's timeout.
pub fn call(agent: &ureq::Agent, url: &str, req: &AuthRequest) -> HookOutcome {
    let fields = form_fields(req);
    let pairs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    match agent.post(url).send_form(&pairs) {
        Ok(resp) => {
            let status = resp.status();
            if (200..300).contains(&status) {
                HookOutcome::Allowed { status }
            } else {
                HookOutcome::Denied { status }
            }
        }
        Err(ureq::Error::Status(status, _)) => HookOutcome::Denied { status },
        Err(ureq::Error::Transport(t)) => HookOutcome::Failed {
            reason: t.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> AuthRequest {
        AuthRequest {
            request: 9,
            action: "publish".into(),
            client: 42,
            addr: "127.0.0.1:50000".into(),
            app: "live".into(),
            stream: Some("cam".into()),
            query: Some("key=s%20ecret&x=1".into()),
            tc_url: Some("rtmp://127.0.0.1/live".into()),
        }
    }

    #[test]
    fn the_form_is_nginx_rtmp_shaped() {
        let f = form_fields(&request());
        let get = |k: &str| f.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("call"), Some("publish"));
        assert_eq!(get("app"), Some("live"));
        assert_eq!(get("name"), Some("cam"));
        assert_eq!(get("addr"), Some("127.0.0.1"));
        assert_eq!(get("clientid"), Some("42"));
        assert_eq!(get("tcurl"), Some("rtmp://127.0.0.1/live"));
        assert_eq!(get("key"), Some("s ecret"));
        assert_eq!(get("x"), Some("1"));
    }

    #[test]
    fn ipv6_peers_lose_port_and_brackets() {
        assert_eq!(host_of("[::1]:5000"), "::1");
        assert_eq!(host_of("unix"), "unix");
    }

    #[test]
    fn an_unreachable_hook_is_a_failure_not_a_denial() {
        // A port just freed on loopback: nothing listens there.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        let out = call(
            &agent(Duration::from_millis(500)),
            &format!("http://127.0.0.1:{port}/auth"),
            &request(),
        );
        assert!(matches!(out, HookOutcome::Failed { .. }), "{out:?}");
    }
}
