//! Round-trip time estimation (RFC 6298 smoothing, samples from RFC 7016 timestamp echoes)
//! and a TCP-friendly congestion window (RFC 7016 §3.5.2: slow start, additive increase,
//! halving on loss, restart after a timeout — RFC 5681's shape, counted in bytes).

use super::packet::MAX_PLAIN;

pub(crate) const MSS: u64 = MAX_PLAIN as u64;
const MIN_RTO_MS: u64 = 250;
const MAX_RTO_MS: u64 = 10_000;
const INITIAL_RTO_MS: u64 = 1_000;

#[derive(Debug, Clone, Default)]
pub(crate) struct Rtt {
    srtt: Option<u64>,
    rttvar: u64,
    /// Multiplied by √2 per consecutive timeout (RFC 7016 §3.5.2.2), reset by a sample.
    backoff: u32,
}

impl Rtt {
    pub(crate) fn sample(&mut self, rtt_ms: u64) {
        match self.srtt {
            None => {
                self.srtt = Some(rtt_ms);
                self.rttvar = rtt_ms / 2;
            }
            Some(s) => {
                let diff = s.abs_diff(rtt_ms);
                self.rttvar = (3 * self.rttvar + diff) / 4;
                self.srtt = Some((7 * s + rtt_ms) / 8);
            }
        }
        self.backoff = 0;
    }

    pub(crate) fn srtt(&self) -> Option<u64> {
        self.srtt
    }

    /// The retransmission timeout (RFC 7016's "ERTO").
    pub(crate) fn rto(&self) -> u64 {
        let base = match self.srtt {
            Some(s) => (s + 4 * self.rttvar).max(MIN_RTO_MS),
            None => INITIAL_RTO_MS,
        };
        let mut r = base;
        for _ in 0..self.backoff.min(12) {
            r = r * 1414 / 1000;
        }
        r.min(MAX_RTO_MS)
    }

    pub(crate) fn timed_out(&mut self) {
        self.backoff = self.backoff.saturating_add(1);
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Congestion {
    pub cwnd: u64,
    ssthresh: u64,
    /// No second halving for losses of the same window (until this time).
    recovery_until: u64,
}

impl Default for Congestion {
    fn default() -> Self {
        Congestion {
            cwnd: 4 * MSS,
            ssthresh: u64::MAX,
            recovery_until: 0,
        }
    }
}

impl Congestion {
    /// `bytes` acknowledged, of `in_flight` (what was in flight before this ack). The
    /// window grows only while the sender uses at least half of it (RFC 7661's validated
    /// window): a live stream is application-limited, and a window grown by every ack
    /// without bound (megabytes after a few seconds) let a whole key frame or fast-start
    /// burst leave at once, overflowing the receiver's socket buffer at every key frame.
    pub(crate) fn on_ack(&mut self, bytes: u64, in_flight: u64) {
        if in_flight.saturating_mul(2) < self.cwnd {
            return;
        }
        if self.cwnd < self.ssthresh {
            self.cwnd += bytes;
        } else {
            self.cwnd += (MSS * bytes / self.cwnd).max(1);
        }
    }

    pub(crate) fn on_loss(&mut self, now: u64, rtt: &Rtt) {
        if now < self.recovery_until {
            return;
        }
        self.ssthresh = (self.cwnd / 2).max(2 * MSS);
        self.cwnd = self.ssthresh;
        self.recovery_until = now + rtt.srtt().unwrap_or(100);
    }

    pub(crate) fn on_timeout(&mut self) {
        self.ssthresh = (self.cwnd / 2).max(2 * MSS);
        self.cwnd = 2 * MSS;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtt_converges_and_backs_off() {
        let mut r = Rtt::default();
        assert_eq!(r.rto(), INITIAL_RTO_MS);
        for _ in 0..50 {
            r.sample(100);
        }
        assert_eq!(r.srtt(), Some(100));
        assert_eq!(r.rto(), MIN_RTO_MS);
        r.timed_out();
        assert_eq!(r.rto(), MIN_RTO_MS * 1414 / 1000);
        for _ in 0..40 {
            r.timed_out();
        }
        assert_eq!(r.rto(), MAX_RTO_MS);
    }

    #[test]
    fn window_grows_and_halves() {
        let mut c = Congestion::default();
        let r = Rtt::default();
        c.on_ack(MSS, c.cwnd);
        assert_eq!(c.cwnd, 5 * MSS);
        c.on_loss(1000, &r);
        assert_eq!(c.cwnd, (5 * MSS) / 2);
        c.on_loss(1050, &r); // same window: no second halving
        assert_eq!(c.cwnd, (5 * MSS) / 2);
        let before = c.cwnd;
        c.on_ack(MSS, c.cwnd);
        assert!(c.cwnd > before && c.cwnd < before + MSS);
        c.on_timeout();
        assert_eq!(c.cwnd, 2 * MSS);
    }

    #[test]
    fn an_application_limited_sender_does_not_grow_its_window() {
        let mut c = Congestion::default();
        let start = c.cwnd;
        // A live stream's trickle: far less in flight than the window, ack after ack.
        for _ in 0..1000 {
            c.on_ack(MSS, MSS);
        }
        assert_eq!(c.cwnd, start, "unused window is not grown");
        // Using the window grows it (slow start).
        c.on_ack(MSS, c.cwnd);
        assert_eq!(c.cwnd, start + MSS);
        // Half used still counts as using it.
        let w = c.cwnd;
        c.on_ack(MSS, w.div_ceil(2));
        assert_eq!(c.cwnd, w + MSS);
    }
}
