//! A NetStream's `play` calls take effect in the order they were made, though their files
//! open and index in any order (a playlist's second item may be a small file, indexed
//! before the first; a -2 play learns whether its file exists when its open completes).
//! Each play takes a ticket when it is made; what it turns into (start, StreamNotFound,
//! the live stream) is held until the plays before it have had theirs.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

/// Most plays of one NetStream waiting for their turn: beyond it a ticket is refused
/// (a client that sends plays in a loop must not grow this without end).
pub(crate) const MAX_WAITING: usize = 64;

struct Line<T> {
    /// The ticket the next play gets, and the one whose turn it is.
    next: u64,
    turn: u64,
    /// Outcomes that arrived before their turn, by ticket.
    early: BTreeMap<u64, T>,
}

/// Tickets and held outcomes, by NetStream.
pub(crate) struct PlayOrder<K, T> {
    lines: HashMap<K, Line<T>>,
}

impl<K, T> Default for PlayOrder<K, T> {
    fn default() -> Self {
        PlayOrder {
            lines: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq + Copy, T> PlayOrder<K, T> {
    /// A ticket for a new play of `key`; `None` when too many wait already.
    pub(crate) fn ticket(&mut self, key: K) -> Option<u64> {
        let line = self.lines.entry(key).or_insert_with(|| Line {
            next: 0,
            turn: 0,
            early: BTreeMap::new(),
        });
        if line.next - line.turn >= MAX_WAITING as u64 {
            return None;
        }
        line.next += 1;
        Some(line.next - 1)
    }

    /// The outcome of ticket `ticket` of `key` is known: what may run now, in order (this
    /// one and the held ones after it, or nothing while an earlier play waits).
    pub(crate) fn arrive(&mut self, key: K, ticket: u64, outcome: T) -> Vec<T> {
        let Some(line) = self.lines.get_mut(&key) else {
            // No line: nothing waits (a ticket from before a forget); it runs.
            return vec![outcome];
        };
        if ticket < line.turn || ticket >= line.next {
            return vec![outcome];
        }
        line.early.insert(ticket, outcome);
        let mut ready = Vec::new();
        while let Some(outcome) = line.early.remove(&line.turn) {
            ready.push(outcome);
            line.turn += 1;
        }
        if line.turn == line.next {
            self.lines.remove(&key);
        }
        ready
    }

    /// The NetStream (or its connection) is gone: what it held goes.
    pub(crate) fn forget(&mut self, key: K) {
        self.lines.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn outcomes_run_in_ticket_order() {
        let mut o = PlayOrder::default();
        let (a, b, c) = (
            o.ticket(1).expect("a"),
            o.ticket(1).expect("b"),
            o.ticket(1).expect("c"),
        );
        let other = o.ticket(2).expect("another NetStream");
        assert_eq!(
            o.arrive(1, c, "c"),
            Vec::<&str>::new(),
            "c waits for a and b"
        );
        assert_eq!(
            o.arrive(2, other, "x"),
            ["x"],
            "other NetStreams do not wait"
        );
        assert_eq!(o.arrive(1, a, "a"), ["a"]);
        assert_eq!(o.arrive(1, b, "b"), ["b", "c"]);
        assert!(o.lines.is_empty(), "a line that caught up goes");
        assert_eq!(o.arrive(1, 7, "late"), ["late"], "unknown tickets run");
    }

    #[test]
    fn waiting_plays_are_bounded_and_forgotten() {
        let mut o = PlayOrder::<u32, ()>::default();
        for _ in 0..MAX_WAITING {
            assert!(o.ticket(1).is_some());
        }
        assert_eq!(o.ticket(1), None);
        o.forget(1);
        assert_eq!(o.ticket(1), Some(0));
    }

    proptest! {
        /// Whatever order outcomes arrive in, each runs once, in ticket order.
        #[test]
        fn any_arrival_order_runs_in_ticket_order(
            order in Just((0..20u64).collect::<Vec<_>>()).prop_shuffle()
        ) {
            let mut o = PlayOrder::default();
            for _ in 0..20 {
                o.ticket(0u8);
            }
            let mut ran = Vec::new();
            for t in order {
                ran.extend(o.arrive(0, t, t));
            }
            prop_assert_eq!(ran, (0..20).collect::<Vec<_>>());
            prop_assert!(o.lines.is_empty());
        }
    }
}
