//! Where an application's scripts are, as AMS lays them out: `<dir>/<app>/main.asc`, or
//! `main.js`, or `<app>.asc`; and what `load("other.asc")` may open: a file inside the
//! application's folder, named relatively, never escaping it (by name or by a link).

use std::path::{Component, Path, PathBuf};

/// The names an application's main script may have, in AMS's order of preference.
fn main_names(app: &str) -> [String; 3] {
    ["main.asc".into(), "main.js".into(), format!("{app}.asc")]
}

/// Whether `app` is a plain folder name (no separators, no `..`): anything else is not
/// an application a client can name.
fn is_plain(app: &str) -> bool {
    !app.is_empty()
        && !app.starts_with('.')
        && !app.contains(['/', '\\', '\0'])
        && Path::new(app).components().count() == 1
}

/// The folder and main script of `app` under `dir`, if it has one.
pub(crate) fn main_script(dir: &Path, app: &str) -> Option<(PathBuf, PathBuf)> {
    if !is_plain(app) {
        return None;
    }
    let folder = dir.join(app);
    main_names(app)
        .into_iter()
        .map(|n| folder.join(n))
        .find(|p| p.is_file())
        .map(|p| (folder, p))
}

/// The application folders under `dir` that have a main script.
pub(crate) fn scripted_apps(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut apps: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|app| main_script(dir, app).is_some())
        .collect();
    apps.sort();
    apps
}

/// The file `load(name)` opens for the application in `folder`: `name` is relative to
/// the folder and may not leave it, by `..`, by an absolute path or by a link.
pub(crate) fn load_path(folder: &Path, name: &str) -> Result<PathBuf, String> {
    inside(folder, name, true).map_err(|e| format!("load({name:?}): {e}"))
}

/// What a script's `File` may touch: `name` relative to the application's `folder` (a
/// leading `/` is the folder itself, as AMS's File paths are rooted at the application),
/// never out of it by `..`, an absolute path or a link. A name that does not exist yet
/// (to be written) must have its parent inside. `""` and `/` are the folder.
pub(crate) fn file_path(folder: &Path, name: &str) -> Result<PathBuf, String> {
    let rel = name.trim_start_matches('/');
    if rel.is_empty() {
        return folder
            .canonicalize()
            .map_err(|e| format!("the application folder: {e}"));
    }
    inside(folder, rel, false).map_err(|e| format!("File({name:?}): {e}"))
}

fn inside(folder: &Path, name: &str, must_exist: bool) -> Result<PathBuf, String> {
    let rel = Path::new(name);
    if name.is_empty() || name.contains('\0') {
        return Err("not a file name".into());
    }
    if rel
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err("only files inside the application's folder can be used".into());
    }
    let root = folder
        .canonicalize()
        .map_err(|e| format!("the application folder: {e}"))?;
    let path = folder.join(rel);
    let real = match path.canonicalize() {
        Ok(real) => real,
        // Not there (yet): its nearest existing folder decides where it is; what is
        // missing below that cannot be a link, since it does not exist (a dangling link
        // does exist, and is refused: a write would follow it).
        Err(_) if !must_exist => {
            let mut existing = path.as_path();
            let mut missing = Vec::new();
            while existing.symlink_metadata().is_err() {
                let (Some(parent), Some(name)) = (existing.parent(), existing.file_name()) else {
                    return Err("not a file name".into());
                };
                missing.push(name);
                existing = parent;
            }
            if missing.is_empty() {
                return Err("a link to nowhere".into());
            }
            let mut real = existing.canonicalize().map_err(|e| e.to_string())?;
            real.extend(missing.iter().rev());
            real
        }
        Err(e) => return Err(e.to_string()),
    };
    if !real.starts_with(&root) {
        return Err("the file is outside the application's folder".into());
    }
    Ok(real)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("strata-appdir-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    }

    #[test]
    fn the_main_script_is_found_in_ams_order() {
        let d = dir("main");
        std::fs::create_dir_all(d.join("chat")).expect("mkdir");
        std::fs::create_dir_all(d.join("tv")).expect("mkdir");
        std::fs::create_dir_all(d.join("empty")).expect("mkdir");
        std::fs::write(d.join("chat/chat.asc"), "").expect("write");
        assert_eq!(
            main_script(&d, "chat").map(|m| m.1),
            Some(d.join("chat/chat.asc"))
        );
        std::fs::write(d.join("chat/main.js"), "").expect("write");
        assert_eq!(
            main_script(&d, "chat").map(|m| m.1),
            Some(d.join("chat/main.js"))
        );
        std::fs::write(d.join("chat/main.asc"), "").expect("write");
        assert_eq!(
            main_script(&d, "chat").map(|m| m.1),
            Some(d.join("chat/main.asc"))
        );
        std::fs::write(d.join("tv/main.js"), "").expect("write");
        assert_eq!(main_script(&d, "empty"), None);
        assert_eq!(main_script(&d, "../chat"), None);
        assert_eq!(main_script(&d, ""), None);
        assert_eq!(
            scripted_apps(&d),
            vec!["chat".to_string(), "tv".to_string()]
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn load_stays_inside_the_application_folder() {
        let d = dir("load");
        std::fs::create_dir_all(d.join("app/lib")).expect("mkdir");
        std::fs::write(d.join("app/lib/util.asc"), "").expect("write");
        std::fs::write(d.join("secret.asc"), "").expect("write");
        let folder = d.join("app");
        assert!(load_path(&folder, "lib/util.asc").is_ok());
        assert!(load_path(&folder, "./lib/util.asc").is_ok());
        assert!(load_path(&folder, "../secret.asc").is_err());
        assert!(load_path(&folder, "/etc/passwd").is_err());
        assert!(load_path(&folder, "missing.asc").is_err());
        std::os::unix::fs::symlink(d.join("secret.asc"), folder.join("link.asc")).expect("link");
        assert!(
            load_path(&folder, "link.asc").is_err(),
            "a link out is refused"
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn files_stay_inside_the_application_folder() {
        let d = dir("file");
        std::fs::create_dir_all(d.join("app/data")).expect("mkdir");
        std::fs::write(d.join("secret.txt"), "").expect("write");
        let folder = d.join("app");
        let root = folder.canonicalize().expect("root");
        assert_eq!(file_path(&folder, "/"), Ok(root.clone()));
        assert_eq!(file_path(&folder, "new.txt"), Ok(root.join("new.txt")));
        assert_eq!(file_path(&folder, "/data/x"), Ok(root.join("data/x")));
        for bad in [
            "../secret.txt",
            "data/../../secret.txt",
            "//etc/passwd/..",
            "a\0b",
        ] {
            assert!(file_path(&folder, bad).is_err(), "{bad}");
        }
        assert_eq!(
            file_path(&folder, "nowhere/new.txt"),
            Ok(root.join("nowhere/new.txt")),
            "a folder not made yet"
        );
        std::os::unix::fs::symlink(d.join("secret.txt"), folder.join("link")).expect("link");
        std::os::unix::fs::symlink(&d, folder.join("out")).expect("link");
        std::os::unix::fs::symlink(d.join("gone"), folder.join("dangling")).expect("link");
        for bad in ["link", "out/secret.txt", "out/new.txt", "dangling"] {
            assert!(file_path(&folder, bad).is_err(), "{bad}");
        }
        let _ = std::fs::remove_dir_all(&d);
    }
}
