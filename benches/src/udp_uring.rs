//! The UDP floor's sends through io_uring, as stratad submits them: every output's send of an
//! interval pushed on one ring and submitted with one `io_uring_enter`. Three kinds, so that
//! zero-copy is compared with copying on the same path: `IORING_OP_SEND` (the kernel copies),
//! `IORING_OP_SEND_ZC` (pins the buffer's pages per send) and `IORING_OP_SEND_ZC` from a
//! registered buffer (`IORING_RECVSEND_FIXED_BUF`: pinned once, at registration). The
//! datagrams are cut by UDP GSO set on each socket (`UDP_SEGMENT` as a socket option:
//! IORING_OP_SEND carries no control message), so they are the plain floor's.

use std::io;
use std::os::fd::AsRawFd;

use io_uring::{cqueue, opcode, types, IoUring};
use socket2::{SockAddr, Socket};

/// How the io_uring sender sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UringSend {
    Copy,
    ZeroCopy,
    /// Zero-copy from the payload registered as fixed buffer 0.
    ZeroCopyFixed,
}

/// IORING_SEND_ZC_REPORT_USAGE (in a zero-copy send's ioprio; io-uring does not export it):
/// the notification then says whether the kernel copied after all.
const REPORT_USAGE: u16 = 1 << 3;
/// IORING_NOTIF_USAGE_ZC_COPIED, in a notification's result with REPORT_USAGE.
const USAGE_COPIED: i32 = 1 << 31;

/// Counts of one run (the caller takes differences over its steady window).
#[derive(Debug, Default, Clone, Copy)]
pub struct UringCounts {
    pub sends: u64,
    pub bytes: u64,
    pub errors: u64,
    /// Zero-copy notifications, and those that said the kernel copied.
    pub notified: u64,
    pub copied: u64,
}

pub struct UringSender {
    ring: IoUring,
    kind: UringSend,
    /// Zero-copy sends whose notification has not come yet (they come after the send's
    /// completion, when the kernel lets go of the pages; the payload outlives the run).
    pending_notifs: u64,
}

impl UringSender {
    /// A ring for `outputs` sends an interval; `segment` is each socket's GSO size.
    /// `payload` must stay alive and unmoved for as long as the sender (it is registered
    /// with the kernel in `ZeroCopyFixed`).
    pub fn new(
        kind: UringSend,
        outputs: usize,
        sockets: &[(Socket, SockAddr)],
        segment: u16,
        payload: &[u8],
    ) -> Result<Self, String> {
        let entries = (outputs.max(1) as u32).next_power_of_two().max(8);
        // Room for two completions per send (result and notification) in the queue.
        let ring = IoUring::builder()
            .setup_cqsize(entries * 4)
            .build(entries)
            .map_err(|e| format!("io_uring: {e}"))?;
        for (socket, _) in sockets {
            set_udp_segment(socket, segment).map_err(|e| format!("UDP_SEGMENT: {e}"))?;
        }
        if kind == UringSend::ZeroCopyFixed {
            let iov = libc::iovec {
                iov_base: payload.as_ptr() as *mut libc::c_void,
                iov_len: payload.len(),
            };
            // SAFETY: the caller keeps `payload` alive and in place for the sender's life;
            // the ring (and so the registration) dies with the sender.
            unsafe { ring.submitter().register_buffers(&[iov]) }
                .map_err(|e| format!("registering the payload: {e}"))?;
        }
        Ok(UringSender {
            ring,
            kind,
            pending_notifs: 0,
        })
    }

    /// One interval: a send of `payload` to every socket, submitted together, and every
    /// completion reaped (notifications of earlier sends too, without waiting for them).
    pub fn send_all(
        &mut self,
        sockets: &[(Socket, SockAddr)],
        payload: &[u8],
        counts: &mut UringCounts,
    ) -> Result<(), String> {
        let mut waiting = 0usize;
        for (socket, to) in sockets {
            let fd = types::Fd(socket.as_raw_fd());
            let len = payload.len() as u32;
            let entry = match self.kind {
                UringSend::Copy => opcode::Send::new(fd, payload.as_ptr(), len)
                    .dest_addr(to.as_ptr())
                    .dest_addr_len(to.len())
                    .build(),
                UringSend::ZeroCopy | UringSend::ZeroCopyFixed => {
                    let e = opcode::SendZc::new(fd, payload.as_ptr(), len)
                        .dest_addr(to.as_ptr())
                        .dest_addr_len(to.len())
                        .zc_flags(REPORT_USAGE);
                    if self.kind == UringSend::ZeroCopyFixed {
                        e.buf_index(Some(0)).build()
                    } else {
                        e.build()
                    }
                }
            };
            // SAFETY: the payload and the addresses outlive the send (the caller's, for
            // the run); each is reaped below before `sockets` can be dropped.
            while unsafe { self.ring.submission().push(&entry) }.is_err() {
                self.ring
                    .submit()
                    .map_err(|e| format!("io_uring_enter: {e}"))?;
            }
            waiting += 1;
        }
        while waiting > 0 {
            self.ring
                .submit_and_wait(1)
                .map_err(|e| format!("io_uring_enter: {e}"))?;
            for cqe in self.ring.completion() {
                if cqueue::notif(cqe.flags()) {
                    self.pending_notifs = self.pending_notifs.saturating_sub(1);
                    counts.notified += 1;
                    if cqe.result() & USAGE_COPIED != 0 {
                        counts.copied += 1;
                    }
                    continue;
                }
                waiting = waiting.saturating_sub(1);
                if cqueue::more(cqe.flags()) {
                    self.pending_notifs += 1;
                }
                match u64::try_from(cqe.result()) {
                    Ok(n) => {
                        counts.sends += 1;
                        counts.bytes += n;
                    }
                    Err(_) => counts.errors += 1,
                }
            }
        }
        Ok(())
    }
}

fn set_udp_segment(socket: &Socket, segment: u16) -> io::Result<()> {
    let value = libc::c_int::from(segment);
    // SAFETY: an int option on a socket we own.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_UDP,
            libc::UDP_SEGMENT,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use socket2::{Domain, Protocol, Type};

    /// Each kind delivers the payload cut into GSO datagrams to a socket on this host (a
    /// zero-copy send there is copied, and its notification says so).
    #[test]
    fn every_kind_sends_the_payload_as_datagrams() {
        let (rx, to) = crate::msg_zerocopy::local_receiver();
        // Bounds a broken kernel's test (nothing is timed).
        rx.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .expect("local socket");
        let payload = vec![0x47u8; 3 * 1316 + 100];
        for kind in [
            UringSend::Copy,
            UringSend::ZeroCopy,
            UringSend::ZeroCopyFixed,
        ] {
            let tx =
                Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).expect("local socket");
            let sockets = vec![(tx, to.clone())];
            let mut sender = match UringSender::new(kind, 1, &sockets, 1316, &payload) {
                Ok(s) => s,
                // A kernel without io_uring, or without SEND_ZC (before 6.0).
                Err(_) => return,
            };
            let mut counts = UringCounts::default();
            if sender.send_all(&sockets, &payload, &mut counts).is_err() {
                return;
            }
            if counts.errors > 0 {
                return; // EINVAL from a kernel without SEND_ZC's destination address
            }
            assert_eq!((counts.sends, counts.bytes), (1, payload.len() as u64));
            let mut buf = [0u8; 2000];
            let sizes: Vec<usize> = (0..4)
                .map(|_| rx.recv(unsafe_uninit(&mut buf)).expect("local socket"))
                .collect();
            assert_eq!(sizes, [1316, 1316, 1316, 100], "{kind:?}");
        }
    }

    fn unsafe_uninit(buf: &mut [u8]) -> &mut [std::mem::MaybeUninit<u8>] {
        // SAFETY: initialised bytes viewed as possibly uninitialised ones, only written.
        unsafe { &mut *(buf as *mut [u8] as *mut [std::mem::MaybeUninit<u8>]) }
    }
}
