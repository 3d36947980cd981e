use std::fmt;
use std::sync::Arc;

/// A live stream's identity: application, instance and name. Cheap to clone (one refcount)
/// because it travels with every cross-worker message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamKey(Arc<str>);

impl StreamKey {
    /// The query part of a stream name (`name?token=...`) carries parameters for auth hooks,
    /// not identity, so it is not part of the key.
    pub fn new(app: &str, instance: &str, name: &str) -> Self {
        let name = name.split('?').next().unwrap_or(name);
        StreamKey(Arc::from(format!("{app}/{instance}/{name}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
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
}
