//! The worker's I/O core: one io_uring, a backlog for a full submission queue, and the
//! provided-buffer ring. Only the engine knows io_uring exists.

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use io_uring::{cqueue, opcode, squeue, types, IoUring, Probe};

use super::buf_ring::BufRing;

const RING_ENTRIES: u32 = 4096;
/// Receive buffers shared by all of a worker's connections. Viewers send a few bytes now and
/// then (acknowledgements); publishers send a few KiB per receive: 512 × 16 KiB covers
/// bursts with room to spare.
const RECV_BUFFERS: u16 = 512;
const RECV_BUFFER_SIZE: usize = 16 * 1024;
const BUFFER_GROUP: u16 = 0;

#[derive(Debug, Clone, Copy)]
pub struct Completion {
    pub user_data: u64,
    pub result: i32,
    pub flags: u32,
}

pub struct Io {
    ring: IoUring,
    backlog: VecDeque<squeue::Entry>,
    pub bufs: BufRing,
}

/// Why the engine cannot start, in words an operator can act on.
pub fn unavailable(err: &io::Error) -> String {
    format!(
        "io_uring could not be set up ({err}). Strata needs Linux 6.0 or later with io_uring \
         enabled: check `sysctl kernel.io_uring_disabled` (must be 0, or 1 with this user in \
         kernel.io_uring_group), that no seccomp profile blocks io_uring_setup (container \
         runtimes' default profiles do), and RLIMIT_MEMLOCK (`ulimit -l`)"
    )
}

impl Io {
    pub fn new() -> io::Result<Self> {
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_coop_taskrun()
            .setup_cqsize(RING_ENTRIES * 4)
            .build(RING_ENTRIES)?;
        let mut probe = Probe::new();
        ring.submitter().register_probe(&mut probe)?;
        for (code, name) in [
            (opcode::AcceptMulti::CODE, "accept"),
            (opcode::RecvMulti::CODE, "recv"),
            (opcode::SendMsg::CODE, "sendmsg"),
            (opcode::Read::CODE, "read"),
            (opcode::AsyncCancel::CODE, "cancel"),
        ] {
            if !probe.is_supported(code) {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("the kernel's io_uring lacks {name}"),
                ));
            }
        }
        let bufs = BufRing::new(&ring, RECV_BUFFERS, RECV_BUFFER_SIZE, BUFFER_GROUP)?;
        Ok(Io {
            ring,
            backlog: VecDeque::new(),
            bufs,
        })
    }

    /// Queues a submission; a full submission queue is a normal state: the entry waits in the
    /// backlog until the next `submit`.
    ///
    /// # Safety
    /// Every buffer, iovec and msghdr the entry points to must stay valid until its
    /// completion arrives.
    pub unsafe fn push(&mut self, entry: squeue::Entry) {
        if !self.backlog.is_empty() {
            self.backlog.push_back(entry);
            return;
        }
        // SAFETY: forwarded to the caller.
        if unsafe { self.ring.submission().push(&entry) }.is_err() {
            self.backlog.push_back(entry);
        }
    }

    /// Submits what is queued and waits for at least one completion or the timeout.
    pub fn submit_and_wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        loop {
            self.flush_backlog();
            let ts;
            let args;
            let result = match timeout {
                Some(t) => {
                    ts = types::Timespec::from(t);
                    args = types::SubmitArgs::new().timespec(&ts);
                    self.ring.submitter().submit_with_args(1, &args)
                }
                None => self.ring.submitter().submit_and_wait(1),
            };
            match result {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ETIME) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                // The completion queue is full: reap first, then submit again.
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
                Err(e) => return Err(e),
            }
            if self.backlog.is_empty() || self.ring.submission().is_full() {
                return Ok(());
            }
        }
    }

    fn flush_backlog(&mut self) {
        let mut sq = self.ring.submission();
        while let Some(entry) = self.backlog.front() {
            // SAFETY: entries were pushed through `push`, whose caller vouched for them.
            if unsafe { sq.push(entry) }.is_err() {
                break;
            }
            self.backlog.pop_front();
        }
    }

    /// Moves every available completion into `out` (reaped first, handled after, so
    /// handlers never run inside the ring's borrow).
    pub fn drain(&mut self, out: &mut Vec<Completion>) {
        for cqe in self.ring.completion() {
            out.push(Completion {
                user_data: cqe.user_data(),
                result: cqe.result(),
                flags: cqe.flags(),
            });
        }
    }

    pub fn buffer_id(flags: u32) -> Option<u16> {
        cqueue::buffer_select(flags)
    }

    pub fn more(flags: u32) -> bool {
        cqueue::more(flags)
    }
}

impl Drop for Io {
    fn drop(&mut self) {
        // The buffer memory must outlive the kernel's use of it.
        let _ = self.ring.submitter().unregister_buf_ring(self.bufs.bgid);
    }
}
