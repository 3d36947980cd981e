//! The file indexes the workers hold, known process-wide: a worker about to index a file
//! another worker already holds the index of takes that one (`Arc`) instead of reading and
//! indexing the file again. Weak references: an index lives as long as some worker plays
//! (or waits on) its file, as before. A file is known by its device, inode, length and
//! modification time, so a file changed (a recording appended to) is indexed anew.
//! The lock is taken once per file a worker opens, never per viewer or per sample.

use std::collections::HashMap;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex, Weak};

use crate::media::vod::index::MediaIndex;

/// A file's identity and version, from its metadata once it is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct FileKey {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
}

impl FileKey {
    pub(crate) fn of(meta: &Metadata) -> Self {
        FileKey {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        }
    }
}

#[derive(Default)]
pub(crate) struct SharedIndexes {
    indexes: Mutex<HashMap<FileKey, Weak<MediaIndex>>>,
}

impl SharedIndexes {
    /// The index of this version of a file, if some worker holds it.
    pub(crate) fn get(&self, key: &FileKey) -> Option<Arc<MediaIndex>> {
        let indexes = self.indexes.lock().unwrap_or_else(|p| p.into_inner());
        indexes.get(key).and_then(Weak::upgrade)
    }

    /// A worker built this index: the others may take it. Indexes no worker holds any more
    /// are let go at the same time, so the map stays as small as what is played.
    pub(crate) fn insert(&self, key: FileKey, index: &Arc<MediaIndex>) {
        let mut indexes = self.indexes.lock().unwrap_or_else(|p| p.into_inner());
        indexes.retain(|_, i| i.strong_count() > 0);
        indexes.insert(key, Arc::downgrade(index));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::vod::index::Sample;

    fn key(len: u64) -> FileKey {
        FileKey {
            dev: 1,
            ino: 2,
            len,
            mtime_ns: 3,
        }
    }

    #[test]
    fn an_index_is_shared_while_a_worker_holds_it() {
        let shared = SharedIndexes::default();
        let index = Arc::new(MediaIndex::from_samples(Vec::<Sample>::new()));
        shared.insert(key(10), &index);
        assert!(shared
            .get(&key(10))
            .is_some_and(|i| Arc::ptr_eq(&i, &index)));
        assert!(
            shared.get(&key(11)).is_none(),
            "another version of the file"
        );
        drop(index);
        assert!(shared.get(&key(10)).is_none(), "nobody holds it any more");
        let other = Arc::new(MediaIndex::from_samples(Vec::<Sample>::new()));
        shared.insert(key(11), &other);
        assert_eq!(shared.indexes.lock().map(|m| m.len()).unwrap_or(0), 1);
    }
}
