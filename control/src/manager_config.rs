//! The manager's configuration file (`stratactl serve --config FILE`), TOML:
//!
//! ```toml
//! socket = "/run/strata/stratad.sock"   # stratad's control socket
//! http = "127.0.0.1:8086"               # admin API and /metrics
//!
//! [hooks]
//! on_connect = "http://127.0.0.1:9000/auth"   # any of the three; an action with no URL is allowed
//! on_publish = "http://127.0.0.1:9000/auth"
//! on_play = "http://127.0.0.1:9000/auth"
//! timeout_ms = 2000      # a hook that has not answered by then gets `default`
//! default = "deny"       # "allow" (fail open) or "deny" (fail closed), also when the hook is down
//! max_pending = 64       # hook calls in flight at once; past it, requests get `default` at once
//! on_call = "http://127.0.0.1:9000/rpc"       # client calls to application methods (JSON POST)
//!
//! [hooks.app.chat]       # per application: overrides on_call for clients of `chat`
//! on_call = "http://127.0.0.1:9000/chat-rpc"
//!
//! [reconnect]
//! initial_ms = 200       # first wait after stratad is found absent, doubled each attempt
//! max_ms = 10000         # the cap
//! ```
//!
//! Command-line flags override the file.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_HTTP: &str = "127.0.0.1:8086";
/// The hook timeout when none is configured; stratad's own default auth timeout is 3 s, so
/// the manager answers (with its default) before stratad gives up on it.
pub const DEFAULT_HOOK_TIMEOUT_MS: u64 = 2000;
/// Hook calls in flight at once: each holds a thread; past this a flood of connects is
/// answered with the default rather than growing threads without bound.
pub const DEFAULT_MAX_PENDING: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    #[default]
    Allow,
    Deny,
}

impl Decision {
    pub fn allows(self) -> bool {
        self == Decision::Allow
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ManagerConfig {
    pub socket: Option<PathBuf>,
    pub http: Option<String>,
    #[serde(default)]
    pub hooks: HookConfig,
    #[serde(default)]
    pub reconnect: ReconnectConfig,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HookConfig {
    pub on_connect: Option<String>,
    pub on_publish: Option<String>,
    pub on_play: Option<String>,
    pub timeout_ms: u64,
    pub default: Decision,
    pub max_pending: usize,
    /// Client calls to methods stratad does not have built in (see `rpc_hook`).
    pub on_call: Option<String>,
    /// Per-application overrides, by application name.
    pub app: BTreeMap<String, AppHooks>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AppHooks {
    pub on_call: Option<String>,
}

impl Default for HookConfig {
    fn default() -> Self {
        HookConfig {
            on_connect: None,
            on_publish: None,
            on_play: None,
            timeout_ms: DEFAULT_HOOK_TIMEOUT_MS,
            default: Decision::Allow,
            max_pending: DEFAULT_MAX_PENDING,
            on_call: None,
            app: BTreeMap::new(),
        }
    }
}

impl HookConfig {
    /// The URL for an action (connect, publish, play), if one is configured.
    pub fn url_for(&self, action: &str) -> Option<&str> {
        match action {
            "connect" => self.on_connect.as_deref(),
            "publish" => self.on_publish.as_deref(),
            "play" => self.on_play.as_deref(),
            _ => None,
        }
    }

    /// The `on_call` URL for clients of `app`: its own, else the general one.
    pub fn call_url_for(&self, app: &str) -> Option<&str> {
        self.app
            .get(app)
            .and_then(|a| a.on_call.as_deref())
            .or(self.on_call.as_deref())
    }

    /// Whether any application's calls go to a hook (the manager then answers calls).
    pub fn any_call(&self) -> bool {
        self.on_call.is_some() || self.app.values().any(|a| a.on_call.is_some())
    }

    pub fn any(&self) -> bool {
        self.on_connect.is_some() || self.on_publish.is_some() || self.on_play.is_some()
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReconnectConfig {
    pub initial_ms: u64,
    pub max_ms: u64,
}

impl Default for ReconnectConfig {
    fn default() -> Self {
        ReconnectConfig {
            initial_ms: 200,
            max_ms: 10_000,
        }
    }
}

impl ManagerConfig {
    pub fn parse(text: &str) -> Result<ManagerConfig, String> {
        let config: ManagerConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        config.validate()?;
        Ok(config)
    }

    pub fn load(path: &Path) -> Result<ManagerConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        ManagerConfig::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn validate(&self) -> Result<(), String> {
        for (name, url) in [
            ("on_connect", &self.hooks.on_connect),
            ("on_publish", &self.hooks.on_publish),
            ("on_play", &self.hooks.on_play),
        ] {
            if let Some(url) = url {
                if !url.starts_with("http://") {
                    return Err(format!(
                        "hooks.{name} = {url:?}: only http:// URLs are supported"
                    ));
                }
            }
        }
        let call_urls = std::iter::once(("on_call".to_string(), &self.hooks.on_call)).chain(
            self.hooks
                .app
                .iter()
                .map(|(app, h)| (format!("app.{app}.on_call"), &h.on_call)),
        );
        for (name, url) in call_urls {
            if let Some(url) = url.as_deref().filter(|u| !u.starts_with("http://")) {
                return Err(format!(
                    "hooks.{name} = {url:?}: only http:// URLs are supported"
                ));
            }
        }
        if self.hooks.timeout_ms == 0 {
            return Err("hooks.timeout_ms must be above 0".into());
        }
        if self.hooks.max_pending == 0 {
            return Err("hooks.max_pending must be above 0".into());
        }
        if self.reconnect.initial_ms == 0 || self.reconnect.max_ms < self.reconnect.initial_ms {
            return Err("reconnect: need 0 < initial_ms <= max_ms".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_parses() {
        let c = ManagerConfig::parse(
            r#"
            socket = "/tmp/s.sock"
            http = "127.0.0.1:9999"
            [hooks]
            on_publish = "http://127.0.0.1:1/auth"
            timeout_ms = 500
            default = "deny"
            "#,
        )
        .expect("parse");
        assert_eq!(c.hooks.url_for("publish"), Some("http://127.0.0.1:1/auth"));
        assert_eq!(c.hooks.url_for("play"), None);
        assert_eq!(c.hooks.default, Decision::Deny);
        assert_eq!(c.hooks.max_pending, DEFAULT_MAX_PENDING);
        assert_eq!(c.reconnect, ReconnectConfig::default());
    }

    #[test]
    fn mistakes_are_reported() {
        assert!(ManagerConfig::parse("[hooks]\ndefault = \"maybe\"").is_err());
        assert!(ManagerConfig::parse("[hooks]\non_publsh = \"http://x\"").is_err());
        assert!(ManagerConfig::parse("[hooks]\non_play = \"https://x\"").is_err());
    }

    #[test]
    fn call_hooks_have_per_application_overrides() {
        let c = ManagerConfig::parse(
            r#"
            [hooks]
            on_call = "http://127.0.0.1:1/rpc"
            [hooks.app.chat]
            on_call = "http://127.0.0.1:1/chat"
            [hooks.app.quiet]
            "#,
        )
        .expect("parse");
        assert_eq!(
            c.hooks.call_url_for("chat"),
            Some("http://127.0.0.1:1/chat")
        );
        assert_eq!(
            c.hooks.call_url_for("quiet"),
            Some("http://127.0.0.1:1/rpc")
        );
        assert_eq!(c.hooks.call_url_for("live"), Some("http://127.0.0.1:1/rpc"));
        assert!(c.hooks.any_call());
        assert!(!c.hooks.any(), "no auth hook");
        assert!(ManagerConfig::parse("[hooks.app.x]\non_call = \"https://x\"").is_err());
    }

    #[test]
    fn example_file_parses_to_the_defaults() {
        let text = include_str!("../../stratactl.example.toml");
        let c = ManagerConfig::parse(text).expect("stratactl.example.toml is valid");
        assert_eq!(c.hooks, HookConfig::default());
        assert_eq!(c.reconnect, ReconnectConfig::default());
        assert_eq!(c.http.as_deref(), Some(DEFAULT_HTTP));
    }
}
