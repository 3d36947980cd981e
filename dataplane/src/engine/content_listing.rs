//! The files under the content root a client can play, for operators (`stratactl vod`, the
//! admin API): `<root>/<app>/<instance>/<dirs>/<file>`, each with the name a client plays it
//! by (`media/vod/content_path.rs`'s `play_name`, which resolves back to the same file).
//!
//! The walk is bounded (depth below an instance, entries looked at, files listed) because a
//! content root may hold anything, and it runs on the control thread. Directories reached
//! through a symbolic link are never entered (no loops, nothing outside); a linked file is
//! listed only when `ContentRoot::existing_file` (what a play opens) accepts it.

use std::fs;
use std::path::{Path, PathBuf};

use control_protocol::VodFileInfo;

use crate::engine::content_root::ContentRoot;
use crate::media::vod::content_path::{play_name, ContentPath};

/// Directory levels below an instance directory that are looked into.
const MAX_DEPTH: usize = 8;
/// Directory entries looked at in one listing (files, directories, anything).
const MAX_ENTRIES: usize = 100_000;
/// Files listed in one answer (a control-socket line must stay reasonable).
const MAX_FILES: usize = 10_000;

/// The playable files found, by app, instance and name.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Listing {
    pub(crate) files: Vec<VodFileInfo>,
    /// Each file's canonical path (what a play opens), in the order of `files`.
    pub(crate) paths: Vec<PathBuf>,
    /// A bound stopped the walk: more files may exist.
    pub(crate) truncated: bool,
}

/// What to list: every application, one, or one instance of one.
pub(crate) fn list(root: &ContentRoot, app: Option<&str>, instance: Option<&str>) -> Listing {
    let mut walk = Walk {
        root,
        listing: Listing::default(),
        entries: 0,
    };
    // Names from the operator are checked as a client's would be (no `..`, no `/`).
    let plain = |s: &str| !s.contains('/') && ContentPath::resolve(s, "_", "x").is_ok();
    if !app.is_none_or(plain) || !instance.is_none_or(plain) {
        return walk.listing;
    }
    let apps = match app {
        Some(a) => vec![a.to_string()],
        None => walk.subdirectories(root.root()),
    };
    for app in apps {
        let app_dir = root.root().join(&app);
        if !is_real_dir(&app_dir) {
            continue;
        }
        let instances = match instance {
            Some(i) => vec![i.to_string()],
            None => walk.subdirectories(&app_dir),
        };
        for instance in instances {
            if is_real_dir(&app_dir.join(&instance)) {
                walk.files(&app, &instance, "", 0);
            }
        }
    }
    let mut both: Vec<_> = walk
        .listing
        .files
        .drain(..)
        .zip(walk.listing.paths.drain(..))
        .collect();
    both.sort_by(|(a, _), (b, _)| {
        (&a.app, &a.instance, &a.name).cmp(&(&b.app, &b.instance, &b.name))
    });
    (walk.listing.files, walk.listing.paths) = both.into_iter().unzip();
    walk.listing
}

fn is_real_dir(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
}

struct Walk<'a> {
    root: &'a ContentRoot,
    listing: Listing,
    entries: usize,
}

impl Walk<'_> {
    /// The UTF-8 names of `dir`'s real subdirectories (not links), within the entry bound.
    fn subdirectories(&mut self, dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let Ok(read) = fs::read_dir(dir) else {
            return out;
        };
        for entry in read.flatten() {
            if !self.count_entry() {
                break;
            }
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if let (true, Ok(name)) = (is_dir, entry.file_name().into_string()) {
                out.push(name);
            }
        }
        out.sort();
        out
    }

    /// One more entry looked at; false (and the listing marked truncated) past the bound.
    fn count_entry(&mut self) -> bool {
        self.entries += 1;
        if self.entries > MAX_ENTRIES {
            self.listing.truncated = true;
            return false;
        }
        true
    }

    /// The files of `<app>/<instance>/<sub>` and, `depth` levels down, its subdirectories.
    fn files(&mut self, app: &str, instance: &str, sub: &str, depth: usize) {
        let dir = self.root.root().join(app).join(instance).join(sub);
        let Ok(read) = fs::read_dir(&dir) else {
            return;
        };
        for entry in read.flatten() {
            if !self.count_entry() || self.listing.files.len() >= MAX_FILES {
                self.listing.truncated = true;
                return;
            }
            let (Ok(name), Ok(kind)) = (entry.file_name().into_string(), entry.file_type()) else {
                continue;
            };
            let file = if sub.is_empty() {
                name
            } else {
                format!("{sub}/{name}")
            };
            if kind.is_dir() {
                if depth + 1 > MAX_DEPTH {
                    self.listing.truncated = true;
                } else {
                    self.files(app, instance, &file, depth + 1);
                }
                continue;
            }
            if !(kind.is_file() || kind.is_symlink()) {
                continue;
            }
            let Some(play) = play_name(app, instance, &file) else {
                continue;
            };
            // What a play of that name would open: a link out of the root is not listed.
            let Some(real) = ContentPath::resolve(app, instance, &play)
                .ok()
                .and_then(|p| self.root.existing_file(&p).ok())
            else {
                continue;
            };
            if let Ok(meta) = fs::metadata(&real) {
                self.listing.files.push(VodFileInfo {
                    app: app.to_string(),
                    instance: instance.to_string(),
                    name: play,
                    size: meta.len(),
                    duration_s: None,
                });
                self.listing.paths.push(real);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    struct Scratch(PathBuf);
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn names(l: &Listing) -> Vec<String> {
        l.files
            .iter()
            .map(|f| format!("{}/{}/{} {}", f.app, f.instance, f.name, f.size))
            .collect()
    }

    #[test]
    fn lists_playable_files_by_their_play_names_and_never_leaves_the_root() {
        let s =
            Scratch(std::env::temp_dir().join(format!("strata-listing-{}", std::process::id())));
        let _ = fs::remove_dir_all(&s.0);
        let root = s.0.join("root");
        let d = root.join("vod/_definst_");
        fs::create_dir_all(d.join("sub")).expect("dirs");
        fs::create_dir_all(root.join("vod/room1")).expect("instance");
        fs::create_dir_all(root.join("live/_definst_")).expect("other app");
        fs::write(d.join("clip.flv"), b"0123").expect("flv");
        fs::write(d.join("sub/a.mp4"), b"01").expect("mp4");
        fs::write(d.join("notes.txt"), b"x").expect("txt");
        fs::write(root.join("vod/room1/r.flv"), b"r").expect("room file");
        fs::write(root.join("live/_definst_/rec.flv"), b"rec").expect("rec");
        // Outside the root: reachable only through links, which must not show.
        fs::create_dir_all(s.0.join("outside")).expect("outside");
        fs::write(s.0.join("outside/secret.flv"), b"secret").expect("secret");
        symlink(s.0.join("outside/secret.flv"), d.join("out.flv")).expect("file link out");
        symlink(s.0.join("outside"), d.join("up")).expect("dir link out");
        symlink(&d, d.join("sub/loop")).expect("dir link in");
        symlink(d.join("clip.flv"), d.join("same.flv")).expect("file link in");
        // Deeper than the bound.
        let deep: PathBuf = (0..=MAX_DEPTH).map(|i| format!("d{i}")).collect();
        fs::create_dir_all(d.join(&deep)).expect("deep");
        fs::write(d.join(&deep).join("deep.flv"), b"d").expect("deep file");
        let r = ContentRoot::new(&root).expect("root");

        let all = list(&r, None, None);
        assert_eq!(
            names(&all),
            [
                "live/_definst_/rec 3",
                "vod/_definst_/clip 4",
                "vod/_definst_/mp4:sub/a.mp4 2",
                "vod/_definst_/same 4",
                "vod/room1/r 1",
            ]
        );
        assert!(all.truncated, "the deep file is past the depth bound");
        // Every listed name plays the listed file, whose canonical path is beside it.
        assert_eq!(all.paths.len(), all.files.len());
        for (f, path) in all.files.iter().zip(&all.paths) {
            let p = ContentPath::resolve(&f.app, &f.instance, &f.name).expect("name");
            assert_eq!(r.existing_file(&p).ok().as_ref(), Some(path), "{}", f.name);
        }

        assert_eq!(
            names(&list(&r, Some("vod"), Some("room1"))),
            ["vod/room1/r 1"]
        );
        assert_eq!(list(&r, Some("vod"), None).files.len(), 4);
        assert_eq!(list(&r, Some("none"), None), Listing::default());
        assert_eq!(list(&r, Some(".."), None), Listing::default());
        assert_eq!(list(&r, Some("vod/_definst_"), None), Listing::default());
    }
}
