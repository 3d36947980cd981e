//! The load tool's own descriptor limit: thousands of sockets, each a descriptor.

/// Raises the soft RLIMIT_NOFILE to the hard one, and says so up front when that is still
/// below `needed` (`what` names what needs them), rather than failing half-way through
/// connecting.
pub(crate) fn raise_nofile(needed: u64, what: &str) -> Result<(), String> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: get/setrlimit on a live struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Ok(());
        }
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        }
    }
    if lim.rlim_cur < needed {
        return Err(format!(
            "{what} need {needed} file descriptors but RLIMIT_NOFILE is {}: raise it (ulimit -n)",
            lim.rlim_cur
        ));
    }
    Ok(())
}
