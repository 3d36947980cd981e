//! A concurrent ffmpeg viewer recording to a file, to prove it keeps receiving.

use crate::scratch_dir::ScratchDir;
use crate::tools::{ffmpeg_recorder, ChildGuard};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Growth that proves media still flows (the sample is roughly 100-200 KB/s; ffmpeg writes
/// through a 32 KiB buffer).
const GROWTH_BYTES: u64 = 64 * 1024;

pub struct Recorder {
    pub child: ChildGuard,
    pub path: PathBuf,
    _dir: ScratchDir,
}

impl Recorder {
    /// Starts `ffmpeg -i <url> -c copy -f flv <file>`.
    pub fn start(url: &str) -> Recorder {
        let dir = ScratchDir::new("recorder");
        let path = dir.join("recording.flv");
        let child = ffmpeg_recorder(url, &path);
        Recorder {
            child,
            path,
            _dir: dir,
        }
    }

    pub fn size(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }

    /// Panics unless the recording grows by a healthy amount within `timeout`.
    pub fn assert_keeps_receiving(&mut self, timeout: Duration) {
        let start = self.size();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.size() >= start + GROWTH_BYTES {
                return;
            }
            assert!(
                self.child.is_running(),
                "the ffmpeg viewer exited:\n{}",
                self.child.stderr()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "the ffmpeg viewer stopped receiving: {} grew from {start} to {} bytes in {timeout:?}",
            self.path.display(),
            self.size()
        );
    }
}
