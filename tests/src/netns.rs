//! A network namespace of the test's own, for multicast: `ip netns add`, `lo` up with
//! multicast on and a route for 224.0.0.0/4 through it, so that groups never leave the
//! namespace. The test thread enters it (setns(2) on this thread only, as `ip netns exec`
//! does for a command): every process the test starts from this thread (stratad, ffmpeg,
//! ffprobe) and every socket it opens are inside. Deleted on Drop, also when the test
//! panics. Needs root (CI runs as root); without it the test fails saying so.

use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

pub struct NetNs {
    name: String,
    /// The namespace the thread was in, entered again on Drop.
    home: std::fs::File,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap_or_else(|e| {
        panic!("multicast e2e tests need iproute2's `ip` (and root): cannot run ip {args:?}: {e}")
    });
    assert!(
        out.status.success(),
        "multicast e2e tests need root and network namespaces; `ip {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl NetNs {
    /// A fresh namespace, entered by the calling thread.
    pub fn enter() -> NetNs {
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        assert_eq!(
            euid, 0,
            "multicast e2e tests make network namespaces and must run as root (CI does)"
        );
        let name = format!(
            "strata-mc-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let home = std::fs::File::open("/proc/thread-self/ns/net").expect("open own netns");
        ip(&["netns", "add", &name]);
        let ns = NetNs { name, home };
        ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        ip(&["-n", &ns.name, "link", "set", "lo", "multicast", "on"]);
        ip(&["-n", &ns.name, "route", "add", "224.0.0.0/4", "dev", "lo"]);
        let f = std::fs::File::open(format!("/run/netns/{}", ns.name)).expect("open the netns");
        // SAFETY: setns on a namespace descriptor we opened; affects this thread only.
        let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        ns
    }

    /// IPv6 groups in the namespace. Not on `lo`: the kernel loops IPv6 multicast back
    /// only from a device that is not a loopback (a send through `lo` with a route for
    /// ff00::/8 goes out and is never received). So a veth pair of the namespace's own:
    /// `mc6` up with an address (its `multicast ff00::/8` route appears with it), its
    /// peer up with IPv6 disabled (else its own multicast route, with no usable source
    /// address, may be chosen: EADDRNOTAVAIL); a sender's packets to a group come back to
    /// the namespace's members of it by multicast loopback. Nothing leaves the namespace.
    pub fn enable_ipv6_multicast(&self) {
        let n = self.name.as_str();
        ip(&[
            "-n", n, "link", "add", "mc6", "type", "veth", "peer", "name", "mc6p",
        ]);
        let out = Command::new("ip")
            .args(["netns", "exec", n, "sysctl", "-qw"])
            .arg("net.ipv6.conf.mc6p.disable_ipv6=1")
            .output()
            .expect("run sysctl in the namespace");
        assert!(out.status.success(), "sysctl: {out:?}");
        ip(&["-n", n, "link", "set", "mc6", "up"]);
        ip(&["-n", n, "link", "set", "mc6p", "up"]);
        ip(&[
            "-n",
            n,
            "-6",
            "addr",
            "add",
            "fd00::1/64",
            "dev",
            "mc6",
            "nodad",
        ]);
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // SAFETY: back to the namespace this thread came from.
        unsafe { libc::setns(self.home.as_raw_fd(), libc::CLONE_NEWNET) };
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}
