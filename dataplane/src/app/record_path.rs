//! Where a recording of `app/instance/name` goes: `<root>/<app>/<instance>/` and the
//! application's pattern (`{name}`, `{time}`). The application, instance and stream names
//! come from clients, so the path is a `ContentPath` checked as a played name is (no `..`,
//! no absolute or empty parts, no NUL, nothing too long for a file system); the engine then
//! places it below the content root on disk (`ContentRoot::place_file`, which refuses
//! symbolic links out of it). A name that fails is not recorded.

use std::path::Path;

use crate::media::vod::content_path::ContentPath;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PathRefused {
    #[error("no content root is configured (vod.root)")]
    NoRoot,
    #[error("{0:?} is not a name a recording can take")]
    BadName(String),
}

/// The file (below `root`) for a recording started at Unix time `time`.
pub(crate) fn record_path(
    root: Option<&Path>,
    app: &str,
    instance: &str,
    name: &str,
    pattern: &str,
    time: u64,
) -> Result<ContentPath, PathRefused> {
    root.ok_or(PathRefused::NoRoot)?;
    let file = pattern
        .replace("{name}", name)
        .replace("{time}", &time.to_string());
    let bad = || PathRefused::BadName(format!("{app}/{instance}/{file}"));
    // A backslash is a plain character on Linux but a separator to whoever copies the
    // recordings elsewhere.
    if [app, instance, &file]
        .iter()
        .any(|part| part.contains('\\'))
    {
        return Err(bad());
    }
    ContentPath::recording(app, instance, &file).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn p(app: &str, instance: &str, name: &str, pattern: &str) -> Result<PathBuf, PathRefused> {
        let root = Path::new("/srv/media");
        record_path(Some(root), app, instance, name, pattern, 1_700_000_000)
            .map(|c| root.join(c.relative()))
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
