//! MSG_ZEROCOPY for the UDP floor's sockets: turning it on (`SO_ZEROCOPY`) and reading the
//! completion notifications from the socket's error queue. A zero-copy send pins the
//! sender's pages instead of copying them; the kernel tells when it let go of them (a range
//! of send numbers per notification) and whether it had to copy them after all
//! (`SO_EE_CODE_ZEROCOPY_COPIED`: e.g. when the packet is delivered to a local socket, or
//! looped back, as multicast is to the sending host). The floor counts both, so a run says
//! whether its sends were zero-copy at all.

use std::io;
use std::os::fd::RawFd;

/// `SO_ZEROCOPY` (asm-generic/socket.h; the same on x86 and arm).
const SO_ZEROCOPY: libc::c_int = 60;
/// `SO_EE_ORIGIN_ZEROCOPY` (linux/errqueue.h).
const ORIGIN_ZEROCOPY: u8 = 5;
/// `SO_EE_CODE_ZEROCOPY_COPIED`: the kernel copied the range's data anyway.
const CODE_COPIED: u8 = 1;

/// Lets `fd` send with `MSG_ZEROCOPY` (without it the flag is ignored).
pub fn enable(fd: RawFd) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: an int option on a socket the caller owns.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            SO_ZEROCOPY,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Completions read so far: sends the kernel let go of, and how many of them it copied.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Completions {
    pub done: u64,
    pub copied: u64,
}

impl Completions {
    /// Counts one notification: sends `lo..=hi`. The kernel merges consecutive ranges into
    /// one notification without looking at their copied flags, so `copied` is exact only
    /// when a range's sends all went the same way (they do when every send takes the same
    /// route, as the floor's do).
    /// Counts from elsewhere (io_uring's notifications).
    pub fn add_counts(&mut self, done: u64, copied: u64) {
        self.done += done;
        self.copied += copied;
    }

    fn add(&mut self, lo: u32, hi: u32, copied: bool) {
        // Send numbers are a u32 counter per socket that wraps.
        let n = u64::from(hi.wrapping_sub(lo)) + 1;
        self.done += n;
        if copied {
            self.copied += n;
        }
    }
}

/// The range and copied flag of one error-queue message's control data, if it is a
/// zero-copy notification (other errors, e.g. ICMP, are not counted).
fn parse(control: &[u8], controllen: usize) -> Option<(u32, u32, bool)> {
    // SAFETY: a msghdr that only carries the control buffer, for the CMSG_ macros, which
    // read within msg_controllen bytes of it.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_control = control.as_ptr() as *mut libc::c_void;
        msg.msg_controllen = controllen.min(control.len()) as _;
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            let is_err = ((*c).cmsg_level == libc::SOL_IP && (*c).cmsg_type == libc::IP_RECVERR)
                || ((*c).cmsg_level == libc::SOL_IPV6 && (*c).cmsg_type == libc::IPV6_RECVERR);
            if is_err
                && (*c).cmsg_len as usize
                    >= libc::CMSG_LEN(std::mem::size_of::<libc::sock_extended_err>() as u32)
                        as usize
            {
                let ee: libc::sock_extended_err =
                    std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                if ee.ee_errno == 0 && ee.ee_origin == ORIGIN_ZEROCOPY {
                    return Some((ee.ee_info, ee.ee_data, ee.ee_code & CODE_COPIED != 0));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    None
}

/// Reads every notification waiting on `fd`'s error queue into `into`, without blocking.
/// They must be read: each one is charged to the socket's option memory, and once that is
/// full the next zero-copy send fails with ENOBUFS.
pub fn drain(fd: RawFd, into: &mut Completions) -> io::Result<()> {
    // Room for a cmsghdr and a sock_extended_err with its offender address.
    let mut control = [0u64; 16];
    loop {
        // SAFETY: msghdr is plain old data; it points at `control` for the call only.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        // SAFETY: every pointer in msg is valid for the call.
        let rc = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock => Ok(()),
                io::ErrorKind::Interrupted => continue,
                _ => Err(e),
            };
        }
        // SAFETY: control is a plain byte buffer of that size.
        let bytes = unsafe {
            std::slice::from_raw_parts(
                control.as_ptr().cast::<u8>(),
                std::mem::size_of_val(&control),
            )
        };
        if let Some((lo, hi, copied)) = parse(bytes, msg.msg_controllen as usize) {
            into.add(lo, hi, copied);
        }
    }
}

/// A UDP socket bound to an ephemeral port of 127.0.0.1, and its address: what the floor's
/// tests send to.
#[cfg(test)]
pub(crate) fn local_receiver() -> (socket2::Socket, socket2::SockAddr) {
    use socket2::{Domain, Protocol, Socket, Type};
    let rx = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).expect("local socket");
    let any: std::net::SocketAddr = ([127, 0, 0, 1], 0).into();
    rx.bind(&any.into()).expect("local socket");
    let to = rx.local_addr().expect("local socket");
    (rx, to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use socket2::{Domain, Protocol, Socket, Type};
    use std::os::fd::AsRawFd;

    /// A control buffer as the kernel writes it: one IP_RECVERR cmsg.
    fn notification(lo: u32, hi: u32, code: u8) -> ([u64; 16], usize) {
        let mut control = [0u64; 16];
        // SAFETY: as in `parse`; the buffer holds the cmsghdr and its data.
        unsafe {
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = std::mem::size_of_val(&control) as _;
            let c = libc::CMSG_FIRSTHDR(&msg);
            let size = std::mem::size_of::<libc::sock_extended_err>() as u32;
            (*c).cmsg_level = libc::SOL_IP;
            (*c).cmsg_type = libc::IP_RECVERR;
            (*c).cmsg_len = libc::CMSG_LEN(size) as _;
            let mut ee: libc::sock_extended_err = std::mem::zeroed();
            ee.ee_origin = ORIGIN_ZEROCOPY;
            ee.ee_code = code;
            ee.ee_info = lo;
            ee.ee_data = hi;
            std::ptr::write_unaligned(libc::CMSG_DATA(c).cast(), ee);
            (control, libc::CMSG_SPACE(size) as usize)
        }
    }

    fn bytes(control: &[u64; 16]) -> &[u8] {
        // SAFETY: a plain buffer viewed as bytes.
        unsafe { std::slice::from_raw_parts(control.as_ptr().cast(), 128) }
    }

    #[test]
    fn parses_ranges_and_the_copied_flag() {
        let (c, len) = notification(3, 9, CODE_COPIED);
        assert_eq!(parse(bytes(&c), len), Some((3, 9, true)));
        let (c, len) = notification(0, 0, 0);
        assert_eq!(parse(bytes(&c), len), Some((0, 0, false)));
        // Nothing there: no notification.
        assert_eq!(parse(bytes(&c), 0), None);
    }

    #[test]
    fn counts_ranges_across_the_wrap() {
        let mut done = Completions::default();
        done.add(0, 9, false);
        done.add(u32::MAX - 1, 1, true);
        assert_eq!(
            done,
            Completions {
                done: 14,
                copied: 4
            }
        );
    }

    /// A real zero-copy send to a socket on this host: the kernel must copy it into the
    /// receiver's queue, and says so. Waits for the notification with poll (no timing
    /// asserted; the timeout only bounds a broken kernel).
    #[test]
    fn local_delivery_is_reported_copied() {
        // Kept open to the end: a local receiver makes the kernel copy.
        let (_rx, to) = local_receiver();
        let tx = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).expect("local socket");
        if enable(tx.as_raw_fd()).is_err() {
            return; // a kernel without MSG_ZEROCOPY for UDP (before 5.0): nothing to test
        }
        let payload = vec![7u8; 4000];
        let iov = libc::iovec {
            iov_base: payload.as_ptr() as *mut libc::c_void,
            iov_len: payload.len(),
        };
        // SAFETY: msghdr is plain old data; its pointers live through the call.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = to.as_ptr() as *mut libc::c_void;
        msg.msg_namelen = to.len();
        msg.msg_iov = &iov as *const libc::iovec as *mut libc::iovec;
        msg.msg_iovlen = 1;
        // SAFETY: as above.
        let rc = unsafe { libc::sendmsg(tx.as_raw_fd(), &msg, libc::MSG_ZEROCOPY) };
        assert_eq!(rc, payload.len() as isize);
        let mut done = Completions::default();
        for _ in 0..50 {
            drain(tx.as_raw_fd(), &mut done).expect("reading the error queue");
            if done.done > 0 {
                break;
            }
            let mut pfd = libc::pollfd {
                fd: tx.as_raw_fd(),
                events: 0, // POLLERR is always reported
                revents: 0,
            };
            // SAFETY: one pollfd.
            unsafe { libc::poll(&mut pfd, 1, 100) };
        }
        assert_eq!(done, Completions { done: 1, copied: 1 });
    }
}
