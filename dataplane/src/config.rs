//! The configuration file (TOML), validated once at load. Every key is optional: an empty
//! file, or none at all, is a working live server on 0.0.0.0:1935 for any application.
//! `strata.example.toml` at the top of the repository documents every key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::relay::host_ini::{self, HostIniError, UpstreamGroup};

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub(crate) server: ServerConfig,
    pub(crate) live: LiveConfig,
    pub(crate) control: ControlConfig,
    pub(crate) auth: AuthConfig,
    pub(crate) vod: VodConfig,
    pub(crate) shared_objects: crate::app::shared_objects::SoConfig,
    pub(crate) scripts: crate::scripts::ScriptsConfig,
    #[serde(rename = "application")]
    pub(crate) applications: Vec<ApplicationConfig>,
    /// Multicast outputs (`[[multicast]]`): streams sent as MPEG-TS to multicast groups.
    pub(crate) multicast: Vec<crate::multicast::spec::MulticastSpec>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ServerConfig {
    pub(crate) listen: Vec<SocketAddr>,
    /// Each worker's accept queue per address (listen(2)'s backlog; the kernel caps it at
    /// net.core.somaxconn). A join storm fills it faster than a busy worker accepts: 10,000
    /// viewers arriving within a second on 2 workers is ~5,000 per listener.
    pub(crate) listen_backlog: u32,
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
    /// Serve RTMFP on UDP at every `listen` address and port too (as AMS does on 1935).
    pub(crate) rtmfp: bool,
    /// Let the kernel back stratad's memory with transparent huge pages (false: off for the
    /// process, see `server::huge_pages` for the join-storm latency they cost).
    pub(crate) transparent_huge_pages: bool,
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

/// Files under a content root: what VOD plays and where recordings go.
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
    /// Server-side recording of every stream published here (see `RecordPolicy`).
    #[serde(default)]
    pub(crate) record: RecordWhat,
    /// Where, under `<vod.root>/<app>/<instance>/`: `{name}` the stream name, `{time}` the
    /// Unix time the file was started.
    #[serde(default)]
    pub(crate) record_path: Option<String>,
    /// A new file after this many bytes or seconds (0: never).
    #[serde(default)]
    pub(crate) record_max_bytes: u64,
    #[serde(default)]
    pub(crate) record_max_seconds: u64,
    /// LiveStreamCast tier (origin, intermediate, edge); none: a plain live application.
    pub(crate) role: Option<Role>,
    /// Intermediate and edge: the upstream groups file, relative to the configuration file.
    pub(crate) host_ini: Option<PathBuf>,
    /// Intermediate and edge: stream inactivity longer than this switches to the next
    /// upstream (the seed's "stream activity idle interval").
    #[serde(default = "default_idle_ms")]
    pub(crate) idle_ms: u32,
    /// Intermediate and edge: keep the next upstream group playing beside the current one,
    /// so a failover switches at its buffered key frame at once (`relay::standby`).
    #[serde(default)]
    pub(crate) hot_standby: bool,
    /// A plain pull relay: `rtmp://host[:port]/app[/instance]`, played on the first viewer
    /// of a stream nobody publishes here (`relay::pull_url`).
    pub(crate) pull: Option<String>,
    /// How long a pull stays after its last viewer left, in milliseconds.
    #[serde(default)]
    pub(crate) pull_linger_ms: u32,
    /// Push relays: every stream published here is forwarded to each of these
    /// `rtmp://host[:port]/app[/instance]` targets under its own name (nginx-rtmp's `push`).
    #[serde(default)]
    pub(crate) push: Vec<String>,
    /// `push` parsed (set by `Config::parse`), one group labelled `push` per target.
    #[serde(skip)]
    pub(crate) push_targets: Vec<UpstreamGroup>,
    /// The one group of a `pull` (set by `Config::parse`), or the groups read from `host_ini`
    /// by [`Config::load`]; a configuration whose host.ini
    /// does not parse is never built, so a running server keeps the groups it has.
    #[serde(skip)]
    pub(crate) upstreams: Vec<UpstreamGroup>,
}

/// An application's place in an origin/intermediate/edge topology.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Role {
    Origin,
    Intermediate,
    Edge,
}

impl Role {
    /// Intermediates and edges have upstreams (a host.ini); origins only children.
    pub(crate) fn has_upstreams(self) -> bool {
        matches!(self, Role::Intermediate | Role::Edge)
    }
}

fn default_idle_ms() -> u32 {
    1_000
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RecordWhat {
    /// Only what publishers ask for (`publish(name, "record" | "append")`).
    #[default]
    None,
    /// Every published stream, whatever the publish type.
    All,
}

/// The recording default: `<root>/<app>/<instance>/<name>.flv`, so that a recording plays
/// back as VOD by the stream's name.
pub(crate) const DEFAULT_RECORD_PATH: &str = "{name}.flv";

fn yes() -> bool {
    true
}

pub(crate) const DEFAULT_PORT: u16 = 1935;

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: vec![SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT))],
            listen_backlog: 8192,
            workers: 0,
            chunk_size: 65_536,
            window_ack_size: 2_500_000,
            peer_bandwidth: 2_500_000,
            max_message_size: 8 * 1024 * 1024,
            max_chunk_streams: 64,
            connect_timeout_ms: 10_000,
            tcp_notsent_lowat: 0,
            max_connections: 100_000,
            rtmfp: true,
            transparent_huge_pages: false,
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
    #[error("{error} (the host_ini of application {app:?})")]
    HostIni { app: String, error: HostIniError },
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut config = Config::parse(&text, &path.display().to_string())?;
        let dir = path.parent().unwrap_or(Path::new(""));
        for app in &mut config.applications {
            if let Some(file) = &app.host_ini {
                app.upstreams =
                    host_ini::load(&dir.join(file)).map_err(|error| ConfigError::HostIni {
                        app: app.name.clone(),
                        error,
                    })?;
            }
        }
        Ok(config)
    }

    pub(crate) fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_string(),
            message: e.to_string(),
        })?;
        let invalid = |message| ConfigError::Invalid {
            path: origin.to_string(),
            message,
        };
        config.validate().map_err(invalid)?;
        for app in &mut config.applications {
            if let Some(url) = &app.pull {
                let group = crate::relay::pull_url::parse(url)
                    .map_err(|e| invalid(format!("application {:?}: {e}", app.name)))?;
                app.upstreams = vec![group];
            }
            app.push_targets = app
                .push
                .iter()
                .map(|url| crate::relay::pull_url::parse_push(url))
                .collect::<Result<_, _>>()
                .map_err(|e| invalid(format!("application {:?}: {e}", app.name)))?;
        }
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        for m in &self.multicast {
            crate::multicast::spec::validate(m)
                .map_err(|e| format!("[[multicast]] {}: {e}", m.stream))?;
        }
        let s = &self.server;
        if s.listen.is_empty() {
            return Err("server.listen needs at least one address".into());
        }
        if !(1..=i32::MAX as u32).contains(&s.listen_backlog) {
            return Err(format!(
                "server.listen_backlog {} is outside 1..=2147483647",
                s.listen_backlog
            ));
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
            let path = app.record_path.as_deref().unwrap_or(DEFAULT_RECORD_PATH);
            let rotates = app.record_max_bytes > 0 || app.record_max_seconds > 0;
            if rotates && !path.contains("{time}") {
                return Err(format!(
                    "application {:?}: record_path must contain {{time}} when files rotate \
                     (record_max_bytes, record_max_seconds), or each file would replace the last",
                    app.name
                ));
            }
            if !seen.insert(app.name.as_str()) {
                return Err(format!("application {:?} is defined twice", app.name));
            }
            let tiered = app.role.is_some_and(Role::has_upstreams);
            if tiered && app.host_ini.is_none() {
                return Err(format!(
                    "application {:?}: an intermediate or edge needs host_ini (its upstream \
                     groups)",
                    app.name
                ));
            }
            if !tiered && app.host_ini.is_some() {
                return Err(format!(
                    "application {:?}: host_ini is only for role \"intermediate\" or \"edge\"",
                    app.name
                ));
            }
            if tiered && app.pull.is_some() {
                return Err(format!(
                    "application {:?}: pull is for an application without a role (an \
                     intermediate or edge has its upstreams in host_ini)",
                    app.name
                ));
            }
            if app.pull_linger_ms > 600_000 {
                return Err(format!(
                    "application {:?}: pull_linger_ms must be at most 600000",
                    app.name
                ));
            }
            if !tiered && app.hot_standby {
                return Err(format!(
                    "application {:?}: hot_standby is only for role \"intermediate\" or \"edge\"",
                    app.name
                ));
            }
            if !(100..=60_000).contains(&app.idle_ms) {
                return Err(format!(
                    "application {:?}: idle_ms must be between 100 and 60000",
                    app.name
                ));
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
                record: RecordPolicy {
                    all: a.record == RecordWhat::All,
                    path: a
                        .record_path
                        .clone()
                        .unwrap_or_else(|| DEFAULT_RECORD_PATH.to_string()),
                    max_bytes: a.record_max_bytes,
                    max_seconds: a.record_max_seconds,
                },
                role: a.role,
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
    pub(crate) role: Option<Role>,
    pub(crate) record: RecordPolicy,
}

/// How an application records, resolved from its `record*` keys.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RecordPolicy {
    /// Record every stream published (server-side), not only those asked for.
    pub(crate) all: bool,
    pub(crate) path: String,
    pub(crate) max_bytes: u64,
    pub(crate) max_seconds: u64,
}

impl Default for RecordPolicy {
    fn default() -> Self {
        RecordPolicy {
            all: false,
            path: DEFAULT_RECORD_PATH.to_string(),
            max_bytes: 0,
            max_seconds: 0,
        }
    }
}

impl AppPolicy {
    /// Origins and intermediates take child servers (FCAddChild) and tell them of streams.
    pub(crate) fn has_children(&self) -> bool {
        matches!(self.role, Some(Role::Origin | Role::Intermediate))
    }

    fn open(live: &LiveConfig) -> Self {
        AppPolicy {
            publish: true,
            play: true,
            max_streams: 0,
            drop_lag_ms: live.drop_lag_ms,
            max_lag_ms: live.max_lag_ms,
            record: RecordPolicy::default(),
            role: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recording_keys_resolve_per_application() {
        let c = Config::parse(
            "[vod]\nroot = \"/srv/media\"\n[[application]]\nname = \"live\"\nrecord = \"all\"\n\
             record_path = \"{name}-{time}.flv\"\nrecord_max_seconds = 60\n\
             [[application]]\nname = \"quiet\"\n",
            "t",
        )
        .expect("valid");
        assert_eq!(c.vod.root.as_deref(), Some(Path::new("/srv/media")));
        let live = c.application("live").expect("live").record;
        assert!(live.all);
        assert_eq!(
            (live.path.as_str(), live.max_seconds),
            ("{name}-{time}.flv", 60)
        );
        let quiet = c.application("quiet").expect("quiet").record;
        assert_eq!(quiet, RecordPolicy::default());
        assert_eq!(quiet.path, "{name}.flv");
        let err = Config::parse(
            "[[application]]\nname = \"live\"\nrecord = \"all\"\nrecord_max_bytes = 1000\n",
            "t",
        )
        .expect_err("rotation without {time}");
        assert!(err.to_string().contains("{time}"), "{err}");
        assert!(Config::parse("[[application]]\nname = \"a\"\nrecord = \"some\"\n", "t").is_err());
    }

    #[test]
    fn empty_file_is_an_open_server() {
        let c = Config::parse("", "t").expect("empty config");
        assert_eq!(c, Config::default());
        assert!(c.application("anything").is_some());
    }

    #[test]
    fn listen_backlog_is_a_positive_int() {
        assert_eq!(Config::default().server.listen_backlog, 8192);
        let c = Config::parse("[server]\nlisten_backlog = 65535\n", "t").expect("config");
        assert_eq!(c.server.listen_backlog, 65_535);
        for bad in ["0", "2147483648"] {
            let e = Config::parse(&format!("[server]\nlisten_backlog = {bad}\n"), "t")
                .expect_err(bad)
                .to_string();
            assert!(e.contains("server.listen_backlog"), "{e}");
        }
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

    /// A directory of its own for one test, removed on drop.
    struct Dir(PathBuf);

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Writes a configuration and its host.ini (in a subdirectory) into a fresh directory.
    fn files(config: &str, host_ini: &str) -> (Dir, PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "strata-config-{}-{}",
            std::process::id(),
            host_ini.len() ^ (config.len() << 16)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("edge")).expect("mkdir");
        std::fs::write(dir.join("edge/host.ini"), host_ini).expect("host.ini");
        let path = dir.join("strata.toml");
        std::fs::write(&path, config).expect("config");
        (Dir(dir), path)
    }

    const EDGE: &str = "[[application]]\nname = \"lsc_edge\"\nrole = \"edge\"\n\
                        host_ini = \"edge/host.ini\"\n";

    #[test]
    fn roles_and_host_ini_relative_to_the_config_file() {
        let (_dir, path) = files(
            &format!("{EDGE}idle_ms = 2000\n[[application]]\nname = \"o\"\nrole = \"origin\"\n"),
            "# group\nserver1 127.0.0.2;127.0.0.3:1936 lsc_origin\n",
        );
        let c = Config::load(&path).expect("config");
        let edge = &c.applications[0];
        assert_eq!(edge.role, Some(Role::Edge));
        assert_eq!(edge.idle_ms, 2_000);
        assert_eq!(edge.upstreams.len(), 1);
        assert_eq!(edge.upstreams[0].secondary.to_string(), "127.0.0.3:1936");
        assert_eq!(c.applications[1].role, Some(Role::Origin));
        assert_eq!(c.applications[1].idle_ms, 1_000);
        assert!(c.applications[1].upstreams.is_empty());
    }

    #[test]
    fn a_bad_host_ini_refuses_the_configuration_naming_line_and_reason() {
        let (_dir, path) = files(
            EDGE,
            "server1 127.0.0.2;127.0.0.3 app\nserver2 127.0.0.4 app\n",
        );
        let e = Config::load(&path).expect_err("bad host.ini").to_string();
        assert!(
            e.contains("host.ini:2: expected `label primary;secondary application`"),
            "{e}"
        );
        assert!(e.contains("application \"lsc_edge\""), "{e}");
        let (_dir, path) = files(&EDGE.replace("edge/host.ini", "missing.ini"), "");
        let e = Config::load(&path)
            .expect_err("missing host.ini")
            .to_string();
        assert!(e.contains("missing.ini:0: cannot read"), "{e}");
    }

    #[test]
    fn role_and_host_ini_must_agree() {
        let edge_without = "[[application]]\nname = \"e\"\nrole = \"edge\"\n";
        assert!(Config::parse(edge_without, "t").is_err());
        let origin_with = "[[application]]\nname = \"o\"\nrole = \"origin\"\nhost_ini = \"h\"\n";
        assert!(Config::parse(origin_with, "t").is_err());
        assert!(Config::parse("[[application]]\nname = \"e\"\nrole = \"tier\"\n", "t").is_err());
        assert!(Config::parse(&format!("{EDGE}idle_ms = 0\n"), "t").is_err());
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
    fn pull_is_one_upstream_group_and_hot_standby_is_for_tiers() {
        let c = Config::parse(
            "[[application]]\nname = \"relay\"\npull = \"rtmp://127.0.0.2:1936/live\"\n\
             pull_linger_ms = 3000\n",
            "t",
        )
        .expect("a pull application");
        let app = &c.applications[0];
        assert_eq!(app.pull_linger_ms, 3_000);
        assert_eq!(app.upstreams.len(), 1);
        assert_eq!(app.upstreams[0].primary.to_string(), "127.0.0.2:1936");
        assert_eq!(app.upstreams[0].app, "live");
        // A bad URL names the application and what is wrong.
        let e = Config::parse(
            "[[application]]\nname = \"r\"\npull = \"http://x/y\"\n",
            "t",
        )
        .expect_err("not rtmp://")
        .to_string();
        assert!(e.contains("\"r\"") && e.contains("rtmp://"), "{e}");
        // A tier has host_ini, not pull; hot standby is only for tiers.
        assert!(Config::parse(&format!("{EDGE}pull = \"rtmp://a/b\"\n"), "t").is_err());
        assert!(Config::parse("[[application]]\nname = \"p\"\nhot_standby = true\n", "t").is_err());
        let hot = Config::parse(&format!("{EDGE}hot_standby = true\n"), "t").expect("edge");
        assert!(hot.applications[0].hot_standby);
    }

    #[test]
    fn push_targets_parse_and_a_bad_one_names_its_application() {
        let c = Config::parse(
            "[[application]]\nname = \"live\"\npush = [\"rtmp://127.0.0.3/live\", \
             \"rtmp://relay.example:1936/in/room\"]\n",
            "t",
        )
        .expect("a push application");
        let targets = &c.applications[0].push_targets;
        assert_eq!(targets.len(), 2);
        assert_eq!(targets[0].primary.to_string(), "127.0.0.3:1935");
        assert_eq!(targets[1].primary.to_string(), "relay.example:1936");
        assert_eq!(targets[1].instance.as_deref(), Some("room"));
        assert!(c.applications[0].upstreams.is_empty());
        let e = Config::parse(
            "[[application]]\nname = \"q\"\npush = [\"rtmp://h\"]\n",
            "t",
        )
        .expect_err("no application in the URL")
        .to_string();
        assert!(e.contains("\"q\"") && e.contains("push"), "{e}");
    }

    #[test]
    fn example_file_parses() {
        let text = include_str!("../../strata.example.toml");
        Config::parse(text, "strata.example.toml").expect("example config is valid");
    }
}
