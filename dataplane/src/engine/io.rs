//! The worker's I/O core: one io_uring, a backlog for a full submission queue, and the
//! provided-buffer ring. Only the engine knows io_uring exists.

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use io_uring::{cqueue, opcode, squeue, types, IoUring, Probe};

use super::buf_ring::BufRing;

const RING_ENTRIES: u32 = 4096;
/// Receive buffers of clients' connections until they publish: handshakes (C0+C1 is 1,537
/// bytes), commands and viewers' acknowledgements, all small. What counts in a join storm is
/// how many there are: every connection whose data arrives takes one until the worker has
/// handled its completion, and one that finds none must wait (see `Worker::starved`). So
/// many small buffers: 4,096 × 1 KiB, 4 MiB, for 10,000 handshakes in a second (a C0+C1
/// takes two; 2,048 × 2 KiB gave a 10,000-player storm's play → first video p99 of
/// 463–535 ms, 4,096 × 1 KiB 371–483, BENCHMARKS.md "Issue 15, session 21").
const CLIENT_BUFFERS: u16 = 4096;
const CLIENT_BUFFER_SIZE: usize = 1024;
const CLIENT_GROUP: u16 = 0;
/// Receive buffers of ingest: publishing connections, upstream links and the UDP socket
/// (RTMFP). A separate group, so that a storm of joining viewers cannot take the buffers the
/// publisher's media needs (every viewer would stall); a publisher sends a few KiB per
/// receive, a datagram fits one: 256 × 16 KiB, 4 MiB.
const INGEST_BUFFERS: u16 = 256;
const INGEST_BUFFER_SIZE: usize = 16 * 1024;
const INGEST_GROUP: u16 = 1;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Completion {
    pub(crate) user_data: u64,
    pub(crate) result: i32,
    pub(crate) flags: u32,
}

/// What waits in the backlog: a lone entry, or a chain that must reach the submission
/// queue whole (a link split across two submits would run its head unlinked and fail the
/// rest).
enum Submission {
    One(squeue::Entry),
    Linked([squeue::Entry; 2]),
}

pub(crate) struct Io {
    ring: IoUring,
    backlog: VecDeque<Submission>,
    /// Clients' receive buffers (see `CLIENT_BUFFERS`).
    pub(crate) bufs: BufRing,
    /// Ingest's receive buffers (see `INGEST_BUFFERS`).
    pub(crate) ingest: BufRing,
    /// The kernel has IORING_OP_SENDMSG_ZC (6.1 and later); optional, unlike the rest.
    pub(crate) send_zc: bool,
    /// Zero-copy sends may ask whether the kernel copied after all (6.2 and later).
    pub(crate) zc_usage: bool,
}

/// Why the engine cannot start, in words an operator can act on.
pub(crate) fn unavailable(err: &io::Error) -> String {
    format!(
        "io_uring could not be set up ({err}). Strata needs Linux 6.0 or later with io_uring \
         enabled: check `sysctl kernel.io_uring_disabled` (must be 0, or 1 with this user in \
         kernel.io_uring_group), that no seccomp profile blocks io_uring_setup (container \
         runtimes' default profiles do), and RLIMIT_MEMLOCK (`ulimit -l`)"
    )
}

impl Io {
    pub(crate) fn new() -> io::Result<Self> {
        Self::with_buffers(CLIENT_BUFFERS, INGEST_BUFFERS)
    }

    /// A ring with `client` and `ingest` receive buffers (powers of two): tests make the
    /// clients' few, to run out of them.
    pub(crate) fn with_buffers(client: u16, ingest: u16) -> io::Result<Self> {
        let mut ring = IoUring::builder()
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
            (opcode::RecvMsgMulti::CODE, "recvmsg"),
            (opcode::Connect::CODE, "connect"),
            (opcode::LinkTimeout::CODE, "link_timeout"),
            (opcode::Read::CODE, "read"),
            (opcode::AsyncCancel::CODE, "cancel"),
            (opcode::Write::CODE, "write"),
            (opcode::Fsync::CODE, "fsync"),
        ] {
            if !probe.is_supported(code) {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("the kernel's io_uring lacks {name}"),
                ));
            }
        }
        let send_zc = probe.is_supported(opcode::SendMsgZc::CODE);
        let zc_usage = send_zc && probe_zc_usage(&mut ring);
        let bufs = BufRing::new(&ring, client, CLIENT_BUFFER_SIZE, CLIENT_GROUP)?;
        let ingest = BufRing::new(&ring, ingest, INGEST_BUFFER_SIZE, INGEST_GROUP)?;
        Ok(Io {
            ring,
            backlog: VecDeque::new(),
            bufs,
            ingest,
            send_zc,
            zc_usage,
        })
    }

    /// The receive buffers of a receive's group: ingest's or clients'.
    pub(crate) fn recv_bufs(&mut self, ingest: bool) -> &mut BufRing {
        if ingest {
            &mut self.ingest
        } else {
            &mut self.bufs
        }
    }

    /// Queues a submission; a full submission queue is a normal state: the entry waits in the
    /// backlog until the next `submit`.
    ///
    /// # Safety
    /// Every buffer, iovec and msghdr the entry points to must stay valid until its
    /// completion arrives.
    pub(crate) unsafe fn push(&mut self, entry: squeue::Entry) {
        if !self.backlog.is_empty() {
            self.backlog.push_back(Submission::One(entry));
            return;
        }
        // SAFETY: forwarded to the caller.
        if unsafe { self.ring.submission().push(&entry) }.is_err() {
            self.backlog.push_back(Submission::One(entry));
        }
    }

    /// Queues two entries that must be submitted together, the first flagged `IO_LINK`
    /// (an operation and its `LinkTimeout`): both enter the submission queue in one go, or
    /// both wait in the backlog.
    ///
    /// # Safety
    /// As for `push`, for both entries.
    pub(crate) unsafe fn push_linked(&mut self, entries: [squeue::Entry; 2]) {
        if !self.backlog.is_empty() {
            self.backlog.push_back(Submission::Linked(entries));
            return;
        }
        // SAFETY: forwarded to the caller.
        if unsafe { self.ring.submission().push_multiple(&entries) }.is_err() {
            self.backlog.push_back(Submission::Linked(entries));
        }
    }

    /// Entries the submission queue holds between two submits.
    #[cfg(test)]
    pub(crate) fn submission_capacity(&mut self) -> usize {
        self.ring.submission().capacity()
    }

    /// Submits what is queued and waits for at least one completion or the timeout.
    pub(crate) fn submit_and_wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
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
        while let Some(next) = self.backlog.front() {
            // SAFETY: entries were queued through `push` or `push_linked`, whose callers
            // vouched for them.
            let pushed = match next {
                Submission::One(entry) => unsafe { sq.push(entry) },
                Submission::Linked(entries) => unsafe { sq.push_multiple(entries) },
            };
            if pushed.is_err() {
                break;
            }
            self.backlog.pop_front();
        }
    }

    /// Submits and reaps, for at most 5 s, until `take` makes something of a completion of
    /// `kind` (the tests of one ring operation: a file's open, read or other operation).
    #[cfg(test)]
    pub(crate) fn wait_for<T>(
        &mut self,
        kind: super::token::OpKind,
        mut take: impl FnMut(super::token::Token, Completion) -> Option<T>,
    ) -> T {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut completions = Vec::new();
        while std::time::Instant::now() < deadline {
            self.submit_and_wait(Some(Duration::from_millis(50)))
                .expect("wait");
            self.drain(&mut completions);
            for c in completions.drain(..) {
                let token = super::token::Token::from_user_data(c.user_data);
                if let Some(token) = token.filter(|t| t.kind == kind) {
                    if let Some(done) = take(token, c) {
                        return done;
                    }
                }
            }
        }
        panic!("no {kind:?} completed within 5 s");
    }

    /// Moves every available completion into `out` (tests reap everything; the worker
    /// takes a bounded slice per turn with `drain_at_most`).
    #[cfg(test)]
    pub(crate) fn drain(&mut self, out: &mut Vec<Completion>) {
        self.drain_at_most(out, usize::MAX);
    }

    /// Moves up to `max` available completions into `out` (reaped first, handled after, so
    /// handlers never run inside the ring's borrow); the rest stay in the completion queue,
    /// where the next wait finds them at once.
    pub(crate) fn drain_at_most(&mut self, out: &mut Vec<Completion>, max: usize) {
        for cqe in self.ring.completion().take(max) {
            out.push(Completion {
                user_data: cqe.user_data(),
                result: cqe.result(),
                flags: cqe.flags(),
            });
        }
    }

    pub(crate) fn buffer_id(flags: u32) -> Option<u16> {
        cqueue::buffer_select(flags)
    }

    pub(crate) fn more(flags: u32) -> bool {
        cqueue::more(flags)
    }

    /// A zero-copy send's second completion: the kernel no longer reads the send's memory.
    pub(crate) fn notif(flags: u32) -> bool {
        cqueue::notif(flags)
    }
}

/// user_data of the start-up probe's completions: no token decodes from 0, so one that
/// arrived late would be ignored.
const PROBE_USER_DATA: u64 = 0;
/// The probe fails at once; this only bounds a wait that should never be needed.
const PROBE_WAIT: Duration = Duration::from_millis(500);

/// Whether the kernel takes IORING_SEND_ZC_REPORT_USAGE (6.1 has zero-copy sends but refuses
/// the flag). Found by trying, on the fresh ring: a zero-copy send on no descriptor fails at
/// preparation (EINVAL) when the flag is unknown, else at issue (EBADF). Anything unexpected
/// reads as no: the report only feeds statistics.
fn probe_zc_usage(ring: &mut IoUring) -> bool {
    // SAFETY: msghdr is plain old data; all-zero is its empty value (no iovecs).
    let hdr: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
    let entry = opcode::SendMsgZc::new(types::Fd(-1), &*hdr)
        .ioprio(super::zerocopy::REPORT_USAGE)
        .build()
        .user_data(PROBE_USER_DATA);
    // SAFETY: `hdr` lives until the kernel is done with the operation: it is freed below
    // only once every completion of the send has been seen, and leaked otherwise.
    if unsafe { ring.submission().push(&entry) }.is_err() {
        return false;
    }
    let deadline = std::time::Instant::now() + PROBE_WAIT;
    let mut result = None;
    let mut done = false;
    while !done && std::time::Instant::now() < deadline {
        let ts = types::Timespec::from(Duration::from_millis(50));
        let args = types::SubmitArgs::new().timespec(&ts);
        let _ = ring.submitter().submit_with_args(1, &args);
        for cqe in ring.completion() {
            if cqe.user_data() != PROBE_USER_DATA {
                continue;
            }
            if cqueue::notif(cqe.flags()) {
                done = result.is_some();
            } else {
                result = Some(cqe.result());
                done = !cqueue::more(cqe.flags());
            }
        }
    }
    if !done {
        // The kernel may still read it: a few bytes lost beat a use after free.
        Box::leak(hdr);
    }
    result.is_some_and(|r| r != -libc::EINVAL)
}

impl Drop for Io {
    fn drop(&mut self) {
        // The buffer memory must outlive the kernel's use of it.
        let _ = self.ring.submitter().unregister_buf_ring(self.bufs.bgid);
        let _ = self.ring.submitter().unregister_buf_ring(self.ingest.bgid);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use io_uring::opcode;

    use super::*;

    #[test]
    fn completions_left_by_a_bounded_drain_end_the_next_wait_at_once() {
        let mut io = Io::new().expect("io_uring");
        for i in 0..5u64 {
            // SAFETY: a no-op points to nothing.
            unsafe { io.push(opcode::Nop::new().build().user_data(100 + i)) };
        }
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while io.ring.completion().len() < 5 && Instant::now() < deadline {
            io.submit_and_wait(Some(Duration::from_millis(50)))
                .expect("wait");
        }
        io.drain_at_most(&mut out, 3);
        assert_eq!(out.len(), 3);
        // Nothing new is submitted: the wait returns because two are still queued, not
        // after its timeout.
        let t = Instant::now();
        io.submit_and_wait(Some(Duration::from_secs(2)))
            .expect("wait");
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "waited {:?}",
            t.elapsed()
        );
        io.drain_at_most(&mut out, usize::MAX);
        let mut ids: Vec<u64> = out.iter().map(|c| c.user_data).collect();
        ids.sort_unstable();
        assert_eq!(ids, vec![100, 101, 102, 103, 104]);
    }
}
