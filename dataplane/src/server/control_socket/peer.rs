//! Who may use the control socket: root, stratad's own user, or the socket's group —
//! checked with SO_PEERCRED on every connection, on top of the socket file's mode 0660.

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Credentials {
    pub(super) pid: i32,
    pub(super) uid: u32,
    pub(super) gid: u32,
}

pub(super) fn credentials(stream: &UnixStream) -> Option<Credentials> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into a live ucred.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            std::ptr::addr_of_mut!(cred).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(Credentials {
        pid: cred.pid,
        uid: cred.uid,
        gid: cred.gid,
    })
}

/// The peer's primary group is all SO_PEERCRED tells; members who reach the socket through
/// a supplementary group are let in by the file mode but refused here, which errs on the
/// safe side.
pub(super) fn allowed(peer: Credentials, socket_gid: Option<u32>) -> bool {
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    peer.uid == 0 || peer.uid == me || socket_gid == Some(peer.gid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_user_is_allowed() {
        let (a, _b) = UnixStream::pair().expect("pair");
        let cred = credentials(&a).expect("credentials");
        assert!(allowed(cred, None));
        assert_eq!(cred.pid, std::process::id() as i32);
    }

    #[test]
    fn strangers_are_refused() {
        let stranger = Credentials {
            pid: 1,
            uid: 54321,
            gid: 54321,
        };
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } != 54321 {
            assert!(!allowed(stranger, Some(100)));
            assert!(allowed(stranger, Some(54321)));
        }
    }
}
