//! The process: start-up, the worker threads, signals, reload and the control socket. The
//! engine runs each worker's loop; this module starts the workers, reaches them only
//! through their mailboxes and `Shared`, and stops them. Nothing in `engine/` calls back
//! into it.
//!
//! Threads: the main thread waits for signals; one thread per worker; one control thread
//! serving the control socket, which also owns the running configuration and so performs
//! every reload (SIGHUP reaches it through its mailbox).

mod control_socket;
mod huge_pages;
mod limits;
mod reload;
mod signals;
mod workers;

pub use reload::Overrides;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tracing::info;

use crate::config::Config;
use crate::engine::cross::ControlInbound;
use crate::engine::{io, listener};
use control_socket::{ControlServer, Settings};
use reload::RunningConfig;
use signals::{Signal, Signals};
use workers::Workers;

pub struct Options {
    /// The configuration as read from its file (or the defaults), before `overrides`.
    pub config: Config,
    /// The file the configuration came from, for `reload` and SIGHUP.
    pub config_path: Option<PathBuf>,
    /// `--control-socket`: overrides `control.socket`, and failing to serve it is fatal.
    pub control_socket: Option<PathBuf>,
    /// What the command line fixed, applied now and kept across reloads.
    pub overrides: Overrides,
}

/// Runs the server until SIGINT or SIGTERM. Errors are for the operator: they say what
/// failed and what to check.
pub fn run(opts: Options) -> Result<(), String> {
    let running = RunningConfig::new(opts.config, opts.config_path, opts.overrides);
    let config = Arc::clone(running.current());
    let count = workers::count(&config);
    // Fail once, clearly, before any thread starts.
    drop(io::Io::new().map_err(|e| io::unavailable(&e))?);
    listener::check_bindable(&config.server.listen)?;
    if let Some(root) = &config.vod.root {
        let root = crate::engine::content_root::ContentRoot::new(root)
            .map_err(|e| format!("vod.root (--content-root): {e}"))?;
        info!(root = %root.root().display(), "serving files as VOD");
    }
    huge_pages::apply(config.server.transparent_huge_pages);
    limits::raise_nofile(config.server.max_connections);
    limits::note_backlog(config.server.listen_backlog);

    let signals = Signals::block();
    let (shared, receivers) = workers::shared_state(count)?;
    // Always started, so a reload can turn scripts on; idle without `[scripts] dir`.
    crate::scripts::start(Arc::clone(&shared), receivers.scripts, &config)?;
    let settings = Settings {
        socket: opts
            .control_socket
            .clone()
            .unwrap_or_else(|| config.control.socket.clone()),
        explicit: opts.control_socket.is_some(),
    };
    let stop_control = Arc::new(AtomicBool::new(false));
    let control = ControlServer::new(
        settings,
        Arc::clone(&shared),
        running,
        receivers.control,
        Arc::clone(&stop_control),
    )?;
    let control_thread = std::thread::Builder::new()
        .name("strata-control".into())
        .spawn(move || control.run())
        .map_err(|e| format!("cannot start the control thread: {e}"))?;

    let workers = match Workers::start(&shared, &config, receivers.workers) {
        Ok(w) => w,
        Err(e) => {
            stop_control.store(true, Ordering::Relaxed);
            return Err(e);
        }
    };
    let addrs: Vec<String> = config.server.listen.iter().map(|a| a.to_string()).collect();
    info!(listen = %addrs.join(","), workers = count, "stratad listening");

    loop {
        match signals.wait() {
            Signal::Reload => {
                shared.control.post(ControlInbound::ReloadSignal);
                shared.control.wake();
            }
            Signal::Stop(signal) => {
                info!(signal, "shutting down: closing clients");
                break;
            }
        }
    }
    // onAppStop before the workers close the clients (bounded: see `Scripts::stop`).
    if let Some(scripts) = &shared.scripts {
        scripts.stop(&config.scripts);
    }
    workers.stop();
    stop_control.store(true, Ordering::Relaxed);
    let _ = control_thread.join();
    info!("stopped");
    Ok(())
}
