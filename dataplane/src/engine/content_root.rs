//! The content root on disk: the one place that turns a `ContentPath` (already checked
//! name by name, `media/vod/content_path.rs`) into a path to open, refusing what only the
//! filesystem can show: a symbolic link (anywhere on the way) that leads out of the root.
//! Used by VOD to open files and by recording to place them.
//!
//! The check canonicalises the path and requires the result to lie below the canonical
//! root, then hands back that canonical path (symlink-free at the time of the check). An
//! operator who lets untrusted users create links inside the root between the check and
//! the open could still race it. Plays and `getStreamLength` do not use this check: they
//! open through the ring beneath the root's directory with RESOLVE_BENEATH
//! (`engine/file_open.rs`, `worker/vod.rs`), check and open in one step, and so do
//! server-side streams' items; the listing (on the control thread) and recording still
//! check here.

use std::io;
use std::path::{Path, PathBuf};

use crate::media::vod::content_path::ContentPath;

/// Why a content path cannot be used; logged with the client's address beside StreamNotFound.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RootError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path} leads out of the content root (through a symbolic link)")]
    Escapes { path: PathBuf },
    #[error("{path} is not a regular file")]
    NotAFile { path: PathBuf },
}

/// The content root, canonicalised once when the configuration is applied.
#[derive(Debug, Clone)]
pub(crate) struct ContentRoot {
    root: PathBuf,
}

impl ContentRoot {
    /// The root must exist: a VOD server whose content directory is missing is a mistake
    /// the operator hears about at start, not at the first play.
    pub(crate) fn new(root: &Path) -> Result<Self, RootError> {
        let root = root.canonicalize().map_err(|source| RootError::Io {
            path: root.to_path_buf(),
            source,
        })?;
        Ok(ContentRoot { root })
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// The regular file `path` names, for reading.
    pub(crate) fn existing_file(&self, path: &ContentPath) -> Result<PathBuf, RootError> {
        let joined = self.root.join(path.relative());
        let real = joined.canonicalize().map_err(|source| RootError::Io {
            path: joined.clone(),
            source,
        })?;
        if !real.starts_with(&self.root) {
            return Err(RootError::Escapes { path: joined });
        }
        let meta = std::fs::metadata(&real).map_err(|source| RootError::Io {
            path: real.clone(),
            source,
        })?;
        if !meta.is_file() {
            return Err(RootError::NotAFile { path: real });
        }
        Ok(real)
    }

    /// Where to write `path` (recording): its directories are created below the root; the
    /// file may not exist yet, but if it does (append) it must be a regular file in the root.
    pub(crate) fn place_file(&self, path: &ContentPath) -> Result<PathBuf, RootError> {
        let joined = self.root.join(path.relative());
        let (Some(parent), Some(file_name)) = (joined.parent(), joined.file_name()) else {
            return Err(RootError::NotAFile { path: joined });
        };
        std::fs::create_dir_all(parent).map_err(|source| RootError::Io {
            path: parent.to_path_buf(),
            source,
        })?;
        let real_parent = parent.canonicalize().map_err(|source| RootError::Io {
            path: parent.to_path_buf(),
            source,
        })?;
        if !real_parent.starts_with(&self.root) {
            return Err(RootError::Escapes { path: joined });
        }
        let target = real_parent.join(file_name);
        match std::fs::symlink_metadata(&target) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(target),
            Err(source) => Err(RootError::Io {
                path: target,
                source,
            }),
            Ok(meta) if meta.is_file() => Ok(target),
            // A link (even one inside the root) or a directory is never written through.
            Ok(_) => Err(RootError::NotAFile { path: target }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A scratch directory removed at the end of the test.
    struct Scratch(PathBuf);
    impl Scratch {
        fn new(tag: &str) -> Self {
            let dir = std::env::temp_dir()
                .join(format!("strata-content-root-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("scratch dir");
            Scratch(dir)
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn content(name: &str) -> ContentPath {
        ContentPath::resolve("vod", "_definst_", name).expect("valid name")
    }

    #[test]
    fn files_inside_are_found_links_out_refused() {
        let s = Scratch::new("read");
        let root = s.0.join("root");
        let dir = root.join("vod/_definst_/sub");
        std::fs::create_dir_all(&dir).expect("dirs");
        std::fs::write(dir.join("a.flv"), b"FLV").expect("file");
        std::fs::write(s.0.join("secret.flv"), b"no").expect("outside file");
        symlink(s.0.join("secret.flv"), dir.join("out.flv")).expect("link");
        symlink(&s.0, dir.join("up")).expect("dir link");
        symlink(dir.join("a.flv"), dir.join("in.flv")).expect("inner link");
        let r = ContentRoot::new(&root).expect("root");

        let found = r.existing_file(&content("sub/a")).expect("inside");
        assert!(found.ends_with("vod/_definst_/sub/a.flv"));
        // A link that stays inside the root is followed.
        assert_eq!(r.existing_file(&content("sub/in")).expect("inner"), found);
        assert!(matches!(
            r.existing_file(&content("sub/out")),
            Err(RootError::Escapes { .. })
        ));
        assert!(matches!(
            r.existing_file(&content("sub/up/secret")),
            Err(RootError::Escapes { .. })
        ));
        assert!(matches!(
            r.existing_file(&content("none")),
            Err(RootError::Io { .. })
        ));
        std::fs::create_dir_all(dir.join("d.flv")).expect("dir named like a file");
        assert!(matches!(
            r.existing_file(&content("sub/d")),
            Err(RootError::NotAFile { .. })
        ));
    }

    #[test]
    fn placing_creates_directories_and_refuses_links() {
        let s = Scratch::new("write");
        let root = s.0.join("root");
        std::fs::create_dir_all(&root).expect("root");
        let r = ContentRoot::new(&root).expect("root");
        let placed = r.place_file(&content("new/dir/rec")).expect("placed");
        assert!(placed.starts_with(r.root()) && placed.ends_with("new/dir/rec.flv"));
        assert!(placed.parent().is_some_and(Path::is_dir));

        let dir = root.join("vod/_definst_");
        symlink(&s.0, dir.join("up")).expect("dir link");
        assert!(matches!(
            r.place_file(&content("up/x")),
            Err(RootError::Escapes { .. })
        ));
        symlink(s.0.join("victim"), dir.join("l.flv")).expect("file link");
        assert!(matches!(
            r.place_file(&content("l")),
            Err(RootError::NotAFile { .. })
        ));
        assert!(ContentRoot::new(&s.0.join("missing")).is_err());
    }
}
