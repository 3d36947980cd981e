//! Per-worker timers: deadlines in a min-heap, driven by the ring's wait timeout. Each timer
//! names its owner (`Owner`) and what it guards; the worker dispatches a due timer on both.
//! Cancelled or stale timers are skipped when they fire (the owner checks its generation, or
//! its state), which keeps arming a timer O(log n) and cancelling free.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use super::conn::ConnRef;
use super::owner::Owner;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimerKind {
    /// The client has not finished the handshake and connect in time.
    Connect,
    /// A closing connection gets this long to flush its last messages.
    CloseFlush,
    /// The manager has not answered this auth request in time.
    Auth(u64),
    /// A shut-down connection still waits for zero-copy notifications: past this its
    /// socket is reset, which makes the kernel let go of the data.
    NotifWait,
    /// A call the server made to the client may have gone unanswered (see `app::calls`).
    CallDeadline,
    /// The manager has not answered this client call (`app::incoming_calls`) in time.
    RpcDeadline(u64),
    /// The worker's once-a-second refresh of stream rates.
    Tick,
    /// A relay pull's next attempt at an upstream group.
    Retry,
    /// A relay pull checks that its current upstream still sends (the idle interval).
    Idle,
    /// A NetStream playing a file has its next sample due (the stream id).
    VodPace(u32),
    /// Subscribes for names no upstream list has get StreamNotFound now, unless a list
    /// gained the name meanwhile (`worker/registrations.rs`).
    ListGrace,
}

/// A connection's timer, as connection code arms it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timer {
    pub(crate) at: Instant,
    pub(crate) slot: u32,
    pub(crate) generation: u32,
    pub(crate) kind: TimerKind,
}

/// One armed timer. `seq` orders timers with the same deadline by arming order, so the heap
/// needs no ordering on owners or kinds.
#[derive(Debug, Clone, Copy)]
struct Entry {
    at: Instant,
    seq: u64,
    owner: Owner,
    kind: TimerKind,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

#[derive(Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<Entry>>,
    seq: u64,
}

impl Timers {
    /// Arms a connection's timer.
    pub(crate) fn arm(&mut self, timer: Timer) {
        let owner = Owner::Conn(ConnRef {
            slot: timer.slot,
            generation: timer.generation,
        });
        self.arm_for(owner, timer.at, timer.kind);
    }

    /// Arms a timer for any owner.
    pub(crate) fn arm_for(&mut self, owner: Owner, at: Instant, kind: TimerKind) {
        self.seq += 1;
        self.heap.push(Reverse(Entry {
            at,
            seq: self.seq,
            owner,
            kind,
        }));
    }

    pub(crate) fn next_timeout(&self, now: Instant) -> Option<Duration> {
        self.heap
            .peek()
            .map(|Reverse(t)| t.at.saturating_duration_since(now))
    }

    /// The earliest timer due at `now`, if any: its owner and kind.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(Owner, TimerKind)> {
        match self.heap.peek() {
            Some(Reverse(t)) if t.at <= now => self.heap.pop().map(|Reverse(t)| (t.owner, t.kind)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_of_every_owner_fire_in_deadline_order() {
        let start = Instant::now();
        let ms = |n| start + Duration::from_millis(n);
        let conn = ConnRef {
            slot: 3,
            generation: 1,
        };
        let mut timers = Timers::default();
        timers.arm_for(Owner::Worker, ms(30), TimerKind::Tick);
        timers.arm(Timer {
            at: ms(10),
            slot: conn.slot,
            generation: conn.generation,
            kind: TimerKind::Connect,
        });
        timers.arm_for(Owner::Worker, ms(20), TimerKind::Tick);
        // Same deadline as the first worker timer: fires after it, in arming order.
        timers.arm_for(Owner::Conn(conn), ms(30), TimerKind::Auth(7));

        assert_eq!(timers.next_timeout(start), Some(Duration::from_millis(10)));
        assert_eq!(timers.pop_due(ms(5)), None);
        let mut fired = Vec::new();
        while let Some(t) = timers.pop_due(ms(30)) {
            fired.push(t);
        }
        assert_eq!(
            fired,
            vec![
                (Owner::Conn(conn), TimerKind::Connect),
                (Owner::Worker, TimerKind::Tick),
                (Owner::Worker, TimerKind::Tick),
                (Owner::Conn(conn), TimerKind::Auth(7)),
            ]
        );
        assert_eq!(timers.next_timeout(start), None);
    }
}
