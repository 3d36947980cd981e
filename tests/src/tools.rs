//! Real clients (ffmpeg, ffprobe, rtmpdump) as child processes: found on PATH or failing
//! clearly, bounded in time, and killed by pid on Drop even when the test panics.

use crate::scratch_dir::ScratchDir;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Lines of a tool's stderr shown when a test fails while it runs.
const STDERR_TAIL_ON_PANIC: usize = 20;

/// The path of a tool on PATH, or a panic that says how to install it.
pub fn require_tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "`{name}` not found on PATH; the e2e tests need ffmpeg, ffprobe and rtmpdump \
         (`apt-get install -y ffmpeg rtmpdump`; tests/run installs them)"
    );
}

/// A running child process, killed by pid (and reaped) when dropped.
pub struct ChildGuard {
    name: String,
    child: Child,
    stderr_path: PathBuf,
    _dir: ScratchDir,
}

impl ChildGuard {
    /// Spawns `tool args...` with stdin closed, stdout discarded and stderr captured to a file.
    pub fn spawn(tool: &str, args: &[&str]) -> ChildGuard {
        let bin = require_tool(tool);
        let dir = ScratchDir::new(tool);
        let stderr_path = dir.join("stderr.log");
        let stderr = std::fs::File::create(&stderr_path).expect("create stderr log");
        let child = Command::new(&bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        ChildGuard {
            name: tool.to_string(),
            child,
            stderr_path,
            _dir: dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits up to `timeout` for the process to exit; `None` if it is still running.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_timeout(&mut self.child, timeout)
    }

    /// Waits up to `timeout` for a successful exit; panics with its stderr otherwise (and the
    /// guard kills it if it is still running).
    pub fn expect_success(&mut self, timeout: Duration) {
        match self.wait_timeout(timeout) {
            Some(status) if status.success() => {}
            Some(status) => panic!(
                "{} failed ({status}):\n{}",
                self.name,
                tail(&self.stderr(), STDERR_TAIL_ON_PANIC)
            ),
            None => panic!(
                "{} still running after {timeout:?}:\n{}",
                self.name,
                tail(&self.stderr(), STDERR_TAIL_ON_PANIC)
            ),
        }
    }

    /// Kills it now (by pid) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops it with SIGINT (ffmpeg then finishes its output file cleanly), then kills it if
    /// it has not exited within `grace`.
    pub fn interrupt(&mut self, grace: Duration) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) on the pid of our own, not yet reaped, child.
            unsafe {
                libc::kill(pid, libc::SIGINT);
            }
        }
        if self.wait_timeout(grace).is_none() {
            self.kill();
        }
    }

    /// What it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        let bytes = std::fs::read(&self.stderr_path).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "---- {} (pid {}) stderr tail ----\n{}",
                self.name,
                self.child.id(),
                tail(&self.stderr(), STDERR_TAIL_ON_PANIC)
            );
        }
    }
}

/// Runs a tool to completion within `timeout`; returns its stdout, or panics with stderr.
pub fn run_bounded(tool: &str, args: &[&str], timeout: Duration) -> Vec<u8> {
    let bin = require_tool(tool);
    let dir = ScratchDir::new(tool);
    let out_path = dir.join("stdout");
    let err_path = dir.join("stderr");
    let out = std::fs::File::create(&out_path).expect("create stdout file");
    let err = std::fs::File::create(&err_path).expect("create stderr file");
    let child = Command::new(&bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let mut guard = ChildGuard {
        name: tool.to_string(),
        child,
        stderr_path: err_path,
        _dir: dir,
    };
    guard.expect_success(timeout);
    std::fs::read(out_path).expect("read stdout")
}

/// `ffmpeg -hide_banner -nostdin -loglevel warning <args>` as a guarded child.
pub fn ffmpeg(args: &[&str]) -> ChildGuard {
    let mut all = vec!["-hide_banner", "-nostdin", "-loglevel", "warning"];
    all.extend_from_slice(args);
    ChildGuard::spawn("ffmpeg", &all)
}

/// `ffprobe -v error -of json <args>`, bounded; the parsed JSON.
pub fn ffprobe_json(args: &[&str], timeout: Duration) -> serde_json::Value {
    let mut all = vec!["-hide_banner", "-v", "error", "-of", "json"];
    all.extend_from_slice(args);
    let out = run_bounded("ffprobe", &all, timeout);
    serde_json::from_slice(&out).unwrap_or_else(|e| {
        panic!(
            "ffprobe printed invalid JSON ({e}): {}",
            String::from_utf8_lossy(&out)
        )
    })
}

/// A player that records a live URL to an FLV file with ffmpeg (`-c copy`), for tests that
/// check a concurrent viewer keeps receiving while something else happens.
pub fn ffmpeg_recorder(url: &str, out: &Path) -> ChildGuard {
    let out = out.to_str().expect("utf-8 path");
    ffmpeg(&[
        "-rw_timeout",
        "15000000",
        "-i",
        url,
        "-c",
        "copy",
        "-f",
        "flv",
        "-y",
        out,
    ])
}

/// `rtmpdump --live -r <url> -o <out> [extra...]` as a guarded child.
pub fn rtmpdump(url: &str, out: &Path, extra: &[&str]) -> ChildGuard {
    let out = out.to_str().expect("utf-8 path");
    let mut args = vec!["--live", "-r", url, "-o", out];
    args.extend_from_slice(extra);
    ChildGuard::spawn("rtmpdump", &args)
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Waits up to `timeout` for `child` to exit; `None` if it is still running.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
