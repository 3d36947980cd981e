//! Persistent shared objects on disk: one file per object under
//! `[shared_objects] dir`/<app>/<instance>/<name>.so (each part hex-encoded, so no name can
//! reach outside the directory), read on an object's first use and written by one writer
//! thread, so no worker waits for a disk.
//!
//! Crash safety: each write goes to a temporary file, is fsynced, renamed over the old
//! file, and the directory is fsynced: a `kill -9` (or a power cut) at any moment leaves
//! the previous or the new version, never a torn file. The file's own checksum
//! (`app::shared_object_file`) catches the rest. The writer keeps only the latest state
//! per object when writes queue up: every version it writes is complete.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};

use tracing::warn;

use crate::app::instance::InstanceKey;
use crate::app::shared_object_file;
use crate::app::shared_objects::Stored;

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

/// The file of object `name` of `instance`.
pub(crate) fn path(dir: &Path, instance: &InstanceKey, name: &str) -> PathBuf {
    dir.join(hex(&instance.app))
        .join(format!("i{}", hex(&instance.instance)))
        .join(format!("{}.so", hex(name)))
}

/// The stored state of the object at `path`: None when there is none, or it cannot be
/// read (logged: the object then starts empty rather than refusing every client).
pub(crate) fn read(path: &Path) -> Option<Stored> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => {
            warn!(path = %path.display(), error = %e, "cannot read a shared object");
            return None;
        }
    };
    match shared_object_file::decode(&bytes) {
        Ok(stored) => Some(stored),
        Err(e) => {
            warn!(path = %path.display(), error = %e, "stored shared object unreadable; starting empty");
            None
        }
    }
}

/// Writes `bytes` as `path`, crash-safely (see the module).
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("no parent directory"))?;
    fs::create_dir_all(dir)?;
    let tmp = path.with_extension("so.tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()
}

/// The writer thread's queue. Dropped (the worker stopping), it lets the thread write what
/// is queued and waits for it, so a clean shutdown stores every change.
pub(crate) struct Writer {
    tx: Option<Sender<(PathBuf, Vec<u8>)>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Writer {
    pub(crate) fn start() -> io::Result<Writer> {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("strata-so-disk".into())
            .spawn(move || run(&rx))?;
        Ok(Writer {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    pub(crate) fn write(
        &self,
        path: PathBuf,
        version: u32,
        slots: &[(String, crate::proto::amf0::Amf0Value)],
    ) {
        let bytes = shared_object_file::encode(version, slots);
        // A gone writer means the process is ending.
        if let Some(tx) = &self.tx {
            let _ = tx.send((path, bytes));
        }
    }
}

fn run(rx: &Receiver<(PathBuf, Vec<u8>)>) {
    while let Ok(first) = rx.recv() {
        // What queued meanwhile: only the latest state of each object is written.
        let mut latest: HashMap<PathBuf, Vec<u8>> = HashMap::new();
        let mut order = Vec::new();
        for (path, bytes) in std::iter::once(first).chain(rx.try_iter()) {
            if latest.insert(path.clone(), bytes).is_none() {
                order.push(path);
            }
        }
        for path in order {
            if let Some(bytes) = latest.remove(&path) {
                if let Err(e) = write_atomically(&path, &bytes) {
                    warn!(path = %path.display(), error = %e, "cannot store a shared object");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::amf0::Amf0Value;

    #[test]
    fn an_object_written_reads_back_and_names_stay_inside_the_directory() {
        let dir = std::env::temp_dir().join(format!("strata-so-disk-{}", std::process::id()));
        let key = InstanceKey::new("../app", "a/b");
        let p = path(&dir, &key, "../../etc/passwd");
        assert!(p.starts_with(&dir));
        assert_eq!(p.components().count(), dir.components().count() + 3);
        let slots = vec![("k".to_string(), Amf0Value::Number(1.0))];
        write_atomically(&p, &shared_object_file::encode(4, &slots)).expect("written");
        assert_eq!(read(&p), Some((4, slots.clone())));
        // The writer thread stores what was queued before it is dropped.
        let writer = Writer::start().expect("writer");
        writer.write(p.clone(), 5, &slots);
        drop(writer);
        assert_eq!(read(&p), Some((5, slots)));
        fs::write(&p, b"garbage").expect("damaged");
        assert_eq!(read(&p), None);
        let _ = fs::remove_dir_all(&dir);
    }
}
