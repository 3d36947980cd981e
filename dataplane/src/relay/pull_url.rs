//! A plain relay's far end, `rtmp://host[:port]/app[/instance]`, as nginx-rtmp's `pull` and
//! `push` take it. A `pull` URL is made into one upstream group whose primary and secondary
//! are that server, so a plain pull is a tiers pull with one group (connect on the first
//! viewer, retry with back-off, rebase across reconnects) without a host.ini; a `push` URL
//! is the target a published stream is forwarded to (`engine/worker/push.rs`), labelled
//! `push`. Addresses and applications follow host.ini's rules (`host_ini::parse_addr`,
//! `parse_app`).

use super::host_ini::{parse_addr, parse_app, UpstreamGroup};

/// Parses a pull URL; the error says what is wrong with it.
pub(crate) fn parse(url: &str) -> Result<UpstreamGroup, String> {
    parse_as("pull", url)
}

/// Parses a push target; the error says what is wrong with it.
pub(crate) fn parse_push(url: &str) -> Result<UpstreamGroup, String> {
    parse_as("push", url)
}

/// Parses the URI of a script's `NetConnection.connect`; the error says what is wrong.
pub(crate) fn parse_script(url: &str) -> Result<UpstreamGroup, String> {
    parse_as("NetConnection", url)
}

/// `kind` is the configuration key, and the label the group shows in `stratactl upstreams`
/// and events.
fn parse_as(kind: &str, url: &str) -> Result<UpstreamGroup, String> {
    let rest = url
        .strip_prefix("rtmp://")
        .ok_or_else(|| format!("{kind} {url:?}: expected rtmp://host[:port]/app[/instance]"))?;
    let (authority, path) = rest
        .split_once('/')
        .ok_or_else(|| format!("{kind} {url:?}: no application after the host"))?;
    let addr = parse_addr(authority).map_err(|e| format!("{kind} {url:?}: address {e}"))?;
    let (app, instance) = parse_app(path).map_err(|e| format!("{kind} {url:?}: {e}"))?;
    Ok(UpstreamGroup {
        label: kind.to_string(),
        primary: addr.clone(),
        secondary: addr,
        app,
        instance,
        line: 0,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_url_is_one_group_of_one_server() {
        let g = parse("rtmp://127.0.0.2:1936/live").expect("parses");
        assert_eq!(g.primary.to_string(), "127.0.0.2:1936");
        assert_eq!(g.primary, g.secondary);
        assert_eq!((g.app.as_str(), g.instance), ("live", None));
        let g = parse("rtmp://origin.example/live/inst").expect("parses");
        assert_eq!(g.primary.to_string(), "origin.example:1935");
        assert_eq!(g.instance.as_deref(), Some("inst"));
    }

    #[test]
    fn bad_urls_say_why() {
        for (url, why) in [
            ("http://a/live", "expected rtmp://"),
            ("rtmp://127.0.0.1", "no application"),
            ("rtmp://127.0.0.1:0/live", "port"),
            ("rtmp://127.0.0.1/", "empty part"),
            ("rtmp://127.0.0.1/a/b/c", "app/instance"),
        ] {
            let e = parse(url).expect_err(url);
            assert!(e.contains(why), "{url}: {e}");
            let e = parse_push(url).expect_err(url);
            assert!(e.starts_with("push ") && e.contains(why), "{url}: {e}");
        }
    }

    proptest! {
        /// A configuration file is untrusted: any URL parses or is refused, never panics.
        #[test]
        fn any_url_never_panics(url in ".{0,80}") {
            let _ = parse(&url);
            let _ = parse(&format!("rtmp://{url}"));
        }
    }
}
