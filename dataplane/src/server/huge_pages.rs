//! Transparent huge pages for stratad's memory, off by default (`server.transparent_huge_pages`).
//!
//! The allocator (mimalloc) asks for huge pages on its arenas (MADV_HUGEPAGE), so with the
//! kernel's usual `madvise` mode the first touch of any byte of a fresh 2 MiB range faults in
//! and zeroes the whole range at once, in the worker's loop. In a join storm that is where
//! the time went: 17 % of the first seconds in `clear_page_erms` under
//! `do_huge_pmd_anonymous_page`, with every joiner of the turn waiting behind it, and
//! memory per viewer rounded up to huge pages. Measured (BENCHMARKS.md, issue 15, session
//! 22): 10,000 players joining at once on 2 workers, play → first video p99 141–291 ms
//! without (median 202, 4 runs), 385–528 ms with (median 480, 10 runs), 10–12 KiB per
//! viewer against 13–15, the same Gbit/s per core once steady. PR_SET_THP_DISABLE turns huge pages off for the whole process (every thread,
//! every mapping, the allocator's and the kernel's buffer rings alike).

use tracing::{info, warn};

/// Applies `server.transparent_huge_pages` to the process; called once at start, before the
/// workers allocate.
pub(super) fn apply(enabled: bool) {
    if enabled {
        info!("transparent huge pages left to the kernel's setting (server.transparent_huge_pages = true)");
        return;
    }
    if let Err(error) = disable() {
        warn!(
            %error,
            "could not turn transparent huge pages off (server.transparent_huge_pages = false)"
        );
    }
}

fn disable() -> std::io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    match unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disable_turns_them_off_for_the_process() {
        // The flag is the process's: set it in a child, so the tests' process is untouched.
        // SAFETY: the child calls only prctl and _exit, both async-signal-safe.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork");
        if pid == 0 {
            let ok = unsafe {
                let before = libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0);
                let set = disable().is_ok();
                let after = libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0);
                before == 0 && set && after == 1
            };
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "status {status}"
        );
    }
}
