//! Starting `stratad` for one test: a free port, captured logs, and a kill-on-Drop guard.

use crate::scratch_dir::ScratchDir;
use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long the server may take to accept connections after it is spawned.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts at a free port: another test may grab the port between our probe and the bind.
const PORT_ATTEMPTS: u32 = 3;
/// Lines of the server log printed when a test fails while the server runs.
const LOG_TAIL_ON_PANIC: usize = 60;

/// The `stratad` binary under test: `STRATAD_BIN`, else the workspace's release build, else
/// its debug build.
pub fn stratad_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("STRATAD_BIN") {
        let bin = PathBuf::from(bin);
        assert!(bin.is_file(), "STRATAD_BIN={} is not a file", bin.display());
        return bin;
    }
    let target = target_dir();
    for profile in ["release", "debug"] {
        let bin = target.join(profile).join("stratad");
        if bin.is_file() {
            return bin;
        }
    }
    panic!(
        "no stratad binary: set STRATAD_BIN, or build it with \
         `cargo build --release --bin stratad` (looked in {}/{{release,debug}})",
        target.display()
    );
}

/// The workspace root (the parent of this crate).
pub fn workspace_dir() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// Cargo's target directory (`CARGO_TARGET_DIR` if set, else `<workspace>/target`).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace_dir().join(dir)
            }
        }
        None => workspace_dir().join("target"),
    }
}

/// Options for one server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub workers: u32,
    /// TOML text written to a file and passed with `--config`; its `[server] listen` is
    /// overridden by `--listen`.
    pub config: Option<String>,
    /// `RUST_LOG` for the server; the close-reason lines are at info.
    pub rust_log: String,
    /// The loopback address it listens on, standing for a host of its own (tiers tests run
    /// servers on 127.0.0.2, .3, ...); None: 127.0.0.1.
    pub host: Option<std::net::IpAddr>,
    /// A fixed address to listen on (a server brought back where it was); None: a free
    /// port on `host`.
    pub addr: Option<SocketAddr>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            workers: 2,
            config: None,
            rust_log: "info".into(),
            host: None,
            addr: None,
        }
    }
}

/// A running `stratad`, killed (by pid) when dropped, also when the test panics.
pub struct Server {
    child: Child,
    addr: SocketAddr,
    log_path: PathBuf,
    /// The control socket given with `--control-socket` (None: the config names one).
    control_socket: Option<PathBuf>,
    dir: ScratchDir,
}

impl Server {
    /// Starts a server with two workers and no config file.
    pub fn start() -> Server {
        Server::start_with(ServerOptions::default())
    }

    pub fn start_with(opts: ServerOptions) -> Server {
        let bin = stratad_bin();
        let dir = ScratchDir::new("server");
        let config_path = opts.config.as_ref().map(|text| {
            let path = dir.join("stratad.toml");
            std::fs::write(&path, text).expect("write server config");
            path
        });
        let mut failures = String::new();
        for attempt in 1..=PORT_ATTEMPTS {
            let addr = match (opts.addr, opts.host) {
                (Some(addr), _) => addr,
                (None, Some(ip)) => free_addr_on(ip),
                (None, None) => free_addr(),
            };
            let log_path = dir.join(&format!("stratad-{attempt}.log"));
            let log = std::fs::File::create(&log_path).expect("create server log");
            let mut cmd = Command::new(&bin);
            cmd.arg("--listen")
                .arg(addr.to_string())
                .arg("--workers")
                .arg(opts.workers.to_string());
            if let Some(path) = &config_path {
                cmd.arg("--config").arg(path);
            }
            // Each server its own control socket: as root the default path would be shared
            // by every server of a parallel test run. A config naming one keeps it.
            let control_socket = (!opts
                .config
                .as_ref()
                .is_some_and(|c| c.contains("[control]")))
            .then(|| dir.join(&format!("control-{attempt}.sock")));
            if let Some(path) = &control_socket {
                cmd.arg("--control-socket").arg(path);
            }
            cmd.env("RUST_LOG", &opts.rust_log)
                .env("NO_COLOR", "1")
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("dup log file"))
                .stderr(log);
            let mut child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            match wait_accepting(&mut child, addr, &log_path) {
                Ok(()) => {
                    return Server {
                        child,
                        addr,
                        log_path,
                        control_socket,
                        dir,
                    }
                }
                Err(why) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                    failures.push_str(&format!(
                        "attempt {attempt} on {addr}: {why}; log:\n{}\n",
                        tail(&log, LOG_TAIL_ON_PANIC)
                    ));
                }
            }
        }
        panic!("{} did not start:\n{failures}", bin.display());
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `rtmp://127.0.0.1:PORT/<path>`, e.g. `url("live/test")`.
    pub fn url(&self, path: &str) -> String {
        format!("rtmp://{}/{}", self.addr, path)
    }

    /// The tcUrl a client sends in `connect` for an application.
    pub fn tc_url(&self, app: &str) -> String {
        self.url(app)
    }

    /// Everything the server has logged so far (stdout and stderr).
    pub fn log(&self) -> String {
        let bytes = std::fs::read(&self.log_path).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Waits (bounded) for a log line on which every needle occurs (case-insensitive);
    /// returns that line.
    pub fn wait_log_line(&self, needles: &[&str], timeout: Duration) -> Option<String> {
        let needles: Vec<String> = needles.iter().map(|n| n.to_lowercase()).collect();
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log();
            let found = log.lines().find(|line| {
                let lower = line.to_lowercase();
                needles.iter().all(|n| lower.contains(n.as_str()))
            });
            if let Some(line) = found {
                return Some(line.to_string());
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Asserts that a closed connection from `peer` was logged with a reason containing one
    /// of `reasons` (case-insensitive): a line with `peer=<peer>`, `reason=` and the keyword.
    pub fn assert_closed_with_reason(&self, peer: SocketAddr, reasons: &[&str]) {
        let peer_tag = format!("peer={peer}");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let log = self.log();
            let hit = log.lines().any(|line| {
                let lower = line.to_lowercase();
                lower.contains(&peer_tag)
                    && lower.contains("reason=")
                    && reasons.iter().any(|r| lower.contains(&r.to_lowercase()))
            });
            if hit {
                return;
            }
            if Instant::now() >= deadline {
                let mentions: Vec<&str> = log.lines().filter(|l| l.contains(&peer_tag)).collect();
                panic!(
                    "no log line with `{peer_tag}`, `reason=` and one of {reasons:?}; \
                     lines about that peer:\n{}",
                    mentions.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether the process is still running.
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Panics (with the log tail) unless the process is still running.
    pub fn assert_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "stratad exited ({status}); log tail:\n{}",
                tail(&self.log(), LOG_TAIL_ON_PANIC)
            );
        }
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) to the server process.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(rc, 0, "kill({}, {signal}) failed", self.child.id());
    }

    /// Waits (bounded) for the process to exit; its status, or None at the timeout.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        crate::tools::wait_timeout(&mut self.child, timeout)
    }

    /// The control socket this server was started with, unless its config names one.
    pub fn control_socket(&self) -> Option<&std::path::Path> {
        self.control_socket.as_deref()
    }

    /// The scratch directory of this server (its log and config live there).
    pub fn dir(&self) -> &ScratchDir {
        &self.dir
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "---- stratad log tail ({}) ----\n{}",
                self.log_path.display(),
                tail(&self.log(), LOG_TAIL_ON_PANIC)
            );
        }
    }
}

/// Waits until stratad says every worker listens ("stratad listening", logged once all
/// workers have their listeners) and `addr` accepts a TCP connection, or the process exits,
/// or the timeout. A connect alone is not proof: a loopback connect to a port nobody listens
/// on can meet itself (TCP simultaneous open when the kernel picks the same port as source),
/// and then the next client would be refused; the log line and the self-connect check rule
/// that out.
fn wait_accepting(child: &mut Child, addr: SocketAddr, log_path: &Path) -> Result<(), String> {
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("exited with {status} before accepting"));
        }
        if says_listening(log_path) && accepts(addr) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("not accepting after {STARTUP_TIMEOUT:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn says_listening(log_path: &Path) -> bool {
    std::fs::read(log_path).is_ok_and(|log| {
        log.windows(b"stratad listening".len())
            .any(|w| w == b"stratad listening")
    })
}

/// A connection to `addr` that reached a listener (not itself).
fn accepts(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200))
        .is_ok_and(|s| s.local_addr().ok() != s.peer_addr().ok())
}

/// Ports already handed out in this test process. stratad listens with SO_REUSEPORT, so two
/// servers given the same port would both bind it and share its connections silently; the
/// kernel may hand out a just-released port again, so never reuse one here.
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A local address whose port was free a moment ago and is not given to any other server of
/// this test process.
pub fn free_addr() -> SocketAddr {
    free_addr_on([127, 0, 0, 1].into())
}

/// A free port on `ip` (a loopback address standing for a host).
pub fn free_addr_on(ip: std::net::IpAddr) -> SocketAddr {
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let listener = TcpListener::bind((ip, 0)).expect("bind a free loopback port");
        let addr = listener.local_addr().expect("local_addr");
        if handed_out.insert(addr.port()) {
            return addr;
        }
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
