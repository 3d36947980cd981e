//! What the application waits for from the calls it made to a client (server-to-client RPC
//! today; relay commands on upstream links later): per call, what it was for and until when
//! it waits for the `_result` or `_error`.
//!
//! Where the table lives: the transport's protocol session numbers the calls and matches
//! the answers to them (it must, to tell an answer from a call of the client's own; for
//! RTMP, `proto::rtmp::Session::call` and its `SessionEvent::Result`/`Error`). This table
//! has no numbering of its own: it is keyed by the transaction id the session gave, and
//! adds only what the application needs (the purpose and the deadline). The session also
//! bounds how many calls may wait at once, which bounds this table.
//!
//! Owner: the `Client` that made them, on its worker. Time is passed in (milliseconds on
//! the worker's clock): the worker arms a timer owned by the connection at each call's
//! deadline and calls `expired` when it fires, so an unanswered call ends with a timeout
//! rather than living as long as the connection.

#[derive(Debug)]
pub(crate) struct Calls<T> {
    waiting: Vec<Waiting<T>>,
}

#[derive(Debug)]
struct Waiting<T> {
    transaction: u32,
    deadline_ms: u64,
    what: T,
}

impl<T> Default for Calls<T> {
    fn default() -> Self {
        Calls {
            waiting: Vec::new(),
        }
    }
}

impl<T> Calls<T> {
    /// Waits for the answer to the call the session sent as `transaction`, until
    /// `now_ms + timeout_ms`.
    pub(crate) fn expect(&mut self, transaction: u32, what: T, now_ms: u64, timeout_ms: u64) {
        self.waiting.push(Waiting {
            transaction,
            deadline_ms: now_ms.saturating_add(timeout_ms),
            what,
        });
    }

    /// The session matched a `_result` or `_error` to `transaction`: what the call was
    /// for, or None if nobody waits for it any more (its deadline passed).
    pub(crate) fn answered(&mut self, transaction: u32) -> Option<T> {
        let i = self
            .waiting
            .iter()
            .position(|w| w.transaction == transaction)?;
        Some(self.waiting.swap_remove(i).what)
    }

    /// Calls whose deadline passed by `now_ms`, removed, into `out` with their transaction
    /// (for the session to forget them too).
    pub(crate) fn expired(&mut self, now_ms: u64, out: &mut Vec<(u32, T)>) {
        let mut i = 0;
        while i < self.waiting.len() {
            if self.waiting[i].deadline_ms <= now_ms {
                let w = self.waiting.swap_remove(i);
                out.push((w.transaction, w.what));
            } else {
                i += 1;
            }
        }
    }

    /// The client goes away: every call still waiting, removed.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        self.waiting.drain(..).map(|w| w.what)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.waiting.len()
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::amf0::Amf0Value;
    use crate::proto::rtmp::session::{Session, SessionConfig, SessionEvent};
    use crate::proto::rtmp::Message;

    #[test]
    fn answers_match_their_call_and_only_once() {
        let mut calls = Calls::default();
        calls.expect(7, "a", 0, 1_000);
        calls.expect(8, "b", 0, 1_000);
        assert_eq!(calls.answered(8), Some("b"));
        assert_eq!(calls.answered(8), None, "a duplicate answer");
        assert_eq!(calls.answered(99), None, "an answer to nothing");
        assert_eq!(calls.answered(7), Some("a"));
        assert!(calls.is_empty());
    }

    #[test]
    fn a_client_going_away_drains_its_calls() {
        let mut calls = Calls::default();
        calls.expect(1, "a", 0, 1_000);
        calls.expect(2, "b", 0, 1_000);
        let mut gone: Vec<_> = calls.drain().collect();
        gone.sort_unstable();
        assert_eq!(gone, ["a", "b"]);
        assert!(calls.is_empty());
    }

    #[test]
    fn unanswered_calls_expire_at_their_deadline() {
        let mut calls = Calls::default();
        calls.expect(1, "slow", 100, 1_000);
        calls.expect(2, "fast", 100, 200);
        let mut out = Vec::new();
        calls.expired(299, &mut out);
        assert!(out.is_empty());
        calls.expired(300, &mut out);
        assert_eq!(out, [(2, "fast")]);
        assert_eq!(calls.len(), 1);
        calls.expired(1_100, &mut out);
        assert_eq!(out, [(2, "fast"), (1, "slow")]);
        assert!(calls.is_empty());
    }

    /// The session numbers the call and matches the answer; the table keeps the purpose
    /// under the session's number.
    #[test]
    fn the_session_numbers_calls_and_the_table_keeps_their_purpose() {
        let mut session = Session::server(SessionConfig::client(4096), &mut rand::thread_rng(), 0);
        let mut out = Vec::new();
        let mut calls = Calls::default();
        let transaction = session
            .call(0, "checkBandwidth", Amf0Value::Null, &[], &mut out)
            .expect("room");
        calls.expect(transaction, "bandwidth probe", 0, 1_000);

        let answer = [
            Amf0Value::string("_result"),
            Amf0Value::Number(f64::from(transaction)),
            Amf0Value::Null,
        ];
        let message = Message::command(0, false, &answer);
        let mut events = Vec::new();
        session
            .receive(message, &mut out, &mut events)
            .expect("an answer");
        let [SessionEvent::Result { transaction: t, .. }] = events.as_slice() else {
            panic!("{events:?}");
        };
        assert_eq!(calls.answered(*t), Some("bandwidth probe"));
        assert!(calls.is_empty());
    }
}
