//! `stratactl tune check|apply` for real, inside network namespaces this test creates:
//! net.* sysctls are per network namespace, so the host's values are never touched (the test
//! checks that too). Skipped, saying why, where `unshare -n` is not permitted.

mod common;

use common::Scratch;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_stratactl");

/// Only keys that exist in every network namespace; the values differ from the defaults.
const PROFILE: &str = "\
# Accept backlog (a reason line, as in the shipped profiles).
net.core.somaxconn = 8191
# Unsent bytes held per socket.
net.ipv4.tcp_notsent_lowat = 16384
# Ephemeral ports.
net.ipv4.ip_local_port_range = 20000 60000
# reno is always built in.
net.ipv4.tcp_congestion_control = reno
";

const KEYS: [&str; 4] = [
    "net/core/somaxconn",
    "net/ipv4/tcp_notsent_lowat",
    "net/ipv4/ip_local_port_range",
    "net/ipv4/tcp_congestion_control",
];

fn host_values() -> Vec<String> {
    KEYS.iter()
        .map(|k| std::fs::read_to_string(Path::new("/proc/sys").join(k)).unwrap_or_default())
        .collect()
}

fn unshare_permitted() -> bool {
    Command::new("unshare")
        .args(["-n", "--", "true"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs a shell script in a new network namespace (bounded: stratactl and cat only).
fn in_netns(script: &str, profile: &Path) -> Output {
    Command::new("timeout")
        .args(["60", "unshare", "-n", "--", "sh", "-c", script, "sh"])
        .arg(BIN)
        .arg(profile)
        .stdin(Stdio::null())
        .output()
        .expect("run unshare")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn tune_apply_and_check_inside_a_network_namespace() {
    if !unshare_permitted() {
        eprintln!("skipped: `unshare -n` is not permitted here (needs root or CAP_SYS_ADMIN)");
        return;
    }
    let dir = Scratch::new("tune-netns");
    let profile = dir.join("netns-only.conf");
    std::fs::write(&profile, PROFILE).expect("write profile");
    let before = host_values();

    let out = in_netns(
        r#"set -e
        echo "== check before"; "$1" tune check "$2"
        echo "== apply"; "$1" tune apply "$2"
        echo "== check after"; "$1" tune check "$2"
        echo "== values"
        cat /proc/sys/net/core/somaxconn /proc/sys/net/ipv4/tcp_notsent_lowat \
            /proc/sys/net/ipv4/ip_local_port_range /proc/sys/net/ipv4/tcp_congestion_control"#,
        &profile,
    );
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        text(&out.stderr)
    );
    let section = |name: &str| -> String {
        let start = stdout.find(&format!("== {name}\n")).expect(name);
        let rest = &stdout[start + name.len() + 4..];
        rest[..rest.find("\n== ").unwrap_or(rest.len())].to_string()
    };

    let before_check = section("check before");
    assert!(
        before_check.contains("KEY") && before_check.contains("WANTED"),
        "{before_check}"
    );
    let somaxconn = before_check
        .lines()
        .find(|l| l.starts_with("net.core.somaxconn"))
        .expect("somaxconn row");
    assert!(
        somaxconn.contains("8191") && somaxconn.ends_with("differs"),
        "{somaxconn}"
    );

    let apply = section("apply");
    // Old values are the new namespace's defaults, whatever this kernel's are.
    for wanted in [
        "net.core.somaxconn: ",
        "-> 8191",
        "net.ipv4.ip_local_port_range: ",
        "-> 20000 60000",
    ] {
        assert!(apply.contains(wanted), "{wanted:?} in {apply}");
    }
    assert!(apply.contains("net.ipv4.tcp_notsent_lowat: "), "{apply}");
    assert!(
        apply.contains(" failed") && apply.contains("0 failed"),
        "{apply}"
    );

    let after = section("check after");
    for line in after.lines().filter(|l| l.starts_with("net.")) {
        assert!(line.ends_with(" ok"), "not ok after apply: {line}");
    }
    let values: Vec<String> = section("values")
        .lines()
        .map(control::tune::normalize)
        .collect();
    assert_eq!(values, ["8191", "16384", "20000 60000", "reno"]);

    assert_eq!(host_values(), before, "the host's sysctls are untouched");
}

#[test]
fn tune_check_needs_no_root_and_apply_without_root_fails_clearly() {
    if !unshare_permitted() || !Path::new("/usr/bin/setpriv").exists() {
        eprintln!("skipped: needs `unshare -n` and setpriv to drop to an unprivileged user");
        return;
    }
    let dir = Scratch::new("tune-noroot");
    // The unprivileged user must be able to read the profile.
    let profile = dir.join("netns-only.conf");
    std::fs::write(&profile, PROFILE).expect("write profile");
    let before = host_values();
    let out = in_netns(
        r#"echo "== check"; setpriv --reuid=65534 --regid=65534 --clear-groups "$1" tune check "$2"; echo "rc=$?"
        echo "== apply"; setpriv --reuid=65534 --regid=65534 --clear-groups "$1" tune apply "$2" 2>&1; echo "rc=$?"
        echo "== values"; cat /proc/sys/net/core/somaxconn"#,
        &profile,
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("net.core.somaxconn") && stdout.contains("rc=0"),
        "{stdout}"
    );
    assert!(stdout.contains("tune apply needs root"), "{stdout}");
    assert!(stdout.contains("rc=1"), "{stdout}");
    assert!(
        !stdout.trim_end().ends_with("8191"),
        "nothing changed: {stdout}"
    );
    assert_eq!(host_values(), before);
}
