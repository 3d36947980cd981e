//! Process limits the server needs before it accepts anyone.

use tracing::{info, warn};

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
