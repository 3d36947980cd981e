//! Per-worker counters the control thread reads: plain relaxed atomics, each written by one
//! worker only, so the media path pays an uncontended add and nothing else.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub(crate) struct WorkerStats {
    pub(crate) connections: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    /// Sends submitted to sockets: bytes_out / sends is how well batching works.
    pub(crate) sends: AtomicU64,
    /// Nanoseconds spent handling completions (not waiting in the ring).
    pub(crate) busy_ns: AtomicU64,
    pub(crate) dropped_frames: AtomicU64,
    pub(crate) recordings_started: AtomicU64,
    pub(crate) recordings_failed: AtomicU64,
    /// Zero-copy sends submitted (`live.send_zerocopy`).
    pub(crate) zc_sends: AtomicU64,
    /// Their notifications (the kernel no longer reads the memory).
    pub(crate) zc_notifs: AtomicU64,
    /// Notifications that said the kernel copied after all (loopback, a device without
    /// scatter-gather); counted where the kernel reports it, Linux 6.2 and later.
    pub(crate) zc_copied: AtomicU64,
    /// Shared-object messages from this worker's clients.
    pub(crate) so_messages_in: AtomicU64,
    /// Shared-object messages written to this worker's clients (one per user per update).
    pub(crate) so_messages_out: AtomicU64,
    /// RTMFP clients open on this worker (a subset of `connections`).
    pub(crate) rtmfp_sessions: AtomicU64,
    /// Receives that found no client buffer free (ENOBUFS) and waited for one: what a join
    /// storm costs in wasted completions (see `Worker::starved`).
    pub(crate) recv_no_buffer: AtomicU64,
}

impl WorkerStats {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn sub(counter: &AtomicU64, n: u64) {
        counter.fetch_sub(n, Ordering::Relaxed);
    }

    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
