//! The worker threads: one engine `Worker` per core, pinned, started together (start-up
//! fails if any fails to build its ring or listeners) and stopped with a grace period.

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{error, warn};

use crate::config::Config;
use crate::engine::cross::{ControlInbound, WorkerMsg};
use crate::engine::mailbox::{self, MailboxReceiver};
use crate::engine::registry::Registry;
use crate::engine::stats::WorkerStats;
use crate::engine::{io, Shared, Worker};

/// How long workers get to close their clients after SIGINT/SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// `server.workers`, where 0 means one per core.
pub(super) fn count(config: &Config) -> usize {
    match config.server.workers {
        0 => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        n => n,
    }
}

/// The receiving ends of the mailboxes in `Shared`: one per worker, one for the control
/// thread.
pub(super) struct Receivers {
    pub(super) workers: Vec<MailboxReceiver<WorkerMsg>>,
    pub(super) control: MailboxReceiver<ControlInbound>,
    /// The script thread's queue (`Shared::scripts` sends to it).
    pub(super) scripts: crossbeam_channel::Receiver<crate::scripts::ToScripts>,
}

/// What the workers and the control thread share.
pub(super) fn shared_state(workers: usize) -> Result<(Arc<Shared>, Receivers), String> {
    let eventfd = |e: std::io::Error| format!("cannot create an eventfd: {e}");
    let mut receivers = Vec::new();
    let mut mailboxes = Vec::new();
    for _ in 0..workers {
        let (tx, rx) = mailbox::mailbox().map_err(eventfd)?;
        mailboxes.push(tx);
        receivers.push(rx);
    }
    let (control_tx, control_rx) = mailbox::mailbox::<ControlInbound>().map_err(eventfd)?;
    let (scripts_tx, scripts_rx) = crossbeam_channel::unbounded();
    let shared = Arc::new(Shared {
        registry: Registry::new(workers),
        mailboxes,
        control: control_tx,
        stats: (0..workers).map(|_| WorkerStats::default()).collect(),
        next_publish_id: AtomicU64::new(1),
        next_client_id: AtomicU64::new(1),
        next_auth_id: AtomicU64::new(1),
        auth_manager: AtomicBool::new(false),
        rpc_manager: AtomicBool::new(false),
        catalog: Default::default(),
        rtmfp_peers: Default::default(),
        scripts: Some(crate::scripts::Scripts::new(scripts_tx)),
        indexes: Default::default(),
    });
    Ok((
        shared,
        Receivers {
            workers: receivers,
            control: control_rx,
            scripts: scripts_rx,
        },
    ))
}

pub(super) struct Workers {
    shared: Arc<Shared>,
    handles: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Starts one thread per receiver, pinned round-robin to the cores, and waits until
    /// each has built its ring and listeners. On the first failure the started ones are
    /// told to stop and the failure is returned.
    pub(super) fn start(
        shared: &Arc<Shared>,
        config: &Arc<Config>,
        receivers: Vec<MailboxReceiver<WorkerMsg>>,
    ) -> Result<Workers, String> {
        let mut workers = Workers {
            shared: Arc::clone(shared),
            handles: Vec::new(),
        };
        let count = receivers.len();
        let cores = core_affinity::get_core_ids().unwrap_or_default();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        for (id, rx) in receivers.into_iter().enumerate() {
            let shared = Arc::clone(shared);
            let config = Arc::clone(config);
            let core = if cores.is_empty() {
                None
            } else {
                cores.get(id % cores.len()).copied()
            };
            let ready = ready_tx.clone();
            let spawned = std::thread::Builder::new()
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
                            let _ =
                                ready.send(Err(format!("worker {id}: {}", io::unavailable(&e))));
                        }
                    }
                });
            match spawned {
                Ok(handle) => workers.handles.push(handle),
                Err(e) => {
                    workers.tell_stop();
                    return Err(format!("cannot start worker thread: {e}"));
                }
            }
        }
        drop(ready_tx);
        for _ in 0..count {
            let started = match ready_rx.recv() {
                Ok(r) => r,
                Err(_) => Err("a worker thread died while starting".into()),
            };
            if let Err(e) = started {
                workers.tell_stop();
                return Err(e);
            }
        }
        Ok(workers)
    }

    /// Asks every worker to close its clients and waits for them, at most the grace period.
    pub(super) fn stop(self) {
        self.tell_stop();
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        for h in self.handles {
            while !h.is_finished() && Instant::now() < deadline {
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
    }

    fn tell_stop(&self) {
        for m in &self.shared.mailboxes {
            m.post(WorkerMsg::Shutdown);
            m.wake();
        }
    }
}
