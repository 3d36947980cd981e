//! Where a stream name's file lives under the content root, decided from the name alone.
//!
//! AMS names files as its clients name them: `name` and `flv:name` are `name.flv`,
//! `mp4:name.mp4` (`.f4v`, `.m4v`) an ISO file, under `<root>/<app>/<instance>/`, with
//! `_definst_` for the default instance (AMS's `streams/_definst_`). Names come from peers,
//! so this is the gate against escaping the content root: every component of the relative
//! path is checked here (no `..`, `.`, empty component, absolute path, NUL or control
//! character, nothing over-long). Symbolic links pointing out of the root can only be seen
//! on the filesystem; `engine/content_root.rs` checks those when it opens or places a file.
//! Readers (VOD) and writers (recording) share this module so both name files alike.

use std::fmt;
use std::path::{Path, PathBuf};

/// Linux's NAME_MAX: no file name component can be longer.
const MAX_COMPONENT_BYTES: usize = 255;
/// Longest relative path accepted (app, instance, subdirectories, name): real names are far
/// shorter, and a bound keeps logs and path buffers small.
const MAX_RELATIVE_BYTES: usize = 1024;

/// A file's container, as its name says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileFormat {
    Flv,
    /// ISO base media file format: `.mp4`, `.f4v`, `.m4v`.
    Iso,
}

/// A stream name resolved to a file path relative to the content root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ContentPath {
    relative: PathBuf,
    format: FileFormat,
}

/// Why a name names no file. Shown in the log line that accompanies StreamNotFound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum NameError {
    #[error("the name is empty")]
    Empty,
    #[error("the name holds a NUL or control character")]
    ControlCharacter,
    #[error("the name is an absolute path")]
    Absolute,
    #[error("the name has an empty, '.' or '..' path component")]
    Traversal,
    #[error("a path component is longer than {MAX_COMPONENT_BYTES} bytes")]
    ComponentTooLong,
    #[error("the path is longer than {MAX_RELATIVE_BYTES} bytes")]
    TooLong,
    #[error("unsupported name prefix {0:?} (flv: and mp4: are served)")]
    UnsupportedPrefix(String),
    #[error("mp4: names need a .mp4, .f4v or .m4v extension, or none")]
    NotIsoExtension,
}

impl ContentPath {
    /// The file `name` names in `app`'s `instance` (the default instance is `_definst_`).
    /// A query (`name?token=...`) is not part of the file name.
    pub(crate) fn resolve(app: &str, instance: &str, name: &str) -> Result<Self, NameError> {
        let name = name.split('?').next().unwrap_or(name);
        let (format, file) = split_prefix(name)?;
        // Checked as sent, before an extension is added: `..` must not become `...flv`.
        if file.starts_with('/') {
            return Err(NameError::Absolute);
        }
        file.split('/').try_for_each(check_component)?;
        let file = match format {
            FileFormat::Flv if has_extension(file, "flv") => file.to_string(),
            FileFormat::Flv => format!("{file}.flv"),
            FileFormat::Iso if ["mp4", "f4v", "m4v"].iter().any(|e| has_extension(file, e)) => {
                file.to_string()
            }
            // librtmp sends `mp4:dir/name` for `dir/name.mp4` (it strips the extension).
            FileFormat::Iso if !last_component(file).contains('.') => format!("{file}.mp4"),
            FileFormat::Iso => return Err(NameError::NotIsoExtension),
        };
        Ok(ContentPath {
            relative: below_root(&[app, instance, &file])?,
            format,
        })
    }

    /// The file a recording of a stream of `app`'s `instance` writes: `file` (below the
    /// instance's directory) comes from the application's pattern with the stream name in
    /// it, so it is checked as a played name is. Recorded files are FLV.
    pub(crate) fn recording(app: &str, instance: &str, file: &str) -> Result<Self, NameError> {
        Ok(ContentPath {
            relative: below_root(&[app, instance, file])?,
            format: FileFormat::Flv,
        })
    }

    /// The path below the content root: `<app>/<instance>/<dirs>/<file>`, every component a
    /// plain name.
    pub(crate) fn relative(&self) -> &Path {
        &self.relative
    }

    pub(crate) fn format(&self) -> FileFormat {
        self.format
    }
}

/// The name a client plays `file` by (a path below `<app>/<instance>/`, `/`-separated):
/// `dir/clip` for `dir/clip.flv` (`dir/clip.FLV` as it is, `flv:` when the first component
/// holds a colon), and `mp4:dir/clip.mp4` for ISO files. None for a file no name reaches
/// (another extension, a component `resolve` refuses), so listings show only what plays.
pub(crate) fn play_name(app: &str, instance: &str, file: &str) -> Option<String> {
    let candidates = if has_extension(file, "flv") {
        let stem = &file[..file.len() - ".flv".len()];
        vec![
            stem.to_string(),
            file.to_string(),
            format!("flv:{stem}"),
            format!("flv:{file}"),
        ]
    } else if ["mp4", "f4v", "m4v"].iter().any(|e| has_extension(file, e)) {
        vec![format!("mp4:{file}")]
    } else {
        return None;
    };
    // The first name that leads back to this very file.
    let wanted = Path::new(app).join(instance).join(file);
    candidates.into_iter().find(|name| {
        ContentPath::resolve(app, instance, name).is_ok_and(|p| p.relative() == wanted)
    })
}

impl fmt::Display for ContentPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.relative.display().fmt(f)
    }
}

/// `flv:` and `mp4:` (any case) pick the container; no prefix is FLV. Other AMS prefixes
/// (`raw:`, `id3:`, `mp3:`) name formats not served. A colon elsewhere is part of the name.
fn split_prefix(name: &str) -> Result<(FileFormat, &str), NameError> {
    let Some((prefix, rest)) = name.split_once(':') else {
        return non_empty(FileFormat::Flv, name);
    };
    if prefix.contains('/') {
        return non_empty(FileFormat::Flv, name);
    }
    if prefix.eq_ignore_ascii_case("flv") {
        non_empty(FileFormat::Flv, rest)
    } else if prefix.eq_ignore_ascii_case("mp4") {
        non_empty(FileFormat::Iso, rest)
    } else {
        Err(NameError::UnsupportedPrefix(
            prefix.chars().take(16).collect(),
        ))
    }
}

fn non_empty(format: FileFormat, name: &str) -> Result<(FileFormat, &str), NameError> {
    if name.is_empty() {
        Err(NameError::Empty)
    } else {
        Ok((format, name))
    }
}

fn last_component(file: &str) -> &str {
    file.rsplit('/').next().unwrap_or(file)
}

fn has_extension(file: &str, extension: &str) -> bool {
    file.rsplit_once('.').is_some_and(|(stem, ext)| {
        !stem.is_empty() && !stem.ends_with('/') && ext.eq_ignore_ascii_case(extension)
    })
}

/// `parts` (each `/`-separated) joined into a path below the root, every component a plain
/// name and the whole of a bounded length.
fn below_root(parts: &[&str]) -> Result<PathBuf, NameError> {
    let mut relative = PathBuf::new();
    for part in parts {
        if part.starts_with('/') {
            return Err(NameError::Absolute);
        }
        for component in part.split('/') {
            check_component(component)?;
            relative.push(component);
        }
    }
    if relative.as_os_str().len() > MAX_RELATIVE_BYTES {
        return Err(NameError::TooLong);
    }
    Ok(relative)
}

fn check_component(component: &str) -> Result<(), NameError> {
    if component.is_empty() || component == "." || component == ".." {
        return Err(NameError::Traversal);
    }
    if component.chars().any(char::is_control) {
        return Err(NameError::ControlCharacter);
    }
    if component.len() > MAX_COMPONENT_BYTES {
        return Err(NameError::ComponentTooLong);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const D: &str = "_definst_";

    fn path(app: &str, instance: &str, name: &str) -> Result<(String, FileFormat), NameError> {
        ContentPath::resolve(app, instance, name)
            .map(|p| (p.relative().display().to_string(), p.format()))
    }

    #[test]
    fn listed_names_play_the_listed_file() {
        let name = |f: &str| play_name("vod", D, f);
        assert_eq!(name("clip.flv").as_deref(), Some("clip"));
        assert_eq!(name("dir/sub/clip.flv").as_deref(), Some("dir/sub/clip"));
        assert_eq!(name("Clip.FLV").as_deref(), Some("Clip.FLV"));
        assert_eq!(name("a:b.flv").as_deref(), Some("flv:a:b"));
        assert_eq!(name("dir/a.mp4").as_deref(), Some("mp4:dir/a.mp4"));
        assert_eq!(name("a.f4v").as_deref(), Some("mp4:a.f4v"));
        // Not served, or not reachable by any name.
        assert_eq!(name("notes.txt"), None);
        assert_eq!(name(".flv"), None);
        assert_eq!(name("q?x.flv"), None);
        assert_eq!(name("bell\u{7}.flv"), None);
    }

    #[test]
    fn ams_names_map_to_files() {
        use FileFormat::*;
        assert_eq!(
            path("vod", D, "clip"),
            Ok(("vod/_definst_/clip.flv".into(), Flv))
        );
        assert_eq!(
            path("vod", D, "flv:clip"),
            Ok(("vod/_definst_/clip.flv".into(), Flv))
        );
        assert_eq!(
            path("vod", D, "clip.flv"),
            Ok(("vod/_definst_/clip.flv".into(), Flv))
        );
        assert_eq!(
            path("vod", D, "mp4:a.mp4"),
            Ok(("vod/_definst_/a.mp4".into(), Iso))
        );
        assert_eq!(
            path("vod", D, "MP4:a.F4V"),
            Ok(("vod/_definst_/a.F4V".into(), Iso))
        );
        assert_eq!(
            path("vod", D, "mp4:a.m4v?t=1"),
            Ok(("vod/_definst_/a.m4v".into(), Iso))
        );
        assert_eq!(
            path("vod", "room/a", "mp4:dir/sub/a.mp4"),
            Ok(("vod/room/a/dir/sub/a.mp4".into(), Iso))
        );
        assert_eq!(
            path("vod", D, "dir/x:y"),
            Ok(("vod/_definst_/dir/x:y.flv".into(), Flv))
        );
    }

    #[test]
    fn escapes_are_refused() {
        assert_eq!(path("vod", D, "../x"), Err(NameError::Traversal));
        assert_eq!(
            path("vod", D, "mp4:../../etc/a.mp4"),
            Err(NameError::Traversal)
        );
        assert_eq!(path("vod", D, "a/./b"), Err(NameError::Traversal));
        assert_eq!(path("vod", D, "a//b"), Err(NameError::Traversal));
        assert_eq!(path("vod", D, ".."), Err(NameError::Traversal));
        assert_eq!(path("vod", "..", "x"), Err(NameError::Traversal));
        assert_eq!(path("..", D, "x"), Err(NameError::Traversal));
        assert_eq!(path("vod", D, "/etc/passwd"), Err(NameError::Absolute));
        assert_eq!(path("vod", D, "flv:/etc/passwd"), Err(NameError::Absolute));
        assert_eq!(path("vod", D, "a\0b"), Err(NameError::ControlCharacter));
        assert_eq!(path("vod", D, "a\nb"), Err(NameError::ControlCharacter));
        assert_eq!(
            path("vod", D, &"a".repeat(300)),
            Err(NameError::ComponentTooLong)
        );
        let deep = vec!["d".repeat(200); 6].join("/");
        assert_eq!(path("vod", D, &deep), Err(NameError::TooLong));
    }

    #[test]
    fn odd_prefixes_and_extensions() {
        assert_eq!(path("vod", D, ""), Err(NameError::Empty));
        assert_eq!(path("vod", D, "flv:"), Err(NameError::Empty));
        assert_eq!(
            path("vod", D, "mp4:a"),
            Ok(("vod/_definst_/a.mp4".into(), FileFormat::Iso))
        );
        assert_eq!(path("vod", D, "mp4:a.avi"), Err(NameError::NotIsoExtension));
        assert_eq!(
            path("vod", D, "raw:a"),
            Err(NameError::UnsupportedPrefix("raw".into()))
        );
    }

    proptest! {
        /// Whatever a peer sends, an accepted path is relative and made of plain names only.
        #[test]
        fn accepted_paths_stay_below_the_root(
            app in "[a-z./]{0,6}",
            name in proptest::string::string_regex("(mp4:|flv:)?[a-z./\\\\:\\x00]{0,24}(\\.mp4)?").expect("regex"),
        ) {
            if let Ok(p) = ContentPath::resolve(&app, D, &name) {
                prop_assert!(p.relative().is_relative());
                for c in p.relative().components() {
                    prop_assert!(matches!(c, std::path::Component::Normal(_)), "{:?}", p);
                }
            }
        }

        /// Whatever a file is called on disk, a listed name plays that very file.
        #[test]
        fn listed_names_resolve_back_to_their_file(
            file in proptest::string::string_regex("[a-zA-Z:?./\\x00é]{0,20}(\\.(flv|FLV|mp4|f4v|txt))?").expect("regex"),
        ) {
            if let Some(name) = play_name("vod", D, &file) {
                let p = ContentPath::resolve("vod", D, &name).expect("a listed name resolves");
                prop_assert_eq!(p.relative(), Path::new("vod").join(D).join(&file));
            }
        }
    }
}
