//! Which worker publishes each stream and which workers have its viewers. Shared by all
//! workers behind one mutex, taken only when a client starts or stops publishing or
//! playing: never per media message.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::app::StreamKey;

#[derive(Debug, Default)]
struct Entry {
    /// (worker, publish id) of the current publisher.
    publisher: Option<(usize, u64)>,
    /// Viewers per worker.
    viewers: Vec<u32>,
}

pub(crate) struct Registry {
    streams: Mutex<HashMap<StreamKey, Entry>>,
    workers: usize,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PublishRefused {
    NameInUse,
    TooManyStreams,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Joined {
    /// The publisher's worker and publish id, if the stream is live.
    pub(crate) publisher: Option<(usize, u64)>,
    /// This is the worker's first viewer of the stream: the publisher's worker must be told.
    pub(crate) first_on_worker: bool,
}

impl Registry {
    pub(crate) fn new(workers: usize) -> Self {
        Registry {
            streams: Mutex::new(HashMap::new()),
            workers,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<StreamKey, Entry>> {
        // A worker that panicked while holding the lock leaves a consistent map (every update
        // is a single assignment), so the poison flag is not a reason to stop serving.
        self.streams.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Claims `key` for a publisher on `worker`. Returns the publish id and the other workers
    /// that already have viewers waiting.
    pub(crate) fn publish(
        &self,
        key: &StreamKey,
        worker: usize,
        publish_id: u64,
        app_limit: Option<(&str, usize)>,
    ) -> Result<Vec<usize>, PublishRefused> {
        let mut map = self.lock();
        if map.get(key).is_some_and(|e| e.publisher.is_some()) {
            return Err(PublishRefused::NameInUse);
        }
        if let Some((app, limit)) = app_limit.filter(|(_, l)| *l > 0) {
            let live = map
                .iter()
                .filter(|(k, e)| e.publisher.is_some() && k.app() == app)
                .count();
            if live >= limit {
                return Err(PublishRefused::TooManyStreams);
            }
        }
        let workers = self.workers;
        let entry = map.entry(key.clone()).or_insert_with(|| Entry {
            publisher: None,
            viewers: vec![0; workers],
        });
        entry.publisher = Some((worker, publish_id));
        Ok(entry
            .viewers
            .iter()
            .enumerate()
            .filter(|(w, n)| *w != worker && **n > 0)
            .map(|(w, _)| w)
            .collect())
    }

    /// Releases `key` if `publish_id` still holds it; returns the other workers with viewers.
    pub(crate) fn unpublish(&self, key: &StreamKey, publish_id: u64) -> Vec<usize> {
        let mut map = self.lock();
        let Some(entry) = map.get_mut(key) else {
            return Vec::new();
        };
        let Some((worker, id)) = entry.publisher else {
            return Vec::new();
        };
        if id != publish_id {
            return Vec::new();
        }
        entry.publisher = None;
        let others = entry
            .viewers
            .iter()
            .enumerate()
            .filter(|(w, n)| *w != worker && **n > 0)
            .map(|(w, _)| w)
            .collect();
        if entry.viewers.iter().all(|n| *n == 0) {
            map.remove(key);
        }
        others
    }

    /// Whether `key` has a publisher (a client or an upstream link) on some worker (a VOD
    /// play with start -2 prefers the live stream).
    pub(crate) fn is_published(&self, key: &StreamKey) -> bool {
        self.lock().get(key).is_some_and(|e| e.publisher.is_some())
    }

    /// The names live in `app`/`instance` now, for a child server that just registered.
    pub(crate) fn live_names(&self, app: &str, instance: &str) -> Vec<String> {
        self.lock()
            .iter()
            .filter(|(k, e)| e.publisher.is_some() && k.app() == app && k.instance() == instance)
            .map(|(k, _)| k.name().to_string())
            .collect()
    }

    /// Whether any worker has a viewer of `key` (a relay pull is kept while one does).
    pub(crate) fn has_viewers(&self, key: &StreamKey) -> bool {
        self.lock()
            .get(key)
            .is_some_and(|e| e.viewers.iter().any(|n| *n > 0))
    }

    /// Streams with a publisher right now, for status.
    pub(crate) fn published(&self) -> u64 {
        self.lock()
            .values()
            .filter(|e| e.publisher.is_some())
            .count() as u64
    }

    pub(crate) fn join(&self, key: &StreamKey, worker: usize) -> Joined {
        let mut map = self.lock();
        let workers = self.workers;
        let entry = map.entry(key.clone()).or_insert_with(|| Entry {
            publisher: None,
            viewers: vec![0; workers],
        });
        let first_on_worker = match entry.viewers.get_mut(worker) {
            Some(n) => {
                *n += 1;
                *n == 1
            }
            None => false,
        };
        Joined {
            publisher: entry.publisher,
            first_on_worker,
        }
    }

    /// Returns the publisher's worker when `worker` just lost its last viewer of `key`.
    pub(crate) fn leave(&self, key: &StreamKey, worker: usize) -> Option<usize> {
        let mut map = self.lock();
        let entry = map.get_mut(key)?;
        let n = entry.viewers.get_mut(worker)?;
        *n = n.saturating_sub(1);
        let last = *n == 0;
        let publisher = entry.publisher.map(|(w, _)| w);
        if entry.publisher.is_none() && entry.viewers.iter().all(|n| *n == 0) {
            map.remove(key);
        }
        if last {
            publisher
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_publisher_is_refused() {
        let r = Registry::new(2);
        let k = StreamKey::new("live", "_definst_", "cam");
        assert_eq!(r.publish(&k, 0, 1, None), Ok(vec![]));
        assert_eq!(r.publish(&k, 1, 2, None), Err(PublishRefused::NameInUse));
        r.unpublish(&k, 1);
        assert_eq!(r.publish(&k, 1, 3, None), Ok(vec![]));
    }

    #[test]
    fn waiting_viewers_are_reported_to_the_publisher() {
        let r = Registry::new(2);
        let k = StreamKey::new("live", "_definst_", "cam");
        assert_eq!(
            r.join(&k, 1),
            Joined {
                publisher: None,
                first_on_worker: true
            }
        );
        assert_eq!(
            r.join(&k, 1),
            Joined {
                publisher: None,
                first_on_worker: false
            }
        );
        assert_eq!(r.publish(&k, 0, 7, None), Ok(vec![1]));
        assert_eq!(r.leave(&k, 1), None);
        assert_eq!(r.leave(&k, 1), Some(0));
    }

    #[test]
    fn app_stream_limit() {
        let r = Registry::new(1);
        let a = StreamKey::new("live", "_definst_", "a");
        let b = StreamKey::new("live", "_definst_", "b");
        assert!(r.publish(&a, 0, 1, Some(("live", 1))).is_ok());
        assert_eq!(
            r.publish(&b, 0, 2, Some(("live", 1))),
            Err(PublishRefused::TooManyStreams)
        );
    }
}
