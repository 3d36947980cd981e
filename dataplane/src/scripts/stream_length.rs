//! `Stream.length(name)`: how long the recorded stream `name` of the instance is, in
//! seconds (0 when there is no such file), as AMS answers it. The file is found as a
//! client's play finds it (`ContentPath`, under `[vod] root`, links out refused by
//! `ContentRoot`) and indexed by the VOD indexers (fuzzed), reading only what they ask for.
//! It runs on the script thread; lengths are kept by file, size and modification time, so
//! a file is indexed once while it does not change.

use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::SystemTime;

use crate::engine::content_root::ContentRoot;
use crate::media::vod::content_path::ContentPath;
use crate::media::vod::index::Feed;
use crate::media::vod::indexer::Indexer;

/// The most one read the indexers ask for may take (an ISO `moov` is read whole).
const MAX_READ: usize = 64 * 1024 * 1024;
/// Reads are at least this long: the FLV indexer asks for a tag header at a time.
const MIN_READ: usize = 64 * 1024;

pub(super) struct StreamLengths {
    root: Option<PathBuf>,
    app: String,
    instance: String,
    known: HashMap<PathBuf, (u64, Option<SystemTime>, f64)>,
}

impl StreamLengths {
    pub(super) fn new(root: Option<PathBuf>, app: &str, instance: &str) -> Self {
        StreamLengths {
            root,
            app: app.to_string(),
            instance: instance.to_string(),
            known: HashMap::new(),
        }
    }

    /// Seconds, or 0 when `name` names no file that can be read.
    pub(super) fn length(&mut self, name: &str) -> f64 {
        self.try_length(name).unwrap_or(0.0)
    }

    fn try_length(&mut self, name: &str) -> Option<f64> {
        let root = ContentRoot::new(self.root.as_deref()?).ok()?;
        let path = ContentPath::resolve(&self.app, &self.instance, name).ok()?;
        let real = root.existing_file(&path).ok()?;
        let file = std::fs::File::open(&real).ok()?;
        let meta = file.metadata().ok()?;
        let stamp = (meta.len(), meta.modified().ok());
        if let Some((len, modified, secs)) = self.known.get(&real) {
            if (*len, *modified) == stamp {
                return Some(*secs);
            }
        }
        let mut indexer = Indexer::new(path.format(), meta.len());
        let mut next = indexer.start();
        let mut buf = Vec::new();
        // Each feed moves past at least one tag or box header, or ends: bounded by the file.
        let index = loop {
            match next {
                Feed::Done(index) => break index,
                Feed::Read { at, len } => {
                    if len > MAX_READ {
                        return None;
                    }
                    let want = len.clamp(MIN_READ, MAX_READ);
                    buf.resize(want, 0);
                    let n = read_at(&file, &mut buf, at)?;
                    next = indexer.feed(at, &buf[..n]).ok()?;
                }
            }
        };
        let secs = f64::from(index.duration_ms) / 1000.0;
        self.known.insert(real, (stamp.0, stamp.1, secs));
        Some(secs)
    }
}

/// Fills `buf` from `at` as far as the file goes; the bytes read.
fn read_at(file: &std::fs::File, buf: &mut [u8], at: u64) -> Option<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], at + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    Some(done)
}
