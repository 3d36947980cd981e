//! A client's calls to the server that wait for an answer from elsewhere (the manager's
//! `on_call` webhook today; server-side scripts later): per call, the request id it went
//! out under and what the `_result`/`_error` must carry back (the message stream and the
//! client's transaction id).
//!
//! Bounded: a client that calls faster than the hook answers gets an immediate `_error`
//! past `MAX_PENDING`, so one client's flood holds neither the manager's hook threads nor
//! memory beyond this, and other clients' calls go on. The client's other traffic never
//! waits behind these calls: answers go out when they come, out of order as RTMP allows.

/// Calls one client may have waiting for a hook at once.
pub(crate) const MAX_PENDING: usize = 16;

/// Where the answer to a waiting call goes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Caller {
    pub(crate) stream_id: u32,
    /// The client's transaction id; 0: it expects no answer.
    pub(crate) transaction: f64,
}

/// `MAX_PENDING` calls already wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Full;

#[derive(Debug, Default)]
pub(crate) struct IncomingCalls {
    waiting: Vec<(u64, Caller)>,
    /// Calls refused for `Full` since the last one was admitted: the flood is logged when
    /// it starts, not once per call.
    refused_in_a_row: u64,
}

impl IncomingCalls {
    /// Records call `request`, unless too many wait.
    pub(crate) fn admit(&mut self, request: u64, caller: Caller) -> Result<(), Full> {
        if self.waiting.len() >= MAX_PENDING {
            self.refused_in_a_row += 1;
            return Err(Full);
        }
        self.refused_in_a_row = 0;
        self.waiting.push((request, caller));
        Ok(())
    }

    /// How many calls in a row were refused (1 on the first of a flood).
    pub(crate) fn refused_in_a_row(&self) -> u64 {
        self.refused_in_a_row
    }

    /// Call `request` is answered (or timed out): where its answer goes, once.
    pub(crate) fn settle(&mut self, request: u64) -> Option<Caller> {
        let i = self.waiting.iter().position(|(r, _)| *r == request)?;
        Some(self.waiting.swap_remove(i).1)
    }

    /// The client goes away: the requests still waiting, for the worker to forget.
    pub(crate) fn clear(&mut self) -> impl Iterator<Item = u64> + '_ {
        self.waiting.drain(..).map(|(r, _)| r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(t: f64) -> Caller {
        Caller {
            stream_id: 0,
            transaction: t,
        }
    }

    #[test]
    fn answers_settle_their_call_once_in_any_order() {
        let mut calls = IncomingCalls::default();
        calls.admit(10, caller(2.0)).expect("room");
        calls.admit(11, caller(3.0)).expect("room");
        assert_eq!(calls.settle(11), Some(caller(3.0)));
        assert_eq!(calls.settle(11), None, "answered twice");
        assert_eq!(calls.settle(99), None, "never asked");
        assert_eq!(calls.settle(10), Some(caller(2.0)));
    }

    #[test]
    fn a_flood_is_refused_past_the_bound_and_room_comes_back() {
        let mut calls = IncomingCalls::default();
        for i in 0..MAX_PENDING as u64 {
            calls.admit(i, caller(i as f64)).expect("room");
        }
        assert_eq!(calls.admit(100, caller(1.0)), Err(Full));
        assert_eq!(calls.refused_in_a_row(), 1);
        assert_eq!(calls.admit(101, caller(1.0)), Err(Full));
        assert_eq!(calls.refused_in_a_row(), 2);
        assert!(calls.settle(0).is_some());
        calls.admit(102, caller(1.0)).expect("an answer makes room");
        assert_eq!(calls.refused_in_a_row(), 0);
        assert_eq!(calls.clear().count(), MAX_PENDING);
    }
}
