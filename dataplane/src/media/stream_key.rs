//! A live stream's identity: application, instance and name.

use std::fmt;
use std::sync::Arc;

/// A live stream's identity: application, instance and name. Cheap to clone (one refcount)
/// because it travels with every cross-worker media message.
///
/// The application never holds `/` (a connect's path is split at its first `/`); the
/// instance and the name may (`live/room/a` connects to instance `room/a`; AMS-style names
/// such as `dir/cam` or `mp4:dir/file` are one name). So the parts are kept apart, never
/// recovered by splitting the joined text.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamKey(Arc<KeyParts>);

/// The joined text `app/instance/name` (what `Display` shows and the key hashes on), with
/// the ends of the application and the instance in it.
#[derive(PartialEq, Eq, Hash, PartialOrd, Ord)]
struct KeyParts {
    full: Box<str>,
    app_end: usize,
    instance_end: usize,
}

impl StreamKey {
    /// The query part of a stream name (`name?token=...`) carries parameters for auth hooks,
    /// not identity, so it is not part of the key.
    pub fn new(app: &str, instance: &str, name: &str) -> Self {
        let name = name.split('?').next().unwrap_or(name);
        let full = format!("{app}/{instance}/{name}").into_boxed_str();
        StreamKey(Arc::new(KeyParts {
            full,
            app_end: app.len(),
            instance_end: app.len() + 1 + instance.len(),
        }))
    }

    pub(crate) fn app(&self) -> &str {
        &self.0.full[..self.0.app_end]
    }

    pub(crate) fn instance(&self) -> &str {
        &self.0.full[self.0.app_end + 1..self.0.instance_end]
    }

    /// The stream name as published (`cam`, `dir/cam`), without its query.
    pub(crate) fn name(&self) -> &str {
        &self.0.full[self.0.instance_end + 1..]
    }

    /// Whether an operator's `app/name` (default instance) or `app/instance/name` names this
    /// stream. Matched against the parts rather than parsed, because instance and name may
    /// both hold `/`.
    pub(crate) fn is_named(&self, path: &str, default_instance: &str) -> bool {
        let Some(rest) = path
            .strip_prefix(self.app())
            .and_then(|r| r.strip_prefix('/'))
        else {
            return false;
        };
        let full_match = rest
            .strip_prefix(self.instance())
            .and_then(|r| r.strip_prefix('/'))
            .is_some_and(|name| name == self.name());
        full_match || (self.instance() == default_instance && rest == self.name())
    }
}

impl fmt::Display for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.full)
    }
}

impl fmt::Debug for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "StreamKey({:?}, {:?}, {:?})",
            self.app(),
            self.instance(),
            self.name()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_is_not_identity() {
        assert_eq!(
            StreamKey::new("live", "_definst_", "cam?token=1"),
            StreamKey::new("live", "_definst_", "cam")
        );
        assert_ne!(
            StreamKey::new("live", "a", "cam"),
            StreamKey::new("live", "b", "cam")
        );
    }

    #[test]
    fn names_and_instances_keep_their_slashes() {
        let k = StreamKey::new("live", "_definst_", "dir/cam?key=1");
        assert_eq!(
            (k.app(), k.instance(), k.name()),
            ("live", "_definst_", "dir/cam")
        );
        assert_eq!(k.to_string(), "live/_definst_/dir/cam");
        let k = StreamKey::new("live", "room/a", "cam");
        assert_eq!((k.app(), k.instance(), k.name()), ("live", "room/a", "cam"));
    }

    #[test]
    fn same_text_different_split_is_a_different_stream() {
        assert_ne!(
            StreamKey::new("live", "a/b", "c"),
            StreamKey::new("live", "a", "b/c")
        );
    }

    #[test]
    fn operator_paths_match_by_parts() {
        let d = "_definst_";
        let k = StreamKey::new("live", d, "dir/cam");
        assert!(k.is_named("live/dir/cam", d));
        assert!(k.is_named("live/_definst_/dir/cam", d));
        assert!(!k.is_named("live/cam", d));
        assert!(!k.is_named("other/dir/cam", d));
        let k = StreamKey::new("live", "room/a", "cam");
        assert!(k.is_named("live/room/a/cam", d));
        assert!(!k.is_named("live/cam", d));
        assert!(!k.is_named("liv/room/a/cam", d));
    }
}
