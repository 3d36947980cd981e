//! A worker for unit tests: no listeners, driven one loop turn at a time through the same
//! dispatch `Worker::run` uses.

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Shared, Worker, TICK};
use crate::config::Config;
use crate::engine::cross::ControlInbound;
use crate::engine::cross::WorkerMsg;
use crate::engine::mailbox::{self, MailboxReceiver};
use crate::engine::owner::Owner;
use crate::engine::registry::Registry;
use crate::engine::stats::WorkerStats;
use crate::engine::timers::TimerKind;

/// The process state of `workers` workers with no listeners: their mailboxes' receiving
/// ends (index = worker) and the control mailbox's.
pub(crate) fn shared(
    workers: usize,
) -> (
    Arc<Shared>,
    Vec<MailboxReceiver<WorkerMsg>>,
    MailboxReceiver<ControlInbound>,
) {
    let (mailboxes, receivers): (Vec<_>, Vec<_>) = (0..workers)
        .map(|_| mailbox::mailbox().expect("eventfd"))
        .unzip();
    let (control, control_rx) = mailbox::mailbox().expect("eventfd");
    let shared = Arc::new(Shared {
        registry: Registry::new(workers),
        mailboxes,
        control,
        stats: (0..workers).map(|_| WorkerStats::default()).collect(),
        next_publish_id: AtomicU64::new(1),
        next_client_id: AtomicU64::new(1),
        next_auth_id: AtomicU64::new(1),
        auth_manager: AtomicBool::new(false),
        rpc_manager: AtomicBool::new(false),
        catalog: Default::default(),
        rtmfp_peers: Default::default(),
        scripts: None,
        indexes: Default::default(),
    });
    (shared, receivers, control_rx)
}

/// Worker 0 of `shared`, listening nowhere, reading its mailbox `rx`.
pub(crate) fn worker_of(shared: Arc<Shared>, rx: MailboxReceiver<WorkerMsg>) -> Worker {
    let mut config = Config::default();
    config.server.listen = Vec::new();
    Worker::new(0, shared, Arc::new(config), rx).expect("io_uring is required")
}

/// A worker with no listeners, and the control mailbox's receiving end (kept so that what
/// the worker posts there has somewhere to go).
pub(crate) fn worker() -> (Worker, MailboxReceiver<ControlInbound>) {
    let (shared, mut receivers, control_rx) = shared(1);
    let rx = receivers.remove(0);
    (worker_of(shared, rx), control_rx)
}

/// Loop turns as `Worker::run` takes them (wait, handle completions, run timers) until
/// `done`; at least one turn.
pub(crate) fn turn_until(w: &mut Worker, mut done: impl FnMut(&mut Worker) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut completions = Vec::new();
    loop {
        w.io.submit_and_wait(Some(Duration::from_millis(20)))
            .expect("wait");
        w.handle_completions(&mut completions);
        w.run_timers();
        if done(w) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the worker did not get there in time"
        );
    }
}

#[test]
fn the_tick_is_a_timer_the_worker_owns_and_rearms() {
    let (mut w, _control) = worker();
    let before = w.last_tick;
    w.timers
        .arm_for(Owner::Worker, Instant::now(), TimerKind::Tick);
    w.run_timers();
    assert!(w.last_tick > before, "the tick ran");
    let next = w.timers.next_timeout(Instant::now()).expect("armed again");
    assert!(
        next > TICK - Duration::from_millis(100) && next <= TICK,
        "{next:?}"
    );
}
