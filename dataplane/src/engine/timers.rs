//! Per-worker timers: deadlines in a min-heap, driven by the ring's wait timeout. Cancelled
//! or stale timers are skipped when they fire (the owner checks its generation), which keeps
//! arming a timer O(log n) and cancelling free.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TimerKind {
    /// The client has not finished the handshake and connect in time.
    Connect,
    /// A closing connection gets this long to flush its last messages.
    CloseFlush,
    /// The manager has not answered this auth request in time.
    Auth(u64),
    /// A shut-down connection still waits for zero-copy notifications: past this its
    /// socket is reset, which makes the kernel let go of the data.
    NotifWait,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timer {
    pub at: Instant,
    pub slot: u32,
    pub generation: u32,
    pub kind: TimerKind,
}

#[derive(Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<Timer>>,
}

impl Timers {
    pub fn arm(&mut self, timer: Timer) {
        self.heap.push(Reverse(timer));
    }

    pub fn next_timeout(&self, now: Instant) -> Option<Duration> {
        self.heap
            .peek()
            .map(|Reverse(t)| t.at.saturating_duration_since(now))
    }

    pub fn pop_due(&mut self, now: Instant) -> Option<Timer> {
        match self.heap.peek() {
            Some(Reverse(t)) if t.at <= now => self.heap.pop().map(|Reverse(t)| t),
            _ => None,
        }
    }
}
