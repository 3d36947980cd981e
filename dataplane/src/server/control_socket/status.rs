//! The answer to `status`: the workers' counters summed, with rates and loads over the last
//! sample interval (the counters only grow, so a rate needs two readings).

use std::time::{Duration, Instant};

use control_protocol::{ServerStatus, WorkerStatus, PROTOCOL_VERSION};

use crate::engine::stats::WorkerStats;
use crate::engine::Shared;

/// Rates and loads are taken over at least this long, so they do not jitter per request.
const SAMPLE_INTERVAL: Duration = Duration::from_secs(2);

/// The last totals, to turn counters into rates and busy time into load.
pub(super) struct Sampler {
    started: Instant,
    at: Instant,
    bytes_in: u64,
    bytes_out: u64,
    busy: Vec<u64>,
    rate_in: f64,
    rate_out: f64,
    load: Vec<f64>,
}

impl Sampler {
    pub(super) fn new(workers: usize) -> Sampler {
        let now = Instant::now();
        Sampler {
            started: now,
            at: now,
            bytes_in: 0,
            bytes_out: 0,
            busy: vec![0; workers],
            rate_in: 0.0,
            rate_out: 0.0,
            load: vec![0.0; workers],
        }
    }

    /// Takes a new reading once the interval has passed since the last one.
    pub(super) fn tick(&mut self, stats: &[WorkerStats], now: Instant) {
        if now.duration_since(self.at) < SAMPLE_INTERVAL {
            return;
        }
        let secs = now.duration_since(self.at).as_secs_f64();
        let bytes_in: u64 = stats.iter().map(|s| WorkerStats::get(&s.bytes_in)).sum();
        let bytes_out: u64 = stats.iter().map(|s| WorkerStats::get(&s.bytes_out)).sum();
        self.rate_in = (bytes_in.saturating_sub(self.bytes_in)) as f64 * 8.0 / secs;
        self.rate_out = (bytes_out.saturating_sub(self.bytes_out)) as f64 * 8.0 / secs;
        for (i, s) in stats.iter().enumerate() {
            let busy = WorkerStats::get(&s.busy_ns);
            if let (Some(prev), Some(load)) = (self.busy.get_mut(i), self.load.get_mut(i)) {
                *load = (busy.saturating_sub(*prev) as f64 / 1e9 / secs).clamp(0.0, 1.0);
                *prev = busy;
            }
        }
        self.at = now;
        self.bytes_in = bytes_in;
        self.bytes_out = bytes_out;
    }

    pub(super) fn status(&self, shared: &Shared) -> ServerStatus {
        let stats = &shared.stats;
        let workers: Vec<WorkerStatus> = stats
            .iter()
            .enumerate()
            .map(|(id, s)| WorkerStatus {
                id,
                connections: WorkerStats::get(&s.connections),
                bytes_in: WorkerStats::get(&s.bytes_in),
                bytes_out: WorkerStats::get(&s.bytes_out),
                sends: WorkerStats::get(&s.sends),
                so_messages_in: WorkerStats::get(&s.so_messages_in),
                so_messages_out: WorkerStats::get(&s.so_messages_out),
                rtmfp_sessions: WorkerStats::get(&s.rtmfp_sessions),
                load: self.load.get(id).copied().unwrap_or(0.0),
            })
            .collect();
        ServerStatus {
            version: env!("CARGO_PKG_VERSION").to_string(),
            protocol: PROTOCOL_VERSION,
            pid: std::process::id(),
            uptime_s: self.started.elapsed().as_secs_f64(),
            connections: workers.iter().map(|w| w.connections).sum(),
            streams: shared.registry.published(),
            bytes_in: workers.iter().map(|w| w.bytes_in).sum(),
            bytes_out: workers.iter().map(|w| w.bytes_out).sum(),
            bits_in_per_s: self.rate_in,
            bits_out_per_s: self.rate_out,
            dropped_frames: stats
                .iter()
                .map(|s| WorkerStats::get(&s.dropped_frames))
                .sum(),
            recordings_started: stats
                .iter()
                .map(|s| WorkerStats::get(&s.recordings_started))
                .sum(),
            recordings_failed: stats
                .iter()
                .map(|s| WorkerStats::get(&s.recordings_failed))
                .sum(),
            workers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::workers::shared_state;

    #[test]
    fn rates_and_loads_come_from_two_readings_an_interval_apart() {
        let (shared, _receivers) = shared_state(2).expect("mailboxes");
        let mut sampler = Sampler::new(2);
        let first = sampler.at;
        WorkerStats::add(&shared.stats[0].bytes_out, 1_000_000);
        WorkerStats::add(&shared.stats[1].bytes_out, 1_000_000);
        WorkerStats::add(&shared.stats[1].bytes_in, 250_000);
        // Worker 1 was busy for one second of the two.
        WorkerStats::add(&shared.stats[1].busy_ns, 1_000_000_000);

        sampler.tick(&shared.stats, first + SAMPLE_INTERVAL / 2);
        assert_eq!(
            sampler.status(&shared).bits_out_per_s,
            0.0,
            "sampled too early"
        );

        sampler.tick(&shared.stats, first + SAMPLE_INTERVAL);
        let status = sampler.status(&shared);
        assert_eq!(status.bytes_out, 2_000_000);
        assert_eq!(status.bits_out_per_s, 8_000_000.0);
        assert_eq!(status.bits_in_per_s, 1_000_000.0);
        assert_eq!(status.workers[0].load, 0.0);
        assert_eq!(status.workers[1].load, 0.5);
        assert_eq!(status.workers[1].bytes_in, 250_000);
    }
}
