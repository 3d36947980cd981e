//! Signals: only the main thread takes them, synchronously, with sigwait. SIGINT and SIGTERM
//! stop the server, SIGHUP reloads the configuration, SIGPIPE is ignored.

/// The signals the main thread waits for, blocked in the calling thread and so in every
/// thread it spawns afterwards: call this before starting any.
pub(super) struct Signals(libc::sigset_t);

/// What a signal asks of the server.
pub(super) enum Signal {
    Reload,
    Stop(i32),
}

impl Signals {
    pub(super) fn block() -> Signals {
        // SAFETY: sigset manipulation on a local set; pthread_sigmask affects this thread and
        // the threads it spawns afterwards, which is the point (only the main thread waits).
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigaddset(&mut set, libc::SIGHUP);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            // A peer that resets a connection must not kill the process.
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
            Signals(set)
        }
    }

    /// Blocks until one of the signals arrives.
    pub(super) fn wait(&self) -> Signal {
        let mut sig: libc::c_int = 0;
        // SAFETY: the set is a valid, initialised signal set; `sig` a live out-parameter.
        unsafe { libc::sigwait(&self.0, &mut sig) };
        if sig == libc::SIGHUP {
            Signal::Reload
        } else {
            Signal::Stop(sig)
        }
    }
}
