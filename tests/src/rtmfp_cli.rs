//! Our RTMFP client (`src/bin/rtmfp_client.rs`) as a separate process: spawned with its
//! stdout captured, killed by pid when dropped, also when the test panics.

use crate::scratch_dir::ScratchDir;
use crate::tools::wait_timeout;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

pub struct RtmfpCli {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
    _dir: ScratchDir,
}

impl RtmfpCli {
    /// Starts `bin args...` (the test passes `env!("CARGO_BIN_EXE_rtmfp_client")`).
    pub fn spawn(bin: &Path, args: &[&str]) -> RtmfpCli {
        let dir = ScratchDir::new("rtmfp_client");
        let (stdout, stderr) = (dir.join("stdout.log"), dir.join("stderr.log"));
        let child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        RtmfpCli {
            child,
            stdout,
            stderr,
            _dir: dir,
        }
    }

    /// Waits up to `timeout` for it to exit: its status (None: still running, then killed)
    /// and what it printed.
    pub fn finish(&mut self, timeout: Duration) -> (Option<ExitStatus>, String) {
        let status = wait_timeout(&mut self.child, timeout);
        if status.is_none() {
            self.kill();
        }
        (status, self.output())
    }

    pub fn output(&self) -> String {
        let out = std::fs::read_to_string(&self.stdout).unwrap_or_default();
        let err = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        format!("{out}{err}")
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RtmfpCli {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("---- rtmfp_client output ----\n{}", self.output());
        }
    }
}
