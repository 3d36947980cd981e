//! The io_uring engine: one pinned worker per core, each with its own ring, listeners,
//! connections and streams. The only code in Strata that touches sockets.

mod buf_ring;
mod conn;
pub mod cross;
mod io;
pub mod listener;
mod live;
mod mailbox;
pub mod registry;
mod timers;
pub mod token;
mod worker;

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use tracing::{error, info, warn};

use crate::config::Config;
use worker::{Shared, Worker};

/// How long workers get to close their clients after SIGINT/SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

pub struct Options {
    pub config: Config,
}

fn block_signals() -> libc::sigset_t {
    // SAFETY: sigset manipulation on a local set; pthread_sigmask affects this thread and
    // the threads it spawns afterwards, which is the point (only the main thread waits).
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        // A peer that resets a connection must not kill the process.
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        set
    }
}

fn wait_for_signal(set: &libc::sigset_t) -> i32 {
    let mut sig: libc::c_int = 0;
    // SAFETY: `set` is a valid, initialised signal set; `sig` a live out-parameter.
    unsafe { libc::sigwait(set, &mut sig) };
    sig
}

/// Runs the server until SIGINT or SIGTERM. Errors are for the operator: they say what
/// failed and what to check.
pub fn run(opts: Options) -> Result<(), String> {
    let config = Arc::new(opts.config);
    let workers = match config.server.workers {
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        n => n,
    };
    // Fail once, clearly, before any thread starts.
    drop(io::Io::new().map_err(|e| io::unavailable(&e))?);
    listener::check_bindable(&config.server.listen)?;

    let signals = block_signals();
    let mut receivers = Vec::new();
    let mut mailboxes = Vec::new();
    for _ in 0..workers {
        let (tx, rx) = mailbox::mailbox().map_err(|e| format!("cannot create an eventfd: {e}"))?;
        mailboxes.push(tx);
        receivers.push(rx);
    }
    let shared = Arc::new(Shared {
        config: Arc::clone(&config),
        registry: registry::Registry::new(workers),
        mailboxes,
        next_publish_id: AtomicU64::new(1),
    });
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let listen: Vec<SocketAddr> = config.server.listen.clone();
    let mut handles = Vec::new();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    for (id, rx) in receivers.into_iter().enumerate() {
        let shared = Arc::clone(&shared);
        let listen = listen.clone();
        let core = if cores.is_empty() { None } else { cores.get(id % cores.len()).copied() };
        let ready = ready_tx.clone();
        let handle = std::thread::Builder::new()
            .name(format!("strata-w{id}"))
            .spawn(move || {
                if let Some(core) = core {
                    if !core_affinity::set_for_current(core) {
                        warn!(worker = id, "could not pin to a core; running unpinned");
                    }
                }
                match Worker::new(id, shared, rx, &listen) {
                    Ok(w) => {
                        let _ = ready.send(Ok(()));
                        w.run();
                    }
                    Err(e) => {
                        let _ = ready.send(Err(format!("worker {id}: {}", io::unavailable(&e))));
                    }
                }
            })
            .map_err(|e| format!("cannot start worker thread: {e}"))?;
        handles.push(handle);
    }
    drop(ready_tx);
    for _ in 0..workers {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                stop_workers(&shared);
                return Err(e);
            }
            Err(_) => {
                stop_workers(&shared);
                return Err("a worker thread died while starting".into());
            }
        }
    }
    let addrs: Vec<String> = listen.iter().map(|a| a.to_string()).collect();
    info!(listen = %addrs.join(","), workers, "stratad listening");

    let sig = wait_for_signal(&signals);
    info!(signal = sig, "shutting down: closing clients");
    stop_workers(&shared);
    let deadline = std::time::Instant::now() + SHUTDOWN_GRACE;
    for h in handles {
        while !h.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if h.is_finished() {
            if h.join().is_err() {
                error!("a worker panicked");
            }
        } else {
            warn!("a worker did not stop within the grace period");
        }
    }
    info!("stopped");
    Ok(())
}

fn stop_workers(shared: &Shared) {
    for m in &shared.mailboxes {
        m.post(cross::WorkerMsg::Shutdown);
        m.wake();
    }
}
