//! The configuration file (TOML), validated once at load. Every key is optional: an empty
//! file, or none at all, is a working live server on 0.0.0.0:1935 for any application.
//! `strata.example.toml` at the top of the repository documents every key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub(crate) server: ServerConfig,
    pub(crate) live: LiveConfig,
    pub(crate) control: ControlConfig,
    pub(crate) auth: AuthConfig,
    pub(crate) vod: VodConfig,
    #[serde(rename = "application")]
    pub(crate) applications: Vec<ApplicationConfig>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ServerConfig {
    pub(crate) listen: Vec<SocketAddr>,
    /// 0: one worker per core.
    pub(crate) workers: usize,
    /// The chunk size the server sends with (announced in Set Chunk Size after connect).
    /// Measured (BENCHMARKS.md): 65536 costs ~11 % less CPU at 2,000 viewers than 4096.
    pub(crate) chunk_size: u32,
    pub(crate) window_ack_size: u32,
    pub(crate) peer_bandwidth: u32,
    /// A message announcing more than this closes the connection (the check happens at the
    /// chunk header, before anything is allocated).
    pub(crate) max_message_size: u32,
    /// Real clients use a handful of chunk streams; thousands is an attack on memory.
    pub(crate) max_chunk_streams: usize,
    /// Handshake plus connect must finish within this.
    pub(crate) connect_timeout_ms: u64,
    /// TCP_NOTSENT_LOWAT for client sockets, in bytes (0: the kernel's default): keeps the
    /// unsent part of each socket's kernel queue short, so a slow viewer's backlog stays in
    /// stratad's queue, where the lag policy sees it, instead of in kernel memory.
    pub(crate) tcp_notsent_lowat: u32,
    /// Clients served at once (all workers); stratad raises RLIMIT_NOFILE to its hard limit
    /// and warns at start when that is below this.
    pub(crate) max_connections: usize,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ControlConfig {
    /// The Unix socket managers (stratactl) connect to; `--control-socket` overrides it.
    pub(crate) socket: std::path::PathBuf,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            socket: control_protocol::DEFAULT_SOCKET.into(),
        }
    }
}

/// Files served as streams (VOD) and written by recording.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct VodConfig {
    /// The content root: `<root>/<app>/<instance>/<name>`, `_definst_` for the default
    /// instance (AMS's `streams/_definst_`). None: no files are served. `--content-root`
    /// overrides it.
    pub(crate) root: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum AuthAction {
    Connect,
    Publish,
    Play,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum AuthDefault {
    Allow,
    Deny,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct AuthConfig {
    /// What stratad asks the manager about before allowing it. Empty: nothing.
    pub(crate) on: Vec<AuthAction>,
    /// Applied when no manager is registered or it does not answer within `timeout_ms`:
    /// a dead manager must never stop the edge from streaming, unless told so.
    pub(crate) default: AuthDefault,
    pub(crate) timeout_ms: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            on: Vec::new(),
            default: AuthDefault::Allow,
            timeout_ms: 3_000,
        }
    }
}

impl AuthConfig {
    pub(crate) fn asks(&self, action: AuthAction) -> bool {
        self.on.contains(&action)
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct LiveConfig {
    /// Keep each stream's current GOP so a new viewer starts on a key frame at once.
    pub(crate) gop_cache: bool,
    /// A viewer this far behind drops to the next key frame.
    pub(crate) drop_lag_ms: u32,
    /// A viewer this far behind is closed with NetStream.Play.InsufficientBW.
    pub(crate) max_lag_ms: u32,
    /// A viewer's send queue over this many bytes also counts as lagging.
    pub(crate) max_queue_bytes: usize,
    /// Media for viewers is sent at most this many milliseconds after it arrives, several
    /// messages per send: fewer, larger sends cost far less CPU per viewer. 0 sends each
    /// message at once. Commands and status messages are never delayed.
    pub(crate) send_batch_ms: u32,
    /// Send viewers' batches with zero-copy sends (IORING_OP_SENDMSG_ZC): the kernel reads
    /// the payload from stratad's buffers instead of copying it. Off by default: each such
    /// send costs a second completion and pins pages, and on loopback the kernel copies
    /// anyway; it may pay on a real NIC. Where the kernel lacks it, stratad warns and sends
    /// normally. Like `send_batch_ms`, a reload applies it to every send from then on.
    pub(crate) send_zerocopy: bool,
    /// With `send_zerocopy`, only sends of at least this many bytes go zero-copy: below it
    /// the extra completion and page pinning cost more than the copy saves.
    pub(crate) send_zerocopy_min_bytes: u32,
}

/// The most bytes one send carries (the engine's batch limit), so the largest
/// `live.send_zerocopy_min_bytes` that can still apply.
pub(crate) const MAX_SEND_BYTES: u32 = 512 * 1024;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApplicationConfig {
    pub(crate) name: String,
    #[serde(default = "yes")]
    pub(crate) publish: bool,
    #[serde(default = "yes")]
    pub(crate) play: bool,
    /// 0: no limit.
    #[serde(default)]
    pub(crate) max_streams: usize,
    pub(crate) drop_lag_ms: Option<u32>,
    pub(crate) max_lag_ms: Option<u32>,
}

fn yes() -> bool {
    true
}

pub(crate) const DEFAULT_PORT: u16 = 1935;

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: vec![SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT))],
            workers: 0,
            chunk_size: 65_536,
            window_ack_size: 2_500_000,
            peer_bandwidth: 2_500_000,
            max_message_size: 8 * 1024 * 1024,
            max_chunk_streams: 64,
            connect_timeout_ms: 10_000,
            tcp_notsent_lowat: 0,
            max_connections: 100_000,
        }
    }
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            gop_cache: true,
            drop_lag_ms: 3_000,
            max_lag_ms: 10_000,
            max_queue_bytes: 16 * 1024 * 1024,
            // Measured (BENCHMARKS.md, 2,000 viewers of 2.16 Mbit/s, one worker): ~14.7 % of
            // a core at 100 ms, ~12.3 % at 150, ~11.5 % at 200. Fast start is unaffected
            // (a new viewer's key frame is sent at once, the rest of its GOP in rounds every
            // loop turn, a round at least every send_batch_ms); SRS's default merge window
            // is 350 ms.
            send_batch_ms: 150,
            send_zerocopy: false,
            send_zerocopy_min_bytes: 16 * 1024,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Config::parse(&text, &path.display().to_string())
    }

    pub(crate) fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_string(),
            message: e.to_string(),
        })?;
        config.validate().map_err(|message| ConfigError::Invalid {
            path: origin.to_string(),
            message,
        })?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        let s = &self.server;
        if s.listen.is_empty() {
            return Err("server.listen needs at least one address".into());
        }
        if !(128..=0x7FFF_FFFF).contains(&s.chunk_size) {
            return Err(format!(
                "server.chunk_size {} is outside 128..=2147483647",
                s.chunk_size
            ));
        }
        if s.max_message_size == 0 || s.max_message_size > 0xFF_FFFF {
            return Err(
                "server.max_message_size must be between 1 and 16777215 (the RTMP header's limit)"
                    .into(),
            );
        }
        if s.max_chunk_streams < 8 {
            return Err("server.max_chunk_streams below 8 would refuse real clients".into());
        }
        if self.auth.timeout_ms == 0 || self.auth.timeout_ms > 60_000 {
            return Err("auth.timeout_ms must be between 1 and 60000".into());
        }
        if self.live.send_batch_ms > 1_000 {
            return Err(
                "live.send_batch_ms above 1000 would delay media by more than a second".into(),
            );
        }
        if self.live.send_zerocopy_min_bytes > MAX_SEND_BYTES {
            return Err(format!(
                "live.send_zerocopy_min_bytes above {MAX_SEND_BYTES} (the largest send) would \
                 never send zero-copy"
            ));
        }
        if self.live.drop_lag_ms > self.live.max_lag_ms {
            return Err("live.drop_lag_ms must not exceed live.max_lag_ms".into());
        }
        if self
            .vod
            .root
            .as_ref()
            .is_some_and(|r| r.as_os_str().is_empty())
        {
            return Err("vod.root must not be empty (leave it out to serve no files)".into());
        }
        let mut seen = std::collections::HashSet::new();
        for app in &self.applications {
            if app.name.is_empty() || app.name.contains('/') {
                return Err(format!(
                    "application name {:?} must be non-empty and contain no '/'",
                    app.name
                ));
            }
            if !seen.insert(app.name.as_str()) {
                return Err(format!("application {:?} is defined twice", app.name));
            }
        }
        Ok(())
    }

    /// The application's settings, or None when the configuration restricts applications and
    /// this one is not among them.
    pub(crate) fn application(&self, name: &str) -> Option<AppPolicy> {
        if self.applications.is_empty() {
            return Some(AppPolicy::open(&self.live));
        }
        self.applications
            .iter()
            .find(|a| a.name == name)
            .map(|a| AppPolicy {
                publish: a.publish,
                play: a.play,
                max_streams: a.max_streams,
                drop_lag_ms: a.drop_lag_ms.unwrap_or(self.live.drop_lag_ms),
                max_lag_ms: a.max_lag_ms.unwrap_or(self.live.max_lag_ms),
            })
    }
}

/// What one application allows, resolved from the configuration at connect time.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AppPolicy {
    pub(crate) publish: bool,
    pub(crate) play: bool,
    pub(crate) max_streams: usize,
    pub(crate) drop_lag_ms: u32,
    pub(crate) max_lag_ms: u32,
}

impl AppPolicy {
    fn open(live: &LiveConfig) -> Self {
        AppPolicy {
            publish: true,
            play: true,
            max_streams: 0,
            drop_lag_ms: live.drop_lag_ms,
            max_lag_ms: live.max_lag_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_an_open_server() {
        let c = Config::parse("", "t").expect("empty config");
        assert_eq!(c, Config::default());
        assert!(c.application("anything").is_some());
    }

    #[test]
    fn listed_applications_restrict_the_rest() {
        let c = Config::parse(
            "[[application]]\nname = \"live\"\nmax_lag_ms = 20000\n",
            "t",
        )
        .expect("config");
        assert!(c.application("other").is_none());
        let live = c.application("live").expect("live");
        assert_eq!(live.max_lag_ms, 20_000);
        assert!(live.publish && live.play);
    }

    #[test]
    fn rejects_unknown_keys_and_bad_values() {
        assert!(Config::parse("[server]\nlisen = []\n", "t").is_err());
        assert!(Config::parse("[server]\nchunk_size = 0\n", "t").is_err());
        assert!(Config::parse("[live]\ndrop_lag_ms = 9\nmax_lag_ms = 1\n", "t").is_err());
        assert!(Config::parse("[live]\nsend_zerocopy = 1\n", "t").is_err());
        assert!(Config::parse("[live]\nsend_zerocopy_min_bytes = -1\n", "t").is_err());
        assert!(Config::parse("[live]\nsend_zerocopy_min_bytes = 524289\n", "t").is_err());
        let zc = Config::parse(
            "[live]\nsend_zerocopy = true\nsend_zerocopy_min_bytes = 0\n",
            "t",
        )
        .expect("zero-copy config");
        assert!(zc.live.send_zerocopy);
        assert_eq!(zc.live.send_zerocopy_min_bytes, 0);
        assert!(Config::parse(
            "[[application]]\nname = \"a\"\n[[application]]\nname = \"a\"\n",
            "t"
        )
        .is_err());
    }

    #[test]
    fn vod_root_is_optional_and_not_empty() {
        assert_eq!(Config::default().vod.root, None);
        let c = Config::parse("[vod]\nroot = \"/srv/media\"\n", "t").expect("vod config");
        assert_eq!(c.vod.root, Some(PathBuf::from("/srv/media")));
        assert!(Config::parse("[vod]\nroot = \"\"\n", "t").is_err());
        assert!(Config::parse("[vod]\nrot = \"/a\"\n", "t").is_err());
    }

    #[test]
    fn example_file_parses() {
        let text = include_str!("../../strata.example.toml");
        Config::parse(text, "strata.example.toml").expect("example config is valid");
    }
}
