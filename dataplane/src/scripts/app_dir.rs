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
    let rel = Path::new(name);
    if name.is_empty() || name.contains('\0') {
        return Err(format!("load({name:?}): not a file name"));
    }
    if rel
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(format!(
            "load({name:?}): only files inside the application's folder can be loaded"
        ));
    }
    let path = folder.join(rel);
    let real = path
        .canonicalize()
        .map_err(|e| format!("load({name:?}): {e}"))?;
    let root = folder
        .canonicalize()
        .map_err(|e| format!("load({name:?}): the application folder: {e}"))?;
    if !real.starts_with(&root) {
        return Err(format!(
            "load({name:?}): the file is outside the application's folder"
        ));
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
}
