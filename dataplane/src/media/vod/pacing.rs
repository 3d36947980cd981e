//! How a file play is paced when a worker serves many of them: wake-ups on a shared tick,
//! and a lead that grows from a play's start instead of the whole buffer at once.
//!
//! A wake-up per sample (about 77 a second for H.264 + AAC) costs a timer, a pass through
//! the play and a send per viewer per sample; on a tick, all of a worker's file plays wake
//! at the same instants, each sends what falls due within the coming tick in one go (one
//! send per viewer per tick). Sending the client's whole buffer the moment a play starts
//! makes a start storm (1,000 players at once) queue seconds of media for the first
//! players before the last ones are even answered; growing the lead from zero sends every
//! player its first frames first, then the rest of its buffer in rounds, one per tick.

use super::playback::MAX_LEAD_MS;

/// Without a tick, how often a play whose lead is still growing looks again: a wake-up a
/// millisecond would cost more than the lead is worth.
const RAMP_STEP_MS: u32 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pacing {
    /// Wake-ups fall on multiples of this (ms of the clock), and a sample goes up to one
    /// tick early. 0: exact, a wake-up when each sample falls due.
    pub(crate) tick_ms: u32,
    /// The lead may be at most this many times the time played since the play (or seek)
    /// began, up to the buffer. 0: the whole buffer at once.
    pub(crate) ramp: u32,
}

impl Pacing {
    /// A wake-up per sample and the whole buffer at once.
    pub(crate) const EXACT: Pacing = Pacing {
        tick_ms: 0,
        ramp: 0,
    };

    /// How far ahead of real time a play may be `played` ms after it began, for a client
    /// buffer of `buffer_ms`.
    pub(crate) fn lead(self, buffer_ms: u32, played: u64) -> u64 {
        let full = u64::from(buffer_ms.min(MAX_LEAD_MS));
        if self.ramp == 0 {
            return full;
        }
        full.min(played.saturating_mul(u64::from(self.ramp)))
    }

    /// A sample to send at `due` (its lead taken off): `None` to send it at `now`, else the
    /// clock time to wake up for it. `growing`: the lead is still ramping up, so the sample
    /// may come due sooner than `due` says; wake on the next tick to look again.
    pub(crate) fn wake(self, due: u64, now: u64, growing: bool) -> Option<u64> {
        let tick = u64::from(self.tick_ms);
        if due <= now.saturating_add(tick) {
            return None;
        }
        let at = if tick == 0 {
            due
        } else {
            // The first tick from which `due` is within one tick: at least `due - tick`,
            // which is after `now`.
            (due - tick).div_ceil(tick) * tick
        };
        if growing {
            return Some(at.min(self.next_tick(now)));
        }
        Some(at)
    }

    /// The first tick after `now` (without a tick, the next `RAMP_STEP_MS`).
    pub(crate) fn next_tick(self, now: u64) -> u64 {
        let tick = u64::from(if self.tick_ms == 0 {
            RAMP_STEP_MS
        } else {
            self.tick_ms
        });
        (now / tick + 1) * tick
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICKED: Pacing = Pacing {
        tick_ms: 100,
        ramp: 4,
    };

    #[test]
    fn exact_pacing_wakes_when_the_sample_is_due() {
        assert_eq!(Pacing::EXACT.wake(1_020, 1_000, false), Some(1_020));
        assert_eq!(Pacing::EXACT.wake(1_000, 1_000, false), None);
        assert_eq!(Pacing::EXACT.lead(3_000, 0), 3_000);
        assert_eq!(Pacing::EXACT.lead(36_000_000, 0), u64::from(MAX_LEAD_MS));
    }

    #[test]
    fn ticked_pacing_sends_up_to_a_tick_early_and_wakes_on_ticks() {
        // Due within the coming tick: now.
        assert_eq!(TICKED.wake(1_090, 1_000, false), None);
        assert_eq!(TICKED.wake(1_100, 1_000, false), None);
        // Later: the tick from which it is within one tick, never before `now`.
        assert_eq!(TICKED.wake(1_101, 1_000, false), Some(1_100));
        assert_eq!(TICKED.wake(1_250, 1_030, false), Some(1_200));
        assert_eq!(TICKED.wake(1_201, 1_030, false), Some(1_200));
        for now in [0u64, 37, 99, 100, 1_234] {
            for due in now..now + 1_000 {
                if let Some(at) = TICKED.wake(due, now, false) {
                    assert!(at > now && at % 100 == 0, "{due} {now} {at}");
                    assert!(due <= at + 100 && due > at, "{due} {now} {at}");
                }
            }
        }
        // While the lead grows, the next tick at the latest (without a tick, a step of
        // RAMP_STEP_MS, not a wake-up a millisecond).
        assert_eq!(TICKED.wake(5_000, 1_030, true), Some(1_100));
        let untimed = Pacing {
            tick_ms: 0,
            ramp: 4,
        };
        assert_eq!(untimed.wake(5_000, 1_003, true), Some(1_010));
        assert_eq!(untimed.wake(1_005, 1_003, true), Some(1_005));
    }

    #[test]
    fn the_lead_grows_from_the_start_to_the_buffer() {
        assert_eq!(TICKED.lead(3_000, 0), 0);
        assert_eq!(TICKED.lead(3_000, 100), 400);
        assert_eq!(TICKED.lead(3_000, 750), 3_000);
        assert_eq!(TICKED.lead(3_000, 60_000), 3_000);
        assert_eq!(TICKED.lead(u32::MAX, u64::MAX), u64::from(MAX_LEAD_MS));
    }
}
