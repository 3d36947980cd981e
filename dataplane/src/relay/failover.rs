//! LiveStreamCast's failover rules, sans-IO (the seed's "Failover" section):
//! - the play request goes to every upstream group; the order in which they answer is the
//!   list, and the stream comes from the first;
//! - when the current one fails (inactivity over the idle interval, or its link drops) the
//!   stream switches to the next available group in the list;
//! - in the background the failed group is reconnected: 3 attempts at its primary, then its
//!   secondary (a group whose primary and secondary are the same machine keeps retrying it);
//! - a group that comes back goes to the bottom of the list, and the stream stays where it
//!   is until the next failover.

use super::host_ini::{UpstreamAddr, UpstreamGroup};

/// Attempts at a group's primary before its secondary is tried.
pub(crate) const PRIMARY_ATTEMPTS: u32 = 3;

/// The groups that answered, in answer order, and the one the stream comes from.
#[derive(Debug, Default)]
pub(crate) struct FailoverList {
    order: Vec<usize>,
    active: Option<usize>,
}

impl FailoverList {
    /// Group `g` answered (its first media, or again after it failed). Returns true if the
    /// stream now comes from it: when no group is active. Otherwise it joins the bottom.
    pub(crate) fn answered(&mut self, g: usize) -> bool {
        if !self.order.contains(&g) {
            self.order.push(g);
        }
        if self.active.is_none() {
            self.active = Some(g);
            return true;
        }
        false
    }

    /// Group `g` failed: it leaves the list. Returns the group the stream should come from
    /// next if `g` was the current one (the next available in the list), else None.
    pub(crate) fn failed(&mut self, g: usize) -> Option<usize> {
        let position = self.order.iter().position(|&x| x == g);
        if let Some(i) = position {
            self.order.remove(i);
        }
        if self.active != Some(g) {
            return None;
        }
        self.active = None;
        // The next after the failed one in the list (wrapping), which after the removal is
        // whatever sits at its old position.
        let next = match position {
            Some(i) if !self.order.is_empty() => Some(self.order[i % self.order.len()]),
            _ => self.order.first().copied(),
        };
        next
    }

    /// The stream now comes from `g` (chosen by `failed`, linked again).
    pub(crate) fn activate(&mut self, g: usize) {
        if !self.order.contains(&g) {
            self.order.push(g);
        }
        self.active = Some(g);
    }

    pub(crate) fn active(&self) -> Option<usize> {
        self.active
    }

    pub(crate) fn order(&self) -> &[usize] {
        &self.order
    }
}

/// Where a group's next connection attempt goes.
#[derive(Debug, Default, Clone)]
pub(crate) struct Attempts {
    /// Failed attempts in a row.
    pub(crate) failures: u32,
}

impl Attempts {
    /// The address of the next attempt: the primary for its first 3 failures, then the
    /// secondary for 3, and so on; always the primary of a one-machine group.
    pub(crate) fn address<'g>(&self, group: &'g UpstreamGroup) -> (&'g UpstreamAddr, bool) {
        let secondary =
            group.primary != group.secondary && (self.failures / PRIMARY_ATTEMPTS) % 2 == 1;
        if secondary {
            (&group.secondary, true)
        } else {
            (&group.primary, false)
        }
    }

    pub(crate) fn failed(&mut self) {
        self.failures = self.failures.saturating_add(1);
    }

    pub(crate) fn succeeded(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::host_ini;

    fn groups() -> Vec<UpstreamGroup> {
        host_ini::parse(b"g1 127.0.0.2;127.0.0.3 o\ng2 127.0.0.4;127.0.0.4 o\n", "t")
            .expect("groups")
    }

    #[test]
    fn answer_order_is_the_list_and_the_first_streams() {
        let mut l = FailoverList::default();
        assert!(l.answered(2));
        assert!(!l.answered(0));
        assert!(!l.answered(1));
        assert_eq!(l.order(), [2, 0, 1]);
        assert_eq!(l.active(), Some(2));
    }

    #[test]
    fn failover_goes_to_the_next_and_a_recovered_group_to_the_bottom() {
        let mut l = FailoverList::default();
        for g in [0, 1, 2] {
            l.answered(g);
        }
        assert_eq!(l.failed(0), Some(1));
        l.activate(1);
        // 0 comes back: bottom of the list, and the stream stays on 1.
        assert!(!l.answered(0));
        assert_eq!(l.order(), [1, 2, 0]);
        assert_eq!(l.active(), Some(1));
        // The next failover goes to the next in the list, not back to 0.
        assert_eq!(l.failed(1), Some(2));
        l.activate(2);
        assert_eq!(l.failed(2), Some(0));
        // A group that is not the current one failing changes nothing of the stream.
        l.activate(0);
        l.answered(1);
        assert_eq!(l.failed(1), None);
        assert_eq!(l.active(), Some(0));
        // The last one failing leaves nothing.
        assert_eq!(l.failed(0), None);
        assert_eq!(l.active(), None);
        assert!(l.answered(1), "the first to answer again streams");
    }

    #[test]
    fn three_attempts_at_the_primary_then_the_secondary() {
        let g = groups();
        let mut a = Attempts::default();
        let mut seen = Vec::new();
        for _ in 0..7 {
            let (addr, secondary) = a.address(&g[0]);
            seen.push((addr.host.clone(), secondary));
            a.failed();
        }
        let p = ("127.0.0.2".to_string(), false);
        let s = ("127.0.0.3".to_string(), true);
        assert_eq!(
            seen,
            [p.clone(), p.clone(), p.clone(), s.clone(), s.clone(), s, p]
        );
        a.succeeded();
        assert!(!a.address(&g[0]).1);
        // One machine: always the primary.
        let mut a = Attempts::default();
        for _ in 0..10 {
            assert_eq!(a.address(&g[1]), (&g[1].primary, false));
            a.failed();
        }
    }
}
