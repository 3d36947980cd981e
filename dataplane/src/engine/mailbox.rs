//! Cross-worker mailboxes: a crossbeam queue plus an eventfd the receiving worker's ring
//! reads, so a post wakes a worker that is blocked in io_uring_enter.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crossbeam_channel::{Receiver, Sender};

pub(crate) struct Mailbox<T> {
    tx: Sender<T>,
    efd: OwnedFd,
}

pub(crate) struct MailboxReceiver<T> {
    rx: Receiver<T>,
    efd: RawFd,
    /// The 8 bytes the ring reads the eventfd counter into; boxed so its address is stable.
    pub(crate) read_buf: Box<u64>,
}

pub(crate) fn mailbox<T>() -> io::Result<(Mailbox<T>, MailboxReceiver<T>)> {
    // SAFETY: plain syscall; the result is checked.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor we own.
    let efd = unsafe { OwnedFd::from_raw_fd(fd) };
    let (tx, rx) = crossbeam_channel::unbounded();
    Ok((
        Mailbox { tx, efd },
        MailboxReceiver {
            rx,
            efd: fd,
            read_buf: Box::new(0),
        },
    ))
}

impl<T> Mailbox<T> {
    /// Queues without waking: the sender wakes each destination once per loop turn.
    pub(crate) fn post(&self, msg: T) {
        // A closed receiver means that worker has exited; nothing to deliver to.
        let _ = self.tx.send(msg);
    }

    pub(crate) fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64 to an eventfd we own. An error (counter
        // overflow) still leaves the receiver awake, which is all a wake-up is for.
        unsafe { libc::write(self.efd.as_raw_fd(), std::ptr::addr_of!(one).cast(), 8) };
    }
}

impl<T> MailboxReceiver<T> {
    pub(crate) fn fd(&self) -> RawFd {
        self.efd
    }

    pub(crate) fn try_recv(&self) -> Option<T> {
        self.rx.try_recv().ok()
    }
}
