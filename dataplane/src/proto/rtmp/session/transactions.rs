//! Our calls awaiting the peer's `_result` or `_error`, by transaction id.

use super::SessionError;

/// Calls one peer may leave unanswered at once: a peer that never answers must not grow the
/// table without bound (a client has a handful outstanding; server-to-client RPC more).
const MAX_PENDING_CALLS: usize = 256;

/// What a call was, so that its answer can be told apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallKind {
    Connect,
    /// Answered with `SessionEvent::StreamCreated`.
    CreateStream,
    /// Any other method, by name (`releaseStream`, an RPC, ...).
    Method(String),
}

impl CallKind {
    /// The method called.
    pub(crate) fn method(&self) -> &str {
        match self {
            CallKind::Connect => "connect",
            CallKind::CreateStream => "createStream",
            CallKind::Method(name) => name,
        }
    }
}

#[derive(Debug)]
pub(super) struct Transactions {
    /// The next transaction id to hand out; 0 is left to calls that expect no answer.
    next: u32,
    pending: Vec<(u32, CallKind)>,
}

impl Default for Transactions {
    fn default() -> Self {
        Transactions {
            next: 1,
            pending: Vec::new(),
        }
    }
}

impl Transactions {
    /// Records a call; returns its transaction id.
    pub(super) fn open(&mut self, kind: CallKind) -> Result<u32, SessionError> {
        if self.pending.len() >= MAX_PENDING_CALLS {
            return Err(SessionError::TooManyCalls(self.pending.len()));
        }
        // After 2^32 calls the ids wrap; skip 0 and any id still waiting.
        let mut id = self.next;
        while id == 0 || self.pending.iter().any(|(t, _)| *t == id) {
            id = id.wrapping_add(1);
        }
        self.next = id.wrapping_add(1);
        self.pending.push((id, kind));
        Ok(id)
    }

    /// The call that `transaction` (as the peer sent it) answers, if it is one of ours; it
    /// is answered now and forgotten.
    pub(super) fn answer(&mut self, transaction: f64) -> Option<(u32, CallKind)> {
        let whole =
            transaction.fract() == 0.0 && (1.0..=f64::from(u32::MAX)).contains(&transaction);
        if !whole {
            return None;
        }
        self.forget(transaction as u32)
    }

    /// Forgets call `id` (answered, or nobody waits for it any more).
    pub(super) fn forget(&mut self, id: u32) -> Option<(u32, CallKind)> {
        let at = self.pending.iter().position(|(t, _)| *t == id)?;
        Some(self.pending.remove(at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_matches_its_call_once() {
        let mut t = Transactions::default();
        let connect = t.open(CallKind::Connect).expect("room");
        let create = t.open(CallKind::CreateStream).expect("room");
        assert_ne!(connect, create);
        assert_eq!(
            t.answer(f64::from(create)),
            Some((create, CallKind::CreateStream))
        );
        assert_eq!(t.answer(f64::from(create)), None, "answered twice");
        assert_eq!(
            t.answer(f64::from(connect)),
            Some((connect, CallKind::Connect))
        );
    }

    #[test]
    fn odd_transaction_numbers_match_nothing() {
        let mut t = Transactions::default();
        let id = t.open(CallKind::Connect).expect("room");
        for odd in [
            0.0,
            -1.0,
            f64::from(id) + 0.5,
            f64::NAN,
            f64::INFINITY,
            1e300,
        ] {
            assert_eq!(t.answer(odd), None, "{odd}");
        }
        assert!(t.answer(f64::from(id)).is_some());
    }

    #[test]
    fn a_forgotten_call_matches_no_answer() {
        let mut t = Transactions::default();
        let id = t.open(CallKind::Method("ping".into())).expect("room");
        assert_eq!(t.forget(id), Some((id, CallKind::Method("ping".into()))));
        assert_eq!(t.answer(f64::from(id)), None);
    }

    #[test]
    fn the_table_is_bounded() {
        let mut t = Transactions::default();
        for _ in 0..MAX_PENDING_CALLS {
            t.open(CallKind::Method("ping".into())).expect("room");
        }
        assert!(matches!(
            t.open(CallKind::Connect),
            Err(SessionError::TooManyCalls(MAX_PENDING_CALLS))
        ));
        assert!(t.answer(1.0).is_some());
        assert!(t.open(CallKind::Connect).is_ok(), "an answer makes room");
    }

    #[test]
    fn ids_wrap_past_zero_and_pending_ones() {
        let mut t = Transactions {
            next: u32::MAX,
            pending: vec![(1, CallKind::Connect)],
        };
        assert_eq!(t.open(CallKind::CreateStream).expect("room"), u32::MAX);
        assert_eq!(t.open(CallKind::CreateStream).expect("room"), 2);
    }
}
