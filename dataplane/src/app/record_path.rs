//! Where a recording of `app/instance/name` goes: `<root>/<app>/<instance>/` and the
//! application's pattern (`{name}`, `{time}`), with every part checked, since the
//! application, instance and stream names come from clients: no `..`, no absolute or empty
//! parts, no NUL, nothing too long for a file system. A name that fails is not recorded.

use std::path::{Path, PathBuf};

/// Linux's NAME_MAX: the longest file or directory name.
const MAX_PART: usize = 255;
/// Well under PATH_MAX, for the part a client controls.
const MAX_RELATIVE: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PathRefused {
    #[error("no content root is configured (vod.root)")]
    NoRoot,
    #[error("{0:?} is not a name a recording can take")]
    BadName(String),
}

/// The file for a recording started at Unix time `time`.
pub(crate) fn record_path(
    root: Option<&Path>,
    app: &str,
    instance: &str,
    name: &str,
    pattern: &str,
    time: u64,
) -> Result<PathBuf, PathRefused> {
    let root = root.ok_or(PathRefused::NoRoot)?;
    let file = pattern
        .replace("{name}", name)
        .replace("{time}", &time.to_string());
    let relative = format!("{app}/{instance}/{file}");
    let bad = || PathRefused::BadName(relative.clone());
    if relative.len() > MAX_RELATIVE || relative.contains('\0') || relative.contains('\\') {
        return Err(bad());
    }
    let mut path = root.to_path_buf();
    for part in relative.split('/') {
        if part.is_empty() || part == "." || part == ".." || part.len() > MAX_PART {
            return Err(bad());
        }
        path.push(part);
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(app: &str, instance: &str, name: &str, pattern: &str) -> Result<PathBuf, PathRefused> {
        record_path(
            Some(Path::new("/srv/media")),
            app,
            instance,
            name,
            pattern,
            1_700_000_000,
        )
    }

    #[test]
    fn the_default_is_the_vod_name_under_app_and_instance() {
        assert_eq!(
            p("live", "_definst_", "cam", "{name}.flv"),
            Ok(PathBuf::from("/srv/media/live/_definst_/cam.flv"))
        );
        assert_eq!(
            p("live", "room", "dir/cam", "rec/{name}-{time}.flv"),
            Ok(PathBuf::from(
                "/srv/media/live/room/rec/dir/cam-1700000000.flv"
            ))
        );
    }

    #[test]
    fn names_that_leave_the_root_or_break_the_file_system_are_refused() {
        for (app, instance, name) in [
            ("live", "_definst_", "../../etc/passwd"),
            ("live", "_definst_", "/abs"),
            ("live", "..", "cam"),
            ("..", "_definst_", "cam"),
            ("live", "_definst_", "a//b"),
            ("live", "_definst_", "./cam"),
            ("live", "_definst_", "nul\0x"),
            ("live", "_definst_", "back\\slash"),
        ] {
            assert!(
                matches!(
                    p(app, instance, name, "{name}.flv"),
                    Err(PathRefused::BadName(_))
                ),
                "{app}/{instance}/{name}"
            );
        }
        assert!(p("live", "_definst_", &"x".repeat(300), "{name}.flv").is_err());
        assert!(p("live", "_definst_", &"x/".repeat(600), "{name}.flv").is_err());
        assert_eq!(
            record_path(None, "live", "_definst_", "cam", "{name}.flv", 0),
            Err(PathRefused::NoRoot)
        );
    }
}
