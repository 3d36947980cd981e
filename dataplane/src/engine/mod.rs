//! The io_uring engine: one pinned worker per core, each with its own ring, listeners,
//! connections and streams. The only code in Strata that touches sockets.

mod buf_ring;
mod conn;
pub mod cross;
pub mod io;
pub mod listener;
pub mod mailbox;
pub mod registry;
pub mod stats;
mod timers;
pub mod token;
pub mod udp;
mod worker;
mod zerocopy;

pub use worker::Shared;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tracing::{error, info, warn};

use crate::config::Config;
use crate::control_socket::{ControlServer, Overrides, Settings};
use cross::ControlInbound;
use stats::WorkerStats;
use worker::Worker;

/// How long workers get to close their clients after SIGINT/SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

pub struct Options {
    pub config: Config,
    /// The file the configuration came from, for `reload` and SIGHUP.
    pub config_path: Option<PathBuf>,
    /// `--control-socket`: overrides `control.socket`, and failing to serve it is fatal.
    pub control_socket: Option<PathBuf>,
    /// What the command line fixed, kept across reloads.
    pub overrides: Overrides,
}

fn block_signals() -> libc::sigset_t {
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
        set
    }
}

fn wait_for_signal(set: &libc::sigset_t) -> i32 {
    let mut sig: libc::c_int = 0;
    // SAFETY: `set` is a valid, initialised signal set; `sig` a live out-parameter.
    unsafe { libc::sigwait(set, &mut sig) };
    sig
}

/// Every connection is a descriptor: raise the soft limit to the hard one, and say so when
/// even that is below what the configuration means to serve.
fn raise_nofile(max_connections: usize) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: get/setrlimit on a live struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return;
        }
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        }
    }
    // Listeners, rings, eventfds and the control socket need a few descriptors of their own.
    let needed = max_connections as u64 + 64;
    if lim.rlim_cur < needed {
        warn!(
            limit = lim.rlim_cur,
            max_connections,
            "RLIMIT_NOFILE is below server.max_connections: raise the hard limit (ulimit -Hn, LimitNOFILE= in systemd)"
        );
    } else {
        info!(limit = lim.rlim_cur, "file descriptor limit");
    }
}

/// Runs the server until SIGINT or SIGTERM. Errors are for the operator: they say what
/// failed and what to check.
pub fn run(opts: Options) -> Result<(), String> {
    let config = Arc::new(opts.config);
    let workers = match config.server.workers {
        0 => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        n => n,
    };
    // Fail once, clearly, before any thread starts.
    drop(io::Io::new().map_err(|e| io::unavailable(&e))?);
    listener::check_bindable(&config.server.listen)?;
    raise_nofile(config.server.max_connections);

    let signals = block_signals();
    let mut receivers = Vec::new();
    let mut mailboxes = Vec::new();
    for _ in 0..workers {
        let (tx, rx) = mailbox::mailbox().map_err(|e| format!("cannot create an eventfd: {e}"))?;
        mailboxes.push(tx);
        receivers.push(rx);
    }
    let (control_tx, control_rx) = mailbox::mailbox::<ControlInbound>()
        .map_err(|e| format!("cannot create an eventfd: {e}"))?;
    let shared = Arc::new(Shared {
        registry: registry::Registry::new(workers),
        mailboxes,
        control: control_tx,
        stats: (0..workers).map(|_| WorkerStats::default()).collect(),
        next_publish_id: AtomicU64::new(1),
        next_client_id: AtomicU64::new(1),
        next_auth_id: AtomicU64::new(1),
        auth_manager: AtomicBool::new(false),
    });

    let settings = Settings {
        socket: opts
            .control_socket
            .clone()
            .unwrap_or_else(|| config.control.socket.clone()),
        explicit: opts.control_socket.is_some(),
        config_path: opts.config_path,
        overrides: opts.overrides,
    };
    let stop_control = Arc::new(AtomicBool::new(false));
    let control = ControlServer::new(
        settings,
        Arc::clone(&shared),
        Arc::clone(&config),
        control_rx,
        Arc::clone(&stop_control),
    )?;
    let control_thread = std::thread::Builder::new()
        .name("strata-control".into())
        .spawn(move || control.run())
        .map_err(|e| format!("cannot start the control thread: {e}"))?;

    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let mut handles = Vec::new();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    for (id, rx) in receivers.into_iter().enumerate() {
        let shared = Arc::clone(&shared);
        let config = Arc::clone(&config);
        let core = if cores.is_empty() {
            None
        } else {
            cores.get(id % cores.len()).copied()
        };
        let ready = ready_tx.clone();
        let handle = std::thread::Builder::new()
            .name(format!("strata-w{id}"))
            .spawn(move || {
                if let Some(core) = core {
                    if !core_affinity::set_for_current(core) {
                        warn!(worker = id, "could not pin to a core; running unpinned");
                    }
                }
                match Worker::new(id, shared, config, rx) {
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
        let started = match ready_rx.recv() {
            Ok(r) => r,
            Err(_) => Err("a worker thread died while starting".into()),
        };
        if let Err(e) = started {
            stop_workers(&shared);
            stop_control.store(true, Ordering::Relaxed);
            return Err(e);
        }
    }
    let addrs: Vec<String> = config.server.listen.iter().map(|a| a.to_string()).collect();
    info!(listen = %addrs.join(","), workers, "stratad listening");

    loop {
        let sig = wait_for_signal(&signals);
        if sig == libc::SIGHUP {
            shared.control.post(ControlInbound::ReloadSignal);
            shared.control.wake();
            continue;
        }
        info!(signal = sig, "shutting down: closing clients");
        break;
    }
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
    stop_control.store(true, Ordering::Relaxed);
    let _ = control_thread.join();
    info!("stopped");
    Ok(())
}

fn stop_workers(shared: &Shared) {
    for m in &shared.mailboxes {
        m.post(cross::WorkerMsg::Shutdown);
        m.wake();
    }
}
