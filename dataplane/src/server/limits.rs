//! Process limits the server needs before it accepts anyone.

use tracing::{info, warn};

/// Where the kernel's cap on every listen backlog is.
const SOMAXCONN: &str = "/proc/sys/net/core/somaxconn";

/// listen(2) silently caps the backlog at net.core.somaxconn: say so at start, so that an
/// operator tuning for join storms knows which knob is the real limit (tuning/README.md).
pub(super) fn note_backlog(backlog: u32) {
    let Some(cap) = std::fs::read_to_string(SOMAXCONN)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
    else {
        return;
    };
    if cap < backlog {
        info!(
            listen_backlog = backlog,
            somaxconn = cap,
            "the accept queue is capped at net.core.somaxconn; raise it for join storms (sysctl net.core.somaxconn, tuning/README.md)"
        );
    }
}

/// Every connection is a descriptor: raise the soft limit to the hard one, and say so when
/// even that is below what the configuration means to serve.
pub(super) fn raise_nofile(max_connections: usize) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: get/setrlimit on a live struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return;
        }
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        }
    }
    // Listeners, rings, eventfds and the control socket need a few descriptors of their own.
    let needed = max_connections as u64 + 64;
    if lim.rlim_cur < needed {
        warn!(
            limit = lim.rlim_cur,
            max_connections,
            "RLIMIT_NOFILE is below server.max_connections: raise the hard limit (ulimit -Hn, LimitNOFILE= in systemd)"
        );
    } else {
        info!(limit = lim.rlim_cur, "file descriptor limit");
    }
}
