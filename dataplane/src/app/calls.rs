//! Calls the server makes to a client (server-to-client RPC; relay commands on upstream
//! links later), awaiting their `_result` or `_error` by transaction id.
//!
//! Owner: the `Client` that made them, on its worker. Time is passed in (milliseconds on
//! the worker's clock): the worker asks `next_deadline` when it arms its timers and calls
//! `expired` when they fire, so an unanswered call ends with a timeout rather than living
//! as long as the connection.

/// Calls in flight per client; a client that never answers must not grow the table.
pub const MAX_CALLS: usize = 64;

#[derive(Debug)]
pub struct Calls<T> {
    /// Transaction ids start above the ones clients use for their own early calls.
    next_id: u32,
    waiting: Vec<Waiting<T>>,
}

#[derive(Debug)]
struct Waiting<T> {
    transaction: f64,
    deadline_ms: u64,
    what: T,
}

/// Why a call could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyCalls;

impl<T> Default for Calls<T> {
    fn default() -> Self {
        Calls {
            next_id: 1,
            waiting: Vec::new(),
        }
    }
}

impl<T> Calls<T> {
    /// Registers a call that waits for its answer until `now_ms + timeout_ms`; returns the
    /// transaction id to send it with.
    pub fn start(&mut self, what: T, now_ms: u64, timeout_ms: u64) -> Result<f64, TooManyCalls> {
        if self.waiting.len() >= MAX_CALLS {
            return Err(TooManyCalls);
        }
        let transaction = f64::from(self.next_id);
        self.next_id = self.next_id.wrapping_add(1).max(1);
        self.waiting.push(Waiting {
            transaction,
            deadline_ms: now_ms.saturating_add(timeout_ms),
            what,
        });
        Ok(transaction)
    }

    /// `_result` or `_error` for `transaction` arrived: what the call was for, or None for
    /// an answer nobody waits for (late, duplicated or invented by the client).
    pub fn answered(&mut self, transaction: f64) -> Option<T> {
        let i = self
            .waiting
            .iter()
            .position(|w| w.transaction == transaction)?;
        Some(self.waiting.swap_remove(i).what)
    }

    /// The earliest deadline, for the owner's timer.
    pub fn next_deadline(&self) -> Option<u64> {
        self.waiting.iter().map(|w| w.deadline_ms).min()
    }

    /// Calls whose deadline passed by `now_ms`, removed, into `out`.
    pub fn expired(&mut self, now_ms: u64, out: &mut Vec<T>) {
        let mut i = 0;
        while i < self.waiting.len() {
            if self.waiting[i].deadline_ms <= now_ms {
                out.push(self.waiting.swap_remove(i).what);
            } else {
                i += 1;
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_match_their_call_and_only_once() {
        let mut calls = Calls::default();
        let a = calls.start("a", 0, 1_000).expect("room");
        let b = calls.start("b", 0, 1_000).expect("room");
        assert_ne!(a, b);
        assert_eq!(calls.answered(b), Some("b"));
        assert_eq!(calls.answered(b), None, "a duplicate answer");
        assert_eq!(calls.answered(99.0), None, "an answer to nothing");
        assert_eq!(calls.answered(a), Some("a"));
        assert!(calls.is_empty());
    }

    #[test]
    fn unanswered_calls_expire_at_their_deadline() {
        let mut calls = Calls::default();
        calls.start("slow", 100, 1_000).expect("room");
        calls.start("fast", 100, 200).expect("room");
        assert_eq!(calls.next_deadline(), Some(300));
        let mut out = Vec::new();
        calls.expired(299, &mut out);
        assert!(out.is_empty());
        calls.expired(300, &mut out);
        assert_eq!(out, ["fast"]);
        assert_eq!(calls.next_deadline(), Some(1_100));
    }

    #[test]
    fn a_client_that_never_answers_cannot_grow_the_table() {
        let mut calls = Calls::default();
        for i in 0..MAX_CALLS {
            calls.start(i, 0, 1_000).expect("room");
        }
        assert_eq!(calls.start(0, 0, 1_000), Err(TooManyCalls));
    }
}
