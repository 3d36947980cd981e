//! sysctl tuning profiles (`tuning/*.conf`, sysctl.d format): checking them against the
//! running system and applying the differences through /proc/sys.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

pub const PROC_SYS: &str = "/proc/sys";
/// Environment variable naming the profiles directory.
pub const TUNING_DIR_ENV: &str = "STRATA_TUNING_DIR";

/// Keys whose value is a floor: a running system with more is fine, and `apply` never
/// lowers it.
const AT_LEAST_KEYS: &[&str] = &[
    "fs.file-max",
    "fs.nr_open",
    "net.core.somaxconn",
    "net.ipv4.tcp_max_syn_backlog",
    "net.core.netdev_max_backlog",
    "net.core.rmem_max",
    "net.core.wmem_max",
    "net.core.optmem_max",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    /// `-key = value`: sysctl.d's "ignore failure to set".
    pub optional: bool,
    pub line: usize,
}

/// Parses sysctl.d text: `key = value` lines, `#` and `;` comments.
pub fn parse_profile(text: &str) -> Result<Vec<Entry>, String> {
    let mut entries = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("line {}: expected `key = value`: {raw:?}", i + 1))?;
        let (key, optional) = match key.trim().strip_prefix('-') {
            Some(k) => (k.trim(), true),
            None => (key.trim(), false),
        };
        if key.is_empty()
            || key.contains("..")
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c))
        {
            return Err(format!("line {}: bad key {key:?}", i + 1));
        }
        entries.push(Entry {
            key: key.replace('/', "."),
            value: normalize(value),
            optional,
            line: i + 1,
        });
    }
    Ok(entries)
}

/// Whitespace-insensitive form of a value (/proc/sys prints tabs between numbers).
pub fn normalize(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `net.ipv4.tcp_rmem` -> `<root>/net/ipv4/tcp_rmem`.
pub fn key_path(root: &Path, key: &str) -> PathBuf {
    root.join(key.replace('.', "/"))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Ok,
    /// The system has more than the profile's floor.
    OkHigher,
    Differs,
    Unavailable(String),
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Ok => f.write_str("ok"),
            Status::OkHigher => f.write_str("ok (higher)"),
            Status::Differs => f.write_str("differs"),
            Status::Unavailable(why) => write!(f, "unavailable: {why}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub key: String,
    pub wanted: String,
    pub current: Option<String>,
    pub status: Status,
}

fn read_value(root: &Path, key: &str) -> io::Result<String> {
    std::fs::read_to_string(key_path(root, key)).map(|v| normalize(&v))
}

/// Compares one entry with the system under `root` (normally /proc/sys).
pub fn check_entry(root: &Path, e: &Entry) -> Check {
    let mut check = Check {
        key: e.key.clone(),
        wanted: e.value.clone(),
        current: None,
        status: Status::Differs,
    };
    match read_value(root, &e.key) {
        Ok(current) => check.current = Some(current),
        Err(err) => {
            check.status = Status::Unavailable(match err.kind() {
                io::ErrorKind::NotFound => {
                    if e.key.starts_with("net.") {
                        "no such key on this kernel or in this network namespace".into()
                    } else {
                        "no such key on this kernel".into()
                    }
                }
                _ => format!("cannot read it: {err}"),
            });
            return check;
        }
    }
    let current = check.current.as_deref().unwrap_or_default();
    check.status = if current == e.value {
        Status::Ok
    } else if AT_LEAST_KEYS.contains(&e.key.as_str())
        && matches!((current.parse::<u64>(), e.value.parse::<u64>()), (Ok(c), Ok(w)) if c > w)
    {
        Status::OkHigher
    } else if let Some(why) = unavailable_value(root, e) {
        Status::Unavailable(why)
    } else {
        Status::Differs
    };
    check
}

/// Values that need something the kernel does not have (a congestion control module).
fn unavailable_value(root: &Path, e: &Entry) -> Option<String> {
    if e.key == "net.ipv4.tcp_congestion_control" {
        let available = read_value(root, "net.ipv4.tcp_available_congestion_control").ok()?;
        if !available.split(' ').any(|a| a == e.value) {
            return Some(format!(
                "{} is not in tcp_available_congestion_control ({available}); load it: modprobe tcp_{}",
                e.value, e.value
            ));
        }
    }
    None
}

pub fn check(root: &Path, entries: &[Entry]) -> Vec<Check> {
    entries.iter().map(|e| check_entry(root, e)).collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Changed { old: String, new: String },
    AlreadyOk,
    Skipped(String),
    Failed(String),
}

/// Writes every differing key; returns what happened to each.
pub fn apply(root: &Path, entries: &[Entry]) -> Vec<(Check, Outcome)> {
    entries
        .iter()
        .map(|e| {
            let c = check_entry(root, e);
            let outcome = match &c.status {
                Status::Ok | Status::OkHigher => Outcome::AlreadyOk,
                Status::Unavailable(why) => Outcome::Skipped(why.clone()),
                Status::Differs => {
                    let path = key_path(root, &e.key);
                    match std::fs::write(&path, format!("{}\n", e.value)) {
                        Ok(()) => match read_value(root, &e.key) {
                            Ok(now) if now == e.value => Outcome::Changed {
                                old: c.current.clone().unwrap_or_default(),
                                new: now,
                            },
                            Ok(now) => Outcome::Failed(format!(
                                "the kernel kept {now:?} after writing {:?}",
                                e.value
                            )),
                            Err(err) => Outcome::Failed(format!("cannot read it back: {err}")),
                        },
                        Err(err) => Outcome::Failed(match err.kind() {
                            io::ErrorKind::PermissionDenied => format!(
                                "permission denied writing {} (tune apply needs root)",
                                path.display()
                            ),
                            _ => format!("writing {}: {err}", path.display()),
                        }),
                    }
                }
            };
            (c, outcome)
        })
        .collect()
}

/// Where profiles are looked up, in order.
pub fn profile_dirs(flag: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = flag {
        dirs.push(d.to_path_buf());
    }
    if let Some(d) = std::env::var_os(TUNING_DIR_ENV) {
        dirs.push(PathBuf::from(d));
    }
    if let Ok(exe) = std::env::current_exe() {
        // target/debug/stratactl -> <workspace>/tuning; /usr/bin/stratactl -> /usr/tuning ...
        for dir in exe.ancestors().skip(1).take(4) {
            dirs.push(dir.join("tuning"));
        }
    }
    dirs.push(PathBuf::from("/usr/share/strata/tuning"));
    dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../tuning"));
    dirs
}

/// A profile by path (anything with a `/` or an existing file) or by name in `dirs`.
pub fn find_profile(name: &str, dirs: &[PathBuf]) -> Result<PathBuf, String> {
    let as_path = Path::new(name);
    if name.contains('/') || as_path.is_file() {
        return if as_path.is_file() {
            Ok(as_path.to_path_buf())
        } else {
            Err(format!("no profile file {name}"))
        };
    }
    let file = if name.ends_with(".conf") {
        name.to_string()
    } else {
        format!("{name}.conf")
    };
    for dir in dirs {
        let candidate = dir.join(&file);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    let mut known: Vec<String> = dirs
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".conf")
                .map(String::from)
        })
        .collect();
    known.sort();
    known.dedup();
    Err(format!(
        "no profile {name:?} (known: {}; or give a path; profiles are looked up in --profiles, ${TUNING_DIR_ENV}, tuning/ beside the binary)",
        if known.is_empty() { "none found".into() } else { known.join(", ") }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TempRoot(PathBuf);

    impl TempRoot {
        fn new(label: &str) -> TempRoot {
            let dir = std::env::temp_dir().join(format!(
                "strata-tune-{label}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("temp dir");
            TempRoot(dir)
        }

        fn set(&self, key: &str, value: &str) {
            let p = key_path(&self.0, key);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, value).expect("write");
        }
    }

    impl Drop for TempRoot {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn profiles_parse_with_comments_and_slashes() {
        let e =
            parse_profile("# c\n; c\nnet.core.somaxconn = 1024\n-net/ipv4/tcp_rmem=4096\t1  2\n")
                .expect("parse");
        assert_eq!(e.len(), 2);
        assert_eq!(e[1].key, "net.ipv4.tcp_rmem");
        assert_eq!(e[1].value, "4096 1 2");
        assert!(e[1].optional);
        assert!(parse_profile("no equals sign").is_err());
        assert!(parse_profile("../etc = 1").is_err());
    }

    #[test]
    fn every_shipped_profile_parses_and_has_a_reason_per_key() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tuning");
        let mut seen = 0;
        for f in std::fs::read_dir(&dir).expect("tuning/") {
            let path = f.expect("entry").path();
            if path.extension().and_then(|e| e.to_str()) != Some("conf") {
                continue;
            }
            seen += 1;
            let text = std::fs::read_to_string(&path).expect("read");
            let entries = parse_profile(&text).expect("parse");
            assert!(!entries.is_empty());
            let lines: Vec<&str> = text.lines().collect();
            for e in entries {
                let above = lines[e.line - 2];
                assert!(
                    above.starts_with("# "),
                    "{}: {} has no reason line",
                    path.display(),
                    e.key
                );
            }
        }
        assert!(seen >= 2);
    }

    #[test]
    fn check_reports_ok_differs_higher_and_unavailable() {
        let root = TempRoot::new("check");
        root.set("net.core.somaxconn", "4096\n");
        root.set("net.ipv4.tcp_rmem", "4096\t131072\t6291456\n");
        root.set("net.ipv4.tcp_congestion_control", "cubic\n");
        root.set("net.ipv4.tcp_available_congestion_control", "reno cubic\n");
        let entries = parse_profile(
            "net.core.somaxconn = 1024\nnet.ipv4.tcp_rmem = 4096 131072 6291456\n\
             net.ipv4.tcp_congestion_control = bbr\nnet.ipv4.nope = 1\nfs.file-max = 5\n",
        )
        .expect("parse");
        let c = check(&root.0, &entries);
        assert_eq!(c[0].status, Status::OkHigher);
        assert_eq!(c[1].status, Status::Ok);
        assert!(matches!(&c[2].status, Status::Unavailable(w) if w.contains("modprobe tcp_bbr")));
        assert!(matches!(&c[3].status, Status::Unavailable(w) if w.contains("network namespace")));
        assert!(matches!(c[4].status, Status::Unavailable(_)));
    }

    #[test]
    fn apply_writes_only_the_differences_and_reports_old_and_new() {
        let root = TempRoot::new("apply");
        root.set("net.core.somaxconn", "128\n");
        root.set("net.ipv4.tcp_notsent_lowat", "131072\n");
        let entries =
            parse_profile("net.core.somaxconn = 1024\nnet.ipv4.tcp_notsent_lowat = 131072\n")
                .expect("parse");
        let out = apply(&root.0, &entries);
        assert_eq!(
            out[0].1,
            Outcome::Changed {
                old: "128".into(),
                new: "1024".into()
            }
        );
        assert_eq!(out[1].1, Outcome::AlreadyOk);
        assert_eq!(check(&root.0, &entries)[0].status, Status::Ok);
    }

    #[test]
    fn profiles_are_found_by_name_or_path() {
        let dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("../tuning")];
        let p = find_profile("edge-rtmp-10g", &dirs).expect("by name");
        assert!(p.ends_with("edge-rtmp-10g.conf"));
        assert_eq!(
            find_profile(&p.display().to_string(), &[]).expect("by path"),
            p
        );
        let err = find_profile("nope", &dirs).expect_err("unknown");
        assert!(err.contains("edge-rtmfp-udp"), "{err}");
    }
}
